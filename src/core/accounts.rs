//! Accounts: registration, login, own data, password change and reset.

use std::sync::Arc;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use crate::core::limits::retry_after_secs;
use crate::core::sessions::{AMR_PASSWORD, AMR_PASSWORD_OTP, AMR_PASSWORD_PASSKEY, IssuedSession};
use crate::core::{AuditAction, Caller, Client, Core, CoreError, CoreResult, SeenAccount, now_ms};
use crate::crypto::{random_token, token_hash};
use crate::domain::{AccountEmail, AccountStatus, Password, Role, Username, normalize_key};
use crate::store::{
    AccountRecord, AccountUpdate, DEFAULT_ORGANIZATION, LinkKind, LinkTokenRecord, NewAccount,
    SessionRecord, TrailEntry,
};

/// How long an `mfaToken` lives, and how many wrong codes it takes (SPEC §13).
pub const MFA_TICKET_MS: i64 = 5 * 60 * 1000;
pub const MFA_TICKET_TRIES: i64 = 5;

/// A ticket that can still be used at `now`: not used, not expired, not out of tries.
pub(crate) fn live_ticket(ticket: &crate::store::MfaTicketRecord, now: i64) -> bool {
    ticket.used_at.is_none() && ticket.expires_at > now && ticket.failures < MFA_TICKET_TRIES
}

/// What the second step of a login offers as proof.
#[derive(Debug)]
pub enum SecondStep<'a> {
    /// A TOTP code or a recovery code.
    Code(&'a str),
    /// The browser's answer to `/api/auth/login/passkey/start`'s options.
    Passkey(serde_json::Value),
}

/// The second-factor methods a login offers for these factors, among `totp`, `recovery`,
/// `passkey`.
fn methods(factors: &crate::store::SecondFactors) -> Vec<&'static str> {
    let mut methods = Vec::with_capacity(3);
    if factors.totp {
        methods.push("totp");
    }
    if factors.recovery_codes_left > 0 {
        methods.push("recovery");
    }
    if factors.passkeys > 0 {
        methods.push("passkey");
    }
    methods
}

/// What a right password leads to.
#[derive(Debug)]
pub enum Login {
    /// Signed in.
    Session(Box<AccountRecord>, IssuedSession),
    /// The account has a second factor: no tokens yet, a ticket for the second step.
    SecondFactor {
        mfa_token: String,
        /// Among `totp`, `recovery`, `passkey`.
        methods: Vec<&'static str>,
    },
}

impl Login {
    /// The session, for callers that know the account has no second factor.
    pub fn session(self) -> Option<(AccountRecord, IssuedSession)> {
        match self {
            Login::Session(account, issued) => Some((*account, issued)),
            Login::SecondFactor { .. } => None,
        }
    }
}

/// What brama holds about one account, for its owner.
#[derive(Debug)]
pub struct OwnData {
    pub account: AccountRecord,
    /// Its live sessions, newest first.
    pub sessions: Vec<SessionRecord>,
    /// Every audit event about it, oldest first.
    pub trail: Vec<TrailEntry>,
}

/// A new account of the default organization: what the Membership API's register and
/// `brama user create` both give.
#[derive(Debug, Clone)]
pub struct Registration {
    pub username: Username,
    pub email: AccountEmail,
    pub password: Password,
}

/// A login attempt: a username or an email, and a password, neither checked against any rule
/// (an old account may predate today's rules).
#[derive(Debug)]
pub struct Credentials {
    pub login: String,
    pub password: SecretString,
}

/// A password change by the account holder.
#[derive(Debug)]
pub struct PasswordChange {
    pub current: SecretString,
    pub new: Password,
}

/// A new password set with an emailed reset token.
#[derive(Debug)]
pub struct PasswordReset {
    pub token: SecretString,
    pub password: Password,
}

/// How long a password-reset link works.
const RESET_TTL_MS: i64 = 60 * 60 * 1000;
/// Longest login name and password a login attempt is hashed for; anything longer is refused
/// before any work, with the answer of a wrong password.
const MAX_LOGIN_CHARS: usize = 254;
const MAX_PASSWORD_CHARS: usize = 1024;

/// SPEC §2: the first account of an organization is its owner where the organization
/// bootstraps that way (`owner_bootstrap`: a company's sign-up; the default organization unless
/// `bootstrap_first_user = false`). The first account, however it is made, ends the bootstrap;
/// every other account gets the role asked for.
pub fn role_for_new_account(
    requested: Role,
    first_of_organization: bool,
    owner_bootstrap: bool,
) -> Role {
    if first_of_organization && owner_bootstrap {
        Role::Owner
    } else {
        requested
    }
}

