//! One test per semantic point.

mod common;

use common::*;
use palisade_engine::Direction::{Egress, Ingress};
use palisade_engine::Policy::{Accept, Drop};
use palisade_engine::Protocol::{All, Icmp, Tcp, Udp};
use palisade_engine::*;

fn engine(groups: Vec<GroupSpec>, nics: Vec<Nic>) -> Engine {
    let mut e = Engine::new();
    for g in groups {
        e.upsert_group(g).unwrap();
    }
    for n in nics {
        e.upsert_nic(n).unwrap();
    }
    e
}

#[test]
fn drop_wins_a_priority_tie_within_a_group() {
    let e = engine(
        vec![vpc_group(
            "sg-a",
            vec![
                rule("acc", Ingress, Tcp, "22/22", from("0.0.0.0/0"), Accept, 5),
                rule("drp", Ingress, All, "-1/-1", from("10.0.0.0/8"), Drop, 5),
            ],
        )],
        vec![nic("eni-1", &["sg-a"], "192.168.0.2", None)],
    );
    let v = e
        .decide("eni-1", &tcp_in("192.168.0.2", "10.1.2.3", 22))
        .unwrap();
    assert_eq!(v.action, Drop);
    assert_eq!(decider_id(&e, "eni-1", &v), "drp");
    // Outside the drop rule's source: the accept rule decides.
    let v = e
        .decide("eni-1", &tcp_in("192.168.0.2", "11.1.2.3", 22))
        .unwrap();
    assert_eq!(
        (v.action, decider_id(&e, "eni-1", &v).as_str()),
        (Accept, "acc")
    );
}

#[test]
fn drop_wins_a_priority_tie_across_groups() {
    let e = engine(
        vec![
            vpc_group(
                "sg-a",
                vec![rule(
                    "acc",
                    Ingress,
                    Tcp,
                    "1/65535",
                    from("0.0.0.0/0"),
                    Accept,
                    3,
                )],
            ),
            vpc_group(
                "sg-b",
                vec![rule(
                    "drp",
                    Ingress,
                    Tcp,
                    "22/22",
                    from("0.0.0.0/0"),
                    Drop,
                    3,
                )],
            ),
        ],
        vec![nic("eni-1", &["sg-a", "sg-b"], "192.168.0.2", None)],
    );
    let v = e
        .decide("eni-1", &tcp_in("192.168.0.2", "1.2.3.4", 22))
        .unwrap();
    assert_eq!(
        (v.action, decider_id(&e, "eni-1", &v).as_str()),
        (Drop, "drp")
    );
    assert_eq!(v.reason, Reason::Rule(RuleRef { group: 1, rule: 0 }));
}

#[test]
fn equal_key_first_group_then_first_rule_decides() {
    let e = engine(
        vec![
            vpc_group(
                "sg-a",
                vec![
                    rule("a1", Ingress, Udp, "53/53", from("0.0.0.0/0"), Accept, 7),
                    rule("a2", Ingress, Tcp, "22/22", from("0.0.0.0/0"), Accept, 7),
                ],
            ),
            vpc_group(
                "sg-b",
                vec![rule(
                    "b1",
                    Ingress,
                    Tcp,
                    "22/22",
                    from("0.0.0.0/0"),
                    Accept,
                    7,
                )],
            ),
        ],
        vec![nic("eni-1", &["sg-b", "sg-a"], "192.168.0.2", None)],
    );
    let v = e
        .decide("eni-1", &tcp_in("192.168.0.2", "1.2.3.4", 22))
        .unwrap();
    assert_eq!(decider_id(&e, "eni-1", &v), "b1");
}

