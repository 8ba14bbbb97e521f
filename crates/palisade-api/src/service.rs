//! The actions. Each handler is a plain function over a transaction ([`Tx`]): it reads
//! what it needs, validates the whole request against the domain rules, then writes.
//! Handlers never see HTTP; the server never sees SQL.

use std::collections::{HashMap, HashSet};

use palisade_model::*;
use palisade_store::Tx;
use serde_json::{json, Map, Value};

use crate::error::ApiError;
use crate::params::Params;

/// How a duplicate Authorize is answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DuplicateRule {
    /// The seed: the call fails (`InvalidPermission.Duplicate`).
    Fail,
    /// Today's cloud: success, nothing added.
    Ignore,
}

#[derive(Clone, Debug)]
pub struct Config {
    pub regions: Vec<String>,
    pub rule_quota: usize,
    pub group_quota: usize,
    pub duplicate_rule: DuplicateRule,
    pub host_id: String,
    /// Requests per second per AccessKey; 0 turns throttling off.
    pub rate_limit: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            regions: DEFAULT_REGIONS.iter().map(|s| s.to_string()).collect(),
            rule_quota: DEFAULT_RULE_QUOTA,
            group_quota: 1000,
            duplicate_rule: DuplicateRule::Fail,
            host_id: "ecs.aliyuncs.com".into(),
            rate_limit: DEFAULT_RATE_LIMIT,
        }
    }
}

pub const DEFAULT_RATE_LIMIT: u32 = 10_000;

pub const DEFAULT_REGIONS: &[&str] = &[
    "cn-hangzhou",
    "cn-beijing",
    "cn-shanghai",
    "cn-shenzhen",
    "cn-qingdao",
    "cn-zhangjiakou",
    "cn-hongkong",
    "ap-southeast-1",
    "us-west-1",
    "eu-central-1",
];

pub type Reply = Map<String, Value>;
pub type HResult = Result<Reply, ApiError>;

pub fn now_iso() -> String {
    let t = time::OffsetDateTime::now_utc();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        t.month() as u8,
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// `{"<item>": [..]}` with the list moved in. `json!` would instead copy every element
/// through serde (`to_value`), which in a 50-rule describe cost as much as the rest.
pub fn wrap_list(item: &str, list: Vec<Value>) -> Value {
    let mut m = Map::with_capacity(1);
    m.insert(item.to_string(), Value::Array(list));
    Value::Object(m)
}

pub fn obj(v: Value) -> Reply {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// `RegionId`, required and one of the configured regions.
pub fn region<'a>(cfg: &Config, p: &'a Params) -> Result<&'a str, ApiError> {
    let r = p.required("RegionId")?;
    if cfg.regions.iter().any(|x| x == r) {
        Ok(r)
    } else {
        Err(ApiError::InvalidRegionIdNotFound)
    }
}

/// The caller's own group in the region, or `InvalidSecurityGroupId.NotFound`: another
/// account's group is indistinguishable from a missing one.
pub fn own_group(
    tx: &mut dyn Tx,
    account: &Account,
    region_id: &str,
    id: &str,
) -> Result<SecurityGroup, ApiError> {
    match tx.group(id)? {
        Some(g) if g.account_id == account.id && g.region_id == region_id => Ok(g),
        _ => Err(ApiError::InvalidSecurityGroupIdNotFound),
    }
}

// ---------------------------------------------------------------------------------------
// Regions and VPCs

pub fn describe_regions(cfg: &Config, _p: &Params) -> HResult {
    let regions: Vec<Value> = cfg
        .regions
        .iter()
        .map(|r| {
            json!({
                "RegionId": r,
                "LocalName": r,
                "RegionEndpoint": format!("ecs.{r}.aliyuncs.com"),
                "Status": "available",
            })
        })
        .collect();
    Ok(obj(json!({ "Regions": { "Region": regions } })))
}

const PRIVATE_BLOCKS: &[&str] = &["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"];

