//! Zero failed requests while backends come and go: a bounded load of
//! keep-alive clients runs while backends register (`POST /backends` and
//! `/register?port=`), drain, and unregister (`DELETE /backends/{addr}` and
//! `/unregister?port=`, each of which returns only once the backend's
//! in-flight requests are done; only then is the origin stopped).

use super::admin::with_admin;
use bytes::Bytes;
use http::{Method, Request};
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use sluice_e2e::harness::control::Admin;
use sluice_e2e::harness::origin::{Origin, reply};
use sluice_e2e::harness::proxy::Proxy;
use sluice_e2e::harness::{STEP, within};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::net::TcpStream;

const CLIENTS: usize = 4;
const TOTAL: usize = 20_000;

async fn origin(name: &str) -> Origin {
    Origin::http1()
        .name(name)
        .route(
            "/slow",
            reply::delayed(Duration::from_millis(3), reply::text(200, "ok")),
        )
        .route("/", reply::text(200, "ok"))
        .start()
        .await
}

/// Requests `o` got from clients through the proxy: the heartbeat of a
/// registered backend (`GET /ping`) is the proxy's own, and one sent just
/// before a DELETE may land after it.
fn proxied(o: &Origin) -> usize {
    o.requests()
        .iter()
        .filter(|r| r.uri.path() != "/ping")
        .count()
}

#[derive(Default)]
struct Load {
    /// Requests started (the budget is [`TOTAL`]).
    started: AtomicUsize,
    /// Requests answered 200 with the right body.
    ok: AtomicUsize,
    failures: Mutex<Vec<String>>,
}

impl Load {
    fn fail(&self, what: String) {
        self.failures.lock().push(what);
    }

    fn done(&self) -> usize {
        self.ok.load(Ordering::SeqCst) + self.failures.lock().len()
    }
}

/// One keep-alive client: sequential requests until the budget is spent;
/// a broken connection is a failure, and the client reconnects.
async fn client(proxy: SocketAddr, load: Arc<Load>) {
    let mut sender: Option<http1::SendRequest<Empty<Bytes>>> = None;
    loop {
        let n = load.started.fetch_add(1, Ordering::SeqCst);
        if n >= TOTAL {
            return;
        }
        let s = match &mut sender {
            Some(s) => s,
            None => {
                let tcp = TcpStream::connect(proxy).await.expect("connect to proxy");
                let (s, conn) = http1::handshake(TokioIo::new(tcp))
                    .await
                    .expect("handshake");
                tokio::spawn(conn);
                sender.insert(s)
            }
        };
        let path = if n.is_multiple_of(10) { "/slow" } else { "/" };
        let req = Request::get(path)
            .header("host", "churn.test")
            .body(Empty::new())
            .expect("request");
        let result = tokio::time::timeout(STEP, async {
            s.ready().await?;
            let resp = s.send_request(req).await?;
            let status = resp.status();
            let body = resp.into_body().collect().await?.to_bytes();
            Ok::<_, hyper::Error>((status, body))
        })
        .await;
        match result {
            Ok(Ok((status, body))) if status == 200 && body == "ok" => {
                load.ok.fetch_add(1, Ordering::SeqCst);
            }
            Ok(Ok((status, body))) => {
                load.fail(format!("request {n}: {status} {body:?}"));
            }
            Ok(Err(e)) => {
                load.fail(format!("request {n}: {e}"));
                sender = None;
            }
            Err(_) => {
                load.fail(format!("request {n}: no answer within {STEP:?}"));
                sender = None;
            }
        }
    }
}

