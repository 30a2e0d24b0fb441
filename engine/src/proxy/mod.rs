//! One request, top to bottom. [`handle`] is the service every downstream
//! connection calls; [`proxy`] runs the stages in this order:
//!
//! 1. [`limits`]: request target and header count (414, 431), Host (400)
//!    then [`max_forwards`]: TRACE or OPTIONS with `Max-Forwards: 0` is
//!    answered here
//! 2. [`route`]: host and path (in [`path`]'s normal form) → upstream
//!    group (404); a body whose length
//!    is over the route's size limit stops here (413), and the body is
//!    held to its limits as it streams (`crate::body::BodyLimits`); then
//!    [`rate_limit`]: token buckets per client, route or header (429)
//! 3. pick: a backend from the group's snapshot (503); first, for a group
//!    with a sticky cookie, the backend the client's cookie names, if in
//!    rotation ([`sticky::take`], which strips the cookie)
//!    With a request limit, one below it (when none is, the request waits
//!    in `upstream::queue`, 503)
//! 4. [`headers::inbound`]: hop-by-hop strip, `X-Forwarded-*`, `Forwarded`,
//!    `Via`; [`forward::shape_request`] for the backend's protocol
//! 5. [`retry::connect`]: a connection to the backend, picking again once
//!    when the request never left (502/504); 5 and 6 within the route's
//!    `timeout`, if any (504 `request deadline exceeded`)
//! 6. [`forward::send`]: the request, then the response head (502/504);
//!    passive health records the outcome. With `[route.retry]`,
//!    [`retry::forward`] repeats 5 and 6 on another backend for a failed
//!    try, the body replayed from [`replay`]'s buffer
//! 7. a 101 becomes a [`tunnel`]; anything else gets [`headers::outbound`],
//!    [`compress`], and its body streams through [`body`]; a sticky
//!    group's client gets a cookie for the backend that answered, unless
//!    its own named that one ([`sticky::answer`])
//!
//! Any error becomes a response in [`respond`]; a panic becomes a 500 for
//! this request only. Around the stages, `handle` keeps the request's
//! record (`crate::observe`): its id (`X-Request-Id`, kept or made, sent
//! both ways), and the facts the stages add to its `Trail`; the record is
//! finished when the response body is.

pub mod body;
pub mod compress;
pub mod forward;
pub mod headers;
pub mod max_forwards;
pub mod path;
pub mod rate_limit;
pub mod replay;
pub mod respond;
pub mod retry;
pub mod route;
pub mod sticky;
pub mod tunnel;

use crate::balance::PickKey;
use crate::body::{BodyLimits, ReqBody};
use crate::context::ConnCtx;
use crate::error::{ErrorKind, ProxyError};
use crate::observe::{Exchange, Trail, request_id};
use crate::state::State;
use body::{RespBody, UpstreamBody};
use futures_util::FutureExt;
use http::{HeaderValue, Request, Response, StatusCode, Version, header};
use http_body::Body;
use std::convert::Infallible;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::time::Instant;

/// Names the chosen backend on responses, when the group opts in
/// (`backend_header`); never by default.
const X_SLUICE_BACKEND: header::HeaderName = header::HeaderName::from_static("x-sluice-backend");

/// The service for every request on every downstream connection.
pub async fn handle(
    conn: Arc<ConnCtx>,
    mut req: Request<ReqBody>,
) -> Result<Response<RespBody>, Infallible> {
    let state = conn.worker.shared.state.load_full();
    // The trace context: the client's or a new one, and the backend's.
    let span = state.tracer.start(&mut req);
    // The request's id goes to the backend and back to the client.
    let request_id = request_id::take(req.headers());
    req.headers_mut()
        .insert(request_id::X_REQUEST_ID, request_id.clone());
    let trail = Arc::new(Trail::default());
    let mut exchange = Exchange {
        trail: trail.clone(),
        started: Instant::now(),
        started_wall: SystemTime::now(),
        client: conn.client,
        method: req.method().clone(),
        uri: req.uri().clone(),
        host: req.headers().get(header::HOST).cloned().or_else(|| {
            let a = req.uri().authority()?;
            HeaderValue::from_str(a.as_str()).ok()
        }),
        referer: req.headers().get(header::REFERER).cloned(),
        user_agent: req.headers().get(header::USER_AGENT).cloned(),
        version: req.version(),
        request_id,
        status: 0,
        error: None,
        bytes_out: 0,
        compressed: None,
        completed: false,
        duration: Duration::ZERO,
        span,
    };
    let mut resp = match AssertUnwindSafe(proxy(&conn, &state, &trail, req))
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
    exchange.status = resp.status().as_u16();
    exchange.error = resp.headers().get(respond::X_SLUICE_ERROR).cloned();
    resp.headers_mut()
        .insert(request_id::X_REQUEST_ID, exchange.request_id.clone());
    if let Some((name, value)) = &state.instance_header {
        resp.headers_mut().insert(name.clone(), value.clone());
    }
    Ok(resp.map(|b| b.observed(exchange, state)))
}

