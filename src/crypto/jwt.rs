//! Access tokens: Ed25519-signed JWTs with keys kept in the database, so every node signs and
//! verifies with the same set, and a JWKS document for other services.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use ed25519_dalek::{Signer, SigningKey};
use jsonwebtoken::{Algorithm, DecodingKey, Validation, errors::ErrorKind};
use rand::rngs::OsRng;
use serde::{Deserialize, Serialize};

use crate::store::{DynStore, SigningKeyRecord, StoreError};

/// How long a replaced key's public half stays published: the longest access-token lifetime
/// (15 minutes) plus the verification leeway, plus a minute for clocks and in-flight reloads.
const RETIRED_KEY_KEEP_MS: i64 = (15 * 60 + 30 + 60) * 1000;
/// Clock skew accepted on `exp` (SPEC §3: no more than 30 s).
pub const LEEWAY_SECS: u64 = 30;

/// The claims of an access token (SPEC §3).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    /// Account id.
    pub sub: String,
    /// Organization id.
    pub org: String,
    /// Role names, lower-case (`user`, `moderator`, `admin`, `owner`).
    pub roles: Vec<String>,
    /// Session id.
    pub sid: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
    /// How the holder signed in (RFC 8176): `["pwd"]`, or `["pwd", "otp", "mfa"]` after a
    /// second factor. Absent from tokens of versions before it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub amr: Vec<String>,
    /// `enrol`: the holder's role must have a second factor and the session was opened without
    /// one, so the token is good only for setting one up (SPEC §13, `mfa_required_roles`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mfa: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("access token expired")]
    Expired,
    #[error("access token invalid")]
    Invalid,
    #[error("access token signed by an unknown key")]
    UnknownKey,
}

struct Ring {
    /// The key, parsed once: jsonwebtoken parses its DER on every `encode`, which derives the
    /// public key, a second curve multiplication as dear as the signature itself.
    signing: SigningKey,
    /// The base64url JOSE header (`typ` JWT, `alg` EdDSA, `kid`), the same for every token.
    header: String,
    verifying: HashMap<String, DecodingKey>,
    jwks: Arc<Jwks>,
}

/// A JSON Web Key Set (RFC 7517): the public keys that verify brama's access tokens.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Jwks {
    pub keys: Vec<Jwk>,
}

/// One Ed25519 public key (RFC 8037).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Jwk {
    /// `OKP`.
    pub kty: &'static str,
    /// `Ed25519`.
    pub crv: &'static str,
    /// `sig`.
    #[serde(rename = "use")]
    pub use_: &'static str,
    /// `EdDSA`.
    pub alg: &'static str,
    pub kid: String,
    /// The public key, base64url.
    pub x: String,
}

/// The signing key in use and every public key still accepted.
pub struct KeyRing {
    ring: RwLock<Arc<Ring>>,
    validation: Validation,
    /// Tokens whose signature has been checked, with their claims and the key that signed them.
    verified: std::sync::Mutex<HashMap<String, (Claims, Arc<str>)>>,
}

/// Above this many remembered tokens the memory starts over (a few MB at most).
const VERIFIED_CACHE_MAX: usize = 20_000;

impl KeyRing {
    /// Loads the keys, creating the first one on a fresh database.
    pub async fn load(
        store: &DynStore,
        issuer: &str,
        audience: &str,
        now_ms: i64,
    ) -> Result<Self, StoreError> {
        let ring = build_ring(store, now_ms).await?;
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = LEEWAY_SECS;
        Ok(Self {
            ring: RwLock::new(Arc::new(ring)),
            validation,
            verified: std::sync::Mutex::new(HashMap::new()),
        })
    }

    /// Re-reads the keys, picking up a `brama keys rotate` or `keys revoke` done on any node.
    /// When a key has left, every token remembered as verified is checked again.
    pub async fn reload(&self, store: &DynStore, now_ms: i64) -> Result<(), StoreError> {
        let ring = build_ring(store, now_ms).await?;
        let gone = self
            .current()
            .verifying
            .keys()
            .any(|kid| !ring.verifying.contains_key(kid));
        if let Ok(mut guard) = self.ring.write() {
            *guard = Arc::new(ring);
        }
        if gone {
            self.verified
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clear();
        }
        Ok(())
    }

    fn current(&self) -> Arc<Ring> {
        match self.ring.read() {
            Ok(guard) => Arc::clone(&guard),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// A compact JWS (RFC 7515) of the claims, signed with the current key.
    pub fn sign(&self, claims: &Claims) -> Result<String, serde_json::Error> {
        let ring = self.current();
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims)?);
        let mut token = String::with_capacity(ring.header.len() + payload.len() + 90);
        token.push_str(&ring.header);
        token.push('.');
        token.push_str(&payload);
        let signature = ring.signing.sign(token.as_bytes());
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(signature.to_bytes(), &mut token);
        Ok(token)
    }

    /// Checks signature (EdDSA only), `iss`, `aud` and `exp`.
    pub fn verify(&self, token: &str) -> Result<Claims, VerifyError> {
        // A client presents one token for its whole life; its signature needs checking once.
        // Only tokens that verified are remembered, under their full text, and expiry is
        // still checked on every use.
        if let Some(claims) = self.remembered(token) {
            return Ok(claims);
        }
        let (claims, kid) = self.verify_signature(token)?;
        let mut verified = self.verified.lock().unwrap_or_else(|p| p.into_inner());
        if verified.len() >= VERIFIED_CACHE_MAX {
            verified.clear();
        }
        verified.insert(token.to_string(), (claims.clone(), kid.into()));
        Ok(claims)
    }

