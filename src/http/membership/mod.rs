//! Seed 001's surface, nested at `/api`: `/auth/*` with the seed's messages, status codes and
//! field names, the member register and the admin routes; its request bodies, their parsing
//! into the core's commands, and its answers.

pub mod admin;
pub mod error;
pub mod extract;
pub mod members;
pub mod mfa;
pub mod oidc_clients;
pub mod passkeys;

use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa::openapi::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::core::accounts::{Credentials, Login, PasswordChange, PasswordReset, Registration};
use crate::core::profile::ProfileChange;
use crate::core::sessions::IssuedSession;
use crate::core::{AccountRecord, CoreError, Role, rfc3339};
use crate::domain::{AccountEmail, Fields, MemberText, Password, Username};
use crate::http::cookies::{Cookie, CookieJar, SameSite};
use crate::http::extract::{
    CSRF_COOKIE, ClientInfo, TOKEN_COOKIE, TokenSource, access_token, check_csrf,
    checked_browser_mode,
};
use crate::http::{AppState, BODY_LIMIT, current_lang, surface_layers};
use crate::i18n::{Lang, Msg};
use error::ApiError;
use extract::{AuthUser, Id, Json, OptionalJson};

/// This surface's routes with their body limits and language, at their whole paths
/// (`/api/...`); its answer to an unknown path under `/api`, as a router to nest there; and
/// the routes' document.
///
/// The routes are merged into brama's router rather than nested under `/api`: axum gives each
/// route of a nested router a layer of its own (rewriting the request's path, and recording the
/// prefix), one more box to clone on every request (issue 18). Only the unknown path is nested.
pub fn surface() -> (Router<AppState>, Router<AppState>, OpenApi) {
    let (routes, mut doc) = OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(login))
        .routes(routes!(login_mfa))
        .routes(routes!(refresh_token))
        .routes(routes!(csrf))
        .routes(routes!(me, patch_me, delete_me))
        .routes(routes!(request_email_change))
        .routes(routes!(confirm_email_change))
        .routes(routes!(me_export))
        .routes(routes!(logout))
        .routes(routes!(logout_all))
        .routes(routes!(sessions))
        .routes(routes!(revoke_session))
        .routes(routes!(change_password))
        .routes(routes!(forgot_password))
        .routes(routes!(reset_password))
        .merge(admin::routes())
        .merge(oidc_clients::routes())
        .merge(mfa::routes())
        .merge(passkeys::routes())
        .merge(members::routes())
        .split_for_parts();
    let (import, import_doc) = members::import_routes().split_for_parts();
    doc.merge(import_doc);
    let routes = routes.method_not_allowed_fallback(error::method_not_allowed);
    let import = import.method_not_allowed_fallback(error::method_not_allowed);
    let import = surface_layers::<ApiError, _>(Lang::En, members::IMPORT_BODY_LIMIT, import);
    let routes = surface_layers::<ApiError, _>(Lang::En, BODY_LIMIT, routes);
    let unknown = surface_layers::<ApiError, _>(
        Lang::En,
        BODY_LIMIT,
        Router::new().fallback(error::not_found),
    );
    (routes.merge(import), unknown, doc)
}

type ApiResult<T = Response> = Result<T, ApiError>;

/// `{"message": "..."}`: this surface's plain answers.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MessageBody {
    pub message: String,
}

pub(crate) fn message(msg: Msg) -> axum::Json<MessageBody> {
    axum::Json(MessageBody {
        message: msg.text(current_lang()),
    })
}

/// The login answer (browser mode leaves `accessToken` out: it is in the cookie).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[serde(deny_unknown_fields)]
struct LoginAnswer {
    id: String,
    username: Option<String>,
    email: String,
    /// `ROLE_USER`, `ROLE_MODERATOR`, `ROLE_ADMIN` or `ROLE_OWNER`.
    roles: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    access_token: Option<String>,
    refresh_token: String,
    /// Present after a browser-mode registration.
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<String>,
}

impl LoginAnswer {
    fn new(account: &AccountRecord, issued: IssuedSession, with_access: bool) -> LoginAnswer {
        LoginAnswer {
            id: account.id.clone(),
            username: account.username.clone(),
            email: account.email.clone(),
            roles: role_names(account.role),
            access_token: with_access.then_some(issued.access_token),
            refresh_token: issued.refresh_token,
            message: None,
        }
    }
}

/// A registration's answer: a message, or in browser mode the login answer with a message.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
enum RegisterAnswer {
    Registered(MessageBody),
    LoggedIn(LoginAnswer),
}

