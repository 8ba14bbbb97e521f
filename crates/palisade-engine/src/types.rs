//! Input types of the engine. The API layer converts its own model into these.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// Direction of a packet relative to the NIC (and of a rule).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    Ingress,
    Egress,
}

impl Direction {
    /// The other direction.
    pub fn reverse(self) -> Direction {
        match self {
            Direction::Ingress => Direction::Egress,
            Direction::Egress => Direction::Ingress,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Ingress => "ingress",
            Direction::Egress => "egress",
        }
    }

    pub(crate) fn index(self) -> usize {
        match self {
            Direction::Ingress => 0,
            Direction::Egress => 1,
        }
    }
}

/// Rule policy, and the verdict of a decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Policy {
    Accept,
    Drop,
}

impl Policy {
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::Accept => "accept",
            Policy::Drop => "drop",
        }
    }

    /// Tie-break rank at equal priority: drop (0) before accept (1).
    pub(crate) fn rank(self) -> u8 {
        match self {
            Policy::Drop => 0,
            Policy::Accept => 1,
        }
    }
}

/// Which address of a classic NIC a rule governs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NicType {
    Internet,
    Intranet,
}

impl NicType {
    pub fn as_str(self) -> &'static str {
        match self {
            NicType::Internet => "internet",
            NicType::Intranet => "intranet",
        }
    }
}

/// Basic (`Normal`) or advanced (`Enterprise`) security group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GroupKind {
    Normal,
    Enterprise,
}

impl GroupKind {
    pub fn as_str(self) -> &'static str {
        match self {
            GroupKind::Normal => "normal",
            GroupKind::Enterprise => "enterprise",
        }
    }
}

/// IP protocol numbers the engine knows by name.
pub mod ipproto {
    pub const ICMP: u8 = 1;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    pub const GRE: u8 = 47;
    pub const ICMPV6: u8 = 58;
}

/// Rule protocol. `All` matches every IP protocol number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Protocol {
    All,
    Tcp,
    Udp,
    Icmp,
    Gre,
    Icmpv6,
}

impl Protocol {
    /// Does a rule of this protocol match a packet carrying IP protocol `proto`?
    pub fn matches(self, proto: u8) -> bool {
        match self {
            Protocol::All => true,
            Protocol::Tcp => proto == ipproto::TCP,
            Protocol::Udp => proto == ipproto::UDP,
            Protocol::Icmp => proto == ipproto::ICMP,
            Protocol::Gre => proto == ipproto::GRE,
            Protocol::Icmpv6 => proto == ipproto::ICMPV6,
        }
    }

    /// Only TCP and UDP rules are constrained by their port ranges; every other rule
    /// protocol matches every port (the API writes `-1/-1` for them).
    pub fn uses_ports(self) -> bool {
        matches!(self, Protocol::Tcp | Protocol::Udp)
    }

    /// Upper-case name as the API renders it on read-back.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::All => "ALL",
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Icmp => "ICMP",
            Protocol::Gre => "GRE",
            Protocol::Icmpv6 => "ICMPv6",
        }
    }
}

impl FromStr for Protocol {
    type Err = ParseError;
    /// Case-insensitive `tcp`, `udp`, `icmp`, `gre`, `icmpv6`, `all`.
    fn from_str(s: &str) -> Result<Self, ParseError> {
        let p = match s.to_ascii_lowercase().as_str() {
            "all" => Protocol::All,
            "tcp" => Protocol::Tcp,
            "udp" => Protocol::Udp,
            "icmp" => Protocol::Icmp,
            "gre" => Protocol::Gre,
            "icmpv6" => Protocol::Icmpv6,
            _ => return Err(ParseError::new("protocol", s)),
        };
        Ok(p)
    }
}

/// Error of the small text parsers in this module.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    pub what: &'static str,
    pub input: String,
}

impl ParseError {
    fn new(what: &'static str, input: &str) -> ParseError {
        ParseError {
            what,
            input: input.to_string(),
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid {}: {:?}", self.what, self.input)
    }
}

impl std::error::Error for ParseError {}

/// Parse a dotted-quad IPv4 address into its `u32` value.
pub fn parse_ipv4(s: &str) -> Option<u32> {
    Ipv4Addr::from_str(s.trim()).ok().map(u32::from)
}

/// Render a `u32` IPv4 address as a dotted quad.
pub fn fmt_ipv4(ip: u32) -> String {
    Ipv4Addr::from(ip).to_string()
}

/// An IPv4 block. Host bits below the prefix are ignored when matching.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cidr4 {
    pub addr: u32,
    pub prefix_len: u8,
}

