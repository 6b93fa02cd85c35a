//! The interfaces between the reactor and the code that speaks a protocol: [`Protocol`],
//! [`Factory`], [`Transport`], [`Producer`] (Twisted's `IProtocol`, `IProtocolFactory`,
//! `ITransport`, `IPushProducer`/`IPullProducer`).

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use ropewalk_deferred::Failure;

/// Where a connection or socket is: an internet address, a Unix socket path, or a test
/// transport.
///
/// # Examples
///
/// ```
/// use ropewalk_reactor::Address;
///
/// let a = Address::Inet("127.0.0.1:80".parse().unwrap());
/// assert_eq!(a.inet().unwrap().port(), 80);
/// assert_eq!(a.to_string(), "127.0.0.1:80");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Address {
    /// An IPv4 or IPv6 address and port.
    Inet(SocketAddr),
    /// A Unix-domain socket; `None` for an unnamed one (a client's end).
    Unix(Option<PathBuf>),
    /// A transport without a real address (tests).
    Test,
}

impl Address {
    /// The internet address, if it is one.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(ropewalk_reactor::Address::Test.inet().is_none());
    /// ```
    pub fn inet(&self) -> Option<SocketAddr> {
        match self {
            Address::Inet(a) => Some(*a),
            _ => None,
        }
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Inet(a) => write!(f, "{a}"),
            Address::Unix(Some(p)) => write!(f, "unix:{}", p.display()),
            Address::Unix(None) => f.write_str("unix:(unnamed)"),
            Address::Test => f.write_str("test"),
        }
    }
}

