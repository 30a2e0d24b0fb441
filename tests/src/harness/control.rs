//! Control-plane plumbing: an admin API client, a small JSON reader for its
//! answers, a scripted DNS [`Resolver`], and the real `sluice` binary for the
//! signal tests.
//!
//! The JSON reader exists so the e2e crate needs no JSON dependency: the
//! admin API's answers are small and the tests only walk them.

use super::client::{H1, collect};
use super::origin::reply;
use super::{STEP, eventually, within};
use http::{Method, Request};
use parking_lot::Mutex;
use sluice::upstream::discovery::{Lookup, Resolver};
use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// A parsed JSON value.
#[derive(Clone, Debug, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    Num(f64),
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>),
}

static NULL: Json = Json::Null;

impl Json {
    /// Parses `text`, panicking (failing the test) on malformed JSON.
    pub fn parse(text: &str) -> Json {
        let mut p = Parser {
            s: text.as_bytes(),
            i: 0,
        };
        let v = p
            .value()
            .unwrap_or_else(|e| panic!("bad JSON ({e}) in {text:?}"));
        p.ws();
        assert_eq!(p.i, p.s.len(), "trailing bytes after JSON in {text:?}");
        v
    }

    /// The field `key` of an object; `Null` when absent or not an object.
    pub fn get(&self, key: &str) -> &Json {
        match self {
            Json::Obj(fields) => fields
                .iter()
                .find(|(k, _)| k == key)
                .map_or(&NULL, |(_, v)| v),
            _ => &NULL,
        }
    }

    pub fn has(&self, key: &str) -> bool {
        matches!(self, Json::Obj(f) if f.iter().any(|(k, _)| k == key))
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Json::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Json::Num(n) if *n >= 0.0 && n.fract() == 0.0 => Some(*n as u64),
            _ => None,
        }
    }

    pub fn as_array(&self) -> &[Json] {
        match self {
            Json::Arr(a) => a,
            _ => &[],
        }
    }
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }

    fn eat(&mut self, lit: &str) -> Result<(), String> {
        if self.s[self.i..].starts_with(lit.as_bytes()) {
            self.i += lit.len();
            Ok(())
        } else {
            Err(format!("expected {lit:?} at {}", self.i))
        }
    }

    fn value(&mut self) -> Result<Json, String> {
        self.ws();
        match self.s.get(self.i) {
            None => Err("unexpected end".into()),
            Some(b'n') => self.eat("null").map(|()| Json::Null),
            Some(b't') => self.eat("true").map(|()| Json::Bool(true)),
            Some(b'f') => self.eat("false").map(|()| Json::Bool(false)),
            Some(b'"') => self.string().map(Json::Str),
            Some(b'[') => {
                self.i += 1;
                let mut items = Vec::new();
                self.ws();
                if self.s.get(self.i) == Some(&b']') {
                    self.i += 1;
                    return Ok(Json::Arr(items));
                }
                loop {
                    items.push(self.value()?);
                    self.ws();
                    match self.s.get(self.i) {
                        Some(b',') => self.i += 1,
                        Some(b']') => {
                            self.i += 1;
                            return Ok(Json::Arr(items));
                        }
                        _ => return Err(format!("expected , or ] at {}", self.i)),
                    }
                }
            }
            Some(b'{') => {
                self.i += 1;
                let mut fields = Vec::new();
                self.ws();
                if self.s.get(self.i) == Some(&b'}') {
                    self.i += 1;
                    return Ok(Json::Obj(fields));
                }
                loop {
                    self.ws();
                    let k = self.string()?;
                    self.ws();
                    self.eat(":")?;
                    fields.push((k, self.value()?));
                    self.ws();
                    match self.s.get(self.i) {
                        Some(b',') => self.i += 1,
                        Some(b'}') => {
                            self.i += 1;
                            return Ok(Json::Obj(fields));
                        }
                        _ => return Err(format!("expected , or }} at {}", self.i)),
                    }
                }
            }
            Some(_) => {
                let start = self.i;
                while self.i < self.s.len()
                    && matches!(
                        self.s[self.i],
                        b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9'
                    )
                {
                    self.i += 1;
                }
                std::str::from_utf8(&self.s[start..self.i])
                    .ok()
                    .and_then(|t| t.parse().ok())
                    .map(Json::Num)
                    .ok_or_else(|| format!("bad number at {start}"))
            }
        }
    }

    fn string(&mut self) -> Result<String, String> {
        self.eat("\"")?;
        let mut out = Vec::new();
        loop {
            let Some(&c) = self.s.get(self.i) else {
                return Err("unterminated string".into());
            };
            self.i += 1;
            match c {
                b'"' => return String::from_utf8(out).map_err(|e| e.to_string()),
                b'\\' => {
                    let e = *self.s.get(self.i).ok_or("bad escape")?;
                    self.i += 1;
                    match e {
                        b'n' => out.push(b'\n'),
                        b't' => out.push(b'\t'),
                        b'r' => out.push(b'\r'),
                        b'b' => out.push(8),
                        b'f' => out.push(12),
                        b'u' => {
                            let hex = self.s.get(self.i..self.i + 4).ok_or("bad \\u")?;
                            self.i += 4;
                            let cp = u32::from_str_radix(
                                std::str::from_utf8(hex).map_err(|e| e.to_string())?,
                                16,
                            )
                            .map_err(|e| e.to_string())?;
                            let ch = char::from_u32(cp).unwrap_or('\u{fffd}');
                            out.extend(ch.to_string().as_bytes());
                        }
                        other => out.push(other),
                    }
                }
                other => out.push(other),
            }
        }
    }
}

