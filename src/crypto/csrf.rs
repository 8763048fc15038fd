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
