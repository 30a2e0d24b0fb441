//! `sluice-e2e`: the end-to-end harness. Everything runs in this process on
//! loopback port 0: scripted origins ([`harness::origin`]), the proxy itself
//! ([`harness::proxy`]), and clients that speak raw bytes, HTTP/1.1, h2c or
//! h2 over TLS ([`harness::client`]). The behaviours live in `src/e2e/`, one
//! file each, all linked into one test binary.

pub mod conformance;
pub mod harness;