/// Waits until `more` requests have completed, or the load is over; returns
/// false if it is over.
async fn progress(load: &Load, more: usize) -> bool {
    let target = load.done() + more;
    within("load progress", async {
        loop {
            let done = load.done();
            if done >= TOTAL {
                return false;
            }
            if done >= target {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_request_fails_while_backends_register_drain_and_unregister() {
    let a = origin("a").await;
    let b = origin("b").await;
    let proxy = Proxy::start(&with_admin(&[a.addr(), b.addr()])).await;
    let admin = Admin::of(proxy.server());
    let load = Arc::new(Load::default());
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| tokio::spawn(client(proxy.addr(), load.clone())))
        .collect();

    let mut cycles = 0;
    let mut served_by_churned = 0;
    'churn: loop {
        // A new backend joins, by either registration path.
        let c = origin(&format!("c{cycles}")).await;
        if cycles % 2 == 0 {
            admin.register("default", c.addr()).await;
        } else {
            let r = admin
                .call(
                    Method::POST,
                    &format!("/register?port={}", c.addr().port()),
                    None,
                )
                .await;
            assert_eq!(r.status, 201, "{}", r.text);
        }
        if !progress(&load, 300).await {
            break 'churn;
        }
        // Drain it: no new requests, in-flight ones finish.
        admin.drain(c.addr()).await;
        // A configured backend drains and comes back too.
        let stable = if cycles % 2 == 0 { &a } else { &b };
        admin.drain(stable.addr()).await;
        if !progress(&load, 200).await {
            break 'churn;
        }
        admin.register("default", stable.addr()).await;
        // Unregister: returns once c's in-flight requests are done. Only
        // then does c stop.
        let r = if cycles % 2 == 0 {
            admin.unregister(c.addr()).await
        } else {
            admin
                .call(
                    Method::POST,
                    &format!("/unregister?port={}", c.addr().port()),
                    None,
                )
                .await
        };
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.json["drained"], true);
        served_by_churned += proxied(&c);
        drop(c);
        cycles += 1;
        if !progress(&load, 200).await {
            break 'churn;
        }
    }
    for c in clients {
        within("a client to finish", c).await.expect("client task");
    }

    let failures = load.failures.lock().clone();
    assert!(
        failures.is_empty(),
        "{} of {TOTAL} requests failed; first: {:#?}",
        failures.len(),
        &failures[..failures.len().min(10)]
    );
    assert_eq!(load.ok.load(Ordering::SeqCst), TOTAL);
    assert!(
        cycles >= 3,
        "only {cycles} churn cycles ran during the load"
    );
    assert!(served_by_churned > 0, "the churned backends got no traffic");
}

/// `DELETE /backends/{addr}` promises that when it returns, the backend has
/// no request in flight and will get no more: an operator stops the backend
/// right after. Checked many times under load, without stopping it, by
/// counting what reaches it after the DELETE returned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_reaches_a_backend_after_its_delete_returned() {
    const CYCLES: usize = 200;
    let a = origin("a").await;
    let c = origin("c").await;
    let proxy = Proxy::start(&with_admin(&[a.addr()])).await;
    let admin = Admin::of(proxy.server());
    let load = Arc::new(Load::default());
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| tokio::spawn(client(proxy.addr(), load.clone())))
        .collect();

    let mut late = Vec::new();
    let mut cycles = 0;
    while cycles < CYCLES {
        let seen = proxied(&c);
        admin.register("default", c.addr()).await;
        // c is in rotation and busy.
        let busy = within("c to get traffic", async {
            while proxied(&c) < seen + 3 {
                if load.done() >= TOTAL {
                    return false;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            true
        })
        .await;
        if !busy {
            break;
        }
        admin.unregister(c.addr()).await;
        let after_delete = proxied(&c);
        if !progress(&load, 20).await {
            break;
        }
        let now = proxied(&c);
        if now != after_delete {
            late.push((cycles, now - after_delete));
        }
        cycles += 1;
    }
    load.started.store(TOTAL, Ordering::SeqCst);
    for t in clients {
        within("a client to finish", t).await.expect("client task");
    }
    assert!(
        late.is_empty(),
        "requests reached c after its DELETE returned (cycle, how many): {late:?}"
    );
    assert!(
        load.failures.lock().is_empty(),
        "{:?}",
        load.failures.lock()
    );
    assert!(cycles >= 20, "only {cycles} cycles ran");
}
