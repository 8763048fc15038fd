//! PostgreSQL backend: several brama nodes on one database act as one server.

use std::str::FromStr;
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use super::redemption::{GrantRead, RedeemRequest};
use super::rotation::RotationRequest;
use super::sql::{
    account_columns, live_sessions_sql, map_unique, member_columns, member_list_columns, now_ms,
    outbox_columns, session_columns, sql_store,
};
use super::*;

pub struct PostgresStore {
    pool: PgPool,
    /// Refresh-token rotations, batched by `rotate_in_batches` (group commit).
    rotations: tokio::sync::mpsc::Sender<RotationRequest>,
    /// Authorization-code exchanges, batched by `redeem_in_batches` (group commit).
    redemptions: tokio::sync::mpsc::Sender<RedeemRequest>,
    /// The code exchanges' reads, batched by `read_grants`.
    grant_reads: tokio::sync::mpsc::Sender<GrantRead>,
}

impl PostgresStore {
    const SEARCH_INDEX: SearchIndex = SearchIndex::LikeTrigram;
    /// Rows at random, each with the chance that gives about `$1` by the planner's row count
    /// (all of a table never analyzed). Not whole pages (`SYSTEM`): `member_search` is stored
    /// in surname order, so twenty random pages held a handful of surnames, and the trigrams
    /// chosen from them were the most common ones (searches ran 2x slower than with the
    /// members table's pages). A row sample reads the whole narrow table: ~30 ms for a
    /// million, once per `search_plan::SAMPLE_TTL` or import.
    const SAMPLE_SEARCH_TEXTS: &str = "SELECT search FROM member_search TABLESAMPLE BERNOULLI (LEAST(100, $1 * 100.0 / \
           GREATEST((SELECT reltuples FROM pg_class WHERE oid = 'member_search'::regclass), 1))) LIMIT $1";
    /// Imports of at least this many members are followed by `AFTER_BULK_INSERT`.
    const BULK_INSERT: usize = 1000;
    /// The trigram index's pending list during a large import, in KiB (`bulk_prepare`).
    const BULK_PENDING_LIST: usize = 65_536;
    /// After a large import: statistics, so the planner picks the trigram index for searches
    /// (before autovacuum's next ANALYZE it saw an empty table), and the GIN pending list
    /// moved into the index, as every search reads that list in full.
    const AFTER_BULK_INSERT: &[&str] = &[
        // Serving, statements are cut at `statement_timeout`; these may take longer.
        "SET LOCAL statement_timeout = 0",
        "ANALYZE members",
        "ANALYZE member_search",
        "SELECT gin_clean_pending_list('member_search_trgm'::regclass)",
    ];

    /// After values were rewritten in place: nothing; old row versions are not in a dump, and
    /// vacuum reclaims them.
    const AFTER_REWRITE: &[&str] = &[];

    /// PostgreSQL handles concurrent writers itself: one pool for everything.
    fn writer(&self) -> &PgPool {
        &self.pool
    }

    async fn begin_tx(&self) -> StoreResult<PostgresTx> {
        let pool = self.pool.clone();
        let tx = super::begin_uncut(async move { pool.begin().await }).await?;
        Ok(PostgresTx {
            tx,
            pool: self.pool.clone(),
            bulk_inserted: 0,
        })
    }

