//! The Permissions decoder: urlencoded parameters, as `Permissions.N.*` or the flat
//! form, mapped by `permission_input` and parsed by `parse_permission` against a classic,
//! a VPC and an enterprise group. An accepted rule keeps the domain's invariants, and
//! its read-back spelling parses to the same rule.
#![no_main]

use libfuzzer_sys::fuzz_target;
use palisade_api::params::Params;
use palisade_api::service::permission_input;
use palisade_model::*;

fn group(id: &str, vpc: Option<&str>, group_type: SecurityGroupType) -> SecurityGroup {
    SecurityGroup {
        id: id.into(),
        account_id: 1234567890123456,
        region_id: "cn-hangzhou".into(),
        vpc_id: vpc.map(str::to_string),
        name: String::new(),
        description: String::new(),
        group_type,
        inner_access_policy: InnerAccessPolicy::Accept,
        created_at: String::new(),
    }
}

fn peer_of(parsed: &ParsedPermission) -> Peer {
    match &parsed.peer {
        ParsedPeer::Cidr(c) => Peer::Cidr(c.clone()),
        ParsedPeer::Group { group_id, .. } => Peer::Group {
            group_id: group_id.clone(),
            owner_id: 1234567890123456,
        },
    }
}

fn check(parsed: &ParsedPermission, dir: Direction, g: &SecurityGroup) {
    assert!((1..=100).contains(&parsed.priority));
    let ports = parsed.ip_protocol.has_ports();
    assert_eq!(ports, !parsed.port_range.is_any());
    if let Some(sp) = parsed.source_port_range {
        assert_eq!(ports, !sp.is_any());
    }
    assert!(parsed.description.chars().count() <= MAX_RULE_DESCRIPTION);
    assert!(!parsed.description.starts_with("http://"));
    if g.vpc_id.is_some() {
        assert_eq!(parsed.nic_type, NicType::Intranet);
    }
    if g.group_type == SecurityGroupType::Enterprise {
        assert_eq!(parsed.policy, Policy::Accept);
        assert!(matches!(parsed.peer, ParsedPeer::Cidr(_)));
    }
    match &parsed.peer {
        ParsedPeer::Cidr(c) => assert!(c.parse::<Cidr4>().is_ok(), "{c:?}"),
        ParsedPeer::Group { group_id, .. } => {
            assert_ne!(group_id, &g.id);
            assert!(!group_id.is_empty());
            assert_eq!(parsed.nic_type, NicType::Intranet);
        }
    }
    if let Some(l) = &parsed.local_cidr {
        assert!(l.parse::<Cidr4>().is_ok(), "{l:?}");
    }

    // As stored, then read back and parsed again: the same rule.
    let stored = parsed
        .clone()
        .into_permission("sgr-a".into(), &g.id, dir, peer_of(parsed), String::new());
    let (peer_cidr, peer_group_id, peer_owner_id) = match &stored.peer {
        Peer::Cidr(c) => (Some(c.clone()), None, None),
        Peer::Group { group_id, owner_id } => {
            (None, Some(group_id.clone()), Some(owner_id.to_string()))
        }
    };
    let back = PermissionInput {
        ip_protocol: Some(stored.ip_protocol.as_str().into()),
        port_range: Some(stored.port_range.to_string()),
        source_port_range: stored.source_port_range.map(|p| p.to_string()),
        nic_type: Some(stored.nic_type.as_str().into()),
        policy: Some(stored.policy.as_str().into()),
        priority: Some(stored.priority.to_string()),
        description: Some(stored.description.clone()),
        peer_cidr,
        local_cidr: stored.local_cidr.clone(),
        peer_group_id,
        peer_owner_account: None,
        peer_owner_id,
    };
    let again = parse_permission(&back, dir, g).expect("a stored rule's read-back parses");
    assert_eq!(
        (again.priority, &again.description),
        (parsed.priority, &parsed.description)
    );
    let again = again.into_permission("sgr-b".into(), &g.id, dir, peer_of(parsed), String::new());
    assert_eq!(again.identity(), stored.identity());
    // Priority and description are not part of what makes a rule the same rule.
    let mut other = stored.clone();
    other.priority = if stored.priority == 1 { 2 } else { 1 };
    other.description.push('x');
    assert_eq!(other.identity(), stored.identity());
}

fuzz_target!(|data: &[u8]| {
    let mut p = Params::new();
    if p.extend_urlencoded(data).is_err() {
        return;
    }
    let items = match p.struct_list("Permissions") {
        Ok(list) if !list.is_empty() => list.into_iter().take(100).collect(),
        Ok(_) => vec![p.clone()],
        Err(_) => return,
    };
    let groups = [
        group("sg-classic", None, SecurityGroupType::Normal),
        group("sg-vpc", Some("vpc-a"), SecurityGroupType::Normal),
        group("sg-enterprise", Some("vpc-a"), SecurityGroupType::Enterprise),
    ];
    for dir in [Direction::Ingress, Direction::Egress] {
        for g in &groups {
            for item in &items {
                let input = permission_input(item, dir);
                if let Ok(parsed) = parse_permission(&input, dir, g) {
                    check(&parsed, dir, g);
                }
            }
        }
    }
});
