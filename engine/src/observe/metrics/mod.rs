//! Prometheus metrics of the proxy, served as `GET /metrics` on the admin
//! listener ([`scrape`]).
//!
//! Cost model: a request pays at its finish only (`observe::finish`, one
//! call into [`Metrics::record`]): about ten relaxed atomic adds on
//! counters it reaches by index (its route's, its group's, its backend's
//! own), and no lock, no map lookup, no allocation after a route's first
//! request of a given method and status class. Connections pay one add at
//! accept and one at close (two more for HTTP/2). Everything else (backend
//! states, in-flight, queues, pools, listeners) is read when Prometheus
//! scrapes. `[metrics] enabled = false` skips the request's part.
//!
//! Counters survive a reload: route and group stats are kept by name from
//! the previous state, backends keep theirs in the `Backend` (which a
//! reload keeps), and [`Process`] is carried whole.

pub mod histogram;
pub mod scrape;
pub mod stats;

pub use stats::{BackendStats, GroupStats, Process, RouteStats};

use super::Exchange;
use crate::config::{Config, RouteConfig};
use stats::{class_index, method_index};
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// The route label of requests no route matched.
pub const UNMATCHED: &str = "_unmatched";

/// A route's name as a label: its `name`, else its host and path as
/// configured (`example.com/api`, or `/api` for any host): stable across
/// reloads and bounded by the config, never the request's path.
pub fn route_name(r: &RouteConfig) -> String {
    match &r.name {
        Some(n) => n.clone(),
        None => format!("{}{}", r.host.as_deref().unwrap_or(""), r.path),
    }
}

/// A route's stats and its group's index.
#[derive(Debug)]
struct RouteEntry {
    stats: Arc<RouteStats>,
    group: usize,
}

/// The metrics of one state: its routes' and groups' stats by index, made
/// with the state on each reload and keeping the counters of the routes and
/// groups the previous state had by the same names.
#[derive(Debug)]
pub struct Metrics {
    pub enabled: bool,
    routes: Vec<RouteEntry>,
    unmatched: Arc<RouteStats>,
    groups: Vec<Arc<GroupStats>>,
    pub process: Arc<Process>,
}

impl Metrics {
    pub fn new(config: &Config, previous: Option<&Metrics>) -> Metrics {
        // Routes that share a name share their stats.
        let mut by_name: std::collections::HashMap<String, Arc<RouteStats>> = previous
            .into_iter()
            .flat_map(|p| p.routes.iter())
            .map(|e| (e.stats.name.clone(), e.stats.clone()))
            .collect();
        let routes = config
            .routes
            .iter()
            .map(|r| {
                let name = route_name(r);
                let stats = by_name
                    .entry(name)
                    .or_insert_with_key(|n| Arc::new(RouteStats::new(n.clone())))
                    .clone();
                RouteEntry {
                    stats,
                    group: r.upstream,
                }
            })
            .collect();
        let groups = config
            .upstreams
            .iter()
            .map(|u| {
                previous
                    .and_then(|p| p.groups.iter().find(|g| g.name == u.name))
                    .cloned()
                    .unwrap_or_else(|| Arc::new(GroupStats::new(u.name.clone())))
            })
            .collect();
        Metrics {
            enabled: config.metrics.enabled,
            routes,
            unmatched: previous.map_or_else(
                || Arc::new(RouteStats::new(UNMATCHED.to_owned())),
                |p| p.unmatched.clone(),
            ),
            groups,
            process: previous.map_or_else(Arc::default, |p| p.process.clone()),
        }
    }

    /// Counts a finished exchange.
    pub fn record(&self, e: &Exchange) {
        let t = &e.trail;
        let route = t.route().and_then(|i| self.routes.get(i));
        let stats = route.map_or(&self.unmatched, |r| &r.stats);
        let class = class_index(e.status);
        let micros = u64::try_from(e.duration.as_micros()).unwrap_or(u64::MAX);
        stats.observe(method_index(&e.method), class, micros);
        let bytes_in = t.bytes_in();
        stats.bytes_in.fetch_add(bytes_in, Ordering::Relaxed);
        stats.bytes_out.fetch_add(e.bytes_out, Ordering::Relaxed);
        if let Some(b) = t.backend() {
            b.stats.count(class, bytes_in, e.bytes_out);
        }
        if let Some(g) = route.and_then(|r| self.groups.get(r.group)) {
            if let Some(d) = t.connect_time() {
                g.connect
                    .observe(u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
            }
            if let Some(d) = t.header_time() {
                g.header
                    .observe(u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
            }
        }
        let p = &self.process;
        if let Some(reason) = &e.error {
            p.refused(reason.as_bytes());
        }
        if let Some((encoding, n)) = e.compressed {
            let i = encoding.index();
            p.compress_in[i].fetch_add(n, Ordering::Relaxed);
            p.compress_out[i].fetch_add(e.bytes_out, Ordering::Relaxed);
        }
    }

    /// Every route's stats once (routes that share a name share them), and
    /// the unmatched requests'.
    pub fn routes(&self) -> Vec<&Arc<RouteStats>> {
        let mut seen = std::collections::HashSet::with_capacity(self.routes.len());
        let mut out: Vec<&Arc<RouteStats>> = Vec::with_capacity(self.routes.len() + 1);
        for r in &self.routes {
            if seen.insert(Arc::as_ptr(&r.stats)) {
                out.push(&r.stats);
            }
        }
        out.push(&self.unmatched);
        out
    }

    /// The label of route `index` (what [`route_name`] made of it), for
    /// the access log: `None` when no route matched.
    pub fn route_name_of(&self, index: Option<usize>) -> Option<&str> {
        index
            .and_then(|i| self.routes.get(i))
            .map(|r| r.stats.name.as_str())
    }

    pub fn groups(&self) -> &[Arc<GroupStats>] {
        &self.groups
    }
}

#[cfg(test)]
mod tests;
