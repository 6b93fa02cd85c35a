//! I/O sources: registering file descriptors with the reactor's poller and dispatching
//! readiness to their handlers.
//!
//! Protocol connections use edge-triggered interest on Linux (epoll, with `EPOLLRDHUP`,
//! which `polling` does not ask for, so they are registered with `epoll_ctl` directly):
//! read and write interest are registered once and never changed, so no syscall
//! changes interest as a write queue fills and drains, and the poller does not look at a
//! reported socket again on its next wait, as it does for level-triggered ones. What it
//! will not report again (a read budget spent before the socket was drained, reading
//! resumed, a write wanted while the socket is already writable) the connection asks for
//! with [`Reactor::ready_again`]. Elsewhere they use level-triggered interest: read
//! interest stays armed while reading is wanted, write interest only while a write queue
//! waits for the socket. Listening ports use level-triggered interest; async sockets
//! oneshot interest, armed by the future that would block.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::time::Duration;

use polling::{Event, PollMode};
use ropewalk_deferred::Failure;

use crate::reactor::Reactor;
use crate::slab::Key;

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

/// Something registered with the poller.
pub(crate) trait IoHandler {
    fn ready(self: Rc<Self>, reactor: &Reactor, ready: Ready);

    /// The reactor is shutting down: close.
    fn shutdown(self: Rc<Self>) {}
}

pub(crate) struct SourceEntry {
    pub(crate) fd: RawFd,
    pub(crate) handler: Rc<dyn IoHandler>,
    pub(crate) mode: PollMode,
    /// A listening socket registered with `EPOLLEXCLUSIVE` (see [`Reactor::register_listener`]).
    pub(crate) exclusive: bool,
}

pub(crate) fn poll_key(key: Key) -> usize {
    ((key.gen as usize) << 32) | key.index as usize
}

fn key_of(k: usize) -> Key {
    Key {
        index: (k & 0xffff_ffff) as u32,
        gen: (k >> 32) as u32,
    }
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

/// Adds (`add`) or changes the poller's registration of `fd`.
///
/// An edge-triggered source is registered directly with `epoll_ctl`, to ask for
/// `EPOLLRDHUP` too (which `polling` does not): the peer's shutdown of its sending side is
/// reported once, and the source must then read to the end (see [`Ready::read_closed`]).
/// An `exclusive` one (a listener) is too, see [`exclusive_ctl`].
fn ctl(
    poller: &polling::Poller,
    fd: BorrowedFd<'_>,
    key: Key,
    interest: Interest,
    mode: PollMode,
    exclusive: bool,
    add: bool,
) -> io::Result<()> {
    if exclusive {
        return exclusive_ctl(poller, fd, key, interest.read);
    }
    #[cfg(any(target_os = "linux", target_os = "android"))]
    if mode == PollMode::Edge {
        use rustix::event::epoll::{self, EventData, EventFlags};
        use std::os::fd::AsFd;
        let mut flags = EventFlags::ET;
        if interest.read {
            flags |= EventFlags::IN | EventFlags::RDHUP | EventFlags::PRI;
        }
        if interest.write {
            flags |= EventFlags::OUT;
        }
        let data = EventData::new_u64(poll_key(key) as u64);
        let done = if add {
            epoll::add(poller.as_fd(), fd, data, flags)
        } else {
            epoll::modify(poller.as_fd(), fd, data, flags)
        };
        return done.map_err(io::Error::from);
    }
    if add {
        // SAFETY: every registered descriptor is deleted from the poller by `deregister`
        // before its owner closes it: the socket types of this crate deregister in
        // their close paths and in `Drop`.
        unsafe { poller.add_with_mode(fd.as_raw_fd(), event(key, interest), mode) }
    } else {
        poller.modify_with_mode(fd, event(key, interest), mode)
    }
}

/// Adds (`read`) or removes an `EPOLLEXCLUSIVE` registration: the kernel refuses to
/// modify one (`EINVAL`), so a listener that stops accepting for a while (out of
/// descriptors) is taken off the poller and added back. Removing one that is not there,
/// or adding one that is, is not an error.
fn exclusive_ctl(
    poller: &polling::Poller,
    fd: BorrowedFd<'_>,
    key: Key,
    read: bool,
) -> io::Result<()> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        use rustix::event::epoll::{self, EventData, EventFlags};
        use rustix::io::Errno;
        use std::os::fd::AsFd;
        let done = if read {
            let data = EventData::new_u64(poll_key(key) as u64);
            match epoll::add(
                poller.as_fd(),
                fd,
                data,
                EventFlags::IN | EventFlags::EXCLUSIVE,
            ) {
                Err(Errno::EXIST) => Ok(()),
                other => other,
            }
        } else {
            match epoll::delete(poller.as_fd(), fd) {
                Err(Errno::NOENT) => Ok(()),
                other => other,
            }
        };
        done.map_err(io::Error::from)
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        let _ = (poller, fd, key, read);
        unreachable!("only Linux registers listeners with EPOLLEXCLUSIVE")
    }
}

