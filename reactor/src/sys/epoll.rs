//! The Linux poller: `polling`'s epoll descriptor, called directly where `polling` costs
//! more or cannot ask for what is needed.
//!
//! - Connections are registered edge-triggered with `EPOLLRDHUP` (which `polling` does
//!   not ask for) through `epoll_ctl`: read and write interest are registered once and
//!   never changed, so no system call changes interest as a write queue fills and
//!   drains, and the kernel does not look at a reported socket again on its next wait.
//!   What it will not report again (a read budget spent before the socket was drained,
//!   reading resumed, a write wanted while the socket is already writable) the
//!   connection asks of the next turn itself (`Sources::ready_again`).
//! - Listeners are registered with `EPOLLEXCLUSIVE`: when several reactors watch one
//!   accept queue, a new connection wakes one of them, not all.
//! - A turn waits with one `epoll_wait`; `polling`'s wait (five system calls: it re-arms
//!   a timerfd and its eventfd notifier around its `epoll_wait`) runs only when its
//!   notifier fired, with a zero timeout, so that it clears and re-arms them as it
//!   expects.
//! - Connections read with `recv(2)` and send with `send(2)` as direct system calls.
//!
//! Level-triggered and oneshot sources (async sockets, signal wake-ups) and `notify` go
//! through `polling` as on the portable path.

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd, RawFd};
use std::time::Duration;

use polling::PollMode;
use rustix::event::epoll::{self, EventData, EventFlags};
use rustix::io::Errno;

use super::portable;
use super::{poll_key, Interest, Ready, NOTIFY_KEY};
use crate::slab::Key;

/// The buffers a wait fills: the direct `epoll_wait`'s, and `polling`'s.
pub(crate) struct Events {
    direct: Vec<epoll::Event>,
    polling: portable::Events,
}

/// A readiness poller (see the [module docs](self)).
///
/// Contract: a registered descriptor is [`delete`](Self::delete)d before its owner
/// closes it.
pub(crate) struct Poller {
    portable: portable::Poller,
    /// Whether the kernel takes edge-triggered registrations.
    edge: bool,
}

impl Poller {
    pub(crate) fn new() -> io::Result<Poller> {
        let portable = portable::Poller::new()?;
        let edge = portable.polling().supports_edge();
        Ok(Poller { portable, edge })
    }

    /// A new, empty wait buffer.
    pub(crate) fn events() -> Events {
        Events {
            direct: Vec::with_capacity(1024),
            polling: portable::Events::new(),
        }
    }

    /// Whether connections register edge-triggered interest.
    pub(crate) fn edge_connections(&self) -> bool {
        self.edge
    }

    /// Whether listeners are registered `EPOLLEXCLUSIVE`.
    pub(crate) fn exclusive_listeners(&self) -> bool {
        true
    }

    /// Adds `fd` (open, and lent for this call) under `key`.
    pub(crate) fn add(
        &self,
        fd: RawFd,
        key: Key,
        interest: Interest,
        mode: PollMode,
        exclusive: bool,
    ) -> io::Result<()> {
        if exclusive || mode == PollMode::Edge {
            // SAFETY: `fd` is open for this call: the caller lends it.
            let fd = unsafe { BorrowedFd::borrow_raw(fd) };
            return self.ctl(fd, key, interest, mode, exclusive, true);
        }
        self.portable.add(fd, key, interest, mode, exclusive)
    }

    /// Changes what the registered `fd` wants to hear about.
    pub(crate) fn modify(
        &self,
        fd: RawFd,
        key: Key,
        interest: Interest,
        mode: PollMode,
        exclusive: bool,
    ) -> io::Result<()> {
        if exclusive || mode == PollMode::Edge {
            // SAFETY: `fd` is registered, so it is open (it is deleted before close).
            let fd = unsafe { BorrowedFd::borrow_raw(fd) };
            return self.ctl(fd, key, interest, mode, exclusive, false);
        }
        self.portable.modify(fd, key, interest, mode, exclusive)
    }

    /// Removes the registered `fd`. Call before closing it.
    pub(crate) fn delete(&self, fd: RawFd) -> io::Result<()> {
        self.portable.delete(fd)
    }

