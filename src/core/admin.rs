//! Administration of an organization's accounts: list, change roles within the rules of SPEC §2,
//! disable; and the audit trail. Every query is scoped to the actor's organization.

use crate::core::actor::{Granted, ManageAccounts, ReadAudit};
use crate::core::{AuditAction, Core, CoreError, CoreResult, now_ms};
use crate::domain::{AccountStatus, FieldError, Problem, RevokeReason, Role};
use crate::store::{AccountRecord, AccountUpdate, AuditRecord};

/// A change an admin asks for; `None` leaves the field as it is.
#[derive(Debug, Clone, Copy, Default)]
pub struct AccountChange {
    pub role: Option<Role>,
    pub status: Option<AccountStatus>,
}

/// How many audit events one page holds, unless asked otherwise, and at most.
const AUDIT_PAGE: i64 = 100;
const AUDIT_PAGE_MAX: i64 = 1000;

/// SPEC §2: below the owner, an actor manages only accounts below their own role and grants
/// at most the role below their own; an owner manages anyone (but themself, which the caller
/// checks, so that an organization cannot lose its last owner by accident).
pub fn check_account_change(actor: Role, target: Role, change: &AccountChange) -> CoreResult<()> {
    let outranked = actor < Role::Owner
        && (target >= actor || change.role.is_some_and(|granted| granted >= actor));
    if outranked {
        return Err(CoreError::Forbidden {
            required: Role::Owner,
        });
    }
    Ok(())
}

/// Whether a change ends the account's sessions: a disabled or demoted account must not keep
/// them; a promotion shows in the next refreshed access token, which re-reads the role.
pub fn change_ends_sessions(target: Role, change: &AccountChange) -> bool {
    change.status == Some(AccountStatus::Disabled) || change.role.is_some_and(|r| r < target)
}

/// The account `id` of the actor's organization, locked for the transaction; another
/// organization's is not found, and nobody acts on their own this way.
async fn managed_account(
    tx: &mut dyn crate::store::Tx,
    granted: &Granted<ManageAccounts>,
    id: &str,
) -> CoreResult<AccountRecord> {
    let target = tx
        .account(id)
        .await?
        .filter(|a| a.organization_id == granted.organization_id)
        .ok_or(CoreError::NotFound)?;
    if granted.account_id.as_deref() == Some(target.id.as_str()) {
        return Err(CoreError::CannotChangeSelf);
    }
    Ok(target)
}

impl Core {
    /// Removes every second factor of an account of the actor's organization and ends its
    /// sessions (SPEC §13: a person who lost their phone). The role rules are those of a change
    /// (SPEC §2); nobody resets their own. Audited `mfa.reset`.
    pub async fn reset_mfa(&self, granted: &Granted<ManageAccounts>, id: &str) -> CoreResult<()> {
        let now = now_ms();
        let mut tx = self.begin().await?;
        let target = managed_account(&mut *tx, granted, id).await?;
        check_account_change(granted.role, target.role, &AccountChange::default())?;
        tx.delete_totp(&target.id).await?;
        tx.delete_passkeys(&target.id).await?;
        tx.replace_recovery_codes(&target.id, &[]).await?;
        tx.revoke_sessions(&target.id, None, RevokeReason::MfaReset, now)
            .await?;
        let event = AuditAction::MfaReset.event(
            Some(&granted.organization_id),
            granted.account_id.as_deref(),
            Some(target.id.clone()),
            granted.ip,
        );
        tx.record_audit(&event, now).await?;
        tx.commit().await?;
        self.forget_sessions();
        Ok(())
    }

    /// [`Core::reset_mfa`] from the command line (`brama user reset-mfa --username U`): the
    /// operator acts as an owner of the account's organization.
    pub async fn reset_mfa_of(&self, login: &str) -> CoreResult<AccountRecord> {
        let account = self
            .store
            .account_by_login(&crate::domain::normalize_key(login))
            .await?
            .ok_or(CoreError::NotFound)?;
        let granted = crate::core::actor::Actor::operator(&account.organization_id)
            .grant::<ManageAccounts>()?;
        self.reset_mfa(&granted, &account.id).await?;
        Ok(account)
    }

