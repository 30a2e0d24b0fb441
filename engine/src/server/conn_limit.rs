//! Connection limits of one listener (shared by its sockets on every
//! worker): `max_connections` open at once, and `max_connections_per_client`
//! from one IP address. A connection's `ConnCtx` holds its [`Permit`] and
//! gives back its client's share when dropped (the permit is a single
//! pointer: an idle connection's task has no byte to spare, and the
//! context already knows the address).
//!
//! Beyond a limit, with `on_limit = "refuse"` the connection is accepted and
//! closed at once; with `"backlog"` the accept loops stop accepting while
//! the listener is full, so new connections wait in the kernel's accept
//! queue (up to `backlog`, then the kernel drops their SYNs and clients
//! retry). A worker reserves its slot only once a connection is queued on
//! its socket (`Acceptor::accept_reserved`), so a worker waiting on an
//! empty socket never holds a slot another worker's connection needs. The per-client limit always refuses: an address is known only
//! once its connection is accepted. Limits changed by a reload apply from
//! the next connection; the per-client count covers connections accepted
//! while that limit was set.
//!
//! On a PROXY protocol listener the client is the one its header names,
//! known only after the header is read: the connection takes its listener
//! slot at accept ([`ConnLimiter::admit_slot`]) and its client's share
//! after the header ([`ConnLimiter::admit_client`]). The limiter also holds
//! the listener's PROXY rule, replaced by reloads like its limits.

use super::proxy_protocol::accept::{Policy, Refused};
use crate::config::{ConnLimit, OnLimit};
use arc_swap::ArcSwapOption;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use tokio::sync::Notify;

/// Shards of the per-client counts (no global lock on accept).
const SHARDS: usize = 16;

#[derive(Debug)]
pub struct ConnLimiter {
    /// The limits now.
    ///
    /// # Concurrency
    /// A `parking_lot::Mutex` around a `Copy` value, read once per accept
    /// and written by a reload: never held across an `.await`.
    limit: Mutex<ConnLimit>,
    /// Open connections holding a permit.
    ///
    /// # Concurrency
    /// Reserved with a compare-and-swap so two workers cannot both take the
    /// last slot; `Relaxed` is enough: it guards a count, not other memory.
    open: AtomicUsize,
    /// Open connections per client address, counted whether or not a
    /// per-client limit is set (so a reload may set one exactly); an
    /// address leaves when its count reaches zero, so the map is as large
    /// as the open connections.
    ///
    /// # Concurrency
    /// One `parking_lot::Mutex` per shard, held for one map update.
    per_client: Box<[Mutex<HashMap<IpAddr, usize>>]>,
    /// Wakes a `backlog` accept loop when a connection closes.
    room: Notify,
    /// For `/metrics`: connections of `open` serving HTTP/2 now, and
    /// connections admitted and refused since the listener started.
    ///
    /// # Concurrency
    /// Statistics, `Relaxed`: bumped once per connection (HTTP/2: twice
    /// more, see [`H2Open`]), read by the scrape.
    h2: AtomicUsize,
    accepted: AtomicU64,
    refused: AtomicU64,
    /// The listener's PROXY protocol rule, if it takes a header.
    ///
    /// # Concurrency
    /// An `ArcSwapOption`: loaded once per accept, stored by a reload.
    proxy: ArcSwapOption<Policy>,
    /// Connections closed for their PROXY header (or its absence), by
    /// reason in [`Refused::REASONS`] order.
    ///
    /// # Concurrency
    /// Statistics, `Relaxed`, like `refused`.
    proxy_refused: [AtomicU64; Refused::REASONS.len()],
}

/// One connection's share of the listener's HTTP/2 count, given back on drop.
#[derive(Debug)]
pub struct H2Open(Arc<ConnLimiter>);

