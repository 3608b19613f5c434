//! socket.io handlers: the connect middleware (authentication, bans, per-IP limit), the
//! connect handler (history, counts), and one named handler per client event.

use std::{
    net::{IpAddr, SocketAddr},
    sync::{Arc, atomic::Ordering},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use serde::Serialize;
use socketioxide::{
    SocketIo,
    adapter::Adapter,
    extract::{AckSender, Extension, MaybeExtension, SocketRef, State, TryData},
};
use tracing::{Instrument, Span};

use crate::{
    protocol::{
        ANONYMOUS_PREFIX, Auth, BanUser, Banned, ChatError, ChatMessage, DeleteMessage, ErrorCode,
        Identity, Joined, Limits, MessageDeleted, PostMessage, Role, RoomInfo, SetSlowMode,
        SlowMode, UnbanUser, UserBanned, client, server,
    },
    ratelimit::Refusal,
    room::{MAX_SLOW_MODE_SECONDS, RoomState},
    store::{Ban, new_message_id},
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

/// The client IP a socket was counted under.
#[derive(Clone, Copy, Debug)]
struct ClientIp(IpAddr);

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn user_room(user_id: &str) -> String {
    format!("user:{user_id}")
}

fn client_ip<A: Adapter>(s: &SocketRef<A>, trust_forwarded_for: bool) -> Option<IpAddr> {
    let parts = s.req_parts();
    if trust_forwarded_for
        && let Some(ip) = parts
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|v| v.trim().parse::<IpAddr>().ok())
            .next_back()
    {
        return Some(ip);
    }
    parts
        .extensions
        .get::<axum::extract::ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
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
        tracing::info!(sid = %s.id, room = %room.key.as_str(), code = refused.code, "connection refused");
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
    let identity = match auth.and_then(|a| a.token) {
        None => anonymous(&s.id.to_string()),
        Some(raw) => {
            let now = now_ms() / 1000;
            let claims =
                token::verify(&room.room.signing_key, &Token::new(raw), now).map_err(|e| {
                    ConnectRefused {
                        code: e.code(),
                        message: e.to_string(),
                    }
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
    if let Some(ip) = client_ip(s, room.options.trust_forwarded_for) {
        if !room.ip_limits.try_acquire(ip) {
            return Err(ConnectRefused {
                code: "too_many_connections",
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
        room = %room.key.as_str(),
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
    s.on(client::MESSAGE, on_message::<A>);
    s.on(client::DELETE, on_delete::<A>);
    s.on(client::BAN, on_ban::<A>);
    s.on(client::UNBAN, on_unban::<A>);
    s.on(client::SLOW_MODE, on_slow_mode::<A>);
    s.on_disconnect(on_disconnect);
    if !identity.anonymous {
        s.join(user_room(&identity.id));
    }
    let local = room.local_sockets.fetch_add(1, Ordering::AcqRel) + 1;
    room.presence_changed.notify_one();
    async move {
        tracing::debug!(role = ?identity.role, anonymous = identity.anonymous, "connected");
        let history = match room
            .store
            .recent(&room.key, room.room.spec.history_size, now_ms())
            .await
        {
            Ok(h) => h,
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
                namespace: &room.room.namespace,
                name: &room.room.name,
            },
            user: &identity,
            history,
            viewers,
            live: room.live.load(Ordering::Acquire),
            slow_mode_seconds: room.slow_mode.load(Ordering::Acquire),
            limits: Limits {
                max_message_length: room.room.spec.max_message_length,
                rate_limit_per_minute: room.room.spec.rate_limit_per_minute,
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

fn error(code: ErrorCode, event: &'static str, message: impl Into<String>) -> ChatError {
    ChatError {
        code,
        message: message.into(),
        event,
        retry_after_ms: None,
    }
}

fn code_label(code: ErrorCode) -> &'static str {
    match code {
        ErrorCode::BadRequest => "bad_request",
        ErrorCode::Unauthorized => "unauthorized",
        ErrorCode::Forbidden => "forbidden",
        ErrorCode::EmptyMessage => "empty_message",
        ErrorCode::MessageTooLong => "message_too_long",
        ErrorCode::RateLimited => "rate_limited",
        ErrorCode::SlowMode => "slow_mode",
        ErrorCode::NotFound => "not_found",
        ErrorCode::Unavailable => "unavailable",
    }
}

/// Ack the request; on failure also emit `chat_error` so clients that do not use acks see it.
fn respond<A: Adapter, T: Serialize>(
    s: &SocketRef<A>,
    room: &RoomState,
    ack: AckSender<A>,
    result: Result<T, ChatError>,
) {
    let sent = match result {
        Ok(data) => ack.send(&crate::protocol::Ack::ok(data)),
        Err(err) => {
            room.metrics
                .rejected
                .get_or_create(&room.reason_labels(code_label(err.code)))
                .inc();
            tracing::debug!(code = ?err.code, event = err.event, "request refused");
            let _ = s.emit(server::CHAT_ERROR, &err);
            ack.send(&crate::protocol::Ack::<()>::err(err))
        }
    };
    if let Err(e) = sent {
        tracing::debug!(error = %e, "ack not sent");
    }
}

fn require_token(identity: &Identity, event: &'static str) -> Result<(), ChatError> {
    if identity.anonymous {
        return Err(error(
            ErrorCode::Unauthorized,
            event,
            "posting needs a chat token; connect with auth: {token}",
        ));
    }
    Ok(())
}

fn require_moderator(identity: &Identity, event: &'static str) -> Result<(), ChatError> {
    require_token(identity, event)?;
    if !identity.role.can_moderate() {
        return Err(error(
            ErrorCode::Forbidden,
            event,
            "only moderators and the streamer may do this",
        ));
    }
    Ok(())
}

fn store_failed(room: &RoomState, event: &'static str, e: &crate::Error) -> ChatError {
    tracing::error!(error = %e, event, "store operation failed");
    room.metrics.store_errors.get_or_create(&room.labels).inc();
    error(
        ErrorCode::Unavailable,
        event,
        "the chat store is unavailable; try again",
    )
}

fn bad_request(event: &'static str, expected: &str) -> ChatError {
    error(ErrorCode::BadRequest, event, format!("expected {expected}"))
}

#[allow(clippy::too_many_arguments)]
async fn on_message<A: Adapter>(
    s: SocketRef<A>,
    io: SocketIo<A>,
    State(room): Room,
    Extension(identity): Extension<Identity>,
    Extension(span): Extension<Span>,
    TryData(data): TryData<PostMessage>,
    ack: AckSender<A>,
) {
    async {
        let result = post(&io, &room, &identity, data.ok()).await;
        respond(&s, &room, ack, result);
    }
    .instrument(span)
    .await;
}

async fn post<A: Adapter>(
    io: &SocketIo<A>,
    room: &Arc<RoomState>,
    identity: &Identity,
    data: Option<PostMessage>,
) -> Result<ChatMessage, ChatError> {
    const EV: &str = client::MESSAGE;
    if room.is_draining() {
        return Err(error(
            ErrorCode::Unavailable,
            EV,
            "this replica is shutting down; reconnect and resend",
        ));
    }
    require_token(identity, EV)?;
    let data = data.ok_or_else(|| bad_request(EV, "{text: string}"))?;
    let text = data.text.trim();
    if text.is_empty() {
        return Err(error(ErrorCode::EmptyMessage, EV, "the message is empty"));
    }
    let max = room.room.spec.max_message_length as usize;
    let len = text.chars().count();
    if len > max {
        return Err(error(
            ErrorCode::MessageTooLong,
            EV,
            format!("the message has {len} characters; the limit is {max}"),
        ));
    }
    let slow_mode = if identity.role.can_moderate() {
        Duration::ZERO
    } else {
        Duration::from_secs(u64::from(room.slow_mode.load(Ordering::Acquire)))
    };
    let checked = room
        .limiter
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .check(&identity.id, Instant::now(), slow_mode);
    if let Err(refusal) = checked {
        let (code, retry, message) = match refusal {
            Refusal::RateLimited { retry_after } => (
                ErrorCode::RateLimited,
                retry_after,
                format!(
                    "too many messages: at most {} per minute",
                    room.room.spec.rate_limit_per_minute
                ),
            ),
            Refusal::SlowMode { retry_after } => (
                ErrorCode::SlowMode,
                retry_after,
                format!("slow mode: one message every {} s", slow_mode.as_secs()),
            ),
        };
        let mut err = error(code, EV, message);
        err.retry_after_ms = Some(u64::try_from(retry.as_millis()).unwrap_or(u64::MAX).max(1));
        return Err(err);
    }
    let now = now_ms();
    let msg = ChatMessage {
        id: new_message_id(now),
        user_id: identity.id.clone(),
        name: identity.name.clone(),
        role: identity.role,
        text: text.to_owned(),
        ts: now,
    };
    let expire_at = room
        .room
        .spec
        .retention_days
        .map(|days| now.saturating_add(i64::from(days) * 86_400_000));
    let _inflight = room.inflight();
    room.store
        .append(&room.key, &msg, expire_at)
        .await
        .map_err(|e| store_failed(room, EV, &e))?;
    room.metrics.messages.get_or_create(&room.labels).inc();
    if let Err(e) = io.emit(server::MESSAGE, &msg).await {
        tracing::warn!(error = %e, "broadcasting a message failed (it is stored)");
    }
    Ok(msg)
}

async fn on_delete<A: Adapter>(
    s: SocketRef<A>,
    io: SocketIo<A>,
    State(room): Room,
    Extension(identity): Extension<Identity>,
    Extension(span): Extension<Span>,
    TryData(data): TryData<DeleteMessage>,
    ack: AckSender<A>,
) {
    async {
        let result = async {
            const EV: &str = client::DELETE;
            require_moderator(&identity, EV)?;
            let data = data.map_err(|_| bad_request(EV, "{id: string}"))?;
            let found = room
                .store
                .delete(&room.key, &data.id)
                .await
                .map_err(|e| store_failed(&room, EV, &e))?;
            if !found {
                return Err(error(ErrorCode::NotFound, EV, "no message with that id"));
            }
            tracing::info!(id = %data.id, "message deleted");
            let notice = MessageDeleted {
                id: &data.id,
                by: &identity.id,
            };
            if let Err(e) = io.emit(server::MESSAGE_DELETED, &notice).await {
                tracing::warn!(error = %e, "broadcasting a removal failed");
            }
            Ok(serde_json::json!({"id": data.id}))
        }
        .await;
        respond(&s, &room, ack, result);
    }
    .instrument(span)
    .await;
}

async fn on_ban<A: Adapter>(
    s: SocketRef<A>,
    io: SocketIo<A>,
    State(room): Room,
    Extension(identity): Extension<Identity>,
    Extension(span): Extension<Span>,
    TryData(data): TryData<BanUser>,
    ack: AckSender<A>,
) {
    async {
        let result = async {
            const EV: &str = client::BAN;
            require_moderator(&identity, EV)?;
            let data = data.map_err(|_| bad_request(EV, "{userId: string, reason?: string}"))?;
            let user_id = data.user_id.trim();
            if user_id.is_empty() || user_id.starts_with(ANONYMOUS_PREFIX) {
                return Err(bad_request(EV, "the userId of a token holder"));
            }
            if user_id == identity.id {
                return Err(error(ErrorCode::BadRequest, EV, "you cannot ban yourself"));
            }
            let reason = data
                .reason
                .map(|r| r.trim().chars().take(200).collect::<String>())
                .filter(|r| !r.is_empty());
            let ban = Ban {
                user_id: user_id.to_owned(),
                by: identity.id.clone(),
                reason: reason.clone(),
                at: now_ms(),
            };
            room.store
                .ban(&room.key, &ban)
                .await
                .map_err(|e| store_failed(&room, EV, &e))?;
            tracing::info!(banned = %user_id, "user banned");
            // Through the adapter: the user's sockets on every replica are told, then dropped.
            let target = io.to(user_room(user_id));
            let _ = target
                .emit(
                    server::BANNED,
                    &Banned {
                        reason: reason.as_deref(),
                    },
                )
                .await;
            if let Err(e) = io.to(user_room(user_id)).disconnect().await {
                tracing::warn!(error = %e, "disconnecting a banned user failed");
            }
            let notice = UserBanned {
                user_id,
                by: &identity.id,
                reason: reason.as_deref(),
            };
            let _ = io.emit(server::USER_BANNED, &notice).await;
            Ok(serde_json::json!({"userId": user_id}))
        }
        .await;
        respond(&s, &room, ack, result);
    }
    .instrument(span)
    .await;
}

async fn on_unban<A: Adapter>(
    s: SocketRef<A>,
    io: SocketIo<A>,
    State(room): Room,
    Extension(identity): Extension<Identity>,
    Extension(span): Extension<Span>,
    TryData(data): TryData<UnbanUser>,
    ack: AckSender<A>,
) {
    async {
        let result = async {
            const EV: &str = client::UNBAN;
            require_moderator(&identity, EV)?;
            let data = data.map_err(|_| bad_request(EV, "{userId: string}"))?;
            let found = room
                .store
                .unban(&room.key, data.user_id.trim())
                .await
                .map_err(|e| store_failed(&room, EV, &e))?;
            if !found {
                return Err(error(ErrorCode::NotFound, EV, "that user is not banned"));
            }
            let _ = io
                .emit(
                    server::USER_UNBANNED,
                    &serde_json::json!({"userId": data.user_id.trim(), "by": identity.id}),
                )
                .await;
            Ok(serde_json::json!({"userId": data.user_id.trim()}))
        }
        .await;
        respond(&s, &room, ack, result);
    }
    .instrument(span)
    .await;
}

async fn on_slow_mode<A: Adapter>(
    s: SocketRef<A>,
    io: SocketIo<A>,
    State(room): Room,
    Extension(identity): Extension<Identity>,
    Extension(span): Extension<Span>,
    TryData(data): TryData<SetSlowMode>,
    ack: AckSender<A>,
) {
    async {
        let result = async {
            const EV: &str = client::SLOW_MODE;
            require_moderator(&identity, EV)?;
            let data = data.map_err(|_| bad_request(EV, "{seconds: integer}"))?;
            if data.seconds > MAX_SLOW_MODE_SECONDS {
                return Err(bad_request(
                    EV,
                    &format!("seconds between 0 (off) and {MAX_SLOW_MODE_SECONDS}"),
                ));
            }
            room.store
                .set_slow_mode(&room.key, data.seconds)
                .await
                .map_err(|e| store_failed(&room, EV, &e))?;
            room.slow_mode.store(data.seconds, Ordering::Release);
            tracing::info!(seconds = data.seconds, "slow mode set");
            let _ = io
                .emit(
                    server::SLOW_MODE,
                    &SlowMode {
                        seconds: data.seconds,
                    },
                )
                .await;
            Ok(serde_json::json!({"seconds": data.seconds}))
        }
        .await;
        respond(&s, &room, ack, result);
    }
    .instrument(span)
    .await;
}
