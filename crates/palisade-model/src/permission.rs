//! One security-group rule (`Permission`), its parsing from request fields, and the
//! checks of the seed (AuthorizeSecurityGroup) that need no stored state.

use crate::net::{Cidr4, PortRange, PortRangeError};
use crate::resources::{NetworkType, SecurityGroup, SecurityGroupType};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    Ingress,
    Egress,
}

impl Direction {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Ingress => "ingress",
            Self::Egress => "egress",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "ingress" => Some(Self::Ingress),
            "egress" => Some(Self::Egress),
            _ => None,
        }
    }
    /// Request parameter names of the peer side: ingress rules name a source, egress a destination.
    pub fn peer_cidr_param(&self) -> &'static str {
        match self {
            Self::Ingress => "SourceCidrIp",
            Self::Egress => "DestCidrIp",
        }
    }
    pub fn local_cidr_param(&self) -> &'static str {
        match self {
            Self::Ingress => "DestCidrIp",
            Self::Egress => "SourceCidrIp",
        }
    }
    pub fn peer_group_param(&self) -> &'static str {
        match self {
            Self::Ingress => "SourceGroupId",
            Self::Egress => "DestGroupId",
        }
    }
    pub fn peer_owner_account_param(&self) -> &'static str {
        match self {
            Self::Ingress => "SourceGroupOwnerAccount",
            Self::Egress => "DestGroupOwnerAccount",
        }
    }
    pub fn peer_owner_id_param(&self) -> &'static str {
        match self {
            Self::Ingress => "SourceGroupOwnerId",
            Self::Egress => "DestGroupOwnerId",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IpProtocol {
    Tcp,
    Udp,
    Icmp,
    Gre,
    All,
}

impl IpProtocol {
    /// Case-insensitive, as the service documents.
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "tcp" => Some(Self::Tcp),
            "udp" => Some(Self::Udp),
            "icmp" => Some(Self::Icmp),
            "gre" => Some(Self::Gre),
            "all" => Some(Self::All),
            _ => None,
        }
    }
    /// Read-back spelling: upper case, as in the service's samples.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Tcp => "TCP",
            Self::Udp => "UDP",
            Self::Icmp => "ICMP",
            Self::Gre => "GRE",
            Self::All => "ALL",
        }
    }
    pub fn has_ports(&self) -> bool {
        matches!(self, Self::Tcp | Self::Udp)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Policy {
    Accept,
    Drop,
}

impl Policy {
    /// `accept|drop` in any case; the seed's own examples send `Allow`, an alias of accept.
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "accept" | "allow" => Some(Self::Accept),
            "drop" => Some(Self::Drop),
            _ => None,
        }
    }
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Accept => "Accept",
            Self::Drop => "Drop",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NicType {
    Internet,
    Intranet,
}

impl NicType {
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "internet" => Some(Self::Internet),
            "intranet" => Some(Self::Intranet),
            _ => None,
        }
    }
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Internet => "internet",
            Self::Intranet => "intranet",
        }
    }
}

/// The far side of a rule: a CIDR block or the members of a group (possibly another account's).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Peer {
    Cidr(String),
    Group { group_id: String, owner_id: u64 },
}

/// A stored rule, as DescribeSecurityGroupAttribute reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Permission {
    pub id: String,
    pub group_id: String,
    pub direction: Direction,
    pub ip_protocol: IpProtocol,
    pub port_range: PortRange,
    pub source_port_range: Option<PortRange>,
    pub nic_type: NicType,
    pub policy: Policy,
    pub priority: u8,
    pub peer: Peer,
    /// The group side of a quintuple rule: `DestCidrIp` of an ingress rule, `SourceCidrIp` of an egress one.
    pub local_cidr: Option<String>,
    pub description: String,
    pub created_at: String,
}

impl Permission {
    /// What makes two rules "the same rule" (ecs-api §5): everything but id, priority,
    /// description and time. CIDRs compare by network so `10.0.0.1/8` equals `10.0.0.0/8`.
    pub fn identity(&self) -> String {
        let norm = |c: &str| {
            c.parse::<Cidr4>()
                .map(|c| c.network().to_string())
                .unwrap_or_else(|_| c.to_string())
        };
        let peer = match &self.peer {
            Peer::Cidr(c) => format!("cidr:{}", norm(c)),
            Peer::Group { group_id, owner_id } => format!("group:{group_id}@{owner_id}"),
        };
        format!(
            "{}|{}|{}|{}|{}|{}|{}|{}",
            self.direction.as_str(),
            self.ip_protocol.as_str(),
            self.port_range,
            self.source_port_range
                .map(|p| p.to_string())
                .unwrap_or_default(),
            self.nic_type.as_str(),
            self.policy.as_str(),
            peer,
            self.local_cidr.as_deref().map(norm).unwrap_or_default(),
        )
    }
}

