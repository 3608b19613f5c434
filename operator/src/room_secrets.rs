//! The Secrets a room names itself (`spec.ingest.streamKeySecretRef`, `spec.mongodbSecretRef`,
//! `spec.chat.redisSecretRef`, `spec.recording.s3.credentialsSecretRef`,
//! `spec.playback.cdn.originSecretRef`, `spec.playback.tlsSecretRef`), watched by metadata
//! only.
//!
//! ```text
//!   watch Secrets (metadata) ─► keep name/namespace/uid/resourceVersion ─► NamedSecrets
//!        │                                                                   │
//!        ├─► the rooms naming a changed Secret ─► reconcile                  ├─► status: a mounted
//!        │                                                                   │   one missing is
//!        └─► at the end of a full list: every room naming any Secret         │   Ready=False
//!                                                                            │   SecretNotFound
//!                                                  routes: re-read a room's ◄┘
//!                                                  own key when its version moved
//! ```
//!
//! Tenants own these Secrets and the operator never writes them; it reads their data only for
//! the ingest gateway's routing table (`routes.rs`). The cache keeps no labels or annotations:
//! `kubectl apply` leaves a Secret's data, in base64, in the `last-applied-configuration`
//! annotation, and a metadata watch would otherwise hold every tenant's credentials in memory.

use std::{sync::Arc, time::Duration};

use futures::{Stream, StreamExt};
use k8s_openapi::{api::core::v1::Secret, apimachinery::pkg::apis::meta::v1::ObjectMeta};
use kube::{
    Api, Client,
    core::PartialObjectMeta,
    runtime::{
        WatchStreamExt,
        reflector::{self, ObjectRef, Store},
        watcher,
    },
};
use roomcast_crds::{StreamRoom, StreamRoomSpec};
use tracing::warn;

use crate::{
    controller::store_ready,
    validate::{SecretSource, ValidRoom},
};

/// What the cache holds of a Secret.
pub type SecretMeta = PartialObjectMeta<Secret>;

/// Condition reason (of `Ready=False`) and Event reason for a named Secret that does not exist.
pub const SECRET_NOT_FOUND: &str = "SecretNotFound";

/// A field of the spec that names a Secret in the room's namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum SecretField {
    StreamKey,
    Mongodb,
    Redis,
    S3Credentials,
    CdnOrigin,
    Tls,
}

impl SecretField {
    /// The field's path, as users write it and as status messages name it.
    pub fn path(self) -> &'static str {
        match self {
            SecretField::StreamKey => "spec.ingest.streamKeySecretRef",
            SecretField::Mongodb => "spec.mongodbSecretRef",
            SecretField::Redis => "spec.chat.redisSecretRef",
            SecretField::S3Credentials => "spec.recording.s3.credentialsSecretRef",
            SecretField::CdnOrigin => "spec.playback.cdn.originSecretRef",
            SecretField::Tls => "spec.playback.tlsSecretRef",
        }
    }
}

/// A Secret a room names, and the field that names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamedSecret {
    pub field: SecretField,
    pub name: String,
}

impl std::fmt::Display for NamedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secret {} ({})", self.name, self.field.path())
    }
}

/// Every Secret the spec names, used or not (a change to any of them is worth a reconcile).
pub fn named_in(spec: &StreamRoomSpec) -> Vec<NamedSecret> {
    let recording_credentials = spec
        .recording
        .s3
        .as_ref()
        .and_then(|s3| s3.credentials_secret_ref.as_ref());
    [
        (
            SecretField::StreamKey,
            spec.ingest.stream_key_secret_ref.as_ref().map(|r| &r.name),
        ),
        (
            SecretField::Mongodb,
            spec.mongodb_secret_ref.as_ref().map(|r| &r.name),
        ),
        (
            SecretField::Redis,
            spec.chat.redis_secret_ref.as_ref().map(|r| &r.name),
        ),
        (
            SecretField::S3Credentials,
            recording_credentials.map(|r| &r.name),
        ),
        (
            SecretField::CdnOrigin,
            spec.playback
                .cdn
                .origin_secret_ref
                .as_ref()
                .map(|r| &r.name),
        ),
        (
            SecretField::Tls,
            spec.playback.tls_secret_ref.as_ref().map(|r| &r.name),
        ),
    ]
    .into_iter()
    .filter_map(|(field, name)| {
        name.map(|name| NamedSecret {
            field,
            name: name.clone(),
        })
    })
    .collect()
}

