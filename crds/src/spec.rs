//! The `spec` of a StreamRoom. Bounds the API server can check live in the schema (ranges,
//! patterns, CEL `x-kubernetes-validations`), so a bad room is refused at `kubectl apply` time.

use k8s_openapi::api::core::v1::ResourceRequirements;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use crate::{defaults, status::StreamRoomStatus};

/// RFC 1123 DNS subdomain: what an Ingress host accepts (wildcards are not allowed for rooms).
pub const HOSTNAME_PATTERN: &str =
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";
/// Rendition names end up in URLs and S3 keys: keep them to a lower-case label.
pub const RENDITION_NAME_PATTERN: &str = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";
/// Longest room name: child names add up to 24 characters (`-media-<hash>-<suffix>` on pods)
/// and Services must stay DNS-1035 labels of at most 63 characters.
pub const MAX_ROOM_NAME_LENGTH: usize = 40;
/// An S3 key prefix: empty, or segments of S3's "safe" characters, each ending in `/`, none
/// of them `.` or `..`. Recordings are written under `<prefix><namespace>/<room>/`, so a
/// prefix without its trailing `/` would glue onto the namespace, a leading `/` or an empty
/// segment (`a//`) makes keys that S3-compatible stores and the local store treat
/// differently, and a `..` segment climbs out of the prefix on the local store. No
/// backslashes: the same text is a CEL string literal, a Rust regex and a JSON Schema pattern.
pub const S3_PREFIX_PATTERN: &str =
    "^(([A-Za-z0-9!_*()-]|[.][A-Za-z0-9!_*()-]|[.][.][A-Za-z0-9!_.*()-])[A-Za-z0-9!_.*()-]*/)*$";
/// Message of the prefix rule, shared by the CRD and the operator's config check.
pub const S3_PREFIX_RULE: &str = "must be empty or segments of letters, digits and !-_.*() each ending in '/' (e.g. 'rooms/'), with no leading '/', empty segment, '.' or '..'";

/// An S3 endpoint the API server accepts: `http://` or `https://` (any case), a host, no
/// `@` anywhere before the path (credentials in the URL, or a host that hides the real one).
/// The operator applies the rest (`https://` only unless listed, odd numeric hosts).
pub const S3_ENDPOINT_SHAPE: &str = "(?i)^https?://[^/@?#]+([/?#][^@]*)?$";
/// Hosts an S3 endpoint can never name: IPv4 link-local (169.254.0.0/16, cloud metadata),
/// IPv6 link-local (fe80::/10), the IPv4-mapped forms of both, AWS's IPv6 and Alibaba's
/// metadata addresses and the metadata host names. No backslashes (the text is a CEL string
/// literal): `[^a-z0-9.-]` stands for the `[` and `]` around an IPv6 host.
pub const S3_ENDPOINT_FORBIDDEN: &str = "(?i)^https?://([^a-z0-9.-](fe[89ab][0-9a-f]:|::ffff:169[.]254[.]|::ffff:a9fe:|fd00:ec2::254[^0-9a-f:])|169[.]254[.]|100[.]100[.]100[.]200([:/?#]|$)|(metadata|metadata[.]google[.]internal|metadata[.]goog|metadata[.]azure[.]internal|instance-data|instance-data[.]ec2[.]internal)[.]?([:/?#]|$))";
/// Message of the endpoint rule.
pub const S3_ENDPOINT_RULE: &str = "must be empty or an http(s):// URL without credentials, and never a link-local or cloud metadata address (169.254.0.0/16, fe80::/10, metadata.google.internal, ...); plain http:// and private addresses also need the operator's --s3-allowed-endpoints";

/// True when `prefix` follows [`S3_PREFIX_PATTERN`] (the same rule the CRD's CEL applies).
pub fn is_valid_s3_prefix(prefix: &str) -> bool {
    regex::Regex::new(S3_PREFIX_PATTERN).is_ok_and(|re| re.is_match(prefix))
}

