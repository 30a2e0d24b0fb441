//! The connection loop over `tokio::io::duplex`, byte-exact: keep-alive,
//! pipelining, 100-continue, timeouts (paused time), drain, early-dropped
//! bodies, upgrades, refused heads. No assertion depends on timing.

use super::*;
use crate::http1::OnUpgrade;
use http::{HeaderMap, HeaderValue, header};
use http_body::Frame;
use http_body_util::{BodyExt, Full};
use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::io::{AsyncReadExt, DuplexStream, duplex};
use tokio::sync::watch;
use tokio::task::JoinHandle;

const DATE: &str = "Sun, 06 Nov 1994 08:49:37 GMT";

fn settings() -> Settings {
    Settings {
        limits: Limits::default(),
        header_timeout: Duration::from_secs(10),
    }
}

/// A response body with no known length, for chunked framing.
struct Frames(VecDeque<Frame<Bytes>>);

impl Body for Frames {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.0.pop_front().map(Ok))
    }
}

fn text(status: u16, body: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = StatusCode::from_u16(status).unwrap();
    r.headers_mut()
        .insert(header::DATE, HeaderValue::from_static(DATE));
    r
}

fn ok(body: &str) -> String {
    format!(
        "HTTP/1.1 200 OK\r\ndate: {DATE}\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
}

struct Client {
    io: DuplexStream,
    task: JoinHandle<Result<(), ConnError>>,
    idle: Arc<IdleClock>,
}

/// A worker's idle clock, swept by a task of its own (as `server::worker` does).
fn clock(settings: &Settings) -> Arc<IdleClock> {
    let idle = Arc::new(IdleClock::new(settings.header_timeout));
    let sweep = idle.clone();
    tokio::spawn(async move { sweep.sweep().await });
    idle
}

fn start<S, F, B>(settings: Settings, service: S) -> Client
where
    S: FnMut(Request<RequestBody>) -> F + Send + 'static,
    F: Future<Output = Response<B>> + Send + 'static,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let (client, mut server) = duplex(64 * 1024);
    let idle = clock(&settings);
    let conn_idle = idle.clone();
    let task = tokio::spawn(async move {
        let upgrade = serve(
            &mut server,
            &mut BytesMut::new(),
            &settings,
            &InterimQueue::default(),
            service,
            &conn_idle,
        )
        .await?;
        if let Some(upgrade) = upgrade {
            upgrade.hand_over(server);
        }
        Ok(())
    });
    Client {
        io: client,
        task,
        idle,
    }
}

impl Client {
    async fn send(&mut self, raw: &str) {
        self.io.write_all(raw.as_bytes()).await.unwrap();
    }

    async fn expect(&mut self, want: &str) {
        let mut got = vec![0; want.len()];
        self.io.read_exact(&mut got).await.unwrap();
        assert_eq!(String::from_utf8_lossy(&got), want);
    }

    /// Everything until the server closes.
    async fn rest(&mut self) -> String {
        let mut got = Vec::new();
        self.io.read_to_end(&mut got).await.unwrap();
        String::from_utf8_lossy(&got).into_owned()
    }
}

/// Echoes the request body, or the path when there is none.
type Reply = std::pin::Pin<Box<dyn Future<Output = Response<Full<Bytes>>> + Send>>;

fn echo() -> impl FnMut(Request<RequestBody>) -> Reply + Send + 'static {
    |req: Request<RequestBody>| {
        Box::pin(async move {
            let path = req.uri().path().to_owned();
            let body = req.into_body().collect().await.map(|c| c.to_bytes());
            let out = match body {
                Ok(b) if b.is_empty() => Bytes::from(path),
                Ok(b) => b,
                Err(e) => Bytes::from(e.to_string()),
            };
            let mut r = Response::new(Full::new(out));
            r.headers_mut()
                .insert(header::DATE, HeaderValue::from_static(DATE));
            r
        })
    }
}

