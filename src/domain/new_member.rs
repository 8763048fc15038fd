//! A member of the register as a command: every field parsed into its type, or every refused
//! field named at once. The names are seed 001's, which every surface (JSON, CSV) uses too.

use super::form::{FieldInput, Fields};
use super::{AccountEmail, MemberPhone, MemberText, Pesel, PostalCode, Problem, Voivodeship};

/// The field names in the seed's order: the order problems are reported in, and the CSV columns.
pub const FIELDS: [&str; 11] = [
    "imie",
    "nazwisko",
    "wyksztalcenie",
    "pesel",
    "wojewodztwo",
    "miejscowosc",
    "ulica",
    "nrdomulokalu",
    "kodpocztowy",
    "email",
    "tel",
];

/// The member fields as a client sent them; `None` when a field was left out.
#[derive(Debug, Default, Clone)]
pub struct MemberForm {
    pub imie: Option<FieldInput>,
    pub nazwisko: Option<FieldInput>,
    pub wyksztalcenie: Option<FieldInput>,
    pub pesel: Option<FieldInput>,
    pub wojewodztwo: Option<FieldInput>,
    pub miejscowosc: Option<FieldInput>,
    pub ulica: Option<FieldInput>,
    pub nrdomulokalu: Option<FieldInput>,
    pub kodpocztowy: Option<FieldInput>,
    pub email: Option<FieldInput>,
    pub tel: Option<FieldInput>,
}

impl MemberForm {
    /// The slot of the field called `name` (one of [`FIELDS`]).
    pub fn slot(&mut self, name: &str) -> Option<&mut Option<FieldInput>> {
        Some(match name {
            "imie" => &mut self.imie,
            "nazwisko" => &mut self.nazwisko,
            "wyksztalcenie" => &mut self.wyksztalcenie,
            "pesel" => &mut self.pesel,
            "wojewodztwo" => &mut self.wojewodztwo,
            "miejscowosc" => &mut self.miejscowosc,
            "ulica" => &mut self.ulica,
            "nrdomulokalu" => &mut self.nrdomulokalu,
            "kodpocztowy" => &mut self.kodpocztowy,
            "email" => &mut self.email,
            "tel" => &mut self.tel,
            _ => return None,
        })
    }
}

/// Every field of a member, each valid.
#[derive(Debug, Clone)]
pub struct NewMember {
    pub imie: MemberText,
    pub nazwisko: MemberText,
    pub wyksztalcenie: MemberText,
    pub pesel: Pesel,
    pub wojewodztwo: Voivodeship,
    pub miejscowosc: MemberText,
    pub ulica: MemberText,
    pub nrdomulokalu: MemberText,
    pub kodpocztowy: PostalCode,
    pub email: AccountEmail,
    pub tel: MemberPhone,
}

/// Some fields of a member, each valid; `None` leaves a field as it is (PATCH).
#[derive(Debug, Clone, Default)]
pub struct MemberPatch {
    pub imie: Option<MemberText>,
    pub nazwisko: Option<MemberText>,
    pub wyksztalcenie: Option<MemberText>,
    pub pesel: Option<Pesel>,
    pub wojewodztwo: Option<Voivodeship>,
    pub miejscowosc: Option<MemberText>,
    pub ulica: Option<MemberText>,
    pub nrdomulokalu: Option<MemberText>,
    pub kodpocztowy: Option<PostalCode>,
    pub email: Option<AccountEmail>,
    pub tel: Option<MemberPhone>,
}

fn text(input: FieldInput) -> Result<MemberText, Problem> {
    MemberText::parse(input.text()?)
}

fn pesel(input: FieldInput) -> Result<Pesel, Problem> {
    Pesel::from_input(&input)
}

fn voivodeship(input: FieldInput) -> Result<Voivodeship, Problem> {
    Voivodeship::parse(input.text()?)
}

fn postal_code(input: FieldInput) -> Result<PostalCode, Problem> {
    PostalCode::parse(input.text()?)
}

