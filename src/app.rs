//! Building and running the server: `Application::build` binds the port (0 picks a free one,
//! which is how the tests start real servers side by side) and `run_until_stopped` serves.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::config::Config;
use crate::core::{Core, StartupError};
use crate::http::{AppState, router};
use crate::store;

/// How often a node re-reads the signing keys to pick up `brama keys rotate` from any node
/// (SPEC: within 10 seconds, without a restart).
const KEY_RELOAD_INTERVAL: Duration = Duration::from_secs(5);

pub struct Application {
    listener: TcpListener,
    core: Arc<Core>,
}

/// Opens the configured database (creating the data dir for the default SQLite file) and
/// runs its migrations; `brama migrate` is this and nothing more.
///
/// The data directory and the database's files hold the signing keys, the CSRF secret,
/// password hashes and members' PESELs: a directory brama creates is 0700 and the database's
/// files are 0600, whatever the umask; an existing directory that others may read is kept as
/// it is, with a warning.
pub async fn open_store(config: &Config) -> Result<store::DynStore, StartupError> {
    open_store_with(config, false).await
}

/// [`open_store`]; `serving` bounds every PostgreSQL statement (see [`store::connect`]).
async fn open_store_with(config: &Config, serving: bool) -> Result<store::DynStore, StartupError> {
    let url = config.database_url();
    let file = url.starts_with("sqlite:").then(|| {
        let path = url
            .trim_start_matches("sqlite://")
            .trim_start_matches("sqlite:");
        std::path::PathBuf::from(path.split('?').next().unwrap_or(path))
    });
    if let Some(parent) = file
        .as_deref()
        .and_then(std::path::Path::parent)
        .filter(|p| !p.as_os_str().is_empty())
    {
        private_dir(parent)?;
    }
    let store = store::connect(&url, config.database_timeout(), serving)
        .await
        .map_err(|e| format!("invalid setting `database_url`: cannot open the database: {e}"))?;
    if let Some(file) = file {
        private_files(&file);
    }
    Ok(store)
}

#[cfg(unix)]
fn private_dir(dir: &std::path::Path) -> Result<(), StartupError> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    match std::fs::metadata(dir) {
        Ok(meta) => {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                tracing::warn!(
                    directory = %dir.display(),
                    mode = format!("{mode:o}"),
                    "the data directory may be read by other users of this machine; it holds keys, \
                     password hashes and personal data (chmod 700 it)"
                );
            }
            Ok(())
        }
        Err(_) => std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| {
                format!(
                    "invalid setting `data_dir`: cannot create {}: {e}",
                    dir.display()
                )
                .into()
            }),
    }
}

#[cfg(not(unix))]
fn private_dir(dir: &std::path::Path) -> Result<(), StartupError> {
    std::fs::create_dir_all(dir).map_err(|e| {
        format!(
            "invalid setting `data_dir`: cannot create {}: {e}",
            dir.display()
        )
        .into()
    })
}

/// The SQLite file and its WAL and shared-memory files, readable by brama's user only.
fn private_files(file: &std::path::Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for suffix in ["", "-wal", "-shm"] {
            let mut name = file.as_os_str().to_owned();
            name.push(suffix);
            let path = std::path::PathBuf::from(name);
            if path.exists()
                && let Err(e) =
                    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            {
                tracing::warn!(file = %path.display(), error = %e, "could not make a database file private");
            }
        }
    }
    #[cfg(not(unix))]
    let _ = file;
}

/// Allocations at least this large are mapped on their own and unmapped when freed.
const LARGE_ALLOCATION: usize = 1 << 20;

/// Makes the allocator give large blocks back to the system when they are freed: argon2's
/// memory (19 MiB a hashing thread, released when the thread idles), an export's buffers.
/// glibc maps such blocks on their own by default too, but raises that threshold to the size of
/// each mapped block it frees, up to 32 MiB; after the first login its argon2 blocks came from
/// the heap and stayed resident (issue 18). A fixed threshold keeps them mapped. Other
/// allocators need nothing.
pub fn return_large_allocations() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        // SAFETY: mallopt only changes the allocator's settings; it is called before the
        // threads that allocate large blocks start, and a refusal only leaves the default.
        ONCE.call_once(|| unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, LARGE_ALLOCATION as libc::c_int);
        });
    }
}

/// Gives the heap's free pages back to the system, after work that freed many small
/// allocations at once: an XLSX export holds every cell of the register until the workbook is
/// written (a million members: gigabytes), and glibc keeps freed heap memory for reuse unless
/// asked (issue 18). Takes milliseconds; call it off the async runtime.
pub fn trim_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory of the allocator's own heaps.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// How often a serving process gives its heap's free pages back (`trim_heap`).
pub const HEAP_TRIM_INTERVAL: Duration = Duration::from_secs(10);

/// Gives the heap's free pages back every `every`, on a blocking thread. glibc returns freed
/// memory only from the top of each heap, and each thread that allocates gets a heap of its
/// own: after a search burst at a million members, the SQLite readers' page caches (their
/// threads gone with the connections idle for a second) and, after a CSV export, the million
/// ids read first, stayed resident, 62 and 109 MiB where the process started at 24
/// (`malloc_trim` brought it to 17). A trim with little to give back takes well under a
/// millisecond.
pub fn start_heap_trim(every: Duration) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let _ = tokio::task::spawn_blocking(trim_heap).await;
        }
    });
}

impl Application {
    pub async fn build(config: Config) -> Result<Application, StartupError> {
        return_large_allocations();
        let addr = config.listen_addr()?;
        let store = open_store_with(&config, true).await?;
        // The recorder must exist before the first request is counted.
        crate::telemetry::prometheus();
        let core = Core::build(config, store).await?;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| format!("invalid setting `listen`: cannot bind {addr}: {e}"))?;
        Ok(Application { listener, core })
    }

    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    pub fn core(&self) -> Arc<Core> {
        Arc::clone(&self.core)
    }

    /// Serves until SIGINT/SIGTERM, then finishes the requests in flight.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let core = Arc::clone(&self.core);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(KEY_RELOAD_INTERVAL);
            tick.tick().await;
            loop {
                tick.tick().await;
                if let Err(e) = core.reload_keys().await {
                    tracing::warn!(error = %e, "reloading signing keys failed");
                }
                // And the data key file, which `brama data-key rotate` changes.
                core.reload_data_keys();
            }
        });
        crate::core::janitor::start(Arc::clone(&self.core));
        self.core.sample_search_texts_in_background();
        crate::core::mail::start(Arc::clone(&self.core));
        let core = Arc::clone(&self.core);
        let app = router(AppState { core: self.core });
        // Its first trim runs as soon as the server waits for connections: what start-up
        // freed (building the router and its API document, the migrations, a new signing
        // key's arithmetic) was about 3 MiB of the idle process's 4.5 MiB of heap, kept by
        // glibc for reuse (issue 18).
        start_heap_trim(HEAP_TRIM_INTERVAL);
        tracing::info!(address = %self.listener.local_addr()?, "brama listening");
        axum::serve(self.listener, app.connections())
            .with_graceful_shutdown(shutdown_signal())
            .await?;
        // Reads audited behind their answers are written before the node goes.
        core.flush_audit().await;
        if let Err(e) = core.release_janitor_lease().await {
            tracing::warn!(error = %e, "could not give up the janitor's lease");
        }
        crate::telemetry::flush_logs();
        Ok(())
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}
