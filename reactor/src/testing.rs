//! Test doubles for protocol authors: [`StringTransport`] (Twisted's
//! `twisted.internet.testing.StringTransport`), so a protocol is tested without sockets or
//! a reactor.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::io;
use std::rc::Rc;
use std::time::Duration;

use crate::protocol::{Address, Producer, Protocol, Transport, TransportRef};

/// Makes the splices set up on this thread from now on ([`Transport::splice_to`]) copy
/// through user space, as they do where `splice(2)` is not available, so that a test can
/// check that path on Linux too. Off again with `false`; splices already set up keep their path.
///
/// # Examples
///
/// ```
/// ropewalk_reactor::testing::force_splice_copy(true);
/// // ... set up and check a splice that copies ...
/// ropewalk_reactor::testing::force_splice_copy(false);
/// ```
pub fn force_splice_copy(on: bool) {
    crate::splice::force_copy(on);
}

/// A transport that records what is written and what the protocol asked for.
///
/// # Examples
///
/// ```
/// use ropewalk_reactor::deferred::Failure;
/// use ropewalk_reactor::testing::StringTransport;
/// use ropewalk_reactor::{Protocol, TransportRef};
///
/// #[derive(Default)]
/// struct Shout(Option<TransportRef>);
/// impl Protocol for Shout {
///     fn connection_made(&mut self, t: TransportRef) { self.0 = Some(t); }
///     fn data_received(&mut self, data: &[u8]) -> Result<(), Failure> {
///         self.0.as_ref().unwrap().write(&data.to_ascii_uppercase());
///         Ok(())
///     }
/// }
///
/// let mut p = Shout::default();
/// let t = StringTransport::connect(&mut p);
/// p.data_received(b"hi").unwrap();
/// assert_eq!(t.value(), b"HI");
/// ```
pub struct StringTransport {
    written: RefCell<Vec<u8>>,
    writes: Cell<usize>,
    disconnecting: Cell<bool>,
    aborted: Cell<bool>,
    half_closed: Cell<bool>,
    reading_paused: Cell<bool>,
    producer: RefCell<Option<(Rc<dyn Producer>, bool)>>,
    peer: RefCell<Address>,
    local: RefCell<Address>,
    nodelay: Cell<bool>,
    queued: Cell<usize>,
}

impl StringTransport {
    /// A transport with nothing written, peer and local address [`Address::Test`].
    ///
    /// # Examples
    ///
    /// ```
    /// let t = ropewalk_reactor::testing::StringTransport::new();
    /// assert!(t.value().is_empty());
    /// ```
    pub fn new() -> Rc<StringTransport> {
        Rc::new(StringTransport {
            written: RefCell::new(Vec::new()),
            writes: Cell::new(0),
            disconnecting: Cell::new(false),
            aborted: Cell::new(false),
            half_closed: Cell::new(false),
            reading_paused: Cell::new(false),
            producer: RefCell::new(None),
            peer: RefCell::new(Address::Test),
            local: RefCell::new(Address::Test),
            nodelay: Cell::new(false),
            queued: Cell::new(0),
        })
    }

    /// A new transport, handed to `protocol.connection_made`.
    ///
    /// # Examples
    ///
    /// ```
    /// # use ropewalk_reactor::{deferred::Failure, Protocol};
    /// # struct P;
    /// # impl Protocol for P { fn data_received(&mut self, _: &[u8]) -> Result<(), Failure> { Ok(()) } }
    /// let t = ropewalk_reactor::testing::StringTransport::connect(&mut P);
    /// assert!(!t.is_disconnecting());
    /// ```
    pub fn connect(protocol: &mut impl Protocol) -> Rc<StringTransport> {
        let t = StringTransport::new();
        protocol.connection_made(t.clone() as TransportRef);
        t
    }

    /// Everything written so far.
    ///
    /// # Examples
    ///
    /// ```
    /// use ropewalk_reactor::Transport;
    /// let t = ropewalk_reactor::testing::StringTransport::new();
    /// t.write(b"a");
    /// t.write(b"b");
    /// assert_eq!(t.value(), b"ab");
    /// ```
    pub fn value(&self) -> Vec<u8> {
        self.written.borrow().clone()
    }

    /// Takes what was written, leaving nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// use ropewalk_reactor::Transport;
    /// let t = ropewalk_reactor::testing::StringTransport::new();
    /// t.write(b"x");
    /// assert_eq!(t.take(), b"x");
    /// assert!(t.value().is_empty());
    /// ```
    pub fn take(&self) -> Vec<u8> {
        std::mem::take(&mut *self.written.borrow_mut())
    }

    /// How many `write` / `write_vectored` calls were made (to check batching).
    ///
    /// # Examples
    ///
    /// ```
    /// use ropewalk_reactor::Transport;
    /// let t = ropewalk_reactor::testing::StringTransport::new();
    /// t.write_vectored(&[b"a", b"b"]);
    /// assert_eq!(t.write_calls(), 1);
    /// ```
    pub fn write_calls(&self) -> usize {
        self.writes.get()
    }

    /// Whether `lose_connection` or `abort_connection` was called.
    ///
    /// # Examples
    ///
    /// ```
    /// use ropewalk_reactor::Transport;
    /// let t = ropewalk_reactor::testing::StringTransport::new();
    /// t.lose_connection();
    /// assert!(t.is_disconnecting() && !t.was_aborted());
    /// ```
    pub fn is_disconnecting(&self) -> bool {
        self.disconnecting.get()
    }

