//! brama's log lines, in text or JSON, and the request every line logged while serving it
//! names.
//!
//! tracing-subscriber's own formatters kept the request's id, method and path in a span, which
//! every request made, entered on each poll and closed again, and formatted each line through
//! `core::fmt` with colour wrappers even when colours were off: about a third of the CPU
//! `/healthz` took (issue 18). Here the request is a task-local ([`scope`]), read only when a
//! line is written, and a line is written straight into the buffer tracing hands over, with
//! integers and the time written digit by digit.
//!
//! The shapes are tracing-subscriber's, so that what reads brama's logs keeps working:
//!
//! ```text
//! 2026-12-04T12:28:07.123456Z  INFO request{id=7c0… method=GET path=/healthz}: brama::http::edge: served status=200 latency_ms=0
//! ```
//!
//! ```json
//! {"timestamp":"2026-12-04T12:28:07.123456Z","level":"INFO","message":"served","status":200,"latency_ms":0,"target":"brama::http::edge","span":{"id":"7c0…","method":"GET","path":"/healthz","name":"request"},"spans":[{"id":"7c0…","method":"GET","path":"/healthz","name":"request"}]}
//! ```
//!
//! A text line never spans two lines: control characters in a value (a newline in a message
//! built from input, a terminal escape) are written escaped, as `\n` or `\u{1b}`.

use std::cell::{Cell, RefCell};
use std::fmt::{self, Write as _};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::http::{HeaderValue, Method, Uri};
use tokio::task::futures::TaskLocalFuture;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// The request being served, named by every line logged while it is.
pub struct RequestScope {
    /// Its id (see `http::edge`): printable ASCII without spaces, quotes or braces.
    pub id: HeaderValue,
    pub method: Method,
    /// Only its path is logged: a query string can carry a token.
    pub uri: Uri,
    /// The address of the connection's other end (not logged). It is kept here rather than in
    /// the request's extensions, where axum's `ConnectInfo` put it with an allocation of its
    /// own on every request (issue 18).
    pub peer: Option<SocketAddr>,
}

tokio::task_local! {
    static REQUEST: RequestScope;
}

/// The address of the connection the request being served came in on; `None` outside a
/// request.
pub fn peer() -> Option<SocketAddr> {
    REQUEST.try_with(|request| request.peer).ok().flatten()
}

/// Runs `future` as the serving of `request`: lines it logs name the request. Lines logged by
/// work it hands to other tasks or threads (the hash workers) do not.
pub fn scope<F: Future>(request: RequestScope, future: F) -> TaskLocalFuture<RequestScope, F> {
    REQUEST.scope(request, future)
}

/// Formats brama's log lines, in text (with colours when `ansi`) or as one JSON object a line.
#[derive(Clone, Copy)]
pub struct Lines {
    pub json: bool,
    pub ansi: bool,
}

/// How the installed subscriber writes lines, once `telemetry::init` installed brama's, and
/// whether its filter lets the access line through.
static INSTALLED: OnceLock<(Lines, bool)> = OnceLock::new();

/// Notes that brama's subscriber, writing `lines`, is the process's. Its filter (`RUST_LOG`,
/// read once at start-up, with no directive that depends on a span) is asked about the access
/// line here, once: asking on every request was a tenth of the line's cost (issue 18).
pub(super) fn installed(lines: Lines) {
    let access = tracing::enabled!(target: ACCESS_TARGET, Level::INFO);
    let _ = INSTALLED.set((lines, access));
}

/// The target of the access line, as if logged from `http::edge`.
const ACCESS_TARGET: &str = "brama::http::edge";

thread_local! {
    static ACCESS_LINE: RefCell<String> = RefCell::new(String::with_capacity(256));
}

