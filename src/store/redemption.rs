//! The code exchange's two trips to the database, each taken in batches as `store::rotation`
//! takes rotations: exchanges that arrive while a batch is read or written wait and go
//! together, one statement for all. Alone, an exchange goes at once.
//!
//! - The read (`Store::oidc_code_grant`; `SqliteStore`'s and `PostgresStore`'s `read_grants`):
//!   the codes of a batch in one `SELECT`, each requester answered from its code's row, one
//!   batch at a time ([`GRANT_READS_IN_FLIGHT`]).
//! - The write (`Store::redeem_oidc_code`; `redeem_batch`): group commit, one statement and one
//!   commit for a batch.
//!
//! Every redemption is still all-or-nothing and guards itself: the statement spends a code
//! only if it is unused and its browser session lives, notes on it the grant session of this
//! request, opens that session only from a code that names it, and its refresh token only
//! with the session. A code already used (by an earlier batch, another node, or earlier in
//! this statement) opens nothing. Two requests for one code never go into one batch: the later
//! follows the batch and is answered "not redeemed", as if it had come a moment later.

use std::collections::{HashMap, HashSet};

use super::rotation::Batched;
use super::sql::CodeGrantRow;
use super::{NewRefreshToken, NewSession, OidcCodeGrant, StoreError, StoreResult};

/// How many batches of reads one node has in flight. One: each exchange's read was a round
/// trip of its own, and the answers came one by one, each waking brama's thread, and on
/// PostgreSQL a backend that ran its query on brama's core (1.45 involuntary context switches
/// per exchange, 0.10 with reads in batches). With one batch at a time, the reads that come
/// meanwhile make the next batch: EdDSA exchange on PostgreSQL 94 → 81 µs of brama's CPU, p99
/// 15 → 25 ms at 64 connections. Four at a time made batches too small to matter (97 → 93 µs).
/// SQLite: no change either way (137 → 135 µs).
pub(crate) const GRANT_READS_IN_FLIGHT: usize = 1;

/// One code to read for its exchange at `now`, and where the answer goes.
pub(crate) struct GrantRead {
    pub code_hash: String,
    pub now: i64,
    pub reply: tokio::sync::oneshot::Sender<StoreResult<Option<OidcCodeGrant>>>,
}

impl Batched for GrantRead {
    fn key(&self) -> &str {
        &self.code_hash
    }

    fn abandoned(&self) -> bool {
        self.reply.is_closed()
    }
}

/// A read, through the batching task behind `queue`.
pub(crate) async fn read(
    queue: &tokio::sync::mpsc::Sender<GrantRead>,
    code_hash: &str,
    now: i64,
) -> StoreResult<Option<OidcCodeGrant>> {
    super::rotation::ask(queue, |reply| GrantRead {
        code_hash: code_hash.to_string(),
        now,
        reply,
    })
    .await
}

/// Answers every read of a batch, and its followers (a code read twice), from the rows of its
/// statement (`sql::OIDC_CODE_GRANT`), or with the statement's error.
pub(crate) fn answer_reads(
    batch: Vec<GrantRead>,
    followers: Vec<GrantRead>,
    rows: StoreResult<Vec<CodeGrantRow>>,
) {
    match rows {
        Ok(rows) => {
            let rows: HashMap<&str, &CodeGrantRow> =
                rows.iter().map(|r| (r.code_hash.as_str(), r)).collect();
            for r in batch.into_iter().chain(followers) {
                let grant = rows.get(r.code_hash.as_str()).map(|row| row.at(r.now));
                let _ = r.reply.send(Ok(grant));
            }
        }
        Err(e) => {
            for r in batch.into_iter().chain(followers) {
                let _ = r.reply.send(Err(e.for_another()));
            }
        }
    }
}

/// One authorization code to spend, the grant its exchange opens, and where the answer goes.
pub(crate) struct RedeemRequest {
    pub code_hash: String,
    pub session: NewSession,
    /// The grant's first refresh token (`None` without `offline_access`).
    pub token: Option<NewRefreshToken>,
    pub reply: tokio::sync::oneshot::Sender<StoreResult<bool>>,
}

impl Batched for RedeemRequest {
    fn key(&self) -> &str {
        &self.code_hash
    }

    fn abandoned(&self) -> bool {
        self.reply.is_closed()
    }
}

/// A redemption, through the batching task behind `queue`.
pub(crate) async fn redeem(
    queue: &tokio::sync::mpsc::Sender<RedeemRequest>,
    code_hash: &str,
    session: &NewSession,
    token: Option<&NewRefreshToken>,
) -> StoreResult<bool> {
    super::rotation::ask(queue, |reply| RedeemRequest {
        code_hash: code_hash.to_string(),
        session: session.clone(),
        token: token.cloned(),
        reply,
    })
    .await
}

/// Answers every request of a batch from the ids of the grant sessions its statement opened,
/// or with the statement's error (then nothing of the batch was kept: every code stays
/// unused). `followers` are answered "not redeemed".
pub(crate) fn answer(
    batch: Vec<RedeemRequest>,
    followers: Vec<RedeemRequest>,
    opened: StoreResult<Vec<String>>,
) {
    match opened {
        Ok(opened) => {
            let opened: HashSet<String> = opened.into_iter().collect();
            for r in batch {
                let _ = r.reply.send(Ok(opened.contains(&r.session.id)));
            }
            for r in followers {
                let _ = r.reply.send(Ok(false));
            }
        }
        Err(e) => {
            if matches!(e, StoreError::Database(_)) {
                tracing::error!(error = %e, exchanges = batch.len(), "spending authorization codes failed");
            }
            for r in batch.into_iter().chain(followers) {
                let _ = r.reply.send(Err(e.for_another()));
            }
        }
    }
}
