//! The PEM files a config names are checked the way TLS will use them, by
//! `sluice check`, at start and on reload (issue 14, finding 5): a key that
//! is not its certificate's (a rotation where the key lags), a certificate
//! file that is not PEM, and an upstream CA file that holds no certificate
//! are refused with the field and file named, instead of passing and then
//! failing every handshake (or the start). A rejected reload keeps the old
//! certificate serving.

use http::Method;
use hyper_util::rt::TokioIo;
use sluice_e2e::harness::certs::TestCerts;
use sluice_e2e::harness::client::{H1, tls_connect};
use sluice_e2e::harness::origin::{Origin, reply};
use sluice_e2e::harness::process::{self, Sluice, sluice_bin};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A config with one TLS listener on port 0 serving `cert` and `key`, an
/// admin API, and every path routed to `backend`; `extra` is appended.
fn file(cert: &Path, key: &Path, backend: SocketAddr, extra: &str) -> String {
    format!(
        r#"workers = 1

[[listener]]
address = "127.0.0.1:0"
[[listener.tls]]
cert = {cert:?}
key = {key:?}

[timeouts]
shutdown_grace = "1s"

[admin]
address = "127.0.0.1:0"

[upstream.default]
backends = ["{backend}"]
{extra}
"#,
        cert = cert.display().to_string(),
        key = key.display().to_string(),
    )
}

/// Writes `text` as `dir/sluice.toml`.
fn write_config(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("sluice.toml");
    std::fs::write(&path, text).expect("write config");
    path
}

/// `sluice check --config path`: the exit code and stderr.
fn check(path: &Path) -> (Option<i32>, String) {
    let out = Command::new(sluice_bin())
        .args(["check", "--config"])
        .arg(path)
        .output()
        .expect("run sluice check");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `sluice args…`, which must exit by itself: its exit code and stderr.
async fn run_to_exit(args: &[&std::ffi::OsStr]) -> (Option<i32>, String) {
    let (status, stderr) = process::run_to_exit(args).await;
    (status.code(), stderr)
}

fn not_pem(dir: &Path) -> PathBuf {
    let path = dir.join("cert.der");
    // What `openssl x509 -outform der` writes starts like this: DER, not PEM.
    std::fs::write(
        &path,
        b"\x30\x82\x03\x1a\x30\x82\x02\x02\xa0\x03\x02\x01\x02",
    )
    .expect("write");
    path
}

#[tokio::test]
async fn check_refuses_a_mismatched_pair_a_non_pem_certificate_and_a_ca_file_without_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, b) = (TestCerts::generate(), TestCerts::generate());
    let backend: SocketAddr = "127.0.0.1:1".parse().expect("addr");

    let path = write_config(dir.path(), &file(&a.cert, &a.key, backend, ""));
    assert_eq!(check(&path), (Some(0), String::new()), "a matching pair");

    // b's key with a's certificate: line 7 is `key = …`.
    let path = write_config(dir.path(), &file(&a.cert, &b.key, backend, ""));
    let (code, stderr) = check(&path);
    assert_eq!(code, Some(64), "stderr: {stderr}");
    assert!(
        stderr.contains(&format!(
            "{}:7:7: listener[0].tls[0].key: {}: the private key does not match the certificate in {}",
            path.display(),
            b.key.display(),
            a.cert.display()
        )),
        "stderr: {stderr}"
    );

    let der = not_pem(dir.path());
    let path = write_config(dir.path(), &file(&der, &a.key, backend, ""));
    let (code, stderr) = check(&path);
    assert_eq!(code, Some(64), "stderr: {stderr}");
    assert!(
        stderr.contains(&format!(
            "{}:6:8: listener[0].tls[0].cert: {}: no certificate",
            path.display(),
            der.display()
        )),
        "stderr: {stderr}"
    );

    // An upstream's extra CA: a key file where the certificate should be.
    let ca = format!("tls = true\nca_file = {:?}\n", a.key.display().to_string());
    let path = write_config(dir.path(), &file(&a.cert, &a.key, backend, &ca));
    let (code, stderr) = check(&path);
    assert_eq!(code, Some(64), "stderr: {stderr}");
    assert!(
        stderr.contains("upstream.default.ca_file: ")
            && stderr.contains(&format!("{}: no certificate", a.key.display())),
        "stderr: {stderr}"
    );
}

