//! Registration with the proxy on start, unregistration on shutdown, and a
//! replica restart under load with zero failed requests.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::json;

use crate::support::{self, Proxy, eventually};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn registers_on_start_and_unregisters_on_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let proxy = Proxy::start().await;
    let mut config = support::app_config(&support::sqlite_file(&dir));
    config.admin = Some(proxy.admin_url());
    let app = support::app(config).await;
    let me = app.addr.to_string();
    eventually("registered", || async {
        proxy.backends().await.contains(&me).then_some(())
    })
    .await;
    let client = support::client(&proxy.url());
    let reply = support::get(&client, "/ping").await.unwrap();
    assert_eq!(reply.status, 200);
    assert!(reply.headers.contains_key("x-instance-id"));

    // The SIGTERM path: `run` returns only after the proxy answered the
    // unregister, so the backend is gone as soon as it has returned.
    app.stop().await;
    assert!(
        !proxy.backends().await.contains(&me),
        "still registered after shutdown"
    );
    proxy.shutdown().await;
}

/// A proxy whose admin API wants a token: the replica sends it when
/// registering and when unregistering (without it, both are 401s and the
/// replica never joins).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn registers_and_unregisters_with_the_admin_token() {
    let dir = tempfile::tempdir().unwrap();
    let proxy = Proxy::start_with_token(Some("t0ken-for-the-app")).await;
    let mut config = support::app_config(&support::sqlite_file(&dir));
    config.admin = Some(proxy.admin_url());
    config.admin_token = sluice_app::AdminToken::new("t0ken-for-the-app");
    let app = support::app(config).await;
    let me = app.addr.to_string();
    eventually("registered with the token", || async {
        proxy.backends().await.contains(&me).then_some(())
    })
    .await;
    app.stop().await;
    assert!(
        !proxy.backends().await.contains(&me),
        "the unregister with the token did not remove it"
    );
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn registration_retries_until_the_proxy_answers() {
    let dir = tempfile::tempdir().unwrap();
    // An admin address where nothing listens yet.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut config = support::app_config(&support::sqlite_file(&dir));
    config.admin = Some(url::Url::parse(&format!("http://127.0.0.1:{port}")).unwrap());
    let app = support::app(config).await;
    // Start an admin API on that very port.
    let mut proxy_config = sluice::Config::simple(([127, 0, 0, 1], 0).into(), &[]);
    proxy_config.admin = Some(sluice::config::AdminConfig::new(
        ([127, 0, 0, 1], port).into(),
    ));
    let server = sluice::Server::start(
        sluice::bind(&proxy_config).expect("bind admin"),
        &proxy_config,
    )
    .unwrap();
    let proxy = Proxy {
        addr: server.addrs()[0].0,
        admin: server.admin_addr().unwrap(),
        server: Some(server),
        token: None,
    };
    let me = app.addr.to_string();
    eventually("registered after retries", || async {
        proxy.backends().await.contains(&me).then_some(())
    })
    .await;
    app.stop().await;
    assert!(!proxy.backends().await.contains(&me));
    proxy.shutdown().await;
}

/// wrk-style: 4 clients × 2,000 requests through the proxy while one of
/// two replicas shuts down (unregister, drain) and a new one takes its
/// place. Every request must succeed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn zero_failed_requests_while_a_replica_restarts_under_load() {
    const CLIENTS: usize = 4;
    const REQUESTS: usize = 2_000;
    let dir = tempfile::tempdir().unwrap();
    let cache = support::cache().await;
    let proxy = Proxy::start().await;
    let mut config = support::app_config(&support::sqlite_file(&dir));
    config.cache = Some(cache.url());
    config.admin = Some(proxy.admin_url());
    let a = support::app(config.clone()).await;
    let b = support::app(config.clone()).await;
    eventually("two backends", || async {
        (proxy.backends().await.len() == 2).then_some(())
    })
    .await;
    let client = support::client(&proxy.url());
    let cookie = support::login(&client, "admin", "sluice").await;
    let post = support::create_post(&client, &cookie, json!({"title": "load", "body": "b"})).await;
    let path = Arc::new(format!("/posts/{}", post["id"]));

    let done = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for i in 0..CLIENTS {
        let (url, done, path) = (proxy.url(), Arc::clone(&done), Arc::clone(&path));
        tasks.push(tokio::spawn(async move {
            let client = support::client(&url);
            let mut failures = Vec::new();
            let mut by_instance: HashMap<String, usize> = HashMap::new();
            for n in 0..REQUESTS {
                let target = if (n + i) % 2 == 0 {
                    path.as_str()
                } else {
                    "/posts"
                };
                match support::get(&client, target).await {
                    Some(r) if r.status == 200 => {
                        *by_instance.entry(support::instance(&r)).or_default() += 1;
                    }
                    Some(r) => failures.push(format!("{target}: {} {:?}", r.status, r.body)),
                    None => failures.push(format!("{target}: no answer")),
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
            (failures, by_instance)
        }));
    }

    let total = CLIENTS * REQUESTS;
    eventually("load under way", || async {
        (done.load(Ordering::Relaxed) >= total / 5).then_some(())
    })
    .await;
    let old = b.addr.to_string();
    b.stop().await;
    assert!(!proxy.backends().await.contains(&old));
    let c = support::app(config).await;
    let new = c.addr.to_string();
    eventually("the new replica registered", || async {
        proxy.backends().await.contains(&new).then_some(())
    })
    .await;

    let mut failures = Vec::new();
    let mut by_instance: HashMap<String, usize> = HashMap::new();
    for t in tasks {
        let (f, seen) = t.await.unwrap();
        failures.extend(f);
        for (k, v) in seen {
            *by_instance.entry(k).or_default() += v;
        }
    }
    assert!(
        failures.is_empty(),
        "{} failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(10)]
    );
    assert_eq!(by_instance.values().sum::<usize>(), total);
    assert!(by_instance.len() >= 2, "{by_instance:?}");
    a.stop().await;
    c.stop().await;
    proxy.shutdown().await;
    cache.stop().await;
}
