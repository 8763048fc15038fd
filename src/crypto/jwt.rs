//! Access tokens: Ed25519-signed JWTs with keys kept in the database, so every node signs and
//! verifies with the same set, and a JWKS document for other services.
//!
//! Beside the Ed25519 key the ring holds an RSA-2048 key for ID tokens signed RS256 (SPEC §14:
//! OpenID Connect Core §15.1 makes RS256 mandatory and many relying parties accept nothing
//! else). The RSA key only ever signs ID tokens; access tokens stay EdDSA and an RS256 token is
//! never accepted as one. RSA keys are generated with the `rsa` crate (once, on the operator's
//! machine) and used for signing through `ring`, whose private-key operations are constant-time
//! and blinded (the `rsa` crate's are not: RUSTSEC-2023-0071).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
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
    signing: Ed25519Signer,
    /// The base64url JOSE header (`typ` JWT, `alg` EdDSA, `kid`), the same for every token.
    header: String,
    /// The newest RSA key: it signs RS256 ID tokens.
    rsa: RsaSigner,
    /// Ed25519 public keys accepted on access tokens, by kid.
    /// foldhash: every authenticated request looks its token's key up here (issue 18).
    verifying: HashMap<String, DecodingKey, foldhash::fast::RandomState>,
    /// RSA public keys (PKCS#1 DER) of ID tokens brama signed and may be shown again (an
    /// `id_token_hint`), by kid.
    rsa_verifying: HashMap<String, DecodingKey>,
    jwks: Arc<Jwks>,
}

/// An Ed25519 key expanded once. `SigningKey::sign` hashes the secret into its scalar and nonce
/// prefix again for every signature (a SHA-512 and a wipe of its output); the signature is the
/// same (RFC 8032 signatures are deterministic, see the test).
struct Ed25519Signer {
    expanded: ed25519_dalek::hazmat::ExpandedSecretKey,
    public: ed25519_dalek::VerifyingKey,
}

impl Ed25519Signer {
    fn new(key: &SigningKey) -> Self {
        Self {
            expanded: ed25519_dalek::hazmat::ExpandedSecretKey::from(key.as_bytes()),
            public: key.verifying_key(),
        }
    }

    fn sign(&self, message: &[u8]) -> ed25519_dalek::Signature {
        ed25519_dalek::hazmat::raw_sign::<sha2::Sha512>(&self.expanded, message, &self.public)
    }
}

struct RsaSigner {
    key: ring::signature::RsaKeyPair,
    /// The base64url JOSE header (`typ` JWT, `alg` RS256, `kid`).
    header: String,
}

/// How an ID token is signed: per client (SPEC §14 `id_token_alg`, default RS256).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub enum IdTokenAlg {
    RS256,
    EdDSA,
}

impl IdTokenAlg {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RS256 => "RS256",
            Self::EdDSA => "EdDSA",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "RS256" => Some(Self::RS256),
            "EdDSA" => Some(Self::EdDSA),
            _ => None,
        }
    }
}

/// The `alg` column of `signing_keys`.
const ED25519: &str = "EdDSA";
const RSA: &str = "RS256";
/// RSA modulus size (SPEC §14).
const RSA_BITS: usize = 2048;

/// A JSON Web Key Set (RFC 7517): the public keys that verify brama's access tokens.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Jwks {
    pub keys: Vec<Jwk>,
}

/// One public key: Ed25519 (RFC 8037: `kty` OKP, `crv`, `x`) or RSA (RFC 7518 §6.3: `kty`
/// RSA, `n`, `e`).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Jwk {
    /// `OKP` or `RSA`.
    pub kty: &'static str,
    /// `Ed25519` (OKP keys only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crv: Option<&'static str>,
    /// `sig`.
    #[serde(rename = "use")]
    pub use_: &'static str,
    /// `EdDSA` or `RS256`.
    pub alg: &'static str,
    pub kid: String,
    /// The Ed25519 public key, base64url.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    /// The RSA modulus, base64url, big-endian.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub n: Option<String>,
    /// The RSA public exponent, base64url, big-endian.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub e: Option<String>,
}

/// The signing key in use and every public key still accepted.
pub struct KeyRing {
    ring: RwLock<Arc<Ring>>,
    validation: Validation,
    /// Tokens whose signature has been checked, with their claims and the key that signed them.
    /// foldhash rather than SipHash: a ~250-byte token is hashed on every authenticated
    /// request (SipHash was 1 900 instructions of `/me`'s 46 500, issue 18), and only tokens
    /// brama signed are ever inserted, so no client can choose keys that collide.
    verified: std::sync::Mutex<VerifiedTokens>,
}

