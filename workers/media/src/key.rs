//! Secrets that must never reach the logs, and the constant-time stream key check.

use std::fmt;
use std::path::Path;

use subtle::ConstantTimeEq;

use crate::error::{Error, Result};

/// A secret string (stream key, CDN origin secret). `Debug` and `Display` print
/// `[redacted]`; the only way to compare it is [`Secret::matches`], in constant time.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// Read a secret from a mounted file, trimming surrounding whitespace (Kubernetes
    /// Secrets written by hand often end with a newline).
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_owned(),
            source,
        })?;
        Ok(Secret(text.trim().to_owned()))
    }

    /// Constant-time comparison with what a client presented. An empty secret matches nothing.
    pub fn matches(&self, presented: &[u8]) -> bool {
        let own = self.0.as_bytes();
        if own.is_empty() {
            return false;
        }
        // ct_eq on slices of different lengths returns false without comparing contents; the
        // length of a key is not the secret here.
        bool::from(own.ct_eq(presented))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The raw value, for callers that must hand it to a client (tests, `roomcast dev`).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
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
    use super::*;

    #[test]
    fn matching_key_is_accepted() {
        let key = Secret::new("s3cr3t-key");
        assert!(key.matches(PresentedKey::new("s3cr3t-key").as_bytes()));
    }

    #[test]
    fn wrong_prefix_and_longer_keys_are_refused() {
        let key = Secret::new("s3cr3t-key");
        for wrong in ["s3cr3t-kez", "s3cr3t-ke", "s3cr3t-key2", "", "S3CR3T-KEY"] {
            assert!(!key.matches(wrong.as_bytes()), "{wrong:?} must not match");
        }
    }

    #[test]
    fn empty_secret_matches_nothing() {
        assert!(!Secret::new("").matches(b""));
    }

    #[test]
    fn query_parameters_are_not_part_of_the_key() {
        let key = Secret::new("abc");
        assert!(key.matches(PresentedKey::new("abc?obs=1").as_bytes()));
    }

    #[test]
    fn secrets_never_print() {
        let key = Secret::new("topsecretvalue");
        let presented = PresentedKey::new("topsecretvalue");
        let printed = format!("{key} {key:?} {presented} {presented:?}");
        assert!(!printed.contains("topsecret"), "{printed}");
    }

    #[test]
    fn key_file_is_trimmed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("key");
        std::fs::write(&path, "abc123\n").expect("write");
        let key = Secret::from_file(&path).expect("read");
        assert!(key.matches(b"abc123"));
    }
}
