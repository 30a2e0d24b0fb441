//! A process the harness started and measures (a proxy, or a service in the
//! services mode): started with its output in a log file, ready when it
//! answers a real request, stopped with SIGTERM and then SIGKILL for its
//! whole tree.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::error::{Error, IoContext, Result};

/// A started process. Dropping it stops the process tree.
#[derive(Debug)]
pub struct Running {
    /// The process whose tree is measured.
    pub pid: u32,
    /// `None` for processes the harness does not own (the direct run).
    child: Option<Child>,
    pub addr: SocketAddr,
    pub tls_addr: Option<SocketAddr>,
    /// The configuration it was started with, as the report prints it.
    pub config: String,
}

impl Running {
    /// Spawns `cmd` (stdout and stderr into `log`) and waits until `GET
    /// ready_path` on `addr` answers 200, at most `timeout`. On failure
    /// the process is stopped and the error ends with the log's last lines.
    pub fn spawn(
        name: &str,
        cmd: &mut Command,
        addr: SocketAddr,
        ready_path: &str,
        log: &Path,
        timeout: Duration,
    ) -> Result<Self> {
        let out = std::fs::File::create(log).ctx(|| format!("creating {}", log.display()))?;
        let err = out.try_clone().ctx(|| "dup log file".into())?;
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        let child = cmd.spawn().ctx(|| format!("starting {name}"))?;
        let mut running = Running {
            pid: child.id(),
            child: Some(child),
            addr,
            tls_addr: None,
            config: String::new(),
        };
        if let Err(e) = running.wait_ready(ready_path, timeout) {
            running.stop();
            let text = std::fs::read_to_string(log).unwrap_or_default();
            let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
            let tail = lines[lines.len().saturating_sub(3)..].join(" | ");
            return Err(Error::Tool {
                tool: name.to_string(),
                detail: format!("{e}; output: {tail}"),
            });
        }
        Ok(running)
    }

    /// A handle on a process owned elsewhere (stopping it is a no-op).
    pub fn borrowed(pid: u32, addr: SocketAddr) -> Self {
        Self {
            pid,
            child: None,
            addr,
            tls_addr: None,
            config: "(no proxy: the generator talks to one origin directly)".to_string(),
        }
    }

    fn exited(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(Some(_))))
    }

    /// Polls with a real request until `path` answers 200.
    fn wait_ready(&mut self, path: &str, timeout: Duration) -> std::result::Result<(), String> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.exited() {
                return Err("exited during startup".to_string());
            }
            if crate::probe::get(self.addr, path, &[]).is_ok_and(|r| r.status == 200) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(format!("not ready within {} s", timeout.as_secs()))
    }

    /// SIGTERM, a 3 s grace period, then SIGKILL for the whole tree.
    pub fn stop(&mut self) {
        self.stop_within(Duration::from_secs(3));
    }

    /// SIGTERM, up to `grace` for a clean exit, then SIGKILL for what is
    /// left of the tree. The exit status when it exited on its own.
    pub fn stop_within(&mut self, grace: Duration) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        let tree = crate::measure::process_tree(self.pid);
        signal(&[self.pid], "TERM");
        let deadline = Instant::now() + grace;
        let mut status = None;
        while Instant::now() < deadline {
            if let Ok(Some(st)) = child.try_wait() {
                status = Some(st);
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let alive: Vec<u32> = tree
            .into_iter()
            .filter(|p| Path::new(&format!("/proc/{p}")).exists())
            .collect();
        signal(&alive, "KILL");
        let _ = child.kill();
        let _ = child.wait();
        status
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Sends a signal with `kill(1)` (the workspace forbids `unsafe`).
pub fn signal(pids: &[u32], sig: &str) {
    if pids.is_empty() {
        return;
    }
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .args(pids.iter().map(u32::to_string))
        .stderr(Stdio::null())
        .status();
}
