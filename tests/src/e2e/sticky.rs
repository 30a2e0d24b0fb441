//! Sticky sessions (`[upstream.NAME.sticky]`): the first response sets a
//! cookie with its attributes, the client then stays on that backend, the
//! backend never sees the cookie (but sees the others byte for byte), a
//! forged cookie falls back to the policy and gets a fresh one, and a
//! backend that leaves rotation (drained), fails to connect, or is
//! half-open with its trial taken moves the client to another backend with
//! a new cookie. HTTP/1.1, HTTP/2 and TLS.

use http::Request;
use hyper_util::rt::TokioIo;
use sluice::config::{AdminConfig, CertConfig, Passive, SameSite, Secret, StickyConfig};
use sluice_e2e::harness::certs::TestCerts;
use sluice_e2e::harness::client::{H1, H2, Reply, collect, tls_connect};
use sluice_e2e::harness::control::Admin;
use sluice_e2e::harness::origin::{Origin, reply};
use sluice_e2e::harness::proxy::{Proxy, config};
use sluice_e2e::harness::{eventually, within};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::time::Duration;
use tokio::sync::Semaphore;

const NAME: &str = "sluice_sticky";

/// Round robin over `backends`, sticky with the defaults and a `max_age`,
/// the admin API on.
fn sticky(backends: &[SocketAddr], secret: Option<&str>) -> sluice::Config {
    let mut c = config(backends);
    c.admin = Some(AdminConfig::new(([127, 0, 0, 1], 0).into()));
    c.upstreams[0].sticky = Some(StickyConfig {
        cookie: NAME.to_owned(),
        secret: secret.map(|s| Secret(s.as_bytes().to_vec())),
        same_site: SameSite::Lax,
        max_age: Some(3600),
        path: "/".to_owned(),
        http_only: true,
        secure: false,
    });
    c
}

/// Origins named `names`, and their addresses.
async fn started(names: &[&str]) -> (Vec<Origin>, Vec<SocketAddr>) {
    let mut origins = Vec::new();
    for n in names {
        origins.push(Origin::named(n).await);
    }
    let addrs = origins.iter().map(Origin::addr).collect();
    (origins, addrs)
}

/// With our cookie `value`, `home` answers and no cookie comes back.
async fn stays(client: &mut H1, value: &str, home: &str) {
    let r = get(client, Some(&format!("{NAME}={value}"))).await;
    assert_eq!(origin_of(&r), home);
    assert_eq!(r.header("set-cookie"), None);
}

/// `GET /` with `cookie`, whatever the status.
async fn send(client: &mut H1, cookie: Option<&str>) -> Reply {
    let mut req = Request::get("/").header("host", "lb.test");
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    let req = req.body(reply::empty()).expect("request");
    collect(client.send(req).await).await
}

/// `GET /` with `cookie`, answered 200.
async fn get(client: &mut H1, cookie: Option<&str>) -> Reply {
    let r = send(client, cookie).await;
    assert_eq!(r.status, 200);
    r
}

fn origin_of(r: &Reply) -> String {
    r.header("x-origin").expect("x-origin").to_owned()
}

/// The value of our cookie in the response's `Set-Cookie`, if it set one.
fn set_value(r: &Reply) -> Option<String> {
    let lines: Vec<_> = r.headers.get_all("set-cookie").iter().collect();
    assert!(lines.len() <= 1, "{lines:?}");
    let line = lines.first()?.to_str().expect("ascii");
    let value = line
        .strip_prefix(&format!("{NAME}="))
        .and_then(|rest| rest.split(';').next())
        .unwrap_or_else(|| panic!("not our cookie: {line:?}"));
    assert_eq!(value.len(), 48, "{line:?}");
    assert!(value.bytes().all(|b| b.is_ascii_hexdigit()), "{line:?}");
    Some(value.to_owned())
}

