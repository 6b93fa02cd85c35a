//! I/O sources: the descriptors registered with the reactor's poller, the handler of
//! each, and the readiness one turn hands to them.
//!
//! [`Sources`] is a value the reactor owns. It knows its handlers only as `Rc<H>` (the
//! reactor's `IoHandler` trait objects) and asks the kernel only through
//! [`sys::Poller`], which the reactor lends to each call: registering a source, waiting
//! for the ones that are ready, then [`dispatch`](Sources::dispatch)ing each event to a
//! closure that calls its handler.
//!
//! Protocol connections are registered edge-triggered where the poller supports it
//! ([`Sources::edge`]: `sys/epoll.rs`, on Linux): read and write interest once, never changed.
//! What the poller will not report again (a read budget spent before the socket was
//! drained, reading resumed, a write wanted while the socket is already writable) the
//! connection asks of the next turn with [`Sources::ready_again`]. On the portable path
//! they are level-triggered: read interest stays armed while reading is wanted, write
//! interest only while a write queue waits for the socket. Listening ports use
//! level-triggered interest (`EPOLLEXCLUSIVE` on Linux); async sockets oneshot interest,
//! armed by the future that would block.

use std::cell::{Cell, RefCell};
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;
use std::time::Duration;

use crate::slab::{Key, Slab};
use crate::sys::{self, key_of, poll_key, Interest, PollMode, Ready};

/// One registered descriptor.
struct SourceEntry<H: ?Sized> {
    fd: RawFd,
    handler: Rc<H>,
    mode: PollMode,
    /// A listening socket registered with `EPOLLEXCLUSIVE` (see
    /// [`Sources::register_listener`]).
    exclusive: bool,
}

/// The reactor's registered descriptors and the readiness of the current turn.
pub(crate) struct Sources<H: ?Sized> {
    entries: RefCell<Slab<SourceEntry<H>>>,
    /// The poller's wait buffer.
    events: RefCell<sys::Events>,
    /// What the last wait reported, by poll key: dispatched in this turn.
    ready: RefCell<Vec<(usize, Ready)>>,
    /// Readiness the poller will not report again (edge-triggered sources that stopped
    /// before draining, or resumed): handed to their handlers on the next turn.
    again: RefCell<Vec<(usize, Ready)>>,
    /// Whether connections use edge-triggered interest (the poller supports it).
    edge: bool,
    /// How many entries are signal wake-up sockets: a signal stops the reactor, so they
    /// cannot deliver what a `wait()` waits for.
    signal_sources: Cell<usize>,
    /// The one read buffer every connection and port reads into.
    read_buf: RefCell<Vec<u8>>,
}

/// The size of the reactor's one read buffer.
pub(crate) const READ_BUFFER: usize = 64 * 1024;

impl<H: ?Sized> Sources<H> {
    pub(crate) fn new(poller: &sys::Poller) -> Sources<H> {
        Sources {
            entries: RefCell::new(Slab::new()),
            events: RefCell::new(sys::Poller::events()),
            ready: RefCell::new(Vec::new()),
            again: RefCell::new(Vec::new()),
            edge: poller.edge_connections(),
            signal_sources: Cell::new(0),
            read_buf: RefCell::new(Vec::new()),
        }
    }

    /// Registers `fd` with `handler`. The caller must [`deregister`](Self::deregister) it
    /// before the descriptor is closed.
    pub(crate) fn register(
        &self,
        poller: &sys::Poller,
        fd: &impl AsRawFd,
        interest: Interest,
        mode: PollMode,
        handler: Rc<H>,
    ) -> io::Result<Key> {
        self.add(poller, fd.as_raw_fd(), interest, mode, false, handler)
    }

    /// Registers a listening socket for reading, level-triggered. On Linux it is
    /// registered with `EPOLLEXCLUSIVE`: when several reactors register descriptors of
    /// one accept queue (a shared queue, see `AcceptQueue::Shared`), a new connection
    /// wakes one idle reactor instead of all of them (the thundering herd). With one
    /// reactor it changes nothing. The caller must [`deregister`](Self::deregister) it
    /// before the descriptor is closed.
    pub(crate) fn register_listener(
        &self,
        poller: &sys::Poller,
        fd: &impl AsRawFd,
        handler: Rc<H>,
    ) -> io::Result<Key> {
        let exclusive = poller.exclusive_listeners();
        let (interest, mode) = (Interest::READ, PollMode::Level);
        self.add(poller, fd.as_raw_fd(), interest, mode, exclusive, handler)
    }

