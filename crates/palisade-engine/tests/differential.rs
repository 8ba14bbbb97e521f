//! Engine vs. the reference evaluator on randomized worlds, packets and updates.
//!
//! Seeded and deterministic: set `PALISADE_SEED` to reproduce or explore another
//! seed, `PALISADE_WORLDS` to change the number of worlds.

use palisade_engine::reference::{RefDecider, ReferenceWorld};
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
    fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.below(v.len() as u64) as usize]
    }
}

/// Parameters of one random world. Addresses live in a small space so that CIDRs,
/// members and packets collide often.
struct Gen {
    n_groups: usize,
    /// Interesting addresses: member addresses, CIDR edges.
    hot_ips: Vec<u32>,
    hot_ports: Vec<u16>,
    /// Private addresses of generated NICs.
    member_ips: Vec<u32>,
    next_rule: usize,
}

const BASE: u32 = 0x0A00_0000; // 10.0.0.0

impl Gen {
    fn group_id(&self, i: usize) -> String {
        format!("sg-{i}")
    }

    fn ip(&mut self, rng: &mut Rng) -> u32 {
        match rng.below(10) {
            0..=2 if !self.member_ips.is_empty() => *rng.pick(&self.member_ips),
            3..=5 if !self.hot_ips.is_empty() => {
                let v = *rng.pick(&self.hot_ips);
                // off-by-one around edges
                match rng.below(6) {
                    0 => v.wrapping_add(1),
                    1 => v.wrapping_sub(1),
                    _ => v,
                }
            }
            6 => rng.next() as u32,
            _ => BASE + rng.below(64) as u32,
        }
    }

    fn port(&mut self, rng: &mut Rng) -> u16 {
        match rng.below(8) {
            0..=4 if !self.hot_ports.is_empty() => {
                let v = *rng.pick(&self.hot_ports);
                match rng.below(6) {
                    0 => v.wrapping_add(1),
                    1 => v.wrapping_sub(1),
                    _ => v,
                }
            }
            5 => 0,
            6 => u16::MAX,
            _ => rng.below(70) as u16,
        }
    }

    fn port_range(&mut self, rng: &mut Rng) -> PortRange {
        if rng.chance(15) {
            return PortRange::ALL;
        }
        let a = rng.below(64) as u16;
        let b = if rng.chance(40) {
            a
        } else {
            a + rng.below(20) as u16
        };
        self.hot_ports.push(a);
        self.hot_ports.push(b);
        PortRange::new(a, b)
    }

    fn cidr(&mut self, rng: &mut Rng) -> Cidr4 {
        let len = match rng.below(10) {
            0 | 1 => 0,
            2 => rng.below(32) as u8 + 1,
            3 | 4 => 32,
            _ => 25 + rng.below(8) as u8,
        };
        let addr = if rng.chance(80) {
            BASE + rng.below(64) as u32
        } else {
            rng.next() as u32
        };
        let c = Cidr4::new(addr, len);
        self.hot_ips.push(c.first());
        self.hot_ips.push(c.last());
        c
    }

    fn rule(&mut self, rng: &mut Rng, group: &str, enterprise: bool) -> Rule {
        self.next_rule += 1;
        let protocol = *rng.pick(&[
            Protocol::Tcp,
            Protocol::Tcp,
            Protocol::Udp,
            Protocol::All,
            Protocol::Icmp,
            Protocol::Gre,
            Protocol::Icmpv6,
        ]);
        let peer = if !enterprise && rng.chance(30) {
            Peer::Group(self.group_id(rng.below(self.n_groups as u64 + 1) as usize))
        } else {
            Peer::Cidr(self.cidr(rng))
        };
        Rule {
            rule_id: format!("sgr-{}", self.next_rule),
            group_id: if rng.chance(50) {
                group.to_string()
            } else {
                String::new()
            },
            direction: if rng.chance(50) {
                Direction::Ingress
            } else {
                Direction::Egress
            },
            protocol,
            port_range: if protocol.uses_ports() || rng.chance(10) {
                self.port_range(rng)
            } else {
                PortRange::ALL
            },
            source_port_range: if rng.chance(25) {
                Some(self.port_range(rng))
            } else {
                None
            },
            peer,
            local_cidr: if rng.chance(20) {
                Some(self.cidr(rng))
            } else {
                None
            },
            policy: if enterprise || rng.chance(55) {
                Policy::Accept
            } else {
                Policy::Drop
            },
            // Few distinct priorities: many ties.
            priority: *rng.pick(&[1, 1, 2, 3, 5, 50, 100]),
            nic_type: if rng.chance(50) {
                NicType::Intranet
            } else {
                NicType::Internet
            },
        }
    }

