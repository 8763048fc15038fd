//! SPEC §14, OpenID Connect: the organization's clients, registered by admins over the API
//! and by the operator from the command line.

use brama::core::Role;
use serde_json::{Value, json};

use crate::helpers::{Backend, Resp, TestApp, TestDb};
use crate::process::{brama, data_env, run, text};
use crate::{app, both_backends};

both_backends!(
    admins_register_list_and_remove_clients,
    client_registrations_are_checked_and_nothing_is_stored,
    the_command_line_registers_lists_and_removes_clients,
    a_relying_party_signs_in_refreshes_and_logs_out,
    public_clients_use_pkce_and_eddsa_and_secrets_may_come_in_the_body,
    codes_are_single_use_bound_and_short_lived,
    concurrent_exchanges_of_one_code_open_one_grant,
    many_codes_exchanged_at_once_each_open_their_own_grant,
    a_batch_of_redemptions_opens_each_grant_once,
    a_code_is_not_redeemed_once_its_browser_session_ended,
    authorization_errors_go_back_only_to_registered_uris,
    consent_is_asked_once_per_scope_set,
    client_and_brama_refresh_tokens_do_not_cross,
    authorize_on_one_node_and_exchange_on_another,
    bad_input_at_the_oauth_endpoints_gets_a_4xx_never_a_500,
    the_second_factor_comes_before_the_code_and_shows_in_amr,
    a_logout_without_proof_of_who_asks_first,
);

fn token(login: &Value) -> &str {
    login["accessToken"].as_str().unwrap()
}

