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

/// Counters in this process's memory. Each counter keeps its own window, so that one kind of
/// limit's clean-up never ends another's early; expired counters are dropped by a periodic
/// sweep, not by the requests; and the map holds at most `cap` counters, the oldest going first
/// when a new one would not fit. Every operation is O(1) under a mutex held for no longer.
pub struct MemoryLimiter {
    state: Mutex<Counters>,
    cap: usize,
}

#[derive(Default)]
struct Counters {
    by_key: HashMap<String, Counter>,
    /// Keys in the order their windows started, with the generation of that start; an entry
    /// whose counter has since restarted or gone is skipped when met.
    by_age: std::collections::VecDeque<(String, u64)>,
    generation: u64,
}

struct Counter {
    ends: Instant,
    count: u32,
    generation: u64,
}

/// The counters one node keeps at most: a few MB.
pub const MEMORY_LIMITER_CAP: usize = 100_000;
/// How often expired counters are swept away.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

impl Default for MemoryLimiter {
    fn default() -> Self {
        MemoryLimiter::with_cap(MEMORY_LIMITER_CAP)
    }
}

impl MemoryLimiter {
    pub fn with_cap(cap: usize) -> MemoryLimiter {
        MemoryLimiter {
            state: Mutex::new(Counters::default()),
            cap: cap.max(1),
        }
    }

    /// A limiter whose expired counters a task sweeps away every minute, for as long as the
    /// limiter lives.
    pub fn start() -> std::sync::Arc<MemoryLimiter> {
        let limiter = std::sync::Arc::new(MemoryLimiter::default());
        let weak = std::sync::Arc::downgrade(&limiter);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(SWEEP_EVERY);
            tick.tick().await;
            loop {
                tick.tick().await;
                match weak.upgrade() {
                    Some(limiter) => limiter.sweep(Instant::now()),
                    None => return,
                }
            }
        });
        limiter
    }

    /// Drops every counter whose window has ended.
    pub fn sweep(&self, now: Instant) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.by_key.retain(|_, c| c.ends > now);
        let Counters { by_key, by_age, .. } = &mut *state;
        by_age.retain(|(key, generation)| {
            by_key.get(key).is_some_and(|c| c.generation == *generation)
        });
    }

    /// How many counters are kept (for tests and the cap).
    pub fn len(&self) -> usize {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .by_key
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn hit_at(&self, key: &str, limit: u32, window: Duration, now: Instant) -> Option<Duration> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let live = state.by_key.get(key).is_some_and(|c| c.ends > now);
        if !live {
            while state.by_key.len() >= self.cap && !state.by_key.contains_key(key) {
                let Some((oldest, generation)) = state.by_age.pop_front() else {
                    break;
                };
                if state
                    .by_key
                    .get(&oldest)
                    .is_some_and(|c| c.generation == generation)
                {
                    state.by_key.remove(&oldest);
                }
            }
            state.generation += 1;
            let generation = state.generation;
            state.by_key.insert(
                key.to_string(),
                Counter {
                    ends: now + window,
                    count: 0,
                    generation,
                },
            );
            state.by_age.push_back((key.to_string(), generation));
        }
        let counter = state.by_key.get_mut(key)?;
        counter.count = counter.count.saturating_add(1);
        (counter.count > limit).then(|| counter.ends - now)
    }
}

#[async_trait]
impl RateLimiter for MemoryLimiter {
    async fn hit(&self, key: &str, limit: u32, window: Duration) -> Option<Duration> {
        self.hit_at(key, limit, window, Instant::now())
    }

    async fn give_back(&self, key: &str) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(counter) = state.by_key.get_mut(key) {
            counter.count = counter.count.saturating_sub(1);
        }
    }

    async fn reset(&self, key: &str) {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .by_key
            .remove(key);
    }
}

