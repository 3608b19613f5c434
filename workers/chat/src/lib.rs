//! `roomcast-chat`: a StreamRoom's chat, served over socket.io (socketioxide) so the official
//! JavaScript `socket.io-client` works as-is.
//!
//! ```text
//!  viewer ──socket.io──> Ingress /<ns>/<room>/chat ──> [connect middleware: token, ban, IP limit]
//!                                                        │
//!   history, bans, slow mode <── ChatStore ──────────── requests ──> broadcast ──> adapter
//!   (MongoDB | redb)                                     │                       (memory | Redis:
//!                                                        └─> presence ──> status   other replicas)
//! ```
//!
//! The library builds any number of rooms onto one [`axum::Router`]
//! ([`ChatServer::builder`]); the `roomcast-chat` binary serves the one room of its
//! `WorkerConfig` ([`app::serve`]). Data comes from the room's ConfigMap (limits), its Secret
//! (the token signing key) and clients; it goes to clients, the store, Prometheus and the room
//! status.
//!
//! Modules import only modules further down this list (no cycles): `app` (the binary's work)
//! -> `cluster` (status reports, live state) -> `config` (worker config, store choice) ->
//! `server` (builds the socket.io servers, [`ChatHandle`]) -> `connect` (connect middleware,
//! greeting) -> `requests` (one envelope for the client requests) -> `room` (a room's shared state, [`ChatOptions`]) ->
//! `store`, `sharedlimit` (Redis rate limits) -> `ratelimit`, `presence`, `metrics`; client addresses from `roomcast_runtime::clientip`
//! (X-Forwarded-For), `history` (byte cap) -> `error` -> `token` -> `protocol`.

mod connect;
mod error;
mod requests;

pub mod app;

pub mod cluster;
pub mod config;
pub mod history;
pub mod metrics;
pub mod presence;
pub mod protocol;
pub mod ratelimit;
pub mod room;
pub mod server;
pub mod sharedlimit;
pub mod store;
pub mod token;

pub use config::open_store;
pub use connect::ConnectRefused;
pub use error::{Error, Result};
pub use metrics::ChatMetrics;
pub use presence::{Presence, PresenceSink};
pub use room::{ChatOptions, RoomChat};
pub use server::{AdapterConfig, ChatHandle, ChatServer, ChatServerBuilder, RedisUrl};
pub use store::{ChatStore, DynStore};
