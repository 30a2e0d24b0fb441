//! One downstream connection: HTTP/1.1 or HTTP/2 (h2c by prior knowledge, or
//! h2 after ALPN). Plain TCP is told apart by its first bytes (the HTTP/2
//! preface), TLS by ALPN. HTTP/1.x goes to our own server ([`super::h1`]),
//! HTTP/2 to hyper's. On drain, HTTP/1.1 answers its current request with
//! `Connection: close` and HTTP/2 sends GOAWAY; in-flight requests finish.
//!
//! A plain connection's task is [`PlainConn`]: it waits for its first
//! bytes the way an idle keep-alive connection waits for its next request,
//! on the worker's [`IdleClock`] and holding nothing else, and runs all the
//! rest (a busy period of HTTP/1.1, the rest of a preface, hyper's HTTP/2)
//! as boxed phases. An idle HTTP/1.1 connection is a 256-byte task, its
//! socket's registration with tokio (256 bytes) and its `ConnCtx` (80).

use super::h1;
use super::idle::IdleClock;
use crate::body::ReqBody;
use crate::config::{Limits, Timeouts};
use crate::context::ConnCtx;
use crate::proxy::body::RespBody;
use crate::proxy::handle;
use bytes::BytesMut;
use futures_util::FutureExt;
use http::Request;
use http::Response;
use hyper::server::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::futures::OwnedNotified;
use tokio::time::Instant;
use tokio_rustls::server::TlsStream;

/// The client connection preface of HTTP/2 with prior knowledge (RFC 9113 §3.4).
const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The per-worker connection settings for every protocol, and the clock
/// its idle connections wait on (every connection holds this `Arc`).
pub struct ServerBuilder {
    /// Keep-alive and first-byte deadlines, and the drain signal; its
    /// [`IdleClock::sweep`] runs as a task of the worker.
    pub idle: IdleClock,
    h1: h1::Settings,
    h2: super::h2::Settings,
}

/// The per-worker connection settings.
pub fn builder(limits: &Limits, timeouts: &Timeouts) -> ServerBuilder {
    let mut h2 = http2::Builder::new(TokioExecutor::new());
    // Keep-alive PINGs find dead peers during long streams; idle
    // connections are closed by `h2::serve` after `client_idle`.
    h2.timer(TokioTimer::new())
        .max_concurrent_streams(limits.h2_max_concurrent_streams)
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
        .keep_alive_interval(timeouts.client_idle)
        .keep_alive_timeout(timeouts.client_header);
    ServerBuilder {
        idle: IdleClock::new(timeouts.client_header),
        h1: h1::Settings {
            limits: *limits,
            header_timeout: timeouts.client_header,
        },
        h2: super::h2::Settings {
            builder: h2,
            idle_timeout: timeouts.client_idle,
            close_timeout: timeouts.client_header,
        },
    }
}

/// Serves a plain TCP connection: HTTP/2 if it opens with the preface,
/// else HTTP/1.x. The future is the connection's task; see [`PlainConn`].
pub fn serve<I>(io: I, ctx: Arc<ConnCtx>, builder: Arc<ServerBuilder>) -> PlainConn<I>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let deadline = Instant::now() + builder.h1.header_timeout;
    let state = State::First {
        woken: builder.idle.waiter(deadline),
        io,
    };
    PlainConn {
        ctx,
        builder,
        deadline,
        state,
    }
}

/// A phase of a plain connection that owns its IO: `Some` gives it back,
/// idle between HTTP/1.1 requests; `None` when the connection is over.
type Phase<I> = Pin<Box<dyn Future<Output = Option<I>> + Send>>;

pin_project_lite::pin_project! {
    /// The task of a plain connection, hand-written because it is what
    /// every idle keep-alive connection costs. While it waits (for the first
    /// bytes, or between requests) it holds the socket, two `Arc`s, the
    /// deadline and one waiter on the worker's [`IdleClock`]: 136 bytes,
    /// a 256-byte task. Anything else is a boxed [`Phase`] that owns the
    /// socket while it runs (an `async` state machine would keep the
    /// socket, the references into it and the sniffed bytes in every state,
    /// and a 384-byte task, aligned to 128, takes a 512-byte block from
    /// mimalloc like a 512-byte one).
    pub struct PlainConn<I> {
        ctx: Arc<ConnCtx>,
        builder: Arc<ServerBuilder>,
        // First bytes or next request head due: the keep-alive limit.
        deadline: Instant,
        #[pin]
        state: State<I>,
    }
}

