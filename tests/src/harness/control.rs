//! Control-plane plumbing: an admin API client (its JSON answers parsed with
//! `serde_json`) and a scripted DNS [`Resolver`].

use super::client::{H1, collect};
use super::origin::reply;
use super::{eventually, within};
use http::{Method, Request};
use parking_lot::Mutex;
use serde_json::Value;
use sluice::upstream::discovery::{Lookup, Resolver};
use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// A reply from the admin API: status and parsed JSON body.
#[derive(Debug)]
pub struct AdminReply {
    pub status: u16,
    pub content_type: Option<String>,
    pub headers: http::HeaderMap,
    /// The parsed body; `Null` when the body is empty or not JSON by its
    /// `Content-Type`.
    pub json: Value,
    pub text: String,
}

impl AdminReply {
    /// The `error` string of a 4xx/5xx answer.
    pub fn error(&self) -> &str {
        self.json["error"]
            .as_str()
            .unwrap_or_else(|| panic!("no JSON error in {:?}", self.text))
    }
}

/// A client for the admin API; every call is a fresh connection.
#[derive(Clone, Debug)]
pub struct Admin {
    pub addr: SocketAddr,
    pub token: Option<String>,
}

impl Admin {
    pub fn new(addr: SocketAddr) -> Admin {
        Admin { addr, token: None }
    }

    /// The admin API of an in-process proxy.
    pub fn of(server: &sluice::Server) -> Admin {
        Admin::new(server.admin_addr().expect("admin API enabled"))
    }

    pub fn with_token(mut self, token: &str) -> Admin {
        self.token = Some(token.to_owned());
        self
    }

    /// Sends `method path` with an optional JSON body.
    pub async fn call(&self, method: Method, path: &str, body: Option<&str>) -> AdminReply {
        self.call_with(method, path, body, self.token.as_deref())
            .await
    }

    /// Like [`Admin::call`] with an explicit bearer token (or none).
    pub async fn call_with(
        &self,
        method: Method,
        path: &str,
        body: Option<&str>,
        token: Option<&str>,
    ) -> AdminReply {
        let content_type = body.map(|_| ("content-type", "application/json"));
        self.send(method, path, body, token, content_type.as_slice())
            .await
    }

