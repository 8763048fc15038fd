//! Passkeys (SPEC §13): registering and removing the caller's, the second step of a login with
//! one, and a passwordless sign-in with a discoverable one. The `start` routes answer the
//! options for `navigator.credentials.create()` / `.get()` (`{"publicKey": …}`, binary values
//! base64url); the `finish` routes take the browser's answer as JSON (`credential`, as
//! `PublicKeyCredential.toJSON()` writes it).

use axum::extract::State;
use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::core::accounts::SecondStep;
use crate::core::passkeys::passkey_name;
use crate::core::rfc3339;
use crate::domain::Fields;
use crate::http::AppState;
use crate::http::cookies::CookieJar;
use crate::http::extract::{ClientInfo, checked_browser_mode};
use crate::i18n::Msg;
use crate::store::PasskeyRecord;

use super::error::ErrorBody;
use super::extract::{AuthUser, Id, Json, OptionalJson};
use super::{ApiResult, LoginAnswer, MessageBody, invalid, message, signed_in};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register_start))
        .routes(routes!(register_finish))
        .routes(routes!(remove))
        .routes(routes!(second_factor_start))
        .routes(routes!(second_factor_finish))
        .routes(routes!(passwordless_start))
        .routes(routes!(passwordless_finish))
}

/// A passkey as its owner sees it.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[serde(deny_unknown_fields)]
pub(super) struct PasskeyBody {
    id: String,
    name: String,
    created_at: String,
    last_used_at: Option<String>,
}

impl From<PasskeyRecord> for PasskeyBody {
    fn from(p: PasskeyRecord) -> Self {
        PasskeyBody {
            id: p.id,
            name: p.name,
            created_at: rfc3339(p.created_at),
            last_used_at: p.last_used_at.map(rfc3339),
        }
    }
}

/// WebAuthn options for the browser: `{"publicKey": {...}}` as webauthn-rs writes them.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[serde(deny_unknown_fields)]
struct OptionsBody {
    /// `PublicKeyCredentialCreationOptions` or `…RequestOptions`, binary values base64url.
    #[schema(value_type = Object)]
    public_key: serde_json::Value,
}

impl OptionsBody {
    fn of(mut options: serde_json::Value) -> OptionsBody {
        OptionsBody {
            public_key: options["publicKey"].take(),
        }
    }
}

#[utoipa::path(post, path = "/api/auth/passkeys/register/start", tag = "mfa", operation_id = "passkey_register_start",
    responses((status = 200, description = "Options for `navigator.credentials.create()`; the ceremony lives 5 minutes, on any node", body = OptionsBody), (status = 401, description = "Expired, invalid or revoked access token", body = ErrorBody), (status = 403, description = "No token, or CSRF refused", body = ErrorBody)),
    security(("access_token" = []), ("bearer" = [])))]
async fn register_start(
    State(state): State<AppState>,
    user: AuthUser,
) -> ApiResult<axum::Json<OptionsBody>> {
    let options = state.core.start_passkey_registration(&user.caller).await?;
    Ok(axum::Json(OptionsBody::of(options)))
}

#[derive(Deserialize, ToSchema)]
struct RegisterFinishBody {
    /// What to call it (1–64 characters), e.g. "Telefon".
    name: Option<serde_json::Value>,
    /// The browser's answer (`PublicKeyCredential` as JSON).
    #[schema(value_type = Object)]
    credential: Option<serde_json::Value>,
}

/// A registered passkey; `recoveryCodes` when it is the account's first second factor.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[serde(deny_unknown_fields)]
struct RegisteredBody {
    id: String,
    name: String,
    created_at: String,
    last_used_at: Option<String>,
    /// Ten codes, each good for one sign-in; shown this once.
    #[serde(skip_serializing_if = "Option::is_none")]
    recovery_codes: Option<Vec<String>>,
}

