//! Errors, and the one place they become HTTP status codes ([`Error::status`]).
//!
//! Entry validation errors are small `Copy` values (no allocation on the ingest
//! path); only I/O and JSON syntax errors carry a boxed source.

use std::fmt;
use std::io;

use http::StatusCode;

/// Which field of an entry was wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldName {
    Level,
    Timestamp,
    Source,
    Message,
}

impl FieldName {
    pub fn as_str(self) -> &'static str {
        match self {
            FieldName::Level => "level",
            FieldName::Timestamp => "timestamp",
            FieldName::Source => "source",
            FieldName::Message => "message",
        }
    }
}

/// What was wrong with the field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryErrorKind {
    Missing,
    NotAString,
    Empty,
    TooLong,
    /// `;` or a control character in `level`/`source`.
    BadCharacter,
    /// Not an RFC 3339 timestamp.
    BadTimestamp,
    /// Further ahead of the server's clock than `--max-future-skew`.
    TooFarInFuture,
}

impl EntryErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EntryErrorKind::Missing => "missing",
            EntryErrorKind::NotAString => "not a string",
            EntryErrorKind::Empty => "empty",
            EntryErrorKind::TooLong => "too long",
            EntryErrorKind::BadCharacter => "contains ';' or a control character",
            EntryErrorKind::BadTimestamp => "not an RFC 3339 timestamp",
            EntryErrorKind::TooFarInFuture => {
                "further ahead of the server's clock than --max-future-skew"
            }
        }
    }
}

/// A bad entry: its index in the batch (0 for a single object), field, reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("entry {index}: field `{}` {}", field.as_str(), kind.as_str())]
pub struct EntryError {
    pub index: usize,
    pub field: FieldName,
    pub kind: EntryErrorKind,
}

/// Why a `POST /` body was rejected.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("body is not a JSON object or array")]
    NotObjectOrArray,
    #[error("invalid JSON: {0}")]
    Json(#[source] serde_json::Error),
    #[error(transparent)]
    Entry(EntryError),
}

/// Why a `GET /logs` query was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error("`since` is not an RFC 3339 timestamp")]
    BadSince,
    #[error("`until` is not an RFC 3339 timestamp")]
    BadUntil,
    #[error("`limit` is not a positive integer")]
    BadLimit,
    #[error("query string is not valid UTF-8")]
    BadEncoding,
}

/// The write-ahead log cannot accept entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Unavailable {
    #[error("recovery has not finished")]
    Recovering,
    #[error("the write-ahead log failed; refusing writes")]
    WalFailed,
    #[error("shutting down")]
    ShuttingDown,
}

/// Every error a request can end in.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Ingest(#[from] IngestError),
    #[error(transparent)]
    Query(#[from] QueryError),
    #[error("request body larger than {limit} bytes")]
    BodyTooLarge { limit: usize },
    #[error("reading request body failed")]
    Body(#[source] hyper::Error),
    #[error("the request body did not arrive within {0:?}")]
    BodyTimeout(std::time::Duration),
    /// The in-flight body budget is spent; retry later.
    #[error("too many uploads in flight; retry later")]
    Busy,
    #[error("not found")]
    NotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error(transparent)]
    Unavailable(#[from] Unavailable),
    #[error("I/O error")]
    Io(#[from] io::Error),
}

impl Error {
    /// The status code for this error. Exhaustive on purpose: a new variant
    /// must decide its status here rather than fall into a silent 500.
    pub fn status(&self) -> StatusCode {
        match self {
            Error::Ingest(_) | Error::Query(_) => StatusCode::BAD_REQUEST,
            Error::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Error::Body(_) => StatusCode::BAD_REQUEST,
            Error::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            Error::Busy => StatusCode::SERVICE_UNAVAILABLE,
            Error::NotFound => StatusCode::NOT_FOUND,
            Error::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Error::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Error::Io(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The bad entry, if this is an entry validation error.
    pub fn entry_error(&self) -> Option<EntryError> {
        match self {
            Error::Ingest(IngestError::Entry(e)) => Some(*e),
            _ => None,
        }
    }
}

/// Startup failures (bad directory, unreadable WAL, ...).
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{what} ({path})")]
    Io {
        what: &'static str,
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("checkpoint file is corrupt: {0}")]
    CorruptCheckpoint(&'static str),
}

impl StartError {
    pub fn io(what: &'static str, path: impl fmt::Debug) -> impl FnOnce(io::Error) -> StartError {
        move |source| StartError::Io {
            what,
            path: format!("{path:?}"),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_codes_are_pinned() {
        let entry = EntryError {
            index: 0,
            field: FieldName::Level,
            kind: EntryErrorKind::Missing,
        };
        let cases = [
            (Error::Ingest(IngestError::Entry(entry)), 400),
            (Error::Ingest(IngestError::NotObjectOrArray), 400),
            (Error::Query(QueryError::BadLimit), 400),
            (Error::BodyTooLarge { limit: 1 }, 413),
            (Error::Busy, 503),
            (Error::BodyTimeout(std::time::Duration::from_secs(1)), 408),
            (Error::NotFound, 404),
            (Error::MethodNotAllowed, 405),
            (Error::Unavailable(Unavailable::Recovering), 503),
            (Error::Io(io::Error::other("x")), 500),
        ];
        for (err, code) in cases {
            assert_eq!(err.status().as_u16(), code, "{err}");
        }
    }

    #[test]
    fn entry_error_names_index_and_field() {
        let e = EntryError {
            index: 3,
            field: FieldName::Timestamp,
            kind: EntryErrorKind::BadTimestamp,
        };
        assert_eq!(
            e.to_string(),
            "entry 3: field `timestamp` not an RFC 3339 timestamp"
        );
    }
}
