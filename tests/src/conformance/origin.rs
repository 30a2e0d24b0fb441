//! The recording origin: a hand-written HTTP/1.1 server that keeps, for each
//! request it receives, the exact bytes of its head and body, and answers
//! with the bytes the current case scripts. It is long-lived (a peer's
//! configuration names its address once) and is re-armed before each case;
//! arming closes the connections of the case before, so that no pooled
//! connection carries a half-read request from one case into the next.

use super::case::Origin as Script;
use bytes::BytesMut;
use parking_lot::Mutex;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

/// A request as the origin received it.
#[derive(Clone, Debug, Default)]
pub struct Received {
    /// The request line and header section, byte for byte.
    pub head: Vec<u8>,
    pub method: String,
    pub target: String,
    /// `HTTP/1.0` or `HTTP/1.1`.
    pub version: String,
    /// Field lines in wire order, names lowercased, values as sent.
    pub headers: Vec<(String, String)>,
    /// The body, decoded from its framing.
    pub body: Vec<u8>,
    /// The body's bytes on the wire (chunk framing included).
    pub raw_body: Vec<u8>,
    /// The body arrived whole (false: the connection ended or its framing broke).
    pub complete: bool,
    /// Which connection (1-based, counted since the last arm) carried it.
    pub conn: usize,
}

impl Received {
    /// Every value of `name`, joined with `, ` as a list header would be.
    pub fn header(&self, name: &str) -> Option<String> {
        super::case::field(&self.headers, name)
    }

    /// How many field lines named `name`.
    pub fn lines(&self, name: &str) -> usize {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .count()
    }
}

/// What the origin shares with its connection tasks.
#[derive(Default)]
struct Shared {
    /// The armed script and what arrived since it was armed. A
    /// `parking_lot::Mutex`: held only to copy in or out, never across an
    /// await.
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    script: Script,
    received: Vec<Received>,
    /// TCP connections accepted since the last `arm`.
    accepted: usize,
}

/// A running recording origin; it stops when dropped.
pub struct RecordingOrigin {
    addr: SocketAddr,
    shared: Arc<Shared>,
    conns: Arc<Mutex<JoinSet<()>>>,
    task: tokio::task::JoinHandle<()>,
}

