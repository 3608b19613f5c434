//! [`Secret`]: the one redacting type for every secret value roomcast handles (stream keys,
//! chat signing keys, CDN origin secrets, S3 credentials, MongoDB and Redis URIs). `Debug` and
//! `Display` print `[redacted]`; the value leaves only through [`Secret::expose`] or
//! [`Secret::matches`] (constant time). Domain types (a MongoDB URI, a signing key) wrap it
//! instead of writing their own redaction.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use subtle::ConstantTimeEq;

/// What `Debug` and `Display` print instead of a secret.
pub const REDACTED: &str = "[redacted]";

/// Why a secret file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("cannot read the secret file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("the secret file {} is empty", path.display())]
    Empty { path: PathBuf },
}

impl SecretError {
    /// The file the error is about.
    pub fn path(&self) -> &Path {
        match self {
            SecretError::Read { path, .. } | SecretError::Empty { path } => path,
        }
    }
}

/// A secret string. Never printed; compared only in constant time.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// Read a secret from a mounted file, trimming surrounding whitespace (Kubernetes Secrets
    /// written by hand often end with a newline). A file that is empty after trimming is an
    /// error: an empty key would otherwise lock everybody out, or let everybody in.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, SecretError> {
        let path = path.as_ref();
        match std::fs::read_to_string(path) {
            Ok(text) => Self::trimmed(&text).ok_or_else(|| SecretError::Empty {
                path: path.to_owned(),
            }),
            Err(source) => Err(SecretError::Read {
                path: path.to_owned(),
                source,
            }),
        }
    }

    /// Like [`Secret::from_file`] for optional values (an `AWS_SESSION_TOKEN` key that a
    /// Secret may leave out): a missing or empty file is `None`; any other read error is one.
    pub fn from_optional_file(path: impl AsRef<Path>) -> Result<Option<Self>, SecretError> {
        let path = path.as_ref();
        match std::fs::read_to_string(path) {
            Ok(text) => Ok(Self::trimmed(&text)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(SecretError::Read {
                path: path.to_owned(),
                source,
            }),
        }
    }

    fn trimmed(text: &str) -> Option<Self> {
        let value = text.trim();
        (!value.is_empty()).then(|| Secret(value.to_owned()))
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

    /// The raw value, for the one call that must hand it on (a client library, a header).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({REDACTED})")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print_their_value() {
        let s = Secret::new("hunter2-very-secret");
        assert_eq!(format!("{s}"), "[redacted]");
        assert_eq!(format!("{s:?}"), "Secret([redacted])");
        assert_eq!(format!("{:?}", Some(&s)), "Some(Secret([redacted]))");
    }

    #[test]
    fn files_are_trimmed_and_empty_files_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = dir.path().join("key");
        std::fs::write(&key, "  s3cr3t\n").expect("write");
        assert_eq!(Secret::from_file(&key).expect("read").expose(), "s3cr3t");

        std::fs::write(&key, " \n\t").expect("write");
        assert!(matches!(
            Secret::from_file(&key),
            Err(SecretError::Empty { .. })
        ));
        assert_eq!(Secret::from_optional_file(&key).expect("optional"), None);

        let missing = dir.path().join("missing");
        let err = Secret::from_file(&missing).expect_err("missing");
        assert!(matches!(err, SecretError::Read { .. }), "{err}");
        assert_eq!(
            Secret::from_optional_file(&missing).expect("optional"),
            None
        );

        // A directory where a file should be is an error, not an absent value.
        let err = Secret::from_optional_file(dir.path()).expect_err("a directory");
        assert_eq!(err.path(), dir.path());
    }

    #[test]
    fn matching_is_exact_and_an_empty_secret_matches_nothing() {
        let key = Secret::new("s3cr3t-key");
        assert!(key.matches(b"s3cr3t-key"));
        for wrong in [
            &b""[..],
            b"s3cr3t-ke",
            b"s3cr3t-key ",
            b"S3CR3T-KEY",
            b"s3cr3t-key\0",
        ] {
            assert!(!key.matches(wrong), "{wrong:?}");
        }
        assert!(!Secret::new("").matches(b""));
    }
}
