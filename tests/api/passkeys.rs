//! SPEC §13: passkeys. The authenticator here is a software one written for these tests from
//! the WebAuthn level 2 text (P-256 key, `none` attestation, user present and verified): it
//! builds the CBOR, the authenticator data and the signatures a browser would pass on, so that
//! brama's side (webauthn-rs) is checked against bytes it did not make. The browser tests use
//! Chromium's virtual authenticator for the same ceremonies through the page.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{DerSignature, SigningKey};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::helpers::{Backend, PASSWORD, Resp, TestApp};
use crate::{app, both_backends};

both_backends!(
    a_passkey_is_registered_used_as_a_second_factor_and_removed,
    a_discoverable_passkey_signs_in_without_a_password,
    bad_webauthn_answers_are_clear_4xx_and_counted,
    ceremonies_started_without_a_token_are_limited_per_address,
    an_account_with_passkeys_alone_is_guarded_and_never_locked_out,
    ceremonies_started_on_one_node_finish_on_another,
);

const ORIGIN: &str = "https://brama.example.org";
const RP_ID: &str = "brama.example.org";

fn with_public_url(c: &mut brama::config::Config) {
    c.public_url = Some(ORIGIN.to_string());
}

/// A software authenticator holding one credential.
struct SoftKey {
    key: SigningKey,
    id: Vec<u8>,
    /// The user handle it was registered with.
    user: Vec<u8>,
    counter: u32,
}

/// A minimal CBOR writer: what attestation objects and COSE keys need.
enum Cbor<'a> {
    Int(i64),
    Bytes(&'a [u8]),
    Text(&'a str),
    Map(Vec<(Cbor<'a>, Cbor<'a>)>),
}

impl Cbor<'_> {
    fn head(out: &mut Vec<u8>, major: u8, n: u64) {
        match n {
            0..=23 => out.push(major << 5 | n as u8),
            24..=0xff => out.extend([major << 5 | 24, n as u8]),
            0x100..=0xffff => {
                out.push(major << 5 | 25);
                out.extend((n as u16).to_be_bytes());
            }
            _ => {
                out.push(major << 5 | 26);
                out.extend((n as u32).to_be_bytes());
            }
        }
    }

    fn write(&self, out: &mut Vec<u8>) {
        match self {
            Cbor::Int(n) if *n >= 0 => Self::head(out, 0, *n as u64),
            Cbor::Int(n) => Self::head(out, 1, (-1 - n) as u64),
            Cbor::Bytes(b) => {
                Self::head(out, 2, b.len() as u64);
                out.extend_from_slice(b);
            }
            Cbor::Text(t) => {
                Self::head(out, 3, t.len() as u64);
                out.extend_from_slice(t.as_bytes());
            }
            Cbor::Map(entries) => {
                Self::head(out, 5, entries.len() as u64);
                for (k, v) in entries {
                    k.write(out);
                    v.write(out);
                }
            }
        }
    }

    fn bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write(&mut out);
        out
    }
}

fn b64(value: &Value) -> Vec<u8> {
    B64.decode(value.as_str().expect("base64url text"))
        .expect("base64url")
}

/// User present, user verified.
const UP_UV: u8 = 0x01 | 0x04;
/// ... and attested credential data included.
const ATTESTED: u8 = 0x40;

