//! The serve loop over loopback: in-flight requests finish after shutdown
//! begins, idle connections are closed at once, new ones are refused, and a
//! request still running after the grace period is cut off.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::task::JoinHandle;

use super::{Limits, serve_with};

/// Long enough never to elapse in a test: a test that needs it hangs.
const NEVER: Duration = Duration::from_secs(3600);

/// A server whose `/slow` requests report that they started, then wait
/// for `release`; every other path answers `fast` at once.
struct Server {
    addr: SocketAddr,
    started: mpsc::UnboundedReceiver<()>,
    release: Arc<Notify>,
    stop: oneshot::Sender<()>,
    /// Completes with what the shutdown future returned.
    task: JoinHandle<&'static str>,
}

async fn start(grace: Duration) -> Server {
    start_with(Limits::with_grace(grace)).await
}

async fn start_with(limits: Limits) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (started_tx, started) = mpsc::unbounded_channel();
    let release = Arc::new(Notify::new());
    let (stop, stopped) = oneshot::channel::<()>();
    let handler = {
        let release = Arc::clone(&release);
        move |request: Request<Incoming>| {
            let slow = request.uri().path() == "/slow";
            let started = started_tx.clone();
            let release = Arc::clone(&release);
            async move {
                if slow {
                    let _ = started.send(());
                    release.notified().await;
                }
                Response::new(Full::new(Bytes::from_static(if slow {
                    b"slow"
                } else {
                    b"fast"
                })))
            }
        }
    };
    let shutdown = async move {
        let _ = stopped.await;
        "stopped"
    };
    let task = tokio::spawn(serve_with(listener, handler, shutdown, limits));
    Server {
        addr,
        started,
        release,
        stop,
        task,
    }
}

async fn send(stream: &mut TcpStream, path: &str) {
    let request = format!("GET {path} HTTP/1.1\r\nhost: test\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
}

/// Reads one response with a `content-length` body; returns its head and body.
async fn read_response(stream: &mut TcpStream) -> (String, String) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8(buf[..end].to_vec()).unwrap();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length: "))
                .expect("content-length")
                .parse()
                .unwrap();
            let mut body = buf[end + 4..].to_vec();
            while body.len() < length {
                let n = stream.read(&mut chunk).await.unwrap();
                assert!(n > 0, "closed inside the body");
                body.extend_from_slice(&chunk[..n]);
            }
            return (head, String::from_utf8(body).unwrap());
        }
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "closed before a response: {buf:?}");
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Everything the peer sends until it closes (a reset counts as closed).
async fn read_to_close(stream: &mut TcpStream) -> Vec<u8> {
    let mut rest = Vec::new();
    let _ = stream.read_to_end(&mut rest).await;
    rest
}

#[tokio::test]
async fn in_flight_request_finishes_after_shutdown_begins() {
    let mut server = start(NEVER).await;
    let mut client = TcpStream::connect(server.addr).await.unwrap();
    send(&mut client, "/slow").await;
    server.started.recv().await.unwrap();

    server.stop.send(()).unwrap();
    // On this single-threaded runtime the serve task runs from the end of
    // its shutdown future to the drain without yielding: once a connection
    // is refused, the listener is gone and the drain has begun.
    while TcpStream::connect(server.addr).await.is_ok() {
        tokio::task::yield_now().await;
    }
    assert!(
        !server.task.is_finished(),
        "returned with a request in flight"
    );

    server.release.notify_one();
    let (head, body) = read_response(&mut client).await;
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    assert_eq!(body, "slow");
    assert_eq!(
        read_to_close(&mut client).await,
        b"",
        "closed after the answer"
    );
    assert_eq!(server.task.await.unwrap(), "stopped");
}

#[tokio::test]
async fn idle_keep_alive_connection_is_closed_at_once() {
    let server = start(NEVER).await;
    let mut client = TcpStream::connect(server.addr).await.unwrap();
    send(&mut client, "/").await;
    let (head, body) = read_response(&mut client).await;
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    assert_eq!(body, "fast");

    // The connection is idle and kept alive; with a grace that never
    // elapses, serve returns only if the drain closed it.
    server.stop.send(()).unwrap();
    assert_eq!(server.task.await.unwrap(), "stopped");
    assert_eq!(read_to_close(&mut client).await, b"");
    assert!(
        TcpStream::connect(server.addr).await.is_err(),
        "still accepting"
    );
}

#[tokio::test]
async fn request_still_running_after_the_grace_is_cut_off() {
    let mut server = start(Duration::ZERO).await;
    let mut client = TcpStream::connect(server.addr).await.unwrap();
    send(&mut client, "/slow").await;
    server.started.recv().await.unwrap();

    server.stop.send(()).unwrap();
    assert_eq!(server.task.await.unwrap(), "stopped");
    assert_eq!(read_to_close(&mut client).await, b"", "no answer, closed");
}

