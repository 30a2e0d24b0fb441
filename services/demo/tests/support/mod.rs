//! What the demo's test files share: the stack's options for a test, and
//! its warnings in the test's output.

use std::path::PathBuf;
use std::time::Duration;

use sluice_demo::Options;

/// Warnings and errors in the test's output: a replica that fails to
/// start (it only logs) shows why when a wait runs out.
pub fn show_warnings() {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_max_level(tracing::Level::WARN)
        .try_init();
}

/// The stack on free loopback ports with two replicas, the embedded stores
/// and its files under `data`.
pub fn options(data: PathBuf) -> Options {
    Options {
        listen: ([127, 0, 0, 1], 0).into(),
        admin: ([127, 0, 0, 1], 0).into(),
        admin_token: None,
        data,
        replicas: 2,
        database: None,
        sessions: sluice_app::SharedStore::Sql,
        store: sluice_cache::StoreConfig::Memory,
        job_interval: Duration::from_secs(60),
        tls: false,
    }
}
