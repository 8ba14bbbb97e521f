//! Instances and network interfaces, only as far as security groups care: which groups
//! they are in, and their addresses (a group-source rule matches its members' private IPs).

use std::net::Ipv4Addr;

use palisade_model::*;
use palisade_store::Tx;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::params::Params;
use crate::service::{now_iso, obj, own_group, page, page_slice, region, Config, HResult, Reply};

/// `SecurityGroupId` or `SecurityGroupIds.N` (never both), each the caller's, all in one
/// network (classic, or one VPC) and of one kind; at most five.
fn requested_groups(
    tx: &mut dyn Tx,
    account: &Account,
    region_id: &str,
    p: &Params,
) -> Result<Vec<SecurityGroup>, ApiError> {
    let list = p.repeated("SecurityGroupIds")?;
    let ids: Vec<String> = match (p.opt("SecurityGroupId"), list.is_empty()) {
        (Some(_), false) => return Err(ApiError::GroupParamsConflict),
        (Some(one), true) => vec![one.to_string()],
        (None, false) => list,
        (None, true) => return Err(ApiError::MissingParameter("SecurityGroupId".into())),
    };
    if ids.len() > MAX_GROUPS_PER_NIC {
        return Err(ApiError::NicGroupLimit);
    }
    let mut groups: Vec<SecurityGroup> = Vec::new();
    for id in ids {
        let g = match tx.group(&id)? {
            Some(g) if g.account_id == account.id && g.region_id == region_id => g,
            _ => return Err(ApiError::InvalidSecurityGroupIdNotFound),
        };
        if !groups.iter().any(|x| x.id == g.id) {
            groups.push(g);
        }
    }
    check_group_set(&groups)?;
    Ok(groups)
}

fn check_group_set(groups: &[SecurityGroup]) -> Result<(), ApiError> {
    if let Some(first) = groups.first() {
        if groups.iter().any(|g| g.vpc_id != first.vpc_id) {
            return Err(ApiError::NicNetworkMismatch);
        }
        if groups.iter().any(|g| g.group_type != first.group_type) {
            return Err(ApiError::NicGroupTypeConflict);
        }
    }
    Ok(())
}

/// The block addresses come from: the VPC's, or 10.0.0.0/8 for the classic network.
fn network_block(tx: &mut dyn Tx, vpc_id: Option<&str>) -> Result<Cidr4, ApiError> {
    let block = match vpc_id {
        Some(v) => tx
            .vpc(v)?
            .map(|v| v.cidr_block)
            .ok_or(ApiError::InvalidVpcIdNotFound)?,
        None => "10.0.0.0/8".to_string(),
    };
    block.parse().map_err(|_| ApiError::InternalError)
}

/// A given private IP is checked against the network and its other users; otherwise the
/// next free address after `hint` (or the block start) is taken.
fn private_ip(
    tx: &mut dyn Tx,
    region_id: &str,
    vpc_id: Option<&str>,
    wanted: Option<u32>,
    hint: &mut u32,
) -> Result<String, ApiError> {
    let block = network_block(tx, vpc_id)?;
    if let Some(ip) = wanted {
        if !block.contains(ip) {
            return Err(ApiError::PrivateIpMismatch);
        }
        let s = Ipv4Addr::from(ip).to_string();
        if tx.nics_with_ip(vpc_id, region_id, &s)? > 0 {
            return Err(ApiError::PrivateIpDuplicated);
        }
        return Ok(s);
    }
    let first = block.network().addr;
    let size: u64 = 1u64 << (32 - block.prefix_len as u32);
    // Skip the network's first addresses (gateway and friends) as the cloud does.
    let mut offset = (*hint).max(first + 3).wrapping_sub(first) as u64;
    while offset + 1 < size {
        let s = Ipv4Addr::from(first + offset as u32).to_string();
        if tx.nics_with_ip(vpc_id, region_id, &s)? == 0 {
            *hint = first + offset as u32 + 1;
            return Ok(s);
        }
        offset += 1;
        if offset > 100_000 {
            break;
        }
    }
    Err(ApiError::PrivateIpExhausted)
}

fn parse_ip(p: &Params, name: &'static str, err: ApiError) -> Result<Option<u32>, ApiError> {
    match p.opt(name) {
        None => Ok(None),
        Some(s) => s
            .parse::<Ipv4Addr>()
            .map(|a| Some(u32::from(a)))
            .map_err(|_| err),
    }
}

