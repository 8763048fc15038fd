//! A deadline on every call into a PostgreSQL store while serving (`database_timeout`).
//!
//! The pool's acquire timeout bounds the wait for a connection, but not a statement already sent
//! when the server freezes (a stopped process, a full disk on its side, a network cut without a
//! reset): the kernel keeps the connection open and the answer never comes. [`Deadline`] gives
//! each `Store` and `Tx` call at most `limit`; a call that runs out is dropped and answers
//! [`StoreError::Unavailable`], so the request gets 503 `database_unavailable` like any other
//! unreachable-database answer. What a dropped call leaves is safe: a dropped `Tx` rolls back
//! (sqlx queues the rollback on the connection), and a connection cut off mid-statement is
//! recycled by the pool, whose check before handing out a connection is bounded by the acquire
//! timeout. A `commit` that runs out is ambiguous, as any lost commit acknowledgement is: the
//! client is told 503 and may find its write done when it tries again.
//!
//! Every call on the request path is far shorter than the limit (the slowest, a page of a
//! 100 000-member search, takes ~15 ms). The one kind of call that may legitimately take
//! longer is bulk work, a CSV import of tens of thousands of members (`taken_pesel_indexes`,
//! `insert_members`, and the commit after them, which also refreshes the planner's statistics):
//! those calls get [`BULK_LIMIT`] once they carry more than [`BULK_ROWS`] rows. Command-line
//! tools (`brama members import`, `migrate`) run without a deadline: the operator watches them.

use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;

use super::*;

/// The deadline of bulk calls (at least the configured one).
pub const BULK_LIMIT: Duration = Duration::from_secs(60);
/// A call with more rows than this is bulk work.
pub const BULK_ROWS: usize = 500;

/// Bounds `call` by `limit`.
pub(super) async fn within<T>(
    limit: Duration,
    call: impl Future<Output = StoreResult<T>>,
) -> StoreResult<T> {
    match tokio::time::timeout(limit, call).await {
        Ok(result) => result,
        Err(_) => Err(StoreError::Unavailable(format!(
            "no answer from the database within {limit:?}"
        ))),
    }
}

/// A store whose every call has a deadline.
pub struct Deadline {
    inner: DynStore,
    limit: Duration,
}

impl Deadline {
    pub fn wrap(inner: DynStore, limit: Duration) -> DynStore {
        Arc::new(Deadline { inner, limit })
    }
}

struct DeadlineTx {
    inner: Box<dyn Tx>,
    limit: Duration,
    /// Whether this transaction did bulk work, so that its commit may take as long.
    bulk: bool,
}

/// The deadline of a call with `rows` rows.
fn for_rows(limit: Duration, rows: usize) -> Duration {
    if rows > BULK_ROWS {
        limit.max(BULK_LIMIT)
    } else {
        limit
    }
}

/// An `impl $trait for $ty` with the methods written out (`{ … }`) and each listed one forwarded
/// to `inner` within `limit`. The impl is made here, whole, so `async_trait` sees every method.
macro_rules! forwarding {
    (impl $trait:ident for $ty:ty { $($written:tt)* }
     &self: $($name:ident($($arg:ident: $aty:ty),*) -> $ret:ty;)*) => {
        #[async_trait]
        impl $trait for $ty {
            $($written)*
            $(
                async fn $name(&self $(, $arg: $aty)*) -> StoreResult<$ret> {
                    within(self.limit, self.inner.$name($($arg),*)).await
                }
            )*
        }
    };
    (impl $trait:ident for $ty:ty { $($written:tt)* }
     &mut self: $($name:ident($($arg:ident: $aty:ty),*) -> $ret:ty;)*) => {
        #[async_trait]
        impl $trait for $ty {
            $($written)*
            $(
                async fn $name(&mut self $(, $arg: $aty)*) -> StoreResult<$ret> {
                    within(self.limit, self.inner.$name($($arg),*)).await
                }
            )*
        }
    };
}

