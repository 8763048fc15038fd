//! SPEC §4 auth routes: every success and failure row, with the seed's exact bodies.

use serde_json::json;

use crate::helpers::{Backend, PASSWORD};
use crate::{app, both_backends};

both_backends!(
    register_answers_the_seed_message,
    register_refuses_taken_username_and_email,
    register_validates_every_field,
    first_account_is_owner_the_rest_users,
    login_answers_the_seed_shape,
    unknown_user_and_wrong_password_look_the_same,
    login_accepts_case_and_width_variants_of_username,
    check_token_mode_of_refreshtoken,
    refresh_rotates_and_old_token_is_reuse,
    refresh_unknown_and_expired_tokens,
    me_returns_own_account,
    me_without_token_and_with_bad_token,
    logout_revokes_the_session,
    logout_all_revokes_every_session,
    sessions_list_and_revoke,
    password_change_rules,
    second_login_revokes_first_session,
    max_sessions_keeps_newest,
    disabled_bootstrap_makes_first_account_a_user,
    strict_revocation_stops_access_tokens_at_once,
    reuse_grace_answers_rotated_without_revoking,
    failed_logins_are_limited_per_account,
    failed_logins_are_limited_per_ip,
    registrations_are_limited_per_ip,
    jwks_publishes_the_signing_key,
    forgot_and_reset_password,
    forgot_password_is_rate_limited,
    full_hash_queue_answers_503_and_other_routes_keep_answering,
    login_upgrades_hashes_made_with_old_parameters,
    nul_characters_are_refused_before_the_database,
    cli_created_first_account_ends_the_owner_bootstrap,
    concurrent_wrong_passwords_reach_the_hasher_at_most_the_limit,
    username_and_email_share_one_budget,
    names_without_an_account_are_limited_alike,
    wrong_current_passwords_count_as_failed_logins,
    successful_logins_give_the_address_its_place_back,
    a_flood_of_bogus_links_cannot_starve_a_login,
    bogus_link_tokens_count_against_the_address,
    a_reset_or_a_change_ends_every_reset_link,
    ipv6_clients_are_counted_by_their_network,
    a_flood_of_made_up_addresses_leaves_other_limits_alone,
);

async fn register_answers_the_seed_message(backend: Backend) {
    let app = app!(backend);
    let r = app.register("alice").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.body,
        json!({ "message": "User was registered successfully!" })
    );
}

async fn register_refuses_taken_username_and_email(backend: Backend) {
    let app = app!(backend);
    assert_eq!(app.register("alice").await.status, 200);
    // Same username in another case and with surrounding spaces is the same username.
    let r = app
        .post(
            "/api/auth/register",
            json!({ "username": " ALICE ", "email": "other@example.com", "password": PASSWORD }),
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.message(), "Failed! Username is already in use!");
    assert_eq!(r.code(), "username_taken");
    let r = app
        .post(
            "/api/auth/register",
            json!({ "username": "bob", "email": "Alice@Example.com", "password": PASSWORD }),
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.message(), "Failed! Email is already in use!");
    assert_eq!(r.code(), "email_taken");
}

async fn register_validates_every_field(backend: Backend) {
    let app = app!(backend);
    let r = app
        .post(
            "/api/auth/register",
            json!({ "username": "x", "email": "not-an-email", "password": "short" }),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(r.code(), "validation_failed");
    let fields: Vec<&str> = r.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["username", "email", "password"]);
    assert_eq!(
        r.body["errors"][0]["message"],
        "username: must be 3 to 32 characters long"
    );
    assert!(r.message().starts_with("username: "));

    let r = app.post("/api/auth/register", json!({})).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.body["errors"].as_array().unwrap().len(), 3);
    assert_eq!(r.body["errors"][2]["message"], "password: is required");

    // The seed's own example password is on the common list.
    let r = app
        .post(
            "/api/auth/register",
            json!({ "username": "carol", "email": "carol@example.com", "password": "Password1!" }),
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.body["errors"][0]["message"],
        "password: is too common; choose another"
    );
    // Composition rule of seed 002.
    let r = app.post("/api/auth/register", json!({ "username": "carol", "email": "carol@example.com", "password": "alllowercase1!" })).await;
    assert_eq!(r.body["errors"][0]["field"], "password");
    assert!(
        r.body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("upper-case")
    );

    // Messages follow Accept-Language.
    let r = app
        .request(
            "POST",
            "/api/auth/register",
            Some(json!({ "username": "x", "email": "carol@example.com", "password": PASSWORD })),
            &[("accept-language", "pl-PL,pl;q=0.9")],
        )
        .await;
    assert_eq!(
        r.body["errors"][0]["message"],
        "username: musi mieć od 3 do 32 znaków"
    );
    let r = app
        .request(
            "POST",
            "/api/auth/login",
            Some(json!({ "username": "nobody", "password": "Whatever1!" })),
            &[("accept-language", "ru")],
        )
        .await;
    assert_eq!(r.message(), "Неверное имя пользователя или пароль");
}

async fn first_account_is_owner_the_rest_users(backend: Backend) {
    let app = app!(backend);
    let owner = app.user("first").await;
    assert_eq!(owner["roles"], json!(["ROLE_OWNER"]));
    let user = app.user("second").await;
    assert_eq!(user["roles"], json!(["ROLE_USER"]));
}

async fn disabled_bootstrap_makes_first_account_a_user(backend: Backend) {
    let app = app!(backend, |c| c.bootstrap_first_user = false);
    assert_eq!(app.user("first").await["roles"], json!(["ROLE_USER"]));
}

