//! `/auth/mfa*`: the caller's second factor (SPEC §13): TOTP enrolment, confirmation and
//! disabling, recovery codes, and what the account has.

use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::domain::Fields;
use crate::http::AppState;
use crate::i18n::Msg;

use super::error::ErrorBody;
use super::extract::{AuthUser, Json};
use super::passkeys::PasskeyBody;
use super::{ApiResult, MessageBody, invalid, message};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(status))
        .routes(routes!(start_totp, disable_totp))
        .routes(routes!(confirm_totp))
        .routes(routes!(recovery_codes))
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[serde(deny_unknown_fields)]
struct StatusBody {
    /// TOTP is on (confirmed).
    totp: bool,
    recovery_codes_left: i64,
    passkeys: Vec<PasskeyBody>,
}

#[utoipa::path(get, path = "/api/auth/mfa", tag = "mfa", operation_id = "mfa_status",
    responses((status = 200, description = "The caller's second factors", body = StatusBody), (status = 401, description = "Expired, invalid or revoked access token", body = ErrorBody), (status = 403, description = "No token", body = ErrorBody)),
    security(("access_token" = []), ("bearer" = [])))]
async fn status(
    State(state): State<AppState>,
    user: AuthUser,
) -> ApiResult<axum::Json<StatusBody>> {
    let status = state.core.mfa_status(&user.caller).await?;
    Ok(axum::Json(StatusBody {
        totp: status.totp,
        recovery_codes_left: status.recovery_codes_left,
        passkeys: status.passkeys.into_iter().map(PasskeyBody::from).collect(),
    }))
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[serde(deny_unknown_fields)]
struct EnrolmentBody {
    /// Base32, for typing into the app by hand.
    secret: String,
    otpauth_uri: String,
    /// The URI's QR code, an SVG document.
    qr_svg: String,
}

#[utoipa::path(post, path = "/api/auth/mfa/totp", tag = "mfa", operation_id = "mfa_totp_start",
    responses((status = 200, description = "A new secret; not asked for at login until confirmed", body = EnrolmentBody), (status = 401, description = "Expired, invalid or revoked access token", body = ErrorBody), (status = 403, description = "No token, or CSRF refused", body = ErrorBody), (status = 409, description = "`totp_enabled`: disable it first", body = ErrorBody)),
    security(("access_token" = []), ("bearer" = [])))]
async fn start_totp(
    State(state): State<AppState>,
    user: AuthUser,
) -> ApiResult<axum::Json<EnrolmentBody>> {
    let enrolment = state.core.start_totp(&user.caller).await?;
    Ok(axum::Json(EnrolmentBody {
        secret: enrolment.secret,
        otpauth_uri: enrolment.otpauth_uri,
        qr_svg: enrolment.qr_svg,
    }))
}

#[derive(Deserialize, ToSchema)]
struct CodeBody {
    /// A current 6-digit code from the app, or (where a factor is already on) a recovery code.
    code: Option<String>,
}

impl CodeBody {
    fn code(&self) -> Result<&str, super::error::ApiError> {
        let mut f = Fields::new();
        f.present("code", self.code.as_deref())
            .ok_or_else(|| invalid(f))
    }
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[serde(deny_unknown_fields)]
struct RecoveryCodesBody {
    /// Ten codes, each good for one sign-in; shown this once.
    recovery_codes: Vec<String>,
}

#[utoipa::path(post, path = "/api/auth/mfa/totp/confirm", tag = "mfa", operation_id = "mfa_totp_confirm", request_body = CodeBody,
    responses((status = 200, description = "TOTP is on; the account's recovery codes", body = RecoveryCodesBody), (status = 400, description = "`invalid_code`, or the code missing", body = ErrorBody), (status = 401, description = "Expired, invalid or revoked access token", body = ErrorBody), (status = 403, description = "No token, or CSRF refused", body = ErrorBody), (status = 409, description = "`totp_not_started` or `totp_enabled`", body = ErrorBody), (status = 429, description = "Too many wrong codes; see Retry-After", body = ErrorBody)),
    security(("access_token" = []), ("bearer" = [])))]
async fn confirm_totp(
    State(state): State<AppState>,
    user: AuthUser,
    Json(body): Json<CodeBody>,
) -> ApiResult<axum::Json<RecoveryCodesBody>> {
    let recovery_codes = state
        .core
        .confirm_totp(&user.caller, body.code()?, &user.client)
        .await?;
    Ok(axum::Json(RecoveryCodesBody { recovery_codes }))
}

#[utoipa::path(delete, path = "/api/auth/mfa/totp", tag = "mfa", operation_id = "mfa_totp_disable", request_body = CodeBody,
    responses((status = 200, description = "TOTP and the recovery codes are off", body = MessageBody), (status = 400, description = "`invalid_code`, or the code missing", body = ErrorBody), (status = 401, description = "Expired, invalid or revoked access token", body = ErrorBody), (status = 403, description = "No token, or CSRF refused", body = ErrorBody), (status = 429, description = "Too many wrong codes; see Retry-After", body = ErrorBody)),
    security(("access_token" = []), ("bearer" = [])))]
async fn disable_totp(
    State(state): State<AppState>,
    user: AuthUser,
    Json(body): Json<CodeBody>,
) -> ApiResult<axum::Json<MessageBody>> {
    state
        .core
        .disable_totp(&user.caller, body.code()?, &user.client)
        .await?;
    Ok(message(Msg::TotpDisabled))
}

#[utoipa::path(post, path = "/api/auth/mfa/recovery-codes", tag = "mfa", operation_id = "mfa_recovery_codes", request_body = CodeBody,
    responses((status = 200, description = "Ten new recovery codes; the old ones no longer work. An account with passkeys alone may leave `code` out from a session opened with a passkey in the last 15 minutes", body = RecoveryCodesBody), (status = 400, description = "`invalid_code`, or the code missing", body = ErrorBody), (status = 401, description = "Expired, invalid or revoked access token", body = ErrorBody), (status = 403, description = "No token, or CSRF refused", body = ErrorBody), (status = 429, description = "Too many wrong codes; see Retry-After", body = ErrorBody)),
    security(("access_token" = []), ("bearer" = [])))]
async fn recovery_codes(
    State(state): State<AppState>,
    user: AuthUser,
    Json(body): Json<CodeBody>,
) -> ApiResult<axum::Json<RecoveryCodesBody>> {
    let code = body.code.as_deref().filter(|c| !c.is_empty());
    let recovery_codes = state
        .core
        .regenerate_recovery_codes(&user.caller, code, &user.client)
        .await?;
    Ok(axum::Json(RecoveryCodesBody { recovery_codes }))
}
