//! DNS discovery with a scripted resolver: addresses that appear join the
//! group, those that vanish are drained (in-flight requests finish) and then
//! removed, and a failed lookup changes nothing.

use super::admin::with_admin;
use sluice::config::DnsBackend;
use sluice_e2e::harness::client::H1;
use sluice_e2e::harness::control::{Admin, ScriptedResolver, start_with_resolver};
use sluice_e2e::harness::origin::{Origin, reply};
use sluice_e2e::harness::{eventually, within};
use std::collections::HashSet;
use std::time::Duration;

const NAME: &str = "svc.test";

fn dns_config() -> sluice::Config {
    let mut c = with_admin(&[]);
    let g = &mut c.upstreams[0];
    g.dns = vec![DnsBackend {
        host: NAME.into(),
        port: 80,
        weight: 1,
    }];
    g.resolve_interval = Duration::from_millis(50);
    c
}

async fn named(name: &str) -> Origin {
    Origin::http1()
        .name(name)
        .route("/", reply::text(200, "ok"))
        .start()
        .await
}

/// Which origins answered `n` requests on one connection (all must be 200).
async fn answered_by(client: &mut H1, n: usize) -> HashSet<String> {
    let mut who = HashSet::new();
    for _ in 0..n {
        let r = client.get("/").await;
        assert_eq!(r.status, 200, "{r:?}");
        who.insert(r.header("x-origin").expect("x-origin").to_owned());
    }
    who
}

fn set(names: &[&str]) -> HashSet<String> {
    names.iter().map(|s| (*s).to_owned()).collect()
}

#[tokio::test]
async fn discovery_follows_dns_answers() {
    let (a, b) = (named("a").await, named("b").await);
    let resolver = ScriptedResolver::new();
    resolver.set(NAME, &[a.addr()]);
    let server = start_with_resolver(&dns_config(), resolver.clone()).await;
    let admin = Admin::of(&server);
    let m = admin.wait_state(a.addr(), "healthy").await;
    assert_eq!(m["origin"].as_str(), Some("dns"));
    let mut client = H1::connect(server.addrs()[0].0).await;
    assert_eq!(answered_by(&mut client, 4).await, set(&["a"]));

    // A new address joins and gets traffic.
    resolver.set(NAME, &[a.addr(), b.addr()]);
    admin.wait_state(b.addr(), "healthy").await;
    assert_eq!(answered_by(&mut client, 4).await, set(&["a", "b"]));

    // A vanished address is drained, then removed once idle.
    resolver.set(NAME, &[b.addr()]);
    admin.wait_gone(a.addr()).await;
    assert_eq!(answered_by(&mut client, 4).await, set(&["b"]));

    // A failed lookup changes nothing.
    resolver.fail(NAME);
    resolver.wait_lookups(3).await;
    let all = admin.backends().await;
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(
        all[&b.addr().to_string()].1["state"].as_str(),
        Some("healthy")
    );
    assert_eq!(answered_by(&mut client, 4).await, set(&["b"]));

    // An address that comes back rejoins.
    resolver.set(NAME, &[a.addr(), b.addr()]);
    admin.wait_state(a.addr(), "healthy").await;
    assert_eq!(answered_by(&mut client, 4).await, set(&["a", "b"]));
    server.shutdown().await;
}

#[tokio::test]
async fn a_vanished_address_finishes_its_in_flight_requests_first() {
    let (release, released) = tokio::sync::oneshot::channel::<()>();
    let released = std::sync::Arc::new(tokio::sync::Mutex::new(Some(released)));
    let a = Origin::http1()
        .name("a")
        .route("/slow", move |_| {
            let released = released.clone();
            async move {
                if let Some(rx) = released.lock().await.take() {
                    let _ = rx.await;
                }
                http::Response::new(reply::full("slow done"))
            }
        })
        .route("/", reply::text(200, "ok"))
        .start()
        .await;
    let b = named("b").await;
    let resolver = ScriptedResolver::new();
    resolver.set(NAME, &[a.addr()]);
    let server = start_with_resolver(&dns_config(), resolver.clone()).await;
    let admin = Admin::of(&server);
    admin.wait_state(a.addr(), "healthy").await;

    let mut slow = H1::connect(server.addrs()[0].0).await;
    let in_flight = tokio::spawn(async move { slow.get("/slow").await });
    eventually("the slow request to reach a", || a.request_count() == 1).await;

    resolver.set(NAME, &[b.addr()]);
    let m = admin.wait_state(a.addr(), "draining").await;
    assert_eq!(m["in_flight"].as_u64(), Some(1), "{m:?}");
    // Several resolutions later, a is still there: a request is in flight.
    resolver.wait_lookups(3).await;
    assert_eq!(admin.state(a.addr()).await.as_deref(), Some("draining"));
    let mut client = H1::connect(server.addrs()[0].0).await;
    assert_eq!(answered_by(&mut client, 4).await, set(&["b"]));

    let _ = release.send(());
    let r = within("the slow request", in_flight).await.expect("join");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "slow done");
    admin.wait_gone(a.addr()).await;
    server.shutdown().await;
}
