//! Outgoing email. Every email is first stored in the outbox table, in the request's own time,
//! so an email the client was told about is never lost. Without `smtp_host` it stays there for
//! the operator (`brama outbox` prints it) until its link expires. With `smtp_host`, a delivery
//! task on every node claims due emails (one node gets each), sends them, and marks them sent
//! (clearing the body, so the live link is not kept); an attempt the server refuses, or that
//! cannot reach it, is retried with a doubling wait (2 s … 15 min) for 24 hours or until the
//! link expires, then given up. `brama outbox` shows each email's state.
//!
//! The log says that an email was queued, sent or refused and which kind of link it carries,
//! never the link's token.

use std::time::Duration;

use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::config::{Config, SmtpSecurity};
use std::sync::Arc;

use crate::core::{Core, CoreResult, StartupError, now_ms};
use crate::store::{Delivery, OutboxRecord, Tx};

/// One SMTP conversation may take this long before the attempt counts as failed.
const SMTP_TIMEOUT: Duration = Duration::from_secs(20);

/// Where emails go.
pub enum Mailer {
    Outbox,
    Smtp(Box<SmtpMailer>),
}

pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl Mailer {
    pub fn from_config(config: &Config) -> Result<Mailer, StartupError> {
        let Some(host) = config.smtp_host.as_deref().filter(|h| !h.is_empty()) else {
            return Ok(Mailer::Outbox);
        };
        let builder = match config.smtp_security {
            SmtpSecurity::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host)
                .map_err(|e| format!("invalid setting `smtp_host`: {e}"))?
                .port(config.smtp_port.unwrap_or(587)),
            SmtpSecurity::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(host)
                .map_err(|e| format!("invalid setting `smtp_host`: {e}"))?
                .port(config.smtp_port.unwrap_or(465)),
            SmtpSecurity::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
                .port(config.smtp_port.unwrap_or(25)),
        };
        let builder = match (&config.smtp_username, &config.smtp_password) {
            (Some(user), Some(password)) => {
                builder.credentials(Credentials::new(user.clone(), password.0.clone()))
            }
            _ => builder,
        };
        let from = match &config.smtp_from {
            Some(from) => from
                .parse()
                .map_err(|e| format!("invalid setting `smtp_from`: {e}"))?,
            None => {
                let host = url::Url::parse(&config.public_url())
                    .ok()
                    .and_then(|u| u.host_str().map(str::to_owned))
                    .filter(|h| h.contains('.') && h.parse::<std::net::IpAddr>().is_err())
                    .unwrap_or_else(|| "localhost.localdomain".into());
                format!("brama <noreply@{host}>")
                    .parse()
                    .map_err(|e| format!("invalid setting `smtp_from`: {e}"))?
            }
        };
        Ok(Mailer::Smtp(Box::new(SmtpMailer {
            transport: builder.timeout(Some(SMTP_TIMEOUT)).build(),
            from,
        })))
    }
}

/// How often a node looks for emails that others queued or that are due again.
const POLL: Duration = Duration::from_secs(5);
/// Emails claimed at a time; each is sent in turn within [`SMTP_TIMEOUT`].
const BATCH: i64 = 10;
/// A claim lasts long enough to send a whole batch to a server that answers slowly; if the node
/// dies meanwhile, another sends the batch once it runs out (the rare email may then go twice).
const CLAIM_MS: i64 = (BATCH + 2) * SMTP_TIMEOUT.as_millis() as i64;
/// Retries go on for a day (or until the email's link expires, if sooner).
const RETRY_FOR_MS: i64 = 24 * 3600 * 1000;
/// The first retry after 2 s, then twice the wait each time, up to 15 minutes: an SMTP server
/// that comes back is used within 15 minutes, and one that stays down costs ~110 attempts a day.
const FIRST_RETRY_MS: i64 = 2_000;
const LONGEST_WAIT_MS: i64 = 15 * 60 * 1000;

/// When to try an email again after its `failed`-th failed attempt (1-based).
pub fn retry_after_ms(failed: i64) -> i64 {
    let doublings = failed.clamp(1, 20) - 1;
    (FIRST_RETRY_MS << doublings).min(LONGEST_WAIT_MS)
}

impl Core {
    /// Adds an email for `to` to the outbox within `tx`, so it is stored with what it is about
    /// (the link's token) or not at all. `expires_at` is when its link stops working: the
    /// janitor deletes the row then, and delivery is not tried after it. Once `tx` has
    /// committed, call [`Core::email_queued`] with the returned id.
    pub(crate) async fn queue_email(
        &self,
        tx: &mut dyn Tx,
        to: &str,
        (subject, body): (String, String),
        expires_at: i64,
    ) -> CoreResult<String> {
        let now = now_ms();
        let email = OutboxRecord {
            id: uuid::Uuid::now_v7().to_string(),
            recipient: to.to_string(),
            subject,
            body,
            created_at: now,
            sent_at: None,
            expires_at: Some(expires_at),
            attempts: 0,
            next_attempt_at: matches!(self.mailer, Mailer::Smtp(_)).then_some(now),
            last_error: None,
            failed_at: None,
        };
        tx.insert_outbox(&email).await?;
        Ok(email.id)
    }

