//! The closed sets an account and its organization move through: roles, statuses, and why a
//! session ended. Each has one spelling, used in the database and in tokens; reading any other
//! spelling is an error, never a default.

use std::fmt;

/// Defines a closed set of names: the enum, `ALL`, `as_str` and an exact `parse`.
macro_rules! names {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)*
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant,)*];

            /// The one spelling, as stored.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)*
                }
            }

            /// The value spelled exactly `text`; `None` for anything else.
            pub fn parse(text: &str) -> Option<$name> {
                match text {
                    $($text => Some($name::$variant),)*
                    _ => None,
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

names! {
    /// Roles in rising order of power (SPEC §2): the derived order is the ranking.
    #[derive(PartialOrd, Ord)]
    Role {
        User => "user",
        Moderator => "moderator",
        Admin => "admin",
        Owner => "owner",
    }
}

names! {
    /// Where an account is in its life.
    AccountStatus {
        /// Signed up through the Company API; waits for its activation link.
        PendingActivation => "pending_activation",
        Active => "active",
        /// Turned off by an admin; keeps its data, cannot log in.
        Disabled => "disabled",
    }
}

impl AccountStatus {
    /// The one status whose account may log in, refresh its tokens or be read by its own token.
    /// The stores bind it into the claim of a refresh token (`store::sql::claimable`).
    pub const MAY_LOG_IN: AccountStatus = AccountStatus::Active;

    pub fn may_log_in(self) -> bool {
        self == Self::MAY_LOG_IN
    }

    /// The statuses an admin may set by hand; `PendingActivation` is reached by signing up
    /// and left only through the activation link.
    pub fn settable_by_admin(self) -> bool {
        matches!(self, AccountStatus::Active | AccountStatus::Disabled)
    }
}

names! {
    /// Where an organization is in its life.
    OrganizationStatus {
        /// Made by a company sign-up whose owner has not activated yet.
        Pending => "pending",
        Active => "active",
    }
}

names! {
    /// Why a session ended, as kept with the session.
    RevokeReason {
        /// The session's own logout.
        Logout => "logout",
        /// Logout from every session of the account.
        LogoutAll => "logout_all",
        /// The account holder ended it from their list of sessions.
        RevokedByUser => "revoked_by_user",
        /// A newer login pushed it over `max_sessions_per_account`.
        SessionLimit => "session_limit",
        /// One of its refresh tokens was presented a second time.
        RefreshTokenReused => "refresh_token_reused",
        /// The password was changed from another session.
        PasswordChanged => "password_changed",
        /// The password was reset by email.
        PasswordReset => "password_reset",
        /// An admin disabled or demoted the account.
        AccountChanged => "account_changed",
        /// An admin (or the command line) removed the account's second factors.
        MfaReset => "mfa_reset",
        /// The account's email address changed (from another session, or by its link).
        EmailChanged => "email_changed",
        /// A logout at the OpenID Connect end-session endpoint (SPEC §14).
        OidcLogout => "oidc_logout",
        /// A client revoked its grant (RFC 7009), or an authorization code came a second time.
        OidcRevoked => "oidc_revoked",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_rank_user_moderator_admin_owner() {
        assert!(Role::User < Role::Moderator);
        assert!(Role::Moderator < Role::Admin);
        assert!(Role::Admin < Role::Owner);
        let mut sorted = Role::ALL.to_vec();
        sorted.sort();
        assert_eq!(sorted, Role::ALL);
    }

    #[test]
    fn every_name_round_trips_and_nothing_else_parses() {
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()), Some(*r));
        }
        for s in AccountStatus::ALL {
            assert_eq!(AccountStatus::parse(s.as_str()), Some(*s));
        }
        for s in OrganizationStatus::ALL {
            assert_eq!(OrganizationStatus::parse(s.as_str()), Some(*s));
        }
        for r in RevokeReason::ALL {
            assert_eq!(RevokeReason::parse(r.as_str()), Some(*r));
        }
        // No case folding, no prefixes, no defaults: those belong to a surface's parser.
        for bad in ["", "Admin", "ROLE_ADMIN", " admin", "superuser"] {
            assert_eq!(Role::parse(bad), None, "{bad:?}");
        }
        assert_eq!(AccountStatus::parse("pending"), None);
        assert_eq!(OrganizationStatus::parse("pending_activation"), None);
    }

    #[test]
    fn only_active_accounts_log_in_and_admins_set_active_or_disabled() {
        assert!(AccountStatus::Active.may_log_in());
        assert!(!AccountStatus::Disabled.may_log_in());
        assert!(!AccountStatus::PendingActivation.may_log_in());
        assert!(AccountStatus::Disabled.settable_by_admin());
        assert!(!AccountStatus::PendingActivation.settable_by_admin());
    }
}
