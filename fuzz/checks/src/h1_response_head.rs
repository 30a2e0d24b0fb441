//! Target `h1_response_head`: `sluice::http1::response::parse_response`,
//! the head of every response a backend sends. A backend is not trusted
//! more than a client: it may be compromised, misconfigured, or another
//! tenant's, and a desync on a pooled connection hands one client's
//! response to another.
//!
//! Defends against: panics (the offset bookkeeping between httparse's
//! slices and the frozen head) on hostile bytes; framing that a second
//! parser could read differently: `Length(n)` only when every
//! Content-Length item is `n` and there is no Transfer-Encoding, `Chunked`
//! only when chunked is the final coding, `Close` when neither frames the
//! body, no body at all for HEAD, 1xx, 204 and 304, and a connection is
//! reused only when its framing is exact (never after both framings, never
//! read-to-close, never against `Connection: close`, HTTP/1.0 only with
//! keep-alive); the limits (`MAX_RESPONSE_HEAD`, `MAX_RESPONSE_HEADERS`);
//! a strict prefix of an accepted head asks for more bytes instead of being
//! accepted or refused; and every refusal is the backend's fault, a 502.
//!
//! The input is the byte stream from the backend, parsed as the answer to
//! a GET and to a HEAD.

use bytes::BytesMut;
use http::{StatusCode, Version, header};
use sluice::http1::Framing;
use sluice::http1::response::{MAX_RESPONSE_HEAD, MAX_RESPONSE_HEADERS, parse_response};

/// Panics if `data` breaks an invariant of this target.
pub fn check(data: &[u8]) {
    for head_request in [false, true] {
        one(data, head_request);
    }
}

fn one(data: &[u8], head_request: bool) {
    let mut buf = BytesMut::from(data);
    let head = match parse_response(&mut buf, head_request) {
        Ok(None) => {
            assert_eq!(buf.len(), data.len(), "Ok(None) must not consume");
            assert!(data.len() <= MAX_RESPONSE_HEAD, "waits past the head limit");
            return;
        }
        Err(e) => {
            // The connection is dropped: what was consumed does not matter.
            assert_eq!(e.kind().status(), StatusCode::BAD_GATEWAY, "{e:?}");
            return;
        }
        Ok(Some(head)) => head,
    };
    let consumed = data.len() - buf.len();
    assert!(consumed > 0 && consumed <= MAX_RESPONSE_HEAD, "{consumed}");
    assert_eq!(&buf[..], &data[consumed..], "what follows the head stays");
    assert!(head.headers.len() <= MAX_RESPONSE_HEADERS);
    assert!(
        head.version == Version::HTTP_11 || head.version == Version::HTTP_10,
        "{:?}",
        head.version
    );

    let list = |name| -> Vec<Vec<u8>> {
        head.headers
            .get_all(name)
            .iter()
            .flat_map(|v| v.as_bytes().split(|&b| b == b','))
            .map(|t| ows_trim(t).to_ascii_lowercase())
            .filter(|t| !t.is_empty())
            .collect()
    };
    let has_te = head.headers.contains_key(header::TRANSFER_ENCODING);
    let codings = list(header::TRANSFER_ENCODING);
    let chunked_last = codings.last().is_some_and(|c| c == b"chunked");
    let lengths: Vec<&[u8]> = head
        .headers
        .get_all(header::CONTENT_LENGTH)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .map(ows_trim)
        .collect();
    let bodiless = head_request
        || head.status.is_informational()
        || head.status == StatusCode::NO_CONTENT
        || head.status == StatusCode::NOT_MODIFIED;

    match head.framing {
        _ if bodiless => assert_eq!(head.framing, Framing::None, "{}", head.status),
        Framing::Length(n) => {
            assert!(n > 0 && !has_te, "Length({n}) with Transfer-Encoding");
            // Leading zeros are digits too: compare numbers, not text.
            assert!(
                lengths.iter().all(|l| {
                    std::str::from_utf8(l)
                        .ok()
                        .and_then(|s| s.parse::<u64>().ok())
                        == Some(n)
                        && l.iter().all(u8::is_ascii_digit)
                }),
                "Length({n}) from {lengths:?}"
            );
        }
        Framing::Chunked => assert!(has_te && chunked_last, "chunked from {codings:?}"),
        Framing::Close => {
            if has_te {
                assert!(!chunked_last, "read to close though chunked is last");
            } else {
                assert!(lengths.is_empty(), "read to close with {lengths:?}");
            }
        }
        Framing::None => {
            assert!(!has_te, "no body with Transfer-Encoding");
            assert!(
                !lengths.is_empty()
                    && lengths
                        .iter()
                        .all(|l| !l.is_empty() && l.iter().all(|&b| b == b'0')),
                "no body from {lengths:?}"
            );
        }
    }

    if head.reusable {
        let connection = list(header::CONNECTION);
        assert!(head.framing != Framing::Close, "reused after read-to-close");
        assert!(!has_te || lengths.is_empty(), "reused after both framings");
        assert!(
            !connection.iter().any(|t| t == b"close"),
            "reused against Connection: close"
        );
        if head.version == Version::HTTP_10 {
            assert!(
                connection.iter().any(|t| t == b"keep-alive"),
                "HTTP/1.0 reused without keep-alive"
            );
        }
    }

    // A strict prefix of an accepted head is incomplete, never a head.
    for cut in [consumed - 1, consumed / 2] {
        let mut partial = BytesMut::from(&data[..cut]);
        match parse_response(&mut partial, head_request) {
            Ok(None) => {}
            other => panic!("prefix of {consumed} cut at {cut}: {other:?}"),
        }
    }
}

/// RFC 9110 OWS: spaces and tabs only.
fn ows_trim(s: &[u8]) -> &[u8] {
    let ows = |b: &u8| *b == b' ' || *b == b'\t';
    let start = s.iter().position(|b| !ows(b)).unwrap_or(s.len());
    let end = s.iter().rposition(|b| !ows(b)).map_or(start, |e| e + 1);
    &s[start..end]
}
