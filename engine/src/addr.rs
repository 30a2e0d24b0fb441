//! Typed addresses, so a client address can never be used as a backend address
//! and `X-Forwarded-For` is always built from the right one.

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

/// The client's address, formatted once per connection rather than once
/// per request.
#[derive(Debug, Clone)]
pub struct ClientStrings {
    /// `10.1.2.3` or `::1`: an `X-Forwarded-For` element.
    pub ip: HeaderValue,
    /// `for=10.1.2.3` or `for="[::1]"`: the start of a `Forwarded` element.
    pub forwarded_for: String,
}

impl ClientStrings {
    pub fn new(client: ClientAddr) -> ClientStrings {
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
        }
    }
}
