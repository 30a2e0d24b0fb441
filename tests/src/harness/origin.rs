//! Scripted backends on `127.0.0.1:0`, in the spirit of linkerd's
//! `server::http1().route("/", "hello").run()`:
//!
//! ```ignore
//! let origin = Origin::http1().name("a").route("/slow", reply::delayed(d, reply::text(200, "late"))).start().await;
//! ```
//!
//! Each origin counts the TCP connections it accepted and the ones that ended
//! (pool-reuse and disconnect tests), and records every request head it saw
//! (what the proxy forwarded, or that a refused request never arrived). Every
//! response carries `x-origin: <name>` so balancing tests can tell who answered.
//!
//! [`Origin::closing_h1`] is a hand-written HTTP/1.1 server that closes its
//! keep-alive connections on purpose, to provoke the idle-close race.

use super::BoxError;
use super::pattern::{PatternBody, PatternCheck};
use bytes::{Bytes, BytesMut};
use http::{
    HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, Uri, Version,
};
use http_body::Frame;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use parking_lot::Mutex;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

/// The response body every scripted handler returns.
pub type Body = BoxBody<Bytes, BoxError>;
type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;
/// A request handler: any `Fn(Request) -> Future<Response>`.
pub type Handler = Arc<dyn Fn(Request<Incoming>) -> BoxFuture<Response<Body>> + Send + Sync>;

#[derive(Clone)]
enum Mode {
    Http1,
    H2c,
    /// TLS, then HTTP/2 when ALPN chose `h2`, else HTTP/1.1.
    Tls(tokio_rustls::TlsAcceptor),
}

/// A request head as the origin received it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: Method,
    pub uri: Uri,
    pub version: Version,
    pub headers: HeaderMap,
    /// Which accepted connection (1-based) carried it.
    pub conn: usize,
}

#[derive(Debug, Default)]
struct Stats {
    accepted: AtomicUsize,
    closed: AtomicUsize,
    seen: Mutex<Vec<Seen>>,
}

impl Stats {
    fn record(&self, seen: Seen) {
        self.seen.lock().push(seen);
    }
}

/// Builds an [`Origin`].
pub struct OriginBuilder {
    mode: Mode,
    name: String,
    routes: Vec<(String, Handler)>,
}

/// A running scripted backend; it stops when dropped.
pub struct Origin {
    addr: SocketAddr,
    name: String,
    stats: Arc<Stats>,
    task: JoinHandle<()>,
}

impl Origin {
    /// An HTTP/1.1 origin that answers every request with its own name
    /// as the body.
    pub async fn echoing_name(name: &'static str) -> Origin {
        Origin::http1()
            .name(name)
            .route("/", reply::text(200, name))
            .start()
            .await
    }

    /// An HTTP/1.1 origin (keep-alive, upgrades allowed).
    pub fn http1() -> OriginBuilder {
        OriginBuilder {
            mode: Mode::Http1,
            name: "origin".to_owned(),
            routes: Vec::new(),
        }
    }

    /// An HTTP/1.1 origin called `name` that answers `200 ok` to
    /// everything: balancing tests tell who answered by `x-origin`.
    pub async fn named(name: &str) -> Origin {
        Origin::http1()
            .name(name)
            .route("/", reply::text(200, "ok"))
            .start()
            .await
    }

    /// An HTTP/2 origin with prior knowledge over plain TCP.
    pub fn h2c() -> OriginBuilder {
        OriginBuilder {
            mode: Mode::H2c,
            ..Origin::http1()
        }
    }

    /// An origin behind TLS with `config` (see `TestCerts::server_config`):
    /// HTTP/2 when ALPN picks `h2`, HTTP/1.1 otherwise.
    pub fn tls(config: Arc<rustls::ServerConfig>) -> OriginBuilder {
        OriginBuilder {
            mode: Mode::Tls(config.into()),
            ..Origin::http1()
        }
    }

    /// A hand-written HTTP/1.1 origin that answers every GET with `200 <name>`
    /// (keep-alive framing, no `Connection: close`) and then closes the
    /// connection as `policy` says: the backend side of the idle-close race.
    pub async fn closing_h1(name: &str, policy: ClosePolicy) -> Origin {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind origin");
        let addr = listener.local_addr().expect("origin addr");
        let stats = Arc::new(Stats::default());
        let task = tokio::spawn(accept_raw(listener, stats.clone(), name.to_owned(), policy));
        let origin = Origin {
            addr,
            name: name.to_owned(),
            stats,
            task,
        };
        origin.wait_ready().await;
        origin
    }

