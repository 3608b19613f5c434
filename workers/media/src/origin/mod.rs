//! The HTTP side: what players and CDNs fetch ([`hls`]: playlists and segments of every room,
//! with CDN-friendly headers) and what Prometheus and the kubelet read ([`ops`]). Each is a
//! router; the caller composes the HTTP port from them and whatever else it serves there.

pub mod hls;
pub mod low_latency;
pub mod ops;
