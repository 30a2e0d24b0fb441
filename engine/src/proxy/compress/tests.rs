//! Unit tests of the compression decision (`Accept-Encoding`, skip rules,
//! header rewrites): pure functions, no bodies. `CompressBody` is tested in
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
        ClientEncoding::capture(false, &[Encoding::Gzip], &Method::GET, &h),
        ClientEncoding::Off
    );
    assert_eq!(
        ClientEncoding::capture(true, &[Encoding::Gzip], &Method::HEAD, &h),
        ClientEncoding::Off
    );
    assert_eq!(
        ClientEncoding::capture(true, &[Encoding::Gzip], &Method::GET, &h),
        ClientEncoding::Accepts(Encoding::Gzip)
    );
    assert_eq!(
        ClientEncoding::capture(true, &[Encoding::Gzip], &Method::GET, &HeaderMap::new()),
        ClientEncoding::Refuses
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
        ClientEncoding::Accepts(Encoding::Gzip),
        &settings(),
        StatusCode::from_u16(status).expect("status"),
        &h,
    )
}

#[test]
fn every_skip_rule() {
    use Decision::*;
    assert_eq!(decide_json(200, &[]), Compress(Encoding::Gzip));
    assert_eq!(decide_json(404, &[]), Compress(Encoding::Gzip));
    assert_eq!(
        decide_json(200, &[("content-length", "1024")]),
        Compress(Encoding::Gzip)
    );
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
    assert_eq!(
        decide_json(200, &[("cache-control", "no-store")]),
        Compress(Encoding::Gzip)
    );

    let d = |ct: &'static str| {
        decide(
            ClientEncoding::Accepts(Encoding::Gzip),
            &settings(),
            StatusCode::OK,
            &head(&[("content-type", ct)]),
        )
    };
    assert_eq!(d("text/html; charset=utf-8"), Compress(Encoding::Gzip));
    assert_eq!(d("TEXT/Plain"), Compress(Encoding::Gzip));
    assert_eq!(d("application/problem+json"), Compress(Encoding::Gzip));
    assert_eq!(
        d("application/atom+xml;charset=utf-8"),
        Compress(Encoding::Gzip)
    );
    assert_eq!(d("image/svg+xml"), Compress(Encoding::Gzip));
    assert_eq!(d("application/javascript"), Compress(Encoding::Gzip));
    assert_eq!(d("image/png"), Skip);
    assert_eq!(d("application/octet-stream"), Skip);
    assert_eq!(d("application/jsonx"), Skip);
    assert_eq!(d("+json"), Skip);
    assert_eq!(d("text"), Skip);
    assert_eq!(
        decide(
            ClientEncoding::Accepts(Encoding::Gzip),
            &settings(),
            StatusCode::OK,
            &HeaderMap::new()
        ),
        Skip,
        "no content type"
    );

    let json = head(&[("content-type", "application/json")]);
    assert_eq!(
        decide(ClientEncoding::Refuses, &settings(), StatusCode::OK, &json),
        VaryOnly
    );
    assert_eq!(
        decide(ClientEncoding::Off, &settings(), StatusCode::OK, &json),
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
    rewrite_headers(&mut h, Encoding::Gzip);
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
    rewrite_headers(&mut h, Encoding::Gzip);
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

/// `negotiate` over one field value with `offered` in the server's order.
fn pick(value: &str, offered: &[Encoding]) -> Option<Encoding> {
    negotiate(std::iter::once(value.as_bytes()), offered)
}

#[test]
fn negotiation_takes_the_highest_q_then_the_server_order() {
    use Encoding::{Br, Gzip, Zstd};
    let all = [Zstd, Br, Gzip];
    let cases: &[(&str, &[Encoding], Option<Encoding>)] = &[
        // Equal weights: the server's order decides.
        ("gzip, deflate, br, zstd", &all, Some(Zstd)),
        ("gzip, br", &all, Some(Br)),
        ("gzip, br", &[Gzip, Br], Some(Gzip)),
        ("br;q=0.5, gzip;q=0.5", &[Gzip, Br], Some(Gzip)),
        // A higher weight beats the server's order.
        ("zstd;q=0.5, br;q=0.9, gzip", &all, Some(Gzip)),
        ("zstd;q=0.8, br;q=0.9", &all, Some(Br)),
        ("zstd;q=0.001, gzip;q=0", &all, Some(Zstd)),
        // Case-insensitive tokens; x-gzip is gzip.
        ("BR, ZStd;Q=0.2", &all, Some(Br)),
        ("x-gzip", &all, Some(Gzip)),
        // q=0 is "not acceptable", also through `*`.
        ("br;q=0, zstd;q=0, gzip;q=0", &all, None),
        ("zstd;q=0, *", &all, Some(Br)),
        ("*;q=0, gzip", &all, Some(Gzip)),
        ("*;q=0.3, br;q=0.2", &[Br, Gzip], Some(Gzip)),
        ("*", &all, Some(Zstd)),
        // Not offered: never chosen, whatever its weight.
        ("br, gzip;q=0.1", &[Gzip], Some(Gzip)),
        ("br", &[Gzip, Zstd], None),
        // identity ranked above every coding wins; identity;q=0 changes nothing.
        ("identity, br;q=0.5", &all, None),
        ("identity;q=0.5, br;q=0.5", &all, Some(Br)),
        ("identity;q=0, br;q=0.1", &all, Some(Br)),
        ("identity;q=0", &all, None),
        // Malformed entries are ignored, never trusted.
        ("br;q=oops, gzip;q=0.1", &all, Some(Gzip)),
        ("zstd;q=1.5, br;q=2", &all, None),
        ("", &all, None),
        // Listed twice: the more generous weight.
        ("br;q=0, br;q=0.7, zstd;q=0.6", &all, Some(Br)),
    ];
    for (value, offered, want) in cases {
        assert_eq!(pick(value, offered), *want, "{value:?} offered {offered:?}");
    }
    // Several field lines are one list.
    let lines = ["gzip;q=0.4", "br;q=0.6", "zstd;q=0.5"];
    assert_eq!(
        negotiate(lines.iter().map(|l| l.as_bytes()), &all),
        Some(Br)
    );
}

#[test]
fn capture_uses_the_configured_order_and_decide_carries_the_coding() {
    let h = head(&[("accept-encoding", "gzip, br, zstd")]);
    let offered = [Encoding::Br, Encoding::Zstd];
    let c = ClientEncoding::capture(true, &offered, &Method::GET, &h);
    assert_eq!(c, ClientEncoding::Accepts(Encoding::Br));
    let json = head(&[("content-type", "application/json")]);
    assert_eq!(
        decide(c, &settings(), StatusCode::OK, &json),
        Decision::Compress(Encoding::Br)
    );
    // The skip rules hold for every coding.
    for e in Encoding::ALL {
        let client = ClientEncoding::Accepts(e);
        for extra in [
            ("content-encoding", "gzip"),
            ("cache-control", "no-transform"),
            ("content-range", "bytes 0-1/2"),
            ("content-length", "10"),
        ] {
            let mut h = json.clone();
            h.append(extra.0, HeaderValue::from_static(extra.1));
            assert_eq!(
                decide(client, &settings(), StatusCode::OK, &h),
                Decision::Skip,
                "{e} with {extra:?}"
            );
        }
        assert_eq!(
            decide(client, &settings(), StatusCode::PARTIAL_CONTENT, &json),
            Decision::Skip
        );
    }
    let mut h = head(&[("etag", "\"v1\"")]);
    rewrite_headers(&mut h, Encoding::Zstd);
    assert_eq!(h["content-encoding"], "zstd");
    assert_eq!(h["etag"], "W/\"v1\"");
    assert_eq!(h["vary"], "Accept-Encoding");
    assert_eq!(Encoding::from_token("BR"), Some(Encoding::Br));
    assert_eq!(Encoding::from_token("x-gzip"), None);
}
