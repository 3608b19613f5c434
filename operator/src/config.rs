//! Operator-wide settings: the Helm chart passes them as environment variables, `render`
//! takes them as flags. Empty values mean unset, so a chart can pass every variable.

use std::net::SocketAddr;

use std::collections::BTreeMap;

use clap::{Args, ValueEnum};
use k8s_openapi::{
    api::core::v1::ResourceRequirements, apimachinery::pkg::api::resource::Quantity,
};
use roomcast_crds::{S3_PREFIX_RULE, StreamRoomSpec, is_valid_s3_prefix};

use crate::{
    Error, Result,
    endpoint::{Origin, parse_allowed_origin},
};

pub const DEFAULT_IMAGE: &str = concat!("ghcr.io/roomcast/roomcast:", env!("CARGO_PKG_VERSION"));
/// Chat's trusted proxies unless configured: RFC 1918, shared (RFC 6598) and unique-local
/// IPv6 ranges. Pod networks live there, so viewers behind any in-cluster Ingress controller
/// keep their own addresses; a peer on a public address can never name another client.
pub const DEFAULT_CHAT_TRUSTED_PROXIES: &str =
    "10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,100.64.0.0/10,fc00::/7";
pub const DEFAULT_PLAYBACK_SCHEME: &str = "https";
/// The cluster's DNS domain (the kubelet's `--cluster-domain`), which almost every cluster
/// leaves at this.
pub const DEFAULT_CLUSTER_DOMAIN: &str = "cluster.local";
pub const DEFAULT_OPERATOR_NAMESPACE: &str = "roomcast-system";
pub const DEFAULT_HTTP_ADDR: &str = "0.0.0.0:8080";
pub const DEFAULT_LEASE_NAME: &str = "roomcast-operator";
/// Identity in the Lease and in Events when `POD_NAME` is unset (outside a cluster).
pub const DEFAULT_POD_NAME: &str = "roomcast-operator";
/// A good reconcile comes back after this long to heal drift (someone edited a child).
pub const DEFAULT_RESYNC_SECONDS: u64 = 600;
/// Media container resources (cpu request, memory request, memory limit) when neither the
/// room (`spec.resources.media`) nor the operator (`ROOMCAST_MEDIA_RESOURCES`) sets any. The
/// memory limit is the ceiling rooms' DVR windows are checked against (see `memory`).
pub const DEFAULT_MEDIA_RESOURCES: (&str, &str, &str) = ("1", "512Mi", "2Gi");
/// Chat container resources when neither the room nor the operator sets any.
pub const DEFAULT_CHAT_RESOURCES: (&str, &str, &str) = ("100m", "128Mi", "512Mi");

/// How the RTMP Service is exposed to streamers.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum IngestServiceType {
    #[default]
    #[value(name = "LoadBalancer")]
    LoadBalancer,
    #[value(name = "NodePort")]
    NodePort,
    #[value(name = "ClusterIP")]
    ClusterIp,
}

impl IngestServiceType {
    pub fn as_str(self) -> &'static str {
        match self {
            IngestServiceType::LoadBalancer => "LoadBalancer",
            IngestServiceType::NodePort => "NodePort",
            IngestServiceType::ClusterIp => "ClusterIP",
        }
    }
}

