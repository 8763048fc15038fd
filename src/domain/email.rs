//! The email address a person signs up and logs in with.

use email_address::{EmailAddress, Options};

use super::{Problem, check_length};

const MIN: usize = 3;
const MAX: usize = 254;

/// A syntactically valid bare address (`local@domain.tld`), kept as typed; compare with
/// [`normalize_key`](super::normalize_key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountEmail(String);

impl AccountEmail {
    /// Trims `raw`, then checks length, characters and shape.
    pub fn parse(raw: &str) -> Result<Self, Problem> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(Problem::Required);
        }
        check_length(trimmed, MIN, MAX)?;
        // The parser lets any non-ASCII char through, C1 controls included; those would only ever
        // end up in logs and mail headers, never in a real mailbox name.
        if trimmed.chars().any(char::is_control) {
            return Err(Problem::Characters);
        }
        // A display name ("Ann <ann@example.com>") would be stored and later mailed verbatim,
        // domain literals ("ann@[10.0.0.1]") point at hosts rather than domains, and a dotless
        // domain ("ann@localhost") is never deliverable from the internet.
        let options = Options::default()
            .without_display_text()
            .without_domain_literal()
            .with_required_tld();
        EmailAddress::parse_with_options(trimmed, options).map_err(|_| Problem::Format)?;
        Ok(Self(trimmed.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::normalize_key;
    use proptest::prelude::*;

    const LENGTH: Problem = Problem::Length { min: MIN, max: MAX };

    /// `local@…` padded with ASCII labels (each within the parser's 63-byte limit) to exactly
    /// `total` chars.
    fn address(local: &str, total: usize) -> String {
        let domain_len = total - local.chars().count() - 1;
        let mut domain = String::new();
        while domain_len - domain.len() > 63 {
            domain.push_str(&"d".repeat(50));
            domain.push('.');
        }
        domain.push_str(&"c".repeat(domain_len - domain.len()));
        format!("{local}@{domain}")
    }

    #[test]
    fn accepts_ordinary_addresses_and_keeps_case() {
        for ok in [
            "ann@example.com",
            "Ann.Kowalska+brama@Example.COM",
            "a@b.co",
            "first_last-99@sub.domain.example.org",
            "zoë@exämple.de",
            "иван@пример.рф",
        ] {
            let email = AccountEmail::parse(ok).expect(ok);
            assert_eq!(email.as_str(), ok);
        }
    }

    #[test]
    fn empty_or_blank_is_required() {
        assert_eq!(AccountEmail::parse(""), Err(Problem::Required));
        assert_eq!(AccountEmail::parse(" \t\n "), Err(Problem::Required));
    }

    #[test]
    fn trims_surrounding_whitespace() {
        assert_eq!(
            AccountEmail::parse("  Ann@Example.com \n").map(|e| e.0),
            Ok("Ann@Example.com".to_owned())
        );
    }

    #[test]
    fn length_boundaries() {
        assert_eq!(AccountEmail::parse("ab"), Err(LENGTH));
        // Three chars is long enough to be judged on shape, which it then fails.
        assert_eq!(AccountEmail::parse("a@b"), Err(Problem::Format));

        let local = "l".repeat(64);
        assert_eq!(address(&local, 254).chars().count(), 254);
        assert!(AccountEmail::parse(&address(&local, 254)).is_ok());
        assert_eq!(AccountEmail::parse(&address(&local, 255)), Err(LENGTH));
        // Too long and malformed: length is reported first.
        assert_eq!(AccountEmail::parse(&"a".repeat(300)), Err(LENGTH));
    }

    #[test]
    fn length_counts_chars_not_bytes() {
        // 32 two-byte chars fill the parser's 64-byte local-part limit.
        let local = "ö".repeat(32);
        let at_max = address(&local, 254);
        assert_eq!(at_max.chars().count(), 254);
        assert!(at_max.len() > 254);
        assert_eq!(
            AccountEmail::parse(&at_max).map(|e| e.0),
            Ok(at_max.clone())
        );
        assert_eq!(AccountEmail::parse(&address(&local, 255)), Err(LENGTH));
        assert!(AccountEmail::parse("ö@ä.d").is_ok());
    }

    #[test]
    fn refuses_control_characters() {
        assert_eq!(
            AccountEmail::parse("ann\u{85}@example.com"),
            Err(Problem::Characters)
        );
        assert_eq!(
            AccountEmail::parse("ann\r\n@example.com"),
            Err(Problem::Characters)
        );
        assert_eq!(
            AccountEmail::parse("ann@exa\u{0}mple.com"),
            Err(Problem::Characters)
        );
    }

    #[test]
    fn refuses_wrong_shapes() {
        for bad in [
            "ann",
            "ann.example.com",
            "ann@",
            "@example.com",
            "ann@@example.com",
            "ann@example",
            "ann@localhost",
            "ann@example.",
            "ann@.example.com",
            "ann@example..com",
            "ann@-example.com",
            "ann..k@example.com",
            ".ann@example.com",
            "ann smith@example.com",
            "ann@exam ple.com",
            "Ann <ann@example.com>",
            "<ann@example.com>",
            "ann@[127.0.0.1]",
            "ann@[IPv6:::1]",
        ] {
            assert_eq!(AccountEmail::parse(bad), Err(Problem::Format), "{bad:?}");
        }
    }

    #[test]
    fn case_differences_share_a_key() {
        let a = AccountEmail::parse("Ann@Example.com").expect("valid");
        let b = AccountEmail::parse("ann@example.COM").expect("valid");
        assert_ne!(a, b);
        assert_eq!(normalize_key(a.as_str()), normalize_key(b.as_str()));
    }

    proptest! {
        #[test]
        fn never_panics(s in any::<String>()) {
            let _ = AccountEmail::parse(&s);
        }

        #[test]
        fn never_panics_on_printable(s in "\\PC*") {
            let _ = AccountEmail::parse(&s);
        }

        #[test]
        fn never_panics_on_email_like(s in "[a-z<>\\[\\]\"\\\\ .@-]{0,30}") {
            let _ = AccountEmail::parse(&s);
        }

        #[test]
        fn accepted_values_are_trimmed_bounded_and_stable(
            s in prop_oneof!["\\PC*", "[ a-zA-Z0-9.+_-]{1,20}@[a-z0-9.-]{1,20}"]
        ) {
            if let Ok(email) = AccountEmail::parse(&s) {
                prop_assert_eq!(email.as_str(), s.trim());
                prop_assert!((MIN..=MAX).contains(&email.as_str().chars().count()));
                prop_assert!(email.as_str().contains('@'));
                prop_assert_eq!(AccountEmail::parse(email.as_str()), Ok(email.clone()));
            }
        }
    }
}
