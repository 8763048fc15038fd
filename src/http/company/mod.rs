//! Seed 002's surface: `/company/*` sign-up and activation, `/web/*` log-in, refresh and
//! log-out, in its `{status, info, msg, data}` envelope, Russian unless `Accept-Language` says
//! otherwise.

pub mod error;

use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use axum_extra::extract::CookieJar;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::core::company::Signup;
use crate::core::sessions::IssuedSession;
use crate::core::{CoreError, Role};
use crate::http::extract::{AppJson, ClientInfo, access_token};
use crate::http::{AppState, current_lang};
use crate::i18n::Msg;
use crate::store::AccountRecord;
use error::CompanyError;

pub fn routes() -> Router<AppState> {
    let company = Router::new()
        .route("/signup", post(signup))
        .route("/activate", post(activate))
        .route("/activation/resend", post(resend_activation))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed);
    let web = Router::new()
        .route("/auth", post(auth))
        .route("/refresh", post(refresh))
        .route("/logout", post(logout))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed);
    Router::new().nest("/company", company).nest("/web", web)
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

async fn not_found() -> CompanyError {
    CompanyError::new(StatusCode::NOT_FOUND, "not_found", Msg::NotFound)
}

async fn method_not_allowed() -> CompanyError {
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
#[derive(Serialize)]
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
#[derive(Serialize)]
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

#[derive(Deserialize)]
struct ActivateBody {
    token: Option<String>,
    password: Option<String>,
    name: Option<String>,
    surname: Option<String>,
}

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

#[derive(Deserialize)]
struct EmailBody {
    email: Option<String>,
}

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

#[derive(Deserialize)]
struct AuthBody {
    email: Option<String>,
    password: Option<String>,
}

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

#[derive(Deserialize)]
struct RefreshBody {
    refresh: Option<String>,
}

#[derive(Serialize)]
struct Pair {
    access: String,
    refresh: String,
}

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
