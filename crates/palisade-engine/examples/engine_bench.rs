//! Throughput of the decision engine vs the reference evaluator, and update cost.
//!
//! ```text
//! cargo run --release -p palisade-engine --example engine_bench
//! ```
//!
//! `BENCH_SECS` (default 1.0) sets the CPU time spent per engine measurement;
//! `BENCH_ONLY` picks scenarios (e.g. `a`, `bc`; default `abc`).
//!
//! Engine throughput is measured three ways: `Engine::decide` with the NIC id
//! (hashes the id per packet), `Engine::decide_handle` with the NIC resolved
//! once by `Engine::nic_handle` (what a data path does: it resolves each
//! interface once), and `Engine::decide_batch` over blocks of handle/packet
//! pairs. The ratio is by handle against the reference.
//!
//! The machine may be shared: throughput is counted per CPU-second of the
//! benchmark thread (from `/proc/thread-self/schedstat`, wall time where that is
//! missing) and is the best of 5 slices; update costs are wall time, best of 5
//! slices. Packets are generated before timing and passed through `black_box`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use palisade_engine::reference::ReferenceWorld;
use palisade_engine::*;

/// SplitMix64.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

const PORTS: [u16; 12] = [
    22, 80, 443, 3306, 5432, 6379, 8080, 8443, 9000, 53, 123, 27017,
];

struct World {
    groups: Vec<GroupSpec>,
    nics: Vec<Nic>,
    /// CIDRs used by rules (to aim packets at them).
    cidrs: Vec<Cidr4>,
}

fn random_rule(
    rng: &mut Rng,
    gid: &str,
    idx: usize,
    n_groups: usize,
    group_peers: bool,
    cidrs: &mut Vec<Cidr4>,
) -> Rule {
    let protocol = match rng.below(10) {
        0..=5 => Protocol::Tcp,
        6 | 7 => Protocol::Udp,
        8 => Protocol::Icmp,
        _ => Protocol::All,
    };
    let port_range = if protocol.uses_ports() {
        let p = PORTS[rng.below(PORTS.len() as u64) as usize];
        if rng.chance(70) {
            PortRange::single(p)
        } else {
            PortRange::new(p, p.saturating_add(rng.below(2000) as u16))
        }
    } else {
        PortRange::ALL
    };
    let peer = if group_peers && rng.chance(20) {
        Peer::Group(format!("sg-{}", rng.below(n_groups as u64)))
    } else {
        let len = [8u8, 12, 16, 20, 24, 28, 32][rng.below(7) as usize];
        let c = Cidr4::new(0x0A00_0000 | (rng.next() as u32 & 0x00FF_FFFF), len);
        cidrs.push(c);
        Peer::Cidr(c)
    };
    Rule {
        rule_id: format!("{gid}-r{idx}"),
        group_id: gid.to_string(),
        direction: if rng.chance(65) {
            Direction::Ingress
        } else {
            Direction::Egress
        },
        protocol,
        port_range,
        source_port_range: if protocol.uses_ports() && rng.chance(5) {
            Some(PortRange::new(1024, 65535))
        } else {
            None
        },
        peer,
        local_cidr: if rng.chance(5) {
            Some(Cidr4::new(0x0A00_0000, 9))
        } else {
            None
        },
        policy: if rng.chance(70) {
            Policy::Accept
        } else {
            Policy::Drop
        },
        priority: 1 + rng.below(100) as u8,
        nic_type: NicType::Intranet,
    }
}

fn random_group(
    rng: &mut Rng,
    i: usize,
    n_rules: usize,
    n_groups: usize,
    cidrs: &mut Vec<Cidr4>,
) -> GroupSpec {
    let id = format!("sg-{i}");
    let enterprise = rng.chance(10);
    let rules = (0..n_rules)
        .map(|k| random_rule(rng, &id, k, n_groups, !enterprise, cidrs))
        .map(|mut r| {
            if enterprise {
                r.policy = Policy::Accept;
            }
            r
        })
        .collect();
    GroupSpec {
        id,
        kind: if enterprise {
            GroupKind::Enterprise
        } else {
            GroupKind::Normal
        },
        vpc_id: Some("vpc-bench".into()),
        inner_access_accept: rng.chance(50),
        rules,
    }
}

