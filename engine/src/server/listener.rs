//! Binding listening sockets with socket2, and accepting from them
//! ([`Acceptor`]; the accept loops that use it run on each worker). With `reuse_port`, every worker gets
//! its own socket on the same address and the kernel spreads connections
//! between them (nginx's `reuseport`): no shared accept queue, no handoff.
//!
//! SO_REUSEPORT would also let a second process (a second `sluice` by the
//! same user) join the port silently and take half the connections. So a
//! listener first proves the address free with a probe socket that lacks
//! SO_REUSEPORT, and fails with [`BindError::InUse`] if anything listens
//! there, unless its config says `share_port = true`. Port 0 needs no probe:
//! the kernel never hands out an ephemeral port that another socket listens
//! on. Between the probe and the bind is a window of microseconds in which
//! another process could still bind; the probe stops the mistake, not a race.

use super::conn_limit::{ConnLimiter, Permit};
use crate::addr::ListenAddr;
use crate::config::{CertConfig, Config, ListenerConfig};
use socket2::{Domain, Protocol, Socket, Type};
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use tokio::io::unix::AsyncFd;

/// Why a listener could not be bound; every message names the address.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    /// Another socket listens there and `share_port` is off.
    #[error(
        "cannot listen on {address}: address in use (another socket listens there; `share_port = true` shares it on purpose)"
    )]
    InUse { address: SocketAddr },
    #[error("cannot listen on {address}: {source}")]
    Listener {
        address: SocketAddr,
        #[source]
        source: io::Error,
    },
    #[error("cannot listen on {address} (admin): {source}")]
    Admin {
        address: SocketAddr,
        #[source]
        source: io::Error,
    },
}

impl BindError {
    pub(crate) fn listener(address: SocketAddr, source: io::Error) -> BindError {
        if source.kind() == io::ErrorKind::AddrInUse {
            BindError::InUse { address }
        } else {
            BindError::Listener { address, source }
        }
    }

    /// Whether another socket holds the address.
    pub fn is_in_use(&self) -> bool {
        match self {
            BindError::InUse { .. } => true,
            BindError::Listener { .. } => false,
            BindError::Admin { source, .. } => source.kind() == io::ErrorKind::AddrInUse,
        }
    }
}

/// For callers that speak `io::Error` (`bind`, `Server::start`): the kind
/// is kept (`AddrInUse` for [`BindError::InUse`]) and the `BindError` is the
/// inner error, so `get_ref()` and a downcast find it again.
impl From<BindError> for io::Error {
    fn from(e: BindError) -> io::Error {
        let kind = match &e {
            BindError::InUse { .. } => io::ErrorKind::AddrInUse,
            BindError::Listener { source, .. } | BindError::Admin { source, .. } => source.kind(),
        };
        io::Error::new(kind, e)
    }
}

/// Sockets bound before `run`, so that a bad address fails before anything
/// starts and tests can bind port 0.
#[derive(Debug)]
pub struct Bound {
    pub listeners: Vec<BoundListener>,
    /// The admin API's socket, when configured.
    pub admin: Option<TcpListener>,
}

#[derive(Debug)]
pub struct BoundListener {
    pub local: ListenAddr,
    /// One socket per worker (clones of one socket when `reuse_port` is off).
    pub sockets: Vec<TcpListener>,
    pub tls: Vec<CertConfig>,
}

impl Bound {
    pub fn addrs(&self) -> Vec<ListenAddr> {
        self.listeners.iter().map(|l| l.local).collect()
    }
}

/// Binds every configured listener, once per worker.
///
/// The error is an `io::Error` at this boundary (the services embedding the
/// proxy wrap it as one); its inner error is the [`BindError`], which names
/// the address.
pub fn bind(config: &Config) -> io::Result<Bound> {
    Ok(bind_all(config)?)
}

