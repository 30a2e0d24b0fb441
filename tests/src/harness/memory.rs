//! The test process's own resident memory, from `/proc/self/status`. The
//! proxy runs in this process, so a proxy that buffered a body would show up
//! here. This is a memory bound, not a timing assertion.
//!
//! The peak is taken from `VmHWM` after resetting it (`echo 5 >
//! /proc/self/clear_refs`, Linux ≥ 4.0); where that reset is refused, a
//! sampling thread records the highest `VmRSS` it sees instead.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// A field of `/proc/self/status` in KiB (`VmRSS`, `VmHWM`).
pub fn status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Measures how far resident memory rises above where it started.
pub struct PeakGrowth {
    baseline_kib: u64,
    hwm_reset: bool,
    sampled_max: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    sampler: Option<std::thread::JoinHandle<()>>,
}

impl PeakGrowth {
    pub fn start() -> PeakGrowth {
        let baseline_kib = status_kib("VmRSS").expect("/proc/self/status has VmRSS");
        let hwm_reset = std::fs::write("/proc/self/clear_refs", "5").is_ok()
            && status_kib("VmHWM").is_some_and(|h| h <= baseline_kib + 1024);
        let sampled_max = Arc::new(AtomicU64::new(baseline_kib));
        let stop = Arc::new(AtomicBool::new(false));
        let sampler = (!hwm_reset).then(|| {
            let (max, stop) = (sampled_max.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if let Some(rss) = status_kib("VmRSS") {
                        max.fetch_max(rss, Ordering::Relaxed);
                    }
                    std::thread::sleep(Duration::from_millis(2));
                }
            })
        });
        PeakGrowth {
            baseline_kib,
            hwm_reset,
            sampled_max,
            stop,
            sampler,
        }
    }

    /// The peak growth in MiB since [`PeakGrowth::start`].
    pub fn finish(mut self) -> u64 {
        let peak = if self.hwm_reset {
            status_kib("VmHWM").expect("VmHWM")
        } else {
            self.stop.store(true, Ordering::Relaxed);
            if let Some(s) = self.sampler.take() {
                let _ = s.join();
            }
            self.sampled_max.load(Ordering::Relaxed)
        };
        peak.saturating_sub(self.baseline_kib) / 1024
    }
}