type VerifiedTokens = HashMap<String, (Arc<Claims>, Arc<str>), foldhash::fast::RandomState>;

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
            verified: std::sync::Mutex::new(VerifiedTokens::default()),
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

    /// Checks signature (EdDSA only), `iss`, `aud` and `exp`. The claims are shared with the
    /// cache of verified tokens rather than copied (ten strings) on every request.
    pub fn verify(&self, token: &str) -> Result<Arc<Claims>, VerifyError> {
        // A client presents one token for its whole life; its signature needs checking once.
        // Only tokens that verified are remembered, under their full text, and expiry is
        // still checked on every use.
        if let Some(claims) = self.remembered(token) {
            return Ok(claims);
        }
        let (claims, kid) = self.verify_signature(token)?;
        let claims = Arc::new(claims);
        let mut verified = self.verified.lock().unwrap_or_else(|p| p.into_inner());
        if verified.len() >= VERIFIED_CACHE_MAX {
            verified.clear();
        }
        verified.insert(token.to_string(), (Arc::clone(&claims), kid.into()));
        Ok(claims)
    }

    /// A token verified before, still unexpired, whose key is still in the ring (a revoked
    /// key's tokens stop at once, not at their own expiry).
    fn remembered(&self, token: &str) -> Option<Arc<Claims>> {
        let verified = self.verified.lock().unwrap_or_else(|p| p.into_inner());
        let (claims, kid) = verified.get(token)?;
        // The clock's seconds alone: `OffsetDateTime::now_utc` also works out the date.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let live = claims.exp + LEEWAY_SECS as i64 >= now;
        (live && self.current().verifying.contains_key(&**kid)).then(|| Arc::clone(claims))
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

    /// A compact JWS of an ID token's claims with the newest key of `alg` (SPEC §14). RS256
    /// signatures come from `ring` (constant-time, blinded).
    pub fn sign_id_token(
        &self,
        alg: IdTokenAlg,
        claims: &impl Serialize,
    ) -> Result<String, SignError> {
        let ring = self.current();
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims)?);
        let header = match alg {
            IdTokenAlg::EdDSA => &ring.header,
            IdTokenAlg::RS256 => &ring.rsa.header,
        };
        let mut token = String::with_capacity(header.len() + payload.len() + 350);
        token.push_str(header);
        token.push('.');
        token.push_str(&payload);
        let signature = match alg {
            IdTokenAlg::EdDSA => ring.signing.sign(token.as_bytes()).to_bytes().to_vec(),
            IdTokenAlg::RS256 => {
                let mut signature = vec![0; ring.rsa.key.public().modulus_len()];
                ring.rsa
                    .key
                    .sign(
                        &ring::signature::RSA_PKCS1_SHA256,
                        &ring::rand::SystemRandom::new(),
                        token.as_bytes(),
                        &mut signature,
                    )
                    .map_err(|_| SignError::Rsa)?;
                signature
            }
        };
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(signature, &mut token);
        Ok(token)
    }

    /// The claims of an ID token brama signed with a key it still publishes, of either
    /// algorithm, for `aud` (`id_token_hint` at logout). Expiry is not checked: a hint may be an
    /// old token (OpenID Connect RP-Initiated Logout §2).
    pub fn verify_id_token<T: serde::de::DeserializeOwned>(
        &self,
        token: &str,
        issuer: &str,
    ) -> Result<T, VerifyError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| VerifyError::Invalid)?;
        let kid = header.kid.ok_or(VerifyError::Invalid)?;
        let ring = self.current();
        let key = match header.alg {
            Algorithm::EdDSA => ring.verifying.get(&kid),
            Algorithm::RS256 => ring.rsa_verifying.get(&kid),
            _ => return Err(VerifyError::Invalid),
        }
        .ok_or(VerifyError::UnknownKey)?;
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[issuer]);
        validation.validate_exp = false;
        validation.validate_aud = false;
        validation.set_required_spec_claims(&["iss", "aud", "sub"]);
        jsonwebtoken::decode::<T>(token, key, &validation)
            .map(|data| data.claims)
            .map_err(|_| VerifyError::Invalid)
    }
}

