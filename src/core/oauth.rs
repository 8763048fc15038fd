//! OpenID Connect's authorization code flow (SPEC §14): authorize, consent, the token endpoint
//! (code exchange and refresh), userinfo, revocation and logout.
//!
//! The person's side is brama's own browser session: a login on the page sets, beside the
//! access-token cookie, an SSO cookie bound to that session by an HMAC (`brama_sso`, SameSite=Lax
//! so that it comes along when another site sends the browser here, HttpOnly, path `/oauth2`).
//! It works while the session lives: a logout, a revocation or a newer login (with one session
//! per account) ends it.
//!
//! An authorization request that needs a login or a consent is parked in the database under a
//! random id for 10 minutes; the page carries only that id through its login (never a cookie a
//! neighbouring site could plant), then sends the browser back to `/oauth2/authorize/resume`.
//!
//! A code exchange opens a grant: a session of the client's (`sessions.client_id`), child of the
//! browser session. Its refresh tokens (with `offline_access`) rotate in the same table and
//! statement as brama's own, with the same reuse detection, but only for their client at the
//! token endpoint (and never at `/api/auth/refreshtoken`). Its access tokens are EdDSA JWTs for
//! the userinfo endpoint alone (their audience), so a client cannot use them on brama's API.

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256, Sha512};
use subtle::ConstantTimeEq;

use crate::core::oidc::OidcClient;
use crate::core::{AuditAction, Core, CoreError, CoreResult, now_ms};
use crate::crypto::jwt::IdTokenAlg;
use crate::crypto::{random_token, token_hash};
use crate::domain::RevokeReason;
use crate::store::{
    AccountRecord, NewRefreshToken, NewSession, OidcCodeGrant, OidcCodeRecord, OidcRequestRecord,
    SessionRecord,
};

/// How long a parked authorization request waits for its login or consent.
pub const REQUEST_TTL_MS: i64 = 10 * 60 * 1000;
/// How long an authorization code can be exchanged (SPEC §14).
pub const CODE_TTL_MS: i64 = 60 * 1000;
/// The scopes brama knows; others are dropped from a request (RFC 6749 §3.3 lets the server).
pub const SCOPES: [&str; 5] = ["openid", "profile", "email", "offline_access", "roles"];
/// The longest `state`, `nonce` or `code_challenge` kept.
const MAX_PARAM_CHARS: usize = 512;

/// An authorization request as the client sent it, before any check.
#[derive(Debug, Default, Clone, Deserialize)]
pub struct AuthorizeParams {
    pub client_id: Option<String>,
    pub redirect_uri: Option<String>,
    pub response_type: Option<String>,
    pub scope: Option<String>,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
    pub prompt: Option<String>,
    pub max_age: Option<String>,
    pub request: Option<String>,
    pub request_uri: Option<String>,
    pub response_mode: Option<String>,
}

/// Why an authorization request is shown an error page instead of going back to the client:
/// the client or its redirect URI cannot be trusted (RFC 6749 §4.1.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageError {
    /// No `client_id`, or no client with it.
    UnknownClient,
    /// No `redirect_uri`, or one the client did not register (exactly).
    BadRedirectUri,
    /// A parked request that is unknown or expired (`/oauth2/authorize/resume`).
    UnknownRequest,
}

/// Where an authorization request goes next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Authorized {
    /// Back to the client: with a code, or with an error (RFC 6749 §4.1.2.1).
    Redirect(String),
    /// To the page's login, which comes back to `/oauth2/authorize/resume?request=…`.
    Login { request_id: String },
    /// To the page's consent screen.
    Consent { request_id: String },
}

/// A live browser session of brama's, found from the SSO cookie.
#[derive(Debug, Clone)]
pub struct SsoSession {
    pub session: SessionRecord,
    pub account: AccountRecord,
}

/// What the consent screen shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentInfo {
    pub client_name: String,
    pub scopes: Vec<String>,
    /// The account the person is signed in with.
    pub account: String,
}

/// How a client proved itself at the token, revocation endpoints.
#[derive(Debug, Default)]
pub struct ClientCredentials {
    pub client_id: Option<String>,
    pub secret: Option<SecretString>,
    /// The secret came in an `Authorization: Basic` header (an `invalid_client` answer then
    /// carries a `WWW-Authenticate` challenge).
    pub basic: bool,
}

/// An error of the token, revocation or userinfo endpoints (RFC 6749 §5.2, RFC 6750 §3.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    pub status: u16,
    pub error: &'static str,
    pub description: String,
    /// `WWW-Authenticate: Basic` with an `invalid_client`.
    pub basic_challenge: bool,
}

impl OAuthError {
    pub fn new(status: u16, error: &'static str, description: impl Into<String>) -> Self {
        OAuthError {
            status,
            error,
            description: description.into(),
            basic_challenge: false,
        }
    }

    pub fn invalid_request(description: impl Into<String>) -> Self {
        Self::new(400, "invalid_request", description)
    }

    fn invalid_grant(description: impl Into<String>) -> Self {
        Self::new(400, "invalid_grant", description)
    }

    fn invalid_token(description: impl Into<String>) -> Self {
        Self::new(401, "invalid_token", description)
    }

    /// A failure of the core (the database out of reach, ...): 503 or 500, in OAuth's shape.
    pub fn from_core(e: CoreError) -> Self {
        match e {
            CoreError::DatabaseUnavailable { .. } | CoreError::StorageFull { .. } => Self::new(
                503,
                "temporarily_unavailable",
                "the database does not answer; try again",
            ),
            other => {
                tracing::error!(error = %other, "OAuth endpoint failed");
                Self::new(500, "server_error", "internal error")
            }
        }
    }
}

impl From<CoreError> for OAuthError {
    fn from(e: CoreError) -> Self {
        Self::from_core(e)
    }
}

