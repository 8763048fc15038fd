//! The SQL shared by both backends: `sql_store!` implements `Store` for a pool type and `Tx`
//! for its transaction type.
//!
//! The statements use `$N` placeholders, `RETURNING` and `ON CONFLICT`, which SQLite (3.35+) and
//! PostgreSQL read the same way, so each statement is written once. The backends differ in how
//! they connect, how they rotate refresh tokens (the hot path, tuned for each) and in a few
//! associated constants, which live in `sqlite.rs` and `postgres.rs`. No statement decides
//! anything: status values and reasons are bound from the domain's enums, never written here.
//!
//! RETURNING: a write with `RETURNING` outside an explicit transaction is read with
//! `fetch_all`, never `fetch_optional`/`fetch_one`. Those stop after the first row and reset the
//! statement; SQLite then commits in the reset, and runs its WAL auto-checkpoint only when a
//! statement steps to its end, so the WAL grew without bound (830 MB after a minute of
//! refreshes, and every page read slowed with it). `sqlite_wal_stays_bounded_under_refreshes` guards
//! this. Inside a transaction the commit is the transaction's own.

/// A refresh token that may be rotated at `now`: unused, unexpired, of an unrevoked,
/// unexpired session of an account that may log in (`active`: the caller binds
/// `AccountStatus::MAY_LOG_IN`), of the kind asked for (`same_client`: a condition on the
/// session `cs`, true for brama's own sessions at brama's refresh and for a client's grants at
/// its token endpoint). The one definition of "claimable", used by both backends' rotation;
/// `token` is the alias of the `refresh_tokens` row, and `now`/`active` are SQL expressions
/// (placeholders or columns).
///
/// `cs.expires_at + 0`: the session is found by its key, never through `sessions_expires`.
/// With few sessions, PostgreSQL planned the batch statement's check through that index, every
/// unexpired session read and its account looked up for each token (2 200 lookups for a batch
/// of 64); the sum is not indexed, so only `cs.id` is left to look the session up by.
pub(crate) fn claimable(token: &str, now: &str, active: &str, same_client: &str) -> String {
    format!(
        "{token}.used_at IS NULL AND {token}.expires_at > {now} AND EXISTS (\
           SELECT 1 FROM sessions cs JOIN accounts ca ON ca.id = cs.account_id \
           WHERE cs.id = {token}.session_id AND cs.revoked_at IS NULL \
           AND cs.expires_at + 0 > {now} AND ca.status = {active} AND {same_client})"
    )
}

/// A `WITH RECURSIVE chain (token_hash, next)` clause: the refresh tokens of the chains that
/// begin with the rows `first` selects (`token_hash, replaced_by` of first tokens, which carry
/// no `replaces`), each followed through `replaced_by` (migration 0024). A session's tokens are
/// one chain, and only first tokens are indexed by session (`refresh_tokens_first`), so this is
/// how a session's tokens are found: the janitor's and an account deletion's one way.
pub(crate) fn token_chains(first: &str) -> String {
    format!(
        "WITH RECURSIVE chain (token_hash, next) AS ({first} \
         UNION SELECT t.token_hash, t.replaced_by FROM chain c \
         JOIN refresh_tokens t ON t.token_hash = c.next) "
    )
}

/// The statement that deletes one batch of `litter` (binds: `$1` the cut, `$2` the batch size).
/// Each picks its rows through an index on the time that makes them litter, so a batch reads
/// about as many rows as it deletes.
pub(crate) fn delete_litter(litter: super::Litter) -> String {
    use super::Litter;
    let older = |table: &str, key: &str, column: &str| {
        format!(
            "DELETE FROM {table} WHERE {key} IN \
             (SELECT {key} FROM {table} WHERE {column} < $1 LIMIT $2)"
        )
    };
    match litter {
        Litter::Links(kind) => older(kind.table(), "token_hash", "expires_at"),
        Litter::OutboxExpired => older("outbox", "id", "expires_at"),
        Litter::OutboxSent => older("outbox", "id", "sent_at"),
        Litter::AuditEvents => older("audit_events", "id", "created_at"),
        Litter::MfaTickets => older("mfa_tickets", "token_hash", "expires_at"),
        Litter::WebauthnCeremonies => older("webauthn_ceremonies", "challenge_hash", "expires_at"),
        Litter::OidcRequests => older("oidc_requests", "id", "expires_at"),
        Litter::OidcCodes => older("oidc_codes", "code_hash", "expires_at"),
    }
}

/// An account's TOTP factor; the `Tx` read appends `FOR_UPDATE`.
pub(crate) const TOTP_FACTOR: &str = "SELECT account_id, secret, created_at, confirmed_at, last_step FROM totp_factors \
     WHERE account_id = $1";
/// The columns of a parked authorization request.
pub(crate) const OIDC_REQUEST_COLUMNS: &str = "id, client_id, redirect_uri, scope, state, nonce, \
     code_challenge, login_after, consent_asked, created_at, expires_at";

/// The columns of an authorization code.
pub(crate) const OIDC_CODE_COLUMNS: &str = "code_hash, client_id, account_id, sso_session_id, \
     redirect_uri, scope, nonce, code_challenge, auth_time, amr, created_at, expires_at, used_at, \
     grant_session_id";

/// A code joined with its account and its browser session's liveness (binds: `$1` the code's
/// hash, `$2` now), read into [`CodeGrantRow`]. The code's columns that share a name with the
/// account's are prefixed `code_`.
pub(crate) const OIDC_CODE_GRANT: &str = "SELECT \
     a.id, a.organization_id, a.username, a.email, a.phone, a.name, a.surname, a.password_hash, \
     a.role, a.status, a.created_at, a.updated_at, \
     c.code_hash, c.client_id AS code_client_id, c.sso_session_id, c.redirect_uri, c.scope, \
     c.nonce, c.code_challenge, c.auth_time, c.amr AS code_amr, c.created_at AS code_created_at, \
     c.expires_at AS code_expires_at, c.used_at, c.grant_session_id, \
     s.revoked_at AS parent_revoked_at, s.expires_at AS parent_expires_at \
     FROM oidc_codes c JOIN accounts a ON a.id = c.account_id \
     LEFT JOIN sessions s ON s.id = c.sso_session_id \
     WHERE c.code_hash";

/// A row of [`OIDC_CODE_GRANT`].
#[derive(sqlx::FromRow)]
pub(crate) struct CodeGrantRow {
    #[sqlx(flatten)]
    account: super::AccountRecord,
    pub code_hash: String,
    code_client_id: String,
    sso_session_id: String,
    redirect_uri: String,
    scope: String,
    nonce: Option<String>,
    code_challenge: Option<String>,
    auth_time: i64,
    code_amr: String,
    code_created_at: i64,
    code_expires_at: i64,
    used_at: Option<i64>,
    grant_session_id: Option<String>,
    parent_revoked_at: Option<i64>,
    parent_expires_at: Option<i64>,
}

impl CodeGrantRow {
    /// The grant as its exchange at `now` reads it.
    pub(crate) fn at(&self, now: i64) -> super::OidcCodeGrant {
        let r = self;
        super::OidcCodeGrant {
            code: super::OidcCodeRecord {
                code_hash: r.code_hash.clone(),
                client_id: r.code_client_id.clone(),
                account_id: r.account.id.clone(),
                sso_session_id: r.sso_session_id.clone(),
                redirect_uri: r.redirect_uri.clone(),
                scope: r.scope.clone(),
                nonce: r.nonce.clone(),
                code_challenge: r.code_challenge.clone(),
                auth_time: r.auth_time,
                amr: r.code_amr.clone(),
                created_at: r.code_created_at,
                expires_at: r.code_expires_at,
                used_at: r.used_at,
                grant_session_id: r.grant_session_id.clone(),
            },
            account: r.account.clone(),
            parent_live: r.parent_revoked_at.is_none()
                && r.parent_expires_at.is_some_and(|end| end > now),
        }
    }
}

/// The columns of an OpenID Connect client.
pub(crate) const OIDC_CLIENT_COLUMNS: &str = "id, organization_id, name, secret_hash, redirect_uris, \
     post_logout_redirect_uris, first_party, id_token_alg, created_at";

/// The organization's member count, kept by triggers (migration 0007).
pub(crate) const MEMBER_COUNT: &str = "SELECT member_count FROM organizations WHERE id = $1";

/// An account's passkeys, oldest first.
pub(crate) const PASSKEYS: &str = "SELECT id, account_id, credential_id, name, credential, sign_count, created_at, last_used_at \
     FROM passkeys WHERE account_id = $1 ORDER BY created_at, id";
/// Which second factors an account has.
pub(crate) const SECOND_FACTORS: &str = "SELECT \
     EXISTS (SELECT 1 FROM totp_factors WHERE account_id = $1 AND confirmed_at IS NOT NULL) AS totp, \
     (SELECT COUNT(*) FROM passkeys WHERE account_id = $1) AS passkeys, \
     (SELECT COUNT(*) FROM recovery_codes WHERE account_id = $1 AND used_at IS NULL) AS recovery_codes_left";
/// A second-factor login ticket by its hash; the `Tx` read appends `FOR_UPDATE`.
pub(crate) const MFA_TICKET: &str = "SELECT account_id, expires_at, CAST(failures AS BIGINT) AS failures, used_at \
     FROM mfa_tickets WHERE token_hash = $1";

