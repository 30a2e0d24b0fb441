//! What the proxy costs: CPU time and memory of its whole process tree, read
//! from `/proc`.
//!
//! `/proc/PID/stat` fields 14 and 15 (utime, stime) already sum every thread
//! of the process. Worker *processes* (nginx's master/worker) are not
//! included until reaped, so we walk `/proc/PID/task/*/children` and add each
//! descendant. The headline figure is CPU µs per request: the delta of
//! utime+stime across the load run divided by the requests completed. The
//! two are also kept apart: utime is the proxy's own code, stime the
//! kernel's work on its behalf (syscalls, the TCP stack on its sockets),
//! which costs every proxy the same per syscall.

use std::path::Path;

/// utime + stime of one process, in clock ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatTimes {
    pub utime: u64,
    pub stime: u64,
}

/// Parses the contents of `/proc/PID/stat`. The second field (`comm`) is in
/// parentheses and may itself contain spaces and parentheses, so we split
/// after the *last* `)`.
pub fn parse_stat(text: &str) -> Option<StatTimes> {
    let rest = &text[text.rfind(')')? + 1..];
    // After comm: field 3 (state) is index 0, so field N is index N - 3.
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime = fields.get(14 - 3)?.parse().ok()?;
    let stime = fields.get(15 - 3)?.parse().ok()?;
    Some(StatTimes { utime, stime })
}

/// Parses a `kB` line such as `VmHWM:     1234 kB` out of `/proc/PID/status`,
/// in bytes.
pub fn parse_status_kb(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let value = line.strip_prefix(key)?.strip_prefix(':')?;
        let kb: u64 = value.split_whitespace().next()?.parse().ok()?;
        Some(kb * 1024)
    })
}

/// The clock tick rate for `/proc/PID/stat`, from `getconf CLK_TCK`
/// (100 on every Linux we know of; the fallback).
pub fn clock_ticks_per_sec() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100)
}

/// `pid` and all of its descendants, read from `/proc/*/task/*/children`.
pub fn process_tree(pid: u32) -> Vec<u32> {
    let mut out = vec![pid];
    let mut i = 0;
    while i < out.len() {
        let p = out[i];
        if let Ok(tasks) = std::fs::read_dir(format!("/proc/{p}/task")) {
            for task in tasks.flatten() {
                let children = task.path().join("children");
                if let Ok(text) = std::fs::read_to_string(children) {
                    out.extend(
                        text.split_whitespace()
                            .filter_map(|c| c.parse::<u32>().ok()),
                    );
                }
            }
        }
        i += 1;
    }
    out.sort_unstable();
    out.dedup();
    out
}

fn read(path: impl AsRef<Path>) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

/// A point-in-time reading of a process tree.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sample {
    /// utime of the tree (user space), in ticks.
    pub user_ticks: u64,
    /// stime of the tree (kernel, on the tree's behalf), in ticks.
    pub sys_ticks: u64,
    /// Sum of VmHWM (peak resident set) over the tree, in bytes.
    pub peak_rss: u64,
    /// Sum of VmRSS (current resident set) over the tree, in bytes.
    pub rss: u64,
}

/// Reads CPU ticks and RSS for `pid` and its descendants.
pub fn sample(pid: u32) -> Sample {
    let mut s = Sample::default();
    for p in process_tree(pid) {
        if let Some(t) = read(format!("/proc/{p}/stat"))
            .as_deref()
            .and_then(parse_stat)
        {
            s.user_ticks += t.utime;
            s.sys_ticks += t.stime;
        }
        if let Some(status) = read(format!("/proc/{p}/status")) {
            s.peak_rss += parse_status_kb(&status, "VmHWM").unwrap_or(0);
            s.rss += parse_status_kb(&status, "VmRSS").unwrap_or(0);
        }
    }
    s
}

impl Sample {
    /// utime + stime of the tree, in ticks.
    pub fn cpu_ticks(&self) -> u64 {
        self.user_ticks + self.sys_ticks
    }
}

