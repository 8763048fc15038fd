//! Parse-don't-validate types for everything a client sends, the closed sets of names an
//! account lives by, and the commands built from them. Depends on std and small crates only:
//! no wire format, no database.

pub mod account;
pub mod company;
pub mod email;
pub mod form;
pub mod member;
pub mod new_member;
pub mod password;
pub mod pesel;
pub mod username;

pub use account::{AccountStatus, OrganizationStatus, RevokeReason, Role};
pub use company::{CompanyEmail, Phone};
pub use email::AccountEmail;
pub use form::{FieldInput, Fields};
pub use member::{MemberPhone, MemberText, PostalCode, Voivodeship};
pub use new_member::{FIELDS as MEMBER_FIELDS, MemberForm, MemberPatch, NewMember, SearchText};
pub use password::{Password, PasswordPolicy};
pub use pesel::Pesel;
pub use username::Username;

use unicode_normalization::UnicodeNormalization;

/// Why a value was refused. The core never formats text for a person; surfaces render this in en/pl/ru.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Problem {
    /// Missing, or empty after trimming.
    Required,
    /// The character count (chars, not bytes) is outside `min..=max`.
    Length { min: usize, max: usize },
    /// A character outside the allowed set.
    Characters,
    /// Only allowed characters, but in the wrong shape (an email without `@` and the like).
    Format,
    /// Seed policy: missing an upper-case letter, a lower-case letter, a digit or a symbol.
    PasswordClasses,
    /// In the shipped list of common passwords.
    CommonPassword,
    /// Unique, and another record already has it (a member's PESEL within an organization).
    Taken,
    /// A JSON value of the wrong type (an object where text was expected, and the like).
    Type,
    /// Not a field this kind of record has (a CSV column brama does not know).
    Unknown,
}

/// A refused field: `field` is the JSON name the client sent.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FieldError {
    pub field: &'static str,
    pub problem: Problem,
}

/// The form used to compare usernames, emails and phones for uniqueness: trimmed, Unicode NFKC, lower-case.
pub fn normalize_key(s: &str) -> String {
    if is_plain(s) {
        // Every normal form leaves such text as it is, and lower-casing keeps it plain and
        // makes no whitespace: this is what `normalize_key_fully` gives (tested), without its
        // passes, a third of the work of parsing a large import (issue 18).
        return s.trim().chars().flat_map(char::to_lowercase).collect();
    }
    normalize_key_fully(s)
}

/// [`normalize_key`] by its normal forms, for any text.
fn normalize_key_fully(s: &str) -> String {
    let lowered: String = s.trim().nfkc().flat_map(char::to_lowercase).collect();
    // Lower-casing can leave text that NFKC composes further ("Ϊ\u{301}" -> "ϊ\u{301}" -> "ΐ"), and
    // NFKC can turn a spacing accent into a space plus a combining mark ("¨" -> " \u{308}"). Without
    // the second pass and trim a stored key would not be its own key, and lookups would miss it.
    lowered.nfkc().collect::<String>().trim().to_owned()
}

/// The form member search compares (SPEC §4): [`normalize_key`], then without diacritics, so
/// that `krakow` finds Kraków and `lodz` finds Łódź. Letters are decomposed (NFD) and their
/// combining marks dropped; `ł`, which Unicode does not decompose, becomes `l`.
pub fn search_key(s: &str) -> String {
    let key = normalize_key(s);
    if key
        .chars()
        .all(|c| c.is_ascii() || polish_base(c).is_some())
    {
        // ASCII is its own NFD and NFC; each lower-case Polish letter decomposes into its base
        // letter and one mark that is dropped (ł into none, and is mapped).
        return key.chars().map(|c| polish_base(c).unwrap_or(c)).collect();
    }
    without_marks(&key)
}

/// A key without its diacritics by its normal forms, for any text.
fn without_marks(key: &str) -> String {
    key.nfd()
        .filter(|c| !('\u{0300}'..='\u{036f}').contains(c))
        .map(|c| if c == 'ł' { 'l' } else { c })
        .nfc()
        .collect()
}

/// The Polish alphabet, in its order.
const POLISH: &str = "aąbcćdeęfghijklłmnńoópqrsśtuvwxyzźż";

