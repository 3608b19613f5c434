//! The ingest gateway's routing table, kept by the operator: one ConfigMap in the operator's
//! namespace (`--ingest-gateway-routes-configmap`, key `routes.json`) with one route per room
//! exposed through the gateway whose stream key is known.
//!
//! ```text
//!   room cache ──┐                                   ┌─► ConfigMap <routes> (SSA, own field
//!   keys Secret  ├─► every second: build_table ──────┤    manager, only when it changed)
//!   cache ───────┤   (pure: keyed hashes, limits)    └─► route state per room ─► reconcile of
//!   named Secrets┘                                            the rooms whose state changed
//!   (metadata; a room's own key is re-read when its resourceVersion moved)
//!   routing key Secret (created once, re-read)
//! ```
//!
//! The table is one aggregate over every room, so it is rebuilt in one place rather than by
//! each room's reconcile (which would race on one object). It is recomputed from the
//! controller's caches once a second: the reflector stores offer no change notification, and a
//! pass is a few thousand HMACs at most. That tick is also the debounce: a burst of room
//! changes costs one write. A rotated key reaches the table within about a second
//! ([`ROUTES_TICK`]), wherever it lives: the `<room>-keys` Secret is cached whole; a Secret the
//! room names itself (`spec.ingest.streamKeySecretRef`) is watched by metadata only
//! ([`NamedSecrets`](crate::room_secrets::NamedSecrets)), and its data is read through the API
//! once per resourceVersion, so the operator holds tenants' own keys only for the rooms behind
//! the gateway.
//!
//! A room left out of the table (no key yet, a key another room already routes, a table that
//! would outgrow its ConfigMap) keeps running and says why in its `IngestRouted` condition.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use futures::channel::mpsc::UnboundedSender;
use k8s_openapi::{
    ByteString,
    api::core::v1::{ConfigMap, Secret},
    apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time},
};
use kube::{
    Api, Client, ResourceExt,
    api::{Patch, PatchParams, PostParams},
    runtime::reflector::{ObjectRef, Store},
};
use roomcast_crds::{
    RoomIdentity, StreamRoom,
    ingest_routes::{
        MAX_ROUTES_JSON_BYTES, MIN_STREAM_KEY_CHARS, ROUTES_DATA_KEY, ROUTING_KEY_DATA_KEY, Route,
        RouteTable, RoutingKey,
    },
    worker_config::{RTMP_PORT, STREAM_KEY_KEY},
};
use serde_json::json;
use tracing::{debug, info, warn};

use crate::{
    Error, Result,
    build::{KEYS_SECRET, RTMP_SUFFIX},
    controller::{Context, store_ready},
    labels,
    room_secrets::Seen,
};

/// Field manager of the routing table: apart from the room children's, so neither ever
/// takes the other's fields.
pub const ROUTES_FIELD_MANAGER: &str = "roomcast-operator-routes";
/// How often the table is recomputed from the caches (and at most how often it is written).
pub const ROUTES_TICK: Duration = Duration::from_secs(1);
/// How long the routing key is trusted before re-reading. A room's own stream key is re-read
/// when the watch shows a new resourceVersion, and after this long in any case: a safety net
/// for a watch that missed an event (and the only refresh where no watch runs).
pub const SECRET_TTL: Duration = Duration::from_secs(60);
/// The table's share of the API server's 1 MiB object limit; the rest is the ConfigMap's
/// metadata (managed fields grow with every writer).
pub const MAX_TABLE_BYTES: usize = MAX_ROUTES_JSON_BYTES - 64 * 1024;
/// Length of a generated routing key: 64 alphanumeric characters, about 380 bits.
const ROUTING_KEY_LENGTH: usize = 64;

/// Condition on rooms exposed through the gateway, and its reasons.
pub const INGEST_ROUTED: &str = "IngestRouted";
pub const NO_STREAM_KEY: &str = "NoStreamKey";
pub const DUPLICATE_STREAM_KEY: &str = "DuplicateStreamKey";
pub const STREAM_KEY_TOO_SHORT: &str = "StreamKeyTooShort";
pub const TABLE_FULL: &str = "RoutingTableFull";

/// A room exposed through the gateway, as the table builder needs it.
#[derive(Clone)]
pub struct Candidate {
    pub room: RoomIdentity,
    /// Older rooms keep their route when two collide or the table is full: a new room can
    /// never knock an established one off the gateway.
    pub created: Option<Time>,
    /// The room's current stream key; `Err` says why there is none.
    pub stream_key: KeyRead,
}

