//! What a request carries from where it came: its worker's resources
//! ([`Worker`]: the shared state and the worker's upstream pool) and its
//! connection ([`ConnCtx`]). `server::worker` makes them, `proxy` reads
//! them; neither module imports the other for them.

use crate::addr::{ClientAddr, ClientStrings};
use crate::interim::InterimQueue;
use crate::server::conn_limit::Permit;
use crate::state::Shared;
use crate::upstream::pool::Pool;
use std::sync::Arc;

/// What one worker owns: its connection pool, and the shared state.
#[derive(Debug)]
pub struct Worker {
    pub shared: Arc<Shared>,
    pub pool: Arc<Pool>,
}

/// What a request knows about the connection it came on.
#[derive(Debug)]
pub struct ConnCtx {
    pub worker: Arc<Worker>,
    pub client: ClientAddr,
    /// The client address as header text, formatted once per connection,
    /// or shared by connections from one address (`server::worker`).
    pub client_strings: Arc<ClientStrings>,
    /// `http` or `https`.
    pub proto: &'static str,
    /// Where the backend's 1xx go on their way to this connection's
    /// current HTTP/1.1 request (`crate::interim`).
    pub interim: InterimQueue,
    /// The connection's slot of its listener's limits
    /// (`server::conn_limit`); its client's share is given back on drop.
    pub permit: Option<Permit>,
    /// What the client's verified TLS certificate says, as the backends'
    /// field value (`server::client_cert`); made once per connection, and
    /// boxed: the connections without one (most) keep 8 bytes for it.
    pub client_cert: Option<Box<http::HeaderValue>>,
}

impl Drop for ConnCtx {
    fn drop(&mut self) {
        if let Some(p) = &self.permit {
            p.release_client(self.client.0.ip());
        }
    }
}

impl ConnCtx {
    pub fn new(worker: Arc<Worker>, client: ClientAddr, proto: &'static str) -> ConnCtx {
        let strings = Arc::new(ClientStrings::new(client));
        ConnCtx::with_strings(worker, client, strings, proto)
    }

    /// With `client_strings` already made for `client`'s address.
    pub fn with_strings(
        worker: Arc<Worker>,
        client: ClientAddr,
        client_strings: Arc<ClientStrings>,
        proto: &'static str,
    ) -> ConnCtx {
        ConnCtx {
            worker,
            client,
            client_strings,
            proto,
            interim: InterimQueue::default(),
            permit: None,
            client_cert: None,
        }
    }
}
