//! Log setup, the same for every binary: level from `RUST_LOG` (default `info`), one line per
//! event on stderr, JSON for collectors or compact lines for people, chosen with
//! `--log-format json|pretty` (env `ROOMCAST_LOG_FORMAT`).
//!
//! Library crates only emit `tracing` events and spans (one span per room and per session);
//! this module is the one place a subscriber is installed.

use std::io::IsTerminal;

use clap::ValueEnum;
use tracing_subscriber::{EnvFilter, fmt, prelude::*};

/// Filter directives applied on top of `RUST_LOG`: socket.io and WebSocket packet logs below
/// `info` carry chat tokens, so no `RUST_LOG` can turn them on.
pub const SECRET_SAFE_LOG_DIRECTIVES: [&str; 4] = [
    "socketioxide=info",
    "engineioxide=info",
    "tungstenite=info",
    "tokio_tungstenite=info",
];

/// Level when `RUST_LOG` is unset or cannot be parsed.
pub const DEFAULT_LOG_LEVEL: &str = "info";

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line, for log collectors.
    Json,
    /// Compact human-readable lines.
    Pretty,
}

/// The log flags every roomcast binary takes (flatten into the binary's `clap` parser).
#[derive(clap::Args, Clone, Debug, Default, PartialEq, Eq)]
pub struct LogArgs {
    /// Log format: `json` (one object per line, for collectors) or `pretty` (for people).
    /// Default: `json` for the operator, `pretty` for the workers and the CLI.
    #[arg(long, env = "ROOMCAST_LOG_FORMAT", value_enum, global = true)]
    pub log_format: Option<LogFormat>,
    /// Deprecated: the same as `--log-format json`. Kept for one release.
    #[arg(long, env = "ROOMCAST_LOG_JSON", hide = true, global = true)]
    pub log_json: bool,
}

impl LogArgs {
    /// The format in effect: the explicit flag, else the deprecated `--log-json`, else the
    /// binary's own default.
    pub fn format(&self, default: LogFormat) -> LogFormat {
        match (self.log_format, self.log_json) {
            (Some(format), _) => format,
            (None, true) => LogFormat::Json,
            (None, false) => default,
        }
    }
}

/// The filter: `RUST_LOG` (or [`DEFAULT_LOG_LEVEL`]) with the secret-safe directives on top.
pub fn filter() -> EnvFilter {
    let mut filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_LOG_LEVEL));
    for directive in SECRET_SAFE_LOG_DIRECTIVES {
        if let Ok(d) = directive.parse() {
            filter = filter.add_directive(d);
        }
    }
    filter
}

/// Install the process-wide subscriber. Call once, first thing in `main`. A second call (a
/// test that already installed one) is ignored.
pub fn init(args: &LogArgs, default: LogFormat) {
    let registry = tracing_subscriber::registry().with(filter());
    let installed = match args.format(default) {
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .json()
                    .with_current_span(true)
                    .with_span_list(false)
                    .with_writer(std::io::stderr),
            )
            .try_init(),
        LogFormat::Pretty => registry
            .with(
                fmt::layer()
                    .compact()
                    .with_ansi(std::io::stderr().is_terminal())
                    .with_writer(std::io::stderr),
            )
            .try_init(),
    };
    if args.log_json && args.log_format.is_none() {
        tracing::warn!("--log-json (ROOMCAST_LOG_JSON) is deprecated; use --log-format json");
    }
    if installed.is_err() {
        tracing::debug!("a tracing subscriber was already installed");
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        log: LogArgs,
    }

    fn parse(args: &[&str]) -> LogArgs {
        Cli::try_parse_from(std::iter::once("bin").chain(args.iter().copied()))
            .expect("parse")
            .log
    }

    #[test]
    fn format_comes_from_the_flag_then_the_old_flag_then_the_binary_default() {
        assert_eq!(parse(&[]).format(LogFormat::Json), LogFormat::Json);
        assert_eq!(parse(&[]).format(LogFormat::Pretty), LogFormat::Pretty);
        let json = parse(&["--log-format", "json"]);
        assert_eq!(json.format(LogFormat::Pretty), LogFormat::Json);
        let pretty = parse(&["--log-format", "pretty"]);
        assert_eq!(pretty.format(LogFormat::Json), LogFormat::Pretty);
        assert_eq!(
            parse(&["--log-json"]).format(LogFormat::Pretty),
            LogFormat::Json,
            "the deprecated flag keeps working"
        );
    }

    #[test]
    fn unknown_formats_are_refused_with_the_choices() {
        let err = Cli::try_parse_from(["bin", "--log-format", "yaml"]).expect_err("refused");
        let text = err.to_string();
        assert!(text.contains("json") && text.contains("pretty"), "{text}");
    }

    #[test]
    fn token_carrying_targets_stay_at_info_whatever_rust_log_says() {
        let text = filter().to_string();
        for directive in SECRET_SAFE_LOG_DIRECTIVES {
            assert!(text.contains(directive), "{text}");
        }
    }
}
