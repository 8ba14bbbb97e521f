//! The control plane through its real binary and HTTP: the seed's examples and every
//! error code of its table, the other actions, authentication, isolation, durability.

mod common;

use common::*;
use serde_json::Value;

fn seed_example_1(group: &str) -> Vec<(&str, &str)> {
    vec![
        ("SecurityGroupId", group),
        ("SourceCidrIp", "0.0.0.0/0"),
        ("IpProtocol", "tcp"),
        ("PortRange", "1/65535"),
        ("NicType", "intranet"),
        ("Policy", "Allow"),
    ]
}

#[test]
fn seed_examples_succeed_as_written() {
    let s = Server::start(&[]);
    let c = s.client();
    let g = c.create_group(&[]);
    let src = c.create_group(&[]);
    c.ok("AuthorizeSecurityGroup", &seed_example_1(&g));
    c.ok(
        "AuthorizeSecurityGroup",
        &[
            ("SecurityGroupId", &g),
            ("SourceGroupId", &src),
            ("SourceGroupOwnerAccount", "test@aliyun.com"),
            ("IpProtocol", "tcp"),
            ("PortRange", "1/65535"),
            ("NicType", "intranet"),
            ("Policy", "Drop"),
        ],
    );
    let rules = c.rules(&g, &[("NicType", "intranet")]);
    assert_eq!(rules.len(), 2);
    assert_eq!(rules[0]["Policy"], "Accept");
    assert_eq!(rules[0]["IpProtocol"], "TCP");
    assert_eq!(rules[0]["Priority"], 1);
    assert_eq!(rules[0]["SourceCidrIp"], "0.0.0.0/0");
    assert_eq!(rules[1]["Policy"], "Drop");
    assert_eq!(rules[1]["SourceGroupId"], src.as_str());
    assert_eq!(rules[1]["SourceGroupOwnerAccount"], ACCOUNT_ID);
    assert!(rules[1]["SecurityGroupRuleId"]
        .as_str()
        .unwrap()
        .starts_with("sgr-"));
    // A classic group answers one NIC type per call, internet by default.
    assert_eq!(c.rules(&g, &[]).len(), 0);
}

