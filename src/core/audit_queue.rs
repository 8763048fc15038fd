//! Audit events of reads, written in batches behind the request.
//!
//! Reading one member whole is audited (`member.pesel_read`, SPEC §12), and it is the register's
//! most frequent request. Written in a transaction of its own, the event cost three times what
//! the read did on SQLite (a commit on its single writer; 220 µs of CPU a read instead of 60) and
//! twice on PostgreSQL (three round trips); batched, a read costs 90 µs on SQLite (`BENCHMARKS.md`). Here the
//! request stamps the event with its time and hands it to a task that writes the events
//! gathered over 100 ms (at most 500) in one statement, so that under load one write carries
//! hundreds of reads.
//!
//! What that costs, and what keeps it honest:
//! - A node killed (SIGKILL, power) loses the read events of its last 100 ms; a stopping node
//!   writes the queue out before it exits ([`Core::flush_audit`] after the last request). Events that go with a change (a member
//!   created, a role changed) are not queued: they are written in the change's own transaction.
//! - Whoever reads the audit trail through this node first waits for the queue
//!   ([`Core::flush_audit`]), so a read is in the trail the moment it has been answered.
//! - A write that fails (database down) is logged with the number of events lost, as an event
//!   written on its own was before. A queue that is full (10 000 events waiting) drops the event
//!   and logs it rather than holding up requests.

use tokio::sync::{mpsc, oneshot};

use crate::core::{Core, now_ms};
use crate::store::{AuditEvent, DynStore};

/// Events waiting at most; beyond this one is dropped (and logged).
const CAPACITY: usize = 10_000;
/// Events written by one statement at most.
const BATCH: usize = 500;
/// How long the first event of a batch waits for others to join it.
const LINGER: std::time::Duration = std::time::Duration::from_millis(100);

enum Entry {
    Event(AuditEvent, i64),
    /// Answered once every event queued before it is written (or its write has failed).
    Flush(oneshot::Sender<()>),
}

pub(crate) struct AuditQueue {
    sender: mpsc::Sender<Entry>,
}

impl AuditQueue {
    /// Starts the writing task; it ends when the queue is dropped.
    pub(crate) fn start(store: DynStore) -> Self {
        let (sender, mut receiver) = mpsc::channel::<Entry>(CAPACITY);
        tokio::spawn(async move {
            let mut events = Vec::with_capacity(BATCH);
            let mut flushes = Vec::new();
            while let Some(first) = receiver.recv().await {
                // Gather for up to LINGER after the first event, unless the batch fills or
                // someone waits for it.
                let until = tokio::time::Instant::now() + LINGER;
                let mut next = Some(first);
                while let Some(entry) = next {
                    match entry {
                        Entry::Event(event, at) => events.push((event, at)),
                        Entry::Flush(done) => flushes.push(done),
                    }
                    next = if events.len() >= BATCH || !flushes.is_empty() {
                        None
                    } else {
                        tokio::time::timeout_at(until, receiver.recv())
                            .await
                            .ok()
                            .flatten()
                    };
                }
                if !events.is_empty() {
                    if let Err(e) = store.record_audits(&events).await {
                        tracing::error!(error = %e, lost = events.len(), "could not record audit events");
                    }
                    events.clear();
                }
                for done in flushes.drain(..) {
                    let _ = done.send(());
                }
            }
        });
        Self { sender }
    }

    fn push(&self, event: AuditEvent) {
        let action = event.action;
        if self.sender.try_send(Entry::Event(event, now_ms())).is_err() {
            tracing::error!(action, "the audit queue is full: event not recorded");
        }
    }

    async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.sender.send(Entry::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }
}

impl Core {
    /// Records an audit event of a read behind the answer (see the module's notes).
    pub(crate) fn audit_later(&self, event: AuditEvent) {
        self.audit_queue.push(event);
    }

    /// Waits until every audit event queued on this node so far is written: before the trail is
    /// read, and when the node stops.
    pub async fn flush_audit(&self) {
        self.audit_queue.flush().await;
    }
}
