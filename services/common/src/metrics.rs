//! `GET /metrics` for every service: the registry each service fills at
//! startup, the request histogram every service shares, and the handler
//! that encodes the registry at scrape time.
//!
//! # Format
//!
//! The exposition is OpenMetrics 1.0 text
//! ([`CONTENT_TYPE`]), which is what `prometheus-client` writes: counters as
//! `NAME_total`, a final `# EOF`. Prometheus (2.x and later) parses it by
//! that content type. Serving the same bytes as the older `text/plain;
//! version=0.0.4` would be a lie about the `_total` suffixes and the `# EOF`.
//!
//! # `http_request_duration_seconds{method, route, status}`
//!
//! From the handler being called to its response head being ready, one
//! histogram per (method, route, status class). Every label has a fixed set
//! of values, so a client cannot create series: `route` is one of the names
//! the service declares (an unknown path is [`UNMATCHED`]), `method` one of
//! [`METHODS`] (anything else is `other`), `status` one of `1xx`..`5xx`.
//!
//! # `http_requests_by_protocol_total{protocol, tls}`
//!
//! Every request, by the HTTP version it came in (`protocol`: `http/1.1`,
//! HTTP/1.0 included, or `h2`) and whether its connection was TLS (`tls`:
//! `true` or `false`): how a deployment can see that every hop speaks h2
//! over TLS. Four series at most.
//!
//! # Hot path
//!
//! Each (route, method, class) slot is a [`OnceLock`] holding the series'
//! histogram, resolved from the [`Family`] (its write lock) the first time
//! the slot is used and read with one atomic load after that. The
//! histogram is ours ([`histogram`]: `prometheus-client`'s locks each series
//! on `observe`), so a request then costs two relaxed `fetch_add`s and no
//! lock at all. Series appear on first use, so a fresh service does not
//! expose hundreds of zero series.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use http::{HeaderValue, Method, Request, Response, StatusCode, Version, header};
use hyper::body::Incoming;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use crate::serve::{Handler, Transport};

mod histogram;

use histogram::DurationHistogram;

/// The crate the services build their own families with, re-exported so
/// that they name one version.
pub use prometheus_client;

/// What `GET /metrics` answers with (see the module doc).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The `route` of a request whose path is none of the service's routes.
pub const UNMATCHED: &str = "unmatched";

/// The `method` label's values; any other method is counted as `other`.
pub const METHODS: [&str; 8] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "other",
];

/// The `status` label's values, indexed by `status / 100 - 1`.
const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// Bucket bounds in seconds: from half a millisecond (a cache hit on
/// loopback) to ten seconds (a slow upload or a stalled database).
pub const DURATION_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// One series' labels: `method`, `route`, `status` (the class).
type Labels = [(&'static str, &'static str); 3];

fn duration_histogram() -> DurationHistogram {
    DurationHistogram::new(&DURATION_BUCKETS)
}

/// A series per (method, class), resolved on first use.
type RouteSlots = [[OnceLock<DurationHistogram>; CLASSES.len()]; METHODS.len()];

/// The request histogram of one service. Shared by every connection task.
#[derive(Debug)]
pub struct HttpMetrics {
    family: Family<Labels, DurationHistogram, fn() -> DurationHistogram>,
    /// The service's route names, then [`UNMATCHED`].
    routes: Box<[&'static str]>,
    /// One per entry of `routes`. Written once per slot (`OnceLock`), read
    /// lock-free after.
    slots: Box<[RouteSlots]>,
    /// `http_requests_by_protocol_total`.
    by_protocol: Family<[(&'static str, &'static str); 2], Counter>,
    /// Its series by `[protocol][tls]`, resolved on first use as `slots`.
    protocol_slots: [[OnceLock<Counter>; 2]; 2],
}

impl HttpMetrics {
    /// Registers `http_request_duration_seconds` in `registry` for a
    /// service whose routes are `routes` (their names are the `route`
    /// label; a request's route is its index in this list).
    pub fn register(registry: &mut Registry, routes: &[&'static str]) -> Arc<Self> {
        let family =
            Family::<Labels, DurationHistogram, fn() -> DurationHistogram>::new_with_constructor(
                duration_histogram,
            );
        registry.register(
            "http_request_duration_seconds",
            "Time from a request's head to its response head, by method, route name and status class",
            family.clone(),
        );
        let by_protocol = Family::default();
        registry.register(
            "http_requests_by_protocol",
            "Requests by HTTP version (http/1.1 or h2) and whether their connection was TLS",
            by_protocol.clone(),
        );
        let routes: Box<[&'static str]> = routes.iter().copied().chain([UNMATCHED]).collect();
        let slots = routes.iter().map(|_| RouteSlots::default()).collect();
        Arc::new(Self {
            family,
            routes,
            slots,
            by_protocol,
            protocol_slots: Default::default(),
        })
    }

    /// Counts one request that came as `version`, over TLS or not.
    pub fn count_protocol(&self, version: Version, tls: bool) {
        let h2 = version == Version::HTTP_2;
        self.protocol_slots[usize::from(h2)][usize::from(tls)]
            .get_or_init(|| {
                self.by_protocol.get_or_create_owned(&[
                    ("protocol", if h2 { "h2" } else { "http/1.1" }),
                    ("tls", if tls { "true" } else { "false" }),
                ])
            })
            .inc();
    }

    /// Records one request. `route` is an index into the routes given to
    /// [`register`](Self::register); anything past them is [`UNMATCHED`].
    pub fn observe(&self, route: usize, method: &Method, status: StatusCode, elapsed: Duration) {
        let route = route.min(self.routes.len() - 1);
        let method = method_index(method);
        let class = usize::from((status.as_u16() / 100).clamp(1, 5) - 1);
        let histogram = self.slots[route][method][class].get_or_init(|| {
            self.family.get_or_create_owned(&[
                ("method", METHODS[method]),
                ("route", self.routes[route]),
                ("status", CLASSES[class]),
            ])
        });
        histogram.observe(elapsed);
    }
}

fn method_index(method: &Method) -> usize {
    match *method {
        Method::GET => 0,
        Method::HEAD => 1,
        Method::POST => 2,
        Method::PUT => 3,
        Method::DELETE => 4,
        Method::PATCH => 5,
        Method::OPTIONS => 6,
        _ => 7,
    }
}

/// Wraps a service's handler so that every request is timed into
/// `metrics`; `route` names the request's route (an index, see
/// [`HttpMetrics::observe`]) from its path alone, before the handler runs.
pub fn measured<H: Handler>(
    handler: H,
    metrics: Arc<HttpMetrics>,
    route: fn(&str) -> usize,
) -> impl Handler {
    move |request: Request<Incoming>| {
        let started = Instant::now();
        let route = route(request.uri().path());
        let method = request.method().clone();
        let tls = request
            .extensions()
            .get::<Transport>()
            .is_some_and(|t| t.tls);
        metrics.count_protocol(request.version(), tls);
        let response = handler.handle(request);
        let metrics = Arc::clone(&metrics);
        async move {
            let response = response.await;
            metrics.observe(route, &method, response.status(), started.elapsed());
            response
        }
    }
}

/// The exposition of `registry`, as `GET /metrics` answers it.
pub fn response<B: From<String>>(registry: &Registry) -> Response<B> {
    let mut text = String::new();
    let (status, body) = match encode(&mut text, registry) {
        Ok(()) => (StatusCode::OK, text),
        // Only a failing `Display` of our own labels could get here.
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, String::new()),
    };
    let mut response = Response::new(B::from(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    response
}

#[cfg(test)]
mod tests;
