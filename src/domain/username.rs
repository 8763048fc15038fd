//! The public login name a person picks at sign-up.

use unicode_normalization::UnicodeNormalization;

use super::{Problem, check_length};

const MIN: usize = 3;
const MAX: usize = 32;

/// A username: 3–32 letters, digits, `.`, `_` or `-`, stored in Unicode NFKC with its case kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    /// Trims and NFKC-normalises `raw`, then checks length and characters.
    pub fn parse(raw: &str) -> Result<Self, Problem> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(Problem::Required);
        }
        // NFKC first so that the limits and the character set apply to what is stored: fullwidth
        // "ｕｓｅｒ" is "user", and a decomposed "a\u{308}" counts as the one letter "ä".
        let normalized: String = trimmed.nfkc().collect();
        check_length(&normalized, MIN, MAX)?;
        if !normalized.chars().all(is_allowed) {
            return Err(Problem::Characters);
        }
        Ok(Self(normalized))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn is_allowed(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '.' | '_' | '-')
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const LENGTH: Problem = Problem::Length { min: MIN, max: MAX };

    #[test]
    fn accepts_plain_names() {
        for ok in [
            "bob",
            "alice_92",
            "jan.kowalski",
            "x-y_z.0",
            "Łukasz",
            "Дмитрий",
            "李小龍",
            "007",
        ] {
            let name = Username::parse(ok).expect(ok);
            assert_eq!(name.as_str(), ok);
        }
    }

    #[test]
    fn empty_or_blank_is_required() {
        assert_eq!(Username::parse(""), Err(Problem::Required));
        assert_eq!(Username::parse("   "), Err(Problem::Required));
        assert_eq!(Username::parse("\t\n\u{3000}"), Err(Problem::Required));
    }

    #[test]
    fn trims_surrounding_whitespace() {
        assert_eq!(
            Username::parse("  bob\t").map(|u| u.0),
            Ok("bob".to_owned())
        );
    }

    #[test]
    fn length_boundaries() {
        assert_eq!(Username::parse("ab"), Err(LENGTH));
        assert!(Username::parse("abc").is_ok());
        assert!(Username::parse(&"a".repeat(32)).is_ok());
        assert_eq!(Username::parse(&"a".repeat(33)), Err(LENGTH));
    }

    #[test]
    fn length_counts_chars_not_bytes() {
        assert_eq!(Username::parse("ää"), Err(LENGTH));
        assert!(Username::parse("äää").is_ok());
        assert!(Username::parse(&"ж".repeat(32)).is_ok());
        assert_eq!(Username::parse(&"ж".repeat(33)), Err(LENGTH));
        assert!(Username::parse(&"字".repeat(32)).is_ok());
    }

    #[test]
    fn length_is_checked_before_characters() {
        assert_eq!(Username::parse("a!"), Err(LENGTH));
        assert_eq!(Username::parse(&"!".repeat(33)), Err(LENGTH));
    }

    #[test]
    fn refuses_characters_outside_the_set() {
        for bad in [
            "bob smith",
            "bob@home",
            "bob!",
            "a/b/c",
            "rm -rf *",
            "tab\tin",
            "emoji😀",
            "a\u{200b}bc",
        ] {
            assert_eq!(Username::parse(bad), Err(Problem::Characters), "{bad:?}");
        }
    }

    #[test]
    fn nfkc_folds_compatibility_forms_and_keeps_case() {
        assert_eq!(
            Username::parse("ｕｓｅｒ").map(|u| u.0),
            Ok("user".to_owned())
        );
        assert_eq!(
            Username::parse("ＵＳＥＲ").map(|u| u.0),
            Ok("USER".to_owned())
        );
        // Decomposed and precomposed "Ädam" are the same username.
        assert_eq!(Username::parse("A\u{308}dam"), Username::parse("Ädam"));
        assert_eq!(
            Username::parse("A\u{308}dam").map(|u| u.0),
            Ok("Ädam".to_owned())
        );
        // The ligature "ﬁ" is two letters after NFKC, so this is long enough.
        assert_eq!(Username::parse("ﬁx").map(|u| u.0), Ok("fix".to_owned()));
    }

    #[test]
    fn length_applies_after_nfkc() {
        // Three source characters, but "㎏" is two letters in NFKC: "kgkgkg" fits, and a single
        // "ﬃ" is three letters and so not too short.
        assert_eq!(
            Username::parse("㎏㎏㎏").map(|u| u.0),
            Ok("kgkgkg".to_owned())
        );
        assert_eq!(Username::parse("ﬃ").map(|u| u.0), Ok("ffi".to_owned()));
        assert_eq!(Username::parse(&"㎏".repeat(17)), Err(LENGTH));
    }

    fn username_like() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<String>(),
            "\\PC*",
            "[a-zA-Z0-9._ -]{0,40}",
            "[ａ-ｚＡ-Ｚäöüßжё字㎏ﬁ._-]{0,40}",
        ]
    }

    proptest! {
        #[test]
        fn never_panics(s in any::<String>()) {
            let _ = Username::parse(&s);
        }

        #[test]
        fn never_panics_on_printable(s in "\\PC*") {
            let _ = Username::parse(&s);
        }

        #[test]
        fn accepted_values_reparse_to_themselves(s in username_like()) {
            if let Ok(name) = Username::parse(&s) {
                let count = name.as_str().chars().count();
                prop_assert!((MIN..=MAX).contains(&count), "{} chars", count);
                prop_assert!(name.as_str().chars().all(is_allowed));
                prop_assert_eq!(Username::parse(name.as_str()), Ok(name.clone()));
            }
        }
    }
}
