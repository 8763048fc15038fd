//! SQLite backend: one file, WAL, foreign keys on; the default for a single machine.

use std::str::FromStr;
use std::time::Duration;

use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use super::redemption::{GrantRead, RedeemRequest};
use super::rotation::RotationRequest;
use super::sql::{
    account_columns, live_sessions_sql, map_unique, member_columns, member_list_columns, now_ms,
    outbox_columns, session_columns, sql_store,
};
use super::*;

mod places;

/// Readers share a pool; writes go through a single connection, so writers queue in memory
/// instead of sleeping in SQLite's busy handler (which capped refresh throughput and put
/// 100 ms spikes in its latency).
pub struct SqliteStore {
    pool: SqlitePool,
    write_pool: SqlitePool,
    /// Refresh-token rotations, batched by `rotate_in_batches` (group commit).
    rotations: tokio::sync::mpsc::Sender<RotationRequest>,
    /// Authorization-code exchanges, batched by `redeem_in_batches` (group commit).
    redemptions: tokio::sync::mpsc::Sender<RedeemRequest>,
    /// The code exchanges' reads, batched by `read_grants`.
    grant_reads: tokio::sync::mpsc::Sender<GrantRead>,
    /// A connection that is never used, held open so that the pools' connections, which
    /// close when idle, are never the database's last (`SqliteStore::anchor`).
    _anchor: sqlx::SqliteConnection,
}

