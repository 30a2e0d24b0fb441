//! Typed addresses, so a client address can never be used as a backend address
//! and `X-Forwarded-For` is always built from the right one.

use std::fmt;
use std::net::SocketAddr;

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
