//! Whether a failed attempt may go again, and where: the one place that
//! decides. Errors only carry the facts ([`Retry`]: the request never left,
//! or it may have reached the backend, and nothing of the response came
//! back); `forward` and `upstream::h1` report them and act on what is
//! decided here.
//!
//! Two retries are always on, both safe by construction:
//! - **pick again**: the chosen backend left rotation between the pick and
//!   the request's start, or a connection to it could not be made (the
//!   request never left): one other backend of the group is tried, any method.
//! - **replay on a fresh connection**: a reused HTTP/1.1 connection that the
//!   backend closed just as we sent (the keep-alive race) brought nothing
//!   back; the request goes once more to the same backend when its body is
//!   untouched and either nothing was sent or the method is idempotent.
//!
//! A route with `[route.retry]` also retries a failed try on another backend
//! ([`policy`]): a connect error, a reset before any response byte, a
//! per-try timeout, or a listed status (whose response is dropped unsent).
//! Only methods the route allows, only while the body sent so far is kept
//! ([`super::replay`]), after a jittered backoff ([`backoff`]), and only as
//! the group's [`RetryBudget`] allows. Never once any byte of the response
//! has gone to the client: [`forward`] returns before that.

mod admit;
mod backoff;
pub mod budget;
mod policy;

pub use budget::RetryBudget;
pub use policy::{Outcome, retry_after};

use super::body::Upstream;
use super::forward::{self, Conn};
use crate::balance::PickKey;
use crate::body::ReqBody;
use crate::config::{RetryPolicy, Timeouts, UpstreamProtocol};
use crate::error::{ErrorKind, ProxyError, Retry};
use crate::interim::InterimQueue;
use crate::upstream::backend::InFlight;
use crate::upstream::pool::Pool;
use crate::upstream::{Backend, Group};
use http::{HeaderValue, Method, Request, Response, request};
use std::sync::Arc;

/// RFC 9110 §9.2.2.
pub fn is_idempotent(m: &Method) -> bool {
    matches!(
        *m,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}

/// Whether an exchange that failed on a `reused` connection goes once more
/// on a fresh one. `body_untouched`: not a frame of the request body was
/// taken, so it can be sent again.
pub fn replay_on_fresh_connection(
    reused: bool,
    err: &ProxyError,
    body_untouched: bool,
    method: &Method,
) -> bool {
    reused
        && body_untouched
        && match err.retryable() {
            Retry::NotSent => true,
            Retry::MaybeSent => is_idempotent(method),
            Retry::Never => false,
        }
}

/// Whether a failed checkout lets the request try another backend.
pub fn pick_another_after(err: &ProxyError) -> bool {
    err.retryable() == Retry::NotSent
}

/// Where the request goes: the backend, its in-flight count, and a
/// connection to it ready to carry the request.
pub struct Attempt {
    pub backend: Arc<Backend>,
    pub in_flight: InFlight,
    pub conn: Conn,
}

/// Where the request goes, and what picking again and sending need.
pub struct Target<'a> {
    pub group: &'a Group,
    pub client: crate::addr::ClientAddr,
    pub host: Option<&'a HeaderValue>,
    pub pool: &'a Arc<Pool>,
    pub timeouts: &'a Timeouts,
    /// The client connection's queue for a backend's 1xx.
    pub interim: &'a InterimQueue,
}

/// A backend's response head, the backend, and its in-flight count (which
/// the response body ends).
pub struct Answered {
    pub response: Response<Upstream>,
    pub backend: Arc<Backend>,
    pub in_flight: InFlight,
}

/// Sends the request to `backend` (the first pick) and returns the response
/// head, with retries on another backend when the route's `policy` allows
/// this request any. Passive health hears of every try.
pub async fn forward(
    t: &Target<'_>,
    policy: Option<&RetryPolicy>,
    backend: Arc<Backend>,
    parts: request::Parts,
    body: ReqBody,
) -> Result<Answered, ProxyError> {
    match policy {
        // Boxed: only routes with retries pay for the larger future.
        Some(p) if p.attempts > 1 && policy::allows(p, &parts.method) => {
            Box::pin(policy::retrying(t, p, backend, parts, body)).await
        }
        _ => once(t, backend, None, parts, body).await,
    }
}

/// One try: a connection (picking again once if the request never left),
/// the request, the response head. `avoid`: see [`connect`].
async fn once(
    t: &Target<'_>,
    backend: Arc<Backend>,
    avoid: Option<u64>,
    mut parts: request::Parts,
    body: ReqBody,
) -> Result<Answered, ProxyError> {
    let attempt = connect(t, backend, avoid, &mut parts).await?;
    let backend = attempt.backend;
    let response = forward::send(
        attempt.conn,
        Request::from_parts(parts, body),
        t.pool,
        t.group,
        &backend,
        t.timeouts,
        t.interim,
    )
    .await
    .inspect_err(|e| forward::record_failure(t.group, &backend, e))?;
    forward::record_status(t.group, &backend, response.status());
    Ok(Answered {
        response,
        backend,
        in_flight: attempt.in_flight,
    })
}

