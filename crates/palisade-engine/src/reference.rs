//! A deliberately simple reference evaluator, written straight from the semantics
//! (see the crate docs): gather the NIC's rules of the direction, sort them, scan
//! linearly. It shares only the input types with the engine (none of its matching
//! helpers) and exists to check the engine in tests and to compare speed in the
//! benchmark. Not for production use.

use std::collections::HashMap;

use crate::types::{Direction, GroupKind, GroupSpec, Nic, NicType, Packet, Peer, Policy, Protocol};

/// What decided, by ids.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RefDecider {
    Rule {
        group_id: String,
        rule_index: usize,
        rule_id: String,
    },
    Default,
    InnerAccess {
        group_id: String,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefDecision {
    pub action: Policy,
    /// Judged as a reply (through the reversed packet).
    pub reply: bool,
    pub decider: RefDecider,
    /// (group id, rule index) of the rules scanned before the decider.
    pub passed_over: Vec<(String, usize)>,
}

/// The world as plain maps. Membership is an index rebuilt from scratch after
/// every NIC change.
#[derive(Clone, Debug, Default)]
pub struct ReferenceWorld {
    pub groups: HashMap<String, GroupSpec>,
    pub nics: HashMap<String, Nic>,
    /// group id → (nic id, private ip) of its members.
    members: HashMap<String, Vec<(String, u32)>>,
}

fn in_cidr(ip: u32, addr: u32, len: u8) -> bool {
    if len == 0 {
        return true;
    }
    let len = len.min(32) as u32;
    (ip >> (32 - len)) == (addr >> (32 - len))
}

fn proto_matches(rule: Protocol, proto: u8) -> bool {
    match rule {
        Protocol::All => true,
        Protocol::Tcp => proto == 6,
        Protocol::Udp => proto == 17,
        Protocol::Icmp => proto == 1,
        Protocol::Gre => proto == 47,
        Protocol::Icmpv6 => proto == 58,
    }
}

fn dedup(groups: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for g in groups {
        if !out.contains(g) {
            out.push(g.clone());
        }
    }
    out
}

impl ReferenceWorld {
    pub fn new(groups: Vec<GroupSpec>, nics: Vec<Nic>) -> ReferenceWorld {
        let mut w = ReferenceWorld {
            groups: groups.into_iter().map(|g| (g.id.clone(), g)).collect(),
            nics: nics.into_iter().map(|n| (n.id.clone(), n)).collect(),
            members: HashMap::new(),
        };
        w.rebuild();
        w
    }

    fn rebuild(&mut self) {
        self.members.clear();
        for n in self.nics.values() {
            for g in dedup(&n.groups) {
                self.members
                    .entry(g)
                    .or_default()
                    .push((n.id.clone(), n.private_ip));
            }
        }
    }

    pub fn upsert_group(&mut self, g: GroupSpec) {
        self.groups.insert(g.id.clone(), g);
    }

    pub fn remove_group(&mut self, id: &str) -> bool {
        self.groups.remove(id).is_some()
    }

    pub fn upsert_nic(&mut self, n: Nic) {
        self.nics.insert(n.id.clone(), n);
        self.rebuild();
    }

    pub fn remove_nic(&mut self, id: &str) -> bool {
        let had = self.nics.remove(id).is_some();
        self.rebuild();
        had
    }

    fn is_member(&self, group: &str, ip: u32, except_nic: Option<&str>) -> bool {
        self.members.get(group).is_some_and(|m| {
            m.iter()
                .any(|(nid, mip)| *mip == ip && Some(nid.as_str()) != except_nic)
        })
    }

    /// Decide; `None` for an unknown NIC.
    pub fn decide(&self, nic_id: &str, p: &Packet) -> Option<RefDecision> {
        let nic = self.nics.get(nic_id)?;
        if p.reply {
            // The connection was opened by the reversed packet: other direction, the
            // source and destination swapped, i.e. same local/remote fields.
            let forward = Packet {
                direction: match p.direction {
                    Direction::Ingress => Direction::Egress,
                    Direction::Egress => Direction::Ingress,
                },
                reply: false,
                ..*p
            };
            let mut d = self.new_connection(nic, &forward);
            d.reply = true;
            return Some(d);
        }
        Some(self.new_connection(nic, p))
    }

    fn new_connection(&self, nic: &Nic, p: &Packet) -> RefDecision {
        let groups = dedup(&nic.groups);
        let on_public = nic.public_ip == Some(p.local_ip);

        if !on_public {
            for gid in &groups {
                if let Some(g) = self.groups.get(gid) {
                    if g.kind == GroupKind::Normal
                        && g.inner_access_accept
                        && self.is_member(gid, p.remote_ip, Some(&nic.id))
                    {
                        return RefDecision {
                            action: Policy::Accept,
                            reply: false,
                            decider: RefDecider::InnerAccess {
                                group_id: gid.clone(),
                            },
                            passed_over: Vec::new(),
                        };
                    }
                }
            }
        }

        let mut candidates = Vec::new();
        for (pos, gid) in groups.iter().enumerate() {
            if let Some(g) = self.groups.get(gid) {
                for (i, r) in g.rules.iter().enumerate() {
                    if r.direction == p.direction {
                        let policy_rank = if r.policy == Policy::Drop { 0 } else { 1 };
                        candidates.push(((r.priority, policy_rank, pos, i), g, i));
                    }
                }
            }
        }
        candidates.sort_by_key(|c| c.0);

        let mut passed_over = Vec::new();
        for (_, g, i) in candidates {
            let r = &g.rules[i];
            let applies = g.vpc_id.is_some()
                || (on_public && r.nic_type == NicType::Internet)
                || (!on_public && r.nic_type == NicType::Intranet);
            let (dst_port, src_port) = match p.direction {
                Direction::Ingress => (p.local_port, p.remote_port),
                Direction::Egress => (p.remote_port, p.local_port),
            };
            let ports_ok = match r.protocol {
                Protocol::Tcp | Protocol::Udp => {
                    r.port_range.from <= dst_port
                        && dst_port <= r.port_range.to
                        && r.source_port_range
                            .is_none_or(|s| s.from <= src_port && src_port <= s.to)
                }
                _ => true,
            };
            let peer_ok = match &r.peer {
                Peer::Cidr(c) => in_cidr(p.remote_ip, c.addr, c.prefix_len),
                Peer::Group(other) => !on_public && self.is_member(other, p.remote_ip, None),
            };
            let local_ok = r
                .local_cidr
                .is_none_or(|c| in_cidr(p.local_ip, c.addr, c.prefix_len));
            if applies && proto_matches(r.protocol, p.protocol) && ports_ok && peer_ok && local_ok {
                return RefDecision {
                    action: r.policy,
                    reply: false,
                    decider: RefDecider::Rule {
                        group_id: g.id.clone(),
                        rule_index: i,
                        rule_id: r.rule_id.clone(),
                    },
                    passed_over,
                };
            }
            passed_over.push((g.id.clone(), i));
        }

        let any_enterprise = groups.iter().any(|gid| {
            self.groups
                .get(gid)
                .is_some_and(|g| g.kind == GroupKind::Enterprise)
        });
        let action = match p.direction {
            Direction::Ingress => Policy::Drop,
            Direction::Egress if any_enterprise => Policy::Drop,
            Direction::Egress => Policy::Accept,
        };
        RefDecision {
            action,
            reply: false,
            decider: RefDecider::Default,
            passed_over,
        }
    }
}
