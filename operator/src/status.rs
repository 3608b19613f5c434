//! Step 4 of a reconcile: the status, computed by pure functions from what the operator
//! observed (child Deployments and Services, worker reports) and the time passed in.
//! Conditions keep their `lastTransitionTime` while their status does not change, so an
//! unchanged room computes an identical status and no patch is sent.

use std::time::Duration;

use k8s_openapi::{
    api::{apps::v1::Deployment, core::v1::Service},
    apimachinery::pkg::apis::meta::v1::{Condition, Time},
};
use roomcast_crds::{
    ChatReplicaReport, MediaReport, RoomPhase, StreamRoom, StreamRoomStatus,
    worker_config::RTMP_PORT,
};
use serde_json::json;

use crate::{
    config::IngestServiceType,
    config::OperatorConfig,
    room_secrets::{NamedSecret, SECRET_NOT_FOUND},
    validate::{RoomError, ValidRoom},
};

pub const READY: &str = "Ready";
pub const INGEST_READY: &str = "IngestReady";
pub const CHAT_READY: &str = "ChatReady";
pub const RECORDING_READY: &str = "RecordingReady";
/// A child's name is held by an object the room does not control: condition type, and the
/// reason of `Ready=False` and of the Warning event.
pub const CHILD_CONFLICT: &str = "ChildConflict";

/// Worker reports older than this are ignored: the worker is gone or cannot reach the API.
/// Four heartbeats (`roomcast_room_status::DEFAULT_HEARTBEAT`, 30 s): a live worker that
/// misses one or two sends is not mistaken for a dead one.
pub const REPORT_MAX_AGE: Duration = Duration::from_secs(120);

/// What the operator saw of the room's children.
#[derive(Clone, Debug, Default)]
pub struct Observed {
    pub media: Option<Deployment>,
    pub chat: Option<Deployment>,
    pub rtmp_service: Option<Service>,
    /// Whether the ingest gateway routes the room (rooms behind the gateway only).
    pub route: Option<crate::routes::RouteState>,
    /// Secrets the room's pods mount that do not exist (empty while that is unknown).
    pub missing_secrets: Vec<NamedSecret>,
}

fn available(deployment: Option<&Deployment>) -> i32 {
    deployment
        .and_then(|d| d.status.as_ref())
        .and_then(|s| s.available_replicas)
        .unwrap_or(0)
}

fn condition(
    type_: &str,
    ok: bool,
    reason: &str,
    message: String,
    generation: Option<i64>,
    now: &Time,
) -> Condition {
    Condition {
        type_: type_.to_owned(),
        status: if ok { "True" } else { "False" }.to_owned(),
        reason: reason.to_owned(),
        message,
        observed_generation: generation,
        last_transition_time: now.clone(),
    }
}

/// Keep `lastTransitionTime` of conditions whose status did not change.
pub fn carry_transition_times(previous: &[Condition], mut next: Vec<Condition>) -> Vec<Condition> {
    for condition in &mut next {
        if let Some(old) = previous.iter().find(|c| c.type_ == condition.type_)
            && old.status == condition.status
        {
            condition.last_transition_time = old.last_transition_time.clone();
        }
    }
    next
}

fn is_fresh(reported_at: &Time, now: &Time) -> bool {
    now.0.duration_since(reported_at.0).as_secs_f64() <= REPORT_MAX_AGE.as_secs_f64()
}

fn fresh_media_report<'a>(room: &'a StreamRoom, now: &Time) -> Option<&'a MediaReport> {
    let report = room.status.as_ref()?.media.as_ref()?;
    is_fresh(&report.reported_at, now).then_some(report)
}

/// Entries of `status.chat.replicas` (with their index) whose pod stopped reporting: older
/// than [`REPORT_MAX_AGE`]. Each replica owns its entry (its own field manager) and nothing
/// else ever removes it: a pod that crashed, was evicted or replaced leaves it behind. Age is
/// the only test: the operator does not watch pods, and a pod that still exists but has not
/// reported for four heartbeats is not serving the room either.
pub fn stale_chat_replicas(room: &StreamRoom, now: &Time) -> Vec<(usize, ChatReplicaReport)> {
    room.status
        .as_ref()
        .and_then(|s| s.chat.as_ref())
        .map(|chat| {
            chat.replicas
                .iter()
                .enumerate()
                .filter(|(_, r)| !is_fresh(&r.reported_at, now))
                .map(|(i, r)| (i, r.clone()))
                .collect()
        })
        .unwrap_or_default()
}

