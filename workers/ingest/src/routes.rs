//! Which room a stream key publishes to. The operator publishes a [`RouteTable`] of keyed
//! hashes (a ConfigMap in its namespace, or a file); the gateway hashes the presented key with
//! the same routing key and looks the hash up. A table or routing key that cannot be trusted
//! whole is refused whole, logged and counted, and the last good one stays in use: a bad write
//! never opens or closes every room at once.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::runtime::{WatchStreamExt, watcher};
use roomcast_crds::ingest_routes::{
    KeyHash, MAX_ROUTES_JSON_BYTES, ROUTES_DATA_KEY, Route, RouteTable, RoutingKey,
};
use roomcast_rtmp::key::PresentedKey;
use tokio::sync::watch;

use crate::error::{Error, Result};
use crate::metrics::Metrics;

/// How often the routes file and the routing key file are looked at again. A rotated key must
/// stop working within seconds; reading two small files a second costs nothing.
pub const DEFAULT_RELOAD_INTERVAL: Duration = Duration::from_secs(1);

/// The routing key and table in use.
#[derive(Default)]
pub struct Routes {
    key: RwLock<Option<RoutingKey>>,
    table: RwLock<Option<Arc<HashMap<KeyHash, Route>>>>,
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|p| p.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|p| p.into_inner())
}

impl Routes {
    /// The route of a presented key, if the table has one.
    pub fn lookup(&self, key: &PresentedKey) -> Option<Route> {
        let hash = read(&self.key).as_ref()?.hash(key.expose());
        read(&self.table).as_ref()?.get(&hash).cloned()
    }

    /// Both a routing key and a table are loaded: publishes can be routed.
    pub fn is_loaded(&self) -> bool {
        read(&self.key).is_some() && read(&self.table).is_some()
    }

    pub fn set_key(&self, key: RoutingKey) {
        *write(&self.key) = Some(key);
    }

    pub fn set_table(&self, table: &RouteTable) {
        let relative = table
            .routes
            .iter()
            .filter(|r| r.backend_is_relative_name())
            .count();
        if relative > 0 {
            // Accepted so that an upgrade does not drop every route, but worth seeing: such
            // names resolve through the search list, where another namespace may answer.
            tracing::warn!(
                relative,
                "the routing table names backends that are not fully qualified (written by an older operator); they stay in use until the operator rewrites the table"
            );
        }
        *write(&self.table) = Some(Arc::new(table.index()));
    }

    /// Route keys this process already knows (`roomcast dev`: its own rooms): `(stream key,
    /// room "ns/name", backend "host:port")`. The routing key is fresh and random: nothing
    /// outside this process needs to compute the hashes. Checked like a table from the operator.
    pub fn set_known<'a>(
        &self,
        rooms: impl IntoIterator<Item = (&'a str, String, String)>,
    ) -> Result<()> {
        let key = RoutingKey::new(rand::random::<[u8; 32]>().to_vec())?;
        let table = RouteTable::new(
            rooms
                .into_iter()
                .map(|(stream_key, room, backend)| Route {
                    key_hash: key.hash(stream_key),
                    room,
                    backend,
                })
                .collect(),
        );
        table.validate()?;
        self.set_key(key);
        self.set_table(&table);
        Ok(())
    }

