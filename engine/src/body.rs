//! The request body as it travels: from a downstream connection (our
//! HTTP/1.1 server's body channel, or hyper's HTTP/2 stream) to a backend
//! (our HTTP/1.1 client, or hyper's HTTP/2 client). Frames pass through as
//! `Bytes`; nothing is collected or boxed.
//!
//! It is also where the two sides of an upload are timed apart, so that a
//! slow client is never taken for a slow backend: the client is held to
//! `timeouts.client_body` between two reads of its body ([`ReqBody::timed`],
//! a 408), and the backend's clock ([`BackendClock`]) runs only while the
//! backend has the next move ([`Phase`]).

use crate::error::{BoxError, ErrorKind};
use crate::http1::decode::{BodyError, client_body_kind};
use crate::observe::Trail;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use parking_lot::Mutex;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker, ready};
use std::time::Duration;
use tokio::time::{Instant, Sleep};

/// A request body on its way to a backend.
#[derive(Debug)]
pub enum ReqBody {
    /// Streamed from an HTTP/2 client by hyper as it arrives.
    Incoming(crate::server::h2::RequestBody),
    /// Streamed from the client by our HTTP/1.1 server (`server::h1`).
    H1(crate::http1::RequestBody),
    /// Either of those, with the client's pace timed: what a backend is sent.
    Timed(TimedBody),
    /// No body (and so a request that can be replayed).
    Empty,
    /// One try's view of a body kept for retries (`proxy::replay`); its
    /// source is already timed.
    Replay(crate::proxy::replay::ReplayBody),
}

/// What a client's body is held to on its way to a backend (see
/// [`ReqBody::timed`]). Each bound is checked against time the proxy spends
/// waiting on the client only, never while the backend is slow to take
/// the bytes.
#[derive(Clone, Copy, Debug)]
pub struct BodyLimits {
    /// Longest silence while the body is wanted (`timeouts.client_body`).
    pub idle: Duration,
    /// Slowest average upload, in bytes per second of waited time, once
    /// `grace` of it has passed (`limits.min_body_rate`); 0 turns it off.
    pub min_rate: u32,
    pub grace: Duration,
    /// Most body bytes (`limits.max_request_body`); 0 is no limit.
    pub max_bytes: u64,
}

impl BodyLimits {
    /// Only the silence bound: no rate, no size limit.
    pub const fn idle(idle: Duration) -> BodyLimits {
        BodyLimits {
            idle,
            min_rate: 0,
            grace: Duration::ZERO,
            max_bytes: 0,
        }
    }
}

impl ReqBody {
    /// This body, held to `limits`: the client gets at most `limits.idle`
    /// to send its next bytes whenever they are wanted ([`BodyError::TimedOut`],
    /// a 408), must average `min_rate` over the time it is waited on
    /// ([`BodyError::TooSlow`], a 408), and may send at most `max_bytes`
    /// ([`BodyError::TooLarge`], a 413). A body with nothing to wait for is
    /// left as it is.
    pub fn timed(self, limits: BodyLimits) -> ReqBody {
        let source = match self {
            ReqBody::Incoming(b) => Source::Incoming(b),
            ReqBody::H1(b) => Source::H1(b),
            done @ (ReqBody::Timed(_) | ReqBody::Empty | ReqBody::Replay(_)) => return done,
        };
        ReqBody::Timed(TimedBody {
            source,
            limits,
            timer: None,
            waiting: false,
            failed: false,
            slow: false,
            received: 0,
            waited: Duration::ZERO,
            wait_start: None,
            progress: None,
            trail: None,
        })
    }

    /// This body's bytes, as the client sends them, added to `trail`'s
    /// count (what the access log and metrics report as bytes in). Only a
    /// timed body counts: any other has none from the client to count.
    pub fn counted(mut self, trail: &Arc<Trail>) -> ReqBody {
        if let ReqBody::Timed(t) = &mut self {
            t.trail = Some(trail.clone());
        }
        self
    }

    /// Whether the body waits on the client for its next bytes (it was
    /// polled, and the client has sent nothing since).
    pub fn waits_on_client(&self) -> bool {
        match self {
            ReqBody::Timed(t) => t.waiting,
            ReqBody::Replay(r) => r.waits_on_client(),
            _ => false,
        }
    }

    /// The body's [`Progress`], for a body polled on another task (hyper's
    /// HTTP/2 client pipes it from a task of its own): one small allocation
    /// per request with a body to an HTTP/2 backend. `None` for a body that
    /// never waits on the client (its phase is always `Sending`).
    pub fn progress(&mut self) -> Option<Arc<Progress>> {
        match self {
            ReqBody::Timed(t) => Some(t.progress.get_or_insert_with(Default::default).clone()),
            ReqBody::Replay(r) => r.progress(),
            _ => None,
        }
    }
}

