//! Nothing acknowledged is lost: a mixed write load from several clients, the server
//! killed with SIGKILL at a random moment, restarted on the same data, and every change
//! it answered 200 for checked against what it serves afterwards. Plus the race of an
//! Authorize naming a group against that group's deletion.
//!
//! `CRASH_SEED=<u64>` replays a run; the seed is printed either way.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use common::*;
use palisade_api::sign::sign_v1_params;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;

const ROUNDS: usize = 8;
const CLIENTS: usize = 4;
const BATCH: u32 = 5;
/// Batches kept per group: well under the rule quota, so no Authorize is refused.
const MAX_BATCHES: usize = 12;

fn seed() -> u64 {
    std::env::var("CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(7)
        })
}

fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// One signed call that reports a transport failure instead of panicking. A fresh agent
/// per call: no pooled connection, so nothing is ever sent twice behind our back.
fn try_call(c: &Client, action: &str, params: &[(String, String)]) -> Result<(u16, Value), String> {
    let mut all = c.common(action, "JSON");
    all.push(("RegionId".into(), "cn-hangzhou".into()));
    all.extend(params.iter().cloned());
    sign_v1_params("POST", &mut all, &c.secret);
    let url = format!("{}/?{}", c.endpoint, encode_query(&all));
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(30))
        .build();
    let resp = match agent.post(&url).call() {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => return Err(e.to_string()),
    };
    let status = resp.status();
    let text = resp.into_string().map_err(|e| e.to_string())?;
    let v = serde_json::from_str(&text).map_err(|e| format!("not JSON ({e}): {text}"))?;
    Ok((status, v))
}

/// What the model knows of one fact after the acknowledgements seen so far.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Known {
    Yes,
    No,
    /// The call was in flight when the server died: either outcome, but all of it or none.
    Maybe,
}

/// `BATCH` TCP rules on consecutive ports from one CIDR, written by one Permissions list.
#[derive(Clone, Debug)]
struct Batch {
    first_port: u32,
    cidr: String,
    state: Known,
}

impl Batch {
    fn ports(&self) -> impl Iterator<Item = u32> {
        self.first_port..self.first_port + BATCH
    }
    fn permissions(&self, group: &str) -> Vec<(String, String)> {
        let mut p = vec![("SecurityGroupId".to_string(), group.to_string())];
        for (i, port) in self.ports().enumerate() {
            let n = i + 1;
            p.push((format!("Permissions.{n}.IpProtocol"), "tcp".into()));
            p.push((
                format!("Permissions.{n}.PortRange"),
                format!("{port}/{port}"),
            ));
            p.push((format!("Permissions.{n}.SourceCidrIp"), self.cidr.clone()));
        }
        p
    }
}

#[derive(Clone, Debug)]
struct Group {
    id: String,
    name: String,
    exists: Known,
    /// The descriptions it may have: one when known, two while a Modify was in flight.
    descriptions: Vec<String>,
    batches: Vec<Batch>,
}

/// One client thread's groups: no other client touches them, so the acknowledged
/// history of each is a sequence.
struct Worker {
    t: usize,
    groups: Vec<Group>,
    /// Creates in flight at the crash: (name, description) of a group that may exist.
    pending_creates: Vec<(String, String)>,
    next_port: u32,
    seq: u64,
    acknowledged: u64,
    in_flight_at_kill: u64,
}

enum Step {
    Done,
    /// The connection failed: the server is gone; the op's outcome is unknown.
    Lost,
}

impl Worker {
    fn new(t: usize) -> Worker {
        Worker {
            t,
            groups: Vec::new(),
            pending_creates: Vec::new(),
            next_port: 1 + t as u32 * 16_000,
            seq: 0,
            acknowledged: 0,
            in_flight_at_kill: 0,
        }
    }

    /// Anything but a 200 or a lost connection is a failure of the test's premise.
    fn call(
        &mut self,
        c: &Client,
        action: &str,
        p: &[(String, String)],
    ) -> Result<Option<Value>, String> {
        match try_call(c, action, p) {
            Ok((200, v)) => {
                self.acknowledged += 1;
                Ok(Some(v))
            }
            Ok((status, v)) => Err(format!("{action} {p:?}: unexpected {status} {v}")),
            Err(_) => {
                self.in_flight_at_kill += 1;
                Ok(None)
            }
        }
    }

