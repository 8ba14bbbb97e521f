//! The reply of `DescribeEnforcementState` in the engine's terms, and the engine built
//! from it (the agent's own model of what the kernel must do).

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use palisade_engine as engine;
use serde_json::Value;

/// One protected interface as the server describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NicState {
    pub id: String,
    pub instance_id: String,
    pub private_ip: Ipv4Addr,
    pub public_ip: Option<Ipv4Addr>,
    /// Its groups, in the interface's order.
    pub groups: Vec<String>,
}

/// Everything the agent enforces, at one revision.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct EnforcementState {
    pub revision: u64,
    pub nics: Vec<NicState>,
    /// The groups of the interfaces, with their rules.
    pub groups: BTreeMap<String, engine::GroupSpec>,
    /// Private addresses of the members of those groups and of every group their
    /// rules name.
    pub members: BTreeMap<String, BTreeSet<Ipv4Addr>>,
    /// Rules that could not be enforced (IPv6 or prefix-list peers, unreadable fields):
    /// `(group, rule id, why)`.
    pub skipped: Vec<(String, String, String)>,
}

fn list<'a>(v: &'a Value, outer: &str, inner: &str) -> &'a [Value] {
    v[outer][inner].as_array().map(Vec::as_slice).unwrap_or(&[])
}

fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or("").trim()
}

/// A stored rule (as `DescribeSecurityGroupAttribute` renders it) in the engine's terms.
pub fn parse_permission(group_id: &str, p: &Value) -> Result<engine::Rule, String> {
    let direction = match text(p, "Direction").to_ascii_lowercase().as_str() {
        "ingress" => engine::Direction::Ingress,
        "egress" => engine::Direction::Egress,
        d => return Err(format!("direction {d:?}")),
    };
    let protocol: engine::Protocol = text(p, "IpProtocol")
        .parse()
        .map_err(|e: engine::ParseError| e.to_string())?;
    let port_range = match text(p, "PortRange") {
        "" => engine::PortRange::ALL,
        s => engine::PortRange::parse(s).map_err(|e| e.to_string())?,
    };
    let source_port_range = match text(p, "SourcePortRange") {
        "" => None,
        s => Some(engine::PortRange::parse(s).map_err(|e| e.to_string())?),
    };
    let policy = match text(p, "Policy").to_ascii_lowercase().as_str() {
        "accept" | "allow" | "" => engine::Policy::Accept,
        "drop" => engine::Policy::Drop,
        x => return Err(format!("policy {x:?}")),
    };
    let priority = match &p["Priority"] {
        Value::Number(n) => n.as_u64().unwrap_or(0),
        Value::String(s) if s.is_empty() => 1,
        Value::String(s) => s.trim().parse().unwrap_or(0),
        Value::Null => 1,
        _ => 0,
    };
    if !(1..=100).contains(&priority) {
        return Err(format!("priority {priority}"));
    }
    let nic_type = match text(p, "NicType").to_ascii_lowercase().as_str() {
        "internet" => engine::NicType::Internet,
        _ => engine::NicType::Intranet,
    };
    let (peer_cidr, peer_group, local) = match direction {
        engine::Direction::Ingress => (
            text(p, "SourceCidrIp"),
            text(p, "SourceGroupId"),
            text(p, "DestCidrIp"),
        ),
        engine::Direction::Egress => (
            text(p, "DestCidrIp"),
            text(p, "DestGroupId"),
            text(p, "SourceCidrIp"),
        ),
    };
    let peer = if !peer_cidr.is_empty() {
        engine::Peer::Cidr(engine::Cidr4::parse(peer_cidr).map_err(|e| e.to_string())?)
    } else if !peer_group.is_empty() {
        engine::Peer::Group(peer_group.to_string())
    } else {
        return Err("no IPv4 peer (IPv6 or prefix list)".into());
    };
    let local_cidr = match local {
        "" => None,
        s => Some(engine::Cidr4::parse(s).map_err(|e| e.to_string())?),
    };
    Ok(engine::Rule {
        rule_id: text(p, "SecurityGroupRuleId").to_string(),
        group_id: group_id.to_string(),
        direction,
        protocol,
        port_range,
        source_port_range,
        peer,
        local_cidr,
        policy,
        priority: priority as u8,
        nic_type,
    })
}

