//! Sessions and tokens: one login is one session, one refresh-token family (SPEC §3).

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::core::{Client, Core, CoreError, CoreResult, Role, now_ms};
use crate::crypto::jwt::{Claims, VerifyError};
use crate::crypto::{random_token, token_hash};
use crate::store::{
    AccountRecord, AuditEvent, NewRefreshToken, Rotation, SessionRecord, TokenSubject,
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

/// How long strict revocation trusts what it saw of a session.
const SESSION_CACHE_TTL: Duration = Duration::from_secs(1);
/// At most one key reload per this interval is caused by unknown `kid`s.
const KEY_RELOAD_MIN_INTERVAL: Duration = Duration::from_secs(5);

impl Core {
    fn refresh_expiry(&self, now: i64) -> i64 {
        now + i64::from(self.config.refresh_token_days) * 24 * 3600 * 1000
    }

    fn access_ttl_secs(&self) -> i64 {
        i64::from(self.config.access_token_minutes) * 60
    }

    /// Opens a session for an account that has just proven who it is.
    pub async fn start_session(
        &self,
        account: &AccountRecord,
        client: &Client,
    ) -> CoreResult<IssuedSession> {
        let now = now_ms();
        let refresh_token = random_token();
        let session = SessionRecord {
            id: uuid::Uuid::now_v7().to_string(),
            account_id: account.id.clone(),
            created_at: now,
            last_used_at: now,
            expires_at: self.refresh_expiry(now),
            user_agent: client
                .user_agent
                .as_ref()
                .map(|ua| ua.chars().take(512).collect()),
            ip: client.ip.map(|ip| ip.to_string()),
            revoked_at: None,
            revoke_reason: None,
        };
        let token = NewRefreshToken {
            token_hash: token_hash(&refresh_token),
            expires_at: session.expires_at,
        };
        let (store, keep, record) = (
            Arc::clone(&self.store),
            self.config.max_sessions_per_account,
            session.clone(),
        );
        detached(async move { store.create_session(record, token, keep).await }).await?;
        let access_token = self.sign_access(&account.into(), &session.id, now)?;
        Ok(IssuedSession {
            session_id: session.id,
            access_token,
            access_ttl_secs: self.access_ttl_secs(),
            refresh_token,
        })
    }

    fn sign_access(
        &self,
        subject: &TokenSubject,
        session_id: &str,
        now_ms: i64,
    ) -> CoreResult<String> {
        let iat = now_ms / 1000;
        let claims = Claims {
            iss: self.config.issuer(),
            aud: self.config.audience.clone(),
            sub: subject.account_id.clone(),
            org: subject.organization_id.clone(),
            roles: vec![subject.role.clone()],
            sid: session_id.to_string(),
            iat,
            exp: iat + self.access_ttl_secs(),
            jti: uuid::Uuid::now_v7().to_string(),
        };
        self.keys
            .sign(&claims)
            .map_err(|e| CoreError::Internal(format!("signing: {e}")))
    }

    /// Uses a refresh token once and returns the next pair (SPEC §3).
    pub async fn refresh(&self, refresh_token: &str, client: &Client) -> CoreResult<IssuedSession> {
        if refresh_token.is_empty() || refresh_token.len() > 256 {
            return Err(CoreError::RefreshUnknown);
        }
        let now = now_ms();
        let next_token = random_token();
        let next = NewRefreshToken {
            token_hash: token_hash(&next_token),
            expires_at: self.refresh_expiry(now),
        };
        let grace_ms =
            i64::try_from(self.config.refresh_reuse_grace.saturating_mul(1000)).unwrap_or(i64::MAX);
        let (store, presented) = (Arc::clone(&self.store), token_hash(refresh_token));
        match detached(async move {
            store
                .rotate_refresh_token(&presented, next, now, grace_ms)
                .await
        })
        .await?
        {
            Rotation::Rotated {
                session_id,
                subject,
            } => {
                let access_token = self.sign_access(&subject, &session_id, now)?;
                Ok(IssuedSession {
                    session_id,
                    access_token,
                    access_ttl_secs: self.access_ttl_secs(),
                    refresh_token: next_token,
                })
            }
            Rotation::Unknown => Err(CoreError::RefreshUnknown),
            Rotation::Expired => Err(CoreError::RefreshExpired),
            Rotation::RotatedRecently => Err(CoreError::RefreshRotated),
            Rotation::Reused {
                session_id,
                account_id,
                organization_id,
            } => {
                tracing::warn!(session = %session_id, account = %account_id, "refresh token reused; session revoked");
                crate::telemetry::count_refresh_reuse();
                self.forget_session(&session_id);
                self.audit(AuditEvent {
                    organization_id: Some(organization_id),
                    actor_id: Some(account_id),
                    action: "refresh_token_reused",
                    target: Some(session_id),
                    ip: client.ip.map(|ip| ip.to_string()),
                })
                .await;
                Err(CoreError::RefreshReused)
            }
        }
    }

    /// Checks an access token: signature, issuer, audience, expiry, and with
    /// `strict_revocation` that its session is still live.
    pub async fn authenticate(&self, token: &str) -> CoreResult<Claims> {
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
        Ok(claims)
    }

    /// The highest role in the token.
    pub fn role_of(claims: &Claims) -> Role {
        claims
            .roles
            .iter()
            .filter_map(|r| Role::parse(r))
            .max()
            .unwrap_or(Role::User)
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
    fn forget_session(&self, session_id: &str) {
        self.session_cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(session_id);
    }

    /// Ends the session the token belongs to.
    pub async fn logout(&self, claims: &Claims, client: &Client) -> CoreResult<()> {
        self.store
            .revoke_session(&claims.sub, &claims.sid, "logout", now_ms())
            .await?;
        self.forget_session(&claims.sid);
        self.audit_session(claims, "logout", Some(claims.sid.clone()), client)
            .await;
        Ok(())
    }

    /// Ends every session of the account.
    pub async fn logout_all(&self, claims: &Claims, client: &Client) -> CoreResult<u64> {
        let n = self
            .store
            .revoke_sessions(&claims.sub, None, "logout_all", now_ms())
            .await?;
        self.session_cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        self.audit_session(claims, "logout_all", None, client).await;
        Ok(n)
    }

    pub async fn sessions(&self, claims: &Claims) -> CoreResult<Vec<SessionRecord>> {
        Ok(self.store.live_sessions(&claims.sub, now_ms()).await?)
    }

    /// Revokes one of the caller's own sessions; another account's id is simply not found.
    pub async fn revoke_own_session(
        &self,
        claims: &Claims,
        session_id: &str,
        client: &Client,
    ) -> CoreResult<()> {
        if !self
            .store
            .revoke_session(&claims.sub, session_id, "revoked_by_user", now_ms())
            .await?
        {
            return Err(CoreError::NotFound);
        }
        self.forget_session(session_id);
        self.audit_session(
            claims,
            "session_revoked",
            Some(session_id.to_string()),
            client,
        )
        .await;
        Ok(())
    }

    async fn audit_session(
        &self,
        claims: &Claims,
        action: &'static str,
        target: Option<String>,
        client: &Client,
    ) {
        self.audit(AuditEvent {
            organization_id: Some(claims.org.clone()),
            actor_id: Some(claims.sub.clone()),
            action,
            target,
            ip: client.ip.map(|ip| ip.to_string()),
        })
        .await;
    }
}

/// Runs a transactional store call on its own task. A client that hangs up drops its request's
/// future; the transaction must still finish (or roll back) as a whole rather than stop
/// between two statements on a pooled connection.
async fn detached<T: Send + 'static>(
    work: impl std::future::Future<Output = crate::store::StoreResult<T>> + Send + 'static,
) -> CoreResult<T> {
    match tokio::spawn(work).await {
        Ok(result) => Ok(result?),
        Err(e) => Err(CoreError::Internal(format!("store task: {e}"))),
    }
}

fn verify_error(e: VerifyError) -> CoreError {
    match e {
        VerifyError::Expired => CoreError::TokenExpired,
        VerifyError::Invalid | VerifyError::UnknownKey => CoreError::TokenInvalid,
    }
}