#[test]
fn every_error_of_the_seed_table_is_reachable() {
    let s = Server::start(&["--rule-quota", "3"]);
    let c = s.client();
    let vpc = c.create_vpc();
    let vpc2 = c.create_vpc();
    let classic = c.create_group(&[]);
    let in_vpc = c.create_group(&[("VpcId", &vpc)]);
    let in_vpc2 = c.create_group(&[("VpcId", &vpc2)]);
    let base = |g: &str, extra: &[(&'static str, &'static str)]| -> Vec<(String, String)> {
        let mut p: Vec<(String, String)> = vec![
            ("SecurityGroupId".into(), g.into()),
            ("IpProtocol".into(), "tcp".into()),
            ("PortRange".into(), "22/22".into()),
            ("SourceCidrIp".into(), "10.0.0.0/8".into()),
        ];
        for (k, v) in extra {
            p.retain(|(pk, _)| pk != k);
            if !v.is_empty() {
                p.push((k.to_string(), v.to_string()));
            }
        }
        p
    };
    let check = |g: &str, extra: &[(&'static str, &'static str)], code: &str, status: u16| {
        let p = base(g, extra);
        let refs: Vec<(&str, &str)> = p.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let body = c.err("AuthorizeSecurityGroup", &refs, code, status);
        assert!(body["Message"].as_str().unwrap().len() > 5);
        body
    };
    let m = check(
        &classic,
        &[("IpProtocol", "tcpx")],
        "InvalidIpProtocol.Malformed",
        400,
    );
    assert_eq!(
        m["Message"],
        "The specified parameter \"PortRange\" is not valid."
    );
    check(
        &classic,
        &[("Priority", "high")],
        "InvalidPriority.Malformed",
        400,
    );
    check(
        &classic,
        &[("Priority", "101")],
        "InvalidPriority.ValueNotSupported",
        400,
    );
    check(
        &classic,
        &[("Priority", "0")],
        "InvalidPriority.ValueNotSupported",
        400,
    );
    check(
        &classic,
        &[("SourceCidrIp", "10.0.0.300/8")],
        "InvalidSourceCidrIp.Malformed",
        400,
    );
    check(
        &classic,
        &[("DestCidrIp", "10.0.0/8")],
        "InvalidDestCidrIp.Malformed",
        400,
    );
    check(
        &classic,
        &[("Policy", "maybe")],
        "InvalidPolicy.Malformed",
        400,
    );
    check(
        &classic,
        &[("NicType", "wifi")],
        "InvalidNicType.ValueNotSupported",
        400,
    );
    check(
        &in_vpc,
        &[("NicType", "internet")],
        "InvalidNicType.Mismatch",
        400,
    );
    check(
        &classic,
        &[("Description", "http://spam")],
        "InvalidSecurityGroupDiscription.Malformed",
        400,
    );
    let long = "d".repeat(513);
    let p = [
        ("SecurityGroupId", classic.as_str()),
        ("IpProtocol", "tcp"),
        ("PortRange", "22/22"),
        ("SourceCidrIp", "10.0.0.0/8"),
        ("Description", long.as_str()),
    ];
    c.err(
        "AuthorizeSecurityGroup",
        &p,
        "InvalidSecurityGroupDiscription.Malformed",
        400,
    );
    check(&classic, &[("PortRange", "-1/-1")], "OperationDenied", 400);
    check(&classic, &[("IpProtocol", "icmp")], "OperationDenied", 400);
    check(&classic, &[("SourceCidrIp", "")], "MissingParameter", 403);
    // Group sources.
    let grp = |g: &str, src: &str, nic: &str, owner: Option<&str>| {
        let mut p = vec![
            ("SecurityGroupId".to_string(), g.to_string()),
            ("IpProtocol".into(), "tcp".into()),
            ("PortRange".into(), "22/22".into()),
            ("SourceGroupId".into(), src.to_string()),
        ];
        if !nic.is_empty() {
            p.push(("NicType".into(), nic.into()));
        }
        if let Some(o) = owner {
            p.push(("SourceGroupOwnerAccount".into(), o.into()));
        }
        p
    };
    let call = |p: Vec<(String, String)>, code: &str, status: u16| {
        let refs: Vec<(&str, &str)> = p.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        c.err("AuthorizeSecurityGroup", &refs, code, status);
    };
    let classic2 = c.create_group(&[]);
    call(
        grp(&classic, &classic2, "", None),
        "InvalidSourceGroupId.Mismatch",
        403,
    );
    call(
        grp(&classic, &classic2, "internet", None),
        "InvalidSourceGroupId.Mismatch",
        403,
    );
    call(
        grp(&in_vpc, &in_vpc2, "intranet", None),
        "InvalidSourceGroupId.Mismatch",
        400,
    );
    call(
        grp(&classic, &in_vpc, "intranet", None),
        "InvalidNetworkType.Mismatch",
        403,
    );
    call(
        grp(&classic, &classic, "intranet", None),
        "InvalidParamter.Conflict",
        403,
    );
    call(
        grp(&classic, "sg-doesnotexist000000", "intranet", None),
        "InvalidSourceGroupId.NotFound",
        404,
    );
    call(
        grp(&classic, &classic2, "intranet", Some("nobody@example.com")),
        "InvalidSourceGroup.NotFound",
        400,
    );
    // Unknown group and region.
    check(
        "sg-doesnotexist000000",
        &[],
        "InvalidSecurityGroupId.NotFound",
        404,
    );
    let p = base(&classic, &[]);
    let mut refs: Vec<(&str, &str)> = p.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    refs.push(("RegionId", "mars-north-1"));
    c.err(
        "AuthorizeSecurityGroup",
        &refs,
        "InvalidRegionId.NotFound",
        404,
    );
    // The quota (3 here).
    for port in ["1/1", "2/2", "3/3"] {
        let p = base(&classic, &[]);
        let mut refs: Vec<(&str, &str)> = p
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .filter(|(k, _)| *k != "PortRange")
            .collect();
        refs.push(("PortRange", port));
        c.ok("AuthorizeSecurityGroup", &refs);
    }
    check(&classic, &[], "AuthorizationLimitExceed", 403);
    assert_eq!(c.rules(&classic, &[]).len(), 3);
}

#[test]
fn duplicates_fail_by_default_and_are_ignored_on_request() {
    let s = Server::start(&[]);
    let c = s.client();
    let g = c.create_group(&[]);
    c.ok("AuthorizeSecurityGroup", &seed_example_1(&g));
    let mut again = seed_example_1(&g);
    again.push(("Priority", "7"));
    again.push(("Description", "same rule, other words"));
    c.err(
        "AuthorizeSecurityGroup",
        &again,
        "InvalidPermission.Duplicate",
        400,
    );
    // The same block spelled with host bits is the same rule.
    let mut host_bits = seed_example_1(&g);
    host_bits[1] = ("SourceCidrIp", "0.0.0.1/0");
    c.err(
        "AuthorizeSecurityGroup",
        &host_bits,
        "InvalidPermission.Duplicate",
        400,
    );
    assert_eq!(c.rules(&g, &[("NicType", "intranet")]).len(), 1);

    let s = Server::start(&["--duplicate-rule", "ignore"]);
    let c = s.client();
    let g = c.create_group(&[]);
    c.ok("AuthorizeSecurityGroup", &seed_example_1(&g));
    c.ok("AuthorizeSecurityGroup", &seed_example_1(&g));
    assert_eq!(c.rules(&g, &[("NicType", "intranet")]).len(), 1);
}

