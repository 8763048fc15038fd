//! A second factor (SPEC §13): an account's TOTP authenticator and its recovery codes.
//!
//! The TOTP secret is sealed under the data key of SPEC §12, bound to the account (so a sealed
//! secret copied to another account's row does not open), and rotates with it. A code is
//! accepted once: the factor keeps the last accepted time step, and a code counts only for a
//! later one (checked and written in one statement). Recovery codes are stored as SHA-256 (each
//! has 80 random bits) and spent once. Every wrong code counts as a failed login of the account
//! (section 7), so a stolen access token cannot try the million codes either.

use crate::core::audit::AuditAction;
use crate::core::{Caller, Client, Core, CoreError, CoreResult, now_ms};
use crate::crypto::{token_hash, totp};

/// What `POST /api/auth/mfa/totp` answers: the secret for the authenticator app, as text, as an
/// `otpauth://` URI and as that URI's QR code.
#[derive(Debug)]
pub struct TotpEnrolment {
    pub secret: String,
    pub otpauth_uri: String,
    pub qr_svg: String,
}

/// `GET /api/auth/mfa`.
#[derive(Debug)]
pub struct MfaStatus {
    /// A confirmed TOTP factor.
    pub totp: bool,
    pub recovery_codes_left: i64,
    pub passkeys: Vec<crate::store::PasskeyRecord>,
}

/// The associated data a TOTP secret is sealed with: the account it belongs to.
pub(crate) fn sealed_for(account_id: &str) -> String {
    format!("totp:{account_id}")
}

/// Which second factor a code proved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proof {
    Totp,
    Recovery,
}

impl Core {
    pub async fn mfa_status(&self, caller: &Caller) -> CoreResult<MfaStatus> {
        let factors = self.store.second_factors(&caller.account_id).await?;
        let passkeys = if factors.passkeys > 0 {
            self.store.passkeys(&caller.account_id).await?
        } else {
            Vec::new()
        };
        Ok(MfaStatus {
            totp: factors.totp,
            recovery_codes_left: factors.recovery_codes_left,
            passkeys,
        })
    }

    /// A new TOTP secret for the caller, not asked for at login until a code confirms it. An
    /// earlier unconfirmed one is replaced; a confirmed one must be disabled first (409).
    pub async fn start_totp(&self, caller: &Caller) -> CoreResult<TotpEnrolment> {
        let now = now_ms();
        let mut tx = self.begin().await?;
        let account = tx
            .account(&caller.account_id)
            .await?
            .ok_or(CoreError::TokenInvalid)?;
        let secret = totp::new_secret();
        let sealed = self.keys().encrypt(&sealed_for(&account.id), &secret);
        if !tx.put_totp(&account.id, &sealed, now).await? {
            return Err(CoreError::TotpEnabled);
        }
        tx.commit().await?;
        let issuer = self.config.issuer_name();
        let otpauth_uri = totp::otpauth_uri(
            &issuer,
            account.username.as_deref().unwrap_or(&account.email),
            &secret,
        );
        let qr_svg = totp::qr_svg(&otpauth_uri)
            .ok_or_else(|| CoreError::Internal("the QR code of an otpauth URI".into()))?;
        Ok(TotpEnrolment {
            secret,
            otpauth_uri,
            qr_svg,
        })
    }

    /// The first code from the authenticator: the factor is on from now, and the account gets
    /// its recovery codes (shown this once).
    pub async fn confirm_totp(
        &self,
        caller: &Caller,
        code: &str,
        client: &Client,
    ) -> CoreResult<Vec<String>> {
        let attempt = self
            .reserve_login_attempt(Ok(&caller.account_id), client)
            .await?;
        let now = now_ms();
        let mut tx = self.begin().await?;
        // The account's row, locked: its factors change one at a time.
        tx.account(&caller.account_id).await?;
        let factor = match tx.totp_factor(&caller.account_id).await? {
            Some(f) if f.confirmed_at.is_none() => f,
            Some(_) => return Err(CoreError::TotpEnabled),
            None => return Err(CoreError::TotpNotStarted),
        };
        let secret = self.open_totp_secret(&factor.account_id, &factor.secret)?;
        let accepted = match totp::matching_step(&secret, code, now) {
            Some(step) => {
                tx.accept_totp_step(&caller.account_id, step, true, now)
                    .await?
            }
            None => false,
        };
        if !accepted {
            drop(tx);
            self.mfa_failed(caller, client).await;
            return Err(CoreError::InvalidCode);
        }
        let codes = self
            .new_recovery_codes(&mut *tx, &caller.account_id)
            .await?;
        tx.record_audit(
            &self.mfa_event(caller, AuditAction::MfaEnabled, client),
            now,
        )
        .await?;
        tx.commit().await?;
        self.login_attempt_succeeded(attempt).await;
        Ok(codes)
    }

    /// Turns TOTP off, proven by a current code or a recovery code. The recovery codes go too
    /// unless a passkey is left.
    pub async fn disable_totp(
        &self,
        caller: &Caller,
        code: &str,
        client: &Client,
    ) -> CoreResult<()> {
        // Without TOTP there is nothing to turn off (and no recovery code to spend on it).
        if !self.store.second_factors(&caller.account_id).await?.totp {
            return Err(CoreError::TotpNotStarted);
        }
        let (mut tx, attempt, now) = self.proven(caller, code, client).await?;
        tx.delete_totp(&caller.account_id).await?;
        self.factor_removed(tx, caller, client, now).await?;
        self.login_attempt_succeeded(attempt).await;
        Ok(())
    }

