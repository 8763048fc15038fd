//! `/oauth2/*` and `/.well-known/openid-configuration`: brama as an OpenID Connect provider
//! (SPEC §14). The rules are in `crate::core::oauth`; this module reads requests the way OAuth
//! sends them (query strings, forms, Basic and Bearer headers) and answers in OAuth's shapes:
//! `{error, error_description}` (RFC 6749 §5.2) from the token, revocation and userinfo
//! endpoints, redirects for the browser, and a small HTML page where no redirect can be trusted
//! (an unknown client, an unregistered redirect URI).

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::core::oauth::{
    AuthorizeParams, Authorized, ClientCredentials, Logout, LogoutRequest, OAuthError, PageError,
    SCOPES,
};
use crate::http::AppState;
use crate::http::cookies::{Cookie, CookieJar, SameSite};
use crate::i18n::Lang;

/// The browser-session cookie OpenID Connect's endpoints read (see `crate::core::oauth`).
pub const SSO_COOKIE: &str = "brama_sso";
/// Where it is sent: the OAuth endpoints only.
const SSO_PATH: &str = "/oauth2";

pub fn routes() -> Router<AppState> {
    let oauth = Router::new()
        .route("/authorize", get(authorize_get).post(authorize_post))
        .route("/authorize/resume", get(resume))
        .route("/requests/{id}", get(request_info))
        .route("/consent", post(consent))
        .route("/token", post(token))
        .route("/userinfo", get(userinfo).post(userinfo))
        .route("/revoke", post(revoke))
        .route("/logout", get(logout).post(logout_confirmed))
        .method_not_allowed_fallback(|| async {
            oauth_error(&OAuthError::new(
                405,
                "invalid_request",
                "method not allowed",
            ))
        })
        .fallback(|| async {
            oauth_error(&OAuthError::new(404, "invalid_request", "no such endpoint"))
        });
    Router::new()
        .nest("/oauth2", oauth)
        .route("/.well-known/openid-configuration", get(discovery))
}

/// The SSO cookie of a session a browser-mode login just opened.
pub fn sso_cookie(state: &AppState, session_id: &str) -> Cookie<'static> {
    Cookie::build((SSO_COOKIE, state.core.sso_cookie_value(session_id)))
        .http_only(true)
        // Lax: it must come along when another site sends the browser to /oauth2/authorize.
        .same_site(SameSite::Lax)
        .secure(state.core.config.https())
        .path(SSO_PATH)
        .build()
}

/// The SSO cookie's removal.
pub fn sso_cookie_removal(state: &AppState) -> Cookie<'static> {
    Cookie::build((SSO_COOKIE, ""))
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(state.core.config.https())
        .path(SSO_PATH)
        .max_age(time::Duration::ZERO)
        .build()
}

/// `{error, error_description}` with the status, no caching, and the challenge an
/// `invalid_client` from Basic authentication or an `invalid_token` needs.
fn oauth_error(e: &OAuthError) -> Response {
    #[derive(Serialize)]
    struct Body<'a> {
        error: &'a str,
        error_description: &'a str,
    }
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST);
    let mut response = (
        status,
        axum::Json(Body {
            error: e.error,
            error_description: &e.description,
        }),
    )
        .into_response();
    let headers = response.headers_mut();
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    if e.basic_challenge {
        headers.insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"brama\""),
        );
    }
    if e.error == "invalid_token" {
        let value = format!(
            "Bearer realm=\"brama\", error=\"invalid_token\", error_description=\"{}\"",
            e.description.replace(['"', '\\'], "")
        );
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(header::WWW_AUTHENTICATE, value);
        }
    }
    response
}

fn see_other(location: &str) -> Response {
    match HeaderValue::from_str(location) {
        Ok(value) => (StatusCode::SEE_OTHER, [(header::LOCATION, value)]).into_response(),
        Err(_) => page_error(PageError::BadRedirectUri, Lang::En),
    }
}

