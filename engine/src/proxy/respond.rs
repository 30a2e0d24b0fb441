//! The only place that turns a [`ProxyError`] into a response: its status, a
//! short body, and an `x-sluice-error` header naming the kind for operators.

use super::body::RespBody;
use crate::error::ProxyError;
use http::{HeaderValue, Response, header};

pub const X_SLUICE_ERROR: &str = "x-sluice-error";

pub fn error(err: &ProxyError) -> Response<RespBody> {
    let kind = err.kind();
    let reason = kind.reason();
    let mut body = String::with_capacity(reason.len() + 1);
    body.push_str(reason);
    body.push('\n');
    let mut resp = Response::new(RespBody::full(body));
    *resp.status_mut() = kind.status();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(X_SLUICE_ERROR, HeaderValue::from_static(reason));
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
}
