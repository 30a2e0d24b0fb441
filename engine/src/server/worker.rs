//! A worker: one OS thread with a single-threaded tokio runtime, its own
//! listening sockets (SO_REUSEPORT) and its own upstream pool. A request is
//! accepted, proxied and answered on one thread: no cross-thread handoff and
//! no contended lock on the path (nginx's shape).
//!
//! Listeners come and go while the worker runs: a reload sends
//! [`WorkerCommand`]s, and each accept loop has its own stop signal besides
//! the global drain.

use super::client_cert;
use super::conn::{self, ServerBuilder};
use super::conn_limit::{ConnLimiter, Permit};
use super::listener::Acceptor;
use super::proxy_protocol::accept::read_header;
use crate::addr::ClientAddr;
use crate::addr::ClientStrings;
use crate::context::{ConnCtx, Worker};
use crate::state::Shared;
use crate::upstream::pool::Pool;
use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

/// How often idle upstream connections past their timeout are dropped.
const REAP_INTERVAL: Duration = Duration::from_secs(5);

/// A listener's identity for its whole life, across reloads: its configured
/// address may be port 0, and the same address may come back later as a new
/// listener.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ListenerId(pub u64);

/// What the reload coordinator (`server::reload`) asks of a running worker.
/// Each command carries `done`, fired once the worker has acted, so that a
/// reload answers only when its changes are real.
pub enum WorkerCommand {
    /// Start accepting on `socket` (already bound and listening: this worker's
    /// SO_REUSEPORT share of the listener).
    AddListener {
        id: ListenerId,
        socket: std::net::TcpListener,
        tls: Option<TlsAcceptor>,
        /// The listener's connection limits, shared by its sockets on every worker.
        limiter: Arc<ConnLimiter>,
        done: oneshot::Sender<()>,
    },
    /// Stop accepting and close the socket; `done` fires once it is closed.
    /// Connections it accepted carry on: they are not tied to their listener.
    RemoveListener {
        id: ListenerId,
        done: oneshot::Sender<()>,
    },
    /// Use `tls` for connections accepted from now on (certificates re-read
    /// on reload, or a listener switched between plain and TLS).
    SetTls {
        id: ListenerId,
        tls: Option<TlsAcceptor>,
        done: oneshot::Sender<()>,
    },
}

pub struct WorkerSpec {
    pub index: usize,
    /// 1: a current-thread runtime (thread per core). More: one
    /// work-stealing runtime with that many threads serving every socket.
    pub threads: usize,
    pub sockets: Vec<(
        ListenerId,
        std::net::TcpListener,
        Option<TlsAcceptor>,
        Arc<ConnLimiter>,
    )>,
    /// Listener changes from reloads; see [`WorkerCommand`].
    pub commands: mpsc::UnboundedReceiver<WorkerCommand>,
    pub shared: Arc<Shared>,
    pub drain: watch::Receiver<bool>,
    pub grace: Duration,
}

/// Starts the worker thread; `done` fires when it has drained and stopped.
pub fn spawn(spec: WorkerSpec) -> io::Result<oneshot::Receiver<()>> {
    let (done_tx, done_rx) = oneshot::channel();
    let rt = if spec.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(spec.threads)
            .thread_name("sluice-worker")
            .enable_all()
            .build()?
    };
    std::thread::Builder::new()
        .name(format!("sluice-worker-{}", spec.index))
        .spawn(move || {
            rt.block_on(run(spec));
            // Dropping the runtime here cancels whatever outlived the grace period.
            drop(rt);
            let _ = done_tx.send(());
        })?;
    Ok(done_rx)
}

/// What every accept loop of a worker needs to start connections.
#[derive(Clone)]
struct ConnSpawner {
    worker: Arc<Worker>,
    /// Connections learn of the drain through its `idle` clock.
    builder: Arc<ServerBuilder>,
    drain: watch::Receiver<bool>,
    /// Every connection task holds a clone; see `run`.
    alive: mpsc::Sender<()>,
    header_timeout: Duration,
}

pin_project_lite::pin_project! {
    /// A connection's task: its future, and its share of `alive`. A struct
    /// rather than an `async` block, which would keep the future's inputs
    /// twice (as its own captures and inside the future).
    pub(super) struct Alive<F> {
        #[pin]
        conn: F,
        _alive: mpsc::Sender<()>,
    }
}

