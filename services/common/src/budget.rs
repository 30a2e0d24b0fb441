//! A byte budget for request bodies in flight, shared by one service's
//! connections.
//!
//! Each service bounds one body (413) and the connections (the serve loop's
//! cap), but not their product: 900 connections uploading 1 MiB each hold
//! 900 MiB before anything is stored, outside every other bound. A handler
//! reserves a body's bytes here before (or while) buffering them and keeps
//! the reservation until it no longer holds the buffer; when the budget is
//! spent the request is refused at once (503) rather than queued, so a slow
//! upload can never make a fast one wait.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The bytes still free, as semaphore permits (one per byte). Shared by
/// every connection task of a service through `Clone`; never closed.
#[derive(Clone, Debug)]
pub struct BodyBudget {
    permits: Arc<Semaphore>,
}

/// Bytes reserved by one request; given back when dropped.
#[derive(Debug, Default)]
pub struct Reservation(Option<OwnedSemaphorePermit>);

impl BodyBudget {
    /// A budget of `bytes` (at most tokio's permit limit, about 2^61).
    pub fn new(bytes: u64) -> Self {
        let bytes = usize::try_from(bytes).unwrap_or(usize::MAX);
        Self {
            permits: Arc::new(Semaphore::new(bytes.min(Semaphore::MAX_PERMITS))),
        }
    }

    /// Adds `bytes` to `held` if the budget has them free now; false (and
    /// `held` unchanged) if not.
    pub fn reserve(&self, held: &mut Reservation, bytes: u64) -> bool {
        if bytes == 0 {
            return true;
        }
        let Ok(n) = u32::try_from(bytes) else {
            return false;
        };
        match Arc::clone(&self.permits).try_acquire_many_owned(n) {
            Ok(permit) => {
                match &mut held.0 {
                    Some(existing) => existing.merge(permit),
                    None => held.0 = Some(permit),
                }
                true
            }
            Err(_) => false,
        }
    }

    /// Bytes free now (for tests and stats).
    pub fn available(&self) -> usize {
        self.permits.available_permits()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_add_up_and_are_given_back_on_drop() {
        let budget = BodyBudget::new(100);
        let mut a = Reservation::default();
        assert!(budget.reserve(&mut a, 60));
        assert!(budget.reserve(&mut a, 30));
        let mut b = Reservation::default();
        assert!(!budget.reserve(&mut b, 11), "only 10 left");
        assert!(budget.reserve(&mut b, 10));
        assert_eq!(budget.available(), 0);
        drop(a);
        assert_eq!(budget.available(), 90);
        assert!(budget.reserve(&mut b, 0));
        assert!(!budget.reserve(&mut b, u64::MAX));
        drop(b);
        assert_eq!(budget.available(), 100);
    }
}