/// Text with `<`, `>`, `&` and quotes escaped, for the error page.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The page shown where the browser cannot be sent back to the client: 400, in the person's
/// language, with the page's own stylesheet and nothing else.
fn page_error(problem: PageError, lang: Lang) -> Response {
    let polish = lang == Lang::Pl;
    let (title, text) = match (problem, polish) {
        (PageError::UnknownClient, true) => (
            "Nieznana aplikacja",
            "Aplikacja, która Cię tu przysłała, nie jest zarejestrowana w bramie tej organizacji.",
        ),
        (PageError::UnknownClient, false) => (
            "Unknown application",
            "The application that sent you here is not registered with this organization's brama.",
        ),
        (PageError::BadRedirectUri, true) => (
            "Niedozwolony adres powrotu",
            "Aplikacja chce wrócić pod adres, którego nie zarejestrowano. Logowanie przerwano, by nie wysłać Cię w nieznane miejsce.",
        ),
        (PageError::BadRedirectUri, false) => (
            "Return address not allowed",
            "The application wants to return to an address that was not registered. Signing in was stopped so as not to send you somewhere unknown.",
        ),
        (PageError::UnknownRequest, true) => (
            "Logowanie wygasło",
            "To logowanie wygasło albo już się zakończyło. Wróć do aplikacji i zacznij jeszcze raz.",
        ),
        (PageError::UnknownRequest, false) => (
            "Sign-in expired",
            "This sign-in expired or has already finished. Go back to the application and start again.",
        ),
    };
    let back = if polish {
        "Strona bramy"
    } else {
        "brama's page"
    };
    page(
        StatusCode::BAD_REQUEST,
        lang,
        title,
        &format!(
            "<p>{}</p><a class=\"button-link\" href=\"/\">{}</a>",
            escape(text),
            escape(back)
        ),
    )
}

/// A small page of brama's own (no script, the page's stylesheet): `title` is escaped here,
/// `body` is HTML whose text the caller escaped.
fn page(status: StatusCode, lang: Lang, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html>\n<html lang=\"{lang}\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title} · brama</title><link rel=\"stylesheet\" href=\"/assets/app.css\"></head>\
         <body><main><section class=\"card\" id=\"oauth-page\"><h1>{title}</h1>{body}\
         </section></main></body></html>\n",
        lang = if lang == Lang::Pl { "pl" } else { "en" },
        title = escape(title),
    );
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        html,
    )
        .into_response()
}

fn page_lang(headers: &HeaderMap) -> Lang {
    Lang::negotiate(
        headers
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok()),
        Lang::Pl,
    )
}

/// At most this many parameters in a query string or form: OAuth's requests have a dozen.
const MAX_PARAMETERS: usize = 64;

