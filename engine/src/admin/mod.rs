//! The admin API, on its own listener (loopback by default), served on the
//! main runtime, never on a worker. It changes what the proxy routes to:
//! backends register, unregister and drain here; operators see why a backend
//! gets no traffic; `/reload` swaps the config.
//!
//! | method | path | what |
//! |---|---|---|
//! | GET | `/status` (and `/`, redirected) | the status page: [`status_page`] |
//! | GET | `/healthz` | liveness: the process answers |
//! | GET | `/readyz` | readiness: bound, configured, not shutting down |
//! | GET | `/backends` | every group and backend with state, reason, checks, counters |
//! | GET | `/metrics` | Prometheus metrics, OpenMetrics text (`observe::metrics`); the bearer token applies |
//! | GET | `/rate_limits` | every rate limit and its keys; the global limits' Redis sync: state, failures, outages, last error |
//! | GET | `/access_log` | the instance id, the access log's settings and its counters: written, dropped (`access_log_dropped`), write errors, shipped, ship drops and failures |
//! | POST | `/backends` | `{"group","address","weight"}` registers (idempotent) |
//! | DELETE | `/backends/{address}` | drains in-flight requests, then unregisters |
//! | POST | `/backends/{address}/drain` | out of rotation, in-flight requests finish |
//! | POST, GET | `/register?port=N`, `/unregister?port=N` | the caller's IP with that port, default group (GET for the classic clients) |
//! | POST | `/reload` | read the config file again; on error the old one keeps serving; answers the listeners, added and removed |
//!
//! Before any endpoint runs, [`guard`] checks `Host`, `Origin`, the
//! caller's address, the bearer token and the body's type. Every backend
//! address given is checked by [`crate::addr::BackendAddr::checked`]. The
//! listener has a header timeout (`timeouts.client_header`, also for the
//! body), a head size cap, a body cap ([`MAX_BODY`]) and a connection cap
//! ([`MAX_CONNECTIONS`]).

pub mod error;
pub mod guard;
pub mod rate_limits;
pub mod state_file;
pub mod status_page;

pub use error::AdminError;

use crate::addr::BackendAddr;
use crate::config::AdminConfig;
use crate::lifecycle::Reloader;
use crate::state::{Shared, State};
use crate::upstream::member::{MemberView, Origin};
use bytes::Bytes;
use guard::Conn;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

/// Admin request bodies are small JSON documents.
pub const MAX_BODY: usize = 64 * 1024;
/// Admin connections open at once; past this, new ones wait in the kernel's
/// accept queue. Operators and registrars need a handful; the cap keeps a
/// flood of idle connections from costing memory without bound.
pub const MAX_CONNECTIONS: usize = 128;
/// Largest admin request head: admin requests are a line and a few fields
/// (hyper's smallest allowed read buffer).
const MAX_HEAD: usize = 8 * 1024;

type AdminResponse = Response<Full<Bytes>>;

