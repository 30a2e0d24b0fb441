//! The runtime model shared by every worker: routes, groups and settings,
//! built from a validated [`Config`]. Held in one `ArcSwap` so that a reload
//! swaps all of it at once; requests in flight keep the `Arc` they loaded.

use crate::addr::ListenAddr;
use crate::config::{AdminConfig, Config, Forwarding, Limits, Timeouts};
use crate::proxy::route::Router;
use crate::server::reload::{Changes, Listeners};
use crate::upstream::Group;
use crate::upstream::discovery::Resolver;
use arc_swap::ArcSwap;
use http::HeaderValue;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

#[derive(Debug)]
pub struct State {
    pub router: Router,
    pub groups: Vec<Arc<Group>>,
    pub limits: Limits,
    pub timeouts: Timeouts,
    pub forwarding: Forwarding,
    /// `Via` values for requests received over HTTP/1.x and HTTP/2.
    pub via_h1: HeaderValue,
    pub via_h2: HeaderValue,
    pub access_log: bool,
    pub config: Config,
}

impl State {
    /// Builds the runtime model; groups that exist in `previous` keep their members.
    pub fn new(config: &Config, previous: Option<&State>) -> std::io::Result<State> {
        let groups = config
            .upstreams
            .iter()
            .map(|u| {
                let old = previous.and_then(|p| p.group(&u.name));
                Group::new(u, old.map(|g| &**g)).map(Arc::new)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let via = |v: &str| {
            HeaderValue::from_str(&format!("{v} {}", config.forwarding.via))
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))
        };
        Ok(State {
            router: Router::new(&config.routes),
            groups,
            limits: config.limits,
            timeouts: config.timeouts,
            forwarding: config.forwarding.clone(),
            via_h1: via("1.1")?,
            via_h2: via("2")?,
            access_log: config.access_log,
            config: config.clone(),
        })
    }

    pub fn group(&self, name: &str) -> Option<&Arc<Group>> {
        self.groups.iter().find(|g| g.name == name)
    }

    /// The group `/register` adds to: the one named `default`, else the first.
    pub fn default_group(&self) -> Option<&Arc<Group>> {
        self.group(crate::config::defaults::DEFAULT_GROUP)
            .or_else(|| self.groups.first())
    }
}

/// What all workers and the admin API share.
#[derive(Debug)]
pub struct Shared {
    pub state: ArcSwap<State>,
    /// Readiness: listeners bound, config loaded, not shutting down.
    ready: AtomicBool,
    pub admin: Option<AdminConfig>,
    pub resolver: Arc<dyn Resolver>,
    /// The running listeners and the workers' command channels, attached by
    /// `Server::start` (`None` without workers: listeners are then left
    /// alone). A tokio `Mutex` because a reload holds it while it waits for
    /// the workers; holding it for the whole reload also serialises reloads,
    /// so SIGHUP and `POST /reload` at once never both bind.
    listeners: tokio::sync::Mutex<Option<Listeners>>,
    /// The bound listener addresses, for readers that cannot await
    /// (`Server::addrs`). Written only under `listeners`.
    addrs: parking_lot::Mutex<Vec<ListenAddr>>,
    /// Applied to every reloaded config after the file is read: the binary
    /// puts its command-line flags here (listeners, backends, settings), so a
    /// reload never closes a flag's listener or drops its backends.
    overlay: parking_lot::Mutex<Option<Overlay>>,
}

#[derive(Clone)]
struct Overlay(Arc<ReloadOverlay>);

impl std::fmt::Debug for Overlay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Overlay")
    }
}

/// Changes made to a freshly read config on reload (see [`Shared::set_reload_overlay`]).
pub type ReloadOverlay =
    dyn Fn(&mut Config) -> Result<(), crate::config::ConfigError> + Send + Sync;

impl Shared {
    pub fn new(state: State, resolver: Arc<dyn Resolver>) -> Shared {
        let admin = state.config.admin.clone();
        Shared {
            state: ArcSwap::from_pointee(state),
            ready: AtomicBool::new(false),
            admin,
            resolver,
            listeners: tokio::sync::Mutex::new(None),
            addrs: parking_lot::Mutex::new(Vec::new()),
            overlay: parking_lot::Mutex::new(None),
        }
    }

    /// Hands the running listeners to reload (`Server::start` does this
    /// before any worker runs, so there is no contention).
    pub fn attach_listeners(&mut self, listeners: Listeners) {
        *self.addrs.get_mut() = listeners.addrs();
        *self.listeners.get_mut() = Some(listeners);
    }

    /// The bound addresses of the running listeners, in config order.
    pub fn listen_addrs(&self) -> Vec<ListenAddr> {
        self.addrs.lock().clone()
    }

    /// Sets what every reload applies on top of the file (flags win).
    pub fn set_reload_overlay(&self, overlay: Box<ReloadOverlay>) {
        *self.overlay.lock() = Some(Overlay(Arc::from(overlay)));
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Release);
    }

    /// Starts the health checker and DNS discovery of every group of the current state.
    pub fn spawn_health_checks(&self) {
        for g in &self.state.load().groups {
            crate::upstream::health::spawn(g);
            crate::upstream::discovery::spawn(g, self.resolver.clone());
        }
    }

    /// Reads the config file again and swaps it in; on any error the old
    /// config keeps serving and the error says why.
    ///
    /// Everything that can fail happens before anything changes: parse and
    /// validate, bind the new listeners and load their certificates
    /// ([`Listeners::stage`]), build the new [`State`]. Then the state is
    /// swapped (one store) and the workers start the new listeners and close
    /// the vanished ones ([`Listeners::commit`]); this returns once they have.
    /// The worker count and runtime shape stay as started (a restart changes
    /// them).
    pub async fn reload(&self) -> Result<Changes, String> {
        let mut listeners = self.listeners.lock().await;
        let current = self.state.load_full();
        let Some(path) = current.config.source.clone() else {
            return Err("this proxy was started without a config file; nothing to reload".into());
        };
        let mut config = Config::load(&path).map_err(|e| e.to_string())?;
        config.workers = current.config.workers;
        config.runtime = current.config.runtime;
        let overlay = self.overlay.lock().clone();
        if let Some(Overlay(apply)) = overlay {
            apply(&mut config).map_err(|e| e.to_string())?;
        }
        let staged = match listeners.as_ref() {
            Some(running) => Some(running.stage(&config.listeners)?),
            None => {
                if listener_addrs(&config) != listener_addrs(&current.config) {
                    tracing::warn!("no workers attached: listener changes are ignored");
                }
                config.listeners = current.config.listeners.clone();
                None
            }
        };
        let next = State::new(&config, Some(&current)).map_err(|e| e.to_string())?;
        // New listeners must find the new routes: swap the state first.
        self.state.store(Arc::new(next));
        let changes = match (listeners.as_mut(), staged) {
            (Some(running), Some(staged)) => {
                let changes = running.commit(staged).await;
                *self.addrs.lock() = changes.listeners.clone();
                changes
            }
            _ => Changes {
                listeners: self.listen_addrs(),
                ..Changes::default()
            },
        };
        drop(listeners);
        self.spawn_health_checks();
        tracing::info!(
            path = %path.display(),
            added = ?changes.added,
            removed = ?changes.removed,
            "config reloaded"
        );
        Ok(changes)
    }
}

fn listener_addrs(c: &Config) -> Vec<std::net::SocketAddr> {
    c.listeners.iter().map(|l| l.address).collect()
}
