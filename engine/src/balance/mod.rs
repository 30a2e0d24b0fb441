//! Which backend takes a request. A [`Selector`] is built once per snapshot
//! (off the hot path) from the group's [`Policy`], its eligible backends and
//! their effective weights (below the configured ones while slow start
//! ramps, `upstream::slow_start`); [`Selector::pick`] then only reads
//! atomics and immutable tables: no lock.

mod hash;
mod least_conn;
mod p2c;
mod round_robin;

pub use hash::{HashOn, Ring, stable_hash};

use crate::addr::ClientAddr;
use crate::upstream::backend::Backend;
use http::HeaderMap;
use std::sync::Arc;

/// A balancing policy as configured.
#[derive(Clone, Debug)]
pub enum Policy {
    /// Smooth weighted round robin: weights interleave (a,a,b,a,a,b… not a,a,a,a,b,b).
    RoundRobin,
    /// The backend with the fewest requests in flight.
    LeastConn,
    /// Power of two random choices over requests in flight, latency as tie-break.
    P2c,
    /// Consistent hashing: a key keeps its backend when others come and go.
    Hash(HashOn),
}

/// What a request offers to the balancer.
pub struct PickKey<'a> {
    pub headers: &'a HeaderMap,
    pub client: ClientAddr,
}

/// The policy's tables for one set of backends.
#[derive(Debug)]
pub enum Selector {
    RoundRobin(round_robin::Smooth),
    LeastConn(least_conn::LeastConn),
    /// The effective weights, by backend index.
    P2c(Box<[u32]>),
    /// Requests without a key fall back to round robin.
    Hash(HashOn, Ring, round_robin::Smooth),
}

impl Selector {
    /// The tables for `backends`, whose effective weights are `weights`
    /// (same order) in units of `1/unit` of a configured weight.
    pub fn build(
        policy: &Policy,
        backends: &[Arc<Backend>],
        weights: &[u32],
        unit: u32,
    ) -> Selector {
        debug_assert_eq!(backends.len(), weights.len());
        match policy {
            Policy::RoundRobin => Selector::RoundRobin(round_robin::Smooth::from_weights(weights)),
            Policy::LeastConn => Selector::LeastConn(least_conn::LeastConn::new(weights)),
            Policy::P2c => Selector::P2c(weights.into()),
            Policy::Hash(on) => Selector::Hash(
                on.clone(),
                Ring::new(backends, weights, unit),
                round_robin::Smooth::from_weights(weights),
            ),
        }
    }

    /// An index into `backends`, or `None` when there is none to pick.
    pub fn pick(&self, backends: &[Arc<Backend>], key: &PickKey<'_>) -> Option<usize> {
        if backends.is_empty() {
            return None;
        }
        match self {
            Selector::RoundRobin(rr) => rr.pick(),
            Selector::LeastConn(lc) => Some(lc.pick(backends)),
            Selector::P2c(weights) => Some(p2c::pick(backends, weights)),
            Selector::Hash(on, ring, rr) => match on.key_hash(key) {
                Some(h) => ring.pick(h),
                None => rr.pick(),
            },
        }
    }

    /// [`Selector::pick`] among the backends `ok` accepts (those below the
    /// group's request limit, `upstream::queue`), or `None` when it accepts
    /// none. Round robin and p2c take their choice, or else the next
    /// accepted backend after it; least-conn scans the accepted ones; a
    /// hashed key goes clockwise on the ring to the first accepted backend
    /// (consistent hashing with bounded loads, as HAProxy's
    /// `hash-balance-factor`): a key whose backend is full spills to the
    /// same successors each time, and returns when it has room. O(n) at
    /// worst, only when the first choice is refused.
    pub fn pick_where(
        &self,
        backends: &[Arc<Backend>],
        key: &PickKey<'_>,
        ok: impl Fn(&Backend) -> bool,
    ) -> Option<usize> {
        if backends.is_empty() {
            return None;
        }
        let first = match self {
            Selector::RoundRobin(rr) => rr.pick()?,
            Selector::LeastConn(lc) => return lc.pick_where(backends, ok),
            Selector::P2c(weights) => p2c::pick(backends, weights),
            Selector::Hash(on, ring, rr) => match on.key_hash(key) {
                Some(h) => return ring.pick_where(h, backends, ok),
                None => rr.pick()?,
            },
        };
        next_where(backends, first, ok)
    }
}

/// The first backend from `start` on (wrapping) that `ok` accepts.
fn next_where(
    backends: &[Arc<Backend>],
    start: usize,
    ok: impl Fn(&Backend) -> bool,
) -> Option<usize> {
    let n = backends.len();
    (0..n).map(|k| (start + k) % n).find(|&i| ok(&backends[i]))
}