/// (a): one NIC in 5 groups of 100 rules; 20 more groups with 100 members each
/// serve as group peers.
fn world_a(rng: &mut Rng) -> World {
    let mut cidrs = Vec::new();
    let n_groups = 25;
    let mut groups = Vec::new();
    for i in 0..5 {
        let mut g = random_group(rng, i, 100, n_groups, &mut cidrs);
        g.kind = GroupKind::Normal;
        g.inner_access_accept = false;
        // Group peers point at the member groups 5..25.
        for r in &mut g.rules {
            if let Peer::Group(_) = r.peer {
                r.peer = Peer::Group(format!("sg-{}", 5 + rng.below(20)));
            }
        }
        groups.push(g);
    }
    for i in 5..n_groups {
        groups.push(GroupSpec {
            id: format!("sg-{i}"),
            kind: GroupKind::Normal,
            vpc_id: Some("vpc-bench".into()),
            inner_access_accept: false,
            rules: Vec::new(),
        });
    }
    let mut nics = vec![Nic {
        id: "eni-target".into(),
        groups: (0..5).map(|i| format!("sg-{i}")).collect(),
        private_ip: 0x0A00_0001,
        public_ip: None,
    }];
    for k in 0..2000u32 {
        nics.push(Nic {
            id: format!("eni-{k}"),
            groups: vec![format!("sg-{}", 5 + k % 20)],
            private_ip: 0x0A10_0000 + k,
            public_ip: None,
        });
    }
    World {
        groups,
        nics,
        cidrs,
    }
}

/// (b): 10,000 groups (5..40 rules, about 22 on average) and 100,000 NICs in 1..5
/// groups each.
fn world_b(rng: &mut Rng, n_groups: usize, n_nics: usize) -> World {
    let mut cidrs = Vec::new();
    let groups = (0..n_groups)
        .map(|i| {
            let n = 5 + rng.below(36) as usize;
            random_group(rng, i, n, n_groups, &mut cidrs)
        })
        .collect::<Vec<_>>();
    let nics = (0..n_nics)
        .map(|k| {
            let n = 1 + rng.below(5) as usize;
            // Do not mix kinds on one NIC (ECS forbids it): pick groups of the
            // first group's kind.
            let first = rng.below(n_groups as u64) as usize;
            let kind = groups[first].kind;
            let mut gs = vec![format!("sg-{first}")];
            while gs.len() < n {
                let g = rng.below(n_groups as u64) as usize;
                if groups[g].kind == kind {
                    gs.push(format!("sg-{g}"));
                }
            }
            Nic {
                id: format!("eni-{k}"),
                groups: gs,
                private_ip: 0x0A00_0000 + 1 + k as u32 * 37 % 0x00FF_FFFF,
                public_ip: None,
            }
        })
        .collect();
    World {
        groups,
        nics,
        cidrs,
    }
}

fn packets(rng: &mut Rng, w: &World, targets: &[usize], n: usize) -> Vec<(usize, Packet)> {
    (0..n)
        .map(|_| {
            let t = targets[rng.below(targets.len() as u64) as usize];
            let nic = &w.nics[t];
            let remote_ip = match rng.below(10) {
                0..=2 => w.nics[rng.below(w.nics.len() as u64) as usize].private_ip,
                3..=7 => {
                    let c = w.cidrs[rng.below(w.cidrs.len() as u64) as usize];
                    c.first() | (rng.next() as u32 & !c.mask())
                }
                _ => rng.next() as u32,
            };
            let protocol = match rng.below(10) {
                0..=6 => 6,
                7 | 8 => 17,
                _ => 1,
            };
            let service = PORTS[rng.below(PORTS.len() as u64) as usize];
            let ephemeral = 32768 + rng.below(28000) as u16;
            let direction = if rng.chance(60) {
                Direction::Ingress
            } else {
                Direction::Egress
            };
            let (local_port, remote_port) = match direction {
                Direction::Ingress => (service, ephemeral),
                Direction::Egress => (ephemeral, service),
            };
            (
                t,
                Packet {
                    direction,
                    protocol,
                    local_ip: nic.private_ip,
                    remote_ip,
                    local_port,
                    remote_port,
                    reply: rng.chance(20),
                },
            )
        })
        .collect()
}

