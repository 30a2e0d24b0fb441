//! Shared test plumbing. Nothing here sleeps and hopes: waits poll a condition
//! with a deadline ([`eventually`]) and every network step is bounded
//! ([`within`]), so a broken proxy fails a test instead of hanging the suite.

pub mod browser;
pub mod certs;
pub mod client;
pub mod control;
pub mod deploy;
pub mod exposition;
pub mod isolate;
pub mod memory;
pub mod origin;
pub mod pattern;
pub mod process;
pub mod proxy;

use std::future::Future;
use std::time::Duration;

/// The longest any single step of a test may take before it is a failure.
pub const STEP: Duration = Duration::from_secs(20);

/// A boxed error for test bodies and handlers.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Runs `fut`, failing the test with `what` if it takes longer than [`STEP`].
pub async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(STEP, fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {STEP:?}: {what}"),
    }
}

/// Polls `cond` until it holds, failing the test with `what` after [`STEP`].
pub async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    within(what, async {
        while !cond() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
}
