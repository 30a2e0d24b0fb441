//! Stage: the service answered 101 to a request that asked to upgrade →
//! **`http1::upgrade`** → `proxy::tunnel` copies bytes both ways.
//!
//! The connection hands its raw IO, plus any bytes it had already read past
//! the head, to the [`OnUpgrade`] future it put in the request's extensions.
//! [`Upgraded`] serves those buffered bytes before reading the socket again;
//! the same [`Rewind`] replays a sniffed HTTP/2 preface to hyper.

use bytes::{Buf, Bytes};
use parking_lot::Mutex;
use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::oneshot;

/// The IO of an upgraded connection, whatever the transport (TCP, TLS).
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// An IO with bytes already read from it put back in front: what the
/// connection read past a 101's head, or the preface sniffed to pick HTTP/2.
pub struct Rewind<I> {
    io: I,
    read_buf: Bytes,
}

/// A connection after `101 Switching Protocols`.
pub type Upgraded = Rewind<Box<dyn Io>>;

impl<I> Rewind<I> {
    pub fn new(io: I, read_buf: Bytes) -> Rewind<I> {
        Rewind { io, read_buf }
    }
}

impl<I> fmt::Debug for Rewind<I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rewind")
            .field("buffered", &self.read_buf.len())
            .finish_non_exhaustive()
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Rewind<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.read_buf.is_empty() {
            let n = self.read_buf.len().min(buf.remaining());
            buf.put_slice(&self.read_buf[..n]);
            self.read_buf.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Rewind<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// The upgrade did not happen: the response was not a 101, or the
/// connection ended first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UpgradeError;

impl fmt::Display for UpgradeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("connection was not upgraded")
    }
}

impl std::error::Error for UpgradeError {}

/// Resolves to the upgraded connection once the 101 has been written.
///
/// Request extensions must be `Clone`; only one clone can receive, so the
/// receiver sits behind a lock taken on each poll (a cold path: one per
/// upgrade request).
#[derive(Clone, Debug)]
pub struct OnUpgrade {
    rx: Arc<Mutex<Option<oneshot::Receiver<Upgraded>>>>,
}

/// The connection's end of an [`OnUpgrade`].
pub type Pending = oneshot::Sender<Upgraded>;

/// A pending upgrade: the sender stays with the connection.
pub fn pending() -> (Pending, OnUpgrade) {
    let (tx, rx) = oneshot::channel();
    (
        tx,
        OnUpgrade {
            rx: Arc::new(Mutex::new(Some(rx))),
        },
    )
}

impl Future for OnUpgrade {
    type Output = Result<Upgraded, UpgradeError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut slot = self.rx.lock();
        let Some(rx) = slot.as_mut() else {
            return Poll::Ready(Err(UpgradeError));
        };
        let r = std::task::ready!(Pin::new(rx).poll(cx));
        *slot = None;
        Poll::Ready(r.map_err(|_| UpgradeError))
    }
}