fn build_engine(w: &World) -> Engine {
    let mut e = Engine::new();
    for g in &w.groups {
        e.upsert_group(g.clone()).expect("valid group");
    }
    for n in &w.nics {
        e.upsert_nic(n.clone()).expect("valid nic");
    }
    e
}

/// CPU time this thread has run, from `/proc/thread-self/schedstat` (ns). The
/// machine is shared, so rates are per CPU-second of this thread, not per
/// wall-clock second; `None` where unavailable (then wall time is used).
fn thread_cpu() -> Option<Duration> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = s.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}

struct Clock {
    wall: Instant,
    cpu: Option<Duration>,
}

impl Clock {
    fn start() -> Clock {
        Clock {
            cpu: thread_cpu(),
            wall: Instant::now(),
        }
    }
    fn elapsed(&self) -> Duration {
        match (self.cpu, thread_cpu()) {
            (Some(a), Some(b)) => b.saturating_sub(a),
            _ => self.wall.elapsed(),
        }
    }
}

/// Verdicts per CPU-second of `f` over the packet array: the best of 5 slices of
/// at least `min / 5` each (the machine is shared; the best slice is the least
/// disturbed one).
fn rate(pkts: &[(usize, Packet)], min: Duration, mut f: impl FnMut(usize, &Packet) -> bool) -> f64 {
    let mut best = 0f64;
    let mut accepted = 0u64;
    for _ in 0..5 {
        let mut done = 0u64;
        let clock = Clock::start();
        loop {
            for (nic, p) in pkts {
                accepted += f(black_box(*nic), black_box(p)) as u64;
            }
            done += pkts.len() as u64;
            if clock.elapsed() >= min / 5 {
                break;
            }
        }
        best = best.max(done as f64 / clock.elapsed().as_secs_f64());
    }
    black_box(accepted);
    best
}

/// Packets per `Engine::decide_batch` call.
const BATCH: usize = 64;

/// [`rate`] for `Engine::decide_batch` over blocks of [`BATCH`] packets.
fn rate_batched(engine: &Engine, pkts: &[(NicHandle, Packet)], min: Duration) -> f64 {
    let mut best = 0f64;
    let mut accepted = 0u64;
    let mut out = vec![None; BATCH];
    for _ in 0..5 {
        let mut done = 0u64;
        let clock = Clock::start();
        loop {
            for chunk in pkts.chunks(BATCH) {
                let out = &mut out[..chunk.len()];
                engine.decide_batch(black_box(chunk), out);
                accepted += out
                    .iter()
                    .filter(|v| v.is_some_and(|v| v.action == Policy::Accept))
                    .count() as u64;
            }
            done += pkts.len() as u64;
            if clock.elapsed() >= min / 5 {
                break;
            }
        }
        best = best.max(done as f64 / clock.elapsed().as_secs_f64());
    }
    black_box(accepted);
    best
}

fn fmt_rate(r: f64) -> String {
    if r >= 1e6 {
        format!("{:.2} M/s", r / 1e6)
    } else if r >= 1e3 {
        format!("{:.1} k/s", r / 1e3)
    } else {
        format!("{r:.0} /s")
    }
}

struct Row {
    name: String,
    by_id: f64,
    by_handle: f64,
    batched: f64,
    reference: f64,
    accept_pct: f64,
    agree: bool,
}

