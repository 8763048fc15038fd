//! SPEC §6-7: the browser flow of seed 000 (CSRF pair, `token` cookie) and its CSRF rules.

use serde_json::json;

use crate::helpers::{Backend, PASSWORD, TestApp};
use crate::{app, both_backends};

both_backends!(
    csrf_route_sets_the_pair,
    browser_login_sets_http_only_token_cookie,
    login_with_session_token_needs_the_header,
    cookie_authenticated_unsafe_requests_need_csrf,
    cross_site_cookie_requests_are_refused,
    browser_register_logs_the_user_in,
    browser_refresh_answers_with_a_new_cookie,
    header_token_requests_need_no_csrf,
    https_public_url_makes_cookies_secure_and_sends_hsts,
    security_headers_on_every_answer,
    cors_is_off_unless_configured,
);

/// Logs in the way the page does and returns (sessionId, sessionToken, token cookie, body).
async fn browser_login(
    app: &TestApp,
    username: &str,
) -> (String, String, String, serde_json::Value) {
    let (id, csrf_cookie) = app.csrf().await;
    let cookie = format!("sessionToken={csrf_cookie}");
    let r = app
        .request(
            "POST",
            "/api/auth/login",
            Some(json!({ "username": username, "password": PASSWORD })),
            &[("cookie", &cookie), ("sessionId", &id)],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let token = r.set_cookie("token").expect("token cookie");
    (id, csrf_cookie, token, r.body)
}

async fn csrf_route_sets_the_pair(backend: Backend) {
    let app = app!(backend);
    let r = app.get("/api/auth/csrf", &[]).await;
    assert_eq!(r.status, 200);
    let keys: Vec<&String> = r.body.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["sessionId"]);
    let header = r.set_cookie_header("sessionToken").expect("cookie");
    assert!(
        header.contains("HttpOnly")
            && header.contains("SameSite=Strict")
            && header.contains("Path=/"),
        "{header}"
    );
    assert!(
        !header.contains("Secure"),
        "plain http: no Secure flag ({header})"
    );
    // The cookie is bound to the id, not a copy of it.
    assert_ne!(
        r.set_cookie("sessionToken").unwrap(),
        r.body["sessionId"].as_str().unwrap()
    );
}

async fn browser_login_sets_http_only_token_cookie(backend: Backend) {
    let app = app!(backend);
    app.register("alice").await;
    let (_, _, token, body) = browser_login(&app, "alice").await;
    assert!(
        body.get("accessToken").is_none(),
        "the access token stays out of reach of scripts"
    );
    assert_eq!(body["username"], "alice");
    assert_eq!(body["refreshToken"].as_str().unwrap().len(), 43);
    assert!(app.core.keys.verify(&token).is_ok());

    let (id, csrf_cookie) = app.csrf().await;
    let cookie = format!("sessionToken={csrf_cookie}");
    let r = app
        .request(
            "POST",
            "/api/auth/login",
            Some(json!({ "username": "alice", "password": PASSWORD })),
            &[("cookie", &cookie), ("sessionId", &id)],
        )
        .await;
    let header = r.set_cookie_header("token").unwrap();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=600"] {
        assert!(
            header.contains(attribute),
            "{attribute} missing in {header}"
        );
    }
    // The cookie authenticates safe requests by itself.
    let token = r.set_cookie("token").unwrap();
    let r = app
        .get("/api/auth/me", &[("cookie", &format!("token={token}"))])
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["username"], "alice");
}

