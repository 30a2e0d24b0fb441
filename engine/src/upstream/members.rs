//! The members of one group, keyed (and so ordered) by address: every
//! lookup and change is O(log n), and the counts the group decides by (how
//! many are ejected, whether the set in rotation changed) are kept as
//! members change instead of counted by a scan. Lives under the group's
//! member lock (`upstream::rotation`).

use super::backend::Backend;
use super::member::{Member, MemberState};
use super::slow_start::RAMP_STEPS;
use crate::addr::BackendAddr;
use crate::config::Passive;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// What a snapshot is built from.
#[derive(Debug, Default)]
pub struct InRotation {
    /// Closed members, in address order: what the policies choose from.
    pub backends: Vec<Arc<Backend>>,
    /// Their effective weights, in units of `1/unit` of a weight.
    pub weights: Vec<u32>,
    /// 1, or `RAMP_STEPS` while some backend ramps (slow start).
    pub unit: u32,
    /// Half-open members: offered to their bounded trials only.
    pub half_open: Vec<Arc<Backend>>,
}

#[derive(Clone, Debug, Default)]
pub struct Members {
    map: BTreeMap<BackendAddr, Member>,
    /// Members in [`MemberState::Ejected`] or [`MemberState::HalfOpen`]:
    /// what `max_ejected_percent` caps.
    ejected: usize,
    /// Bumped whenever the set in rotation changes; a snapshot records the
    /// generation it was built from (`upstream::rotation`).
    generation: u64,
}

impl Members {
    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn ejected(&self) -> usize {
        self.ejected
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }

    pub fn get(&self, addr: BackendAddr) -> Option<&Member> {
        self.map.get(&addr)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Member> {
        self.map.values()
    }

    /// The backends in rotation, in address order, with their effective
    /// weights at `now`: what a snapshot holds. O(n).
    pub fn in_rotation(&self, now: Instant, slow_start: Duration) -> InRotation {
        let mut r = InRotation {
            unit: 1,
            ..InRotation::default()
        };
        let ramping = self.map.values().any(|m| m.ramping(now, slow_start));
        for m in self.map.values() {
            match m.state {
                MemberState::Healthy => {
                    r.backends.push(m.backend.clone());
                    r.weights.push(if ramping {
                        m.ramp_weight(now, slow_start)
                    } else {
                        m.backend.weight
                    });
                }
                MemberState::HalfOpen => r.half_open.push(m.backend.clone()),
                _ => {}
            }
        }
        if ramping {
            r.unit = RAMP_STEPS;
        }
        r
    }

    /// Whether ejecting one more member keeps the group within `percent`.
    pub fn room_to_eject(&self, percent: u8) -> bool {
        (self.ejected + 1) * 100 <= self.len() * usize::from(percent)
    }

    /// The machine's clock: breakers whose cool-down is over go half-open,
    /// a half-open one whose trial is overdue opens again, error windows
    /// are sampled (and eject past their threshold, within
    /// the cap), and a slow-start step that moved bumps the generation so
    /// the snapshot follows. O(n).
    pub fn tick(&mut self, now: Instant, p: &Passive, slow_start: Duration) {
        let mut cooled = Vec::new();
        let mut over = Vec::new();
        let mut overdue = Vec::new();
        let mut ramp_moved = false;
        for m in self.map.values_mut() {
            if m.cooled(now) {
                cooled.push(m.backend.addr);
            } else if m.trial_overdue(p, now) {
                overdue.push(m.backend.addr);
            } else if let Some(cause) = m.sample_errors(p, now) {
                over.push((m.backend.addr, cause));
            }
            ramp_moved |= m.advance_ramp(now, slow_start);
        }
        for addr in cooled {
            self.update(addr, |m| m.half_open(p));
        }
        for addr in overdue {
            let ms = p.half_open_timeout.as_millis();
            let cause = format!("a trial request did not finish within {ms}ms");
            self.update(addr, |m| m.eject(p, cause, now));
        }
        for (addr, cause) in over {
            if self.room_to_eject(p.max_ejected_percent) {
                self.update(addr, |m| m.eject(p, cause, now));
            }
        }
        if ramp_moved {
            self.generation += 1;
        }
    }

    /// Adds `m` unless its address is taken; returns whether it was added.
    pub fn insert(&mut self, m: Member) -> bool {
        let addr = m.backend.addr;
        if self.map.contains_key(&addr) {
            return false;
        }
        self.account(None, Some(&m));
        self.map.insert(addr, m);
        true
    }

    /// Removes the member at `addr`; it leaves rotation at once.
    pub fn remove(&mut self, addr: BackendAddr) -> Option<Member> {
        let m = self.map.remove(&addr)?;
        self.account(Some(m.state), None);
        m.backend.set_in_rotation(false);
        Some(m)
    }

    /// Keeps the members for which `keep` holds; the others leave rotation.
    pub fn retain(&mut self, mut keep: impl FnMut(&Member) -> bool) {
        let gone: Vec<BackendAddr> = self
            .map
            .values()
            .filter(|m| !keep(m))
            .map(|m| m.backend.addr)
            .collect();
        for addr in gone {
            self.remove(addr);
        }
    }

    /// Applies `change` to the member at `addr`, keeping the counts true.
    pub fn update<R>(
        &mut self,
        addr: BackendAddr,
        change: impl FnOnce(&mut Member) -> R,
    ) -> Option<R> {
        let m = self.map.get_mut(&addr)?;
        let before = m.state;
        let r = change(m);
        let after = m.state;
        m.backend.set_in_rotation(after.in_rotation());
        self.transition(before, after);
        Some(r)
    }

    /// Applies `change` to every member, keeping the counts true.
    pub fn update_all(&mut self, mut change: impl FnMut(&mut Member)) {
        let mut moves = Vec::new();
        for m in self.map.values_mut() {
            let before = m.state;
            change(m);
            if m.state != before {
                m.backend.set_in_rotation(m.state.in_rotation());
                moves.push((before, m.state));
            }
        }
        for (before, after) in moves {
            self.transition(before, after);
        }
    }

    fn transition(&mut self, before: MemberState, after: MemberState) {
        if before != after {
            self.account(Some(before), None);
            self.count(after, 1);
        }
    }

    /// Counts a member's arrival (`after`) or departure (`before`).
    fn account(&mut self, before: Option<MemberState>, after: Option<&Member>) {
        if let Some(state) = before {
            self.count(state, -1);
        }
        if let Some(m) = after {
            m.backend.set_in_rotation(m.state.in_rotation());
            self.count(m.state, 1);
        }
    }

    fn count(&mut self, state: MemberState, delta: isize) {
        if state.in_rotation() {
            self.generation += 1;
        }
        if matches!(state, MemberState::Ejected | MemberState::HalfOpen) {
            self.ejected = self.ejected.saturating_add_signed(delta);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::member::Origin;

    fn member(port: u16) -> Member {
        let addr = BackendAddr(([127, 0, 0, 1], port).into());
        Member::new(Arc::new(Backend::new(addr, 1)), Origin::Config)
    }

    fn addr(port: u16) -> BackendAddr {
        BackendAddr(([127, 0, 0, 1], port).into())
    }

    #[test]
    fn counts_follow_every_kind_of_change() {
        let mut m = Members::default();
        assert!(m.insert(member(2)));
        assert!(m.insert(member(1)));
        assert!(!m.insert(member(1)), "one member per address");
        let g = m.generation();
        let p = crate::config::Passive::default();
        let now = Instant::now();
        m.update(addr(1), |x| x.eject(&p, "test", now));
        assert_eq!(m.ejected(), 1);
        assert!(m.generation() > g, "leaving rotation is a new generation");
        assert!(!m.get(addr(1)).unwrap().backend.in_rotation());
        let g = m.generation();
        m.update(addr(2), |x| x.set_state(MemberState::Healthy, "again"));
        assert_eq!(m.generation(), g, "no change, no new generation");
        let g = m.generation();
        m.tick(now + Duration::from_secs(3600), &p, Duration::ZERO);
        assert_eq!(m.get(addr(1)).unwrap().state, MemberState::HalfOpen);
        assert_eq!(m.ejected(), 1, "half-open still counts against the cap");
        assert!(m.generation() > g, "half-open joins the snapshot");
        assert!(m.get(addr(1)).unwrap().backend.in_rotation());
        assert_eq!(m.in_rotation(now, Duration::ZERO).half_open.len(), 1);
        m.update(addr(1), |x| x.set_state(MemberState::Healthy, "trials"));
        assert_eq!(m.ejected(), 0);
        m.update(addr(2), |x| x.eject(&p, "test", now));
        m.retain(|x| x.state != MemberState::Ejected);
        assert_eq!((m.len(), m.ejected()), (1, 0));
        let order: Vec<u16> = m.iter().map(|x| x.backend.addr.0.port()).collect();
        assert_eq!(order, vec![1]);
    }
}