    /// Connects and migrates; sqlx takes an advisory lock, so nodes starting together are safe.
    /// `timeout` bounds the wait for a connection: while the server is down the pool keeps
    /// trying to connect until then, and the request gets `StoreError::Unavailable`. With
    /// `statement_timeout`, the server cancels any statement of this store's connections that
    /// runs longer (migrations run first, on a connection of their own without it: a migration
    /// that builds an index on a large table may take minutes).
    pub async fn connect(
        url: &str,
        timeout: Duration,
        statement_timeout: Option<Duration>,
    ) -> StoreResult<Self> {
        let options = PgConnectOptions::from_str(url)?;
        let migrator = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(timeout)
            .connect_with(options.clone())
            .await?;
        sqlx::migrate!("./migrations/postgres")
            .run(&migrator)
            .await
            .map_err(|e| StoreError::Database(e.into()))?;
        migrator.close().await;
        let options = match statement_timeout {
            Some(cut) => options.options([("statement_timeout", format!("{}ms", cut.as_millis()))]),
            None => options,
        };
        let batch_pool = pool_options(2 * BATCHES_IN_FLIGHT as u32, timeout)
            .connect_lazy_with(options.clone().options(BATCH_PLANNING.iter().copied()));
        let pool = pool_options(16, timeout).connect_with(options).await?;
        let (rotations, queue) = tokio::sync::mpsc::channel(4096);
        tokio::spawn(rotate_in_batches(batch_pool.clone(), queue, timeout));
        let (redemptions, queue) = tokio::sync::mpsc::channel(4096);
        tokio::spawn(redeem_in_batches(batch_pool, queue, timeout));
        let (grant_reads, queue) = tokio::sync::mpsc::channel(4096);
        tokio::spawn(read_grants(pool.clone(), queue, timeout));
        let store = Self {
            pool,
            rotations,
            redemptions,
            grant_reads,
        };
        store.seed_defaults(now_ms()).await?;
        Ok(store)
    }

    /// The batch statements (a rotation's, a code redemption's) and the settings their
    /// connections plan them with, for a test of their plans
    /// (`tokens::postgres_batches_look_rows_up_by_key`).
    pub fn batch_statements() -> ([&'static str; 2], &'static [(&'static str, &'static str)]) {
        ([ROTATE.as_str(), REDEEM], BATCH_PLANNING)
    }

    /// Claims a claimable refresh token (`sql::claimable`) and stores its successor; `None`
    /// when the token was not claimable. The rotation joins the next batch of
    /// `rotate_in_batches`.
    pub(super) async fn claim_rotation(
        &self,
        token_hash: &str,
        next: &NewRefreshToken,
        now: i64,
        client_id: Option<&str>,
    ) -> StoreResult<Option<Claimed>> {
        super::rotation::claim(&self.rotations, token_hash, next, now, client_id).await
    }

    /// `Store::redeem_oidc_code`: the exchange joins the next batch of `redeem_in_batches`.
    pub(super) async fn redeem_code(
        &self,
        code_hash: &str,
        session: &NewSession,
        token: Option<&NewRefreshToken>,
    ) -> StoreResult<bool> {
        super::redemption::redeem(&self.redemptions, code_hash, session, token).await
    }
}

/// A write transaction of [`PostgresStore`].
pub struct PostgresTx {
    tx: sqlx::Transaction<'static, sqlx::Postgres>,
    /// For the tidy-up after a large import commits.
    pool: PgPool,
    /// Members inserted, for `AFTER_BULK_INSERT`.
    bulk_inserted: usize,
}

impl PostgresStore {
    /// A search sorted by surname with no other filter (the page's default), read from the
    /// narrow `member_search` (migration 0021): its hits are found and counted there, sorted by
    /// their keys, and only the page's members are read from the wide table. The hits are
    /// taken once (a materialized CTE) for both the count and a top-N sort of the page: one
    /// window count over every hit sorted them all first. `None`: another kind of list, for
    /// `list_members`.
    ///
    /// Measured on a million members (the bench's register, 4 connections, old and new builds
    /// in one window): 2.6-3.9x the searches a second of the same search on the members table,
    /// p99 80-99 ms down to 21-28 ms, when `member_search` is in surname order, as migrations
    /// and large imports write it (bench/NOTES.md, issue 18, seventh session).
    async fn search_by_surname(
        &self,
        organization_id: &str,
        filter: &MemberFilter,
    ) -> StoreResult<Option<(Vec<MemberRecord>, i64)>> {
        let Some(q) = filter.surname_search() else {
            return Ok(None);
        };
        let mut binds = vec![organization_id.to_string()];
        let found = like_trigram(q, &filter.index_trigrams, &mut binds);
        let hits = format!(
            "WITH hits AS MATERIALIZED (SELECT id, nazwisko_sort FROM member_search \
             WHERE organization_id = $1 AND {found})"
        );
        let direction = if filter.descending { "DESC" } else { "ASC" };
        let (limit, offset) = (binds.len() + 1, binds.len() + 2);
        let sql = format!(
            "{hits} SELECT {}, (SELECT COUNT(*) FROM hits) AS total FROM members JOIN (\
               SELECT id AS hit, nazwisko_sort AS k FROM hits \
               ORDER BY nazwisko_sort {direction}, id {direction} LIMIT ${limit} OFFSET ${offset}\
             ) page ON members.id = page.hit ORDER BY page.k {direction}, page.hit {direction}",
            member_list_columns!()
        );
        let mut page = sqlx::query_as::<_, CountedMember>(&sql);
        for b in &binds {
            page = page.bind(b);
        }
        let rows = page
            .bind(filter.limit)
            .bind(filter.offset)
            .fetch_all(&self.pool)
            .await?;
        let count_sql = format!("{hits} SELECT COUNT(*) FROM hits");
        let count = || async {
            let mut count = sqlx::query_scalar::<_, i64>(&count_sql);
            for b in &binds {
                count = count.bind(b);
            }
            Ok(count.fetch_one(&self.pool).await?)
        };
        Ok(Some(page_with_total(rows, count).await?))
    }
}

impl PostgresTx {
    /// Rows a transaction reads before it decides are locked until it ends, so two
    /// transactions cannot both decide on the same old value.
    const FOR_UPDATE: &'static str = " FOR UPDATE";

