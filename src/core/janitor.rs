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
//! | second-factor login tickets (`mfaToken`) | once expired (5 minutes) |
//!
//! Rate-limit counters are not in the database: Redis expires its keys, and the in-memory
//! limiter sweeps its own ([`super::limits::MemoryLimiter`]).
//!
//! Every node runs the janitor, but a pass needs the lease `janitor` (a row of the `leases`
//! table, the same on SQLite and PostgreSQL), so one node at a time does the work; the holder
//! renews it while it works and keeps it from pass to pass. A node that stops gives it up (so a
//! restarted node, with its new name, need not wait); if a node dies, another takes over once
//! the lease has run out. Each batch is its own short transaction with a rest after
//! it, so the writes of requests (on SQLite, one writer at a time) wait at most one batch.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Core, CoreResult, now_ms};
use crate::store::{LinkKind, Litter};

/// The first pass, a moment after start-up (an upgrade's backlog goes at once).
const FIRST_PASS_AFTER: Duration = Duration::from_secs(2);
/// Then a pass every ten minutes.
const EVERY: Duration = Duration::from_secs(600);
/// Rows deleted per transaction: a millisecond or two of the writer's time (200 measurably
/// lengthened the refresh tail on SQLite; bench/NOTES.md).
const BATCH: i64 = 100;
/// Ended sessions taken at a time; their tokens go `BATCH` at a time, then they do.
const SESSIONS_PER_BATCH: i64 = 20;
/// After each full batch the janitor rests 49 times as long as the batch took (waiting for the
/// writer included), and at least `MIN_PAUSE`: it takes at most 2% of the database's (and, on
/// SQLite, of the process's) time, and less the busier the server is, so that requests do not
/// notice it (BENCHMARKS.md, "The janitor under refresh traffic"; 5% moved refresh p99 on
/// SQLite). Under a saturating refresh load that is still ~150 rows a second, idle far more.
const REST_PER_WORK: u32 = 49;
const MIN_PAUSE: Duration = Duration::from_millis(10);
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
    pub email_changes: u64,
    pub outbox: u64,
    pub audit_events: u64,
    pub mfa_tickets: u64,
    pub webauthn_ceremonies: u64,
    /// OpenID Connect authorization requests and codes.
    pub oidc: u64,
}

impl Tidied {
    pub fn total(&self) -> u64 {
        self.refresh_tokens
            + self.sessions
            + self.reset_links
            + self.activation_links
            + self.email_changes
            + self.outbox
            + self.audit_events
            + self.mfa_tickets
            + self.webauthn_ceremonies
            + self.oidc
    }

    fn of(&mut self, litter: Litter) -> &mut u64 {
        match litter {
            Litter::Links(LinkKind::PasswordReset) => &mut self.reset_links,
            Litter::Links(LinkKind::Activation) => &mut self.activation_links,
            Litter::Links(LinkKind::EmailChange) => &mut self.email_changes,
            Litter::OutboxExpired | Litter::OutboxSent => &mut self.outbox,
            Litter::AuditEvents => &mut self.audit_events,
            Litter::MfaTickets => &mut self.mfa_tickets,
            Litter::WebauthnCeremonies => &mut self.webauthn_ceremonies,
            Litter::OidcRequests | Litter::OidcCodes => &mut self.oidc,
        }
    }
}

/// The label of `brama_janitor_deleted_total`.
fn label(litter: Litter) -> &'static str {
    match litter {
        Litter::Links(LinkKind::PasswordReset) => "reset_links",
        Litter::Links(LinkKind::Activation) => "activation_links",
        Litter::Links(LinkKind::EmailChange) => "email_changes",
        Litter::OutboxExpired | Litter::OutboxSent => "outbox",
        Litter::AuditEvents => "audit_events",
        Litter::MfaTickets => "mfa_tickets",
        Litter::WebauthnCeremonies => "webauthn_ceremonies",
        Litter::OidcRequests => "oidc_requests",
        Litter::OidcCodes => "oidc_codes",
    }
}

fn count_deleted(what: &'static str, n: u64) {
    if n > 0 {
        metrics::counter!("brama_janitor_deleted_total", "what" => what).increment(n);
    }
}

/// Paces the janitor: each batch of work is followed by a rest (see `REST_PER_WORK`).
struct Pace {
    began: Instant,
}

