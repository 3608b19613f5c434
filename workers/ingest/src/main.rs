//! `roomcast-ingest`: the ingest gateway binary. Everything lives in the library
//! ([`roomcast_ingest::app::run`]); this parses the flags and sets up logging.

use clap::Parser;
use roomcast_runtime::telemetry::{self, LogArgs, LogFormat};

/// One RTMP/RTMPS endpoint for every room: routes each stream key to its room's media worker.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    #[command(flatten)]
    log: LogArgs,
    #[command(flatten)]
    ingest: roomcast_ingest::config::IngestArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    telemetry::init(&cli.log, LogFormat::Pretty);
    roomcast_ingest::app::run(cli.ingest, roomcast_runtime::shutdown_signal()).await?;
    Ok(())
}
