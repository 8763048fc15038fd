//! Seed 002's surface: `/company/*` sign-up and activation, `/web/*` log-in, refresh and
//! log-out, in its `{status, info, msg, data}` envelope, Russian unless `Accept-Language` says
//! otherwise. Two nested routers (one per prefix) with the same fallbacks, limits and envelope.

pub mod error;

use axum::Router;
use axum::extract::{FromRequest, State};
use axum::http::HeaderMap;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use utoipa::openapi::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::core::accounts::{Credentials, Login};
use crate::core::company::{Activation, CompanySignup};
use crate::core::sessions::IssuedSession;
use crate::core::{AccountRecord, CoreError, Role};
use crate::domain::{CompanyEmail, Fields, MemberText, Password, Phone, Problem};
use crate::http::extract::{ClientInfo, JsonBody, access_token};
use crate::http::{AppState, BODY_LIMIT, current_lang, surface_layers};
use crate::i18n::{Lang, Msg};
use error::{CompanyError, CompanyFailure};

/// `/company/*`: sign-up and activation (paths relative to `/company`).
pub fn company_surface() -> (Router<AppState>, OpenApi) {
    decorate(
        OpenApiRouter::new()
            .routes(routes!(signup))
            .routes(routes!(activate))
            .routes(routes!(resend_activation)),
    )
}

/// `/web/*`: log-in, refresh and log-out (paths relative to `/web`).
pub fn web_surface() -> (Router<AppState>, OpenApi) {
    decorate(
        OpenApiRouter::new()
            .routes(routes!(auth))
            .routes(routes!(auth_mfa))
            .routes(routes!(refresh))
            .routes(routes!(logout)),
    )
}

/// `/company/` and `/web/`: a nested router answers its prefix with and without more path, but
/// not the prefix with a bare trailing slash; that one is still this surface's unknown route.
pub fn bare_prefixes() -> Router<AppState> {
    let unknown = axum::routing::any(error::not_found);
    let router = Router::new()
        .route("/company/", unknown.clone())
        .route("/web/", unknown);
    surface_layers::<CompanyError, _>(Lang::Ru, BODY_LIMIT, router)
}

fn decorate(routes: OpenApiRouter<AppState>) -> (Router<AppState>, OpenApi) {
    let (router, doc) = routes.split_for_parts();
    let router = router
        .method_not_allowed_fallback(error::method_not_allowed)
        .fallback(error::not_found);
    (
        surface_layers::<CompanyError, _>(Lang::Ru, BODY_LIMIT, router),
        doc,
    )
}

/// A JSON body; its failures in this surface's envelope.
#[derive(FromRequest)]
#[from_request(via(JsonBody), rejection(CompanyError))]
pub struct Json<T>(pub T);

/// A success with `data`.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct Success<T: Serialize> {
    /// `success`.
    status: &'static str,
    info: String,
    msg: Vec<String>,
    data: T,
}

/// A success without `data` (sign-up, resend, log-out).
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct Done {
    /// `created` or `success`.
    status: &'static str,
    info: String,
    msg: Vec<String>,
}

fn success<T: Serialize>(data: T) -> axum::Json<Success<T>> {
    axum::Json(enveloped("success", String::new(), data))
}

/// This surface's envelope around `data`, with no per-field messages.
fn enveloped<T: Serialize>(status: &'static str, info: String, data: T) -> Success<T> {
    Success {
        status,
        info,
        msg: Vec::new(),
        data,
    }
}

fn done(status: &'static str, info: String) -> axum::Json<Done> {
    axum::Json(Done {
        status,
        info,
        msg: Vec::new(),
    })
}

type Answer<T> = Result<axum::Json<T>, CompanyError>;

fn invalid(fields: Fields) -> CompanyError {
    CoreError::Validation(fields.into_errors()).into()
}

/// The sign-up form of seed 002.
#[derive(Deserialize, ToSchema)]
struct SignupBody {
    /// 10–40 characters: English letters, digits and `!?@.-`.
    email: Option<String>,
    /// 2–20 characters: digits and a leading `+`.
    phone: Option<String>,
    /// A whole number.
    #[schema(value_type = Option<i64>)]
    state: Option<Value>,
}

impl SignupBody {
    fn parse(self) -> Result<CompanySignup, CompanyError> {
        let mut f = Fields::new();
        let email = f.parse("email", self.email.as_deref(), CompanyEmail::parse);
        let phone = f.parse("phone", self.phone.as_deref(), Phone::parse);
        let state = f.parse("state", self.state.filter(|s| !s.is_null()), |v| {
            v.as_i64().ok_or(Problem::Type)
        });
        match (email, phone, state) {
            (Some(email), Some(phone), Some(state)) => Ok(CompanySignup {
                email,
                phone,
                state,
            }),
            _ => Err(invalid(f)),
        }
    }
}

