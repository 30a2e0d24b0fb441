//! Checkout a connection to the chosen backend, send the request, get the
//! response head. Bodies are not touched here: they stream through
//! [`super::body`] as the client and the backend read them.

use super::body::{ReqBody, Upstream};
use crate::config::{Config, Timeouts, UpstreamProtocol};
use crate::error::{ErrorKind, ProxyError, Retry};
use crate::upstream::h1::{self, H1Conn};
use crate::upstream::pool::{H2Checkout, H2Sender, Pool};
use crate::upstream::{Backend, Group, connect};
use http::{Method, Request, Response, Uri};
use hyper::client::conn::http2;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::sync::{Arc, OnceLock};

/// A connection ready to carry one request.
pub enum Conn {
    H1 {
        conn: H1Conn,
        reused: bool,
    },
    H2(H2Sender),
    /// hyper-util's client, which checks out from its own pool in `send`.
    Legacy(Arc<LegacyClient>),
}

/// hyper-util's pooled HTTP/1.1 client, the comparison for our [`Pool`]
/// (perf/findings/2026-11-25-upstream-pool.md). One per worker, only with
/// `SLUICE_POOL=hyper-util`, and only for plain-TCP HTTP/1.1 groups.
pub type LegacyClient = Client<HttpConnector, ReqBody>;

/// Which upstream pool forwards HTTP/1.1 over plain TCP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolEngine {
    /// [`Pool`] (the default).
    Sluice,
    /// hyper-util's `client::legacy::Client` (for comparison).
    HyperUtil,
}

impl PoolEngine {
    /// From `SLUICE_POOL` (`hyper-util` or `sluice`, default `sluice`), read once.
    pub fn from_env() -> PoolEngine {
        static ENGINE: OnceLock<PoolEngine> = OnceLock::new();
        *ENGINE.get_or_init(|| match std::env::var("SLUICE_POOL").as_deref() {
            Ok("hyper-util") => PoolEngine::HyperUtil,
            _ => PoolEngine::Sluice,
        })
    }
}

/// hyper-util's client with the settings our pool would use: TCP_NODELAY,
/// the connect timeout, the idle timeout, and the largest
/// `max_idle_per_backend` of any group (its limit is per client, not per
/// group). Read at worker start: a config reload does not change it.
pub fn legacy_client(config: &Config, timeouts: &Timeouts) -> LegacyClient {
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    http.set_connect_timeout(Some(timeouts.upstream_connect));
    let max_idle = config
        .upstreams
        .iter()
        .map(|u| u.max_idle_per_backend)
        .max()
        .unwrap_or(0);
    Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(timeouts.upstream_idle)
        .pool_max_idle_per_host(max_idle)
        .build(http)
}

/// A pooled connection if one is alive, else a new one.
pub async fn checkout(
    pool: &Pool,
    group: &Group,
    backend: &Backend,
    timeouts: &Timeouts,
) -> Result<Conn, ProxyError> {
    match group.protocol {
        UpstreamProtocol::Http1 => {
            // `take_h1` hands out only connections that are still open.
            if let Some(conn) = pool.take_h1(backend.id) {
                return Ok(Conn::H1 { conn, reused: true });
            }
            Ok(Conn::H1 {
                conn: Box::pin(dial_h1(group, backend, timeouts)).await?,
                reused: false,
            })
        }
        UpstreamProtocol::H2c | UpstreamProtocol::H2 => {
            // One dial per backend at a time; the others wait for it.
            let dial = match pool.h2(backend.id, timeouts.upstream_connect).await {
                H2Checkout::Ready(sender) => return Ok(Conn::H2(sender)),
                H2Checkout::Dial(dial) => dial,
            };
            // On error `dial` drops, and the waiters dial themselves.
            let sender = Box::pin(dial_h2(group, backend, timeouts)).await?;
            Ok(Conn::H2(dial.done(sender)))
        }
    }
}

// Dialing is boxed where it is awaited: it is the cold path (steady load
// reuses pooled connections), and inline its TCP+TLS futures would make every
// request's future ~1.4 KiB larger, copied on every request (callgrind).
async fn dial_h1(
    group: &Group,
    backend: &Backend,
    timeouts: &Timeouts,
) -> Result<H1Conn, ProxyError> {
    let io = connect::connect(backend.addr, group.tls.as_ref(), timeouts.upstream_connect).await?;
    Ok(H1Conn::new(io))
}

