//! What the proxy tells about each request: one [`Exchange`] per request,
//! begun by `proxy::handle`, filled by the stages as they learn its facts
//! (the route, each try's backend and times, the body bytes), and finished
//! when the client has its response body, or gave up on it. Everything
//! that reports on requests (the access log, metrics, spans) reads the
//! finished exchange, so the request path has one place to hand facts to
//! and the reporters have one place to read them from.

pub mod access_log;
pub mod exchange;
pub mod log_line;
pub mod log_writer;
pub mod metrics;
pub mod otlp;
pub mod request_id;
pub mod ship;
pub mod trace;

pub use exchange::{Exchange, Trail};

use crate::state::State;

/// Hands a finished exchange to what reports on requests.
pub fn finish(state: &State, e: &Exchange) {
    if state.metrics.enabled {
        state.metrics.record(e);
    }
    access_log::record(state, e);
    if let Some(span) = &e.span {
        state.tracer.finish(span, e, state);
    }
}
