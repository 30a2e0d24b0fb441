//! A try's admission to a backend: counted in flight on it, within the
//! group's request limit if it has one. Every try goes through here (the
//! first, picking again, and `[route.retry]`'s), so none can pass the limit.
//! Without a limit it is [`super::admit`]; with one, a
//! full backend sends the request to another with room, or into the
//! group's queue when every one is full (`upstream::queue`).

use super::{MAX_REFUSED, Target, pick};
use crate::error::{ErrorKind, ProxyError};
use crate::upstream::Backend;
use crate::upstream::backend::InFlight;
use crate::upstream::queue::Limit;
use http::request;
use std::sync::Arc;

/// The request counted in flight on `backend`, or, at the group's limit, on
/// another backend with room (never `avoid`, the backend a retry moves
/// away from), waiting in the queue while there is none; then, as
/// [`super::admit`] does without a limit, picking again (without the
/// refusers) while the backend refuses it for the drain or the breaker,
/// [`MAX_REFUSED`] times at most.
pub(super) async fn limited(
    t: &Target<'_>,
    limit: &Limit,
    backend: Arc<Backend>,
    parts: &request::Parts,
    avoid: Option<u64>,
) -> Result<InFlight, ProxyError> {
    let mut exclude = [0; MAX_REFUSED + 1];
    let mut n = 0;
    if let Some(a) = avoid {
        exclude[0] = a;
        n = 1;
    }
    let mut in_flight = start(t, limit, backend, parts, &exclude[..n]).await?;
    let mut refusals = 0;
    while !in_flight.admitted() {
        if refusals == MAX_REFUSED {
            return Err(ErrorKind::NoBackend.into());
        }
        refusals += 1;
        exclude[n] = in_flight.backend().id;
        n += 1;
        // The pick sees this request still counted (least-conn, p2c).
        let next = pick(t, parts, &exclude[..n]);
        drop(in_flight);
        let next = next.ok_or(ErrorKind::NoBackend)?;
        in_flight = start(t, limit, next, parts, &exclude[..n]).await?;
    }
    Ok(in_flight)
}

/// One slot: on `backend` if it has room and nobody waits, else through
/// the queue. The guard still has to be checked for the drain and the
/// breaker (`InFlight::admitted`).
#[inline]
async fn start(
    t: &Target<'_>,
    limit: &Limit,
    backend: Arc<Backend>,
    parts: &request::Parts,
    exclude: &[u64],
) -> Result<InFlight, ProxyError> {
    // While others wait, a slot is theirs first: join the queue behind them.
    if !limit.queue.has_waiters()
        && let Some(in_flight) = backend.try_begin(limit.per_backend, &limit.queue)
    {
        return Ok(in_flight);
    }
    Box::pin(queued(t, limit, parts, exclude)).await
}

/// The backend the pick offered was full, or others wait: wait for a slot (boxed: only
/// requests that queue pay for this future).
async fn queued(
    t: &Target<'_>,
    limit: &Limit,
    parts: &request::Parts,
    exclude: &[u64],
) -> Result<InFlight, ProxyError> {
    // A waiter that avoids backends passes on a wakeup it cannot use (the
    // slot may be on a backend it avoids), so it never holds up the queue.
    let got = limit
        .queue
        .admit(!exclude.is_empty(), || {
            let b = pick(t, parts, exclude).ok_or(ErrorKind::NoBackend)?;
            Ok(b.try_begin(limit.per_backend, &limit.queue))
        })
        .await;
    if let Err(e) = &got
        && e.kind() != ErrorKind::NoBackend
    {
        let stats = limit.queue.stats();
        tracing::warn!(group = %t.group.name, error = %e, queued = stats.queued, limit = limit.per_backend, "refused: every backend at its request limit");
    }
    got
}
