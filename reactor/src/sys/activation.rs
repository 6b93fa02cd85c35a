//! Inherited listening sockets: systemd socket activation (`LISTEN_FDS`) and a descriptor
//! named on the command line. The only place outside the poller where a raw descriptor
//! becomes an owned one.

use std::collections::HashSet;
use std::io;
use std::net::TcpListener;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::sync::Mutex;

/// The first descriptor systemd passes (`SD_LISTEN_FDS_START`).
const LISTEN_FDS_START: RawFd = 3;

/// Descriptors already taken: each becomes owned at most once in the process.
static TAKEN: Mutex<Option<HashSet<RawFd>>> = Mutex::new(None);

/// Takes ownership of the inherited descriptor `fd`, once per process.
fn take(fd: RawFd) -> io::Result<OwnedFd> {
    if fd <= 2 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("descriptor {fd} is standard input, output or error, not a socket"),
        ));
    }
    let mut taken = TAKEN.lock().unwrap_or_else(|e| e.into_inner());
    let taken = taken.get_or_insert_with(HashSet::new);
    if taken.contains(&fd) {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("descriptor {fd} was already taken"),
        ));
    }
    // Is it an open socket? Asking its type fails with EBADF on a closed descriptor and
    // ENOTSOCK on a file, and changes nothing.
    {
        // SAFETY: the borrow lives only for the one `getsockopt` below, during which
        // nothing in this process closes `fd` (it is not owned by anyone yet: `TAKEN`).
        // Were it closed, the kernel answers EBADF, which is returned.
        let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
        socket2::SockRef::from(&borrowed)
            .r#type()
            .map_err(|e| io::Error::new(e.kind(), format!("descriptor {fd}: {e}")))?;
    }
    taken.insert(fd);
    // SAFETY: `fd` is open (checked above), it was inherited at exec (the caller names it
    // as such: systemd's LISTEN_FDS range or the operator's --listen-fd), and `TAKEN`
    // guarantees no other owner is made for it in this process.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Makes an owned descriptor a listening TCP socket, checked, close-on-exec.
fn listener(fd: OwnedFd) -> io::Result<TcpListener> {
    let sock = socket2::Socket::from(fd);
    if sock.r#type()? != socket2::Type::STREAM {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the inherited socket is not a stream socket",
        ));
    }
    #[cfg(any(target_os = "linux", target_os = "android"))]
    if !sock.is_listener()? {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the inherited socket is not listening",
        ));
    }
    sock.set_cloexec(true)?;
    Ok(TcpListener::from(sock))
}

/// See [`crate::activation::listen_fds`].
pub(crate) fn listen_fds(unset_env: bool) -> io::Result<Vec<(String, OwnedFd)>> {
    let pid = std::env::var("LISTEN_PID").ok();
    let fds = std::env::var("LISTEN_FDS").ok();
    let names = std::env::var("LISTEN_FDNAMES").ok();
    if unset_env {
        // Like sd_listen_fds(1): children of this process must not take them too.
        std::env::remove_var("LISTEN_PID");
        std::env::remove_var("LISTEN_FDS");
        std::env::remove_var("LISTEN_FDNAMES");
    }
    let (Some(pid), Some(fds)) = (pid, fds) else {
        return Ok(Vec::new());
    };
    let pid: u32 = pid.trim().parse().map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("LISTEN_PID={pid:?} is not a pid"),
        )
    })?;
    if pid != std::process::id() {
        // Meant for another process (our parent, say): not ours.
        return Ok(Vec::new());
    }
    let n: RawFd = fds.trim().parse().ok().filter(|n| *n >= 0).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("LISTEN_FDS={fds:?} is not a count"),
        )
    })?;
    let names: Vec<String> = names
        .map(|n| n.split(':').map(str::to_string).collect())
        .unwrap_or_default();
    let mut out = Vec::with_capacity(n as usize);
    for i in 0..n {
        let fd = take(LISTEN_FDS_START + i)?;
        socket2::SockRef::from(&fd).set_cloexec(true)?;
        let name = names
            .get(i as usize)
            .cloned()
            .unwrap_or_else(|| "unknown".to_string());
        out.push((name, fd));
    }
    Ok(out)
}

/// See [`crate::activation::inherited_tcp_listener`].
pub(crate) fn inherited_tcp_listener(fd: RawFd) -> io::Result<TcpListener> {
    listener(take(fd)?)
}

/// See [`crate::activation::ListenFd::into_tcp_listener`].
pub(crate) fn owned_tcp_listener(fd: OwnedFd) -> io::Result<TcpListener> {
    listener(fd)
}
