//! Reconcile against a mock API server: the real controller code, a real `kube::Client`,
//! every HTTP call recorded and checked (method, path, body).

use std::{sync::Arc, time::Duration};

use http::Method;
use kube::runtime::controller::Action;
use roomcast_crds::StreamRoom;
use roomcast_operator::{
    build::ChildKind,
    config::OperatorConfig,
    controller::{ChildStores, Context, error_policy, reconcile},
    fixtures::{Behaviour, Call, MockApi},
    labels::MatchLabels,
    metrics::Metrics,
    tenancy::{DEFAULT_TENANT_NAMESPACE_SELECTOR, Tenancy},
};
use serde_json::{Value, json};

const ROOM: &str = r#"
apiVersion: roomcast.dev/v1alpha1
kind: StreamRoom
metadata: {name: lobby, namespace: shows, uid: 7b1e0c52-0000-4000-8000-000000000001, generation: 1}
spec:
  chat: {replicas: 2}
"#;

const ROOM_UID: &str = "7b1e0c52-0000-4000-8000-000000000001";
/// A room with a child of every kind (the Ingress needs a host, the PDB chat).
fn room_with_every_child() -> String {
    format!("{ROOM}  playback: {{host: live.example.com}}\n")
}
const KEYS_PATH: &str = "/api/v1/namespaces/shows/secrets/lobby-keys";
const STATUS_PATH: &str = "/apis/roomcast.dev/v1alpha1/namespaces/shows/streamrooms/lobby/status";
const EVENTS_PATH: &str = "/apis/events.k8s.io/v1/namespaces/shows/events";
const TIMEOUT: Duration = Duration::from_secs(10);

fn room(yaml: &str) -> Arc<StreamRoom> {
    Arc::new(serde_yaml::from_str(yaml).expect("test room parses"))
}

fn context(behaviour: Behaviour) -> (Arc<Context>, MockApi) {
    context_with_stores(behaviour, ChildStores::default())
}

fn context_with_stores(behaviour: Behaviour, stores: ChildStores) -> (Arc<Context>, MockApi) {
    context_with(behaviour, stores, test_config(), Tenancy::everywhere())
}

fn test_config() -> OperatorConfig {
    OperatorConfig {
        media_image: "roomcast:test".into(),
        chat_image: "roomcast:test".into(),
        playback_scheme: "https".into(),
        operator_namespace: "roomcast-system".into(),
        ..OperatorConfig::default()
    }
}

fn context_with(
    behaviour: Behaviour,
    stores: ChildStores,
    config: OperatorConfig,
    tenancy: Tenancy,
) -> (Arc<Context>, MockApi) {
    let (client, mock) = MockApi::start(behaviour, true);
    let mut ctx = Context::new(
        client,
        config,
        Metrics::default(),
        stores,
        Duration::from_secs(600),
    );
    ctx.tenancy = tenancy;
    (Arc::new(ctx), mock)
}

fn patches(calls: &[Call]) -> Vec<&Call> {
    calls.iter().filter(|c| c.method == Method::PATCH).collect()
}

fn child_patches(calls: &[Call]) -> Vec<String> {
    patches(calls)
        .into_iter()
        .filter(|c| !c.path().ends_with("/status"))
        .map(|c| c.path().to_owned())
        .collect()
}

fn events(calls: &[Call]) -> Vec<&Value> {
    calls
        .iter()
        .filter(|c| c.method == Method::POST && c.path() == EVENTS_PATH)
        .map(|c| &c.body)
        .collect()
}

/// The calls of a pass that reports a room which cannot run: at least an event and a status
/// patch (a timeout catches calls that never came).
async fn event_and_status(mock: &MockApi) -> Vec<Call> {
    mock.wait_for_calls(2, TIMEOUT)
        .await
        .unwrap_or_else(|calls| panic!("expected an event and a status patch, got {calls:#?}"))
}

fn has_event(calls: &[Call], reason: &str) -> bool {
    events(calls).iter().any(|e| e["reason"] == reason)
}

/// `lobby-keys` holding both keys, with `owner_references` as its owners.
fn keys_secret(owner_references: Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "lobby-keys", "namespace": "shows", "ownerReferences": owner_references},
        // base64 of "streamkey-1" and "signing-1"
        "data": {"stream-key": "c3RyZWFta2V5LTE=", "chat-signing-key": "c2lnbmluZy0x"}
    })
}

fn status_patch(calls: &[Call]) -> Option<&Value> {
    calls
        .iter()
        .find(|c| c.path() == STATUS_PATH)
        .map(|c| &c.body)
}

