//! Operations that write several things write all of them or none, on both backends, however
//! a client hangs up: cut at every point where the work waits, or by closing the connection.

use std::future::Future;
use std::pin::pin;
use std::task::Poll;
use std::time::Duration;

use serde_json::json;

use crate::helpers::{Backend, PASSWORD, TestApp};
use crate::{app, both_backends};

both_backends!(
    a_reset_cut_at_every_suspension_is_all_or_nothing,
    a_reset_whose_client_hangs_up_is_all_or_nothing,
);

const NEW_PASSWORD: &str = "Qv7#otter9";

/// Runs `work` but drops it at its `cut`-th suspension, as a request's future is dropped when
/// its client hangs up: `None` if it was cut, its output if it finished first.
async fn cut_at<F: Future>(work: F, cut: usize) -> Option<F::Output> {
    let mut work = pin!(work);
    let mut suspended = 0;
    std::future::poll_fn(|cx| match work.as_mut().poll(cx) {
        Poll::Ready(output) => Poll::Ready(Some(output)),
        Poll::Pending if suspended == cut => Poll::Ready(None),
        Poll::Pending => {
            suspended += 1;
            Poll::Pending
        }
    })
    .await
}

/// Everything a password reset changes.
#[derive(Debug, PartialEq, Eq)]
struct Observed {
    token_used: bool,
    password_hash: Option<String>,
    live_sessions: usize,
    resets_audited: usize,
}

impl Observed {
    /// The reset happened whole, compared with `before`.
    fn done_after(&self, before: &Observed) -> bool {
        self.token_used
            && self.password_hash != before.password_hash
            && self.live_sessions == 0
            && self.resets_audited == before.resets_audited + 1
    }
}

async fn observe(app: &TestApp, account_id: &str, token: &str) -> Observed {
    let store = app.store().await;
    let mut tx = store.begin().await.expect("transaction");
    let link = tx
        .link_token(
            brama::store::LinkKind::PasswordReset,
            &brama::crypto::token_hash(token),
        )
        .await
        .expect("read")
        .expect("the link exists");
    drop(tx);
    let account = store
        .account(account_id)
        .await
        .expect("read")
        .expect("account");
    let live = store
        .live_sessions(account_id, brama::core::now_ms())
        .await
        .expect("read");
    let audit = store
        .audit_events(
            brama::store::DEFAULT_ORGANIZATION,
            &Default::default(),
            1000,
        )
        .await
        .expect("read");
    Observed {
        token_used: link.used_at.is_some(),
        password_hash: account.password_hash,
        live_sessions: live.len(),
        resets_audited: audit
            .iter()
            .filter(|e| e.action == "password_reset")
            .count(),
    }
}

/// What the database holds once whatever a dropped request had already sent has landed: two
/// looks 50 ms apart that agree (a cut request's last statement or `COMMIT` may still be on
/// its way to PostgreSQL when the client gives up).
async fn settled(app: &TestApp, account_id: &str, token: &str) -> Observed {
    let mut last = observe(app, account_id, token).await;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now = observe(app, account_id, token).await;
        if now == last {
            return now;
        }
        last = now;
    }
    panic!("the database never settled: {last:?}");
}

/// A fresh reset link for the account, as `forgot` would store it, and two live sessions
/// (logged in with whichever password the last reset left).
async fn prepare(app: &TestApp, account_id: &str) -> String {
    for _ in 0..2 {
        let mut r = app.login("alice", PASSWORD).await;
        if r.status == 401 {
            r = app.login("alice", NEW_PASSWORD).await;
        }
        assert_eq!(r.status, 200, "{}", r.text);
    }
    let token = brama::crypto::random_token();
    let now = brama::core::now_ms();
    let store = app.store().await;
    let mut tx = store.begin().await.expect("transaction");
    tx.insert_link_token(
        brama::store::LinkKind::PasswordReset,
        account_id,
        &brama::crypto::token_hash(&token),
        now,
        now + 3_600_000,
    )
    .await
    .expect("link");
    tx.commit().await.expect("commit");
    app.secret(&token);
    token
}

async fn alice(app: &TestApp) -> String {
    let login = app.user("alice").await;
    login["id"].as_str().expect("id").to_string()
}

async fn a_reset_cut_at_every_suspension_is_all_or_nothing(backend: Backend) {
    let app = app!(backend, |c| c.max_sessions_per_account = 50);
    let account_id = alice(&app).await;
    let mut cut_inside = 0;
    for cut in 0.. {
        assert!(cut < 300, "the reset never finished within 300 suspensions");
        let token = prepare(&app, &account_id).await;
        let before = observe(&app, &account_id, &token).await;
        let reset = brama::core::accounts::PasswordReset {
            token: secrecy::SecretString::from(token.clone()),
            password: brama::domain::Password::parse(
                NEW_PASSWORD,
                brama::domain::PasswordPolicy::Seed,
            )
            .expect("password"),
        };
        let outcome = cut_at(app.core.reset_password(reset, &Default::default()), cut).await;
        let after = settled(&app, &account_id, &token).await;
        if after.done_after(&before) {
            if let Some(result) = outcome {
                result.expect("the reset succeeds");
                break;
            }
        } else {
            assert!(
                outcome.is_none(),
                "the reset finished, yet {after:?} after {before:?}"
            );
            assert_eq!(
                after, before,
                "cut at suspension {cut}: a part of the reset stayed"
            );
            cut_inside += 1;
        }
    }
    assert!(cut_inside > 0);
}

async fn a_reset_whose_client_hangs_up_is_all_or_nothing(backend: Backend) {
    let app = app!(backend, |c| c.max_sessions_per_account = 50);
    let account_id = alice(&app).await;
    // Hang up after a few ms; a slow machine moves the point, never the verdict.
    for wait_ms in [0, 1, 2, 3, 4, 6, 8, 12, 16, 24] {
        let token = prepare(&app, &account_id).await;
        let before = observe(&app, &account_id, &token).await;
        let request = app
            .client
            .post(app.url("/api/auth/password/reset"))
            .json(&json!({ "token": token, "password": NEW_PASSWORD }))
            .send();
        let _ = tokio::time::timeout(Duration::from_millis(wait_ms), request).await;
        let after = settled(&app, &account_id, &token).await;
        if !after.done_after(&before) {
            assert_eq!(
                after, before,
                "hung up after {wait_ms} ms: a part of the reset stayed"
            );
        }
    }
}
