//! gzip level 1 vs nginx: zlib-rs (as Sluice's `GzipBody` drives it, and
//! variants) against C zlib driven the way nginx's gzip filter drives it, on
//! the bench's 64 KiB JSON-like body. For perf/findings/2026-12-01-gzip-level1.md.
//!
//! ```sh
//! cargo run --release --bin levels -- table [rounds]          # sizes + interleaved timings
//! cargo run --release --bin levels --features simd -- table   # zlib-rs with runtime CPU detection
//! cargo run --release --bin levels -- one ENCODER LEVEL FRAMES N   # N responses, for callgrind
//! ```
//!
//! ENCODER: `nginx` (C zlib 1.2.x from the system, the library nginx links:
//! `deflateInit2(level, -15, memLevel 8)` per response, no flush until the
//! last buffer, `crc32()` beside it), `nginx-reset` (the same from a kept
//! state, `deflateReset` per response), or a zlib-rs state from a pool, reset
//! per response, driven by the output loop of engine/src/proxy/compress.rs
//! with one of three flush policies: `sync-each` (sync flush after every
//! frame, then a separate Finish: GzipBody before 2026-12-01),
//! `finish-last` (sync after every frame but the last, which finishes),
//! `coalesce` (no flush between frames). A policy may carry a variant:
//! `-gzipwrap` (flate2 `Compress::new_gzip`: zlib-rs writes the gzip framing
//! and folds the CRC into its window copy), `-w14` (16 KiB window), `-mem7`
//! / `-mem9` (zlib-rs direct, `memLevel` 7 or 9: 8 Ki or 32 Ki symbols per
//! block instead of 16 Ki), `-miniz` (not zlib-rs: miniz_oxide, flate2's
//! other pure-Rust backend). Without one: flate2 `Compress` raw deflate +
//! flate2 `Crc`, as Sluice.
//! FRAMES: `one` (the whole body), `16k`, `hyper` (8 + 16 + 32 KiB + rest:
//! what hyper's adaptive read buffer hands the proxy from a fast origin).

use std::ffi::{c_char, c_int, c_uint, c_ulong, c_void};
use std::time::Instant;

use flate2::{Compress, Compression, Crc, FlushCompress, Status};
use gzip_compare::json_like;

fn frames(body: &[u8], how: &str) -> Vec<Vec<u8>> {
    let sizes: Vec<usize> = match how {
        "one" => vec![body.len()],
        "16k" => vec![16 * 1024; body.len().div_ceil(16 * 1024)],
        "hyper" => vec![8 * 1024, 16 * 1024, 32 * 1024, usize::MAX],
        other => panic!("frames: one | 16k | hyper, not {other}"),
    };
    let mut rest = body;
    let mut out = Vec::new();
    for s in sizes {
        if rest.is_empty() {
            break;
        }
        let (a, b) = rest.split_at(s.min(rest.len()));
        out.push(a.to_vec());
        rest = b;
    }
    out
}

// ---- C zlib, as nginx's ngx_http_gzip_filter_module uses it ----

#[repr(C)]
struct ZStream {
    next_in: *const u8,
    avail_in: c_uint,
    total_in: c_ulong,
    next_out: *mut u8,
    avail_out: c_uint,
    total_out: c_ulong,
    msg: *const c_char,
    state: *mut c_void,
    zalloc: *const c_void,
    zfree: *const c_void,
    opaque: *mut c_void,
    data_type: c_int,
    adler: c_ulong,
    reserved: c_ulong,
}

#[link(name = "z")]
unsafe extern "C" {
    fn zlibVersion() -> *const c_char;
    fn deflateInit2_(
        s: *mut ZStream,
        level: c_int,
        method: c_int,
        window_bits: c_int,
        mem_level: c_int,
        strategy: c_int,
        version: *const c_char,
        size: c_int,
    ) -> c_int;
    fn deflate(s: *mut ZStream, flush: c_int) -> c_int;
    fn deflateEnd(s: *mut ZStream) -> c_int;
    fn deflateReset(s: *mut ZStream) -> c_int;
    fn crc32(crc: c_ulong, buf: *const u8, len: c_uint) -> c_ulong;
}

