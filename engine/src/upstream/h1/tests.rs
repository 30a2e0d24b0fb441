//! The client against scripted backends on loopback: real sockets, exact bytes.

use super::*;
use crate::upstream::connect::UpstreamIo;
use http::{HeaderMap, HeaderValue, Request, header};
use http_body_util::BodyExt;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// The backend's time to answer: long, these backends answer at once.
const LIMIT: Duration = Duration::from_secs(20);
/// Closes the connection without reading another request.
const CLOSE: &[u8] = b"<close>";

/// A backend that answers each request head it reads with the next reply;
/// it returns every byte it read. An empty reply reads the head and closes;
/// [`CLOSE`] closes at once.
async fn backend(replies: Vec<&'static [u8]>) -> (SocketAddr, JoinHandle<Vec<u8>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await.unwrap();
        let mut seen = Vec::new();
        for reply in replies {
            if reply == CLOSE {
                return seen;
            }
            let start = seen.len();
            while !seen[start..].windows(4).any(|w| w == b"\r\n\r\n") {
                let mut buf = [0u8; 4096];
                let n = sock.read(&mut buf).await.unwrap();
                if n == 0 {
                    return seen;
                }
                seen.extend_from_slice(&buf[..n]);
            }
            if reply.is_empty() {
                return seen;
            }
            sock.write_all(reply).await.unwrap();
        }
        // Hold the connection open until the client is done with it.
        let mut rest = Vec::new();
        let _ = sock.read_to_end(&mut rest).await;
        seen.extend_from_slice(&rest);
        seen
    });
    (addr, task)
}

/// A GET on a fresh connection to a backend scripted with `replies`, up to
/// the response head.
async fn answered(replies: Vec<&'static [u8]>) -> (H1Conn, Answer) {
    let (addr, _seen) = backend(replies).await;
    let mut c = conn(addr).await;
    let answer = exchange(&mut c, &get("/"), ReqBody::Empty, LIMIT, None)
        .await
        .unwrap();
    (c, answer)
}

fn pool() -> Arc<Pool> {
    Arc::new(Pool::new(Duration::from_secs(60)))
}

async fn conn(addr: SocketAddr) -> H1Conn {
    H1Conn::new(UpstreamIo::Plain(TcpStream::connect(addr).await.unwrap()))
}

fn get(path: &str) -> request::Parts {
    let (mut parts, ()) = Request::get(path).body(()).unwrap().into_parts();
    parts
        .headers
        .insert(header::HOST, HeaderValue::from_static("backend"));
    parts
}

/// A PUT of /doc, its 7-byte body sent by the client through `tx`, timed
/// as the proxy times a client's body.
fn put_doc() -> (request::Parts, crate::http1::body::BodySender, ReqBody) {
    let (mut parts, ()) = Request::put("/doc").body(()).unwrap().into_parts();
    parts
        .headers
        .insert(header::HOST, HeaderValue::from_static("backend"));
    let decoder = Decoder::new(Framing::Length(7), 0);
    let (tx, rx) = crate::http1::body::channel(decoder).unwrap();
    (
        parts,
        tx,
        ReqBody::H1(rx).timed(crate::body::BodyLimits::idle(LIMIT)),
    )
}

fn back(pool: &Arc<Pool>) -> Return {
    Return {
        pool: pool.clone(),
        backend: 7,
        max_idle: 4,
    }
}

/// Data frames joined, and the trailers if any.
async fn collect(body: ResponseBody) -> (Vec<u8>, Option<HeaderMap>) {
    let collected = body.collect().await.unwrap();
    let trailers = collected.trailers().cloned();
    (collected.to_bytes().to_vec(), trailers)
}

#[tokio::test]
async fn sized_response_and_the_connection_goes_back() {
    let (addr, seen) = backend(vec![
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: 1\r\n\r\nhello",
        b"HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\nno",
    ])
    .await;
    let pool = pool();
    let mut c = conn(addr).await;
    let parts = get("/a?b=c");
    let answer = exchange(&mut c, &parts, ReqBody::Empty, LIMIT, None)
        .await
        .unwrap();
    assert_eq!(answer.head.status, StatusCode::OK);
    assert_eq!(answer.head.headers["x-a"], "1");
    let body = ResponseBody::response(c, answer, back(&pool)).into_body();
    assert_eq!(body.size_hint().exact(), Some(5));
    assert_eq!(collect(body).await.0, b"hello");
    assert_eq!(pool.idle_h1(7), 1);

    // The same connection carries the next request.
    let mut c = pool.take_h1(7).expect("pooled connection");
    let answer = exchange(&mut c, &get("/second"), ReqBody::Empty, LIMIT, None)
        .await
        .unwrap();
    assert_eq!(answer.head.status, StatusCode::NOT_FOUND);
    let body = ResponseBody::response(c, answer, back(&pool)).into_body();
    assert_eq!(collect(body).await.0, b"no");
    drop(pool);
    let seen = seen.await.unwrap();
    assert_eq!(
        String::from_utf8(seen).unwrap(),
        "GET /a?b=c HTTP/1.1\r\nhost: backend\r\n\r\nGET /second HTTP/1.1\r\nhost: backend\r\n\r\n"
    );
}

