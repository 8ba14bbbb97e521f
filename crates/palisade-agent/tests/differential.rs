//! Differential test: for randomized worlds (groups of both kinds, random rules with
//! CIDR and group peers, local blocks, source ports, priorities with ties, inner
//! access, memberships, a public address), what the kernel does to real connection
//! attempts equals the verdict of `palisade_engine` for the same state (asked through
//! `CheckSecurityGroupAccess`, and checked against the agent's own model as well).
//!
//! Needs root, nft, conntrack, ip and python3 (else "skipped: needs root and nft").
//! `PALISADE_DIFF_SEED` replays a run; `PALISADE_DIFF_ROUNDS` (default 4) sets its size.

use std::collections::BTreeSet;
use std::path::Path;

use palisade_agent::engine;
use palisade_agent::testkit::*;
use palisade_agent::EnforcementState;

const AGENT: &str = env!("CARGO_BIN_EXE_palisade-agent");
const H: &str = "192.168.0.10";
const H_PUBLIC: &str = "192.168.0.200";
const PEERS: [&str; 4] = [
    "192.168.0.11",
    "192.168.0.12",
    "192.168.0.13",
    "192.168.0.14",
];
const PORTS: [u16; 5] = [22, 80, 443, 8080, 9000];
const KINDS: [&str; 4] = ["tcp", "tcp", "udp", "icmp"];

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.below(v.len())]
    }
}

/// One round's groups.
struct Groups {
    /// h's groups (one or two, the same kind).
    own: Vec<String>,
    enterprise: bool,
    /// Normal groups used as sources.
    sources: Vec<String>,
}

