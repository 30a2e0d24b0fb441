//! The HTTP/2 stream limit: the proxy advertises
//! `limits.h2_max_concurrent_streams` in its SETTINGS, and a client that
//! honours it never has more streams than that in flight on one connection.

use http::Request;
use sluice_e2e::harness::origin::{Origin, reply};
use sluice_e2e::harness::proxy::{Proxy, config};
use sluice_e2e::harness::{eventually, within};
use std::future::{Future, poll_fn};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::Poll;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

#[tokio::test]
async fn h2_concurrent_streams_are_capped_at_the_configured_limit() {
    let gate = Arc::new(Semaphore::new(0));
    let now = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let origin = {
        let (gate, now, peak) = (gate.clone(), now.clone(), peak.clone());
        Origin::http1()
            .route("/", move |_req| {
                let (gate, now, peak) = (gate.clone(), now.clone(), peak.clone());
                async move {
                    let n = now.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(n, Ordering::SeqCst);
                    gate.acquire().await.expect("gate").forget();
                    now.fetch_sub(1, Ordering::SeqCst);
                    http::Response::new(reply::full("ok"))
                }
            })
            .start()
            .await
    };
    let mut cfg = config(&[origin.addr()]);
    cfg.limits.h2_max_concurrent_streams = 2;
    let proxy = Proxy::start(&cfg).await;

    let tcp = TcpStream::connect(proxy.addr()).await.expect("connect");
    let (client, mut conn) = within("h2 handshake", h2::client::handshake(tcp))
        .await
        .expect("h2 handshake");
    // Drive the connection until the server's SETTINGS have arrived.
    within(
        "SETTINGS_MAX_CONCURRENT_STREAMS = 2",
        poll_fn(|cx| {
            if let Poll::Ready(r) = std::pin::Pin::new(&mut conn).poll(cx) {
                panic!("connection ended early: {r:?}");
            }
            if conn.max_concurrent_send_streams() == 2 {
                Poll::Ready(())
            } else {
                cx.waker().wake_by_ref();
                Poll::Pending
            }
        }),
    )
    .await;
    tokio::spawn(conn);

    let mut requests = Vec::new();
    for _ in 0..4 {
        let client = client.clone();
        let addr = proxy.addr();
        requests.push(tokio::spawn(async move {
            let mut client = client.ready().await.expect("ready");
            let req = Request::get(format!("http://{addr}/"))
                .body(())
                .expect("request");
            let (resp, _) = client.send_request(req, true).expect("send");
            resp.await.expect("response").status()
        }));
    }
    eventually("two streams at the backend", || {
        now.load(Ordering::SeqCst) == 2
    })
    .await;
    gate.add_permits(4);
    for r in requests {
        assert_eq!(within("response", r).await.expect("task"), 200);
    }
    assert_eq!(
        peak.load(Ordering::SeqCst),
        2,
        "never more than the limit in flight"
    );
    assert_eq!(origin.request_count(), 4);
}
