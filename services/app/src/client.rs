//! A small HTTP/1.1 client for the services around the app (cache, log,
//! proxy admin): one base URL, a few idle keep-alive connections, and a
//! timeout on every call so a slow or dead service never holds a request.
//!
//! The workspace's hyper-util is built without its legacy client; this is
//! the few dozen lines the app needs on top of `hyper::client::conn::http1`.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
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

pub struct Client {
    /// `host:port` of the service.
    authority: String,
    timeout: Duration,
    /// Ready-to-use HTTP/1 senders. A `parking_lot::Mutex`: only pushed and
    /// popped, never held across an `.await`.
    idle: Mutex<Vec<SendRequest<Full<Bytes>>>>,
}

impl Client {
    /// A client for `base` (its host and port; the path is ignored).
    pub fn new(base: &url::Url, timeout: Duration) -> Client {
        let host = base.host_str().unwrap_or("127.0.0.1");
        let port = base.port_or_known_default().unwrap_or(80);
        Client {
            authority: format!("{host}:{port}"),
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
            let req = || self.build(method.clone(), path_and_query, headers, body.clone());
            match self.exchange(sender, req()?).await {
                Err(ClientError::Http { .. }) if reused => {
                    let fresh = self.connect().await?;
                    self.exchange(fresh, req()?).await
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
        method: Method,
        path_and_query: &str,
        headers: &[(HeaderName, HeaderValue)],
        body: Bytes,
    ) -> Result<Request<Full<Bytes>>, ClientError> {
        let mut builder = Request::builder()
            .method(method)
            .uri(path_and_query)
            .header(http::header::HOST, self.authority.as_str());
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

    async fn exchange(
        &self,
        mut sender: SendRequest<Full<Bytes>>,
        req: Request<Full<Bytes>>,
    ) -> Result<Reply, ClientError> {
        let http = |source| ClientError::Http {
            authority: self.authority.clone(),
            source,
        };
        let response = sender.send_request(req).await.map_err(http)?;
        let (parts, body) = response.into_parts();
        let body = body.collect().await.map_err(http)?.to_bytes();
        self.checkin(sender);
        Ok(Reply {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }

    /// An idle connection that is still open and ready, if any.
    async fn checkout(&self) -> Option<SendRequest<Full<Bytes>>> {
        loop {
            let mut sender = self.idle.lock().pop()?;
            if !sender.is_closed() && sender.ready().await.is_ok() {
                return Some(sender);
            }
        }
    }

    fn checkin(&self, sender: SendRequest<Full<Bytes>>) {
        if sender.is_closed() {
            return;
        }
        let mut idle = self.idle.lock();
        if idle.len() < MAX_IDLE {
            idle.push(sender);
        }
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, ClientError> {
        let stream = TcpStream::connect(self.authority.as_str())
            .await
            .map_err(|source| ClientError::Connect {
                authority: self.authority.clone(),
                source,
            })?;
        let _ = stream.set_nodelay(true);
        let (sender, conn) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|source| ClientError::Http {
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
}