/// A single-use link (activation, password reset) works once, until it expires.
pub fn live_link(link: &LinkTokenRecord, now: i64) -> bool {
    link.used_at.is_none() && link.expires_at > now
}

impl Core {
    /// A look at an emailed link's token before any work is done for it: nobody makes brama hash
    /// a password for a token that does not work. The attempt counts against the client's
    /// address like a failed login; `invalid` is the answer for a token that is not live.
    pub(crate) async fn live_link_or(
        &self,
        kind: LinkKind,
        token_hash: &str,
        client: &Client,
        invalid: CoreError,
    ) -> CoreResult<LinkTokenRecord> {
        let attempt = self.reserve_address_attempt(client).await?;
        let link = self.store.link_token(kind, token_hash).await?;
        match link.filter(|l| live_link(l, now_ms())) {
            Some(link) => {
                self.login_attempt_succeeded(attempt).await;
                Ok(link)
            }
            None => Err(invalid),
        }
    }
}

impl Core {
    /// Registers an account in the default organization. The first one is its owner when
    /// `bootstrap_first_user` is on.
    /// With `log_in`, the new account's first session is opened in the same transaction (the
    /// page's register logs the person straight in).
    pub async fn register(
        &self,
        registration: Registration,
        client: &Client,
        log_in: bool,
    ) -> CoreResult<(AccountRecord, Option<IssuedSession>)> {
        self.count_registration(client).await?;
        let origin = Origin::SignUp { client, log_in };
        let (account, issued) = self
            .add_account(
                &registration,
                Role::User,
                self.config.bootstrap_first_user,
                origin,
            )
            .await?;
        tracing::info!(account = %account.id, role = %account.role, "account registered");
        Ok((account, issued))
    }

    /// Creates an account with a given role from the command line (`brama user create`).
    pub async fn create_account(
        &self,
        registration: Registration,
        role: Role,
    ) -> CoreResult<AccountRecord> {
        let (account, _) = self
            .add_account(&registration, role, false, Origin::CommandLine)
            .await?;
        Ok(account)
    }

    /// Both ways of adding an account to the default organization.
    async fn add_account(
        &self,
        registration: &Registration,
        requested: Role,
        owner_bootstrap: bool,
        origin: Origin<'_>,
    ) -> CoreResult<(AccountRecord, Option<IssuedSession>)> {
        let hash = self.hasher.hash(registration.password.expose()).await?;
        let now = now_ms();
        let mut tx = self.begin().await?;
        let first = tx.claim_first_account(DEFAULT_ORGANIZATION).await?;
        let username = registration.username.as_str();
        let email = registration.email.as_str();
        let account = tx
            .insert_account(&NewAccount {
                id: uuid::Uuid::now_v7().to_string(),
                organization_id: DEFAULT_ORGANIZATION.into(),
                username_norm: Some(normalize_key(username)),
                username: Some(username.to_string()),
                email_norm: normalize_key(email),
                email: email.to_string(),
                phone: None,
                phone_norm: None,
                name: String::new(),
                surname: String::new(),
                password_hash: Some(hash),
                role: role_for_new_account(requested, first, owner_bootstrap),
                status: AccountStatus::Active,
                now,
            })
            .await?;
        let (event, issued) = match origin {
            Origin::SignUp { client, log_in } => {
                let issued = if log_in {
                    Some(
                        self.open_session(&mut *tx, &account, client, now, AMR_PASSWORD)
                            .await?,
                    )
                } else {
                    None
                };
                let event = AuditAction::AccountRegistered.by_itself(&account, client.ip);
                (event, issued)
            }
            Origin::CommandLine => {
                let event = AuditAction::AccountCreatedCli.event(
                    Some(&account.organization_id),
                    None,
                    Some(account.id.clone()),
                    None,
                );
                (event, None)
            }
        };
        tx.record_audit(&event, now).await?;
        tx.commit().await?;
        Ok((account, issued))
    }

