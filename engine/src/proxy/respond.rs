//! The only place that turns a [`ProxyError`] into a response: its status, a
//! short body, and an `x-sluice-error` header naming the kind for operators.

use super::body::RespBody;
use crate::error::ProxyError;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Response, StatusCode, header};

pub const X_SLUICE_ERROR: &str = "x-sluice-error";

/// The response for `err`, as the proxy's service returns it.
pub fn error(err: &ProxyError) -> Response<RespBody> {
    let (status, headers, body) = error_parts(err);
    let mut resp = Response::new(RespBody::full(body));
    *resp.status_mut() = status;
    *resp.headers_mut() = headers;
    resp
}

/// The status, fields and body for `err`; `server::h1` writes these itself
/// for a request head it refuses (there is no request to hand the proxy).
pub fn error_parts(err: &ProxyError) -> (StatusCode, HeaderMap, Bytes) {
    let kind = err.kind();
    let reason = kind.reason();
    let mut body = Vec::with_capacity(reason.len() + 1);
    body.extend_from_slice(reason.as_bytes());
    body.push(b'\n');
    let mut h = HeaderMap::with_capacity(3);
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(X_SLUICE_ERROR, HeaderValue::from_static(reason));
    (kind.status(), h, Bytes::from(body))
}

/// A 429 from `proxy::rate_limit`: `Retry-After` is the wait until its
/// bucket has a token, in whole seconds rounded up.
pub fn rate_limited(wait: std::time::Duration) -> Response<RespBody> {
    let mut resp = error(&ProxyError::new(crate::error::ErrorKind::RateLimited));
    let secs = super::rate_limit::bucket::retry_after_secs(wait);
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use http_body::Body;

    #[test]
    fn error_responses_carry_status_reason_and_body() {
        let r = error(&ProxyError::new(ErrorKind::NoBackend));
        assert_eq!(r.status(), 503);
        assert_eq!(r.headers()[X_SLUICE_ERROR], "no backend available");
        assert_eq!(
            r.body().size_hint().exact(),
            Some("no backend available\n".len() as u64)
        );
    }

    /// Every HTTP/1 head refusal, as `server::h1` writes it: the status and
    /// the `x-sluice-error` reason of its kind (the exact cause is logged).
    #[test]
    fn each_refused_head_gets_its_kinds_status_and_reason() {
        use crate::http1::ParseError;
        let cases = [
            (
                ParseError::HeadTooLarge,
                431,
                "request header fields too large",
            ),
            (
                ParseError::TooManyHeaders,
                431,
                "request header fields too large",
            ),
            (ParseError::UriTooLong, 414, "request target too long"),
            (ParseError::Malformed, 400, "malformed request"),
            (ParseError::BadVersion, 400, "malformed request"),
            (ParseError::BadUri, 400, "malformed request"),
            (ParseError::MissingHost, 400, "malformed request"),
            (ParseError::MultipleHosts, 400, "malformed request"),
            (
                ParseError::LengthAndChunked,
                400,
                "ambiguous message framing",
            ),
            (
                ParseError::BadContentLength,
                400,
                "ambiguous message framing",
            ),
            (
                ParseError::BadTransferEncoding,
                400,
                "ambiguous message framing",
            ),
            (
                ParseError::TransferEncodingOnHttp10,
                400,
                "ambiguous message framing",
            ),
        ];
        for (e, status, reason) in cases {
            let (s, h, body) = error_parts(&ProxyError::from(e));
            assert_eq!(s.as_u16(), status, "{e:?}");
            assert_eq!(h[X_SLUICE_ERROR], reason, "{e:?}");
            assert_eq!(&body[..], format!("{reason}\n").as_bytes(), "{e:?}");
        }
        let (s, h, _) = error_parts(&ProxyError::new(ErrorKind::ClientTimeout));
        assert_eq!(s.as_u16(), 408);
        assert_eq!(h[X_SLUICE_ERROR], "request header timeout");
    }
}
