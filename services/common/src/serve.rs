//! The accept loop and per-connection tasks every service runs, with
//! graceful shutdown.
//!
//! On shutdown the listener is dropped first (new connections are refused),
//! then every connection is told to finish: hyper closes idle keep-alive
//! connections at once and lets in-flight requests complete. Connections
//! still busy after the grace period are aborted, so shutdown is bounded.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::{Body, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

/// Pause after a failed `accept` (e.g. EMFILE, out of file descriptors) so
/// the loop does not spin while the condition lasts.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// What answers a service's requests: any `Fn(Request) -> impl Future<Output =
/// Response>` that can be shared by the connection tasks. A service maps its
/// own errors to statuses, so nothing here can fail a request.
pub trait Handler: Send + Sync + 'static {
    type Body: Body<Data: Send, Error: Into<Box<dyn std::error::Error + Send + Sync>>>
        + Send
        + 'static;
    type Future: Future<Output = Response<Self::Body>> + Send + 'static;

    fn handle(&self, request: Request<Incoming>) -> Self::Future;
}

impl<H, Fut, B> Handler for H
where
    H: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response<B>> + Send + 'static,
    B: Body<Data: Send, Error: Into<Box<dyn std::error::Error + Send + Sync>>> + Send + 'static,
{
    type Body = B;
    type Future = Fut;

    fn handle(&self, request: Request<Incoming>) -> Fut {
        self(request)
    }
}

/// Serves `handler` on `listener` (HTTP/1.1 or h2c, detected per
/// connection) until `shutdown` completes, then drains for at most `grace`
/// and returns what `shutdown` returned.
pub async fn serve<H: Handler, S: Future>(
    listener: TcpListener,
    handler: H,
    shutdown: S,
    grace: Duration,
) -> S::Output {
    let handler = Arc::new(handler);
    // `true` once shutdown begins; each connection task watches it. Only
    // this function sends, once.
    let (drain_tx, drain_rx) = watch::channel(false);
    // Owns every connection task, so shutdown can wait for (or abort) them,
    // and dropping it (if the serving task is aborted) aborts them too.
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    let stopped = loop {
        tokio::select! {
            stopped = &mut shutdown => break stopped,
            // Reap finished tasks so the set does not grow without bound.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    tracing::trace!(%peer, "accepted");
                    connections.spawn(connection(stream, Arc::clone(&handler), drain_rx.clone()));
                }
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
        }
    };
    drop(listener);
    tracing::info!(open = connections.len(), "draining connections");
    let _ = drain_tx.send(true);
    let drained = tokio::time::timeout(grace, async {
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
    stopped
}

/// One client connection, until it closes or the drain has finished it.
async fn connection<H: Handler>(
    stream: TcpStream,
    handler: Arc<H>,
    mut drain: watch::Receiver<bool>,
) {
    let service = service_fn(move |request| {
        let response = handler.handle(request);
        async move { Ok::<_, Infallible>(response.await) }
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

#[cfg(test)]
mod tests;
