//! Idle client connections are closed (issue 14, finding 7). An HTTP/2
//! connection with no open stream for `timeouts.client_idle` gets GOAWAY
//! (NO_ERROR) and is closed, over h2c and over TLS, even when it answers
//! every PING (before, pings kept it open forever, about 23 KB each); a
//! stream still open (a slow response head, a slow body, an upload that
//! goes on after the response to an h2 backend) is never cut.
//! An HTTP/1.1 keep-alive connection waiting for its next request, plain
//! or over TLS, is closed after `timeouts.client_header`.

use bytes::Bytes;
use http::{Request, Response};
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use sluice_e2e::harness::certs::TestCerts;
use sluice_e2e::harness::client::{H2, RawConn, tls_connect};
use sluice_e2e::harness::origin::{Origin, reply};
use sluice_e2e::harness::proxy::{Proxy, config};
use sluice_e2e::harness::{BoxError, eventually, within};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

const IDLE: Duration = Duration::from_secs(1);

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
const GOAWAY: u8 = 0x7;
const ACK: u8 = 0x1;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;

/// What a client that only answers the server saw until the connection ended.
#[derive(Debug, Default)]
struct Ended {
    /// Each GOAWAY: (last stream id, error code).
    goaways: Vec<(u32, u32)>,
    /// PINGs the server sent (and we acknowledged).
    pings: usize,
}

fn frame(kind: u8, flags: u8, payload: &[u8]) -> Vec<u8> {
    frame_on(kind, flags, 0, payload)
}