/// Parameters of a query string or form: each at most once (RFC 6749 §3.1, §3.2), at most
/// [`MAX_PARAMETERS`] of them.
fn parameters(raw: &[u8]) -> Result<Vec<(String, String)>, String> {
    let mut names = std::collections::HashSet::new();
    let mut seen: Vec<(String, String)> = Vec::new();
    for (key, value) in form_urlencoded::parse(raw) {
        if seen.len() == MAX_PARAMETERS {
            return Err(format!("more than {MAX_PARAMETERS} parameters"));
        }
        if !names.insert(key.clone()) {
            return Err(format!("{key} is given more than once"));
        }
        seen.push((key.into_owned(), value.into_owned()));
    }
    Ok(seen)
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn authorize_params(params: &[(String, String)]) -> AuthorizeParams {
    let get = |name: &str| param(params, name).map(str::to_owned);
    AuthorizeParams {
        client_id: get("client_id"),
        redirect_uri: get("redirect_uri"),
        response_type: get("response_type"),
        scope: get("scope"),
        state: get("state"),
        nonce: get("nonce"),
        code_challenge: get("code_challenge"),
        code_challenge_method: get("code_challenge_method"),
        prompt: get("prompt"),
        max_age: get("max_age"),
        request: get("request"),
        request_uri: get("request_uri"),
        response_mode: get("response_mode"),
    }
}

async fn sso(
    state: &AppState,
    jar: &CookieJar,
) -> Result<Option<crate::core::oauth::SsoSession>, Response> {
    state
        .core
        .sso_session(jar.get(SSO_COOKIE).map(|c| c.value()))
        .await
        .map_err(|e| oauth_error(&OAuthError::from_core(e)))
}

/// Where the browser goes for an authorization's next step.
fn authorized(answer: Result<Authorized, PageError>, lang: Lang) -> Response {
    match answer {
        Err(problem) => page_error(problem, lang),
        Ok(Authorized::Redirect(location)) => see_other(&location),
        Ok(Authorized::Login { request_id }) => {
            see_other(&format!("/sign-in#request={request_id}"))
        }
        Ok(Authorized::Consent { request_id }) => {
            see_other(&format!("/consent#request={request_id}"))
        }
    }
}

async fn authorize_with(
    state: AppState,
    jar: CookieJar,
    headers: HeaderMap,
    raw: &[u8],
) -> Response {
    let lang = page_lang(&headers);
    let Ok(params) = parameters(raw) else {
        // A duplicated client_id or redirect_uri cannot be trusted either.
        return page_error(PageError::BadRedirectUri, lang);
    };
    let session = match sso(&state, &jar).await {
        Ok(s) => s,
        Err(response) => return response,
    };
    match state
        .core
        .authorize(authorize_params(&params), session)
        .await
    {
        Ok(answer) => authorized(answer, lang),
        Err(e) => oauth_error(&OAuthError::from_core(e)),
    }
}

/// `GET /oauth2/authorize` (OIDC Core §3.1.2.1).
async fn authorize_get(
    State(state): State<AppState>,
    jar: CookieJar,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    authorize_with(state, jar, headers, query.unwrap_or_default().as_bytes()).await
}

/// `POST /oauth2/authorize` with a form (OIDC Core §3.1.2.1 allows both).
async fn authorize_post(
    State(state): State<AppState>,
    jar: CookieJar,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    authorize_with(state, jar, headers, &body).await
}

#[derive(Deserialize)]
struct ResumeQuery {
    request: Option<String>,
}

/// `GET /oauth2/authorize/resume?request=…`: the page's login finished.
async fn resume(
    State(state): State<AppState>,
    jar: CookieJar,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let lang = page_lang(&headers);
    let request = serde_urlencoded::from_str::<ResumeQuery>(query.as_deref().unwrap_or(""))
        .ok()
        .and_then(|q| q.request)
        .unwrap_or_default();
    let session = match sso(&state, &jar).await {
        Ok(s) => s,
        Err(response) => return response,
    };
    match state.core.resume_authorization(&request, session).await {
        Ok(answer) => authorized(answer, lang),
        Err(e) => oauth_error(&OAuthError::from_core(e)),
    }
}

/// What the page shows for a parked request: the client's name always; the scopes and the
/// account when a session of the client's organization can consent.
#[derive(Serialize)]
struct RequestInfo {
    client_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    scopes: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    account: Option<String>,
}

/// `GET /oauth2/requests/{id}` (for the page).
async fn request_info(
    State(state): State<AppState>,
    jar: CookieJar,
    Path(id): Path<String>,
) -> Response {
    let name = match state.core.request_client_name(&id).await {
        Ok(Some(name)) => name,
        Ok(None) => {
            return oauth_error(&OAuthError::new(
                404,
                "invalid_request",
                "no such authorization request",
            ));
        }
        Err(e) => return oauth_error(&OAuthError::from_core(e)),
    };
    let session = match sso(&state, &jar).await {
        Ok(s) => s,
        Err(response) => return response,
    };
    let consent = match state.core.consent_info(&id, session).await {
        Ok(c) => c,
        Err(e) => return oauth_error(&OAuthError::from_core(e)),
    };
    axum::Json(RequestInfo {
        client_name: name,
        scopes: consent.as_ref().map(|c| c.scopes.clone()),
        account: consent.map(|c| c.account),
    })
    .into_response()
}

#[derive(Deserialize)]
struct ConsentBody {
    request: Option<String>,
    allow: Option<bool>,
}

#[derive(Serialize)]
struct ConsentAnswer {
    redirect_to: String,
}

/// `POST /oauth2/consent` `{request, allow}` from the page's consent screen (CSRF-checked; the
/// SSO cookie is SameSite=Lax, so no other site's form carries it here either).
async fn consent(
    State(state): State<AppState>,
    jar: CookieJar,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if crate::http::extract::check_csrf(&headers, &jar, &state).is_err() {
        return oauth_error(&OAuthError::new(403, "access_denied", "CSRF check failed"));
    }
    let Ok(ConsentBody {
        request: Some(request),
        allow: Some(allow),
    }) = serde_json::from_slice::<ConsentBody>(&body)
    else {
        return oauth_error(&OAuthError::invalid_request(
            "a JSON body with request and allow is required",
        ));
    };
    let session = match sso(&state, &jar).await {
        Ok(s) => s,
        Err(response) => return response,
    };
    match state.core.decide_consent(&request, session, allow).await {
        Ok(Some(location)) => axum::Json(ConsentAnswer {
            redirect_to: location,
        })
        .into_response(),
        Ok(None) => oauth_error(&OAuthError::invalid_request(
            "no such authorization request, or no session for it",
        )),
        Err(e) => oauth_error(&OAuthError::from_core(e)),
    }
}

/// The client's credentials from `Authorization: Basic` (RFC 6749 §2.3.1: each part
/// form-urlencoded) or the body; both at once is an error.
fn credentials(
    headers: &HeaderMap,
    params: &[(String, String)],
) -> Result<ClientCredentials, OAuthError> {
    use base64::Engine;
    let body_id = param(params, "client_id").map(str::to_owned);
    let body_secret = param(params, "client_secret").map(str::to_owned);
    let Some(authorization) = headers.get(header::AUTHORIZATION) else {
        return Ok(ClientCredentials {
            client_id: body_id,
            secret: body_secret.map(SecretString::from),
            basic: false,
        });
    };
    let invalid = |description: &str| OAuthError {
        status: 401,
        error: "invalid_client",
        description: description.into(),
        basic_challenge: true,
    };
    let value = authorization
        .to_str()
        .map_err(|_| invalid("malformed Authorization"))?;
    let Some(encoded) = value
        .strip_prefix("Basic ")
        .or_else(|| value.strip_prefix("basic "))
    else {
        return Err(invalid("only Basic client authentication is accepted"));
    };
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()
        .and_then(|d| String::from_utf8(d).ok())
        .ok_or_else(|| invalid("malformed Basic credentials"))?;
    let (id, secret) = decoded
        .split_once(':')
        .ok_or_else(|| invalid("malformed Basic credentials"))?;
    let decode = |s: &str| {
        form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    let (id, secret) = (decode(id), decode(secret));
    if body_secret.is_some() || body_id.as_deref().is_some_and(|b| b != id) {
        return Err(OAuthError::invalid_request(
            "the client authenticated in more than one way",
        ));
    }
    Ok(ClientCredentials {
        client_id: Some(id),
        secret: Some(SecretString::from(secret)),
        basic: true,
    })
}

fn token_answer(answer: Result<crate::core::oauth::TokenAnswer, OAuthError>) -> Response {
    match answer {
        Ok(answer) => {
            let mut response = axum::Json(answer).into_response();
            response
                .headers_mut()
                .insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
            response
        }
        Err(e) => oauth_error(&e),
    }
}

fn form_only(headers: &HeaderMap) -> Result<(), OAuthError> {
    let form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';').next().is_some_and(|t| {
                t.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            })
        });
    if form {
        Ok(())
    } else {
        Err(OAuthError::invalid_request(
            "the body must be application/x-www-form-urlencoded",
        ))
    }
}

