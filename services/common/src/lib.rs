//! What two or more Sluice services share, and nothing else.
//!
//! Every service binary has the same life, and each piece of it lives here
//! once:
//!
//! ```text
//! flags (clap) → binary::init_tracing → validate (exit 64) → runtime → bind
//!   → the service's run(listener, config, signal::shutdown_signal())
//!       └─ serve::serve: accept → one task per connection (HTTP/1.1 or h2c;
//!          with --tls-cert/--tls-key: TLS handshake, then h2 or HTTP/1.1 by ALPN)
//!          shutdown: stop accepting → drain in-flight requests → abort after grace
//!   → exit 0, or 1 on a runtime, bind or service failure
//! ```
//!
//! A service's library keeps its own `run(listener, config, shutdown)`, so
//! tests bind `127.0.0.1:0` and pass a shutdown future of their own; the
//! binary is [`binary::main`] plus the service's flags.

pub mod binary;
pub mod budget;
pub mod duration;
pub mod metrics;
pub mod serve;
pub mod signal;
pub mod tls;
pub mod trace;

pub use binary::{EXIT_USAGE, LogFormat, Logging, Stream};
pub use budget::{BodyBudget, Reservation};
pub use duration::{DurationError, MAX_DURATION, parse_duration};
pub use metrics::{HttpMetrics, measured};
pub use serve::{Handler, Limits, Transport, serve, serve_tls, serve_with};
pub use signal::shutdown_signal;
pub use tls::{ClientTls, ServerTls, TlsError};
