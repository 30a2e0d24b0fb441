//! Stage: `server::conn` hands an HTTP/2 connection to hyper through
//! **`Coalesce`**, which gathers what hyper writes until it flushes, and lets
//! the other ready tasks run before the flush goes to the socket: one turn,
//! and more (up to four) while each turn brings more responses.
//!
//! Why: hyper's HTTP/2 server flushes as each stream's response is queued,
//! and tokio-rustls turns every write into a TLS record and a `writev`. With
//! many streams finishing close together that was one syscall per response
//! (strace: 2.0 `writev` per request, half of them downstream). Deferring
//! the flush by one scheduler turn lets the responses that are ready at the
//! same time leave in one record run and one `writev`.
//!
//! # Concurrency
//! No shared state and no lock: a `Coalesce` is owned by its connection's
//! task, and only hyper's connection driver, polled by that task, writes to
//! it (stream tasks hand their responses to the driver through h2's own
//! state and wake it). The "turn" is a self-wake: the task goes to the back
//! of its thread's run queue. On a thread-per-core worker that means every
//! other ready task of the worker runs first; under `runtime =
//! "work-stealing"` the stream tasks may be running on other threads
//! meanwhile, so a turn is a chance to batch, not a barrier. Either way the
//! wait is bounded by `MAX_TURNS`, and the bytes and their order are the same.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// At most this many turns before a flush: the wait goes on only while each
/// turn brings more responses, so a lone stream waits one.
const MAX_TURNS: u8 = 4;

/// Above this many buffered bytes, writes go through without waiting for a
/// flush: the buffer stays bounded whatever the writer does.
const MAX_BUFFERED: usize = 64 * 1024;

#[derive(Debug)]
pub struct Coalesce<I> {
    io: I,
    buf: Vec<u8>,
    /// Bytes of `buf` already written to `io`.
    pos: usize,
    /// Scheduler turns this flush has been put off so far.
    waited: u8,
    /// `buf.len()` when it was last put off: if nothing joined since, the
    /// wait is over.
    seen: usize,
}

impl<I> Coalesce<I> {
    pub fn new(io: I) -> Coalesce<I> {
        Coalesce {
            io,
            buf: Vec::new(),
            pos: 0,
            waited: 0,
            seen: 0,
        }
    }
}

impl<I: AsyncWrite + Unpin> Coalesce<I> {
    /// Writes out everything buffered.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.pos < self.buf.len() {
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, &self.buf[self.pos..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.pos += n;
        }
        self.buf.clear();
        self.pos = 0;
        // Idle HTTP/2 connections should not keep a large buffer.
        if self.buf.capacity() > MAX_BUFFERED {
            self.buf = Vec::new();
        }
        Poll::Ready(Ok(()))
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Coalesce<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Coalesce<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.buf.len() >= MAX_BUFFERED {
            ready!(this.poll_drain(cx))?;
        }
        this.buf.extend_from_slice(data);
        Poll::Ready(Ok(data.len()))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.buf.len() >= MAX_BUFFERED {
            ready!(this.poll_drain(cx))?;
        }
        let mut n = 0;
        for b in bufs {
            this.buf.extend_from_slice(b);
            n += b.len();
        }
        Poll::Ready(Ok(n))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.pos < this.buf.len() {
            let joined = this.buf.len() > this.seen;
            if this.waited == 0 || (joined && this.waited < MAX_TURNS) {
                // One more turn of the scheduler: streams whose responses
                // are ready now get to queue them behind these.
                this.waited += 1;
                this.seen = this.buf.len();
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            ready!(this.poll_drain(cx))?;
        }
        this.waited = 0;
        this.seen = 0;
        Pin::new(&mut this.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Waker;

    /// Counts write calls.
    #[derive(Default)]
    struct Sink {
        out: Vec<u8>,
        writes: usize,
    }

    impl AsyncWrite for Sink {
        fn poll_write(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            b: &[u8],
        ) -> Poll<io::Result<usize>> {
            self.writes += 1;
            self.out.extend_from_slice(b);
            Poll::Ready(Ok(b.len()))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    #[test]
    fn writes_wait_for_the_second_flush_and_leave_together() {
        let cx = &mut Context::from_waker(Waker::noop());
        let mut c = Coalesce::new(Sink::default());
        let mut p = Pin::new(&mut c);
        assert!(matches!(
            p.as_mut().poll_write(cx, b"one "),
            Poll::Ready(Ok(4))
        ));
        // The first flush yields once; nothing has reached the socket.
        assert!(p.as_mut().poll_flush(cx).is_pending());
        assert_eq!(p.io.writes, 0);
        let two = [IoSlice::new(b"two "), IoSlice::new(b"three")];
        assert!(matches!(
            p.as_mut().poll_write_vectored(cx, &two),
            Poll::Ready(Ok(9))
        ));
        // More joined during that turn: one more.
        assert!(p.as_mut().poll_flush(cx).is_pending());
        assert_eq!(p.io.writes, 0);
        // Nothing joined this time: out it goes.
        assert!(matches!(p.as_mut().poll_flush(cx), Poll::Ready(Ok(()))));
        assert_eq!(p.io.out, b"one two three");
        assert_eq!(p.io.writes, 1);
        // Nothing buffered: a flush goes straight through.
        assert!(matches!(p.as_mut().poll_flush(cx), Poll::Ready(Ok(()))));
    }

    #[test]
    fn the_wait_ends_after_max_turns_even_while_more_joins() {
        let cx = &mut Context::from_waker(Waker::noop());
        let mut c = Coalesce::new(Sink::default());
        let mut p = Pin::new(&mut c);
        for _ in 0..MAX_TURNS {
            assert!(p.as_mut().poll_write(cx, b"r").is_ready());
            assert!(p.as_mut().poll_flush(cx).is_pending());
        }
        assert!(p.as_mut().poll_write(cx, b"r").is_ready());
        assert!(matches!(p.as_mut().poll_flush(cx), Poll::Ready(Ok(()))));
        assert_eq!(p.io.out, vec![b'r'; MAX_TURNS as usize + 1]);
        assert_eq!(p.io.writes, 1);
        // The next batch starts over with one turn.
        assert!(p.as_mut().poll_write(cx, b"s").is_ready());
        assert!(p.as_mut().poll_flush(cx).is_pending());
        assert!(matches!(p.as_mut().poll_flush(cx), Poll::Ready(Ok(()))));
        assert_eq!(p.io.writes, 2);
    }

    #[test]
    fn the_buffer_is_bounded_and_shutdown_drains_it() {
        let cx = &mut Context::from_waker(Waker::noop());
        let mut c = Coalesce::new(Sink::default());
        let mut p = Pin::new(&mut c);
        let chunk = vec![7u8; MAX_BUFFERED];
        assert!(p.as_mut().poll_write(cx, &chunk).is_ready());
        assert!(p.as_mut().poll_write(cx, b"x").is_ready());
        // The full buffer went out before the byte was taken.
        assert_eq!(p.io.out.len(), MAX_BUFFERED);
        assert!(matches!(p.as_mut().poll_shutdown(cx), Poll::Ready(Ok(()))));
        assert_eq!(p.io.out.len(), MAX_BUFFERED + 1);
    }
}
