//! SQLite backend: one file, WAL, foreign keys on; the default for a single machine.

use std::str::FromStr;
use std::time::Duration;

use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

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
            .busy_timeout(Duration::from_secs(10));
        let write_pool = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.clone())
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
}

sql_store!(SqliteStore, "sqlite");