impl std::fmt::Debug for Candidate {
    // The stream key is a secret: only whether there is one reaches logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Candidate")
            .field("room", &self.room.to_string())
            .field("created", &self.created)
            .field(
                "stream_key",
                &self.stream_key.as_ref().map(|_| "[redacted]"),
            )
            .finish()
    }
}

/// Whether the gateway routes a room, as the last written table says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RouteState {
    Routed,
    LeftOut {
        reason: &'static str,
        message: String,
    },
}

/// The table and each candidate's state.
#[derive(Clone, Debug, PartialEq)]
pub struct TableOutcome {
    pub table: RouteTable,
    /// `namespace/name` -> state, for every candidate.
    pub states: BTreeMap<String, RouteState>,
}

/// `<room>-rtmp.<namespace>.svc.<cluster domain>.:1935`: the room's own RTMP Service, which the
/// gateway relays to. Fully qualified, with the trailing dot: a relative name has fewer dots
/// than the pods' `ndots: 5`, so the resolver would try the gateway's search list first, and
/// `<room>-rtmp.<namespace>.svc.svc.cluster.local` is a name any tenant owning a namespace
/// called `svc` can answer (a pod with that hostname and subdomain behind a headless Service),
/// receiving another room's stream and key.
pub fn backend(room: &RoomIdentity, cluster_domain: &str) -> String {
    format!(
        "{}-{RTMP_SUFFIX}.{}.svc.{cluster_domain}.:{RTMP_PORT}",
        room.name, room.namespace
    )
}

/// Build the table: pure, deterministic for the same candidates and key.
pub fn build_table(
    mut candidates: Vec<Candidate>,
    key: &RoutingKey,
    cluster_domain: &str,
    max_bytes: usize,
) -> TableOutcome {
    candidates.sort_by(|a, b| {
        let created = |c: &Candidate| c.created.as_ref().map(|t| t.0);
        // Rooms without a creation time (never from the API server) sort last.
        (created(a).is_none(), created(a), a.room.to_string()).cmp(&(
            created(b).is_none(),
            created(b),
            b.room.to_string(),
        ))
    });
    let mut bytes = RouteTable::new(Vec::new()).to_json().len();
    let mut routes: Vec<Route> = Vec::new();
    let mut states = BTreeMap::new();
    for candidate in candidates {
        let name = candidate.room.to_string();
        let state = match &candidate.stream_key {
            Err(why) => RouteState::LeftOut {
                reason: NO_STREAM_KEY,
                message: why.clone(),
            },
            // Checked before anything else about the key: the duplicate check below answers
            // "does another room use this key?", and only keys too long to guess may ask it.
            Ok(stream_key) if !is_long_enough(stream_key) => RouteState::LeftOut {
                reason: STREAM_KEY_TOO_SHORT,
                message: format!(
                    "the room's stream key is {} characters; the ingest gateway routes keys of at least {MIN_STREAM_KEY_CHARS} (surrounding whitespace not counted); put a longer random key in the room's key Secret",
                    stream_key.trim().chars().count()
                ),
            },
            Ok(stream_key) => {
                let route = Route {
                    // The media worker trims its key file: the gateway must hash the same text.
                    key_hash: key.hash(stream_key.trim()),
                    room: name.clone(),
                    backend: backend(&candidate.room, cluster_domain),
                };
                let size = serde_json::to_string(&route).map_or(usize::MAX, |j| j.len() + 1);
                if routes.iter().any(|r| r.key_hash == route.key_hash) {
                    // Never name the other room: that would tell this room's owner that a
                    // room they cannot see uses the key they hold.
                    RouteState::LeftOut {
                        reason: DUPLICATE_STREAM_KEY,
                        message: "another room already publishes through the ingest gateway with this stream key; rotate this room's key (annotate it roomcast.dev/rotate-stream-key=<anything new>, or change its own key Secret)".into(),
                    }
                } else if bytes.saturating_add(size) > max_bytes {
                    RouteState::LeftOut {
                        reason: TABLE_FULL,
                        message: format!(
                            "the ingest gateway's routing table is full ({max_bytes} bytes, the size a ConfigMap can hold); expose this room as a Service (spec.ingest.expose: service) or remove rooms"
                        ),
                    }
                } else {
                    bytes += size;
                    routes.push(route);
                    RouteState::Routed
                }
            }
        };
        states.insert(name, state);
    }
    TableOutcome {
        table: RouteTable::new(routes),
        states,
    }
}

