use super::*;
use crate::addr::BackendAddr;
use crate::config::{Config, SameSite, Secret, StickyConfig};

const KEY: &str = "0123456789abcdef";

fn group(ports: &[u16]) -> Group {
    let addrs: Vec<std::net::SocketAddr> =
        ports.iter().map(|&p| ([10, 0, 0, 1], p).into()).collect();
    let mut c = Config::simple(([127, 0, 0, 1], 0).into(), &addrs)
        .upstreams
        .remove(0);
    c.sticky = Some(StickyConfig {
        cookie: "srv".to_owned(),
        secret: Some(Secret(KEY.as_bytes().to_vec())),
        same_site: SameSite::Lax,
        max_age: None,
        path: "/".to_owned(),
        http_only: true,
        secure: false,
    });
    Group::new(&c, None).expect("group")
}

fn addr(port: u16) -> BackendAddr {
    BackendAddr(([10, 0, 0, 1], port).into())
}

fn value(g: &Group, port: u16) -> String {
    let s = g.sticky.as_ref().expect("sticky");
    String::from_utf8(s.value(addr(port)).to_vec()).expect("ascii")
}

fn cookies(lines: &[&str]) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("x-other", HeaderValue::from_static("1"));
    for l in lines {
        h.append(COOKIE, HeaderValue::from_str(l).expect("value"));
    }
    h
}

fn lines(h: &HeaderMap) -> Vec<&str> {
    h.get_all(COOKIE)
        .iter()
        .map(|v| v.to_str().expect("ascii"))
        .collect()
}

#[test]
fn pairs_are_found_by_exact_name_with_whitespace_and_quotes() {
    let got: Vec<&[u8]> = values_named(
        b"a=1; srv=x ;srv=\"y\";xsrv=z; SRV=w;srv;=q; srv = v",
        b"srv",
    )
    .collect();
    assert_eq!(got, [&b"x"[..], b"y", b"v"]);
}

#[test]
fn stripping_keeps_the_other_cookies_byte_for_byte() {
    for (line, after) in [
        ("a=1; srv=x; b=2", Some("a=1; b=2")),
        ("srv=x; a=1;b=\"2\"", Some("a=1;b=\"2\"")),
        ("a=1;  b=2 ; srv=x", Some("a=1;  b=2")),
        ("a=1; srv=x ; b=2", Some("a=1; b=2")),
        ("srv=x", Some("")),
        ("srv=x; srv=y;", Some("")),
        ("a=1; b=2", None),
        ("srvx=1; xsrv=2", None),
    ] {
        let got = without(line.as_bytes(), b"srv");
        assert_eq!(got.as_deref(), after.map(str::as_bytes), "{line:?}");
    }
}

#[test]
fn a_valid_cookie_names_its_backend_and_never_reaches_the_backend() {
    let g = group(&[1, 2, 3]);
    let s = g.sticky.clone().expect("sticky");
    let v = value(&g, 2);
    let mut h = cookies(&[&format!("a=1; srv={v}; b=2"), "c=3"]);
    let b = take(&s, &g, &mut h).expect("sticky backend");
    assert_eq!(b.addr, addr(2));
    assert_eq!(lines(&h), ["a=1; b=2", "c=3"]);
    assert_eq!(h["x-other"], "1");

    // HTTP/2 crumbs: ours is a line of its own, and goes entirely.
    let mut h = cookies(&["a=1", &format!("srv={v}"), "b=2"]);
    assert_eq!(take(&s, &g, &mut h).map(|b| b.addr), Some(addr(2)));
    assert_eq!(lines(&h), ["a=1", "b=2"]);

    let mut h = cookies(&[&format!("srv={v}")]);
    assert!(take(&s, &g, &mut h).is_some());
    assert!(h.get(COOKIE).is_none(), "no empty Cookie line");
}

#[test]
fn forged_foreign_and_stale_cookies_name_no_backend_and_are_stripped() {
    let g = group(&[1, 2, 3]);
    let s = g.sticky.clone().expect("sticky");
    let mut forged = value(&g, 2).into_bytes();
    forged[47] = if forged[47] == b'0' { b'1' } else { b'0' };
    let forged = String::from_utf8(forged).expect("ascii");
    // A backend the group does not have (removed, drained, ejected).
    let stale = value(&g, 9);
    for bad in [forged.as_str(), stale.as_str(), "10.0.0.1:2", ""] {
        let mut h = cookies(&[&format!("a=1; srv={bad}")]);
        assert!(take(&s, &g, &mut h).is_none(), "{bad:?}");
        assert_eq!(lines(&h), ["a=1"], "{bad:?}");
    }
    let mut h = cookies(&["a=1"]);
    assert!(take(&s, &g, &mut h).is_none());
    assert_eq!(lines(&h), ["a=1"], "untouched");
}

#[test]
fn a_good_cookie_after_a_stale_one_still_counts_but_only_four_are_checked() {
    let g = group(&[1, 2]);
    let s = g.sticky.clone().expect("sticky");
    let (good, stale) = (value(&g, 1), value(&g, 9));
    let mut h = cookies(&[&format!("srv={stale}; srv={good}")]);
    assert_eq!(take(&s, &g, &mut h).map(|b| b.addr), Some(addr(1)));

    // Four forged values of the right length use up the checks: a flood of
    // them costs four HMACs, and the fifth, good or not, is not looked at.
    let forged = "f".repeat(48);
    let flood = format!("srv={forged}; ").repeat(4) + &format!("srv={good}");
    let mut h = cookies(&[&flood]);
    assert!(take(&s, &g, &mut h).is_none());
    assert!(h.get(COOKIE).is_none());
    // Values of another length cost nothing and are not counted.
    let cheap = "srv=x; ".repeat(1000) + &format!("srv={good}");
    let mut h = cookies(&[&cheap]);
    assert_eq!(take(&s, &g, &mut h).map(|b| b.addr), Some(addr(1)));
}

#[test]
fn a_cookie_is_set_only_when_the_answering_backend_is_not_the_cookies() {
    let g = group(&[1, 2]);
    let s = g.sticky.clone().expect("sticky");
    let b1 = g.member(addr(1)).expect("member");
    let b2 = g.member(addr(2)).expect("member");

    let mut h = HeaderMap::new();
    answer(&s, Some(b1.id), &b1, false, &mut h);
    assert!(h.is_empty(), "the client's cookie still holds");

    answer(&s, Some(b1.id), &b2, true, &mut h);
    let set = h[SET_COOKIE].to_str().expect("ascii");
    assert_eq!(
        set,
        format!(
            "srv={}; Path=/; HttpOnly; SameSite=Lax; Secure",
            value(&g, 2)
        )
    );
    assert_eq!(h[CACHE_CONTROL], "private", "shared caches keep out");

    let mut h = HeaderMap::new();
    h.insert(SET_COOKIE, HeaderValue::from_static("app=1"));
    h.insert(
        CACHE_CONTROL,
        HeaderValue::from_static("max-age=60, No-Store"),
    );
    answer(&s, None, &b1, false, &mut h);
    assert_eq!(h.get_all(SET_COOKIE).iter().count(), 2, "the app's kept");
    assert_eq!(
        h.get_all(CACHE_CONTROL).iter().count(),
        1,
        "already kept out"
    );
}
