//! The controller: watches rooms and their children, runs the reconcile pipeline
//! (validate → build → apply → status) and decides when to come back.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use futures::StreamExt;
use k8s_openapi::{
    ByteString,
    api::core::v1::{Namespace, Secret},
    apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time},
};
use kube::{
    Api, Client, Resource, ResourceExt,
    core::PartialObjectMeta,
    runtime::{
        Controller, WatchStreamExt,
        controller::Action,
        events::{Event, EventType, Recorder, Reporter},
        reflector::{self, ObjectRef, Store},
        watcher,
    },
};
use roomcast_crds::{RoomIdentity, RoomPhase, StreamRoom};
use tracing::{Instrument, debug, info, info_span, warn};

use crate::{
    Error, FIELD_MANAGER, Result,
    apply::{self, Holder},
    build::{self, BuildInputs, Child, ChildKind, child_kinds},
    config::{OperatorConfig, RunConfig},
    keys,
    labels::{self, MatchLabels},
    metrics::{ErrorLabels, KindLabels, Metrics},
    room_secrets::{self, NamedSecrets},
    routes::{self, RouteStates},
    status::{self, Observed},
    tenancy::{self, Tenancy},
    validate::{self, SecretSource, ValidRoom},
};

/// How long an error waits before the room is tried again (doubled per consecutive failure).
const ERROR_BACKOFF_BASE: Duration = Duration::from_secs(5);
const ERROR_BACKOFF_MAX: Duration = Duration::from_secs(300);
/// A room held by a name conflict looks again after this long: the watches do not see
/// the foreign object, so its removal triggers nothing.
const CONFLICT_RECHECK: Duration = Duration::from_secs(60);
/// How long the contents of the operator's default Secrets are trusted before re-reading.
const DEFAULT_SECRETS_TTL: Duration = Duration::from_secs(60);

/// What the controller caches of a child kind (the last column of
/// [`child_kinds!`](crate::build::child_kinds)).
macro_rules! cached {
    (object $ty:ty) => { $ty };
    // `Api<PartialObjectMeta<_>>` watches metadata only.
    (metadata $ty:ty) => { PartialObjectMeta<$ty> };
}

macro_rules! define_stores {
    ($($kind:ident: $ty:ty => $field:ident ($cached:ident),)*) => {
        /// Caches of the children the operator owns, fed by its watches. Empty (no watches)
        /// in tests and benchmarks, which makes every reconcile apply everything.
        #[derive(Clone, Default)]
        pub struct ChildStores {
            $(pub $field: Option<Store<cached!($cached $ty)>>,)*
        }

        impl ChildStores {
            /// Children the room still owns in the cluster that `wanted` no longer contains.
            pub fn leftovers(
                &self,
                namespace: &str,
                owner_uid: &str,
                wanted: &[Child],
            ) -> Vec<Leftover> {
                let wanted: Vec<(ChildKind, &str)> =
                    wanted.iter().map(|c| (c.child_kind(), c.name())).collect();
                let mut out = Vec::new();
                $(out.extend(leftovers(
                    &self.$field,
                    ChildKind::$kind,
                    namespace,
                    owner_uid,
                    &wanted,
                ));)*
                out
            }

            /// The child's metadata as the cache has it, if the cache has the object.
            fn cached_meta(&self, child: &Child) -> Option<ObjectMeta> {
                let ns = child.meta().namespace.as_deref()?;
                let name = child.name();
                match child {
                    $(Child::$kind(_) => lookup(&self.$field, ns, name).map(|o| o.meta().clone()),)*
                }
            }

            /// True once every cache has its first full list (false if a watch ended first).
            pub(crate) async fn synced(&self) -> bool {
                $(if let Some(store) = &self.$field
                    && !store_ready(store).await
                {
                    return false;
                })*
                true
            }
        }

        /// Watch every child kind: the controller gets one trigger stream per kind (a change
        /// to a child reconciles its room), the stores the caches those streams feed.
        fn watch_children(
            client: &Client,
            namespace: Option<&str>,
            controller: Controller<StreamRoom>,
        ) -> (Controller<StreamRoom>, ChildStores) {
            let mut stores = ChildStores::default();
            $(
                let (store, stream) = owned_stream::<cached!($cached $ty)>(api(client, namespace));
                stores.$field = Some(store);
                let controller = controller.owns_stream(stream);
            )*
            (controller, stores)
        }
    };
}
child_kinds!(define_stores);

