//! Our HTTP/1.1 server side: the downstream half of `server::conn` when the
//! client speaks HTTP/1.x (HTTP/2 stays on hyper).
//!
//! Why not hyper here: hyper forwards a request with both Content-Length and
//! Transfer-Encoding (it drops the length), keeps an 8 KiB+ read buffer on
//! every idle connection, and spends more instructions per request than a
//! proxy needs. In request-path order:
//!
//! ```text
//! conn (read, timeouts, drain, keep-alive, pipelining)
//!   → parse (head, RFC 9112 framing checks) → body (frames to the service,
//!     decoded by decode) → the service → write (head + body framing)
//!   → upgrade (101: the raw IO goes to the service)
//! ```

pub mod body;
pub mod conn;
pub mod decode;
pub mod parse;
pub mod upgrade;
pub mod write;

pub use body::RequestBody;
pub use conn::{ConnError, Settings, serve};
pub use decode::BodyError;
pub use parse::ParseError;
pub use upgrade::{OnUpgrade, UpgradeError, Upgraded};