/// One rule's fields exactly as the request spelled them, already mapped from the
/// direction-specific names (`SourceCidrIp`/`DestCidrIp`, ...). Empty strings count as absent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PermissionInput {
    pub ip_protocol: Option<String>,
    pub port_range: Option<String>,
    pub source_port_range: Option<String>,
    pub nic_type: Option<String>,
    pub policy: Option<String>,
    pub priority: Option<String>,
    pub description: Option<String>,
    pub peer_cidr: Option<String>,
    pub local_cidr: Option<String>,
    pub peer_group_id: Option<String>,
    pub peer_owner_account: Option<String>,
    pub peer_owner_id: Option<String>,
}

/// Violations of the seed's rules. Each maps to one ECS error code in the API layer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RuleError {
    MissingParameter(&'static str),
    /// Neither a CIDR nor a group names the peer.
    MissingPeer(Direction),
    InvalidIpProtocol,
    /// The port range does not fit the protocol (tcp with -1/-1, icmp with 22/22).
    ProtocolPortMismatch,
    PortRangeMalformed(&'static str),
    PriorityMalformed,
    PriorityOutOfRange,
    PolicyMalformed,
    NicTypeUnknown,
    /// `internet` on a VPC group.
    NicTypeMismatch,
    PeerCidrMalformed(Direction),
    LocalCidrMalformed(Direction),
    OwnerIdMalformed(Direction),
    DescriptionMalformed,
    /// A group-referencing rule without `NicType=intranet`.
    GroupPeerNeedsIntranet,
    /// The rule names its own group.
    SelfReference,
    VpcMismatch,
    NetworkTypeMismatch,
    /// Enterprise groups take no group references.
    EnterpriseGroupReference,
    /// Enterprise groups are accept-only.
    EnterprisePolicy,
}

/// A validated rule whose peer group (if any) is not yet looked up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedPermission {
    pub ip_protocol: IpProtocol,
    pub port_range: PortRange,
    pub source_port_range: Option<PortRange>,
    pub nic_type: NicType,
    pub policy: Policy,
    pub priority: u8,
    pub description: String,
    pub peer: ParsedPeer,
    pub local_cidr: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParsedPeer {
    Cidr(String),
    Group {
        group_id: String,
        owner_account: Option<String>,
        owner_id: Option<u64>,
    },
}

pub const MAX_RULE_DESCRIPTION: usize = 512;

fn nonempty(v: &Option<String>) -> Option<&str> {
    v.as_deref().filter(|s| !s.is_empty())
}

fn parse_port_range(
    s: &str,
    proto: IpProtocol,
    param: &'static str,
) -> Result<PortRange, RuleError> {
    let pr = s.parse::<PortRange>().map_err(|e| match e {
        PortRangeError::Syntax | PortRangeError::OutOfRange => RuleError::PortRangeMalformed(param),
    })?;
    // tcp/udp need a real range; everything else only -1/-1.
    if proto.has_ports() == pr.is_any() {
        return Err(RuleError::ProtocolPortMismatch);
    }
    Ok(pr)
}

/// Parses one rule against the group it goes into. `require_fields` is false for
/// lookups (Revoke/Modify by fields), where defaults still apply.
pub fn parse_permission(
    input: &PermissionInput,
    direction: Direction,
    group: &SecurityGroup,
) -> Result<ParsedPermission, RuleError> {
    let proto_s = nonempty(&input.ip_protocol).ok_or(RuleError::MissingParameter("IpProtocol"))?;
    let ip_protocol = IpProtocol::parse(proto_s).ok_or(RuleError::InvalidIpProtocol)?;
    let pr_s = nonempty(&input.port_range).ok_or(RuleError::MissingParameter("PortRange"))?;
    let port_range = parse_port_range(pr_s, ip_protocol, "PortRange")?;
    let source_port_range = match nonempty(&input.source_port_range) {
        Some(s) => Some(parse_port_range(s, ip_protocol, "SourcePortRange")?),
        None => None,
    };
    let priority = match nonempty(&input.priority) {
        None => 1,
        Some(s) => {
            let n: i64 = s.trim().parse().map_err(|_| RuleError::PriorityMalformed)?;
            if !(1..=100).contains(&n) {
                return Err(RuleError::PriorityOutOfRange);
            }
            n as u8
        }
    };
    let policy = match nonempty(&input.policy) {
        None => Policy::Accept,
        Some(s) => Policy::parse(s).ok_or(RuleError::PolicyMalformed)?,
    };
    let vpc = group.network_type() == NetworkType::Vpc;
    let nic_type = match nonempty(&input.nic_type) {
        None if vpc => NicType::Intranet,
        None => NicType::Internet,
        Some(s) => {
            let n = NicType::parse(s).ok_or(RuleError::NicTypeUnknown)?;
            if vpc && n == NicType::Internet {
                return Err(RuleError::NicTypeMismatch);
            }
            n
        }
    };
    let description = input.description.clone().unwrap_or_default();
    if description.chars().count() > MAX_RULE_DESCRIPTION
        || description.starts_with("http://")
        || description.starts_with("https://")
    {
        return Err(RuleError::DescriptionMalformed);
    }
    let local_cidr = match nonempty(&input.local_cidr) {
        Some(s) => {
            s.parse::<Cidr4>()
                .map_err(|_| RuleError::LocalCidrMalformed(direction))?;
            Some(s.to_string())
        }
        None => None,
    };
    // SourceCidrIp wins over SourceGroupId; owner fields are then ignored (the seed).
    let peer = if let Some(c) = nonempty(&input.peer_cidr) {
        c.parse::<Cidr4>()
            .map_err(|_| RuleError::PeerCidrMalformed(direction))?;
        ParsedPeer::Cidr(c.to_string())
    } else if let Some(g) = nonempty(&input.peer_group_id) {
        if nic_type != NicType::Intranet {
            return Err(RuleError::GroupPeerNeedsIntranet);
        }
        if g == group.id {
            return Err(RuleError::SelfReference);
        }
        if group.group_type == SecurityGroupType::Enterprise {
            return Err(RuleError::EnterpriseGroupReference);
        }
        let owner_id = match nonempty(&input.peer_owner_id) {
            Some(s) => Some(
                s.trim()
                    .parse::<u64>()
                    .map_err(|_| RuleError::OwnerIdMalformed(direction))?,
            ),
            None => None,
        };
        ParsedPeer::Group {
            group_id: g.to_string(),
            owner_account: nonempty(&input.peer_owner_account).map(str::to_string),
            owner_id,
        }
    } else {
        return Err(RuleError::MissingPeer(direction));
    };
    if group.group_type == SecurityGroupType::Enterprise && policy == Policy::Drop {
        return Err(RuleError::EnterprisePolicy);
    }
    Ok(ParsedPermission {
        ip_protocol,
        port_range,
        source_port_range,
        nic_type,
        policy,
        priority,
        description,
        peer,
        local_cidr,
    })
}

/// Checks a resolved peer group against the group the rule goes into.
pub fn check_peer_group(group: &SecurityGroup, peer: &SecurityGroup) -> Result<(), RuleError> {
    if group.id == peer.id {
        return Err(RuleError::SelfReference);
    }
    match (&group.vpc_id, &peer.vpc_id) {
        (Some(a), Some(b)) if a != b => Err(RuleError::VpcMismatch),
        (Some(_), None) | (None, Some(_)) => Err(RuleError::NetworkTypeMismatch),
        _ => Ok(()),
    }
}

impl ParsedPermission {
    /// The stored rule, once the peer group's owner is known.
    pub fn into_permission(
        self,
        id: String,
        group_id: &str,
        direction: Direction,
        peer: Peer,
        created_at: String,
    ) -> Permission {
        Permission {
            id,
            group_id: group_id.to_string(),
            direction,
            ip_protocol: self.ip_protocol,
            port_range: self.port_range,
            source_port_range: self.source_port_range,
            nic_type: self.nic_type,
            policy: self.policy,
            priority: self.priority,
            peer,
            local_cidr: self.local_cidr,
            description: self.description,
            created_at,
        }
    }
}

/// The seed's quota: rules per group, ingress and egress together.
pub const DEFAULT_RULE_QUOTA: usize = 100;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::InnerAccessPolicy;

    fn group(vpc: Option<&str>) -> SecurityGroup {
        SecurityGroup {
            id: "sg-a".into(),
            account_id: 1,
            region_id: "cn-hangzhou".into(),
            vpc_id: vpc.map(str::to_string),
            name: String::new(),
            description: String::new(),
            group_type: SecurityGroupType::Normal,
            inner_access_policy: InnerAccessPolicy::Accept,
            created_at: String::new(),
        }
    }

    fn seed_example_1() -> PermissionInput {
        PermissionInput {
            ip_protocol: Some("tcp".into()),
            port_range: Some("1/65535".into()),
            nic_type: Some("intranet".into()),
            policy: Some("Allow".into()),
            peer_cidr: Some("0.0.0.0/0".into()),
            ..Default::default()
        }
    }

    #[test]
    fn seed_example_1_parses_with_allow() {
        let p = parse_permission(&seed_example_1(), Direction::Ingress, &group(None)).unwrap();
        assert_eq!(p.policy, Policy::Accept);
        assert_eq!(p.priority, 1);
        assert_eq!(p.nic_type, NicType::Intranet);
    }

    #[test]
    fn defaults_and_errors() {
        let mut i = seed_example_1();
        i.nic_type = None;
        assert_eq!(
            parse_permission(&i, Direction::Ingress, &group(None))
                .unwrap()
                .nic_type,
            NicType::Internet
        );
        assert_eq!(
            parse_permission(&i, Direction::Ingress, &group(Some("vpc-1")))
                .unwrap()
                .nic_type,
            NicType::Intranet
        );
        type Case = (fn(&mut PermissionInput), RuleError);
        let cases: Vec<Case> = vec![
            (
                |i| i.ip_protocol = Some("xyz".into()),
                RuleError::InvalidIpProtocol,
            ),
            (
                |i| i.port_range = Some("-1/-1".into()),
                RuleError::ProtocolPortMismatch,
            ),
            (
                |i| i.port_range = Some("200/1".into()),
                RuleError::PortRangeMalformed("PortRange"),
            ),
            (
                |i| i.priority = Some("abc".into()),
                RuleError::PriorityMalformed,
            ),
            (
                |i| i.priority = Some("101".into()),
                RuleError::PriorityOutOfRange,
            ),
            (
                |i| i.policy = Some("maybe".into()),
                RuleError::PolicyMalformed,
            ),
            (
                |i| i.nic_type = Some("wifi".into()),
                RuleError::NicTypeUnknown,
            ),
            (
                |i| i.peer_cidr = Some("10.0.0.300/8".into()),
                RuleError::PeerCidrMalformed(Direction::Ingress),
            ),
            (
                |i| i.peer_cidr = None,
                RuleError::MissingPeer(Direction::Ingress),
            ),
            (
                |i| i.description = Some("x".repeat(513)),
                RuleError::DescriptionMalformed,
            ),
            (
                |i| {
                    i.peer_cidr = None;
                    i.peer_group_id = Some("sg-a".into());
                },
                RuleError::SelfReference,
            ),
            (
                |i| {
                    i.peer_cidr = None;
                    i.nic_type = Some("internet".into());
                    i.peer_group_id = Some("sg-b".into());
                },
                RuleError::GroupPeerNeedsIntranet,
            ),
        ];
        for (mutate, want) in cases {
            let mut i = seed_example_1();
            mutate(&mut i);
            assert_eq!(
                parse_permission(&i, Direction::Ingress, &group(None)),
                Err(want)
            );
        }
    }

    #[test]
    fn cidr_wins_over_group() {
        let mut i = seed_example_1();
        i.peer_group_id = Some("sg-a".into());
        let p = parse_permission(&i, Direction::Ingress, &group(None)).unwrap();
        assert_eq!(p.peer, ParsedPeer::Cidr("0.0.0.0/0".into()));
    }

    #[test]
    fn identity_ignores_priority_and_description() {
        let g = group(None);
        let a = parse_permission(&seed_example_1(), Direction::Ingress, &g).unwrap();
        let mut b = a.clone();
        b.priority = 5;
        b.description = "x".into();
        let pa = a.into_permission(
            "1".into(),
            "sg-a",
            Direction::Ingress,
            Peer::Cidr("0.0.0.0/0".into()),
            String::new(),
        );
        let pb = b.into_permission(
            "2".into(),
            "sg-a",
            Direction::Ingress,
            Peer::Cidr("0.0.0.0/0".into()),
            String::new(),
        );
        assert_eq!(pa.identity(), pb.identity());
    }
}
