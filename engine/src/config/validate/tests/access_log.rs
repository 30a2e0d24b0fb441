//! `access_log`, `[access_log.ship]`, `instance_id` and `instance_header`.

use super::*;
use crate::config::LogFormat;

const LISTENER: &str = "[[listener]]\naddress = \"127.0.0.1:1\"\n";

#[test]
fn the_old_switch_and_the_table_both_parse() {
    let c = check(&format!("access_log = true\n{LISTENER}")).expect("valid");
    assert_eq!(
        c.access_log,
        Some(crate::config::AccessLogConfig::default())
    );
    let c = check(&format!("access_log = false\n{LISTENER}")).expect("valid");
    assert_eq!(c.access_log, None);
    let c = check(LISTENER).expect("valid");
    assert_eq!(c.access_log, None);
    assert_eq!(c.instance_id, None);
    assert_eq!(
        c.instance_header.as_ref().map(|h| h.as_str()),
        Some("x-sluice-instance")
    );
    let c = check(&format!(
        "instance_id = \"web-3:8080\"\ninstance_header = \"\"\n{LISTENER}[access_log]\nformat = \"combined\"\npath = \"/tmp/a.log\"\nqueue = 10\n[access_log.ship]\nurl = \"http://log:9100/in\"\nbatch = 7\ninterval = \"250ms\"\n"
    ))
    .expect("valid");
    assert_eq!(c.instance_id.as_deref(), Some("web-3:8080"));
    assert_eq!(c.instance_header, None);
    let log = c.access_log.expect("on");
    assert_eq!(log.format, LogFormat::Combined);
    assert_eq!(log.queue, 10);
    let ship = log.ship.expect("ship");
    assert_eq!(
        (ship.authority.as_str(), ship.path.as_str()),
        ("log:9100", "/in")
    );
    assert_eq!((ship.batch, ship.pending), (7, 16));
    assert_eq!(ship.interval, std::time::Duration::from_millis(250));
    // Off, but still checked.
    let off = format!("{LISTENER}[access_log]\nenabled = false\nformat = \"xml\"\n");
    assert!(check(&off).is_err());
    let c = check(&format!("{LISTENER}[access_log]\nenabled = false\n")).expect("valid");
    assert_eq!(c.access_log, None);
}

#[test]
fn bad_access_log_values_name_their_field() {
    for (text, says) in [
        (
            "[access_log]\nformat = \"xml\"\n",
            "access_log.format: \"xml\": expected json or combined",
        ),
        ("[access_log]\nqueue = 0\n", "access_log.queue"),
        (
            "[access_log.ship]\nurl = \"https://log:1/\"\n",
            "access_log.ship.url",
        ),
        (
            "[access_log.ship]\nurl = \"http://log/\"\n",
            "access_log.ship.url",
        ),
        (
            "[access_log.ship]\nurl = \"http://log:1/\"\ninterval = \"0s\"\n",
            "access_log.ship.interval",
        ),
        (
            "[access_log.ship]\nurl = \"http://log:1/\"\nbatch = 0\n",
            "access_log.ship.batch",
        ),
    ] {
        let e = check(&format!("{LISTENER}{text}"))
            .expect_err(text)
            .to_string();
        assert!(e.contains(says), "{text}: {e}");
    }
    for (top, says) in [
        ("instance_id = \"a b\"\n", "instance_id: \"a b\""),
        ("instance_id = \"a;b\"\n", "instance_id"),
        (
            "instance_header = \"bad header\"\n",
            "instance_header: \"bad header\": not a header name",
        ),
    ] {
        let e = check(&format!("{top}{LISTENER}"))
            .expect_err(top)
            .to_string();
        assert!(e.contains(says), "{top}: {e}");
    }
}
