//! Human-friendly explanations (the slow path: allocates, sorts).

use std::fmt::Write as _;

use crate::compile::order_key;
use crate::engine::{Basis, Engine, EngineError, NicView};
use crate::types::{
    fmt_ipv4, Direction, GroupKind, GroupSpec, NicType, Packet, Peer, Policy, Rule,
};

/// A rule with its group, as shown in explanations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleInfo {
    pub group_id: String,
    pub rule_id: String,
    /// Index in the group's `rules`.
    pub rule_index: usize,
    pub priority: u8,
    pub policy: Policy,
    pub nic_type: NicType,
    /// e.g. `ingress TCP 22/22 from 10.0.0.0/8 accept prio 1`
    pub text: String,
}

impl RuleInfo {
    fn new(group_id: &str, index: usize, r: &Rule) -> RuleInfo {
        RuleInfo {
            group_id: group_id.to_string(),
            rule_id: r.rule_id.clone(),
            rule_index: index,
            priority: r.priority,
            policy: r.policy,
            nic_type: r.nic_type,
            text: r.render(),
        }
    }
}

/// Why a rule did not match (the first failing test, in this order).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mismatch {
    /// Classic group: an internet rule on the private address or an intranet rule
    /// on the public address.
    NicType,
    Protocol,
    DestPort,
    SourcePort,
    /// The remote address is outside the rule's CIDR.
    Peer,
    /// The remote address is not a member of the rule's peer group.
    PeerGroup,
    /// Group peers never match traffic on the public address.
    PeerGroupOnPublic,
    /// The local address is outside the rule's local CIDR (DestCidrIp for ingress,
    /// SourceCidrIp for egress).
    LocalCidr,
}

impl Mismatch {
    pub fn as_str(self) -> &'static str {
        match self {
            Mismatch::NicType => "nic_type",
            Mismatch::Protocol => "protocol",
            Mismatch::DestPort => "dest_port",
            Mismatch::SourcePort => "source_port",
            Mismatch::Peer => "peer",
            Mismatch::PeerGroup => "peer_group",
            Mismatch::PeerGroupOnPublic => "peer_group_on_public",
            Mismatch::LocalCidr => "local_cidr",
        }
    }
}

/// A rule evaluated ahead of the decider that did not match.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PassedOver {
    pub rule: RuleInfo,
    pub mismatch: Mismatch,
    /// e.g. `destination port 80 not in 22/22`
    pub why: String,
}

/// What decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecidedBy {
    Rule(RuleInfo),
    /// No rule matched. `enterprise_group` names the enterprise group that turned
    /// the egress default into drop.
    Default {
        direction: Direction,
        policy: Policy,
        enterprise_group: Option<String>,
    },
    InnerAccess {
        group_id: String,
    },
}

/// Owned explanation of a verdict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Explanation {
    pub nic_id: String,
    pub packet: Packet,
    pub verdict: Policy,
    /// The packet was a reply: judged as `evaluated` (the reversed packet) would be
    /// as a new connection ("established reply").
    pub reply: bool,
    /// The packet whose rules were evaluated (the packet itself, or its reverse).
    pub evaluated: Packet,
    /// The packet arrived on the NIC's public address.
    pub on_public_address: bool,
    pub decided_by: DecidedBy,
    /// One line, e.g. `no ingress rule matched: default drop`.
    pub summary: String,
    /// Rules evaluated ahead of the decider (all rules of the direction when the
    /// default applied, none for inner access), in evaluation order.
    pub passed_over: Vec<PassedOver>,
}

fn render_packet(p: &Packet) -> String {
    let proto = match p.protocol {
        6 => "TCP".to_string(),
        17 => "UDP".to_string(),
        1 => "ICMP".to_string(),
        47 => "GRE".to_string(),
        58 => "ICMPv6".to_string(),
        n => format!("proto {n}"),
    };
    let local = format!("{}:{}", fmt_ipv4(p.local_ip), p.local_port);
    let remote = format!("{}:{}", fmt_ipv4(p.remote_ip), p.remote_port);
    let (src, dst) = match p.direction {
        Direction::Ingress => (remote, local),
        Direction::Egress => (local, remote),
    };
    format!(
        "{} {} {} -> {}{}",
        p.direction.as_str(),
        proto,
        src,
        dst,
        if p.reply { " (reply)" } else { "" }
    )
}

