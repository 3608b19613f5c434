//! roomcast-media: the worker a streamer publishes to and viewers play from. The folders follow
//! the media's path through the worker:
//!
//! ```text
//!  OBS / ffmpeg / GStreamer
//!        │ RTMP rtmp://HOST:1935/live/<stream key>
//!        ▼
//!  ingest/    connection (tokio loop per publisher) ── rtmp::RtmpCore (sans-I/O, rml_rtmp)
//!        │                                        └── key: authorize (constant-time key check)
//!        │ FLV tags
//!        ▼
//!  mux/       flv::FlvMuxer (codec checks, held until the stream's shape is known)
//!        ├──> passthrough::SourceSegmenter (inline): source rendition, FLV -> ts::TsMuxer
//!        ▼ bounded channel -> blocking feeder thread
//!  transcode/ pipeline::TranscodePipeline (GStreamer: flvdemux -> decode once -> x264 rungs
//!        │     -> mpegtsmux) ── cutter: segments end at the source's keyframes, by the
//!        │     passthrough's rule (mux::boundary): every rendition cuts at the same instants
//!        ▼ mux::fragment::ClosedFragment (from both)
//!  room/      Room (config, keys, live state) ── session::Session: playlist::MediaPlaylist per
//!        │     rendition (DVR window) + segment bytes in memory; registry: every room
//!        │                                   └──> events::MediaEvent (broadcast) ──> recording
//!        ▼
//!  origin/    hls (axum): /<ns>/<room>/hls/index.m3u8, /<rendition>/index.m3u8, /<token>-<seq>.ts
//!        │     Cache-Control, ETag, CORS, X-Origin-Secret; ops: /metrics /healthz /readyz
//!        ▼
//!  CDN / players
//! ```
//!
//! Around the path: [`app::run`] is the binary (flags in, the worker serving until a stop
//! signal out); [`server::MediaServer`] is what every part shares (the room registry, metrics,
//! events, shutdown state); [`listen`] runs the RTMP and HTTP listeners; `recording` feeds the
//! recorder; `status_report` writes live state into the room's status; `config`, `error` and
//! `metrics` are used everywhere.
//!
//! One [`MediaServer`] serves any number of rooms over one RTMP and one HTTP listener; rooms are
//! told apart by stream key (RTMP) and path prefix (HTTP). In Kubernetes it serves one room, from
//! the `WorkerConfig` the operator writes.

pub mod app;
pub mod config;
pub mod error;
pub mod events;
pub mod ingest;
pub mod limits;
pub mod listen;
pub mod metrics;
pub mod mux;
pub mod origin;
pub mod recording;
pub mod room;
pub mod server;
pub mod status_report;
pub mod transcode;

pub use config::{MediaOptions, RoomConfig};
pub use error::{Error, Result};
pub use events::MediaEvent;
pub use server::MediaServer;
