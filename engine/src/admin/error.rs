//! Why the admin API refused a request: one [`AdminError`] variant per
//! reason, and [`AdminError::status`], the one map from a reason to the
//! status the caller sees (the body is `{"error": "<reason>"}`).

use crate::addr::BadBackend;
use crate::lifecycle::ReloadError;
use http::{Method, StatusCode};
use std::net::IpAddr;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// A malformed request: bad JSON, a bad parameter, a bad address.
    #[error("{0}")]
    BadRequest(String),
    /// An address no backend can have, or this proxy's own listener.
    #[error("address {0}")]
    BadBackend(#[from] BadBackend),
    #[error("{0}")]
    NotFound(String),
    #[error("{method} is not allowed on {path}{hint}")]
    MethodNotAllowed {
        method: Method,
        path: String,
        /// Why, when the method is refused on purpose (a GET that would
        /// change state).
        hint: &'static str,
    },
    /// No `Host`: HTTP/1.1 requires one (RFC 9112 §3.2), and the Host
    /// check cannot be made without it.
    #[error("missing Host header")]
    MissingHost,
    /// DNS rebinding: a page on `evil.example` whose name now resolves to
    /// us sends `Host: evil.example`. RFC 9110 §15.5.20: this server will
    /// not answer for that authority.
    #[error(
        "Host {0:?} is not this admin API (it answers to its own address, localhost, loopback IPs and admin.allowed_hosts)"
    )]
    MisdirectedHost(String),
    /// A browser page on another origin (CSRF).
    #[error("cross-origin request refused: Origin {0:?} is not in admin.allowed_origins")]
    CrossOrigin(String),
    /// A browser request from another site that carried no `Origin` (a
    /// no-cors GET such as an `<img>`), as `Sec-Fetch-Site` tells.
    #[error("cross-site request refused (Sec-Fetch-Site: {0})")]
    CrossSite(String),
    /// A change from a peer outside `admin.allowed_sources`.
    #[error("{0} may not change this proxy (not in admin.allowed_sources)")]
    Source(IpAddr),
    #[error("missing or wrong bearer token")]
    Unauthorized,
    /// A change whose body is not JSON: a form or `text/plain` POST is
    /// what a cross-site page can send without a preflight.
    #[error("Content-Type must be application/json{}", got.as_ref().map(|g| format!(", not {g:?}")).unwrap_or_default())]
    NotJson { got: Option<String> },
    #[error("request body larger than {0} bytes")]
    BodyTooLarge(usize),
    #[error("the request body did not arrive within {0:?}")]
    BodyTimeout(Duration),
    #[error("cannot read the request body: {0}")]
    BodyRead(#[source] crate::error::BoxError),
    /// A rejected reload is the request's fault (the file it asked to
    /// load). Boxed: it is large, and a reload is the cold edge.
    #[error(transparent)]
    Reload(Box<ReloadError>),
    /// A backend added to a group at its size cap: the request conflicts
    /// with the proxy's state.
    #[error(transparent)]
    GroupFull(#[from] crate::upstream::GroupFull),
}

impl From<ReloadError> for AdminError {
    fn from(e: ReloadError) -> AdminError {
        AdminError::Reload(Box::new(e))
    }
}

impl AdminError {
    pub fn bad(msg: impl Into<String>) -> Self {
        AdminError::BadRequest(msg.into())
    }

    pub fn not_found(msg: impl Into<String>) -> Self {
        AdminError::NotFound(msg.into())
    }

    /// The status the caller sees.
    pub fn status(&self) -> StatusCode {
        match self {
            AdminError::BadRequest(_)
            | AdminError::BadBackend(_)
            | AdminError::MissingHost
            | AdminError::BodyRead(_) => StatusCode::BAD_REQUEST,
            AdminError::NotFound(_) => StatusCode::NOT_FOUND,
            AdminError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            AdminError::MisdirectedHost(_) => StatusCode::MISDIRECTED_REQUEST,
            AdminError::CrossOrigin(_) | AdminError::CrossSite(_) | AdminError::Source(_) => {
                StatusCode::FORBIDDEN
            }
            AdminError::Unauthorized => StatusCode::UNAUTHORIZED,
            AdminError::NotJson { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            AdminError::BodyTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            AdminError::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            AdminError::Reload(_) => StatusCode::UNPROCESSABLE_ENTITY,
            AdminError::GroupFull(_) => StatusCode::CONFLICT,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every reason and its status, pinned.
    #[test]
    fn each_reason_has_its_status() {
        let cases: Vec<(AdminError, u16)> = vec![
            (AdminError::bad("x"), 400),
            (
                AdminError::BadBackend(BadBackend::PortZero(([127, 0, 0, 1], 0).into())),
                400,
            ),
            (AdminError::MissingHost, 400),
            (AdminError::BodyRead("x".into()), 400),
            (AdminError::not_found("x"), 404),
            (
                AdminError::MethodNotAllowed {
                    method: Method::PUT,
                    path: "/".into(),
                    hint: "",
                },
                405,
            ),
            (AdminError::MisdirectedHost("evil".into()), 421),
            (AdminError::CrossOrigin("https://evil".into()), 403),
            (AdminError::CrossSite("cross-site".into()), 403),
            (AdminError::Source([10, 0, 0, 1].into()), 403),
            (AdminError::Unauthorized, 401),
            (AdminError::NotJson { got: None }, 415),
            (AdminError::BodyTooLarge(1), 413),
            (AdminError::BodyTimeout(Duration::from_secs(1)), 408),
            (ReloadError::NoConfigFile.into(), 422),
            (
                crate::upstream::GroupFull {
                    group: "g".into(),
                    max: 1,
                }
                .into(),
                409,
            ),
        ];
        for (e, status) in cases {
            assert_eq!(e.status().as_u16(), status, "{e}");
        }
    }
}
