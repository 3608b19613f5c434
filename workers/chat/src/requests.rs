//! The client requests of a room's chat. Each is a typed message implementing [`Request`] (its
//! event, who may send it, what it does) and goes through one envelope, [`on_request`]: the
//! socket's span, the drain and role checks, payload parsing, then the ack (`{ok, data}` or
//! `{ok: false, error}`), a `chat_error` event and the `rejected` metric on failure.

use std::{
    future::Future,
    sync::{Arc, atomic::Ordering},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use serde::{Serialize, de::DeserializeOwned};
use socketioxide::{
    SocketIo,
    adapter::Adapter,
    extract::{AckSender, Extension, SocketRef, State, TryData},
};
use tracing::{Instrument, Span};

use crate::{
    protocol::{
        ANONYMOUS_PREFIX, Ack, BanUser, Banned, ChatError, ChatMessage, DeleteMessage, Deleted,
        ErrorCode, Identity, MessageDeleted, PostMessage, SetSlowMode, SlowMode, UnbanUser,
        UserBanned, UserRef, UserUnbanned, client, server,
    },
    ratelimit::Refusal,
    room::{MAX_SLOW_MODE_SECONDS, RoomState},
    store::{Ban, ChatStore, RoomKey, new_message_id},
};

/// Register every request on a new socket.
pub(crate) fn register<A: Adapter>(s: &SocketRef<A>) {
    s.on(PostMessage::EVENT, on_request::<A, PostMessage>);
    s.on(DeleteMessage::EVENT, on_request::<A, DeleteMessage>);
    s.on(BanUser::EVENT, on_request::<A, BanUser>);
    s.on(UnbanUser::EVENT, on_request::<A, UnbanUser>);
    s.on(SetSlowMode::EVENT, on_request::<A, SetSlowMode>);
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The socket.io room of a token holder's sockets (on every replica, through the adapter).
pub(crate) fn user_room(user_id: &str) -> String {
    format!("user:{user_id}")
}

pub(crate) fn error(code: ErrorCode, event: &'static str, message: impl Into<String>) -> ChatError {
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

fn bad_request(event: &'static str, expected: &str) -> ChatError {
    error(ErrorCode::BadRequest, event, format!("expected {expected}"))
}

/// Who may send a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Needs {
    /// Any token holder (anonymous viewers may read, not write).
    Token,
    /// A moderator or the streamer.
    Moderator,
}

/// What a request works with: the room, the caller, the server to broadcast through, and the
/// event being answered.
pub(crate) struct Ctx<A: Adapter> {
    io: SocketIo<A>,
    room: Arc<RoomState>,
    identity: Identity,
    event: &'static str,
}

impl<A: Adapter> Ctx<A> {
    /// Run `call` on the room's store; a failure is logged, counted, and refused as
    /// `unavailable` so the client retries.
    async fn stored<'a, T, F>(
        &'a self,
        call: impl FnOnce(&'a dyn ChatStore, &'a RoomKey) -> F,
    ) -> Result<T, ChatError>
    where
        F: Future<Output = crate::error::Result<T>>,
    {
        call(&*self.room.store, &self.room.key).await.map_err(|e| {
            tracing::error!(error = %e, event = self.event, "store operation failed");
            self.room
                .metrics
                .store_errors
                .get_or_create(&self.room.labels)
                .inc();
            error(
                ErrorCode::Unavailable,
                self.event,
                "the chat store is unavailable; try again",
            )
        })
    }
}

/// A client request: a typed payload, the event it arrives on, who may send it, and what the
/// server does with it. [`on_request`] is the envelope around [`Request::handle`].
pub(crate) trait Request: DeserializeOwned + Send + Sync + 'static {
    const EVENT: &'static str;
    /// The payload's shape, named in the error when it does not parse.
    const SHAPE: &'static str;
    const NEEDS: Needs;
    /// Refused once the replica drains: a write shutdown might cut short. Checked first.
    const REFUSED_WHILE_DRAINING: bool = false;
    /// The ack's `data` on success.
    type Reply: Serialize + Send;

    fn handle<A: Adapter>(
        self,
        ctx: &Ctx<A>,
    ) -> impl Future<Output = Result<Self::Reply, ChatError>> + Send;
}

