//! The SQL shared by both backends: `sql_store!` implements `Store` for a pool type.
//!
//! The statements use `$N` placeholders, `RETURNING` and `ON CONFLICT`, which SQLite (3.35+) and
//! PostgreSQL read the same way, so each rule lives once. The backends differ only in how they
//! connect, which lives in `sqlite.rs` and `postgres.rs`.
//!
//! RETURNING: a write with `RETURNING` outside an explicit transaction is read with
//! `fetch_all`, never `fetch_optional`/`fetch_one`. Those stop after the first row and reset the
//! statement; SQLite then commits in the reset, and runs its WAL auto-checkpoint only when a
//! statement steps to its end, so the WAL grew without bound (830 MB after a minute of
//! refreshes, and every page read slowed with it). `sqlite_wal_stays_bounded_under_refreshes` guards
//! this.

/// Implements `Store` for `$store`, a struct with a `pool: sqlx::Pool<$db>` field.
macro_rules! sql_store {
    ($store:ty, $backend:literal) => {
        #[async_trait::async_trait]
        impl $crate::store::Store for $store {
            fn backend(&self) -> &'static str {
                $backend
            }

            async fn ping(&self) -> StoreResult<()> {
                sqlx::query("SELECT 1").execute(&self.pool).await?;
                Ok(())
            }

            async fn insert_organization(&self, org: &OrganizationRecord) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO organizations (id, name, state, status, created_at) VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(&org.id)
                .bind(&org.name)
                .bind(org.state)
                .bind(&org.status)
                .bind(org.created_at)
                .execute(self.writer())
                .await?;
                Ok(())
            }

            async fn insert_account(&self, new: NewAccount) -> StoreResult<AccountRecord> {
                let mut tx = self.writer().begin().await?;
                let mut role = new.role.clone();
                // The first account of an organization, however it is made, ends the bootstrap;
                // it becomes the owner only when the caller asks for that (`first_is_owner`).
                // The row lock (PostgreSQL) or the write lock (SQLite) lets exactly one
                // concurrent first account flip the flag.
                let flipped = sqlx::query(
                    "UPDATE organizations SET owner_bootstrapped = 1 \
                     WHERE id = $1 AND owner_bootstrapped = 0",
                )
                .bind(&new.organization_id)
                .execute(&mut *tx)
                .await?;
                if new.first_is_owner && flipped.rows_affected() == 1 {
                    role = "owner".into();
                }
                let inserted = insert_account_query!(new, role)
                .fetch_one(&mut *tx)
                .await
                .map_err(map_unique)?;
                tx.commit().await?;
                Ok(inserted)
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

            async fn set_password_hash(&self, account_id: &str, hash: &str, now: i64) -> StoreResult<()> {
                sqlx::query("UPDATE accounts SET password_hash = $1, updated_at = $2 WHERE id = $3")
                    .bind(hash)
                    .bind(now)
                    .bind(account_id)
                    .execute(self.writer())
                    .await?;
                Ok(())
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

            async fn update_account(
                &self,
                organization_id: &str,
                id: &str,
                role: Option<&str>,
                status: Option<&str>,
                now: i64,
            ) -> StoreResult<Option<AccountRecord>> {
                Ok(sqlx::query_as::<_, AccountRecord>(concat!(
                    "UPDATE accounts SET role = COALESCE($1, role), status = COALESCE($2, status), \
                     updated_at = $3 WHERE organization_id = $4 AND id = $5 RETURNING ",
                    account_columns!()
                ))
                .bind(role)
                .bind(status)
                .bind(now)
                .bind(organization_id)
                .bind(id)
                // fetch_all, not fetch_optional: see "RETURNING" in this module's notes.
                .fetch_all(self.writer())
                .await?
                .into_iter()
                .next())
            }

            async fn create_session(
                &self,
                session: SessionRecord,
                token: NewRefreshToken,
                keep: u32,
            ) -> StoreResult<()> {
                let mut tx = self.writer().begin().await?;
                sqlx::query(
                    "INSERT INTO sessions (id, account_id, created_at, last_used_at, expires_at, \
                     user_agent, ip) VALUES ($1, $2, $3, $3, $4, $5, $6)",
                )
                .bind(&session.id)
                .bind(&session.account_id)
                .bind(session.created_at)
                .bind(session.expires_at)
                .bind(&session.user_agent)
                .bind(&session.ip)
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "INSERT INTO refresh_tokens (token_hash, session_id, created_at, expires_at) \
                     VALUES ($1, $2, $3, $4)",
                )
                .bind(&token.token_hash)
                .bind(&session.id)
                .bind(session.created_at)
                .bind(token.expires_at)
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "UPDATE sessions SET revoked_at = $1, revoke_reason = 'session_limit' \
                     WHERE account_id = $2 AND revoked_at IS NULL AND id NOT IN (\
                       SELECT id FROM sessions WHERE account_id = $2 AND revoked_at IS NULL \
                       AND expires_at > $1 ORDER BY created_at DESC, id DESC LIMIT $3)",
                )
                .bind(session.created_at)
                .bind(&session.account_id)
                .bind(i64::from(keep))
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn rotate_refresh_token(
                &self,
                token_hash: &str,
                next: NewRefreshToken,
                now: i64,
                grace_ms: i64,
            ) -> StoreResult<Rotation> {
                if let Some((session_id, subject)) = self.claim_rotation(token_hash, &next, now).await? {
                    return Ok(Rotation::Rotated { session_id, subject });
                }
                // Not claimed: find out why, for the answer (SPEC §3).
                // `orphaned`: used, but the successor it names was never stored. On PostgreSQL a
                // revocation committed between the claim and the session update leaves this
                // (the statement claims, then finds the session revoked); that is a logout
                // racing a refresh, not a reuse.
                let known: Option<(String, Option<i64>, i64, String, Option<i64>, i64, String, String, i64)> =
                    sqlx::query_as(
                        "SELECT s.id, t.used_at, t.expires_at, s.account_id, s.revoked_at, s.expires_at, \
                         a.organization_id, a.status, \
                         CAST(CASE WHEN t.replaced_by IS NOT NULL AND NOT EXISTS \
                           (SELECT 1 FROM refresh_tokens n WHERE n.token_hash = t.replaced_by) \
                         THEN 1 ELSE 0 END AS BIGINT) \
                         FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id \
                         JOIN accounts a ON a.id = s.account_id WHERE t.token_hash = $1",
                    )
                    .bind(token_hash)
                    .fetch_optional(self.writer())
                    .await?;
                let Some((session_id, used_at, expires_at, account_id, revoked_at, session_ends, organization_id, status, orphaned)) = known
                else {
                    return Ok(Rotation::Unknown);
                };
                if orphaned == 1 {
                    return Ok(Rotation::Unknown);
                }
                let Some(used_at) = used_at else {
                    // Unused, yet not claimable: a revoked session or a disabled account is
                    // unknown; otherwise the token or its session has run out.
                    let ended = revoked_at.is_some() || status != "active";
                    let expired = expires_at <= now || session_ends <= now;
                    return Ok(if expired && !ended { Rotation::Expired } else { Rotation::Unknown });
                };
                if grace_ms > 0 && now - used_at <= grace_ms && revoked_at.is_none() {
                    return Ok(Rotation::RotatedRecently);
                }
                sqlx::query(
                    "UPDATE sessions SET revoked_at = $1, revoke_reason = 'refresh_token_reused' \
                     WHERE id = $2 AND revoked_at IS NULL",
                )
                .bind(now)
                .bind(&session_id)
                .execute(self.writer())
                .await?;
                Ok(Rotation::Reused { session_id, account_id, organization_id })
            }

            async fn session(&self, id: &str) -> StoreResult<Option<SessionRecord>> {
                Ok(sqlx::query_as::<_, SessionRecord>(
                    "SELECT id, account_id, created_at, last_used_at, expires_at, user_agent, ip, \
                     revoked_at, revoke_reason FROM sessions WHERE id = $1",
                )
                .bind(id)
                .fetch_optional(&self.pool)
                .await?)
            }

            async fn live_sessions(&self, account_id: &str, now: i64) -> StoreResult<Vec<SessionRecord>> {
                Ok(sqlx::query_as::<_, SessionRecord>(
                    "SELECT id, account_id, created_at, last_used_at, expires_at, user_agent, ip, \
                     revoked_at, revoke_reason FROM sessions \
                     WHERE account_id = $1 AND revoked_at IS NULL AND expires_at > $2 \
                     ORDER BY created_at DESC, id DESC",
                )
                .bind(account_id)
                .bind(now)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn revoke_session(
                &self,
                account_id: &str,
                session_id: &str,
                reason: &str,
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
                .execute(self.writer())
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn revoke_sessions(
                &self,
                account_id: &str,
                keep: Option<&str>,
                reason: &str,
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
                .execute(self.writer())
                .await?;
                Ok(done.rows_affected())
            }

            async fn signing_keys(&self) -> StoreResult<Vec<SigningKeyRecord>> {
                Ok(sqlx::query_as::<_, SigningKeyRecord>(
                    "SELECT kid, private_key, public_key, created_at FROM signing_keys \
                     ORDER BY created_at DESC, kid DESC",
                )
                .fetch_all(&self.pool)
                .await?)
            }

            async fn insert_signing_key(&self, key: SigningKeyRecord) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO signing_keys (kid, private_key, public_key, created_at) \
                     VALUES ($1, $2, $3, $4)",
                )
                .bind(&key.kid)
                .bind(&key.private_key)
                .bind(&key.public_key)
                .bind(key.created_at)
                .execute(self.writer())
                .await?;
                Ok(())
            }

            async fn secret_or_insert(&self, name: &str, value: &str, now: i64) -> StoreResult<String> {
                sqlx::query(
                    "INSERT INTO secrets (name, value, created_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (name) DO NOTHING",
                )
                .bind(name)
                .bind(value)
                .bind(now)
                .execute(self.writer())
                .await?;
                let (stored,): (String,) = sqlx::query_as("SELECT value FROM secrets WHERE name = $1")
                    .bind(name)
                    .fetch_one(self.writer())
                    .await?;
                Ok(stored)
            }

            async fn create_company(
                &self,
                org: &OrganizationRecord,
                owner: NewAccount,
                token_hash: &str,
                expires_at: i64,
            ) -> StoreResult<AccountRecord> {
                let mut tx = self.writer().begin().await?;
                sqlx::query(
                    "INSERT INTO organizations (id, name, state, status, owner_bootstrapped, created_at) \
                     VALUES ($1, $2, $3, $4, 1, $5)",
                )
                .bind(&org.id)
                .bind(&org.name)
                .bind(org.state)
                .bind(&org.status)
                .bind(org.created_at)
                .execute(&mut *tx)
                .await?;
                let account = insert_account_query!(owner, owner.role)
                .fetch_one(&mut *tx)
                .await
                .map_err(map_unique)?;
                sqlx::query(
                    "INSERT INTO activation_tokens (token_hash, account_id, created_at, expires_at) \
                     VALUES ($1, $2, $3, $4)",
                )
                .bind(token_hash)
                .bind(&account.id)
                .bind(owner.now)
                .bind(expires_at)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(account)
            }

            async fn insert_activation_token(&self, account_id: &str, token_hash: &str, now: i64, expires_at: i64) -> StoreResult<()> {
                self.insert_link_token("activation_tokens", account_id, token_hash, now, expires_at).await
            }

            async fn activate_account(
                &self,
                token_hash: &str,
                password_hash: &str,
                name: &str,
                surname: &str,
                now: i64,
            ) -> StoreResult<Option<AccountRecord>> {
                let mut tx = self.writer().begin().await?;
                let claimed: Option<(String,)> = sqlx::query_as(
                    "UPDATE activation_tokens SET used_at = $1 \
                     WHERE token_hash = $2 AND used_at IS NULL AND expires_at > $1 RETURNING account_id",
                )
                .bind(now)
                .bind(token_hash)
                .fetch_optional(&mut *tx)
                .await?;
                let Some((account_id,)) = claimed else {
                    tx.rollback().await?;
                    return Ok(None);
                };
                let account = sqlx::query_as::<_, AccountRecord>(concat!(
                    "UPDATE accounts SET password_hash = $1, name = $2, surname = $3, status = 'active', \
                     updated_at = $4 WHERE id = $5 AND status = 'pending_activation' RETURNING ",
                    account_columns!()
                ))
                .bind(password_hash)
                .bind(name)
                .bind(surname)
                .bind(now)
                .bind(&account_id)
                .fetch_optional(&mut *tx)
                .await?;
                let Some(account) = account else {
                    tx.rollback().await?;
                    return Ok(None);
                };
                sqlx::query("UPDATE organizations SET status = 'active' WHERE id = $1")
                    .bind(&account.organization_id)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(Some(account))
            }

            async fn insert_password_reset(&self, account_id: &str, token_hash: &str, now: i64, expires_at: i64) -> StoreResult<()> {
                self.insert_link_token("password_resets", account_id, token_hash, now, expires_at).await
            }

            async fn consume_password_reset(&self, token_hash: &str, now: i64) -> StoreResult<Option<String>> {
                let row: Option<(String,)> = sqlx::query_as(
                    "UPDATE password_resets SET used_at = $1 \
                     WHERE token_hash = $2 AND used_at IS NULL AND expires_at > $1 RETURNING account_id",
                )
                .bind(now)
                .bind(token_hash)
                // fetch_all, not fetch_optional: see "RETURNING" in this module's notes.
                .fetch_all(self.writer())
                .await?
                .into_iter()
                .next();
                Ok(row.map(|(id,)| id))
            }

            async fn insert_outbox(&self, email: OutboxRecord) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO outbox (id, recipient, subject, body, created_at, sent_at) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(&email.id)
                .bind(&email.recipient)
                .bind(&email.subject)
                .bind(&email.body)
                .bind(email.created_at)
                .bind(email.sent_at)
                .execute(self.writer())
                .await?;
                Ok(())
            }

            async fn outbox(&self) -> StoreResult<Vec<OutboxRecord>> {
                Ok(sqlx::query_as::<_, OutboxRecord>(
                    "SELECT id, recipient, subject, body, created_at, sent_at FROM outbox \
                     ORDER BY created_at, id",
                )
                .fetch_all(&self.pool)
                .await?)
            }

            async fn insert_member(&self, member: &MemberRecord) -> StoreResult<()> {
                insert_member_query!(member).execute(self.writer()).await.map_err(map_unique)?;
                Ok(())
            }

            async fn insert_members(&self, members: &[MemberRecord]) -> StoreResult<()> {
                let mut tx = self.writer().begin().await?;
                // 18 binds a row: 500 rows stay under both backends' bind limits.
                for chunk in members.chunks(500) {
                    let mut insert = sqlx::QueryBuilder::new(concat!("INSERT INTO members (", member_columns!(), ") "));
                    insert.push_values(chunk, |mut row, m| {
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
                            .push_bind(m.updated_at);
                    });
                    insert.build().execute(&mut *tx).await.map_err(map_unique)?;
                }
                tx.commit().await?;
                if members.len() >= Self::BULK_INSERT {
                    // Failures only cost speed, so they are logged, not returned: the import
                    // has committed.
                    for statement in Self::AFTER_BULK_INSERT {
                        if let Err(e) = sqlx::query(statement).execute(self.writer()).await {
                            tracing::warn!(error = %e, "tidying up after an import failed");
                        }
                    }
                }
                Ok(())
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

            async fn update_member(&self, m: &MemberRecord, expected: i64) -> StoreResult<VersionedUpdate> {
                let updated = sqlx::query_as::<_, MemberRecord>(concat!(
                    "UPDATE members SET imie = $1, nazwisko = $2, wyksztalcenie = $3, pesel = $4, \
                     wojewodztwo = $5, miejscowosc = $6, ulica = $7, nrdomulokalu = $8, \
                     kodpocztowy = $9, email = $10, tel = $11, search = $12, updated_at = $13, \
                     version = version + 1 \
                     WHERE organization_id = $14 AND id = $15 AND version = $16 RETURNING ",
                    member_columns!()
                ))
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
                // fetch_all, not fetch_optional: see "RETURNING" in this module's notes.
                .fetch_all(self.writer())
                .await
                .map_err(map_unique)?
                .into_iter()
                .next();
                if let Some(member) = updated {
                    return Ok(VersionedUpdate::Updated(Box::new(member)));
                }
                let current: Option<(i64,)> =
                    sqlx::query_as("SELECT version FROM members WHERE organization_id = $1 AND id = $2")
                        .bind(&m.organization_id)
                        .bind(&m.id)
                        .fetch_optional(self.writer())
                        .await?;
                Ok(match current {
                    Some((current,)) => VersionedUpdate::Conflict { current },
                    None => VersionedUpdate::NotFound,
                })
            }

            async fn delete_member(&self, organization_id: &str, id: &str) -> StoreResult<bool> {
                let done = sqlx::query("DELETE FROM members WHERE organization_id = $1 AND id = $2")
                    .bind(organization_id)
                    .bind(id)
                    .execute(self.writer())
                    .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn list_members(
                &self,
                organization_id: &str,
                filter: &MemberFilter,
            ) -> StoreResult<(Vec<MemberRecord>, i64)> {
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
                        member_columns!()
                    )
                } else {
                    format!(
                        "SELECT {}, CAST(0 AS BIGINT) AS total FROM members WHERE {condition} \
                         {order} LIMIT ${limit} OFFSET ${offset}",
                        member_columns!()
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
                    _ => sqlx::query_scalar::<_, i64>(
                        "SELECT member_count FROM organizations WHERE id = $1",
                    )
                    .bind(organization_id)
                    .fetch_optional(&self.pool)
                    .await?
                    .unwrap_or(0),
                };
                Ok((rows.into_iter().map(|r| r.member).collect(), total))
            }

            async fn existing_pesels(&self, organization_id: &str, pesels: &[String]) -> StoreResult<Vec<String>> {
                let mut found = Vec::new();
                for chunk in pesels.chunks(500) {
                    let placeholders: Vec<String> = (0..chunk.len()).map(|i| format!("${}", i + 2)).collect();
                    let sql = format!(
                        "SELECT pesel FROM members WHERE organization_id = $1 AND pesel IN ({})",
                        placeholders.join(", ")
                    );
                    let mut q = sqlx::query_as::<_, (String,)>(&sql).bind(organization_id);
                    for p in chunk {
                        q = q.bind(p);
                    }
                    found.extend(q.fetch_all(&self.pool).await?.into_iter().map(|(p,)| p));
                }
                Ok(found)
            }

            async fn audit_events(&self, organization_id: &str, before: Option<i64>, limit: i64) -> StoreResult<Vec<AuditRecord>> {
                Ok(sqlx::query_as::<_, AuditRecord>(
                    "SELECT id, organization_id, actor_id, action, target, ip, created_at FROM audit_events \
                     WHERE organization_id = $1 AND created_at < $2 ORDER BY created_at DESC, id DESC LIMIT $3",
                )
                .bind(organization_id)
                .bind(before.unwrap_or(i64::MAX))
                .bind(limit)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn record_audit(&self, event: AuditEvent, now: i64) -> StoreResult<()> {
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
                .execute(self.writer())
                .await?;
                Ok(())
            }
        }

        impl $store {
            /// Stores a single-use link token (`activation_tokens`, `password_resets`: the same
            /// columns). `table` is one of those names, never client text.
            async fn insert_link_token(
                &self,
                table: &'static str,
                account_id: &str,
                token_hash: &str,
                now: i64,
                expires_at: i64,
            ) -> StoreResult<()> {
                sqlx::query(&format!(
                    "INSERT INTO {table} (token_hash, account_id, created_at, expires_at) \
                     VALUES ($1, $2, $3, $4)"
                ))
                .bind(token_hash)
                .bind(account_id)
                .bind(now)
                .bind(expires_at)
                .execute(self.writer())
                .await?;
                Ok(())
            }

            /// Creates the default organization if this is a fresh database.
            async fn seed_defaults(&self, now: i64) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO organizations (id, name, state, status, created_at) \
                     VALUES ($1, 'default', 0, 'active', $2) ON CONFLICT (id) DO NOTHING",
                )
                .bind($crate::store::DEFAULT_ORGANIZATION)
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

macro_rules! member_columns {
    () => {
        "id, organization_id, imie, nazwisko, wyksztalcenie, pesel, wojewodztwo, miejscowosc, ulica, \
         nrdomulokalu, kodpocztowy, email, tel, search, version, created_by, created_at, updated_at"
    };
}

/// The INSERT of one account (`$new: NewAccount`) with the role `$role`, returning the record;
/// shared by sign-ups of both surfaces.
macro_rules! insert_account_query {
    ($new:expr, $role:expr) => {
        sqlx::query_as::<_, AccountRecord>(concat!(
            "INSERT INTO accounts (id, organization_id, username, username_norm, email, email_norm, \
             phone, phone_norm, name, surname, password_hash, role, status, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14) RETURNING ",
            account_columns!()
        ))
        .bind(&$new.id)
        .bind(&$new.organization_id)
        .bind(&$new.username)
        .bind(&$new.username_norm)
        .bind(&$new.email)
        .bind(&$new.email_norm)
        .bind(&$new.phone)
        .bind(&$new.phone_norm)
        .bind(&$new.name)
        .bind(&$new.surname)
        .bind(&$new.password_hash)
        .bind(&$role)
        .bind(&$new.status)
        .bind($new.now)
    };
}

/// The INSERT of one member, shared by single inserts and imports.
macro_rules! insert_member_query {
    ($m:expr) => {
        sqlx::query(concat!(
            "INSERT INTO members (",
            member_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)"
        ))
        .bind(&$m.id)
        .bind(&$m.organization_id)
        .bind(&$m.imie)
        .bind(&$m.nazwisko)
        .bind(&$m.wyksztalcenie)
        .bind(&$m.pesel)
        .bind(&$m.wojewodztwo)
        .bind(&$m.miejscowosc)
        .bind(&$m.ulica)
        .bind(&$m.nrdomulokalu)
        .bind(&$m.kodpocztowy)
        .bind(&$m.email)
        .bind(&$m.tel)
        .bind(&$m.search)
        .bind($m.version)
        .bind(&$m.created_by)
        .bind($m.created_at)
        .bind($m.updated_at)
    };
}

pub(crate) use {
    account_columns, insert_account_query, insert_member_query, member_columns, sql_store,
};

/// Turns a unique violation into the field it concerns; other errors pass through.
pub(crate) fn map_unique(err: sqlx::Error) -> super::StoreError {
    match super::unique_violation(&err) {
        Some(field) => super::StoreError::Unique(field),
        None => super::StoreError::Database(err),
    }
}

/// Unix milliseconds now; the stores stamp rows with the time the core passes in, except here.
pub(crate) fn now_ms() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp_nanos() as i64 / 1_000_000
}
