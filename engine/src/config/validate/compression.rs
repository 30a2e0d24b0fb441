//! `[compression]`: the codings offered and their order, each coding's
//! level and window (the memory bound per stream), and what is skipped.

use super::Validator;
use crate::config::file::CompressionFile;
use crate::config::values::media_pattern_ok;
use crate::config::{Compression, ConfigError};
use crate::proxy::compress::Encoding;

impl Validator<'_> {
    pub(super) fn compression(&self, c: CompressionFile) -> Result<Compression, ConfigError> {
        let d = Compression::default();
        let types = match c.types {
            None => d.types,
            Some(t) => {
                let span = t.span();
                let mut types = Vec::with_capacity(t.get_ref().len());
                for (i, ty) in t.into_inner().into_iter().enumerate() {
                    let ty = ty.trim().to_ascii_lowercase();
                    if !media_pattern_ok(&ty) {
                        return Err(ConfigError::MediaType {
                            at: self.at(span, format_args!("compression.types[{i}]")),
                            pattern: ty,
                        });
                    }
                    types.push(ty);
                }
                types
            }
        };
        let algorithms = match c.algorithms {
            None => d.algorithms,
            Some(list) => {
                let span = list.span();
                let mut algorithms: Vec<Encoding> = Vec::with_capacity(list.get_ref().len());
                for (i, name) in list.into_inner().into_iter().enumerate() {
                    let at = || self.at(span.clone(), format_args!("compression.algorithms[{i}]"));
                    match Encoding::from_token(name.trim()) {
                        None => {
                            return Err(ConfigError::Algorithm {
                                at: at(),
                                value: name,
                            });
                        }
                        Some(e) if algorithms.contains(&e) => {
                            return Err(ConfigError::AlgorithmTwice {
                                at: at(),
                                value: name,
                            });
                        }
                        Some(e) => algorithms.push(e),
                    }
                }
                if algorithms.is_empty() {
                    return Err(ConfigError::NoAlgorithm {
                        at: self.at(span, "compression.algorithms"),
                    });
                }
                algorithms
            }
        };
        Ok(Compression {
            enabled: c.enabled.unwrap_or(d.enabled),
            algorithms,
            level: self.bounded(c.level, "compression.level", 1, 9, d.level)?,
            brotli_level: self.bounded(
                c.brotli_level,
                "compression.brotli_level",
                0,
                11,
                d.brotli_level,
            )?,
            brotli_window_log: self.bounded(
                c.brotli_window_log,
                "compression.brotli_window_log",
                10,
                24,
                d.brotli_window_log,
            )?,
            zstd_level: self.bounded(
                c.zstd_level,
                "compression.zstd_level",
                1,
                19,
                d.zstd_level,
            )?,
            zstd_window_log: self.bounded(
                c.zstd_window_log,
                "compression.zstd_window_log",
                10,
                23,
                d.zstd_window_log,
            )?,
            min_length: self.bounded(
                c.min_length,
                "compression.min_length",
                0,
                1 << 40,
                d.min_length,
            )?,
            types,
        })
    }
}