    fn step(&mut self, c: &Client, rng: &mut StdRng) -> Result<Step, String> {
        self.seq += 1;
        let seq = self.seq;
        let live: Vec<usize> = (0..self.groups.len())
            .filter(|&i| self.groups[i].exists == Known::Yes)
            .collect();
        let roll = rng.gen_range(0..100);
        if live.len() < 2 || roll < 10 {
            let name = format!("crash-t{}-n{seq}", self.t);
            let description = format!("created {seq}");
            let p = pairs(&[("SecurityGroupName", &name), ("Description", &description)]);
            return Ok(match self.call(c, "CreateSecurityGroup", &p)? {
                Some(v) => {
                    self.groups.push(Group {
                        id: v["SecurityGroupId"].as_str().unwrap_or("").to_string(),
                        name,
                        exists: Known::Yes,
                        descriptions: vec![description],
                        batches: Vec::new(),
                    });
                    Step::Done
                }
                None => {
                    self.pending_creates.push((name, description));
                    Step::Lost
                }
            });
        }
        let gi = live[rng.gen_range(0..live.len())];
        let id = self.groups[gi].id.clone();
        let present: Vec<usize> = (0..self.groups[gi].batches.len())
            .filter(|&b| self.groups[gi].batches[b].state == Known::Yes)
            .collect();
        if roll < 55 && present.len() < MAX_BATCHES {
            let batch = Batch {
                first_port: self.next_port,
                cidr: format!("10.{}.{}.0/24", self.t, seq % 250),
                state: Known::Yes,
            };
            self.next_port += BATCH;
            let p = batch.permissions(&id);
            let acked = self.call(c, "AuthorizeSecurityGroup", &p)?.is_some();
            let state = if acked { Known::Yes } else { Known::Maybe };
            self.groups[gi].batches.push(Batch { state, ..batch });
            return Ok(if acked { Step::Done } else { Step::Lost });
        }
        if roll < 75 && !present.is_empty() {
            let b = present[rng.gen_range(0..present.len())];
            let p = self.groups[gi].batches[b].permissions(&id);
            let acked = self.call(c, "RevokeSecurityGroup", &p)?.is_some();
            self.groups[gi].batches[b].state = if acked { Known::No } else { Known::Maybe };
            return Ok(if acked { Step::Done } else { Step::Lost });
        }
        if roll < 93 {
            let description = format!("modified {seq}");
            let p = pairs(&[("SecurityGroupId", &id), ("Description", &description)]);
            let acked = self.call(c, "ModifySecurityGroupAttribute", &p)?.is_some();
            let g = &mut self.groups[gi];
            if acked {
                g.descriptions = vec![description];
            } else {
                g.descriptions.push(description);
            }
            return Ok(if acked { Step::Done } else { Step::Lost });
        }
        let p = pairs(&[("SecurityGroupId", &id)]);
        let acked = self.call(c, "DeleteSecurityGroup", &p)?.is_some();
        self.groups[gi].exists = if acked { Known::No } else { Known::Maybe };
        Ok(if acked { Step::Done } else { Step::Lost })
    }
}

/// Every group of the account: id -> (name, description).
fn all_groups(c: &Client) -> BTreeMap<String, (String, String)> {
    let mut out = BTreeMap::new();
    for page in 1.. {
        let n = page.to_string();
        let r = c.ok(
            "DescribeSecurityGroups",
            &[("PageSize", "50"), ("PageNumber", &n)],
        );
        let list = r["SecurityGroups"]["SecurityGroup"].as_array().unwrap();
        for g in list {
            out.insert(
                g["SecurityGroupId"].as_str().unwrap().to_string(),
                (
                    g["SecurityGroupName"].as_str().unwrap().to_string(),
                    g["Description"].as_str().unwrap().to_string(),
                ),
            );
        }
        if list.is_empty() || out.len() as u64 >= r["TotalCount"].as_u64().unwrap() {
            break;
        }
    }
    out
}

