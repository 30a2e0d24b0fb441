//! Response compression: the last stage before the body streams to the
//! client (`proxy::headers::outbound` → **compress** → `proxy::body`).
//!
//! Two halves:
//!
//! - The decision, pure functions over the request head (captured as a small
//!   `Copy` [`ClientEncoding`] before the request moves to the backend) and
//!   the response head: the client accepts one of the configured codings
//!   (`negotiate`: RFC 9110 §12.5.3 q-values, ties broken by the server's
//!   `algorithms` order), the content type is listed, a known length is at least `min_length`, the
//!   response is not already encoded, not `Cache-Control: no-transform`, and
//!   it has a body worth changing (not HEAD, 1xx, 204, 206/`Content-Range`
//!   or 304).
//! - [`CompressBody`] (`encoder`), which compresses each upstream data frame
//!   as it arrives and flushes before it would wait for the next one, so
//!   server-sent events and long polls reach the client one event at a
//!   time, while frames that are already there together share one flush.
//!   The same rules drive gzip, brotli (`br`) and zstd (`zstd`). Memory per
//!   response is the encoder's state (bounded by the configured window for
//!   brotli and zstd) plus one output buffer that is reused once the
//!   previous frame has been written; nothing accumulates, whatever the
//!   body size.
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
//! Brotli is the pure-Rust `brotli` crate and zstd the reference libzstd
//! (`zstd` crate), chosen on CPU per byte, size and memory in
//! perf/findings/2026-12-02-brotli-zstd.md.

use super::body::{RespBody, UpstreamBody};
use crate::config::Compression;
use http::StatusCode;
use http::header::{self, HeaderMap, HeaderValue};

mod br;
mod encoder;
mod gzip;
mod negotiate;
mod zstd;

pub use encoder::{CompressBody, EncodeError, Encoder};
pub use gzip::zlib_rs_level;
use negotiate::trim;
pub use negotiate::{ClientEncoding, Encoding, accepts_gzip, negotiate};

#[cfg(test)]
mod codec_tests;
#[cfg(test)]
mod tests;

/// What to do with one response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Leave it exactly as the backend sent it.
    Skip,
    /// We would compress it for another client: say so in `Vary`, so that
    /// a shared cache does not hand this identity copy to everyone, or a
    /// compressed copy to this client.
    VaryOnly,
    Compress(Encoding),
}

/// Whether to compress a response to a request that was captured as `client`.
pub fn decide(
    client: ClientEncoding,
    settings: &Compression,
    status: StatusCode,
    headers: &HeaderMap,
) -> Decision {
    if client == ClientEncoding::Off
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
        ClientEncoding::Accepts(e) => Decision::Compress(e),
        ClientEncoding::Refuses | ClientEncoding::Off => Decision::VaryOnly,
    }
}

/// The one call the request path makes: decides, rewrites the head and
/// wraps the body. With [`ClientEncoding::Off`] it is a single branch.
pub fn apply(
    client: ClientEncoding,
    settings: &Compression,
    parts: &mut http::response::Parts,
    body: UpstreamBody,
) -> RespBody {
    if client == ClientEncoding::Off {
        return RespBody::Upstream(body);
    }
    match decide(client, settings, parts.status, &parts.headers) {
        Decision::Skip => RespBody::Upstream(body),
        Decision::VaryOnly => {
            add_vary(&mut parts.headers);
            RespBody::Upstream(body)
        }
        Decision::Compress(encoding) => match Encoder::new(encoding, settings) {
            Ok(enc) => {
                rewrite_headers(&mut parts.headers, encoding);
                RespBody::Compressed(CompressBody::new(body, enc))
            }
            // libzstd could not allocate its context: send it as it is.
            Err(e) => {
                tracing::error!(error = %e, %encoding, "cannot start the encoder; sending uncompressed");
                add_vary(&mut parts.headers);
                RespBody::Upstream(body)
            }
        },
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
pub fn rewrite_headers(headers: &mut HeaderMap, encoding: Encoding) {
    headers.insert(
        header::CONTENT_ENCODING,
        HeaderValue::from_static(encoding.token()),
    );
    // The length is unknown until the end: HTTP/1.1 goes chunked.
    headers.remove(header::CONTENT_LENGTH);
    // Byte ranges of the identity body mean nothing in the encoded one.
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
