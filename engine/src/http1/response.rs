//! Stage: `upstream::h1` reads a backend's bytes → **`http1::response`**
//! parses the response head (RFC 9112 §4–§6) and decides its framing, as a
//! pure function over the buffer so that it can be tested and fuzzed byte by
//! byte. (The request head our client writes is `http1::write`'s.)

use super::framing::{ConnectionOptions, Framing, parse_length, tokens, trim};
use crate::error::ErrorKind;
use bytes::BytesMut;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Version};
use std::fmt;

/// Response header slots on the stack; a backend that sends more is refused.
pub const MAX_RESPONSE_HEADERS: usize = 128;
/// The largest response head we read; a larger one is a 502.
pub const MAX_RESPONSE_HEAD: usize = 64 * 1024;

/// A parsed response head.
#[derive(Debug)]
pub struct ResponseHead {
    pub status: StatusCode,
    pub version: Version,
    pub headers: HeaderMap,
    pub framing: Framing,
    /// The connection may carry another request once this body is read.
    pub reusable: bool,
}

/// Why a response head was refused: the backend is at fault (502).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeadError {
    Malformed,
    TooLarge,
    TooManyHeaders,
    BadVersion,
    BadStatus,
    BadContentLength,
}

impl HeadError {
    /// What the client is told: whatever is wrong with a response head, the
    /// backend sent it, so it is a 502 and counts against the backend.
    pub const fn kind(self) -> ErrorKind {
        match self {
            HeadError::Malformed
            | HeadError::TooLarge
            | HeadError::TooManyHeaders
            | HeadError::BadVersion
            | HeadError::BadStatus
            | HeadError::BadContentLength => ErrorKind::UpstreamProtocol,
        }
    }
}

impl fmt::Display for HeadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HeadError::Malformed => "malformed response head",
            HeadError::TooLarge => "response head too large",
            HeadError::TooManyHeaders => "too many response header fields",
            HeadError::BadVersion => "unsupported response HTTP version",
            HeadError::BadStatus => "invalid response status",
            HeadError::BadContentLength => "invalid response content-length",
        })
    }
}

impl std::error::Error for HeadError {}

/// Parses a response head from the front of `buf`; `Ok(None)` means read
/// more. On success the head is split off `buf` and the fields are slices of
/// it. `head_request` is whether the request was HEAD (no body follows).
pub fn parse_response(
    buf: &mut BytesMut,
    head_request: bool,
) -> Result<Option<ResponseHead>, HeadError> {
    super::version::response_as_http11(buf);
    let mut fields = [httparse::EMPTY_HEADER; MAX_RESPONSE_HEADERS];
    let mut resp = httparse::Response::new(&mut fields);
    let len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => {
            return if buf.len() > MAX_RESPONSE_HEAD {
                Err(HeadError::TooLarge)
            } else {
                Ok(None)
            };
        }
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooManyHeaders),
        Err(httparse::Error::Version) => return Err(HeadError::BadVersion),
        Err(httparse::Error::Status) => return Err(HeadError::BadStatus),
        Err(_) => return Err(HeadError::Malformed),
    };
    if len > MAX_RESPONSE_HEAD {
        return Err(HeadError::TooLarge);
    }
    let (Some(code), Some(minor)) = (resp.code, resp.version) else {
        return Err(HeadError::Malformed);
    };
    let status = StatusCode::from_u16(code).map_err(|_| HeadError::BadStatus)?;
    let version = match minor {
        0 => Version::HTTP_10,
        1 => Version::HTTP_11,
        _ => return Err(HeadError::BadVersion),
    };
    let base = buf.as_ptr() as usize;
    let mut at = [(0u32, 0u32, 0u32, 0u32); MAX_RESPONSE_HEADERS];
    let count = resp.headers.len();
    let mut facts = Facts::default();
    for (h, slot) in resp.headers.iter().zip(at.iter_mut()) {
        let n = h.name.as_ptr() as usize - base;
        let v = h.value.as_ptr() as usize - base;
        *slot = (
            n as u32,
            (n + h.name.len()) as u32,
            v as u32,
            (v + h.value.len()) as u32,
        );
        facts.learn(h.name.as_bytes(), h.value)?;
    }
    let head = buf.split_to(len).freeze();
    // Room for what `proxy::headers::outbound` adds (Via), so it never rehashes.
    let mut headers = HeaderMap::with_capacity(count + 2);
    for &(n0, n1, v0, v1) in &at[..count] {
        let name = HeaderName::from_bytes(&head[n0 as usize..n1 as usize])
            .map_err(|_| HeadError::Malformed)?;
        let value = HeaderValue::from_maybe_shared(head.slice(v0 as usize..v1 as usize))
            .map_err(|_| HeadError::Malformed)?;
        headers.append(name, value);
    }
    let no_body = head_request
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    let framing = if no_body {
        Framing::None
    } else if facts.transfer_encoding {
        if facts.chunked_last {
            Framing::Chunked
        } else {
            Framing::Close
        }
    } else {
        match facts.content_length {
            Some(0) => Framing::None,
            Some(n) => Framing::Length(n),
            None => Framing::Close,
        }
    };
    let persistent = match version {
        Version::HTTP_11 => !facts.connection.close,
        _ => facts.connection.keep_alive && !facts.connection.close,
    };
    // A response with both framings may be a smuggling attempt (RFC 9112
    // §6.3): read it by Transfer-Encoding, then close.
    let ambiguous = facts.transfer_encoding && facts.content_length.is_some();
    Ok(Some(ResponseHead {
        status,
        version,
        headers,
        framing,
        reusable: persistent && framing != Framing::Close && !ambiguous,
    }))
}