#[tokio::test]
async fn keep_alive_serves_requests_one_after_another() {
    let mut c = start(settings(), echo());
    c.send("GET /one HTTP/1.1\r\nHost: x\r\n\r\n").await;
    c.expect(&ok("/one")).await;
    c.send("POST /two HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
        .await;
    c.expect(&ok("hello")).await;
    c.send("GET /three HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await;
    assert_eq!(
        c.rest().await,
        format!(
            "HTTP/1.1 200 OK\r\ndate: {DATE}\r\ncontent-length: 6\r\nconnection: close\r\n\r\n/three"
        )
    );
    assert!(c.task.await.unwrap().is_ok());
}

#[tokio::test(start_paused = true)]
async fn pipelined_requests_are_answered_in_order() {
    // The first request is the slowest; answers must still come in order.
    let mut c = start(settings(), |req: Request<RequestBody>| async move {
        let path = req.uri().path().to_owned();
        let wait = match path.as_str() {
            "/1" => 30,
            "/2" => 20,
            _ => 10,
        };
        tokio::time::sleep(Duration::from_millis(wait)).await;
        let mut r = Response::new(Full::new(Bytes::from(path)));
        r.headers_mut()
            .insert(header::DATE, HeaderValue::from_static(DATE));
        r
    });
    c.send(
        "GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\nGET /3 HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .await;
    c.expect(&format!("{}{}{}", ok("/1"), ok("/2"), ok("/3")))
        .await;
}

#[tokio::test]
async fn http10_keep_alive_and_close() {
    let mut c = start(settings(), echo());
    c.send("GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        .await;
    c.expect(&format!(
        "HTTP/1.1 200 OK\r\ndate: {DATE}\r\ncontent-length: 2\r\nconnection: keep-alive\r\n\r\n/a"
    ))
    .await;
    c.send("GET /b HTTP/1.0\r\n\r\n").await;
    assert_eq!(
        c.rest().await,
        format!(
            "HTTP/1.1 200 OK\r\ndate: {DATE}\r\ncontent-length: 2\r\nconnection: close\r\n\r\n/b"
        )
    );
}

#[tokio::test]
async fn chunked_request_body_and_trailers_reach_the_service() {
    let mut c = start(settings(), |req: Request<RequestBody>| async move {
        let collected = req.into_body().collect().await.unwrap();
        let trailer = collected
            .trailers()
            .and_then(|t| t.get("x-sum").cloned())
            .unwrap();
        let mut body = collected.to_bytes().to_vec();
        body.extend_from_slice(trailer.as_bytes());
        let mut r = Response::new(Full::new(Bytes::from(body)));
        r.headers_mut()
            .insert(header::DATE, HeaderValue::from_static(DATE));
        r
    });
    c.send("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
        .await;
    c.send("6\r\n world\r\n0\r\nX-Sum: 42\r\n\r\n").await;
    c.expect(&ok("hello world42")).await;
}

#[tokio::test]
async fn chunked_response_with_trailers_and_head_without_body() {
    let mut c = start(settings(), |req: Request<RequestBody>| async move {
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", HeaderValue::from_static("0"));
        let frames = [
            Frame::data(Bytes::from_static(b"ab")),
            Frame::data(Bytes::from_static(b"cde")),
            Frame::trailers(trailers),
        ];
        let mut r = Response::new(Frames(frames.into_iter().collect()));
        r.headers_mut()
            .insert(header::DATE, HeaderValue::from_static(DATE));
        if req.method() == Method::HEAD {
            r.headers_mut()
                .insert(header::CONTENT_LENGTH, HeaderValue::from_static("5"));
        }
        r
    });
    c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    c.expect(&format!(
        "HTTP/1.1 200 OK\r\ndate: {DATE}\r\ntransfer-encoding: chunked\r\n\r\n2\r\nab\r\n3\r\ncde\r\n0\r\ngrpc-status: 0\r\n\r\n"
    ))
    .await;
    c.send("HEAD / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    c.expect(&format!(
        "HTTP/1.1 200 OK\r\ndate: {DATE}\r\ncontent-length: 5\r\n\r\n"
    ))
    .await;
    // Still alive after a bodiless answer.
    c.send("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await;
    assert!(c.rest().await.ends_with("0\r\ngrpc-status: 0\r\n\r\n"));
}

#[tokio::test]
async fn expect_continue_is_sent_when_the_body_is_read() {
    let mut c = start(settings(), echo());
    c.send("PUT / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n")
        .await;
    c.expect("HTTP/1.1 100 Continue\r\n\r\n").await;
    c.send("abc").await;
    c.expect(&ok("abc")).await;
}

#[tokio::test]
async fn expect_continue_unread_body_closes_without_100() {
    let mut c = start(settings(), |_req: Request<RequestBody>| async move {
        text(404, "no")
    });
    c.send("PUT / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n")
        .await;
    assert_eq!(
        c.rest().await,
        format!(
            "HTTP/1.1 404 Not Found\r\ndate: {DATE}\r\ncontent-length: 2\r\nconnection: close\r\n\r\nno"
        )
    );
}

#[tokio::test(start_paused = true)]
async fn header_timeout_closes_idle_silently_and_answers_partial_with_408() {
    let mut c = start(settings(), echo());
    c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    c.expect(&ok("/")).await;
    // Idle past the timeout: closed without a word.
    assert_eq!(c.rest().await, "");
    assert!(c.task.await.unwrap().is_ok());

    let mut c = start(settings(), echo());
    c.send("GET / HTTP/1.1\r\nHo").await;
    let got = c.rest().await;
    assert!(got.starts_with("HTTP/1.1 408 Request Timeout\r\n"), "{got}");
    assert!(got.contains("connection: close\r\n"));
    assert!(matches!(c.task.await.unwrap(), Err(ConnError::HeadTimeout)));
}

#[tokio::test]
async fn drain_closes_an_idle_connection() {
    let mut c = start(settings(), echo());
    c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    c.expect(&ok("/")).await;
    c.idle.start_drain();
    assert_eq!(c.rest().await, "");
}

#[tokio::test]
async fn drain_lets_a_busy_connection_finish_with_close() {
    let (go_tx, go_rx) = watch::channel(false);
    let mut c = start(settings(), move |_req: Request<RequestBody>| {
        let mut go = go_rx.clone();
        async move {
            let _ = go.wait_for(|g| *g).await;
            text(200, "done")
        }
    });
    c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    tokio::task::yield_now().await;
    c.idle.start_drain();
    go_tx.send(true).unwrap();
    assert_eq!(
        c.rest().await,
        format!(
            "HTTP/1.1 200 OK\r\ndate: {DATE}\r\ncontent-length: 4\r\nconnection: close\r\n\r\ndone"
        )
    );
}

#[tokio::test]
async fn a_body_dropped_early_is_discarded_and_the_connection_kept() {
    let mut c = start(settings(), |req: Request<RequestBody>| async move {
        drop(req);
        text(413, "big")
    });
    c.send("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n0123456789")
        .await;
    let head = "HTTP/1.1 413 Payload Too Large\r\ndate: ";
    c.expect(&format!("{head}{DATE}\r\ncontent-length: 3\r\n\r\nbig"))
        .await;
    c.send("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
        .await;
    c.expect(&format!("{head}{DATE}\r\ncontent-length: 3\r\n\r\nbig"))
        .await;
    // Too much to throw away: the connection closes after the answer.
    c.send("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n0123")
        .await;
    c.expect(&format!("{head}{DATE}\r\ncontent-length: 3\r\n\r\nbig"))
        .await;
    assert_eq!(c.rest().await, "");
}

#[tokio::test]
async fn a_client_closing_mid_body_gives_the_service_an_error() {
    let (seen_tx, mut seen_rx) = tokio::sync::mpsc::channel(1);
    let mut c = start(settings(), move |req: Request<RequestBody>| {
        let seen = seen_tx.clone();
        async move {
            let r = req.into_body().collect().await;
            let _ = seen.send(r.err()).await;
            text(400, "")
        }
    });
    c.send("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n01234")
        .await;
    c.io.shutdown().await.unwrap();
    assert_eq!(seen_rx.recv().await.unwrap(), Some(BodyError::Incomplete));
}

#[tokio::test]
async fn a_client_gone_during_a_slow_response_cancels_the_service() {
    struct Guard(Arc<AtomicUsize>);
    impl Drop for Guard {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    let dropped = Arc::new(AtomicUsize::new(0));
    let d = dropped.clone();
    let c = start(settings(), move |_req: Request<RequestBody>| {
        let guard = Guard(d.clone());
        async move {
            let _guard = guard;
            std::future::pending::<()>().await;
            text(200, "")
        }
    });
    let Client { mut io, task, .. } = c;
    io.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    tokio::task::yield_now().await;
    drop(io);
    assert!(matches!(task.await.unwrap(), Err(ConnError::ClientGone)));
    assert_eq!(dropped.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn smuggling_is_refused_before_the_service() {
    let calls = Arc::new(AtomicUsize::new(0));
    let n = calls.clone();
    let mut c = start(settings(), move |_req: Request<RequestBody>| {
        n.fetch_add(1, Ordering::SeqCst);
        async move { text(200, "") }
    });
    c.send("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
        .await;
    let got = c.rest().await;
    assert!(got.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{got}");
    assert!(got.contains("x-sluice-error: ambiguous message framing\r\n"));
    assert!(got.contains("connection: close\r\n"));
    assert!(got.ends_with("\r\n\r\nambiguous message framing\n"));
    assert!(matches!(
        c.task.await.unwrap(),
        Err(ConnError::Parse(ParseError::LengthAndChunked))
    ));
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn oversized_head_gets_431() {
    let mut c = start(settings(), echo());
    let big = "a".repeat(Limits::default().max_header_bytes);
    c.send(&format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n"
    ))
    .await;
    let got = c.rest().await;
    assert!(
        got.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"),
        "{got}"
    );
}

#[tokio::test]
async fn upgrade_hands_over_the_io_with_buffered_bytes() {
    let mut c = start(settings(), |mut req: Request<RequestBody>| {
        let on = req.extensions_mut().remove::<OnUpgrade>();
        async move {
            tokio::spawn(async move {
                let mut up = on.expect("upgrade requested").await.expect("upgraded");
                let mut buf = [0u8; 4];
                up.read_exact(&mut buf).await.unwrap();
                up.write_all(b"pong:").await.unwrap();
                up.write_all(&buf).await.unwrap();
            });
            let mut r = text(101, "");
            r.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
            r.headers_mut()
                .insert(header::UPGRADE, HeaderValue::from_static("echo"));
            r
        }
    });
    // The first tunnel bytes arrive with the head.
    c.send("GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\nping")
        .await;
    c.expect(&format!(
        "HTTP/1.1 101 Switching Protocols\r\ndate: {DATE}\r\nconnection: upgrade\r\nupgrade: echo\r\n\r\npong:ping"
    ))
    .await;
}

#[tokio::test]
async fn a_non_101_answer_to_an_upgrade_resolves_the_upgrade_to_an_error() {
    let (tx, mut rx) = tokio::sync::mpsc::channel(1);
    let mut c = start(settings(), move |mut req: Request<RequestBody>| {
        let on = req.extensions_mut().remove::<OnUpgrade>();
        let tx = tx.clone();
        tokio::spawn(async move {
            let _ = tx.send(on.unwrap().await.is_err()).await;
        });
        async move { text(200, "no") }
    });
    c.send("GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
        .await;
    c.expect(&format!(
        "HTTP/1.1 200 OK\r\ndate: {DATE}\r\ncontent-length: 2\r\n\r\nno"
    ))
    .await;
    assert_eq!(rx.recv().await, Some(true));
}

#[tokio::test]
async fn a_busy_period_ends_with_its_last_request_and_takes_the_buffers_along() {
    // `busy` owns the buffers and consumes itself: once it says `Idle`, the
    // connection holds none. Two pipelined requests are one busy period.
    let (mut client, mut server) = duplex(4096);
    let s = settings();
    let idle = clock(&s);
    let pipelined = "GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\n";
    let conn = Conn {
        io: &mut server,
        rbuf: BytesMut::from(pipelined),
        wbuf: WriteBuf::default(),
        settings: &s,
        interim: &InterimQueue::default(),
    };
    let mut service = echo();
    let deadline = Instant::now() + s.header_timeout;
    let done = conn.busy(&mut service, deadline, &idle).await.unwrap();
    assert!(matches!(done, Busy::Idle));
    let mut got = vec![0; ok("/1").len() + ok("/2").len()];
    client.read_exact(&mut got).await.unwrap();
    assert_eq!(String::from_utf8_lossy(&got), ok("/1") + &ok("/2"));
}

/// The task of an idle connection is as large as this future's largest
/// state; everything but the idle wait is boxed so that it stays small.
#[test]
fn the_connection_future_stays_small() {
    let (_c, mut server) = duplex(16);
    let s = settings();
    let idle = IdleClock::new(s.header_timeout);
    let mut first = BytesMut::new();
    let queue = InterimQueue::default();
    let fut = serve(
        &mut server,
        &mut first,
        &s,
        &queue,
        |_req: Request<RequestBody>| async {
            Response::new(crate::proxy::body::RespBody::Full(None))
        },
        &idle,
    );
    let size = std::mem::size_of_val(&fut);
    // 144 bytes in a debug build (the whole task: `server::conn`'s tests).
    assert!(size <= 160, "h1::serve future is {size} bytes");
}
