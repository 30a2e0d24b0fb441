//! Routing and responses: the only place an [`ApiError`] becomes a status
//! (through [`ApiError::status`]) and every response gets `X-Instance-ID`.
//!
//! ```text
//! GET  /posts          list (HTML, or JSON by Accept)      ─┐ pages: cache-through
//! GET  /posts/{id}     one post (HTML, or JSON by Accept)  ─┘
//! POST /posts          create  {title, body, publish_at?}  ─┐ session required;
//! PUT  /posts/{id}     update  {title?, body?, publish_at?} ┘ invalidate, then answer
//! POST /login          {author, password} → Set-Cookie: sid=…
//! GET  /ping           liveness (the proxy's heartbeat)
//! GET  /ready          database and cache reachable, not shutting down
//! GET  /stats          counters, log shipping included
//! GET  /metrics        Prometheus exposition (crate::stats lists the families)
//! ```

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use serde::Deserialize;

use crate::App;
use crate::error::{ApiError, Invalid};
use crate::pages::{self, Source};
use crate::posts::{self, NewPost, PostUpdate};
use crate::sessions::{self, SessionStore};
use crate::stats::Stats;

/// Largest accepted request body.
pub const MAX_REQUEST_BYTES: usize = 1024 * 1024;

pub type Body = Full<Bytes>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Login {
    author: String,
    password: String,
}

/// Answers one request. Never fails: errors become responses here.
pub async fn handle(app: Arc<App>, req: Request<Incoming>) -> Response<Body> {
    Stats::bump(&app.stats.requests);
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let mut response = match route(&app, req).await {
        Ok(response) => response,
        Err(error) => {
            if error.is_server_side() {
                tracing::error!(error = &error as &dyn std::error::Error, %method, path, "request failed");
            }
            error_response(&error)
        }
    };
    if let Ok(id) = HeaderValue::from_str(&app.instance) {
        response.headers_mut().insert("x-instance-id", id);
    }
    // Health checks and scrapes would drown the log service.
    if !matches!(path.as_str(), "/ping" | "/ready" | "/stats" | "/metrics") {
        app.logs
            .info(format!("{method} {path} {}", response.status().as_u16()));
    }
    response
}

async fn route(app: &App, req: Request<Incoming>) -> Result<Response<Body>, ApiError> {
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match segments.as_slice() {
        [""] => match method {
            Method::GET | Method::HEAD => Ok(redirect("/posts")),
            _ => Err(ApiError::Method { allow: "GET, HEAD" }),
        },
        ["posts"] => match method {
            Method::GET | Method::HEAD => list(app, &req).await,
            Method::POST => create(app, req).await,
            _ => Err(ApiError::Method {
                allow: "GET, HEAD, POST",
            }),
        },
        ["posts", id] => {
            let id = parse_id(id)?;
            match method {
                Method::GET | Method::HEAD => show(app, id, &req).await,
                Method::PUT => update(app, id, req).await,
                _ => Err(ApiError::Method {
                    allow: "GET, HEAD, PUT",
                }),
            }
        }
        ["login"] => match method {
            Method::POST => login(app, req).await,
            _ => Err(ApiError::Method { allow: "POST" }),
        },
        // 503 once shutting down: a proxy's health check takes us out of
        // rotation during `--shutdown-delay`, before we close anything.
        ["ping"] if app.shutting_down.load(std::sync::atomic::Ordering::Acquire) => {
            Ok(text(StatusCode::SERVICE_UNAVAILABLE, "shutting down\n"))
        }
        ["ping"] => Ok(text(StatusCode::OK, "pong\n")),
        ["ready"] => Ok(ready(app).await),
        ["stats"] => Ok(json(StatusCode::OK, &stats(app))),
        ["metrics"] => Ok(sluice_service_common::metrics::response(&app.metrics)),
        _ => Err(ApiError::NoRoute),
    }
}

/// The request histogram's `route` names, in [`route_index`]'s order.
pub const ROUTES: [&str; 8] = [
    "root", "posts", "post", "login", "ping", "ready", "stats", "metrics",
];

/// The index in [`ROUTES`] of a path, as [`route`] splits it, whatever the
/// method or the post id (past the end: unmatched).
pub fn route_index(path: &str) -> usize {
    let mut segments = path.trim_matches('/').split('/');
    match (segments.next(), segments.next(), segments.next()) {
        (Some(""), None, _) => 0,
        (Some("posts"), None, _) => 1,
        (Some("posts"), Some(_), None) => 2,
        (Some(name), None, _) => ROUTES[3..]
            .iter()
            .position(|r| *r == name)
            .map_or(ROUTES.len(), |i| i + 3),
        _ => ROUTES.len(),
    }
}

fn parse_id(s: &str) -> Result<i64, ApiError> {
    s.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or(ApiError::Invalid(Invalid::PostId))
}

