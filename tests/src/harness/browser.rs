//! A headless Chromium for the admin status page, driven over the W3C
//! WebDriver protocol: plain HTTP and JSON to a `chromedriver` this process
//! starts on a free loopback port (Debian's `chromium` and `chromium-driver`
//! packages). Chromedriver, and the Chromium it starts, run in their own
//! process group, killed when the [`Browser`] drops, so a failed test leaves
//! no browser behind. Waits poll the DOM with a deadline; none sleeps and
//! hopes.
//!
//! Without the two programs a browser test fails, naming the packages to
//! install, unless `SLUICE_TEST_SKIP_BROWSER=1` explicitly allows it to
//! skip ([`Browser::start`] returns `None`).

use super::BoxError;
use super::client::{H1, collect};
use super::origin::reply;
use http::{Method, Request};
use serde_json::{Value, json};
use std::net::{SocketAddr, TcpListener};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tokio::sync::{Semaphore, SemaphorePermit};

/// Set to `1` to let browser tests pass without Chromium (they print why).
pub const SKIP_ENV: &str = "SLUICE_TEST_SKIP_BROWSER";

/// The longest one browser step may take. Longer than the harness's
/// [`STEP`](super::STEP): Chromium starting on a loaded 2-core machine is
/// slow, and a wait that is too short fails a correct page.
pub const BROWSER_STEP: Duration = Duration::from_secs(90);

/// One browser at a time in this test binary: each is several processes
/// and hundreds of MB, and the page's one-second refresh must keep up.
static ONE_AT_A_TIME: Semaphore = Semaphore::const_new(1);

/// Chromium's flags: headless, no sandbox (containers run tests as root),
/// nothing that calls home or differs between runs.
const FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-dev-shm-usage",
    "--no-proxy-server",
    "--hide-scrollbars",
    "--force-device-scale-factor=1",
    "--lang=en-US",
];

/// A Chromium session; dropping it kills chromedriver and the browser.
pub struct Browser {
    driver: Child,
    addr: SocketAddr,
    session: String,
    profile: tempfile::TempDir,
    _turn: SemaphorePermit<'static>,
}

