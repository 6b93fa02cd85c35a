//! [`Echo`] (RFC 862) and [`Discard`] (RFC 863) over TCP (Twisted's
//! `twisted.protocols.wire.Echo` and `Discard`).
//!
//! Echo follows RFC 862 when the peer half-closes: it keeps the connection open for
//! writing, echoes everything it read, and closes once that is sent (xinetd does the same;
//! Twisted's default `Echo` drops the connection at the peer's FIN). UDP echo is not here
//! yet: it waits for the reactor's UDP API.

use std::fmt;
use std::net::SocketAddr;
use std::rc::Rc;

use ropewalk_deferred::Failure;
use ropewalk_reactor::{
    Address, DatagramProtocol, DatagramTransportRef, Protocol, TransportProducer, TransportRef,
};

/// Writes back every byte it receives, unframed (RFC 862).
///
/// When the peer shuts down its sending side, `eof_received` returns `true` and asks for
/// a close after the queue drains: everything received before the FIN is echoed.
///
/// # Examples
///
/// ```
/// use ropewalk_protocols::echo::Echo;
/// use ropewalk_reactor::testing::StringTransport;
/// use ropewalk_reactor::Protocol;
///
/// let mut p = Echo::new();
/// let t = StringTransport::connect(&mut p);
/// p.data_received(b"hello").unwrap();
/// p.data_received(b"world").unwrap();
/// assert_eq!(t.value(), b"helloworld");
///
/// // The peer half-closes: stay open until the echo is sent, then close.
/// assert!(p.eof_received());
/// assert!(t.is_disconnecting());
/// ```
///
/// A server: `reactor.listen_tcp("127.0.0.1:7".parse()?, Echo::factory())`.
#[derive(Default)]
pub struct Echo {
    transport: Option<TransportRef>,
}

impl fmt::Debug for Echo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Echo")
            .field("connected", &self.transport.is_some())
            .finish()
    }
}

impl Echo {
    /// A new echo protocol.
    ///
    /// # Examples
    ///
    /// ```
    /// let _ = ropewalk_protocols::echo::Echo::new();
    /// ```
    pub fn new() -> Echo {
        Echo::default()
    }

    /// A factory that serves [`Echo`] to every peer.
    ///
    /// # Examples
    ///
    /// ```
    /// use ropewalk_protocols::echo::Echo;
    /// use ropewalk_reactor::Reactor;
    ///
    /// let reactor = Reactor::new()?;
    /// let port = reactor.listen_tcp("127.0.0.1:0".parse().unwrap(), Echo::factory())?;
    /// println!("echo on {}", port.local_addr());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn factory() -> fn(&Address) -> Option<Echo> {
        |_| Some(Echo::new())
    }
}

impl Protocol for Echo {
    fn connection_made(&mut self, transport: TransportRef) {
        // Not read while the echo waits past the write queue's high-water mark: a peer
        // that sends without reading cannot grow the queue without bound.
        transport.register_producer(Rc::new(TransportProducer(transport.clone())), true);
        self.transport = Some(transport);
    }

    fn data_received(&mut self, data: &[u8]) -> Result<(), Failure> {
        if let Some(t) = &self.transport {
            t.write(data);
        }
        Ok(())
    }

    fn eof_received(&mut self) -> bool {
        // RFC 862: finish echoing what was sent before the FIN, then close.
        if let Some(t) = &self.transport {
            t.lose_connection();
        }
        true
    }
}

/// Reads and drops everything (RFC 863); closes when the peer closes its side.
///
/// # Examples
///
/// ```
/// use ropewalk_protocols::echo::Discard;
/// use ropewalk_reactor::testing::StringTransport;
/// use ropewalk_reactor::Protocol;
///
/// let mut p = Discard;
/// let t = StringTransport::connect(&mut p);
/// p.data_received(b"anything").unwrap();
/// assert!(t.value().is_empty());
/// assert!(!p.eof_received());
/// ```
#[derive(Debug, Default, Clone, Copy)]
pub struct Discard;

impl Discard {
    /// A factory that serves [`Discard`] to every peer.
    ///
    /// # Examples
    ///
    /// ```
    /// use ropewalk_protocols::echo::Discard;
    /// use ropewalk_reactor::{Address, Factory};
    ///
    /// assert!(Discard::factory().build_protocol(&Address::Test).is_some());
    /// ```
    pub fn factory() -> fn(&Address) -> Option<Discard> {
        |_| Some(Discard)
    }
}

impl Protocol for Discard {
    fn data_received(&mut self, _data: &[u8]) -> Result<(), Failure> {
        Ok(())
    }
}

/// Echoes every datagram back to its sender, whole (RFC 862 over UDP): up to 65,507 bytes,
/// the largest UDP payload over IPv4.
///
/// A datagram that cannot be sent back (the socket's buffer is full) is dropped, as UDP
/// allows; the failure is logged at debug level.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use ropewalk_protocols::echo::UdpEcho;
/// use ropewalk_reactor::Reactor;
///
/// let reactor = Reactor::new()?;
/// let port = reactor.listen_udp("127.0.0.1:0".parse().unwrap(), UdpEcho::default())?;
/// let server = port.local_addr();
/// let client = reactor.defer_to_thread(move || {
///     let s = std::net::UdpSocket::bind("127.0.0.1:0")?;
///     s.set_read_timeout(Some(Duration::from_secs(5)))?;
///     s.send_to(b"ping", server)?;
///     let mut buf = [0u8; 16];
///     let (n, _) = s.recv_from(&mut buf)?;
///     Ok(buf[..n].to_vec())
/// });
/// assert_eq!(client.wait().unwrap(), b"ping");
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Default)]
pub struct UdpEcho {
    transport: Option<DatagramTransportRef>,
}

impl fmt::Debug for UdpEcho {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UdpEcho")
            .field("started", &self.transport.is_some())
            .finish()
    }
}

impl DatagramProtocol for UdpEcho {
    fn start_protocol(&mut self, transport: DatagramTransportRef) {
        self.transport = Some(transport);
    }

    fn datagram_received(&mut self, data: &[u8], from: SocketAddr) -> Result<(), Failure> {
        if let Some(t) = &self.transport {
            if let Err(e) = t.write_to(data, from) {
                log::debug!("udp echo to {from} dropped: {e}");
            }
        }
        Ok(())
    }

    fn stop_protocol(&mut self) {
        self.transport = None;
    }
}
