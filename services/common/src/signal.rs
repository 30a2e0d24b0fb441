//! The one shutdown signal of every service binary.

use std::future::Future;
use std::pin::Pin;

use tokio::signal::unix::{SignalKind, signal};

/// The future a service's `run` is given to know when to stop. Boxed: it is
/// built once per process, so the allocation costs nothing, and callers can
/// name its type.
pub type Shutdown = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Completes on the first SIGTERM or SIGINT (Ctrl-C).
///
/// SIGTERM is watched from this call on, not from the first poll, so one
/// that arrives between the call and the first `.await` is not lost. Must be
/// called inside a Tokio runtime.
pub fn shutdown_signal() -> Shutdown {
    let term = signal(SignalKind::terminate());
    Box::pin(async move {
        let mut term = match term {
            Ok(term) => term,
            Err(error) => {
                tracing::warn!(%error, "cannot watch SIGTERM; only Ctrl-C stops the service");
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received"),
            _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
        }
    })
}