/// The one envelope of every client request: in the socket's span, check draining, the
/// caller's role and the payload, run the request, then ack it; a failure is also emitted as
/// `chat_error` (for clients that do not use acks) and counted by code.
async fn on_request<A: Adapter, R: Request>(
    s: SocketRef<A>,
    io: SocketIo<A>,
    State(room): State<Arc<RoomState>>,
    Extension(identity): Extension<Identity>,
    Extension(span): Extension<Span>,
    TryData(data): TryData<R>,
    ack: AckSender<A>,
) {
    let ctx = Ctx {
        io,
        room,
        identity,
        event: R::EVENT,
    };
    async {
        let result = async {
            admit_request::<R>(ctx.room.is_draining(), &ctx.identity)?;
            let data = data.map_err(|_| bad_request(R::EVENT, R::SHAPE))?;
            data.handle(&ctx).await
        }
        .await;
        let sent = match result {
            Ok(data) => ack.send(&Ack::ok(data)),
            Err(err) => {
                ctx.room
                    .metrics
                    .rejected
                    .get_or_create(&ctx.room.reason_labels(code_label(err.code)))
                    .inc();
                tracing::debug!(code = ?err.code, event = err.event, "request refused");
                let _ = s.emit(server::CHAT_ERROR, &err);
                ack.send(&Ack::<()>::err(err))
            }
        };
        if let Err(e) = sent {
            tracing::debug!(error = %e, "ack not sent");
        }
    }
    .instrument(span)
    .await;
}

/// The checks before a request's payload is looked at: draining, then the caller's role.
fn admit_request<R: Request>(draining: bool, identity: &Identity) -> Result<(), ChatError> {
    if R::REFUSED_WHILE_DRAINING && draining {
        return Err(error(
            ErrorCode::Unavailable,
            R::EVENT,
            "this replica is shutting down; reconnect and resend",
        ));
    }
    if identity.anonymous {
        return Err(error(
            ErrorCode::Unauthorized,
            R::EVENT,
            "posting needs a chat token; connect with auth: {token}",
        ));
    }
    if R::NEEDS == Needs::Moderator && !identity.role.can_moderate() {
        return Err(error(
            ErrorCode::Forbidden,
            R::EVENT,
            "only moderators and the streamer may do this",
        ));
    }
    Ok(())
}

impl Request for PostMessage {
    const EVENT: &'static str = client::MESSAGE;
    const SHAPE: &'static str = "{text: string}";
    const NEEDS: Needs = Needs::Token;
    const REFUSED_WHILE_DRAINING: bool = true;
    type Reply = ChatMessage;

