//! Picking a backend from a [`Snapshot`]: the policy's choice among the
//! closed backends, trials for the half-open ones, and picking again
//! without a backend that refused or failed the request.
//!
//! Half-open backends take bounded trials (`upstream::breaker`). Under a
//! hash policy a half-open backend stays on the ring and only the keys it
//! owns try it, while it has room; its other keys, and every key it does
//! not own, go on round the ring to the next closed backend, where they
//! would go without it. Under the other policies (and for a request without
//! the hash key) any request is offered the first half-open backend with
//! room: such requests have no owner to respect.
//!
//! A pick that excludes backends (`exclude` non-empty: picking again)
//! also skips the ones a snapshot not yet republished still offers but
//! that left rotation (`Backend::in_rotation`), so it finds one that can
//! take the request when there is one. The first pick does not look: a
//! refused request picks again (`proxy::retry::connect`).

use super::Snapshot;
use crate::balance::{PickKey, Ring};
use crate::upstream::backend::Backend;
use std::sync::Arc;

impl Snapshot {
    /// A backend for `key`, never one of `exclude`; `None` when no backend
    /// of this snapshot can take it.
    #[inline]
    pub fn pick(&self, key: &PickKey<'_>, exclude: &[u64]) -> Option<&Arc<Backend>> {
        self.pick_in(key, exclude, None)
    }

    /// [`Snapshot::pick`] in a group whose backends take at most `limit`
    /// requests (`upstream::queue`): the same choice among the backends
    /// below it (a hashed key goes on round the ring to the first with room:
    /// consistent hashing with bounded loads, as HAProxy's
    /// `hash-balance-factor`). When every one is full, one of them anyway,
    /// so that the caller's `Backend::try_begin` fails and the request
    /// queues: `None` still means no backend can take it at all.
    #[cold]
    pub fn pick_limited(
        &self,
        key: &PickKey<'_>,
        exclude: &[u64],
        limit: u32,
    ) -> Option<&Arc<Backend>> {
        self.pick_in(key, exclude, Some(limit)).or_else(|| {
            self.backends
                .iter()
                .find(|b| allowed(b, exclude))
                .or_else(|| trial(&self.half_open, exclude, None))
        })
    }

    /// The pick, with `limit` (requests in flight per backend) when the
    /// group has one; `pick` passes `None` and the checks fold away.
    #[inline]
    fn pick_in(
        &self,
        key: &PickKey<'_>,
        exclude: &[u64],
        limit: Option<u32>,
    ) -> Option<&Arc<Backend>> {
        if let Some((ring, hash)) = self.selector.keyed(key) {
            return self.on_ring(ring, hash, exclude, limit);
        }
        if !self.half_open.is_empty()
            && let Some(b) = trial(&self.half_open, exclude, limit)
        {
            return Some(b);
        }
        let i = if exclude.is_empty() && limit.is_none() {
            self.selector.pick(&self.backends)?
        } else {
            self.selector.pick_where(&self.backends, |b| {
                allowed(b, exclude) && has_room(b, limit)
            })?
        };
        self.backends.get(i)
    }

    /// The key's owner on the ring, or the next closed backend round it
    /// that can take the request. The ring's indices past the closed
    /// backends are the half-open ones (`Selector::build`). O(1) but for a
    /// refused, full or half-open owner, then as far round as the next
    /// allowed backend (the whole ring at worst, only when none is allowed).
    fn on_ring(
        &self,
        ring: &Ring,
        hash: u64,
        exclude: &[u64],
        limit: Option<u32>,
    ) -> Option<&Arc<Backend>> {
        let mut owners = ring.owners(hash);
        let owner = owners.next()?;
        match self.backends.get(owner) {
            Some(b)
                if (exclude.is_empty() && limit.is_none())
                    || (allowed(b, exclude) && has_room(b, limit)) =>
            {
                return Some(b);
            }
            Some(_) => {}
            None => {
                let b = self.half_open.get(owner - self.backends.len())?;
                if !exclude.contains(&b.id) && b.trial_room() && has_room(b, limit) {
                    return Some(b);
                }
            }
        }
        if self.backends.is_empty() {
            return None;
        }
        // Half-open backends met further round do not own this key: never
        // a trial for it.
        owners
            .filter_map(|i| self.backends.get(i))
            .find(|b| allowed(b, exclude) && has_room(b, limit))
    }
}

/// Whether `b` is below the group's request limit, if it has one.
#[inline]
fn has_room(b: &Backend, limit: Option<u32>) -> bool {
    limit.is_none_or(|l| b.has_room(l))
}

/// Whether picking again may choose `b`: not excluded, and still in
/// rotation (the snapshot may be a publish behind a drain or an ejection).
fn allowed(b: &Backend, exclude: &[u64]) -> bool {
    !exclude.contains(&b.id) && b.in_rotation()
}

/// The first half-open backend with room for a trial (and below `limit`),
/// never one of `exclude`.
#[cold]
fn trial<'a>(
    half_open: &'a [Arc<Backend>],
    exclude: &[u64],
    limit: Option<u32>,
) -> Option<&'a Arc<Backend>> {
    half_open
        .iter()
        .find(|b| !exclude.contains(&b.id) && b.trial_room() && has_room(b, limit))
}