#[tokio::test]
async fn chunked_response_with_trailers() {
    let pool = pool();
    let (c, answer) = answered(vec![
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nGrpc-Status: 0\r\n\r\n",
    ]).await;
    let body = ResponseBody::response(c, answer, back(&pool)).into_body();
    assert_eq!(body.size_hint().exact(), None);
    let (data, trailers) = collect(body).await;
    assert_eq!(data, b"hello world");
    assert_eq!(trailers.unwrap()["grpc-status"], "0");
    assert_eq!(pool.idle_h1(7), 1);
}

#[tokio::test]
async fn close_delimited_response_is_read_to_eof_and_not_pooled() {
    let pool = pool();
    let (c, answer) = answered(vec![b"HTTP/1.1 200 OK\r\n\r\nuntil close", CLOSE]).await;
    let body = ResponseBody::response(c, answer, back(&pool)).into_body();
    assert_eq!(collect(body).await.0, b"until close");
    assert_eq!(pool.idle_h1(7), 0);
}

#[tokio::test]
async fn interim_responses_are_skipped() {
    let pool = pool();
    let (c, answer) = answered(vec![
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
    ]).await;
    assert_eq!(answer.head.status, StatusCode::NO_CONTENT);
    assert!(!answer.head.headers.contains_key("link"));
    let body = ResponseBody::response(c, answer, back(&pool)).into_body();
    assert!(body.is_end_stream());
    assert_eq!(pool.idle_h1(7), 1);
}