#[tokio::test]
async fn new_room_gets_every_child_applied_and_a_pending_status() {
    let (ctx, mock) = context(Behaviour::default());
    let action = reconcile(room(ROOM), ctx)
        .await
        .expect("reconcile succeeds");
    assert_eq!(action, Action::requeue(Duration::from_secs(600)));
    let calls = mock.calls();

    // The keys Secret is looked up before anything is generated.
    assert_eq!(calls[0].method, Method::GET);
    assert_eq!(calls[0].path(), KEYS_PATH);

    let applied = child_patches(&calls);
    for expected in [
        KEYS_PATH,
        "/api/v1/namespaces/shows/configmaps/lobby-config",
        "/api/v1/namespaces/shows/serviceaccounts/lobby-worker",
        "/apis/rbac.authorization.k8s.io/v1/namespaces/shows/roles/lobby-worker",
        "/apis/rbac.authorization.k8s.io/v1/namespaces/shows/rolebindings/lobby-worker",
        "/api/v1/namespaces/shows/services/lobby-rtmp",
        "/api/v1/namespaces/shows/services/lobby-hls",
        "/api/v1/namespaces/shows/services/lobby-chat",
        "/apis/apps/v1/namespaces/shows/deployments/lobby-media",
        "/apis/apps/v1/namespaces/shows/deployments/lobby-chat",
        "/apis/policy/v1/namespaces/shows/poddisruptionbudgets/lobby-chat",
        "/apis/networking.k8s.io/v1/namespaces/shows/networkpolicies/lobby-media",
        "/apis/networking.k8s.io/v1/namespaces/shows/networkpolicies/lobby-chat",
    ] {
        assert!(
            applied.iter().any(|p| p == expected),
            "{expected} not applied; got {applied:#?}"
        );
    }
    // No host anywhere: no Ingress.
    assert!(
        !applied.iter().any(|p| p.contains("ingresses")),
        "{applied:#?}"
    );

    // Every apply is server-side apply by the operator's field manager, forced.
    for call in patches(&calls) {
        assert!(
            call.uri.contains("fieldManager=roomcast-operator"),
            "{}",
            call.uri
        );
        assert!(call.uri.contains("force=true"), "{}", call.uri);
    }

    // Both keys generated, announced by an Event that names them but not their values.
    let keys = patches(&calls)
        .into_iter()
        .find(|c| c.path() == KEYS_PATH)
        .expect("keys applied");
    let data = keys.body["data"].as_object().expect("secret data");
    assert!(data.contains_key("stream-key") && data.contains_key("chat-signing-key"));
    let event = events(&calls)
        .into_iter()
        .find(|e| e["reason"] == "KeysGenerated")
        .expect("KeysGenerated event");
    assert!(
        event["note"]
            .as_str()
            .unwrap_or_default()
            .contains("stream-key")
    );

    // Status: Pending (no worker available yet), generation observed, conditions present.
    let status = &status_patch(&calls).expect("status patched")["status"];
    assert_eq!(status["phase"], "Pending");
    assert_eq!(status["observedGeneration"], 1);
    let types: Vec<&str> = status["conditions"]
        .as_array()
        .expect("conditions")
        .iter()
        .filter_map(|c| c["type"].as_str())
        .collect();
    assert_eq!(
        types,
        ["Ready", "IngestReady", "ChatReady", "RecordingReady"]
    );
    assert_eq!(
        status["ingestUrl"],
        Value::Null,
        "a LoadBalancer without an address and no external host has no ingest URL yet: {status}"
    );
}

#[tokio::test]
async fn existing_secret_keys_are_kept() {
    let existing = keys_secret(owner(ROOM_UID, true));
    let behaviour = Behaviour {
        existing: [(KEYS_PATH.to_owned(), existing)].into_iter().collect(),
        ..Behaviour::default()
    };
    let (ctx, mock) = context(behaviour);
    reconcile(room(ROOM), ctx)
        .await
        .expect("reconcile succeeds");
    let calls = mock.calls();
    let keys = patches(&calls)
        .into_iter()
        .find(|c| c.path() == KEYS_PATH)
        .expect("keys applied");
    assert_eq!(keys.body["data"]["stream-key"], "c3RyZWFta2V5LTE=");
    assert_eq!(keys.body["data"]["chat-signing-key"], "c2lnbmluZy0x");
    assert!(
        !has_event(&calls, "KeysGenerated"),
        "no key may be generated when both exist"
    );
}

#[tokio::test]
async fn spec_change_patches_children_and_observes_the_new_generation() {
    let (ctx, mock) = context(Behaviour::default());
    reconcile(room(ROOM), ctx.clone())
        .await
        .expect("first pass");
    let first = mock.calls().len();

    let changed = ROOM.replace("generation: 1", "generation: 2").replace(
        "chat: {replicas: 2}",
        "chat: {replicas: 2}\n  transcode: {segmentSeconds: 4}",
    );
    reconcile(room(&changed), ctx).await.expect("second pass");
    let calls = mock.calls()[first..].to_vec();

    let config_map = patches(&calls)
        .into_iter()
        .find(|c| c.path().ends_with("/configmaps/lobby-config"))
        .expect("ConfigMap patched");
    let worker_config = config_map.body["data"]["room.yaml"]
        .as_str()
        .unwrap_or_default();
    assert!(
        worker_config.contains("segmentSeconds: 4"),
        "{worker_config}"
    );
    assert!(
        child_patches(&calls)
            .iter()
            .any(|p| p.ends_with("/deployments/lobby-media")),
        "the media Deployment rolls on a config change"
    );
    let status = &status_patch(&calls).expect("status patched")["status"];
    assert_eq!(status["observedGeneration"], 2);
    assert!(
        status["conditions"]
            .as_array()
            .expect("conditions")
            .iter()
            .all(|c| c["observedGeneration"] == 2)
    );
}

