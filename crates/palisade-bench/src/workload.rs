//! The deterministic part of the workload (bench/WORKLOAD.md): which rule group `i` gets
//! as its rule `j`, which rules are revoked, and the seeded request-order shuffle.

/// Protocol of a generated rule, lower-case as sent on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    Tcp,
    Udp,
    Icmp,
}

impl Proto {
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Icmp => "icmp",
        }
    }
}

/// Where a rule's traffic comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// An IPv4 CIDR block.
    Cidr(String),
    /// Another group of the workload, by index (resolved to an id once it exists).
    Group(usize),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleSpec {
    pub proto: Proto,
    pub from: i32,
    pub to: i32,
    pub source: Source,
}

/// Rule `j` (0-based) of group `i` out of `n_groups`.
///
/// - `j % 4` in {0,1,2}: CIDR `10.<(j>>8)&255>.<j&255>.0/24`, protocol tcp/udp/icmp by `j % 3`;
/// - `j % 4 == 3`: source group `(i+1) % G`, protocol tcp/udp by `(j/4) % 2`;
/// - tcp/udp ports `from = 1000 + 10j`, `to = from + j % 5`; icmp `-1/-1`.
pub fn rule_spec(i: usize, j: usize, n_groups: usize) -> RuleSpec {
    let (proto, source) = if j % 4 == 3 {
        let proto = if (j / 4).is_multiple_of(2) {
            Proto::Tcp
        } else {
            Proto::Udp
        };
        (proto, Source::Group((i + 1) % n_groups.max(1)))
    } else {
        let proto = match j % 3 {
            0 => Proto::Tcp,
            1 => Proto::Udp,
            _ => Proto::Icmp,
        };
        (
            proto,
            Source::Cidr(format!("10.{}.{}.0/24", (j >> 8) & 255, j & 255)),
        )
    };
    let (from, to) = match proto {
        Proto::Icmp => (-1, -1),
        _ => {
            let from = 1000 + 10 * j as i32;
            (from, from + (j % 5) as i32)
        }
    };
    RuleSpec {
        proto,
        from,
        to,
        source,
    }
}

/// The revoke phase removes exactly the rules with odd `j` (all source-group rules among them).
pub fn is_revoked(j: usize) -> bool {
    j % 2 == 1
}

impl RuleSpec {
    /// ECS `PortRange`.
    pub fn port_range(&self) -> String {
        format!("{}/{}", self.from, self.to)
    }

    /// The source as it reads back: the CIDR, or the id of the source group.
    pub fn source_str<'a>(&'a self, group_ids: &'a [String]) -> &'a str {
        match &self.source {
            Source::Cidr(c) => c,
            Source::Group(g) => &group_ids[*g],
        }
    }

    /// The flat (legacy) AuthorizeSecurityGroup / RevokeSecurityGroup rule parameters.
    pub fn ecs_params(&self, group_ids: &[String]) -> Vec<(&'static str, String)> {
        let source_key = match self.source {
            Source::Cidr(_) => "SourceCidrIp",
            Source::Group(_) => "SourceGroupId",
        };
        vec![
            ("IpProtocol", self.proto.as_str().to_string()),
            ("PortRange", self.port_range()),
            (source_key, self.source_str(group_ids).to_string()),
            ("NicType", "intranet".to_string()),
            ("Policy", "accept".to_string()),
            ("Priority", "1".to_string()),
        ]
    }

    /// Identity used by the checks: (protocol, port range, source).
    pub fn key(&self, group_ids: &[String]) -> RuleKey {
        (
            self.proto.as_str().to_string(),
            self.port_range(),
            self.source_str(group_ids).to_string(),
        )
    }
}

pub type RuleKey = (String, String, String);

/// SplitMix64: small, seeded, good enough to shuffle request orders reproducibly.
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix64(self.0)
    }

    /// Uniform in `0..n` (n > 0), by the multiply-shift reduction.
    pub fn below(&mut self, n: usize) -> usize {
        ((self.next_u64() as u128 * n as u128) >> 64) as usize
    }

    /// Fisher–Yates.
    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for k in (1..v.len()).rev() {
            let r = self.below(k + 1);
            v.swap(k, r);
        }
    }
}

