//! The ceiling: the load generator against one origin directly, no proxy.
//! Its CPU figure is the origin's own cost; its rps is the most the
//! generator and origin can do on their core.

use std::net::SocketAddr;
use std::process::Command;

use super::{Peer, PeerCtx, Running};
use crate::error::{Error, Result};
use crate::pin::Pinning;

pub struct Direct {
    pub origin: SocketAddr,
    pub origin_pid: u32,
}

impl Peer for Direct {
    fn name(&self) -> &'static str {
        "direct"
    }

    fn program(&self) -> String {
        "bench-origin".into()
    }

    fn version(&self) -> String {
        format!("bench-origin {}", env!("CARGO_PKG_VERSION"))
    }

    fn configure(&self, _ctx: &PeerCtx, _pin: &Pinning) -> Result<(String, Command)> {
        Err(Error::Tool {
            tool: "direct".into(),
            detail: "the origin is not configured per run".into(),
        })
    }

    fn start(&self, ctx: &PeerCtx, _pin: &Pinning) -> Result<Running> {
        if ctx.tls_listen.is_some() || ctx.gzip_level.is_some() {
            return Err(Error::Tool {
                tool: "direct".into(),
                detail: "the origin speaks neither TLS nor gzip".into(),
            });
        }
        Ok(Running::borrowed(self.origin_pid, self.origin))
    }
}