/// CPU microseconds per request between two samples, whole and split.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CpuPerRequest {
    /// utime + stime.
    pub cpu_us: f64,
    /// utime: the process's own code.
    pub user_us: f64,
    /// stime: the kernel's work on its behalf.
    pub sys_us: f64,
}

/// Microseconds per request of a tick delta; NaN without requests or a
/// tick rate.
fn us_per_request(ticks: u64, ticks_per_sec: u64, requests: u64) -> f64 {
    if requests == 0 || ticks_per_sec == 0 {
        return f64::NAN;
    }
    ticks as f64 * 1e6 / ticks_per_sec as f64 / requests as f64
}

/// CPU, user and system microseconds per request from two samples. The
/// user and system parts add up to the CPU figure exactly (same ticks).
pub fn cpu_split_per_request(
    before: Sample,
    after: Sample,
    ticks_per_sec: u64,
    requests: u64,
) -> CpuPerRequest {
    let user = after.user_ticks.saturating_sub(before.user_ticks);
    let sys = after.sys_ticks.saturating_sub(before.sys_ticks);
    CpuPerRequest {
        cpu_us: us_per_request(user + sys, ticks_per_sec, requests),
        user_us: us_per_request(user, ticks_per_sec, requests),
        sys_us: us_per_request(sys, ticks_per_sec, requests),
    }
}

/// CPU (user + system) microseconds per request from two samples.
pub fn cpu_us_per_request(before: Sample, after: Sample, ticks_per_sec: u64, requests: u64) -> f64 {
    cpu_split_per_request(before, after, ticks_per_sec, requests).cpu_us
}

/// Busy and total jiffies of one CPU from `/proc/stat`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CoreTimes {
    pub busy: u64,
    pub total: u64,
}

/// Parses the `cpuN` line of `/proc/stat`. Busy is everything but idle and
/// iowait.
pub fn parse_proc_stat_core(text: &str, core: usize) -> Option<CoreTimes> {
    let label = format!("cpu{core}");
    let line = text
        .lines()
        .find(|l| l.split_whitespace().next() == Some(label.as_str()))?;
    let vals: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest counted in user)
    let total: u64 = vals.iter().take(8).sum();
    let idle = vals.get(3).copied().unwrap_or(0) + vals.get(4).copied().unwrap_or(0);
    Some(CoreTimes {
        busy: total.saturating_sub(idle),
        total,
    })
}

pub fn core_times(core: usize) -> Option<CoreTimes> {
    parse_proc_stat_core(&read("/proc/stat")?, core)
}

/// Fraction of time a core was busy between two readings, 0.0–1.0.
pub fn busy_fraction(before: CoreTimes, after: CoreTimes) -> f64 {
    let total = after.total.saturating_sub(before.total);
    if total == 0 {
        return 0.0;
    }
    after.busy.saturating_sub(before.busy) as f64 / total as f64
}

/// Both cores' times at one instant: the proxy's (or service's) core and
/// the load core, as [`Pinning`](crate::pin::Pinning) assigns them.
#[derive(Debug, Clone, Copy)]
pub struct Cores {
    proxy: Option<CoreTimes>,
    load: Option<CoreTimes>,
}

impl Cores {
    pub fn now(pin: &crate::pin::Pinning) -> Self {
        Self {
            proxy: core_times(pin.proxy_core.unwrap_or(0)),
            load: core_times(pin.load_core.unwrap_or(0)),
        }
    }

    /// How busy each core was since `before`: (proxy, load), NaN when
    /// `/proc/stat` did not say.
    pub fn busy_since(&self, before: &Cores) -> (f64, f64) {
        let f = |a: Option<CoreTimes>, b: Option<CoreTimes>| {
            a.zip(b).map_or(f64::NAN, |(a, b)| busy_fraction(a, b))
        };
        (f(before.proxy, self.proxy), f(before.load, self.load))
    }
}

/// `/proc/loadavg`: the 1, 5 and 15 minute load averages.
pub fn parse_loadavg(text: &str) -> Option<[f64; 3]> {
    let mut it = text.split_whitespace().map(|v| v.parse::<f64>().ok());
    Some([it.next()??, it.next()??, it.next()??])
}