    /// The most general call: `Host` is the admin's own address unless
    /// `headers` names one; a body gets no `Content-Type` of its own.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&str>,
        token: Option<&str>,
        headers: &[(&str, &str)],
    ) -> AdminReply {
        let mut c = H1::connect(self.addr).await;
        let mut req = Request::builder().method(method).uri(path);
        if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
            req = req.header("host", self.addr.to_string());
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let req = match body {
            Some(b) => req.body(reply::full(b.to_owned())),
            None => req.body(reply::empty()),
        }
        .expect("admin request");
        let r = collect(c.send(req).await).await;
        let text = r.text().to_owned();
        let content_type = r.header("content-type").map(str::to_owned);
        let json = if text.trim().is_empty() {
            Value::Null
        } else if content_type
            .as_deref()
            .is_some_and(|t| !t.starts_with("application/json"))
        {
            // `/metrics` answers text; `text` has it.
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("bad JSON ({e}) in {text:?}"))
        };
        AdminReply {
            status: r.status.as_u16(),
            content_type,
            headers: r.headers.clone(),
            json,
            text,
        }
    }

    pub async fn get(&self, path: &str) -> AdminReply {
        self.call(Method::GET, path, None).await
    }

    /// `POST /backends` for `addr` in `group`, expecting 200 or 201.
    pub async fn register(&self, group: &str, addr: SocketAddr) -> AdminReply {
        let body = serde_json::json!({"group": group, "address": addr.to_string(), "weight": 1});
        let r = self
            .call(Method::POST, "/backends", Some(&body.to_string()))
            .await;
        assert!(
            r.status == 200 || r.status == 201,
            "register {addr}: {} {}",
            r.status,
            r.text
        );
        r
    }

    /// `DELETE /backends/{addr}`: returns once its in-flight requests are done.
    pub async fn unregister(&self, addr: SocketAddr) -> AdminReply {
        let r = self
            .call(Method::DELETE, &format!("/backends/{addr}"), None)
            .await;
        assert_eq!(r.status, 200, "unregister {addr}: {}", r.text);
        r
    }

    /// `POST /backends/{addr}/drain`.
    pub async fn drain(&self, addr: SocketAddr) -> AdminReply {
        let r = self
            .call(Method::POST, &format!("/backends/{addr}/drain"), None)
            .await;
        assert_eq!(r.status, 200, "drain {addr}: {}", r.text);
        r
    }

    /// Every backend of every group: `GET /backends`, flattened to
    /// `address → (group, member JSON)`.
    pub async fn backends(&self) -> HashMap<String, (String, Value)> {
        let r = self.get("/backends").await;
        assert_eq!(r.status, 200, "GET /backends: {}", r.text);
        let array = |v: &Value, what: &str| -> Vec<Value> {
            v.as_array()
                .unwrap_or_else(|| panic!("{what} is no array in {}", r.text))
                .clone()
        };
        let mut out = HashMap::new();
        for g in array(&r.json["groups"], "groups") {
            let name = g["name"].as_str().expect("group name").to_owned();
            for b in array(&g["backends"], "backends") {
                let addr = b["address"].as_str().expect("address").to_owned();
                out.insert(addr, (name.clone(), b));
            }
        }
        out
    }

    /// The member JSON of `addr`, if it is a member of any group.
    pub async fn member(&self, addr: SocketAddr) -> Option<Value> {
        self.backends()
            .await
            .remove(&addr.to_string())
            .map(|(_, j)| j)
    }

    /// The `state` of `addr` (`None` when not a member).
    pub async fn state(&self, addr: SocketAddr) -> Option<String> {
        self.member(addr)
            .await
            .and_then(|m| m["state"].as_str().map(str::to_owned))
    }

    /// Polls `GET /backends` until `addr` is in `state` (bounded by
    /// [`STEP`](super::STEP)); returns its member JSON.
    pub async fn wait_state(&self, addr: SocketAddr, state: &str) -> Value {
        within(&format!("{addr} to become {state}"), async {
            loop {
                if let Some(m) = self.member(addr).await
                    && m["state"].as_str() == Some(state)
                {
                    return m;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
    }

    /// Polls until `addr` is no member of any group.
    pub async fn wait_gone(&self, addr: SocketAddr) {
        within(&format!("{addr} to be removed"), async {
            while self.member(addr).await.is_some() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
    }
}

/// A DNS resolver whose answers the test scripts while the proxy runs.
#[derive(Debug, Default)]
pub struct ScriptedResolver {
    answers: Mutex<HashMap<String, Result<Vec<SocketAddr>, String>>>,
    lookups: std::sync::atomic::AtomicUsize,
}

impl ScriptedResolver {
    pub fn new() -> Arc<ScriptedResolver> {
        Arc::new(ScriptedResolver::default())
    }

    /// From now on, `host` resolves to `addrs` (ports as given).
    pub fn set(&self, host: &str, addrs: &[SocketAddr]) {
        self.answers
            .lock()
            .insert(host.to_owned(), Ok(addrs.to_vec()));
    }

    /// From now on, looking `host` up fails.
    pub fn fail(&self, host: &str) {
        self.answers
            .lock()
            .insert(host.to_owned(), Err("scripted failure".into()));
    }

    /// Lookups answered so far.
    pub fn lookups(&self) -> usize {
        self.lookups.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Waits until `n` more lookups than now have been answered: after that,
    /// the proxy has seen whatever was scripted before this call.
    pub async fn wait_lookups(&self, n: usize) {
        let target = self.lookups() + n;
        eventually("DNS lookups", || self.lookups() >= target).await;
    }
}

impl Resolver for ScriptedResolver {
    fn lookup<'a>(&'a self, host: &'a str, _port: u16) -> Lookup<'a> {
        let answer = self
            .answers
            .lock()
            .get(host)
            .cloned()
            .unwrap_or_else(|| Err(format!("{host}: unknown name")));
        self.lookups
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Box::pin(async move { answer.map_err(io::Error::other) })
    }
}

/// Starts the proxy in this process with `resolver` for backends given by
/// name; returns once its first listener accepts.
pub async fn start_with_resolver(
    config: &sluice::Config,
    resolver: Arc<dyn Resolver>,
) -> sluice::Server {
    let bound = sluice::bind(config).expect("bind proxy");
    let server = sluice::Server::start_with_resolver(bound, config, resolver).expect("start proxy");
    super::client::wait_ready(server.addrs()[0].0).await;
    server
}
