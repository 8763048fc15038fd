//! Logging set-up and the Prometheus metrics behind `/metrics`.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the process-wide subscriber. `RUST_LOG` overrides the default filter.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_http=info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init(),
        LogFormat::Text => builder.try_init(),
    };
    // A second init (tests, embedding) keeps the first subscriber.
    let _ = result;
}

static PROMETHEUS: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// How often the recorder folds the latency samples it holds into its summaries. Without it
/// every request's sample is kept until `/metrics` is scraped, and most small organizations
/// scrape nothing: memory grew by ~8 bytes a request (57 → 64 MiB over three 8-second runs).
const UPKEEP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// The process's metrics recorder, installed on first use, with a thread that runs its upkeep.
/// Several apps in one process (the tests) share it, as they would share a process's metrics.
pub fn prometheus() -> Option<&'static PrometheusHandle> {
    PROMETHEUS
        .get_or_init(|| {
            let buckets = [
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ];
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    metrics_exporter_prometheus::Matcher::Full(
                        "http_request_duration_seconds".into(),
                    ),
                    &buckets,
                )
                .ok()?;
            match builder.install_recorder() {
                Ok(handle) => {
                    let upkeep = handle.clone();
                    let spawned = std::thread::Builder::new()
                        .name("metrics-upkeep".into())
                        .spawn(move || {
                            loop {
                                std::thread::sleep(UPKEEP_INTERVAL);
                                upkeep.run_upkeep();
                            }
                        });
                    if let Err(e) = spawned {
                        tracing::error!(error = %e, "metrics upkeep not started");
                    }
                    Some(handle)
                }
                Err(e) => {
                    tracing::error!(error = %e, "metrics recorder not installed");
                    None
                }
            }
        })
        .as_ref()
}

/// Counts every request by route template (never the raw path, which holds ids) and status,
/// and times it.
pub async fn track(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(request.method());
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".into());
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("http_requests_total", "method" => method, "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("http_request_duration_seconds", "method" => method, "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}

/// A request method as a label: the standard ones, and `other` for anything a client invents,
/// which would otherwise add series that stay for the life of the process.
fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}

pub fn count_login(ok: bool) {
    metrics::counter!("brama_logins_total", "result" => if ok { "ok" } else { "failed" })
        .increment(1);
}

pub fn count_refresh_reuse() {
    metrics::counter!("brama_refresh_reuse_detected_total").increment(1);
}

/// A request refused by a rate limit; `kind` is login, registration or reset.
pub fn count_rate_limited(kind: &'static str) {
    metrics::counter!("brama_rate_limited_total", "kind" => kind).increment(1);
}

/// An email `queued` (in the outbox), `sent` by SMTP, `retried` (an attempt failed; it stays
/// queued) or `failed` (given up).
pub fn count_email(outcome: &'static str) {
    metrics::counter!("brama_emails_total", "outcome" => outcome).increment(1);
}

pub fn set_hash_queue_depth(depth: usize) {
    metrics::gauge!("brama_hash_queue_depth").set(depth as f64);
}
