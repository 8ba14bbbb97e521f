//! `palisade agent`: enforces the security groups of a host's interfaces with nftables.
//!
//! The agent runs as root on a host and is told which local interfaces carry which
//! NICs (`--bind eth0=eni-...` or `--bind eth0=i-...`). It reads the rules of their
//! groups and the member addresses of every group those rules name from the server
//! (`DescribeEnforcementState`, signed like every API call), renders one nftables table
//! of its own (see [`render`] for the layout), applies each change as one atomic
//! `nft -f` transaction holding only what changed, deletes the conntrack entries the
//! new state denies, and follows the change feed with the `WaitForChange` long poll.
//!
//! With `--netns NS` every `nft` and `conntrack` call runs inside that network
//! namespace (`ip netns exec NS ...`) while the agent itself, and its API calls, stay
//! where it runs: one agent per protected namespace (the tests use this).
//!
//! Restarts reconcile: the first transaction flushes and refills the chains and sets
//! of the agent's table and deletes the ones it no longer wants, in one transaction;
//! other tables are never touched. `--cleanup` deletes the agent's table.

pub mod agent;
pub mod api;
pub mod conntrack;
pub mod nft;
pub mod render;
pub mod state;
pub mod testkit;

use std::path::PathBuf;

pub use agent::{Agent, Binding, Config, Converged};
pub use api::{ApiClient, CallError};
pub use palisade_engine as engine;
pub use state::EnforcementState;

/// Command-line options of `palisade agent`.
#[derive(clap::Args, Clone, Debug)]
pub struct AgentArgs {
    /// Server URL.
    #[arg(
        long,
        env = "PALISADE_ENDPOINT",
        default_value = "http://127.0.0.1:8080"
    )]
    pub endpoint: String,
    #[arg(long, env = "PALISADE_ACCESS_KEY_ID")]
    pub access_key_id: Option<String>,
    #[arg(long, env = "PALISADE_ACCESS_KEY_SECRET")]
    pub access_key_secret: Option<String>,
    /// Read the key from a credentials file (`AccessKeyId=` and `AccessKeySecret=` lines).
    #[arg(long, env = "PALISADE_CREDENTIALS")]
    pub credentials: Option<PathBuf>,
    #[arg(long, env = "PALISADE_REGION", default_value = "cn-hangzhou")]
    pub region: String,
    /// A local interface and the NIC it carries: IFACE=eni-... or IFACE=i-... (an
    /// instance's primary interface). Repeat for several.
    #[arg(
        long = "bind",
        value_name = "IFACE=ID",
        required_unless_present = "cleanup"
    )]
    pub bind: Vec<Binding>,
    /// Run nft and conntrack inside this network namespace (`ip netns exec NS`).
    #[arg(long)]
    pub netns: Option<String>,
    /// Name of the agent's nftables table (family inet).
    #[arg(long, default_value = "palisade")]
    pub table: String,
    /// Long-poll duration of WaitForChange, 1..30 seconds.
    #[arg(long, default_value_t = 25, value_parser = clap::value_parser!(u32).range(1..=30))]
    pub wait_seconds: u32,
    /// Write the last enforced revision here (JSON) after every convergence.
    #[arg(long)]
    pub status_file: Option<PathBuf>,
    /// Converge once and exit.
    #[arg(long)]
    pub once: bool,
    /// Delete the agent's table and exit.
    #[arg(long)]
    pub cleanup: bool,
    /// Do not delete conntrack entries of connections a change denies.
    #[arg(long)]
    pub no_conntrack: bool,
}

fn credentials(args: &AgentArgs) -> Result<(String, String), String> {
    api::load_credentials(
        args.access_key_id.as_deref(),
        args.access_key_secret.as_deref(),
        args.credentials.as_deref(),
    )
}

impl AgentArgs {
    pub fn config(&self) -> Result<Config, String> {
        for (i, b) in self.bind.iter().enumerate() {
            if self.bind[..i].iter().any(|x| x.iface == b.iface) {
                return Err(format!("interface {} is bound twice", b.iface));
            }
        }
        let (ak, secret) = if self.cleanup && self.bind.is_empty() {
            credentials(self).unwrap_or_default()
        } else {
            credentials(self)?
        };
        Ok(Config {
            client: ApiClient::new(&self.endpoint, &ak, &secret, &self.region),
            bindings: self.bind.clone(),
            netns: self.netns.clone(),
            table: self.table.clone(),
            wait_seconds: self.wait_seconds,
            status_file: self.status_file.clone(),
            conntrack: !self.no_conntrack,
        })
    }
}

/// Runs `palisade agent`; the process exit code.
pub fn run(args: AgentArgs) -> i32 {
    let cfg = match args.config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("palisade agent: {e}");
            return 2;
        }
    };
    let mut agent = Agent::new(cfg);
    if args.cleanup {
        return match agent.cleanup() {
            Ok(_) => 0,
            Err(e) => {
                eprintln!("palisade agent: {e}");
                1
            }
        };
    }
    match agent.run(args.once) {
        Ok(()) => 0,
        Err(_) => 1,
    }
}
