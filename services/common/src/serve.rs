//! The accept loop and per-connection tasks every service runs, with
//! graceful shutdown.
//!
//! On shutdown the listener is dropped first (new connections are refused),
//! then every connection is told to finish: hyper closes idle keep-alive
//! connections at once and lets in-flight requests complete. Connections
//! still busy after the grace period are aborted, so shutdown is bounded.
//!
//! What a client can hold is bounded too ([`Limits`]): a connection must
//! deliver each request head within the header timeout (a slowloris client
//! that trickles one, or never sends one, is closed), an HTTP/2 connection
//! with no open stream for as long gets GOAWAY and is closed (`idle`),
//! and at most `max_connections` are served at once (past that, new ones
//! wait in the listen backlog until one closes).
//!
//! With a [`ServerTls`] ([`serve_tls`]) every connection is HTTPS: the
//! handshake runs in the connection's task and must finish within the
//! header timeout (a client that stalls it is closed, as one that stalls
//! its request head), ALPN `h2` is served as HTTP/2 and anything else as
//! HTTP/1.1; a client speaking plain HTTP to it fails the handshake and is
//! closed. Each request carries its connection's [`Transport`].

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response, Version};
use hyper::body::{Body, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;

/// Pause after a failed `accept` (e.g. EMFILE, out of file descriptors) so
/// the loop does not spin while the condition lasts.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// How long a client has to send a whole request head, and to start one on
/// an idle keep-alive connection: nginx's `client_header_timeout` is 60 s,
/// HAProxy's usual `timeout http-request` 10 s; our clients are a proxy and
/// services on the same network.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a service gives a client to send a whole request body once its
/// head is in (a slow upload otherwise holds its connection and buffer for
/// as long as it likes; hyper times heads, not bodies). Enforced by each
/// service's handler, which answers 408.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// Connections served at once; more wait in the listen backlog. Below the
/// usual 1024 open-file limit, leaving room for the service's own files.
pub const DEFAULT_MAX_CONNECTIONS: usize = 900;

/// What the serve loop allows a client, and how long a shutdown may take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// How long in-flight requests get to finish after shutdown begins.
    pub grace: Duration,
    /// See [`DEFAULT_HEADER_TIMEOUT`]. For HTTP/1.1 it is hyper's
    /// `header_read_timeout` (each head, and each idle wait for one); for a
    /// connection's first request, whatever its protocol, the serve loop's
    /// own deadline (hyper-util's protocol sniffing and HTTP/2's preface and
    /// first HEADERS have no timeout of their own); for HTTP/2 after that,
    /// how long a connection may have no open stream before GOAWAY (the
    /// idle wait for the next request, as for HTTP/1.1).
    pub header_timeout: Duration,
    /// See [`DEFAULT_MAX_CONNECTIONS`].
    pub max_connections: usize,
}

impl Limits {
    /// The defaults, with `grace` for the drain.
    pub fn with_grace(grace: Duration) -> Self {
        Self {
            grace,
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }
}

/// What answers a service's requests: any `Fn(Request) -> impl Future<Output =
/// Response>` that can be shared by the connection tasks. A service maps its
/// own errors to statuses, so nothing here can fail a request.
pub trait Handler: Send + Sync + 'static {
    type Body: Body<Data: Send, Error: Into<Box<dyn std::error::Error + Send + Sync>>>
        + Send
        + 'static;
    type Future: Future<Output = Response<Self::Body>> + Send + 'static;

    fn handle(&self, request: Request<Incoming>) -> Self::Future;
}

impl<H, Fut, B> Handler for H
where
    H: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response<B>> + Send + 'static,
    B: Body<Data: Send, Error: Into<Box<dyn std::error::Error + Send + Sync>>> + Send + 'static,
{
    type Body = B;
    type Future = Fut;

    fn handle(&self, request: Request<Incoming>) -> Fut {
        self(request)
    }
}

