//! Zero-downtime upgrade of the proxy itself: a running `sluice` hands its
//! listening sockets to a successor (`sluice --takeover`) over a Unix socket
//! (`[upgrade] socket`), as HAProxy's `expose-fd listeners` + `-x` and
//! Envoy's hot restart do. The successor accepts from the very sockets the
//! old process accepted from, so a connection waiting in an accept queue at
//! the switch is served by whichever process accepts it, never reset:
//! binding a new SO_REUSEPORT socket instead gives the new process its own
//! queue, and whatever sat in the old one dies with it.
//!
//! The exchange ([`wire`]), every step under a deadline:
//! 1. the successor connects; each side checks the other's uid (SO_PEERCRED);
//! 2. `Hello` → the old process answers `Offer` (each listener's configured
//!    and bound address, and its socket count) and sends every socket
//!    (SCM_RIGHTS), its listener set locked against reloads meanwhile;
//! 3. the successor matches them to its config by address (the rule of a
//!    reload: `server::reload::diff`), binds what is new, closes what it no
//!    longer configures, starts serving, and says `Ready`;
//! 4. the old process closes its upgrade socket, answers `Done`, stops
//!    accepting (its copies of the sockets close; the successor's stay) and
//!    drains as on SIGTERM. The successor binds the upgrade socket.
//!
//! Anything else ends the exchange: the old process logs it and keeps
//! serving; the successor exits non-zero.
//!
//! Sockets per listener: the successor keeps every socket it receives, one
//! accept loop each, even when it has fewer workers (a worker then accepts
//! from several: each SO_REUSEPORT socket has its own queue, and a closed
//! one would reset what the kernel queued on it); with more workers it
//! binds the missing ones on the same port.

pub mod serve;
pub mod take;
pub mod wire;

pub use serve::{Source, bind_upgrade_socket, serve};
pub use take::{Successor, take};

use std::io;
use std::path::PathBuf;
use std::time::Duration;

/// How long one step of the exchange may take (connect, hello, offer,
/// done): a local peer answers in microseconds; this bounds a stuck one.
pub const STEP: Duration = Duration::from_secs(10);

/// How long the old process waits for a successor to start serving after
/// it sent the sockets; reloads wait meanwhile.
pub const READY_WAIT: Duration = Duration::from_secs(60);

/// Why a handover did not happen; the old process keeps serving.
#[derive(Debug, thiserror::Error)]
pub enum HandoverError {
    #[error("upgrade socket {}: {source}", path.display())]
    Socket {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "upgrade socket {}: another process answers there (a running sluice? use --takeover to replace it)",
        path.display()
    )]
    Answering { path: PathBuf },
    #[error("upgrade socket {}: exists and is not a socket", path.display())]
    NotASocket { path: PathBuf },
    #[error(
        "upgrade socket {}: its directory is writable by anyone and not sticky (another user could replace the socket)",
        path.display()
    )]
    UnsafeDirectory { path: PathBuf },
    #[error(
        "the peer runs as uid {peer}, this process as uid {own}; a handover stays within one user"
    )]
    Credentials { peer: u32, own: u32 },
    #[error("handover: {0}")]
    Io(#[from] io::Error),
    #[error("handover: the peer sent {got} where {expected} was due")]
    Unexpected { expected: &'static str, got: String },
    #[error("handover: refused: {0}")]
    Refused(String),
    #[error("handover: {0}")]
    Invalid(String),
    #[error("handover: cannot listen: {0}")]
    Bind(#[from] crate::server::listener::BindError),
}

/// The peer of an upgrade connection must be this process's user: root's
/// and other users' processes get nothing (a listening socket handed to
/// another user would let it serve this proxy's traffic).
pub fn check_peer(peer_uid: u32, own_uid: u32) -> Result<(), HandoverError> {
    if peer_uid == own_uid {
        Ok(())
    } else {
        Err(HandoverError::Credentials {
            peer: peer_uid,
            own: own_uid,
        })
    }
}

/// [`check_peer`] on a connected Unix socket.
fn check_stream(stream: &std::os::unix::net::UnixStream) -> Result<(), HandoverError> {
    let cred = rustix::net::sockopt::socket_peercred(stream).map_err(io::Error::from)?;
    check_peer(cred.uid.as_raw(), rustix::process::getuid().as_raw())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_same_user_may_take_sockets() {
        assert!(check_peer(1000, 1000).is_ok());
        let err = check_peer(1001, 1000).expect_err("another user");
        assert!(
            matches!(
                err,
                HandoverError::Credentials {
                    peer: 1001,
                    own: 1000
                }
            ),
            "{err}"
        );
        assert!(check_peer(0, 1000).is_err(), "root is another user too");
    }

    #[test]
    fn a_socket_pair_is_its_own_user() {
        let (a, _b) = std::os::unix::net::UnixStream::pair().expect("pair");
        check_stream(&a).expect("same process, same uid");
    }
}
