//! Extractors shared by the surfaces: JSON bodies, queries and path segments that fail with a
//! surface-neutral [`Rejection`], the client's address, access tokens from header or cookie, and
//! the CSRF rules of SPEC §7. Each surface wraps these in its own types, whose rejection is its
//! own envelope (`From<Rejection>`), so no surface answers in another's words.

use std::net::IpAddr;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use serde::de::DeserializeOwned;

use crate::core::sessions::TokenUse;
use crate::core::{Caller, Client, CoreError};
use crate::http::AppState;
use crate::http::cookies::CookieJar;
use crate::i18n::Msg;

pub const TOKEN_COOKIE: &str = "token";
pub const CSRF_COOKIE: &str = "sessionToken";
pub const CSRF_HEADER: &str = "sessionid";
pub const CSRF_HEADER_ALT: &str = "x-csrf-token";

/// Why a request could not be read, before any rule was asked. Each surface renders it in its
/// own envelope; `status`, `code` and `msg` are what every surface agrees on.
#[derive(Debug)]
pub enum Rejection {
    /// A body that is not `application/json`.
    UnsupportedMediaType,
    /// Over the route's body limit (declared or read).
    BodyTooLarge,
    /// The body could not be read at all.
    UnreadableBody,
    /// Not JSON; the parser's words.
    InvalidJson(String),
    /// JSON, but not an object, a field of the wrong type, or a NUL; which and where.
    InvalidField(String),
    /// A malformed query string; which parameter and why.
    InvalidQuery(String),
    /// A path segment that can name nothing (not UTF-8, NUL).
    NotFound,
    MethodNotAllowed,
    /// CSRF (SPEC §7): from another site.
    CrossSite,
    /// CSRF: no `sessionId` header or no `sessionToken` cookie.
    CsrfMissing,
    /// CSRF: a header that does not match its cookie.
    CsrfInvalid,
    /// The access token was missing or refused.
    Unauthenticated(CoreError),
}

impl Rejection {
    pub fn status(&self) -> StatusCode {
        match self {
            Rejection::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Rejection::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Rejection::UnreadableBody
            | Rejection::InvalidJson(_)
            | Rejection::InvalidField(_)
            | Rejection::InvalidQuery(_) => StatusCode::BAD_REQUEST,
            Rejection::NotFound => StatusCode::NOT_FOUND,
            Rejection::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Rejection::CrossSite | Rejection::CsrfMissing | Rejection::CsrfInvalid => {
                StatusCode::FORBIDDEN
            }
            // Each surface maps the core's error itself; these are the Membership API's.
            Rejection::Unauthenticated(CoreError::NoToken) => StatusCode::FORBIDDEN,
            Rejection::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Rejection::UnsupportedMediaType => "unsupported_media_type",
            Rejection::BodyTooLarge => "body_too_large",
            Rejection::UnreadableBody => "invalid_body",
            Rejection::InvalidJson(_) => "invalid_json",
            Rejection::InvalidField(_) => "invalid_field",
            Rejection::InvalidQuery(_) => "invalid_query",
            Rejection::NotFound => "not_found",
            Rejection::MethodNotAllowed => "method_not_allowed",
            Rejection::CrossSite => "cross_site",
            Rejection::CsrfMissing => "csrf_missing",
            Rejection::CsrfInvalid => "csrf_invalid",
            Rejection::Unauthenticated(_) => "unauthorized",
        }
    }

    pub fn msg(&self) -> Msg {
        match self {
            Rejection::UnsupportedMediaType => Msg::UnsupportedMediaType,
            Rejection::BodyTooLarge => Msg::BodyTooLarge,
            Rejection::UnreadableBody | Rejection::InvalidJson(_) | Rejection::InvalidField(_) => {
                Msg::InvalidJson
            }
            Rejection::InvalidQuery(_) => Msg::InvalidQuery,
            Rejection::NotFound => Msg::NotFound,
            Rejection::MethodNotAllowed => Msg::MethodNotAllowed,
            Rejection::CrossSite => Msg::CrossSite,
            Rejection::CsrfMissing => Msg::CsrfMissing,
            Rejection::CsrfInvalid => Msg::CsrfInvalid,
            Rejection::Unauthenticated(_) => Msg::Unauthorized,
        }
    }

