//! Large groups (issue 14, finding 4): a change to a group of thousands of
//! backends is built off the workers in linear time, so a passive ejection
//! does not stall the worker's other requests; a hash ring at the weight cap
//! stays within its memory bound; and the caps themselves are refused with
//! the field named by `sluice check`, at start, by reload and by the admin
//! API.

use super::admin::with_admin;
use http::{Method, Request};
use sluice::addr::BackendAddr;
use sluice::balance::Policy;
use sluice::config::RouteConfig;
use sluice::config::defaults::{MAX_GROUP_BACKENDS, MAX_WEIGHT};
use sluice_e2e::harness::client::{H1, collect};
use sluice_e2e::harness::control::Admin;
use sluice_e2e::harness::memory::{PeakGrowth, status_kib};
use sluice_e2e::harness::origin::{Origin, reply};
use sluice_e2e::harness::process::sluice_bin;
use sluice_e2e::harness::proxy::Proxy;
use sluice_e2e::harness::{isolate, within};
use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

/// Backends in the large group, nearly all of them refusing connections.
const GROUP: usize = 3_000;
/// Of those, at the weight cap: enough for the old, uncapped ring to take
/// 4.4 million points (70 MB) and its round-robin table 200 million steps.
const HEAVY: usize = 60;
/// The ring is at most 8 MiB; old and new coexist while a rebuild swaps,
/// and the allocator keeps a freed ring for the next. The old, uncapped
/// ring alone was 70 MB here.
const MAX_GROWTH_MIB: u64 = 48;

async fn named(name: &'static str) -> Origin {
    Origin::http1()
        .name(name)
        .route("/", reply::text(200, name))
        .start()
        .await
}

/// An address on loopback where nothing listens: connecting is refused.
fn dead(i: usize) -> SocketAddr {
    let (a, b, c) = (1 + i / 62_500, (i / 250) % 250, i % 250 + 1);
    ([127, a as u8, b as u8, c as u8], 1).into()
}

#[test]
fn a_passive_ejection_in_a_group_of_thousands_keeps_the_worker_serving() {
    let out = isolate::run(
        "large_groups::thousands_of_backends_alone_in_a_child_process",
        Duration::from_secs(600),
    );
    eprintln!("{out}");
}

/// Runs only in the isolated child (its RSS is the proxy's).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_backends_alone_in_a_child_process() {
    if !isolate::is_child() {
        return;
    }
    let (live, other) = (named("live").await, named("other").await);
    let mut c = with_admin(&[live.addr()]);
    c.workers = 1; // the ejecting request and the unrelated ones share it
    let big = &mut c.upstreams[0];
    big.backends[0].1 = MAX_WEIGHT;
    big.backends.extend((1..GROUP).map(|i| {
        let weight = if i < HEAVY {
            MAX_WEIGHT - i as u32 % 7
        } else {
            1
        };
        (BackendAddr(dead(i)), weight)
    }));
    big.policy = Policy::parse("hash:header:x-key").expect("policy");
    big.passive.consecutive_5xx = 1;
    big.passive.ejection = Duration::from_secs(3600);
    big.passive.max_ejected_percent = 100;
    let mut unrelated = big.clone();
    unrelated.name = "other".into();
    unrelated.backends = vec![(BackendAddr(other.addr()), 1)];
    c.upstreams.push(unrelated);
    c.routes.push(RouteConfig {
        name: None,
        host: None,
        path: "/other".into(),
        upstream: 1,
        compress: None,
        retry: None,
        max_request_body: None,
        timeout: None,
    });

    let memory = PeakGrowth::start();
    let base = status_kib("VmRSS").expect("VmRSS");
    let proxy = Proxy::start(&c).await;
    // Early, so that a proxy that built a huge ring fails here, not after
    // rebuilding it once per ejection.
    let started = status_kib("VmRSS").expect("VmRSS").saturating_sub(base) / 1024;
    assert!(started <= MAX_GROWTH_MIB, "RSS grew {started} MiB at start");
    let admin = Admin::of(proxy.server());
    let mut client = H1::connect(proxy.addr()).await;
    let mut unrelated_served = 0;

    // Keys land on dead backends (502, and each such backend is ejected) or
    // on the live one (200). Between any two, an unrelated request.
    let mut ejected_key = None;
    for k in 0..200 {
        let r = get(&mut client, "/big", Some(k)).await;
        assert!(r.0 == 200 || r.0 == 502, "key {k}: {}", r.0);
        if r.0 == 502 && ejected_key.is_none() {
            ejected_key = Some(k);
        }
        let r = within("an unrelated request", get(&mut client, "/other/x", None)).await;
        assert_eq!(r, (200, "other".to_owned()), "unrelated request {k}");
        unrelated_served += 1;
    }
    let k = ejected_key.expect("some key landed on a dead backend");
    // Measured before the admin API's JSON of 3,000 members is built.
    let growth = memory.finish();

    // The admin API shows the ejections, and an ejected backend is out of
    // rotation: the key that failed on it is sent elsewhere from now on.
    let members = admin.backends().await;
    let ejected: Vec<&serde_json::Value> = members
        .values()
        .filter(|(g, m)| g == "default" && m["state"].as_str() == Some("ejected"))
        .map(|(_, m)| m)
        .collect();
    assert!(!ejected.is_empty(), "no backend was ejected");
    let attempts = |m: &serde_json::Value| m["requests"].as_u64().expect("requests");
    let before: Vec<(String, u64)> = ejected
        .iter()
        .map(|m| {
            (
                m["address"].as_str().expect("address").to_owned(),
                attempts(m),
            )
        })
        .collect();
    // A new connection: building that JSON can outlast the keep-alive idle
    // timeout on a loaded machine, which would close the old one.
    let mut client = H1::connect(proxy.addr()).await;
    for _ in 0..5 {
        get(&mut client, "/big", Some(k)).await;
    }
    let after = admin.backends().await;
    for (addr, n) in &before {
        assert_eq!(
            attempts(&after[addr].1),
            *n,
            "{addr} got a request while ejected"
        );
    }
    assert_eq!(unrelated_served, 200);

    eprintln!("peak RSS growth: {growth} MiB; {} ejected", before.len());
    assert!(growth <= MAX_GROWTH_MIB, "RSS grew {growth} MiB");
}

