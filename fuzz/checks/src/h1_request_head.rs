//! Target `h1_request_head`: `sluice::http1::request::parse`, the
//! request-head parser every HTTP/1.x client byte goes through first.
//!
//! Defends against: panics (slicing, offset arithmetic, the stack/heap
//! header-slot switch) on hostile bytes, and request smuggling. A head the
//! parser accepts must have one unambiguous framing: never Content-Length
//! together with Transfer-Encoding, chunked only as the final coding on
//! HTTP/1.1, every Content-Length value equal, exactly one Host on HTTP/1.1.
//! Limits hold (header count, head size, target length), a strict prefix of
//! an accepted head asks for more bytes instead of being accepted or
//! refused, and every refusal maps to a 4xx status.
//!
//! The input is the raw byte stream; it is parsed under three limit sets
//! (tight, the defaults, and more header slots than fit on the stack).

use bytes::BytesMut;
use http::{Version, header};
use sluice::config::Limits;
use sluice::http1::Framing;
use sluice::http1::request::parse;

/// Panics if `data` breaks an invariant of this target.
pub fn check(data: &[u8]) {
    let tight = Limits {
        max_header_bytes: 512,
        max_headers: 8,
        max_uri_bytes: 64,
        ..Limits::default()
    };
    let wide = Limits {
        max_header_bytes: 64 * 1024,
        max_headers: 160,
        max_uri_bytes: 16 * 1024,
        ..Limits::default()
    };
    for limits in [tight, Limits::default(), wide] {
        one(data, &limits);
    }
}

fn one(data: &[u8], limits: &Limits) {
    let mut buf = BytesMut::from(data);
    let head = match parse(&mut buf, limits) {
        Ok(None) => {
            assert_eq!(buf.len(), data.len(), "Ok(None) must not consume");
            return;
        }
        Err(e) => {
            assert!(
                e.kind().status().is_client_error(),
                "{e:?} -> {}",
                e.kind().status()
            );
            // The connection answers and closes after an error: what was
            // consumed does not matter (a bad target is found after the split).
            return;
        }
        Ok(Some(head)) => head,
    };
    let consumed = data.len() - buf.len();
    assert!(consumed > 0 && consumed <= limits.max_header_bytes);
    assert_eq!(&buf[..], &data[consumed..], "what follows the head stays");

    // Header count: HeaderMap::len counts every field line.
    assert!(
        head.headers.len() <= limits.max_headers,
        "{} fields > max_headers {}",
        head.headers.len(),
        limits.max_headers
    );

    let has_te = head.headers.contains_key(header::TRANSFER_ENCODING);
    let lengths: Vec<_> = head
        .headers
        .get_all(header::CONTENT_LENGTH)
        .iter()
        .collect();
    match head.framing {
        Framing::Length(n) => {
            assert!(!has_te, "Content-Length framing with Transfer-Encoding");
            assert!(n > 0);
            assert_eq!(lengths.len(), 1, "one normalised Content-Length");
            // One decimal number equal to the framing (leading zeros are
            // valid 1*DIGIT and forwarded as sent).
            let v = lengths[0].to_str().expect("digits");
            assert_eq!(v.parse::<u64>().ok(), Some(n), "Content-Length {v:?}");
        }
        Framing::Chunked => {
            assert!(lengths.is_empty(), "chunked framing with Content-Length");
            assert_eq!(head.version, Version::HTTP_11, "chunked on HTTP/1.0");
            // The last coding of the last Transfer-Encoding line is `chunked`,
            // and `chunked` appears exactly once.
            let codings: Vec<Vec<u8>> = head
                .headers
                .get_all(header::TRANSFER_ENCODING)
                .iter()
                .flat_map(|v| v.as_bytes().split(|&b| b == b','))
                .map(|t| t.trim_ascii().to_ascii_lowercase())
                .filter(|t| !t.is_empty())
                .collect();
            assert_eq!(codings.last().map(Vec::as_slice), Some(&b"chunked"[..]));
            assert_eq!(codings.iter().filter(|c| c == &b"chunked").count(), 1);
        }
        Framing::Close => panic!("a request read until close"),
        Framing::None => {
            assert!(!has_te, "no-body framing with Transfer-Encoding");
            for v in &lengths {
                assert!(
                    v.as_bytes().split(|&b| b == b',').all(|t| {
                        let t = t.trim_ascii();
                        !t.is_empty() && t.iter().all(|&b| b == b'0')
                    }),
                    "no-body framing with Content-Length {v:?}"
                );
            }
        }
    }
    let hosts = head.headers.get_all(header::HOST).iter().count();
    match head.version {
        Version::HTTP_11 => assert_eq!(hosts, 1, "HTTP/1.1 needs exactly one Host"),
        Version::HTTP_10 => assert!(hosts <= 1, "more than one Host"),
        v => panic!("accepted version {v:?}"),
    }
    if head.upgrade || head.expect_continue {
        assert_eq!(head.version, Version::HTTP_11);
    }

    // A strict prefix of an accepted head is incomplete, never a head.
    for cut in [consumed - 1, consumed / 2] {
        let mut partial = BytesMut::from(&data[..cut]);
        match parse(&mut partial, limits) {
            Ok(None) => {}
            other => panic!("prefix of {consumed} cut at {cut}: {other:?}"),
        }
    }
}
