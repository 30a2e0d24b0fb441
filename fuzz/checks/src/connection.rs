//! Target `connection`: a whole client connection, arbitrary bytes in,
//! through `sluice::server::conn::serve` (the entry point every accepted
//! plain connection runs, generic over its stream) over an in-memory duplex
//! stream, with the proxy forwarding to an in-process origin.
//!
//! Defends against what no single-parser target can see: panics anywhere
//! on the request path (a caught one is a 500, which is asserted never to
//! happen); hangs (the connection must close once the client has sent its
//! bytes and half-closed, within a bound far below every configured
//! timeout); answers that are not a sequence of whole, well-framed
//! HTTP/1.1 responses; anything reaching the origin that is not
//! well-framed HTTP/1.1 (one Host, one framing, a valid chunked body:
//! smuggling through the proxy); a request the proxy refused reaching the
//! origin, or one it forwarded whose answer the client never got (every
//! request the origin read whole is answered to the client, in order; the
//! rest of the answers are the proxy's own); and a healthy origin blamed
//! with a 502 or 504.
//!
//! # The origin
//! The engine dials backends over TCP (`upstream::connect`, called from
//! `proxy::forward` and the health checker with a concrete `UpstreamIo`),
//! so the origin is a loopback listener inside this process, on the same
//! single-threaded runtime, bound per input. Making the connector pluggable
//! would put a test seam on the forwarding path for this target alone.
//!
//! # Time
//! Real time, no timer is meant to fire: the proxy's timeouts are 30 s,
//! and the input is judged at two points. First when nothing moves any
//! more (the client's bytes are in, and the proxy, the origin and the
//! runtime's IO driver have been polled `QUIET` times in a row without a
//! byte moving), which is where every response the proxy owes must be out;
//! then after the client half-closes, when the connection must end within
//! `CLOSE_WITHIN`. (Loopback hands a written byte to the peer's socket
//! within the writing syscall, so it shows at the next poll of the IO
//! driver. Were a loaded kernel to defer one past `QUIET` polls, the report
//! would be a false "after EOF" or a missing answer, not a missed bug.) (Paused time would need tokio's `test-util` feature as a
//! normal dependency of a workspace member, which would reach release
//! builds.)
//!
//! The input is the client's byte stream. After the HTTP/2 preface it runs
//! hyper's HTTP/2 server, whose frames are not read back: then only the
//! origin side, panics and hangs are checked.

mod wire;

use parking_lot::Mutex;
use sluice::addr::ClientAddr;
use sluice::config::validate::parse;
use sluice::context::{ConnCtx, Worker};
use sluice::server::conn;
use sluice::state::{Shared, State};
use sluice::upstream::discovery::SystemResolver;
use sluice::upstream::pool::Pool;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The HTTP/2 connection preface (RFC 9113 §3.4): what follows is frames.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// Polls in a row without progress that count as "nothing moves".
const QUIET: u32 = 24;
/// Polls before a connection that keeps moving is called a busy loop.
const MAX_POLLS: u32 = 200_000;
/// How long the connection may stay open after the client half-closed.
const CLOSE_WITHIN: Duration = Duration::from_secs(10);

/// What the origin saw.
///
/// # Concurrency
/// A mutex shared by the origin's connection tasks and the harness,
/// all on one single-threaded runtime; never held across an `.await`.
#[derive(Default)]
struct Seen {
    /// Requests read whole (and answered, with `x-origin-seq: <index>`).
    requests: u64,
    /// Bytes read, and connections accepted: progress.
    bytes: usize,
    accepted: usize,
    /// The first thing it read that is not well-framed HTTP/1.1.
    violation: Option<String>,
}

/// Panics if `data` breaks an invariant of this target.
pub fn check(data: &[u8]) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run(data));
}