    /// Checks a username (or email) and password and starts a session. Unknown users, wrong
    /// passwords and accounts that may not log in get the same error after the same work.
    pub async fn login(&self, credentials: Credentials, client: &Client) -> CoreResult<Login> {
        let password = credentials.password.expose_secret();
        // Bound the work an attacker can make us do before hashing.
        if password.chars().count() > MAX_PASSWORD_CHARS
            || credentials.login.chars().count() > MAX_LOGIN_CHARS
        {
            return Err(CoreError::InvalidCredentials);
        }

        let key = normalize_key(&credentials.login);
        let account = self.store.account_by_login(&key).await?;
        let budget = account.as_ref().map(|a| a.id.as_str()).ok_or(key.as_str());
        let attempt = self.reserve_login_attempt(budget, client).await?;
        let hash = account.as_ref().and_then(|a| a.password_hash.as_deref());
        let verified = self.hasher.verify(password, hash).await?;
        let account = match account {
            Some(a) if verified.matches && a.status.may_log_in() => a,
            other => {
                self.audit_alone(AuditAction::LoginFailed.event(
                    other.as_ref().map(|a| a.organization_id.as_str()),
                    None,
                    other.as_ref().map(|a| a.id.clone()),
                    client.ip,
                ))
                .await;
                crate::telemetry::count_login(false);
                return Err(CoreError::InvalidCredentials);
            }
        };
        let now = now_ms();
        let factors = self.store.second_factors(&account.id).await?;
        let second_factor = !factors.none();
        if second_factor {
            self.login_attempt_half_done(attempt).await;
        } else {
            self.login_attempt_succeeded(attempt).await;
        }
        let mut tx = self.begin().await?;
        if let Some(new_hash) = verified.rehash {
            let upgrade = AccountUpdate {
                password_hash: Some(new_hash),
                ..AccountUpdate::default()
            };
            tx.update_account(&account.id, &upgrade, now).await?;
        }
        if second_factor {
            let mfa_token = random_token();
            tx.insert_mfa_ticket(
                &token_hash(&mfa_token),
                &account.id,
                now,
                now + MFA_TICKET_MS,
            )
            .await?;
            tx.commit().await?;
            return Ok(Login::SecondFactor {
                mfa_token,
                methods: methods(&factors),
            });
        }
        let issued = self
            .signed_in(tx, &account, client, now, AMR_PASSWORD)
            .await?;
        Ok(Login::Session(Box::new(account), issued))
    }

    /// The end of a login: its session, audited `login`, committed and counted.
    pub(crate) async fn signed_in(
        &self,
        mut tx: Box<dyn crate::store::Tx>,
        account: &AccountRecord,
        client: &Client,
        now: i64,
        amr: &str,
    ) -> CoreResult<IssuedSession> {
        let issued = self
            .open_session(&mut *tx, account, client, now, amr)
            .await?;
        let event = AuditAction::Login.event(
            Some(&account.organization_id),
            Some(&account.id),
            Some(issued.session_id.clone()),
            client.ip,
        );
        tx.record_audit(&event, now).await?;
        tx.commit().await?;
        crate::telemetry::count_login(true);
        Ok(issued)
    }

    /// The second step of a login: the ticket of the first and a TOTP or recovery code, or a
    /// passkey's answer. A wrong one counts against the ticket (five, then it is void) and as a
    /// failed login of the account; the ticket is used once.
    pub async fn login_second_factor(
        &self,
        mfa_token: &str,
        proof: SecondStep<'_>,
        client: &Client,
    ) -> CoreResult<(AccountRecord, IssuedSession)> {
        let now = now_ms();
        let hash = token_hash(mfa_token);
        // Read once before the transaction to learn whose attempt this is (the limiter is not
        // asked while a transaction is open), and again, locked, inside it.
        let live = |t: &crate::store::MfaTicketRecord| live_ticket(t, now);
        let ticket = self
            .store
            .mfa_ticket(&hash)
            .await?
            .filter(live)
            .ok_or(CoreError::MfaTokenInvalid)?;
        let attempt = self
            .reserve_login_attempt(Ok(&ticket.account_id), client)
            .await?;
        let mut tx = self.begin().await?;
        let ticket = tx
            .mfa_ticket(&hash)
            .await?
            .filter(live)
            .ok_or(CoreError::MfaTokenInvalid)?;
        let account = tx
            .account(&ticket.account_id)
            .await?
            .filter(|a| a.status.may_log_in())
            .ok_or(CoreError::MfaTokenInvalid)?;
        let proven = match proof {
            SecondStep::Code(code) => self
                .prove_second_factor(&mut *tx, &account.id, code, now)
                .await?
                .map(|_| AMR_PASSWORD_OTP)
                .ok_or(CoreError::InvalidCode),
            SecondStep::Passkey(credential) => self
                .prove_passkey(&mut *tx, &account, &hash, credential, now)
                .await?
                .map(|()| AMR_PASSWORD_PASSKEY),
        };
        let amr = match proven {
            Ok(amr) => amr,
            Err(refused) => {
                tx.mfa_ticket_failed(&hash).await?;
                let event = AuditAction::MfaFailed.event(
                    Some(&account.organization_id),
                    None,
                    Some(account.id.clone()),
                    client.ip,
                );
                tx.record_audit(&event, now).await?;
                tx.commit().await?;
                crate::telemetry::count_login(false);
                return Err(refused);
            }
        };
        if !tx.spend_mfa_ticket(&hash, now).await? {
            return Err(CoreError::MfaTokenInvalid);
        }
        let issued = self.signed_in(tx, &account, client, now, amr).await?;
        self.login_attempt_succeeded(attempt).await;
        Ok((account, issued))
    }