/// The ingress rules of a group as port -> source CIDR.
fn ports_of(c: &Client, group: &str) -> BTreeMap<u32, String> {
    let mut out = BTreeMap::new();
    for r in c.rules(group, &[("Direction", "ingress")]) {
        let pr = r["PortRange"].as_str().unwrap();
        let (a, b) = pr.split_once('/').unwrap();
        assert_eq!(a, b, "{r}");
        let port: u32 = a.parse().unwrap();
        let cidr = r["SourceCidrIp"].as_str().unwrap().to_string();
        assert!(out.insert(port, cidr).is_none(), "two rules on port {port}");
    }
    out
}

/// Checks the served state against every worker's model, then settles the in-flight
/// outcomes to what was found. Returns the number of groups and rules checked.
fn verify(c: &Client, workers: &mut [Worker]) -> (usize, usize) {
    let served = all_groups(c);
    let mut claimed: BTreeSet<String> = BTreeSet::new();
    let (mut groups_checked, mut rules_checked) = (0, 0);
    for w in workers.iter_mut() {
        // A create in flight may have landed under an id nobody heard of.
        for (name, description) in std::mem::take(&mut w.pending_creates) {
            let found: Vec<&String> = served
                .iter()
                .filter(|(_, (n, _))| *n == name)
                .map(|(id, _)| id)
                .collect();
            assert!(
                found.len() <= 1,
                "create of {name} applied twice: {found:?}"
            );
            if let Some(id) = found.first() {
                w.groups.push(Group {
                    id: id.to_string(),
                    name,
                    exists: Known::Yes,
                    descriptions: vec![description],
                    batches: Vec::new(),
                });
            }
        }
        for g in w.groups.iter_mut() {
            let here = served.get(&g.id);
            match (g.exists, here) {
                (Known::Yes, None) => panic!("acknowledged group {} ({}) lost", g.id, g.name),
                (Known::No, Some(_)) => {
                    panic!("acknowledged delete of {} ({}) undone", g.id, g.name)
                }
                _ => {}
            }
            g.exists = if here.is_some() {
                Known::Yes
            } else {
                Known::No
            };
            let Some((name, description)) = here else {
                continue;
            };
            groups_checked += 1;
            claimed.insert(g.id.clone());
            assert_eq!(name, &g.name, "group {} renamed", g.id);
            assert!(
                g.descriptions.contains(description),
                "group {}: description {description:?}, expected one of {:?}",
                g.id,
                g.descriptions
            );
            g.descriptions = vec![description.clone()];
            let rules = ports_of(c, &g.id);
            let mut expected = BTreeSet::new();
            for b in g.batches.iter_mut() {
                let have = b.ports().filter(|p| rules.contains_key(p)).count() as u32;
                let state = match (b.state, have) {
                    (Known::Yes, BATCH) | (Known::Maybe, BATCH) => Known::Yes,
                    (Known::No, 0) | (Known::Maybe, 0) => Known::No,
                    (Known::Maybe, n) => panic!(
                        "group {}: batch from port {} is partial ({n} of {BATCH} rules)",
                        g.id, b.first_port
                    ),
                    (s, n) => panic!(
                        "group {}: batch from port {} acknowledged {s:?} but {n} of {BATCH} rules served",
                        g.id, b.first_port
                    ),
                };
                b.state = state;
                if state == Known::Yes {
                    for p in b.ports() {
                        assert_eq!(rules[&p], b.cidr, "group {} port {p}", g.id);
                        expected.insert(p);
                    }
                }
            }
            let served_ports: BTreeSet<u32> = rules.keys().copied().collect();
            assert_eq!(
                served_ports, expected,
                "group {}: rules nobody asked for",
                g.id
            );
            rules_checked += rules.len();
            // Revoked batches have been checked absent; forget them.
            g.batches.retain(|b| b.state == Known::Yes);
        }
        w.groups.retain(|g| g.exists == Known::Yes);
    }
    let phantoms: Vec<_> = served.keys().filter(|id| !claimed.contains(*id)).collect();
    assert!(phantoms.is_empty(), "groups nobody created: {phantoms:?}");
    (groups_checked, rules_checked)
}

