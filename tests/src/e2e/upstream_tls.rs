//! TLS to the backends, each way a group can trust them: the web PKI with
//! a CA file, a pinned self-signed certificate (what `openssl req -x509`
//! makes, which the web PKI refuses as a server's), no check at all when a
//! group says so; the name sent by SNI; a client certificate for a backend
//! that requires one. A certificate the group does not trust is a 502
//! with `x-sluice-error: backend certificate not trusted`; any other failed
//! handshake (the backend refusing ours, no common ALPN) `backend TLS
//! handshake failed`.

use parking_lot::Mutex;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use sluice::config::{ClientCert, UpstreamProtocol, UpstreamTls, UpstreamVerify};
use sluice_e2e::harness::client::RawConn;
use sluice_e2e::harness::origin::{Origin, reply};
use sluice_e2e::harness::process::Sluice;
use sluice_e2e::harness::proxy::{Proxy, config};
use std::path::PathBuf;
use std::sync::Arc;

/// A certificate and its key, as DER and as PEM files.
struct Cert {
    der: CertificateDer<'static>,
    key: Vec<u8>,
    cert_file: PathBuf,
    key_file: PathBuf,
}

/// A throwaway CA, the leaves it signs, and self-signed certificates, in
/// one temporary directory.
struct Pki {
    dir: tempfile::TempDir,
    ca: Issuer<'static, KeyPair>,
    ca_der: CertificateDer<'static>,
    ca_file: PathBuf,
}

impl Pki {
    fn new() -> Pki {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        params
            .distinguished_name
            .push(DnType::CommonName, "upstream tls test CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let key = KeyPair::generate().expect("ca key");
        let cert = params.self_signed(&key).expect("ca cert");
        let dir = tempfile::tempdir().expect("tempdir");
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, cert.pem()).expect("write ca");
        Pki {
            dir,
            ca: Issuer::new(params, key),
            ca_der: cert.der().clone(),
            ca_file,
        }
    }

    fn write(&self, stem: &str, cert: &rcgen::Certificate, key: &KeyPair) -> Cert {
        let cert_file = self.dir.path().join(format!("{stem}.pem"));
        let key_file = self.dir.path().join(format!("{stem}.key"));
        std::fs::write(&cert_file, cert.pem()).expect("write cert");
        std::fs::write(&key_file, key.serialize_pem()).expect("write key");
        Cert {
            der: cert.der().clone(),
            key: key.serialize_der(),
            cert_file,
            key_file,
        }
    }

    /// A leaf the CA signed for `names`.
    fn leaf(&self, stem: &str, names: &[&str]) -> Cert {
        let params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .expect("leaf params");
        let key = KeyPair::generate().expect("leaf key");
        let cert = params.signed_by(&key, &self.ca).expect("leaf");
        self.write(stem, &cert, &key)
    }

    /// What `openssl req -x509 -newkey … -subj /CN=NAME` makes: a
    /// self-signed certificate that is its own CA.
    fn self_signed(&self, stem: &str, names: &[&str]) -> Cert {
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .expect("params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let key = KeyPair::generate().expect("key");
        let cert = params.self_signed(&key).expect("self-signed");
        self.write(stem, &cert, &key)
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn certified(cert: &Cert) -> Arc<CertifiedKey> {
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.key.clone()));
    Arc::new(
        CertifiedKey::from_der(vec![cert.der.clone()], key, &provider()).expect("certified key"),
    )
}

/// Serves `cert` and writes down the name each client asked for by SNI.
#[derive(Debug)]
struct RecordSni {
    cert: Arc<CertifiedKey>,
    names: Mutex<Vec<Option<String>>>,
}

impl ResolvesServerCert for RecordSni {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.names
            .lock()
            .push(hello.server_name().map(str::to_owned));
        Some(self.cert.clone())
    }
}

