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

use super::breaker::{Admission, Gate};
use super::outlier::{Outcome, StreakCounts, Streaks};
use super::queue::Queue;
use super::rotation::Rotation;
use crate::addr::BackendAddr;
use crate::config::Passive;
use parking_lot::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
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
    /// drained must see everything the finished requests did first. In a
    /// group with a request limit both are `SeqCst`, the increment a CAS
    /// that never passes the limit ([`Backend::try_begin`]), the decrement
    /// half of the queue's wakeup handshake (`upstream::queue`).
    in_flight: AtomicU32,
    /// Latency EWMA in microseconds (α = 1/8, like TCP's SRTT). `Relaxed`,
    /// updated by load-then-store: a racing update may be lost (see `observe`).
    ewma_micros: AtomicU64,
    /// `Relaxed`: totals for the admin API, and the error-rate window's
    /// input (sampled by the group's tick, `upstream::outlier`).
    requests: AtomicU64,
    failures: AtomicU64,
    /// The consecutive-outcome streaks and the half-open mark (see
    /// [`Streaks`] for their concurrency). A streak is decided on the
    /// worker, the ejection under the group's member lock, off the workers
    /// (`Rotation::settle`).
    streaks: Streaks,
    /// Admission of trial requests while half-open (see [`Gate`]).
    pub(super) gate: Gate,
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
    /// Set by the request whose outcome the state machine must act on (a
    /// streak at its threshold, a trial's result): the group decides off the
    /// workers (`Group::record_outcome`).
    ///
    /// # Concurrency
    /// Swapped to `true` by any worker (`AcqRel`: only the first of several
    /// racing requests asks), taken back by whoever applies the ejection
    /// while holding the group's member lock (`AcqRel`), so an ask made
    /// after that is seen by the next one.
    asked: AtomicBool,
    /// The group whose state machine this backend answers to now, for the
    /// outcomes heard where the group is out of reach: a response body that
    /// failed after its head, a trial that ended (`InFlight`). Set by the
    /// group when it publishes a snapshot with this backend; a reload moves
    /// a backend to the new group, and its late outcomes with it.
    ///
    /// # Concurrency
    /// A `parking_lot` mutex, held only to read or swap the `Weak` (never
    /// across an `.await`, never while taking another lock): by the group's
    /// publish (cold, under its member lock) and by those late outcomes
    /// (cold). A plain request never takes it.
    owner: Mutex<Weak<Rotation>>,
    /// This backend's address as an `X-Sluice-Backend` value, made once
    /// (cloning it is a reference count, not a copy).
    pub header: http::HeaderValue,
    /// Its requests and bytes for `/metrics` (relaxed atomics; see
    /// `observe::metrics::stats`).
    pub stats: crate::observe::metrics::BackendStats,
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
            streaks: Streaks::default(),
            gate: Gate::default(),
            in_rotation: AtomicBool::new(true),
            asked: AtomicBool::new(false),
            owner: Mutex::new(Weak::new()),
            header: http::HeaderValue::try_from(addr.to_string())
                .unwrap_or(http::HeaderValue::from_static("?")),
            stats: Default::default(),
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

    /// A failure after the response head was recorded (`proxy::body`: the
    /// body stalled, or the backend reset it): a gateway-class failure (the
    /// client gets a cut response), through the same path as any other
    /// outcome (`Group::record_outcome`), so that it ejects at a streak's
    /// threshold and a half-open trial that fails mid-body re-opens the
    /// breaker. Counted only when the group is gone (a reload dropped it).
    #[cold]
    pub fn record_late_failure(&self) {
        const LATE: Outcome = Outcome::Failure {
            gateway: true,
            connect: false,
        };
        let owner = self.owner.lock().upgrade();
        match owner {
            Some(group) => group.record_outcome(self, LATE),
            None => {
                self.record(LATE, &Passive::default());
            }
        }
    }

    /// Makes `group` the one this backend answers to (see `owner`).
    pub(super) fn set_owner(&self, group: &Weak<Rotation>) {
        let mut owner = self.owner.lock();
        if !owner.ptr_eq(group) {
            *owner = group.clone();
        }
    }

    /// Records one attempt's outcome: counts, streaks and failed trials.
    /// Returns whether the state machine must look at this backend (a
    /// streak at its threshold, a failed trial). A trial's success is not
    /// known before its whole response came: `InFlight::succeed`.
    #[inline]
    pub fn record(&self, outcome: Outcome, p: &Passive) -> bool {
        match outcome {
            Outcome::Success => {
                self.streaks.success();
                false
            }
            Outcome::Failure { gateway, connect } => {
                self.failures.fetch_add(1, Ordering::Relaxed);
                let (counts, half_open) = self.streaks.failure(gateway, connect);
                if half_open {
                    self.gate.failed();
                    return true;
                }
                counts.crossed(p).is_some()
            }
        }
    }

    /// A trial of `period` answered in full: counted, and the machine asked
    /// once the period has its successes.
    #[cold]
    fn trial_succeeded(&self, period: u32) {
        let Some(n) = self.gate.succeeded(period) else {
            return;
        };
        let owner = self.owner.lock().upgrade();
        if let Some(group) = owner
            && n >= group.passive().half_open_successes
        {
            group.ask(self);
        }
    }

    pub fn streaks(&self) -> StreakCounts {
        self.streaks.counts()
    }

    /// Clears the streaks and marks or unmarks the backend half-open. The
    /// machine only, under the member lock.
    pub(super) fn reset_streaks(&self, half_open: bool) {
        self.streaks.reset(half_open);
    }

    /// Whether a half-open backend could take a trial now (a hint; `begin`
    /// decides).
    pub fn trial_room(&self) -> bool {
        self.gate.has_room()
    }

    /// Asks the group's state machine to look at this backend; `true` for
    /// the first ask since the last one was taken (that caller queues the group).
    pub fn ask(&self) -> bool {
        // Skip the write when an ask is already pending.
        !self.asked.load(Ordering::Relaxed) && !self.asked.swap(true, Ordering::AcqRel)
    }

    /// Takes a pending ask, if any.
    pub fn take_ask(&self) -> bool {
        self.asked.load(Ordering::Relaxed) && self.asked.swap(false, Ordering::AcqRel)
    }

    /// Counts a request as in flight until the returned guard is dropped.
    /// While half-open, at most the breaker's trial cap are admitted as
    /// trials (see [`InFlight::admitted`]); requests begun before count
    /// for nothing there.
    pub fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        self.requests.fetch_add(1, Ordering::Relaxed);
        InFlight {
            admission: self.gate.admit(),
            backend: self.clone(),
            start: Instant::now(),
            queue: None,
        }
    }

    /// [`Backend::begin`] in a group whose backends take at most `limit`
    /// requests at once: `None` when this one is full (nothing counted).
    /// The guard wakes `queue` when it ends.
    pub fn try_begin(self: &Arc<Self>, limit: u32, queue: &Arc<Queue>) -> Option<InFlight> {
        // `SeqCst`: the `in_rotation` handshake, as in `begin`.
        self.in_flight
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < limit).then_some(n + 1)
            })
            .ok()?;
        self.requests.fetch_add(1, Ordering::Relaxed);
        Some(InFlight {
            admission: self.gate.admit(),
            backend: self.clone(),
            start: Instant::now(),
            queue: Some(queue.clone()),
        })
    }

    /// Whether this backend is below `limit` requests in flight (a hint
    /// for picks; [`Backend::try_begin`] decides).
    #[inline]
    pub fn has_room(&self, limit: u32) -> bool {
        self.in_flight() < limit
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
    /// What the breaker made of this request (see [`Admission`]).
    admission: Admission,
    /// The group's queue, in a group with a request limit: woken when this
    /// request ends, since its slot is free.
    queue: Option<Arc<Queue>>,
}