/// A live-streaming room: RTMP ingest, adaptive HLS playback, chat and recording.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[kube(
    group = "roomcast.dev",
    version = "v1alpha1",
    kind = "StreamRoom",
    plural = "streamrooms",
    shortname = "room",
    shortname = "rooms",
    category = "roomcast",
    namespaced,
    cel,
    status = "StreamRoomStatus",
    doc = "A live-streaming room: RTMP ingest, adaptive HLS with a DVR window, chat and recording.",
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Live", type_ = "boolean", json_path = ".status.media.live"),
    printcolumn(name = "Viewers", type_ = "integer", json_path = ".status.media.viewers"),
    printcolumn(name = "Ingest", type_ = "string", json_path = ".status.ingestUrl"),
    printcolumn(name = "Playback", type_ = "string", json_path = ".status.playbackUrl"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = kube::core::Rule::new(
        "self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$') && size(self.metadata.name) <= 40"
    ).message("room name must be a DNS-1035 label (lower case, starting with a letter) of at most 40 characters")
)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = kube::core::Rule::new("!has(self.recording) || !has(self.recording.renditions) || self.recording.renditions.all(n, self.transcode.renditions.exists(r, r.name == n))")
        .message("every name in spec.recording.renditions must be a rendition of spec.transcode.renditions")
        .field_path(".recording.renditions")
        .reason(kube::core::Reason::FieldValueInvalid),
)]
pub struct StreamRoomSpec {
    /// How the streamer publishes (RTMP).
    #[serde(default)]
    pub ingest: IngestSpec,
    /// The adaptive-bitrate HLS ladder and the DVR window.
    #[serde(default)]
    pub transcode: TranscodeSpec,
    /// Recording of every live session to S3.
    #[serde(default)]
    pub recording: RecordingSpec,
    /// The room's socket.io chat.
    #[serde(default)]
    pub chat: ChatSpec,
    /// Where and how viewers reach the room.
    #[serde(default)]
    pub playback: PlaybackSpec,
    /// Resource requests and limits of the workers; the operator's defaults apply when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<WorkerResources>,
    /// Secret of the room's namespace whose key `uri` is the MongoDB connection string for
    /// the room's recording catalog and chat history. Unset: the platform's MongoDB if the
    /// platform shares its credentials with rooms (Helm value
    /// `recording.shareDefaultCredentials`), else the workers' embedded store; a platform
    /// that configures MongoDB without sharing it reports such a room `MissingCredentials`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mongodb_secret_ref: Option<SecretRef>,
}

/// RTMP ingest settings.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct IngestSpec {
    /// Secret holding the stream key. When absent the operator generates one into the room's
    /// `<room>-keys` Secret and never overwrites it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_key_secret_ref: Option<SecretKeyRef>,
    /// Highest publisher bitrate accepted, in kbit/s (video + audio).
    #[serde(default = "defaults::max_bitrate_kbps")]
    #[schemars(range(min = 100, max = 100000))]
    pub max_bitrate_kbps: u32,
    /// A publisher that reconnects within this many seconds continues the same session.
    #[serde(default = "defaults::reconnect_grace_seconds")]
    #[schemars(range(max = 300))]
    pub reconnect_grace_seconds: u32,
    /// How streamers reach the room: `gateway` (the platform's shared RTMP/RTMPS ingest
    /// gateway; the room's own RTMP Service stays in-cluster) or `service` (the room's own
    /// RTMP Service, exposed as the platform chose). Unset: `gateway` when the platform runs
    /// the gateway, else `service`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expose: Option<IngestExpose>,
}

/// How streamers reach the room: `gateway` (the platform's shared RTMP/RTMPS ingest gateway;
/// the room's own RTMP Service stays, in-cluster only) or `service` (the room's own RTMP
/// Service, exposed as the platform chose). Unset: `gateway` when the platform runs the
/// gateway, else `service`.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum IngestExpose {
    /// The platform's shared ingest gateway (`rtmps://<gateway host>/live`).
    Gateway,
    /// The room's own RTMP Service.
    Service,
}

