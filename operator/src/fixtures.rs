//! A mock Kubernetes API server for reconcile tests and the benchmark (kube's tower-test
//! pattern, as in kube-rs controller-rs `src/fixtures.rs`): a real `kube::Client` whose HTTP
//! requests land in this process, are recorded, and answered the way the API server would
//! answer server-side apply.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use http::{Method, Request, Response, StatusCode};
use kube::{Client, client::Body};
use serde_json::{Value, json};

/// One request the operator made.
#[derive(Clone, Debug)]
pub struct Call {
    pub method: Method,
    /// Path and query, e.g. `/api/v1/namespaces/shows/secrets/lobby-keys?fieldManager=…`.
    pub uri: String,
    pub body: Value,
}

impl Call {
    pub fn path(&self) -> &str {
        self.uri.split('?').next().unwrap_or_default()
    }
}

/// How the mock answers.
#[derive(Clone, Debug, Default)]
pub struct Behaviour {
    /// Objects a GET finds, by path (e.g. an existing keys Secret).
    pub existing: BTreeMap<String, Value>,
    /// PATCHes whose path contains this fail with 500 (to exercise the error policy).
    pub fail_patches_containing: Option<String>,
}

/// The mock API server: cheap to clone, shares the record of calls.
#[derive(Clone)]
pub struct MockApi {
    calls: Arc<Mutex<Vec<Call>>>,
    record: bool,
}

impl MockApi {
    /// A client talking to a new mock server that answers with `behaviour`. With
    /// `record = false` nothing is kept (for the benchmark's thousands of calls).
    pub fn start(behaviour: Behaviour, record: bool) -> (Client, MockApi) {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let mock = MockApi {
            calls: Arc::default(),
            record,
        };
        let recorder = mock.clone();
        tokio::spawn(async move {
            while let Some((request, send)) = handle.next_request().await {
                let (parts, body) = request.into_parts();
                let bytes = body.collect_bytes().await.unwrap_or_default();
                let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                let call = Call {
                    method: parts.method.clone(),
                    uri: parts.uri.to_string(),
                    body,
                };
                let (status, answer) = respond(&behaviour, &call);
                if recorder.record
                    && let Ok(mut calls) = recorder.calls.lock()
                {
                    calls.push(call);
                }
                let response = Response::builder()
                    .status(status)
                    .header("content-type", "application/json")
                    .body(Body::from(answer.to_string().into_bytes()));
                if let Ok(response) = response {
                    send.send_response(response);
                }
            }
        });
        (Client::new(service, "default"), mock)
    }

    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().map(|c| c.clone()).unwrap_or_default()
    }

    /// Wait until at least `n` calls arrived (or fail after `timeout`: a call that never
    /// came is a failure, not a hang).
    pub async fn wait_for_calls(
        &self,
        n: usize,
        timeout: Duration,
    ) -> Result<Vec<Call>, Vec<Call>> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let calls = self.calls();
            if calls.len() >= n {
                return Ok(calls);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(calls);
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

fn not_found(path: &str) -> (StatusCode, Value) {
    (
        StatusCode::NOT_FOUND,
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound",
               "message": format!("{path} not found"), "code": 404}),
    )
}

fn respond(behaviour: &Behaviour, call: &Call) -> (StatusCode, Value) {
    let path = call.path();
    match call.method {
        Method::GET => match behaviour.existing.get(path) {
            Some(object) => (StatusCode::OK, object.clone()),
            None => not_found(path),
        },
        Method::PATCH => {
            if behaviour
                .fail_patches_containing
                .as_deref()
                .is_some_and(|needle| path.contains(needle))
            {
                return (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "InternalError",
                           "message": "injected failure", "code": 500}),
                );
            }
            if call.body.is_array() {
                // A JSON patch: answer with a room the client can decode.
                let name = path.rsplit('/').nth(1).unwrap_or_default();
                return (
                    StatusCode::OK,
                    json!({"apiVersion": "roomcast.dev/v1alpha1", "kind": "StreamRoom",
                           "metadata": {"name": name}, "spec": {}}),
                );
            }
            // Server-side apply answers with the applied object.
            let mut object = call.body.clone();
            if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
                meta.entry("resourceVersion").or_insert(json!("1"));
                meta.entry("uid")
                    .or_insert(json!("00000000-0000-0000-0000-00000000c41d"));
            } else if let Some(map) = object.as_object_mut() {
                // Status patches carry no metadata or spec; the API server answers with the
                // whole object, so add the parts a client needs to decode it.
                map.insert(
                    "metadata".into(),
                    json!({"name": path.rsplit('/').nth(1).unwrap_or_default()}),
                );
                map.entry("spec").or_insert(json!({}));
            }
            (StatusCode::OK, object)
        }
        Method::POST => (StatusCode::CREATED, call.body.clone()),
        Method::DELETE => (
            StatusCode::OK,
            json!({"kind": "Status", "apiVersion": "v1", "status": "Success", "code": 200}),
        ),
        _ => (StatusCode::METHOD_NOT_ALLOWED, json!({})),
    }
}