impl InFlight {
    pub fn backend(&self) -> &Arc<Backend> {
        &self.backend
    }

    /// Whether the request may go to its backend: still in rotation (see
    /// `Backend::in_rotation`), and within the trial cap if half-open.
    /// Otherwise drop it and pick again.
    pub fn admitted(&self) -> bool {
        self.admission.admitted() && self.backend.in_rotation()
    }

    /// Whether the breaker refused it: a half-open backend at its trial cap.
    pub fn trial_refused(&self) -> bool {
        !self.admission.admitted()
    }

    /// The response came in full (or the connection was upgraded): a
    /// success, which ends the backend's streaks (`proxy::forward` records
    /// only failures at the head); for a trial, its place is free.
    #[inline]
    pub fn succeed(&mut self) {
        self.backend.streaks.success();
        if let Some(period) = self.admission.trial() {
            self.admission = Admission::FREE;
            self.backend.gate.release(period);
            self.backend.trial_succeeded(period);
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(period) = self.admission.trial() {
            // Ended without a verdict (failed: already recorded; or the
            // client went away): only its place is freed.
            self.backend.gate.release(period);
        }
        self.backend
            .observe(self.start.elapsed().as_micros() as u64);
        match &self.queue {
            // `Release`: see `in_flight`.
            None => {
                self.backend.in_flight.fetch_sub(1, Ordering::Release);
            }
            // `SeqCst`, then the queue: see `upstream::queue`.
            Some(queue) => {
                self.backend.in_flight.fetch_sub(1, Ordering::SeqCst);
                queue.slot_freed();
            }
        }
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
