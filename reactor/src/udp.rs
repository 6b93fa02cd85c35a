//! UDP: datagram ports with a [`DatagramProtocol`] (Twisted's `listenUDP`,
//! `DatagramProtocol` and the UDP port transport).
//!
//! # Behaviour
//!
//! - **Reads.** A port is registered level-triggered for reading, once, and never
//!   re-armed. On each readable event it receives at most 32 datagrams (so one busy port
//!   does not starve the others; the rest are read on the next turn), each into the
//!   reactor's shared 64 KiB read buffer, and hands each one whole to
//!   [`DatagramProtocol::datagram_received`] with its sender. A datagram longer than
//!   65,536 bytes (possible only with IPv6 jumbograms) would be truncated by the kernel.
//! - **Writes** go straight to the socket and are never queued: UDP may drop datagrams
//!   anywhere on the way, so a full socket buffer drops this one too. Twisted raises the
//!   socket error; [`DatagramTransport::write_to`] returns it
//!   ([`io::ErrorKind::WouldBlock`] for a full buffer, the `EMSGSIZE` error for a datagram
//!   too large) and the caller decides whether to retry.
//! - **Connected mode.** [`DatagramTransport::connect`] fixes the peer: only its
//!   datagrams arrive, [`DatagramTransport::write`] sends to it, and an ICMP
//!   port-unreachable for an earlier datagram makes the kernel report `ECONNREFUSED`,
//!   which becomes [`DatagramProtocol::connection_refused`] (from a read, or on the next
//!   turn after a write that saw it; that write also returns the error).
//! - **Errors in the protocol.** An `Err` returned by, or a panic in, `datagram_received`
//!   is logged and the port stays open (Twisted logs the exception and goes on).
//! - **Closing.** [`UdpPort::stop_listening`] (or [`DatagramTransport::stop_listening`])
//!   closes the socket at once; `stop_protocol` runs on the next turn and the returned
//!   Deferred fires after it. Reactor shutdown closes every port the same way. Dropping
//!   the [`UdpPort`] handle does not close the port.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::{Rc, Weak};

use ropewalk_deferred::{Deferred, Failure};

use crate::reactor::{IoHandler, Reactor, ReactorCore};
use crate::slab::Key;
use crate::sys::{Interest, PollMode, Ready};

/// Most datagrams received from one port in one readiness event.
const DATAGRAMS_PER_EVENT: usize = 32;

/// The code that speaks a datagram protocol on one UDP port (Twisted's
/// `DatagramProtocol`).
///
/// The reactor calls these methods one at a time and never re-entrantly:
/// `start_protocol` once when the port opens, `datagram_received` for each datagram,
/// `connection_refused` in connected mode when the peer is unreachable, and
/// `stop_protocol` once when the port closes.
///
/// `Rc<RefCell<P>>` is a protocol too, so the caller can keep a handle on the protocol it
/// gives to [`Reactor::listen_udp`].
///
/// # Examples
///
/// ```
/// use std::net::SocketAddr;
/// use ropewalk_reactor::deferred::Failure;
/// use ropewalk_reactor::{DatagramProtocol, DatagramTransportRef};
///
/// /// Sends every datagram back to where it came from.
/// #[derive(Default)]
/// struct Echo { transport: Option<DatagramTransportRef> }
///
/// impl DatagramProtocol for Echo {
///     fn start_protocol(&mut self, transport: DatagramTransportRef) {
///         self.transport = Some(transport);
///     }
///     fn datagram_received(&mut self, data: &[u8], from: SocketAddr) -> Result<(), Failure> {
///         self.transport.as_ref().unwrap().write_to(data, from)?;
///         Ok(())
///     }
/// }
/// ```
pub trait DatagramProtocol: 'static {
    /// The port is open; keep `transport` to send.
    ///
    /// # Examples
    ///
    /// See [`DatagramProtocol`] and [`Reactor::listen_udp`](crate::Reactor::listen_udp).
    fn start_protocol(&mut self, transport: DatagramTransportRef) {
        let _ = transport;
    }

    /// A datagram arrived from `from`, whole. An `Err` (or a panic) is logged and the port
    /// stays open.
    ///
    /// # Errors
    ///
    /// Whatever the protocol finds wrong; it is only logged.
    ///
    /// # Examples
    ///
    /// See [`DatagramProtocol`] and [`Reactor::listen_udp`](crate::Reactor::listen_udp).
    fn datagram_received(&mut self, data: &[u8], from: SocketAddr) -> Result<(), Failure>;

    /// In connected mode: the peer refused a datagram (an ICMP port-unreachable came
    /// back). The port stays open.
    ///
    /// # Examples
    ///
    /// See [`DatagramTransport`].
    fn connection_refused(&mut self) {}

    /// The port closed: called exactly once, after the socket is gone.
    ///
    /// # Examples
    ///
    /// See [`DatagramTransport`].
    fn stop_protocol(&mut self) {}
}

