//! A stream connection (TCP or Unix): the read path, the write queue with flow control,
//! and the ways it closes. It is the [`Transport`] its protocol writes to.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, IoSlice, Write};
use std::net::{Shutdown, TcpStream};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::net::UnixStream;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::{Rc, Weak};
use std::time::Duration;

use ropewalk_deferred::Failure;

use crate::protocol::{
    Address, ConnectionError, Producer, Protocol, Transport, TransportProducer, TransportRef,
};
use crate::reactor::{IoHandler, Reactor, ReactorCore};
use crate::slab::Key;
use crate::splice::{self, Link, PipeSink, SpliceSink, SpliceSource};
use crate::sys::{
    sock_read, sock_send, sock_send_file, sock_send_more, Interest, Pipe, PollMode, Ready,
};

/// Default high-water mark of a connection's write queue: past it, a streaming producer
/// registered on the transport is paused.
///
/// # Examples
///
/// ```
/// assert_eq!(ropewalk_reactor::DEFAULT_HIGH_WATER, 64 * 1024);
/// ```
pub const DEFAULT_HIGH_WATER: usize = 64 * 1024;

/// Buffers of one `write_vectored` passed to `writev` without allocating.
const INLINE_SLICES: usize = 8;

/// Most reads from one connection in one readiness event (fairness between connections).
const READS_PER_EVENT: usize = 4;

/// A connected stream socket.
pub(crate) trait StreamSocket: AsFd + AsRawFd + 'static {
    fn read_some(&self, buf: &mut [u8]) -> io::Result<usize>;
    fn write_some(&self, buf: &[u8]) -> io::Result<usize>;
    /// As `write_some`, with more to follow at once (`MSG_MORE` where it exists).
    fn write_some_more(&self, buf: &[u8]) -> io::Result<usize> {
        self.write_some(buf)
    }
    fn write_vectored_some(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize>;
    /// Sends up to `len` bytes of `file` from `offset`; 0 when the file ends first.
    fn send_file_some(&self, file: &File, offset: u64, len: usize) -> io::Result<usize>;
    fn shutdown_write(&self) -> io::Result<()>;
    fn peer_address(&self) -> Address;
    fn local_address(&self) -> Address;
    fn set_nodelay(&self, _on: bool) -> io::Result<()> {
        Ok(())
    }
    fn set_keepalive(&self, _idle: Option<Duration>) -> io::Result<()> {
        Ok(())
    }
    /// Makes the next close send a reset (TCP `SO_LINGER` 0).
    fn set_reset_on_close(&self) {}
    /// The pending socket error (`SO_ERROR`), cleared.
    fn take_socket_error(&self) -> io::Result<Option<io::Error>>;
}

impl StreamSocket for TcpStream {
    fn read_some(&self, buf: &mut [u8]) -> io::Result<usize> {
        sock_read(self, buf)
    }
    fn write_some(&self, buf: &[u8]) -> io::Result<usize> {
        sock_send(self, buf)
    }
    fn write_some_more(&self, buf: &[u8]) -> io::Result<usize> {
        sock_send_more(self, buf)
    }
    fn write_vectored_some(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        (&*self).write_vectored(bufs)
    }
    fn send_file_some(&self, file: &File, offset: u64, len: usize) -> io::Result<usize> {
        sock_send_file(self, file, offset, len)
    }
    fn shutdown_write(&self) -> io::Result<()> {
        self.shutdown(Shutdown::Write)
    }
    fn peer_address(&self) -> Address {
        self.peer_addr().map(Address::Inet).unwrap_or(Address::Test)
    }
    fn local_address(&self) -> Address {
        self.local_addr()
            .map(Address::Inet)
            .unwrap_or(Address::Test)
    }
    fn set_nodelay(&self, on: bool) -> io::Result<()> {
        TcpStream::set_nodelay(self, on)
    }
    fn set_keepalive(&self, idle: Option<Duration>) -> io::Result<()> {
        let sock = socket2::SockRef::from(self);
        match idle {
            Some(t) => sock.set_tcp_keepalive(&socket2::TcpKeepalive::new().with_time(t)),
            None => sock.set_keepalive(false),
        }
    }
    fn set_reset_on_close(&self) {
        let _ = socket2::SockRef::from(self).set_linger(Some(Duration::ZERO));
    }
    fn take_socket_error(&self) -> io::Result<Option<io::Error>> {
        self.take_error()
    }
}

impl StreamSocket for UnixStream {
    fn read_some(&self, buf: &mut [u8]) -> io::Result<usize> {
        sock_read(self, buf)
    }
    fn write_some(&self, buf: &[u8]) -> io::Result<usize> {
        sock_send(self, buf)
    }
    fn write_vectored_some(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        (&*self).write_vectored(bufs)
    }
    fn send_file_some(&self, file: &File, offset: u64, len: usize) -> io::Result<usize> {
        sock_send_file(self, file, offset, len)
    }
    fn shutdown_write(&self) -> io::Result<()> {
        self.shutdown(Shutdown::Write)
    }
    fn peer_address(&self) -> Address {
        Address::Unix(
            self.peer_addr()
                .ok()
                .and_then(|a| a.as_pathname().map(Into::into)),
        )
    }
    fn local_address(&self) -> Address {
        Address::Unix(
            self.local_addr()
                .ok()
                .and_then(|a| a.as_pathname().map(Into::into)),
        )
    }
    fn take_socket_error(&self) -> io::Result<Option<io::Error>> {
        self.take_error()
    }
}

