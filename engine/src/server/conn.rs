//! One downstream connection: HTTP/1.1 or HTTP/2 (h2c by prior knowledge, or
//! h2 after ALPN). Plain TCP is told apart by its first bytes (the HTTP/2
//! preface), TLS by ALPN. HTTP/1.x goes to our own server ([`super::h1`]),
//! HTTP/2 to hyper's. On drain, HTTP/1.1 answers its current request with
//! `Connection: close` and HTTP/2 sends GOAWAY; in-flight requests finish.
//!
//! A plain connection waits for its first bytes the way an idle keep-alive
//! one waits for its next request: on the worker's [`IdleClock`], holding
//! nothing else. Everything a connection needs only once (the preface
//! sniff when it looks like HTTP/2, HTTP/2 itself, hyper) is boxed, so that
//! the task of an idle HTTP/1.1 connection is only as large as its idle
//! state.
//!
//! `SLUICE_H1=hyper` (read once at startup) serves HTTP/1.x with hyper-util's
//! `auto` builder instead, the previous engine, so the bench can compare both.

use super::h1;
use super::idle::IdleClock;
use crate::config::{Limits, Timeouts};
use crate::proxy::body::ReqBody;
use crate::proxy::{ConnCtx, handle};
use bytes::BytesMut;
use futures_util::FutureExt;
use http::Request;
use hyper::server::conn::http2;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;
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

/// The per-worker connection settings for every protocol, and the clock
/// its idle connections wait on (every connection holds this `Arc`).
pub struct ServerBuilder {
    pub engine: H1Engine,
    /// Keep-alive and first-byte deadlines, and the drain signal; its
    /// [`IdleClock::sweep`] runs as a task of the worker.
    pub idle: IdleClock,
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
        idle: IdleClock::new(timeouts.client_header),
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
/// else HTTP/1.x. (A function returning an `async` block: an `async fn`
/// would keep each argument twice in the task.)
#[expect(
    clippy::manual_async_fn,
    reason = "an async fn keeps its arguments twice"
)]
pub fn serve<I>(
    mut io: I,
    ctx: Arc<ConnCtx>,
    builder: Arc<ServerBuilder>,
) -> impl Future<Output = ()> + Send
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    async move {
        if builder.engine == H1Engine::Hyper {
            return Box::pin(serve_hyper(io, ctx, builder)).await;
        }
        // Moved out whole: a partly moved match would stay in the task.
        let (h2, mut first) = match sniff(&mut io, &builder).await {
            Ok(Some(sniffed)) => sniffed,
            // Closed, silent past the deadline, or drain: nothing to answer.
            Ok(None) => return,
            Err(e) => {
                tracing::debug!(client = %ctx.client, error = %e, "connection failed");
                return;
            }
        };
        if h2 {
            let io = h1::upgrade::Rewind::new(io, first.freeze());
            return Box::pin(serve_h2(io, ctx, &builder)).await;
        }
        let ended = serve_h1(&mut io, &mut first, &ctx, &builder).await;
        if let Some(upgrade) = h1_ended(&ctx, ended) {
            upgrade.hand_over(io);
        }
    }
}

/// Serves a TLS connection by its ALPN: `h2` or HTTP/1.x.
pub async fn serve_tls<I>(mut io: TlsStream<I>, ctx: Arc<ConnCtx>, builder: Arc<ServerBuilder>)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let h2 = io.get_ref().1.alpn_protocol() == Some(b"h2");
    match (builder.engine, h2) {
        (H1Engine::Hyper, _) => Box::pin(serve_hyper(io, ctx, builder)).await,
        (H1Engine::Sluice, true) => Box::pin(serve_h2(io, ctx, &builder)).await,
        (H1Engine::Sluice, false) => {
            let ended = serve_h1(&mut io, &mut BytesMut::new(), &ctx, &builder).await;
            if let Some(upgrade) = h1_ended(&ctx, ended) {
                upgrade.hand_over(io);
            }
        }
    }
}

