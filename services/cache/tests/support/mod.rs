//! Test harness: the cache on 127.0.0.1:0 and a raw HTTP/1.1 client, shared
//! by every test binary (the real `redis-server` is in `sluice-testkit`).
#![allow(dead_code)]

pub mod contract;

use std::net::SocketAddr;
use std::time::Duration;

use sluice_cache::Config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A cache service running in this process on its own loopback port.
pub struct Cache {
    pub addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), sluice_cache::Error>>>,
}

impl Cache {
    /// Binds before spawning, so requests can be sent as soon as this returns
    /// (they wait in the accept backlog until the server takes them).
    pub async fn start(config: Config) -> Self {
        let config = config.validate().expect("valid test config");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind :0");
        let addr = listener.local_addr().expect("local addr");
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(sluice_cache::run(listener, config, async {
            let _ = rx.await;
        }));
        Self {
            addr,
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    /// Starts a graceful shutdown without waiting for it.
    pub fn begin_shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    /// Shuts down and returns what `run()` returned.
    pub async fn stop(mut self) -> Result<(), sluice_cache::Error> {
        self.begin_shutdown();
        self.task
            .take()
            .expect("not stopped twice")
            .await
            .expect("run() did not panic")
    }

    pub async fn get(&self, target: &str) -> Response {
        request(self.addr, "GET", target, &[], b"").await
    }

    pub async fn delete(&self, target: &str) -> Response {
        request(self.addr, "DELETE", target, &[], b"").await
    }

    /// `POST target` with `Cache-Control: max-age=<secs>` and a content type.
    pub async fn put(
        &self,
        target: &str,
        max_age: u64,
        content_type: &str,
        body: &[u8],
    ) -> Response {
        let cc = format!("max-age={max_age}");
        request(
            self.addr,
            "POST",
            target,
            &[("Cache-Control", &cc), ("Content-Type", content_type)],
            body,
        )
        .await
    }

    pub async fn stats(&self) -> serde_json::Value {
        let response = self.get("/stats").await;
        assert_eq!(response.status, 200, "{response:?}");
        response.json()
    }
}

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }
}

/// One request on a fresh connection with `Connection: close`, read to EOF.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    let mut head = format!(
        "{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let mut raw = head.into_bytes();
    raw.extend_from_slice(body);
    exchange(addr, &raw).await
}

/// Writes `raw` bytes and parses the single response that follows.
pub async fn exchange(addr: SocketAddr, raw: &[u8]) -> Response {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(raw).await.expect("write request");
    read_response(&mut stream).await
}

/// Reads to EOF and parses one response (the server closes after it).
pub async fn read_response(stream: &mut TcpStream) -> Response {
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut buf))
        .await
        .expect("response within 30 s")
        .expect("read response");
    parse_response(&buf)
}

pub fn parse_response(buf: &[u8]) -> Response {
    let end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {:?}", String::from_utf8_lossy(buf)));
    let head = std::str::from_utf8(&buf[..end]).expect("ASCII head");
    let mut lines = head.split("\r\n");
    let status_line = lines.next().expect("status line");
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    Response {
        status,
        headers,
        body: buf[end + 4..].to_vec(),
    }
}