/// Serves `handler` on `listener` (HTTP/1.1 or h2c, detected per
/// connection) until `shutdown` completes, then drains for at most `grace`
/// and returns what `shutdown` returned. The other [`Limits`] are the
/// defaults; [`serve_with`] sets them.
pub async fn serve<H: Handler, S: Future>(
    listener: TcpListener,
    handler: H,
    shutdown: S,
    grace: Duration,
) -> S::Output {
    serve_with(listener, handler, shutdown, Limits::with_grace(grace)).await
}

/// [`serve`] with every limit given.
pub async fn serve_with<H: Handler, S: Future>(
    listener: TcpListener,
    handler: H,
    shutdown: S,
    limits: Limits,
) -> S::Output {
    serve_tls(listener, None, handler, shutdown, limits).await
}

/// How a request's connection reached the service: put in every request's
/// extensions by the serve loop (the services count requests by it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transport {
    /// Over TLS ([`serve_tls`] with a certificate).
    pub tls: bool,
}

/// [`serve_with`], over TLS when `tls` is given (see the module doc).
pub async fn serve_tls<H: Handler, S: Future>(
    listener: TcpListener,
    tls: Option<ServerTls>,
    handler: H,
    shutdown: S,
    limits: Limits,
) -> S::Output {
    let handler = Arc::new(handler);
    // One permit per open connection, held by its task: accepting waits for
    // one, so the connection count never passes the cap.
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    // `true` once shutdown begins; each connection task watches it. Only
    // this function sends, once.
    let (drain_tx, drain_rx) = watch::channel(false);
    // Owns every connection task, so shutdown can wait for (or abort) them,
    // and dropping it (if the serving task is aborted) aborts them too.
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    let stopped = loop {
        tokio::select! {
            stopped = &mut shutdown => break stopped,
            // Reap finished tasks so the set does not grow without bound.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = accept(&listener, &permits) => match accepted {
                Ok((stream, permit)) => {
                    let _ = stream.set_nodelay(true);
                    connections.spawn(start_connection(
                        stream,
                        tls.clone(),
                        Arc::clone(&handler),
                        drain_rx.clone(),
                        limits.header_timeout,
                        permit,
                    ));
                }
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
        }
    };
    drop(listener);
    tracing::info!(open = connections.len(), "draining connections");
    let _ = drain_tx.send(true);
    let drained = tokio::time::timeout(limits.grace, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            aborted = connections.len(),
            "drain grace elapsed; aborting connections"
        );
        connections.shutdown().await;
    }
    stopped
}

/// Waits for a connection permit, then for a connection.
async fn accept(
    listener: &TcpListener,
    permits: &Arc<Semaphore>,
) -> std::io::Result<(TcpStream, OwnedSemaphorePermit)> {
    // The semaphore is never closed, so this cannot fail; if it ever did,
    // a connection without a permit is still served.
    let permit = Arc::clone(permits).acquire_owned().await;
    let (stream, peer) = listener.accept().await?;
    tracing::trace!(%peer, "accepted");
    match permit {
        Ok(permit) => Ok((stream, permit)),
        Err(_) => Err(std::io::Error::other("connection permits closed")),
    }
}

/// A new connection: its TLS handshake first, if the service serves TLS,
/// within the header timeout and given up when the drain begins. `permit`
/// is its place under the connection cap, held until it closes.
async fn start_connection<H: Handler>(
    stream: TcpStream,
    tls: Option<ServerTls>,
    handler: Arc<H>,
    mut drain: watch::Receiver<bool>,
    header_timeout: Duration,
    permit: OwnedSemaphorePermit,
) {
    let Some(tls) = tls else {
        let plain = Protocol::Sniff(Transport { tls: false });
        return connection(stream, plain, handler, drain, header_timeout, permit).await;
    };
    let handshake = tokio::select! {
        handshake = tokio::time::timeout(header_timeout, tls.acceptor().accept(stream)) => handshake,
        _ = drain.wait_for(|draining| *draining) => return,
    };
    let stream = match handshake {
        Ok(Ok(stream)) => stream,
        Ok(Err(error)) => {
            tracing::debug!(%error, "TLS handshake failed");
            return;
        }
        Err(_elapsed) => {
            tracing::debug!("no TLS handshake within the header timeout; closing");
            return;
        }
    };
    let transport = Transport { tls: true };
    let protocol = if crate::tls::is_h2(stream.get_ref().1.alpn_protocol()) {
        Protocol::H2(transport)
    } else {
        Protocol::H1(transport)
    };
    connection(stream, protocol, handler, drain, header_timeout, permit).await
}

