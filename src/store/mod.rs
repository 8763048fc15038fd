//! Persistence: one `Store` trait, implemented for SQLite and PostgreSQL from the same SQL text.

mod postgres;
mod sql;
mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;

pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

/// Id of the organization that exists from first start; the Membership API registers accounts there.
pub const DEFAULT_ORGANIZATION: &str = "00000000-0000-0000-0000-000000000000";

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OrganizationRecord {
    pub id: String,
    pub name: String,
    pub state: i64,
    pub status: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AccountRecord {
    pub id: String,
    pub organization_id: String,
    pub username: Option<String>,
    pub email: String,
    pub phone: Option<String>,
    pub name: String,
    pub surname: String,
    pub password_hash: Option<String>,
    pub role: String,
    pub status: String,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Whom an access token speaks for: the account fields its claims carry.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TokenSubject {
    pub account_id: String,
    pub organization_id: String,
    pub role: String,
}

impl From<&AccountRecord> for TokenSubject {
    fn from(account: &AccountRecord) -> Self {
        Self {
            account_id: account.id.clone(),
            organization_id: account.organization_id.clone(),
            role: account.role.clone(),
        }
    }
}

/// What `insert_account` needs; the `*_norm` fields are the uniqueness keys.
#[derive(Debug, Clone)]
pub struct NewAccount {
    pub id: String,
    pub organization_id: String,
    pub username: Option<String>,
    pub username_norm: Option<String>,
    pub email: String,
    pub email_norm: String,
    pub phone: Option<String>,
    pub phone_norm: Option<String>,
    pub name: String,
    pub surname: String,
    pub password_hash: Option<String>,
    /// Role when the account is not the organization's first.
    pub role: String,
    /// Give the organization's first account the owner role.
    pub first_is_owner: bool,
    pub status: String,
    pub now: i64,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SessionRecord {
    pub id: String,
    pub account_id: String,
    pub created_at: i64,
    pub last_used_at: i64,
    pub expires_at: i64,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
    pub revoked_at: Option<i64>,
    pub revoke_reason: Option<String>,
}

/// A refresh token as stored: only the SHA-256 of the value the client holds.
#[derive(Debug, Clone)]
pub struct NewRefreshToken {
    pub token_hash: String,
    pub expires_at: i64,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SigningKeyRecord {
    pub kid: String,
    /// PKCS#8 DER, base64.
    pub private_key: String,
    /// Raw 32-byte Ed25519 public key, base64.
    pub public_key: String,
    pub created_at: i64,
}

/// An email waiting in (or delivered through) the outbox.
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct OutboxRecord {
    pub id: String,
    #[serde(rename = "to")]
    pub recipient: String,
    pub subject: String,
    pub body: String,
    pub created_at: i64,
    pub sent_at: Option<i64>,
}

/// A stored audit event.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AuditRecord {
    pub id: String,
    pub organization_id: Option<String>,
    pub actor_id: Option<String>,
    pub action: String,
    pub target: Option<String>,
    pub ip: Option<String>,
    pub created_at: i64,
}

#[derive(Debug, Clone)]
pub struct AuditEvent {
    pub organization_id: Option<String>,
    pub actor_id: Option<String>,
    pub action: &'static str,
    pub target: Option<String>,
    pub ip: Option<String>,
}

/// The result of presenting a refresh token, decided inside one transaction.
#[derive(Debug)]
pub enum Rotation {
    /// The token was live: it is now used, and the new one is stored in the same session.
    Rotated {
        session_id: String,
        subject: TokenSubject,
    },
    /// No such token, or its session was revoked or has ended.
    Unknown,
    /// The token was never used but is past its expiry.
    Expired,
    /// Already used, within `refresh_reuse_grace` of its use: refused, the session is kept.
    RotatedRecently,
    /// Already used, outside the grace: the whole session was revoked.
    Reused {
        session_id: String,
        account_id: String,
        organization_id: String,
    },
}

/// A member of an organization's register (seed 001's fields).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MemberRecord {
    pub id: String,
    pub organization_id: String,
    pub imie: String,
    pub nazwisko: String,
    pub wyksztalcenie: String,
    pub pesel: String,
    pub wojewodztwo: String,
    pub miejscowosc: String,
    pub ulica: String,
    pub nrdomulokalu: String,
    pub kodpocztowy: String,
    pub email: String,
    pub tel: String,
    /// Lower-cased text that `q` searches.
    pub search: String,
    /// Optimistic-concurrency version, the seed's `__v`.
    pub version: i64,
    pub created_by: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A member with the number of rows its list matched (`COUNT(*) OVER ()`).
#[derive(sqlx::FromRow)]
pub(crate) struct CountedMember {
    #[sqlx(flatten)]
    pub member: MemberRecord,
    pub total: i64,
}

/// Columns a member list may be sorted by; the SQL text comes from here, never from a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberSort {
    Nazwisko,
    Imie,
    Miejscowosc,
    Wojewodztwo,
    CreatedAt,
}

impl MemberSort {
    /// The ORDER BY expression that no index can serve (so the planner sorts the hits).
    pub(crate) fn unindexed(self) -> &'static str {
        match self {
            MemberSort::Nazwisko => "nazwisko || ''",
            MemberSort::Imie => "imie || ''",
            MemberSort::Miejscowosc => "miejscowosc || ''",
            MemberSort::Wojewodztwo => "wojewodztwo || ''",
            MemberSort::CreatedAt => "created_at + 0",
        }
    }

    pub(crate) fn column(self) -> &'static str {
        match self {
            MemberSort::Nazwisko => "nazwisko",
            MemberSort::Imie => "imie",
            MemberSort::Miejscowosc => "miejscowosc",
            MemberSort::Wojewodztwo => "wojewodztwo",
            MemberSort::CreatedAt => "created_at",
        }
    }
}

