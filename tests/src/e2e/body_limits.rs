//! Bounds on whole bodies (issue 14 finding 2's class, issue 15 "Limits and
//! timeouts"): an upload slower on average than `limits.min_body_rate` gets
//! a 408 `request body too slow` however regularly its bytes come; a body
//! over `limits.max_request_body` gets a 413 `request body too large`,
//! before anything is forwarded when its length says so, else as it
//! streams; neither is ever the backend's fault. A backend that stalls in
//! the middle of a response body has the response cut after
//! `timeouts.upstream_body`, and that one is its fault. A route's `timeout`
//! bounds a request to its response head (504), never blaming the backend.

use super::admin::with_admin;
use super::slow_client::{body_length, ejectable_after};
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::BodyExt;
use sluice::Config;
use sluice::config::{RouteConfig, UpstreamProtocol};
use sluice_e2e::harness::client::{H1, H2, RawConn};
use sluice_e2e::harness::control::Admin;
use sluice_e2e::harness::origin::{Body, Origin, OriginBuilder, reply};
use sluice_e2e::harness::proxy::Proxy;
use sluice_e2e::harness::within;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;

/// More misbehaving clients than the passive ejection threshold.
const CLIENTS: usize = 6;
const EJECT_AFTER: u32 = 2;
/// The body size limit of these tests.
const LIMIT: u64 = 1000;
/// Far below the rate the proxy wants, far within its silence limit.
const TRICKLE_EVERY: Duration = Duration::from_millis(50);

/// `/up` reads the whole body and answers its length; `/stall` answers a
/// head announcing 100 bytes, sends 10 and stalls; `/` answers `ok`.
async fn origin() -> Origin {
    origin_of(Origin::http1()).await
}

async fn origin_of(builder: OriginBuilder) -> Origin {
    builder
        .route("/up", body_length)
        .route("/free", body_length)
        .route("/stall", |_| async {
            let mut r = Response::new(Stall { sent: false }.boxed());
            r.headers_mut()
                .insert(http::header::CONTENT_LENGTH, "100".parse().expect("value"));
            r
        })
        .route("/hang", reply::hang)
        .route("/", reply::text(200, "ok"))
        .start()
        .await
}

/// A response body that sends ten bytes and then nothing, ever.
struct Stall {
    sent: bool,
}

impl http_body::Body for Stall {
    type Data = Bytes;
    type Error = sluice::error::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if std::mem::replace(&mut self.sent, true) {
            return Poll::Pending;
        }
        Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b"0123456789")))))
    }
}

/// One backend, ejectable after [`EJECT_AFTER`] failures, the admin API to
/// read its state, a body limit of [`LIMIT`] lifted on `/free`, and a rate
/// of 1000 B/s after 200 ms (with 5 s of silence allowed, so only the rate
/// can stop a trickle).
fn setup(backend: SocketAddr) -> Config {
    let mut c = with_admin(&[backend]);
    c.upstreams[0].passive = ejectable_after(EJECT_AFTER);
    c.limits.max_request_body = LIMIT;
    c.limits.min_body_rate = 1000;
    c.limits.min_body_rate_grace = Duration::from_millis(200);
    c.timeouts.client_body = Duration::from_secs(5);
    c.timeouts.upstream_body = Duration::from_millis(300);
    c.routes.push(RouteConfig {
        name: None,
        host: None,
        path: "/free".into(),
        upstream: 0,
        compress: None,
        retry: None,
        max_request_body: Some(0),
        timeout: None,
    });
    // A deadline far shorter than the backend's own response timeout.
    c.timeouts.upstream_response = Duration::from_secs(3600);
    c.routes.push(RouteConfig {
        name: None,
        host: None,
        path: "/hang".into(),
        upstream: 0,
        compress: None,
        retry: None,
        max_request_body: None,
        timeout: Some(Duration::from_millis(300)),
    });
    c
}

/// The backend's failure count; it is still in rotation and answers.
async fn failures(proxy: &Proxy, backend: SocketAddr) -> u64 {
    let m = Admin::of(proxy.server())
        .member(backend)
        .await
        .expect("a member");
    assert_eq!(m["state"].as_str(), Some("healthy"), "{m:?}");
    assert_eq!(m["ejections"].as_u64(), Some(0), "{m:?}");
    let r = H1::connect(proxy.addr()).await.get("/").await;
    assert_eq!(r.status, 200, "{:?}", r.header("x-sluice-error"));
    m["failures"].as_u64().expect("failures")
}

fn reason<B>(r: &Response<B>) -> String {
    r.headers()
        .get("x-sluice-error")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned()
}

/// Everything the proxy sends until it closes (a reset counts as the end:
/// it closes with the client's unread bytes), as (status, reason, close).
async fn h1_until_close(mut rd: impl tokio::io::AsyncRead + Unpin) -> (u16, String, bool) {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match within("the answer, then EOF", rd.read(&mut buf)).await {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&got).into_owned();
    let status = text.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let header = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name).map(str::to_owned))
            .unwrap_or_default()
    };
    let close = header("connection: ") == "close";
    (status, header("x-sluice-error: "), close)
}