/// What rooms get when their spec leaves a setting to the platform.
#[derive(Args, Clone, Debug, Default)]
pub struct OperatorConfig {
    /// Image of the media worker.
    #[arg(long, env = "ROOMCAST_MEDIA_IMAGE", default_value = DEFAULT_IMAGE)]
    pub media_image: String,
    /// Image of the chat worker.
    #[arg(long, env = "ROOMCAST_CHAT_IMAGE", default_value = DEFAULT_IMAGE)]
    pub chat_image: String,
    /// imagePullPolicy of worker containers (Always, IfNotPresent, Never).
    #[arg(long, env = "ROOMCAST_IMAGE_PULL_POLICY")]
    pub image_pull_policy: Option<String>,
    /// imagePullSecrets of worker pods: Secret names, comma-separated. Each must exist in
    /// every room's namespace; the operator does not copy registry credentials there.
    #[arg(long, env = "ROOMCAST_IMAGE_PULL_SECRETS", value_delimiter = ',')]
    pub image_pull_secrets: Vec<String>,
    /// IngressClass for rooms that name none.
    #[arg(long, env = "ROOMCAST_INGRESS_CLASS")]
    pub ingress_class: Option<String>,
    /// Public host for rooms that name none; with neither, rooms get no Ingress.
    #[arg(long, env = "ROOMCAST_PLAYBACK_HOST")]
    pub playback_host: Option<String>,
    /// Scheme of the public playback URLs.
    #[arg(long, env = "ROOMCAST_PLAYBACK_SCHEME", default_value = DEFAULT_PLAYBACK_SCHEME)]
    pub playback_scheme: String,
    /// Service type of the RTMP ingest Service.
    #[arg(
        long,
        env = "ROOMCAST_INGEST_SERVICE_TYPE",
        value_enum,
        default_value_t
    )]
    pub ingest_service_type: IngestServiceType,
    /// Host streamers publish to (DNS name of the load balancer); unset reads it from the
    /// Service's load balancer status.
    #[arg(long, env = "ROOMCAST_INGEST_EXTERNAL_HOST")]
    pub ingest_external_host: Option<String>,
    #[command(flatten)]
    pub s3: DefaultS3,
    #[command(flatten)]
    pub gateway: crate::gateway::GatewayConfig,
    #[command(flatten)]
    pub network: crate::network::NetworkConfig,
    /// Secret in the operator's namespace with key `uri`: MongoDB for catalogs and chat.
    /// Copied into a room's namespace only with `--share-default-credentials`; otherwise a
    /// room names its own (`spec.mongodbSecretRef`) or is reported `MissingCredentials`.
    /// Unset: workers use their embedded store.
    #[arg(long, env = "ROOMCAST_MONGODB_SECRET")]
    pub mongodb_secret: Option<String>,
    /// Secret in the operator's namespace with key `url`: Redis for chat scale-out. Copied
    /// into a room's namespace only with `--share-default-credentials`; otherwise a room
    /// names its own (`spec.chat.redisSecretRef`) or runs one chat replica.
    #[arg(long, env = "ROOMCAST_REDIS_SECRET")]
    pub redis_secret: Option<String>,
    /// Copy the platform's default credentials (S3 credentials Secret, MongoDB and Redis
    /// Secrets) into the namespace of every room that uses them. Anyone who can read Secrets
    /// in one room's namespace then holds them, and with them every room's recordings,
    /// catalog, chat history and Redis channels: turn it on only when every room namespace
    /// is trusted as much as the operator's.
    #[arg(
        long,
        env = "ROOMCAST_SHARE_DEFAULT_CREDENTIALS",
        default_value_t = false
    )]
    pub share_default_credentials: bool,
    /// Networks of the proxies in front of chat (the Ingress controller's pods): CIDRs or
    /// addresses, comma-separated. Chat reads `X-Forwarded-For` only from a peer inside them,
    /// so its per-address connection cap counts viewers, not the Ingress. Empty: no header is
    /// read. The default is the private and shared address ranges, where pod networks live;
    /// narrow it to the Ingress controller's pod CIDR.
    #[arg(long, env = "ROOMCAST_CHAT_TRUSTED_PROXIES", default_value = DEFAULT_CHAT_TRUSTED_PROXIES)]
    pub chat_trusted_proxies: String,
    /// Default resources of media workers (JSON ResourceRequirements).
    #[arg(long, env = "ROOMCAST_MEDIA_RESOURCES", value_parser = parse_resources)]
    pub media_resources: Option<ResourceRequirements>,
    /// Default resources of chat workers (JSON ResourceRequirements).
    #[arg(long, env = "ROOMCAST_CHAT_RESOURCES", value_parser = parse_resources)]
    pub chat_resources: Option<ResourceRequirements>,
    /// The cluster's DNS domain. In-cluster names the operator hands to its workers (the ingest
    /// gateway's backends) are written fully qualified under it, with a trailing dot, so no
    /// resolver search list (where a tenant's namespace could answer first) is ever tried.
    #[arg(long, env = "ROOMCAST_CLUSTER_DOMAIN", default_value = DEFAULT_CLUSTER_DOMAIN)]
    pub cluster_domain: String,
    /// Namespace the operator runs in (default Secrets are read from here).
    #[arg(long, env = "POD_NAMESPACE", default_value = DEFAULT_OPERATOR_NAMESPACE)]
    pub operator_namespace: String,
}