impl<P: DatagramProtocol> DatagramProtocol for Rc<RefCell<P>> {
    fn start_protocol(&mut self, transport: DatagramTransportRef) {
        self.borrow_mut().start_protocol(transport);
    }

    fn datagram_received(&mut self, data: &[u8], from: SocketAddr) -> Result<(), Failure> {
        self.borrow_mut().datagram_received(data, from)
    }

    fn connection_refused(&mut self) {
        self.borrow_mut().connection_refused();
    }

    fn stop_protocol(&mut self) {
        self.borrow_mut().stop_protocol();
    }
}

/// The UDP port a [`DatagramProtocol`] sends through (Twisted's UDP port as a
/// transport). Protocols get it as [`DatagramTransportRef`] in
/// [`DatagramProtocol::start_protocol`].
///
/// After the port closed, sending fails with [`io::ErrorKind::NotConnected`].
///
/// # Examples
///
/// A port in connected mode: it talks to one peer, learns when that peer refuses, and
/// says when it closed.
///
/// ```
/// use std::cell::Cell;
/// use std::net::SocketAddr;
/// use std::rc::Rc;
/// use ropewalk_reactor::deferred::Failure;
/// use ropewalk_reactor::{DatagramProtocol, DatagramTransport, Reactor};
///
/// #[derive(Default)]
/// struct Seen { refused: Rc<Cell<bool>>, stopped: Rc<Cell<bool>> }
/// impl DatagramProtocol for Seen {
///     fn datagram_received(&mut self, _: &[u8], _: SocketAddr) -> Result<(), Failure> { Ok(()) }
///     fn connection_refused(&mut self) { self.refused.set(true); }
///     fn stop_protocol(&mut self) { self.stopped.set(true); }
/// }
///
/// let reactor = Reactor::new()?;
/// let seen = Seen::default();
/// let (refused, stopped) = (seen.refused.clone(), seen.stopped.clone());
/// let port = reactor.listen_udp("127.0.0.1:0".parse().unwrap(), seen)?;
/// let t = port.transport();
/// assert_eq!(t.local_addr(), port.local_addr());
///
/// // Unconnected: send anywhere.
/// let peer = std::net::UdpSocket::bind("127.0.0.1:0")?;
/// t.write_to(b"hi", peer.local_addr()?)?;
/// let mut buf = [0u8; 8];
/// assert_eq!(peer.recv_from(&mut buf)?, (2, t.local_addr()));
/// t.set_broadcast(true)?;
/// t.set_ttl(16)?;
///
/// // Connected to a port nothing listens on: the ICMP error comes back as a refusal.
/// let gone = std::net::UdpSocket::bind("127.0.0.1:0")?.local_addr()?;
/// t.connect(gone)?;
/// assert_eq!(t.connected_addr(), Some(gone));
/// t.write(b"anyone?")?;
/// for _ in 0..100 {
///     reactor.iterate(std::time::Duration::from_millis(50));
///     if refused.get() {
///         break;
///     }
///     let _ = t.write(b"anyone?"); // a later send may be the one that reports it
/// }
/// assert!(refused.get());
///
/// t.stop_listening().wait().unwrap();
/// assert!(t.is_closed() && stopped.get());
/// assert_eq!(t.write(b"late").unwrap_err().kind(), std::io::ErrorKind::NotConnected);
/// # Ok::<(), std::io::Error>(())
/// ```
pub trait DatagramTransport {
    /// Sends one datagram to `addr`, now or never (nothing is queued).
    ///
    /// # Errors
    ///
    /// The system error: [`io::ErrorKind::WouldBlock`] when the socket buffer is full (the
    /// datagram is dropped), `EMSGSIZE` when it is too large, `ConnectionRefused` in
    /// connected mode (see [`DatagramProtocol::connection_refused`]);
    /// [`io::ErrorKind::InvalidInput`] in connected mode when `addr` is not the peer;
    /// [`io::ErrorKind::NotConnected`] once the port is closed.
    ///
    /// # Examples
    ///
    /// See [`DatagramTransport`].
    fn write_to(&self, data: &[u8], addr: SocketAddr) -> io::Result<()>;