pub fn create_vpc(cfg: &Config, tx: &mut dyn Tx, account: &Account, p: &Params) -> HResult {
    let region_id = region(cfg, p)?;
    let cidr_s = p.opt("CidrBlock").unwrap_or("172.16.0.0/12");
    let cidr: Cidr4 = cidr_s
        .parse()
        .map_err(|_| ApiError::InvalidCidrBlockMalformed)?;
    let inside_private = PRIVATE_BLOCKS.iter().any(|b| {
        b.parse::<Cidr4>()
            .map(|b| b.contains_block(&cidr))
            .unwrap_or(false)
    });
    if !inside_private || cidr.prefix_len > 28 || cidr.network() != cidr {
        return Err(ApiError::InvalidCidrBlockMalformed);
    }
    let name = p.opt("VpcName").unwrap_or("").to_string();
    if !name.is_empty() && validate_name(&name).is_err() {
        return Err(ApiError::InvalidVpcNameMalformed);
    }
    let description = p.opt("Description").unwrap_or("").to_string();
    if !description.is_empty() && validate_description(&description).is_err() {
        return Err(ApiError::InvalidDescriptionMalformed);
    }
    let vpc = Vpc {
        id: ids::vpc_id(),
        account_id: account.id,
        region_id: region_id.to_string(),
        cidr_block: cidr_s.to_string(),
        name,
        description,
        created_at: now_iso(),
    };
    tx.insert_vpc(&vpc)?;
    Ok(obj(json!({
        "VpcId": vpc.id,
        "VRouterId": vrouter_id(&vpc.id),
        "RouteTableId": route_table_id(&vpc.id),
    })))
}

fn vrouter_id(vpc_id: &str) -> String {
    format!("vrt-{}", vpc_id.trim_start_matches("vpc-"))
}
fn route_table_id(vpc_id: &str) -> String {
    format!("vtb-{}", vpc_id.trim_start_matches("vpc-"))
}

/// `PageNumber` (default 1) and `PageSize` (1..=max, default 10).
pub fn page(p: &Params, max_size: i64) -> Result<(usize, usize), ApiError> {
    let number = p
        .opt_int(
            "PageNumber",
            1,
            i32::MAX as i64,
            ApiError::InvalidPageNumber,
        )?
        .unwrap_or(1) as usize;
    let size = p
        .opt_int("PageSize", 1, max_size, ApiError::InvalidPageSize)?
        .unwrap_or(10) as usize;
    Ok((number, size))
}

pub fn page_slice<T>(items: &[T], number: usize, size: usize) -> &[T] {
    let start = (number - 1).saturating_mul(size).min(items.len());
    let end = start.saturating_add(size).min(items.len());
    &items[start..end]
}

pub fn describe_vpcs(cfg: &Config, tx: &mut dyn Tx, account: &Account, p: &Params) -> HResult {
    let region_id = region(cfg, p)?;
    let (number, size) = page(p, 50)?;
    let mut vpcs = tx.vpcs(account.id, region_id)?;
    if let Some(id) = p.opt("VpcId") {
        let wanted: Vec<&str> = id.split(',').map(str::trim).collect();
        vpcs.retain(|v| wanted.contains(&v.id.as_str()));
    }
    if let Some(name) = p.opt("VpcName") {
        vpcs.retain(|v| v.name == name);
    }
    let list: Vec<Value> = page_slice(&vpcs, number, size)
        .iter()
        .map(|v| {
            json!({
                "VpcId": v.id,
                "RegionId": v.region_id,
                "Status": "Available",
                "VpcName": v.name,
                "CreationTime": v.created_at,
                "CidrBlock": v.cidr_block,
                "VRouterId": vrouter_id(&v.id),
                "Description": v.description,
                "IsDefault": false,
                "VSwitchIds": { "VSwitchId": [] },
                "UserCidrs": { "UserCidr": [] },
            })
        })
        .collect();
    let mut reply = obj(json!({
        "TotalCount": vpcs.len(),
        "PageNumber": number,
        "PageSize": size,
    }));
    reply.insert("Vpcs".into(), wrap_list("Vpc", list));
    Ok(reply)
}

pub fn delete_vpc(cfg: &Config, tx: &mut dyn Tx, account: &Account, p: &Params) -> HResult {
    let region_id = region(cfg, p)?;
    let id = p.required("VpcId")?;
    match tx.vpc(id)? {
        Some(v) if v.account_id == account.id && v.region_id == region_id => {}
        _ => return Err(ApiError::InvalidVpcIdNotFound),
    }
    if tx.count_groups_in_vpc(id)? > 0 {
        return Err(ApiError::VpcDependencyViolation);
    }
    tx.delete_vpc(id)?;
    Ok(Reply::new())
}

// ---------------------------------------------------------------------------------------
// Security groups

