//! Reload (SIGHUP or `POST /reload`): read the config file again and swap it
//! in; on any error the old config keeps serving and [`ReloadError`] says why.
//!
//! Everything that can fail happens before anything changes:
//!
//! 1. read and parse the file, set the environment's `SLUICE_*__*` keys in
//!    it ([`Reloader::set_env`]), validate, then apply the binary's flags on
//!    top ([`Reloader::set_overlay`]);
//! 2. bind every new listener (as at start: one SO_REUSEPORT socket per
//!    worker runtime, "address in use" unless `share_port`) and build every
//!    TLS acceptor (PEM files are read again); an error drops what was
//!    staged, which closes its sockets;
//! 3. build the new [`State`].
//!
//! Then the state is swapped (one store), the workers start the new
//! listeners and close the vanished ones (`server::reload`), and the reload
//! returns once they have. The worker count and runtime shape stay as
//! started (a restart changes them).

use crate::addr::ListenAddr;
use crate::config::env::EnvOverlay;
use crate::config::{Config, ConfigError, ListenerConfig};
use crate::server::conn_limit::ConnLimiter;
use crate::server::listener::{BindError, bind_listener};
use crate::server::reload::{Changes, Listeners, Staged};
use crate::server::tls::TlsError;
use crate::state::{Shared, State};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use tokio_rustls::TlsAcceptor;

/// Why a reload was rejected; the old config keeps serving. The admin API
/// answers 422 with this text.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("this proxy was started without a config file; nothing to reload")]
    NoConfigFile,
    #[error("cannot read {}: {source}", path.display())]
    Unreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file, or a flag applied on top of it, breaks a rule.
    #[error(transparent)]
    Invalid(ConfigError),
    /// A new listener's address: in use, or not ours to bind.
    #[error(transparent)]
    Bind(#[from] BindError),
    /// A listener's certificate or key cannot be loaded, or the key is
    /// not the certificate's (read again on every reload: a rotation that
    /// replaced one file but not the other is refused here). Boxed: large,
    /// and rare.
    #[error("listener {address}: {source}")]
    Tls {
        address: SocketAddr,
        #[source]
        source: Box<TlsError>,
    },
    /// The runtime model cannot be built (an upstream's TLS settings).
    #[error(transparent)]
    State(std::io::Error),
}

impl From<ConfigError> for ReloadError {
    fn from(e: ConfigError) -> ReloadError {
        match e {
            ConfigError::Read { path, source } => ReloadError::Unreadable { path, source },
            e => ReloadError::Invalid(e),
        }
    }
}

/// Changes made to a freshly read config on reload (see [`Reloader::set_overlay`]).
pub type Overlay = dyn Fn(&mut Config) -> Result<(), ConfigError> + Send + Sync;

/// Reloads the config of one running [`crate::Server`].
pub struct Reloader {
    shared: Arc<Shared>,
    /// The running listeners and the workers' command channels. A tokio
    /// `Mutex` because a reload holds it while it waits for the workers;
    /// holding it for the whole reload also serialises reloads, so SIGHUP
    /// and `POST /reload` at once never both bind.
    listeners: tokio::sync::Mutex<Listeners>,
    /// The bound listener addresses, for readers that cannot await
    /// (`Server::addrs`). Written only while `listeners` is held.
    addrs: parking_lot::Mutex<Vec<ListenAddr>>,
    /// The running listeners as `/metrics` reads them (address, TLS, and
    /// the connection counts of their limiter). Like `addrs`: written only
    /// while `listeners` is held, read by scrapes without awaiting.
    metered: parking_lot::Mutex<Vec<(ListenAddr, bool, Arc<ConnLimiter>)>>,
    /// Applied to every reloaded config after the file is read: the binary
    /// puts its command-line flags here (listeners, backends, settings), so a
    /// reload never closes a flag's listener or drops its backends. Cloned
    /// out before it runs: the lock is never held across the call.
    overlay: parking_lot::Mutex<Option<Arc<Overlay>>>,
    /// The `SLUICE_<SECTION>__<KEY>` variables, applied to the file before
    /// validation; set once by the binary, cloned out of the lock.
    env: parking_lot::Mutex<Arc<EnvOverlay>>,
}

impl std::fmt::Debug for Reloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloader")
            .field("addrs", &*self.addrs.lock())
            .finish_non_exhaustive()
    }
}

