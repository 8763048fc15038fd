//! The rules: accounts, sessions and tokens, members, companies, rate limits, audit. Knows
//! nothing of HTTP, and formats no message for a person (emails aside, from the catalogs).
//!
//! Each operation takes typed commands (parsed by a surface), decides, and writes through one
//! store transaction ([`crate::store::Tx`]) together with its audit event, so that it happens
//! whole or not at all, even when the client hangs up half-way. Where each rule lives:
//!
//! | rule | place |
//! |---|---|
//! | which role may do what (SPEC §2) | [`actor::Permission`] impls |
//! | a new account's role, the owner bootstrap | [`accounts::role_for_new_account`] |
//! | who may change whose role or status | [`admin::check_account_change`] |
//! | what a refused refresh token means (reuse, grace, expiry) | [`sessions::refusal`] |
//! | how many sessions an account keeps | [`sessions::sessions_to_end`] |
//! | which status may log in, which an admin may set | [`crate::domain::AccountStatus`] |
//! | when a single-use link is spent | [`accounts::live_link`] |
//! | what must pass before a password is hashed | [`limits`]' login budgets, `Core::live_link_or` |
//! | what a member search matches | [`members::search_text`] |
//! | claimable refresh token (the atomic claim) | `store::sql::claimable`, the one SQL rule |
//! | what may be deleted, and when | [`janitor`] (`Core::litter_cuts`) |

pub mod accounts;
pub mod actor;
pub mod admin;
pub mod audit;
mod audit_queue;
pub mod company;
pub mod data_key;
pub mod error;
pub mod janitor;
pub mod limits;
pub mod mail;
pub mod members;
pub mod members_csv;
pub mod members_xlsx;
pub mod mfa;
pub mod oauth;
pub mod oidc;
pub mod passkeys;
pub mod profile;
pub(crate) mod search_plan;
pub mod sessions;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

pub use actor::{Actor, Caller, Granted};
pub use audit::AuditAction;
pub use error::{CoreError, CoreResult};

pub use crate::domain::{AccountStatus, OrganizationStatus, RevokeReason, Role};
/// What the core answers with: the rows as stored, read-only to the surfaces.
pub use crate::store::{
    AccountRecord, AuditRecord, DEFAULT_ORGANIZATION, MemberRecord, MemberSort, OutboxRecord,
    SessionRecord,
};

use crate::config::Config;
use crate::crypto::csrf::CsrfKey;
use crate::crypto::hasher::{HashParams, PasswordHasher};
use crate::crypto::jwt::KeyRing;
use crate::store::{AuditEvent, DynStore, Tx};
use limits::RateLimiter;

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

/// Whether the database answers, for `/readyz`.
#[derive(Debug, Clone)]
pub struct Readiness {
    pub ready: bool,
    /// Why not: `database_unavailable` or `storage_full`.
    pub reason: Option<&'static str>,
    /// `sqlite` or `postgres`.
    pub backend: &'static str,
}

