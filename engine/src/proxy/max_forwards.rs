//! Max-Forwards (RFC 9110 §7.6.2), a stage before routing: "Each
//! intermediary that receives a TRACE or OPTIONS request containing a
//! Max-Forwards header field MUST check and update its value prior to
//! forwarding the request. If the received value is zero (0), the
//! intermediary MUST NOT forward the request; instead, the intermediary
//! MUST respond as the final recipient." Other methods ignore it (a MAY).
//!
//! As the final recipient, Sluice answers OPTIONS with an empty 200, and
//! TRACE with a 200 whose `message/http` body is the request line alone:
//! the final recipient "SHOULD exclude any request fields that are likely
//! to contain sensitive data" (§9.3.8), and excluding all of them leaks
//! none (cross-site tracing).

use super::body::RespBody;
use http::{HeaderValue, Method, Request, Response, header};

/// A value above this is forwarded as this (the "recipient's maximum
/// supported value").
const MAX: u64 = 255;

/// The response when the request stops here; otherwise the request's
/// Max-Forwards is decremented (an unparsable one is left alone).
pub fn apply<B>(req: &mut Request<B>) -> Option<Response<RespBody>> {
    if req.method() != Method::OPTIONS && req.method() != Method::TRACE {
        return None;
    }
    let value = req.headers().get(header::MAX_FORWARDS)?;
    // `1*DIGIT` (§7.6.2): not `+0` or a list, which `u64::from_str` would
    // take or refuse; all digits fail to parse only past u64, which is "more
    // than MAX" all the same.
    let text = value.to_str().ok()?.trim();
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = text.parse().unwrap_or(u64::MAX);
    if n > 0 {
        req.headers_mut()
            .insert(header::MAX_FORWARDS, HeaderValue::from((n - 1).min(MAX)));
        return None;
    }
    let mut resp = if req.method() == Method::TRACE {
        let line = format!("TRACE {} {:?}\r\n\r\n", req.uri(), req.version());
        let mut r = Response::new(RespBody::full(line));
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("message/http"),
        );
        r
    } else {
        Response::new(RespBody::full(bytes::Bytes::new()))
    };
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Some(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: Method, mf: Option<&str>) -> Request<()> {
        let mut r = Request::builder().method(method).uri("/p");
        if let Some(v) = mf {
            r = r.header(header::MAX_FORWARDS, v);
        }
        r.body(()).unwrap()
    }

    #[test]
    fn zero_stops_options_and_trace_here() {
        let r = apply(&mut req(Method::OPTIONS, Some("0"))).expect("answered");
        assert_eq!(r.status(), 200);
        let r = apply(&mut req(Method::TRACE, Some("0"))).expect("answered");
        assert_eq!(r.headers()[header::CONTENT_TYPE], "message/http");
    }

    #[test]
    fn above_zero_is_decremented_and_capped_other_methods_untouched() {
        let mut r = req(Method::OPTIONS, Some("5"));
        assert!(apply(&mut r).is_none());
        assert_eq!(r.headers()[header::MAX_FORWARDS], "4");
        let mut r = req(Method::TRACE, Some("99999"));
        assert!(apply(&mut r).is_none());
        assert_eq!(r.headers()[header::MAX_FORWARDS], "255");
        let mut r = req(Method::GET, Some("0"));
        assert!(apply(&mut r).is_none());
        assert_eq!(r.headers()[header::MAX_FORWARDS], "0");
        let mut r = req(Method::OPTIONS, Some("99999999999999999999999"));
        assert!(apply(&mut r).is_none());
        assert_eq!(r.headers()[header::MAX_FORWARDS], "255");
        for bad in ["x", "+0", "5, 3", ""] {
            let mut r = req(Method::OPTIONS, Some(bad));
            assert!(apply(&mut r).is_none(), "{bad:?}");
            assert_eq!(r.headers()[header::MAX_FORWARDS], bad, "left alone");
        }
        assert!(apply(&mut req(Method::OPTIONS, None)).is_none());
    }
}
