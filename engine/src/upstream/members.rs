//! The members of one group, keyed (and so ordered) by address: every
//! lookup and change is O(log n), and the counts the group decides by (how
//! many are ejected, whether the set in rotation changed) are kept as
//! members change instead of counted by a scan. Lives under the group's
//! member lock (`upstream::rotation`).

use super::backend::Backend;
use super::member::{Member, MemberState};
use crate::addr::BackendAddr;
use std::collections::BTreeMap;
use std::sync::Arc;

#[derive(Clone, Debug, Default)]
pub struct Members {
    map: BTreeMap<BackendAddr, Member>,
    /// Members in [`MemberState::Ejected`].
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

    /// The backends in rotation, in address order: what a snapshot holds.
    pub fn in_rotation(&self) -> Vec<Arc<Backend>> {
        self.map
            .values()
            .filter(|m| m.state == MemberState::Healthy)
            .map(|m| m.backend.clone())
            .collect()
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
        m.backend.set_in_rotation(after == MemberState::Healthy);
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
                m.backend.set_in_rotation(m.state == MemberState::Healthy);
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
            m.backend.set_in_rotation(m.state == MemberState::Healthy);
            self.count(m.state, 1);
        }
    }

    fn count(&mut self, state: MemberState, delta: isize) {
        match state {
            MemberState::Healthy => self.generation += 1,
            MemberState::Ejected => self.ejected = self.ejected.saturating_add_signed(delta),
            MemberState::Unhealthy | MemberState::Draining => {}
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
        m.update(addr(1), |x| x.eject(p, 5));
        assert_eq!(m.ejected(), 1);
        assert!(m.generation() > g, "leaving rotation is a new generation");
        assert!(!m.get(addr(1)).unwrap().backend.in_rotation());
        let g = m.generation();
        m.update(addr(2), |x| x.set_state(MemberState::Healthy, "again"));
        assert_eq!(m.generation(), g, "no change, no new generation");
        m.update_all(|x| {
            if x.state == MemberState::Ejected {
                x.readmit();
            }
        });
        assert_eq!(m.ejected(), 0);
        assert!(m.get(addr(1)).unwrap().backend.in_rotation());
        m.update(addr(2), |x| x.eject(p, 5));
        m.retain(|x| x.state != MemberState::Ejected);
        assert_eq!((m.len(), m.ejected()), (1, 0));
        let order: Vec<u16> = m.iter().map(|x| x.backend.addr.0.port()).collect();
        assert_eq!(order, vec![1]);
    }
}
