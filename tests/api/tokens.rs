//! SPEC §3: what an access token must be to be accepted, and the refresh race.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp};
use crate::{app, both_backends};

both_backends!(
    forged_and_stale_access_tokens_are_refused,
    twenty_concurrent_refreshes_one_winner,
    concurrent_refreshes_within_grace_one_winner_family_lives,
    rotated_key_keeps_old_tokens_valid,
    two_nodes_share_tokens_and_one_refresh_wins,
    rotation_records_its_successor,
    a_token_whose_session_ran_out_is_expired,
    a_disabled_account_cannot_refresh_and_its_token_is_not_spent,
    a_revoked_sessions_token_is_unknown_and_not_spent,
    a_rotation_that_fails_midway_leaves_nothing_behind,
    concurrent_refreshes_of_many_sessions_each_get_their_own,
    a_logout_racing_a_refresh_is_not_reuse,
    a_revoked_key_stops_its_tokens_at_once,
    overlapping_batches_on_two_nodes_rotate_each_token_once,
);

/// The claims the server itself would put in a token for this login.
fn claims_of(app: &TestApp, access: &str) -> Value {
    let claims = app.core.keys.verify(access).expect("server token verifies");
    serde_json::to_value(claims).unwrap()
}

/// Signs `claims` with the server's own current private key, as only the server could.
async fn sign_as_server(app: &TestApp, claims: &Value) -> String {
    let keys = app.store().await.signing_keys().await.unwrap();
    // The newest Ed25519 key: the one that signs access tokens (RSA keys sign ID tokens only).
    let key = keys
        .iter()
        .find(|k| k.alg == "EdDSA")
        .expect("an Ed25519 key");
    let der = STANDARD.decode(&key.private_key).unwrap();
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(key.kid.clone());
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_ed_der(&der)).unwrap()
}

async fn me_with(app: &TestApp, token: &str) -> (u16, String) {
    let r = app.get("/api/auth/me", &[("x-access-token", token)]).await;
    (r.status, r.message().to_string())
}

async fn forged_and_stale_access_tokens_are_refused(backend: Backend) {
    let app = app!(backend);
    let login = app.user("alice").await;
    let access = login["accessToken"].as_str().unwrap();
    let claims = claims_of(&app, access);
    let now = time::OffsetDateTime::now_utc().unix_timestamp();

    // Control: the server's own key with unchanged claims is accepted, so the refusals below
    // are about what was changed and nothing else.
    let same = sign_as_server(&app, &claims).await;
    assert_eq!(me_with(&app, &same).await.0, 200);

    let expired = sign_as_server(
        &app,
        &with(&claims, json!({ "iat": now - 1000, "exp": now - 120 })),
    )
    .await;
    assert_eq!(
        me_with(&app, &expired).await,
        (401, "Unauthorized! Access Token was expired!".into())
    );
    let r = app
        .request(
            "POST",
            "/api/auth/refreshtoken",
            None,
            &[("x-access-token", &expired)],
        )
        .await;
    assert_eq!(
        (r.status, r.message()),
        (401, "Unauthorized! Access Token was expired!")
    );

    // Within the 30 s leeway is still fine; beyond it is not.
    let just = sign_as_server(&app, &with(&claims, json!({ "exp": now - 10 }))).await;
    assert_eq!(me_with(&app, &just).await.0, 200);

    let wrong_aud = sign_as_server(&app, &with(&claims, json!({ "aud": "another-service" }))).await;
    assert_eq!(
        me_with(&app, &wrong_aud).await,
        (401, "Unauthorized!".into())
    );
    let wrong_iss = sign_as_server(
        &app,
        &with(&claims, json!({ "iss": "https://evil.example" })),
    )
    .await;
    assert_eq!(
        me_with(&app, &wrong_iss).await,
        (401, "Unauthorized!".into())
    );

    // Tampered payload: claim owner role, keep the signature.
    let parts: Vec<&str> = access.split('.').collect();
    let forged_payload = URL_SAFE_NO_PAD.encode(
        serde_json::to_vec(&with(&claims, json!({ "roles": ["owner", "admin"] }))).unwrap(),
    );
    let tampered = format!("{}.{}.{}", parts[0], forged_payload, parts[2]);
    assert_eq!(
        me_with(&app, &tampered).await,
        (401, "Unauthorized!".into())
    );
    // Flipped signature byte.
    let mut sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
    sig[0] ^= 1;
    let bad_sig = format!("{}.{}.{}", parts[0], parts[1], URL_SAFE_NO_PAD.encode(sig));
    assert_eq!(me_with(&app, &bad_sig).await.0, 401);

    // alg: none, with and without a trailing dot.
    let none_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    for token in [
        format!("{none_header}.{}.", parts[1]),
        format!("{none_header}.{}", parts[1]),
    ] {
        assert_eq!(me_with(&app, &token).await, (401, "Unauthorized!".into()));
    }

    // HS256 "signed" with the public key from the JWKS: the classic algorithm confusion.
    let jwks = app.get("/.well-known/jwks.json", &[]).await.body;
    let x = jwks["keys"][0]["x"].as_str().unwrap();
    let kid = jwks["keys"][0]["kid"].as_str().unwrap();
    for secret in [
        URL_SAFE_NO_PAD.decode(x).unwrap(),
        x.as_bytes().to_vec(),
        jwks.to_string().into_bytes(),
    ] {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(kid.to_string());
        let token =
            jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(&secret)).unwrap();
        assert_eq!(me_with(&app, &token).await, (401, "Unauthorized!".into()));
    }

    // A well-formed token from a key the server never had.
    let stranger = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]);
    let der = ed25519_dalek::pkcs8::EncodePrivateKey::to_pkcs8_der(&stranger).unwrap();
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(kid.to_string());
    let token =
        jsonwebtoken::encode(&header, &claims, &EncodingKey::from_ed_der(der.as_bytes())).unwrap();
    assert_eq!(me_with(&app, &token).await, (401, "Unauthorized!".into()));
}

