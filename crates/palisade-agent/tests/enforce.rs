//! `palisade agent` against the real server, enforcing with nftables inside network
//! namespaces, proven with real packets. Needs root, nft, conntrack, ip and python3;
//! otherwise every test prints "skipped: needs root and nft" and passes.
//!
//! Topology (one per test, names `pal-<pid>-<n>-*`, removed on drop): a bridge
//! namespace and hosts on 192.168.0.0/24; `h` (192.168.0.10) is protected by one agent
//! enforcing its NIC on its `eth0`; `p1`..`p3` (.11-.13) are unprotected peers.

use std::path::Path;

use palisade_agent::testkit::*;

const AGENT: &str = env!("CARGO_BIN_EXE_palisade-agent");
const H: &str = "192.168.0.10";
const P1: &str = "192.168.0.11";
const P2: &str = "192.168.0.12";
const P3: &str = "192.168.0.13";

/// Everything one test needs. Field order is drop order: helpers and the agent go
/// before the namespaces.
struct World {
    h: Probe,
    p: Vec<Probe>,
    agent: Option<AgentProc>,
    api: Api,
    vpc: String,
    server: Server,
    topo: Topology,
    _serial: std::sync::MutexGuard<'static, ()>,
}

impl World {
    fn new() -> Option<World> {
        if !can_run() {
            return None;
        }
        let serial = serial();
        let topo = Topology::new(&[H, P1, P2, P3]);
        let server = Server::start(&["--rule-quota", "1000"]);
        let api = server.client();
        let vpc = api.vpc();
        let mut h = Probe::start(topo.hosts[0].name());
        h.listen("tcp", &[22, 80, 7000, 8080]);
        h.listen("udp", &[53, 5000]);
        let mut p = Vec::new();
        for host in &topo.hosts[1..] {
            let mut probe = Probe::start(host.name());
            probe.listen("tcp", &[80, 443]);
            probe.listen("udp", &[53]);
            p.push(probe);
        }
        Some(World {
            h,
            p,
            agent: None,
            api,
            vpc,
            server,
            topo,
            _serial: serial,
        })
    }

    fn ns(&self) -> String {
        self.topo.hosts[0].name().to_string()
    }

    fn group(&self, extra: &[(&str, &str)]) -> String {
        self.api.group(&self.vpc, extra)
    }

    /// Starts the agent for `h`'s NIC (or instance) and waits for it to converge.
    fn start_agent(&mut self, id: &str) {
        self.start_agent_with(id, &[]);
    }

    fn start_agent_with(&mut self, id: &str, extra: &[&str]) {
        let ns = self.ns();
        let a = AgentProc::start_with(Path::new(AGENT), &self.server, &ns, &[("eth0", id)], extra);
        a.sync(&self.api);
        self.agent = Some(a);
    }

    fn sync(&self) {
        self.agent.as_ref().expect("agent").sync(&self.api);
    }

    /// Peer `i` (0-based: p1 = 0) opens to `h`.
    fn peer_to_h(&mut self, i: usize, kind: &str, port: u16) -> bool {
        self.p[i].probe(kind, H, port, 1.0).passed()
    }

    fn table(&self) -> String {
        nft_list(&self.ns(), "palisade")
    }
}

