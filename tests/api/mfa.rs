//! SPEC §13: a second factor. TOTP codes are computed here from the secret brama hands out, with
//! `totp-rs` directly (not brama's own wrapper), as an authenticator app would.

use serde_json::{Value, json};
use totp_rs::{Algorithm, Builder, Secret};

use crate::helpers::{Backend, Resp, TestApp};
use crate::{app, both_backends};

both_backends!(
    totp_is_enrolled_confirmed_used_once_and_disabled,
    recovery_codes_work_once_and_new_ones_replace_them,
    wrong_codes_are_refused_counted_and_limited,
    a_data_key_rotation_reseals_totp_secrets,
    an_account_with_totp_logs_in_in_two_steps_on_both_surfaces,
    a_login_ticket_is_single_use_and_takes_five_wrong_codes,
    an_admin_or_the_command_line_removes_a_lost_factor,
    a_role_that_requires_a_factor_gets_an_enrolment_only_token,
    the_second_step_in_browser_mode_needs_csrf_and_answers_with_the_cookie,
);

/// The code of the step `offset` steps from now for a base32 secret.
pub(crate) fn code(secret: &str, offset: i64) -> String {
    let totp = Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(6)
        .with_step_duration(30)
        .with_secret(Secret::try_from_base32(secret).expect("base32"))
        .build()
        .expect("an RFC 6238 secret");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    totp.generate((now + offset * 30) as u64).to_string()
}

/// `method path` with `body` as the holder of `token`.
async fn call(app: &TestApp, token: &str, method: &str, path: &str, body: Option<Value>) -> Resp {
    app.request(method, path, body, &[("x-access-token", token)])
        .await
}