/// `claims` with some fields replaced.
fn with(claims: &Value, changes: Value) -> Value {
    let mut out = claims.clone();
    for (k, v) in changes.as_object().unwrap() {
        out[k] = v.clone();
    }
    out
}

async fn twenty_concurrent_refreshes_one_winner(backend: Backend) {
    let app = app!(backend);
    let login = app.user("alice").await;
    let token = login["refreshToken"].as_str().unwrap().to_string();
    let app = std::sync::Arc::new(app);
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(20));
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (app, token, barrier) = (app.clone(), token.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                app.refresh(&token).await
            })
        })
        .collect();
    let mut winners = Vec::new();
    let mut codes = Vec::new();
    for t in tasks {
        let r = t.await.unwrap();
        if r.status == 200 {
            winners.push(r.body["refreshToken"].as_str().unwrap().to_string());
        } else {
            codes.push((r.status, r.code().to_string()));
        }
    }
    assert_eq!(
        winners.len(),
        1,
        "exactly one refresh wins; others: {codes:?}"
    );
    // Every loser presented a used token: reuse, which ends the family, winner included.
    assert!(
        codes
            .iter()
            .all(|(s, c)| *s == 401 && c == "refresh_token_reused"),
        "{codes:?}"
    );
    assert_eq!(app.refresh(&winners[0]).await.status, 403);
}

async fn concurrent_refreshes_within_grace_one_winner_family_lives(backend: Backend) {
    let app = app!(backend, |c| c.refresh_reuse_grace = 60);
    let login = app.user("alice").await;
    let token = login["refreshToken"].as_str().unwrap().to_string();
    let app = std::sync::Arc::new(app);
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (app, token) = (app.clone(), token.clone());
            tokio::spawn(async move { app.refresh(&token).await })
        })
        .collect();
    let mut winners = Vec::new();
    for t in tasks {
        let r = t.await.unwrap();
        match r.status {
            200 => winners.push(r.body["refreshToken"].as_str().unwrap().to_string()),
            401 => assert_eq!(r.code(), "refresh_token_rotated"),
            other => panic!("unexpected {other}: {}", r.text),
        }
    }
    assert_eq!(winners.len(), 1);
    assert_eq!(app.refresh(&winners[0]).await.status, 200);
}

