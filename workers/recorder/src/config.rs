//! Recorder settings, from the worker config's `recording` section (or built by hand for
//! `roomcast dev` and tests), validated at start with errors that name the field.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use roomcast_crds::worker_config::RecordingConfig;

use crate::{Error, Result};

/// Spool volume size when the config gives none.
pub const DEFAULT_SPOOL_SIZE_MIB: u32 = 1024;
/// Share of the spool volume (`spoolSizeMib`, the emptyDir's `sizeLimit`) and of the spool
/// filesystem's free space at start that segments may fill. The rest is headroom for what the
/// budget does not count (manifests, segment logs, a segment mid-write, filesystem blocks), so
/// an S3 outage fills the budget and drops segments long before the kubelet evicts the pod at
/// the volume's limit (and the spool is lost with it).
pub const SPOOL_BUDGET_PERCENT: u64 = 80;
/// Concurrent segment uploads.
pub const DEFAULT_UPLOAD_CONCURRENCY: usize = 4;
/// First retry delay of an upload; doubles up to [`DEFAULT_RETRY_MAX_DELAY`], with jitter.
pub const DEFAULT_RETRY_MIN_DELAY: Duration = Duration::from_millis(200);
pub const DEFAULT_RETRY_MAX_DELAY: Duration = Duration::from_secs(5);
/// How often the retention sweep runs.
pub const DEFAULT_RETENTION_INTERVAL: Duration = Duration::from_secs(3600);

/// The S3 keys' redacting type: the one every roomcast secret uses.
pub use roomcast_runtime::Secret;

/// Static S3 credentials (from the room's Secret, mounted as files).
#[derive(Clone, Debug)]
pub struct StaticCredentials {
    pub access_key_id: String,
    pub secret_access_key: Secret,
    pub session_token: Option<Secret>,
}

impl StaticCredentials {
    /// Read `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and, if present, `AWS_SESSION_TOKEN`
    /// from `dir` (one value a file, surrounding whitespace ignored).
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let read = |name: &str| {
            Secret::from_optional_file(dir.join(name)).map_err(|e| Error::Config {
                field: "recording.credentialsDir",
                message: e.to_string(),
            })
        };
        let required = |name: &str| {
            read(name)?.ok_or_else(|| Error::Config {
                field: "recording.credentialsDir",
                message: format!("{} has no non-empty {name}", dir.display()),
            })
        };
        Ok(Self {
            access_key_id: required("AWS_ACCESS_KEY_ID")?.expose().to_owned(),
            secret_access_key: required("AWS_SECRET_ACCESS_KEY")?,
            session_token: read("AWS_SESSION_TOKEN")?,
        })
    }
}

/// Where and how to reach the bucket.
#[derive(Clone, Debug)]
pub struct S3Settings {
    pub bucket: String,
    /// Empty: from the ambient chain (`AWS_REGION`, profile), else `us-east-1`.
    pub region: String,
    /// Empty: AWS. Else an S3-compatible endpoint URL.
    pub endpoint: String,
    pub force_path_style: bool,
    /// None: the ambient AWS credential chain (environment, web identity / pod identity, IMDS).
    pub credentials: Option<StaticCredentials>,
    pub connect_timeout: Duration,
    pub attempt_timeout: Duration,
}

impl S3Settings {
    pub fn from_config(cfg: &RecordingConfig) -> Result<Self> {
        if cfg.bucket.trim().is_empty() {
            return Err(Error::Config {
                field: "recording.bucket",
                message: "must not be empty".into(),
            });
        }
        let credentials = match &cfg.credentials_dir {
            Some(dir) if !dir.is_empty() => Some(StaticCredentials::from_dir(Path::new(dir))?),
            _ => None,
        };
        Ok(Self {
            bucket: cfg.bucket.clone(),
            region: cfg.region.clone(),
            endpoint: cfg.endpoint.clone(),
            force_path_style: cfg.force_path_style,
            credentials,
            connect_timeout: Duration::from_secs(3),
            attempt_timeout: Duration::from_secs(30),
        })
    }
}