fn vswitch_for(vpc_id: Option<&str>, p: &Params) -> String {
    match (p.opt("VSwitchId"), vpc_id) {
        (Some(v), _) => v.to_string(),
        (None, Some(vpc)) => format!("vsw-{}", vpc.trim_start_matches("vpc-")),
        (None, None) => String::new(),
    }
}

pub fn run_instances(cfg: &Config, tx: &mut dyn Tx, account: &Account, p: &Params) -> HResult {
    let region_id = region(cfg, p)?;
    let groups = requested_groups(tx, account, region_id, p)?;
    let amount = p
        .opt_int("Amount", 1, 100, ApiError::InvalidAmount)?
        .unwrap_or(1) as u32;
    let wanted = parse_ip(p, "PrivateIpAddress", ApiError::PrivateIpMalformed)?;
    let public = parse_ip(p, "PublicIpAddress", ApiError::PublicIpMalformed)?;
    let vpc_id = groups[0].vpc_id.clone();
    let group_ids: Vec<String> = groups.iter().map(|g| g.id.clone()).collect();
    let name = p.opt("InstanceName").unwrap_or("").to_string();
    let mut hint = 0u32;
    let mut ids = Vec::new();
    for i in 0..amount {
        // With Amount > 1 a given address is the first of consecutive ones.
        let ip = private_ip(
            tx,
            region_id,
            vpc_id.as_deref(),
            wanted.map(|w| w + i),
            &mut hint,
        )?;
        let instance = Instance {
            id: ids::instance_id(),
            account_id: account.id,
            region_id: region_id.to_string(),
            name: name.clone(),
            created_at: now_iso(),
        };
        tx.insert_instance(&instance)?;
        let nic = NetworkInterface {
            id: ids::network_interface_id(),
            account_id: account.id,
            region_id: region_id.to_string(),
            vpc_id: vpc_id.clone(),
            vswitch_id: vswitch_for(vpc_id.as_deref(), p),
            instance_id: Some(instance.id.clone()),
            name: String::new(),
            private_ip: ip,
            public_ip: public.map(|x| Ipv4Addr::from(x + i).to_string()),
            created_at: instance.created_at.clone(),
        };
        tx.insert_nic(&nic)?;
        tx.set_nic_groups(&nic.id, &group_ids)?;
        ids.push(instance.id);
    }
    Ok(obj(json!({ "InstanceIdSets": { "InstanceIdSet": ids } })))
}

fn instance_json(tx: &mut dyn Tx, i: &Instance) -> Result<Value, ApiError> {
    let nic = tx.primary_nic(&i.id)?.ok_or(ApiError::InternalError)?;
    let groups = tx.nic_groups(&nic.id)?;
    let vpc = nic.vpc_id.is_some();
    Ok(json!({
        "InstanceId": i.id,
        "InstanceName": i.name,
        "Status": "Running",
        "RegionId": i.region_id,
        "ZoneId": "",
        "CreationTime": i.created_at,
        "InstanceNetworkType": if vpc { "vpc" } else { "classic" },
        "SecurityGroupIds": { "SecurityGroupId": groups },
        "VpcAttributes": {
            "VpcId": nic.vpc_id.clone().unwrap_or_default(),
            "VSwitchId": nic.vswitch_id,
            "PrivateIpAddress": { "IpAddress": if vpc { vec![nic.private_ip.clone()] } else { vec![] } },
            "NatIpAddress": "",
        },
        "InnerIpAddress": { "IpAddress": if vpc { vec![] } else { vec![nic.private_ip.clone()] } },
        "PublicIpAddress": { "IpAddress": nic.public_ip.iter().cloned().collect::<Vec<_>>() },
        "NetworkInterfaces": { "NetworkInterface": [{
            "NetworkInterfaceId": nic.id,
            "Type": "Primary",
            "PrimaryIpAddress": nic.private_ip,
        }]},
    }))
}

