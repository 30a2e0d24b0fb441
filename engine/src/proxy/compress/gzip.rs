//! The gzip encoder (flate2 with zlib-rs), its per-thread pool of deflate
//! states, and the level mapping. [`super::CompressBody`] drives it.

use super::encoder::{EncodeError, Flush, reserve};
use bytes::BytesMut;
use flate2::{Compress, Crc, FlushCompress, Status};
use std::cell::RefCell;

#[cfg(test)]
pub(super) mod tests;

/// The gzip member header (RFC 1952): deflate, no name, no mtime, OS unknown.
pub(super) const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
/// Idle deflate states kept per worker thread; each holds about 300 KiB.
const POOL_MAX: usize = 4;

/// The zlib-rs level that does what zlib's (and so nginx's) `level` does.
///
/// zlib-rs follows zlib-ng: its level 1 is `deflate_quick`, static Huffman
/// codes only, and zlib's level 1 (`deflate_fast` with good 4, lazy 4,
/// nice 8, chain 4) moved to its level 2, the same parameters. On the
/// bench's 64 KiB JSON body, quick writes 11.2 KB where zlib's level 1
/// writes 8.3 KB; zlib-rs level 2 writes 8.2 KB for 1.5× quick's CPU, about
/// nginx's (perf/findings/2026-12-01-gzip-level1.md). So `level = 1` runs
/// zlib-rs level 2. Levels 2 to 9 are zlib-rs's own: zlib's level 2 (chain
/// 8) has no zlib-rs twin, and 2 compresses like 1. No setting reaches
/// `deflate_quick`.
pub fn zlib_rs_level(level: u32) -> u32 {
    match level.clamp(1, 9) {
        1 => 2,
        n => n,
    }
}

thread_local! {
    /// Idle deflate states of this thread, with their level.
    ///
    /// # Concurrency
    /// Thread-local, so the free list needs no lock: with thread-per-core a
    /// thread is a worker; with `runtime = "work-stealing"` a body finished
    /// on another thread than the one it started on just feeds that
    /// thread's pool (each list stays bounded by what one thread holds).
    /// Boxed so that a loan moves a pointer, and `RespBody` stays small; the
    /// box is allocated once and then travels between pool and responses.
    static POOL: RefCell<Vec<(u32, Box<Compress>)>> = const { RefCell::new(Vec::new()) };
}

/// A deflate state on loan from this thread's pool.
struct Deflater {
    level: u32,
    z: Option<Box<Compress>>,
}

impl Deflater {
    fn take(level: u32) -> Deflater {
        let pooled = POOL.with(|p| {
            let mut p = p.borrow_mut();
            // The state returned last: its ~300 KiB are the likeliest to
            // be in cache still. Oldest first would rotate through all of
            // them once a burst has filled the pool.
            let i = p.iter().rposition(|(l, _)| *l == level)?;
            Some(p.remove(i).1)
        });
        let z = pooled
            .unwrap_or_else(|| Box::new(Compress::new(flate2::Compression::new(level), false)));
        Deflater { level, z: Some(z) }
    }
}

impl Drop for Deflater {
    fn drop(&mut self) {
        if let Some(mut z) = self.z.take() {
            z.reset();
            let level = self.level;
            // `try_with`: during thread teardown the pool may be gone.
            let _ = POOL.try_with(|p| {
                if let Ok(mut p) = p.try_borrow_mut()
                    && p.len() < POOL_MAX
                {
                    p.push((level, z));
                }
            });
        }
    }
}

/// One gzip member: the deflate state on loan and the running CRC.
pub struct Gzip {
    z: Deflater,
    crc: Crc,
}

impl Gzip {
    /// `level` is the configured one, 1 to 9 (see [`zlib_rs_level`]).
    pub(super) fn new(level: u32) -> Gzip {
        Gzip {
            z: Deflater::take(zlib_rs_level(level)),
            crc: Crc::new(),
        }
    }

    /// The member header, before the first output.
    pub(super) fn header(&self, out: &mut BytesMut) {
        out.extend_from_slice(&GZIP_HEADER);
    }

    /// Compresses `input` into `out` and flushes (sync, or finish with the
    /// gzip trailer: CRC-32, size mod 2³²).
    pub(super) fn encode(
        &mut self,
        input: &[u8],
        flush: Flush,
        out: &mut BytesMut,
    ) -> Result<(), EncodeError> {
        self.crc.update(input);
        let mode = match flush {
            Flush::None => FlushCompress::None,
            Flush::Sync => FlushCompress::Sync,
            Flush::Finish => FlushCompress::Finish,
        };
        self.deflate(input, mode, out)?;
        if flush == Flush::Finish {
            out.extend_from_slice(&self.crc.sum().to_le_bytes());
            out.extend_from_slice(&self.crc.amount().to_le_bytes());
        }
        Ok(())
    }

    fn deflate(
        &mut self,
        mut input: &[u8],
        flush: FlushCompress,
        out: &mut BytesMut,
    ) -> Result<(), flate2::CompressError> {
        let Some(z) = self.z.z.as_mut() else {
            return Ok(());
        };
        loop {
            let (start, room) = reserve(out, input.len());
            let (in0, out0) = (z.total_in(), z.total_out());
            let status = z.compress(input, &mut out[start..], flush);
            let consumed = usize::try_from(z.total_in() - in0).unwrap_or(input.len());
            let produced = usize::try_from(z.total_out() - out0).unwrap_or(0);
            out.truncate(start + produced);
            input = input.get(consumed..).unwrap_or_default();
            match status? {
                Status::StreamEnd => return Ok(()),
                // A flush is complete when the input is in and there was room to spare.
                Status::Ok
                    if input.is_empty() && produced < room && flush != FlushCompress::Finish =>
                {
                    return Ok(());
                }
                Status::BufError if consumed == 0 && produced == 0 => return Ok(()),
                Status::Ok | Status::BufError => {}
            }
        }
    }
}
