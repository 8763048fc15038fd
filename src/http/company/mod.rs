//! Seed 002's surface: `/company/*` sign-up and activation, `/web/*` log-in, refresh and
//! log-out, in its `{status, info, msg, data}` envelope, Russian unless `Accept-Language` says
//! otherwise.

pub mod error;

use axum::Json;
use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum_extra::extract::CookieJar;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::core::company::Signup;
use crate::core::sessions::IssuedSession;
use crate::core::{CoreError, Role};
use crate::http::extract::{AppJson, ClientInfo, access_token};
use crate::http::openapi::CompanyFailure;
use crate::http::{AppState, current_lang};
use crate::i18n::Msg;
use crate::store::AccountRecord;
use error::CompanyError;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(signup))
        .routes(routes!(activate))
        .routes(routes!(resend_activation))
        .routes(routes!(auth))
        .routes(routes!(refresh))
        .routes(routes!(logout))
}

/// A success without `data` (sign-up, resend, log-out).
#[derive(ToSchema)]
#[allow(dead_code)]
struct CompanyAnswer {
    /// `created` or `success`.
    status: String,
    info: String,
    msg: Vec<String>,
}

/// The sign-up form of seed 002.
#[derive(ToSchema)]
#[allow(dead_code)]
struct SignupInput {
    /// 10–40 characters: English letters, digits and `!?@.-`.
    email: String,
    /// 2–20 characters: digits and a leading `+`.
    phone: String,
    state: i64,
}

/// Paths this surface answers, in its own envelope and language.
pub fn is_company_path(path: &str) -> bool {
    ["/company", "/web"].iter().any(|p| {
        path == *p
            || path
                .strip_prefix(p)
                .is_some_and(|rest| rest.starts_with('/'))
    })
}

pub async fn not_found() -> CompanyError {
    CompanyError::new(StatusCode::NOT_FOUND, "not_found", Msg::NotFound)
}

pub async fn method_not_allowed() -> CompanyError {
    CompanyError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        Msg::MethodNotAllowed,
    )
}

/// A JSON body; its failures in this surface's envelope.
pub struct CompanyJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for CompanyJson<T> {
    type Rejection = CompanyError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        AppJson::<T>::from_request(req, state)
            .await
            .map(|AppJson(v)| CompanyJson(v))
            .map_err(CompanyError::from)
    }
}

/// The success envelope.
#[derive(Serialize, ToSchema)]
struct Success<T: Serialize> {
    status: &'static str,
    info: String,
    msg: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<T>,
}

fn success<T: Serialize>(status: &'static str, info: String, data: Option<T>) -> Json<Success<T>> {
    Json(Success {
        status,
        info,
        msg: Vec::new(),
        data,
    })
}

type Answer<T> = Result<Json<Success<T>>, CompanyError>;

#[utoipa::path(post, path = "/company/signup", tag = "company", request_body = SignupInput,
    responses((status = 200, description = "`status: created`; the activation email is on its way", body = CompanyAnswer), (status = 400, description = "Failure: errorID, msg per field, info", body = CompanyFailure), (status = 429, description = "Rate limited", body = CompanyFailure)))]
async fn signup(
    State(state): State<AppState>,
    ClientInfo(client): ClientInfo,
    CompanyJson(body): CompanyJson<Signup>,
) -> Answer<()> {
    state.core.signup(&body, current_lang(), &client).await?;
    Ok(success(
        "created",
        Msg::CompanyCreated.text(current_lang()),
        None,
    ))
}

/// What `/web/auth` and `/company/activate` answer in `data`.
#[derive(Serialize, ToSchema)]
struct Session {
    name: String,
    surname: String,
    role: &'static str,
    access: String,
    refresh: String,
}

fn session(account: &AccountRecord, issued: IssuedSession) -> Session {
    let role = match Role::parse(&account.role) {
        Some(Role::Owner) => "Owner",
        Some(Role::Admin) => "Admin",
        Some(Role::Moderator) => "Moderator",
        _ => "User",
    };
    Session {
        name: account.name.clone(),
        surname: account.surname.clone(),
        role,
        access: issued.access_token,
        refresh: issued.refresh_token,
    }
}

#[derive(Deserialize, ToSchema)]
struct ActivateBody {
    token: Option<String>,
    password: Option<String>,
    name: Option<String>,
    surname: Option<String>,
}

