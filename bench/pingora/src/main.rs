//! `sluice-bench-pingora`: the smallest Pingora reverse proxy that is
//! equivalent to what every other sluice-bench peer runs: round robin over
//! the origins, keep-alive upstream (Pingora's connection pool, on by
//! default), one worker thread, no access log, optional TLS listener with
//! h2 by ALPN, optional gzip at a given level (Pingora's downstream
//! compression module).
//!
//! ```text
//! sluice-bench-pingora --dir DIR --listen ADDR --backend ADDR --backend ADDR
//!     [--tls-listen ADDR --cert PEM --key PEM] [--gzip LEVEL]
//! ```
//!
//! Built by the harness (`sluice-bench --with-pingora`) with
//! `cargo build --release --manifest-path bench/pingora/Cargo.toml`; it is
//! its own workspace so that Pingora's dependency tree stays out of the
//! main one.

use std::sync::Arc;

use async_trait::async_trait;
use pingora::lb::{LoadBalancer, selection::RoundRobin};
use pingora::listeners::tls::TlsSettings;
use pingora::modules::http::HttpModules;
use pingora::modules::http::compression::ResponseCompressionBuilder;
use pingora::prelude::{HttpPeer, ProxyHttp, Result, Session};
use pingora::proxy::http_proxy_service;
use pingora::server::Server;
use pingora::server::configuration::ServerConf;

/// The command line; every value is required except TLS and gzip.
#[derive(Debug, Default)]
struct Args {
    dir: String,
    listen: String,
    backends: Vec<String>,
    tls_listen: Option<String>,
    cert: Option<String>,
    key: Option<String>,
    gzip: u32,
}

impl Args {
    fn parse(mut it: impl Iterator<Item = String>) -> std::result::Result<Self, String> {
        let mut a = Args::default();
        while let Some(flag) = it.next() {
            let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
            match flag.as_str() {
                "--dir" => a.dir = value()?,
                "--listen" => a.listen = value()?,
                "--backend" => a.backends.push(value()?),
                "--tls-listen" => a.tls_listen = Some(value()?),
                "--cert" => a.cert = Some(value()?),
                "--key" => a.key = Some(value()?),
                "--gzip" => a.gzip = value()?.parse().map_err(|e| format!("--gzip: {e}"))?,
                "--version" => {
                    println!("sluice-bench-pingora {}", env!("CARGO_PKG_VERSION"));
                    std::process::exit(0);
                }
                other => return Err(format!("unknown argument {other}")),
            }
        }
        if a.dir.is_empty() || a.listen.is_empty() || a.backends.is_empty() {
            return Err("--dir, --listen and at least one --backend are required".into());
        }
        if a.tls_listen.is_some() && (a.cert.is_none() || a.key.is_none()) {
            return Err("--tls-listen needs --cert and --key".into());
        }
        Ok(a)
    }
}

/// Round robin over the origins; the gzip level applies to every response
/// the client accepts gzip for (0: off, Pingora's default).
struct Lb {
    origins: Arc<LoadBalancer<RoundRobin>>,
    gzip: u32,
}

#[async_trait]
impl ProxyHttp for Lb {
    type CTX = ();

    fn new_ctx(&self) -> Self::CTX {}

    fn init_downstream_modules(&self, modules: &mut HttpModules) {
        modules.add_module(ResponseCompressionBuilder::enable(self.gzip));
    }

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        // The key only matters for hashing selectors; round robin ignores it.
        let backend = self.origins.select(b"", 256).ok_or_else(|| {
            pingora::Error::explain(pingora::ErrorType::ConnectNoRoute, "no origin")
        })?;
        Ok(Box::new(HttpPeer::new(backend, false, String::new())))
    }
}

fn main() {
    let args = match Args::parse(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("sluice-bench-pingora: {e}");
            std::process::exit(64);
        }
    };
    let Some(mut conf) = ServerConf::new() else {
        eprintln!("sluice-bench-pingora: Pingora's default configuration did not load");
        std::process::exit(70);
    };
    // One worker thread, like `--workers 1` / `worker_processes 1` /
    // `nbthread 1` elsewhere; scratch files in the harness's dir; stop
    // promptly on SIGTERM (the harness measures nothing after that).
    conf.threads = 1;
    conf.pid_file = format!("{}/pingora.pid", args.dir);
    conf.upgrade_sock = format!("{}/pingora_upgrade.sock", args.dir);
    conf.grace_period_seconds = Some(0);
    conf.graceful_shutdown_timeout_seconds = Some(1);
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();

    let origins =
        match LoadBalancer::<RoundRobin>::try_from_iter(args.backends.iter().map(String::as_str)) {
            Ok(lb) => Arc::new(lb),
            Err(e) => {
                eprintln!("sluice-bench-pingora: bad --backend: {e}");
                std::process::exit(64);
            }
        };
    let mut proxy = http_proxy_service(
        &server.configuration,
        Lb {
            origins,
            gzip: args.gzip,
        },
    );
    proxy.add_tcp(&args.listen);
    if let (Some(tls), Some(cert), Some(key)) = (&args.tls_listen, &args.cert, &args.key) {
        let mut settings = match TlsSettings::intermediate(cert, key) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("sluice-bench-pingora: loading {cert} / {key}: {e}");
                std::process::exit(66);
            }
        };
        settings.enable_h2();
        proxy.add_tls_with_settings(tls, None, settings);
    }
    server.add_service(proxy);
    server.run_forever();
}
