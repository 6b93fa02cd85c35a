//! The platform layer: every call that asks the kernel about readiness, and the direct
//! socket reads and sends of connections, behind one small internal interface.
//!
//! - [`Poller`]: `add` / `modify` / `delete` a descriptor with an [`Interest`] and a
//!   [`PollMode`], `wait` for events into a [`Ready`] list, `notify` from any thread.
//! - [`sock_read`] / [`sock_send`]: one read or send on a connected stream socket;
//!   [`sock_send_file`]: one send of a file region (`sendfile(2)` on Linux, `pread` and a
//!   write elsewhere); [`Pipe`]: `splice(2)` from a socket into a pipe and from the pipe
//!   into another socket (Linux; elsewhere a pipe cannot be made, and a splice copies).
//!
//! Two implementations, chosen at compile time:
//!
//! - `epoll.rs` (Linux and Android, the default): `polling`'s epoll descriptor, used
//!   directly where `polling` costs more or cannot say what is needed: connections are
//!   registered edge-triggered with `EPOLLRDHUP` through `epoll_ctl`, listeners with
//!   `EPOLLEXCLUSIVE`, one `epoll_wait` per turn, and `recv`/`send` as direct system calls.
//! - `portable.rs` (every other platform, or Linux with the `portable-poller` feature):
//!   the `polling` crate alone; connections are level-triggered, reads and sends are std's.
//!
//! The code above this module never names epoll: it asks [`Poller::edge_connections`]
//! whether connections are edge-triggered, and acts on [`Ready`].
#![allow(unsafe_code)]

#[cfg(unix)]
pub(crate) mod activation;

pub(crate) use ::polling::PollMode;

use crate::slab::Key;

#[cfg(all(
    any(target_os = "linux", target_os = "android"),
    not(feature = "portable-poller")
))]
mod epoll;
mod portable;

#[cfg(all(
    any(target_os = "linux", target_os = "android"),
    not(feature = "portable-poller")
))]
pub(crate) use epoll::{
    sock_read, sock_send, sock_send_file, sock_send_more, Events, Pipe, Poller,
};
#[cfg(not(all(
    any(target_os = "linux", target_os = "android"),
    not(feature = "portable-poller")
)))]
pub(crate) use portable::{
    sock_read, sock_send, sock_send_file, sock_send_more, Events, Pipe, Poller,
};

/// What a source wants to hear about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Interest {
    pub(crate) read: bool,
    pub(crate) write: bool,
}

impl Interest {
    pub(crate) const READ: Interest = Interest {
        read: true,
        write: false,
    };
    pub(crate) const BOTH: Interest = Interest {
        read: true,
        write: true,
    };
    pub(crate) const NONE: Interest = Interest {
        read: false,
        write: false,
    };
}

/// Readiness delivered to a handler.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ready {
    pub(crate) readable: bool,
    pub(crate) writable: bool,
    /// Hang-up or error reported by the poller.
    pub(crate) hangup: bool,
    /// The peer shut down its sending side (`EPOLLRDHUP`): its end of stream is there to
    /// be read, after any bytes before it, and (edge-triggered) will not be reported again.
    pub(crate) read_closed: bool,
}

/// A source's slab key as the poller carries it (one `usize`).
pub(crate) fn poll_key(key: Key) -> usize {
    ((key.gen as usize) << 32) | key.index as usize
}

/// The slab key a poller event carries.
pub(crate) fn key_of(k: usize) -> Key {
    Key {
        index: (k & 0xffff_ffff) as u32,
        gen: (k >> 32) as u32,
    }
}

/// The key `polling` gives its own notifier and timer.
const NOTIFY_KEY: usize = usize::MAX;

/// `EINPROGRESS`: a non-blocking connect has started (std has no stable `ErrorKind`).
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) const EINPROGRESS: i32 = 115;
/// `EINPROGRESS`: a non-blocking connect has started (std has no stable `ErrorKind`).
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) const EINPROGRESS: i32 = 36;
