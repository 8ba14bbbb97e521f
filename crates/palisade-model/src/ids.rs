//! Resource identifiers in the shape the real service uses (`sg-` + 20 lower-case
//! alphanumerics, `vpc-` + 21, ...), and request ids (upper-case UUIDs).

use std::sync::atomic::{AtomicU64, Ordering};

const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

/// A small xorshift generator seeded from the clock and a counter: ids need to be
/// unique and unpredictable enough for an emulator, not cryptographic.
fn next_random() -> u64 {
    static STATE: AtomicU64 = AtomicU64::new(0);
    loop {
        let cur = STATE.load(Ordering::Relaxed);
        let mut x = if cur == 0 {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0x9E37_79B9_7F4A_7C15);
            (nanos ^ (std::process::id() as u64).rotate_left(32)) | 1
        } else {
            cur
        };
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        if STATE
            .compare_exchange_weak(cur, x, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
        {
            return x.wrapping_mul(0x2545_F491_4F6C_DD1D);
        }
    }
}

pub fn random_suffix(len: usize) -> String {
    let mut out = String::with_capacity(len);
    while out.len() < len {
        let mut r = next_random();
        for _ in 0..10 {
            if out.len() == len {
                break;
            }
            out.push(ALPHABET[(r % 36) as usize] as char);
            r /= 36;
        }
    }
    out
}

pub fn new_id(prefix: &str, len: usize) -> String {
    format!("{prefix}-{}", random_suffix(len))
}

pub fn security_group_id() -> String {
    new_id("sg", 20)
}
pub fn rule_id() -> String {
    new_id("sgr", 20)
}
pub fn vpc_id() -> String {
    new_id("vpc", 21)
}
pub fn instance_id() -> String {
    new_id("i", 20)
}
pub fn network_interface_id() -> String {
    new_id("eni", 20)
}
pub fn vswitch_id() -> String {
    new_id("vsw", 21)
}
