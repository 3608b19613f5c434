//! roomcast-media: the worker a streamer publishes to and viewers play from.
//!
//! ```text
//!  OBS / ffmpeg / GStreamer
//!        │ RTMP rtmp://HOST:1935/live/<stream key>
//!        ▼
//!  ingest (tokio loop) ── rtmp::RtmpCore (sans-I/O, rml_rtmp) ── key check (constant time)
//!        │ FLV tags (flv::FlvMuxer: codec checks, held until the stream's shape is known)
//!        ├──> passthrough::SourceSegmenter (inline): source rendition, FLV -> ts::TsMuxer
//!        ▼ bounded channel -> blocking feeder thread
//!  pipeline::TranscodePipeline (GStreamer: flvdemux -> decode once -> x264 rungs -> mpegtsmux)
//!        │   both cut on the source's keyframes by boundary::Boundaries: same instants everywhere
//!        ▼ fragment closed
//!  session::Session: playlist::MediaPlaylist per rendition (DVR window) + segment bytes in memory
//!        │                                   └──> events::MediaEvent (recorder seam, broadcast)
//!        ▼
//!  http (axum): /<ns>/<room>/hls/index.m3u8, /<rendition>/index.m3u8, /<rendition>/<seq>.ts
//!        │ Cache-Control, ETag, CORS, X-Origin-Secret
//!        ▼
//!  CDN / players
//! ```
//!
//! One [`MediaServer`] serves any number of rooms over one RTMP and one HTTP listener; rooms are
//! told apart by stream key (RTMP) and path prefix (HTTP). In Kubernetes it serves one room, from
//! the `WorkerConfig` the operator writes.

pub mod boundary;
pub mod codec;
pub mod config;
pub mod error;
pub mod events;
pub mod flv;
pub mod fragment;
pub mod http;
pub mod ingest;
pub mod key;
pub mod listen;
pub mod metrics;
pub mod passthrough;
pub mod pipeline;
pub mod playlist;
pub mod recording;
pub mod registry;
pub mod rtmp;
pub mod server;
pub mod session;
pub mod status;
pub mod ts;

pub use config::RoomConfig;
pub use error::{Error, RefuseReason, Result};
pub use events::MediaEvent;
pub use server::{MediaServer, ServerOptions};