    /// In connected mode, sends one datagram to the peer.
    ///
    /// # Errors
    ///
    /// As [`write_to`](Self::write_to); [`io::ErrorKind::NotConnected`] when not
    /// connected.
    ///
    /// # Examples
    ///
    /// See [`DatagramTransport`].
    fn write(&self, data: &[u8]) -> io::Result<()>;

    /// Switches to connected mode: only `addr`'s datagrams arrive, and
    /// [`write`](Self::write) sends to it. As in Twisted, a port connects once.
    ///
    /// # Errors
    ///
    /// [`io::ErrorKind::InvalidInput`] if already connected; the system error otherwise
    /// (an address of the other family, for instance).
    ///
    /// # Examples
    ///
    /// See [`DatagramTransport`].
    fn connect(&self, addr: SocketAddr) -> io::Result<()>;

    /// The peer, in connected mode.
    ///
    /// # Examples
    ///
    /// See [`DatagramTransport`].
    fn connected_addr(&self) -> Option<SocketAddr>;

    /// The address the port is bound to (with the real port when asked for port 0).
    ///
    /// # Examples
    ///
    /// See [`DatagramTransport`].
    fn local_addr(&self) -> SocketAddr;

    /// Allows sending to broadcast addresses (`SO_BROADCAST`).
    ///
    /// # Errors
    ///
    /// The system error; [`io::ErrorKind::NotConnected`] once the port is closed.
    ///
    /// # Examples
    ///
    /// See [`DatagramTransport`].
    fn set_broadcast(&self, on: bool) -> io::Result<()>;

    /// Sets the time-to-live of outgoing unicast datagrams (`IP_TTL`, IPv4 only).
    ///
    /// # Errors
    ///
    /// The system error; [`io::ErrorKind::NotConnected`] once the port is closed.
    ///
    /// # Examples
    ///
    /// See [`DatagramTransport`].
    fn set_ttl(&self, ttl: u32) -> io::Result<()>;

    /// Closes the port; `stop_protocol` follows on the next turn, and the Deferred fires
    /// after it. A second call gives a Deferred that has fired.
    ///
    /// # Examples
    ///
    /// See [`DatagramTransport`].
    fn stop_listening(&self) -> Deferred<()>;

    /// Whether the port is closed.
    ///
    /// # Examples
    ///
    /// See [`DatagramTransport`].
    fn is_closed(&self) -> bool;
}

/// A datagram protocol's handle on its port.
///
/// # Examples
///
/// See [`DatagramProtocol`] (an echo that keeps it) and [`DatagramTransport`].
pub type DatagramTransportRef = Rc<dyn DatagramTransport>;

/// One UDP port: its socket and its protocol.
struct Udp<P: DatagramProtocol> {
    reactor: Weak<ReactorCore>,
    this: Weak<Udp<P>>,
    sock: RefCell<Option<UdpSocket>>,
    key: Cell<Option<Key>>,
    local: SocketAddr,
    peer: Cell<Option<SocketAddr>>,
    protocol: RefCell<Option<P>>,
    /// `stop` was called.
    stopped: Cell<bool>,
}

