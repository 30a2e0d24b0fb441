//! Waiting while a client connection is idle: for its first bytes, or for
//! the next request on a keep-alive connection. Per worker, one [`IdleClock`]
//! replaces a timer and a drain watch per connection.
//!
//! A tokio `Sleep` is 112 bytes in the connection's task and a drain
//! `watch::Receiver` waiting is as much again, for every idle connection,
//! while an idle deadline needs no precision: it only has to close the
//! connection soon after it passes. So the clock is a coarse wheel. Time is
//! cut into ticks of `timeout / 32` (at most 250 ms); each tick of the next
//! `SLOTS` (64) ticks has a `Notify`, and an idle connection waits on the one
//! of the tick its deadline falls in. One sweeper task per worker wakes a
//! slot once its tick has ended, so each connection is woken once, after
//! its deadline, and closes at most a tick late. A deadline more than
//! `SLOTS` ticks ahead shares its slot with earlier laps and simply waits
//! again when woken early. Drain sets a flag and wakes every slot.
//!
//! # Concurrency
//! The clock is shared by every connection of a worker (a thread-per-core
//! worker polls them all on one thread; the work-stealing shape on several).
//! A waiter takes its `Notified` first and checks `swept`/`draining` second;
//! the sweeper and the drain store first and notify second. With both
//! orders `SeqCst`, a waiter either sees the store or is woken by the
//! notify that follows it (`notify_waiters` wakes every `Notified` created
//! before it, polled or not).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::task::{Context, Poll, ready};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::sync::futures::OwnedNotified;
use tokio::time::Instant;

/// Slots in the wheel: 64 ticks are two timeouts, or 16 s once ticks are
/// capped, so a timeout up to 16 s wakes its connection exactly once and a
/// longer one once per 16 s lap. 64 `Notify` are 2 KiB per worker.
const SLOTS: usize = 64;
/// Ticks per timeout: a connection closes at most 1/32 of it late.
const TICKS_PER_TIMEOUT: u32 = 32;
const MAX_TICK: Duration = Duration::from_millis(250);
const MIN_TICK: Duration = Duration::from_millis(1);

/// Why an idle wait ended without its event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ended {
    /// The deadline passed.
    Expired,
    /// Shutdown began.
    Draining,
}

/// The per-worker wheel of idle deadlines and the drain signal; see the
/// module docs. [`IdleClock::sweep`] must run for deadlines to fire.
#[derive(Debug)]
pub struct IdleClock {
    epoch: Instant,
    tick: Duration,
    /// In `Arc`s, so that a waiter's `OwnedNotified` borrows nothing: a
    /// connection's task can hold it next to the clock's own `Arc`.
    ///
    /// # Concurrency
    /// Only `notify_waiters` is used (never `notify_one`, which would store a
    /// permit for a later waiter): a slot wakes the waiters registered before
    /// the call, and each re-checks `swept`/`draining` (module docs).
    slots: Box<[Arc<Notify>]>,
    /// Every tick below this one has ended and its slot has been woken.
    ///
    /// # Concurrency
    /// Written only by the one sweeper task ([`IdleClock::sweep`]), read by
    /// every idle connection of the worker. `SeqCst` on both sides, paired
    /// with the slot's notify: the store comes before the notify, the
    /// waiter's check after its registration (module docs), so no waiter
    /// misses both.
    swept: AtomicU64,
    /// Set once, never cleared, by [`IdleClock::start_drain`]. `SeqCst` and
    /// set-then-notify, like `swept`.
    draining: AtomicBool,
    /// Woken once, when shutdown begins (for waiters other than idle ones).
    /// [`IdleClock::draining`] registers before it checks `draining`, so a
    /// drain that starts between the two is not missed.
    drain: Notify,
}

impl IdleClock {
    /// A clock for idle deadlines of about `timeout`.
    pub fn new(timeout: Duration) -> IdleClock {
        IdleClock {
            epoch: Instant::now(),
            tick: (timeout / TICKS_PER_TIMEOUT).clamp(MIN_TICK, MAX_TICK),
            slots: (0..SLOTS).map(|_| Arc::new(Notify::new())).collect(),
            swept: AtomicU64::new(0),
            draining: AtomicBool::new(false),
            drain: Notify::new(),
        }
    }

    /// The tick `t` falls in.
    fn tick_of(&self, t: Instant) -> u64 {
        let since = t.saturating_duration_since(self.epoch).as_nanos();
        u64::try_from(since / self.tick.as_nanos()).unwrap_or(u64::MAX)
    }

    fn slot(&self, tick: u64) -> &Arc<Notify> {
        &self.slots[(tick % SLOTS as u64) as usize]
    }

    /// A waiter for `deadline`, to be polled with [`IdleClock::poll_ended`].
    /// It is registered from here on (module docs).
    pub fn waiter(&self, deadline: Instant) -> OwnedNotified {
        self.slot(self.tick_of(deadline)).clone().notified_owned()
    }

