//! Per-group compilation: each direction of a group becomes a bit-vector classifier.
//!
//! The rules of one direction are sorted by the evaluation order key (priority,
//! drop before accept, index in the group); rule `i` of that order owns bit `i`.
//! Two dimensions are always classified:
//!
//! * "class-port": (which NIC address the packet uses, protocol class, destination
//!   port) packed into one 20-bit value — this folds the nic-type rules, the
//!   protocol and the destination port range into one lookup;
//! * the remote address (CIDR peers only).
//!
//! The source port and the local address (`local_cidr`) are classified too when
//! more than [`POSTFILTER_MAX`] rules of the direction restrict them; otherwise the
//! few restricted rules carry a check that is done on candidates only.
//!
//! Each dimension is cut into elementary intervals at the rules' range bounds
//! (neighbouring intervals with equal rule sets merged) and stores, per interval,
//! the set of rules accepting all of it. A match is: one lookup per dimension
//! ([`Search`]: a directory load plus a 16-lane SIMD count), a word-wise AND, a
//! prefix mask keeping only rules that can still beat the winner found in the
//! NIC's earlier groups (`cut`), and the first set bit.
//!
//! Group peers are not in the address dimension. Membership changes must not
//! recompile groups, so for every group a rule names, the direction keeps the mask
//! of rules naming it (`peer_masks`); at decision time the masks of the groups the
//! remote address belongs to (one lookup in the engine's reverse membership index)
//! are OR-ed into the address set.

use crate::types::{ipproto, Cidr4, Direction, GroupKind, GroupSpec, NicType, Peer, Policy};

/// Marker for "peer is not a group".
pub(crate) const NO_GROUP: u32 = u32::MAX;

/// Order key of a rule across groups: `priority << 1 | (accept as u16)`. Lower wins;
/// at equal key the NIC's earlier group wins, then the lower rule index.
pub(crate) type Key = u16;

pub(crate) fn order_key(priority: u8, policy: Policy) -> Key {
    ((priority as u16) << 1) | policy.rank() as u16
}

/// Protocol classes of the classifier: tcp, udp, icmp, gre, icmpv6, other.
const N_PROTO_CLASSES: usize = 6;

const fn proto_class_table() -> [u8; 256] {
    let mut t = [5u8; 256];
    t[ipproto::TCP as usize] = 0;
    t[ipproto::UDP as usize] = 1;
    t[ipproto::ICMP as usize] = 2;
    t[ipproto::GRE as usize] = 3;
    t[ipproto::ICMPV6 as usize] = 4;
    t
}

static PROTO_CLASS: [u8; 256] = proto_class_table();

/// A representative protocol number per class (used when compiling).
const CLASS_PROTO: [u8; N_PROTO_CLASSES] = [
    ipproto::TCP,
    ipproto::UDP,
    ipproto::ICMP,
    ipproto::GRE,
    ipproto::ICMPV6,
    0, // any number outside the named ones
];

/// Packet key of the combined (address kind, protocol class, destination port)
/// dimension: `on_public << 19 | class << 16 | port`.
#[inline(always)]
fn class_key(on_public: bool, class: usize, port: u16) -> u32 {
    ((on_public as u32) << 19) | ((class as u32) << 16) | port as u32
}

const CLASS_KEY_MAX: u32 = (1 << 20) - 1;

/// Size of the `cut` tables: one past the largest order key (priority 100,
/// accept = 201) + 1, so that the last entry counts every rule.
const KEY_LIMIT: usize = ((100 << 1) | 1) + 2;

/// A dimension used by fewer rules than this is not classified; its rules are
/// checked one by one among the candidates instead (see [`RuleMeta::checks`]).
const POSTFILTER_MAX: usize = 8;

const CHECK_SPORT: u8 = 2;
const CHECK_LOCAL: u8 = 4;

/// Per-rule data needed on the data path, in evaluation order.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RuleMeta {
    pub key: Key,
    /// Index of the rule in `GroupSpec::rules`.
    pub rule_index: u16,
    /// Tests still to do for a candidate (`CHECK_*`); 0 = a candidate matches.
    checks: u8,
    sport_lo: u16,
    sport_hi: u16,
    local_lo: u32,
    local_hi: u32,
}

