//! Per-user posting limits shared by every replica of a room through Redis, so a user hopping
//! between replicas (or holding sockets on several) gets one allowance, not one per replica.
//!
//! ```text
//!  post ──> SharedLimiter ──EVAL (token bucket + slow mode, Redis clock)──> Redis
//!              │  error or no answer in 250 ms
//!              └──> this replica's RateLimiter (fail open: chat keeps working),
//!                   counted in rate_limit_fallbacks_total, logged once per outage
//! ```
//!
//! The Lua script is the token bucket of [`crate::ratelimit`] (a burst of the per-minute
//! allowance, then the steady rate; slow mode spaces posts; a refusal takes nothing), run
//! atomically in Redis on one hash per room and user, with Redis's clock so replicas with
//! skewed clocks agree. The hash expires once its bucket would be full again.

use std::{
    sync::{
        Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use redis::aio::MultiplexedConnection;

use crate::ratelimit::Refusal;

/// How long a post waits for Redis before the replica's own limiter decides.
pub const REDIS_TIMEOUT: Duration = Duration::from_millis(250);
/// After a failed connect, how long until the next attempt (posts meanwhile use the local
/// limiter without waiting).
pub const RECONNECT_AFTER: Duration = Duration::from_secs(1);

/// KEYS[1]: the user's bucket. ARGV: capacity (per minute), slow mode in ms (0: off).
/// Returns {0, 0} (allowed), {1, retry_ms} (rate limited) or {2, retry_ms} (slow mode).
const SCRIPT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local cap = tonumber(ARGV[1])
local slow = tonumber(ARGV[2])
local rate = cap / 60000
local b = redis.call('HMGET', KEYS[1], 'tokens', 'ts', 'last')
local tokens = tonumber(b[1]) or cap
local ts = tonumber(b[2]) or now
local last = tonumber(b[3])
tokens = math.min(cap, tokens + math.max(0, now - ts) * rate)
if slow > 0 and last and now - last < slow then
  return {2, slow - (now - last)}
end
if tokens < 1 then
  return {1, math.ceil((1 - tokens) / rate)}
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens - 1), 'ts', now, 'last', now)
redis.call('PEXPIRE', KEYS[1], 60000 + slow + 1000)
return {0, 0}
";

/// Why Redis could not decide.
#[derive(Debug, thiserror::Error)]
pub enum SharedLimitError {
    #[error("Redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("Redis did not answer within {0:?}")]
    Timeout(Duration),
    #[error("not reconnecting to Redis yet (last attempt failed)")]
    Backoff,
    #[error("unexpected reply from the rate-limit script: {0:?}")]
    Reply(Vec<i64>),
}

/// One room's limiter in Redis.
pub struct SharedLimiter {
    client: redis::Client,
    /// `<prefix>:<user>` is a user's bucket.
    prefix: String,
    per_minute: u32,
    conn: Mutex<Option<MultiplexedConnection>>,
    next_connect: Mutex<Option<Instant>>,
    degraded: AtomicBool,
}

impl SharedLimiter {
    /// A limiter for the room whose keys start with `prefix` (e.g. `roomcast-chat:ns:room`).
    pub fn new(client: redis::Client, prefix: &str, per_minute: u32) -> Self {
        Self {
            client,
            prefix: format!("{prefix}:rate"),
            per_minute: per_minute.max(1),
            conn: Mutex::new(None),
            next_connect: Mutex::new(None),
            degraded: AtomicBool::new(false),
        }
    }

    /// Connect ahead of the first post (the server does this at start, where Redis must answer
    /// anyway for the socket.io adapter).
    pub async fn connect(&self) -> Result<(), SharedLimitError> {
        self.connection().await.map(|_| ())
    }

    async fn connection(&self) -> Result<MultiplexedConnection, SharedLimitError> {
        if let Some(conn) = self.conn.lock().unwrap_or_else(|p| p.into_inner()).clone() {
            return Ok(conn);
        }
        {
            let mut next = self.next_connect.lock().unwrap_or_else(|p| p.into_inner());
            let now = Instant::now();
            if next.is_some_and(|at| now < at) {
                return Err(SharedLimitError::Backoff);
            }
            *next = Some(now + RECONNECT_AFTER);
        }
        let conn = tokio::time::timeout(
            REDIS_TIMEOUT,
            self.client.get_multiplexed_async_connection(),
        )
        .await
        .map_err(|_| SharedLimitError::Timeout(REDIS_TIMEOUT))??;
        *self.conn.lock().unwrap_or_else(|p| p.into_inner()) = Some(conn.clone());
        Ok(conn)
    }

    /// Take one post from `user`'s shared allowance, honouring `slow_mode` (zero: off).
    /// `Err` when Redis could not decide (the caller falls back to its own limiter).
    pub async fn check(
        &self,
        user: &str,
        slow_mode: Duration,
    ) -> Result<Result<(), Refusal>, SharedLimitError> {
        let mut conn = self.connection().await?;
        let slow_ms = u64::try_from(slow_mode.as_millis()).unwrap_or(u64::MAX);
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(SCRIPT)
            .arg(1)
            .arg(format!("{}:{user}", self.prefix))
            .arg(self.per_minute)
            .arg(slow_ms);
        let reply = tokio::time::timeout(REDIS_TIMEOUT, cmd.query_async::<Vec<i64>>(&mut conn))
            .await
            .map_err(|_| SharedLimitError::Timeout(REDIS_TIMEOUT))
            .and_then(|r| r.map_err(SharedLimitError::from));
        let reply = match reply {
            Ok(reply) => reply,
            Err(e) => {
                // Reconnect on the next post (after the backoff).
                *self.conn.lock().unwrap_or_else(|p| p.into_inner()) = None;
                return Err(e);
            }
        };
        let retry = |ms: i64| Duration::from_millis(u64::try_from(ms).unwrap_or(0).max(1));
        match reply.as_slice() {
            [0, _] => Ok(Ok(())),
            [1, ms] => Ok(Err(Refusal::RateLimited {
                retry_after: retry(*ms),
            })),
            [2, ms] => Ok(Err(Refusal::SlowMode {
                retry_after: retry(*ms),
            })),
            _ => Err(SharedLimitError::Reply(reply)),
        }
    }