#[test]
fn priority_order_beats_policy() {
    let e = engine(
        vec![vpc_group(
            "sg-a",
            vec![
                rule("drop-2", Ingress, Tcp, "22/22", from("0.0.0.0/0"), Drop, 2),
                rule(
                    "acc-1",
                    Ingress,
                    Tcp,
                    "22/22",
                    from("10.0.0.0/8"),
                    Accept,
                    1,
                ),
                rule(
                    "acc-100",
                    Ingress,
                    All,
                    "-1/-1",
                    from("0.0.0.0/0"),
                    Accept,
                    100,
                ),
            ],
        )],
        vec![nic("eni-1", &["sg-a"], "192.168.0.2", None)],
    );
    let d = |remote: &str, port: u16| {
        let v = e
            .decide("eni-1", &tcp_in("192.168.0.2", remote, port))
            .unwrap();
        (v.action, decider_id(&e, "eni-1", &v))
    };
    assert_eq!(d("10.0.0.1", 22), (Accept, "acc-1".into()));
    assert_eq!(d("11.0.0.1", 22), (Drop, "drop-2".into()));
    assert_eq!(d("11.0.0.1", 23), (Accept, "acc-100".into()));
}

#[test]
fn defaults_ingress_drop_egress_accept_for_normal_groups() {
    let e = engine(
        vec![vpc_group("sg-a", vec![])],
        vec![nic("eni-1", &["sg-a"], "192.168.0.2", None)],
    );
    let v = e
        .decide("eni-1", &tcp_in("192.168.0.2", "1.2.3.4", 22))
        .unwrap();
    assert_eq!(
        v,
        Verdict {
            action: Drop,
            reason: Reason::Default
        }
    );
    let v = e
        .decide("eni-1", &tcp_out("192.168.0.2", "1.2.3.4", 443))
        .unwrap();
    assert_eq!(
        v,
        Verdict {
            action: Accept,
            reason: Reason::Default
        }
    );
    let x = e
        .explain("eni-1", &tcp_out("192.168.0.2", "1.2.3.4", 443))
        .unwrap();
    assert_eq!(
        x.summary,
        "no egress rule matched: egress default accept for normal groups"
    );
    let x = e
        .explain("eni-1", &tcp_in("192.168.0.2", "1.2.3.4", 22))
        .unwrap();
    assert_eq!(x.summary, "no ingress rule matched: default drop");
}

#[test]
fn enterprise_egress_default_is_drop() {
    let mut g = vpc_group(
        "sg-ent",
        vec![rule(
            "out-443",
            Egress,
            Tcp,
            "443/443",
            from("0.0.0.0/0"),
            Accept,
            1,
        )],
    );
    g.kind = GroupKind::Enterprise;
    let e = engine(
        vec![g],
        vec![nic("eni-1", &["sg-ent"], "192.168.0.2", None)],
    );
    let v = e
        .decide("eni-1", &tcp_out("192.168.0.2", "1.2.3.4", 443))
        .unwrap();
    assert_eq!(
        (v.action, decider_id(&e, "eni-1", &v).as_str()),
        (Accept, "out-443")
    );
    let v = e
        .decide("eni-1", &tcp_out("192.168.0.2", "1.2.3.4", 80))
        .unwrap();
    assert_eq!(
        v,
        Verdict {
            action: Drop,
            reason: Reason::Default
        }
    );
    let x = e
        .explain("eni-1", &tcp_out("192.168.0.2", "1.2.3.4", 80))
        .unwrap();
    assert!(
        x.summary
            .contains("egress default drop for enterprise group sg-ent"),
        "{}",
        x.summary
    );
    assert_eq!(x.passed_over.len(), 1);
    assert_eq!(x.passed_over[0].mismatch, Mismatch::DestPort);
}

