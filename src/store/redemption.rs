//! Group commit for authorization-code redemption (`Store::redeem_oidc_code`), on both
//! backends, as `store::rotation` does for refresh tokens: exchanges that arrive while a batch
//! is written wait and go together, one statement and one commit for all (`SqliteStore`'s and
//! `PostgresStore`'s `redeem_batch`). Alone, an exchange goes at once.
//!
//! Every redemption is still all-or-nothing and guards itself: the statement spends a code
//! only if it is unused and its browser session lives, notes on it the grant session of this
//! request, opens that session only from a code that names it, and its refresh token only
//! with the session. A code already used (by an earlier batch, another node, or earlier in
//! this statement) opens nothing. Two requests for one code never go into one batch: the later
//! follows the batch and is answered "not redeemed", as if it had come a moment later.

use std::collections::HashSet;

use super::rotation::Batched;
use super::{NewRefreshToken, NewSession, StoreError, StoreResult};

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

/// Sends a redemption to the batching task behind `queue` and waits for its answer.
pub(crate) async fn redeem(
    queue: &tokio::sync::mpsc::Sender<RedeemRequest>,
    code_hash: &str,
    session: &NewSession,
    token: Option<&NewRefreshToken>,
) -> StoreResult<bool> {
    let (reply, answer) = tokio::sync::oneshot::channel();
    let request = RedeemRequest {
        code_hash: code_hash.to_string(),
        session: session.clone(),
        token: token.cloned(),
        reply,
    };
    let stopped = || StoreError::Database(sqlx::Error::PoolClosed);
    queue.send(request).await.map_err(|_| stopped())?;
    answer.await.map_err(|_| stopped())?
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
