//! Administration of an organization's accounts: list, change roles within the rules of SPEC §2,
//! disable. Every query is scoped to the caller's organization.

use crate::core::accounts::STATUS_ACTIVE;
use crate::core::{Client, Core, CoreError, CoreResult, Role, now_ms};
use crate::crypto::jwt::Claims;
use crate::domain::{FieldError, Problem};
use crate::store::{AccountRecord, AuditEvent};

pub const STATUS_DISABLED: &str = "disabled";

/// A change an admin asks for; `None` leaves the field as it is.
#[derive(Debug, Default)]
pub struct AccountChange<'a> {
    pub role: Option<&'a str>,
    pub status: Option<&'a str>,
}

impl Core {
    /// Fails unless the token's role is at least `required`.
    pub fn require(&self, claims: &Claims, required: Role) -> CoreResult<Role> {
        let role = Core::role_of(claims);
        if role >= required {
            Ok(role)
        } else {
            Err(CoreError::Forbidden { required })
        }
    }

    /// The organization's audit trail, newest first (admins).
    pub async fn audit_trail(
        &self,
        claims: &Claims,
        before: Option<i64>,
        limit: Option<i64>,
    ) -> CoreResult<Vec<crate::store::AuditRecord>> {
        self.require(claims, Role::Admin)?;
        let limit = limit.unwrap_or(100).clamp(1, 1000);
        Ok(self.store.audit_events(&claims.org, before, limit).await?)
    }

    pub async fn list_accounts(&self, claims: &Claims) -> CoreResult<Vec<AccountRecord>> {
        self.require(claims, Role::Admin)?;
        Ok(self.store.accounts(&claims.org).await?)
    }

    /// One account of the caller's organization; another organization's is not found.
    pub async fn account_of_org(&self, claims: &Claims, id: &str) -> CoreResult<AccountRecord> {
        self.require(claims, Role::Admin)?;
        match self.store.account(id).await? {
            Some(a) if a.organization_id == claims.org => Ok(a),
            _ => Err(CoreError::NotFound),
        }
    }

    /// Changes role and/or status. An admin manages accounts below their own role and may grant
    /// at most moderator; only an owner grants admin or owner. Nobody changes their own account,
    /// so an organization cannot lose its last owner by accident. Disabling ends every session.
    pub async fn change_account(
        &self,
        claims: &Claims,
        id: &str,
        change: AccountChange<'_>,
        client: &Client,
    ) -> CoreResult<AccountRecord> {
        let actor = self.require(claims, Role::Admin)?;
        let mut errors = Vec::new();
        let role = match change.role {
            None => None,
            Some(r) => match Role::parse(r.trim().to_ascii_lowercase().trim_start_matches("role_"))
            {
                Some(role) => Some(role),
                None => {
                    errors.push(FieldError {
                        field: "role",
                        problem: Problem::Format,
                    });
                    None
                }
            },
        };
        let status = match change.status.map(str::trim) {
            None => None,
            Some(s) if s == STATUS_ACTIVE || s == STATUS_DISABLED => Some(s),
            Some(_) => {
                errors.push(FieldError {
                    field: "status",
                    problem: Problem::Format,
                });
                None
            }
        };
        if !errors.is_empty() {
            return Err(CoreError::Validation(errors));
        }
        let target = self.account_of_org(claims, id).await?;
        if target.id == claims.sub {
            return Err(CoreError::CannotChangeSelf);
        }
        let target_role = Role::parse(&target.role).unwrap_or(Role::User);
        if actor < Role::Owner && target_role >= actor {
            return Err(CoreError::Forbidden {
                required: Role::Owner,
            });
        }
        if actor < Role::Owner && role.is_some_and(|r| r >= actor) {
            return Err(CoreError::Forbidden {
                required: Role::Owner,
            });
        }
        let now = now_ms();
        let updated = self
            .store
            .update_account(&claims.org, id, role.map(Role::as_str), status, now)
            .await?
            .ok_or(CoreError::NotFound)?;
        self.forget_account(&updated.id);
        if status == Some(STATUS_DISABLED) || role.is_some_and(|r| r < target_role) {
            // A disabled or demoted account must not keep its sessions; a promotion shows in the
            // next refreshed access token, which re-reads the role.
            self.store
                .revoke_sessions(&updated.id, None, "account_changed", now)
                .await?;
        }
        self.audit(AuditEvent {
            organization_id: Some(claims.org.clone()),
            actor_id: Some(claims.sub.clone()),
            action: "account_changed",
            target: Some(updated.id.clone()),
            ip: client.ip.map(|ip| ip.to_string()),
        })
        .await;
        Ok(updated)
    }
}
