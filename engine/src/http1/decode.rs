//! Stage: a head decided the [`Framing`] → **`http1::decode`** turns the
//! bytes that follow it into body frames (a request's for `server::h1`,
//! through `http1::body`; a response's for `upstream::h1`).
//!
//! A pure decoder over the connection's read buffer: it never does IO, so it
//! can be tested byte by byte. Content-Length bodies are exact; chunked bodies
//! are strict (hex sizes with an overflow check, CRLF after every line and
//! every chunk, a bounded size line, extensions ignored, trailers parsed).

use super::framing::Framing;
use crate::error::{ErrorKind, find_cause};
use bytes::{Buf, Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue};
use http_body::Frame;
use std::fmt;

/// The longest chunk-size line (size, extensions, CRLF) we accept.
pub const MAX_CHUNK_LINE: usize = 1024;
/// Trailer fields kept; more is an error.
const MAX_TRAILERS: usize = 64;

/// Why a request body could not be read. Small and `Copy`: it travels in
/// every error frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyError {
    /// The client closed the connection before the end of the body.
    Incomplete,
    /// A chunk size that is not hex, or has stray bytes after it.
    BadChunkSize,
    /// A chunk size larger than `u64`.
    ChunkSizeOverflow,
    /// A chunk-size line longer than [`MAX_CHUNK_LINE`].
    ChunkLineTooLong,
    /// A chunk not followed by CRLF, or a bare LF.
    MissingCrlf,
    /// Trailers that do not parse, or too many or too large.
    BadTrailers,
    /// The connection failed or timed out while the body was being read.
    Io,
    /// The connection stopped reading the body (the response finished first).
    Abandoned,
    /// The client sent nothing for `timeouts.client_body` while the body
    /// was wanted (`body::ReqBody::timed`).
    TimedOut,
    /// The client's upload fell below `limits.min_body_rate`.
    TooSlow,
    /// The body passed `limits.max_request_body`.
    TooLarge,
}

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BodyError::Incomplete => "client closed before the end of the body",
            BodyError::BadChunkSize => "invalid chunk size",
            BodyError::ChunkSizeOverflow => "chunk size overflows",
            BodyError::ChunkLineTooLong => "chunk size line too long",
            BodyError::MissingCrlf => "missing CRLF in chunked body",
            BodyError::BadTrailers => "invalid trailers",
            BodyError::Io => "connection error while reading the body",
            BodyError::Abandoned => "body abandoned by the connection",
            BodyError::TimedOut => "client sent no body bytes in time",
            BodyError::TooSlow => "client sent its body below the minimum rate",
            BodyError::TooLarge => "body larger than the limit",
        })
    }
}

impl std::error::Error for BodyError {}

impl BodyError {
    /// The kind of a request that failed because of this: the client's own
    /// framing, or the client going away. Exhaustive on purpose.
    pub const fn kind(self) -> ErrorKind {
        match self {
            BodyError::BadChunkSize
            | BodyError::ChunkSizeOverflow
            | BodyError::ChunkLineTooLong
            | BodyError::MissingCrlf
            | BodyError::BadTrailers => ErrorKind::MalformedBody,
            BodyError::Incomplete | BodyError::Io | BodyError::Abandoned => {
                ErrorKind::ClientAborted
            }
            BodyError::TimedOut => ErrorKind::ClientBodyTimeout,
            BodyError::TooSlow => ErrorKind::ClientBodyTooSlow,
            BodyError::TooLarge => ErrorKind::BodyTooLarge,
        }
    }
}

