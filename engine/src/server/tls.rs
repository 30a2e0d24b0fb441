//! TLS termination with rustls: PEM chains and keys, ALPN `h2` then
//! `http/1.1`, and the certificate chosen by SNI when several are configured.

use crate::config::CertConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::collections::HashMap;
use std::io;
use std::path::Path;
use std::sync::Arc;

/// Builds the acceptor for a listener; the first certificate is the default.
pub fn acceptor(certs: &[CertConfig]) -> io::Result<tokio_rustls::TlsAcceptor> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut resolver = SniResolver {
        by_name: HashMap::new(),
        default: None,
    };
    for c in certs {
        let key = Arc::new(load_certified_key(&provider, &c.cert, &c.key)?);
        for name in &c.server_names {
            resolver
                .by_name
                .insert(name.to_ascii_lowercase(), key.clone());
        }
        resolver.default.get_or_insert(key);
    }
    if resolver.default.is_none() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "a TLS listener needs a certificate",
        ));
    }
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(io::Error::other)?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(resolver));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

fn load_certified_key(
    provider: &CryptoProvider,
    cert: &Path,
    key: &Path,
) -> io::Result<CertifiedKey> {
    let with_path = |p: &Path, e: &dyn std::fmt::Display| {
        io::Error::new(io::ErrorKind::InvalidData, format!("{}: {e}", p.display()))
    };
    let pem = std::fs::read(cert).map_err(|e| with_path(cert, &e))?;
    let chain: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|e| with_path(cert, &e))?;
    if chain.is_empty() {
        return Err(with_path(cert, &"no certificate in PEM file"));
    }
    let pem = std::fs::read(key).map_err(|e| with_path(key, &e))?;
    let der: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut pem.as_slice())
        .map_err(|e| with_path(key, &e))?
        .ok_or_else(|| with_path(key, &"no private key in PEM file"))?;
    let signing = provider
        .key_provider
        .load_private_key(der)
        .map_err(|e| with_path(key, &e))?;
    Ok(CertifiedKey::new(chain, signing))
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