pub fn describe_instances(cfg: &Config, tx: &mut dyn Tx, account: &Account, p: &Params) -> HResult {
    let region_id = region(cfg, p)?;
    let (number, size) = page(p, 100)?;
    let wanted = p.json_string_list(
        "InstanceIds",
        ApiError::InvalidParameter("InstanceIds".into()),
    )?;
    let mut out = Vec::new();
    for i in tx.instances(account.id, region_id)? {
        if wanted.as_ref().is_some_and(|w| !w.contains(&i.id)) {
            continue;
        }
        let v = instance_json(tx, &i)?;
        if let Some(g) = p.opt("SecurityGroupId") {
            let has = v["SecurityGroupIds"]["SecurityGroupId"]
                .as_array()
                .is_some_and(|a| a.iter().any(|x| x == g));
            if !has {
                continue;
            }
        }
        if let Some(vpc) = p.opt("VpcId") {
            if v["VpcAttributes"]["VpcId"] != vpc {
                continue;
            }
        }
        out.push(v);
    }
    Ok(obj(json!({
        "TotalCount": out.len(),
        "PageNumber": number,
        "PageSize": size,
        "Instances": { "Instance": page_slice(&out, number, size) },
    })))
}

pub fn delete_instance(cfg: &Config, tx: &mut dyn Tx, account: &Account, p: &Params) -> HResult {
    let region_id = region(cfg, p)?;
    let id = p.required("InstanceId")?;
    match tx.instance(id)? {
        Some(i) if i.account_id == account.id && i.region_id == region_id => {}
        _ => return Err(ApiError::InvalidInstanceIdNotFound),
    }
    tx.delete_instance(id)?;
    Ok(Reply::new())
}

pub fn create_network_interface(
    cfg: &Config,
    tx: &mut dyn Tx,
    account: &Account,
    p: &Params,
) -> HResult {
    let region_id = region(cfg, p)?;
    let groups = requested_groups(tx, account, region_id, p)?;
    let vpc_id = groups[0].vpc_id.clone();
    let wanted = parse_ip(p, "PrimaryIpAddress", ApiError::PrivateIpMalformed)?;
    let public = parse_ip(p, "PublicIpAddress", ApiError::PublicIpMalformed)?;
    let mut hint = 0;
    let ip = private_ip(tx, region_id, vpc_id.as_deref(), wanted, &mut hint)?;
    let nic = NetworkInterface {
        id: ids::network_interface_id(),
        account_id: account.id,
        region_id: region_id.to_string(),
        vpc_id: vpc_id.clone(),
        vswitch_id: vswitch_for(vpc_id.as_deref(), p),
        instance_id: None,
        name: p.opt("NetworkInterfaceName").unwrap_or("").to_string(),
        private_ip: ip.clone(),
        public_ip: public.map(|x| Ipv4Addr::from(x).to_string()),
        created_at: now_iso(),
    };
    tx.insert_nic(&nic)?;
    let ids: Vec<String> = groups.iter().map(|g| g.id.clone()).collect();
    tx.set_nic_groups(&nic.id, &ids)?;
    Ok(obj(json!({
        "NetworkInterfaceId": nic.id,
        "Status": "Available",
        "Type": "Secondary",
        "VpcId": nic.vpc_id.unwrap_or_default(),
        "VSwitchId": nic.vswitch_id,
        "PrivateIpAddress": ip,
        "SecurityGroupIds": { "SecurityGroupId": ids },
    })))
}

pub fn describe_network_interfaces(
    cfg: &Config,
    tx: &mut dyn Tx,
    account: &Account,
    p: &Params,
) -> HResult {
    let region_id = region(cfg, p)?;
    let wanted = p.repeated("NetworkInterfaceId")?;
    let (number, size) = page(p, 500)?;
    let mut out = Vec::new();
    for n in tx.nics(account.id, region_id)? {
        if !wanted.is_empty() && !wanted.contains(&n.id) {
            continue;
        }
        if p.opt("InstanceId")
            .is_some_and(|i| n.instance_id.as_deref() != Some(i))
        {
            continue;
        }
        if p.opt("VpcId")
            .is_some_and(|v| n.vpc_id.as_deref() != Some(v))
        {
            continue;
        }
        let groups = tx.nic_groups(&n.id)?;
        if p.opt("SecurityGroupId")
            .is_some_and(|g| !groups.iter().any(|x| x == g))
        {
            continue;
        }
        out.push(json!({
            "NetworkInterfaceId": n.id,
            "NetworkInterfaceName": n.name,
            "Status": if n.instance_id.is_some() { "InUse" } else { "Available" },
            "Type": if n.is_primary() { "Primary" } else { "Secondary" },
            "VpcId": n.vpc_id.clone().unwrap_or_default(),
            "VSwitchId": n.vswitch_id,
            "PrivateIpAddress": n.private_ip,
            "InstanceId": n.instance_id.clone().unwrap_or_default(),
            "CreationTime": n.created_at,
            "SecurityGroupIds": { "SecurityGroupId": groups },
            "AssociatedPublicIp": { "PublicIpAddress": n.public_ip.clone().unwrap_or_default() },
        }));
    }
    Ok(obj(json!({
        "TotalCount": out.len(),
        "PageNumber": number,
        "PageSize": size,
        "NetworkInterfaceSets": { "NetworkInterfaceSet": page_slice(&out, number, size) },
    })))
}

