//! The case format: data, so that one case runs against any proxy.
//!
//! A case is what the client sends ([`Send`]), what the origin answers
//! ([`Origin`]), and what must be observed ([`Check`]): the status and the
//! interim responses the client gets, header fields present or absent at
//! the origin and at the client, bytes. Every case names the section it
//! tests and quotes the requirement briefly.

use super::origin::Received;

/// The host every case's request names (peers route any host to the origin).
pub const HOST: &str = "conformance.test";

/// One requirement, tested.
#[derive(Clone, Debug)]
pub struct Case {
    /// Stable, unique, kebab-case: how the table and a failure name it.
    pub id: &'static str,
    /// `RFC 9110 §7.6.1`.
    pub section: &'static str,
    /// The requirement, quoted briefly (MUST or SHOULD).
    pub requirement: &'static str,
    pub send: Send,
    pub origin: Origin,
    pub checks: Vec<Check>,
    /// Where Sluice deliberately does something else: why. The runner then
    /// expects the case to fail for Sluice, and the table shows the note.
    pub sluice_differs: Option<&'static str>,
}

/// A case with the default origin (`200 ok`) that Sluice is expected to pass.
pub fn case(
    id: &'static str,
    section: &'static str,
    requirement: &'static str,
    send: Send,
    checks: Vec<Check>,
) -> Case {
    Case {
        id,
        section,
        requirement,
        send,
        origin: Origin::default(),
        checks,
        sluice_differs: None,
    }
}

/// What the client sends.
#[derive(Clone, Debug)]
pub enum Send {
    /// These exact bytes on a fresh TCP connection to the HTTP/1 listener;
    /// then the client reads responses (1xx first) until a final one.
    H1(&'static [u8]),
    /// Requests one after another on one HTTP/1 connection, each sent once
    /// the response to the one before is read; the observation is of the
    /// last (the statuses of all are kept).
    H1Sequence(&'static [&'static [u8]]),
    /// `Expect: 100-continue`: the head, then the body only once a `100`
    /// arrives (a final response instead ends the exchange).
    H1Continue {
        head: &'static [u8],
        body: &'static [u8],
    },
    /// An HTTP/2 request with prior knowledge (h2c) through the h2 crate,
    /// which refuses to send what RFC 9113 forbids.
    H2(H2Request),
    /// An HTTP/2 request whose field block is written by hand (no HPACK
    /// compression), for what the h2 crate would refuse to send: each pair
    /// goes out literally, in order, pseudo-fields included.
    H2Raw {
        fields: &'static [(&'static str, &'static str)],
        body: &'static [u8],
    },
}

/// An HTTP/2 request for the h2 crate.
#[derive(Clone, Debug)]
pub struct H2Request {
    pub method: &'static str,
    /// Absolute URI: scheme and authority become `:scheme`/`:authority`.
    pub uri: &'static str,
    pub headers: &'static [(&'static str, &'static str)],
    pub body: &'static [u8],
    /// RFC 8441: sent as `:protocol`, which needs the server's
    /// SETTINGS_ENABLE_CONNECT_PROTOCOL.
    pub protocol: Option<&'static str>,
}

impl H2Request {
    pub const fn get(uri: &'static str) -> H2Request {
        H2Request {
            method: "GET",
            uri,
            headers: &[],
            body: b"",
            protocol: None,
        }
    }
}

/// What the origin does with each request it receives.
#[derive(Clone, Debug)]
pub struct Origin {
    /// Written as soon as a request head is in, before its body is read
    /// (interim responses: `100 Continue`, `103 Early Hints`).
    pub after_head: &'static [u8],
    /// Written once the whole request is in.
    pub reply: &'static [u8],
    /// Close the connection after the reply.
    pub close: bool,
}

/// `200 OK` with the body `ok`.
pub const OK: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";

impl Default for Origin {
    fn default() -> Origin {
        Origin::replies(OK)
    }
}

impl Origin {
    pub const fn replies(reply: &'static [u8]) -> Origin {
        Origin {
            after_head: b"",
            reply,
            close: false,
        }
    }
}

