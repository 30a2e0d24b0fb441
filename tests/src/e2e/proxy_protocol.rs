//! PROXY protocol, in and out. In: a listener with `proxy_protocol` takes
//! the client from a trusted balancer's v1/v2 header (before HTTP or the
//! TLS ClientHello) and closes everything else unanswered. Out: a group
//! with `proxy_protocol` sends each client's header first on a connection
//! of its own (never pooled), and LOCAL on health checks. The in-test
//! backend parses what it receives with the engine's own parser.

use parking_lot::Mutex;
use sluice::addr::Cidr;
use sluice::balance::{HashOn, Policy as Balance};
use sluice::config::{CertConfig, HealthCheck};
use sluice::server::proxy_protocol::accept::{Policy, Versions};
use sluice::server::proxy_protocol::{V2_SIGNATURE, parse};
use sluice::upstream::proxy_header::SendVersion;
use sluice_e2e::harness::certs::TestCerts;
use sluice_e2e::harness::client::{H1, RawConn, tls_connect_over};
use sluice_e2e::harness::origin::{Origin, reply};
use sluice_e2e::harness::proxy::{Proxy, config};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n";

fn cidr(s: &str) -> Cidr {
    let (ip, prefix) = s.split_once('/').expect("a/n");
    Cidr {
        net: ip.parse().expect("ip"),
        prefix: prefix.parse().expect("prefix"),
    }
}

/// A config whose listener takes `versions` from `trusted`.
fn taking(backends: &[SocketAddr], versions: Versions, trusted: &str) -> sluice::Config {
    let mut c = config(backends);
    c.listeners[0].proxy_protocol = Some(Policy {
        versions,
        trusted: vec![cidr(trusted)],
    });
    c
}

fn v1(client: &str, server: &str) -> Vec<u8> {
    let (c, s): (SocketAddr, SocketAddr) = (client.parse().unwrap(), server.parse().unwrap());
    let family = if c.is_ipv4() { "TCP4" } else { "TCP6" };
    format!(
        "PROXY {family} {} {} {} {}\r\n",
        c.ip(),
        s.ip(),
        c.port(),
        s.port()
    )
    .into_bytes()
}

fn v2(client: &str, server: &str) -> Vec<u8> {
    let (c, s): (SocketAddr, SocketAddr) = (client.parse().unwrap(), server.parse().unwrap());
    let (IpAddr::V4(ci), IpAddr::V4(si)) = (c.ip(), s.ip()) else {
        panic!("IPv4 here")
    };
    let mut h = V2_SIGNATURE.to_vec();
    h.extend_from_slice(&[0x21, 0x11, 0, 12]);
    h.extend_from_slice(&ci.octets());
    h.extend_from_slice(&si.octets());
    h.extend_from_slice(&c.port().to_be_bytes());
    h.extend_from_slice(&s.port().to_be_bytes());
    h
}

/// Sends `bytes` and reads what comes back until the proxy closes: empty
/// when it closed without answering.
async fn answer_to(proxy: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(proxy).await.expect("connect");
    // A refused connection may be closed before all of it is written.
    let _ = s.write_all(bytes).await;
    let mut got = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), async {
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    got.extend_from_slice(&buf[..n]);
                    if got.windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
            }
        }
    });
    read.await.expect("an answer or a close within 10 s");
    got
}

fn forwarded_for(origin: &Origin) -> String {
    let seen = origin.last_request();
    let v = seen
        .headers
        .get("x-forwarded-for")
        .expect("x-forwarded-for");
    v.to_str().unwrap().to_owned()
}

