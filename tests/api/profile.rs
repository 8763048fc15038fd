//! SPEC §15: an account's own profile (`PATCH /api/auth/me`) and the change of its email
//! address, which waits for the link sent to the new address.

use serde_json::{Value, json};

use crate::helpers::{Backend, PASSWORD, Resp, TestApp, link_token, outbox_with};
use crate::{app, both_backends};

both_backends!(
    the_profile_changes_name_and_surname,
    an_email_change_waits_for_the_link_to_the_new_address,
    email_changes_that_cannot_be_are_refused,
);

async fn call(app: &TestApp, token: &str, method: &str, path: &str, body: Option<Value>) -> Resp {
    app.request(method, path, body, &[("x-access-token", token)])
        .await
}

fn status_of(r: &Resp) -> (u16, String) {
    (r.status, r.code().to_string())
}

async fn signed_up(app: &TestApp, name: &str) -> Value {
    app.user(name).await
}

fn access(login: &Value) -> String {
    login["accessToken"].as_str().unwrap().to_string()
}

/// How many audit events of `action` are kept.
async fn audited(app: &TestApp, action: &str) -> String {
    app.query_text(
        "SELECT CAST(COUNT(*) AS TEXT) FROM audit_events WHERE action = $1",
        &[action],
    )
    .await
    .unwrap_or_default()
}

