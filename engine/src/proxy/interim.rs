//! Interim (1xx) responses from an HTTP/1.1 backend on their way to an
//! HTTP/1.1 client (RFC 9110 §15.2: "A proxy MUST forward 1xx responses
//! unless the proxy itself requested the generation of the 1xx response").
//!
//! `server::h1` puts an [`InterimSender`] into the request's extensions
//! (only for an HTTP/1.1 client: "A server MUST NOT send a 1xx response to
//! an HTTP/1.0 client") and writes what arrives while it waits for the
//! final response; `upstream::h1` hands each 1xx it reads to it. Not
//! forwarded: `100 Continue` (Sluice answers `Expect` itself and never
//! passes it on, so a backend's 100 answers nobody) and `101`, which is the
//! final response of an upgrade. HTTP/2 clients get none: hyper's server
//! has no way to send one.

use http::{HeaderMap, StatusCode};
use parking_lot::Mutex;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

/// At most this many 1xx wait to be written per request; more are dropped
/// (a backend cannot make the proxy hold an unbounded list of heads).
pub const MAX_QUEUED: usize = 8;

/// One interim response head, hop-by-hop fields already removed.
#[derive(Debug)]
pub struct Interim {
    pub status: StatusCode,
    pub headers: HeaderMap,
}

/// The queue between the two sides. Not a tokio channel: one is made per
/// HTTP/1.1 request and almost never used, and a tokio mpsc allocates its
/// first block of slots up front. This is one small `Arc`; the `Vec` grows
/// only when a 1xx arrives.
#[derive(Debug, Default)]
struct Queue {
    /// A `parking_lot::Mutex`: held only to push or to drain, never across
    /// an await, and the two sides are one connection's tasks.
    slot: Mutex<Slot>,
}

#[derive(Debug, Default)]
struct Slot {
    items: Vec<Interim>,
    /// The client side, to wake when a 1xx arrives.
    waker: Option<Waker>,
    /// The client side is gone (the final response is out).
    closed: bool,
}

/// The backend side's handle; a request extension.
#[derive(Clone, Debug)]
pub struct InterimSender(Arc<Queue>);

/// The client side's end.
#[derive(Debug)]
pub struct InterimReceiver(Arc<Queue>);

pub fn channel() -> (InterimSender, InterimReceiver) {
    let q = Arc::new(Queue::default());
    (InterimSender(q.clone()), InterimReceiver(q))
}

impl InterimSender {
    /// Queues a 1xx for the client, if it is one to forward and there is
    /// room; the client's connection writes it before the final response.
    pub fn forward(&self, status: StatusCode, mut headers: HeaderMap) {
        if !forwarded(status) {
            return;
        }
        super::headers::strip_hop_by_hop(&mut headers, false);
        let waker = {
            let mut slot = self.0.slot.lock();
            // Full, or nobody is listening any more: dropped.
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
        let mut slot = self.0.slot.lock();
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
        let mut slot = self.0.slot.lock();
        (!slot.items.is_empty()).then(|| slot.items.remove(0))
    }
}

impl Drop for InterimReceiver {
    fn drop(&mut self) {
        let mut slot = self.0.slot.lock();
        slot.closed = true;
        slot.items.clear();
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
        let (tx, mut rx) = channel();
        let mut h = HeaderMap::new();
        h.insert("link", "</a.css>; rel=preload".parse().unwrap());
        h.insert("connection", "x-hop".parse().unwrap());
        h.insert("x-hop", "1".parse().unwrap());
        tx.forward(StatusCode::CONTINUE, HeaderMap::new());
        tx.forward(StatusCode::SWITCHING_PROTOCOLS, HeaderMap::new());
        tx.forward(StatusCode::from_u16(103).unwrap(), h);
        let got = rx.try_recv().expect("the 103");
        assert_eq!(got.status, 103);
        assert!(got.headers.contains_key("link"));
        assert!(!got.headers.contains_key("x-hop") && !got.headers.contains_key("connection"));
        assert!(rx.try_recv().is_none());
    }

    #[test]
    fn the_queue_is_bounded() {
        let (tx, mut rx) = channel();
        for _ in 0..MAX_QUEUED * 3 {
            tx.forward(StatusCode::PROCESSING, HeaderMap::new());
        }
        let mut n = 0;
        while rx.try_recv().is_some() {
            n += 1;
        }
        assert_eq!(n, MAX_QUEUED);
    }
}
