//! Step 1 of a reconcile: decide whether a room can run, and settle every choice the spec
//! leaves to the platform (default host, bucket, chat scale-out). Pure: the same room and
//! config always give the same answer.

use roomcast_crds::{
    S3Spec, StreamRoom, StreamRoomSpec,
    validate::{InvalidRoom, validate_room},
};

use crate::{
    config::OperatorConfig,
    endpoint,
    labels::RoomRef,
    memory::{MemoryError, check_media_memory},
};

/// Why a room cannot run. Each variant becomes a `Ready=False` condition reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoomError {
    #[error(transparent)]
    Schema(#[from] InvalidRoom),
    #[error(
        "spec.recording.enabled is true but neither spec.recording.s3 nor the operator's default bucket (Helm value recording.s3.bucket) is set"
    )]
    RecordingWithoutBucket,
    #[error("the room has no {0}")]
    Missing(&'static str),
    #[error("StreamRoom {room}: {source}")]
    Memory { room: String, source: MemoryError },
    #[error("StreamRoom {room} needs {what} credentials and has none: {fix}")]
    MissingCredentials {
        room: String,
        what: &'static str,
        fix: &'static str,
    },
    #[error("StreamRoom {room}: {why}")]
    GatewayUnavailable { room: String, why: &'static str },
    #[error("StreamRoom {room}: spec.recording.s3.endpoint {endpoint:?} {why}")]
    UnsafeEndpoint {
        room: String,
        endpoint: String,
        why: &'static str,
    },
}

impl RoomError {
    /// CamelCase reason for conditions and Events.
    pub fn reason(&self) -> &'static str {
        match self {
            RoomError::Schema(_) => "InvalidSpec",
            RoomError::RecordingWithoutBucket => "RecordingWithoutBucket",
            RoomError::Missing(_) => "InvalidObject",
            RoomError::Memory {
                source: MemoryError::Overrun(_),
                ..
            } => "DvrWindowExceedsMemoryLimit",
            RoomError::Memory {
                source: MemoryError::InvalidLimit { .. },
                ..
            } => "InvalidMemoryLimit",
            RoomError::UnsafeEndpoint { .. } => "UnsafeS3Endpoint",
            RoomError::MissingCredentials { .. } => "MissingCredentials",
            RoomError::GatewayUnavailable { .. } => "IngestGatewayUnavailable",
        }
    }
}

/// Where a worker's credentials Secret comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecretSource {
    /// A Secret the room names in its own namespace.
    Room(String),
    /// `<room>-<suffix>`: the copy of the platform's default Secret, made only when the
    /// platform shares its credentials with rooms (`--share-default-credentials`).
    Shared,
}

/// What a room is told when it uses a platform default the platform does not share.
const S3_FIX: &str = "the platform's default bucket (Helm value recording.s3) is not shared with rooms; set spec.recording.s3 with the room's own bucket and credentialsSecretRef, or ask the platform to set recording.shareDefaultCredentials";
const MONGODB_FIX: &str = "the platform keeps catalogs and chat history in MongoDB (Helm value mongodb.uriSecret) but does not share its credentials with rooms; create a Secret with key `uri` in the room's namespace and name it in spec.mongodbSecretRef, or ask the platform to set recording.shareDefaultCredentials";

/// Where a recording room's segments go, after defaults.
#[derive(Clone, Debug, PartialEq)]
pub struct RecordingTarget {
    pub s3: S3Spec,
    /// The credentials come from the operator's default Secret, copied as `<room>-s3`
    /// (only when the platform shares its credentials).
    pub uses_default_credentials: bool,
}

/// A room that passed validation, with the platform's defaults applied.
#[derive(Clone, Debug)]
pub struct ValidRoom {
    pub room: RoomRef,
    pub spec: StreamRoomSpec,
    pub generation: Option<i64>,
    pub recording: Option<RecordingTarget>,
    /// Public host; `None` means no Ingress (in-cluster playback only).
    pub host: Option<String>,
    pub ingress_class: Option<String>,
    /// Chat replicas actually run: one when several are asked for but the room has no Redis
    /// or no MongoDB.
    pub chat_replicas: i32,
    /// MongoDB for the catalog and chat history; `None`: the workers' embedded store.
    pub mongodb: Option<SecretSource>,
    /// Redis for chat scale-out; only set when more than one chat replica runs.
    pub redis: Option<SecretSource>,
    /// Rotation requests from the room's annotations (`roomcast.dev/rotate-<key>`).
    pub rotation_requests: std::collections::BTreeMap<String, String>,
    /// Streamers publish through the platform's ingest gateway (`spec.ingest.expose`, or
    /// the platform's default): the RTMP Service stays in-cluster and admits the gateway.
    pub through_gateway: bool,
}

