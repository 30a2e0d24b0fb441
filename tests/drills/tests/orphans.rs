//! `sluice-demo --processes` leaves nothing running when it is killed with
//! SIGKILL (no chance to clean up): its watchdog takes the children down.

use std::io::{BufRead, BufReader};
use std::path::Path;

mod common;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Processes whose command line mentions `needle`, or that hold a file
/// under it open (every child writes to `{data}/logs/NAME.log`).
fn processes_mentioning(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return found;
    };
    for entry in dir.flatten() {
        let cmdline = entry.path().join("cmdline");
        if let Ok(bytes) = std::fs::read(&cmdline) {
            let text = String::from_utf8_lossy(&bytes).replace('\0', " ");
            let holds = std::fs::read_dir(entry.path().join("fd"))
                .map(|fds| {
                    fds.flatten().any(|fd| {
                        std::fs::read_link(fd.path())
                            .is_ok_and(|target| target.to_string_lossy().contains(needle))
                    })
                })
                .unwrap_or(false);
            if text.contains(needle) || holds {
                found.push(text);
            }
        }
    }
    found
}

#[test]
fn killing_the_launcher_with_sigkill_stops_every_child() {
    common::build_binaries();
    let demo = common::profile_dir().join("sluice-demo");
    assert!(Path::new(&demo).is_file(), "{} missing", demo.display());
    let data = tempfile::tempdir().expect("temp dir");
    let data_arg = data.path().to_str().expect("utf-8 temp path").to_owned();
    let mut launcher = Command::new(&demo)
        .args([
            "--processes",
            "--listen",
            "127.0.0.1:0",
            "--admin",
            "127.0.0.1:0",
            "--data",
            &data_arg,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start sluice-demo --processes");
    let stdout = launcher.stdout.take().expect("stdout");
    let mut up = false;
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("read the banner");
        if line.contains("multi-process stack is up") {
            up = true;
            break;
        }
    }
    assert!(up, "the stack never came up");
    let running = processes_mentioning(&data_arg);
    // log, two caches, three apps, two proxies, redis and postgres.
    assert!(running.len() >= 10, "children: {running:#?}");
    launcher.kill().expect("SIGKILL the launcher");
    let _ = launcher.wait();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left = processes_mentioning(&data_arg);
        if left.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "orphans left running: {left:#?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}
