//! Opening a connection to a backend: TCP (no Nagle, bounded by the connect
//! timeout), the group's PROXY header if it sends one (`upstream::proxy_header`,
//! before any TLS byte), and, for TLS groups, a rustls handshake that trusts
//! the backend as the group says (`upstream::verify`).

use super::proxy_header::Header;
use super::verify::{Accept, LeafVerifier};
use crate::addr::BackendAddr;
use crate::config::{UpstreamProtocol, UpstreamTls, UpstreamVerify};
use crate::error::{ErrorKind, ProxyError, Retry};
use rustls::pki_types::ServerName;
use rustls::sign::SingleCertAndKey;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

/// The byte stream to a backend.
#[derive(Debug)]
pub enum UpstreamIo {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

/// Upstream TLS settings, built once per group.
#[derive(Clone)]
pub struct TlsConnector {
    inner: tokio_rustls::TlsConnector,
    server_name: Option<ServerName<'static>>,
}

impl std::fmt::Debug for TlsConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsConnector")
            .field("server_name", &self.server_name)
            .finish()
    }
}

/// The OS trust store (`/etc/ssl/certs`, or `SSL_CERT_FILE` and
/// `SSL_CERT_DIR`), read on every start and reload so that an updated store
/// is picked up by a reload; the bundled Mozilla set (webpki-roots) only
/// where the OS has none (a slim image without ca-certificates).
fn system_roots() -> rustls::RootCertStore {
    let mut roots = rustls::RootCertStore::empty();
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

impl TlsConnector {
    /// The group's client config: trust as `cfg.verify` says (see
    /// `upstream::verify`), its client certificate if any, and the ALPN of
    /// its protocol.
    pub fn new(cfg: &UpstreamTls, protocol: UpstreamProtocol) -> io::Result<TlsConnector> {
        let invalid = |e| io::Error::new(io::ErrorKind::InvalidData, e);
        let provider = crate::config::pem::provider();
        let algorithms = provider.signature_verification_algorithms;
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(io::Error::other)?;
        let builder = match &cfg.verify {
            UpstreamVerify::Roots { ca_file } => {
                let mut roots = system_roots();
                if let Some(path) = ca_file {
                    // The same reading `sluice check` did (`config::pem`).
                    crate::config::pem::add_ca_file(&mut roots, path).map_err(invalid)?;
                }
                builder.with_root_certificates(roots)
            }
            UpstreamVerify::Pinned(path) => {
                let pins = crate::config::pem::read_pins(path).map_err(invalid)?;
                let verifier = LeafVerifier::new(Accept::Pinned(pins), algorithms);
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(verifier))
            }
            UpstreamVerify::Insecure => {
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(LeafVerifier::new(
                        Accept::Any,
                        algorithms,
                    )))
            }
        };
        let mut config = match &cfg.client_cert {
            None => builder.with_no_client_auth(),
            Some(c) => {
                let key =
                    crate::config::pem::load_pair(&provider, &c.cert, &c.key).map_err(invalid)?;
                builder.with_client_cert_resolver(Arc::new(SingleCertAndKey::from(key)))
            }
        };
        config.alpn_protocols = match protocol {
            UpstreamProtocol::H2 => vec![b"h2".to_vec()],
            UpstreamProtocol::Http1 | UpstreamProtocol::H2c => vec![b"http/1.1".to_vec()],
        };
        let server_name = match &cfg.server_name {
            Some(n) => Some(
                ServerName::try_from(n.clone())
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?,
            ),
            None => None,
        };
        Ok(TlsConnector {
            inner: tokio_rustls::TlsConnector::from(Arc::new(config)),
            server_name,
        })
    }
}

/// Connects to `addr`, sends `proxy` (a PROXY protocol header) first when
/// given, then TLS when `tls` is set. Errors are `NotSent`: no request
/// reached the backend, so another backend may be tried.
pub async fn connect(
    addr: BackendAddr,
    tls: Option<&TlsConnector>,
    timeout: Duration,
    proxy: Option<&Header>,
) -> Result<UpstreamIo, ProxyError> {
    let fut = async {
        let failed = |e| ProxyError::with_source(ErrorKind::ConnectFailed, e).retry(Retry::NotSent);
        let mut tcp = TcpStream::connect(addr.0).await.map_err(failed)?;
        tcp.set_nodelay(true)
            .map_err(|e| ProxyError::with_source(ErrorKind::ConnectFailed, e))?;
        if let Some(h) = proxy {
            tcp.write_all(h.as_bytes()).await.map_err(failed)?;
        }
        let Some(tls) = tls else {
            return Ok(UpstreamIo::Plain(tcp));
        };
        let name = tls
            .server_name
            .clone()
            .unwrap_or_else(|| ServerName::IpAddress(addr.0.ip().into()));
        let stream =
            tls.inner.connect(name, tcp).await.map_err(|e| {
                ProxyError::with_source(handshake_failure(&e), e).retry(Retry::NotSent)
            })?;
        Ok(UpstreamIo::Tls(Box::new(stream)))
    };
    match tokio::time::timeout(timeout, fut).await {
        Ok(r) => r,
        Err(_) => Err(ProxyError::new(ErrorKind::ConnectTimeout).retry(Retry::NotSent)),
    }
}

/// Which side of a failed handshake said no: our check of the backend's
/// certificate, or anything else (the backend's alert, refusing our client
/// certificate among them; no common version or ALPN; a reset).
fn handshake_failure(e: &io::Error) -> ErrorKind {
    match e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        Some(rustls::Error::InvalidCertificate(_)) => ErrorKind::UpstreamCertificate,
        _ => ErrorKind::UpstreamTls,
    }
}

/// Whether `e` carries a TLS alert from the backend. A TLS 1.3 server
/// refuses a client certificate (missing, unknown CA) after our side of the
/// handshake is done, so its refusal arrives with the first read: it is a
/// failed handshake all the same (`ErrorKind::UpstreamTls`), not a reset.
pub fn is_tls_alert(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(e) = cur {
        let tls = e.downcast_ref::<rustls::Error>().or_else(|| {
            e.downcast_ref::<io::Error>()
                .and_then(|io| io.get_ref())
                .and_then(|i| i.downcast_ref::<rustls::Error>())
        });
        if let Some(rustls::Error::AlertReceived(_)) = tls {
            return true;
        }
        cur = e.source();
    }
    false
}

impl UpstreamIo {
    /// Whether TLS negotiated HTTP/2 by ALPN.
    pub fn alpn_h2(&self) -> bool {
        match self {
            UpstreamIo::Plain(_) => false,
            UpstreamIo::Tls(s) => s.get_ref().1.alpn_protocol() == Some(b"h2"),
        }
    }
}

impl AsyncRead for UpstreamIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamIo::Plain(s) => Pin::new(s).poll_read(cx, buf),
            UpstreamIo::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for UpstreamIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            UpstreamIo::Plain(s) => Pin::new(s).poll_write(cx, buf),
            UpstreamIo::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            UpstreamIo::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            UpstreamIo::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            UpstreamIo::Plain(s) => s.is_write_vectored(),
            UpstreamIo::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamIo::Plain(s) => Pin::new(s).poll_flush(cx),
            UpstreamIo::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamIo::Plain(s) => Pin::new(s).poll_shutdown(cx),
            UpstreamIo::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
