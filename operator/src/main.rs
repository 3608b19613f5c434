//! `roomcast-operator`: parse the command line and hand it to the library.

use clap::Parser;
use roomcast_operator::cli::{self, Cli};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    cli::run(Cli::parse()).await?;
    Ok(())
}