impl SoftKey {
    fn new() -> SoftKey {
        let mut id = vec![0u8; 16];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut id);
        SoftKey {
            key: SigningKey::random(&mut rand::rngs::OsRng),
            id,
            user: Vec::new(),
            counter: 0,
        }
    }

    fn cose_key(&self) -> Vec<u8> {
        let point = self.key.verifying_key().to_encoded_point(false);
        Cbor::Map(vec![
            (Cbor::Int(1), Cbor::Int(2)),
            (Cbor::Int(3), Cbor::Int(-7)),
            (Cbor::Int(-1), Cbor::Int(1)),
            (Cbor::Int(-2), Cbor::Bytes(point.x().unwrap())),
            (Cbor::Int(-3), Cbor::Bytes(point.y().unwrap())),
        ])
        .bytes()
    }

    fn client_data(kind: &str, options: &Value, origin: &str) -> Vec<u8> {
        json!({
            "type": kind,
            "challenge": options["publicKey"]["challenge"],
            "origin": origin,
            "crossOrigin": false,
        })
        .to_string()
        .into_bytes()
    }

    /// `navigator.credentials.create()` for `options`, as `PublicKeyCredential.toJSON()`.
    fn create(&mut self, options: &Value, origin: &str) -> Value {
        let rp_id = options["publicKey"]["rp"]["id"].as_str().unwrap();
        self.user = b64(&options["publicKey"]["user"]["id"]);
        let client_data = Self::client_data("webauthn.create", options, origin);
        let mut auth_data = Sha256::digest(rp_id.as_bytes()).to_vec();
        auth_data.push(UP_UV | ATTESTED);
        auth_data.extend(self.counter.to_be_bytes());
        auth_data.extend([0u8; 16]);
        auth_data.extend((self.id.len() as u16).to_be_bytes());
        auth_data.extend(&self.id);
        auth_data.extend(self.cose_key());
        let attestation = Cbor::Map(vec![
            (Cbor::Text("fmt"), Cbor::Text("none")),
            (Cbor::Text("attStmt"), Cbor::Map(vec![])),
            (Cbor::Text("authData"), Cbor::Bytes(&auth_data)),
        ])
        .bytes();
        json!({
            "id": B64.encode(&self.id),
            "rawId": B64.encode(&self.id),
            "type": "public-key",
            "response": {
                "attestationObject": B64.encode(attestation),
                "clientDataJSON": B64.encode(client_data),
                "transports": ["internal"],
            },
            "clientExtensionResults": {},
        })
    }

    /// `navigator.credentials.get()` for `options` with this relying party id and origin.
    fn get_as(&mut self, options: &Value, rp_id: &str, origin: &str) -> Value {
        self.counter += 1;
        let client_data = Self::client_data("webauthn.get", options, origin);
        let mut auth_data = Sha256::digest(rp_id.as_bytes()).to_vec();
        auth_data.push(UP_UV);
        auth_data.extend(self.counter.to_be_bytes());
        let mut signed = auth_data.clone();
        signed.extend(Sha256::digest(&client_data));
        let signature: DerSignature = self.key.sign(&signed);
        json!({
            "id": B64.encode(&self.id),
            "rawId": B64.encode(&self.id),
            "type": "public-key",
            "response": {
                "authenticatorData": B64.encode(auth_data),
                "clientDataJSON": B64.encode(client_data),
                "signature": B64.encode(signature.as_bytes()),
                "userHandle": B64.encode(&self.user),
            },
            "clientExtensionResults": {},
        })
    }

    fn get(&mut self, options: &Value) -> Value {
        self.get_as(options, RP_ID, ORIGIN)
    }
}

async fn call(app: &TestApp, token: &str, method: &str, path: &str, body: Option<Value>) -> Resp {
    app.request(method, path, body, &[("x-access-token", token)])
        .await
}

fn status_of(r: &Resp) -> (u16, String) {
    (r.status, r.code().to_string())
}

/// The claims of an access token, read from its payload as a client would.
fn claims(access: &str) -> Value {
    let payload = access.split('.').nth(1).expect("a JWT");
    serde_json::from_slice(&B64.decode(payload).unwrap()).unwrap()
}