/// Waits for the first bytes like an idle keep-alive connection, and tells
/// HTTP/2's preface from HTTP/1 (which differs at its first byte):
/// `(is_h2, bytes read)`, or `None` if the client left, stayed silent, or
/// drain began.
async fn sniff<I: AsyncRead + Unpin>(
    io: &mut I,
    builder: &ServerBuilder,
) -> std::io::Result<Option<(bool, BytesMut)>> {
    let deadline = Instant::now() + builder.h1.header_timeout;
    let mut first = match builder
        .idle
        .wait(deadline, |cx| h1::conn::read_idle(io, cx))
        .await
    {
        Ok(Ok(first)) if !first.is_empty() => first,
        Ok(Ok(_)) | Err(_) => return Ok(None),
        Ok(Err(e)) => return Err(e),
    };
    if first.len() < H2_PREFACE.len()
        && H2_PREFACE.starts_with(&first)
        && !Box::pin(read_preface(io, &mut first, deadline, &builder.idle)).await?
    {
        return Ok(None);
    }
    Ok(Some((first.starts_with(H2_PREFACE), first)))
}

/// Reads until `buf` differs from the HTTP/2 preface or holds all of it;
/// `false` if the client left, was too slow, or drain began first.
async fn read_preface<I: AsyncRead + Unpin>(
    io: &mut I,
    buf: &mut BytesMut,
    deadline: Instant,
    idle: &IdleClock,
) -> std::io::Result<bool> {
    let read = async {
        while buf.len() < H2_PREFACE.len() && H2_PREFACE.starts_with(buf) {
            let n =
                poll_fn(|cx| tokio_util::io::poll_read_buf(Pin::new(&mut *io), cx, buf)).await?;
            if n == 0 {
                return Ok(false);
            }
        }
        Ok(true)
    };
    tokio::select! {
        r = tokio::time::timeout_at(deadline, read) => r.unwrap_or(Ok(false)),
        _ = idle.draining() => Ok(false),
    }
}

/// HTTP/1.x with the proxy as the service. `h1::serve`'s own future, not
/// one around it (which would add its inputs to the task).
fn serve_h1<'a, I>(
    io: &'a mut I,
    first: &'a mut BytesMut,
    ctx: &'a Arc<ConnCtx>,
    builder: &'a ServerBuilder,
) -> impl Future<Output = Result<Option<h1::conn::Upgrade>, h1::ConnError>> + 'a
where
    I: AsyncRead + AsyncWrite + Unpin,
{
    // Each request's future is boxed here, once: `h1::serve` then holds and
    // moves only a pointer. (An `async move` wrapper would store the future
    // twice, as upvar and awaitee, and every move copies all of it.)
    let service = |req: Request<h1::RequestBody>| {
        Box::pin(handle(ctx.clone(), req.map(ReqBody::H1))).map(|r| match r {
            Ok(resp) => resp,
            Err(never) => match never {},
        })
    };
    h1::serve(io, first, &builder.h1, service, &builder.idle)
}

/// Logs how an HTTP/1 connection ended; an upgrade is for the caller, which
/// owns the IO, to hand over.
fn h1_ended(
    ctx: &ConnCtx,
    ended: Result<Option<h1::conn::Upgrade>, h1::ConnError>,
) -> Option<h1::conn::Upgrade> {
    match ended {
        Ok(upgrade) => upgrade,
        Err(e) if e.is_client() => {
            tracing::debug!(client = %ctx.client, error = %e, "connection ended with an error");
            None
        }
        Err(e) => {
            tracing::warn!(client = %ctx.client, error = %e, "connection ended with an error");
            None
        }
    }
}

async fn serve_h2<I>(io: I, ctx: Arc<ConnCtx>, builder: &ServerBuilder)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let client = ctx.client;
    let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
        handle(ctx.clone(), req.map(ReqBody::Incoming))
    });
    let conn = builder.h2.serve_connection(TokioIo::new(io), svc);
    tokio::pin!(conn);
    let finished = tokio::select! {
        r = conn.as_mut() => Some(r),
        _ = builder.idle.draining() => None,
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
async fn serve_hyper<I>(io: I, ctx: Arc<ConnCtx>, builder: Arc<ServerBuilder>)
where
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
        _ = builder.idle.draining() => None,
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

#[cfg(test)]
mod tests;