pub fn create_security_group(
    cfg: &Config,
    tx: &mut dyn Tx,
    account: &Account,
    p: &Params,
) -> HResult {
    let region_id = region(cfg, p)?;
    let vpc_id = match p.opt("VpcId") {
        Some(id) => match tx.vpc(id)? {
            Some(v) if v.account_id == account.id && v.region_id == region_id => Some(v.id),
            _ => return Err(ApiError::InvalidVpcIdNotFound),
        },
        None => None,
    };
    let name = p.opt("SecurityGroupName").unwrap_or("").to_string();
    if !name.is_empty() && validate_name(&name).is_err() {
        return Err(ApiError::InvalidSecurityGroupNameMalformed);
    }
    let description = p.opt("Description").unwrap_or("").to_string();
    if !description.is_empty() && validate_description(&description).is_err() {
        return Err(ApiError::InvalidDescriptionMalformed);
    }
    let group_type = match p.opt("SecurityGroupType") {
        None => SecurityGroupType::Normal,
        Some(s) => {
            SecurityGroupType::parse(s).ok_or(ApiError::InvalidSecurityGroupTypeMalformed)?
        }
    };
    if tx.groups(account.id, region_id)?.len() >= cfg.group_quota {
        return Err(ApiError::QuotaExceedSecurityGroup);
    }
    let group = SecurityGroup {
        id: ids::security_group_id(),
        account_id: account.id,
        region_id: region_id.to_string(),
        vpc_id,
        name,
        description,
        group_type,
        inner_access_policy: match group_type {
            SecurityGroupType::Normal => InnerAccessPolicy::Accept,
            SecurityGroupType::Enterprise => InnerAccessPolicy::Drop,
        },
        created_at: now_iso(),
    };
    tx.insert_group(&group)?;
    Ok(obj(json!({ "SecurityGroupId": group.id })))
}

const NEXT_TOKEN_PREFIX: &str = "pl";

fn encode_token(offset: usize) -> String {
    format!("{NEXT_TOKEN_PREFIX}{offset:08x}")
}

fn decode_token(t: &str) -> Result<usize, ApiError> {
    t.strip_prefix(NEXT_TOKEN_PREFIX)
        .filter(|h| h.len() == 8)
        .and_then(|h| usize::from_str_radix(h, 16).ok())
        .ok_or(ApiError::InvalidNextToken)
}

pub fn describe_security_groups(
    cfg: &Config,
    tx: &mut dyn Tx,
    account: &Account,
    p: &Params,
) -> HResult {
    let region_id = region(cfg, p)?;
    let mut groups = tx.groups(account.id, region_id)?;
    if let Some(id) = p.opt("SecurityGroupId") {
        groups.retain(|g| g.id == id);
    }
    if let Some(ids) = p.json_string_list(
        "SecurityGroupIds",
        ApiError::InvalidSecurityGroupIdsMalformed,
    )? {
        if ids.len() > 100 {
            return Err(ApiError::InvalidSecurityGroupIdsMalformed);
        }
        let set: HashSet<&str> = ids.iter().map(String::as_str).collect();
        groups.retain(|g| set.contains(g.id.as_str()));
    }
    if let Some(name) = p.opt("SecurityGroupName") {
        groups.retain(|g| g.name == name);
    }
    if let Some(t) = p.opt("SecurityGroupType") {
        let t = SecurityGroupType::parse(t).ok_or(ApiError::InvalidSecurityGroupTypeMalformed)?;
        groups.retain(|g| g.group_type == t);
    }
    if let Some(v) = p.opt("VpcId") {
        groups.retain(|g| g.vpc_id.as_deref() == Some(v));
    }
    if let Some(n) = p.opt("NetworkType") {
        let n = NetworkType::parse(n).ok_or(ApiError::InvalidNetworkType)?;
        groups.retain(|g| g.network_type() == n);
    }
    let token_mode = p.opt("MaxResults").is_some() || p.opt("NextToken").is_some();
    let mut reply = Reply::new();
    reply.insert("RegionId".into(), json!(region_id));
    let selected: &[SecurityGroup];
    if token_mode {
        let max = p
            .opt_int("MaxResults", 1, 100, ApiError::InvalidMaxResults)?
            .unwrap_or(10) as usize;
        let start = match p.opt("NextToken") {
            Some(t) => decode_token(t)?,
            None => 0,
        };
        let start = start.min(groups.len());
        let end = (start + max).min(groups.len());
        selected = &groups[start..end];
        reply.insert(
            "NextToken".into(),
            json!(if end < groups.len() {
                encode_token(end)
            } else {
                String::new()
            }),
        );
    } else {
        let (number, size) = page(p, 50)?;
        selected = page_slice(&groups, number, size);
        reply.insert("TotalCount".into(), json!(groups.len()));
        reply.insert("PageNumber".into(), json!(number));
        reply.insert("PageSize".into(), json!(size));
    }
    let mut list = Vec::with_capacity(selected.len());
    for g in selected {
        let rules = tx.permissions(&g.id)?;
        let members = tx.group_members(&g.id)?.len();
        let group_rules = rules
            .iter()
            .filter(|r| matches!(r.peer, Peer::Group { .. }))
            .count();
        list.push(json!({
            "SecurityGroupId": g.id,
            "SecurityGroupName": g.name,
            "Description": g.description,
            "SecurityGroupType": g.group_type.as_str(),
            "VpcId": g.vpc_id.clone().unwrap_or_default(),
            "CreationTime": g.created_at,
            "ResourceGroupId": "",
            "ServiceManaged": false,
            "RuleCount": rules.len(),
            "GroupToGroupRuleCount": group_rules,
            "EcsCount": members,
            "AvailableInstanceAmount": 2000usize.saturating_sub(members),
            "Tags": { "Tag": [] },
        }));
    }
    reply.insert("SecurityGroups".into(), wrap_list("SecurityGroup", list));
    Ok(reply)
}

