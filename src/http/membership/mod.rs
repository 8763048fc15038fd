//! Seed 001's surface: `/api/auth/*` with the seed's messages, status codes and field names.

pub mod admin;
pub mod error;
pub mod members;

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum_extra::extract::CookieJar;
use axum_extra::extract::cookie::{Cookie, SameSite};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::core::accounts::Registration;
use crate::core::sessions::IssuedSession;
use crate::http::AppState;
use crate::http::extract::{
    AppJson, AppPath, AuthUser, CSRF_COOKIE, ClientInfo, OptionalJson, TOKEN_COOKIE, TokenSource,
    access_token, browser_mode, check_csrf,
};
use crate::http::openapi::{ErrorBody, MessageBody};
use crate::i18n::Msg;
use crate::store::{AccountRecord, SessionRecord};
use error::ApiError;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(login))
        .routes(routes!(refresh_token))
        .routes(routes!(csrf))
        .routes(routes!(me))
        .routes(routes!(logout))
        .routes(routes!(logout_all))
        .routes(routes!(sessions))
        .routes(routes!(revoke_session))
        .routes(routes!(change_password))
        .routes(routes!(forgot_password))
        .routes(routes!(reset_password))
        .merge(admin::routes())
        .merge(members::routes())
}

/// The login answer (browser mode leaves `accessToken` out: it is in the cookie).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct LoginAnswer {
    id: String,
    username: Option<String>,
    email: String,
    /// `ROLE_USER`, `ROLE_MODERATOR`, `ROLE_ADMIN` or `ROLE_OWNER`.
    roles: Vec<String>,
    access_token: Option<String>,
    refresh_token: String,
    /// Present after a browser-mode registration.
    message: Option<String>,
}

/// Either `{message: "Authorized"}` (access-token check) or a new pair (refresh).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct RefreshAnswer {
    message: Option<String>,
    access_token: Option<String>,
    refresh_token: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct CsrfAnswer {
    /// Send it back in the `sessionId` header; its HMAC is in the `sessionToken` cookie.
    session_id: String,
}

type ApiResult<T = Response> = Result<T, ApiError>;

pub(crate) fn message(msg: Msg) -> Json<serde_json::Value> {
    Json(json!({ "message": msg.text(crate::http::current_lang()) }))
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
pub(crate) fn role_names(account: &AccountRecord) -> Vec<String> {
    vec![format!("ROLE_{}", account.role.to_ascii_uppercase())]
}

#[derive(Deserialize, ToSchema)]
struct RegisterBody {
    username: Option<String>,
    email: Option<String>,
    password: Option<String>,
}

#[utoipa::path(post, path = "/api/auth/register", tag = "auth", request_body = RegisterBody,
    responses((status = 200, description = "Registered (browser mode: also logged in)", body = MessageBody), (status = 400, description = "Invalid input, every problem named", body = ErrorBody), (status = 403, description = "No token, CSRF refused, or role too low", body = ErrorBody), (status = 429, description = "Rate limited; see Retry-After", body = ErrorBody), (status = 503, description = "Password hashing busy; see Retry-After", body = ErrorBody)))]
async fn register(
    State(state): State<AppState>,
    ClientInfo(client): ClientInfo,
    headers: HeaderMap,
    jar: CookieJar,
    AppJson(body): AppJson<RegisterBody>,
) -> ApiResult {
    let browser = browser_mode(&jar);
    if browser {
        check_csrf(&headers, &jar, &state)?;
    }
    let input = Registration {
        username: body.username.as_deref(),
        email: body.email.as_deref(),
        password: body.password.as_deref(),
    };
    let account = state.core.register(input, &client).await?;
    if !browser {
        return Ok(message(Msg::Registered).into_response());
    }
    // The seed's page logs the new user straight in.
    let issued = state.core.start_session(&account, &client).await?;
    let mut body = account_body(&account, &issued, false);
    body["message"] = json!(Msg::Registered.text(crate::http::current_lang()));
    Ok((jar.add(token_cookie(&state, &issued)), Json(body)).into_response())
}

#[derive(Deserialize, ToSchema)]
struct LoginBody {
    username: Option<String>,
    password: Option<String>,
}

fn account_body(
    account: &AccountRecord,
    issued: &IssuedSession,
    with_access: bool,
) -> serde_json::Value {
    let mut body = json!({
        "id": account.id,
        "username": account.username,
        "email": account.email,
        "roles": role_names(account),
        "refreshToken": issued.refresh_token,
    });
    if with_access {
        body["accessToken"] = json!(issued.access_token);
    }
    body
}

#[utoipa::path(post, path = "/api/auth/login", tag = "auth", request_body = LoginBody,
    responses((status = 200, description = "Logged in", body = LoginAnswer), (status = 400, description = "Invalid input, every problem named", body = ErrorBody),
        (status = 401, description = "Invalid username or password", body = ErrorBody), (status = 403, description = "No token, CSRF refused, or role too low", body = ErrorBody), (status = 429, description = "Rate limited; see Retry-After", body = ErrorBody), (status = 503, description = "Password hashing busy; see Retry-After", body = ErrorBody)))]