fn closed() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "the port is closed")
}

impl<P: DatagramProtocol> Udp<P> {
    fn reactor(&self) -> Option<Reactor> {
        self.reactor.upgrade().map(|inner| Reactor { inner })
    }

    /// Calls into the protocol; a panic is logged. Returns `None` if it could not be
    /// called (closed, or re-entered).
    fn with_protocol<R>(&self, what: &str, f: impl FnOnce(&mut P) -> R) -> Option<R> {
        let mut slot = match self.protocol.try_borrow_mut() {
            Ok(slot) => slot,
            Err(_) => {
                log::error!("datagram protocol re-entered by its own port: {what} dropped");
                return None;
            }
        };
        let p = slot.as_mut()?;
        match catch_unwind(AssertUnwindSafe(|| f(p))) {
            Ok(r) => Some(r),
            Err(payload) => {
                log::error!(
                    "panic in {what} on UDP port {}: {}",
                    self.local,
                    Failure::from_panic(payload)
                );
                None
            }
        }
    }

    fn refused_later(&self) {
        let this = self.this.clone();
        let call = move || {
            if let Some(this) = this.upgrade() {
                this.with_protocol("connection_refused", |p| p.connection_refused());
            }
        };
        match self.reactor() {
            Some(r) => r.call_soon(call),
            None => call(),
        }
    }

    fn on_readable(&self, reactor: &Reactor) {
        let mut buf = reactor.take_read_buffer();
        for _ in 0..DATAGRAMS_PER_EVENT {
            let received = {
                let sock = self.sock.borrow();
                let Some(sock) = sock.as_ref() else { break };
                sock.recv_from(&mut buf)
            };
            match received {
                Ok((n, from)) => {
                    let r = self.with_protocol("datagram_received", |p| {
                        p.datagram_received(&buf[..n], from)
                    });
                    if let Some(Err(f)) = r {
                        log::error!(
                            "datagram_received on UDP port {} failed (the port stays open): {f}",
                            self.local
                        );
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                    if self.peer.get().is_some() {
                        self.with_protocol("connection_refused", |p| p.connection_refused());
                    }
                }
                Err(e) => {
                    // Other pending ICMP errors (host unreachable...): not the port's end.
                    log::debug!("recv on UDP port {}: {e}", self.local);
                    break;
                }
            }
        }
        reactor.return_read_buffer(buf);
    }

    fn send(&self, data: &[u8], to: Option<SocketAddr>) -> io::Result<()> {
        let result = {
            let sock = self.sock.borrow();
            let sock = sock.as_ref().ok_or_else(closed)?;
            loop {
                let r = match to {
                    Some(addr) => sock.send_to(data, addr),
                    None => sock.send(data),
                };
                match r {
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    r => break r,
                }
            }
        };
        match result {
            Ok(_) => Ok(()),
            Err(e) => {
                if e.kind() == io::ErrorKind::ConnectionRefused && self.peer.get().is_some() {
                    self.refused_later();
                }
                Err(e)
            }
        }
    }

    fn stop(&self) -> Deferred<()> {
        if self.stopped.replace(true) {
            return Deferred::succeed(());
        }
        if let Some(key) = self.key.take() {
            if let Some(reactor) = self.reactor() {
                reactor.deregister(key);
            }
        }
        drop(self.sock.borrow_mut().take());
        let (d, resolver) = Deferred::pending();
        let this = self.this.clone();
        let finish = move || {
            if let Some(this) = this.upgrade() {
                this.with_protocol("stop_protocol", |p| p.stop_protocol());
                // Break the protocol ↔ transport cycle.
                let protocol = this.protocol.borrow_mut().take();
                drop(protocol);
            }
            let _ = resolver.callback(());
        };
        match self.reactor() {
            Some(r) => r.call_soon(finish),
            None => finish(),
        }
        d
    }
}

impl<P: DatagramProtocol> IoHandler for Udp<P> {
    fn ready(self: Rc<Self>, reactor: &Reactor, ready: Ready) {
        if ready.readable || ready.hangup {
            self.on_readable(reactor);
        }
    }