impl From<crate::store::StoreError> for OAuthError {
    fn from(e: crate::store::StoreError) -> Self {
        Self::from_core(e.into())
    }
}

/// The token endpoint's answer (RFC 6749 §5.1, OIDC Core §3.1.3.3).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenAnswer {
    pub access_token: String,
    /// `Bearer`.
    pub token_type: &'static str,
    pub expires_in: i64,
    pub id_token: String,
    /// With `offline_access`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    pub scope: String,
}

/// The claims of an ID token (OIDC Core §2), with the person's claims its scopes allow.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IdTokenClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub azp: String,
    pub exp: i64,
    pub iat: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub at_hash: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub amr: Vec<String>,
    /// The browser session (logout).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    #[serde(flatten)]
    pub person: PersonClaims,
}

/// What a client may know of the person, by scope: userinfo's answer, and the ID token's too.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct PersonClaims {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preferred_username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub given_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub family_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email_verified: Option<bool>,
    /// With scope `roles`: `user`, `moderator`, `admin` or `owner`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<String>>,
    /// With scope `roles`: the organization's id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub org: Option<String>,
}

/// The userinfo answer: `sub` and the person's claims.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct UserInfo {
    pub sub: String,
    #[serde(flatten)]
    pub person: PersonClaims,
}

/// An access token issued to a client: good at the userinfo endpoint only (its audience).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ClientAccessClaims {
    iss: String,
    sub: String,
    aud: String,
    client_id: String,
    scope: String,
    /// The grant's session.
    sid: String,
    iat: i64,
    exp: i64,
    jti: String,
}

/// What an `id_token_hint` must hold.
#[derive(Debug, Clone, Deserialize)]
struct HintClaims {
    sub: String,
    aud: serde_json::Value,
}

/// The scopes of a space-separated list that brama knows, each once, in a fixed order.
pub fn known_scopes(scope: &str) -> Vec<&'static str> {
    let asked: Vec<&str> = scope.split_whitespace().collect();
    SCOPES
        .iter()
        .copied()
        .filter(|s| asked.contains(s))
        .collect()
}

fn has_scope(scope: &str, wanted: &str) -> bool {
    scope.split_whitespace().any(|s| s == wanted)
}

/// `redirect_uri` with these parameters added to its query.
fn with_params(redirect_uri: &str, params: &[(&str, &str)]) -> String {
    match url::Url::parse(redirect_uri) {
        Ok(mut url) => {
            {
                let mut query = url.query_pairs_mut();
                for (k, v) in params {
                    query.append_pair(k, v);
                }
            }
            url.to_string()
        }
        // Registered URIs were parsed when they were registered.
        Err(_) => redirect_uri.to_string(),
    }
}

/// A PKCE value (verifier or challenge): 43 to 128 unreserved characters (RFC 7636 §4.1).
fn pkce_shaped(value: &str) -> bool {
    (43..=128).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

/// `at_hash` (OIDC Core §3.1.3.6): the left half of the access token's hash, base64url; the
/// hash is the one of the ID token's algorithm (SHA-256 for RS256, SHA-512 for Ed25519).
pub fn at_hash(access_token: &str, alg: IdTokenAlg) -> String {
    use base64::Engine;
    let digest: Vec<u8> = match alg {
        IdTokenAlg::RS256 => Sha256::digest(access_token.as_bytes()).to_vec(),
        IdTokenAlg::EdDSA => Sha512::digest(access_token.as_bytes()).to_vec(),
    };
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest[..digest.len() / 2])
}

impl Core {
    /// Where the OAuth endpoints live: the public URL.
    pub fn oauth_base(&self) -> String {
        self.config.public_url()
    }

    /// The audience of access tokens issued to clients: the userinfo endpoint.
    fn userinfo_audience(&self) -> String {
        format!("{}/oauth2/userinfo", self.oauth_base())
    }

    /// The browser session behind an SSO cookie, if it still lives and its account may log in.
    pub async fn sso_session(&self, cookie: Option<&str>) -> CoreResult<Option<SsoSession>> {
        let Some(session_id) = cookie.and_then(|c| self.csrf.sso_session(c)) else {
            return Ok(None);
        };
        let now = now_ms();
        let Some(session) = self.store.session(&session_id).await? else {
            return Ok(None);
        };
        if session.revoked_at.is_some() || session.expires_at <= now || session.client_id.is_some()
        {
            return Ok(None);
        }
        let Some(account) = self.store.account(&session.account_id).await? else {
            return Ok(None);
        };
        if !account.status.may_log_in() {
            return Ok(None);
        }
        Ok(Some(SsoSession { session, account }))
    }

    /// The SSO cookie's value for a browser session (see the module).
    pub fn sso_cookie_value(&self, session_id: &str) -> String {
        self.csrf.sso_token(session_id)
    }

