//! The client load: workers spread over both proxies (round robin over the
//! two addresses, as DNS would hand them out, and the other one on a
//! connect error, as a DNS client tries the next address), each sending a
//! mix of idempotent reads and session-authenticated writes, and recording
//! every outcome with its time.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// A request's whole exchange must finish within this.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause between one worker's requests (keeps the 2-core CI machine usable).
const THINK: Duration = Duration::from_millis(5);

/// An answer, parsed just enough.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    /// `x-sluice-error`: the proxy answered itself, and why.
    pub sluice_error: Option<String>,
    pub set_cookie: Option<String>,
    pub body: String,
}

/// Why one request failed.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub enum Failure {
    /// Neither proxy accepted the connection.
    Connect,
    /// The connection broke before a whole answer.
    Io,
    /// No whole answer within the request timeout.
    Timeout,
    /// A 5xx; the proxy's `x-sluice-error` reason, or `backend` if the app sent it.
    Status5xx(u16, String),
    /// 401: the session was not recognised.
    LoggedOut,
    /// Another unexpected status.
    Status(u16),
    /// 2xx with the wrong content.
    WrongBody,
}

impl Failure {
    pub fn label(&self) -> String {
        match self {
            Failure::Connect => "connect error".into(),
            Failure::Io => "connection broken before a whole answer".into(),
            Failure::Timeout => format!("no answer within {}s", REQUEST_TIMEOUT.as_secs()),
            Failure::Status5xx(s, reason) => format!("{s} ({reason})"),
            Failure::LoggedOut => "401 (session lost)".into(),
            Failure::Status(s) => format!("status {s}"),
            Failure::WrongBody => "wrong body".into(),
        }
    }
}

/// One request's outcome.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub at: Instant,
    /// When the answer (or the failure) came.
    pub done: Instant,
    pub idempotent: bool,
    pub result: Result<(), Failure>,
}

/// A write the app acknowledged (2xx with an id).
#[derive(Clone, Debug)]
pub struct Write {
    pub id: i64,
    pub title: String,
}

/// What the load saw.
#[derive(Default)]
pub struct Record {
    pub outcomes: Vec<Outcome>,
    pub writes: Vec<Write>,
}

/// One HTTP/1.1 exchange on a fresh connection to `addr`.
pub async fn exchange(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &str,
    body: &str,
) -> Result<Reply, Failure> {
    let mut s = TcpStream::connect(addr)
        .await
        .map_err(|_| Failure::Connect)?;
    let req = format!(
        "{method} {path} HTTP/1.1\r\nhost: localhost\r\naccept: application/json\r\n{headers}\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let io = async {
        s.write_all(req.as_bytes()).await?;
        let mut out = Vec::new();
        s.read_to_end(&mut out).await?;
        Ok::<_, std::io::Error>(out)
    };
    let raw = match tokio::time::timeout(REQUEST_TIMEOUT, io).await {
        Ok(Ok(raw)) => raw,
        Ok(Err(_)) => return Err(Failure::Io),
        Err(_) => return Err(Failure::Timeout),
    };
    parse(&raw).ok_or(Failure::Io)
}

fn parse(raw: &[u8]) -> Option<Reply> {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let mut reply = Reply {
        status,
        sluice_error: None,
        set_cookie: None,
        body: body.to_owned(),
    };
    let mut length = None;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim().to_owned();
        match name.to_ascii_lowercase().as_str() {
            "x-sluice-error" => reply.sluice_error = Some(value),
            "set-cookie" => reply.set_cookie = Some(value),
            "content-length" => length = value.parse::<usize>().ok(),
            _ => {}
        }
    }
    // A body cut short is a broken exchange, not a wrong body.
    if length.is_some_and(|n| body.len() < n) {
        return None;
    }
    Some(reply)
}

/// The proxies, handed out round robin; the next one on a connect error.
pub struct Targets {
    proxies: [SocketAddr; 2],
    next: AtomicUsize,
}

impl Targets {
    pub fn new(proxies: [SocketAddr; 2]) -> Targets {
        Targets {
            proxies,
            next: AtomicUsize::new(0),
        }
    }

    pub async fn send(
        &self,
        method: &str,
        path: &str,
        headers: &str,
        body: &str,
    ) -> Result<Reply, Failure> {
        let first = self.next.fetch_add(1, Ordering::Relaxed);
        let mut last = Err(Failure::Connect);
        for i in 0..2 {
            let addr = self.proxies[(first + i) % 2];
            last = exchange(addr, method, path, headers, body).await;
            if last.as_ref().err() != Some(&Failure::Connect) {
                break;
            }
        }
        last
    }
}