/// A rule in evaluation order: (order key, NIC group position, rule index), group
/// id, group, rule index, rule.
type Ordered<'a> = ((u16, u8, usize), &'a str, &'a GroupSpec, usize, &'a Rule);

fn mismatch(
    engine: &Engine,
    g: &GroupSpec,
    r: &Rule,
    p: &Packet,
    on_public: bool,
) -> Option<(Mismatch, String)> {
    if !g.is_vpc() {
        match (on_public, r.nic_type) {
            (false, NicType::Internet) => {
                return Some((
                    Mismatch::NicType,
                    "internet rule does not apply to the private address".into(),
                ))
            }
            (true, NicType::Intranet) => {
                return Some((
                    Mismatch::NicType,
                    "intranet rule does not apply to the public address".into(),
                ))
            }
            _ => {}
        }
    }
    if !r.protocol.matches(p.protocol) {
        return Some((
            Mismatch::Protocol,
            format!("protocol {} is not {}", p.protocol, r.protocol.as_str()),
        ));
    }
    let (dport, sport) = p.dst_src_ports();
    let dr = r.effective_dst_ports();
    if !dr.contains(dport) {
        return Some((
            Mismatch::DestPort,
            format!("destination port {dport} not in {dr}"),
        ));
    }
    let sr = r.effective_src_ports();
    if !sr.contains(sport) {
        return Some((
            Mismatch::SourcePort,
            format!("source port {sport} not in {sr}"),
        ));
    }
    let (remote_word, local_word) = match p.direction {
        Direction::Ingress => ("source", "destination"),
        Direction::Egress => ("destination", "source"),
    };
    match &r.peer {
        Peer::Cidr(c) => {
            if !c.contains(p.remote_ip) {
                return Some((
                    Mismatch::Peer,
                    format!("{remote_word} {} not in {c}", fmt_ipv4(p.remote_ip)),
                ));
            }
        }
        Peer::Group(id) => {
            if on_public {
                return Some((
                    Mismatch::PeerGroupOnPublic,
                    "group rules do not apply to the public address".into(),
                ));
            }
            if !engine.is_member(id, p.remote_ip) {
                return Some((
                    Mismatch::PeerGroup,
                    format!(
                        "{remote_word} {} is not a member of {id}",
                        fmt_ipv4(p.remote_ip)
                    ),
                ));
            }
        }
    }
    if let Some(c) = r.local_cidr {
        if !c.contains(p.local_ip) {
            return Some((
                Mismatch::LocalCidr,
                format!("{local_word} {} not in {c}", fmt_ipv4(p.local_ip)),
            ));
        }
    }
    None
}