/// An HTTP/1.1 upload announcing 1000 bytes and sending one byte every
/// [`TRICKLE_EVERY`] until the proxy answers.
async fn h1_trickle(proxy: SocketAddr) -> (u16, String) {
    let tcp = TcpStream::connect(proxy).await.expect("connect");
    let (rd, mut wr) = tcp.into_split();
    let writer = tokio::spawn(async move {
        let head = "POST /up HTTP/1.1\r\nHost: a.test\r\nContent-Length: 1000\r\n\r\n";
        wr.write_all(head.as_bytes()).await?;
        loop {
            wr.write_all(b"x").await?;
            tokio::time::sleep(TRICKLE_EVERY).await;
        }
        #[allow(unreachable_code)]
        Ok::<(), std::io::Error>(())
    });
    let (status, reason, close) = h1_until_close(rd).await;
    writer.abort();
    assert!(close, "a 408 closes the connection");
    (status, reason)
}

/// The same over HTTP/2 (no declared length).
async fn h2_trickle(proxy: SocketAddr) -> (u16, String) {
    let tcp = TcpStream::connect(proxy).await.expect("connect");
    let (h2, conn) = within("h2 handshake", h2::client::handshake(tcp))
        .await
        .expect("h2 handshake");
    tokio::spawn(conn);
    let mut h2 = within("h2 ready", h2.ready()).await.expect("ready");
    let req = Request::post("http://a.test/up").body(()).expect("request");
    let (resp, mut stream) = h2.send_request(req, false).expect("send");
    let writer = tokio::spawn(async move {
        while stream.send_data(Bytes::from_static(b"x"), false).is_ok() {
            tokio::time::sleep(TRICKLE_EVERY).await;
        }
    });
    let resp = within("the answer", resp).await.expect("response");
    writer.abort();
    (resp.status().as_u16(), reason(&resp))
}

#[tokio::test]
async fn uploads_below_the_minimum_rate_get_408_and_never_eject_the_backend() {
    let origin = origin().await;
    let proxy = Proxy::start(&setup(origin.addr())).await;
    let mut set = JoinSet::new();
    for i in 0..CLIENTS {
        if i % 2 == 0 {
            set.spawn(h1_trickle(proxy.addr()));
        } else {
            set.spawn(h2_trickle(proxy.addr()));
        }
    }
    for (status, reason) in within("every trickle", set.join_all()).await {
        assert_eq!((status, reason.as_str()), (408, "request body too slow"));
    }
    assert_eq!(failures(&proxy, origin.addr()).await, 0);
}