#[tokio::test]
async fn v1_and_v2_from_a_trusted_source_carry_the_client() {
    let origin = Origin::named("origin").await;
    let proxy = Proxy::start(&taking(&[origin.addr()], Versions::Any, "127.0.0.1/32")).await;
    for (header, client) in [
        (v1("192.0.2.7:51000", "10.0.0.1:443"), "192.0.2.7"),
        (v2("198.51.100.9:4000", "10.0.0.1:443"), "198.51.100.9"),
        (v1("[2001:db8::5]:1234", "[2001:db8::1]:443"), "2001:db8::5"),
    ] {
        // The request in the same segment as the header: it is the request.
        let answer = answer_to(proxy.addr(), &[header.as_slice(), GET].concat()).await;
        assert!(answer.starts_with(b"HTTP/1.1 200"), "{answer:?}");
        assert_eq!(forwarded_for(&origin), client);
    }
}

#[tokio::test]
async fn a_version_the_listener_does_not_take_is_refused() {
    let origin = Origin::named("origin").await;
    let proxy = Proxy::start(&taking(&[origin.addr()], Versions::V2, "127.0.0.1/32")).await;
    let header = v1("192.0.2.7:51000", "10.0.0.1:443");
    let answer = answer_to(proxy.addr(), &[header.as_slice(), GET].concat()).await;
    assert!(answer.is_empty(), "{answer:?}");
    let header = v2("192.0.2.7:51000", "10.0.0.1:443");
    let answer = answer_to(proxy.addr(), &[header.as_slice(), GET].concat()).await;
    assert!(answer.starts_with(b"HTTP/1.1 200"), "{answer:?}");
    assert_eq!(origin.request_count(), 1);
}

#[tokio::test]
async fn untrusted_sources_are_refused_with_or_without_a_header() {
    let origin = Origin::named("origin").await;
    // Connections come from 127.0.0.1; only 127.0.0.2 is trusted.
    let proxy = Proxy::start(&taking(&[origin.addr()], Versions::Any, "127.0.0.2/32")).await;
    let header = v1("192.0.2.7:51000", "10.0.0.1:443");
    for bytes in [[header.as_slice(), GET].concat(), GET.to_vec()] {
        assert!(answer_to(proxy.addr(), &bytes).await.is_empty());
    }
    assert_eq!(origin.request_count(), 0);
}

#[tokio::test]
async fn missing_malformed_and_oversized_headers_are_refused() {
    let origin = Origin::named("origin").await;
    let proxy = Proxy::start(&taking(&[origin.addr()], Versions::Any, "127.0.0.1/32")).await;
    let no_crlf = [b"PROXY UNKNOWN ".as_slice(), &[b'x'; 120]].concat();
    let mut huge = V2_SIGNATURE.to_vec();
    huge.extend_from_slice(&[0x21, 0x11, 0xff, 0xff]);
    for bytes in [
        GET.to_vec(),
        b"PROXY TCP4 192.0.2.7 10.0.0.1 051000 443\r\nGET / HTTP/1.1\r\n\r\n".to_vec(),
        b"PROXY TCP4 192.0.2.7 10.0.0.1 1 443\nGET / HTTP/1.1\r\n\r\n".to_vec(),
        no_crlf,
        // 16 bytes announcing 64 KiB: closed without waiting for the rest.
        huge,
    ] {
        let answer = answer_to(proxy.addr(), &bytes).await;
        assert!(answer.is_empty(), "{bytes:?}: {answer:?}");
    }
    assert_eq!(origin.request_count(), 0);
}

