//! Message catalogs: every sentence a person reads, in English, Polish and Russian, kept as
//! Fluent files (`locales/*.ftl`) embedded in the binary.

use std::sync::LazyLock;

use fluent_bundle::concurrent::FluentBundle;
use fluent_bundle::{FluentArgs, FluentResource, FluentValue};

use crate::domain::Problem;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    En,
    Pl,
    Ru,
}

impl Lang {
    pub const ALL: [Lang; 3] = [Lang::En, Lang::Pl, Lang::Ru];

    /// Picks the best supported language from an `Accept-Language` value, or `default`.
    pub fn negotiate(accept_language: Option<&str>, default: Lang) -> Lang {
        let Some(header) = accept_language else {
            return default;
        };
        // In the client's order of preference; `pl-PL` counts as `pl`.
        accept_language::parse(header)
            .iter()
            .find_map(|tag| {
                match tag
                    .split('-')
                    .next()
                    .map(str::to_ascii_lowercase)
                    .as_deref()
                {
                    Some("en") => Some(Lang::En),
                    Some("pl") => Some(Lang::Pl),
                    Some("ru") => Some(Lang::Ru),
                    _ => None,
                }
            })
            .unwrap_or(default)
    }

    fn source(self) -> (&'static str, &'static str) {
        match self {
            Lang::En => ("en", include_str!("locales/en.ftl")),
            Lang::Pl => ("pl", include_str!("locales/pl.ftl")),
            Lang::Ru => ("ru", include_str!("locales/ru.ftl")),
        }
    }
}

/// One bundle per language, parsed once. A catalog that does not parse is a build mistake that
/// the catalog tests catch; at run time its broken entries are skipped, not fatal.
static BUNDLES: LazyLock<[FluentBundle<FluentResource>; 3]> =
    LazyLock::new(|| Lang::ALL.map(bundle));

fn bundle(lang: Lang) -> FluentBundle<FluentResource> {
    let (id, text) = lang.source();
    let langid = id.parse().unwrap_or_default();
    let mut bundle = FluentBundle::new_concurrent(vec![langid]);
    // Unicode isolation marks around placeables would end up inside JSON messages.
    bundle.set_use_isolating(false);
    let resource = FluentResource::try_new(text.to_string()).unwrap_or_else(|(partial, _)| partial);
    let _ = bundle.add_resource(resource);
    bundle
}

/// The message `key` in `lang` with `args`; the key itself if the catalog lacks it (the
/// catalog tests make sure none does).
pub fn translate(lang: Lang, key: &str, args: Option<&FluentArgs>) -> String {
    let bundle = &BUNDLES[lang as usize];
    let Some(pattern) = bundle.get_message(key).and_then(|m| m.value()) else {
        return key.to_string();
    };
    let mut errors = Vec::new();
    bundle
        .format_pattern(pattern, args, &mut errors)
        .into_owned()
}

macro_rules! messages {
    ($($variant:ident => $key:literal,)*) => {
        /// Sentences of the surfaces and the cross-cutting errors, by catalog key. The English
        /// texts of seed 001's messages are fixed: clients written against the seed compare them.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Msg {
            $($variant,)*
        }

        impl Msg {
            pub const ALL: &'static [Msg] = &[$(Msg::$variant,)*];

            pub fn key(self) -> &'static str {
                match self {
                    $(Msg::$variant => $key,)*
                }
            }
        }
    };
}

messages! {
    Registered => "registered",
    UsernameTaken => "username-taken",
    EmailTaken => "email-taken",
    PhoneTaken => "phone-taken",
    InvalidCredentials => "invalid-credentials",
    Authorized => "authorized",
    TokenExpired => "token-expired",
    Unauthorized => "unauthorized",
    NoToken => "no-token",
    RefreshUnknown => "refresh-unknown",
    RefreshExpired => "refresh-expired",
    RefreshReused => "refresh-reused",
    RefreshRotated => "refresh-rotated",
    LoggedOut => "logged-out",
    LoggedOutAll => "logged-out-all",
    SessionRevoked => "session-revoked",
    PasswordChanged => "password-changed",
    WrongPassword => "wrong-password",
    LastOwner => "last-owner",
    InvalidCode => "invalid-code",
    MfaTokenInvalid => "mfa-token-invalid",
    MfaRequired => "mfa-required",
    MfaReset => "mfa-reset",
    MfaEnrollmentRequired => "mfa-enrollment-required",
    TotpEnabled => "totp-enabled",
    TotpNotStarted => "totp-not-started",
    TotpDisabled => "totp-disabled",
    CredentialMalformed => "credential-malformed",
    PasskeyInvalid => "passkey-invalid",
    PasskeyRejected => "passkey-rejected",
    PasskeyExists => "passkey-exists",
    NoPasskey => "no-passkey",
    PasskeyRemoved => "passkey-removed",
    ReauthenticationRequired => "reauthentication-required",
    EmailChangeRequested => "email-change-requested",
    EmailChanged => "email-changed",
    OidcClientRemoved => "oidc-client-removed",
    EmailTokenInvalid => "email-token-invalid",
    AccountDeleted => "account-deleted",
    ValidationFailed => "validation-failed",
    RateLimited => "rate-limited",
    Busy => "busy",
    DatabaseUnavailable => "database-unavailable",
    StorageFull => "storage-full",
    CsrfMissing => "csrf-missing",
    CsrfInvalid => "csrf-invalid",
    CrossSite => "cross-site",
    NotFound => "not-found",
    MethodNotAllowed => "method-not-allowed",
    Forbidden => "forbidden",
    InvalidJson => "invalid-json",
    BodyTooLarge => "body-too-large",
    UnsupportedMediaType => "unsupported-media-type",
    Internal => "internal",
    ResetRequested => "reset-requested",
    ResetDone => "reset-done",
    ResetInvalid => "reset-invalid",
    RequireModerator => "require-moderator",
    RequireAdmin => "require-admin",
    RequireOwner => "require-owner",
    CannotChangeSelf => "cannot-change-self",
    InvalidQuery => "invalid-query",
    MemberNotFound => "member-not-found",
    VersionConflict => "version-conflict",
    MemberDeleted => "member-deleted",
    ImportFailed => "import-failed",
    JsonObjectExpected => "json-object-expected",
    NulCharacter => "nul-character",
    ActivationInvalid => "activation-invalid",
    CompanyCreated => "company-created",
    InvalidEmailOrPassword => "invalid-email-or-password",
    ActivationResent => "activation-resent",
    Success => "success",
}

