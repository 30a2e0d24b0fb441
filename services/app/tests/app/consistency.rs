//! Read-after-write through the proxy, two replicas and the cache.

use http::Method;
use serde_json::json;

use crate::support::{self, Proxy, eventually, get, get_json, instance};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn read_after_write_through_the_proxy_sees_the_new_post_on_every_replica() {
    let dir = tempfile::tempdir().unwrap();
    let cache = support::cache().await;
    let proxy = Proxy::start().await;
    let mut config = support::app_config(&support::sqlite_file(&dir));
    config.cache = Some(cache.url());
    config.admin = Some(proxy.admin_url());
    let a = support::app(config.clone()).await;
    let b = support::app(config).await;
    eventually("both replicas registered", || async {
        (proxy.backends().await.len() == 2).then_some(())
    })
    .await;

    let client = support::client(&proxy.url());
    let cookie = support::login(&client, "admin", "sluice").await;
    let post =
        support::create_post(&client, &cookie, json!({"title": "v1", "body": "first"})).await;
    let path = format!("/posts/{}", post["id"]);

    // Warm the cache and see both replicas answer.
    let mut seen = std::collections::HashSet::new();
    let mut hits = 0;
    for _ in 0..20 {
        let reply = get_json(&client, &path).await;
        assert_eq!(reply.status, 200);
        assert_eq!(support::json(&reply)["title"], "v1");
        seen.insert(instance(&reply));
        hits += usize::from(reply.headers.get("x-cache").is_some_and(|v| v == "hit"));
    }
    assert_eq!(seen.len(), 2, "round robin reaches both replicas: {seen:?}");
    assert!(hits > 0, "reads are served from the cache");
    let list = get_json(&client, "/posts").await;
    assert_eq!(support::json(&list)[0]["title"], "v1");

    // Update through the proxy, several times; every read after each answer
    // sees that version, whichever replica serves it.
    for version in 2..=6 {
        let title = format!("v{version}");
        let reply = support::request(
            &client,
            Method::PUT,
            &path,
            &[("cookie", cookie.clone())],
            json!({"title": title}).to_string().as_bytes(),
        )
        .await
        .unwrap();
        assert_eq!(reply.status, 200, "{:?}", reply.body);
        for _ in 0..6 {
            let read = get_json(&client, &path).await;
            assert_eq!(
                support::json(&read)["title"],
                title.as_str(),
                "stale read from {}",
                instance(&read)
            );
            let list = get_json(&client, "/posts").await;
            assert_eq!(
                support::json(&list)[0]["title"],
                title.as_str(),
                "stale list"
            );
        }
    }
    // HTML by default, from the same cache entry.
    let html = get(&client, &path).await.unwrap();
    assert_eq!(html.status, 200);
    assert!(String::from_utf8_lossy(&html.body).contains("<h1>v6</h1>"));

    a.stop().await;
    b.stop().await;
    proxy.shutdown().await;
    cache.stop().await;
}

#[tokio::test]
async fn reads_fall_back_to_the_database_when_the_cache_is_down() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = support::app_config(&support::sqlite_file(&dir));
    // A port nobody listens on.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    config.cache = Some(url::Url::parse(&format!("http://{dead}")).unwrap());
    let app = support::app(config).await;
    let client = support::client(&app.url());
    let cookie = support::login(&client, "admin", "sluice").await;
    let post = support::create_post(&client, &cookie, json!({"title": "t", "body": "b"})).await;
    let reply = get_json(&client, &format!("/posts/{}", post["id"])).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.headers.get("x-cache").unwrap(), "bypass");
    let ready = get(&client, "/ready").await.unwrap();
    assert_eq!(ready.status, 503, "cache unreachable → not ready");
    assert_eq!(support::json(&ready)["database"], true);
    assert!(
        support::stats(&client).await["cache_errors"]
            .as_u64()
            .unwrap()
            > 0
    );
    app.stop().await;
}
