//! Accept loop and per-connection tasks, with graceful shutdown.
//!
//! On shutdown the listener is dropped first (new connections are refused),
//! then every connection is told to finish: hyper closes idle keep-alive
//! connections at once and lets in-flight requests complete. Connections
//! still busy after [`DRAIN_GRACE`] are aborted so that shutdown is bounded.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::api::Api;
use crate::store::Store;

/// How long in-flight requests get to finish after shutdown begins.
pub const DRAIN_GRACE: Duration = Duration::from_secs(30);
/// Pause after a failed `accept` (e.g. out of file descriptors) so the loop
/// does not spin while the condition lasts.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Serves `api` on `listener` until `shutdown` completes, then drains.
pub async fn serve<S: Store>(
    listener: TcpListener,
    api: Arc<Api<S>>,
    shutdown: impl Future<Output = ()>,
) {
    // `true` once shutdown begins; each connection task watches it.
    let (drain_tx, drain_rx) = watch::channel(false);
    // Owns every connection task, so shutdown can wait for (or abort) them.
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            // Reap finished tasks so the set does not grow without bound.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    tracing::trace!(%peer, "accepted");
                    connections.spawn(connection(stream, Arc::clone(&api), drain_rx.clone()));
                }
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
        }
    }
    drop(listener);
    let open = connections.len();
    tracing::info!(open, "shutting down: draining connections");
    let _ = drain_tx.send(true);
    let drained = tokio::time::timeout(DRAIN_GRACE, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            aborted = connections.len(),
            "drain grace elapsed; aborting connections"
        );
        connections.shutdown().await;
    }
}

/// One client connection (HTTP/1.1 or h2c, detected by hyper-util `auto`).
async fn connection<S: Store>(
    stream: tokio::net::TcpStream,
    api: Arc<Api<S>>,
    mut drain: watch::Receiver<bool>,
) {
    let service = service_fn(move |request| {
        let api = Arc::clone(&api);
        async move { Ok::<_, Infallible>(api.handle(request).await) }
    });
    let builder = auto::Builder::new(TokioExecutor::new());
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    let finished = tokio::select! {
        result = conn.as_mut() => Some(result),
        // `wait_for`'s guard is dropped here, before the next `.await`.
        _ = drain.wait_for(|draining| *draining) => None,
    };
    let result = match finished {
        Some(result) => result,
        None => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(error) = result {
        // Clients vanishing mid-request are routine; not worth a warning.
        tracing::debug!(
            error = &*error as &dyn std::error::Error,
            "connection error"
        );
    }
}