#[tokio::test]
async fn invalid_spec_sets_error_condition_and_event_without_children() {
    let invalid = ROOM.replace("chat: {replicas: 2}", "transcode: {segmentSeconds: 30}");
    let (ctx, mock) = context(Behaviour::default());
    let action = reconcile(room(&invalid), ctx)
        .await
        .expect("an invalid room is not an error");
    assert_eq!(
        action,
        Action::await_change(),
        "an invalid spec waits for the next change"
    );
    let calls = event_and_status(&mock).await;

    assert!(
        child_patches(&calls).is_empty(),
        "no children for an invalid room: {calls:#?}"
    );
    let event = events(&calls).into_iter().next().expect("warning event");
    assert_eq!(event["type"], "Warning");
    assert_eq!(event["reason"], "InvalidSpec");
    assert!(
        event["note"]
            .as_str()
            .unwrap_or_default()
            .contains("segmentSeconds")
    );

    let status = &status_patch(&calls).expect("status patched")["status"];
    assert_eq!(status["phase"], "Error");
    let ready = &status["conditions"][0];
    assert_eq!(ready["type"], "Ready");
    assert_eq!(ready["status"], "False");
    assert_eq!(ready["reason"], "InvalidSpec");
}

#[tokio::test]
async fn recording_without_any_bucket_is_reported_not_applied() {
    let invalid = ROOM.replace("chat: {replicas: 2}", "recording: {enabled: true}");
    let (ctx, mock) = context(Behaviour::default());
    reconcile(room(&invalid), ctx)
        .await
        .expect("reported, not failed");
    let calls = mock.calls();
    assert!(child_patches(&calls).is_empty());
    let status = &status_patch(&calls).expect("status patched")["status"];
    assert_eq!(status["conditions"][0]["reason"], "RecordingWithoutBucket");
}

#[tokio::test]
async fn dvr_window_beyond_the_media_memory_limit_is_refused_with_the_arithmetic() {
    let invalid = ROOM.replace("chat: {replicas: 2}", "transcode: {dvrWindowSeconds: 7200}");
    let (ctx, mock) = context(Behaviour::default());
    let action = reconcile(room(&invalid), ctx)
        .await
        .expect("reported, not failed");
    assert_eq!(action, Action::await_change());
    let calls = event_and_status(&mock).await;
    assert!(child_patches(&calls).is_empty(), "{calls:#?}");

    let event = events(&calls).into_iter().next().expect("warning event");
    assert_eq!(event["type"], "Warning");
    assert_eq!(event["reason"], "DvrWindowExceedsMemoryLimit");
    let note = event["note"].as_str().unwrap_or_default();
    for named in [
        "DVR 7200 s",
        "> media memory limit 2.0 GiB",
        "spec.transcode.dvrWindowSeconds",
        "spec.resources.media.limits.memory",
    ] {
        assert!(note.contains(named), "{named:?} missing from {note}");
    }

    let status = &status_patch(&calls).expect("status patched")["status"];
    assert_eq!(status["phase"], "Error");
    assert_eq!(
        status["conditions"][0]["reason"],
        "DvrWindowExceedsMemoryLimit"
    );
}