    /// Record whether Redis answered; true when this changes the state (log once per outage).
    pub fn set_degraded(&self, degraded: bool) -> bool {
        self.degraded.swap(degraded, Ordering::AcqRel) != degraded
    }
}

impl std::fmt::Debug for SharedLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedLimiter")
            .field("prefix", &self.prefix)
            .field("per_minute", &self.per_minute)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::process::{Child, Command, Stdio};

    use super::*;

    /// A real `redis-server` on a free loopback port, killed on drop.
    pub(crate) struct RedisServer {
        child: Child,
        pub(crate) url: String,
    }

    impl Drop for RedisServer {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    /// Start `redis-server`, or report it missing (`None`: the test returns).
    pub(crate) async fn redis_server() -> Option<RedisServer> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let child = match Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
        {
            Ok(child) => child,
            Err(e) => {
                roomcast_runtime::skip::missing("redis-server", &e.to_string());
                return None;
            }
        };
        let server = RedisServer {
            child,
            url: format!("redis://127.0.0.1:{port}"),
        };
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return Some(server);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("redis-server did not listen on {port}");
    }

    fn limiter(url: &str, prefix: &str, per_minute: u32) -> SharedLimiter {
        SharedLimiter::new(
            redis::Client::open(url).expect("client"),
            prefix,
            per_minute,
        )
    }

    const OFF: Duration = Duration::ZERO;

    #[tokio::test]
    async fn two_replicas_share_one_allowance_per_user_and_room() {
        let Some(redis) = redis_server().await else {
            return;
        };
        let a = limiter(&redis.url, "roomcast-chat:shows:lobby", 3);
        let b = limiter(&redis.url, "roomcast-chat:shows:lobby", 3);
        a.check("ada", OFF).await.expect("redis").expect("1st");
        b.check("ada", OFF).await.expect("redis").expect("2nd");
        a.check("ada", OFF).await.expect("redis").expect("3rd");
        let refused = b.check("ada", OFF).await.expect("redis");
        let Err(Refusal::RateLimited { retry_after }) = refused else {
            panic!("the 4th post across replicas is refused: {refused:?}");
        };
        assert!(
            retry_after > Duration::from_secs(15) && retry_after <= Duration::from_secs(20),
            "{retry_after:?}"
        );
        // Another user, and the same user in another room, have their own allowance.
        b.check("bob", OFF).await.expect("redis").expect("bob");
        let other_room = limiter(&redis.url, "roomcast-chat:shows:other", 3);
        other_room
            .check("ada", OFF)
            .await
            .expect("redis")
            .expect("other room");
    }

    #[tokio::test]
    async fn slow_mode_is_shared_and_refusals_take_nothing() {
        let Some(redis) = redis_server().await else {
            return;
        };
        let a = limiter(&redis.url, "r", 100);
        let b = limiter(&redis.url, "r", 100);
        let slow = Duration::from_secs(30);
        a.check("ada", slow).await.expect("redis").expect("first");
        for _ in 0..5 {
            let refused = b.check("ada", slow).await.expect("redis");
            assert!(
                matches!(refused, Err(Refusal::SlowMode { retry_after }) if retry_after <= slow),
                "{refused:?}"
            );
        }
        // Without slow mode the refusals above spent nothing: 99 tokens remain.
        for i in 0..99 {
            b.check("ada", OFF)
                .await
                .expect("redis")
                .unwrap_or_else(|r| panic!("post {i}: {r:?}"));
        }
        assert!(b.check("ada", OFF).await.expect("redis").is_err());
    }

    #[tokio::test]
    async fn hostile_user_ids_are_just_key_suffixes() {
        let Some(redis) = redis_server().await else {
            return;
        };
        let l = limiter(&redis.url, "r", 1);
        for user in [
            "",
            "*",
            "a:b:c",
            "\0nul",
            "{tag}",
            "\u{202e}rtl",
            &"x".repeat(100_000),
        ] {
            l.check(user, OFF).await.expect("redis").expect("first");
            assert!(
                l.check(user, OFF).await.expect("redis").is_err(),
                "{user:.20}"
            );
        }
    }

    #[tokio::test]
    async fn an_unreachable_redis_is_an_error_quickly_then_backs_off() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let l = limiter(&format!("redis://127.0.0.1:{port}"), "r", 10);
        let started = Instant::now();
        assert!(matches!(
            l.check("ada", OFF).await,
            Err(SharedLimitError::Redis(_) | SharedLimitError::Timeout(_))
        ));
        assert!(matches!(
            l.check("ada", OFF).await,
            Err(SharedLimitError::Backoff)
        ));
        assert!(started.elapsed() < Duration::from_secs(1));
        assert!(l.set_degraded(true), "first failure changes the state");
        assert!(!l.set_degraded(true), "later ones do not (logged once)");
        assert!(l.set_degraded(false));
    }
}