impl Reloader {
    /// `listeners` are the ones the workers were started with.
    pub fn new(shared: Arc<Shared>, listeners: Listeners) -> Reloader {
        Reloader {
            shared,
            addrs: parking_lot::Mutex::new(listeners.addrs()),
            metered: parking_lot::Mutex::new(listeners.metered()),
            listeners: tokio::sync::Mutex::new(listeners),
            overlay: parking_lot::Mutex::new(None),
            env: parking_lot::Mutex::new(Arc::default()),
        }
    }

    /// The running listeners, locked: no reload changes them until the
    /// guard is dropped (`lifecycle::handover` holds it while it offers
    /// them to a successor, and at shutdown to close their duplicates).
    pub async fn lock_listeners(&self) -> tokio::sync::MutexGuard<'_, Listeners> {
        self.listeners.lock().await
    }

    /// The state every worker reads.
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// The bound addresses of the running listeners, in config order.
    pub fn listen_addrs(&self) -> Vec<ListenAddr> {
        self.addrs.lock().clone()
    }

    /// The running listeners for `/metrics`.
    pub fn metered_listeners(&self) -> Vec<crate::observe::metrics::scrape::Listener> {
        self.metered
            .lock()
            .iter()
            .map(|(a, tls, l)| crate::observe::metrics::scrape::Listener {
                address: a.to_string(),
                tls: *tls,
                limiter: l.clone(),
            })
            .collect()
    }

    /// Sets what every reload applies on top of the file (flags win).
    pub fn set_overlay(&self, overlay: Box<Overlay>) {
        *self.overlay.lock() = Some(Arc::from(overlay));
    }

    /// Sets the environment's overlay every reload applies to the file.
    pub fn set_env(&self, env: EnvOverlay) {
        *self.env.lock() = Arc::new(env);
    }

    /// Reads the config file again and swaps it in (see the module doc).
    pub async fn reload(&self) -> Result<Changes, ReloadError> {
        let mut listeners = self.listeners.lock().await;
        let current = self.shared.state.load_full();
        // Every reload reopens the access log file, a rejected one too:
        // SIGHUP after logrotate must never keep writing to the moved file.
        if let Some(log) = &current.access_log {
            log.reopen();
        }
        let path = current
            .config
            .source
            .clone()
            .ok_or(ReloadError::NoConfigFile)?;
        let env = self.env.lock().clone();
        let mut config = Config::load_with_env(&path, &env)?;
        config.workers = current.config.workers;
        config.runtime = current.config.runtime;
        let overlay = self.overlay.lock().clone();
        if let Some(apply) = overlay {
            apply(&mut config)?;
        }
        let staged = stage(&listeners, &config.listeners)?;
        let next = State::new(&config, Some(&current)).map_err(ReloadError::State)?;
        // New listeners must find the new routes: swap the state first.
        self.shared.state.store(Arc::new(next));
        let changes = listeners.commit(staged).await;
        *self.addrs.lock() = changes.listeners.clone();
        *self.metered.lock() = listeners.metered();
        self.shared
            .own
            .set_listeners(changes.listeners.iter().copied());
        drop(listeners);
        self.shared.spawn_health_checks();
        tracing::info!(
            path = %path.display(),
            added = ?changes.added,
            removed = ?changes.removed,
            "config reloaded"
        );
        Ok(changes)
    }
}

/// Phase 1 for the listeners: binds and loads everything `new` needs and
/// changes nothing; dropping the result closes what was bound.
fn stage(running: &Listeners, new: &[ListenerConfig]) -> Result<Staged, ReloadError> {
    let plan = running.plan(new);
    let mut bound = Vec::with_capacity(plan.add.len());
    for &n in &plan.add {
        let l = &new[n];
        let tls = acceptor(l)?;
        bound.push((bind_listener(l, running.runtimes())?, tls));
    }
    let mut tls = Vec::with_capacity(plan.keep.len());
    for &(r, n) in &plan.keep {
        let (old, l) = (&running.active(r).config, &new[n]);
        if old.backlog != l.backlog
            || old.reuse_port != l.reuse_port
            || old.share_port != l.share_port
        {
            tracing::warn!(
                address = %l.address,
                "backlog, reuse_port and share_port changes of a running listener need a restart"
            );
        }
        tls.push(if old.tls.is_empty() && l.tls.is_empty() {
            None
        } else {
            Some(acceptor(l)?)
        });
    }
    Ok(Staged {
        plan,
        new: new.to_vec(),
        bound,
        tls,
    })
}