/// Counters in Redis, shared by every node that uses the same `redis_url` and prefix. One Lua
/// script makes "count, start the window if new, say how long is left" a single atomic step.
///
/// Redis is a dependency outside brama, so it gets a breaker (SPEC §9): a call that fails or
/// has no answer within `REDIS_WITHIN` opens it, and until a background probe finds Redis
/// answering again every call goes straight to this node's own [`MemoryLimiter`]. Limits are
/// then per node instead of shared, never off, and a request never waits on a Redis that is
/// gone. `brama_redis_up` says which it is.
pub struct RedisLimiter {
    connection: redis::aio::ConnectionManager,
    prefix: String,
    hit: redis::Script,
    give_back: redis::Script,
    fallback: std::sync::Arc<MemoryLimiter>,
    /// Closed (Redis in use) while true.
    up: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

/// How long a call waits for Redis before this node counts in memory instead.
const REDIS_WITHIN: Duration = Duration::from_millis(150);
/// How often a probe asks a Redis that failed whether it is back.
const REDIS_PROBE_EVERY: Duration = Duration::from_millis(500);

impl RedisLimiter {
    pub async fn connect(url: &str, prefix: &str) -> Result<RedisLimiter, redis::RedisError> {
        let client = redis::Client::open(url)?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(REDIS_WITHIN)
            .set_response_timeout(REDIS_WITHIN)
            .set_number_of_retries(1);
        let connection = redis::aio::ConnectionManager::new_with_config(client, config).await?;
        let hit = redis::Script::new(
            r"local n = redis.call('INCR', KEYS[1])
              if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
              local ttl = redis.call('PTTL', KEYS[1])
              if ttl < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]); ttl = tonumber(ARGV[1]) end
              return {n, ttl}",
        );
        // Only a counter that still exists is decremented (one that expired meanwhile stays
        // gone), and never below zero: a hit counted by the fallback while Redis was down, or
        // by a Redis that restarted empty since, must not give this counter spare attempts
        // (`bench/chaos` saw one at -1).
        let give_back = redis::Script::new(
            r"local n = tonumber(redis.call('GET', KEYS[1]))
              if n and n > 0 then return redis.call('DECR', KEYS[1]) end
              return 0",
        );
        metrics::gauge!("brama_redis_up").set(1.0);
        Ok(RedisLimiter {
            connection,
            prefix: prefix.to_string(),
            hit,
            give_back,
            fallback: MemoryLimiter::start(),
            up: std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true)),
        })
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    fn is_up(&self) -> bool {
        self.up.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Runs one Redis call within `REDIS_WITHIN`; `None` (and the breaker open) if it failed.
    async fn call<T>(
        &self,
        what: &'static str,
        call: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Option<T> {
        let error = match tokio::time::timeout(REDIS_WITHIN, call).await {
            Ok(Ok(value)) => return Some(value),
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("no answer within {} ms", REDIS_WITHIN.as_millis()),
        };
        self.trip(what, &error);
        None
    }

    /// Opens the breaker (once) and starts the probe that closes it when Redis answers again.
    fn trip(&self, what: &'static str, error: &str) {
        use std::sync::atomic::Ordering;
        if self
            .up
            .compare_exchange(true, false, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return;
        }
        metrics::gauge!("brama_redis_up").set(0.0);
        tracing::error!(
            error,
            during = what,
            "Redis rate limiter unavailable; counting on this node until it is back"
        );
        let up = std::sync::Arc::clone(&self.up);
        let mut conn = self.connection.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(REDIS_PROBE_EVERY).await;
                let ping_cmd = redis::cmd("PING");
                let ping = ping_cmd.query_async::<String>(&mut conn);
                if let Ok(Ok(_)) = tokio::time::timeout(REDIS_WITHIN, ping).await {
                    up.store(true, Ordering::Release);
                    metrics::gauge!("brama_redis_up").set(1.0);
                    tracing::info!("Redis rate limiter is back");
                    return;
                }
            }
        });
    }
}

fn window_ms(window: Duration) -> u64 {
    u64::try_from(window.as_millis()).unwrap_or(u64::MAX).max(1)
}

#[async_trait]
impl RateLimiter for RedisLimiter {
    async fn hit(&self, key: &str, limit: u32, window: Duration) -> Option<Duration> {
        if self.is_up() {
            let mut conn = self.connection.clone();
            let key = self.key(key);
            let counted = self
                .call("hit", async {
                    self.hit
                        .key(&key)
                        .arg(window_ms(window))
                        .invoke_async::<(u64, i64)>(&mut conn)
                        .await
                })
                .await;
            if let Some((count, ttl)) = counted {
                return (count > u64::from(limit))
                    .then(|| Duration::from_millis(ttl.max(1).unsigned_abs()));
            }
        }
        self.fallback.hit(key, limit, window).await
    }

    async fn give_back(&self, key: &str) {
        if self.is_up() {
            let mut conn = self.connection.clone();
            let key = self.key(key);
            let given = self
                .call("give_back", async {
                    self.give_back
                        .key(&key)
                        .invoke_async::<i64>(&mut conn)
                        .await
                })
                .await;
            if given.is_some() {
                return;
            }
        }
        self.fallback.give_back(key).await;
    }

