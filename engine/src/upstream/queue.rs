//! A group's request limit and its bounded FIFO queue (HAProxy's `maxconn`,
//! `maxqueue` and `timeout queue`): with `max_requests_per_backend`, a pick
//! skips backends at their limit, and a request that finds every backend
//! full waits here for a slot, at most `max_queue` of them at once and each
//! at most `queue_timeout` (then 503). Groups without a limit have no
//! [`Queue`] and pay one branch (`Group::limit` is `None`).
//!
//! # The wakeup protocol
//! A slot frees when an [`InFlight`](super::backend::InFlight) of a limited
//! group drops: it decrements the backend's count (`SeqCst`) and then, if
//! anyone is queued (`queued`, `SeqCst`), pops the head and wakes it. A
//! waiter is pushed (`queued` incremented, `SeqCst`) and then, at the head,
//! tries for a slot once more: of those two pairs one side sees the other
//! (each writes, then reads the other's counter, all `SeqCst`), so a slot
//! that frees while a request joins is never missed. A woken waiter that
//! finds no room (another request took the slot) goes back to the front;
//! one that got a slot wakes the next (several slots may have freed while
//! it was on its way); one that is gone (timed out, or its client left)
//! passes its wakeup on. New requests go straight to the back of the queue
//! while anyone waits, so the queue is served first.

use crate::error::{ErrorKind, ProxyError};
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;

/// A group's per-backend limit and its queue; shared by the group's
/// in-flight guards, which wake the queue as they end.
#[derive(Debug)]
pub struct Limit {
    /// Requests in flight to one backend at most (≥ 1).
    pub per_backend: u32,
    pub queue: Arc<Queue>,
}

/// The waiting requests of one group, in arrival order.
#[derive(Debug)]
pub struct Queue {
    /// Requests waiting at most; 0: refuse at once when every backend is full.
    max: usize,
    timeout: Duration,
    /// The queue itself.
    ///
    /// # Concurrency
    /// A `parking_lot` mutex, held only to insert, pop or remove one entry
    /// (O(log n)), never across an `.await`. Taken only when the group is
    /// full: a request that finds room, and a slot that frees while nobody
    /// waits, read `queued` alone.
    waiters: Mutex<Waiters>,
    /// Entries in `waiters`, for the lock-free "anyone queued?" of a freed
    /// slot. `SeqCst`, written under the lock: see the module's protocol.
    queued: AtomicUsize,
    /// Requests between joining and leaving (queued, or woken and on their
    /// way): what `max` bounds, and what makes new requests queue behind
    /// them. `SeqCst` (a reservation by CAS; its readers decide on it).
    waiting: AtomicUsize,
    /// `Relaxed`: totals for the admin API.
    timeouts: AtomicU64,
    refused: AtomicU64,
}

#[derive(Debug, Default)]
struct Waiters {
    /// By position: the front is the smallest key.
    map: BTreeMap<u64, Arc<Slot>>,
    /// The next key at the back (counts up from 2⁶³) and at the front
    /// (counts down from 2⁶³ − 1): neither end can run out.
    back: u64,
    front: u64,
}

/// One waiter's doorbell.
#[derive(Debug, Default)]
struct Slot {
    notify: Notify,
    /// Popped and rung, not yet acted on. `Relaxed`: written by the waker
    /// under the queue lock, cleared by the waiter only once popped (nobody
    /// else writes it then), read by the waiter's drop under the lock.
    woken: AtomicBool,
}

/// What the counters say, for `GET /backends`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct QueueStats {
    /// Waiting now.
    pub queued: usize,
    pub queue_timeouts: u64,
    /// Refused at once: every backend full and the queue full (or none).
    pub queue_full: u64,
}

impl Queue {
    pub fn new(max: usize, timeout: Duration) -> Queue {
        Queue {
            max,
            timeout,
            waiters: Mutex::new(Waiters {
                map: BTreeMap::new(),
                back: 1 << 63,
                front: (1 << 63) - 1,
            }),
            queued: AtomicUsize::new(0),
            waiting: AtomicUsize::new(0),
            timeouts: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        }
    }

    /// Whether this queue was made with these settings (kept across a reload).
    pub fn same(&self, max: usize, timeout: Duration) -> bool {
        self.max == max && self.timeout == timeout
    }

    pub fn stats(&self) -> QueueStats {
        QueueStats {
            queued: self.waiting.load(Ordering::Relaxed),
            queue_timeouts: self.timeouts.load(Ordering::Relaxed),
            queue_full: self.refused.load(Ordering::Relaxed),
        }
    }

    /// Whether requests wait (queued, or woken and on their way): a new
    /// request then queues behind them rather than take a slot first.
    #[inline]
    pub fn has_waiters(&self) -> bool {
        self.waiting.load(Ordering::SeqCst) > 0
    }

    /// A slot of the group just freed (its count already decremented,
    /// `SeqCst`): wakes the head of the queue, if any.
    #[inline]
    pub fn slot_freed(&self) {
        if self.queued.load(Ordering::SeqCst) > 0 {
            self.wake_one(&mut self.waiters.lock());
        }
    }

    fn wake_one(&self, w: &mut Waiters) {
        if let Some((_, slot)) = w.map.pop_first() {
            self.queued.fetch_sub(1, Ordering::SeqCst);
            slot.woken.store(true, Ordering::Relaxed);
            slot.notify.notify_one();
        }
    }

