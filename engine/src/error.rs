//! Errors of the request path. A [`ProxyError`] knows which side caused it and
//! whether the request may be retried; [`ProxyError::status`] is the one place
//! that maps an error to the status a client sees.
//!
//! The kind is a small `Copy` enum so the hot path never boxes for an error
//! it can describe; only a foreign cause (an io or hyper error) is boxed.

use http::StatusCode;
use std::error::Error as StdError;
use std::fmt;

pub type BoxError = Box<dyn StdError + Send + Sync>;

/// Which side of the proxy an error came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Downstream,
    Upstream,
    Internal,
}

/// What went wrong, precisely enough to pick a status and a log line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// No route matched the request's host and path.
    NoRoute,
    /// The matched group has no backend that can take the request.
    NoBackend,
    /// The request target is longer than the configured limit.
    UriTooLong,
    /// The header block is larger, or has more fields, than allowed.
    HeadersTooLarge,
    /// Framing that two parsers could read differently (RFC 9112 §6).
    AmbiguousFraming,
    /// Any other malformed request.
    BadRequest,
    /// The backend refused the TCP connection or it failed to establish.
    ConnectFailed,
    /// The TCP or TLS connect did not finish in time.
    ConnectTimeout,
    /// The upstream TLS handshake failed.
    UpstreamTls,
    /// The backend's certificate is not one its group trusts (unknown
    /// issuer, wrong name, expired, not the pinned one): the handshake was
    /// refused on our side, which the operator fixes in the group's trust
    /// settings or the backend's certificate.
    UpstreamCertificate,
    /// The backend closed or reset the connection before a full response.
    UpstreamReset,
    /// The backend closed or reset the connection after part of the request
    /// body, while the proxy was waiting on the client for more: most likely
    /// the backend's own body timeout giving up on a slow client, so the
    /// backend is not blamed (a crashed backend still fails its next
    /// connects). Still a 502: the backend, not we, ended the request.
    UpstreamClosedAwaitingClient,
    /// The backend sent something that is not valid HTTP.
    UpstreamProtocol,
    /// The backend did not send response headers in time.
    UpstreamTimeout,
    /// The client went away before its request body was complete.
    ClientAborted,
    /// The client's request body broke its own framing (a bad chunk size,
    /// a missing CRLF, bad trailers).
    MalformedBody,
    /// The client did not send its request head in time.
    ClientTimeout,
    /// The client left longer than `timeouts.client_body` between two
    /// reads of its request body (nginx's `client_body_timeout`).
    ClientBodyTimeout,
    /// A `[[rate_limit]]` bucket was empty (`proxy::rate_limit`).
    RateLimited,
    /// The client's upload averaged less than `limits.min_body_rate` over
    /// the time the proxy waited on it (Kestrel's `MinRequestBodyDataRate`).
    ClientBodyTooSlow,
    /// The request body is larger than `limits.max_request_body` (or its
    /// route's): said by its length up front, or found as it streams.
    BodyTooLarge,
    /// The backend sent nothing of a response body it had started for
    /// `timeouts.upstream_body`. The client has its head already: it sees a
    /// truncated body, and the status is only for the log.
    UpstreamBodyTimeout,
    /// The route's `timeout` passed before the response head. Not counted
    /// against the backend: the time may have gone to the client's body,
    /// to connecting or to picking again, and a backend slow to answer is
    /// counted by `timeouts.upstream_response` already.
    RequestDeadline,
    /// Every backend of the group is at `max_requests_per_backend` and its
    /// queue is full (or it has none: `max_queue = 0`).
    QueueFull,
    /// The request waited `queue_timeout` in its group's queue without a
    /// backend slot freeing for it (HAProxy's `timeout queue`).
    QueueTimeout,
    /// A bug: a panic or a broken invariant while handling the request.
    Internal,
}

