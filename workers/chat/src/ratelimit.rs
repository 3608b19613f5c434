//! Per-user posting limits, sans-I/O: the caller passes the current [`Instant`].
//!
//! - A token bucket per user: `rate_limit_per_minute` tokens, refilled continuously, so a user
//!   may burst up to the per-minute allowance and then post at the steady rate.
//! - Slow mode: at most one message per `slow_mode` seconds per user (moderators and the
//!   streamer are exempt; the caller decides).
//!
//! This is a replica's own limiter. With Redis, [`crate::sharedlimit`] runs the same bucket in
//! Redis so replicas share one allowance, and this one decides only while Redis does not answer.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

/// One user's bucket.
#[derive(Debug, Clone)]
struct Bucket {
    tokens: f64,
    last_refill: Instant,
    last_post: Option<Instant>,
}

/// Why a post was refused, and when it may be retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    RateLimited { retry_after: Duration },
    SlowMode { retry_after: Duration },
}

/// Users not seen for this long are forgotten (their bucket would be full anyway).
const FORGET_AFTER: Duration = Duration::from_secs(120);
/// How many users may be tracked before idle ones are pruned.
const PRUNE_AT: usize = 10_000;

#[derive(Debug)]
pub struct RateLimiter {
    per_minute: u32,
    buckets: HashMap<String, Bucket>,
}

impl RateLimiter {
    pub fn new(per_minute: u32) -> Self {
        Self {
            per_minute: per_minute.max(1),
            buckets: HashMap::new(),
        }
    }

    /// Take one token for `user` at `now`, honouring `slow_mode` (zero: off). Nothing is
    /// taken when the post is refused.
    pub fn check(&mut self, user: &str, now: Instant, slow_mode: Duration) -> Result<(), Refusal> {
        if self.buckets.len() >= PRUNE_AT {
            self.prune(now);
        }
        let capacity = f64::from(self.per_minute);
        let per_second = capacity / 60.0;
        let bucket = self.buckets.entry(user.to_owned()).or_insert(Bucket {
            tokens: capacity,
            last_refill: now,
            last_post: None,
        });
        let elapsed = now.saturating_duration_since(bucket.last_refill);
        bucket.tokens = (bucket.tokens + elapsed.as_secs_f64() * per_second).min(capacity);
        bucket.last_refill = now;

        if !slow_mode.is_zero()
            && let Some(last) = bucket.last_post
        {
            let since = now.saturating_duration_since(last);
            if since < slow_mode {
                return Err(Refusal::SlowMode {
                    retry_after: slow_mode - since,
                });
            }
        }
        if bucket.tokens < 1.0 {
            let missing = 1.0 - bucket.tokens;
            return Err(Refusal::RateLimited {
                retry_after: Duration::from_secs_f64(missing / per_second),
            });
        }
        bucket.tokens -= 1.0;
        bucket.last_post = Some(now);
        Ok(())
    }

    fn prune(&mut self, now: Instant) {
        self.buckets
            .retain(|_, b| now.saturating_duration_since(b.last_refill) < FORGET_AFTER);
    }

    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.buckets.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFF: Duration = Duration::ZERO;

    #[test]
    fn allows_a_burst_of_the_per_minute_allowance_then_refuses() {
        let mut rl = RateLimiter::new(3);
        let t0 = Instant::now();
        for _ in 0..3 {
            rl.check("ada", t0, OFF).expect("within allowance");
        }
        let refusal = rl.check("ada", t0, OFF).expect_err("fourth is refused");
        assert_eq!(
            refusal,
            Refusal::RateLimited {
                retry_after: Duration::from_secs(20)
            }
        );
    }

    #[test]
    fn refills_at_the_steady_rate() {
        let mut rl = RateLimiter::new(60);
        let t0 = Instant::now();
        for _ in 0..60 {
            rl.check("ada", t0, OFF).expect("burst");
        }
        assert!(
            rl.check("ada", t0 + Duration::from_millis(500), OFF)
                .is_err()
        );
        rl.check("ada", t0 + Duration::from_secs(1), OFF)
            .expect("one token after a second");
        assert!(rl.check("ada", t0 + Duration::from_secs(1), OFF).is_err());
    }

    #[test]
    fn one_users_flood_does_not_limit_another() {
        let mut rl = RateLimiter::new(2);
        let t0 = Instant::now();
        for _ in 0..10 {
            let _ = rl.check("flooder", t0, OFF);
        }
        rl.check("bob", t0, OFF).expect("bob has his own bucket");
    }

    #[test]
    fn slow_mode_spaces_posts_without_spending_tokens_on_refusals() {
        let mut rl = RateLimiter::new(100);
        let t0 = Instant::now();
        let slow = Duration::from_secs(10);
        rl.check("ada", t0, slow).expect("first");
        assert_eq!(
            rl.check("ada", t0 + Duration::from_secs(4), slow),
            Err(Refusal::SlowMode {
                retry_after: Duration::from_secs(6)
            })
        );
        rl.check("ada", t0 + Duration::from_secs(10), slow)
            .expect("after the slow-mode interval");
    }

    #[test]
    fn idle_users_are_forgotten_when_many_are_tracked() {
        let mut rl = RateLimiter::new(10);
        let t0 = Instant::now();
        for i in 0..PRUNE_AT {
            rl.check(&format!("u{i}"), t0, OFF).expect("fresh user");
        }
        rl.check("late", t0 + FORGET_AFTER, OFF)
            .expect("fresh user");
        assert_eq!(rl.tracked(), 1);
    }
}