#[tokio::test]
async fn head_response_has_no_body_whatever_its_length() {
    let (addr, _seen) = backend(vec![b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"]).await;
    let pool = pool();
    let mut c = conn(addr).await;
    let mut parts = get("/");
    parts.method = Method::HEAD;
    let answer = exchange(&mut c, &parts, ReqBody::Empty, LIMIT, None)
        .await
        .unwrap();
    assert_eq!(answer.head.headers[header::CONTENT_LENGTH], "1000");
    let body = ResponseBody::response(c, answer, back(&pool)).into_body();
    assert!(body.is_end_stream());
    assert_eq!(pool.idle_h1(7), 1);
}

#[tokio::test]
async fn closed_before_answering_may_have_been_sent_and_replays_only_if_idempotent() {
    use crate::proxy::retry::replay_on_fresh_connection as replay;
    let (addr, _seen) = backend(vec![b""]).await;
    let mut c = conn(addr).await;
    let failed = exchange(&mut c, &get("/"), ReqBody::Empty, LIMIT, None)
        .await
        .unwrap_err();
    assert_eq!(failed.error.kind(), ErrorKind::UpstreamReset);
    // The head was written and nothing came back: a POST may have been processed.
    assert_eq!(failed.error.retryable(), Retry::MaybeSent);
    let untouched = failed.body.is_some();
    assert!(untouched);
    assert!(replay(true, &failed.error, untouched, &Method::GET));
    assert!(replay(true, &failed.error, untouched, &Method::PUT));
    assert!(!replay(true, &failed.error, untouched, &Method::POST));
}

#[tokio::test]
async fn garbage_is_a_protocol_error_and_partial_body_is_closed() {
    let (addr, _seen) = backend(vec![b"SSH-2.0-OpenSSH\r\n\r\n"]).await;
    let mut c = conn(addr).await;
    let failed = exchange(&mut c, &get("/"), ReqBody::Empty, LIMIT, None)
        .await
        .unwrap_err();
    assert_eq!(failed.error.kind(), ErrorKind::UpstreamProtocol);
    // Something came back: never replayed.
    assert_eq!(failed.error.retryable(), Retry::Never);

    let pool = pool();
    let (c, answer) = answered(vec![
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf",
        CLOSE,
    ])
    .await;
    let mut body = ResponseBody::response(c, answer, back(&pool)).into_body();
    assert_eq!(
        body.frame().await.unwrap().unwrap().into_data().unwrap(),
        "half"
    );
    assert_eq!(
        body.frame().await.unwrap().unwrap_err(),
        BodyReadError::Closed
    );
    assert!(body.is_end_stream());
    assert_eq!(pool.idle_h1(7), 0);
}

#[tokio::test]
async fn connection_close_and_extra_bytes_are_not_pooled() {
    let pool = pool();
    let (c, answer) = answered(vec![
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
    ])
    .await;
    assert!(!answer.head.reusable);
    assert_eq!(
        collect(ResponseBody::response(c, answer, back(&pool)).into_body())
            .await
            .0,
        b"ok"
    );
    assert_eq!(pool.idle_h1(7), 0);

    let (c, answer) = answered(vec![b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA"]).await;
    assert_eq!(
        collect(ResponseBody::response(c, answer, back(&pool)).into_body())
            .await
            .0,
        b"ok"
    );
    assert_eq!(pool.idle_h1(7), 0);
}

#[tokio::test]
async fn idle_check_sees_a_closed_connection() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut c = conn(addr).await;
    let (peer, _) = listener.accept().await.unwrap();
    assert!(c.is_idle_alive());
    drop(peer);
    // The FIN arrives asynchronously; the check never blocks, so poll for it.
    let mut closed = false;
    for _ in 0..200 {
        if !c.is_idle_alive() {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(closed, "a closed connection must not look alive");
}

#[tokio::test]
async fn upgrade_hands_over_the_connection_with_buffered_bytes() {
    let pool = pool();
    let (c, answer) = answered(vec![
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: upgrade\r\n\r\nearly",
    ])
    .await;
    assert_eq!(answer.head.status, StatusCode::SWITCHING_PROTOCOLS);
    let body = ResponseBody::response(c, answer, back(&pool)).into_body();
    let mut io = body.into_upgraded().unwrap();
    let mut buf = [0u8; 5];
    io.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"early");
    assert_eq!(pool.idle_h1(7), 0);
}

#[tokio::test]
async fn request_body_keeps_streaming_after_an_early_answer() {
    // An echo: the head goes out at once, the body as the request's arrives.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let echo = tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await.unwrap();
        let mut seen = Vec::new();
        while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
            let mut buf = [0u8; 1024];
            let n = sock.read(&mut buf).await.unwrap();
            seen.extend_from_slice(&buf[..n]);
        }
        sock.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n")
            .await
            .unwrap();
        let end = seen.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        let mut body = seen.split_off(end);
        while body.len() < 7 {
            let mut buf = [0u8; 1024];
            let n = sock.read(&mut buf).await.unwrap();
            body.extend_from_slice(&buf[..n]);
        }
        sock.write_all(&body).await.unwrap();
        let mut rest = Vec::new();
        let _ = sock.read_to_end(&mut rest).await;
        String::from_utf8(seen).unwrap()
    });
    let decoder = Decoder::new(Framing::Length(7), 0);
    let (mut tx, rx) = crate::http1::body::channel(decoder).unwrap();
    let pool = pool();
    let mut c = conn(addr).await;
    let (mut parts, ()) = Request::put("/doc").body(()).unwrap().into_parts();
    parts
        .headers
        .insert(header::HOST, HeaderValue::from_static("backend"));
    let answer = exchange(&mut c, &parts, ReqBody::H1(rx), LIMIT, None)
        .await
        .unwrap();
    assert_eq!(answer.head.status, StatusCode::OK);
    let mut body = ResponseBody::response(c, answer, back(&pool)).into_body();
    // The client's body arrives only now, while the response is being read.
    let feed = async {
        let want = std::future::poll_fn(|cx| tx.poll_want(cx)).await;
        assert_eq!(want, crate::http1::body::Want::Frame);
        tx.decoder = Decoder::new(Framing::None, 0);
        tx.send(Ok(Frame::data(Bytes::from_static(b"payload"))));
    };
    let (_, got) = tokio::join!(feed, async {
        let mut got = Vec::new();
        while let Some(f) = body.frame().await {
            got.extend_from_slice(&f.unwrap().into_data().unwrap());
        }
        got
    });
    assert_eq!(got, b"payload");
    // All of the request went out before the response ended: reusable.
    assert_eq!(pool.idle_h1(7), 1);
    drop(pool);
    let seen = echo.await.unwrap();
    assert!(
        seen.starts_with("PUT /doc HTTP/1.1\r\nhost: backend\r\ncontent-length: 7\r\n\r\n"),
        "{seen}"
    );
}

/// A backend that closes once it has a request head and `body` bytes after it.
async fn closing_after(body: usize) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await.unwrap();
        let mut seen = Vec::new();
        loop {
            if let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n")
                && seen.len() >= end + 4 + body
            {
                return;
            }
            let mut buf = [0u8; 1024];
            match sock.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
    });
    addr
}

