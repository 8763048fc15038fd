//! Persistence: one `Store` trait for reads and one `Tx` trait for writes, implemented for
//! SQLite and PostgreSQL from the same SQL text.
//!
//! The store keeps data; it makes no decision. Which role a new account gets, how many
//! sessions an account keeps, what a refused refresh token means, which status may follow
//! which: those are rules, and they live in `crate::core`, which runs them between the calls
//! of one [`Tx`]. What the store does guarantee is atomicity: everything written through one
//! `Tx` commits together or not at all, and a `Tx` dropped before `commit` (a client that hung
//! up) rolls back. The one write the core makes outside a `Tx` is [`Store::claim_refresh`], the
//! hot path of every client, a single atomic statement on each backend; the stores themselves
//! also write the default organization at first start and refresh statistics after a large
//! import, neither of which changes what any query answers.

mod deadline;
mod postgres;
mod redemption;
mod rotation;
mod sql;
mod sqlite;
mod types;

use std::sync::Arc;

use async_trait::async_trait;

use crate::domain::{AccountStatus, OrganizationStatus, RevokeReason, Role};

pub use deadline::Deadline;
pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

/// Id of the organization that exists from first start; the Membership API registers accounts there.
pub const DEFAULT_ORGANIZATION: &str = "00000000-0000-0000-0000-000000000000";

/// An organization as it is created.
#[derive(Debug, Clone)]
pub struct OrganizationRecord {
    pub id: String,
    pub name: String,
    pub state: i64,
    pub status: OrganizationStatus,
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
    pub role: Role,
    pub status: AccountStatus,
    pub created_at: i64,
    pub updated_at: i64,
}

/// What `Tx::insert_account` stores; the `*_norm` fields are the uniqueness keys.
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
    pub role: Role,
    pub status: AccountStatus,
    pub now: i64,
}

/// Fields of an account to overwrite; `None` keeps the stored value.
#[derive(Debug, Clone, Default)]
pub struct AccountUpdate {
    pub password_hash: Option<String>,
    /// A new email address, with its normalized form (unique).
    pub email: Option<(String, String)>,
    pub name: Option<String>,
    pub surname: Option<String>,
    pub role: Option<Role>,
    pub status: Option<AccountStatus>,
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
    pub revoke_reason: Option<RevokeReason>,
    /// How the holder signed in (RFC 8176 `amr` values, space-separated).
    pub amr: String,
    /// The OpenID Connect client whose grant this is; `None` for brama's own sessions.
    pub client_id: Option<String>,
    /// What the client was granted (space-separated scopes); `None` for brama's own.
    pub scope: Option<String>,
    /// The browser session a client's grant came from.
    pub parent_id: Option<String>,
}

/// A session as it starts.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub id: String,
    pub account_id: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
    /// How the holder signed in (RFC 8176 `amr` values, space-separated): `pwd`, `pwd otp mfa`.
    pub amr: String,
    /// For a client's grant (SPEC §14): the client, the scopes, the browser session.
    pub client_id: Option<String>,
    pub scope: Option<String>,
    pub parent_id: Option<String>,
}

/// A refresh token as stored: only the SHA-256 of the value the client holds.
#[derive(Debug, Clone)]
pub struct NewRefreshToken {
    pub token_hash: String,
    pub expires_at: i64,
}

/// A refresh token that [`Store::claim_refresh`] used up and replaced, and whom it speaks for.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Claimed {
    #[sqlx(rename = "rotated_session")]
    pub session_id: String,
    pub account_id: String,
    pub organization_id: String,
    pub role: Role,
    /// How the session's holder signed in (`amr`, space-separated), for the new access token.
    pub amr: String,
}

/// Everything stored about a refresh token that was not claimed, for the core to say why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshTokenState {
    pub session_id: String,
    /// The OpenID Connect client of the token's session (`None`: one of brama's own).
    pub client_id: Option<String>,
    pub account_id: String,
    pub organization_id: String,
    pub account_status: AccountStatus,
    pub used_at: Option<i64>,
    pub expires_at: i64,
    pub session_revoked_at: Option<i64>,
    pub session_expires_at: i64,
    /// Used, but the successor it names was never stored: on PostgreSQL a revocation that
    /// commits between the claim and the session update of one rotation leaves this.
    pub successor_missing: bool,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SigningKeyRecord {
    pub kid: String,
    /// `EdDSA` (Ed25519) or `RS256` (RSA-2048, ID tokens only).
    pub alg: String,
    /// PKCS#8 DER, base64.
    pub private_key: String,
    /// Raw 32-byte Ed25519 public key, or the PKCS#1 DER of an RSA one; base64.
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
    /// When the email's link expires; the janitor deletes the row then.
    pub expires_at: Option<i64>,
    /// Delivery attempts that failed so far.
    pub attempts: i64,
    /// When the delivery task may next try (or, while a node is sending it, when that node's
    /// claim runs out); `None` once sent or given up, and always without SMTP.
    pub next_attempt_at: Option<i64>,
    /// What the SMTP server (or the connection to it) said at the last failed attempt.
    pub last_error: Option<String>,
    /// When delivery was given up.
    pub failed_at: Option<i64>,
}

impl OutboxRecord {
    /// Where the email stands: `kept` (no SMTP: it waits for the operator), `queued` (not tried
    /// yet), `retrying` (an attempt failed; another is due at `next_attempt_at`), `sent`, or
    /// `failed` (given up).
    pub fn state(&self) -> &'static str {
        match (self.sent_at, self.failed_at, self.next_attempt_at) {
            (Some(_), _, _) => "sent",
            (None, Some(_), _) => "failed",
            (None, None, Some(_)) if self.attempts > 0 => "retrying",
            (None, None, Some(_)) => "queued",
            (None, None, None) => "kept",
        }
    }
}

/// How the delivery task settles one claimed email.
#[derive(Debug, Clone)]
pub enum Delivery {
    /// Sent: its body (with a live link) is cleared.
    Sent,
    /// This attempt failed; try again at `next` or, with `None`, give up.
    Failed { error: String, next: Option<i64> },
}

