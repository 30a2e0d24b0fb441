//! The PROXY protocol header we send to a group's backends
//! (`[upstream.NAME] proxy_protocol = "v1" | "v2"`): the client's address
//! and the address it connected to, as the first bytes of the connection,
//! before TLS. Health checks send v2 LOCAL or v1 `UNKNOWN` (the checker is
//! the client; the spec's word for a balancer's own connection).
//!
//! A header describes one client connection, so a group that sends one
//! never pools: each request dials its own connection (HAProxy keeps such
//! connections private to their client connection; without a per-client
//! pool, not sharing is the rule that cannot mix clients up).

use std::io::Write;
use std::net::{IpAddr, SocketAddr};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendVersion {
    V1,
    V2,
}

/// A header, on the stack: the longest is v1 over IPv6 (104 bytes).
#[derive(Clone, Copy)]
pub struct Header {
    buf: [u8; 108],
    len: usize,
}

impl Header {
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// The header for a proxied connection from `client`, which connected
    /// to `server`. Both are sent in one family: IPv4-mapped addresses as
    /// IPv4, and a mix as IPv6 (the IPv4 one mapped).
    pub fn proxied(version: SendVersion, client: SocketAddr, server: SocketAddr) -> Header {
        let (src, dst) = same_family(client, server);
        let mut h = Header {
            buf: [0; 108],
            len: 0,
        };
        match version {
            SendVersion::V1 => {
                let mut w = &mut h.buf[..];
                // 104 bytes at most: it fits, so the writes cannot fail.
                let _ = match (src.ip(), dst.ip()) {
                    (IpAddr::V4(s), IpAddr::V4(d)) => write!(w, "PROXY TCP4 {s} {d} "),
                    (s, d) => {
                        let _ = write!(w, "PROXY TCP6 ");
                        let _ = hex_groups(&mut w, s);
                        let _ = write!(w, " ");
                        let _ = hex_groups(&mut w, d);
                        write!(w, " ")
                    }
                };
                let _ = write!(w, "{} {}\r\n", src.port(), dst.port());
                h.len = 108 - w.len();
            }
            SendVersion::V2 => {
                let mut block = [0u8; 36];
                let (fam, n) = match (src.ip(), dst.ip()) {
                    (IpAddr::V4(s), IpAddr::V4(d)) => {
                        block[..4].copy_from_slice(&s.octets());
                        block[4..8].copy_from_slice(&d.octets());
                        (0x11, 8)
                    }
                    (s, d) => {
                        block[..16].copy_from_slice(&v6(s));
                        block[16..32].copy_from_slice(&v6(d));
                        (0x21, 32)
                    }
                };
                block[n..n + 2].copy_from_slice(&src.port().to_be_bytes());
                block[n + 2..n + 4].copy_from_slice(&dst.port().to_be_bytes());
                h.v2(0x21, fam, &block[..n + 4]);
            }
        }
        h
    }

    /// A health check's header: v2 LOCAL, v1 `PROXY UNKNOWN`. The backend
    /// keeps the connection's own addresses.
    pub fn local(version: SendVersion) -> Header {
        let mut h = Header {
            buf: [0; 108],
            len: 0,
        };
        match version {
            SendVersion::V1 => {
                let line = b"PROXY UNKNOWN\r\n";
                h.buf[..line.len()].copy_from_slice(line);
                h.len = line.len();
            }
            SendVersion::V2 => h.v2(0x20, 0x00, &[]),
        }
        h
    }

    fn v2(&mut self, ver_cmd: u8, fam: u8, block: &[u8]) {
        let sig = crate::server::proxy_protocol::V2_SIGNATURE;
        self.buf[..12].copy_from_slice(&sig);
        self.buf[12] = ver_cmd;
        self.buf[13] = fam;
        // 36 at most.
        self.buf[14..16].copy_from_slice(&(block.len() as u16).to_be_bytes());
        self.buf[16..16 + block.len()].copy_from_slice(block);
        self.len = 16 + block.len();
    }
}

/// An IPv6 address as eight hex groups: the spec's form (std's `Display`
/// writes a mapped IPv4 address as a dotted quad, which v1 does not allow).
fn hex_groups(w: &mut impl Write, ip: IpAddr) -> std::io::Result<()> {
    let s = to_v6(ip).segments();
    write!(
        w,
        "{:x}:{:x}:{:x}:{:x}:{:x}:{:x}:{:x}:{:x}",
        s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]
    )
}

fn same_family(a: SocketAddr, b: SocketAddr) -> (SocketAddr, SocketAddr) {
    let canon = |s: SocketAddr| SocketAddr::new(s.ip().to_canonical(), s.port());
    let (a, b) = (canon(a), canon(b));
    if a.is_ipv4() == b.is_ipv4() {
        return (a, b);
    }
    let mapped = |s: SocketAddr| SocketAddr::new(IpAddr::V6(to_v6(s.ip())), s.port());
    (mapped(a), mapped(b))
}

fn to_v6(ip: IpAddr) -> std::net::Ipv6Addr {
    match ip {
        IpAddr::V4(v) => v.to_ipv6_mapped(),
        IpAddr::V6(v) => v,
    }
}

fn v6(ip: IpAddr) -> [u8; 16] {
    to_v6(ip).octets()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::proxy_protocol::{Version, parse};

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    /// What we send, our own parser reads back the same.
    #[test]
    fn sent_headers_parse_back() {
        let cases = [
            (
                "192.0.2.7:51000",
                "10.0.0.1:443",
                "192.0.2.7:51000",
                "10.0.0.1:443",
            ),
            (
                "[2001:db8::1]:1",
                "[::1]:8080",
                "[2001:db8::1]:1",
                "[::1]:8080",
            ),
            (
                "[::ffff:192.0.2.7]:5",
                "10.0.0.1:80",
                "192.0.2.7:5",
                "10.0.0.1:80",
            ),
            (
                "[2001:db8::1]:1",
                "10.0.0.1:80",
                "[2001:db8::1]:1",
                "[::ffff:10.0.0.1]:80",
            ),
        ];
        for (v, version) in [
            (SendVersion::V1, Version::V1),
            (SendVersion::V2, Version::V2),
        ] {
            for (c, s, want_c, want_s) in cases {
                let h = Header::proxied(v, a(c), a(s));
                let p = parse(h.as_bytes()).expect("parses");
                assert_eq!(p.version, version);
                assert_eq!(p.len, h.as_bytes().len());
                assert_eq!(p.addrs, Some((a(want_c), a(want_s))), "{v:?} {c} {s}");
            }
            let local = Header::local(v);
            assert_eq!(parse(local.as_bytes()).expect("local").addrs, None);
        }
        assert_eq!(
            Header::proxied(SendVersion::V1, a("192.0.2.7:51000"), a("10.0.0.1:443")).as_bytes(),
            b"PROXY TCP4 192.0.2.7 10.0.0.1 51000 443\r\n"
        );
    }
}