/// A new pair (browser mode: only the refresh token, the access token is in the cookie).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[serde(deny_unknown_fields)]
struct TokenPair {
    access_token: String,
    refresh_token: String,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[serde(deny_unknown_fields)]
struct BrowserRefresh {
    refresh_token: String,
}

/// `{message: "Authorized"}` (access-token check) or a new pair (refresh).
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
enum RefreshAnswer {
    Authorized(MessageBody),
    Pair(TokenPair),
    Browser(BrowserRefresh),
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[serde(deny_unknown_fields)]
struct CsrfAnswer {
    /// Send it back in the `sessionId` header; its HMAC is in the `sessionToken` cookie.
    session_id: String,
}

/// Browser mode: the access token travels in an HttpOnly cookie and stays out of the body.
fn token_cookie(state: &AppState, issued: &IssuedSession) -> Cookie<'static> {
    Cookie::build((TOKEN_COOKIE, issued.access_token.clone()))
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(state.core.config.https())
        .path("/")
        .max_age(time::Duration::seconds(issued.access_ttl_secs))
        .build()
}

fn expired_cookie(state: &AppState, name: &'static str) -> Cookie<'static> {
    Cookie::build((name, ""))
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(state.core.config.https())
        .path("/")
        .max_age(time::Duration::ZERO)
        .build()
}

/// `ROLE_USER`, `ROLE_ADMIN`, ... as the seed's clients expect.
pub(crate) fn role_names(role: Role) -> Vec<String> {
    role_list(role)
        .iter()
        .map(|name| (*name).to_owned())
        .collect()
}

/// [`role_names`] without copies.
fn role_list(role: Role) -> &'static [&'static str] {
    match role {
        Role::User => &["ROLE_USER"],
        Role::Moderator => &["ROLE_MODERATOR"],
        Role::Admin => &["ROLE_ADMIN"],
        Role::Owner => &["ROLE_OWNER"],
    }
}

/// A role as a client names it: `admin`, `Admin`, `ROLE_ADMIN`.
pub(crate) fn parse_role(text: &str) -> Result<Role, crate::domain::Problem> {
    let lower = text.trim().to_ascii_lowercase();
    Role::parse(lower.trim_start_matches("role_")).ok_or(crate::domain::Problem::Format)
}

fn invalid(fields: Fields) -> ApiError {
    CoreError::Validation(fields.into_errors()).into()
}

#[derive(Deserialize, ToSchema)]
struct RegisterBody {
    username: Option<String>,
    email: Option<String>,
    password: Option<String>,
}

impl RegisterBody {
    fn parse(self, policy: crate::domain::PasswordPolicy) -> ApiResult<Registration> {
        let mut f = Fields::new();
        let username = f.parse("username", self.username.as_deref(), Username::parse);
        let email = f.parse("email", self.email.as_deref(), AccountEmail::parse);
        let password = f.parse("password", self.password.as_deref(), |p| {
            Password::parse(p, policy)
        });
        match (username, email, password) {
            (Some(username), Some(email), Some(password)) => Ok(Registration {
                username,
                email,
                password,
            }),
            _ => Err(invalid(f)),
        }
    }
}

#[utoipa::path(post, path = "/api/auth/register", tag = "auth", operation_id = "register", request_body = RegisterBody,
    responses((status = 200, description = "Registered (browser mode: also logged in)", body = RegisterAnswer), (status = 400, description = "Invalid input, every problem named", body = error::ErrorBody), (status = 403, description = "No token, CSRF refused, or role too low", body = error::ErrorBody), (status = 429, description = "Rate limited; see Retry-After", body = error::ErrorBody), (status = 503, description = "Password hashing busy; see Retry-After", body = error::ErrorBody)))]
async fn register(
    State(state): State<AppState>,
    ClientInfo(client): ClientInfo,
    headers: HeaderMap,
    jar: CookieJar,
    Json(body): Json<RegisterBody>,
) -> ApiResult {
    let browser = checked_browser_mode(&headers, &jar, &state)?;
    let registration = body.parse(state.core.config.password_policy)?;
    // The seed's page logs the new user straight in.
    let (account, issued) = state.core.register(registration, &client, browser).await?;
    let Some(issued) = issued else {
        return Ok(axum::Json(RegisterAnswer::Registered(MessageBody {
            message: Msg::Registered.text(current_lang()),
        }))
        .into_response());
    };
    let cookie = token_cookie(&state, &issued);
    let sso = crate::http::oauth2::sso_cookie(&state, &issued.session_id);
    let mut answer = LoginAnswer::new(&account, issued, false);
    answer.message = Some(Msg::Registered.text(current_lang()));
    Ok((
        jar.add(cookie).add(sso),
        axum::Json(RegisterAnswer::LoggedIn(answer)),
    )
        .into_response())
}

