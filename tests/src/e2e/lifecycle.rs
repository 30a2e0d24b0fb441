//! The real `sluice` binary: SIGTERM drains (a streaming response in flight
//! completes, new connections are refused, idle keep-alive connections are
//! closed, readiness turns false, exit 0); SIGHUP reloads; `sluice check`
//! exits 64 naming file, line, column, field and problem.

use bytes::Bytes;
use http_body::Frame;
use parking_lot::Mutex;
use sluice_e2e::harness::client::RawConn;
use sluice_e2e::harness::control::Admin;
use sluice_e2e::harness::origin::{Body, Origin, reply};
use sluice_e2e::harness::process::{Sluice, signal, sluice_bin, wait_exit};
use sluice_e2e::harness::{BoxError, eventually, within};
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::process::Command;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::mpsc;

/// A response body fed by the test, one frame per message; ends when the
/// sender is dropped.
struct ChannelBody(mpsc::Receiver<Bytes>);

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.0.poll_recv(cx).map(|o| o.map(|b| Ok(Frame::data(b))))
    }
}

/// An origin whose `/stream` answers with a body the returned sender feeds.
async fn streaming_origin() -> (Origin, mpsc::Sender<Bytes>) {
    let (tx, rx) = mpsc::channel::<Bytes>(16);
    let rx = Arc::new(Mutex::new(Some(rx)));
    let origin = Origin::http1()
        .route("/stream", move |_| {
            let rx = rx.lock().take().expect("one stream");
            let body: Body = http_body_util::BodyExt::boxed(ChannelBody(rx));
            std::future::ready(http::Response::new(body))
        })
        .route("/", reply::text(200, "small"))
        .start()
        .await;
    (origin, tx)
}

