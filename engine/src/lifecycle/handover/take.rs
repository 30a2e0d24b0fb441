//! The successor's side (`sluice --takeover`): receive the running
//! process's sockets, match them to this config ([`take`]), and once
//! serving tell it to go ([`Successor::ready`]).

use super::wire::{self, Msg, Offered, VERSION};
use super::{HandoverError, STEP, check_stream};
use crate::addr::ListenAddr;
use crate::config::Config;
use crate::server::listener::{
    BindError, Bound, BoundListener, bind_listener, bind_socket, sockets_per_listener,
};
use crate::server::reload::diff;
use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Instant;

/// The most sockets a successor takes: 1,024 workers times 64 listeners.
const MAX_SOCKETS: usize = 1024 * 64;

/// A successor holding the old process's sockets, its connection still open.
#[derive(Debug)]
pub struct Successor {
    stream: UnixStream,
    /// The old process, for the log.
    pub old_pid: u32,
    /// How many sockets it sent.
    pub received: usize,
}

impl Successor {
    /// Tells the old process this one serves, and waits for it to confirm
    /// (it has closed its upgrade socket and starts draining).
    pub fn ready(self) -> Result<(), HandoverError> {
        let deadline = Instant::now() + STEP;
        wire::send(&self.stream, &Msg::Ready, &[], deadline)?;
        match wire::recv(&self.stream, deadline)?.0 {
            Msg::Done => Ok(()),
            other => Err(HandoverError::Unexpected {
                expected: "done",
                got: format!("{other:?}"),
            }),
        }
    }

    /// Tells the old process this one gives up; it keeps serving.
    pub fn abort(self, reason: &str) {
        let _ = wire::send(
            &self.stream,
            &Msg::Abort {
                reason: reason.to_owned(),
            },
            &[],
            Instant::now() + STEP,
        );
    }
}

/// Connects to the upgrade socket at `path`, receives every listening
/// socket of the process there, and returns them as `config`'s listeners
/// (in its order), binding what the old process did not have and closing
/// (in this process) what `config` no longer names.
pub fn take(path: &Path, config: &Config) -> Result<(Bound, Successor), HandoverError> {
    let deadline = Instant::now() + STEP;
    let stream = UnixStream::connect(path).map_err(|source| HandoverError::Socket {
        path: path.to_owned(),
        source,
    })?;
    check_stream(&stream)?;
    let hello = Msg::Hello {
        version: VERSION,
        pid: std::process::id(),
    };
    wire::send(&stream, &hello, &[], deadline)?;
    let (old_pid, listeners, admin) = match wire::recv(&stream, deadline)?.0 {
        Msg::Offer {
            version,
            pid,
            listeners,
            admin,
        } if version == VERSION => (pid, listeners, admin),
        Msg::Refused { reason } => return Err(HandoverError::Refused(reason)),
        other => {
            return Err(HandoverError::Unexpected {
                expected: "offer",
                got: format!("{other:?}"),
            });
        }
    };
    let total = listeners
        .iter()
        .chain(&admin)
        .try_fold(0usize, |sum, o| sum.checked_add(o.sockets))
        .filter(|&t| t <= MAX_SOCKETS)
        .ok_or_else(|| HandoverError::Invalid("too many sockets offered".into()))?;
    if admin.is_some_and(|a| a.sockets != 1) {
        return Err(HandoverError::Invalid(
            "the admin listener is one socket".into(),
        ));
    }
    let mut received: Vec<OwnedFd> = Vec::with_capacity(total);
    while received.len() < total {
        match wire::recv(&stream, deadline)? {
            (Msg::Sockets { count }, fds)
                if count == fds.len() && count > 0 && received.len() + count <= total =>
            {
                received.extend(fds);
            }
            (other, fds) => {
                return Err(HandoverError::Invalid(format!(
                    "{other:?} with {} sockets, {} of {total} received",
                    fds.len(),
                    received.len()
                )));
            }
        }
    }
    let mut fds = received.into_iter();
    let mut groups = Vec::with_capacity(listeners.len());
    for o in &listeners {
        let group = fds
            .by_ref()
            .take(o.sockets)
            .map(|fd| listening(fd, o.bound))
            .collect::<Result<Vec<_>, _>>()?;
        groups.push(group);
    }
    let admin = match admin {
        Some(o) => Some((o, fds.next().map(|fd| listening(fd, o.bound)).transpose()?)),
        None => None,
    };
    let bound = assemble(config, &listeners, groups, admin)?;
    Ok((
        bound,
        Successor {
            stream,
            old_pid,
            received: total,
        },
    ))
}

