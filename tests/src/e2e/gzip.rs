//! Response compression end to end (`proxy::compress`): what h1 and h2c
//! clients receive decodes to exactly what the origin sent; headers are
//! rewritten; server-sent events arrive one by one through the compressor;
//! the skip rules hold; a large body streams in flat memory.

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use parking_lot::Mutex;
use sluice::Config;
use sluice_e2e::harness::client::{H1, H2, RawConn, Reply, collect};
use sluice_e2e::harness::memory::PeakGrowth;
use sluice_e2e::harness::origin::{Body, Origin, reply};
use sluice_e2e::harness::pattern::PatternCheck;
use sluice_e2e::harness::proxy::{Proxy, config};
use sluice_e2e::harness::{BoxError, isolate, within};
use std::io::{Read, Write};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::mpsc;

/// 2 KiB of text: above the default 1 KiB minimum.
fn text_body() -> Vec<u8> {
    (0..64)
        .flat_map(|i| format!("line {i:04} of a compressible text body\n").into_bytes())
        .collect()
}

/// Line `i` of the `/chunked` NDJSON body: `{"chunk":i}` and a newline.
fn ndjson_line(i: usize) -> String {
    format!("{}\n", serde_json::json!({ "chunk": i }))
}

fn gunzip(gz: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(gz)
        .read_to_end(&mut out)
        .expect("a complete, valid gzip stream");
    out
}

fn gzip(plain: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(plain).expect("compress");
    e.finish().expect("compress")
}

pub(super) fn with_type(ct: &'static str, body: Body) -> Response<Body> {
    let mut r = Response::new(body);
    r.headers_mut()
        .insert("content-type", ct.parse().expect("ct"));
    r
}

fn gzip_config(origin: &Origin) -> Config {
    let mut c = config(&[origin.addr()]);
    c.compression.enabled = true;
    c
}

async fn text_origin() -> Origin {
    Origin::http1()
        .route("/small", |_| async {
            let mut r = with_type("text/plain", reply::full(text_body()));
            r.headers_mut()
                .insert("etag", "\"v1\"".parse().expect("etag"));
            r.headers_mut()
                .insert("vary", "Origin".parse().expect("vary"));
            r.headers_mut()
                .insert("accept-ranges", "bytes".parse().expect("ar"));
            r
        })
        .route("/tiny", |_| async {
            with_type("text/plain", reply::full("short"))
        })
        .route("/empty", |_| async {
            // No length known (one empty chunk): compressed, to an empty gzip member.
            with_type(
                "application/json",
                reply::frames(vec![Frame::data(Bytes::new())]),
            )
        })
        .route("/empty-known", |_| async {
            // `Content-Length: 0`: nothing to gain, left alone.
            with_type("application/json", reply::full(""))
        })
        .route("/chunked", |_| async {
            let frames = (0..50)
                .map(|i| Frame::data(Bytes::from(ndjson_line(i))))
                .collect();
            with_type("application/x-ndjson+json", reply::frames(frames))
        })
        .route("/png", |_| async {
            with_type("image/png", reply::full(text_body()))
        })
        .route("/no-transform", |_| async {
            let mut r = with_type("text/plain", reply::full(text_body()));
            r.headers_mut()
                .insert("cache-control", "public, no-transform".parse().expect("cc"));
            r
        })
        .route("/not-modified", |_| async {
            let mut r = with_type("text/plain", reply::empty());
            *r.status_mut() = StatusCode::NOT_MODIFIED;
            r.headers_mut()
                .insert("etag", "\"v1\"".parse().expect("etag"));
            r
        })
        .route("/pre-gzipped", |_| async {
            let mut r = with_type("text/plain", reply::full(gzip(&text_body())));
            r.headers_mut()
                .insert("content-encoding", "gzip".parse().expect("ce"));
            r
        })
        .start()
        .await
}

/// One GET through either client, with an optional `Accept-Encoding`
/// (`compression.rs` uses it too).
pub(super) enum Client {
    H1(H1),
    H2(H2),
}

