//! [`CompressBody`]: a response body compressed on the fly, frame by frame,
//! with whichever [`Encoder`] was negotiated. The flushing rules are the
//! codec's business nowhere: they live here once, for gzip, brotli and zstd
//! alike.

use super::br::Br;
use super::gzip::Gzip;
use super::negotiate::Encoding;
use super::zstd::Zstd;
use crate::config::Compression;
use bytes::{Bytes, BytesMut};
use http::header::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Output space offered to the encoder per call, as a share of the input.
pub(super) const MIN_OUT: usize = 1024;
pub(super) const MAX_OUT: usize = 64 * 1024;
/// Input compressed without a flush before one is made anyway, even if the
/// upstream has more ready: bounds the output held back and the time before
/// the client sees it. Each flush ends a deflate block (new Huffman tables,
/// 4 to 5 bytes): at level 1, a flush per 16 KiB frame (h2 DATA) costs 16 %
/// more instructions than one per 64 KiB (perf/findings/2026-12-01-gzip-level1.md).
pub(super) const FLUSH_AFTER: usize = 64 * 1024;

/// Grows `out` by room for one encoder call (zeroed, then truncated to what
/// the encoder wrote); returns where the room starts and how big it is.
/// Reuses the buffer once earlier frames are written and dropped.
pub(super) fn reserve(out: &mut BytesMut, input_len: usize) -> (usize, usize) {
    let room = (input_len / 2).clamp(MIN_OUT, MAX_OUT);
    let start = out.len();
    out.resize(start + room, 0);
    (start, room)
}

/// How far an encoder call goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Flush {
    /// Take the input; output what is ready.
    None,
    /// Everything so far decodes on the client (a sync flush).
    Sync,
    /// End the stream (its trailer or last block).
    Finish,
}