    /// A token verified before, still unexpired, whose key is still in the ring (a revoked
    /// key's tokens stop at once, not at their own expiry).
    fn remembered(&self, token: &str) -> Option<Claims> {
        let verified = self.verified.lock().unwrap_or_else(|p| p.into_inner());
        let (claims, kid) = verified.get(token)?;
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let live = claims.exp + LEEWAY_SECS as i64 >= now;
        (live && self.current().verifying.contains_key(&**kid)).then(|| claims.clone())
    }

    fn verify_signature(&self, token: &str) -> Result<(Claims, String), VerifyError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| VerifyError::Invalid)?;
        if header.alg != Algorithm::EdDSA {
            return Err(VerifyError::Invalid);
        }
        let Some(kid) = header.kid else {
            return Err(VerifyError::Invalid);
        };
        let ring = self.current();
        let Some(key) = ring.verifying.get(&kid) else {
            return Err(VerifyError::UnknownKey);
        };
        jsonwebtoken::decode::<Claims>(token, key, &self.validation)
            .map(|data| (data.claims, kid))
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => VerifyError::Expired,
                _ => VerifyError::Invalid,
            })
    }

    /// The JWKS document (`/.well-known/jwks.json`).
    pub fn jwks(&self) -> Arc<Jwks> {
        Arc::clone(&self.current().jwks)
    }
}

/// Removes a signing key at once (`brama keys revoke`, for a key that has leaked): every node
/// refuses its tokens at its next reload. A key still signing is first replaced by a new one;
/// its id is returned. `Ok(None)` if no key was replaced, `Err` if there is no such key.
pub async fn revoke(
    store: &DynStore,
    kid: &str,
    now_ms: i64,
) -> Result<Option<String>, RevokeError> {
    let keys = store.signing_keys().await?;
    if !keys.iter().any(|k| k.kid == kid) {
        return Err(RevokeError::Unknown);
    }
    let mut tx = store.begin().await?;
    let replacement = if keys.first().is_some_and(|newest| newest.kid == kid) {
        let record = generate(now_ms)?;
        tx.insert_signing_key(&record).await?;
        Some(record.kid)
    } else {
        None
    };
    if !tx.delete_signing_key(kid).await? {
        return Err(RevokeError::Unknown);
    }
    tx.commit().await?;
    Ok(replacement)
}

#[derive(Debug, thiserror::Error)]
pub enum RevokeError {
    #[error("no signing key has that id")]
    Unknown,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Adds a new signing key; nodes switch to it at their next reload (`brama keys rotate`).
pub async fn rotate(store: &DynStore, now_ms: i64) -> Result<String, StoreError> {
    let record = generate(now_ms)?;
    let kid = record.kid.clone();
    let mut tx = store.begin().await?;
    tx.insert_signing_key(&record).await?;
    tx.commit().await?;
    Ok(kid)
}

fn generate(now_ms: i64) -> Result<SigningKeyRecord, StoreError> {
    let key = SigningKey::generate(&mut OsRng);
    let der = key
        .to_pkcs8_der()
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
    Ok(SigningKeyRecord {
        kid: uuid::Uuid::now_v7().simple().to_string(),
        private_key: STANDARD.encode(der.as_bytes()),
        public_key: STANDARD.encode(key.verifying_key().as_bytes()),
        created_at: now_ms,
    })
}

async fn build_ring(store: &DynStore, now_ms: i64) -> Result<Ring, StoreError> {
    let mut keys = store.signing_keys().await?;
    if keys.is_empty() {
        // Two nodes starting on an empty database may both insert; both then sign with the
        // newest, and both keys verify.
        let mut tx = store.begin().await?;
        tx.insert_signing_key(&generate(now_ms)?).await?;
        tx.commit().await?;
        keys = store.signing_keys().await?;
    }
    let Some(newest) = keys.first() else {
        return Err(StoreError::Corrupt(
            "no signing key after inserting one".into(),
        ));
    };
    let private = STANDARD
        .decode(&newest.private_key)
        .map_err(|e| StoreError::Corrupt(format!("signing key {}: {e}", newest.kid)))?;
    let signing = SigningKey::from_pkcs8_der(&private)
        .map_err(|e| StoreError::Corrupt(format!("signing key {}: {e}", newest.kid)))?;
    let header = URL_SAFE_NO_PAD
        .encode(serde_json::json!({ "typ": "JWT", "alg": "EdDSA", "kid": newest.kid }).to_string());

    let mut verifying = HashMap::new();
    let mut published = Vec::new();
    // keys are newest first: a key stays while the key that replaced it is younger than the
    // longest token lifetime, so every token it signed can still be checked.
    let mut replaced_at: Option<i64> = None;
    for key in &keys {
        if replaced_at.is_some_and(|t| now_ms - t > RETIRED_KEY_KEEP_MS) {
            break;
        }
        let public = STANDARD
            .decode(&key.public_key)
            .map_err(|e| StoreError::Corrupt(format!("public key {}: {e}", key.kid)))?;
        let x = URL_SAFE_NO_PAD.encode(&public);
        verifying.insert(key.kid.clone(), DecodingKey::from_ed_der(&public));
        published.push(Jwk {
            kty: "OKP",
            crv: "Ed25519",
            use_: "sig",
            alg: "EdDSA",
            kid: key.kid.clone(),
            x,
        });
        replaced_at = Some(key.created_at);
    }
    Ok(Ring {
        signing,
        header,
        verifying,
        jwks: Arc::new(Jwks { keys: published }),
    })
}
