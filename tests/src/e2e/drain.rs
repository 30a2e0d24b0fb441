//! Graceful shutdown: once it starts, new connections are refused, while a
//! request already in flight runs to completion.

use http::Response;
use sluice_e2e::harness::client::H1;
use sluice_e2e::harness::origin::{Origin, reply};
use sluice_e2e::harness::proxy::{Proxy, config};
use sluice_e2e::harness::{eventually, within};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

#[tokio::test]
async fn shutdown_finishes_in_flight_requests_and_refuses_new_connections() {
    // The backend holds the request until the test opens the gate.
    let gate = Arc::new(Semaphore::new(0));
    let origin = Origin::http1()
        .route("/slow", {
            let gate = gate.clone();
            move |_| {
                let gate = gate.clone();
                async move {
                    let _permit = gate.acquire().await.expect("gate");
                    Response::new(reply::full("finished"))
                }
            }
        })
        .start()
        .await;
    let proxy = Proxy::start(&config(&[origin.addr()])).await;
    let addr = proxy.addr();

    let in_flight = tokio::spawn(async move { H1::connect(addr).await.get("/slow").await });
    eventually("the slow request to reach the backend", || {
        origin.request_count() == 1
    })
    .await;

    let shutdown = tokio::spawn(proxy.shutdown());
    within("new connections to be refused", async {
        while TcpStream::connect(addr).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert!(
        !shutdown.is_finished(),
        "shutdown must wait for the in-flight request"
    );

    gate.add_permits(1);
    let reply = within("the in-flight request", in_flight)
        .await
        .expect("request task");
    assert_eq!(reply.status, 200);
    assert_eq!(reply.text(), "finished");
    within("shutdown to complete", shutdown)
        .await
        .expect("shutdown task");
}

#[tokio::test]
async fn shutdown_sends_h2_goaway_finishes_open_streams_and_refuses_new_ones() {
    let gate = Arc::new(Semaphore::new(0));
    let origin = Origin::http1()
        .route("/slow", {
            let gate = gate.clone();
            move |_| {
                let gate = gate.clone();
                async move {
                    let _permit = gate.acquire().await.expect("gate");
                    Response::new(reply::full("finished"))
                }
            }
        })
        .start()
        .await;
    let proxy = Proxy::start(&config(&[origin.addr()])).await;

    // The h2 crate directly: it reports a received GOAWAY as an error on
    // the next stream it is asked to open.
    let tcp = within("connect", TcpStream::connect(proxy.addr()))
        .await
        .expect("connect");
    let (client, conn) = within("h2c handshake", h2::client::handshake(tcp))
        .await
        .expect("h2c handshake");
    let driver = tokio::spawn(conn);
    let mut client = within("h2 ready", client.ready()).await.expect("ready");
    let request = http::Request::get("http://test.local/slow")
        .body(())
        .expect("request");
    let (response, _) = client.send_request(request, true).expect("open a stream");
    eventually("the slow request to reach the backend", || {
        origin.request_count() == 1
    })
    .await;

    let shutdown = tokio::spawn(proxy.shutdown());
    let refused = within("GOAWAY to arrive", async {
        loop {
            match client.clone().ready().await {
                Err(e) => return e,
                Ok(_) => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        }
    })
    .await;
    assert!(refused.is_go_away(), "not a GOAWAY: {refused}");
    assert!(refused.is_remote(), "{refused}");
    assert_eq!(refused.reason(), Some(h2::Reason::NO_ERROR), "{refused}");
    let late = http::Request::get("http://test.local/late")
        .body(())
        .expect("request");
    let late = client.send_request(late, true);
    assert!(
        late.as_ref().is_err_and(h2::Error::is_go_away),
        "a new stream after GOAWAY: {:?}",
        late.map(|_| ())
    );

    // The stream opened before the GOAWAY completes.
    gate.add_permits(1);
    let response = within("the in-flight response", response)
        .await
        .expect("in-flight stream");
    assert_eq!(response.status(), 200);
    let mut body = response.into_body();
    let mut text = Vec::new();
    while let Some(chunk) = within("the body", body.data()).await {
        let chunk = chunk.expect("body chunk");
        let _ = body.flow_control().release_capacity(chunk.len());
        text.extend_from_slice(&chunk);
    }
    assert_eq!(text, b"finished");
    assert_eq!(
        origin.request_count(),
        1,
        "the late stream reached the backend"
    );
    within("shutdown to complete", shutdown)
        .await
        .expect("shutdown task");
    let _ = within("the h2 connection to end", driver).await;
}