/// What the recorder itself needs (the store and catalog are passed in already opened).
#[derive(Clone)]
pub struct RecorderConfig {
    /// Key prefix, e.g. `rooms/` (empty or ending in `/`).
    pub prefix: String,
    pub spool_dir: PathBuf,
    /// Bytes of segments the spool may hold: [`SPOOL_BUDGET_PERCENT`] of the volume, lowered at
    /// start to that share of the filesystem's room ([`spool_budget`]).
    pub spool_size_bytes: u64,
    /// Renditions to record; empty records all.
    pub renditions: Vec<String>,
    pub upload_concurrency: usize,
    pub retry_min_delay: Duration,
    pub retry_max_delay: Duration,
    /// Makes `poster.jpg` from the session's first segment; `None`: no poster.
    pub poster: Option<crate::poster::DynPosterMaker>,
    /// Where the recorder counts. A fresh set by default; the recorders of one process pass
    /// clones of one set, registered once, so that two recorders never export the same names
    /// twice (their rooms are told apart by the `room` label).
    pub metrics: crate::metrics::Metrics,
}

impl std::fmt::Debug for RecorderConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecorderConfig")
            .field("prefix", &self.prefix)
            .field("spool_dir", &self.spool_dir)
            .field("spool_size_bytes", &self.spool_size_bytes)
            .field("renditions", &self.renditions)
            .field("upload_concurrency", &self.upload_concurrency)
            .field("poster", &self.poster.is_some())
            .finish_non_exhaustive()
    }
}

/// The spool budget: [`SPOOL_BUDGET_PERCENT`] of the volume's `limit`, and of `room` (free
/// space plus what the spool already holds, measured at start) when known, whichever is less.
pub fn spool_budget(limit: u64, room: Option<u64>) -> u64 {
    let by_limit = budget_share(limit);
    room.map_or(by_limit, |r| by_limit.min(budget_share(r)))
}

/// [`SPOOL_BUDGET_PERCENT`] of `bytes`, without overflow.
pub fn budget_share(bytes: u64) -> u64 {
    bytes / 100 * SPOOL_BUDGET_PERCENT + bytes % 100 * SPOOL_BUDGET_PERCENT / 100
}

impl RecorderConfig {
    pub fn new(spool_dir: impl Into<PathBuf>) -> Self {
        Self {
            prefix: String::new(),
            spool_dir: spool_dir.into(),
            spool_size_bytes: spool_budget(u64::from(DEFAULT_SPOOL_SIZE_MIB) * 1024 * 1024, None),
            renditions: Vec::new(),
            upload_concurrency: DEFAULT_UPLOAD_CONCURRENCY,
            retry_min_delay: DEFAULT_RETRY_MIN_DELAY,
            retry_max_delay: DEFAULT_RETRY_MAX_DELAY,
            poster: None,
            metrics: crate::metrics::Metrics::default(),
        }
    }

    pub fn from_config(cfg: &RecordingConfig) -> Result<Self> {
        if !roomcast_crds::is_valid_s3_prefix(&cfg.prefix) {
            return Err(Error::Config {
                field: "recording.prefix",
                message: format!("{} {:?}", roomcast_crds::S3_PREFIX_RULE, cfg.prefix),
            });
        }
        if cfg.spool_dir.is_empty() {
            return Err(Error::Config {
                field: "recording.spoolDir",
                message: "must not be empty".into(),
            });
        }
        let mib = if cfg.spool_size_mib == 0 {
            DEFAULT_SPOOL_SIZE_MIB
        } else {
            cfg.spool_size_mib
        };
        Ok(Self {
            prefix: cfg.prefix.clone(),
            spool_size_bytes: spool_budget(u64::from(mib) * 1024 * 1024, None),
            renditions: cfg.renditions.clone(),
            ..Self::new(&cfg.spool_dir)
        })
    }