async fn dial_h2(
    group: &Group,
    backend: &Backend,
    timeouts: &Timeouts,
) -> Result<H2Sender, ProxyError> {
    let io = connect::connect(backend.addr, group.tls.as_ref(), timeouts.upstream_connect).await?;
    if group.protocol == UpstreamProtocol::H2 && !io.alpn_h2() {
        return Err(ProxyError::with_source(
            ErrorKind::UpstreamProtocol,
            "backend did not negotiate h2 by ALPN",
        )
        .retry(Retry::NotSent));
    }
    let (sender, conn) = http2::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        .keep_alive_interval(timeouts.upstream_idle / 2)
        .keep_alive_while_idle(false)
        .handshake(TokioIo::new(io))
        .await
        .map_err(|e| {
            ProxyError::with_source(ErrorKind::UpstreamProtocol, e).retry(Retry::NotSent)
        })?;
    let addr = backend.addr;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(backend = %addr, error = %e, "upstream h2 connection ended");
        }
    });
    Ok(sender)
}

/// Sends `req` and waits for the response head. An HTTP/1.1 connection
/// travels inside the response body and goes back to the pool at its end.
pub async fn send(
    conn: Conn,
    req: Request<ReqBody>,
    pool: &Arc<Pool>,
    group: &Group,
    backend: &Backend,
    timeouts: &Timeouts,
) -> Result<Response<Upstream>, ProxyError> {
    let timeout = timeouts.upstream_response;
    match conn {
        Conn::Legacy(client) => {
            // The legacy client wants an absolute URI; Host stays as shaped.
            let (mut parts, body) = req.into_parts();
            let pq = parts.uri.path_and_query().map_or("/", |p| p.as_str());
            parts.uri = Uri::try_from(format!("http://{}{pq}", backend.addr))
                .map_err(|e| ProxyError::with_source(ErrorKind::BadRequest, e))?;
            let resp = response_within(timeout, client.request(Request::from_parts(parts, body)))
                .await?
                .map_err(legacy_error)?;
            Ok(resp.map(Upstream::Hyper))
        }
        Conn::H2(mut sender) => {
            let resp = response_within(timeout, sender.send_request(req))
                .await?
                .map_err(upstream_error)?;
            Ok(resp.map(Upstream::Hyper))
        }
        Conn::H1 { mut conn, reused } => {
            let (parts, body) = req.into_parts();
            let first = response_within(timeout, h1::exchange(&mut conn, &parts, body)).await?;
            let answer = match first {
                Ok(answer) => answer,
                // The idle-close race: a reused connection the backend closed
                // just as we sent. Nothing came back and the body is untouched,
                // so the request goes once more on a fresh connection.
                Err(failed) if reused && failed.replayable(&parts.method) => {
                    tracing::debug!(backend = %backend.addr, error = %failed.error, "replaying on a fresh connection");
                    let body = failed.body.unwrap_or(ReqBody::Empty);
                    conn = Box::pin(dial_h1(group, backend, timeouts)).await?;
                    response_within(timeout, h1::exchange(&mut conn, &parts, body))
                        .await?
                        .map_err(|f| f.error)?
                }
                Err(failed) => return Err(failed.error),
            };
            let back = h1::Return {
                pool: pool.clone(),
                backend: backend.id,
                max_idle: group.max_idle_per_backend,
            };
            Ok(h1::ResponseBody::response(conn, answer, back).map(Upstream::H1))
        }
    }
}

/// `fut` (a send that ends at the response head), or a 504 once `limit` passes.
async fn response_within<T>(
    limit: std::time::Duration,
    fut: impl std::future::Future<Output = T>,
) -> Result<T, ProxyError> {
    tokio::time::timeout(limit, fut)
        .await
        .map_err(|_| ProxyError::new(ErrorKind::UpstreamTimeout))
}

/// RFC 9110 §9.2.2.
pub fn is_idempotent(m: &Method) -> bool {
    matches!(
        *m,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}

fn upstream_error(e: hyper::Error) -> ProxyError {
    ProxyError::with_source(upstream_kind(&e), e)
}

/// Like [`upstream_error`], for hyper-util's client, whose errors wrap
/// hyper's (or the connector's, which never sent the request).
fn legacy_error(e: hyper_util::client::legacy::Error) -> ProxyError {
    if e.is_connect() {
        return ProxyError::with_source(ErrorKind::ConnectFailed, e).retry(Retry::NotSent);
    }
    let kind = std::error::Error::source(&e)
        .and_then(|s| s.downcast_ref::<hyper::Error>())
        .map_or(ErrorKind::UpstreamReset, upstream_kind);
    ProxyError::with_source(kind, e)
}

fn upstream_kind(e: &hyper::Error) -> ErrorKind {
    if e.is_timeout() {
        ErrorKind::UpstreamTimeout
    } else if e.is_parse() || e.is_parse_status() || e.is_parse_too_large() {
        ErrorKind::UpstreamProtocol
    } else if e.is_user() || e.is_body_write_aborted() {
        // Our side of the request failed: the client's body broke off.
        ErrorKind::ClientAborted
    } else {
        ErrorKind::UpstreamReset
    }
}