#[utoipa::path(post, path = "/api/auth/passkeys/register/finish", tag = "mfa", operation_id = "passkey_register_finish", request_body = RegisterFinishBody,
    responses((status = 200, description = "The passkey is registered (audit `mfa.enabled`)", body = RegisteredBody), (status = 400, description = "A field missing or invalid, `credential_malformed`, or `passkey_rejected` (no such ceremony, or an answer that does not verify)", body = ErrorBody), (status = 401, description = "Expired, invalid or revoked access token", body = ErrorBody), (status = 403, description = "No token, or CSRF refused", body = ErrorBody), (status = 409, description = "`passkey_exists`", body = ErrorBody)),
    security(("access_token" = []), ("bearer" = [])))]
async fn register_finish(
    State(state): State<AppState>,
    user: AuthUser,
    Json(body): Json<RegisterFinishBody>,
) -> ApiResult<axum::Json<RegisteredBody>> {
    let mut f = Fields::new();
    let name = f.parse("name", body.name, |v| match v {
        serde_json::Value::String(s) => passkey_name(&s),
        _ => Err(crate::domain::Problem::Type),
    });
    let credential = f.parse("credential", body.credential, Ok);
    let (Some(name), Some(credential)) = (name, credential) else {
        return Err(invalid(f));
    };
    let new = state
        .core
        .finish_passkey_registration(&user.caller, &name, credential, &user.client)
        .await?;
    let PasskeyBody {
        id,
        name,
        created_at,
        last_used_at,
    } = new.passkey.into();
    Ok(axum::Json(RegisteredBody {
        id,
        name,
        created_at,
        last_used_at,
        recovery_codes: new.recovery_codes,
    }))
}

#[utoipa::path(delete, path = "/api/auth/passkeys/{id}", tag = "mfa", operation_id = "passkey_remove",
    params(("id" = String, Path, description = "The passkey's id")),
    responses((status = 200, description = "Removed (audit `mfa.disabled`); with the last second factor, the recovery codes too", body = MessageBody), (status = 401, description = "Expired, invalid or revoked access token", body = ErrorBody), (status = 403, description = "No token, or CSRF refused", body = ErrorBody), (status = 404, description = "The caller has no passkey with this id", body = ErrorBody)),
    security(("access_token" = []), ("bearer" = [])))]
async fn remove(
    State(state): State<AppState>,
    user: AuthUser,
    Id(id): Id,
) -> ApiResult<axum::Json<MessageBody>> {
    state
        .core
        .delete_passkey(&user.caller, &id, &user.client)
        .await?;
    Ok(message(Msg::PasskeyRemoved))
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct TicketBody {
    /// The ticket of the login's first step.
    mfa_token: Option<String>,
}

#[utoipa::path(post, path = "/api/auth/login/passkey/start", tag = "auth", operation_id = "login_passkey_start", request_body = TicketBody,
    responses((status = 200, description = "Options for `navigator.credentials.get()` with the account's passkeys", body = OptionsBody), (status = 400, description = "`mfaToken` missing", body = ErrorBody), (status = 401, description = "`mfa_token_invalid`", body = ErrorBody), (status = 409, description = "`no_passkey`: the account has none", body = ErrorBody), (status = 429, description = "Too many ceremonies started from this address; see Retry-After", body = ErrorBody)))]
