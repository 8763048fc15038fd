//! SPEC §7 "Bad input never gets a 500": malformed bodies, headers, paths and methods at every
//! route, on both backends; each answer is a 4xx in the Membership envelope, and nothing stored
//! is lost or reached through an injection string.

use std::time::Duration;

use reqwest::Method;
use reqwest::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use serde_json::{Value, json};

use crate::helpers::{Backend, PASSWORD, Resp, TestApp};
use crate::{app, both_backends};

both_backends!(
    bad_input_at_every_route_gets_a_4xx_envelope,
    injection_strings_reach_no_account,
    unusual_unicode_usernames_follow_the_username_rule,
    unknown_json_fields_are_ignored,
    trailing_garbage_after_json_is_invalid_json,
    wrong_typed_field_is_named_in_the_message,
    a_body_sent_without_a_length_is_refused_past_the_limit,
);

/// The fields any route reads; a bad value in all of them reaches whichever one the route parses.
/// `role` comes before `roles` so a string-typed field meets a bad value first.
const FIELDS: [&str; 16] = [
    "username",
    "email",
    "password",
    "currentPassword",
    "newPassword",
    "refreshToken",
    "token",
    "role",
    "roles",
    "status",
    "code",
    "recoveryCode",
    "mfaToken",
    "name",
    "surname",
    "newEmail",
];

const INJECTIONS: [&str; 8] = [
    "' OR 1=1 --",
    "\"; DROP TABLE accounts; --",
    "alice' OR '1'='1",
    "alice'--",
    "alice\" OR \"1\"=\"1",
    "alice'; UPDATE accounts SET role='owner'; --",
    // LIKE wildcards: a lookup written with LIKE would match alice.
    "%",
    "_lice",
];

/// How a route treats its body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reads {
    /// Must be `application/json` (register, login, password, ...).
    Json,
    /// Optional, parsed as JSON whatever its type (refreshtoken).
    OptionalJson,
    /// Not read at all.
    Nothing,
}

struct Route {
    method: Method,
    path: String,
    /// Sent with a valid access token, so the body is parsed and not refused for want of one.
    auth: bool,
    reads: Reads,
}

fn routes() -> Vec<Route> {
    let route = |method: Method, path: &str, auth: bool, reads: Reads| Route {
        method,
        path: path.to_string(),
        auth,
        reads,
    };
    let some_session = format!("/api/auth/sessions/{}", uuid::Uuid::new_v4());
    // Nobody's account: a PATCH that got through parsing would change nothing.
    let some_account = format!("/api/admin/accounts/{}", uuid::Uuid::new_v4());
    vec![
        route(Method::POST, "/api/auth/register", false, Reads::Json),
        route(Method::POST, "/api/auth/login", false, Reads::Json),
        route(
            Method::POST,
            "/api/auth/refreshtoken",
            false,
            Reads::OptionalJson,
        ),
        route(Method::POST, "/api/auth/password", true, Reads::Json),
        route(
            Method::POST,
            "/api/auth/password/forgot",
            false,
            Reads::Json,
        ),
        route(Method::POST, "/api/auth/password/reset", false, Reads::Json),
        route(Method::POST, "/api/auth/logout", true, Reads::Nothing),
        route(Method::POST, "/api/auth/logout-all", true, Reads::Nothing),
        route(Method::GET, "/api/auth/csrf", false, Reads::Nothing),
        route(Method::GET, "/api/auth/me", true, Reads::Nothing),
        route(Method::GET, "/api/auth/me/export", true, Reads::Nothing),
        // Every body sent here is refused before anything is deleted: none carries the
        // account's password.
        route(Method::DELETE, "/api/auth/me", true, Reads::Json),
        route(Method::GET, "/api/auth/sessions", true, Reads::Nothing),
        route(Method::DELETE, &some_session, true, Reads::Nothing),
        route(Method::GET, "/api/admin/accounts", true, Reads::Nothing),
        route(Method::GET, &some_account, true, Reads::Nothing),
        route(Method::PATCH, &some_account, true, Reads::Json),
        route(Method::GET, "/api/admin/audit", true, Reads::Nothing),
        route(
            Method::DELETE,
            &format!("{some_account}/mfa"),
            true,
            Reads::Nothing,
        ),
        // SPEC §14: OpenID Connect clients.
        route(Method::GET, "/api/admin/oidc-clients", true, Reads::Nothing),
        route(Method::POST, "/api/admin/oidc-clients", true, Reads::Json),
        route(
            Method::DELETE,
            "/api/admin/oidc-clients/nope",
            true,
            Reads::Nothing,
        ),
        // SPEC §13: the second factor.
        route(Method::GET, "/api/auth/mfa", true, Reads::Nothing),
        route(Method::POST, "/api/auth/mfa/totp", true, Reads::Nothing),
        route(Method::DELETE, "/api/auth/mfa/totp", true, Reads::Json),
        route(
            Method::POST,
            "/api/auth/mfa/totp/confirm",
            true,
            Reads::Json,
        ),
        route(
            Method::POST,
            "/api/auth/mfa/recovery-codes",
            true,
            Reads::Json,
        ),
        route(Method::POST, "/api/auth/login/mfa", false, Reads::Json),
        route(
            Method::POST,
            "/api/auth/login/passkey/start",
            false,
            Reads::Json,
        ),
        route(
            Method::POST,
            "/api/auth/passkeys/register/start",
            true,
            Reads::Nothing,
        ),
        route(
            Method::DELETE,
            "/api/auth/passkeys/nope",
            true,
            Reads::Nothing,
        ),
        // The routes that take a WebAuthn `credential` (any JSON value) are checked with bad
        // answers in tests/api/passkeys.rs.
        // SPEC §15: profile and email.
        route(Method::PATCH, "/api/auth/me", true, Reads::Json),
        route(Method::POST, "/api/auth/email", true, Reads::Json),
        route(Method::POST, "/api/auth/email/confirm", false, Reads::Json),
        route(Method::GET, "/healthz", false, Reads::Nothing),
        route(Method::GET, "/readyz", false, Reads::Nothing),
        route(Method::GET, "/.well-known/jwks.json", false, Reads::Nothing),
    ]
}