/// Annotation prefix on a room that asks for a key to be rotated: changing the value of
/// `roomcast.dev/rotate-stream-key` (to anything new) rotates the stream key once.
pub const ROTATE_ANNOTATION_PREFIX: &str = "roomcast.dev/rotate-";

pub fn validate(room: &StreamRoom, config: &OperatorConfig) -> Result<ValidRoom, RoomError> {
    validate_room(room)?;
    let room_ref = RoomRef::of(room).map_err(|_| RoomError::Missing("name, namespace or uid"))?;
    let spec = room.spec.clone();
    let name = room_ref.identity().to_string();
    let missing = |what, fix| RoomError::MissingCredentials {
        room: name.clone(),
        what,
        fix,
    };
    check_media_memory(&spec, config).map_err(|source| RoomError::Memory {
        room: name.clone(),
        source,
    })?;
    if let Some(s3) = &spec.recording.s3 {
        endpoint::check(
            &s3.endpoint,
            config.s3.allow_http_endpoint,
            &config.s3.allowed_endpoints.0,
        )
        .map_err(|(endpoint, why)| RoomError::UnsafeEndpoint {
            room: name.clone(),
            endpoint,
            why,
        })?;
    }

    let through_gateway =
        config
            .gateway
            .routes_room(&spec)
            .map_err(|why| RoomError::GatewayUnavailable {
                room: name.clone(),
                why,
            })?;

    let recording = if spec.recording.enabled {
        let (s3, uses_default_credentials) = match &spec.recording.s3 {
            Some(s3) => (s3.clone(), false),
            None => {
                let bucket = config
                    .s3
                    .bucket
                    .clone()
                    .ok_or(RoomError::RecordingWithoutBucket)?;
                let s3 = S3Spec {
                    bucket,
                    prefix: config.s3.prefix.clone().unwrap_or_default(),
                    region: config.s3.region.clone().unwrap_or_default(),
                    endpoint: config.s3.endpoint.clone().unwrap_or_default(),
                    force_path_style: config.s3.force_path_style,
                    credentials_secret_ref: None,
                    service_account_annotations: Default::default(),
                };
                let uses_default_credentials = match &config.s3.credentials_secret {
                    Some(_) if config.share_default_credentials => true,
                    Some(_) => return Err(missing("S3", S3_FIX)),
                    // No platform credentials: the pod identity, nothing to share.
                    None => false,
                };
                (s3, uses_default_credentials)
            }
        };
        Some(RecordingTarget {
            s3,
            uses_default_credentials,
        })
    } else {
        None
    };

    // The store holds the recording catalog and chat history: a room with neither needs none.
    let uses_store = spec.recording.enabled || spec.chat.enabled;
    let mongodb = match (&spec.mongodb_secret_ref, &config.mongodb_secret) {
        _ if !uses_store => None,
        (Some(own), _) => Some(SecretSource::Room(own.name.clone())),
        (None, Some(_)) if config.share_default_credentials => Some(SecretSource::Shared),
        (None, Some(_)) => return Err(missing("MongoDB", MONGODB_FIX)),
        (None, None) => None,
    };
    let redis = match (&spec.chat.redis_secret_ref, &config.redis_secret) {
        (Some(own), _) => Some(SecretSource::Room(own.name.clone())),
        (None, Some(_)) if config.share_default_credentials => Some(SecretSource::Shared),
        _ => None,
    };
    // Several replicas share one room only through Redis (broadcasts) and MongoDB (history,
    // bans): the embedded store belongs to one process. Without them one replica runs and
    // ChatReady says what is missing (chat still works, so this is no error).
    let chat_replicas = if redis.is_some() && mongodb.is_some() {
        spec.chat.replicas
    } else {
        1
    };
    let redis = redis.filter(|_| spec.chat.enabled && chat_replicas > 1);

    let rotation_requests = room
        .metadata
        .annotations
        .iter()
        .flatten()
        .filter_map(|(k, v)| {
            k.strip_prefix(ROTATE_ANNOTATION_PREFIX)
                .map(|key| (key.to_owned(), v.clone()))
        })
        .collect();

    Ok(ValidRoom {
        host: spec
            .playback
            .host
            .clone()
            .or_else(|| config.playback_host.clone()),
        ingress_class: spec
            .playback
            .ingress_class_name
            .clone()
            .or_else(|| config.ingress_class.clone()),
        room: room_ref,
        generation: room.metadata.generation,
        recording,
        chat_replicas,
        mongodb,
        redis,
        rotation_requests,
        through_gateway,
        spec,
    })
}

