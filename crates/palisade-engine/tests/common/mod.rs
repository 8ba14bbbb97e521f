//! Builders shared by the integration tests.
#![allow(dead_code)]

use palisade_engine::*;

pub fn ip(s: &str) -> u32 {
    parse_ipv4(s).expect("ip")
}

pub fn cidr(s: &str) -> Cidr4 {
    Cidr4::parse(s).expect("cidr")
}

/// An intranet rule with no source ports and no local CIDR.
pub fn rule(
    id: &str,
    direction: Direction,
    protocol: Protocol,
    ports: &str,
    peer: Peer,
    policy: Policy,
    priority: u8,
) -> Rule {
    Rule {
        rule_id: id.to_string(),
        group_id: String::new(),
        direction,
        protocol,
        port_range: PortRange::parse(ports).expect("ports"),
        source_port_range: None,
        peer,
        local_cidr: None,
        policy,
        priority,
        nic_type: NicType::Intranet,
    }
}

pub fn from(s: &str) -> Peer {
    Peer::Cidr(cidr(s))
}

pub fn group_peer(s: &str) -> Peer {
    Peer::Group(s.to_string())
}

pub fn vpc_group(id: &str, rules: Vec<Rule>) -> GroupSpec {
    GroupSpec {
        id: id.to_string(),
        kind: GroupKind::Normal,
        vpc_id: Some("vpc-1".to_string()),
        inner_access_accept: false,
        rules,
    }
}

pub fn classic_group(id: &str, rules: Vec<Rule>) -> GroupSpec {
    GroupSpec {
        vpc_id: None,
        ..vpc_group(id, rules)
    }
}

pub fn nic(id: &str, groups: &[&str], private: &str, public: Option<&str>) -> Nic {
    Nic {
        id: id.to_string(),
        groups: groups.iter().map(|g| g.to_string()).collect(),
        private_ip: ip(private),
        public_ip: public.map(ip),
    }
}

pub fn pkt(
    direction: Direction,
    protocol: u8,
    local: &str,
    remote: &str,
    lport: u16,
    rport: u16,
) -> Packet {
    Packet {
        direction,
        protocol,
        local_ip: ip(local),
        remote_ip: ip(remote),
        local_port: lport,
        remote_port: rport,
        reply: false,
    }
}

pub fn tcp_in(local: &str, remote: &str, lport: u16) -> Packet {
    pkt(
        Direction::Ingress,
        ipproto::TCP,
        local,
        remote,
        lport,
        40000,
    )
}

pub fn tcp_out(local: &str, remote: &str, rport: u16) -> Packet {
    pkt(Direction::Egress, ipproto::TCP, local, remote, 40000, rport)
}

/// The rule id that decided (looking through replies), or "" for none.
pub fn decider_id(e: &Engine, nic: &str, v: &Verdict) -> String {
    match v.reason.basis() {
        Basis::Rule(r) => e.resolve(nic, r).expect("resolve").1.rule_id.clone(),
        Basis::Default => String::new(),
        Basis::InnerAccess { .. } => "<inner>".to_string(),
    }
}
