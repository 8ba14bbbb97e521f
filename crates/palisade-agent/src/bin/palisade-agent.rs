//! Stand-alone `palisade-agent` (the same as `palisade agent`), used by this crate's
//! tests and benchmark.

use clap::Parser;

#[derive(Parser)]
#[command(
    name = "palisade-agent",
    about = "Enforce security groups with nftables"
)]
struct Cli {
    #[command(flatten)]
    args: palisade_agent::AgentArgs,
}

fn main() {
    std::process::exit(palisade_agent::run(Cli::parse().args));
}
