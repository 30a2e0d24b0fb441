//! A backend's membership in a group: whether it is in rotation, why, since
//! when, and the recent health checks that put it there. Lives under the
//! group's writer mutex; the request path only ever sees the snapshot.

use super::backend::Backend;
use crate::config::Passive;
use serde::Serialize;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::time::Instant;

/// Health check results kept per backend for `GET /backends`.
const KEEP_CHECKS: usize = 5;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MemberState {
    Healthy,
    Unhealthy,
    Draining,
    Ejected,
}

/// Where a member came from: config members are replaced on reload,
/// registered ones are kept (and saved in the state file).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    Config,
    Registered,
    Dns,
}

#[derive(Clone, Debug, Serialize)]
pub struct CheckRecord {
    pub at_unix_ms: u64,
    pub ok: bool,
    pub detail: String,
}

#[derive(Clone, Debug)]
pub struct Member {
    pub backend: Arc<Backend>,
    pub origin: Origin,
    pub state: MemberState,
    reason: String,
    since: SystemTime,
    checks: VecDeque<CheckRecord>,
    ok_streak: u32,
    bad_streak: u32,
    ejections: u32,
    ejected_until: Option<Instant>,
}

/// One backend as `GET /backends` shows it.
#[derive(Debug, Serialize)]
pub struct MemberView {
    pub address: String,
    pub weight: u32,
    pub origin: Origin,
    pub state: MemberState,
    pub reason: String,
    pub since_unix_ms: u64,
    pub checks: Vec<CheckRecord>,
    pub in_flight: u32,
    pub latency_ewma_micros: u64,
    pub requests: u64,
    pub failures: u64,
    pub ejections: u32,
}

impl Member {
    pub fn new(backend: Arc<Backend>, origin: Origin) -> Member {
        let reason = match origin {
            Origin::Config => "configured",
            Origin::Registered => "registered",
            Origin::Dns => "resolved",
        };
        Member {
            backend,
            origin,
            state: MemberState::Healthy,
            reason: reason.to_owned(),
            since: SystemTime::now(),
            checks: VecDeque::with_capacity(KEEP_CHECKS),
            ok_streak: 0,
            bad_streak: 0,
            ejections: 0,
            ejected_until: None,
        }
    }

    pub fn set_state(&mut self, state: MemberState, reason: impl Into<String>) {
        self.reason = reason.into();
        if self.state != state {
            tracing::info!(backend = %self.backend.addr, from = ?self.state, to = ?state, reason = %self.reason, "backend state change");
            self.since = SystemTime::now();
        }
        self.state = state;
    }

    pub fn record_check(&mut self, ok: bool, detail: String, rise: u32, fall: u32) {
        if self.checks.len() == KEEP_CHECKS {
            self.checks.pop_front();
        }
        self.checks.push_back(CheckRecord {
            at_unix_ms: unix_ms(SystemTime::now()),
            ok,
            detail: detail.clone(),
        });
        if ok {
            self.ok_streak += 1;
            self.bad_streak = 0;
            if self.state == MemberState::Unhealthy && self.ok_streak >= rise {
                self.set_state(MemberState::Healthy, format!("passed {rise} health checks"));
            }
        } else {
            self.bad_streak += 1;
            self.ok_streak = 0;
            if self.state == MemberState::Healthy && self.bad_streak >= fall {
                self.set_state(
                    MemberState::Unhealthy,
                    format!("failed {fall} health checks: {detail}"),
                );
            }
        }
    }

    /// Ejects for a period that doubles with each repeated ejection.
    pub fn eject(&mut self, passive: Passive, streak: u32) {
        self.ejections += 1;
        let factor = 1u32 << (self.ejections - 1).min(16);
        let period = passive
            .ejection
            .saturating_mul(factor)
            .min(passive.max_ejection);
        self.ejected_until = Some(Instant::now() + period);
        self.set_state(
            MemberState::Ejected,
            format!(
                "{streak} consecutive failures; ejected for {}",
                fmt_duration(period)
            ),
        );
    }

    pub fn ejection_over(&self, now: Instant) -> bool {
        self.state == MemberState::Ejected && self.ejected_until.is_some_and(|t| t <= now)
    }

    pub fn readmit(&mut self) {
        self.ejected_until = None;
        self.set_state(MemberState::Healthy, "ejection period over");
    }

    pub fn view(&self) -> MemberView {
        let b = &self.backend;
        MemberView {
            address: b.addr.to_string(),
            weight: b.weight,
            origin: self.origin,
            state: self.state,
            reason: self.reason.clone(),
            since_unix_ms: unix_ms(self.since),
            checks: self.checks.iter().cloned().collect(),
            in_flight: b.in_flight(),
            latency_ewma_micros: b.ewma_micros(),
            requests: b.requests(),
            failures: b.failures(),
            ejections: self.ejections,
        }
    }
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn fmt_duration(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::addr::BackendAddr;

    fn member() -> Member {
        Member::new(
            Arc::new(Backend::new(BackendAddr(([127, 0, 0, 1], 1).into()), 1)),
            Origin::Config,
        )
    }

    #[test]
    fn leaves_after_fall_failures_and_returns_after_rise_successes() {
        let mut m = member();
        m.record_check(false, "refused".into(), 2, 3);
        m.record_check(false, "refused".into(), 2, 3);
        assert_eq!(m.state, MemberState::Healthy);
        m.record_check(false, "refused".into(), 2, 3);
        assert_eq!(m.state, MemberState::Unhealthy);
        assert!(m.reason.contains("refused"));
        m.record_check(true, "200".into(), 2, 3);
        assert_eq!(m.state, MemberState::Unhealthy);
        m.record_check(true, "200".into(), 2, 3);
        assert_eq!(m.state, MemberState::Healthy);
        assert_eq!(m.view().checks.len(), 5);
    }

    #[test]
    fn ejection_period_doubles_up_to_the_cap() {
        let mut m = member();
        let p = Passive {
            failures: 1,
            ejection: Duration::from_secs(10),
            max_ejection: Duration::from_secs(25),
            max_ejected_percent: 100,
        };
        m.eject(p, 1);
        assert!(m.reason.ends_with("10s"), "{}", m.reason);
        m.readmit();
        m.eject(p, 1);
        assert!(m.reason.ends_with("20s"), "{}", m.reason);
        m.readmit();
        m.eject(p, 1);
        assert!(m.reason.ends_with("25s"), "{}", m.reason);
    }
}