    /// Wakes the waiter behind the head (the head stays).
    fn wake_second(&self, w: &mut Waiters) {
        let Some(&key) = w.map.keys().nth(1) else {
            return;
        };
        if let Some(slot) = w.map.remove(&key) {
            self.queued.fetch_sub(1, Ordering::SeqCst);
            slot.woken.store(true, Ordering::Relaxed);
            slot.notify.notify_one();
        }
    }

    /// A slot from `try_admit` (which picks a backend with room and counts
    /// the request on it): at once if it has one and nobody waits, else
    /// after waiting in the queue. `try_admit` answers `Ok(None)` when
    /// every backend is full, and an error when waiting is pointless (no
    /// backend at all). Refusals: [`ErrorKind::QueueFull`] at once,
    /// [`ErrorKind::QueueTimeout`] after `timeout`. A `selective` waiter
    /// (one whose `try_admit` avoids some backends) that cannot use a
    /// wakeup passes it on before it goes back to the front, since the slot
    /// may be one the next waiter can use.
    pub async fn admit<T>(
        &self,
        selective: bool,
        mut try_admit: impl FnMut() -> Result<Option<T>, ProxyError>,
    ) -> Result<T, ProxyError> {
        if !self.has_waiters()
            && let Some(t) = try_admit()?
        {
            return Ok(t);
        }
        let reserved = self
            .waiting
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |w| {
                (w < self.max).then_some(w + 1)
            });
        if reserved.is_err() {
            self.refused.fetch_add(1, Ordering::Relaxed);
            return Err(ErrorKind::QueueFull.into());
        }
        let mut ticket = Ticket {
            queue: self,
            slot: Arc::default(),
            key: None,
            admitted: false,
        };
        let deadline = Instant::now() + self.timeout;
        let mut front = false;
        let mut join = true;
        loop {
            if join && ticket.enqueue(front) {
                // At the head: a slot may have freed before we were seen.
                if let Some(t) = ticket.try_with(&mut try_admit)? {
                    return Ok(t);
                }
            }
            let until = deadline.min(Instant::now() + RECHECK);
            let rung = tokio::time::timeout_at(until, ticket.slot.notify.notified()).await;
            if rung.is_err() {
                if until == deadline {
                    self.timeouts.fetch_add(1, Ordering::Relaxed);
                    return Err(ErrorKind::QueueTimeout.into());
                }
                // No wakeup for a while: the head looks for itself (see
                // `RECHECK`); the others keep their places.
                join = false;
                if ticket.is_head() {
                    if let Some(t) = ticket.try_with(&mut try_admit)? {
                        return Ok(t);
                    }
                    if selective {
                        self.wake_second(&mut self.waiters.lock());
                    }
                }
                continue;
            }
            ticket.slot.woken.store(false, Ordering::Relaxed);
            if let Some(t) = ticket.try_with(&mut try_admit)? {
                return Ok(t);
            }
            if selective {
                // The slot may be on a backend this waiter avoids.
                self.wake_one(&mut self.waiters.lock());
            }
            // Someone else took the slot: back to the front.
            front = true;
            join = true;
        }
    }
}

/// How long the head of a queue waits for a wakeup before it looks for a
/// slot itself. Wakeups come from the group's in-flight guards, and a guard
/// rings the queue it began under: after a reload that replaced the queue
/// (new `max_queue` or `queue_timeout`) or turned the limit on, the slots
/// free under guards that ring the old queue or none, and without this the
/// new queue's waiters would sit until `queue_timeout`. One pick per
/// interval for the whole queue, only while requests wait.
const RECHECK: Duration = Duration::from_millis(50);

/// One request's place: in the queue, or woken and on its way. Dropping it
/// (served, timed out, refused, or its client gone) leaves the queue and
/// hands on a wakeup it did not use.
struct Ticket<'q> {
    queue: &'q Queue,
    slot: Arc<Slot>,
    /// Its key in the queue while queued.
    key: Option<u64>,
    /// It got a slot (the next waiter is woken in case more are free) or an
    /// error (the next is woken to get it too).
    admitted: bool,
}

impl Ticket<'_> {
    /// Joins the queue (at the front after a wakeup it could not use);
    /// returns whether it is now the head.
    fn enqueue(&mut self, front: bool) -> bool {
        let mut w = self.queue.waiters.lock();
        let key = if front {
            w.front -= 1;
            w.front + 1
        } else {
            w.back += 1;
            w.back - 1
        };
        w.map.insert(key, self.slot.clone());
        self.queue.queued.fetch_add(1, Ordering::SeqCst);
        self.key = Some(key);
        w.map.first_key_value().map(|(k, _)| *k) == Some(key)
    }

    /// Whether it is queued, at the head.
    fn is_head(&self) -> bool {
        let w = self.queue.waiters.lock();
        self.key.is_some() && w.map.first_key_value().map(|(k, _)| *k) == self.key
    }

    fn try_with<T>(
        &mut self,
        try_admit: &mut impl FnMut() -> Result<Option<T>, ProxyError>,
    ) -> Result<Option<T>, ProxyError> {
        // An error (no backend at all) is the next waiter's answer too: it
        // is woken to find it at once rather than at its timeout.
        self.admitted = true;
        let got = try_admit()?;
        self.admitted = got.is_some();
        Ok(got)
    }
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        let q = self.queue;
        let mut w = q.waiters.lock();
        if let Some(key) = self.key
            && w.map.remove(&key).is_some()
        {
            q.queued.fetch_sub(1, Ordering::SeqCst);
        }
        if self.admitted || self.slot.woken.load(Ordering::Relaxed) {
            q.wake_one(&mut w);
        }
        drop(w);
        q.waiting.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests;