async fn clients(
    app: &TestApp,
    actor: &Value,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> Resp {
    app.request(
        method,
        &format!("/api/admin/oidc-clients{path}"),
        body,
        &[("x-access-token", token(actor))],
    )
    .await
}

/// The targets of the organization's audit events of `action`, oldest first.
async fn audited(app: &TestApp, admin: &Value, action: &str) -> Vec<String> {
    let r = app
        .get(
            &format!("/api/admin/audit?action={action}"),
            &[("x-access-token", token(admin))],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let mut targets: Vec<String> = r
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["target"].as_str().unwrap_or_default().to_string())
        .collect();
    targets.reverse();
    targets
}

async fn admins_register_list_and_remove_clients(backend: Backend) {
    let app = app!(backend);
    let owner = app.user("owner1").await;
    let moderator = app.user_with_role("mod1", Role::Moderator).await;
    let foreign = app.foreign_admin("stranger").await;

    // A confidential client: its secret once, stored only as its SHA-256.
    let r = clients(
        &app,
        &owner,
        "POST",
        "",
        Some(json!({
            "name": "Wiki",
            "redirect_uris": ["https://wiki.example.org/callback"],
            "post_logout_redirect_uris": ["https://wiki.example.org/"],
        })),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let wiki = r.body.clone();
    let id = wiki["client_id"].as_str().unwrap().to_string();
    let secret = wiki["client_secret"].as_str().unwrap().to_string();
    assert_eq!(secret.len(), 43, "256 bits, base64url: {secret}");
    assert_eq!(
        (
            wiki["name"].as_str(),
            wiki["public"].as_bool(),
            wiki["first_party"].as_bool(),
            wiki["id_token_alg"].as_str(),
            wiki["token_endpoint_auth_method"].as_str(),
        ),
        (
            Some("Wiki"),
            Some(false),
            Some(false),
            Some("RS256"),
            Some("client_secret_basic")
        )
    );
    assert_eq!(
        wiki["redirect_uris"],
        json!(["https://wiki.example.org/callback"])
    );
    assert_eq!(
        wiki["post_logout_redirect_uris"],
        json!(["https://wiki.example.org/"])
    );
    let stored = app
        .query_text("SELECT secret_hash FROM oidc_clients WHERE id = $1", &[&id])
        .await
        .unwrap();
    assert_eq!(stored, brama::crypto::token_hash(&secret));

    // A public, first-party client signing with EdDSA (camelCase names are accepted too).
    let r = clients(
        &app,
        &owner,
        "POST",
        "",
        Some(json!({
            "name": "Czat",
            "redirectUris": ["http://localhost:5173/auth/callback", "https://czat.example.org/cb"],
            "public": true,
            "firstParty": true,
            "idTokenAlg": "EdDSA",
        })),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert!(r.body.get("client_secret").is_none(), "{}", r.text);
    assert_eq!(
        (
            r.body["public"].as_bool(),
            r.body["first_party"].as_bool(),
            r.body["id_token_alg"].as_str(),
            r.body["token_endpoint_auth_method"].as_str(),
        ),
        (Some(true), Some(true), Some("EdDSA"), Some("none"))
    );
    let chat = r.body["client_id"].as_str().unwrap().to_string();

    // The list: both, oldest first, no secret anywhere.
    let r = clients(&app, &owner, "GET", "", None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let ids: Vec<&str> = r
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["client_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [id.as_str(), chat.as_str()]);
    assert!(
        !r.text.contains(&secret) && !r.text.contains("client_secret\""),
        "{}",
        r.text
    );
    assert!(!r.text.contains(&stored), "no hash either");

    // Admins only; another organization neither sees nor removes ours.
    for (method, path) in [("GET", String::new()), ("DELETE", format!("/{id}"))] {
        let r = clients(&app, &moderator, method, &path, None).await;
        assert_eq!(
            (r.status, r.message(), r.code()),
            (403, "Require Admin Role!", "forbidden"),
            "{method}"
        );
    }
    let r = clients(
        &app,
        &moderator,
        "POST",
        "",
        Some(json!({ "name": "X", "redirect_uris": ["https://x.example.org/cb"] })),
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.text);
    let r = clients(&app, &foreign, "GET", "", None).await;
    assert_eq!(r.body, json!([]));
    let r = clients(&app, &foreign, "DELETE", &format!("/{id}"), None).await;
    assert_eq!((r.status, r.code()), (404, "not_found"), "{}", r.text);

    // Removed: gone from the list, a second removal is 404, and both steps are audited.
    let r = clients(&app, &owner, "DELETE", &format!("/{id}"), None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.message().contains("removed"), "{}", r.text);
    let r = clients(&app, &owner, "DELETE", &format!("/{id}"), None).await;
    assert_eq!(r.status, 404, "{}", r.text);
    let r = clients(&app, &owner, "GET", "", None).await;
    assert_eq!(r.body.as_array().unwrap().len(), 1);
    assert_eq!(
        audited(&app, &owner, "oidc.client_added").await,
        [id.clone(), chat]
    );
    assert_eq!(audited(&app, &owner, "oidc.client_removed").await, [id]);
}

async fn client_registrations_are_checked_and_nothing_is_stored(backend: Backend) {
    let app = app!(backend);
    let owner = app.user("owner1").await;
    let fields = |r: &Resp| -> Vec<String> {
        r.body["errors"]
            .as_array()
            .map(|errors| {
                errors
                    .iter()
                    .map(|e| e["field"].as_str().unwrap_or_default().to_string())
                    .collect()
            })
            .unwrap_or_default()
    };
    let cases = [
        (json!({}), vec!["name", "redirect_uris"]),
        (
            json!({ "name": " ", "redirect_uris": [] }),
            vec!["name", "redirect_uris"],
        ),
        (
            json!({ "name": "A", "redirect_uris": ["https://a.example.org/cb#x"] }),
            vec!["redirect_uris"],
        ),
        (
            json!({ "name": "A", "redirect_uris": ["/cb"] }),
            vec!["redirect_uris"],
        ),
        (
            json!({ "name": "A", "redirect_uris": ["javascript:alert(1)//"] }),
            vec!["redirect_uris"],
        ),
        (
            json!({ "name": "A", "redirect_uris": ["https://u:p@a.example.org/cb"] }),
            vec!["redirect_uris"],
        ),
        (
            json!({ "name": "A", "redirect_uris": ["https://a.example.org/cb"],
                    "post_logout_redirect_uris": ["nope"] }),
            vec!["post_logout_redirect_uris"],
        ),
        (
            json!({ "name": "A", "redirect_uris": ["https://a.example.org/cb"], "id_token_alg": "HS256" }),
            vec!["id_token_alg"],
        ),
        (
            json!({ "name": "A", "redirect_uris": (0..11).map(|i| format!("https://a.example.org/{i}")).collect::<Vec<_>>() }),
            vec!["redirect_uris"],
        ),
        (
            json!({ "name": "A".repeat(101), "redirect_uris": ["https://a.example.org/cb"] }),
            vec!["name"],
        ),
    ];
    for (body, expected) in cases {
        let r = clients(&app, &owner, "POST", "", Some(body.clone())).await;
        assert_eq!(r.status, 400, "{body}: {}", r.text);
        assert_eq!(fields(&r), expected, "{body}: {}", r.text);
    }
    // Values of the wrong JSON type: the field is named, as on every route.
    for (body, field) in [
        (
            json!({ "name": "A", "redirect_uris": "https://a.example.org/cb" }),
            "redirect_uris",
        ),
        (
            json!({ "name": "A", "redirect_uris": ["https://a.example.org/cb"], "public": "yes" }),
            "public",
        ),
        (
            json!({ "name": 7, "redirect_uris": ["https://a.example.org/cb"] }),
            "name",
        ),
    ] {
        let r = clients(&app, &owner, "POST", "", Some(body.clone())).await;
        assert_eq!(
            (r.status, r.code()),
            (400, "invalid_field"),
            "{body}: {}",
            r.text
        );
        assert!(
            r.message().starts_with(&format!("{field}: ")),
            "{body}: {}",
            r.text
        );
    }
    let r = app
        .request(
            "POST",
            "/api/admin/oidc-clients",
            None,
            &[
                ("x-access-token", token(&owner)),
                ("content-type", "application/json"),
            ],
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    let r = clients(&app, &owner, "GET", "", None).await;
    assert_eq!(r.body, json!([]), "nothing stored");
}

async fn the_command_line_registers_lists_and_removes_clients(backend: Backend) {
    let Some(db) = TestDb::create(backend).await else {
        return;
    };
    let command = |args: &[&str]| {
        let mut cmd = brama(db.dir());
        data_env(&mut cmd, &db, backend);
        cmd.env("BRAMA_PUBLIC_URL", "https://auth.example.org");
        cmd.args(args);
        cmd
    };
    let output = run(command(&["migrate"]), "").await;
    assert!(output.status.success(), "{}", text(&output.stderr));
    let output = run(
        command(&[
            "oidc",
            "client",
            "add",
            "--name",
            "Nextcloud",
            "--redirect-uri",
            "https://cloud.example.org/apps/user_oidc/code",
            "--redirect-uri",
            "https://cloud.example.org/index.php/apps/user_oidc/code",
            "--post-logout-redirect-uri",
            "https://cloud.example.org/",
        ]),
        "",
    )
    .await;
    assert!(output.status.success(), "{}", text(&output.stderr));
    let said = text(&output.stdout);
    let value = |key: &str| {
        said.lines()
            .find_map(|l| l.strip_prefix(&format!("{key}: ")))
            .unwrap_or_else(|| panic!("no {key} in {said}"))
            .to_string()
    };
    let (id, secret) = (value("client_id"), value("client_secret"));
    assert_eq!(secret.len(), 43, "{said}");

    let output = run(
        command(&[
            "oidc",
            "client",
            "add",
            "--name",
            "Grafana",
            "--redirect-uri",
            "https://grafana.example.org/login/generic_oauth",
            "--public",
            "--first-party",
            "--id-token-alg",
            "EdDSA",
            "--json",
        ]),
        "",
    )
    .await;
    assert!(output.status.success(), "{}", text(&output.stderr));
    let grafana: Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(grafana["client_secret"], Value::Null);
    assert_eq!(
        (
            grafana["public"].as_bool(),
            grafana["first_party"].as_bool(),
            grafana["id_token_alg"].as_str()
        ),
        (Some(true), Some(true), Some("EdDSA"))
    );

    // Refused: an http URI when brama itself is on https (not loopback), an unknown algorithm.
    for bad in [
        vec!["--redirect-uri", "http://cloud.example.org/cb"],
        vec![
            "--redirect-uri",
            "https://cloud.example.org/cb",
            "--id-token-alg",
            "none",
        ],
    ] {
        let mut args = vec!["oidc", "client", "add", "--name", "Bad"];
        args.extend(bad.iter().copied());
        let output = run(command(&args), "").await;
        assert!(
            !output.status.success(),
            "{bad:?}: {}",
            text(&output.stdout)
        );
    }

    let output = run(command(&["oidc", "client", "list", "--json"]), "").await;
    assert!(output.status.success(), "{}", text(&output.stderr));
    let listed: Value = serde_json::from_slice(&output.stdout).expect("JSON");
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Nextcloud", "Grafana"]);
    assert!(!text(&output.stdout).contains(&secret));
    let output = run(command(&["oidc", "client", "list"]), "").await;
    assert!(
        text(&output.stdout).contains(&id),
        "{}",
        text(&output.stdout)
    );

    let output = run(command(&["oidc", "client", "remove", &id]), "").await;
    assert!(output.status.success(), "{}", text(&output.stderr));
    let output = run(command(&["oidc", "client", "remove", &id]), "").await;
    assert!(!output.status.success(), "a second removal fails");
    assert!(
        text(&output.stderr).contains("no client"),
        "{}",
        text(&output.stderr)
    );
    let output = run(command(&["oidc", "client", "list", "--json"]), "").await;
    let listed: Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(listed.as_array().unwrap().len(), 1);
}

// ---- the flow (SPEC §14), driven by an independent relying party: the openidconnect crate ----

use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreGenderClaim, CoreJwsSigningAlgorithm,
    CoreProviderMetadata,
};
use openidconnect::{
    AccessTokenHash, AuthType, AuthorizationCode, ClientId, ClientSecret, CsrfToken,
    EmptyAdditionalClaims, IssuerUrl, Nonce, OAuth2TokenResponse, PkceCodeChallenge, RedirectUrl,
    RefreshToken, Scope, TokenResponse, UserInfoClaims,
};

const CALLBACK: &str = "https://rp.example.org/callback";

/// brama with its public URL (the issuer) at the address it really listens on.
async fn provider(backend: Backend) -> Option<TestApp> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()?
        .port();
    TestApp::spawn_with(backend, |c| {
        c.listen = format!("127.0.0.1:{port}");
        c.public_url = Some(format!("http://127.0.0.1:{port}"));
    })
    .await
}

/// A person's browser: cookies kept, redirects shown rather than followed.
struct Browser {
    http: reqwest::Client,
}

impl Browser {
    fn new() -> Browser {
        Browser {
            http: reqwest::Client::builder()
                .cookie_store(true)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
        }
    }

    /// Logs in on brama's page (browser mode: the CSRF pair, then the login), which sets the
    /// SSO cookie.
    async fn sign_in(app: &TestApp, username: &str) -> Browser {
        let browser = Browser::new();
        browser.log_in(app, username).await;
        browser
    }

    async fn log_in(&self, app: &TestApp, username: &str) -> String {
        let csrf: Value = self
            .http
            .get(app.url("/api/auth/csrf"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let r = self
            .http
            .post(app.url("/api/auth/login"))
            .header("sessionId", csrf["sessionId"].as_str().unwrap())
            .json(&json!({ "username": username, "password": crate::helpers::PASSWORD }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let cookies: Vec<String> = r
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect();
        let sso = cookies
            .iter()
            .find(|c| c.starts_with("brama_sso="))
            .unwrap_or_else(|| panic!("no SSO cookie in {cookies:?}"));
        assert!(
            sso.contains("HttpOnly")
                && sso.contains("SameSite=Lax")
                && sso.contains("Path=/oauth2"),
            "{sso}"
        );
        csrf["sessionId"].as_str().unwrap().to_string()
    }

    /// GET `url`: the status and the `Location`.
    async fn visit(&self, url: &str) -> (u16, String) {
        let r = self.http.get(url).send().await.unwrap();
        let location = r
            .headers()
            .get("location")
            .map(|l| l.to_str().unwrap().to_string())
            .unwrap_or_default();
        (r.status().as_u16(), location)
    }
}

/// The query parameters of a redirect.
fn query_of(location: &str) -> std::collections::HashMap<String, String> {
    url::Url::parse(location)
        .unwrap_or_else(|e| panic!("{location}: {e}"))
        .query_pairs()
        .into_owned()
        .collect()
}

/// A client registered in the default organization: (id, secret).
async fn client(app: &TestApp, form: brama::core::oidc::ClientForm) -> (String, Option<String>) {
    use secrecy::ExposeSecret;
    let granted = brama::core::Actor::operator(brama::store::DEFAULT_ORGANIZATION)
        .grant::<brama::core::actor::ManageOidcClients>()
        .unwrap();
    let new = form.check(true).expect("a valid client");
    let added = app.core.add_oidc_client(&granted, new).await.unwrap();
    (
        added.client.id,
        added.secret.map(|s| s.expose_secret().to_string()),
    )
}

fn form(name: &str) -> brama::core::oidc::ClientForm {
    brama::core::oidc::ClientForm {
        name: Some(name.into()),
        redirect_uris: Some(vec![CALLBACK.into()]),
        post_logout_redirect_uris: Some(vec!["https://rp.example.org/bye".into()]),
        first_party: true,
        ..Default::default()
    }
}

async fn discover(app: &TestApp) -> CoreProviderMetadata {
    CoreProviderMetadata::discover_async(
        IssuerUrl::new(app.core.config.issuer()).unwrap(),
        &app.client,
    )
    .await
    .expect("discovery")
}

/// Through authorize with a signed-in browser: the code, and what the relying party keeps.
async fn code_for(
    browser: &Browser,
    rp: &Rp,
    scopes: &[&str],
) -> (String, Nonce, openidconnect::PkceCodeVerifier) {
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut request = rp
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .set_pkce_challenge(challenge);
    for scope in scopes {
        request = request.add_scope(Scope::new(scope.to_string()));
    }
    let (url, state, nonce) = request.url();
    let (status, location) = browser.visit(url.as_str()).await;
    assert_eq!(status, 303, "{location}");
    assert!(location.starts_with(CALLBACK), "{location}");
    let query = query_of(&location);
    assert_eq!(query.get("state"), Some(state.secret()), "{location}");
    assert!(query.contains_key("iss"), "RFC 9207: {location}");
    (query["code"].clone(), nonce, verifier)
}

/// A relying party as discovery makes it (the e2e test's small application uses it too).
pub(crate) type Rp = CoreClient<
    openidconnect::EndpointSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointMaybeSet,
    openidconnect::EndpointMaybeSet,
>;

fn relying_party(metadata: &CoreProviderMetadata, id: &str, secret: Option<&str>) -> Rp {
    CoreClient::from_provider_metadata(
        metadata.clone(),
        ClientId::new(id.to_string()),
        secret.map(|s| ClientSecret::new(s.to_string())),
    )
    .set_redirect_uri(RedirectUrl::new(CALLBACK.to_string()).unwrap())
}

async fn a_relying_party_signs_in_refreshes_and_logs_out(backend: Backend) {
    let Some(app) = provider(backend).await else {
        return;
    };
    // Discovery says what SPEC §14 lists.
    let r = app.get("/.well-known/openid-configuration", &[]).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let base = app.core.config.public_url();
    assert_eq!(r.body["issuer"], json!(app.core.config.issuer()));
    for (key, path) in [
        ("authorization_endpoint", "/oauth2/authorize"),
        ("token_endpoint", "/oauth2/token"),
        ("userinfo_endpoint", "/oauth2/userinfo"),
        ("jwks_uri", "/.well-known/jwks.json"),
        ("end_session_endpoint", "/oauth2/logout"),
        ("revocation_endpoint", "/oauth2/revoke"),
    ] {
        assert_eq!(r.body[key], json!(format!("{base}{path}")), "{key}");
    }
    assert_eq!(r.body["response_types_supported"], json!(["code"]));
    assert_eq!(
        r.body["grant_types_supported"],
        json!(["authorization_code", "refresh_token"])
    );
    assert_eq!(r.body["code_challenge_methods_supported"], json!(["S256"]));
    assert_eq!(
        r.body["id_token_signing_alg_values_supported"],
        json!(["RS256", "EdDSA"])
    );
    assert_eq!(
        r.body["token_endpoint_auth_methods_supported"],
        json!(["client_secret_basic", "client_secret_post", "none"])
    );
    for scope in ["openid", "profile", "email", "offline_access", "roles"] {
        assert!(
            r.body["scopes_supported"]
                .as_array()
                .unwrap()
                .contains(&json!(scope)),
            "{scope}"
        );
    }

    let alice = app.user("alice").await;
    let alice_id = alice["id"].as_str().unwrap().to_string();
    let (id, secret) = client(&app, form("Wiki")).await;
    let metadata = discover(&app).await;
    let rp = relying_party(&metadata, &id, secret.as_deref());
    let browser = Browser::sign_in(&app, "alice").await;

    let (code, nonce, verifier) = code_for(
        &browser,
        &rp,
        &["profile", "email", "offline_access", "roles"],
    )
    .await;
    let tokens = rp
        .exchange_code(AuthorizationCode::new(code))
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(&app.client)
        .await
        .expect("code exchange");
    assert_eq!(tokens.token_type().as_ref(), "bearer");
    let id_token = tokens.id_token().expect("an ID token");
    let id_verifier = rp.id_token_verifier();
    let claims = id_token
        .claims(&id_verifier, &nonce)
        .expect("the ID token verifies against the JWKS (RS256)");
    assert_eq!(claims.subject().as_str(), alice_id);
    assert_eq!(
        id_token.signing_alg().unwrap(),
        &CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256
    );
    let expected_hash = AccessTokenHash::from_token(
        tokens.access_token(),
        id_token.signing_alg().unwrap(),
        id_token.signing_key(&id_verifier).unwrap(),
    )
    .unwrap();
    assert_eq!(claims.access_token_hash(), Some(&expected_hash));
    assert!(claims.auth_time().is_some());
    let amr: Vec<String> = claims
        .auth_method_refs()
        .unwrap()
        .iter()
        .map(|a| a.to_string())
        .collect();
    assert_eq!(amr, ["pwd"]);
    assert_eq!(
        claims.email().map(|e| e.as_str()),
        Some("alice@example.com")
    );
    // The raw claims: sid, and no more than the spec's.
    let raw = jwt_claims(&id_token.to_string());
    assert!(raw["sid"].is_string(), "{raw}");
    assert_eq!(raw["aud"], json!(id));

    // Userinfo, through the relying party and raw (roles and org with scope roles).
    let info: UserInfoClaims<EmptyAdditionalClaims, CoreGenderClaim> = rp
        .user_info(tokens.access_token().clone(), None)
        .unwrap()
        .request_async(&app.client)
        .await
        .expect("userinfo");
    assert_eq!(info.subject().as_str(), alice_id);
    assert_eq!(info.preferred_username().map(|u| u.as_str()), Some("alice"));
    assert_eq!(info.email_verified(), Some(true));
    let bearer = format!("Bearer {}", tokens.access_token().secret());
    let r = app
        .get("/oauth2/userinfo", &[("authorization", &bearer)])
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["roles"], json!(["owner"]));
    assert_eq!(r.body["org"], json!(brama::store::DEFAULT_ORGANIZATION));
    // The client's access token is not one of brama's API.
    let r = app
        .get(
            "/api/auth/me",
            &[("x-access-token", tokens.access_token().secret())],
        )
        .await;
    assert_eq!(r.status, 401, "{}", r.text);

    // Refresh: a new pair; the old refresh token again revokes the grant (SPEC §3's rule).
    let first_refresh = tokens.refresh_token().expect("offline_access").clone();
    let refreshed = rp
        .exchange_refresh_token(&first_refresh)
        .unwrap()
        .request_async(&app.client)
        .await
        .expect("refresh");
    let second_refresh = refreshed.refresh_token().unwrap().clone();
    assert_ne!(second_refresh.secret(), first_refresh.secret());
    let refreshed_id = refreshed.id_token().unwrap();
    let refreshed_claims = refreshed_id
        .claims(&id_verifier, |_: Option<&Nonce>| Ok(()))
        .expect("the refreshed ID token verifies");
    assert_eq!(refreshed_claims.subject().as_str(), alice_id);
    let bearer = format!("Bearer {}", refreshed.access_token().secret());
    assert_eq!(
        app.get("/oauth2/userinfo", &[("authorization", &bearer)])
            .await
            .status,
        200
    );
    let reused = rp
        .exchange_refresh_token(&first_refresh)
        .unwrap()
        .request_async(&app.client)
        .await;
    assert!(reused.is_err(), "a used refresh token is refused");
    let r = app
        .get("/oauth2/userinfo", &[("authorization", &bearer)])
        .await;
    assert_eq!(r.status, 401, "the grant was revoked: {}", r.text);
    assert!(
        r.headers["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("invalid_token")
    );
    let again = rp
        .exchange_refresh_token(&RefreshToken::new(second_refresh.secret().clone()))
        .unwrap()
        .request_async(&app.client)
        .await;
    assert!(again.is_err(), "the whole family ended");

    // Still signed in on brama: a new authorization needs no login, even with prompt=none.
    let (status, location) = browser
        .visit(&app.url(&format!(
            "/oauth2/authorize?client_id={id}&redirect_uri={CALLBACK}&response_type=code&scope=openid&state=s1&prompt=none"
        )))
        .await;
    assert_eq!(status, 303);
    assert!(query_of(&location).contains_key("code"), "{location}");

    // Logout with the ID token as hint: back to the registered URI with state, session ended.
    let (status, location) = browser
        .visit(&app.url(&format!(
            "/oauth2/logout?id_token_hint={}&post_logout_redirect_uri=https://rp.example.org/bye&state=xyz",
            id_token
        )))
        .await;
    assert_eq!(
        (status, location.as_str()),
        (303, "https://rp.example.org/bye?state=xyz")
    );
    let (status, location) = browser
        .visit(&app.url(&format!(
            "/oauth2/authorize?client_id={id}&redirect_uri={CALLBACK}&response_type=code&scope=openid&state=s2&prompt=none"
        )))
        .await;
    assert_eq!(status, 303);
    let query = query_of(&location);
    assert_eq!(
        (query["error"].as_str(), query["state"].as_str()),
        ("login_required", "s2"),
        "{location}"
    );
    // An unregistered post-logout URI is never followed.
    let (status, location) = browser
        .visit(&app.url(&format!(
            "/oauth2/logout?client_id={id}&post_logout_redirect_uri=https://evil.example.org/"
        )))
        .await;
    assert_eq!((status, location), (303, format!("{base}/")));
}

async fn public_clients_use_pkce_and_eddsa_and_secrets_may_come_in_the_body(backend: Backend) {
    let Some(app) = provider(backend).await else {
        return;
    };
    app.user("alice").await;
    let metadata = discover(&app).await;
    let browser = Browser::sign_in(&app, "alice").await;

    // A public client signing with EdDSA: no secret, PKCE required.
    let (id, secret) = client(
        &app,
        brama::core::oidc::ClientForm {
            public: true,
            id_token_alg: Some("EdDSA".into()),
            ..form("SPA")
        },
    )
    .await;
    assert_eq!(secret, None);
    let (status, location) = browser
        .visit(&app.url(&format!(
            "/oauth2/authorize?client_id={id}&redirect_uri={CALLBACK}&response_type=code&scope=openid&state=p"
        )))
        .await;
    assert_eq!(status, 303);
    let query = query_of(&location);
    assert_eq!(query["error"], "invalid_request", "{location}");
    assert!(query["error_description"].contains("PKCE"), "{location}");
    let (status, location) = browser
        .visit(&app.url(&format!(
            "/oauth2/authorize?client_id={id}&redirect_uri={CALLBACK}&response_type=code&scope=openid&code_challenge={}&code_challenge_method=plain",
            "a".repeat(43)
        )))
        .await;
    assert_eq!(status, 303);
    assert_eq!(query_of(&location)["error"], "invalid_request");

    let rp = relying_party(&metadata, &id, None);
    let (code, nonce, verifier) = code_for(&browser, &rp, &["email"]).await;
    let tokens = rp
        .exchange_code(AuthorizationCode::new(code))
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(&app.client)
        .await
        .expect("a public client's exchange");
    assert!(tokens.refresh_token().is_none(), "no offline_access asked");
    let id_token = tokens.id_token().unwrap();
    assert_eq!(
        id_token.signing_alg().unwrap(),
        &CoreJwsSigningAlgorithm::EdDsa
    );
    let verifier = rp
        .id_token_verifier()
        .set_allowed_algs(vec![CoreJwsSigningAlgorithm::EdDsa]);
    let claims = id_token.claims(&verifier, &nonce).expect("EdDSA verifies");
    let expected_hash = AccessTokenHash::from_token(
        tokens.access_token(),
        id_token.signing_alg().unwrap(),
        id_token.signing_key(&verifier).unwrap(),
    )
    .unwrap();
    assert_eq!(claims.access_token_hash(), Some(&expected_hash));

    // A confidential client with client_secret_post.
    let (id, secret) = client(&app, form("Chat")).await;
    let rp = relying_party(&metadata, &id, secret.as_deref()).set_auth_type(AuthType::RequestBody);
    let (code, nonce, verifier) = code_for(&browser, &rp, &[]).await;
    let tokens = rp
        .exchange_code(AuthorizationCode::new(code))
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(&app.client)
        .await
        .expect("client_secret_post");
    tokens
        .id_token()
        .unwrap()
        .claims(&rp.id_token_verifier(), &nonce)
        .expect("verifies");
}

/// POST `/oauth2/token` with a form and optional Basic credentials.
async fn token_request(app: &TestApp, form: &[(&str, &str)], basic: Option<(&str, &str)>) -> Resp {
    let mut request = app.client.post(app.url("/oauth2/token")).form(form);
    if let Some((id, secret)) = basic {
        request = request.basic_auth(id, Some(secret));
    }
    let r = request.send().await.unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let text = r.text().await.unwrap();
    Resp {
        status,
        headers,
        body: serde_json::from_str(&text).unwrap_or(Value::Null),
        text,
    }
}

/// A code exchange for a confidential client, built and not yet sent (to send many at once).
fn code_exchange(
    app: &TestApp,
    (id, secret): (&str, &str),
    code: &str,
    verifier: &str,
) -> reqwest::RequestBuilder {
    app.client
        .post(app.url("/oauth2/token"))
        .basic_auth(id, Some(secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", CALLBACK),
            ("code_verifier", verifier),
        ])
}

/// `grant_type=authorization_code` for `code` with its PKCE verifier.
async fn exchange_code(
    app: &TestApp,
    code: &str,
    verifier: &str,
    basic: Option<(&str, &str)>,
) -> Resp {
    token_request(
        app,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", CALLBACK),
            ("code_verifier", verifier),
        ],
        basic,
    )
    .await
}

/// Ends every browser session (brama's own sessions, not the clients' grants) in the database,
/// as a logout in another window would.
async fn end_browser_sessions(app: &TestApp) {
    app.execute_sql(
        "UPDATE sessions SET revoked_at = 1, revoke_reason = 'logout' WHERE client_id IS NULL",
        &[],
    )
    .await;
}

fn oauth_error(r: &Resp) -> (u16, &str) {
    (r.status, r.body["error"].as_str().unwrap_or_default())
}

/// A code through a signed-in browser for a confidential client, with a PKCE pair:
/// (code, verifier).
async fn raw_code(app: &TestApp, browser: &Browser, id: &str) -> (String, String) {
    scoped_code(app, browser, id, "openid%20offline_access").await
}

/// The claims of a JWT, read without checking its signature.
fn jwt_claims(token: &str) -> Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).expect("a JWT");
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}

/// `raw_code` for `scope` (URL-encoded).
async fn scoped_code(app: &TestApp, browser: &Browser, id: &str, scope: &str) -> (String, String) {
    use base64::Engine;
    let verifier = "v".repeat(50);
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sha2::Sha256::digest(verifier.as_bytes()));
    let (status, location) = browser
        .visit(&app.url(&format!(
            "/oauth2/authorize?client_id={id}&redirect_uri={CALLBACK}&response_type=code&scope={scope}&code_challenge={challenge}&code_challenge_method=S256"
        )))
        .await;
    assert_eq!(status, 303, "{location}");
    (query_of(&location)["code"].clone(), verifier)
}

use sha2::Digest;

async fn codes_are_single_use_bound_and_short_lived(backend: Backend) {
    let Some(app) = provider(backend).await else {
        return;
    };
    app.user("alice").await;
    let browser = Browser::sign_in(&app, "alice").await;
    let (id, secret) = client(&app, form("Wiki")).await;
    let secret = secret.unwrap();
    let basic = Some((id.as_str(), secret.as_str()));

    // Used twice: the second is refused and what the first issued is revoked.
    let (code, verifier) = raw_code(&app, &browser, &id).await;
    let exchange = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", CALLBACK),
        ("code_verifier", verifier.as_str()),
    ];
    let first = token_request(&app, &exchange, basic).await;
    assert_eq!(first.status, 200, "{}", first.text);
    assert_eq!(first.headers["cache-control"], "no-store");
    let bearer = format!("Bearer {}", first.body["access_token"].as_str().unwrap());
    assert_eq!(
        app.get("/oauth2/userinfo", &[("authorization", &bearer)])
            .await
            .status,
        200
    );
    let second = token_request(&app, &exchange, basic).await;
    assert_eq!(
        oauth_error(&second),
        (400, "invalid_grant"),
        "{}",
        second.text
    );
    assert_eq!(
        app.get("/oauth2/userinfo", &[("authorization", &bearer)])
            .await
            .status,
        401,
        "the first exchange's tokens are revoked"
    );
    let refresh = first.body["refresh_token"].as_str().unwrap();
    let r = token_request(
        &app,
        &[("grant_type", "refresh_token"), ("refresh_token", refresh)],
        basic,
    )
    .await;
    assert_eq!(oauth_error(&r), (400, "invalid_grant"), "{}", r.text);

    // A wrong PKCE verifier; a redirect URI one character off; an expired code.
    let (code, _) = raw_code(&app, &browser, &id).await;
    let wrong = "w".repeat(50);
    let r = token_request(
        &app,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", CALLBACK),
            ("code_verifier", &wrong),
        ],
        basic,
    )
    .await;
    assert_eq!(oauth_error(&r), (400, "invalid_grant"), "{}", r.text);
    let (code, verifier) = raw_code(&app, &browser, &id).await;
    let off_by_one = format!("{CALLBACK}x");
    let r = token_request(
        &app,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", &off_by_one),
            ("code_verifier", &verifier),
        ],
        basic,
    )
    .await;
    assert_eq!(oauth_error(&r), (400, "invalid_grant"), "{}", r.text);
    let (code, verifier) = raw_code(&app, &browser, &id).await;
    app.execute_sql("UPDATE oidc_codes SET expires_at = 0", &[])
        .await;
    let r = exchange_code(&app, &code, &verifier, basic).await;
    assert_eq!(oauth_error(&r), (400, "invalid_grant"), "{}", r.text);

    // Another client cannot spend this client's code; a wrong secret is invalid_client.
    let (other, other_secret) = client(&app, form("Other")).await;
    let other_secret = other_secret.unwrap();
    let (code, verifier) = raw_code(&app, &browser, &id).await;
    let exchange = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", CALLBACK),
        ("code_verifier", verifier.as_str()),
    ];
    let r = token_request(&app, &exchange, Some((&other, &other_secret))).await;
    assert_eq!(oauth_error(&r), (400, "invalid_grant"), "{}", r.text);
    let r = token_request(&app, &exchange, Some((&id, "wrong-secret"))).await;
    assert_eq!(oauth_error(&r), (401, "invalid_client"), "{}", r.text);
    assert!(
        r.headers["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Basic")
    );
    let r = token_request(&app, &exchange, basic).await;
    assert_eq!(r.status, 200, "the right client still can: {}", r.text);

    // The endpoint's own errors.
    let r = token_request(&app, &[("code", "x")], basic).await;
    assert_eq!(oauth_error(&r), (400, "invalid_request"));
    let r = token_request(&app, &[("grant_type", "password")], basic).await;
    assert_eq!(oauth_error(&r), (400, "unsupported_grant_type"));
    let r = token_request(
        &app,
        &[("grant_type", "authorization_code"), ("code", "x")],
        None,
    )
    .await;
    assert_eq!(oauth_error(&r), (401, "invalid_client"), "{}", r.text);
    let r = app
        .client
        .post(app.url("/oauth2/token"))
        .json(&json!({ "grant_type": "authorization_code" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "JSON is not a form");
    let r = app
        .client
        .post(app.url("/oauth2/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=authorization_code&grant_type=refresh_token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "a parameter given twice");

    // A refresh asking for more than was granted is refused without spending the token.
    let (code, verifier) = raw_code(&app, &browser, &id).await;
    let r = exchange_code(&app, &code, &verifier, basic).await;
    let refresh = r.body["refresh_token"].as_str().unwrap().to_string();
    let r = token_request(
        &app,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh),
            ("scope", "openid email"),
        ],
        basic,
    )
    .await;
    assert_eq!(oauth_error(&r), (400, "invalid_scope"), "{}", r.text);
    let r = token_request(
        &app,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh),
            ("scope", "openid"),
        ],
        basic,
    )
    .await;
    assert_eq!(
        (r.status, r.body["scope"].as_str()),
        (200, Some("openid")),
        "{}",
        r.text
    );

    // A code whose browser session ended in its minute opens nothing.
    let (code, verifier) = raw_code(&app, &browser, &id).await;
    end_browser_sessions(&app).await;
    let r = exchange_code(&app, &code, &verifier, basic).await;
    assert_eq!(oauth_error(&r), (400, "invalid_grant"), "{}", r.text);
}