/// JSON patch (RFC 6902) of the status subresource removing `stale` entries, last index
/// first so earlier indexes stay valid. Each removal is guarded by `test`s of the entry's
/// pod and `reportedAt`: if a replica reported meanwhile or the list moved, the API server
/// refuses the whole patch and the next pass looks again. Entries are addressed by index,
/// never by the pod name a replica wrote, so no name can reach into another path.
pub fn prune_chat_replicas_patch(stale: &[(usize, ChatReplicaReport)]) -> serde_json::Value {
    let mut ordered: Vec<_> = stale.iter().collect();
    ordered.sort_by_key(|(index, _)| std::cmp::Reverse(*index));
    let ops: Vec<serde_json::Value> = ordered
        .into_iter()
        .flat_map(|(index, report)| {
            let entry = format!("/status/chat/replicas/{index}");
            [
                json!({"op": "test", "path": format!("{entry}/pod"), "value": report.pod}),
                json!({"op": "test", "path": format!("{entry}/reportedAt"), "value": report.reported_at}),
                json!({"op": "remove", "path": entry}),
            ]
        })
        .collect();
    serde_json::Value::Array(ops)
}

/// RTMP URL streamers publish to. The stream key is the stream name after it, and never
/// part of the URL.
pub fn ingest_url(
    valid: &ValidRoom,
    config: &OperatorConfig,
    rtmp: Option<&Service>,
) -> Option<String> {
    if valid.through_gateway {
        return config.gateway.url.clone();
    }
    let spec = rtmp.and_then(|s| s.spec.as_ref());
    let port = match config.ingest_service_type {
        IngestServiceType::NodePort => spec
            .and_then(|s| s.ports.as_ref())
            .and_then(|p| p.first())
            .and_then(|p| p.node_port)?,
        _ => i32::from(RTMP_PORT),
    };
    let host = match (&config.ingest_external_host, config.ingest_service_type) {
        (Some(host), _) => host.clone(),
        (None, IngestServiceType::LoadBalancer) => {
            let ingress = rtmp
                .and_then(|s| s.status.as_ref())
                .and_then(|s| s.load_balancer.as_ref())
                .and_then(|lb| lb.ingress.as_ref())
                .and_then(|i| i.first())?;
            ingress.hostname.clone().or_else(|| ingress.ip.clone())?
        }
        (None, IngestServiceType::NodePort) => return None,
        (None, IngestServiceType::ClusterIp) => {
            format!("{}.{}.svc", valid.room.child("rtmp"), valid.room.namespace)
        }
    };
    Some(format!("rtmp://{host}:{port}/live"))
}

/// Base URL of the room's HTTP endpoints: public when it has a host, in-cluster otherwise.
fn http_base(valid: &ValidRoom, config: &OperatorConfig, service_suffix: &str) -> String {
    match &valid.host {
        Some(host) => format!("{}://{host}{}", config.playback_scheme, valid.path_prefix()),
        None => format!(
            "http://{}.{}.svc{}",
            valid.room.child(service_suffix),
            valid.room.namespace,
            valid.path_prefix()
        ),
    }
}