    /// The account behind an access token, within the token's organization.
    pub async fn me(&self, caller: &Caller) -> CoreResult<Arc<SeenAccount>> {
        let account = match self.cached_account(&caller.account_id) {
            Some(a) => a,
            None => match self.store.account(&caller.account_id).await? {
                Some(fresh) => {
                    let fresh = Arc::new(SeenAccount {
                        record: fresh,
                        me_answer: std::sync::OnceLock::new(),
                    });
                    self.remember_account(&fresh);
                    fresh
                }
                None => return Err(CoreError::TokenInvalid),
            },
        };
        if may_act(&account.record, caller) {
            Ok(account)
        } else {
            Err(CoreError::TokenInvalid)
        }
    }

    /// The caller's account, once `password` is its password (`WrongPassword` otherwise), read
    /// afresh: the check is against the hash as it is now, not as cached. A stolen access token
    /// must not guess the password forever: each check is a login attempt of the account.
    pub(crate) async fn check_own_password(
        &self,
        caller: &Caller,
        password: &SecretString,
        client: &Client,
    ) -> CoreResult<AccountRecord> {
        let account = own_account(self.store.account(&caller.account_id).await?, caller)?;
        let attempt = self.reserve_login_attempt(Ok(&account.id), client).await?;
        let verified = self
            .hasher
            .verify(password.expose_secret(), account.password_hash.as_deref())
            .await?;
        if !verified.matches {
            return Err(CoreError::WrongPassword);
        }
        self.login_attempt_succeeded(attempt).await;
        Ok(account)
    }

    /// Changes the password after checking the current one; the caller's other sessions end.
    pub async fn change_password(
        &self,
        caller: &Caller,
        change: PasswordChange,
        client: &Client,
    ) -> CoreResult<()> {
        let account = self
            .check_own_password(caller, &change.current, client)
            .await?;
        let hash = self.hasher.hash(change.new.expose()).await?;
        let now = now_ms();
        let mut tx = self.begin().await?;
        let update = AccountUpdate {
            password_hash: Some(hash),
            ..AccountUpdate::default()
        };
        tx.update_account(&account.id, &update, now).await?;
        // A reset link asked for before the change would undo it.
        tx.spend_link_tokens_of(LinkKind::PasswordReset, &account.id, now)
            .await?;
        tx.revoke_sessions(
            &account.id,
            Some(&caller.session_id),
            crate::domain::RevokeReason::PasswordChanged,
            now,
        )
        .await?;
        let event = AuditAction::PasswordChanged.by_itself(&account, client.ip);
        tx.record_audit(&event, now).await?;
        tx.commit().await?;
        self.forget_account(&account.id);
        self.forget_sessions();
        Ok(())
    }

    /// Deletes the caller's own account after checking its password (GDPR Art. 17): its
    /// sessions end and go with it, and with them its refresh tokens, its links and emails; its
    /// audit events keep only its id. The last owner of an organization may not leave it
    /// ownerless (`LastOwner`). Audited as `account.deleted`.
    pub async fn delete_own_account(
        &self,
        caller: &Caller,
        password: SecretString,
        client: &Client,
    ) -> CoreResult<()> {
        let account = self.check_own_password(caller, &password, client).await?;
        let now = now_ms();
        let mut tx = self.begin().await?;
        let owners = tx.owners(&account.organization_id).await?;
        if owners == [account.id.as_str()] {
            return Err(CoreError::LastOwner);
        }
        tx.delete_account(&account.id).await?;
        let event = AuditAction::AccountDeleted.event(
            Some(&account.organization_id),
            None,
            Some(account.id.clone()),
            client.ip,
        );
        tx.record_audit(&event, now).await?;
        tx.commit().await?;
        self.forget_account(&account.id);
        self.forget_sessions();
        Ok(())
    }