    async fn reset(&self, key: &str) {
        // The counter may be in either place (counted before or during an outage).
        self.fallback.reset(key).await;
        if self.is_up() {
            let mut conn = self.connection.clone();
            let key = self.key(key);
            self.call("reset", async move {
                redis::cmd("DEL")
                    .arg(key)
                    .query_async::<()>(&mut conn)
                    .await
            })
            .await;
        }
    }
}

/// The part of a client's address that limits count against: an IPv4 address whole, an IPv6
/// address by its first `ipv6_prefix_len` bits (a /64 is one customer's network, and would
/// otherwise give an attacker 2^64 budgets). An IPv4 address mapped into IPv6 counts as IPv4.
pub fn address_key(ip: std::net::IpAddr, ipv6_prefix_len: u8) -> String {
    match ip.to_canonical() {
        std::net::IpAddr::V4(v4) => v4.to_string(),
        std::net::IpAddr::V6(v6) => {
            let bits = u32::from(ipv6_prefix_len.min(128));
            let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
            let network = std::net::Ipv6Addr::from(u128::from(v6) & mask);
            format!("{network}/{bits}")
        }
    }
}

/// A login attempt counted against the failure budgets it draws on.
pub(crate) struct LoginAttempt {
    account_key: Option<String>,
    ip_key: Option<String>,
}

impl crate::core::Core {
    /// The limiter key of the client's address for `kind` of limit, if its address is known.
    fn address_limit_key(&self, kind: &str, client: &crate::core::Client) -> Option<String> {
        client
            .ip
            .map(|ip| format!("{kind}:ip:{}", address_key(ip, self.config.ipv6_prefix_len)))
    }

    /// Counts one event against `key`; a refusal of `kind` if it went over `limit`.
    async fn count(
        &self,
        kind: &'static str,
        key: &str,
        limit: u32,
        window: Duration,
    ) -> crate::core::CoreResult<()> {
        match self.limiter.hit(key, limit, window).await {
            None => Ok(()),
            Some(wait) => {
                crate::telemetry::count_rate_limited(kind);
                Err(crate::core::CoreError::RateLimited {
                    retry_after_secs: retry_after_secs(wait),
                })
            }
        }
    }

    /// Counts a WebAuthn sign-in ceremony started without an account's token (each stores a
    /// row until it is finished or expires) against the client's address: ten for every failed
    /// login the address is allowed in the same window, so that a person who cancels their
    /// authenticator a few times is never refused, and a script cannot fill the table.
    pub(crate) async fn count_ceremony_start(
        &self,
        client: &crate::core::Client,
    ) -> crate::core::CoreResult<()> {
        let Some(key) = self.address_limit_key("webauthn", client) else {
            return Ok(());
        };
        let limit = self.config.failed_logins_per_ip.saturating_mul(10);
        let window = Duration::from_secs(self.config.failed_login_window_secs);
        self.count("webauthn", &key, limit, window).await
    }

    /// Counts a registration (Membership or company sign-up) against the client's address.
    pub(crate) async fn count_registration(
        &self,
        client: &crate::core::Client,
    ) -> crate::core::CoreResult<()> {
        let Some(key) = self.address_limit_key("register", client) else {
            return Ok(());
        };
        let limit = self.config.registrations_per_ip_per_hour;
        self.count("registration", &key, limit, Duration::from_secs(3600))
            .await
    }

    /// Counts one `kind` event against the client's address and then the email address `key`;
    /// the wait if either is over its limit. A client already over its own limit adds no
    /// counter for the addresses it names, so a flood of made-up addresses from one client
    /// cannot fill the limiter.
    pub(crate) async fn hit_address_and_ip(
        &self,
        kind: &str,
        key: &str,
        client: &crate::core::Client,
        limit: u32,
        window: Duration,
    ) -> Option<Duration> {
        if let Some(ip_key) = self.address_limit_key(kind, client)
            && let Some(wait) = self.limiter.hit(&ip_key, limit, window).await
        {
            return Some(wait);
        }
        self.limiter
            .hit(&format!("{kind}:address:{key}"), limit, window)
            .await
    }

    /// Counts a login attempt (or a password check by a logged-in account) before anything is
    /// hashed: first against the client's address, then against the account's budget
    /// (`account`: its id, so that its username and its email share one) or, for a name no
    /// account has, the name's. Refused if either is spent: of N attempts at once, at most the
    /// budget reach the hasher. A client over its own budget adds no counter for the names it
    /// tries.
    pub(crate) async fn reserve_login_attempt(
        &self,
        account: Result<&str, &str>,
        client: &crate::core::Client,
    ) -> crate::core::CoreResult<LoginAttempt> {
        let mut attempt = self.reserve_address_attempt(client).await?;
        let window = Duration::from_secs(self.config.failed_login_window_secs);
        let account_key = match account {
            Ok(id) => format!("login:account:{id}"),
            Err(name) => format!("login:name:{name}"),
        };
        let limit = self.config.failed_logins_per_account;
        self.count("login", &account_key, limit, window).await?;
        attempt.account_key = Some(account_key);
        Ok(attempt)
    }

