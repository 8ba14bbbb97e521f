//! `CheckSecurityGroupAccess` (a Palisade action in the ECS RPC style): would this packet
//! reach (or leave) that interface, and which rule says so? Builds the decision engine
//! from stored state, optionally with proposed changes applied (what-if, never stored).

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;

use palisade_engine as engine;
use palisade_model::*;
use palisade_store::Tx;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::membership::target_nic;
use crate::params::Params;
use crate::service::{permission_input, region, Config, HResult, Reply};

/// A stored rule in the engine's terms.
pub fn engine_rule(r: &Permission) -> Option<engine::Rule> {
    let cidr = |s: &str| {
        s.parse::<Cidr4>()
            .ok()
            .map(|c| engine::Cidr4::new(c.addr, c.prefix_len))
    };
    let ports = |p: &PortRange| {
        if p.is_any() {
            engine::PortRange::new(0, 65535)
        } else {
            engine::PortRange::new(p.from as u16, p.to as u16)
        }
    };
    Some(engine::Rule {
        rule_id: r.id.clone(),
        group_id: r.group_id.clone(),
        direction: match r.direction {
            Direction::Ingress => engine::Direction::Ingress,
            Direction::Egress => engine::Direction::Egress,
        },
        protocol: match r.ip_protocol {
            IpProtocol::Tcp => engine::Protocol::Tcp,
            IpProtocol::Udp => engine::Protocol::Udp,
            IpProtocol::Icmp => engine::Protocol::Icmp,
            IpProtocol::Gre => engine::Protocol::Gre,
            IpProtocol::All => engine::Protocol::All,
        },
        port_range: ports(&r.port_range),
        source_port_range: r.source_port_range.as_ref().map(ports),
        peer: match &r.peer {
            Peer::Cidr(c) => engine::Peer::Cidr(cidr(c)?),
            Peer::Group { group_id, .. } => engine::Peer::Group(group_id.clone()),
        },
        local_cidr: match &r.local_cidr {
            Some(c) => Some(cidr(c)?),
            None => None,
        },
        policy: match r.policy {
            Policy::Accept => engine::Policy::Accept,
            Policy::Drop => engine::Policy::Drop,
        },
        priority: r.priority,
        nic_type: match r.nic_type {
            NicType::Internet => engine::NicType::Internet,
            NicType::Intranet => engine::NicType::Intranet,
        },
    })
}

pub fn group_spec(g: &SecurityGroup, rules: &[Permission]) -> engine::GroupSpec {
    engine::GroupSpec {
        id: g.id.clone(),
        kind: match g.group_type {
            SecurityGroupType::Normal => engine::GroupKind::Normal,
            SecurityGroupType::Enterprise => engine::GroupKind::Enterprise,
        },
        vpc_id: g.vpc_id.clone(),
        inner_access_accept: g.group_type == SecurityGroupType::Normal
            && g.inner_access_policy == InnerAccessPolicy::Accept,
        rules: rules.iter().filter_map(engine_rule).collect(),
    }
}

fn ip_of(s: &str) -> Option<u32> {
    s.parse::<Ipv4Addr>().ok().map(u32::from)
}

pub fn engine_nic(n: &NetworkInterface, groups: Vec<String>) -> Option<engine::Nic> {
    Some(engine::Nic {
        id: n.id.clone(),
        groups,
        private_ip: ip_of(&n.private_ip)?,
        public_ip: n.public_ip.as_deref().and_then(ip_of),
    })
}

