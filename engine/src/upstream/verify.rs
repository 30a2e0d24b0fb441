//! How a TLS group trusts its backends' certificates, beside rustls's own
//! web PKI verifier (the default, with the bundled roots and a group's
//! `ca_file`): a pinned leaf, for the self-signed certificates that
//! `openssl req -x509` makes (webpki refuses a certificate that is its own
//! CA as a server's: `CaUsedAsEndEntity`), and, when a group says so
//! explicitly, no check at all. Both still verify the handshake's
//! signatures with the certificate's key: a pinned certificate without its
//! private key proves nothing.

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, Error, SignatureScheme};

/// Which server certificates a [`LeafVerifier`] accepts.
#[derive(Debug)]
pub enum Accept {
    /// Exactly these (`pinned_cert`): the backend's leaf must be one of
    /// them, byte for byte. Name and dates are not checked (the pin is the
    /// trust; a rotation pins old and new together, the file may hold
    /// several).
    Pinned(Vec<CertificateDer<'static>>),
    /// Any (`insecure_skip_verify`): the connection is encrypted but the
    /// backend is not authenticated. Logged as a warning whenever a group
    /// with it is built (start and every reload).
    Any,
}

/// A verifier that decides on the leaf alone, as [`Accept`] says.
#[derive(Debug)]
pub struct LeafVerifier {
    accept: Accept,
    algorithms: WebPkiSupportedAlgorithms,
}

impl LeafVerifier {
    pub fn new(accept: Accept, algorithms: WebPkiSupportedAlgorithms) -> LeafVerifier {
        LeafVerifier { accept, algorithms }
    }
}

impl ServerCertVerifier for LeafVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        match &self.accept {
            Accept::Any => Ok(ServerCertVerified::assertion()),
            Accept::Pinned(pins) if pins.iter().any(|p| p.as_ref() == end_entity.as_ref()) => {
                Ok(ServerCertVerified::assertion())
            }
            Accept::Pinned(_) => Err(Error::InvalidCertificate(CertificateError::Other(
                rustls::OtherError(std::sync::Arc::new(NotPinned)),
            ))),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// The backend's certificate is not one the group pinned.
#[derive(Debug)]
struct NotPinned;

impl std::fmt::Display for NotPinned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the certificate is not the pinned one")
    }
}

impl std::error::Error for NotPinned {}