#[derive(Deserialize, ToSchema)]
struct LoginBody {
    username: Option<String>,
    password: Option<String>,
}

#[utoipa::path(post, path = "/api/auth/login", tag = "auth", operation_id = "login", request_body = LoginBody,
    responses((status = 200, description = "Logged in", body = LoginAnswer), (status = 400, description = "Invalid input, every problem named", body = error::ErrorBody),
        (status = 401, description = "Invalid username or password; or `mfa_required` with an `mfaToken` for `/auth/login/mfa` (SPEC §13)", body = LoginUnauthorized), (status = 403, description = "No token, CSRF refused, or role too low", body = error::ErrorBody), (status = 429, description = "Rate limited; see Retry-After", body = error::ErrorBody), (status = 503, description = "Password hashing busy; see Retry-After", body = error::ErrorBody)))]
async fn login(
    State(state): State<AppState>,
    ClientInfo(client): ClientInfo,
    headers: HeaderMap,
    jar: CookieJar,
    Json(body): Json<LoginBody>,
) -> ApiResult {
    let browser = checked_browser_mode(&headers, &jar, &state)?;
    let mut f = Fields::new();
    let login = f.present("username", body.username.as_deref());
    let password = f.present("password", body.password.as_deref());
    let (Some(login), Some(password)) = (login, password) else {
        return Err(invalid(f));
    };
    let credentials = Credentials {
        login: login.to_string(),
        password: SecretString::from(password),
    };
    match state.core.login(credentials, &client).await? {
        Login::Session(account, issued) => Ok(signed_in(&state, jar, browser, &account, issued)),
        Login::SecondFactor { mfa_token, methods } => Ok((
            axum::http::StatusCode::UNAUTHORIZED,
            axum::Json(MfaRequiredBody {
                message: Msg::MfaRequired.text(current_lang()),
                code: "mfa_required",
                mfa_token,
                methods,
            }),
        )
            .into_response()),
    }
}

/// The answer of a login that opened a session: in browser mode the access token goes into
/// the `token` cookie and the body leaves it out.
fn signed_in(
    state: &AppState,
    jar: CookieJar,
    browser: bool,
    account: &AccountRecord,
    issued: IssuedSession,
) -> Response {
    if browser {
        // Beside the access token, the SSO cookie: other applications signing in through
        // brama (SPEC §14) find this session with it.
        let cookie = token_cookie(state, &issued);
        let sso = crate::http::oauth2::sso_cookie(state, &issued.session_id);
        let answer = LoginAnswer::new(account, issued, false);
        (jar.add(cookie).add(sso), axum::Json(answer)).into_response()
    } else {
        axum::Json(LoginAnswer::new(account, issued, true)).into_response()
    }
}

/// 401 for an account with a second factor: no tokens, a ticket for `/auth/login/mfa`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[serde(deny_unknown_fields)]
struct MfaRequiredBody {
    message: String,
    /// `mfa_required`.
    code: &'static str,
    /// Single use, 5 minutes, 5 wrong codes.
    mfa_token: String,
    /// Among `totp`, `recovery`, `passkey`.
    methods: Vec<&'static str>,
}

/// A login's 401: refused, or a second factor due.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
enum LoginUnauthorized {
    Refused(error::ErrorBody),
    SecondFactor(MfaRequiredBody),
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct LoginMfaBody {
    mfa_token: Option<String>,
    /// A current 6-digit code from the authenticator app.
    code: Option<String>,
    /// Or one of the account's recovery codes.
    recovery_code: Option<String>,
}

#[utoipa::path(post, path = "/api/auth/login/mfa", tag = "auth", operation_id = "login_mfa", request_body = LoginMfaBody,
    responses((status = 200, description = "Logged in", body = LoginAnswer), (status = 400, description = "Invalid input, every problem named", body = error::ErrorBody),
        (status = 401, description = "`invalid_code` (counted against the ticket and the account) or `mfa_token_invalid` (unknown, expired, used, or five wrong codes)", body = error::ErrorBody), (status = 403, description = "CSRF refused", body = error::ErrorBody), (status = 429, description = "Rate limited; see Retry-After", body = error::ErrorBody)))]