/// What a malformed body does to a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Fails while parsing, the same on every route that parses JSON.
    Parse,
    /// Refused for its content type by the routes that require JSON.
    ContentType,
    /// Parses; what it means depends on the route.
    Semantic,
}

struct BodyCase {
    label: String,
    content_type: Option<HeaderValue>,
    body: Vec<u8>,
    kind: Kind,
    /// Status and acceptable codes on the routes `kind` covers.
    expect: Option<(u16, &'static [&'static str])>,
}

const INVALID_JSON: &[&str] = &["invalid_json"];
const INVALID_FIELD: &[&str] = &["invalid_field"];

/// A JSON object with `value` (raw JSON text) in every field of `FIELDS`.
fn every_field(value: &str) -> Vec<u8> {
    let pairs: Vec<String> = FIELDS.iter().map(|f| format!("\"{f}\":{value}")).collect();
    format!("{{{}}}", pairs.join(",")).into_bytes()
}

/// `every_field` with raw bytes (possibly not UTF-8) inside each string.
fn every_field_bytes(raw: &[u8]) -> Vec<u8> {
    let mut body = b"{".to_vec();
    for (i, field) in FIELDS.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(format!("\"{field}\":\"").as_bytes());
        body.extend_from_slice(raw);
        body.push(b'"');
    }
    body.push(b'}');
    body
}

/// Each field of `FIELDS` twice.
fn duplicated_keys() -> Vec<u8> {
    let pairs: Vec<String> = FIELDS
        .iter()
        .map(|f| format!("\"{f}\":\"one\",\"{f}\":\"two\""))
        .collect();
    format!("{{{}}}", pairs.join(",")).into_bytes()
}

fn credentials(username: &str, email: &str) -> Vec<u8> {
    json!({
        "username": username,
        "email": email,
        "password": PASSWORD,
        "currentPassword": "Not-the1-password",
        "newPassword": username,
    })
    .to_string()
    .into_bytes()
}

