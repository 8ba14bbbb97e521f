//! The engine: group slots (compiled rules + member sets), the NIC table, and the
//! decision fast path.

use std::fmt;
use std::sync::Arc;

use crate::compile::{self, CompiledGroup, DirMatcher, Key, Probe, Sets};
use crate::hash::{FastBuild, FastMap, IdKey};
use crate::types::{Direction, GroupSpec, Nic, Packet, Policy, Rule};

/// Most groups a NIC can be in (ECS limit).
pub const MAX_GROUPS_PER_NIC: usize = 5;

/// Errors of the engine. Decisions only fail for an unknown NIC.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EngineError {
    UnknownNic(String),
    TooManyGroups {
        nic: String,
        count: usize,
    },
    InvalidRule {
        group: String,
        rule: String,
        reason: &'static str,
    },
}

impl fmt::Display for EngineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EngineError::UnknownNic(id) => write!(f, "unknown NIC {id}"),
            EngineError::TooManyGroups { nic, count } => write!(
                f,
                "NIC {nic} is in {count} security groups (at most {MAX_GROUPS_PER_NIC})"
            ),
            EngineError::InvalidRule {
                group,
                rule,
                reason,
            } => write!(f, "invalid rule {rule:?} in {group}: {reason}"),
        }
    }
}

impl std::error::Error for EngineError {}

/// A rule as seen from a NIC: `group` is the position of the group in the NIC's
/// (de-duplicated) group list, `rule` the index of the rule in that group's
/// [`GroupSpec::rules`]. Resolve it with [`Engine::resolve`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RuleRef {
    pub group: u8,
    pub rule: u16,
}

/// What decided a new connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Basis {
    /// The first matching rule.
    Rule(RuleRef),
    /// No rule matched: ingress drop; egress accept unless a group is enterprise.
    Default,
    /// The remote address is another member of the NIC's group at this position,
    /// a normal group with inner access accept.
    InnerAccess { group: u8 },
}

/// Compact reason of a verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reason {
    Rule(RuleRef),
    Default,
    InnerAccess {
        group: u8,
    },
    /// A reply packet, judged as the reversed packet would be as a new connection:
    /// "established reply" when accepted. The basis is what decided the reversed
    /// packet.
    Reply(Basis),
}

impl Reason {
    /// The basis of the decision, looking through replies.
    pub fn basis(self) -> Basis {
        match self {
            Reason::Rule(r) => Basis::Rule(r),
            Reason::Default => Basis::Default,
            Reason::InnerAccess { group } => Basis::InnerAccess { group },
            Reason::Reply(b) => b,
        }
    }
}

/// Result of [`Engine::decide`]: small and `Copy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Verdict {
    pub action: Policy,
    pub reason: Reason,
}

type Members = FastMap<u32, u32>;

/// A group id known to the engine: defined (compiled), named in NICs' group lists,
/// or named by `Peer::Group` rules. Slots are freed when none of these hold.
#[derive(Clone, Debug)]
struct Slot {
    id: Arc<str>,
    group: Option<Arc<CompiledGroup>>,
    /// Private IP → number of member NICs with that address.
    members: Arc<Members>,
    nic_refs: u32,
    rule_refs: u32,
    /// False once freed (on the free list).
    live: bool,
}

#[derive(Clone, Copy, Debug)]
struct NicEntry {
    private_ip: u32,
    /// Meaningful only when `has_public`.
    public_ip: u32,
    has_public: bool,
    n_groups: u8,
    slots: [u32; MAX_GROUPS_PER_NIC],
}

impl NicEntry {
    #[inline]
    fn slots(&self) -> &[u32] {
        &self.slots[..self.n_groups as usize]
    }

    #[inline]
    fn public_ip(&self) -> Option<u32> {
        self.has_public.then_some(self.public_ip)
    }
}