fn throughput(name: &str, w: &World, targets: &[usize], rng: &mut Rng, secs: f64) -> Row {
    let t0 = Instant::now();
    let engine = build_engine(w);
    let build = t0.elapsed();
    let reference = ReferenceWorld::new(w.groups.clone(), w.nics.clone());
    let ids: Vec<&str> = w.nics.iter().map(|n| n.id.as_str()).collect();
    let pkts = packets(rng, w, targets, 1 << 16);

    // Agreement on a sample (verdict and deciding rule), and the accept share.
    let mut agree = true;
    let mut accepted = 0usize;
    let sample = &pkts[..4096];
    for (nic, p) in sample {
        let v = engine.decide(ids[*nic], p).unwrap();
        let r = reference.decide(ids[*nic], p).unwrap();
        accepted += (v.action == Policy::Accept) as usize;
        let same_rule = match (v.reason.basis(), &r.decider) {
            (Basis::Rule(rr), palisade_engine::reference::RefDecider::Rule { rule_id, .. }) => {
                &engine.resolve(ids[*nic], rr).unwrap().1.rule_id == rule_id
            }
            (Basis::Default, palisade_engine::reference::RefDecider::Default) => true,
            (
                Basis::InnerAccess { .. },
                palisade_engine::reference::RefDecider::InnerAccess { .. },
            ) => true,
            _ => false,
        };
        agree &= v.action == r.action && same_rule;
    }

    // The handle paths must give exactly the verdicts of `decide`.
    let handles: Vec<NicHandle> = ids
        .iter()
        .map(|id| engine.nic_handle(id).expect("known NIC"))
        .collect();
    let hpkts: Vec<(NicHandle, Packet)> = pkts.iter().map(|&(n, p)| (handles[n], p)).collect();
    let mut out = vec![None; BATCH];
    for (chunk, pk) in hpkts
        .chunks(BATCH)
        .zip(pkts.chunks(BATCH))
        .take(4096 / BATCH)
    {
        engine.decide_batch(chunk, &mut out[..chunk.len()]);
        for ((h, p), (o, (nic, _))) in chunk.iter().zip(out.iter().zip(pk)) {
            let v = engine.decide(ids[*nic], p).ok();
            agree &= engine.decide_handle(*h, p) == v && *o == v;
        }
    }

    let min = Duration::from_secs_f64(secs);
    let by_id = rate(&pkts, min, |nic, p| {
        engine
            .decide(ids[nic], p)
            .map(|v| v.action == Policy::Accept)
            .unwrap_or(false)
    });
    let by_handle = rate(&pkts, min, |nic, p| {
        engine
            .decide_handle(handles[nic], p)
            .is_some_and(|v| v.action == Policy::Accept)
    });
    let batched = rate_batched(&engine, &hpkts, min);
    let ref_pkts = &pkts[..2048];
    let r_rate = rate(ref_pkts, Duration::from_secs_f64(secs / 2.0), |nic, p| {
        reference
            .decide(ids[nic], p)
            .map(|d| d.action == Policy::Accept)
            .unwrap_or(false)
    });
    eprintln!("  {name}: engine built in {build:.2?}");
    Row {
        name: name.to_string(),
        by_id,
        by_handle,
        batched,
        reference: r_rate,
        accept_pct: 100.0 * accepted as f64 / sample.len() as f64,
        agree,
    }
}

/// Mean wall time per item of `f` over `items`, the best of 5 equal slices
/// (slices are a few ms: too short for the scheduler's CPU-time accounting).
fn best_mean<T>(items: Vec<T>, mut f: impl FnMut(T)) -> Duration {
    let per = items.len() / 5;
    let mut it = items.into_iter();
    let mut best = Duration::MAX;
    for _ in 0..5 {
        let slice: Vec<T> = it.by_ref().take(per).collect();
        let start = Instant::now();
        for x in slice {
            f(x);
        }
        best = best.min(start.elapsed() / per as u32);
    }
    best
}

/// Mean time of replacing group `sg-7` by a new 100-rule version (group peers
/// among `sg-0..sg-9`, which both worlds have), so that both worlds do the same
/// work and only the number of unrelated groups differs.
fn upsert_cost(engine: &mut Engine, rng: &mut Rng) -> Duration {
    let mut cidrs = Vec::new();
    let specs: Vec<GroupSpec> = (0..1000)
        .map(|_| random_group(rng, 7, 100, 10, &mut cidrs))
        .collect();
    best_mean(specs, |s| engine.upsert_group(black_box(s)).unwrap())
}

