//! Brotli and zstd end to end (`proxy::compress`), beside gzip (`gzip.rs`):
//! which coding `Accept-Encoding` and `compression.algorithms` pick, bodies
//! that decode to exactly what the origin sent (with the `brotli` and
//! `zstd` crates' decoders), the skip rules, server-sent events that decode
//! one by one, and a large body through each in flat memory, over h1 and
//! h2c.

use super::gzip::{CheckSink, Client, clients, events_origin, with_type};
use bytes::Bytes;
use http::StatusCode;
use http_body_util::BodyExt;
use sluice::Config;
use sluice::proxy::compress::Encoding;
use sluice_e2e::harness::client::{H1, collect};
use sluice_e2e::harness::memory::PeakGrowth;
use sluice_e2e::harness::origin::{Origin, reply};
use sluice_e2e::harness::pattern::PatternCheck;
use sluice_e2e::harness::proxy::{Proxy, config};
use sluice_e2e::harness::{isolate, within};
use std::io::{Read, Write};
use std::time::Duration;
use tokio::sync::mpsc;

/// 4 KiB of JSON-ish text: above the default 1 KiB minimum.
fn text_body() -> Vec<u8> {
    (0..64)
        .flat_map(|i| {
            format!("{{\"line\":{i},\"text\":\"of a compressible body\"}}\n").into_bytes()
        })
        .collect()
}

/// Decodes a complete stream of `coding`; panics on a bad or cut one.
fn decode(coding: &str, wire: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    match coding {
        "br" => {
            brotli::Decompressor::new(wire, 4096)
                .read_to_end(&mut out)
                .expect("a complete, valid brotli stream");
        }
        "zstd" => out = zstd::stream::decode_all(wire).expect("a complete, valid zstd frame"),
        "gzip" => {
            flate2::read::GzDecoder::new(wire)
                .read_to_end(&mut out)
                .expect("a complete, valid gzip stream");
        }
        other => panic!("unexpected coding {other}"),
    }
    out
}

