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
/// `sgr-` + 20 characters like the others, but the first 8 count milliseconds (base 36, in
/// byte order) so that new rules land at the end of the id index: random ids dirtied one
/// more database page per Authorize, and those page writes were most of the writer's time.
pub fn rule_id() -> String {
    const ORDERED: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let mut time = [b'0'; 8];
    for slot in time.iter_mut().rev() {
        *slot = ORDERED[(millis % 36) as usize];
        millis /= 36;
    }
    let mut id = String::with_capacity(24);
    id.push_str("sgr-");
    id.extend(time.iter().map(|&b| b as char));
    id.push_str(&random_suffix(12));
    id
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_ids_have_the_service_shape_and_grow() {
        let a = rule_id();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = rule_id();
        for id in [&a, &b] {
            assert_eq!(id.len(), 24, "{id}");
            assert!(id.starts_with("sgr-"));
            assert!(id[4..]
                .bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()));
        }
        assert!(a[4..12] < b[4..12], "{a} {b}");
        assert_ne!(rule_id(), rule_id());
    }
}