#[test]
fn permissions_list_is_all_or_nothing() {
    let s = Server::start(&[]);
    let c = s.client();
    let vpc = c.create_vpc();
    let g = c.create_group(&[("VpcId", &vpc)]);
    c.ok(
        "AuthorizeSecurityGroup",
        &[
            ("SecurityGroupId", &g),
            ("Permissions.1.IpProtocol", "TCP"),
            ("Permissions.1.PortRange", "22/22"),
            ("Permissions.1.SourceCidrIp", "10.0.0.0/8"),
            ("Permissions.1.Description", "ssh from *intranet*"),
            ("Permissions.2.IpProtocol", "icmp"),
            ("Permissions.2.PortRange", "-1/-1"),
            ("Permissions.2.SourceCidrIp", "0.0.0.0/0"),
            ("Permissions.2.Policy", "drop"),
            ("Permissions.2.Priority", "5"),
        ],
    );
    let rules = c.rules(&g, &[]);
    assert_eq!(rules.len(), 2);
    assert_eq!(rules[0]["NicType"], "intranet");
    assert_eq!(rules[0]["Description"], "ssh from *intranet*");
    assert_eq!(rules[1]["Priority"], 5);
    // One bad rule spoils the batch: nothing of it is added.
    c.err(
        "AuthorizeSecurityGroup",
        &[
            ("SecurityGroupId", &g),
            ("Permissions.1.IpProtocol", "udp"),
            ("Permissions.1.PortRange", "53/53"),
            ("Permissions.1.SourceCidrIp", "10.0.0.0/8"),
            ("Permissions.2.IpProtocol", "udp"),
            ("Permissions.2.PortRange", "54/54"),
            ("Permissions.2.SourceCidrIp", "10.0.0.999/8"),
        ],
        "InvalidSourceCidrIp.Malformed",
        400,
    );
    c.err(
        "AuthorizeSecurityGroup",
        &[
            ("SecurityGroupId", &g),
            ("Permissions.1.IpProtocol", "udp"),
            ("Permissions.1.PortRange", "53/53"),
            ("Permissions.1.SourceCidrIp", "10.0.0.0/8"),
            ("Permissions.2.IpProtocol", "UDP"),
            ("Permissions.2.PortRange", "53/53"),
            ("Permissions.2.SourceCidrIp", "10.0.0.0/8"),
        ],
        "InvalidParam.DuplicatePermissions",
        400,
    );
    c.err(
        "AuthorizeSecurityGroup",
        &[
            ("SecurityGroupId", &g),
            ("Permissions.1.IpProtocol", "udp"),
            ("Permissions.1.PortRange", "53/53"),
            ("Permissions.1.SourceCidrIp", "10.0.0.0/8"),
            ("IpProtocol", "tcp"),
        ],
        "InvalidParam.Permissions",
        400,
    );
    assert_eq!(c.rules(&g, &[]).len(), 2);
}