/// A frame on stream `id`.
fn frame_on(kind: u8, flags: u8, id: u32, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len())
        .expect("small frame")
        .to_be_bytes();
    let mut f = vec![len[1], len[2], len[3], kind, flags];
    f.extend_from_slice(&id.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// Opens HTTP/2 on `io` (preface and empty SETTINGS) and then only answers:
/// SETTINGS are acknowledged and every PING is answered, as a live client
/// would; no stream is opened. Returns once the server closes the
/// connection (bounded: a server that keeps it open fails the test).
async fn idle_until_closed<S: AsyncRead + AsyncWrite + Unpin>(mut io: S) -> Ended {
    let mut hello = PREFACE.to_vec();
    hello.extend(frame(SETTINGS, 0, &[]));
    io.write_all(&hello).await.expect("write preface");
    let mut ended = Ended::default();
    within("the server to close the idle connection", async {
        loop {
            let mut head = [0u8; 9];
            // EOF, or a reset after the close: the connection is over.
            if io.read_exact(&mut head).await.is_err() {
                return;
            }
            let len = usize::from(head[0]) << 16 | usize::from(head[1]) << 8 | usize::from(head[2]);
            let mut payload = vec![0u8; len];
            if io.read_exact(&mut payload).await.is_err() {
                return;
            }
            let (kind, flags) = (head[3], head[4]);
            let answer = match kind {
                SETTINGS if flags & ACK == 0 => Some(frame(SETTINGS, ACK, &[])),
                PING if flags & ACK == 0 => {
                    ended.pings += 1;
                    Some(frame(PING, ACK, &payload))
                }
                GOAWAY => {
                    let word = |i: usize| {
                        u32::from_be_bytes(payload[i..i + 4].try_into().expect("4 bytes"))
                    };
                    ended.goaways.push((word(0) & 0x7fff_ffff, word(4)));
                    None
                }
                _ => None,
            };
            if let Some(a) = answer {
                // The server may already be gone; its close is what we wait for.
                let _ = io.write_all(&a).await;
            }
        }
    })
    .await;
    ended
}

fn assert_closed_gracefully(ended: &Ended) {
    assert!(
        !ended.goaways.is_empty(),
        "closed without GOAWAY: {ended:?}"
    );
    assert!(
        ended
            .goaways
            .iter()
            .all(|&(last, code)| code == 0 && (last == 0 || last == 0x7fff_ffff)),
        "a GOAWAY that is not NO_ERROR or names a stream: {ended:?}"
    );
}

#[tokio::test]
async fn an_idle_h2c_connection_that_answers_pings_gets_goaway_and_is_closed() {
    let origin = Origin::http1()
        .route("/", reply::text(200, "ok"))
        .start()
        .await;
    let mut cfg = config(&[origin.addr()]);
    cfg.timeouts.client_idle = IDLE;
    let proxy = Proxy::start(&cfg).await;

    let tcp = within("connect", TcpStream::connect(proxy.addr()))
        .await
        .expect("connect");
    let ended = idle_until_closed(tcp).await;
    assert_closed_gracefully(&ended);
    proxy.shutdown().await;
}

#[tokio::test]
async fn idle_connections_over_tls_are_closed_the_same_way() {
    let origin = Origin::http1()
        .route("/", reply::text(200, "ok"))
        .start()
        .await;
    let certs = TestCerts::generate();
    let mut cfg = config(&[origin.addr()]);
    cfg.timeouts.client_idle = IDLE;
    cfg.timeouts.client_header = IDLE;
    cfg.listeners[0].tls = vec![sluice::config::CertConfig {
        cert: certs.cert.clone(),
        key: certs.key.clone(),
        server_names: Vec::new(),
    }];
    let proxy = Proxy::start(&cfg).await;

    let (tls, alpn) = tls_connect(proxy.addr(), certs.client_config(&[b"h2"]), "localhost")
        .await
        .expect("TLS handshake");
    assert_eq!(alpn.as_deref(), Some(&b"h2"[..]));
    // One request first: a connection that was used idles out too.
    let mut h2 = H2::handshake(TokioIo::new(tls)).await;
    assert_eq!(h2.get("/").await.status, 200);
    let (tls, _) = tls_connect(proxy.addr(), certs.client_config(&[b"h2"]), "localhost")
        .await
        .expect("TLS handshake");
    let ended = idle_until_closed(tls).await;
    assert_closed_gracefully(&ended);

    // HTTP/1.1 over TLS waits for its next request as long as over TCP.
    let (mut tls, alpn) = tls_connect(
        proxy.addr(),
        certs.client_config(&[b"http/1.1"]),
        "localhost",
    )
    .await
    .expect("TLS handshake");
    assert_eq!(alpn.as_deref(), Some(&b"http/1.1"[..]));
    tls.write_all(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
        .await
        .expect("write request");
    let mut got = Vec::new();
    within("the keep-alive connection to be closed", async {
        let mut buf = [0u8; 4096];
        // EOF, with or without close_notify: the connection is over.
        while let Ok(n @ 1..) = tls.read(&mut buf).await {
            got.extend_from_slice(&buf[..n]);
        }
    })
    .await;
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 200 "), "{text}");
    assert!(text.ends_with("ok"), "one response, then the close: {text}");
    proxy.shutdown().await;
}

/// A body that sends `first`, then waits for a permit of `gate`, then
/// sends `last`.
struct Gated {
    first: Option<Bytes>,
    wait: Option<Pin<Box<dyn Future<Output = ()> + Send + Sync>>>,
    last: Option<Bytes>,
}

impl Body for Gated {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if let Some(b) = self.first.take() {
            return Poll::Ready(Some(Ok(Frame::data(b))));
        }
        if let Some(w) = self.wait.as_mut() {
            ready!(w.as_mut().poll(cx));
            self.wait = None;
        }
        Poll::Ready(self.last.take().map(|b| Ok(Frame::data(b))))
    }
}

#[tokio::test]
async fn streams_open_longer_than_the_idle_timeout_are_not_cut() {
    let gate = Arc::new(Semaphore::new(0));
    let origin = Origin::http1()
        .route("/slow-head", reply::gated(gate.clone(), "finished"))
        .route("/slow-body", {
            let gate = gate.clone();
            move |_| {
                let gate = gate.clone();
                async move {
                    let wait = async move {
                        let _permit = gate.acquire().await.expect("gate");
                    };
                    Response::new(
                        Gated {
                            first: Some(Bytes::from_static(b"first,")),
                            wait: Some(Box::pin(wait)),
                            last: Some(Bytes::from_static(b"last")),
                        }
                        .boxed(),
                    )
                }
            }
        })
        .start()
        .await;
    let mut cfg = config(&[origin.addr()]);
    cfg.timeouts.client_idle = IDLE;
    let proxy = Proxy::start(&cfg).await;

    let mut h2 = H2::connect_h2c(proxy.addr()).await;
    let slow_head = tokio::spawn({
        let mut h2 = h2.clone();
        async move { h2.get("/slow-head").await }
    });
    let req = Request::get("http://test.local/slow-body")
        .body(reply::empty())
        .expect("request");
    let resp = h2.send(req).await;
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    let first = within("the first part of the body", body.frame())
        .await
        .expect("a frame")
        .expect("no error");
    assert_eq!(first.data_ref().map(|b| &b[..]), Some(&b"first,"[..]));
    eventually("both requests to reach the backend", || {
        origin.request_count() == 2
    })
    .await;

    // A connection opened after both streams began is closed for idleness:
    // by then both have been open longer than the idle timeout.
    let tcp = within("connect", TcpStream::connect(proxy.addr()))
        .await
        .expect("connect");
    assert_closed_gracefully(&idle_until_closed(tcp).await);

    gate.add_permits(2);
    let rest = within("the rest of the body", body.collect())
        .await
        .expect("the slow body completes");
    assert_eq!(&rest.to_bytes()[..], b"last");
    let head = slow_head.await.expect("slow head task");
    assert_eq!(head.status, 200);
    assert_eq!(head.text(), "finished");
    // And the connection still takes requests.
    let origin_ok = h2.get("/slow-head");
    gate.add_permits(1);
    assert_eq!(origin_ok.await.status, 200);
    proxy.shutdown().await;
}

#[tokio::test]
async fn an_http1_keep_alive_connection_waiting_for_its_next_request_is_closed() {
    let origin = Origin::http1()
        .route("/", reply::text(200, "ok"))
        .start()
        .await;
    let mut cfg = config(&[origin.addr()]);
    cfg.timeouts.client_header = IDLE;
    let proxy = Proxy::start(&cfg).await;
    let mut raw = RawConn::connect(proxy.addr()).await;
    raw.send(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n").await;
    let resp = raw.read_response().await;
    assert_eq!(resp.status, 200);
    // Nothing more is sent: the proxy closes without another byte.
    assert_eq!(raw.read_to_eof().await, b"");
    proxy.shutdown().await;
}

/// What the server sent a client that uploads (on stream 1).
#[derive(Debug, Default)]
struct Upload {
    /// The response on stream 1 has ended.
    answered: bool,
    /// GOAWAYs while the upload went on: (last stream id, error code).
    goaways: Vec<(u32, u32)>,
}

/// Reads the frames in `buf`, answers SETTINGS and PINGs into `out`, and
/// notes the end of stream 1's response and every GOAWAY in `seen`.
fn take_frames(buf: &mut Vec<u8>, out: &mut Vec<u8>, seen: &mut Upload) {
    while buf.len() >= 9 {
        let len = usize::from(buf[0]) << 16 | usize::from(buf[1]) << 8 | usize::from(buf[2]);
        if buf.len() < 9 + len {
            return;
        }
        let head: Vec<u8> = buf.drain(..9).collect();
        let payload: Vec<u8> = buf.drain(..len).collect();
        let (kind, flags) = (head[3], head[4]);
        let id = u32::from_be_bytes(head[5..9].try_into().expect("4 bytes")) & 0x7fff_ffff;
        match kind {
            SETTINGS if flags & ACK == 0 => out.extend(frame(SETTINGS, ACK, &[])),
            PING if flags & ACK == 0 => out.extend(frame(PING, ACK, &payload)),
            GOAWAY => {
                let word =
                    |i: usize| u32::from_be_bytes(payload[i..i + 4].try_into().expect("4 bytes"));
                seen.goaways.push((word(0) & 0x7fff_ffff, word(4)));
            }
            HEADERS | DATA if id == 1 && flags & END_STREAM != 0 => seen.answered = true,
            _ => {}
        }
    }
}

/// Issue 14: a stream whose response has ended is still open while the
/// client uploads its body. An h2 backend answers at once and goes on
/// reading; the client uploads slowly (within `client_body`) for three idle
/// timeouts after the answer, answering PINGs, and the connection is not
/// sent GOAWAY while it does; the backend gets the whole body. Only then
/// does the connection idle out. Before, the stream counted as closed when
/// its response ended and the connection was sent GOAWAY mid-upload.
#[tokio::test]
async fn an_upload_that_goes_on_after_the_response_keeps_its_connection() {
    const CHUNKS: usize = 12;
    const CHUNK: &[u8] = b"0123456789";
    let (got_tx, mut got) = tokio::sync::mpsc::unbounded_channel();
    let origin = Origin::h2c()
        .route("/upload", move |req: Request<hyper::body::Incoming>| {
            let got = got_tx.clone();
            async move {
                // The answer goes at once; the body is read after it.
                tokio::spawn(async move {
                    let body = req.into_body().collect().await.map(|b| b.to_bytes());
                    let _ = got.send(body.map(|b| b.len()).map_err(|e| e.to_string()));
                });
                Response::new(reply::full("early"))
            }
        })
        .start()
        .await;
    let mut cfg = config(&[origin.addr()]);
    cfg.upstreams[0].protocol = sluice::config::UpstreamProtocol::H2c;
    cfg.timeouts.client_idle = IDLE;
    let proxy = Proxy::start(&cfg).await;

    let mut tcp = within("connect", TcpStream::connect(proxy.addr()))
        .await
        .expect("connect");
    // POST /upload on stream 1 (HPACK: :method POST, :scheme http from the
    // static table; :path and :authority literals), and a first chunk.
    let mut block = vec![0x83, 0x86, 0x04, 7];
    block.extend_from_slice(b"/upload");
    block.extend_from_slice(&[0x01, 10]);
    block.extend_from_slice(b"test.local");
    let mut hello = PREFACE.to_vec();
    hello.extend(frame(SETTINGS, 0, &[]));
    hello.extend(frame_on(HEADERS, END_HEADERS, 1, &block));
    hello.extend(frame_on(DATA, 0, 1, CHUNK));
    tcp.write_all(&hello).await.expect("write request");

    let mut seen = Upload::default();
    let mut buf = Vec::new();
    let mut sent = 1;
    let mut next_chunk = None;
    within("the slow upload", async {
        while sent < CHUNKS {
            let tick = async {
                match next_chunk {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            let mut read = [0u8; 4096];
            tokio::select! {
                n = tcp.read(&mut read) => {
                    let n = n.expect("read");
                    assert!(n > 0, "closed mid-upload: {seen:?}");
                    buf.extend_from_slice(&read[..n]);
                    let mut out = Vec::new();
                    take_frames(&mut buf, &mut out, &mut seen);
                    tcp.write_all(&out).await.expect("answer");
                    if seen.answered && next_chunk.is_none() {
                        next_chunk = Some(tokio::time::Instant::now());
                    }
                }
                () = tick => {
                    sent += 1;
                    let flags = if sent == CHUNKS { END_STREAM } else { 0 };
                    tcp.write_all(&frame_on(DATA, flags, 1, CHUNK)).await.expect("upload");
                    // Three idle timeouts in all, a quarter of one apart.
                    next_chunk = next_chunk.map(|at| at + IDLE * 3 / CHUNKS as u32);
                }
            }
            assert!(seen.goaways.is_empty(), "GOAWAY mid-upload: {seen:?}");
        }
    })
    .await;
    let received = within("the backend to read the whole body", got.recv())
        .await
        .expect("a report");
    assert_eq!(received, Ok(CHUNKS * CHUNK.len()));

    // The upload over, the connection is idle, and closed as such.
    within("the idle connection to be closed", async {
        let mut read = [0u8; 4096];
        // EOF, or a reset after the close: the connection is over.
        while let Ok(n @ 1..) = tcp.read(&mut read).await {
            buf.extend_from_slice(&read[..n]);
            let mut out = Vec::new();
            take_frames(&mut buf, &mut out, &mut seen);
            // The server may be gone already; its close is what we wait for.
            let _ = tcp.write_all(&out).await;
        }
    })
    .await;
    assert!(!seen.goaways.is_empty(), "closed without GOAWAY: {seen:?}");
    // NO_ERROR; the last stream processed is the upload's (or, first, any).
    assert!(
        seen.goaways
            .iter()
            .all(|&(last, code)| code == 0 && (last == 1 || last == 0x7fff_ffff)),
        "{seen:?}"
    );
    proxy.shutdown().await;
}