fn body_cases() -> Vec<BodyCase> {
    let json_type = Some(HeaderValue::from_static("application/json"));
    let case = |label: &str, body: Vec<u8>, kind, expect| BodyCase {
        label: label.to_string(),
        content_type: json_type.clone(),
        body,
        kind,
        expect,
    };
    let parse = |label: &str, body: &[u8], codes| {
        case(label, body.to_vec(), Kind::Parse, Some((400, codes)))
    };
    let deep = "[".repeat(10_000) + &"]".repeat(10_000);
    let long = "x".repeat(10_000);
    let big = json!({ "username": "a".repeat(100 * 1024) }).to_string();
    let mut cases = vec![
        parse(
            "invalid JSON",
            b"{username: 'alice', password: secret}",
            INVALID_JSON,
        ),
        parse(
            "truncated JSON",
            b"{\"username\":\"alice\",\"password\":\"Zx8",
            INVALID_JSON,
        ),
        parse("empty body", b"", INVALID_JSON),
        parse("array", b"[]", INVALID_FIELD),
        parse("array of numbers", b"[1,2,3]", INVALID_FIELD),
        parse("string", b"\"alice\"", INVALID_FIELD),
        parse("number", b"42", INVALID_FIELD),
        parse("null", b"null", INVALID_FIELD),
        parse("true", b"true", INVALID_FIELD),
        parse(
            "array of strings",
            br#"["alice","alice@example.com","Zx8!quokka"]"#,
            INVALID_FIELD,
        ),
        parse(
            "numbers for strings",
            &every_field("12345678"),
            INVALID_FIELD,
        ),
        parse(
            "objects for strings",
            &every_field("{\"$ne\":null}"),
            INVALID_FIELD,
        ),
        parse(
            "arrays for strings",
            &every_field("[\"alice\"]"),
            INVALID_FIELD,
        ),
        parse("booleans for strings", &every_field("false"), INVALID_FIELD),
        parse(
            "bad UTF-8 in strings",
            &every_field_bytes(b"al\xff\xfeice"),
            INVALID_JSON,
        ),
        parse("bad UTF-8 outside strings", b"\xff\xfe{}", INVALID_JSON),
        parse(
            "raw NUL byte in strings",
            &every_field_bytes(b"al\x00ice"),
            INVALID_JSON,
        ),
        parse(
            "lone surrogate escape",
            &every_field("\"\\ud800\""),
            INVALID_JSON,
        ),
        parse(
            "lone trailing surrogate escape",
            &every_field("\"a\\udc00b\""),
            INVALID_JSON,
        ),
        parse("duplicated keys", &duplicated_keys(), INVALID_FIELD),
        // A struct refuses a top-level '[' at once, or the parser's recursion limit answers.
        parse(
            "10,000-deep array",
            deep.as_bytes(),
            &["invalid_json", "invalid_field"],
        ),
        // An ignored value is skipped without recursing, so the route sees `{}`; what matters is
        // that the stack survives.
        case(
            "10,000-deep array in an unknown field",
            format!("{{\"padding\":{deep}}}").into_bytes(),
            Kind::Semantic,
            None,
        ),
        parse(
            "trailing garbage",
            b"{\"username\":\"alice\"} garbage",
            INVALID_JSON,
        ),
        parse("two objects", b"{}{}", INVALID_JSON),
        case(
            "100 KiB body",
            big.into_bytes(),
            Kind::Parse,
            Some((413, &["body_too_large"])),
        ),
        case(
            "10,000-character strings",
            every_field(&format!("\"{long}\"")),
            Kind::Semantic,
            None,
        ),
        case("empty strings", every_field("\"\""), Kind::Semantic, None),
        case(
            "NUL escape in strings",
            every_field("\"al\\u0000ice\""),
            Kind::Semantic,
            None,
        ),
        case(
            "emoji username",
            credentials("🦀rustacean", "crab@example.com"),
            Kind::Semantic,
            None,
        ),
        case(
            "RTL username",
            credentials("مستخدم", "rtl@example.com"),
            Kind::Semantic,
            None,
        ),
        case(
            "RTL override username",
            credentials("\u{202e}ecila", "override@example.com"),
            Kind::Semantic,
            None,
        ),
        case(
            "zero-width username",
            credentials("ali\u{200b}ce", "zw@example.com"),
            Kind::Semantic,
            None,
        ),
        case(
            "combining characters username",
            credentials("z\u{301}\u{308}\u{30a}alg\u{336}o", "zalgo@example.com"),
            Kind::Semantic,
            None,
        ),
    ];
    for injection in INJECTIONS {
        cases.push(case(
            &format!("{injection:?} in every field"),
            every_field(&json!(injection).to_string()),
            Kind::Semantic,
            None,
        ));
        cases.push(case(
            &format!("{injection:?} as username, alice's email"),
            credentials(injection, "alice@example.com"),
            Kind::Semantic,
            None,
        ));
    }
    let typed = |label: &str, content_type: Option<HeaderValue>, body: &[u8]| BodyCase {
        label: label.to_string(),
        content_type,
        body: body.to_vec(),
        kind: Kind::ContentType,
        expect: Some((415, &["unsupported_media_type"])),
    };
    let valid = credentials("carol", "carol@example.com");
    cases.extend([
        typed(
            "text/plain",
            Some(HeaderValue::from_static("text/plain")),
            &valid,
        ),
        typed(
            "form-urlencoded",
            Some(HeaderValue::from_static(
                "application/x-www-form-urlencoded",
            )),
            b"username=carol&email=carol%40example.com&password=Zx8%21quokka",
        ),
        typed(
            "multipart",
            Some(HeaderValue::from_static("multipart/form-data; boundary=x")),
            b"--x\r\nContent-Disposition: form-data; name=\"username\"\r\n\r\ncarol\r\n--x--\r\n",
        ),
        typed("missing content type", None, &valid),
        typed(
            "non-ASCII content type",
            Some(HeaderValue::from_bytes(b"application/json; charset=\xff").expect("obs-text")),
            &valid,
        ),
    ]);
    cases
}

/// The body cases sent to routes that read no body: enough to show it is never looked at.
const IGNORED_BODY_LABELS: [&str; 6] = [
    "invalid JSON",
    "100 KiB body",
    "bad UTF-8 in strings",
    "10,000-deep array",
    "text/plain",
    "missing content type",
];

/// Routes that get every header case, one per way of finding a token; the others get
/// `COMMON_HEADER_LABELS`.
const HEADER_ROUTES: [&str; 4] = [
    "/api/auth/me",
    "/api/auth/login",
    "/api/auth/refreshtoken",
    "/api/auth/logout",
];