/// A TLS origin serving `cert`, requiring a client certificate from
/// `client_ca` if given; its SNI record.
async fn origin(
    cert: &Cert,
    client_ca: Option<&CertificateDer<'static>>,
    alpn: &[&[u8]],
) -> (Origin, Arc<RecordSni>) {
    let sni = Arc::new(RecordSni {
        cert: certified(cert),
        names: Mutex::new(Vec::new()),
    });
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("versions");
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(ca.clone()).expect("client ca");
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                .build()
                .expect("client verifier");
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut server = builder.with_cert_resolver(sni.clone());
    server.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let origin = Origin::tls(Arc::new(server))
        .route("/", reply::text(200, "over tls"))
        .start()
        .await;
    (origin, sni)
}

/// One GET through a proxy whose only group reaches `origin` with `tls`:
/// the status and the `x-sluice-error` reason.
async fn get_through(
    origin: &Origin,
    tls: UpstreamTls,
    protocol: UpstreamProtocol,
) -> (u16, Option<String>, String) {
    let mut c = config(&[origin.addr()]);
    c.upstreams[0].protocol = protocol;
    c.upstreams[0].tls = Some(tls);
    let proxy = Proxy::start(&c).await;
    let mut raw = RawConn::connect(proxy.addr()).await;
    raw.send(b"GET /x HTTP/1.1\r\nHost: tls.test\r\n\r\n").await;
    let resp = raw.read_response().await;
    (
        resp.status,
        resp.header("x-sluice-error").map(str::to_owned),
        resp.body_str().to_owned(),
    )
}

fn tls(verify: UpstreamVerify) -> UpstreamTls {
    UpstreamTls {
        verify,
        server_name: None,
        client_cert: None,
    }
}

/// Trusting `ca`, and presenting `client`.
fn mtls(ca: &Pki, client: &Cert) -> UpstreamTls {
    UpstreamTls {
        verify: UpstreamVerify::Roots {
            ca_file: Some(ca.ca_file.clone()),
        },
        server_name: None,
        client_cert: Some(ClientCert {
            cert: client.cert_file.clone(),
            key: client.key_file.clone(),
        }),
    }
}

const UNTRUSTED: &str = "backend certificate not trusted";
const HANDSHAKE_FAILED: &str = "backend TLS handshake failed";

#[tokio::test]
async fn a_ca_file_trusts_the_leaves_it_signed_and_nothing_else_does() {
    let pki = Pki::new();
    let leaf = pki.leaf("server", &["127.0.0.1"]);
    let (o, _) = origin(&leaf, None, &[b"http/1.1"]).await;
    let ca = tls(UpstreamVerify::Roots {
        ca_file: Some(pki.ca_file.clone()),
    });
    let (status, _, body) = get_through(&o, ca, UpstreamProtocol::Http1).await;
    assert_eq!((status, body.as_str()), (200, "over tls"));
    // The system trust store alone does not know the test CA.
    let (status, err, _) = get_through(
        &o,
        tls(UpstreamVerify::Roots { ca_file: None }),
        UpstreamProtocol::Http1,
    )
    .await;
    assert_eq!((status, err.as_deref()), (502, Some(UNTRUSTED)));
}

#[tokio::test]
async fn a_pinned_self_signed_certificate_is_trusted_where_a_ca_file_of_it_is_not() {
    let pki = Pki::new();
    let own = pki.self_signed("own", &["127.0.0.1"]);
    let (o, _) = origin(&own, None, &[b"http/1.1"]).await;
    // The web PKI refuses a CA certificate as a server's (CaUsedAsEndEntity).
    let as_ca = tls(UpstreamVerify::Roots {
        ca_file: Some(own.cert_file.clone()),
    });
    let (status, err, _) = get_through(&o, as_ca, UpstreamProtocol::Http1).await;
    assert_eq!((status, err.as_deref()), (502, Some(UNTRUSTED)));
    let pinned = tls(UpstreamVerify::Pinned(own.cert_file.clone()));
    let (status, _, body) = get_through(&o, pinned, UpstreamProtocol::Http1).await;
    assert_eq!((status, body.as_str()), (200, "over tls"));
}