/// How often [`store_ready`] looks at a store again.
const STORE_READY_POLL: Duration = Duration::from_millis(200);

/// True once `store` has its first full list; false if its writer is gone first.
///
/// Not `store.wait_until_ready().await` alone: kube-runtime 5 keeps one waker per store
/// (a oneshot channel), so when two tasks wait on one store, only the last to poll is woken.
/// The Controller itself waits on the room store before it starts reconciling, and either it
/// or the readiness task would hang for good (`/readyz` then never turns ready). A fresh wait
/// every [`STORE_READY_POLL`] registers its waker again and sees a store that became ready.
pub async fn store_ready<K>(store: &Store<K>) -> bool
where
    K: Resource + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    loop {
        if let Ok(result) = tokio::time::timeout(STORE_READY_POLL, store.wait_until_ready()).await {
            return result.is_ok();
        }
    }
}

fn lookup<K>(store: &Option<Store<K>>, namespace: &str, name: &str) -> Option<Arc<K>>
where
    K: Resource + Clone + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone,
{
    store.as_ref()?.get(&ObjectRef::new(name).within(namespace))
}

fn applied_hash(meta: &ObjectMeta) -> Option<&str> {
    meta.annotations
        .as_ref()?
        .get(labels::APPLIED_HASH)
        .map(String::as_str)
}

/// What the apply step will do for a room.
enum ApplyPlan<'a> {
    /// Apply these children (the others are already applied, as the cache shows).
    Apply(Vec<&'a Child>),
    /// Children whose names are held by objects the room does not control, as `Kind/name`:
    /// nothing is applied.
    Conflicts(Vec<String>),
}

/// Decide which children to apply. A child the cache shows as controlled by the room with
/// the same content is skipped (unless `full`); any other is checked with the API server,
/// because the watches only see objects carrying the operator's label, so someone else's
/// object of that name may be missing from the cache.
async fn plan_apply<'a>(
    ctx: &Context,
    children: &'a [Child],
    owner_uid: &str,
    full: bool,
) -> Result<ApplyPlan<'a>> {
    let mut wanted = Vec::new();
    let mut conflicts = Vec::new();
    for child in children {
        let cached = ctx.stores.cached_meta(child);
        let holder = match cached.as_ref() {
            Some(meta) if labels::is_controlled_by(meta, owner_uid) => Holder::ThisRoom,
            _ => apply::holder(&ctx.client, child, owner_uid).await?,
        };
        let unchanged = cached.as_ref().and_then(applied_hash) == child.applied_hash();
        match holder {
            Holder::Other => conflicts.push(format!("{}/{}", child.kind(), child.name())),
            Holder::ThisRoom if !full && unchanged => {
                ctx.metrics.children_unchanged.inc();
            }
            Holder::ThisRoom | Holder::Nobody => wanted.push(child),
        }
    }
    Ok(if conflicts.is_empty() {
        ApplyPlan::Apply(wanted)
    } else {
        ApplyPlan::Conflicts(conflicts)
    })
}

/// A child the operator owns in the cluster but no longer wants (e.g. the chat Deployment
/// after `spec.chat.enabled: false`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Leftover {
    pub kind: ChildKind,
    pub name: String,
}

fn leftovers<K>(
    store: &Option<Store<K>>,
    kind: ChildKind,
    namespace: &str,
    owner_uid: &str,
    wanted: &[(ChildKind, &str)],
) -> Vec<Leftover>
where
    K: Resource + Clone + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone,
{
    let Some(store) = store else {
        return Vec::new();
    };
    store
        .state()
        .into_iter()
        .filter(|o| o.meta().namespace.as_deref() == Some(namespace))
        // Only objects this room controls: never touch anything else carrying our labels.
        .filter(|o| labels::is_controlled_by(o.meta(), owner_uid))
        .filter_map(|o| o.meta().name.clone())
        .filter(|name| !wanted.contains(&(kind, name.as_str())))
        .map(|name| Leftover { kind, name })
        .collect()
}

#[derive(Clone, Debug)]
struct CachedSecret {
    data: Option<BTreeMap<String, ByteString>>,
    read_at: Instant,
}