impl SqliteStore {
    const SEARCH_INDEX: SearchIndex = SearchIndex::Fts5;
    /// `$1` row ids drawn at random below the highest (`& i64::MAX`: `abs` fails on the
    /// lowest random value); ids freed by deletes give fewer rows.
    const SAMPLE_SEARCH_TEXTS: &str = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $1) \
         SELECT search FROM members WHERE rowid IN (\
           SELECT (random() & 9223372036854775807) % (SELECT MAX(rowid) FROM members) + 1 FROM n)";
    /// How long a connection (a reader, or the writer) may stay idle before it is closed (sqlx
    /// checks every such period, so it is closed one to two periods after its last use).
    const IDLE_CLOSE: Duration = Duration::from_secs(1);
    /// The writer checkpoints after a commit that leaves the WAL with this many pages.
    const WRITER_CHECKPOINT: u32 = 16_000;
    /// The WAL file is cut back to this size (SQLite's `journal_size_limit`) at the first
    /// commit after it starts again from its beginning: after a large transaction (an import)
    /// it would otherwise keep its largest size on disk for as long as the database is open,
    /// which, with the anchor connection, is as long as brama runs. The writer's own
    /// checkpoint (`WRITER_CHECKPOINT` pages of 4 KiB) keeps it under this in normal work, so
    /// only a WAL that a large transaction grew is ever cut, by the writer, off the runtime.
    const WAL_SIZE_LIMIT: i64 = 64 * 1024 * 1024;
    /// How often `checkpoint_in_background` looks whether the WAL was written.
    const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);
    /// Imports of at least this many members are followed by `AFTER_BULK_INSERT`.
    const BULK_INSERT: usize = 1000;
    /// After a large import: merge the search index's segments into one, so searches read one
    /// list per trigram, and give the planner statistics of the members table. Only that
    /// table: `PRAGMA optimize` also analyzed the one-row `accounts` of a fresh server, and with
    /// those statistics SQLite planned each rotation as a scan of every account (EXPLAIN QUERY
    /// PLAN: `SCAN a`), a cost that grows with the organization.
    const AFTER_BULK_INSERT: &[&str] = &[
        "INSERT INTO member_places (member_places) VALUES ('optimize')",
        "ANALYZE members",
        "PRAGMA cache_size = -2000",
    ];

    /// After values were rewritten in place: the WAL, which still holds the pages as they
    /// were, is copied into the file (whose freed space `secure_delete` zeroes) and truncated.
    const AFTER_REWRITE: &[&str] = &["PRAGMA wal_checkpoint(TRUNCATE)"];

    fn writer(&self) -> &SqlitePool {
        &self.write_pool
    }

    /// A search sorted by surname with no other filter, read from the trigram index in the
    /// order of places (migration 0021): the page is the first hits of the organization's range
    /// of places, and the total their count in the index, so no member row is read for a hit
    /// that is not on the page. The whole of `q` is asked for as a phrase, which the trigram
    /// tokenizer matches as a substring (both sides lower-case already). `None`: another kind
    /// of list, for `list_members`.
    ///
    /// Measured on a million members (the bench's register, warm): a search with 5 670 hits
    /// took 10-16 ms before, 0.8-1.8 ms with places; one with 516 hits 0.2-0.3 ms.
    async fn search_by_surname(
        &self,
        organization_id: &str,
        filter: &MemberFilter,
    ) -> StoreResult<Option<(Vec<MemberRecord>, i64)>> {
        // Under three characters there is no trigram to look up.
        let Some(q) = filter.surname_search().filter(|q| q.chars().count() >= 3) else {
            return Ok(None);
        };
        let phrase = fts_phrase(q);
        // Within the organization's range of places (none before its first member: no hits).
        let hits = format!(
            "FROM member_places WHERE member_places MATCH $1 AND {}",
            places::in_range_sql("rowid", "$2")
        );
        let direction = if filter.descending { "DESC" } else { "ASC" };
        // One statement, so the count and the page are of one snapshot.
        let sql = format!(
            "SELECT {}, (SELECT COUNT(*) {hits}) AS total FROM members \
             WHERE place IN (SELECT rowid {hits} ORDER BY rowid {direction} LIMIT $3 OFFSET $4) \
             AND organization_id = $2 ORDER BY place {direction}",
            member_list_columns!()
        );
        let rows = sqlx::query_as::<_, CountedMember>(&sql)
            .bind(&phrase)
            .bind(organization_id)
            .bind(filter.limit)
            .bind(filter.offset)
            .fetch_all(&self.pool)
            .await?;
        let count_sql = format!("SELECT COUNT(*) {hits}");
        let count = || async {
            Ok(sqlx::query_scalar::<_, i64>(&count_sql)
                .bind(&phrase)
                .bind(organization_id)
                .fetch_one(&self.pool)
                .await?)
        };
        Ok(Some(page_with_total(rows, count).await?))
    }

    /// A write transaction on the single writer connection. `IMMEDIATE` takes the write lock
    /// at once, so a transaction that reads before it writes never finds, at its first write,
    /// that another process (`brama user create` beside the server) wrote in between.
    async fn begin_tx(&self) -> StoreResult<SqliteTx> {
        let pool = self.write_pool.clone();
        let tx =
            super::begin_uncut(async move { pool.begin_with("BEGIN IMMEDIATE").await }).await?;
        Ok(SqliteTx {
            tx,
            pool: self.write_pool.clone(),
            bulk_inserted: 0,
        })
    }

    /// Opens or creates the file, then migrates. The parent directory must exist.
    ///
    /// `serving`: the store answers requests, so its WAL is checkpointed beside the writer
    /// (`checkpoint_in_background`). Command-line tools leave it to the writer: beside a
    /// million-member import the checkpoints cost it 4-9% (51 s against 53-56 s).
    pub async fn connect(url: &str, serving: bool) -> StoreResult<Self> {
        // synchronous=NORMAL in WAL mode survives a killed process (the OS holds the pages);
        // only a power cut can lose the last transactions, which FULL would add an fsync for.
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10))
            // Reads map the file instead of copying pages through read(2) into each
            // connection's cache: member searches walk megabytes of the trigram index and read
            // thousands of rows at random. Up to SQLite's own limit (2 GiB): with 256 MiB, a
            // register of a million members (a 1.3 GiB file) was mostly read through read(2),
            // a quarter of a heavy search's time in the kernel copying pages; mapped whole, the
            // bench's search mix answered 15-40% more requests. The mapping is the kernel's
            // page cache, not memory of brama's own, and an idle reader gives it back.
            .pragma("mmap_size", "2147418112")
            // Deleted and overwritten content (a member erased, a PESEL encrypted in place) is
            // zeroed, not left in free pages of the file (SPEC §12).
            .pragma("secure_delete", "on")
            .pragma("journal_size_limit", Self::WAL_SIZE_LIMIT.to_string());
        let wal = wal_file(&options);
        let write_pool = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(30))
            // The writer maps the file too: after member writes at a million members it held
            // 175 MiB of it. It is closed when idle, like the readers below.
            .idle_timeout(Self::IDLE_CLOSE)
            // A write that found the disk full is rolled back by SQLite itself; sqlx's own
            // ROLLBACK then fails and sqlx still counts the transaction as open, so every later
            // BEGIN on that connection would fail. The pool pings a connection before handing
            // it out (which runs that ROLLBACK first) and then closes it instead if sqlx still
            // thinks it is in a transaction: the next write gets a fresh connection.
            .before_acquire(|conn, _| {
                Box::pin(async move { Ok(!sqlx::Connection::is_in_transaction(conn)) })
            })
            .after_connect(|conn, _| Box::pin(plans_ignore_bound_values(conn)))
            // Checkpoints run beside the writer (`checkpoint_in_background`); the writer
            // checkpoints after its own commit only once the WAL holds this many pages (SQLite's
            // default is 1000). Its checkpoint is what resets the WAL: a background one that
            // writes meanwhile leaves frames it has not copied, so the WAL is not started
            // again from its beginning. By then the background has copied nearly every page,
            // so the writer's checkpoint is short. The WAL file stays under ~64 MiB.
            .connect_with(
                options
                    .clone()
                    .pragma("wal_autocheckpoint", Self::WRITER_CHECKPOINT.to_string()),
            )
            .await?;
        sqlx::migrate!("./migrations/sqlite")
            .run(&write_pool)
            .await
            .map_err(|e| StoreError::Database(e.into()))?;
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(10))
            // sqlx pings every connection it hands out (a trip to its worker thread and back
            // before each read): a reader of a local file has no far end to lose, and a read
            // that fails reports its own error.
            .test_before_acquire(false)
            // Each reader maps the file (`mmap_size`) and keeps what it touched mapped, and
            // has its own page cache: after a search over a large register, eight readers held
            // two gigabytes of resident memory until sqlx's default ten minutes of idleness
            // closed them (issue 18). A reader idle for a second is closed now; under load
            // none is idle that long, and opening one again costs well under a millisecond.
            .idle_timeout(Self::IDLE_CLOSE)
            .after_connect(|conn, _| Box::pin(plans_ignore_bound_values(conn)))
            .connect_with(options.clone())
            .await?;
        let (rotations, queue) = tokio::sync::mpsc::channel(4096);
        tokio::spawn(rotate_in_batches(write_pool.clone(), queue));
        if serving && let Some(wal) = wal {
            tokio::spawn(checkpoint_in_background(
                pool.clone(),
                wal,
                rotations.downgrade(),
            ));
        }
        let (redemptions, queue) = tokio::sync::mpsc::channel(4096);
        tokio::spawn(redeem_in_batches(write_pool.clone(), queue));
        let (grant_reads, queue) = tokio::sync::mpsc::channel(4096);
        tokio::spawn(read_grants(write_pool.clone(), queue));
        let store = Self {
            pool,
            write_pool,
            rotations,
            redemptions,
            grant_reads,
            _anchor: Self::anchor(options).await?,
        };
        store.seed_defaults(now_ms()).await?;
        Ok(store)
    }

    /// Opens the anchor connection. When the last connection to a database closes, SQLite
    /// checkpoints the whole WAL, syncs the file and deletes the WAL, in the thread that
    /// closes it; and sqlx closes a connection that was idle (`IDLE_CLOSE`) either on its own
    /// thread or on the runtime's, whichever lets go of it last. On a server that had been
    /// started after a million-member import (a 1.2 GB WAL) and then idled for a second, the
    /// runtime's thread deleted that WAL and the file system discarded its blocks: every
    /// request waited 200-280 ms (perf: the runtime thread in `unlink`, `blkdev_issue_discard`;
    /// the SQLite `/healthz` p99 of the full bench runs, 173-267 ms). With this connection
    /// open, the pools' closes are never the last: the WAL is kept, cut to `WAL_SIZE_LIMIT`
    /// by the writer, and deleted when the process's last connection goes. It maps nothing
    /// (`mmap_size` 0) and reads nothing after opening, so it holds no memory worth the name
    /// and no read lock that would stop a checkpoint.
    async fn anchor(options: SqliteConnectOptions) -> StoreResult<sqlx::SqliteConnection> {
        use sqlx::ConnectOptions;
        Ok(options.pragma("mmap_size", "0").connect().await?)
    }

    /// Claims a claimable refresh token and stores its successor; `None` when the token was not
    /// claimable. The rotation joins the next batch of `rotate_in_batches` and finishes even if
    /// this future is dropped.
    pub(super) async fn claim_rotation(
        &self,
        token_hash: &str,
        next: &NewRefreshToken,
        now: i64,
        client_id: Option<&str>,
    ) -> StoreResult<Option<Claimed>> {
        super::rotation::claim(&self.rotations, token_hash, next, now, client_id).await
    }

    /// `Store::redeem_oidc_code`: the exchange joins the next batch of `redeem_in_batches`
    /// and finishes even if this future is dropped.
    pub(super) async fn redeem_code(
        &self,
        code_hash: &str,
        session: &NewSession,
        token: Option<&NewRefreshToken>,
    ) -> StoreResult<bool> {
        super::redemption::redeem(&self.redemptions, code_hash, session, token).await
    }
}

