//! The key check: what a publisher presents as its stream key ([`PresentedKey`], redacted) and
//! whether the publish may go ahead ([`authorize`]). The keys themselves are
//! [`roomcast_runtime::Secret`]s, compared in constant time
//! ([`crate::room::registry::RoomRegistry::by_key`]).

use std::fmt;
use std::sync::Arc;

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

/// What a publisher put in the stream-name slot of the RTMP URL. It may be a real key, so it is
/// redacted too; logs show only its length.
#[derive(Clone)]
pub struct PresentedKey(String);

impl PresentedKey {
    pub fn new(value: impl Into<String>) -> Self {
        // OBS and some encoders append query parameters (`key?foo=bar`); they are not part of
        // the key.
        let value = value.into();
        let key = value.split('?').next().unwrap_or_default().to_owned();
        PresentedKey(key)
    }

    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl fmt::Debug for PresentedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PresentedKey([redacted, {} bytes])", self.0.len())
    }
}

impl fmt::Display for PresentedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[redacted, {} bytes]", self.0.len())
    }
}

#[cfg(test)]
mod tests {
    use roomcast_runtime::Secret;

    use super::*;

    #[test]
    fn matching_key_is_accepted() {
        let key = Secret::new("s3cr3t-key");
        assert!(key.matches(PresentedKey::new("s3cr3t-key").as_bytes()));
    }

    #[test]
    fn query_parameters_are_not_part_of_the_key() {
        let key = Secret::new("abc");
        assert!(key.matches(PresentedKey::new("abc?obs=1").as_bytes()));
        assert!(!key.matches(PresentedKey::new("abcd?obs=1").as_bytes()));
    }

    #[test]
    fn presented_keys_never_print() {
        let presented = PresentedKey::new("topsecretvalue");
        let printed = format!("{presented} {presented:?}");
        assert!(!printed.contains("topsecret"), "{printed}");
        assert!(printed.contains("14 bytes"), "{printed}");
    }
}