async fn login_answers_the_seed_shape(backend: Backend) {
    let app = app!(backend);
    app.register("alice").await;
    let r = app.login("alice", PASSWORD).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let body = r.body.as_object().unwrap();
    let mut keys: Vec<&str> = body.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "accessToken",
            "email",
            "id",
            "refreshToken",
            "roles",
            "username"
        ]
    );
    assert_eq!(body["username"], "alice");
    assert_eq!(body["email"], "alice@example.com");
    // 256-bit refresh token, base64url.
    assert_eq!(body["refreshToken"].as_str().unwrap().len(), 43);
    // The access token carries the SPEC §3 claims.
    let claims = app
        .core
        .keys
        .verify(body["accessToken"].as_str().unwrap())
        .expect("valid token");
    assert_eq!(claims.sub, body["id"].as_str().unwrap());
    assert_eq!(claims.aud, "brama");
    assert_eq!(claims.roles, ["owner"]);
    assert_eq!(claims.exp - claims.iat, 600);
    assert!(!claims.sid.is_empty() && !claims.jti.is_empty());
    // No cookie outside browser mode.
    assert!(r.set_cookie("token").is_none());
}

async fn unknown_user_and_wrong_password_look_the_same(backend: Backend) {
    let app = app!(backend);
    app.register("alice").await;
    let wrong = app.login("alice", "Wrong#pass1").await;
    let unknown = app.login("nobody", "Wrong#pass1").await;
    assert_eq!(wrong.status, 401);
    assert_eq!(wrong.status, unknown.status);
    assert_eq!(wrong.text, unknown.text);
    assert_eq!(
        wrong.body,
        json!({ "message": "Invalid username or password", "code": "invalid_credentials" })
    );
}

async fn login_accepts_case_and_width_variants_of_username(backend: Backend) {
    let app = app!(backend);
    app.register("alice").await;
    assert_eq!(app.login("  ALICE", PASSWORD).await.status, 200);
    // Fullwidth letters normalise (NFKC) to the same name.
    assert_eq!(app.login("ａｌｉｃｅ", PASSWORD).await.status, 200);
    // The email works as a login name too.
    assert_eq!(app.login("alice@example.com", PASSWORD).await.status, 200);
}

async fn check_token_mode_of_refreshtoken(backend: Backend) {
    let app = app!(backend);
    let login = app.user("alice").await;
    let access = login["accessToken"].as_str().unwrap();
    let r = app
        .request(
            "POST",
            "/api/auth/refreshtoken",
            None,
            &[("x-access-token", access)],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body, json!({ "message": "Authorized" }));
    let bearer = format!("Bearer {access}");
    let r = app
        .request(
            "POST",
            "/api/auth/refreshtoken",
            None,
            &[("authorization", &bearer)],
        )
        .await;
    assert_eq!(r.body, json!({ "message": "Authorized" }));

    let r = app
        .request("POST", "/api/auth/refreshtoken", None, &[])
        .await;
    assert_eq!(r.status, 403);
    assert_eq!(r.message(), "No token provided!");

    let r = app
        .request(
            "POST",
            "/api/auth/refreshtoken",
            None,
            &[("x-access-token", "not.a.jwt")],
        )
        .await;
    assert_eq!(r.status, 401);
    assert_eq!(r.message(), "Unauthorized!");
}

async fn refresh_rotates_and_old_token_is_reuse(backend: Backend) {
    let app = app!(backend);
    let login = app.user("alice").await;
    let first = login["refreshToken"].as_str().unwrap();
    let r = app.refresh(first).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let second = r.body["refreshToken"].as_str().unwrap().to_string();
    assert_ne!(second, first);
    assert!(
        app.core
            .keys
            .verify(r.body["accessToken"].as_str().unwrap())
            .is_ok()
    );
    // The header form works as well (seed 001 sends it as a header).
    let r = app
        .request(
            "POST",
            "/api/auth/refreshtoken",
            None,
            &[("refreshToken", &second)],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let third = r.body["refreshToken"].as_str().unwrap().to_string();

    // Presenting a used token revokes the family: 401 now, and the newest token is dead too.
    let r = app.refresh(first).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.code(), "refresh_token_reused");
    let r = app.refresh(&third).await;
    assert_eq!(r.status, 403);
    assert_eq!(r.message(), "This refresh token doesn't exist in database");
}

async fn refresh_unknown_and_expired_tokens(backend: Backend) {
    let app = app!(backend);
    let r = app
        .refresh("c29tZXRoaW5nLXRoYXQtd2FzLW5ldmVyLWlzc3VlZA")
        .await;
    assert_eq!(r.status, 403);
    assert_eq!(
        r.body,
        json!({ "message": "This refresh token doesn't exist in database", "code": "refresh_token_not_found" })
    );

    let login = app.user("alice").await;
    let token = login["refreshToken"].as_str().unwrap();
    // Age the token in the database as 30 days would.
    app.expire_refresh_token(token).await;
    let r = app.refresh(token).await;
    assert_eq!(r.status, 403);
    assert_eq!(
        r.message(),
        "Refresh token was expired. Please make a new signin request"
    );
    assert_eq!(r.code(), "refresh_token_expired");
}

async fn me_returns_own_account(backend: Backend) {
    let app = app!(backend);
    let login = app.user("alice").await;
    let access = login["accessToken"].as_str().unwrap();
    let r = app.get("/api/auth/me", &[("x-access-token", access)]).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["id"], login["id"]);
    assert_eq!(r.body["username"], "alice");
    assert_eq!(r.body["email"], "alice@example.com");
    assert_eq!(r.body["roles"], json!(["ROLE_OWNER"]));
    assert_eq!(r.body["organization"], brama::store::DEFAULT_ORGANIZATION);
    assert!(r.body["createdAt"].as_str().unwrap().starts_with("20"));
    assert_eq!(r.body["name"], "");
    assert_eq!(r.body["surname"], "");
    assert!(r.body.get("password_hash").is_none() && !r.text.contains("argon2"));
}

