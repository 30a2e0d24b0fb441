//! W3C trace context in the services: [`serve`](crate::serve) runs each
//! request's handler inside [`scope`], which reads the request's
//! `traceparent` (strictly, as the proxy does: `sluice_tracecontext`) and
//! gives the service a span id of its own; [`outgoing`] is then the
//! `traceparent` the service's calls to other services carry: the same
//! trace and flags, the service's span as parent. A request without a valid
//! one starts a new trace. The services export no spans of their own.
//!
//! The context is a tokio task-local: a task the handler spawns does not
//! inherit it (the app's batched log shipping belongs to no one request).

use http::{HeaderMap, HeaderValue};
use sluice_tracecontext::{SpanId, TRACEPARENT, TraceParent};
use std::future::Future;

tokio::task_local! {
    /// The `traceparent` for the current request's outgoing calls.
    static OUTGOING: TraceParent;
}

/// The context a request's outgoing calls carry, from its headers.
pub fn child_of(headers: &HeaderMap) -> TraceParent {
    let mut all = headers.get_all(TRACEPARENT).iter();
    let parent = match (all.next(), all.next()) {
        (Some(v), None) => TraceParent::parse(v.as_bytes()),
        _ => None,
    };
    match parent {
        Some(p) => p.child(SpanId::random()),
        None => TraceParent::new_root(true),
    }
}

/// Runs `fut` (a request's handler) with `ctx` as its trace context.
pub fn scope<F: Future>(ctx: TraceParent, fut: F) -> impl Future<Output = F::Output> {
    OUTGOING.scope(ctx, fut)
}

/// The `traceparent` header for a call made while serving a request;
/// `None` outside one.
pub fn outgoing() -> Option<HeaderValue> {
    OUTGOING
        .try_with(|ctx| HeaderValue::from_bytes(&ctx.encode()).ok())
        .ok()
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[tokio::test]
    async fn a_request_s_calls_continue_its_trace() {
        let mut headers = HeaderMap::new();
        headers.insert(TRACEPARENT, HeaderValue::from_static(PARENT));
        let ctx = child_of(&headers);
        let parent = TraceParent::parse(PARENT.as_bytes()).expect("valid");
        assert_eq!((ctx.trace_id, ctx.flags), (parent.trace_id, parent.flags));
        assert_ne!(ctx.parent_id, parent.parent_id);
        let sent = scope(ctx, async { outgoing() })
            .await
            .expect("in a request");
        assert_eq!(TraceParent::parse(sent.as_bytes()), Some(ctx));
        assert_eq!(outgoing(), None, "outside a request");
        // Invalid or repeated: a new trace.
        headers.insert(TRACEPARENT, HeaderValue::from_static("00-bad"));
        assert_ne!(child_of(&headers).trace_id, parent.trace_id);
        headers.insert(TRACEPARENT, HeaderValue::from_static(PARENT));
        headers.append(TRACEPARENT, HeaderValue::from_static(PARENT));
        assert_ne!(child_of(&headers).trace_id, parent.trace_id);
    }
}