/// Group commit for code exchanges (`store::redemption`), as `rotate_in_batches` does for
/// rotations: an exchange writes a dozen pages (the code, the session and its indexes, the
/// token and its), and committing each alone cost an exchange three rotations of CPU. A batch
/// is one transaction of one query, so one trip to the writer's thread for all its exchanges
/// (each was a trip of its own before, and the trips cost more than the statements).
async fn redeem_in_batches(pool: SqlitePool, queue: tokio::sync::mpsc::Receiver<RedeemRequest>) {
    // One batch at a time: SQLite has one writer.
    super::rotation::in_batches(queue, 1, |batch, followers| {
        let pool = pool.clone();
        async move {
            let opened = redeem_batch(&pool, &batch).await;
            super::redemption::answer(batch, followers, opened);
        }
    })
    .await
}

/// `rows` rows of `columns` anonymous parameters, `(?, ?), (?, ?)`, for the statements of a
/// batch, bound in the order they appear. sqlx binds a `$N` by its name, which SQLite finds by
/// walking the list of the statement's names, so a batch of `$N`s cost time in the square of
/// its size (a fifth of the writer's time in a batch of code redemptions).
fn anonymous_rows(columns: usize, rows: usize) -> String {
    let row = format!("({})", vec!["?"; columns].join(", "));
    vec![row; rows].join(", ")
}

/// The code exchanges' reads (`store::redemption`), a batch of codes in one `SELECT`: one trip
/// to its thread for the batch. On the writer's connection, not a reader's: a reader that
/// begins a read after another connection's commit empties its page cache and unmaps the
/// whole file (SQLite's pager, for a mapped file in WAL mode), and under a stream of rotations
/// and redemptions that was every read, with the pages faulted in again after it. Unmapping
/// and the faults were ~9% of an EdDSA code exchange's CPU (perf). The writer keeps its pages
/// across its own commits. An exchange needs the writer for its redemption anyway, so the
/// read waiting behind a long write (an import) changes nothing for it.
async fn read_grants(pool: SqlitePool, queue: tokio::sync::mpsc::Receiver<GrantRead>) {
    let in_flight = super::redemption::GRANT_READS_IN_FLIGHT;
    super::rotation::in_batches(queue, in_flight, |batch, followers| {
        let pool = pool.clone();
        async move {
            let sql = format!(
                "{} IN ({})",
                super::sql::OIDC_CODE_GRANT,
                anonymous_rows(1, batch.len())
            );
            let mut query = sqlx::query_as::<_, super::sql::CodeGrantRow>(&sql);
            for r in &batch {
                query = query.bind(&r.code_hash);
            }
            let rows = query.fetch_all(&pool).await.map_err(StoreError::from);
            super::redemption::answer_reads(batch, followers, rows);
        }
    })
    .await
}