    /// Check length, rate limit and slow mode; store the message, then broadcast it.
    async fn handle<A: Adapter>(self, ctx: &Ctx<A>) -> Result<ChatMessage, ChatError> {
        let (room, identity) = (&ctx.room, &ctx.identity);
        let text = self.text.trim();
        if text.is_empty() {
            return Err(error(
                ErrorCode::EmptyMessage,
                Self::EVENT,
                "the message is empty",
            ));
        }
        let max = room.config.spec.max_message_length as usize;
        let len = text.chars().count();
        if len > max {
            return Err(error(
                ErrorCode::MessageTooLong,
                Self::EVENT,
                format!("the message has {len} characters; the limit is {max}"),
            ));
        }
        let slow_mode = if identity.role.can_moderate() {
            Duration::ZERO
        } else {
            Duration::from_secs(u64::from(room.slow_mode.load(Ordering::Acquire)))
        };
        if let Err(refusal) = room.check_rate(&identity.id, slow_mode).await {
            let (code, retry, message) = match refusal {
                Refusal::RateLimited { retry_after } => (
                    ErrorCode::RateLimited,
                    retry_after,
                    format!(
                        "too many messages: at most {} per minute",
                        room.config.spec.rate_limit_per_minute
                    ),
                ),
                Refusal::SlowMode { retry_after } => (
                    ErrorCode::SlowMode,
                    retry_after,
                    format!("slow mode: one message every {} s", slow_mode.as_secs()),
                ),
            };
            let mut err = error(code, Self::EVENT, message);
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
            .config
            .spec
            .retention_days
            .map(|days| now.saturating_add(i64::from(days) * 86_400_000));
        let _inflight = room.inflight();
        ctx.stored(|store, key| store.append(key, &msg, expire_at))
            .await?;
        room.metrics.messages.get_or_create(&room.labels).inc();
        if let Err(e) = ctx.io.emit(server::MESSAGE, &msg).await {
            tracing::warn!(error = %e, "broadcasting a message failed (it is stored)");
        }
        Ok(msg)
    }
}

impl Request for DeleteMessage {
    const EVENT: &'static str = client::DELETE;
    const SHAPE: &'static str = "{id: string}";
    const NEEDS: Needs = Needs::Moderator;
    type Reply = Deleted;

    async fn handle<A: Adapter>(self, ctx: &Ctx<A>) -> Result<Deleted, ChatError> {
        let found = ctx.stored(|store, key| store.delete(key, &self.id)).await?;
        if !found {
            return Err(error(
                ErrorCode::NotFound,
                Self::EVENT,
                "no message with that id",
            ));
        }
        tracing::info!(id = %self.id, "message deleted");
        let notice = MessageDeleted {
            id: &self.id,
            by: &ctx.identity.id,
        };
        if let Err(e) = ctx.io.emit(server::MESSAGE_DELETED, &notice).await {
            tracing::warn!(error = %e, "broadcasting a removal failed");
        }
        Ok(Deleted { id: self.id })
    }
}

impl Request for BanUser {
    const EVENT: &'static str = client::BAN;
    const SHAPE: &'static str = "{userId: string, reason?: string}";
    const NEEDS: Needs = Needs::Moderator;
    type Reply = UserRef;

    /// Store the ban, then tell and drop the user's sockets on every replica (through the
    /// adapter), then tell the room.
    async fn handle<A: Adapter>(self, ctx: &Ctx<A>) -> Result<UserRef, ChatError> {
        let user_id = self.user_id.trim();
        if user_id.is_empty() || user_id.starts_with(ANONYMOUS_PREFIX) {
            return Err(bad_request(Self::EVENT, "the userId of a token holder"));
        }
        if user_id == ctx.identity.id {
            return Err(error(
                ErrorCode::BadRequest,
                Self::EVENT,
                "you cannot ban yourself",
            ));
        }
        let reason = self
            .reason
            .map(|r| r.trim().chars().take(200).collect::<String>())
            .filter(|r| !r.is_empty());
        let ban = Ban {
            user_id: user_id.to_owned(),
            by: ctx.identity.id.clone(),
            reason: reason.clone(),
            at: now_ms(),
        };
        ctx.stored(|store, key| store.ban(key, &ban)).await?;
        tracing::info!(banned = %user_id, "user banned");
        let _ = ctx
            .io
            .to(user_room(user_id))
            .emit(
                server::BANNED,
                &Banned {
                    reason: reason.as_deref(),
                },
            )
            .await;
        if let Err(e) = ctx.io.to(user_room(user_id)).disconnect().await {
            tracing::warn!(error = %e, "disconnecting a banned user failed");
        }
        let notice = UserBanned {
            user_id,
            by: &ctx.identity.id,
            reason: reason.as_deref(),
        };
        let _ = ctx.io.emit(server::USER_BANNED, &notice).await;
        Ok(UserRef {
            user_id: user_id.to_owned(),
        })
    }
}

impl Request for UnbanUser {
    const EVENT: &'static str = client::UNBAN;
    const SHAPE: &'static str = "{userId: string}";
    const NEEDS: Needs = Needs::Moderator;
    type Reply = UserRef;