/// One code sent eight times at once, as an attacker racing the client with a stolen code would:
/// exactly one exchange gets tokens and the rest `invalid_grant`; exactly one grant session with
/// one refresh token was opened (the exchange's write spends the code and opens the grant in one
/// step), and the replays revoked it.
async fn concurrent_exchanges_of_one_code_open_one_grant(backend: Backend) {
    let Some(app) = provider(backend).await else {
        return;
    };
    app.user("alice").await;
    let browser = Browser::sign_in(&app, "alice").await;
    let (id, secret) = client(&app, form("Wiki")).await;
    let secret = secret.unwrap();
    let basic = Some((id.as_str(), secret.as_str()));
    let (code, verifier) = raw_code(&app, &browser, &id).await;
    let mut racing = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let request = code_exchange(&app, (&id, &secret), &code, &verifier);
        racing.spawn(async move {
            let r = request.send().await.unwrap();
            let status = r.status().as_u16();
            let text = r.text().await.unwrap();
            (
                status,
                serde_json::from_str::<Value>(&text).unwrap_or(Value::Null),
                text,
            )
        });
    }
    let answers = racing.join_all().await;
    let granted: Vec<&Value> = answers
        .iter()
        .filter(|(status, _, _)| *status == 200)
        .map(|(_, body, _)| body)
        .collect();
    assert_eq!(granted.len(), 1, "{answers:?}");
    for (status, body, text) in answers.iter().filter(|(status, _, _)| *status != 200) {
        assert_eq!(
            (*status, body["error"].as_str()),
            (400, Some("invalid_grant")),
            "{text}"
        );
    }
    let count = |sql: &'static str| {
        let app = &app;
        let id = id.clone();
        async move { app.query_text(sql, &[&id]).await }
    };
    assert_eq!(
        count("SELECT CAST(COUNT(*) AS TEXT) FROM sessions WHERE client_id = $1")
            .await
            .as_deref(),
        Some("1"),
        "one grant session"
    );
    assert_eq!(
        count(
            "SELECT CAST(COUNT(*) AS TEXT) FROM refresh_tokens t \
             JOIN sessions s ON s.id = t.session_id WHERE s.client_id = $1"
        )
        .await
        .as_deref(),
        Some("1"),
        "one refresh token"
    );
    assert_eq!(
        count("SELECT grant_session_id FROM oidc_codes WHERE client_id = $1").await,
        count("SELECT id FROM sessions WHERE client_id = $1").await,
        "the code names the grant it opened"
    );
    let bearer = format!("Bearer {}", granted[0]["access_token"].as_str().unwrap());
    let r = app
        .get("/oauth2/userinfo", &[("authorization", &bearer)])
        .await;
    assert_eq!(r.status, 401, "the replays revoked the grant: {}", r.text);
    let refresh = granted[0]["refresh_token"].as_str().unwrap();
    let r = token_request(
        &app,
        &[("grant_type", "refresh_token"), ("refresh_token", refresh)],
        basic,
    )
    .await;
    assert_eq!(oauth_error(&r), (400, "invalid_grant"), "{}", r.text);
}

