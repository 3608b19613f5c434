//! Building the chat: one socket.io server per room, each at its own path
//! (`/<namespace>/<room>/chat/socket.io/`), all mounted on one [`axum::Router`] so one process can
//! serve one room (the `roomcast-chat` binary) or many (`roomcast dev`).

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering},
    },
    time::Duration,
};

use axum::Router;
use futures::future::BoxFuture;
use roomcast_runtime::Secret;
use serde::Serialize;
use socketioxide::{SocketIo, adapter::Adapter, handler::ConnectHandler};
use socketioxide_redis::{RedisAdapter, RedisAdapterConfig, RedisAdapterCtr};
use tokio::sync::{Notify, watch};
use tracing::Instrument;

use crate::{
    connect,
    error::{Error, Result},
    metrics::{ChatMetrics, RoomLabels},
    presence::Presence,
    protocol::{ServerShutdown, Viewers, server},
    ratelimit::RateLimiter,
    room::{ChatOptions, DEFAULT_SHUTDOWN_GRACE, IpLimiter, RoomChat, RoomState},
    sharedlimit::SharedLimiter,
    store::{DynStore, RoomKey},
};

/// A Redis URL; never printed (it may carry a password).
#[derive(Clone, Debug)]
pub struct RedisUrl(Secret);

impl RedisUrl {
    pub fn new(url: impl Into<String>) -> Self {
        Self(Secret::new(url))
    }

    /// The URL, for the Redis client.
    pub fn expose(&self) -> &str {
        self.0.expose()
    }
}

/// How replicas of a room find each other.
#[derive(Clone, Debug)]
pub enum AdapterConfig {
    /// One replica: broadcasts stay in this process.
    Memory,
    /// Several replicas share rooms through Redis pub/sub (`socketioxide-redis`, RESP3).
    Redis(RedisUrl),
}

/// What the handle needs from a room's socket.io server, whatever its adapter.
trait RoomIo: Send + Sync {
    fn emit_local(&self, event: &'static str, data: serde_json::Value) -> BoxFuture<'_, ()>;
    fn close(&self) -> BoxFuture<'_, ()>;
}

impl<A: Adapter> RoomIo for SocketIo<A> {
    fn emit_local(&self, event: &'static str, data: serde_json::Value) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            if let Err(e) = self.local().emit(event, &data).await {
                tracing::warn!(error = %e, event, "local emit failed");
            }
        })
    }
    fn close(&self) -> BoxFuture<'_, ()> {
        Box::pin(SocketIo::close(self))
    }
}

struct RoomHandle {
    state: Arc<RoomState>,
    io: Arc<dyn RoomIo>,
}

/// Controls the rooms of a built server.
#[derive(Clone)]
pub struct ChatHandle {
    rooms: Arc<Vec<RoomHandle>>,
}

fn json(v: impl Serialize) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or(serde_json::Value::Null)
}

impl ChatHandle {
    fn find(&self, namespace: &str, name: &str) -> Option<&RoomHandle> {
        self.rooms
            .iter()
            .find(|r| r.state.config.id.namespace == namespace && r.state.config.id.name == name)
    }

    /// Viewer counts of a room as they change.
    pub fn presence(&self, namespace: &str, name: &str) -> Option<watch::Receiver<Presence>> {
        self.find(namespace, name)
            .map(|r| r.state.presence.subscribe())
    }

    /// Set the room's live state (shown on join) and tell this replica's clients. Each replica
    /// is told by whatever watches the room's media (one call per replica).
    pub async fn set_live(&self, namespace: &str, name: &str, live: bool) -> bool {
        let Some(r) = self.find(namespace, name) else {
            return false;
        };
        if r.state.live.swap(live, Ordering::AcqRel) != live {
            r.io.emit_local(server::LIVE, json(crate::protocol::Live { live }))
                .await;
        }
        true
    }

    /// False once shutdown has begun.
    pub fn is_ready(&self) -> bool {
        self.rooms.iter().all(|r| !r.state.is_draining())
    }

