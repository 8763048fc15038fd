//! The password a person sets, checked against the deployment's password policy.

use std::collections::HashSet;
use std::fmt;
use std::sync::LazyLock;

use secrecy::zeroize::Zeroizing;
use secrecy::{ExposeSecret, SecretString};

use super::{Problem, check_length};

/// Django's list of common passwords (BSD), lower-case, one a line.
static COMMON: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    include_str!("common-passwords.txt")
        .lines()
        .filter(|line| !line.is_empty())
        .collect()
});

/// Symbols the seed policy allows besides ASCII letters and digits; space and `_` count as symbols.
const SEED_SYMBOLS: &str = "!@#~$%^&*()+ _";

/// Which rules a new password must meet; chosen per deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PasswordPolicy {
    /// The customer's original specification: 8–30 chars from a fixed ASCII alphabet, with an
    /// upper-case letter, a lower-case letter, a digit and a symbol.
    #[default]
    Seed,
    /// NIST SP 800-63B: 8–128 chars of any printable Unicode, no composition rules.
    Nist,
}

/// A password that met its policy. Never printed: `Debug` shows `Password(***)`.
#[derive(Clone)]
pub struct Password(SecretString);

impl Password {
    /// Checks `raw` against `policy`. Unlike every other field it is not trimmed: spaces at either
    /// end are part of the password.
    pub fn parse(raw: &str, policy: PasswordPolicy) -> Result<Self, Problem> {
        // Blank counts as missing, as for every other field, but the value itself is kept whole.
        if raw.trim().is_empty() {
            return Err(Problem::Required);
        }
        match policy {
            PasswordPolicy::Seed => check_seed(raw)?,
            PasswordPolicy::Nist => check_nist(raw)?,
        }
        Ok(Self(SecretString::from(raw)))
    }

    /// The password itself, for hashing; keep the borrow short and never log it.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(***)")
    }
}

fn check_seed(raw: &str) -> Result<(), Problem> {
    check_length(raw, 8, 30)?;
    if !raw.chars().all(is_seed_char) {
        return Err(Problem::Characters);
    }
    let has = |class: fn(&char) -> bool| raw.chars().any(|c| class(&c));
    let is_symbol = |c: &char| SEED_SYMBOLS.contains(*c);
    if !(has(char::is_ascii_uppercase)
        && has(char::is_ascii_lowercase)
        && has(char::is_ascii_digit)
        && has(is_symbol))
    {
        return Err(Problem::PasswordClasses);
    }
    // The alphabet is ASCII, so ASCII lower-casing matches the list's own lower-casing.
    check_common(Zeroizing::new(raw.to_ascii_lowercase()))
}

fn check_nist(raw: &str) -> Result<(), Problem> {
    check_length(raw, 8, 128)?;
    if raw.chars().any(char::is_control) {
        return Err(Problem::Characters);
    }
    check_common(Zeroizing::new(raw.to_lowercase()))
}

fn is_seed_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || SEED_SYMBOLS.contains(c)
}