/// One response: Z_NO_FLUSH per buffer, Z_FINISH on the last, 4 KiB output
/// buffers (`gzip_buffers 32 4k`), CRC-32 beside the deflate. `s`: a state
/// kept and `deflateReset` per response (`nginx-reset`), else one
/// `deflateInit2`/`deflateEnd` per response as nginx does (`nginx`; here
/// glibc's malloc then costs 24 page faults per response, which nginx's pool
/// allocation mostly avoids, so the two rows bracket nginx's own cost).
fn zlib_init(level: i32) -> Box<ZStream> {
    unsafe {
        let mut s: Box<ZStream> = Box::new(std::mem::zeroed());
        let rc = deflateInit2_(
            &mut *s,
            level,
            8,
            -15,
            8,
            0,
            zlibVersion(),
            std::mem::size_of::<ZStream>() as c_int,
        );
        assert_eq!(rc, 0);
        s
    }
}

fn nginx(frames: &[Vec<u8>], level: i32, kept: Option<&mut ZStream>, out: &mut Vec<u8>) -> usize {
    out.clear();
    out.extend_from_slice(&GZIP_HEADER);
    // Boxed: zlib's state points back at its z_stream, which must not move.
    let mut fresh: Option<Box<ZStream>> = None;
    let s: &mut ZStream = match kept {
        Some(s) => {
            unsafe { deflateReset(s) };
            s
        }
        None => &mut **fresh.insert(zlib_init(level)),
    };
    unsafe {
        let mut crc: c_ulong = 0;
        let mut total = 0u32;
        for (i, f) in frames.iter().enumerate() {
            crc = crc32(crc, f.as_ptr(), f.len() as c_uint);
            total = total.wrapping_add(f.len() as u32);
            let last = i + 1 == frames.len();
            s.next_in = f.as_ptr();
            s.avail_in = f.len() as c_uint;
            loop {
                let start = out.len();
                out.reserve(4096);
                s.next_out = out.as_mut_ptr().add(start);
                s.avail_out = 4096;
                let rc = deflate(s, if last { 4 } else { 0 });
                out.set_len(start + 4096 - s.avail_out as usize);
                if rc == 1 {
                    break;
                }
                assert!(rc == 0 || rc == -5, "deflate {rc}");
                if s.avail_out != 0 && !last {
                    break;
                }
            }
        }
        if let Some(mut s) = fresh {
            deflateEnd(&mut *s);
        }
        out.extend_from_slice(&(crc as u32).to_le_bytes());
        out.extend_from_slice(&total.to_le_bytes());
    }
    out.len()
}

// ---- zlib-rs, driven as engine/src/proxy/compress.rs drives it ----

const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
const MIN_OUT: usize = 1024;
const MAX_OUT: usize = 64 * 1024;

/// When the deflate stream is flushed.
#[derive(Clone, Copy, PartialEq)]
enum Policy {
    /// Sync flush after every frame, then a separate Finish (GzipBody before
    /// this finding).
    SyncEach,
    /// Sync flush after every frame but the last, which finishes the stream
    /// (the upstream body said it was at its end).
    FinishLast,
    /// No flush between frames, Finish on the last: frames that arrive
    /// together.
    Coalesce,
}

/// A zlib-rs deflate state, through flate2 or used directly.
enum Z {
    /// flate2 `Compress`; `gzip`: zlib-rs writes the gzip header and trailer
    /// and folds the CRC into its window copy.
    Flate2 { z: Compress, gzip: bool },
    /// zlib-rs `Deflate` (raw), for `memLevel`.
    Direct(zlib_rs::Deflate),
    /// Not zlib-rs: miniz_oxide, flate2's `rust_backend`, for comparison.
    Miniz(Box<miniz_oxide::deflate::core::CompressorOxide>),
}

