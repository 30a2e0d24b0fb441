//! SIGTERM completes the shutdown signal and does not kill the process.
//! Its own test binary: a signal goes to the whole process.

use std::process::Command;

use sluice_service_common::shutdown_signal;

#[tokio::test]
async fn sigterm_completes_the_shutdown_signal() {
    // Watching starts at the call, so the signal sent next is not lost.
    let signal = shutdown_signal();
    let sent = Command::new("kill")
        .args(["-TERM", &std::process::id().to_string()])
        .status()
        .expect("run kill");
    assert!(sent.success());
    signal.await;
}