/// A logged-in account; its access token.
async fn account(app: &TestApp, name: &str) -> String {
    app.user(name).await["accessToken"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Enrols and confirms TOTP for the token's account; its secret and recovery codes.
pub(crate) async fn enrol(app: &TestApp, token: &str) -> (String, Vec<String>) {
    let r = call(app, token, "POST", "/api/auth/mfa/totp", None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let secret = r.body["secret"].as_str().unwrap().to_string();
    let r = call(
        app,
        token,
        "POST",
        "/api/auth/mfa/totp/confirm",
        Some(json!({ "code": code(&secret, 0) })),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let codes = r.body["recoveryCodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    (secret, codes)
}

fn status_of(r: &Resp) -> (u16, String) {
    (r.status, r.code().to_string())
}

async fn totp_is_enrolled_confirmed_used_once_and_disabled(backend: Backend) {
    let app = app!(backend);
    let token = account(&app, "anna").await;
    let r = call(&app, &token, "GET", "/api/auth/mfa", None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.body,
        json!({ "totp": false, "recoveryCodesLeft": 0, "passkeys": [] })
    );

    // The secret three ways: as text, as an otpauth URI, and as that URI's QR code.
    let r = call(&app, &token, "POST", "/api/auth/mfa/totp", None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let secret = r.body["secret"].as_str().unwrap().to_string();
    assert_eq!(secret.len(), 32, "160 bits in base32: {secret}");
    assert_eq!(
        Secret::try_from_base32(&secret).unwrap().as_bytes().len(),
        20
    );
    let uri = r.body["otpauthUri"].as_str().unwrap();
    assert!(uri.starts_with("otpauth://totp/"), "{uri}");
    assert!(uri.contains(":anna?"), "{uri}");
    assert!(uri.contains(&format!("secret={secret}&")), "{uri}");
    assert!(uri.contains("algorithm=SHA1&digits=6&period=30"), "{uri}");
    let svg = r.body["qrSvg"].as_str().unwrap();
    assert!(svg.contains("<svg") && svg.contains("</svg>"), "{svg}");
    // Not on until confirmed.
    let r = call(&app, &token, "GET", "/api/auth/mfa", None).await;
    assert_eq!(r.body["totp"], false);

    // A second start before confirming replaces the secret: the first one's codes no longer
    // confirm.
    let r = call(&app, &token, "POST", "/api/auth/mfa/totp", None).await;
    let secret2 = r.body["secret"].as_str().unwrap().to_string();
    assert_ne!(secret2, secret);
    let r = call(
        &app,
        &token,
        "POST",
        "/api/auth/mfa/totp/confirm",
        Some(json!({ "code": code(&secret, 0) })),
    )
    .await;
    assert_eq!(status_of(&r), (401, "invalid_code".into()), "{}", r.text);
    let confirm = code(&secret2, 0);
    let r = call(
        &app,
        &token,
        "POST",
        "/api/auth/mfa/totp/confirm",
        Some(json!({ "code": confirm })),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let codes = r.body["recoveryCodes"].as_array().unwrap();
    assert_eq!(codes.len(), 10, "{}", r.text);
    let r = call(&app, &token, "GET", "/api/auth/mfa", None).await;
    assert_eq!(
        r.body,
        json!({ "totp": true, "recoveryCodesLeft": 10, "passkeys": [] })
    );
    let r = call(&app, &token, "GET", "/api/auth/me/export", None).await;
    assert_eq!(r.body["secondFactors"], json!(["totp"]), "{}", r.text);
    // On already: a new secret needs it off first.
    let r = call(&app, &token, "POST", "/api/auth/mfa/totp", None).await;
    assert_eq!(status_of(&r), (409, "totp_enabled".into()), "{}", r.text);

    // The secret is sealed in the database, never in clear.
    let stored = app
        .query_text("SELECT secret FROM totp_factors", &[])
        .await
        .expect("a factor");
    assert!(stored.starts_with("v1."), "{stored}");
    assert!(!stored.contains(&secret2));

    // The code that confirmed cannot be used again (replay), the next step's can.
    let r = call(
        &app,
        &token,
        "DELETE",
        "/api/auth/mfa/totp",
        Some(json!({ "code": confirm })),
    )
    .await;
    assert_eq!(status_of(&r), (401, "invalid_code".into()), "{}", r.text);
    let r = call(
        &app,
        &token,
        "DELETE",
        "/api/auth/mfa/totp",
        Some(json!({ "code": code(&secret2, 1) })),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(!r.message().is_empty(), "{}", r.text);
    let r = call(&app, &token, "GET", "/api/auth/mfa", None).await;
    assert_eq!(
        r.body,
        json!({ "totp": false, "recoveryCodesLeft": 0, "passkeys": [] })
    );
    assert_eq!(
        app.query_text("SELECT CAST(COUNT(*) AS TEXT) FROM recovery_codes", &[])
            .await
            .as_deref(),
        Some("0")
    );

    // The account's own trail: enabled, a failed code, disabled.
    let r = call(&app, &token, "GET", "/api/auth/me/export", None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let actions: Vec<&str> = r.body["auditLog"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    for action in ["mfa.enabled", "mfa.failed", "mfa.disabled"] {
        assert!(actions.contains(&action), "{action} not in {actions:?}");
    }
    assert!(!r.text.contains(&secret2), "the secret in an export");
}

async fn recovery_codes_work_once_and_new_ones_replace_them(backend: Backend) {
    let app = app!(backend);
    let token = account(&app, "bogdan").await;
    let (_, codes) = enrol(&app, &token).await;
    let distinct: std::collections::HashSet<_> = codes.iter().collect();
    assert_eq!(distinct.len(), 10);
    for c in &codes {
        assert_eq!(c.len(), 19, "{c}");
        assert!(
            c.chars()
                .all(|ch| ch == '-' || ch.is_ascii_uppercase() || ch.is_ascii_digit()),
            "{c}"
        );
    }
    // A recovery code proves the factor once, typed however (lower case, spaces).
    let typed = codes[0].to_lowercase().replace('-', " ");
    let r = call(
        &app,
        &token,
        "POST",
        "/api/auth/mfa/recovery-codes",
        Some(json!({ "code": typed })),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let fresh: Vec<String> = r.body["recoveryCodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    assert_eq!(fresh.len(), 10);
    assert!(fresh.iter().all(|c| !codes.contains(c)));
    // The old ones stopped working, the used one and the unused alike.
    for old in [&codes[0], &codes[1]] {
        let r = call(
            &app,
            &token,
            "POST",
            "/api/auth/mfa/recovery-codes",
            Some(json!({ "code": old })),
        )
        .await;
        assert_eq!(status_of(&r), (401, "invalid_code".into()), "{}", r.text);
    }
    // A new one is spent by use: 9 left, and it does not work twice.
    let r = call(
        &app,
        &token,
        "DELETE",
        "/api/auth/mfa/totp",
        Some(json!({ "code": "0000-0000-0000-0000" })),
    )
    .await;
    assert_eq!(status_of(&r), (401, "invalid_code".into()), "{}", r.text);
    let hashes = app
        .query_text(
            "SELECT code_hash FROM recovery_codes ORDER BY code_hash LIMIT 1",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(hashes.len(), 64, "stored as SHA-256: {hashes}");
    for c in &fresh {
        assert!(!hashes.contains(&c.replace('-', "")));
    }
    let r = call(
        &app,
        &token,
        "DELETE",
        "/api/auth/mfa/totp",
        Some(json!({ "code": fresh[3] })),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
}

async fn wrong_codes_are_refused_counted_and_limited(backend: Backend) {
    let app = app!(backend, |c: &mut brama::config::Config| {
        c.failed_logins_per_account = 3
    });
    let token = account(&app, "celina").await;
    // Before any enrolment: nothing to confirm.
    let r = call(
        &app,
        &token,
        "POST",
        "/api/auth/mfa/totp/confirm",
        Some(json!({ "code": "123456" })),
    )
    .await;
    assert_eq!(
        status_of(&r),
        (409, "totp_not_started".into()),
        "{}",
        r.text
    );
    let (secret, _) = enrol(&app, &token).await;
    // A missing code is a validation error naming the field, not a wrong code.
    let r = call(
        &app,
        &token,
        "DELETE",
        "/api/auth/mfa/totp",
        Some(json!({})),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.text.contains("code"), "{}", r.text);
    let right = code(&secret, 1);
    let wrong: Vec<String> = ["000000", "12345", "1234567", "abcdef"]
        .iter()
        .map(|s| s.to_string())
        .filter(|w| *w != right)
        .collect();
    let mut limited = false;
    for w in wrong.iter().cycle().take(6) {
        let r = call(
            &app,
            &token,
            "DELETE",
            "/api/auth/mfa/totp",
            Some(json!({ "code": w })),
        )
        .await;
        match r.status {
            401 => assert_eq!(r.code(), "invalid_code", "{}", r.text),
            429 => {
                assert!(r.headers.contains_key("retry-after"), "{:?}", r.headers);
                limited = true;
                break;
            }
            _ => panic!("{}", r.text),
        }
    }
    assert!(limited, "wrong codes were not limited");
    // Even the right code waits now.
    let r = call(
        &app,
        &token,
        "DELETE",
        "/api/auth/mfa/totp",
        Some(json!({ "code": right })),
    )
    .await;
    assert_eq!(r.status, 429, "{}", r.text);
    let r = call(&app, &token, "GET", "/api/auth/mfa", None).await;
    assert_eq!(r.body["totp"], true);
}

/// `brama data-key rotate` re-seals TOTP secrets with the PESELs (SPEC §12, §13): the old key
/// is retired only once none is left under it, and the factor still works afterwards.
async fn a_data_key_rotation_reseals_totp_secrets(backend: Backend) {
    let app = app!(backend);
    let token = account(&app, "dorota").await;
    let (secret, _) = enrol(&app, &token).await;
    let key_file = app.dir().join("data.key");
    let old = brama::crypto::datakey::DataKeys::read(&key_file)
        .unwrap()
        .unwrap()
        .current()
        .to_string();
    let rotation = app
        .core
        .rotate_data_key(std::time::Duration::ZERO, &|_, _| {})
        .await
        .expect("rotated");
    assert_eq!(rotation.reencrypted, 1, "the one TOTP secret");
    assert_eq!(rotation.retired, vec![old.clone()]);
    let stored = app
        .query_text("SELECT secret FROM totp_factors", &[])
        .await
        .unwrap();
    assert!(
        stored.starts_with(&format!("v1.{}.", rotation.key)),
        "{stored} under {}",
        rotation.key
    );
    // The authenticator's codes still prove the factor.
    let r = call(
        &app,
        &token,
        "DELETE",
        "/api/auth/mfa/totp",
        Some(json!({ "code": code(&secret, 1) })),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
}

/// The `amr` claim of an access token (read from its payload, as a client would).
fn amr(access: &str) -> Value {
    use base64::Engine;
    let payload = access.split('.').nth(1).expect("a JWT");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice::<Value>(&bytes).unwrap()["amr"].clone()
}

/// A password login of an account with TOTP: the 401 with its ticket, no tokens.
async fn first_step(app: &TestApp, name: &str) -> String {
    let r = app.login(name, crate::helpers::PASSWORD).await;
    assert_eq!(r.status, 401, "{}", r.text);
    assert_eq!(r.body["code"], "mfa_required", "{}", r.text);
    assert_eq!(r.body["message"], "Second factor required");
    assert_eq!(r.body["methods"], json!(["totp", "recovery"]));
    assert!(r.body.get("accessToken").is_none() && r.body.get("refreshToken").is_none());
    assert!(r.headers.get("set-cookie").is_none(), "{:?}", r.headers);
    r.body["mfaToken"].as_str().unwrap().to_string()
}

async fn an_account_with_totp_logs_in_in_two_steps_on_both_surfaces(backend: Backend) {
    let app = app!(backend);
    let login = app.user("ewa").await;
    assert_eq!(amr(login["accessToken"].as_str().unwrap()), json!(["pwd"]));
    let token = login["accessToken"].as_str().unwrap().to_string();
    let (secret, codes) = enrol(&app, &token).await;

    // Membership API: password, then a code from the app.
    let ticket = first_step(&app, "ewa").await;
    let r = app
        .post(
            "/api/auth/login/mfa",
            json!({ "mfaToken": ticket, "code": code(&secret, 1) }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["username"], "ewa");
    assert_eq!(r.body["roles"], login["roles"]);
    let access = r.body["accessToken"].as_str().unwrap().to_string();
    assert_eq!(amr(&access), json!(["pwd", "otp", "mfa"]));
    let r = call(&app, &access, "GET", "/api/auth/me", None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    // The session keeps how it was opened: a refreshed token says so too.
    let second = ticket_login(&app, "ewa", &codes[0]).await;
    let r = app
        .post(
            "/api/auth/refreshtoken",
            json!({ "refreshToken": second["refreshToken"] }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        amr(r.body["accessToken"].as_str().unwrap()),
        json!(["pwd", "otp", "mfa"])
    );

    // Company API: `/web/auth` answers 200 with status mfa_required, `/web/auth/mfa` signs in.
    let r = app
        .post(
            "/web/auth",
            json!({ "email": "ewa@example.com", "password": crate::helpers::PASSWORD }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["status"], "mfa_required", "{}", r.text);
    assert_eq!(r.body["msg"], json!([]));
    assert!(!r.body["info"].as_str().unwrap().is_empty());
    assert_eq!(r.body["data"]["methods"], json!(["totp", "recovery"]));
    assert!(r.body["data"].get("access").is_none());
    let ticket = r.body["data"]["mfaToken"].as_str().unwrap().to_string();
    let r = app
        .post(
            "/web/auth/mfa",
            json!({ "mfaToken": ticket, "code": codes[1] }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["status"], "success", "{}", r.text);
    assert_eq!(
        r.body["data"]["role"], "Owner",
        "the first account owns the organization"
    );
    assert_eq!(
        amr(r.body["data"]["access"].as_str().unwrap()),
        json!(["pwd", "otp", "mfa"])
    );
    // A recovery code signs in once.
    let ticket = first_step(&app, "ewa").await;
    let r = app
        .post(
            "/api/auth/login/mfa",
            json!({ "mfaToken": ticket, "recoveryCode": codes[1] }),
        )
        .await;
    assert_eq!(status_of(&r), (401, "invalid_code".into()), "{}", r.text);
}

/// Logs in through both steps with a recovery code; the login answer.
async fn ticket_login(app: &TestApp, name: &str, recovery: &str) -> Value {
    let ticket = first_step(app, name).await;
    let r = app
        .post(
            "/api/auth/login/mfa",
            json!({ "mfaToken": ticket, "recoveryCode": recovery }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body
}

async fn a_login_ticket_is_single_use_and_takes_five_wrong_codes(backend: Backend) {
    let app = app!(backend);
    let token = account(&app, "filip").await;
    let (secret, codes) = enrol(&app, &token).await;
    let right = code(&secret, 1);

    // Five wrong codes and the ticket is void, even for the right one.
    let ticket = first_step(&app, "filip").await;
    for _ in 0..5 {
        let r = app
            .post(
                "/api/auth/login/mfa",
                json!({ "mfaToken": ticket, "code": if right == "000000" { "111111" } else { "000000" } }),
            )
            .await;
        assert_eq!(status_of(&r), (401, "invalid_code".into()), "{}", r.text);
    }
    let r = app
        .post(
            "/api/auth/login/mfa",
            json!({ "mfaToken": ticket, "code": right }),
        )
        .await;
    assert_eq!(
        status_of(&r),
        (401, "mfa_token_invalid".into()),
        "{}",
        r.text
    );

    // A ticket signs in once.
    let ticket = first_step(&app, "filip").await;
    let r = app
        .post(
            "/api/auth/login/mfa",
            json!({ "mfaToken": ticket, "recoveryCode": codes[0] }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = app
        .post(
            "/api/auth/login/mfa",
            json!({ "mfaToken": ticket, "recoveryCode": codes[1] }),
        )
        .await;
    assert_eq!(
        status_of(&r),
        (401, "mfa_token_invalid".into()),
        "{}",
        r.text
    );

    // Unknown tickets and missing fields.
    let r = app
        .post(
            "/api/auth/login/mfa",
            json!({ "mfaToken": "nope", "code": right }),
        )
        .await;
    assert_eq!(
        status_of(&r),
        (401, "mfa_token_invalid".into()),
        "{}",
        r.text
    );
    let r = app
        .post("/api/auth/login/mfa", json!({ "code": right }))
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.text.contains("mfaToken"), "{}", r.text);
    let r = app
        .post("/api/auth/login/mfa", json!({ "mfaToken": ticket }))
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.text.contains("code"), "{}", r.text);
    // Tickets are litter once expired: the janitor deletes them (two were made here).
    let count = "SELECT CAST(COUNT(*) AS TEXT) FROM mfa_tickets";
    assert_eq!(app.query_text(count, &[]).await.as_deref(), Some("2"));
    let later = brama::core::now_ms() + 6 * 60 * 1000;
    let tidied = app
        .core
        .janitor_pass(later)
        .await
        .unwrap()
        .expect("the lease");
    assert_eq!(tidied.mfa_tickets, 2);
    assert_eq!(app.query_text(count, &[]).await.as_deref(), Some("0"));

    let r = app
        .post(
            "/web/auth/mfa",
            json!({ "mfaToken": "nope", "code": right }),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(r.body["status"], "error", "{}", r.text);
    assert_eq!(
        r.body["info"], "Шаг входа истёк или уже использован: войдите снова",
        "{}",
        r.text
    );
}

/// SPEC §13, lost factor: an admin (role rules of §2) or `brama user reset-mfa` removes every
/// factor of an account and ends its sessions; the password alone signs in again.
async fn an_admin_or_the_command_line_removes_a_lost_factor(backend: Backend) {
    let app = app!(backend);
    let olga = app.user("olga").await;
    let (olga, owner) = (
        olga["id"].as_str().unwrap().to_string(),
        olga["accessToken"].as_str().unwrap().to_string(),
    );
    let login = app.user("piotr").await;
    let piotr = login["id"].as_str().unwrap().to_string();
    let token = login["accessToken"].as_str().unwrap().to_string();
    enrol(&app, &token).await;
    let path = format!("/api/admin/accounts/{piotr}/mfa");

    // Not the account itself (a user), and nobody for their own account.
    let r = call(&app, &token, "DELETE", &path, None).await;
    assert_eq!(r.status, 403, "{}", r.text);
    let own = format!("/api/admin/accounts/{olga}/mfa");
    let r = call(&app, &owner, "DELETE", &own, None).await;
    assert_eq!(
        status_of(&r),
        (403, "cannot_change_self".into()),
        "{}",
        r.text
    );
    let r = call(&app, &token, "GET", "/api/auth/mfa", None).await;
    assert_eq!(r.body["totp"], true, "nothing was removed");

    let r = call(&app, &owner, "DELETE", &path, None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.body["message"],
        "The account's second factors were removed and its sessions ended"
    );
    // Its sessions ended: the refresh token of its last session no longer works.
    let r = app
        .post(
            "/api/auth/refreshtoken",
            json!({ "refreshToken": login["refreshToken"] }),
        )
        .await;
    assert_ne!(r.status, 200, "{}", r.text);
    // The password alone signs in, with no second step.
    let r = app.login("piotr", crate::helpers::PASSWORD).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let token = r.body["accessToken"].as_str().unwrap().to_string();
    let r = call(&app, &token, "GET", "/api/auth/mfa", None).await;
    assert_eq!(
        r.body,
        json!({ "totp": false, "recoveryCodesLeft": 0, "passkeys": [] })
    );
    let r = call(&app, &owner, "GET", "/api/admin/audit", None).await;
    let reset = r
        .body
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "mfa.reset");
    let reset = reset.unwrap_or_else(|| panic!("no mfa.reset in {}", r.text));
    assert_eq!(reset["target"], piotr.as_str());
    assert_eq!(reset["actor"], olga.as_str());

    // The command line, for when no admin can sign in either.
    enrol(&app, &token).await;
    if backend == Backend::Sqlite {
        let mut cmd = crate::process::brama(app.dir());
        cmd.env("BRAMA_DATA_DIR", app.dir())
            .args(["user", "reset-mfa", "--username", "piotr"]);
        let out = crate::process::run(cmd, "").await;
        let said = crate::process::text(&out.stdout);
        assert!(
            out.status.success(),
            "{said}{}",
            crate::process::text(&out.stderr)
        );
        assert!(said.contains(&piotr), "{said}");
    } else {
        app.core.reset_mfa_of("piotr").await.expect("reset");
    }
    let r = app.login("piotr", crate::helpers::PASSWORD).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let mut cmd = crate::process::brama(app.dir());
    cmd.env("BRAMA_DATA_DIR", app.dir())
        .args(["user", "reset-mfa", "--username", "nobody"]);
    if backend == Backend::Sqlite {
        let out = crate::process::run(cmd, "").await;
        assert!(!out.status.success());
    }
}

/// The claims of an access token, read from its payload as a client would.
fn claims(access: &str) -> Value {
    use base64::Engine;
    let payload = access.split('.').nth(1).expect("a JWT");
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}

/// SPEC §13 policy: with `mfa_required_roles`, an owner without a second factor signs in with
/// a token marked `"mfa": "enrol"` that serves only to set one up, read `/api/auth/me` and sign
/// out; with the factor set up and used, the next login's token serves everything.
async fn a_role_that_requires_a_factor_gets_an_enrolment_only_token(backend: Backend) {
    let app = app!(backend, |c: &mut brama::config::Config| {
        c.mfa_required_roles = vec!["moderator".into(), "admin".into(), "owner".into()]
    });
    let login = app.user("rafal").await;
    assert_eq!(login["roles"], json!(["ROLE_OWNER"]));
    let token = login["accessToken"].as_str().unwrap().to_string();
    assert_eq!(claims(&token)["mfa"], "enrol");
    assert_eq!(claims(&token)["amr"], json!(["pwd"]));
    for path in ["/api/auth/me", "/api/auth/mfa"] {
        let r = call(&app, &token, "GET", path, None).await;
        assert_eq!(r.status, 200, "{path}: {}", r.text);
    }
    for (method, path) in [
        ("GET", "/api/membership/members"),
        ("GET", "/api/auth/sessions"),
        ("GET", "/api/auth/me/export"),
        ("GET", "/api/admin/accounts"),
        ("POST", "/api/auth/refreshtoken"),
        ("POST", "/api/auth/password"),
    ] {
        let r = call(&app, &token, method, path, Some(json!({}))).await;
        assert_eq!(
            status_of(&r),
            (403, "mfa_enrollment_required".into()),
            "{method} {path}: {}",
            r.text
        );
        assert_eq!(
            r.message(),
            "Your role requires a second factor: set one up first"
        );
    }
    // A user (not a listed role) is not touched.
    let user = app.user("sara").await;
    let user_token = user["accessToken"].as_str().unwrap();
    assert!(claims(user_token).get("mfa").is_none());
    let r = call(&app, user_token, "GET", "/api/auth/sessions", None).await;
    assert_eq!(r.status, 200, "{}", r.text);

    // The enrolment-only token sets TOTP up; the session it came from stays enrolment-only.
    let (secret, _) = enrol(&app, &token).await;
    let r = call(&app, &token, "GET", "/api/membership/members", None).await;
    assert_eq!(r.status, 403, "{}", r.text);
    // The next login goes through the second factor and its token serves everything.
    let ticket = first_step(&app, "rafal").await;
    let r = app
        .post(
            "/api/auth/login/mfa",
            json!({ "mfaToken": ticket, "code": code(&secret, 1) }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let refresh = r.body["refreshToken"].clone();
    let full = r.body["accessToken"].as_str().unwrap().to_string();
    assert!(claims(&full).get("mfa").is_none(), "{}", claims(&full));
    let r = call(&app, &full, "GET", "/api/membership/members", None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    // And so does the token of a refresh.
    let r = app
        .post("/api/auth/refreshtoken", json!({ "refreshToken": refresh }))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let full = r.body["accessToken"].as_str().unwrap().to_string();
    assert!(claims(&full).get("mfa").is_none(), "{}", claims(&full));
    // An enrolment-only token still signs out.
    let login = app.user("tomasz").await;
    let tomasz = login["id"].as_str().unwrap().to_string();
    let owner_path = format!("/api/admin/accounts/{tomasz}");
    let r = call(
        &app,
        &full,
        "PATCH",
        &owner_path,
        Some(json!({ "roles": ["admin"] })),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = app.login("tomasz", crate::helpers::PASSWORD).await;
    let admin = r.body["accessToken"].as_str().unwrap().to_string();
    assert_eq!(claims(&admin)["mfa"], "enrol");
    let r = call(&app, &admin, "POST", "/api/auth/logout", None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    // Also at the Company API's nested `/web/logout`, which sees its path without the prefix.
    let login = app.login("tomasz", crate::helpers::PASSWORD).await.body;
    let admin = login["accessToken"].as_str().unwrap().to_string();
    assert_eq!(claims(&admin)["mfa"], "enrol");
    let r = call(&app, &admin, "POST", "/web/logout", None).await;
    assert_eq!(
        (r.status, &r.body),
        (200, &json!({ "status": "success", "info": "", "msg": [] })),
        "{}",
        r.text
    );
    // Its session ended: the refresh token is unknown now.
    let r = app.refresh(login["refreshToken"].as_str().unwrap()).await;
    assert_eq!(
        (r.status, r.code()),
        (403, "refresh_token_not_found"),
        "{}",
        r.text
    );
}

/// SPEC §6 for the second step: a request carrying the CSRF cookie must carry its header too,
/// and signs in with the `token` cookie instead of an access token in the body.
async fn the_second_step_in_browser_mode_needs_csrf_and_answers_with_the_cookie(backend: Backend) {
    let app = app!(backend);
    let token = account(&app, "urszula").await;
    let (_, codes) = enrol(&app, &token).await;
    let (id, csrf_cookie) = app.csrf().await;
    let cookie = format!("sessionToken={csrf_cookie}");
    let r = app
        .request(
            "POST",
            "/api/auth/login",
            Some(json!({ "username": "urszula", "password": crate::helpers::PASSWORD })),
            &[("cookie", &cookie), ("sessionId", &id)],
        )
        .await;
    assert_eq!(status_of(&r), (401, "mfa_required".into()), "{}", r.text);
    assert!(
        r.set_cookie("token").is_none(),
        "no cookie before the second step"
    );
    let ticket = r.body["mfaToken"].as_str().unwrap().to_string();
    let body = json!({ "mfaToken": ticket, "recoveryCode": codes[0] });
    // Without the header: refused, and the ticket is not spent.
    let r = app
        .request(
            "POST",
            "/api/auth/login/mfa",
            Some(body.clone()),
            &[("cookie", &cookie)],
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.text);
    let r = app
        .request(
            "POST",
            "/api/auth/login/mfa",
            Some(body),
            &[("cookie", &cookie), ("sessionId", &id)],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.body.get("accessToken").is_none(), "{}", r.text);
    assert_eq!(r.body["username"], "urszula");
    let token = r.set_cookie("token").expect("the token cookie");
    assert_eq!(amr(&token), json!(["pwd", "otp", "mfa"]));
    let r = app
        .get("/api/auth/me", &[("cookie", &format!("token={token}"))])
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
}