/// The named Secrets the room's pods mount (the builders in `build/workloads.rs` decide the
/// same way): without one of them a worker cannot start. The TLS Secret is the Ingress
/// controller's, and a Secret the room names but does not use (Redis for a single chat
/// replica, S3 credentials with recording off) stops nothing.
pub fn mounted_by(valid: &ValidRoom) -> Vec<NamedSecret> {
    let own = |source: &Option<SecretSource>| matches!(source, Some(SecretSource::Room(_)));
    named_in(&valid.spec)
        .into_iter()
        .filter(|named| match named.field {
            SecretField::StreamKey | SecretField::CdnOrigin => true,
            SecretField::S3Credentials => valid.recording.is_some(),
            SecretField::Mongodb => own(&valid.mongodb),
            SecretField::Redis => own(&valid.redis),
            SecretField::Tls => false,
        })
        .collect()
}

/// The rooms to reconcile when Secret `namespace/name` changed: those of its namespace that
/// name it in any field. A room being deleted is left to the garbage collector.
pub fn rooms_naming(
    rooms: &[Arc<StreamRoom>],
    namespace: &str,
    name: &str,
) -> Vec<ObjectRef<StreamRoom>> {
    rooms_where(rooms, |room, named| {
        room.metadata.namespace.as_deref() == Some(namespace)
            && named.iter().any(|n| n.name == name)
    })
}

/// Every room naming any Secret: after a full list, which may hide creations and deletions
/// the watch missed (and at start, where a room reconciled before the first list could not
/// yet be told that its Secret is missing).
pub fn rooms_naming_any(rooms: &[Arc<StreamRoom>]) -> Vec<ObjectRef<StreamRoom>> {
    rooms_where(rooms, |_, named| !named.is_empty())
}

fn rooms_where(
    rooms: &[Arc<StreamRoom>],
    wanted: impl Fn(&StreamRoom, &[NamedSecret]) -> bool,
) -> Vec<ObjectRef<StreamRoom>> {
    rooms
        .iter()
        .filter(|room| room.metadata.deletion_timestamp.is_none())
        .filter(|room| wanted(room, &named_in(&room.spec)))
        .map(|room| ObjectRef::from_obj(&**room))
        .collect()
}

/// Keep only what identifies a Secret's version (see the module comment for why).
fn keep_identity(secret: &mut SecretMeta) {
    let meta = std::mem::take(&mut secret.metadata);
    secret.metadata = ObjectMeta {
        name: meta.name,
        namespace: meta.namespace,
        uid: meta.uid,
        resource_version: meta.resource_version,
        ..ObjectMeta::default()
    };
}

/// What the cache says of one Secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Seen {
    /// It exists, at this resourceVersion.
    Present(String),
    /// The watch has listed the namespace and the Secret is not there.
    Absent,
    /// No watch runs (tests, benchmarks), it has not listed yet, or the object carried no
    /// resourceVersion.
    Unknown,
}

/// How long a reconcile waits for the first list of Secrets before it reports none missing.
/// A room reconciled earlier is reconciled again once the list arrives.
pub const FIRST_LIST_WAIT: Duration = Duration::from_secs(10);

/// The cache of the Secrets in the watched namespaces, by metadata.
#[derive(Clone, Default)]
pub struct NamedSecrets {
    /// `None`: no watch (tests and benchmarks unless they set one).
    store: Option<Store<SecretMeta>>,
}

impl NamedSecrets {
    /// A cache fed by someone else's watch (tests feed it with a reflector writer).
    pub fn from_store(store: Store<SecretMeta>) -> Self {
        Self { store: Some(store) }
    }

    /// True once the cache has its first full list, or when there is no cache; false if the
    /// watch ended first.
    pub async fn synced(&self) -> bool {
        match &self.store {
            Some(store) => store_ready(store).await,
            None => true,
        }
    }

    /// Whether Secret `namespace/name` exists, as the cache has it. Call only once
    /// [`synced`](Self::synced): before that, an empty cache would say `Absent`.
    pub fn seen(&self, namespace: &str, name: &str) -> Seen {
        let Some(store) = &self.store else {
            return Seen::Unknown;
        };
        match store.get(&ObjectRef::new(name).within(namespace)) {
            Some(secret) => secret
                .metadata
                .resource_version
                .clone()
                .map_or(Seen::Unknown, Seen::Present),
            None => Seen::Absent,
        }
    }