impl RuleMeta {
    #[inline(always)]
    fn accepts(&self, p: &Probe) -> bool {
        if self.checks == 0 {
            return true;
        }
        (self.checks & CHECK_SPORT == 0 || (self.sport_lo <= p.sport && p.sport <= self.sport_hi))
            && (self.checks & CHECK_LOCAL == 0
                || (self.local_lo <= p.local_ip && p.local_ip <= self.local_hi))
    }
}

/// Lanes of one search block: 16 `u32` = one cache line.
const LANES: usize = 16;

/// Keys are stored with the sign bit flipped so that unsigned order becomes signed
/// order (SSE2 only compares signed lanes).
const BIAS: u32 = 0x8000_0000;

/// Number of keys of a sorted 16-lane block below `v` (both biased).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn count_below(block: &[u32; LANES], v: u32) -> usize {
    use std::arch::x86_64::*;
    // SAFETY: SSE2 is part of the x86_64 baseline, so the intrinsics are available;
    // the four unaligned 16-byte loads stay inside the 64-byte array.
    let mask = unsafe {
        let p = block.as_ptr() as *const __m128i;
        let vv = _mm_set1_epi32(v as i32);
        let a = _mm_cmpgt_epi32(vv, _mm_loadu_si128(p));
        let b = _mm_cmpgt_epi32(vv, _mm_loadu_si128(p.add(1)));
        let c = _mm_cmpgt_epi32(vv, _mm_loadu_si128(p.add(2)));
        let d = _mm_cmpgt_epi32(vv, _mm_loadu_si128(p.add(3)));
        let ab = _mm_packs_epi32(a, b);
        let cd = _mm_packs_epi32(c, d);
        _mm_movemask_epi8(_mm_packs_epi16(ab, cd)) as u32
    };
    // The block is sorted, so the lanes below `v` are a prefix.
    (!mask).trailing_zeros() as usize
}

/// Number of keys of a sorted 16-lane block below `v` (both biased).
#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
fn count_below(block: &[u32; LANES], v: u32) -> usize {
    let mut n = 0u32;
    for &x in block {
        n += ((x as i32) < (v as i32)) as u32;
    }
    n as usize
}

