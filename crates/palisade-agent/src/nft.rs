//! Applying a [`Plan`] to the kernel: one `nft -f` transaction per change, containing
//! only what changed (set elements added/deleted, tier-chain rules added/deleted by
//! handle, interface chains flushed and rewritten, stale chains and sets removed).
//! The first transaction after a start (or after a failure) reconciles with what the
//! kernel holds: it flushes and refills every chain and set of the table and deletes
//! the ones the plan no longer has, still in one transaction, never touching other
//! tables.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io::Write as _;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};

use crate::render::{ChainBody, Plan};

/// The family of the agent's table. `inet` sees IPv4 and IPv6; the rules are IPv4
/// (the API's IPv6 rules are not enforced), and IPv6 packets meet the default verdict.
pub const FAMILY: &str = "inet";

/// Runs programs on the host, or inside a network namespace (`ip netns exec NS`).
#[derive(Clone, Debug, Default)]
pub struct Exec {
    pub netns: Option<String>,
}

impl Exec {
    pub fn new(netns: Option<String>) -> Exec {
        Exec { netns }
    }

    pub fn command(&self, program: &str) -> Command {
        match &self.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, program]);
                c
            }
            None => Command::new(program),
        }
    }

    /// Runs `program args` with `input` on stdin; stdout on success, stderr otherwise.
    pub fn run(&self, program: &str, args: &[&str], input: Option<&str>) -> Result<String, String> {
        let mut cmd = self.command(program);
        cmd.args(args)
            .stdin(if input.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("{program}: cannot start: {e}"))?;
        if let Some(text) = input {
            let mut stdin = child.stdin.take().expect("stdin");
            stdin
                .write_all(text.as_bytes())
                .map_err(|e| format!("{program}: writing stdin: {e}"))?;
        }
        let out = child
            .wait_with_output()
            .map_err(|e| format!("{program}: {e}"))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(format!(
                "{program} {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }
}

/// What the kernel holds in our table (names only).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KernelTable {
    pub chains: BTreeSet<String>,
    pub sets: BTreeSet<String>,
}

/// The plan last committed, with the handles of the tier-chain rules.
#[derive(Clone, Debug, Default)]
pub struct Applied {
    pub plan: Plan,
    /// (chain, key) → rule handle.
    pub handles: BTreeMap<(String, String), u64>,
}

/// The outcome of one apply.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ApplyStats {
    /// Statements in the transaction (0: nothing to do, nft not called).
    pub statements: usize,
    pub full_sync: bool,
}

/// The agent's table.
#[derive(Clone, Debug)]
pub struct Nft {
    pub exec: Exec,
    pub table: String,
    applied: Option<Applied>,
}

fn base_spec(hook: &str) -> String {
    format!("{{ type filter hook {hook} priority filter; policy accept; }}")
}

fn elements(ips: &BTreeSet<Ipv4Addr>) -> String {
    let v: Vec<String> = ips.iter().map(Ipv4Addr::to_string).collect();
    v.join(", ")
}

/// Statements of a script, kept as lines; counted for the stats.
#[derive(Default)]
struct Script {
    text: String,
    n: usize,
}

impl Script {
    fn push(&mut self, line: String) {
        self.text.push_str(&line);
        self.text.push('\n');
        self.n += 1;
    }
}

fn rules_of(body: &ChainBody) -> Vec<&String> {
    match body {
        ChainBody::Base { rules, .. } | ChainBody::Ordered(rules) => rules.iter().collect(),
        ChainBody::Unordered(m) => m.values().collect(),
    }
}

/// Parses `nft -e -a` output: `add rule ip T CHAIN ... comment "KEY" # handle N`.
pub fn parse_echo(out: &str) -> Vec<(String, String, u64)> {
    let mut found = Vec::new();
    for line in out.lines() {
        let Some(rest) = line.strip_prefix("add rule ") else {
            continue;
        };
        let mut words = rest.split_whitespace();
        let (_family, _table, chain) = match (words.next(), words.next(), words.next()) {
            (Some(f), Some(t), Some(c)) => (f, t, c),
            _ => continue,
        };
        let Some(c) = line.find(" comment \"") else {
            continue;
        };
        let after = &line[c + " comment \"".len()..];
        let Some(end) = after.find('"') else { continue };
        let key = &after[..end];
        let Some(h) = line.rfind("# handle ") else {
            continue;
        };
        let Ok(handle) = line[h + "# handle ".len()..].trim().parse::<u64>() else {
            continue;
        };
        found.push((chain.to_string(), key.to_string(), handle));
    }
    found
}

