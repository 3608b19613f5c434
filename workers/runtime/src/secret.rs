//! [`Secret`]: the one redacting type for every secret value roomcast handles (stream keys,
//! chat signing keys, CDN origin secrets, S3 credentials, MongoDB and Redis URIs). `Debug` and
//! `Display` print `[redacted]`; the value leaves only through [`Secret::expose`] or
//! [`Secret::matches`] (constant time). Domain types (a MongoDB URI, a signing key) wrap it
//! instead of writing their own redaction.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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

/// How often a [`SecretFile`] looks at its file again. The kubelet updates a mounted Secret
/// within about a minute of a change; a few seconds more cost nothing, a stat per request would.
pub const SECRET_RELOAD_INTERVAL: Duration = Duration::from_secs(5);

/// A secret that follows its mounted file: re-read at most every [`SECRET_RELOAD_INTERVAL`],
/// so a rotated Kubernetes Secret takes effect without a restart. A re-read that fails (the
/// kubelet swaps the file through a symlink, an operator empties it by mistake) keeps the last
/// good value and logs once per failure run: a bad file never opens or closes the door.
#[derive(Clone)]
pub struct SecretFile {
    inner: Arc<SecretFileInner>,
}

struct SecretFileInner {
    path: PathBuf,
    interval: Duration,
    state: Mutex<SecretFileState>,
}

struct SecretFileState {
    read_at: Instant,
    value: Secret,
    failing: bool,
}

impl SecretFile {
    /// Read `path` now (an error when it cannot be read or is empty, as [`Secret::from_file`]).
    pub fn open(path: impl AsRef<Path>) -> Result<Self, SecretError> {
        Self::open_with_interval(path, SECRET_RELOAD_INTERVAL)
    }

    pub fn open_with_interval(
        path: impl AsRef<Path>,
        interval: Duration,
    ) -> Result<Self, SecretError> {
        let path = path.as_ref().to_owned();
        let value = Secret::from_file(&path)?;
        Ok(SecretFile {
            inner: Arc::new(SecretFileInner {
                path,
                interval,
                state: Mutex::new(SecretFileState {
                    read_at: Instant::now(),
                    value,
                    failing: false,
                }),
            }),
        })
    }

    /// A value that never changes (no file: tests, values held in memory).
    pub fn fixed(value: Secret) -> Self {
        SecretFile {
            inner: Arc::new(SecretFileInner {
                path: PathBuf::new(),
                interval: Duration::MAX,
                state: Mutex::new(SecretFileState {
                    read_at: Instant::now(),
                    value,
                    failing: false,
                }),
            }),
        }
    }

    /// Constant-time comparison with the current value (see [`Secret::matches`]).
    pub fn matches(&self, presented: &[u8]) -> bool {
        self.with_current(|secret| secret.matches(presented))
    }

    /// The current value.
    pub fn current(&self) -> Secret {
        self.with_current(|secret| Secret(secret.0.clone()))
    }

    fn with_current<T>(&self, f: impl FnOnce(&Secret) -> T) -> T {
        let inner = &self.inner;
        let mut state = inner.state.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if now.saturating_duration_since(state.read_at) >= inner.interval {
            state.read_at = now;
            match Secret::from_file(&inner.path) {
                Ok(value) => {
                    if state.failing {
                        tracing::info!(path = %inner.path.display(), "secret file readable again");
                    }
                    state.value = value;
                    state.failing = false;
                }
                Err(e) => {
                    if !state.failing {
                        tracing::warn!(error = %e, "keeping the last good secret");
                    }
                    state.failing = true;
                }
            }
        }
        f(&state.value)
    }
}

impl fmt::Debug for SecretFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretFile({}, {REDACTED})", self.inner.path.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_file_follows_its_file_and_keeps_the_last_good_value() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("origin-secret");
        std::fs::write(&path, "first\n").expect("write");
        let interval = Duration::from_millis(50);
        let secret = SecretFile::open_with_interval(&path, interval).expect("open");
        assert!(secret.matches(b"first"));
        // Rotated: the new value is taken at the next look, the old one no longer matches.
        std::fs::write(&path, "second").expect("rotate");
        assert!(secret.matches(b"first"), "not looked at again yet");
        std::thread::sleep(interval * 2);
        assert!(secret.matches(b"second") && !secret.matches(b"first"));
        // Emptied or gone (mid-swap): the last good value stays.
        std::fs::write(&path, "  \n").expect("empty");
        std::thread::sleep(interval * 2);
        assert!(
            secret.matches(b"second"),
            "an empty file does not replace the secret"
        );
        std::fs::remove_file(&path).expect("remove");
        std::thread::sleep(interval * 2);
        assert!(secret.matches(b"second") && !secret.matches(b""));
        std::fs::write(&path, "third").expect("back");
        std::thread::sleep(interval * 2);
        assert!(secret.matches(b"third"));
        assert!(!format!("{secret:?}").contains("third"));
    }

    #[test]
    fn a_secret_file_that_cannot_be_read_at_start_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(SecretFile::open(dir.path().join("missing")).is_err());
        std::fs::write(dir.path().join("empty"), "\n").expect("write");
        assert!(matches!(
            SecretFile::open(dir.path().join("empty")),
            Err(SecretError::Empty { .. })
        ));
    }

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