fn email(input: FieldInput) -> Result<AccountEmail, Problem> {
    AccountEmail::parse(input.text()?)
}

/// A phone typed as a number by a client is still a phone.
fn phone(input: FieldInput) -> Result<MemberPhone, Problem> {
    MemberPhone::parse(&input.text_or_number()?)
}

impl NewMember {
    /// Every field is required.
    pub fn parse(form: MemberForm) -> Result<NewMember, Vec<super::FieldError>> {
        let mut f = Fields::new();
        let imie = f.parse("imie", form.imie, text);
        let nazwisko = f.parse("nazwisko", form.nazwisko, text);
        let wyksztalcenie = f.parse("wyksztalcenie", form.wyksztalcenie, text);
        let pesel = f.parse("pesel", form.pesel, pesel);
        let wojewodztwo = f.parse("wojewodztwo", form.wojewodztwo, voivodeship);
        let miejscowosc = f.parse("miejscowosc", form.miejscowosc, text);
        let ulica = f.parse("ulica", form.ulica, text);
        let nrdomulokalu = f.parse("nrdomulokalu", form.nrdomulokalu, text);
        let kodpocztowy = f.parse("kodpocztowy", form.kodpocztowy, postal_code);
        let email = f.parse("email", form.email, email);
        let tel = f.parse("tel", form.tel, phone);
        let (
            Some(imie),
            Some(nazwisko),
            Some(wyksztalcenie),
            Some(pesel),
            Some(wojewodztwo),
            Some(miejscowosc),
            Some(ulica),
            Some(nrdomulokalu),
            Some(kodpocztowy),
            Some(email),
            Some(tel),
        ) = (
            imie,
            nazwisko,
            wyksztalcenie,
            pesel,
            wojewodztwo,
            miejscowosc,
            ulica,
            nrdomulokalu,
            kodpocztowy,
            email,
            tel,
        )
        else {
            return Err(f.into_errors());
        };
        Ok(NewMember {
            imie,
            nazwisko,
            wyksztalcenie,
            pesel,
            wojewodztwo,
            miejscowosc,
            ulica,
            nrdomulokalu,
            kodpocztowy,
            email,
            tel,
        })
    }

    /// The same fields as a patch that sets every one of them (PUT).
    pub fn into_patch(self) -> MemberPatch {
        MemberPatch {
            imie: Some(self.imie),
            nazwisko: Some(self.nazwisko),
            wyksztalcenie: Some(self.wyksztalcenie),
            pesel: Some(self.pesel),
            wojewodztwo: Some(self.wojewodztwo),
            miejscowosc: Some(self.miejscowosc),
            ulica: Some(self.ulica),
            nrdomulokalu: Some(self.nrdomulokalu),
            kodpocztowy: Some(self.kodpocztowy),
            email: Some(self.email),
            tel: Some(self.tel),
        }
    }
}

impl MemberPatch {
    /// Fields left out stay `None`; a field that was sent must be valid.
    pub fn parse(form: MemberForm) -> Result<MemberPatch, Vec<super::FieldError>> {
        let mut f = Fields::new();
        let patch = MemberPatch {
            imie: f.optional("imie", form.imie, text).flatten(),
            nazwisko: f.optional("nazwisko", form.nazwisko, text).flatten(),
            wyksztalcenie: f
                .optional("wyksztalcenie", form.wyksztalcenie, text)
                .flatten(),
            pesel: f.optional("pesel", form.pesel, pesel).flatten(),
            wojewodztwo: f
                .optional("wojewodztwo", form.wojewodztwo, voivodeship)
                .flatten(),
            miejscowosc: f.optional("miejscowosc", form.miejscowosc, text).flatten(),
            ulica: f.optional("ulica", form.ulica, text).flatten(),
            nrdomulokalu: f
                .optional("nrdomulokalu", form.nrdomulokalu, text)
                .flatten(),
            kodpocztowy: f
                .optional("kodpocztowy", form.kodpocztowy, postal_code)
                .flatten(),
            email: f.optional("email", form.email, email).flatten(),
            tel: f.optional("tel", form.tel, phone).flatten(),
        };
        if f.is_empty() {
            Ok(patch)
        } else {
            Err(f.into_errors())
        }
    }
}

