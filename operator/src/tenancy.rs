//! Which namespaces the operator serves. Watching one namespace (`WATCH_NAMESPACE`, the
//! recommended way to serve tenants) serves exactly that one. Cluster-wide, a namespace is
//! served only when its labels match `ROOMCAST_TENANT_NAMESPACE_SELECTOR`
//! (`roomcast.dev/tenant=enabled` by default): a StreamRoom created in any other namespace is
//! ignored, reported once in the log and with an Event, and gets no children.
//!
//! RBAC cannot follow namespace labels, so the ClusterRole still grants the operator its
//! verbs everywhere; this keeps a tenant with StreamRoom rights in an unlisted namespace from
//! making the operator act there.

use std::{collections::BTreeSet, sync::Mutex};

use k8s_openapi::api::core::v1::Namespace;
use kube::{
    core::PartialObjectMeta,
    runtime::reflector::{ObjectRef, Store},
};

use roomcast_crds::StreamRoom;

use crate::labels::MatchLabels;

/// Namespaces whose rooms are served unless configured otherwise.
pub const DEFAULT_TENANT_NAMESPACE_SELECTOR: &str = "roomcast.dev/tenant=enabled";

/// The operator's view of which namespaces it serves.
pub struct Tenancy {
    /// `None`: every namespace the operator watches (one namespace, or an empty selector).
    opt_in: Option<(MatchLabels, Store<PartialObjectMeta<Namespace>>)>,
    /// Rooms already reported as not served, so the log and the Events say it once.
    reported: Mutex<BTreeSet<String>>,
}

impl Tenancy {
    /// Serve every namespace that is watched.
    pub fn everywhere() -> Self {
        Self {
            opt_in: None,
            reported: Mutex::default(),
        }
    }

    /// Serve the namespaces whose labels (as `namespaces` caches them) match `selector`.
    pub fn opt_in(selector: MatchLabels, namespaces: Store<PartialObjectMeta<Namespace>>) -> Self {
        if selector.0.is_empty() {
            return Self::everywhere();
        }
        Self {
            opt_in: Some((selector, namespaces)),
            reported: Mutex::default(),
        }
    }

    /// The selector namespaces must match, if any (for messages).
    pub fn selector(&self) -> Option<&MatchLabels> {
        self.opt_in.as_ref().map(|(selector, _)| selector)
    }

    /// True when rooms in `namespace` are served. Waits for the first list of namespaces, so
    /// a room is never turned away because the cache was still empty at start.
    pub async fn serves(&self, namespace: &str) -> bool {
        let Some((selector, namespaces)) = &self.opt_in else {
            return true;
        };
        if namespaces.wait_until_ready().await.is_err() {
            return false;
        }
        let labels = namespaces
            .get(&ObjectRef::new(namespace))
            .and_then(|ns| ns.metadata.labels.clone());
        selector.matches(labels.as_ref())
    }

    /// True the first time a room is reported as not served (until it is served again).
    pub fn first_refusal(&self, room: &str) -> bool {
        self.reported
            .lock()
            .map(|mut reported| reported.insert(room.to_owned()))
            .unwrap_or(true)
    }

    /// The room is served: a later refusal is news again.
    pub fn served(&self, room: &str) {
        if let Ok(mut reported) = self.reported.lock() {
            reported.remove(room);
        }
    }
}

/// The rooms of one namespace, to reconcile when the namespace's labels change (it opted in
/// or out).
pub fn rooms_in(rooms: &Store<StreamRoom>, namespace: &str) -> Vec<ObjectRef<StreamRoom>> {
    rooms
        .state()
        .iter()
        .filter(|room| room.metadata.namespace.as_deref() == Some(namespace))
        .map(|room| ObjectRef::from_obj(&**room))
        .collect()
}

#[cfg(test)]
mod tests {
    use kube::runtime::{reflector, watcher};

    use super::*;

    fn namespace(name: &str, labels: &[(&str, &str)]) -> PartialObjectMeta<Namespace> {
        let mut ns = PartialObjectMeta::<Namespace>::default();
        ns.metadata.name = Some(name.to_owned());
        ns.metadata.labels = Some(
            labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        );
        ns
    }

    fn selector() -> MatchLabels {
        MatchLabels::parse(DEFAULT_TENANT_NAMESPACE_SELECTOR).expect("default parses")
    }

    #[tokio::test]
    async fn only_namespaces_carrying_the_label_are_served() {
        let (store, mut writer) = reflector::store();
        writer.apply_watcher_event(&watcher::Event::Init);
        for ns in [
            namespace("shows", &[("roomcast.dev/tenant", "enabled")]),
            namespace("kube-system", &[]),
            namespace("sneaky", &[("roomcast.dev/tenant", "yes")]),
            namespace("lookalike", &[("roomcast.dev/tenant-enabled", "enabled")]),
        ] {
            writer.apply_watcher_event(&watcher::Event::InitApply(ns));
        }
        writer.apply_watcher_event(&watcher::Event::InitDone);
        let tenancy = Tenancy::opt_in(selector(), store);
        assert!(tenancy.serves("shows").await);
        for refused in ["kube-system", "sneaky", "lookalike", "missing"] {
            assert!(!tenancy.serves(refused).await, "{refused}");
        }
        // Opting out takes effect with the next namespace event.
        writer.apply_watcher_event(&watcher::Event::Apply(namespace("shows", &[])));
        assert!(!tenancy.serves("shows").await);
    }

    #[tokio::test]
    async fn one_namespace_or_an_empty_selector_serves_everything() {
        assert!(Tenancy::everywhere().serves("anything").await);
        let (store, _writer) = reflector::store();
        let tenancy = Tenancy::opt_in(MatchLabels::default(), store);
        assert!(tenancy.selector().is_none());
        assert!(tenancy.serves("anything").await);
    }

    #[test]
    fn a_refusal_is_reported_once_until_the_room_is_served_again() {
        let tenancy = Tenancy::everywhere();
        assert!(tenancy.first_refusal("shows/lobby"));
        assert!(!tenancy.first_refusal("shows/lobby"));
        assert!(tenancy.first_refusal("other/lobby"));
        tenancy.served("shows/lobby");
        assert!(tenancy.first_refusal("shows/lobby"));
    }

    #[test]
    fn a_namespace_change_reconciles_exactly_the_rooms_in_it() {
        let (store, mut writer) = reflector::store::<StreamRoom>();
        writer.apply_watcher_event(&watcher::Event::Init);
        for (namespace, name) in [("shows", "lobby"), ("shows", "stage"), ("other", "lobby")] {
            let mut room = StreamRoom::new(name, Default::default());
            room.metadata.namespace = Some(namespace.to_owned());
            writer.apply_watcher_event(&watcher::Event::InitApply(room));
        }
        writer.apply_watcher_event(&watcher::Event::InitDone);
        let mut found: Vec<String> = rooms_in(&store, "shows")
            .iter()
            .map(ToString::to_string)
            .collect();
        found.sort();
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found.iter().all(|r| r.contains("shows")), "{found:?}");
        assert!(rooms_in(&store, "nobody").is_empty());
    }
}
