//! The replay buffer: a request body kept, as it is sent, so that a retry
//! can send it again (`proxy::retry`). Frames pass to the backend as they
//! come (the stream is never held back); a copy of each (a `Bytes` clone,
//! no byte copy) stays here while the body fits in `limit`. Past the limit
//! the copies are dropped and the request is no longer retryable: it
//! streams on as any other.
//!
//! Each try reads the body through its own [`ReplayBody`] handle: first the
//! frames kept, then the client's body itself, which stays here between
//! tries. Starting a try supersedes the handles of earlier ones, so a
//! backend abandoned mid-body (hyper's HTTP/2 client reads on a task of its
//! own) can never take frames meant for the next.

use crate::body::{Progress, ReqBody};
use crate::error::{BoxError, ErrorKind};
use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use parking_lot::Mutex;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// A request body that can be sent more than once, while it fits.
#[derive(Debug)]
pub struct Replay {
    shared: Arc<Mutex<Kept>>,
}

/// The body as it stands between tries.
///
/// # Concurrency
/// A `parking_lot` mutex, not tokio's: held only within a poll (never
/// across an `.await`). Only one handle is current at a time; a superseded
/// one (an abandoned try whose body hyper still polls) takes the lock just
/// to learn that it is.
#[derive(Debug)]
struct Kept {
    /// The client's body (already timed against the client's pace).
    source: ReqBody,
    /// What was taken from `source` so far, while it fits in `limit`.
    frames: Vec<Kept1>,
    /// Frames taken from `source` so far (`frames.len()` until spoiled): a
    /// handle reads `source` itself only once it has sent as many.
    taken: usize,
    kept_bytes: usize,
    limit: usize,
    /// Past `limit`, or the client's body failed: no more tries.
    spoiled: bool,
    /// The client's body failed (how: `http1::decode::client_body_kind`):
    /// what it yields next is no body's rest.
    failed: Option<ErrorKind>,
    /// `source` has ended.
    ended: bool,
    /// The current try; other handles are superseded.
    generation: u32,
}

#[derive(Debug, Clone)]
enum Kept1 {
    Data(Bytes),
    Trailers(HeaderMap),
}

/// What a superseded handle's body yields: the try it served was abandoned.
#[derive(Debug, thiserror::Error)]
#[error("request body superseded by a retry")]
pub struct Superseded;

/// What a handle yields when the frames it has still to send were dropped
/// after its try began: never a body with a hole in it. Which side lost
/// them decides the request's error (`http1::decode::client_body_kind`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Lost {
    /// The client's body failed so (a 413, a 408, the client gone): the
    /// request fails as it would have without retries.
    #[error("request body failed on the client's side")]
    Client(ErrorKind),
    /// The replay buffer outgrew its limit: the proxy's doing, not the
    /// client's. The retry loop never starts a try behind a spoiled
    /// buffer, so this is a broken invariant, a 500.
    #[error("request body no longer kept for this try: past the replay buffer")]
    Buffer,
}

impl Lost {
    pub fn kind(self) -> ErrorKind {
        match self {
            Lost::Client(kind) => kind,
            Lost::Buffer => ErrorKind::Internal,
        }
    }
}

impl Replay {
    /// Keeps up to `limit` bytes of `body` (already timed) for replays.
    pub fn new(body: ReqBody, limit: usize) -> Replay {
        Replay {
            shared: Arc::new(Mutex::new(Kept {
                source: body,
                frames: Vec::new(),
                taken: 0,
                kept_bytes: 0,
                limit,
                spoiled: false,
                failed: None,
                ended: false,
                generation: 0,
            })),
        }
    }

    /// Whether the whole body sent so far can be sent again.
    pub fn replayable(&self) -> bool {
        !self.shared.lock().spoiled
    }

    /// How the client's body failed, if it did: what the request's answer
    /// is then, rather than a backend's (`retry::policy`).
    pub fn client_failed(&self) -> Option<ErrorKind> {
        self.shared.lock().failed
    }

    /// Ends the current try: its handle is superseded and takes nothing
    /// more from the client (call it as soon as the try is over, so that a
    /// backend still reading its body between tries cannot spoil the next).
    pub fn retire(&self) {
        let mut kept = self.shared.lock();
        kept.generation = kept.generation.wrapping_add(1);
    }

