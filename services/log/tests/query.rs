//! `GET /logs` filters, over entries both on disk and still in the buffer.

mod common;

use std::time::Duration;

use common::*;
use sluice_log::Config;
use time::OffsetDateTime;

fn messages(body: &str) -> Vec<String> {
    let v: Vec<serde_json::Value> = serde_json::from_str(body).unwrap();
    v.iter()
        .map(|e| e["message"].as_str().unwrap().to_owned())
        .collect()
}

fn enc(t: OffsetDateTime) -> String {
    rfc3339(t).replace('+', "%2B").replace(':', "%3A")
}

#[tokio::test]
async fn filters_since_until_level_source_limit() {
    let dir = TempDir::new("query");
    let mut config = Config::new(dir.path());
    config.reorder_window = Duration::from_secs(3600);
    let server = Server::start(config).await;

    // Old entries are late: written to the file right away. Recent ones stay
    // in the reorder buffer. /logs must merge both.
    let old = OffsetDateTime::from_unix_timestamp(1_600_000_000).unwrap();
    let recent =
        OffsetDateTime::now_utc().replace_nanosecond(0).unwrap() - Duration::from_secs(600);
    let mut batch = Vec::new();
    for i in (0..10u64).rev() {
        let base = if i < 5 { old } else { recent };
        let level = if i % 2 == 0 { "info" } else { "warn" };
        let source = ["a", "b", "c"][(i % 3) as usize];
        batch.push(entry_json(
            base + Duration::from_secs(i),
            level,
            source,
            &format!("m{i}"),
        ));
    }
    let (status, _) = post(server.addr, &serde_json::Value::Array(batch).to_string()).await;
    assert_eq!(status, 200);

    let all: Vec<String> = (0..10).map(|i| format!("m{i}")).collect();
    let (status, body) = get(server.addr, "/logs").await;
    assert_eq!(status, 200);
    assert_eq!(messages(&body), all);

    let path = format!(
        "/logs?since={}&until={}",
        enc(old + Duration::from_secs(3)),
        enc(recent + Duration::from_secs(7))
    );
    assert_eq!(
        messages(&get(server.addr, &path).await.1),
        ["m3", "m4", "m5", "m6"]
    );
    assert_eq!(
        messages(&get(server.addr, "/logs?level=WARN").await.1),
        ["m1", "m3", "m5", "m7", "m9"]
    );
    assert_eq!(
        messages(&get(server.addr, "/logs?source=b").await.1),
        ["m1", "m4", "m7"]
    );
    assert_eq!(
        messages(&get(server.addr, "/logs?source=b&level=info").await.1),
        ["m4"]
    );
    assert_eq!(
        messages(&get(server.addr, "/logs?limit=2").await.1),
        ["m0", "m1"]
    );
    assert_eq!(get(server.addr, "/logs?since=yesterday").await.0, 400);
    assert_eq!(get(server.addr, "/logs?limit=0").await.0, 400);

    // After a restart everything is on disk; the answers are the same.
    server.stop().await;
    let mut config = Config::new(dir.path());
    config.reorder_window = Duration::from_secs(3600);
    let server = Server::start(config).await;
    assert_eq!(messages(&get(server.addr, "/logs").await.1), all);
    assert_eq!(
        messages(&get(server.addr, &path).await.1),
        ["m3", "m4", "m5", "m6"]
    );
    server.stop().await;
}
