//! From an [`EnforcementState`] to the desired content of the agent's nftables table
//! (a [`Plan`]): sets of member addresses, one chain per group, direction, view and
//! priority tier, one dispatch chain per protected interface, and the two base chains.
//!
//! # Layout (table `inet palisade` by default)
//!
//! ```text
//! chain input  { type filter hook input  priority filter; policy accept;
//!                iifname "eth0" jump nic-<eni>-in }           one rule per binding
//! chain output { type filter hook output priority filter; policy accept;
//!                oifname "eth0" jump nic-<eni>-out }
//! set m-<sg>   { type ipv4_addr; }                             members of a named group
//! chain <sg>-in-<ppp>-<drop|accept>                            a group's ingress rules of
//!                                                              priority ppp and that policy
//! chain <sg>-in-pub-<ppp>-<drop|accept>                        the same for packets on the
//!                                                              NIC's public address
//! chain nic-<eni>-in {
//!     ct state established,related accept                     stateful
//!     meta l4proto tcp ct state new tcp flags & (fin|syn|rst|ack) != syn drop
//!     meta nfproto ipv6 drop                                   rules are IPv4: the default
//!     ip daddr <public> jump nic-<eni>-in-pub                  only with a public address
//!     ip saddr != <own> ip saddr @m-<sg> accept                inner access (normal groups
//!                                                              with InnerAccessPolicy Accept)
//!     jump <sg1>-in-001-drop                                   tiers by priority, drop
//!     jump <sg2>-in-001-drop                                   before accept, then group order
//!     jump <sg1>-in-001-accept
//!     ...
//!     drop                                                     ingress default
//! }
//! chain nic-<eni>-out { ... same with saddr/daddr swapped ...; accept (or drop when any
//!                       group of the NIC is enterprise) }
//! ```
//!
//! All rules in one tier chain carry the same verdict, so their order inside the chain
//! does not matter: the chain is updated rule by rule (add, delete by handle), and a
//! group's tier chains are shared by every interface in the group. The interface chains
//! carry the order; they are small and rewritten whole when they change.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::Ipv4Addr;

use palisade_engine::{
    Cidr4, Direction, GroupKind, GroupSpec, NicType, Peer, Policy, Protocol, Rule,
};

use crate::state::{EnforcementState, NicState};

/// What one chain must contain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChainBody {
    /// A base chain on a hook (`input` or `output`), rules in order.
    Base {
        hook: &'static str,
        rules: Vec<String>,
    },
    /// Rules in order; rewritten whole (flush + add) when it changes.
    Ordered(Vec<String>),
    /// Rules whose order does not matter, by key (the key is in the rule's comment);
    /// changed rule by rule.
    Unordered(BTreeMap<String, String>),
}

/// The desired table.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Plan {
    pub sets: BTreeMap<String, BTreeSet<Ipv4Addr>>,
    pub chains: BTreeMap<String, ChainBody>,
}

/// A local interface bound to a NIC of the state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BoundNic<'a> {
    pub iface: String,
    pub nic: &'a NicState,
}

/// Keeps `[A-Za-z0-9_-]`, replaces anything else (ids come from the server).
pub fn sanitize(id: &str) -> String {
    let s: String = id
        .chars()
        .take(80)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.starts_with(|c: char| c.is_ascii_alphabetic()) {
        s
    } else {
        format!("x{s}")
    }
}

pub fn set_name(group: &str) -> String {
    format!("m-{}", sanitize(group))
}

fn dir_word(d: Direction) -> &'static str {
    match d {
        Direction::Ingress => "in",
        Direction::Egress => "out",
    }
}

/// Tier chain of a group: direction, view (public address or not), priority, policy.
pub fn tier_chain(group: &str, d: Direction, public: bool, priority: u8, policy: Policy) -> String {
    format!(
        "{}-{}{}-{:03}-{}",
        sanitize(group),
        dir_word(d),
        if public { "-pub" } else { "" },
        priority,
        policy.as_str()
    )
}

pub fn nic_chain(nic: &str, d: Direction, public: bool) -> String {
    format!(
        "nic-{}-{}{}",
        sanitize(nic),
        dir_word(d),
        if public { "-pub" } else { "" }
    )
}

