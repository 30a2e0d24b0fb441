//! The admin API's trust boundary (issue 14, finding 6): a web page on this
//! host must not be able to reconfigure the proxy (cross-site `Origin`,
//! `text/plain` bodies, GETs that change state), a rebound DNS name must
//! not be answered, changes come from allowed sources only, no backend may
//! be an address nobody listens on or the proxy itself, and the listener
//! closes heads and bodies that never finish.
//!
//! Every refused request is followed by a look at `GET /backends`: a
//! refusal that still changed the group would be no refusal.

use super::admin::with_admin;
use http::Method;
use serde_json::json;
use sluice::config::DnsBackend;
use sluice_e2e::harness::client::RawConn;
use sluice_e2e::harness::control::{Admin, ScriptedResolver, start_with_resolver};
use sluice_e2e::harness::origin::{Origin, reply};
use sluice_e2e::harness::proxy::Proxy;
use sluice_e2e::harness::{STEP, within};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn origin() -> Origin {
    Origin::http1()
        .route("/", reply::text(200, "ok"))
        .start()
        .await
}

async fn members(admin: &Admin) -> BTreeSet<String> {
    admin.backends().await.into_keys().collect()
}

/// Request headers, the status expected, and what the error must say.
type Case<'a> = (Vec<(&'a str, &'a str)>, u16, &'a str);

fn register_body(addr: impl std::fmt::Display) -> String {
    json!({"address": addr.to_string()}).to_string()
}

#[tokio::test]
async fn a_cross_site_page_cannot_change_the_backends() {
    let (a, b) = (origin().await, origin().await);
    let proxy = Proxy::start(&with_admin(&[a.addr()])).await;
    let admin = Admin::of(proxy.server());
    let before = members(&admin).await;
    let body = register_body(b.addr());

    // What a form or fetch() on https://evil.example can send without a
    // CORS preflight: text/plain (or no type at all) with its Origin.
    let evil = ("origin", "https://evil.example");
    let cases: Vec<Case<'_>> = vec![
        (
            vec![evil, ("content-type", "text/plain")],
            403,
            "evil.example",
        ),
        (
            vec![evil, ("content-type", "application/json")],
            403,
            "Origin",
        ),
        (
            vec![("origin", "null"), ("content-type", "application/json")],
            403,
            "Origin",
        ),
        // Without an Origin, a body that is not declared JSON is refused too.
        (
            vec![("content-type", "text/plain")],
            415,
            "application/json",
        ),
        (
            vec![("content-type", "application/x-www-form-urlencoded")],
            415,
            "application/json",
        ),
        (vec![], 415, "application/json"),
        // A no-cors request carries no Origin, but the browser says it is cross-site.
        (
            vec![
                ("sec-fetch-site", "cross-site"),
                ("content-type", "application/json"),
            ],
            403,
            "cross-site",
        ),
    ];
    for (headers, status, says) in cases {
        let r = admin
            .send(Method::POST, "/backends", Some(&body), None, &headers)
            .await;
        assert_eq!(r.status, status, "{headers:?}: {}", r.text);
        assert!(r.error().contains(says), "{headers:?}: {}", r.text);
    }
    // Reading state is refused to other origins too.
    let r = admin
        .send(Method::GET, "/backends", None, None, &[evil])
        .await;
    assert_eq!(r.status, 403, "{}", r.text);
    // An <img src=".../register?port=N"> is a no-cors GET with no Origin;
    // the browser marks it cross-site (same-site alike).
    for site in ["cross-site", "same-site"] {
        let r = admin
            .send(
                Method::GET,
                &format!("/register?port={}", b.addr().port()),
                None,
                None,
                &[("sec-fetch-site", site)],
            )
            .await;
        assert_eq!(r.status, 403, "{}", r.text);
        assert!(r.error().contains(site), "{}", r.text);
    }
    assert_eq!(
        members(&admin).await,
        before,
        "a refused request changed the group"
    );

    // The same request as JSON, with no Origin (curl, the registrar) works.
    let r = admin
        .send(
            Method::POST,
            "/backends",
            Some(&body),
            None,
            &[("content-type", "application/json; charset=utf-8")],
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
}

