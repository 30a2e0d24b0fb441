//! The rules of [`super`], one test per kind of mistake.

use super::*;
use crate::balance::HashOn;
use crate::config::At;

fn check(text: &str) -> Result<Config, ConfigError> {
    parse(text, Path::new("test.toml"))
}

const GOOD: &str = r#"
workers = 2
[[listener]]
address = "127.0.0.1:8080"

[[route]]
host = "*.example.com"
path = "/api"
upstream = "api"

[[route]]
upstream = "web"

[upstream.api]
backends = ["127.0.0.1:9001", { address = "127.0.0.1:9002", weight = 3 }]
balance = "hash:header:x-user"

[upstream.web]
backends = ["127.0.0.1:9003"]
protocol = "h2c"

[timeouts]
upstream_connect = "250ms"
client_body = "5s"
"#;

#[test]
fn a_good_file_validates() {
    let c = check(GOOD).expect("valid");
    assert_eq!(c.workers, 2);
    assert_eq!(c.upstreams.len(), 2);
    assert_eq!(c.routes[0].host.as_deref(), Some("*.example.com"));
    assert_eq!(c.timeouts.upstream_connect, Duration::from_millis(250));
    assert_eq!(c.timeouts.client_body, Duration::from_secs(5));
    let api = &c.upstreams[c.routes[0].upstream];
    assert_eq!(api.backends[1].1, 3);
    assert!(matches!(api.policy, Policy::Hash(HashOn::Header(_))));
    assert_eq!(
        c.upstreams[c.routes[1].upstream].protocol,
        UpstreamProtocol::H2c
    );
}

#[test]
fn unknown_keys_are_rejected_with_their_line() {
    let text = "[[listener]]\naddress = \"127.0.0.1:1\"\nbogus = 1\n";
    let err = check(text).unwrap_err().to_string();
    assert!(err.starts_with("test.toml:3:"), "{err}");
    assert!(err.contains("bogus"), "{err}");
}

#[test]
fn bad_values_name_line_field_and_problem() {
    let text = "[[listener]]\naddress = \"127.0.0.1:1\"\n[upstream.a]\nbackends = [\"127.0.0.1:2\"]\nbalance = \"fastest\"\n";
    let err = check(text).unwrap_err().to_string();
    assert!(
        err.starts_with("test.toml:5:11: upstream.a.balance: unknown policy"),
        "{err}"
    );

    let text = "[[listener]]\naddress = \"nope\"\n";
    let err = check(text).unwrap_err().to_string();
    assert!(
        err.starts_with("test.toml:2:11: listener[0].address"),
        "{err}"
    );

    let text = "[[listener]]\naddress = \"127.0.0.1:1\"\n[[route]]\nupstream = \"missing\"\n";
    let err = check(text).unwrap_err().to_string();
    assert!(
        err.contains("4:12: route[0].upstream: no upstream named \"missing\""),
        "{err}"
    );

    let text =
        "[[listener]]\naddress = \"127.0.0.1:1\"\n[timeouts]\nupstream_connect = \"3 parsecs\"\n";
    assert!(
        check(text)
            .unwrap_err()
            .to_string()
            .contains("timeouts.upstream_connect")
    );
}