impl Reactor {
    /// Registers `fd` with `handler`. The caller must [`deregister`](Self::deregister) it
    /// before the descriptor is closed.
    pub(crate) fn register(
        &self,
        fd: &impl AsRawFd,
        interest: Interest,
        mode: PollMode,
        handler: Rc<dyn IoHandler>,
    ) -> io::Result<Key> {
        self.add_source(fd, interest, mode, false, handler)
    }

    fn add_source(
        &self,
        fd: &impl AsRawFd,
        interest: Interest,
        mode: PollMode,
        exclusive: bool,
        handler: Rc<dyn IoHandler>,
    ) -> io::Result<Key> {
        let raw = fd.as_raw_fd();
        let key = self.inner.sources.borrow_mut().insert(SourceEntry {
            fd: raw,
            handler,
            mode,
            exclusive,
        });
        // SAFETY: `fd` is open for this call: the caller lends it.
        let fd = unsafe { BorrowedFd::borrow_raw(raw) };
        let poller = &self.inner.remote.poller;
        let added = ctl(poller, fd, key, interest, mode, exclusive, true);
        if let Err(e) = added {
            self.inner.sources.borrow_mut().remove(key);
            return Err(e);
        }
        Ok(key)
    }

    /// Changes what `key` wants to hear about (re-arms a oneshot source).
    pub(crate) fn reregister(&self, key: Key, interest: Interest) -> io::Result<()> {
        let (fd, mode, exclusive) = {
            let mut sources = self.inner.sources.borrow_mut();
            let Some(entry) = sources.get_mut(key) else {
                return Err(io::Error::new(io::ErrorKind::NotFound, "source is gone"));
            };
            (entry.fd, entry.mode, entry.exclusive)
        };
        // SAFETY: `fd` is registered, so it is open (it is deregistered before close).
        let fd = unsafe { BorrowedFd::borrow_raw(fd) };
        ctl(
            &self.inner.remote.poller,
            fd,
            key,
            interest,
            mode,
            exclusive,
            false,
        )
    }

    /// Registers a listening socket for reading, level-triggered. On Linux it is
    /// registered with `EPOLLEXCLUSIVE`: when several reactors register descriptors of
    /// one accept queue (a shared queue, see `AcceptQueue::Shared`), a new connection
    /// wakes one idle reactor instead of all of them (the thundering herd). With one
    /// reactor it changes nothing. The caller must [`deregister`](Self::deregister) it
    /// before the descriptor is closed.
    pub(crate) fn register_listener(
        &self,
        fd: &impl AsRawFd,
        handler: Rc<dyn IoHandler>,
    ) -> io::Result<Key> {
        let exclusive = cfg!(any(target_os = "linux", target_os = "android"));
        self.add_source(fd, Interest::READ, PollMode::Level, exclusive, handler)
    }

    /// Removes `key` from the poller. Call before closing the descriptor. Whether `key`
    /// was registered.
    pub(crate) fn deregister(&self, key: Key) -> bool {
        let entry = self.inner.sources.borrow_mut().remove(key);
        let Some(entry) = entry else { return false };
        // SAFETY: the descriptor is still open: its owner calls this before closing.
        let fd = unsafe { BorrowedFd::borrow_raw(entry.fd) };
        if let Err(e) = self.inner.remote.poller.delete(fd) {
            log::debug!("poller delete: {e}");
        }
        true
    }

    /// Waits for I/O (at most `timeout`; `None` = until something happens) and collects
    /// the ready sources into `io_ready`.
    pub(crate) fn wait_io(&self, timeout: Option<Duration>) {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        {
            if self.wait_epoll_direct(timeout) {
                return;
            }
        }
        self.wait_polling(timeout);
    }