impl Engine {
    /// Explain the verdict for a packet at a NIC. Agrees with [`Engine::decide`].
    pub fn explain(&self, nic_id: &str, p: &Packet) -> Result<Explanation, EngineError> {
        let verdict = self.decide(nic_id, p)?;
        let view: NicView<'_> = self
            .nic_view(nic_id)
            .ok_or_else(|| EngineError::UnknownNic(nic_id.to_string()))?;
        let evaluated = if p.reply { p.reversed() } else { *p };
        let on_public = view.public_ip == Some(evaluated.local_ip);
        let dir = evaluated.direction;

        // The rules of the direction in evaluation order.
        let mut ordered: Vec<Ordered<'_>> = Vec::new();
        for &(pos, gid, spec) in &view.groups {
            let Some(spec) = spec else { continue };
            for (i, r) in spec.rules.iter().enumerate() {
                if r.direction == dir {
                    ordered.push(((order_key(r.priority, r.policy), pos, i), gid, spec, i, r));
                }
            }
        }
        ordered.sort_by_key(|e| e.0);

        let basis = verdict.reason.basis();
        let (decided_by, cut) = match basis {
            Basis::Rule(rr) => {
                let (gid, rule) = self
                    .resolve(nic_id, rr)
                    .expect("decider resolves for its NIC");
                let key = (
                    order_key(rule.priority, rule.policy),
                    rr.group,
                    rr.rule as usize,
                );
                let cut = ordered.partition_point(|e| e.0 < key);
                (
                    DecidedBy::Rule(RuleInfo::new(gid, rr.rule as usize, rule)),
                    cut,
                )
            }
            Basis::Default => {
                let enterprise_group = if dir == Direction::Egress {
                    view.groups
                        .iter()
                        .find(|(_, _, s)| s.is_some_and(|s| s.kind == GroupKind::Enterprise))
                        .map(|(_, id, _)| id.to_string())
                } else {
                    None
                };
                (
                    DecidedBy::Default {
                        direction: dir,
                        policy: verdict.action,
                        enterprise_group,
                    },
                    ordered.len(),
                )
            }
            Basis::InnerAccess { group } => {
                let gid = view
                    .groups
                    .get(group as usize)
                    .map_or("", |g| g.1)
                    .to_string();
                (DecidedBy::InnerAccess { group_id: gid }, 0)
            }
        };

        let mut passed_over = Vec::with_capacity(cut);
        for &(_, gid, spec, i, r) in &ordered[..cut] {
            let m = mismatch(self, spec, r, &evaluated, on_public);
            debug_assert!(m.is_some(), "rule {gid}#{i} ahead of the decider matches");
            if let Some((mismatch, why)) = m {
                passed_over.push(PassedOver {
                    rule: RuleInfo::new(gid, i, r),
                    mismatch,
                    why,
                });
            }
        }

        let base = match &decided_by {
            DecidedBy::Rule(ri) => format!(
                "{} by {} rule {}: {}",
                if verdict.action == Policy::Accept {
                    "accepted"
                } else {
                    "dropped"
                },
                ri.group_id,
                if ri.rule_id.is_empty() {
                    format!("#{}", ri.rule_index)
                } else {
                    ri.rule_id.clone()
                },
                ri.text
            ),
            DecidedBy::Default {
                direction: Direction::Ingress,
                ..
            } => "no ingress rule matched: default drop".to_string(),
            DecidedBy::Default {
                enterprise_group: Some(g),
                ..
            } => format!("no egress rule matched: egress default drop for enterprise group {g}"),
            DecidedBy::Default { .. } => {
                "no egress rule matched: egress default accept for normal groups".to_string()
            }
            DecidedBy::InnerAccess { group_id } => {
                format!("inner access between members of {group_id}")
            }
        };
        let summary = if p.reply {
            if verdict.action == Policy::Accept {
                format!(
                    "established reply: the reverse {} packet is allowed ({base})",
                    dir.as_str()
                )
            } else {
                format!(
                    "reply without an established connection: the reverse {} packet is not allowed ({base})",
                    dir.as_str()
                )
            }
        } else {
            base
        };

        Ok(Explanation {
            nic_id: nic_id.to_string(),
            packet: *p,
            verdict: verdict.action,
            reply: p.reply,
            evaluated,
            on_public_address: on_public,
            decided_by,
            summary,
            passed_over,
        })
    }
}

fn json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn json_packet(out: &mut String, p: &Packet) {
    out.push_str("{\"direction\":");
    json_str(out, p.direction.as_str());
    let _ = write!(out, ",\"protocol\":{},\"local_ip\":", p.protocol);
    json_str(out, &fmt_ipv4(p.local_ip));
    out.push_str(",\"remote_ip\":");
    json_str(out, &fmt_ipv4(p.remote_ip));
    let _ = write!(
        out,
        ",\"local_port\":{},\"remote_port\":{},\"reply\":{}}}",
        p.local_port, p.remote_port, p.reply
    );
}

