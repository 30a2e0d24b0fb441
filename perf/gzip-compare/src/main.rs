//! libflate (as sluice uses it: zlib encoder in sync-flush mode, re-framed as
//! gzip) against flate2 with the zlib-rs backend, on the JSON-like body the
//! issue names. Prints CPU time per 64 KiB response, per MiB, and sizes.

use std::io::Write;
use std::time::Instant;

use gzip_compare::json_like;

fn libflate_sync(body: &[u8], frame: usize, fixed: bool) -> usize {
    use libflate::zlib::{EncodeOptions, Encoder, FlushMode};
    let mut opts = EncodeOptions::new().flush_mode(FlushMode::Sync);
    if fixed { opts = opts.fixed_huffman_codes(); }
    let mut enc = Encoder::with_options(Vec::with_capacity(body.len()), opts).unwrap();
    let mut crc = crc32fast::Hasher::new();
    for chunk in body.chunks(frame) {
        enc.write_all(chunk).unwrap();
        crc.update(chunk);
        enc.flush().unwrap();
    }
    let out = enc.finish().into_result().unwrap();
    std::hint::black_box(crc.finalize());
    out.len() - 2 - 4 + 10 + 8
}

fn libflate_gzip(body: &[u8]) -> usize {
    let mut enc = libflate::gzip::Encoder::new(Vec::with_capacity(body.len())).unwrap();
    enc.write_all(body).unwrap();
    enc.finish().into_result().unwrap().len()
}

fn flate2_sync(body: &[u8], frame: usize, level: u32) -> usize {
    let mut enc = flate2::write::GzEncoder::new(Vec::with_capacity(body.len()), flate2::Compression::new(level));
    for chunk in body.chunks(frame) {
        enc.write_all(chunk).unwrap();
        enc.flush().unwrap();
    }
    enc.finish().unwrap().len()
}

/// One response the way sluice's GzipBody does it with flate2: raw deflate
/// state either fresh per response or reset from a pool.
fn flate2_state(body: &[u8], level: u32, pooled: Option<&std::cell::RefCell<flate2::Compress>>) -> usize {
    use flate2::{Compress, Compression, FlushCompress};
    let mut fresh;
    let mut pooled_ref;
    let z: &mut Compress = match pooled {
        Some(p) => { pooled_ref = p.borrow_mut(); pooled_ref.reset(); &mut pooled_ref }
        None => { fresh = Compress::new(Compression::new(level), false); &mut fresh }
    };
    let mut out = Vec::with_capacity(body.len());
    z.compress_vec(body, &mut out, FlushCompress::Finish).unwrap();
    out.len()
}

fn time(name: &str, body: &[u8], f: &dyn Fn(&[u8]) -> usize) {
    let size = f(body);
    let iters = (32 * 1024 * 1024 / body.len()).clamp(3, 500);
    // Best of 5 runs: the machine is shared, the minimum is the least noisy.
    let per = (0..5)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..iters { std::hint::black_box(f(std::hint::black_box(body))); }
            start.elapsed().as_secs_f64() / iters as f64
        })
        .fold(f64::MAX, f64::min);
    let per_mib = per * (1024.0 * 1024.0) / body.len() as f64;
    println!("| {name} | {} | {:.0} µs | {:.2} ms | {size} ({:.1}%) |", body.len(), per * 1e6, per_mib * 1e3, 100.0 * size as f64 / body.len() as f64);
}

fn main() {
    println!("| encoder | input bytes | per response | per MiB | compressed bytes |\n|---|---|---|---|---|");
    for len in [64 * 1024, 8 * 1024 * 1024] {
        let body = json_like(len);
        time("libflate gzip::Encoder (one shot, no flush)", &body, &|b| libflate_gzip(b));
        time("libflate zlib sync-flush, one frame", &body, &|b| libflate_sync(b, usize::MAX, false));
        time("libflate zlib sync-flush, 16 KiB frames", &body, &|b| libflate_sync(b, 16 * 1024, false));
        time("libflate zlib sync-flush, fixed Huffman, one frame", &body, &|b| libflate_sync(b, usize::MAX, true));
        for level in [1, 2, 3, 4, 6] {
            time(&format!("flate2/zlib-rs L{level}, one frame"), &body, &|b| flate2_sync(b, usize::MAX, level));
            time(&format!("flate2/zlib-rs L{level}, 16 KiB frames"), &body, &|b| flate2_sync(b, 16 * 1024, level));
        }
        for level in [1, 6] {
            time(&format!("flate2::Compress L{level}, new state per response"), &body, &|b| flate2_state(b, level, None));
            let pool = std::cell::RefCell::new(flate2::Compress::new(flate2::Compression::new(level), false));
            time(&format!("flate2::Compress L{level}, reset pooled state"), &body, &|b| flate2_state(b, level, Some(&pool)));
        }
    }
}
