//! How an HTTP/1.1 message body is delimited (RFC 9112 §6), one type for
//! requests and responses in both directions, and the field helpers that
//! decide it.

use http::{HeaderMap, Method, StatusCode, header};
use http_body::SizeHint;

/// How a message body is delimited on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// No body (HEAD, 1xx, 204, 304, `Content-Length: 0`, or a request
    /// without a body).
    None,
    Length(u64),
    Chunked,
    /// Until the connection closes: a response only (an HTTP/1.0 client of
    /// a body of unknown length, or a backend's response without framing).
    /// A request is never read this way.
    Close,
}

/// The framing of a request body from its size, if known (`exact`), and the
/// request: a bodiless GET keeps its head bare, a bodiless POST says `0`.
pub fn request_framing(method: &Method, headers: &HeaderMap, exact: Option<u64>) -> Framing {
    match exact {
        Some(0)
            if !headers.contains_key(header::CONTENT_LENGTH)
                && !matches!(*method, Method::POST | Method::PUT | Method::PATCH) =>
        {
            Framing::None
        }
        Some(n) => Framing::Length(n),
        None => Framing::Chunked,
    }
}

/// Picks the response framing (RFC 9112 §6.3).
pub fn response_framing(
    head_request: bool,
    status: StatusCode,
    hint: &SizeHint,
    http10: bool,
) -> Framing {
    if head_request
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return Framing::None;
    }
    match hint.exact() {
        Some(n) => Framing::Length(n),
        None if http10 => Framing::Close,
        None => Framing::Chunked,
    }
}

/// The `Connection` options that decide persistence and upgrades, from all
/// of a message's `Connection` field lines (requests and responses).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ConnectionOptions {
    pub close: bool,
    pub keep_alive: bool,
    pub upgrade: bool,
}

impl ConnectionOptions {
    pub(crate) fn learn(&mut self, value: &[u8]) {
        for t in tokens(value) {
            if t.eq_ignore_ascii_case(b"close") {
                self.close = true;
            } else if t.eq_ignore_ascii_case(b"keep-alive") {
                self.keep_alive = true;
            } else if t.eq_ignore_ascii_case(b"upgrade") {
                self.upgrade = true;
            }
        }
    }
}

/// `1*DIGIT`, no sign, no spaces, no overflow.
pub(crate) fn parse_length(s: &[u8]) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    s.iter().try_fold(0u64, |n, &b| {
        let d = b.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        n.checked_mul(10)?.checked_add(u64::from(d))
    })
}

/// The non-empty comma-separated elements of a list field, OWS trimmed.
pub(crate) fn tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(trim)
        .filter(|t| !t.is_empty())
}

pub(crate) fn trim(s: &[u8]) -> &[u8] {
    let ows = |b: &u8| *b == b' ' || *b == b'\t';
    let start = s.iter().position(|b| !ows(b)).unwrap_or(s.len());
    let end = s.iter().rposition(|b| !ows(b)).map_or(start, |e| e + 1);
    &s[start..end]
}