    /// Ready once `deadline` has passed or shutdown has begun; `woken` is
    /// the [`IdleClock::waiter`] for `deadline`, re-armed as needed.
    pub fn poll_ended(
        &self,
        deadline: Instant,
        mut woken: Pin<&mut OwnedNotified>,
        cx: &mut Context<'_>,
    ) -> Poll<Ended> {
        let tick = self.tick_of(deadline);
        loop {
            if self.is_draining() {
                return Poll::Ready(Ended::Draining);
            }
            if self.swept.load(SeqCst) > tick {
                return Poll::Ready(Ended::Expired);
            }
            ready!(woken.as_mut().poll(cx));
            // An earlier lap of the wheel: wait on the slot again.
            woken.set(self.slot(tick).clone().notified_owned());
        }
    }

    /// Wakes each slot once its tick has ended; runs until aborted (one
    /// task per worker).
    pub async fn sweep(&self) {
        loop {
            let next = self.swept.load(SeqCst);
            let ends = u32::try_from(next + 1)
                .ok()
                .and_then(|n| self.tick.checked_mul(n))
                .unwrap_or(Duration::MAX);
            tokio::time::sleep_until(self.epoch.checked_add(ends).unwrap_or(self.epoch)).await;
            let now = self.tick_of(Instant::now());
            if now <= next {
                continue;
            }
            self.swept.store(now, SeqCst);
            // After a stall of a whole lap, every slot once is enough.
            for tick in next..now.min(next + SLOTS as u64) {
                self.slot(tick).notify_waiters();
            }
        }
    }

    /// Begins shutdown: every idle wait ends with [`Ended::Draining`].
    pub fn start_drain(&self) {
        self.draining.store(true, SeqCst);
        self.drain.notify_waiters();
        for slot in self.slots.iter() {
            slot.notify_waiters();
        }
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(SeqCst)
    }

    /// Resolves once shutdown has begun.
    pub async fn draining(&self) {
        loop {
            let woken = self.drain.notified();
            if self.is_draining() {
                return;
            }
            woken.await;
        }
    }

    /// Polls `event` until it is ready, or until `deadline` has passed or
    /// shutdown begins.
    pub fn wait<T, E>(&self, deadline: Instant, event: E) -> Wait<'_, E>
    where
        E: FnMut(&mut Context<'_>) -> Poll<T>,
    {
        Wait {
            clock: self,
            deadline,
            event,
            woken: self.waiter(deadline),
        }
    }
}

pin_project_lite::pin_project! {
    /// [`IdleClock::wait`]'s future (hand-written: an `async fn` would keep
    /// its arguments twice).
    pub struct Wait<'a, E> {
        clock: &'a IdleClock,
        deadline: Instant,
        event: E,
        #[pin]
        woken: OwnedNotified,
    }
}

impl<T, E> Future for Wait<'_, E>
where
    E: FnMut(&mut Context<'_>) -> Poll<T>,
{
    type Output = Result<T, Ended>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(v) = (this.event)(cx) {
            return Poll::Ready(Ok(v));
        }
        this.clock
            .poll_ended(*this.deadline, this.woken, cx)
            .map(Err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn pending(_: &mut Context<'_>) -> Poll<()> {
        Poll::Pending
    }

    fn clock(timeout: Duration) -> Arc<IdleClock> {
        let clock = Arc::new(IdleClock::new(timeout));
        let c = clock.clone();
        tokio::spawn(async move { c.sweep().await });
        clock
    }

    #[tokio::test(start_paused = true)]
    async fn a_deadline_ends_the_wait_within_a_tick_after_it() {
        for timeout in [Duration::from_millis(300), Duration::from_secs(10)] {
            let clock = clock(timeout);
            let start = Instant::now();
            let got = clock.wait(start + timeout, pending).await;
            assert_eq!(got, Err(Ended::Expired));
            let waited = start.elapsed();
            assert!(waited >= timeout, "{timeout:?}: ended after {waited:?}");
            // tokio's timers have a resolution of a millisecond.
            let late = clock.tick + Duration::from_millis(1);
            assert!(waited <= timeout + late, "{timeout:?}: {waited:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_deadline_beyond_the_wheel_waits_whole_laps() {
        // 60 s is 240 ticks of 250 ms: almost four laps of the wheel.
        let timeout = Duration::from_secs(60);
        let clock = clock(timeout);
        let start = Instant::now();
        assert_eq!(
            clock.wait(start + timeout, pending).await,
            Err(Ended::Expired)
        );
        let waited = start.elapsed();
        let late = MAX_TICK + Duration::from_millis(1);
        assert!(waited >= timeout && waited <= timeout + late, "{waited:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_ready_event_wins_and_drain_ends_every_wait() {
        let clock = clock(Duration::from_secs(10));
        let deadline = Instant::now() + Duration::from_secs(10);
        assert_eq!(clock.wait(deadline, |_| Poll::Ready(7)).await, Ok(7));

        let waiters: Vec<_> = (0..3)
            .map(|i| {
                let c = clock.clone();
                let deadline = deadline + Duration::from_secs(i);
                tokio::spawn(async move { c.wait(deadline, pending).await })
            })
            .collect();
        let draining = {
            let c = clock.clone();
            tokio::spawn(async move { c.draining().await })
        };
        tokio::task::yield_now().await;
        let before = Instant::now();
        clock.start_drain();
        for w in waiters {
            assert_eq!(w.await.unwrap(), Err(Ended::Draining));
        }
        draining.await.unwrap();
        assert_eq!(before.elapsed(), Duration::ZERO);
        // Late waiters see the flag.
        assert_eq!(clock.wait(deadline, pending).await, Err(Ended::Draining));
        clock.draining().await;
    }
}
