//! Fixed-window counters for failed logins and registrations: in memory on one node, in Redis
//! (`redis_url`) when several nodes must share them. Both count the same way: a window starts at
//! the first event of a key and lasts `window`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;

#[async_trait]
pub trait RateLimiter: Send + Sync + 'static {
    /// Counts one event, then decides: the wait if this event went over `limit`. Counting first
    /// makes the decision atomic: of N concurrent events, at most `limit` pass.
    async fn hit(&self, key: &str, limit: u32, window: Duration) -> Option<Duration>;
    /// Takes one counted event back (an attempt that turned out to be a success).
    async fn give_back(&self, key: &str);
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

    async fn give_back(&self, key: &str) {
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, count)) = windows.get_mut(key) {
            *count = count.saturating_sub(1);
        }
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
    give_back: redis::Script,
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
        // Only a counter that still exists is decremented: one that expired meanwhile stays gone.
        let give_back = redis::Script::new(
            r"if redis.call('EXISTS', KEYS[1]) == 1 then return redis.call('DECR', KEYS[1]) end
              return 0",
        );
        Ok(RedisLimiter {
            connection,
            prefix: prefix.to_string(),
            hit,
            give_back,
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

    async fn give_back(&self, key: &str) {
        let mut conn = self.connection.clone();
        let result: Result<i64, _> = self
            .give_back
            .key(self.key(key))
            .invoke_async(&mut conn)
            .await;
        if let Err(e) = result {
            tracing::error!(error = %e, "Redis rate limiter unavailable; could not give a place back");
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

/// A login attempt counted against the failure budgets it draws on.
pub(crate) struct LoginAttempt {
    account_key: String,
    ip_key: Option<String>,
}

impl crate::core::Core {
    /// Counts a login attempt (or a password check by a logged-in account) before anything is
    /// hashed, against the account's budget (`account`: its id, so that its username and its
    /// email share one) or, for a name no account has, the name's; and against the client's
    /// IP. Refused with the longer wait if either is spent: of N attempts at once, at most the
    /// budget reach the hasher.
    pub(crate) async fn reserve_login_attempt(
        &self,
        account: Result<&str, &str>,
        client: &crate::core::Client,
    ) -> crate::core::CoreResult<LoginAttempt> {
        let window = Duration::from_secs(self.config.failed_login_window_secs);
        let attempt = LoginAttempt {
            account_key: match account {
                Ok(id) => format!("login:account:{id}"),
                Err(name) => format!("login:name:{name}"),
            },
            ip_key: client.ip.map(|ip| format!("login:ip:{ip}")),
        };
        let mut over = self
            .limiter
            .hit(
                &attempt.account_key,
                self.config.failed_logins_per_account,
                window,
            )
            .await;
        if let Some(ip_key) = &attempt.ip_key {
            let by_ip = self
                .limiter
                .hit(ip_key, self.config.failed_logins_per_ip, window)
                .await;
            over = over.max(by_ip);
        }
        match over {
            None => Ok(attempt),
            Some(wait) => {
                crate::telemetry::count_rate_limited("login");
                Err(crate::core::CoreError::RateLimited {
                    retry_after_secs: retry_after_secs(wait),
                })
            }
        }
    }

    /// Counts an attempt with a guessable secret that is not a password (an emailed link's
    /// token) against the client's address, as a failed login of the address would be.
    pub(crate) async fn reserve_address_attempt(
        &self,
        client: &crate::core::Client,
    ) -> crate::core::CoreResult<Option<String>> {
        let Some(ip) = client.ip else { return Ok(None) };
        let key = format!("login:ip:{ip}");
        let window = Duration::from_secs(self.config.failed_login_window_secs);
        match self
            .limiter
            .hit(&key, self.config.failed_logins_per_ip, window)
            .await
        {
            None => Ok(Some(key)),
            Some(wait) => {
                crate::telemetry::count_rate_limited("login");
                Err(crate::core::CoreError::RateLimited {
                    retry_after_secs: retry_after_secs(wait),
                })
            }
        }
    }

    /// The address's attempt was right: it gets its place back.
    pub(crate) async fn address_attempt_succeeded(&self, key: Option<String>) {
        if let Some(key) = key {
            self.limiter.give_back(&key).await;
        }
    }

    /// The attempt was right: the account's failures are forgotten and the IP gets its place
    /// back, so that many people behind one address do not use up each other's budget.
    pub(crate) async fn login_attempt_succeeded(&self, attempt: LoginAttempt) {
        self.limiter.reset(&attempt.account_key).await;
        if let Some(ip_key) = &attempt.ip_key {
            self.limiter.give_back(ip_key).await;
        }
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
    async fn counts_then_decides_until_the_window_ends() {
        let l = MemoryLimiter::default();
        let w = Duration::from_secs(60);
        for _ in 0..3 {
            assert!(l.hit("k", 3, w).await.is_none());
        }
        let wait = l.hit("k", 3, w).await.expect("over");
        assert!(wait <= w && wait > Duration::from_secs(58));
        assert!(l.hit("other", 3, w).await.is_none());
        l.reset("k").await;
        assert!(l.hit("k", 3, w).await.is_none());
    }

    #[tokio::test]
    async fn a_place_given_back_can_be_used_again() {
        let l = MemoryLimiter::default();
        let w = Duration::from_secs(60);
        assert!(l.hit("k", 1, w).await.is_none());
        l.give_back("k").await;
        assert!(l.hit("k", 1, w).await.is_none());
        assert!(l.hit("k", 1, w).await.is_some());
        // Giving back what was never taken changes nothing.
        l.give_back("never").await;
        assert!(l.hit("never", 1, w).await.is_none());
    }

    #[tokio::test]
    async fn window_expiry_starts_over() {
        let l = MemoryLimiter::default();
        let w = Duration::from_millis(30);
        l.hit("k", 1, w).await;
        assert!(l.hit("k", 1, w).await.is_some());
        tokio::time::sleep(Duration::from_millis(40)).await;
        assert!(l.hit("k", 1, w).await.is_none());
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_secs(5)), 5);
    }
}
