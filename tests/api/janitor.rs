//! Issue 12 (14, 9): the janitor deletes what can no longer matter, and nothing that can. The
//! clock is moved by handing the janitor a later "now"; requests afterwards run at the real time.

use brama::core::janitor::Tidied;
use brama::core::now_ms;
use serde_json::json;

use crate::helpers::{Backend, TestApp, outbox_with};
use crate::{app, both_backends};

both_backends!(
    the_janitor_deletes_what_can_no_longer_matter,
    one_node_at_a_time_does_the_janitors_work,
    a_long_ended_session_goes_chain_and_all,
);

const HOUR: i64 = 3600 * 1000;
const DAY: i64 = 24 * HOUR;

async fn count(app: &TestApp, table: &str) -> i64 {
    app.query_text(&format!("SELECT CAST(COUNT(*) AS TEXT) FROM {table}"), &[])
        .await
        .expect("a count")
        .parse()
        .expect("a number")
}

async fn the_janitor_deletes_what_can_no_longer_matter(backend: Backend) {
    let app = app!(backend, |c| c.audit_retention_days = 31);
    assert_eq!(app.core.config.refresh_token_days, 30);
    // A session that was refreshed once and then ended by a logout.
    let old = app.user("old").await;
    let r = app.refresh(old["refreshToken"].as_str().unwrap()).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let old_token = r.body["refreshToken"].as_str().unwrap().to_string();
    app.logout(old["accessToken"].as_str().unwrap()).await;
    // A live session that was refreshed once: its first token is used, its second is current.
    let live = app.user("live").await;
    let used = live["refreshToken"].as_str().unwrap().to_string();
    let r = app.refresh(&used).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let current = r.body["refreshToken"].as_str().unwrap().to_string();
    // Two reset links (an hour each) and an activation link (48 hours), each with its email.
    for email in ["old@example.com", "live@example.com"] {
        let r = app
            .post("/api/auth/password/forgot", json!({ "email": email }))
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
    let r = app
        .post(
            "/company/signup",
            json!({ "email": "firma@example.com", "phone": "+48123456789", "state": 1 }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    outbox_with(&app, 3).await;
    let t = now_ms();
    // The activation email counts as sent now: sent rows go a day later, live link or not.
    app.execute_sql(
        &format!("UPDATE outbox SET sent_at = {t} WHERE recipient = $1"),
        &["firma@example.com"],
    )
    .await;
    assert_eq!(count(&app, "sessions").await, 2);
    assert_eq!(count(&app, "refresh_tokens").await, 4);
    assert_eq!(count(&app, "password_resets").await, 2);
    assert_eq!(count(&app, "activation_tokens").await, 1);
    let audit_events = count(&app, "audit_events").await;
    assert!(audit_events > 0);

    // Just past the reset links' hour: they and their emails go, nothing else.
    let tidied = app.core.tidy(t + HOUR + 60_000).await.expect("tidy");
    assert_eq!(
        tidied,
        Tidied {
            reset_links: 2,
            outbox: 2,
            ..Tidied::default()
        }
    );
    assert_eq!(count(&app, "password_resets").await, 0);
    let left = app.core.outbox().await.expect("outbox");
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].recipient, "firma@example.com");
    assert!(left[0].expires_at.unwrap() > t + 47 * HOUR);

    // A day after it was sent, the activation email goes; its link still works for a day.
    let tidied = app.core.tidy(t + DAY + HOUR).await.expect("tidy");
    assert_eq!(
        tidied,
        Tidied {
            outbox: 1,
            ..Tidied::default()
        }
    );
    assert_eq!(count(&app, "activation_tokens").await, 1);

    // 32 days on: the ended session is more than `refresh_token_days` past its end, with its
    // tokens; the live one (30 days from its login) stays whole, used token included. The
    // activation link has expired, and every audit event is older than 31 days.
    let tidied = app.core.tidy(t + 32 * DAY).await.expect("tidy");
    assert_eq!(
        tidied,
        Tidied {
            refresh_tokens: 2,
            sessions: 1,
            activation_links: 1,
            audit_events: audit_events as u64,
            ..Tidied::default()
        }
    );
    assert_eq!(count(&app, "sessions").await, 1);
    assert_eq!(count(&app, "refresh_tokens").await, 2);
    assert_eq!(count(&app, "activation_tokens").await, 0);
    assert_eq!(count(&app, "audit_events").await, 0);
    // A second pass finds nothing left.
    assert_eq!(
        app.core.tidy(t + 32 * DAY).await.expect("tidy"),
        Tidied::default()
    );

    // At the real time again: the live session still refreshes...
    let r = app.refresh(&current).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let newest = r.body["refreshToken"].as_str().unwrap().to_string();
    // ...its used token is still recognised as reuse, and revokes the session...
    let r = app.refresh(&used).await;
    assert_eq!(
        (r.status, r.code()),
        (401, "refresh_token_reused"),
        "{}",
        r.text
    );
    let r = app.refresh(&newest).await;
    assert_eq!(r.status, 403, "{}", r.text);
    // ...and the ended session's token is simply unknown.
    let r = app.refresh(&old_token).await;
    assert_eq!(r.status, 403, "{}", r.text);
    assert_eq!(r.message(), "This refresh token doesn't exist in database");
}

async fn one_node_at_a_time_does_the_janitors_work(backend: Backend) {
    let a = app!(backend);
    let b = a.sibling(|_| {}).await;
    // Well past any lease the nodes' own janitors took at start-up.
    let t = now_ms() + DAY;
    let minute = 60_000;
    assert!(a.core.janitor_pass(t).await.expect("pass").is_some());
    // A holds the lease (15 minutes, renewed by each of its passes).
    assert!(
        b.core
            .janitor_pass(t + minute)
            .await
            .expect("pass")
            .is_none()
    );
    assert!(
        a.core
            .janitor_pass(t + 10 * minute)
            .await
            .expect("pass")
            .is_some()
    );
    assert!(
        b.core
            .janitor_pass(t + 24 * minute)
            .await
            .expect("pass")
            .is_none()
    );
    // A stopped renewing (as a node that died would): once the lease has run out, B takes over.
    assert!(
        b.core
            .janitor_pass(t + 26 * minute)
            .await
            .expect("pass")
            .is_some()
    );
    assert!(
        a.core
            .janitor_pass(t + 27 * minute)
            .await
            .expect("pass")
            .is_none()
    );
    // Two nodes racing for a free lease: exactly one gets it.
    let later = t + DAY;
    let (x, y) = tokio::join!(a.core.janitor_pass(later), b.core.janitor_pass(later));
    let won = [x.expect("pass"), y.expect("pass")]
        .iter()
        .filter(|p| p.is_some())
        .count();
    assert_eq!(won, 1);
}

/// A session's refresh tokens are one chain, and only its first token is indexed by the session
/// (migration 0024): the janitor follows the chain, a batch at a time, and a chain cut short by
/// a batch must still be found whole by the next. A session that rotated 250 times more than it
/// did over HTTP ended long ago; the janitor takes all 252 tokens and then the session, and
/// leaves a live session's chain alone.
async fn a_long_ended_session_goes_chain_and_all(backend: Backend) {
    let app = app!(backend);
    let old = app.user("old").await;
    let r = app.refresh(old["refreshToken"].as_str().unwrap()).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let last = r.body["refreshToken"].as_str().unwrap().to_string();
    app.logout(old["accessToken"].as_str().unwrap()).await;
    let live = app.user("live").await;
    let r = app.refresh(live["refreshToken"].as_str().unwrap()).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let current = r.body["refreshToken"].as_str().unwrap().to_string();
    let hash = brama::crypto::token_hash(&last);
    // 250 more rotations after the last one made over HTTP, as the rotation leaves them: each
    // token names its successor (`replaced_by`) and its predecessor (`replaces`).
    app.execute_sql(
        "INSERT INTO refresh_tokens (token_hash, session_id, created_at, expires_at, used_at, \
         replaced_by) SELECT 'more' || i, t.session_id, t.created_at, t.expires_at, \
         CASE WHEN i < 250 THEN t.created_at END, CASE WHEN i < 250 THEN 'more' || (i + 1) END \
         FROM refresh_tokens t, (WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n \
         WHERE i < 250) SELECT i FROM n) n WHERE t.token_hash = $1",
        &[&hash],
    )
    .await;
    app.execute_sql(
        "UPDATE refresh_tokens SET replaces = 'more' || (CAST(substr(token_hash, 5) AS INTEGER) - 1) \
         WHERE token_hash LIKE 'more%' AND token_hash <> 'more1'",
        &[],
    )
    .await;
    app.execute_sql(
        "UPDATE refresh_tokens SET replaces = $1 WHERE token_hash = 'more1'",
        &[&hash],
    )
    .await;
    app.execute_sql(
        "UPDATE refresh_tokens SET used_at = created_at, replaced_by = 'more1' WHERE token_hash = $1",
        &[&hash],
    )
    .await;
    assert_eq!(count(&app, "refresh_tokens").await, 254);
    let (app, chain) = if backend == Backend::Sqlite {
        // Migration 0024 makes the table again (SQLite cannot drop a foreign key). Run once
        // more on these chains, it keeps every token as it was and the rotation's trigger.
        // A token gone from the middle of the chain (an older janitor deleted an ended
        // session's tokens in no order) leaves the rest a chain of its own.
        app.execute_sql(
            "DELETE FROM refresh_tokens WHERE token_hash = 'more100'",
            &[],
        )
        .await;
        app.execute_sql("DELETE FROM _sqlx_migrations WHERE version = 24", &[])
            .await;
        let again = app.sibling(|_| {}).await;
        assert_eq!(count(&again, "refresh_tokens").await, 253);
        (again, 251)
    } else {
        (app, 252)
    };

    let tidied = app.core.tidy(now_ms() + 32 * DAY).await.expect("tidy");
    assert_eq!(
        (tidied.refresh_tokens, tidied.sessions),
        (chain, 1),
        "{tidied:?}"
    );
    assert_eq!(count(&app, "sessions").await, 1);
    assert_eq!(count(&app, "refresh_tokens").await, 2);
    let r = app.refresh(&current).await;
    assert_eq!(r.status, 200, "{}", r.text);
    // The replaced token was marked used in the same statement: presenting it is reuse.
    let r = app.refresh(&current).await;
    assert_eq!(
        (r.status, r.code()),
        (401, "refresh_token_reused"),
        "{}",
        r.text
    );
}