async fn login_mfa(
    State(state): State<AppState>,
    ClientInfo(client): ClientInfo,
    headers: HeaderMap,
    jar: CookieJar,
    Json(body): Json<LoginMfaBody>,
) -> ApiResult {
    let browser = checked_browser_mode(&headers, &jar, &state)?;
    let mut f = Fields::new();
    let ticket = f.present("mfaToken", body.mfa_token.as_deref());
    let proof = match (body.code.as_deref(), body.recovery_code.as_deref()) {
        (Some(code), _) if !code.trim().is_empty() => Some(code),
        (_, Some(code)) if !code.trim().is_empty() => Some(code),
        _ => f.present("code", None),
    };
    let (Some(ticket), Some(proof)) = (ticket, proof) else {
        return Err(invalid(f));
    };
    let (account, issued) = state
        .core
        .login_second_factor(
            ticket,
            crate::core::accounts::SecondStep::Code(proof),
            &client,
        )
        .await?;
    Ok(signed_in(&state, jar, browser, &account, issued))
}

#[derive(Deserialize, ToSchema)]
struct RefreshBody {
    #[serde(rename = "refreshToken")]
    refresh_token: Option<String>,
}

/// Seed 001 gives this route two meanings: with a refresh token it rotates it; with only an
/// access token it says whether that token is still valid.
#[utoipa::path(post, path = "/api/auth/refreshtoken", tag = "auth", operation_id = "refresh_token", request_body(content = Option<RefreshBody>, description = "Optional: the refresh token may also come as the `refreshToken` header"),
    params(("refreshToken" = Option<String>, Header, description = "The refresh token")),
    responses((status = 200, description = "Authorized, or a new token pair", body = RefreshAnswer), (status = 400, description = "Invalid input, every problem named", body = error::ErrorBody), (status = 401, description = "Expired, invalid or revoked access token", body = error::ErrorBody),
        (status = 403, description = "No token, or an unknown or expired refresh token", body = error::ErrorBody)), security((), ("access_token" = []), ("bearer" = [])))]
async fn refresh_token(
    State(state): State<AppState>,
    ClientInfo(client): ClientInfo,
    headers: HeaderMap,
    jar: CookieJar,
    OptionalJson(body): OptionalJson<RefreshBody>,
) -> ApiResult {
    let from_header = headers
        .get("refreshtoken")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let refresh = from_header
        .or(body.and_then(|b| b.refresh_token))
        .filter(|t| !t.is_empty());
    if let Some(refresh) = refresh {
        let browser = checked_browser_mode(&headers, &jar, &state)?;
        let issued = state.core.refresh(&refresh, &client).await?;
        return Ok(if browser {
            let cookie = token_cookie(&state, &issued);
            let answer = RefreshAnswer::Browser(BrowserRefresh {
                refresh_token: issued.refresh_token,
            });
            (jar.add(cookie), axum::Json(answer)).into_response()
        } else {
            axum::Json(RefreshAnswer::Pair(TokenPair {
                access_token: issued.access_token,
                refresh_token: issued.refresh_token,
            }))
            .into_response()
        });
    }
    let Some((token, source)) = access_token(&headers, Some(&jar)) else {
        return Err(CoreError::NoToken.into());
    };
    if source == TokenSource::Cookie {
        check_csrf(&headers, &jar, &state)?;
    }
    state
        .core
        .authenticate_for(token, crate::core::sessions::TokenUse::Other)
        .await?;
    Ok(axum::Json(RefreshAnswer::Authorized(MessageBody {
        message: Msg::Authorized.text(current_lang()),
    }))
    .into_response())
}

#[utoipa::path(get, path = "/api/auth/csrf", tag = "auth", operation_id = "csrf", responses((status = 200, description = "A CSRF pair; the cookie `sessionToken` is set", body = CsrfAnswer)))]
async fn csrf(State(state): State<AppState>, jar: CookieJar) -> impl IntoResponse {
    let pair = state.core.csrf.issue();
    let cookie = Cookie::build((CSRF_COOKIE, pair.cookie))
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(state.core.config.https())
        .path("/")
        .build();
    (
        jar.add(cookie),
        axum::Json(CsrfAnswer {
            session_id: pair.session_id,
        }),
    )
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[serde(deny_unknown_fields)]
struct MeBody<'a> {
    id: &'a str,
    username: Option<&'a str>,
    email: &'a str,
    name: &'a str,
    surname: &'a str,
    roles: &'static [&'static str],
    organization: &'a str,
    created_at: String,
}

