//! Zero-downtime upgrade of the proxy itself (`[upgrade] socket`,
//! `sluice --takeover`; `lifecycle::handover`), over real processes: under
//! load no request fails; connections waiting in the accept queue at the
//! switch are served by the successor, where rebinding the port with
//! SO_REUSEPORT resets them; a failed takeover leaves the old process
//! serving. (`upgrade.rs` is HTTP Upgrade, not this.)

use parking_lot::Mutex;
use sluice_e2e::harness::control::Admin;
use sluice_e2e::harness::origin::{Origin, reply};
use sluice_e2e::harness::process::{Sluice, run_to_exit, signal, wait_exit};
use sluice_e2e::harness::{eventually, within};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const BODY: &str = "slow-ok";

/// A backend slow enough that requests are in flight at the switch.
async fn slow_origin() -> Origin {
    Origin::http1()
        .route(
            "/slow",
            reply::delayed(Duration::from_millis(15), reply::text(200, BODY)),
        )
        .route("/", reply::text(200, BODY))
        .start()
        .await
}

/// A config with the upgrade socket in `dir`, `workers` SO_REUSEPORT
/// sockets per listener; `listener` is the `[[listener]]` body.
fn write_config(
    dir: &Path,
    name: &str,
    backend: SocketAddr,
    workers: usize,
    listener: &str,
) -> PathBuf {
    let path = dir.join(name);
    let socket = dir.join("upgrade.sock");
    std::fs::write(
        &path,
        format!(
            r#"workers = {workers}

[[listener]]
{listener}

[timeouts]
shutdown_grace = "20s"

[admin]
address = "127.0.0.1:0"

[upgrade]
socket = "{}"

[upstream.default]
backends = ["{backend}"]
"#,
            socket.display()
        ),
    )
    .expect("write config");
    path
}

/// A slow origin, a config in a temporary directory, and the old process
/// (`old`) serving it.
struct Running {
    origin: Origin,
    dir: tempfile::TempDir,
    config: PathBuf,
    old: Sluice,
    addr: SocketAddr,
    admin: Admin,
}

async fn running(workers: usize, listener: &str) -> Running {
    let origin = slow_origin().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path(), "sluice.toml", origin.addr(), workers, listener);
    let old = Sluice::start_with(&config, &flags("old", false));
    let (addr, admin) = old.serving().await;
    Running {
        origin,
        dir,
        config,
        old,
        addr,
        admin,
    }
}

const ANY_PORT: &str = r#"address = "127.0.0.1:0""#;

fn flags(instance: &str, takeover: bool) -> Vec<String> {
    let mut f = vec!["--instance-id".to_owned(), instance.to_owned()];
    if takeover {
        f.push("--takeover".to_owned());
    }
    f
}

/// A response read off a raw connection.
#[derive(Debug)]
struct Answer {
    status: u16,
    instance: String,
    body: String,
    close: bool,
}

/// Sends a GET and reads its response (Content-Length bodies only).
/// `Err(true)`: the connection failed before any byte of a response.
async fn exchange(stream: &mut TcpStream, path: &str, close: bool) -> Result<Answer, bool> {
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: t\r\n{}\r\n",
        if close { "Connection: close\r\n" } else { "" }
    );
    stream.write_all(req.as_bytes()).await.map_err(|_| true)?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return Err(buf.is_empty()),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or(false)?;
    let field = |name: &str| {
        head.lines()
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_owned())
    };
    let len: usize = field("content-length")
        .and_then(|v| v.parse().ok())
        .ok_or(false)?;
    while buf.len() < head_end + len {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return Err(false),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    Ok(Answer {
        status,
        instance: field("x-sluice-instance").unwrap_or_default(),
        body: String::from_utf8_lossy(&buf[head_end..head_end + len]).to_string(),
        close: field("connection").is_some_and(|v| v.eq_ignore_ascii_case("close")),
    })
}