impl Cidr4 {
    /// `0.0.0.0/0`.
    pub const ANY: Cidr4 = Cidr4 {
        addr: 0,
        prefix_len: 0,
    };

    pub fn new(addr: u32, prefix_len: u8) -> Cidr4 {
        Cidr4 { addr, prefix_len }
    }

    /// A single address (`/32`).
    pub fn host(addr: u32) -> Cidr4 {
        Cidr4 {
            addr,
            prefix_len: 32,
        }
    }

    /// Parse `a.b.c.d/n` or a bare address (a `/32`).
    pub fn parse(s: &str) -> Result<Cidr4, ParseError> {
        let s = s.trim();
        let (a, n) = match s.split_once('/') {
            Some((a, n)) => (a, Some(n)),
            None => (s, None),
        };
        let addr = parse_ipv4(a).ok_or_else(|| ParseError::new("IPv4 CIDR", s))?;
        let prefix_len = match n {
            None => 32,
            Some(n) => match n.parse::<u8>() {
                Ok(v) if v <= 32 && !n.starts_with('+') => v,
                _ => return Err(ParseError::new("IPv4 CIDR", s)),
            },
        };
        Ok(Cidr4 { addr, prefix_len })
    }

    /// Network mask (`prefix_len` leading one bits). Prefixes above 32 count as 32.
    pub fn mask(self) -> u32 {
        match self.prefix_len {
            0 => 0,
            n if n >= 32 => u32::MAX,
            n => u32::MAX << (32 - n),
        }
    }

    /// First address of the block.
    pub fn first(self) -> u32 {
        self.addr & self.mask()
    }

    /// Last address of the block.
    pub fn last(self) -> u32 {
        self.first() | !self.mask()
    }

    pub fn contains(self, ip: u32) -> bool {
        ip & self.mask() == self.first()
    }
}

impl FromStr for Cidr4 {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        Cidr4::parse(s)
    }
}

impl fmt::Display for Cidr4 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", Ipv4Addr::from(self.addr), self.prefix_len)
    }
}

/// Inclusive port range. The API's `-1/-1` ("every port") is `0..=65535` here.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PortRange {
    pub from: u16,
    pub to: u16,
}

impl PortRange {
    /// Every port (`-1/-1` in the API).
    pub const ALL: PortRange = PortRange {
        from: 0,
        to: u16::MAX,
    };

    pub fn new(from: u16, to: u16) -> PortRange {
        PortRange { from, to }
    }

    pub fn single(port: u16) -> PortRange {
        PortRange {
            from: port,
            to: port,
        }
    }

    /// Parse `a/b` (`-1/-1` = every port).
    pub fn parse(s: &str) -> Result<PortRange, ParseError> {
        let s = s.trim();
        if s == "-1/-1" {
            return Ok(PortRange::ALL);
        }
        let err = || ParseError::new("port range", s);
        let (a, b) = s.split_once('/').ok_or_else(err)?;
        let from: u16 = a.parse().map_err(|_| err())?;
        let to: u16 = b.parse().map_err(|_| err())?;
        if from > to {
            return Err(err());
        }
        Ok(PortRange { from, to })
    }

    pub fn contains(self, port: u16) -> bool {
        self.from <= port && port <= self.to
    }

    pub fn is_all(self) -> bool {
        self == PortRange::ALL
    }
}

impl Default for PortRange {
    fn default() -> Self {
        PortRange::ALL
    }
}

impl FromStr for PortRange {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        PortRange::parse(s)
    }
}

impl fmt::Display for PortRange {
    /// `a/b`, or `-1/-1` for every port.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_all() {
            f.write_str("-1/-1")
        } else {
            write!(f, "{}/{}", self.from, self.to)
        }
    }
}

/// The remote side a rule talks about: the packet source for ingress rules, the
/// destination for egress rules.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Peer {
    Cidr(Cidr4),
    /// Private IPs of the current member NICs of the named group (any account; group
    /// ids are globally unique). Intranet traffic only.
    Group(String),
}

/// One security-group rule.
///
/// Port matching: for ingress `port_range` is the destination (local) port and
/// `source_port_range` the remote port; for egress `port_range` is the destination
/// (remote) port and `source_port_range` the local port. Only TCP and UDP rules look
/// at ports. `local_cidr` is `DestCidrIp` for ingress and `SourceCidrIp` for egress
/// (the NIC side) and is matched against the packet's local address.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Rule {
    pub rule_id: String,
    /// The owning group. May be left empty; if set it must equal the enclosing
    /// [`GroupSpec::id`].
    pub group_id: String,
    pub direction: Direction,
    pub protocol: Protocol,
    pub port_range: PortRange,
    pub source_port_range: Option<PortRange>,
    pub peer: Peer,
    pub local_cidr: Option<Cidr4>,
    pub policy: Policy,
    /// 1..=100, 1 is evaluated first.
    pub priority: u8,
    pub nic_type: NicType,
}