/// The decision engine. Cloning is cheap (tables are shared copy-on-write, compiled
/// groups are shared); a clone is independent, so a what-if is: clone, apply the
/// proposed change, ask. The first change to a clone copies the touched table
/// (NIC table or the slot index), not the compiled groups.
#[derive(Clone, Debug)]
pub struct Engine {
    hasher: FastBuild,
    names: Arc<FastMap<Arc<str>, u32>>,
    slots: Arc<Vec<Slot>>,
    free: Vec<u32>,
    nics: Arc<FastMap<IdKey, NicEntry>>,
    /// Reverse membership index: private IP → (slot, number of member NICs with
    /// that IP) for every group it is a member of. Lets a decision find all the
    /// remote address's groups with one lookup.
    ip_index: Arc<FastMap<u32, Vec<(u32, u32)>>>,
}

impl Default for Engine {
    fn default() -> Self {
        Engine::new()
    }
}

impl Engine {
    pub fn new() -> Engine {
        let hasher = FastBuild::random();
        Engine {
            hasher,
            names: Arc::new(FastMap::with_hasher(hasher)),
            slots: Arc::new(Vec::new()),
            free: Vec::new(),
            nics: Arc::new(FastMap::with_hasher(hasher)),
            ip_index: Arc::new(FastMap::with_hasher(hasher)),
        }
    }

    /// Number of defined (upserted) groups.
    pub fn group_count(&self) -> usize {
        self.slots.iter().filter(|s| s.group.is_some()).count()
    }

    pub fn nic_count(&self) -> usize {
        self.nics.len()
    }

    /// The spec of a defined group.
    pub fn group(&self, id: &str) -> Option<&GroupSpec> {
        let s = *self.names.get(id)?;
        self.slots[s as usize].group.as_ref().map(|g| &g.spec)
    }

    /// The NIC as last upserted (groups de-duplicated).
    pub fn nic(&self, id: &str) -> Option<Nic> {
        let (k, e) = self.nics.get_key_value(id.as_bytes())?;
        Some(Nic {
            id: k.to_string_lossy(),
            groups: e
                .slots()
                .iter()
                .map(|&s| self.slots[s as usize].id.to_string())
                .collect(),
            private_ip: e.private_ip,
            public_ip: e.public_ip(),
        })
    }

    /// Member private IPs of a group (sorted, distinct).
    pub fn members(&self, group_id: &str) -> Vec<u32> {
        let Some(&s) = self.names.get(group_id) else {
            return Vec::new();
        };
        let mut v: Vec<u32> = self.slots[s as usize].members.keys().copied().collect();
        v.sort_unstable();
        v
    }

    /// Group id and rule a [`RuleRef`] names for this NIC.
    pub fn resolve(&self, nic_id: &str, r: RuleRef) -> Option<(&str, &Rule)> {
        let e = self.nics.get(nic_id.as_bytes())?;
        let s = *e.slots().get(r.group as usize)?;
        let slot = &self.slots[s as usize];
        let g = slot.group.as_ref()?;
        Some((&slot.id, g.spec.rules.get(r.rule as usize)?))
    }

    /// Id of the group at a position of the NIC's group list.
    pub fn nic_group_id(&self, nic_id: &str, pos: u8) -> Option<&str> {
        let e = self.nics.get(nic_id.as_bytes())?;
        let s = *e.slots().get(pos as usize)?;
        Some(&self.slots[s as usize].id)
    }

    // ----- updates -------------------------------------------------------------

    fn slots_mut(&mut self) -> &mut Vec<Slot> {
        Arc::make_mut(&mut self.slots)
    }

    /// Slot of a group id, allocating one if the id is new.
    fn intern(&mut self, id: &str) -> u32 {
        if let Some(&s) = self.names.get(id) {
            return s;
        }
        let id: Arc<str> = Arc::from(id);
        let slot = Slot {
            id: id.clone(),
            group: None,
            members: Arc::new(FastMap::with_hasher(self.hasher)),
            nic_refs: 0,
            rule_refs: 0,
            live: true,
        };
        let s = match self.free.pop() {
            Some(s) => {
                self.slots_mut()[s as usize] = slot;
                s
            }
            None => {
                let slots = self.slots_mut();
                slots.push(slot);
                (slots.len() - 1) as u32
            }
        };
        Arc::make_mut(&mut self.names).insert(id, s);
        s
    }

