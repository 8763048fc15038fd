//! SPEC §5 and §10: seed 002's Company API, its envelope and errorID, activation, SMTP delivery.

use serde_json::{Value, json};

use crate::helpers::{Backend, Resp, SmtpSink, TestApp, link_token, log_text, outbox_with};
use crate::{app, both_backends};

both_backends!(
    signup_answers_the_seed_body_word_for_word,
    signup_validation_at_every_boundary,
    duplicate_email_and_phone_are_refused,
    two_failures_two_error_ids_both_in_the_log,
    activation_works_once_and_not_after_expiry,
    resend_always_answers_the_same,
    web_auth_refresh_and_logout_share_the_core_sessions,
    malformed_input_gets_the_company_envelope,
    emails_are_delivered_over_smtp,
    company_owner_sees_only_its_own_organization,
    each_surface_answers_its_unknown_paths_in_its_own_envelope,
    resend_answers_before_it_looks_or_writes,
);

const PASSWORD: &str = "Zx8!quokka";

async fn signup(app: &TestApp, email: &str, phone: &str) -> Resp {
    app.post(
        "/company/signup",
        json!({ "email": email, "phone": phone, "state": 1 }),
    )
    .await
}

/// Asserts the failure envelope and returns its `msg` sentences.
fn failure(r: &Resp, status: u16) -> Vec<String> {
    assert_eq!(r.status, status, "{}", r.text);
    let body = r
        .body
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {}", r.text));
    let mut keys: Vec<&str> = body.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["errorID", "info", "msg", "status"], "{}", r.text);
    assert_eq!(body["status"], "error");
    let id = body["errorID"].as_str().unwrap();
    assert!(
        id.len() == 9 && id.starts_with('#') && id[1..].chars().all(|c| c.is_ascii_alphanumeric()),
        "{id}"
    );
    assert!(!body["info"].as_str().unwrap().is_empty());
    body["msg"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap().to_string())
        .collect()
}

