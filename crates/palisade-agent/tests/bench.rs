//! Benchmark (ignored by default; needs root and nft):
//!
//! ```text
//! CARGO_TARGET_DIR=/work/target-agent cargo build --release -p palisade
//! CARGO_TARGET_DIR=/work/target-agent cargo test --release -p palisade-agent --test bench -- --ignored --nocapture
//! ```
//!
//! 1. Propagation: from the API acknowledging a change to the kernel enforcing it,
//!    measured with real packets: right after the acknowledgement a peer starts
//!    connection attempts (5 ms each) and stops at the first that gets through (an
//!    authorize) or the first that does not (a revoke, 20 ms each, counted from the
//!    start of that attempt). p50 and p99 over 50 authorizes and 50 revokes.
//! 2. Apply time of a group of 1,000 rules (the agent's first, full transaction), and
//!    then single-rule changes inside that group: statements per transaction and
//!    propagation.

use std::path::Path;
use std::time::Instant;

use palisade_agent::testkit::*;

const AGENT: &str = env!("CARGO_BIN_EXE_palisade-agent");
const H: &str = "192.168.0.10";
const P1: &str = "192.168.0.11";

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i.min(v.len() - 1)]
}

fn summary(name: &str, v: &mut [f64]) {
    let (p50, p99, max) = (pct(v, 0.5), pct(v, 0.99), pct(v, 1.0));
    println!(
        "{name:<58} n={:<3} p50 {p50:>7.1} ms  p99 {p99:>7.1} ms  max {max:>7.1} ms",
        v.len()
    );
}

/// ms from `t0` to the first attempt that gets through (`want` true) or not.
fn propagate(p: &mut Probe, t0: Instant, want: bool, port: u16) -> f64 {
    let cmd = if want {
        format!("until tcp,{H},{port},0,0.005 10")
    } else {
        format!("until_blocked tcp,{H},{port},0,0.02 10")
    };
    let r = p.cmd(&cmd);
    assert!(r.starts_with("ok "), "{cmd}: {r}");
    let ms = t0.elapsed().as_secs_f64() * 1000.0;
    // The blocked attempt started one timeout (20 ms) before it was called blocked.
    if want {
        ms
    } else {
        (ms - 20.0).max(0.0)
    }
}

/// nft durations of the agent's transactions after line `from`, as logged.
fn nft_times(log: &str, from: usize) -> Vec<(usize, f64, bool)> {
    log.lines()
        .skip(from)
        .filter_map(|l| {
            let stmts: usize = l
                .split(": ")
                .nth(2)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()?;
            let ms: f64 = l
                .split(" in ")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()?;
            Some((stmts, ms, l.contains("full sync")))
        })
        .collect()
}