/// Percent-encodes every byte outside `[A-Za-z0-9_.~-]`.
pub fn encode_key(key: &[u8]) -> String {
    key.iter()
        .map(|&b| {
            if b.is_ascii_alphanumeric() || b"_.~-".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// How many 4 KiB entries [`filled_past_the_bound`] puts.
pub const FILL_PUTS: usize = 64;

/// A memory cache bounded at 64 KiB after [`FILL_PUTS`] puts of 4 KiB
/// (256 KiB in all, each answered 200): past the bound, so it has evicted.
pub async fn filled_past_the_bound() -> Cache {
    let c = Cache::start(Config {
        max_bytes: 64 * 1024,
        max_entry_bytes: 8 * 1024,
        ..Config::default()
    })
    .await;
    let body = vec![b'x'; 4096];
    for i in 0..FILL_PUTS {
        let stored = c
            .put(&format!("/?key=k{i}"), 3600, "text/plain", &body)
            .await;
        assert_eq!(stored.status, 200);
    }
    c
}

/// Many writers replace one key while many readers read it: every read is a
/// miss or exactly one of the written values (never a torn or mixed body,
/// never another content type), and the final value is one of them.
pub async fn concurrent_writers_and_readers(writer: &Cache, reader: &Cache) {
    const WRITERS: usize = 6;
    const READERS: usize = 6;
    const ROUNDS: usize = 30;
    let value = |w: usize| format!("writer-{w}:").repeat(64).into_bytes();
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..WRITERS {
        let addr = writer.addr;
        let body = value(w);
        let content_type = format!("text/x-writer-{w}");
        tasks.spawn(async move {
            for _ in 0..ROUNDS {
                let response = request(
                    addr,
                    "POST",
                    "/?key=contended",
                    &[
                        ("Cache-Control", "max-age=60"),
                        ("Content-Type", &content_type),
                    ],
                    &body,
                )
                .await;
                assert_eq!(response.status, 200, "{response:?}");
            }
        });
    }
    for _ in 0..READERS {
        let addr = reader.addr;
        tasks.spawn(async move {
            for _ in 0..ROUNDS {
                let response = request(addr, "GET", "/?key=contended", &[], b"").await;
                match response.status {
                    404 => {}
                    200 => check_contended(&response, WRITERS),
                    other => panic!("unexpected {other}: {response:?}"),
                }
            }
        });
    }
    while let Some(joined) = tasks.join_next().await {
        joined.expect("task panicked");
    }
    let last = reader.get("/?key=contended").await;
    assert_eq!(last.status, 200);
    check_contended(&last, WRITERS);
}

fn check_contended(response: &Response, writers: usize) {
    let content_type = response.header("content-type").expect("content type");
    let w: usize = content_type
        .strip_prefix("text/x-writer-")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("foreign content type {content_type:?}"));
    assert!(w < writers);
    assert_eq!(
        response.body,
        format!("writer-{w}:").repeat(64).into_bytes(),
        "body does not match its content type"
    );
}

/// The real `sluice-cache` binary on a loopback port of its own choosing,
/// killed when dropped (a failing test leaves nothing running).
pub struct Binary {
    pub child: std::process::Child,
    pub addr: SocketAddr,
    /// Counts the log lines read after "listening" (the pipe is drained so
    /// the child never blocks on it).
    pub logs: Option<std::thread::JoinHandle<usize>>,
}

impl Binary {
    /// Starts the binary with `--listen 127.0.0.1:0 --log-format json` and
    /// `args`, and waits for its "listening" line, which carries the address.
    pub fn spawn(args: &[&str]) -> Self {
        use std::io::{BufRead, BufReader};
        use std::process::{Command, Stdio};
        let mut child = Command::new(env!("CARGO_BIN_EXE_sluice-cache"))
            .args(["--listen", "127.0.0.1:0", "--log-format", "json"])
            .args(args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn sluice-cache");
        let stderr = child.stderr.take().expect("stderr");
        let mut lines = BufReader::new(stderr).lines();
        let addr: SocketAddr = loop {
            let line = lines
                .next()
                .expect("a log line before exit")
                .expect("read stderr");
            let event: serde_json::Value = serde_json::from_str(&line).expect("JSON log line");
            if event["message"] == "listening" {
                assert_eq!(event["store"], "memory");
                break event["addr"]
                    .as_str()
                    .expect("addr field")
                    .parse()
                    .expect("addr");
            }
        };
        let logs = std::thread::spawn(move || lines.map_while(Result::ok).count());
        Self {
            child,
            addr,
            logs: Some(logs),
        }
    }

    /// Resident and peak resident memory (`VmRSS`, `VmHWM`), in bytes.
    pub fn memory(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("read /proc/<pid>/status");
        let field = |name: &str| -> u64 {
            let line = status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .unwrap_or_else(|| panic!("{name} in /proc/<pid>/status"));
            let kib: u64 = line
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()
                .expect("a number of kB");
            kib * 1024
        };
        (field("VmRSS:"), field("VmHWM:"))
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A keep-alive HTTP/1.1 connection that sends one request at a time.
pub struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    pub async fn open(addr: SocketAddr) -> Self {
        Self {
            stream: TcpStream::connect(addr).await.expect("connect"),
            buf: Vec::new(),
        }
    }

    /// Writes `raw` (part of a request) without reading anything.
    pub async fn write(&mut self, raw: &[u8]) {
        self.stream.write_all(raw).await.expect("write request");
    }

    /// Sends `raw` (one whole request, or the rest of one) and reads its
    /// response, which must carry `Content-Length`.
    pub async fn send(&mut self, raw: &[u8]) -> Response {
        self.write(raw).await;
        let read = async {
            loop {
                if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    let head = parse_response(&self.buf[..end + 4]);
                    let length: usize = head
                        .header("content-length")
                        .expect("content-length")
                        .parse()
                        .expect("a length");
                    if self.buf.len() >= end + 4 + length {
                        let rest = self.buf.split_off(end + 4 + length);
                        let whole = std::mem::replace(&mut self.buf, rest);
                        return parse_response(&whole);
                    }
                }
                let mut chunk = [0u8; 4096];
                let n = self.stream.read(&mut chunk).await.expect("read response");
                assert!(n > 0, "closed before a whole response");
                self.buf.extend_from_slice(&chunk[..n]);
            }
        };
        tokio::time::timeout(Duration::from_secs(30), read)
            .await
            .expect("response within 30 s")
    }
}
