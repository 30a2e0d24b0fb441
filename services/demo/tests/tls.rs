//! `sluice-demo --tls`: h2 over TLS on every hop. A client that trusts
//! only the demo's CA logs in, writes and reads a post through the proxy
//! over h2; then each hop shows it was TLS h2 and nothing else: the
//! proxy's open client connections, and the requests each replica, the
//! cache and the log service counted by protocol and TLS.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method};
use sluice_app::client::{Client, Reply};
use sluice_demo::Stack;
use sluice_service_common::ClientTls;
use sluice_testkit::exposition::Exposition;

mod support;

const DEADLINE: Duration = Duration::from_secs(60);

async fn send(
    client: &Client,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Reply {
    let headers: Vec<(HeaderName, HeaderValue)> = headers
        .iter()
        .map(|(k, v)| {
            (
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            )
        })
        .collect();
    client
        .send(method, path, &headers, Bytes::from(body.to_owned()))
        .await
        .unwrap_or_else(|e| panic!("{path}: {e:?}"))
}

fn metrics(reply: &Reply) -> Exposition {
    assert_eq!(reply.status, 200);
    Exposition::parse(std::str::from_utf8(&reply.body).unwrap()).expect("exposition")
}

/// Requests a service counted over TLS h2, and over anything else.
async fn by_protocol(client: &Client) -> (f64, f64) {
    let e = metrics(&send(client, Method::GET, "/metrics", &[], "").await);
    let total = "http_requests_by_protocol_total";
    let all = e.sum(total, &[]).unwrap_or(0.0);
    let tls_h2 = e
        .sum(total, &[("protocol", "h2"), ("tls", "true")])
        .unwrap_or(0.0);
    (tls_h2, all - tls_h2)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_hop_of_the_tls_stack_is_h2_over_tls() {
    support::show_warnings();
    let dir = tempfile::tempdir().unwrap();
    let options = sluice_demo::Options {
        tls: true,
        ..support::options(dir.path().to_owned())
    };
    let stack = Stack::start(&options).await.expect("stack starts");
    let certs = stack.certs.clone().expect("--tls makes certificates");
    let banner = stack.banner();
    assert!(
        banner.contains(&format!("curl --cacert {}", certs.ca_file.display())),
        "{banner}"
    );
    assert!(
        banner.contains(&format!("https://localhost:{}/posts", stack.proxy.port())),
        "{banner}"
    );

    let trust = ClientTls::load(Some(&certs.ca_file)).unwrap();
    let https = |addr: std::net::SocketAddr| {
        let url = url::Url::parse(&format!("https://{addr}")).unwrap();
        Client::new(&url, Duration::from_secs(30), Some(&trust))
    };
    let proxy = https(stack.proxy);

    // The replicas register and pass the proxy's (TLS h2) heartbeat.
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let reply = send(
            &proxy,
            Method::GET,
            "/posts",
            &[("accept", "application/json")],
            "",
        )
        .await;
        if reply.status == 200 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no replica in rotation: {reply:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let login = send(
        &proxy,
        Method::POST,
        "/login",
        &[],
        r#"{"author":"admin","password":"sluice"}"#,
    )
    .await;
    assert_eq!(login.status, 200, "{login:?}");
    let cookie = login.headers[http::header::SET_COOKIE].to_str().unwrap();
    let cookie = cookie.split(';').next().unwrap().to_owned();
    let created = send(
        &proxy,
        Method::POST,
        "/posts",
        &[("cookie", &cookie), ("content-type", "application/json")],
        r#"{"title":"over TLS","body":"every hop"}"#,
    )
    .await;
    assert_eq!(created.status, 201, "{created:?}");
    let post: serde_json::Value = serde_json::from_slice(&created.body).unwrap();
    let path = format!("/posts/{}", post["id"]);
    for _ in 0..2 {
        let read = send(
            &proxy,
            Method::GET,
            &path,
            &[("accept", "application/json")],
            "",
        )
        .await;
        assert_eq!(read.status, 200, "{read:?}");
        let read: serde_json::Value = serde_json::from_slice(&read.body).unwrap();
        assert_eq!(read["title"], "over TLS");
    }

    // Client → proxy: our connection is open, TLS, h2.
    let admin = Client::new(
        &url::Url::parse(&format!("http://{}", stack.admin)).unwrap(),
        Duration::from_secs(30),
        None,
    );
    let bearer = format!("Bearer {}", stack.admin_token);
    let e = metrics(
        &send(
            &admin,
            Method::GET,
            "/metrics",
            &[("authorization", &bearer)],
            "",
        )
        .await,
    );
    let open = |proto, tls| {
        e.sum(
            "sluice_client_connections",
            &[("protocol", proto), ("tls", tls)],
        )
        .unwrap_or(0.0)
    };
    assert!(
        open("h2", "true") >= 1.0,
        "client connections: h2/tls {}",
        open("h2", "true")
    );
    assert_eq!(
        open("h1", "true") + open("h1", "false") + open("h2", "false"),
        0.0
    );

    // Proxy → replicas: heartbeats and requests, all TLS h2 (the scrape
    // itself is one more).
    for replica in &stack.replicas {
        let (tls_h2, other) = by_protocol(&https(*replica)).await;
        assert!(tls_h2 >= 2.0, "replica {replica}: {tls_h2} TLS h2 requests");
        assert_eq!(other, 0.0, "replica {replica}: requests not TLS h2");
    }
    // Replicas → cache (the reads) and → log (shipped batches).
    let (tls_h2, other) = by_protocol(&https(stack.cache)).await;
    assert!(tls_h2 >= 3.0, "cache: {tls_h2} TLS h2 requests");
    assert_eq!(other, 0.0, "cache: requests not TLS h2");
    let log = https(stack.log);
    let deadline = tokio::time::Instant::now() + DEADLINE;
    let mut scrapes = 0.0;
    loop {
        scrapes += 1.0;
        let (tls_h2, other) = by_protocol(&log).await;
        assert_eq!(other, 0.0, "log: requests not TLS h2");
        // Beyond this test's own scrapes: a batch from a replica.
        if tls_h2 > scrapes {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no log batch over TLS h2"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::timeout(DEADLINE, stack.stop())
        .await
        .expect("the stack stops");
}
