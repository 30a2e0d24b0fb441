//! The runtime model shared by every worker: routes, groups and settings,
//! built from a validated [`Config`]. Held in one `ArcSwap` so that a reload
//! swaps all of it at once.

use crate::config::{Config, Forwarding, Limits, Timeouts};
use crate::proxy::route::Router;
use crate::upstream::Group;
use arc_swap::ArcSwap;
use http::HeaderValue;
use std::sync::Arc;

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
}

impl State {
    pub fn new(config: &Config) -> std::io::Result<State> {
        let groups = config
            .upstreams
            .iter()
            .enumerate()
            .map(|(i, u)| Group::new(i, u).map(Arc::new))
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
        })
    }

    pub fn group(&self, name: &str) -> Option<&Arc<Group>> {
        self.groups.iter().find(|g| g.name == name)
    }
}

/// What all workers share.
#[derive(Debug)]
pub struct Shared {
    pub state: ArcSwap<State>,
}