impl Client {
    pub(super) async fn send(
        &mut self,
        method: &str,
        path: &str,
        ae: Option<&str>,
    ) -> Response<Incoming> {
        let mut req = match self {
            Client::H1(_) => Request::builder().uri(path).header("host", "test.local"),
            Client::H2(_) => Request::builder().uri(format!("http://test.local{path}")),
        }
        .method(method);
        if let Some(ae) = ae {
            req = req.header("accept-encoding", ae);
        }
        let req = req.body(reply::empty()).expect("request");
        match self {
            Client::H1(c) => c.send(req).await,
            Client::H2(c) => c.send(req).await,
        }
    }

    pub(super) async fn get(&mut self, path: &str, ae: Option<&str>) -> Reply {
        collect(self.send("GET", path, ae).await).await
    }
}

pub(super) async fn clients(proxy: &Proxy) -> [(&'static str, Client); 2] {
    [
        ("h1", Client::H1(H1::connect(proxy.addr()).await)),
        ("h2c", Client::H2(H2::connect_h2c(proxy.addr()).await)),
    ]
}

#[tokio::test]
async fn bodies_decode_to_what_the_origin_sent_over_h1_and_h2c() {
    let origin = text_origin().await;
    let proxy = Proxy::start(&gzip_config(&origin)).await;
    for (name, mut client) in clients(&proxy).await {
        let r = client.get("/small", Some("gzip, br")).await;
        assert_eq!(r.status, 200, "{name}");
        assert_eq!(r.header("content-encoding"), Some("gzip"), "{name}");
        assert_eq!(r.header("content-length"), None, "{name}");
        assert_eq!(gunzip(&r.body), text_body(), "{name}");

        let r = client.get("/empty", Some("gzip")).await;
        assert_eq!(r.header("content-encoding"), Some("gzip"), "{name}");
        assert_eq!(gunzip(&r.body), b"", "{name}");

        let r = client.get("/empty-known", Some("gzip")).await;
        assert_eq!(r.header("content-encoding"), None, "{name}");
        assert_eq!(r.body, b"" as &[u8], "{name}");

        let r = client.get("/chunked", Some("*;q=0.5")).await;
        assert_eq!(r.header("content-encoding"), Some("gzip"), "{name}");
        let want: String = (0..50).map(ndjson_line).collect();
        assert_eq!(gunzip(&r.body), want.as_bytes(), "{name}");

        // Refused by q=0: identity, but marked as varying.
        let r = client.get("/small", Some("gzip;q=0, identity")).await;
        assert_eq!(r.header("content-encoding"), None, "{name}");
        assert_eq!(r.body, text_body(), "{name}");
        assert_eq!(r.header("vary"), Some("Origin, Accept-Encoding"), "{name}");
    }
}

#[tokio::test]
async fn compressed_responses_get_their_headers_rewritten() {
    let origin = text_origin().await;
    let proxy = Proxy::start(&gzip_config(&origin)).await;
    for (name, mut client) in clients(&proxy).await {
        let r = client.get("/small", Some("gzip")).await;
        assert_eq!(r.header("content-encoding"), Some("gzip"), "{name}");
        assert_eq!(r.header("etag"), Some("W/\"v1\""), "{name}");
        assert_eq!(
            r.headers.get_all("vary").iter().collect::<Vec<_>>(),
            ["Origin, Accept-Encoding"],
            "{name}"
        );
        assert_eq!(r.header("accept-ranges"), None, "{name}");
        assert_eq!(r.header("content-length"), None, "{name}");
    }
    // On HTTP/1.1 the unknown length means chunked framing.
    let mut raw = RawConn::connect(proxy.addr()).await;
    raw.send(b"GET /small HTTP/1.1\r\nHost: a.test\r\nAccept-Encoding: gzip\r\n\r\n")
        .await;
    let resp = raw.read_response().await;
    assert_eq!(resp.status, 200, "{}", resp.head);
    assert_eq!(
        resp.header("transfer-encoding"),
        Some("chunked"),
        "{}",
        resp.head
    );
    assert_eq!(resp.header("content-length"), None, "{}", resp.head);
    assert_eq!(gunzip(&resp.body), text_body());
}

#[tokio::test]
async fn skip_rules_hold_end_to_end() {
    let origin = text_origin().await;
    let mut cfg = gzip_config(&origin);
    cfg.routes[0].compress = None;
    let proxy = Proxy::start(&cfg).await;
    for (name, mut client) in clients(&proxy).await {
        // HEAD: the head as the origin sent it.
        let resp = client.send("HEAD", "/small", Some("gzip")).await;
        assert_eq!(resp.status(), 200, "{name}");
        assert!(!resp.headers().contains_key("content-encoding"), "{name}");
        assert_eq!(resp.headers()["etag"], "\"v1\"", "{name}");
        collect(resp).await;

        let r = client.get("/not-modified", Some("gzip")).await;
        assert_eq!(r.status, 304, "{name}");
        assert_eq!(r.header("content-encoding"), None, "{name}");
        assert_eq!(r.header("etag"), Some("\"v1\""), "{name}");

        let r = client.get("/no-transform", Some("gzip")).await;
        assert_eq!(r.header("content-encoding"), None, "{name}");
        assert_eq!(r.body, text_body(), "{name}");

        let r = client.get("/tiny", Some("gzip")).await;
        assert_eq!(
            r.header("content-encoding"),
            None,
            "{name}: below min_length"
        );
        assert_eq!(r.text(), "short", "{name}");

        let r = client.get("/png", Some("gzip")).await;
        assert_eq!(
            r.header("content-encoding"),
            None,
            "{name}: type not listed"
        );
        assert_eq!(r.body, text_body(), "{name}");

        // Already encoded, to a client that did not ask: passed through as
        // is, never decompressed, never compressed twice.
        let gz = gzip(&text_body());
        let r = client.get("/pre-gzipped", None).await;
        assert_eq!(r.header("content-encoding"), Some("gzip"), "{name}");
        assert_eq!(r.body, gz, "{name}: byte for byte");
        let r = client.get("/pre-gzipped", Some("gzip")).await;
        assert_eq!(r.body, gz, "{name}: not compressed twice");
    }
}

#[tokio::test]
async fn the_route_switch_overrides_the_global_one() {
    let origin = text_origin().await;
    let mut cfg = gzip_config(&origin);
    cfg.routes[0].compress = Some(false);
    let proxy = Proxy::start(&cfg).await;
    let mut c = H1::connect(proxy.addr()).await;
    let req = Request::get("/small")
        .header("host", "test.local")
        .header("accept-encoding", "gzip")
        .body(reply::empty())
        .expect("request");
    let r = collect(c.send(req).await).await;
    assert_eq!(r.header("content-encoding"), None);
    assert_eq!(r.header("vary"), Some("Origin"), "off means untouched");

    let mut cfg = config(&[origin.addr()]);
    cfg.routes[0].compress = Some(true);
    let proxy = Proxy::start(&cfg).await;
    let mut c = H1::connect(proxy.addr()).await;
    let req = Request::get("/small")
        .header("host", "test.local")
        .header("accept-encoding", "gzip")
        .body(reply::empty())
        .expect("request");
    let r = collect(c.send(req).await).await;
    assert_eq!(r.header("content-encoding"), Some("gzip"));
}

/// A response body the test feeds one chunk at a time.
pub(super) struct ChannelBody(pub(super) mpsc::UnboundedReceiver<Bytes>);

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = BoxError;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.0.poll_recv(cx).map(|b| b.map(|b| Ok(Frame::data(b))))
    }
}