/// Status of a room that validated.
pub fn compute_status(
    room: &StreamRoom,
    valid: &ValidRoom,
    config: &OperatorConfig,
    observed: &Observed,
    now: &Time,
) -> StreamRoomStatus {
    let generation = valid.generation;
    let previous = room.status.clone().unwrap_or_default();
    let report = fresh_media_report(room, now);

    let media_up = available(observed.media.as_ref()) >= 1;
    let ingest = if media_up {
        condition(
            INGEST_READY,
            true,
            "MediaWorkerAvailable",
            "the media worker accepts RTMP".into(),
            generation,
            now,
        )
    } else {
        condition(
            INGEST_READY,
            false,
            "MediaWorkerUnavailable",
            format!(
                "Deployment {} has no available replica yet",
                valid.room.child("media")
            ),
            generation,
            now,
        )
    };

    let chat = if !valid.spec.chat.enabled {
        condition(
            CHAT_READY,
            true,
            "Disabled",
            "chat is disabled".into(),
            generation,
            now,
        )
    } else {
        let ready = available(observed.chat.as_ref());
        match (ready >= 1, valid.chat_scaled_down()) {
            (true, false) => condition(
                CHAT_READY,
                true,
                "ChatAvailable",
                format!("{ready}/{} chat replicas available", valid.chat_replicas),
                generation,
                now,
            ),
            (true, true) => condition(
                CHAT_READY,
                true,
                "SingleReplicaWithoutSharedStore",
                format!(
                    "running 1 of {} chat replicas: several need Redis and MongoDB; name Secrets in spec.chat.redisSecretRef (key url) and spec.mongodbSecretRef (key uri), or ask the platform to share its own (Helm values redis.urlSecret, mongodb.uriSecret, recording.shareDefaultCredentials)",
                    valid.spec.chat.replicas
                ),
                generation,
                now,
            ),
            (false, _) => condition(
                CHAT_READY,
                false,
                "ChatUnavailable",
                format!(
                    "Deployment {} has no available replica yet",
                    valid.room.child("chat")
                ),
                generation,
                now,
            ),
        }
    };

    let recording = match (&valid.recording, report.and_then(|r| r.recording_healthy)) {
        (None, _) => condition(
            RECORDING_READY,
            true,
            "Disabled",
            "recording is disabled".into(),
            generation,
            now,
        ),
        (Some(_), Some(false)) => condition(
            RECORDING_READY,
            false,
            "RecordingDegraded",
            report
                .and_then(|r| r.recording_message.clone())
                .unwrap_or_else(|| "the media worker reports recording degraded".into()),
            generation,
            now,
        ),
        (Some(target), _) => condition(
            RECORDING_READY,
            media_up,
            if media_up {
                "RecorderReady"
            } else {
                "MediaWorkerUnavailable"
            },
            format!(
                "recording to s3://{}/{}",
                target.s3.bucket, target.s3.prefix
            ),
            generation,
            now,
        ),
    };

    // Only rooms behind the gateway carry it: a room with its own Service needs no route.
    // Until the routes task has written its first table (just after the operator starts), the
    // condition the room already has stands, so a restart does not flap every room.
    let routed = valid.through_gateway.then(|| {
        let previous_routed = previous
            .conditions
            .iter()
            .find(|c| c.type_ == crate::routes::INGEST_ROUTED);
        match (&observed.route, previous_routed) {
            (None, Some(known)) => Condition {
                observed_generation: generation,
                ..known.clone()
            },
            (state, _) => {
                let (ok, reason, message) = crate::routes::condition_parts(state.as_ref());
                condition(
                    crate::routes::INGEST_ROUTED,
                    ok,
                    reason,
                    message,
                    generation,
                    now,
                )
            }
        }
    });
    let mut parts = vec![&ingest, &chat, &recording];
    parts.extend(routed.as_ref());
    let all_ready = parts.iter().all(|c| c.status == "True");
    let missing_secrets = missing_secrets_message(valid, &observed.missing_secrets);
    let ready = if let Some(message) = &missing_secrets {
        condition(
            READY,
            false,
            SECRET_NOT_FOUND,
            message.clone(),
            generation,
            now,
        )
    } else if all_ready {
        condition(
            READY,
            true,
            "RoomReady",
            "all parts of the room are ready".into(),
            generation,
            now,
        )
    } else {
        let not_ready: Vec<&str> = parts
            .iter()
            .filter(|c| c.status != "True")
            .map(|c| c.type_.as_str())
            .collect();
        condition(
            READY,
            false,
            "PartsNotReady",
            format!("not ready: {}", not_ready.join(", ")),
            generation,
            now,
        )
    };

    let live = report.is_some_and(|r| r.live);
    let phase = if !media_up {
        RoomPhase::Pending
    } else if missing_secrets.is_some() || parts[1..].iter().any(|c| c.status != "True") {
        RoomPhase::Degraded
    } else if live {
        RoomPhase::Live
    } else {
        RoomPhase::Idle
    };
    let message = match phase {
        // A missing Secret explains more than "no available replica": it is why there is none.
        _ if missing_secrets.is_some() => ready.message.clone(),
        RoomPhase::Pending => ingest.message.clone(),
        RoomPhase::Degraded => ready.message.clone(),
        RoomPhase::Live => "a publisher is live".into(),
        RoomPhase::Idle => "waiting for a publisher".into(),
        RoomPhase::Error => String::new(),
    };

    StreamRoomStatus {
        phase: Some(phase),
        message: Some(message),
        ingest_url: ingest_url(valid, config, observed.rtmp_service.as_ref()),
        playback_url: Some(format!(
            "{}/hls/index.m3u8",
            http_base(valid, config, "hls")
        )),
        chat_url: valid
            .spec
            .chat
            .enabled
            .then(|| format!("{}/chat", http_base(valid, config, "chat"))),
        observed_generation: generation,
        conditions: carry_transition_times(
            &previous.conditions,
            [ready, ingest, chat, recording]
                .into_iter()
                .chain(routed)
                .collect(),
        ),
        // Worker-owned fields are not the operator's to write.
        media: None,
        chat: None,
    }
}

