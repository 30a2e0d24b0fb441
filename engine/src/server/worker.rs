//! A worker: one OS thread with a single-threaded tokio runtime, its own
//! listening sockets (SO_REUSEPORT) and its own upstream pool. A request is
//! accepted, proxied and answered on one thread: no cross-thread handoff and
//! no contended lock on the path (nginx's shape).

use super::conn::{self, ServerBuilder};
use crate::addr::ClientAddr;
use crate::proxy::{ConnCtx, Worker};
use crate::state::Shared;
use crate::upstream::pool::Pool;
use std::io;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_rustls::TlsAcceptor;

/// How often idle upstream connections past their timeout are dropped.
const REAP_INTERVAL: Duration = Duration::from_secs(5);

pub struct WorkerSpec {
    pub index: usize,
    /// 1: a current-thread runtime (thread per core). More: one
    /// work-stealing runtime with that many threads serving every socket.
    pub threads: usize,
    pub sockets: Vec<(std::net::TcpListener, Option<TlsAcceptor>)>,
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

async fn run(spec: WorkerSpec) {
    let state = spec.shared.state.load_full();
    let worker = Arc::new(Worker {
        shared: spec.shared.clone(),
        pool: Arc::new(Pool::new(state.timeouts.upstream_idle)),
    });
    let builder = Arc::new(conn::builder(&state.limits, &state.timeouts));
    let header_timeout = state.timeouts.client_header;
    drop(state);

    // Every connection task holds a clone of `alive`; when the last one is
    // dropped, `recv()` returns None and the worker knows it has drained.
    let (alive, mut drained) = mpsc::channel::<()>(1);
    let mut accepting = Vec::new();
    for (socket, tls) in spec.sockets {
        let listener = match TcpListener::from_std(socket) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(error = %e, "cannot register listener");
                continue;
            }
        };
        accepting.push(tokio::spawn(accept_loop(
            listener,
            tls,
            worker.clone(),
            builder.clone(),
            spec.drain.clone(),
            alive.clone(),
            header_timeout,
        )));
    }
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
    drop(alive);

    let mut drain = spec.drain;
    draining(&mut drain).await;
    for a in accepting {
        let _ = a.await;
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
}

async fn accept_loop(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    worker: Arc<Worker>,
    builder: Arc<ServerBuilder>,
    mut drain: watch::Receiver<bool>,
    alive: mpsc::Sender<()>,
    header_timeout: Duration,
) {
    let proto = if tls.is_some() { "https" } else { "http" };
    loop {
        let (stream, peer) = tokio::select! {
            biased;
            _ = draining(&mut drain) => return,
            r = listener.accept() => match r {
                Ok(pair) => pair,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let ctx = Arc::new(ConnCtx::new(worker.clone(), ClientAddr(peer), proto));
        let (builder, drain, alive, tls) =
            (builder.clone(), drain.clone(), alive.clone(), tls.clone());
        tokio::spawn(async move {
            let _alive = alive;
            match tls {
                None => conn::serve(stream, ctx, builder, drain).await,
                // Boxed: a task is as large as its largest state, and the TLS
                // one (handshake, rustls session) would otherwise make every
                // idle plain connection's task that large too.
                Some(acceptor) => {
                    Box::pin(async move {
                        match tokio::time::timeout(header_timeout, acceptor.accept(stream)).await {
                            Ok(Ok(tls_stream)) => {
                                conn::serve_tls(tls_stream, ctx, builder, drain).await
                            }
                            Ok(Err(e)) => {
                                tracing::debug!(client = %peer, error = %e, "TLS handshake failed")
                            }
                            Err(_) => tracing::debug!(client = %peer, "TLS handshake timed out"),
                        }
                    })
                    .await
                }
            }
        });
    }
}

/// Resolves once shutdown has begun (or the server is gone).
pub async fn draining(drain: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns is not `Send`; drop it here.
    let _ = drain.wait_for(|d| *d).await;
}