/// Where a test puts the receiving end of the next `/events` stream.
pub(super) type EventSlot = Arc<Mutex<Option<mpsc::UnboundedReceiver<Bytes>>>>;

/// An origin whose `/events` streams `text/event-stream` chunks as the test
/// sends them through the receiver it put in the slot (one per request).
pub(super) async fn events_origin() -> (Origin, EventSlot) {
    let slot: EventSlot = Arc::new(Mutex::new(None));
    let handler_slot = slot.clone();
    let origin = Origin::http1()
        .route("/events", move |_| {
            let rx = handler_slot
                .lock()
                .take()
                .expect("one stream per test step");
            async move { with_type("text/event-stream", ChannelBody(rx).boxed()) }
        })
        .start()
        .await;
    (origin, slot)
}

#[tokio::test]
async fn server_sent_events_arrive_one_by_one_through_gzip() {
    let (origin, slot) = events_origin().await;
    let proxy = Proxy::start(&gzip_config(&origin)).await;
    for (name, mut client) in clients(&proxy).await {
        let (tx, rx) = mpsc::unbounded_channel();
        *slot.lock() = Some(rx);
        tx.send(Bytes::from_static(b"data: 1\n\n"))
            .expect("origin alive");
        let resp = client.send("GET", "/events", Some("gzip")).await;
        assert_eq!(resp.headers()["content-encoding"], "gzip", "{name}");
        let mut body = resp.into_body();
        let mut inflate = flate2::Decompress::new(false);
        let (mut wire, mut seen, mut header_left) = (Vec::new(), Vec::new(), 10usize);
        for n in 1..=5 {
            let event = format!("data: {n}\n\n");
            // Read until this event decodes; the next is sent only then, so
            // a proxy that held bytes back would hang here (bounded by `within`).
            while !seen.ends_with(event.as_bytes()) {
                let frame = within("the next compressed event", body.frame())
                    .await
                    .expect("the stream is open")
                    .expect("no error");
                let Ok(data) = frame.into_data() else {
                    continue;
                };
                wire.extend_from_slice(&data);
                let skip = header_left.min(data.len());
                header_left -= skip;
                let mut out = [0u8; 256];
                let mut input = &data[skip..];
                while !input.is_empty() {
                    let before = (inflate.total_in(), inflate.total_out());
                    inflate
                        .decompress(input, &mut out, flate2::FlushDecompress::Sync)
                        .expect("valid deflate");
                    let used = usize::try_from(inflate.total_in() - before.0).expect("small");
                    let made = usize::try_from(inflate.total_out() - before.1).expect("small");
                    seen.extend_from_slice(&out[..made]);
                    input = &input[used..];
                    if used == 0 && made == 0 {
                        break;
                    }
                }
            }
            let want: String = (1..=n).map(|i| format!("data: {i}\n\n")).collect();
            assert_eq!(
                seen,
                want.as_bytes(),
                "{name}: exactly the events sent so far"
            );
            if n < 5 {
                tx.send(Bytes::from(format!("data: {}\n\n", n + 1)))
                    .expect("origin alive");
            }
        }
        drop(tx);
        while let Some(frame) = within("the end of the stream", body.frame()).await {
            if let Ok(data) = frame.expect("no error").into_data() {
                wire.extend_from_slice(&data);
            }
        }
        let all: String = (1..=5).map(|i| format!("data: {i}\n\n")).collect();
        assert_eq!(
            gunzip(&wire),
            all.as_bytes(),
            "{name}: a complete gzip stream"
        );
    }
}