/// `GET path` with an optional `x-key`; the status and the body.
async fn get(client: &mut H1, path: &str, key: Option<u32>) -> (u16, String) {
    let mut req = Request::get(path).header("host", "t");
    if let Some(k) = key {
        req = req.header("x-key", k.to_string());
    }
    let r = collect(
        client
            .send(req.body(reply::empty()).expect("request"))
            .await,
    )
    .await;
    (r.status.as_u16(), r.text().to_owned())
}

/// A config whose one group lists `n` backends, the second with `weight`.
fn config_with(n: usize, weight: u32) -> String {
    let mut list: Vec<String> = (0..n).map(|i| format!("\"{}\"", dead(i))).collect();
    if n > 1 {
        list[1] = format!("{{ address = \"{}\", weight = {weight} }}", dead(1));
    }
    format!(
        "[[listener]]\naddress = \"127.0.0.1:0\"\n\n[upstream.big]\nbackends = [{}]\n",
        list.join(", ")
    )
}

/// `sluice <command> --config <text>`: the exit code and stderr.
fn run(command: Option<&str>, text: &str) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("big.toml");
    std::fs::write(&path, text).expect("write config");
    let out = Command::new(sluice_bin())
        .args(command)
        .arg("--config")
        .arg(&path)
        .output()
        .expect("run sluice");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_and_start_refuse_a_group_over_the_caps_naming_the_field() {
    let (code, stderr) = run(Some("check"), &config_with(MAX_GROUP_BACKENDS + 1, 1));
    assert_eq!(code, Some(64), "{stderr}");
    assert!(
        stderr.contains("upstream.big.backends: 100001 entries; at most 100000 are allowed"),
        "{stderr}"
    );
    // Starting is refused the same way, before anything is bound.
    let (code, stderr) = run(None, &config_with(MAX_GROUP_BACKENDS + 1, 1));
    assert_eq!(code, Some(64), "{stderr}");
    assert!(
        stderr.contains("upstream.big.backends: 100001 entries"),
        "{stderr}"
    );

    let (code, stderr) = run(Some("check"), &config_with(3, MAX_WEIGHT + 1));
    assert_eq!(code, Some(64), "{stderr}");
    assert!(
        stderr.contains("upstream.big.backends[1].weight: must be between 1 and 10000"),
        "{stderr}"
    );

    // At the caps, it passes.
    let (code, stderr) = run(Some("check"), &config_with(MAX_GROUP_BACKENDS, MAX_WEIGHT));
    assert_eq!(code, Some(0), "{stderr}");
}

#[tokio::test]
async fn a_reload_over_the_cap_is_refused_and_the_old_config_serves() {
    let a = named("a").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("sluice.toml");
    let good = format!(
        "workers = 1\n[[listener]]\naddress = \"127.0.0.1:0\"\n[admin]\naddress = \"127.0.0.1:0\"\n[upstream.big]\nbackends = [\"{}\"]\n",
        a.addr()
    );
    std::fs::write(&path, &good).expect("write config");
    let proxy = Proxy::start(&sluice::Config::load(&path).expect("valid")).await;
    let admin = Admin::of(proxy.server());

    std::fs::write(&path, config_with(MAX_GROUP_BACKENDS + 1, 1)).expect("write config");
    let r = admin.call(Method::POST, "/reload", None).await;
    assert_eq!(r.status, 422, "{}", r.text);
    assert!(
        r.error().contains("upstream.big.backends: 100001 entries"),
        "{}",
        r.error()
    );
    let mut client = H1::connect(proxy.addr()).await;
    assert_eq!(client.get("/").await.header("x-origin"), Some("a"));
}

#[tokio::test]
async fn the_admin_api_refuses_a_backend_past_the_group_cap() {
    let a = named("a").await;
    let mut c = with_admin(&[a.addr()]);
    c.upstreams[0]
        .backends
        .extend((1..MAX_GROUP_BACKENDS).map(|i| (BackendAddr(dead(i)), 1)));
    let proxy = Proxy::start(&c).await;
    let admin = Admin::of(proxy.server());

    let extra = named("extra").await;
    let body = serde_json::json!({"group": "default", "address": extra.addr().to_string()});
    let r = admin
        .call(Method::POST, "/backends", Some(&body.to_string()))
        .await;
    assert_eq!(r.status, 409, "{}", r.text);
    assert!(
        r.error().contains("already has 100000 backends"),
        "{}",
        r.error()
    );

    // Once one leaves, there is room again: 201, so the refused one had
    // not been added (that would answer 200).
    admin.unregister(dead(1)).await;
    let r = admin
        .call(Method::POST, "/backends", Some(&body.to_string()))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
}
