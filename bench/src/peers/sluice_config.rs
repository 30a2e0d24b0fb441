//! Sluice's generated config file, for runs that give an extra config
//! (`--sluice-extra-config`, `--sluice-extra-config-b`): the same
//! configuration the quick flags give ([`PeerCtx::cli_flags`] plus one
//! worker and round robin), written as TOML, with a fragment merged into it.
//! That lets one binary run as A and B with only the fragment differing
//! (rate limiting on or off, the backend state machine on or off).
//!
//! Merge rules, fragment into generated: tables are merged key by key,
//! arrays of tables (`[[rate_limit]]`, `[[route]]`, `[[listener]]`) are
//! appended, any other value of the fragment replaces the generated one.

use std::path::{Path, PathBuf};

use toml::{Table, Value};

use super::PeerCtx;
use crate::error::{Error, IoContext, Result};
use crate::scenario::Coding;

/// The one upstream group the harness generates (Sluice's default group,
/// the one `--backend` fills): a fragment's `[upstream.NAME]` must name it.
pub const GROUP: &str = "default";

/// A TOML fragment to merge into Sluice's generated config.
#[derive(Debug, Clone)]
pub struct ExtraConfig {
    /// As given on the command line, for the report.
    pub path: PathBuf,
    table: Table,
}

impl ExtraConfig {
    /// Reads and checks `path`: TOML, and no upstream group but the
    /// generated one.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).ctx(|| format!("reading {}", path.display()))?;
        Self::parse(path, &text)
    }

    /// [`ExtraConfig::load`] of `text`, named `path` in errors.
    pub fn parse(path: &Path, text: &str) -> Result<Self> {
        let bad = |detail: String| Error::Parse {
            what: "the extra Sluice config",
            detail: format!("{}: {detail}", path.display()),
        };
        let table: Table = text.parse().map_err(|e| bad(format!("{e}")))?;
        if let Some(groups) = table.get("upstream") {
            let Some(groups) = groups.as_table() else {
                return Err(bad("`upstream` must be a table of groups".into()));
            };
            // Another name would make a second group, with no backend and
            // no route to it: the fragment would measure nothing.
            if let Some(other) = groups.keys().find(|k| k.as_str() != GROUP) {
                return Err(bad(format!(
                    "[upstream.{other}]: the harness generates one group, `{GROUP}` \
                     (write [upstream.{GROUP}…])"
                )));
            }
        }
        Ok(Self {
            path: path.to_path_buf(),
            table,
        })
    }
}

/// The quick flags' configuration as TOML (one worker, round robin).
fn generated(ctx: &PeerCtx) -> String {
    let mut t = format!(
        "workers = 1\n\n[[listener]]\naddress = \"{}\"\n",
        ctx.listen
    );
    if let Some(tls) = ctx.tls_listen {
        t.push_str(&format!(
            "\n[[listener]]\naddress = \"{tls}\"\n[[listener.tls]]\ncert = {}\nkey = {}\n",
            quoted(&ctx.cert.cert),
            quoted(&ctx.cert.key)
        ));
    }
    let [o1, o2] = ctx.origins;
    t.push_str(&format!(
        "\n[upstream.{GROUP}]\nbackends = [\"{o1}\", \"{o2}\"]\nbalance = \"round-robin\"\n"
    ));
    if let Some(level) = ctx.gzip_level {
        let (coding, key) = match ctx.coding {
            Coding::Gzip => ("gzip", "level"),
            Coding::Br => ("br", "brotli_level"),
            Coding::Zstd => ("zstd", "zstd_level"),
        };
        t.push_str(&format!(
            "\n[compression]\nenabled = true\nalgorithms = [\"{coding}\"]\n{key} = {level}\n"
        ));
    }
    t
}

/// A path as a TOML string (escaped by the TOML writer).
fn quoted(p: &Path) -> String {
    Value::String(p.display().to_string()).to_string()
}

/// The config file's text: the generated config with `extra` merged in.
pub fn render(ctx: &PeerCtx, extra: Option<&ExtraConfig>) -> String {
    let mut table: Table = generated(ctx)
        .parse()
        .expect("the generated Sluice config is valid TOML");
    if let Some(extra) = extra {
        merge(&mut table, extra.table.clone());
    }
    toml::to_string(&table).expect("a TOML table renders")
}

