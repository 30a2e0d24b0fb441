//! One backend: its address and weight, plus counters that live as long as the
//! backend does, across snapshot rebuilds (the snapshot holds `Arc<Backend>`).
//!
//! # Concurrency
//! Every request task of every worker thread reads and bumps these counters
//! at once, without a lock. Two of them carry a protocol and are `SeqCst`:
//! `in_flight` and `in_rotation` (see `in_rotation`). The others are
//! statistics and heuristics whose readers need no other memory to be
//! visible with them, so they are `Relaxed`: a counter read is a recent
//! value, never a torn one.

use crate::addr::BackendAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use tokio::time::Instant;

#[derive(Debug)]
pub struct Backend {
    pub addr: BackendAddr,
    pub weight: u32,
    /// Process-unique id; keys this backend's idle connections in the pools.
    pub id: u64,
    /// Requests between [`Backend::begin`] and the drop of its [`InFlight`].
    ///
    /// # Concurrency
    /// Incremented `SeqCst` (its half of the handshake with `in_rotation`).
    /// Decremented `Release`: the decrement is not part of that handshake
    /// (it can only make a drain's wait end, never start), but a drain that
    /// reads 0 (a `SeqCst` load, so an acquire) and reports the backend
    /// drained must see everything the finished requests did first.
    in_flight: AtomicU32,
    /// Latency EWMA in microseconds (α = 1/8, like TCP's SRTT). `Relaxed`,
    /// updated by load-then-store: a racing update may be lost (see `observe`).
    ewma_micros: AtomicU64,
    /// `Relaxed`: totals for the admin API.
    requests: AtomicU64,
    failures: AtomicU64,
    /// Consecutive failures, for passive ejection. `Relaxed`: a reset racing
    /// an increment may lose one count, which only delays or hastens an
    /// ejection by a request; the ejection itself is decided under the
    /// group's member lock, off the workers (`Rotation::settle`).
    fail_streak: AtomicU32,
    /// Whether the group's latest snapshot has this backend in rotation.
    ///
    /// # Concurrency
    /// Closes the window between a request's pick (from a snapshot that may
    /// be one publish old) and its [`Backend::begin`]: the request
    /// increments `in_flight` and then reads this flag, a drain clears this
    /// flag and then reads `in_flight`, all `SeqCst`. So either the drain
    /// counts the request and waits for it, or the request sees the drain and
    /// picks again. `SeqCst` costs nothing extra on x86 (`lock xadd`, `mov`).
    /// Written only by the group while it holds its member lock, so writers
    /// never race each other (see [`Backend::set_in_rotation`]).
    in_rotation: AtomicBool,
    /// Set by the request that takes `fail_streak` to the passive threshold:
    /// the group ejects the backend off the workers (`Group::record_outcome`).
    ///
    /// # Concurrency
    /// Swapped to `true` by any worker (`AcqRel`: only the first of several
    /// racing requests asks), taken back by whoever applies the ejection
    /// while holding the group's member lock (`AcqRel`), so an ask made
    /// after that is seen by the next one.
    eject_asked: AtomicBool,
}

/// `Relaxed`: ids need only be unique, which any atomic increment gives.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

impl Backend {
    pub fn new(addr: BackendAddr, weight: u32) -> Backend {
        Backend {
            addr,
            weight: weight.max(1),
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            in_flight: AtomicU32::new(0),
            ewma_micros: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            fail_streak: AtomicU32::new(0),
            in_rotation: AtomicBool::new(true),
            eject_asked: AtomicBool::new(false),
        }
    }

    /// `SeqCst`: see `in_rotation`.
    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::SeqCst)
    }

    pub fn in_rotation(&self) -> bool {
        self.in_rotation.load(Ordering::SeqCst)
    }

    /// Set by the group's member table whenever this member's state changes
    /// (`Members`), under its member lock, before the snapshot follows: the
    /// `Relaxed` read before the store sees the last write (the lock orders
    /// them), and skips a store that would change nothing.
    pub fn set_in_rotation(&self, yes: bool) {
        if self.in_rotation.load(Ordering::Relaxed) != yes {
            self.in_rotation.store(yes, Ordering::SeqCst);
        }
    }

    pub fn ewma_micros(&self) -> u64 {
        self.ewma_micros.load(Ordering::Relaxed)
    }

    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    pub fn record_failure(&self) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        self.fail_streak.fetch_add(1, Ordering::Relaxed);
    }

    pub fn fail_streak(&self) -> u32 {
        self.fail_streak.load(Ordering::Relaxed)
    }

    pub fn reset_streak(&self) {
        // Skip the store (and the cache-line write) in the common case.
        if self.fail_streak.load(Ordering::Relaxed) != 0 {
            self.fail_streak.store(0, Ordering::Relaxed);
        }
    }

    /// Asks the group to eject this backend; `true` for the first ask since
    /// the last one was taken (that caller notifies the group).
    pub fn ask_ejection(&self) -> bool {
        // Skip the write when an ask is already pending.
        !self.eject_asked.load(Ordering::Relaxed) && !self.eject_asked.swap(true, Ordering::AcqRel)
    }

    /// Takes a pending ejection ask, if any.
    pub fn take_ejection_ask(&self) -> bool {
        self.eject_asked.load(Ordering::Relaxed) && self.eject_asked.swap(false, Ordering::AcqRel)
    }

    /// Counts a request as in flight until the returned guard is dropped.
    pub fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        self.requests.fetch_add(1, Ordering::Relaxed);
        InFlight {
            backend: self.clone(),
            start: Instant::now(),
        }
    }

    fn observe(&self, micros: u64) {
        // A lost update under a race only skews the average slightly; no CAS loop needed.
        let old = self.ewma_micros.load(Ordering::Relaxed);
        let new = if old == 0 {
            micros
        } else {
            old - (old >> 3) + (micros >> 3)
        };
        self.ewma_micros.store(new, Ordering::Relaxed);
    }
}

/// A request in flight to a backend; dropping it ends the request.
#[derive(Debug)]
pub struct InFlight {
    backend: Arc<Backend>,
    start: Instant,
}

impl InFlight {
    pub fn backend(&self) -> &Arc<Backend> {
        &self.backend
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.backend
            .observe(self.start.elapsed().as_micros() as u64);
        // `Release`: see `in_flight`.
        self.backend.in_flight.fetch_sub(1, Ordering::Release);
    }
}

#[cfg(test)]
pub fn test_backends(weights: &[u32]) -> Vec<Arc<Backend>> {
    weights
        .iter()
        .enumerate()
        .map(|(i, &w)| {
            Arc::new(Backend::new(
                BackendAddr(([10, 0, 0, i as u8 + 1], 80).into()),
                w,
            ))
        })
        .collect()
}

/// `n` backends on distinct addresses with weights cycling up to `max_weight`.
#[cfg(test)]
pub fn many_test_backends(n: u32, max_weight: u32) -> Vec<Arc<Backend>> {
    (0..n)
        .map(|i| {
            let ip = std::net::Ipv4Addr::from(0x0a00_0000 + i);
            Arc::new(Backend::new(
                BackendAddr((ip, 80).into()),
                max_weight - i % max_weight.min(7),
            ))
        })
        .collect()
}

#[cfg(test)]
impl Backend {
    /// Test hook: marks one more request in flight, forever.
    pub fn begin_leak(self: &Arc<Self>) {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
    }
}
