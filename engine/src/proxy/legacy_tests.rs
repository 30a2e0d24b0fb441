//! `SLUICE_POOL=hyper-util` is read once per process, so the e2e suite
//! cannot switch it; this drives [`super::handle`] with a worker that holds
//! hyper-util's client, against a small hyper origin.

use super::body::ReqBody;
use super::{ConnCtx, Worker, forward, handle};
use crate::addr::ClientAddr;
use crate::state::{Shared, State};
use crate::upstream::discovery::SystemResolver;
use crate::upstream::pool::Pool;
use http::{Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Answers with the request target and Host it saw; counts connections.
async fn origin() -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let conns = Arc::new(AtomicUsize::new(0));
    let count = conns.clone();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(|req: Request<Incoming>| async move {
                    let host = req.headers().get(header::HOST).cloned();
                    let mut resp =
                        Response::new(Full::new(bytes::Bytes::from(req.uri().to_string())));
                    if let Some(h) = host {
                        resp.headers_mut().insert("x-seen-host", h);
                    }
                    Ok::<_, Infallible>(resp)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), svc)
                    .await;
            });
        }
    });
    (addr, conns)
}

#[tokio::test]
async fn hyper_util_pool_forwards_and_reuses_connections() {
    let (addr, conns) = origin().await;
    let text = format!(
        "[[listener]]\naddress = \"127.0.0.1:1\"\n[upstream.a]\nbackends = [\"{addr}\"]\n[[route]]\nupstream = \"a\"\n"
    );
    let config = crate::config::validate::parse(&text, Path::new("test.toml")).expect("config");
    let state = State::new(&config, None).expect("state");
    let legacy = forward::legacy_client(&state.config, &state.timeouts);
    let worker = Arc::new(Worker {
        pool: Arc::new(Pool::new(state.timeouts.upstream_idle)),
        shared: Arc::new(Shared::new(state, Arc::new(SystemResolver))),
        legacy: Some(Arc::new(legacy)),
    });
    let client = ClientAddr("127.0.0.1:40000".parse().unwrap());
    let conn = Arc::new(ConnCtx::new(worker.clone(), client, "http"));

    for i in 0..3 {
        let req = Request::builder()
            .uri(format!("/p/{i}?q=1"))
            .header(header::HOST, "example.test")
            .body(ReqBody::Empty)
            .unwrap();
        let resp = handle(conn.clone(), req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.headers()["x-seen-host"], "example.test");
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        // hyper-util sends origin-form, as our pool does.
        assert_eq!(&body[..], format!("/p/{i}?q=1").as_bytes());
    }
    // Sequential requests share one connection from hyper-util's pool.
    assert_eq!(conns.load(Ordering::SeqCst), 1);
}