pin_project_lite::pin_project! {
    #[project = StateProj]
    #[project_replace = StateOwned]
    enum State<I> {
        // Waiting for the first bytes: they tell HTTP/2 from HTTP/1.
        First { io: I, #[pin] woken: OwnedNotified },
        // Between HTTP/1.1 requests, holding no buffer.
        Idle { io: I, #[pin] woken: OwnedNotified },
        Running { phase: Phase<I> },
        Done,
    }
}

/// What a waiting connection was woken by.
enum Woken {
    Bytes(BytesMut),
    Failed(std::io::Error),
    /// EOF, the deadline, or drain: close quietly (dropping the socket
    /// sends the FIN; nothing is unread).
    Close,
}

impl<I> Future for PlainConn<I>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut this = self.project();
        loop {
            let woken = match this.state.as_mut().project() {
                StateProj::First { io, woken } | StateProj::Idle { io, woken } => {
                    ready!(poll_waiting(
                        io,
                        woken,
                        &this.builder.idle,
                        *this.deadline,
                        cx
                    ))
                }
                StateProj::Running { phase } => {
                    let next = match ready!(phase.as_mut().poll(cx)) {
                        Some(io) => {
                            *this.deadline = Instant::now() + this.builder.h1.header_timeout;
                            State::Idle {
                                woken: this.builder.idle.waiter(*this.deadline),
                                io,
                            }
                        }
                        None => State::Done,
                    };
                    this.state.set(next);
                    continue;
                }
                StateProj::Done => return Poll::Ready(()),
            };
            let (ctx, builder, deadline) = (&*this.ctx, &*this.builder, *this.deadline);
            let next = match (this.state.as_mut().project_replace(State::Done), woken) {
                (StateOwned::First { io, .. }, Woken::Bytes(bytes)) => {
                    let phase = phase(io, bytes, true, ctx.clone(), builder.clone(), deadline);
                    State::Running {
                        phase: Box::pin(phase),
                    }
                }
                (StateOwned::Idle { io, .. }, Woken::Bytes(bytes)) => {
                    let phase = phase(io, bytes, false, ctx.clone(), builder.clone(), deadline);
                    State::Running {
                        phase: Box::pin(phase),
                    }
                }
                (StateOwned::First { .. }, Woken::Failed(e)) => {
                    tracing::debug!(client = %ctx.client, error = %e, "connection failed");
                    State::Done
                }
                (StateOwned::Idle { .. }, Woken::Failed(e)) => {
                    h1_failed(ctx, &h1::ConnError::Io(e));
                    State::Done
                }
                _ => State::Done,
            };
            this.state.set(next);
        }
    }
}

fn poll_waiting<I: AsyncRead + Unpin>(
    io: &mut I,
    woken: Pin<&mut OwnedNotified>,
    idle: &IdleClock,
    deadline: Instant,
    cx: &mut Context<'_>,
) -> Poll<Woken> {
    match h1::read_idle(io, cx) {
        Poll::Ready(Ok(got)) if !got.is_empty() => Poll::Ready(Woken::Bytes(got)),
        Poll::Ready(Ok(_)) => Poll::Ready(Woken::Close),
        Poll::Ready(Err(e)) => Poll::Ready(Woken::Failed(e)),
        Poll::Pending => idle.poll_ended(deadline, woken, cx).map(|_| Woken::Close),
    }
}