impl KeyRing {
    /// An access token brama issued to an OpenID Connect client (`src/core/oauth.rs`):
    /// EdDSA, by a key still published, for `audience`, unexpired.
    pub fn verify_client_access<T: serde::de::DeserializeOwned>(
        &self,
        token: &str,
        issuer: &str,
        audience: &str,
    ) -> Result<T, VerifyError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| VerifyError::Invalid)?;
        if header.alg != Algorithm::EdDSA {
            return Err(VerifyError::Invalid);
        }
        let kid = header.kid.ok_or(VerifyError::Invalid)?;
        let ring = self.current();
        let key = ring.verifying.get(&kid).ok_or(VerifyError::UnknownKey)?;
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = LEEWAY_SECS;
        jsonwebtoken::decode::<T>(token, key, &validation)
            .map(|data| data.claims)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => VerifyError::Expired,
                _ => VerifyError::Invalid,
            })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    #[error("RSA signing failed")]
    Rsa,
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
    let Some(revoked) = keys.iter().find(|k| k.kid == kid) else {
        return Err(RevokeError::Unknown);
    };
    // keys are newest first: the first of its kind is the one signing.
    let signing = keys
        .iter()
        .find(|k| k.alg == revoked.alg)
        .is_some_and(|newest| newest.kid == kid);
    let record = if signing {
        Some(generate(&revoked.alg, now_ms).await?)
    } else {
        None
    };
    let mut tx = store.begin().await?;
    let replacement = match record {
        Some(record) => {
            tx.insert_signing_key(&record).await?;
            Some(record.kid)
        }
        None => None,
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

/// The ids of the keys a rotation added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotatedKeys {
    /// The new Ed25519 key: access tokens, EdDSA ID tokens.
    pub eddsa: String,
    /// The new RSA key: RS256 ID tokens.
    pub rs256: String,
}

/// Adds a new key of each kind; nodes switch to them at their next reload (`brama keys
/// rotate`).
pub async fn rotate(store: &DynStore, now_ms: i64) -> Result<RotatedKeys, StoreError> {
    let eddsa = generate(ED25519, now_ms).await?;
    let rs256 = generate(RSA, now_ms).await?;
    let rotated = RotatedKeys {
        eddsa: eddsa.kid.clone(),
        rs256: rs256.kid.clone(),
    };
    let mut tx = store.begin().await?;
    tx.insert_signing_key(&eddsa).await?;
    tx.insert_signing_key(&rs256).await?;
    tx.commit().await?;
    Ok(rotated)
}

/// A new key of `alg`. An RSA key takes a noticeable fraction of a second to find, so it is
/// made off the async runtime.
async fn generate(alg: &str, now_ms: i64) -> Result<SigningKeyRecord, StoreError> {
    let kid = uuid::Uuid::now_v7().simple().to_string();
    if alg == RSA {
        let (private_key, public_key) = tokio::task::spawn_blocking(generate_rsa)
            .await
            .map_err(|e| StoreError::Corrupt(format!("RSA key generation: {e}")))??;
        return Ok(SigningKeyRecord {
            kid,
            alg: RSA.into(),
            private_key,
            public_key,
            created_at: now_ms,
        });
    }
    let key = SigningKey::generate(&mut OsRng);
    let der = key
        .to_pkcs8_der()
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
    Ok(SigningKeyRecord {
        kid,
        alg: ED25519.into(),
        private_key: STANDARD.encode(der.as_bytes()),
        public_key: STANDARD.encode(key.verifying_key().as_bytes()),
        created_at: now_ms,
    })
}

/// An RSA-2048 key: (PKCS#8 DER of the private key, PKCS#1 DER of the public key), base64.
fn generate_rsa() -> Result<(String, String), StoreError> {
    use rsa::pkcs1::EncodeRsaPublicKey;
    use rsa::pkcs8::EncodePrivateKey as _;
    let corrupt = |e: &dyn std::fmt::Display| StoreError::Corrupt(format!("RSA key: {e}"));
    let private = rsa::RsaPrivateKey::new(&mut OsRng, RSA_BITS).map_err(|e| corrupt(&e))?;
    let der = private.to_pkcs8_der().map_err(|e| corrupt(&e))?;
    let public = private
        .to_public_key()
        .to_pkcs1_der()
        .map_err(|e| corrupt(&e))?;
    Ok((
        STANDARD.encode(der.as_bytes()),
        STANDARD.encode(public.as_bytes()),
    ))
}

