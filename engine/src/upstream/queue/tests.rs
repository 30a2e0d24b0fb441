//! The queue against a stand-in for a group's slots: `max` of them, taken
//! by CAS and given back with `slot_freed`, as `Backend::try_begin` and
//! `InFlight`'s drop do.

use super::*;
use futures_util::FutureExt;
use std::sync::atomic::AtomicU32;

struct Slots {
    used: AtomicU32,
    max: u32,
    queue: Queue,
}

/// A slot taken; dropping it frees the slot and wakes the queue.
struct Held(Arc<Slots>);

impl Drop for Held {
    fn drop(&mut self) {
        self.0.used.fetch_sub(1, Ordering::SeqCst);
        self.0.queue.slot_freed();
    }
}

fn slots(max: u32, queue_max: usize, timeout_ms: u64) -> Arc<Slots> {
    Arc::new(Slots {
        used: AtomicU32::new(0),
        max,
        queue: Queue::new(queue_max, Duration::from_millis(timeout_ms)),
    })
}

fn try_take(s: &Arc<Slots>) -> Result<Option<Held>, ProxyError> {
    Ok(s.used
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
            (n < s.max).then_some(n + 1)
        })
        .ok()
        .map(|_| Held(s.clone())))
}

async fn take(s: &Arc<Slots>) -> Result<Held, ProxyError> {
    s.queue.admit(false, || try_take(s)).await
}

/// A task that waits for a slot and gives it back at once.
fn waiter(s: &Arc<Slots>) -> tokio::task::JoinHandle<Result<(), ProxyError>> {
    let s = s.clone();
    tokio::spawn(async move { take(&s).await.map(drop) })
}