async fn rotated_key_keeps_old_tokens_valid(backend: Backend) {
    let app = app!(backend);
    let old = app.user("alice").await;
    let old_access = old["accessToken"].as_str().unwrap();
    let rsa_before = app.published_kids_of("RS256").await;
    assert_eq!(rsa_before.len(), 1, "an RSA key from the start");
    let rotated = app.core.rotate_signing_key().await.unwrap();
    app.core.reload_keys().await.unwrap();
    let fresh = app.login("alice", crate::helpers::PASSWORD).await.body;
    let header = jsonwebtoken::decode_header(fresh["accessToken"].as_str().unwrap()).unwrap();
    assert_eq!(header.kid.as_deref(), Some(rotated.eddsa.as_str()));
    // The old key still verifies what it signed, and both are published; the RSA key of ID
    // tokens rotated with it, the old one still published too.
    assert_eq!(me_with(&app, old_access).await.0, 200);
    assert_eq!(app.published_kids().await.len(), 2);
    let rsa_after = app.published_kids_of("RS256").await;
    assert_eq!(
        rsa_after,
        vec![rotated.rs256.clone(), rsa_before[0].clone()]
    );
}

async fn two_nodes_share_tokens_and_one_refresh_wins(backend: Backend) {
    let a = app!(backend);
    let b = std::sync::Arc::new(a.sibling(|_| {}).await);
    let a = std::sync::Arc::new(a);
    let login = a.user("alice").await;
    // A token signed by node A is accepted by node B: the keys live in the database.
    let r = b
        .get(
            "/api/auth/me",
            &[("x-access-token", login["accessToken"].as_str().unwrap())],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let token = login["refreshToken"].as_str().unwrap().to_string();
    let tasks: Vec<_> = (0..20)
        .map(|n| {
            let node = if n % 2 == 0 { a.clone() } else { b.clone() };
            let token = token.clone();
            tokio::spawn(async move { node.refresh(&token).await.status })
        })
        .collect();
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 401),
        "{statuses:?}"
    );
    // Revocation on one node is seen by the other.
    let fresh = b.login("alice", crate::helpers::PASSWORD).await.body;
    let access = fresh["accessToken"].as_str().unwrap();
    assert_eq!(
        a.request(
            "POST",
            "/api/auth/logout",
            None,
            &[("x-access-token", access)]
        )
        .await
        .status,
        200
    );
    assert_eq!(
        b.refresh(fresh["refreshToken"].as_str().unwrap())
            .await
            .status,
        403
    );
}

async fn rotation_records_its_successor(backend: Backend) {
    let app = app!(backend);
    let first = app.user("alice").await["refreshToken"]
        .as_str()
        .unwrap()
        .to_string();
    let first_hash = brama::crypto::token_hash(&first);
    app.execute_sql(
        "UPDATE sessions SET last_used_at = 1 WHERE id IN \
         (SELECT session_id FROM refresh_tokens WHERE token_hash = $1)",
        &[&first_hash],
    )
    .await;
    let r = app.refresh(&first).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let second = r.body["refreshToken"].as_str().unwrap();
    let second_hash = brama::crypto::token_hash(second);
    assert_eq!(
        app.query_text(
            "SELECT replaced_by FROM refresh_tokens WHERE token_hash = $1",
            &[&first_hash]
        )
        .await,
        Some(second_hash.clone())
    );
    assert_eq!(
        app.query_text(
            "SELECT replaces FROM refresh_tokens WHERE token_hash = $1",
            &[&second_hash]
        )
        .await,
        Some(first_hash.clone())
    );
    // The successor is stored unused, in the same session, and the session was touched.
    assert!(
        app.query_text(
            "SELECT t.session_id FROM refresh_tokens t JOIN refresh_tokens p \
             ON p.session_id = t.session_id WHERE t.token_hash = $1 AND p.token_hash = $2 \
             AND t.used_at IS NULL AND t.replaced_by IS NULL",
            &[&second_hash, &first_hash]
        )
        .await
        .is_some(),
        "the successor is live in the same session"
    );
    let sessions = app
        .get(
            "/api/auth/sessions",
            &[("x-access-token", r.body["accessToken"].as_str().unwrap())],
        )
        .await;
    assert_eq!(sessions.status, 200, "{}", sessions.text);
    let used = sessions.body[0]["lastUsedAt"].as_str().unwrap();
    assert!(
        !used.starts_with("1970"),
        "the rotation touched the session: {used}"
    );
}

