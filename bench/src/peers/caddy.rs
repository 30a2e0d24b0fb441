//! Caddy: `GOMAXPROCS=1` as its "one worker", admin API off, access logs
//! off (the default), `encode gzip N` for the gzip scenarios. Optional: when
//! apt cannot install it, the run reports it as skipped.

use std::fmt::Write as _;
use std::process::Command;

use super::{Peer, PeerCtx, version_line};
use crate::error::{IoContext, Result};
use crate::pin::Pinning;

pub struct Caddy;

/// The generated `Caddyfile`.
pub fn config(ctx: &PeerCtx) -> String {
    let upstreams = format!("{} {}", ctx.origins[0], ctx.origins[1]);
    let site_body = |c: &mut String| {
        if let Some(level) = ctx.gzip_level {
            let _ = writeln!(c, "    encode {{\n        gzip {level}\n    }}");
        }
        let _ = writeln!(
            c,
            "    reverse_proxy {upstreams} {{\n        lb_policy round_robin\n    }}"
        );
    };
    let mut c = String::from("{\n    admin off\n    auto_https off\n}\n\n");
    let _ = writeln!(c, "http://{} {{", ctx.listen);
    site_body(&mut c);
    c.push_str("}\n");
    if let Some(tls) = ctx.tls_listen {
        let _ = writeln!(c, "\nhttps://{tls} {{");
        let _ = writeln!(
            c,
            "    tls {} {}",
            ctx.cert.cert.display(),
            ctx.cert.key.display()
        );
        site_body(&mut c);
        c.push_str("}\n");
    }
    c
}

impl Peer for Caddy {
    fn name(&self) -> &'static str {
        "caddy"
    }

    fn program(&self) -> String {
        "caddy".into()
    }

    fn apt_package(&self) -> Option<&'static str> {
        Some("caddy")
    }

    fn version(&self) -> String {
        format!("caddy {}", version_line("caddy", &["version"]))
    }

    fn configure(&self, ctx: &PeerCtx, pin: &Pinning) -> Result<(String, Command)> {
        let text = config(ctx);
        let path = ctx.dir.join("Caddyfile");
        std::fs::write(&path, &text).ctx(|| format!("writing {}", path.display()))?;
        let mut cmd = pin.proxy_command("caddy");
        cmd.args(["run", "--adapter", "caddyfile", "--config"])
            .arg(&path)
            .env("GOMAXPROCS", "1")
            .env("HOME", &ctx.dir)
            .env("XDG_DATA_HOME", &ctx.dir)
            .env("XDG_CONFIG_HOME", &ctx.dir);
        Ok((text, cmd))
    }
}