#[test]
fn acknowledged_writes_survive_sigkill_mid_load() {
    let seed = seed();
    println!("crash: seed {seed} (CRASH_SEED replays)");
    let mut rng = StdRng::seed_from_u64(seed);
    let mut s = Server::start(&["--rate-limit", "0"]);
    let mut workers: Vec<Worker> = (0..CLIENTS).map(Worker::new).collect();
    let mut survived = 0;
    for round in 1..=ROUNDS {
        let c = s.client();
        let stop = Arc::new(AtomicBool::new(false));
        let acked_before: u64 = workers.iter().map(|w| w.acknowledged).sum();
        let handles: Vec<_> = workers
            .drain(..)
            .map(|mut w| {
                let c = c.clone();
                let stop = stop.clone();
                let mut r = StdRng::seed_from_u64(rng.gen());
                thread::spawn(move || {
                    while !stop.load(Ordering::SeqCst) {
                        match w.step(&c, &mut r) {
                            Ok(Step::Done) => {}
                            Ok(Step::Lost) => break,
                            Err(e) => return (w, Some(e)),
                        }
                    }
                    (w, None)
                })
            })
            .collect();
        // The kill lands wherever the clients are: mid-request, mid-commit, between calls.
        thread::sleep(Duration::from_millis(rng.gen_range(30..350)));
        s.kill();
        stop.store(true, Ordering::SeqCst);
        for h in handles {
            let (w, err) = h.join().expect("client thread panicked");
            if let Some(e) = err {
                panic!("round {round}: {e}");
            }
            workers.push(w);
        }
        s.kill_and_restart();
        let c = s.client();
        let (groups, rules) = verify(&c, &mut workers);
        survived += 1;
        let acked: u64 = workers.iter().map(|w| w.acknowledged).sum();
        println!(
            "crash: round {round}: {} ops acknowledged this round, {acked} in all; {groups} groups and {rules} rules verified",
            acked - acked_before
        );
    }
    let acked: u64 = workers.iter().map(|w| w.acknowledged).sum();
    let lost: u64 = workers.iter().map(|w| w.in_flight_at_kill).sum();
    assert!(acked > 0, "no operation was ever acknowledged");
    println!(
        "crash: {survived} of {ROUNDS} rounds survived; {acked} acknowledged operations verified; {lost} calls cut off by the kill"
    );
}