/// A member's id, the fields its search text is made of, and that text as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MemberTexts {
    pub id: String,
    pub imie: String,
    pub nazwisko: String,
    pub miejscowosc: String,
    pub wojewodztwo: String,
    pub email: String,
    pub search: String,
    /// `Some` once the row has its sort keys.
    pub nazwisko_sort: Option<String>,
}

/// One event of a member's or an account's audit trail, with who did it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TrailEntry {
    pub created_at: i64,
    /// The actor's username (or email, for company accounts); `None` for the command line or an
    /// account since deleted.
    pub actor: Option<String>,
    pub action: String,
}

/// A stored audit event. `action` stays text: the log keeps what older versions wrote.
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

/// What the janitor deletes, each by its own rule, once it is older than a cut (a time in Unix
/// milliseconds that the core computes from the settings). (Sessions that ended before a cut go
/// with their refresh tokens through [`Tx::delete_ended_sessions`].)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Litter {
    /// Link tokens of this kind that expired before the cut.
    Links(LinkKind),
    /// Outbox rows whose link expired before the cut.
    OutboxExpired,
    /// Outbox rows sent before the cut.
    OutboxSent,
    /// Audit events recorded before the cut.
    AuditEvents,
    /// Second-factor login tickets that expired before the cut.
    MfaTickets,
    /// WebAuthn ceremonies started and never finished, expired before the cut.
    WebauthnCeremonies,
    /// OpenID Connect authorization requests that expired before the cut.
    OidcRequests,
    /// OpenID Connect authorization codes that expired before the cut.
    OidcCodes,
}

/// The single-use tokens sent by email; each kind has its own table of the same shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkKind {
    Activation,
    PasswordReset,
    /// The confirmation of a new email address (its table also holds the address).
    EmailChange,
}

impl LinkKind {
    fn table(self) -> &'static str {
        match self {
            LinkKind::Activation => "activation_tokens",
            LinkKind::PasswordReset => "password_resets",
            LinkKind::EmailChange => "email_changes",
        }
    }
}

/// A single-use link token as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LinkTokenRecord {
    pub account_id: String,
    pub expires_at: i64,
    pub used_at: Option<i64>,
}

/// An account's TOTP factor (SPEC §13) as stored: `secret` sealed under the data key.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TotpRecord {
    pub account_id: String,
    pub secret: String,
    pub created_at: i64,
    /// `None` until a first code confirmed it: only a confirmed factor is asked for at login.
    pub confirmed_at: Option<i64>,
    /// The last time step whose code was accepted.
    pub last_step: i64,
}

/// The ticket a password login got when a second factor is due (`mfaToken`), as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MfaTicketRecord {
    pub account_id: String,
    pub expires_at: i64,
    pub failures: i64,
    pub used_at: Option<i64>,
}

/// Which second factors an account has (SPEC §13).
#[derive(Debug, Clone, Copy, Default, sqlx::FromRow)]
pub struct SecondFactors {
    /// A confirmed TOTP factor.
    pub totp: bool,
    pub passkeys: i64,
    pub recovery_codes_left: i64,
}

impl SecondFactors {
    /// No factor a login would ask for (recovery codes alone are none).
    pub fn none(&self) -> bool {
        !self.totp && self.passkeys == 0
    }
}

/// Which audit events a page of the trail shows.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Only events older than this (Unix ms): the next page.
    pub before: Option<i64>,
    /// Only this action (`login`, `mfa.enabled`, ...).
    pub action: Option<String>,
    /// Only events done by this account.
    pub actor: Option<String>,
}

/// An OpenID Connect client (SPEC §14) as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OidcClientRecord {
    /// The `client_id`.
    pub id: String,
    pub organization_id: String,
    pub name: String,
    /// SHA-256 of the secret, hex; `None` for a public client.
    pub secret_hash: Option<String>,
    /// JSON array of the redirect URIs.
    pub redirect_uris: String,
    /// JSON array of the URIs a logout may return to.
    pub post_logout_redirect_uris: String,
    /// 1: no consent screen.
    pub first_party: i64,
    /// `RS256` or `EdDSA`.
    pub id_token_alg: String,
    pub created_at: i64,
}

/// An authorization request parked during its login or consent (SPEC §14).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OidcRequestRecord {
    pub id: String,
    pub client_id: String,
    pub redirect_uri: String,
    /// Space-separated.
    pub scope: String,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    /// Only a login after this time (Unix ms) will do (`prompt=login`, `max_age`).
    pub login_after: Option<i64>,
    /// 1: `prompt=consent`, the consent screen even where consent was given.
    pub consent_asked: i64,
    pub created_at: i64,
    pub expires_at: i64,
}

/// An authorization code as stored (only its SHA-256).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OidcCodeRecord {
    pub code_hash: String,
    pub client_id: String,
    pub account_id: String,
    pub sso_session_id: String,
    pub redirect_uri: String,
    pub scope: String,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    /// When the person logged in (Unix ms).
    pub auth_time: i64,
    pub amr: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
    pub grant_session_id: Option<String>,
}

/// An authorization code as its exchange reads it ([`Store::oidc_code_grant`]).
#[derive(Debug, Clone)]
pub struct OidcCodeGrant {
    pub code: OidcCodeRecord,
    /// The account the code is for.
    pub account: AccountRecord,
    /// The browser session the code came from is unrevoked and unexpired: a logout or a
    /// revocation in the code's minute ends what it would have opened.
    pub parent_live: bool,
}

/// A client's grant as [`Store::oidc_grant`] reads it.
#[derive(Debug, Clone)]
pub struct OidcGrant {
    /// The account the grant is of.
    pub account: AccountRecord,
    /// What was granted.
    pub scope: Option<String>,
    /// The browser session the grant came from (the ID token's `sid`).
    pub parent_id: Option<String>,
    /// When that browser session's person logged in (Unix ms), if it is still stored.
    pub auth_time: Option<i64>,
}

