//! Group commit for refresh-token rotation and authorization-code redemption, on both
//! backends.
//!
//! A rotation is one small write, and what costs is around it: on SQLite a trip to sqlx's
//! worker thread and a commit, on PostgreSQL a round trip and a commit (a WAL flush). Rotations
//! that arrive while a batch is being written wait, and then go together: one statement, one
//! commit. Alone, a rotation goes at once, as a batch of one. Each backend writes a batch in
//! its own statement (`SqliteStore`'s and `PostgresStore`'s `rotate_batch`); what is shared is
//! here: forming batches ([`in_batches`], also for the code exchange's reads and writes of
//! `store::redemption`), and answering each requester from the statement's rows.
//!
//! Every rotation is still all-or-nothing: the statement inserts a successor only for a token
//! it claimed, and a token is claimed by one statement only. Two requests for the same token
//! never go into one batch: the later one follows the batch and then finds the token used.

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;

use sqlx::FromRow;

use super::{Claimed, StoreError, StoreResult};

/// A request that [`in_batches`] groups with others into one statement.
pub(crate) trait Batched: Send + 'static {
    /// What no two requests of one batch share (a token's hash, a code's): a request with the
    /// key of one already in the batch follows it instead.
    fn key(&self) -> &str;
    /// Its requester has gone: it is not written.
    fn abandoned(&self) -> bool;
}

/// One refresh token to rotate, and where its answer goes.
pub(crate) struct RotationRequest {
    pub token_hash: String,
    /// Whose sessions the token must be of (`None`: brama's own).
    pub client_id: Option<String>,
    pub next_hash: String,
    pub next_expires_at: i64,
    pub now: i64,
    pub reply: tokio::sync::oneshot::Sender<StoreResult<Option<Claimed>>>,
}

impl Batched for RotationRequest {
    fn key(&self) -> &str {
        &self.token_hash
    }

    fn abandoned(&self) -> bool {
        self.reply.is_closed()
    }
}

/// At most this many requests share one statement.
pub(crate) const BATCH: usize = 64;

/// Sends the request `make` builds around its reply channel to the batching task behind
/// `queue`, and waits for the answer; a store that has stopped answers `PoolClosed`.
pub(crate) async fn ask<R, T>(
    queue: &tokio::sync::mpsc::Sender<R>,
    make: impl FnOnce(tokio::sync::oneshot::Sender<StoreResult<T>>) -> R,
) -> StoreResult<T> {
    let (reply, answer) = tokio::sync::oneshot::channel();
    let stopped = || StoreError::Database(sqlx::Error::PoolClosed);
    queue.send(make(reply)).await.map_err(|_| stopped())?;
    answer.await.map_err(|_| stopped())?
}

/// A rotation, through the batching task behind `queue`.
pub(crate) async fn claim(
    queue: &tokio::sync::mpsc::Sender<RotationRequest>,
    token_hash: &str,
    next: &super::NewRefreshToken,
    now: i64,
    client_id: Option<&str>,
) -> StoreResult<Option<Claimed>> {
    ask(queue, |reply| RotationRequest {
        token_hash: token_hash.to_string(),
        client_id: client_id.map(str::to_owned),
        next_hash: next.token_hash.clone(),
        next_expires_at: next.expires_at,
        now,
        reply,
    })
    .await
}

