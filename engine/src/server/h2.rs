//! Stage: `server::conn` picked HTTP/2 (the preface, or ALPN `h2`) →
//! **`server::h2`** serves the connection with hyper, each stream a call
//! of `proxy::handle`; its writes are gathered by [`super::coalesce`]. On
//! drain it sends GOAWAY and lets the open streams finish.
//!
//! # Idle connections
//! A connection with no open stream for `timeouts.client_idle` is closed
//! the same graceful way: GOAWAY (NO_ERROR), then the close once the client
//! has answered its PING. hyper's keep-alive PINGs only find dead peers; a
//! client that answers them (any live one does) would otherwise hold its
//! connection, about 23 KB, forever. A stream is open from the request until
//! its response body is done ([`Tracked`]) and its request body has ended or
//! been dropped ([`RequestBody`]), so a slow backend, a long response or an
//! upload that goes on after the answer (to an h2 backend) never counts as
//! idle, and nothing the client sends without a stream (PING, SETTINGS,
//! WINDOW_UPDATE) resets the clock.

use super::coalesce::Coalesce;
use super::idle::IdleClock;
use crate::body::ReqBody;
use crate::context::ConnCtx;
use crate::proxy::handle;
use bytes::Bytes;
use futures_util::FutureExt;
use http::Request;
use http_body::{Body, Frame, SizeHint};
use hyper::server::conn::http2;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::task::{Context, Poll, ready};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::Notify;
use tokio::time::Instant;

/// The per-worker HTTP/2 settings.
pub struct Settings {
    pub builder: http2::Builder<TokioExecutor>,
    /// A connection without an open stream this long is closed.
    pub idle_timeout: Duration,
    /// How long a connection that was sent GOAWAY for idleness may take to
    /// close (the client's PING answer) before it is dropped.
    pub close_timeout: Duration,
}

/// Serves one HTTP/2 connection until it ends, drain completes or it has
/// been idle for [`Settings::idle_timeout`].
pub async fn serve<I>(io: I, ctx: Arc<ConnCtx>, settings: &Settings, idle: &IdleClock)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let client = ctx.client;
    // Counted as HTTP/2 in its listener's connections until this returns.
    let _h2 = ctx.permit.as_ref().map(|p| p.h2());
    let streams = Arc::new(Streams::new());
    let svc = {
        let streams = streams.clone();
        service_fn(move |req: Request<hyper::body::Incoming>| {
            let open = Open::new(streams.clone());
            let req = req.map(|body| ReqBody::Incoming(RequestBody::new(body, &streams)));
            // Boxed: hyper spawns each stream as a task holding this future,
            // and moves it several times on the way; inline, its ~1 KiB was
            // copied at every move (2.7k instructions per request under
            // callgrind). The stream's response half stays open until the
            // response body is done; if the future is dropped first (a
            // reset), with it.
            Box::pin(handle(ctx.clone(), req))
                .map(move |r| r.map(|resp| resp.map(|body| Tracked { body, _open: open })))
        })
    };
    let conn = settings
        .builder
        .serve_connection(TokioIo::new(Coalesce::new(io)), svc);
    tokio::pin!(conn);
    enum Ended<R> {
        Closed(R),
        Draining,
        Idle,
    }
    let ended = tokio::select! {
        r = conn.as_mut() => Ended::Closed(r),
        _ = idle.draining() => Ended::Draining,
        _ = streams.idle_for(settings.idle_timeout) => Ended::Idle,
    };
    let result = match ended {
        Ended::Closed(r) => r,
        Ended::Draining => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
        Ended::Idle => {
            tracing::debug!(%client, "h2 connection idle: GOAWAY");
            conn.as_mut().graceful_shutdown();
            // Streams opened before the client saw GOAWAY are served; a
            // client that never answers the PING is dropped, not waited for.
            streams.restart_idle();
            let closing = tokio::select! {
                r = conn.as_mut() => Some(r),
                _ = streams.idle_for(settings.close_timeout) => None,
                _ = idle.draining() => None,
            };
            match closing {
                Some(r) => r,
                None if idle.is_draining() => conn.await,
                None => Ok(()),
            }
        }
    };
    if let Err(e) = result {
        tracing::debug!(%client, error = %e, "h2 connection ended with an error");
    }
}