/// Lets spawned tasks run until they block.
async fn settle() {
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn room_admits_at_once_without_queueing() {
    let s = slots(2, 4, 1000);
    let a = take(&s).await.expect("a slot");
    let _b = take(&s).await.expect("a slot");
    assert_eq!(s.queue.stats().queued, 0);
    drop(a);
    assert_eq!(s.used.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn waiters_are_served_in_arrival_order_as_slots_free() {
    let s = slots(1, 8, 60_000);
    let first = take(&s).await.expect("a slot");
    let order = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for i in 0..3 {
        let (s, order) = (s.clone(), order.clone());
        tasks.push(tokio::spawn(async move {
            let held = take(&s).await.expect("served");
            order.lock().push(i);
            // Held across a yield: the next one must wait for it.
            tokio::task::yield_now().await;
            assert_eq!(s.used.load(Ordering::SeqCst), 1);
            drop(held);
        }));
        settle().await;
    }
    assert_eq!(s.queue.stats().queued, 3);
    drop(first);
    for t in tasks {
        t.await.expect("task");
    }
    assert_eq!(*order.lock(), vec![0, 1, 2]);
    assert_eq!(s.queue.stats().queued, 0);
}

#[tokio::test]
async fn a_full_queue_refuses_at_once_and_counts_it() {
    let s = slots(1, 1, 60_000);
    let _held = take(&s).await.expect("a slot");
    let waiter = waiter(&s);
    settle().await;
    let e = take(&s).await.err().expect("refused");
    assert_eq!(e.kind(), ErrorKind::QueueFull);
    assert_eq!(e.status(), 503);
    assert_eq!(s.queue.stats().queue_full, 1);
    waiter.abort();
}

#[tokio::test]
async fn no_queue_refuses_when_every_slot_is_taken() {
    let s = slots(1, 0, 60_000);
    let held = take(&s).await.expect("a slot");
    assert_eq!(
        take(&s).await.err().map(|e| e.kind()),
        Some(ErrorKind::QueueFull)
    );
    drop(held);
    assert!(take(&s).await.is_ok(), "room again");
}

#[tokio::test(start_paused = true)]
async fn a_waiter_past_the_timeout_is_refused_and_leaves() {
    let s = slots(1, 4, 5_000);
    let _held = take(&s).await.expect("a slot");
    let e = take(&s).await.err().expect("timed out");
    assert_eq!(e.kind(), ErrorKind::QueueTimeout);
    assert_eq!(e.status(), 503);
    let stats = s.queue.stats();
    assert_eq!((stats.queued, stats.queue_timeouts), (0, 1));
    assert_eq!(s.queue.queued.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_cancelled_waiter_leaves_the_queue() {
    let s = slots(1, 1, 60_000);
    let held = take(&s).await.expect("a slot");
    let gone = waiter(&s);
    settle().await;
    assert_eq!(s.queue.stats().queued, 1);
    gone.abort();
    settle().await;
    assert_eq!(s.queue.stats().queued, 0);
    // Its place is free again, and freeing a slot wakes nobody stale.
    let next = waiter(&s);
    settle().await;
    drop(held);
    next.await.expect("task").expect("served");
}

/// The head is rung, then its client goes before it runs: the wakeup must
/// reach the next waiter, or a free slot would sit unused.
#[tokio::test]
async fn a_woken_waiter_that_is_gone_passes_the_wakeup_on() {
    let s = slots(1, 4, 60_000);
    let held = take(&s).await.expect("a slot");
    let mut head = Box::pin(take(&s));
    // Polled once: queued, waiting.
    assert!(head.as_mut().now_or_never().is_none());
    let second = waiter(&s);
    settle().await;
    assert_eq!(s.queue.stats().queued, 2);
    drop(held); // rings the head, which never runs again
    drop(head);
    second
        .await
        .expect("task")
        .expect("the wakeup was passed on");
    assert_eq!(s.queue.stats().queued, 0);
}

#[tokio::test]
async fn an_empty_group_is_refused_without_waiting() {
    let s = slots(1, 4, 60_000);
    let e = s
        .queue
        .admit(false, || Err::<Option<()>, _>(ErrorKind::NoBackend.into()))
        .await
        .expect_err("refused");
    assert_eq!(e.kind(), ErrorKind::NoBackend);
    assert_eq!(
        s.queue.stats(),
        QueueStats {
            queued: 0,
            queue_timeouts: 0,
            queue_full: 0
        }
    );
}

/// Many tasks on several threads, two slots: never more than two held,
/// and every task is served (no lost wakeup leaves one waiting forever).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_never_holds_more_than_the_limit_and_is_all_served() {
    let s = slots(2, 1000, 60_000);
    let peak = Arc::new(AtomicU32::new(0));
    let mut tasks = Vec::new();
    for _ in 0..200 {
        let (s, peak) = (s.clone(), peak.clone());
        tasks.push(tokio::spawn(async move {
            let held = take(&s).await.expect("served");
            peak.fetch_max(s.used.load(Ordering::SeqCst), Ordering::SeqCst);
            tokio::task::yield_now().await;
            drop(held);
        }));
    }
    for t in tasks {
        tokio::time::timeout(Duration::from_secs(20), t)
            .await
            .expect("no task left waiting")
            .expect("task");
    }
    assert!(peak.load(Ordering::SeqCst) <= 2);
    assert_eq!(s.used.load(Ordering::SeqCst), 0);
    assert_eq!(s.queue.stats().queued, 0);
    assert_eq!(s.queue.queued.load(Ordering::SeqCst), 0);
}

/// A head that cannot use the freed slot (it avoids the backend the slot
/// is on, as a retry avoids the backend that failed it) passes the wakeup
/// on: the waiter behind it is served, not held up until the timeout.
#[tokio::test(start_paused = true)]
async fn a_selective_head_passes_on_a_slot_it_cannot_use() {
    let s = slots(1, 8, 60_000);
    let held = take(&s).await.expect("a slot");
    let picky = {
        let s = s.clone();
        tokio::spawn(async move { s.queue.admit(true, || Ok::<Option<()>, _>(None)).await })
    };
    settle().await;
    let next = waiter(&s);
    settle().await;
    assert_eq!(s.queue.stats().queued, 2);
    drop(held);
    settle().await;
    assert!(next.is_finished(), "the waiter behind was served");
    next.await.expect("task").expect("served");
    assert!(!picky.is_finished(), "the picky head still waits");
    picky.abort();
}

/// A queue whose slots free without ringing it (the guards began under a
/// queue a reload replaced) still serves its head: the head looks for a
/// slot itself after a while.
#[tokio::test(start_paused = true)]
async fn a_slot_freed_without_a_wakeup_is_found_by_the_head() {
    let s = slots(1, 8, 60_000);
    // Taken, and later freed, behind the queue's back.
    s.used.fetch_add(1, Ordering::SeqCst);
    let w = waiter(&s);
    settle().await;
    s.used.fetch_sub(1, Ordering::SeqCst);
    tokio::time::sleep(RECHECK * 2).await;
    settle().await;
    assert!(w.is_finished(), "the head found the slot");
    w.await.expect("task").expect("served");
}