impl Default for IngestSpec {
    fn default() -> Self {
        Self {
            stream_key_secret_ref: None,
            max_bitrate_kbps: defaults::MAX_BITRATE_KBPS,
            reconnect_grace_seconds: defaults::RECONNECT_GRACE_SECONDS,
            expose: None,
        }
    }
}

/// A key in a Secret of the room's namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key inside the Secret.
    #[serde(default = "defaults::stream_key_secret_key")]
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

/// A Secret of the room's namespace, used as a whole.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SecretRef {
    /// Name of the Secret (a DNS subdomain, as Kubernetes names Secrets).
    #[schemars(length(min = 1, max = 253), regex(pattern = HOSTNAME_PATTERN))]
    pub name: String,
}

/// The HLS ladder and DVR window.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = kube::core::Rule::new("self.dvrWindowSeconds >= 3 * self.segmentSeconds")
        .message("dvrWindowSeconds must hold at least 3 segments (3 * segmentSeconds)")
        .reason(kube::core::Reason::FieldValueInvalid),
    validation = kube::core::Rule::new("self.renditions.all(r, self.renditions.exists_one(o, o.name == r.name))")
        .message("rendition names must be unique")
        .reason(kube::core::Reason::FieldValueDuplicate),
)]
pub struct TranscodeSpec {
    /// Target segment length in seconds; keyframes are forced on every segment boundary.
    #[serde(default = "defaults::segment_seconds")]
    #[schemars(range(min = 1, max = 10))]
    pub segment_seconds: u32,
    /// How far back viewers can rewind, in seconds (the live playlist's window).
    #[serde(default = "defaults::dvr_window_seconds")]
    #[schemars(range(max = 21600))]
    pub dvr_window_seconds: u32,
    /// The ABR ladder, best first. `source` passes the publisher's stream through.
    #[serde(default = "defaults::renditions")]
    #[schemars(length(min = 1, max = 8))]
    pub renditions: Vec<Rendition>,
}

impl Default for TranscodeSpec {
    fn default() -> Self {
        Self {
            segment_seconds: defaults::SEGMENT_SECONDS,
            dvr_window_seconds: defaults::DVR_WINDOW_SECONDS,
            renditions: defaults::renditions(),
        }
    }
}

/// One rung of the ladder.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = kube::core::Rule::new("self.name == 'source' ? !has(self.height) && !has(self.videoKbps) && !has(self.audioKbps) : has(self.height) && has(self.videoKbps)")
        .message("the 'source' rendition is a passthrough (no height, videoKbps or audioKbps: its bitrate is bounded by spec.ingest.maxBitrateKbps); every other rendition needs height and videoKbps")
        .reason(kube::core::Reason::FieldValueInvalid),
)]
pub struct Rendition {
    /// Name used in URLs and storage keys (`source` is the passthrough copy).
    #[schemars(length(min = 1, max = 32), regex(pattern = RENDITION_NAME_PATTERN))]
    pub name: String,
    /// Output height in pixels; width follows the source aspect ratio.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 144, max = 2160))]
    pub height: Option<u32>,
    /// Video bitrate in kbit/s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 100, max = 50000))]
    pub video_kbps: Option<u32>,
    /// AAC audio bitrate in kbit/s (defaults to 128 for encoded rungs; not allowed on `source`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 32, max = 512))]
    pub audio_kbps: Option<u32>,
}

impl Rendition {
    /// True for the passthrough rendition.
    pub fn is_source(&self) -> bool {
        self.name == defaults::SOURCE_RENDITION
    }

    /// Nominal bitrate of this rung in kbit/s, video plus audio: the publisher's ceiling
    /// `max_bitrate_kbps` for `source` (it is passed through, audio included), else
    /// `videoKbps + audioKbps` with the default audio bitrate when unset.
    pub fn nominal_kbps(&self, max_bitrate_kbps: u32) -> u32 {
        if self.is_source() {
            max_bitrate_kbps
        } else {
            self.video_kbps
                .unwrap_or_default()
                .saturating_add(self.audio_kbps.unwrap_or(defaults::AUDIO_KBPS))
        }
    }
}

