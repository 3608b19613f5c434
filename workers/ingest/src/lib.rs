//! roomcast-ingest: the gateway every streamer publishes to. One public endpoint for every
//! room, over RTMP and RTMPS; it finds the room by a keyed hash of the stream key and relays
//! the session, message by message, to that room's media worker, which checks the key again.
//!
//! ```text
//!  OBS / ffmpeg ──RTMP :1935 / RTMPS :1936 (443 on the Service)──►
//!    server::Gateway::serve      accept, connection caps (roomcast_runtime::listen)
//!      proxy::read_header        optional PROXY v2/v1: the real client address
//!      tls::TlsFiles             optional TLS; certificate and key re-read when they change
//!      connection                roomcast_rtmp::core::RtmpCore until `publish(<stream key>)`
//!        ├─ KeyAttempts          per-address rate limit of publish attempts (key guessing)
//!        └─ routes::Routes       HMAC(routing key, stream key) -> room + backend
//!             ▲ routes::watch_file / routes::watch_configmap (the operator's table)
//!      backend::Backend          rml_rtmp client: connect `live`, publish the same key
//!      relay                     metadata / audio / video with the publisher's timestamps
//!    ──RTMP──► the room's media worker
//!  ops: /metrics /healthz /readyz (roomcast_runtime::ops), metrics::Metrics
//! ```
//!
//! [`app::run`] is the binary: flags in ([`config::IngestArgs`]), the gateway serving until a
//! stop signal, then a drain. `roomcast dev` runs a [`server::Gateway`] in-process on its RTMPS
//! port.

pub mod app;
pub mod backend;
pub mod config;
pub mod connection;
pub mod error;
pub mod metrics;
pub mod proxy;
pub mod routes;
pub mod server;
pub mod tls;

pub use error::{Error, Result};
pub use server::{Gateway, GatewayOptions, ListenerKind};
