//! One address, one owner: two listeners on one address are a config error
//! (`sluice check` exits 64 naming the second); a `sluice` whose address
//! another process listens on (with SO_REUSEPORT, as a running sluice does)
//! refuses to start with "address in use" naming it, and a reload adding
//! such a listener is rejected the same way, unless the listener says
//! `share_port = true`. Config type errors name their field.

use http::Method;
use sluice_e2e::harness::control::Admin;
use sluice_e2e::harness::origin::{Origin, reply};
use sluice_e2e::harness::process::{Sluice, run_to_exit, sluice_bin};
use sluice_e2e::harness::proxy::Proxy;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;

/// Listens on a free loopback port with one SO_REUSEPORT socket, exactly as
/// a running sluice does; the port is held while the result lives.
fn hold_a_port() -> (SocketAddr, sluice::Bound) {
    let config = sluice::Config::simple(([127, 0, 0, 1], 0).into(), &[]);
    let held = sluice::bind(&config).expect("bind the holder");
    (held.addrs()[0].0, held)
}

/// A config listening on `listeners` (each `(address, share_port)`), with
/// an admin API on port 0 and every path routed to `backend`.
fn file(listeners: &[(String, bool)], backend: SocketAddr) -> String {
    let mut text = "workers = 2\n".to_owned();
    for (address, share) in listeners {
        text.push_str(&format!(
            "\n[[listener]]\naddress = \"{address}\"\nshare_port = {share}\n"
        ));
    }
    text.push_str(&format!(
        "\n[admin]\naddress = \"127.0.0.1:0\"\n\n[upstream.default]\nbackends = [\"{backend}\"]\n"
    ));
    text
}

/// Writes `text` as `dir/sluice.toml` and runs `sluice check` on it:
/// the file's path as messages show it, the exit code and stderr.
fn check(dir: &Path, text: &str) -> (String, Option<i32>, String) {
    let path = dir.join("sluice.toml");
    std::fs::write(&path, text).expect("write config");
    let out = Command::new(sluice_bin())
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .expect("run sluice check");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (path.display().to_string(), out.status.code(), stderr)
}

#[tokio::test]
async fn check_rejects_two_listeners_on_one_address_and_names_the_second() {
    let dir = tempfile::tempdir().expect("tempdir");
    let backend: SocketAddr = "127.0.0.1:1".parse().expect("addr");
    let twice = "127.0.0.1:18080".to_owned();
    let listeners = [(twice.clone(), false), (twice.clone(), false)];
    let (path, code, stderr) = check(dir.path(), &file(&listeners, backend));
    assert_eq!(code, Some(64), "{stderr}");
    // Line 8 is the second listener's address, column 11 its value.
    let expected =
        format!("{path}:8:11: listener[1].address: {twice} is already the address of listener[0]");
    assert!(stderr.contains(&expected), "stderr: {stderr}");

    // Port 0 may repeat: each such listener gets its own port.
    let zero = ("127.0.0.1:0".to_owned(), false);
    let (_, code, stderr) = check(dir.path(), &file(&[zero.clone(), zero], backend));
    assert_eq!(code, Some(0), "{stderr}");
}

#[tokio::test]
async fn check_names_the_field_of_a_value_of_the_wrong_type() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = "[[listener]]\naddress = \"127.0.0.1:0\"\nshare_port = \"yes\"\n";
    let (path, code, stderr) = check(dir.path(), text);
    assert_eq!(code, Some(64), "{stderr}");
    let expected = format!(
        "{path}:3:14: listener[0].share_port: invalid type: string \"yes\", expected a boolean"
    );
    assert!(stderr.contains(&expected), "stderr: {stderr}");
}

#[tokio::test]
async fn a_second_sluice_on_a_held_port_fails_unless_the_listener_shares_it() {
    let (held, _holder) = hold_a_port();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("sluice.toml");
    let backend: SocketAddr = "127.0.0.1:1".parse().expect("addr");

    std::fs::write(&path, file(&[(held.to_string(), false)], backend)).expect("write config");
    let (status, stderr) = run_to_exit(["--config".as_ref(), path.as_os_str()]).await;
    assert!(
        !status.success(),
        "started on a held port; stderr: {stderr}"
    );
    assert!(
        stderr.contains(&format!("cannot listen on {held}: address in use")),
        "stderr: {stderr}"
    );

    // Asked to share, it starts and listens on the same port.
    std::fs::write(&path, file(&[(held.to_string(), true)], backend)).expect("write config");
    let sharing = Sluice::start(&path);
    assert_eq!(sharing.logged_addr(" listening").await, held);
}

#[tokio::test]
async fn a_reload_adding_a_listener_on_a_held_port_fails_unless_it_shares_it() {
    let (held, _holder) = hold_a_port();
    let origin = Origin::http1()
        .route("/", reply::text(200, "ok"))
        .start()
        .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("sluice.toml");
    let zero = ("127.0.0.1:0".to_owned(), false);
    std::fs::write(&path, file(std::slice::from_ref(&zero), origin.addr())).expect("write config");
    let config = sluice::Config::load(&path).expect("valid config");
    let proxy = Proxy::start(&config).await;
    let admin = Admin::of(proxy.server());
    let running = proxy.addr();

    let listeners = [(running.to_string(), false), (held.to_string(), false)];
    std::fs::write(&path, file(&listeners, origin.addr())).expect("write config");
    let r = admin.call(Method::POST, "/reload", None).await;
    assert_eq!(r.status, 422, "{}", r.text);
    assert!(
        r.error()
            .contains(&format!("cannot listen on {held}: address in use")),
        "{}",
        r.error()
    );
    let addrs: Vec<SocketAddr> = proxy.server().addrs().iter().map(|a| a.0).collect();
    assert_eq!(
        addrs,
        vec![running],
        "the rejected reload changed listeners"
    );

    let listeners = [(running.to_string(), false), (held.to_string(), true)];
    std::fs::write(&path, file(&listeners, origin.addr())).expect("write config");
    let r = admin.call(Method::POST, "/reload", None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let addrs: Vec<SocketAddr> = proxy.server().addrs().iter().map(|a| a.0).collect();
    assert_eq!(addrs, vec![running, held]);
    proxy.shutdown().await;
}
