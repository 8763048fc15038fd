//! SPEC §4 `/api/membership/members`: seed 001's member routes, SPEC §10 validation, SPEC §2
//! roles and organization isolation, optimistic concurrency, CSV export and import.

use brama::core::Role;
use brama::domain::Pesel;
use serde_json::{Value, json};

use crate::helpers::{Backend, Resp, TestApp};
use crate::{app, both_backends};

both_backends!(
    role_matrix_on_every_member_and_admin_route,
    create_get_and_the_seed_shape,
    every_invalid_field_is_reported_at_once,
    pesel_rules_over_http,
    stale_version_is_a_conflict_and_changes_nothing,
    patch_changes_only_the_given_fields,
    list_search_filter_sort_and_paging,
    delete_then_not_found,
    csv_export_opens_in_polish_excel,
    import_is_all_or_nothing_and_round_trips,
    member_changes_are_audited_without_pesel,
    search_follows_changes_and_deletes,
    totals_stay_exact_per_organization,
    a_missing_member_is_not_found_before_its_fields_are_judged,
    search_ignores_case_and_polish_diacritics,
    lists_and_exports_sort_in_polish_alphabetical_order,
    a_large_export_is_read_in_batches_and_keeps_the_order,
    a_search_asks_the_index_for_rare_trigrams_and_checks_the_whole_text,
    a_search_by_surname_keeps_the_list_order_through_crowded_inserts,
);

/// A valid PESEL for the n-th test member.
fn pesel(n: u32) -> String {
    let year = 1950 + (n % 70) as i32;
    let month = 1 + (n % 12) as u8;
    let day = 1 + (n % 28) as u8;
    Pesel::from_parts(year, month, day, (n % 10_000) as u16)
        .expect("valid")
        .as_str()
        .to_string()
}

fn member(n: u32) -> Value {
    json!({
        "imie": format!("Anna{n}"),
        "nazwisko": format!("Kowalska{n}"),
        "wyksztalcenie": "Średnie",
        "pesel": pesel(n),
        "wojewodztwo": "mazowieckie",
        "miejscowosc": "Warszawa",
        "ulica": "Przykładowa",
        "nrdomulokalu": "5b",
        "kodpocztowy": "72-978",
        "email": format!("anna{n}@example.com"),
        "tel": "768-895-832",
    })
}

fn token(login: &Value) -> String {
    login["accessToken"].as_str().unwrap().to_string()
}

async fn call(
    app: &TestApp,
    method: &str,
    path: &str,
    body: Option<Value>,
    token: Option<&str>,
) -> Resp {
    match token {
        Some(t) => {
            app.request(method, path, body, &[("x-access-token", t)])
                .await
        }
        None => app.request(method, path, body, &[]).await,
    }
}

async fn create(app: &TestApp, token: &str, body: Value) -> Resp {
    call(
        app,
        "POST",
        "/api/membership/members",
        Some(body),
        Some(token),
    )
    .await
}

/// An owner (first account) and a moderator.
async fn staff(app: &TestApp) -> (String, String) {
    let owner = app.user("owner1").await;
    let moderator = app.user_with_role("mod1", Role::Moderator).await;
    (token(&owner), token(&moderator))
}