#[test]
fn classic_internet_and_intranet_rules_split_by_address() {
    let mut internet = rule("inet", Ingress, Tcp, "80/80", from("0.0.0.0/0"), Accept, 1);
    internet.nic_type = NicType::Internet;
    let intranet = rule("intra", Ingress, Tcp, "22/22", from("0.0.0.0/0"), Accept, 1);
    let e = engine(
        vec![classic_group("sg-c", vec![internet, intranet])],
        vec![nic("i-1", &["sg-c"], "10.0.0.5", Some("47.1.1.1"))],
    );
    let on = |local: &str, port: u16| {
        e.decide("i-1", &tcp_in(local, "8.8.8.8", port))
            .unwrap()
            .action
    };
    assert_eq!(on("47.1.1.1", 80), Accept);
    assert_eq!(on("47.1.1.1", 22), Drop);
    assert_eq!(on("10.0.0.5", 22), Accept);
    assert_eq!(on("10.0.0.5", 80), Drop);
    let x = e
        .explain("i-1", &tcp_in("10.0.0.5", "8.8.8.8", 80))
        .unwrap();
    let why: Vec<_> = x
        .passed_over
        .iter()
        .map(|p| (p.rule.rule_id.as_str(), p.mismatch))
        .collect();
    assert_eq!(
        why,
        vec![("inet", Mismatch::NicType), ("intra", Mismatch::DestPort)]
    );
}

#[test]
fn vpc_rules_apply_to_every_address_but_group_peers_not_on_public() {
    let mut internet = rule("inet", Ingress, Tcp, "80/80", from("0.0.0.0/0"), Accept, 1);
    internet.nic_type = NicType::Internet;
    let e = engine(
        vec![
            vpc_group(
                "sg-v",
                vec![
                    internet,
                    rule(
                        "peer",
                        Ingress,
                        Tcp,
                        "22/22",
                        group_peer("sg-src"),
                        Accept,
                        1,
                    ),
                ],
            ),
            vpc_group("sg-src", vec![]),
        ],
        vec![
            nic("eni-1", &["sg-v"], "10.0.0.5", Some("47.1.1.1")),
            nic("eni-2", &["sg-src"], "10.0.0.6", None),
        ],
    );
    assert_eq!(
        e.decide("eni-1", &tcp_in("10.0.0.5", "9.9.9.9", 80))
            .unwrap()
            .action,
        Accept
    );
    assert_eq!(
        e.decide("eni-1", &tcp_in("47.1.1.1", "9.9.9.9", 80))
            .unwrap()
            .action,
        Accept
    );
    assert_eq!(
        e.decide("eni-1", &tcp_in("10.0.0.5", "10.0.0.6", 22))
            .unwrap()
            .action,
        Accept
    );
    // The member's address arriving on the public address: group rule does not apply.
    let p = tcp_in("47.1.1.1", "10.0.0.6", 22);
    assert_eq!(e.decide("eni-1", &p).unwrap().action, Drop);
    let x = e.explain("eni-1", &p).unwrap();
    assert!(x
        .passed_over
        .iter()
        .any(|p| p.mismatch == Mismatch::PeerGroupOnPublic));
}

#[test]
fn group_peer_follows_membership_changes() {
    let mut e = engine(
        vec![
            vpc_group(
                "sg-web",
                vec![rule(
                    "from-app",
                    Ingress,
                    Tcp,
                    "443/443",
                    group_peer("sg-app"),
                    Accept,
                    1,
                )],
            ),
            vpc_group("sg-app", vec![]),
        ],
        vec![nic("eni-web", &["sg-web"], "10.0.0.5", None)],
    );
    let p = tcp_in("10.0.0.5", "10.0.1.9", 443);
    assert_eq!(e.decide("eni-web", &p).unwrap().action, Drop);
    e.upsert_nic(nic("eni-app", &["sg-app"], "10.0.1.9", None))
        .unwrap();
    let v = e.decide("eni-web", &p).unwrap();
    assert_eq!(
        (v.action, decider_id(&e, "eni-web", &v).as_str()),
        (Accept, "from-app")
    );
    // Moving the app NIC to another group removes it from sg-app.
    e.upsert_nic(nic("eni-app", &["sg-other"], "10.0.1.9", None))
        .unwrap();
    assert_eq!(e.decide("eni-web", &p).unwrap().action, Drop);
    e.upsert_nic(nic("eni-app", &["sg-other", "sg-app"], "10.0.1.9", None))
        .unwrap();
    assert_eq!(e.decide("eni-web", &p).unwrap().action, Accept);
    assert!(e.remove_nic("eni-app"));
    assert_eq!(e.decide("eni-web", &p).unwrap().action, Drop);
    assert!(!e.remove_nic("eni-app"));
    // Membership of a group that is not defined still counts.
    e.remove_group("sg-app");
    e.upsert_nic(nic("eni-app2", &["sg-app"], "10.0.1.9", None))
        .unwrap();
    assert_eq!(e.decide("eni-web", &p).unwrap().action, Accept);
    assert_eq!(e.members("sg-app"), vec![ip("10.0.1.9")]);
}