/// State shared by every reconcile.
pub struct Context {
    pub client: Client,
    pub config: OperatorConfig,
    pub recorder: Recorder,
    pub metrics: Metrics,
    pub stores: ChildStores,
    /// A good reconcile comes back after this long and applies everything (heals drift).
    pub resync: Duration,
    /// Which namespaces are served (every watched one unless set after `new`).
    pub tenancy: Tenancy,
    /// Whether the ingest gateway routes each room, as the routes task last wrote it.
    pub routes: Arc<RouteStates>,
    /// The Secrets in the watched namespaces, by metadata (none unless set after `new`).
    pub named_secrets: NamedSecrets,
    last_full_apply: Mutex<BTreeMap<String, Instant>>,
    failures: Mutex<BTreeMap<String, u32>>,
    default_secrets: Mutex<BTreeMap<String, CachedSecret>>,
}

impl Context {
    pub fn new(
        client: Client,
        config: OperatorConfig,
        metrics: Metrics,
        stores: ChildStores,
        resync: Duration,
    ) -> Self {
        let reporter = Reporter {
            controller: FIELD_MANAGER.to_owned(),
            instance: std::env::var("POD_NAME").ok(),
        };
        Self {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            config,
            metrics,
            stores,
            resync,
            tenancy: Tenancy::everywhere(),
            routes: Arc::default(),
            named_secrets: NamedSecrets::default(),
            last_full_apply: Mutex::default(),
            failures: Mutex::default(),
            default_secrets: Mutex::default(),
        }
    }

    /// Read one of the operator's default Secrets (cached for a minute).
    async fn default_secret(&self, name: &str) -> Result<Option<BTreeMap<String, ByteString>>> {
        if let Ok(cache) = self.default_secrets.lock()
            && let Some(cached) = cache.get(name)
            && cached.read_at.elapsed() < DEFAULT_SECRETS_TTL
        {
            return Ok(cached.data.clone());
        }
        let api: Api<Secret> =
            Api::namespaced(self.client.clone(), &self.config.operator_namespace);
        let data = api.get_opt(name).await?.and_then(|s| s.data);
        if let Ok(mut cache) = self.default_secrets.lock() {
            cache.insert(
                name.to_owned(),
                CachedSecret {
                    data: data.clone(),
                    read_at: Instant::now(),
                },
            );
        }
        Ok(data)
    }

    /// A default Secret a room uses a copy of: it must exist.
    async fn shared_default_secret(
        &self,
        name: &str,
        what: &str,
    ) -> Result<BTreeMap<String, ByteString>> {
        self.default_secret(name).await?.ok_or_else(|| {
            Error::Config(format!(
                "default {what} Secret {}/{name} does not exist",
                self.config.operator_namespace
            ))
        })
    }

    fn full_apply_due(&self, key: &str) -> bool {
        self.last_full_apply
            .lock()
            .map(|m| m.get(key).is_none_or(|at| at.elapsed() >= self.resync))
            .unwrap_or(true)
    }

    fn mark_full_apply(&self, key: &str) {
        if let Ok(mut m) = self.last_full_apply.lock() {
            m.insert(key.to_owned(), Instant::now());
        }
    }

    fn reset_failures(&self, key: &str) {
        if let Ok(mut f) = self.failures.lock() {
            f.remove(key);
        }
    }

    /// Exponential backoff per room: 5 s, 10 s, 20 s … up to 5 minutes.
    fn next_backoff(&self, key: &str) -> Duration {
        let attempts = self
            .failures
            .lock()
            .map(|mut f| {
                let n = f.entry(key.to_owned()).or_insert(0);
                *n = n.saturating_add(1);
                *n
            })
            .unwrap_or(1);
        ERROR_BACKOFF_BASE
            .saturating_mul(2u32.saturating_pow(attempts.saturating_sub(1).min(10)))
            .min(ERROR_BACKOFF_MAX)
    }

