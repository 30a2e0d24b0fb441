//! Stage: `proxy::handle` returned a response → **`http1::write`** encodes
//! it → bytes out to the client (`server::h1`); and the request head and
//! body our client sends to a backend (`upstream::h1`).
//!
//! [`WriteBuf`] is the write-coalescing policy of both sides: each batch
//! waits one scheduler turn, small frames are copied behind the head, large
//! ones go out by reference, and a flush is forced at [`FLUSH_AT`].
//!
//! A response head is encoded into one buffer (status line, fields, our own framing
//! and `Connection`, a `Date` cached per second). Body framing follows RFC
//! 9112 §6: `Content-Length` when the body's size is known, else chunked
//! (with trailers), close-delimited for HTTP/1.0 clients, and nothing at all
//! for HEAD, 1xx, 204 and 304. Small frames are copied behind the head so that
//! the head and the first chunk usually leave in one `writev`; large frames go
//! out by reference.

use super::framing::Framing;
use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode, header};
use std::cell::Cell;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::io::AsyncWrite;

/// Frames up to this size are copied into the head buffer; larger ones are
/// written from their own `Bytes`.
const COPY_MAX: usize = 8 * 1024;
/// Flush once this much is buffered even if the body has more ready.
pub const FLUSH_AT: usize = 64 * 1024;

/// What `Connection` field we write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnHeader {
    /// Whatever the response carries (e.g. `upgrade` on a 101).
    AsIs,
    Close,
    /// An HTTP/1.0 client that asked to keep the connection.
    KeepAlive,
}

/// Room reserved behind a head for the first body frame(s).
const SMALL_BODY: usize = 4 * 1024;

/// The bytes `headers` take as `name: value\r\n` lines.
pub fn head_size(headers: &HeaderMap) -> usize {
    headers
        .iter()
        .map(|(n, v)| n.as_str().len() + v.len() + 4)
        .sum()
}

/// Appends the status line and fields to `dst`.
pub fn encode_head(
    dst: &mut Vec<u8>,
    status: StatusCode,
    headers: &HeaderMap,
    framing: Framing,
    conn: ConnHeader,
) {
    // One allocation for the head and a small first frame: growing from
    // empty cost ~7 reallocations and their copies per response (callgrind).
    dst.reserve(head_size(headers) + 128 + SMALL_BODY);
    dst.extend_from_slice(b"HTTP/1.1 ");
    dst.extend_from_slice(status.as_str().as_bytes());
    dst.push(b' ');
    dst.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    dst.extend_from_slice(b"\r\n");
    // 204 and 1xx must not carry Content-Length; HEAD and 304 keep the one the
    // backend sent (it describes the representation, not this message).
    let keep_length = framing == Framing::None
        && !(status.is_informational() || status == StatusCode::NO_CONTENT);
    let mut has_date = false;
    for (name, value) in headers {
        if *name == header::CONTENT_LENGTH {
            if !keep_length {
                continue;
            }
        } else if *name == header::TRANSFER_ENCODING
            || (*name == header::CONNECTION && conn != ConnHeader::AsIs)
        {
            continue;
        } else if *name == header::DATE {
            has_date = true;
        }
        dst.extend_from_slice(name.as_str().as_bytes());
        dst.extend_from_slice(b": ");
        dst.extend_from_slice(value.as_bytes());
        dst.extend_from_slice(b"\r\n");
    }
    match framing {
        Framing::Length(n) => {
            dst.extend_from_slice(b"content-length: ");
            dst.extend_from_slice(itoa(n, &mut [0; 20]));
            dst.extend_from_slice(b"\r\n");
        }
        Framing::Chunked => dst.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        Framing::None | Framing::Close => {}
    }
    match conn {
        ConnHeader::AsIs => {}
        ConnHeader::Close => dst.extend_from_slice(b"connection: close\r\n"),
        ConnHeader::KeepAlive => dst.extend_from_slice(b"connection: keep-alive\r\n"),
    }
    if !has_date {
        dst.extend_from_slice(b"date: ");
        dst.extend_from_slice(&date());
        dst.extend_from_slice(b"\r\n");
    }
    dst.extend_from_slice(b"\r\n");
}

