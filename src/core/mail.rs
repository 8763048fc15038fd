//! Outgoing email. Without SMTP (issue 4 adds it) every email lands in the outbox table, where
//! `brama outbox` shows it; the log says that an email was queued, never its link, because the
//! link carries a token.

use crate::core::{Core, CoreResult, now_ms};
use crate::store::OutboxRecord;

impl Core {
    /// Queues an email for `to`.
    pub async fn send_email(&self, to: &str, subject: String, body: String) -> CoreResult<()> {
        let id = uuid::Uuid::now_v7().to_string();
        self.store
            .insert_outbox(OutboxRecord {
                id: id.clone(),
                recipient: to.to_string(),
                subject,
                body,
                created_at: now_ms(),
                sent_at: None,
            })
            .await?;
        tracing::info!(email = %id, "email queued in the outbox; `brama outbox` shows it");
        Ok(())
    }
}