/// Default S3 sink for rooms that record without their own `spec.recording.s3`.
#[derive(Args, Clone, Debug, Default)]
pub struct DefaultS3 {
    #[arg(long = "s3-bucket", env = "ROOMCAST_S3_BUCKET")]
    pub bucket: Option<String>,
    #[arg(long = "s3-prefix", env = "ROOMCAST_S3_PREFIX")]
    pub prefix: Option<String>,
    #[arg(long = "s3-region", env = "ROOMCAST_S3_REGION")]
    pub region: Option<String>,
    #[arg(long = "s3-endpoint", env = "ROOMCAST_S3_ENDPOINT")]
    pub endpoint: Option<String>,
    #[arg(long = "s3-force-path-style", env = "ROOMCAST_S3_FORCE_PATH_STYLE")]
    pub force_path_style: Option<bool>,
    /// Secret in the operator's namespace with AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY;
    /// copied into each recording room's namespace.
    #[arg(long = "s3-credentials-secret", env = "ROOMCAST_S3_CREDENTIALS_SECRET")]
    pub credentials_secret: Option<String>,
    /// Let rooms name a plain `http://` endpoint or one on a private or loopback address
    /// in `spec.recording.s3.endpoint` (an in-cluster MinIO). Link-local and cloud metadata
    /// addresses stay refused. Prefer listing the store in `--s3-allowed-endpoints`.
    #[arg(
        long = "s3-allow-http-endpoint",
        env = "ROOMCAST_S3_ALLOW_HTTP_ENDPOINT",
        default_value_t = false
    )]
    pub allow_http_endpoint: bool,
    /// Origins (`scheme://host[:port]`, comma-separated) rooms may name in
    /// `spec.recording.s3.endpoint` even when they are plain `http://` or private, e.g.
    /// `http://minio.minio.svc:9000`. Public `https://` endpoints need no listing; link-local
    /// and cloud metadata addresses cannot be listed.
    #[arg(
        long = "s3-allowed-endpoints",
        env = "ROOMCAST_S3_ALLOWED_ENDPOINTS",
        default_value = "",
        value_parser = parse_allowed_endpoints
    )]
    pub allowed_endpoints: AllowedOrigins,
}

/// The origins of `--s3-allowed-endpoints`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AllowedOrigins(pub Vec<Origin>);

/// Empty entries are skipped, so an empty variable lists nothing.
fn parse_allowed_endpoints(text: &str) -> Result<AllowedOrigins, String> {
    text.split(',')
        .filter(|entry| !entry.trim().is_empty())
        .map(parse_allowed_origin)
        .collect::<Result<_, _>>()
        .map(AllowedOrigins)
        .map_err(|why| {
            format!(
                "{why} (ROOMCAST_S3_ALLOWED_ENDPOINTS, Helm value recording.s3.allowedEndpoints)"
            )
        })
}

fn parse_resources(text: &str) -> Result<ResourceRequirements, String> {
    serde_json::from_str(text).map_err(|e| format!("not a JSON ResourceRequirements: {e}"))
}

/// Resources: the room's own, else the operator's default, else `fallback`
/// (cpu request, memory request, memory limit).
fn resolve_resources(
    room: Option<&ResourceRequirements>,
    operator_default: Option<&ResourceRequirements>,
    fallback: (&str, &str, &str),
) -> ResourceRequirements {
    room.or(operator_default).cloned().unwrap_or_else(|| {
        let (cpu, memory, memory_limit) = fallback;
        ResourceRequirements {
            requests: Some(BTreeMap::from([
                ("cpu".to_owned(), Quantity(cpu.to_owned())),
                ("memory".to_owned(), Quantity(memory.to_owned())),
            ])),
            limits: Some(BTreeMap::from([(
                "memory".to_owned(),
                Quantity(memory_limit.to_owned()),
            )])),
            ..ResourceRequirements::default()
        }
    })
}

