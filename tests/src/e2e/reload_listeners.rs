//! Live reload of listeners through `POST /reload`: a listener added to the
//! file starts serving (HTTP/1.1 and h2c) while the old ones and their open
//! connections carry on; a removed one refuses new connections while a
//! request in flight on a connection it accepted completes and that
//! connection stays usable; a new listener that cannot bind fails the whole
//! reload (422, naming the address) and nothing changes; a TLS listener
//! that stays picks up certificates rotated in place.

use http::{Method, Response};
use hyper_util::rt::TokioIo;
use sluice_e2e::harness::certs::TestCerts;
use sluice_e2e::harness::client::{H1, H2, tls_connect};
use sluice_e2e::harness::control::Admin;
use sluice_e2e::harness::eventually;
use sluice_e2e::harness::origin::{Origin, reply};
use sluice_e2e::harness::proxy::Proxy;
use sluice_e2e::harness::within;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

/// A config with `listeners` (addresses as written in the file), `workers`
/// worker runtimes, and every path routed to `upstream`'s backend.
fn file(workers: usize, listeners: &[String], upstream: &str, backend: SocketAddr) -> String {
    let mut text = format!("workers = {workers}\n");
    for l in listeners {
        text.push_str(&format!("\n[[listener]]\naddress = \"{l}\"\n"));
    }
    text.push_str(&format!(
        r#"
[timeouts]
shutdown_grace = "5s"

[admin]
address = "127.0.0.1:0"

[upstream.{upstream}]
backends = ["{backend}"]

[[route]]
path = "/"
upstream = "{upstream}"
"#
    ));
    text
}

/// An origin named `name`; its `/slow` answers once `gate` has a permit.
async fn origin(name: &str, gate: Arc<Semaphore>) -> Origin {
    let body: &'static str = Box::leak(name.to_owned().into_boxed_str());
    Origin::http1()
        .name(name)
        .route("/slow", move |_| {
            let gate = gate.clone();
            async move {
                let _permit = gate.acquire().await.expect("gate");
                Response::new(reply::full("finished"))
            }
        })
        .route("/", reply::text(200, body))
        .start()
        .await
}

async fn start(path: &Path) -> Proxy {
    let config = sluice::Config::load(path).expect("valid config");
    Proxy::start(&config).await
}

fn addrs(proxy: &Proxy) -> Vec<SocketAddr> {
    proxy.server().addrs().iter().map(|a| a.0).collect()
}

fn strings(json: &serde_json::Value) -> Vec<String> {
    json.as_array()
        .unwrap_or_else(|| panic!("no array of addresses: {json}"))
        .iter()
        .map(|s| s.as_str().expect("address string").to_owned())
        .collect()
}

#[tokio::test]
async fn a_reload_that_adds_a_listener_serves_on_it_and_keeps_the_old_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("sluice.toml");
    let a = origin("a", Arc::new(Semaphore::new(0))).await;
    // Two worker runtimes: the new listener gets a socket in each.
    let one = vec!["127.0.0.1:0".to_owned()];
    std::fs::write(&path, file(2, &one, "a", a.addr())).expect("write config");
    let proxy = start(&path).await;
    let admin = Admin::of(proxy.server());
    let old = proxy.addr();

    let mut kept = H1::connect(old).await;
    assert_eq!(kept.get("/").await.header("x-origin"), Some("a"));
    let kept_h2 = H2::connect_h2c(old).await;
    assert_eq!(kept_h2.clone().get("/").await.status, 200);

    // The running listener, named by its bound address, plus a new one.
    let two = vec![old.to_string(), "127.0.0.1:0".to_owned()];
    std::fs::write(&path, file(2, &two, "a", a.addr())).expect("write config");
    let r = admin.call(Method::POST, "/reload", None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let added = strings(&r.json["added"]);
    assert_eq!(added.len(), 1, "{}", r.text);
    assert!(strings(&r.json["removed"]).is_empty(), "{}", r.text);
    let new: SocketAddr = added[0].parse().expect("added address");
    assert_ne!(new.port(), 0);
    assert_eq!(addrs(&proxy), vec![old, new]);
    assert_eq!(
        strings(&r.json["listeners"]),
        vec![old.to_string(), new.to_string()]
    );

    // The new address serves HTTP/1.1 and h2c, on fresh connections that
    // the kernel spreads over both workers' sockets.
    for _ in 0..8 {
        let reply = H1::connect(new).await.get("/h1").await;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.header("x-origin"), Some("a"));
    }
    let reply = H2::connect_h2c(new).await.get("/h2").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.version, http::Version::HTTP_2);
    assert_eq!(reply.header("x-origin"), Some("a"));

    // The old listener and the connections it accepted carry on.
    assert_eq!(kept.get("/again").await.header("x-origin"), Some("a"));
    assert_eq!(kept_h2.clone().get("/again").await.status, 200);
    assert_eq!(H1::connect(old).await.get("/").await.status, 200);

    // Reloading the same file again changes nothing.
    let r = admin.call(Method::POST, "/reload", None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(strings(&r.json["added"]).is_empty(), "{}", r.text);
    assert!(strings(&r.json["removed"]).is_empty(), "{}", r.text);
    assert_eq!(addrs(&proxy), vec![old, new]);
    assert_eq!(kept.get("/third").await.status, 200);
    proxy.shutdown().await;
}

