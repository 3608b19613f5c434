//! Workers report what only they know into their room's status, each with its own
//! server-side-apply field manager, so nobody overwrites anybody:
//!
//! ```text
//!   roomcast-media ──(SSA, manager "roomcast-media")────────► status.media
//!   roomcast-chat pod A ─(manager "roomcast-chat-<pod A>")──► status.chat.replicas[pod=A]
//!   roomcast-chat pod B ─(manager "roomcast-chat-<pod B>")──► status.chat.replicas[pod=B]
//!   roomcast-operator ──(manager "roomcast-operator")───────► phase, conditions, urls
//! ```
//!
//! The operator creates, per room, a ServiceAccount whose Role allows `get` and `patch` on
//! that one room's `streamrooms/status` and nothing else; workers run under it.
//! [`Throttle`] keeps the API server's load low: a report goes out when it changed, or as a
//! heartbeat, so the operator can tell a silent worker (reports older than two minutes are
//! ignored) from an idle one.

use std::time::{Duration, Instant};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{
    Api, Client,
    api::{Patch, PatchParams},
};
use roomcast_crds::{ChatReplicaReport, MediaReport, StreamRoom};
use serde_json::{Value, json};

/// Field manager of the media worker's reports.
pub const MEDIA_FIELD_MANAGER: &str = "roomcast-media";
/// Prefix of each chat replica's field manager (`roomcast-chat-<pod>`).
pub const CHAT_FIELD_MANAGER_PREFIX: &str = "roomcast-chat-";
/// A report is re-sent at least this often even when nothing changed.
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot report status of StreamRoom {room}: {source}")]
    Kube {
        room: String,
        #[source]
        source: kube::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Writes one worker's part of one room's status.
#[derive(Clone)]
pub struct StatusReporter {
    api: Api<StreamRoom>,
    namespace: String,
    room: String,
    field_manager: String,
    pod: Option<String>,
}

impl StatusReporter {
    /// Reporter of the room's media worker.
    pub fn media(client: Client, namespace: &str, room: &str) -> Self {
        Self::new(
            client,
            namespace,
            room,
            MEDIA_FIELD_MANAGER.to_owned(),
            None,
        )
    }

    /// Reporter of one chat replica (`pod` is its pod name, from `POD_NAME`).
    pub fn chat_replica(client: Client, namespace: &str, room: &str, pod: &str) -> Self {
        Self::new(
            client,
            namespace,
            room,
            format!("{CHAT_FIELD_MANAGER_PREFIX}{pod}"),
            Some(pod.to_owned()),
        )
    }

    fn new(
        client: Client,
        namespace: &str,
        room: &str,
        field_manager: String,
        pod: Option<String>,
    ) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            namespace: namespace.to_owned(),
            room: room.to_owned(),
            field_manager,
            pod,
        }
    }

    /// Field manager this reporter applies with.
    pub fn field_manager(&self) -> &str {
        &self.field_manager
    }

    /// Replace the media worker's report.
    pub async fn report_media(&self, report: &MediaReport) -> Result<()> {
        self.apply(json!({ "media": report })).await
    }

    /// Replace this chat replica's connection count. Only valid for a chat reporter.
    pub async fn report_chat(&self, connections: u32) -> Result<()> {
        let entry = ChatReplicaReport {
            pod: self.pod.clone().unwrap_or_default(),
            connections,
            reported_at: now(),
        };
        self.apply(json!({ "chat": { "replicas": [entry] } })).await
    }

    /// Remove everything this reporter wrote (on graceful shutdown): applying an empty
    /// status with the same field manager drops the fields it owned.
    pub async fn withdraw(&self) -> Result<()> {
        self.apply(json!({})).await
    }

    async fn apply(&self, status: Value) -> Result<()> {
        let patch = json!({
            "apiVersion": roomcast_crds::API_VERSION,
            "kind": roomcast_crds::KIND,
            "status": status,
        });
        // Forced: this manager is the only writer of these fields by design; a conflict
        // means a stale owner (e.g. a replaced pod with the same name) that must yield.
        let params = PatchParams::apply(&self.field_manager).force();
        self.api
            .patch_status(&self.room, &params, &Patch::Apply(&patch))
            .await
            .map_err(|source| Error::Kube {
                room: format!("{}/{}", self.namespace, self.room),
                source,
            })?;
        Ok(())
    }
}

/// Now, as a Kubernetes timestamp.
pub fn now() -> Time {
    Time(jiff::Timestamp::now())
}

/// Decides when a report is worth sending: when its content changed, or when the last one
/// is older than the heartbeat. Time is passed in, so it is tested without sleeping.
#[derive(Debug)]
pub struct Throttle<T> {
    heartbeat: Duration,
    last: Option<(T, Instant)>,
}

