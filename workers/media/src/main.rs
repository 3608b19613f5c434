//! `roomcast-media`: the media worker binary. Everything lives in the library
//! ([`roomcast_media::app::run`]); this parses the flags and sets up logging.

use clap::Parser;
use roomcast_runtime::telemetry::{self, LogArgs, LogFormat};

/// RTMP ingest -> GStreamer ABR transcode -> HLS origin for one or more rooms.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    #[command(flatten)]
    log: LogArgs,
    #[command(flatten)]
    worker: roomcast_media::app::WorkerArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    telemetry::init(&cli.log, LogFormat::Pretty);
    roomcast_media::app::run(cli.worker, roomcast_runtime::shutdown_signal()).await?;
    Ok(())
}
