use super::*;
use rcgen::{CertificateParams, KeyPair};

/// A self-signed certificate and its key, as PEM.
fn pair() -> (String, String) {
    let key = KeyPair::generate().expect("key");
    let cert = CertificateParams::new(vec!["localhost".to_owned()])
        .expect("params")
        .self_signed(&key)
        .expect("cert");
    (cert.pem(), key.serialize_pem())
}

struct Files {
    dir: tempfile::TempDir,
}

impl Files {
    fn new() -> Files {
        Files {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, contents).expect("write");
        path
    }
}

#[test]
fn a_matching_pair_loads() {
    let f = Files::new();
    let (cert, key) = pair();
    let (cert, key) = (f.write("c.pem", cert), f.write("k.pem", key));
    let ck = load_pair(&provider(), &cert, &key).expect("a matching pair");
    assert_eq!(ck.cert.len(), 1);
}

#[test]
fn a_key_of_another_certificate_is_refused_naming_both_files() {
    let f = Files::new();
    let ((cert, _), (_, other_key)) = (pair(), pair());
    let (cert, key) = (f.write("c.pem", cert), f.write("k.pem", other_key));
    let err = load_pair(&provider(), &cert, &key).expect_err("mismatched pair");
    assert!(matches!(err, PemError::KeyMismatch { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains(&*cert.to_string_lossy()), "{text}");
    assert!(text.contains(&*key.to_string_lossy()), "{text}");
    assert!(text.contains("does not match"), "{text}");
}

#[test]
fn a_certificate_file_without_a_pem_certificate_is_refused() {
    let f = Files::new();
    let (cert_pem, key_pem) = pair();
    let key = f.write("k.pem", &key_pem);
    let der = KeyPair::generate().expect("key").serialize_der();
    for (name, contents) in [
        ("empty.pem", Vec::new()),
        ("text.pem", b"not a certificate\n".to_vec()),
        ("der.crt", der),
        // A key where the chain should be.
        ("key-as-cert.pem", key_pem.clone().into_bytes()),
    ] {
        let cert = f.write(name, contents);
        let err = load_pair(&provider(), &cert, &key).expect_err(name);
        assert!(
            matches!(err, PemError::NoCertificate { .. }),
            "{name}: {err:?}"
        );
        assert!(err.to_string().contains(name), "{err}");
    }
    // A CERTIFICATE block whose base64 is broken.
    let broken = f.write(
        "broken.pem",
        "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
    );
    let err = load_pair(&provider(), &broken, &key).expect_err("broken base64");
    assert!(matches!(err, PemError::Malformed { .. }), "{err:?}");
    // Valid base64, but not X.509.
    let garbage = f.write(
        "garbage.pem",
        "-----BEGIN CERTIFICATE-----\nAAECAwQFBgcICQ==\n-----END CERTIFICATE-----\n",
    );
    let err = load_pair(&provider(), &garbage, &key).expect_err("not X.509");
    assert!(
        matches!(err, PemError::BadCertificate { index: 0, .. }),
        "{err:?}"
    );
    // The good certificate is not the problem.
    let cert = f.write("c.pem", cert_pem);
    load_pair(&provider(), &cert, &key).expect("the pair itself is fine");
}

#[test]
fn a_key_file_without_a_usable_key_is_refused() {
    let f = Files::new();
    let (cert_pem, _) = pair();
    let cert = f.write("c.pem", &cert_pem);
    for (name, contents) in [
        ("empty.key", String::new()),
        ("cert-as-key.pem", cert_pem.clone()),
        (
            "encrypted.key",
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAECAwQFBgcICQ==\n-----END ENCRYPTED PRIVATE KEY-----\n"
                .to_owned(),
        ),
    ] {
        let key = f.write(name, contents);
        let err = load_pair(&provider(), &cert, &key).expect_err(name);
        assert!(matches!(err, PemError::NoKey { .. }), "{name}: {err:?}");
        assert!(err.to_string().contains(name), "{err}");
    }
    let junk = f.write(
        "junk.key",
        "-----BEGIN PRIVATE KEY-----\nAAECAwQFBgcICQ==\n-----END PRIVATE KEY-----\n",
    );
    let err = load_pair(&provider(), &cert, &junk).expect_err("not a key");
    assert!(matches!(err, PemError::UnsupportedKey { .. }), "{err:?}");
}

#[test]
fn a_ca_file_must_hold_ca_certificates() {
    let f = Files::new();
    let (cert, key) = pair();
    let mut roots = RootCertStore::empty();
    add_ca_file(&mut roots, &f.write("ca.pem", &cert)).expect("a certificate");
    assert_eq!(roots.len(), 1);
    let err = add_ca_file(&mut roots, &f.write("key.pem", &key)).expect_err("a key");
    assert!(matches!(err, PemError::NoCertificate { .. }), "{err:?}");
    let garbage = f.write(
        "garbage.pem",
        "-----BEGIN CERTIFICATE-----\nAAECAwQFBgcICQ==\n-----END CERTIFICATE-----\n",
    );
    let err = add_ca_file(&mut roots, &garbage).expect_err("not X.509");
    assert!(matches!(err, PemError::BadCa { index: 0, .. }), "{err:?}");
    let err = add_ca_file(&mut roots, Path::new("/nonexistent/ca.pem")).expect_err("missing");
    assert!(matches!(err, PemError::Read { .. }), "{err:?}");
}
