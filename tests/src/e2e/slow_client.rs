//! A slow or vanishing client is the client's fault, never its backend's
//! (issue 14, finding 2). The client's body and the backend's answer are
//! timed apart: a client that stops sending its body gets a 408 `request
//! body timeout`, a client that leaves mid-body is `client aborted`, and
//! neither counts against the backend, which stays in rotation however many
//! there are (beyond the passive ejection threshold). A backend that is slow
//! once it has the whole request still gets its 504, and is counted.
//!
//! Each case runs for HTTP/1.1 and HTTP/2 clients, against HTTP/1.1 and h2c
//! backends.

use super::admin::with_admin;
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use sluice::Config;
use sluice::config::{Passive, UpstreamProtocol};
use sluice_e2e::harness::client::{H1, RawConn};
use sluice_e2e::harness::control::Admin;
use sluice_e2e::harness::origin::{Body, Origin, reply};
use sluice_e2e::harness::proxy::Proxy;
use sluice_e2e::harness::within;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;

/// More misbehaving clients than the passive ejection threshold.
const CLIENTS: usize = 12;
/// Consecutive failures that eject the backend.
const EJECT_AFTER: u32 = 5;
/// The client's body timeout: short, so that a stalled client runs into it
/// at once (a client that sends what it announced never does).
const SHORT: Duration = Duration::from_millis(300);
/// The backend's: long enough for a loaded machine to answer a request,
/// shorter than the slow clients below (so the old code timed them against
/// the backend).
const BACKEND: Duration = Duration::from_secs(1);
/// The body every slow client announces and never finishes.
const ANNOUNCED: usize = 100;
const SENT: &[u8] = b"0123456789";
/// A response far larger than the socket buffers between client and backend.
const BIG: usize = 4 << 20;

#[derive(Clone, Copy, Debug)]
enum Client {
    H1,
    H2,
}

/// `/up` reads the whole body and answers its length; `/slow` reads the
/// whole body and then never answers; `/big` answers [`BIG`] bytes; `/ws`
/// upgrades to an echo tunnel (HTTP/1.1 only); `/` answers `ok`.
async fn origin(upstream: UpstreamProtocol) -> Origin {
    let builder = match upstream {
        UpstreamProtocol::Http1 => Origin::http1(),
        _ => Origin::h2c(),
    };
    builder
        .route("/up", body_length)
        .route("/slow", read_then_hang)
        .route("/big", |_| async {
            Response::new(reply::pattern(BIG as u64))
        })
        .route("/ws", super::upgrade::websocket_echo)
        .route("/", reply::text(200, "ok"))
        .start()
        .await
}

/// Reads the whole body and answers its length (`body_limits` uses it too).
pub(super) async fn body_length(req: Request<Incoming>) -> Response<Body> {
    match req.into_body().collect().await {
        Ok(b) => Response::new(reply::full(b.to_bytes().len().to_string())),
        Err(e) => Response::new(reply::full(format!("error {e}"))),
    }
}

async fn read_then_hang(req: Request<Incoming>) -> Response<Body> {
    let _ = req.into_body().collect().await;
    std::future::pending().await
}

/// Passive health that ejects a backend after `failures` in a row, for an
/// hour, with the cap letting the whole group go: a test's one backend is
/// ejected exactly when it is blamed that often.
pub(crate) fn ejectable_after(failures: u32) -> Passive {
    Passive {
        consecutive_5xx: failures,
        ejection: Duration::from_secs(3600),
        max_ejection: Duration::from_secs(3600),
        max_ejected_percent: 100,
        ..Passive::default()
    }
}

/// One backend, ejectable (the cap lets the whole group go), both sides'
/// timeouts short, and the admin API to read the backend's state.
fn setup(backend: SocketAddr, upstream: UpstreamProtocol) -> Config {
    let mut c = with_admin(&[backend]);
    c.upstreams[0].protocol = upstream;
    c.upstreams[0].passive = ejectable_after(EJECT_AFTER);
    c.timeouts.client_body = SHORT;
    c.timeouts.upstream_response = BACKEND;
    c
}

/// The backend is in rotation, was never blamed, and answers a normal request.
async fn assert_unblamed(proxy: &Proxy, backend: SocketAddr) {
    let m = Admin::of(proxy.server())
        .member(backend)
        .await
        .expect("a member");
    assert_eq!(m["state"].as_str(), Some("healthy"), "{m:?}");
    assert_eq!(m["failures"].as_u64(), Some(0), "{m:?}");
    assert_eq!(m["ejections"].as_u64(), Some(0), "{m:?}");
    let r = H1::connect(proxy.addr()).await.get("/").await;
    assert_eq!(r.status, 200, "{:?}", r.header("x-sluice-error"));
    assert_eq!(r.text(), "ok");
}

