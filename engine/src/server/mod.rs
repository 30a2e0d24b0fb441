//! Downstream: bytes in. [`listener`] binds and accepts, [`tls`] terminates
//! TLS and negotiates ALPN, [`conn`] tells HTTP/1.x from HTTP/2 on a
//! connection, [`h1`] drives an HTTP/1.1 connection on the `http1` codec,
//! [`h2`] serves HTTP/2 with hyper, its writes gathered by [`coalesce`], and
//! [`worker`] ties them to one single-threaded runtime per core;
//! [`idle`] is the per-worker clock idle connections wait on.
//! [`reload`] starts and stops listeners on running workers.

pub mod client_cert;
pub mod coalesce;
pub mod conn;
pub mod conn_limit;
pub mod h1;
pub mod h2;
pub mod idle;
pub mod listener;
pub mod proxy_protocol;
pub mod reload;
pub mod tls;
pub mod worker;
