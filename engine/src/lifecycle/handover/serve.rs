//! The running process's side: its upgrade socket ([`bind_upgrade_socket`])
//! and the exchange with a successor ([`serve`]), which resolves once one
//! has taken over; the binary then drains as on SIGTERM.

use super::wire::{self, FDS_PER_FRAME, Msg, Offered, VERSION};
use super::{HandoverError, READY_WAIT, STEP, check_stream};
use crate::lifecycle::Reloader;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// What a running server can hand over: its listeners (with their socket
/// duplicates, in the reloader's listener set) and its admin listener.
pub struct Source {
    reloader: Arc<Reloader>,
    /// The admin listener's configured and bound address and a duplicate
    /// of its socket. A `parking_lot` mutex: taken briefly, never across
    /// an `.await`; emptied at shutdown (as the listeners' duplicates are).
    admin: parking_lot::Mutex<Option<(SocketAddr, SocketAddr, TcpListener)>>,
    /// Set once a successor took over: the admin API stops accepting, so
    /// that probes reach the successor rather than this draining process.
    admin_stop: watch::Sender<bool>,
}

impl Source {
    /// `admin`: the admin API's configured address and its bound socket.
    pub fn new(
        reloader: Arc<Reloader>,
        admin: Option<(SocketAddr, &TcpListener)>,
        admin_stop: watch::Sender<bool>,
    ) -> Source {
        let admin = admin.and_then(|(configured, socket)| {
            let bound = socket.local_addr().ok()?;
            match socket.try_clone() {
                Ok(dup) => Some((configured, bound, dup)),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot keep the admin socket for a handover");
                    None
                }
            }
        });
        Source {
            reloader,
            admin: parking_lot::Mutex::new(admin),
            admin_stop,
        }
    }

    /// Closes every duplicate (shutdown, before the workers close theirs).
    pub async fn release(&self) {
        self.admin.lock().take();
        self.reloader.lock_listeners().await.release_dups();
    }
}

/// Binds the upgrade socket at `path`, mode 0600. A socket already there
/// is replaced only when nothing answers on it (left by a process that
/// died); a live one, or a file that is not a socket, is an error. A
/// directory anyone may write to must be sticky (`/tmp`): else another
/// user could swap the socket for theirs.
pub fn bind_upgrade_socket(path: &Path) -> Result<UnixListener, HandoverError> {
    let fail = |source| HandoverError::Socket {
        path: path.to_owned(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("/"));
    let mode = std::fs::metadata(dir).map_err(fail)?.permissions().mode();
    if mode & 0o002 != 0 && mode & 0o1000 == 0 {
        return Err(HandoverError::UnsafeDirectory {
            path: path.to_owned(),
        });
    }
    match std::fs::symlink_metadata(path) {
        Ok(m) if !m.file_type().is_socket() => {
            return Err(HandoverError::NotASocket {
                path: path.to_owned(),
            });
        }
        Ok(_) => match UnixStream::connect(path) {
            Ok(_) => {
                return Err(HandoverError::Answering {
                    path: path.to_owned(),
                });
            }
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                std::fs::remove_file(path).map_err(fail)?;
            }
            Err(e) => return Err(fail(e)),
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(fail(e)),
    }
    let listener = UnixListener::bind(path).map_err(fail)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(fail)?;
    Ok(listener)
}

/// Answers successors on `listener` one at a time and resolves once one
/// has taken over (after `Done`, with the upgrade socket closed and the
/// admin API stopped). A failed exchange is logged and the next one
/// awaited: this process keeps serving throughout.
pub async fn serve(listener: UnixListener, source: Arc<Source>) {
    let listener = match listener
        .set_nonblocking(true)
        .and_then(|()| tokio::net::UnixListener::from_std(listener))
    {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "upgrade socket unusable; no handover possible");
            return std::future::pending().await;
        }
    };
    loop {
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                tracing::warn!(error = %e, "upgrade socket: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let stream = match stream
            .into_std()
            .and_then(|s| s.set_nonblocking(false).map(|()| s))
        {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "upgrade socket: cannot use a connection");
                continue;
            }
        };
        match offer(stream, &source).await {
            Ok((stream, guard)) => {
                // The successor binds the path once it has `Done`.
                drop(listener);
                let sent =
                    blocking(move || wire::send(&stream, &Msg::Done, &[], deadline(STEP))).await;
                if let Err(e) = sent {
                    tracing::warn!(error = %e, "handover: cannot confirm to the successor");
                }
                drop(guard);
                source.admin_stop.send_replace(true);
                tracing::info!("handover complete: a successor serves; draining");
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "handover aborted; this process keeps serving");
            }
        }
    }
}

