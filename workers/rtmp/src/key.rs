//! What a publisher puts in the stream-name slot of the RTMP URL ([`PresentedKey`]). It may be a
//! real stream key, so it never prints: logs show only its length.

use std::fmt;

/// Longest stream name a listener looks at. Roomcast's keys are 32 to 64 characters and OBS
/// appends a short query; a name longer than this is no key of ours, and hashing or comparing
/// megabytes of it (the RTMP message limit allows that) would only cost CPU.
pub const MAX_STREAM_NAME_BYTES: usize = 1024;

/// A presented stream key. Comparison is the caller's job (constant time, see
/// `roomcast_runtime::Secret::matches`).
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

    /// The key itself, to hash or to present again upstream. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
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
        assert_eq!(PresentedKey::new("abc?obs=1").expose(), "abc");
    }

    #[test]
    fn presented_keys_never_print() {
        let presented = PresentedKey::new("topsecretvalue");
        let printed = format!("{presented} {presented:?}");
        assert!(!printed.contains("topsecret"), "{printed}");
        assert!(printed.contains("14 bytes"), "{printed}");
    }
}