impl<F: Future<Output = ()>> Future for Alive<F> {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.project().conn.poll(cx)
    }
}

/// A running accept loop. Dropping `tls` is its stop signal: the loop sees
/// the watch close, stops accepting and closes its socket.
struct Accepting {
    tls: watch::Sender<Option<TlsAcceptor>>,
    task: JoinHandle<()>,
}

async fn run(spec: WorkerSpec) {
    let state = spec.shared.state.load_full();
    let worker = Arc::new(Worker {
        shared: spec.shared.clone(),
        pool: Arc::new(Pool::new(state.timeouts.upstream_idle)),
    });
    // The scrape counts this pool's idle connections (`observe::metrics`).
    state.metrics.process.add_pool(Arc::downgrade(&worker.pool));
    // Every connection task holds a clone of `alive`; when the last one is
    // dropped, `recv()` returns None and the worker knows it has drained.
    let (alive, mut drained) = mpsc::channel::<()>(1);
    let spawner = ConnSpawner {
        worker: worker.clone(),
        builder: Arc::new(conn::builder(&state.limits, &state.timeouts)),
        drain: spec.drain.clone(),
        alive,
        header_timeout: state.timeouts.client_header,
    };
    drop(state);

    // Usually one socket per listener; more when a predecessor with more
    // workers handed over its SO_REUSEPORT sockets (`lifecycle::handover`):
    // each has its own accept queue, so each keeps an accept loop.
    let mut listeners: HashMap<ListenerId, Vec<Accepting>> = HashMap::new();
    for (id, socket, tls, limiter) in spec.sockets {
        add_listener(&mut listeners, id, socket, tls, limiter, &spawner);
    }
    let sweeper = {
        let builder = spawner.builder.clone();
        tokio::spawn(async move { builder.idle.sweep().await })
    };
    let reaper = {
        let pool = worker.pool.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(REAP_INTERVAL);
            loop {
                tick.tick().await;
                pool.reap();
            }
        })
    };

    let mut commands = spec.commands;
    let mut drain = spec.drain;
    loop {
        tokio::select! {
            biased;
            _ = draining(&mut drain) => {
                // Idle connections close now; busy ones after their response.
                spawner.builder.idle.start_drain();
                break;
            }
            // None (the coordinator is gone) disables this branch.
            Some(cmd) = commands.recv() => match cmd {
                WorkerCommand::AddListener { id, socket, tls, limiter, done } => {
                    add_listener(&mut listeners, id, socket, tls, limiter, &spawner);
                    let _ = done.send(());
                }
                WorkerCommand::RemoveListener { id, done } => {
                    // Dropping each `tls` stops its loop.
                    let tasks: Vec<_> = listeners
                        .remove(&id)
                        .unwrap_or_default()
                        .into_iter()
                        .map(|Accepting { tls, task }| {
                            drop(tls);
                            task
                        })
                        .collect();
                    // Acknowledge once every loop has closed its socket.
                    tokio::spawn(async move {
                        for task in tasks {
                            let _ = task.await;
                        }
                        let _ = done.send(());
                    });
                }
                WorkerCommand::SetTls { id, tls, done } => {
                    for a in listeners.get(&id).into_iter().flatten() {
                        a.tls.send_replace(tls.clone());
                    }
                    let _ = done.send(());
                }
            },
        }
    }
    // Only connection tasks hold `alive` from here on.
    drop(spawner);
    for a in listeners.into_values().flatten() {
        let _ = a.task.await;
    }
    if tokio::time::timeout(spec.grace, drained.recv())
        .await
        .is_err()
    {
        tracing::warn!(
            worker = spec.index,
            "grace period over; closing remaining connections"
        );
    }
    reaper.abort();
    sweeper.abort();
}

fn add_listener(
    listeners: &mut HashMap<ListenerId, Vec<Accepting>>,
    id: ListenerId,
    socket: std::net::TcpListener,
    tls: Option<TlsAcceptor>,
    limiter: Arc<ConnLimiter>,
    spawner: &ConnSpawner,
) {
    // Where clients connect to; a wildcard listener asks each connection.
    let bound = socket
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    let listener = match Acceptor::new(socket) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "cannot register listener");
            return;
        }
    };
    let (tls_tx, tls_rx) = watch::channel(tls);
    let task = tokio::spawn(accept_loop(
        listener,
        bound,
        tls_rx,
        limiter,
        spawner.clone(),
    ));
    listeners
        .entry(id)
        .or_default()
        .push(Accepting { tls: tls_tx, task });
}