fn bind_all(config: &Config) -> Result<Bound, BindError> {
    let listeners = config
        .listeners
        .iter()
        .map(|l| bind_listener(l, sockets_per_listener(config)))
        .collect::<Result<Vec<_>, _>>()?;
    let admin = match &config.admin {
        Some(a) => Some(
            bind_socket(a.address, false, 128).map_err(|source| BindError::Admin {
                address: a.address,
                source,
            })?,
        ),
        None => None,
    };
    Ok(Bound { listeners, admin })
}

/// A socket per runtime: an unaccepted SO_REUSEPORT socket would strand the
/// connections the kernel hands it.
pub(crate) fn sockets_per_listener(config: &Config) -> usize {
    match config.runtime {
        crate::config::RuntimeShape::ThreadPerCore => config.workers,
        crate::config::RuntimeShape::WorkStealing => 1,
    }
}

/// Binds `l` once per worker runtime (a reload binds new listeners this way too).
pub(crate) fn bind_listener(
    l: &ListenerConfig,
    workers: usize,
) -> Result<BoundListener, BindError> {
    let fail = |source| BindError::listener(l.address, source);
    if l.reuse_port && !l.share_port && l.address.port() != 0 {
        probe(l.address).map_err(fail)?;
    }
    let first = bind_socket(l.address, l.reuse_port, l.backlog).map_err(fail)?;
    // Port 0 picks a port once; the other workers bind that same port.
    let local = first.local_addr().map_err(fail)?;
    let mut sockets = vec![first];
    for _ in 1..workers {
        sockets.push(if l.reuse_port {
            bind_socket(local, true, l.backlog).map_err(fail)?
        } else {
            sockets[0].try_clone().map_err(fail)?
        });
    }
    Ok(BoundListener {
        local: ListenAddr(local),
        sockets,
        tls: l.tls.clone(),
    })
}

/// Binds `addr` without SO_REUSEPORT and lets it go: fails with
/// `AddrInUse` while any other socket listens there, SO_REUSEPORT or not.
/// SO_REUSEADDR as on the real sockets, so that connections of a previous
/// run still in TIME_WAIT do not count.
fn probe(addr: SocketAddr) -> io::Result<()> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.bind(&addr.into())
}

pub(crate) fn bind_socket(
    addr: SocketAddr,
    reuse_port: bool,
    backlog: i32,
) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    #[cfg(unix)]
    socket.set_reuse_port(reuse_port)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    // Accepted sockets inherit TCP_NODELAY from the listener on Linux.
    socket.set_tcp_nodelay(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(backlog)?;
    Ok(socket.into())
}

/// A listening socket accepted from without tokio's `TcpListener`, whose
/// streams start out marked readable: their first read was tried before
/// the request had arrived and failed with `EAGAIN` 0.93 times per new
/// connection under load. A stream from here waits for its first epoll
/// event instead, as nginx's do (perf/findings/2026-12-01-targets.md).
pub struct Acceptor(AsyncFd<socket2::Socket>);

impl Acceptor {
    pub fn new(socket: std::net::TcpListener) -> io::Result<Acceptor> {
        socket.set_nonblocking(true)?;
        // `new` is deprecated because a generic `AsRawFd` might answer with a
        // different descriptor later; a `socket2::Socket` owns its one.
        #[allow(deprecated)]
        Ok(Acceptor(AsyncFd::new(socket2::Socket::from(socket))?))
    }

    pub async fn accept(&self) -> io::Result<(tokio::net::TcpStream, SocketAddr)> {
        loop {
            let mut ready = self.0.readable().await?;
            match ready.try_io(|l| Acceptor::accept_now(l.get_ref())) {
                Ok(Ok((stream, peer))) => {
                    return Ok((tokio::net::TcpStream::from_std(stream)?, peer));
                }
                Ok(Err(e)) => return Err(e),
                // Drained: try_io cleared the readiness; wait for the next one.
                Err(_) => continue,
            }
        }
    }