/// Everything the rules need, shared by every surface and request.
pub struct Core {
    pub config: Config,
    /// Private: every read and write goes through an operation of the core.
    store: DynStore,
    pub hasher: PasswordHasher,
    pub keys: KeyRing,
    pub csrf: CsrfKey,
    pub limiter: Arc<dyn RateLimiter>,
    /// SMTP or the outbox.
    pub mailer: mail::Mailer,
    /// `strict_revocation`: session liveness seen in the last second, by session id.
    session_cache: Mutex<HashMap<String, (bool, Instant)>>,
    /// Accounts read in the last second, by id: `/me` on a hot path need not hit the database
    /// for every request. Changes made on this node drop their entry at once. The ids come from
    /// tokens brama signed; foldhash rather than SipHash (issue 18).
    account_cache: Mutex<HashMap<String, (Arc<SeenAccount>, Instant), foldhash::fast::RandomState>>,
    /// OpenID Connect clients the token endpoint authenticated in the last second, by id
    /// (`Core::token_client`). Removing one on this node drops its entry at once.
    client_cache: Mutex<HashMap<String, (oidc::OidcClient, Instant)>>,
    /// Last time an unknown `kid` made us re-read the keys, to bound reloads.
    last_key_reload: Mutex<Option<Instant>>,
    /// This node's name in the `leases` table (random, one per process start).
    node: String,
    /// When a write last found the storage full or read-only (Unix ms; 0: never), for `/readyz`.
    storage_full_at: std::sync::atomic::AtomicI64,
    /// Wakes this node's email delivery task when it queues an email.
    mail_due: tokio::sync::Notify,
    /// Encrypts members' PESELs and keys their blind index (`data_key`).
    data_keys: std::sync::RwLock<Arc<crate::crypto::datakey::DataKeys>>,
    /// Masked PESELs of members listed lately, by member id, each with the ciphertext it was
    /// opened from (`Core::open_masked`).
    masked_pesels: Mutex<HashMap<String, (String, String)>>,
    /// Audit events of reads, written in batches behind the answer.
    audit_queue: audit_queue::AuditQueue,
    /// The WebAuthn relying party (`public_url`'s host) for passkeys.
    webauthn: webauthn_rs::Webauthn,
    /// Which trigrams a sample of the members' search texts holds, to plan searches.
    search_sample: Arc<search_plan::SearchSample>,
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
        let mut tx = store.begin().await?;
        let csrf_secret = tx
            .secret_or_insert("csrf", &crate::crypto::random_token(), now_ms())
            .await?;
        tx.commit().await?;
        let csrf = CsrfKey::new(csrf_secret.into_bytes());
        let limiter: Arc<dyn RateLimiter> =
            match config.redis_url.as_deref().filter(|u| !u.is_empty()) {
                Some(url) => Arc::new(
                    limits::RedisLimiter::connect(url, &config.redis_key_prefix)
                        .await
                        .map_err(|e| format!("invalid setting `redis_url`: cannot connect: {e}"))?,
                ),
                None => limits::MemoryLimiter::start(),
            };
        let mailer = mail::Mailer::from_config(&config)?;
        let webauthn = passkeys::relying_party(&config)?;
        let data_keys = data_key::load(&config, &store).await?;
        data_key::encrypt_clear_pesels(&store, &data_keys).await?;
        members::refresh_search_texts(&store).await?;
        members::place_members(&store).await?;
        let audit_queue = audit_queue::AuditQueue::start(store.clone());
        Ok(Arc::new(Core {
            config,
            store,
            hasher,
            keys,
            csrf,
            limiter,
            mailer,
            session_cache: Mutex::new(HashMap::new()),
            account_cache: Mutex::new(HashMap::default()),
            client_cache: Mutex::new(HashMap::new()),
            last_key_reload: Mutex::new(None),
            node: uuid::Uuid::new_v4().to_string(),
            storage_full_at: std::sync::atomic::AtomicI64::new(0),
            mail_due: tokio::sync::Notify::new(),
            data_keys: std::sync::RwLock::new(Arc::new(data_keys)),
            masked_pesels: Mutex::new(HashMap::new()),
            audit_queue,
            webauthn,
            search_sample: Arc::default(),
        }))
    }

    /// Whether the database answers.
    /// A database that has not answered within 800 ms is not ready: `/readyz` answers within a
    /// second (SPEC §9), whatever `database_timeout` is.
    ///
    /// A node whose writes found the storage full within the last `STORAGE_FULL_FOR` is not
    /// ready either (it cannot log anyone in), with the reason `storage_full`; it is again once
    /// that long has passed without another such failure.
    pub async fn readiness(&self) -> Readiness {
        const READY_WITHIN: std::time::Duration = std::time::Duration::from_millis(800);
        const STORAGE_FULL_FOR: i64 = 30_000;
        let reachable = match tokio::time::timeout(READY_WITHIN, self.store.ping()).await {
            Ok(Ok(())) => true,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "database not reachable");
                false
            }
            Err(_) => {
                tracing::warn!("database did not answer within 800 ms");
                false
            }
        };
        let full_at = self
            .storage_full_at
            .load(std::sync::atomic::Ordering::Acquire);
        let reason = if !reachable {
            Some("database_unavailable")
        } else if full_at > 0 && now_ms() - full_at < STORAGE_FULL_FOR {
            Some("storage_full")
        } else {
            None
        };
        Readiness {
            ready: reason.is_none(),
            reason,
            backend: self.store.backend(),
        }
    }

    /// A request of this node was refused because the storage is full (the surfaces see it
    /// in their answers), for `/readyz`.
    pub fn storage_full_seen(&self) {
        self.storage_full_at
            .store(now_ms(), std::sync::atomic::Ordering::Release);
    }

    /// Re-reads the signing keys, picking up a `brama keys rotate` done on any node.
    pub async fn reload_keys(&self) -> CoreResult<()> {
        Ok(self.keys.reload(&self.store, now_ms()).await?)
    }

    /// Adds a new signing key of each kind (what `brama keys rotate` does); nodes sign with
    /// them after their next reload.
    pub async fn rotate_signing_key(&self) -> CoreResult<crate::crypto::jwt::RotatedKeys> {
        Ok(crate::crypto::jwt::rotate(&self.store, now_ms()).await?)
    }

    /// Every email in the outbox, oldest first.
    pub async fn outbox(&self) -> CoreResult<Vec<OutboxRecord>> {
        Ok(self.store.outbox().await?)
    }

    /// A write transaction: the unit of work of one operation.
    async fn begin(&self) -> CoreResult<Box<dyn Tx>> {
        Ok(self.store.begin().await?)
    }

    /// This node's copy of an account, shared rather than cloned: `/me` read every string of
    /// it (the password hash too) into a copy of its own on every request (issue 18).
    fn cached_account(&self, id: &str) -> Option<Arc<SeenAccount>> {
        let cache = self.account_cache.lock().unwrap_or_else(|p| p.into_inner());
        cache
            .get(id)
            .filter(|(_, seen)| seen.elapsed() < ACCOUNT_CACHE_TTL)
            .map(|(a, _)| Arc::clone(a))
    }

    fn remember_account(&self, account: &Arc<SeenAccount>) {
        let mut cache = self.account_cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() > 50_000 {
            cache.retain(|_, (_, seen)| seen.elapsed() < ACCOUNT_CACHE_TTL);
        }
        cache.insert(
            account.record.id.clone(),
            (Arc::clone(account), Instant::now()),
        );
    }

    /// Drops this node's copy of an account it has just changed.
    pub(crate) fn forget_account(&self, id: &str) {
        self.account_cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
    }

    /// Writes an audit event on its own, for events that belong to no other write (a failed
    /// login, an export). A failure is logged, not returned: it must not turn the answer into
    /// an error. Events of an operation that writes go into its transaction instead.
    async fn audit_alone(&self, event: AuditEvent) {
        let action = event.action;
        let written = async {
            let mut tx = self.store.begin().await?;
            tx.record_audit(&event, now_ms()).await?;
            tx.commit().await
        };
        if let Err(e) = written.await {
            tracing::error!(error = %e, action, "could not record audit event");
        }
    }
}

/// An account as this node read it, kept for `/me` ([`ACCOUNT_CACHE_TTL`]), with the answer
/// `/me` gives for it once the HTTP layer has written that.
pub struct SeenAccount {
    pub record: AccountRecord,
    /// `/me`'s body for `record` (it depends on the record alone), written on the first `/me`
    /// that reads this copy: later ones neither write JSON nor format a date (issue 18). A
    /// change made on this node drops the copy (`forget_account`), and the copy lives a second.
    pub me_answer: std::sync::OnceLock<Box<[u8]>>,
}

/// How long `/me` trusts an account it read (the same bound as strict revocation's sessions).
const ACCOUNT_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(1);

/// Anything that stops start-up; printed with its message and the process exits.
pub type StartupError = Box<dyn std::error::Error + Send + Sync>;
