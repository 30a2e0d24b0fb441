//! `compress-compare`: the numbers behind the choice of brotli and zstd
//! encoders (perf/findings/2026-12-02-brotli-zstd.md), outside the engine.
//!
//! Every codec compresses the same way the proxy does: 16 KiB frames, a
//! flush after each 64 KiB of input (what `FLUSH_AFTER` does when frames
//! keep arriving), and finish at the end.
//!
//! - `compress-compare table [FILE]`: output size, wall time per MiB and
//!   resident memory per live stream for each codec and level, on the
//!   bench's `/json64k` body and on FILE (a larger text).
//! - `compress-compare run CODEC LEVEL [FILE] [ITERATIONS]`: compresses
//!   FILE (`json64k`, the default, is the bench's body) ITERATIONS times and nothing else, for
//!   `valgrind --tool=callgrind --toggle-collect=*compress_body*`, whose
//!   instruction counts are stable on a busy machine where wall time is not.
//!
//! CODEC is `gzip` (flate2 + zlib-rs, levels mapped as the engine maps
//! them), `br` (the `brotli` crate) or `zstd` (libzstd through the `zstd`
//! crate); an optional `:W` after the level sets the window log (`br:5:18`).

use std::hint::black_box;
use std::time::Instant;

use brotli::enc::StandardAlloc;
use brotli::enc::encode::{
    BrotliEncoderOperation, BrotliEncoderParameter, BrotliEncoderStateStruct,
};
use flate2::{Compress, FlushCompress};
use zstd::stream::raw::{CParameter, Operation};

const FRAME: usize = 16 * 1024;
const FLUSH_AFTER: usize = 64 * 1024;

#[derive(Clone, Copy, Debug)]
enum Codec {
    Gzip(u32),
    Br(u32, Option<u32>),
    Zstd(i32, Option<u32>),
}

impl Codec {
    fn parse(name: &str, level: &str) -> Codec {
        let mut it = level.split(':');
        let level: u32 = it.next().and_then(|l| l.parse().ok()).expect("level");
        let window = it.next().and_then(|w| w.parse().ok());
        match name {
            "gzip" => Codec::Gzip(level),
            "br" => Codec::Br(level, window),
            "zstd" => Codec::Zstd(level as i32, window),
            _ => panic!("codec is gzip, br or zstd"),
        }
    }

    fn label(&self) -> String {
        match *self {
            Codec::Gzip(l) => format!("gzip-{l}"),
            Codec::Br(l, None) => format!("br-{l}"),
            Codec::Br(l, Some(w)) => format!("br-{l} lgwin {w}"),
            Codec::Zstd(l, None) => format!("zstd-{l}"),
            Codec::Zstd(l, Some(w)) => format!("zstd-{l} wlog {w}"),
        }
    }

    fn start(&self) -> Stream {
        match *self {
            // As the engine's `zlib_rs_level`: nginx's level 1 is zlib-rs's 2.
            Codec::Gzip(l) => Stream::Gzip(Box::new(Compress::new(
                flate2::Compression::new(if l == 1 { 2 } else { l }),
                false,
            ))),
            Codec::Br(q, w) => {
                let mut s = BrotliEncoderStateStruct::new(StandardAlloc::default());
                s.set_parameter(BrotliEncoderParameter::BROTLI_PARAM_QUALITY, q);
                if let Some(w) = w {
                    s.set_parameter(BrotliEncoderParameter::BROTLI_PARAM_LGWIN, w);
                }
                Stream::Br(Box::new(s))
            }
            Codec::Zstd(l, w) => {
                let mut e = zstd::stream::raw::Encoder::new(l).expect("zstd encoder");
                if let Some(w) = w {
                    e.set_parameter(CParameter::WindowLog(w))
                        .expect("window log");
                }
                Stream::Zstd(Box::new(e))
            }
        }
    }
}