/// What a person types to search the register: no control characters (NUL would cut a
/// full-text query short), at most [`SearchText::MAX`] characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchText(String);

impl SearchText {
    pub const MAX: usize = 200;

    pub fn parse(raw: &str) -> Result<SearchText, Problem> {
        if raw.chars().any(char::is_control) {
            return Err(Problem::Characters);
        }
        super::check_length(raw, 0, Self::MAX)?;
        Ok(SearchText(raw.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::FieldError;

    fn full() -> MemberForm {
        let t = |s: &str| Some(FieldInput::Text(s.into()));
        MemberForm {
            imie: t("Anna"),
            nazwisko: t("Nowak"),
            wyksztalcenie: t("wyższe"),
            pesel: t("44051401359"),
            wojewodztwo: t("mazowieckie"),
            miejscowosc: t("Warszawa"),
            ulica: t("Prosta"),
            nrdomulokalu: t("1"),
            kodpocztowy: t("00-950"),
            email: t("anna@example.com"),
            tel: t("600-100-200"),
        }
    }

    #[test]
    fn a_full_form_parses_into_typed_fields() {
        let m = NewMember::parse(full()).expect("valid");
        assert_eq!(m.wojewodztwo, Voivodeship::Mazowieckie);
        assert_eq!(m.pesel.as_str(), "44051401359");
        assert_eq!(m.tel.as_str(), "600-100-200");
    }

    #[test]
    fn every_problem_is_reported_in_the_seed_order() {
        let mut form = full();
        form.tel = Some(FieldInput::Other);
        form.imie = None;
        form.pesel = Some(FieldInput::Integer(-1));
        form.email = Some(FieldInput::Integer(5));
        let errors = NewMember::parse(form).expect_err("invalid");
        let problems: Vec<(&str, Problem)> = errors.iter().map(|e| (e.field, e.problem)).collect();
        assert_eq!(
            problems,
            vec![
                ("imie", Problem::Required),
                ("pesel", Problem::Format),
                ("email", Problem::Type),
                ("tel", Problem::Type),
            ]
        );
    }

    #[test]
    fn a_patch_checks_only_what_was_sent() {
        let patch = MemberPatch::parse(MemberForm {
            ulica: Some(FieldInput::Text("Nowa".into())),
            tel: Some(FieldInput::Integer(600100200)),
            ..MemberForm::default()
        })
        .expect("valid");
        assert_eq!(
            patch.ulica.map(|u| u.as_str().to_string()),
            Some("Nowa".into())
        );
        assert_eq!(
            patch.tel.map(|t| t.as_str().to_string()),
            Some("600100200".into())
        );
        assert!(patch.imie.is_none() && patch.pesel.is_none());
        let errors = MemberPatch::parse(MemberForm {
            kodpocztowy: Some(FieldInput::Text("00950".into())),
            ..MemberForm::default()
        })
        .expect_err("invalid");
        assert_eq!(
            errors,
            vec![FieldError {
                field: "kodpocztowy",
                problem: Problem::Format
            }]
        );
    }

    #[test]
    fn every_field_name_has_a_slot() {
        let mut form = MemberForm::default();
        for name in FIELDS {
            assert!(form.slot(name).is_some(), "{name}");
        }
        assert!(form.slot("_id").is_none());
    }

    #[test]
    fn search_text_refuses_control_characters_and_length() {
        assert!(SearchText::parse("kowal").is_ok());
        assert_eq!(SearchText::parse("a\0b"), Err(Problem::Characters));
        assert_eq!(
            SearchText::parse(&"x".repeat(201)),
            Err(Problem::Length { min: 0, max: 200 })
        );
        assert!(SearchText::parse(&"ż".repeat(200)).is_ok());
    }
}