#[test]
fn inner_access_overrides_rules_for_normal_groups_only() {
    let mut g = vpc_group(
        "sg-x",
        vec![rule(
            "deny-all",
            Ingress,
            All,
            "-1/-1",
            from("0.0.0.0/0"),
            Drop,
            1,
        )],
    );
    g.inner_access_accept = true;
    let mut e = engine(
        vec![g.clone()],
        vec![
            nic("eni-1", &["sg-x"], "10.0.0.5", Some("47.1.1.1")),
            nic("eni-2", &["sg-x"], "10.0.0.6", None),
        ],
    );
    let p = tcp_in("10.0.0.5", "10.0.0.6", 22);
    let v = e.decide("eni-1", &p).unwrap();
    assert_eq!(
        v,
        Verdict {
            action: Accept,
            reason: Reason::InnerAccess { group: 0 }
        }
    );
    assert_eq!(
        e.explain("eni-1", &p).unwrap().summary,
        "inner access between members of sg-x"
    );
    // Not on the public address.
    assert_eq!(
        e.decide("eni-1", &tcp_in("47.1.1.1", "10.0.0.6", 22))
            .unwrap()
            .action,
        Drop
    );
    // Not from its own address (only other members count).
    assert_eq!(
        e.decide("eni-1", &tcp_in("10.0.0.5", "10.0.0.5", 22))
            .unwrap()
            .action,
        Drop
    );
    // Inner access drop: rules decide.
    g.inner_access_accept = false;
    e.upsert_group(g.clone()).unwrap();
    assert_eq!(e.decide("eni-1", &p).unwrap().action, Drop);
    // Enterprise groups never grant it.
    g.inner_access_accept = true;
    g.kind = GroupKind::Enterprise;
    e.upsert_group(g).unwrap();
    assert_eq!(e.decide("eni-1", &p).unwrap().action, Drop);
}

#[test]
fn replies_follow_the_reversed_packet() {
    let e = engine(
        vec![vpc_group(
            "sg-a",
            vec![
                rule("no-smtp", Egress, Tcp, "25/25", from("0.0.0.0/0"), Drop, 1),
                rule(
                    "ssh-in",
                    Ingress,
                    Tcp,
                    "22/22",
                    from("10.0.0.0/8"),
                    Accept,
                    1,
                ),
            ],
        )],
        vec![nic("eni-1", &["sg-a"], "192.168.0.2", None)],
    );
    // Reply to an outgoing HTTPS connection (egress default accept).
    let mut r = pkt(Ingress, ipproto::TCP, "192.168.0.2", "1.2.3.4", 40000, 443);
    r.reply = true;
    assert_eq!(
        e.decide("eni-1", &r).unwrap(),
        Verdict {
            action: Accept,
            reason: Reason::Reply(Basis::Default)
        }
    );
    let x = e.explain("eni-1", &r).unwrap();
    assert!(x.summary.starts_with("established reply"), "{}", x.summary);
    assert_eq!(x.evaluated.direction, Egress);
    // Reply to an outgoing SMTP connection: there can be none.
    let mut r = pkt(Ingress, ipproto::TCP, "192.168.0.2", "1.2.3.4", 40000, 25);
    r.reply = true;
    let v = e.decide("eni-1", &r).unwrap();
    assert_eq!(v.action, Drop);
    assert_eq!(decider_id(&e, "eni-1", &v), "no-smtp");
    // Egress reply of an inbound SSH connection.
    let mut r = pkt(Egress, ipproto::TCP, "192.168.0.2", "10.9.9.9", 22, 50000);
    r.reply = true;
    let v = e.decide("eni-1", &r).unwrap();
    assert_eq!(
        (v.action, decider_id(&e, "eni-1", &v).as_str()),
        (Accept, "ssh-in")
    );
    r.remote_ip = ip("11.9.9.9");
    assert_eq!(
        e.decide("eni-1", &r).unwrap(),
        Verdict {
            action: Drop,
            reason: Reason::Reply(Basis::Default)
        }
    );
}