impl Nft {
    pub fn new(exec: Exec, table: &str) -> Nft {
        Nft {
            exec,
            table: table.to_string(),
            applied: None,
        }
    }

    fn t(&self) -> String {
        format!("{FAMILY} {}", self.table)
    }

    /// Forget what was applied: the next apply reconciles with the kernel.
    pub fn invalidate(&mut self) {
        self.applied = None;
    }

    pub fn applied(&self) -> Option<&Applied> {
        self.applied.as_ref()
    }

    /// The chains and sets of our table in the kernel; `None` without the table.
    pub fn kernel_table(&self) -> Result<Option<KernelTable>, String> {
        let out = match self
            .exec
            .run("nft", &["-j", "list", "table", FAMILY, &self.table], None)
        {
            Ok(o) => o,
            Err(e) if e.contains("No such file or directory") => return Ok(None),
            Err(e) => return Err(e),
        };
        let v: serde_json::Value =
            serde_json::from_str(&out).map_err(|e| format!("nft -j list: {e}"))?;
        let mut k = KernelTable::default();
        for item in v["nftables"].as_array().into_iter().flatten() {
            if let Some(name) = item["chain"]["name"].as_str() {
                k.chains.insert(name.to_string());
            }
            if let Some(name) = item["set"]["name"].as_str() {
                k.sets.insert(name.to_string());
            }
        }
        Ok(Some(k))
    }

    /// Does the kernel's table still hold the chains and sets we committed? (Names
    /// only: catches a deleted or flushed table, removed or foreign chains.)
    pub fn drifted(&self) -> Result<bool, String> {
        let Some(applied) = &self.applied else {
            return Ok(true);
        };
        let Some(k) = self.kernel_table()? else {
            return Ok(true);
        };
        let chains: BTreeSet<String> = applied.plan.chains.keys().cloned().collect();
        let sets: BTreeSet<String> = applied.plan.sets.keys().cloned().collect();
        Ok(k.chains != chains || k.sets != sets)
    }

    /// The script that turns `old` (what we last committed) into `new`.
    fn incremental(&self, old: &Applied, new: &Plan, s: &mut Script) {
        let t = self.t();
        for (name, ips) in &new.sets {
            match old.plan.sets.get(name) {
                None => {
                    s.push(format!("add set {t} {name} {{ type ipv4_addr; }}"));
                    if !ips.is_empty() {
                        s.push(format!("add element {t} {name} {{ {} }}", elements(ips)));
                    }
                }
                Some(before) => {
                    let gone: BTreeSet<Ipv4Addr> = before.difference(ips).copied().collect();
                    let added: BTreeSet<Ipv4Addr> = ips.difference(before).copied().collect();
                    if !gone.is_empty() {
                        s.push(format!(
                            "delete element {t} {name} {{ {} }}",
                            elements(&gone)
                        ));
                    }
                    if !added.is_empty() {
                        s.push(format!("add element {t} {name} {{ {} }}", elements(&added)));
                    }
                }
            }
        }
        for (name, body) in &new.chains {
            if !old.plan.chains.contains_key(name) {
                match body {
                    ChainBody::Base { hook, .. } => {
                        s.push(format!("add chain {t} {name} {}", base_spec(hook)))
                    }
                    _ => s.push(format!("add chain {t} {name}")),
                }
            }
        }
        // Tier chains, rule by rule.
        for (name, body) in &new.chains {
            let ChainBody::Unordered(rules) = body else {
                continue;
            };
            let before = match old.plan.chains.get(name) {
                None => {
                    for r in rules.values() {
                        s.push(format!("add rule {t} {name} {r}"));
                    }
                    continue;
                }
                Some(ChainBody::Unordered(b)) => Some(b),
                Some(_) => None,
            };
            let mut deletes = Vec::new();
            let mut rewrite = before.is_none();
            if let Some(before) = before {
                for (key, text) in before {
                    if rules.get(key) != Some(text) {
                        match old.handles.get(&(name.clone(), key.clone())) {
                            Some(h) => deletes.push(*h),
                            None => rewrite = true,
                        }
                    }
                }
            }
            if rewrite {
                s.push(format!("flush chain {t} {name}"));
                for r in rules.values() {
                    s.push(format!("add rule {t} {name} {r}"));
                }
                continue;
            }
            let before = before.expect("not a rewrite");
            for h in deletes {
                s.push(format!("delete rule {t} {name} handle {h}"));
            }
            for (key, text) in rules {
                if before.get(key) != Some(text) {
                    s.push(format!("add rule {t} {name} {text}"));
                }
            }
        }
        // Ordered chains (interfaces, then the base chains), whole.
        for base in [false, true] {
            for (name, body) in &new.chains {
                if matches!(body, ChainBody::Unordered(_))
                    || matches!(body, ChainBody::Base { .. }) != base
                {
                    continue;
                }
                let old_body = old.plan.chains.get(name);
                if old_body == Some(body) {
                    continue;
                }
                if old_body.is_some() {
                    s.push(format!("flush chain {t} {name}"));
                }
                for r in rules_of(body) {
                    s.push(format!("add rule {t} {name} {r}"));
                }
            }
        }
        let stale: Vec<&String> = old
            .plan
            .chains
            .keys()
            .filter(|n| !new.chains.contains_key(*n))
            .collect();
        for name in &stale {
            s.push(format!("flush chain {t} {name}"));
        }
        for name in &stale {
            s.push(format!("delete chain {t} {name}"));
        }
        for name in old.plan.sets.keys() {
            if !new.sets.contains_key(name) {
                s.push(format!("delete set {t} {name}"));
            }
        }
    }