/// `$1, $2, …` from `$first` on, for an `IN` list of `n` binds.
pub(crate) fn placeholders(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Implements `Store` for `$store` and `Tx` for `$tx`.
///
/// `$store` has a `pool` field (readers), the methods `writer`, `begin_tx` and
/// `claim_rotation`, and the constants `SEARCH_INDEX`, `BULK_INSERT`, `AFTER_BULK_INSERT` and
/// `AFTER_REWRITE`.
/// `$tx` has the fields `tx` (a `sqlx::Transaction<'static, _>`), `pool` (for the tidy-up
/// after a large import) and `bulk_inserted`, the constant `FOR_UPDATE`, and the methods
/// `bulk_prepare` and `bulk_finish` around the rows of a member import.
macro_rules! sql_store {
    ($store:ty, $tx:ty, $backend:literal) => {
        #[async_trait::async_trait]
        impl $crate::store::Store for $store {
            fn backend(&self) -> &'static str {
                $backend
            }

            fn search_index(&self) -> $crate::store::SearchIndex {
                Self::SEARCH_INDEX
            }

            async fn ping(&self) -> StoreResult<()> {
                sqlx::query("SELECT 1").execute(&self.pool).await?;
                Ok(())
            }

            async fn begin(&self) -> StoreResult<Box<dyn Tx>> {
                Ok(Box::new(self.begin_tx().await?))
            }

            async fn after_rewrite(&self) -> StoreResult<()> {
                for statement in <$store>::AFTER_REWRITE {
                    sqlx::query(statement).execute(self.writer()).await?;
                }
                Ok(())
            }

            async fn account(&self, id: &str) -> StoreResult<Option<AccountRecord>> {
                Ok(sqlx::query_as::<_, AccountRecord>(concat!(
                    "SELECT ", account_columns!(), " FROM accounts WHERE id = $1"
                ))
                .bind(id)
                .fetch_optional(&self.pool)
                .await?)
            }

            async fn account_by_login(&self, key: &str) -> StoreResult<Option<AccountRecord>> {
                // A username cannot contain '@' and an email must, so at most one row matches.
                Ok(sqlx::query_as::<_, AccountRecord>(concat!(
                    "SELECT ", account_columns!(),
                    " FROM accounts WHERE username_norm = $1 OR email_norm = $1 LIMIT 1"
                ))
                .bind(key)
                .fetch_optional(&self.pool)
                .await?)
            }

            async fn accounts(&self, organization_id: &str) -> StoreResult<Vec<AccountRecord>> {
                Ok(sqlx::query_as::<_, AccountRecord>(concat!(
                    "SELECT ", account_columns!(),
                    " FROM accounts WHERE organization_id = $1 ORDER BY created_at, id"
                ))
                .bind(organization_id)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn session(&self, id: &str) -> StoreResult<Option<SessionRecord>> {
                Ok(sqlx::query_as::<_, SessionRecord>(concat!(
                    "SELECT ", session_columns!(), " FROM sessions WHERE id = $1"
                ))
                .bind(id)
                .fetch_optional(&self.pool)
                .await?)
            }

            async fn live_sessions(&self, account_id: &str, now: i64) -> StoreResult<Vec<SessionRecord>> {
                Ok(sqlx::query_as::<_, SessionRecord>(live_sessions_sql!())
                    .bind(account_id)
                    .bind(now)
                    .fetch_all(&self.pool)
                    .await?)
            }

            async fn claim_refresh(
                &self,
                token_hash: &str,
                next: NewRefreshToken,
                now: i64,
                client_id: Option<&str>,
            ) -> StoreResult<Option<Claimed>> {
                self.claim_rotation(token_hash, &next, now, client_id).await
            }

            async fn refresh_token_state(&self, token_hash: &str) -> StoreResult<Option<RefreshTokenState>> {
                #[derive(sqlx::FromRow)]
                struct Row {
                    session_id: String,
                    client_id: Option<String>,
                    account_id: String,
                    organization_id: String,
                    account_status: $crate::domain::AccountStatus,
                    used_at: Option<i64>,
                    expires_at: i64,
                    session_revoked_at: Option<i64>,
                    session_expires_at: i64,
                    successor_missing: i64,
                }
                let row = sqlx::query_as::<_, Row>(
                    "SELECT t.session_id, s.client_id, s.account_id, a.organization_id, a.status AS account_status, \
                     t.used_at, t.expires_at, s.revoked_at AS session_revoked_at, \
                     s.expires_at AS session_expires_at, \
                     CAST(CASE WHEN t.replaced_by IS NOT NULL AND NOT EXISTS \
                       (SELECT 1 FROM refresh_tokens n WHERE n.token_hash = t.replaced_by) \
                     THEN 1 ELSE 0 END AS BIGINT) AS successor_missing \
                     FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id \
                     JOIN accounts a ON a.id = s.account_id WHERE t.token_hash = $1",
                )
                .bind(token_hash)
                .fetch_optional(&self.pool)
                .await?;
                Ok(row.map(|r| RefreshTokenState {
                    session_id: r.session_id,
                    client_id: r.client_id,
                    account_id: r.account_id,
                    organization_id: r.organization_id,
                    account_status: r.account_status,
                    used_at: r.used_at,
                    expires_at: r.expires_at,
                    session_revoked_at: r.session_revoked_at,
                    session_expires_at: r.session_expires_at,
                    successor_missing: r.successor_missing == 1,
                }))
            }

            async fn link_token(&self, kind: LinkKind, token_hash: &str) -> StoreResult<Option<LinkTokenRecord>> {
                Ok(sqlx::query_as::<_, LinkTokenRecord>(&format!(
                    "SELECT account_id, expires_at, used_at FROM {} WHERE token_hash = $1",
                    kind.table()
                ))
                .bind(token_hash)
                .fetch_optional(&self.pool)
                .await?)
            }

            async fn signing_keys(&self) -> StoreResult<Vec<SigningKeyRecord>> {
                Ok(sqlx::query_as::<_, SigningKeyRecord>(
                    "SELECT kid, alg, private_key, public_key, created_at FROM signing_keys \
                     ORDER BY created_at DESC, kid DESC",
                )
                .fetch_all(&self.pool)
                .await?)
            }

            async fn audit_events(&self, organization_id: &str, filter: &$crate::store::AuditFilter, limit: i64) -> StoreResult<Vec<AuditRecord>> {
                Ok(sqlx::query_as::<_, AuditRecord>(
                    "SELECT id, organization_id, actor_id, action, target, ip, created_at FROM audit_events \
                     WHERE organization_id = $1 AND created_at < $2 \
                     AND (CAST($4 AS TEXT) IS NULL OR action = $4) AND (CAST($5 AS TEXT) IS NULL OR actor_id = $5) \
                     ORDER BY created_at DESC, id DESC LIMIT $3",
                )
                .bind(organization_id)
                .bind(filter.before.unwrap_or(i64::MAX))
                .bind(limit)
                .bind(&filter.action)
                .bind(&filter.actor)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn audit_trail(&self, organization_id: &str, target: &str) -> StoreResult<Vec<$crate::store::TrailEntry>> {
                Ok(sqlx::query_as::<_, $crate::store::TrailEntry>(
                    "SELECT e.created_at, COALESCE(a.username, a.email) AS actor, e.action \
                     FROM audit_events e LEFT JOIN accounts a ON a.id = e.actor_id \
                     WHERE e.target = $2 AND e.organization_id = $1 ORDER BY e.created_at, e.id",
                )
                .bind(organization_id)
                .bind(target)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn outbox(&self) -> StoreResult<Vec<OutboxRecord>> {
                Ok(sqlx::query_as::<_, OutboxRecord>(concat!(
                    "SELECT ", outbox_columns!(), " FROM outbox ORDER BY created_at, id"
                ))
                .fetch_all(&self.pool)
                .await?)
            }

            async fn outbox_next_due(&self) -> StoreResult<Option<i64>> {
                Ok(sqlx::query_scalar::<_, Option<i64>>(
                    "SELECT MIN(next_attempt_at) FROM outbox WHERE next_attempt_at IS NOT NULL",
                )
                .fetch_one(&self.pool)
                .await?)
            }

            async fn member(&self, organization_id: &str, id: &str) -> StoreResult<Option<MemberRecord>> {
                Ok(sqlx::query_as::<_, MemberRecord>(concat!(
                    "SELECT ", member_columns!(), " FROM members WHERE organization_id = $1 AND id = $2"
                ))
                .bind(organization_id)
                .bind(id)
                .fetch_optional(&self.pool)
                .await?)
            }

            async fn list_members(
                &self,
                organization_id: &str,
                filter: &MemberFilter,
            ) -> StoreResult<(Vec<MemberRecord>, i64)> {
                if let Some(found) = self.search_by_surname(organization_id, filter).await? {
                    return Ok(found);
                }
                let $crate::store::MemberWhere { condition, binds, unindexed_order } =
                    $crate::store::member_where(organization_id, filter, Self::SEARCH_INDEX);
                let direction = if filter.descending { "DESC" } else { "ASC" };
                let (sort, tiebreak) = if unindexed_order {
                    (filter.sort.unindexed(), "id || ''")
                } else {
                    (filter.sort.column(), "id")
                };
                // A search counts its hits in the same pass that sorts them (the window runs
                // before LIMIT), and sorts only ids and sort keys: the page's rows are read
                // after. A list without a search walks an index for the page and takes the
                // total from a count (the organization's own, when nothing filters).
                let searching = filter.q.is_some();
                let order = format!("ORDER BY {sort} {direction}, {tiebreak} {direction}");
                let (limit, offset) = (binds.len() + 1, binds.len() + 2);
                let page_sql = if searching {
                    format!(
                        "SELECT {}, total FROM members JOIN (\
                           SELECT id AS hit, COUNT(*) OVER () AS total FROM members \
                           WHERE {condition} {order} LIMIT ${limit} OFFSET ${offset}\
                         ) page ON members.id = page.hit {order}",
                        member_list_columns!()
                    )
                } else {
                    format!(
                        "SELECT {}, CAST(0 AS BIGINT) AS total FROM members WHERE {condition} \
                         {order} LIMIT ${limit} OFFSET ${offset}",
                        member_list_columns!()
                    )
                };
                let mut page = sqlx::query_as::<_, $crate::store::CountedMember>(&page_sql);
                for b in &binds {
                    page = page.bind(b);
                }
                let rows = page.bind(filter.limit).bind(filter.offset).fetch_all(&self.pool).await?;
                let total = match rows.first() {
                    Some(first) if searching => first.total,
                    // Past the last hit, or no search: count.
                    _ if searching || filter.wojewodztwo.is_some() => {
                        let count_sql = format!("SELECT COUNT(*) FROM members WHERE {condition}");
                        let mut count = sqlx::query_scalar::<_, i64>(&count_sql);
                        for b in &binds {
                            count = count.bind(b);
                        }
                        count.fetch_one(&self.pool).await?
                    }
                    _ => sqlx::query_scalar::<_, i64>($crate::store::sql::MEMBER_COUNT)
                    .bind(organization_id)
                    .fetch_optional(&self.pool)
                    .await?
                    .unwrap_or(0),
                };
                Ok((rows.into_iter().map(|r| r.member).collect(), total))
            }

            async fn record_audits(&self, events: &[(AuditEvent, i64)]) -> StoreResult<()> {
                // 32 rows (224 parameters) a statement: SQLite looks a parameter's name up in a
                // list, so binding costs the square of the parameters in one statement.
                for chunk in events.chunks(32) {
                    let rows = (0..chunk.len())
                        .map(|n| format!("({})", $crate::store::sql::placeholders(n * 7 + 1, 7)))
                        .collect::<Vec<_>>()
                        .join(", ");
                    let sql = format!(
                        "INSERT INTO audit_events (id, organization_id, actor_id, action, target, ip, \
                         created_at) VALUES {rows}"
                    );
                    let mut q = sqlx::query(&sql);
                    for (event, at) in chunk {
                        q = q
                            .bind(uuid::Uuid::now_v7().to_string())
                            .bind(&event.organization_id)
                            .bind(&event.actor_id)
                            .bind(event.action)
                            .bind(&event.target)
                            .bind(&event.ip)
                            .bind(*at);
                    }
                    q.execute(self.writer()).await?;
                }
                Ok(())
            }

            async fn sample_search_texts(&self, limit: i64) -> StoreResult<Vec<String>> {
                Ok(sqlx::query_scalar::<_, String>(Self::SAMPLE_SEARCH_TEXTS)
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?)
            }

            async fn member_ids(
                &self,
                organization_id: &str,
                after: Option<&$crate::store::ExportKey>,
                limit: i64,
            ) -> StoreResult<Vec<$crate::store::ExportKey>> {
                let page = match after {
                    None => sqlx::query_as::<_, $crate::store::ExportKey>(
                        "SELECT COALESCE(nazwisko_sort, '') AS sort, id FROM members \
                         WHERE organization_id = $1 ORDER BY nazwisko_sort, id LIMIT $2",
                    )
                    .bind(organization_id)
                    .bind(limit),
                    Some(key) => sqlx::query_as::<_, $crate::store::ExportKey>(
                        "SELECT COALESCE(nazwisko_sort, '') AS sort, id FROM members \
                         WHERE organization_id = $1 AND (nazwisko_sort, id) > ($2, $3) \
                         ORDER BY nazwisko_sort, id LIMIT $4",
                    )
                    .bind(organization_id)
                    .bind(&key.sort)
                    .bind(&key.id)
                    .bind(limit),
                };
                Ok(page.fetch_all(&self.pool).await?)
            }

            async fn members_by_ids(&self, organization_id: &str, ids: &[String]) -> StoreResult<Vec<MemberRecord>> {
                if ids.is_empty() {
                    return Ok(Vec::new());
                }
                let sql = format!(
                    concat!("SELECT ", member_list_columns!(), " FROM members WHERE organization_id = $1 AND id IN ({})"),
                    $crate::store::sql::placeholders(2, ids.len())
                );
                let mut q = sqlx::query_as::<_, MemberRecord>(&sql).bind(organization_id);
                for id in ids {
                    q = q.bind(id);
                }
                Ok(q.fetch_all(&self.pool).await?)
            }

            async fn pesels_not_under(&self, pattern: &str) -> StoreResult<u64> {
                let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM members WHERE pesel NOT LIKE $1")
                    .bind(pattern)
                    .fetch_one(&self.pool)
                    .await?;
                Ok(n as u64)
            }

            async fn taken_pesel_indexes(&self, organization_id: &str, indexes: &[String]) -> StoreResult<Vec<String>> {
                // When the organization holds fewer members than are asked about (a first
                // import into an empty register, always), its own indexes are read once and
                // matched here: a million asked about in chunks of 500 was 2 000 statements of
                // 501 parameters, and SQLite looks each parameter's name up among all of them
                // (2-3 s of a million-row import). The count only picks the way; both give the
                // same answer.
                let held = sqlx::query_scalar::<_, i64>($crate::store::sql::MEMBER_COUNT)
                .bind(organization_id)
                .fetch_optional(&self.pool)
                .await?
                .unwrap_or(0);
                if usize::try_from(held).is_ok_and(|held| held < indexes.len()) {
                    let asked: std::collections::HashSet<&str> =
                        indexes.iter().map(String::as_str).collect();
                    let held: Vec<String> = sqlx::query_scalar(
                        "SELECT pesel_index FROM members WHERE organization_id = $1 AND pesel_index IS NOT NULL",
                    )
                    .bind(organization_id)
                    .fetch_all(&self.pool)
                    .await?;
                    return Ok(held
                        .into_iter()
                        .filter(|index| asked.contains(index.as_str()))
                        .collect());
                }
                let mut found = Vec::new();
                for chunk in indexes.chunks(500) {
                    let sql = format!(
                        "SELECT pesel_index FROM members WHERE organization_id = $1 AND pesel_index IN ({})",
                        $crate::store::sql::placeholders(2, chunk.len())
                    );
                    let mut q = sqlx::query_as::<_, (String,)>(&sql).bind(organization_id);
                    for index in chunk {
                        q = q.bind(index);
                    }
                    found.extend(q.fetch_all(&self.pool).await?.into_iter().map(|(p,)| p));
                }
                Ok(found)
            }

            async fn totp_secrets_not_under(&self, pattern: &str) -> StoreResult<u64> {
                let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM totp_factors WHERE secret NOT LIKE $1")
                    .bind(pattern)
                    .fetch_one(&self.pool)
                    .await?;
                Ok(n as u64)
            }

            async fn mfa_ticket(&self, token_hash: &str) -> StoreResult<Option<MfaTicketRecord>> {
                Ok(sqlx::query_as::<_, MfaTicketRecord>($crate::store::sql::MFA_TICKET)
                .bind(token_hash)
                .fetch_optional(&self.pool)
                .await?)
            }

            async fn passkeys(&self, account_id: &str) -> StoreResult<Vec<PasskeyRecord>> {
                Ok(sqlx::query_as::<_, PasskeyRecord>($crate::store::sql::PASSKEYS)
                    .bind(account_id)
                    .fetch_all(&self.pool)
                    .await?)
            }

            async fn second_factors(&self, account_id: &str) -> StoreResult<SecondFactors> {
                Ok(sqlx::query_as::<_, SecondFactors>($crate::store::sql::SECOND_FACTORS)
                    .bind(account_id)
                    .fetch_one(&self.pool)
                    .await?)
            }

            async fn oidc_clients(&self, organization_id: &str) -> StoreResult<Vec<OidcClientRecord>> {
                Ok(sqlx::query_as::<_, OidcClientRecord>(&format!(
                    "SELECT {} FROM oidc_clients WHERE organization_id = $1 ORDER BY created_at, id",
                    $crate::store::sql::OIDC_CLIENT_COLUMNS
                ))
                .bind(organization_id)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn oidc_request(&self, id: &str) -> StoreResult<Option<OidcRequestRecord>> {
                Ok(sqlx::query_as::<_, OidcRequestRecord>(&format!(
                    "SELECT {} FROM oidc_requests WHERE id = $1",
                    $crate::store::sql::OIDC_REQUEST_COLUMNS
                ))
                .bind(id)
                .fetch_optional(&self.pool)
                .await?)
            }

            async fn oidc_consent(&self, account_id: &str, client_id: &str) -> StoreResult<Option<String>> {
                Ok(sqlx::query_scalar::<_, String>(
                    "SELECT scope FROM oidc_consents WHERE account_id = $1 AND client_id = $2",
                )
                .bind(account_id)
                .bind(client_id)
                .fetch_optional(&self.pool)
                .await?)
            }

            async fn oidc_code(&self, code_hash: &str) -> StoreResult<Option<OidcCodeRecord>> {
                Ok(sqlx::query_as::<_, OidcCodeRecord>(&format!(
                    "SELECT {} FROM oidc_codes WHERE code_hash = $1",
                    $crate::store::sql::OIDC_CODE_COLUMNS
                ))
                .bind(code_hash)
                .fetch_optional(&self.pool)
                .await?)
            }

            async fn oidc_code_grant(&self, code_hash: &str, now: i64) -> StoreResult<Option<OidcCodeGrant>> {
                $crate::store::redemption::read(&self.grant_reads, code_hash, now).await
            }

            async fn oidc_grant(&self, id: &str) -> StoreResult<Option<OidcGrant>> {
                #[derive(sqlx::FromRow)]
                struct Row {
                    #[sqlx(flatten)]
                    account: AccountRecord,
                    grant_scope: Option<String>,
                    grant_parent_id: Option<String>,
                    auth_time: Option<i64>,
                }
                let row = sqlx::query_as::<_, Row>(
                    "SELECT a.id, a.organization_id, a.username, a.email, a.phone, a.name, \
                     a.surname, a.password_hash, a.role, a.status, a.created_at, a.updated_at, \
                     s.scope AS grant_scope, s.parent_id AS grant_parent_id, \
                     p.created_at AS auth_time \
                     FROM sessions s JOIN accounts a ON a.id = s.account_id \
                     LEFT JOIN sessions p ON p.id = s.parent_id WHERE s.id = $1",
                )
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
                Ok(row.map(|r| OidcGrant {
                    account: r.account,
                    scope: r.grant_scope,
                    parent_id: r.grant_parent_id,
                    auth_time: r.auth_time,
                }))
            }

            async fn redeem_oidc_code(
                &self,
                code_hash: &str,
                session: &NewSession,
                token: Option<&NewRefreshToken>,
            ) -> StoreResult<bool> {
                self.redeem_code(code_hash, session, token).await
            }

            async fn oidc_client(&self, id: &str) -> StoreResult<Option<OidcClientRecord>> {
                Ok(sqlx::query_as::<_, OidcClientRecord>(&format!(
                    "SELECT {} FROM oidc_clients WHERE id = $1",
                    $crate::store::sql::OIDC_CLIENT_COLUMNS
                ))
                .bind(id)
                .fetch_optional(&self.pool)
                .await?)
            }
        }

        #[async_trait::async_trait]
        impl $crate::store::Tx for $tx {
            async fn commit(self: Box<Self>) -> StoreResult<()> {
                let this = *self;
                // On its own task, like BEGIN (`begin_uncut`): a request dropped during COMMIT
                // would leave sqlx to send a ROLLBACK after it ("there is no transaction in
                // progress" in PostgreSQL's notices under wrk); started, a commit finishes.
                let committed = tokio::spawn(this.tx.commit()).await;
                committed.map_err(|e| {
                    StoreError::Database(sqlx::Error::Protocol(format!("committing: {e}")))
                })??;
                if this.bulk_inserted >= <$store>::BULK_INSERT {
                    // Failures only cost speed, so they are logged, not returned: the import
                    // has committed. One transaction, so `SET LOCAL` applies to the others.
                    let tidy = async {
                        let mut tidy = this.pool.begin().await?;
                        for statement in <$store>::AFTER_BULK_INSERT {
                            sqlx::query(statement).execute(&mut *tidy).await?;
                        }
                        tidy.commit().await
                    };
                    if let Err(e) = tidy.await {
                        tracing::warn!(error = %e, "tidying up after an import failed");
                    }
                }
                Ok(())
            }

            async fn insert_organization(&mut self, org: &OrganizationRecord) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO organizations (id, name, state, status, created_at) VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(&org.id)
                .bind(&org.name)
                .bind(org.state)
                .bind(org.status)
                .bind(org.created_at)
                .execute(&mut *self.tx)
                .await?;
                Ok(())
            }

            async fn set_organization_status(&mut self, id: &str, status: $crate::domain::OrganizationStatus) -> StoreResult<()> {
                sqlx::query("UPDATE organizations SET status = $1 WHERE id = $2")
                    .bind(status)
                    .bind(id)
                    .execute(&mut *self.tx)
                    .await?;
                Ok(())
            }

            async fn claim_first_account(&mut self, organization_id: &str) -> StoreResult<bool> {
                // The row lock (PostgreSQL) or the write lock (SQLite) lets exactly one
                // transaction flip the flag; one that rolls back flips it back.
                let flipped = sqlx::query(
                    "UPDATE organizations SET owner_bootstrapped = 1 \
                     WHERE id = $1 AND owner_bootstrapped = 0",
                )
                .bind(organization_id)
                .execute(&mut *self.tx)
                .await?;
                Ok(flipped.rows_affected() == 1)
            }

            async fn insert_account(&mut self, new: &NewAccount) -> StoreResult<AccountRecord> {
                sqlx::query_as::<_, AccountRecord>(concat!(
                    "INSERT INTO accounts (id, organization_id, username, username_norm, email, email_norm, \
                     phone, phone_norm, name, surname, password_hash, role, status, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14) RETURNING ",
                    account_columns!()
                ))
                .bind(&new.id)
                .bind(&new.organization_id)
                .bind(&new.username)
                .bind(&new.username_norm)
                .bind(&new.email)
                .bind(&new.email_norm)
                .bind(&new.phone)
                .bind(&new.phone_norm)
                .bind(&new.name)
                .bind(&new.surname)
                .bind(&new.password_hash)
                .bind(new.role)
                .bind(new.status)
                .bind(new.now)
                .fetch_one(&mut *self.tx)
                .await
                .map_err(map_unique)
            }

            async fn account(&mut self, id: &str) -> StoreResult<Option<AccountRecord>> {
                let sql = format!(
                    concat!("SELECT ", account_columns!(), " FROM accounts WHERE id = $1{}"),
                    <$tx>::FOR_UPDATE
                );
                Ok(sqlx::query_as::<_, AccountRecord>(&sql)
                    .bind(id)
                    .fetch_optional(&mut *self.tx)
                    .await?)
            }

            async fn update_account(&mut self, id: &str, update: &AccountUpdate, now: i64) -> StoreResult<Option<AccountRecord>> {
                Ok(sqlx::query_as::<_, AccountRecord>(concat!(
                    "UPDATE accounts SET password_hash = COALESCE($1, password_hash), \
                     name = COALESCE($2, name), surname = COALESCE($3, surname), \
                     role = COALESCE($4, role), status = COALESCE($5, status), updated_at = $6, \
                     email = COALESCE($8, email), email_norm = COALESCE($9, email_norm) \
                     WHERE id = $7 RETURNING ",
                    account_columns!()
                ))
                .bind(&update.password_hash)
                .bind(&update.name)
                .bind(&update.surname)
                .bind(update.role)
                .bind(update.status)
                .bind(now)
                .bind(id)
                .bind(update.email.as_ref().map(|(email, _)| email))
                .bind(update.email.as_ref().map(|(_, norm)| norm))
                .fetch_optional(&mut *self.tx)
                .await
                .map_err(map_unique)?)
            }

            async fn insert_session(&mut self, session: &NewSession, token: &NewRefreshToken) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO sessions (id, account_id, created_at, last_used_at, expires_at, \
                     user_agent, ip, amr, client_id, scope, parent_id) \
                     VALUES ($1, $2, $3, $3, $4, $5, $6, $7, $8, $9, $10)",
                )
                .bind(&session.id)
                .bind(&session.account_id)
                .bind(session.created_at)
                .bind(session.expires_at)
                .bind(&session.user_agent)
                .bind(&session.ip)
                .bind(&session.amr)
                .bind(&session.client_id)
                .bind(&session.scope)
                .bind(&session.parent_id)
                .execute(&mut *self.tx)
                .await?;
                sqlx::query(
                    "INSERT INTO refresh_tokens (token_hash, session_id, created_at, expires_at) \
                     VALUES ($1, $2, $3, $4)",
                )
                .bind(&token.token_hash)
                .bind(&session.id)
                .bind(session.created_at)
                .bind(token.expires_at)
                .execute(&mut *self.tx)
                .await?;
                Ok(())
            }

            async fn unrevoked_sessions(&mut self, account_id: &str) -> StoreResult<Vec<SessionRecord>> {
                Ok(sqlx::query_as::<_, SessionRecord>(concat!(
                    "SELECT ", session_columns!(), " FROM sessions \
                     WHERE account_id = $1 AND revoked_at IS NULL AND client_id IS NULL \
                     ORDER BY created_at DESC, id DESC"
                ))
                .bind(account_id)
                .fetch_all(&mut *self.tx)
                .await?)
            }

            async fn revoke_session(
                &mut self,
                account_id: &str,
                session_id: &str,
                reason: $crate::domain::RevokeReason,
                now: i64,
            ) -> StoreResult<bool> {
                let done = sqlx::query(
                    "UPDATE sessions SET revoked_at = $1, revoke_reason = $2 \
                     WHERE id = $3 AND account_id = $4 AND revoked_at IS NULL",
                )
                .bind(now)
                .bind(reason)
                .bind(session_id)
                .bind(account_id)
                .execute(&mut *self.tx)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn revoke_sessions(
                &mut self,
                account_id: &str,
                keep: Option<&str>,
                reason: $crate::domain::RevokeReason,
                now: i64,
            ) -> StoreResult<u64> {
                let done = sqlx::query(
                    "UPDATE sessions SET revoked_at = $1, revoke_reason = $2 \
                     WHERE account_id = $3 AND revoked_at IS NULL AND id <> $4",
                )
                .bind(now)
                .bind(reason)
                .bind(account_id)
                .bind(keep.unwrap_or(""))
                .execute(&mut *self.tx)
                .await?;
                Ok(done.rows_affected())
            }

            async fn insert_link_token(
                &mut self,
                kind: LinkKind,
                account_id: &str,
                token_hash: &str,
                now: i64,
                expires_at: i64,
            ) -> StoreResult<()> {
                sqlx::query(&format!(
                    "INSERT INTO {} (token_hash, account_id, created_at, expires_at) \
                     VALUES ($1, $2, $3, $4)",
                    kind.table()
                ))
                .bind(token_hash)
                .bind(account_id)
                .bind(now)
                .bind(expires_at)
                .execute(&mut *self.tx)
                .await?;
                Ok(())
            }

            async fn link_token(&mut self, kind: LinkKind, token_hash: &str) -> StoreResult<Option<LinkTokenRecord>> {
                Ok(sqlx::query_as::<_, LinkTokenRecord>(&format!(
                    "SELECT account_id, expires_at, used_at FROM {} WHERE token_hash = $1{}",
                    kind.table(),
                    <$tx>::FOR_UPDATE
                ))
                .bind(token_hash)
                .fetch_optional(&mut *self.tx)
                .await?)
            }

            async fn spend_link_token(&mut self, kind: LinkKind, token_hash: &str, now: i64) -> StoreResult<bool> {
                let done = sqlx::query(&format!(
                    "UPDATE {} SET used_at = $1 WHERE token_hash = $2 AND used_at IS NULL",
                    kind.table()
                ))
                .bind(now)
                .bind(token_hash)
                .execute(&mut *self.tx)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn spend_link_tokens_of(&mut self, kind: LinkKind, account_id: &str, now: i64) -> StoreResult<u64> {
                let done = sqlx::query(&format!(
                    "UPDATE {} SET used_at = $1 WHERE account_id = $2 AND used_at IS NULL",
                    kind.table()
                ))
                .bind(now)
                .bind(account_id)
                .execute(&mut *self.tx)
                .await?;
                Ok(done.rows_affected())
            }

            async fn record_audit(&mut self, event: &AuditEvent, now: i64) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO audit_events (id, organization_id, actor_id, action, target, ip, \
                     created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(uuid::Uuid::now_v7().to_string())
                .bind(&event.organization_id)
                .bind(&event.actor_id)
                .bind(event.action)
                .bind(&event.target)
                .bind(&event.ip)
                .bind(now)
                .execute(&mut *self.tx)
                .await?;
                Ok(())
            }

            async fn insert_outbox(&mut self, email: &OutboxRecord) -> StoreResult<()> {
                sqlx::query(concat!(
                    "INSERT INTO outbox (", outbox_columns!(), ") \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
                ))
                .bind(&email.id)
                .bind(&email.recipient)
                .bind(&email.subject)
                .bind(&email.body)
                .bind(email.created_at)
                .bind(email.sent_at)
                .bind(email.expires_at)
                .bind(email.attempts)
                .bind(email.next_attempt_at)
                .bind(&email.last_error)
                .bind(email.failed_at)
                .execute(&mut *self.tx)
                .await?;
                Ok(())
            }

            async fn claim_outbox(&mut self, now: i64, until: i64, limit: i64) -> StoreResult<Vec<OutboxRecord>> {
                // The outer `next_attempt_at <= $1` is checked again on the row as it stands
                // once its lock is had (PostgreSQL, read committed), so a node that waited for
                // another's claim skips what that one took; SQLite has one writer anyway.
                Ok(sqlx::query_as::<_, OutboxRecord>(concat!(
                    "UPDATE outbox SET next_attempt_at = $2 WHERE next_attempt_at <= $1 AND id IN \
                     (SELECT id FROM outbox WHERE next_attempt_at <= $1 ORDER BY next_attempt_at LIMIT $3) \
                     RETURNING ", outbox_columns!()
                ))
                .bind(now)
                .bind(until)
                .bind(limit)
                .fetch_all(&mut *self.tx)
                .await?)
            }

            async fn settle_outbox(&mut self, claimed: &OutboxRecord, delivery: &$crate::store::Delivery, now: i64) -> StoreResult<()> {
                let query = match delivery {
                    $crate::store::Delivery::Sent => sqlx::query(
                        "UPDATE outbox SET sent_at = $2, next_attempt_at = NULL, last_error = NULL, \
                         failed_at = NULL, body = '' WHERE id = $1",
                    )
                    .bind(&claimed.id)
                    .bind(now),
                    $crate::store::Delivery::Failed { error, next } => sqlx::query(
                        "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = $2, last_error = $3, \
                         failed_at = CASE WHEN $2 IS NULL THEN $4 ELSE NULL END \
                         WHERE id = $1 AND next_attempt_at = $5",
                    )
                    .bind(&claimed.id)
                    .bind(*next)
                    .bind(error.as_str())
                    .bind(now)
                    .bind(claimed.next_attempt_at),
                };
                query.execute(&mut *self.tx).await?;
                Ok(())
            }

            async fn insert_signing_key(&mut self, key: &SigningKeyRecord) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO signing_keys (kid, alg, private_key, public_key, created_at) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(&key.kid)
                .bind(&key.alg)
                .bind(&key.private_key)
                .bind(&key.public_key)
                .bind(key.created_at)
                .execute(&mut *self.tx)
                .await?;
                Ok(())
            }

            async fn delete_signing_key(&mut self, kid: &str) -> StoreResult<bool> {
                let done = sqlx::query("DELETE FROM signing_keys WHERE kid = $1")
                    .bind(kid)
                    .execute(&mut *self.tx)
                    .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn secret_or_insert(&mut self, name: &str, value: &str, now: i64) -> StoreResult<String> {
                sqlx::query(
                    "INSERT INTO secrets (name, value, created_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (name) DO NOTHING",
                )
                .bind(name)
                .bind(value)
                .bind(now)
                .execute(&mut *self.tx)
                .await?;
                let (stored,): (String,) = sqlx::query_as("SELECT value FROM secrets WHERE name = $1")
                    .bind(name)
                    .fetch_one(&mut *self.tx)
                    .await?;
                Ok(stored)
            }

            async fn clear_pesels(&mut self, limit: i64) -> StoreResult<Vec<(String, String, String)>> {
                Ok(sqlx::query_as(
                    "SELECT id, organization_id, pesel FROM members WHERE pesel_index IS NULL LIMIT $1",
                )
                .bind(limit)
                .fetch_all(&mut *self.tx)
                .await?)
            }

            async fn members_not_under(&mut self, pattern: &str, after: &str, limit: i64) -> StoreResult<Vec<(String, String, String)>> {
                Ok(sqlx::query_as(
                    "SELECT id, organization_id, pesel FROM members \
                     WHERE id > $2 AND pesel NOT LIKE $1 ORDER BY id LIMIT $3",
                )
                .bind(pattern)
                .bind(after)
                .bind(limit)
                .fetch_all(&mut *self.tx)
                .await?)
            }

            async fn member_texts(&mut self, after: &str, limit: i64) -> StoreResult<Vec<$crate::store::MemberTexts>> {
                Ok(sqlx::query_as::<_, $crate::store::MemberTexts>(
                    "SELECT id, imie, nazwisko, miejscowosc, wojewodztwo, email, search, nazwisko_sort FROM members \
                     WHERE id > $1 ORDER BY id LIMIT $2",
                )
                .bind(after)
                .bind(limit)
                .fetch_all(&mut *self.tx)
                .await?)
            }

            async fn set_member_derived(&mut self, id: &str, search: &str, sort_keys: [&str; 4]) -> StoreResult<()> {
                // Search is set only when it changed: its index is rewritten on every update of it.
                sqlx::query(&format!(
                    "UPDATE members SET imie_sort = $2, nazwisko_sort = $3, miejscowosc_sort = $4, \
                     wojewodztwo_sort = $5{} WHERE id = $1",
                    <$tx>::replace_on_rename(3)
                ))
                .bind(id)
                .bind(sort_keys[0])
                .bind(sort_keys[1])
                .bind(sort_keys[2])
                .bind(sort_keys[3])
                .execute(&mut *self.tx)
                .await?;
                sqlx::query("UPDATE members SET search = $2 WHERE id = $1 AND search <> $2")
                    .bind(id)
                    .bind(search)
                    .execute(&mut *self.tx)
                    .await?;
                Ok(())
            }

            async fn place_unplaced_members(&mut self) -> StoreResult<u64> {
                self.place_unplaced().await
            }

            async fn seal_pesel(&mut self, id: &str, stored: &str, index: &str) -> StoreResult<()> {
                sqlx::query("UPDATE members SET pesel = $2, pesel_index = $3 WHERE id = $1")
                    .bind(id)
                    .bind(stored)
                    .bind(index)
                    .execute(&mut *self.tx)
                    .await
                    .map_err(map_unique)?;
                Ok(())
            }

            async fn secret(&mut self, name: &str) -> StoreResult<Option<String>> {
                Ok(sqlx::query_scalar("SELECT value FROM secrets WHERE name = $1")
                    .bind(name)
                    .fetch_optional(&mut *self.tx)
                    .await?)
            }

            async fn set_secret(&mut self, name: &str, value: &str, now: i64) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO secrets (name, value, created_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                )
                .bind(name)
                .bind(value)
                .bind(now)
                .execute(&mut *self.tx)
                .await?;
                Ok(())
            }

            async fn delete_ended_sessions(&mut self, cut: i64, sessions: i64, tokens: i64) -> StoreResult<(u64, u64)> {
                // A session ended when it expired or when it was revoked.
                let ended: Vec<(String,)> = sqlx::query_as(
                    "SELECT id FROM sessions WHERE expires_at < $1 OR revoked_at < $1 LIMIT $2",
                )
                .bind(cut)
                .bind(sessions)
                .fetch_all(&mut *self.tx)
                .await?;
                if ended.is_empty() {
                    return Ok((0, 0));
                }
                // Up to `tokens` of their tokens, each chain followed from its first token.
                let list = $crate::store::sql::placeholders(2, ended.len());
                let statement = format!(
                    "{}SELECT token_hash, next FROM chain LIMIT $1",
                    $crate::store::sql::token_chains(&format!(
                        "SELECT token_hash, replaced_by FROM refresh_tokens \
                         WHERE session_id IN ({list}) AND replaces IS NULL"
                    ))
                );
                let mut walk = sqlx::query_as::<_, (String, Option<String>)>(&statement).bind(tokens);
                for (id,) in &ended {
                    walk = walk.bind(id);
                }
                let walked = walk.fetch_all(&mut *self.tx).await?;
                // A chain cut short: the first token left becomes its chain's first, or the
                // rest of the chain could no longer be found.
                let gone: std::collections::HashSet<&str> =
                    walked.iter().map(|(hash, _)| hash.as_str()).collect();
                let heirs: Vec<&str> = walked
                    .iter()
                    .filter_map(|(_, next)| next.as_deref())
                    .filter(|next| !gone.contains(next))
                    .collect();
                if !heirs.is_empty() {
                    let statement = format!(
                        "UPDATE refresh_tokens SET replaces = NULL WHERE token_hash IN ({})",
                        $crate::store::sql::placeholders(1, heirs.len())
                    );
                    let mut heir = sqlx::query(&statement);
                    for hash in &heirs {
                        heir = heir.bind(*hash);
                    }
                    heir.execute(&mut *self.tx).await?;
                }
                let mut tokens_deleted = 0;
                if !walked.is_empty() {
                    let statement = format!(
                        "DELETE FROM refresh_tokens WHERE token_hash IN ({})",
                        $crate::store::sql::placeholders(1, walked.len())
                    );
                    let mut delete = sqlx::query(&statement);
                    for (hash, _) in &walked {
                        delete = delete.bind(hash);
                    }
                    tokens_deleted = delete.execute(&mut *self.tx).await?.rows_affected();
                }
                // A session goes once no chain of it is left.
                let list = $crate::store::sql::placeholders(1, ended.len());
                let statement = format!(
                    "DELETE FROM sessions WHERE id IN ({list}) AND NOT EXISTS \
                     (SELECT 1 FROM refresh_tokens r WHERE r.session_id = sessions.id \
                     AND r.replaces IS NULL)"
                );
                let mut delete = sqlx::query(&statement);
                for (id,) in &ended {
                    delete = delete.bind(id);
                }
                let sessions_deleted = delete.execute(&mut *self.tx).await?.rows_affected();
                Ok((tokens_deleted, sessions_deleted))
            }

            async fn delete_litter(&mut self, litter: $crate::store::Litter, cut: i64, limit: i64) -> StoreResult<u64> {
                let done = sqlx::query(&$crate::store::sql::delete_litter(litter))
                    .bind(cut)
                    .bind(limit)
                    .execute(&mut *self.tx)
                    .await?;
                Ok(done.rows_affected())
            }

            async fn take_lease(&mut self, name: &str, holder: &str, now: i64, until: i64) -> StoreResult<bool> {
                let done = sqlx::query(
                    "INSERT INTO leases (name, holder, held_until) VALUES ($1, $2, $3) \
                     ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, \
                     held_until = excluded.held_until \
                     WHERE leases.held_until < $4 OR leases.holder = excluded.holder",
                )
                .bind(name)
                .bind(holder)
                .bind(until)
                .bind(now)
                .execute(&mut *self.tx)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn release_lease(&mut self, name: &str, holder: &str) -> StoreResult<()> {
                sqlx::query("UPDATE leases SET held_until = 0 WHERE name = $1 AND holder = $2")
                    .bind(name)
                    .bind(holder)
                    .execute(&mut *self.tx)
                    .await?;
                Ok(())
            }

            async fn insert_member(&mut self, m: &MemberRecord) -> StoreResult<()> {
                self.insert_members(std::slice::from_ref(m)).await
            }

            async fn insert_members(&mut self, members: &[MemberRecord]) -> StoreResult<()> {
                let rebuild = self.bulk_prepare(members).await?;
                let order = <$tx>::insert_order(members);
                self.insert_rows(members, &order, &rebuild).await?;
                self.bulk_finish(rebuild, members).await?;
                self.bulk_inserted += members.len();
                Ok(())
            }

            async fn member(&mut self, organization_id: &str, id: &str) -> StoreResult<Option<MemberRecord>> {
                let sql = format!(
                    concat!("SELECT ", member_columns!(), " FROM members WHERE organization_id = $1 AND id = $2{}"),
                    <$tx>::FOR_UPDATE
                );
                Ok(sqlx::query_as::<_, MemberRecord>(&sql)
                    .bind(organization_id)
                    .bind(id)
                    .fetch_optional(&mut *self.tx)
                    .await?)
            }

            async fn update_member(&mut self, m: &MemberRecord, expected: i64) -> StoreResult<VersionedUpdate> {
                let sql = format!(
                    "UPDATE members SET imie = $1, nazwisko = $2, wyksztalcenie = $3, pesel = $4, \
                     wojewodztwo = $5, miejscowosc = $6, ulica = $7, nrdomulokalu = $8, \
                     kodpocztowy = $9, email = $10, tel = $11, search = $12, updated_at = $13, \
                     version = version + 1, pesel_index = $17, imie_sort = $18, nazwisko_sort = $19, \
                     miejscowosc_sort = $20, wojewodztwo_sort = $21{} \
                     WHERE organization_id = $14 AND id = $15 AND version = $16 RETURNING {}",
                    <$tx>::replace_on_rename(19),
                    member_columns!()
                );
                let updated = sqlx::query_as::<_, MemberRecord>(&sql)
                .bind(&m.imie)
                .bind(&m.nazwisko)
                .bind(&m.wyksztalcenie)
                .bind(&m.pesel)
                .bind(&m.wojewodztwo)
                .bind(&m.miejscowosc)
                .bind(&m.ulica)
                .bind(&m.nrdomulokalu)
                .bind(&m.kodpocztowy)
                .bind(&m.email)
                .bind(&m.tel)
                .bind(&m.search)
                .bind(m.updated_at)
                .bind(&m.organization_id)
                .bind(&m.id)
                .bind(expected)
                .bind(&m.pesel_index)
                .bind(&m.imie_sort)
                .bind(&m.nazwisko_sort)
                .bind(&m.miejscowosc_sort)
                .bind(&m.wojewodztwo_sort)
                .fetch_optional(&mut *self.tx)
                .await
                .map_err(map_unique)?;
                if let Some(member) = updated {
                    self.member_updated(&m.organization_id).await?;
                    return Ok(VersionedUpdate::Updated(Box::new(member)));
                }
                let current: Option<(i64,)> =
                    sqlx::query_as("SELECT version FROM members WHERE organization_id = $1 AND id = $2")
                        .bind(&m.organization_id)
                        .bind(&m.id)
                        .fetch_optional(&mut *self.tx)
                        .await?;
                Ok(match current {
                    Some((current,)) => VersionedUpdate::Conflict { current },
                    None => VersionedUpdate::NotFound,
                })
            }

            async fn delete_member(&mut self, organization_id: &str, id: &str) -> StoreResult<bool> {
                let done = sqlx::query("DELETE FROM members WHERE organization_id = $1 AND id = $2")
                    .bind(organization_id)
                    .bind(id)
                    .execute(&mut *self.tx)
                    .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn owners(&mut self, organization_id: &str) -> StoreResult<Vec<String>> {
                let sql = format!(
                    "SELECT id FROM accounts WHERE organization_id = $1 AND role = $2 ORDER BY id{}",
                    Self::FOR_UPDATE
                );
                let rows: Vec<(String,)> = sqlx::query_as(&sql)
                    .bind(organization_id)
                    .bind($crate::domain::Role::Owner)
                    .fetch_all(&mut *self.tx)
                    .await?;
                Ok(rows.into_iter().map(|(id,)| id).collect())
            }

            async fn delete_account(&mut self, id: &str) -> StoreResult<bool> {
                sqlx::query(
                    "DELETE FROM outbox WHERE recipient IN (SELECT email FROM accounts WHERE id = $1)",
                )
                .bind(id)
                .execute(&mut *self.tx)
                .await?;
                // Its sessions go with it (their foreign key cascades); their refresh tokens,
                // which no foreign key ties to them (migration 0024), go first.
                sqlx::query(&format!(
                    "{}DELETE FROM refresh_tokens WHERE token_hash IN (SELECT token_hash FROM chain)",
                    $crate::store::sql::token_chains(
                        "SELECT t.token_hash, t.replaced_by FROM sessions s \
                         JOIN refresh_tokens t ON t.session_id = s.id \
                         WHERE s.account_id = $1 AND t.replaces IS NULL"
                    )
                ))
                .bind(id)
                .execute(&mut *self.tx)
                .await?;
                let done = sqlx::query("DELETE FROM accounts WHERE id = $1")
                    .bind(id)
                    .execute(&mut *self.tx)
                    .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn totp_factor(&mut self, account_id: &str) -> StoreResult<Option<TotpRecord>> {
                Ok(sqlx::query_as::<_, TotpRecord>(&format!(
                    "{}{}",
                    $crate::store::sql::TOTP_FACTOR,
                    Self::FOR_UPDATE
                ))
                .bind(account_id)
                .fetch_optional(&mut *self.tx)
                .await?)
            }

            async fn put_totp(&mut self, account_id: &str, secret: &str, now: i64) -> StoreResult<bool> {
                sqlx::query("DELETE FROM totp_factors WHERE account_id = $1 AND confirmed_at IS NULL")
                    .bind(account_id)
                    .execute(&mut *self.tx)
                    .await?;
                let done = sqlx::query(
                    "INSERT INTO totp_factors (account_id, secret, created_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (account_id) DO NOTHING",
                )
                .bind(account_id)
                .bind(secret)
                .bind(now)
                .execute(&mut *self.tx)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn accept_totp_step(
                &mut self,
                account_id: &str,
                step: i64,
                confirm: bool,
                now: i64,
            ) -> StoreResult<bool> {
                let done = if confirm {
                    sqlx::query(
                        "UPDATE totp_factors SET last_step = $2, confirmed_at = $3 \
                         WHERE account_id = $1 AND confirmed_at IS NULL AND last_step < $2",
                    )
                    .bind(account_id)
                    .bind(step)
                    .bind(now)
                    .execute(&mut *self.tx)
                    .await?
                } else {
                    sqlx::query(
                        "UPDATE totp_factors SET last_step = $2 \
                         WHERE account_id = $1 AND confirmed_at IS NOT NULL AND last_step < $2",
                    )
                    .bind(account_id)
                    .bind(step)
                    .execute(&mut *self.tx)
                    .await?
                };
                Ok(done.rows_affected() == 1)
            }

            async fn delete_totp(&mut self, account_id: &str) -> StoreResult<u64> {
                let factor = sqlx::query("DELETE FROM totp_factors WHERE account_id = $1")
                    .bind(account_id)
                    .execute(&mut *self.tx)
                    .await?;
                Ok(factor.rows_affected())
            }

            async fn passkeys(&mut self, account_id: &str) -> StoreResult<Vec<PasskeyRecord>> {
                Ok(sqlx::query_as::<_, PasskeyRecord>($crate::store::sql::PASSKEYS)
                    .bind(account_id)
                    .fetch_all(&mut *self.tx)
                    .await?)
            }

            async fn second_factors(&mut self, account_id: &str) -> StoreResult<SecondFactors> {
                Ok(sqlx::query_as::<_, SecondFactors>($crate::store::sql::SECOND_FACTORS)
                    .bind(account_id)
                    .fetch_one(&mut *self.tx)
                    .await?)
            }

            async fn passkey_by_credential(&mut self, credential_id: &str) -> StoreResult<Option<PasskeyRecord>> {
                Ok(sqlx::query_as::<_, PasskeyRecord>(&format!(
                    "SELECT id, account_id, credential_id, name, credential, sign_count, created_at, last_used_at \
                     FROM passkeys WHERE credential_id = $1{}",
                    Self::FOR_UPDATE
                ))
                .bind(credential_id)
                .fetch_optional(&mut *self.tx)
                .await?)
            }

            async fn insert_passkey(&mut self, passkey: &PasskeyRecord) -> StoreResult<bool> {
                let done = sqlx::query(
                    "INSERT INTO passkeys (id, account_id, credential_id, name, credential, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (credential_id) DO NOTHING",
                )
                .bind(&passkey.id)
                .bind(&passkey.account_id)
                .bind(&passkey.credential_id)
                .bind(&passkey.name)
                .bind(&passkey.credential)
                .bind(passkey.created_at)
                .execute(&mut *self.tx)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn passkey_used(&mut self, id: &str, credential: &str, sign_count: i64, now: i64) -> StoreResult<()> {
                sqlx::query("UPDATE passkeys SET credential = $2, sign_count = $3, last_used_at = $4 WHERE id = $1")
                    .bind(id)
                    .bind(credential)
                    .bind(sign_count)
                    .bind(now)
                    .execute(&mut *self.tx)
                    .await?;
                Ok(())
            }

            async fn delete_passkey(&mut self, account_id: &str, id: &str) -> StoreResult<bool> {
                let done = sqlx::query("DELETE FROM passkeys WHERE account_id = $1 AND id = $2")
                    .bind(account_id)
                    .bind(id)
                    .execute(&mut *self.tx)
                    .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn insert_oidc_client(&mut self, client: &OidcClientRecord) -> StoreResult<()> {
                sqlx::query(&format!(
                    "INSERT INTO oidc_clients ({}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                    $crate::store::sql::OIDC_CLIENT_COLUMNS
                ))
                .bind(&client.id)
                .bind(&client.organization_id)
                .bind(&client.name)
                .bind(&client.secret_hash)
                .bind(&client.redirect_uris)
                .bind(&client.post_logout_redirect_uris)
                .bind(client.first_party)
                .bind(&client.id_token_alg)
                .bind(client.created_at)
                .execute(&mut *self.tx)
                .await?;
                Ok(())
            }

            async fn insert_oidc_request(&mut self, r: &OidcRequestRecord) -> StoreResult<()> {
                sqlx::query(&format!(
                    "INSERT INTO oidc_requests ({}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                    $crate::store::sql::OIDC_REQUEST_COLUMNS
                ))
                .bind(&r.id)
                .bind(&r.client_id)
                .bind(&r.redirect_uri)
                .bind(&r.scope)
                .bind(&r.state)
                .bind(&r.nonce)
                .bind(&r.code_challenge)
                .bind(r.login_after)
                .bind(r.consent_asked)
                .bind(r.created_at)
                .bind(r.expires_at)
                .execute(&mut *self.tx)
                .await?;
                Ok(())
            }

            async fn delete_oidc_request(&mut self, id: &str) -> StoreResult<bool> {
                let done = sqlx::query("DELETE FROM oidc_requests WHERE id = $1")
                    .bind(id)
                    .execute(&mut *self.tx)
                    .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn save_oidc_consent(&mut self, account_id: &str, client_id: &str, scope: &str, now: i64) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO oidc_consents (account_id, client_id, scope, created_at) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (account_id, client_id) \
                     DO UPDATE SET scope = excluded.scope, created_at = excluded.created_at",
                )
                .bind(account_id)
                .bind(client_id)
                .bind(scope)
                .bind(now)
                .execute(&mut *self.tx)
                .await?;
                Ok(())
            }

            async fn insert_oidc_code(&mut self, c: &OidcCodeRecord) -> StoreResult<()> {
                sqlx::query(&format!(
                    "INSERT INTO oidc_codes ({}) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
                    $crate::store::sql::OIDC_CODE_COLUMNS
                ))
                .bind(&c.code_hash)
                .bind(&c.client_id)
                .bind(&c.account_id)
                .bind(&c.sso_session_id)
                .bind(&c.redirect_uri)
                .bind(&c.scope)
                .bind(&c.nonce)
                .bind(&c.code_challenge)
                .bind(c.auth_time)
                .bind(&c.amr)
                .bind(c.created_at)
                .bind(c.expires_at)
                .bind(c.used_at)
                .bind(&c.grant_session_id)
                .execute(&mut *self.tx)
                .await?;
                Ok(())
            }

            async fn revoke_client_sessions(
                &mut self,
                client_id: &str,
                reason: $crate::domain::RevokeReason,
                now: i64,
            ) -> StoreResult<u64> {
                let done = sqlx::query(
                    "UPDATE sessions SET revoked_at = $1, revoke_reason = $2 \
                     WHERE client_id = $3 AND revoked_at IS NULL",
                )
                .bind(now)
                .bind(reason)
                .bind(client_id)
                .execute(&mut *self.tx)
                .await?;
                Ok(done.rows_affected())
            }

            async fn revoke_child_sessions(
                &mut self,
                parent_id: &str,
                reason: $crate::domain::RevokeReason,
                now: i64,
            ) -> StoreResult<u64> {
                let done = sqlx::query(
                    "UPDATE sessions SET revoked_at = $1, revoke_reason = $2 \
                     WHERE parent_id = $3 AND revoked_at IS NULL",
                )
                .bind(now)
                .bind(reason)
                .bind(parent_id)
                .execute(&mut *self.tx)
                .await?;
                Ok(done.rows_affected())
            }

            async fn delete_oidc_client(&mut self, organization_id: &str, id: &str) -> StoreResult<bool> {
                let done = sqlx::query("DELETE FROM oidc_clients WHERE organization_id = $1 AND id = $2")
                    .bind(organization_id)
                    .bind(id)
                    .execute(&mut *self.tx)
                    .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn insert_email_change(
                &mut self,
                token_hash: &str,
                account_id: &str,
                new_email: &str,
                now: i64,
                expires_at: i64,
            ) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO email_changes (token_hash, account_id, new_email, created_at, expires_at) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(token_hash)
                .bind(account_id)
                .bind(new_email)
                .bind(now)
                .bind(expires_at)
                .execute(&mut *self.tx)
                .await?;
                Ok(())
            }

            async fn email_change_address(&mut self, token_hash: &str) -> StoreResult<Option<String>> {
                Ok(sqlx::query_scalar("SELECT new_email FROM email_changes WHERE token_hash = $1")
                    .bind(token_hash)
                    .fetch_optional(&mut *self.tx)
                    .await?)
            }

            async fn delete_passkeys(&mut self, account_id: &str) -> StoreResult<u64> {
                let done = sqlx::query("DELETE FROM passkeys WHERE account_id = $1")
                    .bind(account_id)
                    .execute(&mut *self.tx)
                    .await?;
                Ok(done.rows_affected())
            }

            async fn insert_ceremony(&mut self, ceremony: &CeremonyRecord) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO webauthn_ceremonies \
                     (challenge_hash, kind, account_id, ticket_hash, state, created_at, expires_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(&ceremony.challenge_hash)
                .bind(&ceremony.kind)
                .bind(&ceremony.account_id)
                .bind(&ceremony.ticket_hash)
                .bind(&ceremony.state)
                .bind(ceremony.created_at)
                .bind(ceremony.expires_at)
                .execute(&mut *self.tx)
                .await?;
                Ok(())
            }

            async fn take_ceremony(&mut self, challenge_hash: &str, kind: &str) -> StoreResult<Option<CeremonyRecord>> {
                Ok(sqlx::query_as::<_, CeremonyRecord>(
                    "DELETE FROM webauthn_ceremonies WHERE challenge_hash = $1 AND kind = $2 \
                     RETURNING challenge_hash, kind, account_id, ticket_hash, state, created_at, expires_at",
                )
                .bind(challenge_hash)
                .bind(kind)
                .fetch_optional(&mut *self.tx)
                .await?)
            }

            async fn replace_recovery_codes(&mut self, account_id: &str, hashes: &[String]) -> StoreResult<()> {
                sqlx::query("DELETE FROM recovery_codes WHERE account_id = $1")
                    .bind(account_id)
                    .execute(&mut *self.tx)
                    .await?;
                for hash in hashes {
                    sqlx::query("INSERT INTO recovery_codes (account_id, code_hash) VALUES ($1, $2)")
                        .bind(account_id)
                        .bind(hash)
                        .execute(&mut *self.tx)
                        .await?;
                }
                Ok(())
            }

            async fn totp_secrets_not_under(
                &mut self,
                pattern: &str,
                after: &str,
                limit: i64,
            ) -> StoreResult<Vec<(String, String)>> {
                Ok(sqlx::query_as(
                    "SELECT account_id, secret FROM totp_factors \
                     WHERE secret NOT LIKE $1 AND account_id > $2 ORDER BY account_id LIMIT $3",
                )
                .bind(pattern)
                .bind(after)
                .bind(limit)
                .fetch_all(&mut *self.tx)
                .await?)
            }

            async fn insert_mfa_ticket(
                &mut self,
                token_hash: &str,
                account_id: &str,
                now: i64,
                expires_at: i64,
            ) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO mfa_tickets (token_hash, account_id, created_at, expires_at) \
                     VALUES ($1, $2, $3, $4)",
                )
                .bind(token_hash)
                .bind(account_id)
                .bind(now)
                .bind(expires_at)
                .execute(&mut *self.tx)
                .await?;
                Ok(())
            }

            async fn mfa_ticket(&mut self, token_hash: &str) -> StoreResult<Option<MfaTicketRecord>> {
                Ok(sqlx::query_as::<_, MfaTicketRecord>(&format!(
                    "{}{}",
                    $crate::store::sql::MFA_TICKET,
                    Self::FOR_UPDATE
                ))
                .bind(token_hash)
                .fetch_optional(&mut *self.tx)
                .await?)
            }

            async fn mfa_ticket_failed(&mut self, token_hash: &str) -> StoreResult<()> {
                sqlx::query("UPDATE mfa_tickets SET failures = failures + 1 WHERE token_hash = $1")
                    .bind(token_hash)
                    .execute(&mut *self.tx)
                    .await?;
                Ok(())
            }

            async fn spend_mfa_ticket(&mut self, token_hash: &str, now: i64) -> StoreResult<bool> {
                let done = sqlx::query(
                    "UPDATE mfa_tickets SET used_at = $2 WHERE token_hash = $1 AND used_at IS NULL",
                )
                .bind(token_hash)
                .bind(now)
                .execute(&mut *self.tx)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn seal_totp(&mut self, account_id: &str, secret: &str) -> StoreResult<()> {
                sqlx::query("UPDATE totp_factors SET secret = $2 WHERE account_id = $1")
                    .bind(account_id)
                    .bind(secret)
                    .execute(&mut *self.tx)
                    .await?;
                Ok(())
            }

            async fn spend_recovery_code(&mut self, account_id: &str, hash: &str, now: i64) -> StoreResult<bool> {
                let done = sqlx::query(
                    "UPDATE recovery_codes SET used_at = $3 \
                     WHERE account_id = $1 AND code_hash = $2 AND used_at IS NULL",
                )
                .bind(account_id)
                .bind(hash)
                .bind(now)
                .execute(&mut *self.tx)
                .await?;
                Ok(done.rows_affected() == 1)
            }
        }

        impl $store {
            /// Creates the default organization if this is a fresh database.
            async fn seed_defaults(&self, now: i64) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO organizations (id, name, state, status, created_at) \
                     VALUES ($1, 'default', 0, $2, $3) ON CONFLICT (id) DO NOTHING",
                )
                .bind($crate::store::DEFAULT_ORGANIZATION)
                .bind($crate::domain::OrganizationStatus::Active)
                .bind(now)
                .execute(self.writer())
                .await?;
                Ok(())
            }
        }
    };
}

macro_rules! account_columns {
    () => {
        "id, organization_id, username, email, phone, name, surname, password_hash, role, status, \
         created_at, updated_at"
    };
}

macro_rules! session_columns {
    () => {
        "id, account_id, created_at, last_used_at, expires_at, user_agent, ip, revoked_at, \
         revoke_reason, amr, client_id, scope, parent_id"
    };
}

macro_rules! live_sessions_sql {
    () => {
        concat!(
            "SELECT ",
            session_columns!(),
            " FROM sessions WHERE account_id = $1 AND revoked_at IS NULL AND expires_at > $2 \
             AND client_id IS NULL ORDER BY created_at DESC, id DESC"
        )
    };
}

macro_rules! outbox_columns {
    () => {
        "id, recipient, subject, body, created_at, sent_at, expires_at, attempts, \
         next_attempt_at, last_error, failed_at"
    };
}

/// The columns a member list or export answers with: not the search text, the blind index or the
/// sort keys, which only the store's own queries use (reading five more text columns for each of
/// a page's rows cost a list some 20%).
macro_rules! member_list_columns {
    () => {
        "id, organization_id, imie, nazwisko, wyksztalcenie, pesel, wojewodztwo, miejscowosc, ulica, \
         nrdomulokalu, kodpocztowy, email, tel, version, created_by, created_at, updated_at"
    };
}

macro_rules! member_columns {
    () => {
        "id, organization_id, imie, nazwisko, wyksztalcenie, pesel, wojewodztwo, miejscowosc, ulica, \
         nrdomulokalu, kodpocztowy, email, tel, search, version, created_by, created_at, updated_at, \
         pesel_index, imie_sort, nazwisko_sort, miejscowosc_sort, wojewodztwo_sort"
    };
}

pub(crate) use {
    account_columns, live_sessions_sql, member_columns, member_list_columns, outbox_columns,
    session_columns, sql_store,
};

/// Turns a unique violation into the field it concerns; other errors pass through.
pub(crate) fn map_unique(err: sqlx::Error) -> super::StoreError {
    match super::unique_violation(&err) {
        Some(field) => super::StoreError::Unique(field),
        // Otherwise as any other error: a connection lost in the middle of an insert is
        // `Unavailable`, not a 500 (`bench/chaos` found one).
        None => err.into(),
    }
}

/// Unix milliseconds now; the stores stamp rows with the time the core passes in, except here.
pub(crate) fn now_ms() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp_nanos() as i64 / 1_000_000
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_insert_that_loses_its_connection_is_unavailable_not_a_failure() {
        let lost = sqlx::Error::Io(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "expected to read 5 bytes, got 0 bytes at EOF",
        ));
        assert!(matches!(
            super::map_unique(lost),
            super::super::StoreError::Unavailable(_)
        ));
    }

    #[test]
    fn claimable_names_every_condition_once() {
        let text = super::claimable("t", "$1", "$5", "cs.client_id IS $6");
        for part in [
            "cs.client_id IS $6",
            "t.used_at IS NULL",
            "t.expires_at > $1",
            "cs.revoked_at IS NULL",
            "cs.expires_at + 0 > $1",
            "ca.status = $5",
            "cs.id = t.session_id",
        ] {
            assert_eq!(text.matches(part).count(), 1, "{part} in {text}");
        }
        assert!(
            !text.contains("'active'"),
            "statuses are bound, never literal"
        );
    }
}