impl Z {
    fn reset(&mut self) {
        match self {
            Z::Flate2 { z, .. } => z.reset(),
            Z::Direct(z) => z.reset(),
            Z::Miniz(z) => z.reset(),
        }
    }
    fn owns_framing(&self) -> bool {
        matches!(self, Z::Flate2 { gzip: true, .. })
    }
    /// (consumed, produced, stream ended)
    fn compress(&mut self, input: &[u8], out: &mut [u8], flush: FlushCompress) -> (usize, usize, bool) {
        match self {
            Z::Flate2 { z, .. } => {
                let (i, o) = (z.total_in(), z.total_out());
                let st = z.compress(input, out, flush).unwrap();
                ((z.total_in() - i) as usize, (z.total_out() - o) as usize, st == Status::StreamEnd)
            }
            Z::Direct(z) => {
                use zlib_rs::DeflateFlush as F;
                let f = match flush {
                    FlushCompress::None => F::NoFlush,
                    FlushCompress::Sync => F::SyncFlush,
                    FlushCompress::Finish => F::Finish,
                    _ => unreachable!(),
                };
                let (i, o) = (z.total_in(), z.total_out());
                let st = z.compress(input, out, f).unwrap();
                ((z.total_in() - i) as usize, (z.total_out() - o) as usize, st == zlib_rs::Status::StreamEnd)
            }
            Z::Miniz(z) => {
                use miniz_oxide::{MZFlush, MZStatus};
                let f = match flush {
                    FlushCompress::None => MZFlush::None,
                    FlushCompress::Sync => MZFlush::Sync,
                    FlushCompress::Finish => MZFlush::Finish,
                    _ => unreachable!(),
                };
                let r = miniz_oxide::deflate::stream::deflate(z, input, out, f);
                let end = matches!(r.status, Ok(MZStatus::StreamEnd));
                (r.bytes_consumed, r.bytes_written, end)
            }
        }
    }
}

/// compress.rs `GzipBody::deflate`, with a `Vec` for the `BytesMut`.
fn deflate_into(z: &mut Z, mut input: &[u8], out: &mut Vec<u8>, flush: FlushCompress) {
    loop {
        let room = (input.len() / 2).clamp(MIN_OUT, MAX_OUT);
        let start = out.len();
        out.resize(start + room, 0);
        let (consumed, produced, end) = z.compress(input, &mut out[start..], flush);
        out.truncate(start + produced);
        input = &input[consumed..];
        if end || (input.is_empty() && produced < room && flush != FlushCompress::Finish) {
            return;
        }
        if consumed == 0 && produced == 0 && flush != FlushCompress::Finish {
            return;
        }
    }
}

/// One response from a pooled (reset) state.
fn zlib_rs(frames: &[Vec<u8>], z: &mut Z, policy: Policy, out: &mut Vec<u8>) -> usize {
    z.reset();
    out.clear();
    let own = z.owns_framing();
    if !own {
        out.extend_from_slice(&GZIP_HEADER);
    }
    let mut crc = Crc::new();
    for (i, f) in frames.iter().enumerate() {
        if !own {
            crc.update(f);
        }
        let last = i + 1 == frames.len();
        let flush = match policy {
            Policy::SyncEach => FlushCompress::Sync,
            Policy::FinishLast | Policy::Coalesce if last => FlushCompress::Finish,
            Policy::FinishLast => FlushCompress::Sync,
            Policy::Coalesce => FlushCompress::None,
        };
        deflate_into(z, f, out, flush);
    }
    if policy == Policy::SyncEach {
        deflate_into(z, &[], out, FlushCompress::Finish);
    }
    if !own {
        out.extend_from_slice(&crc.sum().to_le_bytes());
        out.extend_from_slice(&crc.amount().to_le_bytes());
    }
    out.len()
}

/// A boxed encoder: one response per call, returns the gzip size.
type Encoder = Box<dyn FnMut(&[Vec<u8>], &mut Vec<u8>) -> usize>;

/// `nginx`, or `POLICY[-VARIANT]` with POLICY `sync-each` | `finish-last` |
/// `coalesce` and VARIANT `gzipwrap` | `w14` | `mem7` | `mem9`.
fn encoder(name: &str, level: u32) -> Encoder {
    if name == "nginx" {
        return Box::new(move |f, o| nginx(f, level as i32, None, o));
    }
    if name == "nginx-reset" {
        let mut s = zlib_init(level as i32);
        return Box::new(move |f, o| nginx(f, level as i32, Some(&mut s), o));
    }
    let (policy, variant) = name.split_once('-').map_or((name, ""), |(a, b)| (a, b));
    let (policy, variant) = match (policy, variant) {
        ("sync", v) => (Policy::SyncEach, v.strip_prefix("each").unwrap_or(v)),
        ("finish", v) => (Policy::FinishLast, v.strip_prefix("last").unwrap_or(v)),
        ("coalesce", v) => (Policy::Coalesce, v),
        _ => panic!("unknown encoder {name}"),
    };
    let lvl = Compression::new(level);
    let direct = |mem_level| {
        Z::Direct(zlib_rs::Deflate::new_with_config(zlib_rs::DeflateConfig {
            level: level as i32,
            window_bits: -15,
            mem_level,
            ..Default::default()
        }))
    };
    let mut z = match variant.trim_start_matches('-') {
        "" => Z::Flate2 { z: Compress::new(lvl, false), gzip: false },
        "gzipwrap" => Z::Flate2 { z: Compress::new_gzip(lvl, 15), gzip: true },
        "w14" => Z::Flate2 { z: Compress::new_with_window_bits(lvl, false, 14), gzip: false },
        "mem7" => direct(7),
        "mem9" => direct(9),
        "miniz" => Z::Miniz(Box::new(miniz_oxide::deflate::core::CompressorOxide::new(
            miniz_oxide::deflate::core::create_comp_flags_from_zip_params(level as i32, -15, 0),
        ))),
        other => panic!("unknown variant {other}"),
    };
    Box::new(move |f, o| zlib_rs(f, &mut z, policy, o))
}