#[tokio::test]
async fn apply_error_goes_to_the_error_policy_with_backoff() {
    let behaviour = Behaviour {
        fail_patches_containing: Some("/deployments/".into()),
        ..Behaviour::default()
    };
    let (ctx, mock) = context(behaviour);
    let room = room(ROOM);
    let error = reconcile(room.clone(), ctx.clone())
        .await
        .expect_err("a failing apply fails the reconcile");
    assert_eq!(error.metric_label(), "kube_api");
    assert!(
        status_patch(&mock.calls()).is_none(),
        "no status from a failed pass"
    );

    assert_eq!(
        error_policy(room.clone(), &error, ctx.clone()),
        Action::requeue(Duration::from_secs(5))
    );
    assert_eq!(
        error_policy(room.clone(), &error, ctx.clone()),
        Action::requeue(Duration::from_secs(10))
    );
    let metrics = ctx.metrics.encode();
    assert!(
        metrics.contains(r#"roomcast_operator_reconcile_errors_total{error="kube_api"} 2"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn unchanged_status_is_not_patched_again() {
    let (ctx, mock) = context(Behaviour::default());
    reconcile(room(ROOM), ctx.clone())
        .await
        .expect("first pass");
    let status = status_patch(&mock.calls()).expect("status patched")["status"].clone();

    let mut seen: StreamRoom = serde_yaml::from_str(ROOM).expect("room parses");
    seen.status = Some(serde_json::from_value(status).expect("status parses"));
    let before = mock.calls().len();
    reconcile(Arc::new(seen), ctx).await.expect("second pass");
    let calls = mock.calls()[before..].to_vec();
    assert!(
        status_patch(&calls).is_none(),
        "identical status must not be patched: {calls:#?}"
    );
}

#[tokio::test]
async fn deleted_room_is_left_to_the_garbage_collector() {
    let deleting = ROOM.replace(
        "generation: 1",
        "generation: 1, deletionTimestamp: '2026-11-29T00:00:00Z'",
    );
    let (ctx, mock) = context(Behaviour::default());
    let action = reconcile(room(&deleting), ctx).await.expect("no error");
    assert_eq!(action, Action::await_change());
    assert!(
        mock.calls().is_empty(),
        "owner references clean up; no calls expected"
    );
}

/// A child in `shows` whose controller is the room `lobby` with this uid.
fn owned(name: &str, uid: &str) -> Value {
    json!({
        "metadata": {"name": name, "namespace": "shows",
            "ownerReferences": [{"apiVersion": "roomcast.dev/v1alpha1", "kind": "StreamRoom",
                "name": "lobby", "uid": uid, "controller": true}]}
    })
}

fn deletions(calls: &[Call]) -> Vec<String> {
    calls
        .iter()
        .filter(|c| c.method == Method::DELETE)
        .map(|c| c.path().to_owned())
        .collect()
}

#[tokio::test]
async fn the_single_network_policy_of_older_releases_is_deleted_on_upgrade() {
    use k8s_openapi::api::networking::v1::NetworkPolicy;
    use kube::{
        core::PartialObjectMeta,
        runtime::{reflector, watcher},
    };

    let (policies, mut writer) = reflector::store::<PartialObjectMeta<NetworkPolicy>>();
    for name in ["lobby", "lobby-media", "lobby-chat"] {
        let policy = serde_json::from_value(owned(name, ROOM_UID)).expect("policy");
        writer.apply_watcher_event(&watcher::Event::Apply(policy));
    }
    let stores = ChildStores {
        network_policies: Some(policies),
        ..ChildStores::default()
    };
    let (ctx, mock) = context_with_stores(Behaviour::default(), stores);
    reconcile(room(ROOM), ctx)
        .await
        .expect("reconcile succeeds");
    assert_eq!(
        deletions(&mock.calls()),
        ["/apis/networking.k8s.io/v1/namespaces/shows/networkpolicies/lobby"]
    );
}

#[tokio::test]
async fn turning_chat_off_deletes_the_chat_children_it_owned() {
    use k8s_openapi::api::{apps::v1::Deployment, core::v1::Service};
    use kube::runtime::{reflector, watcher};

    let room_uid = ROOM_UID;
    let (deployments, mut deployment_writer) = reflector::store::<Deployment>();
    for (name, uid) in [
        ("lobby-media", room_uid),
        ("lobby-chat", room_uid),
        ("someone-elses", "another-uid"),
    ] {
        let deployment: Deployment = serde_json::from_value(owned(name, uid)).expect("deployment");
        deployment_writer.apply_watcher_event(&watcher::Event::Apply(deployment));
    }
    let (services, mut service_writer) = reflector::store::<Service>();
    let service: Service = serde_json::from_value(owned("lobby-chat", room_uid)).expect("service");
    service_writer.apply_watcher_event(&watcher::Event::Apply(service));
    let stores = ChildStores {
        deployments: Some(deployments),
        services: Some(services),
        ..ChildStores::default()
    };

    let (ctx, mock) = context_with_stores(Behaviour::default(), stores);
    let chat_off = ROOM.replace("chat: {replicas: 2}", "chat: {enabled: false}");
    reconcile(room(&chat_off), ctx)
        .await
        .expect("reconcile succeeds");
    assert_eq!(
        deletions(&mock.calls()),
        [
            "/api/v1/namespaces/shows/services/lobby-chat",
            "/apis/apps/v1/namespaces/shows/deployments/lobby-chat",
        ],
        "only the room's own leftovers are deleted"
    );
}

#[tokio::test]
async fn failed_apply_is_announced_with_a_warning_event() {
    let behaviour = Behaviour {
        fail_patches_containing: Some("/services/lobby-hls".into()),
        ..Behaviour::default()
    };
    let (ctx, mock) = context(behaviour);
    reconcile(room(ROOM), ctx).await.expect_err("apply fails");
    let calls = mock.calls();
    let event = events(&calls)
        .into_iter()
        .find(|e| e["reason"] == "ApplyFailed")
        .expect("ApplyFailed event");
    assert_eq!(event["type"], "Warning");
    assert!(
        event["note"]
            .as_str()
            .unwrap_or_default()
            .contains("Service/lobby-hls"),
        "{event}"
    );
}

/// Where a child of `kind` lives in the API (the test names each kind, so a new kind in
/// `child_kinds!` fails to compile here until it is covered).
fn collection(kind: ChildKind) -> &'static str {
    match kind {
        ChildKind::Secret => "/secrets/",
        ChildKind::ConfigMap => "/configmaps/",
        ChildKind::ServiceAccount => "/serviceaccounts/",
        ChildKind::Role => "/roles/",
        ChildKind::RoleBinding => "/rolebindings/",
        ChildKind::Service => "/services/",
        ChildKind::Deployment => "/deployments/",
        ChildKind::Ingress => "/ingresses/",
        ChildKind::NetworkPolicy => "/networkpolicies/",
        ChildKind::PodDisruptionBudget => "/poddisruptionbudgets/",
    }
}

/// An object found at `path` whose metadata carries `owner_references`.
fn existing_at(path: &str, owner_references: Value) -> Behaviour {
    let name = path.rsplit('/').next().unwrap_or_default();
    let object = json!({"metadata": {"name": name, "namespace": "shows",
        "labels": {"app.kubernetes.io/managed-by": "roomcast-operator"},
        "ownerReferences": owner_references}});
    Behaviour {
        existing: [(path.to_owned(), object)].into_iter().collect(),
        ..Behaviour::default()
    }
}

fn owner(uid: &str, controller: bool) -> Value {
    json!([{"apiVersion": "roomcast.dev/v1alpha1", "kind": "StreamRoom", "name": "lobby",
            "uid": uid, "controller": controller}])
}

#[tokio::test]
async fn a_child_name_held_by_an_object_the_room_does_not_control_is_never_applied() {
    // Where each kind's first child is applied, from a pass against an empty namespace.
    let (ctx, mock) = context(Behaviour::default());
    reconcile(room(&room_with_every_child()), ctx)
        .await
        .expect("first pass");
    let paths = child_patches(&mock.calls());

    for &kind in ChildKind::ALL {
        let path = paths
            .iter()
            .find(|p| p.contains(collection(kind)))
            .unwrap_or_else(|| panic!("no {kind} applied; got {paths:#?}"));
        let name = path.rsplit('/').next().unwrap_or_default();
        let object = format!("{kind}/{name}");
        for (case, owner_references) in [
            ("no owner", json!([])),
            ("another room", owner("another-room-uid", true)),
            ("this room, not as controller", owner(ROOM_UID, false)),
        ] {
            let (ctx, mock) = context(existing_at(path, owner_references));
            let action = reconcile(room(&room_with_every_child()), ctx)
                .await
                .expect("a conflict is reported, not failed");
            assert_eq!(
                action,
                Action::requeue(Duration::from_secs(60)),
                "{object}, {case}"
            );
            let calls = mock.calls();
            assert!(
                child_patches(&calls).is_empty(),
                "{object} ({case}): nothing may be applied, got {:#?}",
                child_patches(&calls)
            );
            assert!(
                !calls.iter().any(|c| c.method == Method::DELETE),
                "{object} ({case}): nothing may be deleted"
            );

            let status = &status_patch(&calls).expect("status patched")["status"];
            assert_eq!(status["phase"], "Error", "{object}, {case}");
            let conditions = status["conditions"].as_array().expect("conditions");
            let ready = &conditions[0];
            assert_eq!(
                (&ready["type"], &ready["status"], &ready["reason"]),
                (&json!("Ready"), &json!("False"), &json!("ChildConflict")),
                "{object}, {case}"
            );
            let conflict = conditions
                .iter()
                .find(|c| c["type"] == "ChildConflict")
                .unwrap_or_else(|| panic!("{object} ({case}): no ChildConflict condition"));
            assert_eq!(conflict["status"], "True");
            assert!(
                conflict["message"]
                    .as_str()
                    .unwrap_or_default()
                    .contains(&object),
                "{object} ({case}): {conflict}"
            );

            let event = events(&calls)
                .into_iter()
                .find(|e| e["reason"] == "ChildConflict")
                .unwrap_or_else(|| panic!("{object} ({case}): no ChildConflict event"));
            assert_eq!(event["type"], "Warning");
            assert!(
                event["note"].as_str().unwrap_or_default().contains(&object),
                "{object} ({case}): {event}"
            );
            assert!(
                !has_event(&calls, "KeysGenerated"),
                "{object} ({case}): no keys are announced for a room that is not applied"
            );
        }

        // The same name held by the room itself is applied as usual.
        let (ctx, mock) = context(existing_at(path, owner(ROOM_UID, true)));
        reconcile(room(&room_with_every_child()), ctx)
            .await
            .expect("reconcile succeeds");
        let calls = mock.calls();
        assert!(
            child_patches(&calls).iter().any(|p| p == path),
            "{object} controlled by the room must be applied"
        );
        assert!(!has_event(&calls, "ChildConflict"), "{object}: no conflict");
    }
}

#[tokio::test]
async fn a_foreign_secret_of_the_keys_name_holds_the_room_without_leaking_its_data() {
    let foreign = keys_secret(json!([]));
    let behaviour = Behaviour {
        existing: [(KEYS_PATH.to_owned(), foreign)].into_iter().collect(),
        ..Behaviour::default()
    };
    let (ctx, mock) = context(behaviour);
    reconcile(room(ROOM), ctx).await.expect("reported");
    let calls = mock.calls();
    assert!(child_patches(&calls).is_empty(), "{calls:#?}");
    let status = serde_json::to_string(&status_patch(&calls).expect("status")).expect("json");
    assert!(
        !status.contains("c3RyZWFta2V5LTE") && status.contains("Secret/lobby-keys"),
        "{status}"
    );
}

/// A platform with default S3 credentials, MongoDB and Redis in its own namespace.
fn platform_with_secrets(share: bool) -> OperatorConfig {
    let mut config = test_config();
    config.s3.bucket = Some("platform-vods".into());
    config.s3.credentials_secret = Some("roomcast-s3".into());
    config.mongodb_secret = Some("roomcast-mongodb".into());
    config.redis_secret = Some("roomcast-redis".into());
    config.share_default_credentials = share;
    config
}

const OPERATOR_SECRETS: &str = "/api/v1/namespaces/roomcast-system/secrets/";

#[tokio::test]
async fn a_room_needing_unshared_platform_credentials_says_so_and_gets_no_pods() {
    let recording = ROOM.replace("chat: {replicas: 2}", "recording: {enabled: true}");
    let (ctx, mock) = context_with(
        Behaviour::default(),
        ChildStores::default(),
        platform_with_secrets(false),
        Tenancy::everywhere(),
    );
    let action = reconcile(room(&recording), ctx)
        .await
        .expect("reported, not failed");
    assert_eq!(action, Action::await_change());
    let calls = event_and_status(&mock).await;
    assert!(child_patches(&calls).is_empty(), "{calls:#?}");
    assert!(
        !calls.iter().any(|c| c.path().starts_with(OPERATOR_SECRETS)),
        "the platform's Secrets are not even read: {calls:#?}"
    );
    let status = &status_patch(&calls).expect("status patched")["status"];
    assert_eq!(status["phase"], "Error");
    let ready = &status["conditions"][0];
    assert_eq!(ready["reason"], "MissingCredentials");
    let message = ready["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("needs S3 credentials") && message.contains("credentialsSecretRef"),
        "{message}"
    );
    let event = events(&calls).into_iter().next().expect("warning event");
    assert_eq!(
        (&event["type"], &event["reason"]),
        (&json!("Warning"), &json!("MissingCredentials"))
    );
}

#[tokio::test]
async fn shared_platform_credentials_are_copied_only_when_the_platform_opts_in() {
    let secret = |name: &str, key: &str, value: &str| {
        json!({"apiVersion": "v1", "kind": "Secret",
               "metadata": {"name": name, "namespace": "roomcast-system"},
               "data": {key: value}})
    };
    let behaviour = Behaviour {
        existing: [
            ("roomcast-s3", "AWS_SECRET_ACCESS_KEY", "czM="),
            ("roomcast-mongodb", "uri", "bW9uZ28="),
            ("roomcast-redis", "url", "cmVkaXM="),
        ]
        .into_iter()
        .map(|(name, key, value)| {
            (
                format!("{OPERATOR_SECRETS}{name}"),
                secret(name, key, value),
            )
        })
        .collect(),
        ..Behaviour::default()
    };
    let recording = ROOM.replace(
        "chat: {replicas: 2}",
        "chat: {replicas: 2}\n  recording: {enabled: true}",
    );
    let (ctx, mock) = context_with(
        behaviour,
        ChildStores::default(),
        platform_with_secrets(true),
        Tenancy::everywhere(),
    );
    reconcile(room(&recording), ctx)
        .await
        .expect("reconcile succeeds");
    let calls = mock.calls();
    let copies: Vec<(String, Value)> = patches(&calls)
        .into_iter()
        .filter(|c| c.path().contains("/secrets/") && !c.path().ends_with("-keys"))
        .map(|c| (c.path().to_owned(), c.body["data"].clone()))
        .collect();
    assert_eq!(
        copies,
        [
            (
                "/api/v1/namespaces/shows/secrets/lobby-s3".to_owned(),
                json!({"AWS_SECRET_ACCESS_KEY": "czM="})
            ),
            (
                "/api/v1/namespaces/shows/secrets/lobby-mongodb".to_owned(),
                json!({"uri": "bW9uZ28="})
            ),
            (
                "/api/v1/namespaces/shows/secrets/lobby-redis".to_owned(),
                json!({"url": "cmVkaXM="})
            ),
        ]
    );
}

#[tokio::test]
async fn chat_replicas_that_stopped_reporting_are_pruned_from_the_status() {
    let ago = |seconds: i64| {
        let at = jiff::Timestamp::now() - jiff::SignedDuration::from_secs(seconds);
        serde_json::to_value(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(at))
            .expect("time")
    };
    // Taken once: computed again at the assertion, it could fall in the next second.
    let stale = ago(600);
    let mut seen: StreamRoom = serde_yaml::from_str(ROOM).expect("room parses");
    seen.status = Some(
        serde_json::from_value(json!({"chat": {"replicas": [
            {"pod": "lobby-chat-live", "connections": 4, "reportedAt": ago(5)},
            {"pod": "lobby-chat-crashed", "connections": 9, "reportedAt": stale.clone()},
        ]}}))
        .expect("status parses"),
    );
    let (ctx, mock) = context(Behaviour::default());
    reconcile(Arc::new(seen), ctx)
        .await
        .expect("reconcile succeeds");
    let calls = mock.calls();
    let prune = calls
        .iter()
        .find(|c| c.path() == STATUS_PATH && c.body.is_array())
        .unwrap_or_else(|| panic!("no JSON patch of the status: {calls:#?}"));
    assert_eq!(
        prune.body,
        json!([
            {"op": "test", "path": "/status/chat/replicas/1/pod", "value": "lobby-chat-crashed"},
            {"op": "test", "path": "/status/chat/replicas/1/reportedAt", "value": stale},
            {"op": "remove", "path": "/status/chat/replicas/1"},
        ])
    );
}

#[tokio::test]
async fn fresh_chat_replicas_are_left_alone() {
    let mut seen: StreamRoom = serde_yaml::from_str(ROOM).expect("room parses");
    let now = serde_json::to_value(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        jiff::Timestamp::now(),
    ))
    .expect("time");
    seen.status = Some(
        serde_json::from_value(json!({"chat": {"replicas": [
            {"pod": "lobby-chat-live", "connections": 4, "reportedAt": now},
        ]}}))
        .expect("status parses"),
    );
    let (ctx, mock) = context(Behaviour::default());
    reconcile(Arc::new(seen), ctx)
        .await
        .expect("reconcile succeeds");
    assert!(
        !mock.calls().iter().any(|c| c.body.is_array()),
        "nothing to prune"
    );
}

