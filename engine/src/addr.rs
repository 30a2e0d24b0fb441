//! Typed addresses, so a client address can never be used as a backend address
//! and `X-Forwarded-For` is always built from the right one.
//!
//! A [`BackendAddr`] that comes from outside (the admin API, `/register`, the
//! config file, a DNS answer, the state file) passes [`BackendAddr::checked`]
//! first: an address no backend can listen on, or this proxy's own listener
//! (a forwarding loop), is refused with a [`BadBackend`] that says why.

use http::HeaderValue;
use std::fmt;
use std::net::{IpAddr, SocketAddr};

/// The peer of a downstream connection (the client, or the last proxy before us).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ClientAddr(pub SocketAddr);

/// Where a backend listens.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BackendAddr(pub SocketAddr);

/// A local address a listener is bound to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ListenAddr(pub SocketAddr);

macro_rules! display_inner {
    ($($t:ty),*) => {$(
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    )*};
}
display_inner!(ClientAddr, BackendAddr, ListenAddr);

/// A network in CIDR form (`127.0.0.0/8`, `::1/128`): who may change the
/// proxy through the admin API. Parsed by `config::values::parse_cidr`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    /// The network address, host bits zero.
    pub net: IpAddr,
    pub prefix: u8,
}

impl Cidr {
    /// Loopback, IPv4 and IPv6: the admin API's default sources.
    pub const LOOPBACK: [Cidr; 2] = [
        Cidr {
            net: IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 0)),
            prefix: 8,
        },
        Cidr {
            net: IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
            prefix: 128,
        },
    ];

    /// Whether `ip` is in this network (an IPv4-mapped IPv6 address counts
    /// as its IPv4 address, as a dual-stack listener reports it).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        ip.is_ipv4() == self.net.is_ipv4() && network(ip, self.prefix) == self.net
    }
}

/// `ip` with every bit past `prefix` cleared.
pub fn network(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4((u32::from(v) & mask).into())
        }
        IpAddr::V6(v) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6((u128::from(v) & mask).into())
        }
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.net, self.prefix)
    }
}

/// Why an address cannot be a backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BadBackend {
    #[error("{0}: port 0 is not a port a backend listens on")]
    PortZero(SocketAddr),
    #[error("{0}: the unspecified (wildcard) address is not a backend")]
    Unspecified(SocketAddr),
    #[error("{0}: a multicast address is not a backend")]
    Multicast(SocketAddr),
    #[error("{0}: the broadcast address is not a backend")]
    Broadcast(SocketAddr),
    /// Forwarding to ourselves would loop until every connection is used.
    #[error("{addr}: that is this proxy's own listener {listener}")]
    OwnListener {
        addr: SocketAddr,
        listener: SocketAddr,
    },
}

impl BackendAddr {
    /// `addr` as a backend, unless no backend can listen there or it is one
    /// of `own` (this proxy's bound listeners, admin included). A wildcard
    /// listener (`0.0.0.0:P`, `[::]:P`) is every local address on port P.
    pub fn checked(addr: SocketAddr, own: &[SocketAddr]) -> Result<BackendAddr, BadBackend> {
        let ip = addr.ip().to_canonical();
        if addr.port() == 0 {
            return Err(BadBackend::PortZero(addr));
        }
        if ip.is_unspecified() {
            return Err(BadBackend::Unspecified(addr));
        }
        if ip.is_multicast() {
            return Err(BadBackend::Multicast(addr));
        }
        if let IpAddr::V4(v4) = ip
            && v4.is_broadcast()
        {
            return Err(BadBackend::Broadcast(addr));
        }
        let ours = |l: &&SocketAddr| {
            let lip = l.ip().to_canonical();
            l.port() == addr.port() && (lip == ip || (lip.is_unspecified() && is_local(ip)))
        };
        match own.iter().find(ours) {
            Some(&listener) => Err(BadBackend::OwnListener { addr, listener }),
            None => Ok(BackendAddr(addr)),
        }
    }
}

/// Whether `ip` is an address of this host: loopback, or one a socket can
/// bind (binding fails with `EADDRNOTAVAIL` for an address that is not ours).
/// Asked only when a wildcard listener has the backend's port.
fn is_local(ip: IpAddr) -> bool {
    ip.is_loopback() || std::net::UdpSocket::bind(SocketAddr::new(ip, 0)).is_ok()
}