/// A passkey (SPEC §13) as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PasskeyRecord {
    pub id: String,
    pub account_id: String,
    /// The WebAuthn credential id, base64url: unique across accounts.
    pub credential_id: String,
    /// What its owner called it ("Telefon", "YubiKey").
    pub name: String,
    /// webauthn-rs's `Passkey` as JSON: public key and signature counter.
    pub credential: String,
    /// The authenticator's signature counter at the last use (0: none yet, or it keeps none).
    pub sign_count: i64,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

/// A WebAuthn ceremony between its start and finish (SPEC §13), as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CeremonyRecord {
    /// SHA-256 of the challenge, which the browser's answer carries back.
    pub challenge_hash: String,
    /// `register`, `mfa` or `login`.
    pub kind: String,
    /// Whose: the account registering or signing in with a second factor; none for a
    /// passwordless sign-in, whose account the credential names.
    pub account_id: Option<String>,
    /// For `mfa`: the SHA-256 of the login ticket it belongs to.
    pub ticket_hash: Option<String>,
    /// webauthn-rs's ceremony state as JSON.
    pub state: String,
    pub created_at: i64,
    pub expires_at: i64,
}

/// A member of an organization's register (seed 001's fields), as stored.
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
    /// Lower-cased text that `q` searches. This, `pesel_index` and the sort keys are store-side
    /// only: a list or an export does not read them (`member_list_columns!`), and its records
    /// hold the defaults (empty, `None`). Only a record read whole is ever written back.
    #[sqlx(default)]
    pub search: String,
    /// Optimistic-concurrency version, the seed's `__v`.
    pub version: i64,
    pub created_by: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    /// The blind index of the PESEL within the organization (`crypto::datakey`); `pesel` then
    /// holds its ciphertext as stored, and its clear value above the store. `None` only on a row
    /// written before encryption came in, until the next start encrypts it.
    #[sqlx(default)]
    pub pesel_index: Option<String>,
    /// Sort keys in Polish alphabetical order (`domain::sort_key`) of imie, nazwisko,
    /// miejscowosc and wojewodztwo; `None` only on a row written before they came in, until the
    /// next start makes them.
    #[sqlx(default)]
    pub imie_sort: Option<String>,
    #[sqlx(default)]
    pub nazwisko_sort: Option<String>,
    #[sqlx(default)]
    pub miejscowosc_sort: Option<String>,
    #[sqlx(default)]
    pub wojewodztwo_sort: Option<String>,
}

/// Where a member stands in the order of an export: its surname's sort key and its id.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ExportKey {
    pub sort: String,
    pub id: String,
}

/// A member with the number of rows its list matched (`COUNT(*) OVER ()`).
#[derive(sqlx::FromRow)]
pub(crate) struct CountedMember {
    #[sqlx(flatten)]
    pub member: MemberRecord,
    pub total: i64,
}

/// A search's page and its total: the total from the page's first row, or, for a page past the
/// last hit (empty), from `count`, asked only then.
pub(crate) async fn page_with_total<F, Fut>(
    rows: Vec<CountedMember>,
    count: F,
) -> StoreResult<(Vec<MemberRecord>, i64)>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = StoreResult<i64>>,
{
    let total = match rows.first() {
        Some(first) => first.total,
        None => count().await?,
    };
    Ok((rows.into_iter().map(|r| r.member).collect(), total))
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
            MemberSort::Nazwisko => "nazwisko_sort || ''",
            MemberSort::Imie => "imie_sort || ''",
            MemberSort::Miejscowosc => "miejscowosc_sort || ''",
            MemberSort::Wojewodztwo => "wojewodztwo_sort || ''",
            MemberSort::CreatedAt => "created_at + 0",
        }
    }

    pub(crate) fn column(self) -> &'static str {
        match self {
            // Polish alphabetical order (migration 0014).
            MemberSort::Nazwisko => "nazwisko_sort",
            MemberSort::Imie => "imie_sort",
            MemberSort::Miejscowosc => "miejscowosc_sort",
            MemberSort::Wojewodztwo => "wojewodztwo_sort",
            MemberSort::CreatedAt => "created_at",
        }
    }
}

/// Which members to list.
#[derive(Debug, Clone)]
pub struct MemberFilter {
    /// Lower-cased search text, matched as a substring of `search`.
    pub q: Option<String>,
    /// Which of `q`'s trigrams to ask the index for (`core::search_plan`): rows holding all of
    /// them are the candidates, and `q` itself is checked on each. Empty: the index is asked
    /// for the whole of `q`.
    pub index_trigrams: Vec<String>,
    /// Canonical voivodeship name.
    pub wojewodztwo: Option<String>,
    /// The blind index of a PESEL: exactly the member with that PESEL.
    pub pesel_index: Option<String>,
    pub sort: MemberSort,
    pub descending: bool,
    pub offset: i64,
    pub limit: i64,
}

impl MemberFilter {
    /// Whether a backend searching with `index` asks it for chosen trigrams of `q`
    /// (`index_trigrams`), which the core then plans from its sample (`core::search_plan`).
    /// SQLite's search sorted by surname asks its index for the whole query as a phrase, and a
    /// query under three characters is scanned: neither is planned, so neither waits for a
    /// sample.
    pub(crate) fn wants_trigrams(&self, index: SearchIndex) -> bool {
        let Some(q) = &self.q else {
            return false;
        };
        match index {
            SearchIndex::LikeTrigram => true,
            SearchIndex::Fts5 => q.chars().count() >= 3 && self.surname_search().is_none(),
        }
    }

    /// `q`, when this is a search sorted by surname with no other filter (the page's default),
    /// which both backends answer from their search tables in surname order.
    pub(crate) fn surname_search(&self) -> Option<&str> {
        let plain = self.sort == MemberSort::Nazwisko
            && self.wojewodztwo.is_none()
            && self.pesel_index.is_none();
        self.q.as_deref().filter(|_| plain)
    }
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
    Database(sqlx::Error),
    /// The database cannot be reached or is shutting down: a fault outside brama, which the
    /// surfaces answer with 503 `database_unavailable` (SPEC §9).
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The disk is full, or the database is read-only or cannot be written: writes answer 503
    /// `storage_full` while reads go on (SPEC §9).
    #[error("storage full or read-only: {0}")]
    StorageFull(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        if unavailable(&e) {
            StoreError::Unavailable(e.to_string())
        } else if storage_full(&e) {
            StoreError::StorageFull(e.to_string())
        } else {
            StoreError::Database(e)
        }
    }
}

