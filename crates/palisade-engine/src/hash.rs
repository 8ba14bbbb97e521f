//! A small, fast, keyed hasher for the engine's tables (NIC ids, group ids, member
//! addresses). SipHash costs more than a whole rule lookup on the data path; this is
//! a multiply-rotate hash keyed per engine from the std random source so that table
//! layouts are not predictable across processes.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};

const K: u64 = 0x9E37_79B9_7F4A_7C15;

#[derive(Clone, Copy, Debug)]
pub struct FastBuild {
    seed: u64,
}

impl FastBuild {
    /// A fresh random key.
    pub fn random() -> FastBuild {
        let mut h = RandomState::new().build_hasher();
        h.write_u64(0x5041_4c49_5341_4445);
        FastBuild {
            seed: h.finish() | 1,
        }
    }
}

impl Default for FastBuild {
    fn default() -> Self {
        FastBuild::random()
    }
}

impl BuildHasher for FastBuild {
    type Hasher = FastHasher;
    #[inline]
    fn build_hasher(&self) -> FastHasher {
        FastHasher { h: self.seed }
    }
}

#[derive(Clone, Copy, Debug)]
pub struct FastHasher {
    h: u64,
}

impl FastHasher {
    #[inline(always)]
    fn mix(&mut self, v: u64) {
        self.h = (self.h.rotate_left(23) ^ v).wrapping_mul(K);
    }
}

impl Hasher for FastHasher {
    #[inline]
    fn finish(&self) -> u64 {
        // Final avalanche so that the low bits (the bucket index) depend on all input.
        let mut x = self.h;
        x ^= x >> 32;
        x = x.wrapping_mul(0xD6E8_FEB8_6659_FD93);
        x ^= x >> 32;
        x
    }

    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        // Whole-word reads only (overlapping at the tail): no byte loops, no memcpy.
        let n = bytes.len();
        let word = |i: usize| u64::from_le_bytes(bytes[i..i + 8].try_into().expect("8 bytes"));
        let half = |i: usize| u32::from_le_bytes(bytes[i..i + 4].try_into().expect("4 bytes"));
        if n >= 8 {
            let mut i = 0;
            while i + 8 <= n {
                self.mix(word(i));
                i += 8;
            }
            if i < n {
                self.mix(word(n - 8));
            }
        } else if n >= 4 {
            self.mix(((half(0) as u64) << 32) | half(n - 4) as u64);
        } else if n > 0 {
            self.mix(bytes[0] as u64 | (bytes[n / 2] as u64) << 8 | (bytes[n - 1] as u64) << 16);
        }
        self.mix(n as u64);
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.mix(i as u64);
    }

    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.mix(i as u64);
    }

    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.mix(i);
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.mix(i as u64);
    }
}

pub type FastMap<K, V> = HashMap<K, V, FastBuild>;

/// An identifier stored inline when short (ECS ids are 22–24 bytes), so that a
/// table lookup compares bytes inside the table instead of following a pointer.
#[derive(Clone, Debug)]
pub enum IdKey {
    Inline { len: u8, bytes: [u8; IdKey::INLINE] },
    Heap(Box<[u8]>),
}

impl IdKey {
    pub const INLINE: usize = 30;

    pub fn new(id: &str) -> IdKey {
        let b = id.as_bytes();
        if b.len() <= IdKey::INLINE {
            let mut bytes = [0u8; IdKey::INLINE];
            bytes[..b.len()].copy_from_slice(b);
            IdKey::Inline {
                len: b.len() as u8,
                bytes,
            }
        } else {
            IdKey::Heap(b.into())
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        match self {
            IdKey::Inline { len, bytes } => &bytes[..*len as usize],
            IdKey::Heap(b) => b,
        }
    }

    /// The id as text (it was built from a `&str`).
    pub fn to_string_lossy(&self) -> String {
        String::from_utf8_lossy(self.as_bytes()).into_owned()
    }
}

impl std::borrow::Borrow<[u8]> for IdKey {
    fn borrow(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl std::hash::Hash for IdKey {
    /// Same as hashing the byte slice, as `Borrow<[u8]>` requires.
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state)
    }
}

impl PartialEq for IdKey {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for IdKey {}