/// Serves the admin API on `listener` until the process ends, or until
/// `stop` turns true: a successor process took the socket over
/// (`lifecycle::handover`) and answers from then on. A drain does not stop
/// it: `/readyz` saying 503 during the drain is the point.
pub fn spawn(
    listener: std::net::TcpListener,
    reloader: Arc<Reloader>,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let listener = TcpListener::from_std(listener)?;
    // A permit per open connection, returned when its task ends.
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    tokio::spawn(async move {
        loop {
            let Ok(permit) = permits.clone().acquire_owned().await else {
                return;
            };
            let accepted = tokio::select! {
                biased;
                _ = crate::server::worker::draining(&mut stop) => return,
                a = listener.accept() => a,
            };
            let (stream, peer) = match accepted {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(error = %e, "admin accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let Ok(local) = stream.local_addr() else {
                continue;
            };
            let conn = Conn { peer, local };
            let reloader = reloader.clone();
            // The data listeners' header timeout: a client that does not
            // finish its head (or, below, its body) in time is dropped, so
            // slowloris connections cannot pile up.
            let timeout = reloader.shared().state.load().timeouts.client_header;
            tokio::spawn(async move {
                let svc = service_fn(move |req| {
                    let reloader = reloader.clone();
                    async move {
                        Ok::<_, std::convert::Infallible>(
                            handle(&reloader, conn, timeout, req).await,
                        )
                    }
                });
                if let Err(e) = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(timeout)
                    .max_buf_size(MAX_HEAD)
                    .serve_connection(TokioIo::new(stream), svc)
                    .await
                {
                    tracing::debug!(error = %e, "admin connection ended");
                }
                drop(permit);
            });
        }
    });
    Ok(())
}

/// Answers one admin request: the [`guard`] first, then the endpoint.
pub async fn handle(
    reloader: &Reloader,
    conn: Conn,
    timeout: Duration,
    req: Request<Incoming>,
) -> AdminResponse {
    let shared = reloader.shared();
    let fallback;
    let admin = match shared.admin.as_ref() {
        Some(a) => a,
        None => {
            fallback = AdminConfig::new(conn.local);
            &fallback
        }
    };
    let result = match guard::check(admin, conn, &req) {
        Ok(()) => route(reloader, conn, timeout, req).await,
        Err(e) => Err(e),
    };
    result.unwrap_or_else(error)
}

/// The path's segments as the router matches them (`/register/` and
/// `//register` are `["register"]`); `guard` classifies by the same.
pub(super) fn segments(path: &str) -> Vec<&str> {
    path.trim_matches('/').split('/').collect()
}

async fn route(
    reloader: &Reloader,
    conn: Conn,
    timeout: Duration,
    req: Request<Incoming>,
) -> Result<AdminResponse, AdminError> {
    let shared = reloader.shared();
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    let segments = segments(&path);
    match (&method, segments.as_slice()) {
        (&Method::GET, ["healthz"]) => {
            Ok(json(StatusCode::OK, &serde_json::json!({"status": "ok"})))
        }
        (&Method::GET, ["readyz"]) => Ok(if shared.is_ready() {
            json(StatusCode::OK, &serde_json::json!({"ready": true}))
        } else {
            json(
                StatusCode::SERVICE_UNAVAILABLE,
                &serde_json::json!({"ready": false}),
            )
        }),
        (&Method::GET, ["status"]) => Ok(status_page::page()),
        (&Method::GET, [""]) => Ok(status_page::redirect()),
        (&Method::GET, ["backends"]) => Ok(json(StatusCode::OK, &list(&shared.state.load()))),
        (&Method::GET, ["metrics"]) => Ok(metrics(reloader)),
        (&Method::GET, ["rate_limits"]) => Ok(json(
            StatusCode::OK,
            &rate_limits::view(&shared.state.load()),
        )),
        (&Method::GET, ["access_log"]) => Ok(json(
            StatusCode::OK,
            &crate::observe::access_log::view(&shared.state.load()),
        )),
        (&Method::POST, ["backends"]) => {
            let body: Register = read_json(req, timeout).await?;
            let addr = shared.own.check(parse_addr(&body.address)?)?;
            let weight = body.weight.unwrap_or(1);
            if weight == 0 || weight > crate::config::defaults::MAX_WEIGHT {
                return Err(AdminError::bad("weight must be between 1 and 10000"));
            }
            let state = shared.state.load_full();
            let group = match &body.group {
                Some(name) => state
                    .group(name)
                    .ok_or_else(|| AdminError::not_found(format!("no group named {name:?}")))?,
                None => state
                    .default_group()
                    .ok_or_else(|| AdminError::not_found("no upstream group"))?,
            };
            add(shared, &state, group, addr, weight)
        }
        (&Method::DELETE, ["backends", addr]) => {
            let addr = BackendAddr(parse_addr(&decode(addr))?);
            let group = query(&req, "group");
            unregister(shared, addr, group.as_deref()).await
        }
        (&Method::POST, ["backends", addr, "drain"]) => {
            let addr = BackendAddr(parse_addr(&decode(addr))?);
            let state = shared.state.load_full();
            let group = query(&req, "group");
            let (g, _) = find(&state, addr, group.as_deref())?;
            g.drain(addr);
            persist(shared, &state);
            Ok(json(
                StatusCode::OK,
                &serde_json::json!({"group": g.name, "address": addr.to_string(), "state": "draining"}),
            ))
        }
        (&Method::POST | &Method::GET, ["register"]) => {
            let addr = shared.own.check(caller_port(&req, conn)?)?;
            let state = shared.state.load_full();
            let group = state
                .default_group()
                .ok_or_else(|| AdminError::not_found("no upstream group"))?;
            add(shared, &state, group, addr, 1)
        }
        (&Method::POST | &Method::GET, ["unregister"]) => {
            let addr = BackendAddr(caller_port(&req, conn)?);
            unregister(shared, addr, None).await
        }
        (&Method::POST, ["reload"]) => match reloader.reload().await {
            Ok(changes) => {
                let strings = |a: &[crate::addr::ListenAddr]| -> Vec<String> {
                    a.iter().map(|a| a.to_string()).collect()
                };
                Ok(json(
                    StatusCode::OK,
                    &serde_json::json!({
                        "reloaded": true,
                        "listeners": strings(&changes.listeners),
                        "added": strings(&changes.added),
                        "removed": strings(&changes.removed),
                    }),
                ))
            }
            Err(e) => {
                tracing::error!(error = %e, "reload rejected; the old config keeps serving");
                Err(e.into())
            }
        },
        (_, ["register" | "unregister"]) => Err(AdminError::MethodNotAllowed {
            method,
            path,
            hint: "; use POST (or GET, as the classic registration clients do)",
        }),
        (
            _,
            [
                "healthz" | "readyz" | "backends" | "metrics" | "rate_limits" | "access_log"
                | "reload" | "status" | "",
            ],
        )
        | (_, ["backends", _] | ["backends", _, "drain"]) => Err(AdminError::MethodNotAllowed {
            method,
            path,
            hint: "",
        }),
        _ => Err(AdminError::not_found(format!("no admin endpoint {path}"))),
    }
}

/// Adds `addr` (already checked) to `group` and answers 201, or 200 when
/// it was there already.
fn add(
    shared: &Shared,
    state: &State,
    group: &crate::upstream::Group,
    addr: BackendAddr,
    weight: u32,
) -> Result<AdminResponse, AdminError> {
    let added = group.add_backend(addr, weight, Origin::Registered)?;
    persist(shared, state);
    let status = if added {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(json(
        status,
        &serde_json::json!({"group": group.name, "address": addr.to_string(), "added": added}),
    ))
}

/// Drains `addr` (in-flight requests finish, bounded by the shutdown grace
/// period), then removes it.
async fn unregister(
    shared: &Shared,
    addr: BackendAddr,
    group: Option<&str>,
) -> Result<AdminResponse, AdminError> {
    let state = shared.state.load_full();
    let (g, backend) = find(&state, addr, group)?;
    g.drain(addr);
    persist(shared, &state);
    let deadline = tokio::time::Instant::now() + state.timeouts.shutdown_grace;
    while backend.in_flight() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let drained = backend.in_flight() == 0;
    g.remove_backend(addr);
    persist(shared, &state);
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({"group": g.name, "address": addr.to_string(), "removed": true, "drained": drained}),
    ))
}