#[derive(Default)]
struct Facts {
    content_length: Option<u64>,
    transfer_encoding: bool,
    chunked_last: bool,
    connection: ConnectionOptions,
}

impl Facts {
    fn learn(&mut self, name: &[u8], value: &[u8]) -> Result<(), HeadError> {
        match name.len() {
            10 if name.eq_ignore_ascii_case(b"connection") => self.connection.learn(value),
            14 if name.eq_ignore_ascii_case(b"content-length") => {
                // RFC 9110 §8.6: a list of identical values is one value.
                for item in value.split(|&b| b == b',') {
                    let n = parse_length(trim(item)).ok_or(HeadError::BadContentLength)?;
                    if self.content_length.is_some_and(|prev| prev != n) {
                        return Err(HeadError::BadContentLength);
                    }
                    self.content_length = Some(n);
                }
            }
            17 if name.eq_ignore_ascii_case(b"transfer-encoding") => {
                self.transfer_encoding = true;
                for t in tokens(value) {
                    self.chunked_last = t.eq_ignore_ascii_case(b"chunked");
                }
            }
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header;

    fn parse(raw: &str, head_request: bool) -> Result<Option<ResponseHead>, HeadError> {
        let mut buf = BytesMut::from(raw.as_bytes());
        parse_response(&mut buf, head_request)
    }

    fn head(raw: &str) -> ResponseHead {
        parse(raw, false).unwrap().unwrap()
    }

    #[test]
    fn response_framing_by_rfc_9112() {
        let h = head("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello");
        assert_eq!(h.framing, Framing::Length(5));
        assert!(h.reusable);
        let h = head("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert_eq!(h.framing, Framing::Chunked);
        assert!(h.reusable);
        let h = head("HTTP/1.1 200 OK\r\n\r\n");
        assert_eq!(h.framing, Framing::Close);
        assert!(!h.reusable);
        let h = head("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n");
        assert_eq!(h.framing, Framing::Close);
        let h = head("HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n");
        assert_eq!(h.framing, Framing::None);
        assert!(h.reusable);
        let h = head("HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n");
        assert_eq!(h.framing, Framing::None);
        let h = parse("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", true)
            .unwrap()
            .unwrap();
        assert_eq!(h.framing, Framing::None);
        assert_eq!(h.headers[header::CONTENT_LENGTH], "5");
        let h = head("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
        assert_eq!(h.framing, Framing::None);
        let h = head("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n");
        assert_eq!(h.framing, Framing::None);
    }

    #[test]
    fn both_framings_read_as_chunked_then_close() {
        let h = head("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert_eq!(h.framing, Framing::Chunked);
        assert!(!h.reusable);
    }

    #[test]
    fn content_length_lists_and_conflicts() {
        let h = head("HTTP/1.1 200 OK\r\nContent-Length: 4, 4\r\nContent-Length: 4\r\n\r\n");
        assert_eq!(h.framing, Framing::Length(4));
        for bad in [
            "HTTP/1.1 200 OK\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 1 2\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length:\r\n\r\n",
        ] {
            assert_eq!(
                parse(bad, false).unwrap_err(),
                HeadError::BadContentLength,
                "{bad}"
            );
        }
    }

    #[test]
    fn persistence() {
        assert!(
            !head("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n").reusable
        );
        assert!(!head("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n").reusable);
        assert!(
            head("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n").reusable
        );
    }

    #[test]
    fn partial_malformed_and_oversized() {
        assert!(
            parse("HTTP/1.1 200 OK\r\nContent-Le", false)
                .unwrap()
                .is_none()
        );
        assert_eq!(
            parse("HTTP/2.0 200 OK\r\n\r\n", false).unwrap_err(),
            HeadError::BadVersion
        );
        assert_eq!(
            parse("HTTP/1.1 2000 OK\r\n\r\n", false).unwrap_err(),
            HeadError::BadStatus
        );
        assert_eq!(
            parse("garbage\r\n\r\n", false).unwrap_err(),
            HeadError::BadVersion
        );
        assert_eq!(
            parse("HTTP/1.1 200 OK\r\nbad header\r\n\r\n", false).unwrap_err(),
            HeadError::Malformed
        );
        let big = format!(
            "HTTP/1.1 200 OK\r\nx: {}",
            "a".repeat(MAX_RESPONSE_HEAD + 1)
        );
        assert_eq!(parse(&big, false).unwrap_err(), HeadError::TooLarge);
        let many: String = (0..MAX_RESPONSE_HEADERS + 1)
            .map(|i| format!("x-{i}: 1\r\n"))
            .collect();
        assert_eq!(
            parse(&format!("HTTP/1.1 200 OK\r\n{many}\r\n"), false).unwrap_err(),
            HeadError::TooManyHeaders
        );
    }

    #[test]
    fn head_is_split_off_and_fields_keep_order() {
        let mut buf = BytesMut::from(&b"HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nset-cookie: b=2\r\nContent-Length: 2\r\n\r\nhiNEXT"[..]);
        let h = parse_response(&mut buf, false).unwrap().unwrap();
        assert_eq!(&buf[..], b"hiNEXT");
        let cookies: Vec<_> = h.headers.get_all(header::SET_COOKIE).iter().collect();
        assert_eq!(cookies, ["a=1", "b=2"]);
        assert_eq!(h.status, StatusCode::OK);
        assert_eq!(h.version, Version::HTTP_11);
    }
}