/// Merges `extra` into `base` (see the module's rules).
pub fn merge(base: &mut Table, extra: Table) {
    for (key, value) in extra {
        match (base.get_mut(&key), value) {
            (Some(Value::Table(b)), Value::Table(e)) => merge(b, e),
            (Some(Value::Array(b)), Value::Array(e))
                if is_tables(b) && is_tables(&e) && !e.is_empty() =>
            {
                b.extend(e);
            }
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

/// An array of tables (`[[name]]`); an empty array counts as one.
fn is_tables(a: &[Value]) -> bool {
    a.iter().all(Value::is_table)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peers::test_ctx;

    fn table(text: &str) -> Table {
        text.parse().unwrap()
    }

    #[test]
    fn tables_merge_arrays_of_tables_append_values_replace() {
        let mut base = table(
            "workers = 1\n[[listener]]\naddress = \"a\"\n[upstream.default]\nbackends = [\"x\", \"y\"]\nbalance = \"round-robin\"\n",
        );
        merge(
            &mut base,
            table(
                "workers = 2\n[[listener]]\naddress = \"b\"\n[upstream.default]\nbackends = [\"z\"]\nslow_start = \"30s\"\n[upstream.default.passive]\nconsecutive_5xx = 0\n[[rate_limit]]\nname = \"r\"\n",
            ),
        );
        let want = table(
            "workers = 2\n[[listener]]\naddress = \"a\"\n[[listener]]\naddress = \"b\"\n[upstream.default]\nbackends = [\"z\"]\nbalance = \"round-robin\"\nslow_start = \"30s\"\n[upstream.default.passive]\nconsecutive_5xx = 0\n[[rate_limit]]\nname = \"r\"\n",
        );
        assert_eq!(base, want);
    }

    #[test]
    fn the_generated_config_is_the_quick_flags() {
        let ctx = test_ctx(Some(6));
        let t = table(&render(&ctx, None));
        assert_eq!(t["workers"].as_integer(), Some(1));
        let listeners = t["listener"].as_array().unwrap();
        assert_eq!(listeners[0]["address"].as_str(), Some("127.0.0.1:8080"));
        assert_eq!(listeners[1]["address"].as_str(), Some("127.0.0.1:8443"));
        assert_eq!(
            listeners[1]["tls"][0]["cert"].as_str(),
            Some("/tmp/x/cert.pem")
        );
        assert_eq!(
            listeners[1]["tls"][0]["key"].as_str(),
            Some("/tmp/x/key.pem")
        );
        let group = &t["upstream"][GROUP];
        assert_eq!(
            group["backends"],
            Value::Array(vec!["127.0.0.1:9001".into(), "127.0.0.1:9002".into()])
        );
        assert_eq!(group["balance"].as_str(), Some("round-robin"));
        assert_eq!(t["compression"]["enabled"].as_bool(), Some(true));
        assert_eq!(t["compression"]["level"].as_integer(), Some(6));
        // Without TLS and gzip: one listener, no compression section.
        let plain = PeerCtx {
            tls_listen: None,
            ..test_ctx(None)
        };
        let t = table(&render(&plain, None));
        assert_eq!(t["listener"].as_array().unwrap().len(), 1);
        assert!(!t.contains_key("compression"));
        // brotli and zstd rows: that coding alone, at its own level key.
        let br = PeerCtx {
            coding: Coding::Br,
            ..test_ctx(Some(4))
        };
        let t = table(&render(&br, None));
        assert_eq!(t["compression"]["algorithms"][0].as_str(), Some("br"));
        assert_eq!(t["compression"]["brotli_level"].as_integer(), Some(4));
        assert!(br.cli_flags().iter().all(|f| f != "--gzip"));
        let zstd = PeerCtx {
            coding: Coding::Zstd,
            ..test_ctx(Some(3))
        };
        let t = table(&render(&zstd, None));
        assert_eq!(t["compression"]["algorithms"][0].as_str(), Some("zstd"));
        assert_eq!(t["compression"]["zstd_level"].as_integer(), Some(3));
    }

    #[test]
    fn an_extra_config_lands_in_the_generated_group() {
        let extra = ExtraConfig::parse(
            Path::new("x.toml"),
            "[upstream.default.passive]\nconsecutive_5xx = 0\n[[rate_limit]]\nname = \"all\"\nkey = \"client\"\nrate = 1000000\n",
        )
        .unwrap();
        let t = table(&render(&test_ctx(None), Some(&extra)));
        let group = &t["upstream"][GROUP];
        assert_eq!(group["passive"]["consecutive_5xx"].as_integer(), Some(0));
        assert_eq!(group["backends"].as_array().unwrap().len(), 2);
        assert_eq!(t["rate_limit"][0]["key"].as_str(), Some("client"));
    }

    #[test]
    fn an_extra_config_for_another_group_or_not_toml_is_refused() {
        let err = ExtraConfig::parse(
            Path::new("x.toml"),
            "[upstream.api.passive]\nconsecutive_5xx = 0\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("x.toml") && err.contains("[upstream.api]"),
            "{err}"
        );
        let err = ExtraConfig::parse(Path::new("y.toml"), "upstream = 1\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("must be a table"), "{err}");
        let err = ExtraConfig::parse(Path::new("z.toml"), "[[rate_limit]\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("z.toml"), "{err}");
    }

    /// The fragments shipped under bench/configs/ parse and name only the
    /// generated group (that Sluice accepts them is checked by
    /// tests/extra_config.rs with the binary).
    #[test]
    fn the_shipped_fragments_load() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                ExtraConfig::load(&path).unwrap();
                n += 1;
            }
        }
        assert!(n >= 3, "rate-limit-on, state-machine-off, state-machine-on");
    }
}