forwarding! {
    impl Store for Deadline {
        fn backend(&self) -> &'static str {
            self.inner.backend()
        }

        fn search_index(&self) -> crate::store::SearchIndex {
            self.inner.search_index()
        }

        async fn begin(&self) -> StoreResult<Box<dyn Tx>> {
            let inner = within(self.limit, self.inner.begin()).await?;
            Ok(Box::new(DeadlineTx {
                inner,
                limit: self.limit,
                bulk: false,
            }))
        }

        async fn taken_pesel_indexes(
            &self,
            organization_id: &str,
            indexes: &[String],
        ) -> StoreResult<Vec<String>> {
            let limit = for_rows(self.limit, indexes.len());
            within(limit, self.inner.taken_pesel_indexes(organization_id, indexes)).await
        }
    }
    &self:
    ping() -> ();
    after_rewrite() -> ();
    account(id: &str) -> Option<AccountRecord>;
    account_by_login(key: &str) -> Option<AccountRecord>;
    accounts(organization_id: &str) -> Vec<AccountRecord>;
    session(id: &str) -> Option<SessionRecord>;
    live_sessions(account_id: &str, now: i64) -> Vec<SessionRecord>;
    claim_refresh(token_hash: &str, next: NewRefreshToken, now: i64, client_id: Option<&str>) -> Option<Claimed>;
    refresh_token_state(token_hash: &str) -> Option<RefreshTokenState>;
    link_token(kind: LinkKind, token_hash: &str) -> Option<LinkTokenRecord>;
    signing_keys() -> Vec<SigningKeyRecord>;
    audit_events(organization_id: &str, filter: &AuditFilter, limit: i64) -> Vec<AuditRecord>;
    audit_trail(organization_id: &str, target: &str) -> Vec<TrailEntry>;
    outbox() -> Vec<OutboxRecord>;
    outbox_next_due() -> Option<i64>;
    pesels_not_under(pattern: &str) -> u64;
    member(organization_id: &str, id: &str) -> Option<MemberRecord>;
    list_members(organization_id: &str, filter: &MemberFilter) -> (Vec<MemberRecord>, i64);
    member_ids(organization_id: &str, after: Option<&ExportKey>, limit: i64) -> Vec<ExportKey>;
    sample_search_texts(limit: i64) -> Vec<String>;
    record_audits(events: &[(AuditEvent, i64)]) -> ();
    members_by_ids(organization_id: &str, ids: &[String]) -> Vec<MemberRecord>;
    totp_secrets_not_under(pattern: &str) -> u64;
    mfa_ticket(token_hash: &str) -> Option<MfaTicketRecord>;
    passkeys(account_id: &str) -> Vec<PasskeyRecord>;
    second_factors(account_id: &str) -> SecondFactors;
    oidc_clients(organization_id: &str) -> Vec<OidcClientRecord>;
    oidc_client(id: &str) -> Option<OidcClientRecord>;
    oidc_request(id: &str) -> Option<OidcRequestRecord>;
    oidc_consent(account_id: &str, client_id: &str) -> Option<String>;
    oidc_code(code_hash: &str) -> Option<OidcCodeRecord>;
    oidc_code_grant(code_hash: &str, now: i64) -> Option<OidcCodeGrant>;
    oidc_grant(id: &str) -> Option<OidcGrant>;
    redeem_oidc_code(code_hash: &str, session: &NewSession, token: Option<&NewRefreshToken>) -> bool;
}