    /// PostgreSQL's imports grow the indexes as they go: dropping one takes a lock that would
    /// stop every reader of the register for the import's length. Its shared buffers and
    /// settings are the server's own, but for one: an import of `BULK_INSERT` rows or more lets
    /// the trigram index's pending list grow to `BULK_PENDING_LIST` KiB until `bulk_finish` sets
    /// it back, inside the import's transaction (so no one else ever sees it changed; the lock
    /// it takes holds off only VACUUM, ANALYZE and index builds, not readers or writers). With
    /// the index's own 256 KiB the list was merged into the index every few hundred rows, 45 s
    /// of a million-member import; `AFTER_BULK_INSERT` merges what is left after the commit.
    async fn bulk_prepare(&mut self, members: &[MemberRecord]) -> StoreResult<Option<()>> {
        if members.len() < PostgresStore::BULK_INSERT {
            return Ok(None);
        }
        sqlx::query(&format!(
            "ALTER INDEX member_search_trgm SET (gin_pending_list_limit = {})",
            PostgresStore::BULK_PENDING_LIST
        ))
        .execute(&mut *self.tx)
        .await?;
        Ok(Some(()))
    }

    /// A large import is inserted in `(organization_id, nazwisko_sort, id)` order, so that the
    /// trigger writes `member_search` in the order its searches read best (migration 0021),
    /// and the members table too, whose page of a search is then a few heap pages.
    fn insert_order(members: &[MemberRecord]) -> Vec<usize> {
        let mut order: Vec<usize> = (0..members.len()).collect();
        if members.len() >= PostgresStore::BULK_INSERT {
            order.sort_unstable_by(|&a, &b| {
                let (a, b) = (&members[a], &members[b]);
                (&a.organization_id, &a.nazwisko_sort, &a.id).cmp(&(
                    &b.organization_id,
                    &b.nazwisko_sort,
                    &b.id,
                ))
            });
        }
        order
    }

    /// Rows an INSERT of an import carries: a statement per this many.
    const ROWS_A_STATEMENT: usize = 50_000;

