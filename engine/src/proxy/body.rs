//! Body types of the request path. Bodies are never collected: frames pass
//! through as `Bytes` (reference-counted, not copied), and nothing is boxed
//! but the request's record ([`Observed`]).

use super::compress::CompressBody;
use crate::body::{Phase, Progress};
use crate::error::{BoxError, ErrorKind, ProxyError};
use crate::observe::Exchange;
use crate::state::State;
use crate::upstream::backend::InFlight;
use crate::upstream::h1;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;
use tokio::time::{Instant, Sleep};

/// A response body on its way to the client.
#[derive(Debug)]
pub enum RespBody {
    Upstream(UpstreamBody),
    /// The backend's body, compressed on the way (gzip, br or zstd:
    /// `proxy::compress`).
    Compressed(CompressBody<UpstreamBody>),
    /// A response the proxy makes itself (errors).
    Full(Option<Bytes>),
    /// Any of those, counted into the request's record, which is finished
    /// when this body is dropped (`proxy::handle` wraps every response).
    Observed(Box<Observed>),
}

impl RespBody {
    pub fn full(bytes: impl Into<Bytes>) -> RespBody {
        RespBody::Full(Some(bytes.into()))
    }

    /// `self`, finishing `exchange` when the client has had it, or when
    /// either side gave it up (the body dropped unfinished).
    pub fn observed(self, exchange: Exchange, state: Arc<State>) -> RespBody {
        RespBody::Observed(Box::new(Observed {
            body: self,
            exchange,
            state,
            ended: false,
        }))
    }
}

/// A response body on its way to the client, and the request's record.
#[derive(Debug)]
pub struct Observed {
    body: RespBody,
    exchange: Exchange,
    /// The state the request was served under: its routes name the route
    /// index in the record, its settings say where the record goes.
    state: Arc<State>,
    /// The body's last frame was polled.
    ended: bool,
}

impl Observed {
    fn poll_frame(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let item = ready!(Pin::new(&mut self.body).poll_frame(cx));
        match &item {
            Some(Ok(f)) => {
                if let Some(d) = f.data_ref() {
                    self.exchange.bytes_out += d.len() as u64;
                }
            }
            Some(Err(_)) => {}
            None => self.ended = true,
        }
        Poll::Ready(item)
    }
}

impl Drop for Observed {
    fn drop(&mut self) {
        let e = &mut self.exchange;
        e.completed = self.ended || self.body.is_end_stream();
        e.duration = e.started.elapsed();
        if let RespBody::Compressed(c) = &self.body {
            e.compressed = Some((c.encoding(), c.input_bytes()));
        }
        crate::observe::finish(&self.state, e);
    }
}

impl Body for RespBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            RespBody::Upstream(b) => Pin::new(b).poll_frame(cx),
            RespBody::Compressed(b) => Pin::new(b).poll_frame(cx),
            RespBody::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            RespBody::Observed(o) => o.poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            RespBody::Upstream(b) => b.is_end_stream(),
            RespBody::Compressed(b) => b.is_end_stream(),
            RespBody::Full(b) => b.is_none(),
            RespBody::Observed(o) => o.body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            RespBody::Upstream(b) => b.size_hint(),
            RespBody::Compressed(b) => b.size_hint(),
            RespBody::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            RespBody::Observed(o) => o.body.size_hint(),
        }
    }
}

/// Where a backend's response body comes from.
#[derive(Debug)]
pub enum Upstream {
    /// Our HTTP/1.1 client ([`crate::upstream::h1`]); the connection goes
    /// back to the pool at the body's end.
    H1(h1::ResponseBody),
    /// hyper's HTTP/2 client, and the phase of the request body it may
    /// still be sending (`None`: no body to wait on).
    Hyper(Incoming, Option<Arc<Progress>>),
}

impl Upstream {
    /// Who has the next move in sending the request: the client while the
    /// rest of its body is awaited (a full-duplex exchange: an echo streams
    /// its answer while the upload still arrives); `cx` is woken when it
    /// changes.
    fn upload_phase(&self, cx: &Context<'_>) -> Phase {
        match self {
            Upstream::H1(b) => b.upload_phase(),
            Upstream::Hyper(_, p) => p.as_ref().map_or(Phase::Sent, |p| p.phase(cx)),
        }
    }
}