/// The machine's load averages now (NaN when unreadable): the reports give
/// them before and after a run, as a measure of how busy the host was.
pub fn loadavg() -> [f64; 3] {
    read("/proc/loadavg")
        .as_deref()
        .and_then(parse_loadavg)
        .unwrap_or([f64::NAN; 3])
}

#[cfg(test)]
mod tests {
    use super::*;

    // Captured from a real nginx worker, with a comm that needs the
    // last-paren rule.
    const STAT: &str = "4242 (nginx: (worker) x) S 4241 4241 4241 0 -1 4194624 1369 0 0 0 1234 567 0 0 20 0 1 0 12345 12345678 2345 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 0 17 0 0 0 0 0 0";

    #[test]
    fn stat_fields_14_and_15() {
        assert_eq!(
            parse_stat(STAT),
            Some(StatTimes {
                utime: 1234,
                stime: 567
            })
        );
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn status_kb_lines() {
        let status =
            "Name:\tnginx\nVmPeak:\t   20000 kB\nVmHWM:\t    5120 kB\nVmRSS:\t    4096 kB\n";
        assert_eq!(parse_status_kb(status, "VmHWM"), Some(5120 * 1024));
        assert_eq!(parse_status_kb(status, "VmRSS"), Some(4096 * 1024));
        assert_eq!(parse_status_kb(status, "VmSwap"), None);
    }

    #[test]
    fn cpu_per_request_math() {
        let before = Sample {
            user_ticks: 100,
            ..Sample::default()
        };
        let after = Sample {
            user_ticks: 350,
            ..Sample::default()
        };
        // 250 ticks at 100 Hz = 2.5 s = 2_500_000 µs over 100_000 requests.
        assert!((cpu_us_per_request(before, after, 100, 100_000) - 25.0).abs() < 1e-9);
        assert!(cpu_us_per_request(before, after, 100, 0).is_nan());
    }

    #[test]
    fn cpu_splits_into_user_and_sys() {
        let before = Sample {
            user_ticks: 100,
            sys_ticks: 40,
            ..Sample::default()
        };
        let after = Sample {
            user_ticks: 250,
            sys_ticks: 140,
            ..Sample::default()
        };
        // 150 user + 100 sys ticks at 100 Hz over 100_000 requests.
        let c = cpu_split_per_request(before, after, 100, 100_000);
        assert!((c.user_us - 15.0).abs() < 1e-9, "{c:?}");
        assert!((c.sys_us - 10.0).abs() < 1e-9, "{c:?}");
        assert!((c.cpu_us - 25.0).abs() < 1e-9, "{c:?}");
        assert_eq!(cpu_us_per_request(before, after, 100, 100_000), c.cpu_us);
        let none = cpu_split_per_request(before, after, 100, 0);
        assert!(none.cpu_us.is_nan() && none.user_us.is_nan() && none.sys_us.is_nan());
    }

    #[test]
    fn proc_stat_core_lines() {
        let text =
            "cpu  10 0 10 80 0 0 0 0 0 0\ncpu0 5 0 5 40 0 0 0 0 0 0\ncpu1 90 0 5 5 0 0 0 0 0 0\n";
        let c0 = parse_proc_stat_core(text, 0).unwrap();
        assert_eq!(
            c0,
            CoreTimes {
                busy: 10,
                total: 50
            }
        );
        let c1 = parse_proc_stat_core(text, 1).unwrap();
        assert_eq!(c1.busy, 95);
        assert!(parse_proc_stat_core(text, 2).is_none());
        let later = CoreTimes {
            busy: 20,
            total: 100,
        };
        assert!((busy_fraction(c0, later) - 0.2).abs() < 1e-9);
    }

    #[test]
    fn own_process_is_readable() {
        let s = sample(std::process::id());
        assert!(s.rss > 0);
        assert!(process_tree(std::process::id()).contains(&std::process::id()));
    }

    #[test]
    fn loadavg_line() {
        assert_eq!(
            parse_loadavg("5.41 6.97 8.70 3/812 12345\n"),
            Some([5.41, 6.97, 8.70])
        );
        assert_eq!(parse_loadavg("5.41"), None);
    }
}
