//! The PROXY protocol header (HAProxy's `doc/proxy-protocol.txt`, v1 text
//! and v2 binary) that an L4 balancer puts before the client's first byte:
//! who the client really is. This module is the parser, pure and strict:
//! no allocation, no reading, a slice in and [`Parsed`] or [`Need`] or a
//! [`PpError`] out. [`accept`] reads it off a new connection.
//!
//! Why our own parser and not the `ppp` crate: it is ~200 lines on the
//! accept path, where we want it bounded (v1 ≤ 107 bytes, v2 ≤
//! [`MAX_V2_LEN`]), allocation-free, telling "incomplete" apart from
//! "invalid" on every prefix (so the reader never reads past the header),
//! and fuzzed in our own harness (`fuzz/checks/src/proxy_protocol.rs`).
//!
//! Strict: every v1 field exactly as the spec writes it (single spaces, no
//! leading zeros, TCP4 carries IPv4 and TCP6 IPv6, CRLF); v2 version 2
//! only, commands LOCAL and PROXY only, the families and protocols the spec
//! lists only, an address block long enough for its family, and TLVs that
//! tile the rest of the block exactly (they are skipped, not kept).

pub mod accept;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The v2 signature, the first 12 bytes of every v2 header.
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

/// The longest v1 line, CRLF included (the spec's worst case).
pub const MAX_V1_LEN: usize = 107;

/// The longest v2 header we accept: the 16 fixed bytes, the longest address
/// block (two AF_UNIX paths, 216 bytes) and 4 KiB of TLVs. The format allows
/// 64 KiB; balancers send a few dozen bytes of TLVs (AWS, GCP and Azure IDs,
/// HAProxy's SSL block).
pub const MAX_V2_LEN: usize = 16 + 216 + 4096;

/// What a complete header says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Parsed {
    pub version: Version,
    /// `Some((source, destination))`: the client and the address it
    /// connected to. `None` for v2 LOCAL, v1 UNKNOWN, and families that
    /// carry no IP (AF_UNSPEC, AF_UNIX): the connection's own addresses
    /// stand (a balancer's health check).
    pub addrs: Option<(SocketAddr, SocketAddr)>,
    /// The header's length: where the client's own bytes start.
    pub len: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    V1,
    V2,
}

/// More bytes are needed: at least this many in all (a lower bound; the
/// reader may be given more, never past the header's end).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Need(pub usize);

/// Why a header is refused; each is one `reason` label in the log and the
/// refusal counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PpError {
    #[error("no PROXY protocol header")]
    Missing,
    #[error("PROXY protocol version not accepted on this listener")]
    WrongVersion,
    #[error("PROXY v1 line without CRLF in 107 bytes")]
    V1TooLong,
    #[error("malformed PROXY v1 line")]
    V1Syntax,
    #[error("PROXY v2 version nibble is not 2")]
    V2Version,
    #[error("PROXY v2 command is neither LOCAL nor PROXY")]
    V2Command,
    #[error("PROXY v2 family or protocol not in the spec")]
    V2Family,
    #[error("PROXY v2 address block shorter than its family needs")]
    V2AddressTooShort,
    #[error("PROXY v2 header longer than the limit")]
    V2TooLong,
    #[error("PROXY v2 TLVs do not fill the header exactly")]
    V2Tlv,
}

impl PpError {
    /// The `reason` label of `sluice_proxy_protocol_refused_total`.
    pub fn reason(self) -> &'static str {
        match self {
            PpError::Missing => "missing",
            PpError::WrongVersion => "wrong_version",
            PpError::V1TooLong => "v1_too_long",
            PpError::V1Syntax => "v1_syntax",
            PpError::V2Version => "v2_version",
            PpError::V2Command => "v2_command",
            PpError::V2Family => "v2_family",
            PpError::V2AddressTooShort => "v2_address",
            PpError::V2TooLong => "v2_too_long",
            PpError::V2Tlv => "v2_tlv",
        }
    }
}