/// Codes exchanged at once are written together (one statement for those that arrive while
/// another batch is written): each exchange still opens its own grant, named on its own code,
/// with a refresh token only where `offline_access` was asked, and each answer's tokens are
/// that grant's.
async fn many_codes_exchanged_at_once_each_open_their_own_grant(backend: Backend) {
    let Some(app) = provider(backend).await else {
        return;
    };
    app.user("alice").await;
    let browser = Browser::sign_in(&app, "alice").await;
    let (id, secret) = client(&app, form("Wiki")).await;
    let secret = secret.unwrap();
    let mut codes = Vec::new();
    for i in 0..24 {
        let offline = i % 2 == 0;
        let scope = if offline {
            "openid%20offline_access"
        } else {
            "openid"
        };
        let (code, verifier) = scoped_code(&app, &browser, &id, scope).await;
        codes.push((code, verifier, offline));
    }
    let mut racing = tokio::task::JoinSet::new();
    for (code, verifier, offline) in codes.clone() {
        let request = code_exchange(&app, (&id, &secret), &code, &verifier);
        racing.spawn(async move {
            let r = request.send().await.unwrap();
            let status = r.status().as_u16();
            let text = r.text().await.unwrap();
            (code, offline, status, text)
        });
    }
    let basic = Some((id.as_str(), secret.as_str()));
    for (code, offline, status, text) in racing.join_all().await {
        assert_eq!(status, 200, "{text}");
        let body: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(body["refresh_token"].is_string(), offline, "{text}");
        // The grant the code names is the one the answer's tokens are of.
        let hash = brama::crypto::token_hash(&code);
        let grant = app
            .query_text(
                "SELECT grant_session_id FROM oidc_codes WHERE code_hash = $1",
                &[&hash],
            )
            .await
            .expect("the code names its grant");
        let id_token = body["id_token"].as_str().unwrap();
        let claims = jwt_claims(body["access_token"].as_str().unwrap());
        assert_eq!(claims["sid"], grant.as_str(), "{text}");
        assert!(jwt_claims(id_token)["sid"].is_string(), "{text}");
        let tokens = app
            .query_text(
                "SELECT CAST(COUNT(*) AS TEXT) FROM refresh_tokens WHERE session_id = $1",
                &[&grant],
            )
            .await;
        assert_eq!(
            tokens.as_deref(),
            Some(if offline { "1" } else { "0" }),
            "{text}"
        );
        if offline {
            let refresh = body["refresh_token"].as_str().unwrap();
            let r = token_request(
                &app,
                &[("grant_type", "refresh_token"), ("refresh_token", refresh)],
                basic,
            )
            .await;
            assert_eq!(r.status, 200, "the grant's own refresh token: {}", r.text);
        }
    }
    assert_eq!(
        app.query_text(
            "SELECT CAST(COUNT(*) AS TEXT) FROM sessions WHERE client_id = $1",
            &[&id]
        )
        .await
        .as_deref(),
        Some("24"),
        "one grant session for each code"
    );
}