async fn role_matrix_on_every_member_and_admin_route(backend: Backend) {
    let app = app!(backend);
    let owner = token(&app.user("owner1").await);
    let admin = token(&app.user_with_role("admin1", Role::Admin).await);
    let moderator = token(&app.user_with_role("mod1", Role::Moderator).await);
    let user = token(&app.user("user1").await);
    let foreign = token(&app.foreign_admin("stranger").await);

    // One member per route that consumes one, created by the owner.
    let mut ids = Vec::new();
    for n in 0..20 {
        let r = create(&app, &owner, member(n)).await;
        assert_eq!(r.status, 201, "{}", r.text);
        ids.push(r.body["_id"].as_str().unwrap().to_string());
    }
    let account = app
        .get("/api/admin/accounts", &[("x-access-token", &owner)])
        .await
        .body[3]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let csv = "imie;nazwisko;wyksztalcenie;pesel;wojewodztwo;miejscowosc;ulica;nrdomulokalu;kodpocztowy;email;tel\n";

    // (caller, expected) per route; ids[k] keeps routes from stepping on each other.
    let no = None;
    let callers: [(&str, Option<&str>); 6] = [
        ("none", no),
        ("user", Some(&user)),
        ("moderator", Some(&moderator)),
        ("admin", Some(&admin)),
        ("owner", Some(&owner)),
        ("foreign admin", Some(&foreign)),
    ];
    struct Route<'a> {
        method: &'a str,
        path: String,
        body: Option<Value>,
        expect: [u16; 6],
    }
    let mut routes = vec![
        Route {
            method: "GET",
            path: "/api/membership/members".into(),
            body: None,
            expect: [403, 403, 200, 200, 200, 200],
        },
        Route {
            method: "GET",
            path: format!("/api/membership/members/{}", ids[0]),
            body: None,
            expect: [403, 403, 200, 200, 200, 404],
        },
        Route {
            method: "POST",
            path: "/api/membership/members".into(),
            body: None,
            expect: [403, 403, 201, 201, 201, 201],
        },
        Route {
            method: "PATCH",
            path: format!("/api/membership/members/{}", ids[1]),
            body: Some(json!({ "ulica": "Nowa" })),
            expect: [403, 403, 200, 200, 200, 404],
        },
        Route {
            method: "PUT",
            path: format!("/api/membership/members/{}", ids[2]),
            body: Some(member(2)),
            expect: [403, 403, 200, 200, 200, 404],
        },
        Route {
            method: "GET",
            path: "/api/membership/members/export.csv".into(),
            body: None,
            expect: [403, 403, 403, 200, 200, 200],
        },
        Route {
            method: "GET",
            path: "/api/membership/members/export.xlsx".into(),
            body: None,
            expect: [403, 403, 403, 200, 200, 200],
        },
        Route {
            method: "GET",
            path: "/api/admin/accounts".into(),
            body: None,
            expect: [403, 403, 403, 200, 200, 200],
        },
        Route {
            method: "GET",
            path: format!("/api/admin/accounts/{account}"),
            body: None,
            expect: [403, 403, 403, 200, 200, 404],
        },
        Route {
            method: "PATCH",
            path: format!("/api/admin/accounts/{account}"),
            body: Some(json!({ "status": "active" })),
            expect: [403, 403, 403, 200, 200, 404],
        },
        Route {
            method: "GET",
            path: "/api/admin/audit".into(),
            body: None,
            expect: [403, 403, 403, 200, 200, 200],
        },
    ];
    // Deleting: each caller gets its own member so a success does not hide the next answer.
    for (k, _) in callers.iter().enumerate() {
        let mut expect = [0; 6];
        expect[k] = [403, 403, 403, 200, 200, 404][k];
        routes.push(Route {
            method: "DELETE",
            path: format!("/api/membership/members/{}", ids[10 + k]),
            body: None,
            expect,
        });
    }
    let mut failures = Vec::new();
    let mut created = 100;
    for route in &routes {
        for (k, (name, caller)) in callers.iter().enumerate() {
            if route.expect[k] == 0 {
                continue;
            }
            let body = if route.method == "POST" {
                created += 1;
                Some(member(created))
            } else {
                route.body.clone()
            };
            let r = call(&app, route.method, &route.path, body, *caller).await;
            if r.status != route.expect[k] {
                failures.push(format!(
                    "{} {} as {name}: {} (expected {}) {}",
                    route.method, route.path, r.status, route.expect[k], r.text
                ));
            }
            let message = r.message();
            match r.status {
                403 if caller.is_none() => assert_eq!(message, "No token provided!"),
                403 if route.path.starts_with("/api/membership/members")
                    && route.expect[2] == 403 =>
                {
                    assert_eq!(message, "Require Admin Role!")
                }
                403 if route.path.starts_with("/api/membership") => {
                    assert!(
                        message == "Require Moderator Role!" || message == "Require Admin Role!",
                        "{message}"
                    )
                }
                404 if route.path.starts_with("/api/membership") => {
                    assert_eq!(message, "Member not found.")
                }
                _ => {}
            }
        }
    }
    // Import: admin and owner only; each import uses new PESELs.
    for (k, (name, caller)) in callers.iter().enumerate() {
        let row = format!(
            "{csv}X;Y;Z;{};Śląskie;Katowice;Ulica;1;40-001;x{k}@example.com;768895832\n",
            pesel(500 + k as u32)
        );
        let mut req = app
            .client
            .post(app.url("/api/membership/members/import"))
            .header("content-type", "text/csv")
            .body(row);
        if let Some(t) = caller {
            req = req.header("x-access-token", *t);
        }
        let r = app.read(req.send().await.unwrap()).await;
        let expected = [403, 403, 403, 200, 200, 200][k];
        if r.status != expected {
            failures.push(format!(
                "import as {name}: {} (expected {expected}) {}",
                r.status, r.text
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // The foreign admin's list holds only its own organization's members.
    let r = call(&app, "GET", "/api/membership/members", None, Some(&foreign)).await;
    assert!(
        r.body
            .as_array()
            .unwrap()
            .iter()
            .all(|m| !ids.contains(&m["_id"].as_str().unwrap().to_string()))
    );
}

async fn create_get_and_the_seed_shape(backend: Backend) {
    let app = app!(backend);
    let (owner, moderator) = staff(&app).await;
    let r = create(&app, &moderator, member(1)).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.body["_id"].as_str().unwrap().to_string();
    let mut keys: Vec<&str> = r
        .body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "__v",
            "_id",
            "email",
            "imie",
            "kodpocztowy",
            "miejscowosc",
            "nazwisko",
            "nrdomulokalu",
            "pesel",
            "tel",
            "ulica",
            "wojewodztwo",
            "wyksztalcenie"
        ]
    );
    assert_eq!(r.body["__v"], 0);
    assert_eq!(r.body["pesel"], pesel(1));
    assert_eq!(r.body["wojewodztwo"], "Mazowieckie", "stored canonically");
    assert_eq!(r.body["wyksztalcenie"], "Średnie");
    assert_eq!(r.headers["etag"], "\"0\"");

    let r = call(
        &app,
        "GET",
        &format!("/api/membership/members/{id}"),
        None,
        Some(&owner),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["_id"], id.as_str());
    assert_eq!(r.body["imie"], "Anna1");
    let r = call(
        &app,
        "GET",
        "/api/membership/members/nonexistent",
        None,
        Some(&owner),
    )
    .await;
    assert_eq!(
        r.body,
        json!({ "message": "Member not found.", "code": "not_found" })
    );
}

async fn every_invalid_field_is_reported_at_once(backend: Backend) {
    let app = app!(backend);
    let (_, moderator) = staff(&app).await;
    let bad = json!({
        "imie": "  ",
        "nazwisko": "x".repeat(101),
        "wyksztalcenie": 5,
        "pesel": "77543187764",
        "wojewodztwo": "Bawaria",
        "miejscowosc": "Warszawa",
        "ulica": "Ulica",
        "nrdomulokalu": "1",
        "kodpocztowy": "72978",
        "email": "not-an-email",
        "tel": "12345",
    });
    let r = create(&app, &moderator, bad).await;
    assert_eq!(
        (r.status, r.code()),
        (400, "validation_failed"),
        "{}",
        r.text
    );
    let fields: Vec<&str> = r.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        [
            "imie",
            "nazwisko",
            "wyksztalcenie",
            "pesel",
            "wojewodztwo",
            "kodpocztowy",
            "email",
            "tel"
        ]
    );
    for e in r.body["errors"].as_array().unwrap() {
        assert!(
            e["message"]
                .as_str()
                .unwrap()
                .starts_with(&format!("{}: ", e["field"].as_str().unwrap()))
        );
    }
    // Missing fields are named too.
    let r = create(&app, &moderator, json!({ "imie": "Jan" })).await;
    assert_eq!(r.body["errors"].as_array().unwrap().len(), 10);
    assert_eq!(r.body["errors"][0]["message"], "nazwisko: is required");
    // Nothing was stored.
    let r = call(
        &app,
        "GET",
        "/api/membership/members",
        None,
        Some(&moderator),
    )
    .await;
    assert_eq!(r.body, json!([]));
}

async fn pesel_rules_over_http(backend: Backend) {
    let app = app!(backend);
    let (owner, moderator) = staff(&app).await;
    // Born 2005: the PESEL starts with 0; as a JSON number it comes back as the 11-char string.
    let young = Pesel::from_parts(2005, 3, 14, 1234)
        .unwrap()
        .as_str()
        .to_string();
    assert!(young.starts_with('0'));
    let number: u64 = young.parse().unwrap();
    let r = create(
        &app,
        &moderator,
        merge(member(1), json!({ "pesel": number })),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["pesel"], young.as_str());
    // Unique within the organization...
    let r = create(
        &app,
        &moderator,
        merge(member(2), json!({ "pesel": young })),
    )
    .await;
    assert_eq!(
        (r.status, r.body["errors"][0]["message"].as_str()),
        (400, Some("pesel: is already in use"))
    );
    // ...but another organization may register the same person.
    let foreign = token(&app.foreign_admin("stranger").await);
    let r = create(&app, &foreign, merge(member(3), json!({ "pesel": young }))).await;
    assert_eq!(r.status, 201, "{}", r.text);
    // The seed's example number is refused.
    let r = create(
        &app,
        &owner,
        merge(member(4), json!({ "pesel": 77543187764u64 })),
    )
    .await;
    assert_eq!(r.body["errors"][0]["field"], "pesel");
    // 29 February exists only in leap years.
    let leap = Pesel::from_parts(2000, 2, 29, 1).unwrap();
    assert!(Pesel::from_parts(1900, 2, 29, 1).is_none());
    assert_eq!(
        create(
            &app,
            &owner,
            merge(member(5), json!({ "pesel": leap.as_str() }))
        )
        .await
        .status,
        201
    );
}

async fn stale_version_is_a_conflict_and_changes_nothing(backend: Backend) {
    let app = app!(backend);
    let (_, moderator) = staff(&app).await;
    let created = create(&app, &moderator, member(1)).await.body;
    let path = format!(
        "/api/membership/members/{}",
        created["_id"].as_str().unwrap()
    );
    let r = call(
        &app,
        "PUT",
        &path,
        Some(merge(member(1), json!({ "ulica": "Nowa", "__v": 0 }))),
        Some(&moderator),
    )
    .await;
    assert_eq!(
        (r.status, r.body["__v"].as_i64()),
        (200, Some(1)),
        "{}",
        r.text
    );
    assert_eq!(r.headers["etag"], "\"1\"");
    // A client still holding version 0.
    let r = call(
        &app,
        "PUT",
        &path,
        Some(merge(member(1), json!({ "ulica": "Stara", "__v": 0 }))),
        Some(&moderator),
    )
    .await;
    assert_eq!(r.status, 409, "{}", r.text);
    assert_eq!(r.code(), "version_conflict");
    let r = app
        .request(
            "PATCH",
            &path,
            Some(json!({ "ulica": "Stara" })),
            &[("x-access-token", &moderator), ("if-match", "\"0\"")],
        )
        .await;
    assert_eq!((r.status, r.code()), (409, "version_conflict"));
    let stored = call(&app, "GET", &path, None, Some(&moderator)).await.body;
    assert_eq!(
        (stored["ulica"].as_str(), stored["__v"].as_i64()),
        (Some("Nowa"), Some(1)),
        "unchanged"
    );
    // The right If-Match goes through; a malformed one is a 400.
    let r = app
        .request(
            "PATCH",
            &path,
            Some(json!({ "ulica": "Trzecia" })),
            &[("x-access-token", &moderator), ("if-match", "\"1\"")],
        )
        .await;
    assert_eq!((r.status, r.body["__v"].as_i64()), (200, Some(2)));
    let r = app
        .request(
            "PATCH",
            &path,
            Some(json!({ "ulica": "X" })),
            &[("x-access-token", &moderator), ("if-match", "abc")],
        )
        .await;
    assert_eq!(r.status, 400);
}