impl Drop for H2Open {
    fn drop(&mut self) {
        self.0.h2.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A slot of `max_connections`; dropping it gives the slot back. Once
/// [`ConnLimiter::admit`] has counted the client, the holder must also call
/// [`Permit::release_client`] (`ConnCtx`'s drop does).
#[derive(Debug)]
pub struct Permit(Arc<ConnLimiter>);

impl Permit {
    /// The connection speaks HTTP/2 until the guard is dropped.
    pub fn h2(&self) -> H2Open {
        self.0.h2.fetch_add(1, Ordering::Relaxed);
        H2Open(self.0.clone())
    }

    /// Gives back `client`'s share.
    pub fn release_client(&self, client: IpAddr) {
        let mut shard = self.0.shard(client).lock();
        if let Some(n) = shard.get_mut(&client) {
            *n -= 1;
            if *n == 0 {
                shard.remove(&client);
            }
        }
    }
}

impl ConnLimiter {
    pub fn new(limit: ConnLimit) -> Arc<ConnLimiter> {
        Arc::new(ConnLimiter {
            limit: Mutex::new(limit),
            open: AtomicUsize::new(0),
            per_client: (0..SHARDS).map(|_| Mutex::default()).collect(),
            room: Notify::new(),
            h2: AtomicUsize::new(0),
            accepted: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            proxy: ArcSwapOption::empty(),
            proxy_refused: Default::default(),
        })
    }

    /// The listener's PROXY protocol rule, from its config (start, reload).
    pub fn set_proxy_protocol(&self, policy: Option<Policy>) {
        self.proxy.store(policy.map(Arc::new));
    }

    pub fn proxy_protocol(&self) -> Option<Arc<Policy>> {
        self.proxy.load_full()
    }

    /// Counts a connection closed for its PROXY header.
    pub fn proxy_refused(&self, why: &Refused) {
        let reason = why.reason();
        if let Some(i) = Refused::REASONS.iter().position(|r| *r == reason) {
            self.proxy_refused[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// `(reason, count)` for every reason, zeros included.
    pub fn proxy_refusals(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        Refused::REASONS
            .iter()
            .zip(&self.proxy_refused)
            .map(|(r, n)| (*r, n.load(Ordering::Relaxed)))
    }

    /// New limits from a reload.
    pub fn set(&self, limit: ConnLimit) {
        *self.limit.lock() = limit;
        self.room.notify_waiters();
    }

    pub fn limit(&self) -> ConnLimit {
        *self.limit.lock()
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// Connections of [`ConnLimiter::open`] serving HTTP/2.
    pub fn open_h2(&self) -> usize {
        self.h2.load(Ordering::Relaxed)
    }

    /// Connections admitted since the listener started.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }

    /// Connections closed at once by a limit since the listener started.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Reserves a slot of `max_connections`, or `None` when full.
    fn reserve(self: &Arc<Self>, max: Option<usize>) -> Option<Permit> {
        let max = max.unwrap_or(usize::MAX);
        self.open
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()?;
        Some(Permit(self.clone()))
    }

    /// For `backlog` mode, once a connection is queued: waits until a slot
    /// is free and reserves it.
    pub async fn wait_for_room(self: &Arc<Self>) -> Permit {
        loop {
            let notified = self.room.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(p) = self.reserve(self.limit().max_connections) {
                return p;
            }
            notified.await;
        }
    }

    /// After accepting from `client`: a permit with the client counted,
    /// or `None` to close the connection at once. `reserved` is the slot
    /// `wait_for_room` took.
    pub fn admit(self: &Arc<Self>, client: IpAddr, reserved: Option<Permit>) -> Option<Permit> {
        let admitted = self
            .slot(reserved)
            .and_then(|p| self.count_client(p, client));
        self.tally(admitted.is_some());
        admitted
    }

    /// A PROXY protocol listener's first step: the listener's slot only
    /// (the client is not known yet); then [`ConnLimiter::admit_client`].
    pub fn admit_slot(self: &Arc<Self>, reserved: Option<Permit>) -> Option<Permit> {
        let slot = self.slot(reserved);
        if slot.is_none() {
            self.tally(false);
        }
        slot
    }

    /// Counts `client` (the one the PROXY header names) on `permit`'s slot,
    /// or `None` past the per-client limit.
    pub fn admit_client(self: &Arc<Self>, permit: Permit, client: IpAddr) -> Option<Permit> {
        let admitted = self.count_client(permit, client);
        self.tally(admitted.is_some());
        admitted
    }

    fn tally(&self, admitted: bool) {
        let n = if admitted {
            &self.accepted
        } else {
            &self.refused
        };
        n.fetch_add(1, Ordering::Relaxed);
    }

    fn slot(self: &Arc<Self>, reserved: Option<Permit>) -> Option<Permit> {
        match reserved {
            Some(p) => Some(p),
            None => self.reserve(self.limit().max_connections),
        }
    }

    fn count_client(&self, permit: Permit, client: IpAddr) -> Option<Permit> {
        let per = self
            .limit()
            .max_connections_per_client
            .unwrap_or(usize::MAX);
        let mut shard = self.shard(client).lock();
        let n = shard.entry(client).or_insert(0);
        if *n >= per {
            if *n == 0 {
                shard.remove(&client);
            }
            return None;
        }
        *n += 1;
        Some(permit)
    }

    /// Whether accept loops should wait for room rather than refuse.
    pub fn backlog(&self) -> bool {
        let l = self.limit();
        l.on_limit == OnLimit::Backlog && l.max_connections.is_some()
    }

    fn shard(&self, ip: IpAddr) -> &Mutex<HashMap<IpAddr, usize>> {
        let h = match ip {
            IpAddr::V4(a) => u32::from(a) as usize,
            IpAddr::V6(a) => u128::from(a) as usize,
        };
        &self.per_client[h % SHARDS]
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
        self.0.room.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(max: Option<usize>, per: Option<usize>) -> Arc<ConnLimiter> {
        ConnLimiter::new(ConnLimit {
            max_connections: max,
            max_connections_per_client: per,
            on_limit: OnLimit::Refuse,
        })
    }

    #[test]
    fn listener_and_client_limits_and_their_release() {
        let l = limiter(Some(3), Some(2));
        let a: IpAddr = [10, 0, 0, 1].into();
        let b: IpAddr = [10, 0, 0, 2].into();
        let a1 = l.admit(a, None).expect("a1");
        let _a2 = l.admit(a, None).expect("a2");
        assert!(l.admit(a, None).is_none(), "a's third");
        let _b1 = l.admit(b, None).expect("b1");
        assert!(l.admit(b, None).is_none(), "the listener's fourth");
        assert_eq!(l.open(), 3);
        a1.release_client(a);
        drop(a1);
        assert_eq!(l.open(), 2);
        let _a3 = l.admit(a, None).expect("a again");
        // Refused clients leave no entry behind.
        assert_eq!(
            l.per_client.iter().map(|s| s.lock().len()).sum::<usize>(),
            2
        );
    }

    /// A PROXY listener: the slot at accept, the carried client after its
    /// header, released by that client; refusals counted by reason.
    #[test]
    fn proxy_listeners_count_the_carried_client() {
        use crate::server::proxy_protocol::PpError;
        let l = limiter(Some(2), Some(1));
        let carried: IpAddr = [192, 0, 2, 7].into();
        let slot = l.admit_slot(None).expect("a slot");
        let permit = l.admit_client(slot, carried).expect("first from 192.0.2.7");
        let slot = l.admit_slot(None).expect("a second slot");
        assert!(l.admit_client(slot, carried).is_none(), "per-client limit");
        assert_eq!((l.accepted(), l.refused(), l.open()), (1, 1, 1));
        permit.release_client(carried);
        drop(permit);
        assert_eq!(l.open(), 0);
        assert!(l.admit(carried, None).is_some(), "its share was given back");

        l.proxy_refused(&Refused::Untrusted);
        l.proxy_refused(&Refused::Header(PpError::V1Syntax));
        l.proxy_refused(&Refused::Header(PpError::V1Syntax));
        let counts: Vec<_> = l.proxy_refusals().filter(|(_, n)| *n > 0).collect();
        assert_eq!(counts, [("untrusted", 1), ("v1_syntax", 2)]);
        // Every reason a refusal can have is in the fixed label set.
        for e in [
            PpError::Missing,
            PpError::WrongVersion,
            PpError::V1TooLong,
            PpError::V2Version,
            PpError::V2Command,
            PpError::V2Family,
            PpError::V2AddressTooShort,
            PpError::V2TooLong,
            PpError::V2Tlv,
        ] {
            assert!(Refused::REASONS.contains(&e.reason()), "{e:?}");
        }
    }

    #[tokio::test]
    async fn backlog_mode_waits_for_a_closed_connection() {
        let l = limiter(Some(1), None);
        let first = l.wait_for_room().await;
        let waiting = tokio::spawn({
            let l = l.clone();
            async move { l.wait_for_room().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        drop(first);
        let second = waiting.await.expect("woken");
        assert_eq!(l.open(), 1);
        drop(second);
        assert_eq!(l.open(), 0);
    }
}