/// Ask the CPU to start loading the cache line at `p` (a hint; never faults).
#[inline(always)]
pub(crate) fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is only a hint: it does not fault on any address.
    unsafe {
        use std::arch::x86_64::*;
        _mm_prefetch::<_MM_HINT_T0>(p as *const i8);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// How a 16-lane block of keys is counted. The data path is generic over it and
/// compiled once per implementation; the engine picks one from the CPU's
/// features when it is created (see `Engine::decide_entry`).
pub(crate) trait Lanes {
    /// Number of keys of a sorted block below `v` (both biased).
    fn count_below(block: &[u32; LANES], v: u32) -> usize;
}

/// Baseline instructions (SSE2 on x86_64).
pub(crate) struct Baseline;

impl Lanes for Baseline {
    #[inline(always)]
    fn count_below(block: &[u32; LANES], v: u32) -> usize {
        count_below(block, v)
    }
}

/// AVX2: two 8-lane compares instead of four 4-lane compares and three packs.
/// Only for code compiled with AVX2 enabled and run after AVX2 was detected:
/// the engine instantiates it solely inside its `#[target_feature(enable =
/// "avx2")]` entry point, which it calls only when the CPU has AVX2.
#[cfg(target_arch = "x86_64")]
pub(crate) struct Avx2;

#[cfg(target_arch = "x86_64")]
impl Lanes for Avx2 {
    #[inline(always)]
    fn count_below(block: &[u32; LANES], v: u32) -> usize {
        use std::arch::x86_64::*;
        // SAFETY: AVX2 is available (see the type's documentation); the two
        // unaligned 32-byte loads stay inside the 64-byte array.
        let mask = unsafe {
            let p = block.as_ptr() as *const __m256i;
            let vv = _mm256_set1_epi32(v as i32);
            let a = _mm256_cmpgt_epi32(vv, _mm256_loadu_si256(p));
            let b = _mm256_cmpgt_epi32(vv, _mm256_loadu_si256(p.add(1)));
            _mm256_movemask_ps(_mm256_castsi256_ps(a)) as u32
                | (_mm256_movemask_ps(_mm256_castsi256_ps(b)) as u32) << 8
        };
        // The block is sorted, so the lanes below `v` are a prefix.
        (!mask).trailing_zeros() as usize
    }
}

/// One dimension cut into elementary intervals. The interval of a value is the
/// number of interval starts ("bounds") at or below it, found in two dependent
/// steps: a directory indexed by the value's high bits (relative to the first
/// bound) gives the number of bounds before the value's bucket, then one 16-lane
/// count over the following keys (repeated only if a bucket holds 16 or more
/// bounds). Keys are stored as `bound - 1` (bounds are never 0), [`BIAS`]ed,
/// followed by 16 `u32::MAX` keys, so "bounds `<= v`" is "keys `< v`" for every
/// `v` including `u32::MAX`.
#[derive(Clone, Copy, Debug)]
struct Search {
    /// First bound.
    base: u32,
    shift: u32,
    /// Directory entries (at least 1 when `n > 0`).
    /// Directory entries minus one.
    dir_max: u32,
    dir_off: u32,
    key_off: u32,
    set_off: u32,
}

impl Search {
    /// Index of the interval holding `v`: the number of bounds at or below it.
    /// `keys` must be the array this search was built into (see [`Builder::dim`]).
    #[inline(always)]
    fn interval<L: Lanes>(&self, keys: &[u32], v: u32) -> usize {
        let j = (v.saturating_sub(self.base) >> self.shift).min(self.dir_max);
        let d = (self.dir_off + j) as usize;
        debug_assert!(d < keys.len());
        // SAFETY: `j <= dir_max` and the directory is `keys[dir_off..=dir_off + dir_max]`.
        // Bounds checks here cost as much as the rest of the lookup.
        let mut at = unsafe { *keys.get_unchecked(d) } as usize;
        let vb = v ^ BIAS;
        loop {
            let o = self.key_off as usize + at;
            debug_assert!(o + LANES <= keys.len());
            // SAFETY: `at` never exceeds the number of bounds `n`: directory entries
            // are at most `n`, and the 16 padding keys after the bounds never count
            // (they hold the largest biased key), so a block can only be all-below
            // while it lies within the bounds. Keys are `keys[key_off..key_off + n]`
            // plus the padding, so `o + LANES <= key_off + n + LANES` is in bounds.
            let block = unsafe { &*(keys.as_ptr().add(o) as *const [u32; LANES]) };
            let c = L::count_below(block, vb);
            at += c;
            if c < LANES {
                return at;
            }
        }
    }

    /// Fast layout: the two-word set of the interval of `v`. A dimension without
    /// bounds has a one-entry directory and only padding keys, so it needs no
    /// special case here.
    #[inline(always)]
    fn set2<L: Lanes>(&self, keys: &[u32], sets: &[u64], v: u32) -> u128 {
        let k = self.interval::<L>(keys, v);
        // SAFETY: the dimension stores `n + 1` two-word sets from `set_off` and
        // `interval` returns at most `n` (see there).
        unsafe { word_pair_unchecked(sets, self.set_off as usize + 2 * k) }
    }

    #[inline(always)]
    fn set<'a, L: Lanes>(&self, keys: &[u32], sets: &'a [u64], v: u32, words: usize) -> &'a [u64] {
        let o = self.set_off as usize + self.interval::<L>(keys, v) * words;
        &sets[o..o + words]
    }
}

/// Most bounds one directory bucket may hold so that a lookup always ends after
/// its first 16-lane block (the block then also holds a key of the next bucket or
/// padding, so fewer than 16 lanes count).
const BUCKET_MAX: usize = LANES - 1;

/// Largest directory built to reach [`BUCKET_MAX`]; beyond it a lookup may take
/// more than one block (correct, just slower).
fn dir_cap(n: usize) -> u64 {
    (16 * n as u64).clamp(64, 4096)
}