    /// Words that replace `msg` where the problem is the client's text (a parser's message).
    pub fn detail(&self) -> Option<&str> {
        match self {
            Rejection::InvalidJson(d) | Rejection::InvalidField(d) | Rejection::InvalidQuery(d) => {
                Some(d)
            }
            _ => None,
        }
    }
}

/// Axum needs every rejection to be a response. The surfaces never let this one through (each
/// wraps these extractors in its own, whose rejection is its envelope); if one ever did, the
/// client would still get the right status with a plain sentence.
impl axum::response::IntoResponse for Rejection {
    fn into_response(self) -> axum::response::Response {
        let text = self
            .detail()
            .map(str::to_owned)
            .unwrap_or_else(|| self.msg().text(crate::i18n::Lang::En));
        (self.status(), text).into_response()
    }
}

/// A JSON object body. Unknown fields are ignored (serde's default).
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = Rejection;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let json_type = is_json(req.headers());
        let bytes = body_bytes(req, state).await?;
        if !json_type {
            return Err(Rejection::UnsupportedMediaType);
        }
        parse_json(&bytes).map(JsonBody)
    }
}

/// A JSON object body that may be absent: an empty body is `None`.
pub struct OptionalJsonBody<T>(pub Option<T>);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for OptionalJsonBody<T> {
    type Rejection = Rejection;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let json_type = is_json(req.headers());
        let bytes = body_bytes(req, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJsonBody(None));
        }
        if !json_type {
            return Err(Rejection::UnsupportedMediaType);
        }
        parse_json(&bytes).map(|v| OptionalJsonBody(Some(v)))
    }
}

/// A raw body (CSV imports), within the route's limit.
pub struct RawBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = Rejection;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        body_bytes(req, state).await.map(RawBody)
    }
}

/// One path parameter; a segment that is not valid UTF-8 or holds NUL is not found, because no
/// such resource can exist.
pub struct PathParam(pub String);

impl<S: Send + Sync> FromRequestParts<S> for PathParam {
    type Rejection = Rejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<String>::from_request_parts(parts, state)
            .await
            .ok()
            .filter(|p| !p.0.contains('\0'))
            .map(|p| PathParam(p.0))
            .ok_or(Rejection::NotFound)
    }
}

/// Query parameters; a malformed query is refused with what is wrong with it.
pub struct QueryParams<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for QueryParams<T> {
    type Rejection = Rejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        if form_urlencoded::parse(query.as_bytes())
            .any(|(k, v)| k.contains('\0') || v.contains('\0'))
        {
            return Err(Rejection::InvalidQuery(
                Msg::NulCharacter
                    .text(crate::http::current_lang())
                    .to_string(),
            ));
        }
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(de)
            .map(QueryParams)
            .map_err(|e| Rejection::InvalidQuery(format!("{}: {}", e.path(), e.inner())))
    }
}

async fn body_bytes<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, Rejection> {
    Bytes::from_request(req, state)
        .await
        .map_err(|rejection| match rejection {
            BytesRejection::FailedToBufferBody(e)
                if e.status() == StatusCode::PAYLOAD_TOO_LARGE =>
            {
                Rejection::BodyTooLarge
            }
            _ => Rejection::UnreadableBody,
        })
}

fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Rejection> {
    let lang = crate::http::current_lang();
    // A body is an object: serde would otherwise accept `["alice", "secret"]` as a struct.
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first.is_some_and(|b| *b != b'{') {
        return match serde_json::from_slice::<serde::de::IgnoredAny>(bytes) {
            Ok(_) => Err(Rejection::InvalidField(
                Msg::JsonObjectExpected.text(lang).to_string(),
            )),
            Err(e) => Err(Rejection::InvalidJson(format!(
                "{} ({e})",
                Msg::InvalidJson.text(lang)
            ))),
        };
    }
    // PostgreSQL cannot store NUL, and no field of ours has a use for it.
    if has_escaped_nul(bytes) {
        return Err(Rejection::InvalidField(
            Msg::NulCharacter.text(lang).to_string(),
        ));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let parsed = match serde_path_to_error::deserialize::<_, T>(&mut de) {
        Ok(v) => de.end().map(|()| v).map_err(|e| (String::new(), e)),
        Err(e) => Err((e.path().to_string(), e.into_inner())),
    };
    parsed.map_err(|(path, inner)| {
        use serde_json::error::Category;
        match inner.classify() {
            // serde says what and where ("invalid type: integer `5`, expected a string"); it
            // echoes only what the client itself sent. Prefixed with the field's JSON name.
            Category::Data => Rejection::InvalidField(if path.is_empty() || path == "." {
                inner.to_string()
            } else {
                format!("{path}: {inner}")
            }),
            _ => Rejection::InvalidJson(format!("{} ({inner})", Msg::InvalidJson.text(lang))),
        }
    })
}

/// True if a JSON text holds the escape `\u0000` (a raw NUL is invalid JSON anyway). An escape
/// is a backslash preceded by an even number of backslashes.
fn has_escaped_nul(bytes: &[u8]) -> bool {
    bytes.windows(6).enumerate().any(|(i, w)| {
        w == b"\\u0000" && bytes[..i].iter().rev().take_while(|b| **b == b'\\').count() % 2 == 0
    })
}

/// The client's address and user agent. `X-Forwarded-For` is believed only from a configured
/// trusted proxy, and then the right-most address that is not itself a trusted proxy wins.
pub struct ClientInfo(pub Client);

impl FromRequestParts<AppState> for ClientInfo {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(ClientInfo(client(parts, state)))
    }
}

fn client(parts: &Parts, state: &AppState) -> Client {
    // An IPv4 peer on a dual-stack socket shows as ::ffff:a.b.c.d; compare it as IPv4.
    let peer = crate::telemetry::peer().map(|peer| peer.ip().to_canonical());
    let trusted = &state.core.config.trusted_proxies;
    let ip = match peer {
        Some(peer) if trusted.contains(&peer) => {
            forwarded_for(&parts.headers, trusted).or(Some(peer))
        }
        other => other,
    };
    let user_agent = parts
        .headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    Client { ip, user_agent }
}

fn forwarded_for(headers: &HeaderMap, trusted: &[IpAddr]) -> Option<IpAddr> {
    let chain: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    chain.into_iter().rev().find(|ip| !trusted.contains(ip))
}

/// Where an access token came from; cookies bring the CSRF rules with them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenSource {
    Header,
    Cookie,
}

/// The header an access token is sent in; a constant, so that finding it hashes no name.
const X_ACCESS_TOKEN: HeaderName = HeaderName::from_static("x-access-token");

/// A header's value as text, when `HeaderValue::to_str` would give it: when it is all ASCII.
/// A `HeaderValue` never holds a control character other than a tab (it refuses them, and so
/// does hyper's parser), so that is the same test. `to_str` looks at each byte on its own and
/// stops at the first it refuses; here every byte is or-ed together, which the compiler does
/// sixteen bytes at a time: for a 250-byte access token `to_str` was 2% of `/me`, and
/// `str::from_utf8` after `is_ascii` cost more still (callgrind, issue 18).
pub(crate) fn header_text(value: &HeaderValue) -> Option<&str> {
    let bytes = value.as_bytes();
    if bytes.iter().fold(0u8, |all, byte| all | byte).is_ascii() {
        // SAFETY: no byte has its high bit set, so the bytes are ASCII, which is UTF-8.
        Some(unsafe { std::str::from_utf8_unchecked(bytes) })
    } else {
        None
    }
}

