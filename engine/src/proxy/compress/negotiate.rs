//! Which encoding the client gets: `Accept-Encoding` (RFC 9110 §12.5.3)
//! weighed against the configured algorithms, into a small `Copy` value
//! captured before the request moves on to the backend. Bounded: one pass
//! over the header bytes, no allocation, whatever the header holds.

use http::Method;
use http::header::{self, HeaderMap, HeaderValue};
use std::fmt;

/// A content coding the proxy can produce.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Encoding {
    Gzip,
    /// Brotli (RFC 7932), the `br` token.
    Br,
    /// Zstandard (RFC 8878 and RFC 9659), the `zstd` token.
    Zstd,
}

impl Encoding {
    /// Every coding, in the order of metric labels.
    pub const ALL: [Encoding; 3] = [Encoding::Gzip, Encoding::Br, Encoding::Zstd];

    /// The token of `Accept-Encoding`, `Content-Encoding` and the config.
    pub fn token(self) -> &'static str {
        match self {
            Encoding::Gzip => "gzip",
            Encoding::Br => "br",
            Encoding::Zstd => "zstd",
        }
    }

    /// Its place in [`Encoding::ALL`] (an index into per-coding counters).
    pub fn index(self) -> usize {
        self as usize
    }

    /// The coding a config token names (`gzip`, `br`, `zstd`), any case.
    pub fn from_token(token: &str) -> Option<Encoding> {
        Encoding::ALL
            .into_iter()
            .find(|e| token.eq_ignore_ascii_case(e.token()))
    }

    /// The coding an `Accept-Encoding` entry names: also `x-gzip`, which
    /// RFC 9110 §8.4.1.3 says is to be treated as `gzip`.
    fn from_accept(coding: &[u8]) -> Option<Encoding> {
        if coding.eq_ignore_ascii_case(b"x-gzip") {
            return Some(Encoding::Gzip);
        }
        Encoding::ALL
            .into_iter()
            .find(|e| coding.eq_ignore_ascii_case(e.token().as_bytes()))
    }
}

impl fmt::Display for Encoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.token())
    }
}

/// What the request allows, captured before the request is moved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientEncoding {
    /// Compression is off for this route, or the request cannot have a
    /// body to compress (HEAD): the response is not looked at.
    Off,
    /// The client accepts none of the configured codings; the response may
    /// still get `Vary`.
    Refuses,
    Accepts(Encoding),
}

impl ClientEncoding {
    /// `enabled` is the route's switch, else the global one: when it is off
    /// this is the only branch the request path pays. `offered` is the
    /// server's preference order.
    pub fn capture(
        enabled: bool,
        offered: &[Encoding],
        method: &Method,
        headers: &HeaderMap,
    ) -> ClientEncoding {
        if !enabled || method == Method::HEAD {
            return ClientEncoding::Off;
        }
        let values = headers.get_all(header::ACCEPT_ENCODING).iter();
        match negotiate(values.map(HeaderValue::as_bytes), offered) {
            Some(e) => ClientEncoding::Accepts(e),
            None => ClientEncoding::Refuses,
        }
    }
}

/// A q-value in thousandths (RFC 9110 §12.4.2): `q=0.5` is 500.
type Q = u16;

/// The coding to send, from `Accept-Encoding` (all its field lines) and the
/// codings `offered` in the server's order of preference.
///
/// A coding's weight is that of its token if listed, else that of `*`,
/// else zero (not acceptable). The highest weight above zero wins, and
/// among equal weights the one offered first: `gzip, br` with
/// `offered = [br, gzip]` is brotli. The winner must not rank below an
/// explicitly listed `identity`: a client that prefers identity gets
/// identity (and `identity;q=0` changes nothing here: when no offered
/// coding is acceptable the body goes as it is, as nginx and Envoy do,
/// rather than a 406). Malformed entries are ignored, never trusted:
/// `br;q=oops` does not accept brotli. Listed twice, the more generous
/// weight counts.
pub fn negotiate<'a>(
    values: impl Iterator<Item = &'a [u8]>,
    offered: &[Encoding],
) -> Option<Encoding> {
    let mut listed: [Option<Q>; Encoding::ALL.len()] = [None; Encoding::ALL.len()];
    let (mut star, mut identity): (Option<Q>, Option<Q>) = (None, None);
    for value in values {
        for entry in value.split(|&b| b == b',') {
            let mut parts = entry.split(|&b| b == b';');
            let coding = trim(parts.next().unwrap_or_default());
            let Some(q) = weight(parts) else { continue };
            let slot = if let Some(e) = Encoding::from_accept(coding) {
                &mut listed[e.index()]
            } else if coding == b"*" {
                &mut star
            } else if coding.eq_ignore_ascii_case(b"identity") {
                &mut identity
            } else {
                continue;
            };
            *slot = Some(slot.map_or(q, |old| old.max(q)));
        }
    }
    let mut best: Option<(Encoding, Q)> = None;
    for &e in offered {
        let q = listed[e.index()].or(star).unwrap_or(0);
        if q > 0 && best.is_none_or(|(_, b)| q > b) {
            best = Some((e, q));
        }
    }
    let (e, q) = best?;
    identity.is_none_or(|i| q >= i).then_some(e)
}

/// Whether `Accept-Encoding` lets us send gzip (with gzip the only coding
/// offered): [`negotiate`] as it was before brotli and zstd.
pub fn accepts_gzip<'a>(values: impl Iterator<Item = &'a [u8]>) -> bool {
    negotiate(values, &[Encoding::Gzip]).is_some()
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