async fn patch_changes_only_the_given_fields(backend: Backend) {
    let app = app!(backend);
    let (_, moderator) = staff(&app).await;
    let created = create(&app, &moderator, member(1)).await.body;
    let path = format!(
        "/api/membership/members/{}",
        created["_id"].as_str().unwrap()
    );
    let r = call(
        &app,
        "PATCH",
        &path,
        Some(json!({ "miejscowosc": "Kraków", "wojewodztwo": "MAŁOPOLSKIE" })),
        Some(&moderator),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["miejscowosc"], "Kraków");
    assert_eq!(r.body["wojewodztwo"], "Małopolskie");
    assert_eq!(r.body["imie"], created["imie"]);
    assert_eq!(r.body["pesel"], created["pesel"]);
    // PUT needs every field.
    let r = call(
        &app,
        "PUT",
        &path,
        Some(json!({ "imie": "Jan" })),
        Some(&moderator),
    )
    .await;
    assert_eq!((r.status, r.code()), (400, "validation_failed"));
    let r = call(
        &app,
        "PATCH",
        &path,
        Some(json!({ "kodpocztowy": "00-1234" })),
        Some(&moderator),
    )
    .await;
    assert_eq!(r.body["errors"][0]["field"], "kodpocztowy");
    let r = call(
        &app,
        "PATCH",
        "/api/membership/members/unknown",
        Some(json!({ "ulica": "X" })),
        Some(&moderator),
    )
    .await;
    assert_eq!((r.status, r.message()), (404, "Member not found."));
}

async fn list_search_filter_sort_and_paging(backend: Backend) {
    let app = app!(backend);
    let (_, moderator) = staff(&app).await;
    for n in 0..25u32 {
        let w = if n % 5 == 0 {
            "Śląskie"
        } else {
            "Mazowieckie"
        };
        let m = merge(
            member(n),
            json!({ "nazwisko": format!("Nowak{:02}", 24 - n), "wojewodztwo": w, "miejscowosc": if n == 7 { "Łódź" } else { "Warszawa" } }),
        );
        assert_eq!(create(&app, &moderator, m).await.status, 201);
    }
    let list = |q: &str| {
        let path = format!("/api/membership/members{q}");
        let moderator = moderator.clone();
        let app = &app;
        async move { call(app, "GET", &path, None, Some(&moderator)).await }
    };
    let r = list("").await;
    assert_eq!(r.body.as_array().unwrap().len(), 25);
    assert_eq!(r.headers["x-total-count"], "25");
    assert!(!r.headers.contains_key("link"), "no paging asked");
    assert_eq!(
        r.body[0]["nazwisko"], "Nowak00",
        "sorted by nazwisko by default"
    );

    let r = list("?sort=nazwisko&order=desc").await;
    assert_eq!(r.body[0]["nazwisko"], "Nowak24");
    let r = list("?wojewodztwo=slaskie").await;
    assert_eq!(
        (
            r.body.as_array().unwrap().len(),
            r.headers["x-total-count"].to_str().unwrap()
        ),
        (5, "5")
    );
    // Search ignores case and character width (NFKC), over name, city and email.
    let r = list("?q=%C5%81%C3%93D%C5%B9").await; // ŁÓDŹ
    assert_eq!(r.body.as_array().unwrap().len(), 1, "{}", r.text);
    let r = list("?q=anna7%40example").await;
    assert_eq!(r.body.as_array().unwrap().len(), 1);
    let r = list("?q=%25").await;
    assert_eq!(r.body, json!([]), "% is a character, not a wildcard");
    // A substring across fields (a space is part of it), and one that many names share.
    let r = list("?q=nowak10%20warszawa").await;
    assert_eq!(r.body.as_array().unwrap().len(), 1, "{}", r.text);
    assert_eq!(r.body[0]["nazwisko"], "Nowak10");
    let r = list("?q=NOWAK1").await;
    assert_eq!(
        (
            r.body.as_array().unwrap().len(),
            r.headers["x-total-count"].to_str().unwrap()
        ),
        (10, "10")
    );
    let r = list("?q=%22nowak").await;
    assert_eq!(r.body, json!([]), "a quote is a character too");

    let r = list("?page=2&limit=10").await;
    assert_eq!(r.body.as_array().unwrap().len(), 10);
    assert_eq!(r.headers["x-total-count"], "25");
    assert_eq!(r.body[0]["nazwisko"], "Nowak10");
    let link = r.headers["link"].to_str().unwrap();
    assert!(link.contains("page=3&limit=10>; rel=\"next\""), "{link}");
    assert!(link.contains("page=1&limit=10>; rel=\"prev\""), "{link}");
    assert!(link.contains("page=3&limit=10>; rel=\"last\""), "{link}");
    let r = list("?page=3&limit=10&q=nowak").await;
    assert_eq!(r.body.as_array().unwrap().len(), 5);
    assert!(!r.headers["link"].to_str().unwrap().contains("rel=\"next\""));

    let r = list("?q=now%00ak").await;
    assert_eq!((r.status, r.code()), (400, "invalid_query"), "{}", r.text);
    let long = format!("?q={}", "a".repeat(201));
    for bad in [
        "?page=0",
        "?limit=0",
        "?limit=100000",
        "?sort=pesel",
        "?order=up",
        "?wojewodztwo=Bawaria",
        "?q=now%0Aak",
        long.as_str(),
    ] {
        let r = list(bad).await;
        assert_eq!(
            (r.status, r.code()),
            (400, "validation_failed"),
            "{bad}: {}",
            r.text
        );
    }
    let r = list("?page=abc").await;
    assert_eq!((r.status, r.code()), (400, "invalid_query"));
}

async fn delete_then_not_found(backend: Backend) {
    let app = app!(backend);
    let (owner, moderator) = staff(&app).await;
    let created = create(&app, &moderator, member(1)).await.body;
    let path = format!(
        "/api/membership/members/{}",
        created["_id"].as_str().unwrap()
    );
    let r = call(&app, "DELETE", &path, None, Some(&moderator)).await;
    assert_eq!((r.status, r.message()), (403, "Require Admin Role!"));
    let r = call(&app, "DELETE", &path, None, Some(&owner)).await;
    assert_eq!(
        r.body,
        json!({ "message": "Member was deleted successfully!" })
    );
    let r = call(&app, "DELETE", &path, None, Some(&owner)).await;
    assert_eq!((r.status, r.message()), (404, "Member not found."));
    let r = call(&app, "GET", &path, None, Some(&owner)).await;
    assert_eq!(r.status, 404);
}