#[utoipa::path(get, path = "/api/auth/me", tag = "auth", operation_id = "me", responses((status = 200, description = "The caller's account", body = MeBody), (status = 401, description = "Expired, invalid or revoked access token", body = error::ErrorBody), (status = 403, description = "No token, CSRF refused, or role too low", body = error::ErrorBody)), security(("access_token" = []), ("bearer" = [])))]
async fn me(State(state): State<AppState>, user: AuthUser) -> ApiResult {
    let account = state.core.me(&user.caller).await?;
    let body = account
        .me_answer
        .get_or_init(|| me_body(&account.record).json().into_boxed_slice());
    Ok(crate::http::json_bytes(axum::body::Body::from(
        axum::body::Bytes::copy_from_slice(body),
    )))
}

impl MeBody<'_> {
    /// The body as serde_json would write it, written by hand: `/me` is the route served most
    /// (see `http::json`).
    fn json(&self) -> Vec<u8> {
        crate::http::json::Object::with_capacity(ME_BODY_BYTES)
            .string("id", self.id)
            .optional_string("username", self.username)
            .string("email", self.email)
            .string("name", self.name)
            .string("surname", self.surname)
            .strings("roles", self.roles)
            .string("organization", self.organization)
            .string("createdAt", &self.created_at)
            .finish()
    }
}

/// Room for a `/me` answer: about 300 bytes with long names and addresses.
const ME_BODY_BYTES: usize = 512;

#[derive(Deserialize, ToSchema)]
struct ProfileBody {
    /// 1–100 characters; left out: unchanged.
    name: Option<String>,
    /// Up to 100 characters, `""` to clear it; left out: unchanged.
    surname: Option<String>,
}

#[utoipa::path(patch, path = "/api/auth/me", tag = "auth", operation_id = "update_me", request_body = ProfileBody,
    responses((status = 200, description = "The updated account (audit `account.profile_updated`)", body = MeBody), (status = 400, description = "Invalid input, every problem named", body = error::ErrorBody), (status = 401, description = "Expired, invalid or revoked access token", body = error::ErrorBody), (status = 403, description = "No token, or CSRF refused", body = error::ErrorBody)),
    security(("access_token" = []), ("bearer" = [])))]
async fn patch_me(
    State(state): State<AppState>,
    user: AuthUser,
    Json(body): Json<ProfileBody>,
) -> ApiResult {
    let mut f = Fields::new();
    let name = f.optional("name", body.name.as_deref(), MemberText::parse);
    let surname = f.optional("surname", body.surname.as_deref(), |s| {
        if s.trim().is_empty() {
            Ok(None)
        } else {
            MemberText::parse(s).map(Some)
        }
    });
    let (Some(name), Some(surname)) = (name, surname) else {
        return Err(invalid(f));
    };
    let change = ProfileChange { name, surname };
    let account = state
        .core
        .update_profile(&user.caller, change, &user.client)
        .await?;
    Ok(axum::Json(me_body(&account)).into_response())
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct EmailChangeBody {
    new_email: Option<String>,
    current_password: Option<String>,
}

#[utoipa::path(post, path = "/api/auth/email", tag = "auth", operation_id = "request_email_change", request_body = EmailChangeBody,
    responses((status = 202, description = "Nothing changes yet: a link to the new address (24 h, single use) and a notice to the old one", body = MessageBody), (status = 400, description = "Invalid input, or `Failed! Email is already in use!`", body = error::ErrorBody), (status = 401, description = "`wrong_password` (counted as a failed login), or an invalid access token", body = error::ErrorBody), (status = 403, description = "No token, or CSRF refused", body = error::ErrorBody), (status = 429, description = "Rate limited; see Retry-After", body = error::ErrorBody)),
    security(("access_token" = []), ("bearer" = [])))]
async fn request_email_change(
    State(state): State<AppState>,
    user: AuthUser,
    Json(body): Json<EmailChangeBody>,
) -> ApiResult {
    let mut f = Fields::new();
    let email = f.parse("newEmail", body.new_email.as_deref(), AccountEmail::parse);
    let password = f.present("currentPassword", body.current_password.as_deref());
    let (Some(email), Some(password)) = (email, password) else {
        return Err(invalid(f));
    };
    state
        .core
        .request_email_change(
            &user.caller,
            email,
            &SecretString::from(password),
            current_lang(),
            &user.client,
        )
        .await?;
    Ok((
        axum::http::StatusCode::ACCEPTED,
        message(Msg::EmailChangeRequested),
    )
        .into_response())
}

#[derive(Deserialize, ToSchema)]
struct TokenBody {
    token: Option<String>,
}

