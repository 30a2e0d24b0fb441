//! Backends and their state: the group snapshot read on every request, the
//! per-worker connection pool, and connecting to a backend.

pub mod backend;
pub mod breaker;
pub mod connect;
pub mod discovery;
pub mod h1;
pub mod health;
pub mod member;
pub mod members;
pub mod outlier;
pub mod pool;
pub mod proxy_header;
pub mod queue;
pub mod rotation;
pub mod slow_start;
pub mod snapshot;
pub mod sticky;
pub mod ticker;
pub mod verify;

pub use backend::Backend;
pub use snapshot::{Group, GroupFull, Snapshot};
