//! A group's state as ONE immutable [`Snapshot`] behind an `ArcSwap`: the
//! backends in rotation and the balancer's tables are always consistent with
//! each other. Requests `load()` it without a lock; every change (config,
//! registration, health, ejection, drain) updates the member list under a
//! writer-only mutex and publishes a new snapshot in one store.

use super::backend::Backend;
use super::member::{Member, MemberState, MemberView, Origin};
use crate::addr::BackendAddr;
use crate::balance::{PickKey, Policy, Selector};
use crate::config::{DnsBackend, HealthCheck, Passive, UpstreamConfig, UpstreamProtocol};
use arc_swap::ArcSwap;
use parking_lot::Mutex;
use std::sync::Arc;
use tokio::time::Instant;

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

/// An upstream group: its name, how to talk to it, its members and the
/// snapshot built from them.
#[derive(Debug)]
pub struct Group {
    pub name: String,
    pub protocol: UpstreamProtocol,
    pub max_idle_per_backend: usize,
    /// Upstream TLS, when the group uses it.
    pub tls: Option<crate::upstream::connect::TlsConnector>,
    pub health: Option<HealthCheck>,
    pub passive: Passive,
    /// Backends given by name, for [`super::discovery`].
    pub dns: Vec<DnsBackend>,
    pub resolve_interval: std::time::Duration,
    policy: Policy,
    /// What requests read.
    ///
    /// # Concurrency
    /// Every request on every worker thread [`Group::load`]s it (no lock, no
    /// contention) and drops the guard after the pick, before any `.await`;
    /// a request keeps only the `Arc<Backend>` it picked. Stored only by
    /// [`Group::update`] while it holds `members`, so publishes never
    /// interleave and the last one stored is built from the latest members.
    snapshot: ArcSwap<Snapshot>,
    /// # Concurrency
    /// The source of truth for writers (admin API, health checks, ejection,
    /// reload). A `parking_lot::Mutex`, never held across `.await` and never
    /// taken on the request path except when a backend crosses the passive
    /// failure threshold.
    members: Mutex<Vec<Member>>,
}

impl Group {
    /// A group for `config`. Members of `previous` (the same group before a
    /// reload) carry over with their counters, state and pooled connections.
    pub fn new(config: &UpstreamConfig, previous: Option<&Group>) -> std::io::Result<Group> {
        let tls = match &config.tls {
            Some(t) => Some(crate::upstream::connect::TlsConnector::new(
                t,
                config.protocol,
            )?),
            None => None,
        };
        let group = Group {
            name: config.name.clone(),
            protocol: config.protocol,
            max_idle_per_backend: config.max_idle_per_backend,
            tls,
            health: config.health.clone(),
            passive: config.passive,
            dns: config.dns.clone(),
            resolve_interval: config.resolve_interval,
            policy: config.policy.clone(),
            snapshot: ArcSwap::from_pointee(Snapshot {
                backends: Vec::new(),
                selector: Selector::build(&config.policy, &[]),
            }),
            members: Mutex::new(
                previous
                    .map(|p| p.members.lock().clone())
                    .unwrap_or_default(),
            ),
        };
        group.set_configured(&config.backends);
        Ok(group)
    }

    /// The current snapshot. Hold the guard only for the pick, never across `.await`.
    #[inline]
    pub fn load(&self) -> arc_swap::Guard<Arc<Snapshot>> {
        self.snapshot.load()
    }

    /// A backend from the current snapshot for `key`, never `exclude`. The
    /// snapshot guard lives only for this call, never across an await.
    #[inline]
    pub fn pick(&self, key: &PickKey<'_>, exclude: Option<u64>) -> Option<Arc<Backend>> {
        self.load()
            .pick(key)
            .filter(|b| Some(b.id) != exclude)
            .cloned()
    }

    /// Sets the backends that come from the config file. Registered (admin
    /// API) backends stay; members that stay keep their `Arc<Backend>`, and
    /// with it their counters, health and pooled connections.
    pub fn set_configured(&self, list: &[(BackendAddr, u32)]) {
        self.update(|members| {
            members.retain(|m| {
                m.origin != Origin::Config
                    || list
                        .iter()
                        .any(|&(a, w)| a == m.backend.addr && w == m.backend.weight)
            });
            for &(addr, weight) in list {
                if !members.iter().any(|m| m.backend.addr == addr) {
                    members.push(Member::new(
                        Arc::new(Backend::new(addr, weight)),
                        Origin::Config,
                    ));
                }
            }
        });
    }

