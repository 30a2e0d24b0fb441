//! End-to-end behaviours of the proxy, one file each, linked into one binary.
//! Every test binds loopback port 0, runs origins and the proxy in-process,
//! and bounds every step (see `sluice_e2e::harness`).

mod admin;
mod admin_security;
mod balance;
mod body_limits;
mod breaker;
mod churn;
mod conformance;
mod conn_limit;
mod disconnect;
mod discovery;
mod drain;
mod errors;
mod grpc;
mod gzip;
mod h1;
mod h2;
mod h2_connecting;
mod h2_idle;
mod h2_limits;
mod headers;
mod health;
mod health_protocols;
mod host;
mod interim_flood;
mod large_body;
mod large_groups;
mod lifecycle;
mod limits;
mod listeners;
mod pipelining;
mod pool;
mod rate_limit;
mod release_binary;
mod reload;
mod reload_listeners;
mod retry;
mod routing;
mod slow_client;
mod smuggling;
mod streaming;
mod timeouts;
mod tls;
mod tls_files;
mod upgrade;