async fn a_token_whose_session_ran_out_is_expired(backend: Backend) {
    let app = app!(backend);
    let login = app.user("alice").await;
    let token = login["refreshToken"].as_str().unwrap();
    // As 30 days do: the token and its session end together.
    app.execute_sql(
        "UPDATE sessions SET expires_at = 1 WHERE id IN \
         (SELECT session_id FROM refresh_tokens WHERE token_hash = $1)",
        &[&brama::crypto::token_hash(token)],
    )
    .await;
    app.expire_refresh_token(token).await;
    let r = app.refresh(token).await;
    assert_eq!(
        (r.status, r.code()),
        (403, "refresh_token_expired"),
        "{}",
        r.text
    );
}

async fn a_disabled_account_cannot_refresh_and_its_token_is_not_spent(backend: Backend) {
    let app = app!(backend);
    let login = app.user("alice").await;
    let token = login["refreshToken"].as_str().unwrap();
    let id = login["id"].as_str().unwrap();
    // Disabled behind the API's back (an operator's SQL): the sessions are still live.
    app.execute_sql(
        "UPDATE accounts SET status = 'disabled' WHERE id = $1",
        &[id],
    )
    .await;
    let r = app.refresh(token).await;
    assert_eq!(
        (r.status, r.code()),
        (403, "refresh_token_not_found"),
        "{}",
        r.text
    );
    assert_eq!(
        app.query_text(
            "SELECT replaced_by FROM refresh_tokens WHERE token_hash = $1",
            &[&brama::crypto::token_hash(token)]
        )
        .await,
        None,
        "the refusal claims nothing"
    );
    app.execute_sql("UPDATE accounts SET status = 'active' WHERE id = $1", &[id])
        .await;
    let r = app.refresh(token).await;
    assert_eq!(r.status, 200, "{}", r.text);
}

async fn a_revoked_sessions_token_is_unknown_and_not_spent(backend: Backend) {
    let app = app!(backend);
    let login = app.user("alice").await;
    let token = login["refreshToken"].as_str().unwrap();
    app.logout(login["accessToken"].as_str().unwrap()).await;
    for _ in 0..2 {
        // Not reuse either time: the token was never used, its session just ended.
        let r = app.refresh(token).await;
        assert_eq!(
            (r.status, r.code()),
            (403, "refresh_token_not_found"),
            "{}",
            r.text
        );
    }
}

async fn a_rotation_that_fails_midway_leaves_nothing_behind(backend: Backend) {
    let app = app!(backend);
    let login = app.user("alice").await;
    let token = login["refreshToken"].as_str().unwrap();
    // Storing the successor fails (as a full disk would): the rotation must leave nothing.
    match backend {
        Backend::Sqlite => {
            app.execute_sql(
                "CREATE TRIGGER fail_rotation BEFORE INSERT ON refresh_tokens \
                 BEGIN SELECT RAISE(ABORT, 'injected failure'); END",
                &[],
            )
            .await
        }
        Backend::Postgres => {
            app.execute_sql(
                "CREATE FUNCTION fail_rotation() RETURNS trigger LANGUAGE plpgsql \
                 AS $$ BEGIN RAISE EXCEPTION 'injected failure'; END $$",
                &[],
            )
            .await;
            app.execute_sql(
                "CREATE TRIGGER fail_rotation BEFORE INSERT ON refresh_tokens \
                 FOR EACH ROW EXECUTE FUNCTION fail_rotation()",
                &[],
            )
            .await
        }
    }
    let r = app.refresh(token).await;
    assert_eq!((r.status, r.code()), (500, "internal"), "{}", r.text);
    let drop = match backend {
        Backend::Sqlite => "DROP TRIGGER fail_rotation",
        Backend::Postgres => "DROP TRIGGER fail_rotation ON refresh_tokens",
    };
    // On SQLite this needs the write lock, which a rotation left half-done would hold.
    app.execute_sql(drop, &[]).await;
    assert_eq!(
        app.query_text(
            "SELECT replaced_by FROM refresh_tokens WHERE token_hash = $1",
            &[&brama::crypto::token_hash(token)]
        )
        .await,
        None,
        "the claim was rolled back"
    );
    let r = app.refresh(token).await;
    assert_eq!(r.status, 200, "the token still works: {}", r.text);
    // And the writer is healthy for everything else.
    assert_eq!(app.register("bob").await.status, 200);
}

