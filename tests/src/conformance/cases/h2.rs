//! RFC 9113 (HTTP/2): connection-specific fields and cookies (§8.2),
//! pseudo-header fields (§8.3), and RFC 8441 extended CONNECT. Malformed
//! requests go out through the hand-written client (`Send::H2Raw`), since
//! the h2 crate refuses to send them.

use crate::conformance::case::{Case, Check, H2Request, Origin, Send, case};

/// A raw request that must be refused as malformed (RFC 9113 §8.1.1:
/// "Intermediaries that process HTTP requests or responses ... MUST NOT
/// forward a malformed request or response").
fn malformed(
    id: &'static str,
    section: &'static str,
    requirement: &'static str,
    fields: &'static [(&'static str, &'static str)],
) -> Case {
    case(
        id,
        section,
        requirement,
        Send::H2Raw { fields, body: b"" },
        vec![Check::Refused],
    )
}

const CONNECTION_SPECIFIC: &str = "An endpoint MUST NOT generate an HTTP/2 message containing connection-specific header fields ... Any message containing connection-specific header fields MUST be treated as malformed";

pub fn cases() -> Vec<Case> {
    vec![
        malformed(
            "h2-connection-field-malformed",
            "RFC 9113 §8.2.2",
            CONNECTION_SPECIFIC,
            &[(":method", "GET"), (":scheme", "http"), (":authority", "conformance.test"), (":path", "/"), ("connection", "keep-alive")],
        ),
        malformed(
            "h2-transfer-encoding-malformed",
            "RFC 9113 §8.2.2",
            CONNECTION_SPECIFIC,
            &[(":method", "GET"), (":scheme", "http"), (":authority", "conformance.test"), (":path", "/"), ("transfer-encoding", "chunked")],
        ),
        malformed(
            "h2-upgrade-malformed",
            "RFC 9113 §8.2.2",
            CONNECTION_SPECIFIC,
            &[(":method", "GET"), (":scheme", "http"), (":authority", "conformance.test"), (":path", "/"), ("upgrade", "websocket")],
        ),
        malformed(
            "h2-keep-alive-malformed",
            "RFC 9113 §8.2.2",
            CONNECTION_SPECIFIC,
            &[(":method", "GET"), (":scheme", "http"), (":authority", "conformance.test"), (":path", "/"), ("keep-alive", "timeout=5")],
        ),
        malformed(
            "h2-te-not-trailers-malformed",
            "RFC 9113 §8.2.2",
            "The only exception to this is the TE header field, which MAY be present in an HTTP/2 request; when it is, it MUST NOT contain any value other than \"trailers\"",
            &[(":method", "GET"), (":scheme", "http"), (":authority", "conformance.test"), (":path", "/"), ("te", "gzip")],
        ),
        case(
            "h2-te-trailers-accepted",
            "RFC 9113 §8.2.2",
            "The only exception to this is the TE header field, which MAY be present in an HTTP/2 request; when it is, it MUST NOT contain any value other than \"trailers\"",
            Send::H2(H2Request {
                headers: &[("te", "trailers")],
                ..H2Request::get("http://conformance.test/te")
            }),
            vec![Check::Status(200), Check::OriginRequests(1)],
        ),
        malformed(
            "h2-uppercase-field-name-malformed",
            "RFC 9113 §8.2.1",
            "A field name MUST NOT contain characters in the ranges 0x00-0x20, 0x41-0x5a, or 0x7f-0xff (all ranges inclusive) ... a request or response that contains a field that violates any of these conditions MUST be treated as malformed",
            &[(":method", "GET"), (":scheme", "http"), (":authority", "conformance.test"), (":path", "/"), ("X-Upper", "1")],
        ),
        malformed(
            "h2-field-value-crlf-malformed",
            "RFC 9113 §8.2.1",
            "A field value MUST NOT contain the zero value (ASCII NUL), line feed (ASCII LF), or carriage return (ASCII CR) at any position ... MUST be treated as malformed",
            &[(":method", "GET"), (":scheme", "http"), (":authority", "conformance.test"), (":path", "/"), ("x-split", "a\r\nx-injected: 1")],
        ),
        malformed(
            "h2-field-value-edge-whitespace-malformed",
            "RFC 9113 §8.2.1",
            "A field value MUST NOT start or end with an ASCII whitespace character (ASCII SP or HTAB, 0x20 or 0x09) ... a request or response that contains a field that violates any of these conditions MUST be treated as malformed",
            &[(":method", "GET"), (":scheme", "http"), (":authority", "conformance.test"), (":path", "/"), ("x-padded", " value ")],
        ),
        case(
            "h2-host-without-authority",
            "RFC 9113 §8.3.1",
            "An intermediary that needs to generate a Host header field ... MUST use the value from the :authority pseudo-header field as the value of the Host field, unless the intermediary also receives a Host header field (a request without :authority may carry Host instead)",
            Send::H2Raw {
                fields: &[(":method", "GET"), (":scheme", "http"), (":path", "/host"), ("host", "conformance.test")],
                body: b"",
            },
            vec![Check::Status(200), Check::OriginHeader("host", "conformance.test")],
        ),
        case(
            "h2-cookie-crumbs-joined-for-http11",
            "RFC 9113 §8.2.3",
            "If there are multiple cookie field lines after decompression, these MUST be concatenated into a single byte string using the two-octet delimiter of 0x3b, 0x20 (the ASCII string \"; \") before being passed into a non-HTTP/2 context, such as an HTTP/1.1 connection",
            Send::H2(H2Request {
                headers: &[("cookie", "a=1"), ("cookie", "b=2"), ("cookie", "c=3")],
                ..H2Request::get("http://conformance.test/cookies")
            }),
            vec![
                Check::Status(200),
                Check::Custom("one Cookie line, crumbs joined with \"; \"", |obs| {
                    let r = obs.origin.first().ok_or("no request at the origin")?;
                    let value = r.header("cookie");
                    if r.lines("cookie") == 1 && value.as_deref() == Some("a=1; b=2; c=3") {
                        Ok(())
                    } else {
                        Err(format!("origin saw {} Cookie line(s): {value:?}", r.lines("cookie")))
                    }
                }),
            ],
        ),
        case(
            "h2-authority-becomes-host",
            "RFC 9113 §8.3.1",
            "An intermediary that converts a request to HTTP/1.1 MUST create a Host header field if one is not present in a request by copying the value of the :authority pseudo-header field",
            Send::H2(H2Request::get("http://conformance.test/authority")),
            vec![Check::Status(200), Check::OriginHeader("host", "conformance.test")],
        ),
        malformed(
            "h2-authority-userinfo-malformed",
            "RFC 9113 §8.3.1",
            ":authority MUST NOT include the deprecated userinfo subcomponent for \"http\" or \"https\" schemed URIs",
            &[(":method", "GET"), (":scheme", "http"), (":authority", "user@conformance.test"), (":path", "/")],
        ),
        Case {
            sluice_differs: Some(
                "a SHOULD that Sluice meets another way: it routes by :authority and forwards Host replaced by it (issue 14, finding 3; e2e host.rs), so the backend never sees the other host and routing and backend agree",
            ),
            ..malformed(
            "h2-authority-host-differ-malformed",
            "RFC 9113 §8.3.1",
            "A server SHOULD treat a request as malformed if it contains a Host header field that identifies an entity that differs from the entity in the :authority pseudo-header field",
            &[(":method", "GET"), (":scheme", "http"), (":authority", "conformance.test"), (":path", "/"), ("host", "other.test")],
        )
        },
        malformed(
            "h2-method-missing-malformed",
            "RFC 9113 §8.3.1",
            "All HTTP/2 requests MUST include exactly one valid value for the :method, :scheme, and :path pseudo-header fields, unless they are CONNECT requests",
            &[(":scheme", "http"), (":authority", "conformance.test"), (":path", "/")],
        ),
        malformed(
            "h2-path-missing-malformed",
            "RFC 9113 §8.3.1",
            "All HTTP/2 requests MUST include exactly one valid value for the :method, :scheme, and :path pseudo-header fields, unless they are CONNECT requests",
            &[(":method", "GET"), (":scheme", "http"), (":authority", "conformance.test")],
        ),
        malformed(
            "h2-path-duplicate-malformed",
            "RFC 9113 §8.3.1",
            "All HTTP/2 requests MUST include exactly one valid value for the :method, :scheme, and :path pseudo-header fields",
            &[(":method", "GET"), (":scheme", "http"), (":authority", "conformance.test"), (":path", "/a"), (":path", "/b")],
        ),
        malformed(
            "h2-path-empty-malformed",
            "RFC 9113 §8.3.1",
            "This pseudo-header field [:path] MUST NOT be empty for \"http\" or \"https\" URIs",
            &[(":method", "GET"), (":scheme", "http"), (":authority", "conformance.test"), (":path", "")],
        ),
        malformed(
            "h2-pseudo-after-regular-malformed",
            "RFC 9113 §8.3",
            "Any request or response that contains a pseudo-header field that appears in a field block after a regular field line MUST be treated as malformed",
            &[(":method", "GET"), (":scheme", "http"), ("x-early", "1"), (":authority", "conformance.test"), (":path", "/")],
        ),
        malformed(
            "h2-unknown-pseudo-malformed",
            "RFC 9113 §8.3",
            "Endpoints MUST treat a request or response that contains undefined or invalid pseudo-header fields as malformed",
            &[(":method", "GET"), (":scheme", "http"), (":authority", "conformance.test"), (":path", "/"), (":custom", "1")],
        ),
        malformed(
            "h2-response-pseudo-in-request-malformed",
            "RFC 9113 §8.3",
            "Pseudo-header fields defined for responses MUST NOT appear in requests",
            &[(":method", "GET"), (":scheme", "http"), (":authority", "conformance.test"), (":path", "/"), (":status", "200")],
        ),
        malformed(
            "h2-connect-with-path-malformed",
            "RFC 9113 §8.5",
            "[In a CONNECT request] The :scheme and :path pseudo-header fields MUST be omitted. A CONNECT request that does not conform to these restrictions is malformed",
            &[(":method", "CONNECT"), (":authority", "conformance.test:443"), (":scheme", "http"), (":path", "/")],
        ),
        case(
            "h2-content-length-mismatch-not-forwarded",
            "RFC 9113 §8.1.1",
            "A request or response is also malformed if the value of a content-length header field does not equal the sum of the DATA frame payload lengths ... Intermediaries ... MUST NOT forward a malformed request",
            Send::H2Raw {
                fields: &[(":method", "POST"), (":scheme", "http"), (":authority", "conformance.test"), (":path", "/cl"), ("content-length", "10")],
                body: b"hello",
            },
            vec![Check::NotForwarded],
        ),
        Case {
            origin: Origin::replies(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"),
            sluice_differs: Some(
                "Sluice does not implement RFC 8441: it does not send SETTINGS_ENABLE_CONNECT_PROTOCOL, so an HTTP/2 client does not try (websockets work over HTTP/1.1 Upgrade); the next case checks that a :protocol request sent anyway is refused cleanly",
            ),
            ..case(
                "rfc8441-websocket-over-h2",
                "RFC 8441 §4, §5",
                "a server ... [that sends] SETTINGS_ENABLE_CONNECT_PROTOCOL ... a CONNECT request with :protocol websocket ... establishes a tunnel; a 2xx status means the websocket is open",
                Send::H2(H2Request {
                    method: "CONNECT",
                    uri: "http://conformance.test/ws",
                    headers: &[("sec-websocket-version", "13")],
                    body: b"",
                    protocol: Some("websocket"),
                }),
                vec![Check::Status(200), Check::OriginHeaderContains("upgrade", "websocket")],
            )
        },
        Case {
            origin: Origin::replies(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"),
            ..case(
                "rfc8441-protocol-handled-cleanly",
                "RFC 8441 §4; RFC 9113 §8.3",
                "Endpoints MUST treat a request that contains undefined or invalid pseudo-header fields as malformed (:protocol is undefined unless SETTINGS_ENABLE_CONNECT_PROTOCOL was sent); a server that supports it tunnels the websocket",
                Send::H2Raw {
                    fields: &[(":method", "CONNECT"), (":protocol", "websocket"), (":scheme", "http"), (":authority", "conformance.test"), (":path", "/ws"), ("sec-websocket-version", "13")],
                    body: b"",
                },
                vec![Check::Custom("refused, or tunnelled as a websocket upgrade", |obs| {
                    if obs.origin.is_empty() {
                        return match obs.status {
                            None if obs.h2_error.is_some() => Ok(()),
                            Some(s) if (400..500).contains(&s) || s == 501 => Ok(()),
                            other => Err(format!("neither refused nor tunnelled: status {other:?}")),
                        };
                    }
                    let r = &obs.origin[0];
                    let upgrade = r.header("upgrade").unwrap_or_default();
                    if r.method == "GET" && upgrade.eq_ignore_ascii_case("websocket") {
                        Ok(())
                    } else {
                        Err(format!("forwarded as {} with Upgrade {upgrade:?}", r.method))
                    }
                })],
            )
        },
    ]
}
