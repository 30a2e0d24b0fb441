//! Everything that can go wrong, and the one place that maps it to a status.
//!
//! Parse errors are small `Copy` enums (no allocation on the request path);
//! [`ApiError`] wraps them and the store's errors, and [`ApiError::status`]
//! is an exhaustive match, so a new variant cannot reach a client as a silent
//! 500. The body is the error's `Display` text, one line of plain text.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::Full;

use crate::store::StoreError;

/// What is wrong with the `key` query parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("missing `key` query parameter")]
    Missing,
    #[error("`key` query parameter is empty")]
    Empty,
    #[error("`key` query parameter given more than once")]
    Repeated,
    #[error("key longer than {max} bytes")]
    TooLong { max: usize },
}

/// What is wrong with the `Cache-Control` header of a store request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MaxAgeError {
    #[error("missing Cache-Control header (expected max-age=SECONDS)")]
    MissingHeader,
    #[error("Cache-Control has no max-age=SECONDS (or maxage=SECONDS) directive")]
    NoMaxAge,
    #[error("Cache-Control max-age is not a whole number of seconds")]
    Malformed,
    #[error("Cache-Control max-age exceeds {max} seconds")]
    TooLarge { max: u64 },
    #[error("Cache-Control gives conflicting max-age values")]
    Conflicting,
}

/// A request that could not be answered with success.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    MaxAge(#[from] MaxAgeError),
    #[error("entry larger than the {limit}-byte limit")]
    TooLarge { limit: u64 },
    #[error("reading the request body failed")]
    Body(#[source] hyper::Error),
    #[error("the request body did not arrive within {0:?}")]
    BodyTimeout(std::time::Duration),
    /// The in-flight upload budget is spent; retry later.
    #[error("too many uploads in flight; retry later")]
    Busy,
    #[error("no entry for this key")]
    NotFound,
    #[error("no such endpoint")]
    NoRoute,
    #[error("method not allowed (allowed: {allow})")]
    Method { allow: &'static str },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Key(_) | Self::MaxAge(_) | Self::Body(_) => StatusCode::BAD_REQUEST,
            Self::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            Self::Busy => StatusCode::SERVICE_UNAVAILABLE,
            Self::NotFound | Self::NoRoute => StatusCode::NOT_FOUND,
            Self::Method { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Self::Store(e) if e.is_unavailable() => StatusCode::SERVICE_UNAVAILABLE,
            Self::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// True for errors caused by the client (4xx), false for ours.
    pub fn is_client_error(&self) -> bool {
        self.status().is_client_error()
    }

    pub fn to_response(&self) -> Response<Full<Bytes>> {
        let mut response = Response::new(Full::new(Bytes::from(format!("{self}\n"))));
        *response.status_mut() = self.status();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        if let Self::Method { allow } = self {
            headers.insert(header::ALLOW, HeaderValue::from_static(allow));
        }
        response
    }
}

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("could not connect to the store")]
    Store(#[from] StoreError),
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pins every status code: changing one is a wire-visible decision.
    #[test]
    fn each_error_maps_to_its_status() {
        let cases: Vec<(ApiError, u16)> = vec![
            (KeyError::Missing.into(), 400),
            (KeyError::Empty.into(), 400),
            (KeyError::Repeated.into(), 400),
            (KeyError::TooLong { max: 1 }.into(), 400),
            (MaxAgeError::MissingHeader.into(), 400),
            (MaxAgeError::NoMaxAge.into(), 400),
            (MaxAgeError::Malformed.into(), 400),
            (MaxAgeError::TooLarge { max: 1 }.into(), 400),
            (MaxAgeError::Conflicting.into(), 400),
            (ApiError::TooLarge { limit: 1 }, 413),
            (
                ApiError::BodyTimeout(std::time::Duration::from_secs(1)),
                408,
            ),
            (ApiError::Busy, 503),
            (ApiError::NotFound, 404),
            (ApiError::NoRoute, 404),
            (ApiError::Method { allow: "GET" }, 405),
            (StoreError::Timeout.into(), 503),
            (StoreError::Corrupt("x").into(), 500),
        ];
        for (error, status) in cases {
            assert_eq!(error.status().as_u16(), status, "{error:?}");
            let response = error.to_response();
            assert_eq!(response.status().as_u16(), status);
            assert_eq!(
                response.headers()[header::CONTENT_TYPE],
                "text/plain; charset=utf-8"
            );
        }
    }

    #[test]
    fn method_not_allowed_says_what_is() {
        let response = ApiError::Method { allow: "POST" }.to_response();
        assert_eq!(response.headers()[header::ALLOW], "POST");
    }
}