/// Rotations that arrive together share a statement on SQLite (group commit): each answer must
/// still be its own, and a bad token among them must not spoil the others.
async fn concurrent_refreshes_of_many_sessions_each_get_their_own(backend: Backend) {
    let app = std::sync::Arc::new(app!(backend, |c| c.max_sessions_per_account = 5));
    let mut chains = Vec::new();
    for n in 0..24 {
        let login = app.user(&format!("chain{n}")).await;
        chains.push((
            login["id"].as_str().unwrap().to_string(),
            login["refreshToken"].as_str().unwrap().to_string(),
        ));
    }
    let expired = app.login("chain0", crate::helpers::PASSWORD).await.body["refreshToken"]
        .as_str()
        .unwrap()
        .to_string();
    app.expire_refresh_token(&expired).await;
    for round in 0..3 {
        let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(chains.len() + 2));
        let mut tasks = Vec::new();
        for (_, token) in &chains {
            let (app, token, barrier) = (app.clone(), token.clone(), barrier.clone());
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                app.refresh(&token).await
            }));
        }
        for token in [
            "bm90LWEtdG9rZW4tYW55b25lLWlzc3VlZA".to_string(),
            expired.clone(),
        ] {
            let (app, barrier) = (app.clone(), barrier.clone());
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                app.refresh(&token).await
            }));
        }
        let mut answers = Vec::new();
        for t in tasks {
            answers.push(t.await.unwrap());
        }
        let unknown = &answers[chains.len()];
        assert_eq!(
            (unknown.status, unknown.code()),
            (403, "refresh_token_not_found")
        );
        let late = &answers[chains.len() + 1];
        assert_eq!((late.status, late.code()), (403, "refresh_token_expired"));
        for ((id, token), r) in chains.iter_mut().zip(&answers) {
            assert_eq!(r.status, 200, "round {round}: {}", r.text);
            let claims = claims_of(&app, r.body["accessToken"].as_str().unwrap());
            assert_eq!(claims["sub"].as_str(), Some(id.as_str()), "round {round}");
            let next = r.body["refreshToken"].as_str().unwrap();
            assert_ne!(next, token.as_str());
            *token = next.to_string();
        }
    }
}

/// Two nodes, each sent the same sixteen tokens at once (group commit, on both backends; with
/// many tokens stored, so that PostgreSQL looks each one up by its key): each token is rotated
/// once and its other presentation is a reuse, and no batch fails. Which order the tokens of
/// a batch come in is up to the scheduler, so this checks the outcome, not that PostgreSQL's
/// batches lock their tokens in one order (they do by construction, `locked` in
/// `postgres::rotate_batch`; removing it did not make this test fail in three runs).
async fn overlapping_batches_on_two_nodes_rotate_each_token_once(backend: Backend) {
    use std::sync::Arc;
    let a = app!(backend);
    let b = Arc::new(a.sibling(|_| {}).await);
    let a = Arc::new(a);
    if matches!(backend, Backend::Postgres) {
        a.user("filler").await;
        a.execute_sql(
            "INSERT INTO refresh_tokens (token_hash, session_id, created_at, expires_at, used_at) \
             SELECT 'filler-' || n, (SELECT session_id FROM refresh_tokens LIMIT 1), 0, 1, 1 \
             FROM generate_series(1, 50000) n",
            &[],
        )
        .await;
        a.execute_sql("ANALYZE refresh_tokens", &[]).await;
    }
    for round in 0..3 {
        let mut tokens = Vec::new();
        for n in 0..16 {
            let login = a.user(&format!("overlap{round}x{n}")).await;
            tokens.push(login["refreshToken"].as_str().unwrap().to_string());
        }
        let barrier = Arc::new(tokio::sync::Barrier::new(tokens.len() * 2));
        let mut tasks = Vec::new();
        for (node, order) in [(&a, false), (&b, true)] {
            let mut mine: Vec<(usize, String)> = tokens.iter().cloned().enumerate().collect();
            if order {
                mine.reverse();
            }
            for (n, token) in mine {
                let (node, barrier) = (Arc::clone(node), barrier.clone());
                tasks.push(tokio::spawn(async move {
                    barrier.wait().await;
                    let r = node.refresh(&token).await;
                    (n, r.status, r.code().to_string(), r.text)
                }));
            }
        }
        let mut answers = vec![Vec::new(); tokens.len()];
        for t in tasks {
            let (n, status, code, text) = t.await.unwrap();
            assert!(
                status == 200 || (status, code.as_str()) == (401, "refresh_token_reused"),
                "round {round}, token {n}: {status} {text}"
            );
            answers[n].push(status);
        }
        for (n, statuses) in answers.iter().enumerate() {
            assert_eq!(
                statuses.iter().filter(|s| **s == 200).count(),
                1,
                "round {round}, token {n}: {statuses:?}"
            );
        }
    }
}