async fn export_csv(app: &TestApp, token: &str, query: &str) -> (u16, String, String) {
    let response = app
        .client
        .get(app.url(&format!("/api/membership/members/export.csv{query}")))
        .header("x-access-token", token)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, content_type, response.text().await.unwrap())
}

async fn import_csv(app: &TestApp, token: &str, body: String) -> Resp {
    let response = app
        .client
        .post(app.url("/api/membership/members/import"))
        .header("x-access-token", token)
        .header("content-type", "text/csv")
        .body(body)
        .send()
        .await
        .unwrap();
    app.read(response).await
}

async fn csv_export_opens_in_polish_excel(backend: Backend) {
    let app = app!(backend);
    let (owner, _) = staff(&app).await;
    create(
        &app,
        &owner,
        merge(
            member(1),
            json!({ "imie": "Zażółć", "ulica": "=HYPERLINK(\"x\")", "tel": "+48 768 895 832" }),
        ),
    )
    .await;
    let (status, content_type, text) = export_csv(&app, &owner, "").await;
    assert_eq!(status, 200);
    assert!(content_type.starts_with("text/csv"));
    assert!(text.starts_with('\u{feff}'), "BOM for Excel");
    let mut lines = text.trim_start_matches('\u{feff}').lines();
    assert_eq!(
        lines.next().unwrap(),
        "_id;imie;nazwisko;wyksztalcenie;pesel;wojewodztwo;miejscowosc;ulica;nrdomulokalu;kodpocztowy;email;tel;__v"
    );
    let row = lines.next().unwrap();
    assert!(
        row.contains(";Zażółć;") && row.contains(&format!(";{};", pesel(1))),
        "{row}"
    );
    // Formula-looking cells are neutralised for spreadsheets.
    assert!(
        row.contains(";\"'=HYPERLINK(\"\"x\"\")\";") && row.contains(";'+48 768 895 832;"),
        "{row}"
    );
    let (_, _, comma) = export_csv(&app, &owner, "?sep=,").await;
    assert!(comma.contains("_id,imie,nazwisko"));
    let (status, _, _) = export_csv(&app, &owner, "?sep=x").await;
    assert_eq!(status, 400);
}

async fn import_is_all_or_nothing_and_round_trips(backend: Backend) {
    let app = app!(backend);
    let (owner, _) = staff(&app).await;
    let header = "imie;nazwisko;wyksztalcenie;pesel;wojewodztwo;miejscowosc;ulica;nrdomulokalu;kodpocztowy;email;tel\n";
    let mut file = String::from(header);
    for n in 0..10_000u32 {
        let kod = if n == 6_789 {
            "6-7890".to_string()
        } else {
            "72-978".to_string()
        };
        file.push_str(&format!("Imię{n};Nazwisko{n};Wyższe;{};pomorskie;Gdańsk;Długa;{n};{kod};m{n}@example.com;768 895 832\n", pesel(n)));
    }
    let r = import_csv(&app, &owner, file.clone()).await;
    assert_eq!(
        (r.status, r.code()),
        (400, "import_failed"),
        "{}",
        &r.text[..r.text.len().min(500)]
    );
    assert_eq!(r.body["errorCount"], 1);
    assert_eq!(
        r.body["errors"],
        json!([{ "row": 6_791, "field": "kodpocztowy", "message": "kodpocztowy: has the wrong format" }])
    );
    let list = call(
        &app,
        "GET",
        "/api/membership/members?limit=1",
        None,
        Some(&owner),
    )
    .await;
    assert_eq!(list.headers["x-total-count"], "0", "nothing stored");

    let fixed = file.replace(";6-7890;", ";67-890;");
    let r = import_csv(&app, &owner, fixed).await;
    assert_eq!(r.status, 200, "{}", &r.text[..r.text.len().min(500)]);
    assert_eq!(r.body, json!({ "imported": 10_000 }));
    if backend == Backend::Postgres {
        // A large import leaves the planner statistics behind it (ANALYZE), or searches walk
        // the whole table until autovacuum gets round to it: of the members and of the narrow
        // table searches read (migration 0021).
        let rows = app
            .query_text(
                "SELECT string_agg(relname || '=' || reltuples::bigint, ',' ORDER BY relname) \
                 FROM pg_class WHERE relname IN ('members', 'member_search')",
                &[],
            )
            .await;
        assert_eq!(
            rows.as_deref(),
            Some("member_search=10000,members=10000"),
            "analyzed"
        );
        // The import let the trigram index's pending list grow, and set it back before its
        // commit.
        let options = app
            .query_text(
                "SELECT array_to_string(reloptions, ',') FROM pg_class \
                 WHERE relname = 'member_search_trgm'",
                &[],
            )
            .await;
        assert_eq!(options.as_deref(), Some("gin_pending_list_limit=256"));
    }
    let list = call(
        &app,
        "GET",
        "/api/membership/members?limit=1",
        None,
        Some(&owner),
    )
    .await;
    assert_eq!(list.headers["x-total-count"], "10000");
    // An import this large builds the indexes afresh on SQLite (issue 18) and numbers its
    // organization's places: its rows are found by the trigram search and the sorted list, and
    // the indexes and the search triggers are all back for what comes after it.
    let found = call(
        &app,
        "GET",
        "/api/membership/members?q=nazwisko9998",
        None,
        Some(&owner),
    )
    .await;
    assert_eq!(found.headers["x-total-count"], "1", "{}", found.text);
    assert_eq!(found.body[0]["nazwisko"], "Nazwisko9998");
    let last = call(
        &app,
        "GET",
        "/api/membership/members?limit=1&sort=nazwisko&order=desc",
        None,
        Some(&owner),
    )
    .await;
    assert_eq!(last.body[0]["nazwisko"], "Nazwisko9999", "{}", last.text);
    if backend == Backend::Sqlite {
        let schema = app
            .query_text(
                "SELECT group_concat(name, ',') FROM (SELECT name FROM sqlite_master \
                 WHERE tbl_name = 'members' AND sql IS NOT NULL AND type <> 'table' ORDER BY name)",
                &[],
            )
            .await;
        assert_eq!(
            schema.as_deref(),
            Some(
                "member_places_delete,member_places_insert,member_places_update,members_by_created,\
                 members_by_nazwisko,members_by_place,members_by_wojewodztwo,members_count_delete,\
                 members_count_insert,members_count_move,members_pesel_index,members_unplaced"
            )
        );
        // Of the indexes that are the table's own, only the primary key's is left: the key on
        // (organization_id, pesel), a ciphertext, went with migration 0023.
        let own = app
            .query_text(
                "SELECT group_concat(i.name, ',') FROM sqlite_master m, pragma_index_info(m.name) i \
                 WHERE m.tbl_name = 'members' AND m.type = 'index' AND m.sql IS NULL",
                &[],
            )
            .await;
        assert_eq!(own.as_deref(), Some("id"));
    }
    // A second import of the same people: every PESEL is already there.
    let again = format!(
        "{header}A;B;C;{};pomorskie;Gdańsk;Długa;1;72-978;a@example.com;768895832\n",
        pesel(3)
    );
    let r = import_csv(&app, &owner, again).await;
    assert_eq!(r.body["errors"][0]["field"], "pesel");
    assert_eq!(r.body["errors"][0]["row"], 2, "{}", r.text);
    // The same where the organization holds fewer members than the file has rows (its held
    // numbers are read whole instead of asked about in chunks): the clash is found at its row.
    let third = token(&app.foreign_admin("third").await);
    let row = |n: u32| {
        format!(
            "A{n};B{n};C;{};pomorskie;Gdańsk;Długa;1;72-978;a{n}@example.com;768895832\n",
            pesel(n)
        )
    };
    let r = import_csv(&app, &third, format!("{header}{}", row(7))).await;
    assert_eq!(r.body, json!({ "imported": 1 }), "{}", r.text);
    let r = import_csv(
        &app,
        &third,
        format!("{header}{}{}{}", row(5), row(7), row(6)),
    )
    .await;
    assert_eq!(
        (
            r.status,
            r.body["errorCount"].clone(),
            r.body["errors"][0]["row"].clone(),
            r.body["errors"][0]["field"].clone()
        ),
        (400, json!(1), json!(3), json!("pesel")),
        "{}",
        r.text
    );
    let list = call(
        &app,
        "GET",
        "/api/membership/members?limit=1",
        None,
        Some(&third),
    )
    .await;
    assert_eq!(list.headers["x-total-count"], "1", "nothing more stored");
    // Unknown and missing columns are named.
    let r = import_csv(&app, &owner, "imie;nazwisko;shoe_size\nA;B;42\n".into()).await;
    let named: Vec<&str> = r.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert!(
        named.contains(&"shoe_size") && named.contains(&"pesel") && named.contains(&"tel"),
        "{named:?}"
    );

    // Export, then import into an empty organization: the same members.
    let (_, _, exported) = export_csv(&app, &owner, "").await;
    let foreign = token(&app.foreign_admin("stranger").await);
    let r = import_csv(&app, &foreign, exported.clone()).await;
    assert_eq!(
        r.body,
        json!({ "imported": 10_000 }),
        "{}",
        &r.text[..r.text.len().min(300)]
    );
    let (_, _, reexported) = export_csv(&app, &foreign, "").await;
    let strip = |csv: &str| -> Vec<String> {
        let mut rows: Vec<String> = csv
            .lines()
            .skip(1)
            .map(|l| l.split_once(';').unwrap().1.to_string())
            .collect();
        rows.sort();
        rows
    };
    assert_eq!(
        strip(&exported),
        strip(&reexported),
        "same members apart from their ids"
    );
    // After the second large import (into a table as large as it), a member created one by
    // one is searchable: the trigger that feeds the search index is back.
    let r = create(&app, &foreign, member(20_001)).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let found = call(
        &app,
        "GET",
        "/api/membership/members?q=kowalska20001",
        None,
        Some(&foreign),
    )
    .await;
    assert_eq!(found.headers["x-total-count"], "1", "{}", found.text);
}