/// Takes requests from `queue` and hands them to `write` in batches of distinct keys (at most
/// [`BATCH`]), at most `in_flight` batches at a time, each on a task of its own.
/// `write(batch, followers)` must answer every request of both: `followers` presented a key
/// of the batch again (so a copy of one token, sent many times, cannot fill the batches and
/// undo the grouping). Requests that come while every batch slot is taken wait and make the
/// next batch: the busier the server, the larger the batches. (A token presented again while
/// its first batch is in flight goes into a later batch, which on PostgreSQL waits for the
/// token's row lock and then finds it used; SQLite writes one batch at a time.)
///
/// A request whose requester has gone before its batch is formed is dropped unwritten: on
/// PostgreSQL that is a call cut off by its deadline (`store::deadline`), whose client was told
/// 503 and must not find its token rotated behind its back. (The core runs each rotation on a
/// task of its own, so a client that hangs up does not drop it.)
pub(crate) async fn in_batches<R, F, Fut>(
    mut queue: tokio::sync::mpsc::Receiver<R>,
    in_flight: usize,
    mut write: F,
) where
    R: Batched,
    F: FnMut(Vec<R>, Vec<R>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(in_flight));
    let mut waiting: VecDeque<R> = VecDeque::new();
    loop {
        if waiting.is_empty() {
            match queue.recv().await {
                Some(request) => waiting.push_back(request),
                None => return,
            }
        }
        let Ok(slot) = std::sync::Arc::clone(&slots).acquire_owned().await else {
            return;
        };
        while waiting.len() < BATCH {
            match queue.try_recv() {
                Ok(request) => waiting.push_back(request),
                Err(_) => break,
            }
        }
        let mut batch = Vec::new();
        let mut followers = Vec::new();
        let mut later = VecDeque::new();
        let mut keys = HashSet::new();
        for request in waiting.drain(..) {
            if request.abandoned() {
                continue;
            }
            if keys.contains(request.key()) {
                followers.push(request);
            } else if batch.len() < BATCH {
                keys.insert(request.key().to_string());
                batch.push(request);
            } else {
                later.push_back(request);
            }
        }
        waiting = later;
        if batch.is_empty() {
            continue;
        }
        let written = write(batch, followers);
        tokio::spawn(async move {
            written.await;
            drop(slot);
        });
    }
}

/// Answers every request of a batch from the rows its statement returned, each read by
/// `decode` into the presented token's hash (`replaces`) and a [`Claimed`], or with the
/// statement's error. `followers` are answered "not claimed": each then finds the token used, as
/// if it had come a moment later.
pub(crate) fn answer<R>(
    batch: Vec<RotationRequest>,
    followers: Vec<RotationRequest>,
    rows: StoreResult<Vec<R>>,
    decode: impl Fn(&R) -> Result<(String, StoreResult<Claimed>), sqlx::Error>,
) {
    let rows = match rows {
        Ok(rows) => rows,
        Err(e) => {
            if matches!(e, StoreError::Database(_)) {
                tracing::error!(error = %e, rotations = batch.len(), "rotating refresh tokens failed");
            }
            for r in batch.into_iter().chain(followers) {
                let _ = r.reply.send(Err(e.for_another()));
            }
            return;
        }
    };
    let decoded: Result<HashMap<String, StoreResult<Claimed>>, sqlx::Error> =
        rows.iter().map(decode).collect();
    let mut done = match decoded {
        Ok(done) => done,
        Err(e) => {
            // The statement committed, but which rotations it made cannot be told: every
            // requester gets an error (a client that retries then presents a used token).
            // Only the hash column this statement returns failing to decode would lead here.
            tracing::error!(error = %e, "reading rotated refresh tokens failed");
            for r in batch.into_iter().chain(followers) {
                let _ = r
                    .reply
                    .send(Err(StoreError::Corrupt("rotated refresh token".into())));
            }
            return;
        }
    };
    for r in batch {
        // A requester that hung up does not stop the others; its rotation stands.
        let _ = r.reply.send(done.remove(&r.token_hash).transpose());
    }
    for r in followers {
        let _ = r.reply.send(Ok(None));
    }
}