    /// Applies a DNS discovery result: new addresses join, vanished ones
    /// drain and are removed once idle, returning ones rejoin.
    pub fn set_discovered(&self, found: &[(BackendAddr, u32)]) {
        self.update(|members| {
            members.retain(|m| {
                let gone =
                    m.origin == Origin::Dns && !found.iter().any(|(a, _)| *a == m.backend.addr);
                !(gone && m.state == MemberState::Draining && m.backend.in_flight() == 0)
            });
            for m in members.iter_mut().filter(|m| m.origin == Origin::Dns) {
                let present = found.iter().any(|(a, _)| *a == m.backend.addr);
                if !present && m.state != MemberState::Draining {
                    m.set_state(MemberState::Draining, "no longer in DNS");
                } else if present && m.state == MemberState::Draining {
                    m.set_state(MemberState::Healthy, "back in DNS");
                }
            }
            for &(addr, weight) in found {
                if !members.iter().any(|m| m.backend.addr == addr) {
                    members.push(Member::new(
                        Arc::new(Backend::new(addr, weight)),
                        Origin::Dns,
                    ));
                }
            }
        });
    }

    /// Adds a backend; a no-op (returns false) if it is already a member
    /// (unless it was draining, in which case it rejoins).
    pub fn add_backend(&self, addr: BackendAddr, weight: u32, origin: Origin) -> bool {
        self.update(
            |members| match members.iter_mut().find(|m| m.backend.addr == addr) {
                Some(m) if m.state == MemberState::Draining => {
                    m.set_state(MemberState::Healthy, "registered again");
                    true
                }
                Some(_) => false,
                None => {
                    members.push(Member::new(Arc::new(Backend::new(addr, weight)), origin));
                    true
                }
            },
        )
    }

    /// Takes a backend out of rotation; in-flight requests finish. Returns
    /// the backend so the caller can wait for them.
    pub fn drain(&self, addr: BackendAddr) -> Option<Arc<Backend>> {
        self.update(|members| {
            let m = members.iter_mut().find(|m| m.backend.addr == addr)?;
            m.set_state(MemberState::Draining, "drained by the admin API");
            Some(m.backend.clone())
        })
    }

    /// Removes a backend at once; returns whether it was a member.
    pub fn remove_backend(&self, addr: BackendAddr) -> bool {
        self.update(|members| {
            let before = members.len();
            members.retain(|m| {
                let keep = m.backend.addr != addr;
                if !keep {
                    m.backend.set_in_rotation(false);
                }
                keep
            });
            members.len() != before
        })
    }

    /// Records an active health check result.
    pub fn record_check(&self, addr: BackendAddr, ok: bool, detail: String) {
        let Some(hc) = &self.health else { return };
        let (rise, fall) = (hc.rise, hc.fall);
        self.update(|members| {
            if let Some(m) = members.iter_mut().find(|m| m.backend.addr == addr) {
                m.record_check(ok, detail, rise, fall);
            }
        });
    }

    /// Passive check: a request to `backend` failed (or succeeded). Crossing
    /// the threshold ejects it, unless that would eject too much of the group.
    pub fn record_outcome(&self, backend: &Backend, failed: bool) {
        if !failed {
            backend.reset_streak();
            return;
        }
        let streak = backend.fail_streak();
        if self.passive.failures == 0 || streak < self.passive.failures {
            return;
        }
        let passive = self.passive;
        self.update(|members| {
            let total = members.len();
            let ejected = members
                .iter()
                .filter(|m| m.state == MemberState::Ejected)
                .count();
            if (ejected + 1) * 100 > total * usize::from(passive.max_ejected_percent) {
                return;
            }
            if let Some(m) = members
                .iter_mut()
                .find(|m| m.backend.addr == backend.addr && m.state == MemberState::Healthy)
            {
                m.eject(passive, streak);
                backend.reset_streak();
            }
        });
    }

    /// Returns ejected backends whose period is over. Called by the health task.
    pub fn readmit_expired(&self, now: Instant) {
        let due = self.members.lock().iter().any(|m| m.ejection_over(now));
        if due {
            self.update(|members| {
                members
                    .iter_mut()
                    .filter(|m| m.ejection_over(now))
                    .for_each(Member::readmit)
            });
        }
    }

    /// Members that the health checker should probe (not draining).
    pub fn probe_targets(&self) -> Vec<BackendAddr> {
        self.members
            .lock()
            .iter()
            .filter(|m| m.state != MemberState::Draining)
            .map(|m| m.backend.addr)
            .collect()
    }

    /// Registered (not configured) members, for the state file.
    pub fn registered(&self) -> Vec<(BackendAddr, u32)> {
        self.members
            .lock()
            .iter()
            .filter(|m| m.origin == Origin::Registered && m.state != MemberState::Draining)
            .map(|m| (m.backend.addr, m.backend.weight))
            .collect()
    }

    /// What an operator sees in `GET /backends`.
    pub fn views(&self) -> Vec<MemberView> {
        self.members.lock().iter().map(Member::view).collect()
    }