/// One rule as DescribeSecurityGroupAttribute reports it: every key present, `""` when unset.
/// `names` caches peer group names for the length of one reply: a group's rules often
/// name the same few groups, and each lookup is a query.
pub fn permission_json(
    tx: &mut dyn Tx,
    names: &mut HashMap<String, String>,
    r: &Permission,
) -> Result<Value, ApiError> {
    let (peer_cidr, peer_group, peer_group_name, peer_owner) = match &r.peer {
        Peer::Cidr(c) => (c.clone(), String::new(), String::new(), String::new()),
        Peer::Group { group_id, owner_id } => {
            let name = match names.get(group_id) {
                Some(n) => n.clone(),
                None => {
                    let n = tx.group(group_id)?.map(|g| g.name).unwrap_or_default();
                    names.insert(group_id.clone(), n.clone());
                    n
                }
            };
            (String::new(), group_id.clone(), name, owner_id.to_string())
        }
    };
    let local = r.local_cidr.clone().unwrap_or_default();
    let (src_cidr, dst_cidr) = match r.direction {
        Direction::Ingress => (peer_cidr, local),
        Direction::Egress => (local, peer_cidr),
    };
    let (sg, sgn, sgo, dg, dgn, dgo) = match r.direction {
        Direction::Ingress => (
            peer_group,
            peer_group_name,
            peer_owner,
            String::new(),
            String::new(),
            String::new(),
        ),
        Direction::Egress => (
            String::new(),
            String::new(),
            String::new(),
            peer_group,
            peer_group_name,
            peer_owner,
        ),
    };
    // Built field by field: `json!` converts every value through serde, which cost more
    // than the rest of a 50-rule describe.
    let text = |s: String| Value::String(s);
    let fields: [(&str, Value); 26] = [
        ("SecurityGroupRuleId", text(r.id.clone())),
        ("Direction", text(r.direction.as_str().into())),
        ("IpProtocol", text(r.ip_protocol.as_str().into())),
        ("PortRange", text(r.port_range.to_string())),
        (
            "SourcePortRange",
            text(
                r.source_port_range
                    .map(|p| p.to_string())
                    .unwrap_or_default(),
            ),
        ),
        ("Policy", text(r.policy.as_str().into())),
        ("Priority", Value::from(r.priority)),
        ("NicType", text(r.nic_type.as_str().into())),
        ("SourceCidrIp", text(src_cidr)),
        ("Ipv6SourceCidrIp", text(String::new())),
        ("SourceGroupId", text(sg)),
        ("SourceGroupName", text(sgn)),
        ("SourceGroupOwnerAccount", text(sgo)),
        ("SourcePrefixListId", text(String::new())),
        ("SourcePrefixListName", text(String::new())),
        ("DestCidrIp", text(dst_cidr)),
        ("Ipv6DestCidrIp", text(String::new())),
        ("DestGroupId", text(dg)),
        ("DestGroupName", text(dgn)),
        ("DestGroupOwnerAccount", text(dgo)),
        ("DestPrefixListId", text(String::new())),
        ("DestPrefixListName", text(String::new())),
        ("PortRangeListId", text(String::new())),
        ("PortRangeListName", text(String::new())),
        ("Description", text(r.description.clone())),
        ("CreateTime", text(r.created_at.clone())),
    ];
    let mut map = serde_json::Map::with_capacity(fields.len());
    for (k, v) in fields {
        map.insert(k.to_string(), v);
    }
    Ok(Value::Object(map))
}