/// A connection's write queue and where it is in its life (reading, closing, closed).
struct ConnState {
    /// Bytes queued for the socket: `wbuf[wpos..]`, then `later`.
    wbuf: Vec<u8>,
    wpos: usize,
    /// What was queued behind a file region (`send_file`), in order: empty unless one is
    /// queued. Its bytes, counted in `later_len`.
    later: VecDeque<Queued>,
    later_len: usize,
    /// What the poller was last told.
    registered: Interest,
    reading_paused: bool,
    read_eof: bool,
    /// `lose_connection` was called: close once the queue is empty.
    disconnecting: bool,
    /// `half_close` was called: shut down writing once the queue is empty.
    half_closing: bool,
    write_shut: bool,
    closed: bool,
    producer: Option<(Rc<dyn Producer>, bool)>,
    producer_paused: bool,
    /// A pull producer's write went straight to the socket: ask it for more once the
    /// socket is writable (from the loop, not from inside its own `write`).
    pull_pending: bool,
    high_water: usize,
}

/// A part of the write queue behind `wbuf`.
enum Queued {
    /// Bytes written after a file region.
    Bytes(Vec<u8>),
    /// A file region still to send: `len` bytes from `offset`.
    File {
        file: Rc<File>,
        offset: u64,
        len: usize,
    },
    /// The next `len` bytes of a splice's pipe.
    Pipe { link: Rc<Link>, len: usize },
}

impl ConnState {
    /// Bytes queued, a file region counting as the bytes left to send of it.
    fn queued(&self) -> usize {
        self.wbuf.len() - self.wpos + self.later_len
    }

    /// Queues `data` after everything queued before it.
    fn enqueue(&mut self, data: &[u8]) {
        if self.later.is_empty() {
            self.wbuf.extend_from_slice(data);
            return;
        }
        self.later_len += data.len();
        if let Some(Queued::Bytes(b)) = self.later.back_mut() {
            b.extend_from_slice(data);
        } else {
            self.later.push_back(Queued::Bytes(data.to_vec()));
        }
    }

    /// Sends as much of the queue as `sock` takes, in order.
    fn drain<S: StreamSocket>(&mut self, sock: &S) -> io::Result<()> {
        let mut result = Ok(());
        loop {
            if self.wpos < self.wbuf.len() {
                match sock.write_some(&self.wbuf[self.wpos..]) {
                    Ok(n) => self.wpos += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        result = Err(e);
                        break;
                    }
                }
                continue;
            }
            match self.later.front_mut() {
                None => break,
                Some(Queued::Bytes(_)) => {
                    let Some(Queued::Bytes(b)) = self.later.pop_front() else {
                        unreachable!()
                    };
                    self.later_len -= b.len();
                    self.wbuf = b;
                    self.wpos = 0;
                }
                Some(Queued::File { file, offset, len }) => {
                    match sock.send_file_some(file, *offset, *len) {
                        Ok(0) => {
                            result = Err(io::Error::new(
                                io::ErrorKind::UnexpectedEof,
                                format!("file ended {len} bytes short of the region to send"),
                            ));
                            break;
                        }
                        Ok(n) => {
                            *offset += n as u64;
                            *len -= n;
                            self.later_len -= n;
                            if *len == 0 {
                                self.later.pop_front();
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => {
                            result = Err(e);
                            break;
                        }
                    }
                }
                Some(Queued::Pipe { link, len }) => match link.pipe.drain_to(sock, *len) {
                    Ok(0) => {
                        result = Err(io::Error::other("splice pipe ended early"));
                        break;
                    }
                    Ok(n) => {
                        *len -= n;
                        self.later_len -= n;
                        let link = link.clone();
                        if *len == 0 {
                            self.later.pop_front();
                        }
                        link.drained(n);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        result = Err(e);
                        break;
                    }
                },
            }
        }
        if self.wpos == self.wbuf.len() {
            self.wbuf.clear();
            self.wpos = 0;
            // Give memory back after a burst.
            if self.wbuf.capacity() > 4 * self.high_water {
                self.wbuf = Vec::new();
            }
        } else if self.wpos > self.wbuf.len() / 2 {
            let pos = self.wpos;
            self.wbuf.drain(..pos);
            self.wpos = 0;
        }
        result
    }

    fn wanted(&self) -> Interest {
        Interest {
            // Like Twisted, a connection being closed reads no more.
            read: !self.closed && !self.reading_paused && !self.read_eof && !self.disconnecting,
            write: !self.closed && (self.queued() > 0 || self.pull_pending),
        }
    }
}

/// One connection: its socket, its protocol, its write queue.
pub(crate) struct Conn<S: StreamSocket, P: Protocol> {
    reactor: Weak<ReactorCore>,
    sock: RefCell<Option<S>>,
    key: Cell<Option<Key>>,
    state: RefCell<ConnState>,
    protocol: RefCell<Option<Rc<RefCell<P>>>>,
    peer: Address,
    local: Address,
    /// Whether `TCP_NODELAY` is on, when known (inherited from the listening socket, or
    /// set through the transport): setting it to what it is costs no system call.
    nodelay: Cell<Option<bool>>,
    this: Weak<Conn<S, P>>,
    /// Taken off the poller: the peer hung up while reading was paused, and epoll would
    /// report that hang-up on every wait until `resume_reading` (level-triggered only).
    parked: Cell<bool>,
    /// Registered edge-triggered, for reading and writing, once (see `sys/epoll.rs`).
    edge: bool,
    /// Edge-triggered: a look asked of the next turn (`ready_again`) and not yet had, as
    /// `(readable, writable)`, so that it is asked once.
    again: Cell<(bool, bool)>,
    /// Where what it reads goes instead of its protocol (`splice_to`).
    relay: RefCell<Option<Relay>>,
}

/// A connection's reads relayed to another transport (`splice_to`).
struct Relay {
    to: TransportRef,
    /// The pipe and the destination's side of it; `None`: copied with `write`.
    pipe: Option<(Rc<Link>, SpliceSink)>,
}

/// What is known of a connection's socket without asking the kernel.
pub(crate) struct Known {
    pub(crate) peer: Address,
    pub(crate) local: Address,
    /// Whether `TCP_NODELAY` is on, if known.
    pub(crate) nodelay: Option<bool>,
}

/// What a write left to do once the connection's state is no longer borrowed.
struct Enqueued {
    result: io::Result<()>,
    /// The push producer to pause: the queue passed the high-water mark.
    pause: Option<(Rc<dyn Producer>, bool)>,
    /// Nothing left for the poller.
    settled: bool,
}

impl<S: StreamSocket, P: Protocol> Conn<S, P> {
    /// Registers `sock` and calls `connection_made`. The protocol may close the connection
    /// at once; the returned handle is still the protocol.
    pub(crate) fn start(reactor: &Reactor, sock: S, protocol: P) -> io::Result<Rc<RefCell<P>>> {
        let known = Known {
            peer: sock.peer_address(),
            local: sock.local_address(),
            nodelay: None,
        };
        Conn::start_with(reactor, sock, known, protocol)
    }