/// Each ASCII lower-case letter's place in [`POLISH`] (the other entries unused): counted over
/// its bytes, a character at each byte that does not continue one.
const ASCII_PLACE: [u8; 128] = {
    let bytes = POLISH.as_bytes();
    let mut table = [0u8; 128];
    let (mut i, mut place) = (0, 0u8);
    while i < bytes.len() {
        if bytes[i] & 0xC0 != 0x80 {
            if bytes[i].is_ascii() {
                table[bytes[i] as usize] = place;
            }
            place += 1;
        }
        i += 1;
    }
    table
};

/// The base letter of each of the nine lower-case Polish letters with a diacritic.
fn polish_base(c: char) -> Option<char> {
    Some(match c {
        'ą' => 'a',
        'ć' => 'c',
        'ę' => 'e',
        'ł' => 'l',
        'ń' => 'n',
        'ó' => 'o',
        'ś' => 's',
        'ź' | 'ż' => 'z',
        _ => return None,
    })
}

/// Text of ASCII and the eighteen Polish letters with a diacritic, precomposed: what nearly
/// every name and address in a Polish register is. NFKC, NFC and NFD (but for the letters'
/// decomposition) leave it as it is, and nothing in it composes with what follows.
fn is_plain(s: &str) -> bool {
    s.chars()
        .all(|c| c.is_ascii() || polish_base(lower_polish(c)).is_some())
}

/// The lower-case form of an upper-case Polish letter with a diacritic (others as they are).
fn lower_polish(c: char) -> char {
    match c {
        'Ą' => 'ą',
        'Ć' => 'ć',
        'Ę' => 'ę',
        'Ł' => 'ł',
        'Ń' => 'ń',
        'Ó' => 'ó',
        'Ś' => 'ś',
        'Ź' => 'ź',
        'Ż' => 'ż',
        other => other,
    }
}

/// A key that sorts texts in Polish alphabetical order when compared byte by byte (SPEC §4:
/// Dąbrowski before Dudek, Łukasz after Lucyna), so both backends sort alike with no collation
/// of their own. Case is ignored; each letter of the Polish alphabet is one ASCII character in
/// its order (after spaces and digits); another letter with a diacritic sorts as its base
/// letter (é as e); anything else sorts after every letter, by its code point.
pub fn sort_key(s: &str) -> String {
    // An ASCII letter is its own NFD base, so the table answers for it what both lookups in
    // `sort_key_by` would; other letters are looked up in the alphabet.
    sort_key_by(s, |c| match c {
        'a'..='z' => Some(usize::from(ASCII_PLACE[c as usize])),
        _ => place_in_alphabet(c),
    })
}

/// A lower-case letter's place in [`POLISH`], looked up.
fn place_in_alphabet(c: char) -> Option<usize> {
    POLISH.chars().position(|p| p == c)
}

/// [`sort_key`] with `letter` giving a lower-case letter's place in the alphabet.
fn sort_key_by(s: &str, letter: impl Fn(char) -> Option<usize>) -> String {
    let mut key = String::with_capacity(s.len());
    for c in s.trim().chars().flat_map(char::to_lowercase) {
        let base = || {
            c.to_string()
                .nfd()
                .next()
                .filter(|b| b.is_ascii_alphabetic())
        };
        match letter(c).or_else(|| base().and_then(&letter)) {
            Some(i) => key.push(char::from(b'A' + i as u8)),
            None if c.is_ascii_digit() => key.push(c),
            None if c.is_whitespace() || c == '-' => key.push(' '),
            None => {
                key.push('~');
                key.push(c);
            }
        }
    }
    key
}

