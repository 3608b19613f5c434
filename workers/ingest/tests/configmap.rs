//! `--routes-configmap`: the gateway watches the operator's ConfigMap through a real
//! `kube::Client` whose requests land in this process (kube's tower-test pattern). It asks for
//! that one object by a `metadata.name` field selector (what RBAC by `resourceNames` allows),
//! applies each good table, and keeps the last good one when a bad one arrives.

use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use kube::client::Body;
use roomcast_crds::ingest_routes::{Route, RouteTable, RoutingKey};
use roomcast_ingest::metrics::Metrics;
use roomcast_ingest::routes::{Routes, watch_configmap};
use roomcast_rtmp::key::PresentedKey;
use serde_json::json;

fn table(key: &RoutingKey, stream_key: &str) -> String {
    RouteTable::new(vec![Route {
        key_hash: key.hash(stream_key),
        room: "shows/lobby".into(),
        backend: "lobby-media.shows.svc:1935".into(),
    }])
    .to_json()
}

fn configmap(version: &str, routes: &str) -> serde_json::Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
           "metadata": {"name": "ingest-routes", "namespace": "roomcast", "resourceVersion": version},
           "data": {"routes.json": routes}})
}

async fn eventually(what: &str, check: impl Fn() -> bool) {
    for _ in 0..500 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{what}");
}

#[tokio::test]
async fn the_watched_configmap_routes_and_a_bad_update_keeps_the_last_good_table() {
    let key = RoutingKey::new(vec![b'r'; 32]).expect("key");
    let (service, mut api) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = kube::Client::new(service, "roomcast");
    let routes = Arc::new(Routes::default());
    routes.set_key(key.clone());
    let metrics = Metrics::default();
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let watcher = tokio::spawn(watch_configmap(
        client,
        "roomcast".into(),
        "ingest-routes".into(),
        routes.clone(),
        metrics.clone(),
        stop,
    ));

    // The initial list: only the named ConfigMap, in the given namespace.
    let (list, send) = api.next_request().await.expect("list");
    let uri = list.uri().to_string();
    assert!(
        uri.starts_with("/api/v1/namespaces/roomcast/configmaps?"),
        "{uri}"
    );
    assert!(
        uri.contains("fieldSelector=metadata.name%3Dingest-routes"),
        "{uri}"
    );
    let body = json!({"apiVersion": "v1", "kind": "ConfigMapList", "metadata": {"resourceVersion": "1"},
                      "items": [configmap("1", &table(&key, "first-key"))]});
    send.send_response(Response::new(Body::from(body.to_string().into_bytes())));
    eventually("first table applied", || {
        routes.lookup(&PresentedKey::new("first-key")).is_some()
    })
    .await;

    // The watch: a broken write by hand. Refused, counted, the first table stays.
    let (watch, send) = api.next_request().await.expect("watch");
    let uri = watch.uri().to_string();
    assert!(
        uri.contains("watch=true") && uri.contains("fieldSelector=metadata.name%3Dingest-routes"),
        "{uri}"
    );
    let broken = json!({"type": "MODIFIED",
                        "object": configmap("2", "{\"version\": 1, \"routes\": [{\"keyHash\": \"zz\"}]}")});
    send.send_response(Response::new(Body::from(
        format!("{broken}\n").into_bytes(),
    )));
    eventually("broken table counted", || metrics.route_errors.get() == 1).await;
    assert!(
        routes.lookup(&PresentedKey::new("first-key")).is_some(),
        "the last good table stays"
    );

    // The watch stream ended; whatever the watcher asks next (a new watch or a new list)
    // answers with the operator's next table: a rotated key.
    let (next, send) = api.next_request().await.expect("next request");
    let rotated = configmap("3", &table(&key, "rotated-key"));
    let body = if next.uri().to_string().contains("watch=true") {
        format!("{}\n", json!({"type": "MODIFIED", "object": rotated}))
    } else {
        json!({"apiVersion": "v1", "kind": "ConfigMapList", "metadata": {"resourceVersion": "3"},
               "items": [rotated]})
        .to_string()
    };
    send.send_response(Response::new(Body::from(body.into_bytes())));
    eventually("rotated table applied", || {
        routes.lookup(&PresentedKey::new("rotated-key")).is_some()
    })
    .await;
    assert!(
        routes.lookup(&PresentedKey::new("first-key")).is_none(),
        "the old key is refused"
    );
    assert_eq!(metrics.route_reloads.get(), 2);
    assert_eq!(metrics.route_errors.get(), 1);

    let _ = stop_tx.send(true);
    tokio::time::timeout(Duration::from_secs(5), watcher)
        .await
        .expect("stops")
        .expect("task");
}