/// This proxy's bound addresses (data listeners and the admin API), which
/// no backend may be. Set at start and by every reload.
///
/// # Concurrency
/// A `parking_lot::RwLock`: written on start and reload, read by each
/// backend addition (admin, discovery); held only to copy or replace the
/// list, never across an `.await`.
#[derive(Debug, Default)]
pub struct OwnAddrs {
    inner: parking_lot::RwLock<Own>,
}

#[derive(Debug, Default)]
struct Own {
    listeners: Vec<SocketAddr>,
    admin: Option<SocketAddr>,
}

impl OwnAddrs {
    /// The data listeners running now (a reload replaces them).
    pub fn set_listeners(&self, listeners: impl IntoIterator<Item = ListenAddr>) {
        self.inner.write().listeners = listeners.into_iter().map(|l| l.0).collect();
    }

    pub fn set_admin(&self, admin: Option<SocketAddr>) {
        self.inner.write().admin = admin;
    }

    /// Every address of this proxy.
    pub fn all(&self) -> Vec<SocketAddr> {
        let own = self.inner.read();
        own.listeners.iter().copied().chain(own.admin).collect()
    }

    /// [`BackendAddr::checked`] against every address of this proxy.
    pub fn check(&self, addr: SocketAddr) -> Result<BackendAddr, BadBackend> {
        BackendAddr::checked(addr, &self.all())
    }
}

/// The client's address, formatted once per connection rather than once
/// per request, and the address it connected to (kept here rather than in
/// `ConnCtx`, whose every byte an idle connection pays for: connections
/// from one address to one listener address share this).
#[derive(Debug, Clone)]
pub struct ClientStrings {
    /// `10.1.2.3` or `::1`: an `X-Forwarded-For` element.
    pub ip: HeaderValue,
    /// `for=10.1.2.3` or `for="[::1]"`: the start of a `Forwarded` element.
    pub forwarded_for: String,
    /// Our address the client connected to, or what a PROXY header said
    /// it connected to: the destination of the PROXY header we send on.
    pub server: SocketAddr,
}

impl ClientStrings {
    /// For a client whose connection's local address does not matter
    /// (tests, fuzzing): the unspecified address stands for it.
    pub fn new(client: ClientAddr) -> ClientStrings {
        ClientStrings::with_server(client, SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// For `client`, connected to `server`.
    pub fn with_server(client: ClientAddr, server: SocketAddr) -> ClientStrings {
        let ip = client.0.ip();
        let text = ip.to_string();
        let forwarded_for = match ip {
            IpAddr::V4(_) => format!("for={text}"),
            IpAddr::V6(_) => format!("for=\"[{text}]\""),
        };
        ClientStrings {
            ip: HeaderValue::from_str(&text)
                .unwrap_or_else(|_| HeaderValue::from_static("unknown")),
            forwarded_for,
            server,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(addr: &str, own: &[&str]) -> Result<BackendAddr, BadBackend> {
        let own: Vec<SocketAddr> = own.iter().map(|a| a.parse().unwrap()).collect();
        BackendAddr::checked(addr.parse().unwrap(), &own)
    }

    #[test]
    fn addresses_no_backend_listens_on_are_refused() {
        let cases = [
            ("127.0.0.1:0", "port 0"),
            ("0.0.0.0:80", "unspecified"),
            ("[::]:80", "unspecified"),
            ("[::ffff:0.0.0.0]:80", "unspecified"),
            ("224.0.0.1:80", "multicast"),
            ("[ff02::1]:80", "multicast"),
            ("255.255.255.255:80", "broadcast"),
        ];
        for (addr, says) in cases {
            let err = check(addr, &[]).expect_err(addr).to_string();
            assert!(err.contains(says), "{addr}: {err}");
        }
        assert!(check("10.0.0.1:80", &[]).is_ok());
        assert!(check("[::1]:80", &[]).is_ok());
    }

    #[test]
    fn our_own_listeners_are_refused_wildcards_included() {
        let own = ["127.0.0.1:8080", "0.0.0.0:9090", "[::]:7070"];
        for ours in [
            "127.0.0.1:8080",
            "127.0.0.1:9090",
            "127.0.0.2:9090",
            "[::1]:7070",
            "[::ffff:127.0.0.1]:8080",
        ] {
            assert!(
                matches!(check(ours, &own), Err(BadBackend::OwnListener { .. })),
                "{ours}"
            );
        }
        // Another port, or an address that is not this host's (TEST-NET-1).
        for theirs in ["127.0.0.1:8081", "127.0.0.2:8080", "192.0.2.1:9090"] {
            assert!(check(theirs, &own).is_ok(), "{theirs}");
        }
    }
}