fn net(c: Cidr4) -> Option<String> {
    match c.prefix_len {
        0 => None,
        n if n >= 32 => Some(Ipv4Addr::from(c.addr).to_string()),
        n => Some(format!("{}/{}", Ipv4Addr::from(c.first()), n)),
    }
}

fn ports(p: palisade_engine::PortRange) -> String {
    if p.from == p.to {
        p.from.to_string()
    } else {
        format!("{}-{}", p.from, p.to)
    }
}

/// The nft match and verdict of one rule (without the comment).
pub fn rule_expr(r: &Rule) -> String {
    let (peer_side, local_side) = match r.direction {
        Direction::Ingress => ("saddr", "daddr"),
        Direction::Egress => ("daddr", "saddr"),
    };
    let mut s = String::new();
    match &r.peer {
        Peer::Cidr(c) => {
            if let Some(n) = net(*c) {
                let _ = write!(s, "ip {peer_side} {n} ");
            }
        }
        Peer::Group(g) => {
            let _ = write!(s, "ip {peer_side} @{} ", set_name(g));
        }
    }
    if let Some(n) = r.local_cidr.and_then(net) {
        let _ = write!(s, "ip {local_side} {n} ");
    }
    match r.protocol {
        Protocol::Tcp | Protocol::Udp => {
            let name = if r.protocol == Protocol::Tcp {
                "tcp"
            } else {
                "udp"
            };
            let dst = r.effective_dst_ports();
            let src = r.effective_src_ports();
            if dst.is_all() && src.is_all() {
                let _ = write!(s, "meta l4proto {name} ");
            }
            if !dst.is_all() {
                let _ = write!(s, "{name} dport {} ", ports(dst));
            }
            if !src.is_all() {
                let _ = write!(s, "{name} sport {} ", ports(src));
            }
        }
        Protocol::Icmp => s.push_str("meta l4proto icmp "),
        Protocol::Gre => s.push_str("meta l4proto gre "),
        Protocol::Icmpv6 => s.push_str("meta l4proto ipv6-icmp "),
        Protocol::All => {}
    }
    s.push_str("counter ");
    s.push_str(r.policy.as_str());
    s
}

/// Does the rule belong in the given view of its group?
fn in_view(g: &GroupSpec, r: &Rule, public: bool) -> bool {
    if public && matches!(r.peer, Peer::Group(_)) {
        // Group peers are private addresses: never on the public address.
        return false;
    }
    if g.vpc_id.is_some() {
        return true;
    }
    (r.nic_type == NicType::Internet) == public
}

/// (priority, 0 for drop / 1 for accept): the order of evaluation.
type Tier = (u8, u8);

fn tier_key(r: &Rule) -> Tier {
    let rank = if r.policy == Policy::Drop { 0 } else { 1 };
    (r.priority, rank)
}

/// The tier chains of one group, direction and view: tier → chain name → rules.
fn group_tiers(
    g: &GroupSpec,
    d: Direction,
    public: bool,
) -> BTreeMap<Tier, (String, BTreeMap<String, String>)> {
    let mut out: BTreeMap<Tier, (String, BTreeMap<String, String>)> = BTreeMap::new();
    for (i, r) in g.rules.iter().enumerate() {
        if r.direction != d || !in_view(g, r, public) {
            continue;
        }
        let tier = tier_key(r);
        let entry = out.entry(tier).or_insert_with(|| {
            (
                tier_chain(&g.id, d, public, r.priority, r.policy),
                BTreeMap::new(),
            )
        });
        let base = if r.rule_id.is_empty() {
            format!("rule{i}")
        } else {
            sanitize(&r.rule_id)
        };
        let mut key = base.clone();
        let mut n = 1;
        while entry.1.contains_key(&key) {
            n += 1;
            key = format!("{base}.{n}");
        }
        let text = format!("{} comment \"{}\"", rule_expr(r), key);
        entry.1.insert(key, text);
    }
    out
}

