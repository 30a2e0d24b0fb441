//! One downstream connection: HTTP/1.1 or HTTP/2 (h2c by prior knowledge, or
//! h2 after ALPN). Plain TCP is told apart by its first bytes (the HTTP/2
//! preface), TLS by ALPN. HTTP/1.x goes to our own server ([`super::h1`]),
//! HTTP/2 to hyper's. On drain, HTTP/1.1 answers its current request with
//! `Connection: close` and HTTP/2 sends GOAWAY; in-flight requests finish.
//!
//! `SLUICE_H1=hyper` (read once at startup) serves HTTP/1.x with hyper-util's
//! `auto` builder instead, the previous engine, so the bench can compare both.

use super::h1;
use crate::config::{Limits, Timeouts};
use crate::proxy::body::ReqBody;
use crate::proxy::{ConnCtx, handle};
use bytes::Bytes;
use futures_util::FutureExt;
use http::Request;
use hyper::server::conn::http2;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use std::sync::{Arc, OnceLock};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::sync::watch;
use tokio_rustls::server::TlsStream;

/// The client connection preface of HTTP/2 with prior knowledge (RFC 9113 §3.4).
const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Which server speaks HTTP/1.x to clients.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum H1Engine {
    /// [`super::h1`]: strict framing, no buffer while idle.
    Sluice,
    /// hyper's, through hyper-util's `auto` builder (for comparison).
    Hyper,
}

impl H1Engine {
    /// From `SLUICE_H1` (`hyper` or `sluice`, default `sluice`), read once.
    pub fn from_env() -> H1Engine {
        static ENGINE: OnceLock<H1Engine> = OnceLock::new();
        *ENGINE.get_or_init(|| match std::env::var("SLUICE_H1").as_deref() {
            Ok("hyper") => H1Engine::Hyper,
            _ => H1Engine::Sluice,
        })
    }
}

/// The per-worker connection settings for every protocol.
pub struct ServerBuilder {
    pub engine: H1Engine,
    h1: h1::Settings,
    h2: http2::Builder<TokioExecutor>,
    /// Used only with [`H1Engine::Hyper`].
    auto: auto::Builder<TokioExecutor>,
}

/// The per-worker connection settings.
pub fn builder(limits: &Limits, timeouts: &Timeouts) -> ServerBuilder {
    let mut h2 = http2::Builder::new(TokioExecutor::new());
    h2.timer(TokioTimer::new())
        .max_concurrent_streams(limits.h2_max_concurrent_streams)
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
        .keep_alive_interval(timeouts.client_idle)
        .keep_alive_timeout(timeouts.client_header);
    ServerBuilder {
        engine: H1Engine::from_env(),
        h1: h1::Settings {
            limits: *limits,
            header_timeout: timeouts.client_header,
        },
        h2,
        auto: hyper_builder(limits, timeouts),
    }
}

fn hyper_builder(limits: &Limits, timeouts: &Timeouts) -> auto::Builder<TokioExecutor> {
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

/// Serves a plain TCP connection: HTTP/2 if it opens with the preface,
/// else HTTP/1.x. The HTTP/2 and hyper futures are boxed (once per
/// connection) so that an idle HTTP/1 connection's task is only as large as
/// our HTTP/1 state, not as hyper's.
pub async fn serve<I>(
    mut io: I,
    ctx: Arc<ConnCtx>,
    builder: Arc<ServerBuilder>,
    mut drain: watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    if builder.engine == H1Engine::Hyper {
        return Box::pin(serve_hyper(io, ctx, builder, drain)).await;
    }
    let mut first = [0u8; H2_PREFACE.len()];
    let sniffed = tokio::select! {
        r = tokio::time::timeout(builder.h1.header_timeout, sniff(&mut io, &mut first)) => r,
        _ = super::worker::draining(&mut drain) => return,
    };
    match sniffed {
        Ok(Ok((0, _))) | Err(_) => {} // closed or silent: nothing to answer
        Ok(Ok((n, true))) => {
            let io = h1::upgrade::Rewind::new(io, Bytes::copy_from_slice(&first[..n]));
            Box::pin(serve_h2(io, ctx, &builder, drain)).await;
        }
        Ok(Ok((n, false))) => serve_h1(io, &first[..n], ctx, &builder, drain).await,
        Ok(Err(e)) => tracing::debug!(client = %ctx.client, error = %e, "connection failed"),
    }
}

/// Serves a TLS connection by its ALPN: `h2` or HTTP/1.x.
pub async fn serve_tls<I>(
    io: TlsStream<I>,
    ctx: Arc<ConnCtx>,
    builder: Arc<ServerBuilder>,
    drain: watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let h2 = io.get_ref().1.alpn_protocol() == Some(b"h2");
    match (builder.engine, h2) {
        (H1Engine::Hyper, _) => Box::pin(serve_hyper(io, ctx, builder, drain)).await,
        (H1Engine::Sluice, true) => Box::pin(serve_h2(io, ctx, &builder, drain)).await,
        (H1Engine::Sluice, false) => serve_h1(io, &[], ctx, &builder, drain).await,
    }
}

/// Reads until the bytes differ from the HTTP/2 preface or match all of it;
/// `(read, is_h2)`. An HTTP/1 request differs at its first byte.
async fn sniff<I: AsyncRead + Unpin>(
    io: &mut I,
    buf: &mut [u8; H2_PREFACE.len()],
) -> std::io::Result<(usize, bool)> {
    let mut n = 0;
    loop {
        let got = io.read(&mut buf[n..]).await?;
        if got == 0 {
            return Ok((n, false));
        }
        n += got;
        if buf[..n] != H2_PREFACE[..n] {
            return Ok((n, false));
        }
        if n == H2_PREFACE.len() {
            return Ok((n, true));
        }
    }
}

async fn serve_h1<I>(
    io: I,
    initial: &[u8],
    ctx: Arc<ConnCtx>,
    builder: &ServerBuilder,
    drain: watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let client = ctx.client;
    // The request's future is boxed here, once: `h1::serve` then holds and
    // moves only a pointer. (An `async move` wrapper would store the future
    // twice, as upvar and awaitee, and every move copies all of it.)
    let svc = move |req: Request<h1::RequestBody>| {
        Box::pin(handle(ctx.clone(), req.map(ReqBody::H1))).map(|r| match r {
            Ok(resp) => resp,
            Err(never) => match never {},
        })
    };
    if let Err(e) = h1::serve(io, initial, &builder.h1, svc, drain).await {
        if e.is_client() {
            tracing::debug!(%client, error = %e, "connection ended with an error");
        } else {
            tracing::warn!(%client, error = %e, "connection ended with an error");
        }
    }
}

async fn serve_h2<I>(
    io: I,
    ctx: Arc<ConnCtx>,
    builder: &ServerBuilder,
    mut drain: watch::Receiver<bool>,
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
    let conn = builder.h2.serve_connection(TokioIo::new(io), svc);
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
        tracing::debug!(%client, error = %e, "h2 connection ended with an error");
    }
}

/// The previous engine: hyper-util's `auto` for HTTP/1.x and HTTP/2.
async fn serve_hyper<I>(
    io: I,
    ctx: Arc<ConnCtx>,
    builder: Arc<ServerBuilder>,
    mut drain: watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let client = ctx.client;
    let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
        handle(ctx.clone(), req.map(ReqBody::Incoming))
    });
    let conn = builder
        .auto
        .serve_connection_with_upgrades(TokioIo::new(io), svc);
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
