//! palisade-bench: the security-group workload of bench/WORKLOAD.md, run against a Palisade
//! server through its ECS API (V1-signed `POST /?...` like the classic SDK), with per-phase
//! throughput, client-observed latency, errors and server CPU, and the server's peak RSS.

mod client;
mod http;
mod stats;
mod workload;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use client::{CallError, EcsClient};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;
use workload::{is_revoked, rule_spec, RuleKey, RuleSpec, SplitMix64};

const USAGE: &str = "\
usage: palisade-bench --endpoint http://127.0.0.1:PORT [options]

  --endpoint URL[,URL..]    Palisade ECS endpoint(s) (loopback only); workers take them in turn
  --server-pid PID          pid of the server process, for CPU and RSS figures
  --access-key-id ID        (default: $PALISADE_ACCESS_KEY_ID)
  --access-key-secret KEY   (default: $PALISADE_ACCESS_KEY_SECRET)
  --region REGION           RegionId sent with every call (default cn-hangzhou)
  --groups G                security groups (default 200)
  --rules R                 ingress rules per group (default 50)
  --describes D             DescribeSecurityGroupAttribute calls per group (default 5)
  --concurrency C           worker threads, one client each (default 16)
  --seed N                  seed of the request-order shuffle (default 1)
  --timeout SECS            per-request timeout (default 60)
  --json FILE               also write the results as JSON
";

struct Args {
    endpoint: String,
    server_pid: Option<u32>,
    access_key_id: String,
    access_key_secret: String,
    region: String,
    groups: usize,
    rules: usize,
    describes: usize,
    concurrency: usize,
    seed: u64,
    timeout_s: f64,
    json: Option<String>,
}

fn parse_args(argv: &[String]) -> Result<Args, String> {
    let mut a = Args {
        endpoint: String::new(),
        server_pid: None,
        access_key_id: std::env::var("PALISADE_ACCESS_KEY_ID").unwrap_or_default(),
        access_key_secret: std::env::var("PALISADE_ACCESS_KEY_SECRET").unwrap_or_default(),
        region: "cn-hangzhou".into(),
        groups: 200,
        rules: 50,
        describes: 5,
        concurrency: 16,
        seed: 1,
        timeout_s: 60.0,
        json: None,
    };
    let mut it = argv.iter();
    while let Some(arg) = it.next() {
        if arg == "-h" || arg == "--help" {
            return Err(String::new());
        }
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n, Some(v.to_string())),
            _ => (arg.as_str(), None),
        };
        let mut value = || -> Result<String, String> {
            match &inline {
                Some(v) => Ok(v.clone()),
                None => it.next().cloned().ok_or(format!("{name} needs a value")),
            }
        };
        fn num<T: std::str::FromStr>(name: &str, v: String) -> Result<T, String> {
            v.parse()
                .map_err(|_| format!("{name}: not a number: {v:?}"))
        }
        match name {
            "--endpoint" => a.endpoint = value()?,
            "--server-pid" => a.server_pid = Some(num(name, value()?)?),
            "--access-key-id" => a.access_key_id = value()?,
            "--access-key-secret" => a.access_key_secret = value()?,
            "--region" => a.region = value()?,
            "--groups" | "-g" => a.groups = num(name, value()?)?,
            "--rules" | "-r" => a.rules = num(name, value()?)?,
            "--describes" | "-d" => a.describes = num(name, value()?)?,
            "--concurrency" | "-c" => a.concurrency = num(name, value()?)?,
            "--seed" => a.seed = num(name, value()?)?,
            "--timeout" => a.timeout_s = num(name, value()?)?,
            "--json" => a.json = Some(value()?),
            _ => return Err(format!("unknown argument {arg:?}")),
        }
    }
    if a.endpoint.is_empty() {
        return Err("--endpoint is required".into());
    }
    for e in a.endpoint.split(',') {
        check_loopback(e)?;
    }
    if a.access_key_id.is_empty() || a.access_key_secret.is_empty() {
        return Err(
            "an access key is required (--access-key-id/--access-key-secret or \
                    PALISADE_ACCESS_KEY_ID/PALISADE_ACCESS_KEY_SECRET)"
                .into(),
        );
    }
    if a.groups == 0 || a.concurrency == 0 {
        return Err("--groups and --concurrency must be at least 1".into());
    }
    Ok(a)
}

