//! The connect side of a room's socket.io server: the middleware that admits a socket (token
//! or anonymous, bans, the per-address limit), the handler that greets it (history, counts,
//! live state) and registers its requests, and the disconnect handler.

use std::{
    net::{IpAddr, SocketAddr},
    sync::{Arc, atomic::Ordering},
};

use socketioxide::{
    adapter::Adapter,
    extract::{Extension, MaybeExtension, SocketRef, State, TryData},
};
use tracing::{Instrument, Span};

use roomcast_runtime::clientip::TrustedProxies;

use crate::{
    history,
    protocol::{
        ANONYMOUS_PREFIX, Auth, ErrorCode, Identity, Joined, Limits, Role, RoomInfo, server,
    },
    requests::{self, error, now_ms, user_room},
    room::{IpAdmit, RoomState},
    token::{self, Token},
};

type Room = State<Arc<RoomState>>;

/// Why a connection was refused; clients see `"<code>: <message>"` as the `connect_error`
/// message.
#[derive(Debug)]
pub struct ConnectRefused {
    pub code: &'static str,
    pub message: String,
}

impl std::fmt::Display for ConnectRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

const TOO_MANY_CONNECTIONS: &str = "too_many_connections";

/// The client IP a socket was counted under.
#[derive(Clone, Copy, Debug)]
struct ClientIp(IpAddr);

/// The socket peer, or the client a trusted proxy names (see [`roomcast_runtime::clientip`]). None when
/// the server was built without connect info (nothing is counted then).
fn client_ip<A: Adapter>(s: &SocketRef<A>, trusted: &TrustedProxies) -> Option<IpAddr> {
    let parts = s.req_parts();
    let peer = parts
        .extensions
        .get::<axum::extract::ConnectInfo<SocketAddr>>()?
        .0
        .ip();
    Some(trusted.client_ip(peer, &parts.headers))
}

fn anonymous(s_id: &str) -> Identity {
    let n: u16 = rand::random::<u16>() % 10_000;
    Identity {
        id: format!("{ANONYMOUS_PREFIX}{s_id}"),
        name: format!("guest-{n:04}"),
        role: Role::Viewer,
        anonymous: true,
    }
}

/// Connect middleware: who is this (token or anonymous), are they banned, does their IP have
/// room for another socket.
pub(crate) async fn authenticate<A: Adapter>(
    s: SocketRef<A>,
    State(room): Room,
    TryData(auth): TryData<Auth>,
) -> Result<(), ConnectRefused> {
    let result = admit(&s, &room, auth.ok()).await;
    if let Err(refused) = &result {
        room.metrics
            .connects_refused
            .get_or_create(&room.reason_labels(refused.code))
            .inc();
        // Per-address refusals are logged once per offender in `admit`.
        if refused.code == TOO_MANY_CONNECTIONS {
            tracing::debug!(sid = %s.id, room = %room.config.id, code = refused.code, "connection refused");
        } else {
            tracing::info!(sid = %s.id, room = %room.config.id, code = refused.code, "connection refused");
        }
    }
    result
}

