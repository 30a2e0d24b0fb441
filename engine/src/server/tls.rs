//! TLS termination with rustls: PEM chains and keys, ALPN `h2` then
//! `http/1.1`, and the certificate chosen by SNI when several are configured.

use crate::config::CertConfig;
use crate::config::pem::{self, PemError};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::collections::HashMap;
use std::io;
use std::sync::Arc;

/// Why a listener's TLS cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A certificate or key file (checked as `sluice check` checks it).
    #[error(transparent)]
    Pem(#[from] PemError),
    #[error("a TLS listener needs a certificate")]
    NoCertificate,
    #[error("TLS settings: {0}")]
    Settings(#[source] rustls::Error),
}

/// For callers that speak `io::Error` (`Server::start`): `InvalidData`,
/// with the [`TlsError`] as its inner error.
impl From<TlsError> for io::Error {
    fn from(e: TlsError) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, e)
    }
}

/// Builds the acceptor for a listener; the first certificate is the default.
/// Every key must match its certificate ([`pem::load_pair`]).
pub fn acceptor(certs: &[CertConfig]) -> Result<tokio_rustls::TlsAcceptor, TlsError> {
    let provider = pem::provider();
    let mut resolver = SniResolver {
        by_name: HashMap::new(),
        default: None,
    };
    for c in certs {
        let key = Arc::new(pem::load_pair(&provider, &c.cert, &c.key)?);
        for name in &c.server_names {
            resolver
                .by_name
                .insert(name.to_ascii_lowercase(), key.clone());
        }
        resolver.default.get_or_insert(key);
    }
    if resolver.default.is_none() {
        return Err(TlsError::NoCertificate);
    }
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Settings)?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(resolver));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

#[derive(Debug)]
struct SniResolver {
    by_name: HashMap<String, Arc<CertifiedKey>>,
    default: Option<Arc<CertifiedKey>>,
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        if let Some(name) = hello.server_name() {
            let name = name.to_ascii_lowercase();
            if let Some(k) = self.by_name.get(&name) {
                return Some(k.clone());
            }
            // `*.example.com` entries match one label.
            if let Some((_, parent)) = name.split_once('.')
                && let Some(k) = self.by_name.get(&format!("*.{parent}"))
            {
                return Some(k.clone());
            }
        }
        self.default.clone()
    }
}
