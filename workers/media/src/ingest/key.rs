//! The key check: what a publisher presents as its stream key ([`PresentedKey`], redacted) and
//! whether the publish may go ahead ([`authorize`]). The keys themselves are
//! [`roomcast_runtime::Secret`]s, compared in constant time
//! ([`crate::room::registry::RoomRegistry::by_key`]).

use std::sync::Arc;

pub use roomcast_rtmp::key::PresentedKey;

use crate::config::RTMP_APP;
use crate::error::RefuseReason;
use crate::room::Room;
use crate::server::MediaServer;

/// Decide whether a publish may go ahead and for which room: not while the worker shuts down,
/// only on the `live` application, only with a room's current key.
pub fn authorize(
    server: &MediaServer,
    app: &str,
    key: &PresentedKey,
) -> Result<Arc<Room>, RefuseReason> {
    if server.is_shutting_down() {
        return Err(RefuseReason::ShuttingDown);
    }
    if app.trim_end_matches('/') != RTMP_APP {
        return Err(RefuseReason::UnknownApp);
    }
    server
        .rooms
        .by_key(key.as_bytes())
        .ok_or(RefuseReason::WrongKey)
}
