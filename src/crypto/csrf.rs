//! CSRF tokens: the page holds `sessionId` and sends it as a header; the `sessionToken` cookie
//! holds HMAC(secret, sessionId). A site that can plant a cookie still cannot forge a pair.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

#[derive(Clone)]
pub struct CsrfKey {
    secret: Vec<u8>,
}

/// A fresh pair: `session_id` for the body and header, `cookie` for the `sessionToken` cookie.
pub struct CsrfPair {
    pub session_id: String,
    pub cookie: String,
}

impl CsrfKey {
    pub fn new(secret: Vec<u8>) -> Self {
        Self { secret }
    }

    fn mac(&self, session_id: &str) -> Vec<u8> {
        // new_from_slice only fails for algorithms with fixed key sizes; HMAC takes any length.
        let mut mac =
            HmacSha256::new_from_slice(&self.secret).expect("HMAC accepts any key length");
        mac.update(session_id.as_bytes());
        mac.finalize().into_bytes().to_vec()
    }

    pub fn issue(&self) -> CsrfPair {
        let session_id = super::random_token();
        let cookie = URL_SAFE_NO_PAD.encode(self.mac(&session_id));
        CsrfPair { session_id, cookie }
    }

    /// The SSO cookie of a browser session (`src/core/oauth.rs`): the session id and a MAC of
    /// it. CSRF inputs are random base64url tokens, never with a `:`, so the `sso:` prefix keeps
    /// the two kinds of MAC apart under one key.
    pub fn sso_token(&self, session_id: &str) -> String {
        let mac = URL_SAFE_NO_PAD.encode(self.mac(&format!("sso:{session_id}")));
        format!("{}.{mac}", URL_SAFE_NO_PAD.encode(session_id))
    }

    /// The session id an SSO cookie was made for, if its MAC holds (constant-time).
    pub fn sso_session(&self, cookie: &str) -> Option<String> {
        let (id, mac) = cookie.split_once('.')?;
        let id = String::from_utf8(URL_SAFE_NO_PAD.decode(id).ok()?).ok()?;
        let presented = URL_SAFE_NO_PAD.decode(mac).ok()?;
        let expected = self.mac(&format!("sso:{id}"));
        bool::from(expected.ct_eq(&presented)).then_some(id)
    }

    /// True when the header value and the cookie belong together, compared in constant time.
    pub fn verify(&self, header: &str, cookie: &str) -> bool {
        let Ok(presented) = URL_SAFE_NO_PAD.decode(cookie) else {
            return false;
        };
        let expected = self.mac(header);
        expected.ct_eq(&presented).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sso_cookies_name_their_session_and_resist_tampering() {
        let key = CsrfKey::new(b"k".repeat(32));
        let cookie = key.sso_token("0192-session");
        assert_eq!(key.sso_session(&cookie).as_deref(), Some("0192-session"));
        let other = key.sso_token("0192-other");
        let (id, _) = cookie.split_once('.').unwrap();
        let (_, mac) = other.split_once('.').unwrap();
        assert_eq!(key.sso_session(&format!("{id}.{mac}")), None);
        assert_eq!(CsrfKey::new(b"j".repeat(32)).sso_session(&cookie), None);
        assert_eq!(key.sso_session("garbage"), None);
        // A CSRF MAC is not an SSO cookie.
        let pair = key.issue();
        let forged = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(&pair.session_id),
            pair.cookie
        );
        assert_eq!(key.sso_session(&forged), None);
    }

    #[test]
    fn issued_pairs_verify_and_mismatches_do_not() {
        let key = CsrfKey::new(b"k".repeat(32));
        let a = key.issue();
        let b = key.issue();
        assert!(key.verify(&a.session_id, &a.cookie));
        assert!(!key.verify(&a.session_id, &b.cookie));
        assert!(!key.verify(&a.session_id, "not base64 !"));
        assert!(!key.verify("", &a.cookie));
        let other = CsrfKey::new(b"x".repeat(32));
        assert!(!other.verify(&a.session_id, &a.cookie));
    }
}
