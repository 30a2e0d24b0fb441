//! TLS settings beyond a listener's certificates: the client certificates
//! a listener asks for (`server::tls`), and how a group speaks TLS to its
//! backends (`upstream::connect`, `upstream::verify`).

use std::path::PathBuf;

/// A TLS listener's client certificates: verified against `ca_file`;
/// without one, `required` refuses the handshake, else the connection is
/// served as one without a certificate.
#[derive(Clone, Debug, PartialEq)]
pub struct ClientAuth {
    pub ca_file: PathBuf,
    pub required: bool,
}

/// A group's TLS to its backends.
#[derive(Clone, Debug)]
pub struct UpstreamTls {
    /// How the backends' certificates are trusted.
    pub verify: UpstreamVerify,
    /// SNI and certificate name; defaults to the backend's IP.
    pub server_name: Option<String>,
    /// A certificate chain and its key to present to backends that ask
    /// for one (mTLS to the backend).
    pub client_cert: Option<ClientCert>,
}

/// How a TLS group trusts its backends (`upstream::verify`).
#[derive(Clone, Debug, PartialEq)]
pub enum UpstreamVerify {
    /// The web PKI: the bundled Mozilla roots, plus `ca_file`'s.
    Roots { ca_file: Option<PathBuf> },
    /// Exactly the certificates of this PEM file (`pinned_cert`).
    Pinned(PathBuf),
    /// No certificate check (`insecure_skip_verify = true`).
    Insecure,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ClientCert {
    pub cert: PathBuf,
    pub key: PathBuf,
}