async fn me_without_token_and_with_bad_token(backend: Backend) {
    let app = app!(backend);
    let r = app.get("/api/auth/me", &[]).await;
    assert_eq!((r.status, r.message()), (403, "No token provided!"));
    let r = app
        .get("/api/auth/me", &[("x-access-token", "garbage")])
        .await;
    assert_eq!((r.status, r.message()), (401, "Unauthorized!"));
}

async fn logout_revokes_the_session(backend: Backend) {
    let app = app!(backend);
    let login = app.user("alice").await;
    let access = login["accessToken"].as_str().unwrap();
    let r = app
        .request(
            "POST",
            "/api/auth/logout",
            None,
            &[("x-access-token", access)],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.message(), "You've been signed out!");
    assert!(r.set_cookie_header("token").unwrap().contains("Max-Age=0"));
    let r = app.refresh(login["refreshToken"].as_str().unwrap()).await;
    assert_eq!(r.status, 403, "{}", r.text);
    let r = app
        .get("/api/auth/sessions", &[("x-access-token", access)])
        .await;
    assert_eq!(r.body, json!([]));
}

async fn logout_all_revokes_every_session(backend: Backend) {
    let app = app!(backend, |c| c.max_sessions_per_account = 5);
    let first = app.user("alice").await;
    let second = app.login("alice", PASSWORD).await.body;
    let access = second["accessToken"].as_str().unwrap();
    let r = app
        .get("/api/auth/sessions", &[("x-access-token", access)])
        .await;
    assert_eq!(r.body.as_array().unwrap().len(), 2);
    let r = app
        .request(
            "POST",
            "/api/auth/logout-all",
            None,
            &[("x-access-token", access)],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.message(), "You've been signed out of every session!");
    for login in [&first, &second] {
        let r = app.refresh(login["refreshToken"].as_str().unwrap()).await;
        assert_eq!(r.status, 403);
    }
}

async fn sessions_list_and_revoke(backend: Backend) {
    let app = app!(backend, |c| c.max_sessions_per_account = 5);
    let first = app.user("alice").await;
    let second = app
        .request(
            "POST",
            "/api/auth/login",
            Some(json!({ "username": "alice", "password": PASSWORD })),
            &[("user-agent", "phone-app/1.0")],
        )
        .await
        .body;
    let access = second["accessToken"].as_str().unwrap();
    let r = app
        .get("/api/auth/sessions", &[("x-access-token", access)])
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let list = r.body.as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["current"], true);
    assert_eq!(list[0]["userAgent"], "phone-app/1.0");
    assert_eq!(list[0]["ip"], "127.0.0.1");
    assert_eq!(list[1]["current"], false);
    for key in ["id", "createdAt", "lastUsedAt", "expiresAt"] {
        assert!(list[1][key].is_string(), "{key}");
    }
    let other = list[1]["id"].as_str().unwrap();

    let r = app
        .request(
            "DELETE",
            &format!("/api/auth/sessions/{other}"),
            None,
            &[("x-access-token", access)],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.message(), "Session was ended");
    assert_eq!(
        app.refresh(first["refreshToken"].as_str().unwrap())
            .await
            .status,
        403
    );
    // Again: it is no longer live.
    let r = app
        .request(
            "DELETE",
            &format!("/api/auth/sessions/{other}"),
            None,
            &[("x-access-token", access)],
        )
        .await;
    assert_eq!(r.status, 404);
    assert_eq!(r.code(), "not_found");

    // Another account's session is not found, and stays alive.
    let bob = app.user("bob").await;
    let bob_sessions = app
        .get(
            "/api/auth/sessions",
            &[("x-access-token", bob["accessToken"].as_str().unwrap())],
        )
        .await;
    let bob_sid = bob_sessions.body[0]["id"].as_str().unwrap();
    let r = app
        .request(
            "DELETE",
            &format!("/api/auth/sessions/{bob_sid}"),
            None,
            &[("x-access-token", access)],
        )
        .await;
    assert_eq!(r.status, 404);
    assert_eq!(
        app.refresh(bob["refreshToken"].as_str().unwrap())
            .await
            .status,
        200
    );
}

async fn password_change_rules(backend: Backend) {
    let app = app!(backend, |c| c.max_sessions_per_account = 5);
    let other = app.user("alice").await;
    let login = app.login("alice", PASSWORD).await.body;
    let access = login["accessToken"].as_str().unwrap();
    let h = [("x-access-token", access)];

    let r = app
        .request(
            "POST",
            "/api/auth/password",
            Some(json!({ "currentPassword": "Wrong#pass1", "newPassword": "New!pass42x" })),
            &h,
        )
        .await;
    assert_eq!((r.status, r.code()), (401, "wrong_password"));
    let r = app
        .request(
            "POST",
            "/api/auth/password",
            Some(json!({ "currentPassword": PASSWORD, "newPassword": "weak" })),
            &h,
        )
        .await;
    assert_eq!((r.status, r.code()), (400, "validation_failed"));
    assert_eq!(r.body["errors"][0]["field"], "newPassword");

    let r = app
        .request(
            "POST",
            "/api/auth/password",
            Some(json!({ "currentPassword": PASSWORD, "newPassword": "New!pass42x" })),
            &h,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.message(), "Password was changed successfully!");
    // Other sessions are gone, this one stays.
    assert_eq!(
        app.refresh(other["refreshToken"].as_str().unwrap())
            .await
            .status,
        403
    );
    assert_eq!(
        app.refresh(login["refreshToken"].as_str().unwrap())
            .await
            .status,
        200
    );
    assert_eq!(app.login("alice", PASSWORD).await.status, 401);
    assert_eq!(app.login("alice", "New!pass42x").await.status, 200);
}

