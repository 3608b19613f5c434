//! The rooms of a `roomcast dev` run: StreamRoom YAML through the operator's own validation and
//! worker-configuration builder (a room that runs here runs the same in a cluster), with the
//! keys a cluster would keep in Secrets (stream key, chat signing key) generated once into
//! `--data-dir` and reused on every start.

use std::path::Path;

use roomcast_crds::{
    StreamRoom,
    worker_config::{CHAT_SIGNING_KEY_KEY, RecordingConfig, STREAM_KEY_KEY, WorkerConfig},
};
use roomcast_operator::{
    build::worker_config, config::OperatorConfig, keys::random_key, validate::validate,
};

use crate::{Error, Result};

/// Namespace of rooms whose file names none (the cluster's default namespace).
pub const DEFAULT_NAMESPACE: &str = "default";

/// The room `roomcast dev` serves when no file is given.
pub const DEFAULT_ROOM: &str =
    "apiVersion: roomcast.dev/v1alpha1\nkind: StreamRoom\nmetadata: {name: lobby}\nspec: {}\n";

/// Where `roomcast dev` records when not to the data directory.
#[derive(Clone, Debug, Default)]
pub struct DevS3 {
    pub bucket: String,
    /// Empty: AWS. Otherwise an S3-compatible endpoint (path-style addressing is used).
    pub endpoint: String,
    pub region: String,
    pub prefix: String,
}

/// One room as `roomcast dev` runs it.
#[derive(Clone, Debug)]
pub struct DevRoom {
    pub worker: WorkerConfig,
    pub stream_key: String,
}

impl DevRoom {
    pub fn namespace(&self) -> &str {
        &self.worker.room.namespace
    }
    pub fn name(&self) -> &str {
        &self.worker.room.name
    }
}

/// Parse and validate every room of a StreamRoom YAML text, with the operator's rules.
pub fn parse_rooms(text: &str, origin: &str) -> Result<Vec<StreamRoom>> {
    let mut rooms: Vec<StreamRoom> = Vec::new();
    for (index, document) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let mut room: StreamRoom =
            serde::Deserialize::deserialize(document).map_err(|source| Error::Parse {
                path: format!("{origin} (document {})", index + 1),
                source,
            })?;
        room.metadata
            .namespace
            .get_or_insert_with(|| DEFAULT_NAMESPACE.to_owned());
        // A file has no uid; the operator's validation wants one for owner references.
        room.metadata
            .uid
            .get_or_insert_with(|| format!("dev-{index}"));
        validate(&room, &dev_operator_config())?;
        let id = format!(
            "{}/{}",
            room.metadata.namespace.as_deref().unwrap_or_default(),
            room.metadata.name.as_deref().unwrap_or_default()
        );
        if rooms.iter().any(|r| {
            r.metadata.namespace == room.metadata.namespace && r.metadata.name == room.metadata.name
        }) {
            return Err(Error::DuplicateRoom(id));
        }
        rooms.push(room);
    }
    Ok(rooms)
}

/// Stand-in bucket name of local recordings (they live under `<data-dir>/recordings/`).
const LOCAL_BUCKET: &str = "local";
/// The platform settings `roomcast dev` stands in for: recordings go to the local store, so a
/// room that records needs no bucket.
fn dev_operator_config() -> OperatorConfig {
    OperatorConfig {
        s3: roomcast_operator::config::DefaultS3 {
            bucket: Some("local".to_owned()),
            ..Default::default()
        },
        redis_url: None,
        playback_scheme: "http".to_owned(),
        ..OperatorConfig::default()
    }
}