    /// The rows of an import, in `order`, each column bound as one array and the rows read back
    /// out of them (`UNNEST`), up to `ROWS_A_STATEMENT` to a statement. The member count and
    /// `member_search` are kept by statement-level triggers, so each statement updates the
    /// organization's row once, and every row's foreign key then looks that row up along the
    /// chain of its versions written in this transaction: with 500 rows a statement, each
    /// bound on its own, a million members made 2 000 versions, and those lookups took the
    /// second half of the import (perf: `heap_hot_search_buffer`, growing as it went on; the
    /// import took 164-175 s, 129-131 s with this). The statement's text is the same for any
    /// number of rows, so a single member's insert is prepared once too.
    async fn insert_rows(
        &mut self,
        members: &[MemberRecord],
        order: &[usize],
        _rebuild: &Option<()>,
    ) -> StoreResult<()> {
        const INSERT: &str = concat!(
            "INSERT INTO members (",
            member_columns!(),
            ") SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], \
             $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], \
             $11::text[], $12::text[], $13::text[], $14::text[], $15::int8[], $16::text[], \
             $17::int8[], $18::int8[], $19::text[], $20::text[], $21::text[], $22::text[], \
             $23::text[])"
        );
        for chunk in order.chunks(Self::ROWS_A_STATEMENT) {
            let rows = || chunk.iter().map(|&i| &members[i]);
            let text = |f: fn(&MemberRecord) -> &str| rows().map(f).collect::<Vec<_>>();
            let optional = |f: fn(&MemberRecord) -> Option<&str>| rows().map(f).collect::<Vec<_>>();
            let number = |f: fn(&MemberRecord) -> i64| rows().map(f).collect::<Vec<_>>();
            sqlx::query(INSERT)
                .bind(text(|m| &m.id))
                .bind(text(|m| &m.organization_id))
                .bind(text(|m| &m.imie))
                .bind(text(|m| &m.nazwisko))
                .bind(text(|m| &m.wyksztalcenie))
                .bind(text(|m| &m.pesel))
                .bind(text(|m| &m.wojewodztwo))
                .bind(text(|m| &m.miejscowosc))
                .bind(text(|m| &m.ulica))
                .bind(text(|m| &m.nrdomulokalu))
                .bind(text(|m| &m.kodpocztowy))
                .bind(text(|m| &m.email))
                .bind(text(|m| &m.tel))
                .bind(text(|m| &m.search))
                .bind(number(|m| m.version))
                .bind(optional(|m| m.created_by.as_deref()))
                .bind(number(|m| m.created_at))
                .bind(number(|m| m.updated_at))
                .bind(optional(|m| m.pesel_index.as_deref()))
                .bind(optional(|m| m.imie_sort.as_deref()))
                .bind(optional(|m| m.nazwisko_sort.as_deref()))
                .bind(optional(|m| m.miejscowosc_sort.as_deref()))
                .bind(optional(|m| m.wojewodztwo_sort.as_deref()))
                .execute(&mut *self.tx)
                .await
                .map_err(map_unique)?;
        }
        Ok(())
    }

    /// Sets the pending list's limit back to migration 0021's, after a large import.
    async fn bulk_finish(
        &mut self,
        rebuild: Option<()>,
        _members: &[MemberRecord],
    ) -> StoreResult<()> {
        if rebuild.is_some() {
            sqlx::query("ALTER INDEX member_search_trgm SET (gin_pending_list_limit = 256)")
                .execute(&mut *self.tx)
                .await?;
        }
        Ok(())
    }

    /// Members have no places on PostgreSQL (they are SQLite's, migration 0021 there).
    fn replace_on_rename(_n: usize) -> String {
        String::new()
    }

    async fn member_updated(&mut self, _organization_id: &str) -> StoreResult<()> {
        Ok(())
    }

    async fn place_unplaced(&mut self) -> StoreResult<u64> {
        Ok(0)
    }
}

/// Group commit for refresh-token rotation (`store::rotation`): a batch is one statement and
/// one commit. Each rotation alone was a statement and a commit of its own, a WAL flush each;
/// PostgreSQL, not brama, was the limit of refresh traffic (brama's core was two-thirds idle).
///
/// `limit` bounds a batch as the request deadline (`store::deadline`) bounds any call: a
/// server that stops answering mid-statement must not hold up the batches behind it. The
/// statement is cut off and its connection dropped (the server's `statement_timeout`, a little
/// shorter, usually cancels it first).
async fn rotate_in_batches(
    pool: PgPool,
    queue: tokio::sync::mpsc::Receiver<RotationRequest>,
    limit: Duration,
) {
    super::rotation::in_batches(queue, BATCHES_IN_FLIGHT, |batch, followers| {
        let pool = pool.clone();
        async move {
            let rows =
                super::deadline::within(limit, async { Ok(rotate_batch(&pool, &batch).await?) })
                    .await;
            super::rotation::answer(batch, followers, rows, super::rotation::claimed_columns);
        }
    })
    .await
}

/// A pool of at most `max` connections that waits `timeout` for one.
///
/// sqlx tests a connection with a round trip (`ping`) each time it is taken from the pool, as
/// well as each time it is given back. Both pools take connections for single statements, so
/// that was a round trip more for each: on a busy server a third of the trips to PostgreSQL,
/// each waking both processes (the EdDSA code exchange: 150 µs of brama's CPU before, 135
/// after). The test on return stays: it closes a connection whose statement failed on a broken
/// link. A connection is tested again when taken only if it waited in the pool longer than
/// `IDLE_PING_AFTER`: after a restart or a failover has ended the server's side of the
/// connections (`faults::a_read_only_database_refuses_writes_with_503_and_reads_go_on`), the
/// first request finds them tested and replaced, not a 503. A busy server takes each
/// connection back within milliseconds (16 connections in turn, thousands of statements a
/// second) and is spared the trip; one that meets a connection ended in that moment answers
/// that request 503, as it does the statements the failover cut off.
fn pool_options(max: u32, timeout: Duration) -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(max)
        .acquire_timeout(timeout)
        .test_before_acquire(false)
        .before_acquire(|connection, meta| {
            Box::pin(async move {
                if meta.idle_for >= IDLE_PING_AFTER {
                    sqlx::Connection::ping(connection).await?;
                }
                Ok(true)
            })
        })
}