impl Msg {
    pub fn text(self, lang: Lang) -> String {
        translate(lang, self.key(), None)
    }
}

/// The catalog key of a problem's sentence.
pub fn problem_key(problem: Problem) -> &'static str {
    match problem {
        Problem::Required => "problem-required",
        Problem::Length { .. } => "problem-length",
        Problem::Characters => "problem-characters",
        Problem::Format => "problem-format",
        Problem::PasswordClasses => "problem-password-classes",
        Problem::CommonPassword => "problem-common-password",
        Problem::Taken => "problem-taken",
        Problem::Type => "problem-type",
        Problem::Unknown => "problem-unknown",
    }
}

/// One field's problem as a sentence starting with the field's JSON name.
pub fn problem_text(field: &str, problem: Problem, lang: Lang) -> String {
    let mut args = FluentArgs::new();
    if let Problem::Length { min, max } = problem {
        args.set("min", FluentValue::from(min));
        args.set("max", FluentValue::from(max));
    }
    let detail = translate(lang, problem_key(problem), Some(&args));
    let mut outer = FluentArgs::new();
    outer.set("field", FluentValue::from(field));
    outer.set("detail", FluentValue::from(detail));
    translate(lang, "problem-message", Some(&outer))
}

/// An email's (subject, body) from the catalog keys `email-{kind}-subject` / `-body`, with the
/// link filled in.
pub fn email(lang: Lang, kind: &str, link: &str) -> (String, String) {
    let mut args = FluentArgs::new();
    args.set("link", FluentValue::from(link));
    (
        translate(lang, &format!("email-{kind}-subject"), Some(&args)),
        translate(lang, &format!("email-{kind}-body"), Some(&args)) + "\n",
    )
}

/// The kinds of email brama sends; each has a subject and a body in every catalog.
pub const EMAILS: [&str; 4] = ["reset", "activation", "email-change", "email-notice"];

#[cfg(test)]
mod tests {
    use super::*;

    /// Every key the code uses, in every catalog, and no catalog key the code does not use.
    #[test]
    fn every_message_key_exists_in_all_three_catalogs() {
        let mut used: Vec<String> = Msg::ALL.iter().map(|m| m.key().to_string()).collect();
        let problems = [
            Problem::Required,
            Problem::Length { min: 1, max: 2 },
            Problem::Characters,
            Problem::Format,
            Problem::PasswordClasses,
            Problem::CommonPassword,
            Problem::Taken,
            Problem::Type,
            Problem::Unknown,
        ];
        used.extend(problems.iter().map(|p| problem_key(*p).to_string()));
        used.push("problem-message".into());
        for kind in EMAILS {
            used.push(format!("email-{kind}-subject"));
            used.push(format!("email-{kind}-body"));
        }
        for lang in Lang::ALL {
            let (id, text) = lang.source();
            let resource = FluentResource::try_new(text.to_string());
            assert!(
                resource.is_ok(),
                "{id}.ftl does not parse: {:?}",
                resource.err().map(|e| e.1)
            );
            let bundle = &BUNDLES[lang as usize];
            for key in &used {
                let value = bundle.get_message(key).and_then(|m| m.value());
                assert!(value.is_some(), "{id}.ftl lacks {key}");
            }
            let defined: Vec<&str> = text
                .lines()
                .filter(|l| !l.starts_with(' ') && !l.starts_with('#'))
                .filter_map(|l| l.split_once(" = ").map(|(k, _)| k))
                .collect();
            for key in defined {
                assert!(
                    used.iter().any(|u| u == key),
                    "{id}.ftl has {key}, which no code uses"
                );
            }
        }
    }

    #[test]
    fn placeables_are_filled_without_isolation_marks() {
        let text = problem_text("email", Problem::Length { min: 10, max: 40 }, Lang::Ru);
        assert_eq!(text, "email: длина от 10 до 40 символов");
        let (subject, body) = email(Lang::En, "reset", "https://x.example/reset#token=abc");
        assert_eq!(subject, "Reset your brama password");
        assert!(
            body.contains("\nhttps://x.example/reset#token=abc\n"),
            "{body}"
        );
    }

    #[test]
    fn seed_messages_are_word_for_word() {
        assert_eq!(
            Msg::Registered.text(Lang::En),
            "User was registered successfully!"
        );
        assert_eq!(
            Msg::RefreshUnknown.text(Lang::En),
            "This refresh token doesn't exist in database"
        );
        assert_eq!(Msg::MemberNotFound.text(Lang::En), "Member not found.");
    }
}
