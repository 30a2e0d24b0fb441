//! Stage: `server::conn` picked HTTP/2 (the preface, or ALPN `h2`) →
//! **`server::h2`** serves the connection with hyper, each stream a call
//! of `proxy::handle`; its writes are gathered by [`super::coalesce`]. On
//! drain it sends GOAWAY and lets the open streams finish.

use super::coalesce::Coalesce;
use super::idle::IdleClock;
use crate::body::ReqBody;
use crate::context::ConnCtx;
use crate::proxy::handle;
use http::Request;
use hyper::server::conn::http2;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};

/// Serves one HTTP/2 connection until it ends or drain completes.
pub async fn serve<I>(
    io: I,
    ctx: Arc<ConnCtx>,
    settings: &http2::Builder<TokioExecutor>,
    idle: &IdleClock,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let client = ctx.client;
    // Boxed: hyper spawns each stream as a task holding this future, and
    // moves it several times on the way; inline, its ~1 KiB was copied at
    // every move (2.7k instructions per request under callgrind).
    let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
        Box::pin(handle(ctx.clone(), req.map(ReqBody::Incoming)))
    });
    let conn = settings.serve_connection(TokioIo::new(Coalesce::new(io)), svc);
    tokio::pin!(conn);
    let finished = tokio::select! {
        r = conn.as_mut() => Some(r),
        _ = idle.draining() => None,
    };
    let result = match finished {
        Some(r) => r,
        None => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(%client, error = %e, "h2 connection ended with an error");
    }
}