pub fn describe_security_group_attribute(
    cfg: &Config,
    tx: &mut dyn Tx,
    account: &Account,
    p: &Params,
) -> HResult {
    let region_id = region(cfg, p)?;
    let group = own_group(tx, account, region_id, p.required("SecurityGroupId")?)?;
    let direction = match p.opt("Direction").map(|s| s.to_ascii_lowercase()) {
        None => None,
        Some(d) if d == "all" => None,
        Some(d) => Some(Direction::parse(&d).ok_or(ApiError::InvalidDirection)?),
    };
    // Classic groups answer one NIC type per call (internet unless asked); VPC groups have
    // only intranet rules and ignore the filter (ecs-api §6.1 item 10).
    let nic_filter = match p.opt("NicType") {
        None => NicType::Internet,
        Some(s) => NicType::parse(s).ok_or(ApiError::InvalidNicTypeFilter)?,
    };
    let vpc = group.vpc_id.is_some();
    let rules: Vec<Permission> = tx
        .permissions(&group.id)?
        .into_iter()
        .filter(|r| direction.is_none_or(|d| r.direction == d))
        .filter(|r| vpc || r.nic_type == nic_filter)
        .collect();
    let token_mode = p.opt("MaxResults").is_some() || p.opt("NextToken").is_some();
    let (start, end) = if token_mode {
        let max = p
            .opt_int("MaxResults", 10, 1000, ApiError::InvalidMaxResults)?
            .unwrap_or(500) as usize;
        let start = match p.opt("NextToken") {
            Some(t) => decode_token(t)?,
            None => 0,
        }
        .min(rules.len());
        (start, (start + max).min(rules.len()))
    } else {
        (0, rules.len())
    };
    let mut list = Vec::with_capacity(end - start);
    let mut names = HashMap::new();
    for r in &rules[start..end] {
        list.push(permission_json(tx, &mut names, r)?);
    }
    let mut reply = obj(json!({
        "RegionId": region_id,
        "SecurityGroupId": group.id,
        "SecurityGroupName": group.name,
        "Description": group.description,
        "VpcId": group.vpc_id.clone().unwrap_or_default(),
        "InnerAccessPolicy": group.inner_access_policy.as_str(),
    }));
    if token_mode {
        let next = if end < rules.len() {
            encode_token(end)
        } else {
            String::new()
        };
        reply.insert("NextToken".into(), json!(next));
    }
    reply.insert("Permissions".into(), wrap_list("Permission", list));
    Ok(reply)
}

pub fn modify_security_group_attribute(
    cfg: &Config,
    tx: &mut dyn Tx,
    account: &Account,
    p: &Params,
) -> HResult {
    let region_id = region(cfg, p)?;
    let mut group = own_group(tx, account, region_id, p.required("SecurityGroupId")?)?;
    if let Some(name) = p.opt("SecurityGroupName") {
        validate_name(name).map_err(|_| ApiError::InvalidSecurityGroupNameMalformed)?;
        group.name = name.to_string();
    }
    if let Some(d) = p.opt("Description") {
        validate_description(d).map_err(|_| ApiError::InvalidDescriptionMalformed)?;
        group.description = d.to_string();
    }
    tx.update_group(&group)?;
    Ok(Reply::new())
}

pub fn modify_security_group_policy(
    cfg: &Config,
    tx: &mut dyn Tx,
    account: &Account,
    p: &Params,
) -> HResult {
    let region_id = region(cfg, p)?;
    let mut group = own_group(tx, account, region_id, p.required("SecurityGroupId")?)?;
    let policy = InnerAccessPolicy::parse(p.required("InnerAccessPolicy")?)
        .ok_or(ApiError::InvalidInnerAccessPolicy)?;
    if group.group_type == SecurityGroupType::Enterprise && policy != InnerAccessPolicy::Drop {
        return Err(ApiError::EnterpriseInnerAccess);
    }
    group.inner_access_policy = policy;
    tx.update_group(&group)?;
    Ok(Reply::new())
}

pub fn delete_security_group(
    cfg: &Config,
    tx: &mut dyn Tx,
    account: &Account,
    p: &Params,
) -> HResult {
    let region_id = region(cfg, p)?;
    let group = own_group(tx, account, region_id, p.required("SecurityGroupId")?)?;
    tx.lock_group(&group.id)?;
    if !tx.referencing_groups(&group.id)?.is_empty() || !tx.group_members(&group.id)?.is_empty() {
        return Err(ApiError::DependencyViolation);
    }
    tx.delete_group(&group.id)?;
    Ok(Reply::new())
}