#[test]
fn egress_revoke_and_modify() {
    let s = Server::start(&[]);
    let c = s.client();
    let vpc = c.create_vpc();
    let g = c.create_group(&[("VpcId", &vpc)]);
    let peer = c.create_group(&[("VpcId", &vpc)]);
    c.ok(
        "AuthorizeSecurityGroupEgress",
        &[
            ("SecurityGroupId", &g),
            ("IpProtocol", "tcp"),
            ("PortRange", "443/443"),
            ("DestCidrIp", "0.0.0.0/0"),
        ],
    );
    c.ok(
        "AuthorizeSecurityGroupEgress",
        &[
            ("SecurityGroupId", &g),
            ("IpProtocol", "all"),
            ("PortRange", "-1/-1"),
            ("DestGroupId", &peer),
            ("Policy", "drop"),
        ],
    );
    c.ok(
        "AuthorizeSecurityGroup",
        &[
            ("SecurityGroupId", &g),
            ("IpProtocol", "udp"),
            ("PortRange", "53/53"),
            ("SourceCidrIp", "10.1.0.0/16"),
        ],
    );
    c.err(
        "AuthorizeSecurityGroupEgress",
        &[
            ("SecurityGroupId", &g),
            ("IpProtocol", "tcp"),
            ("PortRange", "1/2"),
        ],
        "MissingParameter",
        403,
    );
    let egress = c.rules(&g, &[("Direction", "egress")]);
    assert_eq!(egress.len(), 2);
    assert_eq!(egress[0]["DestCidrIp"], "0.0.0.0/0");
    assert_eq!(egress[1]["DestGroupId"], peer.as_str());
    assert_eq!(egress[1]["IpProtocol"], "ALL");
    assert_eq!(c.rules(&g, &[("Direction", "ingress")]).len(), 1);
    c.err(
        "DeleteSecurityGroup",
        &[("SecurityGroupId", &peer)],
        "DependencyViolation",
        403,
    );
    let refs = c.ok(
        "DescribeSecurityGroupReferences",
        &[("SecurityGroupId.1", &peer)],
    );
    assert_eq!(
        refs["SecurityGroupReferences"]["SecurityGroupReference"][0]["ReferencingSecurityGroups"]
            ["ReferencingSecurityGroup"][0]["SecurityGroupId"],
        g.as_str()
    );

    // Modify by id: description and priority change, the NIC type may not.
    let id = egress[0]["SecurityGroupRuleId"]
        .as_str()
        .unwrap()
        .to_string();
    c.ok(
        "ModifySecurityGroupEgressRule",
        &[
            ("SecurityGroupId", &g),
            ("SecurityGroupRuleId", &id),
            ("Description", "web out"),
            ("Priority", "9"),
        ],
    );
    let r = &c.rules(&g, &[("Direction", "egress")])[0];
    assert_eq!(
        (r["Description"].as_str(), r["Priority"].as_i64()),
        (Some("web out"), Some(9))
    );
    c.err(
        "ModifySecurityGroupEgressRule",
        &[("SecurityGroupId", &g), ("SecurityGroupRuleId", "sgr-nope")],
        "InvalidSecurityGroupRuleId.NotFound",
        404,
    );
    // Legacy modify: located by fields.
    c.ok(
        "ModifySecurityGroupRule",
        &[
            ("SecurityGroupId", &g),
            ("IpProtocol", "UDP"),
            ("PortRange", "53/53"),
            ("SourceCidrIp", "10.1.0.0/16"),
            ("Description", "dns"),
        ],
    );
    assert_eq!(
        c.rules(&g, &[("Direction", "ingress")])[0]["Description"],
        "dns"
    );
    c.err(
        "ModifySecurityGroupRule",
        &[
            ("SecurityGroupId", &g),
            ("IpProtocol", "UDP"),
            ("PortRange", "54/54"),
            ("SourceCidrIp", "10.1.0.0/16"),
            ("Description", "dns"),
        ],
        "SecurityGroupRule.NotFound",
        404,
    );

    // Revoke by fields, spelled as Describe reports them; then by id.
    c.ok(
        "RevokeSecurityGroupEgress",
        &[
            ("SecurityGroupId", &g),
            ("IpProtocol", "ALL"),
            ("PortRange", "-1/-1"),
            ("DestGroupId", &peer),
            ("DestGroupOwnerAccount", ACCOUNT_ID),
            ("Policy", "Drop"),
            ("NicType", "intranet"),
        ],
    );
    c.err(
        "RevokeSecurityGroupEgress",
        &[
            ("SecurityGroupId", &g),
            ("IpProtocol", "ALL"),
            ("PortRange", "-1/-1"),
            ("DestGroupId", &peer),
            ("Policy", "Drop"),
        ],
        "InvalidSecurityGroupRule.RuleNotExist",
        400,
    );
    c.ok(
        "RevokeSecurityGroupEgress",
        &[("SecurityGroupId", &g), ("SecurityGroupRuleId.1", &id)],
    );
    c.err(
        "RevokeSecurityGroupEgress",
        &[("SecurityGroupId", &g), ("SecurityGroupRuleId.1", &id)],
        "InvalidSecurityGroupRuleId.NotFound",
        404,
    );
    assert!(c.rules(&g, &[("Direction", "egress")]).is_empty());
    // The peer is free now.
    c.ok("DeleteSecurityGroup", &[("SecurityGroupId", &peer)]);
    c.err(
        "DescribeSecurityGroupAttribute",
        &[("SecurityGroupId", &peer)],
        "InvalidSecurityGroupId.NotFound",
        404,
    );
}