/// On PostgreSQL a logout can commit between the statement's claim of a token and its update
/// of the session: the token is then used but its successor was never stored. Presenting it
/// again is a logout that won a race, not a stolen token: no reuse alarm.
async fn a_logout_racing_a_refresh_is_not_reuse(backend: Backend) {
    let app = app!(backend);
    let login = app.user("alice").await;
    let token = login["refreshToken"].as_str().unwrap();
    app.logout(login["accessToken"].as_str().unwrap()).await;
    // The state that race leaves: claimed for a successor that does not exist.
    app.execute_sql(
        "UPDATE refresh_tokens SET used_at = 1, replaced_by = 'never-stored' WHERE token_hash = $1",
        &[&brama::crypto::token_hash(token)],
    )
    .await;
    let r = app.refresh(token).await;
    assert_eq!(
        (r.status, r.code()),
        (403, "refresh_token_not_found"),
        "{}",
        r.text
    );
    let audit = app
        .query_text(
            "SELECT action FROM audit_events WHERE action = 'refresh_token_reused'",
            &[],
        )
        .await;
    assert_eq!(audit, None, "no reuse recorded");
}

/// `brama keys revoke` for a leaked key: once a node reloads its keys (within 5 s on its own),
/// a token the key signed is refused, even one this node had already verified and remembered.
async fn a_revoked_key_stops_its_tokens_at_once(backend: Backend) {
    let app = app!(backend);
    let login = app.user("alice").await;
    let access = login["accessToken"].as_str().unwrap().to_string();
    let kid = jsonwebtoken::decode_header(&access).unwrap().kid.unwrap();
    assert_eq!(
        me_with(&app, &access).await.0,
        200,
        "verified and remembered"
    );
    let replacement = brama::crypto::jwt::revoke(&app.store().await, &kid, brama::core::now_ms())
        .await
        .expect("revoked")
        .expect("the key in use is replaced first");
    app.core.reload_keys().await.unwrap();
    assert_eq!(
        me_with(&app, &access).await,
        (401, "Unauthorized!".to_string())
    );
    assert_eq!(
        app.published_kids().await,
        std::slice::from_ref(&replacement)
    );
    let fresh = app.login("alice", crate::helpers::PASSWORD).await;
    let fresh_access = fresh.body["accessToken"].as_str().unwrap();
    assert_eq!(
        jsonwebtoken::decode_header(fresh_access).unwrap().kid,
        Some(replacement.clone())
    );
    assert_eq!(me_with(&app, fresh_access).await.0, 200);
    assert!(matches!(
        brama::crypto::jwt::revoke(&app.store().await, &kid, brama::core::now_ms()).await,
        Err(brama::crypto::jwt::RevokeError::Unknown)
    ));
}

