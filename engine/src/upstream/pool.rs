//! Keep-alive connections to backends, one pool per worker runtime.
//!
//! Built around the protocol, like hyper-util's `Reservation::{Unique, Shared}`:
//! an HTTP/1.1 connection is lent to one request at a time and comes back when
//! the response body has been read to its end; an HTTP/2 connection is shared
//! by every request to that backend, and only one is dialed at a time (hyper-util's
//! `connecting` set): requests that find a dial under way wait for it.
//!
//! An idle HTTP/1.1 connection is just its socket ([`H1Conn`]): no task, no
//! timer. One the backend closed while idle is dropped at checkout by a
//! non-blocking read ([`H1Conn::is_idle_alive`]), or by [`Pool::reap`]. The
//! race where the FIN arrives just after checkout is handled by the
//! forwarder, which retries once on a fresh connection when that is safe.
//!
//! # Concurrency
//! A pool belongs to one worker runtime (`server::worker::run` makes it). Under
//! `runtime = "thread-per-core"` that runtime has one thread, so only that
//! thread ever takes the pool's locks and they are never contended. Under
//! `runtime = "work-stealing"` there is one runtime whose `workers` threads all
//! share this one pool: checkouts and returns (an HTTP/1.1 connection comes
//! back from whichever thread drops the response body) race on the locks.
//! That is correct because each lock is held only for a map lookup and a
//! push or pop, never across `.await` (`parking_lot`'s guard is not `Send`,
//! so a spawned request future could not hold one across an await point
//! anyway): a popped connection belongs to exactly one request, and an
//! HTTP/2 sender is cloned out before the lock is released. The longest
//! holds are [`Pool::reap`] (one non-blocking read per idle connection, once
//! per reap interval) and [`Pool::take_h1`] skipping dead connections.

use crate::body::ReqBody;
use crate::upstream::h1::H1Conn;
use hyper::client::conn::http2;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

pub type H2Sender = http2::SendRequest<ReqBody>;

#[derive(Debug)]
struct Idle {
    conn: H1Conn,
    since: Instant,
}

/// A backend's place in the HTTP/2 map.
#[derive(Debug)]
enum H2Slot {
    /// The connection every request to the backend shares.
    Ready(H2Sender),
    /// A dial is under way; its [`H2Dial`] holds the sending half and sends
    /// the connection once it is up. The channel closes without a value if
    /// the dial fails or is cancelled.
    Connecting(watch::Receiver<Option<H2Sender>>),
}

#[derive(Debug)]
pub struct Pool {
    idle_timeout: Duration,
    /// Idle HTTP/1.1 connections per backend id, newest last.
    ///
    /// # Concurrency
    /// A `parking_lot::Mutex`, not a tokio one: it is held for a push or a pop
    /// (plus a non-blocking liveness read per dead connection skipped), never
    /// across `.await`. Taken by every request task of this worker runtime,
    /// and by the reaper; see the module docs for work-stealing.
    h1: Mutex<HashMap<u64, Vec<Idle>>>,
    /// The shared HTTP/2 connection, or the dial under way, per backend id.
    ///
    /// # Concurrency
    /// Like `h1`: held for one lookup or insert, never across `.await`. A
    /// checkout that finds [`H2Slot::Connecting`] clones the receiver and
    /// waits after releasing the lock. Only the [`H2Dial`] that put a
    /// `Connecting` there replaces or removes it (while its channel is open,
    /// nobody else does), so a dial's result is never lost to a concurrent one.
    h2: Mutex<HashMap<u64, H2Slot>>,
}

/// What [`Pool::h2`] found for a backend.
#[derive(Debug)]
pub enum H2Checkout<'a> {
    /// A live shared connection.
    Ready(H2Sender),
    /// No connection to share: the caller dials one and hands it to
    /// [`H2Dial::done`].
    Dial(H2Dial<'a>),
}