impl ValidRoom {
    /// Path prefix of this room on the public host: `/<namespace>/<room>`.
    pub fn path_prefix(&self) -> String {
        self.room.identity().path_prefix()
    }

    /// Chat replicas were asked for but cannot run without Redis and MongoDB.
    pub fn chat_scaled_down(&self) -> bool {
        self.spec.chat.enabled && self.chat_replicas < self.spec.chat.replicas
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn room_with_endpoint(endpoint: &str) -> StreamRoom {
        let endpoint = serde_json::to_string(endpoint).expect("json string");
        serde_yaml::from_str(&format!(
            "apiVersion: roomcast.dev/v1alpha1\nkind: StreamRoom\nmetadata: {{name: lobby, namespace: shows, uid: u1}}\nspec:\n  recording: {{enabled: true, s3: {{bucket: vods, endpoint: {endpoint}}}}}\n"
        ))
        .expect("test room parses")
    }

    #[test]
    fn unsafe_endpoint_is_refused_naming_room_and_field_unless_the_flag_allows_it() {
        let room = room_with_endpoint("http://10.0.0.5:9000");
        let err = validate(&room, &OperatorConfig::default()).expect_err("private http");
        assert_eq!(err.reason(), "UnsafeS3Endpoint");
        assert!(
            err.to_string().starts_with(
                "StreamRoom shows/lobby: spec.recording.s3.endpoint \"http://10.0.0.5:9000\""
            ),
            "{err}"
        );
        let mut allowing = OperatorConfig::default();
        allowing.s3.allow_http_endpoint = true;
        validate(&room, &allowing).expect("in-cluster MinIO allowed by the flag");
        // The CRD's rule refuses the plain metadata address; the operator also catches the
        // numeric spellings a CEL pattern cannot list.
        for (endpoint, reason) in [
            ("http://169.254.169.254", "InvalidSpec"),
            ("http://2852039166", "UnsafeS3Endpoint"),
            ("http://0xa9fea9fe", "UnsafeS3Endpoint"),
        ] {
            assert_eq!(
                validate(&room_with_endpoint(endpoint), &allowing)
                    .map(|_| ())
                    .map_err(|e| e.reason()),
                Err(reason),
                "{endpoint}"
            );
        }
    }

    #[test]
    fn a_room_that_asks_for_a_gateway_the_platform_does_not_run_is_refused_with_the_fix() {
        let room: StreamRoom = serde_yaml::from_str(
            "apiVersion: roomcast.dev/v1alpha1\nkind: StreamRoom\nmetadata: {name: lobby, namespace: shows, uid: u1}\nspec: {ingest: {expose: gateway}}\n",
        )
        .expect("room parses");
        let err = validate(&room, &OperatorConfig::default()).expect_err("no gateway");
        assert_eq!(err.reason(), "IngestGatewayUnavailable");
        assert!(err.to_string().contains("expose: service"), "{err}");
        let mut with_gateway = OperatorConfig::default();
        with_gateway.gateway.url = Some("rtmps://ingest.example.com/live".into());
        assert!(
            validate(&room, &with_gateway)
                .expect("runs")
                .through_gateway
        );
    }

    #[test]
    fn a_room_may_name_an_in_cluster_store_only_when_the_operator_lists_it() {
        let room = room_with_endpoint("http://minio.minio.svc:9000");
        let mut config = OperatorConfig::default();
        config.s3.allowed_endpoints = crate::config::AllowedOrigins(vec![
            crate::endpoint::parse_allowed_origin("http://minio.minio.svc:9000")
                .expect("entry parses"),
        ]);
        validate(&room, &config).expect("listed store");
        for other in [
            "http://minio.minio.svc:9001",
            "http://minio.minio.svc",
            "http://10.0.0.9:9000",
        ] {
            let err = validate(&room_with_endpoint(other), &config).expect_err(other);
            assert_eq!(err.reason(), "UnsafeS3Endpoint", "{other}");
        }
    }
}
