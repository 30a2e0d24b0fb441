//! The parser against the spec's examples and every refusal; each prefix
//! of a valid header asks for more, and bytes after it are never read.

use super::*;

fn addrs(src: &str, dst: &str) -> Option<(SocketAddr, SocketAddr)> {
    Some((src.parse().unwrap(), dst.parse().unwrap()))
}

fn ok(buf: &[u8]) -> Parsed {
    parse(buf).unwrap_or_else(|e| panic!("{:?}: {e:?}", String::from_utf8_lossy(buf)))
}

fn refused(buf: &[u8]) -> PpError {
    match parse(buf) {
        Err(Err(e)) => e,
        other => panic!("{:?}: {other:?}", String::from_utf8_lossy(buf)),
    }
}

/// A v2 header: command, family byte, address block and TLVs.
pub fn v2(cmd: u8, fam: u8, block: &[u8]) -> Vec<u8> {
    let mut h = V2_SIGNATURE.to_vec();
    h.push(0x20 | cmd);
    h.push(fam);
    h.extend_from_slice(&u16::try_from(block.len()).unwrap().to_be_bytes());
    h.extend_from_slice(block);
    h
}

fn v4_block() -> Vec<u8> {
    let mut b = vec![192, 0, 2, 7, 10, 0, 0, 1];
    b.extend_from_slice(&51000u16.to_be_bytes());
    b.extend_from_slice(&443u16.to_be_bytes());
    b
}

#[test]
fn v1_spec_lines() {
    let p = ok(b"PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\nGET");
    assert_eq!(p.version, Version::V1);
    assert_eq!(p.len, 56);
    assert_eq!(
        p.addrs,
        addrs("255.255.255.255:65535", "255.255.255.255:65535")
    );
    let line = b"PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
    assert_eq!(ok(line).len, 104);
    let p = ok(b"PROXY TCP6 2001:db8::1 ::1 0 8080\r\n");
    assert_eq!(p.addrs, addrs("[2001:db8::1]:0", "[::1]:8080"));
    let p = ok(b"PROXY UNKNOWN\r\n");
    assert_eq!((p.addrs, p.len), (None, 15));
    // UNKNOWN: the rest of the line is ignored, up to the 107-byte worst case.
    let worst = format!(
        "PROXY UNKNOWN {0} {0} 65535 65535\r\n",
        "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"
    );
    assert_eq!(worst.len(), MAX_V1_LEN);
    assert_eq!(ok(worst.as_bytes()).addrs, None);
}