    /// Everything brama holds about the caller (GDPR Art. 15): the account, its sessions and
    /// every audit event about it. Audited as `account.data_export`.
    pub async fn own_data(&self, caller: &Caller, client: &Client) -> CoreResult<OwnData> {
        let account = own_account(self.store.account(&caller.account_id).await?, caller)?;
        let sessions = self.store.live_sessions(&account.id, now_ms()).await?;
        self.flush_audit().await;
        let trail = self
            .store
            .audit_trail(&account.organization_id, &account.id)
            .await?;
        self.audit_alone(AuditAction::AccountDataExported.by_itself(&account, client.ip))
            .await;
        Ok(OwnData {
            account,
            sessions,
            trail,
        })
    }

    /// Sends a reset link if an active account uses `email`. The answer, and its timing, do not
    /// depend on whether one does: the lookup and the email happen after the answer.
    pub async fn forgot_password(
        self: &Arc<Self>,
        email: AccountEmail,
        lang: crate::i18n::Lang,
        client: &Client,
    ) -> CoreResult<()> {
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
        let core = Arc::clone(self);
        let ip = client.ip;
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
        ip: Option<std::net::IpAddr>,
    ) -> CoreResult<()> {
        let Some(account) = self.store.account_by_login(key).await? else {
            return Ok(());
        };
        if !account.status.may_log_in() {
            return Ok(());
        }
        let token = random_token();
        let now = now_ms();
        let expires_at = now + RESET_TTL_MS;
        let mut tx = self.begin().await?;
        tx.insert_link_token(
            LinkKind::PasswordReset,
            &account.id,
            &token_hash(&token),
            now,
            expires_at,
        )
        .await?;
        // In the fragment: it never reaches a server log or a Referer header.
        let link = format!("{}/reset#token={token}", self.config.public_url());
        let email = crate::i18n::email(lang, "reset", &link);
        let email = self
            .queue_email(&mut *tx, &account.email, email, expires_at)
            .await?;
        tx.commit().await?;
        self.email_queued("password reset", &email);
        // The trail says a reset email went out, so only once it is queued.
        self.audit_alone(AuditAction::PasswordResetRequested.event(
            Some(&account.organization_id),
            None,
            Some(account.id.clone()),
            ip,
        ))
        .await;
        Ok(())
    }

    /// Sets a new password with a reset token; every session of the account ends. Spending the
    /// token, the new password, the revocations and the audit event commit together.
    pub async fn reset_password(&self, reset: PasswordReset, client: &Client) -> CoreResult<()> {
        let presented = token_hash(reset.token.expose_secret());
        self.live_link_or(
            LinkKind::PasswordReset,
            &presented,
            client,
            CoreError::ResetTokenInvalid,
        )
        .await?;
        let hash = self.hasher.hash(reset.password.expose()).await?;
        let now = now_ms();
        // Decided again under the lock: the token may have been used while we hashed.
        let mut tx = self.begin().await?;
        let link = tx.link_token(LinkKind::PasswordReset, &presented).await?;
        let Some(link) = link.filter(|l| live_link(l, now)) else {
            return Err(CoreError::ResetTokenInvalid);
        };
        if !tx
            .spend_link_token(LinkKind::PasswordReset, &presented, now)
            .await?
        {
            return Err(CoreError::ResetTokenInvalid);
        }
        let update = AccountUpdate {
            password_hash: Some(hash),
            ..AccountUpdate::default()
        };
        let Some(account) = tx.update_account(&link.account_id, &update, now).await? else {
            return Err(CoreError::ResetTokenInvalid);
        };
        // The account's other reset links would set the password again: they end too.
        tx.spend_link_tokens_of(LinkKind::PasswordReset, &account.id, now)
            .await?;
        tx.revoke_sessions(
            &account.id,
            None,
            crate::domain::RevokeReason::PasswordReset,
            now,
        )
        .await?;
        let event = AuditAction::PasswordReset.by_itself(&account, client.ip);
        tx.record_audit(&event, now).await?;
        tx.commit().await?;
        self.forget_account(&account.id);
        self.forget_sessions();
        Ok(())
    }
}

/// Who adds an account: a person signing up (and maybe logging straight in), or the operator.
enum Origin<'a> {
    SignUp { client: &'a Client, log_in: bool },
    CommandLine,
}

/// The caller's own account, if it still is one that may act: in the token's organization,
/// and active.
pub(crate) fn own_account(
    account: Option<AccountRecord>,
    caller: &Caller,
) -> CoreResult<AccountRecord> {
    match account {
        Some(a) if may_act(&a, caller) => Ok(a),
        _ => Err(CoreError::TokenInvalid),
    }
}

/// Whether `account` is the caller's own and may still act: in the token's organization, and
/// allowed to log in.
fn may_act(account: &AccountRecord, caller: &Caller) -> bool {
    account.organization_id == caller.organization_id && account.status.may_log_in()
}