impl ErrorKind {
    /// The status a client sees. Exhaustive on purpose: a new kind must pick one.
    pub const fn status(self) -> StatusCode {
        match self {
            ErrorKind::NoRoute => StatusCode::NOT_FOUND,
            ErrorKind::NoBackend | ErrorKind::QueueFull | ErrorKind::QueueTimeout => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ErrorKind::UriTooLong => StatusCode::URI_TOO_LONG,
            ErrorKind::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ErrorKind::AmbiguousFraming | ErrorKind::BadRequest => StatusCode::BAD_REQUEST,
            ErrorKind::ConnectFailed
            | ErrorKind::UpstreamTls
            | ErrorKind::UpstreamCertificate
            | ErrorKind::UpstreamReset
            | ErrorKind::UpstreamClosedAwaitingClient
            | ErrorKind::UpstreamProtocol => StatusCode::BAD_GATEWAY,
            ErrorKind::ConnectTimeout
            | ErrorKind::UpstreamTimeout
            | ErrorKind::UpstreamBodyTimeout
            | ErrorKind::RequestDeadline => StatusCode::GATEWAY_TIMEOUT,
            ErrorKind::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            // Nobody reads it, but the access log records what happened (nginx's 499).
            ErrorKind::ClientAborted => StatusCode::BAD_REQUEST,
            ErrorKind::MalformedBody => StatusCode::BAD_REQUEST,
            ErrorKind::ClientTimeout
            | ErrorKind::ClientBodyTimeout
            | ErrorKind::ClientBodyTooSlow => StatusCode::REQUEST_TIMEOUT,
            ErrorKind::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Which side is to blame.
    pub const fn side(self) -> Side {
        match self {
            ErrorKind::NoRoute
            | ErrorKind::UriTooLong
            | ErrorKind::HeadersTooLarge
            | ErrorKind::AmbiguousFraming
            | ErrorKind::BadRequest
            | ErrorKind::ClientAborted
            | ErrorKind::MalformedBody
            | ErrorKind::ClientTimeout
            | ErrorKind::ClientBodyTimeout
            | ErrorKind::RateLimited
            | ErrorKind::ClientBodyTooSlow
            | ErrorKind::BodyTooLarge
            | ErrorKind::RequestDeadline
            | ErrorKind::UpstreamClosedAwaitingClient => Side::Downstream,
            ErrorKind::NoBackend
            | ErrorKind::QueueFull
            | ErrorKind::QueueTimeout
            | ErrorKind::ConnectFailed
            | ErrorKind::ConnectTimeout
            | ErrorKind::UpstreamTls
            | ErrorKind::UpstreamCertificate
            | ErrorKind::UpstreamReset
            | ErrorKind::UpstreamProtocol
            | ErrorKind::UpstreamTimeout
            | ErrorKind::UpstreamBodyTimeout => Side::Upstream,
            ErrorKind::Internal => Side::Internal,
        }
    }

    /// A short, stable reason for bodies, headers and logs.
    pub const fn reason(self) -> &'static str {
        match self {
            ErrorKind::NoRoute => "no route matches this host and path",
            ErrorKind::NoBackend => "no backend available",
            ErrorKind::UriTooLong => "request target too long",
            ErrorKind::HeadersTooLarge => "request header fields too large",
            ErrorKind::AmbiguousFraming => "ambiguous message framing",
            ErrorKind::BadRequest => "malformed request",
            ErrorKind::ConnectFailed => "backend connection failed",
            ErrorKind::ConnectTimeout => "backend connect timed out",
            ErrorKind::UpstreamTls => "backend TLS handshake failed",
            ErrorKind::UpstreamCertificate => "backend certificate not trusted",
            ErrorKind::UpstreamReset => "backend closed the connection",
            ErrorKind::UpstreamClosedAwaitingClient => {
                "backend closed the connection awaiting the request body"
            }
            ErrorKind::UpstreamProtocol => "backend sent an invalid response",
            ErrorKind::UpstreamTimeout => "backend response timed out",
            ErrorKind::ClientAborted => "client aborted",
            ErrorKind::MalformedBody => "malformed request body",
            ErrorKind::ClientTimeout => "request header timeout",
            ErrorKind::ClientBodyTimeout => "request body timeout",
            ErrorKind::RateLimited => "rate limited",
            ErrorKind::ClientBodyTooSlow => "request body too slow",
            ErrorKind::BodyTooLarge => "request body too large",
            ErrorKind::UpstreamBodyTimeout => "backend response body timed out",
            ErrorKind::RequestDeadline => "request deadline exceeded",
            ErrorKind::QueueFull => "backend queue full",
            ErrorKind::QueueTimeout => "backend queue timeout",
            ErrorKind::Internal => "internal error",
        }
    }
}

/// Whether a failed attempt may be sent again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retry {
    /// The request never reached the backend: safe for any method.
    NotSent,
    /// The request may have reached the backend: safe only if idempotent and
    /// its body can be replayed.
    MaybeSent,
    /// Never retry (a client error, or the response already started).
    Never,
}

