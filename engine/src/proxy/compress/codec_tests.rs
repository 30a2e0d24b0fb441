//! Unit tests of `CompressBody` with brotli and zstd: the same flushing
//! rules as gzip (`gzip/tests.rs`), checked with the crates' own decoders.

use super::encoder::{CompressBody, Encoder, MAX_OUT};
use super::gzip::tests::{Generated, Script, json_like};
use super::negotiate::Encoding;
use crate::config::Compression;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue};
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use std::io::Read;

const CODINGS: [Encoding; 2] = [Encoding::Br, Encoding::Zstd];

fn body<B>(inner: B, e: Encoding, settings: &Compression) -> CompressBody<B> {
    CompressBody::new(inner, Encoder::new(e, settings).expect("encoder"))
}

/// Decodes a whole stream; panics on a bad or truncated one.
fn decode(e: Encoding, wire: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    match e {
        Encoding::Br => {
            brotli::Decompressor::new(wire, 4096)
                .read_to_end(&mut out)
                .expect("valid brotli");
        }
        Encoding::Zstd => {
            out = zstd::stream::decode_all(wire).expect("valid zstd");
        }
        Encoding::Gzip => unreachable!("gzip/tests.rs"),
    }
    out
}

/// What a streaming decoder gets out of a prefix of the stream: all the
/// bytes it can produce before it runs out of input.
fn decode_prefix(e: Encoding, wire: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let mut read = |r: &mut dyn Read| {
        while let Ok(n) = r.read(&mut buf) {
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
    };
    match e {
        Encoding::Br => read(&mut brotli::Decompressor::new(wire, 4096)),
        Encoding::Zstd => {
            let mut d = zstd::stream::read::Decoder::new(wire).expect("decoder");
            read(&mut d);
        }
        Encoding::Gzip => unreachable!(),
    }
    out
}

async fn compress_all<B>(mut c: CompressBody<B>) -> (Vec<u8>, Option<HeaderMap>)
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Debug,
{
    let mut out = Vec::new();
    let mut trailers = None;
    while let Some(frame) = c.frame().await {
        match frame.expect("no error").into_data() {
            Ok(d) => out.extend_from_slice(&d),
            Err(f) => trailers = f.into_trailers().ok(),
        }
    }
    assert!(c.is_end_stream());
    (out, trailers)
}

#[tokio::test]
async fn round_trips_at_every_level() {
    let mut seed = 11;
    let text = json_like(&mut seed, 200_000);
    for e in CODINGS {
        let s = Compression::default();
        let (wire, _) = compress_all(body(Script::default(), e, &s)).await;
        assert_eq!(decode(e, &wire), b"", "{e} empty");
        let chunks = [b"a".to_vec(), Vec::new(), b"bc".to_vec()];
        let (wire, _) = compress_all(body(Script::data(chunks), e, &s)).await;
        assert_eq!(decode(e, &wire), b"abc", "{e}");
        let levels: &[i32] = match e {
            Encoding::Br => &[0, 1, 4, 5, 9],
            _ => &[1, 3, 9, 19],
        };
        for &level in levels {
            let s = Compression {
                brotli_level: u32::try_from(level).expect("positive"),
                zstd_level: level,
                ..Compression::default()
            };
            let chunks = text.chunks(7_000).map(<[u8]>::to_vec);
            let (wire, _) = compress_all(body(Script::data(chunks), e, &s)).await;
            assert_eq!(decode(e, &wire), text, "{e} level {level}");
            assert!(wire.len() < text.len() / 4, "{e} {level}: {}", wire.len());
        }
    }
}

#[tokio::test]
async fn each_event_decodes_before_the_next_is_sent() {
    let events: Vec<Vec<u8>> = (0..300)
        .map(|i| format!("event: tick\ndata: {{\"n\":{i}}}\n\n").into_bytes())
        .collect();
    for e in CODINGS {
        let mut c = body(Script::events(events.clone()), e, &Compression::default());
        let mut wire = Vec::new();
        for (i, _) in events.iter().enumerate() {
            let frame = c.frame().await.expect("a frame").expect("ok");
            wire.extend_from_slice(&frame.into_data().expect("data"));
            assert_eq!(
                decode_prefix(e, &wire),
                events[..=i].concat(),
                "{e}: event {i} decodes on arrival"
            );
        }
        while let Some(f) = c.frame().await {
            wire.extend_from_slice(&f.expect("ok").into_data().expect("data"));
        }
        assert_eq!(decode(e, &wire), events.concat(), "{e}");
    }
}

#[tokio::test]
async fn frames_ready_together_share_one_flush_and_the_last_finishes() {
    for e in CODINGS {
        let chunks: Vec<Vec<u8>> = (0..8).map(|i| vec![b'a' + i; 1000]).collect();
        let mut script = Script::data(chunks.clone());
        script.knows_its_end = true;
        let mut c = body(script, e, &Compression::default());
        let frame = c.frame().await.expect("frame").expect("ok");
        // The frame after which the upstream says it has ended finishes
        // the stream: one frame, complete, nothing more to poll.
        assert!(c.is_end_stream(), "{e}");
        assert_eq!(
            decode(e, &frame.into_data().expect("data")),
            chunks.concat()
        );
        assert!(c.frame().await.is_none());
    }
}

#[tokio::test]
async fn trailers_follow_and_errors_end_the_body() {
    for e in CODINGS {
        let mut script = Script::data([b"grpc body".to_vec()]);
        let mut t = HeaderMap::new();
        t.insert("grpc-status", HeaderValue::from_static("0"));
        script.push(Ok(Frame::trailers(t.clone())));
        let (wire, trailers) = compress_all(body(script, e, &Compression::default())).await;
        assert_eq!(decode(e, &wire), b"grpc body");
        assert_eq!(trailers, Some(t));

        let mut script = Script::data([b"half".to_vec()]);
        script.push(Err("backend reset"));
        let mut c = body(script, e, &Compression::default());
        let mut saw_error = false;
        while let Some(f) = c.frame().await {
            if f.is_err() {
                saw_error = true;
            }
        }
        assert!(saw_error, "{e}");
        assert!(c.is_end_stream());
    }
}

#[tokio::test]
async fn a_large_body_streams_through_a_bounded_buffer() {
    const LEN: usize = 16 << 20;
    for e in CODINGS {
        let s = Compression {
            brotli_level: 1,
            zstd_level: 1,
            ..Compression::default()
        };
        let mut c = body(
            Generated {
                remaining: LEN,
                frame: 64 << 10,
                seed: 5,
            },
            e,
            &s,
        );
        let (mut wire, mut most) = (Vec::new(), 0);
        while let Some(f) = c.frame().await {
            wire.extend_from_slice(&f.expect("ok").into_data().expect("data"));
            most = most.max(c.out.capacity());
        }
        assert!(most <= 2 * MAX_OUT, "{e}: output buffer grew to {most}");
        assert_eq!(decode(e, &wire).len(), LEN, "{e}");
        assert!(wire.len() < LEN / 4, "{e}: {}", wire.len());
    }
}

#[test]
fn the_window_bounds_what_a_decoder_must_hold() {
    // zstd writes its window into the frame header: a decoder (and so the
    // encoder's own buffer) never needs more than 2^zstd_window_log.
    let s = Compression {
        zstd_window_log: 17,
        ..Compression::default()
    };
    let Ok(Encoder::Zstd(mut z)) = Encoder::new(Encoding::Zstd, &s) else {
        panic!("a zstd encoder");
    };
    let mut out = bytes::BytesMut::new();
    let mut seed = 3;
    let input = json_like(&mut seed, 1 << 20);
    z.encode(&input, super::encoder::Flush::Finish, &mut out)
        .expect("encode");
    let mut d = zstd::stream::read::Decoder::new(&out[..]).expect("decoder");
    d.window_log_max(17).expect("set");
    let mut plain = Vec::new();
    d.read_to_end(&mut plain).expect("fits a 2^17 window");
    assert_eq!(plain, input);
    // And a 2^16 decoder refuses it: the bound is the configured one, not less.
    let mut d = zstd::stream::read::Decoder::new(&out[..]).expect("decoder");
    d.window_log_max(16).expect("set");
    assert!(d.read_to_end(&mut Vec::new()).is_err());
}