/// See [`pool_options`].
const IDLE_PING_AFTER: Duration = Duration::from_millis(50);

/// How many batches of rotations one node writes at a time, and as many of code redemptions.
/// One at a time left PostgreSQL and brama mostly idle (each waited for the other's half of a
/// batch's round trip and commit); with several, PostgreSQL also commits them together.
const BATCHES_IN_FLIGHT: usize = 4;

/// The settings of the connections that write batches (a pool of their own, as many
/// connections as `BATCHES_IN_FLIGHT` for each kind): `rotate_batch` and `redeem_batch` are
/// planned once per connection, and those plans look each token, code, session and account up
/// by its key, whatever the tables' statistics say.
///
/// Planned for each batch, the statement cost PostgreSQL ~1 ms of planning beside ~1.25 ms
/// of work for some fifteen rotations, and PostgreSQL's CPU, not brama's, was the limit of
/// refresh traffic. A plan kept by the server's own choice was worse: made while
/// `refresh_tokens` was small (or never analyzed, as on a server without autovacuum), it
/// scanned the table whole, and every batch got slower as the table grew (3 900/s, then
/// 2 400/s ten seconds later). A batch names at most `rotation::BATCH` tokens, so lookups by
/// key are the right plan at any size. Scans and hash or merge joins are priced out here, and
/// the statement leaves no index but the keys to choose from (`rotate_batch`); a test explains
/// the plan on a fresh database (`tokens::postgres_batches_look_rows_up_by_key`).
const BATCH_PLANNING: &[(&str, &str)] = &[
    ("plan_cache_mode", "force_generic_plan"),
    ("enable_seqscan", "off"),
    ("enable_hashjoin", "off"),
    ("enable_mergejoin", "off"),
];

/// The statement of `rotate_batch`.
static ROTATE: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "WITH r AS (\
           SELECT * FROM unnest($2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::text[]) \
           AS r (old_hash, new_hash, now, expires_at, client_id)), \
         locked AS (\
           SELECT t.token_hash FROM refresh_tokens t \
           WHERE t.token_hash IN (SELECT old_hash FROM r) ORDER BY t.token_hash FOR UPDATE), \
         claimed AS (\
           UPDATE refresh_tokens t SET used_at = r.now, replaced_by = r.new_hash \
           FROM r JOIN locked l ON l.token_hash = r.old_hash \
           WHERE t.token_hash = r.old_hash AND {} \
           RETURNING t.session_id, t.token_hash AS old_hash, r.new_hash, r.now, r.expires_at), \
         touched AS (\
           UPDATE sessions s SET last_used_at = c.now FROM claimed c \
           WHERE s.id = c.session_id AND s.revoked_at + 0 IS NULL \
           RETURNING s.id AS rotated_session, s.account_id AS rotated_account, \
           s.expires_at AS session_ends, s.amr AS session_amr), \
         issued AS (\
           INSERT INTO refresh_tokens (token_hash, session_id, created_at, expires_at, replaces) \
           SELECT c.new_hash, t.rotated_session, c.now, LEAST(c.expires_at, t.session_ends), \
           c.old_hash FROM touched t JOIN claimed c ON c.session_id = t.rotated_session) \
         SELECT c.old_hash AS replaces, t.rotated_session, a.id AS account_id, \
           a.organization_id, a.role, t.session_amr AS amr \
         FROM touched t JOIN claimed c ON c.session_id = t.rotated_session \
         JOIN accounts a ON a.id = t.rotated_account",
        super::sql::claimable(
            "t",
            "r.now",
            "$1",
            "cs.client_id IS NOT DISTINCT FROM r.client_id"
        )
    )
});