const LARGE: u64 = 256 * 1024 * 1024;
/// Far below the body size: a proxy that buffered the body would exceed it.
const MAX_GROWTH_MIB: u64 = 64;

#[test]
fn a_large_body_is_compressed_in_flat_memory() {
    let out = isolate::run(
        "gzip::large_compressed_transfer_alone_in_a_child_process",
        Duration::from_secs(600),
    );
    eprintln!("{out}");
}

/// Feeds decompressed bytes to the pattern check, holding none of them.
pub(super) struct CheckSink(pub(super) PatternCheck);

impl Write for CheckSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.feed(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_compressed_transfer_alone_in_a_child_process() {
    if !isolate::is_child() {
        return;
    }
    let origin = Origin::http1()
        .route("/big", |_| async {
            with_type("text/plain", reply::pattern(LARGE))
        })
        .start()
        .await;
    let proxy = Proxy::start(&gzip_config(&origin)).await;
    let memory = PeakGrowth::start();
    for (name, mut client) in clients(&proxy).await {
        let resp = client.send("GET", "/big", Some("gzip")).await;
        assert_eq!(resp.headers()["content-encoding"], "gzip", "{name}");
        let mut body = resp.into_body();
        let mut gz = flate2::write::GzDecoder::new(CheckSink(PatternCheck::default()));
        let mut wire = 0u64;
        while let Some(frame) = within("the next frame", body.frame()).await {
            if let Ok(data) = frame.expect("no error").into_data() {
                wire += data.len() as u64;
                gz.write_all(&data).expect("valid gzip");
            }
        }
        gz.try_finish().expect("gzip trailer and CRC");
        let check = &gz.get_ref().0;
        assert_eq!(check.count(), LARGE, "{name}");
        assert!(check.ok(), "{name}: corrupt at {:?}", check.corrupt_at());
        eprintln!("{name}: {LARGE} bytes → {wire} on the wire");
    }
    let growth = memory.finish();
    eprintln!("peak RSS growth: {growth} MiB");
    assert!(growth <= MAX_GROWTH_MIB, "RSS grew {growth} MiB");
}