    fn add(
        &self,
        poller: &sys::Poller,
        fd: RawFd,
        interest: Interest,
        mode: PollMode,
        exclusive: bool,
        handler: Rc<H>,
    ) -> io::Result<Key> {
        let key = self.entries.borrow_mut().insert(SourceEntry {
            fd,
            handler,
            mode,
            exclusive,
        });
        if let Err(e) = poller.add(fd, key, interest, mode, exclusive) {
            self.entries.borrow_mut().remove(key);
            return Err(e);
        }
        Ok(key)
    }

    /// Changes what `key` wants to hear about (re-arms a oneshot source).
    pub(crate) fn reregister(
        &self,
        poller: &sys::Poller,
        key: Key,
        interest: Interest,
    ) -> io::Result<()> {
        let (fd, mode, exclusive) = {
            let mut entries = self.entries.borrow_mut();
            let Some(entry) = entries.get_mut(key) else {
                return Err(io::Error::new(io::ErrorKind::NotFound, "source is gone"));
            };
            (entry.fd, entry.mode, entry.exclusive)
        };
        poller.modify(fd, key, interest, mode, exclusive)
    }

    /// Removes `key` from the poller. Call before closing the descriptor. Whether `key`
    /// was registered.
    pub(crate) fn deregister(&self, poller: &sys::Poller, key: Key) -> bool {
        let entry = self.entries.borrow_mut().remove(key);
        let Some(entry) = entry else { return false };
        if let Err(e) = poller.delete(entry.fd) {
            log::debug!("poller delete: {e}");
        }
        true
    }

    /// Waits for I/O (at most `timeout`; `None` = until something happens), then queues
    /// the ready sources, and those asked for again, for [`dispatch`](Self::dispatch).
    pub(crate) fn wait(&self, poller: &sys::Poller, timeout: Option<Duration>) {
        {
            let mut events = self.events.borrow_mut();
            poller.wait(&mut events, timeout, &mut self.ready.borrow_mut());
        }
        let mut again = self.again.borrow_mut();
        if !again.is_empty() {
            self.ready.borrow_mut().append(&mut again);
        }
    }

    /// Whether a source asked the next turn to look at it again.
    pub(crate) fn has_again(&self) -> bool {
        !self.again.borrow().is_empty()
    }

    /// Hands `ready` to `key`'s handler on the next turn, as if the poller had reported
    /// it: for an edge-triggered source that stopped short of draining its socket (a read
    /// budget), or that wants again what it set aside (reading resumed), since the poller
    /// reports neither until something new happens.
    pub(crate) fn ready_again(&self, key: Key, ready: Ready) {
        self.again.borrow_mut().push((poll_key(key), ready));
    }

    /// Hands each event of the last wait to `call` with its handler; events of sources
    /// removed earlier in the turn are dropped.
    pub(crate) fn dispatch(&self, mut call: impl FnMut(Rc<H>, Ready)) {
        let mut ready = std::mem::take(&mut *self.ready.borrow_mut());
        for &(k, r) in &ready {
            let handler = {
                let mut entries = self.entries.borrow_mut();
                match entries.get_mut(key_of(k)) {
                    Some(entry) => entry.handler.clone(),
                    None => continue, // closed earlier in this turn
                }
            };
            call(handler, r);
        }
        ready.clear();
        *self.ready.borrow_mut() = ready;
    }

    /// Every handler, for shutdown.
    pub(crate) fn handlers(&self) -> Vec<Rc<H>> {
        let entries = self.entries.borrow();
        entries.iter().map(|e| e.handler.clone()).collect()
    }

    /// How many descriptors are registered.
    pub(crate) fn len(&self) -> usize {
        self.entries.borrow().len()
    }

    /// Whether every registered descriptor is a signal wake-up socket.
    pub(crate) fn only_signal_sources(&self) -> bool {
        self.len() == self.signal_sources.get()
    }

    /// Counts a signal wake-up socket in (`true`) or out.
    pub(crate) fn count_signal_source(&self, added: bool) {
        let n = self.signal_sources.get();
        self.signal_sources.set(if added { n + 1 } else { n - 1 });
    }

    /// Whether connections register edge-triggered interest.
    pub(crate) fn edge(&self) -> bool {
        self.edge
    }

    /// The shared read buffer, lent out for one read.
    pub(crate) fn take_read_buffer(&self) -> Vec<u8> {
        let mut buf = std::mem::take(&mut *self.read_buf.borrow_mut());
        if buf.len() < READ_BUFFER {
            buf.resize(READ_BUFFER, 0);
        }
        buf
    }

    pub(crate) fn return_read_buffer(&self, buf: Vec<u8>) {
        *self.read_buf.borrow_mut() = buf;
    }
}
