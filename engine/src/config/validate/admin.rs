//! `[admin]`: the admin API's address, token and allow-lists (what
//! `admin::guard` enforces).

use super::Validator;
use crate::config::error::At;
use crate::config::file::AdminFile;
use crate::config::values::{host_name_ok, origin_ok, parse_cidr, read_token};
use crate::config::{AdminConfig, ConfigError};
use std::path::{Path, PathBuf};
use toml::Spanned;

impl Validator<'_> {
    pub(super) fn admin(&self, a: AdminFile) -> Result<AdminConfig, ConfigError> {
        let address = a
            .address
            .get_ref()
            .parse()
            .map_err(|source| ConfigError::Address {
                at: self.at(a.address.span(), "admin.address"),
                source,
            })?;
        let mut admin = AdminConfig::new(address);
        admin.token = match (a.token, a.token_file) {
            (Some(_), Some(file)) => {
                return Err(ConfigError::TokenTwice {
                    at: self.at(file.span(), "admin.token_file"),
                });
            }
            (Some(t), None) => Some(t.into_inner()).filter(|t| !t.is_empty()),
            (None, Some(file)) => {
                Some(read_token(Path::new(file.get_ref())).map_err(|source| {
                    ConfigError::TokenFile {
                        at: self.at(file.span(), "admin.token_file"),
                        source,
                    }
                })?)
            }
            (None, None) => None,
        };
        admin.state_file = a.state_file.map(PathBuf::from);
        admin.allowed_hosts = self.lowercase_list(
            a.allowed_hosts,
            "admin.allowed_hosts",
            host_name_ok,
            |at, value| ConfigError::AllowedHost { at, value },
        )?;
        admin.allowed_origins = self.lowercase_list(
            a.allowed_origins,
            "admin.allowed_origins",
            origin_ok,
            |at, value| ConfigError::AllowedOrigin { at, value },
        )?;
        if let Some(sources) = a.allowed_sources {
            let span = sources.span();
            admin.allowed_sources = sources
                .into_inner()
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    parse_cidr(c).map_err(|source| ConfigError::Cidr {
                        at: self.at(span.clone(), format_args!("admin.allowed_sources[{i}]")),
                        source,
                    })
                })
                .collect::<Result<_, _>>()?;
        }
        Ok(admin)
    }

    /// A list of names, trimmed and lowercased, each passing `ok`.
    fn lowercase_list(
        &self,
        list: Option<Spanned<Vec<String>>>,
        field: &str,
        ok: fn(&str) -> bool,
        err: fn(At, String) -> ConfigError,
    ) -> Result<Vec<String>, ConfigError> {
        let Some(list) = list else {
            return Ok(Vec::new());
        };
        let span = list.span();
        let mut out = Vec::with_capacity(list.get_ref().len());
        for (i, v) in list.into_inner().into_iter().enumerate() {
            let v = v.trim().to_ascii_lowercase();
            if !ok(&v) {
                return Err(err(self.at(span, format_args!("{field}[{i}]")), v));
            }
            out.push(v);
        }
        Ok(out)
    }
}
