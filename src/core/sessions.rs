//! Sessions and tokens: one login is one session, one refresh-token family (SPEC §3).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::core::{AuditAction, Caller, Client, Core, CoreError, CoreResult, now_ms};
use crate::crypto::jwt::{Claims, VerifyError};
use crate::crypto::{random_token, token_hash};
use crate::domain::{RevokeReason, Role};
use crate::store::{
    AccountRecord, NewRefreshToken, NewSession, RefreshTokenState, SessionRecord, Tx,
};

/// A fresh token pair and the session it belongs to.
#[derive(Debug)]
pub struct IssuedSession {
    pub session_id: String,
    pub access_token: String,
    /// Seconds the access token is valid (the `token` cookie's Max-Age).
    pub access_ttl_secs: i64,
    pub refresh_token: String,
}

/// Why a refresh token that was not claimed is refused (SPEC §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No such token; or its session was revoked or its account may not log in; or a logout
    /// won a race against its rotation.
    Unknown,
    /// Never used, but the token or its session has run out.
    Expired,
    /// Used within `refresh_reuse_grace` of its rotation, in a live session: a client that
    /// raced itself. Refused; the session stays.
    RotatedRecently,
    /// Used before: whoever holds it is not the client it was rotated for. The session ends.
    Reused,
}

/// The verdict on a refresh token that `Store::claim_refresh` did not claim, from what is
/// stored about it.
pub fn refusal(state: Option<&RefreshTokenState>, now: i64, grace_ms: i64) -> Refusal {
    let Some(state) = state else {
        return Refusal::Unknown;
    };
    if state.successor_missing {
        // Claimed by a rotation whose session a logout revoked in the same instant.
        return Refusal::Unknown;
    }
    match state.used_at {
        None => {
            let ended = state.session_revoked_at.is_some() || !state.account_status.may_log_in();
            let expired = state.expires_at <= now || state.session_expires_at <= now;
            if expired && !ended {
                Refusal::Expired
            } else {
                Refusal::Unknown
            }
        }
        Some(used_at) => {
            if grace_ms > 0 && now - used_at <= grace_ms && state.session_revoked_at.is_none() {
                Refusal::RotatedRecently
            } else {
                Refusal::Reused
            }
        }
    }
}

/// Of an account's unrevoked sessions (newest first, the one just opened among them), those a
/// login ends: the live ones beyond `keep` (`max_sessions_per_account`), oldest first to go,
/// and every one that has run out (so that its tokens answer "unknown", as after a logout).
pub fn sessions_to_end(
    unrevoked_newest_first: &[SessionRecord],
    keep: u32,
    now: i64,
) -> Vec<&SessionRecord> {
    let keep = usize::try_from(keep).unwrap_or(usize::MAX);
    let mut kept = 0;
    unrevoked_newest_first
        .iter()
        .filter(|s| {
            let stays = s.expires_at > now && kept < keep;
            kept += usize::from(stays);
            !stays
        })
        .collect()
}

/// How long strict revocation trusts what it saw of a session.
const SESSION_CACHE_TTL: Duration = Duration::from_secs(1);
/// At most one key reload per this interval is caused by unknown `kid`s.
const KEY_RELOAD_MIN_INTERVAL: Duration = Duration::from_secs(5);
/// A refresh token longer than this is not one of ours; refused before any lookup.
const MAX_REFRESH_TOKEN_LEN: usize = 256;

/// What an access token is presented for, as far as enrolment-only tokens care (SPEC §13).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenUse {
    /// Reading one's account, setting up a second factor, signing out.
    Enrolment,
    /// Anything else.
    Other,
}

/// `amr` of a session opened with a password alone (RFC 8176).
pub const AMR_PASSWORD: &str = "pwd";
/// `amr` of a session opened with a password and a one-time code (TOTP or recovery code).
pub const AMR_PASSWORD_OTP: &str = "pwd otp mfa";
/// `amr` of a session opened with a password and a passkey.
pub const AMR_PASSWORD_PASSKEY: &str = "pwd hwk mfa";
/// `amr` of a session opened with a passkey alone: it verified its user (PIN or biometrics), so
/// it is two factors in one (`src/core/passkeys.rs`).
pub const AMR_PASSKEY: &str = "hwk mfa";

impl Core {
    pub(crate) fn refresh_expiry(&self, now: i64) -> i64 {
        now + i64::from(self.config.refresh_token_days) * 24 * 3600 * 1000
    }

