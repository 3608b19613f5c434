//! What a publisher presents as its stream key. The keys themselves are
//! [`roomcast_runtime::Secret`]s, compared in constant time (see
//! [`crate::registry::RoomRegistry::by_key`]).

use std::fmt;

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
