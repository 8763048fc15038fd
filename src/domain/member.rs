//! The address, phone and free-text details an NGO keeps about a member.

use super::{Problem, check_length, normalize_key};

/// A Polish postal code, `NN-NNN` in ASCII digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct PostalCode(String);

impl PostalCode {
    /// Trims `raw`, then checks the `NN-NNN` shape.
    ///
    /// Anything but ASCII digits and `-` is [`Problem::Characters`]; the right characters in the
    /// wrong shape ("00000", "000-00", "00-0000") are [`Problem::Format`]. There is no
    /// [`Problem::Length`] here: "6 characters" would tell a person less than "NN-NNN".
    pub fn parse(raw: &str) -> Result<Self, Problem> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(Problem::Required);
        }
        if !trimmed.chars().all(|c| c.is_ascii_digit() || c == '-') {
            return Err(Problem::Characters);
        }
        match trimmed.as_bytes() {
            [a, b, b'-', c, d, e] if [a, b, c, d, e].iter().all(|x| x.is_ascii_digit()) => {
                Ok(Self(trimmed.to_owned()))
            }
            _ => Err(Problem::Format),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One of Poland's 16 voivodeships, serialized as its official name with a capital first letter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum Voivodeship {
    #[serde(rename = "Dolnośląskie")]
    Dolnoslaskie,
    #[serde(rename = "Kujawsko-pomorskie")]
    KujawskoPomorskie,
    #[serde(rename = "Lubelskie")]
    Lubelskie,
    #[serde(rename = "Lubuskie")]
    Lubuskie,
    #[serde(rename = "Łódzkie")]
    Lodzkie,
    #[serde(rename = "Małopolskie")]
    Malopolskie,
    #[serde(rename = "Mazowieckie")]
    Mazowieckie,
    #[serde(rename = "Opolskie")]
    Opolskie,
    #[serde(rename = "Podkarpackie")]
    Podkarpackie,
    #[serde(rename = "Podlaskie")]
    Podlaskie,
    #[serde(rename = "Pomorskie")]
    Pomorskie,
    #[serde(rename = "Śląskie")]
    Slaskie,
    #[serde(rename = "Świętokrzyskie")]
    Swietokrzyskie,
    #[serde(rename = "Warmińsko-mazurskie")]
    WarminskoMazurskie,
    #[serde(rename = "Wielkopolskie")]
    Wielkopolskie,
    #[serde(rename = "Zachodniopomorskie")]
    Zachodniopomorskie,
}

impl Voivodeship {
    /// All 16, in the alphabetical order of their Polish names.
    pub const ALL: [Self; 16] = [
        Self::Dolnoslaskie,
        Self::KujawskoPomorskie,
        Self::Lubelskie,
        Self::Lubuskie,
        Self::Lodzkie,
        Self::Malopolskie,
        Self::Mazowieckie,
        Self::Opolskie,
        Self::Podkarpackie,
        Self::Podlaskie,
        Self::Pomorskie,
        Self::Slaskie,
        Self::Swietokrzyskie,
        Self::WarminskoMazurskie,
        Self::Wielkopolskie,
        Self::Zachodniopomorskie,
    ];

    /// Matches one of the 16 names, ignoring case and surrounding whitespace, with or without
    /// Polish diacritics ("Śląskie", "śląskie", "SLASKIE", "slaskie" and "sląskie" are all
    /// [`Voivodeship::Slaskie`]).
    ///
    /// Diacritics are optional because many keyboards, forms and spreadsheets in the seed data
    /// drop them; no two names collide once they are dropped. The input is compared in
    /// [`normalize_key`] form, so a decomposed "s\u{301}" matches "ś" too. Anything else,
    /// including the "województwo " prefix or a space for the hyphen, is [`Problem::Format`].
    pub fn parse(raw: &str) -> Result<Self, Problem> {
        let key = normalize_key(raw);
        if key.is_empty() {
            return Err(Problem::Required);
        }
        let folded = fold_polish(&key);
        // The names folded once, not 16 times (32 strings) for each row of an import.
        static FOLDED: std::sync::LazyLock<Vec<(Voivodeship, String)>> =
            std::sync::LazyLock::new(|| {
                Voivodeship::ALL
                    .into_iter()
                    .map(|v| (v, fold_polish(&v.as_str().to_lowercase())))
                    .collect()
            });
        FOLDED
            .iter()
            .find(|(_, name)| *name == folded)
            .map(|&(v, _)| v)
            .ok_or(Problem::Format)
    }