#[tokio::test]
async fn a_header_sent_one_byte_at_a_time_works() {
    let origin = Origin::named("origin").await;
    let proxy = Proxy::start(&taking(&[origin.addr()], Versions::Any, "127.0.0.1/32")).await;
    for header in [
        v2("203.0.113.4:9", "10.0.0.1:80"),
        v1("203.0.113.5:9", "10.0.0.1:80"),
    ] {
        let mut raw = RawConn::connect(proxy.addr()).await;
        for b in &header {
            raw.send(std::slice::from_ref(b)).await;
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        raw.send(GET).await;
        assert_eq!(raw.read_response().await.status, 200);
    }
    let seen: Vec<String> = origin
        .requests()
        .iter()
        .map(|s| s.headers["x-forwarded-for"].to_str().unwrap().to_owned())
        .collect();
    assert_eq!(seen, ["203.0.113.4", "203.0.113.5"]);
}

/// `hash = "client"` hashes the carried address: all connections come from
/// 127.0.0.1, yet twenty carried clients spread over both backends, and
/// each carried client keeps its backend.
#[tokio::test]
async fn hashing_on_the_client_uses_the_carried_address() {
    let a = Origin::echoing_name("a").await;
    let b = Origin::echoing_name("b").await;
    let mut c = taking(&[a.addr(), b.addr()], Versions::V1, "127.0.0.1/32");
    c.upstreams[0].policy = Balance::Hash(HashOn::Client);
    let proxy = Proxy::start(&c).await;
    let mut first = Vec::new();
    for round in 0..2 {
        for i in 1..=20 {
            let header = v1(&format!("192.0.2.{i}:1000"), "10.0.0.1:80");
            let mut raw = RawConn::connect(proxy.addr()).await;
            raw.send(&[header.as_slice(), GET].concat()).await;
            let r = raw.read_response().await;
            let who = if r.body_str() == "a" { "a" } else { "b" };
            if round == 0 {
                first.push(who);
            } else {
                assert_eq!(first[i - 1], who, "client {i} moved");
            }
        }
    }
    assert!(first.contains(&"a") && first.contains(&"b"), "{first:?}");
}

#[tokio::test]
async fn the_header_comes_before_the_tls_client_hello() {
    let certs = TestCerts::generate();
    let origin = Origin::http1()
        .route("/", reply::text(200, "over tls"))
        .start()
        .await;
    let mut c = taking(&[origin.addr()], Versions::Any, "127.0.0.1/32");
    c.listeners[0].tls = vec![CertConfig {
        cert: certs.cert.clone(),
        key: certs.key.clone(),
        server_names: vec!["localhost".to_owned()],
    }];
    let proxy = Proxy::start(&c).await;
    let mut tcp = TcpStream::connect(proxy.addr()).await.expect("connect");
    tcp.write_all(&v2("192.0.2.77:5555", "10.0.0.1:443"))
        .await
        .expect("header");
    let config = certs.client_config(&[b"http/1.1"]);
    let (tls, _) = tls_connect_over(tcp, config, "localhost")
        .await
        .expect("TLS after the header");
    let mut client = H1::handshake(hyper_util::rt::TokioIo::new(tls)).await;
    assert_eq!(client.get("/").await.text(), "over tls");
    assert_eq!(forwarded_for(&origin), "192.0.2.77");
}

/// One connection as the PROXY-reading backend saw it: the header's
/// addresses (`None`: LOCAL / UNKNOWN) and the requests it carried.
#[derive(Clone, Debug)]
struct BackendConn {
    header: Option<(SocketAddr, SocketAddr)>,
    requests: usize,
}

type Seen = Arc<Mutex<Vec<BackendConn>>>;

/// Reads a PROXY header byte by byte (never past it) and records the
/// connection: its index in `record` and the header's addresses. `None`
/// if the connection closed first.
async fn read_header(
    s: &mut TcpStream,
    record: &Seen,
) -> Option<(usize, Option<(SocketAddr, SocketAddr)>)> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    let header = loop {
        s.read_exact(&mut byte).await.ok()?;
        buf.push(byte[0]);
        match parse(&buf) {
            Ok(p) => break p.addrs,
            Err(Ok(_)) => {}
            Err(Err(e)) => panic!("backend got a bad header: {e}"),
        }
    };
    let mut r = record.lock();
    r.push(BackendConn {
        header,
        requests: 0,
    });
    Some((r.len() - 1, header))
}

/// What the backends answer: the header's source, or `local`.
fn source(header: Option<(SocketAddr, SocketAddr)>) -> String {
    header.map_or("local".to_owned(), |(c, _)| c.to_string())
}

