//! Byte-exact heads, good and bad: every smuggling shape of RFC 9112 §6 must
//! be refused with its status.

use super::*;

fn limits() -> Limits {
    Limits {
        max_header_bytes: 8192,
        max_headers: 10,
        max_uri_bytes: 64,
        ..Limits::default()
    }
}

fn ok(raw: &str) -> RequestHead {
    let mut buf = BytesMut::from(raw);
    match parse(&mut buf, &limits()) {
        Ok(Some(h)) => h,
        other => panic!("{raw:?}: {other:?}"),
    }
}

fn err(raw: &str) -> ParseError {
    let mut buf = BytesMut::from(raw);
    match parse(&mut buf, &limits()) {
        Err(e) => e,
        other => panic!("{raw:?} should fail, got {other:?}"),
    }
}

#[test]
fn simple_get_and_what_follows_stays_in_the_buffer() {
    let mut buf = BytesMut::from("GET /a?b=c HTTP/1.1\r\nHost: x\r\nX-One: 1\r\n\r\nGET /next");
    let h = parse(&mut buf, &limits()).unwrap().unwrap();
    assert_eq!(h.method, Method::GET);
    assert_eq!(h.uri, "/a?b=c");
    assert_eq!(h.version, Version::HTTP_11);
    assert_eq!(h.headers["host"], "x");
    assert_eq!(h.headers["x-one"], "1");
    assert_eq!(h.framing, Framing::None);
    assert!(h.keep_alive && !h.expect_continue && !h.upgrade);
    assert_eq!(&buf[..], b"GET /next");
}

#[test]
fn partial_heads_ask_for_more_at_every_length() {
    let raw = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\n";
    for cut in 0..raw.len() {
        let mut buf = BytesMut::from(&raw[..cut]);
        assert_eq!(
            parse(&mut buf, &limits()).map(|h| h.is_some()),
            Ok(false),
            "{cut}"
        );
        assert_eq!(buf.len(), cut);
    }
    assert_eq!(
        ok(std::str::from_utf8(raw).unwrap()).framing,
        Framing::Length(3)
    );
}

#[test]
fn request_target_forms() {
    assert_eq!(ok("OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n").uri, "*");
    let abs = ok("GET http://example.com/p HTTP/1.1\r\nHost: example.com\r\n\r\n");
    assert_eq!(abs.uri.authority().unwrap(), "example.com");
    assert_eq!(abs.uri.path(), "/p");
}

#[test]
fn keep_alive_by_version_and_connection() {
    assert!(ok("GET / HTTP/1.1\r\nHost: x\r\n\r\n").keep_alive);
    assert!(!ok("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").keep_alive);
    assert!(!ok("GET / HTTP/1.1\r\nHost: x\r\nConnection: foo, Close\r\n\r\n").keep_alive);
    assert!(!ok("GET / HTTP/1.0\r\n\r\n").keep_alive);
    assert!(ok("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").keep_alive);
}

#[test]
fn expect_and_upgrade_flags() {
    let h = ok("PUT / HTTP/1.1\r\nHost: x\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\n");
    assert!(h.expect_continue);
    assert!(!ok("PUT / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n").expect_continue);
    let h = ok("GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n");
    assert!(h.upgrade);
    assert!(!ok("GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n").upgrade);
    assert!(!ok("GET / HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\n\r\n").upgrade);
}

#[test]
fn framing_by_length_and_chunked() {
    assert_eq!(
        ok("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 42\r\n\r\n").framing,
        Framing::Length(42)
    );
    assert_eq!(
        ok("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n").framing,
        Framing::None
    );
    assert_eq!(
        ok("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n").framing,
        Framing::Chunked
    );
    assert_eq!(
        ok("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n").framing,
        Framing::Chunked
    );
    assert_eq!(
        ok("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: CHUNKED\r\n\r\n")
            .framing,
        Framing::Chunked
    );
}

#[test]
fn identical_lengths_are_one_length() {
    let h = ok("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 5\r\nContent-Length: 5\r\n\r\n");
    assert_eq!(h.framing, Framing::Length(5));
    // Normalised, so the backend sees exactly one value.
    let all: Vec<_> = h.headers.get_all("content-length").iter().collect();
    assert_eq!(all, ["5"]);
}