    /// The official name, capitalised as it starts a sentence ("Łódzkie", "Kujawsko-pomorskie").
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Dolnoslaskie => "Dolnośląskie",
            Self::KujawskoPomorskie => "Kujawsko-pomorskie",
            Self::Lubelskie => "Lubelskie",
            Self::Lubuskie => "Lubuskie",
            Self::Lodzkie => "Łódzkie",
            Self::Malopolskie => "Małopolskie",
            Self::Mazowieckie => "Mazowieckie",
            Self::Opolskie => "Opolskie",
            Self::Podkarpackie => "Podkarpackie",
            Self::Podlaskie => "Podlaskie",
            Self::Pomorskie => "Pomorskie",
            Self::Slaskie => "Śląskie",
            Self::Swietokrzyskie => "Świętokrzyskie",
            Self::WarminskoMazurskie => "Warmińsko-mazurskie",
            Self::Wielkopolskie => "Wielkopolskie",
            Self::Zachodniopomorskie => "Zachodniopomorskie",
        }
    }
}

/// Replaces the nine lower-case Polish letters with their ASCII base letters.
fn fold_polish(lower: &str) -> String {
    lower
        .chars()
        .map(|c| super::polish_base(c).unwrap_or(c))
        .collect()
}

/// Digits in a Polish subscriber number, without the country code.
const PHONE_DIGITS: usize = 9;

/// A member's Polish phone number as typed: nine digits, optionally led by `+48`, with single
/// spaces or dashes allowed between digits ("768-895-832", "+48 768 895 832", "+48768895832").
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct MemberPhone(String);

