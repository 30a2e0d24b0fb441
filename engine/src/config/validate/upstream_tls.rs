//! `[upstream.NAME]`'s TLS keys: how the backends' certificates are
//! trusted (one of `ca_file`, `pinned_cert`, `insecure_skip_verify`), the
//! name sent and checked (`server_name`), and a client certificate. Files
//! are read here the way `upstream::connect` will read them, so a config
//! that passes `sluice check` is one the groups can be built from.

use super::Validator;
use super::*;
use crate::config::file::UpstreamFile;
use crate::config::{ClientCert, UpstreamVerify};

impl Validator<'_> {
    pub(super) fn upstream_tls(
        &self,
        field: &str,
        u: &UpstreamFile,
        protocol: UpstreamProtocol,
    ) -> Result<Option<UpstreamTls>, ConfigError> {
        let insecure = u.insecure_skip_verify.as_ref().filter(|i| *i.get_ref());
        let keys: [(&Option<Spanned<String>>, &str); 5] = [
            (&u.ca_file, "ca_file"),
            (&u.pinned_cert, "pinned_cert"),
            (&u.server_name, "server_name"),
            (&u.client_cert, "client_cert"),
            (&u.client_key, "client_key"),
        ];
        if !(u.tls || protocol == UpstreamProtocol::H2) {
            // A TLS setting on a plain group would be silently ignored.
            if let Some((v, key)) = keys.iter().find_map(|(v, k)| v.as_ref().map(|v| (v, k))) {
                return Err(ConfigError::TlsKeyWithoutTls {
                    at: self.at(v.span(), format_args!("{field}.{key}")),
                });
            }
            if let Some(i) = &u.insecure_skip_verify {
                return Err(ConfigError::TlsKeyWithoutTls {
                    at: self.at(i.span(), format_args!("{field}.insecure_skip_verify")),
                });
            }
            return Ok(None);
        }
        let verify = match (&u.ca_file, &u.pinned_cert, insecure) {
            (None, None, None) => UpstreamVerify::Roots { ca_file: None },
            (Some(ca), None, None) => {
                self.existing_file(ca, format_args!("{field}.ca_file"))?;
                pem::add_ca_file(&mut rustls::RootCertStore::empty(), Path::new(ca.get_ref()))
                    .map_err(|source| ConfigError::Pem {
                        at: self.at(ca.span(), format_args!("{field}.ca_file")),
                        source: Box::new(source),
                    })?;
                UpstreamVerify::Roots {
                    ca_file: Some(ca.get_ref().into()),
                }
            }
            (None, Some(pin), None) => {
                self.existing_file(pin, format_args!("{field}.pinned_cert"))?;
                pem::read_pins(Path::new(pin.get_ref())).map_err(|source| ConfigError::Pem {
                    at: self.at(pin.span(), format_args!("{field}.pinned_cert")),
                    source: Box::new(source),
                })?;
                UpstreamVerify::Pinned(pin.get_ref().into())
            }
            (None, None, Some(_)) => UpstreamVerify::Insecure,
            (Some(_), Some(pin), _) => {
                return Err(ConfigError::TlsTrustTwice {
                    at: self.at(pin.span(), format_args!("{field}.pinned_cert")),
                    other: "ca_file",
                });
            }
            (ca, pin, Some(i)) => {
                return Err(ConfigError::TlsTrustTwice {
                    at: self.at(i.span(), format_args!("{field}.insecure_skip_verify")),
                    other: if ca.is_some() {
                        "ca_file"
                    } else if pin.is_some() {
                        "pinned_cert"
                    } else {
                        ""
                    },
                });
            }
        };
        if let Some(name) = &u.server_name
            && rustls::pki_types::ServerName::try_from(name.get_ref().as_str()).is_err()
        {
            return Err(ConfigError::ServerName {
                at: self.at(name.span(), format_args!("{field}.server_name")),
                name: name.get_ref().clone(),
            });
        }
        let client_cert = match (&u.client_cert, &u.client_key) {
            (None, None) => None,
            (Some(cert), Some(key)) => {
                self.existing_file(cert, format_args!("{field}.client_cert"))?;
                self.existing_file(key, format_args!("{field}.client_key"))?;
                pem::load_pair(
                    &pem::provider(),
                    Path::new(cert.get_ref()),
                    Path::new(key.get_ref()),
                )
                .map_err(|source| ConfigError::Pem {
                    at: self.at(cert.span(), format_args!("{field}.client_cert")),
                    source: Box::new(source),
                })?;
                Some(ClientCert {
                    cert: cert.get_ref().into(),
                    key: key.get_ref().into(),
                })
            }
            (Some(half), None) | (None, Some(half)) => {
                return Err(ConfigError::ClientCertHalf {
                    at: self.at(half.span(), format_args!("{field}.client_cert")),
                });
            }
        };
        Ok(Some(UpstreamTls {
            verify,
            server_name: u.server_name.as_ref().map(|n| n.get_ref().clone()),
            client_cert,
        }))
    }
}