/// `POST /oauth2/token` (RFC 6749 §3.2, OIDC Core §3.1.3).
async fn token(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(e) = form_only(&headers) {
        return oauth_error(&e);
    }
    let params = match parameters(&body) {
        Ok(p) => p,
        Err(e) => return oauth_error(&OAuthError::invalid_request(e)),
    };
    let credentials = match credentials(&headers, &params) {
        Ok(c) => c,
        Err(e) => return oauth_error(&e),
    };
    let core = &state.core;
    match param(&params, "grant_type") {
        Some("authorization_code") => token_answer(
            core.exchange_code(
                &credentials,
                param(&params, "code"),
                param(&params, "redirect_uri"),
                param(&params, "code_verifier"),
            )
            .await,
        ),
        Some("refresh_token") => token_answer(
            core.refresh_grant(
                &credentials,
                param(&params, "refresh_token"),
                param(&params, "scope"),
            )
            .await,
        ),
        None => oauth_error(&OAuthError::invalid_request("grant_type is required")),
        Some(_) => {
            // The client is checked first: an unknown one learns nothing about grant types.
            if let Err(e) = core.authenticate_client(&credentials).await {
                return oauth_error(&e);
            }
            oauth_error(&OAuthError::new(
                400,
                "unsupported_grant_type",
                "authorization_code and refresh_token are supported",
            ))
        }
    }
}

/// `GET|POST /oauth2/userinfo` with `Authorization: Bearer` (OIDC Core §5.3).
async fn userinfo(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    match state.core.userinfo(bearer).await {
        Ok(info) => axum::Json(info).into_response(),
        Err(e) if bearer.is_none_or(str::is_empty) => {
            // No credentials at all: the challenge names no error (RFC 6750 §3.1).
            let mut response = oauth_error(&e);
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"brama\""),
            );
            response
        }
        Err(e) => oauth_error(&e),
    }
}