/// An Authorize naming group B on group A, racing the deletion of B: afterwards either B
/// exists and A has the rule (the delete was refused), or B is gone and A has no rule
/// naming it (the Authorize was refused). Flat ingress, flat egress, and a Permissions
/// list whose middle rule names B (all of the list or none of it).
#[test]
fn authorize_naming_a_group_being_deleted_never_dangles() {
    const ITERATIONS: usize = 60;
    let seed = seed();
    println!("race: seed {seed} (CRASH_SEED replays)");
    let mut rng = StdRng::seed_from_u64(seed);
    let s = Server::start(&["--rate-limit", "0"]);
    let c = s.client();
    let mut outcomes: HashMap<&'static str, usize> = HashMap::new();
    for i in 0..ITERATIONS {
        let a = c.create_group(&[]);
        let b = c.create_group(&[]);
        let (action, dir, params) = match i % 3 {
            0 => (
                "AuthorizeSecurityGroup",
                "ingress",
                pairs(&[
                    ("SecurityGroupId", &a),
                    ("IpProtocol", "tcp"),
                    ("PortRange", "22/22"),
                    ("NicType", "intranet"),
                    ("SourceGroupId", &b),
                ]),
            ),
            1 => (
                "AuthorizeSecurityGroupEgress",
                "egress",
                pairs(&[
                    ("SecurityGroupId", &a),
                    ("IpProtocol", "udp"),
                    ("PortRange", "53/53"),
                    ("NicType", "intranet"),
                    ("DestGroupId", &b),
                ]),
            ),
            _ => (
                "AuthorizeSecurityGroup",
                "ingress",
                pairs(&[
                    ("SecurityGroupId", &a),
                    ("Permissions.1.IpProtocol", "tcp"),
                    ("Permissions.1.PortRange", "80/80"),
                    ("Permissions.1.NicType", "intranet"),
                    ("Permissions.1.SourceCidrIp", "10.0.0.0/8"),
                    ("Permissions.2.IpProtocol", "tcp"),
                    ("Permissions.2.PortRange", "81/81"),
                    ("Permissions.2.NicType", "intranet"),
                    ("Permissions.2.SourceGroupId", &b),
                    ("Permissions.3.IpProtocol", "tcp"),
                    ("Permissions.3.PortRange", "82/82"),
                    ("Permissions.3.NicType", "intranet"),
                    ("Permissions.3.SourceCidrIp", "10.0.0.0/8"),
                ]),
            ),
        };
        let expected_rules = if i % 3 == 2 { 3 } else { 1 };
        let barrier = Arc::new(Barrier::new(2));
        let (d1, d2) = (rng.gen_range(0..800u64), rng.gen_range(0..800u64));
        let auth = {
            let (c, barrier) = (c.clone(), barrier.clone());
            thread::spawn(move || {
                barrier.wait();
                thread::sleep(Duration::from_micros(d1));
                try_call(&c, action, &params)
            })
        };
        let del = {
            let (c, barrier, b) = (c.clone(), barrier.clone(), b.clone());
            thread::spawn(move || {
                barrier.wait();
                thread::sleep(Duration::from_micros(d2));
                try_call(
                    &c,
                    "DeleteSecurityGroup",
                    &pairs(&[("SecurityGroupId", &b)]),
                )
            })
        };
        let (sa, va) = auth.join().unwrap().expect("authorize transport");
        let (sd, vd) = del.join().unwrap().expect("delete transport");
        let code = |v: &Value| v["Code"].as_str().unwrap_or("").to_string();
        let r = c.call("DescribeSecurityGroupAttribute", &[("SecurityGroupId", &b)]);
        let b_exists = match (r.status, r.code().as_str()) {
            (200, _) => true,
            (404, "InvalidSecurityGroupId.NotFound") => false,
            other => panic!("describe of B: {other:?} {}", r.text),
        };
        let rules = c.rules(&a, &[("NicType", "intranet"), ("Direction", dir)]);
        let naming_b = rules
            .iter()
            .filter(|r| r["SourceGroupId"] == b.as_str() || r["DestGroupId"] == b.as_str())
            .count();
        let context = format!(
            "iteration {i}: authorize {sa} {va}, delete {sd} {vd}, B exists {b_exists}, rules {rules:?}"
        );
        let not_found = [
            "InvalidSourceGroupId.NotFound",
            "InvalidDestGroupId.NotFound",
        ];
        if sa == 200 {
            assert_eq!(
                (sd, code(&vd).as_str()),
                (403, "DependencyViolation"),
                "{context}"
            );
            assert!(b_exists, "{context}");
            assert_eq!((naming_b, rules.len()), (1, expected_rules), "{context}");
            *outcomes.entry("authorize first").or_default() += 1;
        } else {
            assert_eq!(sd, 200, "{context}");
            assert_eq!(sa, 404, "{context}");
            assert!(not_found.contains(&code(&va).as_str()), "{context}");
            assert!(!b_exists, "{context}");
            assert!(rules.is_empty(), "{context}");
            *outcomes.entry("delete first").or_default() += 1;
        }
    }
    // No rule of any group names a group that is gone.
    let live: BTreeSet<String> = all_groups(&c).into_keys().collect();
    for g in &live {
        for nic in ["internet", "intranet"] {
            for r in c.rules(g, &[("NicType", nic)]) {
                for key in ["SourceGroupId", "DestGroupId"] {
                    let peer = r[key].as_str().unwrap_or("");
                    assert!(
                        peer.is_empty() || live.contains(peer),
                        "{g} has a rule naming deleted {peer}"
                    );
                }
            }
        }
    }
    println!(
        "race: {ITERATIONS} authorize/delete races: {} authorize first, {} delete first",
        outcomes.get("authorize first").unwrap_or(&0),
        outcomes.get("delete first").unwrap_or(&0)
    );
}
