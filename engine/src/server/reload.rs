//! The worker side of a reload: which running listeners a new config keeps,
//! adds and removes ([`diff`]), and handing the change to the workers
//! ([`Listeners::commit`]). Binding the new sockets and loading their
//! certificates, which can fail, is the reload's first phase
//! (`lifecycle::reload`); nothing here fails.
//!
//! Identity: a new listener is the same as a running one when its address is
//! the running one's configured address (`127.0.0.1:0` stays `:0`) or its
//! bound address. A kept listener with TLS gets a fresh acceptor on every
//! reload (certificates rotated in place are picked up); it never re-binds,
//! so no connection in its accept queue is lost and `reuse_port = false`
//! works. A changed `backlog`, `reuse_port` or `share_port` on a kept address
//! needs a restart. So do the worker count and runtime shape: sockets are per
//! worker runtime, and runtimes are fixed for the life of the process.
//!
//! A new address is bound before an old one is closed, so moving a listener
//! between overlapping addresses (`0.0.0.0:80` → `127.0.0.1:80`) works only
//! where the kernel lets both exist at once (SO_REUSEPORT and `share_port`
//! on the new one); else the reload fails and the old listener keeps serving.

use super::conn_limit::ConnLimiter;
use super::listener::BoundListener;
use super::worker::{ListenerId, WorkerCommand};
use crate::addr::ListenAddr;
use crate::config::ListenerConfig;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio_rustls::TlsAcceptor;

/// How long a reload waits for the workers to act on its commands. A worker
/// answers within one turn of its event loop; this bounds a stuck one.
const ACK_TIMEOUT: Duration = Duration::from_secs(10);

/// The running listeners and the workers that accept on them.
#[derive(Debug)]
pub struct Listeners {
    /// One command channel per worker runtime.
    workers: Vec<mpsc::UnboundedSender<WorkerCommand>>,
    active: Vec<Active>,
    next_id: u64,
}

/// A running listener.
#[derive(Clone, Debug)]
pub struct Active {
    pub id: ListenerId,
    pub config: ListenerConfig,
    pub local: ListenAddr,
    /// Its connection limits, kept across reloads (new values are set on it).
    pub limiter: Arc<ConnLimiter>,
    /// Duplicates of its sockets (every worker's), kept to hand over to a
    /// successor process (`lifecycle::handover`). Emptied before the
    /// workers close theirs (removal, shutdown): a duplicate left open
    /// would keep the port listening with nobody accepting.
    pub dups: Arc<Vec<std::net::TcpListener>>,
}

/// Duplicates of `sockets` for [`Active::dups`]; one that fails (out of
/// descriptors) is logged and left out: only a later handover misses it.
pub fn dup_all(sockets: &[std::net::TcpListener]) -> Arc<Vec<std::net::TcpListener>> {
    let dups = sockets
        .iter()
        .filter_map(|s| match s.try_clone() {
            Ok(d) => Some(d),
            Err(e) => {
                tracing::warn!(error = %e, "cannot keep a listening socket for a handover");
                None
            }
        })
        .collect();
    Arc::new(dups)
}

/// How the new config's listeners relate to the running ones.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// `(running index, new index)`: the same listener.
    pub keep: Vec<(usize, usize)>,
    /// New indexes to bind.
    pub add: Vec<usize>,
    /// Running indexes to close.
    pub remove: Vec<usize>,
}

/// Matches `new` addresses against running listeners given as
/// `(configured, bound)` addresses. Each running listener matches at most
/// once, first come first served, so two `:0` listeners stay two.
pub fn diff(running: &[(SocketAddr, SocketAddr)], new: &[SocketAddr]) -> Plan {
    let mut taken = vec![false; running.len()];
    let mut plan = Plan::default();
    for (n, addr) in new.iter().enumerate() {
        let found = running
            .iter()
            .enumerate()
            .position(|(r, (configured, bound))| {
                !taken[r] && (configured == addr || bound == addr)
            });
        match found {
            Some(r) => {
                taken[r] = true;
                plan.keep.push((r, n));
            }
            None => plan.add.push(n),
        }
    }
    plan.remove = (0..running.len()).filter(|r| !taken[*r]).collect();
    plan
}

