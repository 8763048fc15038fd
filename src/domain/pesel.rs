//! The PESEL national identification number a member gives when joining an NGO's registry.

use std::fmt;

use super::{FieldInput, Problem, check_length};

const LEN: usize = 11;

/// Weights of the first ten digits in the check-digit sum. Each is coprime with 10, so changing
/// any single digit always changes the check digit.
const WEIGHTS: [u32; 10] = [1, 3, 7, 9, 1, 3, 7, 9, 1, 3];

/// The first year of the century encoded by `month / 20` of the two month digits; the remainder
/// `month % 20` is the calendar month. Every two-digit month indexes this table, so decoding
/// never fails, and only remainders 1..=12 are accepted on parsing.
const CENTURY: [i32; 5] = [1900, 2000, 2100, 2200, 1800];

/// The largest value a JSON number can have and still be a PESEL (eleven nines).
const MAX_NUMBER: u64 = 99_999_999_999;

/// A PESEL: eleven ASCII digits with a valid check digit and a date of birth that exists.
///
/// `Debug` never shows the number and there is no `Display`, so a PESEL cannot slip into a log
/// through `{:?}` on a struct that holds one; use [`Pesel::as_str`] where the number is meant to
/// go (the database, the member's own view).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Pesel(String);

impl Pesel {
    /// Trims `raw`, then checks that it is exactly 11 ASCII digits with a valid check digit and
    /// date of birth.
    ///
    /// Blank is [`Problem::Required`]; a count other than 11 chars is
    /// [`Problem::Length`] `{ min: 11, max: 11 }` (checked first, as for every other field);
    /// anything but ASCII digits is [`Problem::Characters`]; a wrong check digit or a date that
    /// does not exist is [`Problem::Format`]. Strings are never padded: a string is typed by a
    /// person or a client that knows the number is text, so a short one is a mistake.
    pub fn parse(raw: &str) -> Result<Self, Problem> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(Problem::Required);
        }
        check_length(trimmed, LEN, LEN)?;
        let Ok(digits) = <[u8; LEN]>::try_from(trimmed.as_bytes()) else {
            // Eleven chars but not eleven bytes: some char is not ASCII.
            return Err(Problem::Characters);
        };
        if !digits.iter().all(u8::is_ascii_digit) {
            return Err(Problem::Characters);
        }
        let digits = digits.map(|b| b - b'0');
        let [first10 @ .., check] = digits;
        if check != pesel_checksum_digit(&first10) {
            return Err(Problem::Format);
        }
        let (year, month, day) = decode_birth_date(&digits);
        if !(1..=12).contains(&month) || !(1..=days_in_month(year, month)).contains(&day) {
            return Err(Problem::Format);
        }
        Ok(Self(trimmed.to_owned()))
    }

    /// Reads a PESEL sent as text or as a number.
    ///
    /// Text goes through [`Pesel::parse`]. A number is a non-negative integer of at most 11
    /// digits, left-padded with zeros to 11: the seed client sends PESELs as numbers, and a
    /// number drops leading zeros, which every PESEL of someone born 1900–1909 or 2000–2009 has
    /// (`02270803624` arrives as `2270803624`). Negative numbers and fractions (even `4.4e10`)
    /// are [`Problem::Format`], numbers over 11 digits are [`Problem::Length`] like a too-long
    /// string; anything else (true or false, a list) is [`Problem::Format`].
    pub fn from_input(value: &FieldInput) -> Result<Self, Problem> {
        match value {
            FieldInput::Text(s) => Self::parse(s),
            FieldInput::Integer(n) if *n < 0 => Err(Problem::Format),
            FieldInput::Integer(n) if *n > i128::from(MAX_NUMBER) => {
                Err(Problem::Length { min: LEN, max: LEN })
            }
            FieldInput::Integer(n) => Self::parse(&format!("{n:011}")),
            FieldInput::Decimal(_) | FieldInput::Other => Err(Problem::Format),
        }
    }

    /// Builds the PESEL for a date of birth and a four-digit serial (the last of which is even
    /// for women and odd for men), with the check digit computed.
    ///
    /// `None` when the date does not exist, falls outside 1800–2299 (the centuries a PESEL can
    /// encode), or `serial` is above 9999. Meant for tests, fixtures and seed data, never for
    /// guessing a member's number.
    pub fn from_parts(year: i32, month: u8, day: u8, serial: u16) -> Option<Self> {
        let offset = match year {
            1800..=1899 => 80,
            1900..=1999 => 0,
            2000..=2099 => 20,
            2100..=2199 => 40,
            2200..=2299 => 60,
            _ => return None,
        };
        if serial > 9999 || !(1..=12).contains(&month) {
            return None;
        }
        let first10 = format!("{:02}{:02}{day:02}{serial:04}", year % 100, month + offset);
        let digits: [u8; 10] = first10
            .bytes()
            .map(|b| b.wrapping_sub(b'0'))
            .collect::<Vec<_>>()
            .try_into()
            .ok()?;
        let check = pesel_checksum_digit(&digits);
        Self::parse(&format!("{first10}{check}")).ok()
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The date of birth as (year, month 1–12, day 1–31).
    pub fn birth_date(&self) -> (i32, u8, u8) {
        decode_birth_date(&self.digits())
    }

    /// The tenth digit is even for women and odd for men.
    pub fn is_female(&self) -> bool {
        self.digits()[9].is_multiple_of(2)
    }

    fn digits(&self) -> [u8; LEN] {
        let mut digits = [0; LEN];
        for (d, b) in digits.iter_mut().zip(self.0.bytes()) {
            *d = b - b'0';
        }
        digits
    }
}

