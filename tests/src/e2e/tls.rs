//! TLS listeners: ALPN picks h2 or http/1.1, the certificate verifies against
//! the test CA, and requests reach an HTTP/1.1 backend.

use hyper_util::rt::TokioIo;
use sluice::config::CertConfig;
use sluice_e2e::harness::certs::TestCerts;
use sluice_e2e::harness::client::{H1, H2, tls_connect};
use sluice_e2e::harness::origin::{Origin, reply};
use sluice_e2e::harness::proxy::{Proxy, config};

fn tls_config(origin: &Origin, certs: &TestCerts) -> sluice::Config {
    let mut cfg = config(&[origin.addr()]);
    cfg.listeners[0].tls = vec![CertConfig {
        cert: certs.cert.clone(),
        key: certs.key.clone(),
        server_names: vec!["localhost".to_owned()],
    }];
    cfg
}

#[tokio::test]
async fn h2_over_tls_to_h1_backend() {
    let certs = TestCerts::generate();
    let origin = Origin::http1()
        .route("/", reply::text(200, "over tls"))
        .start()
        .await;
    let proxy = Proxy::start(&tls_config(&origin, &certs)).await;

    let (tls, alpn) = tls_connect(
        proxy.addr(),
        certs.client_config(&[b"h2", b"http/1.1"]),
        "localhost",
    )
    .await
    .expect("TLS handshake verified by the test CA");
    assert_eq!(alpn.as_deref(), Some(&b"h2"[..]));

    let mut client = H2::handshake(TokioIo::new(tls)).await;
    let reply = client.get("/secure").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.version, http::Version::HTTP_2);
    assert_eq!(reply.text(), "over tls");

    let seen = origin.last_request();
    assert_eq!(seen.version, http::Version::HTTP_11);
    assert_eq!(seen.headers["x-forwarded-proto"], "https");
    assert_eq!(seen.headers["host"], "test.local");
}

#[tokio::test]
async fn http11_over_tls_when_alpn_offers_only_http11() {
    let certs = TestCerts::generate();
    let origin = Origin::http1()
        .route("/", reply::text(200, "tls h1"))
        .start()
        .await;
    let proxy = Proxy::start(&tls_config(&origin, &certs)).await;

    let (tls, alpn) = tls_connect(
        proxy.addr(),
        certs.client_config(&[b"http/1.1"]),
        "localhost",
    )
    .await
    .expect("TLS handshake");
    assert_eq!(alpn.as_deref(), Some(&b"http/1.1"[..]));
    let mut client = H1::handshake(TokioIo::new(tls)).await;
    let reply = client.get("/").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.text(), "tls h1");
}

#[tokio::test]
async fn a_client_that_does_not_trust_the_ca_fails_the_handshake() {
    let certs = TestCerts::generate();
    let other = TestCerts::generate();
    let origin = Origin::http1().start().await;
    let proxy = Proxy::start(&tls_config(&origin, &certs)).await;

    let result = tls_connect(proxy.addr(), other.client_config(&[b"h2"]), "localhost").await;
    assert!(
        result.is_err(),
        "a certificate from an unknown CA must not verify"
    );
    assert_eq!(origin.request_count(), 0);
}
