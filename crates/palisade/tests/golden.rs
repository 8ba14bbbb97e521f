//! Golden wire format: the JSON and XML bytes of every action's reply and of the error
//! envelope, with generated ids, request ids and times replaced by stable placeholders.
//! `UPDATE_GOLDEN=1 cargo test -p palisade --test golden` rewrites the files.

mod common;

use std::collections::HashMap;
use std::path::PathBuf;

use common::*;
use regex::Regex;

struct Normalizer {
    seen: HashMap<String, String>,
    counters: HashMap<String, usize>,
}

impl Normalizer {
    fn apply(&mut self, text: &str) -> String {
        let ids = Regex::new(r"\b(sgr|sg|vpc|vrt|vtb)-[a-z0-9]{20,21}\b").unwrap();
        let uuid =
            Regex::new(r"[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}").unwrap();
        let time = Regex::new(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z").unwrap();
        let out = ids.replace_all(text, |c: &regex::Captures| {
            let id = c[0].to_string();
            if let Some(p) = self.seen.get(&id) {
                return p.clone();
            }
            let n = self.counters.entry(c[1].to_string()).or_insert(0);
            *n += 1;
            let p = format!("{}-<{}>", &c[1], n);
            self.seen.insert(id, p.clone());
            p
        });
        let out = uuid.replace_all(&out, "<REQUEST-ID>");
        time.replace_all(&out, "<TIME>").into_owned()
    }
}

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

#[test]
fn wire_format_of_every_action_and_the_error_envelope() {
    let s = Server::start(&[]);
    let c = s.client();
    let mut norm = Normalizer {
        seen: HashMap::new(),
        counters: HashMap::new(),
    };
    let mut outputs: Vec<(String, String)> = Vec::new();
    let mut record = |name: &str,
                      action: &str,
                      params: &[(&str, &str)],
                      norm: &mut Normalizer|
     -> serde_json::Value {
        let j = c.call_fmt(action, "JSON", params);
        // The XML twin runs the same call; for writes, against a fresh object where needed.
        outputs.push((
            format!("{name}.json"),
            format!(
                "HTTP {} {}\n{}\n",
                j.status,
                j.content_type,
                norm.apply(&j.text)
            ),
        ));
        j.json()
    };
    let vpc = record(
        "CreateVpc",
        "CreateVpc",
        &[("CidrBlock", "192.168.0.0/16"), ("VpcName", "lab")],
        &mut norm,
    )["VpcId"]
        .as_str()
        .unwrap()
        .to_string();
    let g = record(
        "CreateSecurityGroup",
        "CreateSecurityGroup",
        &[
            ("VpcId", &vpc),
            ("SecurityGroupName", "web"),
            ("Description", "front end"),
        ],
        &mut norm,
    )["SecurityGroupId"]
        .as_str()
        .unwrap()
        .to_string();
    let src = c.create_group(&[("VpcId", &vpc), ("SecurityGroupName", "app")]);
    record(
        "AuthorizeSecurityGroup",
        "AuthorizeSecurityGroup",
        &[
            ("SecurityGroupId", &g),
            ("IpProtocol", "tcp"),
            ("PortRange", "22/22"),
            ("SourceCidrIp", "10.0.0.0/8"),
            ("Description", "ssh"),
        ],
        &mut norm,
    );
    c.ok(
        "AuthorizeSecurityGroup",
        &[
            ("SecurityGroupId", &g),
            ("IpProtocol", "tcp"),
            ("PortRange", "80/80"),
            ("SourceGroupId", &src),
            ("Policy", "drop"),
            ("Priority", "2"),
        ],
    );
    record(
        "AuthorizeSecurityGroupEgress",
        "AuthorizeSecurityGroupEgress",
        &[
            ("SecurityGroupId", &g),
            ("IpProtocol", "all"),
            ("PortRange", "-1/-1"),
            ("DestCidrIp", "0.0.0.0/0"),
        ],
        &mut norm,
    );
    record(
        "DescribeSecurityGroupAttribute",
        "DescribeSecurityGroupAttribute",
        &[("SecurityGroupId", &g)],
        &mut norm,
    );
    record(
        "DescribeSecurityGroups",
        "DescribeSecurityGroups",
        &[("SecurityGroupId", &g)],
        &mut norm,
    );
    record(
        "DescribeSecurityGroupReferences",
        "DescribeSecurityGroupReferences",
        &[("SecurityGroupId.1", &src)],
        &mut norm,
    );
    record("DescribeVpcs", "DescribeVpcs", &[], &mut norm);
    record("DescribeRegions", "DescribeRegions", &[], &mut norm);
    record(
        "ModifySecurityGroupAttribute",
        "ModifySecurityGroupAttribute",
        &[("SecurityGroupId", &g), ("Description", "front end v2")],
        &mut norm,
    );
    record(
        "ModifySecurityGroupPolicy",
        "ModifySecurityGroupPolicy",
        &[("SecurityGroupId", &g), ("InnerAccessPolicy", "Drop")],
        &mut norm,
    );
    record(
        "ModifySecurityGroupRule",
        "ModifySecurityGroupRule",
        &[
            ("SecurityGroupId", &g),
            ("IpProtocol", "tcp"),
            ("PortRange", "22/22"),
            ("SourceCidrIp", "10.0.0.0/8"),
            ("Description", "ssh v2"),
        ],
        &mut norm,
    );
    record(
        "ModifySecurityGroupEgressRule",
        "ModifySecurityGroupEgressRule",
        &[
            ("SecurityGroupId", &g),
            ("IpProtocol", "all"),
            ("PortRange", "-1/-1"),
            ("DestCidrIp", "0.0.0.0/0"),
            ("Priority", "3"),
        ],
        &mut norm,
    );
    record(
        "RevokeSecurityGroup",
        "RevokeSecurityGroup",
        &[
            ("SecurityGroupId", &g),
            ("IpProtocol", "tcp"),
            ("PortRange", "80/80"),
            ("SourceGroupId", &src),
            ("Policy", "drop"),
        ],
        &mut norm,
    );
    record(
        "RevokeSecurityGroupEgress",
        "RevokeSecurityGroupEgress",
        &[
            ("SecurityGroupId", &g),
            ("IpProtocol", "all"),
            ("PortRange", "-1/-1"),
            ("DestCidrIp", "0.0.0.0/0"),
        ],
        &mut norm,
    );
    record(
        "DeleteSecurityGroup",
        "DeleteSecurityGroup",
        &[("SecurityGroupId", &src)],
        &mut norm,
    );
    record(
        "Error.InvalidSecurityGroupId.NotFound",
        "DescribeSecurityGroupAttribute",
        &[("SecurityGroupId", "sg-doesnotexist000000")],
        &mut norm,
    );
    record(
        "Error.InvalidParamter.Conflict",
        "AuthorizeSecurityGroup",
        &[
            ("SecurityGroupId", &g),
            ("IpProtocol", "tcp"),
            ("PortRange", "1/2"),
            ("SourceGroupId", &g),
        ],
        &mut norm,
    );
    // XML of the reads (idempotent, so the same call twice) and of errors.
    for (name, action, params) in [
        (
            "DescribeSecurityGroupAttribute",
            "DescribeSecurityGroupAttribute",
            vec![("SecurityGroupId", g.as_str())],
        ),
        (
            "DescribeSecurityGroups",
            "DescribeSecurityGroups",
            vec![("SecurityGroupId", g.as_str())],
        ),
        ("DescribeVpcs", "DescribeVpcs", vec![]),
        ("DescribeRegions", "DescribeRegions", vec![]),
        (
            "Error.InvalidSecurityGroupId.NotFound",
            "DescribeSecurityGroupAttribute",
            vec![("SecurityGroupId", "sg-doesnotexist000000")],
        ),
    ] {
        let x = c.call_fmt(action, "XML", &params);
        outputs.push((
            format!("{name}.xml"),
            format!(
                "HTTP {} {}\n{}\n",
                x.status,
                x.content_type,
                norm.apply(&x.text)
            ),
        ));
    }
    let vpc2 = c.create_vpc();
    let x = c.call_fmt("DeleteVpc", "XML", &[("VpcId", &vpc2)]);
    outputs.push((
        "DeleteVpc.xml".into(),
        format!(
            "HTTP {} {}\n{}\n",
            x.status,
            x.content_type,
            norm.apply(&x.text)
        ),
    ));
    let x = c.call_fmt(
        "CreateSecurityGroup",
        "XML",
        &[("SecurityGroupName", "xml-made")],
    );
    outputs.push((
        "CreateSecurityGroup.xml".into(),
        format!(
            "HTTP {} {}\n{}\n",
            x.status,
            x.content_type,
            norm.apply(&x.text)
        ),
    ));

    let dir = golden_dir();
    let update = std::env::var("UPDATE_GOLDEN").is_ok();
    let mut mismatches = Vec::new();
    for (file, text) in &outputs {
        let path = dir.join(file);
        if update {
            std::fs::write(&path, text).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(&path)
            .unwrap_or_else(|_| panic!("missing golden file {}", path.display()));
        if &want != text {
            mismatches.push(format!("{file}:\n--- want\n{want}\n--- got\n{text}"));
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}