#[utoipa::path(post, path = "/company/activate", tag = "company", request_body = ActivateBody,
    responses((status = 200, description = "Activated and logged in", body = Success<Session>), (status = 400, description = "Failure: errorID, msg per field, info", body = CompanyFailure)))]
async fn activate(
    State(state): State<AppState>,
    ClientInfo(client): ClientInfo,
    CompanyJson(body): CompanyJson<ActivateBody>,
) -> Answer<Session> {
    let (account, issued) = state
        .core
        .activate(
            body.token.as_deref(),
            body.password.as_deref(),
            body.name.as_deref(),
            body.surname.as_deref(),
            &client,
        )
        .await?;
    Ok(success(
        "success",
        String::new(),
        Some(session(&account, issued)),
    ))
}

#[derive(Deserialize, ToSchema)]
struct EmailBody {
    email: Option<String>,
}

#[utoipa::path(post, path = "/company/activation/resend", tag = "company", request_body = EmailBody,
    responses((status = 200, description = "Always the same answer", body = CompanyAnswer), (status = 400, description = "Failure: errorID, msg per field, info", body = CompanyFailure)))]
async fn resend_activation(
    State(state): State<AppState>,
    ClientInfo(client): ClientInfo,
    CompanyJson(body): CompanyJson<EmailBody>,
) -> Answer<()> {
    state
        .core
        .resend_activation(body.email.as_deref(), current_lang(), &client)
        .await?;
    Ok(success(
        "success",
        Msg::ActivationResent.text(current_lang()),
        None,
    ))
}

#[derive(Deserialize, ToSchema)]
struct AuthBody {
    email: Option<String>,
    password: Option<String>,
}

#[utoipa::path(post, path = "/web/auth", tag = "company", request_body = AuthBody,
    responses((status = 200, description = "Logged in", body = Success<Session>), (status = 400, description = "Failure: errorID, msg per field, info", body = CompanyFailure), (status = 429, description = "Rate limited", body = CompanyFailure)))]
async fn auth(
    State(state): State<AppState>,
    ClientInfo(client): ClientInfo,
    CompanyJson(body): CompanyJson<AuthBody>,
) -> Answer<Session> {
    let (account, issued) = state
        .core
        .login_as(
            "email",
            body.email.as_deref(),
            body.password.as_deref(),
            &client,
        )
        .await?;
    Ok(success(
        "success",
        String::new(),
        Some(session(&account, issued)),
    ))
}

#[derive(Deserialize, ToSchema)]
struct RefreshBody {
    refresh: Option<String>,
}

#[derive(Serialize, ToSchema)]
struct Pair {
    access: String,
    refresh: String,
}

#[utoipa::path(post, path = "/web/refresh", tag = "company", request_body = RefreshBody,
    responses((status = 200, description = "A new pair; the old refresh token is used up", body = Success<Pair>), (status = 400, description = "Failure: errorID, msg per field, info", body = CompanyFailure)))]
async fn refresh(
    State(state): State<AppState>,
    ClientInfo(client): ClientInfo,
    CompanyJson(body): CompanyJson<RefreshBody>,
) -> Answer<Pair> {
    let Some(token) = body.refresh.filter(|t| !t.is_empty()) else {
        return Err(CoreError::Validation(vec![crate::domain::FieldError {
            field: "refresh",
            problem: crate::domain::Problem::Required,
        }])
        .into());
    };
    let issued = state.core.refresh(&token, &client).await?;
    Ok(success(
        "success",
        String::new(),
        Some(Pair {
            access: issued.access_token,
            refresh: issued.refresh_token,
        }),
    ))
}

/// Ends the session of the access token in `Authorization: Bearer` (or `x-access-token`).
#[utoipa::path(post, path = "/web/logout", tag = "company",
    responses((status = 200, description = "Session ended", body = CompanyAnswer), (status = 400, description = "Failure: errorID, msg per field, info", body = CompanyFailure)), security(("bearer" = []), ("access_token" = [])))]
async fn logout(
    State(state): State<AppState>,
    ClientInfo(client): ClientInfo,
    headers: HeaderMap,
) -> Answer<()> {
    // Cookies are the Membership API's browser mode; this surface takes header tokens only.
    let Some((token, _)) = access_token(&headers, &CookieJar::new()) else {
        return Err(CoreError::NoToken.into());
    };
    let claims = state.core.authenticate(&token).await?;
    state.core.logout(&claims, &client).await?;
    Ok(success("success", String::new(), None))
}