    fn group(&mut self, rng: &mut Rng, i: usize) -> GroupSpec {
        let enterprise = rng.chance(25);
        let id = self.group_id(i);
        let n_rules = match rng.below(10) {
            0 => 0,
            1 => 60 + rng.below(80) as usize, // crosses the 64-bit word boundary
            // Over 128 rules in a direction: the general (not two-word) path.
            2 if rng.chance(15) => 260 + rng.below(60) as usize,
            _ => 2 + rng.below(24) as usize,
        };
        let rules = (0..n_rules)
            .map(|_| self.rule(rng, &id, enterprise))
            .collect();
        GroupSpec {
            id,
            kind: if enterprise {
                GroupKind::Enterprise
            } else {
                GroupKind::Normal
            },
            vpc_id: if rng.chance(50) {
                Some("vpc-1".into())
            } else {
                None
            },
            inner_access_accept: rng.chance(50),
            rules,
        }
    }

    fn nic(&mut self, rng: &mut Rng, i: usize) -> Nic {
        let k = rng.below(6) as usize; // 0..=5 groups, may repeat
        let groups = (0..k)
            .map(|_| self.group_id(rng.below(self.n_groups as u64 + 1) as usize))
            .collect();
        // Small address pool: shared addresses between NICs happen.
        let private_ip = BASE + rng.below(24) as u32;
        let public_ip = if rng.chance(40) {
            Some(0x2F00_0000 + rng.below(8) as u32)
        } else {
            None
        };
        self.hot_ips.push(private_ip);
        self.member_ips.push(private_ip);
        if let Some(p) = public_ip {
            self.hot_ips.push(p);
        }
        Nic {
            id: format!("eni-{i}"),
            groups,
            private_ip,
            public_ip,
        }
    }

    fn packet(&mut self, rng: &mut Rng, nic: &Nic) -> Packet {
        let local_ip = match (rng.below(10), nic.public_ip) {
            (0..=2, Some(p)) => p,
            (3, _) => self.ip(rng),
            _ => nic.private_ip,
        };
        Packet {
            direction: if rng.chance(50) {
                Direction::Ingress
            } else {
                Direction::Egress
            },
            protocol: *rng.pick(&[6, 6, 6, 6, 17, 17, 1, 47, 58, 0, 132]),
            local_ip,
            remote_ip: self.ip(rng),
            local_port: self.port(rng),
            remote_port: self.port(rng),
            reply: rng.chance(25),
        }
    }
}