/// Proposed rules to add (`WhatIf.Authorize.N.*`, each with `SecurityGroupId` and
/// `Direction`) and rule ids to take away (`WhatIf.Revoke.N`).
fn what_if(
    tx: &mut dyn Tx,
    account: &Account,
    region_id: &str,
    p: &Params,
    rules: &mut HashMap<String, Vec<Permission>>,
) -> Result<bool, ApiError> {
    let adds = p.struct_list("WhatIf.Authorize")?;
    let revokes = p.repeated("WhatIf.Revoke")?;
    for id in &revokes {
        let before: usize = rules.values().map(Vec::len).sum();
        for list in rules.values_mut() {
            list.retain(|r| &r.id != id);
        }
        if rules.values().map(Vec::len).sum::<usize>() == before {
            return Err(ApiError::RuleIdNotFound);
        }
    }
    for (i, add) in adds.iter().enumerate() {
        let gid = add.required("SecurityGroupId")?;
        let group = match tx.group(gid)? {
            Some(g) if g.account_id == account.id && g.region_id == region_id => g,
            _ => return Err(ApiError::InvalidSecurityGroupIdNotFound),
        };
        let dir = match add.opt("Direction").map(|d| d.to_ascii_lowercase()) {
            None => Direction::Ingress,
            Some(d) => Direction::parse(&d).ok_or(ApiError::InvalidDirection)?,
        };
        let parsed = parse_permission(&permission_input(add, dir), dir, &group)?;
        let peer = match parsed.peer.clone() {
            ParsedPeer::Cidr(c) => Peer::Cidr(c),
            ParsedPeer::Group { group_id, .. } => {
                let g = tx
                    .group(&group_id)?
                    .ok_or(ApiError::InvalidSourceGroupIdNotFound(dir))?;
                check_peer_group(&group, &g)?;
                Peer::Group {
                    group_id: g.id,
                    owner_id: g.account_id,
                }
            }
        };
        let rule = parsed.into_permission(
            format!("proposed-{}", i + 1),
            &group.id,
            dir,
            peer,
            String::new(),
        );
        rules.entry(group.id.clone()).or_default().push(rule);
    }
    Ok(!adds.is_empty() || !revokes.is_empty())
}

fn protocol_number(s: &str) -> Result<u8, ApiError> {
    match s.to_ascii_lowercase().as_str() {
        "tcp" => Ok(6),
        "udp" => Ok(17),
        "icmp" => Ok(1),
        "gre" => Ok(47),
        n => n
            .parse::<u8>()
            .map_err(|_| ApiError::InvalidProtocolForCheck),
    }
}

fn port(p: &Params, name: &'static str) -> Result<u16, ApiError> {
    match p.opt(name) {
        None => Ok(0),
        Some(s) => s
            .trim()
            .parse::<u16>()
            .map_err(|_| ApiError::InvalidPort(name)),
    }
}