/// The stages of one request, in order.
async fn proxy(
    conn: &ConnCtx,
    state: &State,
    trail: &Arc<Trail>,
    mut req: Request<ReqBody>,
) -> Result<Response<RespBody>, ProxyError> {
    // 1. Limits. The HTTP/1 server already refused ambiguous framing
    //    (Content-Length with Transfer-Encoding, two different Content-Lengths,
    //    a non-chunked final Transfer-Encoding).
    let host = limits(state, &req)?;
    // Max-Forwards: 0 on TRACE or OPTIONS stops here (RFC 9110 §7.6.2).
    if let Some(resp) = max_forwards::apply(&mut req) {
        return Ok(resp);
    }

    // Only the engine's own unit tests (server::conn::tests) build this.
    #[cfg(test)]
    if req.headers().contains_key("x-sluice-test-panic") {
        panic!("test-induced panic");
    }

    // 2. Route.
    let host_str = host.as_ref().and_then(|h| h.to_str().ok());
    // Routes and rate limits match one normal form of the path (`path`);
    // the request goes on as sent.
    let path = path::normalize(route_path(req.method(), req.uri()));
    let route = state
        .router
        .lookup(host_str, &path)
        .ok_or(ErrorKind::NoRoute)?;
    trail.set_route(route.index);
    if !state.rate_limits.is_empty() {
        let r = rate_limit::Request {
            host: host_str,
            path: &path,
            route: route.index,
            client: conn.client.0.ip(),
            headers: req.headers(),
        };
        if let Err(wait) = state.rate_limits.check(&r) {
            return Ok(respond::rate_limited(wait));
        }
    }
    let group = &state.groups[route.group];
    // A body its length says is too large is refused before anything is
    // forwarded; one without a length is counted as it streams (`body`).
    let max_body = route
        .max_request_body
        .unwrap_or(state.limits.max_request_body);
    if max_body != 0 && req.body().size_hint().lower() > max_body {
        return Err(ErrorKind::BodyTooLarge.into());
    }
    // What the client accepts, kept for the response (the request moves on).
    let accepts = compress::ClientEncoding::capture(
        route.compress.unwrap_or(state.config.compression.enabled),
        &state.config.compression.algorithms,
        req.method(),
        req.headers(),
    );

    // 3. Pick: the sticky cookie's backend, else the group's policy.
    let stuck = match &group.sticky {
        Some(s) => sticky::take(s, group, req.headers_mut()),
        None => None,
    };
    let stuck_id = stuck.as_ref().map(|b| b.id);
    let backend = match stuck {
        Some(b) => b,
        None => {
            let key = PickKey {
                headers: req.headers(),
                client: conn.client,
            };
            group.pick(&key, &[]).ok_or(ErrorKind::NoBackend)?
        }
    };

    // 4. Headers for the backend.
    let downstream_h1 = req.version() <= Version::HTTP_11;
    let client_upgrade = tunnel::client_side(&mut req);
    let (mut parts, body) = req.into_parts();
    let via = match parts.version {
        Version::HTTP_10 | Version::HTTP_09 => &state.via_h10,
        Version::HTTP_11 => &state.via_h1,
        _ => &state.via_h2,
    };
    headers::for_upstream(
        &mut parts.headers,
        &headers::Inbound {
            client: &conn.client_strings,
            proto: conn.proto,
            host: host.as_ref(),
            trust_forwarded: state.forwarding.trust_forwarded_headers,
            via,
            client_cert_header: &state.forwarding.client_cert_header,
            client_cert: conn.client_cert.as_deref(),
        },
        client_upgrade.is_some(),
    );
    forward::shape_request(&mut parts, group, host.as_ref(), &backend)?;
    let body = if body.is_end_stream() {
        ReqBody::Empty
    } else {
        body.timed(BodyLimits {
            idle: state.timeouts.client_body,
            min_rate: state.limits.min_body_rate,
            grace: state.limits.min_body_rate_grace,
            max_bytes: max_body,
        })
        .counted(trail)
    };

    // 5-6. A connection (picking again once if the request never left),
    //      the request, the response head; retried on another backend when
    //      the route says so. Every try feeds passive health. All within the
    //      route's deadline, if it has one (boxed there: only such routes pay
    //      for the timer and its room in this future).
    let target = retry::Target {
        group,
        client: conn.client,
        server: conn.client_strings.server,
        host: host.as_ref(),
        pool: &conn.worker.pool,
        timeouts: &state.timeouts,
        interim: &conn.interim,
        trail,
    };
    let policy = route.retry.filter(|_| client_upgrade.is_none());
    let stages = retry::forward(&target, policy, backend, parts, body);
    let answered = match route.timeout {
        None => stages.await?,
        Some(limit) => Box::pin(tokio::time::timeout(limit, stages))
            .await
            .map_err(|_| ProxyError::new(ErrorKind::RequestDeadline))??,
    };
    let retry::Answered {
        response: mut resp,
        backend,
        in_flight,
    } = answered;
    if let Some(s) = &group.sticky {
        let tls = conn.proto == "https";
        sticky::answer(s, stuck_id, &backend, tls, resp.headers_mut());
    }

    // 7. The response.
    if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
        return tunnel::start(
            client_upgrade,
            resp,
            via,
            in_flight,
            state.timeouts.client_idle,
        );
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
    if group.backend_header {
        parts
            .headers
            .insert(X_SLUICE_BACKEND, backend.header.clone());
    }
    let ok = !parts.status.is_server_error();
    let body = UpstreamBody::new(body, in_flight, state.timeouts.upstream_body, ok);
    let body = compress::apply(accepts, &state.config.compression, &mut parts, body);
    Ok(Response::from_parts(parts, body))
}

