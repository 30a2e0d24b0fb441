//! Response compression: the last stage before the body streams to the
//! client (`proxy::headers::outbound` → **compress** → `proxy::body`).
//!
//! Two halves:
//!
//! - The decision, pure functions over the request head (captured as a small
//!   `Copy` [`ClientGzip`] before the request moves to the backend) and the
//!   response head: the client accepts gzip (RFC 9110 §12.5.3 q-values), the
//!   content type is listed, a known length is at least `min_length`, the
//!   response is not already encoded, not `Cache-Control: no-transform`, and
//!   it has a body worth changing (not HEAD, 1xx, 204, 206/`Content-Range`
//!   or 304).
//! - [`GzipBody`], which compresses each upstream data frame as it arrives
//!   and sync-flushes before it would wait for the next one, so server-sent
//!   events and long polls reach the client one event at a time, while
//!   frames that are already there together share one flush. Memory per
//!   response is the deflate state plus one output buffer that is reused
//!   once the previous frame has been written; nothing accumulates, whatever
//!   the body size.
//!
//! A backend that already sent `Content-Encoding` (gzip or anything else) is
//! passed through untouched, also to a client that did not ask for it: the
//! proxy never decompresses. That is what nginx does by default (`gunzip
//! off`); a backend that ignores `Accept-Encoding` is the backend's bug.
//!
//! The encoder is flate2 with the zlib-rs backend, not libflate: libflate
//! has no compression levels, restarts its LZ77 window at every flush and
//! spent 7× more CPU per response than zlib-rs at level 1
//! (perf/findings/2026-11-25-gzip.md). Deflate states are pooled per worker
//! thread because allocating and zeroing one costs as much as compressing a
//! small response.
//!
//! Levels mean what they mean in zlib and nginx's `gzip_comp_level`, which
//! is not what zlib-rs's numbers mean at the bottom: see [`zlib_rs_level`].

use super::body::{RespBody, UpstreamBody};
use crate::config::Compression;
use bytes::{Bytes, BytesMut};
use flate2::{Compress, Crc, FlushCompress, Status};
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, StatusCode};
use http_body::{Body, Frame, SizeHint};
use std::cell::RefCell;
use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

#[cfg(test)]
mod body_tests;
#[cfg(test)]
mod tests;

/// What the request allows, captured before the request is moved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientGzip {
    /// Compression is off for this route, or the request cannot have a
    /// body to compress (HEAD): the response is not looked at.
    Off,
    /// The client does not accept gzip; the response may still get `Vary`.
    Refuses,
    Accepts,
}

impl ClientGzip {
    /// `enabled` is the route's switch, else the global one: when it is off
    /// this is the only branch the request path pays.
    pub fn capture(enabled: bool, method: &Method, headers: &HeaderMap) -> ClientGzip {
        if !enabled || method == Method::HEAD {
            return ClientGzip::Off;
        }
        let values = headers.get_all(header::ACCEPT_ENCODING).iter();
        if accepts_gzip(values.map(HeaderValue::as_bytes)) {
            ClientGzip::Accepts
        } else {
            ClientGzip::Refuses
        }
    }
}

/// A q-value in thousandths (RFC 9110 §12.4.2): `q=0.5` is 500.
type Q = u16;