    /// The end of removing one of the caller's factors in `tx`: with the last one go the
    /// recovery codes; audited `mfa.disabled`; committed.
    pub(crate) async fn factor_removed(
        &self,
        mut tx: Box<dyn crate::store::Tx>,
        caller: &Caller,
        client: &Client,
        now: i64,
    ) -> CoreResult<()> {
        if tx.second_factors(&caller.account_id).await?.none() {
            tx.replace_recovery_codes(&caller.account_id, &[]).await?;
        }
        tx.record_audit(
            &self.mfa_event(caller, AuditAction::MfaDisabled, client),
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Ten new recovery codes in place of the old ones, proven by a current code or a recovery
    /// code. An account with passkeys alone has no code once its recovery codes are spent: it
    /// proves itself with no code by a session opened with a passkey within
    /// [`crate::core::passkeys::RECENT_SIGN_IN_MS`].
    pub async fn regenerate_recovery_codes(
        &self,
        caller: &Caller,
        code: Option<&str>,
        client: &Client,
    ) -> CoreResult<Vec<String>> {
        let Some(code) = code else {
            let factors = self.store.second_factors(&caller.account_id).await?;
            if factors.totp || factors.passkeys == 0 || !caller.with_passkey {
                return Err(CoreError::Validation(vec![crate::domain::FieldError {
                    field: "code",
                    problem: crate::domain::Problem::Required,
                }]));
            }
            self.recent_sign_in(caller).await?;
            let mut tx = self.begin().await?;
            tx.account(&caller.account_id).await?;
            let codes = self
                .new_recovery_codes(&mut *tx, &caller.account_id)
                .await?;
            tx.commit().await?;
            return Ok(codes);
        };
        let (mut tx, attempt, _) = self.proven(caller, code, client).await?;
        let codes = self
            .new_recovery_codes(&mut *tx, &caller.account_id)
            .await?;
        tx.commit().await?;
        self.login_attempt_succeeded(attempt).await;
        Ok(codes)
    }

    /// A transaction in which the caller has just proven their factor with `code` (spent), with
    /// the attempt it counted as. A wrong code is audited and stays counted.
    async fn proven(
        &self,
        caller: &Caller,
        code: &str,
        client: &Client,
    ) -> CoreResult<(
        Box<dyn crate::store::Tx>,
        crate::core::limits::LoginAttempt,
        i64,
    )> {
        let attempt = self
            .reserve_login_attempt(Ok(&caller.account_id), client)
            .await?;
        let now = now_ms();
        let mut tx = self.begin().await?;
        tx.account(&caller.account_id).await?;
        if self
            .prove_second_factor(&mut *tx, &caller.account_id, code, now)
            .await?
            .is_none()
        {
            drop(tx);
            self.mfa_failed(caller, client).await;
            return Err(CoreError::InvalidCode);
        }
        Ok((tx, attempt, now))
    }

    /// Checks `code` as a current TOTP code of the account's confirmed factor (six digits) or
    /// else as one of its recovery codes (which an account with passkeys alone has too), and
    /// spends it. `None`: neither.
    pub(crate) async fn prove_second_factor(
        &self,
        tx: &mut dyn crate::store::Tx,
        account_id: &str,
        code: &str,
        now: i64,
    ) -> CoreResult<Option<Proof>> {
        let factor = tx
            .totp_factor(account_id)
            .await?
            .filter(|f| f.confirmed_at.is_some());
        let code = code.trim();
        if code.len() == totp::DIGITS {
            let Some(factor) = factor else {
                return Ok(None);
            };
            let secret = self.open_totp_secret(account_id, &factor.secret)?;
            return Ok(match totp::matching_step(&secret, code, now) {
                Some(step) if tx.accept_totp_step(account_id, step, false, now).await? => {
                    Some(Proof::Totp)
                }
                _ => None,
            });
        }
        let Some(normalized) = totp::normalize_recovery_code(code) else {
            return Ok(None);
        };
        Ok(tx
            .spend_recovery_code(account_id, &token_hash(&normalized), now)
            .await?
            .then_some(Proof::Recovery))
    }

    pub(crate) async fn new_recovery_codes(
        &self,
        tx: &mut dyn crate::store::Tx,
        account_id: &str,
    ) -> CoreResult<Vec<String>> {
        let codes: Vec<String> = (0..totp::RECOVERY_CODES)
            .map(|_| totp::new_recovery_code())
            .collect();
        let hashes: Vec<String> = codes
            .iter()
            .filter_map(|c| totp::normalize_recovery_code(c))
            .map(|c| token_hash(&c))
            .collect();
        tx.replace_recovery_codes(account_id, &hashes).await?;
        Ok(codes)
    }

    /// A TOTP secret as stored, opened; a value that does not open is an error naming the
    /// account, never a made-up secret.
    fn open_totp_secret(&self, account_id: &str, sealed: &str) -> CoreResult<String> {
        let aad = sealed_for(account_id);
        let mut opened = self.keys().decrypt(&aad, sealed);
        if matches!(
            opened,
            Err(crate::crypto::datakey::CipherError::UnknownKey(_))
        ) {
            self.reload_data_keys();
            opened = self.keys().decrypt(&aad, sealed);
        }
        opened
            .map_err(|e| CoreError::Internal(format!("account {account_id}: its TOTP secret {e}")))
    }

    pub(crate) fn mfa_event(
        &self,
        caller: &Caller,
        action: AuditAction,
        client: &Client,
    ) -> crate::store::AuditEvent {
        action.event(
            Some(&caller.organization_id),
            Some(&caller.account_id),
            Some(caller.account_id.clone()),
            client.ip,
        )
    }

    /// A wrong second-factor code: audited `mfa.failed` (it already counted as a failed login).
    async fn mfa_failed(&self, caller: &Caller, client: &Client) {
        self.audit_alone(self.mfa_event(caller, AuditAction::MfaFailed, client))
            .await;
    }
}
