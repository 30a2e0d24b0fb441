//! Core pinning with `taskset`: the proxy under test on core 0, everything
//! else (this harness, its load generators, the origins) on core 1.
//!
//! The harness pins *itself* to the load core first, so every child inherits
//! that core unless it is explicitly started on the proxy core. On a
//! single-core machine nothing is pinned and the report says so.

use std::process::Command;

/// Which core each side runs on; `None` means unpinned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pinning {
    pub proxy_core: Option<usize>,
    pub load_core: Option<usize>,
}

impl Pinning {
    /// Proxy on core 0 and load on core 1 when there are two cores and
    /// `taskset` exists; otherwise unpinned.
    pub fn detect() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        if cores >= 2 && which("taskset").is_some() {
            Self {
                proxy_core: Some(0),
                load_core: Some(1),
            }
        } else {
            Self::none()
        }
    }

    pub fn none() -> Self {
        Self {
            proxy_core: None,
            load_core: None,
        }
    }

    /// The pinning of a run: detected (or none when `pin` is false), this
    /// process moved to the load core, and its open-file limit raised; the
    /// children inherit both.
    pub fn for_run(pin: bool) -> Self {
        let p = if pin { Self::detect() } else { Self::none() };
        p.pin_self();
        raise_nofile();
        p
    }

    /// A `Command` for `program` started on the proxy core.
    pub fn proxy_command(&self, program: &str) -> Command {
        on_core(program, self.proxy_core)
    }

    /// A `Command` for `program` started on the load core.
    pub fn load_command(&self, program: &str) -> Command {
        on_core(program, self.load_core)
    }

    /// `taskset -c N ` as a report prints a command started on the proxy
    /// core (empty when unpinned).
    pub fn proxy_prefix(&self) -> String {
        prefix(self.proxy_core)
    }

    /// The same for the load core.
    pub fn load_prefix(&self) -> String {
        prefix(self.load_core)
    }

    /// Moves every thread of this process to the load core, so children
    /// inherit it. Best effort: a failure only costs isolation.
    pub fn pin_self(&self) {
        if let Some(core) = self.load_core {
            let _ = Command::new("taskset")
                .args([
                    "-a",
                    "-p",
                    "-c",
                    &core.to_string(),
                    &std::process::id().to_string(),
                ])
                .stdout(std::process::Stdio::null())
                .status();
        }
    }

    pub fn describe(&self) -> String {
        match (self.proxy_core, self.load_core) {
            (Some(p), Some(l)) => format!(
                "proxy on core {p}; load generator, origins and harness on core {l} (taskset)"
            ),
            _ => "not pinned (fewer than 2 cores or no taskset)".to_string(),
        }
    }
}

fn prefix(core: Option<usize>) -> String {
    core.map_or_else(String::new, |c| format!("taskset -c {c} "))
}

fn on_core(program: &str, core: Option<usize>) -> Command {
    match core {
        Some(c) => {
            let mut cmd = Command::new("taskset");
            cmd.args(["-c", &c.to_string(), program]);
            cmd
        }
        None => Command::new(program),
    }
}

/// Raises this process's open-file limit to its hard limit (children
/// inherit it), via `prlimit` since the workspace forbids `unsafe`.
pub fn raise_nofile() {
    let pid = std::process::id().to_string();
    let hard = Command::new("prlimit")
        .args([
            "--pid",
            &pid,
            "--nofile",
            "--raw",
            "--noheadings",
            "--output",
            "HARD",
        ])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string());
    if let Some(hard) = hard.filter(|h| !h.is_empty()) {
        let _ = Command::new("prlimit")
            .args(["--pid", &pid, &format!("--nofile={hard}:{hard}")])
            .status();
    }
}

/// The path of `program` on `$PATH`, if any.
pub fn which(program: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}
