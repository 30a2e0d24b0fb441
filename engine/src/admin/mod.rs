//! The admin API, on its own listener (loopback by default), served on the
//! main runtime, never on a worker. It changes what the proxy routes to:
//! backends register, unregister and drain here; operators see why a backend
//! gets no traffic; `/reload` swaps the config.
//!
//! | method | path | what |
//! |---|---|---|
//! | GET | `/healthz` | liveness: the process answers |
//! | GET | `/readyz` | readiness: bound, configured, not shutting down |
//! | GET | `/backends` | every group and backend with state, reason, checks, counters |
//! | POST | `/backends` | `{"group","address","weight"}` registers (idempotent) |
//! | DELETE | `/backends/{address}` | drains in-flight requests, then unregisters |
//! | POST | `/backends/{address}/drain` | out of rotation, in-flight requests finish |
//! | GET/POST | `/register?port=N`, `/unregister?port=N` | the caller's IP with that port, default group |
//! | POST | `/reload` | read the config file again; on error the old one keeps serving; answers the listeners, added and removed |
//!
//! With a token set, everything but `GET /healthz` and `GET /readyz` needs it.

pub mod state_file;

use crate::addr::BackendAddr;
use crate::lifecycle::{ReloadError, Reloader};
use crate::state::{Shared, State};
use crate::upstream::member::{MemberView, Origin};
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Admin request bodies are small JSON documents.
const MAX_BODY: usize = 64 * 1024;

type AdminResponse = Response<Full<Bytes>>;

/// Serves the admin API on `listener` until the process ends.
pub fn spawn(
    listener: std::net::TcpListener,
    reloader: Arc<Reloader>,
    _drain: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let listener = TcpListener::from_std(listener)?;
    tokio::spawn(async move {
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(error = %e, "admin accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let reloader = reloader.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req| {
                    let reloader = reloader.clone();
                    async move { Ok::<_, std::convert::Infallible>(handle(&reloader, peer, req).await) }
                });
                if let Err(e) = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await
                {
                    tracing::debug!(error = %e, "admin connection ended");
                }
            });
        }
    });
    Ok(())
}

/// An admin API error: a status and a reason, sent as `{"error": reason}`.
#[derive(Debug)]
pub struct AdminError(StatusCode, String);

/// A rejected reload is the request's fault (the file it asked to load):
/// 422 with the reason.
impl From<ReloadError> for AdminError {
    fn from(e: ReloadError) -> AdminError {
        AdminError(StatusCode::UNPROCESSABLE_ENTITY, e.to_string())
    }
}

impl AdminError {
    fn bad(msg: impl Into<String>) -> Self {
        AdminError(StatusCode::BAD_REQUEST, msg.into())
    }
    fn not_found(msg: impl Into<String>) -> Self {
        AdminError(StatusCode::NOT_FOUND, msg.into())
    }
}

pub async fn handle(
    reloader: &Reloader,
    peer: SocketAddr,
    req: Request<Incoming>,
) -> AdminResponse {
    let shared = reloader.shared();
    // Probes stay open: they reveal nothing and orchestrators send no token.
    let probe = req.method() == Method::GET && matches!(req.uri().path(), "/healthz" | "/readyz");
    if let Some(token) = shared.admin.as_ref().and_then(|a| a.token.as_deref())
        && !probe
    {
        let ok = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|t| constant_time_eq(t.trim().as_bytes(), token.as_bytes()));
        if !ok {
            return error(AdminError(
                StatusCode::UNAUTHORIZED,
                "missing or wrong bearer token".into(),
            ));
        }
    }
    match route(reloader, peer, req).await {
        Ok(resp) => resp,
        Err(e) => error(e),
    }
}

async fn route(
    reloader: &Reloader,
    peer: SocketAddr,
    req: Request<Incoming>,
) -> Result<AdminResponse, AdminError> {
    let shared = reloader.shared();
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
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
        (&Method::GET, ["backends"]) => Ok(json(StatusCode::OK, &list(&shared.state.load()))),
        (&Method::POST, ["backends"]) => {
            let body: Register = read_json(req).await?;
            let addr = parse_addr(&body.address)?;
            let weight = body.weight.unwrap_or(1);
            if weight == 0 || weight > 10_000 {
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
            let added = group.add_backend(addr, weight, Origin::Registered);
            persist(shared, &state);
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
        (&Method::DELETE, ["backends", addr]) => {
            let addr = parse_addr(&decode(addr))?;
            let group = query(&req, "group");
            unregister(shared, addr, group.as_deref()).await
        }
        (&Method::POST, ["backends", addr, "drain"]) => {
            let addr = parse_addr(&decode(addr))?;
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
        (&Method::GET | &Method::POST, ["register"]) => {
            let addr = caller_port(&req, peer)?;
            let state = shared.state.load_full();
            let group = state
                .default_group()
                .ok_or_else(|| AdminError::not_found("no upstream group"))?;
            let added = group.add_backend(addr, 1, Origin::Registered);
            persist(shared, &state);
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
        (&Method::GET | &Method::POST, ["unregister"]) => {
            let addr = caller_port(&req, peer)?;
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
        (_, ["healthz" | "readyz" | "backends" | "register" | "unregister" | "reload"])
        | (_, ["backends", _] | ["backends", _, "drain"]) => Err(AdminError(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{method} is not allowed on {path}"),
        )),
        _ => Err(AdminError::not_found(format!("no admin endpoint {path}"))),
    }
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
}

fn list(state: &State) -> serde_json::Value {
    let groups: Vec<GroupView> = state
        .groups
        .iter()
        .map(|g| GroupView {
            name: g.name.clone(),
            backends: g.views(),
        })
        .collect();
    serde_json::json!({ "groups": groups })
}

async fn read_json<T: for<'de> Deserialize<'de>>(req: Request<Incoming>) -> Result<T, AdminError> {
    let body = Limited::new(req.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| {
            AdminError(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("cannot read body: {e}"),
            )
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

fn parse_addr(s: &str) -> Result<BackendAddr, AdminError> {
    crate::config::values::resolve(s)
        .map(BackendAddr)
        .map_err(|e| AdminError::bad(format!("address: {e}")))
}

/// `/register?port=N`: the backend is the caller's own IP with port N.
fn caller_port(req: &Request<Incoming>, peer: SocketAddr) -> Result<BackendAddr, AdminError> {
    let port = query(req, "port").ok_or_else(|| AdminError::bad("missing port parameter"))?;
    let port: u16 = port
        .parse()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| AdminError::bad(format!("invalid port {port:?}")))?;
    Ok(BackendAddr(SocketAddr::new(peer.ip(), port)))
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
    json(e.0, &serde_json::json!({ "error": e.1 }))
}

/// Compares tokens without leaking the matching prefix length through timing.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
