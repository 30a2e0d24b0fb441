//! HTTPS over loopback: the serve loop with a certificate (h2 and
//! HTTP/1.1 by ALPN, plain HTTP and stalled handshakes closed), the
//! client's trust (a pinned leaf, a CA's leaf with its name, nothing
//! else), and the startup errors of bad files.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, Version};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use sluice_testkit::certs::Pki;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

use super::*;
use crate::serve::{Limits, Transport, serve_tls};

/// Short enough for a test to wait out, long enough for a loopback
/// handshake on a loaded machine.
const SHORT: Duration = Duration::from_millis(300);
/// A test that needs it hangs.
const HANG_GUARD: Duration = Duration::from_secs(30);

/// A TLS server whose every answer says the request's version and
/// whether its connection was TLS: `HTTP/2 tls=true`.
struct Server {
    addr: SocketAddr,
    _stop: oneshot::Sender<()>,
}

async fn start(tls: ServerTls) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let handler = |request: Request<Incoming>| async move {
        let tls = request
            .extensions()
            .get::<Transport>()
            .expect("the serve loop puts the transport in")
            .tls;
        let text = format!("{:?} tls={tls}", request.version());
        Response::new(Full::new(Bytes::from(text)))
    };
    let limits = Limits {
        header_timeout: SHORT,
        ..Limits::with_grace(Duration::from_secs(1))
    };
    tokio::spawn(serve_tls(listener, Some(tls), handler, stopped, limits));
    Server { addr, _stop: stop }
}

