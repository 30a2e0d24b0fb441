//! Target `h1_chunked_body`: `sluice::http1::decode::Decoder`, the
//! request-body decoder (chunked and Content-Length) over the read buffer.
//!
//! Defends against: panics on hostile chunk sizes, extensions and trailers;
//! split-dependent decoding (a client, or TCP segmentation, choosing where
//! reads end must not change what the body is, where it ends, or whether it
//! is refused, which is the root of chunked smuggling desyncs); and unbounded
//! buffering (while the decoder asks for more, the buffer it holds is bounded
//! by the chunk-line and trailer limits, whatever the client sends).
//!
//! The input is the byte stream after the head. It is decoded unsplit, one
//! byte at a time, and at split points derived from a hash of the input,
//! under a small and a large trailer limit; every run must agree.

use bytes::BytesMut;
use http::HeaderMap;
use sluice::http1::BodyError;
use sluice::http1::Framing;
use sluice::http1::decode::{Decoded, Decoder, MAX_CHUNK_LINE};

#[derive(Debug)]
enum End {
    /// The body ended; what followed it in the stream.
    Done(Vec<u8>),
    /// The stream ended first (the connection would report `Incomplete`).
    NeedMore,
    Error(#[expect(dead_code, reason = "shown in assertion messages")] BodyError),
}

/// Errors compare by class, not kind: the decoder fails early on a bad first
/// byte of a size line (`BadChunkSize`) where the whole line would have said
/// `MissingCrlf` or `ChunkLineTooLong`. Every kind is the same 400 and the
/// connection closes, so only the reason text depends on read boundaries.
impl PartialEq for End {
    fn eq(&self, other: &End) -> bool {
        match (self, other) {
            (End::Done(a), End::Done(b)) => a == b,
            (End::NeedMore, End::NeedMore) | (End::Error(_), End::Error(_)) => true,
            _ => false,
        }
    }
}

#[derive(Debug, PartialEq)]
struct Outcome {
    data: Vec<u8>,
    trailers: Option<HeaderMap>,
    end: End,
}

/// Panics if `data` breaks an invariant of this target.
pub fn check(data: &[u8]) {
    let hash = fnv(data);
    for max_trailer_bytes in [64, 8192] {
        for framing in [
            Framing::Chunked,
            Framing::Length(hash % (data.len() as u64 + 2)),
        ] {
            let whole = run(framing, max_trailer_bytes, &[data]);
            let bytewise: Vec<&[u8]> = data.chunks(1).collect();
            assert_eq!(
                whole,
                run(framing, max_trailer_bytes, &bytewise),
                "byte-at-a-time differs from unsplit"
            );
            let pieces = split(data, hash);
            assert_eq!(
                whole,
                run(framing, max_trailer_bytes, &pieces),
                "split at {:?} differs from unsplit",
                pieces.iter().map(|p| p.len()).collect::<Vec<_>>()
            );
        }
    }
}

/// Feeds `pieces` one read at a time, decoding as far as each read allows.
fn run(framing: Framing, max_trailer_bytes: usize, pieces: &[&[u8]]) -> Outcome {
    let mut decoder = Decoder::new(framing, max_trailer_bytes);
    let mut buf = BytesMut::new();
    let mut out = Outcome {
        data: Vec::new(),
        trailers: None,
        end: End::NeedMore,
    };
    let mut done = false;
    for piece in pieces {
        buf.extend_from_slice(piece);
        while !done {
            match decoder.decode(&mut buf) {
                Ok(Decoded::Frame(frame)) => {
                    assert!(out.trailers.is_none(), "a frame after the trailers");
                    match frame.into_data() {
                        Ok(d) => {
                            assert!(!d.is_empty(), "empty data frame");
                            out.data.extend_from_slice(&d);
                        }
                        Err(frame) => {
                            let t = frame.into_trailers().expect("data or trailers");
                            assert!(decoder.is_done(), "trailers before the end");
                            out.trailers = Some(t);
                        }
                    }
                }
                Ok(Decoded::NeedMore) => {
                    let bound = MAX_CHUNK_LINE.max(max_trailer_bytes);
                    assert!(
                        buf.len() <= bound,
                        "asks for more while holding {} bytes (bound {bound})",
                        buf.len()
                    );
                    break;
                }
                Ok(Decoded::End) => {
                    assert!(decoder.is_done());
                    assert_eq!(decoder.remaining(), Some(0));
                    done = true;
                }
                Err(e) => {
                    out.end = End::Error(e);
                    return out;
                }
            }
        }
    }
    if done {
        out.end = End::Done(buf.to_vec());
    } else if let Framing::Length(n) = framing {
        assert_eq!(decoder.remaining(), Some(n - out.data.len() as u64));
    }
    out
}

/// Up to eight split points chosen by the hash.
fn split(data: &[u8], mut hash: u64) -> Vec<&[u8]> {
    let mut cuts: Vec<usize> = Vec::new();
    if !data.is_empty() {
        for _ in 0..(hash % 9) {
            hash = hash
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            cuts.push((hash >> 33) as usize % (data.len() + 1));
        }
    }
    cuts.sort_unstable();
    let mut pieces = Vec::new();
    let mut at = 0;
    for c in cuts {
        pieces.push(&data[at..c]);
        at = c;
    }
    pieces.push(&data[at..]);
    pieces
}

fn fnv(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf29ce484222325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
    })
}
