//! The rules: accounts, sessions and tokens, rate limits, audit. Knows nothing of HTTP.

pub mod accounts;
pub mod admin;
pub mod company;
pub mod error;
pub mod limits;
pub mod mail;
pub mod members;
pub mod members_csv;
pub mod sessions;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

pub use error::{CoreError, CoreResult};

use crate::config::Config;
use crate::crypto::csrf::CsrfKey;
use crate::crypto::hasher::{HashParams, PasswordHasher};
use crate::crypto::jwt::KeyRing;
use crate::store::{AuditEvent, DynStore};
use limits::RateLimiter;

/// Roles in rising order of power.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    User,
    Moderator,
    Admin,
    Owner,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Moderator => "moderator",
            Role::Admin => "admin",
            Role::Owner => "owner",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "user" => Some(Role::User),
            "moderator" => Some(Role::Moderator),
            "admin" => Some(Role::Admin),
            "owner" => Some(Role::Owner),
            _ => None,
        }
    }
}

/// Who is asking, as far as the transport can tell.
#[derive(Debug, Clone, Default)]
pub struct Client {
    pub ip: Option<IpAddr>,
    pub user_agent: Option<String>,
}

/// Unix milliseconds now.
pub fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// Unix milliseconds as RFC 3339, the form every surface shows times in.
pub fn rfc3339(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Everything the rules need, shared by every surface and request.
pub struct Core {
    pub config: Config,
    pub store: DynStore,
    pub hasher: PasswordHasher,
    pub keys: KeyRing,
    pub csrf: CsrfKey,
    pub limiter: Arc<dyn RateLimiter>,
    /// SMTP or the outbox.
    pub mailer: mail::Mailer,
    /// `strict_revocation`: session liveness seen in the last second, by session id.
    session_cache: Mutex<HashMap<String, (bool, Instant)>>,
    /// Accounts read in the last second, by id: `/me` on a hot path need not hit the database
    /// for every request. Changes made on this node drop their entry at once.
    account_cache: Mutex<HashMap<String, (crate::store::AccountRecord, Instant)>>,
    /// Last time an unknown `kid` made us re-read the keys, to bound reloads.
    last_key_reload: Mutex<Option<Instant>>,
}

impl Core {
    /// Starts the hashing threads and loads keys and secrets from the store.
    pub async fn build(config: Config, store: DynStore) -> Result<Arc<Core>, StartupError> {
        let params = HashParams {
            memory_kib: config.argon2_memory_kib,
            iterations: config.argon2_iterations,
            parallelism: config.argon2_parallelism,
        };
        let hasher = PasswordHasher::start(params, config.hash_workers, config.hash_queue)?;
        let keys = KeyRing::load(&store, &config.issuer(), &config.audience, now_ms()).await?;
        let csrf_secret = store
            .secret_or_insert("csrf", &crate::crypto::random_token(), now_ms())
            .await?;
        let csrf = CsrfKey::new(csrf_secret.into_bytes());
        let limiter: Arc<dyn RateLimiter> =
            match config.redis_url.as_deref().filter(|u| !u.is_empty()) {
                Some(url) => Arc::new(
                    limits::RedisLimiter::connect(url, &config.redis_key_prefix)
                        .await
                        .map_err(|e| format!("invalid setting `redis_url`: cannot connect: {e}"))?,
                ),
                None => Arc::new(limits::MemoryLimiter::default()),
            };
        let mailer = mail::Mailer::from_config(&config)?;
        Ok(Arc::new(Core {
            config,
            store,
            hasher,
            keys,
            csrf,
            limiter,
            mailer,
            session_cache: Mutex::new(HashMap::new()),
            account_cache: Mutex::new(HashMap::new()),
            last_key_reload: Mutex::new(None),
        }))
    }

    fn cached_account(&self, id: &str) -> Option<crate::store::AccountRecord> {
        let cache = self.account_cache.lock().unwrap_or_else(|p| p.into_inner());
        cache
            .get(id)
            .filter(|(_, seen)| seen.elapsed() < ACCOUNT_CACHE_TTL)
            .map(|(a, _)| a.clone())
    }

    fn remember_account(&self, account: &crate::store::AccountRecord) {
        let mut cache = self.account_cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() > 50_000 {
            cache.retain(|_, (_, seen)| seen.elapsed() < ACCOUNT_CACHE_TTL);
        }
        cache.insert(account.id.clone(), (account.clone(), Instant::now()));
    }

    /// Drops this node's copy of an account it has just changed.
    pub(crate) fn forget_account(&self, id: &str) {
        self.account_cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
    }

    /// Writes an audit event; a failure is logged, not returned, so it never undoes the action.
    pub async fn audit(&self, event: AuditEvent) {
        let action = event.action;
        if let Err(e) = self.store.record_audit(event, now_ms()).await {
            tracing::error!(error = %e, action, "could not record audit event");
        }
    }
}

/// How long `/me` trusts an account it read (the same bound as strict revocation's sessions).
const ACCOUNT_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(1);

/// Anything that stops start-up; printed with its message and the process exits.
pub type StartupError = Box<dyn std::error::Error + Send + Sync>;
