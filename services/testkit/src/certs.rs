//! Throwaway certificates for the services' TLS tests: a CA and the leaves
//! it signs, and self-signed leaves (what `openssl req -x509` makes), as
//! PEM files in a temporary directory that lives as long as the value.

use std::path::PathBuf;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

/// A certificate and its key, as PEM files; `der` is the certificate's.
#[derive(Clone, Debug)]
pub struct Cert {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub der: Vec<u8>,
}

/// A test CA (`ca_file`) in a temporary directory.
pub struct Pki {
    dir: tempfile::TempDir,
    ca: Issuer<'static, KeyPair>,
    pub ca_file: PathBuf,
}

impl Pki {
    pub fn new() -> Pki {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        params
            .distinguished_name
            .push(DnType::CommonName, "sluice services test CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let key = KeyPair::generate().expect("ca key");
        let cert = params.self_signed(&key).expect("ca cert");
        let dir = tempfile::tempdir().expect("tempdir");
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, cert.pem()).expect("write ca");
        Pki {
            dir,
            ca: Issuer::new(params, key),
            ca_file,
        }
    }

    /// Where the files are; a test may write more there.
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    fn write(&self, stem: &str, cert: &rcgen::Certificate, key: &KeyPair) -> Cert {
        let cert_file = self.dir.path().join(format!("{stem}.pem"));
        let key_file = self.dir.path().join(format!("{stem}.key"));
        std::fs::write(&cert_file, cert.pem()).expect("write cert");
        std::fs::write(&key_file, key.serialize_pem()).expect("write key");
        Cert {
            cert: cert_file,
            key: key_file,
            der: cert.der().to_vec(),
        }
    }

    fn params(names: &[&str]) -> CertificateParams {
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .expect("leaf params")
    }

    /// A leaf the CA signed for `names` (DNS names or IP addresses).
    pub fn leaf(&self, stem: &str, names: &[&str]) -> Cert {
        let key = KeyPair::generate().expect("leaf key");
        let cert = Self::params(names).signed_by(&key, &self.ca).expect("leaf");
        self.write(stem, &cert, &key)
    }

    /// A self-signed certificate for `names`, its own CA.
    pub fn self_signed(&self, stem: &str, names: &[&str]) -> Cert {
        let mut params = Self::params(names);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let key = KeyPair::generate().expect("key");
        let cert = params.self_signed(&key).expect("self-signed");
        self.write(stem, &cert, &key)
    }
}

impl Default for Pki {
    fn default() -> Self {
        Pki::new()
    }
}