async fn member_changes_are_audited_without_pesel(backend: Backend) {
    let app = app!(backend);
    let (owner, moderator) = staff(&app).await;
    let created = create(&app, &moderator, member(1)).await.body;
    let id = created["_id"].as_str().unwrap();
    call(
        &app,
        "PATCH",
        &format!("/api/membership/members/{id}"),
        Some(json!({ "ulica": "Nowa" })),
        Some(&moderator),
    )
    .await;
    export_csv(&app, &owner, "").await;
    call(
        &app,
        "DELETE",
        &format!("/api/membership/members/{id}"),
        None,
        Some(&owner),
    )
    .await;
    let r = call(&app, "GET", "/api/admin/audit", None, Some(&owner)).await;
    let actions: Vec<&str> = r
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        &actions[..4],
        [
            "member_deleted",
            "member.export",
            "member_updated",
            "member_created"
        ]
    );
    assert_eq!(r.body[3]["target"], id);
    assert!(!r.text.contains(&pesel(1)), "no PESEL in the audit");
    assert!(
        !crate::helpers::log_text().contains(&pesel(1)),
        "no PESEL in the log"
    );
}

/// `base` with `changes` laid over it.
fn merge(base: Value, changes: Value) -> Value {
    let mut out = base;
    for (k, v) in changes.as_object().unwrap() {
        out[k] = v.clone();
    }
    out
}

async fn search_follows_changes_and_deletes(backend: Backend) {
    let app = app!(backend);
    let (owner, _) = staff(&app).await;
    let created = create(
        &app,
        &owner,
        merge(member(1), json!({ "nazwisko": "Brzęczyszczykiewicz" })),
    )
    .await
    .body;
    create(
        &app,
        &owner,
        merge(member(2), json!({ "nazwisko": "Kowalski \"Kowal\"" })),
    )
    .await;
    let path = format!(
        "/api/membership/members/{}",
        created["_id"].as_str().unwrap()
    );
    let hits = |q: &'static str| {
        let owner = owner.clone();
        let app = &app;
        async move {
            let r = call(
                app,
                "GET",
                &format!("/api/membership/members?q={q}"),
                None,
                Some(&owner),
            )
            .await;
            assert_eq!(r.status, 200, "{}", r.text);
            r.body.as_array().unwrap().len()
        }
    };
    assert_eq!(hits("CZYSZCZ").await, 1);
    assert_eq!(
        hits("cz").await,
        1,
        "two characters: no trigram, still found"
    );
    assert_eq!(hits("%22Kowal%22").await, 1, "quotes are characters");
    call(
        &app,
        "PATCH",
        &path,
        Some(json!({ "nazwisko": "Nowak" })),
        Some(&owner),
    )
    .await;
    assert_eq!(
        hits("czyszcz").await,
        0,
        "the old name is gone from the index"
    );
    assert_eq!(hits("nowak").await, 1);
    call(&app, "DELETE", &path, None, Some(&owner)).await;
    assert_eq!(hits("nowak").await, 0);
}

/// `X-Total-Count` of a list: the organization's kept count without filters, a count with a
/// filter, the search's own window count, and a count again past a search's last hit.
async fn totals_stay_exact_per_organization(backend: Backend) {
    let app = std::sync::Arc::new(app!(backend));
    let (owner, moderator) = staff(&app).await;
    let foreign = token(&app.foreign_admin("stranger").await);
    let total = |token: &str, query: &str| {
        let (app, token, path) = (
            app.clone(),
            token.to_string(),
            format!("/api/membership/members{query}"),
        );
        async move {
            let r = call(&app, "GET", &path, None, Some(&token)).await;
            assert_eq!(r.status, 200, "{path}: {}", r.text);
            let n = r.headers["x-total-count"].to_str().unwrap().to_string();
            (n, r.body.as_array().unwrap().len())
        }
    };
    // Twelve concurrent creates in one organization, two in another.
    let creates: Vec<_> = (0..12u32)
        .map(|n| {
            let (app, moderator) = (app.clone(), moderator.clone());
            tokio::spawn(async move { create(&app, &moderator, member(n)).await.status })
        })
        .collect();
    for c in creates {
        assert_eq!(c.await.unwrap(), 201);
    }
    for n in 100..102u32 {
        assert_eq!(create(&app, &foreign, member(n)).await.status, 201);
    }
    assert_eq!(total(&owner, "?limit=5").await, ("12".into(), 5));
    assert_eq!(total(&foreign, "").await, ("2".into(), 2));

    // An import adds its rows to the count at once.
    let mut csv = String::from(
        "imie;nazwisko;wyksztalcenie;pesel;wojewodztwo;miejscowosc;ulica;nrdomulokalu;kodpocztowy;email;tel\n",
    );
    for n in 200..230u32 {
        csv.push_str(&format!(
            "Imię{n};Zieliński{n};Wyższe;{};pomorskie;Gdańsk;Długa;{n};80-001;z{n}@example.com;768 895 832\n",
            pesel(n)
        ));
    }
    let r = import_csv(&app, &owner, csv).await;
    assert_eq!(r.body, json!({ "imported": 30 }), "{}", r.text);
    assert_eq!(total(&owner, "?limit=5").await, ("42".into(), 5));
    assert_eq!(
        total(&owner, "?wojewodztwo=pomorskie&limit=5").await,
        ("30".into(), 5)
    );
    // A search counts all its hits, not the page; past the last hit the count still holds.
    assert_eq!(
        total(&owner, "?q=zieli%C5%84ski2&limit=5").await,
        ("30".into(), 5)
    );
    assert_eq!(
        total(&owner, "?q=zieli%C5%84ski2&page=9&limit=5").await,
        ("30".into(), 0)
    );
    assert_eq!(total(&owner, "?q=nobody-like-this").await, ("0".into(), 0));

    // Deletes take members off their own organization's count only.
    let some = call(
        &app,
        "GET",
        "/api/membership/members?limit=3",
        None,
        Some(&owner),
    )
    .await;
    for m in some.body.as_array().unwrap() {
        let path = format!("/api/membership/members/{}", m["_id"].as_str().unwrap());
        assert_eq!(
            call(&app, "DELETE", &path, None, Some(&owner)).await.status,
            200
        );
    }
    assert_eq!(total(&owner, "?limit=5").await, ("39".into(), 5));
    assert_eq!(total(&foreign, "").await, ("2".into(), 2));
}

