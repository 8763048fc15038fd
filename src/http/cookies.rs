//! The request's cookies, and the ones an answer sets: a [`cookie::CookieJar`] read from the
//! `Cookie` headers and written back as one `Set-Cookie` per cookie added.
//!
//! brama's own, rather than axum-extra's of the same shape: axum-extra turns on axum's
//! `original-uri`, which clones every request's URI into an extension that nothing here reads
//! (issue 18). Behaviour is the same: cookies are percent-decoded on the way in, a malformed
//! one is skipped, and what is set is percent-encoded.

use std::convert::Infallible;

use axum::extract::FromRequestParts;
use axum::http::header::{COOKIE, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponseParts, ResponseParts};

pub use cookie::{Cookie, SameSite};

/// The cookies a request sent, plus those the answer will set.
#[must_use = "a CookieJar sets its cookies only when it is part of the answer"]
#[derive(Debug, Default, Clone)]
pub struct CookieJar {
    jar: cookie::CookieJar,
}

impl CookieJar {
    /// Every cookie of every `Cookie` header; malformed ones and non-text headers are skipped.
    pub fn from_headers(headers: &HeaderMap) -> Self {
        let mut jar = cookie::CookieJar::new();
        for pair in headers
            .get_all(COOKIE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(';'))
        {
            if let Ok(cookie) = Cookie::parse_encoded(pair.to_owned()) {
                jar.add_original(cookie);
            }
        }
        CookieJar { jar }
    }

    /// The cookie called `name`: one the request sent, or one added since.
    pub fn get(&self, name: &str) -> Option<&Cookie<'static>> {
        self.jar.get(name)
    }

    /// The jar with `cookie` set by the answer it is part of.
    #[allow(clippy::should_implement_trait)]
    pub fn add(mut self, cookie: impl Into<Cookie<'static>>) -> Self {
        self.jar.add(cookie);
        self
    }
}

impl<S: Send + Sync> FromRequestParts<S> for CookieJar {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Infallible> {
        Ok(CookieJar::from_headers(&parts.headers))
    }
}

impl IntoResponseParts for CookieJar {
    type Error = Infallible;

    fn into_response_parts(self, mut answer: ResponseParts) -> Result<ResponseParts, Infallible> {
        let headers = answer.headers_mut();
        for cookie in self.jar.delta() {
            // Percent-encoded, so always a valid header value; a failure would be a bug in
            // the cookie crate, and the cookie is then left out rather than the answer lost.
            if let Ok(value) = HeaderValue::try_from(cookie.encoded().to_string()) {
                headers.append(SET_COOKIE, value);
            }
        }
        Ok(answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::response::IntoResponse;

    #[test]
    fn every_cookie_header_is_read_decoded_and_malformed_pairs_are_skipped() {
        let mut headers = HeaderMap::new();
        headers.append(COOKIE, HeaderValue::from_static("a=1; b=x%20y; =broken"));
        headers.append(COOKIE, HeaderValue::from_static("c=3"));
        let jar = CookieJar::from_headers(&headers);
        assert_eq!(jar.get("a").map(Cookie::value), Some("1"));
        assert_eq!(jar.get("b").map(Cookie::value), Some("x y"));
        assert_eq!(jar.get("c").map(Cookie::value), Some("3"));
        assert!(jar.get("").is_none());
    }

    #[test]
    fn only_added_cookies_are_set_each_in_its_own_header_encoded() {
        let mut headers = HeaderMap::new();
        headers.append(COOKIE, HeaderValue::from_static("sent=1"));
        let jar = CookieJar::from_headers(&headers)
            .add(
                Cookie::build(("token", "a b"))
                    .http_only(true)
                    .same_site(SameSite::Strict)
                    .path("/"),
            )
            .add(Cookie::new("other", "2"));
        let answer = (jar, "ok").into_response();
        let mut set: Vec<&str> = answer
            .headers()
            .get_all(SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect();
        set.sort();
        assert_eq!(
            set,
            ["other=2", "token=a%20b; HttpOnly; SameSite=Strict; Path=/"]
        );
    }
}
