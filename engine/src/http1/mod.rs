//! HTTP/1.1, the codec both sides speak: our server reads requests and
//! writes responses with it (`server::h1`), our upstream client writes
//! requests and reads responses with it (`upstream::h1`). Everything here
//! is about bytes and framing; connections, timeouts and pools live with
//! the side that owns them.
//!
//! ```text
//! request::parse (head, RFC 9112 framing checks) ─┐        ┌─ write::encode_request
//! response::parse_response (backend's head) ──────┤        ├─ write::encode_head (response)
//!              framing::Framing (one type for both)        write::WriteBuf (batched writes)
//! decode::Decoder (body frames out of a read buffer) → body (channel to the service)
//! upgrade (101: the raw IO goes on, with the bytes read past the head)
//! ```

pub mod body;
pub mod decode;
pub mod framing;
pub mod request;
pub mod response;
pub mod upgrade;
pub mod version;
pub mod write;

pub use body::RequestBody;
pub use decode::BodyError;
pub use framing::Framing;
pub use request::{ParseError, RequestHead};
pub use response::{HeadError, ResponseHead};
pub use upgrade::{OnUpgrade, UpgradeError, Upgraded};