#[test]
fn smuggling_shapes_are_refused() {
    use ParseError::*;
    let cases = [
        // CL + TE, both orders.
        (
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
            LengthAndChunked,
        ),
        (
            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
            LengthAndChunked,
        ),
        // Final coding not chunked; chunked twice.
        (
            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
            BadTransferEncoding,
        ),
        (
            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
            BadTransferEncoding,
        ),
        (
            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
            BadTransferEncoding,
        ),
        (
            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n",
            BadTransferEncoding,
        ),
        (
            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: \r\n\r\n",
            BadTransferEncoding,
        ),
        // TE on 1.0.
        (
            "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
            TransferEncodingOnHttp10,
        ),
        // Content-Length shapes.
        (
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            BadContentLength,
        ),
        (
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1, 2\r\n\r\n",
            BadContentLength,
        ),
        (
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\n",
            BadContentLength,
        ),
        (
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
            BadContentLength,
        ),
        (
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0x10\r\n\r\n",
            BadContentLength,
        ),
        (
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1 2\r\n\r\n",
            BadContentLength,
        ),
        (
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: \r\n\r\n",
            BadContentLength,
        ),
        (
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5,\r\n\r\n",
            BadContentLength,
        ),
        (
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 18446744073709551616\r\n\r\n",
            BadContentLength,
        ),
        // Host.
        ("GET / HTTP/1.1\r\n\r\n", MissingHost),
        (
            "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            MultipleHosts,
        ),
        (
            "GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n",
            MultipleHosts,
        ),
        // Syntax httparse refuses.
        (
            "GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n  folded\r\n\r\n",
            Malformed,
        ),
        ("GET / HTTP/1.1\r\nHost : x\r\n\r\n", Malformed),
        (
            "GET / HTTP/1.1\r\nHost: x\r\nX-Bad\x01: 1\r\n\r\n",
            Malformed,
        ),
        (
            "GET / HTTP/1.1\r\nHost: x\r\nX-Bad: a\x00b\r\n\r\n",
            Malformed,
        ),
        ("G@T / HTTP/1.1\r\nHost: x\r\n\r\n", Malformed),
        ("GET / HTTP/2.0\r\nHost: x\r\n\r\n", BadVersion),
        ("GET / HTTP/3.1\r\nHost: x\r\n\r\n", BadVersion),
    ];
    for (raw, want) in cases {
        assert_eq!(err(raw), want, "{raw:?}");
        assert_eq!(want.kind().status(), 400);
    }
}

#[test]
fn limits_give_414_and_431() {
    let long = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(64));
    assert_eq!(err(&long), ParseError::UriTooLong);
    assert_eq!(ParseError::UriTooLong.kind().status(), 414);

    let many: String = (0..11).map(|i| format!("X-{i}: v\r\n")).collect();
    let raw = format!("GET / HTTP/1.1\r\nHost: x\r\n{many}\r\n");
    assert_eq!(err(&raw), ParseError::TooManyHeaders);
    assert_eq!(ParseError::TooManyHeaders.kind().status(), 431);

    // Too large, complete and still incomplete.
    let big = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "b".repeat(8192)
    );
    assert_eq!(err(&big), ParseError::HeadTooLarge);
    assert_eq!(err(&big[..big.len() - 4]), ParseError::HeadTooLarge);
    assert_eq!(ParseError::HeadTooLarge.kind().status(), 431);

    // A request line that never ends is a target too long.
    let endless = format!("GET /{}", "a".repeat(9000));
    assert_eq!(err(&endless), ParseError::UriTooLong);
}

#[test]
fn more_headers_than_the_stack_holds_use_the_heap() {
    let l = Limits {
        max_headers: 300,
        ..limits()
    };
    let many: String = (0..250).map(|i| format!("X-{i}: v\r\n")).collect();
    let mut buf = BytesMut::from(format!("GET / HTTP/1.1\r\nHost: x\r\n{many}\r\n").as_str());
    let h = parse(&mut buf, &l).unwrap().unwrap();
    assert_eq!(h.headers.len(), 251);
}

#[test]
fn repeated_fields_keep_their_order() {
    let h = ok("GET / HTTP/1.1\r\nHost: x\r\nCookie: a\r\nX: 1\r\nCookie: b\r\n\r\n");
    let all: Vec<_> = h.headers.get_all("cookie").iter().collect();
    assert_eq!(all, ["a", "b"]);
}

#[test]
fn leading_empty_line_is_ignored() {
    assert_eq!(
        ok("\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n").method,
        Method::GET
    );
}

#[test]
fn parse_length_edges() {
    assert_eq!(parse_length(b"0"), Some(0));
    assert_eq!(parse_length(b"007"), Some(7));
    assert_eq!(parse_length(b"18446744073709551615"), Some(u64::MAX));
    assert_eq!(parse_length(b"18446744073709551616"), None);
    assert_eq!(parse_length(b""), None);
    assert_eq!(parse_length(b"1a"), None);
}

/// RFC 9110 §2.5: a higher HTTP/1.x minor version is handled as 1.1.
#[test]
fn a_higher_minor_version_is_read_as_http11() {
    let h = ok("GET / HTTP/1.2\r\nHost: x\r\n\r\n");
    assert_eq!(h.version, Version::HTTP_11);
    assert!(h.keep_alive);
}

/// RFC 9112 §3.2.4: `OPTIONS http://a` (no path, no query) is server-wide.
#[test]
fn options_with_an_empty_absolute_path_becomes_asterisk_form() {
    let h = ok("OPTIONS http://a.test:8080 HTTP/1.1\r\nHost: other\r\n\r\n");
    assert_eq!(h.uri, "*");
    assert_eq!(h.headers["host"], "a.test:8080");
    for (raw, uri) in [
        (
            "OPTIONS http://a.test/ HTTP/1.1\r\nHost: a.test\r\n\r\n",
            "http://a.test/",
        ),
        (
            "OPTIONS http://a.test?q HTTP/1.1\r\nHost: a.test\r\n\r\n",
            "http://a.test/?q",
        ),
        (
            "GET http://a.test HTTP/1.1\r\nHost: a.test\r\n\r\n",
            "http://a.test/",
        ),
        ("OPTIONS * HTTP/1.1\r\nHost: a.test\r\n\r\n", "*"),
    ] {
        assert_eq!(ok(raw).uri, uri, "{raw:?}");
    }
    assert_eq!(
        err("GET * HTTP/1.1\r\nHost: a.test\r\n\r\n"),
        ParseError::BadUri
    );
}
