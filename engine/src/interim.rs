//! Interim (1xx) responses from an HTTP/1.1 backend on their way to an
//! HTTP/1.1 client (RFC 9110 §15.2: "A proxy MUST forward 1xx responses
//! unless the proxy itself requested the generation of the 1xx response").
//!
//! Each client connection has one [`InterimQueue`] (in its
//! [`crate::context::ConnCtx`]). `server::h1` opens it for each HTTP/1.1
//! request (not for HTTP/1.0: "A server MUST NOT send a 1xx response to an
//! HTTP/1.0 client") and writes what arrives while it waits for the final
//! response; `upstream::h1` hands each 1xx it reads to it. A closed queue
//! (HTTP/1.0 and HTTP/2 clients, whose hyper server has no way to send one;
//! a request whose final response is out) drops them. Not forwarded:
//! `100 Continue` (Sluice answers `Expect` itself and never passes it on,
//! so a backend's 100 answers nobody) and `101`, which is the final
//! response of an upgrade.

use http::{HeaderMap, StatusCode};
use parking_lot::Mutex;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

/// At most this many 1xx wait to be written per request; more are dropped
/// (a backend cannot make the proxy hold an unbounded list of heads).
pub const MAX_QUEUED: usize = 8;

/// One interim response head as the backend sent it (`server::h1` removes
/// the hop-by-hop fields as it writes it).
#[derive(Debug)]
pub struct Interim {
    pub status: StatusCode,
    pub headers: HeaderMap,
}

/// The queue between the two sides of one client connection, reused by its
/// requests one after the other (an HTTP/1.1 connection has one exchange at
/// a time): one allocation per connection, none per request (a queue, or a
/// request extension to carry it, cost about 600 instructions per request:
/// perf/findings/2026-12-02-hardening-cost.md).
#[derive(Clone, Debug)]
pub struct InterimQueue(Arc<Mutex<Slot>>);

/// A `parking_lot::Mutex`: held only to push, drain, open or close, never
/// across an await; the two sides are one connection's tasks.
#[derive(Debug)]
struct Slot {
    items: Vec<Interim>,
    /// The client side, to wake when a 1xx arrives.
    waker: Option<Waker>,
    /// No request is listening (none opened it yet, or its final response
    /// is out).
    closed: bool,
}

/// The client side's end for one request; closes the queue when dropped.
#[derive(Debug)]
pub struct InterimReceiver(InterimQueue);

impl Default for InterimQueue {
    fn default() -> Self {
        InterimQueue(Arc::new(Mutex::new(Slot {
            items: Vec::new(),
            waker: None,
            closed: true,
        })))
    }
}

impl InterimQueue {
    /// Opens the queue for the connection's next request.
    pub fn open(&self) -> InterimReceiver {
        let mut slot = self.0.lock();
        slot.items.clear();
        slot.waker = None;
        slot.closed = false;
        InterimReceiver(self.clone())
    }

    /// Queues a 1xx for the client, if it is one to forward and a request
    /// is listening with room left; its connection writes it before the
    /// final response.
    pub fn forward(&self, status: StatusCode, headers: HeaderMap) {
        if !forwarded(status) {
            return;
        }
        let waker = {
            let mut slot = self.0.lock();
            // Full, or nobody is listening: dropped.
            if slot.closed || slot.items.len() >= MAX_QUEUED {
                return;
            }
            slot.items.push(Interim { status, headers });
            slot.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

impl InterimReceiver {
    /// The next queued 1xx; `Pending` (and woken later) when there is none.
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Interim>> {
        let mut slot = (self.0).0.lock();
        if slot.items.is_empty() {
            // Polled on every turn of the exchange: keep the waker we have.
            if !slot.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                slot.waker = Some(cx.waker().clone());
            }
            return Poll::Pending;
        }
        Poll::Ready(Some(slot.items.remove(0)))
    }

    #[cfg(test)]
    fn try_recv(&mut self) -> Option<Interim> {
        let mut slot = (self.0).0.lock();
        (!slot.items.is_empty()).then(|| slot.items.remove(0))
    }
}

impl Drop for InterimReceiver {
    fn drop(&mut self) {
        let mut slot = (self.0).0.lock();
        slot.closed = true;
        slot.items.clear();
        slot.waker = None;
    }
}

/// Whether a 1xx from the backend goes on to the client.
fn forwarded(status: StatusCode) -> bool {
    status.is_informational()
        && status != StatusCode::CONTINUE
        && status != StatusCode::SWITCHING_PROTOCOLS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn early_hints_go_on_continue_and_switching_do_not() {
        let q = InterimQueue::default();
        let mut rx = q.open();
        let mut h = HeaderMap::new();
        h.insert("link", "</a.css>; rel=preload".parse().unwrap());
        q.forward(StatusCode::CONTINUE, HeaderMap::new());
        q.forward(StatusCode::SWITCHING_PROTOCOLS, HeaderMap::new());
        q.forward(StatusCode::from_u16(103).unwrap(), h);
        let got = rx.try_recv().expect("the 103");
        assert_eq!(got.status, 103);
        assert!(got.headers.contains_key("link"));
        assert!(rx.try_recv().is_none());
    }

    #[test]
    fn the_queue_is_bounded() {
        let q = InterimQueue::default();
        let mut rx = q.open();
        for _ in 0..MAX_QUEUED * 3 {
            q.forward(StatusCode::PROCESSING, HeaderMap::new());
        }
        let mut n = 0;
        while rx.try_recv().is_some() {
            n += 1;
        }
        assert_eq!(n, MAX_QUEUED);
    }

    /// Closed until a request opens it, closed again (and emptied) when
    /// that request is done: nothing reaches a request it was not sent for.
    #[test]
    fn only_an_open_request_gets_them() {
        let q = InterimQueue::default();
        q.forward(StatusCode::PROCESSING, HeaderMap::new());
        let mut rx = q.open();
        assert!(rx.try_recv().is_none(), "sent before the request opened it");
        q.forward(StatusCode::PROCESSING, HeaderMap::new());
        drop(rx);
        q.forward(StatusCode::PROCESSING, HeaderMap::new());
        let mut rx = q.open();
        assert!(rx.try_recv().is_none(), "left over from the last request");
    }
}