    /// Polls until the accept loop has taken and finished a probe connection,
    /// then zeroes the counters so tests count only the proxy's connections.
    async fn wait_ready(&self) {
        super::client::wait_ready(self.addr).await;
        super::eventually("the origin to accept and close its readiness probe", || {
            self.accepted() == 1 && self.closed() == 1
        })
        .await;
        self.stats.accepted.store(0, Ordering::SeqCst);
        self.stats.closed.store(0, Ordering::SeqCst);
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// TCP connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.stats.accepted.load(Ordering::SeqCst)
    }

    /// TCP connections that have ended (either side closed them).
    pub fn closed(&self) -> usize {
        self.stats.closed.load(Ordering::SeqCst)
    }

    /// Every request head seen so far, in arrival order.
    pub fn requests(&self) -> Vec<Seen> {
        self.stats.seen.lock().clone()
    }

    pub fn request_count(&self) -> usize {
        self.stats.seen.lock().len()
    }

    /// The last request head seen; panics if there was none.
    pub fn last_request(&self) -> Seen {
        self.requests()
            .pop()
            .unwrap_or_else(|| panic!("origin {} saw no request", self.name))
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        // The accept task owns the connection tasks (a JoinSet): aborting it
        // closes every connection too.
        self.task.abort();
    }
}

impl OriginBuilder {
    /// Names this origin; every response carries `x-origin: <name>`.
    pub fn name(mut self, name: &str) -> Self {
        name.clone_into(&mut self.name);
        self
    }

    /// Routes requests whose path starts with `prefix` (longest prefix wins);
    /// unrouted requests get 404.
    pub fn route<F, Fut>(mut self, prefix: &str, f: F) -> Self
    where
        F: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Response<Body>> + Send + 'static,
    {
        let h: Handler = Arc::new(move |req| Box::pin(f(req)));
        self.routes.push((prefix.to_owned(), h));
        self.routes.sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
        self
    }

    pub async fn start(self) -> Origin {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind origin");
        let addr = listener.local_addr().expect("origin addr");
        let stats = Arc::new(Stats::default());
        let routes: Arc<[(String, Handler)]> = self.routes.into();
        let name = HeaderValue::from_str(&self.name).expect("origin name is a header value");
        let task = tokio::spawn(accept_hyper(
            listener,
            stats.clone(),
            routes,
            name,
            self.mode,
        ));
        let origin = Origin {
            addr,
            name: self.name,
            stats,
            task,
        };
        origin.wait_ready().await;
        origin
    }
}

async fn accept_hyper(
    listener: TcpListener,
    stats: Arc<Stats>,
    routes: Arc<[(String, Handler)]>,
    name: HeaderValue,
    mode: Mode,
) {
    let mut conns = JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        while conns.try_join_next().is_some() {}
        let conn_no = stats.accepted.fetch_add(1, Ordering::SeqCst) + 1;
        let (stats, routes, name) = (stats.clone(), routes.clone(), name.clone());
        let mode = mode.clone();
        conns.spawn(async move {
            // Counts the connection as closed however this task ends.
            let _closed = OnDrop(Some({
                let stats = stats.clone();
                move || {
                    stats.closed.fetch_add(1, Ordering::SeqCst);
                }
            }));
            let svc = service_fn(move |req: Request<Incoming>| {
                stats.record(Seen {
                    method: req.method().clone(),
                    uri: req.uri().clone(),
                    version: req.version(),
                    headers: req.headers().clone(),
                    conn: conn_no,
                });
                let handler = routes
                    .iter()
                    .find(|(p, _)| req.uri().path().starts_with(p.as_str()))
                    .map(|(_, h)| h.clone());
                let name = name.clone();
                async move {
                    let mut resp = match handler {
                        Some(h) => h(req).await,
                        None => reply::status(StatusCode::NOT_FOUND),
                    };
                    resp.headers_mut().insert("x-origin", name);
                    Ok::<_, Infallible>(resp)
                }
            });
            let _ = match mode {
                Mode::Http1 => serve_h1(stream, svc).await,
                Mode::H2c => serve_h2(stream, svc).await,
                Mode::Tls(acceptor) => {
                    let Ok(tls) = acceptor.accept(stream).await else {
                        return;
                    };
                    if tls.get_ref().1.alpn_protocol() == Some(b"h2") {
                        serve_h2(tls, svc).await
                    } else {
                        serve_h1(tls, svc).await
                    }
                }
            };
        });
    }
}

