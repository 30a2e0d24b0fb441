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