/// Whether a stream key is long enough to route: at least [`MIN_STREAM_KEY_CHARS`] characters
/// once trimmed as the media worker trims it. Characters, not bytes: sixteen two-byte letters
/// are no harder to guess than sixteen ASCII ones.
fn is_long_enough(stream_key: &str) -> bool {
    stream_key.trim().chars().count() >= MIN_STREAM_KEY_CHARS
}

/// Route states the status step reads, shared by the routes task and every reconcile.
#[derive(Debug, Default)]
pub struct RouteStates(Mutex<BTreeMap<String, RouteState>>);

impl RouteStates {
    /// The room's state, `None` until a table with it (or without it) has been written.
    pub fn get(&self, room: &str) -> Option<RouteState> {
        self.0.lock().ok()?.get(room).cloned()
    }

    /// Replace every state; returns the rooms whose state changed (appeared, went or moved).
    fn replace(&self, next: BTreeMap<String, RouteState>) -> Vec<String> {
        let Ok(mut states) = self.0.lock() else {
            return Vec::new();
        };
        let mut changed: Vec<String> = states
            .iter()
            .filter(|(room, state)| next.get(*room) != Some(*state))
            .map(|(room, _)| room.clone())
            .collect();
        changed.extend(
            next.keys()
                .filter(|room| !states.contains_key(*room))
                .cloned(),
        );
        *states = next;
        changed
    }
}

/// The `IngestRouted` condition's status, reason and message for a room behind the gateway.
pub fn condition_parts(state: Option<&RouteState>) -> (bool, &'static str, String) {
    match state {
        Some(RouteState::Routed) => (
            true,
            "RouteActive",
            "the ingest gateway routes this room's stream key".into(),
        ),
        Some(RouteState::LeftOut { reason, message }) => (false, reason, message.clone()),
        None => (
            false,
            "RoutePending",
            "waiting for the ingest gateway's routing table".into(),
        ),
    }
}

/// A stream key, or why the room has none (shown in its condition).
type KeyRead = std::result::Result<String, String>;

/// What the routes task remembers between passes.
#[derive(Default)]
struct Keeper {
    routing_key: Option<(RoutingKey, Instant)>,
    /// `(namespace, secret, key)` -> the last read of a room's own stream key.
    own_keys: HashMap<(String, String, String), OwnKeyRead>,
    last_written: Option<String>,
}

/// One read of a Secret a room names, through the API.
#[derive(Clone, Debug)]
struct OwnKeyRead {
    value: KeyRead,
    /// The Secret's resourceVersion as read; `None` when it was not there (or not readable).
    resource_version: Option<String>,
    read_at: Instant,
}

impl OwnKeyRead {
    /// Whether this read still stands, given what the watch shows now: the same version (or
    /// still no Secret), and younger than [`SECRET_TTL`]. Without a watch, the age decides.
    fn still_current(&self, seen: &Seen, now: Instant) -> bool {
        if now.saturating_duration_since(self.read_at) >= SECRET_TTL {
            return false;
        }
        match seen {
            Seen::Present(version) => self.resource_version.as_ref() == Some(version),
            Seen::Absent => self.resource_version.is_none(),
            Seen::Unknown => true,
        }
    }
}

/// Keep the routing table until `shutdown`. Runs only while the operator leads (it is part of
/// the controller), and only once the caches are synced: a table computed from an empty cache
/// would drop every route.
pub async fn run(
    ctx: Arc<Context>,
    rooms: Store<StreamRoom>,
    reconcile: UnboundedSender<ObjectRef<StreamRoom>>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let mut shutdown = std::pin::pin!(shutdown);
    let synced = async {
        store_ready(&rooms).await && ctx.stores.synced().await && ctx.named_secrets.synced().await
    };
    tokio::select! {
        ready = synced => if !ready { return },
        () = &mut shutdown => return,
    }
    let config = &ctx.config.gateway;
    info!(configmap = %config.routes_config_map, secret = %config.routing_key_secret, "keeping the ingest gateway's routing table");
    let mut keeper = Keeper::default();
    loop {
        match pass(&ctx, &rooms, &mut keeper).await {
            Ok(changed) => {
                for room in changed {
                    if let Some((namespace, name)) = room.split_once('/') {
                        let _ = reconcile.unbounded_send(ObjectRef::new(name).within(namespace));
                    }
                }
            }
            Err(error) => {
                ctx.metrics.routes_errors.inc();
                warn!(%error, "cannot update the ingest gateway's routing table; trying again");
            }
        }
        tokio::select! {
            () = tokio::time::sleep(ROUTES_TICK) => {}
            () = &mut shutdown => return,
        }
    }
}

