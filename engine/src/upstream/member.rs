//! A backend's membership in a group and its ONE state machine: whether it
//! is in rotation, why, since when, and what moved it there. Lives under
//! the group's member lock (`upstream::rotation`); the request path only
//! ever sees the snapshot built from it and the backend's atomics.
//!
//! ```text
//!            fall checks                      rise checks
//!  Healthy ──────────────► Unhealthy ────────────────────► Healthy (ramps)
//!  (closed)
//!     │ streak / error rate (within max_ejected_percent)
//!     ▼
//!  Ejected ──cool-down──► HalfOpen ──N trial successes──► Healthy (ramps)
//!  (open)  ◄──a failed trial, or one unfinished past half_open_timeout──┘
//!          (next, longer cool-down)
//!  any ──admin drain / gone from DNS──► Draining ──registered / back──► Healthy
//! ```
//!
//! Every transition goes through [`Member::set_state`], which records its
//! reason and time, and keeps the backend's atomics (in rotation, trial
//! gate, half-open mark) in step with the state.

use super::backend::Backend;
use super::breaker::{Breaker, BreakerView};
use super::outlier::{Cause, ErrorRate, ErrorWindow, StreakCounts};
use super::slow_start::{RAMP_STEPS, Ramp};
use crate::config::Passive;
use serde::Serialize;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::time::Instant;

/// Health check results kept per backend for `GET /backends`.
const KEEP_CHECKS: usize = 5;
/// Transitions kept per backend for `GET /backends`.
const KEEP_TRANSITIONS: usize = 8;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum MemberState {
    /// In rotation (the breaker is closed).
    Healthy,
    /// Out: failed its active checks.
    Unhealthy,
    /// Out: no new requests, in-flight ones finish.
    Draining,
    /// Out: ejected by outlier detection (the breaker is open).
    Ejected,
    /// Takes only its bounded trial requests.
    HalfOpen,
}

impl MemberState {
    /// Whether the snapshot offers the backend (half-open: to trials only).
    pub fn in_rotation(self) -> bool {
        matches!(self, MemberState::Healthy | MemberState::HalfOpen)
    }
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

/// One transition of the machine.
#[derive(Clone, Debug, Serialize)]
pub struct Transition {
    pub at_unix_ms: u64,
    pub from: MemberState,
    pub to: MemberState,
    pub reason: String,
}

#[derive(Clone, Debug)]
pub struct Member {
    pub backend: Arc<Backend>,
    pub origin: Origin,
    pub state: MemberState,
    reason: String,
    since: SystemTime,
    transitions: VecDeque<Transition>,
    checks: VecDeque<CheckRecord>,
    ok_streak: u32,
    bad_streak: u32,
    breaker: Breaker,
    /// While half-open with trials in flight: since when none of them has
    /// succeeded, and the period's successes then (`trial_overdue`).
    trial_watch: Option<(Instant, u32)>,
    errors: ErrorWindow,
    ramp: Ramp,
}

/// One backend as `GET /backends` shows it.
#[derive(Debug, Serialize)]
pub struct MemberView {
    pub address: String,
    pub weight: u32,
    /// The weight the balancer uses now (below `weight` while slow start ramps).
    pub effective_weight: f64,
    pub origin: Origin,
    pub state: MemberState,
    pub reason: String,
    pub since_unix_ms: u64,
    pub transitions: Vec<Transition>,
    pub checks: Vec<CheckRecord>,
    pub in_flight: u32,
    pub latency_ewma_micros: u64,
    pub requests: u64,
    pub failures: u64,
    /// Times the breaker opened.
    pub ejections: u32,
    pub breaker: BreakerView,
    pub streaks: StreakCounts,
    /// Over the passive error-rate window; absent without requests in it.
    pub error_rate: Option<ErrorRate>,
}

impl Member {
    /// A member at full weight (a ramp starts only on a later return, or
    /// through [`Member::joining`]).
    pub fn new(backend: Arc<Backend>, origin: Origin) -> Member {
        let reason = match origin {
            Origin::Config => "configured",
            Origin::Registered => "registered",
            Origin::Dns => "resolved",
        };
        let mut ramp = Ramp::default();
        ramp.finish();
        Member {
            backend,
            origin,
            state: MemberState::Healthy,
            reason: reason.to_owned(),
            since: SystemTime::now(),
            transitions: VecDeque::with_capacity(KEEP_TRANSITIONS),
            checks: VecDeque::with_capacity(KEEP_CHECKS),
            ok_streak: 0,
            bad_streak: 0,
            breaker: Breaker::default(),
            trial_watch: None,
            errors: ErrorWindow::default(),
            ramp,
        }
    }

    /// A member added after startup: it ramps up under slow start.
    pub fn joining(backend: Arc<Backend>, origin: Origin) -> Member {
        let mut m = Member::new(backend, origin);
        m.ramp.start(Instant::now());
        m
    }

    /// The one place a state changes: records the reason and the time, and
    /// keeps the backend's atomics in step. Entering `Healthy` starts a
    /// slow-start ramp and a clean error window.
    pub fn set_state(&mut self, state: MemberState, reason: impl Into<String>) {
        self.reason = reason.into();
        let from = self.state;
        if from == state {
            return;
        }
        tracing::info!(backend = %self.backend.addr, ?from, to = ?state, reason = %self.reason, "backend state change");
        let now = SystemTime::now();
        self.since = now;
        if self.transitions.len() == KEEP_TRANSITIONS {
            self.transitions.pop_front();
        }
        self.transitions.push_back(Transition {
            at_unix_ms: unix_ms(now),
            from,
            to: state,
            reason: self.reason.clone(),
        });
        self.state = state;
        if from == MemberState::HalfOpen {
            self.backend.gate.close();
            self.backend.reset_streaks(false);
        }
        if state != MemberState::Ejected {
            self.breaker.clear();
        }
        if state == MemberState::Healthy {
            self.ramp.start(Instant::now());
            self.errors.clear();
            self.backend.reset_streaks(false);
        }
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
            let live = matches!(self.state, MemberState::Healthy | MemberState::HalfOpen);
            if live && self.bad_streak >= fall {
                self.set_state(
                    MemberState::Unhealthy,
                    format!("failed {fall} health checks: {detail}"),
                );
            }
        }
    }