#[test]
fn seed_examples() {
    let Some(mut w) = World::new() else { return };
    let web = w.group(&[("SecurityGroupName", "web")]);
    let db = w.group(&[("SecurityGroupName", "db")]);
    let nic = w.api.nic(H, &[&web]);
    w.api.nic(P2, &[&db]);
    // Example 1, as written: SourceCidrIp 0.0.0.0/0, tcp 1/65535, Policy=Allow.
    w.api.authorize(
        &web,
        false,
        &[
            ("SourceCidrIp", "0.0.0.0/0"),
            ("IpProtocol", "tcp"),
            ("PortRange", "1/65535"),
            ("NicType", "intranet"),
            ("Policy", "Allow"),
        ],
    );
    w.start_agent(&nic);
    let table = w.table();
    assert!(table.contains("iifname \"eth0\" jump nic-"), "{table}");
    assert!(w.peer_to_h(0, "tcp", 80));
    assert!(w.peer_to_h(1, "tcp", 22));
    // Only TCP: UDP and ICMP meet the ingress default (drop).
    assert!(!w.peer_to_h(0, "udp", 53));
    assert!(!w.peer_to_h(0, "icmp", 0));
    // Egress: no rules in a normal group, so everything leaves.
    assert!(w.h.tcp(P1, 80).passed());
    assert!(w.h.udp(P1, 53).passed());

    // Example 2: db as the source group, Policy=Drop, same priority: drop wins for
    // db's member only.
    w.api.authorize(
        &web,
        false,
        &[
            ("SourceGroupId", &db),
            ("IpProtocol", "tcp"),
            ("PortRange", "1/65535"),
            ("NicType", "intranet"),
            ("Policy", "Drop"),
        ],
    );
    w.sync();
    assert!(!w.peer_to_h(1, "tcp", 80), "db member must be dropped");
    assert!(w.peer_to_h(0, "tcp", 80), "others still accepted");
    assert!(w.peer_to_h(2, "tcp", 22));
    let table = w.table();
    assert!(table.contains("@m-"), "{table}");
    if std::env::var_os("PALISADE_SHOW_TABLE").is_some() {
        println!("{table}\n{}", w.agent.as_ref().unwrap().log_text());
    }
}

fn tcp_rule<'a>(
    peer_key: &'a str,
    peer: &'a str,
    ports: &'a str,
    policy: &'a str,
    prio: &'a str,
) -> Vec<(&'a str, &'a str)> {
    vec![
        (peer_key, peer),
        ("IpProtocol", "tcp"),
        ("PortRange", ports),
        ("Policy", policy),
        ("Priority", prio),
    ]
}

#[test]
fn priority_drop_wins_ties_and_groups_merge() {
    let Some(mut w) = World::new() else { return };
    let g = w.group(&[]);
    let nic = w.api.nic(H, &[&g]);
    let a = w.api.authorize(
        &g,
        false,
        &tcp_rule("SourceCidrIp", "192.168.0.11/32", "80/80", "accept", "2"),
    );
    w.api.authorize(
        &g,
        false,
        &tcp_rule("SourceCidrIp", "192.168.0.0/24", "80/80", "drop", "3"),
    );
    w.start_agent(&nic);
    assert!(
        w.peer_to_h(0, "tcp", 80),
        "accept prio 2 before drop prio 3"
    );
    assert!(!w.peer_to_h(1, "tcp", 80), "the /24 drop");

    // Same priority, drop and accept: drop wins.
    let c = w.api.authorize(
        &g,
        false,
        &tcp_rule("SourceCidrIp", "192.168.0.11/32", "80/80", "drop", "2"),
    );
    w.sync();
    assert!(!w.peer_to_h(0, "tcp", 80), "drop wins the tie");
    w.api.revoke_id(&g, false, &c);
    w.sync();
    assert!(w.peer_to_h(0, "tcp", 80));

    // The accept moved behind the drop.
    w.api.revoke_id(&g, false, &a);
    w.api.authorize(
        &g,
        false,
        &tcp_rule("SourceCidrIp", "192.168.0.11/32", "80/80", "accept", "4"),
    );
    w.sync();
    assert!(!w.peer_to_h(0, "tcp", 80), "drop prio 3 now comes first");

    // A second group's prio-1 accept is evaluated before the first group's prio-3 drop.
    let g2 = w.group(&[]);
    w.api.authorize(
        &g2,
        false,
        &tcp_rule("SourceCidrIp", "192.168.0.11/32", "80/80", "accept", "1"),
    );
    w.api.ok(
        "JoinSecurityGroup",
        &[("SecurityGroupId", &g2), ("NetworkInterfaceId", &nic)],
    );
    w.sync();
    assert!(w.peer_to_h(0, "tcp", 80), "the other group's prio 1 accept");
    assert!(!w.peer_to_h(1, "tcp", 80));
    // The interface chain interleaves the two groups' tiers by priority.
    let table = w.table();
    let pos = |s: &str| table.find(s).unwrap_or_else(|| panic!("{s} in {table}"));
    let g2s = palisade_agent::render::sanitize(&g2);
    let gs = palisade_agent::render::sanitize(&g);
    assert!(pos(&format!("jump {g2s}-in-001-accept")) < pos(&format!("jump {gs}-in-003-drop")));
    assert!(pos(&format!("jump {gs}-in-003-drop")) < pos(&format!("jump {gs}-in-004-accept")));
}