/// One pass: read the key, gather candidates, write the table if it changed, publish states.
async fn pass(
    ctx: &Context,
    rooms: &Store<StreamRoom>,
    keeper: &mut Keeper,
) -> Result<Vec<String>> {
    let key = routing_key(ctx, keeper).await?;
    let mut candidates = Vec::new();
    for room in rooms.state() {
        if let Some(candidate) = candidate(ctx, &room, keeper).await {
            candidates.push(candidate);
        }
    }
    let outcome = build_table(
        candidates,
        &key,
        &ctx.config.cluster_domain,
        MAX_TABLE_BYTES,
    );
    let json = outcome.table.to_json();
    if keeper.last_written.as_deref() != Some(json.as_str()) {
        write_table(ctx, &json).await?;
        ctx.metrics.routes_writes.inc();
        info!(routes = outcome.table.routes.len(), "routing table written");
        keeper.last_written = Some(json);
    }
    let left_out = outcome
        .states
        .values()
        .filter(|s| **s != RouteState::Routed)
        .count();
    ctx.metrics
        .routes
        .set(i64::try_from(outcome.table.routes.len()).unwrap_or(i64::MAX));
    ctx.metrics
        .routes_left_out
        .set(i64::try_from(left_out).unwrap_or(i64::MAX));
    let changed = ctx.routes.replace(outcome.states.clone());
    // Said once, when a room's state changes; the room's condition keeps saying it.
    for room in &changed {
        match outcome.states.get(room) {
            Some(RouteState::LeftOut { reason, message }) => {
                warn!(%room, reason, %message, "room left out of the ingest gateway's routing table");
            }
            Some(RouteState::Routed) => debug!(%room, "room routed by the ingest gateway"),
            None => debug!(%room, "room no longer behind the ingest gateway"),
        }
    }
    Ok(changed)
}

/// A room that should be routed, with its key; `None` for rooms the gateway does not serve.
async fn candidate(ctx: &Context, room: &StreamRoom, keeper: &mut Keeper) -> Option<Candidate> {
    if room.metadata.deletion_timestamp.is_some() {
        return None;
    }
    let namespace = room.namespace()?;
    let uid = room.uid()?;
    if ctx.config.gateway.routes_room(&room.spec) != Ok(true)
        || !ctx.tenancy.serves(&namespace).await
    {
        return None;
    }
    let identity = RoomIdentity::new(namespace.clone(), room.name_any());
    // The room's own keys Secret exists (and is the room's) only once a reconcile got as far
    // as applying: a room refused at validation or blocked by a name conflict has none, and
    // no media worker to route to either.
    let keys_secret = format!("{}-{KEYS_SECRET}", room.name_any());
    let keys = ctx
        .stores
        .secrets
        .as_ref()
        .and_then(|s| s.get(&ObjectRef::new(&keys_secret).within(&namespace)))
        .filter(|s| labels::is_controlled_by(&s.metadata, &uid));
    let stream_key = match (&room.spec.ingest.stream_key_secret_ref, keys) {
        (_, None) => Err(format!(
            "the room's Secret {keys_secret} does not exist yet"
        )),
        (None, Some(keys)) => data_value(keys.data.as_ref(), STREAM_KEY_KEY)
            .ok_or_else(|| format!("Secret {keys_secret} has no {STREAM_KEY_KEY} yet")),
        (Some(own), Some(_)) => own_key(ctx, keeper, &namespace, &own.name, &own.key).await,
    };
    Some(Candidate {
        room: identity,
        created: room.metadata.creation_timestamp.clone(),
        stream_key,
    })
}

fn data_value(data: Option<&BTreeMap<String, ByteString>>, key: &str) -> Option<String> {
    data?
        .get(key)
        .and_then(|v| String::from_utf8(v.0.clone()).ok())
        .filter(|v| !v.trim().is_empty())
}