/// Refuses a value whose character count falls outside `min..=max`.
///
/// Counting chars rather than bytes keeps the limits the same for "ä" and "a", which is what a
/// person reading "3–32 characters" expects.
fn check_length(s: &str, min: usize, max: usize) -> Result<(), Problem> {
    let count = s.chars().count();
    if (min..=max).contains(&count) {
        Ok(())
    } else {
        Err(Problem::Length { min, max })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn sort_keys_follow_the_polish_alphabet() {
        let mut names = vec![
            "Dudek",
            "Żak",
            "Dąbrowski",
            "Lucyna",
            "Łukasz",
            "cybulski",
            "Ćwik",
            "Zieliński",
            "Źdźbło",
            "Nowak",
            "Ńa",
            "Óla",
            "Ola",
            "Sowa",
            "Śliwa",
            "Ewa",
            "Ęa",
            "Éric",
            "Anna",
            "Ąb",
            "Kowalska-Nowak",
            "Kowalska",
        ];
        names.sort_by_key(|n| super::sort_key(n));
        assert_eq!(
            names,
            [
                "Anna",
                "Ąb",
                "cybulski",
                "Ćwik",
                "Dąbrowski",
                "Dudek",
                "Éric",
                "Ewa",
                "Ęa",
                "Kowalska",
                "Kowalska-Nowak",
                "Lucyna",
                "Łukasz",
                "Nowak",
                "Ńa",
                "Ola",
                "Óla",
                "Sowa",
                "Śliwa",
                "Zieliński",
                "Źdźbło",
                "Żak"
            ]
        );
        assert!(super::sort_key("Łódzkie") > super::sort_key("Lubuskie"));
        assert!(super::sort_key("Śląskie") > super::sort_key("Pomorskie"));
        assert!(super::sort_key("Śląskie") < super::sort_key("Świętokrzyskie"));
        assert!(super::sort_key("Świętokrzyskie") < super::sort_key("Warmińsko-Mazurskie"));
        assert!(
            super::sort_key("Ω") > super::sort_key("Żak"),
            "other scripts last"
        );
        assert!(
            super::sort_key("A1") < super::sort_key("AA"),
            "digits before letters"
        );
    }

    #[test]
    fn search_keys_ignore_case_and_polish_diacritics() {
        assert_eq!(super::search_key("Kraków"), "krakow");
        assert_eq!(super::search_key("ŁÓDŹ"), "lodz");
        assert_eq!(
            super::search_key(" Zażółć gęślą jaźń "),
            "zazolc gesla jazn"
        );
        assert_eq!(
            super::search_key("Dąbrowski"),
            super::search_key("dabrowski")
        );
        // Idempotent, so a stored key is its own key.
        let once = super::search_key("Świętokrzyskie ǅ ﬁ");
        assert_eq!(super::search_key(&once), once);
    }

    use super::*;
    use proptest::prelude::*;

    /// `sort_key` looking every letter up in the alphabet, as it did before its table.
    fn sort_key_by_lookups(s: &str) -> String {
        sort_key_by(s, place_in_alphabet)
    }

    /// Texts near the plain path's edges: ASCII (controls too), the Polish letters in both cases,
    /// combining marks that compose with them, spaces NFKC changes, letters it splits or joins.
    fn near_plain() -> impl Strategy<Value = String> {
        let chars = prop::sample::select(vec![
            'a', 'Z', 'q', '0', ' ', '\t', '\n', '\u{1}', '-', '~', '\u{7f}', 'ą', 'Ą', 'ć', 'Ć',
            'ę', 'Ę', 'ł', 'Ł', 'ń', 'Ń', 'ó', 'Ó', 'ś', 'Ś', 'ź', 'Ź', 'ż', 'Ż', '\u{301}',
            '\u{328}', '\u{307}', '\u{308}', '\u{a0}', '\u{2003}', 'ﬁ', 'ǅ', 'İ', 'ẞ', 'é', 'É',
            'ö', 'ｕ', '¨', 'Ω', 'ı',
        ]);
        prop::collection::vec(chars, 0..12).prop_map(|cs| cs.into_iter().collect())
    }

    #[test]
    fn the_plain_paths_agree_on_register_text() {
        for s in [
            " Zażółć GĘŚLĄ jaźń ",
            "Kowalska-Nowak",
            "ul. Długa 5/7",
            "ŁÓDŹ",
            "",
            "  ",
        ] {
            assert_eq!(normalize_key(s), normalize_key_fully(s), "{s:?}");
            assert_eq!(
                search_key(s),
                without_marks(&normalize_key_fully(s)),
                "{s:?}"
            );
            assert_eq!(sort_key(s), sort_key_by_lookups(s), "{s:?}");
        }
        assert!(is_plain("Zażółć GĘŚLĄ jaźń 0-9"));
        assert!(!is_plain("Ze\u{301}"), "a combining mark");
        assert!(!is_plain("é"), "a letter not Polish");
    }

    proptest! {
        /// The plain paths of `normalize_key`, `search_key` and `sort_key` give what the normal
        /// forms and the alphabet's lookups give, for text near their edges and for any text.
        #[test]
        fn the_plain_paths_give_what_the_normal_forms_give(
            near in near_plain(),
            any_text in any::<String>(),
        ) {
            for s in [&near, &any_text] {
                prop_assert_eq!(normalize_key(s), normalize_key_fully(s));
                prop_assert_eq!(search_key(s), without_marks(&normalize_key_fully(s)));
                prop_assert_eq!(sort_key(s), sort_key_by_lookups(s));
            }
        }
    }

    #[test]
    fn normalize_key_trims_folds_width_and_case() {
        assert_eq!(normalize_key("  ÄDAM "), normalize_key("ädam"));
        assert_eq!(normalize_key("  ÄDAM "), "ädam");
        assert_eq!(normalize_key("ｕｓｅｒ"), "user");
        assert_eq!(normalize_key("User@Example.COM"), "user@example.com");
        // "A" followed by a combining diaeresis composes to the same key as the precomposed form.
        assert_eq!(normalize_key("A\u{0308}dam"), normalize_key("Ädam"));
        assert_eq!(normalize_key(""), "");
        assert_eq!(normalize_key(" \t\n "), "");
    }

    #[test]
    fn normalize_key_is_its_own_key_for_known_tricky_inputs() {
        for s in ["Ϊ\u{301}", "ᾼ\u{301}", "¨", "´\u{301}", "ẞ", "İ", "ﬀ"] {
            let once = normalize_key(s);
            assert_eq!(normalize_key(&once), once, "input {s:?}");
        }
        assert_eq!(normalize_key("Ϊ\u{301}"), "ΐ");
        assert_eq!(normalize_key("¨"), "\u{308}");
    }

    #[test]
    fn check_length_counts_chars_not_bytes() {
        assert_eq!(check_length("ääa", 3, 3), Ok(()));
        assert_eq!(
            check_length("ää", 3, 3),
            Err(Problem::Length { min: 3, max: 3 })
        );
        assert_eq!(
            check_length("äääa", 3, 3),
            Err(Problem::Length { min: 3, max: 3 })
        );
    }

    #[test]
    fn problem_serializes_with_a_kind_tag() {
        let json = |p: Problem| serde_json::to_value(p).expect("Problem always serializes");
        assert_eq!(
            json(Problem::Required),
            serde_json::json!({"kind": "required"})
        );
        assert_eq!(
            json(Problem::Length { min: 3, max: 32 }),
            serde_json::json!({"kind": "length", "min": 3, "max": 32})
        );
        assert_eq!(
            json(Problem::Characters),
            serde_json::json!({"kind": "characters"})
        );
        assert_eq!(json(Problem::Format), serde_json::json!({"kind": "format"}));
        assert_eq!(
            json(Problem::PasswordClasses),
            serde_json::json!({"kind": "password_classes"})
        );
        assert_eq!(
            json(Problem::CommonPassword),
            serde_json::json!({"kind": "common_password"})
        );
    }

    #[test]
    fn field_error_serializes_field_and_problem() {
        let err = FieldError {
            field: "username",
            problem: Problem::Length { min: 3, max: 32 },
        };
        assert_eq!(
            serde_json::to_value(&err).expect("FieldError always serializes"),
            serde_json::json!({"field": "username", "problem": {"kind": "length", "min": 3, "max": 32}})
        );
    }

    proptest! {
        #[test]
        fn normalize_key_is_idempotent(s in any::<String>()) {
            let once = normalize_key(&s);
            prop_assert_eq!(normalize_key(&once), once);
        }

        #[test]
        fn normalize_key_ignores_surrounding_whitespace(s in "\\PC*") {
            prop_assert_eq!(normalize_key(&format!("  {s}\t\n")), normalize_key(&s));
        }
    }
}