/// Appends the request line and fields for the backend. `Content-Length` and
/// `Transfer-Encoding` from the request are replaced by `framing`, which is
/// what the body will really be on this connection.
pub fn encode_request(
    dst: &mut Vec<u8>,
    method: &Method,
    target: &str,
    headers: &HeaderMap,
    framing: Framing,
) {
    dst.reserve(method.as_str().len() + target.len() + head_size(headers) + 64);
    dst.extend_from_slice(method.as_str().as_bytes());
    dst.push(b' ');
    dst.extend_from_slice(target.as_bytes());
    dst.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in headers {
        if name == header::CONTENT_LENGTH || name == header::TRANSFER_ENCODING {
            continue;
        }
        dst.extend_from_slice(name.as_str().as_bytes());
        dst.extend_from_slice(b": ");
        dst.extend_from_slice(value.as_bytes());
        dst.extend_from_slice(b"\r\n");
    }
    match framing {
        Framing::None | Framing::Close => {}
        Framing::Length(n) => {
            dst.extend_from_slice(b"content-length: ");
            let mut digits = [0u8; 20];
            dst.extend_from_slice(itoa(n, &mut digits));
            dst.extend_from_slice(b"\r\n");
        }
        Framing::Chunked => dst.extend_from_slice(b"transfer-encoding: chunked\r\n"),
    }
    dst.extend_from_slice(b"\r\n");
}

/// The last chunk and the trailers of a chunked body.
pub fn encode_chunked_end(dst: &mut Vec<u8>, trailers: Option<&HeaderMap>) {
    dst.extend_from_slice(b"0\r\n");
    for (name, value) in trailers.into_iter().flatten() {
        dst.extend_from_slice(name.as_str().as_bytes());
        dst.extend_from_slice(b": ");
        dst.extend_from_slice(value.as_bytes());
        dst.extend_from_slice(b"\r\n");
    }
    dst.extend_from_slice(b"\r\n");
}

/// Bytes on their way to the client: a buffer (head, chunk lines, small
/// frames) followed by at most one large frame and its chunk CRLF.
#[derive(Debug, Default)]
pub struct WriteBuf {
    pub buf: Vec<u8>,
    pos: usize,
    data: Bytes,
    /// `\r\n` after `data` (chunked); a static slice, counted down as written.
    tail: &'static [u8],
    /// This batch's first write was put off one scheduler turn already.
    deferred: bool,
}

impl WriteBuf {
    pub fn is_empty(&self) -> bool {
        self.pos == self.buf.len() && self.data.is_empty() && self.tail.is_empty()
    }

    /// More must not be appended before a flush.
    pub fn is_full(&self) -> bool {
        !self.data.is_empty() || !self.tail.is_empty() || self.buf.len() >= FLUSH_AT
    }

    /// Appends one data frame under `framing`. Call only when not full.
    pub fn push_data(&mut self, framing: Framing, data: Bytes) {
        if data.is_empty() {
            return;
        }
        let chunked = framing == Framing::Chunked;
        if chunked {
            let mut hex = [0u8; 16];
            self.buf.extend_from_slice(hex_len(data.len(), &mut hex));
            self.buf.extend_from_slice(b"\r\n");
        }
        if data.len() <= COPY_MAX {
            self.buf.extend_from_slice(&data);
            if chunked {
                self.buf.extend_from_slice(b"\r\n");
            }
        } else {
            self.data = data;
            self.tail = if chunked { b"\r\n" } else { b"" };
        }
    }

    /// Ends a chunked body (no trailers). A large frame held by reference
    /// goes out after `buf`, so the last chunk must follow it, not `buf`.
    pub fn push_chunked_end(&mut self) {
        if self.data.is_empty() && self.tail.is_empty() {
            encode_chunked_end(&mut self.buf, None);
        } else {
            self.tail = b"\r\n0\r\n\r\n";
        }
    }