pub fn describe_security_group_references(
    cfg: &Config,
    tx: &mut dyn Tx,
    account: &Account,
    p: &Params,
) -> HResult {
    let region_id = region(cfg, p)?;
    let ids = p.repeated("SecurityGroupId")?;
    if ids.is_empty() {
        return Err(ApiError::MissingParameter("SecurityGroupId.1".into()));
    }
    if ids.len() > 10 {
        return Err(ApiError::InvalidSecurityGroupIdMalformed);
    }
    let mut out = Vec::new();
    for id in &ids {
        let g = own_group(tx, account, region_id, id)?;
        let refs: Vec<Value> = tx
            .referencing_groups(&g.id)?
            .into_iter()
            .map(|(gid, uid)| json!({ "SecurityGroupId": gid, "AliUid": uid.to_string() }))
            .collect();
        out.push(json!({
            "SecurityGroupId": g.id,
            "ReferencingSecurityGroups": { "ReferencingSecurityGroup": refs },
        }));
    }
    Ok(obj(
        json!({ "SecurityGroupReferences": { "SecurityGroupReference": out } }),
    ))
}

// ---------------------------------------------------------------------------------------
// Rules

/// Flat rule parameters of the legacy form; they may not be mixed with `Permissions.N`.
const FLAT_RULE_PARAMS: &[&str] = &[
    "IpProtocol",
    "PortRange",
    "SourcePortRange",
    "NicType",
    "Policy",
    "Priority",
    "Description",
    "SourceCidrIp",
    "DestCidrIp",
    "SourceGroupId",
    "SourceGroupOwnerAccount",
    "SourceGroupOwnerId",
    "DestGroupId",
    "DestGroupOwnerAccount",
    "DestGroupOwnerId",
];

/// Maps one rule's fields from their direction-specific names.
pub fn permission_input(p: &Params, dir: Direction) -> PermissionInput {
    PermissionInput {
        ip_protocol: p.opt_string("IpProtocol"),
        port_range: p.opt_string("PortRange"),
        source_port_range: p.opt_string("SourcePortRange"),
        nic_type: p.opt_string("NicType"),
        policy: p.opt_string("Policy"),
        priority: p.opt_string("Priority"),
        description: p.get("Description").map(str::to_string),
        peer_cidr: p.opt_string(dir.peer_cidr_param()),
        local_cidr: p.opt_string(dir.local_cidr_param()),
        peer_group_id: p.opt_string(dir.peer_group_param()),
        peer_owner_account: p.opt_string(dir.peer_owner_account_param()),
        peer_owner_id: p.opt_string(dir.peer_owner_id_param()),
    }
}

/// The rule list of a request: `Permissions.N.*`, or the flat form as one rule.
fn rule_inputs(p: &Params, dir: Direction) -> Result<Vec<PermissionInput>, ApiError> {
    let list = p.struct_list_max("Permissions", 100, Some(ApiError::TooManyPermissions))?;
    let has_flat = FLAT_RULE_PARAMS.iter().any(|k| p.opt(k).is_some());
    if !list.is_empty() {
        if has_flat {
            return Err(ApiError::PermissionsConflict);
        }
        if list.len() > 100 {
            return Err(ApiError::TooManyPermissions);
        }
        return Ok(list.iter().map(|x| permission_input(x, dir)).collect());
    }
    Ok(vec![permission_input(p, dir)])
}

/// Resolves `SourceGroupOwnerId`/`SourceGroupOwnerAccount` to an account: the id wins;
/// the account field also takes a numeric id, since Describe reports the id there.
fn resolve_owner(
    tx: &mut dyn Tx,
    account: &Account,
    owner_account: &Option<String>,
    owner_id: Option<u64>,
) -> Result<Option<u64>, ApiError> {
    if let Some(id) = owner_id {
        return Ok(tx.account_by_id(id)?.map(|a| a.id));
    }
    match owner_account {
        None => Ok(Some(account.id)),
        Some(name) => {
            if let Some(a) = tx.account_by_name(name)? {
                return Ok(Some(a.id));
            }
            match name.parse::<u64>() {
                Ok(id) => Ok(tx.account_by_id(id)?.map(|a| a.id)),
                Err(_) => Ok(None),
            }
        }
    }
}