/// Recording of live sessions.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct RecordingSpec {
    /// Record every live session.
    #[serde(default)]
    pub enabled: bool,
    /// Where recordings go. When unset, the operator's default S3 settings (Helm value
    /// `recording.s3`) apply; a room with recording on and neither is reported, not run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3: Option<S3Spec>,
    /// Sessions older than this many days are deleted by the retention sweep. Unset keeps
    /// them forever.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 36500))]
    pub retention_days: Option<u32>,
    /// Renditions to record (all when empty); each must be a rung of the ladder.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 8),
        inner(length(min = 1, max = 32), regex(pattern = RENDITION_NAME_PATTERN))
    )]
    pub renditions: Vec<String>,
    /// Size of the local upload spool in MiB (an emptyDir with this size limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 64, max = 1048576))]
    pub spool_size_mib: Option<u32>,
}

impl RecordingSpec {
    /// Spool size with the default applied.
    pub fn spool_size_mib(&self) -> u32 {
        self.spool_size_mib.unwrap_or_else(defaults::spool_size_mib)
    }
}

/// An S3 or S3-compatible bucket.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct S3Spec {
    /// Bucket name.
    #[schemars(length(min = 3, max = 63))]
    pub bucket: String,
    /// Key prefix, e.g. `rooms/`: empty or ending in `/`, no leading `/`, no empty, `.` or
    /// `..` segment. Objects go under `<prefix><namespace>/<room>/<session>/`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(length(max = 512))]
    #[x_kube(
        validation = kube::core::Rule::new(format!("self.matches('{S3_PREFIX_PATTERN}')"))
            .message(S3_PREFIX_RULE)
            .reason(kube::core::Reason::FieldValueInvalid),
    )]
    pub prefix: String,
    /// Region (e.g. `us-east-1`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(length(max = 64))]
    pub region: String,
    /// Endpoint of an S3-compatible store (MinIO, Ceph, R2...). Empty means AWS. An
    /// `http(s)://` URL without credentials, never a link-local or cloud metadata address;
    /// plain `http://` and private addresses only when the operator lists the store.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(length(max = 2048))]
    #[x_kube(
        validation = kube::core::Rule::new(format!("self == '' || (self.matches('{S3_ENDPOINT_SHAPE}') && !self.matches('{S3_ENDPOINT_FORBIDDEN}'))"))
            .message(S3_ENDPOINT_RULE)
            .reason(kube::core::Reason::FieldValueInvalid),
    )]
    pub endpoint: String,
    /// Use path-style URLs (`endpoint/bucket/key`), which most S3-compatible stores need.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub force_path_style: Option<bool>,
    /// Secret with `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY` (and optionally
    /// `AWS_SESSION_TOKEN`). Unset uses the pod's identity (see `serviceAccountAnnotations`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret_ref: Option<SecretRef>,
    /// Annotations for the media worker's ServiceAccount, e.g.
    /// `eks.amazonaws.com/role-arn` for IAM roles for service accounts.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub service_account_annotations: std::collections::BTreeMap<String, String>,
}

/// Chat settings.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ChatSpec {
    /// Run the chat workers.
    #[serde(default = "defaults::enabled")]
    pub enabled: bool,
    /// Number of chat replicas (they share rooms through Redis when more than one).
    #[serde(default = "defaults::chat_replicas")]
    #[schemars(range(min = 1, max = 50))]
    pub replicas: i32,
    /// Messages a joining viewer receives.
    #[serde(default = "defaults::chat_history_size")]
    #[schemars(range(max = 5000))]
    pub history_size: u32,
    /// Longest message, in characters.
    #[serde(default = "defaults::chat_max_message_length")]
    #[schemars(range(min = 1, max = 10000))]
    pub max_message_length: u32,
    /// Messages one user may post per minute.
    #[serde(default = "defaults::chat_rate_limit_per_minute")]
    #[schemars(range(min = 1, max = 6000))]
    pub rate_limit_per_minute: u32,
    /// Days chat messages are kept (unset keeps them forever).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 36500))]
    pub retention_days: Option<u32>,
    /// Secret of the room's namespace whose key `url` is the Redis URL (`redis://` or
    /// `rediss://`) the replicas share broadcasts through. Unset: the platform's Redis if the
    /// platform shares its credentials with rooms, else one replica runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis_secret_ref: Option<SecretRef>,
}

