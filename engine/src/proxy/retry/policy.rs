//! A route's `[route.retry]`: a failed try goes again on another backend,
//! as far as the route's policy, the body kept and the group's budget allow.

use super::{Answered, Target, admission, admitted, backoff, is_idempotent, once, pick, reshape};
use crate::body::{BackendClock, Phase, ReqBody};
use crate::config::{RetryMethods, RetryPolicy};
use crate::error::{ErrorKind, ProxyError, Retry, Side};
use crate::proxy::forward;
use crate::proxy::replay::Replay;
use crate::upstream::Backend;
use http::{Method, Request, StatusCode, request};
use std::future::{Future, poll_fn};
use std::pin::pin;
use std::sync::Arc;
use std::task::{Poll, ready};

/// Whether the route may send a request with this method twice.
pub(super) fn allows(p: &RetryPolicy, method: &Method) -> bool {
    match &p.methods {
        RetryMethods::Idempotent => is_idempotent(method),
        RetryMethods::Listed(list) => list.contains(method),
        RetryMethods::All => true,
    }
}

/// How a try ended, as the decision sees it.
#[derive(Clone, Copy, Debug)]
pub enum Outcome<'a> {
    /// A response head; nothing of it has gone to the client yet.
    Status(StatusCode),
    Failed(&'a ProxyError),
}

/// Whether a try that ended so, the `tried`-th, goes again (the budget
/// aside). `replayable`: the body sent so far can be sent again.
pub fn retry_after(p: &RetryPolicy, tried: u32, outcome: Outcome<'_>, replayable: bool) -> bool {
    tried < p.attempts
        && replayable
        && match outcome {
            Outcome::Status(s) => p.statuses.contains(&s.as_u16()),
            // The backend's doing, and nothing of its answer came back
            // (`Never` is a response begun, or a client that failed).
            Outcome::Failed(e) => {
                e.side() == Side::Upstream
                    && e.kind() != ErrorKind::NoBackend
                    && e.retryable() != Retry::Never
            }
        }
}

/// Tries `backend`, then others, as `p` allows. The body is kept as it is
/// sent ([`Replay`]), each try reads it from the start.
pub(super) async fn retrying(
    t: &Target<'_>,
    p: &RetryPolicy,
    mut backend: Arc<Backend>,
    parts: request::Parts,
    body: ReqBody,
) -> Result<Answered, ProxyError> {
    let budget = &t.group.retry_budget;
    budget.deposit();
    let replay =
        (!http_body::Body::is_end_stream(&body)).then(|| Replay::new(body, p.replay_buffer));
    let mut tried = 1;
    // The backend the last try failed on: a retry's admission never moves
    // to it when the one picked is at the group's limit (`retry::connect`).
    let mut avoid = None;
    loop {
        let body = replay.as_ref().map_or(ReqBody::Empty, Replay::body);
        let outcome = attempt(t, p, &backend, avoid, copy(&parts), body).await;
        let (went_to, decision) = match &outcome {
            Ok(a) => (&a.backend, Outcome::Status(a.response.status())),
            Err(e) => (&backend, Outcome::Failed(e)),
        };
        let replayable = replay.as_ref().is_none_or(Replay::replayable);
        if !retry_after(p, tried, decision, replayable) {
            if !replayable && retry_after(p, tried, decision, true) {
                // Not retried only because the body cannot go again.
                return given_up(outcome, replay.as_ref());
            }
            return outcome;
        }
        // Put back if the retry is not sent (see `budget`).
        let Some(withdrawal) = budget.withdraw() else {
            tracing::warn!(group = %t.group.name, backend = %went_to.addr, tried, "retry budget exhausted: not retrying");
            return outcome;
        };
        let Some(next) = pick_other(t, &parts, went_to.id) else {
            return outcome;
        };
        match &outcome {
            Ok(a) => {
                tracing::info!(group = %t.group.name, backend = %went_to.addr, status = a.response.status().as_u16(), tried, "retrying on another backend")
            }
            Err(e) => {
                tracing::info!(group = %t.group.name, backend = %went_to.addr, error = %e, tried, "retrying on another backend")
            }
        }
        // The try is over: its body stops reading the client's now, not
        // after the backoff (hyper's HTTP/2 client pipes it on a task of its
        // own, which could otherwise spoil the kept body meanwhile).
        if let Some(r) = &replay {
            r.retire();
        }
        tokio::time::sleep(backoff::delay(tried, p.backoff_base, p.backoff_max)).await;
        if !replay.as_ref().is_none_or(Replay::replayable) {
            return given_up(outcome, replay.as_ref());
        }
        // A retried response is dropped here, unsent (its connection closes).
        avoid = (next.id != went_to.id).then_some(went_to.id);
        drop(outcome);
        withdrawal.spend();
        backend = next;
        tried += 1;
    }
}