const COMMON_HEADER_LABELS: [&str; 6] = [
    "x-access-token garbage",
    "x-access-token 5,000 chars",
    "x-access-token non-ASCII",
    "cookie non-ASCII",
    "refreshToken 5,000 chars",
    "accept-language garbage",
];

struct HeaderCase {
    label: String,
    headers: Vec<(HeaderName, HeaderValue)>,
    /// The answer of `GET /api/auth/me`, where the SPEC fixes one.
    me: Option<(u16, &'static [&'static str])>,
}

fn header_cases(valid_access: &str) -> Vec<HeaderCase> {
    let value = |bytes: &[u8]| HeaderValue::from_bytes(bytes).expect("header value");
    let one = |label: &str, name: &'static str, v: HeaderValue, me| HeaderCase {
        label: label.to_string(),
        headers: vec![(HeaderName::from_static(name), v)],
        me,
    };
    let long = "A".repeat(5_000);
    let unauthorized: Option<(u16, &'static [&'static str])> = Some((401, &["unauthorized"]));
    let no_token: Option<(u16, &'static [&'static str])> = Some((403, &["no_token"]));
    // A token with a changed signature byte, and the same claims under `alg: none` and `HS256`.
    let (signed, signature) = valid_access.rsplit_once('.').expect("JWT");
    let flipped = if signature.starts_with('A') { 'B' } else { 'A' };
    let tampered = format!("{signed}.{flipped}{}", &signature[1..]);
    let payload = valid_access.split('.').nth(1).expect("JWT payload");
    let alg_none = format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{payload}.");
    let alg_hs256 = format!("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.{payload}.c2lnbmF0dXJl");
    vec![
        one(
            "x-access-token garbage",
            "x-access-token",
            value(b"garbage"),
            unauthorized,
        ),
        one(
            "x-access-token empty",
            "x-access-token",
            value(b""),
            no_token,
        ),
        one(
            "x-access-token three dots",
            "x-access-token",
            value(b"a.b.c"),
            unauthorized,
        ),
        one(
            "x-access-token 5,000 chars",
            "x-access-token",
            value(long.as_bytes()),
            unauthorized,
        ),
        one(
            "x-access-token tampered signature",
            "x-access-token",
            value(tampered.as_bytes()),
            unauthorized,
        ),
        one(
            "x-access-token alg none",
            "x-access-token",
            value(alg_none.as_bytes()),
            unauthorized,
        ),
        one(
            "x-access-token alg HS256",
            "x-access-token",
            value(alg_hs256.as_bytes()),
            unauthorized,
        ),
        one(
            "x-access-token non-ASCII",
            "x-access-token",
            value(b"\xff\xfe\xc3\xa9"),
            None,
        ),
        one(
            "authorization Bearer alone",
            "authorization",
            value(b"Bearer"),
            no_token,
        ),
        one(
            "authorization Bearer dot",
            "authorization",
            value(b"Bearer ."),
            unauthorized,
        ),
        one(
            "authorization Basic",
            "authorization",
            value(b"Basic Zm9vOmJhcg=="),
            no_token,
        ),
        one(
            "authorization Bearer 5,000 chars",
            "authorization",
            value(format!("Bearer {long}").as_bytes()),
            unauthorized,
        ),
        one(
            "authorization non-ASCII",
            "authorization",
            value(b"Bearer \xff\xfe"),
            None,
        ),
        one(
            "refreshToken 5,000 chars",
            "refreshtoken",
            value(long.as_bytes()),
            no_token,
        ),
        one(
            "refreshToken non-ASCII",
            "refreshtoken",
            value(b"\xc3\xa9\xff"),
            no_token,
        ),
        one(
            "cookie token garbage",
            "cookie",
            value(b"token=garbage"),
            unauthorized,
        ),
        one(
            "cookie CSRF garbage",
            "cookie",
            value(b"sessionToken=garbage; token=garbage"),
            unauthorized,
        ),
        one(
            "cookie non-ASCII",
            "cookie",
            value(b"token=\xff\xfe; sessionToken=\xc3\xa9"),
            None,
        ),
        one(
            "accept-language garbage",
            "accept-language",
            value(b"\xff;q=abc,,;;,*-*"),
            no_token,
        ),
        one(
            "x-forwarded-for garbage",
            "x-forwarded-for",
            value(b"garbage, ::::, 999.999.999.999, \xff"),
            no_token,
        ),
        one(
            "user-agent 5,000 chars",
            "user-agent",
            value(long.as_bytes()),
            no_token,
        ),
        one(
            "user-agent non-ASCII",
            "user-agent",
            value(b"Mozilla \xff\xfe"),
            no_token,
        ),
        HeaderCase {
            label: "cross-site origin with cookie".into(),
            headers: vec![
                (HeaderName::from_static("origin"), value(b"null")),
                (
                    HeaderName::from_static("sec-fetch-site"),
                    value(b"cross-site"),
                ),
                (HeaderName::from_static("cookie"), value(b"token=garbage")),
            ],
            me: unauthorized,
        },
    ]
}

