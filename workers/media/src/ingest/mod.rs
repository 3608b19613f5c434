//! RTMP in: the sans-I/O protocol core ([`rtmp`]), the stream key check ([`key`]) and the tokio
//! loop of each publisher connection ([`connection`]), which hands the media on to the muxers
//! and the transcoder.

pub mod connection;
pub mod key;
/// The shared sans-I/O core (one copy for every RTMP listener, in `roomcast-rtmp`).
pub use roomcast_rtmp::core as rtmp;
