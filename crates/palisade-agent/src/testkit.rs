//! Test support for the agent's integration tests and benchmark (not used by the agent
//! itself): network namespaces joined by a bridge, the real server, the agent as a
//! process, and a traffic helper (`probe.py`) running inside a namespace.
//!
//! Nothing here touches the host's own network namespace: links are created inside
//! the test namespaces (`ip -n NS link add ... peer ... netns BR`), and every nft and
//! conntrack call goes through `ip netns exec`.

use std::io::{BufRead, BufReader, Write};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::api::ApiClient;

pub const AK: &str = "agentak";
pub const SECRET: &str = "agentsecret";
pub const PROBE_PY: &str = include_str!("probe.py");

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
        .unwrap_or(false)
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|e| e == "0"))
        })
        .unwrap_or(false)
}

/// Why these tests cannot run here, if they cannot.
pub fn missing() -> Option<String> {
    if !is_root() {
        return Some("not root".into());
    }
    for p in ["nft", "ip", "conntrack", "python3"] {
        if !on_path(p) {
            return Some(format!("{p} not found"));
        }
    }
    None
}

/// `true` when the namespace tests can run; otherwise prints the skip line.
pub fn can_run() -> bool {
    match missing() {
        None => true,
        Some(why) => {
            println!("skipped: needs root and nft ({why})");
            false
        }
    }
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A name unique to this process and call: `pal-<pid>-<n>`.
pub fn unique_name() -> String {
    format!(
        "pal-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    )
}

/// Runs a command, panics with its stderr on failure.
pub fn sh(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs a command inside a namespace; (success, stdout + stderr).
pub fn ns_exec(ns: &str, program: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, program])
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("ip netns exec: {e}"));
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// Deletes `pal-<pid>-*` namespaces left behind by test processes that no longer run.
pub fn sweep_stale_namespaces() {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        let Some(rest) = name.strip_prefix("pal-") else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = Command::new("ip").args(["netns", "del", name]).status();
        }
    }
}

/// A network namespace, deleted on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(name: &str) -> Netns {
        sh("ip", &["netns", "add", name]);
        let ns = Netns {
            name: name.to_string(),
        };
        sh("ip", &["-n", name, "link", "set", "lo", "up"]);
        ns
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .stderr(Stdio::null())
            .status();
    }
}

/// A host namespace with `eth0` on the bridge.
pub struct Host {
    pub ns: Netns,
    pub ip: Ipv4Addr,
}

impl Host {
    pub fn name(&self) -> &str {
        &self.ns.name
    }

    /// Adds another address to `eth0` (e.g. the NIC's public address).
    pub fn add_address(&self, ip: &str) {
        sh(
            "ip",
            &[
                "-n",
                self.name(),
                "addr",
                "add",
                &format!("{ip}/24"),
                "dev",
                "eth0",
            ],
        );
    }
}

/// A bridge namespace and hosts joined to it by veth pairs, addresses from
/// 192.168.0.0/24. Every namespace goes away on drop.
pub struct Topology {
    pub hosts: Vec<Host>,
    pub bridge: Netns,
}

impl Topology {
    pub fn new(ips: &[&str]) -> Topology {
        sweep_stale_namespaces();
        let base = unique_name();
        let bridge = Netns::new(&format!("{base}-br"));
        let br = bridge.name.clone();
        sh("ip", &["-n", &br, "link", "add", "br0", "type", "bridge"]);
        sh("ip", &["-n", &br, "link", "set", "br0", "up"]);
        let mut topo = Topology {
            hosts: Vec::new(),
            bridge,
        };
        for (i, ip) in ips.iter().enumerate() {
            let ns = Netns::new(&format!("{base}-h{i}"));
            let port = format!("v{i}");
            sh(
                "ip",
                &[
                    "-n", &ns.name, "link", "add", "eth0", "type", "veth", "peer", "name", &port,
                    "netns", &br,
                ],
            );
            sh(
                "ip",
                &[
                    "-n",
                    &ns.name,
                    "addr",
                    "add",
                    &format!("{ip}/24"),
                    "dev",
                    "eth0",
                ],
            );
            sh("ip", &["-n", &ns.name, "link", "set", "eth0", "up"]);
            sh("ip", &["-n", &br, "link", "set", &port, "master", "br0"]);
            sh("ip", &["-n", &br, "link", "set", &port, "up"]);
            topo.hosts.push(Host {
                ns,
                ip: ip.parse().expect("IPv4"),
            });
        }
        topo
    }
}

