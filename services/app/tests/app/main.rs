//! Loopback integration tests of `sluice-app`: real sockets, the real proxy,
//! cache and log services in process, real SQLite / PostgreSQL / Redis.
//! One test binary (one link) with a module per behaviour.

mod postgres;
use sluice_testkit::redis_server;
mod support;

mod consistency;
mod jobs;
mod lifecycle;
mod logs;
mod metrics;
mod postgres_path;
mod redis_path;
mod sessions;
mod tls;
mod tracing;