/// PUT and PATCH: a member that is not there (or is another organization's) is not found,
/// whatever was sent for it; an existing one gets every field problem.
async fn a_missing_member_is_not_found_before_its_fields_are_judged(backend: Backend) {
    let app = app!(backend);
    let (owner, _) = staff(&app).await;
    let bad = json!({ "pesel": "77543187764", "kodpocztowy": "00950" });
    for method in ["PUT", "PATCH"] {
        let r = call(
            &app,
            method,
            "/api/membership/members/nobody",
            Some(bad.clone()),
            Some(&owner),
        )
        .await;
        assert_eq!(
            (r.status, r.message()),
            (404, "Member not found."),
            "{method}"
        );
    }
    let id = create(&app, &owner, member(7)).await.body["_id"]
        .as_str()
        .unwrap()
        .to_string();
    let path = format!("/api/membership/members/{id}");
    let r = call(&app, "PATCH", &path, Some(bad), Some(&owner)).await;
    assert_eq!(
        (r.status, r.code()),
        (400, "validation_failed"),
        "{}",
        r.text
    );
    let fields: Vec<&str> = r.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["pesel", "kodpocztowy"]);
}

/// SPEC §4: `krakow` finds Kraków and `lodz` finds Łódź; a register written before this (search
/// text with diacritics) is made anew at the next start.
async fn search_ignores_case_and_polish_diacritics(backend: Backend) {
    let app = app!(backend);
    let (owner, _) = staff(&app).await;
    for (n, (nazwisko, miejscowosc)) in [
        ("Żółkiewski", "Kraków"),
        ("Dąbrowska", "Łódź"),
        ("Nowak", "Gdańsk"),
    ]
    .into_iter()
    .enumerate()
    {
        let r = create(
            &app,
            &owner,
            merge(
                member(n as u32),
                json!({ "nazwisko": nazwisko, "miejscowosc": miejscowosc }),
            ),
        )
        .await;
        assert_eq!(r.status, 201, "{}", r.text);
    }
    for (q, who) in [
        ("krakow", "Żółkiewski"),
        ("KRAKÓW", "Żółkiewski"),
        ("lodz", "Dąbrowska"),
        ("łódź", "Dąbrowska"),
        ("zolkiew", "Żółkiewski"),
        ("dabrow", "Dąbrowska"),
        ("gdansk", "Nowak"),
    ] {
        assert_eq!(found(&app, &owner, q).await, [who], "q={q}");
    }

    // Rows written by a version that kept diacritics in the search text: the next start
    // makes them anew.
    app.execute_sql("UPDATE members SET search = lower(miejscowosc)", &[])
        .await;
    app.execute_sql(
        "DELETE FROM secrets WHERE name = 'member_search.version'",
        &[],
    )
    .await;
    assert_eq!(found(&app, &owner, "lodz").await, Vec::<String>::new());
    let next = app.sibling(|_| {}).await;
    assert_eq!(found(&next, &owner, "lodz").await, ["Dąbrowska"]);
}

/// A search asks the index only for its query's rare trigrams (`core::search_plan`): for
/// `qkowalskiq` among forty Kowalskis, `qko` and `kiq`, which a member named Qkon Zkiq also
/// holds. The whole text is still checked on every row found: she is not a hit, on either
/// backend, in the page or in the count. (SQLite asks its index for the whole query as a
/// phrase when the search is sorted by surname, `store/sqlite/places.rs`; the same holds.)
async fn a_search_asks_the_index_for_rare_trigrams_and_checks_the_whole_text(backend: Backend) {
    let app = app!(backend);
    let (owner, _) = staff(&app).await;
    let mut csv = String::from(
        "imie;nazwisko;wyksztalcenie;pesel;wojewodztwo;miejscowosc;ulica;nrdomulokalu;kodpocztowy;email;tel\n",
    );
    let mut people: Vec<(String, String)> = (0..40)
        .map(|n| ("Jan".to_string(), format!("Kowalski{n}")))
        .collect();
    people.push(("Piotr".into(), "Qkowalskiq".into()));
    people.push(("Qkon".into(), "Zkiq".into()));
    for (n, (imie, nazwisko)) in people.iter().enumerate() {
        csv.push_str(&format!(
            "{imie};{nazwisko};Średnie;{};mazowieckie;Łódź;Prosta;5;00-950;p{n}@example.com;600100200\n",
            pesel(n as u32)
        ));
    }
    let r = import_csv(&app, &owner, csv).await;
    assert_eq!(r.status, 200, "{}", r.text);

    let r = call(
        &app,
        "GET",
        "/api/membership/members?q=QKOWALSKIQ&page=1&limit=10",
        None,
        Some(&owner),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let surnames: Vec<&str> = r
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["nazwisko"].as_str().unwrap())
        .collect();
    assert_eq!(surnames, ["Qkowalskiq"]);
    assert_eq!(r.headers["x-total-count"], "1");
    // Her own trigrams find her; a common one finds all who hold it.
    assert_eq!(found(&app, &owner, "qkon").await, ["Zkiq"]);
    assert_eq!(found(&app, &owner, "alski").await.len(), 41);
}

/// The surnames of the members `q` finds.
async fn found(app: &TestApp, token: &str, q: &str) -> Vec<String> {
    listed(app, token, &format!("q={}", urlencode(q)), "nazwisko").await
}

fn urlencode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// SPEC §4: Dąbrowski before Dudek, Łukasz after Lucyna, on both backends, in lists either way
/// and in the CSV export; a register from before gets its sort keys at the next start.
async fn lists_and_exports_sort_in_polish_alphabetical_order(backend: Backend) {
    let app = app!(backend);
    let (owner, _) = staff(&app).await;
    let people = [
        ("Żak", "Anna"),
        ("Dudek", "Lucyna"),
        ("Łukasiewicz", "Łukasz"),
        ("Dąbrowski", "Ewa"),
        ("Zieliński", "Ćwiek"),
        ("Lis", "Celina"),
    ];
    for (n, (nazwisko, imie)) in people.into_iter().enumerate() {
        let body = merge(
            member(n as u32),
            json!({ "nazwisko": nazwisko, "imie": imie }),
        );
        assert_eq!(create(&app, &owner, body).await.status, 201);
    }
    let by_surname = [
        "Dąbrowski",
        "Dudek",
        "Lis",
        "Łukasiewicz",
        "Zieliński",
        "Żak",
    ];
    assert_eq!(
        listed(&app, &owner, "sort=nazwisko", "nazwisko").await,
        by_surname
    );
    let mut reversed = by_surname.to_vec();
    reversed.reverse();
    assert_eq!(
        listed(&app, &owner, "sort=nazwisko&order=desc", "nazwisko").await,
        reversed
    );
    assert_eq!(
        listed(&app, &owner, "sort=imie", "imie").await,
        ["Anna", "Celina", "Ćwiek", "Ewa", "Lucyna", "Łukasz"]
    );
    assert_eq!(
        listed(&app, &owner, "sort=nazwisko&page=2&limit=2", "nazwisko").await,
        ["Lis", "Łukasiewicz"]
    );
    let (_, _, csv) = export_csv(&app, &owner, "").await;
    let exported: Vec<&str> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(';').nth(2).unwrap())
        .collect();
    assert_eq!(exported, by_surname, "the export in the same order");

    // Rows from before the sort keys: the next start makes them.
    app.execute_sql(
        "UPDATE members SET imie_sort = NULL, nazwisko_sort = NULL, miejscowosc_sort = NULL, \
         wojewodztwo_sort = NULL",
        &[],
    )
    .await;
    app.execute_sql(
        "DELETE FROM secrets WHERE name = 'member_search.version'",
        &[],
    )
    .await;
    let next = app.sibling(|_| {}).await;
    assert_eq!(
        listed(&next, &owner, "sort=nazwisko", "nazwisko").await,
        by_surname
    );
}