/// A row that names the [`Claimed`]'s columns and `replaces`. Each row is read on its own: a
/// row that cannot be read (an account whose role this version does not know) fails its own
/// requester, not the whole batch; only `replaces` failing fails them all.
pub(crate) fn claimed_columns<R>(row: &R) -> Result<(String, StoreResult<Claimed>), sqlx::Error>
where
    R: sqlx::Row,
    for<'r> Claimed: sqlx::FromRow<'r, R>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> &'r str: sqlx::ColumnIndex<R>,
{
    let replaced: String = row.try_get("replaces")?;
    Ok((replaced, Claimed::from_row(row).map_err(StoreError::from)))
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    fn request(
        token: &str,
    ) -> (
        RotationRequest,
        tokio::sync::oneshot::Receiver<StoreResult<Option<Claimed>>>,
    ) {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let request = RotationRequest {
            token_hash: token.to_string(),
            client_id: None,
            next_hash: format!("next-{token}"),
            next_expires_at: 1,
            now: 0,
            reply,
        };
        (request, answer)
    }

    /// What waits when a batch is formed goes together; a token presented twice goes once
    /// (the second follows); a request whose requester has gone is not written at all; and
    /// no more than `in_flight` batches are written at once.
    #[tokio::test]
    async fn batches_take_what_waits_once_each_and_skip_the_abandoned() {
        let (queue, incoming) = tokio::sync::mpsc::channel(64);
        // Each batch's tokens and its followers'.
        type Seen = Vec<(Vec<String>, Vec<String>)>;
        let seen: Arc<Mutex<Seen>> = Default::default();
        let (gate, opened) = tokio::sync::watch::channel(false);
        let (running, most) = (Arc::new(Mutex::new(0usize)), Arc::new(Mutex::new(0usize)));
        let task = tokio::spawn(in_batches(incoming, 2, {
            let (seen, running, most) = (seen.clone(), running.clone(), most.clone());
            move |batch: Vec<RotationRequest>, followers: Vec<RotationRequest>| {
                let names =
                    |rs: &[RotationRequest]| rs.iter().map(|r| r.token_hash.clone()).collect();
                seen.lock()
                    .unwrap()
                    .push((names(&batch), names(&followers)));
                let (running, most, mut opened) = (running.clone(), most.clone(), opened.clone());
                {
                    let mut now = running.lock().unwrap();
                    *now += 1;
                    let mut most = most.lock().unwrap();
                    *most = (*most).max(*now);
                }
                async move {
                    let _ = opened.wait_for(|open| *open).await;
                    *running.lock().unwrap() -= 1;
                    for r in batch.into_iter().chain(followers) {
                        let _ = r.reply.send(Ok(None));
                    }
                }
            }
        }));
        // The first goes alone and holds its slot until the gate opens.
        let (first, first_answer) = request("a");
        queue.send(first).await.unwrap();
        while seen.lock().unwrap().is_empty() {
            tokio::task::yield_now().await;
        }
        // These wait together for the second slot...
        let mut answers = Vec::new();
        let (gone, gone_answer) = request("gone");
        drop(gone_answer);
        queue.send(gone).await.unwrap();
        for token in ["b", "c", "b"] {
            let (r, answer) = request(token);
            queue.send(r).await.unwrap();
            answers.push(answer);
        }
        while seen.lock().unwrap().len() < 2 {
            tokio::task::yield_now().await;
        }
        // ...and these for a third, which waits until a slot is free.
        for token in ["d", "e"] {
            let (r, answer) = request(token);
            queue.send(r).await.unwrap();
            answers.push(answer);
        }
        for _ in 0..100 {
            tokio::task::yield_now().await;
        }
        assert_eq!(
            seen.lock().unwrap().len(),
            2,
            "a third batch while two are written"
        );
        gate.send(true).unwrap();
        first_answer.await.unwrap().unwrap();
        for answer in answers {
            assert!(answer.await.unwrap().unwrap().is_none());
        }
        let seen = seen.lock().unwrap().clone();
        let strs = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            seen,
            vec![
                (strs(&["a"]), strs(&[])),
                (strs(&["b", "c"]), strs(&["b"])),
                (strs(&["d", "e"]), strs(&[])),
            ]
        );
        assert_eq!(*most.lock().unwrap(), 2);
        drop(queue);
        task.await.unwrap();
    }
}
