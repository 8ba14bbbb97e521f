//! `palisade`: the server, the built-in client, and account administration.

mod admin;
mod client;

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use palisade_api::server::{serve, App};
use palisade_api::service::{Config, DuplicateRule, DEFAULT_RATE_LIMIT, DEFAULT_REGIONS};
use palisade_model::DEFAULT_RULE_QUOTA;

#[derive(Parser)]
#[command(
    name = "palisade",
    version,
    about = "An Alibaba Cloud ECS security-group service"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Clone)]
struct DataDir {
    /// Where the database lives.
    #[arg(long, env = "PALISADE_DATA_DIR", default_value = "palisade-data")]
    data_dir: PathBuf,
    /// PostgreSQL instead of the embedded SQLite, e.g. postgres://user@host:5432/palisade.
    #[arg(long, env = "PALISADE_DATABASE_URL")]
    database_url: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the ECS API server.
    Serve {
        #[arg(long, env = "PALISADE_LISTEN", default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        #[command(flatten)]
        data: DataDir,
        /// Rules per security group, ingress and egress together.
        #[arg(long, env = "PALISADE_RULE_QUOTA", default_value_t = DEFAULT_RULE_QUOTA)]
        rule_quota: usize,
        /// Security groups per account and region.
        #[arg(long, env = "PALISADE_GROUP_QUOTA", default_value_t = 1000)]
        group_quota: usize,
        /// `fail`: a duplicate Authorize is an error (the seed). `ignore`: success, nothing added (today's cloud).
        #[arg(long, env = "PALISADE_DUPLICATE_RULE", default_value = "fail", value_parser = ["fail", "ignore"])]
        duplicate_rule: String,
        /// Comma-separated region ids that RegionId may name.
        #[arg(long, env = "PALISADE_REGIONS", value_delimiter = ',')]
        regions: Option<Vec<String>>,
        /// Requests per second per AccessKey (bursts of twice that); 0 = unlimited.
        #[arg(long, env = "PALISADE_RATE_LIMIT", default_value_t = DEFAULT_RATE_LIMIT)]
        rate_limit: u32,
        /// `HostId` in error replies.
        #[arg(long, env = "PALISADE_HOST_ID", default_value = "ecs.aliyuncs.com")]
        host_id: String,
    },
    /// Sign and send one API call, print the reply.
    Call(client::CallArgs),
    /// Ask whether a packet may reach or leave an interface, and which rule decides.
    Check(client::CheckArgs),
    /// Enforce the security groups of local interfaces with nftables (runs as root).
    Agent(palisade_agent::AgentArgs),
    /// Manage accounts.
    Account {
        #[command(subcommand)]
        command: admin::AccountCommand,
    },
    /// Manage AccessKey pairs.
    Key {
        #[command(subcommand)]
        command: admin::KeyCommand,
    },
}

/// mimalloc: per-thread free lists without the arena locks glibc takes when several threads
/// (tokio workers, the SQLite writer) allocate and free the same request buffers, and it
/// returns freed memory to the system. Transparent huge pages are off (`no_thp`): with them
/// every thread heap grew the resident set by 2 MiB steps.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Serve {
            listen,
            data,
            rule_quota,
            group_quota,
            duplicate_rule,
            regions,
            rate_limit,
            host_id,
        } => {
            let cfg = Config {
                regions: regions
                    .filter(|r| !r.is_empty())
                    .unwrap_or_else(|| DEFAULT_REGIONS.iter().map(|s| s.to_string()).collect()),
                rule_quota,
                group_quota,
                duplicate_rule: if duplicate_rule == "ignore" {
                    DuplicateRule::Ignore
                } else {
                    DuplicateRule::Fail
                },
                host_id,
                rate_limit,
            };
            run_server(listen, data, cfg)
        }
        Command::Call(args) => client::run(args),
        Command::Check(args) => client::check(args),
        Command::Agent(args) => palisade_agent::run(args),
        Command::Account { command } => admin::account(command),
        Command::Key { command } => admin::key(command),
    };
    std::process::exit(code);
}

fn run_server(listen: SocketAddr, data: DataDir, cfg: Config) -> i32 {
    let data_dir = data.data_dir;
    let store = match admin::open_store(&data_dir, data.database_url.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("palisade: {e}");
            return 1;
        }
    };
    if let Err(e) = admin::bootstrap(&*store, &data_dir) {
        eprintln!("palisade: cannot create the default account: {e}");
        return 1;
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("palisade: {e}");
            return 1;
        }
    };
    rt.block_on(async move {
        let listener = match tokio::net::TcpListener::bind(listen).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("palisade: cannot listen on {listen}: {e}");
                return 1;
            }
        };
        let addr = listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
        // Tests and scripts wait for this line (and read the port from it).
        println!("palisade listening on http://{addr}");
        use std::io::Write;
        let _ = std::io::stdout().flush();
        let app = App::new(store, cfg);
        tokio::select! {
            r = serve(app, listener) => { if let Err(e) = r { eprintln!("palisade: {e}"); return 1; } 0 }
            _ = tokio::signal::ctrl_c() => 0,
        }
    })
}
