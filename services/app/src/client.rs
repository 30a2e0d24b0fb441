//! A small HTTP client for the services around the app (cache, log, proxy
//! admin): one base URL, a few idle keep-alive connections, and a timeout
//! on every call so a slow or dead service never holds a request.
//!
//! `http://` is HTTP/1.1. `https://` is TLS with the service's certificate
//! checked ([`ClientTls`]: `--upstream-ca`, or the bundled roots), then h2
//! when the service agrees by ALPN (one connection carries every request,
//! multiplexed), else HTTP/1.1. A certificate that does not verify fails
//! the call with [`ClientError::Tls`]; nothing is sent.
//!
//! The workspace's hyper-util is built without its legacy client; this is
//! the few dozen lines the app needs on top of `hyper::client::conn`.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use parking_lot::Mutex;
use sluice_service_common::ClientTls;
use tokio::net::TcpStream;

/// Idle connections kept per service.
const MAX_IDLE: usize = 16;

/// A response with its whole body (service answers are small).
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("connecting to {authority}")]
    Connect {
        authority: String,
        #[source]
        source: std::io::Error,
    },
    /// The handshake failed: most often a certificate that does not
    /// verify (the source says why).
    #[error("TLS handshake with {authority}")]
    Tls {
        authority: String,
        #[source]
        source: std::io::Error,
    },
    #[error("HTTP exchange with {authority}")]
    Http {
        authority: String,
        #[source]
        source: hyper::Error,
    },
    #[error("invalid request to {authority}")]
    Request {
        authority: String,
        #[source]
        source: http::Error,
    },
    #[error("{authority} did not answer within {timeout:?}")]
    Timeout {
        authority: String,
        timeout: Duration,
    },
}

/// One connection's request sender.
enum Sender {
    H1(http1::SendRequest<Full<Bytes>>),
    /// Shared: clones send on the same connection.
    H2(http2::SendRequest<Full<Bytes>>),
}

impl Sender {
    fn is_closed(&self) -> bool {
        match self {
            Sender::H1(s) => s.is_closed(),
            Sender::H2(s) => s.is_closed(),
        }
    }
}

pub struct Client {
    /// `host:port` of the service.
    authority: String,
    /// The host alone: the TLS server name.
    host: String,
    /// `Some` for an `https://` service.
    tls: Option<ClientTls>,
    timeout: Duration,
    /// Ready-to-use senders: HTTP/1 connections, each taken by one request
    /// at a time, and h2 connections, which stay here while in use (a
    /// request takes a clone). A `parking_lot::Mutex`: only pushed, popped
    /// and cloned from, never held across an `.await`.
    idle: Mutex<Vec<Sender>>,
}

impl Client {
    /// A client for `base` (its scheme, host and port; the path is
    /// ignored). `tls` is the trust of an `https://` base; without one, the
    /// bundled roots.
    pub fn new(base: &url::Url, timeout: Duration, tls: Option<&ClientTls>) -> Client {
        let host = base.host_str().unwrap_or("127.0.0.1");
        let port = base.port_or_known_default().unwrap_or(80);
        let tls = (base.scheme() == "https").then(|| match tls {
            Some(tls) => Ok(tls.clone()),
            None => ClientTls::load(None),
        });
        let tls = match tls {
            Some(Ok(tls)) => Some(tls),
            // Only a file can be refused, and there is none here.
            Some(Err(error)) => {
                tracing::error!(%error, "bundled roots refused; calls will fail");
                None
            }
            None => None,
        };
        Client {
            authority: format!("{host}:{port}"),
            host: host.to_owned(),
            tls,
            timeout,
            idle: Mutex::new(Vec::new()),
        }
    }

    pub fn authority(&self) -> &str {
        &self.authority
    }

    /// One request with the default timeout.
    pub async fn send(
        &self,
        method: Method,
        path_and_query: &str,
        headers: &[(HeaderName, HeaderValue)],
        body: Bytes,
    ) -> Result<Reply, ClientError> {
        self.send_within(self.timeout, method, path_and_query, headers, body)
            .await
    }

    /// One request that must complete within `timeout`. A request on a
    /// reused connection that the service had closed is sent once more on a
    /// fresh one (every caller's request is idempotent or tolerates a
    /// duplicate: cache reads and deletes, admin calls, log batches).
    pub async fn send_within(
        &self,
        timeout: Duration,
        method: Method,
        path_and_query: &str,
        headers: &[(HeaderName, HeaderValue)],
        body: Bytes,
    ) -> Result<Reply, ClientError> {
        let exchange = async {
            let (sender, reused) = match self.checkout().await {
                Some(sender) => (sender, true),
                None => (self.connect().await?, false),
            };
            let req = |sender: &Sender| {
                let h2 = matches!(sender, Sender::H2(_));
                self.build(h2, method.clone(), path_and_query, headers, body.clone())
            };
            let request = req(&sender)?;
            match self.exchange(sender, reused, request).await {
                Err(ClientError::Http { .. }) if reused => {
                    let fresh = self.connect().await?;
                    let request = req(&fresh)?;
                    self.exchange(fresh, false, request).await
                }
                other => other,
            }
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| ClientError::Timeout {
                authority: self.authority.clone(),
                timeout,
            })?
    }