    /// The script that makes the kernel's table equal to `new` whatever it holds now.
    fn full(&self, kernel: &KernelTable, new: &Plan, s: &mut Script) {
        let t = self.t();
        s.push(format!("add table {t}"));
        for (name, ips) in &new.sets {
            s.push(format!("add set {t} {name} {{ type ipv4_addr; }}"));
            if kernel.sets.contains(name) {
                s.push(format!("flush set {t} {name}"));
            }
            if !ips.is_empty() {
                s.push(format!("add element {t} {name} {{ {} }}", elements(ips)));
            }
        }
        for (name, body) in &new.chains {
            match body {
                ChainBody::Base { hook, .. } => {
                    s.push(format!("add chain {t} {name} {}", base_spec(hook)))
                }
                _ => s.push(format!("add chain {t} {name}")),
            }
        }
        let stale: Vec<&String> = kernel
            .chains
            .iter()
            .filter(|n| !new.chains.contains_key(*n))
            .collect();
        for name in kernel.chains.iter() {
            s.push(format!("flush chain {t} {name}"));
        }
        for (name, body) in &new.chains {
            for r in rules_of(body) {
                s.push(format!("add rule {t} {name} {r}"));
            }
        }
        for name in &stale {
            s.push(format!("delete chain {t} {name}"));
        }
        for name in &kernel.sets {
            if !new.sets.contains_key(name) {
                s.push(format!("delete set {t} {name}"));
            }
        }
    }

    /// Makes the kernel enforce `plan`, in one transaction. On error nothing was
    /// changed (nft transactions are all-or-nothing) and the next apply reconciles.
    pub fn apply(&mut self, plan: &Plan) -> Result<ApplyStats, String> {
        let mut s = Script::default();
        let full_sync = self.applied.is_none();
        match &self.applied {
            Some(old) => self.incremental(old, plan, &mut s),
            None => {
                let kernel = self.kernel_table()?.unwrap_or_default();
                self.full(&kernel, plan, &mut s);
            }
        }
        let mut handles = match self.applied.take() {
            Some(old) if !full_sync => old.handles,
            _ => BTreeMap::new(),
        };
        if s.n == 0 {
            self.applied = Some(Applied {
                plan: plan.clone(),
                handles,
            });
            return Ok(ApplyStats {
                statements: 0,
                full_sync,
            });
        }
        let out = self
            .exec
            .run("nft", &["-e", "-a", "-f", "-"], Some(&s.text))?;
        // Keep the handles of rules that are still there; learn the new ones.
        handles.retain(|(chain, key), _| {
            matches!(plan.chains.get(chain), Some(ChainBody::Unordered(m)) if m.contains_key(key))
        });
        // A rule that changed text under the same key got a new handle below.
        for (chain, key, h) in parse_echo(&out) {
            if matches!(plan.chains.get(&chain), Some(ChainBody::Unordered(_))) {
                handles.insert((chain, key), h);
            }
        }
        self.applied = Some(Applied {
            plan: plan.clone(),
            handles,
        });
        Ok(ApplyStats {
            statements: s.n,
            full_sync,
        })
    }