/// Paths no route has, each answered 404 `not_found` whatever the method.
fn unknown_paths() -> Vec<String> {
    vec![
        "/nope".into(),
        "/api/auth/nope".into(),
        "/api/auth/register/extra".into(),
        "/api/auth/sessions/a/b".into(),
        "/API/AUTH/LOGIN".into(),
        "/%FF%FE".into(),
        "/api/auth/%00".into(),
        "/%F0%9F%A6%80".into(),
        "/.well-known/jwks.json/x".into(),
        format!("/{}", "a".repeat(5_000)),
    ]
}

/// Ids no session or account has: each a 404 `not_found`.
fn odd_ids() -> Vec<String> {
    vec![
        "%27%20OR%201%3D1%20--".into(),
        "%22%3B%20DROP%20TABLE%20sessions%3B%20--".into(),
        "%25".into(),
        "%FF%FE".into(),
        "%00".into(),
        "%F0%9F%A6%80".into(),
        "not-a-uuid".into(),
        "x".repeat(10_000),
    ]
}

/// One request of the barrage and what it must get.
struct Shot {
    label: String,
    method: Method,
    path: String,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: Option<Vec<u8>>,
    expect: Option<(u16, &'static [&'static str])>,
}

async fn fire(app: &TestApp, client: &reqwest::Client, shot: &Shot) -> Result<Resp, String> {
    let mut request = client
        .request(shot.method.clone(), app.url(&shot.path))
        .timeout(Duration::from_secs(20));
    for (name, value) in &shot.headers {
        request = request.header(name.clone(), value.clone());
    }
    if let Some(body) = &shot.body {
        request = request.body(body.clone());
    }
    match request.send().await {
        Ok(response) => Ok(app.read(response).await),
        Err(e) => Err(format!("no answer: {e}")),
    }
}