#[tokio::test]
async fn serves_h2c_with_prior_knowledge() {
    let server = start(NEVER).await;
    let mut client = TcpStream::connect(server.addr).await.unwrap();
    // The HTTP/2 preface and an empty SETTINGS frame: the server answers
    // with its own SETTINGS frame (type 4), so it took the connection as h2.
    client
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .await
        .unwrap();
    let mut frame_head = [0u8; 9];
    client.read_exact(&mut frame_head).await.unwrap();
    assert_eq!(frame_head[3], 4, "first frame is SETTINGS");
    drop(client);
    server.stop.send(()).unwrap();
    assert_eq!(server.task.await.unwrap(), "stopped");
}

/// A short header timeout for the slowloris tests; `HANG_GUARD` is only
/// there so a broken timeout fails the test instead of hanging it.
const SHORT: Duration = Duration::from_millis(200);
const HANG_GUARD: Duration = Duration::from_secs(30);

fn short_header_timeout() -> Limits {
    Limits {
        header_timeout: SHORT,
        ..Limits::with_grace(NEVER)
    }
}

/// What the server sends before it closes a connection on which `sent`
/// was written; panics if it never closes.
async fn closed_after(addr: SocketAddr, sent: &[u8]) -> Vec<u8> {
    let mut client = TcpStream::connect(addr).await.unwrap();
    client.write_all(sent).await.unwrap();
    tokio::time::timeout(HANG_GUARD, read_to_close(&mut client))
        .await
        .expect("the server closes the connection")
}

/// Slowloris: a head that never ends, no bytes at all, a partial HTTP/2
/// preface, and a preface with no request after it are all closed once the
/// header timeout passes, with nothing sent back but (at most) a 408.
#[tokio::test]
async fn a_request_head_that_never_completes_is_closed() {
    let server = start_with(short_header_timeout()).await;
    for sent in [
        &b"GET / HTTP/1.1\r\nhost: test\r\nx-slow: 1\r\n"[..],
        b"",
        b"PRI * HTTP/2.0\r\n",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0",
    ] {
        let answer = closed_after(server.addr, sent).await;
        let text = String::from_utf8_lossy(&answer);
        let h2_settings_only = answer.len() >= 9 && answer[3] == 4;
        assert!(
            answer.is_empty() || text.starts_with("HTTP/1.1 408") || h2_settings_only,
            "{sent:?} got {text:?}"
        );
    }
    // The server still answers a client that sends its head at once.
    let mut client = TcpStream::connect(server.addr).await.unwrap();
    send(&mut client, "/").await;
    let (head, _) = read_response(&mut client).await;
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
}

/// A keep-alive connection is held to the timeout for every head, not only
/// the first: after one answered request, a trickled second head is closed.
#[tokio::test]
async fn a_second_head_that_never_completes_is_closed() {
    let server = start_with(short_header_timeout()).await;
    let mut client = TcpStream::connect(server.addr).await.unwrap();
    send(&mut client, "/").await;
    let (head, _) = read_response(&mut client).await;
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    client.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
    let rest = tokio::time::timeout(HANG_GUARD, read_to_close(&mut client))
        .await
        .expect("the server closes the connection");
    let text = String::from_utf8_lossy(&rest);
    assert!(
        rest.is_empty() || text.starts_with("HTTP/1.1 408"),
        "{text:?}"
    );
}

/// Past `max_connections` a new connection is not served until one of the
/// open ones closes: it waits (in the backlog), it is not refused.
#[tokio::test]
async fn connections_past_the_cap_wait_for_a_free_slot() {
    let mut server = start_with(Limits {
        max_connections: 1,
        ..Limits::with_grace(NEVER)
    })
    .await;
    let mut first = TcpStream::connect(server.addr).await.unwrap();
    send(&mut first, "/slow").await;
    server.started.recv().await.unwrap();
    let mut second = TcpStream::connect(server.addr).await.unwrap();
    send(&mut second, "/slow").await;
    // The second is not served while the first holds the only slot: the
    // first's answer comes, and only then does the second's request start.
    server.release.notify_one();
    let (head, body) = read_response(&mut first).await;
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    assert_eq!(body, "slow");
    assert!(
        server.started.try_recv().is_err(),
        "second served while the first was open"
    );
    drop(first);
    server.started.recv().await.unwrap();
    server.release.notify_one();
    let (head, body) = read_response(&mut second).await;
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    assert_eq!(body, "slow");
}

/// A hand-written HTTP/2 client, so that what it sends is exactly what a
/// test says: it answers SETTINGS and PINGs as any live client does, and
/// opens only the streams it is told to.
struct RawH2 {
    stream: TcpStream,
    buf: Vec<u8>,
    /// Each GOAWAY received: (last stream id, error code).
    goaways: Vec<(u32, u32)>,
}

const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
const GOAWAY: u8 = 0x7;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const ACK: u8 = 0x1;

