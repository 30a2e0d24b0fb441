//! nginx: one worker process, an `upstream` with `keepalive`, access log off,
//! and proxy buffers that hold a whole 64 KiB response in memory.
//!
//! Proxy buffers: nginx's defaults (`proxy_buffer_size 4k`, `proxy_buffers
//! 8 4k`: 32 KiB in memory) are sized for small pages; a larger response
//! is spooled through a temp file under `proxy_temp_path`, a write and a
//! read per chunk that no one serving 64 KiB bodies leaves in place. The
//! measured cost: about 150 µs per `/64k` request with the defaults against
//! about 37 µs with `proxy_buffers 8 16k` in an independent harness
//! (perf/findings/2026-12-02-peer-configs.md). `8 × 16k` (128 KiB, plus the
//! 16 KiB header buffer) is the usual expert setting and keeps every
//! response of the bench in memory; the buffers are taken per active
//! request, so idle memory does not change.

use std::fmt::Write as _;
use std::process::Command;

use super::{Peer, PeerCtx, version_line};
use crate::error::{IoContext, Result};
use crate::pin::Pinning;

pub struct Nginx;

/// The generated `nginx.conf` (pure, so the report and tests can show it).
pub fn config(ctx: &PeerCtx) -> String {
    let d = ctx.dir.display();
    let mut c = String::new();
    // `user root` keeps the worker able to write the temp dirs under our
    // root-owned scratch dir; it changes nothing on the request path.
    let _ = write!(
        c,
        "user root;
worker_processes 1;
worker_rlimit_nofile 20000;
daemon off;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{
    worker_connections 16384;
    multi_accept on;
}}
http {{
    access_log off;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    keepalive_requests 1000000;
    keepalive_timeout 75s;
    proxy_buffer_size 16k;
    proxy_buffers 8 16k;
    upstream origins {{
        server {o1};
        server {o2};
        keepalive 64;
        keepalive_requests 1000000;
    }}
",
        o1 = ctx.origins[0],
        o2 = ctx.origins[1],
    );
    if let Some(level) = ctx.gzip_level {
        let _ = write!(
            c,
            "    gzip on;
    gzip_comp_level {level};
    gzip_types application/json;
    gzip_min_length 0;
    gzip_proxied any;
"
        );
    }
    let _ = write!(
        c,
        "    server {{
        listen {listen} backlog=4096;
",
        listen = ctx.listen
    );
    if let Some(tls) = ctx.tls_listen {
        let _ = write!(
            c,
            "        listen {tls} ssl http2 backlog=4096;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_session_cache shared:SSL:10m;
        ssl_session_timeout 1d;
",
            cert = ctx.cert.cert.display(),
            key = ctx.cert.key.display()
        );
    }
    c.push_str(
        "        location / {
            proxy_pass http://origins;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
        }
    }
}
",
    );
    c
}

impl Peer for Nginx {
    fn name(&self) -> &'static str {
        "nginx"
    }

    fn program(&self) -> String {
        "nginx".into()
    }

    fn apt_package(&self) -> Option<&'static str> {
        Some("nginx")
    }

    fn version(&self) -> String {
        version_line("nginx", &["-v"])
    }

    fn configure(&self, ctx: &PeerCtx, pin: &Pinning) -> Result<(String, Command)> {
        let text = config(ctx);
        let path = ctx.dir.join("nginx.conf");
        std::fs::write(&path, &text).ctx(|| format!("writing {}", path.display()))?;
        let mut cmd = pin.proxy_command("nginx");
        cmd.arg("-p")
            .arg(&ctx.dir)
            .arg("-e")
            .arg(ctx.dir.join("error.log"))
            .arg("-c")
            .arg(&path);
        Ok((text, cmd))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peers::test_ctx;

    /// The configuration an nginx expert runs: a 64 KiB response stays in
    /// memory (no temp file), keep-alive both ways, no access log.
    #[test]
    fn nginx_conf_is_what_an_expert_runs() {
        let c = config(&test_ctx(Some(6)));
        for line in [
            "worker_processes 1;",
            "    access_log off;",
            "    proxy_buffer_size 16k;",
            "    proxy_buffers 8 16k;",
            "        keepalive 64;",
            "            proxy_http_version 1.1;",
            "            proxy_set_header Connection \"\";",
            "        listen 127.0.0.1:8443 ssl http2 backlog=4096;",
            "        ssl_session_cache shared:SSL:10m;",
            "    gzip_comp_level 6;",
            "    gzip_proxied any;",
        ] {
            assert!(c.lines().any(|l| l == line), "{line:?} missing in\n{c}");
        }
        assert_eq!(c.matches('{').count(), c.matches('}').count());
        assert!(!config(&test_ctx(None)).contains("gzip"));
    }
}