/// A key from a Secret the room names (`spec.ingest.streamKeySecretRef`), read through the
/// API again only when the watch shows the Secret changed (see [`OwnKeyRead::still_current`]).
async fn own_key(
    ctx: &Context,
    keeper: &mut Keeper,
    namespace: &str,
    name: &str,
    key: &str,
) -> KeyRead {
    let id = (namespace.to_owned(), name.to_owned(), key.to_owned());
    let seen = ctx.named_secrets.seen(namespace, name);
    if let Some(read) = keeper.own_keys.get(&id)
        && read.still_current(&seen, Instant::now())
    {
        return read.value.clone();
    }
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), namespace);
    let (value, resource_version) = match api.get_opt(name).await {
        Ok(Some(secret)) => (
            data_value(secret.data.as_ref(), key)
                .ok_or_else(|| format!("Secret {name} has no key {key}")),
            secret.metadata.resource_version,
        ),
        Ok(None) => (
            Err(format!(
                "Secret {name} (spec.ingest.streamKeySecretRef) does not exist"
            )),
            None,
        ),
        Err(error) => {
            warn!(%namespace, secret = %name, %error, "cannot read a room's stream key Secret");
            // Taken as a read of the version the watch shows, so a failing API server is asked
            // again after SECRET_TTL or a change, not on every tick for every room.
            let seen_version = match &seen {
                Seen::Present(version) => Some(version.clone()),
                Seen::Absent | Seen::Unknown => None,
            };
            (Err(format!("cannot read Secret {name}")), seen_version)
        }
    };
    debug!(%namespace, secret = %name, ?seen, "read a room's own stream key Secret");
    keeper.own_keys.insert(
        id,
        OwnKeyRead {
            value: value.clone(),
            resource_version,
            read_at: Instant::now(),
        },
    );
    value
}

/// The routing key: read from its Secret, created there first if missing; re-read every
/// [`SECRET_TTL`] so a replaced key is picked up.
async fn routing_key(ctx: &Context, keeper: &mut Keeper) -> Result<RoutingKey> {
    if let Some((key, read_at)) = &keeper.routing_key
        && read_at.elapsed() < SECRET_TTL
    {
        return Ok(key.clone());
    }
    let namespace = &ctx.config.operator_namespace;
    let name = &ctx.config.gateway.routing_key_secret;
    let key = ensure_routing_key(&ctx.client, namespace, name).await?;
    keeper.routing_key = Some((key.clone(), Instant::now()));
    // Entries of rooms' own Secrets age out here too, so the map never outgrows the rooms.
    keeper
        .own_keys
        .retain(|_, read| read.read_at.elapsed() < SECRET_TTL);
    Ok(key)
}

/// Read the routing key Secret, creating it with a random key when it does not exist. Never
/// overwrites: a key someone put there (or another operator replica created first) wins.
pub async fn ensure_routing_key(
    client: &Client,
    namespace: &str,
    name: &str,
) -> Result<RoutingKey> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let secret = match api.get_opt(name).await? {
        Some(secret) => secret,
        None => {
            let fresh = routing_key_secret(
                namespace,
                name,
                &crate::keys::random_token(ROUTING_KEY_LENGTH),
            );
            match api.create(&PostParams::default(), &fresh).await {
                Ok(created) => {
                    info!(%namespace, secret = %name, "generated the ingest gateway's routing key");
                    created
                }
                // Created meanwhile (another replica, the chart, a person): use theirs.
                Err(kube::Error::Api(status)) if status.code == 409 => api.get(name).await?,
                Err(error) => return Err(error.into()),
            }
        }
    };
    let bytes = secret
        .data
        .as_ref()
        .and_then(|d| d.get(ROUTING_KEY_DATA_KEY))
        .map(|v| v.0.clone())
        .unwrap_or_default();
    RoutingKey::new(bytes).map_err(|error| {
        Error::Config(format!(
            "ingest gateway routing key Secret {namespace}/{name}, key {ROUTING_KEY_DATA_KEY}: {error}; delete the Secret to have a new key generated"
        ))
    })
}

/// The routing key Secret as the operator creates it.
pub fn routing_key_secret(namespace: &str, name: &str, key: &str) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(namespace.to_owned()),
            labels: Some(gateway_labels("ingest-routing-key")),
            ..ObjectMeta::default()
        },
        type_: Some("Opaque".to_owned()),
        data: Some(BTreeMap::from([(
            ROUTING_KEY_DATA_KEY.to_owned(),
            ByteString(key.as_bytes().to_vec()),
        )])),
        ..Secret::default()
    }
}

