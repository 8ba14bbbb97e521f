//! IPv4 CIDR blocks and port ranges as the API writes them.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// An IPv4 block. The API accepts a bare address (a /32) or `a.b.c.d/n`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cidr4 {
    pub addr: u32,
    pub prefix_len: u8,
}

impl Cidr4 {
    pub fn mask(&self) -> u32 {
        if self.prefix_len == 0 {
            0
        } else {
            u32::MAX << (32 - self.prefix_len)
        }
    }
    /// The block with host bits cleared: two spellings of one block compare equal.
    pub fn network(&self) -> Cidr4 {
        Cidr4 {
            addr: self.addr & self.mask(),
            prefix_len: self.prefix_len,
        }
    }
    pub fn contains(&self, ip: u32) -> bool {
        (ip & self.mask()) == (self.addr & self.mask())
    }
    pub fn contains_block(&self, other: &Cidr4) -> bool {
        other.prefix_len >= self.prefix_len && self.contains(other.addr)
    }
}

impl FromStr for Cidr4 {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        let (a, len) = match s.split_once('/') {
            Some((a, l)) => {
                if l.is_empty() || l.len() > 2 || !l.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(());
                }
                let n: u8 = l.parse().map_err(|_| ())?;
                if n > 32 {
                    return Err(());
                }
                (a, n)
            }
            None => (s, 32),
        };
        // Ipv4Addr rejects leading zeros and out-of-range octets, as the service does.
        let ip = Ipv4Addr::from_str(a).map_err(|_| ())?;
        Ok(Cidr4 {
            addr: u32::from(ip),
            prefix_len: len,
        })
    }
}

impl fmt::Display for Cidr4 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", Ipv4Addr::from(self.addr), self.prefix_len)
    }
}

/// `from/to`; `-1/-1` (stored as `None` bounds) means "every port" for protocols without ports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PortRange {
    pub from: i32,
    pub to: i32,
}

impl PortRange {
    pub const ANY: PortRange = PortRange { from: -1, to: -1 };
    pub fn is_any(&self) -> bool {
        self.from == -1 && self.to == -1
    }
    pub fn contains(&self, port: u16) -> bool {
        self.is_any() || (self.from <= port as i32 && port as i32 <= self.to)
    }
}

/// Why a port range did not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortRangeError {
    Syntax,
    OutOfRange,
}

impl FromStr for PortRange {
    type Err = PortRangeError;
    fn from_str(s: &str) -> Result<Self, PortRangeError> {
        let (a, b) = s.split_once('/').ok_or(PortRangeError::Syntax)?;
        let parse = |x: &str| -> Result<i32, PortRangeError> {
            let digits = x.strip_prefix('-').unwrap_or(x);
            if digits.is_empty() || digits.len() > 5 || !digits.bytes().all(|b| b.is_ascii_digit())
            {
                return Err(PortRangeError::Syntax);
            }
            x.parse().map_err(|_| PortRangeError::Syntax)
        };
        let (from, to) = (parse(a)?, parse(b)?);
        if from == -1 && to == -1 {
            return Ok(PortRange::ANY);
        }
        if !(1..=65535).contains(&from) || !(1..=65535).contains(&to) || from > to {
            return Err(PortRangeError::OutOfRange);
        }
        Ok(PortRange { from, to })
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.from, self.to)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_parsing() {
        assert_eq!(
            "10.0.0.0/8".parse::<Cidr4>().unwrap().to_string(),
            "10.0.0.0/8"
        );
        assert_eq!("10.0.0.5".parse::<Cidr4>().unwrap().prefix_len, 32);
        for bad in [
            "10.0.0.300/8",
            "10.0.0/8",
            "10.0.0.0/33",
            "a.b.c.d",
            "",
            "10.0.0.0/",
            "1.2.3.4/-1",
            "01.2.3.4/8",
        ] {
            assert!(bad.parse::<Cidr4>().is_err(), "{bad}");
        }
        let c: Cidr4 = "10.1.2.3/16".parse().unwrap();
        assert_eq!(c.network().to_string(), "10.1.0.0/16");
        assert!(c.contains(u32::from(Ipv4Addr::new(10, 1, 200, 1))));
    }

    #[test]
    fn port_ranges() {
        assert_eq!(
            "1/65535".parse::<PortRange>(),
            Ok(PortRange { from: 1, to: 65535 })
        );
        assert_eq!("-1/-1".parse::<PortRange>(), Ok(PortRange::ANY));
        assert_eq!(
            "200/1".parse::<PortRange>(),
            Err(PortRangeError::OutOfRange)
        );
        assert_eq!("0/10".parse::<PortRange>(), Err(PortRangeError::OutOfRange));
        assert_eq!("22".parse::<PortRange>(), Err(PortRangeError::Syntax));
        assert_eq!("a/b".parse::<PortRange>(), Err(PortRangeError::Syntax));
        assert_eq!(
            "-1/22".parse::<PortRange>(),
            Err(PortRangeError::OutOfRange)
        );
    }
}
