//! Target `compress_accept_encoding`: `sluice::proxy::compress::negotiate`
//! (with `accepts_gzip`, its gzip-only form) and `ClientEncoding::capture`,
//! the Accept-Encoding q-value decision made on every request when
//! compression is on, for every order of the offered codings.
//!
//! Defends against: panics and arithmetic overflow in the q-value parser
//! (`q=0.999`, `q=1.000`, digits out of range, empty parameters); sending a
//! coding the client did not allow (without its token, `x-gzip` for gzip,
//! or `*` in the field the answer is never that coding) or that the server
//! did not offer; a tie broken against the server's order (swapping two
//! offered codings changes the answer only when both tie, and then the
//! first offered wins); and a decision that depends on how the list is
//! split into field lines.
//!
//! The input is split at `\n` into Accept-Encoding field lines.

use http::Method;
use http::header::{ACCEPT_ENCODING, HeaderMap, HeaderValue};
use sluice::proxy::compress::{ClientEncoding, Encoding, accepts_gzip, negotiate};

/// Every order of every non-empty subset of the codings.
fn offers() -> Vec<Vec<Encoding>> {
    let [g, b, z] = Encoding::ALL;
    let mut all = vec![vec![g], vec![b], vec![z]];
    for (x, y) in [(g, b), (g, z), (b, z)] {
        all.push(vec![x, y]);
        all.push(vec![y, x]);
    }
    for p in [
        [g, b, z],
        [g, z, b],
        [b, g, z],
        [b, z, g],
        [z, g, b],
        [z, b, g],
    ] {
        all.push(p.to_vec());
    }
    all
}

/// Panics if `data` breaks an invariant of this target.
pub fn check(data: &[u8]) {
    let lines: Vec<&[u8]> = data.split(|&b| b == b'\n').collect();
    let joined = lines.join(&b","[..]);
    let lower = data.to_ascii_lowercase();
    let named = |e: Encoding| {
        let t = e.token().as_bytes();
        data.contains(&b'*') || lower.windows(t.len()).any(|w| w == t)
    };
    for offered in offers() {
        let got = negotiate(lines.iter().copied(), &offered);
        if let Some(e) = got {
            assert!(offered.contains(&e), "{e} was not offered");
            assert!(named(e), "{e} accepted without its token or *");
            // Acceptable in a crowd, acceptable alone.
            assert_eq!(negotiate(lines.iter().copied(), &[e]), Some(e));
        }
        // One field line or several: the same list (RFC 9110 §5.3).
        assert_eq!(got, negotiate(std::iter::once(&joined[..]), &offered));
        if let [a, b] = offered[..] {
            let swapped = negotiate(lines.iter().copied(), &[b, a]);
            if swapped != got {
                // Only a tie turns on the order, and the first offered wins it.
                assert_eq!((got, swapped), (Some(a), Some(b)));
            }
        }
    }
    let yes = accepts_gzip(lines.iter().copied());
    assert_eq!(
        yes,
        negotiate(lines.iter().copied(), &[Encoding::Gzip]).is_some()
    );
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
    let offered = Encoding::ALL;
    let captured = ClientEncoding::capture(true, &offered, &Method::GET, &headers);
    if all_valid {
        let want = match negotiate(lines.iter().copied(), &offered) {
            Some(e) => ClientEncoding::Accepts(e),
            None => ClientEncoding::Refuses,
        };
        assert_eq!(captured, want);
    }
    assert_eq!(
        ClientEncoding::capture(true, &offered, &Method::HEAD, &headers),
        ClientEncoding::Off
    );
    assert_eq!(
        ClientEncoding::capture(false, &offered, &Method::GET, &headers),
        ClientEncoding::Off
    );
}