/// A backend that reads a PROXY header first on every connection
/// (recording it), then hands the connection to `serve` with its index in
/// the record and the header's addresses.
async fn proxy_reading<F, Fut>(serve: F) -> (SocketAddr, Seen)
where
    F: Fn(TcpStream, usize, Option<(SocketAddr, SocketAddr)>, Seen) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let seen: Seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    let serve = Arc::new(serve);
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let (record, serve) = (record.clone(), serve.clone());
            tokio::spawn(async move {
                if let Some((index, header)) = read_header(&mut s, &record).await {
                    (serve.as_ref())(s, index, header, record).await;
                }
            });
        }
    });
    (addr, seen)
}

/// An HTTP/2 (h2c) backend behind a PROXY header that answers each
/// request with the header's source.
async fn h2c_proxy_reading_backend() -> (SocketAddr, Seen) {
    use hyper::service::service_fn;
    use hyper_util::rt::{TokioExecutor, TokioIo};
    proxy_reading(|s, index, header, record: Seen| async move {
        let service = service_fn(move |_req| {
            record.lock()[index].requests += 1;
            let body = http_body_util::Full::new(bytes::Bytes::from(source(header)));
            async move { Ok::<_, std::convert::Infallible>(http::Response::new(body)) }
        });
        let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
            .serve_connection(TokioIo::new(s), service)
            .await;
    })
    .await
}

/// An HTTP/1.1 backend behind a PROXY header that answers each request
/// (keep-alive) with the header's source.
async fn proxy_reading_backend() -> (SocketAddr, Seen) {
    proxy_reading(|mut s, index, header, record: Seen| async move {
        let mut byte = [0u8; 1];
        let mut head = Vec::new();
        while s.read_exact(&mut byte).await.is_ok() {
            head.push(byte[0]);
            if head.ends_with(b"\r\n\r\n") {
                head.clear();
                record.lock()[index].requests += 1;
                let body = source(header);
                let resp = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
                    body.len()
                );
                if s.write_all(resp.as_bytes()).await.is_err() {
                    return;
                }
            }
        }
    })
    .await
}

/// Two clients (carried by an incoming header), two keep-alive requests
/// each, through a group that sends v1 then v2: every request is on a
/// connection of its own whose header names its client, and the
/// destination the client connected to.
#[tokio::test]
async fn headers_out_name_each_client_on_a_connection_of_its_own() {
    for (version, h2) in [
        (SendVersion::V1, false),
        (SendVersion::V2, false),
        (SendVersion::V2, true),
    ] {
        let (backend, seen) = if h2 {
            h2c_proxy_reading_backend().await
        } else {
            proxy_reading_backend().await
        };
        let mut c = taking(&[backend], Versions::Any, "127.0.0.1/32");
        c.upstreams[0].proxy_protocol = Some(version);
        if h2 {
            c.upstreams[0].protocol = sluice::config::UpstreamProtocol::H2c;
        }
        let proxy = Proxy::start(&c).await;
        let clients = ["192.0.2.10:1111", "192.0.2.20:2222"];
        let mut conns = Vec::new();
        for client in clients {
            let mut raw = RawConn::connect(proxy.addr()).await;
            raw.send(&v1(client, "10.9.9.9:443")).await;
            conns.push(raw);
        }
        for _ in 0..2 {
            for (raw, client) in conns.iter_mut().zip(clients) {
                raw.send(GET).await;
                let r = raw.read_response().await;
                assert_eq!(r.status, 200);
                assert_eq!(r.body_str(), client, "{version:?}");
            }
        }
        let seen = seen.lock().clone();
        assert_eq!(seen.len(), 4, "{version:?}: {seen:?}");
        for conn in &seen {
            assert_eq!(
                conn.requests, 1,
                "{version:?}: a connection reused: {seen:?}"
            );
            let (_, dst) = conn.header.expect("a PROXY header, not LOCAL");
            assert_eq!(dst, "10.9.9.9:443".parse().unwrap());
        }
        for client in clients {
            let n = seen
                .iter()
                .filter(|c| c.header.unwrap().0 == client.parse().unwrap())
                .count();
            assert_eq!(n, 2, "{version:?}: {client}");
        }
    }
}

