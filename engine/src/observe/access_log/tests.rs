use super::*;
use crate::addr::ClientAddr;
use crate::config::ShipConfig;
use crate::observe::Trail;
use crate::observe::log_writer::Open;
use http::{HeaderValue, Method, Uri, Version};
use parking_lot::Mutex;
use std::io::{self, Write};
use std::sync::mpsc::Receiver;
use std::time::Duration;

fn exchange(uri: &str, host: &[u8], ua: &[u8]) -> Exchange {
    Exchange {
        trail: Arc::new(Trail::default()),
        started: tokio::time::Instant::now(),
        started_wall: SystemTime::UNIX_EPOCH + Duration::from_millis(1_796_232_036_123),
        client: ClientAddr(([10, 0, 0, 7], 5555).into()),
        method: Method::GET,
        uri: uri.parse::<Uri>().unwrap(),
        host: Some(HeaderValue::from_bytes(host).unwrap()),
        referer: None,
        user_agent: Some(HeaderValue::from_bytes(ua).unwrap()),
        version: Version::HTTP_11,
        request_id: HeaderValue::from_static("rid-1"),
        status: 200,
        error: None,
        bytes_out: 5,
        completed: true,
        duration: Duration::from_micros(1500),
        compressed: None,
        span: None,
    }
}

/// A sink the test reads back.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.0.lock().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// An opener that blocks until `release` gets a message (a disk that
/// hangs, a FIFO with no reader), then writes into `sink`.
fn blocked(sink: Shared) -> (Open, mpsc::Sender<()>) {
    let (release, wait): (mpsc::Sender<()>, Receiver<()>) = mpsc::channel();
    let wait = Mutex::new(wait);
    let open: Open = Box::new(move || {
        let _ = wait.lock().recv();
        Ok(Box::new(sink.clone()))
    });
    (open, release)
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..2000 {
        if done() {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    panic!("never: {what}");
}

#[test]
fn a_blocked_writer_costs_lines_not_time_and_drops_are_counted_exactly() {
    let settings = AccessLogConfig {
        queue: 4,
        ..AccessLogConfig::default()
    };
    let sink = Shared::default();
    let (open, release) = blocked(sink.clone());
    let log = AccessLog::start_with(&settings, &Arc::from("t:1"), None, open);
    let e = exchange("/a", b"h.test", b"ua");
    // The writer is stuck opening: the queue takes 4, the other 6 are dropped,
    // and each record returns at once.
    for _ in 0..10 {
        log.record(&e, None);
    }
    assert_eq!(Counters::get(&log.counters.dropped), 6);
    assert_eq!(Counters::get(&log.counters.written), 0);
    release.send(()).unwrap();
    wait_for("4 lines written", || {
        Counters::get(&log.counters.written) == 4
    });
    let text = String::from_utf8(sink.0.lock().clone()).unwrap();
    assert_eq!(text.lines().count(), 4);
    for l in text.lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        assert_eq!(v["path"], "/a");
        assert_eq!(v["instance"], "t:1");
    }
    assert_eq!(Counters::get(&log.counters.dropped), 6);
}

#[test]
fn json_lines_escape_what_the_client_sent() {
    let e = exchange("/p?q=%22x", b"h\"ost\\\t", b"a\"b\tc\xff");
    let line = log_line::json(&e, Some("api"), "web:80");
    assert_eq!(line.matches('\n').count(), 1);
    assert!(line.ends_with('\n'));
    let v: serde_json::Value = serde_json::from_str(line.trim_end()).unwrap();
    assert_eq!(v["host"], "h\"ost\\\t");
    assert_eq!(v["user_agent"], "a\"b\tc\u{fffd}");
    assert_eq!(v["time"], "2026-12-02T17:20:36.123Z");
    assert_eq!(v["client"], "10.0.0.7:5555");
    assert_eq!(v["status"], 200);
    assert_eq!(v["bytes_out"], 5);
    assert_eq!(v["duration_ms"], 1.5);
    assert_eq!(v["upstream"], serde_json::Value::Null);
    assert_eq!(v["request_id"], "rid-1");
    assert_eq!(v["completed"], true);
    assert_eq!(v["route"], "api");
}

#[test]
fn combined_lines_keep_every_client_byte_inside_its_quotes() {
    let e = exchange("/p", b"h\"ost x=\"1", b"evil\" status=\"999\t\xc3\xa9");
    let line = log_line::combined(&e, Some("a\"pi"), "web:80");
    assert_eq!(line.matches('\n').count(), 1, "{line}");
    assert_eq!(
        line,
        "10.0.0.7 - - [02/Dec/2026:17:20:36 +0000] \"GET /p HTTP/1.1\" 200 5 \"-\" \
         \"evil\\x22 status=\\x22999\\x09\\xC3\\xA9\" host=\"h\\x22ost x=\\x221\" \
         request_id=\"rid-1\" rt=0.002 upstream=- uct=- uht=- retries=0 error=\"-\" \
         bytes_in=0 completed=1 route=\"a\\x22pi\" instance=\"web:80\"\n"
    );
    // Every `"` left is one of the format's own: an even number.
    assert_eq!(line.matches('"').count() % 2, 0);
}

fn ship_config(batch: usize, pending: usize) -> ShipConfig {
    ShipConfig {
        authority: "127.0.0.1:1".into(),
        path: "/".into(),
        batch,
        interval: Duration::from_millis(20),
        queue: 100,
        pending,
        source: None,
    }
}

#[test]
fn shipping_batches_in_order_and_a_dead_service_drops_the_oldest_batches() {
    let counters = Counters::default();
    let (tx, rx) = mpsc::sync_channel(100);
    for i in 0..10 {
        tx.send((SystemTime::UNIX_EPOCH, format!("{{\"n\":{i}}}\n")))
            .unwrap();
    }
    drop(tx);
    // Batches of 3, at most 2 kept: every POST fails, so on close all that
    // is left is dropped, and the count covers every entry exactly.
    let mut posts = 0;
    ship::run(rx, &ship_config(3, 2), "src", &counters, |_| {
        posts += 1;
        Err(io::Error::other("down"))
    });
    assert!(posts >= 1);
    assert_eq!(Counters::get(&counters.shipped), 0);
    assert_eq!(Counters::get(&counters.ship_dropped), 10);

    let (tx, rx) = mpsc::sync_channel(100);
    for i in 0..7 {
        tx.send((SystemTime::UNIX_EPOCH, format!("{{\"n\":{i}}}\n")))
            .unwrap();
    }
    drop(tx);
    let counters = Counters::default();
    let mut bodies: Vec<serde_json::Value> = Vec::new();
    ship::run(rx, &ship_config(3, 16), "src", &counters, |b| {
        bodies.push(serde_json::from_slice(b).unwrap());
        Ok(())
    });
    assert_eq!(Counters::get(&counters.shipped), 7);
    let sizes: Vec<usize> = bodies.iter().map(|b| b.as_array().unwrap().len()).collect();
    assert_eq!(sizes, [3, 3, 1]);
    let messages: Vec<String> = bodies
        .iter()
        .flat_map(|b| b.as_array().unwrap().clone())
        .map(|e| {
            assert_eq!(e["source"], "src");
            assert_eq!(e["level"], "INFO");
            assert_eq!(e["timestamp"], "1970-01-01T00:00:00.000Z");
            e["message"].as_str().unwrap().to_owned()
        })
        .collect();
    let want: Vec<String> = (0..7).map(|i| format!("{{\"n\":{i}}}")).collect();
    assert_eq!(messages, want);
}