impl Default for ChatSpec {
    fn default() -> Self {
        Self {
            enabled: true,
            replicas: defaults::CHAT_REPLICAS,
            history_size: defaults::CHAT_HISTORY_SIZE,
            max_message_length: defaults::CHAT_MAX_MESSAGE_LENGTH,
            rate_limit_per_minute: defaults::CHAT_RATE_LIMIT_PER_MINUTE,
            retention_days: None,
            redis_secret_ref: None,
        }
    }
}

/// Viewer-facing settings.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PlaybackSpec {
    /// Public host of the Ingress. Unset uses the operator's default host (Helm value
    /// `playback.host`); with neither, no Ingress is made and playback stays in-cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253), regex(pattern = HOSTNAME_PATTERN))]
    pub host: Option<String>,
    /// IngressClass; unset uses the operator's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub ingress_class_name: Option<String>,
    /// TLS certificate Secret for `host`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_secret_ref: Option<SecretRef>,
    /// Settings for a CDN in front of the Ingress.
    #[serde(default)]
    pub cdn: CdnSpec,
    /// `standard`: MPEG-TS segments, a player sits about three segments behind live.
    /// `low`: Low-Latency HLS on CMAF (fMP4 parts, blocking playlist reload, preload hints),
    /// about two seconds behind live; the CDN must forward the `_HLS_msn`, `_HLS_part` and
    /// `_HLS_skip` query strings.
    #[serde(default)]
    pub latency: Latency,
    /// Target duration of an LL-HLS partial segment, in ms (`latency: low` only). Players
    /// hold back three parts from the live edge, so this sets the latency.
    #[serde(default = "defaults::part_target_ms")]
    #[schemars(range(min = 200, max = 1000))]
    pub part_target_ms: u32,
}

impl Default for PlaybackSpec {
    fn default() -> Self {
        Self {
            host: None,
            ingress_class_name: None,
            tls_secret_ref: None,
            cdn: CdnSpec::default(),
            latency: Latency::default(),
            part_target_ms: defaults::PART_TARGET_MS,
        }
    }
}

/// How far behind live a room plays, and what that costs (see [`PlaybackSpec::latency`]).
#[derive(
    schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default,
)]
#[serde(rename_all = "camelCase")]
pub enum Latency {
    /// MPEG-TS segments; every player and CDN handles them without configuration.
    #[default]
    Standard,
    /// LL-HLS on CMAF.
    Low,
}

/// Caching and origin protection for a CDN.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CdnSpec {
    /// Secret whose `origin-secret` key the CDN sends in the `X-Origin-Secret` header; the
    /// origin refuses requests without it (403).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin_secret_ref: Option<SecretRef>,
    /// `Cache-Control: max-age` of live playlists.
    #[serde(default = "defaults::playlist_max_age_seconds")]
    #[schemars(range(max = 60))]
    pub playlist_max_age_seconds: u32,
    /// `Cache-Control: max-age` of segments (immutable once written).
    #[serde(default = "defaults::segment_max_age_seconds")]
    #[schemars(range(max = 31536000))]
    pub segment_max_age_seconds: u32,
}

impl Default for CdnSpec {
    fn default() -> Self {
        Self {
            origin_secret_ref: None,
            playlist_max_age_seconds: defaults::PLAYLIST_MAX_AGE_SECONDS,
            segment_max_age_seconds: defaults::SEGMENT_MAX_AGE_SECONDS,
        }
    }
}

/// Per-worker resource requirements.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct WorkerResources {
    /// Media worker (ingest, transcode, origin, recorder).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media: Option<ResourceRequirements>,
    /// Each chat replica.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chat: Option<ResourceRequirements>,
}
