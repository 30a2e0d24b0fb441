//! What every fuzz target asserts, one module per target, each a
//! `check(data: &[u8])` that panics when `data` breaks an invariant.
//!
//! Two callers, one copy of the invariants: the libFuzzer binaries in
//! `fuzz/fuzz_targets/` (nightly flags, run by `fuzz/run-all`) are one
//! line each, and `tests/replay.rs` runs every committed seed
//! (`fuzz/corpus/<target>/seed-*`) and regression
//! (`fuzz/regressions/<target>/*-regression`) through the same function
//! on every `cargo test`, on stable.
//!
//! This crate is a workspace member only so that its test runs; nothing in
//! it reaches the `sluice` binary (it depends on `sluice`, not the reverse).

pub mod compress_accept_encoding;
pub mod config_toml;
pub mod connection;
pub mod forwarded;
pub mod h1_chunked_body;
pub mod h1_request_head;
pub mod h1_response_head;
pub mod header_rewrite;
pub mod proxy_protocol;
pub mod route_match;

/// A target's `check`: panics if the input breaks an invariant.
pub type Check = fn(&[u8]);

/// Every target by its `[[bin]]` name in `fuzz/Cargo.toml` (the replay
/// test checks that the two lists agree).
pub const TARGETS: &[(&str, Check)] = &[
    ("h1_request_head", h1_request_head::check),
    ("h1_chunked_body", h1_chunked_body::check),
    ("h1_response_head", h1_response_head::check),
    ("header_rewrite", header_rewrite::check),
    ("forwarded", forwarded::check),
    ("route_match", route_match::check),
    ("config_toml", config_toml::check),
    ("compress_accept_encoding", compress_accept_encoding::check),
    ("connection", connection::check),
    ("proxy_protocol", proxy_protocol::check),
];

/// A client address, IPv4 or IPv6, and its header strings, as the header
/// targets draw it from their input.
fn client(
    u: &mut arbitrary::Unstructured<'_>,
) -> arbitrary::Result<(std::net::IpAddr, sluice::addr::ClientStrings)> {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
    let ip = if u.arbitrary()? {
        IpAddr::V6(Ipv6Addr::from(u.arbitrary::<[u8; 16]>()?))
    } else {
        IpAddr::V4(Ipv4Addr::from(u.arbitrary::<[u8; 4]>()?))
    };
    let addr = sluice::addr::ClientAddr(SocketAddr::new(ip, u.arbitrary()?));
    Ok((ip, sluice::addr::ClientStrings::new(addr)))
}