    /// The body for the next try, from its first byte. Earlier handles are
    /// superseded.
    pub fn body(&self) -> ReqBody {
        let mut kept = self.shared.lock();
        kept.generation = kept.generation.wrapping_add(1);
        // Not the last try's wait on the client: this one sends first.
        kept.source.set_try_waiting(false);
        ReqBody::Replay(ReplayBody {
            shared: self.shared.clone(),
            generation: kept.generation,
            next: 0,
        })
    }
}

/// One try's view of a [`Replay`]: the kept frames, then the client's body.
#[derive(Debug)]
pub struct ReplayBody {
    shared: Arc<Mutex<Kept>>,
    generation: u32,
    /// The next kept frame to send.
    next: usize,
}

impl ReplayBody {
    /// Whether the client has the next move (see `ReqBody::waits_on_client`).
    pub fn waits_on_client(&self) -> bool {
        let kept = self.shared.lock();
        self.next >= kept.taken && kept.source.waits_on_client()
    }

    /// The client's body's progress (see `ReqBody::progress`).
    pub fn progress(&mut self) -> Option<Arc<Progress>> {
        self.shared.lock().source.progress()
    }

    pub fn poll_frame(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let mut guard = self.shared.lock();
        let kept = &mut *guard;
        if kept.generation != self.generation {
            return Poll::Ready(Some(Err(Superseded.into())));
        }
        if self.next < kept.taken {
            // Behind the client's body: from the kept frames, or not at all.
            let Some(kept1) = kept.frames.get(self.next).filter(|_| !kept.spoiled) else {
                return Poll::Ready(Some(Err(kept.lost().into())));
            };
            let frame = match kept1 {
                Kept1::Data(d) => Frame::data(d.clone()),
                Kept1::Trailers(t) => Frame::trailers(t.clone()),
            };
            self.next += 1;
            return Poll::Ready(Some(Ok(frame)));
        }
        if kept.failed.is_some() {
            return Poll::Ready(Some(Err(kept.lost().into())));
        }
        if kept.ended {
            return Poll::Ready(None);
        }
        let item = match Pin::new(&mut kept.source).poll_frame(cx) {
            Poll::Ready(item) => item,
            Poll::Pending => {
                // The source marks only the start of a wait, which may
                // have been an earlier try's.
                if kept.source.waits_on_client() {
                    kept.source.set_try_waiting(true);
                }
                return Poll::Pending;
            }
        };
        match &item {
            Some(Ok(frame)) => {
                kept.taken += 1;
                kept.keep(frame);
            }
            Some(Err(e)) => {
                kept.failed = Some(crate::http1::decode::client_body_kind(&**e));
                kept.spoil();
            }
            None => kept.ended = true,
        }
        self.next = kept.taken;
        Poll::Ready(item)
    }

    pub fn is_end_stream(&self) -> bool {
        let kept = self.shared.lock();
        // A handle behind a spoiled buffer is not at its end: it has an
        // error to yield.
        self.next >= kept.taken
            && kept.failed.is_none()
            && (kept.ended || kept.source.is_end_stream())
    }

    /// What this try has still to send: the kept frames from `next`, then
    /// what the client has left. At a try's start that is the whole body,
    /// so a known length stays known (HTTP/1.1 framing reads it).
    pub fn size_hint(&self) -> SizeHint {
        let kept = self.shared.lock();
        let ahead: u64 = kept.frames[self.next.min(kept.frames.len())..]
            .iter()
            .map(|f| match f {
                Kept1::Data(d) => d.len() as u64,
                Kept1::Trailers(_) => 0,
            })
            .sum();
        let rest = if kept.ended {
            SizeHint::with_exact(0)
        } else {
            kept.source.size_hint()
        };
        let mut hint = SizeHint::new();
        hint.set_lower(rest.lower().saturating_add(ahead));
        if let Some(upper) = rest.upper() {
            hint.set_upper(upper.saturating_add(ahead));
        }
        hint
    }
}

impl Kept {
    /// Why frames a handle still needs are gone.
    fn lost(&self) -> Lost {
        self.failed.map_or(Lost::Buffer, Lost::Client)
    }

