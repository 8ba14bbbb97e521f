//! The engine: group slots (compiled rules + member sets), the NIC table, and the
//! decision fast path.

use std::fmt;
use std::sync::Arc;

#[cfg(target_arch = "x86_64")]
use crate::compile::Avx2;
use crate::compile::{self, prefetch, Baseline, CompiledGroup, Key, Lanes, Probe};
use crate::hash::{FastBuild, FastMap, IdKey};
use crate::types::{Direction, GroupKind, GroupSpec, Nic, Packet, Policy, Rule};

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

/// Evaluation order of a candidate rule across a NIC's groups as one integer:
/// order key, then group position, then position in the group's evaluation
/// order (lower wins). A "no match" sentinel has key `Key::MAX` and ranks after
/// every rule.
#[inline(always)]
fn rank(key: Key, pos: usize, i: usize) -> u64 {
    (key as u64) << 40 | (pos as u64) << 32 | i as u64
}

/// Index of the direction whose rules judge `p` (a reply is judged as the
/// reversed packet).
#[inline(always)]
fn judged_direction(p: &Packet) -> usize {
    if p.reply {
        p.direction.reverse().index()
    } else {
        p.direction.index()
    }
}

/// Ranks at or above this are "no match" (key `Key::MAX`).
const NO_RANK: u64 = (Key::MAX as u64) << 40;

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
    /// Merged classifiers (indexes into `Engine::merged`) whose group set has this group.
    merged_in: Vec<u32>,
}

/// No merged classifier (see [`Merged`]).
const NO_MERGED: u32 = u32::MAX;

/// A NIC's group list as a key: the slots, in order, and how many there are.
type MergeKey = ([u32; MAX_GROUPS_PER_NIC], u8);

/// One classifier for a whole group set, shared by every NIC with that exact group
/// list. Evaluating five groups of 100 rules costs five lookups and five rankings;
/// their rules concatenated in group order, compiled once, give the same first match
/// (order key, then group position, then rule position) in one lookup, about 1.6x
/// faster in the benchmark world (a). Built only for sets with many rules, and
/// rebuilt when one of its groups changes: the cost of a group update grows with
/// the number of distinct large sets that contain it, never with unrelated groups.
#[derive(Debug)]
struct Merged {
    group: CompiledGroup,
    /// Some group of the set is enterprise / a normal group with inner access accept.
    enterprise: bool,
    inner: bool,
    /// Merged rule index -> (position of its group in the NIC's list, index in that group).
    origin: Vec<(u8, u16)>,
}

#[derive(Clone, Debug)]
struct MergedCell {
    key: MergeKey,
    nic_refs: u32,
    /// `None` while the set does not qualify (few rules, or VPC and classic mixed).
    compiled: Option<Arc<Merged>>,
}

#[derive(Clone, Copy, Debug)]
struct NicEntry {
    private_ip: u32,
    /// Meaningful only when `has_public`.
    public_ip: u32,
    has_public: bool,
    n_groups: u8,
    slots: [u32; MAX_GROUPS_PER_NIC],
    /// Index into `Engine::merged`, or `NO_MERGED`.
    merged: u32,
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

/// A NIC resolved once with [`Engine::nic_handle`], for deciding many packets of
/// the same NIC without looking its id up each time (a data path resolves its
/// interfaces once). It stays valid while the NIC exists, across upserts of it;
/// once the NIC is removed it names nothing ([`Engine::decide_handle`] answers
/// `None`), even if another NIC takes its place. Valid for clones of the engine
/// too, for as long as the NIC exists in the clone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct NicHandle {
    index: u32,
    generation: u32,
}

/// The NIC table's value: the entry (read by id lookups) and its slab index.
#[derive(Clone, Copy, Debug)]
struct NicRecord {
    index: u32,
    entry: NicEntry,
}

/// A slab cell. The entry is a copy of the record's, so that a decision by id
/// needs one table lookup and a decision by handle one array load.
#[derive(Clone, Copy, Debug)]
struct NicCell {
    /// Bumped when the NIC is removed, invalidating its handles.
    generation: u32,
    live: bool,
    entry: NicEntry,
}