/// `POST /oauth2/revoke` (RFC 7009): 200 whether or not the token was known.
async fn revoke(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(e) = form_only(&headers) {
        return oauth_error(&e);
    }
    let params = match parameters(&body) {
        Ok(p) => p,
        Err(e) => return oauth_error(&OAuthError::invalid_request(e)),
    };
    let credentials = match credentials(&headers, &params) {
        Ok(c) => c,
        Err(e) => return oauth_error(&e),
    };
    match state
        .core
        .revoke_token(&credentials, param(&params, "token"))
        .await
    {
        Ok(()) => StatusCode::OK.into_response(),
        Err(e) => oauth_error(&e),
    }
}

/// `GET /oauth2/logout` (OpenID Connect RP-Initiated Logout 1.0): ends the browser session and
/// its grants when the `id_token_hint` names its person, then goes back to a registered
/// post-logout URI or to brama's page; otherwise asks the person first (any site can send a
/// browser here).
async fn logout(
    State(state): State<AppState>,
    jar: CookieJar,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let params = parameters(query.unwrap_or_default().as_bytes()).unwrap_or_default();
    let session = match sso(&state, &jar).await {
        Ok(s) => s,
        Err(response) => return response,
    };
    let request = LogoutRequest {
        id_token_hint: param(&params, "id_token_hint"),
        client_id: param(&params, "client_id"),
        post_logout_redirect_uri: param(&params, "post_logout_redirect_uri"),
        state: param(&params, "state"),
    };
    match state.core.end_session(session, request).await {
        Ok(Logout::Done(location)) => {
            let jar = jar
                .add(sso_cookie_removal(&state))
                .add(crate::http::membership::token_cookie_removal(&state));
            (jar, see_other(&location)).into_response()
        }
        Ok(Logout::Confirm { token }) => {
            let hidden = [
                ("token", token.as_str()),
                ("client_id", request.client_id.unwrap_or_default()),
                ("id_token_hint", request.id_token_hint.unwrap_or_default()),
                (
                    "post_logout_redirect_uri",
                    request.post_logout_redirect_uri.unwrap_or_default(),
                ),
                ("state", request.state.unwrap_or_default()),
            ];
            let fields: String = hidden
                .iter()
                .filter(|(_, v)| !v.is_empty())
                .map(|(k, v)| {
                    format!(
                        "<input type=\"hidden\" name=\"{k}\" value=\"{}\">",
                        escape(v)
                    )
                })
                .collect();
            let lang = page_lang(&headers);
            let (title, text, yes, no) = if lang == Lang::Pl {
                (
                    "Wylogować z bramy?",
                    "Aplikacja prosi o wylogowanie z bramy w tej przeglądarce.",
                    "Wyloguj",
                    "Nie, zostań zalogowany",
                )
            } else {
                (
                    "Log out of brama?",
                    "An application asks to log you out of brama in this browser.",
                    "Log out",
                    "No, stay logged in",
                )
            };
            page(
                StatusCode::OK,
                lang,
                title,
                &format!(
                    "<p>{}</p><form method=\"post\" action=\"/oauth2/logout\" class=\"row\">{fields}\
                     <button type=\"submit\" class=\"primary\" id=\"logout-yes\">{}</button>\
                     <a class=\"button-link\" href=\"/\">{}</a></form>",
                    escape(text),
                    escape(yes),
                    escape(no)
                ),
            )
        }
        Err(e) => oauth_error(&OAuthError::from_core(e)),
    }
}

/// `POST /oauth2/logout`: the person's yes on the confirmation. The answer is a page with a link
/// back (a redirect to another site after a form would break the page's `form-action 'self'`);
/// the link is worked out again from the client's registered URIs, never taken from the form.
async fn logout_confirmed(
    State(state): State<AppState>,
    jar: CookieJar,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let lang = page_lang(&headers);
    let params = parameters(&body).unwrap_or_default();
    let session = match sso(&state, &jar).await {
        Ok(s) => s,
        Err(response) => return response,
    };
    let confirmed = match state
        .core
        .confirm_logout(session, param(&params, "token").unwrap_or_default())
        .await
    {
        Ok(confirmed) => confirmed,
        Err(e) => return oauth_error(&OAuthError::from_core(e)),
    };
    if !confirmed {
        return page_error(PageError::UnknownRequest, lang);
    }
    let request = LogoutRequest {
        id_token_hint: param(&params, "id_token_hint"),
        client_id: param(&params, "client_id"),
        post_logout_redirect_uri: param(&params, "post_logout_redirect_uri"),
        state: param(&params, "state"),
    };
    let back = match state.core.post_logout_target(&request).await {
        Ok(back) => back,
        Err(e) => return oauth_error(&OAuthError::from_core(e)),
    };
    let (title, link) = if lang == Lang::Pl {
        ("Wylogowano", "Wróć do aplikacji")
    } else {
        ("Logged out", "Back to the application")
    };
    let jar = jar
        .add(sso_cookie_removal(&state))
        .add(crate::http::membership::token_cookie_removal(&state));
    let body = format!(
        "<a class=\"button-link\" id=\"logout-back\" href=\"{}\">{}</a>",
        escape(&back),
        escape(link)
    );
    (jar, page(StatusCode::OK, lang, title, &body)).into_response()
}