/// The answer when a retry was wanted but the body cannot go again: the
/// client's own error if its body failed (its 413 or 408, say: the
/// backend's answer was to be retried, and the client is why it is not),
/// else the last try's outcome (the body outgrew the replay buffer).
fn given_up(
    outcome: Result<Answered, ProxyError>,
    replay: Option<&Replay>,
) -> Result<Answered, ProxyError> {
    match replay.and_then(Replay::client_failed) {
        Some(kind) => Err(ProxyError::new(kind)),
        None => outcome,
    }
}

/// One try, within the per-try timeout if there is one. That timeout is
/// the backend's: it runs on the backend's clock only ([`BackendClock`]:
/// never while the try waits on the client's upload, whose pace is the
/// client's own limits' business), so a slow uploader never makes a healthy
/// backend look slow.
async fn attempt(
    t: &Target<'_>,
    p: &RetryPolicy,
    backend: &Arc<Backend>,
    avoid: Option<u64>,
    mut parts: request::Parts,
    mut body: ReqBody,
) -> Result<Answered, ProxyError> {
    // HTTP/2 targets name their backend.
    reshape(t, &mut parts, backend)?;
    let Some(limit) = p.per_try_timeout else {
        return once(t, backend.clone(), avoid, parts, body).await;
    };
    // Admitted first: a wait in the group's queue is no backend's time (it
    // has its own bound, `queue_timeout`, and its own 503).
    let in_flight = admission(t, backend.clone(), avoid, &mut parts).await?;
    let backend = in_flight.backend().clone();
    // The body's phase (one small allocation, kept across tries, for a
    // route with a per-try timeout and a body); none: always the backend's.
    let progress = body.progress();
    let mut answer = pin!(admitted(t, in_flight, parts, body));
    let mut clock = pin!(BackendClock::total(limit));
    let timed = poll_fn(|cx| {
        if let Poll::Ready(r) = answer.as_mut().poll(cx) {
            return Poll::Ready(Ok(r));
        }
        // Read after the try's poll (which may have moved it, on this
        // task); a change made later wakes us (`Progress::phase`).
        let phase = progress.as_deref().map_or(Phase::Sent, |p| p.phase(cx));
        ready!(clock.as_mut().poll_expired(phase, cx));
        Poll::Ready(Err(()))
    })
    .await;
    match timed {
        Ok(answer) => answer,
        Err(()) => {
            // Ended before any response byte: the try may have reached
            // the backend, as a reset would.
            let e = ProxyError::with_source(ErrorKind::UpstreamTimeout, "per-try timeout")
                .retry(Retry::MaybeSent);
            forward::record_failure(t.group, &backend, &e);
            Err(e)
        }
    }
}

/// Another backend than `failed` when the group has one (the pick finds
/// one when any other can take the request), else `failed` itself again.
fn pick_other(t: &Target<'_>, parts: &request::Parts, failed: u64) -> Option<Arc<Backend>> {
    pick(t, parts, &[failed]).or_else(|| pick(t, parts, &[]))
}