impl StoreError {
    /// The same kind of error for another waiter of one failed statement (SQLite's group
    /// commit answers every rotation of a batch): faults outside brama keep their kind.
    pub(crate) fn for_another(&self) -> StoreError {
        match self {
            StoreError::Unavailable(m) => StoreError::Unavailable(m.clone()),
            StoreError::StorageFull(m) => StoreError::StorageFull(m.clone()),
            other => StoreError::Database(sqlx::Error::Protocol(other.to_string())),
        }
    }
}

/// Whether an error says the database cannot store more: SQLite's SQLITE_FULL (13),
/// SQLITE_READONLY (8) and SQLITE_IOERR (10), with their extended codes; PostgreSQL's
/// disk_full (53100), read_only_sql_transaction (25006) and io_error (58030).
fn storage_full(e: &sqlx::Error) -> bool {
    let sqlx::Error::Database(db) = e else {
        return false;
    };
    let Some(code) = db.code() else {
        return false;
    };
    match code.parse::<u32>() {
        // SQLite: the primary result code is the low byte of the extended one.
        Ok(n) if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() => {
            matches!(n & 0xff, 8 | 10 | 13)
        }
        _ => matches!(&*code, "53100" | "25006" | "58030"),
    }
}

/// Whether an error says the database is out of reach rather than that a statement failed: no
/// connection within `database_timeout` (the pool retries connecting until then), a connection
/// lost, or a server shutting down, starting up or out of connections.
fn unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => true,
        sqlx::Error::Tls(_) | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            // PostgreSQL's class 08 (connection exception), 57P01–57P03 (admin or crash
            // shutdown, cannot connect now), 53300 (too many connections) and 57014 (a
            // statement cancelled by `statement_timeout`, see `connect`).
            code.starts_with("08")
                || matches!(&*code, "57P01" | "57P02" | "57P03" | "53300" | "57014")
        }),
        _ => false,
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// What the core reads from a database (committed data), how it starts a [`Tx`], and the one
/// write that does without one. Times are Unix milliseconds.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Which backend, for logs and `/readyz`.
    fn backend(&self) -> &'static str;
    /// How this backend finds members by a substring of their search text.
    fn search_index(&self) -> SearchIndex;
    async fn ping(&self) -> StoreResult<()>;

    /// Starts a write transaction: see [`Tx`].
    async fn begin(&self) -> StoreResult<Box<dyn Tx>>;
    /// After values that must not linger were rewritten in place (PESELs encrypted by an
    /// upgrade or a key rotation): makes sure no copy of the old ones stays in the database's
    /// files (SQLite: its WAL).
    async fn after_rewrite(&self) -> StoreResult<()>;

    async fn account(&self, id: &str) -> StoreResult<Option<AccountRecord>>;
    /// Looks an account up by its username or email key.
    async fn account_by_login(&self, key: &str) -> StoreResult<Option<AccountRecord>>;
    /// Accounts of one organization, oldest first.
    async fn accounts(&self, organization_id: &str) -> StoreResult<Vec<AccountRecord>>;

    async fn session(&self, id: &str) -> StoreResult<Option<SessionRecord>>;
    /// Unrevoked, unexpired sessions of an account, newest first.
    async fn live_sessions(&self, account_id: &str, now: i64) -> StoreResult<Vec<SessionRecord>>;

    /// Uses the refresh token `token_hash` once, if it is claimable (see `sql::claimable`), and
    /// stores `next` in its place in the same session, atomically: of N concurrent claims of one
    /// token, on one node or many, exactly one gets `Some`. `None` says nothing about why; ask
    /// [`Store::refresh_token_state`].
    /// Only tokens of sessions of `client_id` are claimed: `None` for brama's own sessions, an
    /// OpenID Connect client's id for its grants.
    async fn claim_refresh(
        &self,
        token_hash: &str,
        next: NewRefreshToken,
        now: i64,
        client_id: Option<&str>,
    ) -> StoreResult<Option<Claimed>>;
    async fn refresh_token_state(&self, token_hash: &str)
    -> StoreResult<Option<RefreshTokenState>>;

    /// A single-use link token as it stands (no lock: a look before deciding to do any work).
    async fn link_token(
        &self,
        kind: LinkKind,
        token_hash: &str,
    ) -> StoreResult<Option<LinkTokenRecord>>;

    /// Newest first.
    async fn signing_keys(&self) -> StoreResult<Vec<SigningKeyRecord>>;
    /// The organization's newest audit events that pass `filter`, at most `limit`.
    async fn audit_events(
        &self,
        organization_id: &str,
        filter: &AuditFilter,
        limit: i64,
    ) -> StoreResult<Vec<AuditRecord>>;
    /// Every audit event of the organization about `target` (a member or account id), oldest
    /// first.
    async fn audit_trail(
        &self,
        organization_id: &str,
        target: &str,
    ) -> StoreResult<Vec<TrailEntry>>;
    /// Every email in the outbox, oldest first.
    async fn outbox(&self) -> StoreResult<Vec<OutboxRecord>>;
    /// When the earliest email waiting for delivery is due.
    async fn outbox_next_due(&self) -> StoreResult<Option<i64>>;

    async fn member(&self, organization_id: &str, id: &str) -> StoreResult<Option<MemberRecord>>;
    /// One page of members and the number matching the filter.
    async fn list_members(
        &self,
        organization_id: &str,
        filter: &MemberFilter,
    ) -> StoreResult<(Vec<MemberRecord>, i64)>;
    /// Writes these audit events (each with its time), several rows a statement, outside any
    /// transaction: the audit queue's batches.
    async fn record_audits(&self, events: &[(AuditEvent, i64)]) -> StoreResult<()>;
    /// About `limit` members' search texts, of any organization, picked at random (fewer when
    /// there are fewer): the sample `core::search_plan` counts trigrams in.
    async fn sample_search_texts(&self, limit: i64) -> StoreResult<Vec<String>>;
    /// The next `limit` members of the organization after `after` in the order of an export
    /// (`ORDER BY nazwisko_sort, id`), as their keys: an export reads every id first, a page
    /// at a time along the sort index (one statement for a million ids took 1.6 s on
    /// PostgreSQL, at the edge of `database_timeout`), then the members in small batches. The
    /// sort keys are set for every row at start-up (`refresh_search_texts`), so no NULL key
    /// ends the walk early.
    async fn member_ids(
        &self,
        organization_id: &str,
        after: Option<&ExportKey>,
        limit: i64,
    ) -> StoreResult<Vec<ExportKey>>;
    /// These members (at most a few hundred ids), in no particular order; ids that are gone are
    /// left out.
    async fn members_by_ids(
        &self,
        organization_id: &str,
        ids: &[String],
    ) -> StoreResult<Vec<MemberRecord>>;
    /// How many members' PESELs are stored other than as `pattern` (a `LIKE` pattern: under
    /// another key, or still in clear).
    async fn pesels_not_under(&self, pattern: &str) -> StoreResult<u64>;
    /// Which of these PESEL blind indexes the organization already holds.
    async fn taken_pesel_indexes(
        &self,
        organization_id: &str,
        indexes: &[String],
    ) -> StoreResult<Vec<String>>;
    /// How many TOTP secrets are stored other than as `pattern` (`pesels_not_under`'s twin).
    async fn totp_secrets_not_under(&self, pattern: &str) -> StoreResult<u64>;
    /// A second-factor ticket by the SHA-256 of its token.
    async fn mfa_ticket(&self, token_hash: &str) -> StoreResult<Option<MfaTicketRecord>>;
    /// The account's passkeys, oldest first.
    async fn passkeys(&self, account_id: &str) -> StoreResult<Vec<PasskeyRecord>>;
    /// The organization's OpenID Connect clients, oldest first.
    async fn oidc_clients(&self, organization_id: &str) -> StoreResult<Vec<OidcClientRecord>>;
    /// The client with this `client_id`, of whichever organization.
    async fn oidc_client(&self, id: &str) -> StoreResult<Option<OidcClientRecord>>;
    async fn oidc_request(&self, id: &str) -> StoreResult<Option<OidcRequestRecord>>;
    /// The scopes the account allowed the client, if it ever did.
    async fn oidc_consent(&self, account_id: &str, client_id: &str) -> StoreResult<Option<String>>;
    async fn oidc_code(&self, code_hash: &str) -> StoreResult<Option<OidcCodeRecord>>;
    /// A code with what its exchange decides on, in one read: the account it is for and
    /// whether the browser session it came from still lives at `now`.
    async fn oidc_code_grant(
        &self,
        code_hash: &str,
        now: i64,
    ) -> StoreResult<Option<OidcCodeGrant>>;
    /// A client's grant (its session, `id`) as a refresh answer needs it, in one read.
    async fn oidc_grant(&self, id: &str) -> StoreResult<Option<OidcGrant>>;
    /// Spends an unused code and opens the grant its exchange issues: `session` with its first
    /// refresh token (`token`, with `offline_access`; without, the client gets none), noted on
    /// the code as its `grant_session_id` (the code is used at `session.created_at`). Atomic, and one trip to the database where the backend allows it
    /// (the exchange's only write). `false`, with nothing written, if the code is unknown or
    /// was used, or the browser session it came from has ended (the core checked it before, but
    /// a logout may commit in between; one that commits after ends the grant with its other
    /// child sessions): of N concurrent exchanges of one code, on one node or many, exactly one
    /// gets `true`.
    async fn redeem_oidc_code(
        &self,
        code_hash: &str,
        session: &NewSession,
        token: Option<&NewRefreshToken>,
    ) -> StoreResult<bool>;
    /// Which second factors the account has, in one read.
    async fn second_factors(&self, account_id: &str) -> StoreResult<SecondFactors>;
}