/// What `Ready` says when Secrets the room's pods mount do not exist: each Secret and the
/// field naming it, so `kubectl describe` tells the user exactly what to create.
fn missing_secrets_message(valid: &ValidRoom, missing: &[NamedSecret]) -> Option<String> {
    if missing.is_empty() {
        return None;
    }
    let (list, verb, them) = match missing {
        [one] => (one.to_string(), "does", "it"),
        many => (
            many.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            "do",
            "them",
        ),
    };
    Some(format!(
        "{list} {verb} not exist in namespace {}; the room's pods that mount {them} cannot start until {them} {} created",
        valid.room.namespace,
        if them == "it" { "is" } else { "are" },
    ))
}

/// The Warning Event's note when `next` newly reports missing Secrets: `Ready` turns to
/// `SecretNotFound`, or names other Secrets than the room's current status does. Said once
/// per change; the condition keeps saying it.
pub fn missing_secrets_news(room: &StreamRoom, next: &StreamRoomStatus) -> Option<String> {
    let ready = |status: &StreamRoomStatus| {
        status
            .conditions
            .iter()
            .find(|c| c.type_ == READY)
            .filter(|c| c.reason == SECRET_NOT_FOUND)
            .map(|c| c.message.clone())
    };
    let now = ready(next)?;
    let before = room.status.as_ref().and_then(ready);
    (before.as_deref() != Some(now.as_str())).then_some(now)
}

/// Status of a room that cannot run: phase Error, Ready=False with the reason.
pub fn error_status(room: &StreamRoom, error: &RoomError, now: &Time) -> StreamRoomStatus {
    blocked_status(room, error.reason(), error.to_string(), Vec::new(), now)
}

/// What the Warning event says about one object (`Kind/name`) holding a child's name.
pub fn conflict_message(object: &str) -> String {
    format!(
        "{object} exists and is not controlled by this StreamRoom, so it was left untouched; delete or rename it, or give the room another name"
    )
}

/// Status of a room whose children's names are held by objects it does not control
/// (`Kind/name` each): phase Error, Ready=False and `ChildConflict=True` naming them.
pub fn conflict_status(room: &StreamRoom, conflicts: &[String], now: &Time) -> StreamRoomStatus {
    let message = format!(
        "{} exist and are not controlled by this StreamRoom, so nothing was applied; delete or rename them, or give the room another name",
        conflicts.join(", ")
    );
    let conflict = condition(
        CHILD_CONFLICT,
        true,
        "NameTaken",
        message.clone(),
        room.metadata.generation,
        now,
    );
    blocked_status(room, CHILD_CONFLICT, message, vec![conflict], now)
}