fn json_rule(out: &mut String, r: &RuleInfo) {
    out.push_str("{\"group_id\":");
    json_str(out, &r.group_id);
    out.push_str(",\"rule_id\":");
    json_str(out, &r.rule_id);
    let _ = write!(
        out,
        ",\"rule_index\":{},\"priority\":{},\"policy\":",
        r.rule_index, r.priority
    );
    json_str(out, r.policy.as_str());
    out.push_str(",\"nic_type\":");
    json_str(out, r.nic_type.as_str());
    out.push_str(",\"text\":");
    json_str(out, &r.text);
    out.push('}');
}

impl Explanation {
    /// Multi-line human rendering.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "NIC {}: {} => {}",
            self.nic_id,
            render_packet(&self.packet),
            self.verdict.as_str().to_uppercase()
        );
        if self.reply {
            let _ = writeln!(s, "  judged as: {}", render_packet(&self.evaluated));
        }
        let _ = writeln!(s, "  {}", self.summary);
        match &self.decided_by {
            DecidedBy::Rule(r) => {
                let _ = writeln!(
                    s,
                    "  deciding rule: {} {} (#{}), priority {}, {}, nic type {}",
                    r.group_id,
                    r.rule_id,
                    r.rule_index,
                    r.priority,
                    r.policy.as_str(),
                    r.nic_type.as_str()
                );
            }
            DecidedBy::Default { .. } | DecidedBy::InnerAccess { .. } => {}
        }
        if self.passed_over.is_empty() {
            let _ = writeln!(s, "  no rules evaluated ahead of it");
        } else {
            let _ = writeln!(s, "  passed over ({}):", self.passed_over.len());
            for p in &self.passed_over {
                let _ = writeln!(
                    s,
                    "    {} {}: {} -- {}",
                    p.rule.group_id, p.rule.rule_id, p.rule.text, p.why
                );
            }
        }
        s
    }

    /// Compact JSON object (hand-written, no serde).
    pub fn to_json(&self) -> String {
        let mut s = String::with_capacity(256 + 160 * self.passed_over.len());
        s.push_str("{\"nic_id\":");
        json_str(&mut s, &self.nic_id);
        s.push_str(",\"packet\":");
        json_packet(&mut s, &self.packet);
        s.push_str(",\"verdict\":");
        json_str(&mut s, self.verdict.as_str());
        let _ = write!(s, ",\"reply\":{},\"evaluated\":", self.reply);
        json_packet(&mut s, &self.evaluated);
        let _ = write!(
            s,
            ",\"on_public_address\":{},\"decided_by\":",
            self.on_public_address
        );
        match &self.decided_by {
            DecidedBy::Rule(r) => {
                s.push_str("{\"kind\":\"rule\",\"rule\":");
                json_rule(&mut s, r);
                s.push('}');
            }
            DecidedBy::Default {
                direction,
                policy,
                enterprise_group,
            } => {
                s.push_str("{\"kind\":\"default\",\"direction\":");
                json_str(&mut s, direction.as_str());
                s.push_str(",\"policy\":");
                json_str(&mut s, policy.as_str());
                s.push_str(",\"enterprise_group\":");
                match enterprise_group {
                    Some(g) => json_str(&mut s, g),
                    None => s.push_str("null"),
                }
                s.push('}');
            }
            DecidedBy::InnerAccess { group_id } => {
                s.push_str("{\"kind\":\"inner_access\",\"group_id\":");
                json_str(&mut s, group_id);
                s.push('}');
            }
        }
        s.push_str(",\"summary\":");
        json_str(&mut s, &self.summary);
        s.push_str(",\"passed_over\":[");
        for (i, p) in self.passed_over.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            s.push_str("{\"rule\":");
            json_rule(&mut s, &p.rule);
            s.push_str(",\"mismatch\":");
            json_str(&mut s, p.mismatch.as_str());
            s.push_str(",\"why\":");
            json_str(&mut s, &p.why);
            s.push('}');
        }
        s.push_str("]}");
        s
    }
}