/// Signs up and activates a company; returns the activation answer's `data`.
async fn active_company(app: &TestApp, email: &str, phone: &str) -> Value {
    let before = app.core.outbox().await.unwrap().len();
    assert_eq!(signup(app, email, phone).await.status, 200);
    let emails = outbox_with(app, before + 1).await;
    let token = link_token(app, &emails[before].body, "/activate");
    let r = app
        .post(
            "/company/activate",
            json!({ "token": token, "password": PASSWORD, "name": "Test", "surname": "" }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["data"].clone()
}

async fn signup_answers_the_seed_body_word_for_word(backend: Backend) {
    let app = app!(backend);
    let r = signup(&app, "marzed@vistalt24.com", "+38099999999913").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.body,
        json!({ "status": "created", "info": "Учетная запись успешно создана. Письмо активации отправлено на почту .", "msg": [] })
    );
    let r = app
        .request(
            "POST",
            "/company/signup",
            Some(json!({ "email": "other@vistalt24.com", "phone": "+48600100200", "state": 2 })),
            &[("accept-language", "en")],
        )
        .await;
    assert_eq!(
        r.body["info"],
        "The account was created. An activation email was sent."
    );
    // A pending organization with a pending owner: no login before activation.
    let r = app
        .post(
            "/web/auth",
            json!({ "email": "marzed@vistalt24.com", "password": PASSWORD }),
        )
        .await;
    failure(&r, 400);
    assert_eq!(r.body["info"], "Неверный email или пароль");
}

async fn signup_validation_at_every_boundary(backend: Backend) {
    let app = app!(backend);
    // Each case: body, the field the first msg must name, and the start of its sentence.
    let at = |n: usize| format!("{}@ex.com", "a".repeat(n - 7));
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({ "email": at(9), "phone": "+4860010", "state": 1 }),
            "email: длина от 10 до 40 символов",
        ),
        (
            json!({ "email": at(41), "phone": "+4860010", "state": 1 }),
            "email: длина от 10 до 40 символов",
        ),
        (
            json!({ "email": "ivan@почта.com", "phone": "+4860010", "state": 1 }),
            "email: содержит недопустимые символы",
        ),
        (
            json!({ "email": "iv an@mail.com", "phone": "+4860010", "state": 1 }),
            "email: содержит недопустимые символы",
        ),
        (
            json!({ "email": "ivan#1@mail.com", "phone": "+4860010", "state": 1 }),
            "email: содержит недопустимые символы",
        ),
        (
            json!({ "email": "ivan_1@mail.com", "phone": "+4860010", "state": 1 }),
            "email: содержит недопустимые символы",
        ),
        (
            json!({ "email": "ivan.mail.com", "phone": "+4860010", "state": 1 }),
            "email: имеет неверный формат",
        ),
        (
            json!({ "email": "ivan@mailcom", "phone": "+4860010", "state": 1 }),
            "email: имеет неверный формат",
        ),
        (
            json!({ "email": "ivan@ma@il.com", "phone": "+4860010", "state": 1 }),
            "email: имеет неверный формат",
        ),
        (
            json!({ "email": "ivan1@mail.com", "phone": "1", "state": 1 }),
            "phone: длина от 2 до 20 символов",
        ),
        (
            json!({ "email": "ivan1@mail.com", "phone": "123456789012345678901", "state": 1 }),
            "phone: длина от 2 до 20 символов",
        ),
        (
            json!({ "email": "ivan1@mail.com", "phone": "48+600", "state": 1 }),
            "phone: содержит недопустимые символы",
        ),
        (
            json!({ "email": "ivan1@mail.com", "phone": "600-100", "state": 1 }),
            "phone: содержит недопустимые символы",
        ),
        (
            json!({ "email": "ivan1@mail.com", "phone": "+4860010", "state": "1" }),
            "state: неверный тип; передайте строку",
        ),
        (
            json!({ "email": "ivan1@mail.com", "phone": "+4860010", "state": 1.5 }),
            "state: неверный тип",
        ),
        (
            json!({ "email": "ivan1@mail.com", "phone": "+4860010" }),
            "state: обязательное поле",
        ),
        (
            json!({ "phone": "+4860010", "state": 1 }),
            "email: обязательное поле",
        ),
        (
            json!({ "email": 5, "phone": "+4860010", "state": 1 }),
            "email: invalid type",
        ),
        (
            json!({ "email": "ivan1@mail.com", "phone": 48600100, "state": 1 }),
            "phone: invalid type",
        ),
    ];
    for (body, expected) in cases {
        let r = app.post("/company/signup", body.clone()).await;
        let msg = failure(&r, 400);
        assert!(
            msg.first().is_some_and(|m| m.starts_with(expected)),
            "{body}: {msg:?}"
        );
    }
    // Exactly 10 and exactly 40 characters; 2 and 20 for the phone.
    assert_eq!(signup(&app, &at(10), "12").await.status, 200);
    let r = signup(&app, &at(40), "+1234567890123456789").await;
    assert_eq!(r.status, 200, "{}", r.text);
    // Several problems at once, one sentence each.
    let r = app
        .post("/company/signup", json!({ "email": "x", "phone": "abc" }))
        .await;
    let msg = failure(&r, 400);
    assert_eq!(msg.len(), 3, "{msg:?}");
    // English on request.
    let r = app
        .request(
            "POST",
            "/company/signup",
            Some(json!({ "email": "x", "phone": "12", "state": 1 })),
            &[("accept-language", "en-GB")],
        )
        .await;
    assert_eq!(
        failure(&r, 400),
        ["email: must be 10 to 40 characters long"]
    );
    // The password rules of SPEC §10 at activation.
    for (password, expected) in [
        ("Sh0rt!x", "password: длина от 8 до 30 символов"),
        (
            "Abcdefgh1!Abcdefgh1!Abcdefgh1!x",
            "password: длина от 8 до 30 символов",
        ),
        ("Пароль1!Aa", "password: содержит недопустимые символы"),
        ("abcdefg1!", "password: минимум 1 большая буква"),
        ("ABCDEFG1!", "password: минимум 1 большая буква"),
        ("Abcdefgh!", "password: минимум 1 большая буква"),
        ("Abcdefgh1", "password: минимум 1 большая буква"),
        ("Password1!", "password: слишком распространённый"),
    ] {
        let r = app
            .post(
                "/company/activate",
                json!({ "token": "t", "password": password, "name": "A" }),
            )
            .await;
        let msg = failure(&r, 400);
        assert!(
            msg.iter().any(|m| m.starts_with(expected)),
            "{password}: {msg:?}"
        );
    }
}

