//! `dothi bench`: measures the hub on this machine and prints each figure.

use std::process::ExitCode;

use clap::Args;

#[derive(Args, Clone, Debug)]
pub struct BenchArgs {
    /// Which benchmark: hub.
    #[arg(default_value = "hub")]
    pub which: String,
}

pub async fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("benchmark {:?} is not available yet", args.which)
}