/// `GET /` on an established TLS stream, h2 or HTTP/1.1 as ALPN said.
async fn get(
    stream: tokio_rustls::client::TlsStream<TcpStream>,
) -> (Option<Vec<u8>>, Version, String) {
    let alpn = stream.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
    let io = TokioIo::new(stream);
    let request = Request::get("https://localhost/")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let response = if is_h2(alpn.as_deref()) {
        let (mut sender, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
            .await
            .unwrap();
        tokio::spawn(conn);
        sender.send_request(request).await.unwrap()
    } else {
        let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
        tokio::spawn(conn);
        let mut request = request;
        *request.uri_mut() = "/".parse().unwrap();
        request
            .headers_mut()
            .insert(http::header::HOST, "localhost".parse().unwrap());
        sender.send_request(request).await.unwrap()
    };
    let version = response.version();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (alpn, version, String::from_utf8(body.to_vec()).unwrap())
}

async fn connect(
    client: &ClientTls,
    addr: SocketAddr,
    host: &str,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    client.connect(host, TcpStream::connect(addr).await?).await
}

#[tokio::test]
async fn serves_h2_by_alpn_over_tls() {
    let pki = Pki::new();
    let leaf = pki.leaf("service", &["localhost", "127.0.0.1"]);
    let server = start(ServerTls::load(&leaf.cert, &leaf.key).unwrap()).await;
    let client = ClientTls::load(Some(&pki.ca_file)).unwrap();
    let stream = connect(&client, server.addr, "localhost").await.unwrap();
    let (alpn, version, body) = get(stream).await;
    assert_eq!(alpn.as_deref(), Some(&b"h2"[..]));
    assert_eq!(version, Version::HTTP_2);
    assert_eq!(body, "HTTP/2.0 tls=true");
}

#[tokio::test]
async fn serves_http1_to_a_client_that_offers_only_http1() {
    let pki = Pki::new();
    let leaf = pki.leaf("service", &["localhost"]);
    let server = start(ServerTls::load(&leaf.cert, &leaf.key).unwrap()).await;
    let mut roots = rustls::RootCertStore::empty();
    roots.add_parsable_certificates(read_certs(&pki.ca_file).unwrap());
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let stream = connector.connect(name, tcp).await.unwrap();
    let (alpn, version, body) = get(stream).await;
    assert_eq!(alpn.as_deref(), Some(&b"http/1.1"[..]));
    assert_eq!(version, Version::HTTP_11);
    assert_eq!(body, "HTTP/1.1 tls=true");
}

/// Everything the server sends until it closes the connection.
async fn closed_after(addr: SocketAddr, sent: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(sent).await.unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(HANG_GUARD, stream.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "the server closes the connection");
    answer
}

#[tokio::test]
async fn plain_http_and_stalled_handshakes_are_closed_without_an_http_answer() {
    let pki = Pki::new();
    let leaf = pki.leaf("service", &["localhost"]);
    let server = start(ServerTls::load(&leaf.cert, &leaf.key).unwrap()).await;
    // Plain HTTP: a TLS alert at most, never an HTTP response.
    let answer = closed_after(server.addr, b"GET / HTTP/1.1\r\nhost: x\r\n\r\n").await;
    assert!(!answer.starts_with(b"HTTP/"), "{answer:?}");
    assert!(
        answer.is_empty() || answer[0] == 0x15,
        "an alert: {answer:?}"
    );
    // A client that connects and says nothing, and one that stops inside
    // its ClientHello, are closed once the header timeout passes.
    for stalled in [&b""[..], b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"] {
        let answer = closed_after(server.addr, stalled).await;
        assert!(answer.is_empty(), "{answer:?}");
    }
    // The server still serves.
    let client = ClientTls::load(Some(&pki.ca_file)).unwrap();
    let stream = connect(&client, server.addr, "localhost").await.unwrap();
    assert_eq!(get(stream).await.2, "HTTP/2.0 tls=true");
}

/// Whether `client` completes a handshake with a server presenting `leaf`
/// under the name `host`; the error's text when not.
async fn handshake(
    client: &ClientTls,
    leaf: &sluice_testkit::certs::Cert,
    host: &str,
) -> Result<(), String> {
    let server = start(ServerTls::load(&leaf.cert, &leaf.key).unwrap()).await;
    match connect(client, server.addr, host).await {
        Ok(stream) => {
            get(stream).await;
            Ok(())
        }
        Err(error) => Err(error.to_string()),
    }
}

#[tokio::test]
async fn a_pinned_self_signed_certificate_is_trusted_and_no_other() {
    let pki = Pki::new();
    let pinned = pki.self_signed("pinned", &["localhost"]);
    let other = pki.self_signed("other", &["localhost"]);
    let client = ClientTls::load(Some(&pinned.cert)).unwrap();
    assert_eq!(handshake(&client, &pinned, "localhost").await, Ok(()));
    // The pin is the trust: a name the certificate does not carry is fine.
    assert_eq!(handshake(&client, &pinned, "127.0.0.1").await, Ok(()));
    let refused = handshake(&client, &other, "localhost").await.unwrap_err();
    assert!(refused.contains("invalid peer certificate"), "{refused}");
    // Nor does a leaf of a CA the file does not hold pass.
    let stranger = pki.leaf("stranger", &["localhost"]);
    assert!(handshake(&client, &stranger, "localhost").await.is_err());
}

#[tokio::test]
async fn a_ca_trusts_its_leaves_for_their_names() {
    let pki = Pki::new();
    let leaf = pki.leaf("service", &["localhost", "127.0.0.1"]);
    let client = ClientTls::load(Some(&pki.ca_file)).unwrap();
    assert_eq!(handshake(&client, &leaf, "localhost").await, Ok(()));
    assert_eq!(handshake(&client, &leaf, "127.0.0.1").await, Ok(()));
    let wrong_name = handshake(&client, &leaf, "cache.internal")
        .await
        .unwrap_err();
    assert!(
        wrong_name.contains("invalid peer certificate"),
        "{wrong_name}"
    );
    // The bundled roots do not trust a private CA's leaf.
    let bundled = ClientTls::load(None).unwrap();
    assert!(handshake(&bundled, &leaf, "localhost").await.is_err());
}

#[test]
fn bad_files_are_startup_errors_naming_the_file() {
    let pki = Pki::new();
    let a = pki.leaf("a", &["localhost"]);
    let b = pki.leaf("b", &["localhost"]);
    let missing = pki.dir().join("missing.pem");
    let text = pki.dir().join("text.pem");
    std::fs::write(&text, "not a certificate\n").unwrap();

    let err = ServerTls::load(&a.cert, &b.key).unwrap_err();
    assert!(
        matches!(err, TlsError::Rejected { ref path, .. } if *path == b.key),
        "{err}"
    );
    let err = ServerTls::load(&missing, &a.key).unwrap_err();
    assert!(matches!(err, TlsError::Read { .. }), "{err}");
    assert!(err.to_string().contains("missing.pem"), "{err}");
    let err = ServerTls::load(&text, &a.key).unwrap_err();
    assert!(matches!(err, TlsError::NoCertificate { .. }), "{err}");
    // A certificate where the key should be.
    let err = ServerTls::load(&a.cert, &a.cert).unwrap_err();
    assert!(matches!(err, TlsError::NoKey { .. }), "{err}");
    let err = ClientTls::load(Some(&text)).unwrap_err();
    assert!(matches!(err, TlsError::NoCertificate { .. }), "{err}");
    let err = ClientTls::load(Some(&missing)).unwrap_err();
    assert!(matches!(err, TlsError::Read { .. }), "{err}");
}