/// Reads and redemptions that reach the store together go in one batch each (one statement):
/// each read gets its own code's row (a code read twice, both times; an unknown code, none),
/// and each redemption still spends its own code and opens its own grant, with a refresh token
/// only where it has one; a code sent twice in the batch opens one grant. The store runs on a
/// runtime of one thread, so that every request is queued before its batch is formed.
async fn a_batch_of_redemptions_opens_each_grant_once(backend: Backend) {
    let Some(app) = provider(backend).await else {
        return;
    };
    app.user("alice").await;
    let browser = Browser::sign_in(&app, "alice").await;
    let (id, _) = client(&app, form("Wiki")).await;
    let store = app.store().await;
    let now = brama::core::now_ms();
    let mut requests = Vec::new();
    for i in 0..16 {
        let (code, _) = raw_code(&app, &browser, &id).await;
        let hash = brama::crypto::token_hash(&code);
        let grant = store
            .oidc_code_grant(&hash, now)
            .await
            .unwrap()
            .expect("the code is stored");
        let session = brama::store::NewSession {
            id: uuid::Uuid::now_v7().to_string(),
            account_id: grant.account.id.clone(),
            created_at: now,
            expires_at: now + 60_000,
            user_agent: None,
            ip: None,
            amr: "pwd".into(),
            client_id: Some(id.clone()),
            scope: Some("openid".into()),
            parent_id: Some(grant.code.sso_session_id.clone()),
        };
        let token = (i % 2 == 0).then(|| brama::store::NewRefreshToken {
            token_hash: brama::crypto::token_hash(&session.id),
            expires_at: now + 60_000,
        });
        requests.push((hash, session, token));
    }
    // The first code again, for a grant of its own, in the same batch.
    let mut again = requests[0].clone();
    again.1.id = uuid::Uuid::now_v7().to_string();
    requests.push(again);
    let (url, timeout) = (
        app.database_url().to_string(),
        std::time::Duration::from_secs(10),
    );
    let batch = requests.clone();
    let mut codes: Vec<String> = requests.iter().map(|(hash, _, _)| hash.clone()).collect();
    codes.push(brama::crypto::token_hash("no such code"));
    let (read, opened) = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let store = brama::store::connect(&url, timeout, false).await.unwrap();
            // The reads first, in one batch too: each is answered from its own code's row.
            let mut reads = tokio::task::JoinSet::new();
            for (i, hash) in codes.into_iter().enumerate() {
                let store = store.clone();
                reads.spawn(async move {
                    let grant = store.oidc_code_grant(&hash, now).await.unwrap();
                    (
                        i,
                        grant.map(|g| (g.code.code_hash, g.account.id, g.parent_live)),
                    )
                });
            }
            let mut read = reads.join_all().await;
            read.sort();
            let mut redemptions = tokio::task::JoinSet::new();
            for (i, (hash, session, token)) in batch.into_iter().enumerate() {
                let store = store.clone();
                redemptions.spawn(async move {
                    let opened = store
                        .redeem_oidc_code(&hash, &session, token.as_ref())
                        .await
                        .unwrap();
                    (i, opened)
                });
            }
            let mut opened = redemptions.join_all().await;
            opened.sort();
            let read: Vec<_> = read.into_iter().map(|(_, r)| r).collect();
            (
                read,
                opened.into_iter().map(|(_, o)| o).collect::<Vec<bool>>(),
            )
        })
    })
    .join()
    .unwrap();
    for (i, (hash, session, _)) in requests.iter().enumerate() {
        assert_eq!(
            read[i],
            Some((hash.clone(), session.account_id.clone(), true)),
            "{i}"
        );
    }
    assert_eq!(read[requests.len()], None, "an unknown code");
    let (first, rest) = (opened[0], &opened[1..16]);
    assert!(rest.iter().all(|o| *o), "{opened:?}");
    assert!(
        first != opened[16],
        "the code sent twice opens one grant: {opened:?}"
    );
    for (i, (hash, session, token)) in requests.iter().enumerate() {
        let opened = opened[i];
        let named = app
            .query_text(
                "SELECT grant_session_id FROM oidc_codes WHERE code_hash = $1",
                &[hash],
            )
            .await;
        assert_eq!(named.as_deref() == Some(session.id.as_str()), opened, "{i}");
        let stored = app
            .query_text(
                "SELECT account_id FROM sessions WHERE id = $1",
                &[&session.id],
            )
            .await;
        assert_eq!(
            stored.as_deref() == Some(session.account_id.as_str()),
            opened,
            "{i}"
        );
        let tokens = app
            .query_text(
                "SELECT token_hash FROM refresh_tokens WHERE session_id = $1",
                &[&session.id],
            )
            .await;
        let expected = token
            .as_ref()
            .filter(|_| opened)
            .map(|t| t.token_hash.clone());
        assert_eq!(tokens, expected, "{i}");
    }
}

