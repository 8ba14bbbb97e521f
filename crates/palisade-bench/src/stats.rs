//! Latency percentiles and the /proc readings of the server process (CPU time, peak RSS).

/// Nearest-rank percentile (`q` in 0..=100) of an already sorted slice; NaN when empty.
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let n = sorted.len();
    let rank = (q * n as f64 / 100.0).ceil() as usize; // 1-based
    sorted[rank.saturating_sub(1).min(n - 1)]
}

/// utime + stime (clock ticks, all threads) from the text of `/proc/PID/stat`.
/// The command name (field 2) may contain spaces and parentheses, so fields are counted
/// from after the last `)`: state is field 3, utime field 14, stime field 15.
pub fn parse_stat_cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// A `kB` field such as `VmHWM` or `VmRSS` from the text of `/proc/PID/status`.
pub fn parse_status_kib(status: &str, field: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let rest = line.strip_prefix(field)?.strip_prefix(':')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// Clock ticks per second: `AT_CLKTCK` from the aux vector (what `sysconf(_SC_CLK_TCK)`
/// returns), 100 if it cannot be read.
pub fn clk_tck() -> u64 {
    std::fs::read("/proc/self/auxv")
        .ok()
        .and_then(|b| parse_auxv(&b, 17))
        .filter(|&t| t > 0)
        .unwrap_or(100)
}

/// The value of entry `key` of a native-endian aux vector of (usize, usize) pairs.
pub fn parse_auxv(bytes: &[u8], key: u64) -> Option<u64> {
    const W: usize = std::mem::size_of::<usize>();
    for pair in bytes.chunks_exact(2 * W) {
        let k = usize::from_ne_bytes(pair[..W].try_into().ok()?) as u64;
        let v = usize::from_ne_bytes(pair[W..].try_into().ok()?) as u64;
        if k == key {
            return Some(v);
        }
        if k == 0 {
            break; // AT_NULL
        }
    }
    None
}

/// CPU seconds (user + system) used so far by process `pid`, or None if it is gone.
pub fn proc_cpu_seconds(pid: u32, tck: u64) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    Some(parse_stat_cpu_ticks(&stat)? as f64 / tck as f64)
}

pub fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_status_kib(&status, field)
}

/// CPU seconds of this process.
pub fn self_cpu_seconds(tck: u64) -> Option<f64> {
    proc_cpu_seconds(std::process::id(), tck)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&v, 100.0), 100.0);
        assert_eq!(percentile(&v, 0.0), 1.0);
        let v = [1.0, 2.0, 3.0];
        assert_eq!(percentile(&v, 50.0), 2.0);
        assert_eq!(percentile(&v, 99.0), 3.0);
        assert_eq!(percentile(&[7.0], 99.0), 7.0);
        assert!(percentile(&[], 50.0).is_nan());
        // 10 values: p50 is the 5th, p99 the 10th
        let v: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 5.0);
        assert_eq!(percentile(&v, 99.0), 10.0);
    }

    #[test]
    fn stat_with_spaces_and_parens_in_the_name() {
        let stat = "4242 (my (odd) srv) S 1 4242 4242 0 -1 4194560 1234 0 5 0 \
                    731 129 0 0 20 0 9 0 123456 987654321 2345 18446744073709551615";
        assert_eq!(parse_stat_cpu_ticks(stat), Some(731 + 129));
        assert_eq!(parse_stat_cpu_ticks("garbage"), None);
        assert_eq!(parse_stat_cpu_ticks("1 (x) S 1 2"), None);
    }

    #[test]
    fn status_fields() {
        let status =
            "Name:\tpalisade\nVmPeak:\t  300000 kB\nVmHWM:\t   51234 kB\nVmRSS:\t   40000 kB\n";
        assert_eq!(parse_status_kib(status, "VmHWM"), Some(51234));
        assert_eq!(parse_status_kib(status, "VmRSS"), Some(40000));
        assert_eq!(parse_status_kib(status, "VmSwap"), None);
        // a field whose name is a prefix of another must not match it
        assert_eq!(parse_status_kib(status, "Vm"), None);
    }

    #[test]
    fn auxv_lookup() {
        let mut b = Vec::new();
        for (k, v) in [(6usize, 4096usize), (17, 100), (0, 0), (17, 5)] {
            b.extend_from_slice(&k.to_ne_bytes());
            b.extend_from_slice(&v.to_ne_bytes());
        }
        assert_eq!(parse_auxv(&b, 17), Some(100));
        assert_eq!(parse_auxv(&b, 6), Some(4096));
        assert_eq!(parse_auxv(&b, 3), None);
    }

    #[test]
    fn own_process_readings() {
        let tck = clk_tck();
        assert!((1..=10_000).contains(&tck));
        assert!(self_cpu_seconds(tck).is_some());
        assert!(proc_status_kib(std::process::id(), "VmHWM").unwrap() > 0);
    }
}