/// The right (or the duty) to dial a backend over HTTP/2.
///
/// The first checkout to find no connection gets a *guarded* dial: while it
/// lives, every other checkout for the backend waits for its result instead
/// of dialing. Dropping it without [`H2Dial::done`] (the dial failed, or the
/// request was cancelled) frees the slot and wakes the waiters, which then
/// dial themselves: a failed dial never leaves anyone hanging. A waiter that
/// gave up gets an unguarded dial, which shares its connection only if the
/// backend has none by then.
#[derive(Debug)]
pub struct H2Dial<'a> {
    pool: &'a Pool,
    backend: u64,
    /// `Some` for the guarded dial (the one in the slot).
    connecting: Option<watch::Sender<Option<H2Sender>>>,
}

impl Pool {
    pub fn new(idle_timeout: Duration) -> Pool {
        Pool {
            idle_timeout,
            h1: Mutex::new(HashMap::new()),
            h2: Mutex::new(HashMap::new()),
        }
    }

    /// The most recently returned live connection to `backend`, if any (LIFO
    /// keeps few connections warm and lets the rest time out).
    pub fn take_h1(&self, backend: u64) -> Option<H1Conn> {
        let mut map = self.h1.lock();
        let stack = map.get_mut(&backend)?;
        let now = Instant::now();
        while let Some(mut idle) = stack.pop() {
            if now.duration_since(idle.since) >= self.idle_timeout || !idle.conn.is_idle_alive() {
                continue;
            }
            return Some(idle.conn);
        }
        None
    }

    /// Returns a connection whose last response was read to its end.
    pub fn put_h1(&self, backend: u64, conn: H1Conn, max_idle: usize) {
        if max_idle == 0 {
            return;
        }
        let mut map = self.h1.lock();
        let stack = map.entry(backend).or_default();
        if stack.len() >= max_idle {
            // Keep the newest; the oldest is the likeliest to be closed by the backend.
            stack.remove(0);
        }
        stack.push(Idle {
            conn,
            since: Instant::now(),
        });
    }

    /// The shared HTTP/2 connection to `backend`, or the duty to dial it.
    ///
    /// If another request is dialing it already, waits for that dial, at most
    /// `wait` (the connect timeout, which bounds the dial's connect and TLS
    /// handshake), then dials itself if it got nothing.
    pub async fn h2(&self, backend: u64, wait: Duration) -> H2Checkout<'_> {
        let connecting = match self.claim_h2(backend) {
            Ok(found) => return found,
            Err(connecting) => connecting,
        };
        // The cold path, boxed: a request future should not carry a timer.
        match Box::pin(wait_for_dial(connecting, wait)).await {
            Some(sender) => H2Checkout::Ready(sender),
            None => H2Checkout::Dial(H2Dial {
                pool: self,
                backend,
                connecting: None,
            }),
        }
    }

    /// A live connection or a guarded dial; or, while a dial is under way,
    /// the receiver to wait on.
    fn claim_h2(&self, backend: u64) -> Result<H2Checkout<'_>, watch::Receiver<Option<H2Sender>>> {
        let mut map = self.h2.lock();
        match map.get(&backend) {
            Some(H2Slot::Ready(sender)) if usable(sender) => {
                return Ok(H2Checkout::Ready(sender.clone()));
            }
            Some(H2Slot::Connecting(rx)) if is_open(rx) => return Err(rx.clone()),
            _ => {}
        }
        let (tx, rx) = watch::channel(None);
        map.insert(backend, H2Slot::Connecting(rx));
        Ok(H2Checkout::Dial(H2Dial {
            pool: self,
            backend,
            connecting: Some(tx),
        }))
    }

    /// Idle HTTP/1.1 connections held for `backend`.
    pub fn idle_h1(&self, backend: u64) -> usize {
        self.h1.lock().get(&backend).map_or(0, Vec::len)
    }

    /// For `/metrics`: `each(backend, idle HTTP/1.1 connections, HTTP/2
    /// connections up)` for every backend this pool holds connections of
    /// (cold: each lock held for one pass over its map).
    pub fn count_connections(&self, mut each: impl FnMut(u64, usize, usize)) {
        let idle: Vec<(u64, usize)> = self
            .h1
            .lock()
            .iter()
            .map(|(&id, s)| (id, s.len()))
            .collect();
        for (id, n) in idle {
            each(id, n, 0);
        }
        let up: Vec<u64> = self
            .h2
            .lock()
            .iter()
            .filter(|(_, slot)| matches!(slot, H2Slot::Ready(s) if !s.is_closed()))
            .map(|(&id, _)| id)
            .collect();
        for id in up {
            each(id, 0, 1);
        }
    }

    /// Drops connections idle too long or closed by their backend.
    pub fn reap(&self) {
        let now = Instant::now();
        let timeout = self.idle_timeout;
        let mut map = self.h1.lock();
        map.retain(|_, stack| {
            stack.retain_mut(|i| now.duration_since(i.since) < timeout && i.conn.is_idle_alive());
            !stack.is_empty()
        });
        drop(map);
        self.h2.lock().retain(|_, slot| match slot {
            H2Slot::Ready(sender) => !sender.is_closed(),
            H2Slot::Connecting(rx) => is_open(rx),
        });
    }
}

