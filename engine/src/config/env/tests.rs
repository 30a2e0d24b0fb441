//! The overlay: nested keys, types, arrays, precedence over the file, and
//! every kind of mistake naming its variable.

use super::*;
use crate::balance::Policy;
use crate::config::validate::parse_layered;
use crate::config::{Config, ConfigError};
use std::path::Path;
use std::time::Duration;

const FILE: &str = r#"
[[listener]]
address = "127.0.0.1:8080"

[timeouts]
upstream_connect = "5s"

[upstream.api-v2]
backends = ["127.0.0.1:9001"]
balance = "round-robin"

[upstream.default]
backends = ["127.0.0.1:9002"]
"#;

fn overlay(vars: &[(&str, &str)]) -> Result<EnvOverlay, ConfigError> {
    EnvOverlay::from_vars(
        vars.iter().map(|(k, v)| ((*k).into(), (*v).into())),
        &["SLUICE_LISTEN"],
    )
}

fn load(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
    parse_layered(FILE, Path::new("sluice.toml"), &overlay(vars)?)
}

fn group<'a>(c: &'a Config, name: &str) -> &'a crate::config::UpstreamConfig {
    c.upstreams.iter().find(|u| u.name == name).unwrap()
}

/// The variable an error names, or its `Debug` when it names none.
fn var_of(e: &ConfigError) -> String {
    match e {
        ConfigError::Env { var, .. } => var.clone(),
        e => match e.at() {
            Some(At::Env { var, .. }) => var.clone(),
            other => format!("{other:?} ({e})"),
        },
    }
}

#[test]
fn a_nested_key_beats_the_file() {
    let c = load(&[("SLUICE_TIMEOUTS__UPSTREAM_CONNECT", "2s")]).unwrap();
    assert_eq!(c.timeouts.upstream_connect, Duration::from_secs(2));
    // Without the variable the file's value stands.
    let c = load(&[]).unwrap();
    assert_eq!(c.timeouts.upstream_connect, Duration::from_secs(5));
}

#[test]
fn three_levels_and_a_dash_in_the_files_name() {
    let c = load(&[
        ("SLUICE_UPSTREAM__DEFAULT__BALANCE", "p2c"),
        ("SLUICE_UPSTREAM__API_V2__BALANCE", "least-conn"),
    ])
    .unwrap();
    assert!(matches!(group(&c, "default").policy, Policy::P2c));
    assert!(matches!(group(&c, "api-v2").policy, Policy::LeastConn));
}