/// The desired table for the state and the bindings.
pub fn render(st: &EnforcementState, bound: &[BoundNic<'_>]) -> Plan {
    let mut plan = Plan::default();
    let mut input = Vec::new();
    let mut output = Vec::new();
    let mut rendered_nics: BTreeSet<&str> = BTreeSet::new();
    let mut wanted_sets: BTreeSet<String> = BTreeSet::new();

    for b in bound {
        let nic = b.nic;
        input.push(format!(
            "iifname \"{}\" jump {}",
            b.iface,
            nic_chain(&nic.id, Direction::Ingress, false)
        ));
        output.push(format!(
            "oifname \"{}\" jump {}",
            b.iface,
            nic_chain(&nic.id, Direction::Egress, false)
        ));
        if !rendered_nics.insert(nic.id.as_str()) {
            continue;
        }
        // The NIC's defined groups, in its order, without repeats.
        let mut groups: Vec<&GroupSpec> = Vec::new();
        for gid in &nic.groups {
            if let Some(g) = st.groups.get(gid) {
                if !groups.iter().any(|x| x.id == g.id) {
                    groups.push(g);
                }
            }
        }
        let enterprise = groups.iter().any(|g| g.kind == GroupKind::Enterprise);
        for d in [Direction::Ingress, Direction::Egress] {
            let (peer_side, local_side) = match d {
                Direction::Ingress => ("saddr", "daddr"),
                Direction::Egress => ("daddr", "saddr"),
            };
            let default = match d {
                Direction::Ingress => "drop",
                Direction::Egress if enterprise => "drop",
                Direction::Egress => "accept",
            };
            let views: &[bool] = if nic.public_ip.is_some() {
                &[false, true]
            } else {
                &[false]
            };
            for &public in views {
                let mut rules = Vec::new();
                if !public {
                    rules.push("ct state established,related accept".to_string());
                    rules.push(
                        "meta l4proto tcp ct state new tcp flags & (fin|syn|rst|ack) != syn drop"
                            .to_string(),
                    );
                    // Rules are IPv4: IPv6 meets the default verdict.
                    rules.push(format!("meta nfproto ipv6 {default}"));
                    if let Some(p) = nic.public_ip {
                        rules.push(format!(
                            "ip {local_side} {p} jump {}",
                            nic_chain(&nic.id, d, true)
                        ));
                    }
                    for g in &groups {
                        if g.kind == GroupKind::Normal && g.inner_access_accept {
                            let set = set_name(&g.id);
                            wanted_sets.insert(g.id.clone());
                            rules.push(format!(
                                "ip {peer_side} != {} ip {peer_side} @{set} accept",
                                nic.private_ip
                            ));
                        }
                    }
                }
                // Tiers of every group, merged: priority, drop before accept, group order.
                let mut jumps: BTreeMap<Tier, Vec<String>> = BTreeMap::new();
                for g in &groups {
                    for r in &g.rules {
                        if let Peer::Group(other) = &r.peer {
                            if r.direction == d && in_view(g, r, public) {
                                wanted_sets.insert(other.clone());
                            }
                        }
                    }
                    for (tier, (name, body)) in group_tiers(g, d, public) {
                        jumps.entry(tier).or_default().push(format!("jump {name}"));
                        plan.chains.insert(name, ChainBody::Unordered(body));
                    }
                }
                rules.extend(jumps.into_values().flatten());
                rules.push(default.to_string());
                plan.chains
                    .insert(nic_chain(&nic.id, d, public), ChainBody::Ordered(rules));
            }
        }
    }
    plan.chains.insert(
        "input".into(),
        ChainBody::Base {
            hook: "input",
            rules: input,
        },
    );
    plan.chains.insert(
        "output".into(),
        ChainBody::Base {
            hook: "output",
            rules: output,
        },
    );
    for g in wanted_sets {
        let ips = st.members.get(&g).cloned().unwrap_or_default();
        plan.sets.insert(set_name(&g), ips);
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::EnforcementState;
    use serde_json::json;

    fn perm(
        id: &str,
        dir: &str,
        proto: &str,
        ports: &str,
        policy: &str,
        prio: u8,
    ) -> serde_json::Value {
        json!({"SecurityGroupRuleId": id, "Direction": dir, "IpProtocol": proto,
               "PortRange": ports, "SourcePortRange": "", "Policy": policy, "Priority": prio,
               "NicType": "intranet", "SourceCidrIp": "", "SourceGroupId": "",
               "DestCidrIp": "", "DestGroupId": ""})
    }

    fn state() -> EnforcementState {
        let mut a = perm("sgr-a", "ingress", "TCP", "1/65535", "Accept", 1);
        a["SourceCidrIp"] = json!("0.0.0.0/0");
        let mut b = perm("sgr-b", "ingress", "TCP", "1/65535", "Drop", 1);
        b["SourceGroupId"] = json!("sg-db");
        let mut c = perm("sgr-c", "ingress", "ICMP", "-1/-1", "Accept", 5);
        c["SourceCidrIp"] = json!("10.1.2.3/8");
        let mut d = perm("sgr-d", "egress", "UDP", "53/53", "Drop", 2);
        d["DestCidrIp"] = json!("192.168.0.11/32");
        d["SourcePortRange"] = json!("1000/2000");
        let mut e = perm("sgr-e", "ingress", "ALL", "-1/-1", "Accept", 1);
        e["SourceCidrIp"] = json!("192.168.0.0/24");
        let v = json!({
            "Revision": 3,
            "NetworkInterfaces": {"NetworkInterface": [{
                "NetworkInterfaceId": "eni-1", "InstanceId": "", "PrivateIpAddress": "192.168.0.10",
                "PublicIpAddress": "", "SecurityGroupIds": {"SecurityGroupId": ["sg-web", "sg-ent"]}}]},
            "SecurityGroups": {"SecurityGroup": [
                {"SecurityGroupId": "sg-web", "SecurityGroupType": "normal", "VpcId": "vpc-1",
                 "InnerAccessPolicy": "Accept", "Permissions": {"Permission": [a, b, c, d]}},
                {"SecurityGroupId": "sg-ent", "SecurityGroupType": "enterprise", "VpcId": "vpc-1",
                 "InnerAccessPolicy": "Drop", "Permissions": {"Permission": [e]}}
            ]},
            "MemberSets": {"MemberSet": [
                {"SecurityGroupId": "sg-db", "IpAddresses": {"IpAddress": ["192.168.0.11"]}},
                {"SecurityGroupId": "sg-web", "IpAddresses": {"IpAddress": ["192.168.0.10"]}},
                {"SecurityGroupId": "sg-ent", "IpAddresses": {"IpAddress": ["192.168.0.10"]}}
            ]}
        });
        EnforcementState::from_json(&v).unwrap()
    }

    #[test]
    fn layout() {
        let st = state();
        let plan = render(
            &st,
            &[BoundNic {
                iface: "eth0".into(),
                nic: &st.nics[0],
            }],
        );
        let ordered = |n: &str| match &plan.chains[n] {
            ChainBody::Ordered(r) => r.clone(),
            other => panic!("{other:?}"),
        };
        let nin = ordered("nic-eni-1-in");
        assert_eq!(
            nin,
            vec![
                "ct state established,related accept",
                "meta l4proto tcp ct state new tcp flags & (fin|syn|rst|ack) != syn drop",
                "meta nfproto ipv6 drop",
                "ip saddr != 192.168.0.10 ip saddr @m-sg-web accept",
                "jump sg-web-in-001-drop",
                "jump sg-web-in-001-accept",
                "jump sg-ent-in-001-accept",
                "jump sg-web-in-005-accept",
                "drop",
            ]
        );
        let nout = ordered("nic-eni-1-out");
        assert_eq!(
            nout.last().unwrap(),
            "drop",
            "enterprise: egress default drop"
        );
        assert!(nout.contains(&"jump sg-web-out-002-drop".to_string()));
        let tier = match &plan.chains["sg-web-in-001-drop"] {
            ChainBody::Unordered(m) => m.clone(),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            tier["sgr-b"],
            "ip saddr @m-sg-db tcp dport 1-65535 counter drop comment \"sgr-b\""
        );
        let icmp = match &plan.chains["sg-web-in-005-accept"] {
            ChainBody::Unordered(m) => m["sgr-c"].clone(),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            icmp,
            "ip saddr 10.0.0.0/8 meta l4proto icmp counter accept comment \"sgr-c\""
        );
        let udp = match &plan.chains["sg-web-out-002-drop"] {
            ChainBody::Unordered(m) => m["sgr-d"].clone(),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            udp,
            "ip daddr 192.168.0.11 udp dport 53 udp sport 1000-2000 counter drop comment \"sgr-d\""
        );
        let all = match &plan.chains["sg-ent-in-001-accept"] {
            ChainBody::Unordered(m) => m["sgr-e"].clone(),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            all,
            "ip saddr 192.168.0.0/24 counter accept comment \"sgr-e\""
        );
        // Sets: the named group and the inner-access group, not the enterprise one.
        assert_eq!(
            plan.sets.keys().cloned().collect::<Vec<_>>(),
            vec!["m-sg-db", "m-sg-web"]
        );
        match &plan.chains["input"] {
            ChainBody::Base { hook, rules } => {
                assert_eq!(*hook, "input");
                assert_eq!(
                    rules,
                    &vec!["iifname \"eth0\" jump nic-eni-1-in".to_string()]
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn public_view() {
        let mut st = state();
        st.nics[0].public_ip = Some(Ipv4Addr::new(192, 168, 0, 200));
        let plan = render(
            &st,
            &[BoundNic {
                iface: "eth0".into(),
                nic: &st.nics[0],
            }],
        );
        let ChainBody::Ordered(nin) = &plan.chains["nic-eni-1-in"] else {
            panic!()
        };
        assert_eq!(nin[3], "ip daddr 192.168.0.200 jump nic-eni-1-in-pub");
        let ChainBody::Ordered(pub_in) = &plan.chains["nic-eni-1-in-pub"] else {
            panic!()
        };
        // No group-peer rule on the public address, so sgr-b's tier does not appear.
        assert_eq!(
            pub_in,
            &vec![
                "jump sg-web-in-pub-001-accept",
                "jump sg-ent-in-pub-001-accept",
                "jump sg-web-in-pub-005-accept",
                "drop"
            ]
        );
    }

    #[test]
    fn nics_share_their_groups_chains() {
        let mut st = state();
        let mut other = st.nics[0].clone();
        other.id = "eni-2".into();
        other.private_ip = Ipv4Addr::new(192, 168, 0, 20);
        other.groups = vec!["sg-web".into()];
        st.nics.push(other);
        let plan = render(
            &st,
            &[
                BoundNic {
                    iface: "eth0".into(),
                    nic: &st.nics[0],
                },
                BoundNic {
                    iface: "eth1".into(),
                    nic: &st.nics[1],
                },
            ],
        );
        let tiers: Vec<&String> = plan
            .chains
            .keys()
            .filter(|k| k.starts_with("sg-web-in-"))
            .collect();
        assert_eq!(
            tiers,
            vec![
                "sg-web-in-001-accept",
                "sg-web-in-001-drop",
                "sg-web-in-005-accept"
            ]
        );
        let ChainBody::Ordered(second) = &plan.chains["nic-eni-2-in"] else {
            panic!()
        };
        assert!(second.contains(&"jump sg-web-in-001-drop".to_string()));
        assert!(second.contains(&"ip saddr != 192.168.0.20 ip saddr @m-sg-web accept".to_string()));
        assert_eq!(second.last().unwrap(), "drop");
        let ChainBody::Ordered(second_out) = &plan.chains["nic-eni-2-out"] else {
            panic!()
        };
        assert_eq!(
            second_out.last().unwrap(),
            "accept",
            "no enterprise group on eni-2"
        );
        let ChainBody::Base { rules, .. } = &plan.chains["input"] else {
            panic!()
        };
        assert_eq!(rules.len(), 2);
    }

    #[test]
    fn names_are_sanitized() {
        assert_eq!(sanitize("sg-abc"), "sg-abc");
        assert_eq!(sanitize("a b\"c"), "a_b_c");
        assert_eq!(sanitize("1x"), "x1x");
    }
}