/// Whether `Accept-Encoding` (all its field lines) lets us send gzip.
///
/// gzip's weight is that of `gzip` or `x-gzip` if listed, else that of `*`,
/// else zero. It must be above zero and not below an explicitly listed
/// `identity`: a client that ranks identity higher gets identity. Malformed
/// entries are ignored, never trusted: `gzip;q=oops` does not accept gzip.
pub fn accepts_gzip<'a>(values: impl Iterator<Item = &'a [u8]>) -> bool {
    let (mut gzip, mut star, mut identity): (Option<Q>, Option<Q>, Option<Q>) = (None, None, None);
    for value in values {
        for entry in value.split(|&b| b == b',') {
            let mut parts = entry.split(|&b| b == b';');
            let coding = trim(parts.next().unwrap_or_default());
            let Some(q) = weight(parts) else { continue };
            let slot =
                if coding.eq_ignore_ascii_case(b"gzip") || coding.eq_ignore_ascii_case(b"x-gzip") {
                    &mut gzip
                } else if coding == b"*" {
                    &mut star
                } else if coding.eq_ignore_ascii_case(b"identity") {
                    &mut identity
                } else {
                    continue;
                };
            // Listed twice: the more generous weight wins.
            *slot = Some(slot.map_or(q, |old| old.max(q)));
        }
    }
    let q = gzip.or(star).unwrap_or(0);
    q > 0 && identity.is_none_or(|i| q >= i)
}

/// The `q` parameter of one entry (1000 when absent), or `None` if malformed.
fn weight<'a>(params: impl Iterator<Item = &'a [u8]>) -> Option<Q> {
    let mut q = 1000;
    for p in params {
        let p = trim(p);
        if p.is_empty() {
            continue;
        }
        let (name, value) = match p.iter().position(|&b| b == b'=') {
            Some(i) => (trim(&p[..i]), trim(&p[i + 1..])),
            None => return None,
        };
        if name.eq_ignore_ascii_case(b"q") {
            q = parse_q(value)?;
        }
    }
    Some(q)
}

/// `0`, `0.5`, `1`, `1.000`; at most three decimals, never above 1.
fn parse_q(v: &[u8]) -> Option<Q> {
    let (int, frac) = match v.iter().position(|&b| b == b'.') {
        Some(i) => (&v[..i], &v[i + 1..]),
        None => (v, &b""[..]),
    };
    if frac.len() > 3 || !frac.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut thousandths: Q = 0;
    for i in 0..3 {
        thousandths = thousandths * 10 + frac.get(i).map_or(0, |d| Q::from(d - b'0'));
    }
    match int {
        b"0" => Some(thousandths),
        b"1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

fn trim(s: &[u8]) -> &[u8] {
    s.trim_ascii()
}

/// What to do with one response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Leave it exactly as the backend sent it.
    Skip,
    /// We would compress it for another client: say so in `Vary`, so that
    /// a shared cache does not hand this identity copy to everyone, or a
    /// gzip copy to this client.
    VaryOnly,
    Compress,
}

/// Whether to compress a response to a request that was captured as `client`.
pub fn decide(
    client: ClientGzip,
    settings: &Compression,
    status: StatusCode,
    headers: &HeaderMap,
) -> Decision {
    if client == ClientGzip::Off
        || status.is_informational()
        || matches!(
            status,
            StatusCode::NO_CONTENT | StatusCode::PARTIAL_CONTENT | StatusCode::NOT_MODIFIED
        )
        || headers.contains_key(header::CONTENT_RANGE)
        || headers.contains_key(header::CONTENT_ENCODING)
        || has_token(headers, header::CACHE_CONTROL, "no-transform")
        || !type_listed(&settings.types, headers.get(header::CONTENT_TYPE))
    {
        return Decision::Skip;
    }
    if let Some(len) = headers.get(header::CONTENT_LENGTH) {
        // An unparsable length: hyper refused to frame it anyway; leave it.
        match std::str::from_utf8(len.as_bytes())
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
        {
            Some(n) if n > 0 && n >= settings.min_length => {}
            _ => return Decision::Skip,
        }
    }
    match client {
        ClientGzip::Accepts => Decision::Compress,
        ClientGzip::Refuses | ClientGzip::Off => Decision::VaryOnly,
    }
}

/// The one call the request path makes: decides, rewrites the head and
/// wraps the body. With [`ClientGzip::Off`] it is a single branch.
pub fn apply(
    client: ClientGzip,
    settings: &Compression,
    parts: &mut http::response::Parts,
    body: UpstreamBody,
) -> RespBody {
    if client == ClientGzip::Off {
        return RespBody::Upstream(body);
    }
    match decide(client, settings, parts.status, &parts.headers) {
        Decision::Skip => RespBody::Upstream(body),
        Decision::VaryOnly => {
            add_vary(&mut parts.headers);
            RespBody::Upstream(body)
        }
        Decision::Compress => {
            rewrite_headers(&mut parts.headers);
            RespBody::Gzip(GzipBody::new(body, settings.level))
        }
    }
}

/// Whether the media type of `content_type` is in `types`: `type/sub`
/// exactly, `type/*`, `*/*`, or a structured suffix like `+json`. Patterns
/// are lowercase (validation made them so); the header may be any case.
pub fn type_listed(types: &[String], content_type: Option<&HeaderValue>) -> bool {
    let Some(ct) = content_type else { return false };
    let ct = ct.as_bytes();
    let media = trim(ct.split(|&b| b == b';').next().unwrap_or_default());
    let Some(slash) = media.iter().position(|&b| b == b'/') else {
        return false;
    };
    types.iter().any(|p| {
        let p = p.as_bytes();
        if p == b"*/*" {
            true
        } else if p.first() == Some(&b'+') {
            media.len() > slash + p.len() && media[media.len() - p.len()..].eq_ignore_ascii_case(p)
        } else if let Some(prefix) = p.strip_suffix(b"*") {
            media.len() > prefix.len() && media[..prefix.len()].eq_ignore_ascii_case(prefix)
        } else {
            media.eq_ignore_ascii_case(p)
        }
    })
}

/// Whether a comma-separated header (any of its lines) lists `token`.
fn has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|v| {
        v.as_bytes().split(|&b| b == b',').any(|t| {
            // `no-transform` has no value, but tolerate `token=...` forms.
            let t = trim(t);
            let t = t.split(|&b| b == b'=').next().unwrap_or_default();
            trim(t).eq_ignore_ascii_case(token.as_bytes())
        })
    })
}

