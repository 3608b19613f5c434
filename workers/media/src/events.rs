//! Session and segment events, for the recorder and anything else that follows sessions.
//! Delivered on a `tokio::sync::broadcast` channel from [`crate::MediaServer::subscribe`]; a
//! subscriber that lags by more than [`EVENT_CAPACITY`] events misses some and is told so by the
//! channel.
//!
//! The type is the recorder's input type itself ([`roomcast_recorder::RecordEvent`]), so handing
//! events to the recorder is a move, not a field-for-field copy into a twin enum.

pub use roomcast_recorder::RecordEvent as MediaEvent;

pub const EVENT_CAPACITY: usize = 4096;