/// The decision engine. Cloning is cheap (tables are shared copy-on-write, compiled
/// groups are shared); a clone is independent, so a what-if is: clone, apply the
/// proposed change, ask. The first change to a clone copies the touched table
/// (NIC table or the slot index), not the compiled groups.
#[derive(Clone, Debug)]
pub struct Engine {
    hasher: FastBuild,
    /// The CPU has AVX2: decisions use the AVX2 build of the data path.
    avx2: bool,
    names: Arc<FastMap<Arc<str>, u32>>,
    slots: Arc<Vec<Slot>>,
    free: Vec<u32>,
    nics: Arc<FastMap<IdKey, NicRecord>>,
    /// NICs by handle index.
    nic_slab: Arc<Vec<NicCell>>,
    nic_free: Vec<u32>,
    /// Reverse membership index: private IP → (slot, number of member NICs with
    /// that IP) for every group it is a member of. Lets a decision find all the
    /// remote address's groups with one lookup.
    ip_index: Arc<FastMap<u32, Vec<(u32, u32)>>>,
    /// Merged classifiers of NICs' group sets (see [`Merged`]), by index, with a free list
    /// and the index by group set.
    merged: Arc<Vec<MergedCell>>,
    merged_free: Vec<u32>,
    merged_index: Arc<FastMap<MergeKey, u32>>,
    /// A group set gets a merged classifier from this many rules on.
    merge_min_rules: usize,
}

/// Default for `Engine::merge_min_rules`. Below this the per-group path costs little
/// more, and small sets are the many: at 200, a 100-rule group in the benchmark world
/// (b) sat in ~30 merged sets and one update of it took 2-4 ms instead of 45 µs.
const MERGE_MIN_RULES: usize = 300;

impl Default for Engine {
    fn default() -> Self {
        Engine::new()
    }
}

impl Engine {
    pub fn new() -> Engine {
        let hasher = FastBuild::random();
        #[cfg(target_arch = "x86_64")]
        let avx2 = std::arch::is_x86_feature_detected!("avx2");
        #[cfg(not(target_arch = "x86_64"))]
        let avx2 = false;
        Engine {
            hasher,
            avx2,
            names: Arc::new(FastMap::with_hasher(hasher)),
            slots: Arc::new(Vec::new()),
            free: Vec::new(),
            nics: Arc::new(FastMap::with_hasher(hasher)),
            nic_slab: Arc::new(Vec::new()),
            nic_free: Vec::new(),
            ip_index: Arc::new(FastMap::with_hasher(hasher)),
            merged: Arc::new(Vec::new()),
            merged_free: Vec::new(),
            merged_index: Arc::new(FastMap::with_hasher(hasher)),
            merge_min_rules: MERGE_MIN_RULES,
        }
    }

    /// Set how many rules a group set needs for a merged classifier (tests use 0 so that
    /// every NIC with two or more groups goes through the merged path). Applies to sets
    /// built afterwards; call it on a new engine.
    #[doc(hidden)]
    pub fn set_merge_min_rules(&mut self, rules: usize) {
        self.merge_min_rules = rules;
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
        let (k, r) = self.nics.get_key_value(id.as_bytes())?;
        let e = &r.entry;
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
        let e = &self.nics.get(nic_id.as_bytes())?.entry;
        let s = *e.slots().get(r.group as usize)?;
        let slot = &self.slots[s as usize];
        let g = slot.group.as_ref()?;
        Some((&slot.id, g.spec.rules.get(r.rule as usize)?))
    }