/// Adds `Accept-Encoding` to `Vary` unless it is there or `Vary: *`.
pub fn add_vary(headers: &mut HeaderMap) {
    if has_token(headers, header::VARY, "accept-encoding") || has_token(headers, header::VARY, "*")
    {
        return;
    }
    let mut lines = headers.get_all(header::VARY).iter().peekable();
    if lines.peek().is_none() {
        headers.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
        return;
    }
    // Extend the field in place, folding several lines into one.
    let mut joined = Vec::new();
    for v in lines {
        let v = trim(v.as_bytes());
        if !v.is_empty() {
            joined.extend_from_slice(v);
            joined.extend_from_slice(b", ");
        }
    }
    joined.extend_from_slice(b"Accept-Encoding");
    match HeaderValue::from_bytes(&joined) {
        Ok(v) => {
            headers.insert(header::VARY, v);
        }
        // Unreachable (the parts were valid values); keep both lines then.
        Err(_) => {
            headers.append(header::VARY, HeaderValue::from_static("Accept-Encoding"));
        }
    }
}

/// The response head of a body we are about to compress.
pub fn rewrite_headers(headers: &mut HeaderMap) {
    headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    // The length is unknown until the end: HTTP/1.1 goes chunked.
    headers.remove(header::CONTENT_LENGTH);
    // Byte ranges of the identity body mean nothing in the gzip one.
    headers.remove(header::ACCEPT_RANGES);
    add_vary(headers);
    // Same content, different bytes: a strong validator would lie (RFC 9110 §8.8.1).
    if let Some(etag) = headers.get(header::ETAG)
        && etag.as_bytes().first() == Some(&b'"')
    {
        let mut weak = Vec::with_capacity(etag.len() + 2);
        weak.extend_from_slice(b"W/");
        weak.extend_from_slice(etag.as_bytes());
        if let Ok(v) = HeaderValue::from_bytes(&weak) {
            headers.insert(header::ETAG, v);
        }
    }
}

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
