//! `--tls`: the demo's own certificates, made at every start. A demo CA
//! signs one leaf per role (proxy, cache, log, app), each for `localhost`
//! and `127.0.0.1`, as a real deployment's internal CA would; the CA's key
//! never leaves memory (nothing can sign with it after the stack stops),
//! the leaves' keys are written `0600` beside their certificates under
//! `{data}/tls/`, where the proxy and services read them like any other
//! certificate files. Clients trust `ca.pem` (`curl --cacert`), the proxy
//! verifies the replicas against it (`ca_file`), the replicas the cache
//! and the log service (`--upstream-ca`).

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

/// The names every leaf carries: what the stack's clients dial.
const NAMES: [&str; 2] = ["localhost", "127.0.0.1"];

/// A leaf's files.
#[derive(Clone, Debug)]
pub struct Leaf {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The certificates of one run of the stack.
#[derive(Clone, Debug)]
pub struct DemoCerts {
    /// The demo CA's certificate: what every client trusts.
    pub ca_file: PathBuf,
    pub proxy: Leaf,
    pub cache: Leaf,
    pub log: Leaf,
    pub app: Leaf,
}

#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("making a certificate")]
    Generate(#[from] rcgen::Error),
    #[error("writing {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Writes `bytes` to `path` (replacing it) readable by its owner only when
/// `private`.
fn write(path: &Path, bytes: &[u8], private: bool) -> Result<(), CertError> {
    let err = |source| CertError::Write {
        path: path.to_owned(),
        source,
    };
    // A key left by an earlier run may have other permissions: start over.
    let _ = std::fs::remove_file(path);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(if private { 0o600 } else { 0o644 })
        .open(path)
        .map_err(err)?;
    file.write_all(bytes).map_err(err)
}

impl DemoCerts {
    /// A new CA and its four leaves, written under `dir`.
    pub fn generate(dir: &Path) -> Result<DemoCerts, CertError> {
        std::fs::create_dir_all(dir).map_err(|source| CertError::Write {
            path: dir.to_owned(),
            source,
        })?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params
            .distinguished_name
            .push(DnType::CommonName, "Sluice demo CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        let ca_key = KeyPair::generate()?;
        let ca_cert = params.self_signed(&ca_key)?;
        let ca = Issuer::new(params, ca_key);
        let ca_file = dir.join("ca.pem");
        write(&ca_file, ca_cert.pem().as_bytes(), false)?;
        let leaf = |role: &str| -> Result<Leaf, CertError> {
            let mut params = CertificateParams::new(NAMES.map(str::to_owned).to_vec())?;
            params
                .distinguished_name
                .push(DnType::CommonName, format!("sluice demo {role}"));
            let key = KeyPair::generate()?;
            let cert = params.signed_by(&key, &ca)?;
            let files = Leaf {
                cert: dir.join(format!("{role}.pem")),
                key: dir.join(format!("{role}.key")),
            };
            write(&files.cert, cert.pem().as_bytes(), false)?;
            write(&files.key, key.serialize_pem().as_bytes(), true)?;
            Ok(files)
        };
        Ok(DemoCerts {
            proxy: leaf("proxy")?,
            cache: leaf("cache")?,
            log: leaf("log")?,
            app: leaf("app")?,
            ca_file,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn keys_are_private_and_every_leaf_loads() {
        let dir = tempfile::tempdir().unwrap();
        // Twice: a second start replaces the files.
        DemoCerts::generate(dir.path()).unwrap();
        let certs = DemoCerts::generate(dir.path()).unwrap();
        for leaf in [&certs.proxy, &certs.cache, &certs.log, &certs.app] {
            let mode = std::fs::metadata(&leaf.key).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{}", leaf.key.display());
            sluice_service_common::ServerTls::load(&leaf.cert, &leaf.key).unwrap();
        }
        sluice_service_common::ClientTls::load(Some(&certs.ca_file)).unwrap();
    }
}