/// One write transaction, the core's unit of work. Reads through it see its own writes; on
/// PostgreSQL, `account`, `link_token` and `member` also lock the row they return until it ends
/// (what the core decides on must not change under it). SQLite runs one write transaction at a
/// time anyway (`BEGIN IMMEDIATE` on the single writer connection).
#[async_trait]
pub trait Tx: Send {
    /// Makes every write of this transaction durable at once.
    async fn commit(self: Box<Self>) -> StoreResult<()>;

    async fn insert_organization(&mut self, org: &OrganizationRecord) -> StoreResult<()>;
    async fn set_organization_status(
        &mut self,
        id: &str,
        status: OrganizationStatus,
    ) -> StoreResult<()>;
    /// Marks that the organization has had its first account; true for the one caller that
    /// made that mark (the others wait for it and then find it made).
    async fn claim_first_account(&mut self, organization_id: &str) -> StoreResult<bool>;

    async fn insert_account(&mut self, new: &NewAccount) -> StoreResult<AccountRecord>;
    async fn account(&mut self, id: &str) -> StoreResult<Option<AccountRecord>>;
    /// `None` if there is no such account.
    async fn update_account(
        &mut self,
        id: &str,
        update: &AccountUpdate,
        now: i64,
    ) -> StoreResult<Option<AccountRecord>>;

    /// Stores a session with its first refresh token.
    async fn insert_session(
        &mut self,
        session: &NewSession,
        token: &NewRefreshToken,
    ) -> StoreResult<()>;
    /// Unrevoked sessions of an account, expired or not, newest first.
    async fn unrevoked_sessions(&mut self, account_id: &str) -> StoreResult<Vec<SessionRecord>>;
    /// Revokes one of the account's sessions; false if it was not unrevoked.
    async fn revoke_session(
        &mut self,
        account_id: &str,
        session_id: &str,
        reason: RevokeReason,
        now: i64,
    ) -> StoreResult<bool>;
    /// Revokes every unrevoked session of the account except `keep`; returns how many.
    async fn revoke_sessions(
        &mut self,
        account_id: &str,
        keep: Option<&str>,
        reason: RevokeReason,
        now: i64,
    ) -> StoreResult<u64>;

