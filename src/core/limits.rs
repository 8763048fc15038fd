//! Fixed-window counters for failed logins and registrations: in memory on one node, in Redis
//! (`redis_url`) when several nodes must share them. Both count the same way: a window starts at
//! the first event of a key and lasts `window`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;

#[async_trait]
pub trait RateLimiter: Send + Sync + 'static {
    /// If `key` has already reached `limit` in its current window, how long until it resets.
    async fn blocked(&self, key: &str, limit: u32, window: Duration) -> Option<Duration>;
    /// Counts one event; returns the wait if this event went over `limit`.
    async fn hit(&self, key: &str, limit: u32, window: Duration) -> Option<Duration>;
    /// Forgets `key` (a successful login clears the account's failures).
    async fn reset(&self, key: &str);
}

#[derive(Default)]
pub struct MemoryLimiter {
    windows: Mutex<HashMap<String, (Instant, u32)>>,
}

/// Above this many keys, expired windows are swept on the next hit.
const SWEEP_ABOVE: usize = 10_000;

#[async_trait]
impl RateLimiter for MemoryLimiter {
    async fn blocked(&self, key: &str, limit: u32, window: Duration) -> Option<Duration> {
        let now = Instant::now();
        let windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        let (start, count) = windows.get(key)?;
        let ends = *start + window;
        (ends > now && *count >= limit).then(|| ends - now)
    }

    async fn hit(&self, key: &str, limit: u32, window: Duration) -> Option<Duration> {
        let now = Instant::now();
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        if windows.len() > SWEEP_ABOVE {
            windows.retain(|_, (start, _)| *start + window > now);
        }
        let entry = windows.entry(key.to_string()).or_insert((now, 0));
        if entry.0 + window <= now {
            *entry = (now, 0);
        }
        entry.1 = entry.1.saturating_add(1);
        (entry.1 > limit).then(|| entry.0 + window - now)
    }

    async fn reset(&self, key: &str) {
        self.windows
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
    }
}

/// Counters in Redis, shared by every node that uses the same `redis_url` and prefix. One Lua
/// script makes "count, start the window if new, say how long is left" a single atomic step.
/// When Redis cannot be reached the limiter lets the request through and logs the error: a
/// broken Redis must not lock everybody out.
pub struct RedisLimiter {
    connection: redis::aio::ConnectionManager,
    prefix: String,
    hit: redis::Script,
}

impl RedisLimiter {
    pub async fn connect(url: &str, prefix: &str) -> Result<RedisLimiter, redis::RedisError> {
        let client = redis::Client::open(url)?;
        let connection = redis::aio::ConnectionManager::new(client).await?;
        let hit = redis::Script::new(
            r"local n = redis.call('INCR', KEYS[1])
              if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
              local ttl = redis.call('PTTL', KEYS[1])
              if ttl < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]); ttl = tonumber(ARGV[1]) end
              return {n, ttl}",
        );
        Ok(RedisLimiter {
            connection,
            prefix: prefix.to_string(),
            hit,
        })
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }
}

fn window_ms(window: Duration) -> u64 {
    u64::try_from(window.as_millis()).unwrap_or(u64::MAX).max(1)
}

#[async_trait]
impl RateLimiter for RedisLimiter {
    async fn blocked(&self, key: &str, limit: u32, _window: Duration) -> Option<Duration> {
        let mut conn = self.connection.clone();
        let result: Result<(Option<u64>, i64), _> = redis::pipe()
            .get(self.key(key))
            .pttl(self.key(key))
            .query_async(&mut conn)
            .await;
        match result {
            Ok((Some(count), ttl)) if count >= u64::from(limit) && ttl > 0 => {
                Some(Duration::from_millis(ttl.unsigned_abs()))
            }
            Ok(_) => None,
            Err(e) => {
                tracing::error!(error = %e, "Redis rate limiter unavailable; letting the request through");
                None
            }
        }
    }

    async fn hit(&self, key: &str, limit: u32, window: Duration) -> Option<Duration> {
        let mut conn = self.connection.clone();
        let result: Result<(u64, i64), _> = self
            .hit
            .key(self.key(key))
            .arg(window_ms(window))
            .invoke_async(&mut conn)
            .await;
        match result {
            Ok((count, ttl)) if count > u64::from(limit) => {
                Some(Duration::from_millis(ttl.max(1).unsigned_abs()))
            }
            Ok(_) => None,
            Err(e) => {
                tracing::error!(error = %e, "Redis rate limiter unavailable; letting the request through");
                None
            }
        }
    }

    async fn reset(&self, key: &str) {
        let mut conn = self.connection.clone();
        let result: Result<(), _> = redis::cmd("DEL")
            .arg(self.key(key))
            .query_async(&mut conn)
            .await;
        if let Err(e) = result {
            tracing::error!(error = %e, "Redis rate limiter unavailable; could not reset a counter");
        }
    }
}

impl crate::core::Core {
    /// Counts a registration (Membership or company sign-up) against the client's IP.
    pub(crate) async fn count_registration(
        &self,
        client: &crate::core::Client,
    ) -> crate::core::CoreResult<()> {
        let Some(ip) = client.ip else { return Ok(()) };
        let limit = self.config.registrations_per_ip_per_hour;
        match self
            .limiter
            .hit(
                &format!("register:ip:{ip}"),
                limit,
                Duration::from_secs(3600),
            )
            .await
        {
            None => Ok(()),
            Some(wait) => {
                crate::telemetry::count_rate_limited("registration");
                Err(crate::core::CoreError::RateLimited {
                    retry_after_secs: retry_after_secs(wait),
                })
            }
        }
    }

    /// Counts one `kind` event against the address `key` and the client's IP; the longer wait
    /// if either is over its limit.
    pub(crate) async fn hit_address_and_ip(
        &self,
        kind: &str,
        key: &str,
        client: &crate::core::Client,
        limit: u32,
        window: Duration,
    ) -> Option<Duration> {
        let by_address = self
            .limiter
            .hit(&format!("{kind}:address:{key}"), limit, window)
            .await;
        let by_ip = match client.ip {
            Some(ip) => {
                self.limiter
                    .hit(&format!("{kind}:ip:{ip}"), limit, window)
                    .await
            }
            None => None,
        };
        by_address.max(by_ip)
    }
}

/// Whole seconds for a `Retry-After` header, at least 1.
pub fn retry_after_secs(wait: Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn blocks_after_limit_until_window_ends() {
        let l = MemoryLimiter::default();
        let w = Duration::from_secs(60);
        for _ in 0..3 {
            assert!(l.blocked("k", 3, w).await.is_none());
            assert!(l.hit("k", 3, w).await.is_none());
        }
        let wait = l.blocked("k", 3, w).await.expect("blocked");
        assert!(wait <= w && wait > Duration::from_secs(58));
        assert!(l.hit("k", 3, w).await.is_some());
        assert!(l.blocked("other", 3, w).await.is_none());
        l.reset("k").await;
        assert!(l.blocked("k", 3, w).await.is_none());
    }

    #[tokio::test]
    async fn window_expiry_starts_over() {
        let l = MemoryLimiter::default();
        let w = Duration::from_millis(30);
        l.hit("k", 1, w).await;
        assert!(l.blocked("k", 1, w).await.is_some());
        tokio::time::sleep(Duration::from_millis(40)).await;
        assert!(l.blocked("k", 1, w).await.is_none());
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_secs(5)), 5);
    }
}
