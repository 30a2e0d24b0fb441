//! Unit tests of `CompressBody` with gzip: no sockets, no clock. Round trips are checked
//! with libflate's decoder, an implementation independent of the zlib-rs
//! encoder under test.

use super::*;
use crate::proxy::compress::encoder::{CompressBody, MAX_OUT};
use bytes::Bytes;
use http::HeaderMap;
use http::HeaderValue;
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::fmt;
use std::io::Read;
use std::pin::Pin;
use std::task::{Context, Poll};

/// A body that yields scripted frames, all ready at once unless a
/// [`Step::Wait`] makes it pending (as an upstream between two events).
#[derive(Debug, Default)]
pub(in crate::proxy::compress) struct Script {
    steps: VecDeque<Step>,
    /// Says it has ended once the last step is taken, as a body whose
    /// Content-Length is reached does (hyper's `Incoming`).
    pub(in crate::proxy::compress) knows_its_end: bool,
}

#[derive(Debug)]
pub(in crate::proxy::compress) enum Step {
    Frame(Result<Frame<Bytes>, &'static str>),
    /// Pending once (and woken at once).
    Wait,
}

impl Script {
    /// Data frames that are all there together.
    pub(in crate::proxy::compress) fn data<I: IntoIterator<Item = Vec<u8>>>(chunks: I) -> Script {
        Script {
            steps: chunks
                .into_iter()
                .map(|c| Step::Frame(Ok(Frame::data(Bytes::from(c)))))
                .collect(),
            knows_its_end: false,
        }
    }

    /// Data frames with a wait after each: server-sent events.
    pub(in crate::proxy::compress) fn events<I: IntoIterator<Item = Vec<u8>>>(chunks: I) -> Script {
        let mut s = Script::default();
        for c in chunks {
            s.push(Ok(Frame::data(Bytes::from(c))));
            s.steps.push_back(Step::Wait);
        }
        s
    }

    pub(in crate::proxy::compress) fn push(&mut self, frame: Result<Frame<Bytes>, &'static str>) {
        self.steps.push_back(Step::Frame(frame));
    }
}

impl Body for Script {
    type Data = Bytes;
    type Error = &'static str;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, &'static str>>> {
        match self.steps.pop_front() {
            Some(Step::Frame(f)) => Poll::Ready(Some(f)),
            Some(Step::Wait) => {
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.knows_its_end && self.steps.is_empty()
    }
}

/// A body of `len` bytes generated `frame` bytes at a time, never held whole.
pub(in crate::proxy::compress) struct Generated {
    pub(in crate::proxy::compress) remaining: usize,
    pub(in crate::proxy::compress) frame: usize,
    pub(in crate::proxy::compress) seed: u64,
}

impl Body for Generated {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        let n = self.frame.min(self.remaining);
        self.remaining -= n;
        let chunk = json_like(&mut self.seed, n);
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(chunk)))))
    }
}

/// JSON-ish text: repeated keys, varied values (compresses about 6:1).
pub(in crate::proxy::compress) fn json_like(seed: &mut u64, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 128);
    while out.len() < len {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        let x = *seed;
        out.extend_from_slice(
            format!(
                "{{\"id\":{},\"user\":\"user{}\",\"score\":{},\"tags\":[\"t{}\"]}},",
                x % 100_000,
                x % 97,
                x % 10,
                (x >> 20) % 8
            )
            .as_bytes(),
        );
    }
    out.truncate(len);
    out
}

fn gunzip(gz: &[u8]) -> Vec<u8> {
    let mut d = libflate::gzip::Decoder::new(gz).expect("gzip header");
    let mut out = Vec::new();
    d.read_to_end(&mut out).expect("valid gzip");
    out
}

/// Compresses all of `body`, returning the data bytes and any trailers.
async fn compress_all<B>(body: B, level: u32) -> (Vec<u8>, Option<HeaderMap>)
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: fmt::Debug,
{
    let mut gz = CompressBody::gzip(body, level);
    let mut out = Vec::new();
    let mut trailers = None;
    while let Some(frame) = gz.frame().await {
        let frame = frame.expect("no error");
        assert!(trailers.is_none(), "nothing after the trailers");
        match frame.into_data() {
            Ok(d) => out.extend_from_slice(&d),
            Err(f) => trailers = f.into_trailers().ok(),
        }
    }
    assert!(gz.is_end_stream());
    (out, trailers)
}

#[tokio::test]
async fn round_trip_empty_small_and_split() {
    let (gz, _) = compress_all(Script::default(), 1).await;
    assert_eq!(gunzip(&gz), b"");
    assert_eq!(&gz[..3], &[0x1f, 0x8b, 8]);

    let (gz, _) = compress_all(Script::data([b"hello".to_vec()]), 1).await;
    assert_eq!(gunzip(&gz), b"hello");

    // Empty frames in between are skipped, not flushed.
    let chunks = [b"a".to_vec(), Vec::new(), b"bc".to_vec(), Vec::new()];
    let (gz, _) = compress_all(Script::data(chunks), 9).await;
    assert_eq!(gunzip(&gz), b"abc");

    let mut seed = 7;
    let body = json_like(&mut seed, 300_000);
    for level in 1..=9 {
        let chunks = body.chunks(7_000).map(<[u8]>::to_vec);
        let (gz, _) = compress_all(Script::data(chunks), level).await;
        assert_eq!(gunzip(&gz), body, "level {level}");
        assert!(gz.len() < body.len() / 3, "level {level}: {}", gz.len());
    }
}