    /// For `on_limit = "backlog"`: waits until a connection is queued on
    /// this socket, then for a slot of `limiter`, and accepts it with the
    /// slot. A slot is held only between finding a connection and taking
    /// it, never while waiting: with one SO_REUSEPORT socket per worker, a
    /// worker holding the last slot while it waits on its own empty socket
    /// would strand a connection the kernel queued on another worker's
    /// (review finding 8). Readiness that another worker's accept consumed
    /// (sockets cloned with `reuse_port = false`) gives the slot back and
    /// waits again. Cancel-safe: nothing is reserved across an `.await`.
    pub async fn accept_reserved(
        &self,
        limiter: &Arc<ConnLimiter>,
    ) -> io::Result<(tokio::net::TcpStream, SocketAddr, Permit)> {
        loop {
            let mut ready = self.0.readable().await?;
            let permit = limiter.wait_for_room().await;
            match ready.try_io(|l| Acceptor::accept_now(l.get_ref())) {
                Ok(Ok((stream, peer))) => {
                    return Ok((tokio::net::TcpStream::from_std(stream)?, peer, permit));
                }
                Ok(Err(e)) => return Err(e),
                // Nothing queued after all: the slot goes back (waking a
                // worker waiting for it) and this one waits for readiness.
                Err(_) => drop(permit),
            }
        }
    }

    /// One `accept4`, the stream non-blocking from the start (no extra
    /// `fcntl`); TCP_NODELAY comes from the listener.
    pub fn accept_now(l: &socket2::Socket) -> io::Result<(std::net::TcpStream, SocketAddr)> {
        let (stream, peer) = l.accept4(libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK)?;
        let peer = peer
            .as_socket()
            .ok_or_else(|| io::Error::other("accepted a non-IP connection"))?;
        Ok((stream.into(), peer))
    }

    /// The socket, out of tokio's reactor (to accept what is queued, then close).
    pub fn into_socket(self) -> socket2::Socket {
        self.0.into_inner()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ConnLimit, OnLimit};

    fn acceptor() -> (Acceptor, SocketAddr) {
        let socket = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = socket.local_addr().expect("addr");
        (Acceptor::new(socket).expect("acceptor"), addr)
    }

    /// Finding 8: two workers' sockets, one slot. Worker A waits first;
    /// the kernel queues the connection on B's socket. Reserving before
    /// accepting left A holding the slot on an empty socket and B waiting
    /// for it: the connection was never accepted.
    #[tokio::test]
    async fn a_worker_waiting_on_an_empty_socket_holds_no_slot() {
        let limiter = ConnLimiter::new(ConnLimit {
            max_connections: Some(1),
            max_connections_per_client: None,
            on_limit: OnLimit::Backlog,
        });
        let (a, _) = acceptor();
        let (b, b_addr) = acceptor();
        let waiting = tokio::spawn({
            let limiter = limiter.clone();
            async move { a.accept_reserved(&limiter).await.map(|(_, peer, _)| peer) }
        });
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert!(!waiting.is_finished());
        assert_eq!(limiter.open(), 0, "a waiting worker holds no slot");
        let _client = tokio::net::TcpStream::connect(b_addr)
            .await
            .expect("connect");
        let accepted = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            b.accept_reserved(&limiter),
        )
        .await
        .expect("B accepts the connection queued on its socket")
        .expect("accept");
        assert_eq!(limiter.open(), 1);
        drop(accepted);
        assert_eq!(limiter.open(), 0);
        waiting.abort();
    }

    #[test]
    fn a_held_port_is_in_use_unless_the_listener_shares_it() {
        let first = bind(&Config::simple(([127, 0, 0, 1], 0).into(), &[])).expect("bind");
        let held = first.addrs()[0].0;
        let mut config = Config::simple(held, &[]);
        let err = bind(&config).expect_err("a second bind of a held port");
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
        let inner = err.get_ref().and_then(|e| e.downcast_ref::<BindError>());
        assert!(
            matches!(inner, Some(BindError::InUse { address }) if *address == held),
            "{err:?}"
        );
        assert!(err.to_string().contains(&held.to_string()), "{err}");

        config.listeners[0].share_port = true;
        let second = bind(&config).expect("shared on purpose");
        assert_eq!(second.addrs()[0].0, held);
    }
}