/// Spends the code of each request of `batch` (distinct codes) and opens its grant, in one
/// transaction of one query of three statements, each given the batch's rows as a `VALUES`
/// list: the first marks each unused code whose browser session lives
/// with its request's grant session id, the second inserts each grant session only from a
/// code that names it, the third each first refresh token only with its session. The ids of
/// the sessions opened come back. Statements can only fail for the database's own reasons (a
/// full disk, an I/O error): then nothing of the batch is kept and every code stays unused.
async fn redeem_batch(pool: &SqlitePool, batch: &[RedeemRequest]) -> StoreResult<Vec<String>> {
    let values = |columns| anonymous_rows(columns, batch.len());
    let sql = format!(
        "WITH r (code_hash, session_id, now) AS (VALUES {}) \
         UPDATE oidc_codes SET used_at = r.now, grant_session_id = r.session_id FROM r \
         WHERE oidc_codes.code_hash = r.code_hash AND oidc_codes.used_at IS NULL AND EXISTS (\
           SELECT 1 FROM sessions p WHERE p.id = oidc_codes.sso_session_id \
           AND p.revoked_at IS NULL AND p.expires_at > r.now); \
         WITH r (code_hash, session_id, now, account_id, expires_at, user_agent, ip, amr, \
           client_id, scope, parent_id) AS (VALUES {}) \
         INSERT INTO sessions (id, account_id, created_at, last_used_at, expires_at, \
         user_agent, ip, amr, client_id, scope, parent_id) \
         SELECT r.session_id, r.account_id, r.now, r.now, r.expires_at, r.user_agent, r.ip, \
         r.amr, r.client_id, r.scope, r.parent_id FROM r JOIN oidc_codes c \
         ON c.code_hash = r.code_hash AND c.grant_session_id = r.session_id RETURNING id; \
         WITH r (session_id, now, token_hash, token_expires_at) AS (VALUES {}) \
         INSERT INTO refresh_tokens (token_hash, session_id, created_at, expires_at) \
         SELECT r.token_hash, s.id, r.now, r.token_expires_at FROM r \
         JOIN sessions s ON s.id = r.session_id WHERE r.token_hash IS NOT NULL",
        values(3),
        values(11),
        values(4),
    );
    let mut query = sqlx::query_scalar::<_, String>(&sql);
    for r in batch {
        query = query
            .bind(&r.code_hash)
            .bind(&r.session.id)
            .bind(r.session.created_at);
    }
    for r in batch {
        let session = &r.session;
        query = query
            .bind(&r.code_hash)
            .bind(&session.id)
            .bind(session.created_at)
            .bind(&session.account_id)
            .bind(session.expires_at)
            .bind(&session.user_agent)
            .bind(&session.ip)
            .bind(&session.amr)
            .bind(&session.client_id)
            .bind(&session.scope)
            .bind(&session.parent_id);
    }
    for r in batch {
        let token = r.token.as_ref();
        query = query
            .bind(&r.session.id)
            .bind(r.session.created_at)
            .bind(token.map(|t| &t.token_hash))
            .bind(token.map(|t| t.expires_at));
    }
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let opened = query.fetch_all(&mut *tx).await?;
    tx.commit().await?;
    Ok(opened)
}

/// A write transaction of [`SqliteStore`].
pub struct SqliteTx {
    tx: sqlx::Transaction<'static, sqlx::Sqlite>,
    /// The writer, for the tidy-up after a large import commits.
    pool: SqlitePool,
    /// Members inserted, for `AFTER_BULK_INSERT`.
    bulk_inserted: usize,
}

impl SqliteTx {
    /// SQLite locks the whole database for a write transaction; rows need no lock of their own.
    const FOR_UPDATE: &'static str = "";

    /// An import of at least this many members, and of at least an eighth of the members
    /// already stored, builds the member indexes afresh instead of growing them row by row.
    const REBUILD_AT: usize = 10_000;