#[tokio::test]
async fn many_small_frames_each_decode_on_arrival() {
    // What SSE needs: the bytes out after each frame decode to exactly the
    // bytes in so far, without waiting for more.
    let events: Vec<Vec<u8>> = (0..2000)
        .map(|i| format!("data: {i}\n\n").into_bytes())
        .collect();
    let mut gz = CompressBody::gzip(Script::events(events.clone()), 1);
    let mut inflate = flate2::Decompress::new(false);
    let mut wire = Vec::new();
    let mut plain = vec![0u8; 64];
    for (i, event) in events.iter().enumerate() {
        let frame = gz.frame().await.expect("a frame").expect("ok");
        let data = frame.into_data().expect("data");
        wire.extend_from_slice(&data);
        let input = if i == 0 {
            &data[GZIP_HEADER.len()..]
        } else {
            &data[..]
        };
        let before = inflate.total_out();
        inflate
            .decompress(input, &mut plain, flate2::FlushDecompress::Sync)
            .expect("inflate");
        let n = usize::try_from(inflate.total_out() - before).expect("small");
        assert_eq!(&plain[..n], &event[..], "event {i} decodes on arrival");
    }
    while let Some(f) = gz.frame().await {
        wire.extend_from_slice(&f.expect("ok").into_data().expect("data"));
    }
    assert_eq!(gunzip(&wire), events.concat());
}

#[tokio::test]
async fn large_body_round_trips_in_bounded_memory() {
    const LEN: usize = 64 << 20;
    const FRAME: usize = 64 << 10;
    let mut gz = CompressBody::gzip(
        Generated {
            remaining: LEN,
            frame: FRAME,
            seed: 42,
        },
        1,
    );
    let mut wire = Vec::new();
    let mut most = 0;
    while let Some(f) = gz.frame().await {
        let data = f.expect("ok").into_data().expect("data");
        wire.extend_from_slice(&data);
        drop(data);
        // The output buffer holds one frame's worth, never the body.
        most = most.max(gz.out.capacity());
    }
    assert!(most <= 2 * MAX_OUT, "output buffer grew to {most}");
    assert!(wire.len() < LEN / 3, "{}", wire.len());
    // Decode streaming and compare against the regenerated input.
    let mut d = libflate::gzip::Decoder::new(&wire[..]).expect("header");
    let mut seed = 42;
    let mut got = vec![0u8; FRAME];
    for _ in 0..LEN / FRAME {
        d.read_exact(&mut got).expect("enough bytes");
        assert!(got == json_like(&mut seed, FRAME), "mismatch");
    }
    assert_eq!(d.read(&mut got).expect("end"), 0, "no extra bytes");
}

#[tokio::test]
async fn trailers_follow_the_gzip_trailer() {
    let mut t = HeaderMap::new();
    t.insert("grpc-status", HeaderValue::from_static("0"));
    let mut script = Script::data([b"payload".to_vec()]);
    script.push(Ok(Frame::trailers(t)));
    let (gz, trailers) = compress_all(script, 1).await;
    assert_eq!(gunzip(&gz), b"payload");
    assert_eq!(trailers.expect("trailers")["grpc-status"], "0");
}

#[tokio::test]
async fn an_upstream_error_ends_the_body() {
    // The data went out while the upstream was pending; then it broke off.
    let mut script = Script::events([b"part".to_vec()]);
    script.push(Err("reset"));
    let mut gz = CompressBody::gzip(script, 1);
    assert!(gz.frame().await.expect("frame").is_ok());
    assert_eq!(gz.frame().await.expect("frame").err(), Some("reset"));
    assert!(gz.frame().await.is_none());
    // Broken off before a flush: the error, and nothing after it.
    let mut script = Script::data([b"part".to_vec()]);
    script.push(Err("reset"));
    let mut gz = CompressBody::gzip(script, 1);
    assert_eq!(gz.frame().await.expect("frame").err(), Some("reset"));
    assert!(gz.frame().await.is_none());
}

/// The data frames `body` yields, each as it came.
async fn frames_of<B>(mut gz: CompressBody<B>) -> Vec<Bytes>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: fmt::Debug,
{
    let mut frames = Vec::new();
    while let Some(f) = gz.frame().await {
        frames.push(f.expect("ok").into_data().expect("data"));
    }
    frames
}