    /// `GET /oauth2/authorize`: checks the request, then sends the browser back with a code, to
    /// the login, to the consent screen, or back with an error.
    pub async fn authorize(
        &self,
        params: AuthorizeParams,
        sso: Option<SsoSession>,
    ) -> CoreResult<Result<Authorized, PageError>> {
        let Some(client) = self
            .oidc_client(params.client_id.as_deref().unwrap_or(""))
            .await?
        else {
            return Ok(Err(PageError::UnknownClient));
        };
        let Some(redirect_uri) = params
            .redirect_uri
            .clone()
            .filter(|uri| client.redirect_uris.iter().any(|r| r == uri))
        else {
            return Ok(Err(PageError::BadRedirectUri));
        };
        let state = params.state.clone().filter(|s| !s.is_empty());
        let refuse = |error: &str, description: &str| {
            Ok(Ok(Authorized::Redirect(self.error_to_client(
                &redirect_uri,
                state.as_deref(),
                error,
                description,
            ))))
        };
        if params.request.is_some() {
            return refuse("request_not_supported", "request objects are not supported");
        }
        if params.request_uri.is_some() {
            return refuse("request_uri_not_supported", "request_uri is not supported");
        }
        match params.response_type.as_deref() {
            Some("code") => {}
            None => return refuse("invalid_request", "response_type is required"),
            Some(_) => {
                return refuse(
                    "unsupported_response_type",
                    "only response_type=code is supported",
                );
            }
        }
        if params
            .response_mode
            .as_deref()
            .is_some_and(|m| m != "query")
        {
            return refuse("invalid_request", "only response_mode=query is supported");
        }
        let scope = known_scopes(params.scope.as_deref().unwrap_or("")).join(" ");
        if !has_scope(&scope, "openid") {
            return refuse("invalid_scope", "scope must include openid");
        }
        let too_long = [&params.state, &params.nonce, &params.code_challenge]
            .iter()
            .any(|p| {
                p.as_deref()
                    .is_some_and(|v| v.chars().count() > MAX_PARAM_CHARS)
            });
        if too_long {
            return refuse("invalid_request", "state, nonce or code_challenge too long");
        }
        // They are stored and given back: no control characters (PostgreSQL refuses NUL).
        let controls = [&params.state, &params.nonce].iter().any(|p| {
            p.as_deref()
                .is_some_and(|v| v.chars().any(char::is_control))
        });
        if controls {
            return refuse("invalid_request", "state or nonce holds control characters");
        }
        let code_challenge = params.code_challenge.clone().filter(|c| !c.is_empty());
        match (&code_challenge, params.code_challenge_method.as_deref()) {
            (None, _) if client.is_public() => {
                return refuse(
                    "invalid_request",
                    "a public client must use PKCE (code_challenge with S256)",
                );
            }
            (None, Some(_)) => {
                return refuse(
                    "invalid_request",
                    "code_challenge_method without code_challenge",
                );
            }
            (Some(challenge), method) => {
                if method != Some("S256") {
                    return refuse("invalid_request", "code_challenge_method must be S256");
                }
                if !pkce_shaped(challenge) {
                    return refuse("invalid_request", "code_challenge is malformed");
                }
            }
            (None, None) => {}
        }
        let prompts: Vec<&str> = params
            .prompt
            .as_deref()
            .unwrap_or("")
            .split_whitespace()
            .collect();
        if prompts.contains(&"none") && prompts.len() > 1 {
            return refuse("invalid_request", "prompt=none cannot be combined");
        }
        // select_account: one account per browser session, nothing to choose from.
        let now = now_ms();
        let mut login_after = prompts.contains(&"login").then_some(now);
        if let Some(max_age) = params.max_age.as_deref() {
            let Ok(seconds) = max_age.trim().parse::<u32>() else {
                return refuse("invalid_request", "max_age must be a number of seconds");
            };
            let oldest = now - i64::from(seconds) * 1000;
            login_after = Some(login_after.map_or(oldest, |t| t.max(oldest)));
        }
        let request = OidcRequestRecord {
            id: random_token(),
            client_id: client.id.clone(),
            redirect_uri,
            scope,
            state,
            nonce: params.nonce.filter(|n| !n.is_empty()),
            code_challenge,
            login_after,
            consent_asked: i64::from(prompts.contains(&"consent")),
            created_at: now,
            expires_at: now + REQUEST_TTL_MS,
        };
        let answer = self
            .proceed(&client, request, sso, prompts.contains(&"none"), false)
            .await?;
        Ok(Ok(answer))
    }

    /// Back from the page's login: the parked request goes on, with the session now found.
    pub async fn resume_authorization(
        &self,
        request_id: &str,
        sso: Option<SsoSession>,
    ) -> CoreResult<Result<Authorized, PageError>> {
        let Some((request, client)) = self.parked(request_id).await? else {
            return Ok(Err(PageError::UnknownRequest));
        };
        Ok(Ok(self.proceed(&client, request, sso, false, true).await?))
    }

    async fn parked(
        &self,
        request_id: &str,
    ) -> CoreResult<Option<(OidcRequestRecord, OidcClient)>> {
        // Request ids are random base64url: anything else is no request.
        let shaped = request_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if request_id.is_empty() || request_id.len() > 64 || !shaped {
            return Ok(None);
        }
        let Some(request) = self.store.oidc_request(request_id).await? else {
            return Ok(None);
        };
        if request.expires_at <= now_ms() {
            return Ok(None);
        }
        let Some(client) = self.oidc_client(&request.client_id).await? else {
            return Ok(None);
        };
        Ok(Some((request, client)))
    }

    /// The rest of an authorization, once the request is valid: the person's session, then
    /// consent, then the code. `parked`: the request is stored already.
    async fn proceed(
        &self,
        client: &OidcClient,
        request: OidcRequestRecord,
        sso: Option<SsoSession>,
        prompt_none: bool,
        parked: bool,
    ) -> CoreResult<Authorized> {
        let refuse = |error: &str, description: &str| {
            Authorized::Redirect(self.error_to_client(
                &request.redirect_uri,
                request.state.as_deref(),
                error,
                description,
            ))
        };
        // The session counts if its account belongs to the client's organization and it was
        // opened late enough for prompt=login and max_age.
        let sso = sso.filter(|s| Self::session_counts(client, &request, s));
        let Some(sso) = sso else {
            if prompt_none {
                return Ok(refuse("login_required", "no signed-in session"));
            }
            if !parked {
                self.park(&request).await?;
            }
            return Ok(Authorized::Login {
                request_id: request.id,
            });
        };
        if self.lacks_required_factor(&sso) {
            return Ok(refuse(
                "access_denied",
                "the account's role requires a second factor: set one up on brama first",
            ));
        }
        if !client.first_party {
            let allowed = self
                .store
                .oidc_consent(&sso.account.id, &client.id)
                .await?
                .unwrap_or_default();
            let covered = request.consent_asked == 0
                && request
                    .scope
                    .split_whitespace()
                    .all(|s| has_scope(&allowed, s));
            if !covered {
                if prompt_none {
                    return Ok(refuse("consent_required", "the person has not consented"));
                }
                if !parked {
                    self.park(&request).await?;
                }
                return Ok(Authorized::Consent {
                    request_id: request.id,
                });
            }
        }
        match self.issue_code(&request, &sso, parked).await? {
            Some(location) => Ok(Authorized::Redirect(location)),
            // Finished meanwhile by another tab: this one is told so.
            None => Ok(refuse("access_denied", "this sign-in was already finished")),
        }
    }