#[tokio::test]
async fn the_cache_proves_ownership_without_a_get_but_never_proves_someone_elses() {
    use k8s_openapi::api::apps::v1::Deployment;
    use kube::runtime::{reflector, watcher};

    const MEDIA: &str = "/apis/apps/v1/namespaces/shows/deployments/lobby-media";
    for (uid, ours) in [(ROOM_UID, true), ("another-room-uid", false)] {
        let (deployments, mut writer) = reflector::store::<Deployment>();
        let cached: Deployment = serde_json::from_value(json!({
            "metadata": {"name": "lobby-media", "namespace": "shows",
                         "ownerReferences": owner(uid, true)}
        }))
        .expect("deployment");
        writer.apply_watcher_event(&watcher::Event::Apply(cached));
        let stores = ChildStores {
            deployments: Some(deployments),
            ..ChildStores::default()
        };
        let (ctx, mock) = context_with(
            existing_at(MEDIA, owner(uid, true)),
            stores,
            test_config(),
            Tenancy::everywhere(),
        );
        reconcile(room(ROOM), ctx)
            .await
            .expect("reconcile succeeds");
        let calls = mock.calls();
        let asked = calls
            .iter()
            .any(|c| c.method == Method::GET && c.path() == MEDIA);
        let applied = child_patches(&calls).iter().any(|p| p == MEDIA);
        assert_eq!((asked, applied), (!ours, ours), "owner {uid}: {calls:#?}");
    }
}