/// Why a connection ended or could not be made; carried in a [`Failure`] (to
/// [`Protocol::connection_lost`], or on a connect Deferred's errback path).
///
/// # Examples
///
/// ```
/// use ropewalk_reactor::ConnectionError;
/// use ropewalk_reactor::deferred::Failure;
///
/// let f = Failure::new(ConnectionError::Done);
/// assert!(f.downcast_ref::<ConnectionError>().unwrap().is_clean());
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectionError {
    /// Closed cleanly: by `lose_connection`, or by the peer closing its end.
    #[error("connection closed cleanly")]
    Done,
    /// Lost: the socket failed (reset by the peer, for instance).
    #[error("connection lost")]
    Lost(#[source] io::Error),
    /// Closed by `abort_connection`, without flushing.
    #[error("connection aborted")]
    Aborted,
    /// The peer refused the connection.
    #[error("connection refused")]
    Refused(#[source] io::Error),
    /// Connecting took longer than the timeout.
    #[error("connect timed out after {0:?}")]
    TimedOut(Duration),
    /// A host name could not be resolved.
    #[error("could not resolve {0}")]
    LookupFailed(String, #[source] io::Error),
    /// Connecting failed for another reason.
    #[error("connect failed")]
    ConnectFailed(#[source] io::Error),
    /// The reactor shut down with the connection open.
    #[error("the reactor shut down")]
    Shutdown,
}

impl ConnectionError {
    /// Whether this is a clean close ([`ConnectionError::Done`]).
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(!ropewalk_reactor::ConnectionError::Aborted.is_clean());
    /// ```
    pub fn is_clean(&self) -> bool {
        matches!(self, ConnectionError::Done)
    }
}

/// The connection a protocol writes to (Twisted's `ITransport`); protocols get it as
/// [`TransportRef`] in [`Protocol::connection_made`], and never know whether it is TCP, a
/// Unix socket or a test stub.
///
/// Every method is safe to call after the connection closed: it does nothing.
pub trait Transport {
    /// Sends `data`: straight to the socket when it takes it, the rest queued and sent as
    /// the socket drains. Writes after `lose_connection` or `abort_connection` are dropped.
    fn write(&self, data: &[u8]);

    /// Sends several buffers as one write (`writev`).
    fn write_vectored(&self, bufs: &[&[u8]]) {
        for b in bufs {
            self.write(b);
        }
    }

    /// Closes after everything queued has been sent; `connection_lost` follows with
    /// [`ConnectionError::Done`]. A second call does nothing.
    fn lose_connection(&self);

    /// Closes now, dropping what is queued, and resets the connection; `connection_lost`
    /// follows (on a later turn, never inside this call) with [`ConnectionError::Aborted`].
    fn abort_connection(&self);

    /// Shuts down the sending side once everything queued has been sent; reading goes on.
    fn half_close(&self);

    /// The peer's address.
    fn peer_addr(&self) -> Address;

    /// This end's address.
    fn local_addr(&self) -> Address;

    /// Turns Nagle's algorithm off (`TCP_NODELAY`) or on; a no-op where it does not apply.
    ///
    /// # Errors
    ///
    /// The system error, if setting the option fails.
    fn set_nodelay(&self, on: bool) -> io::Result<()>;

    /// Turns TCP keep-alive on with this idle time, or off; a no-op where it does not apply.
    ///
    /// # Errors
    ///
    /// The system error, if setting the option fails.
    fn set_keepalive(&self, idle: Option<Duration>) -> io::Result<()>;

    /// Stops reading from the peer until [`resume_reading`](Self::resume_reading) (the
    /// kernel's buffers then push back on the peer).
    fn pause_reading(&self);

    /// Starts reading again.
    fn resume_reading(&self);

    /// Registers a producer of the data written to this transport. A streaming (push)
    /// producer is paused when the write queue passes its high-water mark and resumed
    /// when it drains below the low-water mark; a pull producer's `resume_producing` is
    /// called each time the queue is empty. Its `stop_producing` is called when the
    /// connection closes.
    fn register_producer(&self, producer: Rc<dyn Producer>, streaming: bool);

    /// Forgets the producer.
    fn unregister_producer(&self);

    /// Bytes queued and not yet taken by the socket.
    fn write_buffer_len(&self) -> usize;

    /// Whether the connection is closed or closing.
    fn is_closing(&self) -> bool;

    /// Switches this connection to TLS (Twisted's `startTLS`; SMTP's and IMAP's
    /// STARTTLS): what was written before goes out first, in clear; then the handshake;
    /// from then on writes are encrypted and reads decrypted, through this same transport.
    /// The Deferred fires when the handshake has finished; if it fails, it errbacks with
    /// the [`TlsError`](crate::tls::TlsError) and the connection is lost with it.
    ///
    /// Only connections made through a [`StartTlsFactory`](crate::tls::StartTlsFactory)
    /// can switch; the others (the default) fail with
    /// [`TlsError::StartTlsUnsupported`](crate::tls::TlsError::StartTlsUnsupported).
    ///
    /// # Examples
    ///
    /// ```
    /// use ropewalk_reactor::testing::StringTransport;
    /// use ropewalk_reactor::tls::{StartTls, TlsClientBuilder, TlsError};
    /// use ropewalk_reactor::Transport;
    ///
    /// let t = StringTransport::new();
    /// let tls = StartTls::client(TlsClientBuilder::new().build()?, "example.com");
    /// let f = t.start_tls(tls).wait().unwrap_err();
    /// assert!(matches!(f.downcast_ref(), Some(TlsError::StartTlsUnsupported)));
    /// # Ok::<(), ropewalk_reactor::tls::TlsConfigError>(())
    /// ```
    fn start_tls(&self, tls: crate::tls_start::StartTls) -> ropewalk_deferred::Deferred<()> {
        let _ = tls;
        ropewalk_deferred::Deferred::fail(crate::tls_error::TlsError::StartTlsUnsupported)
    }

    /// What TLS negotiated on this connection (ALPN protocol, peer certificates, version,
    /// cipher suite, SNI): `None` on plain TCP, and before a TLS handshake has finished
    /// (a protocol over TLS sees it from `connection_made` on; over STARTTLS, once
    /// [`start_tls`](Self::start_tls)'s Deferred has fired).
    ///
    /// # Examples
    ///
    /// ```
    /// use ropewalk_reactor::testing::StringTransport;
    /// use ropewalk_reactor::Transport;
    ///
    /// assert_eq!(StringTransport::new().tls_info(), None);
    /// ```
    fn tls_info(&self) -> Option<crate::tls_info::TlsInfo> {
        None
    }
}

/// A protocol's handle on its transport.
pub type TransportRef = Rc<dyn Transport>;

/// Something that produces data for a transport (Twisted's `IPushProducer` /
/// `IPullProducer`). Its methods take `&self` because the transport calls them while the
/// producer may be busy writing: keep state in `Cell`s.
pub trait Producer {
    /// Stop producing for now: the transport's queue is full.
    fn pause_producing(&self);
    /// Produce again (a pull producer: produce one more chunk).
    fn resume_producing(&self);
    /// Stop for good: the connection closed.
    fn stop_producing(&self);

    /// The socket took bytes from the transport's write queue (the peer is reading):
    /// `queued` bytes are left, 0 when it drained. Called from the loop after each write
    /// that sent some of the queue, never from inside `write`, and never for writes that
    /// went straight to the socket; it is how a protocol times out a peer that stops
    /// reading (nginx's `send_timeout`) with no timer while nothing is queued. The default
    /// does nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::cell::Cell;
    /// use std::rc::Rc;
    /// use ropewalk_reactor::testing::StringTransport;
    /// use ropewalk_reactor::{Producer, Transport};
    ///
    /// #[derive(Default)]
    /// struct Watch(Cell<Option<usize>>);
    /// impl Producer for Watch {
    ///     fn pause_producing(&self) {}
    ///     fn resume_producing(&self) {}
    ///     fn stop_producing(&self) {}
    ///     fn write_progress(&self, queued: usize) { self.0.set(Some(queued)); }
    /// }
    ///
    /// let t = StringTransport::new();
    /// let watch = Rc::new(Watch::default());
    /// t.register_producer(watch.clone(), true);
    /// t.set_write_buffer_len(1000); // the peer stopped reading
    /// t.set_write_buffer_len(400); // …and took 600 bytes
    /// assert_eq!(watch.0.get(), Some(400));
    /// ```
    fn write_progress(&self, queued: usize) {
        let _ = queued;
    }
}

/// A transport as the producer of what it reads (in Twisted every transport is a push
/// producer): pausing it pauses its reading, resuming resumes it, stopping it loses its
/// connection.
///
/// Register it on the transport its bytes are written to, so that a peer that reads
/// slowly slows the one that sends: a proxy registers each side on the other; an echo
/// registers its own transport on itself (a peer that never reads then stops being read,
/// and the write queue stays near its high-water mark). The producer holds the
/// transport, and a transport drops its producer when it closes, which ends the cycle.
///
/// # Examples
///
/// ```
/// use std::rc::Rc;
/// use ropewalk_reactor::testing::StringTransport;
/// use ropewalk_reactor::{Producer, Transport, TransportProducer, TransportRef};
///
/// let upstream = StringTransport::new();
/// let p = TransportProducer(upstream.clone() as TransportRef);
/// p.pause_producing();
/// assert!(upstream.is_reading_paused());
/// p.resume_producing();
/// assert!(!upstream.is_reading_paused());
/// p.stop_producing();
/// assert!(upstream.is_disconnecting());
/// ```
pub struct TransportProducer(pub TransportRef);

impl Producer for TransportProducer {
    fn pause_producing(&self) {
        self.0.pause_reading();
    }

    fn resume_producing(&self) {
        self.0.resume_reading();
    }

    fn stop_producing(&self) {
        // A no-op on a transport already closing.
        self.0.lose_connection();
    }
}

impl fmt::Debug for TransportProducer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TransportProducer")
            .field("peer", &self.0.peer_addr())
            .finish()
    }
}

/// The code that speaks a protocol on one connection (Twisted's `Protocol`).
///
/// The reactor calls these methods, one at a time and never re-entrantly:
/// `connection_made` once, then `data_received` for each chunk read (chunks have no
/// relation to the peer's writes), `eof_received` if the peer shuts down its sending side,
/// and `connection_lost` exactly once, at the end, with the reason.
///
/// # Examples
///
/// ```
/// use ropewalk_reactor::deferred::Failure;
/// use ropewalk_reactor::{Protocol, TransportRef};
///
/// /// Answers every chunk with its length.
/// #[derive(Default)]
/// struct Counter { transport: Option<TransportRef> }
///
/// impl Protocol for Counter {
///     fn connection_made(&mut self, transport: TransportRef) {
///         self.transport = Some(transport);
///     }
///     fn data_received(&mut self, data: &[u8]) -> Result<(), Failure> {
///         let t = self.transport.as_ref().unwrap();
///         t.write(format!("{}\n", data.len()).as_bytes());
///         Ok(())
///     }
/// }
/// ```
pub trait Protocol: 'static {
    /// The connection is up; keep `transport` to write.
    fn connection_made(&mut self, transport: TransportRef) {
        let _ = transport;
    }

    /// Bytes arrived. An `Err` (or a panic) closes this connection, and that failure
    /// becomes the reason given to `connection_lost`.
    ///
    /// # Errors
    ///
    /// Whatever the protocol finds wrong with the data.
    fn data_received(&mut self, data: &[u8]) -> Result<(), Failure>;

    /// The peer will send nothing more (it shut down its sending side). Return `true` to
    /// keep the connection open for writing (then close it with `lose_connection` when
    /// done); the default, `false`, closes it once everything queued is sent.
    fn eof_received(&mut self) -> bool {
        false
    }

    /// The connection is gone: called exactly once, with the reason (a
    /// [`ConnectionError`], or the failure `data_received` returned).
    fn connection_lost(&mut self, reason: Failure) {
        let _ = reason;
    }
}

/// Makes a protocol for each connection (Twisted's `Factory`).
///
/// Any `Fn(&Address) -> Option<P>` is a factory, and the listen and connect functions
/// ([`Reactor::listen_tcp`](crate::Reactor::listen_tcp),
/// [`Reactor::connect_tcp`](crate::Reactor::connect_tcp), ...) take one, so a closure
/// needs no annotation: `reactor.listen_tcp(addr, |_| Some(Echo::default()))`.
/// [`for_protocol`] makes one from a constructor that ignores the peer.
///
/// Implement the trait on a struct for [`start_factory`](Factory::start_factory) and
/// [`stop_factory`](Factory::stop_factory) (Twisted's `startFactory` / `stopFactory`),
/// and pass it to [`Reactor::listen_tcp_factory`](crate::Reactor::listen_tcp_factory) or
/// [`Reactor::connect_tcp_factory`](crate::Reactor::connect_tcp_factory).
///
/// # Why the listen functions take `impl Fn` rather than `impl Factory`
///
/// Rust infers a closure's argument types from an `Fn` bound on the parameter it is
/// passed to, and only from that. Behind a `F: Factory` bound, `|_| Some(Echo)` is typed
/// for one particular lifetime of `&Address` instead of all of them, and fails with
/// "implementation of `FnOnce` is not general enough"; it then needed writing
/// `|_: &Address| ...`. The generic `*_factory` forms keep that limit.
///
/// # Examples
///
/// ```
/// use ropewalk_reactor::deferred::Failure;
/// use ropewalk_reactor::{Address, Factory, Protocol};
///
/// struct Quiet;
/// impl Protocol for Quiet {
///     fn data_received(&mut self, _: &[u8]) -> Result<(), Failure> { Ok(()) }
/// }
///
/// // Refuses connections from anywhere but loopback.
/// let factory = |peer: &Address| {
///     peer.inet().filter(|a| a.ip().is_loopback()).map(|_| Quiet)
/// };
/// assert!(factory.build_protocol(&Address::Inet("127.0.0.1:9".parse().unwrap())).is_some());
/// assert!(factory.build_protocol(&Address::Test).is_none());
/// ```
pub trait Factory: 'static {
    /// The protocol it makes.
    type Protocol: Protocol;

    /// A protocol for a connection from (or to) `peer`; `None` refuses it (the
    /// connection is closed at once).
    fn build_protocol(&self, peer: &Address) -> Option<Self::Protocol>;

    /// Called when a port starts listening (or a connect starts) with this factory.
    fn start_factory(&self) {}

    /// Called when that port stops listening (or the connect ends).
    fn stop_factory(&self) {}
}

