//! [`GzipBody`]: the streaming gzip encoder (flate2 with zlib-rs), its
//! per-thread pool of deflate states, and the level mapping.

use bytes::{Bytes, BytesMut};
use flate2::{Compress, Crc, FlushCompress, Status};
use http::header::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use std::cell::RefCell;
use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

#[cfg(test)]
mod tests;

/// The gzip member header (RFC 1952): deflate, no name, no mtime, OS unknown.
const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
/// Idle deflate states kept per worker thread; each holds about 300 KiB.
const POOL_MAX: usize = 4;
/// Output space offered to the encoder per call, as a share of the input.
const MIN_OUT: usize = 1024;
const MAX_OUT: usize = 64 * 1024;
/// Input compressed without a flush before one is made anyway, even if the
/// upstream has more ready: bounds the output held back and the time before
/// the client sees it. Each flush ends a deflate block (new Huffman tables,
/// 4 to 5 bytes): at level 1, a flush per 16 KiB frame (h2 DATA) costs 16 %
/// more instructions than one per 64 KiB (perf/findings/2026-12-01-gzip-level1.md).
const FLUSH_AFTER: usize = 64 * 1024;

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

/// A response body compressed to gzip on the fly, frame by frame.
///
/// When it flushes: before it would wait for the upstream (so an event is
/// never held back for the next one), after [`FLUSH_AFTER`] bytes of input,
/// and by finishing the stream with the frame after which the upstream says
/// it has ended, so a body that arrives whole leaves as one frame.
pub struct GzipBody<B> {
    inner: B,
    /// `None` once the gzip trailer has been produced (or compression failed).
    z: Option<Deflater>,
    crc: Crc,
    out: BytesMut,
    /// Input compressed since the last flush.
    unflushed: usize,
    /// Upstream trailers, sent after our gzip trailer.
    trailers: Option<HeaderMap>,
    /// Input bytes so far (`sluice_compression_input_bytes_total`).
    input: u64,
}

impl<B> GzipBody<B> {
    /// `level` is the configured one, 1 to 9 (see [`zlib_rs_level`]).
    pub fn new(inner: B, level: u32) -> GzipBody<B> {
        let mut out = BytesMut::new();
        out.extend_from_slice(&GZIP_HEADER);
        GzipBody {
            inner,
            z: Some(Deflater::take(zlib_rs_level(level))),
            crc: Crc::new(),
            out,
            unflushed: 0,
            trailers: None,
            input: 0,
        }
    }

    /// Response body bytes compressed so far.
    pub fn input_bytes(&self) -> u64 {
        self.input
    }

    /// Compresses `input` into `out` and flushes (sync or finish).
    fn deflate(
        &mut self,
        mut input: &[u8],
        flush: FlushCompress,
    ) -> Result<(), flate2::CompressError> {
        let Some(z) = self.z.as_mut().and_then(|d| d.z.as_mut()) else {
            return Ok(());
        };
        loop {
            let room = (input.len() / 2).clamp(MIN_OUT, MAX_OUT);
            let start = self.out.len();
            // Reuses the buffer once earlier frames are written and dropped.
            self.out.resize(start + room, 0);
            let (in0, out0) = (z.total_in(), z.total_out());
            let status = z.compress(input, &mut self.out[start..], flush);
            let consumed = usize::try_from(z.total_in() - in0).unwrap_or(input.len());
            let produced = usize::try_from(z.total_out() - out0).unwrap_or(0);
            self.out.truncate(start + produced);
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

    /// Compresses one frame without flushing; `Some` with the output when
    /// [`FLUSH_AFTER`] forced a flush (or compression failed).
    fn compress_frame(&mut self, data: &[u8]) -> Option<Bytes> {
        self.input += data.len() as u64;
        self.crc.update(data);
        self.unflushed += data.len();
        let flush = if self.unflushed >= FLUSH_AFTER {
            FlushCompress::Sync
        } else {
            FlushCompress::None
        };
        match self.deflate(data, flush) {
            Ok(()) if flush == FlushCompress::None => None,
            Ok(()) => Some(self.flushed()),
            Err(e) => Some(self.fail(e)),
        }
    }

    /// Everything compressed so far, complete on the wire (sync flush).
    fn sync(&mut self) -> Bytes {
        match self.deflate(&[], FlushCompress::Sync) {
            Ok(()) => self.flushed(),
            Err(e) => self.fail(e),
        }
    }

    fn flushed(&mut self) -> Bytes {
        self.unflushed = 0;
        self.out.split().freeze()
    }

    /// The last frame's data (if any), the end of the deflate stream and the
    /// gzip trailer (CRC-32, size mod 2³²).
    fn finish(&mut self, data: &[u8]) -> Bytes {
        self.input += data.len() as u64;
        self.crc.update(data);
        if let Err(e) = self.deflate(data, FlushCompress::Finish) {
            return self.fail(e);
        }
        self.out.extend_from_slice(&self.crc.sum().to_le_bytes());
        self.out.extend_from_slice(&self.crc.amount().to_le_bytes());
        self.z = None;
        self.out.split().freeze()
    }

    /// Cannot happen with valid input to zlib-rs; if it does, end without a
    /// trailer so the client's decoder reports truncation, never bad data.
    fn fail(&mut self, e: flate2::CompressError) -> Bytes {
        tracing::error!(error = %e, "gzip compression failed; ending the body without its trailer");
        self.z = None;
        self.out.clear();
        Bytes::new()
    }
}

impl<B> Body for GzipBody<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = &mut *self;
        let done = |bytes| Poll::Ready(Some(Ok(Frame::data(bytes))));
        loop {
            if this.z.is_none() {
                return Poll::Ready(this.trailers.take().map(|t| Ok(Frame::trailers(t))));
            }
            let frame = match Pin::new(&mut this.inner).poll_frame(cx) {
                // About to wait: what came so far goes out first.
                Poll::Pending if this.unflushed > 0 => return done(this.sync()),
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(frame))) => frame,
                Poll::Ready(Some(Err(e))) => {
                    // The backend broke off: so do we, without a trailer.
                    this.z = None;
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Ready(None) => return done(this.finish(&[])),
            };
            match frame.into_data() {
                Ok(data) if data.is_empty() => {}
                // The upstream knows it has ended (its length is reached):
                // finish now rather than flush and poll once more.
                Ok(data) if this.inner.is_end_stream() => return done(this.finish(&data)),
                Ok(data) => {
                    if let Some(bytes) = this.compress_frame(&data) {
                        return done(bytes);
                    }
                }
                Err(frame) => {
                    if let Ok(t) = frame.into_trailers() {
                        this.trailers = Some(t);
                        return done(this.finish(&[]));
                    }
                }
            }
        }
    }

    /// True from the frame that carries the gzip trailer on (when there are
    /// no upstream trailers to follow), so `server::h1` writes the last chunk
    /// behind that frame instead of polling once more for `None`.
    fn is_end_stream(&self) -> bool {
        self.z.is_none() && self.trailers.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

impl<B: fmt::Debug> fmt::Debug for GzipBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GzipBody")
            .field("inner", &self.inner)
            .field("level", &self.z.as_ref().map(|d| d.level))
            .field("crc", &self.crc.sum())
            .finish_non_exhaustive()
    }
}