async fn accept_loop(
    listener: Acceptor,
    bound: SocketAddr,
    mut tls_rx: watch::Receiver<Option<TlsAcceptor>>,
    limiter: Arc<ConnLimiter>,
    spawner: ConnSpawner,
) {
    let mut drain = spawner.drain.clone();
    let mut tls = tls_rx.borrow_and_update().clone();
    let mut last = LastClient::default();
    loop {
        let backlog = limiter.backlog();
        let (stream, peer, reserved) = tokio::select! {
            biased;
            _ = draining(&mut drain) => return,
            changed = tls_rx.changed() => {
                if changed.is_err() {
                    // Removed by a reload.
                    take_backlog(listener, bound, &tls, &limiter, &spawner, &mut last);
                    return;
                }
                tls = tls_rx.borrow_and_update().clone();
                continue;
            }
            r = next(&listener, &limiter, backlog) => match r {
                Ok(accepted) => accepted,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let accepted = Accepted {
            stream,
            peer,
            bound,
        };
        admit(accepted, reserved, &tls, &limiter, &spawner, &mut last);
    }
}

/// A connection just accepted, and the listener's address.
struct Accepted {
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    bound: SocketAddr,
}

impl Accepted {
    /// Our address the client connected to.
    fn server(&self) -> SocketAddr {
        if self.bound.ip().is_unspecified() {
            self.stream.local_addr().unwrap_or(self.bound)
        } else {
            self.bound
        }
    }
}

/// Admits the connection under its listener's limits and serves it; on a
/// PROXY protocol listener, its header is read first (`reserved`: the slot
/// a `backlog` accept took).
fn admit(
    accepted: Accepted,
    reserved: Option<Permit>,
    tls: &Option<TlsAcceptor>,
    limiter: &Arc<ConnLimiter>,
    spawner: &ConnSpawner,
    last: &mut LastClient,
) {
    let peer = accepted.peer;
    let Some(policy) = limiter.proxy_protocol() else {
        match limiter.admit(peer.ip(), reserved) {
            Some(permit) => {
                let server = accepted.server();
                serve(
                    accepted.stream,
                    peer,
                    server,
                    tls.clone(),
                    spawner,
                    last,
                    permit,
                )
            }
            None => tracing::debug!(client = %peer, "connection limit reached; closed"),
        }
        return;
    };
    let Some(slot) = limiter.admit_slot(reserved) else {
        tracing::debug!(client = %peer, "connection limit reached; closed");
        return;
    };
    // Its own short task: the header may take up to the header timeout.
    let (tls, limiter, spawner) = (tls.clone(), limiter.clone(), spawner.clone());
    let _alive = spawner.alive.clone();
    let conn = async move {
        let server = accepted.server();
        let Accepted {
            mut stream, peer, ..
        } = accepted;
        let timeout = spawner.header_timeout;
        let header = read_header(&mut stream, peer, &policy, timeout).await;
        let (client, server) = match header {
            Ok(carried) => carried.unwrap_or((peer, server)),
            Err(why) => {
                limiter.proxy_refused(&why);
                tracing::debug!(peer = %peer, reason = why.reason(), error = %why, "PROXY protocol: connection closed");
                return;
            }
        };
        let Some(permit) = limiter.admit_client(slot, client.ip()) else {
            tracing::debug!(client = %client, peer = %peer, "connection limit reached; closed");
            return;
        };
        serve(
            stream,
            client,
            server,
            tls,
            &spawner,
            &mut LastClient::default(),
            permit,
        );
    };
    tokio::spawn(Alive { conn, _alive });
}

/// The next connection; in `backlog` mode with the slot it takes, reserved
/// only once a connection is there (`Acceptor::accept_reserved`).
async fn next(
    listener: &Acceptor,
    limiter: &Arc<ConnLimiter>,
    backlog: bool,
) -> std::io::Result<(tokio::net::TcpStream, SocketAddr, Option<Permit>)> {
    if backlog {
        let (stream, peer, permit) = listener.accept_reserved(limiter).await?;
        Ok((stream, peer, Some(permit)))
    } else {
        let (stream, peer) = listener.accept().await?;
        Ok((stream, peer, None))
    }
}

/// The header strings of the last client address an accept loop saw. A
/// browser opens several connections in a row, and behind a load balancer
/// or a NAT most connections come from a few addresses: they share one
/// `ClientStrings` (and its three allocations) instead of one each.
#[derive(Default)]
struct LastClient(Option<(IpAddr, Arc<ClientStrings>)>);

impl LastClient {
    fn strings(&mut self, peer: SocketAddr, server: SocketAddr) -> Arc<ClientStrings> {
        match &self.0 {
            Some((ip, strings)) if *ip == peer.ip() && strings.server == server => strings.clone(),
            _ => {
                let strings = Arc::new(ClientStrings::with_server(ClientAddr(peer), server));
                self.0 = Some((peer.ip(), strings.clone()));
                strings
            }
        }
    }
}

/// A removed listener still serves the connections the kernel has already
/// completed (the client believes it is connected), then closes its socket:
/// from then on connecting is refused. A connection that lands between the
/// last `accept` and the close is reset by the kernel; that window is
/// one syscall wide.
fn take_backlog(
    listener: Acceptor,
    bound: SocketAddr,
    tls: &Option<TlsAcceptor>,
    limiter: &Arc<ConnLimiter>,
    spawner: &ConnSpawner,
    last: &mut LastClient,
) {
    let listener = listener.into_socket();
    // Non-blocking: stops at the first WouldBlock.
    while let Ok((stream, peer)) = Acceptor::accept_now(&listener) {
        match tokio::net::TcpStream::from_std(stream) {
            Ok(stream) => {
                let accepted = Accepted {
                    stream,
                    peer,
                    bound,
                };
                admit(accepted, None, tls, limiter, spawner, last);
            }
            Err(e) => tracing::debug!(client = %peer, error = %e, "cannot register connection"),
        }
    }
}

/// Spawns the connection's task. It holds `alive` and the worker's idle
/// clock (which carries the drain), not its listener: a listener removed by
/// a reload leaves it running.
///
/// `peer` is the client: the socket's peer, or the one a PROXY header
/// named; `server` the address it connected to. Both are set here once,
/// and everything after (forwarded headers, hashing, limits, logs, the
/// PROXY header we send on) reads them from the connection's context.
fn serve(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    server: SocketAddr,
    tls: Option<TlsAcceptor>,
    spawner: &ConnSpawner,
    last: &mut LastClient,
    permit: Permit,
) {
    let proto = if tls.is_some() { "https" } else { "http" };
    let mut ctx = ConnCtx::with_strings(
        spawner.worker.clone(),
        ClientAddr(peer),
        last.strings(peer, server),
        proto,
    );
    ctx.permit = Some(permit);
    let builder = spawner.builder.clone();
    let _alive = spawner.alive.clone();
    match tls {
        None => {
            tokio::spawn(plain_task(stream, Arc::new(ctx), builder, _alive));
        }
        // A task of its own type: a task is as large as its largest state,
        // and the TLS one (handshake, rustls session) is much larger than
        // an idle plain connection's.
        Some(acceptor) => {
            let header_timeout = spawner.header_timeout;
            let conn = async move {
                match tokio::time::timeout(header_timeout, acceptor.accept(stream)).await {
                    Ok(Ok(tls_stream)) => {
                        ctx.client_cert = client_cert::field(tls_stream.get_ref().1).map(Box::new);
                        conn::serve_tls(tls_stream, Arc::new(ctx), builder).await
                    }
                    Ok(Err(e)) => {
                        tracing::debug!(client = %peer, error = %e, "TLS handshake failed")
                    }
                    Err(_) => tracing::debug!(client = %peer, "TLS handshake timed out"),
                }
            };
            tokio::spawn(Alive { conn, _alive });
        }
    }
}

/// The task of a plain connection: what an idle HTTP/1.1 keep-alive
/// connection costs, besides its socket's registration and its `ConnCtx`.
pub(super) fn plain_task(
    stream: tokio::net::TcpStream,
    ctx: Arc<ConnCtx>,
    builder: Arc<ServerBuilder>,
    alive: mpsc::Sender<()>,
) -> Alive<impl Future<Output = ()> + Send> {
    Alive {
        conn: conn::serve(stream, ctx, builder),
        _alive: alive,
    }
}

/// Resolves once shutdown has begun (or the server is gone).
pub async fn draining(drain: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns is not `Send`; drop it here.
    let _ = drain.wait_for(|d| *d).await;
}

#[cfg(test)]
mod tests;