    /// The organization's audit trail, newest first.
    pub async fn audit_trail(
        &self,
        granted: &Granted<ReadAudit>,
        filter: &crate::store::AuditFilter,
        limit: Option<i64>,
    ) -> CoreResult<Vec<AuditRecord>> {
        let limit = limit.unwrap_or(AUDIT_PAGE).clamp(1, AUDIT_PAGE_MAX);
        self.flush_audit().await;
        Ok(self
            .store
            .audit_events(&granted.organization_id, filter, limit)
            .await?)
    }

    pub async fn list_accounts(
        &self,
        granted: &Granted<ManageAccounts>,
    ) -> CoreResult<Vec<AccountRecord>> {
        Ok(self.store.accounts(&granted.organization_id).await?)
    }

    /// One account of the actor's organization; another organization's is not found.
    pub async fn account_of_org(
        &self,
        granted: &Granted<ManageAccounts>,
        id: &str,
    ) -> CoreResult<AccountRecord> {
        match self.store.account(id).await? {
            Some(a) if a.organization_id == granted.organization_id => Ok(a),
            _ => Err(CoreError::NotFound),
        }
    }

    /// Changes role and/or status (see [`check_account_change`]). Nobody changes their own
    /// account. The change, the sessions it ends and its audit event commit together.
    pub async fn change_account(
        &self,
        granted: &Granted<ManageAccounts>,
        id: &str,
        change: AccountChange,
    ) -> CoreResult<AccountRecord> {
        if change.status.is_some_and(|s| !s.settable_by_admin()) {
            return Err(CoreError::Validation(vec![FieldError {
                field: "status",
                problem: Problem::Format,
            }]));
        }
        let now = now_ms();
        let mut tx = self.begin().await?;
        let target = managed_account(&mut *tx, granted, id).await?;
        check_account_change(granted.role, target.role, &change)?;
        let update = AccountUpdate {
            role: change.role,
            status: change.status,
            ..AccountUpdate::default()
        };
        let updated = tx
            .update_account(&target.id, &update, now)
            .await?
            .ok_or(CoreError::NotFound)?;
        if change_ends_sessions(target.role, &change) {
            tx.revoke_sessions(&updated.id, None, RevokeReason::AccountChanged, now)
                .await?;
        }
        let event = AuditAction::AccountChanged.event(
            Some(&granted.organization_id),
            granted.account_id.as_deref(),
            Some(updated.id.clone()),
            granted.ip,
        );
        tx.record_audit(&event, now).await?;
        tx.commit().await?;
        self.forget_account(&updated.id);
        self.forget_sessions();
        Ok(updated)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(role: Option<Role>, status: Option<AccountStatus>) -> AccountChange {
        AccountChange { role, status }
    }

    #[test]
    fn admins_manage_below_themselves_and_grant_at_most_moderator() {
        let admin = Role::Admin;
        assert!(
            check_account_change(admin, Role::User, &change(Some(Role::Moderator), None)).is_ok()
        );
        assert!(
            check_account_change(
                admin,
                Role::Moderator,
                &change(None, Some(AccountStatus::Disabled))
            )
            .is_ok()
        );
        for (target, granted) in [
            (Role::User, Some(Role::Admin)),
            (Role::User, Some(Role::Owner)),
            (Role::Admin, None),
            (Role::Owner, Some(Role::User)),
        ] {
            assert!(
                matches!(
                    check_account_change(admin, target, &change(granted, None)),
                    Err(CoreError::Forbidden {
                        required: Role::Owner
                    })
                ),
                "{target:?} -> {granted:?}"
            );
        }
    }

    #[test]
    fn owners_manage_anyone() {
        for target in Role::ALL {
            for granted in Role::ALL {
                assert!(
                    check_account_change(Role::Owner, *target, &change(Some(*granted), None))
                        .is_ok()
                );
            }
        }
    }

    #[test]
    fn disabling_and_demoting_end_sessions_promoting_does_not() {
        assert!(change_ends_sessions(
            Role::User,
            &change(None, Some(AccountStatus::Disabled))
        ));
        assert!(change_ends_sessions(
            Role::Admin,
            &change(Some(Role::User), None)
        ));
        assert!(!change_ends_sessions(
            Role::User,
            &change(Some(Role::Admin), None)
        ));
        assert!(!change_ends_sessions(
            Role::User,
            &change(None, Some(AccountStatus::Active))
        ));
        assert!(!change_ends_sessions(
            Role::User,
            &change(Some(Role::User), None)
        ));
    }
}