async fn second_login_revokes_first_session(backend: Backend) {
    let app = app!(backend);
    let first = app.user("alice").await;
    let second = app.login("alice", PASSWORD).await.body;
    let r = app.refresh(first["refreshToken"].as_str().unwrap()).await;
    assert_eq!(r.status, 403, "{}", r.text);
    assert_eq!(r.message(), "This refresh token doesn't exist in database");
    let sessions = app
        .get(
            "/api/auth/sessions",
            &[("x-access-token", second["accessToken"].as_str().unwrap())],
        )
        .await;
    assert_eq!(sessions.body.as_array().unwrap().len(), 1);
    assert_eq!(
        app.refresh(second["refreshToken"].as_str().unwrap())
            .await
            .status,
        200
    );
}

async fn max_sessions_keeps_newest(backend: Backend) {
    let app = app!(backend, |c| c.max_sessions_per_account = 2);
    let a = app.user("alice").await;
    let b = app.login("alice", PASSWORD).await.body;
    let c = app.login("alice", PASSWORD).await.body;
    assert_eq!(
        app.refresh(a["refreshToken"].as_str().unwrap())
            .await
            .status,
        403
    );
    assert_eq!(
        app.refresh(b["refreshToken"].as_str().unwrap())
            .await
            .status,
        200
    );
    assert_eq!(
        app.refresh(c["refreshToken"].as_str().unwrap())
            .await
            .status,
        200
    );
}

async fn strict_revocation_stops_access_tokens_at_once(backend: Backend) {
    let app = app!(backend, |c| c.strict_revocation = true);
    let login = app.user("alice").await;
    let access = login["accessToken"].as_str().unwrap();
    assert_eq!(
        app.get("/api/auth/me", &[("x-access-token", access)])
            .await
            .status,
        200
    );
    let r = app
        .request(
            "POST",
            "/api/auth/logout",
            None,
            &[("x-access-token", access)],
        )
        .await;
    assert_eq!(r.status, 200);
    let r = app.get("/api/auth/me", &[("x-access-token", access)]).await;
    assert_eq!((r.status, r.message()), (401, "Unauthorized!"));
}

async fn reuse_grace_answers_rotated_without_revoking(backend: Backend) {
    let app = app!(backend, |c| c.refresh_reuse_grace = 30);
    let login = app.user("alice").await;
    let first = login["refreshToken"].as_str().unwrap();
    let next = app.refresh(first).await.body["refreshToken"]
        .as_str()
        .unwrap()
        .to_string();
    let r = app.refresh(first).await;
    assert_eq!((r.status, r.code()), (401, "refresh_token_rotated"));
    // The family lives on.
    assert_eq!(app.refresh(&next).await.status, 200);
}

async fn failed_logins_are_limited_per_account(backend: Backend) {
    let app = app!(backend, |c| c.failed_logins_per_account = 3);
    app.register("alice").await;
    for _ in 0..3 {
        assert_eq!(app.login("alice", "Wrong#pass1").await.status, 401);
    }
    let r = app.login("alice", PASSWORD).await;
    assert_eq!(r.status, 429, "{}", r.text);
    assert_eq!(r.code(), "rate_limited");
    let retry: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry > 0 && retry <= 900);
    // Another account is not affected.
    app.register("bob").await;
    assert_eq!(app.login("bob", PASSWORD).await.status, 200);
}

async fn failed_logins_are_limited_per_ip(backend: Backend) {
    let app = app!(backend, |c| c.failed_logins_per_ip = 4);
    app.register("alice").await;
    for n in 0..4 {
        assert_eq!(
            app.login(&format!("ghost{n}"), "Wrong#pass1").await.status,
            401
        );
    }
    let r = app.login("alice", PASSWORD).await;
    assert_eq!(r.status, 429);
    assert!(r.headers.contains_key("retry-after"));
}

async fn registrations_are_limited_per_ip(backend: Backend) {
    let app = app!(backend, |c| c.registrations_per_ip_per_hour = 2);
    // Invalid requests do not count.
    assert_eq!(
        app.post("/api/auth/register", json!({ "username": "x" }))
            .await
            .status,
        400
    );
    assert_eq!(app.register("alice").await.status, 200);
    assert_eq!(app.register("bob").await.status, 200);
    let r = app.register("carol").await;
    assert_eq!(r.status, 429, "{}", r.text);
    assert!(r.headers.contains_key("retry-after"));
}

