//! `roomcast`: the command line. Everything lives in the library; this parses the flags, sets
//! up logging and runs the subcommand.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use roomcast::dev::{self, DevOptions};
use roomcast_runtime::telemetry::{self, LogArgs, LogFormat};

/// roomcast: live-streaming rooms, on Kubernetes or on this machine.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    #[command(flatten)]
    log: LogArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
#[allow(
    clippy::large_enum_variant,
    reason = "parsed once at start; which variant is larger changes as flags are added"
)]
enum Command {
    /// Run rooms on this machine without Kubernetes: RTMP ingest, HLS, chat and the watch page.
    Dev(DevOptions),
    /// Print the Kubernetes objects the operator would apply for a StreamRoom file.
    Render {
        #[arg(short = 'f', long = "filename")]
        file: PathBuf,
        #[command(flatten)]
        config: roomcast_operator::config::OperatorConfig,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    telemetry::init(&cli.log, LogFormat::Pretty);
    match cli.command {
        Command::Dev(options) => Ok(dev::run(options, roomcast_runtime::shutdown_signal()).await?),
        Command::Render { file, config } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let config = config.normalized()?;
            print!("{}", roomcast_operator::render::render(&text, &config)?);
            Ok(())
        }
    }
}
