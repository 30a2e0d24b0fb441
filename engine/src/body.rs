//! The request body as it travels: from a downstream connection (our
//! HTTP/1.1 server's body channel, or hyper's HTTP/2 stream) to a backend
//! (our HTTP/1.1 client, or hyper's HTTP/2 client). Frames pass through as
//! `Bytes`; nothing is collected or boxed.

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use std::pin::Pin;
use std::task::{Context, Poll};

/// A request body on its way to a backend.
#[derive(Debug)]
pub enum ReqBody {
    /// Streamed from an HTTP/2 client by hyper as it arrives.
    Incoming(Incoming),
    /// Streamed from the client by our HTTP/1.1 server (`server::h1`).
    H1(crate::http1::RequestBody),
    /// No body (and so a request that can be replayed).
    Empty,
}

impl Body for ReqBody {
    type Data = Bytes;
    /// Boxed only when a body fails (a cold path); hyper's client takes any
    /// error that converts into a `BoxError`.
    type Error = crate::error::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.get_mut() {
            ReqBody::Incoming(b) => Pin::new(b).poll_frame(cx).map_err(Into::into),
            ReqBody::H1(b) => Pin::new(b).poll_frame(cx).map_err(Into::into),
            ReqBody::Empty => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ReqBody::Incoming(b) => b.is_end_stream(),
            ReqBody::H1(b) => b.is_end_stream(),
            ReqBody::Empty => true,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ReqBody::Incoming(b) => b.size_hint(),
            ReqBody::H1(b) => b.size_hint(),
            ReqBody::Empty => SizeHint::with_exact(0),
        }
    }
}
