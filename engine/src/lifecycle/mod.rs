//! What happens to a running proxy as a whole, off the request path:
//! [`reload`] swaps in a re-read config file (SIGHUP, `POST /reload`);
//! [`handover`] gives the listening sockets to a successor process
//! (zero-downtime upgrade of the binary).
//! Start and shutdown are [`crate::Server::start`] and
//! [`crate::Server::shutdown`]: the drain itself is each worker's
//! (`server::worker`), so shutdown has no orchestration to hold here.

pub mod handover;
pub mod reload;

pub use reload::{ReloadError, Reloader};