/// Bytes arrived on a waiting connection: one HTTP/1.1 busy period
/// ([`h1::busy`]), `Some` when the connection is idle again. The
/// connection's `first` bytes may be HTTP/2's preface instead (its rest is
/// read first when it came in pieces).
async fn phase<I>(
    mut io: I,
    mut bytes: BytesMut,
    first: bool,
    ctx: Arc<ConnCtx>,
    builder: Arc<ServerBuilder>,
    deadline: Instant,
) -> Option<I>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // An HTTP/1 request differs from the preface at its first byte.
    if first && bytes.len() < H2_PREFACE.len() && H2_PREFACE.starts_with(&bytes) {
        match read_preface(&mut io, &mut bytes, deadline, &builder.idle).await {
            Ok(true) => {}
            Ok(false) => return None,
            Err(e) => {
                tracing::debug!(client = %ctx.client, error = %e, "connection failed");
                return None;
            }
        }
    }
    if first && bytes.starts_with(H2_PREFACE) {
        let io = crate::http1::upgrade::Rewind::new(io, bytes.freeze());
        // Boxed: every HTTP/1 busy period would be as large as HTTP/2's state.
        Box::pin(super::h2::serve(io, ctx, &builder.h2, &builder.idle)).await;
        return None;
    }
    let mut service = |req| h1_request(&ctx, req);
    let busy = h1::busy(
        &mut io,
        bytes,
        &builder.h1,
        &ctx.interim,
        &mut service,
        deadline,
        &builder.idle,
    );
    match busy.await {
        Ok(h1::Busy::Idle) => Some(io),
        Ok(h1::Busy::Closed) => None,
        Ok(h1::Busy::Upgrade(upgrade)) => {
            upgrade.hand_over(Holding { io, _ctx: ctx });
            None
        }
        Err(e) => {
            h1_failed(&ctx, &e);
            None
        }
    }
}

/// Serves a TLS connection by its ALPN: `h2` or HTTP/1.x. (Its task is
/// large anyway, with the TLS session in it: `h1::serve` waits in it.)
pub async fn serve_tls<I>(mut io: TlsStream<I>, ctx: Arc<ConnCtx>, builder: Arc<ServerBuilder>)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let h2 = io.get_ref().1.alpn_protocol() == Some(b"h2");
    if h2 {
        Box::pin(super::h2::serve(io, ctx, &builder.h2, &builder.idle)).await
    } else {
        let service = |req| h1_request(&ctx, req);
        let mut first = BytesMut::new();
        let served = h1::serve(
            &mut io,
            &mut first,
            &builder.h1,
            &ctx.interim,
            service,
            &builder.idle,
        );
        match served.await {
            Ok(None) => {}
            Ok(Some(upgrade)) => upgrade.hand_over(Holding { io, _ctx: ctx }),
            Err(e) => h1_failed(&ctx, &e),
        }
    }
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

/// The proxy as the HTTP/1 service. Each request's future is boxed here,
/// once: `h1` then holds and moves only a pointer. (An `async move` wrapper
/// would store the future twice, as upvar and awaitee, and every move
/// copies all of it.)
fn h1_request(
    ctx: &Arc<ConnCtx>,
    req: Request<crate::http1::RequestBody>,
) -> impl Future<Output = Response<RespBody>> + Send + 'static {
    Box::pin(handle(ctx.clone(), req.map(ReqBody::H1))).map(|r| match r {
        Ok(resp) => resp,
        Err(never) => match never {},
    })
}

/// Logs why an HTTP/1 connection ended with an error, and counts the
/// refusal it answered, if any (`sluice_proxy_errors_total`): a head
/// refused here never reaches `proxy::handle` and its record.
fn h1_failed(ctx: &ConnCtx, e: &h1::ConnError) {
    if let Some(refusal) = e.refusal() {
        let state = ctx.worker.shared.state.load();
        if state.metrics.enabled {
            let reason = refusal.kind().reason();
            state.metrics.process.refused(reason.as_bytes());
        }
    }
    if e.is_client() {
        tracing::debug!(client = %ctx.client, error = %e, "connection ended with an error");
    } else {
        tracing::warn!(client = %ctx.client, error = %e, "connection ended with an error");
    }
}

/// An upgraded connection's socket, with its connection's context: the
/// tunnel outlives the connection task, and the context holds the
/// connection's place under its listener's limits (`server::conn_limit`),
/// which must last as long as the socket is open (else a client could open
/// WebSockets past `max_connections` until the process ran out of fds).
struct Holding<I> {
    io: I,
    _ctx: Arc<ConnCtx>,
}

impl<I: AsyncRead + Unpin> AsyncRead for Holding<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Holding<I> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests;
