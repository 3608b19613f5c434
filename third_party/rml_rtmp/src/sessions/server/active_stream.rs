use super::PublishMode;

pub enum StreamState {
    Created,

    Publishing {
        stream_key: String,
        // roomcast patch: kept as upstream has it; never read (a warning in every build).
        #[allow(dead_code)]
        mode: PublishMode,
    },

    Playing {
        stream_key: String,
    },

    Completed,
}

pub struct ActiveStream {
    pub current_state: StreamState,
}
