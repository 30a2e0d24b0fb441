//! Stage: `server::h1` reads and `http1::decode` frames → **`http1::body`**
//! → the service (`proxy::handle`) streams it to a backend.
//!
//! The connection task owns the IO. The [`RequestBody`] the service holds and
//! the [`BodySender`] the connection holds share a one-frame slot, so:
//!
//! - back-pressure is exact: the connection reads from the client only when
//!   the body has been polled and its slot is empty, so a client is never
//!   read faster than the backend takes the bytes;
//! - the first poll is visible to the connection, which is when it answers
//!   `Expect: 100-continue`;
//! - a request without a body allocates nothing, and a request with one
//!   allocates the slot once: frames are moved through it, never boxed.

use super::decode::{BodyError, Decoder};
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use parking_lot::Mutex;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

/// The body of a request received over our HTTP/1.1.
#[derive(Debug)]
pub struct RequestBody {
    chan: Option<Arc<Chan>>,
    /// Data bytes still to come, when the framing says.
    remaining: Option<u64>,
    ended: bool,
}

/// The connection's end: it decodes frames and puts them in the slot.
#[derive(Debug)]
pub struct BodySender {
    chan: Arc<Chan>,
    pub decoder: Decoder,
    finished: bool,
}

/// What the body wants from the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Want {
    /// The slot is empty and the body is waiting: read and send a frame.
    Frame,
    /// The service dropped the body.
    Dropped,
}

#[derive(Debug)]
struct Chan {
    /// # Concurrency
    /// A `parking_lot` mutex, not tokio's: it is held only to move a frame or
    /// a waker in or out, never across an `.await`. The connection task and
    /// the request's task take it; with thread-per-core they run on the same
    /// thread, so it is uncontended; with `runtime = "work-stealing"` they
    /// may run on two threads and contend only for those few instructions.
    slot: Mutex<Slot>,
}

#[derive(Debug, Default)]
struct Slot {
    item: Option<Result<Frame<Bytes>, BodyError>>,
    /// The body has been polled since the last frame was delivered.
    wanted: bool,
    /// No more frames will come (the sender finished or went away).
    closed: bool,
    rx_dropped: bool,
    rx_waker: Option<Waker>,
    tx_waker: Option<Waker>,
}

impl RequestBody {
    /// A body with no bytes (no framing, or `Content-Length: 0`).
    pub fn empty() -> RequestBody {
        RequestBody {
            chan: None,
            remaining: Some(0),
            ended: true,
        }
    }
}

/// The pair for a request whose decoder expects bytes; `None` if it does not.
pub fn channel(decoder: Decoder) -> Option<(BodySender, RequestBody)> {
    if decoder.is_done() {
        return None;
    }
    let chan = Arc::new(Chan {
        slot: Mutex::new(Slot::default()),
    });
    let body = RequestBody {
        chan: Some(chan.clone()),
        remaining: decoder.remaining(),
        ended: false,
    };
    Some((
        BodySender {
            chan,
            decoder,
            finished: false,
        },
        body,
    ))
}

impl BodySender {
    /// Ready when the body waits for a frame and the slot is free, or when the
    /// body is gone.
    pub fn poll_want(&self, cx: &mut Context<'_>) -> Poll<Want> {
        let mut s = self.chan.slot.lock();
        if s.rx_dropped {
            return Poll::Ready(Want::Dropped);
        }
        if s.wanted && s.item.is_none() {
            return Poll::Ready(Want::Frame);
        }
        register(&mut s.tx_waker, cx);
        Poll::Pending
    }

    /// Puts one frame (or the error that ends the body) in the slot.
    pub fn send(&mut self, item: Result<Frame<Bytes>, BodyError>) {
        let end = item.is_err() || self.decoder.is_done();
        let mut s = self.chan.slot.lock();
        s.item = Some(item);
        s.wanted = false;
        s.closed |= end;
        self.finished |= end;
        wake(&mut s.rx_waker);
    }

    /// The body is complete: the next poll after the last frame yields `None`.
    pub fn finish(&mut self) {
        let mut s = self.chan.slot.lock();
        s.closed = true;
        self.finished = true;
        wake(&mut s.rx_waker);
    }

    /// The body ended (completely or with an error) from the service's view.
    pub fn is_finished(&self) -> bool {
        self.finished
    }
}