/// Starts the request on `backend` (the first pick), picking again once if
/// it left rotation meanwhile or cannot be connected to. `parts` are shaped
/// for whichever backend is chosen (HTTP/2 backends name it in the target).
/// At the group's request limit a full `backend` gives way to another with
/// room, never `avoid` (the backend a retry is moving away from), or the
/// request waits for one in the group's queue.
pub async fn connect(
    t: &Target<'_>,
    backend: Arc<Backend>,
    avoid: Option<u64>,
    parts: &mut request::Parts,
) -> Result<Attempt, ProxyError> {
    let first = backend.id;
    let (mut backend, mut in_flight) = admit::begin(t, backend, parts, avoid).await?;
    if backend.id != first {
        // The first was at the group's request limit: another took it.
        reshape(t, parts, &backend)?;
    }
    if !in_flight.admitted() {
        // Drained between our pick and `begin`: whoever waits for its
        // in-flight requests (DELETE, DNS removal) may not have counted this
        // one, so pick again from the newer snapshot (see `Backend::in_rotation`).
        // Or half-open with its trials taken (`upstream::breaker`): pick
        // again without it (the snapshot still offers it). The pick sees
        // this request still counted (least-conn, p2c).
        let exclude = in_flight.trial_refused().then_some(backend.id);
        let next = pick(t, parts, exclude);
        drop(in_flight);
        let next = next.ok_or(ErrorKind::NoBackend)?;
        (backend, in_flight) = admit::begin(t, next, parts, exclude).await?;
        reshape(t, parts, &backend)?;
    }
    let e = match forward::checkout(t.pool, t.group, &backend, t.timeouts).await {
        Ok(conn) => {
            return Ok(Attempt {
                backend,
                in_flight,
                conn,
            });
        }
        Err(e) => e,
    };
    forward::record_failure(t.group, &backend, &e);
    if !pick_another_after(&e) {
        return Err(e);
    }
    // The pick sees the failed attempt still counted against its backend
    // (least-conn, p2c), which makes another backend likelier.
    let next = pick(t, parts, Some(backend.id));
    drop(in_flight);
    let Some(next) = next else {
        return Err(e);
    };
    // At the group's limit this may wait in its queue; a refusal there is
    // the request's answer (a 503 saying why), an empty group the failure's.
    let (next, in_flight) = match admit::begin(t, next, parts, Some(backend.id)).await {
        Ok(got) => got,
        Err(refused) if refused.kind() == ErrorKind::NoBackend => return Err(e),
        Err(refused) => return Err(refused),
    };
    if !in_flight.admitted() {
        // Drained since the pick (see `Backend::in_rotation`): a drain may
        // already have counted its requests, so do not send one. (Or a
        // half-open backend with its trials taken.)
        return Err(e);
    }
    reshape(t, parts, &next)?;
    let conn = forward::checkout(t.pool, t.group, &next, t.timeouts)
        .await
        .inspect_err(|e| forward::record_failure(t.group, &next, e))?;
    Ok(Attempt {
        backend: next,
        in_flight,
        conn,
    })
}

/// A backend from the group's current snapshot, never `exclude`, keyed by
/// the request as it now stands.
fn pick(t: &Target<'_>, parts: &request::Parts, exclude: Option<u64>) -> Option<Arc<Backend>> {
    let key = PickKey {
        headers: &parts.headers,
        client: t.client,
    };
    t.group.pick(&key, exclude)
}

/// HTTP/2 backends carry the authority in the target, which may name the
/// backend; HTTP/1.1 targets do not depend on which backend is chosen.
fn reshape(
    t: &Target<'_>,
    parts: &mut request::Parts,
    backend: &Backend,
) -> Result<(), ProxyError> {
    if t.group.protocol == UpstreamProtocol::Http1 {
        return Ok(());
    }
    forward::shape_request(parts, t.group, t.host, backend)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idempotent_methods_by_rfc_9110() {
        for m in [
            Method::GET,
            Method::HEAD,
            Method::OPTIONS,
            Method::TRACE,
            Method::PUT,
            Method::DELETE,
        ] {
            assert!(is_idempotent(&m), "{m}");
        }
        for m in [Method::POST, Method::PATCH, Method::CONNECT] {
            assert!(!is_idempotent(&m), "{m}");
        }
    }

    #[test]
    fn replay_needs_a_reused_connection_an_untouched_body_and_safety() {
        let not_sent = ProxyError::new(ErrorKind::UpstreamReset).retry(Retry::NotSent);
        let maybe = ProxyError::new(ErrorKind::UpstreamReset).retry(Retry::MaybeSent);
        let never = ProxyError::new(ErrorKind::UpstreamReset);
        assert!(replay_on_fresh_connection(
            true,
            &not_sent,
            true,
            &Method::POST
        ));
        assert!(replay_on_fresh_connection(true, &maybe, true, &Method::GET));
        assert!(!replay_on_fresh_connection(
            true,
            &maybe,
            true,
            &Method::POST
        ));
        assert!(!replay_on_fresh_connection(
            true,
            &never,
            true,
            &Method::GET
        ));
        assert!(!replay_on_fresh_connection(
            false,
            &not_sent,
            true,
            &Method::GET
        ));
        assert!(!replay_on_fresh_connection(
            true,
            &not_sent,
            false,
            &Method::GET
        ));
    }

    #[test]
    fn only_a_request_that_never_left_picks_another_backend() {
        let e = ProxyError::new(ErrorKind::ConnectFailed).retry(Retry::NotSent);
        assert!(pick_another_after(&e));
        let e = ProxyError::new(ErrorKind::UpstreamTimeout).retry(Retry::MaybeSent);
        assert!(!pick_another_after(&e));
        assert!(!pick_another_after(&ProxyError::new(
            ErrorKind::UpstreamReset
        )));
    }
}