/// Waits until a reload has made `backend` a member of the proxy.
async fn wait_for_member(admin: &Admin, backend: SocketAddr) {
    within("the reload to take effect", async {
        while admin.member(backend).await.is_none() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
}

fn write_config(dir: &Path, backend: SocketAddr) -> std::path::PathBuf {
    let path = dir.join("sluice.toml");
    std::fs::write(
        &path,
        format!(
            r#"workers = 1

[[listener]]
address = "127.0.0.1:0"

[timeouts]
shutdown_grace = "20s"

[admin]
address = "127.0.0.1:0"

[upstream.default]
backends = ["{backend}"]
"#
        ),
    )
    .expect("write config");
    path
}

#[tokio::test]
async fn sigterm_lets_a_streaming_response_finish_and_refuses_new_connections() {
    let (origin, chunks) = streaming_origin().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let sluice = Sluice::start(&write_config(dir.path(), origin.addr()));
    let (addr, admin) = sluice.serving().await;

    // An idle keep-alive connection, and a streaming response in flight.
    let mut idle = RawConn::connect(addr).await;
    idle.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").await;
    let r = idle.read_response().await;
    assert_eq!((r.status, r.body_str()), (200, "small"));
    let mut stream = RawConn::connect(addr).await;
    stream
        .send(b"GET /stream HTTP/1.1\r\nHost: t\r\n\r\n")
        .await;
    chunks
        .send(Bytes::from_static(b"first "))
        .await
        .expect("send");
    let head = stream.read_head().await;
    assert_eq!(head.status, 200, "{}", head.head);
    let streaming = tokio::spawn(async move {
        // The rest of the chunked body, until the terminating chunk.
        let mut body = Vec::new();
        let (mut tcp, buf) = stream.into_stream();
        body.extend_from_slice(&buf);
        let mut chunk = [0u8; 4096];
        use tokio::io::AsyncReadExt;
        while !body.ends_with(b"0\r\n\r\n") {
            let n = tcp.read(&mut chunk).await.expect("read stream");
            assert!(n > 0, "stream cut: {:?}", String::from_utf8_lossy(&body));
            body.extend_from_slice(&chunk[..n]);
        }
        dechunk(&body)
    });

    signal(sluice.child.id(), "TERM");

    // Readiness turns false at once; the admin API still answers.
    within("readyz to turn 503", async {
        while admin.get("/readyz").await.status != 503 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    // New connections are refused.
    within("the listener to close", async {
        while tokio::net::TcpStream::connect(addr).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    // The idle keep-alive connection is closed.
    let rest = within("the idle connection to close", idle.read_to_eof()).await;
    assert!(rest.is_empty(), "{:?}", String::from_utf8_lossy(&rest));

    // The stream is still going: feed it to the end.
    for part in ["second ", "third ", "last"] {
        chunks.send(Bytes::from(part)).await.expect("send");
    }
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "accepting again while draining"
    );
    drop(chunks);
    let body = within("the stream to complete", streaming)
        .await
        .expect("join");
    assert_eq!(body, "first second third last");

    let mut sluice = sluice;
    let status = wait_exit(&mut sluice.child).await;
    assert_eq!(status.code(), Some(0), "log:\n{}", sluice.log());
}

/// Decodes a complete chunked body.
fn dechunk(mut wire: &[u8]) -> String {
    let mut out = Vec::new();
    loop {
        let eol = wire
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("chunk size line");
        let size =
            usize::from_str_radix(std::str::from_utf8(&wire[..eol]).expect("ascii").trim(), 16)
                .expect("hex size");
        wire = &wire[eol + 2..];
        if size == 0 {
            return String::from_utf8(out).expect("utf-8");
        }
        out.extend_from_slice(&wire[..size]);
        assert_eq!(&wire[size..size + 2], b"\r\n");
        wire = &wire[size + 2..];
    }
}

#[tokio::test]
async fn sighup_reloads_the_config_file() {
    let a = Origin::echoing_name("a").await;
    let b = Origin::echoing_name("b").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write_config(dir.path(), a.addr());
    let sluice = Sluice::start(&path);
    let (addr, admin) = sluice.serving().await;

    // A broken file: logged, and the old config keeps serving.
    std::fs::write(&path, "workers = 0\n").expect("write");
    signal(sluice.child.id(), "HUP");
    eventually("the rejected reload to be logged", || {
        sluice.log().contains("reload rejected")
    })
    .await;
    let mut conn = RawConn::connect(addr).await;
    conn.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").await;
    assert_eq!(conn.read_response().await.body_str(), "a");

    write_config(dir.path(), b.addr());
    signal(sluice.child.id(), "HUP");
    wait_for_member(&admin, b.addr()).await;
    conn.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").await;
    assert_eq!(conn.read_response().await.body_str(), "b");
}

#[tokio::test]
async fn a_reload_keeps_the_backends_given_by_flags() {
    let a = Origin::echoing_name("a").await;
    let b = Origin::echoing_name("b").await;
    let c = Origin::echoing_name("c").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write_config(dir.path(), a.addr());
    let sluice = Sluice::start_with(&path, &["--backend".into(), b.addr().to_string()]);
    let (addr, admin) = sluice.serving().await;
    assert!(admin.member(a.addr()).await.is_some());
    assert!(admin.member(b.addr()).await.is_some(), "--backend at start");

    // The file now names c instead of a; the flag's b must stay.
    write_config(dir.path(), c.addr());
    signal(sluice.child.id(), "HUP");
    wait_for_member(&admin, c.addr()).await;
    assert!(
        admin.member(a.addr()).await.is_none(),
        "a left with the file"
    );
    assert!(
        admin.member(b.addr()).await.is_some(),
        "--backend kept across the reload"
    );
    let mut seen = std::collections::BTreeSet::new();
    let mut conn = RawConn::connect(addr).await;
    for _ in 0..4 {
        conn.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").await;
        seen.insert(conn.read_response().await.body_str().to_owned());
    }
    assert_eq!(seen.into_iter().collect::<Vec<_>>(), ["b", "c"]);
}

#[tokio::test]
async fn check_exits_64_naming_file_line_column_field_and_problem() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[[listener]]\naddress = \"127.0.0.1:0\"\n\n[upstream.default]\nbackends = [\"127.0.0.1:1\"]\nbalance = \"sideways\"\n",
    )
    .expect("write");
    let out = Command::new(sluice_bin())
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .expect("run sluice check");
    assert_eq!(out.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let expected = format!("{}:6:11: upstream.default.balance: ", path.display());
    assert!(
        stderr.contains(&expected) && stderr.contains("sideways"),
        "stderr: {stderr}"
    );

    let good = dir.path().join("good.toml");
    std::fs::write(
        &good,
        "[[listener]]\naddress = \"127.0.0.1:0\"\n\n[upstream.default]\nbackends = [\"127.0.0.1:1\"]\n",
    )
    .expect("write");
    let out = Command::new(sluice_bin())
        .args(["check", "--config"])
        .arg(&good)
        .output()
        .expect("run sluice check");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
}