    /// The script `apply` would run now (for inspection and tests).
    pub fn preview(&self, plan: &Plan, kernel: &KernelTable) -> String {
        let mut s = Script::default();
        match &self.applied {
            Some(old) => self.incremental(old, plan, &mut s),
            None => self.full(kernel, plan, &mut s),
        }
        s.text
    }

    /// Removes our table (and nothing else).
    pub fn delete_table(&mut self) -> Result<bool, String> {
        self.applied = None;
        if self.kernel_table()?.is_none() {
            return Ok(false);
        }
        let mut text = String::new();
        let _ = writeln!(text, "delete table {}", self.t());
        self.exec.run("nft", &["-f", "-"], Some(&text))?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(rules: &[(&str, &str)], members: &[&str]) -> Plan {
        let mut p = Plan::default();
        p.sets.insert(
            "m-sg-db".into(),
            members.iter().map(|m| m.parse().unwrap()).collect(),
        );
        p.chains.insert(
            "sg-a-in-001-accept".into(),
            ChainBody::Unordered(
                rules
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
        );
        p.chains.insert(
            "nic-eni-1-in".into(),
            ChainBody::Ordered(vec!["jump sg-a-in-001-accept".into(), "drop".into()]),
        );
        p.chains.insert(
            "input".into(),
            ChainBody::Base {
                hook: "input",
                rules: vec!["iifname \"eth0\" jump nic-eni-1-in".into()],
            },
        );
        p
    }

    #[test]
    fn echo_is_parsed() {
        let out = "add rule inet palisade sg-a-in-001-accept ip saddr 10.0.0.0/8 tcp dport 22 counter packets 0 bytes 0 accept comment \"sgr-1\" # handle 4\n\
                   add rule inet palisade nic-x-in jump sg-a # handle 8\n";
        assert_eq!(
            parse_echo(out),
            vec![("sg-a-in-001-accept".into(), "sgr-1".into(), 4)]
        );
    }

    #[test]
    fn full_then_incremental() {
        let nft = Nft::new(Exec::default(), "palisade");
        let p1 = plan(
            &[("r1", "tcp dport 22 accept comment \"r1\"")],
            &["192.168.0.5"],
        );
        let kernel = KernelTable {
            chains: ["old-chain".to_string(), "input".to_string()].into(),
            sets: ["m-old".to_string()].into(),
        };
        let full = nft.preview(&p1, &kernel);
        assert!(full.starts_with("add table inet palisade\n"));
        assert!(full.contains("flush chain inet palisade old-chain\n"));
        assert!(full.contains("delete chain inet palisade old-chain\n"));
        assert!(full.contains("delete set inet palisade m-old\n"));
        assert!(!full.contains("flush ruleset"));
        let flush = full.find("flush chain inet palisade old-chain").unwrap();
        let delete = full.find("delete chain inet palisade old-chain").unwrap();
        assert!(flush < delete);

        let mut nft = nft;
        nft.applied = Some(Applied {
            plan: p1.clone(),
            handles: [(("sg-a-in-001-accept".to_string(), "r1".to_string()), 4)].into(),
        });
        // A member joins: one element, nothing else.
        let p2 = plan(
            &[("r1", "tcp dport 22 accept comment \"r1\"")],
            &["192.168.0.5", "192.168.0.6"],
        );
        assert_eq!(
            nft.preview(&p2, &KernelTable::default()),
            "add element inet palisade m-sg-db { 192.168.0.6 }\n"
        );
        // A rule is added and the old one revoked: delete by handle, add one.
        let p3 = plan(
            &[("r2", "udp dport 53 accept comment \"r2\"")],
            &["192.168.0.5"],
        );
        assert_eq!(
            nft.preview(&p3, &KernelTable::default()),
            "delete rule inet palisade sg-a-in-001-accept handle 4\n\
             add rule inet palisade sg-a-in-001-accept udp dport 53 accept comment \"r2\"\n"
        );
        // Same plan: nothing.
        assert_eq!(nft.preview(&p1, &KernelTable::default()), "");
    }
}