    async fn handle<A: Adapter>(self, ctx: &Ctx<A>) -> Result<UserRef, ChatError> {
        let user_id = self.user_id.trim();
        let found = ctx.stored(|store, key| store.unban(key, user_id)).await?;
        if !found {
            return Err(error(
                ErrorCode::NotFound,
                Self::EVENT,
                "that user is not banned",
            ));
        }
        let notice = UserUnbanned {
            user_id,
            by: &ctx.identity.id,
        };
        let _ = ctx.io.emit(server::USER_UNBANNED, &notice).await;
        Ok(UserRef {
            user_id: user_id.to_owned(),
        })
    }
}

impl Request for SetSlowMode {
    const EVENT: &'static str = client::SLOW_MODE;
    const SHAPE: &'static str = "{seconds: integer}";
    const NEEDS: Needs = Needs::Moderator;
    type Reply = SlowMode;

    /// Store the interval (other replicas pick it up on their presence tick), apply it here,
    /// and tell the room.
    async fn handle<A: Adapter>(self, ctx: &Ctx<A>) -> Result<SlowMode, ChatError> {
        if self.seconds > MAX_SLOW_MODE_SECONDS {
            return Err(bad_request(
                Self::EVENT,
                &format!("seconds between 0 (off) and {MAX_SLOW_MODE_SECONDS}"),
            ));
        }
        ctx.stored(|store, key| store.set_slow_mode(key, self.seconds))
            .await?;
        ctx.room.slow_mode.store(self.seconds, Ordering::Release);
        tracing::info!(seconds = self.seconds, "slow mode set");
        let reply = SlowMode {
            seconds: self.seconds,
        };
        let _ = ctx.io.emit(server::SLOW_MODE, &reply).await;
        Ok(reply)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Role;

    fn who(role: Role, anonymous: bool) -> Identity {
        Identity {
            id: if anonymous { "anon:x" } else { "u-1" }.into(),
            name: "Ada".into(),
            role,
            anonymous,
        }
    }

    fn refusal<R: Request>(draining: bool, identity: &Identity) -> Option<ErrorCode> {
        admit_request::<R>(draining, identity).err().map(|e| {
            assert_eq!(e.event, R::EVENT);
            e.code
        })
    }

    #[test]
    fn anonymous_viewers_may_not_post_and_viewers_may_not_moderate() {
        let anonymous = who(Role::Viewer, true);
        let viewer = who(Role::Viewer, false);
        let moderator = who(Role::Moderator, false);
        let streamer = who(Role::Streamer, false);
        assert_eq!(
            refusal::<PostMessage>(false, &anonymous),
            Some(ErrorCode::Unauthorized)
        );
        assert_eq!(refusal::<PostMessage>(false, &viewer), None);
        assert_eq!(
            refusal::<BanUser>(false, &anonymous),
            Some(ErrorCode::Unauthorized),
            "no token comes before no role"
        );
        for request in [
            refusal::<DeleteMessage>(false, &viewer),
            refusal::<BanUser>(false, &viewer),
            refusal::<UnbanUser>(false, &viewer),
            refusal::<SetSlowMode>(false, &viewer),
        ] {
            assert_eq!(request, Some(ErrorCode::Forbidden));
        }
        assert_eq!(refusal::<BanUser>(false, &moderator), None);
        assert_eq!(refusal::<SetSlowMode>(false, &streamer), None);
    }

    #[test]
    fn a_draining_replica_refuses_posts_first_and_still_takes_moderation() {
        let anonymous = who(Role::Viewer, true);
        let moderator = who(Role::Moderator, false);
        assert_eq!(
            refusal::<PostMessage>(true, &anonymous),
            Some(ErrorCode::Unavailable)
        );
        assert_eq!(
            refusal::<PostMessage>(true, &moderator),
            Some(ErrorCode::Unavailable)
        );
        assert_eq!(refusal::<DeleteMessage>(true, &moderator), None);
    }
}
