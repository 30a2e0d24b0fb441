//! Whether a failed attempt may go again, and where: the one place that
//! decides. Errors only carry the facts ([`Retry`]: the request never left,
//! or it may have reached the backend, and nothing of the response came
//! back); `forward` and `upstream::h1` report them and act on what is
//! decided here.
//!
//! Two retries are always on, both safe by construction:
//! - **pick again**: the chosen backend refused the request at its start
//!   (it left rotation since the pick, or it is half-open with its trials
//!   taken: another that admits it is picked, and with none a 503, never a
//!   send past the refusal), or a connection to it could not be made (the
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
use crate::observe::Trail;
use crate::upstream::backend::InFlight;
use crate::upstream::pool::Pool;
use crate::upstream::proxy_header::Header;
use crate::upstream::{Backend, Group};
use http::{HeaderValue, Method, Request, Response, request};
use std::sync::Arc;
use tokio::time::Instant;

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
    /// The address the client connected to (a PROXY header's destination).
    pub server: std::net::SocketAddr,
    pub host: Option<&'a HeaderValue>,
    pub pool: &'a Arc<Pool>,
    pub timeouts: &'a Timeouts,
    /// The client connection's queue for a backend's 1xx.
    pub interim: &'a InterimQueue,
    /// The request's record: each try's backend and times.
    pub trail: &'a Trail,
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

/// One try: a backend's admission, a connection (picking again once if
/// the request never left), the request, the response head. `avoid`: see
/// [`admission`].
async fn once(
    t: &Target<'_>,
    backend: Arc<Backend>,
    avoid: Option<u64>,
    mut parts: request::Parts,
    body: ReqBody,
) -> Result<Answered, ProxyError> {
    let in_flight = admission(t, backend, avoid, &mut parts).await?;
    admitted(t, in_flight, parts, body).await
}

/// A try admitted on its backend: the connection, the request, the
/// response head.
async fn admitted(
    t: &Target<'_>,
    in_flight: InFlight,
    mut parts: request::Parts,
    body: ReqBody,
) -> Result<Answered, ProxyError> {
    let start = Instant::now();
    t.trail.begin_try(in_flight.backend());
    let attempt = connect(t, in_flight, &mut parts).await?;
    let backend = attempt.backend;
    t.trail.set_backend(&backend);
    let sent = Instant::now();
    t.trail.connected(sent - start);
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
    t.trail.answered(sent.elapsed());
    forward::record_status(t.group, &backend, response.status());
    Ok(Answered {
        response,
        backend,
        in_flight: attempt.in_flight,
    })
}

/// The request counted in flight on `backend` (the first pick), or on
/// another when it refuses the request ([`admit`]). At the group's request
/// limit a full `backend` gives way to another with room, or the request
/// waits for one in the group's queue; `avoid` (the backend a retry is
/// moving away from) is taken there only when no other has room. `parts`
/// are shaped for whichever backend is chosen (HTTP/2 backends name it in
/// the target).
pub async fn admission(
    t: &Target<'_>,
    backend: Arc<Backend>,
    avoid: Option<u64>,
    parts: &mut request::Parts,
) -> Result<InFlight, ProxyError> {
    let first = backend.id;
    let in_flight = match &t.group.limit {
        None => admit(backend, |refused| pick(t, parts, refused))?,
        Some(limit) => admit::limited(t, limit, backend, parts, avoid).await?,
    };
    if in_flight.backend().id != first {
        reshape(t, parts, in_flight.backend())?;
    }
    Ok(in_flight)
}