async fn serve_h1<I, S>(io: I, svc: S) -> hyper::Result<()>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    S: hyper::service::HttpService<Incoming, ResBody = Body> + Send,
    S::Future: Send + 'static,
{
    hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(io), svc)
        .with_upgrades()
        .await
}

async fn serve_h2<I, S>(io: I, svc: S) -> hyper::Result<()>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    S: hyper::service::HttpService<Incoming, ResBody = Body> + Send,
    S::Future: Send + 'static,
{
    hyper::server::conn::http2::Builder::new(TokioExecutor::new())
        .serve_connection(TokioIo::new(io), svc)
        .await
}

struct OnDrop<F: FnOnce()>(Option<F>);

impl<F: FnOnce()> Drop for OnDrop<F> {
    fn drop(&mut self) {
        if let Some(f) = self.0.take() {
            f();
        }
    }
}

/// When [`Origin::closing_h1`] closes a keep-alive connection.
#[derive(Clone, Copy, Debug)]
pub enum ClosePolicy {
    /// Right after writing each response.
    AfterEachResponse,
    /// When no new request arrives within this long.
    Idle(Duration),
}

async fn accept_raw(listener: TcpListener, stats: Arc<Stats>, name: String, policy: ClosePolicy) {
    let mut conns = JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        while conns.try_join_next().is_some() {}
        let conn_no = stats.accepted.fetch_add(1, Ordering::SeqCst) + 1;
        let (stats, name) = (stats.clone(), name.clone());
        conns.spawn(async move {
            let _ = serve_raw(stream, &stats, &name, policy, conn_no).await;
            stats.closed.fetch_add(1, Ordering::SeqCst);
        });
    }
}

/// Reads bodiless request heads and answers each with a fixed 200.
async fn serve_raw(
    mut stream: TcpStream,
    stats: &Stats,
    name: &str,
    policy: ClosePolicy,
    conn_no: usize,
) -> std::io::Result<()> {
    let mut buf = BytesMut::new();
    loop {
        let head = loop {
            if let Some(end) = find_head_end(&buf) {
                break buf.split_to(end);
            }
            let read = match policy {
                ClosePolicy::Idle(idle) if buf.is_empty() => {
                    match tokio::time::timeout(idle, stream.read_buf(&mut buf)).await {
                        Ok(r) => r?,
                        Err(_) => return Ok(()), // idle too long: close
                    }
                }
                _ => stream.read_buf(&mut buf).await?,
            };
            if read == 0 {
                return Ok(());
            }
        };
        stats.record(parse_request_head(&head, conn_no));
        let body = name.as_bytes();
        let resp = format!(
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nx-origin: {name}\r\n\r\n",
            body.len()
        );
        stream.write_all(resp.as_bytes()).await?;
        stream.write_all(body).await?;
        if let ClosePolicy::AfterEachResponse = policy {
            return Ok(());
        }
    }
}

fn find_head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

fn parse_request_head(head: &[u8], conn: usize) -> Seen {
    let text = String::from_utf8_lossy(head);
    let mut lines = text.split("\r\n");
    let mut first = lines.next().unwrap_or_default().split(' ');
    let method = first.next().unwrap_or("GET").parse().unwrap_or(Method::GET);
    let uri = first.next().unwrap_or("/").parse().unwrap_or_default();
    let mut headers = HeaderMap::new();
    for line in lines {
        if let Some((k, v)) = line.split_once(':')
            && let (Ok(k), Ok(v)) = (
                HeaderName::from_bytes(k.trim().as_bytes()),
                HeaderValue::from_str(v.trim()),
            )
        {
            headers.append(k, v);
        }
    }
    Seen {
        method,
        uri,
        version: Version::HTTP_11,
        headers,
        conn,
    }
}

