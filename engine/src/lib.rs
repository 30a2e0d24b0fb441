//! Sluice: a reverse proxy and load balancer.
//!
//! The request path, each stage a module (read top to bottom; the HTTP/1.1
//! codec `http1` serves both the server side and the upstream client):
//!
//! ```text
//! server::listener (bind, SO_REUSEPORT per worker; accept through an AsyncFd)
//!   → server::worker (accept loops on a single-threaded runtime; ConnCtx per connection)
//!   → server::tls (ALPN)
//!   → server::conn (HTTP/2 preface or ALPN h2 → server::h2: hyper, writes via server::coalesce;
//!                   anything else → server::h1: our HTTP/1.x on http1::{request, decode,
//!                   body, write}, strict framing; idle waits on server::idle)
//!   → proxy::handle → proxy::proxy, the stages in order:
//!       1 limits (414, 431, 400)
//!       2 proxy::path::normalize → proxy::route (404) → proxy::rate_limit (429)
//!         → compress::ClientEncoding::capture; a declared body over
//!         the size limit (413); the body held to its limits as it streams
//!         (body::BodyLimits: silence and minimum rate 408, size 413)
//!       3 pick: balance over upstream::Group::load() (503); a sticky group's
//!         cookie first (proxy::sticky::take: verified, stripped, looked up)
//!       4 proxy::headers::for_upstream → proxy::forward::shape_request
//!       5 proxy::retry::connect: upstream::pool checkout | connect; pick again once
//!         if the request never left (502/504); 5 and 6 under the route's deadline
//!         when it has one (504)
//!       6 proxy::forward::send → upstream::h1::exchange (our client, http1::{write,
//!         response, decode}) | hyper's HTTP/2 client; the keep-alive race replays
//!         when proxy::retry says so; passive health records the outcome
//!       5-6 again on another backend (proxy::retry::forward) when the route has
//!         [route.retry]: body replayed from proxy::replay, backoff, group budget
//!       7 proxy::sticky::answer (a fresh cookie unless the client's named the
//!         backend that answered); 101 → proxy::tunnel (bytes both ways)
//!         else proxy::headers::outbound → proxy::compress → proxy::body (streams;
//!         cut when the backend stalls past timeouts.upstream_body; the HTTP/1.1
//!         connection returns to the pool at the body's end)
//!   └─ any error (HTTP/1 head refusals included) → proxy::respond, the one place an
//!      error becomes a status (error::ErrorKind::status); a panic → 500
//! ```
//!
//! [`run`] takes listeners that are already bound (tests bind port 0) and a
//! future that resolves when it is time to shut down.
//!
//! A reload (`lifecycle::reload`: SIGHUP or `POST /reload`) swaps the
//! runtime model in one store and, through `server::reload`, starts and
//! stops listeners on the running workers. An upgrade of the binary
//! (`lifecycle::handover`: `[upgrade] socket`, `sluice --takeover`) hands
//! every listening socket to a successor process, which serves from the
//! same accept queues while this one drains as on SIGTERM.

pub mod addr;
pub mod admin;
pub mod balance;
pub mod body;
pub mod config;
pub mod context;
pub mod error;
pub mod http1;
pub mod interim;
pub mod lifecycle;
pub mod observe;
pub mod proxy;
pub mod server;
pub mod state;
pub mod upstream;

pub use config::Config;
pub use error::{ErrorKind, ProxyError};
pub use server::listener::{BindError, Bound, bind};

use state::{Shared, State};
use std::future::Future;
use std::io;
use std::sync::Arc;
use tokio::sync::{oneshot, watch};

/// A started proxy: its workers are serving until [`Server::shutdown`].
///
/// Must be started from within a tokio runtime: the admin API and the health
/// checkers run on it, off the workers.
pub struct Server {
    admin_addr: Option<std::net::SocketAddr>,
    shared: Arc<Shared>,
    reloader: Arc<lifecycle::Reloader>,
    drain: watch::Sender<bool>,
    workers: Vec<oneshot::Receiver<()>>,
    /// What a successor process can take over (`lifecycle::handover`).
    handover: Arc<lifecycle::handover::Source>,
}

impl Server {
    /// Starts one worker thread per configured worker on `bound` sockets.
    pub fn start(bound: Bound, config: &Config) -> io::Result<Server> {
        Server::start_with_resolver(bound, config, Arc::new(upstream::discovery::SystemResolver))
    }

