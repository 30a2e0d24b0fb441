//! Which of a group's members are in rotation, and the snapshot published
//! from them. A change marks the members under a short lock (O(log n));
//! building the snapshot is O(n log n) at most and happens either in the
//! caller, on the cold paths whose callers read their own write (config,
//! admin API, DNS), or on one `sluice-rebuild` thread, for the changes that
//! come from requests and health checks. A worker never builds a snapshot
//! and never takes the member lock: a request whose outcome the backend's
//! state machine must act on (a streak at its threshold, a trial's result)
//! only flags its backend and queues the group; the transition happens here,
//! under the member lock, on the rebuild thread (`upstream::member`).
//!
//! The queue coalesces: a group is queued at most once at a time, and one
//! rebuild applies every change made before it.

use super::backend::Backend;
use super::members::Members;
use super::outlier::Outcome;
use super::queue::Queue;
use super::snapshot::Snapshot;
use super::sticky::Sticky;
use crate::balance::{Policy, Selector};
use crate::config::Passive;
use arc_swap::ArcSwap;
use parking_lot::{Mutex, MutexGuard};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;
use tokio::time::Instant;

#[derive(Debug)]
pub struct Rotation {
    policy: Policy,
    passive: Passive,
    slow_start: Duration,
    /// Sticky ids for each snapshot, when the group has a sticky cookie.
    sticky: Option<Arc<Sticky>>,
    /// # Concurrency
    /// The source of truth for writers (admin API, config, DNS, health
    /// checks, the rebuild thread). A `parking_lot::Mutex`, held only for
    /// O(log n) changes or an O(n) copy, never across `.await`, and never
    /// taken by a worker.
    members: Mutex<Members>,
    /// What requests read.
    ///
    /// # Concurrency
    /// Every request on every worker thread `load`s it (no lock, no
    /// contention) and drops the guard after the pick, before any `.await`;
    /// a request keeps only the `Arc<Backend>` it picked. Stored only by
    /// [`Rotation::publish`] while it holds `published`, so publishes never
    /// interleave and the last one stored is built from the latest members.
    snapshot: ArcSwap<Snapshot>,
    /// The member generation the stored snapshot was built from.
    ///
    /// # Concurrency
    /// Held for a whole publish (copy, build, store) or settle, so they are
    /// serialised and a publish that finds its generation already stored
    /// does nothing (that is how concurrent publishes coalesce). Taken by the
    /// rebuild thread and by cold paths, never by a worker.
    published: Mutex<Option<u64>>,
    /// Whether this group is in the rebuild queue.
    ///
    /// # Concurrency
    /// Set (`AcqRel` swap) by whoever queues the group, only when it was
    /// clear; cleared (`SeqCst`) by the rebuild thread before it takes the
    /// member lock, so a change made after the rebuild's copy always queues
    /// the group again.
    queued: AtomicBool,
    /// Whether a backend asked the machine to look at it since the last settle.
    ///
    /// # Concurrency
    /// Set (`Release`) by a worker after its backend's ask, swapped clear
    /// (`AcqRel`) by [`Rotation::settle`], under `published`, before it looks
    /// for asks: an ask it misses sets this again and queues another settle.
    asked: AtomicBool,
    /// This rotation, as its backends name it (`Backend::set_owner`).
    me: Weak<Rotation>,
    /// The group's request queue, if it limits requests per backend: a new
    /// snapshot may bring a backend with room (one added, or back in
    /// rotation), so each publish wakes the queue's head as a freed slot
    /// does (`upstream::queue`).
    queue: Option<Arc<Queue>>,
}

impl Rotation {
    /// A rotation of `members`, its first snapshot built here.
    pub fn new(
        policy: Policy,
        passive: Passive,
        slow_start: Duration,
        members: Members,
        sticky: Option<Arc<Sticky>>,
        queue: Option<Arc<Queue>>,
    ) -> Arc<Rotation> {
        let rotation = Arc::new_cyclic(|me| Rotation {
            snapshot: ArcSwap::from_pointee(Snapshot {
                backends: Vec::new(),
                half_open: Vec::new(),
                selector: Selector::build(&policy, &[], &[], 1, &[]),
                sticky: None,
            }),
            policy,
            sticky,
            passive,
            slow_start,
            members: Mutex::new(members),
            published: Mutex::new(None),
            queued: AtomicBool::new(false),
            asked: AtomicBool::new(false),
            me: me.clone(),
            queue,
        });
        rotation.publish();
        rotation
    }

    pub fn passive(&self) -> &Passive {
        &self.passive
    }

    /// Passive check, on the worker that saw the outcome (see
    /// `Group::record_outcome`). O(1), no lock.
    #[inline]
    pub fn record_outcome(self: &Arc<Self>, backend: &Backend, outcome: Outcome) {
        if backend.record(outcome, &self.passive) {
            self.ask(backend);
        }
    }

    #[inline]
    pub fn load(&self) -> arc_swap::Guard<Arc<Snapshot>> {
        self.snapshot.load()
    }

