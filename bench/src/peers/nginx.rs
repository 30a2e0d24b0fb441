//! nginx: one worker process, an `upstream` with `keepalive`, access log off.

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
