//! Unit tests of the compression decision (`Accept-Encoding`, skip rules,
//! header rewrites): pure functions, no bodies. `GzipBody` is tested in
//! `gzip/tests.rs`.

use super::*;
use http::Method;

fn ae(values: &[&str]) -> bool {
    accepts_gzip(values.iter().map(|v| v.as_bytes()))
}

#[test]
fn accept_encoding_q_value_matrix() {
    let cases: &[(&[&str], bool)] = &[
        (&["gzip"], true),
        (&["GZip"], true),
        (&["x-gzip"], true),
        (&["deflate, gzip;q=0.5, br"], true),
        (&["gzip;q=0"], false),
        (&["gzip; q=0.000"], false),
        (&["gzip;Q=0.001"], true),
        (&["gzip;q=1.0"], true),
        (&["gzip;q=1.000"], true),
        (&["*"], true),
        (&["*;q=0.1"], true),
        (&["*;q=0"], false),
        (&["*, gzip;q=0"], false),
        (&["gzip;q=0, *"], false),
        (&["gzip;q=0.3, *;q=0"], true),
        (&["identity"], false),
        (&["identity, gzip"], true),
        (&["identity;q=1, gzip;q=0.5"], false),
        (&["identity;q=0.5, gzip;q=0.5"], true),
        (&["identity;q=0, gzip;q=0.1"], true),
        (&["br, deflate"], false),
        (&[""], false),
        (&[], false),
        (&["br", "gzip"], true),
        (&["gzip;q=0", "gzip"], true),
        // Malformed entries are ignored, never trusted, never a panic.
        (&["gzip;q=2"], false),
        (&["gzip;q=1.5"], false),
        (&["gzip;q=0.1234"], false),
        (&["gzip;q=-1"], false),
        (&["gzip;q=abc"], false),
        (&["gzip;q="], false),
        (&["gzip;q"], false),
        (&["gzip;;;"], true),
        (&["gzip;level=9;q=0.5"], true),
        (&[",,, ,gzip ,"], true),
        (&["gzip;q=0.\u{e9}"], false),
        (&["\u{e9}gzip"], false),
    ];
    for (values, want) in cases {
        assert_eq!(ae(values), *want, "Accept-Encoding: {values:?}");
    }
    // Arbitrary bytes never panic.
    for b in 0..=255u8 {
        let v = [b'g', b'z', b'i', b'p', b';', b'q', b'=', b'0', b'.', b];
        let _ = accepts_gzip(std::iter::once(&v[..]));
    }
}

#[test]
fn capture_is_off_when_disabled_or_head() {
    let mut h = HeaderMap::new();
    h.insert(header::ACCEPT_ENCODING, HeaderValue::from_static("gzip"));
    assert_eq!(
        ClientGzip::capture(false, &Method::GET, &h),
        ClientGzip::Off
    );
    assert_eq!(
        ClientGzip::capture(true, &Method::HEAD, &h),
        ClientGzip::Off
    );
    assert_eq!(
        ClientGzip::capture(true, &Method::GET, &h),
        ClientGzip::Accepts
    );
    assert_eq!(
        ClientGzip::capture(true, &Method::GET, &HeaderMap::new()),
        ClientGzip::Refuses
    );
}

fn settings() -> Compression {
    Compression {
        enabled: true,
        ..Compression::default()
    }
}

fn head(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(*k, HeaderValue::from_static(v));
    }
    h
}

fn decide_json(status: u16, extra: &[(&'static str, &'static str)]) -> Decision {
    let mut h = head(&[("content-type", "application/json")]);
    for (k, v) in extra {
        h.append(*k, HeaderValue::from_static(v));
    }
    decide(
        ClientGzip::Accepts,
        &settings(),
        StatusCode::from_u16(status).expect("status"),
        &h,
    )
}