/// Logs the access line of the request being served: `served`, its status and latency, at
/// info level from `brama::http::edge` (`RUST_LOG` filters it as such).
///
/// It is the one line every request logs, so with brama's own subscriber installed it is
/// written here, the same text or JSON that subscriber would write, straight into the
/// [`super::LogBuffer`]: through tracing's dispatch and field visitors it cost a tenth of
/// `/healthz`'s own CPU (issue 18). Under any other subscriber (tests, embedding) it is an
/// ordinary tracing event.
pub fn served(status: u16, latency_ms: u64) {
    let Some((style, access)) = INSTALLED.get() else {
        tracing::info!(target: ACCESS_TARGET, status, latency_ms, "served");
        return;
    };
    if !access {
        return;
    }
    ACCESS_LINE.with_borrow_mut(|line| {
        line.clear();
        let mut status_digits = itoa::Buffer::new();
        let mut latency_digits = itoa::Buffer::new();
        let written = if style.json {
            json_head(line, &Level::INFO)
                .and_then(|()| line.write_str(",\"message\":\"served\",\"status\":"))
                .and_then(|()| line.write_str(status_digits.format(status)))
                .and_then(|()| line.write_str(",\"latency_ms\":"))
                .and_then(|()| line.write_str(latency_digits.format(latency_ms)))
                .and_then(|()| json_tail(line, ACCESS_TARGET))
        } else {
            text_head(line, &Level::INFO, ACCESS_TARGET, style.ansi)
                .and_then(|()| line.write_str("served status="))
                .and_then(|()| line.write_str(status_digits.format(status)))
                .and_then(|()| line.write_str(" latency_ms="))
                .and_then(|()| line.write_str(latency_digits.format(latency_ms)))
                .and_then(|()| line.write_char('\n'))
        };
        if written.is_ok() {
            super::write_line(line.as_bytes());
        }
    });
}

/// The warning that `count` log lines were dropped because standard error took nothing
/// (`LogBuffer`), as the installed subscriber writes lines (plain text when there is none).
pub(super) fn dropped_notice(count: u64) -> String {
    const TARGET: &str = "brama::telemetry";
    const MESSAGE: &str = "log lines dropped: standard error did not take them";
    let style = INSTALLED.get().map_or(
        Lines {
            json: false,
            ansi: false,
        },
        |(style, _)| *style,
    );
    let mut line = String::with_capacity(160);
    let mut digits = itoa::Buffer::new();
    let _ = if style.json {
        json_head(&mut line, &Level::WARN)
            .and_then(|()| line.write_str(",\"message\":\""))
            .and_then(|()| line.write_str(MESSAGE))
            .and_then(|()| line.write_str("\",\"dropped\":"))
            .and_then(|()| line.write_str(digits.format(count)))
            .and_then(|()| json_tail(&mut line, TARGET))
    } else {
        text_head(&mut line, &Level::WARN, TARGET, style.ansi)
            .and_then(|()| line.write_str(MESSAGE))
            .and_then(|()| line.write_str(" dropped="))
            .and_then(|()| line.write_str(digits.format(count)))
            .and_then(|()| line.write_char('\n'))
    };
    line
}

impl<S, N> FormatEvent<S, N> for Lines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        if self.json {
            json_line(&mut writer, event)
        } else {
            text_line(&mut writer, event, self.ansi)
        }
    }
}

fn text_line(out: &mut impl fmt::Write, event: &Event<'_>, ansi: bool) -> fmt::Result {
    let meta = event.metadata();
    text_head(out, meta.level(), meta.target(), ansi)?;
    let mut fields = TextFields {
        out: &mut *out,
        first: true,
        result: Ok(()),
    };
    event.record(&mut fields);
    fields.result?;
    out.write_char('\n')
}

/// A text line up to its fields: the time, the level, the request, the target.
fn text_head(out: &mut impl fmt::Write, level: &Level, target: &str, ansi: bool) -> fmt::Result {
    timestamp(out)?;
    out.write_char(' ')?;
    let (padded, colour) = match *level {
        Level::ERROR => ("ERROR", "\x1b[31m"),
        Level::WARN => (" WARN", "\x1b[33m"),
        Level::INFO => (" INFO", "\x1b[32m"),
        Level::DEBUG => ("DEBUG", "\x1b[34m"),
        Level::TRACE => ("TRACE", "\x1b[35m"),
    };
    if ansi {
        out.write_str(colour)?;
        out.write_str(padded)?;
        out.write_str("\x1b[0m ")?;
    } else {
        out.write_str(padded)?;
        out.write_char(' ')?;
    }
    let _ = REQUEST.try_with(|request| -> fmt::Result {
        out.write_str("request{id=")?;
        out.write_str(request.id.to_str().unwrap_or("-"))?;
        out.write_str(" method=")?;
        out.write_str(request.method.as_str())?;
        out.write_str(" path=")?;
        Escaped(&mut *out).write_str(request.uri.path())?;
        out.write_str("}: ")
    });
    out.write_str(target)?;
    out.write_str(": ")
}

/// An event's fields as tracing-subscriber writes them: the message as it is, then
/// `name=value`, strings quoted, each separated by a space.
struct TextFields<'a, W: fmt::Write> {
    out: &'a mut W,
    first: bool,
    result: fmt::Result,
}