#[test]
#[ignore]
fn propagation_and_apply_benchmark() {
    if !can_run() {
        return;
    }
    let _serial = serial();
    let topo = Topology::new(&[H, P1]);
    let server = Server::start(&["--rule-quota", "1100", "--rate-limit", "0"]);
    let api = server.client();
    let vpc = api.vpc();
    let mut h = Probe::start(topo.hosts[0].name());
    h.listen("tcp", &[80, 81]);
    let mut p1 = Probe::start(topo.hosts[1].name());
    let g = api.group(&vpc, &[]);
    let nic = api.nic(H, &[&g]);
    // A few rules so the group is not trivial.
    for port in ["22/22", "443/443", "8000/8100"] {
        api.authorize(
            &g,
            false,
            &[
                ("SourceCidrIp", "10.0.0.0/8"),
                ("IpProtocol", "tcp"),
                ("PortRange", port),
            ],
        );
    }
    let agent = AgentProc::start(
        Path::new(AGENT),
        &server,
        topo.hosts[0].name(),
        &[("eth0", &nic)],
    );
    agent.sync(&api);
    println!();

    // 1. Single-rule changes on a small group.
    let mut up = Vec::new();
    let mut down = Vec::new();
    let rule = [
        ("SourceCidrIp", "192.168.0.11/32"),
        ("IpProtocol", "tcp"),
        ("PortRange", "80/80"),
    ];
    for _ in 0..50 {
        let mut p = vec![("SecurityGroupId", g.as_str())];
        p.extend_from_slice(&rule);
        api.ok("AuthorizeSecurityGroup", &p);
        let t0 = Instant::now();
        up.push(propagate(&mut p1, t0, true, 80));
        api.ok("RevokeSecurityGroup", &p);
        let t0 = Instant::now();
        down.push(propagate(&mut p1, t0, false, 80));
        agent.sync(&api);
    }
    summary("propagation, authorize one rule (small group)", &mut up);
    summary("propagation, revoke one rule (small group)", &mut down);
    let log = agent.log_text();
    let mut small: Vec<f64> = nft_times(&log, 1).iter().map(|x| x.1).collect();
    summary("  nft transaction of those changes", &mut small);

    // 2. A group of 1,000 rules (priorities 1..100, both policies), applied from scratch.
    let big = api.group(&vpc, &[]);
    for chunk in 0..10 {
        let mut owned: Vec<(String, String)> = vec![("SecurityGroupId".into(), big.clone())];
        for k in 1..=100 {
            let i = chunk * 100 + k - 1;
            let n = format!("Permissions.{k}.");
            owned.push((format!("{n}IpProtocol"), "tcp".into()));
            owned.push((
                format!("{n}PortRange"),
                format!("{}/{}", 2000 + i, 2000 + i),
            ));
            owned.push((
                format!("{n}SourceCidrIp"),
                format!("10.{}.{}.0/24", i / 256, i % 256),
            ));
            owned.push((format!("{n}Priority"), (1 + i % 100).to_string()));
            owned.push((
                format!("{n}Policy"),
                if i % 3 == 0 { "drop" } else { "accept" }.into(),
            ));
        }
        let p: Vec<(&str, &str)> = owned
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        api.ok("AuthorizeSecurityGroup", &p);
    }
    drop(agent);
    let nic2 = {
        // The big group goes to h's NIC; the agent starts from scratch on it.
        api.ok(
            "JoinSecurityGroup",
            &[("SecurityGroupId", &big), ("NetworkInterfaceId", &nic)],
        );
        nic.clone()
    };
    let _ = ns_exec(
        topo.hosts[0].name(),
        "nft",
        &["delete", "table", "inet", "palisade"],
    );
    let t0 = Instant::now();
    let agent = AgentProc::start(
        Path::new(AGENT),
        &server,
        topo.hosts[0].name(),
        &[("eth0", &nic2)],
    );
    agent.sync(&api);
    let start_to_enforced = t0.elapsed().as_secs_f64() * 1000.0;
    let first = nft_times(&agent.log_text(), 0);
    let (stmts, ms, full) = first[0];
    assert!(full);
    println!(
        "{:<58} {stmts} statements, nft {ms:.1} ms; agent start to enforced {start_to_enforced:.1} ms",
        "apply a group of 1,000 rules (fresh table)"
    );
    // Restart on the same table: reconcile (flush and refill) in one transaction.
    let mut agent = agent;
    let before = agent.log_text().lines().count();
    agent.restart();
    agent.sync(&api);
    let again = nft_times(&agent.log_text(), before);
    println!(
        "{:<58} {} statements, nft {:.1} ms",
        "reconcile the same 1,000 rules after a restart", again[0].0, again[0].1
    );

    // Single-rule changes inside the big group: cost follows the change.
    let mut up = Vec::new();
    let mut down = Vec::new();
    let before = agent.log_text().lines().count();
    for i in 0..50 {
        let p = [
            ("SecurityGroupId", big.as_str()),
            ("SourceCidrIp", "192.168.0.11/32"),
            ("IpProtocol", "tcp"),
            ("PortRange", "81/81"),
            ("Priority", if i % 2 == 0 { "1" } else { "50" }),
        ];
        api.ok("AuthorizeSecurityGroup", &p);
        let t0 = Instant::now();
        up.push(propagate(&mut p1, t0, true, 81));
        api.ok("RevokeSecurityGroup", &p);
        let t0 = Instant::now();
        down.push(propagate(&mut p1, t0, false, 81));
        agent.sync(&api);
    }
    summary(
        "propagation, authorize one rule (1,000-rule group)",
        &mut up,
    );
    summary("propagation, revoke one rule (1,000-rule group)", &mut down);
    let changes = nft_times(&agent.log_text(), before);
    let mut ms: Vec<f64> = changes.iter().map(|x| x.1).collect();
    let max_stmts = changes.iter().map(|x| x.0).max().unwrap_or(0);
    summary("  nft transaction of those changes", &mut ms);
    println!(
        "{:<58} at most {max_stmts} statements per transaction ({} transactions)",
        "  size of those transactions",
        changes.len()
    );
    println!("last transactions as the agent logged them:");
    for l in agent.log_text().lines().rev().take(4) {
        println!("  {l}");
    }
    let _ = h.cmd("pid");
}
