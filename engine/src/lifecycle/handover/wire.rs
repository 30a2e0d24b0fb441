//! What travels on the upgrade socket: frames of a 4-byte big-endian length
//! and that much JSON ([`Msg`]), listening sockets riding on a frame's bytes
//! as SCM_RIGHTS. Blocking I/O against a deadline: every read and write of a
//! step shares one, so a peer that trickles bytes cannot stretch a step.
//!
//! A stream socket delivers a frame's descriptors with the first read that
//! touches its bytes, and never merges two frames' descriptors into one
//! read; the reader reads exactly a header, then exactly a body, so it never
//! reads into the next frame.

use serde::{Deserialize, Serialize};
use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::time::Instant;

/// The protocol's version; a peer speaking another is refused.
pub const VERSION: u32 = 1;

/// The largest frame body either side reads (an offer of 1,000 listeners
/// is about 100 KiB, far past any real config).
pub const MAX_FRAME: usize = 256 * 1024;

/// Descriptors per frame: below the kernel's SCM_MAX_FD (253).
pub const FDS_PER_FRAME: usize = 200;

/// One message of the handover, in order: `Hello` (successor), `Offer`
/// then `Sockets` frames until every offered socket is sent (old),
/// `Ready` or `Abort` (successor), `Done` (old). `Refused` ends it early.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Msg {
    Hello {
        version: u32,
        pid: u32,
    },
    Offer {
        version: u32,
        pid: u32,
        /// In the old process's config order; their sockets follow in the
        /// same order.
        listeners: Vec<Offered>,
        /// The admin API's listener, one socket, after the listeners'.
        admin: Option<Offered>,
    },
    /// `count` sockets ride on this frame.
    Sockets {
        count: usize,
    },
    Ready,
    Abort {
        reason: String,
    },
    Done,
    Refused {
        reason: String,
    },
}

/// A listener the old process offers: the address its config names (may
/// be port 0), the one it is bound to, and how many sockets it has (one per
/// worker with SO_REUSEPORT, each its own accept queue).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Offered {
    pub configured: SocketAddr,
    pub bound: SocketAddr,
    pub sockets: usize,
}

fn timed_out() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "the peer took too long")
}

/// Sets the socket's timeouts to what is left until `deadline`.
fn arm(stream: &UnixStream, deadline: Instant) -> io::Result<()> {
    let left = deadline
        .checked_duration_since(Instant::now())
        .filter(|d| !d.is_zero())
        .ok_or_else(timed_out)?;
    stream.set_read_timeout(Some(left))?;
    stream.set_write_timeout(Some(left))
}

/// Sends `msg` with `fds` attached to its bytes.
pub fn send(
    stream: &UnixStream,
    msg: &Msg,
    fds: &[BorrowedFd<'_>],
    deadline: Instant,
) -> io::Result<()> {
    let body = serde_json::to_vec(msg).map_err(io::Error::other)?;
    let len = u32::try_from(body.len())
        .ok()
        .filter(|&l| l as usize <= MAX_FRAME)
        .ok_or_else(|| io::Error::other("handover message too large"))?;
    let mut frame = Vec::with_capacity(4 + body.len());
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(&body);
    arm(stream, deadline)?;
    let mut space = vec![MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(fds.len()))];
    let mut control = rustix::net::SendAncillaryBuffer::new(&mut space);
    if !fds.is_empty() && !control.push(rustix::net::SendAncillaryMessage::ScmRights(fds)) {
        return Err(io::Error::other(
            "descriptors do not fit the control buffer",
        ));
    }
    let sent = loop {
        match rustix::net::sendmsg(
            stream,
            &[IoSlice::new(&frame)],
            &mut control,
            rustix::net::SendFlags::NOSIGNAL,
        ) {
            Ok(n) => break n,
            Err(rustix::io::Errno::INTR) => continue,
            Err(rustix::io::Errno::AGAIN) => return Err(timed_out()),
            Err(e) => return Err(e.into()),
        }
    };
    // The descriptors went with the first byte; the rest is plain bytes.
    let mut rest = &frame[sent..];
    while !rest.is_empty() {
        arm(stream, deadline)?;
        match (&*stream).write(rest) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => rest = &rest[n..],
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Err(timed_out()),
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Reads one frame and the descriptors on it (at most [`FDS_PER_FRAME`];
/// more is an error, and they are closed). Descriptors arrive close-on-exec.
pub fn recv(stream: &UnixStream, deadline: Instant) -> io::Result<(Msg, Vec<OwnedFd>)> {
    let mut head = [0u8; 4];
    let mut space = vec![MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(FDS_PER_FRAME))];
    let mut control = rustix::net::RecvAncillaryBuffer::new(&mut space);
    arm(stream, deadline)?;
    let got = loop {
        match rustix::net::recvmsg(
            stream,
            &mut [IoSliceMut::new(&mut head)],
            &mut control,
            rustix::net::RecvFlags::CMSG_CLOEXEC,
        ) {
            Ok(r) => break r,
            Err(rustix::io::Errno::INTR) => continue,
            Err(rustix::io::Errno::AGAIN) => return Err(timed_out()),
            Err(e) => return Err(e.into()),
        }
    };
    let mut fds = Vec::new();
    for m in control.drain() {
        if let rustix::net::RecvAncillaryMessage::ScmRights(received) = m {
            fds.extend(received);
        }
    }
    if got.bytes == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the peer closed the connection",
        ));
    }
    if got.flags.contains(rustix::net::ReturnFlags::CTRUNC) {
        return Err(io::Error::other("more descriptors than a frame may carry"));
    }
    read_exact(stream, &mut head[got.bytes..], deadline)?;
    let len = u32::from_be_bytes(head) as usize;
    if len > MAX_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("a {len}-byte frame (at most {MAX_FRAME})"),
        ));
    }
    let mut body = vec![0; len];
    read_exact(stream, &mut body, deadline)?;
    let msg =
        serde_json::from_slice(&body).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    Ok((msg, fds))
}