    async fn park(&self, request: &OidcRequestRecord) -> CoreResult<()> {
        let mut tx = self.begin().await?;
        tx.insert_oidc_request(request).await?;
        tx.commit().await?;
        Ok(())
    }

    /// A code for the request, stored as its hash; the parked request is used up with it.
    async fn issue_code(
        &self,
        request: &OidcRequestRecord,
        sso: &SsoSession,
        parked: bool,
    ) -> CoreResult<Option<String>> {
        let now = now_ms();
        let code = random_token();
        let record = OidcCodeRecord {
            code_hash: token_hash(&code),
            client_id: request.client_id.clone(),
            account_id: sso.account.id.clone(),
            sso_session_id: sso.session.id.clone(),
            redirect_uri: request.redirect_uri.clone(),
            scope: request.scope.clone(),
            nonce: request.nonce.clone(),
            code_challenge: request.code_challenge.clone(),
            auth_time: sso.session.created_at,
            amr: sso.session.amr.clone(),
            created_at: now,
            expires_at: now + CODE_TTL_MS,
            used_at: None,
            grant_session_id: None,
        };
        let mut tx = self.begin().await?;
        // Of two concurrent finishes of one parked request (two tabs), one gets the code.
        if parked && !tx.delete_oidc_request(&request.id).await? {
            return Ok(None);
        }
        tx.insert_oidc_code(&record).await?;
        tx.commit().await?;
        Ok(Some(self.back_to_client(
            &request.redirect_uri,
            request.state.as_deref(),
            &[("code", code.as_str())],
        )))
    }

    /// The client's redirect URI with `answer`, then `state` and `iss` (RFC 9207).
    fn back_to_client(
        &self,
        redirect_uri: &str,
        state: Option<&str>,
        answer: &[(&str, &str)],
    ) -> String {
        let iss = self.config.issuer();
        let mut query = answer.to_vec();
        if let Some(state) = state {
            query.push(("state", state));
        }
        query.push(("iss", iss.as_str()));
        with_params(redirect_uri, &query)
    }

    /// An authorization error sent back to the client (RFC 6749 §4.1.2.1).
    fn error_to_client(
        &self,
        redirect_uri: &str,
        state: Option<&str>,
        error: &str,
        description: &str,
    ) -> String {
        self.back_to_client(
            redirect_uri,
            state,
            &[("error", error), ("error_description", description)],
        )
    }

    /// Whether a browser session may sign in to the client for this request: its account of the
    /// client's organization, opened late enough for `prompt=login` and `max_age`.
    fn session_counts(client: &OidcClient, request: &OidcRequestRecord, sso: &SsoSession) -> bool {
        sso.account.organization_id == client.organization_id
            && request
                .login_after
                .is_none_or(|after| sso.session.created_at >= after)
    }

    /// An account whose role must have a second factor, signed in without one (SPEC §13).
    fn lacks_required_factor(&self, sso: &SsoSession) -> bool {
        self.config.mfa_required(sso.account.role)
            && !sso.session.amr.split_whitespace().any(|a| a == "mfa")
    }

    /// What the consent screen shows for a parked request; `None` if there is no such request
    /// or no session of the client's organization to consent with.
    pub async fn consent_info(
        &self,
        request_id: &str,
        sso: Option<SsoSession>,
    ) -> CoreResult<Option<ConsentInfo>> {
        let Some((request, client)) = self.parked(request_id).await? else {
            return Ok(None);
        };
        let Some(sso) = sso.filter(|s| s.account.organization_id == client.organization_id) else {
            return Ok(None);
        };
        Ok(Some(ConsentInfo {
            client_name: client.name,
            scopes: request
                .scope
                .split_whitespace()
                .map(str::to_owned)
                .collect(),
            account: sso
                .account
                .username
                .clone()
                .unwrap_or(sso.account.email.clone()),
        }))
    }

    /// The client's name for the page's login of a parked request.
    pub async fn request_client_name(&self, request_id: &str) -> CoreResult<Option<String>> {
        Ok(self.parked(request_id).await?.map(|(_, c)| c.name))
    }