/// Tenancy over namespace `shows` carrying `labels`, as the namespace watch would cache it.
fn tenancy_with_shows_labelled(labels: &[(&str, &str)]) -> Tenancy {
    use k8s_openapi::api::core::v1::Namespace;
    use kube::{
        core::PartialObjectMeta,
        runtime::{reflector, watcher},
    };
    let (store, mut writer) = reflector::store();
    let mut shows = PartialObjectMeta::<Namespace>::default();
    shows.metadata.name = Some("shows".to_owned());
    shows.metadata.labels = Some(
        labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    );
    writer.apply_watcher_event(&watcher::Event::Init);
    writer.apply_watcher_event(&watcher::Event::InitApply(shows));
    writer.apply_watcher_event(&watcher::Event::InitDone);
    let selector = MatchLabels::parse(DEFAULT_TENANT_NAMESPACE_SELECTOR).expect("default parses");
    Tenancy::opt_in(selector, store)
}

#[tokio::test]
async fn a_room_in_a_namespace_that_has_not_opted_in_gets_one_event_and_nothing_else() {
    let (ctx, mock) = context_with(
        Behaviour::default(),
        ChildStores::default(),
        test_config(),
        tenancy_with_shows_labelled(&[("team", "shows")]),
    );
    for _ in 0..2 {
        let action = reconcile(room(ROOM), ctx.clone())
            .await
            .expect("ignored, not failed");
        assert_eq!(action, Action::await_change());
    }
    let calls = mock.calls();
    // One Warning Event on the first pass; no read, no apply, no status, no second Event.
    assert_eq!(calls.len(), 1, "{calls:#?}");
    let event = events(&calls).into_iter().next().expect("warning event");
    assert_eq!(event["type"], "Warning");
    assert_eq!(event["reason"], "NamespaceNotServed");
    assert!(
        event["note"]
            .as_str()
            .unwrap_or_default()
            .contains("roomcast.dev/tenant=enabled"),
        "{event}"
    );
}

