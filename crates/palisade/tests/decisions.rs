//! Instances and interfaces in groups, and CheckSecurityGroupAccess / `palisade check`
//! through the real binary.

mod common;

use common::*;
use serde_json::Value;

fn check(
    c: &Client,
    nic: &str,
    dir: &str,
    proto: &str,
    peer: &str,
    port: &str,
    extra: &[(&str, &str)],
) -> Value {
    let mut p = vec![
        ("NetworkInterfaceId", nic),
        ("Direction", dir),
        ("IpProtocol", proto),
        ("PeerIpAddress", peer),
        ("DestinationPort", port),
    ];
    p.extend_from_slice(extra);
    c.ok("CheckSecurityGroupAccess", &p)
}

fn primary_nic(c: &Client, instance: &str) -> String {
    let list = format!("[\"{instance}\"]");
    let v = c.ok("DescribeInstances", &[("InstanceIds", &list)]);
    v["Instances"]["Instance"][0]["NetworkInterfaces"]["NetworkInterface"][0]["NetworkInterfaceId"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn membership_decisions_and_what_if() {
    let s = Server::start(&[]);
    let c = s.client();
    let vpc = c.create_vpc();
    let web = c.create_group(&[("VpcId", &vpc), ("SecurityGroupName", "web")]);
    let app = c.create_group(&[("VpcId", &vpc), ("SecurityGroupName", "app")]);
    let other = c.create_group(&[("VpcId", &vpc), ("SecurityGroupName", "other")]);
    c.ok(
        "ModifySecurityGroupPolicy",
        &[("SecurityGroupId", &web), ("InnerAccessPolicy", "Drop")],
    );
    let run = c.ok(
        "RunInstances",
        &[
            ("SecurityGroupId", &web),
            ("PrivateIpAddress", "192.168.0.10"),
            ("InstanceName", "web-1"),
        ],
    );
    let web_i = run["InstanceIdSets"]["InstanceIdSet"][0]
        .as_str()
        .unwrap()
        .to_string();
    let run = c.ok(
        "RunInstances",
        &[
            ("SecurityGroupIds.1", &app),
            ("PrivateIpAddress", "192.168.0.20"),
        ],
    );
    let app_i = run["InstanceIdSets"]["InstanceIdSet"][0]
        .as_str()
        .unwrap()
        .to_string();
    let web_nic = primary_nic(&c, &web_i);
    let app_nic = primary_nic(&c, &app_i);
    c.err(
        "RunInstances",
        &[
            ("SecurityGroupId", &web),
            ("PrivateIpAddress", "192.168.0.10"),
        ],
        "InvalidPrivateIpAddress.Duplicated",
        400,
    );
    c.err(
        "RunInstances",
        &[("SecurityGroupId", &web), ("PrivateIpAddress", "10.9.9.9")],
        "InvalidPrivateIpAddress.Mismatch",
        400,
    );
    let inst = c.ok("DescribeInstances", &[("SecurityGroupId", &web)]);
    assert_eq!(inst["TotalCount"], 1);
    assert_eq!(
        inst["Instances"]["Instance"][0]["VpcAttributes"]["PrivateIpAddress"]["IpAddress"][0],
        "192.168.0.10"
    );
    assert_eq!(
        c.ok("DescribeSecurityGroups", &[("SecurityGroupId", &web)])["SecurityGroups"]
            ["SecurityGroup"][0]["EcsCount"],
        1
    );

    c.ok(
        "AuthorizeSecurityGroup",
        &[
            ("SecurityGroupId", &web),
            ("IpProtocol", "tcp"),
            ("PortRange", "22/22"),
            ("SourceGroupId", &app),
            ("Priority", "5"),
        ],
    );
    c.ok(
        "AuthorizeSecurityGroup",
        &[
            ("SecurityGroupId", &web),
            ("IpProtocol", "tcp"),
            ("PortRange", "80/80"),
            ("SourceCidrIp", "0.0.0.0/0"),
            ("Priority", "10"),
        ],
    );
    c.ok(
        "AuthorizeSecurityGroup",
        &[
            ("SecurityGroupId", &web),
            ("IpProtocol", "tcp"),
            ("PortRange", "80/80"),
            ("SourceCidrIp", "10.0.0.0/8"),
            ("Priority", "10"),
            ("Policy", "drop"),
        ],
    );
    let rules = c.rules(&web, &[]);
    let drop_id = rules[2]["SecurityGroupRuleId"]
        .as_str()
        .unwrap()
        .to_string();

    // A member of the source group reaches port 22; a stranger does not.
    let v = check(&c, &web_nic, "ingress", "tcp", "192.168.0.20", "22", &[]);
    assert_eq!(v["Verdict"], "Accept");
    assert_eq!(v["DecidedBy"]["Type"], "Rule");
    assert_eq!(
        v["DecidedBy"]["SecurityGroupRuleId"],
        rules[0]["SecurityGroupRuleId"]
    );
    let v = check(&c, &web_nic, "ingress", "tcp", "192.168.0.99", "22", &[]);
    assert_eq!(
        (v["Verdict"].as_str(), v["DecidedBy"]["Type"].as_str()),
        (Some("Drop"), Some("Default"))
    );
    assert_eq!(
        v["PassedOverRules"]["PassedOverRule"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    // Equal priority: drop wins.
    let v = check(&c, &web_nic, "ingress", "tcp", "10.1.2.3", "80", &[]);
    assert_eq!(
        (
            v["Verdict"].as_str(),
            v["DecidedBy"]["SecurityGroupRuleId"].as_str()
        ),
        (Some("Drop"), Some(drop_id.as_str()))
    );
    let v = check(&c, &web_nic, "ingress", "tcp", "8.8.8.8", "80", &[]);
    assert_eq!(v["Verdict"], "Accept");
    // What-if: without the drop rule 10.1.2.3 gets in; nothing is stored.
    let v = check(
        &c,
        &web_nic,
        "ingress",
        "tcp",
        "10.1.2.3",
        "80",
        &[("WhatIf.Revoke.1", &drop_id)],
    );
    assert_eq!(
        (v["Verdict"].as_str(), v["WhatIf"].as_bool()),
        (Some("Accept"), Some(true))
    );
    assert_eq!(c.rules(&web, &[]).len(), 3);
    let v = check(
        &c,
        &web_nic,
        "ingress",
        "udp",
        "192.168.0.99",
        "53",
        &[
            ("WhatIf.Authorize.1.SecurityGroupId", &web),
            ("WhatIf.Authorize.1.IpProtocol", "udp"),
            ("WhatIf.Authorize.1.PortRange", "53/53"),
            ("WhatIf.Authorize.1.SourceCidrIp", "192.168.0.0/24"),
        ],
    );
    assert_eq!(
        (
            v["Verdict"].as_str(),
            v["DecidedBy"]["SecurityGroupRuleId"].as_str()
        ),
        (Some("Accept"), Some("proposed-1"))
    );
    // Egress: no rule, normal group: accept. Replies of allowed connections pass.
    let v = check(&c, &web_nic, "egress", "tcp", "1.1.1.1", "443", &[]);
    assert_eq!(
        (v["Verdict"].as_str(), v["DecidedBy"]["Type"].as_str()),
        (Some("Accept"), Some("Default"))
    );
    let v = check(
        &c,
        &web_nic,
        "egress",
        "tcp",
        "192.168.0.20",
        "40000",
        &[("SourcePort", "22"), ("Reply", "true")],
    );
    assert_eq!(v["Verdict"], "Accept", "{v}");

    // Membership changes move the answer: app leaves the source group.
    c.ok(
        "JoinSecurityGroup",
        &[("SecurityGroupId", &other), ("InstanceId", &app_i)],
    );
    c.err(
        "JoinSecurityGroup",
        &[("SecurityGroupId", &other), ("InstanceId", &app_i)],
        "InvalidInstanceId.AlreadyExists",
        403,
    );
    c.ok(
        "LeaveSecurityGroup",
        &[("SecurityGroupId", &app), ("InstanceId", &app_i)],
    );
    c.err(
        "LeaveSecurityGroup",
        &[("SecurityGroupId", &app), ("InstanceId", &app_i)],
        "InvalidSecurityGroupAssociation.NotFound",
        404,
    );
    c.err(
        "LeaveSecurityGroup",
        &[
            ("SecurityGroupId", &other),
            ("NetworkInterfaceId", &app_nic),
        ],
        "InstanceLastSecurityGroup",
        403,
    );
    let v = check(&c, &web_nic, "ingress", "tcp", "192.168.0.20", "22", &[]);
    assert_eq!(v["Verdict"], "Drop");

    // Inner access: two members of a normal group with Accept reach each other.
    let eni = c.ok(
        "CreateNetworkInterface",
        &[
            ("SecurityGroupId", &other),
            ("PrimaryIpAddress", "192.168.0.30"),
        ],
    );
    let eni = eni["NetworkInterfaceId"].as_str().unwrap().to_string();
    let v = check(&c, &eni, "ingress", "tcp", "192.168.0.20", "5432", &[]);
    assert_eq!(
        (v["Verdict"].as_str(), v["DecidedBy"]["Type"].as_str()),
        (Some("Accept"), Some("InnerAccess"))
    );
    let ifs = c.ok("DescribeNetworkInterfaces", &[("SecurityGroupId", &other)]);
    assert_eq!(ifs["TotalCount"], 2);

    // Limits and mismatches.
    let classic = c.create_group(&[]);
    c.err(
        "JoinSecurityGroup",
        &[("SecurityGroupId", &classic), ("NetworkInterfaceId", &eni)],
        "InvalidInstanceId.Mismatch",
        400,
    );
    let ent = c.create_group(&[("VpcId", &vpc), ("SecurityGroupType", "enterprise")]);
    c.err(
        "JoinSecurityGroup",
        &[("SecurityGroupId", &ent), ("NetworkInterfaceId", &eni)],
        "InvalidSecurityGroupType.Conflict",
        403,
    );
    for _ in 0..4 {
        let g = c.create_group(&[("VpcId", &vpc)]);
        c.ok(
            "JoinSecurityGroup",
            &[("SecurityGroupId", &g), ("NetworkInterfaceId", &eni)],
        );
    }
    let sixth = c.create_group(&[("VpcId", &vpc)]);
    c.err(
        "JoinSecurityGroup",
        &[("SecurityGroupId", &sixth), ("NetworkInterfaceId", &eni)],
        "InstanceSecurityGroupLimitExceeded",
        403,
    );
    c.err(
        "JoinSecurityGroup",
        &[("SecurityGroupId", &sixth), ("InstanceId", "i-nope")],
        "InvalidInstanceId.NotFound",
        404,
    );

    // A group with members cannot go; once they are gone it can.
    c.err(
        "DeleteSecurityGroup",
        &[("SecurityGroupId", &other)],
        "DependencyViolation",
        403,
    );
    c.err(
        "DeleteNetworkInterface",
        &[("NetworkInterfaceId", &app_nic)],
        "InvalidOperation.DeletePrimaryEni",
        403,
    );
    c.ok("DeleteNetworkInterface", &[("NetworkInterfaceId", &eni)]);
    c.ok("DeleteInstance", &[("InstanceId", &app_i)]);
    c.ok("DeleteSecurityGroup", &[("SecurityGroupId", &other)]);
    c.err(
        "DeleteInstance",
        &[("InstanceId", &app_i)],
        "InvalidInstanceId.NotFound",
        404,
    );
}

#[test]
fn check_command_prints_the_deciding_rule() {
    let s = Server::start(&[]);
    let c = s.client();
    let g = c.create_group(&[]);
    c.ok(
        "AuthorizeSecurityGroup",
        &[
            ("SecurityGroupId", &g),
            ("IpProtocol", "tcp"),
            ("PortRange", "22/22"),
            ("SourceCidrIp", "10.0.0.0/8"),
            ("NicType", "intranet"),
        ],
    );
    let run = c.ok("RunInstances", &[("SecurityGroupId", &g)]);
    let i = run["InstanceIdSets"]["InstanceIdSet"][0]
        .as_str()
        .unwrap()
        .to_string();
    let out = std::process::Command::new(bin())
        .args([
            "check",
            "--endpoint",
            &s.endpoint,
            "--access-key-id",
            AK,
            "--access-key-secret",
            SECRET,
        ])
        .args([
            "--instance",
            &i,
            "--direction",
            "ingress",
            "--protocol",
            "tcp",
            "--peer",
            "10.1.1.1",
            "--port",
            "22",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.to_lowercase().contains("accept"), "{text}");
    assert!(text.contains("sgr-"), "{text}");
}

#[test]
fn enforcement_state_and_change_feed() {
    let s = Server::start(&[]);
    let c = s.client();
    let vpc = c.create_vpc();
    let a = c.create_group(&[("VpcId", &vpc)]);
    let b = c.create_group(&[("VpcId", &vpc), ("SecurityGroupType", "enterprise")]);
    let web = c.create_group(&[("VpcId", &vpc)]);
    c.ok(
        "RunInstances",
        &[("SecurityGroupId", &a), ("PrivateIpAddress", "192.168.1.5")],
    );
    c.ok(
        "AuthorizeSecurityGroup",
        &[
            ("SecurityGroupId", &web),
            ("IpProtocol", "tcp"),
            ("PortRange", "22/22"),
            ("SourceGroupId", &a),
        ],
    );
    c.ok(
        "AuthorizeSecurityGroup",
        &[
            ("SecurityGroupId", &b),
            ("IpProtocol", "icmp"),
            ("PortRange", "-1/-1"),
            ("SourceCidrIp", "0.0.0.0/0"),
        ],
    );
    let nic = c.ok(
        "CreateNetworkInterface",
        &[
            ("SecurityGroupIds.1", &web),
            ("PrimaryIpAddress", "192.168.1.9"),
        ],
    )["NetworkInterfaceId"]
        .as_str()
        .unwrap()
        .to_string();
    let st = c.ok(
        "DescribeEnforcementState",
        &[("NetworkInterfaceId.1", &nic)],
    );
    let rev = st["Revision"].as_u64().unwrap();
    assert!(rev >= 7, "{st}");
    assert_eq!(
        st["NetworkInterfaces"]["NetworkInterface"][0]["PrivateIpAddress"],
        "192.168.1.9"
    );
    let groups = st["SecurityGroups"]["SecurityGroup"].as_array().unwrap();
    assert_eq!(groups.len(), 1);
    assert_eq!(
        groups[0]["Permissions"]["Permission"][0]["SourceGroupId"],
        a.as_str()
    );
    let sets = st["MemberSets"]["MemberSet"].as_array().unwrap();
    let set_a = sets
        .iter()
        .find(|s| s["SecurityGroupId"] == a.as_str())
        .unwrap();
    assert_eq!(set_a["IpAddresses"]["IpAddress"][0], "192.168.1.5");
    let set_web = sets
        .iter()
        .find(|s| s["SecurityGroupId"] == web.as_str())
        .unwrap();
    assert_eq!(set_web["IpAddresses"]["IpAddress"][0], "192.168.1.9");
    c.err(
        "DescribeEnforcementState",
        &[("NetworkInterfaceId.1", "eni-nope")],
        "InvalidNetworkInterfaceId.NotFound",
        404,
    );
    c.err("DescribeEnforcementState", &[], "MissingParameter", 400);

    // Nothing happens: the long poll comes back at the same revision.
    let r = c.ok(
        "WaitForChange",
        &[("Revision", &rev.to_string()), ("WaitSeconds", "1")],
    );
    assert_eq!(r["Revision"].as_u64(), Some(rev));
    // A change wakes a waiting poll.
    let waiter = {
        let c = c.clone();
        let since = rev.to_string();
        std::thread::spawn(move || {
            c.ok(
                "WaitForChange",
                &[("Revision", &since), ("WaitSeconds", "30")],
            )
        })
    };
    std::thread::sleep(std::time::Duration::from_millis(300));
    c.ok(
        "AuthorizeSecurityGroup",
        &[
            ("SecurityGroupId", &web),
            ("IpProtocol", "udp"),
            ("PortRange", "53/53"),
            ("SourceCidrIp", "10.0.0.0/8"),
        ],
    );
    let r = waiter.join().unwrap();
    assert!(r["Revision"].as_u64().unwrap() > rev, "{r}");
    let st = c.ok(
        "DescribeEnforcementState",
        &[("NetworkInterfaceId.1", &nic)],
    );
    assert_eq!(st["Revision"], r["Revision"]);
    // A failed write changes nothing, so the revision stays.
    c.err(
        "AuthorizeSecurityGroup",
        &[
            ("SecurityGroupId", &web),
            ("IpProtocol", "udp"),
            ("PortRange", "53/53"),
            ("SourceCidrIp", "10.0.0.0/8"),
        ],
        "InvalidPermission.Duplicate",
        400,
    );
    let again = c.ok(
        "WaitForChange",
        &[
            ("Revision", &r["Revision"].to_string()),
            ("WaitSeconds", "0"),
        ],
    );
    assert_eq!(again["Revision"], r["Revision"]);
}

#[test]
fn instances_and_interfaces_are_isolated_between_accounts() {
    let s = Server::start(&[]);
    let a = s.client();
    let b = s.add_account("mallory@example.com");
    let vpc = a.create_vpc();
    let g = a.create_group(&[("VpcId", &vpc)]);
    let run = a.ok("RunInstances", &[("SecurityGroupId", &g)]);
    let inst = run["InstanceIdSets"]["InstanceIdSet"][0]
        .as_str()
        .unwrap()
        .to_string();
    let nic = primary_nic(&a, &inst);
    let bg = b.create_group(&[]);
    for (action, params) in [
        (
            "JoinSecurityGroup",
            vec![
                ("SecurityGroupId", bg.as_str()),
                ("InstanceId", inst.as_str()),
            ],
        ),
        (
            "LeaveSecurityGroup",
            vec![
                ("SecurityGroupId", bg.as_str()),
                ("InstanceId", inst.as_str()),
            ],
        ),
        ("DeleteInstance", vec![("InstanceId", inst.as_str())]),
        (
            "CheckSecurityGroupAccess",
            vec![
                ("InstanceId", inst.as_str()),
                ("Direction", "ingress"),
                ("IpProtocol", "tcp"),
                ("PeerIpAddress", "1.2.3.4"),
            ],
        ),
    ] {
        b.err(action, &params, "InvalidInstanceId.NotFound", 404);
    }
    for (action, params) in [
        (
            "DeleteNetworkInterface",
            vec![("NetworkInterfaceId", nic.as_str())],
        ),
        (
            "DescribeEnforcementState",
            vec![("NetworkInterfaceId.1", nic.as_str())],
        ),
        (
            "JoinSecurityGroup",
            vec![
                ("SecurityGroupId", bg.as_str()),
                ("NetworkInterfaceId", nic.as_str()),
            ],
        ),
    ] {
        b.err(action, &params, "InvalidNetworkInterfaceId.NotFound", 404);
    }
    // B's own group, A's instance: A cannot join a group it does not own either.
    a.err(
        "JoinSecurityGroup",
        &[("SecurityGroupId", &bg), ("InstanceId", &inst)],
        "InvalidSecurityGroupId.NotFound",
        404,
    );
    a.err(
        "RunInstances",
        &[("SecurityGroupId", &bg)],
        "InvalidSecurityGroupId.NotFound",
        404,
    );
    assert_eq!(b.ok("DescribeInstances", &[])["TotalCount"], 0);
    assert_eq!(b.ok("DescribeNetworkInterfaces", &[])["TotalCount"], 0);
    assert_eq!(a.ok("DescribeInstances", &[])["TotalCount"], 1);
}

#[test]
fn join_racing_delete_leaves_no_dangling_membership() {
    let s = Server::start(&[]);
    let c = s.client();
    let vpc = c.create_vpc();
    let home = c.create_group(&[("VpcId", &vpc)]);
    let nic = c.ok("CreateNetworkInterface", &[("SecurityGroupId", &home)])["NetworkInterfaceId"]
        .as_str()
        .unwrap()
        .to_string();
    for _ in 0..25 {
        let g = c.create_group(&[("VpcId", &vpc)]);
        let joiner = {
            let (c, g, nic) = (c.clone(), g.clone(), nic.clone());
            std::thread::spawn(move || {
                c.call(
                    "JoinSecurityGroup",
                    &[("SecurityGroupId", &g), ("NetworkInterfaceId", &nic)],
                )
            })
        };
        let deleter = {
            let (c, g) = (c.clone(), g.clone());
            std::thread::spawn(move || c.call("DeleteSecurityGroup", &[("SecurityGroupId", &g)]))
        };
        let (j, d) = (joiner.join().unwrap(), deleter.join().unwrap());
        assert!(j.status < 500 && d.status < 500, "{} / {}", j.text, d.text);
        let groups = c.ok(
            "DescribeNetworkInterfaces",
            &[("NetworkInterfaceId.1", &nic)],
        )["NetworkInterfaceSets"]["NetworkInterfaceSet"][0]["SecurityGroupIds"]["SecurityGroupId"]
            .clone();
        let member = groups.as_array().unwrap().iter().any(|x| x == g.as_str());
        let exists = c
            .call("DescribeSecurityGroupAttribute", &[("SecurityGroupId", &g)])
            .status
            == 200;
        match (j.status, d.status) {
            (200, 200) => panic!("both won: {} / {}", j.text, d.text),
            (200, _) => assert!(exists && member && d.code() == "DependencyViolation"),
            (_, 200) => {
                assert!(!exists && !member && j.code() == "InvalidSecurityGroupId.NotFound")
            }
            _ => panic!("neither won: {} / {}", j.text, d.text),
        }
        if member {
            c.ok(
                "LeaveSecurityGroup",
                &[("SecurityGroupId", &g), ("NetworkInterfaceId", &nic)],
            );
            c.ok("DeleteSecurityGroup", &[("SecurityGroupId", &g)]);
        }
    }
}
