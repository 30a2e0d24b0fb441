//! Which encoding the client accepts: `Accept-Encoding` (RFC 9110
//! §12.5.3) parsed into a small `Copy` value before the request moves on to
//! the backend. Bounded: one pass over the header bytes, no allocation.

use http::Method;
use http::header::{self, HeaderMap, HeaderValue};

/// What the request allows, captured before the request is moved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientGzip {
    /// Compression is off for this route, or the request cannot have a
    /// body to compress (HEAD): the response is not looked at.
    Off,
    /// The client does not accept gzip; the response may still get `Vary`.
    Refuses,
    Accepts,
}

impl ClientGzip {
    /// `enabled` is the route's switch, else the global one: when it is off
    /// this is the only branch the request path pays.
    pub fn capture(enabled: bool, method: &Method, headers: &HeaderMap) -> ClientGzip {
        if !enabled || method == Method::HEAD {
            return ClientGzip::Off;
        }
        let values = headers.get_all(header::ACCEPT_ENCODING).iter();
        if accepts_gzip(values.map(HeaderValue::as_bytes)) {
            ClientGzip::Accepts
        } else {
            ClientGzip::Refuses
        }
    }
}

/// A q-value in thousandths (RFC 9110 §12.4.2): `q=0.5` is 500.
type Q = u16;

/// Whether `Accept-Encoding` (all its field lines) lets us send gzip.
///
/// gzip's weight is that of `gzip` or `x-gzip` if listed, else that of `*`,
/// else zero. It must be above zero and not below an explicitly listed
/// `identity`: a client that ranks identity higher gets identity. Malformed
/// entries are ignored, never trusted: `gzip;q=oops` does not accept gzip.
pub fn accepts_gzip<'a>(values: impl Iterator<Item = &'a [u8]>) -> bool {
    let (mut gzip, mut star, mut identity): (Option<Q>, Option<Q>, Option<Q>) = (None, None, None);
    for value in values {
        for entry in value.split(|&b| b == b',') {
            let mut parts = entry.split(|&b| b == b';');
            let coding = trim(parts.next().unwrap_or_default());
            let Some(q) = weight(parts) else { continue };
            let slot =
                if coding.eq_ignore_ascii_case(b"gzip") || coding.eq_ignore_ascii_case(b"x-gzip") {
                    &mut gzip
                } else if coding == b"*" {
                    &mut star
                } else if coding.eq_ignore_ascii_case(b"identity") {
                    &mut identity
                } else {
                    continue;
                };
            // Listed twice: the more generous weight wins.
            *slot = Some(slot.map_or(q, |old| old.max(q)));
        }
    }
    let q = gzip.or(star).unwrap_or(0);
    q > 0 && identity.is_none_or(|i| q >= i)
}

/// The `q` parameter of one entry (1000 when absent), or `None` if malformed.
fn weight<'a>(params: impl Iterator<Item = &'a [u8]>) -> Option<Q> {
    let mut q = 1000;
    for p in params {
        let p = trim(p);
        if p.is_empty() {
            continue;
        }
        let (name, value) = match p.iter().position(|&b| b == b'=') {
            Some(i) => (trim(&p[..i]), trim(&p[i + 1..])),
            None => return None,
        };
        if name.eq_ignore_ascii_case(b"q") {
            q = parse_q(value)?;
        }
    }
    Some(q)
}

/// `0`, `0.5`, `1`, `1.000`; at most three decimals, never above 1.
fn parse_q(v: &[u8]) -> Option<Q> {
    let (int, frac) = match v.iter().position(|&b| b == b'.') {
        Some(i) => (&v[..i], &v[i + 1..]),
        None => (v, &b""[..]),
    };
    if frac.len() > 3 || !frac.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut thousandths: Q = 0;
    for i in 0..3 {
        thousandths = thousandths * 10 + frac.get(i).map_or(0, |d| Q::from(d - b'0'));
    }
    match int {
        b"0" => Some(thousandths),
        b"1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

pub(super) fn trim(s: &[u8]) -> &[u8] {
    s.trim_ascii()
}
