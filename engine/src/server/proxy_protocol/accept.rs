//! Reading the PROXY header off a newly accepted connection, before HTTP
//! or the TLS ClientHello, and deciding whether the connection may stay.
//!
//! Never a byte past the header: the reader peeks at what the kernel has
//! queued, parses it, and consumes exactly the bytes that are header. A
//! prefix that is still a valid beginning is all header, so it is consumed
//! and the next peek waits for new bytes (a peek of bytes already seen
//! would return at once and spin). What follows the header stays in the
//! socket for the HTTP parser or the TLS acceptor, untouched.

use super::{MAX_V2_LEN, PpError, Version, parse};
use crate::addr::Cidr;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// Which header versions a listener takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Versions {
    V1,
    V2,
    Any,
}

impl Versions {
    fn takes(self, v: Version) -> bool {
        matches!(
            (self, v),
            (Versions::Any, _) | (Versions::V1, Version::V1) | (Versions::V2, Version::V2)
        )
    }
}

/// A listener's PROXY protocol rule: every connection must come from one
/// of `trusted` and start with a header of `versions`; anything else is
/// closed (a header from anyone else could claim any address, and a
/// connection without one on such a listener is a misconfigured path).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    pub versions: Versions,
    pub trusted: Vec<Cidr>,
}

/// Why a connection was closed before HTTP; `reason()` is the label of
/// `sluice_proxy_protocol_refused_total`.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    #[error("source not in proxy_protocol_trusted")]
    Untrusted,
    #[error(transparent)]
    Header(#[from] PpError),
    #[error("no complete PROXY header within the header timeout")]
    Timeout,
    #[error("closed before a complete PROXY header")]
    Closed,
    #[error("reading the PROXY header: {0}")]
    Io(#[source] io::Error),
}

impl Refused {
    pub fn reason(&self) -> &'static str {
        match self {
            Refused::Untrusted => "untrusted",
            Refused::Header(e) => e.reason(),
            Refused::Timeout => "timeout",
            Refused::Closed => "closed",
            Refused::Io(_) => "io",
        }
    }

    /// Every reason, for the metric's fixed label set.
    pub const REASONS: [&'static str; 14] = [
        "untrusted",
        "missing",
        "wrong_version",
        "v1_too_long",
        "v1_syntax",
        "v2_version",
        "v2_command",
        "v2_family",
        "v2_address",
        "v2_too_long",
        "v2_tlv",
        "timeout",
        "closed",
        "io",
    ];
}

/// The connection's client and the address it connected to, as the header
/// says; `None` (LOCAL, UNKNOWN) keeps the socket's own. `peer` is the
/// socket's peer, checked against the trusted networks first (an untrusted
/// peer is refused before a byte is read). Bounded by `timeout` and by the
/// header's size limits.
pub async fn read_header(
    stream: &mut TcpStream,
    peer: SocketAddr,
    policy: &Policy,
    timeout: Duration,
) -> Result<Option<(SocketAddr, SocketAddr)>, Refused> {
    if !policy.trusted.iter().any(|c| c.contains(peer.ip())) {
        return Err(Refused::Untrusted);
    }
    match tokio::time::timeout(timeout, read(stream, policy.versions)).await {
        Ok(r) => r,
        Err(_) => Err(Refused::Timeout),
    }
}

async fn read(
    stream: &mut TcpStream,
    versions: Versions,
) -> Result<Option<(SocketAddr, SocketAddr)>, Refused> {
    // On the stack of this short-lived step: no allocation per connection.
    let mut buf = [0u8; MAX_V2_LEN];
    // Bytes consumed from the socket so far, all of them header.
    let mut have = 0;
    loop {
        let n = stream.peek(&mut buf[have..]).await.map_err(Refused::Io)?;
        if n == 0 {
            return Err(Refused::Closed);
        }
        let seen = have + n;
        // The first byte tells the version: refuse the other one at once.
        let first = match buf[0] {
            b'P' => Some(Version::V1),
            b'\r' => Some(Version::V2),
            _ => None,
        };
        if first.is_some_and(|v| !versions.takes(v)) {
            return Err(PpError::WrongVersion.into());
        }
        match parse(&buf[..seen]) {
            Ok(p) => {
                stream
                    .read_exact(&mut buf[have..p.len])
                    .await
                    .map_err(Refused::Io)?;
                return Ok(p.addrs);
            }
            Err(Ok(_)) => {
                // All of it is header: take it, and wait for more.
                stream
                    .read_exact(&mut buf[have..seen])
                    .await
                    .map_err(Refused::Io)?;
                have = seen;
            }
            Err(Err(e)) => return Err(e.into()),
        }
    }
}