#[test]
fn groups_describe_filters_paging_and_attributes() {
    let s = Server::start(&[]);
    let c = s.client();
    let vpc = c.create_vpc();
    let mut ids = Vec::new();
    for i in 0..7 {
        let name = format!("grp-{i}");
        let mut p = vec![("SecurityGroupName", name.as_str())];
        if i % 2 == 0 {
            p.push(("VpcId", vpc.as_str()));
        }
        ids.push(c.create_group(&p));
    }
    let ent = c.create_group(&[
        ("VpcId", &vpc),
        ("SecurityGroupType", "enterprise"),
        ("Description", "advanced: ünï *~+/:"),
    ]);
    let all = c.ok("DescribeSecurityGroups", &[("PageSize", "50")]);
    assert_eq!(all["TotalCount"], 8);
    let page2 = c.ok(
        "DescribeSecurityGroups",
        &[("PageSize", "3"), ("PageNumber", "2")],
    );
    let got: Vec<&str> = page2["SecurityGroups"]["SecurityGroup"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["SecurityGroupId"].as_str().unwrap())
        .collect();
    assert_eq!(got, vec![ids[3].as_str(), ids[4].as_str(), ids[5].as_str()]);
    assert_eq!(
        c.ok("DescribeSecurityGroups", &[("VpcId", &vpc)])["TotalCount"],
        5
    );
    assert_eq!(
        c.ok("DescribeSecurityGroups", &[("NetworkType", "classic")])["TotalCount"],
        3
    );
    assert_eq!(
        c.ok(
            "DescribeSecurityGroups",
            &[("SecurityGroupType", "enterprise")]
        )["TotalCount"],
        1
    );
    assert_eq!(
        c.ok("DescribeSecurityGroups", &[("SecurityGroupName", "grp-3")])["TotalCount"],
        1
    );
    let list = format!("[\"{}\",\"{}\"]", ids[0], ids[6]);
    assert_eq!(
        c.ok("DescribeSecurityGroups", &[("SecurityGroupIds", &list)])["TotalCount"],
        2
    );
    c.err(
        "DescribeSecurityGroups",
        &[("SecurityGroupIds", "sg-a,sg-b")],
        "InvalidSecurityGroupIds.Malformed",
        400,
    );
    c.err(
        "DescribeSecurityGroups",
        &[("PageSize", "51")],
        "InvalidPageSize.Malformed",
        400,
    );
    // Token paging walks everything once.
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let mut p = vec![("MaxResults", "3")];
        if !token.is_empty() {
            p.push(("NextToken", token.as_str()));
        }
        let r = c.ok("DescribeSecurityGroups", &p);
        assert!(r.get("TotalCount").is_none());
        for g in r["SecurityGroups"]["SecurityGroup"].as_array().unwrap() {
            seen.push(g["SecurityGroupId"].as_str().unwrap().to_string());
        }
        token = r["NextToken"].as_str().unwrap().to_string();
        if token.is_empty() {
            break;
        }
    }
    assert_eq!(seen.len(), 8);
    c.err(
        "DescribeSecurityGroups",
        &[("NextToken", "garbage")],
        "InvalidNextToken.Malformed",
        400,
    );

    let attr = c.ok(
        "DescribeSecurityGroupAttribute",
        &[("SecurityGroupId", &ent)],
    );
    assert_eq!(attr["InnerAccessPolicy"], "Drop");
    assert_eq!(attr["Description"], "advanced: ünï *~+/:");
    c.err(
        "ModifySecurityGroupPolicy",
        &[("SecurityGroupId", &ent), ("InnerAccessPolicy", "Accept")],
        "InvalidSecurityGroup.IsEnterprise",
        400,
    );
    c.ok(
        "ModifySecurityGroupPolicy",
        &[("SecurityGroupId", &ids[0]), ("InnerAccessPolicy", "drop")],
    );
    c.err(
        "ModifySecurityGroupPolicy",
        &[
            ("SecurityGroupId", &ids[0]),
            ("InnerAccessPolicy", "sometimes"),
        ],
        "InvalidPolicy.Malformed",
        400,
    );
    c.ok(
        "ModifySecurityGroupAttribute",
        &[
            ("SecurityGroupId", &ids[0]),
            ("SecurityGroupName", "renamed"),
            ("Description", "new words 中文"),
        ],
    );
    let a = c.ok(
        "DescribeSecurityGroupAttribute",
        &[("SecurityGroupId", &ids[0])],
    );
    assert_eq!(
        (
            a["SecurityGroupName"].as_str(),
            a["Description"].as_str(),
            a["InnerAccessPolicy"].as_str()
        ),
        (Some("renamed"), Some("new words 中文"), Some("Drop"))
    );
    c.err(
        "ModifySecurityGroupAttribute",
        &[("SecurityGroupId", &ids[0]), ("SecurityGroupName", "1bad")],
        "InvalidSecurityGroupName.Malformed",
        400,
    );
    c.err(
        "CreateSecurityGroup",
        &[("VpcId", "vpc-nope")],
        "InvalidVpcId.NotFound",
        404,
    );
    c.err(
        "CreateSecurityGroup",
        &[("SecurityGroupType", "premium")],
        "InvalidSecurityGroupType.Malformed",
        400,
    );
    // Enterprise groups: accept-only, no group references.
    c.err(
        "AuthorizeSecurityGroup",
        &[
            ("SecurityGroupId", &ent),
            ("IpProtocol", "tcp"),
            ("PortRange", "22/22"),
            ("SourceCidrIp", "10.0.0.0/8"),
            ("Policy", "drop"),
        ],
        "InvalidGroupParameter.OperationDenied",
        400,
    );
    c.err(
        "AuthorizeSecurityGroup",
        &[
            ("SecurityGroupId", &ent),
            ("IpProtocol", "tcp"),
            ("PortRange", "22/22"),
            ("SourceGroupId", &ids[2]),
        ],
        "InvalidGroupAuthParameter.OperationDenied",
        400,
    );
    // VPCs.
    assert_eq!(
        c.ok("DescribeVpcs", &[])["Vpcs"]["Vpc"][0]["VpcId"],
        vpc.as_str()
    );
    c.err("DeleteVpc", &[("VpcId", &vpc)], "DependencyViolation", 403);
    c.err(
        "CreateVpc",
        &[("CidrBlock", "8.8.8.0/24")],
        "InvalidCidrBlock.Malformed",
        400,
    );
    let lone = c.create_vpc();
    c.ok("DeleteVpc", &[("VpcId", &lone)]);
    c.err(
        "DeleteVpc",
        &[("VpcId", &lone)],
        "InvalidVpcId.NotFound",
        404,
    );
}