/// The backend's response body, which also ends the request's in-flight
/// count when it is done (a half-open backend's trial succeeds only here,
/// with the whole response), and cuts the response when the backend stalls:
/// nothing for `stall` while the client wants the next bytes fails the body
/// ([`ErrorKind::UpstreamBodyTimeout`]), so the client connection ends
/// (HTTP/1.1: closed after the partial body; HTTP/2: the stream is reset)
/// and the backend's is dropped. The clock runs only while the backend has
/// the next move: from a poll that finds nothing (a client slow to read is
/// never held against the backend), and never while the backend waits on
/// the client's upload ([`Phase::Client`]). A stall or a reset mid-body is
/// the backend's failure (`Backend::record_late_failure`), unless the
/// client had the move or its body had failed.
#[derive(Debug)]
pub struct UpstreamBody {
    inner: Upstream,
    in_flight: Option<InFlight>,
    stall: Duration,
    /// Made at the first wait only (boxed: `Sleep` is not `Unpin`): a
    /// body that is all here when the client asks never has one.
    timer: Option<Pin<Box<Sleep>>>,
    /// Polled, and the backend sent nothing yet.
    waiting: bool,
    /// The clock is held: the backend waits on the client's upload; it
    /// restarts in full when the move comes back to the backend.
    held: bool,
    /// The head was no failure (not a 5xx, which passive health has heard
    /// of already): the body's end is the outcome.
    ok: bool,
}

impl UpstreamBody {
    /// `ok`: the head was not a 5xx (see `ok`).
    pub fn new(inner: Upstream, in_flight: InFlight, stall: Duration, ok: bool) -> UpstreamBody {
        let mut body = UpstreamBody {
            inner,
            in_flight: Some(in_flight),
            stall,
            timer: None,
            waiting: false,
            held: false,
            ok,
        };
        if body.is_end_stream() {
            body.end(None);
        }
        body
    }

    /// The body is over: in full (`None`), or with the backend's failure
    /// (`Some(true)`) or not its fault (`Some(false)`).
    fn end(&mut self, failed: Option<bool>) {
        let Some(mut in_flight) = self.in_flight.take() else {
            return;
        };
        if !self.ok {
            // A 5xx: counted once, at its head.
            return;
        }
        match failed {
            None => in_flight.succeed(),
            Some(true) => in_flight.backend().record_late_failure(),
            Some(false) => {}
        }
    }
}

/// Whether a failure now is the backend's: it had the move.
fn backend_moves(phase: Phase) -> bool {
    matches!(phase, Phase::Sending | Phase::Sent)
}

impl Body for UpstreamBody {
    type Data = Bytes;
    /// Boxed only when a body fails (a cold path).
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let polled = match &mut this.inner {
            Upstream::H1(b) => Pin::new(b).poll_frame(cx).map_err(Into::into),
            Upstream::Hyper(b, _) => Pin::new(b).poll_frame(cx).map_err(Into::into),
        };
        let Poll::Ready(frame) = polled else {
            return this.wait(cx);
        };
        this.waiting = false;
        match &frame {
            Some(Err(e)) if this.in_flight.is_some() => {
                let blame = backend_moves(this.inner.upload_phase(cx));
                if blame && let Some(f) = &this.in_flight {
                    tracing::warn!(backend = %f.backend().addr, error = %e, "response body failed: the backend broke it off");
                }
                this.end(Some(blame));
            }
            None => this.end(None),
            Some(_) if this.is_end_stream() => this.end(None),
            Some(_) => {}
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        if self.in_flight.is_none() && self.waiting {
            // Cut for a stall: nothing more comes.
            return true;
        }
        match &self.inner {
            Upstream::H1(b) => b.is_end_stream(),
            Upstream::Hyper(b, _) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Upstream::H1(b) => b.size_hint(),
            Upstream::Hyper(b, _) => b.size_hint(),
        }
    }
}

impl UpstreamBody {
    /// The backend has nothing for the client: (re)start its clock on the
    /// first empty poll, or when the move comes back to it from the
    /// client's upload, and cut the body once the clock runs out.
    fn wait(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if self.in_flight.is_none() {
            // Already cut (or over): the inner body is not read again.
            return Poll::Ready(None);
        }
        let phase = self.inner.upload_phase(cx);
        if phase == Phase::Client {
            // The backend waits on us (woken by the client's next bytes,
            // or by the phase's change).
            self.held = true;
            return Poll::Pending;
        }
        if !self.waiting || self.held {
            self.waiting = true;
            self.held = false;
            let deadline = Instant::now() + self.stall;
            match &mut self.timer {
                Some(t) => t.as_mut().reset(deadline),
                None => self.timer = Some(Box::pin(tokio::time::sleep_until(deadline))),
            }
        }
        if let Some(t) = &mut self.timer {
            ready!(t.as_mut().poll(cx));
        }
        let err = ProxyError::new(ErrorKind::UpstreamBodyTimeout);
        if let Some(in_flight) = &self.in_flight {
            let backend = in_flight.backend();
            tracing::warn!(backend = %backend.addr, stall = ?self.stall, error = %err, "response body cut: the backend stalled");
        }
        // A backend left waiting by a client body that failed is not to
        // blame for its silence.
        self.end(Some(backend_moves(phase)));
        Poll::Ready(Some(Err(err.into())))
    }
}
