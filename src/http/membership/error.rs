//! The Membership API's error envelope: `{"message", "code"}`, plus `errors` for validation,
//! and the one table from the core's errors (and the extractors' rejections) to it.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::core::members_csv::RowError;
use crate::core::{CoreError, Role};
use crate::domain::FieldError;
use crate::http::current_lang;
use crate::http::extract::Rejection;
use crate::i18n::{Msg, problem_text};

/// An error on its way to the client; rendered in the request's language.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub msg: Msg,
    /// Replaces `msg` for errors whose text comes from elsewhere (a JSON parser's detail).
    pub detail: Option<Box<str>>,
    pub fields: Vec<FieldError>,
    /// Import problems, by line of the file.
    pub rows: Vec<RowError>,
    /// How many problems there were in all, when `rows` lists only the first ones.
    pub error_count: Option<u32>,
    pub retry_after: Option<u32>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, msg: Msg) -> Self {
        Self {
            status,
            code,
            msg,
            detail: None,
            fields: Vec::new(),
            rows: Vec::new(),
            error_count: None,
            retry_after: None,
        }
    }

    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", Msg::NotFound)
    }
}

/// The Membership API's failure envelope, as sent.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ErrorBody {
    /// For people; follows `Accept-Language`.
    pub message: String,
    /// snake_case, stable.
    pub code: &'static str,
    /// Validation and import problems, one per field (and line, for imports).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<FieldErrorBody>>,
    /// All problems of an import, when `errors` lists only the first 1000.
    #[serde(rename = "errorCount", skip_serializing_if = "Option::is_none")]
    pub error_count: Option<u32>,
}