/// The status and reason of the answer on `raw`; after a 408 the connection
/// must close (RFC 9110 §15.5.9: the rest of the body may still come), so
/// `close` is sent and EOF follows.
async fn h1_answer(mut raw: RawConn) -> (u16, String) {
    let r = raw.read_response().await;
    if r.status == 408 {
        assert_eq!(r.header("connection"), Some("close"), "{:?}", r.headers);
        let (mut tcp, _) = raw.into_stream();
        let mut rest = Vec::new();
        within("EOF after a 408", tcp.read_to_end(&mut rest))
            .await
            .expect("read");
        assert!(rest.is_empty(), "{:?}", String::from_utf8_lossy(&rest));
    }
    (
        r.status,
        r.header("x-sluice-error").unwrap_or("").to_owned(),
    )
}

/// A POST to `path` announcing [`ANNOUNCED`] bytes (HTTP/1.1) and sending
/// only [`SENT`]; then `end` happens, and the answer is `(status, reason)`.
async fn partial_upload(client: Client, proxy: SocketAddr, path: &str, end: End) -> (u16, String) {
    match client {
        Client::H1 => {
            let mut raw = RawConn::connect(proxy).await;
            let head = format!(
                "POST {path} HTTP/1.1\r\nHost: a.test\r\nContent-Length: {ANNOUNCED}\r\n\r\n"
            );
            raw.send(head.as_bytes()).await;
            raw.send(SENT).await;
            if end == End::Leave {
                // Half-close: the body can never complete, but the answer
                // can still be read.
                let (mut tcp, _) = raw.into_stream();
                tcp.shutdown().await.expect("shutdown");
                let mut got = Vec::new();
                within("the answer", tcp.read_to_end(&mut got))
                    .await
                    .expect("read");
                let text = String::from_utf8_lossy(&got).into_owned();
                let status = text.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
                let reason = text
                    .lines()
                    .find_map(|l| l.strip_prefix("x-sluice-error: "))
                    .unwrap_or_default()
                    .to_owned();
                return (status, reason);
            }
            h1_answer(raw).await
        }
        Client::H2 => {
            let tcp = TcpStream::connect(proxy).await.expect("connect");
            let (h2, conn) = within("h2 handshake", h2::client::handshake(tcp))
                .await
                .expect("h2 handshake");
            tokio::spawn(conn);
            let mut h2 = within("h2 ready", h2.ready()).await.expect("ready");
            let req = Request::post(format!("http://a.test{path}"))
                .body(())
                .expect("request");
            let (resp, mut stream) = h2.send_request(req, false).expect("send");
            stream
                .send_data(Bytes::from_static(SENT), false)
                .expect("data");
            if end == End::Leave {
                stream.send_reset(h2::Reason::CANCEL);
                return (0, String::new());
            }
            let resp = within("the answer", resp).await.expect("response");
            let reason = resp
                .headers()
                .get("x-sluice-error")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned();
            // The stream stays open (never ended) until the answer is in.
            drop(stream);
            (resp.status().as_u16(), reason)
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum End {
    /// The client just stops sending.
    Stall,
    /// The client goes away mid-body.
    Leave,
}

/// [`CLIENTS`] partial uploads at once; their answers.
async fn partial_uploads(client: Client, proxy: SocketAddr, end: End) -> Vec<(u16, String)> {
    let mut set = JoinSet::new();
    for _ in 0..CLIENTS {
        set.spawn(partial_upload(client, proxy, "/up", end));
    }
    within("every partial upload", set.join_all()).await
}

/// [`CLIENTS`] partial uploads that end as `end` says: each is the
/// client's fault (a stalled one gets 408 `request body timeout`, an
/// HTTP/1.1 client leaving can still read its 400 `client aborted`), and
/// the backend is never blamed.
async fn partial_uploads_never_blame_the_backend(
    client: Client,
    upstream: UpstreamProtocol,
    end: End,
) {
    let origin = origin(upstream).await;
    let mut cfg = setup(origin.addr(), upstream);
    let expected = match (end, client) {
        (End::Stall, _) => Some((408, "request body timeout")),
        (End::Leave, Client::H1) => Some((400, "client aborted")),
        // Nobody is left on the stream to read an answer.
        (End::Leave, Client::H2) => None,
    };
    if end == End::Leave {
        // Only the client leaving can end these uploads.
        cfg.timeouts.client_body = Duration::from_secs(3600);
    }
    let proxy = Proxy::start(&cfg).await;
    for (status, reason) in partial_uploads(client, proxy.addr(), end).await {
        if let Some(expected) = expected {
            assert_eq!(
                (status, reason.as_str()),
                expected,
                "{client:?} client, {upstream:?} backend"
            );
        }
    }
    assert_unblamed(&proxy, origin.addr()).await;
}

/// One test per client protocol, backend protocol and way of ending.
macro_rules! partial_upload_tests {
    ($($name:ident: $client:expr, $upstream:expr, $end:expr;)*) => {$(
        #[tokio::test]
        async fn $name() {
            partial_uploads_never_blame_the_backend($client, $upstream, $end).await;
        }
    )*};
}

partial_upload_tests! {
    stalled_h1_uploads_to_an_h1_backend_get_408_and_never_eject_it:
        Client::H1, UpstreamProtocol::Http1, End::Stall;
    stalled_h1_uploads_to_an_h2c_backend_get_408_and_never_eject_it:
        Client::H1, UpstreamProtocol::H2c, End::Stall;
    stalled_h2_uploads_to_an_h1_backend_get_408_and_never_eject_it:
        Client::H2, UpstreamProtocol::Http1, End::Stall;
    stalled_h2_uploads_to_an_h2c_backend_get_408_and_never_eject_it:
        Client::H2, UpstreamProtocol::H2c, End::Stall;
    h1_clients_leaving_mid_body_to_an_h1_backend_are_client_aborted:
        Client::H1, UpstreamProtocol::Http1, End::Leave;
    h1_clients_leaving_mid_body_to_an_h2c_backend_are_client_aborted:
        Client::H1, UpstreamProtocol::H2c, End::Leave;
    h2_clients_resetting_mid_body_never_blame_an_h1_backend:
        Client::H2, UpstreamProtocol::Http1, End::Leave;
    h2_clients_resetting_mid_body_never_blame_an_h2c_backend:
        Client::H2, UpstreamProtocol::H2c, End::Leave;
}

/// The other side of the split: a backend that has the whole request and
/// does not answer is the backend's fault, whoever the client is.
async fn a_backend_slow_after_the_body_gets_504_and_is_counted(
    client: Client,
    upstream: UpstreamProtocol,
) {
    let origin = origin(upstream).await;
    let mut cfg = setup(origin.addr(), upstream);
    cfg.timeouts.client_body = Duration::from_secs(3600);
    let proxy = Proxy::start(&cfg).await;
    let body = Bytes::from_static(SENT);
    let (status, reason) = match client {
        Client::H1 => {
            let mut raw = RawConn::connect(proxy.addr()).await;
            let head = format!(
                "POST /slow HTTP/1.1\r\nHost: a.test\r\nContent-Length: {}\r\n\r\n",
                body.len()
            );
            raw.send(head.as_bytes()).await;
            raw.send(&body).await;
            h1_answer(raw).await
        }
        Client::H2 => {
            let mut h2 = sluice_e2e::harness::client::H2::connect_h2c(proxy.addr()).await;
            let req = Request::post("http://a.test/slow")
                .body(reply::full(body))
                .expect("request");
            let r = h2.send(req).await;
            let reason = r
                .headers()
                .get("x-sluice-error")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned();
            (r.status().as_u16(), reason)
        }
    };
    assert_eq!(
        (status, reason.as_str()),
        (504, "backend response timed out")
    );
    let m = Admin::of(proxy.server())
        .member(origin.addr())
        .await
        .expect("a member");
    assert_eq!(m["failures"].as_u64(), Some(1), "{m:?}");
}

#[tokio::test]
async fn an_h1_backend_slow_after_the_body_gets_504_and_is_counted() {
    a_backend_slow_after_the_body_gets_504_and_is_counted(Client::H1, UpstreamProtocol::Http1)
        .await;
}

#[tokio::test]
async fn an_h2c_backend_slow_after_the_body_gets_504_and_is_counted() {
    a_backend_slow_after_the_body_gets_504_and_is_counted(Client::H2, UpstreamProtocol::H2c).await;
}

/// A client that uploads slowly but steadily (each pause well within
/// `client_body`, the whole upload longer than `upstream_response`) is
/// served: the backend's clock starts once the request is all sent.
#[tokio::test]
async fn a_steady_upload_longer_than_the_backend_timeout_is_answered() {
    for upstream in [UpstreamProtocol::Http1, UpstreamProtocol::H2c] {
        let origin = origin(upstream).await;
        let mut cfg = setup(origin.addr(), upstream);
        cfg.timeouts.client_body = Duration::from_secs(3600);
        let proxy = Proxy::start(&cfg).await;
        let mut raw = RawConn::connect(proxy.addr()).await;
        let parts = 3;
        let head = format!(
            "POST /up HTTP/1.1\r\nHost: a.test\r\nContent-Length: {}\r\n\r\n",
            SENT.len() * parts
        );
        raw.send(head.as_bytes()).await;
        for i in 0..parts {
            if i > 0 {
                tokio::time::sleep(BACKEND * 3 / 4).await;
            }
            raw.send(SENT).await;
        }
        let r = raw.read_response().await;
        assert_eq!(
            (r.status, r.header("x-sluice-error")),
            (200, None),
            "{upstream:?} backend"
        );
        assert_eq!(r.body_str(), (SENT.len() * parts).to_string());
        assert_unblamed(&proxy, origin.addr()).await;
    }
}

/// An HTTP/1.1 backend with a body timeout of its own, at its most
/// impatient: it closes any connection whose request body has begun to
/// arrive but is not all there. A bodiless request gets `200 ok`.
async fn impatient_backend() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut tcp, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut seen = Vec::new();
                let mut buf = [0u8; 4096];
                loop {
                    let Ok(n) = tcp.read(&mut buf).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    seen.extend_from_slice(&buf[..n]);
                    let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") else {
                        continue;
                    };
                    let head = String::from_utf8_lossy(&seen[..end]).to_ascii_lowercase();
                    if !head.contains("content-length") && !head.contains("transfer-encoding") {
                        let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                        let _ = tcp.write_all(ok).await;
                        seen.drain(..end + 4);
                    } else if seen.len() > end + 4 {
                        // Part of the body, and the rest is late: give up.
                        return;
                    }
                }
            });
        }
    });
    (addr, task)
}