fn engine_decider(e: &Engine, nic: &str, v: &Verdict) -> RefDecider {
    match v.reason.basis() {
        Basis::Rule(r) => {
            let (gid, rule) = e.resolve(nic, r).expect("resolvable");
            RefDecider::Rule {
                group_id: gid.to_string(),
                rule_index: r.rule as usize,
                rule_id: rule.rule_id.clone(),
            }
        }
        Basis::Default => RefDecider::Default,
        Basis::InnerAccess { group } => RefDecider::InnerAccess {
            group_id: e.nic_group_id(nic, group).expect("group").to_string(),
        },
    }
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn engine_agrees_with_reference() {
    let seed = env_u64("PALISADE_SEED", 0x5EED_0001);
    let worlds = env_u64("PALISADE_WORLDS", 2000);
    let mut rng = Rng(seed);
    let mut compared = 0u64;
    let mut explained = 0u64;
    let mut batched = 0u64;
    let mut by_kind = [0u64; 4]; // rule, default, inner, reply
    for world in 0..worlds {
        let mut g = Gen {
            n_groups: 1 + rng.below(8) as usize,
            hot_ips: Vec::new(),
            hot_ports: Vec::new(),
            member_ips: Vec::new(),
            next_rule: 0,
        };
        let n_nics = 1 + rng.below(10) as usize;
        let mut engine = Engine::new();
        // Half the worlds on the baseline data path (the other half uses the
        // AVX2 build where the CPU has it).
        if world % 2 == 1 {
            engine.use_baseline_simd();
        }
        // Half the worlds give every NIC with two or more groups a merged classifier
        // (by default only sets with many rules get one).
        if world % 4 >= 2 {
            engine.set_merge_min_rules(0);
        }
        let mut reference = ReferenceWorld::default();
        // Interleave group and NIC creation so slots get created by every path.
        let mut order: Vec<(bool, usize)> = (0..g.n_groups)
            .map(|i| (true, i))
            .chain((0..n_nics).map(|i| (false, i)))
            .collect();
        for i in (1..order.len()).rev() {
            let j = rng.below(i as u64 + 1) as usize;
            order.swap(i, j);
        }
        for (is_group, i) in order {
            if is_group {
                let spec = g.group(&mut rng, i);
                engine.upsert_group(spec.clone()).unwrap();
                reference.upsert_group(spec);
            } else {
                let n = g.nic(&mut rng, i);
                engine.upsert_nic(n.clone()).unwrap();
                reference.upsert_nic(n);
            }
        }

        // Handles taken in earlier rounds (they must survive upserts of their NIC)
        // and handles of removed NICs (they must name nothing, even after the id
        // or the slab cell is reused).
        let mut handles: std::collections::HashMap<String, NicHandle> = Default::default();
        let mut stale: Vec<NicHandle> = Vec::new();
        for round in 0..4 {
            let mut batch: Vec<(NicHandle, Packet)> = Vec::new();
            let mut batch_want: Vec<Option<Verdict>> = Vec::new();
            let nics: Vec<Nic> = {
                let mut v: Vec<Nic> = reference.nics.values().cloned().collect();
                v.sort_by(|a, b| a.id.cmp(&b.id));
                v
            };
            for _ in 0..40 {
                if nics.is_empty() {
                    break;
                }
                let nic = rng.pick(&nics).clone();
                let p = g.packet(&mut rng, &nic);
                let want = reference.decide(&nic.id, &p).unwrap();
                let got = engine.decide(&nic.id, &p).unwrap();
                let got_decider = engine_decider(&engine, &nic.id, &got);
                assert_eq!(
                    (got.action, got_decider.clone(), matches!(got.reason, Reason::Reply(_))),
                    (want.action, want.decider.clone(), want.reply),
                    "seed {seed:#x} world {world} round {round} nic {nic:?}\npacket {p:?}\nengine {got:?}\ndecider rule {}",
                    match &want.decider {
                        RefDecider::Rule { group_id, rule_index, .. } =>
                            format!("{group_id}: {:?}", reference.groups[group_id].rules[*rule_index]),
                        _ => String::new(),
                    }
                );
                // The handle paths: the same verdict (hence the same deciding rule)
                // from a fresh handle and from one kept since an earlier round.
                let h = engine.nic_handle(&nic.id).expect("handle of a known NIC");
                assert_eq!(
                    engine.decide_handle(h, &p),
                    Some(got),
                    "decide_handle, world {world}"
                );
                let kept = *handles.entry(nic.id.clone()).or_insert(h);
                assert_eq!(
                    kept, h,
                    "handle changed while the NIC existed, world {world}"
                );
                batch.push((h, p));
                batch_want.push(Some(got));
                compared += 1;
                by_kind[match (&want.decider, want.reply) {
                    (_, true) => 3,
                    (RefDecider::Rule { .. }, _) => 0,
                    (RefDecider::Default, _) => 1,
                    (RefDecider::InnerAccess { .. }, _) => 2,
                }] += 1;
                if rng.chance(20) {
                    let x = engine.explain(&nic.id, &p).unwrap();
                    assert_eq!(x.verdict, want.action);
                    let passed: Vec<(String, usize)> = x
                        .passed_over
                        .iter()
                        .map(|po| (po.rule.group_id.clone(), po.rule.rule_index))
                        .collect();
                    assert_eq!(
                        passed, want.passed_over,
                        "explain passed_over, world {world}"
                    );
                    match (&x.decided_by, &want.decider) {
                        (
                            DecidedBy::Rule(r),
                            RefDecider::Rule {
                                group_id,
                                rule_index,
                                ..
                            },
                        ) => {
                            assert_eq!((&r.group_id, r.rule_index), (group_id, *rule_index))
                        }
                        (DecidedBy::Default { .. }, RefDecider::Default) => {}
                        (
                            DecidedBy::InnerAccess { group_id: a },
                            RefDecider::InnerAccess { group_id: b },
                        ) => {
                            assert_eq!(a, b)
                        }
                        (a, b) => panic!("explain decider {a:?} vs {b:?}"),
                    }
                    explained += 1;
                }
            }
            if let Some(n0) = nics.first() {
                let unknown = engine.decide("eni-missing", &g.packet(&mut rng, n0));
                assert!(matches!(unknown, Err(EngineError::UnknownNic(_))));
                assert_eq!(engine.nic_handle("eni-missing"), None);
                for &h in &stale {
                    batch.push((h, g.packet(&mut rng, n0)));
                    batch_want.push(None);
                }
            }
            let mut out = vec![None; batch.len()];
            engine.decide_batch(&batch, &mut out);
            assert_eq!(out, batch_want, "decide_batch, world {world} round {round}");
            batched += batch.len() as u64;

            // Random updates between rounds, applied to both.
            for _ in 0..rng.below(6) {
                match rng.below(5) {
                    0 => {
                        let i = rng.below(g.n_groups as u64 + 1) as usize;
                        let spec = g.group(&mut rng, i);
                        engine.upsert_group(spec.clone()).unwrap();
                        reference.upsert_group(spec);
                    }
                    1 => {
                        let id = g.group_id(rng.below(g.n_groups as u64 + 1) as usize);
                        assert_eq!(engine.remove_group(&id), reference.remove_group(&id));
                    }
                    2 | 3 => {
                        let i = rng.below(n_nics as u64 + 2) as usize;
                        let n = g.nic(&mut rng, i);
                        engine.upsert_nic(n.clone()).unwrap();
                        reference.upsert_nic(n);
                    }
                    _ => {
                        let id = format!("eni-{}", rng.below(n_nics as u64 + 2));
                        let h = engine.nic_handle(&id);
                        assert_eq!(engine.remove_nic(&id), reference.remove_nic(&id));
                        if let Some(h) = h {
                            handles.remove(&id);
                            stale.push(h);
                        }
                    }
                }
            }
            engine.check_invariants().unwrap();
            // Occasionally continue on a clone (what-if path) and drop the original.
            if rng.chance(30) {
                let c = engine.clone();
                engine = c;
            }
        }
    }
    eprintln!(
        "compared {compared} verdicts ({} by rule, {} default, {} inner access, {} replies), {explained} explanations, {batched} batched",
        by_kind[0], by_kind[1], by_kind[2], by_kind[3]
    );
    assert!(compared > worlds * 100);
    assert!(
        by_kind.iter().all(|&k| k > compared / 100),
        "kinds {by_kind:?}"
    );
}

#[test]
fn clone_is_isolated_from_updates_of_the_original() {
    let mut rng = Rng(7);
    for round in 0..50 {
        let mut g = Gen {
            n_groups: 4,
            hot_ips: Vec::new(),
            hot_ports: Vec::new(),
            member_ips: Vec::new(),
            next_rule: 0,
        };
        let mut engine = Engine::new();
        if round % 2 == 1 {
            engine.set_merge_min_rules(0);
        }
        let mut reference = ReferenceWorld::default();
        for i in 0..4 {
            let s = g.group(&mut rng, i);
            engine.upsert_group(s.clone()).unwrap();
            reference.upsert_group(s);
        }
        for i in 0..6 {
            let n = g.nic(&mut rng, i);
            engine.upsert_nic(n.clone()).unwrap();
            reference.upsert_nic(n);
        }
        let snapshot = engine.clone();
        let snapshot_ref = reference.clone();
        for _ in 0..5 {
            let i = rng.below(4) as usize;
            let s = g.group(&mut rng, i);
            engine.upsert_group(s).unwrap();
            let i = rng.below(6) as usize;
            let n = g.nic(&mut rng, i);
            engine.upsert_nic(n).unwrap();
        }
        for _ in 0..100 {
            let nic = snapshot_ref.nics[&format!("eni-{}", rng.below(6))].clone();
            let p = g.packet(&mut rng, &nic);
            let want = snapshot_ref.decide(&nic.id, &p).unwrap();
            let got = snapshot.decide(&nic.id, &p).unwrap();
            assert_eq!(got.action, want.action);
            assert_eq!(engine_decider(&snapshot, &nic.id, &got), want.decider);
        }
    }
}
