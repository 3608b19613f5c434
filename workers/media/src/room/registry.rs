//! [`RoomRegistry`]: the rooms one worker serves, each a [`Room`] that owns everything that
//! belongs to it (its config, its stream key file, its origin secret, its live state). The RTMP
//! side finds a room by the stream key a publisher presents, the HTTP side by the path's
//! `<namespace>/<room>`, everything else by [`RoomIdentity`]. No caller holds an index.

use std::collections::HashMap;
use std::sync::Arc;

use roomcast_crds::RoomIdentity;
use roomcast_runtime::SecretFile;
use tokio::sync::broadcast;

use crate::config::RoomConfig;
use crate::error::{Error, Result};
use crate::events::MediaEvent;
use crate::metrics::Metrics;
use crate::room::Room;

/// Every room of a worker. Built once at start; rooms are neither added nor removed later.
pub struct RoomRegistry {
    rooms: Vec<Arc<Room>>,
    /// namespace -> name -> room, so that a request's path segments are looked up as they are
    /// (no `RoomIdentity` built per request).
    by_path: HashMap<String, HashMap<String, Arc<Room>>>,
}

impl RoomRegistry {
    /// Validate every room, refuse two rooms on one path, read the origin secrets.
    pub fn new(
        configs: Vec<RoomConfig>,
        speed_preset: &str,
        events: &broadcast::Sender<MediaEvent>,
        metrics: &Metrics,
    ) -> Result<Self> {
        if configs.is_empty() {
            return Err(Error::config("rooms", "at least one room is needed"));
        }
        let mut rooms = Vec::with_capacity(configs.len());
        let mut by_path: HashMap<String, HashMap<String, Arc<Room>>> = HashMap::new();
        for cfg in configs {
            cfg.validate()?;
            let origin_secret = cfg
                .origin_secret_file
                .as_ref()
                .map(SecretFile::open)
                .transpose()
                .map_err(|e| Error::config("playback.originSecretFile", e.to_string()))?;
            let room = Arc::new(Room::new(
                cfg,
                origin_secret,
                speed_preset.to_owned(),
                events.clone(),
                metrics.clone(),
            ));
            let id = room.id();
            let names = by_path.entry(id.namespace.clone()).or_default();
            if names.contains_key(&id.name) {
                return Err(Error::config(
                    "playback.pathPrefix",
                    format!("two rooms share {}", room.cfg.path_prefix),
                ));
            }
            names.insert(id.name.clone(), room.clone());
            rooms.push(room);
        }
        Ok(Self { rooms, by_path })
    }

    /// The room whose current stream key matches what a publisher presented. Keys are read from
    /// their files now (a rotated Secret takes effect at the next publish), and every room's key
    /// is compared, in constant time, so timing does not tell which room matched.
    pub fn by_key(&self, presented: &[u8]) -> Option<Arc<Room>> {
        let mut found = None;
        for room in &self.rooms {
            match room.stream_key() {
                Ok(key) if key.matches(presented) && found.is_none() => found = Some(room.clone()),
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(room = %room.id(), error = %e, "cannot read the stream key");
                }
            }
        }
        found
    }

    /// The room served under `/<namespace>/<name>/`.
    pub fn by_path(&self, namespace: &str, name: &str) -> Option<&Arc<Room>> {
        self.by_path.get(namespace)?.get(name)
    }

    /// The room `id`.
    pub fn get(&self, id: &RoomIdentity) -> Option<&Arc<Room>> {
        self.by_path(&id.namespace, &id.name)
    }

    /// Every room, in the order they were configured.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &Arc<Room>> {
        self.rooms.iter()
    }

    pub fn len(&self) -> usize {
        self.rooms.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rooms.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn config(dir: &Path, name: &str, key: &str) -> RoomConfig {
        let key_file = dir.join(format!("{name}-key"));
        std::fs::write(&key_file, format!("{key}\n")).expect("key file");
        RoomConfig::for_test(name, key_file)
    }

    fn registry(configs: Vec<RoomConfig>) -> Result<RoomRegistry> {
        let (events, _) = broadcast::channel(4);
        RoomRegistry::new(configs, "veryfast", &events, &Metrics::default())
    }

    #[test]
    fn rooms_are_found_by_key_path_and_identity() {
        let dir = tempfile::tempdir().expect("tempdir");
        let rooms = registry(vec![
            config(dir.path(), "lobby", "lobby-key"),
            config(dir.path(), "stage", "stage-key"),
        ])
        .expect("registry");
        assert_eq!(rooms.len(), 2);
        let stage = rooms.by_key(b"stage-key").expect("by key");
        assert_eq!(stage.id().name, "stage");
        assert!(rooms.by_key(b"stage-ke").is_none());
        assert!(rooms.by_key(b"").is_none());
        let lobby = rooms.by_path("shows", "lobby").expect("by path");
        assert_eq!(lobby.id().name, "lobby");
        assert!(rooms.by_path("other", "lobby").is_none());
        let by_id = rooms
            .get(&RoomIdentity::new("shows", "stage"))
            .expect("by id");
        assert!(Arc::ptr_eq(by_id, &stage));
        let names: Vec<_> = rooms.iter().map(|r| r.id().name.as_str()).collect();
        assert_eq!(names, ["lobby", "stage"], "configured order");
    }

    #[test]
    fn keys_are_read_at_each_lookup() {
        let dir = tempfile::tempdir().expect("tempdir");
        let rooms = registry(vec![config(dir.path(), "lobby", "old-key")]).expect("registry");
        assert!(rooms.by_key(b"old-key").is_some());
        std::fs::write(dir.path().join("lobby-key"), "new-key").expect("rotate");
        assert!(rooms.by_key(b"old-key").is_none(), "rotated out");
        assert!(rooms.by_key(b"new-key").is_some(), "rotated in");
        std::fs::remove_file(dir.path().join("lobby-key")).expect("remove");
        assert!(rooms.by_key(b"new-key").is_none(), "no file, no room");
    }

    #[test]
    fn two_rooms_on_one_path_and_empty_origin_secrets_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let twice = registry(vec![
            config(dir.path(), "lobby", "a"),
            config(dir.path(), "lobby", "b"),
        ]);
        let err = twice.err().expect("refused").to_string();
        assert!(err.contains("two rooms share /shows/lobby"), "{err}");

        let mut cfg = config(dir.path(), "lobby", "a");
        let secret = dir.path().join("origin");
        std::fs::write(&secret, "\n").expect("origin file");
        cfg.origin_secret_file = Some(secret.clone());
        let err = registry(vec![cfg.clone()])
            .err()
            .expect("refused")
            .to_string();
        assert!(err.contains("playback.originSecretFile"), "{err}");

        std::fs::write(&secret, "cdn-s3cret\n").expect("origin file");
        let rooms = registry(vec![cfg]).expect("registry");
        let room = rooms.by_path("shows", "lobby").expect("room");
        assert!(
            room.origin_secret()
                .is_some_and(|s| s.matches(b"cdn-s3cret"))
        );
        assert!(registry(Vec::new()).is_err(), "no rooms");
    }
}
