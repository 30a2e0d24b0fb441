//! DNS discovery: a backend given by name stands for every address the name
//! resolves to, resolved again on an interval. Addresses that appear join
//! the group; those that disappear are drained, then removed once their
//! in-flight requests are done. This is how several proxy instances follow a
//! Kubernetes headless Service or Consul DNS without talking to each other.
//!
//! A failed lookup changes nothing: a DNS hiccup must not empty a group.
//! An answer that no backend can be (port 0 aside, which a name never has:
//! a wildcard, multicast or broadcast address, or this proxy's own
//! listener) is left out with a warning (`addr::BackendAddr::checked`).
//!
//! # Concurrency
//! Like the health task: the group is held weakly between rounds, and the
//! member lock only inside the synchronous [`Group::set_discovered`], never
//! across a lookup's `.await`.

use super::Group;
use crate::addr::{BackendAddr, OwnAddrs};
use std::fmt::Debug;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Weak};

pub type Lookup<'a> = Pin<Box<dyn Future<Output = io::Result<Vec<SocketAddr>>> + Send + 'a>>;

/// Resolves names; the system resolver in production, a scripted one in tests.
pub trait Resolver: Debug + Send + Sync + 'static {
    fn lookup<'a>(&'a self, host: &'a str, port: u16) -> Lookup<'a>;
}

/// getaddrinfo through tokio's blocking pool (honours /etc/hosts and resolv.conf).
#[derive(Debug, Default)]
pub struct SystemResolver;

impl Resolver for SystemResolver {
    fn lookup<'a>(&'a self, host: &'a str, port: u16) -> Lookup<'a> {
        Box::pin(async move { Ok(tokio::net::lookup_host((host, port)).await?.collect()) })
    }
}

/// Spawns the discovery task of `group` if it has backends given by name.
pub fn spawn(group: &Arc<Group>, resolver: Arc<dyn Resolver>, own: Arc<OwnAddrs>) {
    if !group.dns.is_empty() {
        tokio::spawn(run(Arc::downgrade(group), resolver, own));
    }
}

async fn run(group: Weak<Group>, resolver: Arc<dyn Resolver>, own: Arc<OwnAddrs>) {
    loop {
        let Some(g) = group.upgrade() else { return };
        let mut found: Vec<(BackendAddr, u32)> = Vec::new();
        let mut complete = true;
        for d in &g.dns {
            match resolver.lookup(&d.host, d.port).await {
                Ok(addrs) => {
                    let own = own.all();
                    for a in addrs {
                        match BackendAddr::checked(a, &own) {
                            Ok(a) => found.push((a, d.weight)),
                            Err(e) => {
                                tracing::warn!(group = %g.name, host = %d.host, error = %e, "DNS answer is no backend; left out")
                            }
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(group = %g.name, host = %d.host, error = %e, "DNS lookup failed; keeping the current backends");
                    complete = false;
                }
            }
        }
        if complete {
            g.set_discovered(&found);
        }
        let interval = g.resolve_interval;
        drop(g);
        tokio::time::sleep(interval).await;
    }
}