/// Where the media container's resources of a room come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResourcesFrom {
    /// `spec.resources.media` of the room.
    Room,
    /// The operator's `ROOMCAST_MEDIA_RESOURCES` (Helm value `workers.media.resources`).
    Operator,
    /// [`DEFAULT_MEDIA_RESOURCES`].
    BuiltIn,
}

impl ResourcesFrom {
    /// Where a user changes the setting, for error messages.
    pub fn describe(self) -> &'static str {
        match self {
            ResourcesFrom::Room => "spec.resources.media",
            ResourcesFrom::Operator => {
                "operator default ROOMCAST_MEDIA_RESOURCES, Helm value workers.media.resources"
            }
            ResourcesFrom::BuiltIn => "built-in default",
        }
    }
}

/// Settings of the running controller (not needed by `render`).
#[derive(Args, Clone, Debug)]
pub struct RunConfig {
    /// Watch one namespace; empty watches the whole cluster.
    #[arg(long, env = "WATCH_NAMESPACE")]
    pub watch_namespace: Option<String>,
    /// Address of /metrics, /healthz and /readyz.
    #[arg(long, env = "ROOMCAST_HTTP_ADDR", default_value = DEFAULT_HTTP_ADDR)]
    pub http_addr: SocketAddr,
    /// Take a Lease before reconciling, so several replicas can run (one active).
    #[arg(long, env = "ROOMCAST_LEADER_ELECTION", default_value_t = false)]
    pub leader_election: bool,
    /// Name of the Lease in the operator's namespace.
    #[arg(long, env = "ROOMCAST_LEASE_NAME", default_value = DEFAULT_LEASE_NAME)]
    pub lease_name: String,
    /// Identity in the Lease (the pod name).
    #[arg(long, env = "POD_NAME", default_value = DEFAULT_POD_NAME)]
    pub pod_name: String,
    /// Seconds after a good reconcile before the room is applied again to heal drift.
    #[arg(long, env = "ROOMCAST_RESYNC_SECONDS", default_value_t = DEFAULT_RESYNC_SECONDS)]
    pub resync_seconds: u64,
    /// Watching the whole cluster, serve only rooms in namespaces with these labels
    /// (`key=value[,key=value]`). Empty: every namespace. Ignored with `WATCH_NAMESPACE`.
    #[arg(
        long,
        env = "ROOMCAST_TENANT_NAMESPACE_SELECTOR",
        default_value = crate::tenancy::DEFAULT_TENANT_NAMESPACE_SELECTOR,
        value_parser = crate::labels::MatchLabels::parse
    )]
    pub tenant_namespace_selector: crate::labels::MatchLabels,
}

fn non_empty(value: &mut Option<String>) {
    if value.as_deref().is_some_and(|v| v.trim().is_empty()) {
        *value = None;
    }
}

impl OperatorConfig {
    /// Resources of a room's media container, and where they come from. The builder and
    /// the memory check both read this, so the limit checked is the limit applied.
    pub fn media_resources_for(
        &self,
        spec: &StreamRoomSpec,
    ) -> (ResourceRequirements, ResourcesFrom) {
        let room = spec.resources.as_ref().and_then(|r| r.media.as_ref());
        let from = match (room, &self.media_resources) {
            (Some(_), _) => ResourcesFrom::Room,
            (None, Some(_)) => ResourcesFrom::Operator,
            (None, None) => ResourcesFrom::BuiltIn,
        };
        let resources =
            resolve_resources(room, self.media_resources.as_ref(), DEFAULT_MEDIA_RESOURCES);
        (resources, from)
    }