async fn duplicate_email_and_phone_are_refused(backend: Backend) {
    let app = app!(backend);
    assert_eq!(
        signup(&app, "first@company.pl", "+48600100200")
            .await
            .status,
        200
    );
    let r = signup(&app, "First@Company.pl", "+48600100201").await;
    assert_eq!(failure(&r, 400), ["email: уже используется"]);
    let r = signup(&app, "second@company.pl", "+48600100200").await;
    assert_eq!(failure(&r, 400), ["phone: уже используется"]);
    // A Membership account's email is taken too: emails are unique across the deployment.
    app.post(
        "/api/auth/register",
        json!({ "username": "member1", "email": "member1@ngo.org", "password": PASSWORD }),
    )
    .await;
    let r = signup(&app, "member1@ngo.org", "+48600100299").await;
    assert_eq!(failure(&r, 400), ["email: уже используется"]);
}

async fn two_failures_two_error_ids_both_in_the_log(backend: Backend) {
    let app = app!(backend);
    let a = app.post("/company/signup", json!({})).await;
    let b = app.post("/company/signup", json!({})).await;
    failure(&a, 400);
    failure(&b, 400);
    let (id_a, id_b) = (
        a.body["errorID"].as_str().unwrap(),
        b.body["errorID"].as_str().unwrap(),
    );
    assert_ne!(id_a, id_b);
    let log = log_text();
    for id in [id_a, id_b] {
        let line = log
            .lines()
            .find(|l| l.contains(id))
            .unwrap_or_else(|| panic!("{id} is not in the log"));
        assert!(
            line.contains("validation_failed"),
            "the log line says what went wrong: {line}"
        );
    }
}