#[test]
fn ports_follow_direction() {
    let mut in_rule = rule("in", Ingress, Tcp, "22/22", from("0.0.0.0/0"), Accept, 1);
    in_rule.source_port_range = Some(PortRange::new(1000, 2000));
    let mut out_rule = rule("out", Egress, Udp, "53/53", from("0.0.0.0/0"), Drop, 1);
    out_rule.source_port_range = Some(PortRange::new(5000, 5000));
    let e = engine(
        vec![vpc_group("sg-a", vec![in_rule, out_rule])],
        vec![nic("eni-1", &["sg-a"], "192.168.0.2", None)],
    );
    let d = |p: Packet| e.decide("eni-1", &p).unwrap().action;
    // ingress: local port is the destination, remote port the source
    assert_eq!(
        d(pkt(Ingress, 6, "192.168.0.2", "1.1.1.1", 22, 1500)),
        Accept
    );
    assert_eq!(d(pkt(Ingress, 6, "192.168.0.2", "1.1.1.1", 22, 2500)), Drop);
    assert_eq!(d(pkt(Ingress, 6, "192.168.0.2", "1.1.1.1", 1500, 22)), Drop);
    // egress: remote port is the destination, local port the source
    assert_eq!(d(pkt(Egress, 17, "192.168.0.2", "1.1.1.1", 5000, 53)), Drop);
    assert_eq!(
        d(pkt(Egress, 17, "192.168.0.2", "1.1.1.1", 5001, 53)),
        Accept
    );
    assert_eq!(
        d(pkt(Egress, 17, "192.168.0.2", "1.1.1.1", 53, 5000)),
        Accept
    );
    let x = e
        .explain(
            "eni-1",
            &pkt(Ingress, 6, "192.168.0.2", "1.1.1.1", 22, 2500),
        )
        .unwrap();
    assert_eq!(x.passed_over[0].why, "source port 2500 not in 1000/2000");
}

#[test]
fn non_port_protocols_ignore_ports_and_all_matches_every_protocol() {
    let mut icmp = rule("icmp", Ingress, Icmp, "-1/-1", from("0.0.0.0/0"), Accept, 1);
    icmp.source_port_range = Some(PortRange::new(7, 7)); // ignored
    let e = engine(
        vec![vpc_group(
            "sg-a",
            vec![
                icmp,
                rule(
                    "gre-all",
                    Ingress,
                    All,
                    "-1/-1",
                    from("5.0.0.0/8"),
                    Accept,
                    2,
                ),
            ],
        )],
        vec![nic("eni-1", &["sg-a"], "192.168.0.2", None)],
    );
    assert_eq!(
        e.decide("eni-1", &pkt(Ingress, 1, "192.168.0.2", "1.1.1.1", 0, 9))
            .unwrap()
            .action,
        Accept
    );
    assert_eq!(
        e.decide("eni-1", &pkt(Ingress, 47, "192.168.0.2", "1.1.1.1", 0, 0))
            .unwrap()
            .action,
        Drop
    );
    assert_eq!(
        e.decide("eni-1", &pkt(Ingress, 47, "192.168.0.2", "5.1.1.1", 0, 0))
            .unwrap()
            .action,
        Accept
    );
    assert_eq!(
        e.decide("eni-1", &pkt(Ingress, 132, "192.168.0.2", "5.1.1.1", 9, 9))
            .unwrap()
            .action,
        Accept
    );
}

