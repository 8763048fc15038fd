//! The Company API's failure envelope (seed 002): `{"errorID", "status": "error", "msg", "info"}`.
//! `errorID` is `#` and eight random letters and digits, new for every answer, and logged with
//! the error, so support can find the log line from the client's screenshot.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rand::Rng;
use rand::distributions::Alphanumeric;
use serde::Serialize;

use crate::core::CoreError;
use crate::domain::{FieldError, Problem};
use crate::http::current_lang;
use crate::http::membership::error::ApiError;
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

#[derive(Serialize)]
struct Body {
    #[serde(rename = "errorID")]
    error_id: String,
    status: &'static str,
    msg: Vec<String>,
    info: String,
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
        let body = Body {
            error_id,
            status: "error",
            msg,
            info: self.info.text(lang),
        };
        let mut response = (self.status, Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

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
                retry_after: Some(u32::try_from(retry_after_secs).unwrap_or(u32::MAX)),
                ..CompanyError::new(S::TOO_MANY_REQUESTS, "rate_limited", Msg::RateLimited)
            },
            CoreError::Busy { retry_after_secs } => CompanyError {
                retry_after: Some(u32::try_from(retry_after_secs).unwrap_or(u32::MAX)),
                ..CompanyError::new(S::SERVICE_UNAVAILABLE, "busy", Msg::Busy)
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
            CoreError::Import { .. } => bad("import_failed", Msg::ImportFailed),
            CoreError::Internal(detail) => {
                tracing::error!(error = %detail, "internal error");
                CompanyError::new(S::INTERNAL_SERVER_ERROR, "internal", Msg::Internal)
            }
        }
    }
}

/// The shared extractors answer in the Membership form; this surface re-dresses them.
impl From<ApiError> for CompanyError {
    fn from(e: ApiError) -> Self {
        // Seed 002: failures are 400, except rate limits; 404/405/413/415 keep their meaning.
        let status = match e.status.as_u16() {
            404 | 405 | 413 | 415 | 429 | 503 => e.status,
            _ => StatusCode::BAD_REQUEST,
        };
        let sentences = e.detail.map(|d| vec![d.to_string()]).unwrap_or_default();
        CompanyError {
            status,
            code: e.code,
            info: e.msg,
            fields: e.fields,
            sentences,
            retry_after: e.retry_after,
        }
    }
}
