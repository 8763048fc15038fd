//! The janitor: deletes, in small batches, what can no longer matter, so that the database does
//! not grow forever (1 000 members refreshing every 10 minutes write ~4 million refresh tokens a
//! month).
//!
//! | what | deleted |
//! |---|---|
//! | refresh tokens and sessions | `refresh_token_days` after the session ended (expired or was revoked); reuse detection needs the used tokens of live sessions only, and those stay |
//! | password-reset and activation links | once expired |
//! | outbox rows | once their link has expired; rows marked sent, a day after sending |
//! | audit events | after `audit_retention_days` |
//!
//! Rate-limit counters are not in the database: Redis expires its keys, and the in-memory
//! limiter sweeps its own ([`super::limits::MemoryLimiter`]).
//!
//! Every node runs the janitor, but a pass needs the lease `janitor` (a row of the `leases`
//! table, the same on SQLite and PostgreSQL), so one node at a time does the work; the holder
//! renews it while it works and keeps it from pass to pass, and if it dies another node takes
//! over once the lease has run out. Each batch is its own short transaction with a pause after
//! it, so the writes of requests (on SQLite, one writer at a time) wait at most one batch.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Core, CoreResult, now_ms};
use crate::store::{LinkKind, Litter};

/// The first pass, a moment after start-up (an upgrade's backlog goes at once).
const FIRST_PASS_AFTER: Duration = Duration::from_secs(2);
/// Then a pass every ten minutes.
const EVERY: Duration = Duration::from_secs(600);
/// Rows deleted per transaction.
const BATCH: i64 = 500;
/// Rest after a full batch, so that requests' writes go in between.
const PAUSE: Duration = Duration::from_millis(20);
/// How long a pass holds the lease; longer than `EVERY`, so the holder keeps it between passes.
const LEASE: Duration = Duration::from_secs(900);
const LEASE_NAME: &str = "janitor";
const DAY_MS: i64 = 24 * 3600 * 1000;

/// What one pass deleted.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Tidied {
    pub refresh_tokens: u64,
    pub sessions: u64,
    pub reset_links: u64,
    pub activation_links: u64,
    pub outbox: u64,
    pub audit_events: u64,
}

impl Tidied {
    pub fn total(&self) -> u64 {
        self.refresh_tokens
            + self.sessions
            + self.reset_links
            + self.activation_links
            + self.outbox
            + self.audit_events
    }

    fn of(&mut self, litter: Litter) -> &mut u64 {
        match litter {
            Litter::RefreshTokens => &mut self.refresh_tokens,
            Litter::Sessions => &mut self.sessions,
            Litter::Links(LinkKind::PasswordReset) => &mut self.reset_links,
            Litter::Links(LinkKind::Activation) => &mut self.activation_links,
            Litter::OutboxExpired | Litter::OutboxSent => &mut self.outbox,
            Litter::AuditEvents => &mut self.audit_events,
        }
    }
}

/// The label of `brama_janitor_deleted_total`.
fn label(litter: Litter) -> &'static str {
    match litter {
        Litter::RefreshTokens => "refresh_tokens",
        Litter::Sessions => "sessions",
        Litter::Links(LinkKind::PasswordReset) => "reset_links",
        Litter::Links(LinkKind::Activation) => "activation_links",
        Litter::OutboxExpired | Litter::OutboxSent => "outbox",
        Litter::AuditEvents => "audit_events",
    }
}

impl Core {
    /// Each kind of litter with the time before which it no longer matters, at `now`. Refresh
    /// tokens come before sessions: a session goes once its tokens have.
    fn litter_cuts(&self, now: i64) -> [(Litter, i64); 7] {
        let sessions = now - i64::from(self.config.refresh_token_days) * DAY_MS;
        [
            (Litter::RefreshTokens, sessions),
            (Litter::Sessions, sessions),
            (Litter::Links(LinkKind::PasswordReset), now),
            (Litter::Links(LinkKind::Activation), now),
            (Litter::OutboxExpired, now),
            (Litter::OutboxSent, now - DAY_MS),
            (
                Litter::AuditEvents,
                now - i64::from(self.config.audit_retention_days) * DAY_MS,
            ),
        ]
    }

    /// Deletes everything that no longer matters at `now`, whoever holds the lease (the janitor
    /// itself calls [`Core::janitor_pass`]).
    pub async fn tidy(&self, now: i64) -> CoreResult<Tidied> {
        self.sweep(now, false).await
    }

    /// One pass of this node's janitor at `now`; `None` if another node holds the lease.
    pub async fn janitor_pass(&self, now: i64) -> CoreResult<Option<Tidied>> {
        if !self.take_janitor_lease(now).await? {
            return Ok(None);
        }
        Ok(Some(self.sweep(now, true).await?))
    }

    async fn take_janitor_lease(&self, now: i64) -> CoreResult<bool> {
        let until = now + LEASE.as_millis() as i64;
        let mut tx = self.begin().await?;
        let taken = tx.take_lease(LEASE_NAME, &self.node, now, until).await?;
        tx.commit().await?;
        Ok(taken)
    }

    async fn sweep(&self, now: i64, leased: bool) -> CoreResult<Tidied> {
        let started = Instant::now();
        let mut renewed = started;
        let mut tidied = Tidied::default();
        for (litter, cut) in self.litter_cuts(now) {
            loop {
                if leased && renewed.elapsed() > LEASE / 3 {
                    let at = now + started.elapsed().as_millis() as i64;
                    if !self.take_janitor_lease(at).await? {
                        tracing::warn!("the janitor lost its lease to another node mid-pass");
                        return Ok(tidied);
                    }
                    renewed = Instant::now();
                }
                let mut tx = self.begin().await?;
                let deleted = tx.delete_litter(litter, cut, BATCH).await?;
                tx.commit().await?;
                *tidied.of(litter) += deleted;
                if deleted > 0 {
                    metrics::counter!("brama_janitor_deleted_total", "what" => label(litter))
                        .increment(deleted);
                }
                if deleted < BATCH as u64 {
                    break;
                }
                tokio::time::sleep(PAUSE).await;
            }
        }
        Ok(tidied)
    }
}

/// Runs the janitor on this node for as long as the process lives.
pub fn start(core: Arc<Core>) {
    tokio::spawn(async move {
        tokio::time::sleep(FIRST_PASS_AFTER).await;
        loop {
            let started = Instant::now();
            let result = match core.janitor_pass(now_ms()).await {
                Ok(Some(t)) => {
                    if t.total() > 0 {
                        tracing::info!(
                            refresh_tokens = t.refresh_tokens,
                            sessions = t.sessions,
                            reset_links = t.reset_links,
                            activation_links = t.activation_links,
                            outbox = t.outbox,
                            audit_events = t.audit_events,
                            seconds = started.elapsed().as_secs_f64(),
                            "janitor deleted what can no longer matter"
                        );
                    }
                    "done"
                }
                Ok(None) => "other_node",
                Err(e) => {
                    tracing::warn!(error = %e, "janitor pass failed; trying again later");
                    "failed"
                }
            };
            metrics::counter!("brama_janitor_passes_total", "result" => result).increment(1);
            tokio::time::sleep(EVERY).await;
        }
    });
}