    /// As [`start`](Self::start), with what is already known of the socket (an accepted
    /// connection: `accept` gave the peer's address, the listener often knows the local
    /// one and its `TCP_NODELAY`), so no system call asks for it.
    pub(crate) fn start_with(
        reactor: &Reactor,
        sock: S,
        known: Known,
        protocol: P,
    ) -> io::Result<Rc<RefCell<P>>> {
        let protocol = Rc::new(RefCell::new(protocol));
        let edge = reactor.edge_io();
        let conn = Rc::new_cyclic(|this| Conn {
            this: this.clone(),
            parked: Cell::new(false),
            edge,
            again: Cell::new((false, false)),
            relay: RefCell::new(None),
            reactor: Rc::downgrade(&reactor.inner),
            peer: known.peer,
            local: known.local,
            nodelay: Cell::new(known.nodelay),
            sock: RefCell::new(Some(sock)),
            key: Cell::new(None),
            state: RefCell::new(ConnState {
                wbuf: Vec::new(),
                wpos: 0,
                later: VecDeque::new(),
                later_len: 0,
                registered: Interest::READ,
                reading_paused: false,
                read_eof: false,
                disconnecting: false,
                half_closing: false,
                write_shut: false,
                closed: false,
                producer: None,
                producer_paused: false,
                pull_pending: false,
                high_water: DEFAULT_HIGH_WATER,
            }),
            protocol: RefCell::new(Some(protocol.clone())),
        });
        let key = {
            let sock = conn.sock.borrow();
            let sock = sock.as_ref().expect("just made");
            let (interest, mode) = conn.poller_interest(Interest::READ);
            reactor.register(sock, interest, mode, conn.clone())?
        };
        conn.key.set(Some(key));
        let transport: TransportRef = conn.clone();
        conn.with_protocol(|p| {
            p.connection_made(transport);
            Ok(())
        });
        Ok(protocol)
    }

    fn reactor(&self) -> Option<Reactor> {
        self.reactor.upgrade().map(|inner| Reactor { inner })
    }

    /// Calls into the protocol; an error or a panic closes the connection with it.
    fn with_protocol(&self, f: impl FnOnce(&mut P) -> Result<(), Failure>) {
        let Some(p) = self.protocol.borrow().clone() else {
            return;
        };
        let result = {
            let Ok(mut p) = p.try_borrow_mut() else {
                log::error!("protocol re-entered by its own connection: call dropped");
                return;
            };
            catch_unwind(AssertUnwindSafe(|| f(&mut p)))
                .unwrap_or_else(|payload| Err(Failure::from_panic(payload)))
        };
        if let Err(failure) = result {
            log::debug!("protocol failed, closing its connection: {failure}");
            self.close(failure, false);
        }
    }

