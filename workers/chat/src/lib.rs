//! `roomcast-chat`: a StreamRoom's chat, served over socket.io (socketioxide) so the official
//! JavaScript `socket.io-client` works as-is.
//!
//! ```text
//!  viewer ──socket.io──> Ingress /<ns>/<room>/chat ──> [connect middleware: token, ban, IP limit]
//!                                                        │
//!   history, bans, slow mode <── ChatStore ──────────── handlers ──> broadcast ──> adapter
//!   (MongoDB | redb)                                     │                       (memory | Redis:
//!                                                        └─> presence ──> status   other replicas)
//! ```
//!
//! The library builds any number of rooms onto one [`axum::Router`]
//! ([`ChatServer::builder`]); the `roomcast-chat` binary serves the one room of its
//! `WorkerConfig` ([`app::serve`]). Data comes from the room's ConfigMap (limits), its Secret (the token signing
//! key) and clients; it goes to clients, the store, Prometheus and the room status.

mod error;
mod handlers;

pub mod app;
pub mod cluster;
pub mod config;
pub mod metrics;
pub mod presence;
pub mod protocol;
pub mod ratelimit;
pub mod room;
pub mod server;
pub mod store;
pub mod token;

pub use error::{Error, Result};
pub use handlers::ConnectRefused;
pub use metrics::ChatMetrics;
pub use presence::{Presence, PresenceSink};
pub use room::{ChatOptions, RoomChat};
pub use server::{AdapterConfig, ChatHandle, ChatServer, ChatServerBuilder, RedisUrl};
pub use store::{ChatStore, DynStore};

/// Open the configured store (creating MongoDB indexes).
pub async fn open_store(config: &config::StoreConfig) -> Result<DynStore> {
    Ok(match config {
        config::StoreConfig::Mongo(uri) => {
            let db = roomcast_store::mongo::connect(uri, "roomcast-chat").await?;
            std::sync::Arc::new(store::mongo::MongoChatStore::open(&db).await?)
        }
        config::StoreConfig::Embedded(dir) => {
            std::sync::Arc::new(store::embedded::EmbeddedChatStore::open(dir)?)
        }
    })
}