async fn jwks_publishes_the_signing_key(backend: Backend) {
    let app = app!(backend);
    let login = app.user("alice").await;
    let r = app.get("/.well-known/jwks.json", &[]).await;
    assert_eq!(r.status, 200);
    let key = &r.body["keys"][0];
    assert_eq!(
        (
            key["kty"].as_str(),
            key["crv"].as_str(),
            key["alg"].as_str()
        ),
        (Some("OKP"), Some("Ed25519"), Some("EdDSA"))
    );
    // Another service verifies our token with nothing but the JWKS.
    let decoding =
        jsonwebtoken::DecodingKey::from_ed_components(key["x"].as_str().unwrap()).unwrap();
    let header = jsonwebtoken::decode_header(login["accessToken"].as_str().unwrap()).unwrap();
    assert_eq!(header.kid.as_deref(), key["kid"].as_str());
    assert_eq!(
        (header.alg, header.typ.as_deref()),
        (jsonwebtoken::Algorithm::EdDSA, Some("JWT"))
    );
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::EdDSA);
    validation.set_audience(&["brama"]);
    let data = jsonwebtoken::decode::<serde_json::Value>(
        login["accessToken"].as_str().unwrap(),
        &decoding,
        &validation,
    );
    assert!(data.is_ok(), "{data:?}");

    // Beside it an RSA-2048 key (SPEC §14), which signs ID tokens, never access tokens.
    let keys = r.body["keys"].as_array().unwrap();
    let rsa: Vec<&serde_json::Value> = keys.iter().filter(|k| k["kty"] == "RSA").collect();
    assert_eq!(rsa.len(), 1, "{}", r.body);
    let (n, e) = (rsa[0]["n"].as_str().unwrap(), rsa[0]["e"].as_str().unwrap());
    use base64::Engine;
    let modulus = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(n)
        .unwrap();
    assert_eq!((modulus.len(), e), (256, "AQAB"), "2048 bits, e = 65537");
    assert_eq!(
        (rsa[0]["alg"].as_str(), rsa[0]["use"].as_str()),
        (Some("RS256"), Some("sig"))
    );
    let claims =
        json!({ "iss": "http://brama.test", "sub": "s", "aud": "client", "exp": 4102444800u64 });
    let rsa_key = jsonwebtoken::DecodingKey::from_rsa_components(n, e).unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_audience(&["client"]);
    for alg in [
        brama::crypto::jwt::IdTokenAlg::RS256,
        brama::crypto::jwt::IdTokenAlg::EdDSA,
    ] {
        let id_token = app.core.keys.sign_id_token(alg, &claims).unwrap();
        let header = jsonwebtoken::decode_header(&id_token).unwrap();
        let (key, expected_kid) = match alg {
            brama::crypto::jwt::IdTokenAlg::RS256 => (&rsa_key, &rsa[0]["kid"]),
            brama::crypto::jwt::IdTokenAlg::EdDSA => (&decoding, &key["kid"]),
        };
        assert_eq!(header.kid.as_deref(), expected_kid.as_str());
        validation.algorithms = vec![header.alg];
        let verified = jsonwebtoken::decode::<serde_json::Value>(&id_token, key, &validation);
        assert_eq!(
            verified.map(|d| d.claims).ok(),
            Some(claims.clone()),
            "{alg:?}"
        );
        // brama reads its own ID tokens back (an id_token_hint), of either kind.
        let read: serde_json::Value = app
            .core
            .keys
            .verify_id_token(&id_token, "http://brama.test")
            .unwrap();
        assert_eq!(read, claims);
    }
    // An RS256 token is never an access token, even signed by brama's own key.
    let rs256 = app
        .core
        .keys
        .sign_id_token(brama::crypto::jwt::IdTokenAlg::RS256, &claims)
        .unwrap();
    let r = app.get("/api/auth/me", &[("x-access-token", &rs256)]).await;
    assert_eq!(r.status, 401, "{}", r.text);
}

use crate::helpers::outbox_with;