/// A key kept under `dir`: read when present, generated (0600) on first use.
fn persistent_key(dir: &Path, name: &str) -> Result<String> {
    let path = dir.join(name);
    match std::fs::read_to_string(&path) {
        Ok(key) if !key.trim().is_empty() => return Ok(key.trim().to_owned()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(Error::Read {
                path: path.display().to_string(),
                source,
            });
        }
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
    Ok(key)
}

/// Worker configuration of each room with local paths, keys created on first use.
pub fn prepare_rooms(
    rooms: &[StreamRoom],
    data_dir: &Path,
    record: bool,
    s3: Option<&DevS3>,
) -> Result<Vec<DevRoom>> {
    let config = dev_operator_config();
    rooms
        .iter()
        .map(|room| {
            let valid = validate(room, &config)?;
            let keys_dir = data_dir
                .join("keys")
                .join(&valid.room.namespace)
                .join(&valid.room.name);
            // No Secrets here: a room that names its own key Secret gets a local key too.
            let stream_key = persistent_key(&keys_dir, STREAM_KEY_KEY)?;
            persistent_key(&keys_dir, CHAT_SIGNING_KEY_KEY)?;
            let mut worker = worker_config(&valid, &config);
            worker.ingest.stream_key_file = keys_dir.join(STREAM_KEY_KEY).display().to_string();
            if let Some(chat) = &mut worker.chat {
                chat.signing_key_file = keys_dir.join(CHAT_SIGNING_KEY_KEY).display().to_string();
                chat.redis_url = None;
            }
            // No CDN in front of a laptop.
            worker.playback.origin_secret_file = None;
            // Recordings go to the data directory, whatever bucket the room names.
            let local = DevS3 {
                bucket: LOCAL_BUCKET.to_owned(),
                ..DevS3::default()
            };
            let sink = s3.unwrap_or(&local);
            worker.recording = record.then(|| RecordingConfig {
                bucket: sink.bucket.clone(),
                prefix: sink.prefix.clone(),
                region: sink.region.clone(),
                endpoint: sink.endpoint.clone(),
                force_path_style: !sink.endpoint.is_empty(),
                credentials_dir: None,
                renditions: valid.spec.recording.renditions.clone(),
                retention_days: valid.spec.recording.retention_days,
                spool_dir: data_dir.join("spool").display().to_string(),
                spool_size_mib: valid.spec.recording.spool_size_mib(),
            });
            Ok(DevRoom { worker, stream_key })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    #[test]
    fn default_room_is_lobby_in_the_default_namespace() {
        let rooms = parse_rooms(DEFAULT_ROOM, "default").expect("valid");
        assert_eq!(rooms.len(), 1);
        assert_eq!(rooms[0].metadata.name.as_deref(), Some("lobby"));
        assert_eq!(
            rooms[0].metadata.namespace.as_deref(),
            Some(DEFAULT_NAMESPACE)
        );
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
        assert!(error.starts_with("rooms.yaml (document 2)"), "{error}");
    }

    #[test]
    fn two_rooms_with_one_name_are_refused() {
        let one =
            "apiVersion: roomcast.dev/v1alpha1\nkind: StreamRoom\nmetadata: {name: a}\nspec: {}\n";
        let error = parse_rooms(&format!("{one}---\n{one}"), "rooms.yaml").expect_err("duplicate");
        assert!(
            matches!(error, Error::DuplicateRoom(ref id) if id == "default/a"),
            "{error}"
        );
    }

    #[test]
    fn recording_rooms_need_no_bucket_locally() {
        let text = "apiVersion: roomcast.dev/v1alpha1\nkind: StreamRoom\nmetadata: {name: a}\nspec: {recording: {enabled: true}}\n";
        assert!(parse_rooms(text, "rooms.yaml").is_ok());
    }

    #[test]
    fn keys_are_generated_once_and_kept_private() {
        let dir = tempfile::tempdir().expect("tempdir");
        let rooms = parse_rooms(DEFAULT_ROOM, "default").expect("valid");
        let first = prepare_rooms(&rooms, dir.path(), true, None).expect("prepared");
        let again = prepare_rooms(&rooms, dir.path(), true, None).expect("prepared");
        assert_eq!(
            first[0].stream_key, again[0].stream_key,
            "the stream key survives restarts"
        );
        let key_file = PathBuf::from(&first[0].worker.ingest.stream_key_file);
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
        let chat = first[0].worker.chat.as_ref().expect("chat on by default");
        assert!(PathBuf::from(&chat.signing_key_file).exists());
    }
}