    /// The person's answer on the consent screen: a code (the consent is remembered), or
    /// `access_denied`. `None` if there is no such request or no session for it.
    pub async fn decide_consent(
        &self,
        request_id: &str,
        sso: Option<SsoSession>,
        allow: bool,
    ) -> CoreResult<Option<String>> {
        let Some((request, client)) = self.parked(request_id).await? else {
            return Ok(None);
        };
        // The same conditions as the authorization itself: a session that counts, with the
        // second factor its role needs, and a client that asks for consent at all.
        let Some(sso) = sso.filter(|s| Self::session_counts(&client, &request, s)) else {
            return Ok(None);
        };
        if client.first_party || self.lacks_required_factor(&sso) {
            return Ok(None);
        }
        let now = now_ms();
        if !allow {
            let mut tx = self.begin().await?;
            if !tx.delete_oidc_request(&request.id).await? {
                return Ok(None);
            }
            tx.commit().await?;
            return Ok(Some(self.error_to_client(
                &request.redirect_uri,
                request.state.as_deref(),
                "access_denied",
                "the person declined",
            )));
        }
        let before = self
            .store
            .oidc_consent(&sso.account.id, &client.id)
            .await?
            .unwrap_or_default();
        let mut scopes: Vec<&str> = before.split_whitespace().collect();
        scopes.extend(request.scope.split_whitespace());
        let widened = known_scopes(&scopes.join(" ")).join(" ");
        let mut tx = self.begin().await?;
        tx.save_oidc_consent(&sso.account.id, &client.id, &widened, now)
            .await?;
        tx.commit().await?;
        self.issue_code(&request, &sso, true).await
    }

    /// The client a token or revocation request speaks for, proven by its secret (or, for a
    /// public client, by nothing but its id: PKCE proves the rest).
    pub async fn authenticate_client(
        &self,
        credentials: &ClientCredentials,
    ) -> Result<OidcClient, OAuthError> {
        let invalid = |description: &str| OAuthError {
            basic_challenge: credentials.basic,
            ..OAuthError::new(401, "invalid_client", description)
        };
        let Some(id) = credentials.client_id.as_deref().filter(|id| !id.is_empty()) else {
            return Err(invalid("client authentication is required"));
        };
        let client = self
            .token_client(id)
            .await?
            .ok_or_else(|| invalid("unknown client or wrong secret"))?;
        match (&client.secret_hash, &credentials.secret) {
            (None, None) => Ok(client),
            (None, Some(_)) => Err(invalid("a public client has no secret")),
            (Some(_), None) => Err(invalid("client authentication is required")),
            (Some(stored), Some(secret)) => {
                let presented = token_hash(secret.expose_secret());
                if bool::from(presented.as_bytes().ct_eq(stored.as_bytes())) {
                    Ok(client)
                } else {
                    Err(invalid("unknown client or wrong secret"))
                }
            }
        }
    }

    /// `grant_type=authorization_code`: the code, once, for the client it was issued to, with
    /// the same redirect URI and the PKCE verifier of its challenge. A code presented again
    /// revokes what its first exchange issued.
    pub async fn exchange_code(
        &self,
        credentials: &ClientCredentials,
        code: Option<&str>,
        redirect_uri: Option<&str>,
        code_verifier: Option<&str>,
    ) -> Result<TokenAnswer, OAuthError> {
        let client = self.authenticate_client(credentials).await?;
        let Some(code) = code.filter(|c| !c.is_empty() && c.len() <= 128) else {
            return Err(OAuthError::invalid_request("code is required"));
        };
        let hash = token_hash(code);
        let now = now_ms();
        // Everything is checked on what is stored before the code is spent, and with no
        // transaction open: a transaction must never wait for a second connection of the pool
        // (N concurrent exchanges of one code would each hold one and starve the rest). A code
        // of another client, or sent with another redirect URI or verifier, is not spent. One
        // read (the code, its account, its browser session) and one write (`redeem_oidc_code`).
        let Some(OidcCodeGrant {
            code: record,
            account,
            parent_live,
        }) = self.store.oidc_code_grant(&hash, now).await?
        else {
            return Err(OAuthError::invalid_grant(
                "invalid or used authorization code",
            ));
        };
        if record.used_at.is_some() {
            self.code_replayed(&hash, &client, now).await?;
            return Err(OAuthError::invalid_grant(
                "invalid or used authorization code",
            ));
        }
        if record.client_id != client.id {
            return Err(OAuthError::invalid_grant(
                "invalid or used authorization code",
            ));
        }
        if record.expires_at <= now {
            return Err(OAuthError::invalid_grant("the authorization code expired"));
        }
        if redirect_uri != Some(record.redirect_uri.as_str()) {
            return Err(OAuthError::invalid_grant(
                "redirect_uri differs from the authorization request's",
            ));
        }
        match (&record.code_challenge, code_verifier) {
            (Some(challenge), Some(verifier)) if pkce_shaped(verifier) => {
                use base64::Engine;
                let computed = base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .encode(Sha256::digest(verifier.as_bytes()));
                if !bool::from(computed.as_bytes().ct_eq(challenge.as_bytes())) {
                    return Err(OAuthError::invalid_grant("code_verifier does not match"));
                }
            }
            (Some(_), _) => {
                return Err(OAuthError::invalid_grant(
                    "code_verifier is missing or malformed",
                ));
            }
            (None, Some(_)) => {
                return Err(OAuthError::invalid_grant(
                    "code_verifier without a code_challenge",
                ));
            }
            (None, None) => {}
        }
        if !account.status.may_log_in() || account.organization_id != client.organization_id {
            return Err(OAuthError::invalid_grant("the account may not sign in"));
        }
        if !parent_live {
            return Err(OAuthError::invalid_grant("the sign-in session has ended"));
        }
        let offline = has_scope(&record.scope, "offline_access");
        // Without `offline_access` the client gets no refresh token, so none is made or stored:
        // the grant is its session alone, for the access token's life.
        let refresh_token = offline.then(random_token);
        let session = NewSession {
            id: uuid::Uuid::now_v7().to_string(),
            account_id: account.id.clone(),
            created_at: now,
            expires_at: if offline {
                self.refresh_expiry(now)
            } else {
                now + self.access_ttl_secs() * 1000
            },
            user_agent: Some(format!("OIDC: {}", client.name)),
            ip: None,
            amr: record.amr.clone(),
            client_id: Some(client.id.clone()),
            scope: Some(record.scope.clone()),
            parent_id: Some(record.sso_session_id.clone()),
        };
        let token = refresh_token.as_ref().map(|token| NewRefreshToken {
            token_hash: token_hash(token),
            expires_at: session.expires_at,
        });
        if !self
            .store
            .redeem_oidc_code(&hash, &session, token.as_ref())
            .await?
        {
            // Spent by a concurrent exchange between the look and now.
            self.code_replayed(&hash, &client, now).await?;
            return Err(OAuthError::invalid_grant(
                "invalid or used authorization code",
            ));
        }
        self.token_answer(
            &client,
            &account,
            &session.id,
            &record.scope,
            Some(&record.sso_session_id),
            Some(record.auth_time),
            record.nonce.clone(),
            &record.amr,
            refresh_token,
            now,
        )
    }