/// On SQLite a token's one successor is a rule of the data (migration 0022): a second
/// successor of a replaced token is refused even when written by hand, past every check of the
/// rotation's own statement, and a token not yet replaced takes one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_refuses_a_second_successor_of_a_token() {
    use sqlx::Connection;
    let app = app!(Backend::Sqlite);
    let first = app.user("alice").await["refreshToken"]
        .as_str()
        .unwrap()
        .to_string();
    let r = app.refresh(&first).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let second = r.body["refreshToken"].as_str().unwrap().to_string();
    let mut conn = sqlx::SqliteConnection::connect(app.database_url())
        .await
        .expect("sqlite");
    let successor_of = |replaced: String, hash: &'static str| {
        sqlx::query(
            "INSERT INTO refresh_tokens (token_hash, session_id, created_at, expires_at, replaces) \
             SELECT $1, session_id, created_at + 1, expires_at, token_hash FROM refresh_tokens \
             WHERE token_hash = $2",
        )
        .bind(hash)
        .bind(replaced)
    };
    let refused = successor_of(brama::crypto::token_hash(&first), "by-hand-1")
        .execute(&mut conn)
        .await
        .expect_err("a second successor of a replaced token");
    assert!(
        refused
            .to_string()
            .contains("a refresh token has one successor"),
        "{refused}"
    );
    let second_hash = brama::crypto::token_hash(&second);
    successor_of(second_hash.clone(), "by-hand-2")
        .execute(&mut conn)
        .await
        .expect("the first successor of a live token");
    assert_eq!(
        app.query_text(
            "SELECT replaced_by FROM refresh_tokens WHERE token_hash = $1",
            &[&second_hash]
        )
        .await
        .as_deref(),
        Some("by-hand-2")
    );
    // The refused one left nothing.
    assert_eq!(
        app.query_text(
            "SELECT token_hash FROM refresh_tokens WHERE token_hash = 'by-hand-1'",
            &[]
        )
        .await,
        None
    );
}

/// PostgreSQL plans the batch statements (a rotation's, a code redemption's) once per
/// connection, often while the tables are small or never analyzed (a fresh server, or one
/// without autovacuum), and keeps those plans as they grow. They must look every row up by its
/// key: a plan that read the whole of an index (the rotation once read all of
/// `sessions_account` for each batch) costs nothing on an empty database and slowed the
/// refresh grant to a sixth once 40 000 sessions were open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_batches_look_rows_up_by_key() {
    use sqlx::{Connection, Row};
    let app = app!(Backend::Postgres);
    let ([rotate, redeem], settings) = brama::store::PostgresStore::batch_statements();
    let mut conn = sqlx::PgConnection::connect(app.database_url())
        .await
        .expect("postgres");
    for (name, value) in settings {
        sqlx::query(&format!("SET {name} = {value}"))
            .execute(&mut conn)
            .await
            .expect("setting");
    }
    let texts = ["text[]"; 7].join(", ");
    let batches = [
        (
            format!("rotate (text, text[], text[], bigint[], bigint[], text[]) AS {rotate}"),
            "rotate ('active', '{a}', '{b}', '{1}', '{2}', '{client}')".to_string(),
            &["refresh_tokens", "sessions", "accounts"][..],
        ),
        (
            format!(
                "redeem (text[], text[], bigint[], text[], bigint[], {texts}, bigint[]) AS {redeem}"
            ),
            format!(
                "redeem ('{{c}}', '{{s}}', '{{1}}', '{{a}}', '{{2}}', {}, '{{3}}')",
                ["'{x}'"; 7].join(", ")
            ),
            &["oidc_codes", "sessions"][..],
        ),
    ];
    for (prepare, execute, tables) in batches {
        sqlx::query(&format!("PREPARE {prepare}"))
            .execute(&mut conn)
            .await
            .expect("prepared");
        let plan: Vec<String> = sqlx::query(&format!("EXPLAIN EXECUTE {execute}"))
            .fetch_all(&mut conn)
            .await
            .expect("explained")
            .iter()
            .map(|row| row.get::<String, _>(0))
            .collect();
        let plan = plan.join("\n");
        let scans: Vec<&str> = plan.lines().filter(|l| l.contains(" Scan ")).collect();
        for table in tables {
            assert!(
                scans.iter().any(|l| l.contains(&format!(" on {table} "))),
                "{table} is read somewhere:\n{plan}"
            );
        }
        for scan in &scans {
            let by_key = scan.contains("Index Scan using") && scan.contains("_pkey on ");
            let no_table = scan.contains("CTE Scan") || scan.contains("Function Scan");
            assert!(by_key || no_table, "a scan not by key: {scan}\n{plan}");
        }
    }
}
