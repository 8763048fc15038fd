//! Logging set-up and the counters `/metrics` will publish.

use std::sync::atomic::{AtomicU64, Ordering};

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

static LOGINS_OK: AtomicU64 = AtomicU64::new(0);
static LOGINS_FAILED: AtomicU64 = AtomicU64::new(0);
static REFRESH_REUSE: AtomicU64 = AtomicU64::new(0);

pub fn count_login(ok: bool) {
    if ok { &LOGINS_OK } else { &LOGINS_FAILED }.fetch_add(1, Ordering::Relaxed);
}

pub fn count_refresh_reuse() {
    REFRESH_REUSE.fetch_add(1, Ordering::Relaxed);
}

/// (logins ok, logins failed, refresh reuse detected) since start.
pub fn counters() -> (u64, u64, u64) {
    (
        LOGINS_OK.load(Ordering::Relaxed),
        LOGINS_FAILED.load(Ordering::Relaxed),
        REFRESH_REUSE.load(Ordering::Relaxed),
    )
}
