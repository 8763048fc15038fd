//! Accounts: registration, login, own data, password change.

use std::time::Duration;

use crate::core::limits::retry_after_secs;
use crate::core::sessions::IssuedSession;
use crate::core::{Client, Core, CoreError, CoreResult, Role, now_ms};
use crate::crypto::jwt::Claims;
use crate::domain::{AccountEmail, FieldError, Password, Problem, Username, normalize_key};
use crate::store::{AccountRecord, AuditEvent, DEFAULT_ORGANIZATION, NewAccount};

/// What a client sent to register (Membership API).
#[derive(Debug, Default)]
pub struct Registration<'a> {
    pub username: Option<&'a str>,
    pub email: Option<&'a str>,
    pub password: Option<&'a str>,
}

pub const STATUS_ACTIVE: &str = "active";

impl Core {
    /// Registers an account in the default organization. The first one is its owner when
    /// `bootstrap_first_user` is on.
    pub async fn register(
        &self,
        input: Registration<'_>,
        client: &Client,
    ) -> CoreResult<AccountRecord> {
        let mut errors = Vec::new();
        let username = field(&mut errors, "username", input.username, Username::parse);
        let email = field(&mut errors, "email", input.email, AccountEmail::parse);
        let policy = self.config.password_policy;
        let password = field(&mut errors, "password", input.password, |p| {
            Password::parse(p, policy)
        });
        let (Some(username), Some(email), Some(password)) = (username, email, password) else {
            return Err(CoreError::Validation(errors));
        };

        self.count_registration(client).await?;

        let account = self
            .insert_account(
                &username,
                &email,
                &password,
                Role::User,
                self.config.bootstrap_first_user,
            )
            .await?;
        self.audit(AuditEvent {
            organization_id: Some(account.organization_id.clone()),
            actor_id: Some(account.id.clone()),
            action: "account_registered",
            target: Some(account.id.clone()),
            ip: client.ip.map(|ip| ip.to_string()),
        })
        .await;
        tracing::info!(account = %account.id, role = %account.role, "account registered");
        Ok(account)
    }

    /// Creates an account with a given role from the command line (`brama user create`).
    pub async fn create_account(
        &self,
        username: &str,
        email: &str,
        password: &str,
        role: Role,
    ) -> CoreResult<AccountRecord> {
        let mut errors = Vec::new();
        let username = field(&mut errors, "username", Some(username), Username::parse);
        let email = field(&mut errors, "email", Some(email), AccountEmail::parse);
        let policy = self.config.password_policy;
        let password = field(&mut errors, "password", Some(password), |p| {
            Password::parse(p, policy)
        });
        let (Some(username), Some(email), Some(password)) = (username, email, password) else {
            return Err(CoreError::Validation(errors));
        };
        let account = self
            .insert_account(&username, &email, &password, role, false)
            .await?;
        self.audit(AuditEvent {
            organization_id: Some(account.organization_id.clone()),
            actor_id: None,
            action: "account_created_cli",
            target: Some(account.id.clone()),
            ip: None,
        })
        .await;
        Ok(account)
    }

    async fn insert_account(
        &self,
        username: &Username,
        email: &AccountEmail,
        password: &Password,
        role: Role,
        first_is_owner: bool,
    ) -> CoreResult<AccountRecord> {
        let hash = self.hasher.hash(password.expose()).await?;
        Ok(self
            .store
            .insert_account(NewAccount {
                id: uuid::Uuid::now_v7().to_string(),
                organization_id: DEFAULT_ORGANIZATION.into(),
                username_norm: Some(normalize_key(username.as_str())),
                username: Some(username.as_str().to_string()),
                email_norm: normalize_key(email.as_str()),
                email: email.as_str().to_string(),
                phone: None,
                phone_norm: None,
                name: String::new(),
                surname: String::new(),
                password_hash: Some(hash),
                role: role.as_str().into(),
                first_is_owner,
                status: STATUS_ACTIVE.into(),
                now: now_ms(),
            })
            .await?)
    }

    /// Checks a username (or email) and password and starts a session. Unknown users, wrong
    /// passwords and accounts that may not log in get the same error after the same work.
    pub async fn login(
        &self,
        login: Option<&str>,
        password: Option<&str>,
        client: &Client,
    ) -> CoreResult<(AccountRecord, IssuedSession)> {
        self.login_as("username", login, password, client).await
    }