/// A connection to the admitted backend, picking again once if it cannot
/// be connected to.
pub async fn connect(
    t: &Target<'_>,
    in_flight: InFlight,
    parts: &mut request::Parts,
) -> Result<Attempt, ProxyError> {
    let backend = in_flight.backend().clone();
    let proxy = t
        .group
        .proxy_protocol
        .map(|v| Header::proxied(v, t.client.0, t.server));
    let e = match forward::checkout(t.pool, t.group, &backend, t.timeouts, proxy.as_ref()).await {
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
    let next = pick(t, parts, &[backend.id]);
    drop(in_flight);
    let Some(next) = next else {
        return Err(e);
    };
    // At the group's limit this may wait in its queue; a refusal there is
    // the request's answer (a 503 saying why), an empty group the failure's.
    let in_flight = match &t.group.limit {
        None => next.begin(),
        Some(limit) => match admit::limited(t, limit, next, parts, Some(backend.id)).await {
            Ok(in_flight) => in_flight,
            Err(refused) if refused.kind() == ErrorKind::NoBackend => return Err(e),
            Err(refused) => return Err(refused),
        },
    };
    let next = in_flight.backend().clone();
    if !in_flight.admitted() {
        // Drained since the pick (see `Backend::in_rotation`): a drain may
        // already have counted its requests, so do not send one. (Or a
        // half-open backend with its trials taken.)
        return Err(e);
    }
    reshape(t, parts, &next)?;
    let conn = forward::checkout(t.pool, t.group, &next, t.timeouts, proxy.as_ref())
        .await
        .inspect_err(|e| forward::record_failure(t.group, &next, e))?;
    Ok(Attempt {
        backend: next,
        in_flight,
        conn,
    })
}

/// Backends refused in a row before a request is a 503 (see [`admit`]).
const MAX_REFUSED: usize = 3;

/// The request counted in flight on `backend` (the first pick) if it
/// admits it, else on another that `pick` offers without those that
/// refused. A backend refuses when it left rotation between the pick and
/// `begin` (whoever waits for its in-flight requests, a drain or DNS
/// removal, may not have counted this one: see `Backend::in_rotation`) or
/// when it is half-open with its trials taken (`upstream::breaker`). The
/// picks skip what is out of rotation or full, so a refusal here is a race
/// lost; after [`MAX_REFUSED`] in a row, or when nothing else can take the
/// request, a 503: never a request sent past a drain or a trial cap.
fn admit(
    backend: Arc<Backend>,
    mut pick: impl FnMut(&[u64]) -> Option<Arc<Backend>>,
) -> Result<InFlight, ProxyError> {
    let mut in_flight = backend.begin();
    let mut refused = [0; MAX_REFUSED];
    let mut n = 0;
    while !in_flight.admitted() {
        if n == MAX_REFUSED {
            return Err(ErrorKind::NoBackend.into());
        }
        refused[n] = in_flight.backend().id;
        n += 1;
        // The pick sees this request still counted (least-conn, p2c).
        let next = pick(&refused[..n]);
        drop(in_flight);
        in_flight = next.ok_or(ErrorKind::NoBackend)?.begin();
    }
    Ok(in_flight)
}

/// A backend from the group's current snapshot, never one of `exclude`,
/// keyed by the request as it now stands.
fn pick(t: &Target<'_>, parts: &request::Parts, exclude: &[u64]) -> Option<Arc<Backend>> {
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

    /// Finding 7 of issue 15: a second backend that refuses too was sent
    /// the request anyway (past a drain that may not count it, or past a
    /// trial cap). Now the next one is tried, and with none a 503.
    #[test]
    fn a_request_refused_again_is_never_sent_past_the_refusal() {
        use crate::upstream::backend::test_backends;
        let b = test_backends(&[1, 1, 1]);
        b[0].set_in_rotation(false);
        b[1].set_in_rotation(false);
        // Drained, then drained too, then nothing: a 503, not a send.
        let mut list = vec![b[1].clone()].into_iter();
        let e = admit(b[0].clone(), |_| list.next()).expect_err("refused twice");
        assert_eq!(e.kind(), ErrorKind::NoBackend);
        // Drained, drained, then one that takes it.
        let mut seen = Vec::new();
        let mut list = vec![b[1].clone(), b[2].clone()].into_iter();
        let in_flight = admit(b[0].clone(), |refused| {
            seen.push(refused.to_vec());
            list.next()
        })
        .expect("the third admits it");
        assert_eq!(in_flight.backend().id, b[2].id);
        assert_eq!(seen, vec![vec![b[0].id], vec![b[0].id, b[1].id]]);
        assert_eq!(b[0].in_flight() + b[1].in_flight(), 0, "refusals end");
        // Refused every time: bounded.
        let mut picks = 0;
        let e = admit(b[0].clone(), |_| {
            picks += 1;
            Some(b[1].clone())
        })
        .expect_err("never admitted");
        assert_eq!(e.kind(), ErrorKind::NoBackend);
        assert_eq!(picks, MAX_REFUSED);
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