/// Takes the lower-cased copy as `Zeroizing` so that it is wiped like the password itself.
fn check_common(lowered: Zeroizing<String>) -> Result<(), Problem> {
    if COMMON.contains(lowered.as_str()) {
        Err(Problem::CommonPassword)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use PasswordPolicy::{Nist, Seed};
    use proptest::prelude::*;
    use proptest::sample::select;

    const SEED_LENGTH: Problem = Problem::Length { min: 8, max: 30 };
    const NIST_LENGTH: Problem = Problem::Length { min: 8, max: 128 };

    fn seed(raw: &str) -> Result<String, Problem> {
        Password::parse(raw, Seed).map(|p| p.expose().to_owned())
    }

    fn nist(raw: &str) -> Result<String, Problem> {
        Password::parse(raw, Nist).map(|p| p.expose().to_owned())
    }

    #[test]
    fn common_list_is_loaded() {
        assert!(COMMON.len() > 19_000);
        for known in ["123456", "qwerty", "password1!", "пароль"] {
            assert!(COMMON.contains(known), "{known}");
        }
        assert!(!COMMON.contains(""));
    }

    #[test]
    fn policy_defaults_to_seed_and_serializes_lowercase() {
        assert_eq!(PasswordPolicy::default(), Seed);
        assert_eq!(
            serde_json::to_value(Nist).ok(),
            Some(serde_json::json!("nist"))
        );
        assert_eq!(
            serde_json::from_str::<PasswordPolicy>("\"seed\"").ok(),
            Some(Seed)
        );
        assert_eq!(
            serde_json::from_str::<PasswordPolicy>("\"nist\"").ok(),
            Some(Nist)
        );
        assert!(serde_json::from_str::<PasswordPolicy>("\"Seed\"").is_err());
    }

    #[test]
    fn debug_never_shows_the_value() {
        let password = Password::parse("Tr0ub4dor&3x", Seed).expect("valid");
        assert_eq!(format!("{password:?}"), "Password(***)");
        assert_eq!(
            format!("{:?}", Some(password.clone())),
            "Some(Password(***))"
        );
        assert_eq!(password.expose(), "Tr0ub4dor&3x");
    }

    #[test]
    fn seed_accepts_a_good_password() {
        assert_eq!(seed("Tr0ub4dor&3x"), Ok("Tr0ub4dor&3x".to_owned()));
        assert_eq!(seed("Zz9 zz9 zz9"), Ok("Zz9 zz9 zz9".to_owned()));
        assert_eq!(seed("under_Score9"), Ok("under_Score9".to_owned()));
        for symbol in SEED_SYMBOLS.chars() {
            let raw = format!("Abcdef1{symbol}");
            assert_eq!(seed(&raw), Ok(raw.clone()), "{symbol:?}");
        }
    }

    #[test]
    fn empty_or_blank_is_required() {
        assert_eq!(seed(""), Err(Problem::Required));
        assert_eq!(nist(""), Err(Problem::Required));
        assert_eq!(seed("          "), Err(Problem::Required));
        assert_eq!(nist("\t\t\t\t\t\t\t\t\t"), Err(Problem::Required));
    }

    #[test]
    fn is_not_trimmed() {
        assert_eq!(seed("  Abcdef1!  "), Ok("  Abcdef1!  ".to_owned()));
        assert_eq!(nist(" correct horse "), Ok(" correct horse ".to_owned()));
        // The surrounding spaces count towards the length and are the only symbols here.
        assert_eq!(seed(" Abcde1 "), Ok(" Abcde1 ".to_owned()));
        assert_eq!(seed(" Abcd1 "), Err(SEED_LENGTH));
    }

    #[test]
    fn seed_length_boundaries() {
        assert_eq!(seed("Abcde1!"), Err(SEED_LENGTH));
        assert!(seed("Abcdef1!").is_ok());
        let thirty = format!("Abcdef1!{}", "x".repeat(22));
        assert_eq!(thirty.len(), 30);
        assert!(seed(&thirty).is_ok());
        assert_eq!(seed(&format!("{thirty}x")), Err(SEED_LENGTH));
    }

    #[test]
    fn seed_length_counts_chars_and_comes_before_characters() {
        // Eight chars but sixteen bytes: long enough, then refused for the alphabet.
        assert_eq!(seed("Ąbcdef1!"), Err(Problem::Characters));
        assert_eq!(seed("Ąbcde1!"), Err(SEED_LENGTH));
        assert_eq!(seed(&"ą".repeat(31)), Err(SEED_LENGTH));
        assert_eq!(seed(&"ą".repeat(30)), Err(Problem::Characters));
    }

    #[test]
    fn seed_refuses_characters_outside_the_alphabet() {
        for bad in [
            "Abcdef1!-",
            "Abcdef1!.",
            "Abcdef1!?",
            "Abcdef1!/",
            "Abcdef1!=",
            "Abcdef1!\"",
            "Abcdef1!'",
            "Abcdef1![",
            "Abcdef1!{",
            "Abcdef1!<",
            "Abcdef1!\t",
            "Abcdef1!\n",
            "Zażółć1!",
            "Пароль12!",
            "Abcdef1!😀",
            "Abcdef1!\u{a0}",
        ] {
            assert_eq!(seed(bad), Err(Problem::Characters), "{bad:?}");
        }
    }

    #[test]
    fn seed_requires_every_class() {
        assert_eq!(seed("abcdef1!"), Err(Problem::PasswordClasses)); // no upper
        assert_eq!(seed("ABCDEF1!"), Err(Problem::PasswordClasses)); // no lower
        assert_eq!(seed("Abcdefg!"), Err(Problem::PasswordClasses)); // no digit
        assert_eq!(seed("Abcdefg1"), Err(Problem::PasswordClasses)); // no symbol
        assert_eq!(seed("12345678"), Err(Problem::PasswordClasses));
        // Characters are checked before classes.
        assert_eq!(seed("abcdefg-"), Err(Problem::Characters));
    }

    #[test]
    fn seed_refuses_common_passwords_whatever_their_case() {
        assert_eq!(seed("Password1!"), Err(Problem::CommonPassword));
        assert_eq!(seed("PASSword1!"), Err(Problem::CommonPassword));
        // Classes are checked before the list: this one is common but also lacks a symbol.
        assert_eq!(seed("Password1"), Err(Problem::PasswordClasses));
    }

    #[test]
    fn nist_length_boundaries_count_chars() {
        assert_eq!(nist("abcdefx"), Err(NIST_LENGTH));
        assert!(nist("abcdefgx").is_ok());
        assert_eq!(nist("żółwiąę"), Err(NIST_LENGTH));
        assert!(nist("żółwiąęź").is_ok());
        assert!(nist(&"ж".repeat(128)).is_ok());
        assert_eq!(nist(&"ж".repeat(129)), Err(NIST_LENGTH));
        assert!(nist(&"a".repeat(128)).is_ok());
        assert_eq!(nist(&"a".repeat(129)), Err(NIST_LENGTH));
    }

    #[test]
    fn nist_allows_any_printable_text_without_composition_rules() {
        for ok in [
            "correct horse battery staple",
            "zażółć gęślą jaźń",
            "пароль для входа",
            "🔑🔑🔑🔑🔑🔑🔑🔑",
            "alllowercase",
        ] {
            assert_eq!(nist(ok), Ok(ok.to_owned()));
        }
    }

    #[test]
    fn nist_refuses_control_characters() {
        for bad in [
            "abcdefgh\n",
            "abcd\tefgh",
            "abcdefgh\u{0}",
            "abcdefgh\u{7f}",
            "abcdefgh\u{85}",
        ] {
            assert_eq!(nist(bad), Err(Problem::Characters), "{bad:?}");
        }
        assert_eq!(nist("ab\u{0}"), Err(NIST_LENGTH));
    }

    #[test]
    fn nist_refuses_common_passwords_whatever_their_case() {
        assert_eq!(nist("password"), Err(Problem::CommonPassword));
        assert_eq!(nist("PassWord"), Err(Problem::CommonPassword));
        assert_eq!(nist("Password1!"), Err(Problem::CommonPassword));
        // Lower-casing is Unicode-aware: the list holds "пїѕпїѕпїѕпїѕ".
        assert_eq!(nist("ПЇЅПЇЅПЇЅПЇЅ"), Err(Problem::CommonPassword));
    }

    const UPPER: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    const LOWER: &str = "abcdefghijklmnopqrstuvwxyz";
    const DIGITS: &str = "0123456789";

    fn one_of(set: &'static str) -> impl Strategy<Value = char> {
        select(set.chars().collect::<Vec<_>>())
    }

    fn seed_char() -> impl Strategy<Value = char> {
        prop_oneof![
            one_of(UPPER),
            one_of(LOWER),
            one_of(DIGITS),
            one_of(SEED_SYMBOLS)
        ]
    }

    /// 8–30 chars of the seed alphabet with at least one of each class, in any order.
    fn seed_valid() -> impl Strategy<Value = String> {
        (
            one_of(UPPER),
            one_of(LOWER),
            one_of(DIGITS),
            one_of(SEED_SYMBOLS),
            proptest::collection::vec(seed_char(), 4..=26),
        )
            .prop_flat_map(|(u, l, d, s, mut rest)| {
                rest.extend([u, l, d, s]);
                Just(rest).prop_shuffle()
            })
            .prop_map(|chars| chars.into_iter().collect())
    }

    proptest! {
        #[test]
        fn never_panics(s in any::<String>()) {
            let _ = Password::parse(&s, Seed);
            let _ = Password::parse(&s, Nist);
        }

        #[test]
        fn never_panics_on_printable(s in "\\PC*") {
            let _ = Password::parse(&s, Seed);
            let _ = Password::parse(&s, Nist);
        }

        #[test]
        fn seed_accepts_every_uncommon_password_meeting_the_rules(raw in seed_valid()) {
            prop_assume!(!COMMON.contains(raw.to_ascii_lowercase().as_str()));
            prop_assert_eq!(seed(&raw), Ok(raw.clone()));
        }

        #[test]
        fn seed_refuses_any_character_outside_the_alphabet(
            raw in seed_valid(),
            bad in any::<char>().prop_filter("outside the alphabet", |c| !is_seed_char(*c)),
            at in any::<proptest::sample::Index>(),
        ) {
            let mut chars: Vec<char> = raw.chars().collect();
            chars.insert(at.index(chars.len() + 1), bad);
            let with_bad: String = chars.iter().collect();
            let result = seed(&with_bad);
            prop_assert!(result.is_err());
            if (8..=30).contains(&chars.len()) {
                prop_assert_eq!(result, Err(Problem::Characters));
            }
        }

        #[test]
        fn seed_refuses_arbitrary_text_with_a_foreign_char(s in "\\PC{1,40}") {
            if !s.chars().all(is_seed_char) {
                prop_assert!(seed(&s).is_err());
            }
        }

        #[test]
        fn nist_accepts_uncommon_printable_text_of_the_right_length(s in "\\PC{8,128}") {
            prop_assume!(!s.trim().is_empty());
            prop_assume!(!COMMON.contains(s.to_lowercase().as_str()));
            prop_assert_eq!(nist(&s), Ok(s.clone()));
        }
    }
}