    /// Free a slot nobody refers to any more.
    fn release(&mut self, s: u32) {
        let slot = &self.slots[s as usize];
        if !slot.live || slot.group.is_some() || slot.nic_refs > 0 || slot.rule_refs > 0 {
            return;
        }
        let id = slot.id.clone();
        Arc::make_mut(&mut self.names).remove(&*id);
        let hasher = self.hasher;
        let slot = &mut self.slots_mut()[s as usize];
        slot.id = Arc::from("");
        slot.live = false;
        slot.members = Arc::new(FastMap::with_hasher(hasher));
        self.free.push(s);
    }

    /// Define or replace a group. Only this group is recompiled; NICs and other
    /// groups are untouched. Errors leave the engine unchanged.
    pub fn upsert_group(&mut self, spec: GroupSpec) -> Result<(), EngineError> {
        compile::validate(&spec)?;
        let s = self.intern(&spec.id);
        let compiled = {
            let mut resolve = |g: &str| self.intern(g);
            CompiledGroup::compile(spec, &mut resolve)
        };
        let slots = self.slots_mut();
        for &p in &compiled.peer_slots {
            slots[p as usize].rule_refs += 1;
        }
        let old = slots[s as usize].group.replace(Arc::new(compiled));
        if let Some(old) = old {
            for &p in &old.peer_slots {
                self.slots_mut()[p as usize].rule_refs -= 1;
                self.release(p);
            }
        }
        Ok(())
    }

    /// Remove a group's definition (its rules). NICs that list it keep their
    /// membership, so rules of other groups naming it still see its members.
    /// Returns whether it was defined.
    pub fn remove_group(&mut self, id: &str) -> bool {
        let Some(&s) = self.names.get(id) else {
            return false;
        };
        let Some(old) = self.slots_mut()[s as usize].group.take() else {
            return false;
        };
        for &p in &old.peer_slots {
            self.slots_mut()[p as usize].rule_refs -= 1;
            self.release(p);
        }
        self.release(s);
        true
    }

    /// Add or replace a NIC. Only its groups' member sets change. Groups named but
    /// not (yet) defined are tracked for membership and contribute no rules.
    pub fn upsert_nic(&mut self, nic: Nic) -> Result<(), EngineError> {
        let mut ids: Vec<&str> = Vec::with_capacity(nic.groups.len());
        for g in &nic.groups {
            if !ids.contains(&g.as_str()) {
                ids.push(g);
            }
        }
        if ids.len() > MAX_GROUPS_PER_NIC {
            return Err(EngineError::TooManyGroups {
                nic: nic.id.clone(),
                count: ids.len(),
            });
        }
        let mut entry = NicEntry {
            private_ip: nic.private_ip,
            public_ip: nic.public_ip.unwrap_or(0),
            has_public: nic.public_ip.is_some(),
            n_groups: ids.len() as u8,
            slots: [0; MAX_GROUPS_PER_NIC],
        };
        for (i, g) in ids.iter().enumerate() {
            entry.slots[i] = self.intern(g);
        }
        // Join the new groups before leaving the old ones so shared slots survive.
        self.join(&entry);
        let old = Arc::make_mut(&mut self.nics).insert(IdKey::new(&nic.id), entry);
        if let Some(old) = old {
            self.leave(&old);
        }
        Ok(())
    }

    /// Remove a NIC. Returns whether it existed.
    pub fn remove_nic(&mut self, id: &str) -> bool {
        if !self.nics.contains_key(id.as_bytes()) {
            return false;
        }
        if let Some(old) = Arc::make_mut(&mut self.nics).remove(id.as_bytes()) {
            self.leave(&old);
        }
        true
    }

    fn join(&mut self, e: &NicEntry) {
        let slots = self.slots_mut();
        for &s in e.slots() {
            let slot = &mut slots[s as usize];
            slot.nic_refs += 1;
            *Arc::make_mut(&mut slot.members)
                .entry(e.private_ip)
                .or_insert(0) += 1;
        }
        let groups = Arc::make_mut(&mut self.ip_index)
            .entry(e.private_ip)
            .or_default();
        for &s in e.slots() {
            match groups.iter_mut().find(|(m, _)| *m == s) {
                Some((_, c)) => *c += 1,
                None => groups.push((s, 1)),
            }
        }
    }