impl H2Dial<'_> {
    /// Shares the connection this dial made and returns it for the caller's
    /// own request. A guarded dial fills its slot and wakes its waiters; an
    /// unguarded one fills the slot only if it is free (otherwise its
    /// connection serves this request alone and closes when it is done).
    pub fn done(mut self, sender: H2Sender) -> H2Sender {
        let mut map = self.pool.h2.lock();
        if let Some(tx) = self.connecting.take() {
            map.insert(self.backend, H2Slot::Ready(sender.clone()));
            drop(map);
            tx.send_replace(Some(sender.clone()));
            return sender;
        }
        let free = match map.get(&self.backend) {
            None => true,
            Some(H2Slot::Ready(s)) => !usable(s),
            Some(H2Slot::Connecting(rx)) => !is_open(rx),
        };
        if free {
            map.insert(self.backend, H2Slot::Ready(sender.clone()));
        }
        sender
    }
}

impl Drop for H2Dial<'_> {
    /// A guarded dial that ends without [`H2Dial::done`] frees its slot; the
    /// channel closing then wakes the waiters, which dial themselves.
    fn drop(&mut self) {
        let Some(tx) = self.connecting.take() else {
            return;
        };
        let mut map = self.pool.h2.lock();
        // Still ours: nobody else replaces an open `Connecting` (see the
        // `h2` field), and ours is open until `tx` drops below.
        if matches!(map.get(&self.backend), Some(H2Slot::Connecting(_))) {
            map.remove(&self.backend);
        }
        drop(map);
        drop(tx);
    }
}

/// The connection a guarded dial sends, or `None` if it failed, was
/// cancelled, or took longer than `wait`.
async fn wait_for_dial(
    mut connecting: watch::Receiver<Option<H2Sender>>,
    wait: Duration,
) -> Option<H2Sender> {
    let sent = tokio::time::timeout(wait, connecting.wait_for(Option::is_some)).await;
    match sent {
        Ok(Ok(sender)) => sender.clone(),
        // The channel closed (no connection), or the wait ran out.
        Ok(Err(_)) | Err(_) => None,
    }
}

/// Whether a shared connection can take another request.
fn usable(sender: &H2Sender) -> bool {
    !sender.is_closed() && sender.is_ready()
}

/// Whether the dial behind a `Connecting` slot is still under way.
fn is_open(rx: &watch::Receiver<Option<H2Sender>>) -> bool {
    !rx.is_closed()
}

#[cfg(test)]
mod tests {
    //! The HTTP/2 "connecting" guard against an in-memory HTTP/2 backend.

    use super::*;
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    const BACKEND: u64 = 7;
    const WAIT: Duration = Duration::from_secs(5);
    const WAITERS: usize = 8;

