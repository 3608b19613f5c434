use std::{net::SocketAddr, path::PathBuf};

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use roomcast::dev::{self, DevOptions};
use tracing_subscriber::{EnvFilter, fmt, prelude::*};

/// roomcast: live-streaming rooms, on Kubernetes or on this machine.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
#[expect(clippy::large_enum_variant, reason = "parsed once at start")]
enum Command {
    /// Run rooms on this machine without Kubernetes: RTMP ingest, HLS, chat and the watch page.
    Dev {
        /// StreamRoom YAML (one or more documents). Without it, one room `lobby`.
        #[arg(short = 'f', long = "filename", env = "ROOMCAST_ROOMS")]
        rooms: Option<PathBuf>,
        /// Keys, chat history and recordings.
        #[arg(long, env = "ROOMCAST_DATA_DIR", default_value = dev::DEFAULT_DATA_DIR)]
        data_dir: PathBuf,
        /// HTTP address of the watch page, HLS and chat.
        #[arg(long, env = "ROOMCAST_HTTP_ADDR", default_value = dev::DEFAULT_HTTP_ADDR)]
        http_addr: SocketAddr,
        /// RTMP address streamers publish to.
        #[arg(long, env = "ROOMCAST_RTMP_ADDR", default_value = dev::DEFAULT_RTMP_ADDR)]
        rtmp_addr: SocketAddr,
        /// MongoDB URI for chat history instead of the embedded store.
        #[arg(long, env = "ROOMCAST_MONGODB_URI")]
        mongodb_uri: Option<String>,
        /// Redis URL for the chat adapter.
        #[arg(long, env = "ROOMCAST_REDIS_URL")]
        redis_url: Option<String>,
        /// x264 speed preset of encoded renditions (slower: better quality, more CPU).
        #[arg(long, env = "ROOMCAST_SPEED_PRESET", default_value = roomcast_media::config::DEFAULT_SPEED_PRESET)]
        speed_preset: String,
        /// Do not record sessions (no past broadcasts).
        #[arg(long, env = "ROOMCAST_NO_RECORDING")]
        no_recording: bool,
        /// Record into this S3 bucket instead of the data directory (credentials from the
        /// usual AWS environment variables or profile).
        #[arg(long, env = "ROOMCAST_S3_BUCKET")]
        s3_bucket: Option<String>,
        /// S3-compatible endpoint (MinIO, Ceph, R2…); empty for AWS.
        #[arg(
            long,
            env = "ROOMCAST_S3_ENDPOINT",
            default_value = "",
            requires = "s3_bucket"
        )]
        s3_endpoint: String,
        #[arg(
            long,
            env = "ROOMCAST_S3_REGION",
            default_value = "",
            requires = "s3_bucket"
        )]
        s3_region: String,
        /// Key prefix (empty or ending in `/`).
        #[arg(
            long,
            env = "ROOMCAST_S3_PREFIX",
            default_value = "",
            requires = "s3_bucket"
        )]
        s3_prefix: String,
    },
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
    match cli.command {
        Command::Dev {
            rooms,
            data_dir,
            http_addr,
            rtmp_addr,
            mongodb_uri,
            redis_url,
            speed_preset,
            no_recording,
            s3_bucket,
            s3_endpoint,
            s3_region,
            s3_prefix,
        } => {
            init_logs();
            let options = DevOptions {
                rooms_file: rooms,
                data_dir,
                http_addr,
                rtmp_addr,
                mongodb_uri,
                redis_url,
                speed_preset,
                record: !no_recording,
                s3: s3_bucket.map(|bucket| roomcast::rooms::DevS3 {
                    bucket,
                    endpoint: s3_endpoint,
                    region: s3_region,
                    prefix: s3_prefix,
                }),
            };
            dev::run(options, roomcast_runtime::shutdown_signal()).await?;
            Ok(())
        }
        Command::Render { file, config } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            print!(
                "{}",
                roomcast_operator::render::render(&text, &config.normalized()?)?
            );
            Ok(())
        }
    }
}

fn init_logs() {
    let mut filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // socket.io packet logs below info carry chat tokens.
    for directive in roomcast_chat::SECRET_SAFE_LOG_DIRECTIVES {
        if let Ok(d) = directive.parse() {
            filter = filter.add_directive(d);
        }
    }
    tracing_subscriber::registry()
        .with(filter)
        .with(fmt::layer().compact().with_writer(std::io::stderr))
        .init();
}