    /// Before a large import: the member indexes (those with SQL of their own; the primary key
    /// and the unique PESEL are part of the table) and the triggers that keep the trigram
    /// index are dropped, in the import's transaction, and [`Self::bulk_finish`] makes them
    /// again from the same SQL. Inserting a million rows into six random-ordered indexes took
    /// minutes; sorting them once takes seconds (issue 18). Readers of the WAL never see the
    /// indexes missing: they read the last commit until this one.
    ///
    /// The import's organization is numbered afresh here (`places::number_with`): each new
    /// member gets its place in its own INSERT, and the members already there are moved, so
    /// no row is written twice (an UPDATE of a place into a million new rows took 18 s, the
    /// rows growing in their pages). The trigram index of the organization is emptied here
    /// and filled in one statement at the end.
    ///
    /// Any import of `BULK_INSERT` rows or more first gets a page cache that holds the indexes
    /// being filled. With SQLite's default of 2 MiB, index pages left the cache between one row
    /// and the next and were written to the WAL again each time they changed; a million members
    /// took 3.5 minutes, most of it in the kernel. The memory is the importing process's (the
    /// command line's, usually) and goes back to the default after the import
    /// (`AFTER_BULK_INSERT`).
    async fn bulk_prepare(&mut self, members: &[MemberRecord]) -> StoreResult<Option<BulkRebuild>> {
        let rows = members.len();
        if rows >= SqliteStore::BULK_INSERT {
            self.grow_cache().await?;
        }
        if rows < Self::REBUILD_AT {
            return Ok(None);
        }
        let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM members")
            .fetch_one(&mut *self.tx)
            .await?;
        if (rows as i64) < stored / 8 {
            return Ok(None);
        }
        let schema: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT type, name, sql FROM sqlite_master WHERE tbl_name = 'members' \
             AND sql IS NOT NULL AND (type = 'index' OR name LIKE 'member\\_places\\_%' ESCAPE '\\')",
        )
        .fetch_all(&mut *self.tx)
        .await?;
        // Its segments are merged once, by the `optimize` after the commit, not level by level
        // as they are written. Set back in `bulk_finish` (4 is FTS5's default).
        sqlx::query("INSERT INTO member_places (member_places, rank) VALUES ('automerge', 0)")
            .execute(&mut *self.tx)
            .await?;
        for (kind, name, _) in &schema {
            let drop = if kind == "index" { "INDEX" } else { "TRIGGER" };
            // Names from sqlite_master, quoted as identifiers.
            sqlx::query(&format!("DROP {drop} \"{}\"", name.replace('"', "\"\"")))
                .execute(&mut *self.tx)
                .await?;
        }
        let (places, ranges) = self.number_with(members).await?;
        Ok(Some(BulkRebuild {
            schema: schema.into_iter().map(|(_, _, sql)| sql).collect(),
            places,
            ranges,
        }))
    }

    /// The page cache of a bulk write (512 MiB), until `AFTER_BULK_INSERT` sets it back.
    async fn grow_cache(&mut self) -> StoreResult<()> {
        sqlx::query("PRAGMA cache_size = -524288")
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    /// Members are inserted as given: a large import's order is its places'
    /// (`BulkRebuild::places`), which the trigram index is filled by.
    fn insert_order(members: &[MemberRecord]) -> Vec<usize> {
        (0..members.len()).collect()
    }

    /// The rows of an import, in `order`, 500 to a statement (25 binds a row, under SQLite's
    /// limit), each with its place when `bulk_prepare` numbered a large import.
    async fn insert_rows(
        &mut self,
        members: &[MemberRecord],
        order: &[usize],
        rebuild: &Option<BulkRebuild>,
    ) -> StoreResult<()> {
        let places = rebuild.as_ref().map(|r| r.places.as_slice());
        let columns = if places.is_some() { ", place" } else { "" };
        for chunk in order.chunks(500) {
            let mut insert = sqlx::QueryBuilder::new(format!(
                "INSERT INTO members ({}{columns}) ",
                member_columns!()
            ));
            insert.push_values(
                chunk.iter().map(|&i| (i, &members[i])),
                |mut row, (i, m)| {
                    row.push_bind(&m.id)
                        .push_bind(&m.organization_id)
                        .push_bind(&m.imie)
                        .push_bind(&m.nazwisko)
                        .push_bind(&m.wyksztalcenie)
                        .push_bind(&m.pesel)
                        .push_bind(&m.wojewodztwo)
                        .push_bind(&m.miejscowosc)
                        .push_bind(&m.ulica)
                        .push_bind(&m.nrdomulokalu)
                        .push_bind(&m.kodpocztowy)
                        .push_bind(&m.email)
                        .push_bind(&m.tel)
                        .push_bind(&m.search)
                        .push_bind(m.version)
                        .push_bind(&m.created_by)
                        .push_bind(m.created_at)
                        .push_bind(m.updated_at)
                        .push_bind(&m.pesel_index)
                        .push_bind(&m.imie_sort)
                        .push_bind(&m.nazwisko_sort)
                        .push_bind(&m.miejscowosc_sort)
                        .push_bind(&m.wojewodztwo_sort);
                    if let Some(places) = places {
                        row.push_bind(places[i]);
                    }
                },
            );
            insert
                .build()
                .execute(&mut *self.tx)
                .await
                .map_err(map_unique)?;
        }
        Ok(())
    }

    /// After the rows of an import: a large one fills its organizations' trigram index in one
    /// statement, then makes the indexes and triggers as they were (a PESEL index that finds
    /// two equal blind indexes fails as the row's insert would have); a smaller one places its
    /// members among those there.
    async fn bulk_finish(
        &mut self,
        rebuild: Option<BulkRebuild>,
        members: &[MemberRecord],
    ) -> StoreResult<()> {
        let Some(rebuild) = rebuild else {
            let mut organizations: Vec<&str> =
                members.iter().map(|m| m.organization_id.as_str()).collect();
            organizations.sort_unstable();
            organizations.dedup();
            for organization_id in organizations {
                self.place_members(organization_id).await?;
            }
            return Ok(());
        };
        for (low, high) in &rebuild.ranges {
            // In the order of places: FTS5 writes out what it holds in memory whenever a row id
            // comes below the last one, and rows in the table's order made a segment every row
            // or two (an import took half as long again).
            sqlx::query(
                "INSERT INTO member_places (rowid, search) \
                 SELECT place, search FROM members WHERE place > $1 AND place < $2 ORDER BY place",
            )
            .bind(low)
            .bind(high)
            .execute(&mut *self.tx)
            .await?;
        }
        sqlx::query("INSERT INTO member_places (member_places, rank) VALUES ('automerge', 4)")
            .execute(&mut *self.tx)
            .await?;
        for sql in &rebuild.schema {
            sqlx::query(sql)
                .execute(&mut *self.tx)
                .await
                .map_err(map_unique)?;
        }
        Ok(())
    }

    /// What an update of a member's sort keys also sets, with `$n` its new surname key: a
    /// member whose surname key changes loses its place, and `member_updated` finds it a new one.
    fn replace_on_rename(n: usize) -> String {
        format!(", place = CASE WHEN nazwisko_sort IS ${n} THEN place ELSE NULL END")
    }

    /// After an update that may have changed a member's surname (and so cleared its place).
    async fn member_updated(&mut self, organization_id: &str) -> StoreResult<()> {
        self.place_members(organization_id).await
    }
}

