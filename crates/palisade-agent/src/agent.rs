//! The agent loop: describe → render → one nft transaction → cut connections the
//! change denies → long poll for the next revision → again.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::json;

use crate::api::ApiClient;
use crate::conntrack;
use crate::nft::{Exec, Nft};
use crate::render::{render, BoundNic};
use crate::state::EnforcementState;

/// A local interface and the NIC it carries (`eni-...`, or `i-...` for an instance's
/// primary interface).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Binding {
    pub iface: String,
    pub id: String,
}

impl std::str::FromStr for Binding {
    type Err = String;
    /// `IFACE=ID`.
    fn from_str(s: &str) -> Result<Binding, String> {
        let (iface, id) = s
            .split_once('=')
            .ok_or_else(|| format!("expected IFACE=ID, got {s:?}"))?;
        let (iface, id) = (iface.trim(), id.trim());
        let iface_ok = !iface.is_empty()
            && iface.len() <= 15
            && iface
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'));
        if !iface_ok {
            return Err(format!("bad interface name {iface:?}"));
        }
        if id.is_empty() {
            return Err(format!("no NIC or instance id in {s:?}"));
        }
        Ok(Binding {
            iface: iface.to_string(),
            id: id.to_string(),
        })
    }
}

/// How the agent runs.
#[derive(Clone, Debug)]
pub struct Config {
    pub client: ApiClient,
    pub bindings: Vec<Binding>,
    pub netns: Option<String>,
    pub table: String,
    pub wait_seconds: u32,
    pub status_file: Option<PathBuf>,
    /// Delete conntrack entries the new state denies (on by default).
    pub conntrack: bool,
}

/// What one convergence did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Converged {
    pub revision: u64,
    pub statements: usize,
    pub full_sync: bool,
    pub conntrack_deleted: usize,
}

pub struct Agent {
    pub cfg: Config,
    nft: Nft,
    exec: Exec,
    last_skipped: BTreeSet<(String, String)>,
    describe_ms: f64,
}

fn log(msg: &str) {
    let now = time::OffsetDateTime::now_utc();
    eprintln!(
        "{:02}:{:02}:{:02}.{:03} palisade agent: {msg}",
        now.hour(),
        now.minute(),
        now.second(),
        now.millisecond()
    );
}

fn unix_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0)
}

impl Agent {
    pub fn new(cfg: Config) -> Agent {
        let exec = Exec::new(cfg.netns.clone());
        Agent {
            nft: Nft::new(exec.clone(), &cfg.table),
            exec,
            cfg,
            last_skipped: BTreeSet::new(),
            describe_ms: 0.0,
        }
    }

    pub fn nft(&self) -> &Nft {
        &self.nft
    }

    /// `DescribeEnforcementState` for the bound interfaces and instances.
    pub fn describe(&self) -> Result<EnforcementState, String> {
        let mut params: Vec<(String, String)> = Vec::new();
        let (enis, instances) = self.ids();
        for (i, id) in enis.iter().enumerate() {
            params.push((format!("NetworkInterfaceId.{}", i + 1), id.clone()));
        }
        for (i, id) in instances.iter().enumerate() {
            params.push((format!("InstanceId.{}", i + 1), id.clone()));
        }
        let v = self
            .cfg
            .client
            .call_owned("DescribeEnforcementState", params)
            .map_err(|e| format!("DescribeEnforcementState: {e}"))?;
        EnforcementState::from_json(&v)
    }

    /// Distinct NIC ids and instance ids of the bindings, in order.
    fn ids(&self) -> (Vec<String>, Vec<String>) {
        let mut enis: Vec<String> = Vec::new();
        let mut instances: Vec<String> = Vec::new();
        for b in &self.cfg.bindings {
            let list = if b.id.starts_with("i-") {
                &mut instances
            } else {
                &mut enis
            };
            if !list.contains(&b.id) {
                list.push(b.id.clone());
            }
        }
        (enis, instances)
    }