impl<W: fmt::Write> TextFields<'_, W> {
    fn field(&mut self, field: &Field, value: fmt::Arguments<'_>) {
        if self.result.is_err() {
            return;
        }
        self.result = (|| {
            if !self.first {
                self.out.write_char(' ')?;
            }
            self.first = false;
            if field.name() != "message" {
                self.out.write_str(field.name().trim_start_matches("r#"))?;
                self.out.write_char('=')?;
            }
            Escaped(&mut *self.out).write_fmt(value)
        })();
    }
}

impl<W: fmt::Write> Visit for TextFields<'_, W> {
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.field(field, format_args!("{}", itoa::Buffer::new().format(value)));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.field(field, format_args!("{}", itoa::Buffer::new().format(value)));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.field(field, format_args!("{value}"));
        } else {
            self.field(field, format_args!("{value:?}"));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.field(field, format_args!("{value:?}"));
    }
}

/// Writes what it is given with ASCII control characters escaped, so that a value cannot end
/// the line or colour the terminal.
struct Escaped<'a, W: fmt::Write>(&'a mut W);

impl<W: fmt::Write> fmt::Write for Escaped<'_, W> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        let mut clean = 0;
        for (at, byte) in text.bytes().enumerate() {
            if byte.is_ascii_control() {
                self.0.write_str(&text[clean..at])?;
                match byte {
                    b'\n' => self.0.write_str("\\n")?,
                    b'\r' => self.0.write_str("\\r")?,
                    b'\t' => self.0.write_str("\\t")?,
                    _ => write!(self.0, "\\u{{{byte:x}}}")?,
                }
                clean = at + 1;
            }
        }
        self.0.write_str(&text[clean..])
    }
}

fn json_line(out: &mut impl fmt::Write, event: &Event<'_>) -> fmt::Result {
    let meta = event.metadata();
    json_head(out, meta.level())?;
    let mut fields = JsonFields {
        out: &mut *out,
        result: Ok(()),
    };
    event.record(&mut fields);
    fields.result?;
    json_tail(out, meta.target())
}

/// A JSON line up to its fields: the time and the level.
fn json_head(out: &mut impl fmt::Write, level: &Level) -> fmt::Result {
    out.write_str("{\"timestamp\":\"")?;
    timestamp(out)?;
    out.write_str("\",\"level\":\"")?;
    out.write_str(level.as_str())?;
    out.write_char('"')
}

/// A JSON line after its fields: the target and the request.
fn json_tail(out: &mut impl fmt::Write, target: &str) -> fmt::Result {
    out.write_str(",\"target\":")?;
    json_string(out, target)?;
    let _ = REQUEST.try_with(|request| -> fmt::Result {
        out.write_str(",\"span\":")?;
        json_span(out, request)?;
        out.write_str(",\"spans\":[")?;
        json_span(out, request)?;
        out.write_char(']')
    });
    out.write_str("}\n")
}

fn json_span(out: &mut impl fmt::Write, request: &RequestScope) -> fmt::Result {
    out.write_str("{\"id\":")?;
    json_string(out, request.id.to_str().unwrap_or("-"))?;
    out.write_str(",\"method\":")?;
    json_string(out, request.method.as_str())?;
    out.write_str(",\"path\":")?;
    json_string(out, request.uri.path())?;
    out.write_str(",\"name\":\"request\"}")
}

/// An event's fields as members of the line's object: integers and booleans as themselves,
/// everything else as a string.
struct JsonFields<'a, W: fmt::Write> {
    out: &'a mut W,
    result: fmt::Result,
}

impl<W: fmt::Write> JsonFields<'_, W> {
    fn member(&mut self, field: &Field, value: impl FnOnce(&mut W) -> fmt::Result) {
        if self.result.is_err() {
            return;
        }
        self.result = (|| {
            self.out.write_char(',')?;
            json_string(self.out, field.name().trim_start_matches("r#"))?;
            self.out.write_char(':')?;
            value(self.out)
        })();
    }
}

impl<W: fmt::Write> Visit for JsonFields<'_, W> {
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.member(field, |out| {
            out.write_str(itoa::Buffer::new().format(value))
        });
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.member(field, |out| {
            out.write_str(itoa::Buffer::new().format(value))
        });
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.member(field, |out| {
            out.write_str(if value { "true" } else { "false" })
        });
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        if value.is_finite() {
            self.member(field, |out| write!(out, "{value}"));
        } else {
            self.member(field, |out| write!(out, "\"{value}\""));
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.member(field, |out| json_string(out, value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.member(field, |out| {
            out.write_char('"')?;
            write!(JsonEscaped(&mut *out), "{value:?}")?;
            out.write_char('"')
        });
    }
}

fn json_string(out: &mut impl fmt::Write, text: &str) -> fmt::Result {
    out.write_char('"')?;
    JsonEscaped(&mut *out).write_str(text)?;
    out.write_char('"')
}

/// Writes what it is given escaped for the inside of a JSON string.
struct JsonEscaped<'a, W: fmt::Write>(&'a mut W);