    /// What to register with the poller for `wanted`: itself, level-triggered, or both
    /// directions once, edge-triggered.
    fn poller_interest(&self, wanted: Interest) -> (Interest, PollMode) {
        if self.edge {
            (Interest::BOTH, PollMode::Edge)
        } else {
            (wanted, PollMode::Level)
        }
    }

    /// Tells the poller what the state wants now, if that changed.
    fn update_interest(&self) {
        let (wanted, changed, rising, pull_wait) = {
            let mut st = self.state.borrow_mut();
            let wanted = st.wanted();
            // A pull producer waits to be asked for more once the socket is writable,
            // which it already is: no edge will say so.
            let pull_wait = st.pull_pending && st.queued() == 0;
            let changed = wanted != st.registered;
            let rising = Interest {
                read: wanted.read && !st.registered.read,
                write: wanted.write && !st.registered.write,
            };
            st.registered = wanted;
            (wanted, changed, rising, pull_wait)
        };
        if self.parked.get() {
            if wanted.read || wanted.write {
                self.unpark(wanted);
            }
            return;
        }
        if self.edge {
            // The poller reports neither bytes already waiting nor a socket already
            // writable: look once more, next turn (a read or a send that may find nothing).
            self.look_again(rising.read, rising.write || pull_wait);
            return;
        }
        if changed {
            if let (Some(reactor), Some(key)) = (self.reactor(), self.key.get()) {
                if let Err(e) = reactor.reregister(key, wanted) {
                    log::error!("cannot change poller interest: {e}");
                }
            }
        }
    }

    /// Edge-triggered: asks the next turn to look at the socket as if the poller had
    /// reported it readable and/or writable, once until it has.
    fn look_again(&self, readable: bool, writable: bool) {
        let (r, w) = self.again.get();
        let (readable, writable) = (readable && !r, writable && !w);
        if !(readable || writable) {
            return;
        }
        if let (Some(reactor), Some(key)) = (self.reactor(), self.key.get()) {
            self.again.set((r || readable, w || writable));
            reactor.ready_again(
                key,
                Ready {
                    readable,
                    writable,
                    hangup: false,
                    // Read to the end: the peer may have shut down meanwhile, unreported.
                    read_closed: readable,
                },
            );
        }
    }

    /// Takes the socket off the poller (see `parked`).
    fn park(&self) {
        if let (Some(reactor), Some(key)) = (self.reactor(), self.key.take()) {
            reactor.deregister(key);
            self.parked.set(true);
        }
    }

    /// Puts a parked socket back on the poller with `interest`.
    fn unpark(&self, interest: Interest) {
        let (Some(reactor), Some(this)) = (self.reactor(), self.this.upgrade()) else {
            return;
        };
        let registered = {
            let sock = self.sock.borrow();
            let Some(sock) = sock.as_ref() else { return };
            let (poll_interest, mode) = self.poller_interest(interest);
            reactor.register(sock, poll_interest, mode, this)
        };
        match registered {
            Ok(key) => {
                self.key.set(Some(key));
                self.parked.set(false);
                self.state.borrow_mut().registered = interest;
            }
            Err(e) => self.close(Failure::new(ConnectionError::Lost(e)), false),
        }
    }