/// All a streaming decoder can produce from a prefix of the stream.
fn decode_prefix(coding: &str, wire: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let mut drain = |r: &mut dyn Read| {
        while let Ok(n) = r.read(&mut buf) {
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
    };
    match coding {
        "br" => drain(&mut brotli::Decompressor::new(wire, 4096)),
        "zstd" => drain(&mut zstd::stream::read::Decoder::new(wire).expect("decoder")),
        other => panic!("unexpected coding {other}"),
    }
    out
}

/// Compression on, offering zstd, then brotli, then gzip.
fn all_config(origin: &Origin) -> Config {
    let mut c = config(&[origin.addr()]);
    c.compression.enabled = true;
    c.compression.algorithms = vec![Encoding::Zstd, Encoding::Br, Encoding::Gzip];
    c
}

async fn text_origin() -> Origin {
    Origin::http1()
        .route("/small", |_| async {
            let mut r = with_type("application/json", reply::full(text_body()));
            r.headers_mut()
                .insert("etag", "\"v1\"".parse().expect("etag"));
            r
        })
        .route("/tiny", |_| async {
            with_type("text/plain", reply::full("short"))
        })
        .route("/png", |_| async {
            with_type("image/png", reply::full(text_body()))
        })
        .route("/no-transform", |_| async {
            let mut r = with_type("text/plain", reply::full(text_body()));
            r.headers_mut()
                .insert("cache-control", "no-transform".parse().expect("cc"));
            r
        })
        .route("/partial", |_| async {
            let mut r = with_type("text/plain", reply::full(text_body()));
            *r.status_mut() = StatusCode::PARTIAL_CONTENT;
            r.headers_mut().insert(
                "content-range",
                format!("bytes 0-{}/99999", text_body().len() - 1)
                    .parse()
                    .expect("cr"),
            );
            r
        })
        .route("/pre-encoded", |_| async {
            let mut r = with_type("text/plain", reply::full("not really br"));
            r.headers_mut()
                .insert("content-encoding", "br".parse().expect("ce"));
            r
        })
        .start()
        .await
}

#[tokio::test]
async fn q_values_then_the_server_order_pick_the_coding() {
    let origin = text_origin().await;
    let proxy = Proxy::start(&all_config(&origin)).await;
    let cases: &[(&str, Option<&str>)] = &[
        // A browser's list, all equal: the server's first choice.
        ("gzip, deflate, br, zstd", Some("zstd")),
        ("gzip, br", Some("br")),
        ("BR, GZip", Some("br")),
        // Weights beat the server's order.
        ("zstd;q=0.5, br;q=0.8, gzip;q=0.9", Some("gzip")),
        ("zstd;q=0.2, br;q=0.7", Some("br")),
        // q=0 refuses, also through *.
        ("zstd;q=0, *", Some("br")),
        ("*;q=0, gzip", Some("gzip")),
        ("*", Some("zstd")),
        // identity;q=0 does not refuse the others; identity ranked first wins.
        ("identity;q=0, br;q=0.1", Some("br")),
        ("identity, zstd;q=0.5", None),
        ("br;q=0, zstd;q=0, gzip;q=0", None),
        ("deflate", None),
    ];
    for (name, mut client) in clients(&proxy).await {
        for (ae, want) in cases {
            let r = client.get("/small", Some(ae)).await;
            assert_eq!(r.status, 200, "{name} {ae}");
            assert_eq!(r.header("content-encoding"), *want, "{name} {ae}");
            assert_eq!(r.header("vary"), Some("Accept-Encoding"), "{name} {ae}");
            match want {
                Some(coding) => {
                    assert_eq!(decode(coding, &r.body), text_body(), "{name} {ae}");
                    assert!(r.body.len() < text_body().len() / 3, "{name} {ae}");
                    assert_eq!(r.header("etag"), Some("W/\"v1\""), "{name} {ae}");
                    assert_eq!(r.header("content-length"), None, "{name} {ae}");
                }
                None => {
                    assert_eq!(r.body, text_body(), "{name} {ae}");
                    assert_eq!(r.header("etag"), Some("\"v1\""), "{name} {ae}");
                }
            }
        }
    }

    // The configured list is all that is offered, in its order.
    let mut c = all_config(&origin);
    c.compression.algorithms = vec![Encoding::Br, Encoding::Gzip];
    let proxy = Proxy::start(&c).await;
    let mut h1 = Client::H1(H1::connect(proxy.addr()).await);
    let r = h1.get("/small", Some("zstd, gzip, br")).await;
    assert_eq!(r.header("content-encoding"), Some("br"));
    let r = h1.get("/small", Some("zstd")).await;
    assert_eq!(r.header("content-encoding"), None);
    assert_eq!(r.body, text_body());
}

#[tokio::test]
async fn skip_rules_hold_for_brotli_and_zstd() {
    let origin = text_origin().await;
    let proxy = Proxy::start(&all_config(&origin)).await;
    for (name, mut client) in clients(&proxy).await {
        for ae in ["br", "zstd"] {
            let resp = client.send("HEAD", "/small", Some(ae)).await;
            assert_eq!(resp.status(), 200, "{name} {ae}");
            assert!(
                !resp.headers().contains_key("content-encoding"),
                "{name} {ae}"
            );
            collect(resp).await;
            for path in ["/tiny", "/png", "/no-transform", "/partial"] {
                let r = client.get(path, Some(ae)).await;
                assert_eq!(r.header("content-encoding"), None, "{name} {ae} {path}");
            }
            let r = client.get("/partial", Some(ae)).await;
            assert_eq!(r.status, 206, "{name} {ae}");
            assert_eq!(r.body, text_body(), "{name} {ae}");
            // Already encoded: passed through byte for byte, never twice.
            let r = client.get("/pre-encoded", Some(ae)).await;
            assert_eq!(r.header("content-encoding"), Some("br"), "{name} {ae}");
            assert_eq!(r.text(), "not really br", "{name} {ae}");
        }
    }
}

#[tokio::test]
async fn server_sent_events_decode_one_by_one_through_brotli_and_zstd() {
    let (origin, slot) = events_origin().await;
    let proxy = Proxy::start(&all_config(&origin)).await;
    for (name, mut client) in clients(&proxy).await {
        for coding in ["br", "zstd"] {
            let (tx, rx) = mpsc::unbounded_channel();
            *slot.lock() = Some(rx);
            tx.send(Bytes::from_static(b"data: 1\n\n"))
                .expect("origin alive");
            let resp = client.send("GET", "/events", Some(coding)).await;
            assert_eq!(resp.headers()["content-encoding"], coding, "{name}");
            let mut body = resp.into_body();
            let mut wire = Vec::new();
            for n in 1..=5 {
                let want: String = (1..=n).map(|i| format!("data: {i}\n\n")).collect();
                // Read until everything sent so far decodes; the next event
                // is sent only then, so a proxy that held bytes back would
                // hang here (bounded by `within`).
                while decode_prefix(coding, &wire) != want.as_bytes() {
                    let frame = within("the next compressed event", body.frame())
                        .await
                        .expect("the stream is open")
                        .expect("no error");
                    if let Ok(data) = frame.into_data() {
                        wire.extend_from_slice(&data);
                    }
                    let seen = decode_prefix(coding, &wire);
                    assert!(
                        want.as_bytes().starts_with(&seen),
                        "{name} {coding}: {seen:?} is not a prefix of what was sent"
                    );
                }
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
            assert_eq!(decode(coding, &wire), all.as_bytes(), "{name} {coding}");
        }
    }
}

const LARGE: u64 = 96 * 1024 * 1024;
/// Far below the body size: a proxy that buffered the body would exceed it.
const MAX_GROWTH_MIB: u64 = 48;
/// The zstd window the large test configures: a decoder limited to it must
/// be able to decode the proxy's output.
const WINDOW_LOG: u32 = 17;

#[test]
fn a_large_body_is_compressed_in_flat_memory_with_brotli_and_zstd() {
    let out = isolate::run(
        "compression::large_br_and_zstd_transfers_alone_in_a_child_process",
        Duration::from_secs(600),
    );
    eprintln!("{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_br_and_zstd_transfers_alone_in_a_child_process() {
    if !isolate::is_child() {
        return;
    }
    let origin = Origin::http1()
        .route("/big", |_| async {
            with_type("text/plain", reply::pattern(LARGE))
        })
        .start()
        .await;
    let mut c = all_config(&origin);
    c.compression.brotli_level = 1;
    c.compression.zstd_level = 1;
    c.compression.zstd_window_log = WINDOW_LOG;
    let proxy = Proxy::start(&c).await;
    let memory = PeakGrowth::start();
    for (name, mut client) in clients(&proxy).await {
        for coding in ["br", "zstd"] {
            let resp = client.send("GET", "/big", Some(coding)).await;
            assert_eq!(resp.headers()["content-encoding"], coding, "{name}");
            let mut body = resp.into_body();
            let sink = CheckSink(PatternCheck::default());
            let mut br = brotli::DecompressorWriter::new(sink, 4096);
            let mut zd = zstd::stream::write::Decoder::new(CheckSink(PatternCheck::default()))
                .expect("decoder");
            zd.window_log_max(WINDOW_LOG).expect("window");
            let mut wire = 0u64;
            while let Some(frame) = within("the next frame", body.frame()).await {
                if let Ok(data) = frame.expect("no error").into_data() {
                    wire += data.len() as u64;
                    match coding {
                        "br" => br.write_all(&data).expect("valid brotli"),
                        _ => zd.write_all(&data).expect("valid zstd within the window"),
                    }
                }
            }
            let check = match coding {
                "br" => {
                    br.into_inner()
                        .map_err(|_| "brotli stream not finished")
                        .expect("end")
                        .0
                }
                _ => {
                    zd.flush().expect("flush");
                    zd.into_inner().0
                }
            };
            assert_eq!(check.count(), LARGE, "{name} {coding}");
            assert!(
                check.ok(),
                "{name} {coding}: corrupt at {:?}",
                check.corrupt_at()
            );
            eprintln!("{name} {coding}: {LARGE} bytes → {wire} on the wire");
        }
    }
    let growth = memory.finish();
    eprintln!("peak RSS growth: {growth} MiB");
    assert!(growth <= MAX_GROWTH_MIB, "RSS grew {growth} MiB");
}
