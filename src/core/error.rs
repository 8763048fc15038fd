//! What can go wrong in the core, in terms a surface can render in its own envelope and language.

use crate::crypto::hasher::HashError;
use crate::domain::FieldError;
use crate::store::{StoreError, UniqueField};

#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    #[error("username taken")]
    UsernameTaken,
    #[error("email taken")]
    EmailTaken,
    #[error("phone taken")]
    PhoneTaken,
    /// Unknown user, wrong password, or an account that may not log in: one answer for all.
    #[error("invalid credentials")]
    InvalidCredentials,
    /// The current password given to a password change was wrong.
    #[error("wrong current password")]
    WrongPassword,
    #[error("rate limited")]
    RateLimited { retry_after_secs: u64 },
    /// The password-hashing queue is full.
    #[error("busy")]
    Busy { retry_after_secs: u64 },
    #[error("no access token")]
    NoToken,
    #[error("access token expired")]
    TokenExpired,
    #[error("access token invalid")]
    TokenInvalid,
    #[error("refresh token unknown")]
    RefreshUnknown,
    #[error("refresh token expired")]
    RefreshExpired,
    #[error("refresh token reused")]
    RefreshReused,
    #[error("refresh token already rotated")]
    RefreshRotated,
    /// An activation token that is unknown, used or expired.
    #[error("activation token invalid")]
    ActivationTokenInvalid,
    /// A password-reset token that is unknown, used or expired.
    #[error("reset token invalid")]
    ResetTokenInvalid,
    /// An admin tried to change their own role or status.
    #[error("cannot change own account")]
    CannotChangeSelf,
    /// A versioned update named a version other than the stored one.
    #[error("version conflict (current {current})")]
    VersionConflict { current: i64 },
    /// The last owner of an organization may not delete its own account.
    #[error("last owner")]
    LastOwner,
    /// An import was refused; nothing was stored. `errors` is capped, `total` is not.
    #[error("import refused")]
    Import {
        errors: Vec<crate::core::members_csv::RowError>,
        total: usize,
    },
    #[error("member not found")]
    MemberNotFound,
    #[error("not found")]
    NotFound,
    /// The caller's role is below what the action needs.
    #[error("requires the {required:?} role")]
    Forbidden { required: crate::core::Role },
    /// The database is out of reach (SPEC §9): 503 `database_unavailable`, try again soon.
    #[error("database unavailable")]
    DatabaseUnavailable { retry_after_secs: u64 },
    /// The disk is full or the database read-only (SPEC §9): 503 `storage_full` for writes.
    #[error("storage full")]
    StorageFull { retry_after_secs: u64 },
    /// A second-factor code (TOTP or recovery) that is wrong, used, or of no factor.
    #[error("invalid second-factor code")]
    InvalidCode,
    /// An enrolment-only token (SPEC §13) used for something else than setting up a factor.
    #[error("second factor enrolment required")]
    MfaEnrollmentRequired,
    /// An `mfaToken` that is unknown, expired, used, or out of tries.
    #[error("second-factor ticket invalid")]
    MfaTokenInvalid,
    /// TOTP is on already: it must be disabled before a new secret is made.
    #[error("TOTP already enabled")]
    TotpEnabled,
    /// A TOTP confirmation without a secret made for it first.
    #[error("no TOTP enrolment started")]
    TotpNotStarted,
    /// A WebAuthn answer that is not one: not the JSON a browser sends, or no challenge in it.
    #[error("malformed WebAuthn credential")]
    CredentialMalformed,
    /// A passkey sign-in refused: no such ceremony (expired, used, another's), a credential
    /// not registered, or a signature, origin or relying party that does not verify.
    #[error("passkey not accepted")]
    PasskeyInvalid,
    /// A passkey registration refused: no such ceremony, or an answer that does not verify.
    #[error("passkey registration refused")]
    PasskeyRejected,
    /// The credential is registered already (to this or another account).
    #[error("passkey already registered")]
    PasskeyExists,
    /// Changing the account's passkeys from a session opened more than
    /// [`crate::core::passkeys::RECENT_SIGN_IN_MS`] ago.
    #[error("a recent sign-in is required")]
    ReauthenticationRequired,
    /// An email-change link that is unknown, expired or used.
    #[error("email confirmation link invalid")]
    EmailTokenInvalid,
    /// A passkey step for an account that has no passkey.
    #[error("the account has no passkey")]
    NoPasskey,
    #[error("internal error: {0}")]
    Internal(String),
}

pub type CoreResult<T> = Result<T, CoreError>;

impl From<StoreError> for CoreError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unique(UniqueField::Username) => CoreError::UsernameTaken,
            StoreError::Unique(UniqueField::Email) => CoreError::EmailTaken,
            StoreError::Unique(UniqueField::Phone) => CoreError::PhoneTaken,
            StoreError::Unavailable(e) => {
                tracing::warn!(error = %e, "database unavailable");
                CoreError::DatabaseUnavailable {
                    retry_after_secs: 2,
                }
            }
            StoreError::StorageFull(e) => {
                log_storage_full(&e);
                CoreError::StorageFull {
                    retry_after_secs: 30,
                }
            }
            other => CoreError::Internal(other.to_string()),
        }
    }
}

impl From<HashError> for CoreError {
    fn from(e: HashError) -> Self {
        match e {
            HashError::Busy => CoreError::Busy {
                retry_after_secs: 1,
            },
            HashError::Failed(m) => CoreError::Internal(m),
        }
    }
}

/// When a full or read-only storage was last logged (Unix ms): once a minute, not once per
/// request, for the whole process.
static STORAGE_FULL_LOGGED_AT: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);

fn log_storage_full(error: &str) {
    use std::sync::atomic::Ordering;
    let now = crate::core::now_ms();
    let logged = STORAGE_FULL_LOGGED_AT.load(Ordering::Acquire);
    if now - logged >= 60_000
        && STORAGE_FULL_LOGGED_AT
            .compare_exchange(logged, now, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    {
        tracing::error!(
            error,
            "the database cannot be written (disk full or read-only): writes answer 503 storage_full, reads go on; logged once a minute"
        );
    }
}