/// The discovery document (OpenID Connect Discovery 1.0 §3).
#[derive(Serialize)]
struct Discovery {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    userinfo_endpoint: String,
    jwks_uri: String,
    end_session_endpoint: String,
    revocation_endpoint: String,
    response_types_supported: [&'static str; 1],
    response_modes_supported: [&'static str; 1],
    grant_types_supported: [&'static str; 2],
    subject_types_supported: [&'static str; 1],
    id_token_signing_alg_values_supported: [&'static str; 2],
    code_challenge_methods_supported: [&'static str; 1],
    scopes_supported: [&'static str; 5],
    token_endpoint_auth_methods_supported: [&'static str; 3],
    revocation_endpoint_auth_methods_supported: [&'static str; 3],
    claims_supported: [&'static str; 20],
    prompt_values_supported: [&'static str; 2],
    request_parameter_supported: bool,
    request_uri_parameter_supported: bool,
    authorization_response_iss_parameter_supported: bool,
}

async fn discovery(State(state): State<AppState>) -> Response {
    let base = state.core.oauth_base();
    let endpoint = |path: &str| format!("{base}{path}");
    let document = Discovery {
        issuer: state.core.config.issuer(),
        authorization_endpoint: endpoint("/oauth2/authorize"),
        token_endpoint: endpoint("/oauth2/token"),
        userinfo_endpoint: endpoint("/oauth2/userinfo"),
        jwks_uri: endpoint("/.well-known/jwks.json"),
        end_session_endpoint: endpoint("/oauth2/logout"),
        revocation_endpoint: endpoint("/oauth2/revoke"),
        response_types_supported: ["code"],
        response_modes_supported: ["query"],
        grant_types_supported: ["authorization_code", "refresh_token"],
        subject_types_supported: ["public"],
        id_token_signing_alg_values_supported: ["RS256", "EdDSA"],
        code_challenge_methods_supported: ["S256"],
        scopes_supported: SCOPES,
        token_endpoint_auth_methods_supported: [
            "client_secret_basic",
            "client_secret_post",
            "none",
        ],
        revocation_endpoint_auth_methods_supported: [
            "client_secret_basic",
            "client_secret_post",
            "none",
        ],
        claims_supported: [
            "iss",
            "sub",
            "aud",
            "azp",
            "exp",
            "iat",
            "auth_time",
            "nonce",
            "at_hash",
            "amr",
            "sid",
            "preferred_username",
            "name",
            "given_name",
            "family_name",
            "email",
            "email_verified",
            "roles",
            "org",
            "client_id",
        ],
        prompt_values_supported: ["none", "login"],
        request_parameter_supported: false,
        request_uri_parameter_supported: false,
        authorization_response_iss_parameter_supported: true,
    };
    (
        [(header::CACHE_CONTROL, "public, max-age=300")],
        axum::Json(document),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_come_once() {
        assert_eq!(
            parameters(b"a=1&b=x%20y").unwrap(),
            [
                ("a".to_string(), "1".to_string()),
                ("b".into(), "x y".into())
            ]
        );
        assert!(parameters(b"a=1&a=2").is_err());
        let many: String = (0..65).map(|i| format!("p{i}=x&")).collect();
        assert!(parameters(many.as_bytes()).is_err());
        let enough: String = (0..64).map(|i| format!("p{i}=x&")).collect();
        assert_eq!(parameters(enough.as_bytes()).unwrap().len(), 64);
    }

    #[test]
    fn the_error_page_escapes_nothing_it_does_not_write() {
        assert_eq!(
            escape("<a href=\"x\">&</a>"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&lt;/a&gt;"
        );
    }
}