/// A random rule for `group`; `None` when the API refuses it (e.g. a combination the
/// group's kind does not allow).
fn random_rule(api: &Api, rng: &mut Rng, group: &str, g: &Groups) -> Option<String> {
    let egress = rng.chance(40);
    let proto = *rng.pick(&["tcp", "tcp", "udp", "icmp", "all"]);
    let ports = match proto {
        "tcp" | "udp" => *rng.pick(&[
            "22/22",
            "80/80",
            "443/443",
            "8080/8080",
            "1/1024",
            "80/8080",
            "9000/9000",
            "1/65535",
            "400/500",
        ]),
        _ => "-1/-1",
    };
    let mut fields: Vec<(String, String)> = vec![
        ("IpProtocol".into(), proto.into()),
        ("PortRange".into(), ports.into()),
        ("Priority".into(), (1 + rng.below(4)).to_string()),
    ];
    if !g.enterprise {
        let policy = if rng.chance(35) { "drop" } else { "accept" };
        fields.push(("Policy".into(), policy.into()));
    }
    if matches!(proto, "tcp" | "udp") && rng.chance(20) {
        fields.push(("SourcePortRange".into(), "20000/20100".into()));
    }
    let (peer_cidr, peer_group, local) = if egress {
        ("DestCidrIp", "DestGroupId", "SourceCidrIp")
    } else {
        ("SourceCidrIp", "SourceGroupId", "DestCidrIp")
    };
    let others: Vec<&String> = g
        .sources
        .iter()
        .chain(g.own.iter())
        .filter(|x| x.as_str() != group)
        .collect();
    if !g.enterprise && !others.is_empty() && rng.chance(25) {
        fields.push((peer_group.into(), rng.pick(&others).to_string()));
    } else {
        let cidr = *rng.pick(&[
            "0.0.0.0/0",
            "192.168.0.0/24",
            "192.168.0.11/32",
            "192.168.0.12/31",
            "192.168.0.8/29",
            "10.0.0.0/8",
            "192.168.0.14/32",
            "192.168.0.200/32",
        ]);
        fields.push((peer_cidr.into(), cidr.into()));
    }
    if rng.chance(15) {
        let l = *rng.pick(&["192.168.0.10/32", "192.168.0.200/32", "192.168.0.0/24"]);
        fields.push((local.into(), l.into()));
    }
    let action = if egress {
        "AuthorizeSecurityGroupEgress"
    } else {
        "AuthorizeSecurityGroup"
    };
    let before = api.rule_ids(group);
    let mut params: Vec<(&str, &str)> = vec![("SecurityGroupId", group)];
    params.extend(fields.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    match api.try_call(action, &params) {
        Ok(_) => api
            .rule_ids(group)
            .into_iter()
            .find(|id| !before.contains(id)),
        Err(_) => None,
    }
}

/// A packet to try: from h's point of view.
#[derive(Clone, Debug)]
struct Sample {
    egress: bool,
    kind: &'static str,
    peer: usize,
    local: &'static str,
    port: u16,
    sport: u16,
}

fn proto_number(kind: &str) -> u8 {
    match kind {
        "tcp" => 6,
        "udp" => 17,
        _ => 1,
    }
}

/// The engine's verdict through the API (the server's engine on the stored state).
fn server_verdict(api: &Api, nic: &str, s: &Sample) -> (bool, String) {
    let (dport, sport) = if s.kind == "icmp" {
        (0, 0)
    } else {
        (s.port, s.sport)
    };
    let v = api.ok(
        "CheckSecurityGroupAccess",
        &[
            ("NetworkInterfaceId", nic),
            ("Direction", if s.egress { "egress" } else { "ingress" }),
            ("IpProtocol", s.kind),
            ("PeerIpAddress", PEERS[s.peer]),
            ("DestinationPort", &dport.to_string()),
            ("SourcePort", &sport.to_string()),
            ("LocalIpAddress", s.local),
        ],
    );
    (
        v["Verdict"] == "Accept",
        v["Summary"].as_str().unwrap_or("").to_string(),
    )
}

/// The agent's own model of the same state.
fn local_verdict(st: &EnforcementState, nic: &str, s: &Sample) -> bool {
    let e = st.engine();
    let ports = s.kind != "icmp";
    let (lport, rport) = match (s.egress, ports) {
        (_, false) => (0, 0),
        (false, true) => (s.port, s.sport),
        (true, true) => (s.sport, s.port),
    };
    let p = engine::Packet {
        direction: if s.egress {
            engine::Direction::Egress
        } else {
            engine::Direction::Ingress
        },
        protocol: proto_number(s.kind),
        local_ip: engine::parse_ipv4(s.local).unwrap(),
        remote_ip: engine::parse_ipv4(PEERS[s.peer]).unwrap(),
        local_port: lport,
        remote_port: rport,
        reply: false,
    };
    e.decide(nic, &p).unwrap().action == engine::Policy::Accept
}

fn spec(s: &Sample, timeout: f64) -> String {
    if s.egress {
        format!(
            "{},{},{},{},{timeout},{}",
            s.kind, PEERS[s.peer], s.port, s.sport, s.local
        )
    } else {
        format!("{},{},{},{},{timeout},", s.kind, s.local, s.port, s.sport)
    }
}

/// Runs the samples as real connection attempts, in parallel per namespace; whether
/// each got through.
fn kernel(h: &mut Probe, peers: &mut [Probe], samples: &[Sample], timeout: f64) -> Vec<bool> {
    // Group by the namespace that sends.
    let mut per: Vec<Vec<usize>> = vec![Vec::new(); peers.len() + 1];
    for (i, s) in samples.iter().enumerate() {
        per[if s.egress { 0 } else { s.peer + 1 }].push(i);
    }
    for (who, idx) in per.iter().enumerate() {
        if idx.is_empty() {
            continue;
        }
        let specs: Vec<String> = idx.iter().map(|&i| spec(&samples[i], timeout)).collect();
        let line = format!("batch {}", specs.join(" "));
        if who == 0 {
            h.send(&line)
        } else {
            peers[who - 1].send(&line)
        }
    }
    let mut out = vec![false; samples.len()];
    for (who, idx) in per.iter().enumerate() {
        if idx.is_empty() {
            continue;
        }
        let line = if who == 0 {
            h.recv()
        } else {
            peers[who - 1].recv()
        };
        let results: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(results.len(), idx.len(), "{line}");
        for (k, &i) in idx.iter().enumerate() {
            out[i] = Outcome::parse(results[k]).passed();
        }
    }
    out
}

fn samples(rng: &mut Rng, n: usize) -> Vec<Sample> {
    let mut used: BTreeSet<u16> = BTreeSet::new();
    let mut out = Vec::new();
    for _ in 0..n {
        let sport = loop {
            let p = if rng.chance(30) {
                20000 + rng.below(101) as u16
            } else {
                30000 + rng.below(30000) as u16
            };
            if used.insert(p) {
                break p;
            }
        };
        out.push(Sample {
            egress: rng.chance(40),
            kind: KINDS[rng.below(KINDS.len())],
            peer: rng.below(PEERS.len()),
            local: if rng.chance(25) { H_PUBLIC } else { H },
            port: *rng.pick(&PORTS),
            sport,
        });
    }
    out
}

#[test]
fn kernel_matches_engine_on_random_worlds() {
    if !can_run() {
        return;
    }
    let _serial = serial();
    let seed: u64 = std::env::var("PALISADE_DIFF_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    let rounds: usize = std::env::var("PALISADE_DIFF_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(4);
    println!("PALISADE_DIFF_SEED={seed}");
    let mut rng = Rng(seed);

    let mut ips = vec![H];
    ips.extend(PEERS);
    let topo = Topology::new(&ips);
    topo.hosts[0].add_address(H_PUBLIC);
    let server = Server::start(&["--rule-quota", "1000"]);
    let api = server.client();
    let mut h = Probe::start(topo.hosts[0].name());
    h.listen("tcp", &PORTS);
    h.listen_at("udp", H, &PORTS);
    h.listen_at("udp", H_PUBLIC, &PORTS);
    let mut peers: Vec<Probe> = topo.hosts[1..]
        .iter()
        .map(|x| {
            let mut p = Probe::start(x.name());
            p.listen("tcp", &PORTS);
            p.listen("udp", &PORTS);
            p
        })
        .collect();

    let mut checked = 0;
    let mut accepted = 0;
    let mut failures: Vec<String> = Vec::new();
    for round in 0..rounds {
        // A fresh VPC per round: h's NIC keeps its address.
        let vpc = api.vpc();
        let enterprise = rng.chance(30);
        let kind: &[(&str, &str)] = if enterprise {
            &[("SecurityGroupType", "enterprise")]
        } else {
            &[]
        };
        let mut own = vec![api.group(&vpc, kind)];
        if rng.chance(50) {
            own.push(api.group(&vpc, kind));
        }
        let sources = vec![api.group(&vpc, &[]), api.group(&vpc, &[])];
        let groups = Groups {
            own: own.clone(),
            enterprise,
            sources: sources.clone(),
        };
        for g in &own {
            if !enterprise && rng.chance(50) {
                api.ok(
                    "ModifySecurityGroupPolicy",
                    &[("SecurityGroupId", g), ("InnerAccessPolicy", "Drop")],
                );
            }
        }
        let own_refs: Vec<&str> = own.iter().map(String::as_str).collect();
        let keys: Vec<String> = (1..=own.len())
            .map(|i| format!("SecurityGroupIds.{i}"))
            .collect();
        let mut p: Vec<(&str, &str)> = vec![("PrimaryIpAddress", H), ("PublicIpAddress", H_PUBLIC)];
        for (k, g) in keys.iter().zip(&own_refs) {
            p.push((k.as_str(), g));
        }
        let nic = api.ok("CreateNetworkInterface", &p)["NetworkInterfaceId"]
            .as_str()
            .unwrap()
            .to_string();
        // Peers: members of the source groups and/or h's groups; the last one is
        // sometimes nobody's.
        let mut peer_nics = Vec::new();
        for (i, ip) in PEERS.iter().enumerate() {
            if i == PEERS.len() - 1 && rng.chance(50) {
                continue;
            }
            let mut mine: Vec<&str> = Vec::new();
            for s in &sources {
                if !enterprise && rng.chance(50) {
                    mine.push(s);
                }
            }
            for g in &own_refs {
                if rng.chance(35) {
                    mine.push(g);
                }
            }
            if enterprise && mine.is_empty() {
                mine.push(own_refs[0]);
            }
            if mine.is_empty() {
                mine.push(&sources[0]);
            }
            peer_nics.push(api.nic(ip, &mine));
        }
        let mut rules: Vec<(String, String)> = Vec::new();
        for g in &own {
            for _ in 0..(3 + rng.below(8)) {
                if let Some(id) = random_rule(&api, &mut rng, g, &groups) {
                    rules.push((g.clone(), id));
                }
            }
        }
        let agent = AgentProc::start(
            Path::new(AGENT),
            &server,
            topo.hosts[0].name(),
            &[("eth0", &nic)],
        );

        for phase in 0..3 {
            if phase > 0 {
                // Mutate: revoke some rules, add others, flip inner access, move a peer.
                for _ in 0..(1 + rng.below(3)) {
                    if rules.is_empty() {
                        break;
                    }
                    let (g, id) = rules.remove(rng.below(rules.len()));
                    let _ = api.try_call(
                        "RevokeSecurityGroup",
                        &[("SecurityGroupId", &g), ("SecurityGroupRuleId.1", &id)],
                    );
                    let _ = api.try_call(
                        "RevokeSecurityGroupEgress",
                        &[("SecurityGroupId", &g), ("SecurityGroupRuleId.1", &id)],
                    );
                }
                for _ in 0..(1 + rng.below(3)) {
                    let g = rng.pick(&own).clone();
                    if let Some(id) = random_rule(&api, &mut rng, &g, &groups) {
                        rules.push((g, id));
                    }
                }
                if !enterprise {
                    let g = rng.pick(&own);
                    let policy = if rng.chance(50) { "Accept" } else { "Drop" };
                    api.ok(
                        "ModifySecurityGroupPolicy",
                        &[("SecurityGroupId", g), ("InnerAccessPolicy", policy)],
                    );
                    let n = rng.pick(&peer_nics);
                    let s = rng.pick(&sources);
                    let action = if rng.chance(50) {
                        "JoinSecurityGroup"
                    } else {
                        "LeaveSecurityGroup"
                    };
                    let _ =
                        api.try_call(action, &[("SecurityGroupId", s), ("NetworkInterfaceId", n)]);
                }
            }
            agent.sync(&api);
            let st = EnforcementState::from_json(&api.ok(
                "DescribeEnforcementState",
                &[("NetworkInterfaceId.1", &nic)],
            ))
            .unwrap();
            let batch = samples(&mut rng, 40);
            let got = kernel(&mut h, &mut peers, &batch, 0.5);
            for (s, &passed) in batch.iter().zip(&got) {
                let (want, summary) = server_verdict(&api, &nic, s);
                assert_eq!(
                    local_verdict(&st, &nic, s),
                    want,
                    "the agent's model disagrees with the server on {s:?}: {summary}"
                );
                checked += 1;
                if want {
                    accepted += 1;
                }
                if passed == want {
                    continue;
                }
                // Confirm with a slower, lone attempt before calling it a mismatch.
                let again = kernel(&mut h, &mut peers, std::slice::from_ref(s), 2.0)[0];
                if again == want {
                    continue;
                }
                failures.push(format!(
                    "round {round} phase {phase}: {s:?}: kernel {} engine {} ({summary})",
                    if passed { "passed" } else { "blocked" },
                    if want { "accept" } else { "drop" },
                ));
            }
        }
        if !failures.is_empty() {
            println!("{}", nft_list(topo.hosts[0].name(), "palisade"));
            println!("{}", agent.log_text());
            break;
        }
        drop(agent);
    }
    println!(
        "{checked} packets checked, {accepted} accepted by the engine, {} mismatches",
        failures.len()
    );
    assert!(failures.is_empty(), "seed {seed}:\n{}", failures.join("\n"));
    assert!(
        accepted > 0 && accepted < checked,
        "the sample saw both verdicts"
    );
}