fn is_snake_case(code: &str) -> bool {
    code.starts_with(|c: char| c.is_ascii_lowercase())
        && !code.ends_with('_')
        && !code.contains("__")
        && code
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// Why an answer breaks SPEC §7, if it does.
fn problem(r: &Resp, expect: Option<(u16, &[&str])>) -> Option<String> {
    if r.status >= 500 {
        return Some(format!("server error {}: {}", r.status, r.text));
    }
    if let Some((status, codes)) = expect
        && (r.status != status || !codes.contains(&r.code()))
    {
        return Some(format!(
            "expected {status} {codes:?}, got {}: {}",
            r.status, r.text
        ));
    }
    if (400..500).contains(&r.status) {
        let content_type = r
            .headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !content_type.starts_with("application/json") {
            return Some(format!(
                "{} with content type {content_type:?}: {}",
                r.status, r.text
            ));
        }
        let message_ok = r.body["message"]
            .as_str()
            .is_some_and(|m| !m.trim().is_empty());
        let code_ok = r.body["code"].as_str().is_some_and(is_snake_case);
        if !r.body.is_object() || !message_ok || !code_ok {
            return Some(format!("{} outside the envelope: {}", r.status, r.text));
        }
    }
    None
}

fn barrage(access: &str) -> Vec<Shot> {
    let token = (
        HeaderName::from_static("x-access-token"),
        HeaderValue::from_str(access).expect("token header"),
    );
    let mut shots = Vec::new();
    let bodies = body_cases();
    let routes = routes();
    for route in &routes {
        let auth: Vec<_> = if route.auth {
            vec![token.clone()]
        } else {
            Vec::new()
        };
        for case in &bodies {
            if route.reads == Reads::Nothing && !IGNORED_BODY_LABELS.contains(&case.label.as_str())
            {
                continue;
            }
            let expect = match route.reads {
                Reads::Json => case.expect,
                // An empty body is no body here; a content type is not checked.
                Reads::OptionalJson if case.kind == Kind::Parse && !case.body.is_empty() => {
                    case.expect
                }
                _ => None,
            };
            let mut headers = auth.clone();
            if let Some(ct) = &case.content_type {
                headers.push((CONTENT_TYPE, ct.clone()));
            }
            shots.push(Shot {
                label: format!("{} {}: {}", route.method, route.path, case.label),
                method: route.method.clone(),
                path: route.path.clone(),
                headers,
                body: Some(case.body.clone()),
                expect,
            });
        }
        let every_header = HEADER_ROUTES.contains(&route.path.as_str());
        for case in header_cases(access) {
            if !every_header && !COMMON_HEADER_LABELS.contains(&case.label.as_str()) {
                continue;
            }
            // The exact answers are GET /me's; a DELETE with a cookie meets CSRF first.
            let expect = if route.path == "/api/auth/me" && route.method == Method::GET {
                case.me
            } else {
                None
            };
            let mut headers = case.headers.clone();
            headers.push((CONTENT_TYPE, HeaderValue::from_static("application/json")));
            shots.push(Shot {
                label: format!("{} {}: {}", route.method, route.path, case.label),
                method: route.method.clone(),
                path: route.path.clone(),
                headers,
                body: Some(b"{}".to_vec()),
                expect,
            });
        }
    }
    let mut paths: Vec<&str> = routes.iter().map(|r| r.path.as_str()).collect();
    paths.sort_unstable();
    paths.dedup();
    for path in paths {
        let allowed: Vec<&Method> = routes
            .iter()
            .filter(|r| r.path == path)
            .map(|r| &r.method)
            .collect();
        let wrong_methods = ["GET", "POST", "PUT", "PATCH", "DELETE", "BREW"]
            .into_iter()
            .map(|m| Method::from_bytes(m.as_bytes()).expect("method"))
            .filter(|m| !allowed.contains(&m));
        for method in wrong_methods {
            shots.push(Shot {
                label: format!("{method} {path}: wrong method"),
                method,
                path: path.to_string(),
                headers: vec![token.clone()],
                body: None,
                expect: Some((405, &["method_not_allowed"])),
            });
        }
    }
    for query in [
        "before=abc",
        "limit=1e999",
        "limit=99999999999999999999999",
        "before=%FF%FE",
        "limit=1&limit=2",
    ] {
        shots.push(Shot {
            label: format!("GET /api/admin/audit?{query}"),
            method: Method::GET,
            path: format!("/api/admin/audit?{query}"),
            headers: vec![token.clone()],
            body: None,
            expect: Some((400, &["invalid_query"])),
        });
    }
    for path in unknown_paths() {
        for method in [Method::GET, Method::POST, Method::DELETE] {
            shots.push(Shot {
                label: format!("{method} {}: unknown path", &path[..path.len().min(40)]),
                method,
                path: path.clone(),
                headers: vec![token.clone()],
                body: Some(b"{}".to_vec()),
                expect: Some((404, &["not_found"])),
            });
        }
    }
    for id in odd_ids() {
        let short = &id[..id.len().min(40)];
        let json_type = (CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let targets = [
            (Method::DELETE, format!("/api/auth/sessions/{id}"), None),
            (Method::GET, format!("/api/admin/accounts/{id}"), None),
            (
                Method::PATCH,
                format!("/api/admin/accounts/{id}"),
                Some(br#"{"status":"disabled"}"#.to_vec()),
            ),
        ];
        for (method, path, body) in targets {
            let mut headers = vec![token.clone()];
            if body.is_some() {
                headers.push(json_type.clone());
            }
            shots.push(Shot {
                label: format!("{method} {}: id {short}", &path[..path.len().min(40)]),
                method,
                path,
                headers,
                body,
                expect: Some((404, &["not_found"])),
            });
        }
    }
    shots
}

async fn bad_input_at_every_route_gets_a_4xx_envelope(backend: Backend) {
    let app = app!(backend);
    let alice = app.user("alice").await;
    let access = alice["accessToken"].as_str().expect("accessToken");

    let shots = barrage(access);
    // Bounded, so the test stays a few seconds long as routes are added.
    assert!(
        (300..=2000).contains(&shots.len()),
        "{} requests",
        shots.len()
    );
    // A connection per request: a server may close a kept-alive connection after a body it did
    // not read, and a pooled client would blame the next request for it.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let mut problems = Vec::new();
    for shot in &shots {
        let outcome = fire(&app, &client, shot).await;
        let found = match &outcome {
            Ok(r) => problem(r, shot.expect),
            Err(e) => Some(e.clone()),
        };
        if let Some(p) = found {
            problems.push(format!("{}: {p}", shot.label));
        }
    }
    assert!(
        problems.is_empty(),
        "{} of {} answers break SPEC §7:\n{}",
        problems.len(),
        shots.len(),
        problems.join("\n")
    );

    // Nothing stored was lost, and the tables the injections named are still there.
    let r = app.login("alice", PASSWORD).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["id"], alice["id"]);
    assert_eq!(r.body["roles"], json!(["ROLE_OWNER"]));
    let r = app.register("bob").await;
    assert_eq!(
        r.body,
        json!({ "message": "User was registered successfully!" })
    );
    assert_eq!(
        app.login("bob", PASSWORD).await.body["roles"],
        json!(["ROLE_USER"])
    );
    let r = app.get("/readyz", &[]).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["status"], "ready");
}

async fn injection_strings_reach_no_account(backend: Backend) {
    let app = app!(backend);
    let alice = app.user("alice").await;
    let refused =
        json!({ "message": "Invalid username or password", "code": "invalid_credentials" });
    for injection in INJECTIONS {
        let after_email = format!("alice@example.com{injection}");
        for login in [injection, after_email.as_str()] {
            let r = app.login(login, PASSWORD).await;
            assert_eq!((r.status, &r.body), (401, &refused), "login as {login:?}");
        }
        let r = app.login("alice", injection).await;
        assert_eq!(
            (r.status, &r.body),
            (401, &refused),
            "password {injection:?}"
        );
    }
    // As the username or email of a new account, each string is refused by validation or
    // stored as typed in an account of its own; never run, never matched against alice.
    for (n, injection) in INJECTIONS.iter().enumerate() {
        let email = format!("{injection}@example.com");
        let attempts = [
            (
                "username",
                json!({ "username": injection, "email": format!("m{n}@example.com"), "password": PASSWORD }),
            ),
            (
                "email",
                json!({ "username": format!("mallory{n}"), "email": email, "password": PASSWORD }),
            ),
        ];
        for (field, body) in attempts {
            let login = body[field].as_str().unwrap().to_string();
            let r = app.post("/api/auth/register", body).await;
            if r.status == 200 {
                let r = app.login(&login, PASSWORD).await;
                assert_eq!(r.status, 200, "{field} {login:?}: {}", r.text);
                assert_ne!(r.body["id"], alice["id"], "{field} {login:?}");
                assert_eq!(r.body[field], login.as_str());
                assert_eq!(r.body["roles"], json!(["ROLE_USER"]));
            } else {
                assert_eq!(
                    (r.status, r.code()),
                    (400, "validation_failed"),
                    "{}",
                    r.text
                );
                assert_eq!(r.body["errors"][0]["field"], field, "{}", r.text);
            }
        }
    }
    let r = app.login("alice", PASSWORD).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["id"], alice["id"]);
    assert_eq!(r.body["roles"], json!(["ROLE_OWNER"]));
}