    /// Each binding's NIC in the state. The reply lists the interfaces asked by id
    /// first, then the instances' primary interfaces, in the order asked.
    fn resolve<'a>(&self, st: &'a EnforcementState) -> Result<Vec<BoundNic<'a>>, String> {
        let (enis, instances) = self.ids();
        let mut out = Vec::new();
        for b in &self.cfg.bindings {
            let nic = if b.id.starts_with("i-") {
                let pos = instances.iter().position(|x| x == &b.id).unwrap_or(0);
                st.nics
                    .get(enis.len() + pos)
                    .filter(|n| n.instance_id == b.id || n.instance_id.is_empty())
                    .or_else(|| st.nics.iter().find(|n| n.instance_id == b.id))
            } else {
                st.nic(&b.id)
            };
            let nic = nic.ok_or_else(|| format!("{} not in the reply", b.id))?;
            out.push(BoundNic {
                iface: b.iface.clone(),
                nic,
            });
        }
        Ok(out)
    }

    /// Reads the state and makes the kernel enforce it.
    pub fn converge(&mut self) -> Result<Converged, String> {
        let t0 = Instant::now();
        let st = self.describe()?;
        self.describe_ms = t0.elapsed().as_secs_f64() * 1000.0;
        self.enforce(&st)
    }

    /// Makes the kernel enforce the given state (one transaction), then cuts the
    /// connections it denies.
    pub fn enforce(&mut self, st: &EnforcementState) -> Result<Converged, String> {
        let skipped: BTreeSet<(String, String)> = st
            .skipped
            .iter()
            .map(|(g, r, _)| (g.clone(), r.clone()))
            .collect();
        if skipped != self.last_skipped {
            for (g, r, why) in &st.skipped {
                log(&format!("{g} rule {r} not enforced: {why}"));
            }
            self.last_skipped = skipped;
        }
        let t_render = Instant::now();
        let bound = self.resolve(st)?;
        let plan = render(st, &bound);
        let render_ms = t_render.elapsed().as_secs_f64() * 1000.0;
        let t0 = Instant::now();
        let stats = match self.nft.apply(&plan) {
            Ok(s) => s,
            Err(e) => {
                self.nft.invalidate();
                return Err(e);
            }
        };
        let mut done = Converged {
            revision: st.revision,
            statements: stats.statements,
            full_sync: stats.full_sync,
            conntrack_deleted: 0,
        };
        let nft_ms = t0.elapsed().as_secs_f64() * 1000.0;
        if stats.statements > 0 && self.cfg.conntrack {
            match conntrack::purge(&self.exec, st) {
                Ok(n) => done.conntrack_deleted = n,
                Err(e) => log(&format!("conntrack: {e}")),
            }
        }
        if stats.statements > 0 {
            log(&format!(
                "revision {}: {} statement(s){} in {:.1} ms (describe {:.1} ms, render {:.1} ms), {} connection(s) cut",
                st.revision,
                stats.statements,
                if stats.full_sync { " (full sync)" } else { "" },
                nft_ms,
                self.describe_ms,
                render_ms,
                done.conntrack_deleted
            ));
        }
        self.write_status(&done, nft_ms);
        Ok(done)
    }

    fn write_status(&self, c: &Converged, nft_ms: f64) {
        let Some(path) = &self.cfg.status_file else {
            return;
        };
        let body = json!({
            "Revision": c.revision,
            "Statements": c.statements,
            "FullSync": c.full_sync,
            "ConntrackDeleted": c.conntrack_deleted,
            "NftMs": nft_ms,
            "UnixMs": unix_ms() as u64,
        });
        let tmp = path.with_extension("tmp");
        if std::fs::write(&tmp, body.to_string()).is_ok() {
            let _ = std::fs::rename(&tmp, path);
        }
    }

    /// Converges, then follows the change feed forever (or once).
    pub fn run(&mut self, once: bool) -> Result<(), String> {
        let mut backoff = Duration::from_millis(100);
        loop {
            let rev = match self.converge() {
                Ok(c) => {
                    backoff = Duration::from_millis(100);
                    c.revision
                }
                Err(e) => {
                    log(&e);
                    if once {
                        return Err(e);
                    }
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
            };
            if once {
                return Ok(());
            }
            // Long poll until the revision moves (a lower one means the server's
            // history was reset: converge again as well).
            loop {
                match self.cfg.client.wait_for_change(rev, self.cfg.wait_seconds) {
                    Ok(m) if m == rev => {
                        // Quiet: check that nobody removed or changed our table.
                        if let Ok(true) = self.nft.drifted() {
                            log("the table changed under us: reconciling");
                            self.nft.invalidate();
                            break;
                        }
                        continue;
                    }
                    Ok(_) => break,
                    Err(e) => {
                        log(&format!("WaitForChange: {e}"));
                        std::thread::sleep(backoff);
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                        break;
                    }
                }
            }
        }
    }

    /// Removes the agent's table (decommissioning); other tables stay.
    pub fn cleanup(&mut self) -> Result<bool, String> {
        self.nft.delete_table()
    }
}