fn find<'a>(
    state: &'a State,
    addr: BackendAddr,
    group: Option<&str>,
) -> Result<
    (
        &'a Arc<crate::upstream::Group>,
        Arc<crate::upstream::Backend>,
    ),
    AdminError,
> {
    state
        .groups
        .iter()
        .filter(|g| group.is_none_or(|n| g.name == n))
        .find_map(|g| g.member(addr).map(|b| (g, b)))
        .ok_or_else(|| AdminError::not_found(format!("no backend {addr}")))
}

fn persist(shared: &Shared, state: &State) {
    if let Some(path) = shared.admin.as_ref().and_then(|a| a.state_file.as_ref())
        && let Err(e) = state_file::save(path, state)
    {
        tracing::error!(path = %path.display(), error = %e, "cannot write the state file");
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Register {
    group: Option<String>,
    address: String,
    weight: Option<u32>,
}

#[derive(Serialize)]
struct GroupView {
    name: String,
    backends: Vec<MemberView>,
    /// Retries on another backend sent for routes to this group
    /// (`[route.retry]`), and the ones its retry budget refused.
    retries: u64,
    retry_budget_exhausted: u64,
    /// With `max_requests_per_backend`: requests waiting now, those that
    /// waited past `queue_timeout`, and those refused with a full queue.
    #[serde(flatten)]
    queue: Option<crate::upstream::queue::QueueStats>,
}

fn list(state: &State) -> serde_json::Value {
    let groups: Vec<GroupView> = state
        .groups
        .iter()
        .map(|g| GroupView {
            name: g.name.clone(),
            backends: g.views(),
            retries: g.retry_budget.retries(),
            retry_budget_exhausted: g.retry_budget.exhausted(),
            queue: g.limit.as_ref().map(|l| l.queue.stats()),
        })
        .collect();
    serde_json::json!({ "groups": groups })
}

/// Reads a JSON body of at most [`MAX_BODY`] bytes within `timeout`.
async fn read_json<T: for<'de> Deserialize<'de>>(
    req: Request<Incoming>,
    timeout: Duration,
) -> Result<T, AdminError> {
    // A declared length past the cap is refused before anything is read.
    if http_body::Body::size_hint(req.body()).lower() > MAX_BODY as u64 {
        return Err(AdminError::BodyTooLarge(MAX_BODY));
    }
    let body = tokio::time::timeout(timeout, Limited::new(req.into_body(), MAX_BODY).collect())
        .await
        .map_err(|_| AdminError::BodyTimeout(timeout))?
        .map_err(|e| {
            if e.is::<LengthLimitError>() {
                AdminError::BodyTooLarge(MAX_BODY)
            } else {
                AdminError::BodyRead(e)
            }
        })?
        .to_bytes();
    serde_json::from_slice(&body).map_err(|e| AdminError::bad(format!("invalid JSON: {e}")))
}

fn query(req: &Request<Incoming>, key: &str) -> Option<String> {
    req.uri().query()?.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == key).then(|| decode(v))
    })
}

fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

fn parse_addr(s: &str) -> Result<std::net::SocketAddr, AdminError> {
    crate::config::values::resolve(s).map_err(|e| AdminError::bad(format!("address: {e}")))
}

/// `/register?port=N`: the backend is the caller's own IP with port N.
fn caller_port(req: &Request<Incoming>, conn: Conn) -> Result<std::net::SocketAddr, AdminError> {
    let port = query(req, "port").ok_or_else(|| AdminError::bad("missing port parameter"))?;
    let port: u16 = port
        .parse()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| AdminError::bad(format!("invalid port {port:?}")))?;
    Ok(std::net::SocketAddr::new(
        conn.peer.ip().to_canonical(),
        port,
    ))
}

/// `GET /metrics`: read now, from the state and the running listeners.
fn metrics(reloader: &Reloader) -> AdminResponse {
    let state = reloader.shared().state.load_full();
    let body = crate::observe::metrics::scrape::render(state, reloader.metered_listeners());
    let mut r = Response::new(Full::new(Bytes::from(body)));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(crate::observe::metrics::scrape::CONTENT_TYPE),
    );
    r
}

fn json(status: StatusCode, value: &impl Serialize) -> AdminResponse {
    let body = serde_json::to_vec_pretty(value).unwrap_or_default();
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    r
}

fn error(e: AdminError) -> AdminResponse {
    let mut r = json(e.status(), &serde_json::json!({ "error": e.to_string() }));
    if matches!(e, AdminError::Unauthorized) {
        // RFC 6750 §3: a 401 names the scheme it wants.
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer realm=\"sluice-admin\""),
        );
    }
    r
}