/// Directory of a dimension (number of bounds before each bucket) and its shift.
/// Rule bounds cluster (well-known ports, nested CIDRs), so the bucket width is
/// narrowed until no bucket holds more than [`BUCKET_MAX`] bounds: the data path
/// then does exactly one block compare, with no data-dependent loop.
fn directory(bounds: &[u32], base: u32, span: u32) -> (u32, Vec<u32>) {
    let n = bounds.len();
    // Linear in buckets + bounds (the bounds are sorted): group updates rebuild
    // this for every dimension, a few times while narrowing.
    let build = |shift: u32| -> Vec<u32> {
        let mut k = 0;
        (0..=(span >> shift) as u64)
            .map(|j| {
                let start = base as u64 + (j << shift);
                while k < n && (bounds[k] as u64) < start {
                    k += 1;
                }
                k as u32
            })
            .collect()
    };
    let fits = |dir: &[u32]| {
        dir.windows(2)
            .map(|w| (w[1] - w[0]) as usize)
            .chain(std::iter::once(
                n - *dir.last().expect("non-empty") as usize,
            ))
            .all(|c| c <= BUCKET_MAX)
    };
    if n <= BUCKET_MAX {
        return (0, vec![0]);
    }
    // Start at about two bounds per bucket on evenly spread data.
    let target = (n / 2).next_power_of_two() as u64;
    let mut shift = 0;
    while (span as u64 >> shift) >= target {
        shift += 1;
    }
    let mut dir = build(shift);
    while shift > 0 && !fits(&dir) && ((span >> (shift - 1)) as u64) < dir_cap(n) {
        shift -= 1;
        dir = build(shift);
    }
    (shift, dir)
}

/// Builds the arrays of one direction.
struct Builder {
    words: usize,
    keys: Vec<u32>,
    sets: Vec<u64>,
}

impl Builder {
    /// `ranges`: (rule bit, lo, hi) inclusive, any number per rule; values are
    /// `0..=max`.
    fn dim(&mut self, ranges: &[(usize, u32, u32)], max: u32) -> Search {
        let w = self.words;
        let mut bounds: Vec<u32> = Vec::new();
        for &(_, lo, hi) in ranges {
            if lo > 0 {
                bounds.push(lo);
            }
            if hi < max {
                bounds.push(hi + 1);
            }
        }
        bounds.sort_unstable();
        bounds.dedup();
        let n_int = bounds.len() + 1;
        let mut sets = vec![0u64; n_int * w];
        for &(bit, lo, hi) in ranges {
            // No interval straddles a rule boundary: the intervals inside [lo, hi]
            // are those whose start lies in it.
            let first = if lo == 0 {
                0
            } else {
                bounds.partition_point(|&b| b < lo) + 1
            };
            let last = bounds.partition_point(|&b| b <= hi);
            for k in first..=last {
                sets[k * w + bit / 64] |= 1u64 << (bit % 64);
            }
        }
        // Merge neighbouring intervals with equal rule sets.
        let mut kept_bounds = Vec::with_capacity(bounds.len());
        let mut kept_sets = sets[..w].to_vec();
        for k in 1..n_int {
            if sets[k * w..(k + 1) * w] != sets[(k - 1) * w..k * w] {
                kept_bounds.push(bounds[k - 1]);
                kept_sets.extend_from_slice(&sets[k * w..(k + 1) * w]);
            }
        }
        let set_off = self.sets.len() as u32;
        self.sets.extend_from_slice(&kept_sets);
        // Without bounds: a one-entry directory and padding keys, so that lookups
        // need no special case (every value is in interval 0).
        let base = kept_bounds.first().copied().unwrap_or(0);
        let span = kept_bounds.last().map_or(0, |&l| l - base);
        let (shift, dir) = directory(&kept_bounds, base, span);
        let dir_off = self.keys.len() as u32;
        let dir_max = dir.len() as u32 - 1;
        self.keys.extend(dir);
        let key_off = self.keys.len() as u32;
        self.keys
            .extend(kept_bounds.iter().map(|&b| (b - 1) ^ BIAS));
        self.keys.extend([u32::MAX ^ BIAS; LANES]);
        Search {
            base,
            shift,
            dir_max,
            dir_off,
            key_off,
            set_off,
        }
    }
}

/// Most rules of a direction handled by the fixed two-word fast path.
pub(crate) const FAST_RULES: usize = 128;

/// Words `i` and `i + 1` of `v` as one 128-bit set.
#[inline(always)]
fn word_pair(v: &[u64], i: usize) -> u128 {
    let w: &[u64; 2] = v[i..i + 2].try_into().expect("two words");
    (w[1] as u128) << 64 | w[0] as u128
}