impl Pace {
    fn start() -> Pace {
        Pace {
            began: Instant::now(),
        }
    }

    async fn rest(self) {
        tokio::time::sleep(MIN_PAUSE.max(self.began.elapsed() * REST_PER_WORK)).await;
    }
}

impl Core {
    /// When sessions that ended before it no longer matter, at `now`: their used refresh tokens
    /// kept reuse detection going for `refresh_token_days` after the end.
    fn ended_sessions_cut(&self, now: i64) -> i64 {
        now - i64::from(self.config.refresh_token_days) * DAY_MS
    }

    /// Each other kind of litter with the time before which it no longer matters, at `now`.
    fn litter_cuts(&self, now: i64) -> [(Litter, i64); 10] {
        [
            (Litter::Links(LinkKind::PasswordReset), now),
            (Litter::Links(LinkKind::Activation), now),
            (Litter::Links(LinkKind::EmailChange), now),
            (Litter::OutboxExpired, now),
            (Litter::OutboxSent, now - DAY_MS),
            (
                Litter::AuditEvents,
                now - i64::from(self.config.audit_retention_days) * DAY_MS,
            ),
            (Litter::MfaTickets, now),
            (Litter::WebauthnCeremonies, now),
            (Litter::OidcRequests, now),
            // A used code is kept an hour past its minute, so that it coming again is still
            // seen as a replay and revokes what it issued (SPEC §14).
            (Litter::OidcCodes, now - 3600 * 1000),
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

    /// Gives up this node's lease, if it has it, so that another node's next pass may take it
    /// at once (a node stopping; a node that dies leaves it to run out).
    pub async fn release_janitor_lease(&self) -> CoreResult<()> {
        let mut tx = self.begin().await?;
        tx.release_lease(LEASE_NAME, &self.node).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn sweep(&self, now: i64, leased: bool) -> CoreResult<Tidied> {
        let mut lease = Lease {
            core: self,
            leased,
            now,
            started: Instant::now(),
            renewed: Instant::now(),
        };
        let mut tidied = Tidied::default();
        let cut = self.ended_sessions_cut(now);
        loop {
            if !lease.keep().await? {
                return Ok(tidied);
            }
            let pace = Pace::start();
            let mut tx = self.begin().await?;
            let (tokens, sessions) = tx
                .delete_ended_sessions(cut, SESSIONS_PER_BATCH, BATCH)
                .await?;
            tx.commit().await?;
            tidied.refresh_tokens += tokens;
            tidied.sessions += sessions;
            count_deleted("refresh_tokens", tokens);
            count_deleted("sessions", sessions);
            if tokens == 0 && sessions == 0 {
                break;
            }
            pace.rest().await;
        }
        for (litter, cut) in self.litter_cuts(now) {
            loop {
                if !lease.keep().await? {
                    return Ok(tidied);
                }
                let pace = Pace::start();
                let mut tx = self.begin().await?;
                let deleted = tx.delete_litter(litter, cut, BATCH).await?;
                tx.commit().await?;
                *tidied.of(litter) += deleted;
                count_deleted(label(litter), deleted);
                if deleted < BATCH as u64 {
                    break;
                }
                pace.rest().await;
            }
        }
        Ok(tidied)
    }
}

/// The janitor's lease during a pass, renewed once a third of it has gone by.
struct Lease<'a> {
    core: &'a Core,
    leased: bool,
    now: i64,
    started: Instant,
    renewed: Instant,
}

impl Lease<'_> {
    /// False if another node has taken the lease (the pass must stop).
    async fn keep(&mut self) -> CoreResult<bool> {
        if !self.leased || self.renewed.elapsed() <= LEASE / 3 {
            return Ok(true);
        }
        let at = self.now + self.started.elapsed().as_millis() as i64;
        if !self.core.take_janitor_lease(at).await? {
            tracing::warn!("the janitor lost its lease to another node mid-pass");
            return Ok(false);
        }
        self.renewed = Instant::now();
        Ok(true)
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
                            email_changes = t.email_changes,
                            outbox = t.outbox,
                            audit_events = t.audit_events,
                            mfa_tickets = t.mfa_tickets,
                            webauthn_ceremonies = t.webauthn_ceremonies,
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