#[test]
fn local_cidr_restricts_the_nic_side() {
    let mut r = rule(
        "to-vip",
        Ingress,
        Tcp,
        "80/80",
        from("0.0.0.0/0"),
        Accept,
        1,
    );
    r.local_cidr = Some(cidr("10.0.0.100/32"));
    let e = engine(
        vec![vpc_group("sg-a", vec![r])],
        vec![nic("eni-1", &["sg-a"], "10.0.0.5", None)],
    );
    assert_eq!(
        e.decide("eni-1", &tcp_in("10.0.0.100", "1.1.1.1", 80))
            .unwrap()
            .action,
        Accept
    );
    assert_eq!(
        e.decide("eni-1", &tcp_in("10.0.0.5", "1.1.1.1", 80))
            .unwrap()
            .action,
        Drop
    );
}

#[test]
fn unknown_nic_is_an_error() {
    let e = Engine::new();
    let p = tcp_in("10.0.0.5", "1.1.1.1", 80);
    assert_eq!(
        e.decide("eni-x", &p),
        Err(EngineError::UnknownNic("eni-x".into()))
    );
    assert!(e.explain("eni-x", &p).is_err());
}

#[test]
fn invalid_input_is_rejected_without_changes() {
    let mut e = Engine::new();
    let bad = vpc_group(
        "sg-a",
        vec![rule(
            "r",
            Ingress,
            Tcp,
            "22/22",
            from("0.0.0.0/0"),
            Accept,
            0,
        )],
    );
    assert!(matches!(
        e.upsert_group(bad),
        Err(EngineError::InvalidRule { .. })
    ));
    assert_eq!(e.group_count(), 0);
    let many = nic("eni-1", &["a", "b", "c", "d", "e", "f"], "10.0.0.1", None);
    assert!(matches!(
        e.upsert_nic(many),
        Err(EngineError::TooManyGroups { .. })
    ));
    // Duplicates do not count twice.
    let dup = nic("eni-1", &["a", "b", "c", "d", "e", "a"], "10.0.0.1", None);
    e.upsert_nic(dup).unwrap();
    assert_eq!(e.nic("eni-1").unwrap().groups.len(), 5);
}

#[test]
fn what_if_on_a_clone_leaves_the_original_alone() {
    let base = engine(
        vec![vpc_group(
            "sg-a",
            vec![rule(
                "ssh",
                Ingress,
                Tcp,
                "22/22",
                from("0.0.0.0/0"),
                Accept,
                1,
            )],
        )],
        vec![nic("eni-1", &["sg-a"], "10.0.0.5", None)],
    );
    let p = tcp_in("10.0.0.5", "1.1.1.1", 22);
    let mut what_if = base.clone();
    what_if
        .upsert_group(vpc_group(
            "sg-a",
            vec![rule(
                "ssh",
                Ingress,
                Tcp,
                "22/22",
                from("0.0.0.0/0"),
                Drop,
                1,
            )],
        ))
        .unwrap();
    what_if
        .upsert_nic(nic("eni-2", &["sg-a"], "10.0.0.6", None))
        .unwrap();
    assert_eq!(what_if.decide("eni-1", &p).unwrap().action, Drop);
    assert_eq!(base.decide("eni-1", &p).unwrap().action, Accept);
    assert!(base.decide("eni-2", &p).is_err());
    assert_eq!(base.members("sg-a"), vec![ip("10.0.0.5")]);
}