impl EnforcementState {
    /// Reads the JSON reply of `DescribeEnforcementState`.
    pub fn from_json(v: &Value) -> Result<EnforcementState, String> {
        let revision = v["Revision"]
            .as_u64()
            .ok_or_else(|| "reply without Revision".to_string())?;
        let mut st = EnforcementState {
            revision,
            ..EnforcementState::default()
        };
        for n in list(v, "NetworkInterfaces", "NetworkInterface") {
            let id = text(n, "NetworkInterfaceId").to_string();
            let private_ip: Ipv4Addr = text(n, "PrivateIpAddress")
                .parse()
                .map_err(|_| format!("{id}: bad PrivateIpAddress"))?;
            let public_ip = text(n, "PublicIpAddress").parse().ok();
            let groups = list(n, "SecurityGroupIds", "SecurityGroupId")
                .iter()
                .filter_map(|g| g.as_str().map(str::to_string))
                .collect();
            st.nics.push(NicState {
                id,
                instance_id: text(n, "InstanceId").to_string(),
                private_ip,
                public_ip,
                groups,
            });
        }
        for g in list(v, "SecurityGroups", "SecurityGroup") {
            let id = text(g, "SecurityGroupId").to_string();
            let kind = if text(g, "SecurityGroupType").eq_ignore_ascii_case("enterprise") {
                engine::GroupKind::Enterprise
            } else {
                engine::GroupKind::Normal
            };
            let vpc = text(g, "VpcId");
            let inner = text(g, "InnerAccessPolicy");
            let mut rules = Vec::new();
            for p in list(g, "Permissions", "Permission") {
                match parse_permission(&id, p) {
                    Ok(r) => rules.push(r),
                    Err(why) => st.skipped.push((
                        id.clone(),
                        text(p, "SecurityGroupRuleId").to_string(),
                        why,
                    )),
                }
            }
            st.groups.insert(
                id.clone(),
                engine::GroupSpec {
                    id,
                    kind,
                    vpc_id: (!vpc.is_empty()).then(|| vpc.to_string()),
                    inner_access_accept: kind == engine::GroupKind::Normal
                        && !inner.eq_ignore_ascii_case("drop"),
                    rules,
                },
            );
        }
        for s in list(v, "MemberSets", "MemberSet") {
            let id = text(s, "SecurityGroupId").to_string();
            let ips = list(s, "IpAddresses", "IpAddress")
                .iter()
                .filter_map(|a| a.as_str()?.trim().parse().ok())
                .collect();
            st.members.insert(id, ips);
        }
        Ok(st)
    }

    pub fn nic(&self, id: &str) -> Option<&NicState> {
        self.nics.iter().find(|n| n.id == id)
    }