    /// The Secrets the room's pods mount that do not exist. Empty when nothing is known: no
    /// watch, or no first list within [`FIRST_LIST_WAIT`] (a room that mounts none of its
    /// own never waits).
    pub async fn missing(&self, valid: &ValidRoom) -> Vec<NamedSecret> {
        self.missing_after_at_most(valid, FIRST_LIST_WAIT).await
    }

    async fn missing_after_at_most(&self, valid: &ValidRoom, wait: Duration) -> Vec<NamedSecret> {
        let mounted = mounted_by(valid);
        if mounted.is_empty()
            || self.store.is_none()
            || !tokio::time::timeout(wait, self.synced())
                .await
                .unwrap_or(false)
        {
            return Vec::new();
        }
        mounted
            .into_iter()
            .filter(|named| self.seen(&valid.room.namespace, &named.name) == Seen::Absent)
            .collect()
    }
}

/// Watch the Secrets of `namespace` (every namespace when `None`): returns the cache, and the
/// rooms to reconcile as Secrets change.
///
/// Not `Controller::watches_stream` with a mapper: a mapper sees objects only, and the one
/// moment to reconcile every room naming a Secret is the end of a full list (`InitDone`),
/// which carries none. So the stream maps watch events to rooms itself and feeds
/// `Controller::reconcile_on`.
pub fn watch(
    client: &Client,
    namespace: Option<&str>,
    rooms: Store<StreamRoom>,
) -> (
    NamedSecrets,
    impl Stream<Item = ObjectRef<StreamRoom>> + Send + 'static,
) {
    let api: Api<SecretMeta> = match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let (reader, writer) = reflector::store();
    let triggers = watcher(api, watcher::Config::default())
        .default_backoff()
        .modify(keep_identity)
        .reflect(writer)
        .map(move |event| futures::stream::iter(rooms_to_reconcile(&rooms.state(), event)))
        .flatten();
    (NamedSecrets::from_store(reader), triggers)
}

