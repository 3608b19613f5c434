/// The configuration options that govern how a RTMP server session should operate
#[derive(Clone)]
pub struct ServerSessionConfig {
    pub fms_version: String,
    pub chunk_size: u32,
    pub peer_bandwidth: u32,
    pub window_ack_size: u32,
    pub send_on_bw_done_message_on_start: bool,
    /// Largest RTMP message the peer may send (roomcast patch); also bounds the bytes held for
    /// unfinished messages. Defaults to the protocol's limit (16 MiB - 1).
    pub max_message_length: u32,
    /// Most chunk streams the peer may use (roomcast patch).
    pub max_chunk_streams: usize,
}

impl ServerSessionConfig {
    /// Creates a new server session config with overridable defaults
    pub fn new() -> ServerSessionConfig {
        ServerSessionConfig {
            fms_version: "FMS/3,0,1,1233".to_string(),
            peer_bandwidth: 2_500_000,
            window_ack_size: 1_073_741_824,
            chunk_size: 4096,
            send_on_bw_done_message_on_start: true,
            max_message_length: ::chunk_io::DEFAULT_MAX_MESSAGE_LENGTH,
            max_chunk_streams: ::chunk_io::DEFAULT_MAX_CHUNK_STREAMS,
        }
    }
}