/// Everything a reload prepared; dropping it undoes it (closes the sockets).
pub struct Staged {
    pub plan: Plan,
    pub new: Vec<ListenerConfig>,
    /// Per `plan.add` entry, in order: the bound sockets and their acceptor.
    pub bound: Vec<(BoundListener, Option<TlsAcceptor>)>,
    /// Per `plan.keep` entry, in order: `Some(acceptor)` to swap in.
    pub tls: Vec<Option<Option<TlsAcceptor>>>,
}

impl std::fmt::Debug for Staged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // `TlsAcceptor` is not `Debug`.
        f.debug_struct("Staged")
            .field("plan", &self.plan)
            .field("new", &self.new)
            .field(
                "bound",
                &self.bound.iter().map(|(b, _)| b).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

/// What a reload did to the listeners.
#[derive(Clone, Debug, Default)]
pub struct Changes {
    /// Every listener now running, in config order.
    pub listeners: Vec<ListenAddr>,
    pub added: Vec<ListenAddr>,
    pub removed: Vec<ListenAddr>,
}

impl Listeners {
    pub fn new(workers: Vec<mpsc::UnboundedSender<WorkerCommand>>) -> Listeners {
        Listeners {
            workers,
            active: Vec::new(),
            next_id: 0,
        }
    }

    /// Every running listener with its socket duplicates, in config order
    /// (`lifecycle::handover` offers them to a successor).
    pub fn all(&self) -> &[Active] {
        &self.active
    }

    /// Closes the duplicates of every listener's sockets: at shutdown,
    /// before the workers close theirs.
    pub fn release_dups(&mut self) {
        for a in &mut self.active {
            a.dups = Arc::default();
        }
    }

    /// A fresh id for a listener about to be handed to the workers.
    pub fn next_id(&mut self) -> ListenerId {
        self.next_id += 1;
        ListenerId(self.next_id)
    }

    /// Records a listener the workers were started with.
    pub fn track(&mut self, active: Active) {
        self.active.push(active);
    }

    /// The running listeners' addresses, in config order.
    pub fn addrs(&self) -> Vec<ListenAddr> {
        self.active.iter().map(|a| a.local).collect()
    }

    /// Each running listener's address, whether it serves TLS, and its
    /// limiter (which counts its connections), for `/metrics`.
    pub fn metered(&self) -> Vec<(ListenAddr, bool, Arc<ConnLimiter>)> {
        self.active
            .iter()
            .map(|a| (a.local, !a.config.tls.is_empty(), a.limiter.clone()))
            .collect()
    }

    /// How `new` relates to the running listeners.
    pub fn plan(&self, new: &[ListenerConfig]) -> Plan {
        let running: Vec<_> = self
            .active
            .iter()
            .map(|a| (a.config.address, a.local.0))
            .collect();
        let addrs: Vec<_> = new.iter().map(|l| l.address).collect();
        diff(&running, &addrs)
    }

    /// The running listener at `index` (as numbered by [`Plan`]).
    pub fn active(&self, index: usize) -> &Active {
        &self.active[index]
    }

    /// How many worker runtimes take a socket of each listener.
    pub fn runtimes(&self) -> usize {
        self.workers.len()
    }

    /// Hands `staged` to the workers (add, swap TLS, then remove)
    /// and waits until each has acted. Cannot fail: a worker that is gone is
    /// shutting down, and one that does not answer in time is logged.
    pub async fn commit(&mut self, staged: Staged) -> Changes {
        let Staged {
            plan,
            new,
            bound,
            tls,
        } = staged;
        let mut acks = Vec::new();

        let mut next: Vec<Option<Active>> = vec![None; new.len()];
        let mut changes = Changes::default();
        for (&n, (b, acceptor)) in plan.add.iter().zip(bound) {
            let id = self.next_id();
            let limiter = ConnLimiter::new(new[n].conn_limit);
            limiter.set_proxy_protocol(new[n].proxy_protocol.clone());
            let dups = dup_all(&b.sockets);
            for (w, socket) in self.workers.iter().zip(b.sockets) {
                let (done, ack) = oneshot::channel();
                let cmd = WorkerCommand::AddListener {
                    id,
                    socket,
                    tls: acceptor.clone(),
                    limiter: limiter.clone(),
                    done,
                };
                if w.send(cmd).is_ok() {
                    acks.push(ack);
                }
            }
            changes.added.push(b.local);
            next[n] = Some(Active {
                id,
                config: new[n].clone(),
                local: b.local,
                limiter,
                dups,
            });
        }
        for (&(r, n), acceptor) in plan.keep.iter().zip(tls) {
            let old = &self.active[r];
            if let Some(acceptor) = acceptor {
                for w in &self.workers {
                    let (done, ack) = oneshot::channel();
                    let cmd = WorkerCommand::SetTls {
                        id: old.id,
                        tls: acceptor.clone(),
                        done,
                    };
                    if w.send(cmd).is_ok() {
                        acks.push(ack);
                    }
                }
            }
            old.limiter.set(new[n].conn_limit);
            old.limiter
                .set_proxy_protocol(new[n].proxy_protocol.clone());
            next[n] = Some(Active {
                id: old.id,
                config: new[n].clone(),
                local: old.local,
                limiter: old.limiter.clone(),
                dups: old.dups.clone(),
            });
        }
        for &r in &plan.remove {
            let old = &mut self.active[r];
            old.dups = Arc::default();
            let old = &self.active[r];
            for w in &self.workers {
                let (done, ack) = oneshot::channel();
                if w.send(WorkerCommand::RemoveListener { id: old.id, done })
                    .is_ok()
                {
                    acks.push(ack);
                }
            }
            changes.removed.push(old.local);
        }
        let waited = tokio::time::timeout(ACK_TIMEOUT, async {
            for ack in acks {
                // Err: that worker is gone (shutting down); nothing to wait for.
                let _ = ack.await;
            }
        })
        .await;
        if waited.is_err() {
            tracing::warn!("a worker did not apply the listener changes in {ACK_TIMEOUT:?}");
        }
        self.active = next.into_iter().flatten().collect();
        changes.listeners = self.addrs();
        changes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> SocketAddr {
        s.parse().expect("address")
    }

    #[test]
    fn the_same_addresses_keep_everything() {
        let running = [(a("127.0.0.1:80"), a("127.0.0.1:80"))];
        let plan = diff(&running, &[a("127.0.0.1:80")]);
        assert_eq!(
            plan,
            Plan {
                keep: vec![(0, 0)],
                add: vec![],
                remove: vec![]
            }
        );
    }

    #[test]
    fn port_zero_matches_its_configured_or_its_bound_address() {
        let running = [
            (a("127.0.0.1:0"), a("127.0.0.1:4001")),
            (a("127.0.0.1:0"), a("127.0.0.1:4002")),
        ];
        // `:0` again keeps the first; the second is named by its bound port.
        let plan = diff(&running, &[a("127.0.0.1:4002"), a("127.0.0.1:0")]);
        assert_eq!(plan.keep, vec![(1, 0), (0, 1)]);
        assert!(plan.add.is_empty() && plan.remove.is_empty(), "{plan:?}");
    }

    #[test]
    fn each_running_listener_matches_once() {
        let running = [(a("127.0.0.1:0"), a("127.0.0.1:4001"))];
        let plan = diff(&running, &[a("127.0.0.1:0"), a("127.0.0.1:0")]);
        assert_eq!(plan.keep, vec![(0, 0)]);
        assert_eq!(plan.add, vec![1]);
        assert!(plan.remove.is_empty());
    }

    #[test]
    fn new_addresses_are_added_and_vanished_ones_removed() {
        let running = [
            (a("127.0.0.1:80"), a("127.0.0.1:80")),
            (a("[::1]:443"), a("[::1]:443")),
        ];
        let plan = diff(&running, &[a("127.0.0.1:8080"), a("[::1]:443")]);
        assert_eq!(plan.keep, vec![(1, 1)]);
        assert_eq!(plan.add, vec![0]);
        assert_eq!(plan.remove, vec![0]);
    }

    #[test]
    fn an_empty_config_removes_everything() {
        let running = [(a("127.0.0.1:80"), a("127.0.0.1:80"))];
        let plan = diff(&running, &[]);
        assert_eq!(plan.remove, vec![0]);
        assert!(plan.keep.is_empty() && plan.add.is_empty());
    }
}
