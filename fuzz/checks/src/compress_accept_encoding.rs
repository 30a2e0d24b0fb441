//! Target `compress_accept_encoding`: `sluice::proxy::compress::
//! accepts_gzip` and `ClientGzip::capture`, the Accept-Encoding q-value
//! decision made on every request when compression is on.
//!
//! Defends against: panics and arithmetic overflow in the q-value parser
//! (`q=0.999`, `q=1.000`, digits out of range, empty parameters), and
//! sending gzip to a client that did not allow it: without `gzip`, `x-gzip`
//! or `*` in the field, the answer is no, as it is when gzip's weight is 0;
//! the decision does not depend on how the list is split into field lines.
//!
//! The input is split at `\n` into Accept-Encoding field lines.

use http::Method;
use http::header::{ACCEPT_ENCODING, HeaderMap, HeaderValue};
use sluice::proxy::compress::{ClientGzip, accepts_gzip};

/// Panics if `data` breaks an invariant of this target.
pub fn check(data: &[u8]) {
    let lines: Vec<&[u8]> = data.split(|&b| b == b'\n').collect();
    let yes = accepts_gzip(lines.iter().copied());
    let lower = data.to_ascii_lowercase();
    if yes {
        assert!(
            lower.windows(4).any(|w| w == b"gzip") || data.contains(&b'*'),
            "gzip accepted without gzip or *"
        );
    }
    // One field line or several: the same list (RFC 9110 §5.3).
    let joined = lines.join(&b","[..]);
    assert_eq!(yes, accepts_gzip(std::iter::once(&joined[..])));
    if lower.trim_ascii() == b"gzip;q=0" {
        assert!(!yes);
    }

    let mut headers = HeaderMap::new();
    let mut all_valid = true;
    for line in &lines {
        match HeaderValue::from_bytes(line) {
            Ok(v) => {
                headers.append(ACCEPT_ENCODING, v);
            }
            Err(_) => all_valid = false,
        }
    }
    let captured = ClientGzip::capture(true, &Method::GET, &headers);
    if all_valid {
        let want = if yes {
            ClientGzip::Accepts
        } else {
            ClientGzip::Refuses
        };
        assert_eq!(captured, want);
    }
    assert_eq!(
        ClientGzip::capture(true, &Method::HEAD, &headers),
        ClientGzip::Off
    );
    assert_eq!(
        ClientGzip::capture(false, &Method::GET, &headers),
        ClientGzip::Off
    );
}