/// One field of each member a list answers, in its order.
async fn listed(app: &TestApp, token: &str, query: &str, field: &str) -> Vec<String> {
    let path = format!("/api/membership/members?{query}");
    let r = call(app, "GET", &path, None, Some(token)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m[field].as_str().unwrap().to_string())
        .collect()
}

/// An export reads the register's ids a thousand at a time along the sort index, then the
/// members a few hundred at a time: 1 234 members (two pages of ids, more than two batches,
/// surnames repeated so that the id decides between equals, also where a page of ids ends) come
/// out once each, in the order of the list sorted by surname, in the CSV and in the workbook
/// alike.
async fn a_large_export_is_read_in_batches_and_keeps_the_order(backend: Backend) {
    use calamine::{Data, Reader, Xlsx};

    let app = app!(backend);
    let (owner, _) = staff(&app).await;
    let surnames = [
        "Żak",
        "Dudek",
        "Łukasiewicz",
        "Dąbrowski",
        "Lis",
        "Ćwik",
        "Zieliński",
    ];
    let mut csv = String::from(
        "imie;nazwisko;wyksztalcenie;pesel;wojewodztwo;miejscowosc;ulica;nrdomulokalu;kodpocztowy;email;tel\n",
    );
    let count = 1234;
    for n in 0..count {
        let surname = surnames[n as usize % surnames.len()];
        csv.push_str(&format!(
            "Anna;{surname}{};Średnie;{};mazowieckie;Warszawa;Prosta;5;00-950;a{n}@example.com;600100200\n",
            n % 13,
            pesel(n)
        ));
    }
    let r = import_csv(&app, &owner, csv).await;
    assert_eq!(r.status, 200, "{}", r.text);

    // The list's own order, page by page.
    let mut listed = Vec::new();
    for page in 1..=13 {
        let r = app
            .get(
                &format!("/api/membership/members?sort=nazwisko&page={page}&limit=100"),
                &[("x-access-token", &owner)],
            )
            .await;
        for m in r.body.as_array().unwrap() {
            listed.push(m["_id"].as_str().unwrap().to_string());
        }
    }
    assert_eq!(listed.len(), count as usize);

    let (_, _, exported) = export_csv(&app, &owner, "").await;
    let from_csv: Vec<String> = exported
        .lines()
        .skip(1)
        .map(|l| {
            l.split(';')
                .next()
                .unwrap()
                .trim_start_matches('\u{feff}')
                .to_string()
        })
        .collect();
    assert_eq!(
        from_csv, listed,
        "the CSV in the list's order, each member once"
    );

    let book = app
        .client
        .get(app.url("/api/membership/members/export.xlsx"))
        .header("x-access-token", &owner)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let mut xlsx: Xlsx<_> = Xlsx::new(std::io::Cursor::new(book.to_vec())).unwrap();
    let sheet = xlsx.worksheet_range("Członkowie").unwrap();
    let from_xlsx: Vec<String> = sheet
        .rows()
        .skip(1)
        .map(|row| match &row[11] {
            Data::String(id) => id.clone(),
            other => panic!("an id that is not text: {other:?}"),
        })
        .collect();
    assert_eq!(from_xlsx, listed, "the workbook in the list's order");
}

/// The ids of a page of members, in order.
fn ids_of(r: &Resp) -> Vec<String> {
    r.body
        .as_array()
        .unwrap_or_else(|| panic!("a list: {}", r.text))
        .iter()
        .map(|m| m["_id"].as_str().unwrap().to_string())
        .collect()
}

/// A search for `q` sorted by surname, read page by page in both directions, must be the
/// whole surname-sorted list (which `q` matches in full), with the list's length as its total.
async fn search_pages_match_the_list(app: &TestApp, token: &str, q: &str) -> usize {
    for order in ["asc", "desc"] {
        let list = call(
            app,
            "GET",
            &format!("/api/membership/members?sort=nazwisko&order={order}&limit=500"),
            None,
            Some(token),
        )
        .await;
        let expected = ids_of(&list);
        let mut found = Vec::new();
        for page in 1..=expected.len() / 20 + 2 {
            let r = call(
                app,
                "GET",
                &format!(
                    "/api/membership/members?q={q}&sort=nazwisko&order={order}&page={page}&limit=20"
                ),
                None,
                Some(token),
            )
            .await;
            assert_eq!(r.status, 200, "{}", r.text);
            assert_eq!(
                r.headers["x-total-count"].to_str().unwrap(),
                expected.len().to_string(),
                "page {page} {order}"
            );
            found.extend(ids_of(&r));
        }
        assert_eq!(found, expected, "{order}");
    }
    let list = call(
        app,
        "GET",
        "/api/membership/members?limit=500",
        None,
        Some(token),
    )
    .await;
    ids_of(&list).len()
}