/// Without an incoming header, the header out names the socket's client
/// and the listener's address.
#[tokio::test]
async fn a_plain_listener_sends_the_socket_addresses() {
    let (backend, seen) = proxy_reading_backend().await;
    let mut c = config(&[backend]);
    c.upstreams[0].proxy_protocol = Some(SendVersion::V2);
    let proxy = Proxy::start(&c).await;
    let mut raw = RawConn::connect(proxy.addr()).await;
    raw.send(GET).await;
    let r = raw.read_response().await;
    let client: SocketAddr = r.body_str().parse().expect("an address");
    assert_eq!(client.ip(), IpAddr::from([127, 0, 0, 1]));
    let seen = seen.lock().clone();
    let (_, dst) = seen.last().unwrap().header.expect("header");
    assert_eq!(dst, proxy.addr());
}

#[tokio::test]
async fn health_checks_send_local() {
    let (backend, seen) = proxy_reading_backend().await;
    let mut c = config(&[backend]);
    c.upstreams[0].proxy_protocol = Some(SendVersion::V2);
    c.upstreams[0].health = Some(HealthCheck {
        interval: Duration::from_millis(50),
        ..HealthCheck::default()
    });
    let _proxy = Proxy::start(&c).await;
    sluice_e2e::harness::eventually("a health check", || {
        seen.lock()
            .iter()
            .any(|c| c.header.is_none() && c.requests == 1)
    })
    .await;
}

/// A TLS group: the header goes first, in clear, then the handshake. The
/// backend reads the header, then accepts TLS and answers over it.
#[tokio::test]
async fn the_header_out_comes_before_the_tls_handshake() {
    use hyper::service::service_fn;
    use hyper_util::rt::TokioIo;
    use sluice::config::{UpstreamTls, UpstreamVerify};
    let certs = TestCerts::generate();
    let acceptor = tokio_rustls::TlsAcceptor::from(certs.server_config(&[b"http/1.1"]));
    let (backend, seen) = proxy_reading(move |s, index, header, record: Seen| {
        let acceptor = acceptor.clone();
        async move {
            let Ok(tls) = acceptor.accept(s).await else {
                return;
            };
            let service = service_fn(move |_req| {
                record.lock()[index].requests += 1;
                let body = http_body_util::Full::new(bytes::Bytes::from(source(header)));
                async move { Ok::<_, std::convert::Infallible>(http::Response::new(body)) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tls), service)
                .await;
        }
    })
    .await;
    let mut c = taking(&[backend], Versions::Any, "127.0.0.1/32");
    c.upstreams[0].proxy_protocol = Some(SendVersion::V1);
    c.upstreams[0].tls = Some(UpstreamTls {
        verify: UpstreamVerify::Insecure,
        server_name: None,
        client_cert: None,
    });
    let proxy = Proxy::start(&c).await;
    let mut raw = RawConn::connect(proxy.addr()).await;
    raw.send(&[v1("192.0.2.99:4321", "10.0.0.1:443").as_slice(), GET].concat())
        .await;
    let r = raw.read_response().await;
    assert_eq!((r.status, r.body_str()), (200, "192.0.2.99:4321"));
    let seen = seen.lock().clone();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].requests, 1);
}

/// The access log's `client` is the carried client, port included.
#[tokio::test]
async fn the_access_log_names_the_carried_client() {
    use sluice::config::{AccessLogConfig, LogFormat};
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("access.log");
    let origin = Origin::named("origin").await;
    let mut c = taking(&[origin.addr()], Versions::Any, "127.0.0.1/32");
    c.access_log = Some(AccessLogConfig {
        format: LogFormat::Json,
        path: Some(path.clone()),
        ..AccessLogConfig::default()
    });
    let proxy = Proxy::start(&c).await;
    let answer = answer_to(
        proxy.addr(),
        &[v2("198.51.100.23:40000", "10.0.0.1:80").as_slice(), GET].concat(),
    )
    .await;
    assert!(answer.starts_with(b"HTTP/1.1 200"), "{answer:?}");
    let read = || std::fs::read_to_string(&path).unwrap_or_default();
    sluice_e2e::harness::eventually("an access log line", || read().ends_with('\n')).await;
    let line: serde_json::Value = serde_json::from_str(read().lines().next().unwrap()).unwrap();
    assert_eq!(line["client"], "198.51.100.23:40000");
}