async fn second_factor_start(
    State(state): State<AppState>,
    ClientInfo(client): ClientInfo,
    Json(body): Json<TicketBody>,
) -> ApiResult<axum::Json<OptionsBody>> {
    let mut f = Fields::new();
    let Some(ticket) = f.present("mfaToken", body.mfa_token.as_deref()) else {
        return Err(invalid(f));
    };
    let options = state
        .core
        .start_passkey_second_factor(ticket, &client)
        .await?;
    Ok(axum::Json(OptionsBody::of(options)))
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct SecondFactorFinishBody {
    mfa_token: Option<String>,
    /// The browser's answer (`PublicKeyCredential` as JSON).
    #[schema(value_type = Object)]
    credential: Option<serde_json::Value>,
}

#[utoipa::path(post, path = "/api/auth/login/passkey/finish", tag = "auth", operation_id = "login_passkey_finish", request_body = SecondFactorFinishBody,
    responses((status = 200, description = "Logged in (`amr` pwd hwk mfa)", body = LoginAnswer), (status = 400, description = "A field missing, or `credential_malformed` (counted against the ticket)", body = ErrorBody),
        (status = 401, description = "`passkey_invalid` (counted against the ticket and the account) or `mfa_token_invalid`", body = ErrorBody), (status = 403, description = "CSRF refused", body = ErrorBody), (status = 429, description = "Rate limited; see Retry-After", body = ErrorBody)))]
async fn second_factor_finish(
    State(state): State<AppState>,
    ClientInfo(client): ClientInfo,
    headers: HeaderMap,
    jar: CookieJar,
    Json(body): Json<SecondFactorFinishBody>,
) -> ApiResult {
    let browser = checked_browser_mode(&headers, &jar, &state)?;
    let mut f = Fields::new();
    let ticket = f.present("mfaToken", body.mfa_token.as_deref());
    let credential = f.parse("credential", body.credential, Ok);
    let (Some(ticket), Some(credential)) = (ticket, credential) else {
        return Err(invalid(f));
    };
    let (account, issued) = state
        .core
        .login_second_factor(ticket, SecondStep::Passkey(credential), &client)
        .await?;
    Ok(signed_in(&state, jar, browser, &account, issued))
}

#[utoipa::path(post, path = "/api/auth/passkey/start", tag = "auth", operation_id = "passkey_start",
    request_body(content = Option<Object>, description = "`{}` or nothing"),
    responses((status = 200, description = "Options for `navigator.credentials.get()` with no account named (discoverable credentials)", body = OptionsBody), (status = 429, description = "Too many ceremonies started from this address (10 × `failed_logins_per_ip` per window); see Retry-After", body = ErrorBody)))]
async fn passwordless_start(
    State(state): State<AppState>,
    ClientInfo(client): ClientInfo,
    OptionalJson(_body): OptionalJson<serde_json::Value>,
) -> ApiResult<axum::Json<OptionsBody>> {
    let options = state.core.start_passkey_login(&client).await?;
    Ok(axum::Json(OptionsBody::of(options)))
}

#[derive(Deserialize, ToSchema)]
struct PasswordlessFinishBody {
    /// The browser's answer (`PublicKeyCredential` as JSON, with its `userHandle`).
    #[schema(value_type = Object)]
    credential: Option<serde_json::Value>,
}

#[utoipa::path(post, path = "/api/auth/passkey/finish", tag = "auth", operation_id = "passkey_finish", request_body = PasswordlessFinishBody,
    responses((status = 200, description = "Logged in (`amr` hwk mfa)", body = LoginAnswer), (status = 400, description = "`credential` missing, or `credential_malformed`", body = ErrorBody),
        (status = 401, description = "`passkey_invalid`: no such ceremony (expired or used), a credential not registered, or one that does not verify", body = ErrorBody), (status = 403, description = "CSRF refused", body = ErrorBody), (status = 429, description = "Rate limited; see Retry-After", body = ErrorBody)))]
async fn passwordless_finish(
    State(state): State<AppState>,
    ClientInfo(client): ClientInfo,
    headers: HeaderMap,
    jar: CookieJar,
    Json(body): Json<PasswordlessFinishBody>,
) -> ApiResult {
    let browser = checked_browser_mode(&headers, &jar, &state)?;
    let mut f = Fields::new();
    let Some(credential) = f.parse("credential", body.credential, Ok) else {
        return Err(invalid(f));
    };
    let (account, issued) = state.core.finish_passkey_login(credential, &client).await?;
    Ok(signed_in(&state, jar, browser, &account, issued))
}