/// Parses the header at the start of `buf`. `Err(Ok(Need))` asks for more
/// bytes: `buf` is a prefix of a header that may still be valid, so every
/// byte of it belongs to the header. Bytes after the header are not looked
/// at.
pub fn parse(buf: &[u8]) -> Result<Parsed, Result<Need, PpError>> {
    // Decide the version on as few bytes as tell them apart: v1 starts
    // `PROXY `, v2 with its signature; anything else is not a header.
    let v1 = b"PROXY ";
    let n = buf.len().min(V2_SIGNATURE.len());
    if buf[..n] == V2_SIGNATURE[..n] && !buf.is_empty() {
        if buf.len() < 16 {
            return Err(Ok(Need(16)));
        }
        return parse_v2(buf);
    }
    let n = buf.len().min(v1.len());
    if buf[..n] == v1[..n] {
        if buf.is_empty() {
            return Err(Ok(Need(1)));
        }
        return parse_v1(buf);
    }
    Err(Err(PpError::Missing))
}

fn parse_v1(buf: &[u8]) -> Result<Parsed, Result<Need, PpError>> {
    let window = &buf[..buf.len().min(MAX_V1_LEN)];
    let Some(cr) = window.windows(2).position(|w| w == b"\r\n") else {
        // A lone CR or LF is never a line end: an error now rather than
        // after 107 bytes (a CR last may still get its LF).
        let bare = window.iter().position(|&b| b == b'\r' || b == b'\n');
        return match bare {
            Some(i) if i + 1 < window.len() || window[i] == b'\n' => Err(Err(PpError::V1Syntax)),
            _ if window.len() >= MAX_V1_LEN => Err(Err(PpError::V1TooLong)),
            _ => Err(Ok(Need(window.len() + 1))),
        };
    };
    let line = &buf[6..cr];
    // A lone CR or LF before the CRLF, even in UNKNOWN's ignored rest: the
    // same refusal the line got before its CRLF arrived.
    if line.iter().any(|&b| b == b'\r' || b == b'\n') {
        return Err(Err(PpError::V1Syntax));
    }
    let len = cr + 2;
    let version = Version::V1;
    // `UNKNOWN`: the rest of the line is ignored (the spec says so).
    if line.starts_with(b"UNKNOWN") && (line.len() == 7 || line[7] == b' ') {
        return Ok(Parsed {
            version,
            addrs: None,
            len,
        });
    }
    let mut fields = line.split(|&b| b == b' ');
    let family = fields.next();
    let mut next = || fields.next().ok_or(Err(PpError::V1Syntax));
    let (src, dst, sport, dport) = (next()?, next()?, next()?, next()?);
    if fields.next().is_some() {
        return Err(Err(PpError::V1Syntax));
    }
    let (src, dst) = match family {
        Some(b"TCP4") => (IpAddr::V4(v4(src)?), IpAddr::V4(v4(dst)?)),
        Some(b"TCP6") => (IpAddr::V6(v6(src)?), IpAddr::V6(v6(dst)?)),
        _ => return Err(Err(PpError::V1Syntax)),
    };
    Ok(Parsed {
        version,
        addrs: Some((
            SocketAddr::new(src, port(sport)?),
            SocketAddr::new(dst, port(dport)?),
        )),
        len,
    })
}

type Field<T> = Result<T, Result<Need, PpError>>;

/// Dotted quad, each part 0..=255 with no leading zero (std's parser
/// refuses those too; it is held to it by the tests).
fn v4(s: &[u8]) -> Field<Ipv4Addr> {
    std::str::from_utf8(s)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or(Err(PpError::V1Syntax))
}

/// Hex groups with at most one `::` (no embedded dotted quad, no zone).
fn v6(s: &[u8]) -> Field<Ipv6Addr> {
    if !s.iter().all(|b| b.is_ascii_hexdigit() || *b == b':') {
        return Err(Err(PpError::V1Syntax));
    }
    std::str::from_utf8(s)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or(Err(PpError::V1Syntax))
}