/// The open streams of one connection and when the last one ended.
#[derive(Debug)]
struct Streams {
    epoch: Instant,
    /// Open halves of streams: each stream's response until it is done
    /// ([`Tracked`]) and its request body until it is over ([`RequestBody`]);
    /// a stream is open while either is.
    ///
    /// # Concurrency
    /// Changed by the streams' tasks (hyper spawns one per stream on the
    /// worker's runtime; a request body may be read on an h2 backend's
    /// task) and read by the connection's task. `SeqCst`, and a half stores
    /// `idle_since` before it decrements `open`: whoever sees `open == 0`
    /// also sees when that happened.
    open: AtomicUsize,
    /// Nanoseconds from `epoch` to when a stream last ended (or the
    /// connection began, or [`Streams::restart_idle`]): when `open` is 0,
    /// the moment the connection went idle.
    idle_since: AtomicU64,
    /// Wakes the connection's task when `open` falls to zero. `notify_one`
    /// keeps a permit when nobody waits, so a fall between its check and
    /// its wait is not missed.
    went_idle: Notify,
}

impl Streams {
    fn new() -> Streams {
        Streams {
            epoch: Instant::now(),
            open: AtomicUsize::new(0),
            idle_since: AtomicU64::new(0),
            went_idle: Notify::new(),
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Starts the idle clock again from now (with no stream open).
    fn restart_idle(&self) {
        self.idle_since.store(self.now(), SeqCst);
    }

    /// Resolves once no stream has been open for `timeout`.
    async fn idle_for(&self, timeout: Duration) {
        loop {
            if self.open.load(SeqCst) > 0 {
                self.went_idle.notified().await;
                continue;
            }
            let since = self.idle_since.load(SeqCst);
            let deadline = self.epoch + Duration::from_nanos(since) + timeout;
            tokio::time::sleep_until(deadline).await;
            // A stream that began and ended meanwhile moved `idle_since`.
            if self.open.load(SeqCst) == 0 && self.idle_since.load(SeqCst) == since {
                return;
            }
        }
    }
}

/// One open half of a stream; dropping it closes it.
#[derive(Debug)]
struct Open(Arc<Streams>);

impl Open {
    fn new(streams: Arc<Streams>) -> Open {
        streams.open.fetch_add(1, SeqCst);
        Open(streams)
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        let s = &self.0;
        s.idle_since.store(s.now(), SeqCst);
        if s.open.fetch_sub(1, SeqCst) == 1 {
            s.went_idle.notify_one();
        }
    }
}

/// A client's request body on one stream: it keeps its half of the stream
/// open until it has ended (or failed) or is dropped, however long after
/// the response that is (an h2 backend may answer and go on reading).
#[derive(Debug)]
pub struct RequestBody {
    body: hyper::body::Incoming,
    /// `None` once the body is over.
    open: Option<Open>,
}

impl RequestBody {
    fn new(body: hyper::body::Incoming, streams: &Arc<Streams>) -> RequestBody {
        // A request without a body (END_STREAM on its HEADERS) has no half to hold.
        let open = (!body.is_end_stream()).then(|| Open::new(streams.clone()));
        RequestBody { body, open }
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = &mut *self;
        let frame = ready!(Pin::new(&mut this.body).poll_frame(cx));
        if !matches!(frame, Some(Ok(_))) || this.body.is_end_stream() {
            this.open = None;
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

pin_project_lite::pin_project! {
    /// A response body that keeps its half of the stream open until hyper
    /// drops it (sent in full, or the stream reset).
    struct Tracked<B> {
        #[pin]
        body: B,
        _open: Open,
    }
}

impl<B: Body<Data = Bytes>> Body for Tracked<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        self.project().body.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn idle_ends_only_after_the_last_stream_and_a_whole_timeout() {
        let timeout = Duration::from_secs(10);
        let streams = Arc::new(Streams::new());
        let idle = {
            let s = streams.clone();
            tokio::spawn(async move { s.idle_for(timeout).await })
        };
        tokio::time::sleep(Duration::from_secs(4)).await;
        let open = Open::new(streams.clone());
        // Long past the first deadline, with a stream open: not idle.
        tokio::time::sleep(Duration::from_secs(30)).await;
        assert!(!idle.is_finished());
        let ended = Instant::now();
        drop(open);
        // Streams that begin and end meanwhile push the deadline on.
        tokio::time::sleep(Duration::from_secs(5)).await;
        drop(Open::new(streams.clone()));
        let last = Instant::now();
        idle.await.expect("idle task");
        assert!(last.elapsed() >= timeout, "{:?}", ended.elapsed());
    }
}