    /// Reads what the socket holds. `read_closed`: the peer has shut down its side, so
    /// read on to its end of stream rather than stopping at the first short read (an
    /// edge-triggered poller will not report that end again).
    fn on_readable(&self, reactor: &Reactor, read_closed: bool) {
        let piped = match self.relay.borrow().as_ref() {
            Some(Relay {
                pipe: Some((link, sink)),
                ..
            }) => Some((link.clone(), sink.clone())),
            _ => None,
        };
        if let Some((link, sink)) = piped {
            self.splice_readable(&link, &sink, read_closed);
            return;
        }
        let mut buf = reactor.take_read_buffer();
        // Every read was full: bytes may still wait, and an edge-triggered poller will not
        // say so again.
        let mut budget_spent = true;
        for _ in 0..READS_PER_EVENT {
            {
                let st = self.state.borrow();
                if st.closed || st.reading_paused || st.read_eof || st.disconnecting {
                    // Resuming looks again (`update_interest`); the rest never reads.
                    budget_spent = false;
                    break;
                }
            }
            let n = {
                let sock = self.sock.borrow();
                let Some(sock) = sock.as_ref() else { break };
                sock.read_some(&mut buf)
            };
            match n {
                Ok(0) => {
                    budget_spent = false;
                    self.on_eof();
                    break;
                }
                Ok(n) => {
                    self.deliver(&buf[..n]);
                    // A short read drained the socket: no need to read again for EAGAIN
                    // (bytes that come after it are a new edge).
                    if n < buf.len() && !read_closed {
                        budget_spent = false;
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    budget_spent = false;
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    budget_spent = false;
                    self.close(Failure::new(ConnectionError::Lost(e)), false);
                    break;
                }
            }
        }
        reactor.return_read_buffer(buf);
        if budget_spent && self.edge {
            self.look_again(true, false);
        }
    }

    /// Hands bytes read to the protocol, or to the transport they are relayed to.
    fn deliver(&self, data: &[u8]) {
        let to = self.relay.borrow().as_ref().map(|r| r.to.clone());
        match to {
            Some(to) => to.write(data),
            None => self.with_protocol(|p| p.data_received(data)),
        }
    }

    /// Moves what the socket holds into the relay's pipe, and has the destination send it.
    fn splice_readable(&self, link: &Rc<Link>, sink: &SpliceSink, read_closed: bool) {
        // Every splice was full: bytes may still wait (see `on_readable`).
        let mut budget_spent = true;
        for _ in 0..READS_PER_EVENT {
            {
                let st = self.state.borrow();
                if st.closed || st.reading_paused || st.read_eof || st.disconnecting {
                    budget_spent = false;
                    break;
                }
            }
            let room = link.room();
            if room == 0 {
                link.wait_for_room();
                budget_spent = false;
                break;
            }
            let n = {
                let sock = self.sock.borrow();
                let Some(sock) = sock.as_ref() else { break };
                link.pipe.fill_from(sock, room)
            };
            match n {
                Ok(0) => {
                    budget_spent = false;
                    self.on_eof();
                    break;
                }
                Ok(n) => {
                    link.filled(n);
                    sink.0.queue_spliced(link, n);
                    if n < room && !read_closed {
                        // Short: the socket was drained, or the pipe ran out of slots (one
                        // per packet fragment). With bytes still in the pipe, the
                        // destination wakes this side when it takes some; an empty pipe
                        // has every slot free, so one more splice tells which.
                        if link.in_pipe() > 0 {
                            link.wait_for_room();
                            budget_spent = false;
                            break;
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    // Nothing to read, or no slot left in the pipe: in doubt, look again
                    // once the destination has taken some.
                    if link.in_pipe() > 0 {
                        link.wait_for_room();
                    }
                    budget_spent = false;
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    budget_spent = false;
                    self.close(Failure::new(ConnectionError::Lost(e)), false);
                    break;
                }
            }
        }
        if budget_spent && self.edge {
            self.look_again(true, false);
        }
    }

    fn on_eof(&self) {
        self.state.borrow_mut().read_eof = true;
        let mut keep_open = false;
        let relayed_to = self.relay.borrow().as_ref().map(|r| r.to.clone());
        match relayed_to {
            // Pass the end on, behind the bytes before it; the other direction goes on.
            Some(to) => {
                to.half_close();
                keep_open = true;
            }
            None => self.with_protocol(|p| {
                keep_open = p.eof_received();
                Ok(())
            }),
        }
        let (closed, write_shut) = {
            let st = self.state.borrow();
            (st.closed, st.write_shut)
        };
        if closed {
            return;
        }
        if keep_open && write_shut {
            // Both directions are shut: nothing can flow any more.
            self.close(Failure::new(ConnectionError::Done), false);
        } else if keep_open {
            self.update_interest();
        } else {
            self.lose_connection();
        }
    }

    /// Writes `bufs` straight to the socket when nothing is queued (with `MSG_MORE`
    /// when `more`), and queues what it does not take.
    fn send_bufs(&self, bufs: &[&[u8]], more: bool) {
        let total: usize = bufs.iter().map(|b| b.len()).sum();

        if total == 0 {
            return;
        }
        let outcome = {
            let mut st = self.state.borrow_mut();
            if st.closed || st.disconnecting || st.write_shut || st.half_closing {
                return;
            }
            let mut written = 0;
            let mut result = Ok(());
            if st.queued() == 0 {
                // Straight to the socket: most writes end here, with no queue at all.
                let sock = self.sock.borrow();
                if let Some(sock) = sock.as_ref() {
                    let r = if more && bufs.len() == 1 {
                        sock.write_some_more(bufs[0])
                    } else if bufs.len() == 1 {
                        sock.write_some(bufs[0])
                    } else if bufs.len() <= INLINE_SLICES {
                        // A few buffers (a chunk header, data, CRLF): slices on the stack.
                        let mut slices = [IoSlice::new(&[]); INLINE_SLICES];
                        for (slot, b) in slices.iter_mut().zip(bufs) {
                            *slot = IoSlice::new(b);
                        }
                        sock.write_vectored_some(&slices[..bufs.len()])
                    } else {
                        let slices: Vec<IoSlice<'_>> =
                            bufs.iter().map(|b| IoSlice::new(b)).collect();
                        sock.write_vectored_some(&slices)
                    };
                    match r {
                        Ok(n) => written = n,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => result = Err(e),
                    }
                }
            }
            // Sent whole, nothing queued, nothing to tell a producer or the poller (most
            // writes): done.
            if written == total
                && !st.pull_pending
                && !matches!(st.producer, Some((_, false)))
                && st.wanted() == st.registered
                && !self.parked.get()
            {
                return;
            }
            if result.is_ok() && written < total {
                let mut skip = written;
                for b in bufs {
                    if skip >= b.len() {
                        skip -= b.len();
                        continue;
                    }
                    st.enqueue(&b[skip..]);
                    skip = 0;
                }
            }
            self.enqueued(&mut st, result)
        };
        self.finish_enqueue(outcome);
    }

    /// Sends as much of the queue as the socket takes.
    fn flush(&self) {
        let result = {
            let mut st = self.state.borrow_mut();
            let sock = self.sock.borrow();
            let Some(sock) = sock.as_ref() else { return };
            let before = st.queued();
            let result = st.drain(sock);
            (result, st.queued() < before)
        };
        if let (Err(e), _) = result {
            self.close(Failure::new(ConnectionError::Lost(e)), false);
            return;
        }
        self.after_write(result.1);
    }

    /// After a write or a file region went to the socket or the queue (`result`: what the
    /// socket said): ask a pull producer for more once writable, pause a push producer
    /// past the high-water mark, and say whether anything is left for the poller.
    #[inline(always)]
    fn enqueued(&self, st: &mut ConnState, result: io::Result<()>) -> Enqueued {
        if st.queued() == 0 && matches!(st.producer, Some((_, false))) {
            st.pull_pending = true;
        }
        let pause = result.is_ok()
            && !st.producer_paused
            && st.queued() > st.high_water
            && matches!(st.producer, Some((_, true)));
        if pause {
            st.producer_paused = true;
        }
        // All of it went out, and the poller was told what the state wants: nothing for
        // `update_interest` to do (most writes).
        let settled = st.queued() == 0
            && !st.pull_pending
            && st.wanted() == st.registered
            && !self.parked.get();
        Enqueued {
            result,
            pause: if pause { st.producer.clone() } else { None },
            settled,
        }
    }

    /// The rest of [`enqueued`](Self::enqueued), once the state is no longer borrowed:
    /// close on a socket error, pause the producer, or tell the poller.
    #[inline(always)]
    fn finish_enqueue(&self, outcome: Enqueued) {
        if let Err(e) = outcome.result {
            self.close(Failure::new(ConnectionError::Lost(e)), false);
            return;
        }
        if let Some((p, _)) = outcome.pause {
            p.pause_producing();
        } else if outcome.settled {
            return;
        }
        self.update_interest();
    }

    /// After the queue shrank (`progressed`: the socket took some of it) or grew: finish a
    /// pending close, tell and move the producer, and tell the poller.
    fn after_write(&self, progressed: bool) {
        let (empty, disconnecting, half_closing, resume, pull, queued) = {
            let mut st = self.state.borrow_mut();
            let empty = st.queued() == 0;
            let low = st.high_water / 4;
            let resume = st.producer_paused && st.queued() <= low;
            if resume {
                st.producer_paused = false;
            }
            let pull = empty && matches!(st.producer, Some((_, false)));
            st.pull_pending = false;
            let queued = st.queued();
            (
                empty,
                st.disconnecting,
                st.half_closing,
                resume,
                pull,
                queued,
            )
        };
        if empty && disconnecting {
            self.close(Failure::new(ConnectionError::Done), false);
            return;
        }
        if empty && half_closing {
            self.shut_write();
        }
        if progressed || resume || pull {
            let producer = self.state.borrow().producer.clone();
            if let Some((p, _)) = producer {
                if progressed {
                    p.write_progress(queued);
                }
                if resume || pull {
                    p.resume_producing();
                }
            }
        }
        self.update_interest();
    }

    fn shut_write(&self) {
        let read_eof = {
            let mut st = self.state.borrow_mut();
            if st.write_shut || st.closed {
                return;
            }
            st.write_shut = true;
            st.half_closing = false;
            if let Some(sock) = self.sock.borrow().as_ref() {
                let _ = sock.shutdown_write();
            }
            st.read_eof
        };
        if read_eof {
            // The peer had already shut its side: the connection is over.
            self.close(Failure::new(ConnectionError::Done), false);
        }
    }

    /// The poller reported a hang-up or an error. It reports them whatever the interest,
    /// and again on every wait (level-triggered), so a connection that is not reading
    /// (paused, or past EOF) must act on them here or the loop would spin.
    /// The socket's pending error (`SO_ERROR`), or the error reading it.
    fn socket_error(&self) -> Option<io::Error> {
        self.sock
            .borrow()
            .as_ref()
            .and_then(|s| s.take_socket_error().unwrap_or_else(Some))
    }

    fn on_hangup(&self) {
        let (closed, paused, read_eof, write_shut, disconnecting) = {
            let st = self.state.borrow();
            (
                st.closed,
                st.reading_paused,
                st.read_eof,
                st.write_shut,
                st.disconnecting,
            )
        };
        if closed {
            return;
        }
        if disconnecting {
            // Closing already, and the peer is gone: what is queued cannot be delivered.
            let error = self.socket_error();
            let reason = error.map_or(ConnectionError::Done, ConnectionError::Lost);
            self.close(Failure::new(reason), false);
            return;
        }
        if !(paused || read_eof) {
            // The read path sees the EOF or the error itself.
            return;
        }
        let error = self.socket_error();
        let reason = match error {
            Some(e) => ConnectionError::Lost(e),
            // A clean hang-up with reading paused: the peer's last bytes may still wait
            // to be read, so leave them for `resume_reading`, off the poller meanwhile.
            None if !read_eof => {
                // Edge-triggered, the hang-up is not reported again: nothing to park.
                if !self.edge {
                    self.park();
                }
                return;
            }
            None if write_shut => ConnectionError::Done,
            None => {
                ConnectionError::Lost(io::Error::new(io::ErrorKind::ConnectionReset, "hang-up"))
            }
        };
        self.close(Failure::new(reason), false);
    }

    /// Closes the socket now; `connection_lost` runs on the next turn (never inside the
    /// call that closed it).
    pub(crate) fn close(&self, reason: Failure, reset: bool) {
        let producer = {
            let mut st = self.state.borrow_mut();
            if st.closed {
                return;
            }
            st.closed = true;
            st.wbuf = Vec::new();
            st.wpos = 0;
            st.later = VecDeque::new();
            st.later_len = 0;
            st.producer.take()
        };
        if let Some(key) = self.key.take() {
            if let Some(reactor) = self.reactor() {
                reactor.deregister(key);
            }
        }
        if let Some(sock) = self.sock.borrow_mut().take() {
            if reset {
                sock.set_reset_on_close();
            }
            drop(sock);
        }
        if let Some((p, _)) = producer {
            p.stop_producing();
        }
        let relay = self.relay.borrow_mut().take();
        if let Some(relay) = relay {
            relay.to.lose_connection();
        }
        let protocol = self.protocol.borrow_mut().take();
        let Some(protocol) = protocol else { return };
        log::debug!("connection with {} closed: {reason}", self.peer);
        let lost = move || {
            let result = catch_unwind(AssertUnwindSafe(|| {
                protocol.borrow_mut().connection_lost(reason);
            }));
            if let Err(p) = result {
                log::error!("panic in connection_lost: {}", Failure::from_panic(p));
            }
        };
        match self.reactor() {
            Some(reactor) => reactor.call_soon(lost),
            None => lost(),
        }
    }
}

impl<S: StreamSocket, P: Protocol> IoHandler for Conn<S, P> {
    fn shutdown(self: Rc<Self>) {
        self.close(Failure::new(ConnectionError::Shutdown), false);
    }

    fn ready(self: Rc<Self>, reactor: &Reactor, ready: Ready) {
        // Looked at now: a later need asks again.
        let (r, w) = self.again.get();
        if r || w {
            self.again.set((r && !ready.readable, w && !ready.writable));
        }
        // Edge-triggered, most events say "writable"; only a queue or a pull producer
        // waiting for the socket cares.
        if ready.writable && {
            let st = self.state.borrow();
            st.queued() > 0 || st.pull_pending
        } {
            self.flush();
        }
        if ready.readable {
            self.on_readable(reactor, ready.read_closed);
        }
        if ready.hangup {
            self.on_hangup();
        }
    }
}

impl<S: StreamSocket, P: Protocol> Transport for Conn<S, P> {
    fn write(&self, data: &[u8]) {
        self.write_vectored(&[data]);
    }

    fn write_more(&self, data: &[u8]) {
        self.send_bufs(&[data], true);
    }

    fn write_vectored(&self, bufs: &[&[u8]]) {
        self.send_bufs(bufs, false);
    }

    fn send_file(&self, file: Rc<File>, offset: u64, len: u64) {
        if len == 0 {
            return;
        }
        let outcome = {
            let mut st = self.state.borrow_mut();
            if st.closed || st.disconnecting || st.write_shut || st.half_closing {
                return;
            }
            // A region past what memory can count is queued in parts.
            let mut left = len;
            let mut at = offset;
            while left > 0 {
                let part = left.min(isize::MAX as u64 / 2) as usize;
                st.later.push_back(Queued::File {
                    file: file.clone(),
                    offset: at,
                    len: part,
                });
                st.later_len = st.later_len.saturating_add(part);
                left -= part as u64;
                at += part as u64;
            }
            // Straight to the socket when nothing was queued before it, as `write` does;
            // behind a queue, the loop sends it in turn.
            let result = if st.wpos == st.wbuf.len() && st.later.len() == 1 {
                let sock = self.sock.borrow();
                match sock.as_ref() {
                    Some(sock) => st.drain(sock),
                    None => Ok(()),
                }
            } else {
                Ok(())
            };
            self.enqueued(&mut st, result)
        };
        self.finish_enqueue(outcome);
    }

    fn lose_connection(&self) {
        let empty = {
            let mut st = self.state.borrow_mut();
            if st.closed || st.disconnecting {
                return;
            }
            st.disconnecting = true;
            st.queued() == 0
        };
        if empty {
            self.close(Failure::new(ConnectionError::Done), false);
        }
    }

    fn abort_connection(&self) {
        self.close(Failure::new(ConnectionError::Aborted), true);
    }

    fn half_close(&self) {
        let empty = {
            let mut st = self.state.borrow_mut();
            if st.closed || st.write_shut {
                return;
            }
            st.half_closing = true;
            st.queued() == 0
        };
        if empty {
            self.shut_write();
        }
    }

    fn peer_addr(&self) -> Address {
        self.peer.clone()
    }

    fn local_addr(&self) -> Address {
        self.local.clone()
    }

    fn set_nodelay(&self, on: bool) -> io::Result<()> {
        // Already so (inherited from the listening socket, or set before): no system call.
        if self.nodelay.get() == Some(on) {
            return Ok(());
        }
        let set = match self.sock.borrow().as_ref() {
            Some(s) => s.set_nodelay(on),
            None => return Ok(()),
        };
        if set.is_ok() {
            self.nodelay.set(Some(on));
        }
        set
    }

    fn set_keepalive(&self, idle: Option<Duration>) -> io::Result<()> {
        match self.sock.borrow().as_ref() {
            Some(s) => s.set_keepalive(idle),
            None => Ok(()),
        }
    }

    fn pause_reading(&self) {
        self.state.borrow_mut().reading_paused = true;
        self.update_interest();
    }

    fn resume_reading(&self) {
        self.state.borrow_mut().reading_paused = false;
        self.update_interest();
    }

    fn register_producer(&self, producer: Rc<dyn Producer>, streaming: bool) {
        let pull_now = {
            let mut st = self.state.borrow_mut();
            if st.closed {
                drop(st);
                producer.stop_producing();
                return;
            }
            st.producer = Some((producer.clone(), streaming));
            st.producer_paused = false;
            !streaming && st.queued() == 0
        };
        if pull_now {
            producer.resume_producing();
        }
    }

    fn unregister_producer(&self) {
        {
            let mut st = self.state.borrow_mut();
            st.producer = None;
            st.producer_paused = false;
            st.pull_pending = false;
        }
        self.update_interest();
    }

    fn write_buffer_len(&self) -> usize {
        self.state.borrow().queued()
    }

    fn is_closing(&self) -> bool {
        let st = self.state.borrow();
        st.closed || st.disconnecting
    }

    fn splice_to(&self, to: &TransportRef) -> io::Result<()> {
        if std::ptr::addr_eq(Rc::as_ptr(to), self as *const Self) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a connection cannot be spliced to itself",
            ));
        }
        if self.state.borrow().closed {
            return Ok(());
        }
        if self.relay.borrow().is_some() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "the connection is already spliced",
            ));
        }
        let Some(this) = self.this.upgrade() else {
            return Ok(());
        };
        // The pipe path reads until a splice is refused, which only an edge-triggered
        // poller reports again; elsewhere, copy.
        let sink = if self.edge && !splice::copy_forced() {
            to.splice_sink()
        } else {
            None
        };
        let pipe = sink.and_then(|sink| match Pipe::new(splice::PIPE_SIZE) {
            Ok(pipe) => {
                let source: Weak<dyn SpliceSource> = self.this.clone();
                Some((Rc::new(Link::new(pipe, source)), sink))
            }
            Err(e) => {
                log::debug!("no pipe for a splice, copying instead: {e}");
                None
            }
        });
        *self.relay.borrow_mut() = Some(Relay {
            to: to.clone(),
            pipe,
        });
        to.register_producer(Rc::new(TransportProducer(this)), true);
        // Bytes may be waiting already: the poller will not report them again.
        if self.edge {
            self.look_again(true, false);
        }
        Ok(())
    }

    fn splice_sink(&self) -> Option<SpliceSink> {
        let this: Rc<dyn PipeSink> = self.this.upgrade()?;
        Some(SpliceSink(this))
    }
}

