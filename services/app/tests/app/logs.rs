//! Log shipping: batches reach the log service; with it down the buffer
//! stays bounded, drops are counted and requests still succeed.

use crate::support::{self, eventually, get};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_reach_the_log_service_in_batches() {
    let dir = tempfile::tempdir().unwrap();
    let log = support::log_service(&dir.path().join("log")).await;
    let mut config = support::app_config(&support::sqlite_file(&dir));
    config.log = Some(log.url());
    let app = support::app(config).await;
    let client = support::client(&app.url());
    for _ in 0..20 {
        assert_eq!(get(&client, "/posts").await.unwrap().status, 200);
    }
    eventually("records shipped", || async {
        let s = support::stats(&client).await;
        (s["logs"]["shipped"].as_u64().unwrap() >= 20).then_some(())
    })
    .await;
    app.stop().await;
    log.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_log_service_down_the_buffer_is_bounded_and_drops_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut config = support::app_config(&support::sqlite_file(&dir));
    config.log = Some(url::Url::parse(&format!("http://{dead}")).unwrap());
    config.log_buffer = 8;
    config.log_batch = 4;
    let app = support::app(config).await;
    let client = support::client(&app.url());
    for _ in 0..200 {
        assert_eq!(
            get(&client, "/posts").await.unwrap().status,
            200,
            "requests never fail for logs"
        );
    }
    let stats = support::stats(&client).await;
    let logs = &stats["logs"];
    assert!(logs["dropped"].as_u64().unwrap() > 0, "{logs}");
    assert!(logs["buffered"].as_u64().unwrap() <= 8, "{logs}");
    assert_eq!(logs["shipped"], 0, "{logs}");
    assert!(logs["failed_posts"].as_u64().unwrap() > 0, "{logs}");
    app.stop().await;
}