/// The tier chain listing without counters (they move with traffic).
fn no_counters(s: &str) -> String {
    s.lines()
        .map(|l| match l.find("counter packets") {
            Some(i) => {
                let rest = &l[i..];
                let end = rest.find(" bytes ").map(|b| {
                    let after = &rest[b + 7..];
                    b + 7 + after.find(' ').unwrap_or(after.len())
                });
                format!("{}{}", &l[..i], &rest[end.unwrap_or(rest.len())..])
            }
            None => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn cidr_and_group_sources_membership_changes_only_touch_the_set() {
    let Some(mut w) = World::new() else { return };
    let g = w.group(&[]);
    let s = w.group(&[("SecurityGroupName", "clients")]);
    let nic = w.api.nic(H, &[&g]);
    let other = w.group(&[]);
    let n1 = w.api.nic(P1, &[&s, &other]);
    let n2 = w.api.nic(P2, &[&other]);
    // A group source for 22, a CIDR source for 80.
    w.api.authorize(
        &g,
        false,
        &tcp_rule("SourceGroupId", &s, "22/22", "accept", "1"),
    );
    w.api.authorize(
        &g,
        false,
        &tcp_rule("SourceCidrIp", "192.168.0.13/32", "80/80", "accept", "1"),
    );
    w.start_agent(&nic);
    assert!(w.peer_to_h(0, "tcp", 22), "member of the source group");
    assert!(!w.peer_to_h(1, "tcp", 22), "not a member");
    assert!(!w.peer_to_h(2, "tcp", 22));
    assert!(w.peer_to_h(2, "tcp", 80), "the CIDR source");
    assert!(!w.peer_to_h(0, "tcp", 80));

    let ns = w.ns();
    let tier = format!("{}-in-001-accept", palisade_agent::render::sanitize(&g));
    let nic_chain = format!("nic-{}-in", palisade_agent::render::sanitize(&nic));
    let before = (
        no_counters(&nft_chain(&ns, "palisade", &tier)),
        nft_chain(&ns, "palisade", &nic_chain),
    );

    // p2 joins the source group: one set element, no rule rewritten.
    w.api.ok(
        "JoinSecurityGroup",
        &[("SecurityGroupId", &s), ("NetworkInterfaceId", &n2)],
    );
    w.sync();
    let st = w.agent.as_ref().unwrap().status_json();
    assert_eq!(st["Statements"], 1, "{st}");
    assert!(w.peer_to_h(1, "tcp", 22), "joined");
    // p1 leaves it.
    w.api.ok(
        "LeaveSecurityGroup",
        &[("SecurityGroupId", &s), ("NetworkInterfaceId", &n1)],
    );
    w.sync();
    let st = w.agent.as_ref().unwrap().status_json();
    assert_eq!(st["Statements"], 1, "{st}");
    assert!(!w.peer_to_h(0, "tcp", 22), "left");
    assert!(w.peer_to_h(1, "tcp", 22));
    let after = (
        no_counters(&nft_chain(&ns, "palisade", &tier)),
        nft_chain(&ns, "palisade", &nic_chain),
    );
    assert_eq!(before, after, "rules and handles unchanged");
    let table = w.table();
    assert!(table.contains("elements = { 192.168.0.12 }"), "{table}");
}

#[test]
fn revoke_cuts_established_connections() {
    let Some(mut w) = World::new() else { return };
    let g = w.group(&[]);
    let nic = w.api.nic(H, &[&g]);
    let r = w.api.authorize(
        &g,
        false,
        &tcp_rule("SourceCidrIp", "0.0.0.0/0", "7000/7000", "accept", "1"),
    );
    w.api.authorize(
        &g,
        false,
        &tcp_rule("SourceCidrIp", "192.168.0.12/32", "22/22", "accept", "1"),
    );
    let u = w.api.authorize(
        &g,
        false,
        &[
            ("SourceCidrIp", "192.168.0.0/24"),
            ("IpProtocol", "udp"),
            ("PortRange", "5000/5000"),
        ],
    );
    w.start_agent(&nic);
    assert_eq!(w.p[0].cmd(&format!("hold c1 {H} 7000 2")), "ok");
    assert_eq!(w.p[1].cmd(&format!("hold c2 {H} 22 2")), "ok");
    assert_eq!(w.p[0].cmd("say c1 1"), "ok");
    assert_eq!(w.p[1].cmd("say c2 1"), "ok");
    // A UDP "connection": the same 5-tuple again and again.
    let udp = |p: &mut Probe| Outcome::parse(&p.cmd(&format!("probe udp,{H},5000,41000,1")));
    assert!(udp(&mut w.p[2]).passed());

    // Both in one call: one revision, one transaction.
    w.api.ok(
        "RevokeSecurityGroup",
        &[
            ("SecurityGroupId", &g),
            ("SecurityGroupRuleId.1", &r),
            ("SecurityGroupRuleId.2", &u),
        ],
    );
    w.sync();
    let st = w.agent.as_ref().unwrap().status_json();
    assert!(st["ConntrackDeleted"].as_u64().unwrap_or(0) >= 2, "{st}");
    // The established TCP connection on 7000 stops; the one on 22 (another rule) lives.
    assert_eq!(w.p[0].cmd("say c1 1"), "timeout");
    assert_eq!(w.p[1].cmd("say c2 1"), "ok");
    assert!(!udp(&mut w.p[2]).passed(), "the UDP flow stops too");
    let (_, ct) = ns_exec(
        &w.ns(),
        "conntrack",
        &["-L", "-p", "tcp", "--dport", "7000"],
    );
    assert!(!ct.contains("ESTABLISHED"), "{ct}");
}

#[test]
fn no_packet_leaks_while_rules_change() {
    let Some(mut w) = World::new() else { return };
    let g = w.group(&[]);
    let s = w.group(&[]);
    let nic = w.api.nic(H, &[&g]);
    w.api.nic(P3, &[&g]);
    let n2 = w.api.nic(P2, &[&w.group(&[])]);
    // p1 may open any TCP port but 8080; nothing allows its UDP or ICMP.
    w.api.authorize(
        &g,
        false,
        &tcp_rule("SourceCidrIp", "192.168.0.0/24", "1/65535", "accept", "10"),
    );
    w.api.authorize(
        &g,
        false,
        &tcp_rule("SourceCidrIp", "192.168.0.11/32", "8080/8080", "drop", "5"),
    );
    w.api.authorize(
        &g,
        false,
        &tcp_rule("SourceGroupId", &s, "8080/8080", "accept", "7"),
    );
    w.start_agent(&nic);
    assert!(w.peer_to_h(0, "tcp", 80), "p1 reaches other ports");

    // Flows that must stay denied: TCP connection attempts (3 threads), a UDP flow and
    // an ICMP echo flow, all from p1.
    assert_eq!(w.p[0].cmd(&format!("storm t tcp,{H},8080,0,0.1 4")), "ok");
    assert_eq!(w.p[0].cmd(&format!("flood u udp {H} 5000 0.005")), "ok");
    assert_eq!(w.p[0].cmd(&format!("flood i icmp {H} 0 0.005")), "ok");

    // A burst of changes around them: new tiers (interface chains rewritten), rules
    // added and revoked in the chains those flows traverse, membership and policy.
    let mut transactions = 0;
    for i in 0..30 {
        let a = w.api.authorize(
            &g,
            false,
            &tcp_rule(
                "SourceCidrIp",
                "192.168.0.12/32",
                "8080/8080",
                "accept",
                "1",
            ),
        );
        let b = w.api.authorize(
            &g,
            false,
            &[
                ("SourceCidrIp", "192.168.0.12/32"),
                ("IpProtocol", "udp"),
                ("PortRange", "5000/5000"),
                ("Priority", "3"),
            ],
        );
        let c = w.api.authorize(
            &g,
            false,
            &[
                ("SourceCidrIp", "192.168.0.13/32"),
                ("IpProtocol", "icmp"),
                ("PortRange", "-1/-1"),
                ("Priority", "2"),
            ],
        );
        let d = w.api.authorize(
            &g,
            false,
            &tcp_rule("SourceCidrIp", "192.168.0.13/32", "22/22", "drop", "1"),
        );
        w.api.ok(
            "JoinSecurityGroup",
            &[("SecurityGroupId", &s), ("NetworkInterfaceId", &n2)],
        );
        w.api.ok(
            "ModifySecurityGroupPolicy",
            &[
                ("SecurityGroupId", &g),
                (
                    "InnerAccessPolicy",
                    if i % 2 == 0 { "Drop" } else { "Accept" },
                ),
            ],
        );
        // Half of the time wait for the agent, so the changes land as separate
        // transactions; otherwise let them pile up into one.
        if i % 2 == 0 {
            w.sync();
            transactions += 1;
        }
        w.api.ok(
            "LeaveSecurityGroup",
            &[("SecurityGroupId", &s), ("NetworkInterfaceId", &n2)],
        );
        for (r, e) in [(a, false), (b, false), (c, false), (d, false)] {
            w.api.revoke_id(&g, e, &r);
        }
        if i % 2 == 0 {
            w.sync();
            transactions += 1;
        }
    }
    w.sync();
    let results: Vec<String> = ["t", "u", "i"]
        .iter()
        .map(|n| w.p[0].cmd(&format!("stop {n}")))
        .collect();
    println!("denied flows during the burst (passed, attempts): {results:?}");
    for (name, r) in ["tcp", "udp", "icmp"].iter().zip(&results) {
        let f: Vec<u64> = r
            .split_whitespace()
            .skip(1)
            .map(|x| x.parse().unwrap())
            .collect();
        assert_eq!(f.len(), 2, "{r}");
        assert!(f[1] > 0, "{name}: no attempts");
        assert_eq!(f[0], 0, "{name}: {} of {} got through", f[0], f[1]);
    }
    // The flows are denied by the rules, not by accident: lift them and they pass.
    let applied = w
        .agent
        .as_ref()
        .unwrap()
        .log_text()
        .matches("statement(s)")
        .count();
    println!("{applied} transactions, {transactions} of them waited for");
    assert!(
        applied >= transactions,
        "one transaction per change at least"
    );
    let drop = w.api.authorize(
        &g,
        false,
        &tcp_rule(
            "SourceCidrIp",
            "192.168.0.11/32",
            "8080/8080",
            "accept",
            "1",
        ),
    );
    w.sync();
    assert!(w.peer_to_h(0, "tcp", 8080));
    let _ = drop;
}

#[test]
fn restart_reconverges_and_leaves_other_tables_alone() {
    let Some(mut w) = World::new() else { return };
    let g = w.group(&[]);
    let nic = w.api.nic(H, &[&g]);
    let r80 = w.api.authorize(
        &g,
        false,
        &tcp_rule("SourceCidrIp", "0.0.0.0/0", "80/80", "accept", "1"),
    );
    w.start_agent(&nic);
    assert!(w.peer_to_h(0, "tcp", 80));
    assert!(!w.peer_to_h(0, "tcp", 8080));
    let ns = w.ns();
    // Someone else's table, and leftovers in ours.
    for cmd in [
        "add table ip other",
        "add chain ip other c { type filter hook input priority 10; policy accept; }",
        "add rule ip other c counter",
        "add chain inet palisade sg-gone-in-001-accept",
        "add rule inet palisade sg-gone-in-001-accept accept",
        "add set inet palisade m-sg-gone { type ipv4_addr; }",
    ] {
        let (ok, out) = ns_exec(&ns, "nft", &[cmd]);
        assert!(ok, "{cmd}: {out}");
    }

    // The agent goes away; the kernel keeps enforcing what it had.
    w.agent.as_mut().unwrap().kill();
    w.api.revoke_id(&g, false, &r80);
    w.api.authorize(
        &g,
        false,
        &tcp_rule("SourceCidrIp", "0.0.0.0/0", "8080/8080", "accept", "1"),
    );
    let g2 = w.group(&[]);
    w.api.authorize(
        &g2,
        false,
        &[
            ("SourceCidrIp", "0.0.0.0/0"),
            ("IpProtocol", "icmp"),
            ("PortRange", "-1/-1"),
        ],
    );
    w.api.ok(
        "JoinSecurityGroup",
        &[("SecurityGroupId", &g2), ("NetworkInterfaceId", &nic)],
    );
    assert!(
        w.peer_to_h(0, "tcp", 80),
        "old rules stay while the agent is down"
    );

    w.agent.as_mut().unwrap().spawn();
    w.sync();
    let st = w.agent.as_ref().unwrap().status_json();
    assert_eq!(st["FullSync"], true, "{st}");
    assert!(!w.peer_to_h(0, "tcp", 80), "revoked while down");
    assert!(w.peer_to_h(0, "tcp", 8080), "authorized while down");
    assert!(w.peer_to_h(0, "icmp", 0), "group joined while down");
    let table = w.table();
    assert!(!table.contains("sg-gone"), "{table}");
    assert!(!table.contains("m-sg-gone"), "{table}");
    let (ok, other) = ns_exec(&ns, "nft", &["list", "table", "ip", "other"]);
    assert!(ok && other.contains("counter"), "{other}");

    // A second restart with nothing changed: a full sync that changes nothing visible.
    w.agent.as_mut().unwrap().restart();
    w.sync();
    assert!(w.peer_to_h(0, "tcp", 8080));
    assert!(!w.peer_to_h(0, "tcp", 80));

    // Decommission: our table goes, the other stays.
    w.agent.as_mut().unwrap().kill();
    let out = std::process::Command::new(AGENT)
        .args(["--cleanup", "--netns", &ns])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(w.table(), "");
    let (ok, _) = ns_exec(&ns, "nft", &["list", "table", "ip", "other"]);
    assert!(ok);
}

#[test]
fn inner_access_for_normal_groups_never_for_enterprise() {
    let Some(mut w) = World::new() else { return };
    let n = w.group(&[]);
    // h is an instance here: the agent binds its primary interface by instance id.
    let inst = w.api.ok(
        "RunInstances",
        &[("SecurityGroupId", &n), ("PrivateIpAddress", H)],
    )["InstanceIdSets"]["InstanceIdSet"][0]
        .as_str()
        .unwrap()
        .to_string();
    w.api.nic(P1, &[&n]);
    w.start_agent(&inst);
    // Normal group, InnerAccessPolicy Accept (the default): members reach each other.
    assert!(w.peer_to_h(0, "tcp", 80), "member");
    assert!(w.peer_to_h(0, "udp", 53));
    assert!(w.peer_to_h(0, "icmp", 0));
    assert!(!w.peer_to_h(1, "tcp", 80), "not a member");
    w.api.ok(
        "ModifySecurityGroupPolicy",
        &[("SecurityGroupId", &n), ("InnerAccessPolicy", "Drop")],
    );
    w.sync();
    assert!(!w.peer_to_h(0, "tcp", 80), "InnerAccessPolicy Drop");
    w.api.ok(
        "ModifySecurityGroupPolicy",
        &[("SecurityGroupId", &n), ("InnerAccessPolicy", "Accept")],
    );
    w.sync();
    assert!(w.peer_to_h(0, "tcp", 80));

    // Enterprise group: no inner access, and egress without a rule is dropped. Kinds
    // cannot be mixed on one interface, so h gets a NIC in another VPC (same address)
    // and the agent is restarted bound to it: the old interface's chains go.
    let vpc2 = w.api.vpc();
    let e = w.api.group(&vpc2, &[("SecurityGroupType", "enterprise")]);
    let h_e = w.api.nic(H, &[&e]);
    w.api.nic(P1, &[&e]);
    w.agent = None;
    w.start_agent(&h_e);
    let table = w.table();
    assert!(
        !table.contains(&palisade_agent::render::sanitize(&n)),
        "{table}"
    );
    assert!(!w.peer_to_h(0, "tcp", 80), "enterprise: no inner access");
    assert!(!w.peer_to_h(0, "icmp", 0));
    assert!(!w.h.tcp(P1, 80).passed(), "enterprise: egress default drop");
    assert!(!w.h.udp(P2, 53).passed());
    w.api.authorize(
        &e,
        true,
        &[
            ("DestCidrIp", "192.168.0.0/24"),
            ("IpProtocol", "tcp"),
            ("PortRange", "80/80"),
        ],
    );
    w.sync();
    assert!(w.h.tcp(P1, 80).passed(), "egress rule");
    assert!(!w.h.tcp(P1, 443).passed());
    assert!(!w.h.udp(P1, 53).passed());
}

#[test]
fn icmp_udp_source_ports_and_egress_rules() {
    let Some(mut w) = World::new() else { return };
    let g = w.group(&[]);
    let nic = w.api.nic(H, &[&g]);
    w.api.authorize(
        &g,
        false,
        &[
            ("SourceCidrIp", "192.168.0.11/32"),
            ("IpProtocol", "icmp"),
            ("PortRange", "-1/-1"),
        ],
    );
    w.api.authorize(
        &g,
        false,
        &[
            ("SourceCidrIp", "0.0.0.0/0"),
            ("IpProtocol", "udp"),
            ("PortRange", "53/53"),
        ],
    );
    w.api.authorize(
        &g,
        false,
        &[
            ("SourceCidrIp", "0.0.0.0/0"),
            ("IpProtocol", "tcp"),
            ("PortRange", "8080/8080"),
            ("SourcePortRange", "20000/20100"),
        ],
    );
    w.api.authorize(
        &g,
        true,
        &[
            ("DestCidrIp", "192.168.0.12/32"),
            ("IpProtocol", "tcp"),
            ("PortRange", "443/443"),
            ("Policy", "drop"),
        ],
    );
    w.api.authorize(
        &g,
        true,
        &[
            ("DestCidrIp", "192.168.0.13/32"),
            ("IpProtocol", "all"),
            ("PortRange", "-1/-1"),
            ("Policy", "drop"),
            ("Priority", "2"),
        ],
    );
    w.start_agent(&nic);
    assert!(w.peer_to_h(0, "icmp", 0), "ICMP from p1");
    assert!(!w.peer_to_h(1, "icmp", 0), "no ICMP from p2");
    assert!(w.peer_to_h(1, "udp", 53));
    assert!(!w.peer_to_h(1, "udp", 5000));
    assert!(!w.peer_to_h(1, "tcp", 53), "UDP rule, TCP packet");
    assert!(
        w.p[0].probe_from("tcp", H, 8080, 20050, "", 1.0).passed(),
        "source port in range"
    );
    assert!(
        !w.p[0].probe_from("tcp", H, 8080, 30050, "", 1.0).passed(),
        "source port outside"
    );
    // Egress.
    assert!(!w.h.tcp(P2, 443).passed(), "egress drop to p2:443");
    assert!(w.h.tcp(P2, 80).passed());
    assert!(w.h.tcp(P1, 443).passed());
    assert!(!w.h.tcp(P3, 80).passed(), "egress drop ALL to p3");
    assert!(!w.h.udp(P3, 53).passed());
    assert!(!w.h.ping(P3).passed());
    assert!(
        w.h.ping(P1).passed(),
        "egress default accept; the reply is established"
    );
}

#[test]
fn a_table_removed_under_the_agent_comes_back() {
    let Some(mut w) = World::new() else { return };
    let g = w.group(&[]);
    let nic = w.api.nic(H, &[&g]);
    w.api.authorize(
        &g,
        false,
        &tcp_rule("SourceCidrIp", "192.168.0.11/32", "80/80", "accept", "1"),
    );
    // Quiet periods of 1 s: the agent checks its table after each.
    w.start_agent_with(&nic, &["--wait-seconds", "1"]);
    assert!(!w.peer_to_h(1, "tcp", 80));
    let (ok, out) = ns_exec(&w.ns(), "nft", &["delete", "table", "inet", "palisade"]);
    assert!(ok, "{out}");
    assert!(
        w.peer_to_h(1, "tcp", 80),
        "unprotected while the table is gone"
    );
    let mut back = false;
    for _ in 0..300 {
        if !w.table().is_empty() {
            back = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(back, "{}", w.agent.as_ref().unwrap().log_text());
    w.sync();
    assert!(!w.peer_to_h(1, "tcp", 80), "enforced again");
    assert!(w.peer_to_h(0, "tcp", 80));
}