    pub fn member(&self, addr: BackendAddr) -> Option<Arc<Backend>> {
        self.members
            .lock()
            .iter()
            .find(|m| m.backend.addr == addr)
            .map(|m| m.backend.clone())
    }

    /// Applies `change` to the members and publishes a new snapshot of those
    /// in rotation. The only writer path.
    fn update<R>(&self, change: impl FnOnce(&mut Vec<Member>) -> R) -> R {
        let mut members = self.members.lock();
        let r = change(&mut members);
        members.sort_by_key(|m| m.backend.addr);
        members.dedup_by_key(|m| m.backend.addr);
        for m in members.iter() {
            m.backend.set_in_rotation(m.state == MemberState::Healthy);
        }
        let backends: Vec<Arc<Backend>> = members
            .iter()
            .filter(|m| m.state == MemberState::Healthy)
            .map(|m| m.backend.clone())
            .collect();
        let selector = Selector::build(&self.policy, &backends);
        self.snapshot
            .store(Arc::new(Snapshot { backends, selector }));
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balance::PickKey;

    fn addr(p: u16) -> BackendAddr {
        BackendAddr(([127, 0, 0, 1], p).into())
    }

    fn group(ports: &[u16]) -> Group {
        let mut c = crate::config::Config::simple(
            ([127, 0, 0, 1], 0).into(),
            &ports.iter().map(|p| addr(*p).0).collect::<Vec<_>>(),
        );
        c.upstreams[0].passive.failures = 2;
        Group::new(&c.upstreams.remove(0), None).unwrap()
    }

    #[test]
    fn counters_survive_a_rebuild() {
        let g = group(&[1, 2]);
        let b1 = g.load().backends[0].clone();
        b1.begin_leak();
        assert!(g.add_backend(addr(3), 1, Origin::Registered));
        let snap = g.load();
        assert_eq!(snap.backends.len(), 3);
        assert!(Arc::ptr_eq(&snap.backends[0], &b1));
        assert_eq!(snap.backends[0].in_flight(), 1);
    }

    #[test]
    fn add_is_idempotent_and_remove_works() {
        let g = group(&[1]);
        assert!(!g.add_backend(addr(1), 1, Origin::Registered));
        assert!(g.remove_backend(addr(1)));
        assert!(!g.remove_backend(addr(1)));
        let h = http::HeaderMap::new();
        let key = PickKey {
            headers: &h,
            client: crate::addr::ClientAddr(([127, 0, 0, 1], 9).into()),
        };
        assert!(g.load().pick(&key).is_none());
    }

    #[test]
    fn drained_backends_leave_rotation_and_can_rejoin() {
        let g = group(&[1, 2]);
        assert!(g.drain(addr(1)).is_some());
        assert_eq!(g.load().backends.len(), 1);
        assert!(g.add_backend(addr(1), 1, Origin::Registered));
        assert_eq!(g.load().backends.len(), 2);
    }

    #[test]
    fn passive_ejection_respects_the_cap() {
        let g = group(&[1, 2]);
        let (b1, b2) = (g.member(addr(1)).unwrap(), g.member(addr(2)).unwrap());
        for _ in 0..2 {
            b1.record_failure();
            g.record_outcome(&b1, true);
        }
        assert_eq!(
            g.load().backends.len(),
            1,
            "first ejection allowed (50% of 2)"
        );
        for _ in 0..2 {
            b2.record_failure();
            g.record_outcome(&b2, true);
        }
        assert_eq!(g.load().backends.len(), 1, "second would exceed the cap");
        g.readmit_expired(Instant::now() + std::time::Duration::from_secs(3600));
        assert_eq!(g.load().backends.len(), 2);
    }

    #[test]
    fn discovery_adds_drains_and_removes() {
        let g = group(&[]);
        g.set_discovered(&[(addr(1), 1), (addr(2), 1)]);
        assert_eq!(g.load().backends.len(), 2);
        let b2 = g.member(addr(2)).unwrap();
        b2.begin_leak();
        g.set_discovered(&[(addr(1), 1)]);
        assert_eq!(
            g.load().backends.len(),
            1,
            "vanished address leaves rotation at once"
        );
        g.set_discovered(&[(addr(1), 1)]);
        assert!(
            g.member(addr(2)).is_some(),
            "kept while a request is in flight"
        );
        g.set_discovered(&[(addr(1), 1), (addr(2), 1)]);
        assert_eq!(g.load().backends.len(), 2, "a returning address rejoins");
    }

    #[test]
    fn configured_backends_are_replaced_registered_ones_stay() {
        let g = group(&[1, 2]);
        g.add_backend(addr(9), 1, Origin::Registered);
        g.set_configured(&[(addr(2), 1), (addr(3), 1)]);
        let ports: Vec<u16> = g.load().backends.iter().map(|b| b.addr.0.port()).collect();
        assert_eq!(ports, vec![2, 3, 9]);
    }
}