#[tokio::test]
async fn the_first_response_sets_the_cookie_and_the_client_stays_on_its_backend() {
    let (origins, addrs) = started(&["a", "b", "c"]).await;
    let proxy = Proxy::start(&sticky(&addrs, None)).await;
    let mut client = H1::connect(proxy.addr()).await;

    let first = get(&mut client, Some("theme=dark")).await;
    let line = first.header("set-cookie").expect("a sticky cookie");
    let value = set_value(&first).expect("ours");
    assert_eq!(
        line,
        format!("{NAME}={value}; Path=/; Max-Age=3600; HttpOnly; SameSite=Lax"),
        "no Secure on a plain listener"
    );
    assert_eq!(first.header("cache-control"), Some("private"));
    let home = origin_of(&first);
    assert!(
        !line.contains("127.0.0.1"),
        "the cookie must not name the address"
    );

    // Round robin would spread these three ways; the cookie keeps them home,
    // and sets nothing more.
    let cookie = format!("theme=dark; {NAME}={value};lang=\"en\"");
    for i in 0..20 {
        let r = get(&mut client, Some(&cookie)).await;
        assert_eq!(origin_of(&r), home, "request {i}");
        assert_eq!(r.header("set-cookie"), None, "request {i}");
        assert_eq!(r.header("cache-control"), None, "request {i}");
    }
    let home = origins.iter().find(|o| o.name() == home).expect("home");
    assert_eq!(home.request_count(), 21);
    // The backend sees the client's other cookies exactly, never ours.
    let seen = home.last_request();
    let cookies: Vec<_> = seen.headers.get_all("cookie").iter().collect();
    assert_eq!(cookies, ["theme=dark;lang=\"en\""]);
}

#[tokio::test]
async fn an_h2_client_sticks_too_and_its_cookie_crumb_is_stripped() {
    let (origins, addrs) = started(&["a", "b"]).await;
    let proxy = Proxy::start(&sticky(&addrs, None)).await;
    let mut client = H2::connect_h2c(proxy.addr()).await;

    let send = |cookie: Option<String>| {
        let mut req = Request::get("http://lb.test/").header("cookie", "theme=dark");
        if let Some(c) = cookie {
            req = req.header("cookie", c);
        }
        req.header("cookie", "lang=en")
            .body(reply::empty())
            .expect("request")
    };
    let first = collect(client.send(send(None)).await).await;
    let value = set_value(&first).expect("a sticky cookie");
    let home = origin_of(&first);
    for i in 0..20 {
        let r = collect(client.send(send(Some(format!("{NAME}={value}")))).await).await;
        assert_eq!(r.status, 200);
        assert_eq!(origin_of(&r), home, "request {i}");
        assert_eq!(r.header("set-cookie"), None, "request {i}");
    }
    let home = origins.iter().find(|o| o.name() == home).expect("home");
    let seen = home.last_request();
    let cookies: Vec<_> = seen.headers.get_all("cookie").iter().collect();
    assert_eq!(cookies, ["theme=dark; lang=en"], "crumbs joined, ours gone");
}

#[tokio::test]
async fn a_forged_or_unknown_cookie_falls_back_and_gets_a_fresh_one() {
    let (origins, addrs) = started(&["a", "b"]).await;
    let proxy = Proxy::start(&sticky(&addrs, None)).await;
    let mut client = H1::connect(proxy.addr()).await;
    let value = set_value(&get(&mut client, None).await).expect("a cookie");

    // One hex digit changed, the backend's address, a cookie of another
    // key: each is ignored, the policy picks, a fresh cookie comes back.
    let mut flipped = value.clone().into_bytes();
    flipped[47] = if flipped[47] == b'0' { b'1' } else { b'0' };
    let flipped = String::from_utf8(flipped).expect("ascii");
    let other_key = {
        let other = Proxy::start(&sticky(&addrs, Some("another key, 16+ bytes"))).await;
        let mut c = H1::connect(other.addr()).await;
        set_value(&get(&mut c, None).await).expect("a cookie")
    };
    for bad in [flipped, addrs[0].to_string(), other_key, "x".repeat(48)] {
        let before: usize = origins.iter().map(Origin::request_count).sum();
        let r = get(&mut client, Some(&format!("{NAME}={bad}; keep=1"))).await;
        let fresh = set_value(&r).unwrap_or_else(|| panic!("no fresh cookie for {bad:?}"));
        assert_ne!(fresh, bad);
        assert_eq!(r.header("cache-control"), Some("private"));
        let answered = origins
            .iter()
            .find(|o| o.name() == origin_of(&r))
            .expect("origin");
        let seen = answered.last_request();
        assert_eq!(seen.headers["cookie"], "keep=1", "{bad:?} never forwarded");
        assert_eq!(
            origins.iter().map(Origin::request_count).sum::<usize>(),
            before + 1
        );
        // The fresh cookie works.
        stays(&mut client, &fresh, &origin_of(&r)).await;
    }
}