    /// [`Server::start`] with a given resolver for backends named by host.
    pub fn start_with_resolver(
        bound: Bound,
        config: &Config,
        resolver: Arc<dyn upstream::discovery::Resolver>,
    ) -> io::Result<Server> {
        // The default instance id names the first listener's bound port.
        let mut config = std::borrow::Cow::Borrowed(config);
        if config.instance_id.is_none() {
            let port = bound.addrs().first().map_or(0, |a| a.0.port());
            config.to_mut().instance_id = Some(state::default_instance_id(port));
        }
        let config = &*config;
        let shared = Arc::new(Shared::new(State::new(config, None)?, resolver));
        let mut bound = bound;
        let listeners = std::mem::take(&mut bound.listeners);
        let (drain, drain_rx) = watch::channel(false);
        // Per listener: the TLS acceptor (shared by workers) and its sockets.
        // Thread per core: one runtime per worker, each with its own sockets.
        // Work stealing: one runtime with `workers` threads and one socket.
        let (runtimes, threads) = match config.runtime {
            config::RuntimeShape::ThreadPerCore => (config.workers, 1),
            config::RuntimeShape::WorkStealing => (1, config.workers),
        };
        // Each worker runtime takes listener changes from a reload here.
        let (commands, receivers): (Vec<_>, Vec<_>) = (0..runtimes)
            .map(|_| tokio::sync::mpsc::unbounded_channel())
            .unzip();
        let mut running = server::reload::Listeners::new(commands);
        let mut per_worker: Vec<Vec<_>> = (0..runtimes).map(|_| Vec::new()).collect();
        for (i, l) in listeners.into_iter().enumerate() {
            let id = running.next_id();
            // `bind` binds `config.listeners` in order; a hand-made `Bound`
            // beyond them is tracked by its bound address.
            let listener_config =
                config
                    .listeners
                    .get(i)
                    .cloned()
                    .unwrap_or_else(|| config::ListenerConfig {
                        address: l.local.0,
                        reuse_port: true,
                        share_port: false,
                        backlog: config::defaults::BACKLOG,
                        tls: l.tls.clone(),
                        client_auth: None,
                        proxy_protocol: None,
                        conn_limit: config::ConnLimit::default(),
                    });
            let tls = if listener_config.tls.is_empty() {
                None
            } else {
                Some(server::tls::acceptor(
                    &listener_config.tls,
                    listener_config.client_auth.as_ref(),
                )?)
            };
            let limiter = server::conn_limit::ConnLimiter::new(listener_config.conn_limit);
            limiter.set_proxy_protocol(listener_config.proxy_protocol.clone());
            running.track(server::reload::Active {
                id,
                config: listener_config,
                local: l.local,
                limiter: limiter.clone(),
                dups: server::reload::dup_all(&l.sockets),
            });
            // More sockets than runtimes come from a predecessor with more
            // workers (`lifecycle::handover`): each has its own accept
            // queue, so none is dropped; a runtime takes several.
            for (i, socket) in l.sockets.into_iter().enumerate() {
                per_worker[i % runtimes].push((id, socket, tls.clone(), limiter.clone()));
            }
        }
        let admin_addr = bound.admin.as_ref().map(|l| l.local_addr()).transpose()?;
        shared.own.set_listeners(running.addrs());
        shared.own.set_admin(admin_addr);
        let reloader = Arc::new(lifecycle::Reloader::new(shared.clone(), running));
        if let Some(path) = config.admin.as_ref().and_then(|a| a.state_file.as_ref()) {
            admin::state_file::restore(path, &shared.state.load(), &shared.own.all());
        }
        let workers = per_worker
            .into_iter()
            .zip(receivers)
            .enumerate()
            .map(|(index, (sockets, commands))| {
                server::worker::spawn(server::worker::WorkerSpec {
                    index,
                    threads,
                    sockets,
                    commands,
                    shared: shared.clone(),
                    drain: drain_rx.clone(),
                    grace: config.timeouts.shutdown_grace,
                })
            })
            .collect::<io::Result<Vec<_>>>()?;
        shared.spawn_health_checks();
        let (admin_stop, admin_stop_rx) = watch::channel(false);
        let handover = Arc::new(lifecycle::handover::Source::new(
            reloader.clone(),
            config
                .admin
                .as_ref()
                .map(|a| a.address)
                .zip(bound.admin.as_ref()),
            admin_stop,
        ));
        if let Some(listener) = bound.admin {
            admin::spawn(listener, reloader.clone(), admin_stop_rx)?;
        }
        shared.set_ready(true);
        Ok(Server {
            admin_addr,
            shared,
            reloader,
            drain,
            workers,
            handover,
        })
    }

    /// What a successor process takes over: serve it on the upgrade socket
    /// with `lifecycle::handover::serve`.
    pub fn handover(&self) -> &Arc<lifecycle::handover::Source> {
        &self.handover
    }

    /// The bound addresses of the listeners running now, in config order:
    /// a reload that adds or removes listeners changes them.
    pub fn addrs(&self) -> Vec<addr::ListenAddr> {
        self.reloader.listen_addrs()
    }

    /// The admin API's address, when it is enabled.
    pub fn admin_addr(&self) -> Option<std::net::SocketAddr> {
        self.admin_addr
    }

    /// The state every worker reads (for the admin API and tests).
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Reloads this proxy's config (SIGHUP and `POST /reload` call it).
    pub fn reloader(&self) -> &Arc<lifecycle::Reloader> {
        &self.reloader
    }

    /// Stops accepting, lets in-flight requests finish (up to the grace
    /// period), and returns when every worker has stopped.
    pub async fn shutdown(self) {
        self.shared.set_ready(false);
        // Duplicates kept for a handover would keep the ports listening
        // with nobody accepting; closed first, new connections are refused.
        self.handover.release().await;
        let _ = self.drain.send(true);
        for w in self.workers {
            let _ = w.await;
        }
        // The last requests' lines, before the process exits.
        let log = self.shared.state.load().access_log.clone();
        if let Some(log) = log {
            log.written(std::time::Duration::from_secs(2)).await;
        }
    }
}

/// Serves until `shutdown` resolves, then drains.
pub async fn run(
    bound: Bound,
    config: &Config,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let server = Server::start(bound, config)?;
    shutdown.await;
    tracing::info!("shutting down: draining connections");
    server.shutdown().await;
    Ok(())
}