#[test]
fn values_of_the_wrong_type_name_their_field() {
    let err = check("\n\nworkers = \"two\"\n").unwrap_err();
    assert!(matches!(err, ConfigError::Shape { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "test.toml:3:11: workers: invalid type: string \"two\", expected usize"
    );

    let text = "[[listener]]\naddress = \"127.0.0.1:1\"\n[[listener]]\naddress = 5\n";
    let err = check(text).unwrap_err().to_string();
    assert!(
        err.starts_with("test.toml:4:11: listener[1].address: invalid type: integer `5`"),
        "{err}"
    );

    let text = "[[listener]]\naddress = \"127.0.0.1:1\"\n[upstream.a]\nbackends = [1]\n";
    let err = check(text).unwrap_err().to_string();
    assert!(
        err.starts_with("test.toml:4:12: upstream.a.backends[0]: "),
        "{err}"
    );

    let text = "[[listener]]\nbacklog = 5\n";
    let err = check(text).unwrap_err().to_string();
    assert_eq!(err, "test.toml:1:1: listener[0]: missing field `address`");
}

#[test]
fn text_that_is_not_toml_names_its_place() {
    let err = check("workers = = 2\n").unwrap_err();
    assert!(matches!(err, ConfigError::Syntax { .. }), "{err:?}");
    assert!(err.to_string().starts_with("test.toml:1:11: "), "{err}");
    assert_eq!(err.line_column(), Some((1, 11)));
}

#[test]
fn every_file_error_has_a_line_and_column() {
    let err = check("[[listener]]\naddress = \"127.0.0.1:1\"\nbacklog = 0\n").unwrap_err();
    assert_eq!(err.line_column(), Some((3, 11)), "{err}");
    assert!(matches!(err.at(), Some(At::File { field, .. }) if field == "listener[0].backlog"));
    assert_eq!(check("").unwrap_err().line_column(), Some((1, 1)));
    assert_eq!(ConfigError::NothingToDo.line_column(), None);
}

#[test]
fn two_listeners_on_one_address_are_rejected_but_port_zero_may_repeat() {
    let text =
        "[[listener]]\naddress = \"127.0.0.1:8080\"\n[[listener]]\naddress = \"127.0.0.1:8080\"\n";
    let err = check(text).unwrap_err();
    assert!(
        matches!(err, ConfigError::DuplicateListener { first: 0, .. }),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "test.toml:4:11: listener[1].address: 127.0.0.1:8080 is already the address of listener[0]"
    );
    // Another IP or another port is another address.
    let text = "[[listener]]\naddress = \"127.0.0.1:8080\"\n[[listener]]\naddress = \"127.0.0.2:8080\"\n[[listener]]\naddress = \"127.0.0.1:8081\"\n";
    assert_eq!(check(text).expect("valid").listeners.len(), 3);
    let text = "[[listener]]\naddress = \"127.0.0.1:0\"\n[[listener]]\naddress = \"127.0.0.1:0\"\n";
    assert_eq!(check(text).expect("valid").listeners.len(), 2);
}

#[test]
fn share_port_is_off_unless_asked_and_needs_reuse_port() {
    let c = check("[[listener]]\naddress = \"127.0.0.1:1\"\n").expect("valid");
    assert!(!c.listeners[0].share_port);
    let text = "[[listener]]\naddress = \"127.0.0.1:1\"\nshare_port = true\n";
    assert!(check(text).expect("valid").listeners[0].share_port);
    let text = "[[listener]]\naddress = \"127.0.0.1:1\"\nreuse_port = false\nshare_port = true\n";
    let err = check(text).unwrap_err();
    assert!(
        matches!(err, ConfigError::ShareWithoutReusePort { .. }),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .starts_with("test.toml:4:14: listener[0].share_port: "),
        "{err}"
    );
}

#[test]
fn compression_defaults_and_route_switch() {
    let c = check(GOOD).expect("valid");
    assert!(!c.compression.enabled, "off unless asked");
    assert_eq!(c.compression.level, 1);
    assert_eq!(c.compression.min_length, 1024);
    assert!(c.compression.types.iter().any(|t| t == "text/*"));
    assert_eq!(c.routes[0].compress, None);

    let text = "[[listener]]\naddress = \"127.0.0.1:1\"\n[compression]\nenabled = true\nlevel = 6\nmin_length = 0\ntypes = [\"Text/HTML\", \"+json\", \"application/*\"]\n[upstream.a]\nbackends = [\"127.0.0.1:2\"]\n[[route]]\nupstream = \"a\"\ncompress = false\n";
    let c = check(text).expect("valid");
    assert!(c.compression.enabled);
    assert_eq!(c.compression.level, 6);
    assert_eq!(c.compression.min_length, 0);
    assert_eq!(c.compression.types, ["text/html", "+json", "application/*"]);
    assert_eq!(c.routes[0].compress, Some(false));
}

#[test]
fn compression_algorithms_levels_and_windows() {
    use crate::proxy::compress::Encoding;
    let c = check(GOOD).expect("valid");
    assert_eq!(
        c.compression.algorithms,
        [Encoding::Gzip],
        "gzip only by default"
    );
    assert_eq!(c.compression.brotli_level, 3);
    assert_eq!(c.compression.brotli_window_log, 18);
    assert_eq!(c.compression.zstd_level, 3);
    assert_eq!(c.compression.zstd_window_log, 18);

    let text = "[[listener]]\naddress = \"127.0.0.1:1\"\n[compression]\nalgorithms = [\"zstd\", \"BR\", \"gzip\"]\nbrotli_level = 11\nbrotli_window_log = 24\nzstd_level = 19\nzstd_window_log = 10\n";
    let c = check(text).expect("valid");
    assert_eq!(
        c.compression.algorithms,
        [Encoding::Zstd, Encoding::Br, Encoding::Gzip]
    );
    assert_eq!(c.compression.brotli_level, 11);
    assert_eq!(c.compression.brotli_window_log, 24);
    assert_eq!(c.compression.zstd_level, 19);
    assert_eq!(c.compression.zstd_window_log, 10);

    let bad = |body: &str, want: &str| {
        let text = format!("[[listener]]\naddress = \"127.0.0.1:1\"\n[compression]\n{body}\n");
        let err = check(&text).unwrap_err().to_string();
        assert!(err.starts_with(want), "{body}: {err}");
    };
    bad(
        "algorithms = [\"gzip\", \"deflate\"]",
        "test.toml:4:14: compression.algorithms[1]: unknown algorithm \"deflate\"",
    );
    bad(
        "algorithms = [\"br\", \"gzip\", \"br\"]",
        "test.toml:4:14: compression.algorithms[2]: \"br\" is listed twice",
    );
    bad(
        "algorithms = []",
        "test.toml:4:14: compression.algorithms: list at least one",
    );
    bad(
        "brotli_level = 12",
        "test.toml:4:16: compression.brotli_level: must be between 0 and 11",
    );
    bad(
        "zstd_level = 0",
        "test.toml:4:14: compression.zstd_level: must be between 1 and 19",
    );
    bad(
        "zstd_level = 22",
        "test.toml:4:14: compression.zstd_level: must be between 1 and 19",
    );
    // RFC 9659: an HTTP zstd window is at most 8 MiB.
    bad(
        "zstd_window_log = 24",
        "test.toml:4:19: compression.zstd_window_log: must be between 10 and 23",
    );
    bad(
        "brotli_window_log = 9",
        "test.toml:4:21: compression.brotli_window_log: must be between 10 and 24",
    );
}

#[test]
fn bad_compression_values_name_their_line() {
    let text = "[[listener]]\naddress = \"127.0.0.1:1\"\n[compression]\nlevel = 10\n";
    let err = check(text).unwrap_err().to_string();
    assert!(
        err.starts_with("test.toml:4:9: compression.level: must be between 1 and 9"),
        "{err}"
    );

    let text = "[[listener]]\naddress = \"127.0.0.1:1\"\n[compression]\ntypes = [\"text/html\", \"json\"]\n";
    let err = check(text).unwrap_err().to_string();
    assert!(
        err.starts_with("test.toml:4:9: compression.types[1]: \"json\" is not"),
        "{err}"
    );

    let text = "[[listener]]\naddress = \"127.0.0.1:1\"\n[compression]\ngzip = true\n";
    let err = check(text).unwrap_err().to_string();
    assert!(err.starts_with("test.toml:4:"), "{err}");
    assert!(err.contains("gzip"), "{err}");
}

#[test]
fn the_shipped_example_validates() {
    let text = include_str!("../../../examples/sluice.toml");
    let c = check(text).expect("engine/examples/sluice.toml must stay valid");
    assert!(c.admin.is_some());
    let api = c
        .upstreams
        .iter()
        .find(|u| u.name == "api")
        .expect("api group");
    assert_eq!(api.health.as_ref().map(|h| h.fall), Some(3));
    assert_eq!(api.passive.consecutive_5xx, 5);
    assert_eq!(api.passive.half_open_successes, 3);
    assert_eq!(api.slow_start, Duration::ZERO);
    assert!(c.tracing.enabled && c.tracing.otlp.is_none());
    // Its [tracing] keys as documented, with the endpoint uncommented.
    let exporting = text.replace("# otlp_endpoint", "otlp_endpoint");
    let otlp = check(&exporting)
        .expect("valid")
        .tracing
        .otlp
        .expect("otlp");
    assert_eq!(otlp.path, "/v1/traces");
    assert_eq!((otlp.batch_size, otlp.max_queue), (512, 2048));
}

#[test]
fn the_global_rate_limit_example_validates() {
    let text = include_str!("../../../examples/global-rate-limit.toml");
    let c = check(text).expect("engine/examples/global-rate-limit.toml must stay valid");
    assert!(c.global_limits.is_some());
    assert!(c.rate_limits.iter().all(|l| l.global));
    assert!(c.admin.is_some());
}

#[test]
fn outlier_breaker_and_slow_start_keys_validate() {
    let base = "[[listener]]\naddress = \"127.0.0.1:8080\"\n[forwarding]\nbackend_header = true\n";
    let text = format!(
        "{base}[upstream.a]\nbackends = [\"127.0.0.1:9001\"]\nslow_start = \"30s\"\n\
         [upstream.a.passive]\nfailures = 7\nconsecutive_gateway_errors = 2\n\
         consecutive_connect_failures = 3\nerror_rate_percent = 85\n\
         error_rate_window = \"20s\"\nerror_rate_min_requests = 0\n\
         half_open_trials = 2\nhalf_open_successes = 4\nhalf_open_timeout = \"45s\"\n\
         [upstream.b]\nbackends = [\"127.0.0.1:9002\"]\nslow_start = \"0s\"\nbackend_header = false\n\
         [upstream.b.passive]\nfailures = 7\nconsecutive_5xx = 9\n\
         [[route]]\nupstream = \"a\"\n"
    );
    let c = check(&text).expect("valid");
    let (a, b) = (&c.upstreams[0], &c.upstreams[1]);
    assert_eq!(a.passive.consecutive_5xx, 7, "the old name still reads");
    assert_eq!(a.passive.consecutive_gateway_errors, 2);
    assert_eq!(a.passive.consecutive_connect_failures, 3);
    assert_eq!(a.passive.error_rate_percent, 85);
    assert_eq!(a.passive.error_rate_window, Duration::from_secs(20));
    assert_eq!(a.passive.error_rate_min_requests, 1, "at least one");
    assert_eq!(
        (a.passive.half_open_trials, a.passive.half_open_successes),
        (2, 4)
    );
    assert_eq!(a.passive.half_open_timeout, Duration::from_secs(45));
    assert_eq!(
        b.passive.half_open_timeout,
        crate::config::defaults::HALF_OPEN_TIMEOUT
    );
    assert_eq!(a.slow_start, Duration::from_secs(30));
    assert!(a.backend_header, "the global switch");
    assert_eq!(b.passive.consecutive_5xx, 9, "the new name wins");
    assert_eq!(b.slow_start, Duration::ZERO, "0s turns it off");
    assert!(!b.backend_header, "the group's key wins");
}

#[test]
fn body_limits_and_route_deadlines_validate() {
    let text = r#"
[[listener]]
address = "127.0.0.1:8080"
[limits]
max_request_body = 1048576
min_body_rate = 0
min_body_rate_grace = "2s"
[timeouts]
upstream_body = "15s"
[[route]]
upstream = "u"
max_request_body = 0
timeout = "3s"
[upstream.u]
backends = ["127.0.0.1:9001"]
"#;
    let c = check(text).expect("valid");
    assert_eq!(c.limits.max_request_body, 1 << 20);
    assert_eq!(c.limits.min_body_rate, 0);
    assert_eq!(c.limits.min_body_rate_grace, Duration::from_secs(2));
    assert_eq!(c.timeouts.upstream_body, Duration::from_secs(15));
    assert_eq!(c.routes[0].max_request_body, Some(0));
    assert_eq!(c.routes[0].timeout, Some(Duration::from_secs(3)));
    let bad = text.replace("timeout = \"3s\"", "timeout = \"0s\"");
    let err = check(&bad).unwrap_err().to_string();
    assert!(err.contains("route[0].timeout"), "{err}");
}

#[test]
fn a_listener_is_required() {
    assert!(check("").unwrap_err().to_string().contains("[[listener]]"));
}

/// Two certificates with their own keys, written as PEM.
fn two_pairs(dir: &Path) -> [(PathBuf, PathBuf); 2] {
    [0, 1].map(|i| {
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
            .expect("params")
            .self_signed(&key)
            .expect("cert");
        let (c, k) = (dir.join(format!("{i}.pem")), dir.join(format!("{i}.key")));
        std::fs::write(&c, cert.pem()).expect("write cert");
        std::fs::write(&k, key.serialize_pem()).expect("write key");
        (c, k)
    })
}

fn tls_listener(cert: &Path, key: &Path) -> String {
    format!(
        "[[listener]]\naddress = \"127.0.0.1:1\"\n[[listener.tls]]\ncert = {:?}\nkey = {:?}\n",
        cert.display().to_string(),
        key.display().to_string()
    )
}

#[test]
fn a_tls_listener_needs_a_certificate_and_its_own_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let [(cert_a, key_a), (_, key_b)] = two_pairs(dir.path());
    check(&tls_listener(&cert_a, &key_a)).expect("a matching pair");

    let err = check(&tls_listener(&cert_a, &key_b)).expect_err("mismatch");
    assert!(
        matches!(&err, ConfigError::Pem { source, .. }
            if matches!(**source, pem::PemError::KeyMismatch { .. })),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.starts_with("test.toml:5:7: listener[0].tls[0].key: "),
        "{text}"
    );
    assert!(text.contains("does not match the certificate"), "{text}");

    let not_pem = dir.path().join("cert.der");
    std::fs::write(&not_pem, b"\x30\x82\x01\x0a not PEM").expect("write");
    let err = check(&tls_listener(&not_pem, &key_a)).expect_err("not PEM");
    let text = err.to_string();
    assert!(
        text.starts_with("test.toml:4:8: listener[0].tls[0].cert: "),
        "{text}"
    );
    assert!(text.contains("no certificate"), "{text}");

    // The certificate where the key should be.
    let err = check(&tls_listener(&cert_a, &cert_a)).expect_err("no key");
    assert!(
        err.to_string().contains("listener[0].tls[0].key: ")
            && err.to_string().contains("no private key"),
        "{err}"
    );
}

#[test]
fn an_upstream_ca_file_and_server_name_are_checked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let [(cert, key), _] = two_pairs(dir.path());
    let group = |extra: &str| {
        format!(
            "[[listener]]\naddress = \"127.0.0.1:1\"\n[upstream.api]\nbackends = [\"127.0.0.1:9\"]\ntls = true\n{extra}\n"
        )
    };
    let ca = |p: &Path| format!("ca_file = {:?}", p.display().to_string());
    check(&group(&ca(&cert))).expect("a CA certificate");
    let err = check(&group(&ca(&key))).expect_err("a key is no CA");
    let text = err.to_string();
    assert!(
        text.starts_with("test.toml:6:11: upstream.api.ca_file: "),
        "{text}"
    );
    assert!(text.contains("no certificate"), "{text}");

    check(&group("server_name = \"api.internal\"")).expect("a DNS name");
    check(&group("server_name = \"10.0.0.1\"")).expect("an IP address");
    let err = check(&group("server_name = \"not a name\"")).expect_err("a space");
    assert!(
        err.to_string()
            .starts_with("test.toml:6:15: upstream.api.server_name: \"not a name\""),
        "{err}"
    );
}