    /// Adds (`add`) or changes an edge-triggered or exclusive registration.
    ///
    /// An edge-triggered source is registered with `EPOLLRDHUP` too: the peer's shutdown
    /// of its sending side is reported once, and the source must then read to the end
    /// (see [`Ready::read_closed`]).
    fn ctl(
        &self,
        fd: BorrowedFd<'_>,
        key: Key,
        interest: Interest,
        mode: PollMode,
        exclusive: bool,
        add: bool,
    ) -> io::Result<()> {
        if exclusive {
            return self.exclusive_ctl(fd, key, interest.read);
        }
        debug_assert_eq!(mode, PollMode::Edge);
        let mut flags = EventFlags::ET;
        if interest.read {
            flags |= EventFlags::IN | EventFlags::RDHUP | EventFlags::PRI;
        }
        if interest.write {
            flags |= EventFlags::OUT;
        }
        let data = EventData::new_u64(poll_key(key) as u64);
        let epfd = self.portable.polling().as_fd();
        let done = if add {
            epoll::add(epfd, fd, data, flags)
        } else {
            epoll::modify(epfd, fd, data, flags)
        };
        done.map_err(io::Error::from)
    }

    /// Adds (`read`) or removes an `EPOLLEXCLUSIVE` registration: the kernel refuses to
    /// modify one (`EINVAL`), so a listener that stops accepting for a while (out of
    /// descriptors) is taken off the poller and added back. Removing one that is not
    /// there, or adding one that is, is not an error.
    fn exclusive_ctl(&self, fd: BorrowedFd<'_>, key: Key, read: bool) -> io::Result<()> {
        let epfd = self.portable.polling().as_fd();
        let done = if read {
            let data = EventData::new_u64(poll_key(key) as u64);
            match epoll::add(epfd, fd, data, EventFlags::IN | EventFlags::EXCLUSIVE) {
                Err(Errno::EXIST) => Ok(()),
                other => other,
            }
        } else {
            match epoll::delete(epfd, fd) {
                Err(Errno::NOENT) => Ok(()),
                other => other,
            }
        };
        done.map_err(io::Error::from)
    }

    /// Waits for I/O (at most `timeout`; `None` = until something happens) and appends
    /// the ready sources, by poll key, to `ready`: one direct `epoll_wait`, falling back
    /// to `polling`'s wait if it fails.
    pub(crate) fn wait(
        &self,
        events: &mut Events,
        timeout: Option<Duration>,
        ready: &mut Vec<(usize, Ready)>,
    ) {
        let buf = &mut events.direct;
        buf.clear();
        // Whole milliseconds, rounded up: a timer is never woken for early.
        let ts = timeout.and_then(|t| {
            let ms = t.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as u64;
            rustix::time::Timespec::try_from(Duration::from_millis(ms)).ok()
        });
        match epoll::wait(
            self.portable.polling().as_fd(),
            rustix::buffer::spare_capacity(&mut *buf),
            ts.as_ref(),
        ) {
            Ok(_) => {}
            Err(Errno::INTR) => return,
            Err(e) => {
                log::debug!("direct epoll_wait failed ({e}); using polling's wait");
                self.portable.wait(&mut events.polling, timeout, ready);
                return;
            }
        }
        let read = EventFlags::IN
            | EventFlags::RDHUP
            | EventFlags::HUP
            | EventFlags::ERR
            | EventFlags::PRI;
        let write = EventFlags::OUT | EventFlags::HUP | EventFlags::ERR;
        let mut notified = false;
        for ev in buf.iter() {
            let key = ev.data.u64() as usize;
            if key == NOTIFY_KEY {
                notified = true;
                continue;
            }
            let flags = ev.flags;
            ready.push((
                key,
                Ready {
                    readable: flags.intersects(read),
                    writable: flags.intersects(write),
                    hangup: flags.contains(EventFlags::HUP),
                    read_closed: flags.contains(EventFlags::RDHUP),
                },
            ));
        }
        if notified {
            self.portable
                .wait(&mut events.polling, Some(Duration::ZERO), ready);
        }
    }

    /// Wakes a thread blocked in [`wait`](Self::wait).
    pub(crate) fn notify(&self) -> io::Result<()> {
        self.portable.notify()
    }
}

/// A read from a stream socket: `recv(2)` as a direct system call (rustix), since
/// glibc's `recv` and `send` are cancellation points (~60 instructions around each call,
/// twice per request-response round trip). `recv`, not `read`: the kernel's `read` path
/// adds the VFS layer's checks and hooks to every call (about 3% of an echo server's CPU
/// time, measured with `perf record`).
pub(crate) fn sock_read<S: AsFd>(sock: &S, buf: &mut [u8]) -> io::Result<usize>
where
    for<'a> &'a S: Read,
{
    rustix::net::recv(sock, buf, rustix::net::RecvFlags::empty())
        .map(|(n, _)| n)
        .map_err(io::Error::from)
}

