//! The `roomcast` command line.
//!
//! ```text
//!  roomcast dev -f rooms.yaml
//!     │ StreamRoom YAML ─► same validation as the CRD ─► WorkerConfig per room (local paths)
//!     ├─► roomcast-media: RTMP :1935 ─► GStreamer ladder ─► HLS  ┐
//!     ├─► roomcast-chat: socket.io per room, embedded store      ├─► one HTTP port
//!     └─► watch page: room index, player, chat, past broadcasts  ┘
//!  roomcast render -f room.yaml ─► the Kubernetes objects the operator would apply
//! ```
//!
//! `roomcast dev` is the whole product on one machine, without Kubernetes: the workers run as
//! libraries in one process, keys and data live under `--data-dir`.

pub mod dev;
pub mod rooms;
pub mod web;

/// Everything that can go wrong in `roomcast dev`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Parse {
        path: String,
        #[source]
        source: roomcast_crds::room_file::RoomFileError,
    },
    #[error("{0}")]
    InvalidRoom(#[from] roomcast_operator::validate::RoomError),
    #[error("two rooms are named {0}")]
    DuplicateRoom(roomcast_crds::RoomIdentity),
    #[error(transparent)]
    Key(#[from] roomcast_runtime::SecretError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Media(#[from] roomcast_media::Error),
    #[error(transparent)]
    Ingest(#[from] roomcast_ingest::Error),
    #[error(transparent)]
    Chat(#[from] roomcast_chat::Error),
    #[error(transparent)]
    Operator(#[from] roomcast_operator::Error),
    #[error(transparent)]
    Recorder(#[from] roomcast_recorder::Error),
    #[error(transparent)]
    Store(#[from] roomcast_store::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
