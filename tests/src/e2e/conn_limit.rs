//! A listener's connection limits: `max_connections` and
//! `max_connections_per_client`, with `on_limit = "refuse"` (closed at
//! once) or `"backlog"` (left in the accept queue until a connection
//! closes). Counts accepted and refused connections, not timings.

use sluice::config::{ConnLimit, OnLimit};
use sluice_e2e::harness::client::RawConn;
use sluice_e2e::harness::origin::{Origin, reply};
use sluice_e2e::harness::proxy::{Proxy, config};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n";

async fn proxy_with(limit: ConnLimit) -> (Proxy, Origin) {
    let origin = Origin::http1()
        .route("/", reply::text(200, "ok"))
        .start()
        .await;
    let mut c = config(&[origin.addr()]);
    c.listeners[0].conn_limit = limit;
    (Proxy::start(&c).await, origin)
}

/// A connection from `from` (a loopback address) that sends a request:
/// `Some` with the connection kept open if it was answered, `None` if the
/// proxy closed it without an answer.
async fn try_request(proxy: SocketAddr, from: [u8; 4]) -> Option<TcpStream> {
    try_send(proxy, from, REQUEST, b"HTTP/1.1 200").await
}

/// Like [`try_request`] for any `request` whose answer starts with `expect`.
async fn try_send(
    proxy: SocketAddr,
    from: [u8; 4],
    request: &[u8],
    expect: &[u8],
) -> Option<TcpStream> {
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .bind(SocketAddr::from((from, 0)))
        .expect("bind a loopback source");
    let mut s = socket.connect(proxy).await.expect("connect");
    // A refused connection may already be closed (write fails with a reset).
    if s.write_all(request).await.is_err() {
        return None;
    }
    let mut buf = [0u8; 512];
    let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
        .await
        .expect("an answer or a close");
    match n {
        Ok(n) if n > 0 => {
            assert!(buf.starts_with(expect), "{:?}", &buf[..n]);
            Some(s)
        }
        _ => None,
    }
}

/// A connection that is answered, retrying while the harness's readiness
/// probe (a connection of its own) may still hold a slot.
async fn served(proxy: SocketAddr, from: [u8; 4]) -> TcpStream {
    for _ in 0..200 {
        if let Some(s) = try_request(proxy, from).await {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no connection was served");
}

#[tokio::test]
async fn beyond_max_connections_new_connections_are_closed_at_once() {
    let (proxy, origin) = proxy_with(ConnLimit {
        max_connections: Some(2),
        ..ConnLimit::default()
    })
    .await;
    let first = served(proxy.addr(), [127, 0, 0, 1]).await;
    let _second = served(proxy.addr(), [127, 0, 0, 1]).await;
    let mut refused = 0;
    for from in [[127, 0, 0, 1], [127, 0, 0, 2], [127, 0, 0, 3]] {
        refused += usize::from(try_request(proxy.addr(), from).await.is_none());
    }
    assert_eq!(refused, 3, "every connection past 2 is refused");
    assert_eq!(origin.request_count(), 2);
    // A closed connection frees its slot.
    drop(first);
    let _third = served(proxy.addr(), [127, 0, 0, 2]).await;
    assert_eq!(origin.request_count(), 3);
}

#[tokio::test]
async fn one_client_is_limited_and_others_are_not() {
    let (proxy, _origin) = proxy_with(ConnLimit {
        max_connections_per_client: Some(2),
        ..ConnLimit::default()
    })
    .await;
    let mut held = vec![
        served(proxy.addr(), [127, 0, 0, 1]).await,
        served(proxy.addr(), [127, 0, 0, 1]).await,
    ];
    let mut refused = 0;
    for _ in 0..3 {
        refused += usize::from(try_request(proxy.addr(), [127, 0, 0, 1]).await.is_none());
    }
    assert_eq!(refused, 3);
    // Another address has its own two.
    for _ in 0..2 {
        held.push(
            try_request(proxy.addr(), [127, 0, 0, 2])
                .await
                .expect("another client is served"),
        );
    }
    assert!(try_request(proxy.addr(), [127, 0, 0, 2]).await.is_none());
}

#[tokio::test]
async fn in_backlog_mode_connections_wait_and_are_all_served() {
    let (proxy, origin) = proxy_with(ConnLimit {
        max_connections: Some(1),
        max_connections_per_client: None,
        on_limit: OnLimit::Backlog,
    })
    .await;
    let first = served(proxy.addr(), [127, 0, 0, 1]).await;
    // Two more connect (the kernel queues them) and send their requests.
    let mut waiting = Vec::new();
    for _ in 0..2 {
        let mut raw = RawConn::connect(proxy.addr()).await;
        raw.send(b"GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
            .await;
        waiting.push(raw);
    }
    // Not accepted while the first is open: nothing reaches the backend.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(origin.request_count(), 1);
    drop(first);
    // Each closes after its answer, letting the next one in: none refused.
    for mut raw in waiting {
        assert_eq!(raw.read_response().await.status, 200);
    }
    assert_eq!(origin.request_count(), 3);
}

/// An upgraded connection (a WebSocket tunnel) keeps its place under the
/// limits while it is open: the connection task ends at the 101, the socket
/// does not, and before the fix the slot went with the task.
#[tokio::test]
async fn an_open_websocket_keeps_its_connection_slot() {
    let origin = Origin::http1()
        .route("/ws", super::upgrade::websocket_echo)
        .route("/", reply::text(200, "ok"))
        .start()
        .await;
    let mut c = config(&[origin.addr()]);
    c.listeners[0].conn_limit = ConnLimit {
        max_connections_per_client: Some(1),
        ..ConnLimit::default()
    };
    let proxy = Proxy::start(&c).await;
    let from = [127, 0, 0, 3];
    let mut tunnel = None;
    for _ in 0..200 {
        tunnel = try_send(
            proxy.addr(),
            from,
            super::upgrade::HANDSHAKE,
            b"HTTP/1.1 101",
        )
        .await;
        if tunnel.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let tunnel = tunnel.expect("the WebSocket handshake is answered");
    for _ in 0..3 {
        assert!(
            try_request(proxy.addr(), from).await.is_none(),
            "the open tunnel holds the client's only slot"
        );
    }
    // Closing the tunnel gives the slot back.
    drop(tunnel);
    let _next = served(proxy.addr(), from).await;
}
