//! I/O sources: registering file descriptors with the reactor's poller and dispatching
//! readiness to their handlers.
//!
//! Protocol connections and listening ports use level-triggered interest: read interest
//! stays armed while reading is wanted, so no syscall re-arms it per event, and write
//! interest is added only while a write queue waits for the socket. Async sockets use
//! oneshot interest, armed by the future that would block.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;

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
        let raw = fd.as_raw_fd();
        let key = self.inner.sources.borrow_mut().insert(SourceEntry {
            fd: raw,
            handler,
            mode,
        });
        // SAFETY: every registered descriptor is deleted from the poller by `deregister`
        // before its owner closes it: the socket types of this crate deregister in
        // their close paths and in `Drop`.
        let added = unsafe {
            self.inner
                .remote
                .poller
                .add_with_mode(raw, event(key, interest), mode)
        };
        if let Err(e) = added {
            self.inner.sources.borrow_mut().remove(key);
            return Err(e);
        }
        Ok(key)
    }

    /// Changes what `key` wants to hear about (re-arms a oneshot source).
    pub(crate) fn reregister(&self, key: Key, interest: Interest) -> io::Result<()> {
        let (fd, mode) = {
            let mut sources = self.inner.sources.borrow_mut();
            let Some(entry) = sources.get_mut(key) else {
                return Err(io::Error::new(io::ErrorKind::NotFound, "source is gone"));
            };
            (entry.fd, entry.mode)
        };
        // SAFETY: `fd` is registered, so it is open (it is deregistered before close).
        let fd = unsafe { BorrowedFd::borrow_raw(fd) };
        self.inner
            .remote
            .poller
            .modify_with_mode(fd, event(key, interest), mode)
    }

    /// Removes `key` from the poller. Call before closing the descriptor.
    pub(crate) fn deregister(&self, key: Key) {
        let entry = self.inner.sources.borrow_mut().remove(key);
        if let Some(entry) = entry {
            // SAFETY: the descriptor is still open: its owner calls this before closing.
            let fd = unsafe { BorrowedFd::borrow_raw(entry.fd) };
            if let Err(e) = self.inner.remote.poller.delete(fd) {
                log::debug!("poller delete: {e}");
            }
        }
    }

    /// Hands the events of the last wait to their handlers.
    pub(crate) fn dispatch_io(&self) {
        let mut ready = std::mem::take(&mut *self.inner.io_ready.borrow_mut());
        {
            let events = self.inner.events.borrow();
            ready.extend(events.iter().filter(|ev| ev.key != usize::MAX).map(|ev| {
                (
                    ev.key,
                    Ready {
                        readable: ev.readable,
                        writable: ev.writable,
                        hangup: ev.is_interrupt() || ev.is_err().unwrap_or(false),
                    },
                )
            }));
        }
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

/// The size of the reactor's one read buffer.
pub(crate) const READ_BUFFER: usize = 64 * 1024;