impl Drop for Browser {
    fn drop(&mut self) {
        // The whole group: chromedriver and every Chromium process.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.driver.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// `name` on `PATH`, if it is there.
fn which(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

fn free_port() -> u16 {
    TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

impl Browser {
    /// Starts chromedriver and a headless Chromium with a fresh profile and
    /// a `width`×`height` window. `None` only when the programs are missing
    /// and [`SKIP_ENV`] allows skipping; missing otherwise fails the test.
    pub async fn start(width: u32, height: u32) -> Option<Browser> {
        let driver = which("chromedriver");
        let chromium = ["chromium", "chromium-browser", "google-chrome"]
            .into_iter()
            .find_map(which);
        let (Some(driver), Some(chromium)) = (driver, chromium) else {
            let missing = "chromium and chromedriver are needed for the status page tests \
                 (Debian: apt-get install chromium chromium-driver)";
            if std::env::var(SKIP_ENV).as_deref() == Ok("1") {
                eprintln!("skipped: {missing}; {SKIP_ENV}=1");
                return None;
            }
            panic!("{missing}; set {SKIP_ENV}=1 to skip these tests instead");
        };
        let turn = ONE_AT_A_TIME.acquire().await.expect("never closed");
        let profile = tempfile::tempdir().expect("a profile directory");
        let port = free_port();
        let log = profile.path().join("chromedriver.log");
        let child = Command::new(&driver)
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own group, so that Drop kills Chromium with it.
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", driver.display()));
        let mut browser = Browser {
            driver: child,
            addr: ([127, 0, 0, 1], port).into(),
            session: String::new(),
            profile,
            _turn: turn,
        };
        browser.wait_driver().await;
        let mut args: Vec<String> = FLAGS.iter().map(|f| (*f).to_owned()).collect();
        args.push(format!("--window-size={width},{height}"));
        args.push(format!(
            "--user-data-dir={}",
            browser.profile.path().join("profile").display()
        ));
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium, "args": args},
            "timeouts": {"script": 30_000, "pageLoad": 60_000},
        }}});
        let created = browser.call(Method::POST, "/session", Some(caps)).await;
        browser.session = created["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session id in {created}"))
            .to_owned();
        Some(browser)
    }

    /// Polls chromedriver's `/status` until it is ready.
    async fn wait_driver(&mut self) {
        let deadline = tokio::time::Instant::now() + BROWSER_STEP;
        loop {
            if let Ok(v) = self.request(Method::GET, "/status", None).await
                && v["value"]["ready"] == true
            {
                return;
            }
            if let Ok(Some(status)) = self.driver.try_wait() {
                panic!("chromedriver exited ({status}): {}", self.log());
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "chromedriver not ready within {BROWSER_STEP:?}: {}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The end of chromedriver's log, for failure messages.
    fn log(&self) -> String {
        let text = std::fs::read_to_string(self.profile.path().join("chromedriver.log"))
            .unwrap_or_default();
        let start = text.len().saturating_sub(4000);
        text.get(start..).unwrap_or_default().to_owned()
    }

    /// One WebDriver call: the reply's JSON, or an error for a refused
    /// connection or a non-JSON answer.
    async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, BoxError> {
        let tcp =
            tokio::time::timeout(BROWSER_STEP, tokio::net::TcpStream::connect(self.addr)).await??;
        let mut c = H1::handshake(hyper_util::rt::TokioIo::new(tcp)).await;
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", self.addr.to_string())
            .header("content-type", "application/json");
        let req = req.body(match body {
            Some(b) => reply::full(b.to_string()),
            None => reply::empty(),
        })?;
        let r =
            tokio::time::timeout(BROWSER_STEP, async { collect(c.send(req).await).await }).await?;
        Ok(serde_json::from_slice(&r.body)?)
    }

    /// A WebDriver call that must succeed: its `value`.
    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let what = format!("{method} {path}");
        let v = self
            .request(method, path, body)
            .await
            .unwrap_or_else(|e| panic!("WebDriver {what}: {e}; log: {}", self.log()));
        if let Some(error) = v["value"]["error"].as_str() {
            panic!(
                "WebDriver {what}: {error}: {}",
                v["value"]["message"].as_str().unwrap_or_default()
            );
        }
        v["value"].clone()
    }

    fn at(&self, path: &str) -> String {
        format!("/session/{}{path}", self.session)
    }

    /// Navigates to `url` and waits for the page to load.
    pub async fn goto(&self, url: &str) {
        self.call(Method::POST, &self.at("/url"), Some(json!({"url": url})))
            .await;
    }

    /// Runs `script` (a function body; `arguments` holds `args`) in the page
    /// and returns what it returns.
    pub async fn eval(&self, script: &str, args: Value) -> Value {
        self.call(
            Method::POST,
            &self.at("/execute/sync"),
            Some(json!({"script": script, "args": args})),
        )
        .await
    }

    /// Runs `script` until it returns something other than `null` or
    /// `false` (polling the DOM), and returns that; fails the test with
    /// `what` and the page's text after [`BROWSER_STEP`].
    pub async fn wait_for(&self, what: &str, script: &str, args: Value) -> Value {
        let deadline = tokio::time::Instant::now() + BROWSER_STEP;
        loop {
            let v = self.eval(script, args.clone()).await;
            if !v.is_null() && v != false {
                return v;
            }
            if tokio::time::Instant::now() >= deadline {
                let text = self
                    .eval("return document.body.innerText.slice(0, 3000);", json!([]))
                    .await;
                panic!(
                    "timed out after {BROWSER_STEP:?} waiting for {what}; the page says:\n{}",
                    text.as_str().unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The WebDriver id of the element `css` selects.
    async fn element(&self, css: &str) -> String {
        let v = self
            .call(
                Method::POST,
                &self.at("/element"),
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        // The W3C element key.
        v["element-6066-11e4-a52e-4f735466cecf"]
            .as_str()
            .unwrap_or_else(|| panic!("no element for {css}: {v}"))
            .to_owned()
    }

    /// Types `text` into the element `css` selects, as a user would.
    pub async fn type_into(&self, css: &str, text: &str) {
        let id = self.element(css).await;
        self.call(
            Method::POST,
            &self.at(&format!("/element/{id}/value")),
            Some(json!({"text": text})),
        )
        .await;
    }

    /// Clicks the element `css` selects.
    pub async fn click(&self, css: &str) {
        let id = self.element(css).await;
        self.call(
            Method::POST,
            &self.at(&format!("/element/{id}/click")),
            Some(json!({})),
        )
        .await;
    }

    /// Resizes the window (its outer size).
    pub async fn resize(&self, width: u32, height: u32) {
        self.call(
            Method::POST,
            &self.at("/window/rect"),
            Some(json!({"width": width, "height": height})),
        )
        .await;
    }

    /// A PNG of the visible page.
    pub async fn screenshot(&self) -> Vec<u8> {
        let v = self.call(Method::GET, &self.at("/screenshot"), None).await;
        let png = decode_base64(v.as_str().expect("base64 screenshot"));
        assert!(
            png.starts_with(b"\x89PNG\r\n\x1a\n"),
            "the screenshot is no PNG"
        );
        png
    }

    /// Writes a screenshot to `path` (creating its folder).
    pub async fn save_screenshot(&self, path: &Path) {
        let png = self.screenshot().await;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("screenshot folder");
        }
        std::fs::write(path, png).expect("write the screenshot");
    }
}

/// Standard base64 (RFC 4648 §4), padding and whitespace ignored: what
/// WebDriver sends screenshots in.
fn decode_base64(text: &str) -> Vec<u8> {
    let value = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("not base64: {:?}", char::from(c)),
        }
    };
    let digits: Vec<u32> = text
        .bytes()
        .filter(|c| !c.is_ascii_whitespace() && *c != b'=')
        .map(value)
        .collect();
    let mut out = Vec::with_capacity(digits.len() * 3 / 4);
    for chunk in digits.chunks(4) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, d)| n | d << (18 - 6 * i));
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64_decodes_rfc_4648_vectors() {
        for (text, want) in [
            ("", ""),
            ("Zg==", "f"),
            ("Zm8=", "fo"),
            ("Zm9v", "foo"),
            ("Zm9vYg==", "foob"),
            ("Zm9vYmE=", "fooba"),
            ("Zm9vYmFy", "foobar"),
        ] {
            assert_eq!(super::decode_base64(text), want.as_bytes(), "{text}");
        }
    }
}
