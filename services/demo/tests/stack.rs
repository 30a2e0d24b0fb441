//! The demo stack starts, serves through the proxy with two registered
//! replicas, and stops in order.

use std::time::Duration;

mod support;

use sluice_demo::Stack;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn get(addr: std::net::SocketAddr, path: &str) -> String {
    get_with(addr, path, "").await
}

/// `extra` is more header lines, each ending in CRLF.
async fn get_with(addr: std::net::SocketAddr, path: &str, extra: &str) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let req = format!(
        "GET {path} HTTP/1.1\r\nhost: localhost\r\naccept: application/json\r\n{extra}connection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).await.expect("read");
    out
}

/// Whether `GET /backends` lists `replica` with a passing check (its
/// member object runs from its address to the next one's).
fn heartbeat_ok(backends: &str, replica: std::net::SocketAddr) -> bool {
    // The JSON is pretty-printed: compare without its whitespace.
    let backends: String = backends.split_whitespace().collect();
    let Some((_, rest)) = backends.split_once(&format!("\"address\":\"{replica}\"")) else {
        return false;
    };
    let member = rest.split("\"address\":").next().unwrap_or(rest);
    member.contains("\"ok\":true")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_demo_stack_serves_through_the_proxy_and_stops_cleanly() {
    support::show_warnings();
    let dir = tempfile::tempdir().unwrap();
    let options = support::options(dir.path().to_owned());
    let stack = Stack::start(&options).await.expect("stack starts");
    assert!(
        stack
            .banner()
            .contains(&format!("http://{}/posts", stack.proxy))
    );
    // The admin API is not open: a random token guards it, the banner
    // shows it, and the replicas register with it.
    assert!(stack.admin_token.len() >= 32, "{:?}", stack.admin_token);
    assert!(stack.banner().contains(&stack.admin_token));
    let open = get(stack.admin, "/backends").await;
    assert!(open.starts_with("HTTP/1.1 401"), "{open}");
    let auth = format!("authorization: Bearer {}\r\n", stack.admin_token);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let backends = get_with(stack.admin, "/backends", &auth).await;
        assert!(backends.starts_with("HTTP/1.1 200"), "{backends}");
        // Registered, and the proxy's heartbeat (`GET /ping`) has passed.
        if stack.replicas.iter().all(|r| heartbeat_ok(&backends, *r)) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "replicas never registered or passed a heartbeat: {backends}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let reply = get(stack.proxy, "/posts").await;
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(
        reply.to_ascii_lowercase().contains("x-instance-id: app-"),
        "{reply}"
    );
    // The blog starts with the welcome posts: the banner's `curl /posts/1`
    // answers 200 with the first one.
    assert!(stack.banner().contains("/posts/1"), "{}", stack.banner());
    let first = get_with(stack.proxy, "/posts/1", "accept: application/json\r\n").await;
    assert!(first.starts_with("HTTP/1.1 200"), "{first}");
    assert!(
        first.contains(sluice_app::seed::WELCOME_POSTS[0].0),
        "{first}"
    );
    let list = get(stack.proxy, "/posts").await;
    for (title, _) in sluice_app::seed::WELCOME_POSTS {
        assert!(list.contains(title), "{title} not in {list}");
    }
    tokio::time::timeout(Duration::from_secs(60), stack.stop())
        .await
        .expect("the stack stops");
}
