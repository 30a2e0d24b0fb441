//! Binding listening sockets with socket2. With `reuse_port`, every worker gets
//! its own socket on the same address and the kernel spreads connections
//! between them (nginx's `reuseport`): no shared accept queue, no handoff.

use crate::addr::ListenAddr;
use crate::config::{CertConfig, Config, ListenerConfig};
use socket2::{Domain, Protocol, Socket, Type};
use std::io;
use std::net::{SocketAddr, TcpListener};

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
pub fn bind(config: &Config) -> io::Result<Bound> {
    let listeners = config
        .listeners
        .iter()
        .map(|l| bind_listener(l, sockets_per_listener(config)))
        .collect::<io::Result<Vec<_>>>()?;
    let admin = match &config.admin {
        Some(a) => Some(bind_socket(a.address, false, 128).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot listen on {} (admin): {e}", a.address),
            )
        })?),
        None => None,
    };
    Ok(Bound { listeners, admin })
}

/// A socket per runtime: an unaccepted SO_REUSEPORT socket would strand the
/// connections the kernel hands it.
fn sockets_per_listener(config: &Config) -> usize {
    match config.runtime {
        crate::config::RuntimeShape::ThreadPerCore => config.workers,
        crate::config::RuntimeShape::WorkStealing => 1,
    }
}

/// Binds `l` once per worker runtime (a reload binds new listeners this way too).
pub(crate) fn bind_listener(l: &ListenerConfig, workers: usize) -> io::Result<BoundListener> {
    let first = bind_socket(l.address, l.reuse_port, l.backlog)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {}: {e}", l.address)))?;
    // Port 0 picks a port once; the other workers bind that same port.
    let local = first.local_addr()?;
    let mut sockets = vec![first];
    for _ in 1..workers {
        sockets.push(if l.reuse_port {
            bind_socket(local, true, l.backlog)?
        } else {
            sockets[0].try_clone()?
        });
    }
    Ok(BoundListener {
        local: ListenAddr(local),
        sockets,
        tls: l.tls.clone(),
    })
}

fn bind_socket(addr: SocketAddr, reuse_port: bool, backlog: i32) -> io::Result<TcpListener> {
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
