//! The rooms of a `roomcast dev` run ([`DevRooms`]): StreamRoom YAML through the operator's own
//! validation (once per room) and worker-configuration builder, so a room that runs here runs
//! the same in a cluster. What a cluster keeps in Secrets (stream key, chat signing key) is
//! generated once into `--data-dir`, reused on every start, and held in memory for the run.
//!
//! ```text
//!  YAML documents ─► StreamRoom ─► validate (operator rules) ─► worker_config ─► local paths
//!                                                          └─► keys: read or generate, keep
//! ```

use std::path::Path;

use roomcast_chat::token::SigningKey;
use roomcast_crds::{
    RoomIdentity,
    worker_config::{CHAT_SIGNING_KEY_KEY, RecordingConfig, STREAM_KEY_KEY, WorkerConfig},
};
use roomcast_operator::{
    build::worker_config,
    config::OperatorConfig,
    keys::random_key,
    validate::{ValidRoom, validate},
};
use roomcast_runtime::Secret;

use crate::{Error, Result};

/// Namespace of rooms whose file names none (the cluster's default namespace).
pub const DEFAULT_NAMESPACE: &str = "default";

/// The room `roomcast dev` serves when no file is given.
pub const DEFAULT_ROOM: &str =
    "apiVersion: roomcast.dev/v1alpha1\nkind: StreamRoom\nmetadata: {name: lobby}\nspec: {}\n";

/// Stand-in bucket name of local recordings (they live under `<data-dir>/recordings/`).
pub const LOCAL_BUCKET: &str = "local";

/// Where `roomcast dev` records instead of the data directory: a real S3 or S3-compatible
/// bucket. Credentials come from the ambient AWS chain (`AWS_ACCESS_KEY_ID` /
/// `AWS_SECRET_ACCESS_KEY`, profile).
#[derive(clap::Args, Clone, Debug, Default)]
pub struct DevS3 {
    /// Record into this S3 bucket instead of the data directory (credentials from the usual
    /// AWS environment variables or profile).
    #[arg(long = "s3-bucket", env = "ROOMCAST_S3_BUCKET")]
    pub bucket: Option<String>,
    /// S3-compatible endpoint (MinIO, Ceph, R2…); empty for AWS (path-style addressing is
    /// used otherwise).
    #[arg(
        long = "s3-endpoint",
        env = "ROOMCAST_S3_ENDPOINT",
        default_value = "",
        requires = "bucket"
    )]
    pub endpoint: String,
    #[arg(
        long = "s3-region",
        env = "ROOMCAST_S3_REGION",
        default_value = "",
        requires = "bucket"
    )]
    pub region: String,
    /// Key prefix (empty or ending in `/`).
    #[arg(
        long = "s3-prefix",
        env = "ROOMCAST_S3_PREFIX",
        default_value = "",
        requires = "bucket"
    )]
    pub prefix: String,
}

/// One room as `roomcast dev` runs it: its worker configuration (local paths) and its keys,
/// read or generated once.
#[derive(Clone, Debug)]
pub struct DevRoom {
    pub worker: WorkerConfig,
    pub stream_key: Secret,
    /// The chat signing key, when the room has chat.
    pub chat_key: Option<SigningKey>,
}

impl DevRoom {
    pub fn id(&self) -> &RoomIdentity {
        &self.worker.room
    }
}

/// Every room of a `roomcast dev` run, in file order; looked up by `<namespace>/<name>`.
#[derive(Clone, Debug)]
pub struct DevRooms {
    rooms: Vec<DevRoom>,
}

impl DevRooms {
    /// Parse and validate every room of a StreamRoom YAML text (`origin` names it in errors),
    /// then give each its local paths and keys under `data_dir`. Sessions are recorded when
    /// `record`: into `s3` when it names a bucket, else into the data directory.
    pub fn load(
        text: &str,
        origin: &str,
        data_dir: &Path,
        record: bool,
        s3: &DevS3,
    ) -> Result<Self> {
        let rooms = parse_rooms(text, origin)?
            .iter()
            .map(|valid| prepare_room(valid, data_dir, record, s3))
            .collect::<Result<_>>()?;
        Ok(Self { rooms })
    }

