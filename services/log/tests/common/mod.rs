//! Shared test harness: temp dirs, a raw HTTP/1.1 client, an in-process
//! server on 127.0.0.1:0, and the real binary as a child process.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sluice_log::Config;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A directory removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        static N: AtomicU64 = AtomicU64::new(0);
        let nanos = OffsetDateTime::now_utc().unix_timestamp_nanos();
        let path = std::env::temp_dir().join(format!(
            "sluice-log-it-{name}-{}-{}-{nanos}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One HTTP/1.1 exchange over a fresh connection (`Connection: close`).
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &[u8],
) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(addr).await?;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await?;
    s.write_all(body).await?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other(format!("no response head in {text:?}")))?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line in {head:?}")))?;
    Ok((status, body.to_owned()))
}

pub async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    request(addr, "GET", path, b"").await.unwrap()
}

pub async fn post(addr: SocketAddr, body: &str) -> (u16, String) {
    request(addr, "POST", "/", body.as_bytes()).await.unwrap()
}

/// Polls `/ready` until it answers 200. No fixed sleeps in assertions: this
/// only bounds how long a broken server can hang the test.
pub async fn wait_ready(addr: SocketAddr) {
    for _ in 0..2000 {
        if let Ok((200, _)) = request(addr, "GET", "/ready", b"").await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("server at {addr} never became ready");
}

/// Polls `/stats` until `written` reaches `n` (the flusher runs on its own
/// clock; this waits for state, not for time).
pub async fn wait_written(addr: SocketAddr, n: u64) {
    for _ in 0..2000 {
        let (_, body) = get(addr, "/stats").await;
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        if v["written"].as_u64() >= Some(n) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("never wrote {n} entries");
}

pub fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap()
}

pub fn entry_json(
    ts: OffsetDateTime,
    level: &str,
    source: &str,
    message: &str,
) -> serde_json::Value {
    serde_json::json!({
        "level": level,
        "timestamp": rfc3339(ts),
        "source": source,
        "message": message,
    })
}

/// An in-process server (the library's `run`) on 127.0.0.1:0.
pub struct Server {
    pub addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), sluice_log::StartError>>>,
}

impl Server {
    pub async fn start(config: Config) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(sluice_log::run(listener, config, async {
            let _ = rx.await;
        }));
        wait_ready(addr).await;
        Server {
            addr,
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    /// Graceful shutdown: like SIGTERM, flushes everything buffered.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
    }
}

/// Every output line, oldest file first (`app.log.N` … `app.log.1`, `app.log`).
pub fn output_lines(dir: &Path) -> Vec<String> {
    let mut files: Vec<(usize, PathBuf)> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|d| {
            let name = d.ok()?.file_name().into_string().ok()?;
            let generation = if name == "app.log" {
                0
            } else {
                name.strip_prefix("app.log.")?.parse().ok()?
            };
            Some((generation, dir.join(name)))
        })
        .collect();
    files.sort_by_key(|f| std::cmp::Reverse(f.0));
    files
        .iter()
        .flat_map(|(_, p)| {
            std::fs::read_to_string(p)
                .unwrap()
                .lines()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The message field of a classic line.
pub fn classic_message(line: &str) -> &str {
    line.splitn(4, ';').nth(3).unwrap_or("")
}

/// The real binary as a child process.
pub struct Proc {
    pub child: Child,
    pub addr: SocketAddr,
}

impl Proc {
    pub fn spawn(dir: &Path, extra: &[&str]) -> Proc {
        let mut child = Command::new(env!("CARGO_BIN_EXE_sluice-log"))
            .args(["--listen", "127.0.0.1:0", "--dir"])
            .arg(dir)
            .args(extra)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        // Keeps draining stderr so the child never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if line.contains("listening")
                    && let Some(addr) = line.split("addr=").nth(1)
                    && let Some(tx) = tx.take()
                {
                    let addr: SocketAddr = addr.split_whitespace().next().unwrap().parse().unwrap();
                    let _ = tx.send(addr);
                }
                if std::env::var_os("SLUICE_TEST_VERBOSE").is_some() {
                    eprintln!("[sluice-log] {line}");
                }
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("binary did not report its address");
        Proc { child, addr }
    }

    /// SIGKILL, then reap.
    pub fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM, then wait for a clean exit.
    pub fn term(mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let exit = self.child.wait().unwrap();
        assert!(exit.success(), "sluice-log exited with {exit}");
    }
}