    fn build(
        &self,
        h2: bool,
        method: Method,
        path_and_query: &str,
        headers: &[(HeaderName, HeaderValue)],
        body: Bytes,
    ) -> Result<Request<Full<Bytes>>, ClientError> {
        let builder = Request::builder().method(method);
        // h2 takes `:scheme` and `:authority` from an absolute URI; HTTP/1.1
        // sends the path and a Host header.
        let mut builder = if h2 {
            builder.uri(format!("https://{}{path_and_query}", self.authority))
        } else {
            builder
                .uri(path_and_query)
                .header(http::header::HOST, self.authority.as_str())
        };
        for (name, value) in headers {
            builder = builder.header(name, value);
        }
        // The request being served, if any, continues its trace here.
        if let Some(tp) = sluice_service_common::trace::outgoing() {
            builder = builder.header(sluice_tracecontext::TRACEPARENT, tp);
        }
        builder
            .body(Full::new(body))
            .map_err(|source| ClientError::Request {
                authority: self.authority.clone(),
                source,
            })
    }

    /// Sends `req` on `sender`; `reused`: the sender came from the pool.
    async fn exchange(
        &self,
        mut sender: Sender,
        reused: bool,
        req: Request<Full<Bytes>>,
    ) -> Result<Reply, ClientError> {
        let http = |source| ClientError::Http {
            authority: self.authority.clone(),
            source,
        };
        let response = match &mut sender {
            Sender::H1(s) => s.send_request(req).await,
            Sender::H2(s) => s.send_request(req).await,
        }
        .map_err(http)?;
        let (parts, body) = response.into_parts();
        let body = body.collect().await.map_err(http)?.to_bytes();
        // A pooled h2 sender never left the pool.
        if !(reused && matches!(sender, Sender::H2(_))) {
            self.checkin(sender);
        }
        Ok(Reply {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }

    /// An idle connection that is still open and ready, if any: an open
    /// h2 one is shared (a clone, left in the pool), an HTTP/1 one taken.
    async fn checkout(&self) -> Option<Sender> {
        loop {
            let sender = {
                let mut idle = self.idle.lock();
                match idle.last() {
                    Some(Sender::H2(h2)) if !h2.is_closed() => Sender::H2(h2.clone()),
                    _ => idle.pop()?,
                }
            };
            match sender {
                Sender::H1(mut s) => {
                    if !s.is_closed() && s.ready().await.is_ok() {
                        return Some(Sender::H1(s));
                    }
                }
                Sender::H2(mut s) => {
                    if s.ready().await.is_ok() {
                        return Some(Sender::H2(s));
                    }
                    // Closed since: drop it from the pool.
                    self.idle
                        .lock()
                        .retain(|idle| !matches!(idle, Sender::H2(h) if h.is_closed()));
                }
            }
        }
    }

    fn checkin(&self, sender: Sender) {
        if sender.is_closed() {
            return;
        }
        let mut idle = self.idle.lock();
        if idle.len() < MAX_IDLE {
            idle.push(sender);
        }
    }

    async fn connect(&self) -> Result<Sender, ClientError> {
        let stream = TcpStream::connect(self.authority.as_str())
            .await
            .map_err(|source| ClientError::Connect {
                authority: self.authority.clone(),
                source,
            })?;
        let _ = stream.set_nodelay(true);
        let Some(tls) = &self.tls else {
            return self.http1(stream).await;
        };
        let stream = tls
            .connect(&self.host, stream)
            .await
            .map_err(|source| ClientError::Tls {
                authority: self.authority.clone(),
                source,
            })?;
        if sluice_service_common::tls::is_h2(stream.get_ref().1.alpn_protocol()) {
            let handshake = http2::handshake(TokioExecutor::new(), TokioIo::new(stream)).await;
            return self.drive(handshake).map(Sender::H2);
        }
        self.http1(stream).await
    }

    /// The sender of a handshake's connection, whose task is spawned.
    fn drive<S, C>(&self, handshake: Result<(S, C), hyper::Error>) -> Result<S, ClientError>
    where
        C: Future<Output = Result<(), hyper::Error>> + Send + 'static,
    {
        let (sender, conn) = handshake.map_err(|source| ClientError::Http {
            authority: self.authority.clone(),
            source,
        })?;
        tokio::spawn(async move {
            if let Err(error) = conn.await {
                tracing::debug!(%error, "service connection ended");
            }
        });
        Ok(sender)
    }

    /// HTTP/1.1 on a connected stream (plain, or TLS without h2).
    async fn http1<I>(&self, stream: I) -> Result<Sender, ClientError>
    where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let handshake = http1::handshake(TokioIo::new(stream)).await;
        self.drive(handshake).map(Sender::H1)
    }
}
