//! After a `101 Switching Protocols`: the client's connection and the
//! backend's are spliced and bytes are copied both ways until either side
//! closes, or until no byte has come from either side for
//! `timeouts.client_idle` (nginx closes a WebSocket whose backend is silent
//! for `proxy_read_timeout`, 60 s; HAProxy has `timeout tunnel`): a tunnel
//! whose peers went away without a FIN would otherwise hold two sockets
//! forever. Only HTTP/1.1 upgrades exist here (HTTP/2 has no 101), and both
//! ends are our own codec's (`http1::upgrade`).

use super::body::{RespBody, Upstream};
use super::headers;
use crate::error::{ErrorKind, ProxyError};
use crate::http1::{OnUpgrade, Upgraded};
use crate::upstream::backend::InFlight;
use http::{HeaderValue, Request, Response, Version, header};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::task::{Context, Poll, ready};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

/// The client's side of an upgrade, taken off a request that asks for one
/// (our HTTP/1 server puts it there only for `Connection: upgrade` with an
/// `Upgrade` field on HTTP/1.1).
pub fn client_side<B>(req: &mut Request<B>) -> Option<OnUpgrade> {
    if !req.headers().contains_key(header::UPGRADE) {
        return None;
    }
    req.extensions_mut().remove::<OnUpgrade>()
}

/// Answers the client's upgrade with the backend's 101 and starts the
/// tunnel, which holds the request's in-flight count until it ends; it is
/// closed after `idle` without a byte either way.
pub fn start(
    client: Option<OnUpgrade>,
    resp: Response<Upstream>,
    via: &HeaderValue,
    mut in_flight: InFlight,
    idle: Duration,
) -> Result<Response<RespBody>, ProxyError> {
    let Some(client) = client else {
        return Err(ProxyError::with_source(
            ErrorKind::UpstreamProtocol,
            "101 to a request that did not ask to upgrade",
        ));
    };
    let (mut parts, body) = resp.into_parts();
    let backend = match body {
        Upstream::H1(b) => b
            .into_upgraded()
            .ok_or_else(|| ProxyError::new(ErrorKind::UpstreamReset))?,
        Upstream::Hyper(..) => {
            return Err(ProxyError::with_source(
                ErrorKind::UpstreamProtocol,
                "101 over HTTP/2",
            ));
        }
    };
    parts.version = Version::HTTP_11;
    if let Some(u) = headers::strip_hop_by_hop(&mut parts.headers, true) {
        parts
            .headers
            .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        parts.headers.insert(header::UPGRADE, u);
    }
    headers::outbound(&mut parts.headers, via);
    // The upgrade is the whole answer: a trial that got this far succeeded.
    in_flight.succeed();
    tokio::spawn(copy_both_ways(client, backend, in_flight, idle));
    Ok(Response::from_parts(parts, RespBody::Full(None)))
}

async fn copy_both_ways(
    client: OnUpgrade,
    backend: Upgraded,
    _in_flight: InFlight,
    idle: Duration,
) {
    let client = match client.await {
        Ok(client) => client,
        Err(e) => {
            tracing::debug!(error = %e, "downstream upgrade failed");
            return;
        }
    };
    let activity = Activity::new();
    let mut client = Watched::new(client, &activity);
    let mut backend = Watched::new(backend, &activity);
    tokio::select! {
        r = tokio::io::copy_bidirectional(&mut client, &mut backend) => {
            if let Err(e) = r {
                tracing::debug!(error = %e, "tunnel ended");
            }
        }
        // Dropping both ends closes them.
        _ = activity.idle_for(idle) => tracing::debug!("tunnel idle: closed"),
    }
}

/// When a tunnel last carried a byte.
struct Activity {
    start: Instant,
    /// Nanoseconds from `start` to the last read that returned bytes.
    ///
    /// # Concurrency
    /// Written and read by the tunnel's one task (both directions and the
    /// idle check are polled by it); atomic only so that the future that
    /// borrows it is `Send`. `Relaxed`: nothing else is published with it.
    last: AtomicU64,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            start: Instant::now(),
            last: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let now = u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.last.store(now, Relaxed);
    }

    /// Resolves once no byte has been read for `timeout`.
    async fn idle_for(&self, timeout: Duration) {
        loop {
            let last = self.last.load(Relaxed);
            tokio::time::sleep_until(self.start + Duration::from_nanos(last) + timeout).await;
            if self.last.load(Relaxed) == last {
                return;
            }
        }
    }
}

/// One end of a tunnel, noting in [`Activity`] every read that returns bytes.
struct Watched<'a, S> {
    io: S,
    activity: &'a Activity,
}

impl<'a, S> Watched<'a, S> {
    fn new(io: S, activity: &'a Activity) -> Self {
        Watched { io, activity }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<'_, S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        ready!(Pin::new(&mut self.io).poll_read(cx, buf))?;
        if buf.filled().len() > before {
            self.activity.touch();
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<'_, S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
