//! `Upgrade: websocket` becomes a byte tunnel after the backend's 101. The
//! client is raw TCP doing the handshake by hand; the backend echoes bytes.

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use sluice_e2e::harness::client::RawConn;
use sluice_e2e::harness::origin::{Origin, reply};
use sluice_e2e::harness::proxy::{Proxy, config};
use sluice_e2e::harness::within;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

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
    raw.send(
        b"GET /ws HTTP/1.1\r\nHost: chat.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .await;
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