async fn admit<A: Adapter>(
    s: &SocketRef<A>,
    room: &Arc<RoomState>,
    auth: Option<Auth>,
) -> Result<(), ConnectRefused> {
    if room.is_draining() {
        return Err(ConnectRefused {
            code: "shutting_down",
            message: "this replica is shutting down; reconnect".into(),
        });
    }
    let identity =
        match auth.and_then(|a| a.token) {
            None => anonymous(&s.id.to_string()),
            Some(raw) => {
                let now = now_ms() / 1000;
                let claims = token::verify(&room.config.signing_key, &Token::new(raw), now)
                    .map_err(|e| ConnectRefused {
                        code: e.code(),
                        message: e.to_string(),
                    })?;
                Identity {
                    id: claims.sub,
                    name: claims.name.trim().to_owned(),
                    role: claims.role,
                    anonymous: false,
                }
            }
        };
    if !identity.anonymous {
        match room.store.is_banned(&room.key, &identity.id).await {
            Ok(false) => {}
            Ok(true) => {
                return Err(ConnectRefused {
                    code: "banned",
                    message: "you are banned from this room's chat".into(),
                });
            }
            Err(e) => {
                tracing::error!(error = %e, "checking bans failed");
                room.metrics.store_errors.get_or_create(&room.labels).inc();
                return Err(ConnectRefused {
                    code: "unavailable",
                    message: "the chat store is unavailable; retry shortly".into(),
                });
            }
        }
    }
    // Last, so nothing is counted for a refused socket.
    if let Some(ip) = client_ip(s, &room.options.trusted_proxies) {
        if let IpAdmit::Refused { first } = room.ip_limits.try_acquire(ip) {
            if first {
                tracing::info!(
                    client = %ip,
                    limit = room.options.max_connections_per_ip,
                    "client address at its connection limit; further refusals are not logged \
                     until it has room again"
                );
            }
            return Err(ConnectRefused {
                code: TOO_MANY_CONNECTIONS,
                message: format!(
                    "at most {} connections per client address",
                    room.options.max_connections_per_ip
                ),
            });
        }
        s.extensions.insert(ClientIp(ip));
    }
    let span = tracing::info_span!(
        "chat",
        room = %room.config.id,
        sid = %s.id,
        user = %identity.id,
    );
    s.extensions.insert(span);
    s.extensions.insert(identity);
    Ok(())
}

/// A socket joined: register its handlers, then send history, counts and live state.
pub(crate) async fn on_connect<A: Adapter>(
    s: SocketRef<A>,
    State(room): Room,
    Extension(identity): Extension<Identity>,
    Extension(span): Extension<Span>,
) {
    requests::register(&s);
    s.on_disconnect(on_disconnect);
    if !identity.anonymous {
        s.join(user_room(&identity.id));
    }
    let local = room.local_sockets.fetch_add(1, Ordering::AcqRel) + 1;
    room.presence_changed.notify_one();
    async move {
        tracing::debug!(role = ?identity.role, anonymous = identity.anonymous, "connected");
        let max_bytes = room.options.max_history_bytes;
        let limit = history::load_limit(room.config.spec.history_size, max_bytes);
        let history = match room
            .store
            .recent(&room.key, limit, max_bytes, now_ms())
            .await
        {
            Ok(recent) => {
                if recent.cut {
                    room.metrics
                        .history_capped
                        .get_or_create(&room.labels)
                        .inc();
                    tracing::debug!(max_bytes, "history cut to its byte cap");
                }
                recent.messages
            }
            Err(e) => {
                tracing::error!(error = %e, "loading history failed");
                room.metrics.store_errors.get_or_create(&room.labels).inc();
                let _ = s.emit(
                    server::CHAT_ERROR,
                    &error(ErrorCode::Unavailable, "join", "history is unavailable"),
                );
                Vec::new()
            }
        };
        let presence = *room.presence.borrow();
        let viewers = (presence.total.saturating_sub(presence.local)).saturating_add(local);
        let joined = Joined {
            room: RoomInfo {
                namespace: &room.config.id.namespace,
                name: &room.config.id.name,
            },
            user: &identity,
            history,
            viewers,
            live: room.live.load(Ordering::Acquire),
            slow_mode_seconds: room.slow_mode.load(Ordering::Acquire),
            limits: Limits {
                max_message_length: room.config.spec.max_message_length,
                rate_limit_per_minute: room.config.spec.rate_limit_per_minute,
            },
        };
        if let Err(e) = s.emit(server::JOINED, &joined) {
            tracing::debug!(error = %e, "sending joined failed");
        }
    }
    .instrument(span)
    .await;
}

async fn on_disconnect(State(room): Room, MaybeExtension(ip): MaybeExtension<ClientIp>) {
    if let Some(ClientIp(ip)) = ip {
        room.ip_limits.release(ip);
    }
    room.local_sockets.fetch_sub(1, Ordering::AcqRel);
    room.presence_changed.notify_one();
}