#[tokio::test]
async fn a_room_in_a_namespace_that_opted_in_is_served() {
    let (ctx, mock) = context_with(
        Behaviour::default(),
        ChildStores::default(),
        test_config(),
        tenancy_with_shows_labelled(&[("roomcast.dev/tenant", "enabled")]),
    );
    reconcile(room(ROOM), ctx).await.expect("reconciled");
    let applied = child_patches(&mock.calls());
    assert!(
        applied.contains(&"/apis/apps/v1/namespaces/shows/deployments/lobby-media".to_owned()),
        "{applied:#?}"
    );
}

/// The context's cache of Secrets, listed with `secrets` (`(namespace, name)`).
fn with_named_secrets(ctx: Arc<Context>, secrets: &[(&str, &str)]) -> Arc<Context> {
    use kube::{
        core::PartialObjectMeta,
        runtime::{reflector, watcher::Event},
    };
    use roomcast_operator::room_secrets::NamedSecrets;
    let (store, mut writer) = reflector::store();
    writer.apply_watcher_event(&Event::Init);
    for (namespace, name) in secrets {
        let mut secret = PartialObjectMeta::<k8s_openapi::api::core::v1::Secret>::default();
        secret.metadata.namespace = Some((*namespace).to_owned());
        secret.metadata.name = Some((*name).to_owned());
        secret.metadata.resource_version = Some("1".to_owned());
        writer.apply_watcher_event(&Event::InitApply(secret));
    }
    writer.apply_watcher_event(&Event::InitDone);
    // The writer may go: the store keeps what it was given.
    let mut ctx = Arc::into_inner(ctx).expect("only the test holds the context");
    ctx.named_secrets = NamedSecrets::from_store(store);
    Arc::new(ctx)
}