/// A backend that gives up on a stalled client's body (its own body
/// timeout) is not blamed for it: the client gets a 502 saying so, and the
/// backend stays in rotation.
#[tokio::test]
async fn a_backend_giving_up_on_a_stalled_body_is_not_blamed() {
    let (backend, _task) = impatient_backend().await;
    let mut cfg = setup(backend, UpstreamProtocol::Http1);
    cfg.timeouts.client_body = Duration::from_secs(3600);
    cfg.timeouts.upstream_response = Duration::from_secs(3600);
    let proxy = Proxy::start(&cfg).await;
    for client in [Client::H1, Client::H2] {
        let mut set = JoinSet::new();
        for _ in 0..CLIENTS {
            set.spawn(partial_upload(client, proxy.addr(), "/up", End::Stall));
        }
        for (status, reason) in within("every upload", set.join_all()).await {
            assert_eq!(
                (status, reason.as_str()),
                (
                    502,
                    "backend closed the connection awaiting the request body"
                ),
                "{client:?} client"
            );
        }
    }
    assert_unblamed(&proxy, backend).await;
}

/// Clients that read their response slowly, or stop reading it and leave,
/// hold the backend's body back: nothing times that against the backend.
#[tokio::test]
async fn slow_readers_of_a_response_never_blame_the_backend() {
    for upstream in [UpstreamProtocol::Http1, UpstreamProtocol::H2c] {
        let origin = origin(upstream).await;
        let proxy = Proxy::start(&setup(origin.addr(), upstream)).await;
        let mut set = JoinSet::new();
        for i in 0..CLIENTS {
            let addr = proxy.addr();
            set.spawn(async move {
                let mut raw = RawConn::connect(addr).await;
                raw.send(b"GET /big HTTP/1.1\r\nHost: a.test\r\n\r\n").await;
                let head = raw.read_head().await;
                assert_eq!(head.status, 200, "{upstream:?} backend: {}", head.head);
                // Longer than the backend's timeout, with its body stuck.
                tokio::time::sleep(BACKEND + SHORT).await;
                if i == 0 {
                    let len = head.header("content-length").map(str::to_owned);
                    let body = if len.is_some() {
                        raw.read_exact(BIG).await
                    } else {
                        raw.read_to_eof().await
                    };
                    assert_eq!(body.len(), BIG);
                }
                // The others leave mid-body.
            });
        }
        within("every reader", set.join_all()).await;
        assert_unblamed(&proxy, origin.addr()).await;
    }
}

/// Clients of an upgraded connection that go quiet for longer than any
/// timeout, or leave, are the tunnel's business, not the backend's health.
#[tokio::test]
async fn quiet_tunnel_clients_never_blame_the_backend() {
    let origin = origin(UpstreamProtocol::Http1).await;
    let proxy = Proxy::start(&setup(origin.addr(), UpstreamProtocol::Http1)).await;
    let mut set = JoinSet::new();
    for i in 0..CLIENTS {
        let addr = proxy.addr();
        set.spawn(async move {
            let mut raw = RawConn::connect(addr).await;
            raw.send(
                b"GET /ws HTTP/1.1\r\nHost: a.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
            )
            .await;
            assert_eq!(raw.read_head().await.status, 101);
            tokio::time::sleep(BACKEND + SHORT).await;
            if i == 0 {
                raw.send(SENT).await;
                assert_eq!(raw.read_exact(SENT.len()).await, SENT);
            }
        });
    }
    within("every tunnel", set.join_all()).await;
    assert_unblamed(&proxy, origin.addr()).await;
}