    pub(crate) fn access_ttl_secs(&self) -> i64 {
        i64::from(self.config.access_token_minutes) * 60
    }

    /// Opens a session for an account that has just proven who it is.
    pub async fn start_session(
        &self,
        account: &AccountRecord,
        client: &Client,
    ) -> CoreResult<IssuedSession> {
        let now = now_ms();
        let mut tx = self.begin().await?;
        let issued = self
            .open_session(&mut *tx, account, client, now, AMR_PASSWORD)
            .await?;
        tx.commit().await?;
        Ok(issued)
    }

    /// A new session with its first refresh token, inside the caller's transaction; the
    /// account's oldest sessions beyond `max_sessions_per_account` end with it.
    pub(crate) async fn open_session(
        &self,
        tx: &mut dyn Tx,
        account: &AccountRecord,
        client: &Client,
        now: i64,
        amr: &str,
    ) -> CoreResult<IssuedSession> {
        let refresh_token = random_token();
        let session = NewSession {
            id: uuid::Uuid::now_v7().to_string(),
            account_id: account.id.clone(),
            created_at: now,
            expires_at: self.refresh_expiry(now),
            user_agent: client
                .user_agent
                .as_ref()
                .map(|ua| ua.chars().take(512).collect()),
            ip: client.ip.map(|ip| ip.to_string()),
            amr: amr.to_string(),
            client_id: None,
            scope: None,
            parent_id: None,
        };
        let token = NewRefreshToken {
            token_hash: token_hash(&refresh_token),
            expires_at: session.expires_at,
        };
        tx.insert_session(&session, &token).await?;
        let unrevoked = tx.unrevoked_sessions(&account.id).await?;
        for old in sessions_to_end(&unrevoked, self.config.max_sessions_per_account, now) {
            tx.revoke_session(&account.id, &old.id, RevokeReason::SessionLimit, now)
                .await?;
        }
        let access_token = self.sign_access(
            &account.id,
            &account.organization_id,
            account.role,
            &session.id,
            amr,
            now,
        )?;
        Ok(IssuedSession {
            session_id: session.id,
            access_token,
            access_ttl_secs: self.access_ttl_secs(),
            refresh_token,
        })
    }

    fn sign_access(
        &self,
        account_id: &str,
        organization_id: &str,
        role: Role,
        session_id: &str,
        amr: &str,
        now_ms: i64,
    ) -> CoreResult<String> {
        let iat = now_ms / 1000;
        let claims = Claims {
            iss: self.config.issuer(),
            aud: self.config.audience.clone(),
            sub: account_id.to_string(),
            org: organization_id.to_string(),
            roles: vec![role.as_str().to_string()],
            sid: session_id.to_string(),
            iat,
            exp: iat + self.access_ttl_secs(),
            jti: uuid::Uuid::now_v7().to_string(),
            amr: amr.split_whitespace().map(str::to_owned).collect(),
            mfa: (self.config.mfa_required(role) && !amr.split_whitespace().any(|a| a == "mfa"))
                .then(|| "enrol".to_string()),
        };
        self.keys
            .sign(&claims)
            .map_err(|e| CoreError::Internal(format!("signing: {e}")))
    }

    /// Uses a refresh token once and returns the next pair (SPEC §3). Runs on its own task: a
    /// client that hangs up cannot stop a rotation, or the revocation that answers a reuse,
    /// half-way.
    pub async fn refresh(
        self: &Arc<Self>,
        refresh_token: &str,
        client: &Client,
    ) -> CoreResult<IssuedSession> {
        if refresh_token.is_empty() || refresh_token.len() > MAX_REFRESH_TOKEN_LEN {
            return Err(CoreError::RefreshUnknown);
        }
        let (core, presented, ip) = (Arc::clone(self), token_hash(refresh_token), client.ip);
        match tokio::spawn(async move { core.rotate(presented, ip).await }).await {
            Ok(result) => result,
            Err(e) => Err(CoreError::Internal(format!("refresh task: {e}"))),
        }
    }