    /// After the commit of a [`Core::queue_email`]: with SMTP set, wakes this node's delivery
    /// task to send it at once; without, the email waits for the operator (`brama outbox`).
    /// `kind` names it in the log, which never holds the link.
    pub(crate) fn email_queued(&self, kind: &str, id: &str) {
        crate::telemetry::count_email("queued");
        if matches!(self.mailer, Mailer::Smtp(_)) {
            self.mail_due.notify_one();
            tracing::info!(email = %id, kind, "email queued for SMTP delivery");
        } else {
            tracing::info!(email = %id, kind, "email queued in the outbox (no SMTP set); `brama outbox` shows it with its link");
        }
    }

    /// Claims the emails due by `now`, tries each once, and records how it went. Returns when the
    /// next email (of any node) is due.
    pub async fn deliver_due(&self, now: i64) -> CoreResult<Option<i64>> {
        let Mailer::Smtp(smtp) = &self.mailer else {
            return Ok(None);
        };
        // A read first: most looks find nothing due, and need not take the writer (SQLite).
        let due = self.store.outbox_next_due().await?;
        if due.is_none_or(|at| at > now) {
            return Ok(due);
        }
        loop {
            let mut tx = self.begin().await?;
            let claimed = tx.claim_outbox(now, now + CLAIM_MS, BATCH).await?;
            tx.commit().await?;
            if claimed.is_empty() {
                break;
            }
            for email in &claimed {
                let delivery = match smtp.send(email).await {
                    Ok(()) => {
                        crate::telemetry::count_email("sent");
                        tracing::info!(email = %email.id, attempts = email.attempts + 1, "email sent by SMTP");
                        Delivery::Sent
                    }
                    Err(failure) => {
                        // `now` may be ahead of the clock (a test moving time), never behind.
                        let at = now.max(now_ms());
                        let give_up_at = (email.created_at + RETRY_FOR_MS)
                            .min(email.expires_at.unwrap_or(i64::MAX));
                        let next = at + retry_after_ms(email.attempts + 1);
                        let next = (failure.retry && next < give_up_at).then_some(next);
                        crate::telemetry::count_email(if next.is_some() {
                            "retried"
                        } else {
                            "failed"
                        });
                        match next {
                            Some(next) => {
                                tracing::warn!(email = %email.id, attempts = email.attempts + 1, error = %failure.error, retry_in_s = (next - at) / 1000, "SMTP refused an email; it stays in the outbox")
                            }
                            None => {
                                tracing::error!(email = %email.id, attempts = email.attempts + 1, error = %failure.error, "gave up delivering an email")
                            }
                        }
                        Delivery::Failed {
                            error: failure.error,
                            next,
                        }
                    }
                };
                let mut tx = self.begin().await?;
                tx.settle_outbox(email, &delivery, now.max(now_ms()))
                    .await?;
                tx.commit().await?;
            }
            if claimed.len() < BATCH as usize {
                break;
            }
        }
        Ok(self.store.outbox_next_due().await?)
    }
}

/// Why an attempt failed, and whether another could succeed.
struct Failure {
    error: String,
    retry: bool,
}

impl SmtpMailer {
    async fn send(&self, email: &OutboxRecord) -> Result<(), Failure> {
        let unusable = |what: &str, e: &dyn std::fmt::Display| Failure {
            error: format!("{what}: {e}"),
            retry: false,
        };
        let to: Mailbox = email
            .recipient
            .parse()
            .map_err(|e| unusable("recipient address", &e))?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(email.subject.clone())
            .header(ContentType::TEXT_PLAIN)
            .body(email.body.clone())
            .map_err(|e| unusable("building the email", &e))?;
        // Every refusal is retried, a permanent (5xx) one too: a misconfigured relay answers
        // 5xx until its operator fixes it, and a day of retries costs little.
        self.transport.send(message).await.map(drop).map_err(|e| {
            let error = e.to_string().chars().take(500).collect();
            Failure { error, retry: true }
        })
    }
}

/// Runs this node's delivery task for as long as the process lives (with SMTP set): it sends
/// what this node queues at once, and looks every [`POLL`] for what other nodes queued or what
/// is due again. An unreachable database only delays it.
pub fn start(core: Arc<Core>) {
    if !matches!(core.mailer, Mailer::Smtp(_)) {
        return;
    }
    tokio::spawn(async move {
        loop {
            let wait = match core.deliver_due(now_ms()).await {
                Ok(next) => next.map_or(POLL, |at| {
                    Duration::from_millis((at - now_ms()).clamp(0, POLL.as_millis() as i64) as u64)
                }),
                Err(e) => {
                    tracing::warn!(error = %e, "email delivery could not reach the database; trying again later");
                    POLL
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = core.mail_due.notified() => {}
            }
        }
    });
}
