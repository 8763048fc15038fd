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
