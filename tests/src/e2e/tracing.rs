//! W3C trace context through the proxy and OTLP span export: the backend
//! gets the client's trace with the proxy's span as parent (or a new trace),
//! and an in-test OTLP receiver (a hyper server decoding
//! `ExportTraceServiceRequest` with `opentelemetry-proto`) gets the proxy's
//! spans. A receiver that is down, failing or stuck costs spans, counted,
//! never requests.

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode as SpanStatus;
use parking_lot::Mutex;
use prost::Message;
use sluice::config::{OtlpConfig, TracingConfig};
use sluice::observe::trace::stats;
use sluice_e2e::harness::client::H1;
use sluice_e2e::harness::origin::{Origin, reply};
use sluice_e2e::harness::proxy::{Proxy, config};
use sluice_tracecontext::TraceParent;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::net::TcpListener;

const CLIENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// How the receiver answers.
#[derive(Clone, Copy)]
enum Answer {
    Ok,
    Status(u16),
    /// Never: the export times out.
    Hang,
}

/// A minimal OTLP/HTTP receiver: decodes every POST it gets.
struct Receiver {
    addr: SocketAddr,
    got: Arc<Mutex<Vec<ExportTraceServiceRequest>>>,
}

impl Receiver {
    async fn start(answer: Answer) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let got = Arc::new(Mutex::new(Vec::new()));
        let seen = got.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let seen = seen.clone();
                let svc = service_fn(move |req: Request<Incoming>| {
                    let seen = seen.clone();
                    async move {
                        assert_eq!(req.uri().path(), "/v1/traces");
                        assert_eq!(req.headers()["content-type"], "application/x-protobuf");
                        let body = req.into_body().collect().await?.to_bytes();
                        let decoded =
                            ExportTraceServiceRequest::decode(body).expect("a valid OTLP request");
                        seen.lock().push(decoded);
                        let status = match answer {
                            Answer::Ok => 200,
                            Answer::Status(s) => s,
                            Answer::Hang => std::future::pending().await,
                        };
                        let mut resp = Response::new(Full::new(Bytes::new()));
                        *resp.status_mut() = StatusCode::from_u16(status).expect("status");
                        Ok::<_, hyper::Error>(resp)
                    }
                });
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), svc),
                );
            }
        });
        Receiver { addr, got }
    }

    fn spans(&self) -> Vec<Span> {
        self.got
            .lock()
            .iter()
            .flat_map(|r| &r.resource_spans)
            .flat_map(|r| &r.scope_spans)
            .flat_map(|s| s.spans.clone())
            .collect()
    }

    /// Waits (bounded) until at least `n` spans arrived.
    async fn wait_for(&self, n: usize) -> Vec<Span> {
        for _ in 0..500 {
            let spans = self.spans();
            if spans.len() >= n {
                return spans;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("{} spans arrived, expected {n}", self.spans().len());
    }
}

fn tracing_to(endpoint: SocketAddr, ratio: f64) -> TracingConfig {
    TracingConfig {
        enabled: true,
        otlp: Some(OtlpConfig {
            authority: endpoint.to_string(),
            path: "/v1/traces".into(),
            service_name: "edge".into(),
            service_instance_id: "edge-1".into(),
            batch_size: 16,
            batch_interval: Duration::from_millis(20),
            max_queue: 64,
            export_timeout: Duration::from_secs(5),
        }),
        sample_ratio: ratio,
    }
}

async fn get(proxy: SocketAddr, path: &str, traceparent: Option<&str>) -> u16 {
    let mut b = Request::get(path).header("host", "app.test");
    if let Some(tp) = traceparent {
        b = b.header("traceparent", tp).header("tracestate", "v=1");
    }
    let mut h1 = H1::connect(proxy).await;
    let resp = h1.send(b.body(reply::empty()).expect("request")).await;
    resp.status().as_u16()
}

fn seen_traceparent(origin: &Origin) -> TraceParent {
    let seen = origin.last_request();
    let tp = seen
        .headers
        .get("traceparent")
        .expect("the backend got a traceparent");
    TraceParent::parse(tp.as_bytes()).expect("a valid traceparent")
}

fn attr<'s>(span: &'s Span, key: &str) -> Option<&'s Value> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref()?.value.as_ref())
}