/// The rooms one watch event concerns. Events inside a list (`Init`, `InitApply`) wait for
/// its end, which reconciles every room naming a Secret at once.
fn rooms_to_reconcile(
    rooms: &[Arc<StreamRoom>],
    event: Result<watcher::Event<SecretMeta>, watcher::Error>,
) -> Vec<ObjectRef<StreamRoom>> {
    match event {
        Ok(watcher::Event::Apply(secret) | watcher::Event::Delete(secret)) => {
            match (&secret.metadata.namespace, &secret.metadata.name) {
                (Some(namespace), Some(name)) => rooms_naming(rooms, namespace, name),
                _ => Vec::new(),
            }
        }
        Ok(watcher::Event::InitDone) => rooms_naming_any(rooms),
        Ok(watcher::Event::Init | watcher::Event::InitApply(_)) => Vec::new(),
        Err(error) => {
            // The watcher backs off and lists again; the cache keeps its last state meanwhile.
            warn!(%error, "watch of the Secrets rooms name failed; retrying");
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use kube::runtime::watcher::Event;

    use super::*;
    use crate::{config::OperatorConfig, validate::validate};

    fn room(namespace: &str, name: &str, spec: &str) -> Arc<StreamRoom> {
        Arc::new(
            serde_yaml::from_str(&format!(
                "apiVersion: roomcast.dev/v1alpha1\nkind: StreamRoom\nmetadata: {{name: {name}, namespace: {namespace}, uid: u-{name}}}\nspec: {{{spec}}}\n"
            ))
            .expect("test room parses"),
        )
    }

    fn secret(namespace: &str, name: &str, resource_version: &str) -> SecretMeta {
        let mut secret = SecretMeta::default();
        secret.metadata.namespace = Some(namespace.to_owned());
        secret.metadata.name = Some(name.to_owned());
        secret.metadata.resource_version = Some(resource_version.to_owned());
        secret
    }

    fn names(refs: Vec<ObjectRef<StreamRoom>>) -> Vec<String> {
        let mut names: Vec<String> = refs.iter().map(ToString::to_string).collect();
        names.sort();
        names
    }

    const EVERY_FIELD: &str = "ingest: {streamKeySecretRef: {name: key}}, mongodbSecretRef: {name: mongo}, chat: {replicas: 2, redisSecretRef: {name: redis}}, recording: {enabled: true, s3: {bucket: vods, credentialsSecretRef: {name: s3}}}, playback: {tlsSecretRef: {name: tls}, cdn: {originSecretRef: {name: origin}}}";

    #[test]
    fn every_secret_field_of_the_spec_is_named_with_its_path() {
        let named = named_in(&room("shows", "lobby", EVERY_FIELD).spec);
        let listed: Vec<String> = named.iter().map(ToString::to_string).collect();
        assert_eq!(
            listed,
            [
                "Secret key (spec.ingest.streamKeySecretRef)",
                "Secret mongo (spec.mongodbSecretRef)",
                "Secret redis (spec.chat.redisSecretRef)",
                "Secret s3 (spec.recording.s3.credentialsSecretRef)",
                "Secret origin (spec.playback.cdn.originSecretRef)",
                "Secret tls (spec.playback.tlsSecretRef)",
            ]
        );
        assert!(named_in(&room("shows", "plain", "").spec).is_empty());
    }

    #[test]
    fn only_secrets_the_pods_mount_can_keep_a_room_from_starting() {
        let config = OperatorConfig::default();
        let all = validate(&room("shows", "lobby", EVERY_FIELD), &config).expect("valid");
        let fields: Vec<SecretField> = mounted_by(&all).iter().map(|n| n.field).collect();
        assert_eq!(
            fields,
            [
                SecretField::StreamKey,
                SecretField::Mongodb,
                SecretField::Redis,
                SecretField::S3Credentials,
                SecretField::CdnOrigin,
            ]
        );
        // Named but unused: Redis with one chat replica, S3 credentials with recording off.
        let unused = validate(
            &room(
                "shows",
                "lobby",
                "chat: {replicas: 1, redisSecretRef: {name: redis}}, recording: {enabled: false, s3: {bucket: vods, credentialsSecretRef: {name: s3}}}",
            ),
            &config,
        )
        .expect("valid");
        assert!(mounted_by(&unused).is_empty(), "{:?}", mounted_by(&unused));
    }

    #[test]
    fn a_secret_change_reconciles_only_the_rooms_of_its_namespace_that_name_it() {
        let mut leaving = (*room(
            "shows",
            "leaving",
            "ingest: {streamKeySecretRef: {name: key}}",
        ))
        .clone();
        leaving.metadata.deletion_timestamp = Some(Time(jiff::Timestamp::UNIX_EPOCH));
        let rooms = vec![
            room(
                "shows",
                "lobby",
                "ingest: {streamKeySecretRef: {name: key}}",
            ),
            room("shows", "stage", "mongodbSecretRef: {name: key}"),
            room("shows", "tls-only", "playback: {tlsSecretRef: {name: key}}"),
            // Same Secret name, another namespace: another tenant's Secret.
            room(
                "other",
                "lobby",
                "ingest: {streamKeySecretRef: {name: key}}",
            ),
            // Names no Secret at all.
            room("shows", "plain", ""),
            // A similar name is not the name.
            room(
                "shows",
                "prefix",
                "ingest: {streamKeySecretRef: {name: key-2}}",
            ),
            Arc::new(leaving),
        ];
        assert_eq!(
            names(rooms_naming(&rooms, "shows", "key")),
            [
                "StreamRoom.v1alpha1.roomcast.dev/lobby.shows",
                "StreamRoom.v1alpha1.roomcast.dev/stage.shows",
                "StreamRoom.v1alpha1.roomcast.dev/tls-only.shows",
            ]
        );
        assert!(rooms_naming(&rooms, "nobody", "key").is_empty());
        assert!(rooms_naming(&rooms, "shows", "").is_empty());
        assert!(rooms_naming(&rooms, "shows", "KEY").is_empty());
        assert_eq!(
            rooms_naming_any(&rooms).len(),
            5,
            "all but plain and leaving"
        );
    }

    #[test]
    fn watch_events_map_to_rooms_and_a_full_list_reconciles_every_room_naming_a_secret() {
        let rooms = vec![
            room(
                "shows",
                "lobby",
                "ingest: {streamKeySecretRef: {name: key}}",
            ),
            room("shows", "plain", ""),
        ];
        let lobby = ["StreamRoom.v1alpha1.roomcast.dev/lobby.shows"];
        let event = |e| names(rooms_to_reconcile(&rooms, Ok(e)));
        assert_eq!(event(Event::Apply(secret("shows", "key", "2"))), lobby);
        assert_eq!(event(Event::Delete(secret("shows", "key", "2"))), lobby);
        assert!(event(Event::Apply(secret("other", "key", "2"))).is_empty());
        // A list reconciles once, at its end.
        assert!(event(Event::Init).is_empty());
        assert!(event(Event::InitApply(secret("shows", "key", "2"))).is_empty());
        assert_eq!(event(Event::InitDone), lobby);
        // An object without a name or namespace (never from a real API server) names nothing.
        let mut nameless = secret("shows", "key", "2");
        nameless.metadata.name = None;
        assert!(event(Event::Apply(nameless)).is_empty());
        let failed = rooms_to_reconcile(&rooms, Err(watcher::Error::NoResourceVersion));
        assert!(failed.is_empty());
    }

    #[test]
    fn the_cache_keeps_no_labels_or_annotations_of_tenants_secrets() {
        let mut cached = secret("shows", "key", "7");
        cached.metadata.uid = Some("u-1".into());
        cached.metadata.annotations = Some(BTreeMap::from([(
            "kubectl.kubernetes.io/last-applied-configuration".to_owned(),
            r#"{"data":{"stream-key":"c2VjcmV0"}}"#.to_owned(),
        )]));
        cached.metadata.labels = Some(BTreeMap::from([("a".to_owned(), "b".to_owned())]));
        cached.metadata.managed_fields = Some(Vec::new());
        keep_identity(&mut cached);
        assert_eq!(cached.metadata.annotations, None);
        assert_eq!(cached.metadata.labels, None);
        assert_eq!(cached.metadata.managed_fields, None);
        assert_eq!(cached.metadata.name.as_deref(), Some("key"));
        assert_eq!(cached.metadata.namespace.as_deref(), Some("shows"));
        assert_eq!(cached.metadata.uid.as_deref(), Some("u-1"));
        assert_eq!(cached.metadata.resource_version.as_deref(), Some("7"));
    }

    #[tokio::test]
    async fn nothing_is_missing_before_the_cache_has_its_first_full_list() {
        let (store, mut writer) = reflector::store::<SecretMeta>();
        let secrets = NamedSecrets::from_store(store);
        let valid = validate(
            &room(
                "shows",
                "lobby",
                "ingest: {streamKeySecretRef: {name: key}}",
            ),
            &OperatorConfig::default(),
        )
        .expect("valid");
        // An empty cache mid-list says nothing: the Secret may be in the part not listed yet.
        writer.apply_watcher_event(&Event::Init);
        let wait = Duration::from_millis(300);
        assert!(secrets.missing_after_at_most(&valid, wait).await.is_empty());
        writer.apply_watcher_event(&Event::InitDone);
        assert_eq!(secrets.missing_after_at_most(&valid, wait).await.len(), 1);
    }

    #[tokio::test]
    async fn a_secret_is_missing_only_when_the_listed_cache_lacks_it_in_the_rooms_namespace() {
        let (store, mut writer) = reflector::store::<SecretMeta>();
        let secrets = NamedSecrets::from_store(store);
        writer.apply_watcher_event(&Event::Init);
        writer.apply_watcher_event(&Event::InitApply(secret("shows", "key", "3")));
        writer.apply_watcher_event(&Event::InitApply(secret("other", "mongo", "4")));
        writer.apply_watcher_event(&Event::InitDone);
        assert_eq!(secrets.seen("shows", "key"), Seen::Present("3".into()));
        assert_eq!(secrets.seen("shows", "mongo"), Seen::Absent);
        assert_eq!(NamedSecrets::default().seen("shows", "key"), Seen::Unknown);

        let valid = validate(
            &room(
                "shows",
                "lobby",
                "ingest: {streamKeySecretRef: {name: key}}, mongodbSecretRef: {name: mongo}",
            ),
            &OperatorConfig::default(),
        )
        .expect("valid");
        // `mongo` exists only in another namespace: still missing here.
        let missing = secrets.missing(&valid).await;
        assert_eq!(
            missing,
            [NamedSecret {
                field: SecretField::Mongodb,
                name: "mongo".into()
            }]
        );
        writer.apply_watcher_event(&Event::Apply(secret("shows", "mongo", "5")));
        assert!(secrets.missing(&valid).await.is_empty());
        // No watch: nothing is known, nothing is reported.
        assert!(NamedSecrets::default().missing(&valid).await.is_empty());
    }
}
