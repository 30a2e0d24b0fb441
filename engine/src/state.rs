//! The runtime model shared by every worker: routes, groups and settings,
//! built from a validated [`Config`]. Held in one `ArcSwap` so that a reload
//! (`lifecycle::reload`) swaps all of it at once; requests in flight keep the
//! `Arc` they loaded.

use crate::addr::OwnAddrs;
use crate::config::{AdminConfig, Config, Forwarding, Limits, Timeouts};
use crate::observe::access_log::AccessLog;
use crate::observe::trace::Tracer;
use crate::proxy::rate_limit::RateLimits;
use crate::proxy::route::Router;
use crate::upstream::Group;
use crate::upstream::discovery::Resolver;
use arc_swap::ArcSwap;
use http::{HeaderName, HeaderValue};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

#[derive(Debug)]
pub struct State {
    pub router: Router,
    pub groups: Vec<Arc<Group>>,
    pub limits: Limits,
    pub timeouts: Timeouts,
    pub forwarding: Forwarding,
    /// `Via` values for requests received over HTTP/1.0, HTTP/1.1 and
    /// HTTP/2: the received-protocol is the client's (RFC 9110 §7.6.3).
    pub via_h10: HeaderValue,
    pub via_h1: HeaderValue,
    pub via_h2: HeaderValue,
    /// Where each request's line goes (`observe::access_log`); `None`: off.
    pub access_log: Option<Arc<AccessLog>>,
    /// This proxy's name (`instance_id`), in log lines.
    pub instance: Arc<str>,
    /// The header naming this proxy on every response, when on.
    pub instance_header: Option<(HeaderName, HeaderValue)>,
    /// Request rate limits; buckets of unchanged limits survive a reload.
    pub rate_limits: Arc<RateLimits>,
    /// The counters behind `/metrics`; those of unchanged routes and
    /// groups, and the process's, survive a reload.
    pub metrics: crate::observe::metrics::Metrics,
    /// `[tracing]`; its span exporter outlives reloads that keep it.
    pub tracer: Tracer,
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
        // The id set at start (`Server::start`) outlives reloads of a file
        // that does not name one.
        let instance: Arc<str> = match (&config.instance_id, previous) {
            (Some(id), _) => id.as_str().into(),
            (None, Some(p)) => p.instance.clone(),
            (None, None) => {
                default_instance_id(config.listeners.first().map_or(0, |l| l.address.port())).into()
            }
        };
        let instance_header = match &config.instance_header {
            Some(name) => Some((
                name.clone(),
                HeaderValue::from_str(&instance)
                    .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?,
            )),
            None => None,
        };
        let access_log = config
            .access_log
            .as_ref()
            .map(|a| AccessLog::start(a, &instance, previous.and_then(|p| p.access_log.as_ref())));
        Ok(State {
            router: Router::new(&config.routes),
            groups,
            limits: config.limits,
            timeouts: config.timeouts,
            forwarding: config.forwarding.clone(),
            via_h10: via("1.0")?,
            via_h1: via("1.1")?,
            via_h2: via("2")?,
            access_log,
            instance,
            instance_header,
            rate_limits: Arc::new(RateLimits::new(config, previous.map(|p| &*p.rate_limits))),
            metrics: crate::observe::metrics::Metrics::new(config, previous.map(|p| &p.metrics)),
            tracer: Tracer::new(&config.tracing, previous.map(|p| &p.tracer)),
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

/// The host name and `port`: `web-3:8080`. The host name is the kernel's
/// (`/proc/sys/kernel/hostname`), else `$HOSTNAME`, else `sluice`.
pub fn default_instance_id(port: u16) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| crate::config::access_log::instance_id_ok(h))
        .unwrap_or_else(|| "sluice".to_owned());
    format!("{host}:{port}")
}

/// What all workers and the admin API share.
#[derive(Debug)]
pub struct Shared {
    /// The runtime model every request reads.
    ///
    /// # Concurrency
    /// Read on every request with `load`/`load_full` (no lock, no
    /// contention) and never held across an `.await` by the request path;
    /// replaced whole by a reload (`lifecycle::reload`, one at a time under
    /// the reloader's lock), so a request sees the old model or the new one,
    /// never a mix.
    pub state: ArcSwap<State>,
    /// Readiness: listeners bound, config loaded, not shutting down.
    ///
    /// # Concurrency
    /// Written by startup and shutdown, read by `/readyz`: `Release` on
    /// store and `Acquire` on load, so a `true` read also sees the
    /// listeners and state published before it.
    ready: AtomicBool,
    pub admin: Option<AdminConfig>,
    pub resolver: Arc<dyn Resolver>,
    /// This proxy's bound addresses, which no backend may be (see
    /// [`OwnAddrs`] for its lock).
    pub own: Arc<OwnAddrs>,
}

impl Shared {
    pub fn new(state: State, resolver: Arc<dyn Resolver>) -> Shared {
        let admin = state.config.admin.clone();
        Shared {
            state: ArcSwap::from_pointee(state),
            ready: AtomicBool::new(false),
            admin,
            resolver,
            own: Arc::new(OwnAddrs::default()),
        }
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Release);
    }

    /// Starts the health checker and DNS discovery of every group of the
    /// current state, and the sync of its global rate limits.
    pub fn spawn_health_checks(&self) {
        let state = self.state.load();
        if let Some(g) = &state.config.global_limits {
            crate::proxy::rate_limit::global::spawn(&state.rate_limits, g);
        }
        for g in &state.groups {
            crate::upstream::health::spawn(g);
            crate::upstream::ticker::spawn(g);
            crate::upstream::discovery::spawn(g, self.resolver.clone(), self.own.clone());
        }
    }
}