/// An encoder failed. None of them should with valid input; if one does,
/// the body ends without its trailer so the client's decoder reports
/// truncation, never bad data (see [`CompressBody`]).
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    #[error("deflate: {0}")]
    Deflate(#[from] flate2::CompressError),
    #[error("brotli encoder refused the input")]
    Brotli,
    #[error("zstd: {0}")]
    Zstd(#[source] std::io::Error),
    #[error("encoder made no progress")]
    Stalled,
}

/// The negotiated encoder of one response.
pub enum Encoder {
    Gzip(Gzip),
    Br(Br),
    Zstd(Zstd),
}

impl Encoder {
    /// A fresh stream of `encoding` with `settings`' level and window. Only
    /// zstd can fail (libzstd could not allocate its context): the response
    /// then goes uncompressed.
    pub fn new(encoding: Encoding, settings: &Compression) -> Result<Encoder, EncodeError> {
        Ok(match encoding {
            Encoding::Gzip => Encoder::Gzip(Gzip::new(settings.level)),
            Encoding::Br => Encoder::Br(Br::new(settings.brotli_level, settings.brotli_window_log)),
            Encoding::Zstd => {
                Encoder::Zstd(Zstd::new(settings.zstd_level, settings.zstd_window_log)?)
            }
        })
    }

    pub fn encoding(&self) -> Encoding {
        match self {
            Encoder::Gzip(_) => Encoding::Gzip,
            Encoder::Br(_) => Encoding::Br,
            Encoder::Zstd(_) => Encoding::Zstd,
        }
    }

    fn encode(
        &mut self,
        input: &[u8],
        flush: Flush,
        out: &mut BytesMut,
    ) -> Result<(), EncodeError> {
        match self {
            Encoder::Gzip(g) => g.encode(input, flush, out),
            Encoder::Br(b) => b.encode(input, flush, out),
            Encoder::Zstd(z) => z.encode(input, flush, out),
        }
    }
}

/// A response body compressed on the fly, frame by frame.
///
/// When it flushes: before it would wait for the upstream (so an event is
/// never held back for the next one), after [`FLUSH_AFTER`] bytes of input,
/// and by finishing the stream with the frame after which the upstream says
/// it has ended, so a body that arrives whole leaves as one frame.
pub struct CompressBody<B> {
    pub(super) inner: B,
    /// `None` once the stream has ended (or compression failed).
    enc: Option<Encoder>,
    /// Which coding, kept past the end for the metrics.
    encoding: Encoding,
    pub(super) out: BytesMut,
    /// Input compressed since the last flush.
    unflushed: usize,
    /// Upstream trailers, sent after our stream's end.
    trailers: Option<HeaderMap>,
    /// Input bytes so far (`sluice_compression_input_bytes_total`).
    input: u64,
}

impl<B> CompressBody<B> {
    pub fn new(inner: B, enc: Encoder) -> CompressBody<B> {
        let mut out = BytesMut::new();
        if let Encoder::Gzip(g) = &enc {
            g.header(&mut out);
        }
        CompressBody {
            inner,
            encoding: enc.encoding(),
            enc: Some(enc),
            out,
            unflushed: 0,
            trailers: None,
            input: 0,
        }
    }

    /// gzip at `level` 1 to 9 (see `zlib_rs_level`).
    pub fn gzip(inner: B, level: u32) -> CompressBody<B> {
        CompressBody::new(inner, Encoder::Gzip(Gzip::new(level)))
    }

    /// Response body bytes compressed so far.
    pub fn input_bytes(&self) -> u64 {
        self.input
    }

    pub fn encoding(&self) -> Encoding {
        self.encoding
    }

    /// Compresses one frame without flushing; `Some` with the output when
    /// [`FLUSH_AFTER`] forced a flush (or compression failed).
    fn compress_frame(&mut self, data: &[u8]) -> Option<Bytes> {
        self.input += data.len() as u64;
        self.unflushed += data.len();
        let flush = if self.unflushed >= FLUSH_AFTER {
            Flush::Sync
        } else {
            Flush::None
        };
        match self.run(data, flush) {
            Ok(()) if flush == Flush::None => None,
            Ok(()) => Some(self.flushed()),
            Err(e) => Some(self.fail(e)),
        }
    }

    fn run(&mut self, input: &[u8], flush: Flush) -> Result<(), EncodeError> {
        match self.enc.as_mut() {
            Some(enc) => enc.encode(input, flush, &mut self.out),
            None => Ok(()),
        }
    }

    /// Everything compressed so far, complete on the wire (sync flush).
    fn sync(&mut self) -> Bytes {
        match self.run(&[], Flush::Sync) {
            Ok(()) => self.flushed(),
            Err(e) => self.fail(e),
        }
    }

    fn flushed(&mut self) -> Bytes {
        self.unflushed = 0;
        self.out.split().freeze()
    }

    /// The last frame's data (if any) and the end of the stream.
    fn finish(&mut self, data: &[u8]) -> Bytes {
        self.input += data.len() as u64;
        if let Err(e) = self.run(data, Flush::Finish) {
            return self.fail(e);
        }
        self.enc = None;
        self.out.split().freeze()
    }

    /// End without a trailer so the client's decoder reports truncation,
    /// never bad data.
    fn fail(&mut self, e: EncodeError) -> Bytes {
        tracing::error!(
            error = %e,
            encoding = %self.encoding,
            "response compression failed; ending the body without its trailer"
        );
        self.enc = None;
        self.out.clear();
        Bytes::new()
    }
}

impl<B> Body for CompressBody<B>
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
            if this.enc.is_none() {
                return Poll::Ready(this.trailers.take().map(|t| Ok(Frame::trailers(t))));
            }
            let frame = match Pin::new(&mut this.inner).poll_frame(cx) {
                // About to wait: what came so far goes out first.
                Poll::Pending if this.unflushed > 0 => return done(this.sync()),
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(frame))) => frame,
                Poll::Ready(Some(Err(e))) => {
                    // The backend broke off: so do we, without a trailer.
                    this.enc = None;
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

    /// True from the frame that carries the stream's end on (when there
    /// are no upstream trailers to follow), so `server::h1` writes the last
    /// chunk behind that frame instead of polling once more for `None`.
    fn is_end_stream(&self) -> bool {
        self.enc.is_none() && self.trailers.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

impl<B: fmt::Debug> fmt::Debug for CompressBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CompressBody")
            .field("inner", &self.inner)
            .field("encoding", &self.encoding)
            .field("ended", &self.enc.is_none())
            .finish_non_exhaustive()
    }
}