    /// Graceful shutdown: refuse new sockets, tell clients to reconnect (to another replica),
    /// wait for in-flight writes, then close every transport (clients reconnect by themselves).
    pub async fn shutdown(&self) {
        for r in self.rooms.iter() {
            r.state.draining.store(true, Ordering::Release);
        }
        for r in self.rooms.iter() {
            r.io.emit_local(
                server::SERVER_SHUTDOWN,
                json(ServerShutdown { reconnect: true }),
            )
            .await;
        }
        let grace = self
            .rooms
            .first()
            .map_or(DEFAULT_SHUTDOWN_GRACE, |r| r.state.options.shutdown_grace);
        let deadline = tokio::time::Instant::now() + grace;
        while self
            .rooms
            .iter()
            .any(|r| r.state.inflight.load(Ordering::Acquire) > 0)
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        for r in self.rooms.iter() {
            r.io.close().await;
        }
    }
}

/// Entry point: `ChatServer::builder(store, adapter).room(..).build().await`.
pub struct ChatServer;

impl ChatServer {
    pub fn builder(store: DynStore, adapter: AdapterConfig) -> ChatServerBuilder {
        ChatServerBuilder {
            store,
            adapter,
            options: ChatOptions::default(),
            metrics: ChatMetrics::default(),
            rooms: Vec::new(),
        }
    }
}

pub struct ChatServerBuilder {
    store: DynStore,
    adapter: AdapterConfig,
    options: ChatOptions,
    metrics: ChatMetrics,
    rooms: Vec<RoomChat>,
}

impl ChatServerBuilder {
    pub fn options(mut self, options: ChatOptions) -> Self {
        self.options = options;
        self
    }

    /// Metrics registered by the caller (see [`ChatMetrics::register`]).
    pub fn metrics(mut self, metrics: ChatMetrics) -> Self {
        self.metrics = metrics;
        self
    }

    pub fn room(mut self, room: RoomChat) -> Self {
        self.rooms.push(room);
        self
    }

    /// Connect the adapter, create each room's socket.io server and presence task, and return
    /// a router serving all of them.
    pub async fn build(self) -> Result<(Router, ChatHandle)> {
        let redis = match &self.adapter {
            AdapterConfig::Memory => None,
            AdapterConfig::Redis(url) => Some(redis::Client::open(resp3(url.expose()))?),
        };
        let ip_limits = Arc::new(IpLimiter::new(self.options.max_connections_per_ip));
        let mut router = Router::new();
        let mut handles = Vec::new();
        for room in self.rooms {
            room.validate()?;
            if handles
                .iter()
                .any(|h: &RoomHandle| h.state.config.socket_io_path() == room.socket_io_path())
            {
                return Err(Error::Config {
                    field: "rooms",
                    message: format!("room {} is listed twice", room.id),
                });
            }
            let key = RoomKey::new(&room.id.namespace, &room.id.name);
            let slow_mode = self.store.slow_mode(&key).await?;
            let labels = RoomLabels {
                namespace: room.id.namespace.clone(),
                room: room.id.name.clone(),
            };
            let prefix = format!("roomcast-chat:{}:{}", room.id.namespace, room.id.name);
            let shared_limiter = match &redis {
                None => None,
                Some(client) => {
                    let limiter = SharedLimiter::new(
                        client.clone(),
                        &prefix,
                        room.spec.rate_limit_per_minute,
                    );
                    // Connect now, so the first posts do not race to connect. Redis must
                    // answer at start anyway: the socket.io adapter needs it too.
                    limiter.connect().await?;
                    Some(limiter)
                }
            };
            let state = Arc::new(RoomState {
                limiter: Mutex::new(RateLimiter::new(room.spec.rate_limit_per_minute)),
                shared_limiter,
                config: room,
                key,
                store: self.store.clone(),
                options: self.options.clone(),
                ip_limits: ip_limits.clone(),
                metrics: self.metrics.clone(),
                labels,
                slow_mode: AtomicU32::new(slow_mode),
                live: AtomicBool::new(false),
                local_sockets: AtomicU32::new(0),
                presence: watch::Sender::new(Presence::default()),
                presence_changed: Notify::new(),
                draining: AtomicBool::new(false),
                inflight: AtomicUsize::new(0),
            });
            let path = state.config.socket_io_path();
            let builder = SocketIo::builder()
                .req_path(path.clone())
                .max_payload(self.options.max_frame_bytes)
                .ws_max_message_size(
                    usize::try_from(self.options.max_frame_bytes).unwrap_or(usize::MAX),
                )
                .ws_max_frame_size(
                    usize::try_from(self.options.max_frame_bytes).unwrap_or(usize::MAX),
                )
                .ping_interval(self.options.ping_interval)
                .ping_timeout(self.options.ping_timeout)
                .connect_timeout(self.options.connect_timeout)
                // Client frames are small; 1 KiB instead of 4 KiB saves 3 KiB per idle connection.
                .ws_read_buffer_size(1024)
                .with_state(state.clone());
            let io: Arc<dyn RoomIo> = match &redis {
                None => {
                    let (svc, io) = builder.build_svc();
                    io.ns("/", connect::on_connect.with(connect::authenticate));
                    router = router
                        .route_service(&format!("{path}/"), svc.clone())
                        .route_service(&path, svc);
                    start_presence(io.clone(), state.clone());
                    Arc::new(io)
                }
                Some(client) => {
                    let config = RedisAdapterConfig::new().with_prefix(prefix);
                    let ctr = RedisAdapterCtr::new_with_redis_config(client, config).await?;
                    let (svc, io) = builder.with_adapter::<RedisAdapter<_>>(ctr).build_svc();
                    io.ns("/", connect::on_connect.with(connect::authenticate))
                        .await
                        .map_err(|e| Error::Adapter(e.to_string()))?;
                    router = router
                        .route_service(&format!("{path}/"), svc.clone())
                        .route_service(&path, svc);
                    start_presence(io.clone(), state.clone());
                    Arc::new(io)
                }
            };
            tracing::info!(room = %state.config.id, %path, "chat room ready");
            handles.push(RoomHandle { state, io });
        }
        Ok((
            router,
            ChatHandle {
                rooms: Arc::new(handles),
            },
        ))
    }
}