#[utoipa::path(post, path = "/signup", tag = "company", operation_id = "company_signup", request_body = SignupBody,
    responses((status = 200, description = "`status: created`; the activation email is on its way", body = Done), (status = 400, description = "Failure: errorID, msg per field, info", body = CompanyFailure), (status = 429, description = "Rate limited", body = CompanyFailure)))]
async fn signup(
    State(state): State<AppState>,
    ClientInfo(client): ClientInfo,
    Json(body): Json<SignupBody>,
) -> Answer<Done> {
    let signup = body.parse()?;
    state.core.signup(signup, current_lang(), &client).await?;
    Ok(done("created", Msg::CompanyCreated.text(current_lang())))
}

/// What `/web/auth` and `/company/activate` answer in `data`.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct Session {
    name: String,
    surname: String,
    /// `Owner`, `Admin`, `Moderator` or `User`.
    role: &'static str,
    access: String,
    refresh: String,
}

fn session(account: &AccountRecord, issued: IssuedSession) -> Session {
    let role = match account.role {
        Role::Owner => "Owner",
        Role::Admin => "Admin",
        Role::Moderator => "Moderator",
        Role::User => "User",
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

#[utoipa::path(post, path = "/activate", tag = "company", operation_id = "company_activate", request_body = ActivateBody,
    responses((status = 200, description = "Activated and logged in", body = Success<Session>), (status = 400, description = "Failure: errorID, msg per field, info", body = CompanyFailure)))]
async fn activate(
    State(state): State<AppState>,
    ClientInfo(client): ClientInfo,
    Json(body): Json<ActivateBody>,
) -> Answer<Success<Session>> {
    let policy = state.core.config.password_policy;
    let mut f = Fields::new();
    let token = f.present("token", body.token.as_deref());
    let password = f.parse("password", body.password.as_deref(), |p| {
        Password::parse(p, policy)
    });
    let name = f.parse("name", body.name.as_deref(), MemberText::parse);
    let surname = match body
        .surname
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        None => Some(None),
        Some(s) => f.check("surname", MemberText::parse(s)).map(Some),
    };
    let (Some(token), Some(password), Some(name), Some(surname)) = (token, password, name, surname)
    else {
        return Err(invalid(f));
    };
    let activation = Activation {
        token: SecretString::from(token),
        password,
        name,
        surname,
    };
    let (account, issued) = state.core.activate(activation, &client).await?;
    Ok(success(session(&account, issued)))
}

#[derive(Deserialize, ToSchema)]
struct EmailBody {
    email: Option<String>,
}

#[utoipa::path(post, path = "/activation/resend", tag = "company", operation_id = "company_resend_activation", request_body = EmailBody,
    responses((status = 200, description = "Always the same answer", body = Done), (status = 400, description = "Failure: errorID, msg per field, info", body = CompanyFailure)))]
async fn resend_activation(
    State(state): State<AppState>,
    ClientInfo(client): ClientInfo,
    Json(body): Json<EmailBody>,
) -> Answer<Done> {
    let mut f = Fields::new();
    let Some(email) = f.parse("email", body.email.as_deref(), CompanyEmail::parse) else {
        return Err(invalid(f));
    };
    state
        .core
        .resend_activation(email, current_lang(), &client)
        .await?;
    Ok(done("success", Msg::ActivationResent.text(current_lang())))
}

#[derive(Deserialize, ToSchema)]
struct AuthBody {
    email: Option<String>,
    password: Option<String>,
}

/// A second factor is due (SPEC §13): `data` carries the ticket for `/web/auth/mfa`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[serde(deny_unknown_fields)]
struct MfaChallenge {
    mfa_token: String,
    /// Among `totp` and `recovery`: `/web/auth/mfa` takes codes (an account's passkeys serve
    /// on the Membership API and the page).
    methods: Vec<&'static str>,
}

/// `/web/auth`'s 200: a session, or (`status: "mfa_required"`) the ticket of a second step.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
enum AuthAnswer {
    Session(Success<Session>),
    SecondFactor(Success<MfaChallenge>),
}