/// HTTP/1.1 keeps a connection after a 413 when the rest of the body is
/// cheap to throw away (the server's rule for any unread body: at most
/// 64 KiB), and closes it at once when the declared rest is larger.
#[tokio::test]
async fn an_h1_body_declared_over_the_limit_gets_413_before_anything_is_forwarded() {
    let origin = origin().await;
    let proxy = Proxy::start(&setup(origin.addr())).await;
    for _ in 0..CLIENTS {
        // Small enough to discard: the connection serves on.
        let mut raw = RawConn::connect(proxy.addr()).await;
        raw.send(b"POST /up HTTP/1.1\r\nHost: a.test\r\nContent-Length: 1500\r\n\r\n")
            .await;
        raw.send(&[b'x'; 1500]).await;
        let r = raw.read_response().await;
        assert_eq!(r.status, 413);
        assert_eq!(r.header("x-sluice-error"), Some("request body too large"));
        raw.send(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n").await;
        let r = raw.read_response().await;
        assert_eq!((r.status, r.body_str()), (200, "ok"));
        // Too large to discard: closed after the answer.
        let mut raw = RawConn::connect(proxy.addr()).await;
        raw.send(b"POST /up HTTP/1.1\r\nHost: a.test\r\nContent-Length: 100000\r\n\r\n")
            .await;
        raw.send(&[b'x'; 100]).await;
        let (tcp, rest) = raw.into_stream();
        assert!(rest.is_empty());
        // Read to EOF: the connection is closed after the answer.
        let (status, reason, _) = h1_until_close(tcp).await;
        assert_eq!((status, reason.as_str()), (413, "request body too large"));
    }
    assert_eq!(
        origin.request_count(),
        CLIENTS,
        "only the GETs were forwarded"
    );
    assert_eq!(failures(&proxy, origin.addr()).await, 0);
}

#[tokio::test]
async fn an_h1_chunked_body_over_the_limit_gets_413_midstream_and_never_blames_the_backend() {
    let origin = origin().await;
    let proxy = Proxy::start(&setup(origin.addr())).await;
    let chunk = format!("258\r\n{}\r\n", "x".repeat(600));
    for _ in 0..CLIENTS {
        let mut raw = RawConn::connect(proxy.addr()).await;
        raw.send(b"POST /up HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n")
            .await;
        raw.send(chunk.repeat(2).as_bytes()).await;
        raw.send(b"0\r\n\r\n").await;
        let r = raw.read_response().await;
        assert_eq!(r.status, 413);
        assert_eq!(r.header("x-sluice-error"), Some("request body too large"));
        // The rest was thrown away; the connection serves on.
        raw.send(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n").await;
        let r = raw.read_response().await;
        assert_eq!((r.status, r.body_str()), (200, "ok"));
    }
    assert_eq!(failures(&proxy, origin.addr()).await, 0);
    // A route that lifts the limit takes a larger body.
    let mut raw = RawConn::connect(proxy.addr()).await;
    raw.send(b"POST /free HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n")
        .await;
    raw.send(chunk.repeat(3).as_bytes()).await;
    raw.send(b"0\r\n\r\n").await;
    let r = raw.read_response().await;
    assert_eq!((r.status, r.body_str()), (200, "1800"));
}

/// An HTTP/2 request for `path` with these body frames.
fn h2_post(path: &str, body: Body) -> Request<Body> {
    Request::post(format!("http://a.test{path}"))
        .body(body)
        .expect("request")
}

async fn h2_bodies_over_the_limit_get_413_on_their_stream_only(upstream: UpstreamProtocol) {
    let origin = match upstream {
        UpstreamProtocol::Http1 => origin().await,
        _ => origin_of(Origin::h2c()).await,
    };
    let mut cfg = setup(origin.addr());
    cfg.upstreams[0].protocol = upstream;
    let proxy = Proxy::start(&cfg).await;
    let mut h2 = H2::connect_h2c(proxy.addr()).await;
    let chunk = || Frame::data(Bytes::from(vec![b'x'; 600]));
    // Declared (hyper sends content-length for a body of known size).
    for _ in 0..CLIENTS / 2 {
        let r = h2.send(h2_post("/up", reply::full(vec![b'x'; 5000]))).await;
        assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(reason(&r), "request body too large");
    }
    assert_eq!(origin.request_count(), 0, "nothing was forwarded");
    // Undeclared: found as it streams.
    for _ in 0..CLIENTS / 2 {
        let r = h2
            .send(h2_post(
                "/up",
                reply::frames(vec![chunk(), chunk(), chunk()]),
            ))
            .await;
        assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(reason(&r), "request body too large");
    }
    // The connection goes on serving.
    let r = h2
        .send(h2_post("/free", reply::frames(vec![chunk(), chunk()])))
        .await;
    let status = r.status();
    let body = r.into_body().collect().await.expect("body").to_bytes();
    assert_eq!((status.as_u16(), &body[..]), (200, &b"1200"[..]));
    assert_eq!(failures(&proxy, origin.addr()).await, 0);
}

#[tokio::test]
async fn h2_bodies_over_the_limit_to_an_h1_backend_get_413_and_never_blame_it() {
    h2_bodies_over_the_limit_get_413_on_their_stream_only(UpstreamProtocol::Http1).await;
}

#[tokio::test]
async fn h2_bodies_over_the_limit_to_an_h2c_backend_get_413_and_never_blame_it() {
    h2_bodies_over_the_limit_get_413_on_their_stream_only(UpstreamProtocol::H2c).await;
}

#[tokio::test]
async fn a_backend_stalling_mid_body_has_the_response_cut_and_is_counted() {
    let origin = origin().await;
    // Two stalls in a row would now eject it (a stall is a failure like
    // any other): one more allowed, to see both counted in rotation.
    let mut c = setup(origin.addr());
    c.upstreams[0].passive = ejectable_after(EJECT_AFTER + 1);
    let proxy = Proxy::start(&c).await;
    // HTTP/1.1: the head, the part sent, then the close.
    let mut raw = RawConn::connect(proxy.addr()).await;
    raw.send(b"GET /stall HTTP/1.1\r\nHost: a.test\r\n\r\n")
        .await;
    let head = raw.read_head().await;
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), Some("100"));
    let body = within("the cut", raw.read_to_eof()).await;
    assert_eq!(body, b"0123456789", "a truncated body");
    // HTTP/2: the stream is reset after the part sent; the connection lives.
    let mut h2 = H2::connect_h2c(proxy.addr()).await;
    let r = h2.send(h2_post("/stall", reply::empty())).await;
    assert_eq!(r.status(), 200);
    let cut = within("the cut", r.into_body().collect()).await;
    assert!(cut.is_err(), "the stream is reset");
    let r = h2.get("/").await;
    assert_eq!((r.status.as_u16(), r.text()), (200, "ok"));
    // Both stalls are the backend's.
    assert_eq!(failures(&proxy, origin.addr()).await, 2);
}

#[tokio::test]
async fn a_route_deadline_answers_504_and_never_blames_the_backend() {
    let origin = origin().await;
    let proxy = Proxy::start(&setup(origin.addr())).await;
    for _ in 0..CLIENTS {
        let r = H1::connect(proxy.addr()).await.get("/hang").await;
        assert_eq!(r.status, 504);
        assert_eq!(
            r.header("x-sluice-error"),
            Some("request deadline exceeded")
        );
    }
    let r = H2::connect_h2c(proxy.addr()).await.get("/hang").await;
    assert_eq!(r.status, 504);
    assert_eq!(
        r.header("x-sluice-error"),
        Some("request deadline exceeded")
    );
    assert_eq!(failures(&proxy, origin.addr()).await, 0);
}
