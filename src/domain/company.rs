//! Contact details a company gives when it signs up.

use super::{Problem, check_length};

/// A company's contact address: 10–40 ASCII chars from letters, digits and `!?@.-`, shaped
/// `local@domain.tld`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompanyEmail(String);

impl CompanyEmail {
    /// Trims `raw`, then checks length, characters and shape.
    pub fn parse(raw: &str) -> Result<Self, Problem> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(Problem::Required);
        }
        check_length(trimmed, 10, 40)?;
        if !trimmed
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "!?@.-".contains(c))
        {
            return Err(Problem::Characters);
        }
        let well_formed = match trimmed.split_once('@') {
            Some((local, domain)) => {
                !local.is_empty()
                    && !domain.contains('@')
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
            }
            None => false,
        };
        if !well_formed {
            return Err(Problem::Format);
        }
        Ok(Self(trimmed.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A phone number: 2–20 chars of ASCII digits, optionally led by one `+`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Phone(String);

impl Phone {
    /// Trims `raw`, then checks length and characters.
    pub fn parse(raw: &str) -> Result<Self, Problem> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(Problem::Required);
        }
        check_length(trimmed, 2, 20)?;
        let digits = trimmed.strip_prefix('+').unwrap_or(trimmed);
        // "+" alone is one char and already refused for length, so `digits` is never empty here.
        if !digits.chars().all(|c| c.is_ascii_digit()) {
            return Err(Problem::Characters);
        }
        Ok(Self(trimmed.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const EMAIL_LENGTH: Problem = Problem::Length { min: 10, max: 40 };
    const PHONE_LENGTH: Problem = Problem::Length { min: 2, max: 20 };

    fn email(raw: &str) -> Result<String, Problem> {
        CompanyEmail::parse(raw).map(|e| e.0)
    }

    fn phone(raw: &str) -> Result<String, Problem> {
        Phone::parse(raw).map(|p| p.0)
    }

    #[test]
    fn company_email_accepts_ordinary_addresses() {
        for ok in [
            "info@acme.pl",
            "Sales-Team@Acme-Corp.com",
            "who?!@firma.co.uk",
            "a@b.cd.efgh",
        ] {
            assert_eq!(email(ok), Ok(ok.to_owned()));
        }
    }

    #[test]
    fn company_email_blank_is_required_and_input_is_trimmed() {
        assert_eq!(email(""), Err(Problem::Required));
        assert_eq!(email("  \t "), Err(Problem::Required));
        assert_eq!(email("  info@acme.pl\n"), Ok("info@acme.pl".to_owned()));
    }

    #[test]
    fn company_email_length_boundaries() {
        assert_eq!(email("a@bcde.fg"), Err(EMAIL_LENGTH));
        assert_eq!(email("ab@cdef.gh"), Ok("ab@cdef.gh".to_owned()));
        let forty = format!("{}@acme.pl", "a".repeat(32));
        assert_eq!(forty.len(), 40);
        assert_eq!(email(&forty), Ok(forty.clone()));
        assert_eq!(email(&format!("a{forty}")), Err(EMAIL_LENGTH));
        // Length comes first even for a value with bad characters or shape.
        assert_eq!(email("x y"), Err(EMAIL_LENGTH));
        assert_eq!(email(&"a".repeat(41)), Err(EMAIL_LENGTH));
    }

    #[test]
    fn company_email_length_counts_chars_not_bytes() {
        // Ten chars (twelve bytes): long enough, then refused as non-ASCII.
        assert_eq!(email("żó@acme.pl"), Err(Problem::Characters));
        assert_eq!(email("ż@acme.pl"), Err(EMAIL_LENGTH));
        assert_eq!(email(&"ż".repeat(40)), Err(Problem::Characters));
        assert_eq!(email(&"ż".repeat(41)), Err(EMAIL_LENGTH));
    }

    #[test]
    fn company_email_refuses_characters_outside_the_set() {
        for bad in [
            "in fo@acme.pl",
            "info_1@acme.pl",
            "info+1@acme.pl",
            "info@acme.pl;",
            "info@ąćme.pl",
            "info@acme\u{0}.pl",
            "<info@acme.pl>",
            "info@ａcme.pl",
        ] {
            assert_eq!(email(bad), Err(Problem::Characters), "{bad:?}");
        }
    }

    #[test]
    fn company_email_refuses_wrong_shapes() {
        for bad in [
            "infoacme.pl",
            "@infoacme.pl",
            "infoacme.pl@",
            "info@acme@firma.pl",
            "info@@acme.pl",
            "info@acmepl.",
            "info@.acmepl",
            "info@acme-pl",
            "info.acme@pl",
        ] {
            assert_eq!(email(bad), Err(Problem::Format), "{bad:?}");
        }
    }

    #[test]
    fn phone_accepts_digits_with_an_optional_leading_plus() {
        for ok in [
            "+48123456789",
            "123456789",
            "12",
            "+1",
            "00481234567890123456",
        ] {
            assert_eq!(phone(ok), Ok(ok.to_owned()));
        }
        assert_eq!(phone("  +48123\t"), Ok("+48123".to_owned()));
    }

    #[test]
    fn phone_blank_is_required() {
        assert_eq!(phone(""), Err(Problem::Required));
        assert_eq!(phone("   "), Err(Problem::Required));
    }

    #[test]
    fn phone_length_boundaries() {
        assert_eq!(phone("1"), Err(PHONE_LENGTH));
        assert_eq!(phone("+"), Err(PHONE_LENGTH));
        assert!(phone("12").is_ok());
        assert!(phone("+1").is_ok());
        assert!(phone(&"1".repeat(20)).is_ok());
        assert!(phone(&format!("+{}", "1".repeat(19))).is_ok());
        assert_eq!(phone(&"1".repeat(21)), Err(PHONE_LENGTH));
        assert_eq!(phone(&format!("+{}", "1".repeat(20))), Err(PHONE_LENGTH));
    }

    #[test]
    fn phone_length_counts_chars_not_bytes() {
        // Fullwidth digits are three bytes each; two of them are long enough but not ASCII digits.
        assert_eq!(phone("１２"), Err(Problem::Characters));
        assert_eq!(phone("１"), Err(PHONE_LENGTH));
        assert_eq!(phone(&"١".repeat(20)), Err(Problem::Characters));
        assert_eq!(phone(&"١".repeat(21)), Err(PHONE_LENGTH));
    }

    #[test]
    fn phone_refuses_anything_but_digits_and_a_leading_plus() {
        for bad in [
            "++48",
            "48+123",
            "1234+",
            "+48 123 456",
            "+48-123-456",
            "(48)123",
            "12a4",
            "+-1",
        ] {
            assert_eq!(phone(bad), Err(Problem::Characters), "{bad:?}");
        }
    }

    fn company_email_like() -> impl Strategy<Value = String> {
        prop_oneof![
            "\\PC*",
            "[a-zA-Z0-9!?.@-]{0,45}",
            "[a-z0-9.-]{1,20}@[a-z0-9.-]{1,20}",
            "[a-z]{1,15}@[a-z]{1,10}\\.[a-z]{2,10}",
        ]
    }

    fn phone_like() -> impl Strategy<Value = String> {
        prop_oneof!["\\PC*", "[0-9+ ]{0,25}", "\\+?[0-9]{0,22}"]
    }

    proptest! {
        #[test]
        fn never_panics(s in any::<String>()) {
            let _ = CompanyEmail::parse(&s);
            let _ = Phone::parse(&s);
        }

        #[test]
        fn never_panics_on_printable(s in "\\PC*") {
            let _ = CompanyEmail::parse(&s);
            let _ = Phone::parse(&s);
        }

        #[test]
        fn accepted_company_emails_are_short_ascii_with_one_at(s in company_email_like()) {
            if let Ok(parsed) = CompanyEmail::parse(&s) {
                let value = parsed.as_str();
                prop_assert!(value.is_ascii());
                prop_assert!((10..=40).contains(&value.len()));
                prop_assert_eq!(value.matches('@').count(), 1);
                prop_assert_eq!(CompanyEmail::parse(value), Ok(parsed.clone()));
            }
        }

        #[test]
        fn well_formed_company_emails_are_accepted(s in "[a-z0-9]{1,15}@[a-z]{1,10}\\.[a-z]{2,10}") {
            let result = CompanyEmail::parse(&s);
            if (10..=40).contains(&s.len()) {
                prop_assert_eq!(result.map(|e| e.0), Ok(s));
            } else {
                prop_assert_eq!(result, Err(EMAIL_LENGTH));
            }
        }

        #[test]
        fn accepted_phones_are_digits_with_an_optional_leading_plus(s in phone_like()) {
            if let Ok(parsed) = Phone::parse(&s) {
                let value = parsed.as_str();
                // Equivalent to ^\+?[0-9]+$ with 2..=20 chars in all.
                let digits = value.strip_prefix('+').unwrap_or(value);
                prop_assert!(!digits.is_empty());
                prop_assert!(digits.chars().all(|c| c.is_ascii_digit()));
                prop_assert!((2..=20).contains(&value.len()));
                prop_assert_eq!(Phone::parse(value), Ok(parsed.clone()));
            }
        }

        #[test]
        fn digit_strings_of_the_right_length_are_phones(plus in any::<bool>(), digits in "[0-9]{1,20}") {
            let s = if plus { format!("+{digits}") } else { digits };
            let result = Phone::parse(&s);
            if (2..=20).contains(&s.len()) {
                prop_assert_eq!(result.map(|p| p.0), Ok(s));
            } else {
                prop_assert_eq!(result, Err(PHONE_LENGTH));
            }
        }
    }
}