    /// [`Core::login`] with the login field named as the surface calls it (`email` on the
    /// Company API), for its validation messages.
    pub async fn login_as(
        &self,
        login_field: &'static str,
        login: Option<&str>,
        password: Option<&str>,
        client: &Client,
    ) -> CoreResult<(AccountRecord, IssuedSession)> {
        let mut errors = Vec::new();
        let login = required(&mut errors, login_field, login);
        let password = required(&mut errors, "password", password);
        let (Some(login), Some(password)) = (login, password) else {
            return Err(CoreError::Validation(errors));
        };
        // Bound the work an attacker can make us do before hashing.
        if password.chars().count() > 1024 || login.chars().count() > 254 {
            return Err(CoreError::InvalidCredentials);
        }

        let key = normalize_key(login);
        let window = Duration::from_secs(self.config.failed_login_window_secs);
        let account_key = format!("login:account:{key}");
        let ip_key = client.ip.map(|ip| format!("login:ip:{ip}"));
        let mut blocked = self
            .limiter
            .blocked(&account_key, self.config.failed_logins_per_account, window)
            .await;
        if let Some(ip_key) = &ip_key {
            blocked = blocked.max(
                self.limiter
                    .blocked(ip_key, self.config.failed_logins_per_ip, window)
                    .await,
            );
        }
        if let Some(wait) = blocked {
            crate::telemetry::count_rate_limited("login");
            return Err(CoreError::RateLimited {
                retry_after_secs: retry_after_secs(wait),
            });
        }

        let account = self.store.account_by_login(&key).await?;
        let hash = account.as_ref().and_then(|a| a.password_hash.as_deref());
        let verified = self.hasher.verify(password, hash).await?;
        let account = match account {
            Some(a) if verified.matches && a.status == STATUS_ACTIVE => a,
            other => {
                self.limiter
                    .hit(&account_key, self.config.failed_logins_per_account, window)
                    .await;
                if let Some(ip_key) = &ip_key {
                    self.limiter
                        .hit(ip_key, self.config.failed_logins_per_ip, window)
                        .await;
                }
                self.audit(AuditEvent {
                    organization_id: other.as_ref().map(|a| a.organization_id.clone()),
                    actor_id: None,
                    action: "login_failed",
                    target: other.as_ref().map(|a| a.id.clone()),
                    ip: client.ip.map(|ip| ip.to_string()),
                })
                .await;
                crate::telemetry::count_login(false);
                return Err(CoreError::InvalidCredentials);
            }
        };
        self.limiter.reset(&account_key).await;
        if let Some(new_hash) = verified.rehash {
            self.store
                .set_password_hash(&account.id, &new_hash, now_ms())
                .await?;
        }
        let issued = self.start_session(&account, client).await?;
        self.audit(AuditEvent {
            organization_id: Some(account.organization_id.clone()),
            actor_id: Some(account.id.clone()),
            action: "login",
            target: Some(issued.session_id.clone()),
            ip: client.ip.map(|ip| ip.to_string()),
        })
        .await;
        crate::telemetry::count_login(true);
        Ok((account, issued))
    }

    /// The account behind an access token, within the token's organization.
    pub async fn me(&self, claims: &Claims) -> CoreResult<AccountRecord> {
        let account = match self.cached_account(&claims.sub) {
            Some(a) => Some(a),
            None => {
                let fresh = self.store.account(&claims.sub).await?;
                if let Some(a) = &fresh {
                    self.remember_account(a);
                }
                fresh
            }
        };
        match account {
            Some(a) if a.organization_id == claims.org && a.status == STATUS_ACTIVE => Ok(a),
            _ => Err(CoreError::TokenInvalid),
        }
    }

    /// Changes the password after checking the current one; other sessions are revoked.
    pub async fn change_password(
        &self,
        claims: &Claims,
        current: Option<&str>,
        new: Option<&str>,
        client: &Client,
    ) -> CoreResult<()> {
        let mut errors = Vec::new();
        let current = required(&mut errors, "currentPassword", current);
        let policy = self.config.password_policy;
        let new = field(&mut errors, "newPassword", new, |p| {
            Password::parse(p, policy)
        });
        let (Some(current), Some(new)) = (current, new) else {
            return Err(CoreError::Validation(errors));
        };
        let account = self.me(claims).await?;
        let verified = self
            .hasher
            .verify(current, account.password_hash.as_deref())
            .await?;
        if !verified.matches {
            return Err(CoreError::WrongPassword);
        }
        let hash = self.hasher.hash(new.expose()).await?;
        let now = now_ms();
        self.store
            .set_password_hash(&account.id, &hash, now)
            .await?;
        self.store
            .revoke_sessions(&account.id, Some(&claims.sid), "password_changed", now)
            .await?;
        self.audit(AuditEvent {
            organization_id: Some(account.organization_id.clone()),
            actor_id: Some(account.id.clone()),
            action: "password_changed",
            target: Some(account.id.clone()),
            ip: client.ip.map(|ip| ip.to_string()),
        })
        .await;
        Ok(())
    }
}

