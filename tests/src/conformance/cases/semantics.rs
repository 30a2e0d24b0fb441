//! RFC 9110 (HTTP Semantics): what an intermediary does with Connection,
//! Max-Forwards and Via (§7.6), Host (§7.2), the protocol version (§2.5),
//! interim responses (§15.2) and `Expect: 100-continue` (§10.1.1).

use crate::conformance::case::{Case, Check, H2Request, Observed, Origin, Send, case};

/// The proxy answered itself: a final status that is not a gateway error.
fn answered_itself(obs: &Observed) -> Result<(), String> {
    if !obs.origin.is_empty() {
        return Err(format!(
            "forwarded: the origin received {} request(s)",
            obs.origin.len()
        ));
    }
    match obs.status {
        Some(s) if s >= 200 && !matches!(s, 502..=504) => Ok(()),
        other => Err(format!("no answer of its own: status {other:?}")),
    }
}

fn via_lines(obs: &Observed) -> Result<Vec<String>, String> {
    let r = obs.origin.first().ok_or("the origin received no request")?;
    let via = r.header("via").ok_or("no Via at the origin")?;
    Ok(via.split(',').map(|v| v.trim().to_owned()).collect())
}

pub fn cases() -> Vec<Case> {
    vec![
        case(
            "connection-option-field-removed",
            "RFC 9110 §7.6.1",
            "Intermediaries MUST parse a received Connection header field before a message is forwarded and, for each connection-option in this field, remove any header or trailer field(s) from the message with the same name as the connection-option, and then remove the Connection header field itself",
            Send::H1(b"GET /c HTTP/1.1\r\nHost: conformance.test\r\nConnection: x-hop\r\nX-Hop: secret\r\nX-End: kept\r\n\r\n"),
            vec![
                Check::Status(200),
                Check::OriginLacks("x-hop"),
                Check::OriginHeader("x-end", "kept"),
                Check::Custom("Connection itself not forwarded", |obs| {
                    let r = obs.origin.first().ok_or("no request at the origin")?;
                    match r.header("connection") {
                        Some(c) if c.to_ascii_lowercase().contains("x-hop") => Err(format!("origin saw Connection: {c}")),
                        _ => Ok(()),
                    }
                }),
            ],
        ),
        Case {
            origin: Origin::replies(b"HTTP/1.1 200 OK\r\nConnection: x-resp-hop\r\nX-Resp-Hop: secret\r\nContent-Length: 2\r\n\r\nok"),
            ..case(
                "connection-option-field-removed-response",
                "RFC 9110 §7.6.1",
                "Intermediaries MUST parse a received Connection header field before a message is forwarded and, for each connection-option in this field, remove any header or trailer field(s) from the message with the same name",
                Send::H1(b"GET /c HTTP/1.1\r\nHost: conformance.test\r\n\r\n"),
                vec![Check::Status(200), Check::ClientLacks("x-resp-hop"), Check::ClientBody(b"ok")],
            )
        },
        case(
            "known-hop-by-hop-fields-removed",
            "RFC 9110 §7.6.1",
            "Intermediaries SHOULD remove or replace fields that are known to require removal before forwarding, whether or not they appear as a connection-option: Proxy-Connection, Keep-Alive, TE, Transfer-Encoding, and Upgrade",
            Send::H1(b"GET /h HTTP/1.1\r\nHost: conformance.test\r\nKeep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\nTE: gzip\r\n\r\n"),
            vec![
                Check::Status(200),
                Check::OriginLacks("keep-alive"),
                Check::OriginLacks("proxy-connection"),
                Check::OriginLacks("te"),
            ],
        ),
        case(
            "max-forwards-zero-options-answered",
            "RFC 9110 §7.6.2",
            "If the received Max-Forwards value is zero (0), the intermediary MUST NOT forward the request; instead, the intermediary MUST respond as the final recipient",
            Send::H1(b"OPTIONS /mf HTTP/1.1\r\nHost: conformance.test\r\nMax-Forwards: 0\r\n\r\n"),
            vec![Check::Custom("answered by the proxy", answered_itself)],
        ),
        case(
            "max-forwards-zero-trace-answered",
            "RFC 9110 §7.6.2",
            "If the received Max-Forwards value is zero (0), the intermediary MUST NOT forward the request (TRACE or OPTIONS); instead, the intermediary MUST respond as the final recipient",
            Send::H1(b"TRACE /mf HTTP/1.1\r\nHost: conformance.test\r\nMax-Forwards: 0\r\n\r\n"),
            vec![Check::Custom("answered by the proxy", answered_itself)],
        ),
        case(
            "max-forwards-decremented",
            "RFC 9110 §7.6.2",
            "If the received Max-Forwards value is greater than zero, the intermediary MUST generate an updated Max-Forwards field in the forwarded message with a field value that is the lesser of a) the received value decremented by one (1) or b) the recipient's maximum supported value",
            Send::H1(b"OPTIONS /mf HTTP/1.1\r\nHost: conformance.test\r\nMax-Forwards: 5\r\n\r\n"),
            vec![
                Check::OriginRequests(1),
                Check::Custom("Max-Forwards at most 4", |obs| {
                    let r = obs.origin.first().ok_or("no request at the origin")?;
                    match r.header("max-forwards").and_then(|v| v.parse::<u64>().ok()) {
                        Some(v) if v <= 4 => Ok(()),
                        other => Err(format!("origin saw Max-Forwards {other:?}, expected at most 4")),
                    }
                }),
            ],
        ),
        case(
            "via-added-to-request",
            "RFC 9110 §7.6.3",
            "An HTTP-to-HTTP gateway MUST send an appropriate Via header field in each inbound request message",
            Send::H1(b"GET /via HTTP/1.1\r\nHost: conformance.test\r\n\r\n"),
            vec![Check::Status(200), Check::OriginHeaderContains("via", "1.1 ")],
        ),
        case(
            "via-appended-to-received",
            "RFC 9110 §7.6.3",
            "a proxy MUST send an appropriate Via header field ... each intermediary appends its own information about how the message was received, so that the end result is ordered according to the sequence of forwarding recipients",
            Send::H1(b"GET /via HTTP/1.1\r\nHost: conformance.test\r\nVia: 1.0 fred\r\n\r\n"),
            vec![
                Check::Status(200),
                Check::Custom("the received Via first, then this hop", |obs| {
                    let lines = via_lines(obs)?;
                    if lines.len() == 2 && lines[0] == "1.0 fred" && lines[1].starts_with("1.1 ") {
                        Ok(())
                    } else {
                        Err(format!("origin saw Via {lines:?}"))
                    }
                }),
            ],
        ),
        case(
            "via-received-protocol-http10",
            "RFC 9110 §7.6.3",
            "For each intermediary, the received-protocol indicates the protocol and protocol version used by the upstream sender of the message",
            Send::H1(b"GET /via HTTP/1.0\r\nHost: conformance.test\r\n\r\n"),
            vec![
                Check::Status(200),
                Check::Custom("Via names HTTP/1.0", |obs| {
                    let lines = via_lines(obs)?;
                    if lines.last().is_some_and(|l| l.starts_with("1.0 ")) {
                        Ok(())
                    } else {
                        Err(format!("origin saw Via {lines:?}"))
                    }
                }),
            ],
        ),
        case(
            "via-received-protocol-h2",
            "RFC 9110 §7.6.3",
            "For each intermediary, the received-protocol indicates the protocol and protocol version used by the upstream sender of the message",
            Send::H2(H2Request::get("http://conformance.test/via")),
            vec![
                Check::Status(200),
                Check::Custom("Via names HTTP/2", |obs| {
                    let lines = via_lines(obs)?;
                    if lines.last().is_some_and(|l| l.starts_with("2 ") || l.starts_with("2.0 ")) {
                        Ok(())
                    } else {
                        Err(format!("origin saw Via {lines:?}"))
                    }
                }),
            ],
        ),
        case(
            "absolute-form-host-replaced",
            "RFC 9110 §7.2",
            "When a proxy receives a request with an absolute-form of request-target, the proxy MUST ignore the received Host header field (if any) and instead replace it with the host information of the request-target",
            Send::H1(b"GET http://conformance.test/abs HTTP/1.1\r\nHost: other.test\r\n\r\n"),
            vec![Check::Status(200), Check::OriginHeader("host", "conformance.test")],
        ),
        case(
            "higher-minor-version-as-1.1",
            "RFC 9110 §2.5",
            "A recipient that receives a message with a higher minor version number than it implements SHOULD process the message as if it were in the highest minor version within that major version to which the recipient is conformant",
            Send::H1(b"GET /v HTTP/1.7\r\nHost: conformance.test\r\n\r\n"),
            vec![Check::Status(200), Check::OriginVersion("HTTP/1.1")],
        ),
        Case {
            origin: Origin::replies(b"HTTP/1.4 200 OK\r\nContent-Length: 2\r\n\r\nok"),
            ..case(
                "higher-minor-version-response-as-1.1",
                "RFC 9110 §2.5",
                "A recipient that receives a message with a higher minor version number than it implements SHOULD process the message as if it were in the highest minor version within that major version",
                Send::H1(b"GET /v HTTP/1.1\r\nHost: conformance.test\r\n\r\n"),
                vec![Check::Status(200), Check::ClientBody(b"ok")],
            )
        },
        Case {
            origin: Origin {
                after_head: b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n",
                ..Origin::default()
            },
            ..case(
                "interim-103-forwarded",
                "RFC 9110 §15.2",
                "A proxy MUST forward 1xx responses unless the proxy itself requested the generation of the 1xx response",
                Send::H1(b"GET /hints HTTP/1.1\r\nHost: conformance.test\r\n\r\n"),
                vec![Check::Interim(&[103]), Check::Status(200), Check::ClientBody(b"ok")],
            )
        },
        Case {
            origin: Origin {
                after_head: b"HTTP/1.1 102 Processing\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.js>; rel=preload\r\n\r\n",
                ..Origin::default()
            },
            ..case(
                "interim-several-forwarded-in-order",
                "RFC 9110 §15.2",
                "A proxy MUST forward 1xx responses unless the proxy itself requested the generation of the 1xx response",
                Send::H1(b"GET /hints HTTP/1.1\r\nHost: conformance.test\r\n\r\n"),
                vec![Check::Interim(&[102, 103]), Check::Status(200)],
            )
        },
        Case {
            origin: Origin {
                after_head: b"HTTP/1.1 150 Unassigned\r\n\r\n",
                ..Origin::default()
            },
            ..case(
                "interim-unknown-1xx-forwarded",
                "RFC 9110 §15.2",
                "A proxy MUST forward 1xx responses unless the proxy itself requested the generation of the 1xx response (a client MUST be able to parse 1xx responses it does not expect)",
                Send::H1(b"GET /hints HTTP/1.1\r\nHost: conformance.test\r\n\r\n"),
                vec![Check::Interim(&[150]), Check::Status(200)],
            )
        },
        Case {
            origin: Origin {
                after_head: b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n",
                ..Origin::default()
            },
            ..case(
                "interim-not-sent-to-http10-client",
                "RFC 9110 §15.2",
                "A server MUST NOT send a 1xx response to an HTTP/1.0 client",
                Send::H1(b"GET /hints HTTP/1.0\r\nHost: conformance.test\r\n\r\n"),
                vec![Check::Interim(&[]), Check::Status(200), Check::ClientBody(b"ok")],
            )
        },
        Case {
            origin: Origin {
                after_head: b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n",
                ..Origin::default()
            },
            sluice_differs: Some(
                "hyper's HTTP/2 server, which serves Sluice's HTTP/2 clients, has no API to send an interim response (h2 has send_informational; hyper 1.x does not expose it): Sluice forwards 1xx to HTTP/1.1 clients only",
            ),
            ..case(
                "interim-103-forwarded-h2",
                "RFC 9110 §15.2",
                "A proxy MUST forward 1xx responses unless the proxy itself requested the generation of the 1xx response",
                Send::H2(H2Request::get("http://conformance.test/hints")),
                vec![Check::Interim(&[103]), Check::Status(200)],
            )
        },
        case(
            "expect-100-continue",
            "RFC 9110 §10.1.1",
            "A server that receives a 100-continue expectation in an HTTP/1.1 request ... MUST either send an immediate response with a final status code ... or send an immediate 100 (Continue) response to encourage the client to send the request content",
            Send::H1Continue {
                head: b"POST /upload HTTP/1.1\r\nHost: conformance.test\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n",
                body: b"hello",
            },
            vec![Check::Interim(&[100]), Check::Status(200), Check::OriginBody(b"hello")],
        ),
        case(
            "expect-ignored-from-http10",
            "RFC 9110 §10.1.1",
            "A server that receives a 100-continue expectation in an HTTP/1.0 request MUST ignore that expectation",
            Send::H1(b"POST /upload HTTP/1.0\r\nHost: conformance.test\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\nhello"),
            vec![Check::Interim(&[]), Check::Status(200), Check::OriginBody(b"hello")],
        ),
    ]
}
