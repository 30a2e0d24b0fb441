//! When an HTTP/2 connection is idle: no stream open for a whole timeout.
//!
//! hyper's HTTP/1.1 server closes a keep-alive connection that waits too
//! long for its next head (`header_read_timeout`); its HTTP/2 server has no
//! such limit, and a client that opens no stream but answers PINGs (any live
//! one does) would hold its connection, and a connection slot, forever. So
//! the serve loop counts a connection's open streams ([`Streams`]) and sends
//! GOAWAY once none has been open for the timeout. Nothing the client sends
//! outside a stream (PING, SETTINGS, WINDOW_UPDATE) counts as activity.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::{Body, Frame, SizeHint};
use tokio::sync::watch;

/// The open streams of one connection (requests, for HTTP/1.1), shared by
/// the connection's task and the service that opens them.
#[derive(Debug)]
pub(super) struct Streams {
    /// How many are open. Every change notifies the connection's
    /// receiver, so a stream that opens and ends within a timeout still
    /// starts it again.
    ///
    /// # Concurrency
    /// A `watch` channel: the streams' tasks (hyper spawns one per HTTP/2
    /// stream) change the count under its lock, and the connection's task
    /// waits on its version; no other lock is held with it.
    open: watch::Sender<usize>,
    /// Set when a request came over HTTP/2: only those connections are
    /// closed by [`Streams::idle_for`]'s caller (HTTP/1.1 has hyper's own
    /// timeout). `Relaxed`: it is a hint set once, read after the
    /// `Notify` that reports the request, which orders it.
    h2: AtomicBool,
}

impl Streams {
    pub(super) fn new() -> Arc<Streams> {
        Arc::new(Streams {
            open: watch::Sender::new(0),
            h2: AtomicBool::new(false),
        })
    }

    /// A stream begins; it is open until the returned guard is dropped.
    pub(super) fn open(self: &Arc<Self>, h2: bool) -> Open {
        if h2 {
            self.h2.store(true, Ordering::Relaxed);
        }
        self.open.send_modify(|n| *n += 1);
        Open(Arc::clone(self))
    }

    pub(super) fn is_h2(&self) -> bool {
        self.h2.load(Ordering::Relaxed)
    }

    /// A receiver for [`idle_for`].
    pub(super) fn watch(&self) -> watch::Receiver<usize> {
        self.open.subscribe()
    }
}

/// Resolves once no stream has been open for `timeout` on the connection
/// `open` watches: the timeout starts again whenever a stream opens or
/// ends. Never resolves while a stream is open.
pub(super) async fn idle_for(open: &mut watch::Receiver<usize>, timeout: Duration) {
    loop {
        // The `Streams` (the sender) outlives its connection's task, so the
        // channel cannot close; if it did, nothing would ever be idle.
        if open.wait_for(|n| *n == 0).await.is_err() {
            return std::future::pending().await;
        }
        match tokio::time::timeout(timeout, open.changed()).await {
            Err(_elapsed) => return,
            Ok(Ok(())) => {}
            Ok(Err(_closed)) => return std::future::pending().await,
        }
    }
}

/// One open stream; dropping it ends it.
#[derive(Debug)]
pub(super) struct Open(Arc<Streams>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.open.send_modify(|n| *n -= 1);
    }
}

pin_project_lite::pin_project! {
    /// A response body that keeps its stream open until hyper drops it
    /// (sent in full, or the stream reset). The request's body is read by
    /// the handler before it answers, so the response is the last of a
    /// stream to end.
    pub(super) struct Tracked<B> {
        #[pin]
        body: B,
        open: Open,
    }
}

impl<B> Tracked<B> {
    pub(super) fn new(body: B, open: Open) -> Tracked<B> {
        Tracked { body, open }
    }
}

impl<B: Body> Body for Tracked<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        self.project().body.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn idle_only_after_the_last_stream_and_a_whole_timeout() {
        let timeout = Duration::from_secs(10);
        let streams = Streams::new();
        let mut open = streams.watch();
        let idle = tokio::spawn(async move { idle_for(&mut open, timeout).await });
        tokio::time::sleep(Duration::from_secs(4)).await;
        let first = streams.open(true);
        // Long past the first deadline, with a stream open: not idle.
        tokio::time::sleep(Duration::from_secs(30)).await;
        assert!(!idle.is_finished());
        drop(first);
        // A stream that begins and ends meanwhile starts the timeout again.
        tokio::time::sleep(Duration::from_secs(5)).await;
        drop(streams.open(true));
        let last = tokio::time::Instant::now();
        tokio::time::sleep(Duration::from_secs(9)).await;
        assert!(!idle.is_finished());
        idle.await.expect("idle task");
        assert!(last.elapsed() >= timeout, "{:?}", last.elapsed());
        assert!(streams.is_h2());
    }
}
