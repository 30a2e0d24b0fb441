//! Target `proxy_protocol`: `sluice::server::proxy_protocol::parse`, the
//! PROXY v1/v2 header a balancer puts before the client's first byte,
//! parsed on every connection of a `proxy_protocol` listener.
//!
//! Defends against: panics and out-of-bounds reads on short or hostile
//! headers (the bug class of CVE-2019-10097 and of many v2 parsers that
//! trusted the length field); reading past the header (a complete header
//! parses the same with or without the bytes after it, and its length is
//! at most what was given); unbounded waiting ("need more" is always beyond
//! what was given and within the v1/v2 limits); a refusal that more bytes
//! could turn into an acceptance (the reader refuses as soon as it sees
//! one); and drift between what we parse and what we send
//! (`upstream::proxy_header` re-encodes the addresses, which parse back).

use sluice::server::proxy_protocol::{MAX_V1_LEN, MAX_V2_LEN, Need, Parsed, Version, parse};
use sluice::upstream::proxy_header::{Header, SendVersion};
use std::net::SocketAddr;

/// Panics if `data` breaks an invariant of this target.
pub fn check(data: &[u8]) {
    match parse(data) {
        Ok(p) => complete(data, p),
        Err(Ok(Need(n))) => {
            assert!(n > data.len(), "asks for {n} with {} given", data.len());
            assert!(n <= MAX_V2_LEN, "asks for {n}");
        }
        Err(Err(e)) => {
            let mut more = data.to_vec();
            more.extend_from_slice(b"\r\n\0\0\0\0");
            assert!(
                matches!(parse(&more), Err(Err(_))),
                "{e:?} became something else with more bytes"
            );
        }
    }
}

fn complete(data: &[u8], p: Parsed) {
    assert!(p.len <= data.len());
    let max = match p.version {
        Version::V1 => MAX_V1_LEN,
        Version::V2 => MAX_V2_LEN,
    };
    assert!(p.len <= max, "{p:?}");
    let header = &data[..p.len];
    assert_eq!(parse(header), Ok(p), "depends on bytes after it");
    // A few strict prefixes: each asks for more, within the header.
    for cut in [0, 1, p.len / 2, p.len.saturating_sub(1)] {
        if cut < p.len {
            match parse(&header[..cut]) {
                Err(Ok(Need(n))) => assert!(n > cut && n <= p.len, "prefix {cut}: {n}"),
                other => panic!("prefix {cut} of {p:?}: {other:?}"),
            }
        }
    }
    let Some((src, dst)) = p.addrs else {
        return;
    };
    let canon = |s: SocketAddr| (s.ip().to_canonical(), s.port());
    for v in [SendVersion::V1, SendVersion::V2] {
        let sent = Header::proxied(v, src, dst);
        let back = parse(sent.as_bytes()).expect("our own header parses");
        assert_eq!(back.len, sent.as_bytes().len());
        let (s, d) = back.addrs.expect("addresses");
        assert_eq!((canon(s), canon(d)), (canon(src), canon(dst)), "{v:?}");
    }
}
