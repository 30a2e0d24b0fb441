//! Stage: `server::h1` reads bytes → **`http1::request`** parses the head →
//! the request goes to `proxy::handle`.
//!
//! Reads one request head out of the connection's buffer with httparse and
//! decides its framing by RFC 9112 §6. Anything two parsers could read two
//! ways is refused here, before a byte reaches a backend: Content-Length
//! together with Transfer-Encoding, differing Content-Lengths, a final
//! coding other than `chunked`, Transfer-Encoding on HTTP/1.0, a missing or
//! repeated Host.
//!
//! The error is a small `Copy` enum (no boxing on the hot path) that knows
//! its [`ErrorKind`], and so its status. Header values and the request
//! target are `Bytes` slices of the buffer the head arrived in: nothing is
//! copied.

use super::framing::{ConnectionOptions, Framing, parse_length, tokens, trim};
use crate::config::Limits;
use crate::error::{ErrorKind, ProxyError};
use bytes::BytesMut;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri, Version, header};
use std::fmt;

/// Header slots kept on the stack; a larger `max_headers` uses the heap.
const STACK_HEADERS: usize = 100;
/// The longest request target the `http` crate can hold.
const HTTP_CRATE_MAX_URI: usize = 65_534;

/// Why a request head was refused. Each maps to one status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// The head is larger than `max_header_bytes`.
    HeadTooLarge,
    /// More than `max_headers` fields.
    TooManyHeaders,
    /// The request target is longer than `max_uri_bytes`.
    UriTooLong,
    /// Not HTTP/1.x syntax: bad token, bad byte, obs-fold, space before colon.
    Malformed,
    /// An HTTP version other than 1.0 and 1.1.
    BadVersion,
    /// A request target the `http` crate cannot represent.
    BadUri,
    /// Both Content-Length and Transfer-Encoding (RFC 9112 §6.1).
    LengthAndChunked,
    /// Content-Length not a decimal number, or several different ones.
    BadContentLength,
    /// Transfer-Encoding whose final coding is not `chunked`, or `chunked` twice.
    BadTransferEncoding,
    /// Transfer-Encoding on an HTTP/1.0 request (RFC 9112 §6.1).
    TransferEncodingOnHttp10,
    /// HTTP/1.1 without Host (RFC 9112 §3.2).
    MissingHost,
    /// More than one Host field.
    MultipleHosts,
}

impl ParseError {
    /// What kind of error this is on the request path; its status comes from
    /// [`ErrorKind::status`], the one map. Exhaustive on purpose.
    pub const fn kind(self) -> ErrorKind {
        match self {
            ParseError::HeadTooLarge | ParseError::TooManyHeaders => ErrorKind::HeadersTooLarge,
            ParseError::UriTooLong => ErrorKind::UriTooLong,
            ParseError::LengthAndChunked
            | ParseError::BadContentLength
            | ParseError::BadTransferEncoding
            | ParseError::TransferEncodingOnHttp10 => ErrorKind::AmbiguousFraming,
            ParseError::Malformed
            | ParseError::BadVersion
            | ParseError::BadUri
            | ParseError::MissingHost
            | ParseError::MultipleHosts => ErrorKind::BadRequest,
        }
    }

    /// What exactly was wrong, for logs (the client sees its kind's reason).
    pub const fn reason(self) -> &'static str {
        match self {
            ParseError::HeadTooLarge => "request header fields too large",
            ParseError::TooManyHeaders => "too many request header fields",
            ParseError::UriTooLong => "request target too long",
            ParseError::Malformed => "malformed request",
            ParseError::BadVersion => "unsupported HTTP version",
            ParseError::BadUri => "invalid request target",
            ParseError::LengthAndChunked => "ambiguous message framing",
            ParseError::BadContentLength => "invalid content-length",
            ParseError::BadTransferEncoding => "invalid transfer-encoding",
            ParseError::TransferEncodingOnHttp10 => "transfer-encoding on HTTP/1.0",
            ParseError::MissingHost => "missing Host header",
            ParseError::MultipleHosts => "more than one Host header",
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())
    }
}

impl std::error::Error for ParseError {}

impl From<ParseError> for ErrorKind {
    fn from(e: ParseError) -> ErrorKind {
        e.kind()
    }
}

impl From<ParseError> for ProxyError {
    fn from(e: ParseError) -> ProxyError {
        ProxyError::with_source(e.kind(), e)
    }
}

/// A parsed, validated request head.
#[derive(Debug)]
pub struct RequestHead {
    pub method: Method,
    pub uri: Uri,
    pub version: Version,
    pub headers: HeaderMap,
    pub framing: Framing,
    /// The connection may serve another request after this one.
    pub keep_alive: bool,
    /// `Expect: 100-continue` on HTTP/1.1.
    pub expect_continue: bool,
    /// `Connection: upgrade` with an `Upgrade` field, on HTTP/1.1.
    pub upgrade: bool,
}