    fn shutdown(self: Rc<Self>) {
        drop(self.stop());
    }
}

impl<P: DatagramProtocol> DatagramTransport for Udp<P> {
    fn write_to(&self, data: &[u8], addr: SocketAddr) -> io::Result<()> {
        match self.peer.get() {
            None => self.send(data, Some(addr)),
            Some(peer) if peer == addr => self.send(data, None),
            Some(peer) => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("connected to {peer}, not {addr}"),
            )),
        }
    }

    fn write(&self, data: &[u8]) -> io::Result<()> {
        if self.peer.get().is_none() {
            return Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "not connected: use write_to",
            ));
        }
        self.send(data, None)
    }

    fn connect(&self, addr: SocketAddr) -> io::Result<()> {
        if let Some(peer) = self.peer.get() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("already connected to {peer}"),
            ));
        }
        let sock = self.sock.borrow();
        sock.as_ref().ok_or_else(closed)?.connect(addr)?;
        self.peer.set(Some(addr));
        Ok(())
    }

    fn connected_addr(&self) -> Option<SocketAddr> {
        self.peer.get()
    }

    fn local_addr(&self) -> SocketAddr {
        self.local
    }

    fn set_broadcast(&self, on: bool) -> io::Result<()> {
        self.sock
            .borrow()
            .as_ref()
            .ok_or_else(closed)?
            .set_broadcast(on)
    }

    fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.sock.borrow().as_ref().ok_or_else(closed)?.set_ttl(ttl)
    }

    fn stop_listening(&self) -> Deferred<()> {
        self.stop()
    }

    fn is_closed(&self) -> bool {
        self.sock.borrow().is_none()
    }
}

impl<P: DatagramProtocol> Drop for Udp<P> {
    fn drop(&mut self) {
        // The poller must forget a descriptor before it is closed.
        if let (Some(key), Some(inner)) = (self.key.take(), self.reactor.upgrade()) {
            Reactor { inner }.deregister(key);
        }
    }
}

/// An open UDP port, from [`Reactor::listen_udp`]. It stays open until
/// [`stop_listening`](Self::stop_listening) or reactor shutdown; dropping the handle does
/// not close it.
///
/// # Examples
///
/// See [`Reactor::listen_udp`] and [`DatagramTransport`].
#[derive(Clone)]
pub struct UdpPort {
    transport: DatagramTransportRef,
}

impl UdpPort {
    /// The address the port is bound to (with the real port when asked for port 0).
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::net::SocketAddr;
    /// # use ropewalk_reactor::{deferred::Failure, DatagramProtocol, Reactor};
    /// # struct P;
    /// # impl DatagramProtocol for P {
    /// #     fn datagram_received(&mut self, _: &[u8], _: SocketAddr) -> Result<(), Failure> { Ok(()) }
    /// # }
    /// let reactor = Reactor::new()?;
    /// let port = reactor.listen_udp("127.0.0.1:0".parse().unwrap(), P)?;
    /// assert_ne!(port.local_addr().port(), 0);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn local_addr(&self) -> SocketAddr {
        self.transport.local_addr()
    }

    /// The port as its protocol sees it: to send from outside the protocol.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::net::SocketAddr;
    /// # use ropewalk_reactor::{deferred::Failure, DatagramProtocol, Reactor};
    /// # struct P;
    /// # impl DatagramProtocol for P {
    /// #     fn datagram_received(&mut self, _: &[u8], _: SocketAddr) -> Result<(), Failure> { Ok(()) }
    /// # }
    /// let reactor = Reactor::new()?;
    /// let port = reactor.listen_udp("127.0.0.1:0".parse().unwrap(), P)?;
    /// let peer = std::net::UdpSocket::bind("127.0.0.1:0")?;
    /// port.transport().write_to(b"hello", peer.local_addr()?)?;
    /// let mut buf = [0; 16];
    /// assert_eq!(peer.recv_from(&mut buf)?, (5, port.local_addr()));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn transport(&self) -> DatagramTransportRef {
        self.transport.clone()
    }

    /// Closes the port now; the protocol's `stop_protocol` runs on the next turn, and the
    /// Deferred fires after it (Twisted's `stopListening`).
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::net::SocketAddr;
    /// # use ropewalk_reactor::{deferred::Failure, DatagramProtocol, Reactor};
    /// # struct P;
    /// # impl DatagramProtocol for P {
    /// #     fn datagram_received(&mut self, _: &[u8], _: SocketAddr) -> Result<(), Failure> { Ok(()) }
    /// # }
    /// let reactor = Reactor::new()?;
    /// let port = reactor.listen_udp("127.0.0.1:0".parse().unwrap(), P)?;
    /// port.stop_listening().wait().unwrap();
    /// assert_eq!(reactor.stats().sources, 0);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn stop_listening(&self) -> Deferred<()> {
        self.transport.stop_listening()
    }
}