/// An error on the request path.
#[derive(Debug)]
pub struct ProxyError {
    kind: ErrorKind,
    retry: Retry,
    source: Option<BoxError>,
}

impl ProxyError {
    pub fn new(kind: ErrorKind) -> Self {
        ProxyError {
            kind,
            retry: Retry::Never,
            source: None,
        }
    }

    pub fn with_source(kind: ErrorKind, source: impl Into<BoxError>) -> Self {
        ProxyError {
            kind,
            retry: Retry::Never,
            source: Some(source.into()),
        }
    }

    pub fn retry(mut self, retry: Retry) -> Self {
        self.retry = retry;
        self
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    pub fn side(&self) -> Side {
        self.kind.side()
    }

    pub fn retryable(&self) -> Retry {
        self.retry
    }

    pub fn status(&self) -> StatusCode {
        self.kind.status()
    }
}

impl fmt::Display for ProxyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kind.reason())?;
        if let Some(source) = &self.source {
            write!(f, ": {source}")?;
        }
        Ok(())
    }
}

impl StdError for ProxyError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn StdError + 'static))
    }
}

impl From<ErrorKind> for ProxyError {
    fn from(kind: ErrorKind) -> Self {
        ProxyError::new(kind)
    }
}

/// Walks an error's source chain looking for a cause of type `E`.
pub fn find_cause<'a, E: StdError + 'static>(err: &'a (dyn StdError + 'static)) -> Option<&'a E> {
    let mut cur: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(found) = e.downcast_ref::<E>() {
            return Some(found);
        }
        cur = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_maps_to_its_status() {
        let cases = [
            (ErrorKind::NoRoute, 404),
            (ErrorKind::NoBackend, 503),
            (ErrorKind::UriTooLong, 414),
            (ErrorKind::HeadersTooLarge, 431),
            (ErrorKind::AmbiguousFraming, 400),
            (ErrorKind::BadRequest, 400),
            (ErrorKind::ConnectFailed, 502),
            (ErrorKind::ConnectTimeout, 504),
            (ErrorKind::UpstreamTls, 502),
            (ErrorKind::UpstreamCertificate, 502),
            (ErrorKind::UpstreamReset, 502),
            (ErrorKind::UpstreamClosedAwaitingClient, 502),
            (ErrorKind::UpstreamProtocol, 502),
            (ErrorKind::UpstreamTimeout, 504),
            (ErrorKind::ClientAborted, 400),
            (ErrorKind::MalformedBody, 400),
            (ErrorKind::ClientTimeout, 408),
            (ErrorKind::ClientBodyTimeout, 408),
            (ErrorKind::RateLimited, 429),
            (ErrorKind::ClientBodyTooSlow, 408),
            (ErrorKind::BodyTooLarge, 413),
            (ErrorKind::UpstreamBodyTimeout, 504),
            (ErrorKind::RequestDeadline, 504),
            (ErrorKind::QueueFull, 503),
            (ErrorKind::QueueTimeout, 503),
            (ErrorKind::Internal, 500),
        ];
        for (kind, status) in cases {
            assert_eq!(kind.status().as_u16(), status, "{kind:?}");
        }
    }

    #[test]
    fn cause_is_found_through_the_chain() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let err = ProxyError::with_source(ErrorKind::ConnectFailed, io);
        let found = find_cause::<std::io::Error>(&err).map(|e| e.kind());
        assert_eq!(found, Some(std::io::ErrorKind::ConnectionRefused));
        assert!(err.to_string().starts_with("backend connection failed"));
    }
}