async fn login(
    State(state): State<AppState>,
    ClientInfo(client): ClientInfo,
    headers: HeaderMap,
    jar: CookieJar,
    AppJson(body): AppJson<LoginBody>,
) -> ApiResult {
    let browser = browser_mode(&jar);
    if browser {
        check_csrf(&headers, &jar, &state)?;
    }
    let (account, issued) = state
        .core
        .login(body.username.as_deref(), body.password.as_deref(), &client)
        .await?;
    let body = account_body(&account, &issued, !browser);
    if browser {
        Ok((jar.add(token_cookie(&state, &issued)), Json(body)).into_response())
    } else {
        Ok(Json(body).into_response())
    }
}

#[derive(Deserialize, ToSchema)]
struct RefreshBody {
    #[serde(rename = "refreshToken")]
    refresh_token: Option<String>,
}

/// Seed 001 gives this route two meanings: with a refresh token it rotates it; with only an
/// access token it says whether that token is still valid.
#[utoipa::path(post, path = "/api/auth/refreshtoken", tag = "auth", request_body(content = Option<RefreshBody>, description = "Optional: the refresh token may also come as the `refreshToken` header"),
    params(("refreshToken" = Option<String>, Header, description = "The refresh token")),
    responses((status = 200, description = "Authorized, or a new token pair", body = RefreshAnswer), (status = 400, description = "Invalid input, every problem named", body = ErrorBody), (status = 401, description = "Expired, invalid or revoked access token", body = ErrorBody),
        (status = 403, description = "No token, or an unknown or expired refresh token", body = ErrorBody)), security((), ("access_token" = []), ("bearer" = [])))]
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
        let browser = browser_mode(&jar);
        if browser {
            check_csrf(&headers, &jar, &state)?;
        }
        let issued = state.core.refresh(&refresh, &client).await?;
        return Ok(if browser {
            (
                jar.add(token_cookie(&state, &issued)),
                Json(json!({ "refreshToken": issued.refresh_token })),
            )
                .into_response()
        } else {
            Json(
                json!({ "accessToken": issued.access_token, "refreshToken": issued.refresh_token }),
            )
            .into_response()
        });
    }
    let Some((token, source)) = access_token(&headers, &jar) else {
        return Err(crate::core::CoreError::NoToken.into());
    };
    if source == TokenSource::Cookie {
        check_csrf(&headers, &jar, &state)?;
    }
    state.core.authenticate(&token).await?;
    Ok(message(Msg::Authorized).into_response())
}

#[utoipa::path(get, path = "/api/auth/csrf", tag = "auth", responses((status = 200, description = "A CSRF pair; the cookie `sessionToken` is set", body = CsrfAnswer)))]
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
        Json(json!({ "sessionId": pair.session_id })),
    )
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct MeBody {
    id: String,
    username: Option<String>,
    email: String,
    name: String,
    surname: String,
    roles: Vec<String>,
    organization: String,
    created_at: String,
}

#[utoipa::path(get, path = "/api/auth/me", tag = "auth", responses((status = 200, description = "The caller's account", body = MeBody), (status = 401, description = "Expired, invalid or revoked access token", body = ErrorBody), (status = 403, description = "No token, CSRF refused, or role too low", body = ErrorBody)), security(("access_token" = []), ("bearer" = [])))]
async fn me(State(state): State<AppState>, user: AuthUser) -> ApiResult<Json<MeBody>> {
    let account = state.core.me(&user.claims).await?;
    Ok(Json(MeBody {
        roles: role_names(&account),
        id: account.id,
        username: account.username,
        email: account.email,
        name: account.name,
        surname: account.surname,
        organization: account.organization_id,
        created_at: crate::core::rfc3339(account.created_at),
    }))
}

#[utoipa::path(post, path = "/api/auth/logout", tag = "auth", responses((status = 200, description = "Signed out; cookies cleared", body = MessageBody), (status = 401, description = "Expired, invalid or revoked access token", body = ErrorBody), (status = 403, description = "No token, CSRF refused, or role too low", body = ErrorBody)), security(("access_token" = []), ("bearer" = [])))]
async fn logout(
    State(state): State<AppState>,
    ClientInfo(client): ClientInfo,
    jar: CookieJar,
    user: AuthUser,
) -> ApiResult {
    state.core.logout(&user.claims, &client).await?;
    Ok(cleared(&state, jar, Msg::LoggedOut))
}

#[utoipa::path(post, path = "/api/auth/logout-all", tag = "auth", responses((status = 200, description = "Every session ended", body = MessageBody), (status = 401, description = "Expired, invalid or revoked access token", body = ErrorBody), (status = 403, description = "No token, CSRF refused, or role too low", body = ErrorBody)), security(("access_token" = []), ("bearer" = [])))]
async fn logout_all(
    State(state): State<AppState>,
    ClientInfo(client): ClientInfo,
    jar: CookieJar,
    user: AuthUser,
) -> ApiResult {
    state.core.logout_all(&user.claims, &client).await?;
    Ok(cleared(&state, jar, Msg::LoggedOutAll))
}