    async fn publish(
        &self,
        room: &StreamRoom,
        type_: EventType,
        reason: &str,
        action: &str,
        note: String,
    ) {
        let event = Event {
            type_,
            reason: reason.to_owned(),
            note: Some(note),
            action: action.to_owned(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&event, &room.object_ref(&())).await {
            // Events are best effort: never fail a reconcile because one was not recorded.
            warn!(error = %e, reason, "cannot publish event");
        }
    }
}

/// `namespace/name`: the room in logs, metric bookkeeping and the per-room maps.
fn room_key(room: &StreamRoom) -> String {
    RoomIdentity::new(room.namespace().unwrap_or_default(), room.name_any()).to_string()
}

fn now() -> Time {
    Time(jiff::Timestamp::now())
}

/// Reconcile one room. Errors go to [`error_policy`].
pub async fn reconcile(room: Arc<StreamRoom>, ctx: Arc<Context>) -> Result<Action> {
    let key = room_key(&room);
    let span = info_span!("reconcile", room = %key, generation = room.metadata.generation);
    async move {
        ctx.metrics.reconciles.inc();
        let started = Instant::now();
        let result = reconcile_inner(&room, &ctx, &key).await;
        ctx.metrics
            .reconcile_duration
            .observe(started.elapsed().as_secs_f64());
        if result.is_ok() {
            ctx.reset_failures(&key);
        }
        result
    }
    .instrument(span)
    .await
}

async fn reconcile_inner(room: &StreamRoom, ctx: &Context, key: &str) -> Result<Action> {
    if room.metadata.deletion_timestamp.is_some() {
        // Children are owned: the garbage collector removes them.
        ctx.metrics.set_phase(key, None);
        return Ok(Action::await_change());
    }

    // 0. only namespaces that opted in (cluster-wide mode)
    let namespace = room.namespace().unwrap_or_default();
    if !ctx.tenancy.serves(&namespace).await {
        if ctx.tenancy.first_refusal(key) {
            let selector = ctx
                .tenancy
                .selector()
                .map(MatchLabels::to_selector_string)
                .unwrap_or_default();
            info!(%namespace, %selector, "room ignored: its namespace has not opted in");
            ctx.publish(
                room,
                EventType::Warning,
                "NamespaceNotServed",
                "Admit",
                format!(
                    "roomcast serves StreamRooms only in namespaces labelled {selector}; namespace {namespace} is not"
                ),
            )
            .await;
        }
        ctx.metrics.set_phase(key, None);
        // A label change on the namespace brings the room back (see `run`).
        return Ok(Action::await_change());
    }
    ctx.tenancy.served(key);

    // 1. validate
    let valid = match validate::validate(room, &ctx.config) {
        Ok(valid) => valid,
        Err(error) => {
            warn!(reason = error.reason(), %error, "room cannot run");
            let status = status::error_status(room, &error, &now());
            if needs_status_patch(room, &status) {
                ctx.publish(
                    room,
                    EventType::Warning,
                    error.reason(),
                    "Validate",
                    error.to_string(),
                )
                .await;
                write_status(room, ctx, &status).await?;
            }
            ctx.metrics.set_phase(key, Some(RoomPhase::Error));
            // Nothing to retry: the next change of the room brings it back.
            return Ok(Action::await_change());
        }
    };

    // 2. build (with the inputs only the cluster has)
    let inputs = build_inputs(&valid, ctx).await?;
    let children = build::build_children(&valid, &ctx.config, &inputs)?;

    // 3. apply what is not already there, then remove what is no longer wanted
    let owner_uid = valid.room.owner.uid.clone();
    let full = ctx.full_apply_due(key);
    let to_apply = match plan_apply(ctx, &children, &owner_uid, full).await? {
        ApplyPlan::Apply(children) => children,
        ApplyPlan::Conflicts(conflicts) => {
            // Nothing is applied, not even the children whose names are free: the room's
            // Deployments would mount the foreign Secret or sit behind the foreign Service.
            warn!(objects = %conflicts.join(", "), "child names are taken by objects the room does not control");
            let status = status::conflict_status(room, &conflicts, &now());
            if needs_status_patch(room, &status) {
                for object in &conflicts {
                    ctx.publish(
                        room,
                        EventType::Warning,
                        status::CHILD_CONFLICT,
                        "Apply",
                        status::conflict_message(object),
                    )
                    .await;
                }
                write_status(room, ctx, &status).await?;
            }
            ctx.metrics.set_phase(key, status.phase);
            return Ok(Action::requeue(CONFLICT_RECHECK));
        }
    };
    if !inputs.keys.generated.is_empty() {
        let generated = inputs.keys.generated.join(", ");
        info!(keys = %generated, "generating room keys");
        ctx.publish(
            room,
            EventType::Normal,
            "KeysGenerated",
            "GenerateKeys",
            format!(
                "generated {generated} in Secret {}",
                valid.room.child(build::KEYS_SECRET)
            ),
        )
        .await;
    }
    let mut applied = Vec::new();
    for child in to_apply {
        if let Err(error) = apply::apply_child(&ctx.client, child).await {
            // Never leave a half-applied room without saying so.
            let what = format!("{}/{}", child.kind(), child.name());
            ctx.publish(
                room,
                EventType::Warning,
                "ApplyFailed",
                "Apply",
                format!("cannot apply {what}: {error}"),
            )
            .await;
            return Err(error);
        }
        ctx.metrics
            .children_applied
            .get_or_create(&KindLabels { kind: child.kind() })
            .inc();
        applied.push(format!("{}/{}", child.kind(), child.name()));
    }
    for leftover in ctx
        .stores
        .leftovers(&valid.room.namespace, &owner_uid, &children)
    {
        apply::delete_child(
            &ctx.client,
            &valid.room.namespace,
            leftover.kind,
            &leftover.name,
        )
        .await?;
        applied.push(format!("deleted {}/{}", leftover.kind, leftover.name));
    }
    if full {
        ctx.mark_full_apply(key);
    }
    if !applied.is_empty() {
        debug!(children = ?applied, "applied");
        if !full {
            ctx.publish(
                room,
                EventType::Normal,
                "ChildrenApplied",
                "Apply",
                format!("applied {}", applied.join(", ")),
            )
            .await;
        }
    }

    // 4. status. A Secret the room's pods mount that does not exist did not stop the apply
    // above: the Deployments wait for it (their pods cannot start, which a cluster shows only
    // as CreateContainerConfigError), the Secret may be created a moment later, and the watch
    // of Secrets reconciles the room as soon as it is, which clears the condition. Holding the
    // children back would only make the room slower to start once it exists.
    let observed = Observed {
        media: lookup(
            &ctx.stores.deployments,
            &valid.room.namespace,
            &valid.room.child("media"),
        )
        .map(|d| (*d).clone()),
        chat: lookup(
            &ctx.stores.deployments,
            &valid.room.namespace,
            &valid.room.child("chat"),
        )
        .map(|d| (*d).clone()),
        rtmp_service: lookup(
            &ctx.stores.services,
            &valid.room.namespace,
            &valid.room.child("rtmp"),
        )
        .map(|s| (*s).clone()),
        route: ctx.routes.get(key),
        missing_secrets: ctx.named_secrets.missing(&valid).await,
    };
    let now = now();
    let status = status::compute_status(room, &valid, &ctx.config, &observed, &now);
    if needs_status_patch(room, &status) {
        if let Some(note) = status::missing_secrets_news(room, &status) {
            warn!(%note, "the room names Secrets that do not exist");
            ctx.publish(
                room,
                EventType::Warning,
                room_secrets::SECRET_NOT_FOUND,
                "Reconcile",
                note,
            )
            .await;
        }
        write_status(room, ctx, &status).await?;
    }
    prune_stale_chat_replicas(room, ctx, &valid, &now).await;
    ctx.metrics.set_phase(key, status.phase);
    Ok(Action::requeue(ctx.resync))
}

/// Remove the `status.chat.replicas` entries of replicas that stopped reporting. Best effort:
/// a refused patch (a replica reported meanwhile) is tried again on the next pass.
async fn prune_stale_chat_replicas(
    room: &StreamRoom,
    ctx: &Context,
    valid: &ValidRoom,
    now: &Time,
) {
    let stale = status::stale_chat_replicas(room, now);
    if stale.is_empty() {
        return;
    }
    let pods: Vec<&str> = stale.iter().map(|(_, r)| r.pod.as_str()).collect();
    let patch = status::prune_chat_replicas_patch(&stale);
    match apply::json_patch_status(&ctx.client, &valid.room.namespace, &valid.room.name, patch)
        .await
    {
        Ok(()) => info!(pods = ?pods, "pruned chat replicas that stopped reporting"),
        Err(error) => debug!(%error, pods = ?pods, "stale chat replicas not pruned this pass"),
    }
}

/// Compare the operator's fields, ignoring the timestamps of unchanged conditions (kept by
/// [`status::carry_transition_times`]) so an unchanged room sends no patch.
fn needs_status_patch(room: &StreamRoom, next: &roomcast_crds::StreamRoomStatus) -> bool {
    let current = room
        .status
        .as_ref()
        .map(status::operator_fields)
        .unwrap_or_default();
    current != *next
}

async fn write_status(
    room: &StreamRoom,
    ctx: &Context,
    status: &roomcast_crds::StreamRoomStatus,
) -> Result<()> {
    let namespace = room
        .namespace()
        .ok_or(Error::MissingField("metadata.namespace"))?;
    apply::apply_status(&ctx.client, &namespace, &room.name_any(), status).await?;
    ctx.metrics.status_patches.inc();
    Ok(())
}

/// The room's keys (existing ones kept) and the operator's default Secrets it uses.
async fn build_inputs(valid: &ValidRoom, ctx: &Context) -> Result<BuildInputs> {
    let wanted = keys::wanted_keys(valid.spec.ingest.stream_key_secret_ref.is_some());
    let secret_name = valid.room.child(build::KEYS_SECRET);
    let cached = lookup(&ctx.stores.secrets, &valid.room.namespace, &secret_name);
    let has_all = |s: &Secret| {
        wanted.iter().all(|k| {
            s.data
                .as_ref()
                .is_some_and(|d| d.get(*k).is_some_and(|v| !v.0.is_empty()))
        })
    };
    // The cache may lag behind the cluster; before generating anything, ask the API server,
    // so a key is never replaced because of a stale cache.
    let existing = match cached {
        Some(secret) if has_all(&secret) => Some((*secret).clone()),
        _ => {
            let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &valid.room.namespace);
            api.get_opt(&secret_name).await?
        }
    }
    // Keys are only ever taken from the room's own Secret: a foreign Secret of that name is
    // a conflict (see `plan_apply`), never a source of keys.
    .filter(|s| labels::is_controlled_by(&s.metadata, &valid.room.owner.uid));
    let keys = keys::resolve_keys(
        existing.as_ref(),
        &wanted,
        &valid.rotation_requests,
        keys::random_key,
    );