/// The kind for a request whose body failed with `err` on its way to a
/// backend: the [`BodyError`] in its cause chain (our HTTP/1 server's);
/// a replayed body's [`Lost`](crate::proxy::replay::Lost), which says
/// whose doing it was; or else the client went away (an HTTP/2 stream
/// reset, say).
pub fn client_body_kind(err: &(dyn std::error::Error + 'static)) -> ErrorKind {
    if let Some(e) = find_cause::<BodyError>(err) {
        return e.kind();
    }
    find_cause::<crate::proxy::replay::Lost>(err).map_or(ErrorKind::ClientAborted, |l| l.kind())
}

/// One step of decoding.
#[derive(Debug)]
pub enum Decoded {
    Frame(Frame<Bytes>),
    /// The buffer holds no complete next piece: read more.
    NeedMore,
    /// The body is complete; what is left in the buffer is the next request.
    End,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Chunked {
    Size,
    Data(u64),
    DataCrlf,
    Trailers,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Length(u64),
    /// Everything until the peer closes ([`Framing::Close`]).
    UntilClose,
    Chunked(Chunked),
    Done,
}

/// Decodes one message body out of the read buffer.
#[derive(Debug)]
pub struct Decoder {
    state: State,
    max_trailer_bytes: usize,
}

impl Decoder {
    pub fn new(framing: Framing, max_trailer_bytes: usize) -> Decoder {
        let state = match framing {
            Framing::Length(n) if n > 0 => State::Length(n),
            Framing::Length(_) | Framing::None => State::Done,
            Framing::Chunked => State::Chunked(Chunked::Size),
            Framing::Close => State::UntilClose,
        };
        Decoder {
            state,
            max_trailer_bytes,
        }
    }

    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// The peer closing is the end of this body, not a truncation.
    pub fn ends_at_close(&self) -> bool {
        self.state == State::UntilClose
    }

    /// Bytes of body still expected, when known.
    pub fn remaining(&self) -> Option<u64> {
        match self.state {
            State::Length(n) => Some(n),
            State::Done => Some(0),
            State::Chunked(_) | State::UntilClose => None,
        }
    }

    /// Takes the next frame out of `buf`: data frames are whatever part of the
    /// body the buffer holds, so no frame waits for more bytes than it needs.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Decoded, BodyError> {
        loop {
            match self.state {
                State::Done => return Ok(Decoded::End),
                State::UntilClose => {
                    if buf.is_empty() {
                        return Ok(Decoded::NeedMore);
                    }
                    return Ok(Decoded::Frame(Frame::data(buf.split().freeze())));
                }
                State::Length(remaining) => {
                    if buf.is_empty() {
                        return Ok(Decoded::NeedMore);
                    }
                    let n = take(remaining, buf.len());
                    self.state = match remaining - n as u64 {
                        0 => State::Done,
                        left => State::Length(left),
                    };
                    return Ok(Decoded::Frame(Frame::data(buf.split_to(n).freeze())));
                }
                State::Chunked(Chunked::Size) => {
                    let Some(size) = chunk_size(buf)? else {
                        return Ok(Decoded::NeedMore);
                    };
                    self.state = State::Chunked(if size == 0 {
                        Chunked::Trailers
                    } else {
                        Chunked::Data(size)
                    });
                }
                State::Chunked(Chunked::Data(remaining)) => {
                    if buf.is_empty() {
                        return Ok(Decoded::NeedMore);
                    }
                    let n = take(remaining, buf.len());
                    self.state = State::Chunked(match remaining - n as u64 {
                        0 => Chunked::DataCrlf,
                        left => Chunked::Data(left),
                    });
                    return Ok(Decoded::Frame(Frame::data(buf.split_to(n).freeze())));
                }
                State::Chunked(Chunked::DataCrlf) => {
                    match (buf.first(), buf.get(1)) {
                        (Some(b'\r'), Some(b'\n')) => buf.advance(2),
                        (Some(b'\r'), None) | (None, _) => return Ok(Decoded::NeedMore),
                        _ => return Err(BodyError::MissingCrlf),
                    }
                    self.state = State::Chunked(Chunked::Size);
                }
                State::Chunked(Chunked::Trailers) => {
                    return match self.trailers(buf)? {
                        None => Ok(Decoded::NeedMore),
                        Some(None) => {
                            self.state = State::Done;
                            Ok(Decoded::End)
                        }
                        Some(Some(map)) => {
                            self.state = State::Done;
                            Ok(Decoded::Frame(Frame::trailers(map)))
                        }
                    };
                }
            }
        }
    }

    /// `None`: need more; `Some(None)`: no trailers; `Some(Some(map))`.
    fn trailers(&self, buf: &mut BytesMut) -> Result<Option<Option<HeaderMap>>, BodyError> {
        match (buf.first(), buf.get(1)) {
            (Some(b'\r'), Some(b'\n')) => {
                buf.advance(2);
                return Ok(Some(None));
            }
            (Some(b'\r'), None) | (None, _) => return Ok(None),
            (Some(b'\n'), _) => return Err(BodyError::MissingCrlf),
            _ => {}
        }
        let mut fields = [httparse::EMPTY_HEADER; MAX_TRAILERS];
        let (len, fields) = match httparse::parse_headers(buf, &mut fields) {
            Ok(httparse::Status::Complete(done)) => done,
            Ok(httparse::Status::Partial) if buf.len() > self.max_trailer_bytes => {
                return Err(BodyError::BadTrailers);
            }
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(_) => return Err(BodyError::BadTrailers),
        };
        if len > self.max_trailer_bytes {
            return Err(BodyError::BadTrailers);
        }
        let mut map = HeaderMap::with_capacity(fields.len());
        for f in fields {
            let name =
                HeaderName::from_bytes(f.name.as_bytes()).map_err(|_| BodyError::BadTrailers)?;
            // Framing and routing fields are not allowed in trailers (RFC 9110 §6.5.1).
            if matches!(
                name.as_str(),
                "content-length" | "transfer-encoding" | "host"
            ) {
                continue;
            }
            let value = HeaderValue::from_bytes(f.value).map_err(|_| BodyError::BadTrailers)?;
            map.append(name, value);
        }
        buf.advance(len);
        Ok(Some(Some(map)))
    }
}

fn take(remaining: u64, available: usize) -> usize {
    usize::try_from(remaining).map_or(available, |r| r.min(available))
}

/// Parses `1*HEXDIG [ BWS ; ext ] CRLF` off the front of `buf`.
fn chunk_size(buf: &mut BytesMut) -> Result<Option<u64>, BodyError> {
    let window = &buf[..buf.len().min(MAX_CHUNK_LINE)];
    let Some(lf) = window.iter().position(|&b| b == b'\n') else {
        return if buf.len() >= MAX_CHUNK_LINE {
            Err(BodyError::ChunkLineTooLong)
        } else {
            // Fail early on a bad first byte rather than waiting for a line.
            match buf.first() {
                Some(b) if !b.is_ascii_hexdigit() => Err(BodyError::BadChunkSize),
                _ => Ok(None),
            }
        };
    };
    let Some(line) = window[..lf].strip_suffix(b"\r") else {
        return Err(BodyError::MissingCrlf);
    };
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 {
        return Err(BodyError::BadChunkSize);
    }
    let mut size = 0u64;
    for &b in &line[..digits] {
        let d = match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'f' => b - b'a' + 10,
            _ => b - b'A' + 10,
        };
        size = size
            .checked_mul(16)
            .and_then(|s| s.checked_add(u64::from(d)))
            .ok_or(BodyError::ChunkSizeOverflow)?;
    }
    let rest = &line[digits..];
    let ext = rest.trim_ascii_start();
    // After the size: nothing, or (after optional whitespace) `;` extensions,
    // which we ignore but keep free of control bytes.
    if !(rest.is_empty() || ext.first() == Some(&b';'))
        || ext.iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f)
    {
        return Err(BodyError::BadChunkSize);
    }
    buf.advance(lf + 1);
    Ok(Some(size))
}

#[cfg(test)]
mod tests;