/// The request head again, for one try (its extensions are not needed
/// past routing: an upgrade is never retried).
fn copy(parts: &request::Parts) -> request::Parts {
    let (mut copy, ()) = Request::new(()).into_parts();
    copy.method = parts.method.clone();
    copy.uri = parts.uri.clone();
    copy.version = parts.version;
    copy.headers = parts.headers.clone();
    copy
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            attempts: 3,
            ..RetryPolicy::default()
        }
    }

    #[test]
    fn idempotent_methods_by_default_else_as_configured() {
        let mut p = policy();
        assert!(allows(&p, &Method::GET) && allows(&p, &Method::PUT));
        assert!(!allows(&p, &Method::POST));
        p.methods = RetryMethods::Listed(vec![Method::POST]);
        assert!(allows(&p, &Method::POST) && !allows(&p, &Method::GET));
        p.methods = RetryMethods::All;
        assert!(allows(&p, &Method::PATCH));
    }

    /// Issue 15, finding 13: a retry given up because the client's body
    /// failed answered with the last backend's answer; the client's own
    /// failure (a 413 here) is the answer. A body past the replay buffer
    /// still gets the backend's.
    #[tokio::test]
    async fn a_retry_given_up_for_the_clients_body_answers_with_the_clients_error() {
        use crate::http1::Framing;
        use crate::http1::decode::{BodyError, Decoder};
        use bytes::Bytes;
        use http_body::{Body, Frame};
        let source = || {
            crate::http1::body::channel(Decoder::new(Framing::Chunked, 1 << 20)).expect("a body")
        };
        let backend = || Err(ProxyError::new(ErrorKind::UpstreamReset).retry(Retry::MaybeSent));
        let read = |r: &Replay| {
            let mut body = r.body();
            async move {
                while let Some(Ok(_)) =
                    std::future::poll_fn(|cx| std::pin::Pin::new(&mut body).poll_frame(cx)).await
                {
                }
            }
        };

        let (mut tx, rx) = source();
        let replay = Replay::new(ReqBody::H1(rx), 1024);
        tx.send(Ok(Frame::data(Bytes::from_static(b"abc"))));
        tx.send(Err(BodyError::TooLarge));
        read(&replay).await;
        let e = given_up(backend(), Some(&replay)).err().expect("an error");
        assert_eq!(e.kind(), ErrorKind::BodyTooLarge);

        let (mut tx, rx) = source();
        let replay = Replay::new(ReqBody::H1(rx), 2);
        tx.send(Ok(Frame::data(Bytes::from_static(b"abc"))));
        tx.finish();
        read(&replay).await;
        assert!(!replay.replayable());
        let e = given_up(backend(), Some(&replay)).err().expect("an error");
        assert_eq!(
            e.kind(),
            ErrorKind::UpstreamReset,
            "the buffer's limit, not the client"
        );
    }

    #[test]
    fn listed_statuses_and_upstream_failures_go_again_while_tries_remain() {
        let p = policy();
        let s503 = Outcome::Status(StatusCode::SERVICE_UNAVAILABLE);
        assert!(retry_after(&p, 1, s503, true));
        assert!(retry_after(&p, 2, s503, true));
        assert!(!retry_after(&p, 3, s503, true), "out of tries");
        assert!(!retry_after(&p, 1, s503, false), "body not kept");
        assert!(!retry_after(
            &p,
            1,
            Outcome::Status(StatusCode::INTERNAL_SERVER_ERROR),
            true
        ));
        assert!(!retry_after(&p, 1, Outcome::Status(StatusCode::OK), true));

        let reset = ProxyError::new(ErrorKind::UpstreamReset).retry(Retry::MaybeSent);
        let refused = ProxyError::new(ErrorKind::ConnectFailed).retry(Retry::NotSent);
        assert!(retry_after(&p, 1, Outcome::Failed(&reset), true));
        assert!(retry_after(&p, 1, Outcome::Failed(&refused), true));
        // A response that began, a client that failed, an empty group: never.
        let begun = ProxyError::new(ErrorKind::UpstreamProtocol);
        let client = ProxyError::new(ErrorKind::ClientAborted).retry(Retry::MaybeSent);
        let empty = ProxyError::new(ErrorKind::NoBackend).retry(Retry::NotSent);
        for e in [&begun, &client, &empty] {
            assert!(!retry_after(&p, 1, Outcome::Failed(e), true), "{e}");
        }
    }
}