/// Logs in through the proxies; the `sid=…` cookie to send back.
pub async fn login(targets: &Targets) -> Result<String, String> {
    let reply = targets
        .send(
            "POST",
            "/login",
            "content-type: application/json\r\n",
            r#"{"author":"admin","password":"sluice"}"#,
        )
        .await
        .map_err(|f| f.label())?;
    let cookie = reply
        .set_cookie
        .filter(|_| reply.status == 200)
        .ok_or_else(|| format!("login answered {}: {}", reply.status, reply.body))?;
    Ok(cookie.split(';').next().unwrap_or_default().to_owned())
}

/// A running load; [`Load::stop`] returns what it saw.
pub struct Load {
    stop: Arc<AtomicBool>,
    workers: Vec<tokio::task::JoinHandle<Record>>,
}

impl Load {
    /// `workers` tasks, each looping over the request mix.
    pub fn start(targets: Arc<Targets>, cookie: String, workers: usize, seed_id: i64) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let workers = (0..workers)
            .map(|w| {
                let targets = targets.clone();
                let cookie = cookie.clone();
                let stop = stop.clone();
                tokio::spawn(worker(targets, cookie, stop, w, seed_id))
            })
            .collect();
        Load { stop, workers }
    }

    pub async fn stop(self) -> Record {
        self.stop.store(true, Ordering::Relaxed);
        let mut all = Record::default();
        for w in self.workers {
            if let Ok(r) = w.await {
                all.outcomes.extend(r.outcomes);
                all.writes.extend(r.writes);
            }
        }
        all.outcomes.sort_by_key(|o| o.at);
        all
    }
}

async fn worker(
    targets: Arc<Targets>,
    cookie: String,
    stop: Arc<AtomicBool>,
    w: usize,
    seed_id: i64,
) -> Record {
    let mut record = Record::default();
    let session = format!("cookie: {cookie}\r\n");
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let at = Instant::now();
        let (idempotent, result) = match n % 5 {
            // A new post: the session must be recognised, the id is kept.
            0 => {
                let title = format!("drill w{w} n{n}");
                let body = format!(r#"{{"title":"{title}","body":"written under load"}}"#);
                let r = targets
                    .send(
                        "POST",
                        "/posts",
                        &format!("{session}content-type: application/json\r\n"),
                        &body,
                    )
                    .await;
                let result = r.and_then(|reply| {
                    check(&reply, 201)?;
                    let id = id_of(&reply.body).ok_or(Failure::WrongBody)?;
                    record.writes.push(Write { id, title });
                    Ok(())
                });
                (false, result)
            }
            // Read back an acknowledged write: it must be there.
            1 if !record.writes.is_empty() => {
                let pick = record.writes[(n as usize / 5) % record.writes.len()].clone();
                let r = targets
                    .send("GET", &format!("/posts/{}", pick.id), "", "")
                    .await;
                (
                    true,
                    r.and_then(|reply| {
                        check(&reply, 200)?;
                        body_has(&reply, &pick.title)
                    }),
                )
            }
            2 => {
                let r = targets.send("GET", "/posts", "", "").await;
                (
                    true,
                    r.and_then(|reply| {
                        check(&reply, 200)?;
                        if reply.body.trim_start().starts_with('[') {
                            Ok(())
                        } else {
                            Err(Failure::WrongBody)
                        }
                    }),
                )
            }
            _ => {
                let r = targets
                    .send("GET", &format!("/posts/{seed_id}"), "", "")
                    .await;
                (
                    true,
                    r.and_then(|reply| {
                        check(&reply, 200)?;
                        body_has(&reply, &format!("\"id\":{seed_id}"))
                    }),
                )
            }
        };
        record.outcomes.push(Outcome {
            at,
            done: Instant::now(),
            idempotent,
            result,
        });
        tokio::time::sleep(THINK).await;
    }
    record
}

fn check(reply: &Reply, want: u16) -> Result<(), Failure> {
    match reply.status {
        s if s == want => Ok(()),
        401 => Err(Failure::LoggedOut),
        s @ 500..=599 => Err(Failure::Status5xx(
            s,
            reply
                .sluice_error
                .clone()
                .unwrap_or_else(|| "backend".into()),
        )),
        s => Err(Failure::Status(s)),
    }
}

fn body_has(reply: &Reply, needle: &str) -> Result<(), Failure> {
    let compact: String = reply.body.split_whitespace().collect();
    let needle: String = needle.split_whitespace().collect();
    if compact.contains(&needle) {
        Ok(())
    } else {
        Err(Failure::WrongBody)
    }
}

/// The `"id":N` of a created post's JSON.
pub fn id_of(body: &str) -> Option<i64> {
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    v.get("id")?.as_i64()
}
