//! The real `sluice` binary configured from the environment only
//! (`config::env`): no command-line flag at all, the flags' own variables
//! and `SLUICE_<SECTION>__<KEY>` ones; an overlay value beats the file's,
//! and survives a reload; a typo stops the start naming the variable.

use sluice_e2e::harness::client::RawConn;
use sluice_e2e::harness::control::Admin;
use sluice_e2e::harness::origin::Origin;
use sluice_e2e::harness::process::{Sluice, run_to_exit_env, signal, sluice_bin};
use sluice_e2e::harness::within;
use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

/// `GET /` through the proxy: status, body and `X-Sluice-Backend`.
async fn get(addr: SocketAddr) -> (u16, String, Option<String>) {
    let mut c = RawConn::connect(addr).await;
    c.send(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .await;
    let r = c.read_response().await;
    let backend = r.header("x-sluice-backend").map(str::to_owned);
    (r.status, r.body_str().to_owned(), backend)
}

#[tokio::test]
async fn the_environment_alone_configures_a_serving_proxy() {
    let origin = Origin::echoing_name("env-origin").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "s3cret-token\n").expect("write token");
    let backends = format!("[\"{}\"]", origin.addr());
    let sluice = Sluice::run_env(
        std::iter::empty::<&str>(),
        &[
            ("SLUICE_LISTENER__0__ADDRESS", "127.0.0.1:0"),
            ("SLUICE_WORKERS", "1"),
            ("SLUICE_ADMIN__ADDRESS", "127.0.0.1:0"),
            ("SLUICE_ADMIN_TOKEN_FILE", token_file.to_str().unwrap()),
            ("SLUICE_UPSTREAM__DEFAULT__BACKENDS", &backends),
            ("SLUICE_FORWARDING__BACKEND_HEADER", "true"),
            ("SLUICE_TIMEOUTS__UPSTREAM_CONNECT", "2s"),
        ],
    );
    let (addr, admin) = sluice.serving().await;
    let (status, body, backend) = get(addr).await;
    assert_eq!((status, body.as_str()), (200, "env-origin"));
    assert_eq!(backend, Some(origin.addr().to_string()));
    // The token came from SLUICE_ADMIN_TOKEN_FILE: state needs it.
    assert_eq!(admin.get("/backends").await.status, 401);
    let admin = Admin::new(admin_addr(&sluice).await).with_token("s3cret-token");
    assert_eq!(admin.get("/backends").await.status, 200);
}

async fn admin_addr(sluice: &Sluice) -> SocketAddr {
    sluice.logged_addr("admin API listening").await
}

#[tokio::test]
async fn a_variable_beats_the_file_and_still_does_after_a_reload() {
    let (a, b) = (
        Origin::echoing_name("file").await,
        Origin::echoing_name("env").await,
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("sluice.toml");
    let file = |extra: &str| {
        format!(
            "workers = 1\n{extra}\n[[listener]]\naddress = \"127.0.0.1:0\"\n\n[admin]\naddress = \"127.0.0.1:0\"\n\n\
             [upstream.default]\nbackends = [\"{}\"]\n",
            a.addr()
        )
    };
    std::fs::write(&path, file("")).expect("write config");
    let backends = format!("[\"{}\"]", b.addr());
    let sluice = Sluice::run_env(
        std::iter::empty::<&str>(),
        &[
            ("SLUICE_CONFIG", path.to_str().unwrap()),
            ("SLUICE_UPSTREAM__DEFAULT__BACKENDS", &backends),
        ],
    );
    let (addr, _admin) = sluice.serving().await;
    let (status, body, backend) = get(addr).await;
    assert_eq!((status, body.as_str(), backend), (200, "env", None));

    // The file changes (a header on); the reload reads it again and sets
    // the variable in it again: still the variable's backend.
    std::fs::write(
        &path,
        file("access_log = true\n[forwarding]\nbackend_header = true\n"),
    )
    .expect("rewrite config");
    signal(sluice.child.id(), "HUP");
    within("the reload to take effect", async {
        loop {
            let (status, body, backend) = get(addr).await;
            assert_eq!((status, body.as_str()), (200, "env"));
            if backend.is_some() {
                assert_eq!(backend, Some(b.addr().to_string()));
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn a_misspelt_variable_stops_the_start_naming_it() {
    let (status, stderr) = run_to_exit_env(
        std::iter::empty::<&str>(),
        &[
            ("SLUICE_LISTENER__0__ADDRESS", "127.0.0.1:0"),
            ("SLUICE_TIMEOUTS__UPSTREAM_CONECT", "2s"),
        ],
    )
    .await;
    assert_eq!(status.code(), Some(64), "{stderr}");
    assert!(
        stderr.contains("SLUICE_TIMEOUTS__UPSTREAM_CONECT") && stderr.contains("unknown field"),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_flag_beats_its_variable() {
    let origin = Origin::echoing_name("flag").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("sluice.toml");
    std::fs::write(
        &path,
        format!(
            "workers = 1\n[[listener]]\naddress = \"127.0.0.1:0\"\n\n[upstream.default]\nbackends = [\"{}\"]\n",
            origin.addr()
        ),
    )
    .expect("write config");
    // SLUICE_GZIP=99 alone is refused (1..=9); the flag's value wins over it.
    let out = Command::new(sluice_bin())
        .args(["check"])
        .env("SLUICE_CONFIG", &path)
        .output()
        .expect("run sluice check");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let sluice = Sluice::run_env(
        ["--gzip", "5"],
        &[
            ("SLUICE_CONFIG", path.to_str().unwrap()),
            ("SLUICE_GZIP", "99"),
        ],
    );
    let addr = sluice.listening().await;
    assert_eq!(get(addr).await.0, 200);
    let (status, stderr) = run_to_exit_env(
        std::iter::empty::<&str>(),
        &[
            ("SLUICE_CONFIG", path.to_str().unwrap()),
            ("SLUICE_GZIP", "99"),
        ],
    )
    .await;
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("99"), "{stderr}");
}