    /// Writes everything queued; the buffer's capacity is kept for reuse.
    pub fn poll_flush<I: AsyncWrite + Unpin>(
        &mut self,
        io: &mut I,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.deferred && !self.is_empty() {
            // One scheduler turn first: the other connections that are ready
            // now queue their writes too, and the writes leave back to back.
            // A peer sleeping in epoll_wait is woken (an IPI and a context
            // switch, billed to the writer) by the first of them, not by
            // each one (perf/findings/2026-12-01-write-batching.md).
            self.deferred = true;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        while !self.is_empty() {
            let slices = [
                IoSlice::new(&self.buf[self.pos..]),
                IoSlice::new(&self.data),
                IoSlice::new(self.tail),
            ];
            let n = if io.is_write_vectored() {
                std::task::ready!(Pin::new(&mut *io).poll_write_vectored(cx, &slices))?
            } else {
                let first = slices.iter().find(|s| !s.is_empty()).map_or(&[][..], |s| s);
                std::task::ready!(Pin::new(&mut *io).poll_write(cx, first))?
            };
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.advance(n);
        }
        self.buf.clear();
        self.pos = 0;
        self.deferred = false;
        Poll::Ready(Ok(()))
    }

    fn advance(&mut self, mut n: usize) {
        let in_buf = (self.buf.len() - self.pos).min(n);
        self.pos += in_buf;
        n -= in_buf;
        let in_data = self.data.len().min(n);
        bytes::Buf::advance(&mut self.data, in_data);
        n -= in_data;
        self.tail = &self.tail[n.min(self.tail.len())..];
    }
}

pub(crate) fn itoa(mut n: u64, out: &mut [u8; 20]) -> &[u8] {
    let mut i = out.len();
    loop {
        i -= 1;
        out[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &out[i..];
        }
    }
}

fn hex_len(mut n: usize, out: &mut [u8; 16]) -> &[u8] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut i = out.len();
    loop {
        i -= 1;
        out[i] = HEX[n & 0xf];
        n >>= 4;
        if n == 0 {
            return &out[i..];
        }
    }
}

thread_local! {
    /// The `Date` value of the current second.
    ///
    /// # Concurrency
    /// Thread-local, so no synchronisation: one cache per thread, which is
    /// one per worker with thread-per-core and one per runtime thread with
    /// `runtime = "work-stealing"` (each formats the date once per second).
    static DATE: Cell<(u64, [u8; 29])> = const { Cell::new((u64::MAX, [0; 29])) };
}

/// `Date` in IMF-fixdate, formatted at most once per second per thread.
pub fn date() -> [u8; 29] {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    DATE.with(|c| {
        let (at, v) = c.get();
        if at == now {
            return v;
        }
        let v = imf_fixdate(now);
        c.set((now, v));
        v
    })
}

/// `Sun, 06 Nov 1994 08:49:37 GMT` for `secs` since the Unix epoch.
pub fn imf_fixdate(secs: u64) -> [u8; 29] {
    const DAYS: [&[u8; 3]; 7] = [b"Thu", b"Fri", b"Sat", b"Sun", b"Mon", b"Tue", b"Wed"];
    const MONTHS: [&[u8; 3]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days, for days since 1970-01-01.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);

    let mut out = *b"Thu, 01 Jan 1970 00:00:00 GMT";
    out[..3].copy_from_slice(DAYS[(days % 7) as usize]);
    let two = |v: i64, at: &mut [u8]| {
        at[0] = b'0' + (v / 10 % 10) as u8;
        at[1] = b'0' + (v % 10) as u8;
    };
    two(day, &mut out[5..7]);
    out[8..11].copy_from_slice(MONTHS[(month - 1) as usize]);
    two(year / 100, &mut out[12..14]);
    two(year % 100, &mut out[14..16]);
    two((rem / 3600) as i64, &mut out[17..19]);
    two((rem / 60 % 60) as i64, &mut out[20..22]);
    two((rem % 60) as i64, &mut out[23..25]);
    out
}

#[cfg(test)]
mod tests;
