//! Registered backends survive a restart: they are written to a JSON file
//! atomically (temp file, fsync, rename) on every change and read on start.
//! A corrupt file is reported and ignored, never fatal.

use crate::addr::BackendAddr;
use crate::state::State;
use crate::upstream::member::Origin;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::Path;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StateFile {
    backends: Vec<Entry>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    group: String,
    address: String,
    weight: u32,
}

pub fn save(path: &Path, state: &State) -> std::io::Result<()> {
    let backends = state
        .groups
        .iter()
        .flat_map(|g| {
            g.registered().into_iter().map(|(a, w)| Entry {
                group: g.name.clone(),
                address: a.to_string(),
                weight: w,
            })
        })
        .collect();
    let json = serde_json::to_vec_pretty(&StateFile { backends }).map_err(std::io::Error::other)?;
    let tmp = path.with_extension("tmp");
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&json)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        // Make the rename itself durable.
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// Re-registers the backends saved in `path`, each checked against `own`
/// (a file written before the check existed may hold a wildcard or our
/// own listener). Missing file: nothing to do.
pub fn restore(path: &Path, state: &State, own: &[std::net::SocketAddr]) {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
        Err(e) => {
            tracing::error!(path = %path.display(), error = %e, "cannot read the state file; starting without it");
            return;
        }
    };
    let file: StateFile = match serde_json::from_slice(&bytes) {
        Ok(f) => f,
        Err(e) => {
            tracing::error!(path = %path.display(), error = %e, "corrupt state file ignored");
            return;
        }
    };
    for e in file.backends {
        let Some(group) = state.group(&e.group) else {
            tracing::warn!(group = %e.group, "state file names a group that no longer exists");
            continue;
        };
        let addr = match e.address.parse() {
            Ok(addr) => addr,
            Err(err) => {
                tracing::warn!(address = %e.address, error = %err, "bad address in the state file");
                continue;
            }
        };
        match BackendAddr::checked(addr, own) {
            Ok(addr) => {
                let weight = e.weight.clamp(1, crate::config::defaults::MAX_WEIGHT);
                if let Err(full) = group.add_backend(addr, weight, Origin::Registered) {
                    tracing::warn!(error = %full, "state file backend left out");
                }
            }
            Err(err) => tracing::warn!(error = %err, "state file backend left out"),
        }
    }
}
