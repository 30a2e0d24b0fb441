//! One request, top to bottom. [`handle`] is the service every downstream
//! connection calls; it runs the stages in this order:
//!
//! 1. limits and framing checks (414, 431, 400)
//! 2. [`route`]: host and path → upstream group (404)
//! 3. balance: pick a backend from the group's snapshot (503)
//! 4. [`headers::inbound`]: hop-by-hop strip, `X-Forwarded-*`, `Forwarded`, `Via`
//! 5. [`forward`]: checkout a connection, send, await the response head (502/504)
//! 6. [`headers::outbound`], then the body streams through [`body`]
//!
//! Any error becomes a response in [`respond`]; a panic becomes a 500 for
//! this request only.

pub mod body;
pub mod compress;
pub mod forward;
pub mod headers;
pub mod respond;
pub mod route;

#[cfg(test)]
mod legacy_tests;

use crate::addr::ClientAddr;
use crate::balance::PickKey;
use crate::config::UpstreamProtocol;
use crate::error::{ErrorKind, ProxyError, Retry};
use crate::state::{Shared, State};
use crate::upstream::pool::Pool;
use body::{ReqBody, RespBody, UpstreamBody};
use futures_util::FutureExt;
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderValue, Request, Response, StatusCode, Uri, Version, header};
use http_body::Body;
use std::convert::Infallible;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use tokio::time::Instant;

/// What one worker owns: its connection pool, and the shared state.
#[derive(Debug)]
pub struct Worker {
    pub shared: Arc<Shared>,
    pub pool: Arc<Pool>,
    /// hyper-util's pooled client, only with `SLUICE_POOL=hyper-util`
    /// ([`forward::LegacyClient`]); otherwise `pool` serves every group.
    pub legacy: Option<Arc<forward::LegacyClient>>,
}

/// What a request knows about the connection it came on.
#[derive(Debug)]
pub struct ConnCtx {
    pub worker: Arc<Worker>,
    pub client: ClientAddr,
    /// The client address as header text, formatted once per connection,
    /// or shared by connections from one address (`server::worker`).
    pub client_strings: Arc<headers::ClientStrings>,
    /// `http` or `https`.
    pub proto: &'static str,
}

impl ConnCtx {
    pub fn new(worker: Arc<Worker>, client: ClientAddr, proto: &'static str) -> ConnCtx {
        let strings = Arc::new(headers::ClientStrings::new(client));
        ConnCtx::with_strings(worker, client, strings, proto)
    }

    /// With `client_strings` already made for `client`'s address.
    pub fn with_strings(
        worker: Arc<Worker>,
        client: ClientAddr,
        client_strings: Arc<headers::ClientStrings>,
        proto: &'static str,
    ) -> ConnCtx {
        ConnCtx {
            worker,
            client,
            client_strings,
            proto,
        }
    }
}

/// The service for every request on every downstream connection.
pub async fn handle(
    conn: Arc<ConnCtx>,
    req: Request<ReqBody>,
) -> Result<Response<RespBody>, Infallible> {
    let state = conn.worker.shared.state.load_full();
    let log = state
        .access_log
        .then(|| (Instant::now(), req.method().clone(), req.uri().clone()));
    let resp = match AssertUnwindSafe(proxy(&conn, &state, req))
        .catch_unwind()
        .await
    {
        Ok(Ok(resp)) => resp,
        Ok(Err(err)) => respond::error(&err),
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
                .unwrap_or("?");
            tracing::error!(client = %conn.client, panic = what, "panic while handling a request");
            respond::error(&ProxyError::new(ErrorKind::Internal))
        }
    };
    if let Some((start, method, uri)) = log {
        tracing::info!(
            target: "sluice::access",
            client = %conn.client,
            %method,
            %uri,
            status = resp.status().as_u16(),
            micros = start.elapsed().as_micros() as u64,
        );
    }
    Ok(resp)
}