pub fn check_security_group_access(
    cfg: &Config,
    tx: &mut dyn Tx,
    account: &Account,
    p: &Params,
) -> HResult {
    let region_id = region(cfg, p)?;
    let nic = target_nic(tx, account, region_id, p)?;
    let direction = match p.required("Direction")?.to_ascii_lowercase().as_str() {
        "ingress" => engine::Direction::Ingress,
        "egress" => engine::Direction::Egress,
        _ => return Err(ApiError::InvalidDirection),
    };
    let protocol = protocol_number(p.required("IpProtocol")?)?;
    let remote_ip =
        ip_of(p.required("PeerIpAddress")?).ok_or(ApiError::InvalidIpAddress("PeerIpAddress"))?;
    let local_ip = match p.opt("LocalIpAddress") {
        None => ip_of(&nic.private_ip).ok_or(ApiError::InternalError)?,
        Some(s) => {
            if s != nic.private_ip && nic.public_ip.as_deref() != Some(s) {
                return Err(ApiError::LocalIpMismatch);
            }
            ip_of(s).ok_or(ApiError::InvalidIpAddress("LocalIpAddress"))?
        }
    };
    let dst = port(p, "DestinationPort")?;
    let src = port(p, "SourcePort")?;
    let (local_port, remote_port) = match direction {
        engine::Direction::Ingress => (dst, src),
        engine::Direction::Egress => (src, dst),
    };
    let reply =
        matches!(p.opt("Reply").map(|s| s.to_ascii_lowercase()), Some(ref s) if s == "true");

    // The interface's groups and their rules; the members of every group they name.
    let groups: Vec<SecurityGroup> = {
        let mut out = Vec::new();
        for id in tx.nic_groups(&nic.id)? {
            if let Some(g) = tx.group(&id)? {
                out.push(g);
            }
        }
        out
    };
    let mut rules: HashMap<String, Vec<Permission>> = HashMap::new();
    for g in &groups {
        rules.insert(g.id.clone(), tx.permissions(&g.id)?);
    }
    let proposed = what_if(tx, account, region_id, p, &mut rules)?;
    let mut eng = engine::Engine::new();
    for g in &groups {
        eng.upsert_group(group_spec(g, &rules[&g.id]))
            .map_err(|_| ApiError::InternalError)?;
    }
    let mut related: HashSet<String> = groups.iter().map(|g| g.id.clone()).collect();
    for list in rules.values() {
        for r in list {
            if let Peer::Group { group_id, .. } = &r.peer {
                related.insert(group_id.clone());
            }
        }
    }
    let mut nics: HashMap<String, engine::Nic> = HashMap::new();
    for gid in &related {
        for member in tx.group_members(gid)? {
            if nics.contains_key(&member.id) {
                continue;
            }
            let member_groups = tx.nic_groups(&member.id)?;
            if let Some(n) = engine_nic(&member, member_groups) {
                nics.insert(member.id.clone(), n);
            }
        }
    }
    let me = engine_nic(&nic, groups.iter().map(|g| g.id.clone()).collect())
        .ok_or(ApiError::InternalError)?;
    nics.insert(nic.id.clone(), me);
    for n in nics.into_values() {
        eng.upsert_nic(n).map_err(|_| ApiError::InternalError)?;
    }
    let packet = engine::Packet {
        direction,
        protocol,
        local_ip,
        remote_ip,
        local_port,
        remote_port,
        reply,
    };
    let ex = eng
        .explain(&nic.id, &packet)
        .map_err(|_| ApiError::InternalError)?;
    Ok(explanation_reply(&ex, proposed))
}

fn rule_info(r: &engine::RuleInfo) -> Value {
    json!({
        "SecurityGroupId": r.group_id,
        "SecurityGroupRuleId": r.rule_id,
        "Priority": r.priority,
        "Policy": if r.policy == engine::Policy::Accept { "Accept" } else { "Drop" },
        "NicType": r.nic_type.as_str(),
        "Rule": r.text,
    })
}

fn explanation_reply(ex: &engine::Explanation, proposed: bool) -> Reply {
    let decided = match &ex.decided_by {
        engine::DecidedBy::Rule(r) => {
            let mut v = rule_info(r);
            v["Type"] = json!("Rule");
            v
        }
        engine::DecidedBy::Default {
            direction,
            policy,
            enterprise_group,
        } => json!({
            "Type": "Default",
            "Direction": direction.as_str(),
            "Policy": if *policy == engine::Policy::Accept { "Accept" } else { "Drop" },
            "EnterpriseSecurityGroupId": enterprise_group.clone().unwrap_or_default(),
        }),
        engine::DecidedBy::InnerAccess { group_id } => json!({
            "Type": "InnerAccess",
            "SecurityGroupId": group_id,
        }),
    };
    let passed: Vec<Value> = ex
        .passed_over
        .iter()
        .map(|p| {
            let mut v = rule_info(&p.rule);
            v["Mismatch"] = json!(p.mismatch.as_str());
            v["Reason"] = json!(p.why);
            v
        })
        .collect();
    let mut reply = Reply::new();
    reply.insert("NetworkInterfaceId".into(), json!(ex.nic_id));
    reply.insert(
        "Verdict".into(),
        json!(if ex.verdict == engine::Policy::Accept {
            "Accept"
        } else {
            "Drop"
        }),
    );
    reply.insert("Reply".into(), json!(ex.reply));
    reply.insert("WhatIf".into(), json!(proposed));
    reply.insert("Summary".into(), json!(ex.summary));
    reply.insert("DecidedBy".into(), decided);
    reply.insert(
        "PassedOverRules".into(),
        crate::service::wrap_list("PassedOverRule", passed),
    );
    reply.insert("Explanation".into(), json!(ex.to_text()));
    reply
}