#[test]
fn protocol_errors_and_authentication() {
    let s = Server::start(&[]);
    let c = s.client();
    // Unknown action, wrong version, missing parameters.
    c.err("LaunchRocket", &[], "InvalidAction.NotFound", 404);
    let mut p = c.common("DescribeRegions", "JSON");
    p.retain(|(k, _)| k != "Version");
    p.push(("Version".into(), "2016-01-01".into()));
    let r = c.send_signed("POST", p);
    assert_eq!((r.status, r.code().as_str()), (400, "InvalidVersion"));
    let r = c.err(
        "DescribeSecurityGroupAttribute",
        &[],
        "MissingParameter",
        400,
    );
    assert!(r["Message"].as_str().unwrap().contains("SecurityGroupId"));
    let mut p = c.common("DescribeSecurityGroups", "JSON");
    p.retain(|(k, _)| k != "RegionId");
    let r = c.send_signed("POST", p);
    assert_eq!((r.status, r.code().as_str()), (400, "MissingParameter"));
    // Wrong secret: the message ends with our string-to-sign after a colon.
    let mut bad = c.clone();
    bad.secret = "wrong".into();
    let r = bad.call("DescribeRegions", &[]);
    assert_eq!(
        (r.status, r.code().as_str()),
        (400, "SignatureDoesNotMatch")
    );
    let msg = r.json()["Message"].as_str().unwrap().to_string();
    assert!(
        msg.contains("server string to sign is:POST&%2F&AccessKeyId%3Dtestak"),
        "{msg}"
    );
    let mut unknown = c.clone();
    unknown.ak = "LTAInobody".into();
    let r = unknown.call("DescribeRegions", &[]);
    assert_eq!(
        (r.status, r.code().as_str()),
        (404, "InvalidAccessKeyId.NotFound")
    );
    // Expired timestamp, reused nonce.
    let mut p = c.common("DescribeRegions", "JSON");
    for (k, v) in p.iter_mut() {
        if k == "Timestamp" {
            *v = timestamp(-16 * 60);
        }
    }
    let r = c.send_signed("POST", p);
    assert_eq!(
        (r.status, r.code().as_str()),
        (400, "InvalidTimeStamp.Expired")
    );
    let p = c.common("DescribeRegions", "JSON");
    assert_eq!(c.send_signed("POST", p.clone()).status, 200);
    let r = c.send_signed("POST", p);
    assert_eq!((r.status, r.code().as_str()), (400, "SignatureNonceUsed"));
    // Unsigned.
    let r = c.send_raw(
        "GET",
        "Action=DescribeRegions&Version=2014-05-26&Format=JSON",
        None,
        &[],
    );
    assert_eq!((r.status, r.code().as_str()), (400, "MissingParameter"));
    // Other methods.
    let r = c.send_raw(
        "PUT",
        "Action=DescribeRegions&Version=2014-05-26&Format=JSON",
        None,
        &[],
    );
    assert_eq!(
        (r.status, r.code().as_str()),
        (403, "UnsupportedHTTPMethod")
    );
    // Malformed list index.
    c.err(
        "AuthorizeSecurityGroup",
        &[
            ("SecurityGroupId", "sg-x"),
            ("Permissions.one.IpProtocol", "tcp"),
        ],
        "InvalidParameter",
        400,
    );
}