    async fn rotate(&self, presented: String, ip: Option<IpAddr>) -> CoreResult<IssuedSession> {
        let now = now_ms();
        let next_token = random_token();
        let next = NewRefreshToken {
            token_hash: token_hash(&next_token),
            expires_at: self.refresh_expiry(now),
        };
        if let Some(claimed) = self
            .store
            .claim_refresh(&presented, next, now, None)
            .await?
        {
            let access_token = self.sign_access(
                &claimed.account_id,
                &claimed.organization_id,
                claimed.role,
                &claimed.session_id,
                &claimed.amr,
                now,
            )?;
            return Ok(IssuedSession {
                session_id: claimed.session_id,
                access_token,
                access_ttl_secs: self.access_ttl_secs(),
                refresh_token: next_token,
            });
        }
        // A client's refresh token (SPEC §14) is not one of brama's here, whatever its state.
        match self.refuse_refresh(&presented, None, ip, now).await? {
            Refusal::Reused => Err(CoreError::RefreshReused),
            Refusal::Expired => Err(CoreError::RefreshExpired),
            Refusal::RotatedRecently => Err(CoreError::RefreshRotated),
            Refusal::Unknown => Err(CoreError::RefreshUnknown),
        }
    }

    /// Why a refresh token that was not claimed is refused, for the endpoint of `client` (`None`:
    /// brama's own refresh; a token of another kind is unknown there). A reuse ends the token's
    /// whole session, audited `refresh_token_reused`, whichever endpoint it came to (SPEC §3).
    pub(crate) async fn refuse_refresh(
        &self,
        presented: &str,
        client: Option<&str>,
        ip: Option<IpAddr>,
        now: i64,
    ) -> CoreResult<Refusal> {
        let grace_ms =
            i64::try_from(self.config.refresh_reuse_grace.saturating_mul(1000)).unwrap_or(i64::MAX);
        let state = self
            .store
            .refresh_token_state(presented)
            .await?
            .filter(|s| s.client_id.as_deref() == client);
        let verdict = refusal(state.as_ref(), now, grace_ms);
        if let (Refusal::Reused, Some(state)) = (verdict, state) {
            let mut tx = self.begin().await?;
            tx.revoke_session(
                &state.account_id,
                &state.session_id,
                RevokeReason::RefreshTokenReused,
                now,
            )
            .await?;
            let event = AuditAction::RefreshTokenReused.event(
                Some(&state.organization_id),
                Some(&state.account_id),
                Some(state.session_id.clone()),
                ip,
            );
            tx.record_audit(&event, now).await?;
            tx.commit().await?;
            tracing::warn!(session = %state.session_id, account = %state.account_id, "refresh token reused; session revoked");
            crate::telemetry::count_refresh_reuse();
            self.forget_session(&state.session_id);
        }
        Ok(verdict)
    }

    /// [`Core::authenticate`] for a use: an enrolment-only token (SPEC §13) serves only to set
    /// up a second factor, read one's account, and sign out.
    pub async fn authenticate_for(&self, token: &str, token_use: TokenUse) -> CoreResult<Caller> {
        let caller = self.authenticate(token).await?;
        if caller.enrolment_only && token_use == TokenUse::Other {
            return Err(CoreError::MfaEnrollmentRequired);
        }
        Ok(caller)
    }

    /// Checks an access token: signature, issuer, audience, expiry, and with
    /// `strict_revocation` that its session is still live.
    async fn authenticate(&self, token: &str) -> CoreResult<Caller> {
        let claims = match self.keys.verify(token) {
            Ok(c) => c,
            Err(VerifyError::UnknownKey) if self.may_reload_keys() => {
                if let Err(e) = self.keys.reload(&self.store, now_ms()).await {
                    tracing::error!(error = %e, "reloading signing keys failed");
                }
                self.keys.verify(token).map_err(verify_error)?
            }
            Err(e) => return Err(verify_error(e)),
        };
        if self.config.strict_revocation && !self.session_live(&claims.sid).await? {
            return Err(CoreError::TokenInvalid);
        }
        caller(&claims)
    }

    fn may_reload_keys(&self) -> bool {
        let mut last = self
            .last_key_reload
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        match *last {
            Some(t) if now.duration_since(t) < KEY_RELOAD_MIN_INTERVAL => false,
            _ => {
                *last = Some(now);
                true
            }
        }
    }

