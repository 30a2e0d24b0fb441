//! Body types of the request path. Bodies are never collected: frames pass
//! through as `Bytes` (reference-counted, not copied), and nothing is boxed.

use super::compress::GzipBody;
use crate::error::BoxError;
use crate::upstream::backend::InFlight;
use crate::upstream::h1;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

/// A response body on its way to the client.
#[derive(Debug)]
pub enum RespBody {
    Upstream(UpstreamBody),
    /// The backend's body, gzip-compressed on the way (`proxy::compress`).
    Gzip(GzipBody<UpstreamBody>),
    /// A response the proxy makes itself (errors).
    Full(Option<Bytes>),
}

impl RespBody {
    pub fn full(bytes: impl Into<Bytes>) -> RespBody {
        RespBody::Full(Some(bytes.into()))
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
            RespBody::Gzip(b) => Pin::new(b).poll_frame(cx),
            RespBody::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            RespBody::Upstream(b) => b.is_end_stream(),
            RespBody::Gzip(b) => b.is_end_stream(),
            RespBody::Full(b) => b.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            RespBody::Upstream(b) => b.size_hint(),
            RespBody::Gzip(b) => b.size_hint(),
            RespBody::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
        }
    }
}

/// Where a backend's response body comes from.
#[derive(Debug)]
pub enum Upstream {
    /// Our HTTP/1.1 client ([`crate::upstream::h1`]); the connection goes
    /// back to the pool at the body's end.
    H1(h1::ResponseBody),
    /// hyper's HTTP/2 client.
    Hyper(Incoming),
}

/// The backend's response body, which also ends the request's in-flight
/// count when it is done.
#[derive(Debug)]
pub struct UpstreamBody {
    inner: Upstream,
    in_flight: Option<InFlight>,
}

impl UpstreamBody {
    pub fn new(inner: Upstream, in_flight: InFlight) -> UpstreamBody {
        let mut body = UpstreamBody {
            inner,
            in_flight: Some(in_flight),
        };
        if body.is_end_stream() {
            body.in_flight = None;
        }
        body
    }
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
        let frame = match &mut this.inner {
            Upstream::H1(b) => ready!(Pin::new(b).poll_frame(cx)).map(|f| f.map_err(Into::into)),
            Upstream::Hyper(b) => ready!(Pin::new(b).poll_frame(cx)).map(|f| f.map_err(Into::into)),
        };
        if frame.as_ref().is_none_or(|f| f.is_err()) || this.is_end_stream() {
            this.in_flight = None;
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Upstream::H1(b) => b.is_end_stream(),
            Upstream::Hyper(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Upstream::H1(b) => b.size_hint(),
            Upstream::Hyper(b) => b.size_hint(),
        }
    }
}