/// Only `http://` endpoints on the loopback range (127.0.0.0/8, localhost, [::1]).
fn check_loopback(endpoint: &str) -> Result<(), String> {
    let refuse = || format!("refusing endpoint {endpoint:?}: only http:// on loopback");
    let rest = endpoint.strip_prefix("http://").ok_or_else(refuse)?;
    let authority = rest.split('/').next().unwrap_or("");
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        authority.split(':').next().unwrap_or("")
    };
    let ok = host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .map(|ip| ip.is_loopback())
            .unwrap_or(false);
    if ok {
        Ok(())
    } else {
        Err(refuse())
    }
}

/// Per-phase figures, in the same JSON shape as the moto side.
struct PhaseStats {
    name: &'static str,
    requests: usize,
    wall_s: f64,
    latencies: Vec<f64>,
    error_codes: BTreeMap<String, u64>,
    error_samples: Vec<CallError>,
    server_cpu_s: Option<f64>,
    client_cpu_s: Option<f64>,
    server_rss_kib: Option<u64>,
}

impl PhaseStats {
    fn errors(&self) -> u64 {
        self.error_codes.values().sum()
    }
    fn rps(&self) -> f64 {
        if self.wall_s > 0.0 {
            self.requests as f64 / self.wall_s
        } else {
            f64::NAN
        }
    }
    fn pct_ms(&self, q: f64) -> f64 {
        stats::percentile(&self.latencies, q) * 1000.0
    }
    fn server_ms_per_req(&self) -> Option<f64> {
        self.server_cpu_s
            .filter(|_| self.requests > 0)
            .map(|s| 1000.0 * s / self.requests as f64)
    }

    fn to_json(&self) -> Value {
        json!({
            "phase": self.name,
            "requests": self.requests,
            "wall_s": self.wall_s,
            "rps": finite(self.rps()),
            "p50_ms": finite(self.pct_ms(50.0)),
            "p99_ms": finite(self.pct_ms(99.0)),
            "max_ms": finite(self.latencies.last().map_or(f64::NAN, |m| m * 1000.0)),
            "errors": self.errors(),
            "error_codes": self.error_codes,
            "server_cpu_s": self.server_cpu_s,
            "server_cpu_ms_per_req": self.server_ms_per_req(),
            "client_cpu_s": self.client_cpu_s,
            "server_rss_kib": self.server_rss_kib,
        })
    }

    fn row(&self) -> String {
        let opt = |v: Option<f64>, p: usize| v.map_or("n/a".to_string(), |x| format!("{x:.p$}"));
        format!(
            "{:<10} {:>7} {:>8.2} {:>8.0} {:>8.2} {:>8.2} {:>6} {:>8} {:>8} {:>8} {:>7}",
            self.name,
            self.requests,
            self.wall_s,
            self.rps(),
            self.pct_ms(50.0),
            self.pct_ms(99.0),
            self.errors(),
            opt(self.server_cpu_s, 2),
            opt(self.server_ms_per_req(), 3),
            opt(self.client_cpu_s, 2),
            opt(self.server_rss_kib.map(|k| k as f64 / 1024.0), 0),
        )
    }
}

const HEADER: &str = "phase         reqs   wall_s    req/s   p50_ms   p99_ms errors  srv_cpu srv_ms/r  cli_cpu rss_MiB";

fn finite(x: f64) -> Value {
    if x.is_finite() {
        json!(x)
    } else {
        Value::Null
    }
}

/// A call's result and its client-observed latency in seconds.
type Timed<R> = (Result<R, CallError>, f64);

struct Bench {
    clients: Vec<EcsClient>,
    server_pid: Option<u32>,
    tck: u64,
}

impl Bench {
    fn server_cpu(&self) -> Option<f64> {
        stats::proc_cpu_seconds(self.server_pid?, self.tck)
    }
    fn server_kib(&self, field: &str) -> Option<u64> {
        stats::proc_status_kib(self.server_pid?, field)
    }

