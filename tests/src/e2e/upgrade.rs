//! `Upgrade: websocket` becomes a byte tunnel after the backend's 101. The
//! client is raw TCP doing the handshake by hand; the backend echoes bytes.
//! A tunnel silent both ways for `timeouts.client_idle` is closed.

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use sluice_e2e::harness::client::RawConn;
use sluice_e2e::harness::origin::{Origin, reply};
use sluice_e2e::harness::proxy::{Proxy, config};
use sluice_e2e::harness::within;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The client's WebSocket handshake for `/ws` (RFC 6455's example key).
pub(crate) const HANDSHAKE: &[u8] =
    b"GET /ws HTTP/1.1\r\nHost: chat.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
    Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

pub(crate) async fn websocket_echo(mut req: Request<Incoming>) -> Response<reply::Body> {
    let upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let Ok(upgraded) = upgrade.await else { return };
        let mut io = TokioIo::new(upgraded);
        let mut buf = [0u8; 4096];
        loop {
            match io.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if io.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            }
        }
    });
    let mut resp = reply::status(StatusCode::SWITCHING_PROTOCOLS);
    let h = resp.headers_mut();
    h.insert("connection", "Upgrade".parse().expect("value"));
    h.insert("upgrade", "websocket".parse().expect("value"));
    // RFC 6455's example accept value; the proxy does not check it.
    h.insert(
        "sec-websocket-accept",
        "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=".parse().expect("value"),
    );
    resp
}

#[tokio::test]
async fn websocket_upgrade_becomes_an_echo_tunnel() {
    let origin = Origin::http1().route("/ws", websocket_echo).start().await;
    let proxy = Proxy::start(&config(&[origin.addr()])).await;

    let mut raw = RawConn::connect(proxy.addr()).await;
    raw.send(HANDSHAKE).await;
    let head = raw.read_head().await;
    assert_eq!(head.status, 101, "{}", head.head);
    assert!(
        head.header("upgrade")
            .is_some_and(|u| u.eq_ignore_ascii_case("websocket")),
        "{}",
        head.head
    );
    assert!(
        head.header("connection")
            .is_some_and(|c| c.eq_ignore_ascii_case("upgrade")),
        "{}",
        head.head
    );
    assert_eq!(
        head.header("sec-websocket-accept"),
        Some("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
    );

    let seen = origin.last_request();
    assert_eq!(seen.headers["upgrade"], "websocket");
    assert_eq!(
        seen.headers["sec-websocket-key"],
        "dGhlIHNhbXBsZSBub25jZQ=="
    );

    // Bytes now flow both ways through the tunnel, several round trips.
    let (mut stream, leftover) = raw.into_stream();
    assert!(leftover.is_empty(), "no bytes before the client spoke");
    for msg in [
        &b"hello tunnel"[..],
        b"\x00\x01\x02 binary \xff",
        &[b'x'; 10_000],
    ] {
        within("tunnel write", stream.write_all(msg))
            .await
            .expect("write");
        let mut back = vec![0u8; msg.len()];
        within("tunnel echo", stream.read_exact(&mut back))
            .await
            .expect("echo");
        assert_eq!(back, msg);
    }
}

#[tokio::test]
async fn upgrade_header_without_connection_upgrade_is_not_an_upgrade() {
    let origin = Origin::http1()
        .route("/", reply::text(200, "plain"))
        .start()
        .await;
    let proxy = Proxy::start(&config(&[origin.addr()])).await;

    let mut raw = RawConn::connect(proxy.addr()).await;
    raw.send(b"GET / HTTP/1.1\r\nHost: a.test\r\nUpgrade: websocket\r\n\r\n")
        .await;
    let resp = raw.read_response().await;
    assert_eq!(resp.status, 200, "{}", resp.head);
    assert_eq!(resp.body, b"plain");
    let seen = origin.last_request();
    assert!(!seen.headers.contains_key("upgrade"), "{:?}", seen.headers);
}

/// Sends the WebSocket handshake for `/ws` and reads the 101: the tunnel.
async fn open_tunnel(addr: std::net::SocketAddr) -> tokio::net::TcpStream {
    let mut raw = RawConn::connect(addr).await;
    raw.send(HANDSHAKE).await;
    let head = raw.read_head().await;
    assert_eq!(head.status, 101, "{}", head.head);
    raw.into_stream().0
}

/// A tunnel with no byte either way for `timeouts.client_idle` is closed
/// (issue 14, finding 7's class); one carrying bytes is not.
#[tokio::test]
async fn an_idle_tunnel_is_closed_and_a_busy_one_is_not() {
    let origin = Origin::http1().route("/ws", websocket_echo).start().await;
    let mut cfg = config(&[origin.addr()]);
    cfg.timeouts.client_idle = std::time::Duration::from_secs(1);
    let proxy = Proxy::start(&cfg).await;

    let mut busy = open_tunnel(proxy.addr()).await;
    let mut idle = open_tunnel(proxy.addr()).await;
    // Round trips on `busy` until `idle` is closed: by then `busy` has been
    // open longer than the idle timeout, never silent for as long.
    let idle_closed = tokio::spawn(async move {
        let mut rest = Vec::new();
        idle.read_to_end(&mut rest).await.map(|_| rest)
    });
    within("the idle tunnel to be closed", async {
        while !idle_closed.is_finished() {
            busy.write_all(b"ping").await.expect("write");
            let mut back = [0u8; 4];
            busy.read_exact(&mut back).await.expect("echo");
            assert_eq!(&back, b"ping");
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    })
    .await;
    let rest = idle_closed.await.expect("reader").expect("read to EOF");
    assert!(rest.is_empty(), "{rest:?}");
    within("the busy tunnel still echoes", async {
        busy.write_all(b"still here").await.expect("write");
        let mut back = [0u8; 10];
        busy.read_exact(&mut back).await.expect("echo");
        assert_eq!(&back, b"still here");
    })
    .await;
}
