//! JSON objects written by hand, for the answers served most often (`/api/auth/me`, issue 18).
//!
//! serde_json looks every byte of every key and string up in its escape table, one at a time:
//! for `/me`'s few hundred bytes that was 2 400 instructions a request, more than verifying
//! the access token took. Here keys are written as the literals they are, and a string without
//! anything to escape (almost all of them) is checked in one pass and copied in one piece; any
//! other string is written by serde_json itself. The output is byte for byte what serde_json
//! writes for the same fields in the same order (the tests of each user compare the two).

/// A JSON object being written into one buffer.
pub(crate) struct Object {
    out: Vec<u8>,
    first: bool,
}

impl Object {
    /// An empty object in a buffer of `capacity` bytes.
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        let mut out = Vec::with_capacity(capacity);
        out.push(b'{');
        Object { out, first: true }
    }

    /// `"key":`, after a comma unless it is the first.
    fn key(&mut self, key: &'static str) {
        debug_assert!(plain(key), "a key that needs escaping: {key:?}");
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        self.out.push(b'"');
        self.out.extend_from_slice(key.as_bytes());
        self.out.extend_from_slice(b"\":");
    }

    /// `"key":"value"`.
    pub(crate) fn string(mut self, key: &'static str, value: &str) -> Self {
        self.key(key);
        string(&mut self.out, value);
        self
    }

    /// `"key":"value"`, or `"key":null` for `None`.
    pub(crate) fn optional_string(mut self, key: &'static str, value: Option<&str>) -> Self {
        self.key(key);
        match value {
            Some(value) => string(&mut self.out, value),
            None => self.out.extend_from_slice(b"null"),
        }
        self
    }

    /// `"key":["a","b"]`.
    pub(crate) fn strings(mut self, key: &'static str, values: &[&str]) -> Self {
        self.key(key);
        self.out.push(b'[');
        for (i, value) in values.iter().enumerate() {
            if i > 0 {
                self.out.push(b',');
            }
            string(&mut self.out, value);
        }
        self.out.push(b']');
        self
    }

    /// The object, closed.
    pub(crate) fn finish(mut self) -> Vec<u8> {
        self.out.push(b'}');
        self.out
    }
}

/// `value` as a JSON string: quoted as it is when nothing in it needs escaping, else escaped
/// by serde_json.
fn string(out: &mut Vec<u8>, value: &str) {
    if plain(value) {
        out.push(b'"');
        out.extend_from_slice(value.as_bytes());
        out.push(b'"');
    } else if serde_json::to_writer(&mut *out, value).is_err() {
        // Writing a `str` into a Vec cannot fail.
        unreachable!("serde_json failed to write a string into a Vec");
    }
}

/// Whether `text` holds nothing JSON escapes: no quote, no backslash, no control character
/// below U+0020 (serde_json leaves DEL and every other character as it is). Every byte is
/// looked at, without an early exit, which leaves the compiler free to vectorise the loop.
fn plain(text: &str) -> bool {
    !text.bytes().fold(false, |escape, b| {
        escape | (b < 0x20) | (b == b'"') | (b == b'\\')
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(serde::Serialize)]
    struct Sample<'a> {
        a: &'a str,
        b: Option<&'a str>,
        c: Vec<&'a str>,
    }

    fn by_hand(s: &Sample<'_>) -> Vec<u8> {
        Object::with_capacity(8)
            .string("a", s.a)
            .optional_string("b", s.b)
            .strings("c", &s.c)
            .finish()
    }

    #[test]
    fn what_needs_escaping_is_escaped_as_serde_json_does() {
        for text in [
            "",
            "plain",
            "quote \" inside",
            "back\\slash",
            "line\nbreak\ttab\r",
            "\u{0}\u{1f}",
            "\u{7f} del and \u{2028} separator",
            "zażółć 🦀 gęślą",
        ] {
            let sample = Sample {
                a: text,
                b: Some(text),
                c: vec![text, "x"],
            };
            assert_eq!(
                String::from_utf8(by_hand(&sample)).unwrap(),
                serde_json::to_string(&sample).unwrap(),
                "{text:?}"
            );
        }
        let none = Sample {
            a: "a",
            b: None,
            c: vec![],
        };
        assert_eq!(by_hand(&none), br#"{"a":"a","b":null,"c":[]}"#);
    }

    proptest! {
        #[test]
        fn any_text_is_written_as_serde_json_writes_it(
            a in any::<String>(),
            b in proptest::option::of(any::<String>()),
            c in proptest::collection::vec(any::<String>(), 0..3),
        ) {
            let sample = Sample { a: &a, b: b.as_deref(), c: c.iter().map(String::as_str).collect() };
            prop_assert_eq!(by_hand(&sample), serde_json::to_vec(&sample).unwrap());
        }
    }
}
