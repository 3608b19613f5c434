//! `roomcast-chat`: serve the one room named by the worker config, or mint a test token.
//! Everything but flag parsing lives in [`roomcast_chat::app`].

use clap::{Parser, Subcommand};
use roomcast_chat::app::{self, MintArgs, ServeArgs};
use roomcast_runtime::telemetry::{self, LogArgs, LogFormat};

#[derive(Parser)]
#[command(
    name = "roomcast-chat",
    version,
    about = "A StreamRoom's socket.io chat"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
    #[command(flatten)]
    log: LogArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the room (the default).
    Serve,
    /// Print a chat token signed with a room's key, for testing.
    MintToken(MintArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::MintToken(args)) => println!("{}", app::mint(&args)?.expose()),
        Some(Command::Serve) | None => {
            telemetry::init(&cli.log, LogFormat::Pretty);
            app::runtime(&cli.serve)?.block_on(app::serve(cli.serve))?;
        }
    }
    Ok(())
}
