//! RTMP in: the sans-I/O protocol core ([`rtmp`]), the stream key check ([`key`]) and the tokio
//! loop of each publisher connection ([`connection`]), which hands the media on to the muxers
//! and the transcoder.

pub mod connection;
pub mod key;
pub mod rtmp;