/// Ready-made handlers and bodies for [`OriginBuilder::route`].
pub mod reply {
    pub use super::Body;
    use super::*;

    pub fn empty() -> Body {
        Empty::new().map_err(|e| match e {}).boxed()
    }

    pub fn full(bytes: impl Into<Bytes>) -> Body {
        Full::new(bytes.into()).map_err(|e| match e {}).boxed()
    }

    /// A body made of exactly these frames (data and trailers), each sent
    /// as its own frame.
    pub fn frames(frames: Vec<Frame<Bytes>>) -> Body {
        FramesBody(frames.into()).boxed()
    }

    /// `total` bytes of the test pattern, generated as they are sent.
    pub fn pattern(total: u64) -> Body {
        PatternBody::new(total).boxed()
    }

    /// A response with this status and no body.
    pub fn status(status: StatusCode) -> Response<Body> {
        let mut r = Response::new(empty());
        *r.status_mut() = status;
        r
    }

    /// A handler answering `status` with `body`.
    pub fn text(
        status: u16,
        body: &'static str,
    ) -> impl Fn(Request<Incoming>) -> std::future::Ready<Response<Body>> + Send + Sync + Clone
    {
        move |_| {
            let mut r = Response::new(full(body));
            *r.status_mut() = StatusCode::from_u16(status).expect("valid status");
            std::future::ready(r)
        }
    }

    /// Wraps a handler so it answers only after `delay`.
    pub fn delayed<F, Fut>(
        delay: Duration,
        inner: F,
    ) -> impl Fn(Request<Incoming>) -> BoxFuture<Response<Body>> + Send + Sync + Clone
    where
        F: Fn(Request<Incoming>) -> Fut + Send + Sync + Clone + 'static,
        Fut: Future<Output = Response<Body>> + Send + 'static,
    {
        move |req| {
            let inner = inner.clone();
            Box::pin(async move {
                tokio::time::sleep(delay).await;
                inner(req).await
            })
        }
    }

    /// A handler that answers 200 with `body` once `gate` gives it a
    /// permit (`gate.add_permits(n)` lets `n` requests through): a backend
    /// exactly as slow as the test needs, without a clock.
    pub fn gated(
        gate: Arc<tokio::sync::Semaphore>,
        body: &'static str,
    ) -> impl Fn(Request<Incoming>) -> BoxFuture<Response<Body>> + Send + Sync + Clone {
        move |_| {
            let gate = gate.clone();
            Box::pin(async move {
                let _permit = gate.acquire().await.expect("gate");
                Response::new(full(body))
            })
        }
    }

    /// A handler that never answers (until its connection goes away).
    pub fn hang(_req: Request<Incoming>) -> BoxFuture<Response<Body>> {
        Box::pin(std::future::pending())
    }

    /// A handler that answers with the request path as its body.
    pub async fn echo_path(req: Request<Incoming>) -> Response<Body> {
        Response::new(full(req.uri().path().to_owned()))
    }

    /// A handler that streams the request body back as the response body.
    pub async fn echo_body(req: Request<Incoming>) -> Response<Body> {
        Response::new(req.into_body().map_err(BoxError::from).boxed())
    }

    /// A handler that reads the whole request body, checking it against the
    /// test pattern as it arrives (never holding it), and answers
    /// `<bytes> <ok|corrupt>`.
    pub async fn check_pattern(req: Request<Incoming>) -> Response<Body> {
        let mut body = req.into_body();
        let mut check = PatternCheck::default();
        while let Some(frame) = body.frame().await {
            match frame {
                Ok(f) => {
                    if let Some(d) = f.data_ref() {
                        check.feed(d);
                    }
                }
                Err(e) => return Response::new(full(format!("error {e}"))),
            }
        }
        let verdict = if check.ok() { "ok" } else { "corrupt" };
        Response::new(full(format!("{} {verdict}", check.count())))
    }

    /// A body that yields prepared frames one at a time.
    struct FramesBody(std::collections::VecDeque<Frame<Bytes>>);

    impl http_body::Body for FramesBody {
        type Data = Bytes;
        type Error = BoxError;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Result<Frame<Bytes>, BoxError>>> {
            std::task::Poll::Ready(self.0.pop_front().map(Ok))
        }

        fn is_end_stream(&self) -> bool {
            self.0.is_empty()
        }
    }
}
