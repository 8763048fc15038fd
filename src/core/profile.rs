//! An account's own profile and email address (SPEC §15).
//!
//! A new email address is not taken on the caller's word: the change waits for the link sent to
//! the new address (24 hours, single use, stored as SHA-256), and the old address is told about
//! it, so that someone holding a session cannot quietly move the account (and its password
//! resets) to an address of theirs. The address is checked free when the change is asked for and
//! again, by the unique index, when it is confirmed.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use crate::core::accounts::{live_link, own_account};
use crate::core::limits::retry_after_secs;
use crate::core::{AuditAction, Caller, Client, Core, CoreError, CoreResult, now_ms};
use crate::crypto::{random_token, token_hash};
use crate::domain::{AccountEmail, MemberText, RevokeReason, normalize_key};
use crate::store::{AccountRecord, AccountUpdate, LinkKind};

/// How long the link to a new address works.
pub const EMAIL_CHANGE_MS: i64 = 24 * 3600 * 1000;

/// `PATCH /api/auth/me`: what to change; `None` leaves a field as it is.
#[derive(Debug, Default)]
pub struct ProfileChange {
    pub name: Option<MemberText>,
    /// `Some(None)` clears the surname.
    pub surname: Option<Option<MemberText>>,
}

impl Core {
    /// Changes the caller's name and surname (audited `account.profile_updated`).
    pub async fn update_profile(
        &self,
        caller: &Caller,
        change: ProfileChange,
        client: &Client,
    ) -> CoreResult<AccountRecord> {
        let now = now_ms();
        let mut tx = self.begin().await?;
        own_account(tx.account(&caller.account_id).await?, caller)?;
        let update = AccountUpdate {
            name: change.name.map(|n| n.as_str().to_string()),
            surname: change
                .surname
                .map(|s| s.map(|s| s.as_str().to_string()).unwrap_or_default()),
            ..AccountUpdate::default()
        };
        // The row is locked and was checked above: the update returns it.
        let account = tx
            .update_account(&caller.account_id, &update, now)
            .await?
            .ok_or(CoreError::TokenInvalid)?;
        tx.record_audit(
            &AuditAction::ProfileUpdated.by_itself(&account, client.ip),
            now,
        )
        .await?;
        tx.commit().await?;
        self.forget_account(&account.id);
        Ok(account)
    }

    /// Asks for the caller's address to become `new_email`, proven by the current password
    /// (a wrong one counts as a failed login): a link to the new address, a notice to the old.
    /// Nothing changes until the link is opened.
    pub async fn request_email_change(
        &self,
        caller: &Caller,
        new_email: AccountEmail,
        current_password: &SecretString,
        lang: crate::i18n::Lang,
        client: &Client,
    ) -> CoreResult<()> {
        let account = self
            .check_own_password(caller, current_password, client)
            .await?;
        let key = normalize_key(new_email.as_str());
        if key == normalize_key(&account.email)
            || self.store.account_by_login(&key).await?.is_some()
        {
            return Err(CoreError::EmailTaken);
        }
        // Each request sends two emails, one of them to an address the caller chose.
        let hour = Duration::from_secs(3600);
        let limit = self.config.password_resets_per_hour;
        if let Some(wait) = self
            .hit_address_and_ip("email-change", &key, client, limit, hour)
            .await
        {
            crate::telemetry::count_rate_limited("email-change");
            return Err(CoreError::RateLimited {
                retry_after_secs: retry_after_secs(wait),
            });
        }
        let token = random_token();
        let now = now_ms();
        let expires_at = now + EMAIL_CHANGE_MS;
        let mut tx = self.begin().await?;
        tx.insert_email_change(
            &token_hash(&token),
            &account.id,
            new_email.as_str(),
            now,
            expires_at,
        )
        .await?;
        let public = self.config.public_url();
        // In the fragment: it never reaches a server log or a Referer header.
        let link = format!("{public}/confirm-email#token={token}");
        let confirm = crate::i18n::email(lang, "email-change", &link);
        let confirm = self
            .queue_email(&mut *tx, new_email.as_str(), confirm, expires_at)
            .await?;
        let notice = crate::i18n::email(lang, "email-notice", &public);
        let notice = self
            .queue_email(&mut *tx, &account.email, notice, expires_at)
            .await?;
        tx.record_audit(
            &AuditAction::EmailChangeRequested.by_itself(&account, client.ip),
            now,
        )
        .await?;
        tx.commit().await?;
        self.email_queued("email change", &confirm);
        self.email_queued("email change notice", &notice);
        Ok(())
    }

    /// Opens an email-change link: the account's address becomes the new one, its other sessions
    /// end (all of them unless `keep` is a session of that account), audited
    /// `account.email_changed`. Spending the link, the change and the revocations commit
    /// together.
    pub async fn confirm_email_change(
        &self,
        token: &SecretString,
        keep: Option<&Caller>,
        client: &Client,
    ) -> CoreResult<AccountRecord> {
        let presented = token_hash(token.expose_secret());
        self.live_link_or(
            LinkKind::EmailChange,
            &presented,
            client,
            CoreError::EmailTokenInvalid,
        )
        .await?;
        let now = now_ms();
        let mut tx = self.begin().await?;
        let link = tx
            .link_token(LinkKind::EmailChange, &presented)
            .await?
            .filter(|l| live_link(l, now))
            .ok_or(CoreError::EmailTokenInvalid)?;
        let address = tx
            .email_change_address(&presented)
            .await?
            .ok_or(CoreError::EmailTokenInvalid)?;
        if !tx
            .spend_link_token(LinkKind::EmailChange, &presented, now)
            .await?
        {
            return Err(CoreError::EmailTokenInvalid);
        }
        let update = AccountUpdate {
            email: Some((address.clone(), normalize_key(&address))),
            ..AccountUpdate::default()
        };
        let account = tx
            .update_account(&link.account_id, &update, now)
            .await?
            .filter(|a| a.status.may_log_in())
            .ok_or(CoreError::EmailTokenInvalid)?;
        // Other pending changes of the account would move it again.
        tx.spend_link_tokens_of(LinkKind::EmailChange, &account.id, now)
            .await?;
        let keep = keep.filter(|c| c.account_id == account.id);
        tx.revoke_sessions(
            &account.id,
            keep.map(|c| c.session_id.as_str()),
            RevokeReason::EmailChanged,
            now,
        )
        .await?;
        let event = AuditAction::EmailChanged.event(
            Some(&account.organization_id),
            keep.map(|c| c.account_id.as_str()),
            Some(account.id.clone()),
            client.ip,
        );
        tx.record_audit(&event, now).await?;
        tx.commit().await?;
        self.forget_account(&account.id);
        self.forget_sessions();
        Ok(account)
    }
}
