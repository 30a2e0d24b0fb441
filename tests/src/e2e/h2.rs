//! HTTP/2 on either side: h2c (prior knowledge) client → HTTP/1.1 backend,
//! and HTTP/1.1 client → h2c backend.

use sluice::config::UpstreamProtocol;
use sluice_e2e::harness::client::{H1, H2};
use sluice_e2e::harness::origin::{Origin, reply};
use sluice_e2e::harness::proxy::{Proxy, config};

#[tokio::test]
async fn h2c_client_to_h1_backend() {
    let origin = Origin::http1().route("/", reply::echo_path).start().await;
    let proxy = Proxy::start(&config(&[origin.addr()])).await;

    let client = H2::connect_h2c(proxy.addr()).await;
    // Several streams at once on the one connection.
    let mut tasks = Vec::new();
    for i in 0..10 {
        let mut c = client.clone();
        tasks.push(tokio::spawn(async move { c.get(&format!("/s/{i}")).await }));
    }
    for (i, t) in tasks.into_iter().enumerate() {
        let reply = t.await.expect("task");
        assert_eq!(reply.status, 200);
        assert_eq!(reply.version, http::Version::HTTP_2);
        assert_eq!(reply.text(), format!("/s/{i}"));
    }

    let seen = origin.last_request();
    assert_eq!(seen.version, http::Version::HTTP_11);
    // :authority became Host, and the target is origin-form.
    assert_eq!(seen.headers["host"], "test.local");
    assert!(seen.uri.authority().is_none(), "{}", seen.uri);
    assert_eq!(seen.headers["via"], "2 sluice");
}

#[tokio::test]
async fn h1_client_to_h2c_backend_shares_one_connection() {
    let origin = Origin::h2c().route("/", reply::echo_path).start().await;
    let mut cfg = config(&[origin.addr()]);
    cfg.upstreams[0].protocol = UpstreamProtocol::H2c;
    let proxy = Proxy::start(&cfg).await;

    let mut client = H1::connect(proxy.addr()).await;
    let reply = client.get("/first").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.version, http::Version::HTTP_11);
    assert_eq!(reply.text(), "/first");
    let seen = origin.last_request();
    assert_eq!(seen.version, http::Version::HTTP_2);
    assert_eq!(seen.uri.authority().map(|a| a.as_str()), Some("test.local"));
    assert!(!seen.headers.contains_key("host"), "{:?}", seen.headers);

    // Many concurrent client connections multiplex over the one backend connection.
    let mut tasks = Vec::new();
    for i in 0..20 {
        let addr = proxy.addr();
        tasks.push(tokio::spawn(async move {
            let mut c = H1::connect(addr).await;
            c.get(&format!("/c/{i}")).await
        }));
    }
    for (i, t) in tasks.into_iter().enumerate() {
        let reply = t.await.expect("task");
        assert_eq!(reply.status, 200);
        assert_eq!(reply.text(), format!("/c/{i}"));
    }
    assert_eq!(origin.request_count(), 21);
    assert_eq!(
        origin.accepted(),
        1,
        "an HTTP/2 backend connection is shared, not one per request"
    );
}