/// [`word_pair`] without the bounds check, for the data path.
///
/// # Safety
///
/// `i + 1 < v.len()`.
#[inline(always)]
unsafe fn word_pair_unchecked(v: &[u64], i: usize) -> u128 {
    debug_assert!(i + 1 < v.len());
    let w = &*(v.as_ptr().add(i) as *const [u64; 2]);
    (w[1] as u128) << 64 | w[0] as u128
}

/// The classifier of one direction of one group.
#[derive(Clone, Debug)]
pub(crate) struct DirMatcher {
    /// Words per rule set: 2 when `fast`, else `n.div_ceil(64)`.
    words: usize,
    /// Number of rules.
    pub n: usize,
    /// At most [`FAST_RULES`] rules: use [`DirMatcher::fast_sets`].
    pub fast: bool,
    /// Fast layout: every rule with a group peer.
    peer_any: u128,
    /// Rules of this direction in evaluation order, then a sentinel (key
    /// `Key::MAX`) at index `n`.
    pub rules: Box<[RuleMeta]>,
    /// Slots named by group peers of this direction, and per slot (row) the rules
    /// naming it (`words` words per row).
    peer_rows: Box<[u32]>,
    peer_masks: Box<[u64]>,
    /// `cut[k]`: number of rules whose key is below `k` (for `k < KEY_LIMIT`).
    cut: Box<[u16]>,
    keys: Box<[u32]>,
    sets: Box<[u64]>,
    /// (address kind, protocol class, destination port).
    class_port: Search,
    remote: Search,
    /// Classified only when enough rules restrict it; otherwise post-filtered.
    sport: Option<Search>,
    local: Option<Search>,
    /// Key of the first rule, `Key::MAX` when there are none.
    pub min_key: Key,
}

/// What the classifier needs to know about a packet.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Probe {
    /// Key of the (address kind, protocol class, destination port) dimension,
    /// computed once per packet rather than per group.
    class_port: u32,
    pub sport: u16,
    pub local_ip: u32,
    pub remote_ip: u32,
}

impl Probe {
    pub fn new(
        protocol: u8,
        dport: u16,
        sport: u16,
        local_ip: u32,
        remote_ip: u32,
        on_public: bool,
    ) -> Probe {
        let class = PROTO_CLASS[protocol as usize] as usize;
        Probe {
            class_port: class_key(on_public, class, dport),
            sport,
            local_ip,
            remote_ip,
        }
    }
}