impl ReqBody {
    /// For a body kept for retries (`proxy::replay`), whose phase a new try
    /// inherits from the last: `waiting` says whether the try at hand waits
    /// on the client (a try starts by sending the frames kept, the backend's
    /// move). Only `Client` and `Sending` swap; `Sent` and `Failed` stay.
    pub(crate) fn set_try_waiting(&self, waiting: bool) {
        if let ReqBody::Timed(TimedBody {
            progress: Some(p), ..
        }) = self
        {
            let mut s = p.state.lock();
            let phase = match (s.0, waiting) {
                (Phase::Sending, true) => Phase::Client,
                (Phase::Client, false) => Phase::Sending,
                _ => return,
            };
            s.0 = phase;
            if let Some(w) = s.1.take() {
                w.wake();
            }
        }
    }
}

impl Body for ReqBody {
    type Data = Bytes;
    /// Boxed only when a body fails (a cold path); hyper's client takes any
    /// error that converts into a `BoxError`.
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.get_mut() {
            ReqBody::Incoming(b) => Pin::new(b).poll_frame(cx).map_err(Into::into),
            ReqBody::H1(b) => Pin::new(b).poll_frame(cx).map_err(Into::into),
            ReqBody::Timed(b) => b.poll_frame(cx),
            ReqBody::Empty => Poll::Ready(None),
            ReqBody::Replay(b) => b.poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ReqBody::Incoming(b) => b.is_end_stream(),
            ReqBody::H1(b) => b.is_end_stream(),
            ReqBody::Timed(b) => b.failed || b.source.is_end_stream(),
            ReqBody::Empty => true,
            ReqBody::Replay(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ReqBody::Incoming(b) => b.size_hint(),
            ReqBody::H1(b) => b.size_hint(),
            ReqBody::Timed(b) => b.source.size_hint(),
            ReqBody::Empty => SizeHint::with_exact(0),
            ReqBody::Replay(b) => b.size_hint(),
        }
    }
}

/// Where a timed body's bytes come from.
#[derive(Debug)]
enum Source {
    Incoming(crate::server::h2::RequestBody),
    H1(crate::http1::RequestBody),
}

impl Source {
    fn poll_frame(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self {
            Source::Incoming(b) => Pin::new(b).poll_frame(cx).map_err(Into::into),
            Source::H1(b) => Pin::new(b).poll_frame(cx).map_err(Into::into),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Source::Incoming(b) => b.is_end_stream(),
            Source::H1(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Source::Incoming(b) => b.size_hint(),
            Source::H1(b) => b.size_hint(),
        }
    }
}

/// A client's body with its pace timed (see [`ReqBody::timed`]). The clock
/// runs only from a poll that finds nothing to the next frame: a body the
/// backend is slow to take is never held against the client. One timer
/// serves every bound: each wait arms it for whichever comes first, the
/// silence limit or the moment the average would fall below the rate.
#[derive(Debug)]
pub struct TimedBody {
    source: Source,
    limits: BodyLimits,
    /// Boxed (`Sleep` is not `Unpin`) and made at the first wait only: a
    /// body that is all here when asked for never has one.
    timer: Option<Pin<Box<Sleep>>>,
    /// Polled, and nothing came yet: the client has the next move.
    waiting: bool,
    /// Failed (timed out, too slow, too large): it yields nothing more.
    failed: bool,
    /// The armed deadline is the rate's, not the silence limit's.
    slow: bool,
    /// Body bytes the client sent so far.
    received: u64,
    /// Client time before the current wait (kept only with a rate).
    waited: Duration,
    /// When the current wait began (only with a rate).
    wait_start: Option<Instant>,
    progress: Option<Arc<Progress>>,
    /// The request's record, told of every chunk (see [`ReqBody::counted`]).
    trail: Option<Arc<Trail>>,
}

impl TimedBody {
    fn poll_frame(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if self.failed {
            return Poll::Ready(None);
        }
        let Poll::Ready(item) = self.source.poll_frame(cx) else {
            return self.wait(cx);
        };
        if self.waiting {
            self.waiting = false;
            // The one clock read a frame costs, and only after a wait with
            // a rate to keep.
            if let Some(start) = self.wait_start.take() {
                self.waited += Instant::now().saturating_duration_since(start);
            }
        }
        if let Some(Ok(f)) = &item
            && let Some(d) = f.data_ref()
        {
            self.received += d.len() as u64;
            if let Some(t) = &self.trail {
                t.add_bytes_in(d.len() as u64);
            }
            if self.limits.max_bytes != 0 && self.received > self.limits.max_bytes {
                return self.fail(BodyError::TooLarge);
            }
        }
        let phase = match &item {
            Some(Ok(f)) if !f.is_trailers() && !self.source.is_end_stream() => Phase::Sending,
            Some(Ok(_)) | None => Phase::Sent,
            Some(Err(e)) => Phase::Failed(client_body_kind(&**e)),
        };
        self.set(phase);
        Poll::Ready(item)
    }

