//! Fixed-window counters for failed logins and registrations. In memory on one node; the same
//! trait is what a Redis implementation (INCR + EXPIRE, same window semantics) plugs into.

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