/// A backend that ends the connection after part of the body, while the
/// client is awaited for the rest, has given up on the client: not blamed.
/// Before any of the body, it stays the backend's (and the keep-alive
/// race's) doing.
#[tokio::test]
async fn a_backend_closing_while_the_client_is_awaited_is_not_blamed() {
    let cases: [(&'static [u8], ErrorKind); 2] = [
        (b"abc", ErrorKind::UpstreamClosedAwaitingClient),
        (b"", ErrorKind::UpstreamReset),
    ];
    for (sent, kind) in cases {
        let addr = closing_after(sent.len()).await;
        let (parts, mut tx, body) = put_doc();
        let mut c = conn(addr).await;
        // The client sends `sent`, then nothing, and stays.
        let client = async {
            if !sent.is_empty() {
                let want = std::future::poll_fn(|cx| tx.poll_want(cx)).await;
                assert_eq!(want, crate::http1::body::Want::Frame);
                tx.send(Ok(Frame::data(Bytes::from_static(sent))));
            }
            std::future::pending::<()>().await
        };
        let failed = tokio::select! {
            f = exchange(&mut c, &parts, body, LIMIT, None) => f.unwrap_err(),
            () = client => unreachable!(),
        };
        assert_eq!(failed.error.kind(), kind, "after {sent:?}");
    }
}

/// How a scripted backend ends a connection.
#[derive(Clone, Copy, Debug)]
enum Close {
    /// A FIN.
    Fin,
    /// An RST (`SO_LINGER` 0).
    Reset,
}

/// A backend that reports once it has a request head and `body` bytes after
/// it, then ends the connection the way `close` says when told to, and
/// reports that too.
async fn closing_when_told(
    body: usize,
    close: Close,
) -> (
    SocketAddr,
    tokio::sync::oneshot::Receiver<()>,
    tokio::sync::oneshot::Sender<()>,
    tokio::sync::oneshot::Receiver<()>,
) {
    use tokio::sync::oneshot;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (got_tx, got) = oneshot::channel();
    let (told, told_rx) = oneshot::channel::<()>();
    let (closed_tx, closed) = oneshot::channel();
    tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await.unwrap();
        let mut seen = Vec::new();
        while seen
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .is_none_or(|end| seen.len() < end + 4 + body)
        {
            let mut buf = [0u8; 1024];
            let n = sock.read(&mut buf).await.unwrap();
            assert!(n > 0, "the client closed first");
            seen.extend_from_slice(&buf[..n]);
        }
        let _ = got_tx.send(());
        let _ = told_rx.await;
        if let Close::Reset = close {
            sock.set_zero_linger().unwrap();
        }
        drop(sock);
        let _ = closed_tx.send(());
    });
    (addr, got, told, closed)
}

/// The race of a backend giving up on a slow client: it ends the
/// connection while we wait on the client's body, and the client's next
/// bytes (here the last of the body) wake us before we have looked at the
/// backend's side. The close came first, so the backend is not blamed,
/// whether it is seen on the read side (a FIN) or as the refused write of
/// those bytes (a reset). Before, the write ended the `Client` phase first
/// and the backend was blamed (`UpstreamReset`, toward ejection).
#[tokio::test]
async fn a_backend_that_closed_while_the_client_was_awaited_is_not_blamed_when_its_bytes_come_first()
 {
    // Without the yield, a reset is (most likely) not reported yet when the
    // exchange is polled: only the refused write shows it.
    for (close, reported) in [
        (Close::Fin, true),
        (Close::Reset, true),
        (Close::Reset, false),
    ] {
        let (addr, got, told, closed) = closing_when_told(3, close).await;
        let (parts, mut tx, body) = put_doc();
        let mut c = conn(addr).await;
        let mut exchange = pin!(exchange(&mut c, &parts, body, LIMIT, None));
        // The client sends "abc"; the exchange writes it and waits for more.
        let client = async {
            let want = std::future::poll_fn(|cx| tx.poll_want(cx)).await;
            assert_eq!(want, crate::http1::body::Want::Frame);
            tx.send(Ok(Frame::data(Bytes::from_static(b"abc"))));
            got.await.unwrap();
        };
        tokio::select! {
            _ = &mut exchange => panic!("{close:?}: the exchange ended early"),
            () = client => {}
        }
        // The backend closes while the exchange is not polled; a yield lets
        // the runtime's reactor see it, as it would during a real wait.
        told.send(()).unwrap();
        closed.await.unwrap();
        if reported {
            tokio::task::yield_now().await;
        }
        // The rest of the body arrives, and only then is the exchange polled.
        tx.send(Ok(Frame::data(Bytes::from_static(b"defg"))));
        let failed = exchange.await.unwrap_err();
        assert_eq!(
            failed.error.kind(),
            ErrorKind::UpstreamClosedAwaitingClient,
            "{close:?} (reported: {reported}): {:?}",
            failed.error
        );
    }
}
