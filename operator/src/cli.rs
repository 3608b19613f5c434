//! The `roomcast-operator` command line: `run` (the controller) and `render` (what it would
//! apply for a room file). `main.rs` only parses it and calls [`run`].

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use roomcast_runtime::telemetry::{self, LogArgs, LogFormat};

use crate::{
    Error, Result,
    config::{OperatorConfig, RunConfig},
    render,
};

/// roomcast operator: reconciles StreamRoom resources into running rooms.
#[derive(Parser, Debug)]
#[command(name = "roomcast-operator", version, about)]
pub struct Cli {
    #[command(flatten)]
    pub log: LogArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the controller against the cluster of the current kubeconfig or service account.
    Run {
        #[command(flatten)]
        run: RunConfig,
        #[command(flatten)]
        config: OperatorConfig,
    },
    /// Print the objects the operator would apply for the rooms in a file (`-` for stdin).
    Render {
        /// StreamRoom YAML file, one or more documents.
        #[arg(short = 'f', long = "filename")]
        file: PathBuf,
        #[command(flatten)]
        config: OperatorConfig,
    },
}

/// Run one parsed command line.
pub async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Render { file, config } => {
            print!(
                "{}",
                render::render(&read_rooms(&file)?, &config.normalized()?)?
            );
            Ok(())
        }
        Command::Run { run, config } => {
            // The operator logs for collectors by default; `render` prints YAML only.
            telemetry::init(&cli.log, LogFormat::Json);
            crate::run::run(run.normalized(), config.normalized()?).await
        }
    }
}

/// The room file, or stdin for `-`.
fn read_rooms(file: &PathBuf) -> Result<String> {
    let read = if file.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin())
    } else {
        std::fs::read_to_string(file)
    };
    read.map_err(|source| Error::Io {
        what: format!("cannot read {}", file.display()),
        source,
    })
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn log_format_is_global_and_json_unless_asked() {
        let parse = |args: &[&str]| {
            Cli::try_parse_from(std::iter::once("roomcast-operator").chain(args.iter().copied()))
                .expect("parses")
        };
        let cli = parse(&["render", "-f", "room.yaml"]);
        assert!(matches!(cli.command, Command::Render { .. }));
        if std::env::var_os("ROOMCAST_LOG_FORMAT").is_none() {
            assert_eq!(cli.log.format(LogFormat::Json), LogFormat::Json);
        }
        let cli = parse(&["run", "--log-format", "pretty"]);
        assert_eq!(cli.log.format(LogFormat::Json), LogFormat::Pretty);
        let cli = parse(&["--log-format", "pretty", "render", "-f", "-"]);
        assert_eq!(cli.log.format(LogFormat::Json), LogFormat::Pretty);
    }
}