/// Rotates `batch` (distinct tokens) in one statement of data-modifying CTEs, its rotations
/// bound as arrays: `locked` takes the row locks of the presented tokens in one order (two
/// nodes rotating overlapping batches wait for each other instead of deadlocking), `claimed`
/// marks the claimable ones used, `touched` updates their sessions (and checks them again: a
/// revocation that committed after the claim leaves the claim without a successor,
/// `RefreshTokenState::successor_missing`), `issued` inserts the successors. A second claim
/// of a token, from another node, waits for the row lock and then finds `used_at` set.
///
/// `touched` asks `revoked_at + 0 IS NULL`, which no index serves (as `sql::claimable` does
/// with `expires_at`): asked plainly, the plan made on small tables read the whole of
/// `sessions_account` for each batch, and once code exchanges had opened 40 000 sessions the
/// refresh grant ran at ~220/s with PostgreSQL's four rotating backends busy (1 400/s
/// otherwise).
async fn rotate_batch(
    pool: &PgPool,
    batch: &[RotationRequest],
) -> Result<Vec<sqlx::postgres::PgRow>, sqlx::Error> {
    // Prepared once per connection, and planned once (`BATCH_PLANNING`).
    sqlx::query(&ROTATE)
        .bind(crate::domain::AccountStatus::MAY_LOG_IN)
        .bind(batch.iter().map(|r| &r.token_hash).collect::<Vec<_>>())
        .bind(batch.iter().map(|r| &r.next_hash).collect::<Vec<_>>())
        .bind(batch.iter().map(|r| r.now).collect::<Vec<_>>())
        .bind(batch.iter().map(|r| r.next_expires_at).collect::<Vec<_>>())
        .bind(batch.iter().map(|r| &r.client_id).collect::<Vec<_>>())
        .fetch_all(pool)
        .await
}

sql_store!(PostgresStore, PostgresTx, "postgres");

/// Group commit for code exchanges (`store::redemption`), as `rotate_in_batches` does for
/// rotations, on the same pool: each exchange was a statement, a round trip and a commit of its
/// own. `limit` bounds a batch as there.
async fn redeem_in_batches(
    pool: PgPool,
    queue: tokio::sync::mpsc::Receiver<RedeemRequest>,
    limit: Duration,
) {
    super::rotation::in_batches(queue, BATCHES_IN_FLIGHT, |batch, followers| {
        let pool = pool.clone();
        async move {
            let opened =
                super::deadline::within(limit, async { Ok(redeem_batch(&pool, &batch).await?) })
                    .await;
            super::redemption::answer(batch, followers, opened);
        }
    })
    .await
}

/// The statement of `redeem_batch`.
const REDEEM: &str = "WITH r AS (\
       SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::bigint[], \
       $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], \
       $13::bigint[]) AS r (code_hash, session_id, now, account_id, expires_at, user_agent, ip, \
       amr, client_id, scope, parent_id, token_hash, token_expires_at)), \
     locked AS (\
       SELECT c.code_hash FROM oidc_codes c \
       WHERE c.code_hash IN (SELECT code_hash FROM r) ORDER BY c.code_hash FOR UPDATE), \
     spent AS (\
       UPDATE oidc_codes c SET used_at = r.now, grant_session_id = r.session_id \
       FROM r JOIN locked l ON l.code_hash = r.code_hash \
       WHERE c.code_hash = r.code_hash AND c.used_at IS NULL AND EXISTS (\
         SELECT 1 FROM sessions p WHERE p.id = c.sso_session_id \
         AND p.revoked_at + 0 IS NULL AND p.expires_at + 0 > r.now FOR SHARE) \
       RETURNING r.*), \
     opened AS (\
       INSERT INTO sessions (id, account_id, created_at, last_used_at, expires_at, \
       user_agent, ip, amr, client_id, scope, parent_id) \
       SELECT session_id, account_id, now, now, expires_at, user_agent, ip, amr, client_id, \
       scope, parent_id FROM spent RETURNING id), \
     issued AS (\
       INSERT INTO refresh_tokens (token_hash, session_id, created_at, expires_at) \
       SELECT s.token_hash, o.id, s.now, s.token_expires_at FROM spent s \
       JOIN opened o ON o.id = s.session_id WHERE s.token_hash IS NOT NULL) \
     SELECT id FROM opened";