forwarding! {
    impl Tx for DeadlineTx {
        async fn commit(self: Box<Self>) -> StoreResult<()> {
            let limit = for_rows(self.limit, if self.bulk { BULK_ROWS + 1 } else { 0 });
            within(limit, self.inner.commit()).await
        }

        async fn insert_members(&mut self, members: &[MemberRecord]) -> StoreResult<()> {
            self.bulk |= members.len() > BULK_ROWS;
            let limit = for_rows(self.limit, members.len());
            within(limit, self.inner.insert_members(members)).await
        }
    }
    &mut self:
    insert_organization(org: &OrganizationRecord) -> ();
    set_organization_status(id: &str, status: OrganizationStatus) -> ();
    claim_first_account(organization_id: &str) -> bool;
    insert_account(new: &NewAccount) -> AccountRecord;
    account(id: &str) -> Option<AccountRecord>;
    update_account(id: &str, update: &AccountUpdate, now: i64) -> Option<AccountRecord>;
    insert_session(session: &NewSession, token: &NewRefreshToken) -> ();
    unrevoked_sessions(account_id: &str) -> Vec<SessionRecord>;
    revoke_session(account_id: &str, session_id: &str, reason: RevokeReason, now: i64) -> bool;
    revoke_sessions(account_id: &str, keep: Option<&str>, reason: RevokeReason, now: i64) -> u64;
    insert_link_token(kind: LinkKind, account_id: &str, token_hash: &str, now: i64, expires_at: i64) -> ();
    link_token(kind: LinkKind, token_hash: &str) -> Option<LinkTokenRecord>;
    spend_link_token(kind: LinkKind, token_hash: &str, now: i64) -> bool;
    spend_link_tokens_of(kind: LinkKind, account_id: &str, now: i64) -> u64;
    record_audit(event: &AuditEvent, now: i64) -> ();
    insert_outbox(email: &OutboxRecord) -> ();
    claim_outbox(now: i64, until: i64, limit: i64) -> Vec<OutboxRecord>;
    settle_outbox(claimed: &OutboxRecord, delivery: &Delivery, now: i64) -> ();
    insert_signing_key(key: &SigningKeyRecord) -> ();
    delete_signing_key(kid: &str) -> bool;
    secret_or_insert(name: &str, value: &str, now: i64) -> String;
    secret(name: &str) -> Option<String>;
    clear_pesels(limit: i64) -> Vec<(String, String, String)>;
    members_not_under(pattern: &str, after: &str, limit: i64) -> Vec<(String, String, String)>;
    member_texts(after: &str, limit: i64) -> Vec<MemberTexts>;
    set_member_derived(id: &str, search: &str, sort_keys: [&str; 4]) -> ();
    place_unplaced_members() -> u64;
    seal_pesel(id: &str, stored: &str, index: &str) -> ();
    set_secret(name: &str, value: &str, now: i64) -> ();
    delete_ended_sessions(cut: i64, sessions: i64, tokens: i64) -> (u64, u64);
    delete_litter(litter: Litter, cut: i64, limit: i64) -> u64;
    take_lease(name: &str, holder: &str, now: i64, until: i64) -> bool;
    release_lease(name: &str, holder: &str) -> ();
    insert_member(member: &MemberRecord) -> ();
    member(organization_id: &str, id: &str) -> Option<MemberRecord>;
    update_member(member: &MemberRecord, expected: i64) -> VersionedUpdate;
    delete_member(organization_id: &str, id: &str) -> bool;
    owners(organization_id: &str) -> Vec<String>;
    delete_account(id: &str) -> bool;
    totp_factor(account_id: &str) -> Option<TotpRecord>;
    put_totp(account_id: &str, secret: &str, now: i64) -> bool;
    accept_totp_step(account_id: &str, step: i64, confirm: bool, now: i64) -> bool;
    delete_totp(account_id: &str) -> u64;
    replace_recovery_codes(account_id: &str, hashes: &[String]) -> ();
    spend_recovery_code(account_id: &str, hash: &str, now: i64) -> bool;
    totp_secrets_not_under(pattern: &str, after: &str, limit: i64) -> Vec<(String, String)>;
    seal_totp(account_id: &str, secret: &str) -> ();
    insert_mfa_ticket(token_hash: &str, account_id: &str, now: i64, expires_at: i64) -> ();
    mfa_ticket(token_hash: &str) -> Option<MfaTicketRecord>;
    mfa_ticket_failed(token_hash: &str) -> ();
    spend_mfa_ticket(token_hash: &str, now: i64) -> bool;
    passkeys(account_id: &str) -> Vec<PasskeyRecord>;
    second_factors(account_id: &str) -> SecondFactors;
    passkey_by_credential(credential_id: &str) -> Option<PasskeyRecord>;
    insert_passkey(passkey: &PasskeyRecord) -> bool;
    passkey_used(id: &str, credential: &str, sign_count: i64, now: i64) -> ();
    delete_passkey(account_id: &str, id: &str) -> bool;
    insert_oidc_client(client: &OidcClientRecord) -> ();
    delete_oidc_client(organization_id: &str, id: &str) -> bool;
    insert_oidc_request(request: &OidcRequestRecord) -> ();
    delete_oidc_request(id: &str) -> bool;
    save_oidc_consent(account_id: &str, client_id: &str, scope: &str, now: i64) -> ();
    insert_oidc_code(code: &OidcCodeRecord) -> ();
    revoke_child_sessions(parent_id: &str, reason: crate::domain::RevokeReason, now: i64) -> u64;
    revoke_client_sessions(client_id: &str, reason: crate::domain::RevokeReason, now: i64) -> u64;
    delete_passkeys(account_id: &str) -> u64;
    insert_email_change(token_hash: &str, account_id: &str, new_email: &str, now: i64, expires_at: i64) -> ();
    email_change_address(token_hash: &str) -> Option<String>;
    insert_ceremony(ceremony: &CeremonyRecord) -> ();
    take_ceremony(challenge_hash: &str, kind: &str) -> Option<CeremonyRecord>;
}