impl fmt::Debug for Pesel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Personal data: `{:?}` of a request or a member must never reveal the number.
        f.write_str("Pesel(***)")
    }
}

impl serde::Serialize for Pesel {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // Always the 11-char string, even for a PESEL that arrived as a number, so the leading
        // zero of a 2000s birth survives the round trip.
        serializer.serialize_str(&self.0)
    }
}

/// The check digit for the first ten digits (each 0–9) of a PESEL.
pub fn pesel_checksum_digit(first10: &[u8; 10]) -> u8 {
    let sum: u32 = first10
        .iter()
        .zip(WEIGHTS)
        .map(|(&d, w)| u32::from(d) * w)
        .sum();
    // `sum % 10` is below 10, so the result is a single digit and fits in a u8.
    ((10 - sum % 10) % 10) as u8
}

/// Decodes YYMMDD from the first six digits; the month may be out of range (checked by the caller).
fn decode_birth_date(digits: &[u8; LEN]) -> (i32, u8, u8) {
    let yy = i32::from(digits[0] * 10 + digits[1]);
    let mm = digits[2] * 10 + digits[3];
    let dd = digits[4] * 10 + digits[5];
    (CENTURY[usize::from(mm / 20)] + yy, mm % 20, dd)
}

fn is_leap_year(year: i32) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

