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
    /// (same order) in units of `1/unit` of a configured weight. A hash
    /// ring also holds the `half_open` backends, after the closed ones and
    /// at their full weight: the keys they own are theirs to try, and go on
    /// round the ring when they have no room (`upstream::snapshot::pick`).
    pub fn build(
        policy: &Policy,
        backends: &[Arc<Backend>],
        weights: &[u32],
        unit: u32,
        half_open: &[Arc<Backend>],
    ) -> Selector {
        debug_assert_eq!(backends.len(), weights.len());
        match policy {
            Policy::RoundRobin => Selector::RoundRobin(round_robin::Smooth::from_weights(weights)),
            Policy::LeastConn => Selector::LeastConn(least_conn::LeastConn::new(weights)),
            Policy::P2c => Selector::P2c(weights.into()),
            Policy::Hash(on) => {
                let ring = if half_open.is_empty() {
                    Ring::new(backends, weights, unit)
                } else {
                    let all: Vec<Arc<Backend>> =
                        backends.iter().chain(half_open).cloned().collect();
                    let full = half_open
                        .iter()
                        .map(|b| b.weight.saturating_mul(unit.max(1)));
                    let w: Vec<u32> = weights.iter().copied().chain(full).collect();
                    Ring::new(&all, &w, unit)
                };
                Selector::Hash(on.clone(), ring, round_robin::Smooth::from_weights(weights))
            }
        }
    }

    /// The ring and the key's hash, under a hash policy for a request that
    /// has the key: such a pick walks the ring (`upstream::snapshot::pick`).
    pub fn keyed(&self, key: &PickKey<'_>) -> Option<(&Ring, u64)> {
        match self {
            Selector::Hash(on, ring, _) => on.key_hash(key).map(|h| (ring, h)),
            _ => None,
        }
    }

    /// An index into `backends`, or `None` when there is none to pick.
    /// A keyed pick under a hash policy is [`Selector::keyed`]'s; here a
    /// request without the key goes round robin.
    pub fn pick(&self, backends: &[Arc<Backend>]) -> Option<usize> {
        if backends.is_empty() {
            return None;
        }
        match self {
            Selector::RoundRobin(rr) | Selector::Hash(_, _, rr) => rr.pick(),
            Selector::LeastConn(lc) => lc.pick_where(backends, |_| true),
            Selector::P2c(weights) => Some(p2c::pick(backends, weights)),
        }
    }

    /// Like [`Selector::pick`], among the backends `ok` allows only: the
    /// policy's choice among them where it can make one cheaply, else the
    /// first allowed after a random start. For picking again (a backend
    /// refused the request, or failed it), off the common path: O(n) at
    /// worst. `None` when `ok` allows none.
    pub fn pick_where(
        &self,
        backends: &[Arc<Backend>],
        ok: impl Fn(&Backend) -> bool,
    ) -> Option<usize> {
        let found = match self {
            // The turn moves on with each pick, so a few picks usually
            // reach another backend; a heavy excluded one may hold them all.
            Selector::RoundRobin(rr) | Selector::Hash(_, _, rr) => (0..ROUND_ROBIN_TRIES)
                .filter_map(|_| rr.pick())
                .find(|&i| ok(&backends[i])),
            Selector::LeastConn(lc) => return lc.pick_where(backends, ok),
            Selector::P2c(weights) => p2c::pick_where(backends, weights, &ok),
        };
        found.or_else(|| first_allowed(backends, ok))
    }
}

/// Round-robin turns [`Selector::pick_where`] takes before it scans.
const ROUND_ROBIN_TRIES: usize = 3;

/// The first backend `ok` allows, from a random start (so that the load of
/// picking again spreads over the others).
fn first_allowed(backends: &[Arc<Backend>], ok: impl Fn(&Backend) -> bool) -> Option<usize> {
    let n = backends.len();
    if n == 0 {
        return None;
    }
    let start = fastrand::usize(..n);
    (0..n).map(|k| (start + k) % n).find(|&i| ok(&backends[i]))
}