async fn login_with_session_token_needs_the_header(backend: Backend) {
    let app = app!(backend);
    app.register("alice").await;
    let (id, csrf_cookie) = app.csrf().await;
    let cookie = format!("sessionToken={csrf_cookie}");
    let body = json!({ "username": "alice", "password": PASSWORD });

    let r = app
        .request(
            "POST",
            "/api/auth/login",
            Some(body.clone()),
            &[("cookie", &cookie)],
        )
        .await;
    assert_eq!((r.status, r.code()), (403, "csrf_missing"), "{}", r.text);
    assert_eq!(r.message(), "CSRF token missing: send the sessionId header");

    let (other_id, _) = app.csrf().await;
    let r = app
        .request(
            "POST",
            "/api/auth/login",
            Some(body.clone()),
            &[("cookie", &cookie), ("sessionId", &other_id)],
        )
        .await;
    assert_eq!((r.status, r.code()), (403, "csrf_invalid"));

    // X-CSRF-Token is accepted as well.
    let r = app
        .request(
            "POST",
            "/api/auth/login",
            Some(body),
            &[("cookie", &cookie), ("x-csrf-token", &id)],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
}

async fn cookie_authenticated_unsafe_requests_need_csrf(backend: Backend) {
    let app = app!(backend);
    app.register("alice").await;
    let (id, csrf_cookie, token, body) = browser_login(&app, "alice").await;
    let only_token = format!("token={token}");
    let both = format!("token={token}; sessionToken={csrf_cookie}");

    let r = app
        .request("POST", "/api/auth/logout", None, &[("cookie", &only_token)])
        .await;
    assert_eq!((r.status, r.code()), (403, "csrf_missing"));
    let r = app
        .request("POST", "/api/auth/logout", None, &[("cookie", &both)])
        .await;
    assert_eq!((r.status, r.code()), (403, "csrf_missing"));
    let r = app
        .request(
            "POST",
            "/api/auth/logout",
            None,
            &[("cookie", &both), ("sessionId", "forged")],
        )
        .await;
    assert_eq!((r.status, r.code()), (403, "csrf_invalid"));
    // Refused requests changed nothing: the session still refreshes... after which we log out.
    let r = app
        .request(
            "POST",
            "/api/auth/refreshtoken",
            None,
            &[("cookie", &both), ("sessionId", &id)],
        )
        .await;
    assert_eq!(r.body, json!({ "message": "Authorized" }));

    let r = app
        .request(
            "POST",
            "/api/auth/logout",
            None,
            &[("cookie", &both), ("sessionId", &id)],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.set_cookie_header("token").unwrap().contains("Max-Age=0"));
    assert_eq!(
        app.refresh(body["refreshToken"].as_str().unwrap())
            .await
            .status,
        403
    );
}

async fn cross_site_cookie_requests_are_refused(backend: Backend) {
    let app = app!(backend);
    app.register("alice").await;
    let (id, csrf_cookie, token, _) = browser_login(&app, "alice").await;
    let both = format!("token={token}; sessionToken={csrf_cookie}");
    let cross = [
        ("cookie", both.as_str()),
        ("sessionId", id.as_str()),
        ("origin", "https://evil.example"),
    ];
    let r = app.request("POST", "/api/auth/logout", None, &cross).await;
    assert_eq!((r.status, r.code()), (403, "cross_site"), "{}", r.text);
    assert_eq!(r.message(), "Cross-site request refused");
    let r = app
        .request(
            "POST",
            "/api/auth/logout",
            None,
            &[
                ("cookie", &both),
                ("sessionId", &id),
                ("sec-fetch-site", "cross-site"),
            ],
        )
        .await;
    assert_eq!((r.status, r.code()), (403, "cross_site"));
    let r = app
        .request(
            "POST",
            "/api/auth/logout",
            None,
            &[("cookie", &both), ("sessionId", &id), ("origin", "null")],
        )
        .await;
    assert_eq!(r.status, 403);
    // Login CSRF from another site.
    let r = app
        .request(
            "POST",
            "/api/auth/login",
            Some(json!({ "username": "alice", "password": PASSWORD })),
            &[
                ("cookie", &format!("sessionToken={csrf_cookie}")),
                ("sessionId", &id),
                ("origin", "https://evil.example"),
            ],
        )
        .await;
    assert_eq!(r.status, 403);
    // The same request from our own origin goes through.
    let origin = format!("http://{}", app.addr);
    let r = app
        .request(
            "POST",
            "/api/auth/logout",
            None,
            &[
                ("cookie", &both),
                ("sessionId", &id),
                ("origin", &origin),
                ("sec-fetch-site", "same-origin"),
            ],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
}

async fn browser_register_logs_the_user_in(backend: Backend) {
    let app = app!(backend);
    let (id, csrf_cookie) = app.csrf().await;
    let cookie = format!("sessionToken={csrf_cookie}");
    let body = json!({ "username": "alice", "email": "alice@example.com", "password": PASSWORD });
    let r = app
        .request(
            "POST",
            "/api/auth/register",
            Some(body.clone()),
            &[("cookie", &cookie)],
        )
        .await;
    assert_eq!((r.status, r.code()), (403, "csrf_missing"));
    let r = app
        .request(
            "POST",
            "/api/auth/register",
            Some(body),
            &[("cookie", &cookie), ("sessionId", &id)],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.message(), "User was registered successfully!");
    assert!(r.body.get("accessToken").is_none());
    assert!(r.body["refreshToken"].is_string());
    let token = r.set_cookie("token").expect("logged in by cookie");
    let me = app
        .get("/api/auth/me", &[("cookie", &format!("token={token}"))])
        .await;
    assert_eq!(me.body["username"], "alice");
}

async fn browser_refresh_answers_with_a_new_cookie(backend: Backend) {
    let app = app!(backend);
    app.register("alice").await;
    let (id, csrf_cookie, _, body) = browser_login(&app, "alice").await;
    let refresh = body["refreshToken"].as_str().unwrap();
    let cookie = format!("sessionToken={csrf_cookie}");
    let r = app
        .request(
            "POST",
            "/api/auth/refreshtoken",
            Some(json!({ "refreshToken": refresh })),
            &[("cookie", &cookie)],
        )
        .await;
    assert_eq!((r.status, r.code()), (403, "csrf_missing"));
    let r = app
        .request(
            "POST",
            "/api/auth/refreshtoken",
            Some(json!({ "refreshToken": refresh })),
            &[("cookie", &cookie), ("sessionId", &id)],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let keys: Vec<&String> = r.body.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["refreshToken"]);
    let token = r.set_cookie("token").expect("new token cookie");
    assert!(app.core.keys.verify(&token).is_ok());
}

async fn header_token_requests_need_no_csrf(backend: Backend) {
    let app = app!(backend);
    let login = app.user("alice").await;
    let access = login["accessToken"].as_str().unwrap();
    // Even from another origin: a header token is not ambient authority.
    let r = app
        .request(
            "POST",
            "/api/auth/logout",
            None,
            &[
                ("x-access-token", access),
                ("origin", "https://front.example"),
            ],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
}

async fn https_public_url_makes_cookies_secure_and_sends_hsts(backend: Backend) {
    let app = app!(backend, |c| c.public_url =
        Some("https://auth.example.org".into()));
    let r = app.get("/api/auth/csrf", &[]).await;
    assert!(
        r.set_cookie_header("sessionToken")
            .unwrap()
            .contains("Secure")
    );
    assert!(
        r.headers["strict-transport-security"]
            .to_str()
            .unwrap()
            .starts_with("max-age=")
    );
    app.register("alice").await;
    let (_, _, _, _) = browser_login(&app, "alice").await;
    let (id, csrf_cookie) = app.csrf().await;
    let r = app
        .request(
            "POST",
            "/api/auth/login",
            Some(json!({ "username": "alice", "password": PASSWORD })),
            &[
                ("cookie", &format!("sessionToken={csrf_cookie}")),
                ("sessionId", &id),
            ],
        )
        .await;
    assert!(r.set_cookie_header("token").unwrap().contains("Secure"));
    // The issuer is the public URL.
    let claims = app
        .core
        .keys
        .verify(&r.set_cookie("token").unwrap())
        .unwrap();
    assert_eq!(claims.iss, "https://auth.example.org");
}

async fn security_headers_on_every_answer(backend: Backend) {
    let app = app!(backend);
    for path in ["/healthz", "/api/auth/me", "/no/such/route"] {
        let r = app.get(path, &[]).await;
        let csp = r.headers["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("frame-ancestors 'none'")
                && csp.contains("script-src 'self'")
                && !csp.contains("unsafe-inline"),
            "{csp}"
        );
        assert_eq!(r.headers["x-content-type-options"], "nosniff");
        assert_eq!(r.headers["referrer-policy"], "no-referrer");
        assert!(r.headers.contains_key("x-request-id"));
        assert!(
            !r.headers.contains_key("strict-transport-security"),
            "no HSTS on plain http"
        );
    }
    let r = app.get("/readyz", &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["status"], "ready");

    // The request id: a fresh random UUID for each request, or the client's own when it sends
    // a usable one (one layer makes them all since issue 18).
    let ids: Vec<String> = [
        app.get("/healthz", &[]).await,
        app.get("/healthz", &[]).await,
    ]
    .iter()
    .map(|r| r.headers["x-request-id"].to_str().unwrap().to_string())
    .collect();
    for id in &ids {
        let uuid = uuid::Uuid::parse_str(id).unwrap_or_else(|e| panic!("{id}: {e}"));
        assert_eq!(uuid.get_version_num(), 4, "{id}");
        assert_eq!(id, &uuid.hyphenated().to_string(), "lower-case, hyphenated");
    }
    assert_ne!(ids[0], ids[1]);
    let r = app
        .get("/api/auth/me", &[("x-request-id", "trace-42.a")])
        .await;
    assert_eq!(r.headers["x-request-id"], "trace-42.a");
    let long = "x".repeat(129);
    let r = app.get("/healthz", &[("x-request-id", &long)]).await;
    let id = r.headers["x-request-id"].to_str().unwrap();
    assert!(
        uuid::Uuid::parse_str(id).is_ok(),
        "a 129-character id is replaced: {id}"
    );
    // An id with a space or a brace could make the access line seem to hold other fields.
    for forging in ["x method=POST path=/admin", "x}: brama", "\"x\""] {
        let r = app.get("/healthz", &[("x-request-id", forging)]).await;
        let id = r.headers["x-request-id"].to_str().unwrap();
        assert!(
            uuid::Uuid::parse_str(id).is_ok(),
            "{forging:?} is replaced: {id}"
        );
    }
    let r = app
        .get(
            "/healthz",
            &[(
                "x-request-id",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            )],
        )
        .await;
    assert_eq!(
        r.headers["x-request-id"], "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "a trace id is kept"
    );
    // Every answer says no cache may keep it, and a handler's own headers are kept: the
    // API docs' CSP allows inline styles.
    assert_eq!(r.headers["cache-control"], "no-store");
    let docs = app.get("/docs/", &[]).await;
    let csp = docs.headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("style-src 'self' 'unsafe-inline'"), "{csp}");
    assert_eq!(docs.headers["x-frame-options"], "DENY");
}

async fn cors_is_off_unless_configured(backend: Backend) {
    let preflight = [
        ("origin", "https://front.example"),
        ("access-control-request-method", "POST"),
        (
            "access-control-request-headers",
            "content-type,x-access-token",
        ),
    ];
    let app = app!(backend);
    let r = app
        .request("OPTIONS", "/api/auth/login", None, &preflight)
        .await;
    assert!(!r.headers.contains_key("access-control-allow-origin"));
    let r = app
        .get("/healthz", &[("origin", "https://front.example")])
        .await;
    assert!(!r.headers.contains_key("access-control-allow-origin"));

    let app = app!(backend, |c| c.cors_origins =
        vec!["https://front.example".into()]);
    let r = app
        .request("OPTIONS", "/api/auth/login", None, &preflight)
        .await;
    assert!(r.status < 300, "{} {}", r.status, r.text);
    assert_eq!(
        r.headers["access-control-allow-origin"],
        "https://front.example"
    );
    assert_eq!(r.headers["access-control-allow-credentials"], "true");
    let allowed = r.headers["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(allowed.contains("x-access-token"), "{allowed}");
    // Other origins get nothing.
    let r = app
        .request(
            "OPTIONS",
            "/api/auth/login",
            None,
            &[
                ("origin", "https://evil.example"),
                ("access-control-request-method", "POST"),
            ],
        )
        .await;
    assert!(!r.headers.contains_key("access-control-allow-origin"));
    // A configured origin may log in with cookies: it is not cross-site for the CSRF check.
    app.register("alice").await;
    let (id, csrf_cookie) = app.csrf().await;
    let r = app
        .request(
            "POST",
            "/api/auth/login",
            Some(json!({ "username": "alice", "password": PASSWORD })),
            &[
                ("cookie", &format!("sessionToken={csrf_cookie}")),
                ("sessionId", &id),
                ("origin", "https://front.example"),
                ("sec-fetch-site", "cross-site"),
            ],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.headers["access-control-allow-origin"],
        "https://front.example"
    );
}