/// Days in `month` (1–12) of `year` in the proleptic Gregorian calendar; 0 for any other month.
fn days_in_month(year: i32, month: u8) -> u8 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap_year(year) => 29,
        2 => 28,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn int(n: impl Into<i128>) -> FieldInput {
        FieldInput::Integer(n.into())
    }

    fn text(s: &str) -> FieldInput {
        FieldInput::Text(s.into())
    }

    const LENGTH: Problem = Problem::Length { min: LEN, max: LEN };

    fn pesel(raw: &str) -> Result<String, Problem> {
        Pesel::parse(raw).map(|p| p.0)
    }

    /// Appends the right check digit to ten digits given as text, whatever date they encode.
    fn with_check_digit(first10: &str) -> String {
        let digits: [u8; 10] = first10
            .bytes()
            .map(|b| b - b'0')
            .collect::<Vec<_>>()
            .try_into()
            .expect("ten digits");
        format!("{first10}{}", pesel_checksum_digit(&digits))
    }

    /// The month digits for `month` of `year`, written independently of the parser's table.
    fn encoded_month(year: i32, month: u8) -> u8 {
        let offset = if year < 1900 {
            80
        } else if year < 2000 {
            0
        } else if year < 2100 {
            20
        } else if year < 2200 {
            40
        } else {
            60
        };
        month + offset
    }

    /// Ten digits for a date and serial, without checking that the date exists.
    fn first10(year: i32, month: u8, day: u8, serial: u16) -> String {
        format!(
            "{:02}{:02}{day:02}{serial:04}",
            year % 100,
            encoded_month(year, month)
        )
    }

    /// Days in a month, from the length of the calendar year rather than the parser's rule.
    fn oracle_days_in_month(year: i32, month: u8) -> u8 {
        let leap = (year % 400 == 0) || (year % 4 == 0 && year % 100 != 0);
        [
            31,
            if leap { 29 } else { 28 },
            31,
            30,
            31,
            30,
            31,
            31,
            30,
            31,
            30,
            31,
        ][usize::from(month - 1)]
    }

    #[test]
    fn accepts_known_real_format_numbers() {
        let p = Pesel::parse("44051401359").expect("valid");
        assert_eq!(p.as_str(), "44051401359");
        assert_eq!(p.birth_date(), (1944, 5, 14));
        assert!(!p.is_female());

        // Month 07 without an offset is the 1900s: this one is 1902, not 2002.
        let p = Pesel::parse("02070803628").expect("valid");
        assert_eq!(p.birth_date(), (1902, 7, 8));
        assert!(p.is_female());

        // The same person born a century later: month 07 + 20.
        let p = Pesel::parse("02270803624").expect("valid");
        assert_eq!(p.birth_date(), (2002, 7, 8));
        assert!(p.is_female());
    }

    #[test]
    fn accepts_every_century() {
        for (raw, date, female) in [
            ("99923100014", (1899, 12, 31), false),
            ("00010100008", (1900, 1, 1), true),
            ("00210100004", (2000, 1, 1), true),
            ("99523112345", (2199, 12, 31), true),
            ("00610198766", (2200, 1, 1), true),
            ("99723100001", (2299, 12, 31), true),
            ("99723100018", (2299, 12, 31), false),
        ] {
            let p = Pesel::parse(raw).expect(raw);
            assert_eq!(p.birth_date(), date, "{raw}");
            assert_eq!(p.is_female(), female, "{raw}");
        }
    }

    #[test]
    fn from_parts_matches_the_known_numbers() {
        assert_eq!(
            Pesel::from_parts(1944, 5, 14, 135).map(|p| p.0),
            Some("44051401359".to_owned())
        );
        assert_eq!(
            Pesel::from_parts(1902, 7, 8, 362).map(|p| p.0),
            Some("02070803628".to_owned())
        );
        assert_eq!(
            Pesel::from_parts(2002, 7, 8, 362).map(|p| p.0),
            Some("02270803624".to_owned())
        );
    }

    #[test]
    fn from_parts_refuses_what_a_pesel_cannot_hold() {
        assert_eq!(Pesel::from_parts(1799, 12, 31, 0), None);
        assert_eq!(Pesel::from_parts(2300, 1, 1, 0), None);
        assert_eq!(Pesel::from_parts(-5, 1, 1, 0), None);
        assert_eq!(Pesel::from_parts(2000, 0, 1, 0), None);
        assert_eq!(Pesel::from_parts(2000, 13, 1, 0), None);
        assert_eq!(Pesel::from_parts(2000, 1, 0, 0), None);
        assert_eq!(Pesel::from_parts(2000, 1, 32, 0), None);
        assert_eq!(Pesel::from_parts(2001, 2, 29, 0), None);
        assert_eq!(Pesel::from_parts(2000, 1, 1, 10_000), None);
        assert!(Pesel::from_parts(2000, 1, 1, 9999).is_some());
    }

    #[test]
    fn checksum_digit_follows_the_weights() {
        assert_eq!(pesel_checksum_digit(&[4, 4, 0, 5, 1, 4, 0, 1, 3, 5]), 9);
        assert_eq!(pesel_checksum_digit(&[0; 10]), 0);
        // Sum 10 (a 1 at weight 1 and a 1 at weight 9): a multiple of ten gives 0, not 10.
        assert_eq!(pesel_checksum_digit(&[1, 0, 0, 1, 0, 0, 0, 0, 0, 0]), 0);
        // Sum 1 gives 9.
        assert_eq!(pesel_checksum_digit(&[1, 0, 0, 0, 0, 0, 0, 0, 0, 0]), 9);
    }

    #[test]
    fn every_single_digit_change_moves_the_check_digit() {
        // Exhaustive over positions and digit pairs: the property test below relies on it.
        for pos in 0..10 {
            for old in 0..=9u8 {
                for new in (0..=9u8).filter(|&d| d != old) {
                    let mut before = [0; 10];
                    before[pos] = old;
                    let mut after = before;
                    after[pos] = new;
                    assert_ne!(
                        pesel_checksum_digit(&before),
                        pesel_checksum_digit(&after),
                        "position {pos}: {old} -> {new}"
                    );
                }
            }
        }
    }

    #[test]
    fn refuses_the_seed_example() {
        // Month 54 is the 2100s plus 14, and the check digit should be 1, not 4.
        assert_eq!(pesel("77543187764"), Err(Problem::Format));
        // With the check digit fixed, the impossible month alone still refuses it.
        assert_eq!(pesel(&with_check_digit("7754318776")), Err(Problem::Format));
    }

    #[test]
    fn refuses_a_wrong_check_digit() {
        for bad in ["44051401350", "44051401358", "02070803620", "02270803628"] {
            assert_eq!(pesel(bad), Err(Problem::Format), "{bad}");
        }
    }

    #[test]
    fn empty_or_blank_is_required() {
        assert_eq!(pesel(""), Err(Problem::Required));
        assert_eq!(pesel(" \t\n"), Err(Problem::Required));
    }

    #[test]
    fn trims_surrounding_whitespace() {
        assert_eq!(pesel("  44051401359\n"), Ok("44051401359".to_owned()));
    }

    #[test]
    fn length_is_eleven_chars_and_strings_are_never_padded() {
        assert_eq!(pesel("4405140135"), Err(LENGTH));
        assert_eq!(pesel("440514013590"), Err(LENGTH));
        assert_eq!(pesel("2270803624"), Err(LENGTH));
        assert_eq!(pesel("1"), Err(LENGTH));
        // Length comes first even when the characters are wrong too.
        assert_eq!(pesel("abc"), Err(LENGTH));
        assert_eq!(pesel("4405 1401359"), Err(LENGTH));
    }

    #[test]
    fn refuses_anything_but_ascii_digits() {
        for bad in [
            "4405140135a",
            "44051-01359",
            "4405 401359",
            "+4405140135",
            "4405140135\u{0}",
            "4405140135ą",
            // Fullwidth and Arabic-Indic digits: eleven chars, but not ASCII.
            "４４０５１４０１３５９",
            "٤٤٠٥١٤٠١٣٥٩",
        ] {
            assert_eq!(pesel(bad), Err(Problem::Characters), "{bad:?}");
        }
    }

    #[test]
    fn only_the_five_century_offsets_are_months() {
        let valid: Vec<u8> = [0, 20, 40, 60, 80]
            .iter()
            .flat_map(|offset| (1..=12).map(move |m| m + offset))
            .collect();
        for mm in 0..=99u8 {
            let raw = with_check_digit(&format!("01{mm:02}010000"));
            assert_eq!(
                Pesel::parse(&raw).is_ok(),
                valid.contains(&mm),
                "month digits {mm:02}"
            );
        }
    }

    #[test]
    fn day_must_exist_in_the_month() {
        for (year, month, last) in [
            (1999, 1, 31),
            (1999, 4, 30),
            (1999, 6, 30),
            (1999, 9, 30),
            (1999, 11, 30),
            (1999, 12, 31),
            (2023, 2, 28),
            (2024, 2, 29),
        ] {
            let ok = with_check_digit(&first10(year, month, last, 0));
            assert!(Pesel::parse(&ok).is_ok(), "{year}-{month}-{last}");
            let too_far = with_check_digit(&first10(year, month, last + 1, 0));
            assert_eq!(
                pesel(&too_far),
                Err(Problem::Format),
                "{year}-{month}-{}",
                last + 1
            );
            let zero = with_check_digit(&first10(year, month, 0, 0));
            assert_eq!(pesel(&zero), Err(Problem::Format), "{year}-{month}-00");
        }
    }

    #[test]
    fn leap_years_follow_the_gregorian_rules() {
        for (year, leap) in [
            (1800, false),
            (1804, true),
            (1900, false),
            (1996, true),
            (1999, false),
            (2000, true),
            (2004, true),
            (2100, false),
            (2200, false),
            (2296, true),
        ] {
            let feb29 = with_check_digit(&first10(year, 2, 29, 1234));
            assert_eq!(Pesel::parse(&feb29).is_ok(), leap, "{year}");
        }
    }

    #[test]
    fn from_input_accepts_text_and_numbers() {
        let from = |v: FieldInput| Pesel::from_input(&v).map(|p| p.0);
        assert_eq!(from(text("44051401359")), Ok("44051401359".to_owned()));
        assert_eq!(from(text(" 44051401359 ")), Ok("44051401359".to_owned()));
        assert_eq!(from(int(44051401359u64)), Ok("44051401359".to_owned()));
        // Leading zeros lost by the number are restored; text is never padded.
        assert_eq!(from(int(2270803624u64)), Ok("02270803624".to_owned()));
        assert_eq!(from(int(2070803628u64)), Ok("02070803628".to_owned()));
        assert_eq!(from(text("2270803624")), Err(LENGTH));
    }

    #[test]
    fn from_input_refuses_other_numbers_and_kinds() {
        let from = |v: FieldInput| Pesel::from_input(&v);
        assert_eq!(from(text("")), Err(Problem::Required));
        assert_eq!(from(int(-44051401359i64)), Err(Problem::Format));
        assert_eq!(from(int(-1)), Err(Problem::Format));
        assert_eq!(
            from(FieldInput::Decimal("44051401359.0".into())),
            Err(Problem::Format)
        );
        assert_eq!(
            from(FieldInput::Decimal("4.4051401359e10".into())),
            Err(Problem::Format)
        );
        assert_eq!(from(int(100_000_000_000u64)), Err(LENGTH));
        assert_eq!(from(int(u64::MAX)), Err(LENGTH));
        // Eleven nines is a number of the right size, refused on its check digit.
        assert_eq!(from(int(MAX_NUMBER)), Err(Problem::Format));
        // Zero pads to eleven zeros: check digit fine, month 00 impossible.
        assert_eq!(from(int(0)), Err(Problem::Format));
        assert_eq!(from(int(77543187764u64)), Err(Problem::Format));
        assert_eq!(from(FieldInput::Other), Err(Problem::Format));
    }

    #[test]
    fn serializes_as_the_eleven_char_string() {
        let p = Pesel::from_input(&int(2270803624u64)).expect("valid");
        assert_eq!(
            serde_json::to_value(&p).expect("serializes"),
            json!("02270803624")
        );
    }

    #[test]
    fn debug_hides_the_number() {
        let p = Pesel::parse("44051401359").expect("valid");
        assert_eq!(format!("{p:?}"), "Pesel(***)");
        assert_eq!(format!("{:?}", Some(&p)), "Some(Pesel(***))");
        assert!(!format!("{p:#?}").contains("4405"));
    }

    /// A date PESEL can hold (1800–2299) and a serial.
    fn birth() -> impl Strategy<Value = (i32, u8, u8, u16)> {
        (1800i32..=2299, 1u8..=12, 0u16..=9999).prop_flat_map(|(year, month, serial)| {
            (
                Just(year),
                Just(month),
                1..=oracle_days_in_month(year, month),
                Just(serial),
            )
        })
    }

    fn valid_pesel() -> impl Strategy<Value = String> {
        birth().prop_map(|(y, m, d, s)| with_check_digit(&first10(y, m, d, s)))
    }

    proptest! {
        #[test]
        fn generated_pesels_are_accepted_with_their_birth_date((year, month, day, serial) in birth()) {
            let raw = with_check_digit(&first10(year, month, day, serial));
            let p = Pesel::parse(&raw).expect("generated PESEL is valid");
            prop_assert_eq!(p.as_str(), raw.as_str());
            prop_assert_eq!(p.birth_date(), (year, month, day));
            prop_assert_eq!(p.is_female(), serial % 2 == 0);
            prop_assert_eq!(Pesel::from_parts(year, month, day, serial), Some(p));
        }

        #[test]
        fn any_single_digit_change_is_refused(raw in valid_pesel(), pos in 0usize..LEN, bump in 1u8..=9) {
            let mut bytes = raw.into_bytes();
            bytes[pos] = b'0' + (bytes[pos] - b'0' + bump) % 10;
            let changed = String::from_utf8(bytes).expect("ASCII");
            prop_assert_eq!(pesel(&changed), Err(Problem::Format));
        }

        #[test]
        fn february_29_only_in_leap_years(year in 1800i32..=2299, serial in 0u16..=9999) {
            let raw = with_check_digit(&first10(year, 2, 29, serial));
            let leap = oracle_days_in_month(year, 2) == 29;
            prop_assert_eq!(Pesel::parse(&raw).is_ok(), leap);
            prop_assert_eq!(Pesel::from_parts(year, 2, 29, serial).is_some(), leap);
        }

        #[test]
        fn days_past_the_end_of_the_month_are_refused(
            year in 1800i32..=2299,
            month in 1u8..=12,
            extra in 1u8..=4,
            serial in 0u16..=9999,
        ) {
            let day = oracle_days_in_month(year, month) + extra;
            let raw = with_check_digit(&first10(year, month, day, serial));
            prop_assert_eq!(pesel(&raw), Err(Problem::Format));
        }

        #[test]
        fn leading_zero_survives_a_number(
            year in prop_oneof![1900i32..=1909, 2000i32..=2009],
            month in 1u8..=12,
            day in 1u8..=28,
            serial in 0u16..=9999,
        ) {
            let raw = with_check_digit(&first10(year, month, day, serial));
            prop_assert!(raw.starts_with('0'));
            let number: u64 = raw.parse().expect("digits");
            let p = Pesel::from_input(&int(number)).expect("valid");
            prop_assert_eq!(p.as_str(), raw.as_str());
            prop_assert_eq!(p.birth_date(), (year, month, day));
            prop_assert_eq!(serde_json::to_value(&p).expect("serializes"), json!(raw));
        }

        #[test]
        fn number_and_string_agree_for_eleven_digit_values(raw in "[1-9][0-9]{10}") {
            let number: u64 = raw.parse().expect("digits");
            prop_assert_eq!(Pesel::from_input(&int(number)), Pesel::parse(&raw));
        }

        #[test]
        fn never_panics(s in any::<String>()) {
            let _ = Pesel::parse(&s);
            let _ = Pesel::from_input(&FieldInput::Text(s.clone()));
        }

        #[test]
        fn never_panics_on_digit_strings(s in "[0-9]{0,14}") {
            if let Ok(p) = Pesel::parse(&s) {
                let _ = p.birth_date();
                prop_assert_eq!(Pesel::parse(p.as_str()), Ok(p.clone()));
            }
        }

        #[test]
        fn never_panics_on_numbers(n in any::<u64>(), i in any::<i64>(), f in any::<f64>()) {
            let _ = Pesel::from_input(&int(n));
            let _ = Pesel::from_input(&int(i));
            let _ = Pesel::from_input(&FieldInput::Decimal(f.to_string()));
        }

        #[test]
        fn from_parts_never_panics(year in any::<i32>(), month in any::<u8>(), day in any::<u8>(), serial in any::<u16>()) {
            if let Some(p) = Pesel::from_parts(year, month, day, serial) {
                prop_assert_eq!(p.birth_date(), (year, month, day));
            }
        }
    }
}
