//! Accept loop and connection tasks, with draining.
//!
//! Accepts until `stop` turns true. Then the listener is dropped (new
//! connections are refused), every connection is told to finish (hyper
//! closes idle keep-alive connections at once and lets in-flight requests
//! complete), and connections still busy after `grace` are aborted.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::{App, api};

/// Pause after a failed `accept` (e.g. EMFILE) so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

pub async fn serve(
    listener: TcpListener,
    app: Arc<App>,
    mut stop: watch::Receiver<bool>,
    grace: Duration,
) {
    let (drain_tx, drain_rx) = watch::channel(false);
    // Owns every connection task: dropping it (if this task is aborted)
    // aborts them too.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    let _ = stream.set_nodelay(true);
                    connections.spawn(connection(stream, Arc::clone(&app), drain_rx.clone()));
                }
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
        }
    }
    drop(listener);
    tracing::info!(open = connections.len(), "draining connections");
    let _ = drain_tx.send(true);
    let drained = tokio::time::timeout(grace, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            left = connections.len(),
            "grace period over: aborting connections"
        );
        connections.shutdown().await;
    }
}

async fn connection(stream: TcpStream, app: Arc<App>, mut drain: watch::Receiver<bool>) {
    let svc = service_fn(move |req| {
        let app = Arc::clone(&app);
        async move { Ok::<_, Infallible>(api::handle(app, req).await) }
    });
    let builder = auto::Builder::new(TokioExecutor::new());
    let conn = builder.serve_connection(TokioIo::new(stream), svc);
    tokio::pin!(conn);
    tokio::select! {
        res = conn.as_mut() => {
            if let Err(error) = res {
                tracing::debug!(%error, "connection error");
            }
        }
        _ = drain.changed() => {
            conn.as_mut().graceful_shutdown();
            if let Err(error) = conn.await {
                tracing::debug!(%error, "connection error while draining");
            }
        }
    }
}