async fn forgot_and_reset_password(backend: Backend) {
    let app = app!(backend);
    let login = app.user("alice").await;

    let known = app
        .post(
            "/api/auth/password/forgot",
            json!({ "email": "Alice@Example.com" }),
        )
        .await;
    assert_eq!(known.status, 200, "{}", known.text);
    let unknown = app
        .post(
            "/api/auth/password/forgot",
            json!({ "email": "nobody@example.com" }),
        )
        .await;
    assert_eq!(
        (unknown.status, &unknown.text),
        (200, &known.text),
        "no enumeration"
    );
    assert_eq!(
        known.message(),
        "If an account uses this address, a link to reset its password is on its way"
    );
    let r = app
        .post(
            "/api/auth/password/forgot",
            json!({ "email": "not an email" }),
        )
        .await;
    assert_eq!((r.status, r.code()), (400, "validation_failed"));

    let emails = outbox_with(&app, 1).await;
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert_eq!(
        app.core.outbox().await.unwrap().len(),
        1,
        "nothing is sent to an unknown address"
    );
    let email = &emails[0];
    assert_eq!(email.recipient, "alice@example.com");
    let prefix = format!("{}/reset#token=", app.core.config.public_url());
    let start = email.body.find(&prefix).expect("link in the body") + prefix.len();
    let token: String = email.body[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    assert_eq!(token.len(), 43);
    app.secret(&token);

    // A weak password is refused without using the link up.
    let r = app
        .post(
            "/api/auth/password/reset",
            json!({ "token": token, "password": "weak" }),
        )
        .await;
    assert_eq!((r.status, r.code()), (400, "validation_failed"));
    let r = app
        .post(
            "/api/auth/password/reset",
            json!({ "token": token, "password": "Fresh#Start9" }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.message(),
        "Password was reset successfully! Please sign in"
    );
    // Every session ended; the new password works, the old does not.
    assert_eq!(
        app.refresh(login["refreshToken"].as_str().unwrap())
            .await
            .status,
        403
    );
    assert_eq!(app.login("alice", PASSWORD).await.status, 401);
    assert_eq!(app.login("alice", "Fresh#Start9").await.status, 200);
    // Single use.
    let r = app
        .post(
            "/api/auth/password/reset",
            json!({ "token": token, "password": "Other#Start9" }),
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.body,
        json!({ "message": "This password reset link is invalid, used or expired", "code": "reset_token_invalid" })
    );

    // Expired after an hour.
    app.post(
        "/api/auth/password/forgot",
        json!({ "email": "alice@example.com" }),
    )
    .await;
    let emails = outbox_with(&app, 2).await;
    let body = &emails[1].body;
    let start = body.find(&prefix).unwrap() + prefix.len();
    let token: String = body[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    app.secret(&token);
    app.execute_sql(
        "UPDATE password_resets SET expires_at = 1 WHERE token_hash = $1",
        &[&brama::crypto::token_hash(&token)],
    )
    .await;
    let r = app
        .post(
            "/api/auth/password/reset",
            json!({ "token": token, "password": "Other#Start9" }),
        )
        .await;
    assert_eq!((r.status, r.code()), (400, "reset_token_invalid"));
}

async fn forgot_password_is_rate_limited(backend: Backend) {
    let app = app!(backend, |c| c.password_resets_per_hour = 2);
    for n in 0..2 {
        let r = app
            .post(
                "/api/auth/password/forgot",
                json!({ "email": format!("someone{n}@example.com") }),
            )
            .await;
        assert_eq!(r.status, 200);
    }
    let r = app
        .post(
            "/api/auth/password/forgot",
            json!({ "email": "someone9@example.com" }),
        )
        .await;
    assert_eq!((r.status, r.code()), (429, "rate_limited"));
    assert!(r.headers.contains_key("retry-after"));
}

async fn full_hash_queue_answers_503_and_other_routes_keep_answering(backend: Backend) {
    // One slow hashing thread and room for one waiting job.
    let app = app!(backend, |c| {
        c.hash_workers = 1;
        c.hash_queue = 1;
        c.argon2_memory_kib = 32 * 1024;
        c.argon2_iterations = 3;
    });
    app.register("alice").await;
    let app = std::sync::Arc::new(app);
    let logins: Vec<_> = (0..8)
        .map(|_| {
            let app = app.clone();
            tokio::spawn(async move { app.login("alice", PASSWORD).await })
        })
        .collect();
    // While the queue is full, the runtime is free: health and token checks answer.
    let health = app.get("/healthz", &[]).await;
    assert_eq!(health.status, 200);
    let mut busy = 0;
    for task in logins {
        let r = task.await.unwrap();
        match r.status {
            200 => {}
            503 => {
                busy += 1;
                assert_eq!(r.code(), "busy");
                assert_eq!(r.headers["retry-after"], "1");
                assert_eq!(r.message(), "The server is busy, try again in a moment");
            }
            other => panic!("unexpected {other}: {}", r.text),
        }
    }
    assert!(busy >= 1, "a full queue must answer 503");
}

async fn login_upgrades_hashes_made_with_old_parameters(backend: Backend) {
    let app = app!(backend);
    app.register("alice").await;
    async fn stored(app: &crate::helpers::TestApp) -> String {
        app.store()
            .await
            .account_by_login("alice")
            .await
            .unwrap()
            .unwrap()
            .password_hash
            .unwrap()
    }
    assert!(stored(&app).await.contains("m=256,t=1,p=1"));
    // The operator raises the cost; the next login re-hashes with it.
    let upgraded = app.sibling(|c| c.argon2_memory_kib = 512).await;
    assert_eq!(upgraded.login("alice", PASSWORD).await.status, 200);
    let hash = stored(&upgraded).await;
    assert!(hash.starts_with("$argon2id$v=19$m=512,t=1,p=1$"), "{hash}");
    // A failed login changes nothing.
    let before = stored(&upgraded).await;
    let lower = app.sibling(|c| c.argon2_memory_kib = 128).await;
    assert_eq!(lower.login("alice", "Wrong#pass1").await.status, 401);
    assert_eq!(stored(&lower).await, before);
}

async fn nul_characters_are_refused_before_the_database(backend: Backend) {
    // PostgreSQL cannot store U+0000; it must never get that far.
    let app = app!(backend);
    let login = app.user("alice").await;
    let access = login["accessToken"].as_str().unwrap();
    let r = app
        .post(
            "/api/auth/login",
            json!({ "username": "al\u{0}ice", "password": PASSWORD }),
        )
        .await;
    assert_eq!((r.status, r.code()), (400, "invalid_field"), "{}", r.text);
    assert_eq!(r.message(), "must not contain the NUL character");
    let r = app
        .request(
            "DELETE",
            "/api/auth/sessions/%00",
            None,
            &[("x-access-token", access)],
        )
        .await;
    assert_eq!((r.status, r.code()), (404, "not_found"));
    let r = app
        .get(
            "/api/membership/members?q=a%00b",
            &[("x-access-token", access)],
        )
        .await;
    assert_eq!((r.status, r.code()), (400, "invalid_query"));
    // An escaped backslash followed by "u0000" is ordinary text.
    let r = app
        .post(
            "/api/auth/login",
            json!({ "username": "al\\u0000ice", "password": PASSWORD }),
        )
        .await;
    assert_eq!(r.status, 401);
}

async fn cli_created_first_account_ends_the_owner_bootstrap(backend: Backend) {
    // The operator's `brama user create --role admin` comes first; a later sign-up must not
    // outrank it by becoming owner.
    let app = app!(backend);
    let admin = app
        .user_with_role("operator", brama::core::Role::Admin)
        .await;
    assert_eq!(admin["roles"], json!(["ROLE_ADMIN"]));
    assert_eq!(
        app.user("first_signup").await["roles"],
        json!(["ROLE_USER"])
    );
}

/// How many failed logins of `account_id` were checked against a password (each writes one
/// `login_failed` event; a refusal by the limit writes none).
async fn failed_logins_checked(app: &crate::helpers::TestApp, account_id: &str) -> usize {
    app.store()
        .await
        .audit_events(
            brama::store::DEFAULT_ORGANIZATION,
            &Default::default(),
            1000,
        )
        .await
        .unwrap()
        .iter()
        .filter(|e| e.action == "login_failed" && e.target.as_deref() == Some(account_id))
        .count()
}

async fn concurrent_wrong_passwords_reach_the_hasher_at_most_the_limit(backend: Backend) {
    let app = app!(backend, |c| c.failed_logins_per_account = 10);
    let alice = app.user("alice").await;
    let id = alice["id"].as_str().unwrap();
    let answers = crate::helpers::all((0..60).map(|_| app.login("alice", "Wrong#pass1"))).await;
    let (mut wrong, mut limited) = (0, 0);
    for r in &answers {
        match r.status {
            401 => wrong += 1,
            429 => {
                limited += 1;
                assert_eq!(r.code(), "rate_limited");
                assert!(r.headers.contains_key("retry-after"), "{:?}", r.headers);
            }
            other => panic!("unexpected {other}: {}", r.text),
        }
    }
    assert_eq!((wrong, limited), (10, 50));
    assert_eq!(failed_logins_checked(&app, id).await, 10);
    // The right password is refused too while the account is limited.
    let r = app.login("alice", PASSWORD).await;
    assert_eq!(r.status, 429, "{}", r.text);
}

async fn username_and_email_share_one_budget(backend: Backend) {
    let app = app!(backend, |c| c.failed_logins_per_account = 3);
    app.register("alice").await;
    assert_eq!(app.login("alice", "Wrong#pass1").await.status, 401);
    assert_eq!(
        app.login("ALICE@example.com", "Wrong#pass1").await.status,
        401
    );
    assert_eq!(
        app.login("alice@example.com", "Wrong#pass1").await.status,
        401
    );
    let r = app.login("alice", PASSWORD).await;
    assert_eq!(
        r.status, 429,
        "two names, one account, one budget: {}",
        r.text
    );
}

async fn names_without_an_account_are_limited_alike(backend: Backend) {
    let app = app!(backend, |c| c.failed_logins_per_account = 2);
    for _ in 0..2 {
        assert_eq!(app.login("ghost", "Wrong#pass1").await.status, 401);
    }
    let r = app.login("GHOST", "Wrong#pass1").await;
    assert_eq!((r.status, r.code()), (429, "rate_limited"), "{}", r.text);
}

async fn wrong_current_passwords_count_as_failed_logins(backend: Backend) {
    let app = app!(backend, |c| c.failed_logins_per_account = 3);
    let login = app.user("alice").await;
    let access = login["accessToken"].as_str().unwrap().to_string();
    let change = |current: &str| json!({ "currentPassword": current, "newPassword": "Qv7#otter9" });
    for _ in 0..3 {
        let r = app
            .request(
                "POST",
                "/api/auth/password",
                Some(change("Wrong#pass1")),
                &[("x-access-token", &access)],
            )
            .await;
        assert_eq!((r.status, r.code()), (401, "wrong_password"), "{}", r.text);
    }
    let r = app
        .request(
            "POST",
            "/api/auth/password",
            Some(change(PASSWORD)),
            &[("x-access-token", &access)],
        )
        .await;
    assert_eq!((r.status, r.code()), (429, "rate_limited"), "{}", r.text);
    assert_eq!(app.login("alice", PASSWORD).await.status, 429);
}

async fn successful_logins_give_the_address_its_place_back(backend: Backend) {
    let app = app!(backend, |c| c.failed_logins_per_ip = 3);
    app.register("alice").await;
    // Many people behind one address log in correctly all day.
    for n in 0..8 {
        let r = app.login("alice", PASSWORD).await;
        assert_eq!(r.status, 200, "login {n}: {}", r.text);
    }
    // Failures still count.
    for _ in 0..3 {
        assert_eq!(app.login("alice", "Wrong#pass1").await.status, 401);
    }
    assert_eq!(app.login("alice", PASSWORD).await.status, 429);
}

/// Resets and activations with tokens that do not work, sent at once while a real user logs in,
/// with one hashing thread and a queue of two: none of them may hash, so the login gets in.
async fn a_flood_of_bogus_links_cannot_starve_a_login(backend: Backend) {
    let app = app!(backend, |c| {
        c.hash_workers = 1;
        c.hash_queue = 2;
        // A real cost, so that hashing flood requests would hold the queue.
        c.argon2_memory_kib = 19456;
        c.argon2_iterations = 2;
    });
    app.register("alice").await;
    let reset = |n: usize| {
        app.post(
            "/api/auth/password/reset",
            json!({ "token": format!("bogus-reset-{n}"), "password": "Qv7#otter9" }),
        )
    };
    let activate = |n: usize| {
        app.post(
            "/company/activate",
            json!({ "token": format!("bogus-activation-{n}"), "password": "Qv7#otter9", "name": "X" }),
        )
    };
    let flood = crate::helpers::all((0..150).map(reset));
    let more = crate::helpers::all((0..150).map(activate));
    let login = async {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        app.login("alice", PASSWORD).await
    };
    let (resets, activations, login) = tokio::join!(flood, more, login);
    assert_eq!(login.status, 200, "{}", login.text);
    for r in &resets {
        assert_eq!(
            (r.status, r.code()),
            (400, "reset_token_invalid"),
            "{}",
            r.text
        );
    }
    for r in &activations {
        assert_eq!(r.status, 400, "{}", r.text);
        assert_eq!(
            r.body["info"], "Ссылка активации недействительна, использована или устарела",
            "{}",
            r.text
        );
    }
}

async fn bogus_link_tokens_count_against_the_address(backend: Backend) {
    let app = app!(backend, |c| c.failed_logins_per_ip = 3);
    for n in 0..3 {
        let r = app
            .post(
                "/api/auth/password/reset",
                json!({ "token": format!("guess-{n}"), "password": "Qv7#otter9" }),
            )
            .await;
        assert_eq!(r.code(), "reset_token_invalid", "{}", r.text);
    }
    let r = app
        .post(
            "/company/activate",
            json!({ "token": "guess-4", "password": "Qv7#otter9", "name": "X" }),
        )
        .await;
    assert_eq!(r.status, 429, "{}", r.text);
    assert!(r.headers.contains_key("retry-after"));
}

/// The newest link in the outbox for `path`.
async fn newest_link(app: &crate::helpers::TestApp, n: usize, path: &str) -> String {
    let emails = outbox_with(app, n).await;
    crate::helpers::link_token(app, &emails[n - 1].body, path)
}

async fn a_reset_or_a_change_ends_every_reset_link(backend: Backend) {
    let app = app!(backend);
    let login = app.user("alice").await;
    let forgot = || {
        app.post(
            "/api/auth/password/forgot",
            json!({ "email": "alice@example.com" }),
        )
    };
    let reset = |token: String, password: &str| {
        app.post(
            "/api/auth/password/reset",
            json!({ "token": token, "password": password }),
        )
    };
    assert_eq!(forgot().await.status, 200);
    let first = newest_link(&app, 1, "/reset").await;
    assert_eq!(forgot().await.status, 200);
    let second = newest_link(&app, 2, "/reset").await;
    assert_eq!(reset(first, "Qv7#otter9").await.status, 200);
    let r = reset(second, "Zz9!badger1").await;
    assert_eq!(
        (r.status, r.code()),
        (400, "reset_token_invalid"),
        "{}",
        r.text
    );

    // A password change ends the links asked for before it too.
    assert_eq!(forgot().await.status, 200);
    let third = newest_link(&app, 3, "/reset").await;
    let fresh = app.login("alice", "Qv7#otter9").await;
    let access = fresh.body["accessToken"].as_str().unwrap().to_string();
    let change = json!({ "currentPassword": "Qv7#otter9", "newPassword": "Wx6$heron2" });
    let r = app
        .request(
            "POST",
            "/api/auth/password",
            Some(change),
            &[("x-access-token", &access)],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = reset(third, "Zz9!badger1").await;
    assert_eq!(
        (r.status, r.code()),
        (400, "reset_token_invalid"),
        "{}",
        r.text
    );
    assert_eq!(app.login("alice", "Wx6$heron2").await.status, 200);
    drop(login);
}

/// Through a trusted proxy, IPv6 clients are counted by their /64: one customer's network is
/// one budget, not 2^64 of them.
async fn ipv6_clients_are_counted_by_their_network(backend: Backend) {
    let app = app!(backend, |c| {
        c.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
        c.failed_logins_per_ip = 2;
    });
    async fn wrong_from(app: &crate::helpers::TestApp, user: &str, address: &str) -> u16 {
        let body = json!({ "username": user, "password": "Wrong#pass1" });
        let r = app
            .request(
                "POST",
                "/api/auth/login",
                Some(body),
                &[("x-forwarded-for", address)],
            )
            .await;
        assert!(matches!(r.status, 401 | 429), "{}", r.text);
        r.status
    }
    // Different names, so that only the address budget is in play.
    let wrong = |user: &'static str, address: &'static str| wrong_from(&app, user, address);
    assert_eq!(wrong("ghost1", "2001:db8:1:2::1").await, 401);
    assert_eq!(
        wrong("ghost2", "2001:db8:1:2:ffff:ffff:ffff:fffe").await,
        401
    );
    assert_eq!(wrong("ghost3", "2001:db8:1:2::abcd").await, 429);
    // The next network is another client, and so is an IPv4 address.
    assert_eq!(wrong("ghost4", "2001:db8:1:3::1").await, 401);
    assert_eq!(wrong("ghost5", "203.0.113.9").await, 401);
}

/// The limits of one kind never end another's early, and a client over its own limit adds no
/// counters for the addresses it makes up. The failed-login window is one second here, so that
/// a clean-up keyed to it (as it once was) would have dropped the hourly registration counter.
async fn a_flood_of_made_up_addresses_leaves_other_limits_alone(backend: Backend) {
    let app = app!(backend, |c| {
        c.registrations_per_ip_per_hour = 1;
        c.failed_login_window_secs = 1;
        c.password_resets_per_hour = 5;
    });
    assert_eq!(app.register("alice").await.status, 200);
    assert_eq!(app.register("bob").await.status, 429);
    for chunk in 0..100 {
        let forgot = (0..100).map(|n| {
            app.post(
                "/api/auth/password/forgot",
                json!({ "email": format!("made-up-{chunk}-{n}@example.com") }),
            )
        });
        for r in crate::helpers::all(forgot).await {
            assert!(matches!(r.status, 200 | 429), "{}", r.text);
        }
    }
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert_eq!(app.login("alice", "Wrong#pass1").await.status, 401);
    let r = app.register("carol").await;
    assert_eq!((r.status, r.code()), (429, "rate_limited"), "{}", r.text);
}