/// The SplitMix64 finaliser; a bijection on u64.
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn first_rules_follow_the_spec() {
        let r0 = rule_spec(0, 0, 200);
        assert_eq!(r0.proto, Proto::Tcp);
        assert_eq!(r0.port_range(), "1000/1000");
        assert_eq!(r0.source, Source::Cidr("10.0.0.0/24".into()));

        let r1 = rule_spec(0, 1, 200);
        assert_eq!(r1.proto, Proto::Udp);
        assert_eq!(r1.port_range(), "1010/1011");
        assert_eq!(r1.source, Source::Cidr("10.0.1.0/24".into()));

        let r2 = rule_spec(0, 2, 200);
        assert_eq!(r2.proto, Proto::Icmp);
        assert_eq!(r2.port_range(), "-1/-1");
        assert_eq!(r2.source, Source::Cidr("10.0.2.0/24".into()));

        // j = 3: group rule, (3/4)%2 = 0 -> tcp, to = from + 3
        let r3 = rule_spec(5, 3, 200);
        assert_eq!(r3.proto, Proto::Tcp);
        assert_eq!(r3.port_range(), "1030/1033");
        assert_eq!(r3.source, Source::Group(6));

        // j = 7: group rule, (7/4)%2 = 1 -> udp, to = from + 2
        let r7 = rule_spec(199, 7, 200);
        assert_eq!(r7.proto, Proto::Udp);
        assert_eq!(r7.port_range(), "1070/1072");
        assert_eq!(r7.source, Source::Group(0));

        // j = 4: j%3 = 1 -> udp
        assert_eq!(rule_spec(0, 4, 200).proto, Proto::Udp);
        // j = 300 -> 10.1.44.0/24, j%3 = 0 -> tcp, to = from + 0
        let r300 = rule_spec(0, 300, 200);
        assert_eq!(r300.source, Source::Cidr("10.1.44.0/24".into()));
        assert_eq!(r300.port_range(), "4000/4000");
    }

    #[test]
    fn single_group_references_itself() {
        assert_eq!(rule_spec(0, 3, 1).source, Source::Group(0));
    }

    #[test]
    fn rules_are_distinct_and_group_rules_are_revoked() {
        let g = 3;
        let ids: Vec<String> = (0..g).map(|k| format!("sg-{k}")).collect();
        for i in 0..g {
            let keys: HashSet<RuleKey> = (0..1000).map(|j| rule_spec(i, j, g).key(&ids)).collect();
            assert_eq!(keys.len(), 1000);
            for j in 0..1000 {
                if matches!(rule_spec(i, j, g).source, Source::Group(_)) {
                    assert!(is_revoked(j));
                }
            }
        }
        let kept = (0..50).filter(|&j| !is_revoked(j)).count();
        assert_eq!(kept, 25);
    }

    #[test]
    fn ecs_params_of_group_and_cidr_rules() {
        let ids = vec!["sg-a".to_string(), "sg-b".to_string()];
        let p = rule_spec(0, 3, 2).ecs_params(&ids);
        assert!(p.contains(&("SourceGroupId", "sg-b".to_string())));
        assert!(p.contains(&("NicType", "intranet".to_string())));
        assert!(p.contains(&("Policy", "accept".to_string())));
        assert!(p.contains(&("Priority", "1".to_string())));
        assert!(!p.iter().any(|(k, _)| *k == "SourceCidrIp"));
        let p = rule_spec(1, 2, 2).ecs_params(&ids);
        assert!(p.contains(&("SourceCidrIp", "10.0.2.0/24".to_string())));
        assert!(p.contains(&("IpProtocol", "icmp".to_string())));
        assert!(p.contains(&("PortRange", "-1/-1".to_string())));
    }

    #[test]
    fn shuffle_is_a_seeded_permutation() {
        let mut a: Vec<usize> = (0..1000).collect();
        let mut b = a.clone();
        SplitMix64::new(1).shuffle(&mut a);
        SplitMix64::new(1).shuffle(&mut b);
        assert_eq!(a, b);
        assert_ne!(a, (0..1000).collect::<Vec<_>>());
        let mut s = a.clone();
        s.sort();
        assert_eq!(s, (0..1000).collect::<Vec<_>>());
        let mut r = SplitMix64::new(7);
        assert!((0..10_000).all(|_| r.below(3) < 3));
    }
}