    async fn insert_link_token(
        &mut self,
        kind: LinkKind,
        account_id: &str,
        token_hash: &str,
        now: i64,
        expires_at: i64,
    ) -> StoreResult<()>;
    async fn link_token(
        &mut self,
        kind: LinkKind,
        token_hash: &str,
    ) -> StoreResult<Option<LinkTokenRecord>>;
    /// Marks a link token used; false if it already was.
    async fn spend_link_token(
        &mut self,
        kind: LinkKind,
        token_hash: &str,
        now: i64,
    ) -> StoreResult<bool>;
    /// Marks every unused link token of this kind of the account used; how many were.
    async fn spend_link_tokens_of(
        &mut self,
        kind: LinkKind,
        account_id: &str,
        now: i64,
    ) -> StoreResult<u64>;

    async fn record_audit(&mut self, event: &AuditEvent, now: i64) -> StoreResult<()>;
    async fn insert_outbox(&mut self, email: &OutboxRecord) -> StoreResult<()>;
    /// Claims up to `limit` emails due by `now` for this node until `until` (a node that dies
    /// while sending leaves them to another once that passes): of nodes claiming at once, each
    /// email goes to one.
    async fn claim_outbox(
        &mut self,
        now: i64,
        until: i64,
        limit: i64,
    ) -> StoreResult<Vec<OutboxRecord>>;
    /// Records how the attempt at `claimed` (as [`Tx::claim_outbox`] returned it) went. A failed
    /// attempt is recorded only while this claim stands, so a node whose claim ran out cannot
    /// undo what the node that took over recorded; a delivery is recorded in any case.
    async fn settle_outbox(
        &mut self,
        claimed: &OutboxRecord,
        delivery: &Delivery,
        now: i64,
    ) -> StoreResult<()>;
    async fn insert_signing_key(&mut self, key: &SigningKeyRecord) -> StoreResult<()>;
    /// False if there was no such key.
    async fn delete_signing_key(&mut self, kid: &str) -> StoreResult<bool>;
    /// Stores `value` under `name` unless a value exists, and returns the stored one, so that
    /// every node ends up with the same secret.
    async fn secret_or_insert(&mut self, name: &str, value: &str, now: i64) -> StoreResult<String>;
    /// Up to `limit` members whose PESEL is still in clear (written before encryption came in):
    /// (id, organization id, PESEL).
    async fn clear_pesels(&mut self, limit: i64) -> StoreResult<Vec<(String, String, String)>>;
    /// Up to `limit` members, by id after `after`, whose PESEL is stored other than as
    /// `pattern`: (id, organization id, stored PESEL).
    async fn members_not_under(
        &mut self,
        pattern: &str,
        after: &str,
        limit: i64,
    ) -> StoreResult<Vec<(String, String, String)>>;
    /// Up to `limit` members by id after `after`, with the fields search text is made of:
    /// (id, imie, nazwisko, miejscowosc, wojewodztwo, email, search, nazwisko_sort).
    async fn member_texts(&mut self, after: &str, limit: i64) -> StoreResult<Vec<MemberTexts>>;
    /// Replaces a member's search text (its search index follows) and sort keys (imie,
    /// nazwisko, miejscowosc, wojewodztwo).
    async fn set_member_derived(
        &mut self,
        id: &str,
        search: &str,
        sort_keys: [&str; 4],
    ) -> StoreResult<()>;
    /// Gives every member without a place one, and says how many there were. Places are
    /// SQLite's (migration 0021): rows stored before it, and rows whose surname key
    /// `set_member_derived` changed, have none until this runs at start-up. Nothing to do on
    /// PostgreSQL.
    async fn place_unplaced_members(&mut self) -> StoreResult<u64>;
    /// Stores a member's encrypted PESEL and its blind index.
    async fn seal_pesel(&mut self, id: &str, stored: &str, index: &str) -> StoreResult<()>;
    /// The secret `name`, if stored.
    async fn secret(&mut self, name: &str) -> StoreResult<Option<String>>;
    /// Stores `value` under `name`, replacing what was there.
    async fn set_secret(&mut self, name: &str, value: &str, now: i64) -> StoreResult<()>;

    /// Takes up to `sessions` sessions that ended (expired or were revoked) before `cut`, deletes
    /// at most `tokens` of their refresh tokens, and then those of them with no token left;
    /// returns (tokens, sessions) deleted. The sessions come from the indexes on the times they
    /// ended, and the tokens by following each session's chain from its first token (the one
    /// token indexed by its session, migration 0024; a chain cut short has the token left first
    /// made its first), so a batch reads about what it deletes, however many live tokens there
    /// are.
    async fn delete_ended_sessions(
        &mut self,
        cut: i64,
        sessions: i64,
        tokens: i64,
    ) -> StoreResult<(u64, u64)>;
    /// Deletes at most `limit` rows of `litter` older than `cut`; how many went.
    async fn delete_litter(&mut self, litter: Litter, cut: i64, limit: i64) -> StoreResult<u64>;
    /// Takes or renews the lease `name` for `holder` until `until`: true if `holder` now has
    /// it (it was free, had run out by `now`, or was already `holder`'s).
    async fn take_lease(
        &mut self,
        name: &str,
        holder: &str,
        now: i64,
        until: i64,
    ) -> StoreResult<bool>;
    /// Gives the lease `name` up if `holder` has it, so that another node may take it at once.
    async fn release_lease(&mut self, name: &str, holder: &str) -> StoreResult<()>;

