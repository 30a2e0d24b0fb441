//! The app's clients over HTTPS: a cache whose certificate is the pinned
//! one is used over h2 (the cache counts TLS h2 requests); one whose
//! certificate is not is refused at the handshake: `/ready` says the cache
//! (and the log service) is unreachable, reads fall back to the database,
//! nothing panics.

use std::time::Duration;

use http::Method;
use serde_json::json;
use sluice_app::client::{Client, ClientError};
use sluice_service_common::{ClientTls, ServerTls};
use sluice_testkit::certs::{Cert, Pki};
use sluice_testkit::exposition::Exposition;

use crate::support::{self, Service, eventually, get, get_json};

/// A log service serving HTTPS with `cert`, and its `https://` URL.
async fn tls_log(cert: &Cert, dir: &std::path::Path) -> (Service<()>, url::Url) {
    let config = sluice_log::Config {
        tls: Some(ServerTls::load(&cert.cert, &cert.key).expect("log certificate")),
        ..sluice_log::Config::new(dir)
    }
    .validate()
    .expect("log config");
    let log = support::spawn_service(|listener, stopped| async move {
        sluice_log::run(listener, config, async {
            let _ = stopped.await;
        })
        .await
        .expect("log service runs");
    })
    .await;
    let url = url::Url::parse(&format!("https://{}", log.addr)).expect("url");
    (log, url)
}

/// A cache serving HTTPS with `cert`, and its `https://` URL.
async fn tls_cache(cert: &Cert) -> (Service<()>, url::Url) {
    let config = sluice_cache::Config {
        tls: Some(ServerTls::load(&cert.cert, &cert.key).expect("cache certificate")),
        ..sluice_cache::Config::default()
    };
    let cache = support::spawn_service(|listener, stopped| async move {
        sluice_cache::run(listener, config, async {
            let _ = stopped.await;
        })
        .await
        .expect("cache runs");
    })
    .await;
    let url = url::Url::parse(&format!("https://{}", cache.addr)).expect("url");
    (cache, url)
}

/// The cache's TLS h2 requests, from its `/metrics`.
async fn tls_h2_requests(url: &url::Url, trust: &ClientTls) -> f64 {
    let client = Client::new(url, Duration::from_secs(10), Some(trust));
    let reply = get(&client, "/metrics").await.expect("cache metrics");
    let text = String::from_utf8(reply.body.to_vec()).expect("utf-8");
    let e = Exposition::parse(&text).expect("exposition");
    e.sum(
        "http_requests_by_protocol_total",
        &[("protocol", "h2"), ("tls", "true")],
    )
    .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pinned_cache_is_used_over_tls_h2() {
    let pki = Pki::new();
    let pinned = pki.self_signed("cache", &["localhost"]);
    let (_cache, url) = tls_cache(&pinned).await;
    let trust = ClientTls::load(Some(&pinned.cert)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut config = support::app_config(&support::sqlite_file(&dir));
    config.cache = Some(url.clone());
    config.service_tls = Some(trust.clone());
    let app = support::app(config).await;
    let client = support::client(&app.url());

    let ready = get(&client, "/ready").await.expect("ready answers");
    assert_eq!(ready.status, 200, "{:?}", ready.body);
    assert_eq!(support::json(&ready)["cache"], true);
    let cookie = support::login(&client, "admin", "sluice").await;
    let post = support::create_post(&client, &cookie, json!({"title": "t", "body": "b"})).await;
    let path = format!("/posts/{}", post["id"]);
    eventually("a read served from the TLS cache", || async {
        let reply = get_json(&client, &path).await;
        assert_eq!(reply.status, 200);
        reply
            .headers
            .get("x-cache")
            .is_some_and(|v| v == "hit")
            .then_some(())
    })
    .await;
    // The app's calls (and this test's scrape) came over TLS h2.
    assert!(tls_h2_requests(&url, &trust).await >= 3.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cache_whose_certificate_is_not_the_pinned_one_is_refused() {
    let pki = Pki::new();
    let pinned = pki.self_signed("pinned", &["localhost"]);
    let impostor = pki.self_signed("impostor", &["localhost"]);
    let (_cache, url) = tls_cache(&impostor).await;
    let logs = tempfile::tempdir().unwrap();
    let (_log, log_url) = tls_log(&impostor, logs.path()).await;
    let trust = ClientTls::load(Some(&pinned.cert)).unwrap();

    // The client's error says why.
    let client = Client::new(&url, Duration::from_secs(10), Some(&trust));
    let refused = client
        .send(Method::GET, "/ping", &[], bytes::Bytes::new())
        .await
        .unwrap_err();
    assert!(matches!(refused, ClientError::Tls { .. }), "{refused:?}");
    let cause = std::error::Error::source(&refused)
        .expect("a cause")
        .to_string();
    assert!(cause.contains("invalid peer certificate"), "{cause}");

    let dir = tempfile::tempdir().unwrap();
    let mut config = support::app_config(&support::sqlite_file(&dir));
    config.cache = Some(url);
    config.log = Some(log_url);
    config.service_tls = Some(trust);
    let app = support::app(config).await;
    let client = support::client(&app.url());
    let ready = get(&client, "/ready").await.expect("ready answers");
    assert_eq!(ready.status, 503);
    assert_eq!(support::json(&ready)["cache"], false);
    // The log service too (its outage is buffered, not a readiness matter).
    eventually("the log service reported unreachable", || async {
        let ready = get(&client, "/ready").await?;
        let logs = &support::json(&ready)["logs"];
        (logs["reachable"] == false && logs["failed_posts"].as_u64() > Some(0)).then_some(())
    })
    .await;
    // Reads still work, from the database, and the failures are counted.
    let cookie = support::login(&client, "admin", "sluice").await;
    let post = support::create_post(&client, &cookie, json!({"title": "t", "body": "b"})).await;
    let reply = get_json(&client, &format!("/posts/{}", post["id"])).await;
    assert_eq!(reply.status, 200);
    assert_eq!(support::json(&reply)["title"], "t");
    assert!(support::stats(&client).await["cache_errors"].as_u64() > Some(0));
}