/// A directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> TempDir {
        let p = std::env::temp_dir().join(format!(
            "{}-{}",
            unique_name(),
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&p).expect("temp dir");
        TempDir(p)
    }
}

impl Default for TempDir {
    fn default() -> Self {
        TempDir::new()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The `palisade` server binary: `PALISADE_BIN`, else next to the test binary's
/// target directory (`cargo build -p palisade` with the same target directory).
pub fn server_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("PALISADE_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("current exe");
    for dir in exe.ancestors().skip(1).take(3) {
        let cand = dir.join("palisade");
        if cand.is_file() {
            return cand;
        }
    }
    panic!(
        "the palisade server binary is not built next to {}: run `cargo build -p palisade` with the same CARGO_TARGET_DIR, or set PALISADE_BIN",
        exe.display()
    );
}

/// The real server on a free loopback port (root namespace), killed on drop.
pub struct Server {
    child: Child,
    pub endpoint: String,
    _dir: TempDir,
}

impl Server {
    pub fn start(extra: &[&str]) -> Server {
        let dir = TempDir::new();
        let mut child = Command::new(server_bin())
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.0.join("data"))
            .args(extra)
            .env("PALISADE_ACCESS_KEY_ID", AK)
            .env("PALISADE_ACCESS_KEY_SECRET", SECRET)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start palisade serve");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("read server banner");
        let endpoint = line
            .trim()
            .strip_prefix("palisade listening on ")
            .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
            .to_string();
        Server {
            child,
            endpoint,
            _dir: dir,
        }
    }

    pub fn client(&self) -> Api {
        Api(ApiClient::new(&self.endpoint, AK, SECRET, "cn-hangzhou"))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The API client with test conveniences (panics on failure).
#[derive(Clone)]
pub struct Api(pub ApiClient);

impl Api {
    pub fn ok(&self, action: &str, params: &[(&str, &str)]) -> serde_json::Value {
        self.0
            .call(action, params)
            .unwrap_or_else(|e| panic!("{action} {params:?}: {e}"))
    }

    pub fn try_call(
        &self,
        action: &str,
        params: &[(&str, &str)],
    ) -> Result<serde_json::Value, crate::CallError> {
        self.0.call(action, params)
    }

    pub fn revision(&self) -> u64 {
        self.0.revision().expect("revision")
    }

    pub fn vpc(&self) -> String {
        self.ok("CreateVpc", &[("CidrBlock", "192.168.0.0/16")])["VpcId"]
            .as_str()
            .expect("VpcId")
            .to_string()
    }

    pub fn group(&self, vpc: &str, extra: &[(&str, &str)]) -> String {
        let mut p = vec![("VpcId", vpc)];
        p.extend_from_slice(extra);
        self.ok("CreateSecurityGroup", &p)["SecurityGroupId"]
            .as_str()
            .expect("SecurityGroupId")
            .to_string()
    }

    /// A network interface with that primary address in those groups.
    pub fn nic(&self, ip: &str, groups: &[&str]) -> String {
        let keys: Vec<String> = (1..=groups.len())
            .map(|i| format!("SecurityGroupIds.{i}"))
            .collect();
        let mut p: Vec<(&str, &str)> = vec![("PrimaryIpAddress", ip)];
        for (k, g) in keys.iter().zip(groups) {
            p.push((k.as_str(), g));
        }
        self.ok("CreateNetworkInterface", &p)["NetworkInterfaceId"]
            .as_str()
            .expect("NetworkInterfaceId")
            .to_string()
    }

    /// The rule ids of a group.
    pub fn rule_ids(&self, group: &str) -> Vec<String> {
        self.ok(
            "DescribeSecurityGroupAttribute",
            &[("SecurityGroupId", group), ("NicType", "intranet")],
        )["Permissions"]["Permission"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|p| p["SecurityGroupRuleId"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Authorize (ingress) or AuthorizeEgress; returns the new rule's id.
    pub fn authorize(&self, group: &str, egress: bool, fields: &[(&str, &str)]) -> String {
        let action = if egress {
            "AuthorizeSecurityGroupEgress"
        } else {
            "AuthorizeSecurityGroup"
        };
        let before = self.rule_ids(group);
        let mut p = vec![("SecurityGroupId", group)];
        p.extend_from_slice(fields);
        self.ok(action, &p);
        self.rule_ids(group)
            .into_iter()
            .find(|id| !before.contains(id))
            .unwrap_or_else(|| panic!("{action} {fields:?} added no rule"))
    }

    pub fn revoke_id(&self, group: &str, egress: bool, rule: &str) {
        let action = if egress {
            "RevokeSecurityGroupEgress"
        } else {
            "RevokeSecurityGroup"
        };
        self.ok(
            action,
            &[("SecurityGroupId", group), ("SecurityGroupRuleId.1", rule)],
        );
    }
}

/// The outcome of one probe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    Refused,
    Timeout,
    Error(String),
}

impl Outcome {
    pub fn parse(s: &str) -> Outcome {
        match s.trim() {
            "ok" => Outcome::Ok,
            "refused" => Outcome::Refused,
            "timeout" => Outcome::Timeout,
            other => Outcome::Error(other.to_string()),
        }
    }

    /// The packet got through (an answer or a refusal came back).
    pub fn passed(&self) -> bool {
        matches!(self, Outcome::Ok | Outcome::Refused)
    }
}

/// The traffic helper inside a namespace.
pub struct Probe {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    pub ns: String,
}

impl Probe {
    pub fn start(ns: &str) -> Probe {
        let mut child = Command::new("ip")
            .args(["netns", "exec", ns, "python3", "-u", "-c", PROBE_PY])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start probe helper");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut p = Probe {
            child,
            stdin,
            stdout,
            ns: ns.to_string(),
        };
        assert_eq!(p.recv(), "ready");
        p
    }

    pub fn send(&mut self, line: &str) {
        writeln!(self.stdin, "{line}").expect("probe stdin");
        self.stdin.flush().expect("probe flush");
    }

    pub fn recv(&mut self) -> String {
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("probe stdout");
        assert!(!line.is_empty(), "probe helper in {} exited", self.ns);
        line.trim().to_string()
    }

    pub fn cmd(&mut self, line: &str) -> String {
        self.send(line);
        self.recv()
    }

    pub fn listen(&mut self, proto: &str, ports: &[u16]) {
        let list: Vec<String> = ports.iter().map(u16::to_string).collect();
        assert_eq!(
            self.cmd(&format!("listen {proto} {}", list.join(" "))),
            "ok"
        );
    }

    /// Listens on one address only (UDP replies then leave from it).
    pub fn listen_at(&mut self, proto: &str, addr: &str, ports: &[u16]) {
        let list: Vec<String> = ports.iter().map(u16::to_string).collect();
        assert_eq!(
            self.cmd(&format!("listen_at {proto} {addr} {}", list.join(" "))),
            "ok"
        );
    }

    /// One probe: `kind` tcp, udp or icmp.
    pub fn probe(&mut self, kind: &str, ip: &str, port: u16, timeout: f64) -> Outcome {
        Outcome::parse(&self.cmd(&format!("probe {kind},{ip},{port},0,{timeout}")))
    }

    /// One probe from a chosen source port (0: any) and source address ("" : any).
    pub fn probe_from(
        &mut self,
        kind: &str,
        ip: &str,
        port: u16,
        sport: u16,
        src: &str,
        timeout: f64,
    ) -> Outcome {
        Outcome::parse(&self.cmd(&format!("probe {kind},{ip},{port},{sport},{timeout},{src}")))
    }

    pub fn tcp(&mut self, ip: &str, port: u16) -> Outcome {
        self.probe("tcp", ip, port, 1.0)
    }

    pub fn udp(&mut self, ip: &str, port: u16) -> Outcome {
        self.probe("udp", ip, port, 1.0)
    }

    pub fn ping(&mut self, ip: &str) -> Outcome {
        self.probe("icmp", ip, 0, 1.0)
    }

    /// Probes until the outcome's `passed()` equals `want`, at most `attempts` times;
    /// whether it got there.
    pub fn eventually(
        &mut self,
        kind: &str,
        ip: &str,
        port: u16,
        want: bool,
        attempts: usize,
    ) -> bool {
        for _ in 0..attempts {
            if self.probe(kind, ip, port, 0.5).passed() == want {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The agent as a process enforcing inside one namespace.
pub struct AgentProc {
    child: Option<Child>,
    bin: PathBuf,
    args: Vec<String>,
    pub status: PathBuf,
    pub log: PathBuf,
    _dir: TempDir,
}

impl AgentProc {
    /// Starts `bin` against the server, enforcing in `netns` for the bindings
    /// (`("eth0", "eni-...")`).
    pub fn start(bin: &Path, server: &Server, netns: &str, binds: &[(&str, &str)]) -> AgentProc {
        AgentProc::start_with(bin, server, netns, binds, &[])
    }

    /// [`AgentProc::start`] with extra command-line options.
    pub fn start_with(
        bin: &Path,
        server: &Server,
        netns: &str,
        binds: &[(&str, &str)],
        extra: &[&str],
    ) -> AgentProc {
        let dir = TempDir::new();
        let mut args: Vec<String> = vec![
            "--endpoint".into(),
            server.endpoint.clone(),
            "--access-key-id".into(),
            AK.into(),
            "--access-key-secret".into(),
            SECRET.into(),
            "--netns".into(),
            netns.into(),
            "--status-file".into(),
            dir.0.join("status.json").display().to_string(),
        ];
        for (iface, id) in binds {
            args.push("--bind".into());
            args.push(format!("{iface}={id}"));
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        let mut a = AgentProc {
            child: None,
            bin: bin.to_path_buf(),
            args,
            status: dir.0.join("status.json"),
            log: dir.0.join("agent.log"),
            _dir: dir,
        };
        a.spawn();
        a
    }

    pub fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("agent log");
        let child = Command::new(&self.bin)
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start agent");
        self.child = Some(child);
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_file(&self.status);
    }

    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last revision the agent enforced, from its status file.
    pub fn enforced(&self) -> Option<u64> {
        let text = std::fs::read_to_string(&self.status).ok()?;
        let v: serde_json::Value = serde_json::from_str(&text).ok()?;
        v["Revision"].as_u64()
    }

    /// The agent's last status (revision, statements, full sync, ...).
    pub fn status_json(&self) -> serde_json::Value {
        std::fs::read_to_string(&self.status)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default()
    }

    /// Waits (bounded number of polls) until the agent enforces `rev` or later.
    pub fn wait_for(&self, rev: u64) {
        for _ in 0..1500 {
            if self.enforced().is_some_and(|r| r >= rev) {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!(
            "agent did not reach revision {rev} (at {:?}); log:\n{}",
            self.enforced(),
            self.log_text()
        );
    }

    /// Waits until the agent enforces the server's current revision.
    pub fn sync(&self, api: &Api) {
        self.wait_for(api.revision());
    }
}

impl Drop for AgentProc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `nft -a list table inet <table>` inside a namespace ("" without the table).
pub fn nft_list(ns: &str, table: &str) -> String {
    let (ok, text) = ns_exec(
        ns,
        "nft",
        &["-a", "list", "table", crate::nft::FAMILY, table],
    );
    if ok {
        text
    } else {
        String::new()
    }
}

/// One chain's listing with handles.
pub fn nft_chain(ns: &str, table: &str, chain: &str) -> String {
    let (ok, text) = ns_exec(
        ns,
        "nft",
        &["-a", "list", "chain", crate::nft::FAMILY, table, chain],
    );
    assert!(ok, "{text}");
    text
}

/// A lock that serialises the namespace tests of one test binary (they time probes).
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}