/// A received descriptor as a listener, if it is a listening TCP socket on
/// the address it was offered as.
fn listening(fd: OwnedFd, expected: SocketAddr) -> Result<TcpListener, HandoverError> {
    let socket = socket2::Socket::from(fd);
    let ok = socket.is_listener()?
        && socket.r#type()? == socket2::Type::STREAM
        && socket.local_addr()?.as_socket() == Some(expected);
    if !ok {
        return Err(HandoverError::Invalid(format!(
            "a socket offered as {expected} is not a TCP listener there"
        )));
    }
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// `config`'s listeners from the offered ones (matched by address, as a
/// reload matches them) plus fresh binds; unmatched offered sockets are
/// dropped, which closes them in this process only.
pub fn assemble(
    config: &Config,
    offered: &[Offered],
    groups: Vec<Vec<TcpListener>>,
    admin: Option<(Offered, Option<TcpListener>)>,
) -> Result<Bound, HandoverError> {
    let running: Vec<_> = offered.iter().map(|o| (o.configured, o.bound)).collect();
    let wanted: Vec<_> = config.listeners.iter().map(|l| l.address).collect();
    let plan = diff(&running, &wanted);
    let kept: HashMap<usize, usize> = plan.keep.iter().map(|&(r, n)| (n, r)).collect();
    let mut groups: Vec<Option<Vec<TcpListener>>> = groups.into_iter().map(Some).collect();
    let per_listener = sockets_per_listener(config);
    let mut listeners = Vec::with_capacity(config.listeners.len());
    for (n, l) in config.listeners.iter().enumerate() {
        let Some(&r) = kept.get(&n) else {
            listeners.push(bind_listener(l, per_listener)?);
            continue;
        };
        let local = offered[r].bound;
        let mut sockets = groups[r].take().unwrap_or_default();
        if sockets.is_empty() {
            return Err(HandoverError::Invalid(format!(
                "no socket offered for {local}"
            )));
        }
        // More workers than the old process: bind the rest on the port
        // (SO_REUSEPORT), or share the one socket as `bind_listener` does.
        while sockets.len() < per_listener {
            let more = if l.reuse_port {
                bind_socket(local, true, l.backlog)
            } else {
                sockets[0].try_clone()
            };
            sockets.push(more.map_err(|source| BindError::Listener {
                address: local,
                source,
            })?);
        }
        listeners.push(BoundListener {
            local: ListenAddr(local),
            sockets,
            tls: l.tls.clone(),
        });
    }
    let dropped: Vec<_> = plan.remove.iter().map(|&r| offered[r].bound).collect();
    if !dropped.is_empty() {
        tracing::info!(addresses = ?dropped, "takeover: closing the listeners this config no longer has");
    }
    let admin = match (&config.admin, admin) {
        (Some(a), Some((o, Some(socket)))) if a.address == o.configured || a.address == o.bound => {
            Some(socket)
        }
        (Some(a), _) => {
            Some(
                bind_socket(a.address, false, 128).map_err(|source| BindError::Admin {
                    address: a.address,
                    source,
                })?,
            )
        }
        (None, _) => None,
    };
    Ok(Bound { listeners, admin })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offered(l: &TcpListener, configured: &str) -> Offered {
        Offered {
            configured: configured.parse().expect("addr"),
            bound: l.local_addr().expect("addr"),
            sockets: 1,
        }
    }

    /// Two workers' SO_REUSEPORT sockets handed to a one-worker successor:
    /// both kept (each has its own queue); a dropped listener is closed,
    /// a new one bound.
    #[test]
    fn every_socket_of_a_kept_listener_is_kept_and_the_rest_follows_the_config() {
        let old = Config::simple(([127, 0, 0, 1], 0).into(), &[]);
        let mut two = old.clone();
        two.workers = 2;
        let kept = crate::bind(&two).expect("bind");
        let addr = kept.addrs()[0].0;
        let gone = TcpListener::bind("127.0.0.1:0").expect("bind");
        let gone_addr = gone.local_addr().expect("addr");
        let mut offers = vec![offered(&kept.listeners[0].sockets[0], "127.0.0.1:0")];
        offers[0].sockets = 2;
        offers.push(offered(&gone, &gone_addr.to_string()));
        let mut groups: Vec<Vec<TcpListener>> = Vec::new();
        let mut kept = kept;
        groups.push(std::mem::take(&mut kept.listeners[0].sockets));
        groups.push(vec![gone]);

        let mut config = Config::simple(addr, &[]);
        config.workers = 1;
        config.listeners.push(config.listeners[0].clone());
        config.listeners[1].address = "127.0.0.1:0".parse().expect("addr");
        let bound = assemble(&config, &offers, groups, None).expect("assemble");
        assert_eq!(bound.listeners.len(), 2);
        assert_eq!(bound.listeners[0].local.0, addr);
        assert_eq!(bound.listeners[0].sockets.len(), 2, "both queues kept");
        assert_ne!(bound.listeners[1].local.0.port(), 0);
        assert!(
            std::net::TcpStream::connect(gone_addr).is_err(),
            "the dropped listener's last copy is closed"
        );
    }

    #[test]
    fn a_successor_with_more_workers_binds_the_missing_sockets() {
        let one = crate::bind(&Config::simple(([127, 0, 0, 1], 0).into(), &[])).expect("bind");
        let addr = one.addrs()[0].0;
        let mut one = one;
        let offers = vec![offered(&one.listeners[0].sockets[0], "127.0.0.1:0")];
        let groups = vec![std::mem::take(&mut one.listeners[0].sockets)];
        let mut config = Config::simple(addr, &[]);
        config.workers = 3;
        let bound = assemble(&config, &offers, groups, None).expect("assemble");
        assert_eq!(bound.listeners[0].sockets.len(), 3);
        for s in &bound.listeners[0].sockets {
            assert_eq!(s.local_addr().expect("addr"), addr);
        }
    }
}
