//! Company sign-up (seed 002): a pending organization with its pending owner, activated by a
//! single-use emailed link that sets the password.

use std::sync::Arc;
use std::time::Duration;

use crate::core::accounts::{live_link, role_for_new_account};
use crate::core::sessions::IssuedSession;
use crate::core::{AuditAction, Client, Core, CoreError, CoreResult, now_ms};
use crate::crypto::{random_token, token_hash};
use crate::domain::{
    AccountStatus, CompanyEmail, MemberText, OrganizationStatus, Password, Phone, Role,
    normalize_key,
};
use crate::i18n::Lang;
use crate::store::{AccountRecord, AccountUpdate, LinkKind, NewAccount, OrganizationRecord, Tx};

/// How long an activation link works (SPEC §5).
const ACTIVATION_TTL_MS: i64 = 48 * 3600 * 1000;

/// A company's sign-up (SPEC §10's company rules, already checked).
#[derive(Debug, Clone)]
pub struct CompanySignup {
    pub email: CompanyEmail,
    pub phone: Phone,
    pub state: i64,
}

/// The owner's first password and name, with the token of the activation link.
#[derive(Debug)]
pub struct Activation {
    pub token: secrecy::SecretString,
    pub password: Password,
    pub name: MemberText,
    /// The seed's own example answers with an empty surname.
    pub surname: Option<MemberText>,
}

impl Core {
    /// Creates the pending organization and its pending owner, and emails the activation link.
    pub async fn signup(
        self: &Arc<Self>,
        signup: CompanySignup,
        lang: Lang,
        client: &Client,
    ) -> CoreResult<AccountRecord> {
        self.count_registration(client).await?;
        let now = now_ms();
        let email = signup.email.as_str();
        let org = OrganizationRecord {
            id: uuid::Uuid::now_v7().to_string(),
            name: email.to_string(),
            state: signup.state,
            status: OrganizationStatus::Pending,
            created_at: now,
        };
        let mut tx = self.begin().await?;
        tx.insert_organization(&org).await?;
        let first = tx.claim_first_account(&org.id).await?;
        let account = tx
            .insert_account(&NewAccount {
                id: uuid::Uuid::now_v7().to_string(),
                organization_id: org.id.clone(),
                username: None,
                username_norm: None,
                email: email.to_string(),
                email_norm: normalize_key(email),
                phone: Some(signup.phone.as_str().to_string()),
                phone_norm: Some(normalize_key(signup.phone.as_str())),
                name: String::new(),
                surname: String::new(),
                password_hash: None,
                // The company's own account: its organization bootstraps its owner.
                role: role_for_new_account(Role::Owner, first, true),
                status: AccountStatus::PendingActivation,
                now,
            })
            .await?;
        let email = self
            .queue_activation(&mut *tx, &account.id, &account.email, now, lang)
            .await?;
        let event = AuditAction::CompanySignedUp.event(
            Some(&org.id),
            Some(&account.id),
            Some(org.id.clone()),
            client.ip,
        );
        tx.record_audit(&event, now).await?;
        tx.commit().await?;
        self.email_queued("activation", &email);
        Ok(account)
    }

    /// A new activation link for the account with this address, stored (hashed) in `tx` with
    /// the email that carries it; the email's outbox id.
    async fn queue_activation(
        &self,
        tx: &mut dyn Tx,
        account_id: &str,
        to: &str,
        now: i64,
        lang: Lang,
    ) -> CoreResult<String> {
        let token = random_token();
        let expires_at = now + ACTIVATION_TTL_MS;
        tx.insert_link_token(
            LinkKind::Activation,
            account_id,
            &token_hash(&token),
            now,
            expires_at,
        )
        .await?;
        let link = format!("{}/activate#token={token}", self.config.public_url());
        let email = crate::i18n::email(lang, "activation", &link);
        self.queue_email(tx, to, email, expires_at).await
    }