/// One expected observation.
#[derive(Clone, Debug)]
pub enum Check {
    /// The final status the client gets.
    Status(u16),
    /// The request is not forwarded whole: no complete request reaches the
    /// origin, and the client gets no 2xx (a request refused after its head
    /// was streamed on passes).
    NotForwarded,
    /// The request is refused: the origin sees no request, and the client
    /// gets a 4xx, or (HTTP/2) a stream or connection error, or (HTTP/1)
    /// the connection closes without a 2xx.
    Refused,
    /// Exactly these interim (1xx) statuses reach the client, in order,
    /// before the final response.
    Interim(&'static [u16]),
    /// The origin receives this many requests.
    OriginRequests(usize),
    /// The (first) forwarded request has this field, its lines joined
    /// with `, `; compared case-sensitively.
    OriginHeader(&'static str, &'static str),
    /// The forwarded request's field contains this text (case-insensitive).
    OriginHeaderContains(&'static str, &'static str),
    /// The forwarded request has no field of this name.
    OriginLacks(&'static str),
    /// The forwarded request's target.
    OriginTarget(&'static str),
    /// The forwarded request's HTTP version.
    OriginVersion(&'static str),
    /// The forwarded request's body, decoded.
    OriginBody(&'static [u8]),
    /// The client's final response has this field containing this text
    /// (case-insensitive).
    ClientHeaderContains(&'static str, &'static str),
    /// The client's final response has no field of this name.
    ClientLacks(&'static str),
    /// The client's final response body.
    ClientBody(&'static [u8]),
    /// The proxy closes the client's connection after the final response.
    ClientClosed,
    /// Anything else, as a function of what was observed.
    Custom(&'static str, fn(&Observed) -> Result<(), String>),
}

/// Every line of field `name` in `fields`, joined with `, ` as a list
/// field would be; `None` if there is none.
pub fn field(fields: &[(String, String)], name: &str) -> Option<String> {
    let values: Vec<&str> = fields
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .collect();
    (!values.is_empty()).then(|| values.join(", "))
}

/// What one run of a case observed, at the client and at the origin.
#[derive(Clone, Debug, Default)]
pub struct Observed {
    /// 1xx statuses before the final response.
    pub interim: Vec<u16>,
    /// The final status, if one came.
    pub status: Option<u16>,
    /// The final response's fields, names lowercased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// HTTP/1: the connection closed after (or instead of) the response.
    pub closed: bool,
    /// HTTP/2: the stream was reset, or the connection failed (what).
    pub h2_error: Option<String>,
    /// What went wrong on the client's side, if anything (a timeout, a
    /// response that did not parse).
    pub client_error: Option<String>,
    pub origin: Vec<Received>,
    /// H1Sequence: the final status of every request, in order.
    pub statuses: Vec<Option<u16>>,
}

impl Observed {
    /// One line of what matters, for failure messages (no raw bytes).
    pub fn summary(&self) -> String {
        let origin: Vec<String> = self
            .origin
            .iter()
            .map(|r| {
                let fields: Vec<String> =
                    r.headers.iter().map(|(k, v)| format!("{k}: {v}")).collect();
                format!(
                    "{} {} {} [{}] body {:?}{}",
                    r.method,
                    r.target,
                    r.version,
                    fields.join(" | "),
                    String::from_utf8_lossy(&r.body),
                    if r.complete { "" } else { " (incomplete)" }
                )
            })
            .collect();
        format!(
            "client: interim {:?} status {:?} body {:?} closed {} h2 error {:?} error {:?}; origin: {:?}",
            self.interim,
            self.status,
            String::from_utf8_lossy(&self.body),
            self.closed,
            self.h2_error,
            self.client_error,
            origin
        )
    }

    /// The client's final-response field `name`, lines joined with `, `.
    pub fn header(&self, name: &str) -> Option<String> {
        field(&self.headers, name)
    }

    fn first(&self) -> Result<&Received, String> {
        self.origin
            .first()
            .ok_or_else(|| "the origin received no request".to_owned())
    }
}

impl Check {
    /// `Ok` if `obs` shows what this check expects; else what differs.
    pub fn verify(&self, obs: &Observed) -> Result<(), String> {
        let ensure = |ok: bool, msg: String| if ok { Ok(()) } else { Err(msg) };
        match self {
            Check::Status(s) => ensure(
                obs.status == Some(*s),
                format!("status {:?}, expected {s}", obs.status),
            ),
            Check::Refused => {
                ensure(
                    obs.origin.is_empty(),
                    format!("the origin received {} request(s)", obs.origin.len()),
                )?;
                let refused = match obs.status {
                    Some(s) => (400..500).contains(&s),
                    None => obs.h2_error.is_some() || obs.closed,
                };
                ensure(
                    refused,
                    format!(
                        "not refused: status {:?}, h2 error {:?}",
                        obs.status, obs.h2_error
                    ),
                )
            }
            Check::NotForwarded => {
                let whole = obs.origin.iter().filter(|r| r.complete).count();
                ensure(
                    whole == 0,
                    format!("the origin received {whole} complete request(s)"),
                )?;
                ensure(
                    !obs.status.is_some_and(|s| (200..300).contains(&s)),
                    format!("the client got {:?}", obs.status),
                )
            }
            Check::Interim(want) => ensure(
                obs.interim == *want,
                format!("interim responses {:?}, expected {want:?}", obs.interim),
            ),
            Check::OriginRequests(n) => ensure(
                obs.origin.len() == *n,
                format!(
                    "the origin received {} request(s), expected {n}",
                    obs.origin.len()
                ),
            ),
            Check::OriginHeader(name, value) => {
                let got = obs.first()?.header(name);
                ensure(
                    got.as_deref() == Some(*value),
                    format!("origin saw {name}: {got:?}, expected {value:?}"),
                )
            }
            Check::OriginHeaderContains(name, part) => {
                let got = obs.first()?.header(name);
                ensure(
                    got.as_ref().is_some_and(|v| {
                        v.to_ascii_lowercase().contains(&part.to_ascii_lowercase())
                    }),
                    format!("origin saw {name}: {got:?}, expected it to contain {part:?}"),
                )
            }
            Check::OriginLacks(name) => {
                let got = obs.first()?.header(name);
                ensure(
                    got.is_none(),
                    format!("origin saw {name}: {got:?}, expected none"),
                )
            }
            Check::OriginTarget(t) => {
                let got = &obs.first()?.target;
                ensure(
                    got == t,
                    format!("origin saw target {got:?}, expected {t:?}"),
                )
            }
            Check::OriginVersion(v) => {
                let got = &obs.first()?.version;
                ensure(
                    got == v,
                    format!("origin saw version {got:?}, expected {v:?}"),
                )
            }
            Check::OriginBody(b) => {
                let got = &obs.first()?.body;
                ensure(
                    got == b,
                    format!(
                        "origin saw body {:?}, expected {:?}",
                        String::from_utf8_lossy(got),
                        String::from_utf8_lossy(b)
                    ),
                )
            }
            Check::ClientHeaderContains(name, part) => {
                let got = obs.header(name);
                ensure(
                    got.as_ref().is_some_and(|v| {
                        v.to_ascii_lowercase().contains(&part.to_ascii_lowercase())
                    }),
                    format!("client got {name}: {got:?}, expected it to contain {part:?}"),
                )
            }
            Check::ClientLacks(name) => {
                let got = obs.header(name);
                ensure(
                    got.is_none(),
                    format!("client got {name}: {got:?}, expected none"),
                )
            }
            Check::ClientBody(b) => ensure(
                obs.body == *b,
                format!(
                    "client got body {:?}, expected {:?}",
                    String::from_utf8_lossy(&obs.body),
                    String::from_utf8_lossy(b)
                ),
            ),
            Check::ClientClosed => ensure(
                obs.closed,
                "the client's connection stayed open after the response".to_owned(),
            ),
            Check::Custom(_, f) => f(obs),
        }
    }
}