impl<W: fmt::Write> fmt::Write for JsonEscaped<'_, W> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        let mut clean = 0;
        for (at, byte) in text.bytes().enumerate() {
            if byte < 0x20 || byte == b'"' || byte == b'\\' || byte == 0x7f {
                self.0.write_str(&text[clean..at])?;
                match byte {
                    b'"' => self.0.write_str("\\\"")?,
                    b'\\' => self.0.write_str("\\\\")?,
                    b'\n' => self.0.write_str("\\n")?,
                    b'\r' => self.0.write_str("\\r")?,
                    b'\t' => self.0.write_str("\\t")?,
                    _ => write!(self.0, "\\u{byte:04x}")?,
                }
                clean = at + 1;
            }
        }
        self.0.write_str(&text[clean..])
    }
}

thread_local! {
    /// The second last written on this thread, and its text up to the fraction.
    static SECOND: Cell<(u64, [u8; 20])> = const { Cell::new((u64::MAX, [0; 20])) };
}

/// The time now in UTC as `2026-12-04T12:28:07.123456Z`, tracing-subscriber's form. The date
/// and time of day are worked out once a second on each thread.
fn timestamp(out: &mut impl fmt::Write) -> fmt::Result {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let seconds = now.as_secs();
    let (seen, mut text) = SECOND.get();
    if seen != seconds {
        text = second_text(seconds);
        SECOND.set((seconds, text));
    }
    // The text is ASCII digits and separators.
    out.write_str(std::str::from_utf8(&text).map_err(|_| fmt::Error)?)?;
    let mut fraction = *b"000000Z";
    let mut micros = now.subsec_micros();
    for digit in fraction[..6].iter_mut().rev() {
        *digit = b'0' + (micros % 10) as u8;
        micros /= 10;
    }
    out.write_str(std::str::from_utf8(&fraction).map_err(|_| fmt::Error)?)
}

/// `YYYY-MM-DDTHH:MM:SS.` for seconds since 1970 in UTC (years 0–9999; later ones are cut
/// to four digits, which no clock here will reach).
fn second_text(seconds: u64) -> [u8; 20] {
    let days = (seconds / 86_400) as i64;
    let of_day = seconds % 86_400;
    // Howard Hinnant's days-to-civil, for the proleptic Gregorian calendar.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    let mut text = *b"0000-00-00T00:00:00.";
    let mut put = |at: usize, width: usize, mut value: u64| {
        for digit in text[at..at + width].iter_mut().rev() {
            *digit = b'0' + (value % 10) as u8;
            value /= 10;
        }
    };
    put(0, 4, year.clamp(0, 9999) as u64);
    put(5, 2, month as u64);
    put(8, 2, day as u64);
    put(11, 2, of_day / 3_600);
    put(14, 2, of_day / 60 % 60);
    put(17, 2, of_day % 60);
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_text_agrees_with_the_time_crate() {
        let format =
            time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].");
        // The epoch, leap days, the turn of centuries, and a spread of instants up to 9999.
        let mut instants = vec![
            0,
            951_782_400,   // 2000-02-29
            4_107_542_399, // 2100-02-28 23:59:59
            4_107_542_400, // 2100-03-01
            1_796_428_087, // 2026-12-04T...
            253_402_300_799,
        ];
        instants.extend((0..2_000u64).map(|i| i * 126_701_113 + i * i % 86_400));
        for seconds in instants {
            let expected = time::OffsetDateTime::from_unix_timestamp(seconds as i64)
                .expect("in range")
                .format(&format)
                .expect("formats");
            let got = second_text(seconds);
            assert_eq!(
                std::str::from_utf8(&got).expect("ascii"),
                expected,
                "{seconds}"
            );
        }
    }

    #[test]
    fn escaped_text_keeps_a_value_on_its_line() {
        let mut out = String::new();
        Escaped(&mut out)
            .write_str("a\nb\r\x1b[31mc\td")
            .expect("writes");
        assert_eq!(out, "a\\nb\\r\\u{1b}[31mc\\td");
    }

    #[test]
    fn json_strings_are_escaped() {
        let mut out = String::new();
        json_string(&mut out, "q\"\\\n\u{1}é").expect("writes");
        let back: String = serde_json::from_str(&out).expect("valid JSON");
        assert_eq!(back, "q\"\\\n\u{1}é");
    }
}