#[test]
fn get_and_form_post_and_formats() {
    let s = Server::start(&[]);
    let c = s.client();
    // GET with the query (pop-core's default), signed over GET.
    let mut p = c.common("DescribeRegions", "JSON");
    sign_and(&c, "GET", &mut p);
    let r = c.send_raw("GET", &encode_query(&p), None, &[]);
    assert_eq!(r.status, 200, "{}", r.text);
    // POST with everything in a form body, spaces as '+'.
    let mut p = c.common("CreateSecurityGroup", "JSON");
    p.push(("RegionId".into(), "cn-hangzhou".into()));
    p.push(("Description".into(), "a b+c".into()));
    sign_and(&c, "POST", &mut p);
    let body = encode_query(&p).replace("%20", "+");
    let r = c.send_raw(
        "POST",
        "",
        Some(("application/x-www-form-urlencoded", body.as_bytes())),
        &[],
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let g = r.json()["SecurityGroupId"].as_str().unwrap().to_string();
    assert_eq!(
        c.ok("DescribeSecurityGroupAttribute", &[("SecurityGroupId", &g)])["Description"],
        "a b+c"
    );
    // XML by request, and by default; JSON when Accept asks.
    let r = c.call_fmt("DescribeRegions", "xml", &[]);
    assert_eq!(r.content_type, "text/xml;charset=utf-8");
    assert!(r.text.starts_with(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><DescribeRegionsResponse><RequestId>"
    ));
    let r = c.call_fmt(
        "DescribeSecurityGroupAttribute",
        "XML",
        &[("SecurityGroupId", "sg-nope")],
    );
    assert_eq!(r.status, 404);
    assert!(
        r.text.contains("<Error><RequestId>")
            && r.text
                .contains("<Code>InvalidSecurityGroupId.NotFound</Code>"),
        "{}",
        r.text
    );
    let mut p = c.common("DescribeRegions", "");
    p.retain(|(k, _)| k != "Format");
    sign_and(&c, "POST", &mut p);
    let r = c.send_raw("POST", &encode_query(&p), None, &[]);
    assert_eq!(r.content_type, "text/xml;charset=utf-8");
    let mut p = c.common("DescribeRegions", "");
    p.retain(|(k, _)| k != "Format");
    sign_and(&c, "POST", &mut p);
    let r = c.send_raw(
        "POST",
        &encode_query(&p),
        None,
        &[("accept", "application/json")],
    );
    assert_eq!(r.content_type, "application/json;charset=utf-8");
    let v: Value = r.json();
    assert!(v["RequestId"]
        .as_str()
        .unwrap()
        .chars()
        .all(|ch| !ch.is_ascii_lowercase()));
}

fn sign_and(c: &Client, method: &str, p: &mut Vec<(String, String)>) {
    palisade_api::sign::sign_v1_params(method, p, &c.secret);
}

#[test]
fn accounts_are_isolated() {
    let s = Server::start(&[]);
    let a = s.client();
    let b = s.add_account("bob@example.com");
    let vpc = a.create_vpc();
    let g = a.create_group(&[("VpcId", &vpc)]);
    let bg = b.create_group(&[]);
    a.ok("AuthorizeSecurityGroup", &seed_example_1(&g));
    for (action, extra) in [
        ("DescribeSecurityGroupAttribute", vec![]),
        (
            "ModifySecurityGroupAttribute",
            vec![("SecurityGroupName", "stolen")],
        ),
        (
            "ModifySecurityGroupPolicy",
            vec![("InnerAccessPolicy", "Drop")],
        ),
        (
            "AuthorizeSecurityGroup",
            vec![
                ("IpProtocol", "tcp"),
                ("PortRange", "1/2"),
                ("SourceCidrIp", "1.1.1.1"),
            ],
        ),
        (
            "RevokeSecurityGroup",
            vec![
                ("IpProtocol", "tcp"),
                ("PortRange", "1/65535"),
                ("SourceCidrIp", "0.0.0.0/0"),
                ("NicType", "intranet"),
            ],
        ),
        (
            "ModifySecurityGroupRule",
            vec![
                ("IpProtocol", "tcp"),
                ("PortRange", "1/65535"),
                ("SourceCidrIp", "0.0.0.0/0"),
                ("Description", "x"),
            ],
        ),
        ("DeleteSecurityGroup", vec![]),
    ] {
        let mut p = vec![("SecurityGroupId", g.as_str())];
        p.extend(extra);
        b.err(action, &p, "InvalidSecurityGroupId.NotFound", 404);
    }
    b.err(
        "DescribeSecurityGroupReferences",
        &[("SecurityGroupId.1", &g)],
        "InvalidSecurityGroupId.NotFound",
        404,
    );
    b.err(
        "CreateSecurityGroup",
        &[("VpcId", &vpc)],
        "InvalidVpcId.NotFound",
        404,
    );
    b.err(
        "DeleteVpc",
        &[("VpcId", &vpc)],
        "InvalidVpcId.NotFound",
        404,
    );
    assert_eq!(b.ok("DescribeSecurityGroups", &[])["TotalCount"], 1);
    assert_eq!(b.ok("DescribeVpcs", &[])["TotalCount"], 0);
    assert_eq!(a.rules(&g, &[]).len(), 1);
    // The one way across: a rule naming another account's group.
    let ac = a.create_group(&[]);
    a.ok(
        "AuthorizeSecurityGroup",
        &[
            ("SecurityGroupId", &ac),
            ("IpProtocol", "tcp"),
            ("PortRange", "22/22"),
            ("NicType", "intranet"),
            ("SourceGroupId", &bg),
            ("SourceGroupOwnerAccount", "bob@example.com"),
        ],
    );
    a.err(
        "AuthorizeSecurityGroup",
        &[
            ("SecurityGroupId", &ac),
            ("IpProtocol", "tcp"),
            ("PortRange", "23/23"),
            ("NicType", "intranet"),
            ("SourceGroupId", &bg),
        ],
        "InvalidSourceGroupId.NotFound",
        404,
    );
    b.err(
        "DeleteSecurityGroup",
        &[("SecurityGroupId", &bg)],
        "DependencyViolation",
        403,
    );
}

#[test]
fn client_token_is_idempotent() {
    let s = Server::start(&[]);
    let c = s.client();
    let a = c.ok(
        "CreateSecurityGroup",
        &[("ClientToken", "tok-1"), ("SecurityGroupName", "once")],
    );
    let b = c.ok(
        "CreateSecurityGroup",
        &[("ClientToken", "tok-1"), ("SecurityGroupName", "once")],
    );
    assert_eq!(a["SecurityGroupId"], b["SecurityGroupId"]);
    assert_ne!(a["RequestId"], b["RequestId"]);
    assert_eq!(c.ok("DescribeSecurityGroups", &[])["TotalCount"], 1);
    c.err(
        "CreateSecurityGroup",
        &[("ClientToken", "tok-1"), ("SecurityGroupName", "other")],
        "IdempotentParameterMismatch",
        400,
    );
    let g = a["SecurityGroupId"].as_str().unwrap();
    let mut p = seed_example_1(g);
    p.push(("ClientToken", "tok-2"));
    c.ok("AuthorizeSecurityGroup", &p);
    c.ok("AuthorizeSecurityGroup", &p);
    assert_eq!(c.rules(g, &[("NicType", "intranet")]).len(), 1);
}

#[test]
fn everything_survives_a_restart() {
    let mut s = Server::start(&[]);
    let c = s.client();
    let vpc = c.create_vpc();
    let g = c.create_group(&[("VpcId", &vpc), ("SecurityGroupName", "keep-me")]);
    c.ok(
        "AuthorizeSecurityGroup",
        &[
            ("SecurityGroupId", &g),
            ("IpProtocol", "tcp"),
            ("PortRange", "22/22"),
            ("SourceCidrIp", "10.0.0.0/8"),
            ("Description", "ünï 中文 *~+/:"),
        ],
    );
    let before = c.rules(&g, &[]);
    s.kill_and_restart();
    let c = s.client();
    assert_eq!(c.rules(&g, &[]), before);
    assert_eq!(
        c.ok("DescribeSecurityGroups", &[])["SecurityGroups"]["SecurityGroup"][0]
            ["SecurityGroupName"],
        "keep-me"
    );
    assert_eq!(c.ok("DescribeVpcs", &[])["TotalCount"], 1);
}

#[test]
fn concurrent_authorize_respects_quota_and_never_duplicates() {
    let s = Server::start(&["--rule-quota", "40"]);
    let c = s.client();
    let g = c.create_group(&[]);
    let handles: Vec<_> = (0..16)
        .map(|t| {
            let c = c.clone();
            let g = g.clone();
            std::thread::spawn(move || {
                let mut outcomes = Vec::new();
                for i in 0..10 {
                    // Threads overlap on ports, so many calls race on the same rule.
                    let port = format!("{}/{}", 1000 + (t * 3 + i) % 60, 1000 + (t * 3 + i) % 60);
                    let r = c.call(
                        "AuthorizeSecurityGroup",
                        &[
                            ("SecurityGroupId", &g),
                            ("IpProtocol", "tcp"),
                            ("PortRange", &port),
                            ("SourceCidrIp", "10.0.0.0/8"),
                        ],
                    );
                    outcomes.push((r.status, r.code()));
                }
                outcomes
            })
        })
        .collect();
    let mut ok = 0;
    for h in handles {
        for (status, code) in h.join().unwrap() {
            match (status, code.as_str()) {
                (200, _) => ok += 1,
                (403, "AuthorizationLimitExceed") | (400, "InvalidPermission.Duplicate") => {}
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    let rules = c.rules(&g, &[]);
    assert_eq!(rules.len(), 40);
    assert_eq!(ok, 40);
    assert_eq!(distinct_port_ranges(&rules), 40);
}

#[test]
fn per_key_rate_limit_answers_throttling_user() {
    let s = Server::start(&["--rate-limit", "5"]);
    let c = s.client();
    let other = s.add_account("carol@example.com");
    let mut throttled = 0;
    for _ in 0..40 {
        let r = c.call("DescribeRegions", &[]);
        match (r.status, r.code().as_str()) {
            (200, _) => {}
            (400, "Throttling.User") => throttled += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(throttled >= 25, "only {throttled} of 40 throttled");
    // Another key has its own bucket.
    other.ok("DescribeRegions", &[]);
    // The bucket refills.
    std::thread::sleep(std::time::Duration::from_millis(1200));
    c.ok("DescribeRegions", &[]);
}