fn wants_json(req: &Request<Incoming>) -> bool {
    req.headers()
        .get_all(ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/json"))
}

async fn list(app: &App, req: &Request<Incoming>) -> Result<Response<Body>, ApiError> {
    let (list, source) = app.pages.list().await?;
    let mut response = if wants_json(req) {
        json(StatusCode::OK, &list)
    } else {
        html(pages::list_html(&list))
    };
    mark(&mut response, source);
    Ok(response)
}

async fn show(app: &App, id: i64, req: &Request<Incoming>) -> Result<Response<Body>, ApiError> {
    let (post, source) = app.pages.post(id).await?;
    let post = post.ok_or(ApiError::NoSuchPost)?;
    let mut response = if wants_json(req) {
        json(StatusCode::OK, &post)
    } else {
        html(pages::post_html(&post))
    };
    mark(&mut response, source);
    Ok(response)
}

async fn create(app: &App, req: Request<Incoming>) -> Result<Response<Body>, ApiError> {
    let author = authenticate(app, &req).await?;
    let new: NewPost = read_json(req).await?;
    let publish_at = new.validate()?;
    let post = posts::create(&app.db, &author, &new, publish_at).await?;
    // A new post changes the list (the post's own key may hold nothing, but
    // deleting it is harmless and covers a cached 404-era entry).
    app.pages.invalidate(&[post.id]).await;
    let mut response = json(StatusCode::CREATED, &post);
    if let Ok(location) = HeaderValue::from_str(&pages::post_key(post.id)) {
        response.headers_mut().insert(LOCATION, location);
    }
    Ok(response)
}

async fn update(app: &App, id: i64, req: Request<Incoming>) -> Result<Response<Body>, ApiError> {
    authenticate(app, &req).await?;
    let change: PostUpdate = read_json(req).await?;
    let publish_at = change.validate()?;
    let post = posts::update(&app.db, id, &change, publish_at)
        .await?
        .ok_or(ApiError::NoSuchPost)?;
    app.pages.invalidate(&[id]).await;
    Ok(json(StatusCode::OK, &post))
}

async fn login(app: &App, req: Request<Incoming>) -> Result<Response<Body>, ApiError> {
    let login: Login = read_json(req).await?;
    if !sessions::verify(&app.db, &login.author, &login.password).await? {
        return Err(ApiError::BadCredentials);
    }
    let ttl = app.config.session_ttl;
    let sid = app.sessions.create(&login.author, ttl).await?;
    let mut response = json(
        StatusCode::OK,
        &serde_json::json!({"author": login.author, "expires_in": ttl.as_secs()}),
    );
    if let Ok(cookie) = HeaderValue::from_str(&sessions::set_cookie(&sid, ttl)) {
        response.headers_mut().insert(SET_COOKIE, cookie);
    }
    Ok(response)
}

/// The author of the request's session, or 401.
async fn authenticate(app: &App, req: &Request<Incoming>) -> Result<String, ApiError> {
    let sid = sessions::sid_from_cookies(req.headers().get_all(COOKIE).iter())
        .ok_or(ApiError::Unauthenticated)?;
    app.sessions
        .author(&sid)
        .await?
        .ok_or(ApiError::Unauthenticated)
}

async fn ready(app: &App) -> Response<Body> {
    let shutting_down = app.shutting_down.load(Ordering::Acquire);
    let database = app.db.ping().await.is_ok();
    let cache = match app.pages.cache() {
        Some(cache) => Some(cache.ready().await),
        None => None,
    };
    let ok = !shutting_down && database && cache.unwrap_or(true);
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    json(
        status,
        &serde_json::json!({
            "ready": ok,
            "database": database,
            "cache": cache,
            "shutting_down": shutting_down,
            "logs": app.logs.json(),
        }),
    )
}

fn stats(app: &App) -> serde_json::Value {
    let mut value = app.stats.json();
    value["instance"] = app.instance.clone().into();
    value["database"] = app.db.kind().into();
    value["sessions"] = app.sessions.kind().into();
    value["lease"] = app.leases.kind().into();
    value["logs"] = app.logs.json();
    value
}

async fn read_json<T: serde::de::DeserializeOwned>(req: Request<Incoming>) -> Result<T, ApiError> {
    let body = Limited::new(req.into_body(), MAX_REQUEST_BYTES)
        .collect()
        .await
        .map_err(|error| {
            if error.is::<http_body_util::LengthLimitError>() {
                ApiError::BodyTooLarge {
                    limit: MAX_REQUEST_BYTES,
                }
            } else {
                ApiError::Body(error)
            }
        })?
        .to_bytes();
    serde_json::from_slice(&body).map_err(ApiError::Json)
}

fn mark(response: &mut Response<Body>, source: Source) {
    response
        .headers_mut()
        .insert("x-cache", HeaderValue::from_static(source.as_str()));
}

fn respond(status: StatusCode, content_type: &'static str, body: Vec<u8>) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

fn json(status: StatusCode, value: &impl serde::Serialize) -> Response<Body> {
    let body = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    respond(status, "application/json", body)
}

fn html(page: String) -> Response<Body> {
    respond(
        StatusCode::OK,
        "text/html; charset=utf-8",
        page.into_bytes(),
    )
}

fn text(status: StatusCode, body: &'static str) -> Response<Body> {
    respond(
        status,
        "text/plain; charset=utf-8",
        body.as_bytes().to_vec(),
    )
}

fn redirect(to: &'static str) -> Response<Body> {
    let mut response = text(StatusCode::FOUND, "");
    response
        .headers_mut()
        .insert(LOCATION, HeaderValue::from_static(to));
    response
}

fn error_response(error: &ApiError) -> Response<Body> {
    let mut response = json(
        error.status(),
        &serde_json::json!({"error": error.to_string()}),
    );
    if let ApiError::Method { allow } = error {
        response
            .headers_mut()
            .insert(http::header::ALLOW, HeaderValue::from_static(allow));
    }
    response
}
