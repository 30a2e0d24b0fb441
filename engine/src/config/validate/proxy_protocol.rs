//! PROXY protocol keys: a listener's `proxy_protocol` and
//! `proxy_protocol_trusted` (both or neither), and an upstream group's
//! `proxy_protocol`.

use super::Validator;
use super::*;
use crate::config::values::parse_cidr;
use crate::server::proxy_protocol::accept::{Policy, Versions};
use crate::upstream::proxy_header::SendVersion;

impl Validator<'_> {
    /// `off` (the default) or the versions taken, with the networks taken
    /// from: a header from anyone could claim any address, so a listener
    /// that takes one names its balancers, and trusted networks on a
    /// listener that takes none are a mistake worth saying.
    pub(super) fn proxy_protocol_in(
        &self,
        field: &str,
        mode: Option<Spanned<String>>,
        trusted: Option<Spanned<Vec<String>>>,
    ) -> Result<Option<Policy>, ConfigError> {
        let versions = match &mode {
            None => None,
            Some(m) => match m.get_ref().as_str() {
                "off" => None,
                "v1" => Some(Versions::V1),
                "v2" => Some(Versions::V2),
                "any" => Some(Versions::Any),
                other => {
                    return Err(ConfigError::ProxyProtocol {
                        at: self.at(m.span(), format_args!("{field}.proxy_protocol")),
                        value: other.to_owned(),
                        expected: "off, v1, v2 or any",
                    });
                }
            },
        };
        let Some(versions) = versions else {
            return match trusted {
                Some(t) => Err(ConfigError::ProxyProtocolTrusted {
                    at: self.at(t.span(), format_args!("{field}.proxy_protocol_trusted")),
                    reason: "set without proxy_protocol (v1, v2 or any)",
                }),
                None => Ok(None),
            };
        };
        let Some(trusted) = trusted else {
            let at = mode.map_or(0..0, |m| m.span());
            return Err(ConfigError::ProxyProtocolTrusted {
                at: self.at(at, format_args!("{field}.proxy_protocol")),
                reason: "needs proxy_protocol_trusted: the networks of the balancers that send it",
            });
        };
        let span = trusted.span();
        if trusted.get_ref().is_empty() {
            return Err(ConfigError::ProxyProtocolTrusted {
                at: self.at(span, format_args!("{field}.proxy_protocol_trusted")),
                reason: "is empty: every connection would be refused",
            });
        }
        let trusted = trusted
            .into_inner()
            .iter()
            .enumerate()
            .map(|(i, c)| {
                parse_cidr(c).map_err(|source| ConfigError::Cidr {
                    at: self.at(
                        span.clone(),
                        format_args!("{field}.proxy_protocol_trusted[{i}]"),
                    ),
                    source,
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Some(Policy { versions, trusted }))
    }

    /// A group's `proxy_protocol`: `off` (the default), `v1` or `v2`.
    pub(super) fn proxy_protocol_out(
        &self,
        field: &str,
        mode: Option<Spanned<String>>,
    ) -> Result<Option<SendVersion>, ConfigError> {
        let Some(m) = mode else {
            return Ok(None);
        };
        match m.get_ref().as_str() {
            "off" => Ok(None),
            "v1" => Ok(Some(SendVersion::V1)),
            "v2" => Ok(Some(SendVersion::V2)),
            other => Err(ConfigError::ProxyProtocol {
                at: self.at(m.span(), format_args!("{field}.proxy_protocol")),
                value: other.to_owned(),
                expected: "off, v1 or v2",
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::validate::parse;
    use std::path::Path;

    fn listener(extra: &str) -> Result<crate::config::Config, String> {
        let text = format!(
            "[[listener]]\naddress = \"127.0.0.1:0\"\n{extra}\n\
             [upstream.a]\nbackends = [\"127.0.0.1:9\"]\n\
             [[route]]\nupstream = \"a\"\n"
        );
        parse(&text, Path::new("t.toml")).map_err(|e| e.to_string())
    }

    #[test]
    fn listener_keys() {
        let c = listener(
            "proxy_protocol = \"any\"\nproxy_protocol_trusted = [\"10.0.0.0/8\", \"::1\"]",
        )
        .expect("valid");
        let p = c.listeners[0].proxy_protocol.as_ref().expect("policy");
        assert_eq!(p.trusted.len(), 2);
        assert!(
            listener("proxy_protocol = \"off\"").unwrap().listeners[0]
                .proxy_protocol
                .is_none()
        );
        for (extra, says) in [
            ("proxy_protocol = \"v3\"", "expected off, v1, v2 or any"),
            ("proxy_protocol = \"v1\"", "needs proxy_protocol_trusted"),
            (
                "proxy_protocol = \"v1\"\nproxy_protocol_trusted = []",
                "is empty",
            ),
            (
                "proxy_protocol = \"v2\"\nproxy_protocol_trusted = [\"10.0.0.0/33\"]",
                "proxy_protocol_trusted[0]",
            ),
            (
                "proxy_protocol_trusted = [\"10.0.0.0/8\"]",
                "set without proxy_protocol",
            ),
        ] {
            let err = listener(extra).expect_err(extra);
            assert!(err.contains(says), "{extra}: {err}");
        }
    }

    #[test]
    fn upstream_key() {
        let text = |v: &str| {
            format!(
                "[[listener]]\naddress = \"127.0.0.1:0\"\n\
                 [upstream.a]\nbackends = [\"127.0.0.1:9\"]\nproxy_protocol = \"{v}\"\n\
                 [[route]]\nupstream = \"a\"\n"
            )
        };
        let c = parse(&text("v2"), Path::new("t.toml")).expect("valid");
        assert!(c.upstreams.iter().all(|u| u.proxy_protocol.is_some()));
        let err = parse(&text("any"), Path::new("t.toml")).expect_err("any is not sendable");
        assert!(err.to_string().contains("expected off, v1 or v2"), "{err}");
    }
}