/// Which members to list.
#[derive(Debug, Clone)]
pub struct MemberFilter {
    /// Lower-cased search text, matched as a substring of `search`.
    pub q: Option<String>,
    /// Canonical voivodeship name.
    pub wojewodztwo: Option<String>,
    pub sort: MemberSort,
    pub descending: bool,
    pub offset: i64,
    pub limit: i64,
}

/// The result of a versioned update.
#[derive(Debug)]
pub enum VersionedUpdate {
    Updated(Box<MemberRecord>),
    NotFound,
    /// The member exists with another version.
    Conflict {
        current: i64,
    },
}

/// A unique key that an insert collided with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UniqueField {
    Username,
    Email,
    Phone,
    Pesel,
    Other,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("unique constraint on {0:?}")]
    Unique(UniqueField),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Everything the core asks of a database. Times are Unix milliseconds.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Which backend, for logs and `/readyz`.
    fn backend(&self) -> &'static str;
    async fn ping(&self) -> StoreResult<()>;

    async fn insert_organization(&self, org: &OrganizationRecord) -> StoreResult<()>;
    async fn insert_account(&self, new: NewAccount) -> StoreResult<AccountRecord>;
    async fn account(&self, id: &str) -> StoreResult<Option<AccountRecord>>;
    /// Looks an account up by its username or email key.
    async fn account_by_login(&self, key: &str) -> StoreResult<Option<AccountRecord>>;
    async fn set_password_hash(&self, account_id: &str, hash: &str, now: i64) -> StoreResult<()>;
    /// Accounts of one organization, oldest first.
    async fn accounts(&self, organization_id: &str) -> StoreResult<Vec<AccountRecord>>;
    /// Sets role and/or status of an account of the organization; `None` if there is none.
    async fn update_account(
        &self,
        organization_id: &str,
        id: &str,
        role: Option<&str>,
        status: Option<&str>,
        now: i64,
    ) -> StoreResult<Option<AccountRecord>>;

    /// Starts a session with its first refresh token and revokes the account's oldest live
    /// sessions beyond `keep`, all in one transaction.
    async fn create_session(
        &self,
        session: SessionRecord,
        token: NewRefreshToken,
        keep: u32,
    ) -> StoreResult<()>;
    /// Uses `token_hash` once and stores `next` in its place; see [`Rotation`].
    async fn rotate_refresh_token(
        &self,
        token_hash: &str,
        next: NewRefreshToken,
        now: i64,
        grace_ms: i64,
    ) -> StoreResult<Rotation>;
    async fn session(&self, id: &str) -> StoreResult<Option<SessionRecord>>;
    /// Live sessions of an account, newest first.
    async fn live_sessions(&self, account_id: &str, now: i64) -> StoreResult<Vec<SessionRecord>>;
    /// Revokes one of the account's sessions; false if it was not live.
    async fn revoke_session(
        &self,
        account_id: &str,
        session_id: &str,
        reason: &str,
        now: i64,
    ) -> StoreResult<bool>;
    /// Revokes every live session of the account except `keep`; returns how many.
    async fn revoke_sessions(
        &self,
        account_id: &str,
        keep: Option<&str>,
        reason: &str,
        now: i64,
    ) -> StoreResult<u64>;

    async fn signing_keys(&self) -> StoreResult<Vec<SigningKeyRecord>>;
    async fn insert_signing_key(&self, key: SigningKeyRecord) -> StoreResult<()>;
    /// Stores `value` under `name` unless a value exists, and returns the stored one, so that
    /// every node ends up with the same secret.
    async fn secret_or_insert(&self, name: &str, value: &str, now: i64) -> StoreResult<String>;

    async fn record_audit(&self, event: AuditEvent, now: i64) -> StoreResult<()>;
    /// The organization's newest audit events, at most `limit`, optionally older than `before`.
    async fn audit_events(
        &self,
        organization_id: &str,
        before: Option<i64>,
        limit: i64,
    ) -> StoreResult<Vec<AuditRecord>>;

    /// A company sign-up: the pending organization, its pending owner and the first activation
    /// token, all or nothing.
    async fn create_company(
        &self,
        org: &OrganizationRecord,
        owner: NewAccount,
        token_hash: &str,
        expires_at: i64,
    ) -> StoreResult<AccountRecord>;
    async fn insert_activation_token(
        &self,
        account_id: &str,
        token_hash: &str,
        now: i64,
        expires_at: i64,
    ) -> StoreResult<()>;
    /// Uses a live activation token once: sets the password, name and surname, and activates the
    /// account and its organization. `None` if the token is unknown, used or expired.
    async fn activate_account(
        &self,
        token_hash: &str,
        password_hash: &str,
        name: &str,
        surname: &str,
        now: i64,
    ) -> StoreResult<Option<AccountRecord>>;

    async fn insert_password_reset(
        &self,
        account_id: &str,
        token_hash: &str,
        now: i64,
        expires_at: i64,
    ) -> StoreResult<()>;
    /// Marks a live reset token used and returns its account; `None` if unknown, used or expired.
    async fn consume_password_reset(
        &self,
        token_hash: &str,
        now: i64,
    ) -> StoreResult<Option<String>>;

    async fn insert_outbox(&self, email: OutboxRecord) -> StoreResult<()>;
    /// Every email in the outbox, oldest first.
    async fn outbox(&self) -> StoreResult<Vec<OutboxRecord>>;

    async fn insert_member(&self, member: &MemberRecord) -> StoreResult<()>;
    /// Inserts all or none, in one transaction.
    async fn insert_members(&self, members: &[MemberRecord]) -> StoreResult<()>;
    async fn member(&self, organization_id: &str, id: &str) -> StoreResult<Option<MemberRecord>>;
    /// Replaces the member's fields if its version is `expected`, and bumps the version.
    async fn update_member(
        &self,
        member: &MemberRecord,
        expected: i64,
    ) -> StoreResult<VersionedUpdate>;
    async fn delete_member(&self, organization_id: &str, id: &str) -> StoreResult<bool>;
    /// One page of members and the number matching the filter.
    async fn list_members(
        &self,
        organization_id: &str,
        filter: &MemberFilter,
    ) -> StoreResult<(Vec<MemberRecord>, i64)>;
    /// Which of `pesels` the organization already holds.
    async fn existing_pesels(
        &self,
        organization_id: &str,
        pesels: &[String],
    ) -> StoreResult<Vec<String>>;
}

