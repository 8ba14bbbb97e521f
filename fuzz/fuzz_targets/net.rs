//! CIDR blocks and port ranges from any string: what parses re-renders to something
//! that parses to the same value, and stays within its bounds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use palisade_model::{Cidr4, PortRange};

fuzz_target!(|data: &[u8]| {
    let s = String::from_utf8_lossy(data);
    if let Ok(c) = s.parse::<Cidr4>() {
        assert!(c.prefix_len <= 32);
        assert!(
            s.bytes().all(|b| b.is_ascii_digit() || b == b'.' || b == b'/'),
            "{s:?} parsed"
        );
        assert_eq!(c.to_string().parse::<Cidr4>(), Ok(c));
        let n = c.network();
        assert_eq!(n.to_string().parse::<Cidr4>(), Ok(n));
        assert_eq!(n.network(), n);
        assert_eq!(n.prefix_len, c.prefix_len);
        assert!(c.contains(c.addr) && n.contains(c.addr));
        assert!(n.contains_block(&c) && c.contains_block(&n));
        assert_eq!(c.addr & !c.mask(), c.addr - n.addr);
        assert_eq!(c.mask().count_ones(), c.prefix_len as u32);
    }
    if let Ok(p) = s.parse::<PortRange>() {
        assert!(
            s.bytes().all(|b| b.is_ascii_digit() || b == b'-' || b == b'/'),
            "{s:?} parsed"
        );
        assert!(p.is_any() || (1 <= p.from && p.from <= p.to && p.to <= 65535), "{p:?}");
        assert_eq!(p.to_string().parse::<PortRange>(), Ok(p));
        if !p.is_any() {
            assert!(p.contains(p.from as u16) && p.contains(p.to as u16));
            assert!(p.from == 1 || !p.contains((p.from - 1) as u16));
        }
    }
});