/// Mean time of moving NIC `eni-7` to 1..3 of the groups `sg-0..sg-9`.
fn nic_move_cost(engine: &mut Engine, w: &World, rng: &mut Rng) -> Duration {
    let nic = w.nics.iter().find(|n| n.id == "eni-7").expect("eni-7");
    let nics: Vec<Nic> = (0..50_000)
        .map(|_| {
            let mut n = nic.clone();
            n.groups = (0..1 + rng.below(3))
                .map(|_| format!("sg-{}", rng.below(10)))
                .collect();
            n
        })
        .collect();
    best_mean(nics, |n| engine.upsert_nic(black_box(n)).unwrap())
}

fn main() {
    let secs: f64 = std::env::var("BENCH_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1.0);
    let only = std::env::var("BENCH_ONLY").unwrap_or_else(|_| "abc".into());
    let mut rng = Rng(0xBE4C_0001);

    let mut rows = Vec::new();
    if only.contains('a') {
        eprintln!("building world (a) ...");
        let a = world_a(&mut rng);
        rows.push(throughput(
            "(a) 1 NIC, 5 groups x 100 rules",
            &a,
            &[0],
            &mut rng,
            secs,
        ));
    }
    let big = if only.contains('b') || only.contains('c') {
        eprintln!("building world (b) ...");
        Some(world_b(&mut Rng(0xBE4C_0002), 10_000, 100_000))
    } else {
        None
    };
    if only.contains('b') {
        let b = big.as_ref().expect("world b");
        let all: Vec<usize> = (0..b.nics.len()).collect();
        rows.push(throughput(
            "(b) 10k groups, 100k NICs",
            b,
            &all,
            &mut rng,
            secs,
        ));
    }
    if !rows.is_empty() {
        println!();
        println!(
            "{:<34} {:>11} {:>11} {:>11} {:>11} {:>6} {:>7} {:>6}",
            "verdicts per CPU-second, 1 thread",
            "by NIC id",
            "by handle",
            "batched",
            "reference",
            "ratio",
            "accept",
            "agree"
        );
        for r in &rows {
            println!(
                "{:<34} {:>11} {:>11} {:>11} {:>11} {:>5.0}x {:>6.1}% {:>6}",
                r.name,
                fmt_rate(r.by_id),
                fmt_rate(r.by_handle),
                fmt_rate(r.batched),
                fmt_rate(r.reference),
                r.by_handle / r.reference,
                r.accept_pct,
                if r.agree { "yes" } else { "NO" }
            );
        }
        println!(
            "(by NIC id: Engine::decide(&str); by handle: Engine::decide_handle, the NIC \
             resolved once by Engine::nic_handle as a data path does per interface; \
             batched: Engine::decide_batch, {BATCH} packets per call; ratio: by handle / reference)"
        );
    }

    if only.contains('c') {
        // (c) update cost vs number of unrelated groups.
        let b = big.as_ref().expect("world b");
        let small = world_b(&mut Rng(0xBE4C_0003), 10, 100);
        let mut e_small = build_engine(&small);
        let mut e_big = build_engine(b);
        let up_small = upsert_cost(&mut e_small, &mut Rng(0xBE4C_0004));
        let up_big = upsert_cost(&mut e_big, &mut Rng(0xBE4C_0004));
        let nic_small = nic_move_cost(&mut e_small, &small, &mut Rng(0xBE4C_0005));
        let nic_big = nic_move_cost(&mut e_big, b, &mut Rng(0xBE4C_0005));
        println!();
        println!(
            "{:<34} {:>13} {:>13} {:>9}",
            "(c) update cost (mean, wall)", "10 groups", "10k groups", "big/small"
        );
        println!(
            "{:<34} {:>13.2?} {:>13.2?} {:>8.2}x",
            "upsert_group sg-7 (100 rules)",
            up_small,
            up_big,
            up_big.as_secs_f64() / up_small.as_secs_f64()
        );
        println!(
            "{:<34} {:>13.2?} {:>13.2?} {:>8.2}x",
            "upsert_nic eni-7 (1-3 groups)",
            nic_small,
            nic_big,
            nic_big.as_secs_f64() / nic_small.as_secs_f64()
        );
        println!("(worlds: 10 groups / 100 NICs vs 10,000 groups / 100,000 NICs)");
    }
}