async fn the_profile_changes_name_and_surname(backend: Backend) {
    let app = app!(backend);
    let token = access(&signed_up(&app, "hania").await);
    // Read first, so that this node holds the account and its `/me` answer: the change must
    // drop both, not only the record (issue 18 keeps the written answer with the account).
    let r = call(&app, &token, "GET", "/api/auth/me", None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_ne!(r.body["name"], "Hanna");
    let r = call(
        &app,
        &token,
        "PATCH",
        "/api/auth/me",
        Some(json!({ "name": "  Hanna ", "surname": "Kowalska-Nowak" })),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["name"], "Hanna");
    assert_eq!(r.body["surname"], "Kowalska-Nowak");
    assert_eq!(r.body["username"], "hania");
    let r = call(&app, &token, "GET", "/api/auth/me", None).await;
    assert_eq!(
        (r.body["name"].clone(), r.body["surname"].clone()),
        (json!("Hanna"), json!("Kowalska-Nowak"))
    );

    // A field left out stays; an empty surname clears it.
    let r = call(
        &app,
        &token,
        "PATCH",
        "/api/auth/me",
        Some(json!({ "surname": "" })),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        (r.body["name"].clone(), r.body["surname"].clone()),
        (json!("Hanna"), json!(""))
    );

    // Refused, every problem named, nothing stored.
    for (body, field) in [
        (json!({ "name": "" }), "name"),
        (json!({ "name": "x".repeat(101) }), "name"),
        (json!({ "name": "Ha\u{202e}nna" }), "name"),
        (json!({ "surname": "y".repeat(101) }), "surname"),
    ] {
        let r = call(&app, &token, "PATCH", "/api/auth/me", Some(body)).await;
        assert_eq!(
            status_of(&r),
            (400, "validation_failed".into()),
            "{}",
            r.text
        );
        assert_eq!(r.body["errors"][0]["field"], field, "{}", r.text);
    }
    let r = call(
        &app,
        &token,
        "PATCH",
        "/api/auth/me",
        Some(json!({ "name": 5 })),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.text);
    let r = app
        .request("PATCH", "/api/auth/me", Some(json!({ "name": "X" })), &[])
        .await;
    assert_eq!(r.status, 403, "{}", r.text);
    let r = call(&app, &token, "GET", "/api/auth/me", None).await;
    assert_eq!(r.body["name"], "Hanna");
    assert_eq!(audited(&app, "account.profile_updated").await, "2");
}

async fn an_email_change_waits_for_the_link_to_the_new_address(backend: Backend) {
    let app = app!(backend, |c: &mut brama::config::Config| {
        c.max_sessions_per_account = 5;
    });
    let first = access(&signed_up(&app, "irena").await);
    let second = app.login("irena", PASSWORD).await.body;
    let r = call(
        &app,
        &first,
        "POST",
        "/api/auth/email",
        Some(json!({ "newEmail": "Irena.Nowa@Example.org", "currentPassword": PASSWORD })),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.text);
    assert_eq!(
        r.body["message"],
        "We sent a link to the new address: the address changes when you open it (within 24 hours)"
    );
    // Nothing changes yet.
    let r = call(&app, &first, "GET", "/api/auth/me", None).await;
    assert_eq!(r.body["email"], "irena@example.com");

    // A link to the new address, a notice to the old one.
    let emails = outbox_with(&app, 2).await;
    let to_new = emails
        .iter()
        .find(|e| e.recipient == "Irena.Nowa@Example.org")
        .expect("an email to the new address");
    let token = link_token(&app, &to_new.body, "/confirm-email");
    let notice = emails
        .iter()
        .find(|e| e.recipient == "irena@example.com")
        .expect("a notice to the old address");
    assert!(!notice.body.contains(&token), "{}", notice.body);
    assert!(
        !notice.body.contains("Irena.Nowa"),
        "the notice does not name the new address"
    );

    // Opened signed in (the first session): the address changes, the other session ends.
    let r = app
        .request(
            "POST",
            "/api/auth/email/confirm",
            Some(json!({ "token": token })),
            &[("x-access-token", &first)],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.body["message"],
        "The email address was changed; your other sessions have ended"
    );
    let r = call(&app, &first, "GET", "/api/auth/sessions", None).await;
    assert_eq!(r.body.as_array().map(Vec::len), Some(1), "{}", r.text);
    let r = app
        .post(
            "/api/auth/refreshtoken",
            json!({ "refreshToken": second["refreshToken"] }),
        )
        .await;
    assert!(
        matches!(r.status, 401 | 403),
        "the other session ended: {}",
        r.text
    );
    let r = call(&app, &first, "GET", "/api/auth/me", None).await;
    assert_eq!(r.body["email"], "Irena.Nowa@Example.org");
    // The new address logs in (in any case), the old one no longer does.
    assert_eq!(
        app.login("irena.nowa@example.org", PASSWORD).await.status,
        200
    );
    assert_eq!(app.login("irena@example.com", PASSWORD).await.status, 401);
    // The link works once.
    let r = app
        .post("/api/auth/email/confirm", json!({ "token": token }))
        .await;
    assert_eq!(
        status_of(&r),
        (400, "email_token_invalid".into()),
        "{}",
        r.text
    );
    assert_eq!(audited(&app, "account.email_changed").await, "1");
    assert_eq!(audited(&app, "account.email_change_requested").await, "1");
}

async fn email_changes_that_cannot_be_are_refused(backend: Backend) {
    let app = app!(backend);
    let token = access(&signed_up(&app, "jerzy").await);
    signed_up(&app, "kamil").await;
    let ask = async |body: Value| call(&app, &token, "POST", "/api/auth/email", Some(body)).await;

    let r =
        ask(json!({ "newEmail": "jerzy2@example.org", "currentPassword": "Wrong!pass1" })).await;
    assert_eq!(status_of(&r), (401, "wrong_password".into()), "{}", r.text);
    for taken in [
        "kamil@example.com",
        "KAMIL@example.com",
        "jerzy@example.com",
    ] {
        let r = ask(json!({ "newEmail": taken, "currentPassword": PASSWORD })).await;
        assert_eq!(r.status, 400, "{}", r.text);
        assert_eq!(
            r.body["message"], "Failed! Email is already in use!",
            "{}",
            r.text
        );
    }
    let r = ask(json!({ "newEmail": "not an address", "currentPassword": PASSWORD })).await;
    assert_eq!(
        status_of(&r),
        (400, "validation_failed".into()),
        "{}",
        r.text
    );
    assert_eq!(r.body["errors"][0]["field"], "newEmail", "{}", r.text);
    let r = ask(json!({ "newEmail": "jerzy2@example.org" })).await;
    assert_eq!(
        r.body["errors"][0]["field"], "currentPassword",
        "{}",
        r.text
    );
    let r = app
        .post("/api/auth/email/confirm", json!({ "token": "nope" }))
        .await;
    assert_eq!(
        status_of(&r),
        (400, "email_token_invalid".into()),
        "{}",
        r.text
    );
    let r = app.post("/api/auth/email/confirm", json!({})).await;
    assert_eq!(
        status_of(&r),
        (400, "validation_failed".into()),
        "{}",
        r.text
    );

    // The address is taken by someone else between the request and the link: refused then,
    // and the account keeps its address.
    let r = ask(json!({ "newEmail": "wolny@example.org", "currentPassword": PASSWORD })).await;
    assert_eq!(r.status, 202, "{}", r.text);
    let emails = outbox_with(&app, 2).await;
    let to_new = emails
        .iter()
        .find(|e| e.recipient == "wolny@example.org")
        .unwrap();
    let token_taken = link_token(&app, &to_new.body, "/confirm-email");
    let r = app
        .post(
            "/api/auth/register",
            json!({ "username": "wolny", "email": "wolny@example.org", "password": PASSWORD }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = app
        .post("/api/auth/email/confirm", json!({ "token": token_taken }))
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(
        r.body["message"], "Failed! Email is already in use!",
        "{}",
        r.text
    );
    let r = call(&app, &token, "GET", "/api/auth/me", None).await;
    assert_eq!(r.body["email"], "jerzy@example.com");

    // A link older than 24 hours does not work (the clock moved by ageing the row).
    let r = ask(json!({ "newEmail": "jerzy3@example.org", "currentPassword": PASSWORD })).await;
    assert_eq!(r.status, 202, "{}", r.text);
    let emails = outbox_with(&app, 4).await;
    let to_new = emails
        .iter()
        .find(|e| e.recipient == "jerzy3@example.org")
        .unwrap();
    let expired = link_token(&app, &to_new.body, "/confirm-email");
    app.execute_sql("UPDATE email_changes SET expires_at = 0", &[])
        .await;
    let r = app
        .post("/api/auth/email/confirm", json!({ "token": expired }))
        .await;
    assert_eq!(
        status_of(&r),
        (400, "email_token_invalid".into()),
        "{}",
        r.text
    );
    let r = call(&app, &token, "GET", "/api/auth/me", None).await;
    assert_eq!(r.body["email"], "jerzy@example.com");
}
