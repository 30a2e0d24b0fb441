//! Runs one test of this binary in a child process, alone. Memory bounds need
//! this: libtest runs the other tests as threads of the same process, and
//! their allocations would be counted against the test measuring its RSS.
//!
//! The child is this same test binary, started with `--exact <name>` and
//! [`CHILD_ENV`] set; the named test checks [`is_child`] and does its work
//! only there (in the normal run it returns at once).

use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Set in the child's environment.
pub const CHILD_ENV: &str = "SLUICE_E2E_ISOLATED_CHILD";

/// Whether this process is an isolated child started by [`run`].
pub fn is_child() -> bool {
    std::env::var_os(CHILD_ENV).is_some()
}

/// Runs the test `name` (its full path, e.g. `large_body::transfer`) alone in
/// a child process and fails the calling test if it fails or overruns `limit`.
/// Returns the child's combined output.
pub fn run(name: &str, limit: Duration) -> String {
    let exe = std::env::current_exe().expect("current test binary");
    let child = Command::new(exe)
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn isolated test");
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let output = match rx.recv_timeout(limit) {
        Ok(out) => out.expect("isolated test output"),
        Err(_) => {
            // Only the child we started, by its id.
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            panic!("isolated test {name} overran {limit:?}");
        }
    };
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "isolated test {name} failed:\n{text}"
    );
    assert!(
        text.contains("1 passed"),
        "isolated test {name} did not run:\n{text}"
    );
    text
}
