//! What brama writes to the audit trail, and how an event is put together. Events hold ids, an
//! action and an address: never a secret, a token or a PESEL.

use crate::store::{AccountRecord, AuditEvent};

/// Every action that is audited, with the name stored in `audit_events.action`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditAction {
    AccountRegistered,
    AccountCreatedCli,
    AccountChanged,
    LoginFailed,
    Login,
    Logout,
    LogoutAll,
    SessionRevoked,
    RefreshTokenReused,
    PasswordChanged,
    PasswordResetRequested,
    PasswordReset,
    CompanySignedUp,
    AccountActivated,
    MemberCreated,
    MemberUpdated,
    MemberDeleted,
    MembersExported,
    MembersImported,
    MemberPeselRead,
    MemberRodoExport,
    AccountDeleted,
    AccountDataExported,
    MfaEnabled,
    MfaDisabled,
    MfaReset,
    MfaFailed,
    ProfileUpdated,
    EmailChangeRequested,
    EmailChanged,
    OidcClientAdded,
    OidcClientRemoved,
    OidcCodeReused,
}

impl AuditAction {
    pub const fn as_str(self) -> &'static str {
        match self {
            AuditAction::AccountRegistered => "account_registered",
            AuditAction::AccountCreatedCli => "account_created_cli",
            AuditAction::AccountChanged => "account_changed",
            AuditAction::LoginFailed => "login_failed",
            AuditAction::Login => "login",
            AuditAction::Logout => "logout",
            AuditAction::LogoutAll => "logout_all",
            AuditAction::SessionRevoked => "session_revoked",
            AuditAction::RefreshTokenReused => "refresh_token_reused",
            AuditAction::PasswordChanged => "password_changed",
            AuditAction::PasswordResetRequested => "password_reset_requested",
            AuditAction::PasswordReset => "password_reset",
            AuditAction::CompanySignedUp => "company_signed_up",
            AuditAction::AccountActivated => "account_activated",
            AuditAction::MemberCreated => "member_created",
            AuditAction::MemberUpdated => "member_updated",
            AuditAction::MemberDeleted => "member_deleted",
            // SPEC §12 names these two.
            AuditAction::MembersExported => "member.export",
            AuditAction::MemberPeselRead => "member.pesel_read",
            AuditAction::MemberRodoExport => "member.rodo_export",
            AuditAction::AccountDeleted => "account.deleted",
            AuditAction::AccountDataExported => "account.data_export",
            AuditAction::MembersImported => "members_imported",
            AuditAction::MfaEnabled => "mfa.enabled",
            AuditAction::MfaDisabled => "mfa.disabled",
            AuditAction::MfaReset => "mfa.reset",
            AuditAction::MfaFailed => "mfa.failed",
            AuditAction::ProfileUpdated => "account.profile_updated",
            AuditAction::EmailChangeRequested => "account.email_change_requested",
            // SPEC §15 names this one.
            AuditAction::EmailChanged => "account.email_changed",
            AuditAction::OidcClientAdded => "oidc.client_added",
            AuditAction::OidcClientRemoved => "oidc.client_removed",
            AuditAction::OidcCodeReused => "oidc.code_reused",
        }
    }

    /// An event of this action that an account did to itself.
    pub fn by_itself(self, account: &AccountRecord, ip: Option<std::net::IpAddr>) -> AuditEvent {
        self.event(
            Some(&account.organization_id),
            Some(&account.id),
            Some(account.id.clone()),
            ip,
        )
    }

    /// An event of this action in `organization`, by `actor` (none: an unknown or anonymous
    /// client, or the command line), about `target`.
    pub fn event(
        self,
        organization: Option<&str>,
        actor: Option<&str>,
        target: Option<String>,
        ip: Option<std::net::IpAddr>,
    ) -> AuditEvent {
        AuditEvent {
            organization_id: organization.map(str::to_owned),
            actor_id: actor.map(str::to_owned),
            action: self.as_str(),
            target,
            ip: ip.map(|ip| ip.to_string()),
        }
    }
}
