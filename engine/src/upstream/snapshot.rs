//! A group's state as ONE immutable [`Snapshot`] behind an `ArcSwap`: the
//! backends in rotation and the balancer's tables are always consistent with
//! each other. Requests `load()` it without a lock; every change (config,
//! registration, health, ejection, drain) updates the members and a new
//! snapshot is published in one store, built off the workers
//! (`upstream::rotation`).

use super::backend::Backend;
use super::member::{Member, MemberState, MemberView, Origin};
use super::members::Members;
use super::outlier::Outcome;
use super::queue::{Limit, Queue};
use super::rotation::Rotation;
use crate::addr::BackendAddr;
use crate::balance::{PickKey, Selector};
use crate::config::defaults::MAX_GROUP_BACKENDS;
use crate::config::{DnsBackend, HealthCheck, Passive, UpstreamConfig, UpstreamProtocol};
use std::collections::HashMap;
use std::sync::Arc;
use tokio::time::Instant;

#[derive(Debug)]
pub struct Snapshot {
    /// Backends in rotation (closed), in a stable order (by address).
    pub backends: Vec<Arc<Backend>>,
    /// Half-open backends, offered to their bounded trials only (see
    /// [`Snapshot::pick`]). Usually empty.
    pub half_open: Vec<Arc<Backend>>,
    pub selector: Selector,
    /// `backends` and `half_open` by sticky id, for a group with
    /// `[upstream.NAME.sticky]` (`upstream::sticky`).
    pub sticky: Option<super::sticky::Table>,
}

/// A backend refused because its group is at [`MAX_GROUP_BACKENDS`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("group {group:?} already has {max} backends, the most a group may have")]
pub struct GroupFull {
    pub group: String,
    pub max: usize,
}

/// An upstream group: its name, how to talk to it, its members and the
/// snapshot built from them.
#[derive(Debug)]
pub struct Group {
    pub name: String,
    pub protocol: UpstreamProtocol,
    pub max_idle_per_backend: usize,
    /// The PROXY header sent on each new connection; such a group never
    /// pools (`upstream::proxy_header`).
    pub proxy_protocol: Option<crate::upstream::proxy_header::SendVersion>,
    /// Upstream TLS, when the group uses it.
    pub tls: Option<crate::upstream::connect::TlsConnector>,
    /// Active checks of every member (`[health]`).
    pub health: Option<HealthCheck>,
    /// Checks of registered members when `health` is `None` (the default
    /// heartbeat; see `UpstreamConfig::heartbeat`).
    pub heartbeat: Option<HealthCheck>,
    pub passive: Passive,
    pub slow_start: std::time::Duration,
    /// Name the chosen backend in `X-Sluice-Backend`.
    pub backend_header: bool,
    /// Backends given by name, for [`super::discovery`].
    pub dns: Vec<DnsBackend>,
    pub resolve_interval: std::time::Duration,
    /// The members and the snapshot (see `upstream::rotation` for who
    /// writes what, and where).
    rotation: Arc<Rotation>,
    /// The sticky cookie, when the group has one (`proxy::sticky`).
    pub sticky: Option<Arc<super::sticky::Sticky>>,
    /// Caps the retries of every route to this group (`proxy::retry`);
    /// kept across a reload that leaves its settings as they were.
    pub retry_budget: Arc<crate::proxy::retry::RetryBudget>,
    /// `max_requests_per_backend` and the queue for the rest; `None` (the
    /// default) costs a request one branch. The queue is kept across a
    /// reload that leaves `max_queue` and `queue_timeout` as they were, so
    /// its waiters are not stranded.
    pub limit: Option<Limit>,
}

impl Group {
    /// A group for `config`. Members of `previous` (the same group before a
    /// reload) carry over with their counters, state and pooled connections.
    /// Its first snapshot is built here, in O(n log n), before any request
    /// can see the group.
    pub fn new(config: &UpstreamConfig, previous: Option<&Group>) -> std::io::Result<Group> {
        if let Some(t) = &config.tls
            && t.verify == crate::config::UpstreamVerify::Insecure
        {
            // Built at start and on every reload: the warning repeats as
            // long as the setting stays.
            tracing::warn!(
                group = %config.name,
                "insecure_skip_verify: this group's backend certificates are not checked; \
                 anyone on the path can pose as its backends"
            );
        }
        let tls = match &config.tls {
            Some(t) => Some(crate::upstream::connect::TlsConnector::new(
                t,
                config.protocol,
            )?),
            None => None,
        };
        let sticky = match &config.sticky {
            Some(c) => Some(Arc::new(super::sticky::Sticky::new(&config.name, c)?)),
            None => None,
        };
        let mut members = previous
            .map(|p| p.rotation.members().clone())
            .unwrap_or_default();
        set_configured(&mut members, &config.backends);
        if previous.is_none() {
            // The members a process starts with take their full share at
            // once (HAProxy: slow start never applies at startup).
            members.update_all(Member::skip_ramp);
        }
        let limit = config.limit.map(|l| Limit {
            per_backend: l.per_backend,
            queue: match previous.and_then(|p| p.limit.as_ref()) {
                Some(p) if p.queue.same(l.max_queue, l.queue_timeout) => p.queue.clone(),
                _ => Arc::new(Queue::new(l.max_queue, l.queue_timeout)),
            },
        });
        let queue = limit.as_ref().map(|l| l.queue.clone());
        Ok(Group {
            name: config.name.clone(),
            protocol: config.protocol,
            max_idle_per_backend: config.max_idle_per_backend,
            proxy_protocol: config.proxy_protocol,
            tls,
            health: config.health.clone(),
            heartbeat: config.heartbeat.clone(),
            passive: config.passive,
            slow_start: config.slow_start,
            backend_header: config.backend_header,
            dns: config.dns.clone(),
            resolve_interval: config.resolve_interval,
            limit,
            retry_budget: match previous {
                Some(p) if p.retry_budget.config == config.retry_budget => p.retry_budget.clone(),
                _ => Arc::new(crate::proxy::retry::RetryBudget::new(config.retry_budget)),
            },
            rotation: Rotation::new(
                config.policy.clone(),
                config.passive,
                config.slow_start,
                members,
                sticky.clone(),
                queue,
            ),
            sticky,
        })
    }