/// The path routing sees: a server-wide `OPTIONS *` (RFC 9112 §3.2.4)
/// goes where the host's `/` goes.
fn route_path<'u>(method: &http::Method, uri: &'u http::Uri) -> &'u str {
    match uri.path() {
        "*" if method == http::Method::OPTIONS => "/",
        p => p,
    }
}

/// Request target length and header count against the configured limits,
/// then the host the client asked for: `:authority` on HTTP/2 (or an
/// absolute-form target), else the one Host header (RFC 9112 §3.2: missing
/// or repeated on HTTP/1.1 is a 400). Either must be a valid `host[:port]`
/// without userinfo (RFC 9110 §4.2.4, §7.2), or the request is a 400: what
/// routing reads is what the backend gets (`forward::shape_request`).
fn limits<B>(state: &State, req: &Request<B>) -> Result<Option<HeaderValue>, ProxyError> {
    let limits = &state.limits;
    if req.uri().path_and_query().map_or(0, |p| p.as_str().len()) > limits.max_uri_bytes {
        return Err(ErrorKind::UriTooLong.into());
    }
    if req.headers().len() > limits.max_headers {
        return Err(ErrorKind::HeadersTooLarge.into());
    }
    // RFC 9113 §8.2.1: "A field value MUST NOT start or end with an ASCII
    // whitespace character", or the request is malformed. The h2 crate does
    // not check it; an HTTP/1 backend would read such a value trimmed. (Our
    // HTTP/1 parser trims optional whitespace itself.)
    if req.version() == Version::HTTP_2
        && req.headers().values().any(|v| {
            let b = v.as_bytes();
            let ws = |c: Option<&u8>| matches!(c, Some(b' ' | b'\t'));
            ws(b.first()) || ws(b.last())
        })
    {
        return Err(ProxyError::with_source(
            ErrorKind::BadRequest,
            "field value with leading or trailing whitespace",
        ));
    }
    if let Some(a) = req.uri().authority() {
        let a = HeaderValue::from_str(a.as_str())
            .map_err(|e| ProxyError::with_source(ErrorKind::BadRequest, e))?;
        return valid_host(&a).map(|()| Some(a));
    }
    let mut hosts = req.headers().get_all(header::HOST).iter();
    match (hosts.next(), hosts.next()) {
        (Some(h), None) => valid_host(h).map(|()| Some(h.clone())),
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

/// `uri-host [ ":" port ]` (RFC 3986 §3.2): not empty, no userinfo, and
/// only the characters an authority can hold (no space, no slash). A byte
/// check rather than `http::uri::Authority`, whose parse copies the value:
/// this runs on every request.
fn valid_host(h: &HeaderValue) -> Result<(), ProxyError> {
    let bad = |why: &'static str| Err(ProxyError::with_source(ErrorKind::BadRequest, why));
    let bytes = h.as_bytes();
    if bytes.is_empty() {
        return bad("empty host");
    }
    if bytes.contains(&b'@') {
        return bad("userinfo in the host");
    }
    let allowed = |b: u8| {
        b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
                    | b':'
                    | b'['
                    | b']'
                    | b'%'
            )
    };
    if bytes.iter().all(|&b| allowed(b)) {
        Ok(())
    } else {
        bad("invalid host")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_that_routing_and_backends_can_agree_on() {
        for ok in [
            "a.test",
            "a.test:8080",
            "[::1]:80",
            "10.0.0.1",
            "xn--bcher-kva.example",
        ] {
            assert!(valid_host(&HeaderValue::from_static(ok)).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "a b",
            "a/b@c",
            "user@a.test",
            "a/b",
            "a\tb",
            "a?b",
            "a#b",
            "a\"b",
        ] {
            let v = HeaderValue::from_str(bad).expect("a header value");
            let e = valid_host(&v).expect_err(bad);
            assert_eq!(e.status(), 400, "{bad:?}");
        }
    }
}
