//! A try's admission to a backend: counted in flight on it, within the
//! group's request limit if it has one. Every try goes through here (the
//! first, picking again, and `[route.retry]`'s), so none can pass the limit.
//! Without a limit it is `Backend::begin` behind one branch; with one, a
//! full backend sends the request to another with room, or into the
//! group's queue when every one is full (`upstream::queue`).

use super::{Target, pick};
use crate::error::{ErrorKind, ProxyError};
use crate::upstream::Backend;
use crate::upstream::backend::InFlight;
use crate::upstream::queue::Limit;
use http::request;
use std::sync::Arc;

/// Counts the request in flight on `backend`, or, at the group's limit, on
/// another backend with room (never `exclude`), waiting in the queue while
/// there is none. The guard still has to be checked for the drain and the
/// breaker (`InFlight::admitted`).
#[inline]
pub(super) async fn begin(
    t: &Target<'_>,
    backend: Arc<Backend>,
    parts: &request::Parts,
    exclude: Option<u64>,
) -> Result<(Arc<Backend>, InFlight), ProxyError> {
    let Some(limit) = &t.group.limit else {
        let in_flight = backend.begin();
        return Ok((backend, in_flight));
    };
    // While others wait, a slot is theirs first: join the queue behind them.
    if !limit.queue.has_waiters()
        && let Some(in_flight) = backend.try_begin(limit.per_backend, &limit.queue)
    {
        return Ok((backend, in_flight));
    }
    Box::pin(queued(t, limit, parts, exclude)).await
}

/// The backend the pick offered was full, or others wait: wait for a slot (boxed: only
/// requests that queue pay for this future).
async fn queued(
    t: &Target<'_>,
    limit: &Limit,
    parts: &request::Parts,
    exclude: Option<u64>,
) -> Result<(Arc<Backend>, InFlight), ProxyError> {
    let got = limit
        .queue
        .admit(|| {
            let b = pick(t, parts, exclude).ok_or(ErrorKind::NoBackend)?;
            Ok(b.try_begin(limit.per_backend, &limit.queue)
                .map(|in_flight| (b, in_flight)))
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
