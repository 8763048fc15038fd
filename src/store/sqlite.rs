//! SQLite backend: one file, WAL, foreign keys on; the default for a single machine.

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{FromRow, Row, SqlitePool};

use super::sql::{
    account_columns, insert_account_query, insert_member_query, map_unique, member_columns, now_ms,
    sql_store,
};
use super::*;

/// Readers share a pool; writes go through a single connection, so writers queue in memory
/// instead of sleeping in SQLite's busy handler (which capped refresh throughput and put
/// 100 ms spikes in its latency).
pub struct SqliteStore {
    pool: SqlitePool,
    write_pool: SqlitePool,
}

impl SqliteStore {
    const SEARCH_INDEX: SearchIndex = SearchIndex::Fts5;
    /// Imports of at least this many members are followed by `after_bulk_insert`.
    const BULK_INSERT: usize = 1000;

    fn writer(&self) -> &SqlitePool {
        &self.write_pool
    }

    /// Opens or creates the file, then migrates. The parent directory must exist.
    pub async fn connect(url: &str) -> StoreResult<Self> {
        // synchronous=NORMAL in WAL mode survives a killed process (the OS holds the pages);
        // only a power cut can lose the last transactions, which FULL would add an fsync for.
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10))
            // Reads map the file instead of copying pages through read(2) into each
            // connection's cache: member searches walk megabytes of the trigram index.
            .pragma("mmap_size", "268435456");
        let write_pool = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(30))
            // The writer checkpoints the WAL after its commits once it holds this many pages
            // (SQLite's default is 1000). A checkpoint copies each page changed since the last
            // once, with two fsyncs: less often, the pages refreshes keep changing are copied
            // fewer times (refresh CPU -10%). The WAL file stays near 16 MiB.
            .connect_with(options.clone().pragma("wal_autocheckpoint", "4000"))
            .await?;
        sqlx::migrate!("./migrations/sqlite")
            .run(&write_pool)
            .await
            .map_err(|e| StoreError::Database(e.into()))?;
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await?;
        let store = Self { pool, write_pool };
        store.seed_defaults(now_ms()).await?;
        Ok(store)
    }

    /// After a large import: merge the search index's segments into one, so searches read one
    /// list per trigram, and let SQLite refresh its planner statistics. Failures only cost
    /// speed, so they are logged, not returned (the import has committed).
    async fn after_bulk_insert(&self) {
        for statement in [
            "INSERT INTO members_search (members_search) VALUES ('optimize')",
            "PRAGMA optimize",
        ] {
            if let Err(e) = sqlx::query(statement).execute(&self.write_pool).await {
                tracing::warn!(error = %e, "tidying up after an import failed");
            }
        }
    }

    /// Claims a live refresh token and stores its successor in one statement: the INSERT
    /// selects the successor only from a claimable token (live session, active account), and
    /// the `refresh_tokens_rotate` trigger (migration 0008) marks the old token used and
    /// touches the session. SQLite runs each statement on sqlx's worker thread, and the hops
    /// between it and the runtime cost more than the statements: as a transaction of six
    /// statements, perf showed a third of a refresh spent switching threads. Returns the
    /// session and the token's subject, or `None` when the token was not claimable.
    pub(super) async fn claim_rotation(
        &self,
        token_hash: &str,
        next: &NewRefreshToken,
        now: i64,
    ) -> StoreResult<Option<(String, TokenSubject)>> {
        const ROTATE: &str = "INSERT INTO refresh_tokens \
             (token_hash, session_id, created_at, expires_at, replaces) \
             SELECT $3, t.session_id, $1, MIN($4, s.expires_at), t.token_hash \
             FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id \
             JOIN accounts a ON a.id = s.account_id \
             WHERE t.token_hash = $2 AND t.used_at IS NULL AND t.expires_at > $1 \
             AND s.revoked_at IS NULL AND s.expires_at > $1 AND a.status = 'active' \
             RETURNING session_id AS rotated_session, \
             (SELECT a.id FROM sessions s JOIN accounts a ON a.id = s.account_id \
              WHERE s.id = refresh_tokens.session_id) AS account_id, \
             (SELECT a.organization_id FROM sessions s JOIN accounts a ON a.id = s.account_id \
              WHERE s.id = refresh_tokens.session_id) AS organization_id, \
             (SELECT a.role FROM sessions s JOIN accounts a ON a.id = s.account_id \
              WHERE s.id = refresh_tokens.session_id) AS role";
        // fetch_all steps the statement to its end, which runs the WAL auto-checkpoint
        // (see "RETURNING" in sql.rs).
        let rows = sqlx::query(ROTATE)
            .bind(now)
            .bind(token_hash)
            .bind(&next.token_hash)
            .bind(next.expires_at)
            .fetch_all(&self.write_pool)
            .await?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        let session_id: String = row.try_get("rotated_session")?;
        Ok(Some((session_id, TokenSubject::from_row(row)?)))
    }
}

sql_store!(SqliteStore, "sqlite");
