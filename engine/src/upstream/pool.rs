//! Keep-alive connections to backends, one pool per worker (so the lock below
//! is never contended: only that worker's tasks touch it).
//!
//! Built around the protocol, like hyper-util's `Reservation::{Unique, Shared}`:
//! an HTTP/1.1 connection is lent to one request at a time and comes back when
//! the response body has been read to its end; an HTTP/2 connection is shared
//! by every request to that backend.
//!
//! An idle HTTP/1.1 connection is just its socket ([`H1Conn`]): no task, no
//! timer. One the backend closed while idle is dropped at checkout by a
//! non-blocking read ([`H1Conn::is_idle_alive`]), or by [`Pool::reap`]. The
//! race where the FIN arrives just after checkout is handled by the
//! forwarder, which retries once on a fresh connection when that is safe.

use crate::body::ReqBody;
use crate::upstream::h1::H1Conn;
use hyper::client::conn::http2;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::time::Duration;
use tokio::time::Instant;

pub type H2Sender = http2::SendRequest<ReqBody>;

#[derive(Debug)]
struct Idle {
    conn: H1Conn,
    since: Instant,
}

#[derive(Debug)]
pub struct Pool {
    idle_timeout: Duration,
    /// # Concurrency
    /// A `parking_lot::Mutex`, not a tokio one: it is held for a push or pop,
    /// never across `.await`, and only this worker's tasks take it.
    h1: Mutex<HashMap<u64, Vec<Idle>>>,
    h2: Mutex<HashMap<u64, H2Sender>>,
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

    pub fn h2(&self, backend: u64) -> Option<H2Sender> {
        let map = self.h2.lock();
        map.get(&backend)
            .filter(|s| !s.is_closed() && s.is_ready())
            .cloned()
    }

    pub fn set_h2(&self, backend: u64, sender: H2Sender) {
        self.h2.lock().insert(backend, sender);
    }

    /// Idle HTTP/1.1 connections held for `backend`.
    pub fn idle_h1(&self, backend: u64) -> usize {
        self.h1.lock().get(&backend).map_or(0, Vec::len)
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
        self.h2.lock().retain(|_, s| !s.is_closed());
    }
}