/// Refusals are counted by reason in `/metrics`.
#[tokio::test]
async fn refusals_are_counted_by_reason() {
    use sluice::config::AdminConfig;
    use sluice_e2e::harness::control::Admin;
    use sluice_e2e::harness::exposition::Exposition;
    let origin = Origin::named("origin").await;
    let mut c = taking(&[origin.addr()], Versions::V2, "127.0.0.1/32");
    c.admin = Some(AdminConfig::new(([127, 0, 0, 1], 0).into()));
    let proxy = Proxy::start(&c).await;
    let v1 = v1("192.0.2.7:1", "10.0.0.1:80");
    for bytes in [GET, GET, b"PROXY TCP4 x\r\n".as_slice(), v1.as_slice()] {
        assert!(answer_to(proxy.addr(), bytes).await.is_empty());
    }
    let admin = Admin::of(proxy.server());
    let listener = proxy.addr().to_string();
    let reason = |e: &Exposition, r: &str| {
        e.value(
            "sluice_proxy_protocol_refused_total",
            &[("listener", listener.as_str()), ("reason", r)],
        )
    };
    // The closes are counted just after the client sees them.
    let mut e = None;
    for _ in 0..400 {
        let got = Exposition::parse(&admin.get("/metrics").await.text);
        if reason(&got, "wrong_version") >= 2.0 {
            e = Some(got);
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let e = e.expect("the refusals counted");
    assert_eq!(reason(&e, "missing"), 2.0);
    // `PROXY TCP4 x` is a v1 line: refused for its version first.
    assert_eq!(reason(&e, "wrong_version"), 2.0);
    assert_eq!(reason(&e, "v2_tlv"), 0.0);
}

/// A reload turns a kept listener's PROXY protocol on, then off again;
/// each applies from the next connection.
#[tokio::test]
async fn a_reload_switches_a_listeners_proxy_protocol() {
    use sluice_e2e::harness::control::Admin;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("sluice.toml");
    let origin = Origin::named("origin").await;
    let write = |address: &str, extra: &str| {
        let text = format!(
            "[[listener]]\naddress = \"{address}\"\n{extra}\n\
             [admin]\naddress = \"127.0.0.1:0\"\n\
             [upstream.a]\nbackends = [\"{}\"]\n\
             [[route]]\nupstream = \"a\"\n",
            origin.addr()
        );
        std::fs::write(&path, text).expect("write config");
    };
    write("127.0.0.1:0", "");
    let proxy = Proxy::start(&sluice::Config::load(&path).expect("config")).await;
    let admin = Admin::of(proxy.server());
    let bound = proxy.addr().to_string();
    let header = v1("192.0.2.50:1000", "10.0.0.1:80");
    let with_header = [header.as_slice(), GET].concat();
    assert!(
        answer_to(proxy.addr(), GET)
            .await
            .starts_with(b"HTTP/1.1 200")
    );

    let on = "proxy_protocol = \"v1\"\nproxy_protocol_trusted = [\"127.0.0.0/8\"]";
    for (extra, plain_ok) in [(on, false), ("", true)] {
        write(&bound, extra);
        let r = admin.call(http::Method::POST, "/reload", None).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let plain = answer_to(proxy.addr(), GET).await;
        let carried = answer_to(proxy.addr(), &with_header).await;
        if plain_ok {
            assert!(plain.starts_with(b"HTTP/1.1 200"), "{plain:?}");
            assert!(carried.starts_with(b"HTTP/1.1 400"), "{carried:?}");
        } else {
            assert!(plain.is_empty(), "{plain:?}");
            assert!(carried.starts_with(b"HTTP/1.1 200"), "{carried:?}");
            assert_eq!(forwarded_for(&origin), "192.0.2.50");
        }
    }
}