#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FieldErrorBody {
    /// Line of the CSV file (imports only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub row: Option<u64>,
    pub field: String,
    /// Starts with the field's name.
    pub message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let lang = current_lang();
        let errors: Vec<FieldErrorBody> = self
            .fields
            .iter()
            .map(|f| FieldErrorBody {
                row: None,
                field: f.field.to_string(),
                message: problem_text(f.field, f.problem, lang),
            })
            .chain(self.rows.iter().map(|r| FieldErrorBody {
                row: Some(r.row),
                field: r.field.clone(),
                message: problem_text(&r.field, r.problem, lang),
            }))
            .collect();
        // Import errors can be many; the message then stays the general sentence.
        let listed: &[FieldErrorBody] = if self.rows.is_empty() { &errors } else { &[] };
        let message = match (&self.detail, listed) {
            (Some(detail), _) => detail.to_string(),
            (None, []) => self.msg.text(lang).to_string(),
            (None, many) => many
                .iter()
                .map(|e| e.message.as_str())
                .collect::<Vec<_>>()
                .join("; "),
        };
        // A 503 is a fault outside brama or a full queue, logged where it is seen.
        if self.status.is_server_error() && self.status != StatusCode::SERVICE_UNAVAILABLE {
            tracing::error!(code = self.code, "request failed");
        } else {
            tracing::debug!(
                code = self.code,
                status = self.status.as_u16(),
                "request refused"
            );
        }
        let body = ErrorBody {
            message,
            code: self.code,
            errors: (!errors.is_empty()).then_some(errors),
            error_count: self.error_count,
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

impl From<Rejection> for ApiError {
    fn from(r: Rejection) -> Self {
        match r {
            Rejection::Unauthenticated(e) => e.into(),
            other => ApiError {
                detail: other.detail().map(Into::into),
                ..ApiError::new(other.status(), other.code(), other.msg())
            },
        }
    }
}

/// The one table from the core's errors to this surface's status, code and sentence.
impl From<CoreError> for ApiError {
    fn from(e: CoreError) -> Self {
        use StatusCode as S;
        let retry = |secs: u64| Some(u32::try_from(secs).unwrap_or(u32::MAX));
        match e {
            CoreError::Validation(fields) => ApiError {
                fields,
                ..ApiError::new(S::BAD_REQUEST, "validation_failed", Msg::ValidationFailed)
            },
            CoreError::UsernameTaken => {
                ApiError::new(S::BAD_REQUEST, "username_taken", Msg::UsernameTaken)
            }
            CoreError::EmailTaken => ApiError::new(S::BAD_REQUEST, "email_taken", Msg::EmailTaken),
            CoreError::PhoneTaken => ApiError::new(S::BAD_REQUEST, "phone_taken", Msg::PhoneTaken),
            CoreError::InvalidCredentials => ApiError::new(
                S::UNAUTHORIZED,
                "invalid_credentials",
                Msg::InvalidCredentials,
            ),
            CoreError::WrongPassword => {
                ApiError::new(S::UNAUTHORIZED, "wrong_password", Msg::WrongPassword)
            }
            CoreError::RateLimited { retry_after_secs } => ApiError {
                retry_after: retry(retry_after_secs),
                ..ApiError::new(S::TOO_MANY_REQUESTS, "rate_limited", Msg::RateLimited)
            },
            CoreError::Busy { retry_after_secs } => ApiError {
                retry_after: retry(retry_after_secs),
                ..ApiError::new(S::SERVICE_UNAVAILABLE, "busy", Msg::Busy)
            },
            CoreError::StorageFull { retry_after_secs } => ApiError {
                retry_after: retry(retry_after_secs),
                ..ApiError::new(S::SERVICE_UNAVAILABLE, "storage_full", Msg::StorageFull)
            },
            CoreError::DatabaseUnavailable { retry_after_secs } => ApiError {
                retry_after: retry(retry_after_secs),
                ..ApiError::new(
                    S::SERVICE_UNAVAILABLE,
                    "database_unavailable",
                    Msg::DatabaseUnavailable,
                )
            },
            CoreError::NoToken => ApiError::new(S::FORBIDDEN, "no_token", Msg::NoToken),
            CoreError::TokenExpired => {
                ApiError::new(S::UNAUTHORIZED, "token_expired", Msg::TokenExpired)
            }
            CoreError::TokenInvalid => {
                ApiError::new(S::UNAUTHORIZED, "unauthorized", Msg::Unauthorized)
            }
            CoreError::RefreshUnknown => {
                ApiError::new(S::FORBIDDEN, "refresh_token_not_found", Msg::RefreshUnknown)
            }
            CoreError::RefreshExpired => {
                ApiError::new(S::FORBIDDEN, "refresh_token_expired", Msg::RefreshExpired)
            }
            CoreError::RefreshReused => {
                ApiError::new(S::UNAUTHORIZED, "refresh_token_reused", Msg::RefreshReused)
            }
            CoreError::RefreshRotated => ApiError::new(
                S::UNAUTHORIZED,
                "refresh_token_rotated",
                Msg::RefreshRotated,
            ),
            CoreError::ActivationTokenInvalid => ApiError::new(
                S::BAD_REQUEST,
                "activation_token_invalid",
                Msg::ActivationInvalid,
            ),
            CoreError::ResetTokenInvalid => {
                ApiError::new(S::BAD_REQUEST, "reset_token_invalid", Msg::ResetInvalid)
            }
            CoreError::CannotChangeSelf => {
                ApiError::new(S::FORBIDDEN, "cannot_change_self", Msg::CannotChangeSelf)
            }
            CoreError::NotFound => ApiError::not_found(),
            CoreError::Import { errors, total } => ApiError {
                rows: errors,
                error_count: Some(u32::try_from(total).unwrap_or(u32::MAX)),
                ..ApiError::new(S::BAD_REQUEST, "import_failed", Msg::ImportFailed)
            },
            CoreError::MemberNotFound => {
                ApiError::new(S::NOT_FOUND, "not_found", Msg::MemberNotFound)
            }
            CoreError::LastOwner => ApiError::new(S::CONFLICT, "last_owner", Msg::LastOwner),
            CoreError::InvalidCode => {
                ApiError::new(S::UNAUTHORIZED, "invalid_code", Msg::InvalidCode)
            }
            CoreError::MfaEnrollmentRequired => ApiError::new(
                S::FORBIDDEN,
                "mfa_enrollment_required",
                Msg::MfaEnrollmentRequired,
            ),
            CoreError::MfaTokenInvalid => {
                ApiError::new(S::UNAUTHORIZED, "mfa_token_invalid", Msg::MfaTokenInvalid)
            }
            CoreError::TotpEnabled => ApiError::new(S::CONFLICT, "totp_enabled", Msg::TotpEnabled),
            CoreError::TotpNotStarted => {
                ApiError::new(S::CONFLICT, "totp_not_started", Msg::TotpNotStarted)
            }
            CoreError::CredentialMalformed => ApiError::new(
                S::BAD_REQUEST,
                "credential_malformed",
                Msg::CredentialMalformed,
            ),
            CoreError::PasskeyInvalid => {
                ApiError::new(S::UNAUTHORIZED, "passkey_invalid", Msg::PasskeyInvalid)
            }
            CoreError::PasskeyRejected => {
                ApiError::new(S::BAD_REQUEST, "passkey_rejected", Msg::PasskeyRejected)
            }
            CoreError::PasskeyExists => {
                ApiError::new(S::CONFLICT, "passkey_exists", Msg::PasskeyExists)
            }
            CoreError::NoPasskey => ApiError::new(S::CONFLICT, "no_passkey", Msg::NoPasskey),
            CoreError::EmailTokenInvalid => ApiError::new(
                S::BAD_REQUEST,
                "email_token_invalid",
                Msg::EmailTokenInvalid,
            ),
            CoreError::ReauthenticationRequired => ApiError::new(
                S::FORBIDDEN,
                "reauthentication_required",
                Msg::ReauthenticationRequired,
            ),
            CoreError::VersionConflict { .. } => {
                ApiError::new(S::CONFLICT, "version_conflict", Msg::VersionConflict)
            }
            CoreError::Forbidden { required } => {
                let msg = match required {
                    Role::User | Role::Moderator => Msg::RequireModerator,
                    Role::Admin => Msg::RequireAdmin,
                    Role::Owner => Msg::RequireOwner,
                };
                ApiError::new(S::FORBIDDEN, "forbidden", msg)
            }
            CoreError::Internal(detail) => {
                // The detail goes to the log only; the client gets the generic sentence.
                tracing::error!(error = %detail, "internal error");
                ApiError::new(S::INTERNAL_SERVER_ERROR, "internal", Msg::Internal)
            }
        }
    }
}

/// Unknown routes under this surface, and anything outside every surface.
pub async fn not_found() -> ApiError {
    ApiError::from(Rejection::NotFound)
}

pub async fn method_not_allowed() -> ApiError {
    ApiError::from(Rejection::MethodNotAllowed)
}
