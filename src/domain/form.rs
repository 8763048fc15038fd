//! Turning what a client filled in into domain values, with every refused field reported at
//! once: the shared machinery of every surface's `parse` functions.

use super::{FieldError, Problem};

/// A field's value as a client sent it, before it is parsed. The shapes are those any wire
/// format can carry; a surface maps its own (a JSON value, a CSV cell) onto them.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldInput {
    Text(String),
    /// A whole number (a JSON `2270803624` or `-5`).
    Integer(i128),
    /// Any other number, as it was written (`4.4e10`, `600100200.5`).
    Decimal(String),
    /// Something no field holds: true or false, a list, an object.
    Other,
}

impl FieldInput {
    /// The text of a field that takes text only.
    pub fn text(&self) -> Result<&str, Problem> {
        match self {
            FieldInput::Text(s) => Ok(s),
            _ => Err(Problem::Type),
        }
    }

    /// The text of a field for which a number is also text (a phone number typed as digits).
    pub fn text_or_number(&self) -> Result<String, Problem> {
        match self {
            FieldInput::Text(s) => Ok(s.clone()),
            FieldInput::Integer(n) => Ok(n.to_string()),
            FieldInput::Decimal(s) => Ok(s.clone()),
            FieldInput::Other => Err(Problem::Type),
        }
    }
}

/// Collects the problems of a form's fields, so that one answer names all of them.
#[derive(Debug, Default)]
pub struct Fields {
    errors: Vec<FieldError>,
}

impl Fields {
    pub fn new() -> Fields {
        Fields::default()
    }

    /// Records a problem with `field`.
    pub fn refuse(&mut self, field: &'static str, problem: Problem) {
        self.errors.push(FieldError { field, problem });
    }

    /// A field that must be sent, parsed by `parse` (which decides what blank means).
    pub fn parse<I, T>(
        &mut self,
        field: &'static str,
        value: Option<I>,
        parse: impl FnOnce(I) -> Result<T, Problem>,
    ) -> Option<T> {
        let Some(value) = value else {
            self.refuse(field, Problem::Required);
            return None;
        };
        self.check(field, parse(value))
    }

    /// A field that may be left out: `Some(None)` when it was.
    pub fn optional<I, T>(
        &mut self,
        field: &'static str,
        value: Option<I>,
        parse: impl FnOnce(I) -> Result<T, Problem>,
    ) -> Option<Option<T>> {
        match value {
            None => Some(None),
            Some(value) => self.check(field, parse(value)).map(Some),
        }
    }

    /// A field that must be sent and not be empty, taken as it is (a token, the password one
    /// already has, a login name: none of them is checked against a rule here).
    pub fn present<'a>(&mut self, field: &'static str, value: Option<&'a str>) -> Option<&'a str> {
        match value {
            Some(v) if !v.is_empty() => Some(v),
            _ => {
                self.refuse(field, Problem::Required);
                None
            }
        }
    }

    /// Records the problem of an already parsed value.
    pub fn check<T>(&mut self, field: &'static str, parsed: Result<T, Problem>) -> Option<T> {
        match parsed {
            Ok(v) => Some(v),
            Err(problem) => {
                self.refuse(field, problem);
                None
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    /// Every problem recorded, in the order the fields were read.
    pub fn into_errors(self) -> Vec<FieldError> {
        self.errors
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_problem_is_kept_in_order() {
        let mut f = Fields::new();
        assert_eq!(f.parse("a", None::<&str>, |_| Ok(1)), None);
        assert_eq!(
            f.parse("b", Some("x"), |_| Err::<i32, _>(Problem::Format)),
            None
        );
        assert_eq!(f.parse("c", Some("7"), |s: &str| Ok(s.len())), Some(1));
        assert_eq!(f.present("d", Some("")), None);
        assert_eq!(f.present("e", Some("t")), Some("t"));
        assert_eq!(f.optional("f", None::<&str>, |_| Ok(1)), Some(None));
        assert_eq!(
            f.optional("g", Some("x"), |_| Err::<i32, _>(Problem::Type)),
            None
        );
        assert_eq!(
            f.into_errors(),
            vec![
                FieldError {
                    field: "a",
                    problem: Problem::Required
                },
                FieldError {
                    field: "b",
                    problem: Problem::Format
                },
                FieldError {
                    field: "d",
                    problem: Problem::Required
                },
                FieldError {
                    field: "g",
                    problem: Problem::Type
                },
            ]
        );
    }

    #[test]
    fn numbers_are_text_only_where_a_field_allows_it() {
        assert_eq!(FieldInput::Integer(5).text(), Err(Problem::Type));
        assert_eq!(FieldInput::Text("5".into()).text(), Ok("5"));
        assert_eq!(FieldInput::Integer(-5).text_or_number(), Ok("-5".into()));
        assert_eq!(
            FieldInput::Decimal("1.5".into()).text_or_number(),
            Ok("1.5".into())
        );
        assert_eq!(FieldInput::Other.text_or_number(), Err(Problem::Type));
    }
}