    /// Resources of a room's chat containers.
    pub fn chat_resources_for(&self, spec: &StreamRoomSpec) -> ResourceRequirements {
        resolve_resources(
            spec.resources.as_ref().and_then(|r| r.chat.as_ref()),
            self.chat_resources.as_ref(),
            DEFAULT_CHAT_RESOURCES,
        )
    }

    /// Treat empty strings as unset and check what clap cannot.
    pub fn normalized(mut self) -> Result<Self> {
        for value in [
            &mut self.image_pull_policy,
            &mut self.ingress_class,
            &mut self.playback_host,
            &mut self.ingest_external_host,
            &mut self.s3.bucket,
            &mut self.s3.prefix,
            &mut self.s3.region,
            &mut self.s3.endpoint,
            &mut self.s3.credentials_secret,
            &mut self.mongodb_secret,
            &mut self.redis_secret,
        ] {
            non_empty(value);
        }
        self.gateway.normalize()?;
        self.cluster_domain = normalized_cluster_domain(&self.cluster_domain)?;
        self.image_pull_secrets = self
            .image_pull_secrets
            .iter()
            .map(|name| name.trim().to_owned())
            .filter(|name| !name.is_empty())
            .collect();
        if let Some(name) = self
            .image_pull_secrets
            .iter()
            .find(|n| !crate::labels::is_dns_subdomain(n))
        {
            return Err(Error::Config(format!(
                "ROOMCAST_IMAGE_PULL_SECRETS (--image-pull-secrets, Helm value imagePullSecrets) must be Secret names (DNS subdomains), got {name:?}"
            )));
        }
        if let Some(policy) = &self.image_pull_policy
            && !["Always", "IfNotPresent", "Never"].contains(&policy.as_str())
        {
            return Err(Error::Config(format!(
                "ROOMCAST_IMAGE_PULL_POLICY must be Always, IfNotPresent or Never, got {policy:?}"
            )));
        }
        if !["http", "https"].contains(&self.playback_scheme.as_str()) {
            return Err(Error::Config(format!(
                "ROOMCAST_PLAYBACK_SCHEME must be http or https, got {:?}",
                self.playback_scheme
            )));
        }
        if let Some(host) = &self.playback_host
            && !crate::labels::is_dns_subdomain(host)
        {
            return Err(Error::Config(format!(
                "ROOMCAST_PLAYBACK_HOST must be a DNS name, got {host:?}"
            )));
        }
        // Checked here with chat's own parser: a bad entry would otherwise crash-loop every
        // room's chat pods.
        for entry in self
            .chat_trusted_proxies
            .split(',')
            .filter(|e| !e.trim().is_empty())
        {
            if let Err(why) = roomcast_runtime::clientip::parse_network(entry) {
                return Err(Error::Config(format!(
                    "ROOMCAST_CHAT_TRUSTED_PROXIES (--chat-trusted-proxies, Helm value chat.trustedProxies): {why}"
                )));
            }
        }
        // The same rule rooms get from the CRD: the worker exits on a prefix without `/`.
        if let Some(prefix) = &self.s3.prefix
            && !is_valid_s3_prefix(prefix)
        {
            return Err(Error::Config(format!(
                "ROOMCAST_S3_PREFIX (--s3-prefix, Helm value recording.s3.prefix) {S3_PREFIX_RULE}, got {prefix:?}"
            )));
        }
        if let Some(memory) = self
            .media_resources
            .as_ref()
            .and_then(|r| r.limits.as_ref())
            .and_then(|l| l.get("memory"))
            && crate::quantity::quantity_bytes(&memory.0).is_none()
        {
            return Err(Error::Config(format!(
                "ROOMCAST_MEDIA_RESOURCES (--media-resources, Helm value workers.media.resources) limits.memory must be a Kubernetes quantity such as 2Gi, got {:?}",
                memory.0
            )));
        }
        Ok(self)
    }
}

/// The cluster domain as names are built from it: lower case, without a trailing dot (the
/// builders add their own); empty means the default.
const MAX_CLUSTER_DOMAIN_LEN: usize = 253 - 132;