impl<P: Protocol, F: Fn(&Address) -> Option<P> + 'static> Factory for F {
    type Protocol = P;

    fn build_protocol(&self, peer: &Address) -> Option<P> {
        self(peer)
    }
}

/// A factory that makes a protocol with `make` for every peer (Twisted's
/// `Factory.forProtocol`): for the many protocols that do not look at the peer's address.
///
/// # Examples
///
/// ```
/// use ropewalk_reactor::deferred::Failure;
/// use ropewalk_reactor::{for_protocol, Address, Factory, Protocol, Reactor};
///
/// #[derive(Default)]
/// struct Quiet;
/// impl Protocol for Quiet {
///     fn data_received(&mut self, _: &[u8]) -> Result<(), Failure> { Ok(()) }
/// }
///
/// let factory = for_protocol(Quiet::default);
/// assert!(factory.build_protocol(&Address::Test).is_some());
///
/// let reactor = Reactor::new()?;
/// let port = reactor.listen_tcp("127.0.0.1:0".parse().unwrap(), for_protocol(|| Quiet))?;
/// # drop(port);
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn for_protocol<P: Protocol>(
    make: impl Fn() -> P + 'static,
) -> impl Fn(&Address) -> Option<P> + 'static {
    move |_: &Address| Some(make())
}