/// A write to a stream socket: `send(2)` with `MSG_NOSIGNAL` as a direct system call (as
/// std's `write`, a peer that went away is an `EPIPE` error, never a `SIGPIPE`).
pub(crate) fn sock_send<S: AsFd>(sock: &S, buf: &[u8]) -> io::Result<usize>
where
    for<'a> &'a S: Write,
{
    rustix::net::send(sock, buf, rustix::net::SendFlags::NOSIGNAL).map_err(io::Error::from)
}

/// As [`sock_send`], with `MSG_MORE`: the kernel holds a partial packet for what the
/// next send adds (a `sendfile` after an HTTP head).
pub(crate) fn sock_send_more<S: AsFd>(sock: &S, buf: &[u8]) -> io::Result<usize>
where
    for<'a> &'a S: Write,
{
    rustix::net::send(
        sock,
        buf,
        rustix::net::SendFlags::NOSIGNAL | rustix::net::SendFlags::MORE,
    )
    .map_err(io::Error::from)
}

/// Sends up to `len` bytes of `file` from `offset` to a stream socket with `sendfile(2)`:
/// the kernel copies from the page cache to the socket, with no pass through user space.
/// Returns the bytes sent; 0 when `file` ends before `offset`.
pub(crate) fn sock_send_file<S: AsFd>(
    sock: &S,
    file: &std::fs::File,
    offset: u64,
    len: usize,
) -> io::Result<usize> {
    // Linux sends at most 0x7ffff000 bytes a call.
    let len = len.min(0x7fff_f000);
    let mut off = offset;
    rustix::fs::sendfile(sock, file, Some(&mut off), len).map_err(io::Error::from)
}

/// A pipe that carries spliced bytes from one socket to another (`splice(2)`): the kernel
/// moves page references from the source socket into it and from it into the
/// destination, with no copy through user space.
pub(crate) struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
    /// Bytes it holds at most.
    cap: usize,
}

impl Pipe {
    /// A non-blocking pipe of about `size` bytes (the kernel rounds it to pages, and keeps
    /// its default, 64 KiB, when a larger one is refused).
    pub(crate) fn new(size: usize) -> io::Result<Pipe> {
        let (read, write) = rustix::pipe::pipe_with(
            rustix::pipe::PipeFlags::CLOEXEC | rustix::pipe::PipeFlags::NONBLOCK,
        )?;
        const DEFAULT: usize = 64 * 1024;
        let cap = if size == DEFAULT {
            DEFAULT
        } else {
            // Past `/proc/sys/fs/pipe-max-size` an unprivileged process is refused: the
            // pipe keeps its size then.
            let _ = rustix::pipe::fcntl_setpipe_size(&write, size);
            rustix::pipe::fcntl_getpipe_size(&write)?
        };
        Ok(Pipe { read, write, cap })
    }

    /// Bytes it holds at most.
    pub(crate) fn capacity(&self) -> usize {
        self.cap
    }

    /// Moves up to `len` bytes from `sock` into the pipe; 0 at the socket's end of stream.
    /// `WouldBlock` when the socket has nothing to read, or the pipe has no room.
    pub(crate) fn fill_from<S: AsFd>(&self, sock: &S, len: usize) -> io::Result<usize> {
        rustix::pipe::splice(sock, None, &self.write, None, len, SPLICE_FLAGS)
            .map_err(io::Error::from)
    }

    /// Moves up to `len` bytes from the pipe to `sock`. `WouldBlock` when the socket's
    /// buffer is full.
    pub(crate) fn drain_to<S: AsFd>(&self, sock: &S, len: usize) -> io::Result<usize> {
        rustix::pipe::splice(&self.read, None, sock, None, len, SPLICE_FLAGS)
            .map_err(io::Error::from)
    }
}

/// Non-blocking on the pipe (the sockets are non-blocking already); move pages rather
/// than copy them where the kernel can.
const SPLICE_FLAGS: rustix::pipe::SpliceFlags =
    rustix::pipe::SpliceFlags::NONBLOCK.union(rustix::pipe::SpliceFlags::MOVE);
