//! Client certificates on a TLS listener (`client_ca`, `client_auth`): a
//! required one that is missing or from another CA ends the connection at
//! the handshake, before any request; a verified one reaches the backend
//! as `X-Forwarded-Client-Cert: Hash=…;Subject="…"`, which no client can
//! forge (its own is removed).

use hyper_util::rt::TokioIo;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::pki_types::CertificateDer;
use sha2::{Digest, Sha256};
use sluice::config::{CertConfig, ClientAuth};
use sluice_e2e::harness::certs::TestCerts;
use sluice_e2e::harness::client::{H2, tls_connect};
use sluice_e2e::harness::origin::{Origin, reply};
use sluice_e2e::harness::proxy::{Proxy, config};
use std::path::PathBuf;

/// A CA for clients and the client certificates it signs.
struct ClientCa {
    dir: tempfile::TempDir,
    issuer: Issuer<'static, KeyPair>,
    file: PathBuf,
}

impl ClientCa {
    fn new(name: &str) -> ClientCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let key = KeyPair::generate().expect("key");
        let cert = params.self_signed(&key).expect("ca");
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("clients-ca.pem");
        std::fs::write(&file, cert.pem()).expect("write");
        ClientCa {
            dir,
            issuer: Issuer::new(params, key),
            file,
        }
    }

    /// A client certificate for `cn` (DER) and its PKCS#8 key.
    fn client(&self, cn: &str) -> (CertificateDer<'static>, Vec<u8>) {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.distinguished_name.push(DnType::CommonName, cn);
        params
            .distinguished_name
            .push(DnType::OrganizationName, "Acme");
        let key = KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &self.issuer).expect("client");
        let _ = &self.dir;
        (cert.der().clone(), key.serialize_der())
    }
}

struct Setup {
    certs: TestCerts,
    clients: ClientCa,
    origin: Origin,
    proxy: Proxy,
}

async fn setup(required: bool) -> Setup {
    let certs = TestCerts::generate();
    let clients = ClientCa::new("clients CA");
    let origin = Origin::http1()
        .route("/", reply::text(200, "hello"))
        .start()
        .await;
    let mut cfg = config(&[origin.addr()]);
    cfg.listeners[0].tls = vec![CertConfig {
        cert: certs.cert.clone(),
        key: certs.key.clone(),
        server_names: vec!["localhost".to_owned()],
    }];
    cfg.listeners[0].client_auth = Some(ClientAuth {
        ca_file: clients.file.clone(),
        required,
    });
    let proxy = Proxy::start(&cfg).await;
    Setup {
        certs,
        clients,
        origin,
        proxy,
    }
}

const XFCC: &str = "x-forwarded-client-cert";

/// A GET over TLS with `config`, carrying a forged XFCC: the status, or
/// `None` when the connection failed (at the handshake or with the first
/// read: TLS 1.3 servers refuse a client certificate after the client's
/// side of the handshake is done).
async fn get(s: &Setup, config: std::sync::Arc<rustls::ClientConfig>) -> Option<u16> {
    let (tls, _) = tls_connect(s.proxy.addr(), config, "localhost")
        .await
        .ok()?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .ok()?;
    tokio::spawn(conn);
    let req = http::Request::get("/who")
        .header("host", "localhost")
        .header(XFCC, "Hash=forged;Subject=\"CN=admin\"")
        .body(reply::empty())
        .expect("request");
    let resp = tokio::time::timeout(std::time::Duration::from_secs(10), sender.send_request(req))
        .await
        .expect("an answer or an error, not a hang")
        .ok()?;
    Some(resp.status().as_u16())
}

fn expected(der: &CertificateDer<'_>, subject: &str) -> String {
    let hash: String = Sha256::digest(der.as_ref())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("Hash={hash};Subject=\"{subject}\"")
}

#[tokio::test]
async fn a_required_certificate_that_is_missing_or_foreign_ends_the_connection() {
    let s = setup(true).await;
    assert_eq!(get(&s, s.certs.client_config(&[b"http/1.1"])).await, None);
    let stranger = ClientCa::new("another CA");
    let (cert, key) = stranger.client("mallory");
    let foreign = s.certs.client_config_with_cert(&[b"http/1.1"], cert, key);
    assert_eq!(get(&s, foreign).await, None);
    assert!(
        s.origin.requests().is_empty(),
        "nothing reached the backend"
    );
}

#[tokio::test]
async fn a_verified_certificate_reaches_the_backend_and_a_forged_claim_does_not() {
    let s = setup(true).await;
    let (cert, key) = s.clients.client("client one");
    let config = s
        .certs
        .client_config_with_cert(&[b"http/1.1"], cert.clone(), key);
    assert_eq!(get(&s, config).await, Some(200));
    let seen = s.origin.last_request();
    let all: Vec<_> = seen.headers.get_all(XFCC).iter().collect();
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(all[0], expected(&cert, "CN=client one, O=Acme").as_str());
}

#[tokio::test]
async fn requested_but_missing_is_served_without_the_field() {
    let s = setup(false).await;
    assert_eq!(
        get(&s, s.certs.client_config(&[b"http/1.1"])).await,
        Some(200)
    );
    assert!(
        !s.origin.last_request().headers.contains_key(XFCC),
        "the client's forged claim was removed"
    );
    // A certificate from another CA is still refused: only a missing one
    // is let through.
    let (cert, key) = ClientCa::new("another CA").client("mallory");
    let foreign = s.certs.client_config_with_cert(&[b"http/1.1"], cert, key);
    assert_eq!(get(&s, foreign).await, None);
    // And one of ours is named.
    let (cert, key) = s.clients.client("client two");
    let config = s
        .certs
        .client_config_with_cert(&[b"http/1.1"], cert.clone(), key);
    assert_eq!(get(&s, config).await, Some(200));
    assert_eq!(
        s.origin.last_request().headers[XFCC],
        expected(&cert, "CN=client two, O=Acme").as_str()
    );
}

#[tokio::test]
async fn every_request_of_an_h2_connection_carries_the_certificate() {
    let s = setup(true).await;
    let (cert, key) = s.clients.client("h2 client");
    let config = s.certs.client_config_with_cert(&[b"h2"], cert.clone(), key);
    let (tls, alpn) = tls_connect(s.proxy.addr(), config, "localhost")
        .await
        .expect("handshake");
    assert_eq!(alpn.as_deref(), Some(&b"h2"[..]));
    let mut h2 = H2::handshake(TokioIo::new(tls)).await;
    for _ in 0..3 {
        assert_eq!(h2.get("/h2").await.status, 200);
        assert_eq!(
            s.origin.last_request().headers[XFCC],
            expected(&cert, "CN=h2 client, O=Acme").as_str()
        );
    }
}