impl Rule {
    /// The destination-port range this rule effectively matches (every port for
    /// protocols without ports).
    pub fn effective_dst_ports(&self) -> PortRange {
        if self.protocol.uses_ports() {
            self.port_range
        } else {
            PortRange::ALL
        }
    }

    /// The source-port range this rule effectively matches.
    pub fn effective_src_ports(&self) -> PortRange {
        match self.source_port_range {
            Some(r) if self.protocol.uses_ports() => r,
            _ => PortRange::ALL,
        }
    }

    /// One-line rendering, e.g. `ingress TCP 22/22 from 10.0.0.0/8 accept prio 1`.
    ///
    /// Optional parts appear only when set: `sport a/b` (source port range) after the
    /// destination ports, and the local block (`to x/n` for ingress, `from x/n` for
    /// egress) after the peer.
    pub fn render(&self) -> String {
        let mut s = String::with_capacity(64);
        s.push_str(self.direction.as_str());
        s.push(' ');
        s.push_str(self.protocol.as_str());
        s.push(' ');
        s.push_str(&self.effective_dst_ports().to_string());
        if self.protocol.uses_ports() {
            if let Some(sp) = self.source_port_range {
                s.push_str(" sport ");
                s.push_str(&sp.to_string());
            }
        }
        let (peer_word, local_word) = match self.direction {
            Direction::Ingress => ("from", "to"),
            Direction::Egress => ("to", "from"),
        };
        s.push(' ');
        s.push_str(peer_word);
        s.push(' ');
        match &self.peer {
            Peer::Cidr(c) => s.push_str(&c.to_string()),
            Peer::Group(g) => s.push_str(g),
        }
        if let Some(lc) = self.local_cidr {
            s.push(' ');
            s.push_str(local_word);
            s.push(' ');
            s.push_str(&lc.to_string());
        }
        s.push(' ');
        s.push_str(self.policy.as_str());
        s.push_str(" prio ");
        s.push_str(&self.priority.to_string());
        s
    }
}

/// A security group as the engine sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupSpec {
    pub id: String,
    pub kind: GroupKind,
    /// `None` = classic network.
    pub vpc_id: Option<String>,
    /// `InnerAccessPolicy=Accept`. Ignored for enterprise groups (always drop).
    pub inner_access_accept: bool,
    /// Both directions; a rule's index in this vector is its identity in
    /// [`crate::RuleRef`] and the last tie-break.
    pub rules: Vec<Rule>,
}

impl GroupSpec {
    pub fn is_vpc(&self) -> bool {
        self.vpc_id.is_some()
    }
}

/// A network interface and the groups it is a member of.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Nic {
    pub id: String,
    /// At most 5; duplicates are ignored (first occurrence counts).
    pub groups: Vec<String>,
    pub private_ip: u32,
    pub public_ip: Option<u32>,
}

/// A packet seen at a NIC.
///
/// Addresses and ports are given from the NIC's point of view: `local_*` is the NIC
/// side (the destination of an ingress packet, the source of an egress packet).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Packet {
    pub direction: Direction,
    /// IP protocol number (6 tcp, 17 udp, 1 icmp, 47 gre, 58 icmpv6, ...).
    pub protocol: u8,
    /// The NIC address the packet uses (its private or its public address).
    pub local_ip: u32,
    pub remote_ip: u32,
    pub local_port: u16,
    pub remote_port: u16,
    /// Part of an established connection opened in the other direction.
    pub reply: bool,
}

impl Packet {
    /// Destination and source port as a rule of the packet's direction sees them.
    pub fn dst_src_ports(&self) -> (u16, u16) {
        match self.direction {
            Direction::Ingress => (self.local_port, self.remote_port),
            Direction::Egress => (self.remote_port, self.local_port),
        }
    }

    /// The packet that opened the connection this reply belongs to: opposite
    /// direction, source and destination swapped. In local/remote terms only the
    /// direction changes (the NIC side stays the NIC side).
    pub fn reversed(&self) -> Packet {
        Packet {
            direction: self.direction.reverse(),
            reply: false,
            ..*self
        }
    }
}