    /// Runs `f` over `tasks` on one thread per client, handing out tasks in order from a
    /// shared cursor. Returns each task's result and latency (seconds), and the wall time.
    fn run_tasks<T, R, F>(&self, tasks: &[T], f: F) -> (Vec<Timed<R>>, f64)
    where
        T: Sync,
        R: Send,
        F: Fn(&EcsClient, &T) -> Result<R, CallError> + Sync,
    {
        let cursor = AtomicUsize::new(0);
        let t0 = Instant::now();
        let mut parts: Vec<Vec<(usize, Timed<R>)>> = Vec::new();
        std::thread::scope(|s| {
            let handles: Vec<_> = self
                .clients
                .iter()
                .map(|c| {
                    let (cursor, f) = (&cursor, &f);
                    s.spawn(move || {
                        let mut out = Vec::new();
                        loop {
                            let k = cursor.fetch_add(1, Ordering::Relaxed);
                            if k >= tasks.len() {
                                break;
                            }
                            let t = Instant::now();
                            let r = f(c, &tasks[k]);
                            out.push((k, (r, t.elapsed().as_secs_f64())));
                        }
                        out
                    })
                })
                .collect();
            for h in handles {
                parts.push(h.join().expect("worker thread panicked"));
            }
        });
        let wall = t0.elapsed().as_secs_f64();
        let mut all: Vec<(usize, Timed<R>)> = parts.into_iter().flatten().collect();
        all.sort_by_key(|(k, _)| *k);
        (all.into_iter().map(|(_, t)| t).collect(), wall)
    }

    /// A timed phase: `run_tasks` plus server/client CPU around it and the error tally.
    fn phase<T, R, F>(
        &self,
        name: &'static str,
        tasks: &[T],
        f: F,
    ) -> (PhaseStats, Vec<Result<R, CallError>>)
    where
        T: Sync,
        R: Send,
        F: Fn(&EcsClient, &T) -> Result<R, CallError> + Sync,
    {
        let srv0 = self.server_cpu();
        let cli0 = stats::self_cpu_seconds(self.tck);
        let (res, wall) = self.run_tasks(tasks, f);
        let cli1 = stats::self_cpu_seconds(self.tck);
        let srv1 = self.server_cpu();
        let mut st = PhaseStats {
            name,
            requests: tasks.len(),
            wall_s: wall,
            latencies: res.iter().map(|(_, l)| *l).collect(),
            error_codes: BTreeMap::new(),
            error_samples: Vec::new(),
            server_cpu_s: srv0.zip(srv1).map(|(a, b)| b - a),
            client_cpu_s: cli0.zip(cli1).map(|(a, b)| b - a),
            server_rss_kib: self.server_kib("VmRSS"),
        };
        st.latencies.sort_by(f64::total_cmp);
        let mut results = Vec::with_capacity(res.len());
        for (r, _) in res {
            if let Err(e) = &r {
                let n = st.error_codes.entry(e.code.clone()).or_insert(0);
                if *n == 0 {
                    st.error_samples.push(e.clone());
                }
                *n += 1;
            }
            results.push(r);
        }
        println!("{}", st.row());
        (st, results)
    }
}