    fn keep(&mut self, frame: &Frame<Bytes>) {
        if self.spoiled {
            return;
        }
        let (copy, size) = if let Some(d) = frame.data_ref() {
            (Kept1::Data(d.clone()), d.len())
        } else if let Some(t) = frame.trailers_ref() {
            let size = t.iter().map(|(k, v)| k.as_str().len() + v.len()).sum();
            (Kept1::Trailers(t.clone()), size)
        } else {
            // A kind of frame it cannot copy: the body cannot be sent again.
            self.spoil();
            return;
        };
        self.kept_bytes = self.kept_bytes.saturating_add(size);
        if self.kept_bytes > self.limit {
            tracing::debug!(
                limit = self.limit,
                "request body outgrew the replay buffer: no more retries"
            );
            self.spoil();
            return;
        }
        self.frames.push(copy);
    }

    /// No replay from now on; the copies are freed.
    fn spoil(&mut self) {
        self.spoiled = true;
        self.frames = Vec::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http1::Framing;
    use crate::http1::decode::Decoder;
    use std::future::poll_fn;

    fn source() -> (crate::http1::body::BodySender, ReqBody) {
        let (tx, rx) =
            crate::http1::body::channel(Decoder::new(Framing::Chunked, 1 << 20)).expect("a body");
        (tx, ReqBody::H1(rx))
    }

    async fn next(body: &mut ReqBody) -> Option<Bytes> {
        poll_fn(|cx| Pin::new(&mut *body).poll_frame(cx))
            .await
            .map(|f| f.expect("a frame").into_data().expect("data"))
    }

    #[tokio::test]
    async fn a_second_try_gets_the_frames_already_sent_then_the_rest() {
        let (mut tx, src) = source();
        let replay = Replay::new(src, 1024);
        let mut first = replay.body();
        tx.send(Ok(Frame::data(Bytes::from_static(b"hello "))));
        assert_eq!(next(&mut first).await.as_deref(), Some(&b"hello "[..]));
        let mut second = replay.body();
        // The first try is abandoned: it may not take the client's bytes.
        let stale = poll_fn(|cx| Pin::new(&mut first).poll_frame(cx)).await;
        assert!(stale.expect("an error").is_err());
        assert_eq!(next(&mut second).await.as_deref(), Some(&b"hello "[..]));
        tx.send(Ok(Frame::data(Bytes::from_static(b"world"))));
        assert_eq!(next(&mut second).await.as_deref(), Some(&b"world"[..]));
        tx.finish();
        assert_eq!(next(&mut second).await, None);
        assert!(replay.replayable());
        let mut third = replay.body();
        assert_eq!(next(&mut third).await.as_deref(), Some(&b"hello "[..]));
        assert_eq!(next(&mut third).await.as_deref(), Some(&b"world"[..]));
        assert_eq!(next(&mut third).await, None);
        assert!(third.is_end_stream());
    }

    #[tokio::test]
    async fn a_body_past_the_limit_streams_on_but_is_not_replayable() {
        let (mut tx, src) = source();
        let replay = Replay::new(src, 8);
        let mut first = replay.body();
        tx.send(Ok(Frame::data(Bytes::from_static(b"12345"))));
        assert_eq!(next(&mut first).await.as_deref(), Some(&b"12345"[..]));
        assert!(replay.replayable());
        tx.send(Ok(Frame::data(Bytes::from_static(b"6789"))));
        // Sent at once, though it no longer fits.
        assert_eq!(next(&mut first).await.as_deref(), Some(&b"6789"[..]));
        assert!(!replay.replayable());
        tx.finish();
        assert_eq!(next(&mut first).await, None);
    }

    async fn fails(body: &mut ReqBody) -> bool {
        let item = poll_fn(|cx| Pin::new(&mut *body).poll_frame(cx)).await;
        matches!(item, Some(Err(_)))
    }

    /// The kind of the request's error when `body` fails as it is sent.
    async fn failure(body: &mut ReqBody) -> Option<ErrorKind> {
        match poll_fn(|cx| Pin::new(&mut *body).poll_frame(cx)).await {
            Some(Err(e)) => Some(crate::http1::decode::client_body_kind(&*e)),
            _ => None,
        }
    }

    /// Issue 15, finding 13: a try that met the client's failure through
    /// the buffer (`Lost`) failed as `ClientAborted` whatever the client
    /// did; and a buffer past its limit read as the client aborting too.
    #[tokio::test]
    async fn a_try_behind_the_clients_failure_fails_as_the_client_did() {
        let (mut tx, src) = source();
        let replay = Replay::new(src, 1024);
        let mut first = replay.body();
        tx.send(Ok(Frame::data(Bytes::from_static(b"hello"))));
        assert_eq!(next(&mut first).await.as_deref(), Some(&b"hello"[..]));
        tx.send(Err(crate::http1::decode::BodyError::TooLarge));
        assert_eq!(failure(&mut first).await, Some(ErrorKind::BodyTooLarge));
        assert_eq!(replay.client_failed(), Some(ErrorKind::BodyTooLarge));
        let mut second = replay.body();
        assert_eq!(failure(&mut second).await, Some(ErrorKind::BodyTooLarge));
    }

    #[tokio::test]
    async fn a_try_behind_a_buffer_spoiled_since_it_began_fails_not_sends_the_tail() {
        let (mut tx, src) = source();
        let replay = Replay::new(src, 8);
        let mut first = replay.body();
        // The first try's backend answered, and (on a task of its own)
        // read on past the buffer's limit before the next try began.
        tx.send(Ok(Frame::data(Bytes::from_static(b"hello "))));
        assert_eq!(next(&mut first).await.as_deref(), Some(&b"hello "[..]));
        tx.send(Ok(Frame::data(Bytes::from_static(b"world"))));
        assert_eq!(next(&mut first).await.as_deref(), Some(&b"world"[..]));
        assert!(!replay.replayable());
        // A try from the first byte: the client's tail would look like a
        // whole body.
        let mut second = replay.body();
        tx.send(Ok(Frame::data(Bytes::from_static(b"tail"))));
        tx.finish();
        assert!(!second.is_end_stream());
        assert_eq!(
            failure(&mut second).await,
            Some(ErrorKind::Internal),
            "never the tail alone; and the buffer is ours, not the client's doing"
        );
        assert_eq!(replay.client_failed(), None);
    }

    #[tokio::test]
    async fn a_try_after_the_client_body_failed_fails_not_ends_clean() {
        let (mut tx, src) = source();
        let replay = Replay::new(src, 1024);
        let mut first = replay.body();
        tx.send(Err(crate::http1::decode::BodyError::Incomplete));
        assert!(fails(&mut first).await);
        assert!(!replay.replayable());
        let mut second = replay.body();
        assert!(!second.is_end_stream());
        assert!(fails(&mut second).await, "an empty body is no body");
    }

    #[tokio::test]
    async fn a_retired_try_takes_nothing_more_from_the_client() {
        let (mut tx, src) = source();
        let replay = Replay::new(src, 8);
        let mut first = replay.body();
        replay.retire();
        tx.send(Ok(Frame::data(Bytes::from_static(b"123456789"))));
        assert!(fails(&mut first).await);
        assert!(replay.replayable());
        let mut second = replay.body();
        assert_eq!(next(&mut second).await.as_deref(), Some(&b"123456789"[..]));
    }

    #[tokio::test]
    async fn a_new_try_does_not_start_in_the_last_ones_wait_on_the_client() {
        use crate::body::{BodyLimits, Phase};
        let (mut tx, src) = source();
        let mut src = src.timed(BodyLimits::idle(std::time::Duration::from_secs(60)));
        let progress = src.progress().expect("timed");
        let replay = Replay::new(src, 1024);
        let cx = &mut Context::from_waker(std::task::Waker::noop());
        let mut first = replay.body();
        tx.send(Ok(Frame::data(Bytes::from_static(b"hello"))));
        assert_eq!(next(&mut first).await.as_deref(), Some(&b"hello"[..]));
        assert!(Pin::new(&mut first).poll_frame(cx).is_pending());
        assert_eq!(progress.phase(cx), Phase::Client);
        let mut second = replay.body();
        assert_eq!(
            progress.phase(cx),
            Phase::Sending,
            "the kept frames go first"
        );
        assert_eq!(next(&mut second).await.as_deref(), Some(&b"hello"[..]));
        assert!(Pin::new(&mut second).poll_frame(cx).is_pending());
        assert_eq!(progress.phase(cx), Phase::Client, "then the client's move");
    }

    #[test]
    fn the_size_of_a_try_is_the_whole_body() {
        let replay = Replay::new(ReqBody::Empty, 8);
        let body = replay.body();
        assert_eq!(body.size_hint().exact(), Some(0));
        assert!(body.is_end_stream());
    }
}