/// The exchange's write checks the browser session again: a logout that commits between the
/// exchange's read and its write leaves the code unused and opens nothing.
async fn a_code_is_not_redeemed_once_its_browser_session_ended(backend: Backend) {
    let Some(app) = provider(backend).await else {
        return;
    };
    app.user("alice").await;
    let browser = Browser::sign_in(&app, "alice").await;
    let (id, _) = client(&app, form("Wiki")).await;
    let store = app.store().await;
    let redeem = |code: String| {
        let (store, id) = (store.clone(), id.clone());
        async move {
            let hash = brama::crypto::token_hash(&code);
            let grant = store
                .oidc_code_grant(&hash, brama::core::now_ms())
                .await
                .unwrap()
                .expect("the code is stored");
            let now = brama::core::now_ms();
            let session = brama::store::NewSession {
                id: uuid::Uuid::now_v7().to_string(),
                account_id: grant.account.id.clone(),
                created_at: now,
                expires_at: now + 60_000,
                user_agent: None,
                ip: None,
                amr: "pwd".into(),
                client_id: Some(id),
                scope: Some("openid".into()),
                parent_id: Some(grant.code.sso_session_id.clone()),
            };
            let token = brama::store::NewRefreshToken {
                token_hash: brama::crypto::token_hash(&session.id),
                expires_at: now + 60_000,
            };
            let opened = store
                .redeem_oidc_code(&hash, &session, Some(&token))
                .await
                .unwrap();
            (opened, hash, session.id)
        }
    };
    let (code, _) = raw_code(&app, &browser, &id).await;
    let (opened, _, _) = redeem(code).await;
    assert!(opened, "a live browser session's code is redeemed");

    let (code, _) = raw_code(&app, &browser, &id).await;
    end_browser_sessions(&app).await;
    let (opened, hash, session) = redeem(code).await;
    assert!(!opened, "the browser session ended: nothing is opened");
    assert_eq!(
        app.query_text(
            "SELECT used_at FROM oidc_codes WHERE code_hash = $1",
            &[&hash]
        )
        .await,
        None,
        "the code stays unused"
    );
    assert_eq!(
        app.query_text("SELECT id FROM sessions WHERE id = $1", &[&session])
            .await,
        None,
        "no grant session"
    );
}