/// The ingress rules of a DescribeSecurityGroupAttribute reply, as check keys.
/// The part of a DescribeSecurityGroupAttribute reply the timed describe phase checks,
/// decoded without building a JSON tree.
#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AttributeReply {
    #[serde(default)]
    security_group_id: String,
    #[serde(default)]
    permissions: PermissionList,
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct PermissionList {
    #[serde(default)]
    permission: Vec<PermissionKeyFields>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PermissionKeyFields {
    #[serde(default)]
    direction: String,
}

impl AttributeReply {
    fn ingress_count(&self) -> usize {
        self.permissions
            .permission
            .iter()
            .filter(|p| p.direction.is_empty() || p.direction.eq_ignore_ascii_case("ingress"))
            .count()
    }
}

fn ingress_keys(reply: &Value) -> Vec<RuleKey> {
    let perms = reply
        .pointer("/Permissions/Permission")
        .and_then(Value::as_array);
    let s = |p: &Value, k: &str| p.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    perms
        .into_iter()
        .flatten()
        .filter(|p| {
            p.get("Direction")
                .and_then(Value::as_str)
                .is_none_or(|d| d.eq_ignore_ascii_case("ingress"))
        })
        .map(|p| {
            let cidr = s(p, "SourceCidrIp");
            let source = if cidr.is_empty() {
                s(p, "SourceGroupId")
            } else {
                cidr
            };
            (
                s(p, "IpProtocol").to_ascii_lowercase(),
                s(p, "PortRange"),
                source,
            )
        })
        .collect()
}

/// All ingress rules of a group, following `NextToken` pages.
fn describe_all(c: &EcsClient, gid: &str) -> Result<Vec<RuleKey>, CallError> {
    let mut keys = Vec::new();
    let mut token = String::new();
    for _ in 0..1000 {
        let mut p = vec![
            ("SecurityGroupId", gid.to_string()),
            ("MaxResults", "1000".to_string()),
        ];
        if !token.is_empty() {
            p.push(("NextToken", token.clone()));
        }
        let v = c.call("DescribeSecurityGroupAttribute", &p)?;
        keys.extend(ingress_keys(&v));
        token = v
            .get("NextToken")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if token.is_empty() {
            break;
        }
    }
    Ok(keys)
}

/// Compares every group's ingress rules with the expected sets (untimed). Returns the
/// number of mismatching groups.
fn verify(bench: &Bench, group_ids: &[String], expected: &[HashSet<RuleKey>], label: &str) -> u64 {
    let idx: Vec<usize> = (0..group_ids.len()).collect();
    let (res, _) = bench.run_tasks(&idx, |c, &i| describe_all(c, &group_ids[i]));
    let mut bad = 0u64;
    let (mut total, mut exp_total) = (0usize, 0usize);
    for (i, (r, _)) in res.into_iter().enumerate() {
        exp_total += expected[i].len();
        let msg = match r {
            Err(e) => Some(format!("describe failed: {e}")),
            Ok(keys) => {
                total += keys.len();
                let got: HashSet<RuleKey> = keys.iter().cloned().collect();
                if keys.len() != expected[i].len() || got != expected[i] {
                    let missing = expected[i].difference(&got).count();
                    let extra = got.difference(&expected[i]).count();
                    let example = expected[i]
                        .difference(&got)
                        .next()
                        .map(|k| format!(", e.g. missing {k:?}"))
                        .or_else(|| {
                            got.difference(&expected[i])
                                .next()
                                .map(|k| format!(", e.g. unexpected {k:?}"))
                        })
                        .unwrap_or_default();
                    Some(format!(
                        "got {} rules, expected {} (missing {missing}, unexpected {extra}{example})",
                        keys.len(),
                        expected[i].len()
                    ))
                } else {
                    None
                }
            }
        };
        if let Some(m) = msg {
            bad += 1;
            if bad <= 5 {
                println!("  MISMATCH [{label}] {}: {m}", group_ids[i]);
            }
        }
    }
    println!(
        "check [{label}]: {} groups, {total} ingress rules (expected {exp_total}): {}",
        group_ids.len(),
        if bad == 0 {
            "OK".to_string()
        } else {
            format!("{bad} MISMATCHING GROUPS")
        }
    );
    bad
}

fn str_field(v: &Value, k: &str) -> Option<String> {
    v.get(k).and_then(Value::as_str).map(str::to_string)
}

/// A missing field in a 2xx reply, reported like an API error.
fn missing_field(action: &str, field: &str, reply: &Value) -> CallError {
    CallError {
        code: format!("MissingField({field})"),
        action: action.into(),
        request: String::new(),
        status: 200,
        reply: reply.to_string(),
    }
}

struct Outcome {
    phases: Vec<PhaseStats>,
    mismatches: u64,
    aborted: Option<String>,
    rss_before: Option<u64>,
}

fn run(args: &Args, bench: &Bench, out: &mut Outcome) -> Result<(), String> {
    let (g, r, d) = (args.groups, args.rules, args.describes);
    let mut rng = SplitMix64::new(args.seed);
    let setup = &bench.clients[0];

    // setup (untimed): one VPC for the groups
    let vpc = setup
        .call(
            "CreateVpc",
            &[
                ("CidrBlock", "192.168.0.0/16".into()),
                ("VpcName", "bench-vpc".into()),
            ],
        )
        .map_err(|e| format!("setup: {e}"))?;
    let vpc_id = str_field(&vpc, "VpcId")
        .ok_or_else(|| format!("setup: CreateVpc reply has no VpcId: {vpc}"))?;
    println!("setup: VPC {vpc_id}\n\n{HEADER}");

    // create
    let idx: Vec<usize> = (0..g).collect();
    let (st, res) = bench.phase("create", &idx, |c, &i| {
        let v = c.call(
            "CreateSecurityGroup",
            &[
                ("VpcId", vpc_id.clone()),
                ("SecurityGroupName", format!("bench-{i:05}")),
                ("Description", format!("bench group {i}")),
            ],
        )?;
        str_field(&v, "SecurityGroupId")
            .ok_or_else(|| missing_field("CreateSecurityGroup", "SecurityGroupId", &v))
    });
    out.phases.push(st);
    let group_ids: Vec<String> = res.into_iter().filter_map(Result::ok).collect();
    if group_ids.len() != g {
        return Err(format!(
            "only {} of {g} groups were created",
            group_ids.len()
        ));
    }

    // authorize, one rule per call, in a seeded random order
    let specs: Vec<Vec<RuleSpec>> = (0..g)
        .map(|i| (0..r).map(|j| rule_spec(i, j, g)).collect())
        .collect();
    let mut tasks: Vec<(usize, usize)> = (0..g).flat_map(|i| (0..r).map(move |j| (i, j))).collect();
    rng.shuffle(&mut tasks);
    let rule_call = |action: &'static str| {
        let (specs, group_ids) = (&specs, &group_ids);
        move |c: &EcsClient, &(i, j): &(usize, usize)| {
            let mut p = vec![("SecurityGroupId", group_ids[i].clone())];
            p.extend(specs[i][j].ecs_params(group_ids));
            c.call_as::<serde::de::IgnoredAny>(action, &p).map(drop)
        }
    };
    let (st, _) = bench.phase("authorize", &tasks, rule_call("AuthorizeSecurityGroup"));
    out.phases.push(st);

    // describe, D times per group
    let mut tasks: Vec<usize> = (0..g).flat_map(|i| std::iter::repeat_n(i, d)).collect();
    rng.shuffle(&mut tasks);
    let (st, res) = bench.phase("describe", &tasks, |c, &i| {
        c.call_as::<AttributeReply>(
            "DescribeSecurityGroupAttribute",
            &[("SecurityGroupId", group_ids[i].clone())],
        )
        .map(|(reply, _)| reply)
    });
    out.phases.push(st);
    // The full rule sets are compared by `verify` (untimed); here each reply must name its
    // group and carry every ingress rule.
    let desc_bad = tasks
        .iter()
        .zip(&res)
        .filter(|(&i, reply)| match reply {
            Ok(v) => v.security_group_id != group_ids[i] || (r <= 500 && v.ingress_count() != r),
            Err(_) => false,
        })
        .count() as u64;
    drop(res);
    println!();
    if desc_bad > 0 {
        println!(
            "  MISMATCH [describe]: {desc_bad} replies without exactly {r} ingress rules of the requested group"
        );
    }
    out.mismatches += desc_bad;
    let expected: Vec<HashSet<RuleKey>> = specs
        .iter()
        .map(|s| s.iter().map(|x| x.key(&group_ids)).collect())
        .collect();
    out.mismatches += verify(bench, &group_ids, &expected, "after authorize");

    // revoke the odd-j half, by the same fields
    let mut tasks: Vec<(usize, usize)> = (0..g)
        .flat_map(|i| (0..r).filter(|&j| is_revoked(j)).map(move |j| (i, j)))
        .collect();
    rng.shuffle(&mut tasks);
    println!("\n{HEADER}");
    let (st, _) = bench.phase("revoke", &tasks, rule_call("RevokeSecurityGroup"));
    out.phases.push(st);
    println!();
    let expected: Vec<HashSet<RuleKey>> = specs
        .iter()
        .map(|s| {
            s.iter()
                .enumerate()
                .filter(|(j, _)| !is_revoked(*j))
                .map(|(_, x)| x.key(&group_ids))
                .collect()
        })
        .collect();
    out.mismatches += verify(bench, &group_ids, &expected, "after revoke");

    // delete
    let mut tasks: Vec<usize> = (0..g).collect();
    rng.shuffle(&mut tasks);
    println!("\n{HEADER}");
    let (st, _) = bench.phase("delete", &tasks, |c, &i| {
        c.call(
            "DeleteSecurityGroup",
            &[("SecurityGroupId", group_ids[i].clone())],
        )
        .map(drop)
    });
    out.phases.push(st);
    println!();
    match setup.call("DescribeSecurityGroups", &[("VpcId", vpc_id.clone())]) {
        Ok(v) => {
            let total = v.get("TotalCount").and_then(Value::as_u64);
            let listed = v
                .pointer("/SecurityGroups/SecurityGroup")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            let ok = total == Some(0) && listed == 0;
            if !ok {
                out.mismatches += 1;
            }
            println!(
                "check [after delete]: DescribeSecurityGroups(VpcId) TotalCount {}, {listed} listed: {}",
                total.map_or("missing".to_string(), |t| t.to_string()),
                if ok { "OK" } else { "FAIL" }
            );
        }
        Err(e) => {
            out.mismatches += 1;
            println!("check [after delete]: {e}");
        }
    }
    Ok(())
}

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let args = match parse_args(&argv) {
        Ok(a) => a,
        Err(e) => {
            if e.is_empty() {
                print!("{USAGE}");
                return;
            }
            eprintln!("palisade-bench: {e}\n\n{USAGE}");
            std::process::exit(2);
        }
    };
    let bench = Bench {
        // Several comma-separated endpoints (servers sharing one database): workers take them in turn.
        clients: (0..args.concurrency)
            .map(|i| {
                let endpoints: Vec<&str> = args.endpoint.split(',').collect();
                EcsClient::new(
                    endpoints[i % endpoints.len()],
                    &args.access_key_id,
                    &args.access_key_secret,
                    &args.region,
                    std::time::Duration::from_secs_f64(args.timeout_s.max(0.001)),
                )
            })
            .collect(),
        server_pid: args.server_pid,
        tck: stats::clk_tck(),
    };
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "palisade-bench {}: endpoint {}, G={} groups, R={} rules/group, D={} describes/group, \
         concurrency={}, seed={}; {cpus} CPUs",
        env!("CARGO_PKG_VERSION"),
        args.endpoint,
        args.groups,
        args.rules,
        args.describes,
        args.concurrency,
        args.seed
    );
    let mut out = Outcome {
        phases: Vec::new(),
        mismatches: 0,
        aborted: None,
        rss_before: bench.server_kib("VmRSS"),
    };
    match args.server_pid {
        Some(pid) => match out.rss_before {
            Some(k) => println!(
                "server pid {pid}, RSS before workload: {:.1} MiB",
                k as f64 / 1024.0
            ),
            None => println!("warning: cannot read /proc/{pid}; no server CPU/RSS figures"),
        },
        None => println!("note: no --server-pid given; server CPU/RSS will not be reported"),
    }
    if let Err(e) = run(&args, &bench, &mut out) {
        println!("\nABORTED: {e}");
        out.aborted = Some(e);
    }

    let total_req: usize = out.phases.iter().map(|p| p.requests).sum();
    let total_wall: f64 = out.phases.iter().map(|p| p.wall_s).sum();
    let total_err: u64 = out.phases.iter().map(PhaseStats::errors).sum();
    for p in &out.phases {
        for (code, n) in &p.error_codes {
            println!("  errors in {}: {code} x{n}", p.name);
        }
        for e in &p.error_samples {
            println!("  first {} error in {}: {e}", e.code, p.name);
        }
    }
    println!(
        "total: {total_req} requests in {total_wall:.2} s ({:.0} req/s), {total_err} errors, {} correctness mismatches",
        if total_wall > 0.0 { total_req as f64 / total_wall } else { 0.0 },
        out.mismatches
    );
    let hwm = bench.server_kib("VmHWM");
    if let (Some(k), Some(pid)) = (hwm, args.server_pid) {
        println!(
            "server peak RSS (VmHWM of pid {pid}): {:.1} MiB",
            k as f64 / 1024.0
        );
    }

    if let Some(path) = &args.json {
        let samples: Vec<Value> = out
            .phases
            .iter()
            .flat_map(|p| {
                p.error_samples.iter().map(move |e| {
                    json!({"phase": p.name, "code": e.code, "action": e.action,
                           "status": e.status, "request": e.request, "reply": e.reply})
                })
            })
            .collect();
        let doc = json!({
            "server": "palisade",
            "params": {"groups": args.groups, "rules": args.rules, "describes": args.describes,
                       "concurrency": args.concurrency, "seed": args.seed},
            "phases": out.phases.iter().map(PhaseStats::to_json).collect::<Vec<_>>(),
            "total": {"requests": total_req, "wall_s": total_wall, "errors": total_err,
                      "mismatches": out.mismatches},
            "aborted": out.aborted,
            "error_samples": samples,
            "server_rss_before_kib": out.rss_before,
            "server_peak_rss_kib": hwm,
            "clk_tck": bench.tck,
            "client": {"name": "palisade-bench", "version": env!("CARGO_PKG_VERSION"), "cpus": cpus},
        });
        let text = serde_json::to_string_pretty(&doc).expect("JSON of plain values");
        if let Err(e) = std::fs::write(path, text + "\n") {
            eprintln!("palisade-bench: cannot write {path}: {e}");
            std::process::exit(1);
        }
    }
    if out.aborted.is_some() {
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_only() {
        assert!(check_loopback("http://127.0.0.1:8080").is_ok());
        assert!(check_loopback("http://127.3.4.5:1/").is_ok());
        assert!(check_loopback("http://localhost:9").is_ok());
        assert!(check_loopback("http://[::1]:9").is_ok());
        assert!(check_loopback("http://10.0.0.1:80").is_err());
        assert!(check_loopback("http://192.168.1.1").is_err());
        assert!(check_loopback("https://127.0.0.1:443").is_err());
        assert!(check_loopback("http://127.0.0.1.example.com:80").is_err());
        assert!(check_loopback("http://example.com").is_err());
    }

    #[test]
    fn args() {
        let v: Vec<String> = [
            "--endpoint",
            "http://127.0.0.1:5",
            "--server-pid=42",
            "--access-key-id",
            "ak",
            "--access-key-secret",
            "sk",
            "--groups",
            "20",
            "-r",
            "10",
            "--concurrency",
            "1",
            "--json",
            "/tmp/x.json",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let a = parse_args(&v).unwrap();
        assert_eq!(a.server_pid, Some(42));
        assert_eq!(
            (a.groups, a.rules, a.describes, a.concurrency),
            (20, 10, 5, 1)
        );
        assert_eq!(a.json.as_deref(), Some("/tmp/x.json"));
        assert!(parse_args(&["--groups".to_string(), "x".to_string()]).is_err());
    }

    #[test]
    fn keys_from_a_describe_reply() {
        let v: Value = serde_json::from_str(
            r#"{"SecurityGroupId":"sg-1","Permissions":{"Permission":[
                {"Direction":"ingress","IpProtocol":"TCP","PortRange":"1000/1000","SourceCidrIp":"10.0.0.0/24","SourceGroupId":""},
                {"Direction":"ingress","IpProtocol":"UDP","PortRange":"1030/1033","SourceCidrIp":"","SourceGroupId":"sg-2"},
                {"Direction":"egress","IpProtocol":"ALL","PortRange":"-1/-1","DestCidrIp":"0.0.0.0/0"}]}}"#,
        )
        .unwrap();
        let k = ingress_keys(&v);
        assert_eq!(
            k,
            vec![
                ("tcp".into(), "1000/1000".into(), "10.0.0.0/24".into()),
                ("udp".into(), "1030/1033".into(), "sg-2".into()),
            ]
        );
        assert!(ingress_keys(&json!({})).is_empty());
    }
}