async fn proxy(
    conn: &ConnCtx,
    state: &State,
    mut req: Request<ReqBody>,
) -> Result<Response<RespBody>, ProxyError> {
    // 1. Limits and framing. The HTTP/1 server already refused ambiguous framing
    //    (Content-Length with Transfer-Encoding, two different Content-Lengths,
    //    a non-chunked final Transfer-Encoding).
    let limits = &state.limits;
    if req.uri().path_and_query().map_or(0, |p| p.as_str().len()) > limits.max_uri_bytes {
        return Err(ErrorKind::UriTooLong.into());
    }
    if req.headers().len() > limits.max_headers {
        return Err(ErrorKind::HeadersTooLarge.into());
    }
    let host = request_host(&req)?;

    #[cfg(feature = "test-util")]
    if req.headers().contains_key("x-sluice-test-panic") {
        panic!("test-induced panic");
    }

    // 2. Route.
    let host_str = host.as_ref().and_then(|h| h.to_str().ok());
    let route = state
        .router
        .lookup(host_str, req.uri().path())
        .ok_or(ErrorKind::NoRoute)?;
    let group = &state.groups[route.group];
    // What the client accepts, kept for the response (the request moves on).
    let gzip = compress::ClientGzip::capture(
        route.compress.unwrap_or(state.config.compression.enabled),
        req.method(),
        req.headers(),
    );

    // 3. Pick: the snapshot guard lives only for this block, never across an await.
    let pick = |exclude: Option<u64>, req: &Request<ReqBody>| {
        let snap = group.load();
        let key = PickKey {
            headers: req.headers(),
            client: conn.client,
        };
        snap.pick(&key).filter(|b| Some(b.id) != exclude).cloned()
    };
    let mut backend = pick(None, &req).ok_or(ErrorKind::NoBackend)?;

    // 4. Headers for the backend.
    let downstream_h1 = req.version() <= Version::HTTP_11;
    let on_upgrade = (downstream_h1 && req.headers().contains_key(header::UPGRADE))
        .then(|| DownUpgrade::take(&mut req));
    let (mut parts, body) = req.into_parts();
    let upgrade = headers::strip_hop_by_hop(&mut parts.headers, on_upgrade.is_some());
    let via = if downstream_h1 {
        &state.via_h1
    } else {
        &state.via_h2
    };
    headers::inbound(
        &mut parts.headers,
        &headers::Inbound {
            client: &conn.client_strings,
            proto: conn.proto,
            host: host.as_ref(),
            trust_forwarded: state.forwarding.trust_forwarded_headers,
            via,
        },
    );
    // The downstream connection (hyper's or `server::h1`) answers
    // `Expect: 100-continue` itself when we first read the body,
    // which is once the backend connection is ready.
    parts.headers.remove(header::EXPECT);
    if let Some(u) = &upgrade {
        parts
            .headers
            .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        parts.headers.insert(header::UPGRADE, u.clone());
    }
    shape_for_upstream(
        &mut parts,
        group.protocol,
        group.tls.is_some(),
        host.as_ref(),
        &backend,
    )?;
    let body = if body.is_end_stream() {
        ReqBody::Empty
    } else {
        body
    };

    // 5. Forward. A backend we could not connect to never saw the request,
    //    so one other backend may be tried.
    let pool = &conn.worker.pool;
    let timeouts = &state.timeouts;
    let mut in_flight = backend.begin();
    if !backend.in_rotation() {
        // Drained between our pick and `begin`: whoever waits for its
        // in-flight requests (DELETE, DNS removal) may not have counted this
        // one, so pick again from the newer snapshot (see `Backend::in_rotation`).
        let snap = group.load();
        let key = PickKey {
            headers: &parts.headers,
            client: conn.client,
        };
        let next = snap.pick(&key).cloned();
        drop(snap);
        drop(in_flight);
        backend = next.ok_or(ErrorKind::NoBackend)?;
        in_flight = backend.begin();
        if group.protocol != UpstreamProtocol::Http1 {
            shape_for_upstream(
                &mut parts,
                group.protocol,
                group.tls.is_some(),
                host.as_ref(),
                &backend,
            )?;
        }
    }
    // `SLUICE_POOL=hyper-util` (a comparison switch): plain HTTP/1.1 goes
    // through hyper-util's pool; its connect errors surface from `send`.
    let legacy = conn
        .worker
        .legacy
        .as_ref()
        .filter(|_| group.protocol == UpstreamProtocol::Http1 && group.tls.is_none());
    let checkout = match legacy {
        Some(client) => Ok(forward::Conn::Legacy(client.clone())),
        None => forward::checkout(pool, group, &backend, timeouts).await,
    };
    let upstream = match checkout {
        Ok(c) => c,
        Err(e) if e.retryable() == Retry::NotSent => {
            upstream_failed(group, &backend, &e);
            let snap = group.load();
            let key = PickKey {
                headers: &parts.headers,
                client: conn.client,
            };
            let next = snap.pick(&key).filter(|b| b.id != backend.id).cloned();
            drop(snap);
            let Some(next) = next else { return Err(e) };
            backend = next;
            in_flight = backend.begin();
            if !backend.in_rotation() {
                // Drained since the pick (see `Backend::in_rotation`): a drain
                // may already have counted its requests, so do not send one.
                return Err(e);
            }
            if group.protocol != UpstreamProtocol::Http1 {
                shape_for_upstream(
                    &mut parts,
                    group.protocol,
                    group.tls.is_some(),
                    host.as_ref(),
                    &backend,
                )?;
            }
            forward::checkout(pool, group, &backend, timeouts)
                .await
                .inspect_err(|e| {
                    upstream_failed(group, &backend, e);
                })?
        }
        Err(e) => {
            upstream_failed(group, &backend, &e);
            return Err(e);
        }
    };
    let resp = forward::send(
        upstream,
        Request::from_parts(parts, body),
        pool,
        group,
        &backend,
        timeouts,
    )
    .await
    .inspect_err(|e| {
        if e.kind() != ErrorKind::ClientAborted {
            upstream_failed(group, &backend, e);
        }
    })?;
    // Passive health: a 5xx counts against the backend, anything else clears its streak.
    if resp.status().is_server_error() {
        backend.record_failure();
        group.record_outcome(&backend, true);
    } else {
        group.record_outcome(&backend, false);
    }

    // 6. The response.
    if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
        let Some(down) = on_upgrade else {
            return Err(ProxyError::with_source(
                ErrorKind::UpstreamProtocol,
                "101 to a request that did not ask to upgrade",
            ));
        };
        let (mut parts, body) = resp.into_parts();
        let up = match body {
            body::Upstream::H1(b) => UpUpgrade::H1(
                b.into_upgraded()
                    .ok_or_else(|| ProxyError::new(ErrorKind::UpstreamReset))?,
            ),
            body::Upstream::Hyper(_) => UpUpgrade::Hyper(
                parts
                    .extensions
                    .remove::<hyper::upgrade::OnUpgrade>()
                    .ok_or_else(|| {
                        ProxyError::with_source(ErrorKind::UpstreamProtocol, "101 without upgrade")
                    })?,
            ),
        };
        parts.version = Version::HTTP_11;
        let upgrade = headers::strip_hop_by_hop(&mut parts.headers, true);
        if let Some(u) = upgrade {
            parts
                .headers
                .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
            parts.headers.insert(header::UPGRADE, u);
        }
        headers::outbound(&mut parts.headers, via);
        tokio::spawn(tunnel(down, up, in_flight));
        return Ok(Response::from_parts(parts, RespBody::Full(None)));
    }
    let (mut parts, body) = resp.into_parts();
    // We answer in the client's protocol, whatever the backend spoke.
    parts.version = if downstream_h1 {
        Version::HTTP_11
    } else {
        Version::HTTP_2
    };
    headers::strip_hop_by_hop(&mut parts.headers, false);
    headers::outbound(&mut parts.headers, via);
    let body = UpstreamBody::new(body, in_flight);
    let body = compress::apply(gzip, &state.config.compression, &mut parts, body);
    Ok(Response::from_parts(parts, body))
}

