//! Outgoing email: through SMTP when `smtp_host` is set, otherwise into the outbox table,
//! which `brama outbox` prints. The log says that an email went out and to which kind of link,
//! never the link's token.

use std::time::Duration;

use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::config::{Config, SmtpSecurity};
use crate::core::{Core, CoreError, CoreResult, StartupError, now_ms};
use crate::store::OutboxRecord;

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
            transport: builder.timeout(Some(Duration::from_secs(20))).build(),
            from,
        })))
    }
}

impl Core {
    /// Sends (or queues) an email for `to`. `kind` names it in the log; `expires_at` is when its
    /// link stops working, after which a queued copy is deleted (it would only hold a dead link).
    pub async fn send_email(
        &self,
        kind: &str,
        to: &str,
        subject: String,
        body: String,
        expires_at: i64,
    ) -> CoreResult<()> {
        match &self.mailer {
            Mailer::Outbox => {
                let id = uuid::Uuid::now_v7().to_string();
                let email = OutboxRecord {
                    id: id.clone(),
                    recipient: to.to_string(),
                    subject,
                    body,
                    created_at: now_ms(),
                    sent_at: None,
                    expires_at: Some(expires_at),
                };
                let mut tx = self.begin().await?;
                tx.insert_outbox(&email).await?;
                tx.commit().await?;
                tracing::info!(email = %id, kind, "email queued in the outbox (no SMTP set); `brama outbox` shows it with its link");
            }
            Mailer::Smtp(smtp) => {
                let SmtpMailer { transport, from } = smtp.as_ref();
                let to: Mailbox = to
                    .parse()
                    .map_err(|e| CoreError::Internal(format!("recipient address: {e}")))?;
                let message = Message::builder()
                    .from(from.clone())
                    .to(to)
                    .subject(subject)
                    .header(ContentType::TEXT_PLAIN)
                    .body(body)
                    .map_err(|e| CoreError::Internal(format!("building an email: {e}")))?;
                transport
                    .send(message)
                    .await
                    .map_err(|e| CoreError::Internal(format!("SMTP: {e}")))?;
                tracing::info!(kind, "email sent by SMTP");
            }
        }
        Ok(())
    }
}
