//! SPEC §9 faults, the email part: an SMTP server that refuses. Every email is stored in the
//! outbox before the answer; a delivery task retries a refused one with backoff until the
//! server takes it, and when several nodes share the database each email goes out once.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::{Backend, SmtpSink, TestApp, link_token};
use crate::{app, both_backends};

both_backends!(
    an_email_the_server_refuses_is_retried_until_it_goes_out,
    two_nodes_deliver_each_queued_email_once,
);

const PASSWORD: &str = "Zx8!quokka";

/// Settings for a node that sends through `sink`.
fn through(sink: &SmtpSink) -> impl FnOnce(&mut brama::Config) + use<> {
    let port = sink.port;
    move |c| {
        c.smtp_host = Some("127.0.0.1".into());
        c.smtp_port = Some(port);
        c.smtp_security = brama::config::SmtpSecurity::None;
        c.registrations_per_ip_per_hour = 1000;
    }
}

async fn signup(app: &TestApp, n: usize) {
    let r = app
        .request(
            "POST",
            "/company/signup",
            Some(json!({
                "email": format!("owner{n:02}@firma.pl"),
                "phone": format!("+486001002{n:02}"),
                "state": 1
            })),
            &[("accept-language", "en")],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
}

/// Polls `check` every 50 ms until it gives `Some`, for at most `limit`.
async fn eventually<T, F: std::future::Future<Output = Option<T>>>(
    limit: Duration,
    what: &str,
    mut check: impl FnMut() -> F,
) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn an_email_the_server_refuses_is_retried_until_it_goes_out(backend: Backend) {
    let sink = SmtpSink::start().await;
    sink.refuse(true);
    let app = app!(backend, through(&sink));
    // The answer does not wait for SMTP, and the email is already stored when it comes.
    signup(&app, 1).await;
    let outbox = app.core.outbox().await.unwrap();
    assert_eq!(outbox.len(), 1, "queued before the answer");
    assert_eq!(outbox[0].recipient, "owner01@firma.pl");

    // The first attempt at once, the first retry 2 s later: both refused, the email kept.
    let email = eventually(Duration::from_secs(20), "two refused attempts", || async {
        let outbox = app.core.outbox().await.unwrap();
        (sink.refused() >= 2 && outbox[0].attempts >= 2).then(|| outbox[0].clone())
    })
    .await;
    assert_eq!(email.state(), "retrying");
    assert!(
        email.last_error.as_deref().unwrap_or("").contains("421"),
        "{:?}",
        email.last_error
    );
    assert!(email.next_attempt_at.unwrap() > email.created_at);
    assert!(email.body.contains("/activate#token="), "the link is kept");
    assert!(sink.received().is_empty());
    let metrics = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for outcome in ["queued", "retried"] {
        assert!(
            metrics.contains(&format!("brama_emails_total{{outcome=\"{outcome}\"}}")),
            "{outcome} in {metrics}"
        );
    }

    // The server comes back: the next retry (4 s after the second) delivers it.
    sink.refuse(false);
    let mail = eventually(
        Duration::from_secs(30),
        "delivery after recovery",
        || async { sink.received().pop() },
    )
    .await;
    assert!(mail.contains("To: owner01@firma.pl"), "{mail}");
    let sent = eventually(Duration::from_secs(10), "marked sent", || async {
        let outbox = app.core.outbox().await.unwrap();
        (outbox[0].state() == "sent").then(|| outbox[0].clone())
    })
    .await;
    assert!(sent.attempts >= 2, "{sent:?}");
    assert_eq!(sent.body, "", "a sent email's live link is not kept");
    assert_eq!(sent.last_error, None);
    assert_eq!(sink.received().len(), 1, "sent once");

    // Its link still works: the retries did not outlive it.
    let token = link_token(&app, &mail, "/activate");
    let r = app
        .post(
            "/company/activate",
            json!({ "token": token, "password": PASSWORD, "name": "Jan", "surname": "Nowak" }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
}

async fn two_nodes_deliver_each_queued_email_once(backend: Backend) {
    let sink = SmtpSink::start().await;
    sink.refuse(true);
    let first = app!(backend, through(&sink));
    let second = first.sibling(through(&sink)).await;
    // Twelve emails wait while the server refuses, queued on both nodes.
    for n in 0..12 {
        signup(if n % 2 == 0 { &first } else { &second }, n).await;
    }
    eventually(Duration::from_secs(20), "every email tried", || async {
        let outbox = first.core.outbox().await.unwrap();
        outbox.iter().all(|e| e.attempts >= 1).then_some(())
    })
    .await;
    // Both nodes' delivery tasks find them due again at about the same moments.
    sink.refuse(false);
    let outbox = eventually(Duration::from_secs(40), "all twelve sent", || async {
        let outbox = first.core.outbox().await.unwrap();
        outbox.iter().all(|e| e.state() == "sent").then_some(outbox)
    })
    .await;
    assert_eq!(outbox.len(), 12);
    let mut recipients: Vec<String> = sink
        .received()
        .iter()
        .filter_map(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("To: ").map(str::to_owned))
        })
        .collect();
    recipients.sort();
    let expected: Vec<String> = (0..12).map(|n| format!("owner{n:02}@firma.pl")).collect();
    assert_eq!(recipients, expected, "each email exactly once");
}

/// An email that cannot be delivered is given up after a day, or sooner when its link expires;
/// the waits between attempts double from 2 s up to 15 minutes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_is_given_up_after_a_day() {
    use brama::core::mail::retry_after_ms;
    assert_eq!(
        (1..=10).map(retry_after_ms).collect::<Vec<_>>(),
        [
            2_000, 4_000, 8_000, 16_000, 32_000, 64_000, 128_000, 256_000, 512_000, 900_000
        ]
    );
    assert_eq!(retry_after_ms(500), 900_000);

    // A server that closes every connection at once: every attempt fails at once. (A port
    // merely free could be taken by another test's server meanwhile, which would leave the
    // attempt waiting for a greeting that never comes.)
    let refuser = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = refuser.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((connection, _)) = refuser.accept().await {
            drop(connection);
        }
    });
    let app = app!(Backend::Sqlite, move |c| {
        c.smtp_host = Some("127.0.0.1".into());
        c.smtp_port = Some(port);
        c.smtp_security = brama::config::SmtpSecurity::None;
    });
    signup(&app, 1).await;
    let tried = eventually(Duration::from_secs(10), "a failed attempt", || async {
        let outbox = app.core.outbox().await.unwrap();
        (outbox[0].attempts >= 1).then(|| outbox[0].clone())
    })
    .await;
    assert_eq!(tried.state(), "retrying");
    // A day later (the clock moved, not waited for), the next attempt is the last.
    let day_later = tried.created_at + 24 * 3600 * 1000 + 1;
    app.core.deliver_due(day_later).await.unwrap();
    let given_up = app.core.outbox().await.unwrap().remove(0);
    assert_eq!(given_up.state(), "failed", "{given_up:?}");
    assert_eq!(given_up.next_attempt_at, None);
    assert!(given_up.failed_at.is_some());
    assert!(given_up.attempts > tried.attempts);
}
