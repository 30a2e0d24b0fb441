//! Joining and leaving the proxy through its admin API.
//!
//! On start the replica calls `POST {admin}/register?port=N` (the proxy
//! takes the caller's IP) until the proxy answers 2xx, backing off
//! exponentially with jitter so a fleet started together does not hammer a
//! proxy that is still starting. On shutdown it calls `/unregister?port=N`
//! and waits for the answer: the proxy first stops sending it new requests
//! and waits for the in-flight ones, then removes it and answers.
//!
//! With an admin token (`--admin-token`, `--admin-token-file`, or
//! `SLUICE_ADMIN_TOKEN`, the proxy's own variable) every call carries
//! `Authorization: Bearer …`. A 401 or 403 is logged as an error, since no
//! retry will fix a wrong token or a refused source, but registration
//! keeps trying: the operator may fix the proxy side.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, StatusCode};

use crate::client::{Client, ClientError};
use crate::config::AdminToken;

/// First pause between registration attempts.
pub const BACKOFF_START: Duration = Duration::from_millis(50);
/// Longest pause between registration attempts.
pub const BACKOFF_MAX: Duration = Duration::from_secs(2);
/// Timeout of one registration attempt.
const REGISTER_TIMEOUT: Duration = Duration::from_secs(2);
/// Connection-level retries of the unregister call.
const UNREGISTER_ATTEMPTS: u32 = 3;

pub struct Registrar {
    client: Client,
    port: u16,
    /// How long the proxy may take to drain us before answering.
    unregister_timeout: Duration,
    /// `Authorization: Bearer …`, when the proxy wants a token.
    authorization: Option<HeaderValue>,
}

impl Registrar {
    pub fn new(
        admin: &url::Url,
        port: u16,
        unregister_timeout: Duration,
        token: Option<&AdminToken>,
        tls: Option<&sluice_service_common::ClientTls>,
    ) -> Registrar {
        let authorization = token.and_then(|t| {
            let mut v = HeaderValue::from_str(&format!("Bearer {}", t.expose())).ok()?;
            v.set_sensitive(true);
            Some(v)
        });
        if token.is_some() && authorization.is_none() {
            tracing::error!("the admin token is not a valid header value; registering without it");
        }
        Registrar {
            client: Client::new(admin, REGISTER_TIMEOUT, tls),
            port,
            unregister_timeout,
            authorization,
        }
    }

    pub fn admin(&self) -> &str {
        self.client.authority()
    }

    /// Registers; returns once the proxy accepted, after `attempts` tries.
    /// Never gives up: the caller drops the future on shutdown.
    pub async fn register(&self) -> u32 {
        let path = format!("/register?port={}", self.port);
        let mut backoff = BACKOFF_START;
        let mut attempts = 0;
        loop {
            attempts += 1;
            match self.call(REGISTER_TIMEOUT, &path).await {
                Ok(status) if status.is_success() => return attempts,
                Ok(status @ (StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN)) => tracing::error!(
                    %status,
                    attempts,
                    "proxy refused registration: check the admin token and the proxy's admin.allowed_sources"
                ),
                Ok(status) => tracing::warn!(%status, attempts, "proxy refused registration"),
                Err(error) => tracing::debug!(
                    error = &error as &dyn std::error::Error,
                    attempts,
                    "proxy admin not reachable yet"
                ),
            }
            tokio::time::sleep(jittered(backoff)).await;
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }

    /// Unregisters and waits for the proxy to have drained us. 404 (we were
    /// never registered, e.g. shutdown during registration) is fine.
    pub async fn unregister(&self) -> Result<StatusCode, ClientError> {
        let path = format!("/unregister?port={}", self.port);
        let mut last = None;
        for _ in 0..UNREGISTER_ATTEMPTS {
            match self.call(self.unregister_timeout, &path).await {
                Ok(status) => return Ok(status),
                // The answer may have been lost after the proxy acted; a
                // second call then answers 404, which is fine.
                Err(error @ ClientError::Connect { .. }) => {
                    last = Some(error);
                    tokio::time::sleep(jittered(BACKOFF_START)).await;
                }
                Err(error) => return Err(error),
            }
        }
        Err(last.unwrap_or(ClientError::Timeout {
            authority: self.client.authority().to_owned(),
            timeout: self.unregister_timeout,
        }))
    }

    async fn call(&self, timeout: Duration, path: &str) -> Result<StatusCode, ClientError> {
        let headers: Vec<(HeaderName, HeaderValue)> = self
            .authorization
            .iter()
            .map(|v| (http::header::AUTHORIZATION, v.clone()))
            .collect();
        let reply = self
            .client
            .send_within(timeout, Method::POST, path, &headers, Bytes::new())
            .await?;
        Ok(reply.status)
    }
}

/// "Equal jitter": half the backoff fixed, half random, so retries spread
/// out but never collapse to zero.
pub fn jittered(backoff: Duration) -> Duration {
    let half = backoff / 2;
    let spread = u64::try_from(half.as_micros()).unwrap_or(u64::MAX);
    half + Duration::from_micros(fastrand::u64(0..=spread))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_half_and_full() {
        for _ in 0..1000 {
            let d = jittered(Duration::from_millis(100));
            assert!(d >= Duration::from_millis(50) && d <= Duration::from_millis(100));
        }
    }
}