impl DirMatcher {
    fn build(
        spec: &GroupSpec,
        direction: Direction,
        peer_slot: &mut dyn FnMut(&str) -> u32,
    ) -> DirMatcher {
        let mut order: Vec<usize> = spec
            .rules
            .iter()
            .enumerate()
            .filter(|(_, r)| r.direction == direction)
            .map(|(i, _)| i)
            .collect();
        order.sort_by_key(|&i| (order_key(spec.rules[i].priority, spec.rules[i].policy), i));
        let n = order.len();
        // Up to FAST_RULES rules: always two words, so the data path works on fixed
        // `u128` sets with no per-group word loop.
        let words = if n <= FAST_RULES { 2 } else { n.div_ceil(64) };
        let vpc = spec.is_vpc();

        let sport_rules = order
            .iter()
            .filter(|&&i| !spec.rules[i].effective_src_ports().is_all())
            .count();
        let local_rules = order
            .iter()
            .filter(|&&i| spec.rules[i].local_cidr.is_some_and(|c| c.prefix_len > 0))
            .count();
        let classify_sport = sport_rules > POSTFILTER_MAX;
        let classify_local = local_rules > POSTFILTER_MAX;

        let mut rules = Vec::with_capacity(n);
        let mut peer_rows: Vec<u32> = Vec::new();
        let mut peer_masks: Vec<u64> = Vec::new();
        let mut class_ports = Vec::new();
        let mut sports = Vec::new();
        let mut remotes = Vec::new();
        let mut locals = Vec::new();
        for (bit, &i) in order.iter().enumerate() {
            let r = &spec.rules[i];
            let peer_group = match &r.peer {
                Peer::Cidr(_) => NO_GROUP,
                Peer::Group(g) => peer_slot(g),
            };
            let s = r.effective_src_ports();
            let (local_lo, local_hi) = match r.local_cidr {
                Some(c) => (c.first(), c.last()),
                None => (0, u32::MAX),
            };
            let mut checks = 0;
            if !classify_sport && !s.is_all() {
                checks |= CHECK_SPORT;
            }
            if !classify_local && (local_lo, local_hi) != (0, u32::MAX) {
                checks |= CHECK_LOCAL;
            }
            rules.push(RuleMeta {
                key: order_key(r.priority, r.policy),
                rule_index: i as u16,
                checks,
                sport_lo: s.from,
                sport_hi: s.to,
                local_lo,
                local_hi,
            });
            // VPC groups: every rule applies to every address of the NIC. Classic:
            // intranet rules govern the private address, internet rules the public.
            // Group peers never match traffic on the public address.
            let private_ok = vpc || r.nic_type == NicType::Intranet;
            let public_ok = (vpc || r.nic_type == NicType::Internet) && peer_group == NO_GROUP;
            let d = r.effective_dst_ports();
            for (on_public, ok) in [(false, private_ok), (true, public_ok)] {
                if !ok {
                    continue;
                }
                for (c, &p) in CLASS_PROTO.iter().enumerate() {
                    let hit = if c == N_PROTO_CLASSES - 1 {
                        r.protocol == crate::Protocol::All
                    } else {
                        r.protocol.matches(p)
                    };
                    if hit {
                        class_ports.push((
                            bit,
                            class_key(on_public, c, d.from),
                            class_key(on_public, c, d.to),
                        ));
                    }
                }
            }
            sports.push((bit, s.from as u32, s.to as u32));
            // Group peers are absent from the address dimension: they enter the
            // candidate set through `peer_masks` when the remote address is a
            // member of their group.
            match &r.peer {
                Peer::Cidr(c) => remotes.push((bit, c.first(), c.last())),
                Peer::Group(_) => {
                    let row = match peer_rows.iter().position(|&s| s == peer_group) {
                        Some(row) => row,
                        None => {
                            peer_rows.push(peer_group);
                            peer_masks.resize(peer_rows.len() * words, 0);
                            peer_rows.len() - 1
                        }
                    };
                    peer_masks[row * words + bit / 64] |= 1u64 << (bit % 64);
                }
            }
            locals.push((bit, local_lo, local_hi));
        }
        let cut = (0..KEY_LIMIT)
            .map(|k| rules.partition_point(|r: &RuleMeta| (r.key as usize) < k) as u16)
            .collect::<Vec<u16>>()
            .into_boxed_slice();
        // Sentinel at index `n`: "no match" is position n with key `Key::MAX`, so
        // the fast path reads a key without branching on an empty set.
        rules.push(RuleMeta {
            key: Key::MAX,
            rule_index: u16::MAX,
            checks: 0,
            sport_lo: 0,
            sport_hi: 0,
            local_lo: 0,
            local_hi: 0,
        });
        let mut peer_any = 0u128;
        if n <= FAST_RULES {
            for row in 0..peer_rows.len() {
                peer_any |= word_pair(&peer_masks, row * 2);
            }
        }
        let mut b = Builder {
            words,
            keys: Vec::new(),
            sets: Vec::new(),
        };
        let class_port = b.dim(&class_ports, CLASS_KEY_MAX);
        let remote = b.dim(&remotes, u32::MAX);
        let sport = classify_sport.then(|| b.dim(&sports, u16::MAX as u32));
        let local = classify_local.then(|| b.dim(&locals, u32::MAX));
        DirMatcher {
            words,
            n,
            fast: n <= FAST_RULES,
            peer_any,
            min_key: rules[0].key,
            rules: rules.into_boxed_slice(),
            peer_rows: peer_rows.into_boxed_slice(),
            peer_masks: peer_masks.into_boxed_slice(),
            cut,
            keys: b.keys.into_boxed_slice(),
            sets: b.sets.into_boxed_slice(),
            class_port,
            remote,
            sport,
            local,
        }
    }