fn text(span: &Span, key: &str) -> String {
    match attr(span, key) {
        Some(Value::StringValue(s)) => s.clone(),
        other => panic!("{key}: {other:?}"),
    }
}

#[tokio::test]
async fn the_backend_continues_the_clients_trace_under_the_proxys_span() {
    let receiver = Receiver::start(Answer::Ok).await;
    let origin = Origin::http1()
        .route("/fail", reply::text(503, "down"))
        .route("/", reply::text(200, "ok"))
        .start()
        .await;
    let mut cfg = config(&[origin.addr()]);
    cfg.tracing = tracing_to(receiver.addr, 1.0);
    let proxy = Proxy::start(&cfg).await;

    assert_eq!(get(proxy.addr(), "/items/7?x=1", Some(CLIENT)).await, 200);
    let client = TraceParent::parse(CLIENT.as_bytes()).expect("valid");
    let sent = seen_traceparent(&origin);
    assert_eq!(sent.trace_id, client.trace_id);
    assert_eq!(sent.flags, client.flags);
    assert_ne!(sent.parent_id, client.parent_id);
    assert_eq!(origin.last_request().headers["tracestate"], "v=1");

    let spans = receiver.wait_for(1).await;
    let span = &spans[0];
    assert_eq!(span.trace_id, client.trace_id.0);
    assert_eq!(span.parent_span_id, client.parent_id.0);
    assert_eq!(
        span.span_id, sent.parent_id.0,
        "the backend's parent is the proxy's span"
    );
    assert_eq!(span.kind, SpanKind::Server as i32);
    assert_eq!(span.trace_state, "v=1");
    assert!(span.end_time_unix_nano >= span.start_time_unix_nano && span.start_time_unix_nano > 0);
    assert_eq!(text(span, "http.request.method"), "GET");
    assert_eq!(text(span, "url.path"), "/items/7");
    assert_eq!(text(span, "server.address"), "app.test");
    assert_eq!(text(span, "network.protocol.version"), "1.1");
    assert_eq!(text(span, "sluice.route"), "/");
    assert_eq!(text(span, "sluice.upstream"), "default");
    assert_eq!(text(span, "sluice.backend"), origin.addr().to_string());
    assert_eq!(
        attr(span, "http.response.status_code"),
        Some(&Value::IntValue(200))
    );
    assert_eq!(span.status.as_ref().map(|s| s.code), None);
    let resource = receiver.got.lock()[0].resource_spans[0]
        .resource
        .clone()
        .expect("resource");
    let names: Vec<_> = resource
        .attributes
        .iter()
        .map(|kv| kv.key.as_str())
        .collect();
    assert_eq!(names, ["service.name", "service.instance.id"]);

    // A 5xx is an error span.
    assert_eq!(get(proxy.addr(), "/fail", Some(CLIENT)).await, 503);
    let spans = receiver.wait_for(2).await;
    assert_eq!(
        attr(&spans[1], "http.response.status_code"),
        Some(&Value::IntValue(503))
    );
    assert_eq!(
        spans[1].status.as_ref().map(|s| s.code),
        Some(SpanStatus::Error as i32)
    );
}

#[tokio::test]
async fn without_a_traceparent_the_backend_gets_a_new_valid_one() {
    let origin = Origin::http1()
        .route("/", reply::text(200, "ok"))
        .start()
        .await;
    // No [tracing] table: propagation is on, export off.
    let proxy = Proxy::start(&config(&[origin.addr()])).await;
    assert_eq!(get(proxy.addr(), "/", None).await, 200);
    let first = seen_traceparent(&origin);
    assert_eq!(get(proxy.addr(), "/", None).await, 200);
    let second = seen_traceparent(&origin);
    assert_ne!(first.trace_id, second.trace_id);
    assert!(first.sampled(), "the default ratio samples every new trace");
    // An invalid one is replaced the same way; never a 400.
    assert_eq!(
        get(proxy.addr(), "/", Some("00-BAD-00f067aa0ba902b7-01")).await,
        200
    );
    let third = seen_traceparent(&origin);
    assert_ne!(third.trace_id, second.trace_id);
    assert!(origin.last_request().headers.get("tracestate").is_none());
    // Without an exporter a valid context passes unchanged.
    assert_eq!(get(proxy.addr(), "/", Some(CLIENT)).await, 200);
    assert_eq!(origin.last_request().headers["traceparent"], CLIENT);
}

