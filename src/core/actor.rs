//! Who is asking, and what they may do. The role table of SPEC §2 is written once, as the
//! [`Permission`] types below; an operation that needs a role takes a [`Granted`], which only
//! [`Actor::grant`] makes, so no operation can be reached without the check.

use std::marker::PhantomData;
use std::net::IpAddr;

use crate::core::{Client, CoreError, CoreResult};
use crate::domain::Role;

/// An account that proved who it is with a valid access token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub account_id: String,
    pub organization_id: String,
    /// The session (refresh-token family) the token was issued for.
    pub session_id: String,
    /// The role the token carries (the highest, if it carried several).
    pub role: Role,
    /// The token is for setting up a second factor only (`"mfa": "enrol"`, SPEC §13).
    pub enrolment_only: bool,
    /// The session was opened with a passkey (`hwk` in its `amr`).
    pub with_passkey: bool,
}

/// Who acts on an organization's data: an account, or the operator at the command line.
#[derive(Debug, Clone)]
pub struct Actor {
    pub organization_id: String,
    /// `None` for the command line.
    pub account_id: Option<String>,
    pub role: Role,
    pub ip: Option<IpAddr>,
}

impl Actor {
    pub fn account(caller: &Caller, client: &Client) -> Actor {
        Actor {
            organization_id: caller.organization_id.clone(),
            account_id: Some(caller.account_id.clone()),
            role: caller.role,
            ip: client.ip,
        }
    }

    /// The command line acts as the owner of an organization, with no account.
    pub fn operator(organization_id: &str) -> Actor {
        Actor {
            organization_id: organization_id.to_string(),
            account_id: None,
            role: Role::Owner,
            ip: None,
        }
    }

    /// The proof that this actor may do what `P` allows, or `Forbidden` naming the role needed.
    pub fn grant<P: Permission>(self) -> CoreResult<Granted<P>> {
        if self.role >= P::ROLE {
            Ok(Granted {
                actor: self,
                permission: PhantomData,
            })
        } else {
            Err(CoreError::Forbidden { required: P::ROLE })
        }
    }
}

/// Something only some roles may do.
pub trait Permission {
    /// The lowest role allowed.
    const ROLE: Role;
}

/// List, read, create and update members.
pub struct ManageMembers;
/// Delete members.
pub struct DeleteMembers;
/// Import and export the register as CSV.
pub struct TransferMembers;
/// List the organization's accounts, change roles below one's own, disable accounts (who may
/// grant which role is [`crate::core::admin::check_account_change`]).
pub struct ManageAccounts;
/// Read the organization's audit trail.
pub struct ReadAudit;
/// Register, list and remove the organization's OpenID Connect clients (SPEC §14).
pub struct ManageOidcClients;

impl Permission for ManageMembers {
    const ROLE: Role = Role::Moderator;
}
impl Permission for DeleteMembers {
    const ROLE: Role = Role::Admin;
}
impl Permission for TransferMembers {
    const ROLE: Role = Role::Admin;
}
impl Permission for ManageAccounts {
    const ROLE: Role = Role::Admin;
}
impl Permission for ReadAudit {
    const ROLE: Role = Role::Admin;
}
impl Permission for ManageOidcClients {
    const ROLE: Role = Role::Admin;
}

/// An actor that holds permission `P`.
pub struct Granted<P: Permission> {
    actor: Actor,
    permission: PhantomData<fn() -> P>,
}

impl<P: Permission> std::ops::Deref for Granted<P> {
    type Target = Actor;

    fn deref(&self) -> &Actor {
        &self.actor
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn actor(role: Role) -> Actor {
        Actor {
            organization_id: "org".into(),
            account_id: Some("a".into()),
            role,
            ip: None,
        }
    }

    fn allowed<P: Permission>(role: Role) -> bool {
        actor(role).grant::<P>().is_ok()
    }

    /// SPEC §2's table, row by row, for user, moderator, admin, owner.
    #[test]
    fn the_role_table() {
        type Row = (&'static str, fn(Role) -> bool, [bool; 4]);
        let table: [Row; 6] = [
            (
                "members",
                allowed::<ManageMembers>,
                [false, true, true, true],
            ),
            (
                "delete",
                allowed::<DeleteMembers>,
                [false, false, true, true],
            ),
            (
                "import/export",
                allowed::<TransferMembers>,
                [false, false, true, true],
            ),
            (
                "accounts",
                allowed::<ManageAccounts>,
                [false, false, true, true],
            ),
            ("audit", allowed::<ReadAudit>, [false, false, true, true]),
            (
                "OIDC clients",
                allowed::<ManageOidcClients>,
                [false, false, true, true],
            ),
        ];
        for (what, check, expected) in table {
            let got: Vec<bool> = Role::ALL.iter().map(|r| check(*r)).collect();
            assert_eq!(got, expected, "{what}");
        }
    }

    #[test]
    fn a_refusal_names_the_role_needed() {
        match actor(Role::Moderator).grant::<DeleteMembers>() {
            Err(CoreError::Forbidden { required }) => assert_eq!(required, Role::Admin),
            _ => panic!("a moderator may not delete"),
        }
        assert!(Actor::operator("org").grant::<TransferMembers>().is_ok());
    }
}
