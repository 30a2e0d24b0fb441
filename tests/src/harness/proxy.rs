//! The proxy under test, started in this process on `127.0.0.1:0` from a
//! [`Config`] (build one with [`config`], then tweak its runtime model).
//! Dropping a [`Proxy`] stops it; [`Proxy::shutdown`] drains and waits.

use sluice::Config;
use std::net::SocketAddr;
use std::time::Duration;

/// `Config::simple` on `127.0.0.1:0`, with a short shutdown grace so a test
/// that forgets a connection does not keep a worker thread for 30 s.
pub fn config(backends: &[SocketAddr]) -> Config {
    let mut c = Config::simple(([127, 0, 0, 1], 0).into(), backends);
    c.timeouts.shutdown_grace = Duration::from_secs(5);
    c
}

pub struct Proxy {
    server: Option<sluice::Server>,
    addr: SocketAddr,
}

impl Proxy {
    /// Binds and starts the proxy; returns once its first listener accepts.
    pub async fn start(config: &Config) -> Proxy {
        let bound = sluice::bind(config).expect("bind proxy");
        let server = sluice::Server::start(bound, config).expect("start proxy");
        let addr = server.addrs()[0].0;
        super::client::wait_ready(addr).await;
        Proxy {
            server: Some(server),
            addr,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn server(&self) -> &sluice::Server {
        self.server.as_ref().expect("proxy running")
    }

    /// Stops accepting, lets in-flight requests finish, waits for the workers.
    pub async fn shutdown(mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown().await;
        }
    }
}