    let default_s3_credentials = match (&valid.recording, &ctx.config.s3.credentials_secret) {
        (Some(r), Some(name)) if r.uses_default_credentials => {
            Some(ctx.shared_default_secret(name, "S3 credentials").await?)
        }
        _ => None,
    };
    let default_mongodb = match (&valid.mongodb, &ctx.config.mongodb_secret) {
        (Some(SecretSource::Shared), Some(name)) => {
            Some(ctx.shared_default_secret(name, "MongoDB").await?)
        }
        _ => None,
    };
    let default_redis = match (&valid.redis, &ctx.config.redis_secret) {
        (Some(SecretSource::Shared), Some(name)) => {
            Some(ctx.shared_default_secret(name, "Redis").await?)
        }
        _ => None,
    };
    Ok(BuildInputs {
        keys,
        default_s3_credentials,
        default_mongodb,
        default_redis,
    })
}

/// Transient errors back off per room; the controller tries again after the delay.
pub fn error_policy(room: Arc<StreamRoom>, error: &Error, ctx: Arc<Context>) -> Action {
    let key = room_key(&room);
    ctx.metrics
        .reconcile_errors
        .get_or_create(&ErrorLabels {
            error: error.metric_label(),
        })
        .inc();
    let delay = ctx.next_backoff(&key);
    warn!(room = %key, %error, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

fn owned_stream<K>(
    api: Api<K>,
) -> (
    Store<K>,
    impl futures::Stream<Item = std::result::Result<K, watcher::Error>> + Send + 'static,
)
where
    K: Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + Send
        + Sync
        + serde::de::DeserializeOwned
        + 'static,
{
    // `Api<PartialObjectMeta<_>>` watches metadata only: the operator needs no more than the
    // applied-hash annotation of most children, and this keeps memory flat with many rooms.
    let (reader, writer) = reflector::store();
    let config = watcher::Config::default().labels(labels::MANAGED_SELECTOR);
    let stream = watcher(api, config)
        .default_backoff()
        .reflect(writer)
        .touched_objects();
    (reader, stream)
}

fn api<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Run the controller until `shutdown` resolves. `ready` flips to true once every cache has
/// synced.
pub async fn run(
    client: Client,
    config: OperatorConfig,
    run: &RunConfig,
    metrics: Metrics,
    ready: tokio::sync::watch::Sender<bool>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let ns = run.watch_namespace.as_deref();
    let resync = Duration::from_secs(run.resync_seconds);
    let tenant_selector = run.tenant_namespace_selector.clone();
    let rooms: Api<StreamRoom> = api(&client, ns);

    let (controller, stores) = watch_children(
        &client,
        ns,
        Controller::new(rooms, watcher::Config::default()),
    );
    // Cluster-wide with a tenant selector: watch namespaces (metadata only), and reconcile a
    // namespace's rooms when its labels change, so opting in (or out) takes effect at once.
    let (controller, tenancy) = match (ns, tenant_selector.0.is_empty()) {
        (None, false) => {
            info!(selector = %tenant_selector.to_selector_string(), "serving rooms only in namespaces that opted in");
            let (store, writer) = reflector::store();
            let namespaces = watcher(
                Api::<PartialObjectMeta<Namespace>>::all(client.clone()),
                watcher::Config::default(),
            )
            .default_backoff()
            .reflect(writer)
            .touched_objects();
            let rooms = controller.store();
            let controller = controller.watches_stream(namespaces, move |namespace| {
                tenancy::rooms_in(&rooms, &namespace.metadata.name.unwrap_or_default())
            });
            (controller, Tenancy::opt_in(tenant_selector, store))
        }
        _ => (controller, Tenancy::everywhere()),
    };
    // The Secrets rooms name, by metadata: a change reconciles the rooms naming it, so a
    // missing Secret that gets created clears the room's condition at once.
    let (named_secrets, secret_changes) = room_secrets::watch(&client, ns, controller.store());
    let controller = controller.reconcile_on(secret_changes);
    // The gateway's routing table: its own task, which reconciles a room again when the
    // room's route appears, goes or changes state (the room's IngestRouted condition).
    let (route_changes, routes_trigger) = futures::channel::mpsc::unbounded();
    let controller = if config.gateway.enabled() {
        controller.reconcile_on(routes_trigger)
    } else {
        controller
    };
    let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
    let controller = controller.graceful_shutdown_on(async move {
        shutdown.await;
        let _ = shutdown_tx.send(true);
    });
    let rooms = controller.store();
    let children = stores.clone();
    let secrets = named_secrets.clone();
    tokio::spawn(async move {
        // Ready once the room cache, every child cache and the Secrets cache have their first
        // full list.
        if store_ready(&rooms).await && children.synced().await && secrets.synced().await {
            info!("caches synced");
            let _ = ready.send(true);
        }
    });
    let mut ctx = Context::new(client, config, metrics, stores, resync);
    ctx.tenancy = tenancy;
    ctx.named_secrets = named_secrets;
    let ctx = Arc::new(ctx);
    if ctx.config.gateway.enabled() {
        let mut stop = shutdown_rx;
        tokio::spawn(routes::run(
            ctx.clone(),
            controller.store(),
            route_changes,
            async move {
                let _ = stop.wait_for(|stop| *stop).await;
            },
        ));
    }

    controller
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            if let Err(e) = result {
                debug!(error = %e, "controller event");
            }
        })
        .await;
    info!("controller stopped");
}