fn gateway_labels(component: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (labels::NAME.to_owned(), "roomcast".to_owned()),
        (labels::COMPONENT.to_owned(), component.to_owned()),
    ])
}

/// The routes ConfigMap as the operator applies it.
pub fn routes_config_map(namespace: &str, name: &str, json: &str) -> serde_json::Value {
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": gateway_labels("ingest-routes"),
        },
        "data": {ROUTES_DATA_KEY: json},
    })
}

async fn write_table(ctx: &Context, json: &str) -> Result<()> {
    let namespace = &ctx.config.operator_namespace;
    let name = &ctx.config.gateway.routes_config_map;
    let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), namespace);
    api.patch(
        name,
        &PatchParams::apply(ROUTES_FIELD_MANAGER).force(),
        &Patch::Apply(routes_config_map(namespace, name, json)),
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOMAIN: &str = "cluster.local";

    fn key() -> RoutingKey {
        RoutingKey::new(*b"0123456789abcdef0123456789abcdef").expect("32 bytes")
    }

    /// A routable key: `tag` padded to the minimum length.
    fn long(tag: &str) -> String {
        format!("{tag:-<MIN_STREAM_KEY_CHARS$}")
    }

    fn at(seconds: i64) -> Option<Time> {
        Some(Time(
            jiff::Timestamp::from_second(1_800_000_000 + seconds).expect("timestamp"),
        ))
    }

    fn candidate(room: &str, created: i64, stream_key: &str) -> Candidate {
        let (namespace, name) = room.split_once('/').expect("ns/name");
        Candidate {
            room: RoomIdentity::new(namespace.to_owned(), name.to_owned()),
            created: at(created),
            stream_key: Ok(stream_key.to_owned()),
        }
    }

    #[test]
    fn each_room_gets_the_keyed_hash_of_its_trimmed_key_and_its_rtmp_service() {
        let outcome = build_table(
            vec![
                candidate("team-b/stage", 5, &format!("{}\n", long("key"))),
                candidate("team-a/lobby", 9, &long("other-key")),
            ],
            &key(),
            DOMAIN,
            MAX_TABLE_BYTES,
        );
        let routes = &outcome.table.routes;
        assert_eq!(routes.len(), 2);
        assert_eq!(routes[0].room, "team-a/lobby", "sorted by room");
        // Fully qualified with the trailing dot: no search list is ever tried.
        assert_eq!(
            routes[0].backend,
            "lobby-rtmp.team-a.svc.cluster.local.:1935"
        );
        // Known answer: Python's hmac.new(key, b"key" + b"-" * 29, hashlib.sha256).hexdigest().
        assert_eq!(
            routes[1].key_hash.as_str(),
            "7c5cc70069ad510f26362cf558fb93199b4615e650442b81ea186f60107b4d38"
        );
        assert!(outcome.states.values().all(|s| *s == RouteState::Routed));
        outcome.table.validate().expect("the gateway accepts it");
        assert!(!outcome.table.to_json().contains("other-key"));
    }

    #[test]
    fn a_duplicate_key_leaves_the_newer_room_out_without_naming_the_other() {
        let outcome = build_table(
            vec![
                candidate("team-b/copycat", 50, &long("shared")),
                candidate("team-a/lobby", 10, &format!(" {} ", long("shared"))),
            ],
            &key(),
            DOMAIN,
            MAX_TABLE_BYTES,
        );
        assert_eq!(outcome.table.routes.len(), 1);
        assert_eq!(outcome.table.routes[0].room, "team-a/lobby");
        match &outcome.states["team-b/copycat"] {
            RouteState::LeftOut { reason, message } => {
                assert_eq!(*reason, DUPLICATE_STREAM_KEY);
                assert!(!message.contains("team-a"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        outcome
            .table
            .validate()
            .expect("no duplicate reaches the table");
    }

    #[test]
    fn a_full_table_keeps_the_oldest_rooms_and_says_so_on_the_others() {
        let candidates: Vec<Candidate> = (0..50)
            .map(|i| {
                candidate(
                    &format!("ns-{i:02}/room-{i:02}"),
                    1000 - i,
                    &long(&format!("key-{i}")),
                )
            })
            .collect();
        let one = serde_json::to_string(
            &build_table(vec![candidates[0].clone()], &key(), DOMAIN, MAX_TABLE_BYTES)
                .table
                .routes[0],
        )
        .expect("json")
        .len();
        let limit = RouteTable::new(Vec::new()).to_json().len() + 10 * (one + 1);
        let outcome = build_table(candidates, &key(), DOMAIN, limit);
        assert_eq!(outcome.table.routes.len(), 10);
        assert!(outcome.table.to_json().len() <= limit);
        // Room 49 was created first (1000 - 49), room 0 last.
        assert!(
            outcome
                .table
                .routes
                .iter()
                .any(|r| r.room == "ns-49/room-49")
        );
        assert!(
            !outcome
                .table
                .routes
                .iter()
                .any(|r| r.room == "ns-00/room-00")
        );
        assert!(matches!(
            &outcome.states["ns-00/room-00"],
            RouteState::LeftOut { reason, .. } if *reason == TABLE_FULL
        ));
    }

    #[test]
    fn a_room_without_a_key_is_left_out_with_the_reason() {
        let mut missing = candidate("team-a/lobby", 0, "");
        missing.stream_key = Err("Secret lobby-keys has no stream-key yet".into());
        let outcome = build_table(vec![missing], &key(), DOMAIN, MAX_TABLE_BYTES);
        assert!(outcome.table.routes.is_empty());
        assert_eq!(
            condition_parts(outcome.states.get("team-a/lobby")),
            (
                false,
                NO_STREAM_KEY,
                "Secret lobby-keys has no stream-key yet".to_owned()
            )
        );
        assert_eq!(condition_parts(None).1, "RoutePending");
        assert!(format!("{:?}", candidate("a/b", 0, "s3cr3t")).contains("[redacted]"));
        assert!(!format!("{:?}", candidate("a/b", 0, "s3cr3t")).contains("s3cr3t"));
    }

    #[test]
    fn hostile_keys_hash_like_any_other_and_never_reach_the_table() {
        let hostile = [
            "\"},{\"keyHash\":\"0000\",\"room\":\"x/y\"",
            "../../etc/passwd",
            "\u{0}\u{1}\u{7f}",
            "🎥 live",
            &"k".repeat(100_000),
        ];
        let candidates: Vec<Candidate> = hostile
            .iter()
            .enumerate()
            .map(|(i, k)| candidate(&format!("ns/room-{i}"), i as i64, &long(k)))
            .collect();
        let outcome = build_table(candidates, &key(), DOMAIN, MAX_TABLE_BYTES);
        assert_eq!(outcome.table.routes.len(), hostile.len());
        let json = outcome.table.to_json();
        let parsed = RouteTable::parse(json.as_bytes()).expect("the gateway accepts it");
        assert_eq!(parsed, outcome.table);
        assert!(!json.contains("passwd") && !json.contains("kkkk"));
    }

    #[test]
    fn the_backend_follows_the_configured_cluster_domain() {
        let room = RoomIdentity::new("shows".to_owned(), "lobby".to_owned());
        assert_eq!(
            backend(&room, "corp.example"),
            "lobby-rtmp.shows.svc.corp.example.:1935"
        );
        let outcome = build_table(
            vec![candidate("shows/lobby", 0, &long("k"))],
            &key(),
            "corp.example",
            MAX_TABLE_BYTES,
        );
        assert_eq!(
            outcome.table.routes[0].backend,
            "lobby-rtmp.shows.svc.corp.example.:1935"
        );
        outcome.table.validate().expect("the gateway accepts it");
    }

    #[test]
    fn short_keys_are_left_out_before_any_duplicate_check_and_say_only_their_own_length() {
        let routed = long("a-routed-room-key");
        // Sixteen two-byte letters are 32 bytes but only 16 characters.
        let two_byte = "é".repeat(MIN_STREAM_KEY_CHARS / 2);
        let short = [
            ("ns/empty-ish", " ".to_owned(), 0),
            ("ns/thirty-one", "y".repeat(MIN_STREAM_KEY_CHARS - 1), 31),
            (
                "ns/padded",
                format!("  \t{}\n ", "x".repeat(MIN_STREAM_KEY_CHARS - 1)),
                31,
            ),
            ("ns/two-byte", two_byte, 16),
            // The very key another room routes, cut short: the reply must not say "duplicate".
            (
                "ns/prefix",
                routed[..MIN_STREAM_KEY_CHARS - 1].to_owned(),
                31,
            ),
        ];
        let mut candidates = vec![candidate("victim/lobby", 0, &routed)];
        candidates.extend(
            short
                .iter()
                .enumerate()
                .map(|(i, (room, key, _))| candidate(room, 10 + i as i64, key)),
        );
        let outcome = build_table(candidates, &key(), DOMAIN, MAX_TABLE_BYTES);
        assert_eq!(outcome.table.routes.len(), 1, "only the long key is routed");
        for (room, _, chars) in &short {
            match &outcome.states[*room] {
                RouteState::LeftOut { reason, message } => {
                    assert_eq!(*reason, STREAM_KEY_TOO_SHORT, "{room}");
                    assert!(
                        message.contains(&format!("is {chars} characters")),
                        "{message}"
                    );
                    assert!(message.contains("at least 32"), "{message}");
                    assert!(!message.contains("victim"), "{message}");
                }
                other => panic!("{room}: {other:?}"),
            }
        }
        // Exactly the minimum, and the same after trimming, is routed; non-ASCII counts by
        // character.
        let outcome = build_table(
            vec![
                candidate(
                    "ns/exact",
                    0,
                    &format!(" {} \n", "z".repeat(MIN_STREAM_KEY_CHARS)),
                ),
                candidate("ns/wide", 1, &"é".repeat(MIN_STREAM_KEY_CHARS)),
            ],
            &key(),
            DOMAIN,
            MAX_TABLE_BYTES,
        );
        assert!(
            outcome.states.values().all(|s| *s == RouteState::Routed),
            "{outcome:?}"
        );
    }

    #[test]
    fn states_report_which_rooms_changed() {
        let states = RouteStates::default();
        let routed = |rooms: &[&str]| {
            rooms
                .iter()
                .map(|r| ((*r).to_owned(), RouteState::Routed))
                .collect::<BTreeMap<_, _>>()
        };
        assert_eq!(states.replace(routed(&["a/x", "b/y"])), ["a/x", "b/y"]);
        assert!(states.replace(routed(&["a/x", "b/y"])).is_empty());
        let mut next = routed(&["a/x", "c/z"]);
        next.insert(
            "a/x".into(),
            RouteState::LeftOut {
                reason: TABLE_FULL,
                message: String::new(),
            },
        );
        let mut changed = states.replace(next);
        changed.sort();
        assert_eq!(changed, ["a/x", "b/y", "c/z"]);
        assert!(states.get("b/y").is_none());
    }

    #[test]
    fn a_kept_own_key_stands_only_while_the_watch_shows_the_version_it_was_read_at() {
        let read_at = Instant::now();
        let read = |version: Option<&str>| OwnKeyRead {
            value: Ok("key".into()),
            resource_version: version.map(str::to_owned),
            read_at,
        };
        let soon = read_at + ROUTES_TICK;
        let present = |v: &str| Seen::Present(v.to_owned());
        assert!(read(Some("5")).still_current(&present("5"), soon));
        // Rotated (or replaced): a new version is read at the next tick.
        assert!(!read(Some("5")).still_current(&present("6"), soon));
        // Deleted since the read, or created since a read that found nothing.
        assert!(!read(Some("5")).still_current(&Seen::Absent, soon));
        assert!(!read(None).still_current(&present("1"), soon));
        assert!(read(None).still_current(&Seen::Absent, soon));
        // The safety net, and the only refresh where no watch runs.
        let late = read_at + SECRET_TTL;
        assert!(!read(Some("5")).still_current(&present("5"), late));
        assert!(read(Some("5")).still_current(&Seen::Unknown, soon));
        assert!(!read(Some("5")).still_current(&Seen::Unknown, late));
    }

    #[test]
    fn the_routing_key_secret_and_routes_config_map_have_the_agreed_shape() {
        let secret = routing_key_secret("roomcast-system", "rk", "k".repeat(64).as_str());
        let data = secret.data.expect("data");
        assert_eq!(data[ROUTING_KEY_DATA_KEY].0.len(), 64);
        let cm = routes_config_map("roomcast-system", "routes", "{}");
        assert_eq!(cm["data"]["routes.json"], "{}");
        assert_eq!(cm["metadata"]["namespace"], "roomcast-system");
    }
}