fn room_naming_its_own_key() -> String {
    format!("{ROOM}  ingest: {{streamKeySecretRef: {{name: lobby-key}}}}\n")
}

const MISSING_KEY_MESSAGE: &str = "Secret lobby-key (spec.ingest.streamKeySecretRef) does not exist in namespace shows; the room's pods that mount it cannot start until it is created";

#[tokio::test]
async fn a_missing_secret_the_room_names_is_reported_and_the_children_still_applied() {
    let (ctx, mock) = context(Behaviour::default());
    // A Secret of that name in another namespace is another tenant's: still missing here.
    let ctx = with_named_secrets(ctx, &[("other", "lobby-key"), ("shows", "unrelated")]);
    reconcile(room(&room_naming_its_own_key()), ctx)
        .await
        .expect("a missing Secret is no reconcile error");
    let calls = mock.calls();

    // Applied anyway: the media worker waits for the Secret, and starts once it exists.
    let applied = child_patches(&calls);
    assert!(
        applied
            .iter()
            .any(|p| p == "/apis/apps/v1/namespaces/shows/deployments/lobby-media"),
        "{applied:#?}"
    );
    let event = events(&calls)
        .into_iter()
        .find(|e| e["reason"] == "SecretNotFound")
        .expect("a SecretNotFound event");
    assert_eq!(event["type"], "Warning");
    assert_eq!(event["note"], MISSING_KEY_MESSAGE);

    let status = &status_patch(&calls).expect("status patched")["status"];
    let ready = status["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
        .expect("Ready");
    assert_eq!(ready["status"], "False");
    assert_eq!(ready["reason"], "SecretNotFound");
    assert_eq!(ready["message"], MISSING_KEY_MESSAGE);
    assert_eq!(status["message"], MISSING_KEY_MESSAGE);
}

#[tokio::test]
async fn a_named_secret_that_appears_clears_the_condition_without_another_warning() {
    let (ctx, mock) = context(Behaviour::default());
    let ctx = with_named_secrets(ctx, &[]);
    reconcile(room(&room_naming_its_own_key()), ctx)
        .await
        .expect("first pass");
    let reported = status_patch(&mock.calls()).expect("status patched")["status"].clone();
    assert_eq!(reported["conditions"][0]["reason"], "SecretNotFound");

    // The Secret is created; the watch reconciles the room, whose status still says missing.
    let (ctx, mock) = context(Behaviour::default());
    let ctx = with_named_secrets(ctx, &[("shows", "lobby-key")]);
    let mut seen: StreamRoom =
        serde_yaml::from_str(&room_naming_its_own_key()).expect("room parses");
    seen.status = Some(serde_json::from_value(reported).expect("status parses"));
    reconcile(Arc::new(seen), ctx).await.expect("second pass");
    let calls = mock.calls();
    let status = &status_patch(&calls).expect("the cleared status is written")["status"];
    let ready = status["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
        .expect("Ready");
    assert_ne!(ready["reason"], "SecretNotFound", "{ready}");
    assert!(
        !ready["message"]
            .as_str()
            .unwrap_or_default()
            .contains("lobby-key"),
        "{ready}"
    );
    assert!(!has_event(&calls, "SecretNotFound"), "{calls:#?}");
}
