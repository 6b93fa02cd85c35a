//! The interfaces between the reactor and the code that speaks a protocol: [`Protocol`],
//! [`Factory`], [`Transport`], [`Producer`] (Twisted's `IProtocol`, `IProtocolFactory`,
//! `ITransport`, `IPushProducer`/`IPullProducer`).

use std::fmt;
use std::fs::File;
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

    /// Sends `len` bytes of `file` from `offset`, in order with the writes around it (what
    /// was written before goes first, what is written after goes after). On a TCP or Unix
    /// connection on Linux the kernel copies it from the page cache with `sendfile(2)`, as
    /// the socket drains, with no pass through this process; elsewhere (the portable
    /// poller, other systems) a connection reads 64 KiB at a time with `pread` as the socket
    /// drains. The default, for transports without a socket of their own (TLS, test
    /// transports), reads the region at once with `pread` on the calling thread and
    /// [`write`](Self::write)s it: the whole region then sits in the write queue's memory,
    /// so a transport that may send large files (TLS) should override it to read as it
    /// drains.
    ///
    /// The region counts toward [`write_buffer_len`](Self::write_buffer_len) (and so toward
    /// the high-water mark that pauses a producer) as the bytes left to send of it: it is
    /// what the peer still has to read, so a producer's `write_progress` and a send timeout
    /// see a file exactly as they see written bytes, and a producer writes no more until
    /// the peer took it. It costs no memory: the file is read by the kernel as it is sent.
    ///
    /// A file that ends before `offset + len` (truncated meanwhile), or that cannot be
    /// read, loses the connection with [`ConnectionError::Lost`]: the peer sees a short
    /// response, never a wrong one. `lose_connection` sends the region first. The file is
    /// kept open (`Rc`) until it is sent, so one open file can serve many connections.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::rc::Rc;
    /// use ropewalk_reactor::testing::StringTransport;
    /// use ropewalk_reactor::Transport;
    ///
    /// let path = std::env::temp_dir().join(format!("ropewalk-doc-sendfile-{}", std::process::id()));
    /// std::fs::write(&path, "0123456789")?;
    /// let file = Rc::new(std::fs::File::open(&path)?);
    /// let t = StringTransport::new();
    /// t.write(b"[");
    /// t.send_file(file, 2, 5);
    /// t.write(b"]");
    /// assert_eq!(t.value(), b"[23456]");
    /// # std::fs::remove_file(&path)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    fn send_file(&self, file: Rc<File>, offset: u64, len: u64) {
        use std::os::unix::fs::FileExt;
        let mut buf = vec![0u8; len.min(64 * 1024) as usize];
        let mut sent = 0u64;
        while sent < len {
            let want = (len - sent).min(buf.len() as u64) as usize;
            match file.read_at(&mut buf[..want], offset + sent) {
                Ok(0) => {
                    log::warn!("send_file: the file ended {} bytes short", len - sent);
                    self.abort_connection();
                    return;
                }
                Ok(n) => {
                    self.write(&buf[..n]);
                    sent += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    log::warn!("send_file: cannot read the file: {e}");
                    self.abort_connection();
                    return;
                }
            }
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
/// Any `Fn(&Address) -> Option<P>` is a factory.
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