impl MemberPhone {
    /// Trims `raw`, then checks characters and shape.
    ///
    /// Anything but ASCII digits, `+`, space and `-` is [`Problem::Characters`] (letters, tabs,
    /// brackets, fullwidth digits). The right characters in the wrong shape are
    /// [`Problem::Format`]: a digit count other than nine (after an optional `+48`), a prefix
    /// other than exactly `+48` ("48 768…", "0048…", "+49…"), a `+` anywhere else, or a
    /// separator that is doubled or not between two digits ("768--895-832", "-768895832").
    /// A wrong digit count is Format rather than [`Problem::Length`] because separators make the
    /// char count of a valid number vary from 9 to 15.
    pub fn parse(raw: &str) -> Result<Self, Problem> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(Problem::Required);
        }
        if !trimmed
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '+' | ' ' | '-'))
        {
            return Err(Problem::Characters);
        }
        // The country code counts as one group, so "+48 768…" and "+48-768…" are fine but
        // "+4 8768…" is not.
        let groups = match trimmed.strip_prefix("+48") {
            Some(rest) => rest.strip_prefix([' ', '-']).unwrap_or(rest),
            None => trimmed,
        };
        let well_formed = groups
            .split([' ', '-'])
            .all(|group| !group.is_empty() && group.bytes().all(|b| b.is_ascii_digit()))
            && groups.bytes().filter(u8::is_ascii_digit).count() == PHONE_DIGITS;
        if !well_formed {
            return Err(Problem::Format);
        }
        Ok(Self(trimmed.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The nine digits without the country code or separators, for comparing two numbers typed
    /// differently.
    pub fn national_number(&self) -> String {
        let national = self.0.strip_prefix("+48").unwrap_or(&self.0);
        national.chars().filter(char::is_ascii_digit).collect()
    }
}

const TEXT_MAX: usize = 100;

/// A short free-text member detail (first name, surname, town, street, house/flat number,
/// education): 1–100 chars after trimming, kept as typed, without control characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct MemberText(String);

impl MemberText {
    /// Trims `raw`, then checks length and characters.
    ///
    /// The text is not normalised, so what an NGO's staff typed ("O'Brien", "Kowalska-Nowak",
    /// "Łódź", "12/3a") is exactly what they see again.
    pub fn parse(raw: &str) -> Result<Self, Problem> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(Problem::Required);
        }
        check_length(trimmed, 1, TEXT_MAX)?;
        if trimmed.chars().any(is_refused_in_text) {
            return Err(Problem::Characters);
        }
        Ok(Self(trimmed.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Control characters, plus the Unicode line breaks and bidirectional overrides that act like
/// them: these fields are one-line values shown in lists and CSV exports, where a line break
/// splits a row and an override (U+202E) reverses the text that follows it on screen.
fn is_refused_in_text(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}' | '\u{2029}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const TEXT_LENGTH: Problem = Problem::Length {
        min: 1,
        max: TEXT_MAX,
    };

    fn postal(raw: &str) -> Result<String, Problem> {
        PostalCode::parse(raw).map(|p| p.0)
    }

    fn phone(raw: &str) -> Result<String, Problem> {
        MemberPhone::parse(raw).map(|p| p.0)
    }

    fn text(raw: &str) -> Result<String, Problem> {
        MemberText::parse(raw).map(|t| t.0)
    }

    /// The `^\d{2}-\d{3}$` check, written without the parser's pattern.
    fn is_postal_shape(s: &str) -> bool {
        s.len() == 6
            && s.char_indices()
                .all(|(i, c)| if i == 2 { c == '-' } else { c.is_ascii_digit() })
    }

    #[test]
    fn postal_code_accepts_nn_nnn() {
        for ok in ["00-950", "31-042", "99-999", "00-000"] {
            assert_eq!(postal(ok), Ok(ok.to_owned()));
        }
        assert_eq!(postal("  80-001\t"), Ok("80-001".to_owned()));
    }

    #[test]
    fn postal_code_blank_is_required() {
        assert_eq!(postal(""), Err(Problem::Required));
        assert_eq!(postal(" \n "), Err(Problem::Required));
    }

    #[test]
    fn postal_code_refuses_other_characters() {
        for bad in [
            "00 950",
            "00–950",
            "00_950",
            "0O-950",
            "ab-cde",
            "００-９５０",
            "00-95\u{0}",
        ] {
            assert_eq!(postal(bad), Err(Problem::Characters), "{bad:?}");
        }
    }

    #[test]
    fn postal_code_refuses_wrong_shapes() {
        for bad in [
            "00950", "009-50", "0-0950", "00-95", "00-9500", "000-950", "-", "00--950", "-00950",
            "00950-", "12-345-",
        ] {
            assert_eq!(postal(bad), Err(Problem::Format), "{bad:?}");
        }
    }

    #[test]
    fn voivodeship_parses_every_canonical_name() {
        for v in Voivodeship::ALL {
            assert_eq!(Voivodeship::parse(v.as_str()), Ok(v));
        }
        let names: Vec<&str> = Voivodeship::ALL.iter().map(|v| v.as_str()).collect();
        assert_eq!(
            names,
            [
                "Dolnośląskie",
                "Kujawsko-pomorskie",
                "Lubelskie",
                "Lubuskie",
                "Łódzkie",
                "Małopolskie",
                "Mazowieckie",
                "Opolskie",
                "Podkarpackie",
                "Podlaskie",
                "Pomorskie",
                "Śląskie",
                "Świętokrzyskie",
                "Warmińsko-mazurskie",
                "Wielkopolskie",
                "Zachodniopomorskie",
            ]
        );
    }

    #[test]
    fn voivodeship_ignores_case_whitespace_and_diacritics() {
        use Voivodeship::*;
        for (raw, expected) in [
            ("śląskie", Slaskie),
            ("ŚLĄSKIE", Slaskie),
            ("slaskie", Slaskie),
            ("SLASKIE", Slaskie),
            ("sląskie", Slaskie),
            ("  Śląskie\n", Slaskie),
            ("lodzkie", Lodzkie),
            ("ŁÓDZKIE", Lodzkie),
            ("swietokrzyskie", Swietokrzyskie),
            ("dolnoslaskie", Dolnoslaskie),
            ("warminsko-mazurskie", WarminskoMazurskie),
            ("Warmińsko-Mazurskie", WarminskoMazurskie),
            ("Kujawsko-Pomorskie", KujawskoPomorskie),
            ("malopolskie", Malopolskie),
            ("MAZOWIECKIE", Mazowieckie),
            // Decomposed "Ś" (S + combining acute) as some systems send it.
            ("S\u{301}la\u{328}skie", Slaskie),
        ] {
            assert_eq!(Voivodeship::parse(raw), Ok(expected), "{raw:?}");
        }
    }

    #[test]
    fn voivodeship_refuses_anything_else() {
        assert_eq!(Voivodeship::parse(""), Err(Problem::Required));
        assert_eq!(Voivodeship::parse("  "), Err(Problem::Required));
        for bad in [
            "województwo śląskie",
            "kujawsko pomorskie",
            "kujawskopomorskie",
            "Silesia",
            "slask",
            "śląskie!",
            "mazowieckie mazowieckie",
            "x",
        ] {
            assert_eq!(Voivodeship::parse(bad), Err(Problem::Format), "{bad:?}");
        }
    }

    #[test]
    fn voivodeship_serializes_as_its_canonical_name() {
        for v in Voivodeship::ALL {
            assert_eq!(
                serde_json::to_value(v).expect("serializes"),
                serde_json::json!(v.as_str())
            );
        }
    }

    #[test]
    fn voivodeship_names_stay_distinct_without_diacritics() {
        let mut folded: Vec<String> = Voivodeship::ALL
            .iter()
            .map(|v| fold_polish(&v.as_str().to_lowercase()))
            .collect();
        folded.sort();
        folded.dedup();
        assert_eq!(folded.len(), 16);
    }

    #[test]
    fn phone_accepts_nine_digits_with_optional_prefix_and_separators() {
        for ok in [
            "768-895-832",
            "+48 768 895 832",
            "768895832",
            "+48768895832",
            "+48-768-895-832",
            "768 895 832",
            "76 889 58 32",
            "768 895-832",
            "7-6-8-8-9-5-8-3-2",
        ] {
            assert_eq!(phone(ok), Ok(ok.to_owned()), "{ok:?}");
        }
        assert_eq!(phone("  768 895 832 \t"), Ok("768 895 832".to_owned()));
    }

    #[test]
    fn phone_blank_is_required() {
        assert_eq!(phone(""), Err(Problem::Required));
        assert_eq!(phone("   "), Err(Problem::Required));
    }

    #[test]
    fn phone_refuses_letters_and_other_characters() {
        for bad in [
            "768a895832",
            "tel. 768895832",
            "(48) 768895832",
            "768.895.832",
            "768\t895\t832",
            "７６８８９５８３２",
            "768_895_832",
            "768895832\u{0}",
        ] {
            assert_eq!(phone(bad), Err(Problem::Characters), "{bad:?}");
        }
    }

    #[test]
    fn phone_refuses_wrong_shapes() {
        for bad in [
            "12345678",
            "1234567890",
            "+48 12345678",
            "+49 768895832",
            "+49768895832",
            "48 768 895 832",
            "48768895832",
            "0048768895832",
            "768--895",
            "768--895-832",
            "768  895 832",
            "-768895832",
            "768895832-",
            "+48--768895832",
            "+48 -768895832",
            "+ 48 768 895 832",
            "+4 8768895832",
            "++48768895832",
            "768+895832",
            "768895832+48",
            "+48",
            "+",
            "-",
            "+48 ",
            "+48-",
        ] {
            assert_eq!(phone(bad), Err(Problem::Format), "{bad:?}");
        }
    }

    #[test]
    fn phone_national_number_drops_prefix_and_separators() {
        for raw in [
            "768-895-832",
            "+48 768 895 832",
            "768895832",
            "+48768895832",
        ] {
            let p = MemberPhone::parse(raw).expect(raw);
            assert_eq!(p.national_number(), "768895832");
        }
        // A national number that itself starts with 48 keeps its digits.
        let p = MemberPhone::parse("488 895 832").expect("valid");
        assert_eq!(p.national_number(), "488895832");
        let p = MemberPhone::parse("+48488895832").expect("valid");
        assert_eq!(p.national_number(), "488895832");
    }

    #[test]
    fn text_accepts_names_and_addresses_as_typed() {
        for ok in [
            "Łukasz",
            "Kowalska-Nowak",
            "O'Brien",
            "Żółć Gęślą Jaźń",
            "ul. Marszałkowska",
            "12/3a",
            "wyższe magisterskie",
            "x",
            "Zoë",
            "李",
        ] {
            assert_eq!(text(ok), Ok(ok.to_owned()), "{ok:?}");
        }
        // Not normalised: a decomposed letter stays decomposed.
        assert_eq!(text("Zo\u{308}e"), Ok("Zo\u{308}e".to_owned()));
    }

    #[test]
    fn text_is_trimmed_and_blank_is_required() {
        assert_eq!(text("  Jan \n"), Ok("Jan".to_owned()));
        // U+0085 and U+2029 are whitespace to `trim`, so at the ends they are dropped, not refused.
        assert_eq!(text("\u{85}Jan\u{2029}"), Ok("Jan".to_owned()));
        assert_eq!(text(""), Err(Problem::Required));
        assert_eq!(text(" \t\n\u{3000}"), Err(Problem::Required));
    }

    #[test]
    fn text_length_boundaries_count_chars() {
        assert!(text(&"a".repeat(100)).is_ok());
        assert_eq!(text(&"a".repeat(101)), Err(TEXT_LENGTH));
        assert!(text(&"ż".repeat(100)).is_ok());
        assert_eq!(text(&"ż".repeat(101)), Err(TEXT_LENGTH));
        // Surrounding whitespace does not count.
        assert!(text(&format!("  {}  ", "a".repeat(100))).is_ok());
        // Length is reported before characters.
        assert_eq!(text(&"\u{0}".repeat(101)), Err(TEXT_LENGTH));
    }

    #[test]
    fn text_refuses_control_characters_and_line_breaks() {
        for bad in [
            "Jan\nKowalski",
            "Jan\r\nKowalski",
            "Jan\tKowalski",
            "Jan\u{0}",
            "Jan\u{7f}",
            "Jan\u{85}Kowalski",
            "Jan\u{2028}Kowalski",
            "Jan\u{2029}Kowalski",
            "Jan\u{202E}ikslawoK",
            "\u{2066}Jan\u{2069}",
        ] {
            assert_eq!(text(bad), Err(Problem::Characters), "{bad:?}");
        }
    }

    fn case_mangled(name: &str, mask: &[bool]) -> String {
        name.chars()
            .zip(mask.iter().cycle())
            .flat_map(|(c, &upper)| {
                if upper {
                    c.to_uppercase().collect::<Vec<_>>()
                } else {
                    c.to_lowercase().collect::<Vec<_>>()
                }
            })
            .collect()
    }

    fn postal_like() -> impl Strategy<Value = String> {
        prop_oneof![
            "\\PC*",
            "[0-9 -]{0,10}",
            " ?[0-9]{2}-[0-9]{3} ?",
            "[0-9-]{6}"
        ]
    }

    fn phone_like() -> impl Strategy<Value = String> {
        prop_oneof![
            "\\PC*",
            "[0-9 +-]{0,20}",
            "(\\+48)?[ -]?([0-9]{1,4}[ -]?){1,6}",
        ]
    }

    fn text_like() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<String>(),
            "\\PC{0,120}",
            "[ \t\na-zżółćęśąźń'-]{0,110}",
        ]
    }

    proptest! {
        #[test]
        fn never_panics(s in any::<String>()) {
            let _ = PostalCode::parse(&s);
            let _ = Voivodeship::parse(&s);
            let _ = MemberPhone::parse(&s);
            let _ = MemberText::parse(&s);
        }

        #[test]
        fn never_panics_on_printable(s in "\\PC*") {
            let _ = PostalCode::parse(&s);
            let _ = Voivodeship::parse(&s);
            let _ = MemberPhone::parse(&s);
            let _ = MemberText::parse(&s);
        }

        #[test]
        fn voivodeship_round_trips_in_any_case(
            index in 0usize..16,
            mask in proptest::collection::vec(any::<bool>(), 1..8),
            ascii in any::<bool>(),
        ) {
            let v = Voivodeship::ALL[index];
            prop_assert_eq!(Voivodeship::parse(v.as_str()), Ok(v));
            prop_assert_eq!(Voivodeship::parse(&v.as_str().to_uppercase()), Ok(v));
            prop_assert_eq!(Voivodeship::parse(&v.as_str().to_lowercase()), Ok(v));
            let name = if ascii {
                fold_polish(&v.as_str().to_lowercase())
            } else {
                v.as_str().to_owned()
            };
            prop_assert_eq!(Voivodeship::parse(&case_mangled(&name, &mask)), Ok(v));
        }

        #[test]
        fn accepted_voivodeships_are_one_of_the_sixteen(s in prop_oneof!["\\PC*", "[a-zśłą -]{0,20}"]) {
            if let Ok(v) = Voivodeship::parse(&s) {
                prop_assert!(Voivodeship::ALL.contains(&v));
                prop_assert_eq!(Voivodeship::parse(v.as_str()), Ok(v));
            }
        }

        #[test]
        fn accepted_postal_codes_are_nn_nnn(s in postal_like()) {
            if let Ok(code) = PostalCode::parse(&s) {
                prop_assert!(is_postal_shape(code.as_str()), "{:?}", code);
                prop_assert_eq!(PostalCode::parse(code.as_str()), Ok(code.clone()));
            }
        }

        #[test]
        fn every_nn_nnn_is_a_postal_code(s in "[0-9]{2}-[0-9]{3}") {
            prop_assert_eq!(postal(&s), Ok(s));
        }

        #[test]
        fn accepted_phones_have_nine_national_digits(s in phone_like()) {
            if let Ok(p) = MemberPhone::parse(&s) {
                prop_assert_eq!(p.as_str(), s.trim());
                prop_assert_eq!(p.national_number().len(), PHONE_DIGITS);
                prop_assert!(p.national_number().bytes().all(|b| b.is_ascii_digit()));
                let digits = p.as_str().bytes().filter(u8::is_ascii_digit).count();
                let prefixed = p.as_str().starts_with("+48");
                prop_assert_eq!(digits, if prefixed { 11 } else { 9 });
                prop_assert_eq!(MemberPhone::parse(p.as_str()), Ok(p.clone()));
            }
        }

        #[test]
        fn nine_digits_with_single_separators_are_phones(
            digits in "[0-9]{9}",
            separators in proptest::collection::vec(prop_oneof![Just(""), Just(" "), Just("-")], 8),
            prefix in prop_oneof![Just(""), Just("+48"), Just("+48 "), Just("+48-")],
        ) {
            let mut s = prefix.to_owned();
            for (i, d) in digits.chars().enumerate() {
                s.push(d);
                if let Some(sep) = separators.get(i) {
                    s.push_str(sep);
                }
            }
            prop_assert_eq!(phone(&s), Ok(s.clone()));
            let p = MemberPhone::parse(&s).expect("valid");
            prop_assert_eq!(p.national_number(), digits);
        }

        #[test]
        fn accepted_text_is_trimmed_and_short(s in text_like()) {
            if let Ok(t) = MemberText::parse(&s) {
                let value = t.as_str();
                prop_assert_eq!(value, value.trim());
                prop_assert_eq!(value, s.trim());
                prop_assert!((1..=TEXT_MAX).contains(&value.chars().count()));
                prop_assert!(!value.chars().any(char::is_control));
                prop_assert_eq!(MemberText::parse(value), Ok(t.clone()));
            }
        }
    }
}
