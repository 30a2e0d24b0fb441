//! The app continues the caller's W3C trace on its calls to the cache: a
//! stand-in cache (a hyper server in the test that misses every read)
//! records the `traceparent` each call carries.

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use serde_json::json;
use sluice_tracecontext::TraceParent;
use std::sync::Arc;
use tokio::net::TcpListener;

use crate::support;

const CLIENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// Every call's `traceparent` (or `None`), with its method.
type Calls = Arc<Mutex<Vec<(http::Method, Option<String>)>>>;

/// A cache that has nothing (404 to reads) and takes everything (200).
async fn recording_cache() -> (url::Url, Calls) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = url::Url::parse(&format!("http://{}", listener.local_addr().unwrap())).unwrap();
    let calls: Calls = Arc::default();
    let seen = calls.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let seen = seen.clone();
            let svc = service_fn(move |req: Request<Incoming>| {
                let tp = req
                    .headers()
                    .get("traceparent")
                    .map(|v| v.to_str().unwrap().to_owned());
                seen.lock().push((req.method().clone(), tp));
                let status = if req.method() == http::Method::GET {
                    404
                } else {
                    200
                };
                let mut resp = Response::new(Full::new(Bytes::new()));
                *resp.status_mut() = http::StatusCode::from_u16(status).unwrap();
                async move { Ok::<_, hyper::Error>(resp) }
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tcp), svc),
            );
        }
    });
    (url, calls)
}

#[tokio::test]
async fn the_app_continues_the_trace_to_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let (cache, calls) = recording_cache().await;
    let mut config = support::app_config(&support::sqlite_file(&dir));
    config.cache = Some(cache);
    let app = support::app(config).await;
    let client = support::client(&app.url());
    let cookie = support::login(&client, "admin", "sluice").await;
    let post = support::create_post(&client, &cookie, json!({"title": "t", "body": "b"})).await;
    let path = format!("/posts/{}", post["id"]);

    let before = calls.lock().len();
    let reply = support::request(
        &client,
        http::Method::GET,
        &path,
        &[
            ("traceparent", CLIENT.to_owned()),
            ("accept", "application/json".into()),
        ],
        b"",
    )
    .await
    .expect("answered");
    assert_eq!(reply.status, 200);
    let traced: Vec<_> = calls.lock()[before..].to_vec();
    assert!(!traced.is_empty(), "the read went to the cache");
    let client_tp = TraceParent::parse(CLIENT.as_bytes()).unwrap();
    let mut span = None;
    for (method, tp) in &traced {
        let tp = tp
            .as_deref()
            .unwrap_or_else(|| panic!("{method} without traceparent"));
        let tp = TraceParent::parse(tp.as_bytes()).expect("a valid traceparent");
        assert_eq!(
            (tp.trace_id, tp.flags),
            (client_tp.trace_id, client_tp.flags)
        );
        assert_ne!(
            tp.parent_id, client_tp.parent_id,
            "the app's span is the parent"
        );
        // One request, one app span: every call names the same parent.
        assert_eq!(*span.get_or_insert(tp.parent_id), tp.parent_id);
    }

    // Without one, the app starts a trace of its own.
    let before = calls.lock().len();
    assert_eq!(support::get_json(&client, &path).await.status, 200);
    let fresh: Vec<_> = calls.lock()[before..].to_vec();
    assert!(!fresh.is_empty());
    for (_, tp) in fresh {
        let tp = TraceParent::parse(tp.expect("traceparent").as_bytes()).expect("valid");
        assert_ne!(tp.trace_id, client_tp.trace_id);
    }
    app.stop().await;
}