pub fn delete_network_interface(
    cfg: &Config,
    tx: &mut dyn Tx,
    account: &Account,
    p: &Params,
) -> HResult {
    let region_id = region(cfg, p)?;
    let nic = own_nic(tx, account, region_id, p.required("NetworkInterfaceId")?)?;
    if nic.is_primary() {
        return Err(ApiError::DeletePrimaryNic);
    }
    tx.delete_nic(&nic.id)?;
    Ok(Reply::new())
}

pub fn own_nic(
    tx: &mut dyn Tx,
    account: &Account,
    region_id: &str,
    id: &str,
) -> Result<NetworkInterface, ApiError> {
    match tx.nic(id)? {
        Some(n) if n.account_id == account.id && n.region_id == region_id => Ok(n),
        _ => Err(ApiError::InvalidNetworkInterfaceIdNotFound),
    }
}

/// The interface a call names: `NetworkInterfaceId`, or an instance's primary one.
pub fn target_nic(
    tx: &mut dyn Tx,
    account: &Account,
    region_id: &str,
    p: &Params,
) -> Result<NetworkInterface, ApiError> {
    if let Some(id) = p.opt("NetworkInterfaceId") {
        return own_nic(tx, account, region_id, id);
    }
    let Some(id) = p.opt("InstanceId") else {
        return Err(ApiError::MissingParameter("InstanceId".into()));
    };
    match tx.instance(id)? {
        Some(i) if i.account_id == account.id && i.region_id == region_id => {
            tx.primary_nic(&i.id)?.ok_or(ApiError::InternalError)
        }
        _ => Err(ApiError::InvalidInstanceIdNotFound),
    }
}

pub fn join_security_group(
    cfg: &Config,
    tx: &mut dyn Tx,
    account: &Account,
    p: &Params,
) -> HResult {
    let region_id = region(cfg, p)?;
    let group_id = p.required("SecurityGroupId")?;
    let nic = target_nic(tx, account, region_id, p)?;
    let group = own_group(tx, account, region_id, group_id)?;
    tx.lock_group(&group.id)?;
    let mut current = tx.nic_groups(&nic.id)?;
    if current.contains(&group.id) {
        return Err(ApiError::AlreadyInGroup);
    }
    if current.len() >= MAX_GROUPS_PER_NIC {
        return Err(ApiError::NicGroupLimit);
    }
    if group.vpc_id != nic.vpc_id {
        return Err(ApiError::NicNetworkMismatch);
    }
    let mut all = Vec::new();
    for id in &current {
        if let Some(g) = tx.group(id)? {
            all.push(g);
        }
    }
    all.push(group.clone());
    check_group_set(&all)?;
    current.push(group.id);
    tx.set_nic_groups(&nic.id, &current)?;
    Ok(Reply::new())
}

pub fn leave_security_group(
    cfg: &Config,
    tx: &mut dyn Tx,
    account: &Account,
    p: &Params,
) -> HResult {
    let region_id = region(cfg, p)?;
    let group_id = p.required("SecurityGroupId")?;
    let nic = target_nic(tx, account, region_id, p)?;
    let group = own_group(tx, account, region_id, group_id)?;
    let mut current = tx.nic_groups(&nic.id)?;
    if !current.contains(&group.id) {
        return Err(ApiError::NotInGroup);
    }
    if current.len() == 1 {
        return Err(ApiError::LastGroup);
    }
    current.retain(|g| g != &group.id);
    tx.set_nic_groups(&nic.id, &current)?;
    Ok(Reply::new())
}