/// Logging out clears both cookies; the page fetches a new CSRF pair before its next login.
fn cleared(state: &AppState, jar: CookieJar, msg: Msg) -> Response {
    let jar = jar
        .add(expired_cookie(state, TOKEN_COOKIE))
        .add(expired_cookie(state, CSRF_COOKIE));
    (jar, message(msg)).into_response()
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct SessionBody {
    id: String,
    created_at: String,
    last_used_at: String,
    expires_at: String,
    user_agent: Option<String>,
    ip: Option<String>,
    current: bool,
}

#[utoipa::path(get, path = "/api/auth/sessions", tag = "auth", responses((status = 200, description = "The caller's live sessions", body = Vec<SessionBody>), (status = 401, description = "Expired, invalid or revoked access token", body = ErrorBody), (status = 403, description = "No token, CSRF refused, or role too low", body = ErrorBody)), security(("access_token" = []), ("bearer" = [])))]
async fn sessions(
    State(state): State<AppState>,
    user: AuthUser,
) -> ApiResult<Json<Vec<SessionBody>>> {
    let list: Vec<SessionRecord> = state.core.sessions(&user.claims).await?;
    Ok(Json(
        list.into_iter()
            .map(|s| SessionBody {
                current: s.id == user.claims.sid,
                id: s.id,
                created_at: crate::core::rfc3339(s.created_at),
                last_used_at: crate::core::rfc3339(s.last_used_at),
                expires_at: crate::core::rfc3339(s.expires_at),
                user_agent: s.user_agent,
                ip: s.ip,
            })
            .collect(),
    ))
}

#[utoipa::path(delete, path = "/api/auth/sessions/{id}", tag = "auth", params(("id" = String, Path)),
    responses((status = 200, description = "Session ended", body = MessageBody), (status = 401, description = "Expired, invalid or revoked access token", body = ErrorBody), (status = 403, description = "No token, CSRF refused, or role too low", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody)), security(("access_token" = []), ("bearer" = [])))]
async fn revoke_session(
    State(state): State<AppState>,
    ClientInfo(client): ClientInfo,
    user: AuthUser,
    AppPath(id): AppPath,
) -> ApiResult {
    state
        .core
        .revoke_own_session(&user.claims, &id, &client)
        .await?;
    Ok(message(Msg::SessionRevoked).into_response())
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct PasswordBody {
    current_password: Option<String>,
    new_password: Option<String>,
}

#[utoipa::path(post, path = "/api/auth/password", tag = "auth", request_body = PasswordBody,
    responses((status = 200, description = "Changed; other sessions ended", body = MessageBody), (status = 400, description = "Invalid input, every problem named", body = ErrorBody), (status = 401, description = "Expired, invalid or revoked access token", body = ErrorBody), (status = 403, description = "No token, CSRF refused, or role too low", body = ErrorBody), (status = 503, description = "Password hashing busy; see Retry-After", body = ErrorBody)), security(("access_token" = []), ("bearer" = [])))]
async fn change_password(
    State(state): State<AppState>,
    ClientInfo(client): ClientInfo,
    user: AuthUser,
    AppJson(body): AppJson<PasswordBody>,
) -> ApiResult {
    state
        .core
        .change_password(
            &user.claims,
            body.current_password.as_deref(),
            body.new_password.as_deref(),
            &client,
        )
        .await?;
    Ok(message(Msg::PasswordChanged).into_response())
}

#[derive(Deserialize, ToSchema)]
struct ForgotBody {
    email: Option<String>,
}

#[utoipa::path(post, path = "/api/auth/password/forgot", tag = "auth", request_body = ForgotBody,
    responses((status = 200, description = "The same answer whether or not the address is known", body = MessageBody), (status = 400, description = "Invalid input, every problem named", body = ErrorBody), (status = 429, description = "Rate limited; see Retry-After", body = ErrorBody)))]
async fn forgot_password(
    State(state): State<AppState>,
    ClientInfo(client): ClientInfo,
    AppJson(body): AppJson<ForgotBody>,
) -> ApiResult {
    let lang = crate::http::current_lang();
    state
        .core
        .forgot_password(body.email.as_deref(), lang, &client)
        .await?;
    Ok(message(Msg::ResetRequested).into_response())
}

#[derive(Deserialize, ToSchema)]
struct ResetBody {
    token: Option<String>,
    password: Option<String>,
}

#[utoipa::path(post, path = "/api/auth/password/reset", tag = "auth", request_body = ResetBody,
    responses((status = 200, description = "Password set; every session ended", body = MessageBody), (status = 400, description = "Invalid input, every problem named", body = ErrorBody), (status = 503, description = "Password hashing busy; see Retry-After", body = ErrorBody)))]
async fn reset_password(
    State(state): State<AppState>,
    ClientInfo(client): ClientInfo,
    AppJson(body): AppJson<ResetBody>,
) -> ApiResult {
    state
        .core
        .reset_password(body.token.as_deref(), body.password.as_deref(), &client)
        .await?;
    Ok(message(Msg::ResetDone).into_response())
}
