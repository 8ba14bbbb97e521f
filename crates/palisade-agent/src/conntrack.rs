//! Cutting connections that the rules no longer allow: after a change is committed the
//! agent lists the connection-tracking table, judges the original direction of every
//! entry of a protected interface with the decision engine (the same semantics the
//! kernel now enforces), and deletes the entries that would now be dropped with
//! `conntrack -D` and their exact tuple. Without the entry, the next packet of the
//! connection is judged as new and meets the rules (a TCP segment that is not a SYN is
//! dropped outright), so an established connection stops too.

use std::net::Ipv4Addr;

use palisade_engine::{Direction, Engine, Packet, Policy};

use crate::nft::Exec;
use crate::state::EnforcementState;

/// The original-direction tuple of one conntrack entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CtEntry {
    pub proto: u8,
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub sport: u16,
    pub dport: u16,
    /// ICMP type, code and id.
    pub icmp: Option<(u8, u8, u16)>,
    /// A reply was seen (no `[UNREPLIED]`). Until then the kernel marks every packet
    /// of the entry `ct state new`, so the rules judge it anyway.
    pub replied: bool,
    /// TCP state (`ESTABLISHED`, `TIME_WAIT`, ...).
    pub tcp_state: Option<String>,
}

impl CtEntry {
    /// Can packets pass on this entry without meeting the rules? Not before a reply,
    /// and not for a closed TCP connection (a new SYN replaces such an entry).
    pub fn carries_traffic(&self) -> bool {
        self.replied && !matches!(self.tcp_state.as_deref(), Some("CLOSE") | Some("TIME_WAIT"))
    }
}

/// Parses `conntrack -L` output (the default text format), IPv4 entries only.
pub fn parse_list(text: &str) -> Vec<CtEntry> {
    let mut out = Vec::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        let (Some(_name), Some(num)) = (words.next(), words.next()) else {
            continue;
        };
        let Ok(proto) = num.parse::<u8>() else {
            continue;
        };
        let mut src = None;
        let mut dst = None;
        let mut sport = None;
        let mut dport = None;
        let mut typ = None;
        let mut code = None;
        let mut id = None;
        let mut replied = true;
        let mut tcp_state = None;
        for w in words {
            if w == "[UNREPLIED]" {
                replied = false;
            }
            if proto == 6
                && tcp_state.is_none()
                && w.chars().all(|c| c.is_ascii_uppercase() || c == '_')
            {
                tcp_state = Some(w.to_string());
            }
            let Some((k, v)) = w.split_once('=') else {
                continue;
            };
            // The first occurrence of each key is the original direction.
            match k {
                "src" if src.is_none() => src = v.parse::<Ipv4Addr>().ok(),
                "dst" if dst.is_none() => dst = v.parse::<Ipv4Addr>().ok(),
                "sport" if sport.is_none() => sport = v.parse::<u16>().ok(),
                "dport" if dport.is_none() => dport = v.parse::<u16>().ok(),
                "type" if typ.is_none() => typ = v.parse::<u8>().ok(),
                "code" if code.is_none() => code = v.parse::<u8>().ok(),
                "id" if id.is_none() => id = v.parse::<u16>().ok(),
                _ => {}
            }
        }
        let (Some(src), Some(dst)) = (src, dst) else {
            continue;
        };
        let icmp = match (typ, code, id) {
            (Some(t), Some(c), Some(i)) if proto == 1 => Some((t, c, i)),
            _ => None,
        };
        out.push(CtEntry {
            proto,
            src,
            dst,
            sport: sport.unwrap_or(0),
            dport: dport.unwrap_or(0),
            icmp,
            replied,
            tcp_state,
        });
    }
    out
}

/// `conntrack -D` arguments that delete exactly this entry.
pub fn delete_args(e: &CtEntry) -> Vec<String> {
    let mut a: Vec<String> = vec![
        "-D".into(),
        "-p".into(),
        e.proto.to_string(),
        "-s".into(),
        e.src.to_string(),
        "-d".into(),
        e.dst.to_string(),
    ];
    match e.proto {
        6 | 17 | 132 | 136 => {
            a.extend([
                "--sport".into(),
                e.sport.to_string(),
                "--dport".into(),
                e.dport.to_string(),
            ]);
        }
        1 => {
            if let Some((t, c, i)) = e.icmp {
                a.extend([
                    "--icmp-type".into(),
                    t.to_string(),
                    "--icmp-code".into(),
                    c.to_string(),
                    "--icmp-id".into(),
                    i.to_string(),
                ]);
            }
        }
        _ => {}
    }
    a
}