async fn activation_works_once_and_not_after_expiry(backend: Backend) {
    let app = app!(backend);
    signup(&app, "owner@firma.pl", "+48600100200").await;
    let emails = outbox_with(&app, 1).await;
    assert_eq!(emails[0].recipient, "owner@firma.pl");
    assert_eq!(emails[0].subject, "Активация аккаунта brama");
    let token = link_token(&app, &emails[0].body, "/activate");

    // A weak password does not use the link up.
    let r = app
        .post(
            "/company/activate",
            json!({ "token": token, "password": "weak", "name": "Jan" }),
        )
        .await;
    failure(&r, 400);
    let r = app
        .post(
            "/company/activate",
            json!({ "token": token, "password": PASSWORD, "name": "Jan", "surname": "Kowalski" }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        (
            r.body["status"].as_str(),
            r.body["info"].as_str(),
            &r.body["msg"]
        ),
        (Some("success"), Some(""), &json!([]))
    );
    let data = &r.body["data"];
    assert_eq!(
        (
            data["name"].as_str(),
            data["surname"].as_str(),
            data["role"].as_str()
        ),
        (Some("Jan"), Some("Kowalski"), Some("Owner"))
    );
    assert!(
        app.core
            .keys
            .verify(data["access"].as_str().unwrap())
            .is_ok()
    );

    let r = app
        .post(
            "/company/activate",
            json!({ "token": token, "password": PASSWORD, "name": "Jan" }),
        )
        .await;
    failure(&r, 400);
    assert_eq!(
        r.body["info"],
        "Ссылка активации недействительна, использована или устарела"
    );
    let r = app
        .post(
            "/web/auth",
            json!({ "email": "owner@firma.pl", "password": PASSWORD }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);

    // A link older than 48 hours is refused.
    signup(&app, "late@firma.pl", "+48600100201").await;
    let emails = outbox_with(&app, 2).await;
    let late = link_token(&app, &emails[1].body, "/activate");
    app.execute_sql(
        "UPDATE activation_tokens SET expires_at = 1 WHERE token_hash = $1",
        &[&brama::crypto::token_hash(&late)],
    )
    .await;
    let r = app
        .post(
            "/company/activate",
            json!({ "token": late, "password": PASSWORD, "name": "Jan" }),
        )
        .await;
    failure(&r, 400);
    failure(
        &app.post(
            "/web/auth",
            json!({ "email": "late@firma.pl", "password": PASSWORD }),
        )
        .await,
        400,
    );
}

async fn resend_always_answers_the_same(backend: Backend) {
    let app = app!(backend);
    signup(&app, "pending@firma.pl", "+48600100200").await;
    outbox_with(&app, 1).await;
    active_company(&app, "active@firma.pl", "+48600100201").await;
    outbox_with(&app, 2).await;
    let mut answers = Vec::new();
    for email in ["pending@firma.pl", "active@firma.pl", "nobody@firma.pl"] {
        let r = app
            .post("/company/activation/resend", json!({ "email": email }))
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        answers.push(r.text);
    }
    assert!(answers.iter().all(|a| *a == answers[0]), "{answers:?}");
    // Only the pending account got a new link, and it works.
    let emails = outbox_with(&app, 3).await;
    tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    assert_eq!(app.core.outbox().await.unwrap().len(), 3);
    assert_eq!(emails[2].recipient, "pending@firma.pl");
    let token = link_token(&app, &emails[2].body, "/activate");
    let r = app
        .post(
            "/company/activate",
            json!({ "token": token, "password": PASSWORD, "name": "P" }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
}

async fn web_auth_refresh_and_logout_share_the_core_sessions(backend: Backend) {
    let app = app!(backend);
    let first = active_company(&app, "owner@firma.pl", "+48600100200").await;
    let r = app
        .post(
            "/web/auth",
            json!({ "email": "owner@firma.pl", "password": PASSWORD }),
        )
        .await;
    assert_eq!(r.status, 200);
    let data = r.body["data"].clone();
    assert_eq!(data["role"], "Owner");
    // One session per account: the activation's session ended with this login (seed 002).
    failure(
        &app.post("/web/refresh", json!({ "refresh": first["refresh"] }))
            .await,
        400,
    );

    let r = app
        .post("/web/refresh", json!({ "refresh": data["refresh"] }))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let next = r.body["data"].clone();
    let keys: Vec<&String> = next.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["access", "refresh"]);
    // Reuse of the rotated token ends the family, in this surface's envelope.
    let r = app
        .post("/web/refresh", json!({ "refresh": data["refresh"] }))
        .await;
    failure(&r, 400);
    assert_eq!(
        r.body["info"],
        "Токен обновления уже был использован; сеанс завершён. Войдите заново"
    );
    failure(
        &app.post("/web/refresh", json!({ "refresh": next["refresh"] }))
            .await,
        400,
    );

    // The same tokens work on the Membership API, and logout ends the session.
    let login = app
        .post(
            "/web/auth",
            json!({ "email": "owner@firma.pl", "password": PASSWORD }),
        )
        .await
        .body["data"]
        .clone();
    let access = login["access"].as_str().unwrap();
    let me = app.get("/api/auth/me", &[("x-access-token", access)]).await;
    assert_eq!(
        (me.status, me.body["email"].as_str()),
        (200, Some("owner@firma.pl"))
    );
    let bearer = format!("Bearer {access}");
    let r = app
        .request("POST", "/web/logout", None, &[("authorization", &bearer)])
        .await;
    assert_eq!(
        r.body,
        json!({ "status": "success", "info": "", "msg": [] })
    );
    failure(
        &app.post("/web/refresh", json!({ "refresh": login["refresh"] }))
            .await,
        400,
    );
    failure(&app.request("POST", "/web/logout", None, &[]).await, 400);
    // Wrong password and unknown email: the same answer.
    let wrong = app
        .post(
            "/web/auth",
            json!({ "email": "owner@firma.pl", "password": "Wrong#pass1" }),
        )
        .await;
    let unknown = app
        .post(
            "/web/auth",
            json!({ "email": "ghost@firma.pl", "password": "Wrong#pass1" }),
        )
        .await;
    assert_eq!(
        (failure(&wrong, 400), wrong.body["info"].clone()),
        (failure(&unknown, 400), unknown.body["info"].clone())
    );
}

async fn malformed_input_gets_the_company_envelope(backend: Backend) {
    let app = app!(backend);
    let raw = |path: &'static str, content_type: &'static str, body: &'static [u8]| {
        let app = &app;
        async move {
            app.read(
                app.client
                    .post(app.url(path))
                    .header("content-type", content_type)
                    .body(body)
                    .send()
                    .await
                    .unwrap(),
            )
            .await
        }
    };
    failure(
        &raw("/company/signup", "application/json", b"{\"email\":").await,
        400,
    );
    failure(
        &raw("/company/signup", "application/json", b"[1,2]").await,
        400,
    );
    failure(
        &raw(
            "/web/auth",
            "application/json",
            b"{\"email\": {\"$ne\": null}}",
        )
        .await,
        400,
    );
    failure(&raw("/web/auth", "text/plain", b"{}").await, 415);
    failure(
        &raw("/company/signup", "application/json", &[0xff, 0xfe]).await,
        400,
    );
    failure(&app.get("/company/nothing-here", &[]).await, 404);
    failure(&app.get("/web/auth", &[]).await, 405);
    let big = vec![b' '; 100 * 1024];
    let r = app
        .read(
            app.client
                .post(app.url("/web/auth"))
                .header("content-type", "application/json")
                .body(big)
                .send()
                .await
                .unwrap(),
        )
        .await;
    failure(&r, 413);
}

async fn emails_are_delivered_over_smtp(backend: Backend) {
    let sink = SmtpSink::start().await;
    let port = sink.port;
    let app = app!(backend, |c| {
        c.smtp_host = Some("127.0.0.1".into());
        c.smtp_port = Some(port);
        c.smtp_security = brama::config::SmtpSecurity::None;
        c.smtp_from = Some("brama <noreply@brama.example>".into());
    });
    let r = app
        .request(
            "POST",
            "/company/signup",
            Some(json!({ "email": "owner@firma.pl", "phone": "+48600100200", "state": 1 })),
            &[("accept-language", "en")],
        )
        .await;
    assert_eq!(r.status, 200);
    let mail = &sink.wait_for(1).await[0];
    assert!(mail.contains("To: owner@firma.pl"), "{mail}");
    assert!(
        mail.contains("From: brama <noreply@brama.example>"),
        "{mail}"
    );
    assert!(
        mail.contains("Subject: Activate your brama account"),
        "{mail}"
    );
    let token = link_token(&app, mail, "/activate");
    // The outbox keeps that it was sent, but not the body with its live link.
    let sent = sent_emails(&app, 1).await;
    assert_eq!(
        (sent[0].recipient.as_str(), sent[0].body.as_str()),
        ("owner@firma.pl", "")
    );
    assert_eq!((sent[0].state(), sent[0].attempts), ("sent", 0));
    let r = app
        .post(
            "/company/activate",
            json!({ "token": token, "password": PASSWORD, "name": "Jan" }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);

    // Password reset by SMTP: the link works once and every session ends.
    let session = app
        .post(
            "/web/auth",
            json!({ "email": "owner@firma.pl", "password": PASSWORD }),
        )
        .await
        .body["data"]
        .clone();
    let r = app
        .request(
            "POST",
            "/api/auth/password/forgot",
            Some(json!({ "email": "owner@firma.pl" })),
            &[("accept-language", "en")],
        )
        .await;
    assert_eq!(r.status, 200);
    let mail = &sink.wait_for(2).await[1];
    assert!(
        mail.contains("Subject: Reset your brama password"),
        "{mail}"
    );
    let reset = link_token(&app, mail, "/reset");
    let r = app
        .post(
            "/api/auth/password/reset",
            json!({ "token": reset, "password": "Fresh#Start9" }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    failure(
        &app.post("/web/refresh", json!({ "refresh": session["refresh"] }))
            .await,
        400,
    );
    assert_eq!(
        app.post(
            "/api/auth/password/reset",
            json!({ "token": reset, "password": "Other#Start9" })
        )
        .await
        .status,
        400
    );
    assert_eq!(
        app.post(
            "/web/auth",
            json!({ "email": "owner@firma.pl", "password": "Fresh#Start9" })
        )
        .await
        .status,
        200
    );
}

/// The outbox once `n` emails in it are marked sent (the sink has them a moment before).
async fn sent_emails(app: &TestApp, n: usize) -> Vec<brama::store::OutboxRecord> {
    for _ in 0..250 {
        let outbox = app.core.outbox().await.unwrap();
        if outbox.iter().filter(|e| e.state() == "sent").count() >= n {
            return outbox;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("{n} emails were never marked sent");
}

async fn company_owner_sees_only_its_own_organization(backend: Backend) {
    let app = app!(backend);
    app.user("ngo_owner").await;
    let data = active_company(&app, "owner@firma.pl", "+48600100200").await;
    let r = app
        .get(
            "/api/admin/accounts",
            &[("x-access-token", data["access"].as_str().unwrap())],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let emails: Vec<&str> = r
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["email"].as_str().unwrap())
        .collect();
    assert_eq!(emails, ["owner@firma.pl"]);
    assert_eq!(r.body[0]["phone"], "+48600100200");
}

/// Each surface is a router of its own: an unknown path under it, its bare prefix included,
/// answers in its envelope and language; anything outside every surface in the Membership one.
async fn each_surface_answers_its_unknown_paths_in_its_own_envelope(backend: Backend) {
    let app = app!(backend);
    for path in [
        "/company",
        "/company/",
        "/company/nothing",
        "/web",
        "/web/",
        "/web/auth/x",
    ] {
        let r = app.get(path, &[]).await;
        failure(&r, 404);
        assert_eq!(r.body["info"], "Не найдено.", "{path}");
    }
    for (path, message) in [
        ("/api", "Not found."),
        ("/api/", "Not found."),
        ("/api/nothing", "Not found."),
        ("/nothing", "Not found."),
        ("/assets/nothing.js", "Nie znaleziono."),
        ("/assets/", "Nie znaleziono."),
    ] {
        let r = app.get(path, &[]).await;
        assert_eq!(r.status, 404, "{path}");
        assert_eq!(
            r.body,
            json!({ "message": message, "code": "not_found" }),
            "{path}"
        );
    }
    // A wrong method on the page is refused in its language, elsewhere in English.
    for (path, message) in [
        ("/", "Niedozwolona metoda"),
        ("/healthz", "Method not allowed"),
    ] {
        let r = app.request("POST", path, None, &[]).await;
        assert_eq!(
            r.body,
            json!({ "message": message, "code": "method_not_allowed" }),
            "{path}"
        );
    }
}

/// `/company/activation/resend` answers before it looks the address up or stores a link: a
/// store that cannot write changes neither the answer nor its timing.
async fn resend_answers_before_it_looks_or_writes(backend: Backend) {
    let app = app!(backend);
    signup(&app, "pending@firma.pl", "+48600100200").await;
    outbox_with(&app, 1).await;
    let unknown = app
        .post(
            "/company/activation/resend",
            json!({ "email": "nobody@firma.pl" }),
        )
        .await;
    let (create, drop_it): (&[&str], &[&str]) = match backend {
        Backend::Sqlite => (
            &[
                "CREATE TRIGGER refuse_links BEFORE INSERT ON activation_tokens \
               BEGIN SELECT RAISE(ABORT, 'injected failure'); END",
            ],
            &["DROP TRIGGER refuse_links"],
        ),
        Backend::Postgres => (
            &[
                "CREATE FUNCTION refuse_links() RETURNS trigger LANGUAGE plpgsql \
                 AS $$ BEGIN RAISE EXCEPTION 'injected failure'; END $$",
                "CREATE TRIGGER refuse_links BEFORE INSERT ON activation_tokens \
                 FOR EACH ROW EXECUTE FUNCTION refuse_links()",
            ],
            &[
                "DROP TRIGGER refuse_links ON activation_tokens",
                "DROP FUNCTION refuse_links",
            ],
        ),
    };
    for statement in create {
        app.execute_sql(statement, &[]).await;
    }
    let pending = app
        .post(
            "/company/activation/resend",
            json!({ "email": "pending@firma.pl" }),
        )
        .await;
    assert_eq!((pending.status, &pending.text), (200, &unknown.text));
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    for statement in drop_it {
        app.execute_sql(statement, &[]).await;
    }
    assert_eq!(
        app.core.outbox().await.unwrap().len(),
        1,
        "no link could be stored"
    );
}
