//! `max_requests_per_backend`, `max_queue` and `queue_timeout`.

use crate::config::validate::parse;
use crate::config::{ConfigError, LimitConfig, defaults};
use std::path::Path;
use std::time::Duration;

fn group(keys: &str) -> Result<Option<LimitConfig>, ConfigError> {
    let text = format!(
        "[[listener]]\naddress = \"127.0.0.1:8080\"\n[[route]]\nupstream = \"api\"\n\
         [upstream.api]\nbackends = [\"127.0.0.1:9001\"]\n{keys}\n"
    );
    parse(&text, Path::new("test.toml")).map(|c| c.upstreams[0].limit)
}

#[test]
fn no_limit_by_default() {
    assert_eq!(group("").expect("valid"), None);
    assert_eq!(group("max_requests_per_backend = 0").expect("valid"), None);
}

#[test]
fn a_limit_gets_the_default_queue() {
    let l = group("max_requests_per_backend = 4").expect("valid");
    assert_eq!(
        l,
        Some(LimitConfig {
            per_backend: 4,
            max_queue: defaults::MAX_QUEUE,
            queue_timeout: defaults::QUEUE_TIMEOUT,
        })
    );
}

#[test]
fn queue_keys_are_read() {
    let l = group("max_requests_per_backend = 1\nmax_queue = 0\nqueue_timeout = \"250ms\"")
        .expect("valid")
        .expect("a limit");
    assert_eq!(
        (l.max_queue, l.queue_timeout),
        (0, Duration::from_millis(250))
    );
}

#[test]
fn queue_keys_without_a_limit_are_refused() {
    for keys in [
        "max_queue = 10",
        "queue_timeout = \"1s\"",
        "max_requests_per_backend = 0\nmax_queue = 3",
    ] {
        let e = group(keys).expect_err(keys);
        assert!(matches!(e, ConfigError::NeedsLimit { .. }), "{keys}: {e}");
        assert!(
            e.to_string().contains("needs max_requests_per_backend"),
            "{e}"
        );
    }
    let e = group("max_queue = 10").expect_err("orphan");
    assert!(e.to_string().contains("upstream.api.max_queue"), "{e}");
}

#[test]
fn values_past_their_caps_are_refused() {
    let e = group("max_requests_per_backend = 1000001").expect_err("too large");
    assert!(
        e.to_string()
            .contains("upstream.api.max_requests_per_backend: must be between 0 and 1000000"),
        "{e}"
    );
    let e = group("max_requests_per_backend = 1\nmax_queue = 100001").expect_err("too large");
    assert!(
        e.to_string()
            .contains("upstream.api.max_queue: must be between 0 and 100000"),
        "{e}"
    );
    let e = group("max_requests_per_backend = 1\nqueue_timeout = \"0s\"").expect_err("zero");
    assert!(e.to_string().contains("upstream.api.queue_timeout"), "{e}");
    let e = group("max_requests_per_backend = -1").expect_err("negative");
    assert!(e.to_string().contains("max_requests_per_backend"), "{e}");
}