    /// Id of the group at a position of the NIC's group list.
    pub fn nic_group_id(&self, nic_id: &str, pos: u8) -> Option<&str> {
        let e = &self.nics.get(nic_id.as_bytes())?.entry;
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
            merged_in: Vec::new(),
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
        self.rebuild_merged_with(s);
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
        self.rebuild_merged_with(s);
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
            merged: NO_MERGED,
        };
        for (i, g) in ids.iter().enumerate() {
            entry.slots[i] = self.intern(g);
        }
        // Join the new groups before leaving the old ones so shared slots survive.
        self.join(&entry);
        entry.merged = self.merge_attach(&entry);
        let old = match Arc::make_mut(&mut self.nics).get_mut(nic.id.as_bytes()) {
            Some(r) => {
                let old = std::mem::replace(&mut r.entry, entry);
                Arc::make_mut(&mut self.nic_slab)[r.index as usize].entry = entry;
                Some(old)
            }
            None => {
                let slab = Arc::make_mut(&mut self.nic_slab);
                let index = match self.nic_free.pop() {
                    Some(i) => {
                        let cell = &mut slab[i as usize];
                        cell.live = true;
                        cell.entry = entry;
                        i
                    }
                    None => {
                        slab.push(NicCell {
                            generation: 0,
                            live: true,
                            entry,
                        });
                        (slab.len() - 1) as u32
                    }
                };
                Arc::make_mut(&mut self.nics)
                    .insert(IdKey::new(&nic.id), NicRecord { index, entry });
                None
            }
        };
        if let Some(old) = old {
            self.merge_detach(old.merged);
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
            let cell = &mut Arc::make_mut(&mut self.nic_slab)[old.index as usize];
            cell.live = false;
            // Wraps after 2^32 removals at one index; a handle kept that long
            // could then name a later NIC.
            cell.generation = cell.generation.wrapping_add(1);
            self.nic_free.push(old.index);
            self.merge_detach(old.entry.merged);
            self.leave(&old.entry);
        }
        true
    }

    /// The merged classifier for `e`'s group set: shared if another NIC has the same
    /// set, else registered (and built if the set qualifies). `NO_MERGED` for NICs
    /// with fewer than two groups.
    fn merge_attach(&mut self, e: &NicEntry) -> u32 {
        if e.n_groups < 2 {
            return NO_MERGED;
        }
        let key: MergeKey = (e.slots, e.n_groups);
        if let Some(&i) = self.merged_index.get(&key) {
            Arc::make_mut(&mut self.merged)[i as usize].nic_refs += 1;
            return i;
        }
        let cell = MergedCell {
            key,
            nic_refs: 1,
            compiled: self.build_merged(e.slots()).map(Arc::new),
        };
        let cells = Arc::make_mut(&mut self.merged);
        let i = match self.merged_free.pop() {
            Some(i) => {
                cells[i as usize] = cell;
                i
            }
            None => {
                cells.push(cell);
                (cells.len() - 1) as u32
            }
        };
        Arc::make_mut(&mut self.merged_index).insert(key, i);
        for &s in e.slots() {
            self.slots_mut()[s as usize].merged_in.push(i);
        }
        i
    }

    fn merge_detach(&mut self, i: u32) {
        if i == NO_MERGED {
            return;
        }
        let cell = &mut Arc::make_mut(&mut self.merged)[i as usize];
        cell.nic_refs -= 1;
        if cell.nic_refs > 0 {
            return;
        }
        cell.compiled = None;
        let key = cell.key;
        Arc::make_mut(&mut self.merged_index).remove(&key);
        for &s in &key.0[..key.1 as usize] {
            let list = &mut self.slots_mut()[s as usize].merged_in;
            if let Some(k) = list.iter().position(|&m| m == i) {
                list.swap_remove(k);
            }
        }
        self.merged_free.push(i);
    }

    /// Recompiles the merged classifiers whose group set contains slot `s`.
    fn rebuild_merged_with(&mut self, s: u32) {
        let list = self.slots[s as usize].merged_in.clone();
        for i in list {
            let (slots, n) = self.merged[i as usize].key;
            let compiled = self.build_merged(&slots[..n as usize]).map(Arc::new);
            Arc::make_mut(&mut self.merged)[i as usize].compiled = compiled;
        }
    }

    /// The set's defined groups' rules, concatenated in group order and compiled as
    /// one group; `None` when the set does not qualify.
    fn build_merged(&self, set: &[u32]) -> Option<Merged> {
        let defined: Vec<(usize, &CompiledGroup)> = set
            .iter()
            .enumerate()
            .filter_map(|(pos, &s)| self.slots[s as usize].group.as_deref().map(|g| (pos, g)))
            .collect();
        let total: usize = defined.iter().map(|(_, g)| g.spec.rules.len()).sum();
        // Decide before copying any rule: most sets do not qualify, and a group update
        // asks again for every set that contains it. Rule indexes are u16 with u16::MAX
        // reserved. NIC type rules differ between VPC and classic groups (ECS does not
        // mix them on one NIC; if it happens, keep the per-group path).
        if defined.len() < 2
            || total < self.merge_min_rules
            || total >= u16::MAX as usize
            || defined
                .iter()
                .any(|(_, g)| g.spec.is_vpc() != defined[0].1.spec.is_vpc())
        {
            return None;
        }
        let mut rules = Vec::with_capacity(total);
        let mut origin = Vec::with_capacity(total);
        for &(pos, g) in &defined {
            for (k, r) in g.spec.rules.iter().enumerate() {
                rules.push(Rule {
                    group_id: String::new(),
                    ..r.clone()
                });
                origin.push((pos as u8, k as u16));
            }
        }
        let vpc_id = defined[0].1.spec.vpc_id.clone();
        let spec = GroupSpec {
            id: String::new(),
            kind: GroupKind::Normal,
            vpc_id,
            inner_access_accept: false,
            rules,
        };
        // Peer groups already have slots (their own groups' compilation holds them).
        let names = &self.names;
        let group = CompiledGroup::compile(spec, &mut |g: &str| {
            names.get(g).copied().unwrap_or(u32::MAX)
        });
        Some(Merged {
            group,
            enterprise: defined.iter().any(|(_, g)| g.enterprise),
            inner: defined.iter().any(|(_, g)| g.inner_accept),
            origin,
        })
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
        let Some(r) = self.nics.get(nic_id.as_bytes()) else {
            return Err(EngineError::UnknownNic(nic_id.to_string()));
        };
        Ok(self.decide_entry(&r.entry, p))
    }

    /// The handle of a NIC, for [`Engine::decide_handle`].
    pub fn nic_handle(&self, nic_id: &str) -> Option<NicHandle> {
        let r = self.nics.get(nic_id.as_bytes())?;
        Some(NicHandle {
            index: r.index,
            generation: self.nic_slab[r.index as usize].generation,
        })
    }

    /// [`Engine::decide`] for a NIC resolved earlier: the same verdict, without
    /// hashing the id. `None` if the NIC has been removed since.
    #[inline]
    pub fn decide_handle(&self, h: NicHandle, p: &Packet) -> Option<Verdict> {
        let c = self.nic_slab.get(h.index as usize)?;
        if c.generation != h.generation {
            return None;
        }
        // Removal bumps the generation, so a matching one means a live NIC.
        debug_assert!(c.live);
        Some(self.decide_entry(&c.entry, p))
    }

    /// [`Engine::decide_handle`] for many packets: `out[i]` is the verdict for
    /// `packets[i]`.
    ///
    /// # Panics
    ///
    /// If `out` and `packets` differ in length.
    pub fn decide_batch(&self, packets: &[(NicHandle, Packet)], out: &mut [Option<Verdict>]) {
        assert_eq!(packets.len(), out.len(), "one output per packet");
        #[cfg(target_arch = "x86_64")]
        if self.avx2 {
            // SAFETY: `avx2` is set only when the CPU has AVX2.
            return unsafe { self.decide_batch_avx2(packets, out) };
        }
        self.decide_batch_with::<Baseline>(packets, out);
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn decide_batch_avx2(&self, packets: &[(NicHandle, Packet)], out: &mut [Option<Verdict>]) {
        self.decide_batch_with::<Avx2>(packets, out);
    }

    /// Software pipeline: with many NICs and groups a decision is a chain of
    /// cache misses (NIC cell, group slot, compiled group, its arrays), each
    /// needing the previous load. Packets ahead are walked down that chain one
    /// step per packet, so that each step's load was prefetched a few packets
    /// earlier and the misses of several packets overlap.
    #[inline(always)]
    fn decide_batch_with<L: Lanes>(
        &self,
        packets: &[(NicHandle, Packet)],
        out: &mut [Option<Verdict>],
    ) {
        const STEP: usize = 2;
        let slab: &[NicCell] = &self.nic_slab;
        let slots: &[Slot] = &self.slots;
        let merged: &[MergedCell] = &self.merged;
        let cell = |i: usize| packets.get(i).and_then(|(h, _)| slab.get(h.index as usize));
        for (i, o) in out.iter_mut().enumerate() {
            if let Some(c) = cell(i + 4 * STEP) {
                prefetch(c);
            }
            if let Some(c) = cell(i + 3 * STEP) {
                // A NIC with a merged classifier is decided from it, not from its groups.
                if c.entry.merged != NO_MERGED {
                    prefetch(merged.as_ptr().wrapping_add(c.entry.merged as usize));
                } else {
                    for &s in c.entry.slots() {
                        prefetch(slots.as_ptr().wrapping_add(s as usize));
                    }
                }
            }
            if let Some(c) = cell(i + 2 * STEP) {
                let dir = judged_direction(&packets[i + 2 * STEP].1);
                for g in self.matcher_groups(&c.entry) {
                    g.dirs[dir].prefetch_header();
                    prefetch(&g.inner_accept);
                }
            }
            if let Some(c) = cell(i + STEP) {
                let dir = judged_direction(&packets[i + STEP].1);
                for g in self.matcher_groups(&c.entry) {
                    g.dirs[dir].prefetch_arrays();
                }
            }
            let (h, p) = &packets[i];
            *o = match slab.get(h.index as usize) {
                Some(c) if c.generation == h.generation => {
                    Some(self.decide_entry_with::<L>(&c.entry, p))
                }
                _ => None,
            };
        }
    }

    #[inline]
    fn decide_entry(&self, e: &NicEntry, p: &Packet) -> Verdict {
        #[cfg(target_arch = "x86_64")]
        if self.avx2 {
            // SAFETY: `avx2` is set only when the CPU has AVX2.
            return unsafe { self.decide_entry_avx2(e, p) };
        }
        self.decide_entry_with::<Baseline>(e, p)
    }

    /// The data path compiled with AVX2 enabled (the whole path is inlined
    /// here, so the wider compares need no per-lookup dispatch).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn decide_entry_avx2(&self, e: &NicEntry, p: &Packet) -> Verdict {
        self.decide_entry_with::<Avx2>(e, p)
    }

    /// Use the baseline (non-AVX2) data path even where AVX2 is available, so
    /// that tests cover both builds.
    #[doc(hidden)]
    pub fn use_baseline_simd(&mut self) {
        self.avx2 = false;
    }

    #[inline(always)]
    fn decide_entry_with<L: Lanes>(&self, e: &NicEntry, p: &Packet) -> Verdict {
        if p.reply {
            let (action, basis) = self.new_connection::<L>(e, &p.reversed());
            Verdict {
                action,
                reason: Reason::Reply(basis),
            }
        } else {
            let (action, basis) = self.new_connection::<L>(e, p);
            let reason = match basis {
                Basis::Rule(r) => Reason::Rule(r),
                Basis::Default => Reason::Default,
                Basis::InnerAccess { group } => Reason::InnerAccess { group },
            };
            Verdict { action, reason }
        }
    }

    /// The set's merged classifier, if it has one.
    #[inline(always)]
    fn merged_of(&self, e: &NicEntry) -> Option<&Merged> {
        match e.merged {
            NO_MERGED => None,
            i => self.merged[i as usize].compiled.as_deref(),
        }
    }

    /// The compiled groups a decision for `e` matches against: its merged classifier,
    /// or each of its defined groups.
    #[inline(always)]
    fn matcher_groups<'a>(&'a self, e: &'a NicEntry) -> impl Iterator<Item = &'a CompiledGroup> {
        let merged = self.merged_of(e).map(|m| &m.group);
        let groups = merged
            .is_none()
            .then(|| e.slots().iter())
            .into_iter()
            .flatten()
            .filter_map(|&s| self.slots.get(s as usize).and_then(|s| s.group.as_deref()));
        merged.into_iter().chain(groups)
    }

    /// Groups the remote address is a member of (slot, member NICs with it).
    #[inline]
    fn remote_groups(&self, ip: u32) -> &[(u32, u32)] {
        self.ip_index.get(&ip).map_or(&[][..], |v| v.as_slice())
    }

    /// Evaluate `p` as a new connection.
    #[inline(always)]
    fn new_connection<L: Lanes>(&self, e: &NicEntry, p: &Packet) -> (Policy, Basis) {
        let slots: &[Slot] = &self.slots;
        let on_public = e.has_public && e.public_ip == p.local_ip;
        let dir = p.direction.index();
        let (dport, sport) = p.dst_src_ports();
        let probe = Probe::new(p.protocol, dport, sport, p.local_ip, p.remote_ip, on_public);

        // Phase 1, one pass over the groups: each group's first match among its
        // CIDR-peer rules, and its group-peer candidates (membership unchecked).
        // Groups are independent (no running cut-off), so their lookups overlap
        // in the CPU; the winner is the least (key, group position, rule
        // position), see `rank`.
        // Rules are matched per group, or through the set's merged classifier (one
        // "group" at position 0 whose winner maps back through `origin`), which also
        // carries the set's flags so the groups themselves are not visited.
        let merged = self.merged_of(e);
        let groups = |e: &NicEntry| {
            let mut groups: [Option<&CompiledGroup>; MAX_GROUPS_PER_NIC] =
                [None; MAX_GROUPS_PER_NIC];
            for (&s, slot) in e.slots().iter().zip(groups.iter_mut()) {
                *slot = slots[s as usize].group.as_deref();
            }
            groups
        };
        let (matchers, enterprise, inner) = match merged {
            Some(m) => (
                [Some(&m.group), None, None, None, None],
                m.enterprise,
                m.inner,
            ),
            None => {
                let g = groups(e);
                let flag = |f: fn(&CompiledGroup) -> bool| g.iter().flatten().any(|&g| f(g));
                (g, flag(|g| g.enterprise), flag(|g| g.inner_accept))
            }
        };
        let mut best = NO_RANK;
        // Rank of the first group-peer candidate: a lower bound on any match that
        // depends on membership.
        let mut peer_bound = NO_RANK;
        let mut peer_cands = [0u128; MAX_GROUPS_PER_NIC];
        for (pos, g) in matchers.iter().enumerate() {
            let Some(g) = g else {
                continue;
            };
            let m = &g.dirs[dir];
            if m.min_key == Key::MAX {
                continue;
            }
            if m.fast {
                let (cidr, peer) = m.fast_sets::<L>(&probe);
                let i = m.fast_first(cidr, &probe);
                best = best.min(rank(m.rule(i).key, pos, i));
                if peer != 0 {
                    let j = m.fast_first_candidate(peer);
                    peer_bound = peer_bound.min(rank(m.rule(j).key, pos, j));
                    peer_cands[pos] = peer;
                }
            } else {
                let sets = m.lookup::<L>(&probe);
                if let Some(i) = m.first_match(&sets, &probe, Key::MAX, &[]) {
                    best = best.min(rank(m.rule(i).key, pos, i));
                }
                if g.has_group_peers[dir] {
                    peer_bound = 0;
                }
            }
        }

        // Membership only matters on the private address (inner access and group
        // peers never apply on the public one). Inner access overrides rules;
        // group-peer rules are looked at only if one could beat the winner so
        // far, which skips the membership lookup for most packets.
        if !on_public && (inner || peer_bound < best) {
            let remote_in = self.remote_groups(p.remote_ip);
            if !remote_in.is_empty() {
                if inner {
                    // The remote address must belong to another member NIC of a
                    // shared normal group with inner access accept.
                    let groups = groups(e);
                    let own = (p.remote_ip == e.private_ip) as u32;
                    for (pos, &s) in e.slots().iter().enumerate() {
                        if groups[pos].is_some_and(|g| g.inner_accept)
                            && remote_in.iter().any(|&(m, count)| m == s && count > own)
                        {
                            return (Policy::Accept, Basis::InnerAccess { group: pos as u8 });
                        }
                    }
                }
                if peer_bound < best {
                    best = self.peer_phase(&matchers, dir, &probe, &peer_cands, remote_in, best);
                }
            }
        }

        if best < NO_RANK {
            let pos = ((best >> 32) & 0xFF) as usize;
            let i = (best & 0xFFFF_FFFF) as usize;
            let meta = matchers[pos].expect("winner's group").dirs[dir].rule(i);
            let action = if meta.key & 1 == 0 {
                Policy::Drop
            } else {
                Policy::Accept
            };
            let (group, rule) = match merged {
                Some(m) => m.origin[meta.rule_index as usize],
                None => (pos as u8, meta.rule_index),
            };
            return (action, Basis::Rule(RuleRef { group, rule }));
        }
        if p.direction == Direction::Egress && !enterprise {
            (Policy::Accept, Basis::Default)
        } else {
            (Policy::Drop, Basis::Default)
        }
    }

    /// Phase 2 of [`Engine::new_connection`]: the best of `best` and every
    /// group's first match among its group-peer rules whose group `remote_in`
    /// holds. Kept out of line: most packets never get here.
    #[inline(never)]
    fn peer_phase(
        &self,
        groups: &[Option<&CompiledGroup>; MAX_GROUPS_PER_NIC],
        dir: usize,
        probe: &Probe,
        peer_cands: &[u128; MAX_GROUPS_PER_NIC],
        remote_in: &[(u32, u32)],
        mut best: u64,
    ) -> u64 {
        for (pos, g) in groups.iter().enumerate() {
            let Some(g) = g else { continue };
            let m = &g.dirs[dir];
            if m.fast {
                let hits = peer_cands[pos] & m.fast_peer_hits(remote_in);
                if hits != 0 {
                    let i = m.fast_first(hits, probe);
                    best = best.min(rank(m.rule(i).key, pos, i));
                }
            } else if g.has_group_peers[dir] && m.min_key != Key::MAX {
                // Cold path: the baseline lookup is as good as any.
                let sets = m.lookup::<Baseline>(probe);
                if let Some(i) = m.first_match(&sets, probe, Key::MAX, remote_in) {
                    best = best.min(rank(m.rule(i).key, pos, i));
                }
            }
        }
        best
    }

    /// Private API for the explanation builder: the NIC's defined groups with their
    /// position, plus addressing.
    pub(crate) fn nic_view(&self, nic_id: &str) -> Option<NicView<'_>> {
        let e = &self.nics.get(nic_id.as_bytes())?.entry;
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
        for (id, r) in self.nics.iter() {
            let c = self.nic_slab.get(r.index as usize);
            if !c.is_some_and(|c| c.live && c.entry.slots() == r.entry.slots()) {
                return Err(format!(
                    "NIC {} and its slab cell differ",
                    id.to_string_lossy()
                ));
            }
        }
        let live = self.nic_slab.iter().filter(|c| c.live).count();
        if live != self.nics.len() || live + self.nic_free.len() != self.nic_slab.len() {
            return Err("NIC slab, free list and NIC table disagree".into());
        }
        Ok(())
    }
}

pub(crate) struct NicView<'a> {
    pub public_ip: Option<u32>,
    /// (position, group id, spec if defined)
    pub groups: Vec<(u8, &'a str, Option<&'a GroupSpec>)>,
}