pub type DynStore = Arc<dyn Store>;

/// Opens (creating if needed) the database the URL names and runs its migrations.
pub async fn connect(url: &str) -> StoreResult<DynStore> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(PostgresStore::connect(url).await?))
    } else {
        Ok(Arc::new(SqliteStore::connect(url).await?))
    }
}

/// Which unique key a database error names, if it is a unique violation.
fn unique_violation(err: &sqlx::Error) -> Option<UniqueField> {
    let sqlx::Error::Database(db) = err else {
        return None;
    };
    if !db.is_unique_violation() {
        return None;
    }
    // PostgreSQL names the constraint, SQLite only the column in its message.
    let text = format!("{} {}", db.constraint().unwrap_or_default(), db.message());
    Some(if text.contains("username_norm") {
        UniqueField::Username
    } else if text.contains("email_norm") {
        UniqueField::Email
    } else if text.contains("phone_norm") {
        UniqueField::Phone
    } else if text.contains("pesel") {
        UniqueField::Pesel
    } else {
        UniqueField::Other
    })
}

/// Escapes `%`, `_` and the escape character itself for a `LIKE ... ESCAPE '\\'` pattern.
pub fn escape_like(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// How a backend finds members by a substring of their `search` text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SearchIndex {
    /// `LIKE '%q%'` on the column, which a trigram GIN index (pg_trgm) serves.
    LikeTrigram,
    /// The FTS5 trigram table `members_search` (SQLite), for queries of three or more chars.
    Fts5,
}