    /// Opens the breaker: out of rotation for the next cool-down.
    pub fn eject(&mut self, p: &Passive, cause: impl std::fmt::Display, now: Instant) {
        let cooldown = self.breaker.open(p, now);
        self.set_state(
            MemberState::Ejected,
            format!("{cause}; ejected for {}", fmt_duration(cooldown)),
        );
    }

    /// The machine's answer to a worker's ask (`Backend::ask`), with `room`
    /// saying whether the group's ejection cap allows one more.
    pub fn on_ask(&mut self, p: &Passive, room: bool, now: Instant) {
        match self.state {
            MemberState::Healthy => {
                if let Some(cause) = self.backend.streaks().crossed(p) {
                    if room {
                        self.eject(p, cause, now);
                    }
                    // Counted afresh either way: a capped backend asks again
                    // after another full streak, not on every failure.
                    self.backend.reset_streaks(false);
                }
            }
            MemberState::HalfOpen => {
                if self.backend.gate.has_failed() {
                    self.eject(p, "a trial request failed", now);
                } else if self.backend.gate.successes() >= p.half_open_successes {
                    let n = p.half_open_successes;
                    self.set_state(
                        MemberState::Healthy,
                        format!("{n} trial requests succeeded"),
                    );
                }
            }
            MemberState::Unhealthy | MemberState::Draining | MemberState::Ejected => {}
        }
    }

    /// Half-open once the cool-down is over.
    pub fn cooled(&self, now: Instant) -> bool {
        self.state == MemberState::Ejected && self.breaker.cooled(now)
    }

    pub fn half_open(&mut self, p: &Passive) {
        self.trial_watch = None;
        self.backend.gate.half_open(p.half_open_trials);
        self.backend.reset_streaks(true);
        let (k, n) = (p.half_open_trials, p.half_open_successes);
        self.set_state(
            MemberState::HalfOpen,
            format!("cool-down over; {n} successful trials close it, {k} at a time"),
        );
    }

    /// Whether a half-open backend has had trials in flight for
    /// `half_open_timeout` with none of them succeeding: an unfinished trial
    /// counts as failed (else one that never ends keeps the backend
    /// half-open, and out of rotation, forever). Called by the tick, so
    /// known to within a tick; a watch restarts whenever no trial is in
    /// flight or one succeeds.
    pub fn trial_overdue(&mut self, p: &Passive, now: Instant) -> bool {
        if self.state != MemberState::HalfOpen {
            return false;
        }
        let gate = &self.backend.gate;
        let successes = gate.successes();
        match self.trial_watch {
            _ if gate.trials_in_flight() == 0 => {
                self.trial_watch = None;
                false
            }
            Some((since, seen)) if seen == successes => {
                now.saturating_duration_since(since) >= p.half_open_timeout
            }
            _ => {
                self.trial_watch = Some((now, successes));
                false
            }
        }
    }

    /// Samples the error window (in rotation only); the cause when its
    /// rate crosses the threshold.
    pub fn sample_errors(&mut self, p: &Passive, now: Instant) -> Option<Cause> {
        if self.state != MemberState::Healthy {
            return None;
        }
        let b = &self.backend;
        self.errors
            .sample(now, p.error_rate_window, b.requests(), b.failures());
        self.errors.crossed(p)
    }

    /// Moves the slow-start ramp on; true when the snapshot must follow.
    pub fn advance_ramp(&mut self, now: Instant, slow_start: Duration) -> bool {
        self.state == MemberState::Healthy && self.ramp.advance(now, slow_start)
    }

    /// Whether this member's weight is below full at `now`.
    pub fn ramping(&self, now: Instant, slow_start: Duration) -> bool {
        self.state == MemberState::Healthy && self.ramp.ramping(now, slow_start)
    }

    /// The weight in units of `1/RAMP_STEPS`: `weight × step`.
    pub fn ramp_weight(&self, now: Instant, slow_start: Duration) -> u32 {
        self.backend
            .weight
            .saturating_mul(self.ramp.step(now, slow_start))
    }

    /// Full weight from now on (the members a process starts with).
    pub fn skip_ramp(&mut self) {
        self.ramp.finish();
    }

    pub fn view(&self, slow_start: Duration, now: Instant) -> MemberView {
        let b = &self.backend;
        MemberView {
            address: b.addr.to_string(),
            weight: b.weight,
            effective_weight: f64::from(self.ramp_weight(now, slow_start)) / f64::from(RAMP_STEPS),
            origin: self.origin,
            state: self.state,
            reason: self.reason.clone(),
            since_unix_ms: unix_ms(self.since),
            transitions: self.transitions.iter().cloned().collect(),
            checks: self.checks.iter().cloned().collect(),
            in_flight: b.in_flight(),
            latency_ewma_micros: b.ewma_micros(),
            requests: b.requests(),
            failures: b.failures(),
            ejections: self.breaker.opened,
            breaker: BreakerView::new(&self.breaker, &b.gate, now),
            streaks: b.streaks(),
            error_rate: self.errors.rate(),
        }
    }
}

pub(crate) fn unix_ms(t: SystemTime) -> u64 {
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
mod tests;