/// Spends the codes of `batch` (distinct codes) and opens their grants in one statement of
/// data-modifying CTEs, the requests bound as arrays; the ids of the grant sessions opened.
/// `locked` takes the codes' row locks in one order (two nodes' overlapping batches wait for
/// each other instead of deadlocking); `spent` marks each unused code whose browser session
/// lives with its request's grant session id; `opened` inserts those sessions and `issued`
/// their first refresh tokens. The browser session is locked `FOR SHARE`: a logout that revoked
/// it first makes this statement see it revoked (PostgreSQL re-reads a row it waited for), and
/// one that comes after waits for this commit, so its revocation of the child sessions sees the
/// grant. A concurrent exchange of a code in this batch (from another node) waits for the
/// code's lock, then finds it used and opens nothing. As in `rotate_batch`, `+ 0` leaves no
/// index on the sessions' times to choose instead of their key.
async fn redeem_batch(pool: &PgPool, batch: &[RedeemRequest]) -> Result<Vec<String>, sqlx::Error> {
    let column = |f: fn(&RedeemRequest) -> Option<&str>| batch.iter().map(f).collect::<Vec<_>>();
    let times = |f: fn(&RedeemRequest) -> Option<i64>| batch.iter().map(f).collect::<Vec<_>>();
    sqlx::query_scalar(REDEEM)
        .bind(column(|r| Some(r.code_hash.as_str())))
        .bind(column(|r| Some(r.session.id.as_str())))
        .bind(times(|r| Some(r.session.created_at)))
        .bind(column(|r| Some(r.session.account_id.as_str())))
        .bind(times(|r| Some(r.session.expires_at)))
        .bind(column(|r| r.session.user_agent.as_deref()))
        .bind(column(|r| r.session.ip.as_deref()))
        .bind(column(|r| Some(r.session.amr.as_str())))
        .bind(column(|r| r.session.client_id.as_deref()))
        .bind(column(|r| r.session.scope.as_deref()))
        .bind(column(|r| r.session.parent_id.as_deref()))
        .bind(column(|r| r.token.as_ref().map(|t| t.token_hash.as_str())))
        .bind(times(|r| r.token.as_ref().map(|t| t.expires_at)))
        .fetch_all(pool)
        .await
}

/// The code exchanges' reads (`store::redemption`), a batch of codes in one `SELECT` on the
/// main pool (`= ANY`, the codes found by their key). `limit` bounds a batch as in
/// `rotate_in_batches`.
async fn read_grants(pool: PgPool, queue: tokio::sync::mpsc::Receiver<GrantRead>, limit: Duration) {
    static READ: std::sync::LazyLock<String> =
        std::sync::LazyLock::new(|| format!("{} = ANY($1)", super::sql::OIDC_CODE_GRANT));
    let in_flight = super::redemption::GRANT_READS_IN_FLIGHT;
    super::rotation::in_batches(queue, in_flight, |batch, followers| {
        let pool = pool.clone();
        async move {
            let codes: Vec<&str> = batch.iter().map(|r| r.code_hash.as_str()).collect();
            let rows = super::deadline::within(limit, async {
                Ok(sqlx::query_as::<_, super::sql::CodeGrantRow>(&READ)
                    .bind(codes)
                    .fetch_all(&pool)
                    .await?)
            })
            .await;
            super::redemption::answer_reads(batch, followers, rows);
        }
    })
    .await
}
