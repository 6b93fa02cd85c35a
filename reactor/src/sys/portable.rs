//! The portable poller: the `polling` crate alone (epoll, kqueue, event ports, IOCP's
//! AFD layer, or `poll`), with std's socket reads and writes.
//!
//! Connections are level-triggered here: read interest stays armed while reading is
//! wanted, write interest only while a write queue waits for the socket, and
//! [`Poller::edge_connections`] says so. Listening sockets are level-triggered too, and
//! async sockets oneshot. On Linux the `portable-poller` feature selects this file, so
//! that CI runs every test on this path as well.
// The epoll path builds on this poller and leaves the rest unused.
#![cfg_attr(
    all(
        any(target_os = "linux", target_os = "android"),
        not(feature = "portable-poller")
    ),
    allow(dead_code)
)]

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, RawFd};
use std::time::Duration;

use polling::{Event, PollMode};

use super::{poll_key, Interest, Ready, NOTIFY_KEY};
use crate::slab::Key;

/// The buffer a wait fills.
pub(crate) type Events = polling::Events;

/// A readiness poller (see the [module docs](super)).
///
/// Contract: a registered descriptor is [`delete`](Self::delete)d before its owner
/// closes it.
pub(crate) struct Poller {
    poller: polling::Poller,
}

fn event(key: Key, interest: Interest) -> Event {
    let k = poll_key(key);
    match (interest.read, interest.write) {
        (true, true) => Event::all(k),
        (true, false) => Event::readable(k),
        (false, true) => Event::writable(k),
        (false, false) => Event::none(k),
    }
}

impl Poller {
    pub(crate) fn new() -> io::Result<Poller> {
        Ok(Poller {
            poller: polling::Poller::new()?,
        })
    }

    /// A new, empty wait buffer.
    pub(crate) fn events() -> Events {
        Events::new()
    }

    /// Whether connections register edge-triggered interest (never, here).
    pub(crate) fn edge_connections(&self) -> bool {
        false
    }

    /// Whether listeners are registered `EPOLLEXCLUSIVE` (never, here).
    pub(crate) fn exclusive_listeners(&self) -> bool {
        false
    }

    /// Adds `fd` (open, and lent for this call) under `key`.
    pub(crate) fn add(
        &self,
        fd: RawFd,
        key: Key,
        interest: Interest,
        mode: PollMode,
        _exclusive: bool,
    ) -> io::Result<()> {
        // SAFETY: every registered descriptor is deleted from the poller by `delete`
        // before its owner closes it: the socket types of this crate deregister in
        // their close paths and in `Drop`.
        unsafe { self.poller.add_with_mode(fd, event(key, interest), mode) }
    }

    /// Changes what the registered `fd` wants to hear about.
    pub(crate) fn modify(
        &self,
        fd: RawFd,
        key: Key,
        interest: Interest,
        mode: PollMode,
        _exclusive: bool,
    ) -> io::Result<()> {
        // SAFETY: `fd` is registered, so it is open (it is deleted before close).
        let fd = unsafe { BorrowedFd::borrow_raw(fd) };
        self.poller.modify_with_mode(fd, event(key, interest), mode)
    }

    /// Removes the registered `fd`. Call before closing it.
    pub(crate) fn delete(&self, fd: RawFd) -> io::Result<()> {
        // SAFETY: the descriptor is still open: its owner calls this before closing.
        let fd = unsafe { BorrowedFd::borrow_raw(fd) };
        self.poller.delete(fd)
    }

    /// Waits for I/O (at most `timeout`; `None` = until something happens) and appends
    /// the ready sources, by poll key, to `ready`.
    pub(crate) fn wait(
        &self,
        events: &mut Events,
        timeout: Option<Duration>,
        ready: &mut Vec<(usize, Ready)>,
    ) {
        events.clear();
        if let Err(e) = self.poller.wait(events, timeout) {
            log::error!("poller wait failed: {e}");
        }
        ready.extend(events.iter().filter(|ev| ev.key != NOTIFY_KEY).map(|ev| {
            (
                ev.key,
                Ready {
                    readable: ev.readable,
                    writable: ev.writable,
                    hangup: ev.is_interrupt() || ev.is_err().unwrap_or(false),
                    read_closed: ev.is_interrupt(),
                },
            )
        }));
    }

    /// Wakes a thread blocked in [`wait`](Self::wait).
    pub(crate) fn notify(&self) -> io::Result<()> {
        self.poller.notify()
    }

    /// `polling`'s own poller, for the epoll path built on it.
    #[cfg_attr(feature = "portable-poller", allow(dead_code))]
    pub(crate) fn polling(&self) -> &polling::Poller {
        &self.poller
    }
}

/// One read from a connected stream socket: std's read.
pub(crate) fn sock_read<S: AsFd>(sock: &S, buf: &mut [u8]) -> io::Result<usize>
where
    for<'a> &'a S: Read,
{
    let mut sock = sock;
    sock.read(buf)
}

/// One write to a connected stream socket: std's write.
pub(crate) fn sock_send<S: AsFd>(sock: &S, buf: &[u8]) -> io::Result<usize>
where
    for<'a> &'a S: Write,
{
    let mut sock = sock;
    sock.write(buf)
}

/// One write that more follows at once: std's write (no `MSG_MORE` here).
pub(crate) fn sock_send_more<S: AsFd>(sock: &S, buf: &[u8]) -> io::Result<usize>
where
    for<'a> &'a S: Write,
{
    sock_send(sock, buf)
}

/// Sends up to `len` bytes of `file` from `offset` to a stream socket where `sendfile(2)`
/// is not used: one `pread` of at most 64 KiB into a stack buffer, then one write. Bytes
/// read and not taken by the socket are read again by the next call. Returns the bytes
/// sent; 0 when `file` ends before `offset`.
#[cfg_attr(
    all(
        any(target_os = "linux", target_os = "android"),
        not(feature = "portable-poller")
    ),
    allow(dead_code)
)]
pub(crate) fn sock_send_file<S: AsFd>(
    sock: &S,
    file: &std::fs::File,
    offset: u64,
    len: usize,
) -> io::Result<usize>
where
    for<'a> &'a S: Write,
{
    use std::os::unix::fs::FileExt;
    let mut buf = [0u8; 64 * 1024];
    let want = len.min(buf.len());
    let n = loop {
        match file.read_at(&mut buf[..want], offset) {
            Ok(n) => break n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    };
    if n == 0 {
        return Ok(0);
    }
    sock_send(sock, &buf[..n])
}

/// Where `splice(2)` is not used there is no pipe: [`Pipe::new`] fails and a splice
/// copies through user space instead.
pub(crate) struct Pipe {
    _none: (),
}

fn no_splice() -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        "splice is not used on this platform",
    )
}

impl Pipe {
    /// Always fails: `Unsupported`.
    pub(crate) fn new(_size: usize) -> io::Result<Pipe> {
        Err(no_splice())
    }

    pub(crate) fn capacity(&self) -> usize {
        0
    }

    pub(crate) fn fill_from<S: AsFd>(&self, _sock: &S, _len: usize) -> io::Result<usize> {
        Err(no_splice())
    }

    pub(crate) fn drain_to<S: AsFd>(&self, _sock: &S, _len: usize) -> io::Result<usize> {
        Err(no_splice())
    }
}
