//! Downstream: bytes in. [`listener`] binds and accepts, [`tls`] terminates
//! TLS and negotiates ALPN, [`conn`] runs HTTP/1.1 or HTTP/2 on a connection,
//! and [`worker`] ties them to one single-threaded runtime per core;
//! [`idle`] is the per-worker clock idle connections wait on.
//! [`reload`] starts and stops listeners on running workers.

pub mod coalesce;
pub mod conn;
pub mod h1;
pub mod idle;
pub mod listener;
pub mod reload;
pub mod tls;
pub mod worker;
