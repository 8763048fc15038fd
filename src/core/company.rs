//! Company sign-up (seed 002): a pending organization with its pending owner, activated by a
//! single-use emailed link that sets the password.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::core::accounts::{field, required};
use crate::core::sessions::IssuedSession;
use crate::core::{Client, Core, CoreError, CoreResult, Role, now_ms};
use crate::crypto::{random_token, token_hash};
use crate::domain::{
    CompanyEmail, FieldError, MemberText, Password, Phone, Problem, normalize_key,
};
use crate::i18n::Lang;
use crate::store::{AccountRecord, AuditEvent, NewAccount, OrganizationRecord};

/// How long an activation link works (SPEC §5).
const ACTIVATION_TTL_MS: i64 = 48 * 3600 * 1000;
pub const STATUS_PENDING: &str = "pending_activation";

/// What the sign-up form sends; `state` must be a JSON integer.
#[derive(Debug, Default, serde::Deserialize)]
pub struct Signup {
    pub email: Option<String>,
    pub phone: Option<String>,
    pub state: Option<Value>,
}

impl Core {
    /// Validates SPEC §10's company rules, then creates the pending organization and owner and
    /// emails the activation link.
    pub async fn signup(
        self: &Arc<Self>,
        input: &Signup,
        lang: Lang,
        client: &Client,
    ) -> CoreResult<AccountRecord> {
        let mut errors = Vec::new();
        let email = field(
            &mut errors,
            "email",
            input.email.as_deref(),
            CompanyEmail::parse,
        );
        let phone = field(&mut errors, "phone", input.phone.as_deref(), Phone::parse);
        let state = match &input.state {
            None | Some(Value::Null) => {
                errors.push(FieldError {
                    field: "state",
                    problem: Problem::Required,
                });
                None
            }
            Some(v) => match v.as_i64() {
                Some(n) => Some(n),
                None => {
                    errors.push(FieldError {
                        field: "state",
                        problem: Problem::Type,
                    });
                    None
                }
            },
        };
        let (Some(email), Some(phone), Some(state)) = (email, phone, state) else {
            return Err(CoreError::Validation(errors));
        };
        self.count_registration(client).await?;
        let now = now_ms();
        let org = OrganizationRecord {
            id: uuid::Uuid::now_v7().to_string(),
            name: email.as_str().to_string(),
            state,
            status: "pending".into(),
            created_at: now,
        };
        let owner = NewAccount {
            id: uuid::Uuid::now_v7().to_string(),
            organization_id: org.id.clone(),
            username: None,
            username_norm: None,
            email: email.as_str().to_string(),
            email_norm: normalize_key(email.as_str()),
            phone: Some(phone.as_str().to_string()),
            phone_norm: Some(normalize_key(phone.as_str())),
            name: String::new(),
            surname: String::new(),
            password_hash: None,
            role: Role::Owner.as_str().into(),
            first_is_owner: false,
            status: STATUS_PENDING.into(),
            now,
        };
        let token = random_token();
        let account = self
            .store
            .create_company(&org, owner, &token_hash(&token), now + ACTIVATION_TTL_MS)
            .await?;
        self.audit(AuditEvent {
            organization_id: Some(org.id.clone()),
            actor_id: Some(account.id.clone()),
            action: "company_signed_up",
            target: Some(org.id.clone()),
            ip: client.ip.map(|ip| ip.to_string()),
        })
        .await;
        self.send_activation_later(account.email.clone(), token, lang);
        Ok(account)
    }

    /// Emails the link after the answer: a slow SMTP server must not hold up the client, and the
    /// client can ask again with `/company/activation/resend`.
    fn send_activation_later(self: &Arc<Self>, to: String, token: String, lang: Lang) {
        let core = Arc::clone(self);
        tokio::spawn(async move {
            let link = format!("{}/activate#token={token}", core.config.public_url());
            let (subject, body) = crate::i18n::email(lang, "activation", &link);
            if let Err(e) = core.send_email("activation", &to, subject, body).await {
                tracing::error!(error = %e, "could not send an activation email");
            }
        });
    }

    /// Sets the password, name and surname with an activation token, activates the account and
    /// its organization, and logs the owner in.
    pub async fn activate(
        &self,
        token: Option<&str>,
        password: Option<&str>,
        name: Option<&str>,
        surname: Option<&str>,
        client: &Client,
    ) -> CoreResult<(AccountRecord, IssuedSession)> {
        let mut errors = Vec::new();
        let token = required(&mut errors, "token", token);
        let policy = self.config.password_policy;
        let password = field(&mut errors, "password", password, |p| {
            Password::parse(p, policy)
        });
        let name = field(&mut errors, "name", name, MemberText::parse);
        // The seed's own example answers with an empty surname.
        let surname = match surname.map(str::trim).filter(|s| !s.is_empty()) {
            None => Some(String::new()),
            Some(s) => field(&mut errors, "surname", Some(s), MemberText::parse)
                .map(|t| t.as_str().to_string()),
        };
        let (Some(token), Some(password), Some(name), Some(surname)) =
            (token, password, name, surname)
        else {
            return Err(CoreError::Validation(errors));
        };
        let hash = self.hasher.hash(password.expose()).await?;
        let account = self
            .store
            .activate_account(&token_hash(token), &hash, name.as_str(), &surname, now_ms())
            .await?
            .ok_or(CoreError::ActivationTokenInvalid)?;
        self.audit(AuditEvent {
            organization_id: Some(account.organization_id.clone()),
            actor_id: Some(account.id.clone()),
            action: "account_activated",
            target: Some(account.id.clone()),
            ip: client.ip.map(|ip| ip.to_string()),
        })
        .await;
        let issued = self.start_session(&account, client).await?;
        Ok((account, issued))
    }

    /// Sends a fresh activation link if a pending account uses `email`. The answer never says
    /// whether one does; over the limit, nothing is sent and the answer is the same.
    pub async fn resend_activation(
        self: &Arc<Self>,
        email: Option<&str>,
        lang: Lang,
        client: &Client,
    ) -> CoreResult<()> {
        let mut errors = Vec::new();
        let Some(email) = field(&mut errors, "email", email, CompanyEmail::parse) else {
            return Err(CoreError::Validation(errors));
        };
        let key = normalize_key(email.as_str());
        let hour = Duration::from_secs(3600);
        let limit = self.config.password_resets_per_hour;
        let over = self
            .hit_address_and_ip("activation", &key, client, limit, hour)
            .await;
        if over.is_some() {
            return Ok(());
        }
        let Some(account) = self.store.account_by_login(&key).await? else {
            return Ok(());
        };
        if account.status != STATUS_PENDING {
            return Ok(());
        }
        let token = random_token();
        let now = now_ms();
        self.store
            .insert_activation_token(
                &account.id,
                &token_hash(&token),
                now,
                now + ACTIVATION_TTL_MS,
            )
            .await?;
        self.send_activation_later(account.email, token, lang);
        Ok(())
    }
}