/// Would the protected interfaces still let this connection be opened? `None` when
/// the entry is not theirs.
pub fn still_allowed(st: &EnforcementState, engine: &Engine, e: &CtEntry) -> Option<bool> {
    if e.src == e.dst {
        return None;
    }
    let ports = matches!(e.proto, 6 | 17);
    for nic in &st.nics {
        let mine = |a: Ipv4Addr| a == nic.private_ip || Some(a) == nic.public_ip;
        let (direction, local, remote, lport, rport) = if mine(e.dst) && !mine(e.src) {
            (Direction::Ingress, e.dst, e.src, e.dport, e.sport)
        } else if mine(e.src) && !mine(e.dst) {
            (Direction::Egress, e.src, e.dst, e.sport, e.dport)
        } else {
            continue;
        };
        let p = Packet {
            direction,
            protocol: e.proto,
            local_ip: u32::from(local),
            remote_ip: u32::from(remote),
            local_port: if ports { lport } else { 0 },
            remote_port: if ports { rport } else { 0 },
            reply: false,
        };
        if let Ok(v) = engine.decide(&nic.id, &p) {
            return Some(v.action == Policy::Accept);
        }
    }
    None
}

/// Deletes the entries of the protected interfaces that the state no longer allows.
/// Returns how many were deleted.
pub fn purge(exec: &Exec, st: &EnforcementState) -> Result<usize, String> {
    let listing = exec.run("conntrack", &["-L", "-f", "ipv4"], None)?;
    let entries = parse_list(&listing);
    if entries.is_empty() {
        return Ok(0);
    }
    let engine = st.engine();
    let mut deleted = 0;
    for e in &entries {
        if e.carries_traffic() && still_allowed(st, &engine, e) == Some(false) {
            let args = delete_args(e);
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            // Exit status 1 means the entry was already gone: fine.
            if exec.run("conntrack", &refs, None).is_ok() {
                deleted += 1;
            }
        }
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_entries() {
        let text = "tcp      6 431999 ESTABLISHED src=192.168.0.11 dst=192.168.0.10 sport=43210 dport=22 src=192.168.0.10 dst=192.168.0.11 sport=22 dport=43210 [ASSURED] mark=0 use=1\n\
icmp     1 29 src=192.168.0.11 dst=192.168.0.10 type=8 code=0 id=77 src=192.168.0.10 dst=192.168.0.11 type=0 code=0 id=77 mark=0 use=1\n\
unknown  47 599 src=1.2.3.4 dst=5.6.7.8 src=5.6.7.8 dst=1.2.3.4 mark=0 use=1\n";
        let e = parse_list(text);
        assert_eq!(e.len(), 3);
        assert_eq!(e[0].dport, 22);
        assert_eq!(e[0].sport, 43210);
        assert_eq!(e[1].icmp, Some((8, 0, 77)));
        assert_eq!(e[0].tcp_state.as_deref(), Some("ESTABLISHED"));
        assert!(e[0].carries_traffic());
        let closed = parse_list("tcp      6 9 CLOSE src=1.1.1.1 dst=2.2.2.2 sport=1 dport=2 src=2.2.2.2 dst=1.1.1.1 sport=2 dport=1 mark=0 use=1\nudp      17 29 src=1.1.1.1 dst=2.2.2.2 sport=1 dport=2 [UNREPLIED] src=2.2.2.2 dst=1.1.1.1 sport=2 dport=1 mark=0 use=1\n");
        assert!(!closed[0].carries_traffic());
        assert!(!closed[1].carries_traffic());
        assert_eq!(
            delete_args(&e[0]).join(" "),
            "-D -p 6 -s 192.168.0.11 -d 192.168.0.10 --sport 43210 --dport 22"
        );
        assert_eq!(
            delete_args(&e[1]).join(" "),
            "-D -p 1 -s 192.168.0.11 -d 192.168.0.10 --icmp-type 8 --icmp-code 0 --icmp-id 77"
        );
        assert_eq!(
            delete_args(&e[2]).join(" "),
            "-D -p 47 -s 1.2.3.4 -d 5.6.7.8"
        );
    }
}