#[test]
fn every_skip_rule() {
    use Decision::*;
    assert_eq!(decide_json(200, &[]), Compress);
    assert_eq!(decide_json(404, &[]), Compress);
    assert_eq!(decide_json(200, &[("content-length", "1024")]), Compress);
    assert_eq!(
        decide_json(200, &[("content-length", "1023")]),
        Skip,
        "below min_length"
    );
    assert_eq!(decide_json(200, &[("content-length", "0")]), Skip, "empty");
    assert_eq!(decide_json(200, &[("content-length", "x")]), Skip);
    assert_eq!(decide_json(204, &[]), Skip);
    assert_eq!(decide_json(206, &[]), Skip);
    assert_eq!(decide_json(304, &[]), Skip);
    assert_eq!(decide_json(101, &[]), Skip);
    assert_eq!(decide_json(103, &[]), Skip);
    assert_eq!(
        decide_json(200, &[("content-range", "bytes 0-9/100")]),
        Skip
    );
    assert_eq!(decide_json(200, &[("content-encoding", "gzip")]), Skip);
    assert_eq!(decide_json(200, &[("content-encoding", "br")]), Skip);
    assert_eq!(decide_json(200, &[("cache-control", "no-transform")]), Skip);
    assert_eq!(
        decide_json(200, &[("cache-control", "public, No-Transform, max-age=5")]),
        Skip
    );
    assert_eq!(
        decide_json(
            200,
            &[
                ("cache-control", "max-age=5"),
                ("cache-control", "no-transform")
            ]
        ),
        Skip
    );
    assert_eq!(decide_json(200, &[("cache-control", "no-store")]), Compress);

    let d = |ct: &'static str| {
        decide(
            ClientGzip::Accepts,
            &settings(),
            StatusCode::OK,
            &head(&[("content-type", ct)]),
        )
    };
    assert_eq!(d("text/html; charset=utf-8"), Compress);
    assert_eq!(d("TEXT/Plain"), Compress);
    assert_eq!(d("application/problem+json"), Compress);
    assert_eq!(d("application/atom+xml;charset=utf-8"), Compress);
    assert_eq!(d("image/svg+xml"), Compress);
    assert_eq!(d("application/javascript"), Compress);
    assert_eq!(d("image/png"), Skip);
    assert_eq!(d("application/octet-stream"), Skip);
    assert_eq!(d("application/jsonx"), Skip);
    assert_eq!(d("+json"), Skip);
    assert_eq!(d("text"), Skip);
    assert_eq!(
        decide(
            ClientGzip::Accepts,
            &settings(),
            StatusCode::OK,
            &HeaderMap::new()
        ),
        Skip,
        "no content type"
    );

    let json = head(&[("content-type", "application/json")]);
    assert_eq!(
        decide(ClientGzip::Refuses, &settings(), StatusCode::OK, &json),
        VaryOnly
    );
    assert_eq!(
        decide(ClientGzip::Off, &settings(), StatusCode::OK, &json),
        Skip
    );
}

#[test]
fn type_patterns() {
    let types: Vec<String> = ["text/*", "*/*"].map(str::to_owned).into();
    let ct = HeaderValue::from_static("image/png");
    assert!(type_listed(&types, Some(&ct)), "*/* matches anything");
    let types: Vec<String> = vec!["text/*".into()];
    assert!(!type_listed(
        &types,
        Some(&HeaderValue::from_static("text/"))
    ));
    assert!(!type_listed(
        &types,
        Some(&HeaderValue::from_static("textual/x"))
    ));
    assert!(!type_listed(&types, None));
}

#[test]
fn headers_are_rewritten() {
    let mut h = head(&[
        ("content-length", "5000"),
        ("etag", "\"abc\""),
        ("accept-ranges", "bytes"),
        ("vary", "Origin"),
    ]);
    rewrite_headers(&mut h);
    assert_eq!(h["content-encoding"], "gzip");
    assert!(!h.contains_key("content-length"));
    assert!(!h.contains_key("accept-ranges"));
    assert_eq!(h["etag"], "W/\"abc\"");
    assert_eq!(
        h.get_all("vary").iter().collect::<Vec<_>>(),
        ["Origin, Accept-Encoding"]
    );

    // Weak stays weak; Vary not duplicated, whatever its case.
    let mut h = head(&[("etag", "W/\"abc\""), ("vary", "accept-encoding")]);
    rewrite_headers(&mut h);
    assert_eq!(h["etag"], "W/\"abc\"");
    assert_eq!(h.get_all("vary").iter().count(), 1);
    assert_eq!(h["vary"], "accept-encoding");

    // `Vary: *` is left alone; no Vary gets one; several lines fold.
    let mut h = head(&[("vary", "*")]);
    add_vary(&mut h);
    assert_eq!(h.get_all("vary").iter().collect::<Vec<_>>(), ["*"]);
    let mut h = HeaderMap::new();
    add_vary(&mut h);
    assert_eq!(h["vary"], "Accept-Encoding");
    let mut h = head(&[("vary", "Origin"), ("vary", "Cookie, User-Agent")]);
    add_vary(&mut h);
    assert_eq!(
        h.get_all("vary").iter().collect::<Vec<_>>(),
        ["Origin, Cookie, User-Agent, Accept-Encoding"]
    );
    let mut h = head(&[("vary", "Origin"), ("vary", "Accept-Encoding")]);
    add_vary(&mut h);
    assert_eq!(h.get_all("vary").iter().count(), 2);
}
