//! Ingest stage: the wire shape of a log entry, its validation, and the two
//! on-disk line formats (classic and JSON lines) plus their parsers for reading
//! back.
//!
//! Parsing is deliberately two-step. serde only checks JSON syntax and collects
//! each field as "a string or something else" ([`Field`]), so that a wrong type
//! becomes an [`EntryError`] that names the entry index and the field, instead
//! of an opaque serde message. Validation then runs over the whole batch before
//! anything is handed to the WAL: a batch with one bad entry is rejected whole.

use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use time::format_description::BorrowedFormatItem;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime, UtcOffset};

use crate::error::{EntryError, EntryErrorKind, FieldName, IngestError};

/// Longest accepted `level`, in bytes.
pub const MAX_LEVEL_BYTES: usize = 32;
/// Longest accepted `source`, in bytes.
pub const MAX_SOURCE_BYTES: usize = 256;

/// `2006-01-02 15:04:05`, always UTC.
const CLASSIC_TIME: &[BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");

/// A validated log entry. `timestamp` is always in UTC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub timestamp: OffsetDateTime,
    pub level: String,
    pub source: String,
    pub message: String,
}

/// How entries are written to the output log file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    /// `2006-01-02 15:04:05;LEVEL;source;message` with `\\`, `\n`, `\r` escaped.
    #[default]
    Classic,
    /// One JSON object per line.
    Json,
}

/// A JSON value seen only as "string or not": lets validation report a wrong
/// type with the entry index instead of failing the whole parse.
#[derive(Debug)]
enum Field {
    Str(String),
    Other,
}