#[test]
fn removing_and_redefining_groups_reuses_slots_correctly() {
    let mut e = Engine::new();
    for round in 0..3 {
        e.upsert_group(vpc_group(
            "sg-a",
            vec![rule(
                "r",
                Ingress,
                Tcp,
                "22/22",
                group_peer("sg-b"),
                Accept,
                1,
            )],
        ))
        .unwrap();
        e.upsert_nic(nic("eni-1", &["sg-a"], "10.0.0.5", None))
            .unwrap();
        e.upsert_nic(nic("eni-2", &["sg-b"], "10.0.0.6", None))
            .unwrap();
        let p = tcp_in("10.0.0.5", "10.0.0.6", 22);
        assert_eq!(
            e.decide("eni-1", &p).unwrap().action,
            Accept,
            "round {round}"
        );
        assert!(e.remove_nic("eni-2"));
        assert_eq!(e.decide("eni-1", &p).unwrap().action, Drop);
        assert!(e.remove_group("sg-a"));
        assert!(!e.remove_group("sg-a"));
        assert!(e.remove_nic("eni-1"));
        // Self-referencing group removal must not double-free its slot.
        e.upsert_group(vpc_group(
            "sg-self",
            vec![rule(
                "s",
                Ingress,
                All,
                "-1/-1",
                group_peer("sg-self"),
                Accept,
                1,
            )],
        ))
        .unwrap();
        assert!(e.remove_group("sg-self"));
        assert_eq!(e.group_count(), 0);
    }
}

#[test]
fn explanation_lists_passed_over_rules_and_renders() {
    let mut sp = rule(
        "src-ports",
        Ingress,
        Tcp,
        "22/22",
        from("0.0.0.0/0"),
        Accept,
        1,
    );
    sp.source_port_range = Some(PortRange::new(1, 1023));
    let e = engine(
        vec![
            vpc_group(
                "sg-a",
                vec![
                    rule("udp", Ingress, Udp, "22/22", from("0.0.0.0/0"), Accept, 1),
                    rule(
                        "wrong-src",
                        Ingress,
                        Tcp,
                        "22/22",
                        from("192.168.0.0/16"),
                        Drop,
                        1,
                    ),
                    sp,
                    rule("ssh", Ingress, Tcp, "22/22", from("10.0.0.0/8"), Accept, 1),
                    rule("later", Ingress, Tcp, "22/22", from("0.0.0.0/0"), Drop, 2),
                ],
            ),
            vpc_group(
                "sg-b",
                vec![rule(
                    "peer",
                    Ingress,
                    Tcp,
                    "1/65535",
                    group_peer("sg-z"),
                    Drop,
                    1,
                )],
            ),
        ],
        vec![nic("eni-1", &["sg-a", "sg-b"], "192.168.0.2", None)],
    );
    let x = e
        .explain("eni-1", &tcp_in("192.168.0.2", "10.1.2.3", 22))
        .unwrap();
    assert_eq!(x.verdict, Accept);
    match &x.decided_by {
        DecidedBy::Rule(r) => {
            assert_eq!((r.group_id.as_str(), r.rule_id.as_str()), ("sg-a", "ssh"));
            assert_eq!(r.text, "ingress TCP 22/22 from 10.0.0.0/8 accept prio 1");
        }
        d => panic!("{d:?}"),
    }
    let got: Vec<_> = x
        .passed_over
        .iter()
        .map(|p| (p.rule.rule_id.as_str(), p.mismatch))
        .collect();
    assert_eq!(
        got,
        vec![
            ("wrong-src", Mismatch::Peer),
            ("peer", Mismatch::PeerGroup),
            ("udp", Mismatch::Protocol),
            ("src-ports", Mismatch::SourcePort),
        ]
    );
    let text = x.to_text();
    assert!(text.contains("=> ACCEPT"), "{text}");
    assert!(
        text.contains("source 10.1.2.3 not in 192.168.0.0/16"),
        "{text}"
    );
    let json = x.to_json();
    assert!(json.starts_with("{\"nic_id\":\"eni-1\""), "{json}");
    assert!(json.contains("\"mismatch\":\"peer_group\""), "{json}");
    assert_eq!(json.matches('{').count(), json.matches('}').count());
}

