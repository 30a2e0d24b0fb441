//! The PEM files a config names, read and checked the way the proxy will use
//! them: a listener's certificate chain and key ([`CertChain`], [`read_key`],
//! [`certified_key`]), an upstream group's extra CA ([`add_ca_file`]) or
//! pinned certificates ([`read_pins`]), and its client certificate.
//! Validation (`sluice check`, start and reload) and the TLS setup
//! (`server::tls`, `upstream::connect`) call the same functions, so a file
//! that passes `check` is one the proxy can serve with: a pair whose key
//! does not sign for its certificate would otherwise be accepted and fail
//! every handshake.
//!
//! Validity dates are not checked: like nginx and HAProxy, an expired or
//! not-yet-valid certificate is served and the client decides (a rotation
//! that runs late must not turn a warning on the client into an outage).

use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::{CertifiedKey, SigningKey};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Why a PEM file named by the config cannot be used; each names its file.
#[derive(Debug, thiserror::Error)]
pub enum PemError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A `-----BEGIN` block whose base64 or framing is broken.
    #[error("{}: malformed PEM: {source}", path.display())]
    Malformed {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Not PEM at all (DER, text), or PEM without a `CERTIFICATE` block.
    #[error("{}: no certificate: expected a PEM \"-----BEGIN CERTIFICATE-----\" block", path.display())]
    NoCertificate { path: PathBuf },
    /// A `CERTIFICATE` block that is not an X.509 certificate.
    #[error("{}: certificate {index} is not a valid X.509 certificate: {source}", path.display())]
    BadCertificate {
        path: PathBuf,
        /// 0 is the first block in the file (the leaf of a chain).
        index: usize,
        #[source]
        source: rustls::Error,
    },
    /// No private key block; encrypted keys are skipped, so they land here.
    #[error(
        "{}: no private key: expected an unencrypted PEM PKCS#8, PKCS#1 (RSA) or SEC1 (EC) key",
        path.display()
    )]
    NoKey { path: PathBuf },
    #[error("{}: unsupported private key: {source}", path.display())]
    UnsupportedKey {
        path: PathBuf,
        #[source]
        source: rustls::Error,
    },
    /// The key's public half is not the one in the leaf certificate: every
    /// handshake with this pair would fail.
    #[error(
        "{}: the private key does not match the certificate in {} (its public key differs from the leaf's)",
        key.display(),
        cert.display()
    )]
    KeyMismatch { cert: PathBuf, key: PathBuf },
    /// A CA certificate that cannot be a trust anchor.
    #[error("{}: certificate {index} cannot be used as a CA: {source}", path.display())]
    BadCa {
        path: PathBuf,
        index: usize,
        #[source]
        source: rustls::Error,
    },
}

/// Every certificate of a PEM file, in order; at least one.
#[derive(Debug)]
pub struct CertChain {
    pub path: PathBuf,
    pub certs: Vec<CertificateDer<'static>>,
}

fn read(path: &Path) -> Result<Vec<u8>, PemError> {
    std::fs::read(path).map_err(|source| PemError::Read {
        path: path.to_owned(),
        source,
    })
}

/// Reads the certificates of `path` (blocks of other types are skipped).
pub fn read_certs(path: &Path) -> Result<CertChain, PemError> {
    let pem = read(path)?;
    let certs: Vec<_> = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|source| PemError::Malformed {
            path: path.to_owned(),
            source,
        })?;
    if certs.is_empty() {
        return Err(PemError::NoCertificate {
            path: path.to_owned(),
        });
    }
    Ok(CertChain {
        path: path.to_owned(),
        certs,
    })
}

/// Reads the first private key of `path` and loads it with `provider`.
pub fn read_key(provider: &CryptoProvider, path: &Path) -> Result<Arc<dyn SigningKey>, PemError> {
    let pem = read(path)?;
    let der: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut pem.as_slice())
        .map_err(|source| PemError::Malformed {
            path: path.to_owned(),
            source,
        })?
        .ok_or_else(|| PemError::NoKey {
            path: path.to_owned(),
        })?;
    provider
        .key_provider
        .load_private_key(der)
        .map_err(|source| PemError::UnsupportedKey {
            path: path.to_owned(),
            source,
        })
}

/// A chain and its key, checked to belong together: the leaf must parse
/// and its public key must be the key's.
pub fn certified_key(
    chain: CertChain,
    key: Arc<dyn SigningKey>,
    key_path: &Path,
) -> Result<CertifiedKey, PemError> {
    let certified = CertifiedKey::new(chain.certs, key);
    match certified.keys_match() {
        Ok(()) => Ok(certified),
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            Err(PemError::KeyMismatch {
                cert: chain.path,
                key: key_path.to_owned(),
            })
        }
        // Every key type of the ring provider knows its public key, so
        // `Unknown` does not happen; were it to, the pair is not refused
        // (rustls's own `CertifiedKey::from_der` lets it through too).
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => Ok(certified),
        Err(source) => Err(PemError::BadCertificate {
            path: chain.path,
            index: 0,
            source,
        }),
    }
}

/// Reads `cert` and `key` and checks that they belong together.
pub fn load_pair(
    provider: &CryptoProvider,
    cert: &Path,
    key: &Path,
) -> Result<CertifiedKey, PemError> {
    let chain = read_certs(cert)?;
    let signing = read_key(provider, key)?;
    certified_key(chain, signing, key)
}

/// Adds every certificate of the PEM file `path` to `roots` as a trust
/// anchor; the file must hold at least one.
pub fn add_ca_file(roots: &mut RootCertStore, path: &Path) -> Result<(), PemError> {
    let chain = read_certs(path)?;
    for (index, der) in chain.certs.into_iter().enumerate() {
        roots.add(der).map_err(|source| PemError::BadCa {
            path: path.to_owned(),
            index,
            source,
        })?;
    }
    Ok(())
}

/// The certificates of a `pinned_cert` file, each checked to be an X.509
/// certificate a server could present (`upstream::verify::PinnedLeaf`
/// compares the backend's leaf with them byte for byte).
pub fn read_pins(path: &Path) -> Result<Vec<CertificateDer<'static>>, PemError> {
    let chain = read_certs(path)?;
    for (index, der) in chain.certs.iter().enumerate() {
        rustls::server::ParsedCertificate::try_from(der).map_err(|source| {
            PemError::BadCertificate {
                path: path.to_owned(),
                index,
                source,
            }
        })?;
    }
    Ok(chain.certs)
}

/// The crypto provider every TLS config of the proxy is built with.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

#[cfg(test)]
mod tests;
