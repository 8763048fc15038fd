//! SPEC §2 and §4 `/api/admin/*`: accounts of one's own organization, the role rules, the audit.

use brama::core::Role;
use serde_json::{Value, json};

use crate::helpers::{Backend, PASSWORD, TestApp};
use crate::{app, both_backends};

both_backends!(
    only_admins_list_accounts_of_their_own_organization,
    role_changes_follow_the_rules,
    disabling_an_account_ends_its_sessions_and_logins,
    audit_trail_is_for_admins_and_holds_no_secrets,
);

fn token(login: &Value) -> &str {
    login["accessToken"].as_str().unwrap()
}

async fn patch(app: &TestApp, actor: &Value, id: &str, body: Value) -> crate::helpers::Resp {
    app.request(
        "PATCH",
        &format!("/api/admin/accounts/{id}"),
        Some(body),
        &[("x-access-token", token(actor))],
    )
    .await
}

async fn only_admins_list_accounts_of_their_own_organization(backend: Backend) {
    let app = app!(backend);
    let owner = app.user("owner1").await;
    let user = app.user("user1").await;
    let moderator = app.user_with_role("mod1", Role::Moderator).await;
    let foreign = app.foreign_admin("stranger").await;

    let r = app
        .get("/api/admin/accounts", &[("x-access-token", token(&owner))])
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let names: Vec<&str> = r
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["username"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["owner1", "user1", "mod1"]);
    assert_eq!(r.body[1]["roles"], json!(["ROLE_USER"]));
    assert_eq!(r.body[1]["status"], "active");
    assert!(!r.text.contains("argon2"), "no password hashes");

    for (login, message) in [
        (&user, "Require Admin Role!"),
        (&moderator, "Require Admin Role!"),
    ] {
        let r = app
            .get("/api/admin/accounts", &[("x-access-token", token(login))])
            .await;
        assert_eq!(
            (r.status, r.message(), r.code()),
            (403, message, "forbidden")
        );
    }
    let r = app.get("/api/admin/accounts", &[]).await;
    assert_eq!((r.status, r.message()), (403, "No token provided!"));

    // The other organization's admin sees only its own account, and ours are not found.
    let r = app
        .get(
            "/api/admin/accounts",
            &[("x-access-token", token(&foreign))],
        )
        .await;
    assert_eq!(r.body.as_array().unwrap().len(), 1);
    let r = app
        .get(
            &format!("/api/admin/accounts/{}", user["id"].as_str().unwrap()),
            &[("x-access-token", token(&foreign))],
        )
        .await;
    assert_eq!((r.status, r.code()), (404, "not_found"));
    let r = patch(
        &app,
        &foreign,
        user["id"].as_str().unwrap(),
        json!({ "status": "disabled" }),
    )
    .await;
    assert_eq!(r.status, 404);
    assert_eq!(
        app.refresh(user["refreshToken"].as_str().unwrap())
            .await
            .status,
        200,
        "untouched"
    );

    let r = app
        .get(
            &format!("/api/admin/accounts/{}", user["id"].as_str().unwrap()),
            &[("x-access-token", token(&owner))],
        )
        .await;
    assert_eq!(
        (r.status, r.body["username"].as_str()),
        (200, Some("user1"))
    );
}

async fn role_changes_follow_the_rules(backend: Backend) {
    let app = app!(backend, |c| c.max_sessions_per_account = 5);
    let owner = app.user("owner1").await;
    let admin = app.user_with_role("admin1", Role::Admin).await;
    let admin2 = app.user_with_role("admin2", Role::Admin).await;
    let user = app.user("user1").await;
    let uid = user["id"].as_str().unwrap();

    // An admin manages roles below their own.
    let r = patch(&app, &admin, uid, json!({ "role": "moderator" })).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["roles"], json!(["ROLE_MODERATOR"]));
    // The promotion shows in the next refreshed token.
    let refreshed = app.refresh(user["refreshToken"].as_str().unwrap()).await;
    let claims = app
        .core
        .keys
        .verify(refreshed.body["accessToken"].as_str().unwrap())
        .unwrap();
    assert_eq!(claims.roles, ["moderator"]);

    // ... but cannot grant admin, nor touch another admin.
    let r = patch(&app, &admin, uid, json!({ "role": "admin" })).await;
    assert_eq!((r.status, r.message()), (403, "Require Owner Role!"));
    let r = patch(
        &app,
        &admin,
        admin2["id"].as_str().unwrap(),
        json!({ "role": "user" }),
    )
    .await;
    assert_eq!(r.status, 403);
    // Nobody changes their own account.
    let r = patch(
        &app,
        &owner,
        owner["id"].as_str().unwrap(),
        json!({ "role": "user" }),
    )
    .await;
    assert_eq!((r.status, r.code()), (403, "cannot_change_self"));
    // The owner grants admin and owner; the `roles` array form works too.
    let r = patch(&app, &owner, uid, json!({ "roles": ["ROLE_ADMIN"] })).await;
    assert_eq!((r.status, &r.body["roles"]), (200, &json!(["ROLE_ADMIN"])));
    let r = patch(&app, &owner, uid, json!({ "role": "owner" })).await;
    assert_eq!(r.body["roles"], json!(["ROLE_OWNER"]));
    // Bad values are named.
    let r = patch(
        &app,
        &owner,
        admin2["id"].as_str().unwrap(),
        json!({ "role": "emperor", "status": "gone" }),
    )
    .await;
    assert_eq!((r.status, r.code()), (400, "validation_failed"));
    let fields: Vec<&str> = r.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["role", "status"]);
    // A demotion ends the demoted account's sessions.
    let r = patch(
        &app,
        &owner,
        admin2["id"].as_str().unwrap(),
        json!({ "role": "user" }),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        app.refresh(admin2["refreshToken"].as_str().unwrap())
            .await
            .status,
        403
    );
}

