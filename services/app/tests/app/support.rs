//! The stack on loopback, in process: cache, log, proxy and app replicas,
//! each on `127.0.0.1:0` with its own shutdown trigger.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method};
use sluice_app::client::{Client, Reply};
use sluice_app::{Config, DatabaseConfig};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Upper bound of every poll loop in the tests.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// Polls `f` until it yields `Some`, failing after [`DEADLINE`].
pub async fn eventually<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A service task with a trigger that starts its graceful shutdown.
pub struct Service<T> {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<T>>,
}

impl<T> Service<T> {
    pub fn url(&self) -> url::Url {
        url::Url::parse(&format!("http://{}", self.addr)).expect("url")
    }

    /// Graceful stop, waiting for the task to return.
    pub async fn stop(mut self) -> T {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let task = self.task.take().expect("task");
        tokio::time::timeout(DEADLINE, task)
            .await
            .expect("service stops within the deadline")
            .expect("service task did not panic")
    }

    /// Kill: aborts the task (and, through it, everything it owns).
    pub async fn kill(mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }
}

impl<T> Drop for Service<T> {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

pub async fn spawn_service<T, F, Fut>(start: F) -> Service<T>
where
    F: FnOnce(TcpListener, oneshot::Receiver<()>) -> Fut,
    Fut: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = oneshot::channel();
    let task = tokio::spawn(start(listener, stopped));
    Service {
        addr,
        stop: Some(stop),
        task: Some(task),
    }
}

pub async fn cache() -> Service<()> {
    spawn_service(|listener, stopped| async move {
        sluice_cache::run(listener, sluice_cache::Config::default(), async {
            let _ = stopped.await;
        })
        .await
        .expect("cache runs");
    })
    .await
}

pub async fn log_service(dir: &Path) -> Service<()> {
    let config = sluice_log::Config::new(dir).validate().expect("log config");
    spawn_service(|listener, stopped| async move {
        sluice_log::run(listener, config, async {
            let _ = stopped.await;
        })
        .await
        .expect("log service runs");
    })
    .await
}

pub async fn app(config: Config) -> Service<()> {
    let service = spawn_service(|listener, stopped| async move {
        sluice_app::run(listener, config, async {
            let _ = stopped.await;
        })
        .await
        .expect("app runs");
    })
    .await;
    let client = Client::new(&service.url(), Duration::from_secs(10), None);
    eventually("the replica answers /ping", || async {
        get(&client, "/ping")
            .await
            .filter(|r| r.status == 200)
            .map(drop)
    })
    .await;
    service
}

/// An app config on the SQLite file `db` with test-sized periods.
pub fn app_config(db: &Path) -> Config {
    Config {
        job_interval: Duration::from_millis(200),
        lease_ttl: Duration::from_secs(1),
        drain_grace: Duration::from_secs(10),
        service_timeout: Duration::from_secs(2),
        ..Config::new(DatabaseConfig::Sqlite(db.to_owned()))
    }
}

pub fn sqlite_file(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("blog.db")
}

/// The proxy with its admin API and no backends.
pub struct Proxy {
    pub server: Option<sluice::Server>,
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    /// The admin API's bearer token, if it wants one.
    pub token: Option<String>,
}

impl Proxy {
    pub async fn start() -> Proxy {
        Proxy::start_with_token(None).await
    }

    /// The proxy with an admin API that wants `token`.
    pub async fn start_with_token(token: Option<&str>) -> Proxy {
        let mut config = sluice::Config::simple(([127, 0, 0, 1], 0).into(), &[]);
        let mut admin = sluice::config::AdminConfig::new(([127, 0, 0, 1], 0).into());
        admin.token = token.map(str::to_owned);
        config.admin = Some(admin);
        let bound = sluice::bind(&config).expect("bind proxy");
        let server = sluice::Server::start(bound, &config).expect("start proxy");
        let addr = server.addrs()[0].0;
        let admin = server.admin_addr().expect("admin addr");
        Proxy {
            server: Some(server),
            addr,
            admin,
            token: token.map(str::to_owned),
        }
    }