impl<S: StreamSocket, P: Protocol> SpliceSource for Conn<S, P> {
    fn pipe_room(&self) {
        if self.edge {
            self.look_again(true, false);
        }
    }
}

impl<S: StreamSocket, P: Protocol> PipeSink for Conn<S, P> {
    fn queue_spliced(&self, link: &Rc<Link>, n: usize) {
        let outcome = {
            let mut st = self.state.borrow_mut();
            if st.closed || st.disconnecting || st.write_shut || st.half_closing {
                // Nobody will send them: the source is being closed with this side.
                return;
            }
            let first = st.queued() == 0;
            match st.later.back_mut() {
                Some(Queued::Pipe { link: l, len }) if Rc::ptr_eq(l, link) => *len += n,
                _ => st.later.push_back(Queued::Pipe {
                    link: link.clone(),
                    len: n,
                }),
            }
            st.later_len += n;
            // Straight to the socket when nothing was queued before them, as `write` does.
            let result = if first {
                let sock = self.sock.borrow();
                match sock.as_ref() {
                    Some(sock) => st.drain(sock),
                    None => Ok(()),
                }
            } else {
                Ok(())
            };
            self.enqueued(&mut st, result)
        };
        self.finish_enqueue(outcome);
    }
}

impl<S: StreamSocket, P: Protocol> Drop for Conn<S, P> {
    fn drop(&mut self) {
        // The poller must forget a descriptor before it is closed.
        if let (Some(key), Some(inner)) = (self.key.take(), self.reactor.upgrade()) {
            Reactor { inner }.deregister(key);
        }
    }
}