    /// A used code again: whatever its first exchange issued is revoked (RFC 6749 §4.1.2).
    async fn code_replayed(
        &self,
        hash: &str,
        client: &OidcClient,
        now: i64,
    ) -> Result<(), OAuthError> {
        let Some(used) = self.store.oidc_code(hash).await? else {
            return Ok(());
        };
        if used.client_id != client.id || used.used_at.is_none() {
            return Ok(());
        }
        if let Some(grant) = used.grant_session_id.as_deref() {
            let mut tx = self.begin().await?;
            let revoked = tx
                .revoke_session(&used.account_id, grant, RevokeReason::OidcRevoked, now)
                .await?;
            if revoked {
                let organization = client.organization_id.as_str();
                tx.record_audit(
                    &AuditAction::OidcCodeReused.event(
                        Some(organization),
                        Some(&used.account_id),
                        Some(client.id.clone()),
                        None,
                    ),
                    now,
                )
                .await?;
            }
            tx.commit().await?;
            self.forget_session(grant);
            tracing::warn!(client = %client.id, "authorization code used twice; its grant revoked");
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn token_answer(
        &self,
        client: &OidcClient,
        account: &AccountRecord,
        grant_session_id: &str,
        scope: &str,
        sid: Option<&str>,
        auth_time_ms: Option<i64>,
        nonce: Option<String>,
        amr: &str,
        refresh_token: Option<String>,
        now: i64,
    ) -> Result<TokenAnswer, OAuthError> {
        let iat = now / 1000;
        let expires_in = self.access_ttl_secs();
        let access = ClientAccessClaims {
            iss: self.config.issuer(),
            sub: account.id.clone(),
            aud: self.userinfo_audience(),
            client_id: client.id.clone(),
            scope: scope.to_string(),
            sid: grant_session_id.to_string(),
            iat,
            exp: iat + expires_in,
            jti: uuid::Uuid::now_v7().to_string(),
        };
        let sign_error = |e: crate::crypto::jwt::SignError| {
            OAuthError::from_core(CoreError::Internal(format!("signing: {e}")))
        };
        let access_token = self
            .keys
            .sign_id_token(IdTokenAlg::EdDSA, &access)
            .map_err(sign_error)?;
        let claims = IdTokenClaims {
            iss: self.config.issuer(),
            sub: account.id.clone(),
            aud: client.id.clone(),
            azp: client.id.clone(),
            exp: iat + expires_in,
            iat,
            auth_time: auth_time_ms.map(|t| t / 1000),
            nonce,
            at_hash: Some(at_hash(&access_token, client.id_token_alg)),
            amr: amr.split_whitespace().map(str::to_owned).collect(),
            sid: sid.map(str::to_owned),
            person: person_claims(account, scope),
        };
        let id_token = self
            .keys
            .sign_id_token(client.id_token_alg, &claims)
            .map_err(sign_error)?;
        Ok(TokenAnswer {
            access_token,
            token_type: "Bearer",
            expires_in,
            id_token,
            refresh_token,
            scope: scope.to_string(),
        })
    }

    /// `grant_type=refresh_token`: the client's refresh token once (SPEC §3's rotation and reuse
    /// detection), for the same scopes or fewer.
    pub async fn refresh_grant(
        &self,
        credentials: &ClientCredentials,
        refresh_token: Option<&str>,
        scope: Option<&str>,
    ) -> Result<TokenAnswer, OAuthError> {
        let client = self.authenticate_client(credentials).await?;
        let Some(presented) = refresh_token.filter(|t| !t.is_empty() && t.len() <= 256) else {
            return Err(OAuthError::invalid_request("refresh_token is required"));
        };
        let presented = token_hash(presented);
        let now = now_ms();
        // A narrower scope is checked against the grant before the token is spent, so that a
        // refused request leaves the client its token (asked again, it would be a reuse).
        let asked = scope.map(str::trim).filter(|s| !s.is_empty());
        if let Some(asked) = asked {
            // (A token that is not this client's is refused by the claim below.)
            let granted = match self.store.refresh_token_state(&presented).await? {
                Some(state) if state.client_id.as_deref() == Some(client.id.as_str()) => Some(
                    self.store
                        .session(&state.session_id)
                        .await?
                        .and_then(|s| s.scope)
                        .unwrap_or_default(),
                ),
                _ => None,
            };
            if let Some(granted) = granted
                && !asked.split_whitespace().all(|s| has_scope(&granted, s))
            {
                return Err(OAuthError::new(
                    400,
                    "invalid_scope",
                    "more scope than was granted",
                ));
            }
        }
        let next_token = random_token();
        let next = NewRefreshToken {
            token_hash: token_hash(&next_token),
            expires_at: self.refresh_expiry(now),
        };
        let Some(claimed) = self
            .store
            .claim_refresh(&presented, next, now, Some(&client.id))
            .await?
        else {
            let verdict = self
                .refuse_refresh(&presented, Some(&client.id), None, now)
                .await?;
            if verdict == crate::core::sessions::Refusal::Reused {
                return Err(OAuthError::invalid_grant(
                    "refresh token used twice: the grant is revoked",
                ));
            }
            return Err(OAuthError::invalid_grant(
                "invalid, expired or used refresh token",
            ));
        };
        // One read: the grant's scope, its browser session (`sid`, `auth_time`) and its account.
        let grant = self
            .store
            .oidc_grant(&claimed.session_id)
            .await?
            .ok_or_else(|| OAuthError::invalid_grant("the grant ended"))?;
        let granted = grant.scope.clone().unwrap_or_default();
        let scope = match scope.map(str::trim).filter(|s| !s.is_empty()) {
            None => granted.clone(),
            Some(asked) => {
                let asked: Vec<&str> = asked.split_whitespace().collect();
                if !asked.iter().all(|s| has_scope(&granted, s)) {
                    return Err(OAuthError::new(
                        400,
                        "invalid_scope",
                        "more scope than was granted",
                    ));
                }
                known_scopes(&asked.join(" ")).join(" ")
            }
        };
        self.token_answer(
            &client,
            &grant.account,
            &claimed.session_id,
            &scope,
            grant.parent_id.as_deref(),
            grant.auth_time,
            None,
            &claimed.amr,
            Some(next_token),
            now,
        )
    }

    /// `/oauth2/userinfo`: the person behind a client's access token, by its scopes, while the
    /// grant lives.
    pub async fn userinfo(&self, bearer: Option<&str>) -> Result<UserInfo, OAuthError> {
        let Some(token) = bearer.filter(|t| !t.is_empty()) else {
            return Err(OAuthError {
                description: "a bearer access token is required".into(),
                ..OAuthError::invalid_token("")
            });
        };
        let claims: ClientAccessClaims = self
            .keys
            .verify_client_access(token, &self.config.issuer(), &self.userinfo_audience())
            .map_err(|_| OAuthError::invalid_token("the access token is invalid or expired"))?;
        let live = match self.store.session(&claims.sid).await? {
            Some(s) => {
                s.revoked_at.is_none()
                    && s.client_id.as_deref() == Some(claims.client_id.as_str())
                    && s.account_id == claims.sub
            }
            None => false,
        };
        if !live {
            return Err(OAuthError::invalid_token("the grant was revoked"));
        }
        let account = match self.store.account(&claims.sub).await? {
            Some(a) if a.status.may_log_in() => a,
            _ => return Err(OAuthError::invalid_token("the account may not sign in")),
        };
        Ok(UserInfo {
            sub: account.id.clone(),
            person: person_claims(&account, &claims.scope),
        })
    }

    /// `/oauth2/revoke` (RFC 7009): a refresh or access token of the client ends its grant.
    /// Unknown tokens and other clients' tokens are answered the same way, with nothing done.
    pub async fn revoke_token(
        &self,
        credentials: &ClientCredentials,
        token: Option<&str>,
    ) -> Result<(), OAuthError> {
        let client = self.authenticate_client(credentials).await?;
        let Some(token) = token.filter(|t| !t.is_empty()) else {
            return Err(OAuthError::invalid_request("token is required"));
        };
        let now = now_ms();
        let grant = if token.len() <= 256 && !token.contains('.') {
            self.store
                .refresh_token_state(&token_hash(token))
                .await?
                .filter(|s| s.client_id.as_deref() == Some(client.id.as_str()))
                .map(|s| (s.account_id, s.session_id))
        } else {
            self.keys
                .verify_client_access::<ClientAccessClaims>(
                    token,
                    &self.config.issuer(),
                    &self.userinfo_audience(),
                )
                .ok()
                .filter(|c| c.client_id == client.id)
                .map(|c| (c.sub, c.sid))
        };
        if let Some((account_id, session_id)) = grant {
            let mut tx = self.begin().await?;
            tx.revoke_session(&account_id, &session_id, RevokeReason::OidcRevoked, now)
                .await?;
            tx.commit().await?;
            self.forget_session(&session_id);
        }
        Ok(())
    }

    /// `/oauth2/logout` (RP-Initiated Logout 1.0). The client is known from the
    /// `id_token_hint` (signed by brama, expired or not) or `client_id`; when both are given
    /// they must agree. The browser's session (and the grants opened from it) ends at once only
    /// when the hint names its person: any other site can send a browser here, so without that
    /// proof the person is asked first ([`Logout::Confirm`], answered by
    /// [`Core::confirm_logout`]). Then back to the client's registered post-logout URI (with
    /// `state`), or to brama's page: nothing else is ever redirected to.
    pub async fn end_session(
        &self,
        sso: Option<SsoSession>,
        request: LogoutRequest<'_>,
    ) -> CoreResult<Logout> {
        let hint = self.logout_hint(&request);
        let back = self.logout_target(&request, hint.as_ref()).await?;
        let Some(sso) = sso else {
            return Ok(Logout::Done(back));
        };
        let proven = hint.as_ref().is_some_and(|h| h.sub == sso.account.id);
        if !proven {
            return Ok(Logout::Confirm {
                token: self.csrf.sso_token(&format!("logout:{}", sso.session.id)),
            });
        }
        self.end_browser_session(&sso).await?;
        Ok(Logout::Done(back))
    }

    /// The person said yes on the logout confirmation: `token` must be the one made for this
    /// browser session. `Ok(false)` when it is not (nothing is ended).
    pub async fn confirm_logout(&self, sso: Option<SsoSession>, token: &str) -> CoreResult<bool> {
        let Some(sso) = sso else {
            // Already ended (another tab): nothing to do, and nothing refused.
            return Ok(true);
        };
        let expected = format!("logout:{}", sso.session.id);
        if self.csrf.sso_session(token).as_deref() != Some(expected.as_str()) {
            return Ok(false);
        }
        self.end_browser_session(&sso).await?;
        Ok(true)
    }

    /// Where a logout goes back to: the client's post-logout URI if registered (with `state`),
    /// else brama's page.
    pub async fn post_logout_target(&self, request: &LogoutRequest<'_>) -> CoreResult<String> {
        self.logout_target(request, self.logout_hint(request).as_ref())
            .await
    }

    /// The `id_token_hint`'s claims, if brama signed it (expired or not).
    fn logout_hint(&self, request: &LogoutRequest<'_>) -> Option<HintClaims> {
        request
            .id_token_hint
            .filter(|h| !h.is_empty())
            .and_then(|h| self.keys.verify_id_token(h, &self.config.issuer()).ok())
    }

    /// [`Core::post_logout_target`] with the hint read: the client is the hint's audience or
    /// `client_id`, none when the two disagree.
    async fn logout_target(
        &self,
        request: &LogoutRequest<'_>,
        hint: Option<&HintClaims>,
    ) -> CoreResult<String> {
        let hinted = hint.and_then(|h| match &h.aud {
            serde_json::Value::String(aud) => Some(aud.as_str()),
            serde_json::Value::Array(auds) => auds.first().and_then(|a| a.as_str()),
            _ => None,
        });
        let client_id = match (hinted, request.client_id.filter(|c| !c.is_empty())) {
            (Some(hinted), Some(given)) if hinted != given => None,
            (hinted, given) => hinted.or(given),
        };
        let (uri, state) = (request.post_logout_redirect_uri, request.state);
        let page = format!("{}/", self.oauth_base());
        let (Some(uri), Some(client_id)) = (uri, client_id) else {
            return Ok(page);
        };
        let Some(client) = self.oidc_client(client_id).await? else {
            return Ok(page);
        };
        if !client.post_logout_redirect_uris.iter().any(|u| u == uri) {
            return Ok(page);
        }
        Ok(match state.filter(|s| !s.is_empty()) {
            Some(state) => with_params(uri, &[("state", state)]),
            None => uri.to_string(),
        })
    }

    async fn end_browser_session(&self, sso: &SsoSession) -> CoreResult<()> {
        let now = now_ms();
        let mut tx = self.begin().await?;
        tx.revoke_session(
            &sso.account.id,
            &sso.session.id,
            RevokeReason::OidcLogout,
            now,
        )
        .await?;
        tx.revoke_child_sessions(&sso.session.id, RevokeReason::OidcLogout, now)
            .await?;
        tx.record_audit(
            &AuditAction::Logout.event(
                Some(&sso.account.organization_id),
                Some(&sso.account.id),
                Some(sso.session.id.clone()),
                None,
            ),
            now,
        )
        .await?;
        tx.commit().await?;
        self.forget_session(&sso.session.id);
        Ok(())
    }
}

/// What a relying party sent to `/oauth2/logout`.
#[derive(Debug, Default, Clone, Copy)]
pub struct LogoutRequest<'a> {
    pub id_token_hint: Option<&'a str>,
    pub client_id: Option<&'a str>,
    pub post_logout_redirect_uri: Option<&'a str>,
    pub state: Option<&'a str>,
}

/// What a logout request leads to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Logout {
    /// Ended (or nothing to end): go here.
    Done(String),
    /// Ask the person first; `token` goes back with the answer.
    Confirm { token: String },
}

