//! RFC 9112 (HTTP/1.1): request-target forms and Host (§3.2), message
//! framing (§6), chunked transfer coding (§7.1), persistence (§9.3) and
//! `Connection: close` (§9.6).

use crate::conformance::case::{Case, Check, Observed, Origin, Send, case};

fn refused_and_closed(send: &'static [u8]) -> (Send, Vec<Check>) {
    (
        Send::H1(send),
        vec![
            Check::Status(400),
            Check::OriginRequests(0),
            Check::ClientClosed,
        ],
    )
}

pub fn cases() -> Vec<Case> {
    let refuse = |id, section, requirement, bytes| {
        let (send, checks) = refused_and_closed(bytes);
        case(id, section, requirement, send, checks)
    };
    vec![
        case(
            "host-missing-400",
            "RFC 9112 §3.2",
            "A server MUST respond with a 400 (Bad Request) status code to any HTTP/1.1 request message that lacks a Host header field",
            Send::H1(b"GET /h HTTP/1.1\r\n\r\n"),
            vec![Check::Status(400), Check::OriginRequests(0)],
        ),
        case(
            "host-duplicate-400",
            "RFC 9112 §3.2",
            "A server MUST respond with a 400 (Bad Request) status code to ... any request message that contains more than one Host header field line",
            Send::H1(b"GET /h HTTP/1.1\r\nHost: conformance.test\r\nHost: other.test\r\n\r\n"),
            vec![Check::Status(400), Check::OriginRequests(0)],
        ),
        case(
            "host-invalid-400",
            "RFC 9112 §3.2",
            "A server MUST respond with a 400 (Bad Request) status code to ... a Host header field with an invalid field value",
            Send::H1(b"GET /h HTTP/1.1\r\nHost: a/b@c\r\n\r\n"),
            vec![Check::Status(400), Check::OriginRequests(0)],
        ),
        case(
            "absolute-form-sent-as-origin-form",
            "RFC 9112 §3.2.1",
            "When making a request directly to an origin server, other than a CONNECT or server-wide OPTIONS request, a client MUST send only the absolute path and query components of the target URI as the request-target",
            Send::H1(b"GET http://conformance.test/abs?q=1 HTTP/1.1\r\nHost: conformance.test\r\n\r\n"),
            vec![Check::Status(200), Check::OriginTarget("/abs?q=1")],
        ),
        case(
            "absolute-form-options-to-asterisk",
            "RFC 9112 §3.2.4",
            "When a proxy receives an OPTIONS request with an absolute-form of request-target in which the URI has an empty path and no query component, the last proxy on the request chain MUST send a request-target of \"*\" when it forwards the request to the indicated origin server",
            Send::H1(b"OPTIONS http://conformance.test HTTP/1.1\r\nHost: conformance.test\r\n\r\n"),
            vec![Check::OriginTarget("*"), Check::OriginHeader("host", "conformance.test")],
        ),
        case(
            "asterisk-form-options-forwarded",
            "RFC 9112 §3.2.4",
            "The asterisk-form of request-target is only used for a server-wide OPTIONS request ... the last proxy on the request chain MUST send a request-target of \"*\" when it forwards the request to the indicated origin server",
            Send::H1(b"OPTIONS * HTTP/1.1\r\nHost: conformance.test\r\n\r\n"),
            vec![Check::Status(200), Check::OriginTarget("*")],
        ),
        case(
            "authority-form-only-for-connect",
            "RFC 9112 §3.2.3",
            "The authority-form of request-target is only used for CONNECT requests",
            Send::H1(b"GET conformance.test:80 HTTP/1.1\r\nHost: conformance.test\r\n\r\n"),
            vec![Check::Refused],
        ),
        case(
            "asterisk-form-only-for-options",
            "RFC 9112 §3.2.4",
            "The asterisk-form of request-target is only used for a server-wide OPTIONS request",
            Send::H1(b"GET * HTTP/1.1\r\nHost: conformance.test\r\n\r\n"),
            vec![Check::Refused],
        ),
        case(
            "request-line-invalid-400",
            "RFC 9112 §3",
            "Recipients of an invalid request-line SHOULD respond with either a 400 (Bad Request) error or a 301 (Moved Permanently) redirect with the request-target properly encoded",
            Send::H1(b"GET /a b HTTP/1.1\r\nHost: conformance.test\r\n\r\n"),
            vec![Check::Refused],
        ),
        case(
            "field-name-whitespace-400",
            "RFC 9112 §5.1",
            "A server MUST reject, with a response status code of 400 (Bad Request), any received request message that contains whitespace between a header field name and colon",
            Send::H1(b"GET /ws HTTP/1.1\r\nHost: conformance.test\r\nX-Spaced : 1\r\n\r\n"),
            vec![Check::Status(400), Check::OriginRequests(0)],
        ),
        case(
            "obs-fold-request-refused-or-unfolded",
            "RFC 9112 §5.2",
            "A server that receives an obs-fold in a request message ... MUST either reject the message by sending a 400 (Bad Request) ... or replace each received obs-fold with one or more SP octets prior to interpreting the field value or forwarding the message downstream",
            Send::H1(b"GET /fold HTTP/1.1\r\nHost: conformance.test\r\nX-Folded: first\r\n  second\r\n\r\n"),
            vec![Check::Custom("400, or forwarded unfolded", |obs: &Observed| {
                match obs.origin.first() {
                    None if obs.status == Some(400) => Ok(()),
                    None => Err(format!("status {:?} and nothing forwarded", obs.status)),
                    Some(r) => {
                        let head = String::from_utf8_lossy(&r.head);
                        if head.contains("\r\n  second") || head.contains("\r\n\tsecond") {
                            Err("the obs-fold was forwarded".into())
                        } else if r.header("x-folded").is_some_and(|v| v.contains("second")) {
                            Ok(())
                        } else {
                            Err(format!("the folded value was lost: {:?}", r.header("x-folded")))
                        }
                    }
                }
            })],
        ),
        Case {
            origin: Origin::replies(b"HTTP/1.1 200 OK\r\nX-Folded: first\r\n  second\r\nContent-Length: 2\r\n\r\nok"),
            ..case(
                "obs-fold-response-502-or-unfolded",
                "RFC 9112 §5.2",
                "A proxy or gateway that receives an obs-fold in a response message that is not within a \"message/http\" container MUST either discard the message and replace it with a 502 (Bad Gateway) response ... or replace each received obs-fold with one or more SP octets prior to interpreting the field value or forwarding the message downstream",
                Send::H1(b"GET /fold HTTP/1.1\r\nHost: conformance.test\r\n\r\n"),
                vec![Check::Custom("502, or forwarded unfolded", |obs: &Observed| match obs.status {
                    Some(502) => Ok(()),
                    Some(200) if obs.header("x-folded").is_some_and(|v| v.contains("second")) => Ok(()),
                    other => Err(format!("status {other:?}, X-Folded {:?}", obs.header("x-folded"))),
                })],
            )
        },
        case(
            "field-value-nul-refused-or-replaced",
            "RFC 9110 §5.5",
            "a recipient of CR, LF, or NUL within a field value MUST either reject the message or replace each of those characters with SP before further processing or forwarding of that message",
            Send::H1(b"GET /nul HTTP/1.1\r\nHost: conformance.test\r\nX-Nul: a\x00b\r\n\r\n"),
            vec![Check::Custom("refused, or forwarded with SP", |obs: &Observed| match obs.origin.first() {
                None if obs.status.is_some_and(|s| (400..500).contains(&s)) => Ok(()),
                None => Err(format!("status {:?}", obs.status)),
                Some(r) if !r.head.contains(&0) => Ok(()),
                Some(_) => Err("the NUL was forwarded".into()),
            })],
        ),
        case(
            "bare-cr-refused-or-replaced",
            "RFC 9112 §2.2",
            "A recipient of such a bare CR MUST consider that element to be invalid or replace each bare CR with SP before processing the element or forwarding the message",
            Send::H1(b"GET /cr HTTP/1.1\r\nHost: conformance.test\r\nX-Cr: a\rb\r\n\r\n"),
            vec![Check::Custom("refused, or forwarded with SP", |obs: &Observed| match obs.origin.first() {
                None if obs.status.is_some_and(|s| (400..500).contains(&s)) => Ok(()),
                None => Err(format!("status {:?}", obs.status)),
                Some(r) if !r.head.windows(2).any(|w| w[0] == b'\r' && w[1] != b'\n') => Ok(()),
                Some(_) => Err("the bare CR was forwarded".into()),
            })],
        ),
        case(
            "whitespace-before-first-field",
            "RFC 9112 §2.2",
            "A recipient that receives whitespace between the start-line and the first header field MUST either reject the message as invalid or consume each whitespace-preceded line without further processing of it",
            Send::H1(b"GET /ws HTTP/1.1\r\n X-Sneaky: 1\r\nHost: conformance.test\r\n\r\n"),
            vec![Check::Custom("refused, or the line ignored", |obs: &Observed| match obs.origin.first() {
                None if obs.status.is_some_and(|s| (400..500).contains(&s)) => Ok(()),
                None => Err(format!("status {:?}", obs.status)),
                Some(r) if r.header("x-sneaky").is_none() => Ok(()),
                Some(_) => Err("the whitespace-preceded line was forwarded as a field".into()),
            })],
        ),
        case(
            "cl-and-te-chunked-closes",
            "RFC 9112 §6.1, §6.3",
            "A server MAY reject a request that contains both Content-Length and Transfer-Encoding or process such a request in accordance with the Transfer-Encoding alone. Regardless, the server MUST close the connection after responding to such a request; an intermediary that forwards it MUST first remove the received Content-Length",
            Send::H1(b"POST /f HTTP/1.1\r\nHost: conformance.test\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
            vec![
                Check::ClientClosed,
                Check::Custom("rejected, or forwarded by Transfer-Encoding alone", |obs: &Observed| {
                    match obs.origin.first() {
                        None if obs.status.is_some_and(|s| (400..500).contains(&s)) => Ok(()),
                        None => Err(format!("neither refused nor forwarded: status {:?}", obs.status)),
                        Some(r) if r.body == b"hello" && r.header("content-length").is_none_or(|l| l == "5") => Ok(()),
                        Some(r) => Err(format!(
                            "forwarded with body {:?} and Content-Length {:?}",
                            String::from_utf8_lossy(&r.body),
                            r.header("content-length")
                        )),
                    }
                }),
            ],
        ),
        refuse(
            "cl-invalid-400",
            "RFC 9112 §6.3",
            "If a message is received without Transfer-Encoding and with an invalid Content-Length header field ... If this is a request message, the server MUST respond with a 400 (Bad Request) status code and then close the connection",
            b"POST /f HTTP/1.1\r\nHost: conformance.test\r\nContent-Length: 5x\r\n\r\nhello",
        ),
        refuse(
            "cl-multiple-different-400",
            "RFC 9112 §6.3",
            "an invalid Content-Length (two different values) ... If this is a request message, the server MUST respond with a 400 (Bad Request) status code and then close the connection",
            b"POST /f HTTP/1.1\r\nHost: conformance.test\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        ),
        refuse(
            "te-chunked-not-final-400",
            "RFC 9112 §6.3",
            "If a Transfer-Encoding header field is present in a request and the chunked transfer coding is not the final encoding, the message body length cannot be determined reliably; the server MUST respond with the 400 (Bad Request) status code and then close the connection",
            b"POST /f HTTP/1.1\r\nHost: conformance.test\r\nTransfer-Encoding: chunked, gzip\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        ),
        case(
            "te-in-http10-is-faulty",
            "RFC 9112 §6.1",
            "A server or client that receives an HTTP/1.0 message containing a Transfer-Encoding header field MUST treat the message as if the framing is faulty, even if a Content-Length is present, and close the connection after processing the message",
            Send::H1(b"POST /f HTTP/1.0\r\nHost: conformance.test\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
            vec![Check::NotForwarded, Check::ClientClosed],
        ),
        Case {
            origin: Origin::replies(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"),
            ..case(
                "response-cl-and-te",
                "RFC 9112 §6.3",
                "If a message is received with both a Transfer-Encoding and a Content-Length header field, the Transfer-Encoding overrides the Content-Length ... An intermediary that chooses to forward the message MUST first remove the received Content-Length field and process the Transfer-Encoding",
                Send::H1(b"GET /r HTTP/1.1\r\nHost: conformance.test\r\n\r\n"),
                vec![Check::Custom("a 502, or the chunked body without the Content-Length", |obs| match obs.status {
                    Some(502) => Ok(()),
                    Some(200) if obs.body == b"ok" && obs.header("content-length").is_none_or(|l| l == "2") => Ok(()),
                    other => Err(format!(
                        "status {other:?}, body {:?}, Content-Length {:?}",
                        String::from_utf8_lossy(&obs.body),
                        obs.header("content-length")
                    )),
                })],
            )
        },
        Case {
            origin: Origin::replies(b"HTTP/1.1 200 OK\r\nContent-Length: 2x\r\n\r\nok"),
            ..case(
                "response-cl-invalid-502",
                "RFC 9112 §6.3",
                "If this is a response message received by a proxy [with an invalid Content-Length], the proxy MUST close the connection to the server, discard the received response, and send a 502 (Bad Gateway) response to the client",
                Send::H1(b"GET /r HTTP/1.1\r\nHost: conformance.test\r\n\r\n"),
                vec![Check::Status(502)],
            )
        },
        Case {
            origin: Origin::replies(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok!"),
            ..case(
                "response-cl-multiple-different-502",
                "RFC 9112 §6.3",
                "If this is a response message received by a proxy [with differing Content-Length values], the proxy MUST close the connection to the server, discard the received response, and send a 502 (Bad Gateway) response to the client",
                Send::H1(b"GET /r HTTP/1.1\r\nHost: conformance.test\r\n\r\n"),
                vec![Check::Status(502)],
            )
        },
        Case {
            origin: Origin {
                close: true,
                ..Origin::replies(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end")
            },
            ..case(
                "response-close-delimited",
                "RFC 9112 §6.3",
                "Otherwise, this is a response message without a declared message body length, so the message body length is determined by the number of octets received prior to the server closing the connection",
                Send::H1(b"GET /r HTTP/1.1\r\nHost: conformance.test\r\n\r\n"),
                vec![Check::Status(200), Check::ClientBody(b"until the end")],
            )
        },
        Case {
            origin: Origin::replies(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n"),
            ..case(
                "no-content-length-in-204",
                "RFC 9110 §8.6",
                "A server MUST NOT send a Content-Length header field in any response with a status code of 1xx (Informational) or 204 (No Content)",
                Send::H1(b"GET /empty HTTP/1.1\r\nHost: conformance.test\r\n\r\n"),
                vec![Check::Status(204), Check::ClientLacks("content-length")],
            )
        },
        Case {
            origin: Origin::replies(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n"),
            ..case(
                "no-transfer-encoding-to-http10",
                "RFC 9112 §6.1",
                "A server MUST NOT send a response containing Transfer-Encoding unless the corresponding request indicates HTTP/1.1 (or later minor revisions)",
                Send::H1(b"GET /c HTTP/1.0\r\nHost: conformance.test\r\n\r\n"),
                vec![Check::Status(200), Check::ClientLacks("transfer-encoding"), Check::ClientBody(b"abcdef")],
            )
        },
        case(
            "chunked-request-decoded",
            "RFC 9112 §7.1",
            "A recipient MUST be able to parse and decode the chunked transfer coding (and MUST ignore unrecognized chunk extensions, §7.1.1)",
            Send::H1(b"POST /c HTTP/1.1\r\nHost: conformance.test\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"),
            vec![Check::Status(200), Check::OriginBody(b"hello world")],
        ),
        Case {
            origin: Origin::replies(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;name=value\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n"),
            ..case(
                "chunked-response-decoded",
                "RFC 9112 §7.1",
                "A recipient MUST be able to parse and decode the chunked transfer coding (and MUST ignore unrecognized chunk extensions, §7.1.1)",
                Send::H1(b"GET /c HTTP/1.1\r\nHost: conformance.test\r\n\r\n"),
                vec![Check::Status(200), Check::ClientBody(b"abcdef")],
            )
        },
        case(
            "chunk-size-overflow-refused",
            "RFC 9112 §7.1",
            "Recipients MUST anticipate potentially large hexadecimal numerals and prevent parsing errors due to integer conversion overflows or precision loss due to integer representation",
            Send::H1(b"POST /c HTTP/1.1\r\nHost: conformance.test\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000001\r\nhello\r\n0\r\n\r\n"),
            vec![Check::NotForwarded, Check::Status(400)],
        ),
        case(
            "close-option-closes-after-response",
            "RFC 9112 §9.6",
            "A server that receives a \"close\" connection option MUST initiate closure of the connection after it sends the final response to the request that contained the \"close\" connection option",
            Send::H1(b"GET /close HTTP/1.1\r\nHost: conformance.test\r\nConnection: close\r\n\r\n"),
            vec![Check::Status(200), Check::ClientClosed],
        ),
        Case {
            origin: Origin::replies(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"),
            ..case(
                "close-from-origin-ends-that-connection",
                "RFC 9112 §9.6",
                "A client that receives a \"close\" connection option MUST cease sending requests on that connection and close it after reading the response message containing the \"close\" connection option",
                Send::H1Sequence(&[
                    b"GET /one HTTP/1.1\r\nHost: conformance.test\r\n\r\n",
                    b"GET /two HTTP/1.1\r\nHost: conformance.test\r\n\r\n",
                ]),
                vec![
                    Check::OriginRequests(2),
                    Check::Custom("the second request on a new connection", |obs| {
                        let conns: Vec<usize> = obs.origin.iter().map(|r| r.conn).collect();
                        if conns.len() == 2 && conns[0] != conns[1] {
                            Ok(())
                        } else {
                            Err(format!("requests arrived on connections {conns:?}"))
                        }
                    }),
                ],
            )
        },
        case(
            "http10-without-keep-alive-closes",
            "RFC 9112 §9.3",
            "If the received protocol is HTTP/1.0, the \"keep-alive\" connection option is [not] present ... the connection will close after the current response",
            Send::H1(b"GET /old HTTP/1.0\r\nHost: conformance.test\r\n\r\n"),
            vec![Check::Status(200), Check::ClientClosed],
        ),
    ]
}