/// What [`SqliteTx::bulk_prepare`] took away for an import, to be put back.
pub(crate) struct BulkRebuild {
    /// The `CREATE INDEX` and `CREATE TRIGGER` statements dropped.
    schema: Vec<String>,
    /// Each new member's place, in the order of the import.
    places: Vec<i64>,
    /// The ranges of places of the import's organizations, numbered afresh.
    ranges: Vec<(i64, i64)>,
}

/// The WAL of the database `options` open (`None`: in memory).
fn wal_file(options: &SqliteConnectOptions) -> Option<std::path::PathBuf> {
    let file = options.get_filename();
    let name = file.to_str()?;
    (!name.is_empty() && name != ":memory:")
        .then(|| std::path::PathBuf::from(format!("{name}-wal")))
}

/// SQLite's query planner stability guarantee (`SQLITE_DBCONFIG_ENABLE_QPSG`) for a pool's
/// connection: a statement is planned once, from the statistics, and never again from the values
/// bound to it.
///
/// Without it, a statement whose plan looked at a bound value (SQLite is built with STAT4, and
/// an import runs `ANALYZE members`, so an `organization_id = $n` on `members` is estimated
/// from the samples of the value bound) is marked expired whenever that parameter is bound
/// again, and sqlx binds every parameter at every execution: each run was parsed and planned
/// afresh (perf of a member search at a million members: `sqlite3Reprepare` a quarter of the
/// reader thread's time). Each statement now keeps the plan it was first prepared with, which
/// SQLite makes before any value is bound. At a million members, old and new build in turn:
/// server CPU a member list 221/204 -> 189/157 µs, a search with 515 hits 405/430 -> 323/339.
async fn plans_ignore_bound_values(conn: &mut sqlx::SqliteConnection) -> Result<(), sqlx::Error> {
    /// `SQLITE_DBCONFIG_ENABLE_QPSG` (sqlite3.h).
    const ENABLE_QPSG: std::os::raw::c_int = 1007;
    let mut handle = conn.lock_handle().await?;
    let mut enabled: std::os::raw::c_int = 0;
    // SAFETY: the handle is this connection's open database, locked for this call; the option
    // takes an int and a pointer to an int that SQLite writes the new setting to.
    let rc = unsafe {
        libsqlite3_sys::sqlite3_db_config(
            handle.as_raw_handle().as_ptr(),
            ENABLE_QPSG,
            1 as std::os::raw::c_int,
            &mut enabled as *mut std::os::raw::c_int,
        )
    };
    if rc != 0 || enabled != 1 {
        return Err(sqlx::Error::Configuration(
            format!("SQLite refused the query planner stability guarantee ({rc})").into(),
        ));
    }
    Ok(())
}