fn h2_frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).unwrap().to_be_bytes();
    let mut f = vec![len[1], len[2], len[3], kind, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// One frame: kind, flags, stream id, payload.
type H2Frame = (u8, u8, u32, Vec<u8>);

impl RawH2 {
    /// The preface and an empty SETTINGS frame.
    async fn connect(addr: SocketAddr) -> RawH2 {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let mut hello = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        hello.extend(h2_frame(SETTINGS, 0, 0, &[]));
        stream.write_all(&hello).await.unwrap();
        RawH2 {
            stream,
            buf: Vec::new(),
            goaways: Vec::new(),
        }
    }

    /// A GET of `path` (at most 127 bytes) on stream `id`: `:method GET`,
    /// `:scheme http` from HPACK's static table, `:path` a literal.
    async fn get(&mut self, id: u32, path: &str) {
        let mut block = vec![0x82, 0x86, 0x04, u8::try_from(path.len()).unwrap()];
        block.extend_from_slice(path.as_bytes());
        let headers = h2_frame(HEADERS, END_HEADERS | END_STREAM, id, &block);
        self.stream.write_all(&headers).await.unwrap();
    }

    /// The next frame, after answering it if it is SETTINGS or a PING;
    /// `None` once the server has closed the connection.
    async fn next(&mut self) -> Option<H2Frame> {
        loop {
            if self.buf.len() >= 9 {
                let len = usize::from(self.buf[0]) << 16
                    | usize::from(self.buf[1]) << 8
                    | usize::from(self.buf[2]);
                if self.buf.len() >= 9 + len {
                    let head: Vec<u8> = self.buf.drain(..9).collect();
                    let payload: Vec<u8> = self.buf.drain(..len).collect();
                    let (kind, flags) = (head[3], head[4]);
                    let id = u32::from_be_bytes(head[5..9].try_into().unwrap()) & 0x7fff_ffff;
                    let answer = match kind {
                        SETTINGS if flags & ACK == 0 => Some(h2_frame(SETTINGS, ACK, 0, &[])),
                        PING if flags & ACK == 0 => Some(h2_frame(PING, ACK, 0, &payload)),
                        GOAWAY => {
                            let word = |i: usize| {
                                u32::from_be_bytes(payload[i..i + 4].try_into().unwrap())
                            };
                            self.goaways.push((word(0) & 0x7fff_ffff, word(4)));
                            None
                        }
                        _ => None,
                    };
                    if let Some(answer) = answer {
                        // The server may be gone already; its close is what counts.
                        let _ = self.stream.write_all(&answer).await;
                    }
                    return Some((kind, flags, id, payload));
                }
            }
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk).await {
                // EOF, or a reset after the close: the connection is over.
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// The `:status` (the first field, from HPACK's static table) and the
    /// body of the response on stream `id`; panics if the connection ends
    /// first or a GOAWAY comes.
    async fn response(&mut self, id: u32) -> (u8, Vec<u8>) {
        let mut status = None;
        let mut body = Vec::new();
        loop {
            let (kind, flags, on, payload) = self.next().await.expect("a response");
            assert!(self.goaways.is_empty(), "GOAWAY while a stream was open");
            match kind {
                HEADERS if on == id => status = Some(payload[0]),
                DATA if on == id => body.extend_from_slice(&payload),
                _ => continue,
            }
            if flags & END_STREAM != 0 {
                return (status.expect("a response head"), body);
            }
        }
    }

    /// Reads on (answering) until the server closes the connection;
    /// bounded, so a server that keeps it open fails the test.
    async fn until_closed(&mut self) {
        tokio::time::timeout(HANG_GUARD, async { while self.next().await.is_some() {} })
            .await
            .expect("the server closes the idle connection");
    }
}

/// HPACK's static-table index of `:status 200`, as an indexed field.
const STATUS_200: u8 = 0x88;

/// Issue 14: an HTTP/2 connection with no open stream for the header
/// timeout gets GOAWAY (NO_ERROR) and is closed, though its client answers
/// every PING. Before, it was kept open for as long as the client liked.
#[tokio::test]
async fn an_idle_h2_connection_gets_goaway_and_is_closed() {
    let server = start_with(short_header_timeout()).await;
    let mut client = RawH2::connect(server.addr).await;
    client.get(1, "/").await;
    assert_eq!(client.response(1).await, (STATUS_200, b"fast".to_vec()));
    // Nothing more is sent but answers: the connection is idle.
    client.until_closed().await;
    assert!(!client.goaways.is_empty(), "closed without GOAWAY");
    assert!(
        client
            .goaways
            .iter()
            .all(|&(last, code)| code == 0 && (last <= 1 || last == 0x7fff_ffff)),
        "{:?}",
        client.goaways
    );
}

/// A stream open longer than the timeout (a slow answer) is not cut, and
/// the connection idles out only once it has ended.
#[tokio::test]
async fn an_h2_stream_open_longer_than_the_timeout_is_not_cut() {
    let mut server = start_with(short_header_timeout()).await;
    let mut client = RawH2::connect(server.addr).await;
    client.get(1, "/slow").await;
    server.started.recv().await.unwrap();
    // A connection opened after the slow stream began is closed for want of
    // a request, after the same timeout: by then the stream has been open
    // longer than it.
    let mut other = RawH2::connect(server.addr).await;
    other.until_closed().await;

    server.release.notify_one();
    assert_eq!(client.response(1).await, (STATUS_200, b"slow".to_vec()));
    client.until_closed().await;
    assert!(!client.goaways.is_empty(), "closed without GOAWAY");
}