/// An FTS5 query for rows that may contain `q` (three or more characters): the trigrams that
/// tile it (every third, and the last), each quoted, joined by AND. Every row containing `q`
/// contains these; the caller checks the substring itself. Asking for all of `q`'s trigrams as
/// a phrase walked every trigram's list, and common ones (`ski` is in most Polish surnames)
/// are long: tiling reads a third of the lists and no positions, 2-3x faster on 100 000 members.
pub(crate) fn fts_tiles(q: &str) -> String {
    let chars: Vec<char> = q.chars().collect();
    let last = chars.len().saturating_sub(3);
    let mut starts: Vec<usize> = (0..=last).step_by(3).collect();
    if starts.last() != Some(&last) {
        starts.push(last);
    }
    starts
        .into_iter()
        .map(|i| {
            let trigram: String = chars[i..(i + 3).min(chars.len())].iter().collect();
            format!("\"{}\"", trigram.replace('"', "\"\""))
        })
        .collect::<Vec<_>>()
        .join(" AND ")
}

/// The WHERE clause of a member list, with its text binds (`$1` is the organization).
pub(crate) struct MemberWhere {
    pub condition: String,
    pub binds: Vec<String>,
    /// The query is driven by search hits, so ORDER BY must not tempt the planner into walking
    /// a whole sort index instead.
    pub unindexed_order: bool,
}

/// Only placeholders and whitelisted column names go into the text.
pub(crate) fn member_where(
    organization_id: &str,
    filter: &MemberFilter,
    index: SearchIndex,
) -> MemberWhere {
    let mut binds = vec![organization_id.to_string()];
    // A trigram index needs three characters; shorter queries scan.
    let fts =
        index == SearchIndex::Fts5 && filter.q.as_ref().is_some_and(|q| q.chars().count() >= 3);
    // With FTS, SQLite must start from the index hits rather than from the organization's
    // index; the unary `+` hides the column from its planner.
    let mut condition = String::from(if fts {
        "+organization_id = $1"
    } else {
        "organization_id = $1"
    });
    if let Some(q) = &filter.q {
        if fts {
            binds.push(fts_tiles(q));
            binds.push(q.clone());
            condition.push_str(&format!(
                " AND rowid IN (SELECT rowid FROM members_search WHERE members_search MATCH ${}) \
                 AND instr(search, ${}) > 0",
                binds.len() - 1,
                binds.len()
            ));
        } else {
            binds.push(format!("%{}%", escape_like(q)));
            condition.push_str(&format!(" AND search LIKE ${} ESCAPE '\\'", binds.len()));
        }
    }
    if let Some(w) = &filter.wojewodztwo {
        binds.push(w.clone());
        condition.push_str(&format!(" AND wojewodztwo = ${}", binds.len()));
    }
    // With a search, the hits are few: sorting them beats walking a sort index row by row
    // until a page of hits turns up, on either backend.
    MemberWhere {
        condition,
        binds,
        unindexed_order: filter.q.is_some(),
    }
}

#[cfg(test)]
mod tests {
    use super::fts_tiles;

    #[test]
    fn fts_tiles_cover_the_query_with_every_third_trigram_and_the_last() {
        assert_eq!(fts_tiles("abc"), r#""abc""#);
        assert_eq!(fts_tiles("abcd"), r#""abc" AND "bcd""#);
        assert_eq!(fts_tiles("abcdef"), r#""abc" AND "def""#);
        assert_eq!(
            fts_tiles("lewandowski8"),
            r#""lew" AND "and" AND "ows" AND "ki8""#
        );
        // Characters, not bytes; spaces belong to trigrams as the tokenizer indexes them.
        assert_eq!(fts_tiles("łódź x"), r#""łód" AND "ź x""#);
        // A quote inside a trigram is doubled, so the query stays one string per trigram.
        assert_eq!(fts_tiles(r#"a"bcd"#), r#""a""b" AND "bcd""#);
    }
}
