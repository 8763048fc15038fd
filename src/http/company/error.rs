//! The Company API's failure envelope (seed 002): `{"errorID", "status": "error", "msg", "info"}`,
//! and the one table from the core's errors (and the extractors' rejections) to it.
//! `errorID` is `#` and eight random letters and digits, new for every answer, and logged with
//! the error, so support can find the log line from the client's screenshot.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rand::Rng;
use rand::distributions::Alphanumeric;
use serde::Serialize;
use utoipa::ToSchema;

use crate::core::CoreError;
use crate::domain::{FieldError, Problem};
use crate::http::current_lang;
use crate::http::extract::Rejection;
use crate::i18n::{Msg, problem_text};

#[derive(Debug)]
pub struct CompanyError {
    pub status: StatusCode,
    /// A short name for the log.
    pub code: &'static str,
    pub info: Msg,
    /// One sentence each, starting with the field's JSON name.
    pub fields: Vec<FieldError>,
    /// Already-written sentences (a JSON parser's detail).
    pub sentences: Vec<String>,
    pub retry_after: Option<u32>,
}

impl CompanyError {
    pub fn new(status: StatusCode, code: &'static str, info: Msg) -> Self {
        Self {
            status,
            code,
            info,
            fields: Vec::new(),
            sentences: Vec::new(),
            retry_after: None,
        }
    }
}

/// The Company API's failure envelope, as sent.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompanyFailure {
    /// `#` and eight letters or digits, also in the server's log line of the error.
    #[serde(rename = "errorID")]
    pub error_id: String,
    /// Always `error`.
    pub status: &'static str,
    /// One sentence per problem, starting with the field's JSON name.
    pub msg: Vec<String>,
    pub info: String,
}

/// `#` and eight letters or digits from the OS generator.
pub fn error_id() -> String {
    let id: String = rand::rngs::OsRng
        .sample_iter(&Alphanumeric)
        .take(8)
        .map(char::from)
        .collect();
    format!("#{id}")
}