/// Where one field sits in the buffer, so that the values can become slices
/// of the frozen head once httparse's borrow ends.
#[derive(Clone, Copy, Default)]
struct FieldAt {
    name: (u32, u32),
    value: (u32, u32),
}

/// What the framing pass learns from the fields.
#[derive(Default)]
struct Facts {
    content_length: Option<u64>,
    /// Content-Length appeared more than once or as a list: normalise it.
    length_repeated: bool,
    transfer_encoding: bool,
    chunked_last: bool,
    hosts: u32,
    connection: ConnectionOptions,
    upgrade_field: bool,
    expect_continue: bool,
}

/// What scanning the head found, free of borrows of the buffer.
struct Scan {
    len: usize,
    method: Method,
    target: (u32, u32),
    version: Version,
    count: usize,
    facts: Facts,
}

/// Parses a head from the front of `buf`. `Ok(None)`: not complete yet, read
/// more. On success the head's bytes are split off `buf` (what follows, a body
/// or a pipelined request, stays).
pub fn parse(buf: &mut BytesMut, limits: &Limits) -> Result<Option<RequestHead>, ParseError> {
    super::version::request_as_http11(buf);
    if limits.max_headers <= STACK_HEADERS {
        let mut at = [FieldAt::default(); STACK_HEADERS];
        let at = &mut at[..limits.max_headers];
        let Some(scan) = scan(buf, limits, at)? else {
            return Ok(None);
        };
        build(buf, scan, at).map(Some)
    } else {
        let mut at = vec![FieldAt::default(); limits.max_headers];
        let Some(scan) = scan(buf, limits, &mut at)? else {
            return Ok(None);
        };
        build(buf, scan, &at).map(Some)
    }
}

fn scan(buf: &[u8], limits: &Limits, at: &mut [FieldAt]) -> Result<Option<Scan>, ParseError> {
    if at.len() <= STACK_HEADERS {
        let mut headers = [httparse::EMPTY_HEADER; STACK_HEADERS];
        scan_with(buf, limits, &mut headers[..at.len()], at)
    } else {
        let mut headers = vec![httparse::EMPTY_HEADER; at.len()];
        scan_with(buf, limits, &mut headers, at)
    }
}

fn scan_with<'b>(
    buf: &'b [u8],
    limits: &Limits,
    headers: &mut [httparse::Header<'b>],
    at: &mut [FieldAt],
) -> Result<Option<Scan>, ParseError> {
    let base = buf.as_ptr() as usize;
    // Offsets fit in u32: the head is bounded by `max_header_bytes` (≤ 1 MiB).
    let span = |s: &[u8]| {
        let start = s.as_ptr() as usize - base;
        (start as u32, (start + s.len()) as u32)
    };
    let mut req = httparse::Request::new(headers);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => {
            if buf.len() > limits.max_header_bytes {
                // Still in the request line: the target is what is too long.
                return Err(if buf.contains(&b'\n') {
                    ParseError::HeadTooLarge
                } else {
                    ParseError::UriTooLong
                });
            }
            return Ok(None);
        }
        Err(httparse::Error::TooManyHeaders) => return Err(ParseError::TooManyHeaders),
        Err(httparse::Error::Version) => return Err(ParseError::BadVersion),
        Err(_) => return Err(ParseError::Malformed),
    };
    if len > limits.max_header_bytes {
        return Err(ParseError::HeadTooLarge);
    }
    let (Some(method), Some(path), Some(minor)) = (req.method, req.path, req.version) else {
        return Err(ParseError::Malformed);
    };
    if path.len() > limits.max_uri_bytes {
        return Err(ParseError::UriTooLong);
    }
    if path.len() > HTTP_CRATE_MAX_URI {
        return Err(ParseError::BadUri);
    }
    let version = match minor {
        0 => Version::HTTP_10,
        1 => Version::HTTP_11,
        _ => return Err(ParseError::BadVersion),
    };
    let method = Method::from_bytes(method.as_bytes()).map_err(|_| ParseError::Malformed)?;
    let mut facts = Facts::default();
    for (h, slot) in req.headers.iter().zip(at.iter_mut()) {
        *slot = FieldAt {
            name: span(h.name.as_bytes()),
            value: span(h.value),
        };
        facts.learn(h.name.as_bytes(), h.value)?;
    }
    Ok(Some(Scan {
        len,
        method,
        target: span(path.as_bytes()),
        version,
        count: req.headers.len(),
        facts,
    }))
}