/// SQLite answers a search sorted by surname from its trigram index in the order of members'
/// places (store/sqlite/places.rs): a place in the middle of its neighbours' gap, and a
/// neighbourhood spread out again when a gap is used up. Seventy members added one after
/// another at the same spot (each surname after the last, all before Żak) use up the gaps
/// there; renames move members, deletes leave holes, and another organization's members match
/// the same search. Through all of it the search's pages are the surname list's, in both
/// directions, with exact totals; on PostgreSQL the same holds by its own path.
async fn a_search_by_surname_keeps_the_list_order_through_crowded_inserts(backend: Backend) {
    let app = app!(backend);
    let (owner, _) = staff(&app).await;
    let foreign = token(&app.foreign_admin("stranger").await);
    let named = |n: u32, surname: String| merge(member(n), json!({ "nazwisko": surname }));
    for (n, surname) in [(0, "Adamska"), (1, "Żak")] {
        assert_eq!(
            create(&app, &owner, named(n, surname.into())).await.status,
            201
        );
    }
    let mut ids = Vec::new();
    for n in 2..72u32 {
        let r = create(&app, &owner, named(n, format!("Kowalska{n:03}"))).await;
        assert_eq!(r.status, 201, "{}", r.text);
        ids.push(r.body["_id"].as_str().unwrap().to_string());
    }
    for n in 100..103u32 {
        let r = create(&app, &foreign, named(n, format!("Kowalska{n:03}"))).await;
        assert_eq!(r.status, 201, "{}", r.text);
    }
    // Every member's e-mail is at example.com: the search matches the whole register.
    assert_eq!(
        search_pages_match_the_list(&app, &owner, "example").await,
        72
    );
    assert_eq!(
        search_pages_match_the_list(&app, &foreign, "example").await,
        3
    );

    // Renames to either end and into the crowd; deletes.
    for (id, surname) in [
        (&ids[10], "Aaronowicz"),
        (&ids[20], "Żywiec"),
        (&ids[60], "Kowalska0035"),
    ] {
        let r = call(
            &app,
            "PATCH",
            &format!("/api/membership/members/{id}"),
            Some(json!({ "nazwisko": surname })),
            Some(&owner),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
    for id in [&ids[0], &ids[35], &ids[69]] {
        let r = call(
            &app,
            "DELETE",
            &format!("/api/membership/members/{id}"),
            None,
            Some(&owner),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
    // Thirty more crowd into one spot in the middle.
    for n in 200..230u32 {
        let r = create(&app, &owner, named(n, format!("Kowalska0035{n}"))).await;
        assert_eq!(r.status, 201, "{}", r.text);
    }
    assert_eq!(
        search_pages_match_the_list(&app, &owner, "example").await,
        99
    );
    assert_eq!(
        search_pages_match_the_list(&app, &foreign, "example").await,
        3
    );
    // A narrower search: only the Kowalskas of this organization, in order.
    let r = call(
        &app,
        "GET",
        "/api/membership/members?q=kowalska0035&sort=nazwisko&limit=100",
        None,
        Some(&owner),
    )
    .await;
    let surnames: Vec<&str> = r
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["nazwisko"].as_str().unwrap())
        .collect();
    let mut sorted = surnames.clone();
    sorted.sort();
    assert_eq!(surnames, sorted);
    // Kowalska0035 (renamed) and the thirty after it; not Kowalska035.
    assert_eq!(surnames.len(), 31, "{surnames:?}");
    assert_eq!(r.headers["x-total-count"], "31");

    // An import large enough to be built in bulk (SQLite numbers the organization afresh,
    // moving the members already there): a hundred of its ten thousand fall among the crowd.
    let mut csv = String::from(
        "imie;nazwisko;wyksztalcenie;pesel;wojewodztwo;miejscowosc;ulica;nrdomulokalu;kodpocztowy;email;tel\n",
    );
    for n in 1_000..11_000u32 {
        let surname = if n % 100 == 0 {
            format!("Kowalska0035i{n}")
        } else {
            format!("Import{n}")
        };
        csv.push_str(&format!(
            "Ewa;{surname};Wyższe;{};mazowieckie;Warszawa;Długa;1;80-001;e{n}@example.com;768 895 832\n",
            pesel(n)
        ));
    }
    let r = import_csv(&app, &owner, csv).await;
    assert_eq!(
        r.body,
        json!({ "imported": 10_000 }),
        "{}",
        &r.text[..r.text.len().min(300)]
    );
    pages_match_the_filtered_search(&app, &owner).await;
    assert_eq!(
        search_pages_match_the_list(&app, &foreign, "example").await,
        3
    );
    if backend == Backend::Postgres {
        // The import wrote PostgreSQL's narrow search table in surname order, which is what
        // makes its searches fast (migration 0021); the file's order is not (Import10000
        // sorts between Import1000 and Import1001).
        let checked = app
            .query_text(
                "SELECT COUNT(*) || ' ' || COUNT(*) FILTER (WHERE (before_sort, before_id) > \
                 (nazwisko_sort, id)) FROM (SELECT s.nazwisko_sort, s.id, \
                 lag(s.nazwisko_sort) OVER w AS before_sort, lag(s.id) OVER w AS before_id \
                 FROM member_search s JOIN members m ON m.id = s.id \
                 WHERE m.nazwisko LIKE 'Import%' WINDOW w AS (ORDER BY s.ctid)) stored",
                &[],
            )
            .await;
        assert_eq!(
            checked.as_deref(),
            Some("9900 0"),
            "rows, rows out of order"
        );
    }

    if backend == Backend::Sqlite {
        // Migration 0023 makes the members table again. Run once more on this register, it
        // keeps every member with its place in the trigram index, and the count; a PESEL stays
        // unique in its organization.
        let before = call(
            &app,
            "GET",
            "/api/membership/members?limit=1",
            None,
            Some(&owner),
        )
        .await;
        app.execute_sql("DELETE FROM _sqlx_migrations WHERE version = 23", &[])
            .await;
        let again = app.sibling(|_| {}).await;
        assert_eq!(
            again
                .query_text(
                    "SELECT CAST(COUNT(*) AS TEXT) FROM _sqlx_migrations WHERE version = 23",
                    &[]
                )
                .await
                .as_deref(),
            Some("1"),
            "made again"
        );
        pages_match_the_filtered_search(&again, &owner).await;
        assert_eq!(
            search_pages_match_the_list(&again, &foreign, "example").await,
            3
        );
        let first = call(
            &again,
            "GET",
            "/api/membership/members?limit=1",
            None,
            Some(&owner),
        )
        .await;
        assert_eq!(
            first.headers["x-total-count"],
            before.headers["x-total-count"]
        );
        assert_eq!(first.body, before.body);
        // A list shows PESELs masked; the member's own page shows it whole.
        let path = format!(
            "/api/membership/members/{}",
            first.body[0]["_id"].as_str().unwrap()
        );
        let whole = call(&again, "GET", &path, None, Some(&owner)).await;
        let twin = create(
            &again,
            &owner,
            merge(member(1), json!({ "pesel": whole.body["pesel"] })),
        )
        .await;
        assert_eq!(
            (twin.status, twin.body["errors"][0]["message"].as_str()),
            (400, Some("pesel: is already in use"))
        );
    }

    if backend == Backend::Sqlite {
        // A register stored before places (migration 0021): no member has one, so the index
        // holds nobody. The next start places every member before it answers.
        app.execute_sql("UPDATE members SET place = NULL", &[])
            .await;
        let r = call(
            &app,
            "GET",
            "/api/membership/members?q=example",
            None,
            Some(&owner),
        )
        .await;
        assert_eq!(
            r.headers["x-total-count"], "0",
            "unplaced members are not in the index"
        );
        let next = app.sibling(|_| {}).await;
        pages_match_the_filtered_search(&next, &owner).await;
        assert_eq!(
            search_pages_match_the_list(&next, &foreign, "example").await,
            3
        );
    }
}

/// A voivodeship filter takes SQLite's other path (hits read row by row and sorted): the
/// search in place order must give the same pages and totals, on every page asked.
async fn pages_match_the_filtered_search(app: &TestApp, owner: &str) {
    for (q, hits) in [("kowalska0035", 131), ("example", 10_099)] {
        for order in ["asc", "desc"] {
            for page in [1, 2, 3, 7, hits / 20 + 1] {
                let query = format!("q={q}&sort=nazwisko&order={order}&page={page}&limit=20");
                let placed = call(
                    app,
                    "GET",
                    &format!("/api/membership/members?{query}"),
                    None,
                    Some(owner),
                )
                .await;
                let filtered = call(
                    app,
                    "GET",
                    &format!("/api/membership/members?{query}&wojewodztwo=mazowieckie"),
                    None,
                    Some(owner),
                )
                .await;
                assert_eq!(ids_of(&placed), ids_of(&filtered), "{query}");
                assert!(!ids_of(&placed).is_empty(), "{query}");
                assert_eq!(
                    placed.headers["x-total-count"].to_str().unwrap(),
                    hits.to_string(),
                    "{query}"
                );
                assert_eq!(
                    filtered.headers["x-total-count"].to_str().unwrap(),
                    hits.to_string(),
                    "{query}"
                );
            }
        }
    }
}
