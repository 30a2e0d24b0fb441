//! After a `101 Switching Protocols`: the client's connection and the
//! backend's are spliced and bytes are copied both ways until either side
//! closes. Only HTTP/1.1 upgrades exist here (HTTP/2 has no 101), and both
//! ends are our own codec's (`http1::upgrade`).

use super::body::{RespBody, Upstream};
use super::headers;
use crate::error::{ErrorKind, ProxyError};
use crate::http1::{OnUpgrade, Upgraded};
use crate::upstream::backend::InFlight;
use http::{HeaderValue, Request, Response, Version, header};

/// The client's side of an upgrade, taken off a request that asks for one
/// (our HTTP/1 server puts it there only for `Connection: upgrade` with an
/// `Upgrade` field on HTTP/1.1).
pub fn client_side<B>(req: &mut Request<B>) -> Option<OnUpgrade> {
    if !req.headers().contains_key(header::UPGRADE) {
        return None;
    }
    req.extensions_mut().remove::<OnUpgrade>()
}

/// Answers the client's upgrade with the backend's 101 and starts the
/// tunnel, which holds the request's in-flight count until it ends.
pub fn start(
    client: Option<OnUpgrade>,
    resp: Response<Upstream>,
    via: &HeaderValue,
    in_flight: InFlight,
) -> Result<Response<RespBody>, ProxyError> {
    let Some(client) = client else {
        return Err(ProxyError::with_source(
            ErrorKind::UpstreamProtocol,
            "101 to a request that did not ask to upgrade",
        ));
    };
    let (mut parts, body) = resp.into_parts();
    let backend = match body {
        Upstream::H1(b) => b
            .into_upgraded()
            .ok_or_else(|| ProxyError::new(ErrorKind::UpstreamReset))?,
        Upstream::Hyper(_) => {
            return Err(ProxyError::with_source(
                ErrorKind::UpstreamProtocol,
                "101 over HTTP/2",
            ));
        }
    };
    parts.version = Version::HTTP_11;
    if let Some(u) = headers::strip_hop_by_hop(&mut parts.headers, true) {
        parts
            .headers
            .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        parts.headers.insert(header::UPGRADE, u);
    }
    headers::outbound(&mut parts.headers, via);
    tokio::spawn(copy_both_ways(client, backend, in_flight));
    Ok(Response::from_parts(parts, RespBody::Full(None)))
}

async fn copy_both_ways(client: OnUpgrade, mut backend: Upgraded, _in_flight: InFlight) {
    let mut client = match client.await {
        Ok(client) => client,
        Err(e) => {
            tracing::debug!(error = %e, "downstream upgrade failed");
            return;
        }
    };
    if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut backend).await {
        tracing::debug!(error = %e, "tunnel ended");
    }
}