/// The person's claims a scope list allows.
fn person_claims(account: &AccountRecord, scope: &str) -> PersonClaims {
    let non_empty = |s: &str| (!s.trim().is_empty()).then(|| s.trim().to_string());
    let mut claims = PersonClaims::default();
    if has_scope(scope, "profile") {
        claims.preferred_username = account.username.clone().or(Some(account.email.clone()));
        claims.given_name = non_empty(&account.name);
        claims.family_name = non_empty(&account.surname);
        claims.name = non_empty(&format!(
            "{} {}",
            account.name.trim(),
            account.surname.trim()
        ));
    }
    if has_scope(scope, "email") {
        claims.email = Some(account.email.clone());
        // Addresses are proven: by the activation link, the registration's login or the link of
        // an email change.
        claims.email_verified = Some(true);
    }
    if has_scope(scope, "roles") {
        claims.roles = Some(vec![account.role.as_str().to_string()]);
        claims.org = Some(account.organization_id.clone());
    }
    claims
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_are_kept_known_once_and_in_order() {
        assert_eq!(
            known_scopes("email openid  bogus email offline_access"),
            ["openid", "email", "offline_access"]
        );
        assert!(known_scopes("").is_empty());
    }

    #[test]
    fn redirect_parameters_keep_the_uris_own_query() {
        assert_eq!(
            with_params(
                "https://a.example.org/cb?x=1",
                &[("code", "c d"), ("state", "s&t")]
            ),
            "https://a.example.org/cb?x=1&code=c+d&state=s%26t"
        );
    }

    #[test]
    fn pkce_values_are_43_to_128_unreserved_characters() {
        assert!(pkce_shaped(&"a".repeat(43)));
        assert!(pkce_shaped(&format!("{}-._~", "Z9".repeat(20))));
        assert!(!pkce_shaped(&"a".repeat(42)));
        assert!(!pkce_shaped(&"a".repeat(129)));
        assert!(!pkce_shaped(&format!("{}+", "a".repeat(43))));
    }

    #[test]
    fn at_hash_is_the_left_half_of_the_algorithms_hash() {
        // OIDC Core's example (§A.3 uses this token with RS256).
        assert_eq!(
            at_hash(
                "jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y",
                IdTokenAlg::RS256
            ),
            "77QmUPtjPfzWtF2AnpK9RQ"
        );
        assert_eq!(at_hash("t", IdTokenAlg::EdDSA).len(), 43);
    }
}
