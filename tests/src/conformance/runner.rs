//! Runs cases against a proxy: it needs only the proxy's listen addresses
//! (HTTP/1 and h2c, possibly the same) and the recording origin the proxy
//! forwards to. Cases run one after another: the origin is shared and
//! re-armed for each.

use super::case::{Case, Check, Observed, Send};
use super::origin::RecordingOrigin;
use super::{client, raw_h2};
use std::net::SocketAddr;

/// Where a proxy under test listens.
#[derive(Clone, Copy, Debug)]
pub struct Target {
    /// HTTP/1.1 over TCP.
    pub h1: SocketAddr,
    /// HTTP/2 with prior knowledge over TCP (h2c).
    pub h2c: SocketAddr,
}

/// One case's result.
#[derive(Debug)]
pub struct Outcome {
    pub id: &'static str,
    /// Every check that failed, with what was observed instead.
    pub failures: Vec<String>,
    pub observed: Observed,
}

impl Outcome {
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

/// Runs `case` once against `target`, whose backend is `origin`.
pub async fn run(case: &Case, target: Target, origin: &RecordingOrigin) -> Outcome {
    origin.arm(case.origin.clone()).await;
    let mut obs = Observed::default();
    match &case.send {
        Send::H1(bytes) => {
            let head_request = bytes.starts_with(b"HEAD ");
            // Waiting to see a close costs time: only for cases that ask.
            let watch_close = case
                .checks
                .iter()
                .any(|c| matches!(c, Check::ClientClosed | Check::Refused));
            client::h1(target.h1, bytes, head_request, watch_close, &mut obs).await;
        }
        Send::H1Sequence(reqs) => client::h1_sequence(target.h1, reqs, &mut obs).await,
        Send::H1Continue { head, body } => {
            client::h1_continue(target.h1, head, body, &mut obs).await
        }
        Send::H2(req) => client::h2(target.h2c, req, &mut obs).await,
        Send::H2Raw { fields, body } => raw_h2::send(target.h2c, fields, body, &mut obs).await,
    }
    obs.origin = origin.received();
    let mut failures: Vec<String> = case
        .checks
        .iter()
        .filter_map(|c| c.verify(&obs).err().map(|e| describe(c, e)))
        .collect();
    // What the client ran into explains a missing status.
    if !failures.is_empty() {
        if let Some(e) = &obs.client_error {
            failures.push(format!("(client: {e})"));
        }
        if let Some(e) = &obs.h2_error {
            failures.push(format!("(HTTP/2: {e})"));
        }
    }
    Outcome {
        id: case.id,
        failures,
        observed: obs,
    }
}

fn describe(check: &Check, err: String) -> String {
    match check {
        Check::Custom(what, _) => format!("{what}: {err}"),
        _ => err,
    }
}

/// Runs every case in order.
pub async fn run_all(cases: &[Case], target: Target, origin: &RecordingOrigin) -> Vec<Outcome> {
    let mut out = Vec::with_capacity(cases.len());
    for case in cases {
        out.push(run(case, target, origin).await);
    }
    out
}