    /// The current snapshot. Hold the guard only for the pick, never across `.await`.
    #[inline]
    pub fn load(&self) -> arc_swap::Guard<Arc<Snapshot>> {
        self.rotation.load()
    }

    /// A backend from the current snapshot for `key`, never one of
    /// `exclude` (see [`Snapshot::pick`]); with a request limit, one below
    /// it if any is ([`Snapshot::pick_limited`]). The snapshot guard lives
    /// only for this call, never across an await.
    #[inline]
    pub fn pick(&self, key: &PickKey<'_>, exclude: &[u64]) -> Option<Arc<Backend>> {
        let snap = self.load();
        match &self.limit {
            None => snap.pick(key, exclude).cloned(),
            Some(limit) => snap.pick_limited(key, exclude, limit.per_backend).cloned(),
        }
    }

    /// Sets the backends that come from the config file. Registered (admin
    /// API) backends stay; members that stay keep their `Arc<Backend>`, and
    /// with it their counters, health and pooled connections.
    pub fn set_configured(&self, list: &[(BackendAddr, u32)]) {
        self.rotation
            .change_now(|members| set_configured(members, list));
    }

    /// Applies a DNS discovery result: new addresses join (while the group
    /// has room), vanished ones drain and are removed once idle, returning
    /// ones rejoin. O(n log n).
    pub fn set_discovered(&self, list: &[(BackendAddr, u32)]) {
        let found: HashMap<BackendAddr, u32> = list.iter().copied().collect();
        self.rotation.change_now(|members| {
            members.retain(|m| {
                let gone = m.origin == Origin::Dns && !found.contains_key(&m.backend.addr);
                !(gone && m.state == MemberState::Draining && m.backend.in_flight() == 0)
            });
            members.update_all(|m| {
                if m.origin != Origin::Dns {
                    return;
                }
                let present = found.contains_key(&m.backend.addr);
                if !present && m.state != MemberState::Draining {
                    m.set_state(MemberState::Draining, "no longer in DNS");
                } else if present && m.state == MemberState::Draining {
                    m.set_state(MemberState::Healthy, "back in DNS");
                }
            });
            let mut dropped = 0;
            for &(addr, weight) in list {
                if members.get(addr).is_some() {
                    continue;
                }
                if members.len() >= MAX_GROUP_BACKENDS {
                    dropped += 1;
                    continue;
                }
                members.insert(Member::joining(
                    Arc::new(Backend::new(addr, weight)),
                    Origin::Dns,
                ));
            }
            if dropped > 0 {
                tracing::warn!(group = %self.name, dropped, max = MAX_GROUP_BACKENDS, "DNS gave more addresses than a group may hold; the rest are left out");
            }
        });
    }

    /// Adds a backend; `Ok(false)` if it is already a member (unless it was
    /// draining, in which case it rejoins); [`GroupFull`] at the cap.
    pub fn add_backend(
        &self,
        addr: BackendAddr,
        weight: u32,
        origin: Origin,
    ) -> Result<bool, GroupFull> {
        self.rotation.change_now(|members| {
            if let Some(m) = members.get(addr) {
                if m.state != MemberState::Draining {
                    return Ok(false);
                }
                members.update(addr, |m| {
                    m.set_state(MemberState::Healthy, "registered again")
                });
                return Ok(true);
            }
            if members.len() >= MAX_GROUP_BACKENDS {
                return Err(GroupFull {
                    group: self.name.clone(),
                    max: MAX_GROUP_BACKENDS,
                });
            }
            Ok(members.insert(Member::joining(
                Arc::new(Backend::new(addr, weight)),
                origin,
            )))
        })
    }

    /// Takes a backend out of rotation; in-flight requests finish. Returns
    /// the backend so the caller can wait for them.
    pub fn drain(&self, addr: BackendAddr) -> Option<Arc<Backend>> {
        self.rotation.change_now(|members| {
            members.update(addr, |m| {
                m.set_state(MemberState::Draining, "drained by the admin API");
                m.backend.clone()
            })
        })
    }

