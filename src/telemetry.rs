//! Logging set-up and the Prometheus metrics behind `/metrics`.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock, PoisonError, RwLock};
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::StatusCode;
use metrics::{Counter, Histogram};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

use crate::config::LogFormat;

mod lines;
mod log_buffer;

use log_buffer::LogBuffer;

pub use lines::{Lines, RequestScope, peer, scope, served};

/// Installs the process-wide subscriber. `RUST_LOG` overrides the default filter, which logs
/// an access line (`served`) for every request.
///
/// Lines go to standard error through [`LogBuffer`]: at the default level that is a line per
/// request, and a `write` of its own per line cost a system call per request (issue 18).
/// Colours only when standard error is a terminal, never into a file or a journal.
pub fn init(format: LogFormat) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    let (buffer, not_gathered) = log_buffer();
    let lines = Lines {
        json: matches!(format, LogFormat::Json),
        ansi: std::io::stderr().is_terminal(),
    };
    let result = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(lines.ansi)
        .with_writer(buffer)
        .event_format(lines)
        .try_init();
    // A second init (tests, embedding) keeps the first subscriber.
    if result.is_ok() {
        lines::installed(lines);
    }
    if let Some(e) = not_gathered {
        tracing::warn!(error = %e, "log lines are written one by one");
    }
}

static LOG_BUFFER: LogBuffer = LogBuffer::new();

/// The [`LogBuffer`] brama's subscriber writes to, with its writing thread started on first
/// use (the error if it could not start: lines are then written one by one).
fn log_buffer() -> (&'static LogBuffer, Option<std::io::Error>) {
    static STARTED: std::sync::Once = std::sync::Once::new();
    let mut not_started = None;
    STARTED.call_once(|| {
        let spawned = std::thread::Builder::new()
            .name("log-flush".into())
            .spawn(|| LOG_BUFFER.write_for_ever(&mut std::io::stderr()));
        if let Err(e) = spawned {
            LOG_BUFFER.write_directly();
            not_started = Some(e);
        }
    });
    (&LOG_BUFFER, not_started)
}

/// Writes the log lines that are still gathered (at shutdown), waiting at most two seconds for
/// a standard error that takes nothing.
pub fn flush_logs() {
    LOG_BUFFER.flush(std::time::Duration::from_secs(2));
}

/// One log line being written into the [`LogBuffer`].
pub struct LogLine {
    buffer: &'static LogBuffer,
    urgent: bool,
}

impl std::io::Write for LogLine {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.buffer.push(bytes, self.urgent);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Writes one info line into the [`LogBuffer`], as the subscriber would.
fn write_line(line: &[u8]) {
    LOG_BUFFER.push(line, false);
}

impl<'a> MakeWriter<'a> for &'static LogBuffer {
    type Writer = LogLine;

    fn make_writer(&'a self) -> LogLine {
        LogLine {
            buffer: self,
            urgent: true,
        }
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> LogLine {
        LogLine {
            buffer: self,
            urgent: *meta.level() <= tracing::Level::WARN,
        }
    }
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
/// and times it; each surface's layers (`http::layers::Tracked`) start one per request.
pub struct Tracking {
    series: &'static RouteSeries,
    method: &'static str,
    started: Instant,
}

impl Tracking {
    /// Starts timing `request`, which the router has matched to a route (or not).
    pub fn start(request: &Request) -> Self {
        Tracking {
            started: Instant::now(),
            method: method_label(request.method()),
            series: route_series(
                request
                    .extensions()
                    .get::<MatchedPath>()
                    .map_or("unmatched", MatchedPath::as_str),
            ),
        }
    }

    /// Counts the answer's status and records its time.
    pub fn finish(self, status: StatusCode) {
        self.series
            .record(self.method, status.as_u16(), self.started.elapsed());
    }
}

/// The series of one route, registered with the recorder on its first request: the recorder
/// hashes a key's name and labels and looks it up on every `counter!`, which with three labels
/// (and the route's text copied into them) cost more than `/healthz` itself (issue 18). Per
/// request there is now one lookup of the route's text and a short scan of the method and
/// status pairs seen so far.
struct RouteSeries {
    route: &'static str,
    /// (method, status) → `http_requests_total`.
    counters: Mutex<Vec<(&'static str, u16, Counter)>>,
    /// method → `http_request_duration_seconds`.
    durations: Mutex<Vec<(&'static str, Histogram)>>,
}

impl RouteSeries {
    fn record(&self, method: &'static str, status: u16, elapsed: std::time::Duration) {
        let mut counters = self.counters.lock().unwrap_or_else(PoisonError::into_inner);
        match counters
            .iter()
            .find(|(m, s, _)| *m == method && *s == status)
        {
            Some((_, _, counter)) => counter.increment(1),
            None => {
                let counter = metrics::counter!("http_requests_total", "method" => method,
                    "route" => self.route.to_string(), "status" => status.to_string());
                counter.increment(1);
                counters.push((method, status, counter));
            }
        }
        drop(counters);
        let mut durations = self
            .durations
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match durations.iter().find(|(m, _)| *m == method) {
            Some((_, histogram)) => histogram.record(elapsed.as_secs_f64()),
            None => {
                let histogram = metrics::histogram!("http_request_duration_seconds",
                    "method" => method, "route" => self.route.to_string());
                histogram.record(elapsed.as_secs_f64());
                durations.push((method, histogram));
            }
        }
    }
}

/// Routes are the router's templates (and `unmatched`), a set fixed at start-up, so each
/// route's series is made once and kept for the life of the process (leaked: no reference
/// count to change on every request). They are found by the template's text, hashed with
/// foldhash rather than SipHash: the lookup was 2% of `/healthz`'s instructions (issue 18).
static ROUTES: OnceLock<RwLock<HashMap<&'static str, &'static RouteSeries, RouteHasher>>> =
    OnceLock::new();

/// A fixed seed: the keys are the router's own templates, nothing a client chooses.
type RouteHasher = foldhash::fast::FixedState;

fn route_series(route: &str) -> &'static RouteSeries {
    let routes = ROUTES.get_or_init(Default::default);
    if let Some(series) = routes
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .get(route)
    {
        return series;
    }
    // The handles are bound to the recorder installed when they are made.
    prometheus();
    let mut routes = routes.write().unwrap_or_else(PoisonError::into_inner);
    if let Some(series) = routes.get(route) {
        return series;
    }
    let route: &'static str = Box::leak(Box::from(route));
    let series: &'static RouteSeries = Box::leak(Box::new(RouteSeries {
        route,
        counters: Mutex::default(),
        durations: Mutex::default(),
    }));
    routes.insert(route, series);
    series
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