    /// Whether `abort_connection` was called.
    ///
    /// # Examples
    ///
    /// ```
    /// use ropewalk_reactor::Transport;
    /// let t = ropewalk_reactor::testing::StringTransport::new();
    /// t.abort_connection();
    /// assert!(t.was_aborted());
    /// ```
    pub fn was_aborted(&self) -> bool {
        self.aborted.get()
    }

    /// Whether `half_close` was called.
    ///
    /// # Examples
    ///
    /// ```
    /// use ropewalk_reactor::Transport;
    /// let t = ropewalk_reactor::testing::StringTransport::new();
    /// t.half_close();
    /// assert!(t.is_half_closed());
    /// ```
    pub fn is_half_closed(&self) -> bool {
        self.half_closed.get()
    }

    /// Whether reading is paused (`pause_reading` without `resume_reading`).
    ///
    /// # Examples
    ///
    /// ```
    /// use ropewalk_reactor::Transport;
    /// let t = ropewalk_reactor::testing::StringTransport::new();
    /// t.pause_reading();
    /// assert!(t.is_reading_paused());
    /// ```
    pub fn is_reading_paused(&self) -> bool {
        self.reading_paused.get()
    }

    /// The registered producer and whether it is streaming.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(ropewalk_reactor::testing::StringTransport::new().producer().is_none());
    /// ```
    pub fn producer(&self) -> Option<(Rc<dyn Producer>, bool)> {
        self.producer.borrow().clone()
    }

    /// Whether `set_nodelay(true)` is in force.
    ///
    /// # Examples
    ///
    /// ```
    /// use ropewalk_reactor::Transport;
    /// let t = ropewalk_reactor::testing::StringTransport::new();
    /// t.set_nodelay(true).unwrap();
    /// assert!(t.nodelay());
    /// ```
    pub fn nodelay(&self) -> bool {
        self.nodelay.get()
    }

    /// Pretends `n` bytes wait in the write queue (a peer that reads slowly):
    /// [`write_buffer_len`](Transport::write_buffer_len) reports it, and when `n` is less
    /// than before, the registered producer's
    /// [`write_progress`](Producer::write_progress) is called with it, as a real transport
    /// does when the socket takes bytes. What is written still lands in
    /// [`value`](Self::value) at once.
    ///
    /// # Examples
    ///
    /// ```
    /// use ropewalk_reactor::Transport;
    /// let t = ropewalk_reactor::testing::StringTransport::new();
    /// t.set_write_buffer_len(4096);
    /// assert_eq!(t.write_buffer_len(), 4096);
    /// ```
    pub fn set_write_buffer_len(&self, n: usize) {
        let shrank = n < self.queued.replace(n);
        let producer = self.producer.borrow().clone();
        if let (true, Some((p, _))) = (shrank, producer) {
            p.write_progress(n);
        }
    }

    /// Sets the addresses the transport reports.
    ///
    /// # Examples
    ///
    /// ```
    /// use ropewalk_reactor::{Address, Transport};
    /// let t = ropewalk_reactor::testing::StringTransport::new();
    /// let peer = Address::Inet("127.0.0.1:5555".parse().unwrap());
    /// t.set_addresses(peer.clone(), Address::Test);
    /// assert_eq!(t.peer_addr(), peer);
    /// ```
    pub fn set_addresses(&self, peer: Address, local: Address) {
        *self.peer.borrow_mut() = peer;
        *self.local.borrow_mut() = local;
    }
}

impl Transport for StringTransport {
    fn write(&self, data: &[u8]) {
        self.writes.set(self.writes.get() + 1);
        self.written.borrow_mut().extend_from_slice(data);
    }

    fn write_vectored(&self, bufs: &[&[u8]]) {
        self.writes.set(self.writes.get() + 1);
        let mut w = self.written.borrow_mut();
        for b in bufs {
            w.extend_from_slice(b);
        }
    }

    fn lose_connection(&self) {
        self.disconnecting.set(true);
    }

    fn abort_connection(&self) {
        self.disconnecting.set(true);
        self.aborted.set(true);
    }

    fn half_close(&self) {
        self.half_closed.set(true);
    }

    fn peer_addr(&self) -> Address {
        self.peer.borrow().clone()
    }

    fn local_addr(&self) -> Address {
        self.local.borrow().clone()
    }

    fn set_nodelay(&self, on: bool) -> io::Result<()> {
        self.nodelay.set(on);
        Ok(())
    }

    fn set_keepalive(&self, _idle: Option<Duration>) -> io::Result<()> {
        Ok(())
    }

    fn pause_reading(&self) {
        self.reading_paused.set(true);
    }

    fn resume_reading(&self) {
        self.reading_paused.set(false);
    }

    fn register_producer(&self, producer: Rc<dyn Producer>, streaming: bool) {
        *self.producer.borrow_mut() = Some((producer, streaming));
    }

    fn unregister_producer(&self) {
        self.producer.borrow_mut().take();
    }

    fn write_buffer_len(&self) -> usize {
        self.queued.get()
    }

    fn is_closing(&self) -> bool {
        self.disconnecting.get()
    }
}

impl fmt::Debug for StringTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StringTransport")
            .field("written", &self.written.borrow().len())
            .field("disconnecting", &self.disconnecting.get())
            .finish()
    }
}
