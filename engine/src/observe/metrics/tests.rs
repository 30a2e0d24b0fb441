//! How [`Metrics`] carries counters from one state to the next.

use super::*;
use crate::config::Config;

fn config(routes: &[(Option<&str>, Option<&str>, &str)]) -> Config {
    let mut c = Config::simple(([127, 0, 0, 1], 0).into(), &[([127, 0, 0, 1], 9).into()]);
    let template = c.routes[0].clone();
    c.routes = routes
        .iter()
        .map(|(name, host, path)| RouteConfig {
            name: name.map(str::to_owned),
            host: host.map(str::to_owned),
            path: (*path).to_owned(),
            ..template.clone()
        })
        .collect();
    c
}

#[test]
fn label_values_are_escaped_in_the_exposition() {
    let mut c = config(&[(Some("r \"1\""), None, "/")]);
    c.upstreams[0].name = "we\"ird\\grp\nx".to_owned();
    let state = crate::state::State::new(&c, None).expect("state");
    let text = scrape::render(Arc::new(state), Vec::new());
    assert!(
        text.contains(r#"sluice_retries_total{group="we\"ird\\grp\nx"} 0"#),
        "{text}"
    );
    assert!(
        text.contains(r#"sluice_route_request_bytes_total{route="r \"1\""} 0"#),
        "{text}"
    );
    assert!(text.ends_with("# EOF\n"));
}

#[test]
fn the_default_name_is_host_and_path_as_configured() {
    let c = config(&[
        (None, Some("example.com"), "/api"),
        (None, None, "/"),
        (Some("x"), None, "/x"),
    ]);
    let names: Vec<_> = c.routes.iter().map(route_name).collect();
    assert_eq!(names, ["example.com/api", "/", "x"]);
}

#[test]
fn a_reload_keeps_counters_by_name_and_routes_that_share_a_name_share_them() {
    let old = Metrics::new(&config(&[(Some("a"), None, "/a"), (None, None, "/")]), None);
    old.routes[0].stats.observe(0, 1, 10);
    old.routes[1].stats.bytes_in.fetch_add(7, Ordering::Relaxed);
    old.groups[0].header.observe(5);

    // "a" moves to another path and index, "/" is gone, "b" is new and
    // shares its name with a second route.
    let new = Metrics::new(
        &config(&[
            (Some("b"), None, "/b"),
            (Some("a"), None, "/other"),
            (Some("b"), None, "/b2"),
        ]),
        Some(&old),
    );
    assert!(Arc::ptr_eq(&new.routes[1].stats, &old.routes[0].stats));
    assert!(Arc::ptr_eq(&new.routes[0].stats, &new.routes[2].stats));
    assert_eq!(new.routes[0].stats.durations().count(), 0, "b is new");
    let listed: Vec<_> = new.routes().iter().map(|s| s.name.clone()).collect();
    assert_eq!(listed, ["b", "a", UNMATCHED], "each once, unmatched last");
    assert!(Arc::ptr_eq(&new.groups[0], &old.groups[0]));
    assert_eq!(new.groups[0].header.read().count, 1);
    assert!(Arc::ptr_eq(&new.process, &old.process));
    assert!(Arc::ptr_eq(&new.unmatched, &old.unmatched));
}