    async fn insert_member(&mut self, member: &MemberRecord) -> StoreResult<()>;
    async fn insert_members(&mut self, members: &[MemberRecord]) -> StoreResult<()>;
    async fn member(
        &mut self,
        organization_id: &str,
        id: &str,
    ) -> StoreResult<Option<MemberRecord>>;
    /// Replaces the member's fields if its version is `expected`, and bumps the version.
    async fn update_member(
        &mut self,
        member: &MemberRecord,
        expected: i64,
    ) -> StoreResult<VersionedUpdate>;
    async fn delete_member(&mut self, organization_id: &str, id: &str) -> StoreResult<bool>;
    /// Ids of the organization's owners, locked until the transaction ends (on PostgreSQL, in
    /// id order, so that two owners leaving at once wait for each other instead of deadlocking,
    /// and cannot both count on the other staying).
    async fn owners(&mut self, organization_id: &str) -> StoreResult<Vec<String>>;
    /// Deletes an account with its sessions and links (by cascade), its sessions' refresh
    /// tokens (their chains, `sql::token_chains`: no foreign key ties a token to its session,
    /// migration 0024) and the outbox emails addressed to it; false if there was none.
    async fn delete_account(&mut self, id: &str) -> StoreResult<bool>;
    /// The account's TOTP factor, locked until the transaction ends on PostgreSQL.
    async fn totp_factor(&mut self, account_id: &str) -> StoreResult<Option<TotpRecord>>;
    /// Stores a new, unconfirmed TOTP factor in place of an unconfirmed one; false (nothing
    /// written) when the account has a confirmed one.
    async fn put_totp(&mut self, account_id: &str, secret: &str, now: i64) -> StoreResult<bool>;
    /// Accepts `step`'s code: confirms the factor (`confirm`) or uses a confirmed one, only if
    /// `step` is later than the last accepted. False: a replayed code, or no such factor.
    async fn accept_totp_step(
        &mut self,
        account_id: &str,
        step: i64,
        confirm: bool,
        now: i64,
    ) -> StoreResult<bool>;
    /// Removes the account's TOTP factor (its recovery codes stay); how many rows went.
    async fn delete_totp(&mut self, account_id: &str) -> StoreResult<u64>;
    /// Replaces the account's recovery codes with these (SHA-256 hex of each).
    async fn replace_recovery_codes(
        &mut self,
        account_id: &str,
        hashes: &[String],
    ) -> StoreResult<()>;
    /// Spends one unused recovery code; false when there is none with that hash.
    async fn spend_recovery_code(
        &mut self,
        account_id: &str,
        hash: &str,
        now: i64,
    ) -> StoreResult<bool>;
    /// Up to `limit` (account id, sealed secret) of TOTP factors stored other than as `pattern`,
    /// with account ids after `after`, in id order.
    async fn totp_secrets_not_under(
        &mut self,
        pattern: &str,
        after: &str,
        limit: i64,
    ) -> StoreResult<Vec<(String, String)>>;
    /// Stores a TOTP secret sealed anew.
    async fn seal_totp(&mut self, account_id: &str, secret: &str) -> StoreResult<()>;
    async fn insert_mfa_ticket(
        &mut self,
        token_hash: &str,
        account_id: &str,
        now: i64,
        expires_at: i64,
    ) -> StoreResult<()>;
    /// A second-factor ticket, locked until the transaction ends on PostgreSQL.
    async fn mfa_ticket(&mut self, token_hash: &str) -> StoreResult<Option<MfaTicketRecord>>;
    /// Counts a wrong code against the ticket.
    async fn mfa_ticket_failed(&mut self, token_hash: &str) -> StoreResult<()>;
    /// Uses the ticket up; false if it was used already.
    async fn spend_mfa_ticket(&mut self, token_hash: &str, now: i64) -> StoreResult<bool>;
    /// The account's passkeys, oldest first.
    async fn passkeys(&mut self, account_id: &str) -> StoreResult<Vec<PasskeyRecord>>;
    /// Which second factors the account has, as this transaction sees it.
    async fn second_factors(&mut self, account_id: &str) -> StoreResult<SecondFactors>;
    /// The passkey with this credential id, whoever's it is.
    async fn passkey_by_credential(
        &mut self,
        credential_id: &str,
    ) -> StoreResult<Option<PasskeyRecord>>;
    /// Stores a new passkey; false (nothing written) when its credential id is registered
    /// already.
    async fn insert_passkey(&mut self, passkey: &PasskeyRecord) -> StoreResult<bool>;
    /// Records a use: the credential as updated, its signature counter, and when.
    async fn passkey_used(
        &mut self,
        id: &str,
        credential: &str,
        sign_count: i64,
        now: i64,
    ) -> StoreResult<()>;
    /// Removes one of the account's passkeys; false if it has none with that id.
    async fn delete_passkey(&mut self, account_id: &str, id: &str) -> StoreResult<bool>;
    async fn insert_oidc_client(&mut self, client: &OidcClientRecord) -> StoreResult<()>;
    /// Removes one of the organization's clients; false if it has none with that id.
    async fn delete_oidc_client(&mut self, organization_id: &str, id: &str) -> StoreResult<bool>;
    async fn insert_oidc_request(&mut self, request: &OidcRequestRecord) -> StoreResult<()>;
    /// False if it was not there (used or expired already): of two concurrent finishes of one
    /// request, one gets true.
    async fn delete_oidc_request(&mut self, id: &str) -> StoreResult<bool>;
    /// Records (or widens) what the account allowed the client.
    async fn save_oidc_consent(
        &mut self,
        account_id: &str,
        client_id: &str,
        scope: &str,
        now: i64,
    ) -> StoreResult<()>;
    async fn insert_oidc_code(&mut self, code: &OidcCodeRecord) -> StoreResult<()>;
    /// Revokes every unrevoked grant of a client (it was removed); how many.
    async fn revoke_client_sessions(
        &mut self,
        client_id: &str,
        reason: crate::domain::RevokeReason,
        now: i64,
    ) -> StoreResult<u64>;
    /// Revokes every unrevoked session opened from `parent_id` (a browser session's grants);
    /// how many.
    async fn revoke_child_sessions(
        &mut self,
        parent_id: &str,
        reason: crate::domain::RevokeReason,
        now: i64,
    ) -> StoreResult<u64>;
    /// Stores a pending change of the account's email to `new_email`, confirmed by the link
    /// token whose hash this is.
    async fn insert_email_change(
        &mut self,
        token_hash: &str,
        account_id: &str,
        new_email: &str,
        now: i64,
        expires_at: i64,
    ) -> StoreResult<()>;
    /// The new address of a pending email change.
    async fn email_change_address(&mut self, token_hash: &str) -> StoreResult<Option<String>>;
    /// Removes all the account's passkeys; how many went.
    async fn delete_passkeys(&mut self, account_id: &str) -> StoreResult<u64>;
    async fn insert_ceremony(&mut self, ceremony: &CeremonyRecord) -> StoreResult<()>;
    /// Removes and returns the ceremony of `kind` with this challenge hash, if one is there:
    /// whoever takes it finishes it, once.
    async fn take_ceremony(
        &mut self,
        challenge_hash: &str,
        kind: &str,
    ) -> StoreResult<Option<CeremonyRecord>>;
}