fn blocked_status(
    room: &StreamRoom,
    reason: &str,
    message: String,
    extra: Vec<Condition>,
    now: &Time,
) -> StreamRoomStatus {
    let previous = room.status.clone().unwrap_or_default();
    let generation = room.metadata.generation;
    let ready = condition(READY, false, reason, message.clone(), generation, now);
    let conditions = std::iter::once(ready).chain(extra).collect();
    StreamRoomStatus {
        phase: Some(RoomPhase::Error),
        message: Some(message),
        observed_generation: generation,
        conditions: carry_transition_times(&previous.conditions, conditions),
        ..StreamRoomStatus::default()
    }
}

/// The operator-owned part of a status, for comparing what is there with what was computed.
pub fn operator_fields(status: &StreamRoomStatus) -> StreamRoomStatus {
    StreamRoomStatus {
        media: None,
        chat: None,
        ..status.clone()
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::{
        apps::v1::DeploymentStatus,
        core::v1::{LoadBalancerIngress, LoadBalancerStatus, ServiceStatus},
    };

    use super::*;
    use crate::validate::validate;

    fn room(extra_spec: &str, status: Option<serde_json::Value>) -> StreamRoom {
        let mut room: StreamRoom = serde_yaml::from_str(&format!(
            "apiVersion: roomcast.dev/v1alpha1\nkind: StreamRoom\nmetadata: {{name: lobby, namespace: shows, uid: u-1, generation: 3}}\nspec: {{{extra_spec}}}\n"
        ))
        .expect("room parses");
        room.status = status.map(|s| serde_json::from_value(s).expect("status parses"));
        room
    }

    fn config() -> OperatorConfig {
        OperatorConfig {
            playback_scheme: "https".into(),
            redis_secret: Some("redis".into()),
            mongodb_secret: Some("mongo".into()),
            share_default_credentials: true,
            ..OperatorConfig::default()
        }
    }

    fn deployment(available: i32) -> Deployment {
        Deployment {
            status: Some(DeploymentStatus {
                available_replicas: Some(available),
                ..DeploymentStatus::default()
            }),
            ..Deployment::default()
        }
    }

    fn at(seconds: i64) -> Time {
        Time(jiff::Timestamp::from_second(1_800_000_000 + seconds).expect("timestamp"))
    }

    fn media_report(
        live: bool,
        reported: i64,
        recording_healthy: Option<bool>,
    ) -> serde_json::Value {
        serde_json::json!({"media": {"live": live, "viewers": 5, "reportedAt": at(reported),
            "recordingHealthy": recording_healthy, "recordingMessage": "spool full (2048 MiB)"}})
    }

    fn both_up() -> Observed {
        Observed {
            media: Some(deployment(1)),
            chat: Some(deployment(2)),
            ..Observed::default()
        }
    }

    fn compute(room: &StreamRoom, observed: &Observed, now: &Time) -> StreamRoomStatus {
        let config = config();
        let valid = validate(room, &config).expect("valid room");
        compute_status(room, &valid, &config, observed, now)
    }

    fn condition<'a>(status: &'a StreamRoomStatus, type_: &str) -> &'a Condition {
        status
            .conditions
            .iter()
            .find(|c| c.type_ == type_)
            .expect("condition present")
    }

    #[test]
    fn room_without_available_media_worker_is_pending() {
        let status = compute(&room("", None), &Observed::default(), &at(0));
        assert_eq!(status.phase, Some(RoomPhase::Pending));
        assert_eq!(condition(&status, INGEST_READY).status, "False");
        assert_eq!(condition(&status, READY).status, "False");
        assert_eq!(status.observed_generation, Some(3));
    }

    #[test]
    fn fresh_live_report_makes_the_room_live() {
        let status = compute(
            &room("", Some(media_report(true, 0, None))),
            &both_up(),
            &at(30),
        );
        assert_eq!(status.phase, Some(RoomPhase::Live));
        assert_eq!(condition(&status, READY).status, "True");
    }

    #[test]
    fn stale_live_report_is_ignored() {
        let status = compute(
            &room("", Some(media_report(true, 0, None))),
            &both_up(),
            &at(121),
        );
        assert_eq!(
            status.phase,
            Some(RoomPhase::Idle),
            "a silent worker must not stay live"
        );
    }

    #[test]
    fn degraded_recording_is_a_false_condition_and_a_degraded_phase() {
        let spec = "recording: {enabled: true, s3: {bucket: vods}}";
        let status = compute(
            &room(spec, Some(media_report(true, 0, Some(false)))),
            &both_up(),
            &at(1),
        );
        assert_eq!(status.phase, Some(RoomPhase::Degraded));
        let recording = condition(&status, RECORDING_READY);
        assert_eq!(
            (recording.status.as_str(), recording.reason.as_str()),
            ("False", "RecordingDegraded")
        );
        assert_eq!(recording.message, "spool full (2048 MiB)");
    }

    #[test]
    fn transition_time_is_kept_while_a_condition_does_not_change() {
        let first = compute(&room("", None), &both_up(), &at(0));
        let mut seen = room("", None);
        seen.status = Some(first.clone());
        let second = compute(&seen, &both_up(), &at(500));
        assert_eq!(
            second, first,
            "nothing changed: identical status, so no patch"
        );

        let third = compute(&seen, &Observed::default(), &at(600));
        assert_eq!(
            condition(&third, INGEST_READY).last_transition_time,
            at(600)
        );
    }

    #[test]
    fn ingest_url_follows_the_service_exposure() {
        let r = room("", None);
        let mut config = config();
        let valid = validate(&r, &config).expect("valid");
        let lb = Service {
            status: Some(ServiceStatus {
                load_balancer: Some(LoadBalancerStatus {
                    ingress: Some(vec![LoadBalancerIngress {
                        hostname: Some("lb.example.com".into()),
                        ..LoadBalancerIngress::default()
                    }]),
                }),
                ..ServiceStatus::default()
            }),
            ..Service::default()
        };
        assert_eq!(ingest_url(&valid, &config, None), None, "no address yet");
        assert_eq!(
            ingest_url(&valid, &config, Some(&lb)).as_deref(),
            Some("rtmp://lb.example.com:1935/live")
        );
        config.ingest_external_host = Some("ingest.example.com".into());
        assert_eq!(
            ingest_url(&valid, &config, Some(&lb)).as_deref(),
            Some("rtmp://ingest.example.com:1935/live")
        );
        config.ingest_external_host = None;
        config.ingest_service_type = IngestServiceType::ClusterIp;
        assert_eq!(
            ingest_url(&valid, &config, None).as_deref(),
            Some("rtmp://lobby-rtmp.shows.svc:1935/live")
        );
    }

    #[test]
    fn behind_the_gateway_the_ingest_url_is_the_gateways_and_never_holds_the_key() {
        let mut config = config();
        config.gateway.url = Some("rtmps://ingest.example.com/live".into());
        let through = validate(&room("", None), &config).expect("valid");
        let status = compute_status(&room("", None), &through, &config, &both_up(), &at(0));
        assert_eq!(
            status.ingest_url.as_deref(),
            Some("rtmps://ingest.example.com/live")
        );
        let own = room("ingest: {expose: service}", None);
        let direct = validate(&own, &config).expect("valid");
        assert_eq!(
            ingest_url(&direct, &config, None),
            None,
            "a room exposed as a Service waits for its load balancer as before"
        );
    }

    #[test]
    fn a_room_behind_the_gateway_is_ready_only_once_routed_and_says_why_not() {
        let mut config = config();
        config.gateway.url = Some("rtmps://ingest.example.com/live".into());
        let r = room("", Some(media_report(false, 0, None)));
        let valid = validate(&r, &config).expect("valid");
        let with = |route| Observed { route, ..both_up() };
        let pending = compute_status(&r, &valid, &config, &with(None), &at(1));
        assert_eq!(
            condition(&pending, crate::routes::INGEST_ROUTED).reason,
            "RoutePending"
        );
        assert_eq!(pending.phase, Some(RoomPhase::Degraded));
        assert_eq!(condition(&pending, READY).status, "False");
        let full = compute_status(
            &r,
            &valid,
            &config,
            &with(Some(crate::routes::RouteState::LeftOut {
                reason: crate::routes::TABLE_FULL,
                message: "full".into(),
            })),
            &at(1),
        );
        let routed_condition = condition(&full, crate::routes::INGEST_ROUTED);
        assert_eq!(
            (
                routed_condition.status.as_str(),
                routed_condition.reason.as_str()
            ),
            ("False", crate::routes::TABLE_FULL)
        );
        let routed = compute_status(
            &r,
            &valid,
            &config,
            &with(Some(crate::routes::RouteState::Routed)),
            &at(1),
        );
        assert_eq!(routed.phase, Some(RoomPhase::Idle));
        assert_eq!(condition(&routed, READY).status, "True");
        // Right after an operator restart the routes task has no state yet: the room keeps
        // the condition it has instead of flapping to RoutePending and back.
        let mut restarted = r.clone();
        restarted.status = Some(routed.clone());
        let kept = compute_status(&restarted, &valid, &config, &with(None), &at(50));
        assert_eq!(
            condition(&kept, crate::routes::INGEST_ROUTED),
            condition(&routed, crate::routes::INGEST_ROUTED)
        );
        assert_eq!(kept.phase, Some(RoomPhase::Idle));
        // A room with its own Service has no such condition.
        let own = room("ingest: {expose: service}", None);
        let direct = compute_status(
            &own,
            &validate(&own, &config).expect("valid"),
            &config,
            &both_up(),
            &at(1),
        );
        assert!(
            !direct
                .conditions
                .iter()
                .any(|c| c.type_ == crate::routes::INGEST_ROUTED)
        );
    }

    fn with_chat_replicas(replicas: &[(&str, i64)]) -> StreamRoom {
        let replicas: Vec<serde_json::Value> = replicas
            .iter()
            .map(|(pod, at_s)| serde_json::json!({"pod": pod, "connections": 3, "reportedAt": at(*at_s)}))
            .collect();
        room(
            "",
            Some(serde_json::json!({"chat": {"replicas": replicas}})),
        )
    }

    #[test]
    fn a_missing_secret_is_named_with_its_field_in_ready_and_the_phase_message() {
        use crate::room_secrets::{NamedSecret, SecretField};
        let missing = |fields: &[(SecretField, &str)]| Observed {
            missing_secrets: fields
                .iter()
                .map(|(field, name)| NamedSecret {
                    field: *field,
                    name: (*name).to_owned(),
                })
                .collect(),
            ..Observed::default()
        };
        let room = room("ingest: {streamKeySecretRef: {name: lobby-key}}", None);
        let status = compute(
            &room,
            &missing(&[(SecretField::StreamKey, "lobby-key")]),
            &at(0),
        );
        let ready = condition(&status, READY);
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("False", SECRET_NOT_FOUND)
        );
        assert_eq!(
            ready.message,
            "Secret lobby-key (spec.ingest.streamKeySecretRef) does not exist in namespace shows; the room's pods that mount it cannot start until it is created"
        );
        assert_eq!(status.phase, Some(RoomPhase::Pending));
        assert_eq!(status.message.as_deref(), Some(ready.message.as_str()));

        // Several at once; a room whose workers still run (a Secret deleted under them) is
        // Degraded, not Live.
        let mut both = missing(&[
            (SecretField::StreamKey, "lobby-key"),
            (SecretField::Mongodb, "mongo"),
        ]);
        both.media = Some(deployment(1));
        both.chat = Some(deployment(2));
        let status = compute(&room, &both, &at(0));
        assert!(
            condition(&status, READY).message.starts_with(
                "Secret lobby-key (spec.ingest.streamKeySecretRef), Secret mongo (spec.mongodbSecretRef) do not exist in namespace shows"
            ),
            "{:?}",
            condition(&status, READY)
        );
        assert_eq!(status.phase, Some(RoomPhase::Degraded));

        // Created: the condition clears.
        let status = compute(&room, &both_up(), &at(0));
        assert_eq!(condition(&status, READY).reason, "RoomReady");
    }

    #[test]
    fn missing_secrets_are_news_once_per_change() {
        use crate::room_secrets::{NamedSecret, SecretField};
        let observed = |name: &str| Observed {
            missing_secrets: vec![NamedSecret {
                field: SecretField::StreamKey,
                name: name.to_owned(),
            }],
            ..Observed::default()
        };
        let fresh = room("ingest: {streamKeySecretRef: {name: a}}", None);
        let first = compute(&fresh, &observed("a"), &at(0));
        let note = missing_secrets_news(&fresh, &first).expect("news");
        assert!(
            note.starts_with("Secret a (spec.ingest.streamKeySecretRef)"),
            "{note}"
        );
        // Already said: the same condition on the room is no news.
        let reported = room(
            "ingest: {streamKeySecretRef: {name: a}}",
            Some(serde_json::to_value(&first).expect("json")),
        );
        let again = compute(&reported, &observed("a"), &at(5));
        assert_eq!(missing_secrets_news(&reported, &again), None);
        // Another Secret missing is news again; none missing is not.
        let other = compute(&reported, &observed("b"), &at(5));
        assert!(missing_secrets_news(&reported, &other).is_some());
        let cleared = compute(&reported, &Observed::default(), &at(5));
        assert_eq!(missing_secrets_news(&reported, &cleared), None);
    }

    #[test]
    fn chat_replicas_silent_for_longer_than_four_heartbeats_are_stale() {
        let replicas = with_chat_replicas(&[("chat-a", 0), ("chat-b", 250), ("chat-c", 300)]);
        let stale: Vec<(usize, String)> = stale_chat_replicas(&replicas, &at(300))
            .into_iter()
            .map(|(i, r)| (i, r.pod))
            .collect();
        assert_eq!(
            stale,
            [(0, "chat-a".to_owned())],
            "300 s silent is stale, 50 s and 0 s are fresh"
        );
        assert_eq!(
            stale_chat_replicas(&replicas, &at(120)).len(),
            0,
            "exactly 120 s is still fresh"
        );
        assert!(stale_chat_replicas(&room("", None), &at(0)).is_empty());
    }

    #[test]
    fn a_report_from_the_future_is_not_stale() {
        // A skewed clock (or a replica writing nonsense) must not get a live entry pruned.
        let room = with_chat_replicas(&[("chat-a", 10_000)]);
        assert!(stale_chat_replicas(&room, &at(0)).is_empty());
    }

    #[test]
    fn the_prune_patch_removes_last_index_first_guarded_by_pod_and_time() {
        let room = with_chat_replicas(&[("chat-a", 0), ("chat-b", 500), ("../../spec~1x", 0)]);
        let patch = prune_chat_replicas_patch(&stale_chat_replicas(&room, &at(500)));
        let reported = serde_json::to_value(at(0)).expect("time");
        assert_eq!(
            patch,
            serde_json::json!([
                {"op": "test", "path": "/status/chat/replicas/2/pod", "value": "../../spec~1x"},
                {"op": "test", "path": "/status/chat/replicas/2/reportedAt", "value": reported},
                {"op": "remove", "path": "/status/chat/replicas/2"},
                {"op": "test", "path": "/status/chat/replicas/0/pod", "value": "chat-a"},
                {"op": "test", "path": "/status/chat/replicas/0/reportedAt", "value": reported},
                {"op": "remove", "path": "/status/chat/replicas/0"},
            ])
        );
        serde_json::from_value::<json_patch::Patch>(patch).expect("a valid RFC 6902 patch");
    }

    #[test]
    fn playback_url_is_public_with_a_host() {
        let status = compute(
            &room("playback: {host: live.example.com}", None),
            &both_up(),
            &at(0),
        );
        assert_eq!(
            status.playback_url.as_deref(),
            Some("https://live.example.com/shows/lobby/hls/index.m3u8")
        );
        assert_eq!(
            status.chat_url.as_deref(),
            Some("https://live.example.com/shows/lobby/chat")
        );
    }
}