    /// The attempt was right: the account's failures are forgotten and the IP gets its place
    /// back, so that many people behind one address do not use up each other's budget.
    pub(crate) async fn login_attempt_succeeded(&self, attempt: LoginAttempt) {
        if let Some(key) = &attempt.account_key {
            self.limiter.reset(key).await;
        }
        if let Some(key) = &attempt.ip_key {
            self.limiter.give_back(key).await;
        }
    }

    /// The password was right but a second factor is still due: the address gets its place
    /// back (many people behind one address), the account's count stays until the second
    /// factor is proven, so that a password alone cannot wipe the count of wrong codes.
    pub(crate) async fn login_attempt_half_done(&self, attempt: LoginAttempt) {
        if let Some(key) = &attempt.ip_key {
            self.limiter.give_back(key).await;
        }
    }

    /// Counts an attempt with a guessable secret that is not a password (an emailed link's
    /// token) against the client's address, as a failed login of the address would be.
    pub(crate) async fn reserve_address_attempt(
        &self,
        client: &crate::core::Client,
    ) -> crate::core::CoreResult<LoginAttempt> {
        let window = Duration::from_secs(self.config.failed_login_window_secs);
        let ip_key = self.address_limit_key("login", client);
        if let Some(key) = &ip_key {
            self.count("login", key, self.config.failed_logins_per_ip, window)
                .await?;
        }
        Ok(LoginAttempt {
            account_key: None,
            ip_key,
        })
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
    fn each_counter_keeps_its_own_window() {
        let l = MemoryLimiter::default();
        let t0 = Instant::now();
        let hour = Duration::from_secs(3600);
        let quarter = Duration::from_secs(900);
        assert!(l.hit_at("register", 1, hour, t0).is_none());
        assert!(l.hit_at("register", 1, hour, t0).is_some());
        // Later, a short window starts and a sweep runs: the hourly counter is not its business.
        let t1 = t0 + Duration::from_secs(3000);
        assert!(l.hit_at("login", 5, quarter, t1).is_none());
        l.sweep(t1);
        assert!(l.hit_at("register", 1, hour, t1).is_some(), "still over");
        // Once its own hour has passed, it starts over.
        l.sweep(t0 + hour + Duration::from_secs(1));
        assert_eq!(l.len(), 1, "the login counter lives on");
        assert!(
            l.hit_at("register", 1, hour, t0 + hour + Duration::from_secs(1))
                .is_none()
        );
    }

    #[test]
    fn the_oldest_counters_go_when_the_cap_is_reached() {
        let l = MemoryLimiter::with_cap(3);
        let t = Instant::now();
        let w = Duration::from_secs(60);
        for key in ["a", "b", "c"] {
            l.hit_at(key, 1, w, t);
        }
        // "a" restarts (still the same window here) and "d" arrives: "a" is the oldest, it goes.
        l.hit_at("a", 1, w, t);
        l.hit_at("d", 1, w, t);
        assert_eq!(l.len(), 3);
        assert!(l.hit_at("b", 1, w, t).is_some(), "b is kept, and over");
        assert!(l.hit_at("a", 1, w, t).is_none(), "a went, and starts over");
    }

    #[test]
    fn ipv6_clients_count_by_their_network() {
        let key = |ip: &str, bits| address_key(ip.parse().unwrap(), bits);
        assert_eq!(key("203.0.113.9", 64), "203.0.113.9");
        assert_eq!(key("::ffff:203.0.113.9", 64), "203.0.113.9");
        assert_eq!(key("2001:db8:1:2:3:4:5:6", 64), "2001:db8:1:2::/64");
        assert_eq!(key("2001:db8:1:2:ffff::1", 64), "2001:db8:1:2::/64");
        assert_eq!(key("2001:db8:1:3::1", 64), "2001:db8:1:3::/64");
        assert_eq!(key("2001:db8:1:2:3:4:5:6", 48), "2001:db8:1::/48");
        assert_eq!(key("2001:db8::1", 128), "2001:db8::1/128");
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_secs(5)), 5);
    }
}