#[utoipa::path(post, path = "/api/auth/email/confirm", tag = "auth", operation_id = "confirm_email_change", request_body = TokenBody,
    responses((status = 200, description = "The address changed (audit `account.email_changed`); the account's other sessions ended (all of them when the request carries no access token of the account)", body = MessageBody), (status = 400, description = "`email_token_invalid`, the token missing, or `Failed! Email is already in use!`", body = error::ErrorBody), (status = 429, description = "Rate limited; see Retry-After", body = error::ErrorBody)))]
async fn confirm_email_change(
    State(state): State<AppState>,
    ClientInfo(client): ClientInfo,
    headers: HeaderMap,
    jar: CookieJar,
    Json(body): Json<TokenBody>,
) -> ApiResult {
    let mut f = Fields::new();
    let Some(token) = f.present("token", body.token.as_deref()) else {
        return Err(invalid(f));
    };
    // The link may be opened signed in (the session it is opened in stays) or not.
    let caller = match access_token(&headers, Some(&jar)) {
        Some((token, _)) => state
            .core
            .authenticate_for(token, crate::core::sessions::TokenUse::Other)
            .await
            .ok(),
        None => None,
    };
    state
        .core
        .confirm_email_change(&SecretString::from(token), caller.as_ref(), &client)
        .await?;
    Ok(message(Msg::EmailChanged).into_response())
}

/// The account as `/me` shows it, borrowed from the record: its strings are not copied.
fn me_body(account: &crate::store::AccountRecord) -> MeBody<'_> {
    MeBody {
        roles: role_list(account.role),
        id: &account.id,
        username: account.username.as_deref(),
        email: &account.email,
        name: &account.name,
        surname: &account.surname,
        organization: &account.organization_id,
        created_at: rfc3339(account.created_at),
    }
}

fn session_body(s: crate::store::SessionRecord, current: &str) -> SessionBody {
    SessionBody {
        current: s.id == current,
        id: s.id,
        created_at: rfc3339(s.created_at),
        last_used_at: rfc3339(s.last_used_at),
        expires_at: rfc3339(s.expires_at),
        user_agent: s.user_agent,
        ip: s.ip,
    }
}

/// One audit event about the caller's account.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct TrailBody {
    /// When (RFC 3339).
    at: String,
    /// Who: a username or email; `null` for the command line or an account since deleted.
    actor: Option<String>,
    action: String,
}

/// Everything brama holds about the caller (GDPR Art. 15).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[serde(deny_unknown_fields)]
struct OwnDataBody<'a> {
    account: MeBody<'a>,
    /// Live sessions, with the address and browser each was opened from.
    sessions: Vec<SessionBody>,
    /// Every audit event about the account, oldest first.
    audit_log: Vec<TrailBody>,
    /// Second factors the account has, without their secrets (`totp`, `passkey`; SPEC §13).
    second_factors: Vec<String>,
    /// The account's passkeys: names and dates (their public keys are not personal data).
    passkeys: Vec<passkeys::PasskeyBody>,
}

#[utoipa::path(get, path = "/api/auth/me/export", tag = "auth", operation_id = "export_my_data", responses((status = 200, description = "Everything brama holds about the caller", body = OwnDataBody), (status = 401, description = "Expired, invalid or revoked access token", body = error::ErrorBody), (status = 403, description = "No token, CSRF refused, or role too low", body = error::ErrorBody)), security(("access_token" = []), ("bearer" = [])))]
async fn me_export(State(state): State<AppState>, user: AuthUser) -> ApiResult {
    let data = state.core.own_data(&user.caller, &user.client).await?;
    let factors = state.core.mfa_status(&user.caller).await?;
    Ok(axum::Json(OwnDataBody {
        account: me_body(&data.account),
        sessions: data
            .sessions
            .into_iter()
            .map(|s| session_body(s, &user.caller.session_id))
            .collect(),
        audit_log: data
            .trail
            .into_iter()
            .map(|e| TrailBody {
                at: rfc3339(e.created_at),
                actor: e.actor,
                action: e.action,
            })
            .collect(),
        second_factors: [
            factors.totp.then_some("totp"),
            (!factors.passkeys.is_empty()).then_some("passkey"),
        ]
        .into_iter()
        .flatten()
        .map(str::to_owned)
        .collect(),
        passkeys: factors
            .passkeys
            .into_iter()
            .map(passkeys::PasskeyBody::from)
            .collect(),
    })
    .into_response())
}

#[derive(Deserialize, ToSchema)]
struct DeleteMeBody {
    /// The account's password, checked before anything is deleted.
    password: Option<String>,
}