/// The access token of a request: `x-access-token`, `Authorization: Bearer`, or (where a
/// surface takes cookies) the `token` cookie.
pub fn access_token<'a>(
    headers: &'a HeaderMap,
    jar: Option<&'a CookieJar>,
) -> Option<(&'a str, TokenSource)> {
    if let Some(t) = headers
        .get(X_ACCESS_TOKEN)
        .and_then(header_text)
        .filter(|t| !t.is_empty())
    {
        return Some((t.trim(), TokenSource::Header));
    }
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(header_text)
        .and_then(|auth| {
            auth.strip_prefix("Bearer ")
                .or_else(|| auth.strip_prefix("bearer "))
        });
    if let Some(t) = bearer {
        return Some((t.trim(), TokenSource::Header));
    }
    jar.and_then(cookie_token).map(|t| (t, TokenSource::Cookie))
}

/// The access token in the `token` cookie, when it holds one.
fn cookie_token(jar: &CookieJar) -> Option<&str> {
    jar.get(TOKEN_COOKIE)
        .map(|c| c.value())
        .filter(|t| !t.is_empty())
}

/// An authenticated caller, with the client it called from. A cookie-authenticated unsafe
/// request has passed the CSRF checks.
pub struct Authenticated {
    pub caller: Caller,
    pub client: Client,
}

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = Rejection;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        // The cookies are read only when no header carries a token: an API client's request
        // (the most frequent) then makes no jar (two hash sets, issue 18).
        let jar;
        let token = match access_token(&parts.headers, None) {
            Some((token, _)) => token,
            None => {
                jar = CookieJar::from_headers(&parts.headers);
                let token =
                    cookie_token(&jar).ok_or(Rejection::Unauthenticated(CoreError::NoToken))?;
                if !is_safe(&parts.method) {
                    check_csrf(&parts.headers, &jar, state)?;
                }
                token
            }
        };
        let caller = state
            .core
            .authenticate_for(token, token_use(parts))
            .await
            .map_err(Rejection::Unauthenticated)?;
        Ok(Authenticated {
            caller,
            client: client(parts, state),
        })
    }
}

/// What a request presents its access token for (SPEC §13): an enrolment-only token is good for
/// `/api/auth/me`, `/api/auth/mfa*`, `/api/auth/passkeys*` and signing out, nothing else.
fn token_use(parts: &Parts) -> TokenUse {
    // The Membership API's routes are registered at their whole paths (not nested), so this
    // is the path the client sent. The Company API's `/web/logout` authenticates by itself.
    let enrolment = enrolment_path(parts.uri.path());
    if enrolment {
        TokenUse::Enrolment
    } else {
        TokenUse::Other
    }
}

/// Whether an enrolment-only token is good for `path` (SPEC §13).
fn enrolment_path(path: &str) -> bool {
    matches!(
        path,
        "/api/auth/me" | "/api/auth/logout" | "/api/auth/logout-all"
    ) || ["/api/auth/mfa", "/api/auth/passkeys"].iter().any(|p| {
        path.strip_prefix(p)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    })
}

fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// True when the request carries the browser's CSRF cookie, which makes it a browser request
/// that answers with cookies and must pass the CSRF checks (login CSRF included).
pub fn browser_mode(jar: &CookieJar) -> bool {
    jar.get(CSRF_COOKIE).is_some()
}

/// Whether the request is in browser mode ([`browser_mode`]), once it has passed the CSRF
/// checks that mode requires.
pub fn checked_browser_mode(
    headers: &HeaderMap,
    jar: &CookieJar,
    state: &AppState,
) -> Result<bool, Rejection> {
    let browser = browser_mode(jar);
    if browser {
        check_csrf(headers, jar, state)?;
    }
    Ok(browser)
}

/// SPEC §7: not cross-site, and a `sessionId` header that matches the `sessionToken` cookie.
pub fn check_csrf(headers: &HeaderMap, jar: &CookieJar, state: &AppState) -> Result<(), Rejection> {
    if cross_site(headers, state) {
        return Err(Rejection::CrossSite);
    }
    let header = headers
        .get(CSRF_HEADER)
        .or_else(|| headers.get(CSRF_HEADER_ALT))
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty());
    let (Some(header), Some(cookie)) = (header, jar.get(CSRF_COOKIE)) else {
        return Err(Rejection::CsrfMissing);
    };
    if !state.core.csrf.verify(header, cookie.value()) {
        return Err(Rejection::CsrfInvalid);
    }
    Ok(())
}

