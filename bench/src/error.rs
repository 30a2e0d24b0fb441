//! The harness's one error type. Every variant says what was being done, so
//! a failed run reads as a sentence ("starting nginx: ...").

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{tool} failed: {detail}")]
    Tool { tool: String, detail: String },
    #[error("could not parse {what}: {detail}")]
    Parse { what: &'static str, detail: String },
    #[error("binary not found: {0}")]
    MissingBinary(PathBuf),
    #[error("certificate generation: {0}")]
    Cert(#[from] rcgen::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Attaches a context string to an `io::Error`.
pub trait IoContext<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| Error::Io {
            context: context(),
            source,
        })
    }
}