    /// Phase 1 of a match: the interval lookups. Free of data-dependent branches
    /// so that the lookups of all of a NIC's groups can overlap in the CPU.
    #[inline(always)]
    pub fn lookup<L: Lanes>(&self, p: &Probe) -> Sets<'_> {
        let w = self.words;
        let (keys, sets) = (&*self.keys, &*self.sets);
        Sets {
            class_port: self.class_port.set::<L>(keys, sets, p.class_port, w),
            remote: self.remote.set::<L>(keys, sets, p.remote_ip, w),
            sport: self
                .sport
                .map(|d| d.set::<L>(keys, sets, p.sport as u32, w)),
            local: self.local.map(|d| d.set::<L>(keys, sets, p.local_ip, w)),
        }
    }

    /// Fast layout: the rules accepting the packet in every classified dimension,
    /// split into CIDR-peer rules (`.0`, complete) and group-peer rules (`.1`,
    /// membership not yet checked). Group peers are kept apart so that the
    /// membership lookup can be skipped when none of them could win.
    #[inline(always)]
    pub fn fast_sets<L: Lanes>(&self, p: &Probe) -> (u128, u128) {
        let (keys, sets) = (&*self.keys, &*self.sets);
        let mut m = self.class_port.set2::<L>(keys, sets, p.class_port);
        if let Some(d) = self.sport {
            m &= d.set2::<L>(keys, sets, p.sport as u32);
        }
        if let Some(d) = self.local {
            m &= d.set2::<L>(keys, sets, p.local_ip);
        }
        let remote = self.remote.set2::<L>(keys, sets, p.remote_ip);
        (m & remote, m & self.peer_any)
    }

    /// Fast layout: position of the first rule of `m` passing its post-filter
    /// checks, `n` (the sentinel) when none does.
    #[inline(always)]
    pub fn fast_first(&self, mut m: u128, p: &Probe) -> usize {
        let i = (m.trailing_zeros() as usize).min(self.n);
        if self.rule(i).checks == 0 {
            return i;
        }
        // Rare: the first candidate restricts the source port or local address.
        while m != 0 {
            let i = m.trailing_zeros() as usize;
            if self.rules[i].accepts(p) {
                return i;
            }
            m &= m - 1;
        }
        self.n
    }

    /// Prefetch this matcher's header (the lookup parameters).
    #[inline(always)]
    pub fn prefetch_header(&self) {
        let p = self as *const DirMatcher as *const u8;
        for off in (0..std::mem::size_of::<DirMatcher>()).step_by(64) {
            prefetch(p.wrapping_add(off));
        }
    }

    /// Prefetch the start of the arrays a lookup reads (needs the header).
    #[inline(always)]
    pub fn prefetch_arrays(&self) {
        prefetch(self.keys.as_ptr());
        prefetch(self.sets.as_ptr());
        prefetch(self.sets.as_ptr().wrapping_add(8));
        prefetch(self.rules.as_ptr());
    }

    /// The rule at evaluation position `i <= n` (`n` is the sentinel), without a
    /// bounds check (`rules` has `n + 1` entries).
    #[inline(always)]
    pub fn rule(&self, i: usize) -> &RuleMeta {
        assert!(i <= self.n);
        debug_assert_eq!(self.rules.len(), self.n + 1);
        // SAFETY: `rules.len() == n + 1` by construction and `i <= n` (checked
        // above; the compiler folds that check into the callers' `min(n)`).
        unsafe { self.rules.get_unchecked(i) }
    }

    /// Fast layout: position of the first group-peer candidate (`n` if none),
    /// a lower bound on where a membership-dependent match could be.
    #[inline(always)]
    pub fn fast_first_candidate(&self, m: u128) -> usize {
        (m.trailing_zeros() as usize).min(self.n)
    }

    /// Fast layout: the group-peer rules whose group the remote address is a
    /// member of (`remote_in` as in [`DirMatcher::first_match`]).
    #[inline]
    pub fn fast_peer_hits(&self, remote_in: &[(u32, u32)]) -> u128 {
        let mut hits = 0u128;
        for (row, slot) in self.peer_rows.iter().enumerate() {
            if remote_in.iter().any(|&(m, _)| m == *slot) {
                hits |= word_pair(&self.peer_masks, row * 2);
            }
        }
        hits
    }

    /// Phase 2: position (in evaluation order) of the first rule matching the
    /// probe among the rules whose key is below `below` (only those can beat the
    /// current winner). `remote_in` lists the group slots (with member counts)
    /// the remote address is a member of.
    #[inline(always)]
    pub fn first_match(
        &self,
        s: &Sets<'_>,
        p: &Probe,
        below: Key,
        remote_in: &[(u32, u32)],
    ) -> Option<usize> {
        let cut = self.cut[(below as usize).min(KEY_LIMIT - 1)] as usize;
        let nw = cut.div_ceil(64);
        let w = self.words;
        for k in 0..nw {
            let mut remote = s.remote[k];
            if !remote_in.is_empty() {
                for (row, slot) in self.peer_rows.iter().enumerate() {
                    if remote_in.iter().any(|&(m, _)| m == *slot) {
                        remote |= self.peer_masks[row * w + k];
                    }
                }
            }
            let mut m = s.class_port[k] & remote;
            if let Some(sp) = s.sport {
                m &= sp[k];
            }
            if let Some(la) = s.local {
                m &= la[k];
            }
            if k == nw - 1 && !cut.is_multiple_of(64) {
                m &= (1u64 << (cut % 64)) - 1;
            }
            while m != 0 {
                let i = k * 64 + m.trailing_zeros() as usize;
                if self.rules[i].accepts(p) {
                    return Some(i);
                }
                m &= m - 1;
            }
        }
        None
    }
}