#[tokio::test]
async fn ratio_zero_exports_only_sampled_parents() {
    let receiver = Receiver::start(Answer::Ok).await;
    let origin = Origin::http1()
        .route("/", reply::text(200, "ok"))
        .start()
        .await;
    let mut cfg = config(&[origin.addr()]);
    cfg.tracing = tracing_to(receiver.addr, 0.0);
    let proxy = Proxy::start(&cfg).await;
    let unsampled = CLIENT.replace("-01", "-00");
    for _ in 0..5 {
        assert_eq!(get(proxy.addr(), "/", Some(&unsampled)).await, 200);
        assert!(!seen_traceparent(&origin).sampled());
        assert_eq!(get(proxy.addr(), "/", None).await, 200);
        assert!(!seen_traceparent(&origin).sampled());
    }
    // A sampled parent wins over the ratio; it is the only span exported,
    // and the queue is in order, so nothing else is still on its way.
    assert_eq!(get(proxy.addr(), "/", Some(CLIENT)).await, 200);
    let spans = receiver.wait_for(1).await;
    assert_eq!(spans.len(), 1);
    assert_eq!(
        spans[0].trace_id,
        TraceParent::parse(CLIENT.as_bytes())
            .expect("ok")
            .trace_id
            .0
    );
}

/// Requests through a proxy exporting to `endpoint`; all must succeed.
async fn requests_succeed(endpoint: SocketAddr, n: usize, max_queue: usize, batch: usize) {
    let origin = Origin::http1()
        .route("/", reply::text(200, "ok"))
        .start()
        .await;
    let mut cfg = config(&[origin.addr()]);
    cfg.tracing = tracing_to(endpoint, 1.0);
    if let Some(o) = cfg.tracing.otlp.as_mut() {
        o.max_queue = max_queue;
        o.batch_size = batch;
        o.export_timeout = Duration::from_secs(60);
    }
    let proxy = Proxy::start(&cfg).await;
    for _ in 0..n {
        assert_eq!(get(proxy.addr(), "/", Some(CLIENT)).await, 200);
    }
}

/// Waits (bounded) until `counter` grew by `n` from `before`.
async fn grows(counter: &std::sync::atomic::AtomicU64, before: u64, n: u64) {
    for _ in 0..500 {
        if counter.load(Ordering::Relaxed) >= before + n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!(
        "counter at {}, expected {}",
        counter.load(Ordering::Relaxed),
        before + n
    );
}

#[tokio::test]
async fn a_receiver_that_is_down_loses_spans_counted_not_requests() {
    let closed = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let endpoint = closed.local_addr().expect("addr");
    drop(closed);
    let (failures, lost) = (
        stats().export_failures.load(Ordering::Relaxed),
        stats().lost.load(Ordering::Relaxed),
    );
    requests_succeed(endpoint, 20, 64, 4).await;
    grows(&stats().lost, lost, 20).await;
    assert!(stats().export_failures.load(Ordering::Relaxed) > failures);
}

#[tokio::test]
async fn a_receiver_that_answers_500_loses_spans_counted_not_requests() {
    let receiver = Receiver::start(Answer::Status(500)).await;
    let lost = stats().lost.load(Ordering::Relaxed);
    requests_succeed(receiver.addr, 20, 64, 4).await;
    // Every span was offered to it, and counted lost.
    receiver.wait_for(20).await;
    grows(&stats().lost, lost, 20).await;
}

#[tokio::test]
async fn a_stuck_receiver_fills_the_queue_and_spans_are_dropped() {
    let receiver = Receiver::start(Answer::Hang).await;
    let dropped = stats().dropped.load(Ordering::Relaxed);
    // One span is in the stuck export, at most 4 wait; the others go.
    requests_succeed(receiver.addr, 50, 4, 1).await;
    grows(&stats().dropped, dropped, 45).await;
    assert_eq!(
        receiver.got.lock().len(),
        1,
        "one export in flight, never more"
    );
}