/// A reply from the admin API: status and parsed JSON body.
#[derive(Debug)]
pub struct AdminReply {
    pub status: u16,
    pub content_type: Option<String>,
    pub json: Json,
    pub text: String,
}

impl AdminReply {
    /// The `error` string of a 4xx/5xx answer.
    pub fn error(&self) -> &str {
        self.json
            .get("error")
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
        let mut c = H1::connect(self.addr).await;
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", "admin.test");
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let req = match body {
            Some(b) => req
                .header("content-type", "application/json")
                .body(reply::full(b.to_owned())),
            None => req.body(reply::empty()),
        }
        .expect("admin request");
        let r = collect(c.send(req).await).await;
        let text = r.text().to_owned();
        let content_type = r.header("content-type").map(str::to_owned);
        let json = if text.trim().is_empty() {
            Json::Null
        } else {
            Json::parse(&text)
        };
        AdminReply {
            status: r.status.as_u16(),
            content_type,
            json,
            text,
        }
    }

    pub async fn get(&self, path: &str) -> AdminReply {
        self.call(Method::GET, path, None).await
    }

    /// `POST /backends` for `addr` in `group`, expecting 200 or 201.
    pub async fn register(&self, group: &str, addr: SocketAddr) -> AdminReply {
        let body = format!(r#"{{"group":"{group}","address":"{addr}","weight":1}}"#);
        let r = self.call(Method::POST, "/backends", Some(&body)).await;
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
    pub async fn backends(&self) -> HashMap<String, (String, Json)> {
        let r = self.get("/backends").await;
        assert_eq!(r.status, 200, "GET /backends: {}", r.text);
        let mut out = HashMap::new();
        for g in r.json.get("groups").as_array() {
            let name = g.get("name").as_str().expect("group name").to_owned();
            for b in g.get("backends").as_array() {
                let addr = b.get("address").as_str().expect("address").to_owned();
                out.insert(addr, (name.clone(), b.clone()));
            }
        }
        out
    }

    /// The member JSON of `addr`, if it is a member of any group.
    pub async fn member(&self, addr: SocketAddr) -> Option<Json> {
        self.backends()
            .await
            .remove(&addr.to_string())
            .map(|(_, j)| j)
    }

    /// The `state` of `addr` (`None` when not a member).
    pub async fn state(&self, addr: SocketAddr) -> Option<String> {
        self.member(addr)
            .await
            .and_then(|m| m.get("state").as_str().map(str::to_owned))
    }

    /// Polls `GET /backends` until `addr` is in `state` (bounded by [`STEP`]);
    /// returns its member JSON.
    pub async fn wait_state(&self, addr: SocketAddr, state: &str) -> Json {
        within(&format!("{addr} to become {state}"), async {
            loop {
                if let Some(m) = self.member(addr).await
                    && m.get("state").as_str() == Some(state)
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

/// The `sluice` binary, built once per test run into the same target
/// directory as this test binary (`<target>/debug/deps/e2e-…` → `<target>/debug/sluice`).
pub fn sluice_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let exe = std::env::current_exe().expect("current exe");
        let profile_dir = exe
            .parent()
            .and_then(|deps| deps.parent())
            .expect("<target>/<profile>/deps");
        let target_dir = profile_dir.parent().expect("<target>");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = std::process::Command::new(cargo)
            .args(["build", "--quiet", "-p", "sluice", "--bin", "sluice"])
            .env("CARGO_TARGET_DIR", target_dir)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("run cargo build");
        assert!(status.success(), "cargo build -p sluice failed");
        let bin = profile_dir.join("sluice");
        assert!(bin.exists(), "{} not built", bin.display());
        bin
    })
    .clone()
}

/// Waits (bounded) for a child process to exit; returns its status.
pub async fn wait_exit(child: &mut std::process::Child) -> std::process::ExitStatus {
    let waited = tokio::time::timeout(STEP, async {
        loop {
            if let Some(s) = child.try_wait().expect("wait for child") {
                return s;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    match waited {
        Ok(s) => s,
        Err(_) => {
            let _ = child.kill();
            panic!("child did not exit within {STEP:?}");
        }
    }
}

/// Sends `signal` (e.g. `"TERM"`) to process `pid` with kill(1).
pub fn signal(pid: u32, signal: &str) {
    let status = std::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{signal} {pid} failed");
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