impl<'de> Deserialize<'de> for Field {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Field;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Field, E> {
                Ok(Field::Str(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Field, E> {
                Ok(Field::Str(v))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Field, E> {
                Ok(Field::Other)
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Field, E> {
                Ok(Field::Other)
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Field, E> {
                Ok(Field::Other)
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Field, E> {
                Ok(Field::Other)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Field, E> {
                Ok(Field::Other)
            }
            fn visit_none<E: de::Error>(self) -> Result<Field, E> {
                Ok(Field::Other)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Field, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Field::Other)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Field, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Field::Other)
            }
        }
        d.deserialize_any(V)
    }
}

/// The wire shape. Both the lower-case names and the capitalised ones that
/// Go's `encoding/json` produces for exported fields are accepted. Unknown
/// fields are ignored: clients may send more than we store.
#[derive(Debug, Deserialize)]
struct RawEntry {
    #[serde(alias = "Level")]
    level: Option<Field>,
    #[serde(alias = "Timestamp")]
    timestamp: Option<Field>,
    #[serde(alias = "Source")]
    source: Option<Field>,
    #[serde(alias = "Message")]
    message: Option<Field>,
}

/// Parses a request body: one JSON object or an array of them. Either every
/// entry is valid and all are returned, or none is.
pub fn parse_body(body: &[u8]) -> Result<Vec<Entry>, IngestError> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace()).copied();
    let raw: Vec<RawEntry> = match first {
        Some(b'[') => serde_json::from_slice(body).map_err(IngestError::Json)?,
        Some(b'{') => vec![serde_json::from_slice(body).map_err(IngestError::Json)?],
        _ => return Err(IngestError::NotObjectOrArray),
    };
    raw.into_iter()
        .enumerate()
        .map(|(index, raw)| {
            validate(raw).map_err(|(field, kind)| EntryError { index, field, kind })
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(IngestError::Entry)
}

fn require(field: Option<Field>, name: FieldName) -> Result<String, (FieldName, EntryErrorKind)> {
    match field {
        Some(Field::Str(s)) => Ok(s),
        Some(Field::Other) => Err((name, EntryErrorKind::NotAString)),
        None => Err((name, EntryErrorKind::Missing)),
    }
}

/// A token (level or source) must survive the classic `;`-separated format
/// unescaped, so it may not contain `;` or control characters.
fn check_token(s: &str, name: FieldName, max: usize) -> Result<(), (FieldName, EntryErrorKind)> {
    if s.is_empty() {
        return Err((name, EntryErrorKind::Empty));
    }
    if s.len() > max {
        return Err((name, EntryErrorKind::TooLong));
    }
    if s.chars().any(|c| c == ';' || c.is_control()) {
        return Err((name, EntryErrorKind::BadCharacter));
    }
    Ok(())
}

fn validate(raw: RawEntry) -> Result<Entry, (FieldName, EntryErrorKind)> {
    let level = require(raw.level, FieldName::Level)?;
    let timestamp = require(raw.timestamp, FieldName::Timestamp)?;
    let source = require(raw.source, FieldName::Source)?;
    let message = require(raw.message, FieldName::Message)?;
    check_token(&level, FieldName::Level, MAX_LEVEL_BYTES)?;
    check_token(&source, FieldName::Source, MAX_SOURCE_BYTES)?;
    let timestamp = OffsetDateTime::parse(&timestamp, &Rfc3339)
        .map_err(|_| (FieldName::Timestamp, EntryErrorKind::BadTimestamp))?
        .to_offset(UtcOffset::UTC);
    Ok(Entry {
        timestamp,
        level: level.to_ascii_uppercase(),
        source,
        message,
    })
}

/// The rule for timestamps ahead of the server's clock: an entry stamped
/// more than `max_skew` after `now` is refused, naming the first such entry
/// (so the batch is refused whole, before the WAL). One a skewed client
/// clock put slightly ahead is accepted and ordered by its arrival time
/// (`order`), and recovery orders a replayed one by the recovery time, so
/// no accepted entry is held longer than one reorder window, live or after
/// a restart. Entries from the past are always accepted.
pub fn check_future_skew(
    entries: &[Entry],
    now: OffsetDateTime,
    max_skew: std::time::Duration,
) -> Result<(), IngestError> {
    let limit = now.checked_add(time::Duration::try_from(max_skew).unwrap_or(time::Duration::MAX));
    let Some(index) = entries
        .iter()
        .position(|e| limit.is_some_and(|limit| e.timestamp > limit))
    else {
        return Ok(());
    };
    Err(IngestError::Entry(EntryError {
        index,
        field: FieldName::Timestamp,
        kind: EntryErrorKind::TooFarInFuture,
    }))
}

/// Escapes `\`, LF and CR so that a message is always one line.
pub fn escape_message(msg: &str, out: &mut String) {
    for c in msg.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
}

/// Inverse of [`escape_message`]. Unknown escapes are kept verbatim.
pub fn unescape_message(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

/// JSON-lines and `/logs` representation.
#[derive(Debug, Serialize, Deserialize)]
pub struct JsonEntry {
    #[serde(with = "time::serde::rfc3339")]
    pub timestamp: OffsetDateTime,
    pub level: String,
    pub source: String,
    pub message: String,
}

impl From<&Entry> for JsonEntry {
    fn from(e: &Entry) -> Self {
        JsonEntry {
            timestamp: e.timestamp,
            level: e.level.clone(),
            source: e.source.clone(),
            message: e.message.clone(),
        }
    }
}

impl From<JsonEntry> for Entry {
    fn from(e: JsonEntry) -> Self {
        Entry {
            timestamp: e.timestamp.to_offset(UtcOffset::UTC),
            level: e.level,
            source: e.source,
            message: e.message,
        }
    }
}

impl Entry {
    /// Appends this entry as one output line (with the trailing `\n`).
    pub fn write_line(&self, format: Format, out: &mut String) {
        match format {
            Format::Classic => {
                // Formatting a 4-digit-year UTC time cannot fail; RFC 3339 input
                // guarantees the year range.
                if let Ok(t) = self.timestamp.format(CLASSIC_TIME) {
                    out.push_str(&t);
                }
                out.push(';');
                out.push_str(&self.level);
                out.push(';');
                out.push_str(&self.source);
                out.push(';');
                escape_message(&self.message, out);
            }
            Format::Json => {
                // Serialising plain strings and a valid time cannot fail.
                if let Ok(s) = serde_json::to_string(&JsonEntry::from(self)) {
                    out.push_str(&s);
                }
            }
        }
        out.push('\n');
    }

    /// Parses one output line (without its `\n`) written by [`Entry::write_line`].
    pub fn parse_line(line: &str, format: Format) -> Option<Entry> {
        match format {
            Format::Classic => {
                let mut parts = line.splitn(4, ';');
                let ts = parts.next()?;
                let level = parts.next()?;
                let source = parts.next()?;
                let message = parts.next()?;
                let timestamp = PrimitiveDateTime::parse(ts, CLASSIC_TIME)
                    .ok()?
                    .assume_utc();
                Some(Entry {
                    timestamp,
                    level: level.to_owned(),
                    source: source.to_owned(),
                    message: unescape_message(message),
                })
            }
            Format::Json => serde_json::from_str::<JsonEntry>(line)
                .ok()
                .map(Entry::from),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(body: &str) -> Result<Vec<Entry>, IngestError> {
        parse_body(body.as_bytes())
    }

    fn entry_err(body: &str) -> EntryError {
        match one(body) {
            Err(IngestError::Entry(e)) => e,
            other => panic!("expected entry error, got {other:?}"),
        }
    }

    #[test]
    fn timestamps_beyond_the_future_skew_are_refused() {
        let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let skew = std::time::Duration::from_secs(300);
        let at = |offset: i64| Entry {
            timestamp: now + time::Duration::seconds(offset),
            level: "INFO".into(),
            source: "s".into(),
            message: "m".into(),
        };
        let far_past = Entry {
            timestamp: OffsetDateTime::from_unix_timestamp(0).unwrap(),
            ..at(0)
        };
        assert!(check_future_skew(&[far_past, at(0), at(300)], now, skew).is_ok());
        let year_9999 =
            one(r#"{"level":"i","timestamp":"9999-12-31T23:59:59Z","source":"a","message":"m"}"#)
                .unwrap();
        for (batch, index) in [(vec![at(0), at(301)], 1), (year_9999, 0)] {
            match check_future_skew(&batch, now, skew) {
                Err(IngestError::Entry(e)) => assert_eq!(
                    e,
                    EntryError {
                        index,
                        field: FieldName::Timestamp,
                        kind: EntryErrorKind::TooFarInFuture
                    }
                ),
                other => panic!("{other:?}"),
            }
        }
        // A skew too large to add to the clock refuses nothing.
        let huge = std::time::Duration::from_secs(u64::MAX);
        assert!(check_future_skew(&[at(1 << 30)], now, huge).is_ok());
    }

    #[test]
    fn accepts_both_field_styles() {
        let lower = one(
            r#"{"level":"info","timestamp":"2024-05-01T10:00:00Z","source":"a","message":"m"}"#,
        )
        .unwrap();
        let upper = one(
            r#"{"Level":"info","Timestamp":"2024-05-01T10:00:00Z","Source":"a","Message":"m"}"#,
        )
        .unwrap();
        assert_eq!(lower, upper);
        assert_eq!(lower[0].level, "INFO");
    }

    #[test]
    fn converts_offsets_to_utc() {
        let e = one(
            r#"{"level":"w","timestamp":"2024-05-01T12:00:00+02:00","source":"a","message":""}"#,
        )
        .unwrap();
        let mut line = String::new();
        e[0].write_line(Format::Classic, &mut line);
        assert_eq!(line, "2024-05-01 10:00:00;W;a;\n");
    }

    #[test]
    fn reports_index_and_field() {
        let e = entry_err(
            r#"[{"level":"i","timestamp":"2024-05-01T10:00:00Z","source":"a","message":"m"},
                {"level":"i","timestamp":"yesterday","source":"a","message":"m"}]"#,
        );
        assert_eq!(
            (e.index, e.field, e.kind),
            (1, FieldName::Timestamp, EntryErrorKind::BadTimestamp)
        );
        let e = entry_err(r#"{"level":"i","timestamp":"2024-05-01T10:00:00Z","source":"a"}"#);
        assert_eq!(
            (e.field, e.kind),
            (FieldName::Message, EntryErrorKind::Missing)
        );
        let e = entry_err(
            r#"{"level":3,"timestamp":"2024-05-01T10:00:00Z","source":"a","message":"m"}"#,
        );
        assert_eq!(
            (e.field, e.kind),
            (FieldName::Level, EntryErrorKind::NotAString)
        );
        let e = entry_err(
            r#"{"level":"i","timestamp":"2024-05-01T10:00:00Z","source":"a;b","message":"m"}"#,
        );
        assert_eq!(
            (e.field, e.kind),
            (FieldName::Source, EntryErrorKind::BadCharacter)
        );
    }

    #[test]
    fn rejects_non_json_and_scalars() {
        assert!(matches!(one("42"), Err(IngestError::NotObjectOrArray)));
        assert!(matches!(one("{"), Err(IngestError::Json(_))));
    }

    #[test]
    fn classic_round_trip_escapes_newlines() {
        let e = Entry {
            timestamp: OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap(),
            level: "ERROR".into(),
            source: "svc".into(),
            message: "a;b\nc\\n\r".into(),
        };
        let mut line = String::new();
        e.write_line(Format::Classic, &mut line);
        assert_eq!(line, "2023-11-14 22:13:20;ERROR;svc;a;b\\nc\\\\n\\r\n");
        let back = Entry::parse_line(line.trim_end_matches('\n'), Format::Classic).unwrap();
        assert_eq!(back, e);
    }

    #[test]
    fn json_round_trip_keeps_nanos() {
        let e = one(r#"{"level":"i","timestamp":"2024-05-01T10:00:00.123456789Z","source":"a","message":"x\ny"}"#)
            .unwrap()
            .remove(0);
        let mut line = String::new();
        e.write_line(Format::Json, &mut line);
        assert_eq!(line.matches('\n').count(), 1);
        assert_eq!(Entry::parse_line(line.trim_end(), Format::Json).unwrap(), e);
    }
}
