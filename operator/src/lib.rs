//! The roomcast operator: turns each `StreamRoom` into the Kubernetes objects that run it and
//! keeps its status truthful.
//!
//! ```text
//!   watch StreamRoom ─► validate (pure) ─► build (pure) ─► apply (SSA, "roomcast-operator")
//!        ▲                  │ invalid                         │ children owned by the room
//!        │                  └─► Error condition + Event       ▼
//!   owned children ◄──────────────────────────────── Secret, ConfigMap, Deployments, Services,
//!   (reflector stores: skip what is already applied)   Ingress, NetworkPolicy, PDB, RBAC
//!        │
//!        └─► status (pure: phase, conditions, urls) ─► one status patch when it changed
//!              ▲
//!   Secrets rooms name (metadata watch, [`room_secrets`]): a change reconciles the rooms
//!   naming it; one their pods mount that does not exist is Ready=False SecretNotFound
//! ```
//!
//! Builders take a validated room and the operator's [`config::OperatorConfig`] and return
//! objects; they never touch the network, a clock or randomness, so the same room always
//! builds the same children (no reconcile loops), and `roomcast-operator render` prints
//! exactly what the controller would apply.
//!
//! The binary is [`cli`]: `run` starts [`run::run`] (ops routes from `roomcast-runtime`,
//! leader election, the [`controller`]), `render` prints [`render::render`].

pub mod apply;
pub mod build;
pub mod cli;
pub mod config;
pub mod controller;
pub mod endpoint;
#[cfg(feature = "test-support")]
pub mod fixtures;
pub mod gateway;
pub mod keys;
pub mod labels;
pub mod memory;
pub mod metrics;
pub mod network;
pub mod ops;
pub mod quantity;
pub mod render;
pub mod room_secrets;
pub mod routes;
pub mod run;
pub mod status;
pub mod tenancy;
pub mod validate;

/// Field manager of every server-side apply the operator makes.
pub const FIELD_MANAGER: &str = "roomcast-operator";

/// Everything that can go wrong in the operator.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    InvalidRoom(#[from] validate::RoomError),
    #[error("Kubernetes API request failed: {0}")]
    Kube(#[source] kube::Error),
    #[error("cannot serialize {what}: {source}")]
    Serialize {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("cannot render YAML: {0}")]
    Yaml(#[from] serde_yaml::Error),
    #[error("room file: {0}")]
    RoomFile(#[from] roomcast_crds::room_file::RoomFileError),
    #[error("configuration: {0}")]
    Config(String),
    #[error("room object is missing {0}")]
    MissingField(&'static str),
    // Startup errors below: `main` prints them with their causes, so the message stops here.
    #[error("cannot build a Kubernetes client (no kubeconfig and not in a cluster?)")]
    NoClient(#[source] kube::Error),
    #[error("cannot set up leader election")]
    LeaderElection(#[from] kube_lease_manager::LeaseManagerError),
    #[error("{what}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

impl From<kube::Error> for Error {
    fn from(e: kube::Error) -> Self {
        Error::Kube(e)
    }
}

impl Error {
    /// Short, stable label for the `roomcast_operator_reconcile_errors_total` metric.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::InvalidRoom(_) => "invalid_room",
            Error::Kube(_) => "kube_api",
            Error::Serialize { .. } => "serialize",
            Error::Yaml(_) => "yaml",
            Error::RoomFile(_) => "room_file",
            Error::Config(_) => "config",
            Error::MissingField(_) => "missing_field",
            Error::NoClient(_) => "no_client",
            Error::LeaderElection(_) => "leader_election",
            Error::Io { .. } => "io",
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