#[test]
fn v1_refusals() {
    for bad in [
        &b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n"[..],  // bare LF
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX\r\n",  // lone CR
        b"PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n",    // two spaces
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n",    // trailing space
        b"PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n",    // leading zero
        b"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n",    // leading zero port
        b"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n", // port range
        b"PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n",    // sign
        b"PROXY TCP4 ::1 ::1 1 2\r\n",             // family mismatch
        b"PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n",     // family mismatch
        b"PROXY TCP6 ::ffff:1.2.3.4 ::1 1 2\r\n",  // dotted quad in v6
        b"PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n",    // zone
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",       // a field short
        b"PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n",     // protocol
        b"PROXY UNKNOWNX\r\n",                     // not UNKNOWN
        b"PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n",     // case
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\x00\r\n",
        b"PROXY UNKNOWN junk\r\r\n", // lone CR in the ignored rest
        b"PROXY UNKNOWN\n\r\n",      // lone LF // junk
    ] {
        assert_eq!(
            refused(bad),
            PpError::V1Syntax,
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
    let long = [b"PROXY UNKNOWN ".as_slice(), &[b'a'; 100]].concat();
    assert_eq!(refused(&long), PpError::V1TooLong);
}

#[test]
fn not_a_header() {
    for bad in [
        &b"GET / HTTP/1.1\r\n"[..],
        b"\x16\x03\x01",
        b"PROXY\r\n",
        b"PRI * ",
    ] {
        assert_eq!(refused(bad), PpError::Missing, "{bad:?}");
    }
}

#[test]
fn v2_tcp4_tcp6_local_and_unspec() {
    let h = v2(1, 0x11, &v4_block());
    let mut with_rest = h.clone();
    with_rest.extend_from_slice(b"GET / HTTP/1.1\r\n");
    let p = ok(&with_rest);
    assert_eq!(p.version, Version::V2);
    assert_eq!(p.len, 28);
    assert_eq!(p.addrs, addrs("192.0.2.7:51000", "10.0.0.1:443"));

    let mut block = vec![0x20, 0x01, 0x0d, 0xb8];
    block.extend_from_slice(&[0; 11]);
    block.push(1);
    block.extend_from_slice(&[0; 15]);
    block.push(2);
    block.extend_from_slice(&[0x12, 0x34, 0x01, 0xbb]);
    assert_eq!(
        ok(&v2(1, 0x21, &block)).addrs,
        addrs("[2001:db8::1]:4660", "[::2]:443")
    );

    // LOCAL: addresses (if any) skipped, the socket's stand.
    assert_eq!(ok(&v2(0, 0x00, &[])).addrs, None);
    assert_eq!(ok(&v2(0, 0x11, &v4_block())).addrs, None);
    // UNSPEC, UNIX and UDP fall back to the socket's addresses.
    assert_eq!(ok(&v2(1, 0x00, &[])).addrs, None);
    assert_eq!(ok(&v2(1, 0x31, &[0; 216])).addrs, None);
    assert_eq!(ok(&v2(1, 0x12, &v4_block())).addrs, None);
}

#[test]
fn v2_tlvs_are_skipped_when_they_tile_the_block() {
    let mut block = v4_block();
    block.extend_from_slice(&[0x05, 0, 3, b'a', b'b', b'c', 0x04, 0, 0]); // UNIQUE_ID, NOOP
    assert_eq!(ok(&v2(1, 0x11, &block)).len, 16 + block.len());
    for tail in [&[0x05u8][..], &[0x05, 0], &[0x05, 0, 4, 1, 2, 3]] {
        let mut block = v4_block();
        block.extend_from_slice(tail);
        assert_eq!(refused(&v2(1, 0x11, &block)), PpError::V2Tlv, "{tail:?}");
    }
}

#[test]
fn v2_refusals() {
    let mut h = v2(1, 0x11, &v4_block());
    h[12] = 0x11;
    assert_eq!(refused(&h), PpError::V2Version);
    assert_eq!(refused(&v2(2, 0x11, &v4_block())), PpError::V2Command);
    assert_eq!(refused(&v2(1, 0x41, &v4_block())), PpError::V2Family);
    assert_eq!(refused(&v2(1, 0x13, &v4_block())), PpError::V2Family);
    assert_eq!(refused(&v2(1, 0x11, &[0; 11])), PpError::V2AddressTooShort);
    assert_eq!(
        refused(&v2(1, 0x21, &v4_block())),
        PpError::V2AddressTooShort
    );
    // Refused on its 16 fixed bytes, before the block is read.
    let mut huge = v2(1, 0x11, &[]);
    huge[14..16].copy_from_slice(&u16::MAX.to_be_bytes());
    assert_eq!(refused(&huge), PpError::V2TooLong);
}

/// Every strict prefix of a valid header asks for more, and never for
/// fewer bytes than it has; so the reader may consume all of it.
#[test]
fn every_prefix_needs_more() {
    let headers = [
        b"PROXY TCP4 192.0.2.7 10.0.0.1 51000 443\r\n".to_vec(),
        b"PROXY UNKNOWN\r\n".to_vec(),
        v2(1, 0x11, &v4_block()),
        v2(0, 0x00, &[]),
    ];
    for h in headers {
        for cut in 0..h.len() {
            match parse(&h[..cut]) {
                Err(Ok(Need(n))) => assert!(n > cut && n <= h.len(), "{h:?} at {cut}: {n}"),
                other => panic!("{h:?} at {cut}: {other:?}"),
            }
        }
        assert_eq!(ok(&h).len, h.len());
    }
}

/// std's address parsers hold the spec's rules (no leading zeros, no
/// shortened quads); the v1 parser leans on them.
#[test]
fn std_ipv4_parsing_is_strict_enough() {
    for bad in [
        "01.2.3.4",
        "1.2.3",
        "1.2.3.4.5",
        "256.1.1.1",
        " 1.2.3.4",
        "0x1.2.3.4",
    ] {
        assert!(bad.parse::<Ipv4Addr>().is_err(), "{bad}");
    }
}