/// Rule sets selected by a probe in each dimension.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Sets<'a> {
    class_port: &'a [u64],
    remote: &'a [u64],
    sport: Option<&'a [u64]>,
    local: Option<&'a [u64]>,
}

/// A group compiled once, shared (via `Arc`) between engine clones.
#[derive(Clone, Debug)]
pub(crate) struct CompiledGroup {
    pub spec: GroupSpec,
    /// Indexed by `Direction::index()`.
    pub dirs: [DirMatcher; 2],
    /// Normal group with `InnerAccessPolicy=Accept`.
    pub inner_accept: bool,
    pub enterprise: bool,
    /// Distinct slots named by `Peer::Group` rules (each holds one reference).
    pub peer_slots: Vec<u32>,
    /// Per direction: some rule has a group peer.
    pub has_group_peers: [bool; 2],
}

impl CompiledGroup {
    pub fn compile(spec: GroupSpec, peer_slot: &mut dyn FnMut(&str) -> u32) -> CompiledGroup {
        let mut peer_slots = Vec::new();
        let mut resolve = |g: &str| {
            let s = peer_slot(g);
            if !peer_slots.contains(&s) {
                peer_slots.push(s);
            }
            s
        };
        let ingress = DirMatcher::build(&spec, Direction::Ingress, &mut resolve);
        let egress = DirMatcher::build(&spec, Direction::Egress, &mut resolve);
        let has_group_peers = [Direction::Ingress, Direction::Egress].map(|d| {
            spec.rules
                .iter()
                .any(|r| r.direction == d && matches!(r.peer, Peer::Group(_)))
        });
        CompiledGroup {
            has_group_peers,
            inner_accept: spec.kind == GroupKind::Normal && spec.inner_access_accept,
            enterprise: spec.kind == GroupKind::Enterprise,
            dirs: [ingress, egress],
            peer_slots,
            spec,
        }
    }
}

/// Validation applied before a group is compiled.
pub(crate) fn validate(spec: &GroupSpec) -> Result<(), crate::EngineError> {
    let bad = |rule: &str, reason: &'static str| crate::EngineError::InvalidRule {
        group: spec.id.clone(),
        rule: rule.to_string(),
        reason,
    };
    if spec.rules.len() > u16::MAX as usize + 1 {
        return Err(bad("", "too many rules in one group"));
    }
    let cidr_ok = |c: &Cidr4| c.prefix_len <= 32;
    for r in &spec.rules {
        if !r.group_id.is_empty() && r.group_id != spec.id {
            return Err(bad(
                &r.rule_id,
                "rule group_id differs from the group it is in",
            ));
        }
        if !(1..=100).contains(&r.priority) {
            return Err(bad(&r.rule_id, "priority must be 1..=100"));
        }
        if r.port_range.from > r.port_range.to {
            return Err(bad(&r.rule_id, "port range start above its end"));
        }
        if let Some(sp) = r.source_port_range {
            if sp.from > sp.to {
                return Err(bad(&r.rule_id, "source port range start above its end"));
            }
        }
        if let Peer::Cidr(c) = &r.peer {
            if !cidr_ok(c) {
                return Err(bad(&r.rule_id, "peer CIDR prefix above 32"));
            }
        }
        if let Some(c) = &r.local_cidr {
            if !cidr_ok(c) {
                return Err(bad(&r.rule_id, "local CIDR prefix above 32"));
            }
        }
    }
    Ok(())
}
