//! No test hook reaches the binary users run.
//!
//! A Cargo feature enabled by ANY workspace member through a normal
//! dependency is unified into the `sluice` that `cargo build --release` at the
//! root (a virtual manifest: every member) or `cargo build --release
//! --workspace` builds; the README's `cargo build --release -p sluice` (what
//! the bench measures) gets only the engine's own defaults, a subset. So:
//! `sluice` declares no test feature, no member turns on a `sluice` feature
//! outside dev-dependencies, and the real binary, built with the workspace's
//! feature set ([`sluice_bin`]), forwards the header that the old `test-util`
//! hook panicked on like any other header.
//!
//! [`sluice_bin`]: sluice_e2e::harness::process::sluice_bin
//!
//! The binary is built in the dev profile (cheap in CI: no LTO build inside a
//! test). That shows the release feature set because Cargo resolves features
//! from the dependency graph, the selected packages (`--workspace`) and the
//! `--features` flags only (resolver 2 and later also leave dev-dependencies
//! out of `cargo build`); the profile (opt-level, LTO, codegen units, debug
//! info) is no input to it. `cargo build` never sets `cfg(test)` either, in
//! any profile. What differs is `debug_assertions`, which is on here and off
//! in release: a hook behind it would make this test fail, not pass.

use serde_json::Value;
use sluice_e2e::harness::client::RawConn;
use sluice_e2e::harness::origin::{Origin, reply};
use sluice_e2e::harness::process::{Sluice, cargo};
use std::collections::BTreeSet;

/// `cargo metadata --no-deps` of the workspace: its members' manifests.
fn workspace_metadata() -> Value {
    let out = cargo()
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .output()
        .expect("run cargo metadata");
    assert!(
        out.status.success(),
        "cargo metadata: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("cargo metadata prints JSON")
}

fn array<'a>(v: &'a Value, what: &str) -> &'a [Value] {
    v.as_array()
        .unwrap_or_else(|| panic!("{what} is no array: {v}"))
}

#[test]
fn sluice_has_no_test_feature_and_no_member_enables_one() {
    let meta = workspace_metadata();
    let members: BTreeSet<&str> = array(&meta["workspace_members"], "workspace_members")
        .iter()
        .map(|id| id.as_str().expect("package id"))
        .collect();
    let packages: Vec<&Value> = array(&meta["packages"], "packages")
        .iter()
        .filter(|p| members.contains(p["id"].as_str().expect("package id")))
        .collect();

    let sluice = packages
        .iter()
        .find(|p| p["name"] == "sluice")
        .expect("the engine package `sluice` is a workspace member");
    let features = sluice["features"].as_object().expect("features map");
    let test_features: Vec<&String> = features
        .keys()
        .filter(|f| f.to_ascii_lowercase().contains("test"))
        .collect();
    assert!(
        test_features.is_empty(),
        "`sluice` declares test features {test_features:?}: make the hook cfg(test)"
    );

    let mut normal_users = BTreeSet::new();
    for p in &packages {
        let member = p["name"].as_str().expect("package name");
        for dep in array(&p["dependencies"], "dependencies") {
            if dep["name"] != "sluice" {
                continue;
            }
            // `kind` is null for a normal dependency, "build" or "dev" otherwise.
            let kind = dep["kind"].as_str().unwrap_or("normal");
            let enabled = array(&dep["features"], "dependency features");
            if kind != "dev" {
                normal_users.insert(member);
                assert!(
                    enabled.is_empty(),
                    "{member} enables sluice features {enabled:?} through a {kind} \
                     dependency: every build of the workspace gets them"
                );
            }
            // A feature of the member that forwards to `sluice/…` turns it on
            // whenever that feature is on (by default, or by any `--features`).
            let key = dep["rename"].as_str().unwrap_or("sluice");
            let forwards: Vec<String> = p["features"]
                .as_object()
                .expect("features map")
                .iter()
                .flat_map(|(name, enables)| {
                    array(enables, "feature list")
                        .iter()
                        .filter_map(Value::as_str)
                        .filter(|e| {
                            e.starts_with(&format!("{key}/")) || e.starts_with(&format!("{key}?/"))
                        })
                        .map(move |e| format!("{name} = {e}"))
                })
                .collect();
            assert!(
                forwards.is_empty(),
                "{member} forwards features to sluice: {forwards:?}"
            );
        }
    }
    // Not vacuous: this very crate depends on the engine normally.
    assert!(
        normal_users.contains("sluice-e2e"),
        "no normal dependency on sluice found: {normal_users:?}"
    );
}

#[tokio::test]
async fn the_built_binary_forwards_x_sluice_test_panic_like_any_header() {
    let origin = Origin::http1()
        .route("/", reply::text(200, "from the origin"))
        .start()
        .await;
    let backend = origin.addr().to_string();
    // The README's quick use: flags only, no config file.
    let sluice = Sluice::run(["--listen", "127.0.0.1:0", "--backend", backend.as_str()]);
    let addr = sluice.listening().await;

    let mut raw = RawConn::connect(addr).await;
    raw.send(b"GET / HTTP/1.1\r\nHost: a.test\r\nX-Sluice-Test-Panic: 1\r\n\r\n")
        .await;
    let resp = raw.read_response().await;
    assert_eq!(resp.status, 200, "{}\nlog:\n{}", resp.head, sluice.log());
    assert_eq!(resp.body_str(), "from the origin");
    assert_eq!(resp.header("x-sluice-error"), None, "{}", resp.head);

    assert_eq!(origin.request_count(), 1);
    let seen = origin.last_request();
    assert_eq!(
        seen.headers
            .get("x-sluice-test-panic")
            .map(|v| v.as_bytes()),
        Some(&b"1"[..]),
        "the header reaches the origin unchanged: {:?}",
        seen.headers
    );
    assert!(
        !sluice.log().to_ascii_lowercase().contains("panic"),
        "log:\n{}",
        sluice.log()
    );
}