/// Decompresses and compares: every row is checked, not just timed.
fn check(gz: &[u8], body: &[u8]) {
    use std::io::Read;
    let mut d = flate2::read::GzDecoder::new(gz);
    let mut back = Vec::new();
    d.read_to_end(&mut back).unwrap();
    assert!(back == body, "round trip failed");
}

const SIMD: &str = if cfg!(feature = "simd") {
    "zlib-rs std (runtime CPU detection)"
} else {
    "zlib-rs no_std (as flate2 default-features = false: no runtime detection)"
};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let body = json_like(64 * 1024);
    match args.first().map(String::as_str) {
        Some("one") => {
            let (enc, level, how, n) = (&args[1], args[2].parse().unwrap(), &args[3], args[4].parse::<usize>().unwrap());
            let fr = frames(&body, how);
            let mut e = encoder(enc, level);
            let mut out = Vec::with_capacity(128 * 1024);
            let mut size = 0;
            for _ in 0..n {
                size = std::hint::black_box(e(std::hint::black_box(&fr), &mut out));
            }
            println!("{enc} L{level} {how} ×{n}: {size} B");
        }
        Some("table") | None => {
            let rounds: usize = args.get(1).and_then(|r| r.parse().ok()).unwrap_or(15);
            println!("build: {SIMD}; zlib {}", unsafe {
                std::ffi::CStr::from_ptr(zlibVersion()).to_string_lossy()
            });
            let mut rows: Vec<(String, Vec<Vec<u8>>, Encoder, usize, Vec<f64>)> = Vec::new();
            let mut add = |enc: &str, level: u32, how: &str| {
                let fr = frames(&body, how);
                let mut e = encoder(enc, level);
                let mut out = Vec::new();
                let size = e(&fr, &mut out);
                check(&out, &body);
                rows.push((format!("{enc} L{level} {how}"), fr, e, size, Vec::new()));
            };
            for how in ["one", "hyper"] {
                for level in 1..=9 {
                    add("nginx", level, how);
                    add("nginx-reset", level, how);
                    add("sync-each", level, how);
                    add("finish-last", level, how);
                }
            }
            for level in [1, 2, 6] {
                add("sync-each", level, "16k");
                add("finish-last", level, "16k");
                add("coalesce", level, "hyper");
                for v in ["gzipwrap", "w14", "mem7", "mem9", "miniz"] {
                    add(&format!("finish-last-{v}"), level, "one");
                }
            }
            // Interleaved: each round times every row once (≈ 2 ms each), so
            // a burst of load from other builds hits all rows alike.
            let mut out = Vec::with_capacity(256 * 1024);
            for _ in 0..rounds {
                for (_, fr, e, _, t) in rows.iter_mut() {
                    let n = 20;
                    let start = Instant::now();
                    for _ in 0..n {
                        std::hint::black_box(e(std::hint::black_box(fr), &mut out));
                    }
                    t.push(start.elapsed().as_secs_f64() * 1e6 / n as f64);
                }
            }
            println!("| encoder, level, frames | gzip bytes | µs/response median | min |");
            println!("|---|---:|---:|---:|");
            for (name, _, _, size, mut t) in rows {
                t.sort_by(f64::total_cmp);
                println!("| {name} | {size} | {:.1} | {:.1} |", t[t.len() / 2], t[0]);
            }
        }
        Some(other) => panic!("table | one, not {other}"),
    }
}