/// Copies the WAL's pages into the database file from a reader's connection, every
/// `CHECKPOINT_EVERY` while it is being written, so that the writer does not: a checkpoint
/// copies each page changed since the last, with two fsyncs, and run by the writer after its
/// commit it held up every write behind it. Refreshes on one core, in one window: 9 200–9 800/s
/// when the writer checkpointed every 4 000 pages; 10 000–10 200/s with this beside it;
/// 10 800–11 400/s with this and the writer's at 16 000 pages (`WRITER_CHECKPOINT`); with no
/// checkpoint at all (the WAL grew by 190 MB a second) 10 300–11 000/s, the core all used.
/// The p99 stayed at 31–36 ms in each but the last (9 ms). `PASSIVE` never waits for the
/// writer or for readers; it copies what it can. The look at the WAL is a `stat`, taken on the
/// runtime's thread (a few microseconds on a local file). Stops once the store is gone
/// (nothing can send it rotations any more).
async fn checkpoint_in_background(
    pool: SqlitePool,
    wal: std::path::PathBuf,
    alive: tokio::sync::mpsc::WeakSender<RotationRequest>,
) {
    let mut tick = tokio::time::interval(SqliteStore::CHECKPOINT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut copied_up_to = None;
    loop {
        tick.tick().await;
        if alive.upgrade().is_none() || pool.is_closed() {
            return;
        }
        // Written since the last look (a checkpoint writes the database file, not the WAL).
        let written = std::fs::metadata(&wal).and_then(|m| m.modified()).ok();
        if written.is_none() || written == copied_up_to {
            continue;
        }
        copied_up_to = written;
        if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .fetch_all(&pool)
            .await
        {
            // The writer's own checkpoint still bounds the WAL; a full disk is answered there.
            tracing::debug!(error = %e, "background checkpoint failed");
        }
    }
}

/// Group commit for refresh-token rotation (`store::rotation`). SQLite runs each statement on
/// sqlx's worker thread, and on a busy server the hops between it and the runtime cost more
/// than the statements: perf showed a third of a refresh spent switching threads and a tenth
/// writing WAL frames. A batch is one statement, one commit, one trip to the worker, and the
/// pages its rotations share written once.
///
/// The statement INSERTs each successor only from a claimable token (`sql::claimable`); the
/// `refresh_tokens_rotate` trigger (migration 0022) marks the old token used and touches the
/// session, in the same statement, and aborts it if that token was replaced already: a token
/// has one successor.
async fn rotate_in_batches(pool: SqlitePool, queue: tokio::sync::mpsc::Receiver<RotationRequest>) {
    // One batch at a time: SQLite has one writer.
    super::rotation::in_batches(queue, 1, |batch, followers| {
        let pool = pool.clone();
        async move {
            let rows = rotate_batch(&pool, &batch).await;
            super::rotation::answer(batch, followers, rows, claimed_from_who);
        }
    })
    .await
}

/// A row of `rotate_batch`: the replaced token's hash, and whom the new one speaks for. A
/// `RETURNING` clause sees only the inserted row, so the account and the session's `amr` come
/// from a subquery, one for the four values (`who`, a JSON array): a subquery per value looked
/// the session and the account up seven times more a rotation. An unreadable `who` (an account
/// whose role this version does not know) fails its own requester, as in
/// `rotation::claimed_columns`.
fn claimed_from_who(
    row: &sqlx::sqlite::SqliteRow,
) -> Result<(String, StoreResult<Claimed>), sqlx::Error> {
    use sqlx::Row;
    let replaced: String = row.try_get("replaces")?;
    let claimed = || -> Result<Claimed, sqlx::Error> {
        let session_id: String = row.try_get("rotated_session")?;
        let who: String = row.try_get("who")?;
        let (account_id, organization_id, role, amr): (String, String, String, String) =
            serde_json::from_str(&who).map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
        let role = crate::domain::Role::parse(&role)
            .ok_or_else(|| sqlx::Error::Decode(format!("unknown role {role:?}").into()))?;
        Ok(Claimed {
            session_id,
            account_id,
            organization_id,
            role,
            amr,
        })
    };
    Ok((replaced, claimed().map_err(StoreError::from)))
}

/// Rotates `batch` (distinct tokens) in one statement; its rows for `claimed_from_who`.
async fn rotate_batch(
    pool: &SqlitePool,
    batch: &[RotationRequest],
) -> StoreResult<Vec<sqlx::sqlite::SqliteRow>> {
    // Each row's five values, then the status of an account that may rotate.
    let sql = format!(
        "WITH r (old_hash, new_hash, now, expires_at, client_id) AS (VALUES {}) \
         INSERT INTO refresh_tokens (token_hash, session_id, created_at, expires_at, replaces) \
         SELECT r.new_hash, t.session_id, r.now, MIN(r.expires_at, s.expires_at), t.token_hash \
         FROM r JOIN refresh_tokens t ON t.token_hash = r.old_hash \
         JOIN sessions s ON s.id = t.session_id WHERE {} \
         RETURNING replaces, session_id AS rotated_session, \
         (SELECT json_array(a.id, a.organization_id, a.role, s.amr) FROM sessions s \
          JOIN accounts a ON a.id = s.account_id WHERE s.id = refresh_tokens.session_id) AS who",
        anonymous_rows(5, batch.len()),
        super::sql::claimable("t", "r.now", "?", "cs.client_id IS r.client_id"),
    );
    let mut query = sqlx::query(&sql);
    for r in batch {
        query = query
            .bind(&r.token_hash)
            .bind(&r.next_hash)
            .bind(r.now)
            .bind(r.next_expires_at)
            .bind(&r.client_id);
    }
    let query = query.bind(crate::domain::AccountStatus::MAY_LOG_IN);
    // fetch_all steps the statement to its end, which runs the WAL auto-checkpoint
    // (see "RETURNING" in sql.rs).
    Ok(query.fetch_all(pool).await?)
}

sql_store!(SqliteStore, SqliteTx, "sqlite");

#[cfg(test)]
mod tests {
    use super::SqliteStore;
    use std::path::PathBuf;

    /// A store on a fresh file in a directory of its own.
    async fn scratch(name: &str, serving: bool) -> (PathBuf, SqliteStore) {
        let dir = std::env::temp_dir().join(format!("brama-{name}-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let url = format!("sqlite://{}", dir.join("brama.db").display());
        let store = SqliteStore::connect(&url, serving).await.unwrap();
        (dir, store)
    }

    /// Closes `store` and removes its directory.
    async fn discard(dir: PathBuf, store: SqliteStore) {
        store.pool.close().await;
        store.write_pool.close().await;
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Every pool connection plans a statement once: binding a parameter again does not make
    /// SQLite prepare it again (`plans_ignore_bound_values`). With STAT4 statistics (an import
    /// runs `ANALYZE members`) each run of a statement whose plan had looked at a bound value
    /// was parsed and planned afresh.
    #[tokio::test]
    async fn statements_are_not_planned_again_for_each_value() {
        let (dir, store) = scratch("plans", false).await;
        sqlx::query("CREATE TABLE skewed (owner TEXT, n INTEGER)")
            .execute(&store.write_pool)
            .await
            .unwrap();
        sqlx::query("CREATE INDEX skewed_owner ON skewed (owner)")
            .execute(&store.write_pool)
            .await
            .unwrap();
        // One owner with most rows, a few with one each: STAT4 samples tell them apart.
        sqlx::query(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000) \
             INSERT INTO skewed SELECT CASE WHEN i % 100 = 0 THEN 'few' || i ELSE 'many' END, i FROM n",
        )
        .execute(&store.write_pool)
        .await
        .unwrap();
        sqlx::query("ANALYZE skewed")
            .execute(&store.write_pool)
            .await
            .unwrap();
        for pool in [&store.pool, &store.write_pool] {
            let mut conn = pool.acquire().await.unwrap();
            for owner in ["many", "few100", "many", "few200"] {
                let found: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM skewed WHERE owner = $1")
                    .bind(owner)
                    .fetch_one(&mut *conn)
                    .await
                    .unwrap();
                assert!(found > 0);
            }
            assert_eq!(prepared_again(&mut conn, "FROM skewed").await, Some(0));
        }
        discard(dir, store).await;
    }

    /// How many times the connection's cached statement whose text holds `holding` was
    /// prepared again (`SQLITE_STMTSTATUS_REPREPARE`); `None` if it holds none such.
    async fn prepared_again(conn: &mut sqlx::SqliteConnection, holding: &str) -> Option<i32> {
        const STMTSTATUS_REPREPARE: std::os::raw::c_int = 5;
        let mut handle = conn.lock_handle().await.unwrap();
        let db = handle.as_raw_handle().as_ptr();
        // SAFETY: the connection is locked for this walk and runs nothing meanwhile, so its
        // list of statements does not change; each is only read, its text while it is listed.
        unsafe {
            let mut stmt = libsqlite3_sys::sqlite3_next_stmt(db, std::ptr::null_mut());
            while !stmt.is_null() {
                let sql = std::ffi::CStr::from_ptr(libsqlite3_sys::sqlite3_sql(stmt));
                if sql.to_string_lossy().contains(holding) {
                    return Some(libsqlite3_sys::sqlite3_stmt_status(
                        stmt,
                        STMTSTATUS_REPREPARE,
                        0,
                    ));
                }
                stmt = libsqlite3_sys::sqlite3_next_stmt(db, stmt);
            }
        }
        None
    }

    /// A connection keeps the pages of the file it mapped and its own page cache: idle ones
    /// must go, or a server that once searched or wrote a large register holds that memory.
    #[tokio::test]
    async fn idle_connections_are_closed() {
        let (dir, store) = scratch("readers", true).await;
        let mut held = Vec::new();
        for _ in 0..4 {
            held.push(store.pool.acquire().await.unwrap());
        }
        // Four, and the one `checkpoint_in_background` may have taken after the migrations.
        assert!(
            (4..=5).contains(&store.pool.size()),
            "{}",
            store.pool.size()
        );
        drop(held);
        drop(store.write_pool.acquire().await.unwrap());
        // Closed one to two IDLE_CLOSE periods later; ten seconds is a generous bound, not a
        // timing assertion.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while store.pool.size() > 0 || store.write_pool.size() > 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "{} readers and {} writer still open",
                store.pool.size(),
                store.write_pool.size()
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        // The pools' last connections closed, but not the database's: its WAL is still
        // there, so no close deleted it (on whichever thread sqlx closed it).
        assert!(dir.join("brama.db-wal").exists(), "the WAL was deleted");
        discard(dir, store).await;
    }

    /// A transaction larger than `WAL_SIZE_LIMIT` grows the WAL; once it is checkpointed, the
    /// next commit cuts the file back, so a large import does not keep its size on disk for as
    /// long as the server runs.
    #[tokio::test]
    async fn a_grown_wal_is_cut_back() {
        let (dir, store) = scratch("wal", false).await;
        let wal = dir.join("brama.db-wal");
        let size = || std::fs::metadata(&wal).unwrap().len();
        let limit = u64::try_from(SqliteStore::WAL_SIZE_LIMIT).unwrap();
        sqlx::query("CREATE TABLE ballast (b BLOB)")
            .execute(&store.write_pool)
            .await
            .unwrap();
        // 80 MiB in one transaction: the WAL holds all of it until the commit.
        let mut tx = store.write_pool.begin().await.unwrap();
        for _ in 0..80 {
            sqlx::query("INSERT INTO ballast (b) VALUES (randomblob(1048576))")
                .execute(&mut *tx)
                .await
                .unwrap();
        }
        tx.commit().await.unwrap();
        assert!(size() > limit, "{} bytes", size());
        // Copied into the database file; the next write starts the WAL again and its commit
        // cuts the file.
        sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .execute(&store.write_pool)
            .await
            .unwrap();
        sqlx::query("INSERT INTO ballast (b) VALUES (1)")
            .execute(&store.write_pool)
            .await
            .unwrap();
        assert!(size() <= limit, "{} bytes", size());
        discard(dir, store).await;
    }
}