impl Drop for BodySender {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        let mut s = self.chan.slot.lock();
        if s.item.is_none() {
            s.item = Some(Err(BodyError::Abandoned));
        }
        s.closed = true;
        wake(&mut s.rx_waker);
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = &mut *self;
        let Some(chan) = &this.chan else {
            return Poll::Ready(None);
        };
        if this.ended {
            return Poll::Ready(None);
        }
        let mut s = chan.slot.lock();
        if let Some(item) = s.item.take() {
            match &item {
                Ok(f) => {
                    if let (Some(r), Some(d)) = (&mut this.remaining, f.data_ref()) {
                        *r = r.saturating_sub(d.len() as u64);
                    }
                }
                Err(_) => this.ended = true,
            }
            return Poll::Ready(Some(item));
        }
        if s.closed {
            this.ended = true;
            return Poll::Ready(None);
        }
        s.wanted = true;
        register(&mut s.rx_waker, cx);
        wake(&mut s.tx_waker);
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.ended || self.remaining == Some(0)
    }

    fn size_hint(&self) -> SizeHint {
        match self.remaining {
            Some(n) => SizeHint::with_exact(n),
            None => SizeHint::default(),
        }
    }
}

impl Drop for RequestBody {
    fn drop(&mut self) {
        if let Some(chan) = &self.chan {
            let mut s = chan.slot.lock();
            s.rx_dropped = true;
            s.item = None;
            wake(&mut s.tx_waker);
        }
    }
}

fn register(slot: &mut Option<Waker>, cx: &Context<'_>) {
    match slot {
        Some(w) if w.will_wake(cx.waker()) => {}
        _ => *slot = Some(cx.waker().clone()),
    }
}

fn wake(slot: &mut Option<Waker>) {
    if let Some(w) = slot.take() {
        w.wake();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http1::Framing;
    use std::future::poll_fn;
    use std::task::Poll;

    fn pair(framing: Framing) -> (BodySender, RequestBody) {
        channel(Decoder::new(framing, 1024)).expect("a body")
    }

    #[tokio::test]
    async fn frames_flow_one_at_a_time_and_end() {
        let (mut tx, mut rx) = pair(Framing::Length(4));
        assert_eq!(rx.size_hint().exact(), Some(4));
        let cx = &mut Context::from_waker(Waker::noop());
        // Nobody asked yet: the connection must not read.
        assert!(tx.poll_want(cx).is_pending());
        assert!(Pin::new(&mut rx).poll_frame(cx).is_pending());
        assert_eq!(tx.poll_want(cx), Poll::Ready(Want::Frame));
        let mut buf = bytes::BytesMut::from(&b"ab"[..]);
        let super::super::decode::Decoded::Frame(f) = tx.decoder.decode(&mut buf).unwrap() else {
            panic!()
        };
        tx.send(Ok(f));
        // The slot is full: no more reading until the body takes it.
        assert!(tx.poll_want(cx).is_pending());
        let f = poll_fn(|cx| Pin::new(&mut rx).poll_frame(cx)).await;
        assert_eq!(f.unwrap().unwrap().into_data().unwrap(), "ab");
        assert_eq!(rx.size_hint().exact(), Some(2));
        assert!(!rx.is_end_stream());
        assert!(Pin::new(&mut rx).poll_frame(cx).is_pending());
        let mut buf = bytes::BytesMut::from(&b"cd"[..]);
        let super::super::decode::Decoded::Frame(f) = tx.decoder.decode(&mut buf).unwrap() else {
            panic!()
        };
        tx.send(Ok(f));
        assert!(tx.is_finished());
        let f = poll_fn(|cx| Pin::new(&mut rx).poll_frame(cx)).await;
        assert_eq!(f.unwrap().unwrap().into_data().unwrap(), "cd");
        assert!(rx.is_end_stream());
        assert!(
            poll_fn(|cx| Pin::new(&mut rx).poll_frame(cx))
                .await
                .is_none()
        );
    }

    #[tokio::test]
    async fn a_dropped_sender_is_an_error_and_a_dropped_body_is_seen() {
        let (tx, mut rx) = pair(Framing::Chunked);
        drop(tx);
        let f = poll_fn(|cx| Pin::new(&mut rx).poll_frame(cx)).await;
        assert_eq!(f.unwrap().unwrap_err(), BodyError::Abandoned);
        assert!(
            poll_fn(|cx| Pin::new(&mut rx).poll_frame(cx))
                .await
                .is_none()
        );

        let (tx, rx) = pair(Framing::Chunked);
        drop(rx);
        assert_eq!(poll_fn(|cx| tx.poll_want(cx)).await, Want::Dropped);
    }

    #[test]
    fn no_body_no_channel() {
        assert!(channel(Decoder::new(Framing::None, 1024)).is_none());
        assert!(RequestBody::empty().is_end_stream());
    }
}
