//! HAProxy: one thread, `http-reuse always` to the origins, no `log` lines.
//! HAProxy's compression level is global (`tune.comp.maxlevel`, default 1),
//! so the generated config sets it to the scenario's level. That only
//! changes anything when HAProxy is built with zlib: Debian's is built with
//! libslz (`USE_SLZ=1`, `-ZLIB` in `haproxy -vv`), a stateless compressor
//! with one level, so above level 1 the run is not equivalent and the
//! report says so.

use std::fmt::Write as _;
use std::process::Command;

use super::{Peer, PeerCtx, version_line};
use crate::error::{IoContext, Result};
use crate::pin::Pinning;
use crate::scenario::Scenario;

pub struct Haproxy;

/// The generated `haproxy.cfg`.
pub fn config(ctx: &PeerCtx) -> String {
    let mut c = String::new();
    c.push_str("global\n    nbthread 1\n    maxconn 9000\n");
    if let Some(level) = ctx.gzip_level {
        let _ = writeln!(c, "    tune.comp.maxlevel {level}");
    }
    c.push_str(
        "
defaults
    mode http
    timeout connect 5s
    timeout client 75s
    timeout server 75s
    timeout http-keep-alive 75s
    option http-keep-alive
    http-reuse always

frontend fe
",
    );
    let _ = writeln!(c, "    bind {}", ctx.listen);
    if let Some(tls) = ctx.tls_listen {
        let _ = writeln!(
            c,
            "    bind {tls} ssl crt {} alpn h2,http/1.1",
            ctx.cert.combined.display()
        );
    }
    if ctx.gzip_level.is_some() {
        c.push_str("    compression algo gzip\n    compression type application/json\n");
    }
    let _ = write!(
        c,
        "    default_backend origins

backend origins
    balance roundrobin
    server o1 {o1}
    server o2 {o2}
",
        o1 = ctx.origins[0],
        o2 = ctx.origins[1]
    );
    c
}

impl Peer for Haproxy {
    fn name(&self) -> &'static str {
        "haproxy"
    }

    fn program(&self) -> String {
        "haproxy".into()
    }

    fn apt_package(&self) -> Option<&'static str> {
        Some("haproxy")
    }

    fn version(&self) -> String {
        version_line("haproxy", &["-v"])
    }

    fn caveat(&self, s: &Scenario) -> Option<String> {
        let level = s.gzip_level().filter(|&l| l > 1)?;
        built_with_slz().then(|| {
            format!(
                "not equivalent: this HAProxy is built with libslz (`haproxy -vv`), which has one compression level, about zlib's 1; `tune.comp.maxlevel {level}` is set and changes nothing"
            )
        })
    }

    fn configure(&self, ctx: &PeerCtx, pin: &Pinning) -> Result<(String, Command)> {
        let text = config(ctx);
        let path = ctx.dir.join("haproxy.cfg");
        std::fs::write(&path, &text).ctx(|| format!("writing {}", path.display()))?;
        let mut cmd = pin.proxy_command("haproxy");
        // -db: foreground, no master process: one process to measure.
        cmd.arg("-db").arg("-f").arg(&path);
        Ok((text, cmd))
    }
}

/// Whether `haproxy -vv` says it compresses with libslz rather than zlib.
fn built_with_slz() -> bool {
    Command::new("haproxy")
        .arg("-vv")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("Built with libslz"))
}