/// Turns a parsed rule into its stored form, checking the peer group.
fn resolve_permission(
    tx: &mut dyn Tx,
    account: &Account,
    group: &SecurityGroup,
    dir: Direction,
    parsed: ParsedPermission,
    id: String,
    created_at: String,
) -> Result<Permission, ApiError> {
    let peer = match &parsed.peer {
        ParsedPeer::Cidr(c) => Peer::Cidr(c.clone()),
        ParsedPeer::Group {
            group_id,
            owner_account,
            owner_id,
        } => {
            let owner = resolve_owner(tx, account, owner_account, *owner_id)?
                .ok_or(ApiError::InvalidSourceGroupNotFound(dir))?;
            let peer = match tx.group(group_id)? {
                Some(g) if g.account_id == owner && g.region_id == group.region_id => g,
                _ => return Err(ApiError::InvalidSourceGroupIdNotFound(dir)),
            };
            check_peer_group(group, &peer)?;
            Peer::Group {
                group_id: peer.id,
                owner_id: owner,
            }
        }
    };
    Ok(parsed.into_permission(id, &group.id, dir, peer, created_at))
}

pub fn authorize(
    cfg: &Config,
    tx: &mut dyn Tx,
    account: &Account,
    p: &Params,
    dir: Direction,
) -> HResult {
    let region_id = region(cfg, p)?;
    let group_id = p.required("SecurityGroupId")?;
    let inputs = rule_inputs(p, dir)?;
    let group = own_group(tx, account, region_id, group_id)?;
    tx.lock_group(&group.id)?;
    let now = now_iso();
    // Validate everything before writing anything: the request is all-or-nothing.
    let mut new_rules = Vec::with_capacity(inputs.len());
    let mut seen = HashSet::new();
    for input in &inputs {
        let parsed = parse_permission(input, dir, &group)?;
        let rule = resolve_permission(
            tx,
            account,
            &group,
            dir,
            parsed,
            ids::rule_id(),
            now.clone(),
        )?;
        let identity = rule.identity();
        if !seen.insert(identity.clone()) {
            return Err(ApiError::DuplicatePermissionsInRequest);
        }
        new_rules.push((rule, identity));
    }
    // Point lookups on the (group, identity) index: the cost of a call does not grow with
    // the number of rules the group already has.
    let before = new_rules.len();
    let mut kept = Vec::with_capacity(before);
    for (r, identity) in new_rules {
        if tx.permission_by_identity(&group.id, &identity)?.is_none() {
            kept.push(r);
        }
    }
    if kept.len() < before && cfg.duplicate_rule == DuplicateRule::Fail {
        return Err(ApiError::DuplicatePermission);
    }
    let existing = tx.count_permissions(&group.id)? as usize;
    if existing + kept.len() > cfg.rule_quota {
        return Err(ApiError::AuthorizationLimitExceed);
    }
    for r in &kept {
        tx.insert_permission(r)?;
    }
    Ok(Reply::new())
}

pub fn revoke(
    cfg: &Config,
    tx: &mut dyn Tx,
    account: &Account,
    p: &Params,
    dir: Direction,
) -> HResult {
    let region_id = region(cfg, p)?;
    let group_id = p.required("SecurityGroupId")?;
    let rule_ids = p.repeated("SecurityGroupRuleId")?;
    let group = own_group(tx, account, region_id, group_id)?;
    tx.lock_group(&group.id)?;
    let mut doomed: Vec<String> = Vec::new();
    if !rule_ids.is_empty() {
        let existing: Vec<Permission> = tx
            .permissions(&group.id)?
            .into_iter()
            .filter(|r| r.direction == dir)
            .collect();
        if !p.struct_list("Permissions")?.is_empty()
            || FLAT_RULE_PARAMS.iter().any(|k| p.opt(k).is_some())
        {
            return Err(ApiError::RuleIdsWithPermissions);
        }
        if rule_ids.len() > 100 {
            return Err(ApiError::TooManyPermissions);
        }
        let mut seen = HashSet::new();
        for id in &rule_ids {
            if !seen.insert(id.as_str()) {
                return Err(ApiError::RuleIdRepeated);
            }
            if !existing.iter().any(|r| &r.id == id) {
                return Err(ApiError::RuleIdNotFound);
            }
            doomed.push(id.clone());
        }
    } else {
        for input in rule_inputs(p, dir)? {
            let parsed = parse_permission(&input, dir, &group)?;
            let rule = match resolve_permission(
                tx,
                account,
                &group,
                dir,
                parsed,
                String::new(),
                String::new(),
            ) {
                Ok(r) => r,
                // A peer that cannot exist cannot be in a rule either.
                Err(ApiError::InvalidSourceGroupNotFound(_))
                | Err(ApiError::InvalidSourceGroupIdNotFound(_)) => {
                    return Err(ApiError::RuleNotExist)
                }
                Err(e) => return Err(e),
            };
            // An index lookup, as in authorize: no scan of the group's rules.
            match tx.permission_by_identity(&group.id, &rule.identity())? {
                Some(id) if !doomed.contains(&id) => doomed.push(id),
                _ => return Err(ApiError::RuleNotExist),
            }
        }
    }
    for id in &doomed {
        tx.delete_permission(id)?;
    }
    Ok(Reply::new())
}

