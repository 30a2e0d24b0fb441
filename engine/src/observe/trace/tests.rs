use super::*;
use crate::config::{OtlpConfig, TracingConfig};
use std::time::Duration;

const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

fn request(headers: &[(&str, &str)]) -> Request<()> {
    let mut b = Request::get("/a/b?q=1").header("host", "app.test:8080");
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(()).expect("request")
}

fn tracer(ratio: f64, export: bool) -> Tracer {
    let otlp = export.then(|| OtlpConfig {
        // Nothing listens on port 1: spans pushed here are lost and counted.
        authority: "127.0.0.1:1".into(),
        path: "/v1/traces".into(),
        service_name: "sluice".into(),
        service_instance_id: "test".into(),
        batch_size: 8,
        batch_interval: Duration::from_millis(10),
        max_queue: 8,
        export_timeout: Duration::from_secs(1),
    });
    Tracer::new(
        &TracingConfig {
            enabled: true,
            otlp,
            sample_ratio: ratio,
        },
        None,
    )
}

fn header<'r>(req: &'r Request<()>, name: &str) -> Vec<&'r str> {
    req.headers()
        .get_all(name)
        .iter()
        .map(|v| v.to_str().expect("text"))
        .collect()
}

#[test]
fn disabled_leaves_both_headers_alone() {
    let t = Tracer::new(
        &TracingConfig {
            enabled: false,
            ..TracingConfig::default()
        },
        None,
    );
    let mut req = request(&[("traceparent", "junk"), ("tracestate", "A=1")]);
    assert!(t.start(&mut req).is_none());
    assert_eq!(header(&req, "traceparent"), ["junk"]);
    assert_eq!(header(&req, "tracestate"), ["A=1"]);
}

#[test]
fn without_an_exporter_a_valid_context_passes_unchanged() {
    let mut req = request(&[("traceparent", PARENT), ("tracestate", "a=1,b=2")]);
    assert!(tracer(1.0, false).start(&mut req).is_none());
    assert_eq!(header(&req, "traceparent"), [PARENT]);
    assert_eq!(header(&req, "tracestate"), ["a=1,b=2"]);
}

#[test]
fn an_invalid_or_missing_context_starts_a_new_trace() {
    for incoming in [
        vec![],
        vec![("traceparent", "00-zz")],
        vec![("traceparent", &PARENT.to_uppercase())],
        // Two parents: neither is believed.
        vec![("traceparent", PARENT), ("traceparent", PARENT)],
    ] {
        let mut with_state = incoming.clone();
        with_state.push(("tracestate", "a=1"));
        let mut req = request(&with_state);
        assert!(tracer(1.0, false).start(&mut req).is_none());
        let sent = header(&req, "traceparent");
        assert_eq!(sent.len(), 1, "{incoming:?}");
        let tp = TraceParent::parse(sent[0].as_bytes()).expect("a valid new traceparent");
        assert_ne!(tp.trace_id.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert!(tp.sampled());
        // A tracestate without a valid parent goes with it.
        assert!(header(&req, "tracestate").is_empty(), "{incoming:?}");
    }
}

#[test]
fn new_traces_follow_the_ratio_and_parents_their_flag() {
    for _ in 0..20 {
        let mut req = request(&[]);
        tracer(0.0, false).start(&mut req);
        assert!(header(&req, "traceparent")[0].ends_with("-00"));
    }
    let unsampled = PARENT.replace("-01", "-00");
    let mut req = request(&[("traceparent", &unsampled)]);
    tracer(1.0, false).start(&mut req);
    assert_eq!(header(&req, "traceparent"), [unsampled.as_str()]);
}

#[test]
fn a_tracestate_out_of_bounds_or_grammar_is_dropped() {
    let many = (0..33)
        .map(|i| format!("k{i}=v"))
        .collect::<Vec<_>>()
        .join(",");
    let long = format!("a={}", "v".repeat(257));
    for bad in [many.as_str(), "A=1", "a=1,a=2", long.as_str()] {
        let mut req = request(&[("traceparent", PARENT), ("tracestate", bad)]);
        tracer(1.0, false).start(&mut req);
        assert!(header(&req, "tracestate").is_empty(), "{bad}");
        assert_eq!(header(&req, "traceparent"), [PARENT]);
    }
}

#[tokio::test]
async fn with_an_exporter_the_proxy_is_the_backends_parent() {
    let t = tracer(1.0, true);
    let mut req = request(&[("traceparent", PARENT), ("tracestate", "a=1")]);
    let span = t.start(&mut req).expect("sampled: recorded");
    let sent = TraceParent::parse(header(&req, "traceparent")[0].as_bytes()).expect("valid");
    let parent = TraceParent::parse(PARENT.as_bytes()).expect("valid");
    assert_eq!(sent.trace_id, parent.trace_id);
    assert_eq!(sent.flags, parent.flags);
    assert_ne!(sent.parent_id, parent.parent_id);
    assert_eq!(span.parent, Some(parent.parent_id));
    assert_eq!(span.ctx, sent);
    assert_eq!(span.tracestate, "a=1");
    // An unsampled parent: still a child context, but nothing recorded.
    let unsampled = PARENT.replace("-01", "-00");
    let mut req = request(&[("traceparent", &unsampled)]);
    assert!(t.start(&mut req).is_none());
    let sent = TraceParent::parse(header(&req, "traceparent")[0].as_bytes()).expect("valid");
    assert_eq!((sent.trace_id, sent.flags), (parent.trace_id, 0));
    assert_ne!(sent.parent_id, parent.parent_id);
}

#[test]
fn attributes_are_bounded() {
    assert_eq!(bounded(&"é".repeat(600)).len(), 1024);
    assert_eq!(bounded(&format!("a{}", "é".repeat(600))).len(), 1023);
    assert_eq!(strip_port("a.test:80"), "a.test");
    assert_eq!(strip_port("[::1]"), "[::1]");
    assert_eq!(strip_port("[::1]:80"), "[::1]");
}