    pub fn records(&self, rendition: &str) -> bool {
        self.renditions.is_empty() || self.renditions.iter().any(|r| r == rendition)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recording(dir: Option<String>) -> RecordingConfig {
        RecordingConfig {
            bucket: "vods".into(),
            prefix: "rooms/".into(),
            region: "us-east-1".into(),
            endpoint: String::new(),
            force_path_style: false,
            credentials_dir: dir,
            renditions: vec![],
            retention_days: Some(30),
            spool_dir: "/var/spool/roomcast".into(),
            spool_size_mib: 0,
        }
    }

    #[test]
    fn the_spool_budget_stays_below_the_volume_and_the_disk() {
        let gib = 1024 * 1024 * 1024;
        // Below the emptyDir's sizeLimit, so a full spool is never an eviction.
        assert_eq!(spool_budget(gib, None), gib * 4 / 5);
        assert!(spool_budget(gib, None) < gib);
        // A disk with less room than the volume claims: its share of what is there.
        assert_eq!(spool_budget(gib, Some(100 * 1024 * 1024)), 80 * 1024 * 1024);
        // More room than the limit: the limit rules.
        assert_eq!(spool_budget(gib, Some(100 * gib)), gib * 4 / 5);
        // Hostile extremes neither overflow nor reach the volume.
        assert_eq!(spool_budget(0, None), 0);
        assert_eq!(spool_budget(gib, Some(0)), 0);
        assert!(spool_budget(u64::MAX, None) < u64::MAX);
        assert!(spool_budget(u64::MAX, Some(u64::MAX)) < u64::MAX);
        assert_eq!(spool_budget(99, None), 79);
    }

    #[test]
    fn s3_secrets_never_reach_debug_output() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("AWS_ACCESS_KEY_ID"), "AKIDEXAMPLE\n").expect("write");
        std::fs::write(
            dir.path().join("AWS_SECRET_ACCESS_KEY"),
            "wJalrXUtnFEMI-secret",
        )
        .expect("write");
        std::fs::write(dir.path().join("AWS_SESSION_TOKEN"), "token-secret").expect("write");
        let s = S3Settings::from_config(&recording(Some(dir.path().display().to_string())))
            .expect("settings");
        let creds = s.credentials.as_ref().expect("static credentials");
        assert_eq!(creds.access_key_id, "AKIDEXAMPLE");
        assert_eq!(creds.secret_access_key.expose(), "wJalrXUtnFEMI-secret");
        let printed = format!("{s:?} {}", creds.secret_access_key);
        assert!(!printed.contains("wJalrXUtnFEMI-secret"), "{printed}");
        assert!(!printed.contains("token-secret"), "{printed}");
    }

    #[test]
    fn missing_secret_key_is_an_error_naming_the_field() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("AWS_ACCESS_KEY_ID"), "AKID").expect("write");
        let err = S3Settings::from_config(&recording(Some(dir.path().display().to_string())))
            .expect_err("no secret");
        assert!(
            err.to_string().contains("recording.credentialsDir"),
            "{err}"
        );
        assert!(err.to_string().contains("AWS_SECRET_ACCESS_KEY"), "{err}");
    }

    #[test]
    fn no_credentials_dir_means_the_ambient_chain_and_defaults_apply() {
        let s = S3Settings::from_config(&recording(None)).expect("settings");
        assert!(s.credentials.is_none());
        let r = RecorderConfig::from_config(&recording(None)).expect("config");
        assert_eq!(r.spool_size_bytes, budget_share(1024 * 1024 * 1024));
        assert!(r.records("720p"));
        // The CRD's rule (`roomcast_crds::is_valid_s3_prefix`, tested there), not a second one.
        for prefix in ["rooms", "../rooms/"] {
            let mut bad = recording(None);
            bad.prefix = prefix.into();
            assert!(
                RecorderConfig::from_config(&bad)
                    .expect_err(prefix)
                    .to_string()
                    .contains("recording.prefix"),
                "{prefix:?}"
            );
        }
    }
}