fn deadline(d: Duration) -> Instant {
    Instant::now() + d
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(io::Error::other)?
}

/// One exchange up to the successor's `Ready`: the connection, and the
/// listener set, locked so that no reload changes it before this process
/// stops accepting.
async fn offer(
    stream: UnixStream,
    source: &Source,
) -> Result<
    (
        UnixStream,
        tokio::sync::MutexGuard<'_, crate::server::reload::Listeners>,
    ),
    HandoverError,
> {
    check_stream(&stream)?;
    let (stream, hello) = blocking(move || {
        let (msg, _) = wire::recv(&stream, deadline(STEP))?;
        Ok((stream, msg))
    })
    .await?;
    let pid = match hello {
        Msg::Hello { version, pid } if version == VERSION => pid,
        Msg::Hello { version, .. } => {
            let reason = format!("protocol version {version}; this process speaks {VERSION}");
            let _ = wire::send(
                &stream,
                &Msg::Refused {
                    reason: reason.clone(),
                },
                &[],
                deadline(STEP),
            );
            return Err(HandoverError::Refused(reason));
        }
        other => {
            return Err(HandoverError::Unexpected {
                expected: "hello",
                got: format!("{other:?}"),
            });
        }
    };
    tracing::info!(
        successor = pid,
        "handover: a successor asks for the listening sockets"
    );
    let guard = source.reloader.lock_listeners().await;
    let mut listeners = Vec::new();
    let mut fds: Vec<OwnedFd> = Vec::new();
    for a in guard.all() {
        listeners.push(Offered {
            configured: a.config.address,
            bound: a.local.0,
            sockets: a.dups.len(),
        });
        for s in a.dups.iter() {
            fds.push(s.try_clone()?.into());
        }
    }
    let admin = match &*source.admin.lock() {
        Some((configured, bound, socket)) => {
            fds.push(socket.try_clone()?.into());
            Some(Offered {
                configured: *configured,
                bound: *bound,
                sockets: 1,
            })
        }
        None => None,
    };
    let count = fds.len();
    let offer = Msg::Offer {
        version: VERSION,
        pid: std::process::id(),
        listeners,
        admin,
    };
    let stream = blocking(move || {
        let step = deadline(STEP);
        wire::send(&stream, &offer, &[], step)?;
        for batch in fds.chunks(FDS_PER_FRAME) {
            let borrowed: Vec<_> = batch.iter().map(|f| f.as_fd()).collect();
            wire::send(
                &stream,
                &Msg::Sockets { count: batch.len() },
                &borrowed,
                step,
            )?;
        }
        Ok(stream)
    })
    .await?;
    tracing::info!(
        successor = pid,
        sockets = count,
        "handover: sockets sent; waiting for the successor to serve"
    );
    let (stream, answer) = blocking(move || {
        let (msg, _) = wire::recv(&stream, deadline(READY_WAIT))?;
        Ok((stream, msg))
    })
    .await?;
    match answer {
        Msg::Ready => Ok((stream, guard)),
        Msg::Abort { reason } => Err(HandoverError::Refused(reason)),
        other => Err(HandoverError::Unexpected {
            expected: "ready",
            got: format!("{other:?}"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stale_socket_is_replaced_a_live_one_or_a_file_is_not() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("upgrade.sock");
        let live = bind_upgrade_socket(&path).expect("bind");
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(matches!(
            bind_upgrade_socket(&path),
            Err(HandoverError::Answering { .. })
        ));
        drop(live);
        // Left behind by a process that died: nobody answers.
        bind_upgrade_socket(&path).expect("a stale socket is replaced");
        let file = dir.path().join("file");
        std::fs::write(&file, "x").expect("write");
        assert!(matches!(
            bind_upgrade_socket(&file),
            Err(HandoverError::NotASocket { .. })
        ));
    }

    #[test]
    fn a_world_writable_directory_must_be_sticky() {
        let dir = tempfile::tempdir().expect("tempdir");
        let open = dir.path().join("open");
        std::fs::create_dir(&open).expect("mkdir");
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).expect("chmod");
        assert!(matches!(
            bind_upgrade_socket(&open.join("s.sock")),
            Err(HandoverError::UnsafeDirectory { .. })
        ));
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o1777)).expect("chmod");
        bind_upgrade_socket(&open.join("s.sock")).expect("sticky, like /tmp");
    }
}