    /// Rooms in the table now.
    pub fn len(&self) -> usize {
        read(&self.table).as_ref().map_or(0, |t| t.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Read a file of at most `max` bytes (a mounted ConfigMap or Secret; anything bigger was not
/// written by the operator and is not read into memory).
fn read_bounded(path: &Path, max: usize) -> Result<Vec<u8>> {
    let io = |source| Error::Io {
        path: path.to_owned(),
        source,
    };
    let len = std::fs::metadata(path).map_err(io)?.len();
    if len > max as u64 {
        return Err(Error::config(
            path.display().to_string(),
            format!("{len} bytes; at most {max} are read"),
        ));
    }
    std::fs::read(path).map_err(io)
}

/// Read a routing key file (the Secret's `key`; surrounding whitespace is not part of it).
pub fn read_routing_key(path: &Path) -> Result<RoutingKey> {
    let bytes = read_bounded(path, 4096)?;
    let text = String::from_utf8_lossy(&bytes);
    Ok(RoutingKey::new(text.trim().as_bytes().to_vec())?)
}

/// Read and check a routes file.
pub fn read_table(path: &Path) -> Result<RouteTable> {
    let bytes = read_bounded(path, MAX_ROUTES_JSON_BYTES)?;
    Ok(RouteTable::parse(&bytes)?)
}

/// One file the gateway follows: re-read when its bytes change, applied when good, refused
/// (logged and counted once per change: a file that stays missing or bad is not reported every
/// second) when not.
struct Followed {
    path: PathBuf,
    what: &'static str,
    /// What the last look found (`Some(None)`: no readable file); `None` before the first look.
    seen: Option<Option<Vec<u8>>>,
}

impl Followed {
    fn new(path: PathBuf, what: &'static str) -> Self {
        Followed {
            path,
            what,
            seen: None,
        }
    }

    /// Call `apply` with the file's bytes when they changed since the last look.
    fn check(&mut self, metrics: &Metrics, apply: impl FnOnce(&Path) -> Result<()>) {
        let bytes = std::fs::read(&self.path).ok();
        if self.seen.as_ref() == Some(&bytes) {
            return;
        }
        let first = self.seen.is_none();
        self.seen = Some(bytes);
        match apply(&self.path) {
            Ok(()) => {
                metrics.route_reloads.inc();
                tracing::info!(path = %self.path.display(), "{} loaded", self.what);
            }
            Err(e) => {
                metrics.route_errors.inc();
                tracing::warn!(path = %self.path.display(), error = %e, first, "{} refused; the last good one stays in use", self.what);
            }
        }
    }
}

/// Follow the routing key file (and, with `table`, a routes file) until `stop`, every
/// `interval`.
pub async fn watch_files(
    routes: Arc<Routes>,
    metrics: Metrics,
    key: PathBuf,
    table: Option<PathBuf>,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut key = Followed::new(key, "routing key");
    let mut table = table.map(|p| Followed::new(p, "routing table"));
    loop {
        key.check(&metrics, |p| {
            routes.set_key(read_routing_key(p)?);
            Ok(())
        });
        if let Some(t) = table.as_mut() {
            t.check(&metrics, |p| {
                let table = read_table(p)?;
                routes.set_table(&table);
                tracing::info!(rooms = table.routes.len(), "routes in use");
                Ok(())
            });
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop.changed() => return,
        }
    }
}

/// Watch the operator's ConfigMap `name` in `namespace` (list/watch with a `metadata.name`
/// field selector, so RBAC by `resourceNames` is enough) and apply its `routes.json` until
/// `stop`. A deleted ConfigMap keeps the last table: rooms stay reachable while the operator
/// writes it again.
pub async fn watch_configmap(
    client: kube::Client,
    namespace: String,
    name: String,
    routes: Arc<Routes>,
    metrics: Metrics,
    mut stop: watch::Receiver<bool>,
) {
    let api = kube::Api::<ConfigMap>::namespaced(client, &namespace);
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let stream = watcher(api, config).default_backoff().applied_objects();
    futures::pin_mut!(stream);
    loop {
        let next = tokio::select! {
            n = stream.next() => n,
            _ = stop.changed() => return,
        };
        match next {
            Some(Ok(cm)) => {
                let json = cm
                    .data
                    .as_ref()
                    .and_then(|d| d.get(ROUTES_DATA_KEY))
                    .map(String::as_bytes)
                    .unwrap_or_default();
                match RouteTable::parse(json) {
                    Ok(table) => {
                        routes.set_table(&table);
                        metrics.route_reloads.inc();
                        tracing::info!(configmap = %name, rooms = table.routes.len(), "routing table loaded");
                    }
                    Err(e) => {
                        metrics.route_errors.inc();
                        tracing::warn!(configmap = %name, error = %e, "routing table refused; the last good one stays in use");
                    }
                }
            }
            Some(Err(e)) => {
                tracing::warn!(configmap = %name, error = %e, "watching the routing table failed; retrying")
            }
            None => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> RoutingKey {
        RoutingKey::new(vec![9u8; 32]).expect("key")
    }

    fn table(stream_key: &str, room: &str) -> RouteTable {
        RouteTable::new(vec![Route {
            key_hash: key().hash(stream_key),
            room: room.into(),
            backend: "127.0.0.1:1935".into(),
        }])
    }

    #[test]
    fn a_key_routes_to_its_room_and_query_parameters_do_not_matter() {
        let routes = Routes::default();
        assert!(routes.lookup(&PresentedKey::new("abc")).is_none());
        routes.set_key(key());
        routes.set_table(&table("abc", "shows/lobby"));
        assert!(routes.is_loaded());
        let route = routes
            .lookup(&PresentedKey::new("abc?obs=1"))
            .expect("route");
        assert_eq!(route.room, "shows/lobby");
        assert!(routes.lookup(&PresentedKey::new("abd")).is_none());
    }

    #[tokio::test]
    async fn a_bad_table_is_refused_counted_and_the_last_good_one_kept() {
        let dir = tempfile::tempdir().expect("dir");
        let key_file = dir.path().join("key");
        std::fs::write(&key_file, vec![b'k'; 40]).expect("key");
        let table_file = dir.path().join("routes.json");
        let k = RoutingKey::new(vec![b'k'; 40]).expect("key");
        let good = RouteTable::new(vec![Route {
            key_hash: k.hash("abc"),
            room: "shows/lobby".into(),
            backend: "127.0.0.1:1935".into(),
        }]);
        std::fs::write(&table_file, good.to_json()).expect("table");
        let routes = Arc::new(Routes::default());
        let metrics = Metrics::default();
        let (tx, rx) = watch::channel(false);
        let task = tokio::spawn(watch_files(
            routes.clone(),
            metrics.clone(),
            key_file.clone(),
            Some(table_file.clone()),
            Duration::from_millis(20),
            rx,
        ));
        let wait = |n: u64, c: &Counter| {
            let c = c.clone();
            async move {
                for _ in 0..200 {
                    if c.get() >= n {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                panic!("counter stayed at {}", c.get());
            }
        };
        wait(2, &metrics.route_reloads).await;
        assert!(routes.lookup(&PresentedKey::new("abc")).is_some());
        // Hostile and broken writes: not JSON, a bad hash, a short routing key.
        std::fs::write(&table_file, b"{\"version\":1,\"routes\":[{\"keyHash\":\"zz\",\"room\":\"a/b\",\"backend\":\"x:1\"}]}").expect("write");
        wait(1, &metrics.route_errors).await;
        std::fs::write(&key_file, b"short").expect("write");
        wait(2, &metrics.route_errors).await;
        assert!(
            routes.lookup(&PresentedKey::new("abc")).is_some(),
            "the last good table and key stay"
        );
        // A file that goes missing is reported once, not at every look.
        std::fs::remove_file(&table_file).expect("remove");
        wait(3, &metrics.route_errors).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(metrics.route_errors.get(), 3, "counted once while missing");
        assert!(routes.lookup(&PresentedKey::new("abc")).is_some());
        let _ = tx.send(true);
        let _ = task.await;
    }

    use prometheus_client::metrics::counter::Counter;

    #[test]
    fn known_rooms_route_and_a_bad_one_is_refused() {
        let routes = Routes::default();
        routes
            .set_known([(
                "k1",
                "default/lobby".to_owned(),
                "127.0.0.1:1935".to_owned(),
            )])
            .expect("known");
        assert_eq!(
            routes.lookup(&PresentedKey::new("k1")).map(|r| r.room),
            Some("default/lobby".to_owned())
        );
        assert!(routes.lookup(&PresentedKey::new("k2")).is_none());
        let err =
            routes.set_known([("k1", "no-namespace".to_owned(), "127.0.0.1:1935".to_owned())]);
        assert!(err.is_err());
        assert!(
            routes.lookup(&PresentedKey::new("k1")).is_some(),
            "the good table stays"
        );
    }

    #[test]
    fn oversized_files_are_not_read() {
        let dir = tempfile::tempdir().expect("dir");
        let big = dir.path().join("routes.json");
        std::fs::write(&big, vec![b' '; MAX_ROUTES_JSON_BYTES + 1]).expect("write");
        let err = read_table(&big).expect_err("too big").to_string();
        assert!(err.contains("at most"), "{err}");
        let key = dir.path().join("key");
        std::fs::write(&key, vec![b'k'; 5000]).expect("write");
        assert!(read_routing_key(&key).is_err());
    }
}