async fn authorization_errors_go_back_only_to_registered_uris(backend: Backend) {
    let Some(app) = provider(backend).await else {
        return;
    };
    app.user("alice").await;
    let (id, _) = client(&app, form("Wiki")).await;
    let anonymous = Browser::new();
    let authorize = |query: &str| app.url(&format!("/oauth2/authorize?{query}"));

    // Never redirected: no client, an unknown client, a redirect URI differing by one character.
    for query in [
        format!("redirect_uri={CALLBACK}&response_type=code&scope=openid"),
        format!("client_id=nope&redirect_uri={CALLBACK}&response_type=code&scope=openid"),
        format!("client_id={id}&redirect_uri={CALLBACK}/&response_type=code&scope=openid"),
        format!(
            "client_id={id}&redirect_uri=https://rp.example.org/callbacK&response_type=code&scope=openid"
        ),
        format!("client_id={id}&response_type=code&scope=openid"),
        format!(
            "client_id={id}&client_id={id}&redirect_uri={CALLBACK}&response_type=code&scope=openid"
        ),
    ] {
        let r = anonymous.http.get(authorize(&query)).send().await.unwrap();
        assert_eq!(r.status(), 400, "{query}");
        assert!(r.headers().get("location").is_none(), "{query}");
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html"),
            "{query}"
        );
        let page = r.text().await.unwrap();
        assert!(
            page.contains("brama") && !page.contains("<script"),
            "{page}"
        );
    }

    // Redirected with error, error_description and state (RFC 6749 §4.1.2.1).
    for (query, error) in [
        (
            format!(
                "client_id={id}&redirect_uri={CALLBACK}&response_type=token&scope=openid&state=st"
            ),
            "unsupported_response_type",
        ),
        (
            format!("client_id={id}&redirect_uri={CALLBACK}&scope=openid&state=st"),
            "invalid_request",
        ),
        (
            format!(
                "client_id={id}&redirect_uri={CALLBACK}&response_type=code&scope=email&state=st"
            ),
            "invalid_scope",
        ),
        (
            format!(
                "client_id={id}&redirect_uri={CALLBACK}&response_type=code&scope=openid&state=st&prompt=none"
            ),
            "login_required",
        ),
        (
            format!(
                "client_id={id}&redirect_uri={CALLBACK}&response_type=code&scope=openid&state=st&prompt=none%20login"
            ),
            "invalid_request",
        ),
        (
            format!(
                "client_id={id}&redirect_uri={CALLBACK}&response_type=code&scope=openid&state=st&max_age=soon"
            ),
            "invalid_request",
        ),
        (
            format!(
                "client_id={id}&redirect_uri={CALLBACK}&response_type=code&scope=openid&state=st&request=eyJ"
            ),
            "request_not_supported",
        ),
    ] {
        let (status, location) = anonymous.visit(&authorize(&query)).await;
        assert_eq!(status, 303, "{query}");
        let q = query_of(&location);
        assert!(location.starts_with(CALLBACK), "{location}");
        assert_eq!(
            (q["error"].as_str(), q["state"].as_str()),
            (error, "st"),
            "{query}"
        );
        assert!(!q["error_description"].is_empty());
    }

    // Without a session the browser goes to the page's login, carrying only a request id.
    let (status, location) = anonymous
        .visit(&authorize(&format!(
            "client_id={id}&redirect_uri={CALLBACK}&response_type=code&scope=openid&state=st"
        )))
        .await;
    assert_eq!(status, 303);
    let request = location
        .strip_prefix("/sign-in#request=")
        .unwrap_or_else(|| panic!("{location}"))
        .to_string();
    let r = anonymous
        .http
        .get(app.url(&format!("/oauth2/requests/{request}")))
        .send()
        .await
        .unwrap();
    let info: Value = r.json().await.unwrap();
    assert_eq!(info, json!({ "client_name": "Wiki" }));
    // The login round trip: log in on the page, come back, get the code. (The consent endpoint
    // has nothing to say to a first-party client's request.)
    let csrf = anonymous.log_in(&app, "alice").await;
    let r = anonymous
        .http
        .post(app.url("/oauth2/consent"))
        .header("sessionId", &csrf)
        .json(&json!({ "request": request, "allow": true }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let (status, location) = anonymous
        .visit(&app.url(&format!("/oauth2/authorize/resume?request={request}")))
        .await;
    assert_eq!(status, 303);
    let q = query_of(&location);
    assert!(q.contains_key("code") && q["state"] == "st", "{location}");
    // The parked request is spent.
    let r = anonymous
        .http
        .get(app.url(&format!("/oauth2/authorize/resume?request={request}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    // prompt=login asks again even with a session; max_age=0 likewise.
    for extra in ["prompt=login", "max_age=0"] {
        let (status, location) = anonymous
            .visit(&authorize(&format!(
                "client_id={id}&redirect_uri={CALLBACK}&response_type=code&scope=openid&{extra}"
            )))
            .await;
        assert_eq!(status, 303);
        assert!(
            location.starts_with("/sign-in#request="),
            "{extra}: {location}"
        );
    }

    // A client of another organization: alice's session does not count there.
    let stranger = app.foreign_admin("stranger").await;
    let r = app
        .request(
            "POST",
            "/api/admin/oidc-clients",
            Some(json!({ "name": "Their wiki", "redirect_uris": [CALLBACK] })),
            &[("x-access-token", stranger["accessToken"].as_str().unwrap())],
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let theirs = r.body["client_id"].as_str().unwrap();
    let (status, location) = anonymous
        .visit(&authorize(&format!(
            "client_id={theirs}&redirect_uri={CALLBACK}&response_type=code&scope=openid&state=o&prompt=none"
        )))
        .await;
    assert_eq!(status, 303);
    assert_eq!(query_of(&location)["error"], "login_required", "{location}");
}

async fn consent_is_asked_once_per_scope_set(backend: Backend) {
    let Some(app) = provider(backend).await else {
        return;
    };
    app.user("alice").await;
    let (id, _) = client(
        &app,
        brama::core::oidc::ClientForm {
            first_party: false,
            ..form("Ankiety")
        },
    )
    .await;
    let browser = Browser::sign_in(&app, "alice").await;
    let csrf = browser.log_in(&app, "alice").await;
    let authorize = |scope: &str, extra: &str| {
        app.url(&format!(
            "/oauth2/authorize?client_id={id}&redirect_uri={CALLBACK}&response_type=code&scope={scope}&state=c{extra}"
        ))
    };
    let (status, location) = browser.visit(&authorize("openid%20email", "")).await;
    assert_eq!(status, 303);
    let request = location
        .strip_prefix("/consent#request=")
        .unwrap_or_else(|| panic!("{location}"))
        .to_string();
    let (status, location) = browser
        .visit(&authorize("openid%20email", "&prompt=none"))
        .await;
    assert_eq!(status, 303);
    assert_eq!(query_of(&location)["error"], "consent_required");
    let info: Value = browser
        .http
        .get(app.url(&format!("/oauth2/requests/{request}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        info,
        json!({ "client_name": "Ankiety", "scopes": ["openid", "email"], "account": "alice" })
    );
    let decide = |allow: bool, csrf: Option<&str>, request: &str| {
        let mut r = browser
            .http
            .post(app.url("/oauth2/consent"))
            .json(&json!({ "request": request, "allow": allow }));
        if let Some(csrf) = csrf {
            r = r.header("sessionId", csrf);
        }
        r.send()
    };
    let r = decide(true, None, &request).await.unwrap();
    assert_eq!(r.status(), 403, "no CSRF header");
    let r = decide(true, Some(&csrf), &request).await.unwrap();
    assert_eq!(r.status(), 200);
    let answer: Value = r.json().await.unwrap();
    let to = answer["redirect_to"].as_str().unwrap();
    assert!(query_of(to).contains_key("code"), "{to}");

    // Asked once: the same scopes again go straight back with a code; a wider set asks again.
    let (_, location) = browser.visit(&authorize("email%20openid", "")).await;
    assert!(query_of(&location).contains_key("code"), "{location}");
    let (_, location) = browser.visit(&authorize("openid%20profile", "")).await;
    let request = location
        .strip_prefix("/consent#request=")
        .unwrap_or_else(|| panic!("{location}"))
        .to_string();
    let r = decide(false, Some(&csrf), &request).await.unwrap();
    let answer: Value = r.json().await.unwrap();
    let q = query_of(answer["redirect_to"].as_str().unwrap());
    assert_eq!(
        (q["error"].as_str(), q["state"].as_str()),
        ("access_denied", "c")
    );
}

async fn client_and_brama_refresh_tokens_do_not_cross(backend: Backend) {
    let Some(app) = provider(backend).await else {
        return;
    };
    let login = app.user("alice").await;
    let browser = Browser::sign_in(&app, "alice").await;
    let (id, secret) = client(&app, form("Wiki")).await;
    let secret = secret.unwrap();
    let basic = Some((id.as_str(), secret.as_str()));
    let (code, verifier) = raw_code(&app, &browser, &id).await;
    let r = exchange_code(&app, &code, &verifier, basic).await;
    let client_refresh = r.body["refresh_token"].as_str().unwrap().to_string();
    // The client's refresh token at brama's own refresh: unknown there, and not spent.
    let r = app.refresh(&client_refresh).await;
    assert_eq!(
        (r.status, r.code()),
        (403, "refresh_token_not_found"),
        "{}",
        r.text
    );
    let r = token_request(
        &app,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &client_refresh),
        ],
        basic,
    )
    .await;
    assert_eq!(
        r.status, 200,
        "still good at the token endpoint: {}",
        r.text
    );
    let refreshed = r.body.clone();
    let client_refresh = refreshed["refresh_token"].as_str().unwrap().to_string();
    // brama's refresh token at the token endpoint: invalid_grant, and brama's session lives.
    let own = login["refreshToken"].as_str().unwrap();
    let r = token_request(
        &app,
        &[("grant_type", "refresh_token"), ("refresh_token", own)],
        basic,
    )
    .await;
    assert_eq!(oauth_error(&r), (400, "invalid_grant"), "{}", r.text);
    // A client's grants do not count against max_sessions_per_account, nor show as sessions.
    let sessions = app
        .get(
            "/api/auth/sessions",
            &[("x-access-token", login["accessToken"].as_str().unwrap())],
        )
        .await;
    assert!(sessions.text.find("OIDC").is_none(), "{}", sessions.text);
    // Revocation (RFC 7009): 200, and the grant ends.
    let r = app
        .client
        .post(app.url("/oauth2/revoke"))
        .basic_auth(&id, Some(&secret))
        .form(&[("token", client_refresh.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = app
        .client
        .post(app.url("/oauth2/revoke"))
        .basic_auth(&id, Some(&secret))
        .form(&[("token", "unknown")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "unknown tokens are answered alike");
    let bearer = format!("Bearer {}", refreshed["access_token"].as_str().unwrap());
    assert_eq!(
        app.get("/oauth2/userinfo", &[("authorization", &bearer)])
            .await
            .status,
        401,
        "revoking the refresh token ended the grant's access token too"
    );

    // Removing a client ends its grants at once.
    let (code, verifier) = raw_code(&app, &browser, &id).await;
    let r = exchange_code(&app, &code, &verifier, basic).await;
    let bearer = format!("Bearer {}", r.body["access_token"].as_str().unwrap());
    assert_eq!(
        app.get("/oauth2/userinfo", &[("authorization", &bearer)])
            .await
            .status,
        200
    );
    let granted = brama::core::Actor::operator(brama::store::DEFAULT_ORGANIZATION)
        .grant::<brama::core::actor::ManageOidcClients>()
        .unwrap();
    app.core.remove_oidc_client(&granted, &id).await.unwrap();
    assert_eq!(
        app.get("/oauth2/userinfo", &[("authorization", &bearer)])
            .await
            .status,
        401
    );
    // The token endpoint keeps a copy of the clients it authenticated for a second; this
    // node's copy went with the client, so it is unknown at once.
    let r = token_request(
        &app,
        &[("grant_type", "refresh_token"), ("refresh_token", "x")],
        basic,
    )
    .await;
    assert_eq!(oauth_error(&r), (401, "invalid_client"), "{}", r.text);
}

async fn authorize_on_one_node_and_exchange_on_another(backend: Backend) {
    let Some(first) = provider(backend).await else {
        return;
    };
    let second = first.sibling(|c| c.listen = "127.0.0.1:0".into()).await;
    first.user("alice").await;
    let browser = Browser::sign_in(&first, "alice").await;
    let (id, secret) = client(&first, form("Wiki")).await;
    let secret = secret.unwrap();
    let (code, verifier) = raw_code(&first, &browser, &id).await;
    let r = exchange_code(&second, &code, &verifier, Some((&id, &secret))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let bearer = format!("Bearer {}", r.body["access_token"].as_str().unwrap());
    assert_eq!(
        first
            .get("/oauth2/userinfo", &[("authorization", &bearer)])
            .await
            .status,
        200
    );
    // The ID token verifies with the first node's JWKS.
    let jwks = first.get("/.well-known/jwks.json", &[]).await.body;
    let id_token = r.body["id_token"].as_str().unwrap();
    let header = jsonwebtoken::decode_header(id_token).unwrap();
    let key = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"].as_str() == header.kid.as_deref())
        .expect("the key is published");
    let decoding = jsonwebtoken::DecodingKey::from_rsa_components(
        key["n"].as_str().unwrap(),
        key["e"].as_str().unwrap(),
    )
    .unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_audience(&[&id]);
    validation.set_issuer(&[first.core.config.issuer()]);
    assert!(jsonwebtoken::decode::<Value>(id_token, &decoding, &validation).is_ok());
}

/// Malformed forms, wrong types, odd Unicode, injection strings, huge values and broken
/// credentials at every OAuth endpoint: a 4xx in OAuth's shape (or the HTML page of an
/// authorization that cannot go back), never a 5xx; and nothing stored is touched.
async fn bad_input_at_the_oauth_endpoints_gets_a_4xx_never_a_500(backend: Backend) {
    let Some(app) = provider(backend).await else {
        return;
    };
    app.user("alice").await;
    let browser = Browser::sign_in(&app, "alice").await;
    let (id, secret) = client(&app, form("Wiki")).await;
    let secret = secret.unwrap();
    let long = "x".repeat(10_000);
    let injections = [
        "' OR '1'='1",
        "\u{0}",
        "%00",
        "%FF%FE",
        "Zażółć gęślą jaźń 🚀",
        "\u{202e}txt.exe",
        "<script>alert(1)</script>",
        long.as_str(),
    ];
    let mut bodies: Vec<String> = vec![
        String::new(),
        "%%%".into(),
        "grant_type".into(),
        "grant_type=&code=".into(),
        "=&=&=".into(),
        format!("grant_type=authorization_code&code={long}&redirect_uri={CALLBACK}"),
        "grant_type=refresh_token&refresh_token=".into(),
        format!("grant_type=refresh_token&refresh_token={long}"),
        "grant_type=authorization_code&code=a&code=b".into(),
    ];
    for value in injections {
        let value: String = form_urlencoded::byte_serialize(value.as_bytes()).collect();
        bodies.push(format!(
            "grant_type={value}&code={value}&redirect_uri={value}&code_verifier={value}"
        ));
        bodies.push(format!(
            "grant_type=authorization_code&code={value}&redirect_uri={CALLBACK}"
        ));
        bodies.push(format!(
            "grant_type=refresh_token&refresh_token={value}&scope={value}"
        ));
        bodies.push(format!("token={value}&token_type_hint={value}"));
    }
    let basics = [
        None,
        Some(format!("Basic {}", base64_of(&format!("{id}:{secret}")))),
        Some("Basic !!!".to_string()),
        Some(format!("Basic {}", base64_of("no-colon"))),
        Some(format!("Basic {}", base64_of(&format!("{id}:wrong")))),
        Some(format!("Basic {}", base64_of("' OR 1=1 --:x"))),
        Some("Bearer something".to_string()),
        Some("Basic".to_string()),
    ];
    let mut answers = 0;
    for path in ["/oauth2/token", "/oauth2/revoke"] {
        for body in &bodies {
            for basic in &basics {
                let mut request = app
                    .client
                    .post(app.url(path))
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(body.clone());
                if let Some(basic) = basic {
                    request = request.header("authorization", basic);
                }
                let r = request.send().await.unwrap();
                let status = r.status().as_u16();
                let text = r.text().await.unwrap();
                answers += 1;
                if path == "/oauth2/revoke" && status == 200 {
                    continue;
                }
                assert!(
                    (400..500).contains(&status),
                    "{path} {body:.80} {basic:?}: {status} {text:.200}"
                );
                let json: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                assert!(json["error"].is_string(), "{path} {body:.80}: {text:.200}");
            }
        }
    }
    // Not a form at all; too big.
    for (content_type, body) in [
        (
            "application/json",
            "{\"grant_type\":\"authorization_code\"}".to_string(),
        ),
        ("text/plain", "grant_type=authorization_code".to_string()),
        (
            "application/x-www-form-urlencoded",
            format!("grant_type={}", "a".repeat(70_000)),
        ),
    ] {
        // A client of its own: a refused oversized body closes the connection, which a shared
        // pool might hand to the next request.
        let r = reqwest::Client::new()
            .post(app.url("/oauth2/token"))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        assert!((400..500).contains(&status), "{content_type}: {status}");
    }
    // Userinfo with broken bearers.
    let header = |v: &str| v.to_string();
    for bearer in [
        header("Bearer "),
        header("Bearer garbage"),
        format!("Bearer {long}"),
        header("Bearer a.b.c"),
        header("Basic abc"),
        header("Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."),
    ] {
        let r = app
            .get("/oauth2/userinfo", &[("authorization", &bearer)])
            .await;
        assert_eq!(r.status, 401, "{bearer:.40}: {}", r.text);
        assert_eq!(r.body["error"], "invalid_token");
    }
    // Authorize with odd values: a page or a redirect, never a 5xx.
    for value in injections {
        let value: String = form_urlencoded::byte_serialize(value.as_bytes()).collect();
        for query in [
            format!("client_id={value}&redirect_uri={CALLBACK}&response_type=code&scope=openid"),
            format!("client_id={id}&redirect_uri={value}&response_type=code&scope=openid"),
            format!(
                "client_id={id}&redirect_uri={CALLBACK}&response_type={value}&scope={value}&state={value}&nonce={value}"
            ),
            format!(
                "client_id={id}&redirect_uri={CALLBACK}&response_type=code&scope=openid&code_challenge={value}&code_challenge_method=S256&max_age={value}&prompt={value}"
            ),
            format!(
                "client_id={id}&redirect_uri={CALLBACK}&response_type=code&scope=openid&state={value}&nonce={value}"
            ),
            format!(
                "client_id={id}&redirect_uri={CALLBACK}&response_type=code&scope=openid&state={value}&nonce={value}&prompt=login"
            ),
        ] {
            let r = browser
                .http
                .get(app.url(&format!("/oauth2/authorize?{query}")))
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            assert!(status == 303 || status == 400, "{query:.120}: {status}");
            answers += 1;
        }
        for path in [
            format!("/oauth2/authorize/resume?request={value}"),
            format!("/oauth2/requests/{value}"),
            format!(
                "/oauth2/logout?id_token_hint={value}&post_logout_redirect_uri={value}&client_id={value}"
            ),
        ] {
            let r = app.client.get(app.url(&path)).send().await.unwrap();
            let status = r.status().as_u16();
            assert!((300..500).contains(&status), "{path:.120}: {status}");
        }
    }
    // The consent endpoint without a session, CSRF or JSON.
    for body in ["", "{", "{\"request\":1,\"allow\":\"yes\"}", "[]"] {
        let r = app
            .client
            .post(app.url("/oauth2/consent"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert!((400..500).contains(&r.status().as_u16()), "{body}");
    }
    assert!(answers > 500, "{answers}");
    // Nothing was spent or broken: the flow still works for the right client.
    let (code, verifier) = raw_code(&app, &browser, &id).await;
    let r = exchange_code(&app, &code, &verifier, Some((&id, &secret))).await;
    assert_eq!(r.status, 200, "{}", r.text);
}

fn base64_of(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// An account with a second factor: brama's login asks for it (the browser gets no SSO cookie
/// from the first step alone), and the ID token says how the person signed in.
async fn the_second_factor_comes_before_the_code_and_shows_in_amr(backend: Backend) {
    let Some(app) = provider(backend).await else {
        return;
    };
    let login = app.user("alice").await;
    let (secret, _) = crate::mfa::enrol(&app, login["accessToken"].as_str().unwrap()).await;
    let (id, client_secret) = client(&app, form("Wiki")).await;
    let client_secret = client_secret.unwrap();
    let browser = Browser::new();
    let csrf: Value = browser
        .http
        .get(app.url("/api/auth/csrf"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let csrf = csrf["sessionId"].as_str().unwrap().to_string();
    let r = browser
        .http
        .post(app.url("/api/auth/login"))
        .header("sessionId", &csrf)
        .json(&json!({ "username": "alice", "password": crate::helpers::PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(
        r.headers()
            .get_all("set-cookie")
            .iter()
            .all(|c| !c.to_str().unwrap().starts_with("brama_sso=")),
        "no SSO cookie before the second factor"
    );
    let ticket: Value = r.json().await.unwrap();
    assert_eq!(ticket["code"], "mfa_required");
    // Without the second step an authorization still wants a login.
    let (_, location) = browser
        .visit(&app.url(&format!(
            "/oauth2/authorize?client_id={id}&redirect_uri={CALLBACK}&response_type=code&scope=openid&prompt=none"
        )))
        .await;
    assert_eq!(query_of(&location)["error"], "login_required");
    let r = browser
        .http
        .post(app.url("/api/auth/login/mfa"))
        .header("sessionId", &csrf)
        .json(&json!({ "mfaToken": ticket["mfaToken"], "code": crate::mfa::code(&secret, 1) }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (code, verifier) = raw_code(&app, &browser, &id).await;
    let r = exchange_code(&app, &code, &verifier, Some((&id, &client_secret))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let claims: Value = {
        use base64::Engine;
        let payload = r.body["id_token"]
            .as_str()
            .unwrap()
            .split('.')
            .nth(1)
            .unwrap()
            .to_string();
        serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload)
                .unwrap(),
        )
        .unwrap()
    };
    assert_eq!(claims["amr"], json!(["pwd", "otp", "mfa"]), "{claims}");
}

/// RP-Initiated Logout from a site that cannot show an ID token of the person (any site can send
/// a browser to /oauth2/logout): brama asks first, and only the answer from its own page ends
/// the session. A hint of someone else proves nothing either.
async fn a_logout_without_proof_of_who_asks_first(backend: Backend) {
    let Some(app) = provider(backend).await else {
        return;
    };
    app.user("alice").await;
    let (id, _) = client(&app, form("Wiki")).await;
    let browser = Browser::sign_in(&app, "alice").await;
    let probe = app.url(&format!(
        "/oauth2/authorize?client_id={id}&redirect_uri={CALLBACK}&response_type=code&scope=openid&prompt=none"
    ));
    let signed_in = |browser: &Browser| {
        let (http, url) = (browser.http.clone(), probe.clone());
        async move {
            let r = http.get(url).send().await.unwrap();
            let location = r.headers()["location"].to_str().unwrap().to_string();
            query_of(&location).contains_key("code")
        }
    };
    let r = browser
        .http
        .get(app.url(&format!(
            "/oauth2/logout?client_id={id}&post_logout_redirect_uri=https://rp.example.org/bye&state=s"
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "a question, not a logout");
    let page = r.text().await.unwrap();
    assert!(
        page.contains("Wylogować z bramy?") && page.contains("<form method=\"post\""),
        "{page}"
    );
    assert!(signed_in(&browser).await);
    let token = page
        .split("name=\"token\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_string();
    // A form made elsewhere (another token) ends nothing.
    let r = browser
        .http
        .post(app.url("/oauth2/logout"))
        .form(&[("token", "forged.value")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(signed_in(&browser).await);
    // The person's yes: logged out, with a link back to the registered URI only.
    let r = browser
        .http
        .post(app.url("/oauth2/logout"))
        .form(&[
            ("token", token.as_str()),
            ("client_id", id.as_str()),
            ("post_logout_redirect_uri", "https://rp.example.org/bye"),
            ("state", "s"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let page = r.text().await.unwrap();
    assert!(
        page.contains("href=\"https://rp.example.org/bye?state=s\""),
        "{page}"
    );
    assert!(!signed_in(&browser).await);

    // A hint signed by brama but of someone else, for another client than client_id: a question.
    let browser = Browser::sign_in(&app, "alice").await;
    let (other, _) = client(&app, form("Other")).await;
    let hint = app
        .core
        .keys
        .sign_id_token(
            brama::crypto::jwt::IdTokenAlg::RS256,
            &json!({ "iss": app.core.config.issuer(), "sub": "someone-else", "aud": other }),
        )
        .unwrap();
    let (status, location) = browser
        .visit(&app.url(&format!(
            "/oauth2/logout?id_token_hint={hint}&client_id={id}&post_logout_redirect_uri=https://rp.example.org/bye"
        )))
        .await;
    assert_eq!(status, 200, "{location}");
    assert!(signed_in(&browser).await);
}