#[utoipa::path(delete, path = "/api/auth/me", tag = "auth", operation_id = "delete_me", request_body = DeleteMeBody,
    responses((status = 200, description = "The account and its sessions are deleted; cookies cleared", body = MessageBody), (status = 400, description = "Invalid input, every problem named", body = error::ErrorBody), (status = 401, description = "Expired, invalid or revoked access token, or a wrong password", body = error::ErrorBody), (status = 403, description = "No token, CSRF refused, or role too low", body = error::ErrorBody), (status = 409, description = "`last_owner`: the organization's last owner", body = error::ErrorBody), (status = 503, description = "Password hashing busy; see Retry-After", body = error::ErrorBody)), security(("access_token" = []), ("bearer" = [])))]
async fn delete_me(
    State(state): State<AppState>,
    jar: CookieJar,
    user: AuthUser,
    Json(body): Json<DeleteMeBody>,
) -> ApiResult {
    let mut f = Fields::new();
    let Some(password) = f.present("password", body.password.as_deref()) else {
        return Err(invalid(f));
    };
    state
        .core
        .delete_own_account(&user.caller, SecretString::from(password), &user.client)
        .await?;
    Ok(cleared(&state, jar, Msg::AccountDeleted))
}

#[utoipa::path(post, path = "/api/auth/logout", tag = "auth", operation_id = "logout", responses((status = 200, description = "Signed out; cookies cleared", body = MessageBody), (status = 401, description = "Expired, invalid or revoked access token", body = error::ErrorBody), (status = 403, description = "No token, CSRF refused, or role too low", body = error::ErrorBody)), security(("access_token" = []), ("bearer" = [])))]
async fn logout(State(state): State<AppState>, jar: CookieJar, user: AuthUser) -> ApiResult {
    state.core.logout(&user.caller, &user.client).await?;
    Ok(cleared(&state, jar, Msg::LoggedOut))
}

#[utoipa::path(post, path = "/api/auth/logout-all", tag = "auth", operation_id = "logout_all", responses((status = 200, description = "Every session ended", body = MessageBody), (status = 401, description = "Expired, invalid or revoked access token", body = error::ErrorBody), (status = 403, description = "No token, CSRF refused, or role too low", body = error::ErrorBody)), security(("access_token" = []), ("bearer" = [])))]
async fn logout_all(State(state): State<AppState>, jar: CookieJar, user: AuthUser) -> ApiResult {
    state.core.logout_all(&user.caller, &user.client).await?;
    Ok(cleared(&state, jar, Msg::LoggedOutAll))
}

/// The `token` cookie's removal.
pub(crate) fn token_cookie_removal(state: &AppState) -> Cookie<'static> {
    expired_cookie(state, TOKEN_COOKIE)
}

/// Logging out clears the cookies; the page fetches a new CSRF pair before its next login.
fn cleared(state: &AppState, jar: CookieJar, msg: Msg) -> Response {
    let jar = jar
        .add(expired_cookie(state, TOKEN_COOKIE))
        .add(expired_cookie(state, CSRF_COOKIE))
        .add(crate::http::oauth2::sso_cookie_removal(state));
    (jar, message(msg)).into_response()
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[serde(deny_unknown_fields)]
struct SessionBody {
    id: String,
    created_at: String,
    last_used_at: String,
    expires_at: String,
    user_agent: Option<String>,
    ip: Option<String>,
    current: bool,
}

#[utoipa::path(get, path = "/api/auth/sessions", tag = "auth", operation_id = "list_sessions", responses((status = 200, description = "The caller's live sessions", body = Vec<SessionBody>), (status = 401, description = "Expired, invalid or revoked access token", body = error::ErrorBody), (status = 403, description = "No token, CSRF refused, or role too low", body = error::ErrorBody)), security(("access_token" = []), ("bearer" = [])))]
async fn sessions(
    State(state): State<AppState>,
    user: AuthUser,
) -> ApiResult<axum::Json<Vec<SessionBody>>> {
    let list = state.core.sessions(&user.caller).await?;
    Ok(axum::Json(
        list.into_iter()
            .map(|s| session_body(s, &user.caller.session_id))
            .collect(),
    ))
}

#[utoipa::path(delete, path = "/api/auth/sessions/{id}", tag = "auth", operation_id = "revoke_session", params(("id" = String, Path)),
    responses((status = 200, description = "Session ended", body = MessageBody), (status = 401, description = "Expired, invalid or revoked access token", body = error::ErrorBody), (status = 403, description = "No token, CSRF refused, or role too low", body = error::ErrorBody), (status = 404, description = "Not found", body = error::ErrorBody)), security(("access_token" = []), ("bearer" = [])))]
