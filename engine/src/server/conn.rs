//! One downstream connection: HTTP/1.1 or HTTP/2 (h2c by prior knowledge, or
//! h2 after ALPN) detected from the preface by hyper-util's `auto` builder.
//! On drain, HTTP/1.1 answers its current request with `Connection: close`
//! and HTTP/2 sends GOAWAY; in-flight requests finish.

use crate::config::{Limits, Timeouts};
use crate::proxy::{ConnCtx, handle};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;

pub type ServerBuilder = auto::Builder<TokioExecutor>;

/// The per-worker connection settings.
pub fn builder(limits: &Limits, timeouts: &Timeouts) -> ServerBuilder {
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        // Applies to every request head, so it also bounds keep-alive idle time.
        .header_read_timeout(timeouts.client_header)
        .max_buf_size(limits.max_header_bytes.max(8192))
        .max_headers(limits.max_headers)
        .keep_alive(true);
    b.http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.h2_max_concurrent_streams)
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
        .keep_alive_interval(timeouts.client_idle)
        .keep_alive_timeout(timeouts.client_header);
    b
}

/// Serves requests on `io` until the client leaves or the drain completes.
pub async fn serve<I>(
    io: I,
    ctx: Arc<ConnCtx>,
    builder: Arc<ServerBuilder>,
    mut drain: watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let client = ctx.client;
    let svc = service_fn(move |req| handle(ctx.clone(), req));
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), svc);
    tokio::pin!(conn);
    let finished = tokio::select! {
        r = conn.as_mut() => Some(r),
        _ = super::worker::draining(&mut drain) => None,
    };
    let result = match finished {
        Some(r) => r,
        None => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(%client, error = %e, "connection ended with an error");
    }
}