#[tokio::test]
async fn a_reload_that_removes_a_listener_refuses_new_connections_and_finishes_old_ones() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("sluice.toml");
    let gate = Arc::new(Semaphore::new(0));
    let a = origin("a", gate.clone()).await;
    let two = vec!["127.0.0.1:0".to_owned(), "127.0.0.1:0".to_owned()];
    std::fs::write(&path, file(1, &two, "a", a.addr())).expect("write config");
    let proxy = start(&path).await;
    let admin = Admin::of(proxy.server());
    let [keep, doomed] = addrs(&proxy)[..] else {
        panic!("two listeners: {:?}", addrs(&proxy));
    };

    // A keep-alive connection on the listener to be removed, with a request
    // in flight when the reload lands.
    let mut conn = H1::connect(doomed).await;
    assert_eq!(conn.get("/").await.status, 200);
    let in_flight = tokio::spawn(async move {
        let reply = conn.get("/slow").await;
        (conn, reply)
    });
    eventually("the slow request to reach the origin", || {
        a.requests().iter().any(|s| s.uri.path() == "/slow")
    })
    .await;

    std::fs::write(&path, file(1, &[keep.to_string()], "a", a.addr())).expect("write config");
    let r = admin.call(Method::POST, "/reload", None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(strings(&r.json["removed"]), vec![doomed.to_string()]);
    assert!(strings(&r.json["added"]).is_empty(), "{}", r.text);
    assert_eq!(addrs(&proxy), vec![keep]);

    // The reload answers once the socket is closed: connecting is refused.
    let refused = within(
        "connecting to the removed listener",
        TcpStream::connect(doomed),
    )
    .await;
    match refused {
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused, "{e}"),
        Ok(_) => panic!("{doomed} still accepts connections after its removal"),
    }

    // The request in flight completes, and its connection stays usable.
    gate.add_permits(1);
    let (mut conn, reply) = within("the in-flight request", in_flight)
        .await
        .expect("request task");
    assert_eq!(reply.status, 200);
    assert_eq!(reply.text(), "finished");
    let reply = conn.get("/after").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("x-origin"), Some("a"));

    // The listener that stays serves as before.
    assert_eq!(H1::connect(keep).await.get("/").await.status, 200);
    proxy.shutdown().await;
}

