//! Shape the request for the backend's protocol, checkout a connection to
//! the chosen backend, send the request, get the response head, and record
//! the outcome for passive health. Bodies are not touched here: they stream
//! through [`super::body`] as the client and the backend read them.

use super::body::Upstream;
use super::retry;
use crate::body::{BackendClock, Phase, Progress, ReqBody};
use crate::config::{Timeouts, UpstreamProtocol};
use crate::error::{ErrorKind, ProxyError, Retry, Side};
use crate::interim::InterimQueue;
use crate::upstream::h1::{self, H1Conn};
use crate::upstream::outlier::Outcome;
use crate::upstream::pool::{H2Checkout, H2Sender, Pool};
use crate::upstream::proxy_header::Header;
use crate::upstream::{Backend, Group, connect};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderValue, Request, Response, Uri, Version, header, request};
use hyper::body::Incoming;
use hyper::client::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::future::{Future, poll_fn};
use std::pin::pin;
use std::sync::Arc;
use std::task::{Poll, ready};
use std::time::Duration;

/// A connection ready to carry one request.
pub enum Conn {
    H1 { conn: H1Conn, reused: bool },
    H2(H2Sender),
}

/// A pooled connection if one is alive, else a new one. With `proxy` (the
/// group sends a PROXY header, made for this request's client connection)
/// always a new one, never shared: see `upstream::proxy_header`.
pub async fn checkout(
    pool: &Pool,
    group: &Group,
    backend: &Backend,
    timeouts: &Timeouts,
    proxy: Option<&Header>,
) -> Result<Conn, ProxyError> {
    if proxy.is_some() {
        return Ok(match group.protocol {
            UpstreamProtocol::Http1 => Conn::H1 {
                conn: Box::pin(dial_h1(group, backend, timeouts, proxy)).await?,
                reused: false,
            },
            // Its own connection, closed when the request's sender is dropped.
            UpstreamProtocol::H2c | UpstreamProtocol::H2 => {
                Conn::H2(Box::pin(dial_h2(group, backend, timeouts, proxy)).await?)
            }
        });
    }
    match group.protocol {
        UpstreamProtocol::Http1 => {
            // `take_h1` hands out only connections that are still open.
            if let Some(conn) = pool.take_h1(backend.id) {
                return Ok(Conn::H1 { conn, reused: true });
            }
            Ok(Conn::H1 {
                conn: Box::pin(dial_h1(group, backend, timeouts, None)).await?,
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
            let sender = Box::pin(dial_h2(group, backend, timeouts, None)).await?;
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
    proxy: Option<&Header>,
) -> Result<H1Conn, ProxyError> {
    let tls = group.tls.as_ref();
    let io = connect::connect(backend.addr, tls, timeouts.upstream_connect, proxy).await?;
    Ok(H1Conn::new(io))
}

async fn dial_h2(
    group: &Group,
    backend: &Backend,
    timeouts: &Timeouts,
    proxy: Option<&Header>,
) -> Result<H2Sender, ProxyError> {
    let tls = group.tls.as_ref();
    let io = connect::connect(backend.addr, tls, timeouts.upstream_connect, proxy).await?;
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
///
/// The two sides are timed apart: the client is held to the body's limits
/// (`proxy` makes it [`ReqBody::timed`]: `client_body` between two reads,
/// the minimum rate, the size limit; a 408 or 413, its fault), the backend gets
/// `upstream_response` whenever it has the next move, and above all once
/// the request is all sent (else a 504, its fault); see [`crate::body`].
/// An HTTP/1.1 backend's 1xx go to `interim`, the client connection's queue.
pub async fn send(
    conn: Conn,
    req: Request<ReqBody>,
    pool: &Arc<Pool>,
    group: &Group,
    backend: &Backend,
    timeouts: &Timeouts,
    interim: &InterimQueue,
) -> Result<Response<Upstream>, ProxyError> {
    let timeout = timeouts.upstream_response;
    let (parts, mut body) = req.into_parts();
    match conn {
        Conn::H2(mut sender) => {
            let progress = body.progress();
            let answer = sender.send_request(Request::from_parts(parts, body));
            let resp = h2_answer(timeout, progress.as_deref(), answer).await?;
            Ok(resp.map(|b| Upstream::Hyper(b, progress)))
        }
        Conn::H1 { mut conn, reused } => {
            let first = h1::exchange(&mut conn, &parts, body, timeout, Some(interim)).await;
            let answer = match first {
                Ok(answer) => answer,
                // The idle-close race: a reused connection the backend closed
                // just as we sent. Nothing came back and the body is untouched,
                // so the request goes once more on a fresh connection.
                Err(failed)
                    if retry::replay_on_fresh_connection(
                        reused,
                        &failed.error,
                        failed.body.is_some(),
                        &parts.method,
                    ) =>
                {
                    tracing::debug!(backend = %backend.addr, error = %failed.error, "replaying on a fresh connection");
                    let body = failed.body.unwrap_or(ReqBody::Empty);
                    // Only pooled connections are reused: never a PROXY group's.
                    conn = Box::pin(dial_h1(group, backend, timeouts, None)).await?;
                    h1::exchange(&mut conn, &parts, body, timeout, Some(interim))
                        .await
                        .map_err(|f| f.error)?
                }
                Err(failed) => return Err(failed.error),
            };
            let back = h1::Return {
                pool: pool.clone(),
                backend: backend.id,
                // A PROXY group's connection is its client's: never pooled.
                max_idle: match group.proxy_protocol {
                    Some(_) => 0,
                    None => group.max_idle_per_backend,
                },
            };
            Ok(h1::ResponseBody::response(conn, answer, back).map(Upstream::H1))
        }
    }
}

/// hyper's answer to an HTTP/2 request: the response head; a 504 once the
/// backend has had `limit` with the next move; or, when the client's body
/// failed, the client's error (hyper resets the stream then, which must not
/// read as the backend's doing). A backend that ends the stream while the
/// client's body is awaited is not blamed either (see
/// [`ErrorKind::UpstreamClosedAwaitingClient`]). `progress` follows the
/// body hyper pipes on a task of its own; `None` when there is no body to
/// wait on.
async fn h2_answer(
    limit: Duration,
    progress: Option<&Progress>,
    answer: impl Future<Output = Result<Response<Incoming>, hyper::Error>>,
) -> Result<Response<Incoming>, ProxyError> {
    let mut answer = pin!(answer);
    let mut clock = pin!(BackendClock::new(limit));
    poll_fn(|cx| {
        // Read (and subscribe to) the phase first, so no change is missed.
        let phase = progress.map_or(Phase::Sent, |p| p.phase(cx));
        if let Phase::Failed(kind) = phase {
            return Poll::Ready(Err(ProxyError::new(kind)));
        }
        if let Poll::Ready(r) = answer.as_mut().poll(cx) {
            return Poll::Ready(r.map_err(|e| match progress.map(|p| p.phase(cx)) {
                Some(Phase::Failed(kind)) => ProxyError::with_source(kind, e),
                Some(Phase::Client) => {
                    ProxyError::with_source(ErrorKind::UpstreamClosedAwaitingClient, e)
                }
                // Before the response head: the backend answered nothing.
                _ => upstream_error(e).retry(Retry::MaybeSent),
            }));
        }
        ready!(clock.as_mut().poll_expired(phase, cx));
        Poll::Ready(Err(ProxyError::new(ErrorKind::UpstreamTimeout)))
    })
    .await
}

fn upstream_error(e: hyper::Error) -> ProxyError {
    ProxyError::with_source(upstream_kind(&e), e)
}

fn upstream_kind(e: &hyper::Error) -> ErrorKind {
    if e.is_timeout() {
        ErrorKind::UpstreamTimeout
    } else if e.is_parse() || e.is_parse_status() || e.is_parse_too_large() {
        ErrorKind::UpstreamProtocol
    } else if e.is_user() || e.is_body_write_aborted() {
        // Our side of the request failed: the client's body broke off, or
        // broke its own framing.
        crate::http1::decode::client_body_kind(e)
    } else if crate::upstream::connect::is_tls_alert(e) {
        ErrorKind::UpstreamTls
    } else {
        ErrorKind::UpstreamReset
    }
}

/// Sets version, request target and Host for the backend's protocol.
pub fn shape_request(
    parts: &mut request::Parts,
    group: &Group,
    host: Option<&HeaderValue>,
    backend: &Backend,
) -> Result<(), ProxyError> {
    let bad = |e: http::Error| ProxyError::with_source(ErrorKind::BadRequest, e);
    match group.protocol {
        UpstreamProtocol::Http1 => {
            if parts.version == Version::HTTP_2 {
                super::headers::join_cookie_crumbs(&mut parts.headers);
            }
            parts.version = Version::HTTP_11;
            if parts.uri.authority().is_some() {
                // Absolute-form (or HTTP/2 :authority) → origin-form, and
                // Host becomes the target's authority, whatever Host the
                // client sent (RFC 9112 §3.2.2): the backend sees the host
                // the request was routed by.
                if let Some(h) = host {
                    parts.headers.insert(header::HOST, h.clone());
                }
                let pq = parts
                    .uri
                    .path_and_query()
                    .cloned()
                    .unwrap_or_else(|| PathAndQuery::from_static("/"));
                parts.uri = Uri::from(pq);
            }
            // HTTP/1.0 may leave Host out, HTTP/1.1 must send one (RFC 9112
            // §3.2): the backend's address, as `:authority` below (found by
            // fuzz/connection).
            if !parts.headers.contains_key(header::HOST) {
                let addr =
                    HeaderValue::try_from(backend.addr.to_string()).map_err(|e| bad(e.into()))?;
                parts.headers.insert(header::HOST, addr);
            }
        }
        UpstreamProtocol::H2c | UpstreamProtocol::H2 => {
            parts.version = Version::HTTP_2;
            let authority = match host {
                Some(h) => Authority::try_from(h.as_bytes()).map_err(|e| bad(e.into()))?,
                None => Authority::try_from(backend.addr.to_string()).map_err(|e| bad(e.into()))?,
            };
            let pq = parts
                .uri
                .path_and_query()
                .cloned()
                .unwrap_or_else(|| PathAndQuery::from_static("/"));
            parts.uri = Uri::builder()
                .scheme(if group.tls.is_some() {
                    Scheme::HTTPS
                } else {
                    Scheme::HTTP
                })
                .authority(authority)
                .path_and_query(pq)
                .build()
                .map_err(bad)?;
            parts.headers.remove(header::HOST);
        }
    }
    Ok(())
}

/// Passive health after the response head: a 5xx counts against the
/// backend (a 502/503/504 as a gateway error too), at once. Anything else
/// is a success only once the whole response came (`InFlight::succeed`,
/// from `proxy::body`): a body the backend breaks off is a failure, and
/// must not follow a success that ended the streak it belongs to.
#[inline]
pub fn record_status(group: &Group, backend: &Backend, status: http::StatusCode) {
    let outcome = Outcome::of_status(status.as_u16());
    if outcome != Outcome::Success {
        group.record_outcome(backend, outcome);
    }
}

/// A failed attempt: one log line naming the backend and the cause, and,
/// when the backend's side caused it, the passive check: a failure, a
/// gateway error when we answer 502/503/504 for it, a connect failure when
/// no connection was made.
pub fn record_failure(group: &Group, backend: &Backend, err: &ProxyError) {
    if err.side() != Side::Upstream {
        tracing::debug!(group = %group.name, backend = %backend.addr, error = %err, "request failed on the client's side");
        return;
    }
    tracing::warn!(group = %group.name, backend = %backend.addr, status = err.status().as_u16(), error = %err, "upstream request failed");
    group.record_outcome(backend, failure_outcome(err));
}

fn failure_outcome(err: &ProxyError) -> Outcome {
    Outcome::Failure {
        gateway: matches!(err.status().as_u16(), 502..=504),
        connect: matches!(
            err.kind(),
            ErrorKind::ConnectFailed
                | ErrorKind::ConnectTimeout
                | ErrorKind::UpstreamTls
                | ErrorKind::UpstreamCertificate
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_classify_for_the_outlier_streaks() {
        let f = |k| failure_outcome(&ProxyError::new(k));
        assert_eq!(
            f(ErrorKind::ConnectFailed),
            Outcome::Failure {
                gateway: true,
                connect: true
            }
        );
        assert_eq!(
            f(ErrorKind::UpstreamTimeout),
            Outcome::Failure {
                gateway: true,
                connect: false
            }
        );
    }
}