impl fmt::Debug for UdpPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UdpPort")
            .field("local_addr", &self.transport.local_addr())
            .field("connected_addr", &self.transport.connected_addr())
            .field("closed", &self.transport.is_closed())
            .finish()
    }
}

impl Reactor {
    /// Opens a UDP port on `addr` (IPv4 or IPv6; port 0 picks a free one) and runs
    /// `protocol` on it (Twisted's `listenUDP`). `start_protocol` is called before this
    /// returns.
    ///
    /// `SO_REUSEADDR` is not set: binding a port already bound fails, as in Twisted. An
    /// IPv6 port is IPv6-only.
    ///
    /// # Errors
    ///
    /// The system error if the address cannot be bound (in use, not local...).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::net::SocketAddr;
    /// use ropewalk_reactor::deferred::{Deferred, Failure, Resolver};
    /// use ropewalk_reactor::{DatagramProtocol, Reactor};
    ///
    /// /// Fires with the first datagram.
    /// struct First(Option<Resolver<Vec<u8>>>);
    /// impl DatagramProtocol for First {
    ///     fn datagram_received(&mut self, data: &[u8], _: SocketAddr) -> Result<(), Failure> {
    ///         if let Some(r) = self.0.take() {
    ///             let _ = r.callback(data.to_vec());
    ///         }
    ///         Ok(())
    ///     }
    /// }
    ///
    /// let reactor = Reactor::new()?;
    /// let (d, r) = Deferred::pending();
    /// let port = reactor.listen_udp("127.0.0.1:0".parse().unwrap(), First(Some(r)))?;
    /// std::net::UdpSocket::bind("127.0.0.1:0")?.send_to(b"ping", port.local_addr())?;
    /// assert_eq!(d.wait().unwrap(), b"ping");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn listen_udp<P: DatagramProtocol>(
        &self,
        addr: SocketAddr,
        protocol: P,
    ) -> io::Result<UdpPort> {
        use socket2::{Domain, Socket, Type};
        let sock = Socket::new(Domain::for_address(addr), Type::DGRAM, None)?;
        if addr.is_ipv6() {
            sock.set_only_v6(true)?;
        }
        sock.bind(&addr.into())?;
        sock.set_nonblocking(true)?;
        let sock = UdpSocket::from(sock);
        let local = sock.local_addr()?;
        let port = Rc::new_cyclic(|this| Udp {
            reactor: Rc::downgrade(&self.inner),
            this: this.clone(),
            sock: RefCell::new(None),
            key: Cell::new(None),
            local,
            peer: Cell::new(None),
            protocol: RefCell::new(Some(protocol)),
            stopped: Cell::new(false),
        });
        let key = self.register(&sock, Interest::READ, PollMode::Level, port.clone())?;
        port.key.set(Some(key));
        *port.sock.borrow_mut() = Some(sock);
        let transport: DatagramTransportRef = port.clone();
        port.with_protocol("start_protocol", |p| p.start_protocol(transport));
        Ok(UdpPort { transport: port })
    }
}