async fn disabling_an_account_ends_its_sessions_and_logins(backend: Backend) {
    let app = app!(backend);
    let owner = app.user("owner1").await;
    let user = app.user("user1").await;
    let r = patch(
        &app,
        &owner,
        user["id"].as_str().unwrap(),
        json!({ "status": "disabled" }),
    )
    .await;
    assert_eq!(
        (r.status, r.body["status"].as_str()),
        (200, Some("disabled"))
    );
    assert_eq!(
        app.refresh(user["refreshToken"].as_str().unwrap())
            .await
            .status,
        403
    );
    let r = app.login("user1", PASSWORD).await;
    assert_eq!(
        (r.status, r.message()),
        (401, "Invalid username or password")
    );
    let r = app
        .get("/api/auth/me", &[("x-access-token", token(&user))])
        .await;
    assert_eq!(r.status, 401);
    // Enabled again, the account logs in.
    patch(
        &app,
        &owner,
        user["id"].as_str().unwrap(),
        json!({ "status": "active" }),
    )
    .await;
    assert_eq!(app.login("user1", PASSWORD).await.status, 200);
}

async fn audit_trail_is_for_admins_and_holds_no_secrets(backend: Backend) {
    let app = app!(backend);
    let owner = app.user("owner1").await;
    let user = app.user("user1").await;
    patch(
        &app,
        &owner,
        user["id"].as_str().unwrap(),
        json!({ "role": "moderator" }),
    )
    .await;
    app.login("user1", "Wrong#pass1").await;

    let r = app
        .get("/api/admin/audit", &[("x-access-token", token(&owner))])
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let events = r.body.as_array().unwrap();
    let actions: Vec<&str> = events
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions[0], "login_failed");
    assert!(
        actions.contains(&"account_changed")
            && actions.contains(&"account_registered")
            && actions.contains(&"login")
    );
    let changed = events
        .iter()
        .find(|e| e["action"] == "account_changed")
        .unwrap();
    assert_eq!(changed["actor"], owner["id"]);
    assert_eq!(changed["target"], user["id"]);
    assert_eq!(changed["ip"], "127.0.0.1");
    assert!(!r.text.contains(PASSWORD) && !r.text.contains("Wrong#pass1"));

    let r = app
        .get(
            "/api/admin/audit?limit=2",
            &[("x-access-token", token(&owner))],
        )
        .await;
    assert_eq!(r.body.as_array().unwrap().len(), 2);
    let r = app
        .get(
            "/api/admin/audit?limit=abc",
            &[("x-access-token", token(&owner))],
        )
        .await;
    assert_eq!((r.status, r.code()), (400, "invalid_query"));
    assert!(r.message().starts_with("limit: "), "{}", r.message());
    // Filtered by action and by who did it (the page's Dziennik).
    let r = app
        .get(
            "/api/admin/audit?action=account_changed",
            &[("x-access-token", token(&owner))],
        )
        .await;
    let only: Vec<&Value> = r.body.as_array().unwrap().iter().collect();
    assert_eq!(only.len(), 1, "{}", r.text);
    assert_eq!(only[0]["action"], "account_changed");
    let by_owner = format!("/api/admin/audit?actor={}", owner["id"].as_str().unwrap());
    let r = app
        .get(&by_owner, &[("x-access-token", token(&owner))])
        .await;
    let events = r.body.as_array().unwrap();
    assert!(!events.is_empty(), "{}", r.text);
    assert!(
        events.iter().all(|e| e["actor"] == owner["id"]),
        "{}",
        r.text
    );
    assert!(events.len() < actions.len(), "{}", r.text);
    let r = app
        .get(
            "/api/admin/audit?action=nothing.like.this&actor=x%27%20OR%201%3D1",
            &[("x-access-token", token(&owner))],
        )
        .await;
    assert_eq!((r.status, r.body.clone()), (200, json!([])), "{}", r.text);
    // A moderator (user1 since the change) does not read the audit.
    let r = app
        .get("/api/admin/audit", &[("x-access-token", token(&user))])
        .await;
    assert_eq!((r.status, r.message()), (403, "Require Admin Role!"));
}
