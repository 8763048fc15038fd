//! Extractors shared by the surfaces: JSON bodies that fail in the surface's envelope, the
//! client's address, access tokens from header or cookie, and the CSRF rules of SPEC §7.

use std::net::{IpAddr, SocketAddr};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum_extra::extract::CookieJar;
use serde::de::DeserializeOwned;

use crate::core::Client;
use crate::crypto::jwt::Claims;
use crate::http::AppState;
use crate::http::membership::error::ApiError;
use crate::i18n::Msg;

pub const TOKEN_COOKIE: &str = "token";
pub const CSRF_COOKIE: &str = "sessionToken";
pub const CSRF_HEADER: &str = "sessionid";
pub const CSRF_HEADER_ALT: &str = "x-csrf-token";

/// A JSON body; every way it can be wrong is a 4xx in the Membership envelope.
/// Unknown fields are ignored (serde's default).
pub struct AppJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for AppJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let json_type = is_json(req.headers());
        let bytes = body_bytes(req, state).await?;
        if !json_type {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                Msg::UnsupportedMediaType,
            ));
        }
        parse_json(&bytes).map(AppJson)
    }
}

/// One path parameter; a segment that is not valid UTF-8 is a 404 in the envelope, because no
/// such resource can exist.
pub struct AppPath(pub String);

impl FromRequestParts<AppState> for AppPath {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<String>::from_request_parts(parts, state)
            .await
            .ok()
            .filter(|p| !p.0.contains('\0'))
            .map(|p| AppPath(p.0))
            .ok_or_else(ApiError::not_found)
    }
}

/// Query parameters; a malformed query is a 400 in the Membership envelope.
pub struct AppQuery<T>(pub T);

impl<T: DeserializeOwned> FromRequestParts<AppState> for AppQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        if form_urlencoded::parse(query.as_bytes())
            .any(|(k, v)| k.contains('\0') || v.contains('\0'))
        {
            return Err(
                ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", Msg::InvalidQuery)
                    .with_detail(Msg::NulCharacter.text(crate::http::current_lang())),
            );
        }
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(de)
            .map(AppQuery)
            .map_err(|e| {
                let detail = format!("{}: {}", e.path(), e.inner());
                ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", Msg::InvalidQuery)
                    .with_detail(detail)
            })
    }
}

/// A JSON body that may be absent (an empty body is `None`).
pub struct OptionalJson<T>(pub Option<T>);

impl<T: DeserializeOwned> FromRequest<AppState> for OptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let json_type = is_json(req.headers());
        let bytes = body_bytes(req, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJson(None));
        }
        if !json_type {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                Msg::UnsupportedMediaType,
            ));
        }
        parse_json(&bytes).map(|v| OptionalJson(Some(v)))
    }
}

async fn body_bytes(req: Request, state: &AppState) -> Result<Bytes, ApiError> {
    Bytes::from_request(req, state)
        .await
        .map_err(|rejection| match rejection {
            BytesRejection::FailedToBufferBody(e)
                if e.status() == StatusCode::PAYLOAD_TOO_LARGE =>
            {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "body_too_large",
                    Msg::BodyTooLarge,
                )
            }
            _ => ApiError::new(StatusCode::BAD_REQUEST, "invalid_body", Msg::InvalidJson),
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

fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let lang = crate::http::current_lang();
    let bad = |code, detail: String| {
        ApiError::new(StatusCode::BAD_REQUEST, code, Msg::InvalidJson).with_detail(detail)
    };
    // A body is an object: serde would otherwise accept `["alice", "secret"]` as a struct.
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first.is_some_and(|b| *b != b'{') {
        return match serde_json::from_slice::<serde::de::IgnoredAny>(bytes) {
            Ok(_) => Err(bad(
                "invalid_field",
                Msg::JsonObjectExpected.text(lang).to_string(),
            )),
            Err(e) => Err(bad(
                "invalid_json",
                format!("{} ({e})", Msg::InvalidJson.text(lang)),
            )),
        };
    }
    // PostgreSQL cannot store NUL, and no field of ours has a use for it.
    if has_escaped_nul(bytes) {
        return Err(bad(
            "invalid_field",
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
            Category::Data => {
                let detail = if path.is_empty() || path == "." {
                    inner.to_string()
                } else {
                    format!("{path}: {inner}")
                };
                bad("invalid_field", detail)
            }
            _ => bad(
                "invalid_json",
                format!("{} ({inner})", Msg::InvalidJson.text(lang)),
            ),
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
        // An IPv4 peer on a dual-stack socket shows as ::ffff:a.b.c.d; compare it as IPv4.
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip().to_canonical());
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
        Ok(ClientInfo(Client { ip, user_agent }))
    }
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

/// The access token of a request: `x-access-token`, `Authorization: Bearer`, or the `token` cookie.
pub fn access_token(headers: &HeaderMap, jar: &CookieJar) -> Option<(String, TokenSource)> {
    if let Some(t) = headers
        .get("x-access-token")
        .and_then(|v| v.to_str().ok())
        .filter(|t| !t.is_empty())
    {
        return Some((t.trim().to_string(), TokenSource::Header));
    }
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|auth| {
            auth.strip_prefix("Bearer ")
                .or_else(|| auth.strip_prefix("bearer "))
        });
    if let Some(t) = bearer {
        return Some((t.trim().to_string(), TokenSource::Header));
    }
    jar.get(TOKEN_COOKIE)
        .map(|c| c.value().to_string())
        .filter(|t| !t.is_empty())
        .map(|t| (t, TokenSource::Cookie))
}

/// An authenticated caller. Cookie-authenticated unsafe requests have passed the CSRF checks.
pub struct AuthUser {
    pub claims: Claims,
    pub source: TokenSource,
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let jar = CookieJar::from_headers(&parts.headers);
        let Some((token, source)) = access_token(&parts.headers, &jar) else {
            return Err(crate::core::CoreError::NoToken.into());
        };
        if source == TokenSource::Cookie && !is_safe(&parts.method) {
            check_csrf(&parts.headers, &jar, state)?;
        }
        let claims = state.core.authenticate(&token).await?;
        Ok(AuthUser { claims, source })
    }
}

fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// True when the request carries the browser's CSRF cookie, which makes it a browser request
/// that answers with cookies and must pass the CSRF checks (login CSRF included).
pub fn browser_mode(jar: &CookieJar) -> bool {
    jar.get(CSRF_COOKIE).is_some()
}

/// SPEC §7: not cross-site, and a `sessionId` header that matches the `sessionToken` cookie.
pub fn check_csrf(headers: &HeaderMap, jar: &CookieJar, state: &AppState) -> Result<(), ApiError> {
    let forbidden = |code, msg| ApiError::new(StatusCode::FORBIDDEN, code, msg);
    if cross_site(headers, state) {
        return Err(forbidden("cross_site", Msg::CrossSite));
    }
    let header = headers
        .get(CSRF_HEADER)
        .or_else(|| headers.get(CSRF_HEADER_ALT))
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty());
    let (Some(header), Some(cookie)) = (header, jar.get(CSRF_COOKIE)) else {
        return Err(forbidden("csrf_missing", Msg::CsrfMissing));
    };
    if !state.core.csrf.verify(header, cookie.value()) {
        return Err(forbidden("csrf_invalid", Msg::CsrfInvalid));
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
