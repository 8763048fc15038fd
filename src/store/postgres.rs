//! PostgreSQL backend: several brama nodes on one database act as one server.

use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

use super::sql::{
    account_columns, insert_account_query, insert_member_query, map_unique, member_columns, now_ms,
    sql_store,
};
use super::*;

pub struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
    const SEARCH_INDEX: SearchIndex = SearchIndex::LikeTrigram;

    /// PostgreSQL handles concurrent writers itself: one pool for everything.
    fn writer(&self) -> &PgPool {
        &self.pool
    }

    /// Connects and migrates; sqlx takes an advisory lock, so nodes starting together are safe.
    pub async fn connect(url: &str) -> StoreResult<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await?;
        sqlx::migrate!("./migrations/postgres")
            .run(&pool)
            .await
            .map_err(|e| StoreError::Database(e.into()))?;
        let store = Self { pool };
        store.seed_defaults(now_ms()).await?;
        Ok(store)
    }
}

sql_store!(PostgresStore, "postgres");