async fn revoke_session(State(state): State<AppState>, user: AuthUser, Id(id): Id) -> ApiResult {
    state
        .core
        .revoke_own_session(&user.caller, &id, &user.client)
        .await?;
    Ok(message(Msg::SessionRevoked).into_response())
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct PasswordBody {
    current_password: Option<String>,
    new_password: Option<String>,
}

#[utoipa::path(post, path = "/api/auth/password", tag = "auth", operation_id = "change_password", request_body = PasswordBody,
    responses((status = 200, description = "Changed; other sessions ended", body = MessageBody), (status = 400, description = "Invalid input, every problem named", body = error::ErrorBody), (status = 401, description = "Expired, invalid or revoked access token", body = error::ErrorBody), (status = 403, description = "No token, CSRF refused, or role too low", body = error::ErrorBody), (status = 503, description = "Password hashing busy; see Retry-After", body = error::ErrorBody)), security(("access_token" = []), ("bearer" = [])))]
async fn change_password(
    State(state): State<AppState>,
    user: AuthUser,
    Json(body): Json<PasswordBody>,
) -> ApiResult {
    let policy = state.core.config.password_policy;
    let mut f = Fields::new();
    let current = f.present("currentPassword", body.current_password.as_deref());
    let new = f.parse("newPassword", body.new_password.as_deref(), |p| {
        Password::parse(p, policy)
    });
    let (Some(current), Some(new)) = (current, new) else {
        return Err(invalid(f));
    };
    let change = PasswordChange {
        current: SecretString::from(current),
        new,
    };
    state
        .core
        .change_password(&user.caller, change, &user.client)
        .await?;
    Ok(message(Msg::PasswordChanged).into_response())
}

#[derive(Deserialize, ToSchema)]
struct ForgotBody {
    email: Option<String>,
}

#[utoipa::path(post, path = "/api/auth/password/forgot", tag = "auth", operation_id = "forgot_password", request_body = ForgotBody,
    responses((status = 200, description = "The same answer whether or not the address is known", body = MessageBody), (status = 400, description = "Invalid input, every problem named", body = error::ErrorBody), (status = 429, description = "Rate limited; see Retry-After", body = error::ErrorBody)))]
async fn forgot_password(
    State(state): State<AppState>,
    ClientInfo(client): ClientInfo,
    Json(body): Json<ForgotBody>,
) -> ApiResult {
    let mut f = Fields::new();
    let Some(email) = f.parse("email", body.email.as_deref(), AccountEmail::parse) else {
        return Err(invalid(f));
    };
    state
        .core
        .forgot_password(email, current_lang(), &client)
        .await?;
    Ok(message(Msg::ResetRequested).into_response())
}

#[derive(Deserialize, ToSchema)]
struct ResetBody {
    token: Option<String>,
    password: Option<String>,
}

#[utoipa::path(post, path = "/api/auth/password/reset", tag = "auth", operation_id = "reset_password", request_body = ResetBody,
    responses((status = 200, description = "Password set; every session ended", body = MessageBody), (status = 400, description = "Invalid input, every problem named", body = error::ErrorBody), (status = 503, description = "Password hashing busy; see Retry-After", body = error::ErrorBody)))]
async fn reset_password(
    State(state): State<AppState>,
    ClientInfo(client): ClientInfo,
    Json(body): Json<ResetBody>,
) -> ApiResult {
    let policy = state.core.config.password_policy;
    let mut f = Fields::new();
    let token = f.present("token", body.token.as_deref());
    // The policy is checked before the token is spent, so a weak password does not use up
    // the link.
    let password = f.parse("password", body.password.as_deref(), |p| {
        Password::parse(p, policy)
    });
    let (Some(token), Some(password)) = (token, password) else {
        return Err(invalid(f));
    };
    let reset = PasswordReset {
        token: SecretString::from(token),
        password,
    };
    state.core.reset_password(reset, &client).await?;
    Ok(message(Msg::ResetDone).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_me_body_written_by_hand_is_what_serde_json_writes() {
        for (username, name) in [(Some("ola"), "Ola"), (None, "Zoë \"Q\" \\ \n\u{1}")] {
            let body = MeBody {
                id: "0194f0c2-0000-7000-8000-000000000001",
                username,
                email: "ola@example.org",
                name,
                surname: "Kowalska-Żak",
                roles: role_list(Role::Admin),
                organization: "org-1",
                created_at: rfc3339(1_700_000_000_123),
            };
            assert_eq!(
                String::from_utf8(body.json()).unwrap(),
                serde_json::to_string(&body).unwrap()
            );
        }
    }
}