    fn leave(&mut self, e: &NicEntry) {
        let index = Arc::make_mut(&mut self.ip_index);
        if let Some(groups) = index.get_mut(&e.private_ip) {
            for &s in e.slots() {
                if let Some(i) = groups.iter().position(|(m, _)| *m == s) {
                    groups[i].1 -= 1;
                    if groups[i].1 == 0 {
                        groups.swap_remove(i);
                    }
                }
            }
            if groups.is_empty() {
                index.remove(&e.private_ip);
            }
        }
        for &s in e.slots() {
            let slot = &mut self.slots_mut()[s as usize];
            slot.nic_refs -= 1;
            let members = Arc::make_mut(&mut slot.members);
            if let Some(c) = members.get_mut(&e.private_ip) {
                *c -= 1;
                if *c == 0 {
                    members.remove(&e.private_ip);
                }
            }
            self.release(s);
        }
    }

    // ----- decisions -----------------------------------------------------------

    /// The verdict for a packet at a NIC. No allocation (except for the error).
    #[inline]
    pub fn decide(&self, nic_id: &str, p: &Packet) -> Result<Verdict, EngineError> {
        let Some(e) = self.nics.get(nic_id.as_bytes()) else {
            return Err(EngineError::UnknownNic(nic_id.to_string()));
        };
        Ok(self.decide_entry(e, p))
    }

    #[inline]
    fn decide_entry(&self, e: &NicEntry, p: &Packet) -> Verdict {
        if p.reply {
            let (action, basis) = self.new_connection(e, &p.reversed());
            Verdict {
                action,
                reason: Reason::Reply(basis),
            }
        } else {
            let (action, basis) = self.new_connection(e, p);
            let reason = match basis {
                Basis::Rule(r) => Reason::Rule(r),
                Basis::Default => Reason::Default,
                Basis::InnerAccess { group } => Reason::InnerAccess { group },
            };
            Verdict { action, reason }
        }
    }