    pub fn url(&self) -> url::Url {
        url::Url::parse(&format!("http://{}", self.addr)).expect("url")
    }

    pub fn admin_url(&self) -> url::Url {
        url::Url::parse(&format!("http://{}", self.admin)).expect("url")
    }

    /// Backend addresses the admin API lists.
    pub async fn backends(&self) -> Vec<String> {
        let client = Client::new(&self.admin_url(), Duration::from_secs(10), None);
        let auth: Vec<(http::HeaderName, http::HeaderValue)> = self
            .token
            .iter()
            .map(|t| {
                (
                    http::header::AUTHORIZATION,
                    http::HeaderValue::from_str(&format!("Bearer {t}")).expect("token"),
                )
            })
            .collect();
        let reply = client
            .send(http::Method::GET, "/backends", &auth, bytes::Bytes::new())
            .await
            .expect("admin answers");
        assert_eq!(reply.status, 200, "GET /backends");
        let value: serde_json::Value = serde_json::from_slice(&reply.body).expect("json");
        let mut out = Vec::new();
        collect_addresses(&value, &mut out);
        out
    }

    pub async fn shutdown(mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown().await;
        }
    }
}

fn collect_addresses(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                if k == "address"
                    && let Some(s) = v.as_str()
                {
                    out.push(s.to_owned());
                } else {
                    collect_addresses(v, out);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|i| collect_addresses(i, out)),
        _ => {}
    }
}

pub fn client(url: &url::Url) -> Client {
    Client::new(url, Duration::from_secs(30), None)
}

pub async fn get(client: &Client, path: &str) -> Option<Reply> {
    request(client, Method::GET, path, &[], b"").await
}

pub async fn request(
    client: &Client,
    method: Method,
    path: &str,
    headers: &[(&'static str, String)],
    body: &[u8],
) -> Option<Reply> {
    let headers: Vec<(HeaderName, HeaderValue)> = headers
        .iter()
        .map(|(k, v)| {
            (
                HeaderName::from_static(k),
                HeaderValue::from_str(v).expect("header value"),
            )
        })
        .collect();
    client
        .send(method, path, &headers, Bytes::copy_from_slice(body))
        .await
        .ok()
}

/// Logs in; returns the `Cookie` header value.
pub async fn login(client: &Client, author: &str, password: &str) -> String {
    let body = serde_json::json!({"author": author, "password": password}).to_string();
    let reply = request(client, Method::POST, "/login", &[], body.as_bytes())
        .await
        .expect("login answered");
    assert_eq!(reply.status, 200, "login: {:?}", reply.body);
    let cookie = reply
        .headers
        .get(http::header::SET_COOKIE)
        .expect("set-cookie")
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    cookie.split(';').next().expect("pair").to_owned()
}

pub fn json(reply: &Reply) -> serde_json::Value {
    serde_json::from_slice(&reply.body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", reply.body))
}

pub fn instance(reply: &Reply) -> String {
    reply
        .headers
        .get("x-instance-id")
        .expect("X-Instance-ID on every response")
        .to_str()
        .expect("ascii")
        .to_owned()
}

/// Creates a post with `cookie`; returns its JSON.
pub async fn create_post(
    client: &Client,
    cookie: &str,
    body: serde_json::Value,
) -> serde_json::Value {
    let reply = request(
        client,
        Method::POST,
        "/posts",
        &[
            ("cookie", cookie.to_owned()),
            ("content-type", "application/json".into()),
        ],
        body.to_string().as_bytes(),
    )
    .await
    .expect("create answered");
    assert_eq!(reply.status, 201, "create: {:?}", reply.body);
    json(&reply)
}

pub async fn get_json(client: &Client, path: &str) -> Reply {
    request(
        client,
        Method::GET,
        path,
        &[("accept", "application/json".into())],
        b"",
    )
    .await
    .unwrap_or_else(|| panic!("GET {path} answered"))
}

pub async fn stats(client: &Client) -> serde_json::Value {
    json(&get(client, "/stats").await.expect("stats answered"))
}