    pub fn get(&self, namespace: &str, name: &str) -> Option<&DevRoom> {
        self.rooms
            .iter()
            .find(|r| r.id().namespace == namespace && r.id().name == name)
    }

    pub fn iter(&self) -> impl ExactSizeIterator<Item = &DevRoom> {
        self.rooms.iter()
    }

    pub fn len(&self) -> usize {
        self.rooms.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rooms.is_empty()
    }
}

/// Parse every room of a StreamRoom YAML text and validate each once, with the operator's
/// rules; two rooms with one name are refused.
pub fn parse_rooms(text: &str, origin: &str) -> Result<Vec<ValidRoom>> {
    let config = dev_operator_config();
    let mut rooms: Vec<ValidRoom> = Vec::new();
    // Strict field validation, as `kubectl apply` does: a typo is an error, not a dropped field.
    let parsed =
        roomcast_crds::room_file::rooms_from_yaml(text).map_err(|source| Error::Parse {
            path: origin.to_owned(),
            source,
        })?;
    for (index, mut room) in parsed.into_iter().enumerate() {
        room.metadata
            .namespace
            .get_or_insert_with(|| DEFAULT_NAMESPACE.to_owned());
        // A file has no uid; the operator's validation wants one for owner references.
        room.metadata
            .uid
            .get_or_insert_with(|| format!("dev-{index}"));
        let valid = validate(&room, &config)?;
        if rooms
            .iter()
            .any(|r| r.room.namespace == valid.room.namespace && r.room.name == valid.room.name)
        {
            return Err(Error::DuplicateRoom(RoomIdentity::new(
                valid.room.namespace,
                valid.room.name,
            )));
        }
        rooms.push(valid);
    }
    Ok(rooms)
}

/// The platform settings `roomcast dev` stands in for: recordings go to the local store, so a
/// room that records needs no bucket.
fn dev_operator_config() -> OperatorConfig {
    OperatorConfig {
        s3: roomcast_operator::config::DefaultS3 {
            bucket: Some(LOCAL_BUCKET.to_owned()),
            ..Default::default()
        },
        playback_scheme: "http".to_owned(),
        ..OperatorConfig::default()
    }
}

/// A key kept under `dir`: read when present, generated (0600) on first use.
fn persistent_key(dir: &Path, name: &str) -> Result<Secret> {
    let path = dir.join(name);
    if let Some(key) = Secret::from_optional_file(&path)? {
        return Ok(key);
    }
    let key = random_key();
    let write = |source| Error::Write {
        path: path.display().to_string(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(write)?;
    std::fs::write(&path, &key).map_err(write)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).map_err(write)?;
    }
    Ok(Secret::new(key))
}