    /// Evaluate `p` as a new connection.
    #[inline]
    fn new_connection(&self, e: &NicEntry, p: &Packet) -> (Policy, Basis) {
        let slots: &[Slot] = &self.slots;
        let on_public = e.has_public && e.public_ip == p.local_ip;
        let dir = p.direction.index();

        let mut groups: [Option<&CompiledGroup>; MAX_GROUPS_PER_NIC] = [None; MAX_GROUPS_PER_NIC];
        let mut enterprise = false;
        let mut inner = false;
        let mut peers = false;
        for (pos, &s) in e.slots().iter().enumerate() {
            if let Some(g) = &slots[s as usize].group {
                groups[pos] = Some(g);
                enterprise |= g.enterprise;
                inner |= g.inner_accept;
                peers |= g.has_group_peers[dir];
            }
        }

        // Membership only matters on the private address (inner access and group
        // peers never apply on the public one): the groups the remote address is
        // a member of, looked up once.
        let remote_in: &[(u32, u32)] = if !on_public && (inner || peers) {
            self.ip_index
                .get(&p.remote_ip)
                .map_or(&[][..], |v| v.as_slice())
        } else {
            &[]
        };
        if inner && !remote_in.is_empty() {
            // Inner access overrides rules: the remote address must belong to
            // another member NIC of a shared normal group with inner access accept.
            let own = (p.remote_ip == e.private_ip) as u32;
            for (pos, &s) in e.slots().iter().enumerate() {
                if groups[pos].is_some_and(|g| g.inner_accept)
                    && remote_in.iter().any(|&(m, count)| m == s && count > own)
                {
                    return (Policy::Accept, Basis::InnerAccess { group: pos as u8 });
                }
            }
        }

        let (dport, sport) = p.dst_src_ports();
        let probe = Probe {
            protocol: p.protocol,
            dport,
            sport,
            local_ip: p.local_ip,
            remote_ip: p.remote_ip,
            on_public,
        };

        // Phase 1: interval lookups of every group (independent of each other).
        let mut found: [Option<(u8, &DirMatcher, Sets<'_>)>; MAX_GROUPS_PER_NIC] =
            [None; MAX_GROUPS_PER_NIC];
        let mut n = 0;
        for (pos, g) in groups.iter().enumerate() {
            if let Some(g) = g {
                let m = &g.dirs[dir];
                if m.min_key != Key::MAX {
                    found[n] = Some((pos as u8, m, m.lookup(&probe)));
                    n += 1;
                }
            }
        }
        // Phase 2: each group's first match among the rules that could still win;
        // an earlier group wins ties, so later groups must be strictly better.
        let mut best_key: Key = Key::MAX;
        let mut best: Option<(u8, u16)> = None;
        for (pos, m, sets) in found[..n].iter().flatten() {
            if m.min_key >= best_key {
                continue;
            }
            if let Some(i) = m.first_match(sets, &probe, best_key, remote_in) {
                let meta = &m.rules[i];
                best_key = meta.key;
                best = Some((*pos, meta.rule_index));
            }
        }
        if let Some((group, rule)) = best {
            let action = if best_key & 1 == 0 {
                Policy::Drop
            } else {
                Policy::Accept
            };
            return (action, Basis::Rule(RuleRef { group, rule }));
        }
        if p.direction == Direction::Egress && !enterprise {
            (Policy::Accept, Basis::Default)
        } else {
            (Policy::Drop, Basis::Default)
        }
    }

    /// Private API for the explanation builder: the NIC's defined groups with their
    /// position, plus addressing.
    pub(crate) fn nic_view(&self, nic_id: &str) -> Option<NicView<'_>> {
        let e = self.nics.get(nic_id.as_bytes())?;
        let groups = e
            .slots()
            .iter()
            .enumerate()
            .map(|(pos, &s)| {
                let slot = &self.slots[s as usize];
                (pos as u8, &*slot.id, slot.group.as_ref().map(|g| &g.spec))
            })
            .collect();
        Some(NicView {
            public_ip: e.public_ip(),
            groups,
        })
    }

    /// Is `ip` the private address of a current member of group `id`?
    pub fn is_member(&self, group_id: &str, ip: u32) -> bool {
        self.names
            .get(group_id)
            .is_some_and(|&s| self.slots[s as usize].members.contains_key(&ip))
    }

    /// Consistency check of the membership structures (tests and debugging):
    /// the per-group member sets and the reverse IP index agree.
    #[doc(hidden)]
    pub fn check_invariants(&self) -> Result<(), String> {
        let mut from_sets: Vec<(u32, u32, u32)> = Vec::new();
        for (s, slot) in self.slots.iter().enumerate() {
            if !slot.live {
                continue;
            }
            if self.names.get(&*slot.id) != Some(&(s as u32)) {
                return Err(format!("slot {s} ({}) not indexed by name", slot.id));
            }
            let total: u32 = slot.members.values().sum();
            if total != slot.nic_refs {
                return Err(format!(
                    "slot {s}: {total} member counts, {} NIC refs",
                    slot.nic_refs
                ));
            }
            from_sets.extend(slot.members.iter().map(|(&ip, &c)| (ip, s as u32, c)));
        }
        let mut from_index: Vec<(u32, u32, u32)> = self
            .ip_index
            .iter()
            .flat_map(|(&ip, v)| v.iter().map(move |&(s, c)| (ip, s, c)))
            .collect();
        from_sets.sort_unstable();
        from_index.sort_unstable();
        if from_sets != from_index {
            return Err("member sets and reverse IP index differ".into());
        }
        if self.names.len() != self.slots.iter().filter(|s| s.live).count() {
            return Err("name index and live slots differ".into());
        }
        Ok(())
    }
}

pub(crate) struct NicView<'a> {
    pub public_ip: Option<u32>,
    /// (position, group id, spec if defined)
    pub groups: Vec<(u8, &'a str, Option<&'a GroupSpec>)>,
}