async fn unusual_unicode_usernames_follow_the_username_rule(backend: Backend) {
    let app = app!(backend);
    app.user("owner").await;
    // SPEC §10: letters, digits, `.`, `_`, `-`; letters of any script, nothing invisible.
    for refused in [
        "🦀rustacean",
        "ali\u{200b}ce",
        "\u{202e}ecila",
        "al\u{200d}ice",
        "\u{feff}alice",
    ] {
        let r = app
            .post(
                "/api/auth/register",
                json!({ "username": refused, "email": "someone@example.com", "password": PASSWORD }),
            )
            .await;
        assert_eq!(
            (r.status, r.code()),
            (400, "validation_failed"),
            "{refused:?}: {}",
            r.text
        );
        assert_eq!(r.body["errors"][0]["field"], "username", "{refused:?}");
    }
    for (n, accepted) in ["مستخدم", "משתמש", "Łukasz", "李小龍"]
        .into_iter()
        .enumerate()
    {
        let r = app
            .post(
                "/api/auth/register",
                json!({ "username": accepted, "email": format!("script{n}@example.com"), "password": PASSWORD }),
            )
            .await;
        assert_eq!(r.status, 200, "{accepted:?}: {}", r.text);
        let r = app.login(accepted, PASSWORD).await;
        assert_eq!(
            (r.status, r.body["username"].as_str()),
            (200, Some(accepted))
        );
    }
    // A combining accent is stored composed (NFKC), and either spelling logs in.
    let r = app
        .post(
            "/api/auth/register",
            json!({ "username": "a\u{301}lvaro", "email": "alvaro@example.com", "password": PASSWORD }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    for spelling in ["a\u{301}lvaro", "\u{e1}lvaro"] {
        let r = app.login(spelling, PASSWORD).await;
        assert_eq!(r.status, 200, "{spelling:?}: {}", r.text);
        assert_eq!(r.body["username"], "\u{e1}lvaro");
    }
}

async fn unknown_json_fields_are_ignored(backend: Backend) {
    let app = app!(backend);
    app.user("owner").await;
    // Extra fields are ignored, including ones that would grant power if they were read.
    let r = app
        .post(
            "/api/auth/register",
            json!({
                "username": "mallory",
                "email": "mallory@example.com",
                "password": PASSWORD,
                "roles": ["ROLE_ADMIN"],
                "role": "owner",
                "isAdmin": true,
                "organization": "11111111-1111-1111-1111-111111111111",
                "nested": { "deep": [1, 2, { "x": null }] },
            }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.body,
        json!({ "message": "User was registered successfully!" })
    );
    let r = app
        .post(
            "/api/auth/login",
            json!({ "username": "mallory", "password": PASSWORD, "rememberMe": true }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["roles"], json!(["ROLE_USER"]));
    let r = app
        .get(
            "/api/auth/me",
            &[("x-access-token", r.body["accessToken"].as_str().unwrap())],
        )
        .await;
    assert_eq!(r.body["organization"], brama::store::DEFAULT_ORGANIZATION);
    let login = app.login("mallory", PASSWORD).await.body;
    let r = app
        .post(
            "/api/auth/refreshtoken",
            json!({ "refreshToken": login["refreshToken"], "deviceId": 7 }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.body["refreshToken"].is_string() && r.body["accessToken"].is_string());
}

async fn raw_post(app: &TestApp, path: &str, body: &'static [u8]) -> Resp {
    let response = app
        .client
        .post(app.url(path))
        .header(CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .await
        .expect("request sent");
    app.read(response).await
}

async fn trailing_garbage_after_json_is_invalid_json(backend: Backend) {
    let app = app!(backend);
    let bodies: [(&str, &[u8]); 4] = [
        (
            "/api/auth/register",
            b"{\"username\":\"carol\",\"email\":\"carol@example.com\",\"password\":\"Zx8!quokka\"} garbage",
        ),
        (
            "/api/auth/register",
            b"{\"username\":\"carol\",\"email\":\"carol@example.com\",\"password\":\"Zx8!quokka\"}{}",
        ),
        (
            "/api/auth/login",
            b"{\"username\":\"carol\",\"password\":\"Zx8!quokka\"},",
        ),
        ("/api/auth/refreshtoken", b"{\"refreshToken\":\"abc\"} ]"),
    ];
    for (path, body) in bodies {
        let r = raw_post(&app, path, body).await;
        assert_eq!(
            (r.status, r.code()),
            (400, "invalid_json"),
            "{path}: {}",
            r.text
        );
        assert!(
            r.message().contains("trailing"),
            "the message says what is wrong: {}",
            r.text
        );
    }
    // The well-formed prefix was not acted on.
    assert_eq!(app.login("carol", PASSWORD).await.status, 401);
    assert_eq!(app.register("carol").await.status, 200);
    // Trailing whitespace is still one JSON value.
    let r = raw_post(
        &app,
        "/api/auth/login",
        b"{\"username\":\"carol\",\"password\":\"Zx8!quokka\"} \r\n\t ",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
}

async fn wrong_typed_field_is_named_in_the_message(backend: Backend) {
    let app = app!(backend);
    let alice = app.user("alice").await;
    let access = alice["accessToken"].as_str().unwrap();
    let cases: [(&str, Value, &str); 5] = [
        (
            "/api/auth/register",
            json!({ "username": "carol", "email": "carol@example.com", "password": 12345678 }),
            "password: invalid type: integer `12345678`, expected a string",
        ),
        (
            "/api/auth/register",
            json!({ "username": ["carol"], "email": "carol@example.com", "password": PASSWORD }),
            "username: invalid type: sequence",
        ),
        (
            "/api/auth/login",
            json!({ "username": { "$ne": null }, "password": PASSWORD }),
            "username: invalid type: map",
        ),
        (
            "/api/auth/password",
            json!({ "currentPassword": PASSWORD, "newPassword": true }),
            "newPassword: invalid type: boolean `true`",
        ),
        (
            "/api/auth/refreshtoken",
            json!({ "refreshToken": 1.5 }),
            "refreshToken: invalid type: floating point `1.5`",
        ),
    ];
    for (path, body, start) in cases {
        let r = app
            .request("POST", path, Some(body), &[("x-access-token", access)])
            .await;
        assert_eq!(
            (r.status, r.code()),
            (400, "invalid_field"),
            "{path}: {}",
            r.text
        );
        assert!(r.message().starts_with(start), "{path}: {}", r.text);
    }
    // Nothing was changed by the refused requests.
    assert_eq!(app.login("alice", PASSWORD).await.status, 200);
    assert_eq!(app.login("carol", PASSWORD).await.status, 401);
}

/// A POST whose body is sent in chunks, without a `Content-Length` (what a client streaming
/// its body does): its status and its body as JSON.
async fn chunked_post(app: &TestApp, path: &str, body: &[u8]) -> (u16, Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\n\
         transfer-encoding: chunked\r\nconnection: close\r\n\r\n",
        app.addr
    )
    .into_bytes();
    for chunk in body.chunks(8 * 1024) {
        request.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        request.extend_from_slice(chunk);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    let mut stream = tokio::net::TcpStream::connect(app.addr)
        .await
        .expect("connects");
    // A refusal may come, and the connection close, before the whole body is sent.
    let _ = stream.write_all(&request).await;
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {answer}"));
    let (_, body) = answer
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no body: {answer}"));
    let body = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {answer}"));
    (status, body)
}

/// A body with no declared length is counted as it is read: past the surface's limit (64 KiB)
/// it is refused with 413 in the surface's envelope, however long the stream goes on; under it,
/// it is read as any other. (A request known to have no body skips the limit; one that may
/// have a body must not.)
async fn a_body_sent_without_a_length_is_refused_past_the_limit(backend: Backend) {
    let app = app!(backend);
    app.user("alice").await;
    let huge = format!(
        "{{\"username\":\"{}\",\"password\":\"{PASSWORD}\"}}",
        "a".repeat(100 * 1024)
    );
    let (status, body) = chunked_post(&app, "/api/auth/login", huge.as_bytes()).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (413, Some("body_too_large")),
        "{body}"
    );
    let (status, body) = chunked_post(&app, "/web/auth", huge.as_bytes()).await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["status"], "error", "the Company envelope: {body}");
    assert!(body["errorID"].is_string(), "{body}");
    let fits = format!("{{\"username\":\"alice\",\"password\":\"{PASSWORD}\"}}");
    let (status, body) = chunked_post(&app, "/api/auth/login", fits.as_bytes()).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["accessToken"].is_string(), "{body}");
}