impl RecordingOrigin {
    pub async fn start() -> RecordingOrigin {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind origin");
        let addr = listener.local_addr().expect("origin addr");
        let shared = Arc::new(Shared::default());
        // The connection tasks; a `parking_lot::Mutex` so that `arm` can
        // abort them all, never held across an await.
        let conns = Arc::new(Mutex::new(JoinSet::new()));
        let task = tokio::spawn(accept(listener, shared.clone(), conns.clone()));
        RecordingOrigin {
            addr,
            shared,
            conns,
            task,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Closes every connection, forgets what was received and answers from
    /// now on as `script` says. Waits a moment so that the proxy notices the
    /// closed keep-alive connections before the case starts.
    pub async fn arm(&self, script: Script) {
        self.conns.lock().abort_all();
        {
            let mut s = self.shared.state.lock();
            s.script = script;
            s.received.clear();
            s.accepted = 0;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    /// The requests received since the last [`arm`](Self::arm).
    pub fn received(&self) -> Vec<Received> {
        self.shared.state.lock().received.clone()
    }

    pub fn accepted(&self) -> usize {
        self.shared.state.lock().accepted
    }
}

impl Drop for RecordingOrigin {
    fn drop(&mut self) {
        self.task.abort();
        self.conns.lock().abort_all();
    }
}

async fn accept(listener: TcpListener, shared: Arc<Shared>, conns: Arc<Mutex<JoinSet<()>>>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let conn_no = {
            let mut s = shared.state.lock();
            s.accepted += 1;
            s.accepted
        };
        let shared = shared.clone();
        let mut set = conns.lock();
        while set.try_join_next().is_some() {}
        set.spawn(async move {
            let _ = serve(stream, &shared, conn_no).await;
        });
    }
}

/// A connection: request after request, each answered from the script.
async fn serve(mut stream: TcpStream, shared: &Shared, conn: usize) -> std::io::Result<()> {
    let mut buf = BytesMut::new();
    loop {
        let Some(head_len) = read_until_head(&mut stream, &mut buf).await? else {
            return Ok(());
        };
        let head = buf.split_to(head_len).to_vec();
        let mut req = parse_head(&head);
        req.conn = conn;
        let script = shared.state.lock().script.clone();
        if !script.after_head.is_empty() {
            stream.write_all(script.after_head).await?;
        } else if req
            .header("expect")
            .is_some_and(|e| e.eq_ignore_ascii_case("100-continue"))
        {
            // What an origin does with an expectation passed on to it.
            stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await?;
        }
        let complete = read_body(&mut stream, &mut buf, &mut req).await?;
        req.complete = complete;
        // The client's `close`, or HTTP/1.0 without keep-alive, ends the
        // connection as a well-behaved origin would (RFC 9112 §9.3).
        let conn_opt = req
            .header("connection")
            .unwrap_or_default()
            .to_ascii_lowercase();
        let client_closes = conn_opt.contains("close")
            || (req.version == "HTTP/1.0" && !conn_opt.contains("keep-alive"));
        shared.state.lock().received.push(req);
        if !complete {
            return Ok(());
        }
        stream.write_all(script.reply).await?;
        if script.close || client_closes {
            let _ = stream.shutdown().await;
            // Let the proxy read to the end before the socket goes.
            let mut sink = [0u8; 1024];
            while tokio::time::timeout(Duration::from_secs(2), stream.read(&mut sink))
                .await
                .is_ok_and(|r| r.is_ok_and(|n| n > 0))
            {}
            return Ok(());
        }
    }
}

/// Reads until `buf` holds a whole head; its length, or `None` at EOF.
async fn read_until_head(
    stream: &mut TcpStream,
    buf: &mut BytesMut,
) -> std::io::Result<Option<usize>> {
    loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            return Ok(Some(i + 4));
        }
        if buf.len() > 64 * 1024 || stream.read_buf(buf).await? == 0 {
            return Ok(None);
        }
    }
}

fn parse_head(head: &[u8]) -> Received {
    let text = String::from_utf8_lossy(head);
    let mut lines = text.split("\r\n");
    let mut first = lines.next().unwrap_or_default().splitn(3, ' ');
    let method = first.next().unwrap_or_default().to_owned();
    let target = first.next().unwrap_or_default().to_owned();
    let version = first.next().unwrap_or_default().to_owned();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Received {
        head: head.to_vec(),
        method,
        target,
        version,
        headers,
        ..Received::default()
    }
}

/// Reads the body as the head frames it (chunked, else Content-Length,
/// else none). False if the connection ended first or the framing is broken.
async fn read_body(
    stream: &mut TcpStream,
    buf: &mut BytesMut,
    req: &mut Received,
) -> std::io::Result<bool> {
    let chunked = req
        .header("transfer-encoding")
        .is_some_and(|te| te.to_ascii_lowercase().contains("chunked"));
    if chunked {
        return read_chunked(stream, buf, req).await;
    }
    let Some(len) = req.header("content-length") else {
        return Ok(true);
    };
    let Ok(len) = len.trim().parse::<usize>() else {
        return Ok(false);
    };
    while buf.len() < len {
        if stream.read_buf(buf).await? == 0 {
            return Ok(false);
        }
    }
    let body = buf.split_to(len).to_vec();
    req.raw_body.clone_from(&body);
    req.body = body;
    Ok(true)
}

async fn read_chunked(
    stream: &mut TcpStream,
    buf: &mut BytesMut,
    req: &mut Received,
) -> std::io::Result<bool> {
    let mut pos = 0;
    loop {
        // A size line.
        let line_end = loop {
            if let Some(i) = buf[pos..].windows(2).position(|w| w == b"\r\n") {
                break pos + i;
            }
            if stream.read_buf(buf).await? == 0 {
                return Ok(false);
            }
        };
        let line = String::from_utf8_lossy(&buf[pos..line_end]).into_owned();
        let Ok(size) = usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
        else {
            return Ok(false);
        };
        pos = line_end + 2;
        if size == 0 {
            // Trailer section up to the empty line.
            loop {
                if let Some(i) = buf[pos..].windows(2).position(|w| w == b"\r\n") {
                    let empty = i == 0;
                    pos += i + 2;
                    if empty {
                        req.raw_body = buf.split_to(pos).to_vec();
                        return Ok(true);
                    }
                    continue;
                }
                if stream.read_buf(buf).await? == 0 {
                    return Ok(false);
                }
            }
        }
        while buf.len() < pos + size + 2 {
            if stream.read_buf(buf).await? == 0 {
                return Ok(false);
            }
        }
        req.body.extend_from_slice(&buf[pos..pos + size]);
        pos += size + 2;
    }
}