/// The classic clients register with a plain `GET /register?port=N` (no
/// Origin, no Sec-Fetch-Site): still answered, from an allowed source.
#[tokio::test]
async fn the_classic_get_register_still_works() {
    let (a, b) = (origin().await, origin().await);
    let proxy = Proxy::start(&with_admin(&[a.addr()])).await;
    let admin = Admin::of(proxy.server());
    let port = b.addr().port();
    let me = format!("127.0.0.1:{port}");
    let r = admin
        .send(
            Method::GET,
            &format!("/register?port={port}"),
            None,
            None,
            &[],
        )
        .await;
    assert!(r.status == 200 || r.status == 201, "{}", r.text);
    assert!(members(&admin).await.contains(&me));
    let r = admin
        .send(
            Method::GET,
            &format!("/unregister?port={port}"),
            None,
            None,
            &[],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(!members(&admin).await.contains(&me));
}

#[tokio::test]
async fn an_allowed_origin_may_call() {
    let (a, b) = (origin().await, origin().await);
    let mut c = with_admin(&[a.addr()]);
    if let Some(admin) = &mut c.admin {
        admin.allowed_origins = vec!["https://ops.example.com".into()];
    }
    let proxy = Proxy::start(&c).await;
    let admin = Admin::of(proxy.server());
    let json = ("content-type", "application/json");
    let r = admin
        .send(
            Method::POST,
            "/backends",
            Some(&register_body(b.addr())),
            None,
            &[("origin", "https://OPS.example.com"), json],
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let r = admin
        .send(
            Method::GET,
            "/backends",
            None,
            None,
            &[("origin", "https://ops.example.com:8443")],
        )
        .await;
    assert_eq!(r.status, 403, "another port is another origin: {}", r.text);
}

#[tokio::test]
async fn a_rebound_host_name_is_not_answered() {
    let (a, b) = (origin().await, origin().await);
    let mut c = with_admin(&[a.addr()]);
    if let Some(admin) = &mut c.admin {
        admin.allowed_hosts = vec!["proxy.internal".into()];
    }
    let proxy = Proxy::start(&c).await;
    let admin = Admin::of(proxy.server());
    let before = members(&admin).await;
    let port = admin.addr.port();
    let evil = format!("evil.example:{port}");
    let json = ("content-type", "application/json");

    // A page on evil.example whose name now resolves to 127.0.0.1 is
    // same-origin with itself: only its Host gives it away.
    for (method, path, body) in [
        (Method::GET, "/backends", None),
        (Method::GET, "/healthz", None),
        (Method::GET, "/readyz", None),
        (Method::POST, "/backends", Some(register_body(b.addr()))),
        (Method::POST, "/reload", None),
    ] {
        let r = admin
            .send(
                method.clone(),
                path,
                body.as_deref(),
                None,
                &[("host", &evil), json],
            )
            .await;
        assert_eq!(r.status, 421, "{method} {path}: {}", r.text);
        assert!(r.error().contains("evil.example"), "{}", r.text);
    }
    assert_eq!(members(&admin).await, before);

    // Its own address, localhost, loopback IPs and the allowed names work.
    for host in [
        admin.addr.to_string(),
        format!("localhost:{port}"),
        "localhost".to_owned(),
        format!("[::1]:{port}"),
        format!("Proxy.Internal:{port}"),
    ] {
        let r = admin
            .send(Method::GET, "/backends", None, None, &[("host", &host)])
            .await;
        assert_eq!(r.status, 200, "Host {host}: {}", r.text);
    }
    // No Host at all (HTTP/1.0 style) cannot be checked: 400.
    let mut raw = RawConn::connect(admin.addr).await;
    raw.send(b"GET /backends HTTP/1.0\r\n\r\n").await;
    let r = raw.read_response().await;
    assert_eq!(r.status, 400, "{}", r.body_str());
    assert!(r.body_str().contains("Host"), "{}", r.body_str());
}

#[tokio::test]
async fn no_backend_is_an_address_nobody_listens_on_or_the_proxy_itself() {
    let a = origin().await;
    // A wildcard data listener: every local address on its port is us.
    let mut c = with_admin(&[a.addr()]);
    c.listeners[0].address = ([0, 0, 0, 0], 0).into();
    let proxy = Proxy::start(&c).await;
    let admin = Admin::of(proxy.server());
    let before = members(&admin).await;
    let data_port = proxy.addr().port();
    let admin_addr = admin.addr;

    let cases: Vec<(String, &str)> = vec![
        ("127.0.0.1:0".into(), "port 0"),
        (format!("0.0.0.0:{}", a.addr().port()), "unspecified"),
        (format!("[::]:{}", a.addr().port()), "unspecified"),
        (format!("224.0.0.1:{}", a.addr().port()), "multicast"),
        (format!("[ff02::1]:{}", a.addr().port()), "multicast"),
        (format!("255.255.255.255:{}", a.addr().port()), "broadcast"),
        (format!("127.0.0.1:{data_port}"), "own listener"),
        (format!("127.0.0.2:{data_port}"), "own listener"),
        (admin_addr.to_string(), "own listener"),
    ];
    for (addr, says) in &cases {
        let r = admin
            .call(Method::POST, "/backends", Some(&register_body(addr)))
            .await;
        assert_eq!(r.status, 400, "{addr}: {}", r.text);
        assert!(r.error().contains(says), "{addr}: {}", r.text);
    }
    // `/register` names the caller's IP and a port: ours is refused too.
    for port in [data_port, admin_addr.port()] {
        let r = admin
            .call(Method::POST, &format!("/register?port={port}"), None)
            .await;
        assert_eq!(r.status, 400, "port {port}: {}", r.text);
        assert!(r.error().contains("own listener"), "{}", r.text);
    }
    assert_eq!(members(&admin).await, before, "a refused address was added");
}

#[tokio::test]
async fn dns_answers_that_are_no_backend_are_left_out() {
    let a = origin().await;
    let resolver = ScriptedResolver::new();
    let mut c = with_admin(&[]);
    c.upstreams[0].dns = vec![DnsBackend {
        host: "svc.test".into(),
        port: 80,
        weight: 1,
    }];
    c.upstreams[0].resolve_interval = Duration::from_millis(20);
    let server = start_with_resolver(&c, resolver.clone()).await;
    let admin = Admin::of(&server);
    let own = server.addrs()[0].0;
    let bad: [SocketAddr; 4] = [
        ([0, 0, 0, 0], a.addr().port()).into(),
        ([239, 1, 1, 1], a.addr().port()).into(),
        own,
        server.admin_addr().expect("admin"),
    ];
    let mut answer = bad.to_vec();
    answer.push(a.addr());
    resolver.set("svc.test", &answer);
    admin.wait_state(a.addr(), "healthy").await;
    resolver.wait_lookups(2).await;
    let all = members(&admin).await;
    assert_eq!(all, BTreeSet::from([a.addr().to_string()]), "{all:?}");
}

/// A client socket bound to `local` before it connects to `to`.
async fn connect_from(local: [u8; 4], to: SocketAddr) -> Option<tokio::net::TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    // 127.0.0.2 is loopback on Linux; elsewhere the test has nothing to say.
    socket.bind((local, 0).into()).ok()?;
    Some(
        within("connect", socket.connect(to))
            .await
            .expect("connect"),
    )
}

async fn post_from(local: [u8; 4], to: SocketAddr, path: &str) -> Option<String> {
    send_from(local, to, "POST", path).await
}

async fn send_from(local: [u8; 4], to: SocketAddr, method: &str, path: &str) -> Option<String> {
    let mut s = connect_from(local, to).await?;
    let req = format!(
        "{method} {path} HTTP/1.1\r\nhost: {to}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.expect("write");
    let mut out = String::new();
    within("answer", s.read_to_string(&mut out))
        .await
        .expect("read");
    Some(out)
}

#[tokio::test]
async fn changes_come_from_allowed_sources_only() {
    let (a, b) = (origin().await, origin().await);
    let mut c = with_admin(&[a.addr()]);
    if let Some(admin) = &mut c.admin {
        admin.allowed_sources = vec![sluice::config::values::parse_cidr("127.0.0.1/32").unwrap()];
    }
    let proxy = Proxy::start(&c).await;
    let admin = Admin::of(proxy.server());
    let before = members(&admin).await;
    let port = b.addr().port();

    let Some(reply) = post_from(
        [127, 0, 0, 2],
        admin.addr,
        &format!("/register?port={port}"),
    )
    .await
    else {
        eprintln!("cannot bind 127.0.0.2 here; skipping the second-source check");
        return;
    };
    assert!(reply.starts_with("HTTP/1.1 403"), "{reply}");
    assert!(reply.contains("127.0.0.2 may not change"), "{reply}");
    // The classic GET, and every spelling the router takes for the same
    // endpoint, is a change too.
    for path in [
        format!("/register?port={port}"),
        format!("/register/?port={port}"),
        format!("//register?port={port}"),
        format!("/unregister/?port={port}"),
    ] {
        let reply = send_from([127, 0, 0, 2], admin.addr, "GET", &path)
            .await
            .expect("bound before");
        assert!(reply.starts_with("HTTP/1.1 403"), "GET {path}: {reply}");
    }
    let reply = post_from([127, 0, 0, 2], admin.addr, "/reload")
        .await
        .expect("bound before");
    assert!(reply.starts_with("HTTP/1.1 403"), "{reply}");
    assert_eq!(members(&admin).await, before);

    // From an allowed source the same call registers.
    let reply = post_from(
        [127, 0, 0, 1],
        admin.addr,
        &format!("/register?port={port}"),
    )
    .await
    .expect("127.0.0.1");
    assert!(reply.starts_with("HTTP/1.1 201"), "{reply}");
}

#[tokio::test]
async fn by_default_any_loopback_source_may_register_itself() {
    let a = origin().await;
    let proxy = Proxy::start(&with_admin(&[a.addr()])).await;
    let admin = Admin::of(proxy.server());
    let Some(reply) = post_from([127, 0, 0, 2], admin.addr, "/register?port=4567").await else {
        return;
    };
    assert!(reply.starts_with("HTTP/1.1 201"), "{reply}");
    assert!(reply.contains("127.0.0.2:4567"), "{reply}");
}

#[tokio::test]
async fn a_missing_or_wrong_token_is_401_and_names_the_scheme() {
    let (a, b) = (origin().await, origin().await);
    let mut c = with_admin(&[a.addr()]);
    if let Some(admin) = &mut c.admin {
        admin.token = Some("s3cret".into());
    }
    let proxy = Proxy::start(&c).await;
    let admin = Admin::of(proxy.server());
    let body = register_body(b.addr());
    for token in [None, Some("s3cre"), Some("s3cret-and-more"), Some("")] {
        let r = admin
            .call_with(Method::POST, "/backends", Some(&body), token)
            .await;
        assert_eq!(r.status, 401, "{token:?}: {}", r.text);
        assert!(
            r.headers
                .get("www-authenticate")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("Bearer")),
            "{:?}",
            r.headers
        );
    }
    let r = admin
        .send(
            Method::POST,
            &format!("/register?port={}", b.addr().port()),
            None,
            None,
            &[("authorization", "bearer s3cret")],
        )
        .await;
    assert_eq!(r.status, 201, "the scheme is case-insensitive: {}", r.text);
}

/// `timeouts.client_header` short, so that the test waits for little.
fn quick_timeouts(backends: &[SocketAddr]) -> sluice::Config {
    let mut c = with_admin(backends);
    c.timeouts.client_header = Duration::from_millis(300);
    c
}

#[tokio::test]
async fn slow_heads_are_closed() {
    let a = origin().await;
    let proxy = Proxy::start(&quick_timeouts(&[a.addr()])).await;
    let admin = Admin::of(proxy.server());
    // 200 connections that start a head and never finish it (slowloris).
    let mut conns = Vec::new();
    for _ in 0..200 {
        let mut s = within("connect", tokio::net::TcpStream::connect(admin.addr))
            .await
            .expect("connect");
        s.write_all(b"GET /backends HTTP/1.1\r\nhost: localhost\r\nx-slow: 1")
            .await
            .expect("write");
        conns.push(s);
    }
    // Each is closed by the proxy (after a 408 at most): reading ends.
    for (i, mut s) in conns.into_iter().enumerate() {
        let mut out = Vec::new();
        let end = tokio::time::timeout(STEP, s.read_to_end(&mut out)).await;
        assert!(end.is_ok(), "connection {i} is still open");
        let text = String::from_utf8_lossy(&out);
        assert!(
            text.is_empty() || text.starts_with("HTTP/1.1 408"),
            "{text}"
        );
    }
    // A connection that finished a request and then idles is closed too.
    let mut s = tokio::net::TcpStream::connect(admin.addr)
        .await
        .expect("connect");
    s.write_all(b"GET /healthz HTTP/1.1\r\nhost: localhost\r\n\r\n")
        .await
        .expect("write");
    let mut out = Vec::new();
    let end = tokio::time::timeout(STEP, s.read_to_end(&mut out)).await;
    assert!(end.is_ok(), "an idle keep-alive connection stayed open");
    assert!(String::from_utf8_lossy(&out).starts_with("HTTP/1.1 200"));
    // And the API still answers.
    assert_eq!(admin.get("/healthz").await.status, 200);
}

#[tokio::test]
async fn slow_or_large_bodies_are_refused() {
    let a = origin().await;
    let proxy = Proxy::start(&quick_timeouts(&[a.addr()])).await;
    let admin = Admin::of(proxy.server());
    let before = members(&admin).await;

    // A body that never arrives: 408, and the connection ends.
    let mut raw = RawConn::connect(admin.addr).await;
    raw.send(b"POST /backends HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"addr").await;
    let r = raw.read_response().await;
    assert_eq!(r.status, 408, "{}", r.body_str());

    // Larger than the cap: 413 without reading it all.
    let mut raw = RawConn::connect(admin.addr).await;
    let head = format!(
        "POST /backends HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        sluice::admin::MAX_BODY + 1
    );
    raw.send(head.as_bytes()).await;
    let r = raw.read_response().await;
    assert_eq!(r.status, 413, "{}", r.body_str());
    assert_eq!(members(&admin).await, before);
}

/// The binary: `--admin-token-file` guards the admin API, and a
/// `--backend` that is the proxy's own listener exits 64 naming the flag.
#[tokio::test]
async fn the_binary_reads_its_token_file_and_refuses_itself_as_a_backend() {
    use sluice_e2e::harness::process::{Sluice, sluice_bin};
    let dir = tempfile::tempdir().expect("tempdir");
    let token = dir.path().join("admin-token");
    std::fs::write(&token, "from-a-file\n").expect("write token");
    let sluice = Sluice::run([
        "--listen",
        "127.0.0.1:0",
        "--admin",
        "127.0.0.1:0",
        "--admin-token-file",
        token.to_str().expect("utf-8 path"),
    ]);
    let (_, admin) = sluice.serving().await;
    assert_eq!(admin.get("/backends").await.status, 401);
    let admin = admin.with_token("from-a-file");
    assert_eq!(admin.get("/backends").await.status, 200);

    for (backend, says) in [
        ("127.0.0.1:8080", "own listener 127.0.0.1:8080"),
        ("0.0.0.0:9001", "unspecified"),
    ] {
        let out = std::process::Command::new(sluice_bin())
            .args(["--listen", "127.0.0.1:8080", "--backend", backend])
            .env_remove("SLUICE_ADMIN_TOKEN")
            .output()
            .expect("run sluice");
        assert_eq!(out.status.code(), Some(64), "{backend}: {out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("--backend: ") && stderr.contains(says),
            "{backend}: {stderr}"
        );
    }
}