#[tokio::test]
async fn start_refuses_a_mismatched_pair_and_a_non_pem_certificate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, b) = (TestCerts::generate(), TestCerts::generate());
    let backend: SocketAddr = "127.0.0.1:1".parse().expect("addr");

    let path = write_config(dir.path(), &file(&a.cert, &b.key, backend, ""));
    let (code, stderr) = run_to_exit(&["--config".as_ref(), path.as_os_str()]).await;
    assert_eq!(code, Some(64), "stderr: {stderr}");
    assert!(
        stderr.contains("listener[0].tls[0].key: ") && stderr.contains("does not match"),
        "stderr: {stderr}"
    );

    let der = not_pem(dir.path());
    let path = write_config(dir.path(), &file(&der, &a.key, backend, ""));
    let (code, stderr) = run_to_exit(&["--config".as_ref(), path.as_os_str()]).await;
    assert_eq!(code, Some(64), "stderr: {stderr}");
    assert!(
        stderr.contains("listener[0].tls[0].cert: ") && stderr.contains("no certificate"),
        "stderr: {stderr}"
    );

    // The same pair given by flags.
    let (code, stderr) = run_to_exit(&[
        "--tls-listen".as_ref(),
        "127.0.0.1:0".as_ref(),
        "--cert".as_ref(),
        a.cert.as_os_str(),
        "--key".as_ref(),
        b.key.as_os_str(),
        "--backend".as_ref(),
        "127.0.0.1:1".as_ref(),
    ])
    .await;
    assert_eq!(code, Some(64), "stderr: {stderr}");
    assert!(
        stderr.contains("--key: ") && stderr.contains("does not match"),
        "stderr: {stderr}"
    );
}

#[tokio::test]
async fn a_reload_with_a_mismatched_pair_or_a_non_pem_certificate_keeps_the_old_one_serving() {
    let origin = Origin::http1()
        .route("/", reply::text(200, "ok"))
        .start()
        .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, b) = (TestCerts::generate(), TestCerts::generate());
    // The listener's files, rotated in place as an operator would.
    let (cert, key) = (dir.path().join("tls.pem"), dir.path().join("tls.key"));
    std::fs::copy(&a.cert, &cert).expect("copy cert");
    std::fs::copy(&a.key, &key).expect("copy key");
    let path = write_config(dir.path(), &file(&cert, &key, origin.addr(), ""));
    let sluice = Sluice::start(&path);
    let (addr, admin) = sluice.serving().await;
    let h1 = [&b"http/1.1"[..]];
    let serves_a = || async {
        let (tls, _) = tls_connect(addr, a.client_config(&h1), "localhost")
            .await
            .expect("a handshake with the first certificate");
        H1::handshake(TokioIo::new(tls)).await.get("/").await.status
    };
    assert_eq!(serves_a().await, 200);

    // The new certificate is in place, its key not yet.
    std::fs::copy(&b.cert, &cert).expect("rotate cert");
    let r = admin.call(Method::POST, "/reload", None).await;
    assert_eq!(r.status, 422, "{}", r.text);
    let error = r.error();
    assert!(
        error.contains(&key.display().to_string())
            && error.contains(&cert.display().to_string())
            && error.contains("does not match"),
        "{error}"
    );
    // The old certificate is still served (it was loaded at start).
    assert_eq!(serves_a().await, 200);

    // A certificate file that is not PEM.
    std::fs::write(&cert, b"\x30\x82\x03\x1a not PEM").expect("write");
    let r = admin.call(Method::POST, "/reload", None).await;
    assert_eq!(r.status, 422, "{}", r.text);
    assert!(
        r.error().contains(&cert.display().to_string()) && r.error().contains("no certificate"),
        "{}",
        r.error()
    );
    assert_eq!(serves_a().await, 200);

    // The whole rotation goes through.
    std::fs::copy(&b.cert, &cert).expect("rotate cert");
    std::fs::copy(&b.key, &key).expect("rotate key");
    let r = admin.call(Method::POST, "/reload", None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let (tls, _) = tls_connect(addr, b.client_config(&h1), "localhost")
        .await
        .expect("a handshake with the rotated certificate");
    assert_eq!(
        H1::handshake(TokioIo::new(tls)).await.get("/").await.status,
        200
    );
}
