//! What an enforcement agent needs for the interfaces it protects, in one consistent
//! snapshot: their groups with every rule, the member addresses of every group those
//! rules name (and of their own groups, for inner access), and the revision it is at.

use std::collections::BTreeSet;

use palisade_model::*;
use palisade_store::Tx;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::membership::{own_nic, target_nic};
use crate::params::Params;
use crate::service::{obj, permission_json, region, wrap_list, Config, HResult, Reply};

pub fn describe_enforcement_state(
    cfg: &Config,
    tx: &mut dyn Tx,
    account: &Account,
    p: &Params,
) -> HResult {
    let region_id = region(cfg, p)?;
    let mut nics = Vec::new();
    for id in p.repeated("NetworkInterfaceId")? {
        nics.push(own_nic(tx, account, region_id, &id)?);
    }
    for id in p.repeated("InstanceId")? {
        let mut one = Params::new();
        one.push("InstanceId", &id);
        nics.push(target_nic(tx, account, region_id, &one)?);
    }
    if nics.is_empty() {
        return Err(ApiError::MissingParameter("NetworkInterfaceId.1".into()));
    }
    let mut groups: BTreeSet<String> = BTreeSet::new();
    let mut nic_json = Vec::new();
    for n in &nics {
        let ids = tx.nic_groups(&n.id)?;
        groups.extend(ids.iter().cloned());
        nic_json.push(json!({
            "NetworkInterfaceId": n.id,
            "InstanceId": n.instance_id.clone().unwrap_or_default(),
            "PrivateIpAddress": n.private_ip,
            "PublicIpAddress": n.public_ip.clone().unwrap_or_default(),
            "SecurityGroupIds": { "SecurityGroupId": ids },
        }));
    }
    let mut named: BTreeSet<String> = groups.clone();
    let mut group_json = Vec::new();
    let mut names = std::collections::HashMap::new();
    for gid in &groups {
        let Some(g) = tx.group(gid)? else { continue };
        let rules = tx.permissions(&g.id)?;
        let mut perms = Vec::with_capacity(rules.len());
        for r in &rules {
            if let Peer::Group { group_id, .. } = &r.peer {
                named.insert(group_id.clone());
            }
            perms.push(permission_json(tx, &mut names, r)?);
        }
        let mut entry = obj(json!({
            "SecurityGroupId": g.id,
            "SecurityGroupType": g.group_type.as_str(),
            "VpcId": g.vpc_id.clone().unwrap_or_default(),
            "InnerAccessPolicy": g.inner_access_policy.as_str(),
        }));
        entry.insert("Permissions".into(), wrap_list("Permission", perms));
        group_json.push(Value::Object(entry));
    }
    let mut sets: Vec<Value> = Vec::new();
    for gid in &named {
        let ips: Vec<String> = tx
            .group_members(gid)?
            .into_iter()
            .map(|n| n.private_ip)
            .collect();
        sets.push(json!({ "SecurityGroupId": gid, "IpAddresses": { "IpAddress": ips } }));
    }
    let mut reply = Reply::new();
    reply.insert("Revision".into(), json!(tx.revision()?));
    reply.insert(
        "NetworkInterfaces".into(),
        wrap_list("NetworkInterface", nic_json),
    );
    reply.insert(
        "SecurityGroups".into(),
        wrap_list("SecurityGroup", group_json),
    );
    reply.insert("MemberSets".into(), wrap_list("MemberSet", sets));
    Ok(reply)
}