async fn run(data: &[u8]) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("origin");
    let origin = listener.local_addr().expect("origin address");
    let seen = Arc::new(Mutex::new(Seen::default()));
    tokio::spawn(serve_origin(listener, seen.clone()));

    let config = parse(&config_text(origin), Path::new("fuzz.toml")).expect("config");
    let state = State::new(&config, None).expect("state");
    let worker = Arc::new(Worker {
        pool: Arc::new(Pool::new(state.timeouts.upstream_idle)),
        shared: Arc::new(Shared::new(state, Arc::new(SystemResolver))),
    });
    let client = ClientAddr(([192, 0, 2, 7], 40000).into());
    let ctx = Arc::new(ConnCtx::new(worker, client, "http"));
    let builder = Arc::new(conn::builder(&config.limits, &config.timeouts));
    let (ours, theirs) = tokio::io::duplex(1 << 20);
    let proxy = tokio::spawn(conn::serve(theirs, ctx, builder));

    let (mut read, mut write) = tokio::io::split(ours);
    let out = Arc::new(Mutex::new(Vec::new()));
    let reader = {
        let out = out.clone();
        tokio::spawn(async move {
            let mut buf = [0; 8192];
            while let Ok(n) = read.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                out.lock().extend_from_slice(&buf[..n]);
            }
        })
    };
    write.write_all(data).await.expect("duplex has room");

    // 1. Everything the input asks for is done: nothing moves any more.
    let progress = || {
        let s = seen.lock();
        (out.lock().len(), s.bytes, s.accepted, s.requests)
    };
    let (mut last, mut still, mut polls) = (progress(), 0, 0);
    while still < QUIET && !proxy.is_finished() {
        tokio::task::yield_now().await;
        polls += 1;
        assert!(polls < MAX_POLLS, "the connection never settles");
        let now = progress();
        if now == last {
            still += 1;
        } else {
            (last, still) = (now, 0);
        }
    }
    let settled = out.lock().clone();
    let forwarded = seen.lock().requests;

    // 2. The client half-closes: the connection ends.
    let _ = write.shutdown().await;
    match tokio::time::timeout(CLOSE_WITHIN, proxy).await {
        Err(_) => panic!("connection open {CLOSE_WITHIN:?} after the client's EOF"),
        Ok(Err(e)) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Ok(_) => {}
    }
    let _ = tokio::time::timeout(CLOSE_WITHIN, reader).await;
    let seen = seen.lock();
    if let Some(v) = &seen.violation {
        panic!("the origin received malformed HTTP/1.1: {v}");
    }
    assert_eq!(
        seen.requests, forwarded,
        "a request reached the origin after EOF"
    );

    if data.starts_with(H2_PREFACE) {
        return;
    }
    let answers = wire::answers(&settled)
        .unwrap_or_else(|e| panic!("{e}: the client got {:?}", wire::lossy(&settled)));
    let mut next = 0;
    for a in &answers {
        assert!(
            !matches!(a.status, 500 | 502 | 504),
            "{} with a healthy origin: {answers:?}",
            a.status
        );
        if let Some(seq) = a.seq {
            assert_eq!(seq, next, "origin answers out of order: {answers:?}");
            next += 1;
        }
    }
    assert_eq!(
        next, seen.requests,
        "the origin read {} whole requests, the client got {next} of their answers: {answers:?}",
        seen.requests
    );
}

/// One route to the origin for paths under `/`, so that other targets
/// (`*`, absolute-form elsewhere) get the proxy's own 404; limits small
/// enough for inputs to reach them; timeouts far above `CLOSE_WITHIN`.
fn config_text(origin: std::net::SocketAddr) -> String {
    format!(
        r#"
[[listener]]
address = "127.0.0.1:1"

[limits]
max_header_bytes = 8192
max_headers = 24
max_uri_bytes = 512

[timeouts]
client_header = "30s"
upstream_connect = "30s"
upstream_response = "30s"

[[route]]
path = "/"
upstream = "origin"

[upstream.origin]
backends = ["{origin}"]
"#
    )
}

async fn serve_origin(listener: TcpListener, seen: Arc<Mutex<Seen>>) {
    while let Ok((stream, _)) = listener.accept().await {
        seen.lock().accepted += 1;
        tokio::spawn(origin_conn(stream, seen.clone()));
    }
}

/// Reads requests strictly and answers each one read whole, numbered;
/// every other answer uses chunked framing, to exercise both.
async fn origin_conn(mut stream: TcpStream, seen: Arc<Mutex<Seen>>) {
    let mut buf = Vec::new();
    let mut chunk = [0; 8192];
    loop {
        loop {
            match wire::request(&buf) {
                Ok(None) => break,
                Err(why) => {
                    let mut s = seen.lock();
                    s.violation
                        .get_or_insert(format!("{why}: {:?}", wire::lossy(&buf)));
                    return;
                }
                Ok(Some(req)) => {
                    buf.drain(..req.len);
                    let seq = {
                        let mut s = seen.lock();
                        s.requests += 1;
                        s.requests - 1
                    };
                    let answer = match (seq % 2, req.head) {
                        (0, false) => format!(
                            "HTTP/1.1 200 OK\r\nx-origin-seq: {seq}\r\ncontent-length: 2\r\n\r\nok"
                        ),
                        (0, true) => format!(
                            "HTTP/1.1 200 OK\r\nx-origin-seq: {seq}\r\ncontent-length: 2\r\n\r\n"
                        ),
                        (_, false) => format!(
                            "HTTP/1.1 200 OK\r\nx-origin-seq: {seq}\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"
                        ),
                        (_, true) => format!(
                            "HTTP/1.1 200 OK\r\nx-origin-seq: {seq}\r\ntransfer-encoding: chunked\r\n\r\n"
                        ),
                    };
                    if stream.write_all(answer.as_bytes()).await.is_err() {
                        return;
                    }
                }
            }
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                seen.lock().bytes += n;
            }
        }
    }
}