    /// The portable path: `polling`'s wait.
    fn wait_polling(&self, timeout: Option<Duration>) {
        let mut events = self.inner.events.borrow_mut();
        events.clear();
        if let Err(e) = self.inner.remote.poller.wait(&mut events, timeout) {
            log::error!("poller wait failed: {e}");
        }
        let mut ready = self.inner.io_ready.borrow_mut();
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

    /// The Linux fast path: one `epoll_wait` on the poller's own epoll descriptor.
    ///
    /// `polling`'s wait costs five system calls (it re-arms a timerfd and its eventfd
    /// notifier around every `epoll_wait`); this costs one. When the notifier (or the
    /// timerfd of an earlier `polling` wait) fires, `polling`'s wait runs once with a zero
    /// timeout, so that it clears and re-arms them as it expects. Returns `false` if the
    /// direct wait failed, so the caller falls back to `polling`.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    fn wait_epoll_direct(&self, timeout: Option<Duration>) -> bool {
        use rustix::event::epoll;
        use std::os::fd::AsFd;

        let inner = &self.inner;
        let mut buf = inner.epoll_buf.borrow_mut();
        buf.clear();
        // Whole milliseconds, rounded up: a timer is never woken for early.
        let ts = timeout.and_then(|t| {
            let ms = t.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as u64;
            rustix::time::Timespec::try_from(Duration::from_millis(ms)).ok()
        });
        match epoll::wait(
            inner.remote.poller.as_fd(),
            rustix::buffer::spare_capacity(&mut *buf),
            ts.as_ref(),
        ) {
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => return true,
            Err(e) => {
                log::debug!("direct epoll_wait failed ({e}); using polling's wait");
                return false;
            }
        }
        let read = epoll::EventFlags::IN
            | epoll::EventFlags::RDHUP
            | epoll::EventFlags::HUP
            | epoll::EventFlags::ERR
            | epoll::EventFlags::PRI;
        let write = epoll::EventFlags::OUT | epoll::EventFlags::HUP | epoll::EventFlags::ERR;
        let mut notified = false;
        {
            let mut ready = inner.io_ready.borrow_mut();
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
                        hangup: flags.contains(epoll::EventFlags::HUP),
                        read_closed: flags.contains(epoll::EventFlags::RDHUP),
                    },
                ));
            }
        }
        drop(buf);
        if notified {
            self.wait_polling(Some(Duration::ZERO));
        }
        true
    }

    /// Hands `ready` to `key`'s handler on the next turn, as if the poller had reported
    /// it: for an edge-triggered source that stopped short of draining its socket (a read
    /// budget), or that wants again what it set aside (reading resumed), since the poller
    /// reports neither until something new happens.
    pub(crate) fn ready_again(&self, key: Key, ready: Ready) {
        self.inner
            .io_again
            .borrow_mut()
            .push((poll_key(key), ready));
    }

    /// Whether connections register edge-triggered interest.
    pub(crate) fn edge_io(&self) -> bool {
        self.inner.edge_io
    }

    /// Hands the events of the last wait to their handlers.
    pub(crate) fn dispatch_io(&self) {
        let mut ready = std::mem::take(&mut *self.inner.io_ready.borrow_mut());
        for &(k, r) in &ready {
            let handler = {
                let mut sources = self.inner.sources.borrow_mut();
                match sources.get_mut(key_of(k)) {
                    Some(entry) => entry.handler.clone(),
                    None => continue, // closed earlier in this turn
                }
            };
            if let Err(p) = catch_unwind(AssertUnwindSafe(|| handler.ready(self, r))) {
                log::error!("panic in an I/O handler: {}", Failure::from_panic(p));
            }
        }
        ready.clear();
        *self.inner.io_ready.borrow_mut() = ready;
    }

    /// Closes every source (the `During` shutdown phase).
    pub(crate) fn shutdown_sources(&self) {
        let handlers: Vec<Rc<dyn IoHandler>> = self
            .inner
            .sources
            .borrow()
            .iter()
            .map(|e| e.handler.clone())
            .collect();
        for h in handlers {
            if let Err(p) = catch_unwind(AssertUnwindSafe(|| h.shutdown())) {
                log::error!(
                    "panic while closing at shutdown: {}",
                    Failure::from_panic(p)
                );
            }
        }
    }

    /// The reactor's shared read buffer, lent out for one read.
    pub(crate) fn take_read_buffer(&self) -> Vec<u8> {
        let mut buf = std::mem::take(&mut *self.inner.read_buf.borrow_mut());
        if buf.len() < READ_BUFFER {
            buf.resize(READ_BUFFER, 0);
        }
        buf
    }

    pub(crate) fn return_read_buffer(&self, buf: Vec<u8>) {
        *self.inner.read_buf.borrow_mut() = buf;
    }
}

/// `EINPROGRESS`: a non-blocking connect has started (std has no stable `ErrorKind`).
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) const EINPROGRESS: i32 = 115;
/// `EINPROGRESS`: a non-blocking connect has started (std has no stable `ErrorKind`).
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) const EINPROGRESS: i32 = 36;

/// The key `polling` gives its own notifier and timer.
const NOTIFY_KEY: usize = usize::MAX;

/// The size of the reactor's one read buffer.
pub(crate) const READ_BUFFER: usize = 64 * 1024;