    /// Sets the password, name and surname with an activation token, activates the account and
    /// its organization, and logs the owner in: all in one transaction.
    pub async fn activate(
        &self,
        activation: Activation,
        client: &Client,
    ) -> CoreResult<(AccountRecord, IssuedSession)> {
        let presented = token_hash(secrecy::ExposeSecret::expose_secret(&activation.token));
        let invalid = || CoreError::ActivationTokenInvalid;
        let link = self
            .live_link_or(LinkKind::Activation, &presented, client, invalid())
            .await?;
        let account = self.store.account(&link.account_id).await?;
        if !account.is_some_and(|a| a.status == AccountStatus::PendingActivation) {
            return Err(invalid());
        }
        let hash = self.hasher.hash(activation.password.expose()).await?;
        let now = now_ms();
        // Decided again under the lock: the link may have been used while we hashed.
        let mut tx = self.begin().await?;
        let link = tx.link_token(LinkKind::Activation, &presented).await?;
        let Some(link) = link.filter(|l| live_link(l, now)) else {
            return Err(CoreError::ActivationTokenInvalid);
        };
        let pending = tx
            .account(&link.account_id)
            .await?
            .filter(|a| a.status == AccountStatus::PendingActivation);
        if pending.is_none()
            || !tx
                .spend_link_token(LinkKind::Activation, &presented, now)
                .await?
        {
            return Err(CoreError::ActivationTokenInvalid);
        }
        let update = AccountUpdate {
            password_hash: Some(hash),
            name: Some(activation.name.as_str().to_string()),
            surname: Some(
                activation
                    .surname
                    .map(|s| s.as_str().to_string())
                    .unwrap_or_default(),
            ),
            status: Some(AccountStatus::Active),
            ..AccountUpdate::default()
        };
        let account = tx
            .update_account(&link.account_id, &update, now)
            .await?
            .ok_or(CoreError::ActivationTokenInvalid)?;
        tx.set_organization_status(&account.organization_id, OrganizationStatus::Active)
            .await?;
        let event = AuditAction::AccountActivated.by_itself(&account, client.ip);
        tx.record_audit(&event, now).await?;
        let issued = self
            .open_session(
                &mut *tx,
                &account,
                client,
                now,
                crate::core::sessions::AMR_PASSWORD,
            )
            .await?;
        tx.commit().await?;
        self.forget_account(&account.id);
        Ok((account, issued))
    }

    /// Sends a fresh activation link if a pending account uses `email`. The answer never says
    /// whether one does, nor does its timing: the lookup and the new link happen after it, as
    /// for a forgotten password. Over the limit, nothing is sent and the answer is the same.
    pub async fn resend_activation(
        self: &Arc<Self>,
        email: CompanyEmail,
        lang: Lang,
        client: &Client,
    ) -> CoreResult<()> {
        let key = normalize_key(email.as_str());
        let hour = Duration::from_secs(3600);
        let limit = self.config.password_resets_per_hour;
        let over = self
            .hit_address_and_ip("activation", &key, client, limit, hour)
            .await;
        if over.is_some() {
            return Ok(());
        }
        let core = Arc::clone(self);
        tokio::spawn(async move {
            if let Err(e) = core.resend_activation_now(&key, lang).await {
                tracing::error!(error = %e, "could not send an activation email again");
            }
        });
        Ok(())
    }

    async fn resend_activation_now(self: &Arc<Self>, key: &str, lang: Lang) -> CoreResult<()> {
        let Some(account) = self.store.account_by_login(key).await? else {
            return Ok(());
        };
        if account.status != AccountStatus::PendingActivation {
            return Ok(());
        }
        let mut tx = self.begin().await?;
        let email = self
            .queue_activation(&mut *tx, &account.id, &account.email, now_ms(), lang)
            .await?;
        tx.commit().await?;
        self.email_queued("activation", &email);
        Ok(())
    }
}