fn read_exact(stream: &UnixStream, mut buf: &mut [u8], deadline: Instant) -> io::Result<()> {
    while !buf.is_empty() {
        arm(stream, deadline)?;
        match (&*stream).read(buf) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the peer closed the connection mid-frame",
                ));
            }
            Ok(n) => buf = &mut buf[n..],
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Err(timed_out()),
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;
    use std::time::Duration;

    fn soon() -> Instant {
        Instant::now() + Duration::from_secs(5)
    }

    #[test]
    fn a_frame_carries_its_message_and_working_sockets() {
        let (a, b) = UnixStream::pair().expect("pair");
        let l1 = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let l2 = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let msg = Msg::Sockets { count: 2 };
        send(&a, &msg, &[l1.as_fd(), l2.as_fd()], soon()).expect("send");
        send(&a, &Msg::Ready, &[], soon()).expect("send");
        let (got, fds) = recv(&b, soon()).expect("recv");
        assert_eq!(got, msg);
        assert_eq!(fds.len(), 2);
        let received = std::net::TcpListener::from(fds.into_iter().next().expect("fd"));
        assert_eq!(
            received.local_addr().expect("addr"),
            l1.local_addr().expect("addr")
        );
        // The same socket: a connection queued on it is accepted through the copy.
        let _client =
            std::net::TcpStream::connect(l1.local_addr().expect("addr")).expect("connect");
        drop(l1);
        received.accept().expect("the received copy accepts");
        let (next, fds) = recv(&b, soon()).expect("recv");
        assert_eq!((next, fds.len()), (Msg::Ready, 0));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic_or_a_huge_allocation() {
        let (a, b) = UnixStream::pair().expect("pair");
        (&a).write_all(&u32::MAX.to_be_bytes()).expect("write");
        let err = recv(&b, soon()).expect_err("too large");
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        let (a, b) = UnixStream::pair().expect("pair");
        (&a).write_all(&[0, 0, 0, 5, b'h', b'e', b'l', b'l', b'o'])
            .expect("write");
        assert_eq!(
            recv(&b, soon()).expect_err("not JSON").kind(),
            io::ErrorKind::InvalidData
        );
    }

    #[test]
    fn a_silent_peer_times_out_and_a_gone_one_is_eof() {
        let (a, b) = UnixStream::pair().expect("pair");
        (&a).write_all(&[0, 0]).expect("write");
        let err = recv(&b, Instant::now() + Duration::from_millis(50)).expect_err("half a header");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        drop(a);
        let (_a2, b2) = UnixStream::pair().expect("pair");
        drop(_a2);
        assert_eq!(
            recv(&b2, soon()).expect_err("closed").kind(),
            io::ErrorKind::UnexpectedEof
        );
    }
}
