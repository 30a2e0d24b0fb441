//! Client certificates: a TLS listener's `client_ca` and `client_auth`,
//! and `[forwarding] client_cert_header`, the field that tells backends
//! about a verified certificate.

use super::Validator;
use super::*;
use crate::config::ClientAuth;

impl Validator<'_> {
    /// `client_ca` is read as the listener will read it; `client_auth`
    /// (`require`, the default, or `request`) needs it, and both need TLS.
    pub(super) fn client_auth(
        &self,
        field: &str,
        tls: bool,
        ca: Option<Spanned<String>>,
        mode: Option<Spanned<String>>,
    ) -> Result<Option<ClientAuth>, ConfigError> {
        let required = match &mode {
            None => true,
            Some(m) => match m.get_ref().as_str() {
                "require" => true,
                "request" => false,
                other => {
                    return Err(ConfigError::ClientAuth {
                        at: self.at(m.span(), format_args!("{field}.client_auth")),
                        value: other.to_owned(),
                    });
                }
            },
        };
        let Some(ca) = ca else {
            return match mode {
                Some(m) => Err(ConfigError::ClientAuthNeeds {
                    at: self.at(m.span(), format_args!("{field}.client_auth")),
                    what: "client_ca (the CA that client certificates are verified against)",
                }),
                None => Ok(None),
            };
        };
        if !tls {
            return Err(ConfigError::ClientAuthNeeds {
                at: self.at(ca.span(), format_args!("{field}.client_ca")),
                what: "a TLS listener (a [[listener.tls]] certificate)",
            });
        }
        self.existing_file(&ca, format_args!("{field}.client_ca"))?;
        pem::add_ca_file(&mut rustls::RootCertStore::empty(), Path::new(ca.get_ref())).map_err(
            |source| ConfigError::Pem {
                at: self.at(ca.span(), format_args!("{field}.client_ca")),
                source: Box::new(source),
            },
        )?;
        Ok(Some(ClientAuth {
            ca_file: ca.into_inner().into(),
            required,
        }))
    }

    pub(super) fn client_cert_header(
        &self,
        name: Option<Spanned<String>>,
    ) -> Result<http::HeaderName, ConfigError> {
        let Some(name) = name else {
            return Ok(defaults::CLIENT_CERT_HEADER);
        };
        http::HeaderName::from_bytes(name.get_ref().as_bytes()).map_err(|_| {
            ConfigError::HeaderName {
                at: self.at(name.span(), "forwarding.client_cert_header"),
                value: name.get_ref().clone(),
            }
        })
    }
}