pub type DynStore = Arc<dyn Store>;

/// Opens (creating if needed) the database the URL names and runs its migrations. With
/// PostgreSQL, a request waits at most `timeout` for a connection (`database_timeout`).
///
/// `serving`: the store answers requests, so with PostgreSQL every statement is bounded too:
/// the server cancels it after `statement_timeout` (a little under `timeout`, so that a
/// statement that runs out is not left to finish after the client was told 503), and every call
/// has a client-side deadline of `timeout` for a server that cannot even do that ([`Deadline`]).
/// Command-line tools open the store without these bounds.
pub async fn connect(
    url: &str,
    timeout: std::time::Duration,
    serving: bool,
) -> StoreResult<DynStore> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let cut = serving.then(|| statement_timeout(timeout));
        let store: DynStore = Arc::new(PostgresStore::connect(url, timeout, cut).await?);
        Ok(if serving {
            Deadline::wrap(store, timeout)
        } else {
            store
        })
    } else {
        Ok(Arc::new(SqliteStore::connect(url, serving).await?))
    }
}

/// PostgreSQL's `statement_timeout` for a `database_timeout` of `timeout`: 200 ms less, so the
/// server gives up first, and at least 100 ms.
pub fn statement_timeout(timeout: std::time::Duration) -> std::time::Duration {
    timeout
        .saturating_sub(std::time::Duration::from_millis(200))
        .max(std::time::Duration::from_millis(100))
}

/// Starts a transaction on its own task. sqlx builds its `Transaction` only after the database
/// has acknowledged `BEGIN`; a future dropped between the two (a client hanging up) would leave
/// the connection in a transaction that nothing rolls back, and the next `BEGIN` on it would fail
/// (SQLite) or nest in it (PostgreSQL). On its own task the `Transaction` is always built, and
/// if nobody is left to use it, dropping it rolls it back. `core::tests::
/// a_reset_cut_short_at_any_point_is_all_or_nothing` found this.
async fn begin_uncut<T: Send + 'static>(
    begin: impl std::future::Future<Output = Result<T, sqlx::Error>> + Send + 'static,
) -> StoreResult<T> {
    match tokio::spawn(begin).await {
        Ok(tx) => Ok(tx?),
        Err(e) => Err(StoreError::Database(sqlx::Error::Protocol(format!(
            "starting a transaction: {e}"
        )))),
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
pub enum SearchIndex {
    /// `LIKE` on the `search` column of PostgreSQL's narrow `member_search` table, which a
    /// trigram GIN index (pg_trgm) serves (`like_trigram`).
    LikeTrigram,
    /// The FTS5 trigram table `member_places` (SQLite, keyed by place), for queries of three
    /// or more chars.
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
    let tiles: Vec<String> = starts
        .into_iter()
        .map(|i| chars[i..(i + 3).min(chars.len())].iter().collect())
        .collect();
    fts_all(&tiles)
}

/// An FTS5 query for rows holding every one of these strings: each quoted, joined by AND.
fn fts_all(strings: &[String]) -> String {
    strings
        .iter()
        .map(|s| fts_phrase(s))
        .collect::<Vec<_>>()
        .join(" AND ")
}

/// An FTS5 phrase of the whole string (quotes doubled): with the trigram tokenizer, rows
/// holding it as a substring.
pub(crate) fn fts_phrase(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// The condition on `search` that finds `q` through pg_trgm's GIN index (PostgreSQL's narrow
/// `member_search`, migration 0021), its binds pushed onto `binds`: one LIKE a chosen trigram,
/// which the index serves, and the substring itself through `strpos`, which it cannot, so the
/// planner keeps it for the rows found. Without chosen trigrams, one `LIKE '%q%'`.
pub(crate) fn like_trigram(q: &str, chosen: &[String], binds: &mut Vec<String>) -> String {
    if chosen.is_empty() {
        binds.push(format!("%{}%", escape_like(q)));
        return format!("search LIKE ${} ESCAPE '\\'", binds.len());
    }
    let mut condition = Vec::with_capacity(chosen.len() + 1);
    for t in chosen {
        binds.push(format!("%{}%", escape_like(t)));
        condition.push(format!("search LIKE ${} ESCAPE '\\'", binds.len()));
    }
    binds.push(q.to_string());
    condition.push(format!("strpos(search, ${}) > 0", binds.len()));
    condition.join(" AND ")
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
        let chosen = &filter.index_trigrams;
        if fts {
            binds.push(if chosen.is_empty() {
                fts_tiles(q)
            } else {
                fts_all(chosen)
            });
            binds.push(q.clone());
            condition.push_str(&format!(
                " AND place IN (SELECT rowid FROM member_places WHERE member_places MATCH ${}) \
                 AND instr(search, ${}) > 0",
                binds.len() - 1,
                binds.len()
            ));
        } else if index == SearchIndex::LikeTrigram {
            let found = like_trigram(q, chosen, &mut binds);
            condition.push_str(&format!(
                " AND id IN (SELECT id FROM member_search WHERE organization_id = $1 AND {found})"
            ));
        } else {
            // SQLite, under three characters: no trigram to look up, so a scan.
            binds.push(format!("%{}%", escape_like(q)));
            condition.push_str(&format!(" AND search LIKE ${} ESCAPE '\\'", binds.len()));
        }
    }
    if let Some(w) = &filter.wojewodztwo {
        binds.push(w.clone());
        condition.push_str(&format!(" AND wojewodztwo = ${}", binds.len()));
    }
    if let Some(index) = &filter.pesel_index {
        binds.push(index.clone());
        condition.push_str(&format!(" AND pesel_index = ${}", binds.len()));
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