async fn build_ring(store: &DynStore, now_ms: i64) -> Result<Ring, StoreError> {
    let mut keys = store.signing_keys().await?;
    for alg in [ED25519, RSA] {
        if !keys.iter().any(|k| k.alg == alg) {
            // A fresh database, or one from before RSA keys. Two nodes starting together may
            // both insert; both then sign with the newest, and both keys verify.
            let record = generate(alg, now_ms).await?;
            let mut tx = store.begin().await?;
            tx.insert_signing_key(&record).await?;
            tx.commit().await?;
            keys = store.signing_keys().await?;
        }
    }
    let corrupt = |kid: &str, e: &dyn std::fmt::Display| {
        StoreError::Corrupt(format!("signing key {kid}: {e}"))
    };
    let newest = |alg: &str| {
        keys.iter()
            .find(|k| k.alg == alg)
            .ok_or_else(|| StoreError::Corrupt(format!("no {alg} signing key after inserting one")))
    };
    let ed = newest(ED25519)?;
    let private = STANDARD
        .decode(&ed.private_key)
        .map_err(|e| corrupt(&ed.kid, &e))?;
    let signing = SigningKey::from_pkcs8_der(&private).map_err(|e| corrupt(&ed.kid, &e))?;
    let header = URL_SAFE_NO_PAD
        .encode(serde_json::json!({ "typ": "JWT", "alg": "EdDSA", "kid": ed.kid }).to_string());
    let rs = newest(RSA)?;
    let private = STANDARD
        .decode(&rs.private_key)
        .map_err(|e| corrupt(&rs.kid, &e))?;
    let rsa = RsaSigner {
        key: ring::signature::RsaKeyPair::from_pkcs8(&private).map_err(|e| corrupt(&rs.kid, &e))?,
        header: URL_SAFE_NO_PAD
            .encode(serde_json::json!({ "typ": "JWT", "alg": "RS256", "kid": rs.kid }).to_string()),
    };

    let mut verifying = HashMap::default();
    let mut rsa_verifying = HashMap::new();
    let mut published = Vec::new();
    // Ed25519 keys first (what verifies access tokens), then RSA ones. keys are newest first: a
    // key stays while the key of its kind that replaced it is younger than the longest token
    // lifetime, so every token it signed can still be checked.
    for alg in [ED25519, RSA] {
        let mut replaced_at: Option<i64> = None;
        for key in keys.iter().filter(|k| k.alg == alg) {
            if replaced_at.is_some_and(|t| now_ms - t > RETIRED_KEY_KEEP_MS) {
                break;
            }
            let public = STANDARD
                .decode(&key.public_key)
                .map_err(|e| corrupt(&key.kid, &e))?;
            if alg == ED25519 {
                verifying.insert(key.kid.clone(), DecodingKey::from_ed_der(&public));
                published.push(Jwk {
                    kty: "OKP",
                    crv: Some("Ed25519"),
                    use_: "sig",
                    alg: "EdDSA",
                    kid: key.kid.clone(),
                    x: Some(URL_SAFE_NO_PAD.encode(&public)),
                    n: None,
                    e: None,
                });
            } else {
                use rsa::pkcs1::DecodeRsaPublicKey;
                use rsa::traits::PublicKeyParts;
                let parsed = rsa::RsaPublicKey::from_pkcs1_der(&public)
                    .map_err(|e| corrupt(&key.kid, &e))?;
                rsa_verifying.insert(key.kid.clone(), DecodingKey::from_rsa_der(&public));
                published.push(Jwk {
                    kty: "RSA",
                    crv: None,
                    use_: "sig",
                    alg: "RS256",
                    kid: key.kid.clone(),
                    x: None,
                    n: Some(URL_SAFE_NO_PAD.encode(parsed.n().to_bytes_be())),
                    e: Some(URL_SAFE_NO_PAD.encode(parsed.e().to_bytes_be())),
                });
            }
            replaced_at = Some(key.created_at);
        }
    }
    Ok(Ring {
        signing: Ed25519Signer::new(&signing),
        header,
        rsa,
        verifying,
        rsa_verifying,
        jwks: Arc::new(Jwks { keys: published }),
    })
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::Signer;
    use rand::RngCore;

    use super::*;

    /// The key expanded once signs exactly as `SigningKey::sign` does, and the signature
    /// verifies under the key's public half.
    #[test]
    fn the_expanded_key_signs_as_the_signing_key_does() {
        for length in [0, 1, 63, 64, 127, 128, 300, 1000] {
            let key = SigningKey::generate(&mut OsRng);
            let signer = Ed25519Signer::new(&key);
            let mut message = vec![0u8; length];
            OsRng.fill_bytes(&mut message);
            let signature = signer.sign(&message);
            assert_eq!(signature, key.sign(&message), "{length} bytes");
            key.verifying_key()
                .verify_strict(&message, &signature)
                .unwrap();
        }
    }
}