/// What the load saw.
#[derive(Default)]
struct Tally {
    by_instance: Mutex<HashMap<String, usize>>,
    failures: Mutex<Vec<String>>,
    /// Keep-alive requests sent again on a new connection because the
    /// server closed the idle one first (RFC 9112 9.3.1 lets a client
    /// retry an idempotent request that got no byte of response).
    retried: AtomicUsize,
}

impl Tally {
    fn record(&self, r: Result<Answer, bool>, what: &str) {
        match r {
            Ok(a) if a.status == 200 && a.body == BODY => {
                *self.by_instance.lock().entry(a.instance).or_default() += 1;
            }
            other => self.failures.lock().push(format!("{what}: {other:?}")),
        }
    }

    fn served_by(&self, instance: &str) -> usize {
        self.by_instance.lock().get(instance).copied().unwrap_or(0)
    }
}

/// One client: a keep-alive connection, or a new connection per request.
async fn client(addr: SocketAddr, keep_alive: bool, stop: Arc<AtomicBool>, tally: Arc<Tally>) {
    let mut conn: Option<TcpStream> = None;
    while !stop.load(Ordering::Relaxed) {
        if !keep_alive {
            let r = match TcpStream::connect(addr).await {
                Ok(mut s) => exchange(&mut s, "/slow", true).await,
                Err(e) => {
                    tally.failures.lock().push(format!("connect: {e}"));
                    continue;
                }
            };
            tally.record(r, "new connection");
            continue;
        }
        let reused = conn.is_some();
        let mut stream = match conn.take() {
            Some(s) => s,
            None => match TcpStream::connect(addr).await {
                Ok(s) => s,
                Err(e) => {
                    tally.failures.lock().push(format!("connect: {e}"));
                    continue;
                }
            },
        };
        let mut r = exchange(&mut stream, "/slow", false).await;
        if reused && matches!(r, Err(true)) {
            tally.retried.fetch_add(1, Ordering::Relaxed);
            r = match TcpStream::connect(addr).await {
                Ok(s) => {
                    stream = s;
                    exchange(&mut stream, "/slow", false).await
                }
                Err(_) => Err(true),
            };
        }
        if matches!(&r, Ok(a) if !a.close) {
            conn = Some(stream);
        }
        tally.record(r, "keep-alive");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_upgrade_under_load_fails_no_request_and_both_processes_serve() {
    // Every field bound: a field left to `..` would be dropped here (the
    // origin stopped, the directory with the config removed).
    let Running {
        origin: _origin,
        dir: _dir,
        config,
        mut old,
        addr,
        admin: _admin,
    } = running(2, ANY_PORT).await;

    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    let clients: Vec<_> = (0..6)
        .map(|i| tokio::spawn(client(addr, i % 2 == 0, stop.clone(), tally.clone())))
        .collect();
    eventually("the old process to serve under load", || {
        tally.served_by("old") >= 150
    })
    .await;

    let new = Sluice::start_with(&config, &flags("new", true));
    let status = wait_exit(&mut old.child).await;
    assert!(
        status.success(),
        "the old process drains and exits 0: {status:?}\n{}",
        old.log()
    );
    assert!(new.log().contains("takeover complete"), "{}", new.log());
    let before = tally.served_by("new");
    eventually("the new process to serve under load", || {
        tally.served_by("new") >= before + 150
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        within("a client to stop", c).await.expect("client task");
    }
    let failures = tally.failures.lock().clone();
    assert!(
        failures.is_empty(),
        "{} failed: {failures:#?}",
        failures.len()
    );
    assert!(tally.served_by("old") >= 150 && tally.served_by("new") >= 150);
    assert_eq!(
        tally.by_instance.lock().len(),
        2,
        "only the two instances answered: {:?}",
        tally.by_instance.lock()
    );
    eprintln!(
        "served {:?}, keep-alive retries {}",
        tally.by_instance.lock(),
        tally.retried.load(Ordering::Relaxed)
    );
    // The successor now owns the upgrade socket: a second upgrade works.
    let third = Sluice::start_with(&config, &flags("third", true));
    let mut new = new;
    assert!(wait_exit(&mut new.child).await.success(), "{}", new.log());
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let a = exchange(&mut s, "/", true).await.expect("answer");
    assert_eq!(
        (a.status, a.instance.as_str()),
        (200, "third"),
        "{}",
        third.log()
    );
}

/// Opens `n` connections and sends a whole request on each while the
/// proxy accepts nothing (its one connection slot is held, `on_limit =
/// "backlog"`): they wait in the kernel's accept queue.
async fn queue_requests(addr: SocketAddr, n: usize) -> Vec<TcpStream> {
    let mut queued = Vec::new();
    for _ in 0..n {
        let mut s = TcpStream::connect(addr).await.expect("connect");
        s.write_all(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            .await
            .expect("send");
        queued.push(s);
    }
    queued
}

/// The held connection: one request answered, then left open, so the
/// limited listener accepts no more.
async fn hold_the_slot(addr: SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let a = exchange(&mut s, "/", false).await.expect("answer");
    assert_eq!((a.status, a.instance.as_str()), (200, "old"));
    s
}

const QUEUED: usize = 8;
const LIMITED: &str = "max_connections = 1\non_limit = \"backlog\"";

#[tokio::test]
async fn connections_queued_at_the_switch_are_served_by_the_successor() {
    let Running {
        origin,
        dir,
        config: _config,
        mut old,
        addr,
        admin: _admin,
    } = running(2, &format!("{ANY_PORT}\n{LIMITED}")).await;
    let _held = hold_the_slot(addr).await;
    let mut queued = queue_requests(addr, QUEUED).await;

    // The successor's config has no limit and one worker; same address, so
    // it takes both of the old workers' SO_REUSEPORT sockets, and accepts
    // from both queues (the kernel spread the 8 connections over them).
    let new_config = write_config(dir.path(), "new.toml", origin.addr(), 1, ANY_PORT);
    let new = Sluice::start_with(&new_config, &flags("new", true));
    let (mut answered, mut by_new) = (0, 0);
    for s in &mut queued {
        let mut buf = Vec::new();
        within("a queued connection's answer", s.read_to_end(&mut buf))
            .await
            .expect("read");
        let text = String::from_utf8_lossy(&buf);
        if text.starts_with("HTTP/1.1 200") && text.ends_with(BODY) {
            answered += 1;
            by_new += usize::from(text.contains("x-sluice-instance: new"));
        }
    }
    assert_eq!(answered, QUEUED, "every queued connection answered");
    // The old process's one slot stays held until it drains, so the
    // successor takes them from the shared queues. (A draining process
    // with several workers was seen to accept one more queued connection
    // as its slot frees, which it then serves: answered either way.)
    assert!(by_new >= 1, "the successor served the queue: {by_new}");
    assert!(wait_exit(&mut old.child).await.success(), "{}", old.log());
    drop(new);
}

/// The same queue with the other way to replace a process: a second one
/// joins the port with SO_REUSEPORT (`share_port`), the first gets
/// SIGTERM. Its queue is its own, and it dies with it. One worker per
/// process, so the old process has one queue and no second worker that
/// could still take a connection from it as the drain frees the slot.
#[tokio::test]
async fn rebinding_with_so_reuseport_instead_loses_the_queued_connections() {
    let Running {
        origin,
        dir: _dir,
        config: _config,
        mut old,
        addr,
        admin: _admin,
    } = running(1, &format!("{ANY_PORT}\n{LIMITED}")).await;
    let _held = hold_the_slot(addr).await;
    let mut queued = queue_requests(addr, QUEUED).await;

    let other = tempfile::tempdir().expect("tempdir");
    let new_config = write_config(
        other.path(),
        "new.toml",
        origin.addr(),
        1,
        &format!("address = \"{addr}\"\nshare_port = true"),
    );
    let new = Sluice::start_with(&new_config, &flags("new", false));
    new.listening().await;
    signal(old.child.id(), "TERM");
    let mut answered = 0;
    for s in &mut queued {
        let mut buf = Vec::new();
        // Reset or closed: either way no response.
        let _ = within("a queued connection to end", s.read_to_end(&mut buf)).await;
        if buf.starts_with(b"HTTP/1.1 200") {
            answered += 1;
        }
    }
    let status = wait_exit(&mut old.child).await;
    assert_eq!(
        answered,
        0,
        "the queued connections died with the old socket\n{}",
        old.log()
    );
    assert!(status.success(), "{}", old.log());
    // New connections are the new process's.
    answers(addr, "new").await;
}

/// One request to `addr` answered by `instance`.
async fn answers(addr: SocketAddr, instance: &str) {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let a = exchange(&mut s, "/", true).await.expect("answer");
    assert_eq!((a.status, a.instance.as_str()), (200, instance));
}

#[tokio::test]
async fn a_failed_takeover_leaves_the_old_process_serving() {
    let Running {
        origin,
        dir,
        config,
        mut old,
        addr,
        admin,
    } = running(2, ANY_PORT).await;

    // A config that fails validation: exit 64 before the socket is touched.
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "workers = 0\n").expect("write");
    let (status, stderr) =
        run_to_exit(["--config", bad.to_str().expect("utf-8"), "--takeover"]).await;
    assert_eq!(status.code(), Some(64), "{stderr}");
    answers(addr, "old").await;

    // Sockets received, then a listener that cannot be bound (a port held
    // by another socket): exit 75, the old process told and serving.
    let held = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let busy = write_config(
        dir.path(),
        "busy.toml",
        origin.addr(),
        2,
        &format!(
            "address = \"127.0.0.1:0\"\n\n[[listener]]\naddress = \"{}\"",
            held.local_addr().expect("addr")
        ),
    );
    let (status, stderr) =
        run_to_exit(["--config", busy.to_str().expect("utf-8"), "--takeover"]).await;
    assert_eq!(status.code(), Some(75), "{stderr}");
    assert!(stderr.contains("takeover failed"), "{stderr}");
    answers(addr, "old").await;
    eventually("the old process to log the aborted handover", || {
        old.log().contains("handover aborted")
    })
    .await;

    // Garbage on the upgrade socket: logged, still serving.
    {
        use std::io::Write;
        let mut s = std::os::unix::net::UnixStream::connect(dir.path().join("upgrade.sock"))
            .expect("connect to the upgrade socket");
        s.write_all(b"\xff\xff\xff\xffGET / HTTP/1.1\r\n\r\n")
            .expect("write");
    }
    eventually("the old process to log the bad message", || {
        old.log().matches("handover aborted").count() >= 2
    })
    .await;
    answers(addr, "old").await;
    assert_eq!(admin.get("/readyz").await.status, 200);

    // A start without --takeover on a live upgrade socket is refused.
    let (status, stderr) = run_to_exit(["--config", config.to_str().expect("utf-8")]).await;
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("another process answers"), "{stderr}");
    answers(addr, "old").await;

    // After all that, a good successor still takes over.
    let new = Sluice::start_with(&config, &flags("new", true));
    assert!(wait_exit(&mut old.child).await.success(), "{}", old.log());
    answers(addr, "new").await;
    drop(new);
}

/// Nothing answers on the upgrade socket: exit 75 and a message.
#[tokio::test]
async fn a_takeover_with_nobody_to_take_from_exits_75() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(
        dir.path(),
        "sluice.toml",
        "127.0.0.1:9".parse().expect("addr"),
        1,
        ANY_PORT,
    );
    let (status, stderr) =
        run_to_exit(["--config", config.to_str().expect("utf-8"), "--takeover"]).await;
    assert_eq!(status.code(), Some(75), "{stderr}");
    assert!(stderr.contains("upgrade socket"), "{stderr}");
}