#[test]
fn backends_no_one_can_be_or_that_are_us_are_rejected_by_field() {
    let file = |backend: &str| {
        format!(
            "[[listener]]\naddress = \"0.0.0.0:8080\"\n[admin]\naddress = \"127.0.0.1:9090\"\n\
             [upstream.a]\nbackends = [\"127.0.0.1:9001\", \"{backend}\"]\n"
        )
    };
    for (backend, says) in [
        ("127.0.0.1:0", "port 0"),
        ("0.0.0.0:9001", "unspecified"),
        ("[::]:9001", "unspecified"),
        ("239.1.1.1:9001", "multicast"),
        ("255.255.255.255:9001", "broadcast"),
        ("127.0.0.1:9090", "own listener 127.0.0.1:9090"),
        // The wildcard listener is every local address on its port.
        ("127.0.0.1:8080", "own listener 0.0.0.0:8080"),
    ] {
        let err = check(&file(backend)).unwrap_err();
        assert!(
            matches!(err, ConfigError::Backend { .. }),
            "{backend}: {err}"
        );
        let text = err.to_string();
        assert!(
            text.starts_with("test.toml:6:12: upstream.a.backends[1]: ") && text.contains(says),
            "{backend}: {text}"
        );
    }
    assert!(check(&file("127.0.0.1:9002")).is_ok());
    // A name on port 0 is refused before any lookup.
    let err = check(&file("svc.test:0")).unwrap_err().to_string();
    assert!(
        err.starts_with("test.toml:6:12: upstream.a.backends[1]: \"svc.test:0\": invalid port"),
        "{err}"
    );
}

