//! TLS for the services, both ways: serving HTTPS with a certificate and
//! key ([`ServerTls`], used by `serve` for `--tls-cert`/`--tls-key`), and
//! calling another service over HTTPS with the certificate checked
//! ([`ClientTls`], the app's clients of the cache, the log service and the
//! proxy's admin API, for `--upstream-ca`).
//!
//! Both offer ALPN `h2` then `http/1.1` and TLS 1.2 and 1.3 (rustls with
//! the ring provider, as the proxy). Certificate files are read once, at
//! start: a renewed certificate takes a restart (the proxy reloads its own;
//! the services are restarted one replica at a time behind it).
//!
//! How a server's certificate is trusted ([`ClientTls::load`]), the proxy's
//! `pinned_cert` and `ca_file` in one file: a certificate of the file that
//! is byte for byte the server's leaf is accepted as is (a pinned
//! self-signed certificate, as `openssl req -x509` makes: the web PKI
//! refuses one that is its own CA as a server's); otherwise the leaf must
//! chain to a certificate of the file, with the name checked. Without a
//! file, the bundled Mozilla roots (`webpki-roots`) are the trust. The
//! handshake's signature is checked with the leaf's key either way: a
//! pinned certificate without its private key proves nothing.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::net::TcpStream;

/// What a TLS service offers by ALPN, in its order of preference.
pub const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// Why a certificate, key or CA file cannot be used; each names its file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{}: malformed PEM", path.display())]
    Malformed {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{}: no certificate: expected a PEM \"-----BEGIN CERTIFICATE-----\" block", path.display())]
    NoCertificate { path: PathBuf },
    #[error(
        "{}: no private key: expected an unencrypted PEM PKCS#8, PKCS#1 (RSA) or SEC1 (EC) key",
        path.display()
    )]
    NoKey { path: PathBuf },
    /// A certificate without a key, or a key without a certificate.
    #[error("{}: a TLS certificate and key go together (--tls-cert and --tls-key)", path.display())]
    Unpaired { path: PathBuf },
    /// The key cannot be loaded, or does not sign for the certificate
    /// (every handshake would fail), or rustls refuses the settings.
    #[error("{}: {source}", path.display())]
    Rejected {
        path: PathBuf,
        #[source]
        source: rustls::Error,
    },
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

/// Every certificate of a PEM file, in order; at least one.
fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(path)?;
    let certs: Vec<_> = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|source| TlsError::Malformed {
            path: path.to_owned(),
            source,
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_owned(),
        });
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read(path)?;
    rustls_pemfile::private_key(&mut pem.as_slice())
        .map_err(|source| TlsError::Malformed {
            path: path.to_owned(),
            source,
        })?
        .ok_or_else(|| TlsError::NoKey {
            path: path.to_owned(),
        })
}

/// A service's HTTPS: its certificate chain and key. Cheap to clone.
#[derive(Clone)]
pub struct ServerTls {
    acceptor: tokio_rustls::TlsAcceptor,
    cert: PathBuf,
}

impl ServerTls {
    /// Reads the chain (leaf first) and the key, and checks that they
    /// belong together, so a wrong pair fails at start, not at every
    /// handshake.
    pub fn load(cert: &Path, key: &Path) -> Result<ServerTls, TlsError> {
        let provider = provider();
        let chain = read_certs(cert)?;
        let rejected_key = |source| TlsError::Rejected {
            path: key.to_owned(),
            source,
        };
        let signing = provider
            .key_provider
            .load_private_key(read_key(key)?)
            .map_err(rejected_key)?;
        let certified = CertifiedKey::new(chain, signing);
        match certified.keys_match() {
            // `Unknown`: the provider cannot tell; rustls serves it too.
            Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
            Err(source) => return Err(rejected_key(source)),
        }
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(rustls::ALL_VERSIONS)
            .map_err(|source| TlsError::Rejected {
                path: cert.to_owned(),
                source,
            })?
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(SingleCertAndKey::from(certified)));
        config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
        Ok(ServerTls {
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
            cert: cert.to_owned(),
        })
    }

    /// A service's `--tls-cert`/`--tls-key` pair: both (HTTPS), or
    /// neither (plain HTTP). Each binary's flags `require` each other, so
    /// one without the other is a usage error before this is called.
    pub fn from_flags(
        cert: Option<&Path>,
        key: Option<&Path>,
    ) -> Result<Option<ServerTls>, TlsError> {
        match (cert, key) {
            (Some(cert), Some(key)) => ServerTls::load(cert, key).map(Some),
            (Some(path), None) | (None, Some(path)) => Err(TlsError::Unpaired {
                path: path.to_owned(),
            }),
            (None, None) => Ok(None),
        }
    }

    pub(crate) fn acceptor(&self) -> &tokio_rustls::TlsAcceptor {
        &self.acceptor
    }
}