/// The host the client asked for: `:authority` on HTTP/2, else the one Host
/// header (RFC 9112 §3.2: missing or repeated on HTTP/1.1 is a 400).
fn request_host<B>(req: &Request<B>) -> Result<Option<HeaderValue>, ProxyError> {
    if let Some(a) = req.uri().authority() {
        return HeaderValue::from_str(a.as_str())
            .map(Some)
            .map_err(|e| ProxyError::with_source(ErrorKind::BadRequest, e));
    }
    let mut hosts = req.headers().get_all(header::HOST).iter();
    match (hosts.next(), hosts.next()) {
        (Some(h), None) => Ok(Some(h.clone())),
        (None, _) if req.version() < Version::HTTP_11 || req.version() == Version::HTTP_2 => {
            Ok(None)
        }
        (None, _) => Err(ProxyError::with_source(
            ErrorKind::BadRequest,
            "missing Host header",
        )),
        (Some(_), Some(_)) => Err(ProxyError::with_source(
            ErrorKind::BadRequest,
            "more than one Host header",
        )),
    }
}

/// Sets version, request target and Host for the backend's protocol.
fn shape_for_upstream(
    parts: &mut http::request::Parts,
    protocol: UpstreamProtocol,
    tls: bool,
    host: Option<&HeaderValue>,
    backend: &crate::upstream::Backend,
) -> Result<(), ProxyError> {
    let bad = |e: http::Error| ProxyError::with_source(ErrorKind::BadRequest, e);
    match protocol {
        UpstreamProtocol::Http1 => {
            parts.version = Version::HTTP_11;
            if parts.uri.authority().is_some() {
                // Absolute-form (or HTTP/2 :authority) → origin-form + Host.
                if let Some(h) = host
                    && !parts.headers.contains_key(header::HOST)
                {
                    parts.headers.insert(header::HOST, h.clone());
                }
                let pq = parts
                    .uri
                    .path_and_query()
                    .cloned()
                    .unwrap_or_else(|| PathAndQuery::from_static("/"));
                parts.uri = Uri::from(pq);
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
                .scheme(if tls { Scheme::HTTPS } else { Scheme::HTTP })
                .authority(authority)
                .path_and_query(pq)
                .build()
                .map_err(bad)?;
            parts.headers.remove(header::HOST);
        }
    }
    Ok(())
}

/// One log line naming the backend and the cause, and the passive check.
fn upstream_failed(
    group: &crate::upstream::Group,
    backend: &crate::upstream::Backend,
    err: &ProxyError,
) {
    log_failure(group, backend, err);
    backend.record_failure();
    group.record_outcome(backend, true);
}

fn log_failure(
    group: &crate::upstream::Group,
    backend: &crate::upstream::Backend,
    err: &ProxyError,
) {
    tracing::warn!(group = %group.name, backend = %backend.addr, status = err.status().as_u16(), error = %err, "upstream request failed");
}

/// After a 101: copy bytes both ways until either side closes.
async fn tunnel(down: DownUpgrade, up: UpUpgrade, _in_flight: crate::upstream::backend::InFlight) {
    let (mut down, mut up) = match tokio::join!(down.upgraded(), up.upgraded()) {
        (Ok(down), Ok(up)) => (down, up),
        (Err(e), _) => {
            tracing::debug!(error = %e, "downstream upgrade failed");
            return;
        }
        (_, Err(e)) => {
            tracing::debug!(error = %e, "upstream upgrade failed");
            return;
        }
    };
    if let Err(e) = tokio::io::copy_bidirectional(&mut down, &mut up).await {
        tracing::debug!(error = %e, "tunnel ended");
    }
}

/// The backend's side of an upgrade: our client's connection, or hyper-util's
/// (the `SLUICE_POOL=hyper-util` comparison).
enum UpUpgrade {
    H1(crate::server::h1::Upgraded),
    Hyper(hyper::upgrade::OnUpgrade),
}

impl UpUpgrade {
    async fn upgraded(
        self,
    ) -> Result<Box<dyn crate::server::h1::upgrade::Io>, crate::error::BoxError> {
        Ok(match self {
            UpUpgrade::H1(io) => Box::new(io),
            UpUpgrade::Hyper(on) => Box::new(hyper_util::rt::TokioIo::new(on.await?)),
        })
    }
}

/// The client's side of an upgrade: hyper's (HTTP/1 served by hyper) or ours.
enum DownUpgrade {
    Hyper(hyper::upgrade::OnUpgrade),
    H1(crate::server::h1::OnUpgrade),
}

impl DownUpgrade {
    fn take<B>(req: &mut Request<B>) -> DownUpgrade {
        match req
            .extensions_mut()
            .remove::<crate::server::h1::OnUpgrade>()
        {
            Some(on) => DownUpgrade::H1(on),
            None => DownUpgrade::Hyper(hyper::upgrade::on(req)),
        }
    }

    /// The raw connection; boxed once per upgrade (a cold path).
    async fn upgraded(
        self,
    ) -> Result<Box<dyn crate::server::h1::upgrade::Io>, crate::error::BoxError> {
        Ok(match self {
            DownUpgrade::Hyper(on) => Box::new(hyper_util::rt::TokioIo::new(on.await?)),
            DownUpgrade::H1(on) => Box::new(on.await?),
        })
    }
}
