//! The memory bound holds for the process, not only for `/stats` (issue 14,
//! finding 1): the real `sluice-cache` binary is filled far past
//! `--max-bytes` with unique entries, and its peak resident memory (`VmHWM`)
//! must stay under the resident memory it had before the fill plus
//! `--max-bytes` plus a fixed slack.
//!
//! Each put goes on a keep-alive connection, one request at a time, so every
//! request is parsed from a read buffer of its own: a stored value that is a
//! slice of that buffer keeps all of it alive, which is how 1-byte entries
//! once took RSS to 50 times the bound.

mod support;

use std::net::SocketAddr;

use support::{Binary, Conn};

/// What the process may hold beyond `--max-bytes` and its starting RSS:
/// connection buffers, the runtime's threads, moka's frequency sketch and
/// write queue, and the allocator's free lists.
const SLACK: u64 = 6 << 20;
/// Connections filling at once.
const CONNECTIONS: usize = 4;

/// Puts `count` unique entries per connection, built by `request(key)`, and
/// checks the process memory and `/stats` against `max_bytes`.
async fn fill_and_check(max_bytes: u64, per_connection: usize, request: fn(&str) -> Vec<u8>) {
    let max = max_bytes.to_string();
    let cache = Binary::spawn(&["--max-bytes", &max, "--max-entry-bytes", "64KiB"]);
    // Warm up every connection first, so their buffers and the runtime's
    // threads are part of the baseline, not of the cache.
    let mut conns = Vec::new();
    for _ in 0..CONNECTIONS {
        let mut conn = Conn::open(cache.addr).await;
        assert_eq!(conn.send(&ping(cache.addr)).await.status, 200);
        conns.push(conn);
    }
    let (baseline, _) = cache.memory();
    let mut tasks = tokio::task::JoinSet::new();
    for (c, mut conn) in conns.into_iter().enumerate() {
        tasks.spawn(async move {
            for i in 0..per_connection {
                let response = conn.send(&request(&format!("c{c}-{i}"))).await;
                assert_eq!(response.status, 200, "{response:?}");
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("fill task");
    }
    let stats = stats(cache.addr).await;
    let (rss, peak) = cache.memory();
    let puts = (CONNECTIONS * per_connection) as u64;
    let bound = baseline + max_bytes + SLACK;
    eprintln!("baseline {baseline}, peak {peak}, now {rss}, max-bytes {max_bytes}: {stats}");
    assert!(
        peak <= bound,
        "peak RSS {peak} (now {rss}) over baseline {baseline} + max-bytes {max_bytes} + slack {SLACK}; stats {stats}"
    );
    let field = |name: &str| stats[name].as_u64().expect(name);
    assert!(field("bytes") <= max_bytes, "{stats}");
    assert!(field("evictions") > 0, "filled past the bound: {stats}");
    // Every put is either still there or was evicted (nothing expires).
    assert_eq!(field("entries") + field("evictions"), puts, "{stats}");
    assert_eq!(field("expirations"), 0, "{stats}");
}

fn ping(addr: SocketAddr) -> Vec<u8> {
    format!("GET /ping HTTP/1.1\r\nHost: {addr}\r\n\r\n").into_bytes()
}

async fn stats(addr: SocketAddr) -> serde_json::Value {
    let response = support::request(addr, "GET", "/stats", &[], b"").await;
    assert_eq!(response.status, 200, "{response:?}");
    response.json()
}

/// A 1-byte entry with a content type.
fn tiny(key: &str) -> Vec<u8> {
    format!(
        "POST /?key={key} HTTP/1.1\r\nHost: cache\r\nCache-Control: max-age=600\r\n\
         Content-Type: text/plain\r\nContent-Length: 1\r\n\r\nx"
    )
    .into_bytes()
}

/// A 33 KiB entry sent chunked (its size is not known up front), in 4 KiB
/// chunks: just past a power of two, where a buffer grown by doubling wastes
/// the most.
fn large(key: &str) -> Vec<u8> {
    let mut raw = format!(
        "POST /?key={key} HTTP/1.1\r\nHost: cache\r\nCache-Control: max-age=600\r\n\
         Content-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    .into_bytes();
    let chunk = [b'y'; 4096];
    for _ in 0..8 {
        raw.extend_from_slice(b"1000\r\n");
        raw.extend_from_slice(&chunk);
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"400\r\n");
    raw.extend_from_slice(&chunk[..1024]);
    raw.extend_from_slice(b"\r\n0\r\n\r\n");
    raw
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tiny_entries_keep_rss_within_the_bound() {
    fill_and_check(4 << 20, 4_000, tiny).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_entries_keep_rss_within_the_bound() {
    fill_and_check(16 << 20, 384, large).await;
}
