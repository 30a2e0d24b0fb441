//! A group's state as ONE immutable [`Snapshot`] behind an `ArcSwap`: the
//! backends in rotation and the balancer's tables are always consistent with
//! each other. Requests `load()` it without a lock; every change builds a new
//! snapshot off the hot path and publishes it in one store.

use super::backend::Backend;
use crate::addr::BackendAddr;
use crate::balance::{PickKey, Policy, Selector};
use crate::config::{UpstreamConfig, UpstreamProtocol};
use arc_swap::ArcSwap;
use parking_lot::Mutex;
use std::sync::Arc;

#[derive(Debug)]
pub struct Snapshot {
    /// Backends in rotation, in a stable order (by address).
    pub backends: Vec<Arc<Backend>>,
    pub selector: Selector,
}

impl Snapshot {
    pub fn pick(&self, key: &PickKey<'_>) -> Option<&Arc<Backend>> {
        self.selector
            .pick(&self.backends, key)
            .map(|i| &self.backends[i])
    }
}

/// An upstream group: its name, how to talk to it, and its current snapshot.
#[derive(Debug)]
pub struct Group {
    pub name: String,
    /// Index of this group in the runtime's group list.
    pub index: usize,
    pub protocol: UpstreamProtocol,
    pub max_idle_per_backend: usize,
    /// Upstream TLS, when the group uses it.
    pub tls: Option<crate::upstream::connect::TlsConnector>,
    policy: Policy,
    snapshot: ArcSwap<Snapshot>,
    /// Serialises writers so two updates cannot lose each other's changes.
    /// Never taken on the request path.
    write: Mutex<()>,
}

impl Group {
    pub fn new(index: usize, config: &UpstreamConfig) -> std::io::Result<Group> {
        let tls = match &config.tls {
            Some(t) => Some(crate::upstream::connect::TlsConnector::new(
                t,
                config.protocol,
            )?),
            None => None,
        };
        let group = Group {
            name: config.name.clone(),
            index,
            protocol: config.protocol,
            max_idle_per_backend: config.max_idle_per_backend,
            tls,
            policy: config.policy.clone(),
            snapshot: ArcSwap::from_pointee(Snapshot {
                backends: Vec::new(),
                selector: Selector::build(&config.policy, &[]),
            }),
            write: Mutex::new(()),
        };
        group.set_backends(&config.backends);
        Ok(group)
    }

    /// The current snapshot. Hold the guard only for the pick, never across `.await`.
    #[inline]
    pub fn load(&self) -> arc_swap::Guard<Arc<Snapshot>> {
        self.snapshot.load()
    }

    /// Replaces the backend list. Backends that stay keep their `Arc` (and so
    /// their counters and pooled connections).
    pub fn set_backends(&self, list: &[(BackendAddr, u32)]) {
        let _w = self.write.lock();
        let old = self.snapshot.load_full();
        let mut backends: Vec<Arc<Backend>> = list
            .iter()
            .map(|&(addr, weight)| {
                old.backends
                    .iter()
                    .find(|b| b.addr == addr && b.weight == weight)
                    .cloned()
                    .unwrap_or_else(|| Arc::new(Backend::new(addr, weight)))
            })
            .collect();
        backends.sort_by_key(|b| b.addr);
        backends.dedup_by_key(|b| b.addr);
        let selector = Selector::build(&self.policy, &backends);
        self.snapshot
            .store(Arc::new(Snapshot { backends, selector }));
    }

    /// Adds a backend if it is not there yet; returns whether it was added.
    pub fn add_backend(&self, addr: BackendAddr, weight: u32) -> bool {
        let current = self.snapshot.load_full();
        if current.backends.iter().any(|b| b.addr == addr) {
            return false;
        }
        let mut list: Vec<_> = current
            .backends
            .iter()
            .map(|b| (b.addr, b.weight))
            .collect();
        list.push((addr, weight));
        self.set_backends(&list);
        true
    }

    /// Removes a backend; returns whether it was there.
    pub fn remove_backend(&self, addr: BackendAddr) -> bool {
        let current = self.snapshot.load_full();
        let list: Vec<_> = current
            .backends
            .iter()
            .filter(|b| b.addr != addr)
            .map(|b| (b.addr, b.weight))
            .collect();
        if list.len() == current.backends.len() {
            return false;
        }
        self.set_backends(&list);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balance::PickKey;

    fn group(addrs: &[u16]) -> Group {
        let mut c = crate::config::Config::simple(
            ([127, 0, 0, 1], 0).into(),
            &addrs
                .iter()
                .map(|p| ([127, 0, 0, 1], *p).into())
                .collect::<Vec<_>>(),
        );
        Group::new(0, &c.upstreams.remove(0)).unwrap()
    }

    #[test]
    fn counters_survive_a_rebuild() {
        let g = group(&[1, 2]);
        let b1 = g.load().backends[0].clone();
        b1.begin_leak();
        assert!(g.add_backend(BackendAddr(([127, 0, 0, 1], 3).into()), 1));
        let snap = g.load();
        assert_eq!(snap.backends.len(), 3);
        assert!(Arc::ptr_eq(&snap.backends[0], &b1));
        assert_eq!(snap.backends[0].in_flight(), 1);
    }

    #[test]
    fn add_is_idempotent_and_remove_works() {
        let g = group(&[1]);
        let a = BackendAddr(([127, 0, 0, 1], 1).into());
        assert!(!g.add_backend(a, 1));
        assert!(g.remove_backend(a));
        assert!(!g.remove_backend(a));
        let h = http::HeaderMap::new();
        let key = PickKey {
            headers: &h,
            client: crate::addr::ClientAddr(([127, 0, 0, 1], 9).into()),
        };
        assert!(g.load().pick(&key).is_none());
    }
}