/// A new account, logged in; its access token.
async fn signed_up(app: &TestApp, name: &str) -> String {
    app.user(name).await["accessToken"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn register_start(app: &TestApp, token: &str) -> Resp {
    call(
        app,
        token,
        "POST",
        "/api/auth/passkeys/register/start",
        None,
    )
    .await
}

async fn register_finish(app: &TestApp, token: &str, body: Value) -> Resp {
    call(
        app,
        token,
        "POST",
        "/api/auth/passkeys/register/finish",
        Some(body),
    )
    .await
}

/// The passwordless finish with this answer.
async fn passwordless(app: &TestApp, credential: &Value) -> Resp {
    app.post(
        "/api/auth/passkey/finish",
        json!({ "credential": credential }),
    )
    .await
}

/// Registers a new software passkey called `name` for the token's account; the answer.
async fn register(app: &TestApp, token: &str, key: &mut SoftKey, name: &str) -> Resp {
    let r = register_start(app, token).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let credential = key.create(&r.body, ORIGIN);
    register_finish(
        app,
        token,
        json!({ "name": name, "credential": credential }),
    )
    .await
}

/// A password login that must be followed by a second factor: its ticket and methods.
async fn first_step(app: &TestApp, name: &str) -> (String, Value) {
    let r = app.login(name, PASSWORD).await;
    assert_eq!(r.status, 401, "{}", r.text);
    assert_eq!(r.body["code"], "mfa_required", "{}", r.text);
    (
        r.body["mfaToken"].as_str().unwrap().to_string(),
        r.body["methods"].clone(),
    )
}

async fn a_passkey_is_registered_used_as_a_second_factor_and_removed(backend: Backend) {
    let app = app!(backend, with_public_url);
    let token = signed_up(&app, "anna").await;

    // The creation options: this relying party, user verification, a discoverable credential
    // preferred, nothing to exclude yet.
    let r = register_start(&app, &token).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let options = r.body["publicKey"].clone();
    assert_eq!(options["rp"]["id"], RP_ID, "{}", r.text);
    assert_eq!(options["rp"]["name"], RP_ID, "{}", r.text);
    assert_eq!(options["user"]["name"], "anna", "{}", r.text);
    assert_eq!(b64(&options["challenge"]).len(), 32, "{}", r.text);
    let selection = &options["authenticatorSelection"];
    assert_eq!(selection["residentKey"], "preferred", "{}", r.text);
    assert_eq!(selection["userVerification"], "required", "{}", r.text);
    assert_eq!(options["excludeCredentials"], json!([]), "{}", r.text);

    let mut phone = SoftKey::new();
    let credential = phone.create(&r.body, ORIGIN);
    let finish = json!({ "name": "  Telefon ", "credential": credential });
    let r = register_finish(&app, &token, finish.clone()).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["name"], "Telefon");
    assert_eq!(r.body["lastUsedAt"], Value::Null);
    let phone_id = r.body["id"].as_str().unwrap().to_string();
    // The account's first second factor: it gets its recovery codes with it.
    let codes = r.body["recoveryCodes"].as_array().expect("recovery codes");
    assert_eq!(codes.len(), 10, "{}", r.text);
    let recovery = codes[0].as_str().unwrap().to_string();
    // A ceremony finishes once.
    let r = register_finish(&app, &token, finish).await;
    assert_eq!(
        status_of(&r),
        (400, "passkey_rejected".into()),
        "{}",
        r.text
    );

    let r = call(&app, &token, "GET", "/api/auth/mfa", None).await;
    assert_eq!(r.body["totp"], false);
    assert_eq!(r.body["recoveryCodesLeft"], 10);
    let listed = r.body["passkeys"].as_array().unwrap();
    assert_eq!(listed.len(), 1, "{}", r.text);
    assert_eq!(listed[0]["id"], phone_id.as_str());
    assert_eq!(listed[0]["name"], "Telefon");
    assert!(listed[0]["createdAt"].as_str().unwrap().ends_with('Z'));
    assert_eq!(listed[0]["lastUsedAt"], Value::Null);
    // The account's own data export names it (GDPR Art. 15).
    let r = call(&app, &token, "GET", "/api/auth/me/export", None).await;
    assert_eq!(r.body["secondFactors"], json!(["passkey"]), "{}", r.text);
    assert_eq!(r.body["passkeys"][0]["name"], "Telefon", "{}", r.text);

    // A login now takes the passkey (or a recovery code) after the password.
    let (ticket, methods) = first_step(&app, "anna").await;
    assert_eq!(methods, json!(["recovery", "passkey"]));
    let r = app
        .post(
            "/api/auth/login/passkey/start",
            json!({ "mfaToken": ticket }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let allowed = r.body["publicKey"]["allowCredentials"].as_array().unwrap();
    assert_eq!(allowed.len(), 1, "{}", r.text);
    assert_eq!(allowed[0]["id"], B64.encode(&phone.id));
    assert_eq!(r.body["publicKey"]["userVerification"], "required");
    let assertion = phone.get(&r.body);
    let r = app
        .post(
            "/api/auth/login/passkey/finish",
            json!({ "mfaToken": ticket, "credential": assertion }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let access = r.body["accessToken"].as_str().unwrap().to_string();
    assert!(r.body["refreshToken"].is_string());
    // One session per account by default: the new one ends the old, whose tokens may read for
    // their last minutes but not change factors.
    let stale = token;
    let token = access.clone();
    let r = register_start(&app, &stale).await;
    assert_eq!(status_of(&r), (401, "unauthorized".into()), "{}", r.text);
    assert_eq!(claims(&access)["amr"], json!(["pwd", "hwk", "mfa"]));
    // The ticket is spent.
    let r = app
        .post(
            "/api/auth/login/passkey/start",
            json!({ "mfaToken": ticket }),
        )
        .await;
    assert_eq!(
        status_of(&r),
        (401, "mfa_token_invalid".into()),
        "{}",
        r.text
    );
    let r = call(&app, &access, "GET", "/api/auth/mfa", None).await;
    assert!(
        r.body["passkeys"][0]["lastUsedAt"].is_string(),
        "{}",
        r.text
    );

    // A second passkey: the first is excluded from its ceremony, no new recovery codes.
    let r = register_start(&app, &token).await;
    assert_eq!(
        r.body["publicKey"]["excludeCredentials"][0]["id"],
        B64.encode(&phone.id)
    );
    let mut key = SoftKey::new();
    let r = register(&app, &token, &mut key, "YubiKey").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.body.get("recoveryCodes").is_none(), "{}", r.text);
    let key_id = r.body["id"].as_str().unwrap().to_string();
    // The same credential again (a browser would have excluded it) is refused, for this
    // account and for another.
    let r = register_start(&app, &token).await;
    let again = key.create(&r.body, ORIGIN);
    let r = register_finish(&app, &token, json!({ "name": "Copy", "credential": again })).await;
    assert_eq!(
        status_of(&r),
        (400, "passkey_rejected".into()),
        "{}",
        r.text
    );
    let other = signed_up(&app, "bolek").await;
    let r = register(&app, &other, &mut key, "Copy").await;
    assert_eq!(status_of(&r), (409, "passkey_exists".into()), "{}", r.text);

    // A recovery code still works as the second step of an account with passkeys alone.
    let (ticket, _) = first_step(&app, "anna").await;
    let r = app
        .post(
            "/api/auth/login/mfa",
            json!({ "mfaToken": ticket, "recoveryCode": recovery }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let token = r.body["accessToken"].as_str().unwrap().to_string();

    // With the authenticator app as well, a login offers all three; turning the app off keeps
    // the recovery codes while a passkey is left.
    let (secret, _) = crate::mfa::enrol(&app, &token).await;
    let (_, methods) = first_step(&app, "anna").await;
    assert_eq!(methods, json!(["totp", "recovery", "passkey"]));
    let r = call(
        &app,
        &token,
        "DELETE",
        "/api/auth/mfa/totp",
        Some(json!({ "code": crate::mfa::code(&secret, 1) })),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = call(&app, &token, "GET", "/api/auth/mfa", None).await;
    assert_eq!(
        (r.body["totp"].clone(), r.body["recoveryCodesLeft"].clone()),
        (json!(false), json!(10))
    );

    // Removing: another's or an unknown id is not found; removing the last factor ends the
    // two-step login and takes the recovery codes with it.
    let r = call(
        &app,
        &other,
        "DELETE",
        &format!("/api/auth/passkeys/{phone_id}"),
        None,
    )
    .await;
    assert_eq!(r.status, 404, "{}", r.text);
    let r = call(
        &app,
        &token,
        "DELETE",
        &format!("/api/auth/passkeys/{phone_id}"),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body, json!({ "message": "The passkey was removed" }));
    let r = call(
        &app,
        &token,
        "DELETE",
        &format!("/api/auth/passkeys/{phone_id}"),
        None,
    )
    .await;
    assert_eq!(r.status, 404, "{}", r.text);
    let r = call(&app, &token, "GET", "/api/auth/mfa", None).await;
    assert_eq!(r.body["recoveryCodesLeft"], 10, "{}", r.text);
    let r = call(
        &app,
        &token,
        "DELETE",
        &format!("/api/auth/passkeys/{key_id}"),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = call(&app, &token, "GET", "/api/auth/mfa", None).await;
    assert_eq!(
        r.body,
        json!({ "totp": false, "recoveryCodesLeft": 0, "passkeys": [] })
    );
    let r = app.login("anna", PASSWORD).await;
    assert_eq!(r.status, 200, "{}", r.text);

    // The audit trail has both registrations and both removals.
    let enabled = app
        .query_text(
            "SELECT CAST(COUNT(*) AS TEXT) FROM audit_events WHERE action = 'mfa.enabled'",
            &[],
        )
        .await;
    let disabled = app
        .query_text(
            "SELECT CAST(COUNT(*) AS TEXT) FROM audit_events WHERE action = 'mfa.disabled'",
            &[],
        )
        .await;
    assert_eq!(
        (enabled.as_deref(), disabled.as_deref()),
        (Some("3"), Some("3"))
    );
}

async fn a_discoverable_passkey_signs_in_without_a_password(backend: Backend) {
    // A role that must have a second factor: the password alone gives an enrolment-only token,
    // which may register a passkey; the passkey alone then gives a full one.
    let app = app!(backend, |c: &mut brama::config::Config| {
        with_public_url(c);
        c.mfa_required_roles = ["user", "moderator", "admin", "owner"]
            .map(String::from)
            .to_vec();
    });
    let login = app.user("celina").await;
    let token = login["accessToken"].as_str().unwrap().to_string();
    assert_eq!(claims(&token)["mfa"], "enrol");
    let mut key = SoftKey::new();
    let r = register(&app, &token, &mut key, "Laptop").await;
    assert_eq!(r.status, 200, "{}", r.text);

    let r = app.post("/api/auth/passkey/start", json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["publicKey"]["rpId"], RP_ID, "{}", r.text);
    assert_eq!(
        r.body["publicKey"]["allowCredentials"],
        json!([]),
        "{}",
        r.text
    );
    assert!(r.body.get("mediation").is_none(), "{}", r.text);
    let options = r.body.clone();
    let assertion = key.get(&options);
    let r = passwordless(&app, &assertion).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["username"], "celina");
    let access = r.body["accessToken"].as_str().unwrap().to_string();
    let refresh = r.body["refreshToken"].as_str().unwrap().to_string();
    let c = claims(&access);
    assert_eq!(c["amr"], json!(["hwk", "mfa"]));
    assert!(c.get("mfa").is_none(), "a passkey is a second factor: {c}");
    let r = call(&app, &token, "GET", "/api/auth/sessions", None).await;
    assert_eq!(
        status_of(&r),
        (403, "mfa_enrollment_required".into()),
        "{}",
        r.text
    );
    let r = call(&app, &access, "GET", "/api/auth/sessions", None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = call(&app, &access, "GET", "/api/auth/me", None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    // The refresh token it came with rotates into tokens of the same kind.
    let r = app
        .post("/api/auth/refreshtoken", json!({ "refreshToken": refresh }))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        claims(r.body["accessToken"].as_str().unwrap())["amr"],
        json!(["hwk", "mfa"])
    );

    // The same answer again: its ceremony is gone.
    let r = passwordless(&app, &assertion).await;
    assert_eq!(status_of(&r), (401, "passkey_invalid".into()), "{}", r.text);

    // The authenticator's counter is kept: an answer with a counter not above the last one
    // (a cloned authenticator) is refused.
    let options = app.post("/api/auth/passkey/start", json!({})).await.body;
    key.counter -= 1;
    let stale = key.get(&options);
    let r = passwordless(&app, &stale).await;
    assert_eq!(status_of(&r), (401, "passkey_invalid".into()), "{}", r.text);

    // A credential brama never registered, or one claiming another account: refused.
    let options = app.post("/api/auth/passkey/start", json!({})).await.body;
    let mut stranger = SoftKey::new();
    stranger.user = key.user.clone();
    let r = passwordless(&app, &stranger.get(&options)).await;
    assert_eq!(status_of(&r), (401, "passkey_invalid".into()), "{}", r.text);
    let options = app.post("/api/auth/passkey/start", json!({})).await.body;
    let mut answer = key.get(&options);
    answer["response"]["userHandle"] = json!(B64.encode(uuid::Uuid::now_v7().as_bytes()));
    let r = passwordless(&app, &answer).await;
    assert_eq!(status_of(&r), (401, "passkey_invalid".into()), "{}", r.text);

    // Still fine with a fresh ceremony.
    let options = app.post("/api/auth/passkey/start", json!({})).await.body;
    let r = passwordless(&app, &key.get(&options)).await;
    assert_eq!(r.status, 200, "{}", r.text);

    // A ceremony not finished within five minutes is gone (and the janitor's litter).
    let options = app.post("/api/auth/passkey/start", json!({})).await.body;
    app.execute_sql("UPDATE webauthn_ceremonies SET expires_at = 0", &[])
        .await;
    let r = passwordless(&app, &key.get(&options)).await;
    assert_eq!(status_of(&r), (401, "passkey_invalid".into()), "{}", r.text);
    app.post("/api/auth/passkey/start", json!({})).await;
    let count = "SELECT CAST(COUNT(*) AS TEXT) FROM webauthn_ceremonies";
    assert_eq!(app.query_text(count, &[]).await.as_deref(), Some("1"));
    let later = brama::core::now_ms() + 6 * 60 * 1000;
    let tidied = app
        .core
        .janitor_pass(later)
        .await
        .unwrap()
        .expect("the lease");
    assert_eq!(tidied.webauthn_ceremonies, 1);
    assert_eq!(app.query_text(count, &[]).await.as_deref(), Some("0"));

    // A reset of a lost factor (`brama user reset-mfa`) removes passkeys too.
    app.core.reset_mfa_of("celina").await.expect("reset");
    let options = app.post("/api/auth/passkey/start", json!({})).await.body;
    let r = passwordless(&app, &key.get(&options)).await;
    assert_eq!(status_of(&r), (401, "passkey_invalid".into()), "{}", r.text);
}

async fn bad_webauthn_answers_are_clear_4xx_and_counted(backend: Backend) {
    let app = app!(backend, with_public_url);
    let token = signed_up(&app, "darek").await;

    // Registration: the name and the credential are checked.
    let r = register_start(&app, &token).await;
    let mut key = SoftKey::new();
    let credential = key.create(&r.body, ORIGIN);
    for (body, field) in [
        (json!({ "credential": credential }), "name"),
        (
            json!({ "name": "x".repeat(65), "credential": credential }),
            "name",
        ),
        (json!({ "name": 7, "credential": credential }), "name"),
        (json!({ "name": "Telefon" }), "credential"),
    ] {
        let r = register_finish(&app, &token, body).await;
        assert_eq!(
            status_of(&r),
            (400, "validation_failed".into()),
            "{}",
            r.text
        );
        assert!(r.text.contains(field), "{}", r.text);
    }
    for malformed in [
        json!("text"),
        json!({ "id": 5 }),
        json!({ "id": "a", "rawId": "a", "type": "public-key", "response": { "attestationObject": "AA", "clientDataJSON": "not json" } }),
    ] {
        let r = register_finish(
            &app,
            &token,
            json!({ "name": "X", "credential": malformed }),
        )
        .await;
        assert_eq!(
            status_of(&r),
            (400, "credential_malformed".into()),
            "{}",
            r.text
        );
    }
    // An answer made for another relying party does not register.
    let r = register_start(&app, &token).await;
    let mut options = r.body.clone();
    options["publicKey"]["rp"]["id"] = json!("evil.example");
    let foreign = key.create(&options, "https://evil.example");
    let r = register_finish(&app, &token, json!({ "name": "X", "credential": foreign })).await;
    assert_eq!(
        status_of(&r),
        (400, "passkey_rejected".into()),
        "{}",
        r.text
    );
    let r = register(&app, &token, &mut key, "Telefon").await;
    assert_eq!(r.status, 200, "{}", r.text);

    // The second step: five wrong answers of any kind void the ticket.
    let (ticket, _) = first_step(&app, "darek").await;
    let start = async || {
        app.post(
            "/api/auth/login/passkey/start",
            json!({ "mfaToken": ticket }),
        )
        .await
        .body
    };
    let finish = async |credential: Value| {
        app.post(
            "/api/auth/login/passkey/finish",
            json!({ "mfaToken": ticket, "credential": credential }),
        )
        .await
    };
    let r = finish(json!({ "id": true })).await;
    assert_eq!(
        status_of(&r),
        (400, "credential_malformed".into()),
        "{}",
        r.text
    );
    let r = finish(json!([1, 2, 3])).await;
    assert_eq!(
        status_of(&r),
        (400, "credential_malformed".into()),
        "{}",
        r.text
    );
    let options = start().await;
    let r = finish(key.get_as(&options, "evil.example", "https://evil.example")).await;
    assert_eq!(status_of(&r), (401, "passkey_invalid".into()), "{}", r.text);
    let options = start().await;
    let r = finish(key.get_as(&options, RP_ID, "https://evil.example")).await;
    assert_eq!(status_of(&r), (401, "passkey_invalid".into()), "{}", r.text);
    let options = start().await;
    let mut tampered = key.get(&options);
    let mut signature = b64(&tampered["response"]["signature"]);
    let last = signature.len() - 1;
    signature[last] ^= 1;
    tampered["response"]["signature"] = json!(B64.encode(signature));
    let r = finish(tampered).await;
    assert_eq!(status_of(&r), (401, "passkey_invalid".into()), "{}", r.text);
    let r = app
        .post(
            "/api/auth/login/passkey/start",
            json!({ "mfaToken": ticket }),
        )
        .await;
    assert_eq!(
        status_of(&r),
        (401, "mfa_token_invalid".into()),
        "{}",
        r.text
    );
    let failed = app
        .query_text(
            "SELECT CAST(COUNT(*) AS TEXT) FROM audit_events WHERE action = 'mfa.failed'",
            &[],
        )
        .await;
    assert_eq!(failed.as_deref(), Some("5"));

    // A fresh ticket works; a ceremony of one ticket does not serve another.
    let (ticket, _) = first_step(&app, "darek").await;
    let (other, _) = first_step(&app, "darek").await;
    let options = app
        .post(
            "/api/auth/login/passkey/start",
            json!({ "mfaToken": other }),
        )
        .await
        .body;
    let r = app
        .post(
            "/api/auth/login/passkey/finish",
            json!({ "mfaToken": ticket, "credential": key.get(&options) }),
        )
        .await;
    assert_eq!(status_of(&r), (401, "passkey_invalid".into()), "{}", r.text);
    let options = app
        .post(
            "/api/auth/login/passkey/start",
            json!({ "mfaToken": ticket }),
        )
        .await
        .body;
    let r = app
        .post(
            "/api/auth/login/passkey/finish",
            json!({ "mfaToken": ticket, "credential": key.get(&options) }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);

    // Tickets and fields: unknown ticket, missing fields, an account without passkeys.
    let r = app
        .post(
            "/api/auth/login/passkey/start",
            json!({ "mfaToken": "nope" }),
        )
        .await;
    assert_eq!(
        status_of(&r),
        (401, "mfa_token_invalid".into()),
        "{}",
        r.text
    );
    let r = app.post("/api/auth/login/passkey/start", json!({})).await;
    assert_eq!(
        status_of(&r),
        (400, "validation_failed".into()),
        "{}",
        r.text
    );
    let r = app
        .post("/api/auth/login/passkey/finish", json!({ "mfaToken": "x" }))
        .await;
    assert_eq!(
        status_of(&r),
        (400, "validation_failed".into()),
        "{}",
        r.text
    );
    assert!(r.text.contains("credential"), "{}", r.text);
    let r = app.post("/api/auth/passkey/finish", json!({})).await;
    assert_eq!(
        status_of(&r),
        (400, "validation_failed".into()),
        "{}",
        r.text
    );
    let r = app
        .post(
            "/api/auth/passkey/finish",
            json!({ "credential": { "response": 1 } }),
        )
        .await;
    assert_eq!(
        status_of(&r),
        (400, "credential_malformed".into()),
        "{}",
        r.text
    );
    let response = app
        .client
        .post(app.url("/api/auth/passkey/finish"))
        .header("content-type", "application/json")
        .body("{\"credential\":")
        .send()
        .await
        .unwrap();
    let r = app.read(response).await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.body["message"].is_string(), "{}", r.text);
}

async fn ceremonies_started_on_one_node_finish_on_another(backend: Backend) {
    let one = app!(backend, with_public_url);
    let two = one.sibling(|_| {}).await;
    let token = signed_up(&one, "ela").await;
    let mut key = SoftKey::new();

    // Registration: started on one, finished on two.
    let r = register_start(&one, &token).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let credential = key.create(&r.body, ORIGIN);
    let r = register_finish(
        &two,
        &token,
        json!({ "name": "Telefon", "credential": credential }),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);

    // Second step: ticket and ceremony from two, finished on one.
    let (ticket, _) = first_step(&two, "ela").await;
    let options = two
        .post(
            "/api/auth/login/passkey/start",
            json!({ "mfaToken": ticket }),
        )
        .await
        .body;
    let r = one
        .post(
            "/api/auth/login/passkey/finish",
            json!({ "mfaToken": ticket, "credential": key.get(&options) }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);

    // Passwordless: started on one, finished on two; and the reverse.
    let options = one.post("/api/auth/passkey/start", json!({})).await.body;
    let r = passwordless(&two, &key.get(&options)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let options = two.post("/api/auth/passkey/start", json!({})).await.body;
    let answer = key.get(&options);
    let r = passwordless(&one, &answer).await;
    assert_eq!(r.status, 200, "{}", r.text);
    // ... once: the other node does not finish it again.
    let r = passwordless(&two, &answer).await;
    assert_eq!(status_of(&r), (401, "passkey_invalid".into()), "{}", r.text);
}

async fn ceremonies_started_without_a_token_are_limited_per_address(backend: Backend) {
    // One failed login per address allowed: ten ceremonies.
    let app = app!(backend, |c: &mut brama::config::Config| {
        with_public_url(c);
        c.failed_logins_per_ip = 1;
    });
    for n in 0..10 {
        let r = app.post("/api/auth/passkey/start", json!({})).await;
        assert_eq!(r.status, 200, "start {n}: {}", r.text);
    }
    let r = app.post("/api/auth/passkey/start", json!({})).await;
    assert_eq!(status_of(&r), (429, "rate_limited".into()), "{}", r.text);
    assert!(r.headers.get("retry-after").is_some(), "{:?}", r.headers);
    let r = app
        .post("/api/auth/login/passkey/start", json!({ "mfaToken": "x" }))
        .await;
    assert_eq!(r.status, 429, "{}", r.text);
    let count = "SELECT CAST(COUNT(*) AS TEXT) FROM webauthn_ceremonies";
    assert_eq!(app.query_text(count, &[]).await.as_deref(), Some("10"));
}

async fn an_account_with_passkeys_alone_is_guarded_and_never_locked_out(backend: Backend) {
    let app = app!(backend, with_public_url);
    let token = signed_up(&app, "franek").await;
    let mut key = SoftKey::new();
    let r = register(&app, &token, &mut key, "Telefon").await;
    assert_eq!(r.status, 200, "{}", r.text);
    let passkey_id = r.body["id"].as_str().unwrap().to_string();

    // There is no TOTP to turn off: refused before any recovery code is spent.
    let code = r.body["recoveryCodes"][0].as_str().unwrap().to_string();
    let r = call(
        &app,
        &token,
        "DELETE",
        "/api/auth/mfa/totp",
        Some(json!({ "code": code })),
    )
    .await;
    assert_eq!(
        status_of(&r),
        (409, "totp_not_started".into()),
        "{}",
        r.text
    );
    let r = call(&app, &token, "GET", "/api/auth/mfa", None).await;
    assert_eq!(r.body["recoveryCodesLeft"], 10, "{}", r.text);

    // The Company API has no passkey step: it offers the codes only.
    let r = app
        .post(
            "/web/auth",
            json!({ "email": "franek@example.com", "password": PASSWORD }),
        )
        .await;
    assert_eq!(r.body["status"], "mfa_required", "{}", r.text);
    assert_eq!(r.body["data"]["methods"], json!(["recovery"]), "{}", r.text);

    // New recovery codes without a code: only from a session opened with the passkey.
    let r = call(
        &app,
        &token,
        "POST",
        "/api/auth/mfa/recovery-codes",
        Some(json!({})),
    )
    .await;
    assert_eq!(
        status_of(&r),
        (400, "validation_failed".into()),
        "{}",
        r.text
    );
    let options = app.post("/api/auth/passkey/start", json!({})).await.body;
    let r = passwordless(&app, &key.get(&options)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let by_passkey = r.body["accessToken"].as_str().unwrap().to_string();
    let r = call(
        &app,
        &by_passkey,
        "POST",
        "/api/auth/mfa/recovery-codes",
        Some(json!({})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["recoveryCodes"].as_array().unwrap().len(), 10);

    // A second-step ceremony is checked against the counter as it is at the finish, not as it
    // was at the start: a use in between (here a passwordless one) makes a replayed count stale.
    let (ticket, _) = first_step(&app, "franek").await;
    let started = app
        .post(
            "/api/auth/login/passkey/start",
            json!({ "mfaToken": ticket }),
        )
        .await
        .body;
    let options = app.post("/api/auth/passkey/start", json!({})).await.body;
    let r = passwordless(&app, &key.get(&options)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let latest = r.body["accessToken"].as_str().unwrap().to_string();
    key.counter -= 1;
    let r = app
        .post(
            "/api/auth/login/passkey/finish",
            json!({ "mfaToken": ticket, "credential": key.get(&started) }),
        )
        .await;
    assert_eq!(status_of(&r), (401, "passkey_invalid".into()), "{}", r.text);

    // Adding or removing a passkey takes a sign-in of the last 15 minutes (the clock moved by
    // ageing the sessions instead of waiting).
    app.execute_sql("UPDATE sessions SET created_at = created_at - 1200000", &[])
        .await;
    let r = register_start(&app, &latest).await;
    assert_eq!(
        status_of(&r),
        (403, "reauthentication_required".into()),
        "{}",
        r.text
    );
    let r = call(
        &app,
        &latest,
        "DELETE",
        &format!("/api/auth/passkeys/{passkey_id}"),
        None,
    )
    .await;
    assert_eq!(
        status_of(&r),
        (403, "reauthentication_required".into()),
        "{}",
        r.text
    );
    let r = call(
        &app,
        &latest,
        "POST",
        "/api/auth/mfa/recovery-codes",
        Some(json!({})),
    )
    .await;
    assert_eq!(
        status_of(&r),
        (403, "reauthentication_required".into()),
        "{}",
        r.text
    );
    // A fresh sign-in may.
    let options = app.post("/api/auth/passkey/start", json!({})).await.body;
    let fresh = passwordless(&app, &key.get(&options)).await.body["accessToken"]
        .as_str()
        .unwrap()
        .to_string();
    let r = call(
        &app,
        &fresh,
        "DELETE",
        &format!("/api/auth/passkeys/{passkey_id}"),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
}