    /// A new connection to an in-memory HTTP/2 backend that answers 200.
    async fn dial() -> H2Sender {
        let (client, server) = tokio::io::duplex(64 * 1024);
        let service = hyper::service::service_fn(|_req| async {
            Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Empty::<
                bytes::Bytes,
            >::new()))
        });
        tokio::spawn(
            hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(server), service),
        );
        let (sender, conn) = http2::handshake(TokioExecutor::new(), TokioIo::new(client))
            .await
            .expect("h2 handshake");
        tokio::spawn(conn);
        sender
    }

    /// What the forwarder does: share a connection, or dial (counted) and share it.
    async fn checkout(pool: Arc<Pool>, dials: Arc<AtomicUsize>) -> H2Sender {
        match pool.h2(BACKEND, WAIT).await {
            H2Checkout::Ready(sender) => sender,
            H2Checkout::Dial(d) => {
                dials.fetch_add(1, Ordering::SeqCst);
                d.done(dial().await)
            }
        }
    }

    /// Requests waiting for checkouts, started while `first` holds the dial.
    async fn waiters(
        pool: &Arc<Pool>,
        dials: &Arc<AtomicUsize>,
    ) -> Vec<tokio::task::JoinHandle<H2Sender>> {
        let tasks = (0..WAITERS)
            .map(|_| tokio::spawn(checkout(pool.clone(), dials.clone())))
            .collect();
        // Let every waiter reach the pool before the first dial ends.
        tokio::task::yield_now().await;
        tasks
    }

    async fn status(mut sender: H2Sender) -> u16 {
        let req = http::Request::get("http://backend.test/")
            .body(ReqBody::Empty)
            .expect("request");
        sender
            .send_request(req)
            .await
            .expect("response")
            .status()
            .as_u16()
    }

    fn guarded(c: &H2Checkout<'_>) -> bool {
        matches!(
            c,
            H2Checkout::Dial(H2Dial {
                connecting: Some(_),
                ..
            })
        )
    }

    #[tokio::test]
    async fn concurrent_first_checkouts_share_one_dial() {
        let pool = Arc::new(Pool::new(WAIT));
        let dials = Arc::new(AtomicUsize::new(0));
        let first = pool.h2(BACKEND, WAIT).await;
        assert!(guarded(&first), "the first checkout dials");
        let H2Checkout::Dial(first) = first else {
            unreachable!()
        };
        let waiting = waiters(&pool, &dials).await;
        first.done(dial().await);
        for w in waiting {
            assert_eq!(status(w.await.expect("waiter")).await, 200);
        }
        assert_eq!(dials.load(Ordering::SeqCst), 0, "the waiters dialed");
        assert!(matches!(pool.h2(BACKEND, WAIT).await, H2Checkout::Ready(_)));
    }

    #[tokio::test]
    async fn a_failed_dial_lets_every_waiter_dial_itself() {
        let pool = Arc::new(Pool::new(WAIT));
        let dials = Arc::new(AtomicUsize::new(0));
        let H2Checkout::Dial(first) = pool.h2(BACKEND, WAIT).await else {
            panic!("the first checkout dials");
        };
        let waiting = waiters(&pool, &dials).await;
        // The dial failed (or its request was cancelled): the guard drops.
        drop(first);
        for w in waiting {
            assert_eq!(status(w.await.expect("waiter")).await, 200);
        }
        assert_eq!(dials.load(Ordering::SeqCst), WAITERS);
        // One of their connections is now the shared one.
        assert!(matches!(pool.h2(BACKEND, WAIT).await, H2Checkout::Ready(_)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_dial_that_outlasts_the_wait_does_not_hold_its_waiters() {
        let pool = Pool::new(WAIT);
        let first = pool.h2(BACKEND, WAIT).await;
        assert!(guarded(&first));
        // Still dialing after the wait: the waiter dials without the guard,
        // and its connection does not displace the dial under way.
        let late = pool.h2(BACKEND, Duration::from_secs(1)).await;
        assert!(matches!(
            late,
            H2Checkout::Dial(H2Dial {
                connecting: None,
                ..
            })
        ));
        let H2Checkout::Dial(late) = late else {
            unreachable!()
        };
        late.done(dial().await);
        assert!(matches!(
            pool.h2.lock().get(&BACKEND),
            Some(H2Slot::Connecting(_))
        ));
        // The first dial ends without a connection: the next checkout dials.
        drop(first);
        assert!(guarded(&pool.h2(BACKEND, WAIT).await));
    }
}