    /// The client has nothing for us: (re)start its clock on the first
    /// empty poll, and fail the body once the clock runs out.
    fn wait(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if !self.waiting {
            self.waiting = true;
            let now = Instant::now();
            let mut deadline = now + self.limits.idle;
            self.slow = false;
            if self.limits.min_rate != 0 {
                self.wait_start = Some(now);
                // Kestrel's rule: past the grace, the bytes received must
                // be at least `min_rate` times the time waited.
                let earned = Duration::from_micros(
                    self.received.saturating_mul(1_000_000) / u64::from(self.limits.min_rate),
                );
                let left = self.limits.grace.max(earned).saturating_sub(self.waited);
                if left < self.limits.idle {
                    deadline = now + left;
                    self.slow = true;
                }
            }
            match &mut self.timer {
                Some(t) => t.as_mut().reset(deadline),
                None => self.timer = Some(Box::pin(tokio::time::sleep_until(deadline))),
            }
            self.set(Phase::Client);
        }
        if let Some(t) = &mut self.timer {
            ready!(t.as_mut().poll(cx));
        }
        self.fail(if self.slow {
            BodyError::TooSlow
        } else {
            BodyError::TimedOut
        })
    }

    fn fail(&mut self, e: BodyError) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.waiting = false;
        self.failed = true;
        self.set(Phase::Failed(e.kind()));
        Poll::Ready(Some(Err(e.into())))
    }

    fn set(&self, phase: Phase) {
        if let Some(p) = &self.progress {
            p.set(phase);
        }
    }
}

/// Who has the next move in sending a request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Phase {
    /// The backend: to take the request bytes we hold.
    #[default]
    Sending,
    /// The client: its body's next bytes are wanted.
    Client,
    /// The backend: the request is all out, and its answer is due.
    Sent,
    /// The client's body failed (with this kind): the request cannot end.
    Failed(ErrorKind),
}

/// A body's [`Phase`], shared with the task that times the backend when the
/// body is polled on another (hyper's HTTP/2 client pipes a request body
/// from a task of its own); that task is woken on every change.
#[derive(Debug, Default)]
pub struct Progress {
    /// # Concurrency
    /// A `parking_lot` mutex, not tokio's: held only to swap the phase or
    /// the waker, never across an `.await`. The body's task takes it on a
    /// change of phase, the request's task each time it is polled.
    state: Mutex<(Phase, Option<Waker>)>,
}

impl Progress {
    /// The phase now; `cx` is woken when it changes.
    pub fn phase(&self, cx: &Context<'_>) -> Phase {
        let mut s = self.state.lock();
        match &s.1 {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => s.1 = Some(cx.waker().clone()),
        }
        s.0
    }

    fn set(&self, phase: Phase) {
        let mut s = self.state.lock();
        if s.0 != phase {
            s.0 = phase;
            if let Some(w) = s.1.take() {
                w.wake();
            }
        }
    }
}

pin_project_lite::pin_project! {
    /// The backend's clock for one exchange: `limit` for each stretch in
    /// which the backend has the next move (taking the request, then
    /// answering it), restarted whenever the move comes back to it, and
    /// stopped while the client's body is awaited. So an upload is never
    /// timed against the backend, and a backend that stalls on a request
    /// already sent still gets its 504. [`BackendClock::total`] is the
    /// same clock with one `limit` for all stretches together (a retried
    /// try's `per_try_timeout`).
    pub struct BackendClock {
        #[pin]
        sleep: Sleep,
        limit: Duration,
        // The phase at the last poll; `None` before the first, whose
        // stretch is timed from `new` (no timer reset for a request that
        // goes out at once, which is most of them).
        seen: Option<Phase>,
        // `total` only: the time left when the client took the move.
        left: Option<Duration>,
    }
}

/// Whether the backend has the next move in `phase`.
fn backends_move(phase: Phase) -> bool {
    matches!(phase, Phase::Sending | Phase::Sent)
}

impl BackendClock {
    pub fn new(limit: Duration) -> BackendClock {
        BackendClock {
            sleep: tokio::time::sleep(limit),
            limit,
            seen: None,
            left: None,
        }
    }

    /// `limit` for the backend's moves together: paused while the client
    /// has the move, resumed (not restarted) when the move comes back.
    pub fn total(limit: Duration) -> BackendClock {
        BackendClock {
            left: Some(limit),
            ..BackendClock::new(limit)
        }
    }

    /// Ready once the backend has had its `limit` in the current stretch
    /// (with [`BackendClock::total`], in all its stretches).
    pub fn poll_expired(self: Pin<&mut Self>, phase: Phase, cx: &mut Context<'_>) -> Poll<()> {
        let mut me = self.project();
        let (was, now) = (me.seen.is_none_or(backends_move), backends_move(phase));
        match me.left {
            None if me.seen.is_some_and(|seen| seen != phase) && now => {
                me.sleep.as_mut().reset(Instant::now() + *me.limit);
            }
            None => {}
            Some(left) if was && !now => {
                *left = me
                    .sleep
                    .deadline()
                    .saturating_duration_since(Instant::now());
            }
            Some(left) if !was && now => {
                me.sleep.as_mut().reset(Instant::now() + *left);
            }
            Some(_) => {}
        }
        *me.seen = Some(phase);
        match phase {
            Phase::Sending | Phase::Sent => me.sleep.poll(cx),
            Phase::Client | Phase::Failed(_) => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests;