/// The worker configuration of a validated room with local paths and its keys.
fn prepare_room(valid: &ValidRoom, data_dir: &Path, record: bool, s3: &DevS3) -> Result<DevRoom> {
    let keys_dir = data_dir
        .join("keys")
        .join(&valid.room.namespace)
        .join(&valid.room.name);
    // No Secrets here: a room that names its own key Secret gets a local key too.
    let stream_key = persistent_key(&keys_dir, STREAM_KEY_KEY)?;
    let mut worker = worker_config(valid);
    worker.ingest.stream_key_file = keys_dir.join(STREAM_KEY_KEY).display().to_string();
    let chat_key = match &mut worker.chat {
        Some(chat) => {
            let key = persistent_key(&keys_dir, CHAT_SIGNING_KEY_KEY)?;
            chat.signing_key_file = keys_dir.join(CHAT_SIGNING_KEY_KEY).display().to_string();
            chat.redis_url_file = None;
            Some(
                SigningKey::new(key).map_err(|e| roomcast_chat::Error::Config {
                    field: "chat.signingKeyFile",
                    message: e.to_string(),
                })?,
            )
        }
        None => None,
    };
    // No CDN in front of a laptop, and no mounted Secrets: MongoDB and Redis come from
    // `--mongodb-uri` / `--redis-url`, whatever Secrets the room names.
    worker.playback.origin_secret_file = None;
    worker.mongodb_uri_file = None;
    // Recordings go to the data directory (or the `--s3-*` bucket), whatever bucket the room
    // names.
    let (bucket, endpoint, region, prefix) = match &s3.bucket {
        Some(bucket) => (
            bucket.as_str(),
            s3.endpoint.as_str(),
            &*s3.region,
            &*s3.prefix,
        ),
        None => (LOCAL_BUCKET, "", "", ""),
    };
    worker.recording = record.then(|| RecordingConfig {
        bucket: bucket.to_owned(),
        prefix: prefix.to_owned(),
        region: region.to_owned(),
        endpoint: endpoint.to_owned(),
        force_path_style: !endpoint.is_empty(),
        credentials_dir: None,
        renditions: valid.spec.recording.renditions.clone(),
        retention_days: valid.spec.recording.retention_days,
        spool_dir: data_dir.join("spool").display().to_string(),
        spool_size_mib: valid.spec.recording.spool_size_mib(),
    });
    Ok(DevRoom {
        worker,
        stream_key,
        chat_key,
    })
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn load(text: &str, data_dir: &Path) -> Result<DevRooms> {
        DevRooms::load(text, "rooms.yaml", data_dir, true, &DevS3::default())
    }

    #[test]
    fn default_room_is_lobby_in_the_default_namespace() {
        let rooms = parse_rooms(DEFAULT_ROOM, "default").expect("valid");
        assert_eq!(rooms.len(), 1);
        assert_eq!(rooms[0].room.name, "lobby");
        assert_eq!(rooms[0].room.namespace, DEFAULT_NAMESPACE);
    }

    #[test]
    fn rooms_are_validated_with_the_crd_rules() {
        let text = "apiVersion: roomcast.dev/v1alpha1\nkind: StreamRoom\nmetadata: {name: lobby}\nspec: {transcode: {segmentSeconds: 4, dvrWindowSeconds: 8}}\n";
        let error = parse_rooms(text, "rooms.yaml")
            .expect_err("invalid")
            .to_string();
        assert!(
            error.contains("spec.transcode") && error.contains("at least 3 segments"),
            "{error}"
        );
    }

    #[test]
    fn a_broken_document_names_the_file_and_document() {
        let text = "apiVersion: roomcast.dev/v1alpha1\nkind: StreamRoom\nmetadata: {name: a}\nspec: {}\n---\nspec: [not a map]\n";
        let error = parse_rooms(text, "rooms.yaml")
            .expect_err("invalid")
            .to_string();
        assert!(error.starts_with("rooms.yaml: document 2"), "{error}");
    }

    #[test]
    fn a_typo_is_refused_with_the_field_named_not_dropped() {
        for (spec, field) in [
            ("transcod: {segmentSeconds: 2}", "spec.transcod"),
            ("playback: {latncy: low}", "spec.playback.latncy"),
        ] {
            let text = format!(
                "apiVersion: roomcast.dev/v1alpha1\nkind: StreamRoom\nmetadata: {{name: a}}\nspec:\n  {spec}\n"
            );
            let error = parse_rooms(&text, "rooms.yaml")
                .expect_err("unknown field")
                .to_string();
            assert!(
                error.starts_with(&format!(
                    "rooms.yaml: document 1: unknown field \"{field}\""
                )),
                "{error}"
            );
        }
    }

    #[test]
    fn two_rooms_with_one_name_are_refused() {
        let one =
            "apiVersion: roomcast.dev/v1alpha1\nkind: StreamRoom\nmetadata: {name: a}\nspec: {}\n";
        let error = parse_rooms(&format!("{one}---\n{one}"), "rooms.yaml").expect_err("duplicate");
        assert!(
            matches!(error, Error::DuplicateRoom(ref id) if *id == RoomIdentity::new("default", "a")),
            "{error}"
        );
        assert_eq!(error.to_string(), "two rooms are named default/a");
    }

    #[test]
    fn recording_rooms_need_no_bucket_locally() {
        let dir = tempfile::tempdir().expect("tempdir");
        let text = "apiVersion: roomcast.dev/v1alpha1\nkind: StreamRoom\nmetadata: {name: a}\nspec: {recording: {enabled: true}}\n";
        let rooms = load(text, dir.path()).expect("valid");
        let room = rooms.get("default", "a").expect("room");
        let recording = room.worker.recording.as_ref().expect("records");
        assert_eq!(recording.bucket, LOCAL_BUCKET);
    }

    #[test]
    fn keys_are_generated_once_kept_private_and_held_in_memory() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = load(DEFAULT_ROOM, dir.path()).expect("prepared");
        let again = load(DEFAULT_ROOM, dir.path()).expect("prepared");
        let (first, again) = (
            first.get("default", "lobby").expect("lobby"),
            again.get("default", "lobby").expect("lobby"),
        );
        assert_eq!(
            first.stream_key, again.stream_key,
            "the stream key survives restarts"
        );
        let key_file = PathBuf::from(&first.worker.ingest.stream_key_file);
        assert!(key_file.starts_with(dir.path()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&key_file)
                .expect("key file")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let chat = first.worker.chat.as_ref().expect("chat on by default");
        let chat_file = PathBuf::from(&chat.signing_key_file);
        assert!(chat_file.exists());
        assert!(first.chat_key.is_some(), "the chat key is kept for the run");

        // The run uses the keys it holds, not the files: a deleted file changes nothing now,
        // and the next start writes a new key.
        std::fs::remove_file(&key_file).expect("remove");
        assert_eq!(first.stream_key, again.stream_key);
        let third = load(DEFAULT_ROOM, dir.path()).expect("prepared");
        assert_ne!(
            third.get("default", "lobby").expect("lobby").stream_key,
            first.stream_key
        );
    }

    #[test]
    fn secrets_a_room_names_for_the_cluster_are_not_looked_for_locally() {
        let dir = tempfile::tempdir().expect("tempdir");
        let text = "apiVersion: roomcast.dev/v1alpha1\nkind: StreamRoom\nmetadata: {name: lobby}\nspec: {mongodbSecretRef: {name: own-mongo}, chat: {replicas: 2, redisSecretRef: {name: own-redis}}}\n";
        let rooms = load(text, dir.path()).expect("loads");
        let worker = &rooms.iter().next().expect("one room").worker;
        assert_eq!(worker.mongodb_uri_file, None);
        assert_eq!(worker.chat.as_ref().expect("chat").redis_url_file, None);
    }

    #[test]
    fn rooms_without_chat_get_no_chat_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let text = "apiVersion: roomcast.dev/v1alpha1\nkind: StreamRoom\nmetadata: {name: quiet}\nspec: {chat: {enabled: false}}\n";
        let rooms = load(text, dir.path()).expect("valid");
        let room = rooms.get("default", "quiet").expect("room");
        assert!(room.worker.chat.is_none() && room.chat_key.is_none());
        assert!(rooms.get("default", "lobby").is_none());
    }

    #[test]
    fn an_s3_bucket_takes_the_recordings() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s3 = DevS3 {
            bucket: Some("shows".into()),
            endpoint: "http://127.0.0.1:9000".into(),
            region: "us-east-1".into(),
            prefix: "rooms/".into(),
        };
        let rooms = DevRooms::load(DEFAULT_ROOM, "default", dir.path(), true, &s3).expect("valid");
        let room = rooms.iter().next().expect("lobby");
        let recording = room.worker.recording.as_ref().expect("records");
        assert_eq!(
            (recording.bucket.as_str(), recording.prefix.as_str()),
            ("shows", "rooms/")
        );
        assert!(recording.force_path_style);
        let off = DevRooms::load(DEFAULT_ROOM, "default", dir.path(), false, &s3).expect("valid");
        assert!(off.iter().all(|r| r.worker.recording.is_none()));
    }
}