#[cfg(test)]
mod tests {
    use std::pin::pin;

    use futures::poll;
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::runtime::watcher;

    use super::*;

    #[tokio::test]
    async fn store_ready_sees_a_store_that_another_task_also_waits_on() {
        let (reader, mut writer) = reflector::store::<ConfigMap>();
        let waiting = reader.clone();
        let ours = tokio::spawn(async move { store_ready(&waiting).await });
        // Let our task poll the store once, then wait on it here too, as the Controller does:
        // this takes the store's only waker, and a plain `wait_until_ready` in our task would
        // never be woken again.
        tokio::task::yield_now().await;
        let mut theirs = pin!(reader.wait_until_ready());
        assert!(poll!(theirs.as_mut()).is_pending());
        writer.apply_watcher_event(&watcher::Event::InitDone);
        let ready = tokio::time::timeout(Duration::from_secs(5), ours).await;
        assert!(matches!(ready, Ok(Ok(true))), "{ready:?}");
    }

    #[tokio::test]
    async fn store_ready_is_false_when_the_writer_is_gone() {
        let (reader, writer) = reflector::store::<ConfigMap>();
        drop(writer);
        let ready = tokio::time::timeout(Duration::from_secs(5), store_ready(&reader)).await;
        assert_eq!(ready, Ok(false));
    }
}