/// Splits the head off `buf` and builds the request parts from slices of it.
fn build(buf: &mut BytesMut, scan: Scan, at: &[FieldAt]) -> Result<RequestHead, ParseError> {
    let Scan {
        len,
        method,
        target,
        version,
        count,
        facts,
    } = scan;
    let framing = facts.framing(version)?;
    if version == Version::HTTP_11 && facts.hosts == 0 {
        return Err(ParseError::MissingHost);
    }
    if facts.hosts > 1 {
        return Err(ParseError::MultipleHosts);
    }
    let head = buf.split_to(len).freeze();
    let slice = |(a, b): (u32, u32)| head.slice(a as usize..b as usize);
    let uri = Uri::from_maybe_shared(slice(target)).map_err(|_| ParseError::BadUri)?;
    // Room for what `proxy::headers::inbound` adds (X-Forwarded-For, -Proto,
    // -Host, Forwarded, Via): growing the map rehashed it on every request.
    let mut map = HeaderMap::with_capacity(count + 6);
    for f in &at[..count] {
        let name = HeaderName::from_bytes(&head[f.name.0 as usize..f.name.1 as usize])
            .map_err(|_| ParseError::Malformed)?;
        let value =
            HeaderValue::from_maybe_shared(slice(f.value)).map_err(|_| ParseError::Malformed)?;
        map.append(name, value);
    }
    if facts.length_repeated
        && let Framing::Length(n) = framing
    {
        map.insert(header::CONTENT_LENGTH, HeaderValue::from(n));
    }
    let raw_target = &head[target.0 as usize..target.1 as usize];
    // The asterisk-form is only for a server-wide OPTIONS (RFC 9112 §3.2.4).
    if raw_target == b"*" && method != Method::OPTIONS {
        return Err(ParseError::BadUri);
    }
    let uri = server_wide_options(&method, raw_target, uri, &mut map);
    let http11 = version == Version::HTTP_11;
    Ok(RequestHead {
        method,
        uri,
        version,
        headers: map,
        framing,
        keep_alive: !facts.connection.close && (http11 || facts.connection.keep_alive),
        expect_continue: http11 && facts.expect_continue,
        upgrade: http11 && facts.connection.upgrade && facts.upgrade_field,
    })
}

/// RFC 9112 §3.2.4: "When a proxy receives an OPTIONS request with an
/// absolute-form of request-target in which the URI has an empty path and
/// no query component, the last proxy on the request chain MUST send a
/// request-target of \"*\"". `http::Uri` reads `http://a` as `http://a/`,
/// so the raw target decides here: such a request becomes `OPTIONS *` with
/// the target's authority as its Host (which RFC 9110 §7.2 makes it for any
/// absolute-form target), and is routed and forwarded as one.
fn server_wide_options(method: &Method, raw: &[u8], uri: Uri, headers: &mut HeaderMap) -> Uri {
    if *method != Method::OPTIONS {
        return uri;
    }
    let Some(at) = raw.windows(3).position(|w| w == b"://") else {
        return uri;
    };
    if raw[at + 3..].iter().any(|&b| b == b'/' || b == b'?') {
        return uri;
    }
    let Some(host) = uri
        .authority()
        .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
    else {
        return uri;
    };
    headers.insert(header::HOST, host);
    Uri::from_static("*")
}

impl Facts {
    fn learn(&mut self, name: &[u8], value: &[u8]) -> Result<(), ParseError> {
        // Dispatch on length first: most fields are none of these.
        match name.len() {
            4 if name.eq_ignore_ascii_case(b"host") => self.hosts += 1,
            6 if name.eq_ignore_ascii_case(b"expect") => {
                self.expect_continue |= trim(value).eq_ignore_ascii_case(b"100-continue");
            }
            7 if name.eq_ignore_ascii_case(b"upgrade") => self.upgrade_field = true,
            10 if name.eq_ignore_ascii_case(b"connection") => self.connection.learn(value),
            14 if name.eq_ignore_ascii_case(b"content-length") => {
                let mut any = false;
                for item in value.split(|&b| b == b',') {
                    let n = parse_length(trim(item)).ok_or(ParseError::BadContentLength)?;
                    match self.content_length {
                        Some(prev) if prev != n => return Err(ParseError::BadContentLength),
                        Some(_) => self.length_repeated = true,
                        None => self.content_length = Some(n),
                    }
                    any = true;
                }
                if !any {
                    return Err(ParseError::BadContentLength);
                }
            }
            17 if name.eq_ignore_ascii_case(b"transfer-encoding") => {
                self.transfer_encoding = true;
                for t in tokens(value) {
                    // `chunked` must be the final coding, applied once.
                    if self.chunked_last {
                        return Err(ParseError::BadTransferEncoding);
                    }
                    self.chunked_last = t.eq_ignore_ascii_case(b"chunked");
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn framing(&self, version: Version) -> Result<Framing, ParseError> {
        if self.transfer_encoding {
            if version == Version::HTTP_10 {
                return Err(ParseError::TransferEncodingOnHttp10);
            }
            if self.content_length.is_some() {
                return Err(ParseError::LengthAndChunked);
            }
            if !self.chunked_last {
                return Err(ParseError::BadTransferEncoding);
            }
            return Ok(Framing::Chunked);
        }
        Ok(match self.content_length {
            Some(0) | None => Framing::None,
            Some(n) => Framing::Length(n),
        })
    }
}

#[cfg(test)]
mod tests;