#[utoipa::path(post, path = "/auth", tag = "company", operation_id = "web_auth", request_body = AuthBody,
    responses((status = 200, description = "Logged in; or `status: mfa_required` with the ticket for `/web/auth/mfa` (SPEC §13)", body = AuthAnswer), (status = 400, description = "Failure: errorID, msg per field, info", body = CompanyFailure), (status = 429, description = "Rate limited", body = CompanyFailure)))]
async fn auth(
    State(state): State<AppState>,
    ClientInfo(client): ClientInfo,
    Json(body): Json<AuthBody>,
) -> Answer<AuthAnswer> {
    let mut f = Fields::new();
    let login = f.present("email", body.email.as_deref());
    let password = f.present("password", body.password.as_deref());
    let (Some(login), Some(password)) = (login, password) else {
        return Err(invalid(f));
    };
    let credentials = Credentials {
        login: login.to_string(),
        password: SecretString::from(password),
    };
    Ok(axum::Json(
        match state.core.login(credentials, &client).await? {
            Login::Session(account, issued) => AuthAnswer::Session(enveloped(
                "success",
                String::new(),
                session(&account, issued),
            )),
            Login::SecondFactor {
                mfa_token,
                mut methods,
            } => {
                methods.retain(|m| *m != "passkey");
                AuthAnswer::SecondFactor(enveloped(
                    "mfa_required",
                    Msg::MfaRequired.text(current_lang()),
                    MfaChallenge { mfa_token, methods },
                ))
            }
        },
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct AuthMfaBody {
    mfa_token: Option<String>,
    /// A current 6-digit code from the authenticator app, or a recovery code.
    code: Option<String>,
}

#[utoipa::path(post, path = "/auth/mfa", tag = "company", operation_id = "web_auth_mfa", request_body = AuthMfaBody,
    responses((status = 200, description = "Logged in", body = Success<Session>), (status = 400, description = "Failure: errorID `invalid_code` or `mfa_token_invalid`, msg per field, info", body = CompanyFailure), (status = 429, description = "Rate limited", body = CompanyFailure)))]
async fn auth_mfa(
    State(state): State<AppState>,
    ClientInfo(client): ClientInfo,
    Json(body): Json<AuthMfaBody>,
) -> Answer<Success<Session>> {
    let mut f = Fields::new();
    let ticket = f.present("mfaToken", body.mfa_token.as_deref());
    let code = f.present("code", body.code.as_deref());
    let (Some(ticket), Some(code)) = (ticket, code) else {
        return Err(invalid(f));
    };
    let (account, issued) = state
        .core
        .login_second_factor(
            ticket,
            crate::core::accounts::SecondStep::Code(code),
            &client,
        )
        .await?;
    Ok(success(session(&account, issued)))
}

#[derive(Deserialize, ToSchema)]
struct RefreshBody {
    refresh: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct Pair {
    access: String,
    refresh: String,
}

#[utoipa::path(post, path = "/refresh", tag = "company", operation_id = "web_refresh", request_body = RefreshBody,
    responses((status = 200, description = "A new pair; the old refresh token is used up", body = Success<Pair>), (status = 400, description = "Failure: errorID, msg per field, info", body = CompanyFailure)))]
async fn refresh(
    State(state): State<AppState>,
    ClientInfo(client): ClientInfo,
    Json(body): Json<RefreshBody>,
) -> Answer<Success<Pair>> {
    let mut f = Fields::new();
    let Some(token) = f.present("refresh", body.refresh.as_deref()) else {
        return Err(invalid(f));
    };
    let issued = state.core.refresh(token, &client).await?;
    Ok(success(Pair {
        access: issued.access_token,
        refresh: issued.refresh_token,
    }))
}

/// Ends the session of the access token in `Authorization: Bearer` (or `x-access-token`).
#[utoipa::path(post, path = "/logout", tag = "company", operation_id = "web_logout",
    responses((status = 200, description = "Session ended", body = Done), (status = 400, description = "Failure: errorID, msg per field, info", body = CompanyFailure)), security(("bearer" = []), ("access_token" = [])))]
async fn logout(
    State(state): State<AppState>,
    ClientInfo(client): ClientInfo,
    headers: HeaderMap,
) -> Answer<Done> {
    // Cookies are the Membership API's browser mode; this surface takes header tokens only.
    let Some((token, _)) = access_token(&headers, None) else {
        return Err(CoreError::NoToken.into());
    };
    let caller = state
        .core
        .authenticate_for(token, crate::core::sessions::TokenUse::Enrolment)
        .await?;
    state.core.logout(&caller, &client).await?;
    Ok(done("success", String::new()))
}