impl IntoResponse for CompanyError {
    fn into_response(self) -> Response {
        let lang = current_lang();
        let error_id = error_id();
        let mut msg: Vec<String> = self
            .fields
            .iter()
            .map(|f| problem_text(f.field, f.problem, lang))
            .collect();
        msg.extend(self.sentences);
        // The field names and codes say what went wrong; the values never reach the log.
        let fields: Vec<&str> = self.fields.iter().map(|f| f.field).collect();
        if self.status.is_server_error() && self.status != StatusCode::SERVICE_UNAVAILABLE {
            tracing::error!(error_id = %error_id, code = self.code, status = self.status.as_u16(), ?fields, "company api error");
        } else {
            tracing::warn!(error_id = %error_id, code = self.code, status = self.status.as_u16(), ?fields, "company api error");
        }
        let body = CompanyFailure {
            error_id,
            status: "error",
            msg,
            info: self.info.text(lang),
        };
        let mut response = (self.status, Json(body)).into_response();
        if self.code == "storage_full" {
            response
                .extensions_mut()
                .insert(crate::http::StorageFullAnswer);
        }
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// Seed 002 answers every failure with 400, except rate limits, a busy server and an unavailable
/// database (503); what is not a request of this API at all (404, 405, 413, 415) keeps its own
/// status.
impl From<Rejection> for CompanyError {
    fn from(r: Rejection) -> Self {
        match r {
            Rejection::Unauthenticated(e) => e.into(),
            other => {
                let status = match other.status() {
                    s @ (StatusCode::NOT_FOUND
                    | StatusCode::METHOD_NOT_ALLOWED
                    | StatusCode::PAYLOAD_TOO_LARGE
                    | StatusCode::UNSUPPORTED_MEDIA_TYPE) => s,
                    _ => StatusCode::BAD_REQUEST,
                };
                CompanyError {
                    sentences: other.detail().map(str::to_owned).into_iter().collect(),
                    ..CompanyError::new(status, other.code(), other.msg())
                }
            }
        }
    }
}

/// The one table from the core's errors to this surface's status and sentences.
impl From<CoreError> for CompanyError {
    fn from(e: CoreError) -> Self {
        use StatusCode as S;
        let bad = |code, info| CompanyError::new(S::BAD_REQUEST, code, info);
        let taken = |field: &'static str| CompanyError {
            fields: vec![FieldError {
                field,
                problem: Problem::Taken,
            }],
            ..bad("taken", Msg::ValidationFailed)
        };
        let retry = |secs: u64| Some(u32::try_from(secs).unwrap_or(u32::MAX));
        match e {
            CoreError::Validation(fields) => CompanyError {
                fields,
                ..bad("validation_failed", Msg::ValidationFailed)
            },
            CoreError::EmailTaken => taken("email"),
            CoreError::PhoneTaken => taken("phone"),
            CoreError::UsernameTaken => taken("username"),
            CoreError::InvalidCredentials => {
                bad("invalid_credentials", Msg::InvalidEmailOrPassword)
            }
            CoreError::RateLimited { retry_after_secs } => CompanyError {
                retry_after: retry(retry_after_secs),
                ..CompanyError::new(S::TOO_MANY_REQUESTS, "rate_limited", Msg::RateLimited)
            },
            CoreError::Busy { retry_after_secs } => CompanyError {
                retry_after: retry(retry_after_secs),
                ..CompanyError::new(S::SERVICE_UNAVAILABLE, "busy", Msg::Busy)
            },
            CoreError::StorageFull { retry_after_secs } => CompanyError {
                retry_after: retry(retry_after_secs),
                ..CompanyError::new(S::SERVICE_UNAVAILABLE, "storage_full", Msg::StorageFull)
            },
            CoreError::DatabaseUnavailable { retry_after_secs } => CompanyError {
                retry_after: retry(retry_after_secs),
                ..CompanyError::new(
                    S::SERVICE_UNAVAILABLE,
                    "database_unavailable",
                    Msg::DatabaseUnavailable,
                )
            },
            CoreError::NoToken => bad("no_token", Msg::NoToken),
            CoreError::TokenExpired => bad("token_expired", Msg::TokenExpired),
            CoreError::TokenInvalid => bad("unauthorized", Msg::Unauthorized),
            CoreError::RefreshUnknown => bad("refresh_token_not_found", Msg::RefreshUnknown),
            CoreError::RefreshExpired => bad("refresh_token_expired", Msg::RefreshExpired),
            CoreError::RefreshReused => bad("refresh_token_reused", Msg::RefreshReused),
            CoreError::RefreshRotated => bad("refresh_token_rotated", Msg::RefreshRotated),
            CoreError::ActivationTokenInvalid => {
                bad("activation_token_invalid", Msg::ActivationInvalid)
            }
            CoreError::ResetTokenInvalid => bad("reset_token_invalid", Msg::ResetInvalid),
            CoreError::WrongPassword => bad("wrong_password", Msg::WrongPassword),
            CoreError::Forbidden { .. } | CoreError::CannotChangeSelf => {
                bad("forbidden", Msg::Forbidden)
            }
            CoreError::NotFound | CoreError::MemberNotFound => bad("not_found", Msg::NotFound),
            CoreError::VersionConflict { .. } => bad("version_conflict", Msg::VersionConflict),
            CoreError::LastOwner => bad("last_owner", Msg::LastOwner),
            CoreError::InvalidCode => bad("invalid_code", Msg::InvalidCode),
            CoreError::MfaTokenInvalid => bad("mfa_token_invalid", Msg::MfaTokenInvalid),
            CoreError::MfaEnrollmentRequired => {
                bad("mfa_enrollment_required", Msg::MfaEnrollmentRequired)
            }
            CoreError::TotpEnabled => bad("totp_enabled", Msg::TotpEnabled),
            CoreError::TotpNotStarted => bad("totp_not_started", Msg::TotpNotStarted),
            CoreError::CredentialMalformed => bad("credential_malformed", Msg::CredentialMalformed),
            CoreError::PasskeyInvalid => bad("passkey_invalid", Msg::PasskeyInvalid),
            CoreError::PasskeyRejected => bad("passkey_rejected", Msg::PasskeyRejected),
            CoreError::PasskeyExists => bad("passkey_exists", Msg::PasskeyExists),
            CoreError::NoPasskey => bad("no_passkey", Msg::NoPasskey),
            CoreError::EmailTokenInvalid => bad("email_token_invalid", Msg::EmailTokenInvalid),
            CoreError::ReauthenticationRequired => {
                bad("reauthentication_required", Msg::ReauthenticationRequired)
            }
            CoreError::Import { .. } => bad("import_failed", Msg::ImportFailed),
            CoreError::Internal(detail) => {
                tracing::error!(error = %detail, "internal error");
                CompanyError::new(S::INTERNAL_SERVER_ERROR, "internal", Msg::Internal)
            }
        }
    }
}

/// Unknown routes under this surface.
pub async fn not_found() -> CompanyError {
    Rejection::NotFound.into()
}

pub async fn method_not_allowed() -> CompanyError {
    Rejection::MethodNotAllowed.into()
}
