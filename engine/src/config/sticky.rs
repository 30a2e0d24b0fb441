//! `[upstream.NAME.sticky]` as validated (`validate::sticky`): the cookie's
//! attributes and its key.

/// `[upstream.NAME.sticky]`: a cookie the proxy sets that keeps a client on
/// the backend that answered it while that backend is in rotation
/// (`upstream::sticky`, `proxy::sticky`).
#[derive(Clone, Debug)]
pub struct StickyConfig {
    /// The cookie's name (an RFC 6265 token).
    pub cookie: String,
    /// The HMAC key; `None` takes the process's random key, so replicas
    /// (and restarts) do not share stickiness.
    pub secret: Option<Secret>,
    pub same_site: SameSite,
    /// `Max-Age` in seconds; `None` is a session cookie.
    pub max_age: Option<u64>,
    pub path: String,
    pub http_only: bool,
    /// `Secure` on every listener; otherwise only on TLS listeners.
    pub secure: bool,
}

/// The cookie's `SameSite` attribute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SameSite {
    Lax,
    Strict,
    /// Only with `Secure` (validation refuses it otherwise: browsers drop
    /// such a cookie).
    None,
}

/// Key bytes that never appear in `Debug` output (configs get logged).
#[derive(Clone)]
pub struct Secret(pub Vec<u8>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}