#[tokio::test]
async fn a_certificate_other_than_the_pinned_one_is_refused() {
    let pki = Pki::new();
    let served = pki.self_signed("served", &["127.0.0.1"]);
    let other = pki.self_signed("other", &["127.0.0.1"]);
    let (o, _) = origin(&served, None, &[b"http/1.1"]).await;
    let (status, err, _) = get_through(
        &o,
        tls(UpstreamVerify::Pinned(other.cert_file.clone())),
        UpstreamProtocol::Http1,
    )
    .await;
    assert_eq!((status, err.as_deref()), (502, Some(UNTRUSTED)));
    // A file may pin several (a rotation pins old and new).
    let both = pki.dir.path().join("both.pem");
    let pems = [&other.cert_file, &served.cert_file].map(|p| std::fs::read_to_string(p).unwrap());
    std::fs::write(&both, pems.concat()).unwrap();
    let (status, _, _) = get_through(
        &o,
        tls(UpstreamVerify::Pinned(both)),
        UpstreamProtocol::Http1,
    )
    .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn insecure_skip_verify_accepts_any_certificate() {
    let pki = Pki::new();
    // Self-signed, and for a name the backend's address is not.
    let any = pki.self_signed("any", &["somewhere.else"]);
    let (o, _) = origin(&any, None, &[b"http/1.1"]).await;
    let (status, _, body) =
        get_through(&o, tls(UpstreamVerify::Insecure), UpstreamProtocol::Http1).await;
    assert_eq!((status, body.as_str()), (200, "over tls"));
}

#[tokio::test]
async fn server_name_is_sent_by_sni_and_checked_against_the_certificate() {
    let pki = Pki::new();
    let leaf = pki.leaf("named", &["backend.internal"]);
    let (o, sni) = origin(&leaf, None, &[b"http/1.1"]).await;
    let ca = || UpstreamVerify::Roots {
        ca_file: Some(pki.ca_file.clone()),
    };
    // By default the name checked is the backend's IP, which the
    // certificate does not name; an IP is never sent by SNI.
    let (status, err, _) = get_through(&o, tls(ca()), UpstreamProtocol::Http1).await;
    assert_eq!((status, err.as_deref()), (502, Some(UNTRUSTED)));
    let named = UpstreamTls {
        verify: ca(),
        server_name: Some("backend.internal".into()),
        client_cert: None,
    };
    let (status, _, _) = get_through(&o, named, UpstreamProtocol::Http1).await;
    assert_eq!(status, 200);
    let names = sni.names.lock().clone();
    assert_eq!(names.first(), Some(&None), "{names:?}");
    assert_eq!(
        names.last(),
        Some(&Some("backend.internal".to_owned())),
        "{names:?}"
    );
}

#[tokio::test]
async fn a_backend_that_requires_a_client_certificate_gets_the_groups() {
    let pki = Pki::new();
    let leaf = pki.leaf("server", &["127.0.0.1"]);
    let (o, _) = origin(&leaf, Some(&pki.ca_der), &[b"http/1.1"]).await;
    let ca = || UpstreamVerify::Roots {
        ca_file: Some(pki.ca_file.clone()),
    };
    // Without one, the backend refuses the handshake.
    let (status, err, _) = get_through(&o, tls(ca()), UpstreamProtocol::Http1).await;
    assert_eq!((status, err.as_deref()), (502, Some(HANDSHAKE_FAILED)));
    let client = pki.leaf("client", &["proxy.client"]);
    let with = mtls(&pki, &client);
    let (status, _, body) = get_through(&o, with, UpstreamProtocol::Http1).await;
    assert_eq!((status, body.as_str()), (200, "over tls"));
    // One the backend's CA did not sign is refused as well.
    let elsewhere = Pki::new();
    let stranger = elsewhere.leaf("stranger", &["proxy.client"]);
    let wrong = mtls(&pki, &stranger);
    let (status, err, _) = get_through(&o, wrong, UpstreamProtocol::Http1).await;
    assert_eq!((status, err.as_deref()), (502, Some(HANDSHAKE_FAILED)));
}

/// The same over HTTP/2. hyper's connection task reads the backend's
/// alert, and the request sees only the connection gone: a 502 the
/// backend's side, named as a closed connection (the alert is in the log).
#[tokio::test]
async fn an_h2_backend_refusing_the_missing_client_certificate_is_a_502() {
    let pki = Pki::new();
    let leaf = pki.leaf("server", &["127.0.0.1"]);
    let (o, _) = origin(&leaf, Some(&pki.ca_der), &[b"h2"]).await;
    let ca = || UpstreamVerify::Roots {
        ca_file: Some(pki.ca_file.clone()),
    };
    let (status, err, _) = get_through(&o, tls(ca()), UpstreamProtocol::H2).await;
    assert_eq!(status, 502, "{err:?}");
    let client = pki.leaf("client", &["proxy.client"]);
    let with = mtls(&pki, &client);
    let (status, _, _) = get_through(&o, with, UpstreamProtocol::H2).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn an_h2_group_negotiates_h2_by_alpn_over_a_pinned_certificate() {
    let pki = Pki::new();
    let own = pki.self_signed("own", &["127.0.0.1"]);
    let (o, _) = origin(&own, None, &[b"h2"]).await;
    let (status, _, body) = get_through(
        &o,
        tls(UpstreamVerify::Pinned(own.cert_file.clone())),
        UpstreamProtocol::H2,
    )
    .await;
    assert_eq!((status, body.as_str()), (200, "over tls"));
    assert_eq!(o.last_request().version, http::Version::HTTP_2);
    // A backend that offers only HTTP/1.1 to an h2 group is refused.
    let (o1, _) = origin(&own, None, &[b"http/1.1"]).await;
    let (status, _, _) = get_through(
        &o1,
        tls(UpstreamVerify::Pinned(own.cert_file.clone())),
        UpstreamProtocol::H2,
    )
    .await;
    assert_eq!(status, 502);
}

/// With no `ca_file`, a group trusts the OS store, read at start: a CA put
/// there (here by `SSL_CERT_FILE`, as an updated system bundle would be) is
/// trusted, and with a store that lacks it the backend is refused.
#[tokio::test]
async fn without_a_ca_file_the_system_trust_store_decides() {
    let pki = Pki::new();
    let other = Pki::new();
    let leaf = pki.leaf("server", &["127.0.0.1"]);
    let (o, _) = origin(&leaf, None, &[b"http/1.1"]).await;
    let backends = format!("[\"{}\"]", o.addr());
    for (store, want) in [
        (&pki.ca_file, (200, None)),
        (&other.ca_file, (502, Some(UNTRUSTED))),
    ] {
        let sluice = Sluice::run_env(
            std::iter::empty::<&str>(),
            &[
                ("SLUICE_LISTENER__0__ADDRESS", "127.0.0.1:0"),
                ("SLUICE_WORKERS", "1"),
                ("SLUICE_UPSTREAM__DEFAULT__BACKENDS", &backends),
                ("SLUICE_UPSTREAM__DEFAULT__TLS", "true"),
                ("SSL_CERT_FILE", store.to_str().unwrap()),
            ],
        );
        let mut raw = RawConn::connect(sluice.listening().await).await;
        raw.send(b"GET /x HTTP/1.1\r\nHost: tls.test\r\n\r\n").await;
        let resp = raw.read_response().await;
        let got = (resp.status, resp.header("x-sluice-error"));
        assert_eq!(got, want, "{}", sluice.log());
    }
}