#[tokio::test]
async fn draining_the_backend_moves_the_client_with_a_new_cookie() {
    let (origins, addrs) = started(&["a", "b", "c"]).await;
    let proxy = Proxy::start(&sticky(&addrs, None)).await;
    let admin = Admin::of(proxy.server());
    let mut client = H1::connect(proxy.addr()).await;
    let first = get(&mut client, None).await;
    let old = set_value(&first).expect("a cookie");
    let home = origins
        .iter()
        .find(|o| o.name() == origin_of(&first))
        .expect("home");

    admin.drain(home.addr()).await;
    let served = home.request_count();
    let moved = get(&mut client, Some(&format!("{NAME}={old}"))).await;
    assert_ne!(
        origin_of(&moved),
        home.name(),
        "a draining backend is not used"
    );
    let new = set_value(&moved).expect("a new cookie");
    assert_ne!(new, old);
    for _ in 0..10 {
        stays(&mut client, &new, &origin_of(&moved)).await;
    }
    assert_eq!(
        home.request_count(),
        served,
        "nothing more to the drained one"
    );
}

#[tokio::test]
async fn a_backend_that_cannot_be_reached_hands_the_client_over_with_a_new_cookie() {
    let (a, b) = (Origin::named("a").await, Origin::named("b").await);
    let (a_addr, b_addr) = (a.addr(), b.addr());
    let mut cfg = sticky(&[a_addr, b_addr], None);
    // A fresh connection per request: the stop below is then a refused
    // connect, not the keep-alive race of a pooled connection.
    cfg.upstreams[0].max_idle_per_backend = 0;
    let proxy = Proxy::start(&cfg).await;
    let mut client = H1::connect(proxy.addr()).await;
    let first = get(&mut client, None).await;
    let old = set_value(&first).expect("a cookie");
    // Stop the client's backend: its cookie still verifies and the backend
    // is still in rotation (no checks), so the connect fails and the
    // request picks again (round robin's next pick is the other backend:
    // the group's pick never skips an excluded backend, see
    // `retry::connect`); the backend that answered gets the cookie.
    let (gone, other) = if origin_of(&first) == "a" {
        (a, b)
    } else {
        (b, a)
    };
    let gone_addr = gone.addr();
    drop(gone);
    // Its listener closes with its task, soon after the drop.
    within("the stopped backend to refuse connections", async {
        while tokio::net::TcpStream::connect(gone_addr).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    let r = get(&mut client, Some(&format!("{NAME}={old}"))).await;
    assert_eq!(origin_of(&r), other.name());
    let new = set_value(&r).expect("the cookie follows the answer");
    assert_ne!(new, old);
    stays(&mut client, &new, other.name()).await;
}

#[tokio::test]
async fn replicas_with_one_secret_honour_each_others_cookies() {
    let (_origins, addrs) = started(&["a", "b", "c"]).await;
    let key = Some("one secret for every replica");
    let (p1, p2) = (
        Proxy::start(&sticky(&addrs, key)).await,
        Proxy::start(&sticky(&addrs, key)).await,
    );
    let mut c1 = H1::connect(p1.addr()).await;
    let mut c2 = H1::connect(p2.addr()).await;
    // The second replica's round robin is at its start too: move it on so
    // that its own pick would differ from the first replica's.
    get(&mut c2, None).await;
    let first = get(&mut c1, None).await;
    let value = set_value(&first).expect("a cookie");
    for _ in 0..6 {
        stays(&mut c2, &value, &origin_of(&first)).await;
    }
}

#[tokio::test]
async fn a_tls_listener_makes_the_cookie_secure() {
    let certs = TestCerts::generate();
    let origin = Origin::named("a").await;
    let mut cfg = sticky(&[origin.addr()], None);
    cfg.listeners[0].tls = vec![CertConfig {
        cert: certs.cert.clone(),
        key: certs.key.clone(),
        server_names: vec!["localhost".to_owned()],
    }];
    let proxy = Proxy::start(&cfg).await;
    for alpn in [&b"http/1.1"[..], b"h2"] {
        let (tls, _) = tls_connect(proxy.addr(), certs.client_config(&[alpn]), "localhost")
            .await
            .expect("TLS handshake");
        let r = if alpn == b"h2" {
            H2::handshake(TokioIo::new(tls)).await.get("/").await
        } else {
            H1::handshake(TokioIo::new(tls)).await.get("/").await
        };
        assert_eq!(r.status, 200);
        let line = r.header("set-cookie").expect("a sticky cookie");
        assert!(
            line.ends_with("; HttpOnly; SameSite=Lax; Secure"),
            "{alpn:?}: {line}"
        );
    }
}

/// What a [`switchable`] origin answers: a status, and whether to hold
/// each request until the test adds a permit.
struct Switch {
    status: AtomicU16,
    hold: AtomicBool,
    gate: Semaphore,
}

async fn switchable(name: &'static str, sw: Arc<Switch>) -> Origin {
    Origin::http1()
        .name(name)
        .route("/", move |req| {
            let sw = sw.clone();
            async move {
                if sw.hold.load(Ordering::SeqCst) {
                    sw.gate.acquire().await.expect("gate").forget();
                }
                reply::text(sw.status.load(Ordering::SeqCst), name)(req).await
            }
        })
        .start()
        .await
}

#[tokio::test]
async fn a_half_open_backend_with_its_trial_taken_is_not_used_for_its_cookie() {
    let switches: Vec<Arc<Switch>> = (0..2)
        .map(|_| {
            Arc::new(Switch {
                status: AtomicU16::new(200),
                hold: AtomicBool::new(false),
                gate: Semaphore::new(0),
            })
        })
        .collect();
    let origins = [
        switchable("a", switches[0].clone()).await,
        switchable("b", switches[1].clone()).await,
    ];
    let addrs: Vec<_> = origins.iter().map(Origin::addr).collect();
    let mut cfg = sticky(&addrs, None);
    cfg.upstreams[0].passive = Passive {
        consecutive_5xx: 1,
        ejection: Duration::from_millis(200),
        max_ejected_percent: 50,
        half_open_trials: 1,
        half_open_successes: 1,
        ..Passive::default()
    };
    let proxy = Proxy::start(&cfg).await;
    let admin = Admin::of(proxy.server());
    let mut client = H1::connect(proxy.addr()).await;
    let first = get(&mut client, None).await;
    let cookie = format!("{NAME}={}", set_value(&first).expect("a cookie"));
    let home = usize::from(origin_of(&first) != "a");
    let (x, y) = (&origins[home], &origins[1 - home]);
    let sw = &switches[home];

    // Its cookie's backend fails once: ejected, then half-open.
    sw.status.store(500, Ordering::SeqCst);
    let r = send(&mut client, Some(&cookie)).await;
    assert_eq!(
        (r.status.as_u16(), origin_of(&r)),
        (500, x.name().to_owned())
    );
    admin.wait_state(x.addr(), "half-open").await;

    // One trial at a time: a request with the cookie takes it and is held...
    sw.status.store(200, Ordering::SeqCst);
    sw.hold.store(true, Ordering::SeqCst);
    let seen = x.request_count();
    let addr = proxy.addr();
    let held = cookie.clone();
    let trial = tokio::spawn(async move {
        let mut c = H1::connect(addr).await;
        get(&mut c, Some(&held)).await
    });
    eventually("the trial to reach its backend", || {
        x.request_count() == seen + 1
    })
    .await;
    // ...so the next is refused by the breaker, picks again, and the
    // backend that answers gets the cookie.
    let r = get(&mut client, Some(&cookie)).await;
    assert_eq!(origin_of(&r), y.name());
    let moved = set_value(&r).expect("a cookie for the backend that answered");
    assert_eq!(x.request_count(), seen + 1, "the trial cap held");

    // The trial ends well; its client keeps its cookie.
    sw.gate.add_permits(1);
    let t = within("the trial", trial).await.expect("trial task");
    assert_eq!(origin_of(&t), x.name());
    assert_eq!(t.header("set-cookie"), None);
    stays(&mut client, &moved, y.name()).await;
}
