//! Exact bytes on the wire for each framing.

use super::*;
use crate::http1::framing::{request_framing, response_framing};
use http::{HeaderValue, Method};
use http_body::SizeHint;

const DATE: &str = "Sun, 06 Nov 1994 08:49:37 GMT";

fn headers(fields: &[(&'static str, &'static str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(header::DATE, HeaderValue::from_static(DATE));
    for (n, v) in fields {
        h.append(*n, HeaderValue::from_static(v));
    }
    h
}

fn head(
    status: u16,
    fields: &[(&'static str, &'static str)],
    framing: Framing,
    conn: ConnHeader,
) -> String {
    let mut out = Vec::new();
    encode_head(
        &mut out,
        StatusCode::from_u16(status).unwrap(),
        &headers(fields),
        framing,
        conn,
    );
    String::from_utf8(out).unwrap()
}

#[test]
fn content_length_head() {
    assert_eq!(
        head(
            200,
            &[("x-a", "1"), ("set-cookie", "a"), ("set-cookie", "b")],
            Framing::Length(5),
            ConnHeader::AsIs
        ),
        format!(
            "HTTP/1.1 200 OK\r\ndate: {DATE}\r\nx-a: 1\r\nset-cookie: a\r\nset-cookie: b\r\ncontent-length: 5\r\n\r\n"
        )
    );
}

#[test]
fn chunked_head_replaces_the_backends_framing() {
    assert_eq!(
        head(
            200,
            &[
                ("content-length", "9"),
                ("transfer-encoding", "gzip"),
                ("connection", "x")
            ],
            Framing::Chunked,
            ConnHeader::Close
        ),
        format!(
            "HTTP/1.1 200 OK\r\ndate: {DATE}\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n"
        )
    );
}

#[test]
fn bodiless_statuses_and_head() {
    let hint = SizeHint::with_exact(7);
    assert_eq!(
        response_framing(true, StatusCode::OK, &hint, false),
        Framing::None
    );
    assert_eq!(
        response_framing(false, StatusCode::NO_CONTENT, &hint, false),
        Framing::None
    );
    assert_eq!(
        response_framing(false, StatusCode::NOT_MODIFIED, &hint, false),
        Framing::None
    );
    assert_eq!(
        response_framing(false, StatusCode::SWITCHING_PROTOCOLS, &hint, false),
        Framing::None
    );
    assert_eq!(
        response_framing(false, StatusCode::OK, &hint, false),
        Framing::Length(7)
    );
    assert_eq!(
        response_framing(false, StatusCode::OK, &SizeHint::new(), false),
        Framing::Chunked
    );
    assert_eq!(
        response_framing(false, StatusCode::OK, &SizeHint::new(), true),
        Framing::Close
    );
    // HEAD and 304 keep the representation's length; 204 drops it.
    assert_eq!(
        head(
            200,
            &[("content-length", "7")],
            Framing::None,
            ConnHeader::AsIs
        ),
        format!("HTTP/1.1 200 OK\r\ndate: {DATE}\r\ncontent-length: 7\r\n\r\n")
    );
    assert_eq!(
        head(
            304,
            &[("content-length", "7")],
            Framing::None,
            ConnHeader::AsIs
        ),
        format!("HTTP/1.1 304 Not Modified\r\ndate: {DATE}\r\ncontent-length: 7\r\n\r\n")
    );
    assert_eq!(
        head(
            204,
            &[("content-length", "0")],
            Framing::None,
            ConnHeader::KeepAlive
        ),
        format!("HTTP/1.1 204 No Content\r\ndate: {DATE}\r\nconnection: keep-alive\r\n\r\n")
    );
    assert_eq!(
        head(
            101,
            &[("connection", "upgrade"), ("upgrade", "websocket")],
            Framing::None,
            ConnHeader::AsIs
        ),
        format!(
            "HTTP/1.1 101 Switching Protocols\r\ndate: {DATE}\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n"
        )
    );
}

#[test]
fn unknown_status_has_an_empty_reason_and_a_date_is_added() {
    let mut out = Vec::new();
    encode_head(
        &mut out,
        StatusCode::from_u16(599).unwrap(),
        &HeaderMap::new(),
        Framing::Length(0),
        ConnHeader::AsIs,
    );
    let s = String::from_utf8(out).unwrap();
    assert!(
        s.starts_with("HTTP/1.1 599 \r\ncontent-length: 0\r\ndate: "),
        "{s}"
    );
    assert!(s.ends_with(" GMT\r\n\r\n"));
}

/// Flushes `w`, allowing for the one turn the first write waits.
fn flush<I: AsyncWrite + Unpin>(w: &mut WriteBuf, io: &mut I) -> io::Result<()> {
    let cx = &mut Context::from_waker(std::task::Waker::noop());
    match w.poll_flush(io, cx) {
        Poll::Pending => {}
        Poll::Ready(r) => panic!("the first write did not wait a turn: {r:?}"),
    }
    match w.poll_flush(io, cx) {
        Poll::Ready(r) => r,
        Poll::Pending => panic!("a writable sink left the flush pending"),
    }
}

/// Counts wake-ups.
struct Wakes(std::sync::atomic::AtomicUsize);

impl std::task::Wake for Wakes {
    fn wake(self: std::sync::Arc<Self>) {
        self.wake_by_ref()
    }
    fn wake_by_ref(self: &std::sync::Arc<Self>) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

#[test]
fn each_batch_waits_one_turn_before_it_is_written() {
    let wakes = std::sync::Arc::new(Wakes(0.into()));
    let waker = std::task::Waker::from(wakes.clone());
    let cx = &mut Context::from_waker(&waker);
    let woken = || wakes.0.load(std::sync::atomic::Ordering::Relaxed);
    let mut w = WriteBuf::default();
    let mut out = Vec::new();
    // Nothing queued: nothing to wait for.
    assert!(matches!(w.poll_flush(&mut out, cx), Poll::Ready(Ok(()))));
    assert_eq!(woken(), 0);
    for (round, body) in [&b"one"[..], b"two"].into_iter().enumerate() {
        w.push_data(Framing::Length(3), Bytes::from_static(body));
        assert!(w.poll_flush(&mut out, cx).is_pending());
        assert_eq!(woken(), round + 1, "it asks to be polled again");
        assert_eq!(out.len(), round * 3, "and writes nothing yet");
        assert!(matches!(w.poll_flush(&mut out, cx), Poll::Ready(Ok(()))));
        assert_eq!(&out[round * 3..], body);
    }
    assert_eq!(woken(), 2);
}

#[test]
fn chunks_small_copied_large_by_reference_and_trailers() {
    let mut w = WriteBuf::default();
    w.push_data(Framing::Chunked, Bytes::from_static(b"hello"));
    assert!(!w.is_full());
    w.push_data(Framing::Chunked, Bytes::new());
    let big = Bytes::from(vec![b'x'; COPY_MAX + 1]);
    w.push_data(Framing::Chunked, big.clone());
    assert!(w.is_full());
    let mut out = Vec::new();
    flush(&mut w, &mut out).unwrap();
    assert!(w.is_empty());
    let mut want = b"5\r\nhello\r\n2001\r\n".to_vec();
    want.extend_from_slice(&big);
    want.extend_from_slice(b"\r\n");
    assert_eq!(out, want);

    let mut end = Vec::new();
    encode_chunked_end(&mut end, Some(&headers(&[("grpc-status", "0")])));
    assert_eq!(
        end,
        format!("0\r\ndate: {DATE}\r\ngrpc-status: 0\r\n\r\n").as_bytes()
    );
    let mut end = Vec::new();
    encode_chunked_end(&mut end, None);
    assert_eq!(end, b"0\r\n\r\n");
}

#[test]
fn the_last_chunk_follows_a_large_held_frame() {
    let big = Bytes::from(vec![b'y'; COPY_MAX + 1]);
    let mut w = WriteBuf::default();
    w.push_data(Framing::Chunked, big.clone());
    w.push_chunked_end();
    let mut out = Vec::new();
    flush(&mut w, &mut out).unwrap();
    let mut want = b"2001\r\n".to_vec();
    want.extend_from_slice(&big);
    want.extend_from_slice(b"\r\n0\r\n\r\n");
    assert_eq!(out, want);

    // With nothing held, it is appended to the buffer.
    let mut w = WriteBuf::default();
    w.push_data(Framing::Chunked, Bytes::from_static(b"hi"));
    w.push_chunked_end();
    let mut out = Vec::new();
    flush(&mut w, &mut out).unwrap();
    assert_eq!(out, b"2\r\nhi\r\n0\r\n\r\n");
}

#[test]
fn length_bodies_are_raw() {
    let mut w = WriteBuf::default();
    w.push_data(Framing::Length(3), Bytes::from_static(b"abc"));
    assert_eq!(w.buf, b"abc");
}

/// Writes one byte per call, to check partial writes across the three parts.
struct Trickle(Vec<u8>);

impl AsyncWrite for Trickle {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        b: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.0.push(b[0]);
        Poll::Ready(Ok(1))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[test]
fn partial_writes_resume_where_they_stopped() {
    let mut w = WriteBuf::default();
    w.buf.extend_from_slice(b"HEAD");
    let big = Bytes::from(vec![b'y'; COPY_MAX + 3]);
    w.push_data(Framing::Chunked, big.clone());
    let mut io = Trickle(Vec::new());
    flush(&mut w, &mut io).unwrap();
    let mut want = b"HEAD2003\r\n".to_vec();
    want.extend_from_slice(&big);
    want.extend_from_slice(b"\r\n");
    assert_eq!(io.0, want);
}

#[test]
fn dates() {
    assert_eq!(&imf_fixdate(0), b"Thu, 01 Jan 1970 00:00:00 GMT");
    assert_eq!(&imf_fixdate(784_111_777), b"Sun, 06 Nov 1994 08:49:37 GMT");
    assert_eq!(&imf_fixdate(951_782_400), b"Tue, 29 Feb 2000 00:00:00 GMT");
    assert_eq!(
        &imf_fixdate(4_102_444_799),
        b"Thu, 31 Dec 2099 23:59:59 GMT"
    );
    assert_eq!(date().len(), 29);
}

#[test]
fn request_head_replaces_framing_fields() {
    let mut headers = HeaderMap::new();
    headers.insert(header::HOST, HeaderValue::from_static("example.com"));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("99"));
    headers.insert(header::TRANSFER_ENCODING, HeaderValue::from_static("gzip"));
    headers.append("x-a", HeaderValue::from_static("1"));
    headers.append("x-a", HeaderValue::from_static("2"));
    let mut out = Vec::new();
    encode_request(
        &mut out,
        &Method::POST,
        "/p?q=1",
        &headers,
        Framing::Length(5),
    );
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "POST /p?q=1 HTTP/1.1\r\nhost: example.com\r\nx-a: 1\r\nx-a: 2\r\ncontent-length: 5\r\n\r\n"
    );
    let mut out = Vec::new();
    encode_request(
        &mut out,
        &Method::GET,
        "/",
        &HeaderMap::new(),
        Framing::Chunked,
    );
    assert_eq!(out, b"GET / HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n");
}

#[test]
fn request_framing_rules() {
    let none = HeaderMap::new();
    let mut with_cl = HeaderMap::new();
    with_cl.insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    assert_eq!(request_framing(&Method::GET, &none, Some(0)), Framing::None);
    assert_eq!(
        request_framing(&Method::GET, &with_cl, Some(0)),
        Framing::Length(0)
    );
    assert_eq!(
        request_framing(&Method::POST, &none, Some(0)),
        Framing::Length(0)
    );
    assert_eq!(
        request_framing(&Method::PUT, &none, Some(7)),
        Framing::Length(7)
    );
    assert_eq!(
        request_framing(&Method::POST, &none, None),
        Framing::Chunked
    );
}
