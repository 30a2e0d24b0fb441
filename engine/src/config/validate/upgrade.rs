//! `[upgrade]`: the Unix socket a running proxy hands its listeners over on
//! (`lifecycle::handover`).

use super::Validator;
use crate::config::file::UpgradeFile;
use crate::config::{ConfigError, UpgradeConfig};
use std::path::Path;

/// The longest path a Unix socket address holds (`sun_path` is 108 bytes,
/// one of them the terminating NUL).
pub const MAX_SOCKET_PATH: usize = 107;

/// Why `path` cannot be the upgrade socket, if it cannot. Absolute only: a
/// successor started from another directory must find the same socket.
pub fn upgrade_socket_problem(path: &str) -> Option<&'static str> {
    if path.is_empty() {
        Some("empty path")
    } else if !Path::new(path).is_absolute() {
        Some("expected an absolute path (a successor started elsewhere must find the same socket)")
    } else if path.len() > MAX_SOCKET_PATH {
        Some("longer than a Unix socket path may be (107 bytes)")
    } else if path.ends_with('/') || path.contains('\0') {
        Some("expected a file path")
    } else {
        None
    }
}

impl Validator<'_> {
    pub(super) fn upgrade(&self, u: UpgradeFile) -> Result<UpgradeConfig, ConfigError> {
        let socket = match u.socket {
            None => None,
            Some(s) => match upgrade_socket_problem(s.get_ref()) {
                Some(problem) => {
                    return Err(ConfigError::UpgradeSocket {
                        at: self.at(s.span(), "upgrade.socket"),
                        value: s.into_inner(),
                        problem,
                    });
                }
                None => Some(s.into_inner().into()),
            },
        };
        Ok(UpgradeConfig { socket })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_absolute_socket_paths_that_fit_are_taken() {
        assert_eq!(upgrade_socket_problem("/run/sluice/upgrade.sock"), None);
        assert!(upgrade_socket_problem("").is_some());
        assert!(upgrade_socket_problem("run/upgrade.sock").is_some());
        assert!(upgrade_socket_problem("/run/").is_some());
        assert!(upgrade_socket_problem(&format!("/{}", "a".repeat(107))).is_some());
    }

    #[test]
    fn the_file_key_is_checked_with_its_place() {
        let parse = |text: &str| crate::config::validate::parse(text, Path::new("t.toml"));
        let base = "[[listener]]\naddress = \"127.0.0.1:0\"\n[upstream.default]\nbackends = [\"127.0.0.1:9\"]\n";
        let ok = parse(&format!("{base}[upgrade]\nsocket = \"/run/s.sock\"\n")).expect("valid");
        assert_eq!(ok.upgrade.socket.as_deref(), Some(Path::new("/run/s.sock")));
        let err = parse(&format!("{base}[upgrade]\nsocket = \"s.sock\"\n")).expect_err("relative");
        assert!(err.to_string().contains("upgrade.socket"), "{err}");
        assert!(parse(&format!("{base}[upgrade]\nsockets = \"/s\"\n")).is_err());
    }

    #[test]
    fn the_environment_sets_the_socket() {
        let env = crate::config::env::EnvOverlay::from_vars(
            [("SLUICE_UPGRADE__SOCKET".into(), "/run/u.sock".into())],
            &[],
        )
        .expect("overlay");
        let base = "[[listener]]\naddress = \"127.0.0.1:0\"\n[upstream.default]\nbackends = [\"127.0.0.1:9\"]\n";
        let c =
            crate::config::validate::parse_layered(base, Path::new("t.toml"), &env).expect("valid");
        assert_eq!(c.upgrade.socket.as_deref(), Some(Path::new("/run/u.sock")));
    }
}