#[tokio::test]
async fn a_reload_whose_listener_cannot_bind_is_rejected_and_changes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("sluice.toml");
    let never = Arc::new(Semaphore::new(0));
    let (a, b) = (origin("a", never.clone()).await, origin("b", never).await);
    let one = vec!["127.0.0.1:0".to_owned()];
    std::fs::write(&path, file(1, &one, "a", a.addr())).expect("write config");
    let proxy = start(&path).await;
    let admin = Admin::of(proxy.server());
    let old = proxy.addr();
    let mut kept = H1::connect(old).await;
    assert_eq!(kept.get("/").await.header("x-origin"), Some("a"));

    // Held without SO_REUSEPORT, so the proxy cannot listen there too. The
    // same file adds a listener that could bind and routes to `b`: neither
    // may happen.
    let busy = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let busy_addr = busy.local_addr().expect("busy addr");
    let listeners = vec![
        old.to_string(),
        "127.0.0.1:0".to_owned(),
        busy_addr.to_string(),
    ];
    std::fs::write(&path, file(1, &listeners, "b", b.addr())).expect("write config");
    let r = admin.call(Method::POST, "/reload", None).await;
    assert_eq!(r.status, 422, "{}", r.text);
    assert!(
        r.error().contains(&busy_addr.to_string()),
        "the reason names the address: {}",
        r.error()
    );
    assert_eq!(addrs(&proxy), vec![old], "listeners changed");

    // Everything serves as before: same connection, new ones, same routes.
    assert_eq!(kept.get("/").await.header("x-origin"), Some("a"));
    assert_eq!(
        H1::connect(old).await.get("/").await.header("x-origin"),
        Some("a")
    );
    assert_eq!(admin.get("/readyz").await.status, 200);
    assert_eq!(b.request_count(), 0, "the rejected config routed to b");

    // With the address free, the same file goes through.
    drop(busy);
    let r = admin.call(Method::POST, "/reload", None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(strings(&r.json["added"]).len(), 2, "{}", r.text);
    assert!(strings(&r.json["added"]).contains(&busy_addr.to_string()));
    assert_eq!(
        H1::connect(busy_addr)
            .await
            .get("/")
            .await
            .header("x-origin"),
        Some("b")
    );
    assert_eq!(kept.get("/").await.header("x-origin"), Some("b"));
    proxy.shutdown().await;
}

#[tokio::test]
async fn a_reload_rereads_the_certificates_of_a_tls_listener_that_stays() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("sluice.toml");
    let a = origin("a", Arc::new(Semaphore::new(0))).await;
    let (first, second) = (TestCerts::generate(), TestCerts::generate());
    // The listener's PEM files, overwritten in place to rotate.
    let (cert, key) = (dir.path().join("server.pem"), dir.path().join("server.key"));
    std::fs::copy(&first.cert, &cert).expect("copy cert");
    std::fs::copy(&first.key, &key).expect("copy key");
    let tls_file = file(1, &["127.0.0.1:0".to_owned()], "a", a.addr()).replace(
        "address = \"127.0.0.1:0\"\n",
        &format!(
            "address = \"127.0.0.1:0\"\n[[listener.tls]]\ncert = {:?}\nkey = {:?}\n",
            cert.display().to_string(),
            key.display().to_string()
        ),
    );
    std::fs::write(&path, &tls_file).expect("write config");
    let proxy = start(&path).await;
    let admin = Admin::of(proxy.server());
    let addr = proxy.addr();
    let h1 = [&b"http/1.1"[..]];

    let (tls, _) = tls_connect(addr, first.client_config(&h1), "localhost")
        .await
        .expect("the first certificate");
    let mut kept = H1::handshake(TokioIo::new(tls)).await;
    assert_eq!(kept.get("/").await.status, 200);
    assert!(
        tls_connect(addr, second.client_config(&h1), "localhost")
            .await
            .is_err(),
        "the second CA verified before the rotation"
    );

    std::fs::copy(&second.cert, &cert).expect("rotate cert");
    std::fs::copy(&second.key, &key).expect("rotate key");
    let r = admin.call(Method::POST, "/reload", None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(strings(&r.json["added"]).is_empty(), "{}", r.text);
    assert_eq!(addrs(&proxy), vec![addr], "the listener was re-bound");

    // New handshakes get the new certificate; the open connection carries on.
    let (tls, _) = tls_connect(addr, second.client_config(&h1), "localhost")
        .await
        .expect("the rotated certificate");
    let reply = H1::handshake(TokioIo::new(tls)).await.get("/").await;
    assert_eq!(reply.status, 200);
    assert!(
        tls_connect(addr, first.client_config(&h1), "localhost")
            .await
            .is_err(),
        "the old certificate is still served"
    );
    assert_eq!(kept.get("/again").await.status, 200);

    // A broken key fails the reload and the rotated certificate stays.
    std::fs::write(&key, "not a key").expect("break key");
    let r = admin.call(Method::POST, "/reload", None).await;
    assert_eq!(r.status, 422, "{}", r.text);
    assert!(
        r.error().contains(&key.display().to_string()),
        "{}",
        r.error()
    );
    let (tls, _) = tls_connect(addr, second.client_config(&h1), "localhost")
        .await
        .expect("the rotated certificate after a failed reload");
    assert_eq!(
        H1::handshake(TokioIo::new(tls)).await.get("/").await.status,
        200
    );
    proxy.shutdown().await;
}