fn normalized_cluster_domain(text: &str) -> Result<String> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Ok(DEFAULT_CLUSTER_DOMAIN.to_owned());
    }
    let domain = trimmed
        .strip_suffix('.')
        .unwrap_or(trimmed)
        .to_ascii_lowercase();
    // Room-derived names are `<room>-rtmp.<namespace>.svc.` plus this: `<room>-rtmp` is a
    // Service name (63), the namespace a label (63), so 132 characters at most, and the
    // domain may take what a 253-character DNS name has left.
    if !crate::labels::is_dns_subdomain(&domain) || domain.len() > MAX_CLUSTER_DOMAIN_LEN {
        return Err(Error::Config(format!(
            "ROOMCAST_CLUSTER_DOMAIN (--cluster-domain, Helm value clusterDomain) must be a DNS name such as cluster.local, at most {MAX_CLUSTER_DOMAIN_LEN} characters, got {text:?}"
        )));
    }
    Ok(domain)
}

impl RunConfig {
    pub fn normalized(mut self) -> Self {
        non_empty(&mut self.watch_namespace);
        self
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn config() -> OperatorConfig {
        OperatorConfig {
            playback_scheme: DEFAULT_PLAYBACK_SCHEME.to_owned(),
            ..OperatorConfig::default()
        }
    }

    #[derive(clap::Parser)]
    struct Flags {
        #[command(flatten)]
        config: OperatorConfig,
    }

    /// The operator's flags (and their env fallbacks) parsed as clap parses them.
    pub(crate) fn parse(args: &[&str]) -> Result<OperatorConfig, String> {
        use clap::Parser;
        Flags::try_parse_from(std::iter::once("roomcast-operator").chain(args.iter().copied()))
            .map(|f| f.config)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn allowed_s3_endpoints_are_origins_checked_when_the_flag_is_read() {
        let config = parse(&[
            "--s3-allowed-endpoints",
            "http://minio.minio.svc:9000,https://[fd00::1]",
        ])
        .expect("parses");
        let listed: Vec<String> = config
            .s3
            .allowed_endpoints
            .0
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            listed,
            ["http://minio.minio.svc:9000", "https://[fd00::1]:443"]
        );
        let none = parse(&["--s3-allowed-endpoints", ""]).expect("empty parses");
        assert_eq!(none.s3.allowed_endpoints, AllowedOrigins::default());
        for bad in [
            "http://169.254.169.254",
            "http://minio:9000/bucket",
            "minio:9000",
            "http://a@minio:9000",
        ] {
            let err = parse(&["--s3-allowed-endpoints", bad]).expect_err(bad);
            assert!(err.contains("ROOMCAST_S3_ALLOWED_ENDPOINTS"), "{err}");
        }
    }

    fn with_prefix(prefix: &str) -> Result<OperatorConfig> {
        let mut config = config();
        config.s3.prefix = Some(prefix.to_owned());
        config.normalized()
    }

    #[test]
    fn default_s3_prefix_follows_the_room_rule_and_names_the_flag() {
        for bad in ["rooms", "/rooms/", "a//", "../x/", "rooms/../", "rooms /"] {
            let err = with_prefix(bad).expect_err(bad).to_string();
            assert!(
                err.contains("ROOMCAST_S3_PREFIX") && err.contains("--s3-prefix"),
                "{err}"
            );
        }
        for good in ["rooms/", "a/b/", "", "  "] {
            with_prefix(good).unwrap_or_else(|e| panic!("{good:?}: {e}"));
        }
    }

    #[test]
    fn chat_trusted_proxies_are_checked_at_start_and_name_the_flag() {
        for bad in [
            "10.0.0.0/33",
            "ingress",
            "10.0.0.0/8,,nope",
            "::g",
            "1.2.3.4/8/8",
        ] {
            let mut config = config();
            config.chat_trusted_proxies = bad.to_owned();
            let err = config.normalized().expect_err(bad).to_string();
            assert!(
                err.contains("ROOMCAST_CHAT_TRUSTED_PROXIES")
                    && err.contains("--chat-trusted-proxies"),
                "{err}"
            );
        }
        for good in [
            "",
            DEFAULT_CHAT_TRUSTED_PROXIES,
            "10.244.0.0/16",
            "10.1.2.3, fd00::/8",
        ] {
            let mut config = config();
            config.chat_trusted_proxies = good.to_owned();
            config
                .normalized()
                .unwrap_or_else(|e| panic!("{good:?}: {e}"));
        }
    }

    #[test]
    fn the_cluster_domain_is_a_dns_name_and_names_the_flag_when_it_is_not() {
        let with = |domain: &str| {
            OperatorConfig {
                cluster_domain: domain.to_owned(),
                ..config()
            }
            .normalized()
            .map(|c| c.cluster_domain)
        };
        assert_eq!(with("cluster.local").expect("default"), "cluster.local");
        assert_eq!(with("").expect("unset"), "cluster.local");
        assert_eq!(with(" Corp.Example. ").expect("normalized"), "corp.example");
        assert_eq!(
            parse(&["--cluster-domain", "k8s.internal"])
                .expect("flag")
                .cluster_domain,
            "k8s.internal"
        );
        assert_eq!(
            parse(&[]).expect("default").cluster_domain,
            DEFAULT_CLUSTER_DOMAIN
        );
        for bad in [
            ".",
            "..",
            "cluster..local",
            ".cluster.local",
            "cluster.local/evil",
            "cluster.local:53",
            "evil.example svc",
            "-cluster.local",
            "clüster.local",
            "10.0.0.1/8",
            &format!("{}ab", "a.".repeat(60)),
        ] {
            let error = with(bad).expect_err(bad).to_string();
            assert!(error.contains("ROOMCAST_CLUSTER_DOMAIN"), "{error}");
        }
    }

    #[test]
    fn image_pull_secrets_must_be_secret_names_and_blanks_are_dropped() {
        for bad in [
            "Regcred",
            "../regcred",
            "reg cred",
            "regcred/x",
            "-regcred",
            "a\u{0}b",
        ] {
            let mut config = config();
            config.image_pull_secrets = vec!["ok".to_owned(), bad.to_owned()];
            let err = config.normalized().expect_err(bad).to_string();
            assert!(err.contains("ROOMCAST_IMAGE_PULL_SECRETS"), "{err}");
        }
        let mut too_long = config();
        too_long.image_pull_secrets = vec!["a".repeat(254)];
        too_long.normalized().expect_err("longer than 253");

        let mut blanks = config();
        blanks.image_pull_secrets = vec![" regcred ".into(), String::new(), "ghcr.io-pull".into()];
        assert_eq!(
            blanks.normalized().expect("valid").image_pull_secrets,
            ["regcred", "ghcr.io-pull"]
        );
    }

    #[test]
    fn default_media_memory_limit_must_be_a_quantity() {
        let mut config = config();
        config.media_resources =
            Some(parse_resources(r#"{"limits": {"memory": "lots"}}"#).expect("json parses"));
        let err = config.normalized().expect_err("refused").to_string();
        assert!(err.contains("ROOMCAST_MEDIA_RESOURCES"), "{err}");
    }

    #[test]
    fn media_resources_come_from_the_room_then_the_operator_then_the_built_in_default() {
        let mut spec = StreamRoomSpec::default();
        let mut config = config();
        let (built_in, from) = config.media_resources_for(&spec);
        assert_eq!(from, ResourcesFrom::BuiltIn);
        assert_eq!(
            built_in.limits.expect("limits")["memory"].0,
            DEFAULT_MEDIA_RESOURCES.2
        );
        let operator = parse_resources(r#"{"limits": {"memory": "4Gi"}}"#).expect("json parses");
        config.media_resources = Some(operator.clone());
        assert_eq!(
            config.media_resources_for(&spec),
            (operator, ResourcesFrom::Operator)
        );
        let room = parse_resources(r#"{"limits": {"memory": "8Gi"}}"#).expect("json parses");
        spec.resources = Some(roomcast_crds::WorkerResources {
            media: Some(room.clone()),
            chat: None,
        });
        assert_eq!(
            config.media_resources_for(&spec),
            (room, ResourcesFrom::Room)
        );
    }
}