/// What a connection speaks: agreed by ALPN, or (plain TCP) told by its
/// first bytes, HTTP/1.1 or the h2c preface.
#[derive(Clone, Copy, Debug)]
enum Protocol {
    Sniff(Transport),
    H1(Transport),
    H2(Transport),
}

/// One client connection, until it closes or the drain has finished it.
/// `_permit` is its place under the connection cap, released on return.
async fn connection<H: Handler, I>(
    stream: I,
    protocol: Protocol,
    handler: Arc<H>,
    mut drain: watch::Receiver<bool>,
    header_timeout: Duration,
    _permit: OwnedSemaphorePermit,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (Protocol::Sniff(transport) | Protocol::H1(transport) | Protocol::H2(transport)) = protocol;
    // Notified on every request head read, whatever the protocol; the
    // first one lifts the connection's first-head deadline.
    let started = Arc::new(Notify::new());
    let streams = Streams::new();
    let service = {
        let started = Arc::clone(&started);
        let streams = Arc::clone(&streams);
        service_fn(move |mut request: Request<Incoming>| {
            request.extensions_mut().insert(transport);
            // Before the notify, so the connection's task sees it with it.
            let open = streams.open(request.version() == Version::HTTP_2);
            started.notify_one();
            let trace = crate::trace::child_of(request.headers());
            let response = crate::trace::scope(trace, handler.handle(request));
            // Open until the response is sent (or the stream is reset).
            async move { Ok::<_, Infallible>(response.await.map(|body| Tracked::new(body, open))) }
        })
    };
    let mut builder = match protocol {
        Protocol::Sniff(_) => auto::Builder::new(TokioExecutor::new()),
        Protocol::H1(_) => auto::Builder::new(TokioExecutor::new()).http1_only(),
        Protocol::H2(_) => auto::Builder::new(TokioExecutor::new()).http2_only(),
    };
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    let first_head = tokio::time::sleep(header_timeout);
    tokio::pin!(first_head);
    let mut head_seen = false;
    let mut open = streams.watch();
    enum Ended<R> {
        Closed(R),
        Draining,
        Idle,
    }
    let ended = {
        // In a block of its own: it borrows `open`, used again after GOAWAY.
        let idle = idle::idle_for(&mut open, header_timeout);
        tokio::pin!(idle);
        loop {
            tokio::select! {
                result = conn.as_mut() => break Ended::Closed(result),
                // `wait_for`'s guard is dropped here, before the next `.await`.
                _ = drain.wait_for(|draining| *draining) => break Ended::Draining,
                () = started.notified(), if !head_seen => head_seen = true,
                () = &mut first_head, if !head_seen => {
                    tracing::debug!("no request head within the header timeout; closing");
                    return;
                }
                () = &mut idle, if head_seen && streams.is_h2() => break Ended::Idle,
            }
        }
    };
    let result = match ended {
        Ended::Closed(result) => result,
        Ended::Draining => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
        Ended::Idle => {
            tracing::debug!("h2 connection idle: GOAWAY");
            // GOAWAY (NO_ERROR), then the close once the client has answered
            // hyper's PING; streams it opened before it saw the GOAWAY are
            // served. A client that never answers is dropped after another
            // idle timeout, not waited for; a drain meanwhile changes nothing
            // (the serve loop bounds it with the grace).
            conn.as_mut().graceful_shutdown();
            tokio::select! {
                result = conn.as_mut() => result,
                () = idle::idle_for(&mut open, header_timeout) => return,
            }
        }
    };
    if let Err(error) = result {
        // Clients vanishing mid-request are routine; not worth a warning.
        tracing::debug!(
            error = &*error as &dyn std::error::Error,
            "connection error"
        );
    }
}

mod idle;

use crate::tls::ServerTls;
use idle::{Streams, Tracked};

#[cfg(test)]
mod tests;