/// The stored rule's fields in request form, to overlay a Modify on.
fn input_of(tx: &mut dyn Tx, r: &Permission) -> Result<PermissionInput, ApiError> {
    let (peer_cidr, peer_group_id, peer_owner_id) = match &r.peer {
        Peer::Cidr(c) => (Some(c.clone()), None, None),
        Peer::Group { group_id, owner_id } => {
            (None, Some(group_id.clone()), Some(owner_id.to_string()))
        }
    };
    let _ = tx;
    Ok(PermissionInput {
        ip_protocol: Some(r.ip_protocol.as_str().to_string()),
        port_range: Some(r.port_range.to_string()),
        source_port_range: r.source_port_range.map(|p| p.to_string()),
        nic_type: Some(r.nic_type.as_str().to_string()),
        policy: Some(r.policy.as_str().to_string()),
        priority: Some(r.priority.to_string()),
        description: Some(r.description.clone()),
        peer_cidr,
        local_cidr: r.local_cidr.clone(),
        peer_group_id,
        peer_owner_account: None,
        peer_owner_id,
    })
}

pub fn modify_rule(
    cfg: &Config,
    tx: &mut dyn Tx,
    account: &Account,
    p: &Params,
    dir: Direction,
) -> HResult {
    let region_id = region(cfg, p)?;
    let group = own_group(tx, account, region_id, p.required("SecurityGroupId")?)?;
    tx.lock_group(&group.id)?;
    let rules = tx.permissions(&group.id)?;
    let given = permission_input(p, dir);
    let updated = if let Some(rule_id) = p.opt("SecurityGroupRuleId") {
        let old = rules
            .iter()
            .find(|r| r.id == rule_id && r.direction == dir)
            .ok_or(ApiError::RuleIdNotFound)?;
        let mut merged = input_of(tx, old)?;
        if let Some(n) = &given.nic_type {
            if NicType::parse(n) != Some(old.nic_type) {
                return Err(ApiError::ModifyNicType);
            }
        }
        let old_is_group = matches!(old.peer, Peer::Group { .. });
        if (old_is_group && given.peer_cidr.is_some())
            || (!old_is_group && given.peer_group_id.is_some())
        {
            return Err(ApiError::ModifyPeerType);
        }
        macro_rules! overlay {
            ($($f:ident),*) => { $( if given.$f.is_some() { merged.$f = given.$f.clone(); } )* };
        }
        overlay!(
            ip_protocol,
            port_range,
            source_port_range,
            policy,
            priority,
            description,
            peer_cidr,
            local_cidr,
            peer_group_id
        );
        if given.peer_owner_account.is_some() || given.peer_owner_id.is_some() {
            merged.peer_owner_account = given.peer_owner_account.clone();
            merged.peer_owner_id = given.peer_owner_id.clone();
        }
        let parsed = parse_permission(&merged, dir, &group)?;
        let new = resolve_permission(
            tx,
            account,
            &group,
            dir,
            parsed,
            old.id.clone(),
            old.created_at.clone(),
        )?;
        if rules
            .iter()
            .any(|r| r.id != new.id && r.identity() == new.identity())
        {
            return Err(ApiError::RuleDuplicate);
        }
        new
    } else {
        // Legacy form: find the rule by its identity and change what is not identity.
        let parsed = parse_permission(&given, dir, &group)?;
        let probe = resolve_permission(
            tx,
            account,
            &group,
            dir,
            parsed,
            String::new(),
            String::new(),
        )?;
        let old = rules
            .iter()
            .find(|r| r.identity() == probe.identity())
            .ok_or(ApiError::SecurityGroupRuleNotFound)?;
        let mut new = old.clone();
        if given.priority.is_some() {
            new.priority = probe.priority;
        }
        if given.description.is_some() {
            new.description = probe.description;
        }
        new
    };
    tx.update_permission(&updated)?;
    Ok(Reply::new())
}