enum Stream {
    Gzip(Box<Compress>),
    Br(Box<BrotliEncoderStateStruct<StandardAlloc>>),
    Zstd(Box<zstd::stream::raw::Encoder<'static>>),
}

#[derive(Clone, Copy, PartialEq)]
enum Op {
    Process,
    Flush,
    Finish,
}

impl Stream {
    /// Feeds `input` and, for `Flush`/`Finish`, drains everything; appends to `out`.
    fn step(&mut self, mut input: &[u8], op: Op, out: &mut Vec<u8>) {
        let mut buf = [0u8; 32 * 1024];
        match self {
            Stream::Gzip(z) => {
                let flush = match op {
                    Op::Process => FlushCompress::None,
                    Op::Flush => FlushCompress::Sync,
                    Op::Finish => FlushCompress::Finish,
                };
                loop {
                    let (i0, o0) = (z.total_in(), z.total_out());
                    let st = z.compress(input, &mut buf, flush).expect("deflate");
                    let used = (z.total_in() - i0) as usize;
                    let made = (z.total_out() - o0) as usize;
                    out.extend_from_slice(&buf[..made]);
                    input = &input[used..];
                    if st == flate2::Status::StreamEnd
                        || (input.is_empty() && made < buf.len() && op != Op::Finish)
                    {
                        return;
                    }
                }
            }
            Stream::Br(s) => {
                let bop = match op {
                    Op::Process => BrotliEncoderOperation::BROTLI_OPERATION_PROCESS,
                    Op::Flush => BrotliEncoderOperation::BROTLI_OPERATION_FLUSH,
                    Op::Finish => BrotliEncoderOperation::BROTLI_OPERATION_FINISH,
                };
                let (mut avail_in, mut in_off) = (input.len(), 0);
                loop {
                    let (mut avail_out, mut out_off, mut total) = (buf.len(), 0, None);
                    let ok = s.compress_stream(
                        bop,
                        &mut avail_in,
                        input,
                        &mut in_off,
                        &mut avail_out,
                        &mut buf,
                        &mut out_off,
                        &mut total,
                        &mut |_, _, _, _| (),
                    );
                    assert!(ok, "brotli");
                    out.extend_from_slice(&buf[..out_off]);
                    let done = match op {
                        Op::Finish => s.is_finished(),
                        _ => avail_in == 0 && !s.has_more_output(),
                    };
                    if done {
                        return;
                    }
                }
            }
            Stream::Zstd(e) => {
                while !input.is_empty() {
                    let st = e.run_on_buffers(input, &mut buf).expect("zstd");
                    out.extend_from_slice(&buf[..st.bytes_written]);
                    input = &input[st.bytes_read..];
                }
                if op == Op::Process {
                    return;
                }
                loop {
                    let mut ob = zstd::stream::raw::OutBuffer::around(&mut buf[..]);
                    let left = match op {
                        Op::Flush => e.flush(&mut ob),
                        _ => e.finish(&mut ob, true),
                    }
                    .expect("zstd");
                    let n = ob.pos();
                    out.extend_from_slice(&buf[..n]);
                    if left == 0 {
                        return;
                    }
                }
            }
        }
    }
}

/// One response body through one fresh stream, as the proxy would.
#[inline(never)]
fn compress_body(codec: Codec, body: &[u8], out: &mut Vec<u8>) -> Stream {
    let mut s = codec.start();
    let mut unflushed = 0;
    let mut chunks = body.chunks(FRAME).peekable();
    while let Some(c) = chunks.next() {
        unflushed += c.len();
        let op = if chunks.peek().is_none() {
            Op::Finish
        } else if unflushed >= FLUSH_AFTER {
            unflushed = 0;
            Op::Flush
        } else {
            Op::Process
        };
        s.step(c, op, out);
    }
    s
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn codecs() -> Vec<Codec> {
    let mut v = vec![Codec::Gzip(1), Codec::Gzip(6)];
    v.extend((1..=5).map(|q| Codec::Br(q, None)));
    v.push(Codec::Br(11, None));
    v.extend([2, 3, 4, 5].map(|q| Codec::Br(q, Some(18))));
    v.extend([Codec::Zstd(1, None), Codec::Zstd(3, None)]);
    v.extend([Codec::Zstd(3, Some(18)), Codec::Zstd(3, Some(20))]);
    v
}

fn table(large: &[u8], large_name: &str) {
    let json = sluice_bench::origin::json_like(64 * 1024);
    println!(
        "| codec | json64k out (B) | json64k µs/resp | {large_name} out (B) | {large_name} MiB/s | RSS/stream after {large_name} (KiB) |"
    );
    println!("|---|---|---|---|---|---|");
    for codec in codecs() {
        let mut out = Vec::new();
        drop(compress_body(codec, &json, &mut out));
        let json_out = out.len();
        let iters = if matches!(codec, Codec::Br(11, _)) {
            5
        } else {
            200
        };
        let t = Instant::now();
        for _ in 0..iters {
            out.clear();
            black_box(compress_body(codec, black_box(&json), &mut out));
        }
        let json_us = t.elapsed().as_secs_f64() * 1e6 / f64::from(iters);

        out.clear();
        let t = Instant::now();
        drop(compress_body(codec, large, &mut out));
        let secs = t.elapsed().as_secs_f64();
        let large_out = out.len();
        let mibs = large.len() as f64 / secs / (1024.0 * 1024.0);

        // Streams kept alive after a large body: what N concurrent
        // responses hold at their peak.
        const N: u64 = 32;
        let before = rss_kib();
        let live: Vec<Stream> = (0..N)
            .map(|_| {
                out.clear();
                compress_body(codec, large, &mut out)
            })
            .collect();
        let per = rss_kib().saturating_sub(before) / N;
        drop(live);
        println!(
            "| {} | {json_out} | {json_us:.0} | {large_out} | {mibs:.1} | {per} |",
            codec.label()
        );
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let read = |p: Option<&String>| match p {
        Some(p) if p != "json64k" => std::fs::read(p).expect("read FILE"),
        _ => sluice_bench::origin::json_like(64 * 1024),
    };
    match args.first().map(String::as_str) {
        Some("table") => {
            let name = args
                .get(1)
                .map_or("json64k", |p| p.rsplit('/').next().unwrap_or(p));
            table(&read(args.get(1)), name);
        }
        Some("run") => {
            let codec = Codec::parse(&args[1], &args[2]);
            let body = read(args.get(3));
            let iters: u32 = args.get(4).and_then(|n| n.parse().ok()).unwrap_or(10);
            let mut out = Vec::with_capacity(body.len());
            for _ in 0..iters {
                out.clear();
                black_box(compress_body(codec, black_box(&body), &mut out));
            }
            println!(
                "{} {} bytes -> {} bytes",
                codec.label(),
                body.len(),
                out.len()
            );
        }
        _ => {
            eprintln!("usage: compress-compare table [FILE] | run CODEC LEVEL[:WINDOW] [FILE] [N]")
        }
    }
}
