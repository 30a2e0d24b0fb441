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
use tokio::sync::mpsc;

/// At most this many 1xx wait to be written per request; more are dropped
/// (a backend cannot make the proxy hold an unbounded list of heads).
pub const MAX_QUEUED: usize = 8;

/// One interim response head, hop-by-hop fields already removed.
#[derive(Debug)]
pub struct Interim {
    pub status: StatusCode,
    pub headers: HeaderMap,
}

/// The backend side's handle; a request extension.
#[derive(Clone, Debug)]
pub struct InterimSender(mpsc::Sender<Interim>);

/// The client side's end.
pub type InterimReceiver = mpsc::Receiver<Interim>;

pub fn channel() -> (InterimSender, InterimReceiver) {
    let (tx, rx) = mpsc::channel(MAX_QUEUED);
    (InterimSender(tx), rx)
}

impl InterimSender {
    /// Queues a 1xx for the client, if it is one to forward and there is
    /// room; the client's connection writes it before the final response.
    pub fn forward(&self, status: StatusCode, mut headers: HeaderMap) {
        if !forwarded(status) {
            return;
        }
        super::headers::strip_hop_by_hop(&mut headers, false);
        // Full or closed (the final response is out): dropped.
        let _ = self.0.try_send(Interim { status, headers });
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
        let got = rx.try_recv().unwrap();
        assert_eq!(got.status, 103);
        assert!(got.headers.contains_key("link"));
        assert!(!got.headers.contains_key("x-hop") && !got.headers.contains_key("connection"));
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn the_queue_is_bounded() {
        let (tx, mut rx) = channel();
        for _ in 0..MAX_QUEUED * 3 {
            tx.forward(StatusCode::PROCESSING, HeaderMap::new());
        }
        let mut n = 0;
        while rx.try_recv().is_ok() {
            n += 1;
        }
        assert_eq!(n, MAX_QUEUED);
    }
}