fn acceptor(l: &ListenerConfig) -> Result<Option<TlsAcceptor>, ReloadError> {
    if l.tls.is_empty() {
        return Ok(None);
    }
    crate::server::tls::acceptor(&l.tls, l.client_auth.as_ref())
        .map(Some)
        .map_err(|source| ReloadError::Tls {
            address: l.address,
            source: Box::new(source),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::mpsc;

    fn listener(addr: SocketAddr) -> ListenerConfig {
        ListenerConfig {
            address: addr,
            reuse_port: true,
            share_port: false,
            backlog: 16,
            tls: Vec::new(),
            client_auth: None,
            proxy_protocol: None,
            conn_limit: Default::default(),
        }
    }

    #[test]
    fn staging_a_busy_address_fails_naming_it_and_binds_nothing() {
        // Held without SO_REUSEPORT: nobody else may listen here.
        let busy = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let busy_addr = busy.local_addr().expect("addr");
        let free = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let free_addr = free.local_addr().expect("addr");
        drop(free);
        let (tx, _rx) = mpsc::unbounded_channel();
        let set = Listeners::new(vec![tx]);
        // The free address is staged first, then released with the failure.
        let err =
            stage(&set, &[listener(free_addr), listener(busy_addr)]).expect_err("busy address");
        assert!(
            matches!(&err, ReloadError::Bind(b) if b.is_in_use()),
            "{err:?}"
        );
        assert!(err.to_string().contains(&busy_addr.to_string()), "{err}");
        let again = std::net::TcpListener::bind(free_addr);
        assert!(again.is_ok(), "the staged socket was not closed: {again:?}");
    }

    #[test]
    fn staging_a_tls_listener_with_a_missing_certificate_fails_naming_it() {
        let (tx, _rx) = mpsc::unbounded_channel();
        let set = Listeners::new(vec![tx]);
        let mut l = listener("127.0.0.1:0".parse().expect("address"));
        l.tls = vec![crate::config::CertConfig {
            cert: "/nonexistent/cert.pem".into(),
            key: "/nonexistent/key.pem".into(),
            server_names: Vec::new(),
        }];
        let err = stage(&set, &[l]).expect_err("missing certificate");
        assert!(matches!(err, ReloadError::Tls { .. }), "{err:?}");
        assert!(err.to_string().contains("/nonexistent/cert.pem"), "{err}");
    }

    #[test]
    fn staging_a_tls_listener_whose_key_is_another_certificates_fails_naming_both() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pem = |i: usize| {
            let key = rcgen::KeyPair::generate().expect("key");
            let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
                .expect("params")
                .self_signed(&key)
                .expect("cert");
            let (c, k) = (
                dir.path().join(format!("{i}.pem")),
                dir.path().join(format!("{i}.key")),
            );
            std::fs::write(&c, cert.pem()).expect("write cert");
            std::fs::write(&k, key.serialize_pem()).expect("write key");
            (c, k)
        };
        let ((cert, _), (_, key)) = (pem(0), pem(1));
        let (tx, _rx) = mpsc::unbounded_channel();
        let set = Listeners::new(vec![tx]);
        let mut l = listener("127.0.0.1:0".parse().expect("address"));
        l.tls = vec![crate::config::CertConfig {
            cert: cert.clone(),
            key: key.clone(),
            server_names: Vec::new(),
        }];
        let err = stage(&set, &[l]).expect_err("mismatched pair");
        assert!(
            matches!(&err, ReloadError::Tls { source, .. }
                if matches!(**source, TlsError::Pem(crate::config::pem::PemError::KeyMismatch { .. }))),
            "{err:?}"
        );
        let text = err.to_string();
        assert!(text.starts_with("listener 127.0.0.1:0: "), "{text}");
        assert!(
            text.contains(&*cert.to_string_lossy()) && text.contains(&*key.to_string_lossy()),
            "{text}"
        );
    }

    #[test]
    fn an_unreadable_file_and_a_broken_rule_are_told_apart() {
        let read = ConfigError::Read {
            path: "/nonexistent.toml".into(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        };
        let e = ReloadError::from(read);
        assert!(matches!(e, ReloadError::Unreadable { .. }), "{e:?}");
        assert!(e.to_string().starts_with("cannot read /nonexistent.toml: "));
        let e = ReloadError::from(ConfigError::NothingToDo);
        assert!(matches!(e, ReloadError::Invalid(_)), "{e:?}");
    }
}