impl fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerTls")
            .field("cert", &self.cert)
            .finish_non_exhaustive()
    }
}

/// How a service's clients trust the services they call over HTTPS (see
/// the module doc). Cheap to clone.
#[derive(Clone)]
pub struct ClientTls {
    connector: tokio_rustls::TlsConnector,
    trust: Option<PathBuf>,
}

/// The OS trust store (`/etc/ssl/certs`, or `SSL_CERT_FILE` and
/// `SSL_CERT_DIR`), as the proxy's upstream TLS reads it; the bundled
/// Mozilla roots only where the OS has none.
fn system_roots() -> RootCertStore {
    let mut roots = RootCertStore::empty();
    let found = rustls_native_certs::load_native_certs();
    for e in &found.errors {
        tracing::warn!(error = %e, "reading the system trust store");
    }
    let (added, _unparsable) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        tracing::warn!("no certificate in the system trust store: using the bundled Mozilla roots");
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    }
    roots
}

impl ClientTls {
    /// Trusts the certificates of the PEM file `trust` (pinned leaves and
    /// CAs), or the system trust store when `None` (as the proxy does).
    pub fn load(trust: Option<&Path>) -> Result<ClientTls, TlsError> {
        let provider = provider();
        let (pins, roots) = match trust {
            Some(path) => {
                let certs = read_certs(path)?;
                let mut roots = RootCertStore::empty();
                // A certificate that cannot be an anchor may still be a pin.
                let (_added, _ignored) = roots.add_parsable_certificates(certs.iter().cloned());
                (certs, roots)
            }
            None => (Vec::new(), system_roots()),
        };
        let path = trust.map_or_else(|| PathBuf::from("the system trust store"), Path::to_owned);
        let rejected = |source| TlsError::Rejected {
            path: path.clone(),
            source,
        };
        // No anchor at all (only pins): the web PKI check always fails.
        let webpki = if roots.is_empty() {
            None
        } else {
            Some(
                WebPkiServerVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider))
                    .build()
                    .map_err(|e| rejected(rustls::Error::General(e.to_string())))?,
            )
        };
        let verifier = Arc::new(PinnedOrChained {
            pins,
            webpki,
            algorithms: provider.signature_verification_algorithms,
        });
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(rustls::ALL_VERSIONS)
            .map_err(rejected)?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
        Ok(ClientTls {
            connector: tokio_rustls::TlsConnector::from(Arc::new(config)),
            trust: trust.map(Path::to_owned),
        })
    }

    /// The TLS handshake on `tcp` with `host` (a DNS name or an IP
    /// address: the SNI, and the name a chained certificate must carry).
    /// Whether the server chose h2 is in the stream's ALPN.
    pub async fn connect(
        &self,
        host: &str,
        tcp: TcpStream,
    ) -> io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
        // `url` gives IPv6 hosts in brackets.
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let name = ServerName::try_from(bare.to_owned())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        self.connector.connect(name, tcp).await
    }
}

impl fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientTls")
            .field("trust", &self.trust)
            .finish_non_exhaustive()
    }
}

/// Whether an established TLS stream speaks h2 (ALPN).
pub fn is_h2(alpn: Option<&[u8]>) -> bool {
    alpn == Some(b"h2")
}

/// A leaf that is one of `pins`, or one that chains to the roots of
/// `webpki` (name and dates checked).
#[derive(Debug)]
struct PinnedOrChained {
    pins: Vec<CertificateDer<'static>>,
    webpki: Option<Arc<WebPkiServerVerifier>>,
    algorithms: rustls::crypto::WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for PinnedOrChained {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if self.pins.iter().any(|p| p.as_ref() == end_entity.as_ref()) {
            return Ok(ServerCertVerified::assertion());
        }
        match &self.webpki {
            Some(webpki) => webpki.verify_server_cert(
                end_entity,
                intermediates,
                server_name,
                ocsp_response,
                now,
            ),
            None => Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::UnknownIssuer,
            )),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests;