/// A group of `n` backends given as addresses, all distinct.
fn group_of(n: usize) -> String {
    let list: Vec<String> = (0..n)
        .map(|i| format!("\"10.{}.{}.{}:80\"", i >> 16, (i >> 8) & 255, i & 255))
        .collect();
    format!(
        "[[listener]]\naddress = \"127.0.0.1:1\"\n[upstream.big]\nbackends = [{}]\n",
        list.join(",")
    )
}

#[test]
fn a_group_may_hold_up_to_the_cap_and_no_more() {
    let max = defaults::MAX_GROUP_BACKENDS;
    let c = check(&group_of(max)).expect("at the cap");
    assert_eq!(c.upstreams[0].backends.len(), max);

    let err = check(&group_of(max + 1)).unwrap_err();
    assert!(
        matches!(err, ConfigError::TooMany { count, max: m, .. } if count == max + 1 && m == max),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.starts_with("test.toml:4:12: upstream.big.backends: 100001 entries; at most 100000"),
        "{text}"
    );
}

#[test]
fn a_weight_past_the_cap_names_its_backend() {
    let text = "[[listener]]\naddress = \"127.0.0.1:1\"\n[upstream.a]\nbackends = [\"127.0.0.1:2\", { address = \"127.0.0.1:3\", weight = 10001 }]\n";
    let err = check(text).unwrap_err();
    assert!(
        matches!(
            err,
            ConfigError::OutOfRange {
                min: 1,
                max: 10_000,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains("upstream.a.backends[1].weight: must be between 1 and 10000"),
        "{err}"
    );
    let at_cap = text.replace("10001", "10000");
    assert_eq!(
        check(&at_cap).expect("at the cap").upstreams[0].backends[1].1,
        10_000
    );
}

mod access_log;
mod admin;
mod client_auth;
mod upstream_tls;

#[test]
fn route_names_and_the_metrics_switch() {
    let c = check(GOOD).unwrap();
    assert_eq!(c.routes[0].name, None, "the label is then host and path");
    assert!(c.metrics.enabled, "metrics are on by default");
    let named = GOOD.replace("path = \"/api\"", "path = \"/api\"\nname = \"api v2\"");
    let c = check(&format!("{named}\n[metrics]\nenabled = false\n")).unwrap();
    assert_eq!(c.routes[0].name.as_deref(), Some("api v2"));
    assert!(!c.metrics.enabled);
    for bad in ["", "tab\there", "_unmatched", &"x".repeat(129)] {
        let text = GOOD.replace(
            "path = \"/api\"",
            &format!("path = \"/api\"\nname = {bad:?}"),
        );
        let err = check(&text).unwrap_err().to_string();
        assert!(err.contains("route[0].name: "), "{err}");
        assert!(err.contains("is not a route name"), "{err}");
    }
}
