//! Caddy: one worker is not a Caddy concept, so it runs with
//! `GOMAXPROCS=1` on the proxy core (Go's runtime still has its own
//! background threads, counted like every other thread). Admin API off,
//! HTTP/3 off (`protocols h1 h2`: the others listen on TCP only), access
//! logs off (Caddy logs requests only with a `log` directive), upstream
//! keep-alive with as many idle connections per origin as nginx's
//! `keepalive 64`, round robin, and `encode gzip N` for the gzip scenarios
//! (Caddy's gzip takes the level as given, 1–9).
//!
//! Debian's package also installs a `caddy.service` on :80 with its admin
//! API on :2019; this instance shares nothing with it (own ports, `admin
//! off`, storage under the scratch dir), and the installer stops that
//! service when it installed the package itself.

use std::fmt::Write as _;
use std::process::Command;

use super::{CertFiles, Peer, PeerCtx, version_line};
use crate::error::{IoContext, Result};
use crate::pin::Pinning;

pub struct Caddy;

/// The generated `Caddyfile` (tab-indented, as `caddy fmt` wants it).
pub fn config(ctx: &PeerCtx) -> String {
    let site = |c: &mut String, scheme: &str, port: u16, tls: Option<&CertFiles>| {
        // No host in the site address: no Host/SNI matcher, like the
        // others' catch-all server; `bind` keeps it on loopback.
        let _ = writeln!(c, "{scheme}://:{port} {{\n\tbind 127.0.0.1");
        if let Some(cert) = tls {
            let _ = writeln!(c, "\ttls {} {}", cert.cert.display(), cert.key.display());
        }
        if let Some(level) = ctx.gzip_level {
            let _ = writeln!(
                c,
                "\tencode {{\n\t\tgzip {level}\n\t\tmatch {{\n\t\t\theader Content-Type application/json*\n\t\t}}\n\t}}"
            );
        }
        let _ = writeln!(
            c,
            "\treverse_proxy {} {} {{
\t\tlb_policy round_robin
\t\ttransport http {{
\t\t\tkeepalive 75s
\t\t\tkeepalive_idle_conns 64
\t\t\tkeepalive_idle_conns_per_host 64
\t\t}}
\t}}
}}",
            ctx.origins[0], ctx.origins[1]
        );
    };
    let mut c = String::from(
        "{\n\tadmin off\n\tauto_https off\n\tservers {\n\t\tprotocols h1 h2\n\t}\n}\n\n",
    );
    site(&mut c, "http", ctx.listen.port(), None);
    if let Some(tls) = ctx.tls_listen {
        c.push('\n');
        site(&mut c, "https", tls.port(), Some(&ctx.cert));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peers::test_ctx;

    #[test]
    fn caddyfile_is_equivalent() {
        let c = config(&test_ctx(Some(6)));
        for line in [
            "\tadmin off",
            "\t\tprotocols h1 h2",
            "http://:8080 {",
            "https://:8443 {",
            "\ttls /tmp/x/cert.pem /tmp/x/key.pem",
            "\t\tgzip 6",
            "\treverse_proxy 127.0.0.1:9001 127.0.0.1:9002 {",
            "\t\tlb_policy round_robin",
            "\t\t\tkeepalive_idle_conns_per_host 64",
        ] {
            assert!(c.lines().any(|l| l == line), "{line:?} missing in\n{c}");
        }
        assert_eq!(c.matches("\tbind 127.0.0.1\n").count(), 2);
        assert_eq!(c.matches('{').count(), c.matches('}').count());
        assert!(!c.contains("log"), "no access log");
    }
}