impl<T: PartialEq + Clone> Throttle<T> {
    pub fn new(heartbeat: Duration) -> Self {
        Self {
            heartbeat,
            last: None,
        }
    }

    /// True when `report` should be sent at `now`; remembers it as sent.
    pub fn should_send(&mut self, report: &T, now: Instant) -> bool {
        let due = match &self.last {
            None => true,
            Some((last, at)) => last != report || now.duration_since(*at) >= self.heartbeat,
        };
        if due {
            self.last = Some((report.clone(), now));
        }
        due
    }

    /// Forget the last report (e.g. after a failed send, so the next one goes out).
    pub fn reset(&mut self) {
        self.last = None;
    }
}

#[cfg(test)]
mod tests {
    use http::{Method, Request, Response};
    use kube::client::Body;
    use serde_json::Value;

    use super::*;

    /// A client whose single request is captured and answered like the API server.
    async fn capture(send: impl AsyncFnOnce(Client)) -> (Method, String, Value) {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let server = tokio::spawn(async move {
            let (request, respond) = handle.next_request().await.expect("one request");
            let (parts, body) = request.into_parts();
            let body: Value =
                serde_json::from_slice(&body.collect_bytes().await.expect("body")).expect("json");
            let mut answer = body.clone();
            answer["metadata"] = json!({"name": "lobby", "namespace": "shows"});
            answer["spec"] = json!({});
            respond.send_response(
                Response::builder()
                    .body(Body::from(answer.to_string().into_bytes()))
                    .expect("response"),
            );
            (parts.method, parts.uri.to_string(), body)
        });
        send(Client::new(service, "default")).await;
        server.await.expect("mock server")
    }

    #[tokio::test]
    async fn media_report_is_applied_to_the_status_subresource_by_its_own_manager() {
        let report = MediaReport {
            live: true,
            session_id: Some("s-1".into()),
            session_started_at: Some(now()),
            ingest_kbps: Some(4200),
            viewers: 17,
            renditions: vec!["source".into(), "360p".into()],
            recording_healthy: Some(true),
            recording_message: None,
            reported_at: now(),
        };
        let (method, uri, body) = capture(async |client| {
            StatusReporter::media(client, "shows", "lobby")
                .report_media(&report)
                .await
                .expect("report accepted");
        })
        .await;
        assert_eq!(method, Method::PATCH);
        assert!(
            uri.starts_with(
                "/apis/roomcast.dev/v1alpha1/namespaces/shows/streamrooms/lobby/status?"
            ),
            "{uri}"
        );
        assert!(uri.contains("fieldManager=roomcast-media"), "{uri}");
        assert_eq!(body["kind"], "StreamRoom");
        assert_eq!(body["status"]["media"]["viewers"], 17);
        assert_eq!(body["status"]["media"]["live"], true);
        assert!(
            body["status"].get("phase").is_none(),
            "a worker never writes operator fields"
        );
    }

    #[tokio::test]
    async fn chat_replica_reports_only_its_own_list_entry() {
        let (_, uri, body) = capture(async |client| {
            StatusReporter::chat_replica(client, "shows", "lobby", "lobby-chat-7d9f-abcde")
                .report_chat(42)
                .await
                .expect("report accepted");
        })
        .await;
        assert!(
            uri.contains("fieldManager=roomcast-chat-lobby-chat-7d9f-abcde"),
            "{uri}"
        );
        let replicas = body["status"]["chat"]["replicas"].as_array().expect("list");
        assert_eq!(replicas.len(), 1);
        assert_eq!(replicas[0]["pod"], "lobby-chat-7d9f-abcde");
        assert_eq!(replicas[0]["connections"], 42);
    }

    #[tokio::test]
    async fn withdraw_applies_an_empty_status() {
        let (_, _, body) = capture(async |client| {
            StatusReporter::media(client, "shows", "lobby")
                .withdraw()
                .await
                .expect("accepted");
        })
        .await;
        assert_eq!(body["status"], json!({}));
    }

    #[test]
    fn throttle_sends_changes_at_once_and_repeats_only_as_heartbeat() {
        let start = Instant::now();
        let mut throttle = Throttle::new(Duration::from_secs(30));
        assert!(throttle.should_send(&1u32, start), "first report");
        assert!(
            !throttle.should_send(&1u32, start + Duration::from_secs(10)),
            "unchanged"
        );
        assert!(
            throttle.should_send(&2u32, start + Duration::from_secs(11)),
            "changed"
        );
        assert!(
            !throttle.should_send(&2u32, start + Duration::from_secs(40)),
            "heartbeat not due"
        );
        assert!(
            throttle.should_send(&2u32, start + Duration::from_secs(41)),
            "heartbeat due"
        );
        throttle.reset();
        assert!(
            throttle.should_send(&2u32, start + Duration::from_secs(42)),
            "after reset"
        );
    }
}
