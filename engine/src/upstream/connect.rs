//! Opening a connection to a backend: TCP (no Nagle, bounded by the connect
//! timeout) and, for TLS groups, a verified rustls handshake.

use crate::addr::BackendAddr;
use crate::config::{UpstreamProtocol, UpstreamTls};
use crate::error::{ErrorKind, ProxyError, Retry};
use rustls::pki_types::ServerName;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
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

impl TlsConnector {
    /// Verifies certificates against the web PKI roots, plus `ca_file` if given.
    pub fn new(cfg: &UpstreamTls, protocol: UpstreamProtocol) -> io::Result<TlsConnector> {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        if let Some(path) = &cfg.ca_file {
            // The same reading `sluice check` did (`config::pem`).
            crate::config::pem::add_ca_file(&mut roots, path)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        }
        let provider = crate::config::pem::provider();
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(io::Error::other)?
            .with_root_certificates(roots)
            .with_no_client_auth();
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

/// Connects to `addr`, with TLS when `tls` is set. Errors are `NotSent`:
/// nothing reached the backend, so another backend may be tried.
pub async fn connect(
    addr: BackendAddr,
    tls: Option<&TlsConnector>,
    timeout: Duration,
) -> Result<UpstreamIo, ProxyError> {
    let fut = async {
        let tcp = TcpStream::connect(addr.0).await.map_err(|e| {
            ProxyError::with_source(ErrorKind::ConnectFailed, e).retry(Retry::NotSent)
        })?;
        tcp.set_nodelay(true)
            .map_err(|e| ProxyError::with_source(ErrorKind::ConnectFailed, e))?;
        let Some(tls) = tls else {
            return Ok(UpstreamIo::Plain(tcp));
        };
        let name = tls
            .server_name
            .clone()
            .unwrap_or_else(|| ServerName::IpAddress(addr.0.ip().into()));
        let stream = tls.inner.connect(name, tcp).await.map_err(|e| {
            ProxyError::with_source(ErrorKind::UpstreamTls, e).retry(Retry::NotSent)
        })?;
        Ok(UpstreamIo::Tls(Box::new(stream)))
    };
    match tokio::time::timeout(timeout, fut).await {
        Ok(r) => r,
        Err(_) => Err(ProxyError::new(ErrorKind::ConnectTimeout).retry(Retry::NotSent)),
    }
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
