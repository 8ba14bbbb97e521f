//! Palisade decision engine: for a packet to or from a NIC, the verdict of its
//! security groups, the rule that decided it, and an explanation. Pure, no I/O.
//!
//! # Semantics
//!
//! * A new ingress (egress) packet is judged by the ingress (egress) rules of all the
//!   NIC's groups together, ordered by priority (1 first), then drop before accept,
//!   then the NIC's group order, then the rule's index in its group. The first
//!   matching rule decides.
//! * No rule matches: ingress drops; egress accepts when no defined group of the
//!   NIC is enterprise and drops when any is (ECS forbids mixing kinds on one NIC;
//!   if it happens anyway, one enterprise group is enough for drop). A NIC with no
//!   defined group: ingress drop, egress accept.
//! * Nic type, decided per group: every rule of a VPC group applies to every
//!   address of the NIC. For a classic group, a packet whose local address is the
//!   NIC's public address is governed only by its `Internet` rules, any other packet
//!   only by its `Intranet` rules.
//! * `Peer::Group(g)` matches when the remote address is the private address of a
//!   current member NIC of `g` (membership comes from NICs' group lists, whether or
//!   not `g` is defined), and never for a packet on the public address.
//! * Inner access: when not on the public address, and the remote address is the
//!   private address of *another* member NIC of a defined normal group of this NIC
//!   with `inner_access_accept`, the packet is accepted regardless of rules.
//! * Replies (`reply: true`) are accepted iff the reversed packet (other direction;
//!   same NIC, addresses and local/remote ports) would be accepted as a new
//!   connection ("established reply").
//!
//! # Structure
//!
//! * Each group is compiled once per direction into a bit-vector classifier (see
//!   `src/compile.rs`); changing a group recompiles only that group.
//! * Group membership is kept as per-group sets of member addresses plus a reverse
//!   index (address → groups), updated by NIC changes only; `Peer::Group` rules
//!   consult them at decision time, so membership changes recompile nothing.
//! * A decision evaluates each of the NIC's (at most 5) groups and keeps the best
//!   winner by the order key; nothing is compiled per NIC. A group *set* with many
//!   rules (300 or more, summed over its groups) also gets one merged classifier,
//!   shared by every NIC with exactly that group list and rebuilt when one of its
//!   groups changes, so such a NIC needs one lookup instead of five (membership is
//!   still consulted at decision time). [`Engine::decide`] does not allocate;
//!   [`Engine::explain`] is the slow, descriptive path.
//! * [`Engine`] clones are cheap (tables are shared copy-on-write and compiled
//!   groups are shared): a what-if is clone, change, ask.
//! * [`reference`] is a deliberately naive evaluator used to check the engine.
//!
//! ```
//! use palisade_engine::*;
//!
//! let mut engine = Engine::new();
//! engine.upsert_group(GroupSpec {
//!     id: "sg-web".into(),
//!     kind: GroupKind::Normal,
//!     vpc_id: Some("vpc-1".into()),
//!     inner_access_accept: false,
//!     rules: vec![Rule {
//!         rule_id: "sgr-ssh".into(),
//!         group_id: "sg-web".into(),
//!         direction: Direction::Ingress,
//!         protocol: Protocol::Tcp,
//!         port_range: PortRange::single(22),
//!         source_port_range: None,
//!         peer: Peer::Cidr("10.0.0.0/8".parse().unwrap()),
//!         local_cidr: None,
//!         policy: Policy::Accept,
//!         priority: 1,
//!         nic_type: NicType::Intranet,
//!     }],
//! }).unwrap();
//! engine.upsert_nic(Nic {
//!     id: "eni-1".into(),
//!     groups: vec!["sg-web".into()],
//!     private_ip: parse_ipv4("192.168.0.2").unwrap(),
//!     public_ip: None,
//! }).unwrap();
//! let packet = Packet {
//!     direction: Direction::Ingress,
//!     protocol: ipproto::TCP,
//!     local_ip: parse_ipv4("192.168.0.2").unwrap(),
//!     remote_ip: parse_ipv4("10.1.2.3").unwrap(),
//!     local_port: 22,
//!     remote_port: 40000,
//!     reply: false,
//! };
//! let v = engine.decide("eni-1", &packet).unwrap();
//! assert_eq!(v.action, Policy::Accept);
//! let x = engine.explain("eni-1", &packet).unwrap();
//! assert_eq!(x.summary, "accepted by sg-web rule sgr-ssh: ingress TCP 22/22 from 10.0.0.0/8 accept prio 1");
//! ```

mod compile;
mod engine;
mod explain;
mod hash;
pub mod reference;
mod types;

pub use engine::{
    Basis, Engine, EngineError, NicHandle, Reason, RuleRef, Verdict, MAX_GROUPS_PER_NIC,
};
pub use explain::{DecidedBy, Explanation, Mismatch, PassedOver, RuleInfo};
pub use types::{
    fmt_ipv4, ipproto, parse_ipv4, Cidr4, Direction, GroupKind, GroupSpec, Nic, NicType, Packet,
    ParseError, Peer, Policy, PortRange, Protocol, Rule,
};
