//! TLS termination with rustls: PEM chains and keys, ALPN `h2` then
//! `http/1.1`, the certificate chosen by SNI when several are configured,
//! and client certificates when the listener asks for them (what a
//! verified one says goes to backends: `server::client_cert`).

use crate::config::pem::{self, PemError};
use crate::config::{CertConfig, ClientAuth};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
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
    #[error("client certificate verifier: {0}")]
    ClientVerifier(#[source] rustls::server::VerifierBuilderError),
}

/// For callers that speak `io::Error` (`Server::start`): `InvalidData`,
/// with the [`TlsError`] as its inner error.
impl From<TlsError> for io::Error {
    fn from(e: TlsError) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, e)
    }
}

/// Builds the acceptor for a listener; the first certificate is the default.
/// Every key must match its certificate ([`pem::load_pair`]). With
/// `client_auth`, clients are asked for a certificate, verified against
/// its CA file; a bad one is always refused at the handshake, a missing
/// one only when it is required.
pub fn acceptor(
    certs: &[CertConfig],
    client_auth: Option<&ClientAuth>,
) -> Result<tokio_rustls::TlsAcceptor, TlsError> {
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
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Settings)?;
    let builder = match client_auth {
        None => builder.with_no_client_auth(),
        Some(c) => {
            let mut roots = rustls::RootCertStore::empty();
            pem::add_ca_file(&mut roots, &c.ca_file)?;
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = if c.required {
                verifier
            } else {
                verifier.allow_unauthenticated()
            };
            builder.with_client_cert_verifier(verifier.build().map_err(TlsError::ClientVerifier)?)
        }
    };
    let mut config = builder.with_cert_resolver(Arc::new(resolver));
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