#[tokio::test]
async fn frames_ready_together_share_one_flush() {
    let chunks = [b"one ".to_vec(), b"two ".to_vec(), b"three".to_vec()];
    let frames = frames_of(CompressBody::gzip(Script::data(chunks.clone()), 1)).await;
    assert_eq!(frames.len(), 1, "compressed together, finished once");
    assert_eq!(gunzip(&frames[0]), chunks.concat());

    // The same frames with waits between: one flushed frame each, then the end.
    let frames = frames_of(CompressBody::gzip(Script::events(chunks.clone()), 1)).await;
    assert_eq!(frames.len(), 4);
    assert_eq!(gunzip(&frames.concat()), chunks.concat());
}

#[tokio::test]
async fn a_flush_at_least_every_64_kib_of_input() {
    // 10 frames of 16 KiB, all ready: flushed after the 4th and the 8th,
    // finished at the end; each flushed prefix decodes on its own.
    let mut seed = 3;
    let body = json_like(&mut seed, 10 * 16 * 1024);
    let chunks = body.chunks(16 * 1024).map(<[u8]>::to_vec);
    let frames = frames_of(CompressBody::gzip(Script::data(chunks), 1)).await;
    assert_eq!(frames.len(), 3);
    for (i, upto) in [(1, 4 * 16 * 1024), (2, 8 * 16 * 1024)] {
        let mut inflate = flate2::Decompress::new(false);
        let wire = frames[..i].concat();
        let mut plain = vec![0u8; body.len()];
        inflate
            .decompress(
                &wire[GZIP_HEADER.len()..],
                &mut plain,
                flate2::FlushDecompress::Sync,
            )
            .expect("inflate");
        assert_eq!(inflate.total_out(), upto as u64, "frame {i}");
        assert!(plain[..upto] == body[..upto]);
    }
    assert_eq!(gunzip(&frames.concat()), body);
}

#[tokio::test]
async fn the_frame_that_ends_the_body_finishes_the_stream() {
    let mut script = Script::data([b"head ".to_vec(), b"tail".to_vec()]);
    script.knows_its_end = true;
    let mut gz = CompressBody::gzip(script, 1);
    let frame = gz.frame().await.expect("frame").expect("ok");
    // The gzip trailer came with the last data: that frame alone decodes.
    assert_eq!(gunzip(&frame.into_data().expect("data")), b"head tail");
    // Said with that frame, so the HTTP/1 writer ends the chunked body at once.
    assert!(gz.is_end_stream());
    assert!(gz.frame().await.is_none());
    assert!(gz.is_end_stream());
}

#[test]
fn levels_are_zlibs_levels() {
    let mapped: Vec<u32> = (0..=10).map(zlib_rs_level).collect();
    assert_eq!(mapped, [2, 2, 2, 3, 4, 5, 6, 7, 8, 9, 9]);
}

#[tokio::test]
async fn level_1_is_deflate_fast_not_quick() {
    // zlib-rs's own level 1 writes static-Huffman blocks only (block type
    // 01); zlib's level 1 (zlib-rs's 2) writes dynamic ones (type 10), as
    // nginx does at `gzip_comp_level 1`.
    let mut seed = 11;
    let body = json_like(&mut seed, 64 * 1024);
    let (one, _) = compress_all(Script::data([body.clone()]), 1).await;
    let (two, _) = compress_all(Script::data([body.clone()]), 2).await;
    assert_eq!(one, two, "level 1 runs zlib-rs level 2");
    let btype = (one[GZIP_HEADER.len()] >> 1) & 0b11;
    assert_eq!(btype, 0b10, "dynamic Huffman codes");
    assert_eq!(gunzip(&one), body);
}

#[tokio::test]
async fn deflate_states_are_pooled_per_thread() {
    POOL.with(|p| p.borrow_mut().clear());
    let pooled = |level| POOL.with(|p| p.borrow().iter().filter(|(l, _)| *l == level).count());
    let (gz, _) = compress_all(Script::data([b"one".to_vec()]), 3).await;
    assert_eq!(gunzip(&gz), b"one");
    assert_eq!(pooled(3), 1, "returned after use");
    // The next response at that level takes it (and it was reset).
    let body = CompressBody::gzip(Script::data([b"two".to_vec()]), 3);
    assert_eq!(pooled(3), 0);
    let (gz, _) = compress_all(body.inner, 3).await;
    assert_eq!(gunzip(&gz), b"two");
    // Never more than POOL_MAX idle states.
    let many: Vec<_> = (0..POOL_MAX + 3)
        .map(|_| CompressBody::gzip(Script::default(), 2))
        .collect();
    drop(many);
    assert_eq!(pooled(2), POOL_MAX.saturating_sub(pooled(3)));
}

#[test]
fn the_pool_lends_the_state_returned_last() {
    POOL.with(|p| p.borrow_mut().clear());
    let addr = |d: &Deflater| d.z.as_deref().map(|z| z as *const Compress);
    let (a, b) = (Deflater::take(4), Deflater::take(4));
    let (pa, pb) = (addr(&a), addr(&b));
    drop(a);
    drop(b);
    // The warmest first: after a burst, one state serves, not all in turn.
    let c = Deflater::take(4);
    assert_eq!(addr(&c), pb);
    assert_eq!(addr(&Deflater::take(4)), pa);
}