/// Parses one field, recording why it was refused.
pub(crate) fn field<T>(
    errors: &mut Vec<FieldError>,
    name: &'static str,
    value: Option<&str>,
    parse: impl FnOnce(&str) -> Result<T, Problem>,
) -> Option<T> {
    let Some(value) = value else {
        errors.push(FieldError {
            field: name,
            problem: Problem::Required,
        });
        return None;
    };
    match parse(value) {
        Ok(v) => Some(v),
        Err(problem) => {
            errors.push(FieldError {
                field: name,
                problem,
            });
            None
        }
    }
}

pub(crate) fn required<'a>(
    errors: &mut Vec<FieldError>,
    name: &'static str,
    value: Option<&'a str>,
) -> Option<&'a str> {
    match value {
        Some(v) if !v.is_empty() => Some(v),
        _ => {
            errors.push(FieldError {
                field: name,
                problem: Problem::Required,
            });
            None
        }
    }
}

/// How long a password-reset link works.
const RESET_TTL_MS: i64 = 60 * 60 * 1000;

impl Core {
    /// Sends a reset link if an active account uses `email`. The answer, and its timing, do not
    /// depend on whether one does: the lookup and the email happen after the answer.
    pub async fn forgot_password(
        self: &std::sync::Arc<Self>,
        email: Option<&str>,
        lang: crate::i18n::Lang,
        client: &Client,
    ) -> CoreResult<()> {
        let mut errors = Vec::new();
        let Some(email) = field(&mut errors, "email", email, AccountEmail::parse) else {
            return Err(CoreError::Validation(errors));
        };
        let key = normalize_key(email.as_str());
        let hour = Duration::from_secs(3600);
        let limit = self.config.password_resets_per_hour;
        let over = self
            .hit_address_and_ip("reset", &key, client, limit, hour)
            .await;
        if let Some(wait) = over {
            crate::telemetry::count_rate_limited("reset");
            return Err(CoreError::RateLimited {
                retry_after_secs: retry_after_secs(wait),
            });
        }
        let core = std::sync::Arc::clone(self);
        let ip = client.ip.map(|ip| ip.to_string());
        tokio::spawn(async move {
            if let Err(e) = core.send_reset_link(&key, lang, ip).await {
                tracing::error!(error = %e, "could not send a password-reset email");
            }
        });
        Ok(())
    }

    async fn send_reset_link(
        &self,
        key: &str,
        lang: crate::i18n::Lang,
        ip: Option<String>,
    ) -> CoreResult<()> {
        let Some(account) = self.store.account_by_login(key).await? else {
            return Ok(());
        };
        if account.status != STATUS_ACTIVE {
            return Ok(());
        }
        let token = crate::crypto::random_token();
        let now = now_ms();
        self.store
            .insert_password_reset(
                &account.id,
                &crate::crypto::token_hash(&token),
                now,
                now + RESET_TTL_MS,
            )
            .await?;
        // In the fragment: it never reaches a server log or a Referer header.
        let link = format!("{}/reset#token={token}", self.config.public_url());
        let (subject, body) = crate::i18n::email(lang, "reset", &link);
        self.send_email("password reset", &account.email, subject, body)
            .await?;
        self.audit(AuditEvent {
            organization_id: Some(account.organization_id.clone()),
            actor_id: None,
            action: "password_reset_requested",
            target: Some(account.id.clone()),
            ip,
        })
        .await;
        Ok(())
    }

    /// Sets a new password with a reset token; every session of the account ends.
    pub async fn reset_password(
        &self,
        token: Option<&str>,
        password: Option<&str>,
        client: &Client,
    ) -> CoreResult<()> {
        let mut errors = Vec::new();
        let token = required(&mut errors, "token", token);
        let policy = self.config.password_policy;
        // The policy is checked first, so a weak password does not use the link up.
        let password = field(&mut errors, "password", password, |p| {
            Password::parse(p, policy)
        });
        let (Some(token), Some(password)) = (token, password) else {
            return Err(CoreError::Validation(errors));
        };
        let hash = self.hasher.hash(password.expose()).await?;
        let now = now_ms();
        let Some(account_id) = self
            .store
            .consume_password_reset(&crate::crypto::token_hash(token), now)
            .await?
        else {
            return Err(CoreError::ResetTokenInvalid);
        };
        self.store
            .set_password_hash(&account_id, &hash, now)
            .await?;
        self.store
            .revoke_sessions(&account_id, None, "password_reset", now)
            .await?;
        let organization_id = self
            .store
            .account(&account_id)
            .await?
            .map(|a| a.organization_id);
        self.audit(AuditEvent {
            organization_id,
            actor_id: Some(account_id.clone()),
            action: "password_reset",
            target: Some(account_id),
            ip: client.ip.map(|ip| ip.to_string()),
        })
        .await;
        Ok(())
    }
}