    /// Removes a backend at once; returns whether it was a member.
    pub fn remove_backend(&self, addr: BackendAddr) -> bool {
        self.rotation
            .change_now(|members| members.remove(addr).is_some())
    }

    /// Records an active health check result. The snapshot follows from the
    /// rebuild thread, once for a whole round of checks.
    pub fn record_check(&self, addr: BackendAddr, ok: bool, detail: String) {
        self.rotation.change_later(|members| {
            members.update(addr, |m| {
                if let Some(hc) = self.check_of(m.origin) {
                    m.record_check(ok, detail, hc.rise, hc.fall);
                }
            });
        });
    }

    /// The check this group runs: `[health]` if any, else the heartbeat.
    pub fn active_check(&self) -> Option<&HealthCheck> {
        self.health.as_ref().or(self.heartbeat.as_ref())
    }

    /// The check that applies to members from `origin`: `[health]` to all,
    /// the heartbeat to registered ones only.
    fn check_of(&self, origin: Origin) -> Option<&HealthCheck> {
        match (&self.health, origin) {
            (Some(hc), _) => Some(hc),
            (None, Origin::Registered) => self.heartbeat.as_ref(),
            (None, Origin::Config | Origin::Dns) => None,
        }
    }

    /// Passive check, on the worker that saw the outcome: counts, streaks
    /// and trials on the backend's atomics; when the machine must act (a
    /// streak at its threshold, a trial's result) the backend is flagged and
    /// the group queued for the rebuild thread. No lock, no rebuild here.
    #[inline]
    pub fn record_outcome(&self, backend: &Backend, outcome: Outcome) {
        self.rotation.record_outcome(backend, outcome);
    }

    /// The machine's clock: cool-downs, error windows, slow-start steps
    /// (`Members::tick`). Called by the group's ticker.
    pub fn tick(&self, now: Instant) {
        self.rotation.tick(now);
    }

    /// What the health task calls each round; the same as [`Group::tick`].
    pub fn readmit_expired(&self, now: Instant) {
        self.tick(now);
    }

    /// How often [`Group::tick`] should run: a tenth of the error window
    /// and of the slow-start ramp, a quarter of the first cool-down and of
    /// the half-open timeout, at most a second, at least 10 ms.
    pub fn tick_interval(&self) -> std::time::Duration {
        use std::time::Duration;
        let mut t = Duration::from_secs(1)
            .min(self.passive.error_rate_window / super::outlier::WINDOW_SAMPLES)
            .min(self.passive.ejection / 4)
            .min(self.passive.half_open_timeout / 4);
        if !self.slow_start.is_zero() {
            t = t.min(self.slow_start / super::slow_start::RAMP_STEPS);
        }
        t.max(Duration::from_millis(10))
    }

    /// Members that the health checker should probe: not draining, and
    /// with a check that applies to them ([`Group::active_check`]).
    pub fn probe_targets(&self) -> Vec<BackendAddr> {
        self.rotation
            .members()
            .iter()
            .filter(|m| m.state != MemberState::Draining && self.check_of(m.origin).is_some())
            .map(|m| m.backend.addr)
            .collect()
    }

    /// Registered (not configured) members, for the state file.
    pub fn registered(&self) -> Vec<(BackendAddr, u32)> {
        self.rotation
            .members()
            .iter()
            .filter(|m| m.origin == Origin::Registered && m.state != MemberState::Draining)
            .map(|m| (m.backend.addr, m.backend.weight))
            .collect()
    }

    /// What an operator sees in `GET /backends`: pending ejections applied
    /// and published first, so what it shows is what requests get.
    pub fn views(&self) -> Vec<MemberView> {
        self.rotation.settle();
        let now = Instant::now();
        self.rotation
            .members()
            .iter()
            .map(|m| m.view(self.slow_start, now))
            .collect()
    }

    /// Every member and its state, for `/metrics` (cold: one lock, no view).
    pub fn member_states(&self) -> Vec<(Arc<Backend>, MemberState)> {
        self.rotation.settle();
        self.rotation
            .members()
            .iter()
            .map(|m| (m.backend.clone(), m.state))
            .collect()
    }

    pub fn member(&self, addr: BackendAddr) -> Option<Arc<Backend>> {
        self.rotation.members().get(addr).map(|m| m.backend.clone())
    }

    /// Applies what is queued for this group now (tests).
    #[cfg(test)]
    fn settle(&self) {
        self.rotation.settle();
    }
}

/// Makes the config members of `members` those of `list`, in O(n log n):
/// members whose weight changed are replaced.
fn set_configured(members: &mut Members, list: &[(BackendAddr, u32)]) {
    let wanted: HashMap<BackendAddr, u32> = list.iter().copied().collect();
    members.retain(|m| {
        m.origin != Origin::Config || wanted.get(&m.backend.addr) == Some(&m.backend.weight)
    });
    for &(addr, weight) in list {
        if members.get(addr).is_none() {
            members.insert(Member::joining(
                Arc::new(Backend::new(addr, weight)),
                Origin::Config,
            ));
        }
    }
}

mod pick;

#[cfg(test)]
mod tests;