/// A browser says where a request comes from with `Sec-Fetch-Site` and `Origin`; anything from
/// another site is refused unless its origin is a configured CORS origin.
fn cross_site(headers: &HeaderMap, state: &AppState) -> bool {
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    let allowed_origin = |o: &str| {
        state
            .core
            .config
            .cors_origins
            .iter()
            .any(|c| c.trim_end_matches('/') == o)
    };
    if let Some(origin) = origin {
        if origin == "null" {
            return true;
        }
        let host = headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let public = state.core.config.public_url();
        let same = origin == public
            || origin
                .strip_prefix("http://")
                .or_else(|| origin.strip_prefix("https://"))
                == Some(host);
        if !same && !allowed_origin(origin) {
            return true;
        }
    }
    let fetch_site = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok());
    fetch_site == Some("cross-site") && !origin.is_some_and(allowed_origin)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `header_text` accepts exactly what `HeaderValue::to_str` accepts, for every byte a
    /// value can hold, alone and inside a token-like value.
    #[test]
    fn header_text_is_to_str() {
        for byte in 0..=u8::MAX {
            for bytes in [
                vec![byte],
                [b"eyJhbGciOi".as_slice(), &[byte], b"J9.x"].concat(),
            ] {
                let Ok(value) = HeaderValue::from_bytes(&bytes) else {
                    continue;
                };
                assert_eq!(
                    header_text(&value),
                    value.to_str().ok(),
                    "byte {byte:#04x} in {bytes:?}"
                );
            }
        }
        // Valid UTF-8 that is not ASCII is refused, as `to_str` refuses it.
        let value = HeaderValue::from_str("tokén").expect("a header value");
        assert_eq!(header_text(&value), None);
    }

    #[test]
    fn enrolment_only_tokens_reach_their_own_routes_and_no_lookalikes() {
        for path in [
            "/api/auth/me",
            "/api/auth/logout",
            "/api/auth/logout-all",
            "/api/auth/mfa",
            "/api/auth/mfa/totp",
            "/api/auth/passkeys",
            "/api/auth/passkeys/abc",
        ] {
            assert!(enrolment_path(path), "{path}");
        }
        for path in [
            "/api/auth/mfaevil",
            "/api/auth/passkeysx",
            "/api/auth/me/export",
            "/api/auth/sessions",
            "/logout",
            "/auth/me",
            "/api/membership/members",
        ] {
            assert!(!enrolment_path(path), "{path}");
        }
    }

    #[test]
    fn forwarded_for_skips_trusted_hops() {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", "203.0.113.9, 10.0.0.2".parse().unwrap());
        let trusted: Vec<IpAddr> = vec!["10.0.0.2".parse().unwrap()];
        assert_eq!(
            forwarded_for(&h, &trusted),
            Some("203.0.113.9".parse().unwrap())
        );
    }

    #[test]
    fn escaped_nul_is_found_and_escaped_backslashes_are_not() {
        assert!(has_escaped_nul(br#"{"a":"x\u0000"}"#));
        assert!(has_escaped_nul(br#"{"a":"\\\u0000"}"#));
        assert!(!has_escaped_nul(br#"{"a":"\\u0000"}"#));
        assert!(!has_escaped_nul(br#"{"a":"u0000"}"#));
    }

    #[test]
    fn json_content_types() {
        let mut h = HeaderMap::new();
        assert!(!is_json(&h));
        h.insert(
            header::CONTENT_TYPE,
            "application/json; charset=utf-8".parse().unwrap(),
        );
        assert!(is_json(&h));
        h.insert(header::CONTENT_TYPE, "text/plain".parse().unwrap());
        assert!(!is_json(&h));
    }
}