#[test]
fn parsers() {
    assert_eq!(
        Cidr4::parse("10.0.0.0/8").unwrap(),
        Cidr4::new(ip("10.0.0.0"), 8)
    );
    assert_eq!(Cidr4::parse("1.2.3.4").unwrap(), Cidr4::host(ip("1.2.3.4")));
    assert!(Cidr4::parse("1.2.3.4/33").is_err());
    assert!(Cidr4::parse("1.2.3/8").is_err());
    assert!(Cidr4::parse("10.1.2.3/8")
        .unwrap()
        .contains(ip("10.200.0.1")));
    assert!(Cidr4::ANY.contains(u32::MAX));
    assert_eq!(PortRange::parse("-1/-1").unwrap(), PortRange::ALL);
    assert_eq!(PortRange::parse("1/200").unwrap(), PortRange::new(1, 200));
    assert!(PortRange::parse("200/1").is_err());
    assert_eq!("IcmPv6".parse::<Protocol>().unwrap(), Protocol::Icmpv6);
    assert_eq!(PortRange::new(22, 22).to_string(), "22/22");
}

#[test]
fn lowest_priority_accept_still_matches() {
    // Priority 100 accept has the largest order key: it must still beat the default.
    let e = engine(
        vec![vpc_group(
            "sg-a",
            vec![rule(
                "last",
                Ingress,
                All,
                "-1/-1",
                from("0.0.0.0/0"),
                Accept,
                100,
            )],
        )],
        vec![nic("eni-1", &["sg-a"], "10.0.0.5", None)],
    );
    let v = e
        .decide("eni-1", &tcp_in("10.0.0.5", "1.1.1.1", 80))
        .unwrap();
    assert_eq!(
        (v.action, decider_id(&e, "eni-1", &v).as_str()),
        (Accept, "last")
    );
}

#[test]
fn many_rules_span_several_bitset_words() {
    // 200 ingress rules on distinct ports, priorities descending with the index:
    // the winner for port p is the rule with the best priority covering it.
    let rules: Vec<Rule> = (0..200u16)
        .map(|i| {
            rule(
                &format!("r{i}"),
                Ingress,
                Tcp,
                &format!("{}/{}", 1000 + i, 1000 + i + 3),
                from("0.0.0.0/0"),
                if i % 3 == 0 { Drop } else { Accept },
                100 - (i / 2) as u8,
            )
        })
        .collect();
    let e = engine(
        vec![vpc_group("sg-a", rules)],
        vec![nic("eni-1", &["sg-a"], "10.0.0.5", None)],
    );
    for port in 995..1210u16 {
        let v = e
            .decide("eni-1", &tcp_in("10.0.0.5", "1.1.1.1", port))
            .unwrap();
        // Covering rules: i in port-1003..=port-1000; best = highest i (lowest
        // priority number), drop first among equal priorities.
        let covering: Vec<u16> = (0..200u16)
            .filter(|i| 1000 + i <= port && port <= 1003 + i)
            .collect();
        let want = covering
            .iter()
            .min_by_key(|&&i| (100 - (i / 2) as u8, if i % 3 == 0 { 0 } else { 1 }, i))
            .map(|i| format!("r{i}"))
            .unwrap_or_default();
        assert_eq!(decider_id(&e, "eni-1", &v), want, "port {port}");
    }
}

#[test]
fn introspection() {
    let e = engine(
        vec![vpc_group("sg-a", vec![])],
        vec![
            nic(
                "eni-1",
                &["sg-a", "sg-b", "sg-a"],
                "10.0.0.5",
                Some("47.0.0.1"),
            ),
            nic("eni-2", &["sg-a"], "10.0.0.6", None),
        ],
    );
    assert_eq!(
        e.nic("eni-1").unwrap(),
        nic("eni-1", &["sg-a", "sg-b"], "10.0.0.5", Some("47.0.0.1"))
    );
    assert_eq!(e.members("sg-a"), vec![ip("10.0.0.5"), ip("10.0.0.6")]);
    assert!(e.is_member("sg-b", ip("10.0.0.5")));
    assert_eq!((e.group_count(), e.nic_count()), (1, 2));
    assert_eq!(e.group("sg-a").unwrap().id, "sg-a");
    assert!(e.group("sg-b").is_none());
    e.check_invariants().unwrap();
}