    async fn session_live(&self, session_id: &str) -> CoreResult<bool> {
        {
            let cache = self.session_cache.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((live, seen)) = cache.get(session_id)
                && seen.elapsed() < SESSION_CACHE_TTL
            {
                return Ok(*live);
            }
        }
        let now = now_ms();
        let live = matches!(
            self.store.session(session_id).await?,
            Some(s) if s.revoked_at.is_none() && s.expires_at > now
        );
        let mut cache = self.session_cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() > 100_000 {
            cache.retain(|_, (_, seen)| seen.elapsed() < SESSION_CACHE_TTL);
        }
        cache.insert(session_id.to_string(), (live, Instant::now()));
        Ok(live)
    }

    /// Drops this node's cached view of a session it has just revoked.
    pub(crate) fn forget_session(&self, session_id: &str) {
        self.session_cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(session_id);
    }

    /// Drops this node's cached view of every session (after revoking many at once).
    pub(crate) fn forget_sessions(&self) {
        self.session_cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    /// Ends the session the token belongs to.
    pub async fn logout(&self, caller: &Caller, client: &Client) -> CoreResult<()> {
        let now = now_ms();
        let mut tx = self.begin().await?;
        tx.revoke_session(
            &caller.account_id,
            &caller.session_id,
            RevokeReason::Logout,
            now,
        )
        .await?;
        tx.record_audit(
            &self.session_event(
                caller,
                AuditAction::Logout,
                Some(&caller.session_id),
                client,
            ),
            now,
        )
        .await?;
        tx.commit().await?;
        self.forget_session(&caller.session_id);
        Ok(())
    }

    /// Ends every session of the account.
    pub async fn logout_all(&self, caller: &Caller, client: &Client) -> CoreResult<u64> {
        let now = now_ms();
        let mut tx = self.begin().await?;
        let n = tx
            .revoke_sessions(&caller.account_id, None, RevokeReason::LogoutAll, now)
            .await?;
        tx.record_audit(
            &self.session_event(caller, AuditAction::LogoutAll, None, client),
            now,
        )
        .await?;
        tx.commit().await?;
        self.forget_sessions();
        Ok(n)
    }

    /// The caller's live sessions, newest first.
    pub async fn sessions(&self, caller: &Caller) -> CoreResult<Vec<SessionRecord>> {
        Ok(self
            .store
            .live_sessions(&caller.account_id, now_ms())
            .await?)
    }

    /// Revokes one of the caller's own sessions; another account's id is simply not found.
    pub async fn revoke_own_session(
        &self,
        caller: &Caller,
        session_id: &str,
        client: &Client,
    ) -> CoreResult<()> {
        let now = now_ms();
        let mut tx = self.begin().await?;
        if !tx
            .revoke_session(
                &caller.account_id,
                session_id,
                RevokeReason::RevokedByUser,
                now,
            )
            .await?
        {
            return Err(CoreError::NotFound);
        }
        tx.record_audit(
            &self.session_event(
                caller,
                AuditAction::SessionRevoked,
                Some(session_id),
                client,
            ),
            now,
        )
        .await?;
        tx.commit().await?;
        self.forget_session(session_id);
        Ok(())
    }

    fn session_event(
        &self,
        caller: &Caller,
        action: AuditAction,
        target: Option<&str>,
        client: &Client,
    ) -> crate::store::AuditEvent {
        action.event(
            Some(&caller.organization_id),
            Some(&caller.account_id),
            target.map(str::to_owned),
            client.ip,
        )
    }
}

/// The caller a verified token speaks for. A role name the token carries but brama does not
/// know makes the token invalid, never a lesser role.
fn caller(claims: &Claims) -> CoreResult<Caller> {
    let mut role = None;
    for name in &claims.roles {
        let parsed = Role::parse(name).ok_or(CoreError::TokenInvalid)?;
        role = role.max(Some(parsed));
    }
    Ok(Caller {
        account_id: claims.sub.clone(),
        organization_id: claims.org.clone(),
        session_id: claims.sid.clone(),
        role: role.ok_or(CoreError::TokenInvalid)?,
        enrolment_only: claims.mfa.as_deref() == Some("enrol"),
        with_passkey: claims.amr.iter().any(|a| a == "hwk"),
    })
}

fn verify_error(e: VerifyError) -> CoreError {
    match e {
        VerifyError::Expired => CoreError::TokenExpired,
        VerifyError::Invalid | VerifyError::UnknownKey => CoreError::TokenInvalid,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::AccountStatus;

    fn state() -> RefreshTokenState {
        RefreshTokenState {
            session_id: "s".into(),
            client_id: None,
            account_id: "a".into(),
            organization_id: "o".into(),
            account_status: AccountStatus::Active,
            used_at: None,
            expires_at: 2_000,
            session_revoked_at: None,
            session_expires_at: 3_000,
            successor_missing: false,
        }
    }

    #[test]
    fn an_unknown_token_is_unknown() {
        assert_eq!(refusal(None, 1_000, 0), Refusal::Unknown);
    }

    #[test]
    fn an_unused_token_is_expired_only_while_its_session_and_account_stand() {
        let now = 2_500;
        assert_eq!(refusal(Some(&state()), now, 0), Refusal::Expired);
        let session_over = RefreshTokenState {
            expires_at: 9_000,
            session_expires_at: 2_400,
            ..state()
        };
        assert_eq!(refusal(Some(&session_over), now, 0), Refusal::Expired);
        let revoked = RefreshTokenState {
            session_revoked_at: Some(10),
            ..state()
        };
        assert_eq!(refusal(Some(&revoked), now, 0), Refusal::Unknown);
        let disabled = RefreshTokenState {
            account_status: AccountStatus::Disabled,
            ..state()
        };
        assert_eq!(refusal(Some(&disabled), now, 0), Refusal::Unknown);
        // Not expired, yet not claimed: nothing to say but unknown.
        assert_eq!(refusal(Some(&state()), 1_000, 0), Refusal::Unknown);
    }

    #[test]
    fn a_used_token_is_reuse_unless_within_the_grace_of_a_live_session() {
        let used = RefreshTokenState {
            used_at: Some(1_000),
            ..state()
        };
        assert_eq!(refusal(Some(&used), 1_500, 0), Refusal::Reused);
        assert_eq!(refusal(Some(&used), 1_500, 500), Refusal::RotatedRecently);
        assert_eq!(refusal(Some(&used), 1_501, 500), Refusal::Reused);
        let revoked = RefreshTokenState {
            session_revoked_at: Some(1_200),
            ..used.clone()
        };
        assert_eq!(refusal(Some(&revoked), 1_300, 500), Refusal::Reused);
        let orphan = RefreshTokenState {
            successor_missing: true,
            ..used
        };
        assert_eq!(refusal(Some(&orphan), 1_300, 0), Refusal::Unknown);
    }

    #[test]
    fn the_oldest_sessions_go_beyond_the_limit_and_run_out_ones_with_them() {
        let session = |id: &str, expires_at: i64| SessionRecord {
            id: id.into(),
            account_id: "a".into(),
            created_at: 0,
            last_used_at: 0,
            expires_at,
            user_agent: None,
            ip: None,
            revoked_at: None,
            revoke_reason: None,
            amr: "pwd".into(),
            client_id: None,
            scope: None,
            parent_id: None,
        };
        let now = 100;
        let sessions = [
            session("new", 200),
            session("ran-out", 50),
            session("mid", 200),
            session("old", 200),
        ];
        let ends = |keep| {
            sessions_to_end(&sessions, keep, now)
                .iter()
                .map(|s| s.id.as_str())
                .collect::<Vec<_>>()
        };
        assert_eq!(ends(1), ["ran-out", "mid", "old"]);
        assert_eq!(ends(2), ["ran-out", "old"]);
        assert_eq!(ends(3), ["ran-out"]);
        assert_eq!(ends(10), ["ran-out"]);
    }

    #[test]
    fn a_token_with_an_unknown_role_speaks_for_nobody() {
        let claims = |roles: &[&str]| Claims {
            iss: "i".into(),
            aud: "a".into(),
            sub: "acc".into(),
            org: "org".into(),
            roles: roles.iter().map(|r| r.to_string()).collect(),
            sid: "s".into(),
            iat: 0,
            exp: 1,
            jti: "j".into(),
            amr: vec!["pwd".into()],
            mfa: None,
        };
        assert_eq!(
            caller(&claims(&["admin"])).map(|c| c.role).ok(),
            Some(Role::Admin)
        );
        assert_eq!(
            caller(&claims(&["user", "owner"])).map(|c| c.role).ok(),
            Some(Role::Owner)
        );
        assert!(matches!(
            caller(&claims(&["root"])),
            Err(CoreError::TokenInvalid)
        ));
        assert!(matches!(caller(&claims(&[])), Err(CoreError::TokenInvalid)));
    }
}