    /// The decision engine for this state: the groups, the protected interfaces, and
    /// one stand-in interface per (group, member address) so that group peers and
    /// inner access see the members.
    pub fn engine(&self) -> engine::Engine {
        let mut e = engine::Engine::new();
        for g in self.groups.values() {
            // Rules were checked on parsing; a group the engine still rejects is left
            // out (its rules then match nothing).
            let _ = e.upsert_group(g.clone());
        }
        for n in &self.nics {
            let _ = e.upsert_nic(engine::Nic {
                id: n.id.clone(),
                groups: n.groups.clone(),
                private_ip: u32::from(n.private_ip),
                public_ip: n.public_ip.map(u32::from),
            });
        }
        for (gid, ips) in &self.members {
            for ip in ips {
                let own = self
                    .nics
                    .iter()
                    .any(|n| n.private_ip == *ip && n.groups.contains(gid));
                if own {
                    continue;
                }
                let _ = e.upsert_nic(engine::Nic {
                    id: format!("member:{gid}:{ip}"),
                    groups: vec![gid.clone()],
                    private_ip: u32::from(*ip),
                    public_ip: None,
                });
            }
        }
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    pub fn sample() -> Value {
        json!({
            "Revision": 7,
            "NetworkInterfaces": {"NetworkInterface": [{
                "NetworkInterfaceId": "eni-1", "InstanceId": "i-1",
                "PrivateIpAddress": "192.168.0.10", "PublicIpAddress": "",
                "SecurityGroupIds": {"SecurityGroupId": ["sg-web"]}
            }]},
            "SecurityGroups": {"SecurityGroup": [{
                "SecurityGroupId": "sg-web", "SecurityGroupType": "normal", "VpcId": "vpc-1",
                "InnerAccessPolicy": "Accept",
                "Permissions": {"Permission": [
                    {"SecurityGroupRuleId": "sgr-a", "Direction": "ingress", "IpProtocol": "TCP",
                     "PortRange": "1/65535", "SourcePortRange": "", "Policy": "Accept", "Priority": 1,
                     "NicType": "intranet", "SourceCidrIp": "0.0.0.0/0", "SourceGroupId": "",
                     "DestCidrIp": "", "DestGroupId": ""},
                    {"SecurityGroupRuleId": "sgr-b", "Direction": "ingress", "IpProtocol": "TCP",
                     "PortRange": "1/65535", "SourcePortRange": "", "Policy": "Drop", "Priority": 1,
                     "NicType": "intranet", "SourceCidrIp": "", "SourceGroupId": "sg-db",
                     "DestCidrIp": "", "DestGroupId": ""},
                    {"SecurityGroupRuleId": "sgr-c", "Direction": "egress", "IpProtocol": "UDP",
                     "PortRange": "53/53", "SourcePortRange": "1024/65535", "Policy": "Drop",
                     "Priority": "5", "NicType": "intranet", "SourceCidrIp": "192.168.0.10/32",
                     "SourceGroupId": "", "DestCidrIp": "10.0.0.0/8", "DestGroupId": ""},
                    {"SecurityGroupRuleId": "sgr-v6", "Direction": "ingress", "IpProtocol": "TCP",
                     "PortRange": "22/22", "Policy": "Accept", "Priority": 1, "NicType": "intranet",
                     "SourceCidrIp": "", "Ipv6SourceCidrIp": "::/0", "SourceGroupId": ""}
                ]}
            }]},
            "MemberSets": {"MemberSet": [
                {"SecurityGroupId": "sg-db", "IpAddresses": {"IpAddress": ["192.168.0.11"]}},
                {"SecurityGroupId": "sg-web", "IpAddresses": {"IpAddress": ["192.168.0.10", "192.168.0.12"]}}
            ]}
        })
    }

    #[test]
    fn parses_the_reply() {
        let st = EnforcementState::from_json(&sample()).unwrap();
        assert_eq!(st.revision, 7);
        assert_eq!(st.nics[0].private_ip, Ipv4Addr::new(192, 168, 0, 10));
        assert_eq!(st.nics[0].public_ip, None);
        let g = &st.groups["sg-web"];
        assert_eq!(g.rules.len(), 3);
        assert!(g.inner_access_accept);
        assert_eq!(g.rules[1].peer, engine::Peer::Group("sg-db".into()));
        let c = &g.rules[2];
        assert_eq!(c.priority, 5);
        assert_eq!(
            c.source_port_range,
            Some(engine::PortRange::new(1024, 65535))
        );
        assert_eq!(c.local_cidr.unwrap().to_string(), "192.168.0.10/32");
        assert_eq!(c.peer, engine::Peer::Cidr("10.0.0.0/8".parse().unwrap()));
        assert_eq!(st.skipped.len(), 1);
        assert_eq!(st.members["sg-web"].len(), 2);
    }

    #[test]
    fn engine_sees_members() {
        let st = EnforcementState::from_json(&sample()).unwrap();
        let e = st.engine();
        let p = |remote: &str, port: u16| engine::Packet {
            direction: engine::Direction::Ingress,
            protocol: engine::ipproto::TCP,
            local_ip: engine::parse_ipv4("192.168.0.10").unwrap(),
            remote_ip: engine::parse_ipv4(remote).unwrap(),
            local_port: port,
            remote_port: 40000,
            reply: false,
        };
        // sg-db member: the drop wins the tie with the accept-all.
        assert_eq!(
            e.decide("eni-1", &p("192.168.0.11", 80)).unwrap().action,
            engine::Policy::Drop
        );
        assert_eq!(
            e.decide("eni-1", &p("10.9.9.9", 80)).unwrap().action,
            engine::Policy::Accept
        );
        // Inner access from the other member of sg-web.
        let mut udp = p("192.168.0.12", 9);
        udp.protocol = engine::ipproto::UDP;
        assert_eq!(
            e.decide("eni-1", &udp).unwrap().action,
            engine::Policy::Accept
        );
    }
}