#[test]
fn values_are_toml_typed_and_strings_otherwise() {
    let c = load(&[
        ("SLUICE_LIMITS__MAX_HEADERS", "50"),
        ("SLUICE_ACCESS_LOG", "true"),
        ("SLUICE_COMPRESSION__TYPES", r#"["text/*", "+json"]"#),
        (
            "SLUICE_UPSTREAM__NEW",
            r#"{ backends = ["127.0.0.1:9003"], balance = "p2c" }"#,
        ),
    ])
    .unwrap();
    assert_eq!(c.limits.max_headers, 50);
    assert!(c.access_log.is_some());
    assert!(matches!(group(&c, "new").policy, Policy::P2c));
    assert_eq!(group(&c, "new").backends.len(), 1);
}

#[test]
fn a_number_where_a_string_is_wanted_is_taken_as_the_string() {
    let c = load(&[
        ("SLUICE_ADMIN__ADDRESS", "127.0.0.1:9090"),
        ("SLUICE_ADMIN__TOKEN", "12345678"),
    ])
    .unwrap();
    assert_eq!(c.admin.unwrap().token.as_deref(), Some("12345678"));
}

#[test]
fn an_index_sets_an_entry_and_one_past_the_end_appends() {
    let c = load(&[
        ("SLUICE_LISTENER__0__BACKLOG", "64"),
        ("SLUICE_LISTENER__1__ADDRESS", "127.0.0.1:8081"),
    ])
    .unwrap();
    assert_eq!(c.listeners.len(), 2);
    assert_eq!(c.listeners[0].backlog, 64);
    assert_eq!(c.listeners[1].address, "127.0.0.1:8081".parse().unwrap());
    let e = load(&[("SLUICE_LISTENER__5__ADDRESS", "127.0.0.1:8081")]).unwrap_err();
    assert_eq!(var_of(&e), "SLUICE_LISTENER__5__ADDRESS");
    assert!(e.to_string().contains("past the end of listener"), "{e}");
}

#[test]
fn a_typo_is_an_error_naming_the_variable() {
    let e = load(&[("SLUICE_TIMEOUTS__UPSTREAM_CONECT", "2s")]).unwrap_err();
    assert_eq!(var_of(&e), "SLUICE_TIMEOUTS__UPSTREAM_CONECT", "{e}");
    assert!(e.to_string().contains("upstream_conect"), "{e}");
    let e = load(&[("SLUICE_TIMEOUT__UPSTREAM_CONNECT", "2s")]).unwrap_err();
    assert_eq!(var_of(&e), "SLUICE_TIMEOUT__UPSTREAM_CONNECT", "{e}");
    let e = load(&[("SLUICE_WORKER", "2")]).unwrap_err();
    assert_eq!(var_of(&e), "SLUICE_WORKER", "{e}");
}

#[test]
fn a_bad_value_is_an_error_naming_the_variable() {
    let e = load(&[("SLUICE_TIMEOUTS__UPSTREAM_CONNECT", "fast")]).unwrap_err();
    assert_eq!(var_of(&e), "SLUICE_TIMEOUTS__UPSTREAM_CONNECT");
    assert!(matches!(e, ConfigError::Duration { .. }), "{e}");
    let e = load(&[("SLUICE_LIMITS__MAX_HEADERS", "[1]")]).unwrap_err();
    assert_eq!(var_of(&e), "SLUICE_LIMITS__MAX_HEADERS", "{e}");
    // Inside a table a variable set whole.
    let e = load(&[(
        "SLUICE_UPSTREAM__NEW",
        r#"{ backends = ["x"], balance = "nope" }"#,
    )])
    .unwrap_err();
    assert_eq!(var_of(&e), "SLUICE_UPSTREAM__NEW", "{e}");
    // A type error inside the table is told as it is, not as "a string".
    let e = load(&[("SLUICE_UPSTREAM__NEW", "{ backends = 5 }")]).unwrap_err();
    assert_eq!(var_of(&e), "SLUICE_UPSTREAM__NEW", "{e}");
    assert!(e.to_string().contains("upstream.new.backends"), "{e}");
}

#[test]
fn a_level_under_a_value_or_an_empty_level_is_refused() {
    let e = load(&[("SLUICE_TIMEOUTS__UPSTREAM_CONNECT__X", "1")]).unwrap_err();
    assert_eq!(var_of(&e), "SLUICE_TIMEOUTS__UPSTREAM_CONNECT__X");
    assert!(e.to_string().contains("not a table"), "{e}");
    for name in ["SLUICE_TIMEOUTS____X", "SLUICE_TIMEOUTS__", "SLUICE_0__X"] {
        let e = overlay(&[(name, "1")]).unwrap_err();
        assert_eq!(var_of(&e), name);
    }
}

#[test]
fn a_file_mistake_still_names_the_files_line() {
    let text =
        "[[listener]]\naddress = \"127.0.0.1:8080\"\n\n[upstream.default]\nbalance = \"nope\"\n";
    let env = overlay(&[("SLUICE_TIMEOUTS__UPSTREAM_CONNECT", "2s")]).unwrap();
    let e = parse_layered(text, Path::new("f.toml"), &env).unwrap_err();
    match e.at() {
        Some(At::File {
            line,
            column,
            field,
            ..
        }) => {
            assert_eq!((*line, field.as_str()), (5, "upstream.default.balance"));
            assert_eq!(*column, 1);
        }
        other => panic!("{other:?}: {e}"),
    }
}

#[test]
fn other_programs_and_the_flags_variables_are_left_alone() {
    let env = overlay(&[
        ("SLUICE_APP_LISTEN", "x"),
        ("SLUICE_CACHE_STORE", "x"),
        ("SLUICE_LOG_DIR", "x"),
        ("SLUICE_E2E_ISOLATED_CHILD", "1"),
        ("SLUICE_LISTEN", "127.0.0.1:1"),
        ("PATH", "/bin"),
    ])
    .unwrap();
    assert!(env.is_empty(), "{:?}", env.names().collect::<Vec<_>>());
}

#[test]
fn appends_happen_in_index_order_whatever_the_environments_order() {
    let c = load(&[
        ("SLUICE_LISTENER__2__ADDRESS", "127.0.0.1:8082"),
        ("SLUICE_LISTENER__1__ADDRESS", "127.0.0.1:8081"),
    ])
    .unwrap();
    let ports: Vec<u16> = c.listeners.iter().map(|l| l.address.port()).collect();
    assert_eq!(ports, [8080, 8081, 8082]);
}