/// The Redis adapter needs RESP3; add `protocol=resp3` unless the URL already says.
fn resp3(url: &str) -> String {
    if url.contains("protocol=") {
        url.to_owned()
    } else if url.contains('?') {
        format!("{url}&protocol=resp3")
    } else {
        format!("{url}?protocol=resp3")
    }
}

fn start_presence<A: Adapter>(io: SocketIo<A>, state: Arc<RoomState>) {
    let span = tracing::info_span!("presence", room = %state.config.id);
    tokio::spawn(presence_loop(io, state).instrument(span));
}

/// Recount on a tick and shortly after local joins/leaves; broadcast the cross-replica count
/// to this replica's clients when it changes; refresh slow mode set on other replicas.
async fn presence_loop<A: Adapter>(io: SocketIo<A>, state: Arc<RoomState>) {
    let mut tick = tokio::time::interval(state.options.presence_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_sent: Option<u32> = None;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = state.presence_changed.notified() => {
                tokio::time::sleep(state.options.presence_debounce).await;
            }
        }
        if state.is_draining() {
            return;
        }
        let local = state.local_sockets.load(Ordering::Acquire);
        let total = match io.fetch_sockets().await {
            Ok(sockets) => u32::try_from(sockets.len()).unwrap_or(u32::MAX),
            Err(e) => {
                tracing::warn!(error = %e, "counting sockets across replicas failed");
                local
            }
        };
        state.presence.send_replace(Presence { local, total });
        state
            .metrics
            .connections
            .get_or_create(&state.labels)
            .set(i64::from(local));
        state
            .metrics
            .viewers
            .get_or_create(&state.labels)
            .set(i64::from(total));
        if last_sent != Some(total) {
            if let Err(e) = io
                .local()
                .emit(server::VIEWERS, &Viewers { count: total })
                .await
            {
                tracing::warn!(error = %e, "sending the viewer count failed");
            }
            last_sent = Some(total);
        }
        match state.store.slow_mode(&state.key).await {
            // Clients were told by the replica that changed it (a broadcast through the adapter).
            Ok(seconds) => state.slow_mode.store(seconds, Ordering::Release),
            Err(e) => tracing::warn!(error = %e, "refreshing slow mode failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_urls_get_resp3() {
        assert_eq!(resp3("redis://r:6379"), "redis://r:6379?protocol=resp3");
        assert_eq!(resp3("redis://r/0?x=1"), "redis://r/0?x=1&protocol=resp3");
        assert_eq!(
            resp3("redis://r?protocol=resp3"),
            "redis://r?protocol=resp3"
        );
    }
}