/// 0..=65535 in decimal, no sign, no leading zero.
fn port(s: &[u8]) -> Field<u16> {
    let ok = !s.is_empty()
        && s.len() <= 5
        && s.iter().all(u8::is_ascii_digit)
        && (s[0] != b'0' || s.len() == 1);
    if !ok {
        return Err(Err(PpError::V1Syntax));
    }
    let n = s.iter().fold(0u32, |n, d| n * 10 + u32::from(d - b'0'));
    u16::try_from(n).map_err(|_| Err(PpError::V1Syntax))
}

fn parse_v2(buf: &[u8]) -> Result<Parsed, Result<Need, PpError>> {
    let ver_cmd = buf[12];
    let fam = buf[13];
    let block = usize::from(u16::from_be_bytes([buf[14], buf[15]]));
    let len = 16 + block;
    if ver_cmd >> 4 != 2 {
        return Err(Err(PpError::V2Version));
    }
    let local = match ver_cmd & 0x0f {
        0 => true,
        1 => false,
        _ => return Err(Err(PpError::V2Command)),
    };
    // Family (UNSPEC, INET, INET6, UNIX) and protocol (UNSPEC, STREAM,
    // DGRAM): anything else is refused, even under LOCAL.
    let (family, protocol) = (fam >> 4, fam & 0x0f);
    if family > 3 || protocol > 2 {
        return Err(Err(PpError::V2Family));
    }
    if len > MAX_V2_LEN {
        return Err(Err(PpError::V2TooLong));
    }
    // The spec: never parse an address before the whole block is here.
    if buf.len() < len {
        return Err(Ok(Need(len)));
    }
    // LOCAL (a balancer's own health check), and what we do not carry
    // (UNSPEC, AF_UNIX, datagrams: the spec's fallback to UNSPEC): the
    // block is skipped whole and the socket's addresses stand.
    if local || protocol != 1 || !matches!(family, 1 | 2) {
        return Ok(Parsed {
            version: Version::V2,
            addrs: None,
            len,
        });
    }
    let need = if family == 1 { 12 } else { 36 };
    if block < need {
        return Err(Err(PpError::V2AddressTooShort));
    }
    let body = &buf[16..len];
    tlvs(&body[need..])?;
    let port = |at: usize| u16::from_be_bytes(octets::<2>(body, at));
    let addrs = if family == 1 {
        let ip = |at: usize| IpAddr::V4(Ipv4Addr::from(octets::<4>(body, at)));
        (
            SocketAddr::new(ip(0), port(8)),
            SocketAddr::new(ip(4), port(10)),
        )
    } else {
        let ip = |at: usize| IpAddr::V6(Ipv6Addr::from(octets::<16>(body, at)));
        (
            SocketAddr::new(ip(0), port(32)),
            SocketAddr::new(ip(16), port(34)),
        )
    };
    Ok(Parsed {
        version: Version::V2,
        addrs: Some(addrs),
        len,
    })
}

/// `N` bytes of `body` from `at` (the caller checked the block's length).
fn octets<const N: usize>(body: &[u8], at: usize) -> [u8; N] {
    let mut out = [0; N];
    out.copy_from_slice(&body[at..at + N]);
    out
}

/// Each TLV is a type byte, a 2-byte length and that many bytes; together
/// they must end exactly where the header ends.
fn tlvs(mut rest: &[u8]) -> Field<()> {
    while !rest.is_empty() {
        if rest.len() < 3 {
            return Err(Err(PpError::V2Tlv));
        }
        let n = 3 + usize::from(u16::from_be_bytes([rest[1], rest[2]]));
        if rest.len() < n {
            return Err(Err(PpError::V2Tlv));
        }
        rest = &rest[n..];
    }
    Ok(())
}

#[cfg(test)]
mod tests;