    /// The members, for reading. Cold paths only.
    pub fn members(&self) -> MutexGuard<'_, Members> {
        self.members.lock()
    }

    /// Applies `change` and publishes before returning: for cold callers
    /// that read their own write (a registered backend takes the next
    /// request; a drained one gets no new ones).
    pub fn change_now<R>(&self, change: impl FnOnce(&mut Members) -> R) -> R {
        let r = change(&mut self.members.lock());
        self.publish();
        r
    }

    /// Applies `change` and leaves the publish to the rebuild thread, which
    /// coalesces it with others (a round of health checks over a large group).
    pub fn change_later<R>(self: &Arc<Self>, change: impl FnOnce(&mut Members) -> R) -> R {
        let (r, changed) = {
            let mut members = self.members.lock();
            let before = members.generation();
            let r = change(&mut members);
            (r, members.generation() != before)
        };
        if changed {
            self.queue();
        }
        r
    }

    /// A request's outcome needs the machine (a streak at its threshold, a
    /// trial's result): the rebuild thread decides under the member lock.
    /// O(1) and lock-free, for the worker.
    pub fn ask(self: &Arc<Self>, backend: &Backend) {
        if backend.ask() {
            self.asked.store(true, Ordering::Release);
            self.queue();
        }
    }

    /// The machine's clock (`Members::tick`): the snapshot follows from the
    /// rebuild thread when something moved.
    pub fn tick(self: &Arc<Self>, now: Instant) {
        let (p, slow_start) = (self.passive, self.slow_start);
        self.change_later(|members| members.tick(now, &p, slow_start));
    }

    /// Applies pending asks and publishes: afterwards, members and
    /// snapshot agree. What the rebuild thread does for a queued group, and
    /// what `GET /backends` does before it shows the members.
    pub fn settle(&self) {
        // Under `published`, so that a settle that returns has seen every
        // ask made before it, even one another settle took first.
        let mut published = self.published.lock();
        if self.asked.swap(false, Ordering::AcqRel) {
            self.apply_asks();
        }
        self.publish_locked(&mut published);
    }

    /// Lets the machine act on the members that asked. O(n).
    fn apply_asks(&self) {
        let passive = self.passive;
        let now = Instant::now();
        let mut members = self.members.lock();
        let asked: Vec<_> = members
            .iter()
            .filter(|m| m.backend.take_ask())
            .map(|m| m.backend.addr)
            .collect();
        for addr in asked {
            let room = members.room_to_eject(passive.max_ejected_percent);
            members.update(addr, |m| m.on_ask(&passive, room, now));
        }
    }

    /// Builds and stores the snapshot of the current members, unless the
    /// stored one is already of their generation.
    fn publish(&self) {
        self.publish_locked(&mut self.published.lock());
    }

    fn publish_locked(&self, published: &mut Option<u64>) {
        let (generation, r) = {
            let members = self.members.lock();
            if *published == Some(members.generation()) {
                return;
            }
            // Late outcomes of these backends come here (a member joined,
            // or a reload moved them over). O(n), like the build below.
            for m in members.iter() {
                m.backend.set_owner(&self.me);
            }
            let now = Instant::now();
            (
                members.generation(),
                members.in_rotation(now, self.slow_start),
            )
        };
        let selector = Selector::build(&self.policy, &r.backends, &r.weights, r.unit, &r.half_open);
        // One HMAC per backend (about a microsecond), sticky groups only.
        let sticky = self
            .sticky
            .as_ref()
            .map(|s| s.table(r.backends.iter().chain(&r.half_open)));
        self.snapshot.store(Arc::new(Snapshot {
            backends: r.backends,
            half_open: r.half_open,
            selector,
            sticky,
        }));
        *published = Some(generation);
        if let Some(q) = &self.queue {
            q.slot_freed();
        }
    }

    /// Queues a settle on the rebuild thread, unless one is queued already.
    fn queue(self: &Arc<Self>) {
        if self.queued.swap(true, Ordering::AcqRel) {
            return;
        }
        if let Some(queue) = rebuild_queue()
            && queue.send(Arc::downgrade(self)).is_ok()
        {
            return;
        }
        // No rebuild thread (it could not be started, or it panicked): a
        // late snapshot would be worse than building it here.
        self.queued.store(false, Ordering::SeqCst);
        self.settle();
    }
}

/// The rebuild thread's queue; the thread starts with the first use.
///
/// # Concurrency
/// `Sender` is `Sync`: any thread queues without a lock. The thread holds
/// groups weakly, so a group dropped by a reload is skipped, not kept.
fn rebuild_queue() -> Option<&'static Sender<Weak<Rotation>>> {
    static QUEUE: OnceLock<Option<Sender<Weak<Rotation>>>> = OnceLock::new();
    QUEUE
        .get_or_init(|| {
            let (tx, rx) = mpsc::channel::<Weak<Rotation>>();
            let spawned = std::thread::Builder::new()
                .name("sluice-rebuild".into())
                .spawn(move || {
                    for group in rx {
                        if let Some(r) = group.upgrade() {
                            r.queued.store(false, Ordering::SeqCst);
                            r.settle();
                        }
                    }
                });
            match spawned {
                Ok(_) => Some(tx),
                Err(e) => {
                    tracing::error!(error = %e, "cannot start the snapshot rebuild thread; rebuilding where changes happen");
                    None
                }
            }
        })
        .as_ref()
}
