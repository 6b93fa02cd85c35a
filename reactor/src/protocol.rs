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

use ropewalk_deferred::{Deferred, Failure};

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
///
/// # Examples
///
/// A protocol keeps the transport it is given and writes to it; here over a real
/// loopback connection (the method examples below use the
/// [`StringTransport`](crate::testing::StringTransport) test stub, as protocol tests do):
///
/// ```
/// use std::io::Read;
/// use ropewalk_reactor::deferred::Failure;
/// use ropewalk_reactor::{Address, Protocol, Reactor, TransportRef};
///
/// /// Greets the peer with its own address, then closes.
/// struct Greeter;
/// impl Protocol for Greeter {
///     fn connection_made(&mut self, transport: TransportRef) {
///         let peer = transport.peer_addr();
///         transport.write(format!("hello, {peer}\n").as_bytes());
///         transport.lose_connection(); // after the greeting is sent
///     }
///     fn data_received(&mut self, _: &[u8]) -> Result<(), Failure> { Ok(()) }
/// }
///
/// let reactor = Reactor::new()?;
/// let port = reactor.listen_tcp("127.0.0.1:0".parse().unwrap(), |_: &Address| Some(Greeter))?;
/// let addr = port.local_addr().inet().unwrap();
/// let client = std::thread::spawn(move || {
///     let mut s = std::net::TcpStream::connect(addr).unwrap();
///     s.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
///     let mut text = String::new();
///     s.read_to_string(&mut text).unwrap();
///     (text, s.local_addr().unwrap())
/// });
/// while !client.is_finished() {
///     reactor.iterate(std::time::Duration::from_millis(10));
/// }
/// let (text, me) = client.join().unwrap();
/// assert_eq!(text, format!("hello, {me}\n"));
/// # Ok::<(), std::io::Error>(())
/// ```
pub trait Transport {
    /// Sends `data`: straight to the socket when it takes it, the rest queued and sent as
    /// the socket drains. Writes after `lose_connection` or `abort_connection` are dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// use ropewalk_reactor::testing::StringTransport;
    /// use ropewalk_reactor::Transport;
    ///
    /// let t = StringTransport::new();
    /// t.write(b"hello ");
    /// t.write(b"world");
    /// assert_eq!(t.value(), b"hello world");
    /// ```
    fn write(&self, data: &[u8]);

    /// Sends several buffers as one write (`writev`).
    ///
    /// # Examples
    ///
    /// ```
    /// use ropewalk_reactor::testing::StringTransport;
    /// use ropewalk_reactor::Transport;
    ///
    /// let t = StringTransport::new();
    /// t.write_vectored(&[b"HTTP/1.1 200 OK\r\n", b"\r\n"]);
    /// assert_eq!(t.value(), b"HTTP/1.1 200 OK\r\n\r\n");
    /// ```
    fn write_vectored(&self, bufs: &[&[u8]]) {
        for b in bufs {
            self.write(b);
        }
    }

    /// Sends `data` as [`write`](Self::write) does, as the start of a message whose rest
    /// is sent at once after it (an HTTP head before its [`send_file`](Self::send_file)
    /// body): a TCP connection on Linux sends it with `MSG_MORE`, so the kernel holds it
    /// and sends it in one packet with what follows, not in a small packet of its own
    /// (nginx's `tcp_nopush`). The next write or `send_file` must follow in the same
    /// turn: until it does, the bytes may wait. Other transports write.
    ///
    /// # Examples
    ///
    /// ```
    /// use ropewalk_reactor::testing::StringTransport;
    /// use ropewalk_reactor::Transport;
    ///
    /// let t = StringTransport::new();
    /// t.write_more(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n");
    /// t.write(b"hello"); // the rest, at once
    /// assert!(t.value().ends_with(b"\r\n\r\nhello"));
    /// ```
    fn write_more(&self, data: &[u8]) {
        self.write(data);
    }

    /// Sends `len` bytes of `file` from `offset`, in order with the writes around it (what
    /// was written before goes first, what is written after goes after). On a TCP or Unix
    /// connection on Linux the kernel copies it from the page cache with `sendfile(2)`, as
    /// the socket drains, with no pass through this process; elsewhere (the portable
    /// poller, other systems) a connection reads 64 KiB at a time with `pread` as the socket
    /// drains. A TLS connection reads and encrypts it a chunk (just under 64 KiB) at a time
    /// with `pread` as the connection drains (see [the `tls` module](crate::tls)). The
    /// default, for transports without a socket of their own (test transports, wrappers),
    /// reads the region at once with `pread` on the calling thread and
    /// [`write`](Self::write)s it: the whole region then sits in the write queue's memory,
    /// so a transport that may send large files should override it (a wrapper passes it
    /// on to the transport it wraps).
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
    ///
    /// # Examples
    ///
    /// ```
    /// use ropewalk_reactor::testing::StringTransport;
    /// use ropewalk_reactor::Transport;
    ///
    /// let t = StringTransport::new();
    /// t.write(b"bye");
    /// t.lose_connection();
    /// assert!(t.is_closing() && t.is_disconnecting());
    /// assert_eq!(t.value(), b"bye");
    /// ```
    fn lose_connection(&self);

    /// Closes now, dropping what is queued, and resets the connection; `connection_lost`
    /// follows (on a later turn, never inside this call) with [`ConnectionError::Aborted`].
    ///
    /// # Examples
    ///
    /// ```
    /// use ropewalk_reactor::testing::StringTransport;
    /// use ropewalk_reactor::Transport;
    ///
    /// let t = StringTransport::new();
    /// t.abort_connection();
    /// assert!(t.was_aborted() && t.is_closing());
    /// ```
    fn abort_connection(&self);

    /// Shuts down the sending side once everything queued has been sent; reading goes on.
    ///
    /// # Examples
    ///
    /// ```
    /// use ropewalk_reactor::testing::StringTransport;
    /// use ropewalk_reactor::Transport;
    ///
    /// let t = StringTransport::new();
    /// t.write(b"request");
    /// t.half_close(); // the peer reads EOF after "request"; we can still read its answer
    /// assert!(t.is_half_closed());
    /// ```
    fn half_close(&self);

    /// The peer's address.
    ///
    /// # Examples
    ///
    /// See [`Transport`].
    fn peer_addr(&self) -> Address;

    /// This end's address.
    ///
    /// # Examples
    ///
    /// ```
    /// use ropewalk_reactor::testing::StringTransport;
    /// use ropewalk_reactor::Transport;
    ///
    /// let t = StringTransport::new();
    /// assert_eq!(t.local_addr(), ropewalk_reactor::Address::Test);
    /// ```
    fn local_addr(&self) -> Address;

    /// Turns Nagle's algorithm off (`TCP_NODELAY`) or on; a no-op where it does not apply.
    ///
    /// # Errors
    ///
    /// The system error, if setting the option fails.
    ///
    /// # Examples
    ///
    /// ```
    /// use ropewalk_reactor::testing::StringTransport;
    /// use ropewalk_reactor::Transport;
    ///
    /// let t = StringTransport::new();
    /// t.set_nodelay(true)?;
    /// assert!(t.nodelay());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    fn set_nodelay(&self, on: bool) -> io::Result<()>;

    /// Turns TCP keep-alive on with this idle time, or off; a no-op where it does not apply.
    ///
    /// # Errors
    ///
    /// The system error, if setting the option fails.
    ///
    /// # Examples
    ///
    /// ```
    /// use ropewalk_reactor::testing::StringTransport;
    /// use ropewalk_reactor::Transport;
    ///
    /// let t = StringTransport::new();
    /// t.set_keepalive(Some(std::time::Duration::from_secs(60)))?;
    /// t.set_keepalive(None)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    fn set_keepalive(&self, idle: Option<Duration>) -> io::Result<()>;

    /// Stops reading from the peer until [`resume_reading`](Self::resume_reading) (the
    /// kernel's buffers then push back on the peer).
    ///
    /// # Examples
    ///
    /// ```
    /// use ropewalk_reactor::testing::StringTransport;
    /// use ropewalk_reactor::Transport;
    ///
    /// let t = StringTransport::new();
    /// t.pause_reading();
    /// assert!(t.is_reading_paused());
    /// t.resume_reading();
    /// assert!(!t.is_reading_paused());
    /// ```
    fn pause_reading(&self);

    /// Starts reading again.
    ///
    /// # Examples
    ///
    /// See [`pause_reading`](Self::pause_reading).
    fn resume_reading(&self);

    /// Registers a producer of the data written to this transport. A streaming (push)
    /// producer is paused when the write queue passes its high-water mark and resumed
    /// when it drains below the low-water mark; a pull producer's `resume_producing` is
    /// called each time the queue is empty. Its `stop_producing` is called when the
    /// connection closes.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::rc::Rc;
    /// use ropewalk_reactor::testing::StringTransport;
    /// use ropewalk_reactor::{Producer, Transport};
    ///
    /// struct Source;
    /// impl Producer for Source {
    ///     fn pause_producing(&self) {}
    ///     fn resume_producing(&self) {}
    ///     fn stop_producing(&self) {}
    /// }
    ///
    /// let t = StringTransport::new();
    /// t.register_producer(Rc::new(Source), true);
    /// assert!(matches!(t.producer(), Some((_, true))));
    /// t.unregister_producer();
    /// assert!(t.producer().is_none());
    /// ```
    fn register_producer(&self, producer: Rc<dyn Producer>, streaming: bool);

    /// Forgets the producer.
    ///
    /// # Examples
    ///
    /// See [`register_producer`](Self::register_producer).
    fn unregister_producer(&self);

    /// Bytes queued and not yet taken by the socket.
    ///
    /// # Examples
    ///
    /// ```
    /// use ropewalk_reactor::testing::StringTransport;
    /// use ropewalk_reactor::Transport;
    ///
    /// let t = StringTransport::new();
    /// t.write(b"abc");
    /// // The test stub takes everything at once: nothing is ever queued.
    /// assert_eq!(t.write_buffer_len(), 0);
    /// ```
    fn write_buffer_len(&self) -> usize;

    /// Whether the connection is closed or closing.
    ///
    /// # Examples
    ///
    /// See [`lose_connection`](Self::lose_connection).
    fn is_closing(&self) -> bool;

    /// Relays everything this connection reads from now on to `to`, behind what `to` has
    /// queued, without passing it through this connection's protocol: its
    /// `data_received` and `eof_received` are no longer called (`connection_lost` still
    /// is). A port forwarder splices each side to the other.
    ///
    /// - **Zero copy.** Between two TCP or Unix connections of the reactor on Linux, the
    ///   bytes go through a pipe with `splice(2)`, never through user space. Elsewhere,
    ///   and when `to` is another kind of transport (TLS, a test stub), they are read into
    ///   the reactor's buffer and written to `to`.
    /// - **Back-pressure.** While `to`'s socket takes nothing, this connection stops
    ///   reading once the pipe (64 KiB) is full, or, when copying, once `to`'s write queue
    ///   passes its high-water mark: a slow reader never grows memory. `to`'s producer
    ///   slot holds this connection (replacing what was registered there).
    /// - **End of stream.** The peer's EOF here shuts down `to`'s sending side
    ///   ([`half_close`](Self::half_close)) once the bytes before it are sent; this
    ///   connection stays open for what `to`'s direction sends back, and closes when
    ///   both directions are shut.
    /// - **Closing.** When either connection closes, for whatever reason, the other one
    ///   is closed with [`lose_connection`](Self::lose_connection) (what it has queued
    ///   goes out first). Each one's `connection_lost` carries its own reason.
    ///
    /// # Errors
    ///
    /// `Unsupported` from a transport that cannot relay its reads (the default: TLS
    /// sessions, test stubs); `InvalidInput` for a splice to itself; `AlreadyExists`
    /// when this connection is already spliced. A closed connection returns `Ok` and
    /// does nothing, as every method does.
    ///
    /// # Examples
    ///
    /// Relay what a client sends to another transport (here a test stub, which is copied
    /// to; two connections would use `splice(2)`):
    ///
    /// ```
    /// use std::io::Write;
    /// use ropewalk_reactor::deferred::Failure;
    /// use ropewalk_reactor::testing::StringTransport;
    /// use ropewalk_reactor::{Address, Protocol, Reactor, Transport, TransportRef};
    ///
    /// struct Relay(TransportRef);
    /// impl Protocol for Relay {
    ///     fn connection_made(&mut self, transport: TransportRef) {
    ///         transport.splice_to(&self.0).expect("a TCP connection can relay");
    ///     }
    ///     fn data_received(&mut self, _: &[u8]) -> Result<(), Failure> {
    ///         unreachable!("a spliced connection's bytes skip its protocol")
    ///     }
    /// }
    ///
    /// let reactor = Reactor::new()?;
    /// let sink = StringTransport::new();
    /// let to: TransportRef = sink.clone();
    /// let port = reactor.listen_tcp("127.0.0.1:0".parse().unwrap(), move |_: &Address| {
    ///     Some(Relay(to.clone()))
    /// })?;
    /// let addr = port.local_addr().inet().unwrap();
    /// let client = std::thread::spawn(move || {
    ///     let mut s = std::net::TcpStream::connect(addr).unwrap();
    ///     s.write_all(b"hello, relay").unwrap();
    ///     s.shutdown(std::net::Shutdown::Write).unwrap();
    ///     s // kept open: only our sending side is shut
    /// });
    /// let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    /// while !sink.is_half_closed() && std::time::Instant::now() < deadline {
    ///     reactor.iterate(std::time::Duration::from_millis(10));
    /// }
    /// assert_eq!(sink.value(), b"hello, relay");
    /// assert!(sink.is_half_closed()); // the client's EOF, passed on
    /// drop(client.join().unwrap());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    fn splice_to(&self, to: &TransportRef) -> io::Result<()> {
        let _ = to;
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "this transport cannot relay its reads",
        ))
    }

    /// What [`splice_to`](Self::splice_to) needs to `splice(2)` into this transport's
    /// socket: `None` (copy into it with `write`) unless it is a plain stream connection
    /// of the reactor. A wrapper that passes its bytes through unchanged returns its
    /// inner transport's.
    #[doc(hidden)]
    fn splice_sink(&self) -> Option<crate::splice::SpliceSink> {
        None
    }

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

/// A protocol's handle on its transport: shared (`Rc`), so a protocol can keep it and hand
/// clones to timers, callbacks or other connections (a proxy writes to its peer's).
///
/// # Examples
///
/// ```
/// use std::cell::RefCell;
/// use std::rc::Rc;
/// use ropewalk_reactor::deferred::Failure;
/// use ropewalk_reactor::testing::StringTransport;
/// use ropewalk_reactor::{Protocol, TransportRef};
///
/// /// Remembers its transport so something else (a timer, a broadcast) can write later.
/// #[derive(Default)]
/// struct Member(Rc<RefCell<Option<TransportRef>>>);
/// impl Protocol for Member {
///     fn connection_made(&mut self, transport: TransportRef) {
///         *self.0.borrow_mut() = Some(transport);
///     }
///     fn data_received(&mut self, _: &[u8]) -> Result<(), Failure> { Ok(()) }
/// }
///
/// let mut member = Member::default();
/// let slot = member.0.clone();
/// let t = StringTransport::connect(&mut member);
/// let kept: TransportRef = slot.borrow().clone().unwrap();
/// kept.write(b"news");
/// assert_eq!(t.value(), b"news");
/// ```
pub type TransportRef = Rc<dyn Transport>;

/// Something that produces data for a transport (Twisted's `IPushProducer` /
/// `IPullProducer`). Its methods take `&self` because the transport calls them while the
/// producer may be busy writing: keep state in `Cell`s.
///
/// # Examples
///
/// A pull producer that writes a file-like source one chunk per `resume_producing`:
///
/// ```
/// use std::cell::{Cell, RefCell};
/// use std::rc::Rc;
/// use ropewalk_reactor::testing::StringTransport;
/// use ropewalk_reactor::{Producer, Transport, TransportRef};
///
/// struct Chunks { left: RefCell<Vec<&'static [u8]>>, to: TransportRef, stopped: Cell<bool> }
/// impl Producer for Chunks {
///     fn pause_producing(&self) {} // a pull producer is never paused
///     fn resume_producing(&self) {
///         match self.left.borrow_mut().pop() {
///             Some(chunk) => self.to.write(chunk),
///             None => { self.to.unregister_producer(); self.to.lose_connection(); }
///         }
///     }
///     fn stop_producing(&self) { self.stopped.set(true); }
/// }
///
/// let t = StringTransport::new();
/// let p = Rc::new(Chunks {
///     left: RefCell::new(vec![&b"two"[..], b"one,"]),
///     to: t.clone(),
///     stopped: Cell::new(false),
/// });
/// t.register_producer(p.clone(), false);
/// // The transport calls resume_producing each time its queue empties; by hand here:
/// for _ in 0..3 { p.resume_producing(); }
/// assert_eq!(t.value(), b"one,two");
/// assert!(t.is_disconnecting() && t.producer().is_none());
/// ```
pub trait Producer {
    /// Stop producing for now: the transport's queue is full.
    ///
    /// # Examples
    ///
    /// See [`TransportProducer`], which pauses a transport's reading.
    fn pause_producing(&self);
    /// Produce again (a pull producer: produce one more chunk).
    ///
    /// # Examples
    ///
    /// See [`Producer`].
    fn resume_producing(&self);
    /// Stop for good: the connection closed.
    ///
    /// # Examples
    ///
    /// See [`TransportProducer`], which then loses its own connection.
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
    ///
    /// # Examples
    ///
    /// ```
    /// use ropewalk_reactor::deferred::Failure;
    /// use ropewalk_reactor::testing::StringTransport;
    /// use ropewalk_reactor::{Protocol, TransportRef};
    ///
    /// struct Banner;
    /// impl Protocol for Banner {
    ///     fn connection_made(&mut self, transport: TransportRef) {
    ///         transport.write(b"220 ready\r\n");
    ///     }
    ///     fn data_received(&mut self, _: &[u8]) -> Result<(), Failure> { Ok(()) }
    /// }
    ///
    /// let t = StringTransport::connect(&mut Banner); // calls connection_made
    /// assert_eq!(t.value(), b"220 ready\r\n");
    /// ```
    fn connection_made(&mut self, transport: TransportRef) {
        let _ = transport;
    }

    /// Bytes arrived. An `Err` (or a panic) closes this connection, and that failure
    /// becomes the reason given to `connection_lost`.
    ///
    /// # Errors
    ///
    /// Whatever the protocol finds wrong with the data.
    ///
    /// # Examples
    ///
    /// ```
    /// use ropewalk_reactor::deferred::Failure;
    /// use ropewalk_reactor::Protocol;
    ///
    /// /// Accepts ASCII only.
    /// struct Ascii(Vec<u8>);
    /// impl Protocol for Ascii {
    ///     fn data_received(&mut self, data: &[u8]) -> Result<(), Failure> {
    ///         if !data.is_ascii() {
    ///             return Err(Failure::msg("not ASCII")); // closes the connection
    ///         }
    ///         self.0.extend_from_slice(data);
    ///         Ok(())
    ///     }
    /// }
    ///
    /// let mut p = Ascii(Vec::new());
    /// p.data_received(b"he").unwrap();
    /// p.data_received(b"llo").unwrap(); // chunks need not match the peer's writes
    /// assert_eq!(p.0, b"hello");
    /// assert!(p.data_received("é".as_bytes()).is_err());
    /// ```
    fn data_received(&mut self, data: &[u8]) -> Result<(), Failure>;

    /// The peer will send nothing more (it shut down its sending side). Return `true` to
    /// keep the connection open for writing (then close it with `lose_connection` when
    /// done); the default, `false`, closes it once everything queued is sent.
    ///
    /// # Examples
    ///
    /// ```
    /// use ropewalk_reactor::deferred::Failure;
    /// use ropewalk_reactor::testing::StringTransport;
    /// use ropewalk_reactor::{Protocol, TransportRef};
    ///
    /// /// Counts the bytes of the whole request; answers once the peer is done sending.
    /// #[derive(Default)]
    /// struct Count { n: usize, t: Option<TransportRef> }
    /// impl Protocol for Count {
    ///     fn connection_made(&mut self, t: TransportRef) { self.t = Some(t); }
    ///     fn data_received(&mut self, data: &[u8]) -> Result<(), Failure> {
    ///         self.n += data.len();
    ///         Ok(())
    ///     }
    ///     fn eof_received(&mut self) -> bool {
    ///         let t = self.t.as_ref().unwrap();
    ///         t.write(format!("{} bytes\n", self.n).as_bytes());
    ///         t.lose_connection();
    ///         true // we close it ourselves, after the answer
    ///     }
    /// }
    ///
    /// let mut p = Count::default();
    /// let t = StringTransport::connect(&mut p);
    /// p.data_received(b"abc").unwrap();
    /// assert!(p.eof_received());
    /// assert_eq!(t.value(), b"3 bytes\n");
    /// ```
    fn eof_received(&mut self) -> bool {
        false
    }

    /// The connection is gone: called exactly once, with the reason (a
    /// [`ConnectionError`], or the failure `data_received` returned).
    ///
    /// # Examples
    ///
    /// ```
    /// use ropewalk_reactor::deferred::Failure;
    /// use ropewalk_reactor::{ConnectionError, Protocol};
    ///
    /// #[derive(Default)]
    /// struct Session { clean: Option<bool> }
    /// impl Protocol for Session {
    ///     fn data_received(&mut self, _: &[u8]) -> Result<(), Failure> { Ok(()) }
    ///     fn connection_lost(&mut self, reason: Failure) {
    ///         let clean = reason.downcast_ref::<ConnectionError>().is_some_and(|e| e.is_clean());
    ///         self.clean = Some(clean);
    ///     }
    /// }
    ///
    /// let mut s = Session::default();
    /// s.connection_lost(Failure::new(ConnectionError::Done)); // as the reactor would
    /// assert_eq!(s.clean, Some(true));
    /// ```
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
    ///
    /// # Examples
    ///
    /// ```
    /// use ropewalk_reactor::{for_protocol, Address, Factory};
    /// # #[derive(Default)] struct Quiet;
    /// # impl ropewalk_reactor::Protocol for Quiet {
    /// #     fn data_received(&mut self, _: &[u8]) -> Result<(), ropewalk_reactor::deferred::Failure> { Ok(()) }
    /// # }
    ///
    /// let factory = for_protocol(Quiet::default);
    /// assert!(factory.build_protocol(&Address::Test).is_some());
    /// ```
    fn build_protocol(&self, peer: &Address) -> Option<Self::Protocol>;

    /// Called when a port starts listening (or a connect starts) with this factory.
    ///
    /// # Examples
    ///
    /// A factory that counts how many ports use it, as Twisted's `doStart`/`doStop` do:
    ///
    /// ```
    /// use std::cell::Cell;
    /// use ropewalk_reactor::{Address, Factory, ListenOptions, Reactor};
    /// # struct Quiet;
    /// # impl ropewalk_reactor::Protocol for Quiet {
    /// #     fn data_received(&mut self, _: &[u8]) -> Result<(), ropewalk_reactor::deferred::Failure> { Ok(()) }
    /// # }
    ///
    /// #[derive(Default)]
    /// struct Counted {
    ///     ports: std::rc::Rc<Cell<u32>>,
    /// }
    ///
    /// impl Factory for Counted {
    ///     type Protocol = Quiet;
    ///     fn build_protocol(&self, _: &Address) -> Option<Quiet> {
    ///         Some(Quiet)
    ///     }
    ///     fn start_factory(&self) {
    ///         self.ports.set(self.ports.get() + 1);
    ///     }
    ///     fn stop_factory(&self) {
    ///         self.ports.set(self.ports.get() - 1);
    ///     }
    /// }
    ///
    /// let reactor = Reactor::new()?;
    /// let factory = Counted::default();
    /// let ports = factory.ports.clone();
    /// let options = ListenOptions::default();
    /// let port = reactor.listen_tcp_factory("127.0.0.1:0".parse().unwrap(), factory, &options)?;
    /// assert_eq!(ports.get(), 1);
    /// port.stop_listening().wait().unwrap();
    /// assert_eq!(ports.get(), 0);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    fn start_factory(&self) {}

    /// Called when that port stops listening (or the connect ends). See
    /// [`start_factory`](Factory::start_factory) for an example of both.
    ///
    /// # Examples
    ///
    /// ```
    /// use ropewalk_reactor::{for_protocol, Factory};
    /// # #[derive(Default)] struct Quiet;
    /// # impl ropewalk_reactor::Protocol for Quiet {
    /// #     fn data_received(&mut self, _: &[u8]) -> Result<(), ropewalk_reactor::deferred::Failure> { Ok(()) }
    /// # }
    ///
    /// // A closure or `for_protocol` is a factory whose start and stop do nothing.
    /// let factory = for_protocol(Quiet::default);
    /// factory.start_factory();
    /// factory.stop_factory();
    /// ```
    fn stop_factory(&self) {}

    /// Called when a port has started listening with this factory (after
    /// [`start_factory`](Factory::start_factory)), with a handle on the port: a factory
    /// that closes its own ports later keeps it (the HTTP server's graceful drain stops
    /// listening this way, on whatever function opened the port). A factory that wraps
    /// another passes the call on, as it does `start_factory` and `stop_factory`. The
    /// default does nothing. A factory that keeps the handle holds the port (and the
    /// port holds the factory) until the port stops listening.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::cell::RefCell;
    /// use ropewalk_reactor::{Address, Factory, ListenOptions, ListeningPort, Reactor};
    /// # struct Quiet;
    /// # impl ropewalk_reactor::Protocol for Quiet {
    /// #     fn data_received(&mut self, _: &[u8]) -> Result<(), ropewalk_reactor::deferred::Failure> { Ok(()) }
    /// # }
    ///
    /// /// Knows its ports, to close them all at once.
    /// #[derive(Default)]
    /// struct Closable {
    ///     ports: std::rc::Rc<RefCell<Vec<ListeningPort>>>,
    /// }
    ///
    /// impl Factory for Closable {
    ///     type Protocol = Quiet;
    ///     fn build_protocol(&self, _: &Address) -> Option<Quiet> {
    ///         Some(Quiet)
    ///     }
    ///     fn port_listening(&self, port: &ListeningPort) {
    ///         self.ports.borrow_mut().push(port.clone());
    ///     }
    /// }
    ///
    /// let reactor = Reactor::new()?;
    /// let factory = Closable::default();
    /// let ports = factory.ports.clone();
    /// let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// let addr = listener.local_addr()?;
    /// reactor.adopt_tcp_listener_factory(listener, factory)?;
    /// for port in ports.borrow_mut().drain(..) {
    ///     port.stop_listening().wait().unwrap();
    /// }
    /// assert!(std::net::TcpStream::connect(addr).is_err());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    fn port_listening(&self, port: &ListeningPort) {
        let _ = port;
    }
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

/// What a [`ListeningPort`] handle reaches: a listener of the reactor's (`tcp.rs`).
pub(crate) trait Port {
    fn local(&self) -> Address;
    fn stop(&self);
}

/// A listening port (Twisted's `IListeningPort`). It listens until
/// [`stop_listening`](Self::stop_listening); dropping the handle does not stop it.
/// Clones are handles on the same port.
///
/// # Examples
///
/// ```
/// use ropewalk_reactor::deferred::Failure;
/// use ropewalk_reactor::{Address, Protocol, Reactor};
///
/// struct Quiet;
/// impl Protocol for Quiet {
///     fn data_received(&mut self, _: &[u8]) -> Result<(), Failure> { Ok(()) }
/// }
///
/// let reactor = Reactor::new()?;
/// // Port 0: the system picks a free port; the ListeningPort says which.
/// let port = reactor.listen_tcp("127.0.0.1:0".parse().unwrap(), |_: &Address| Some(Quiet))?;
/// let addr = port.local_addr().inet().unwrap();
/// assert!(std::net::TcpStream::connect(addr).is_ok());
///
/// port.stop_listening().wait().unwrap();
/// let refused = std::net::TcpStream::connect(addr).unwrap_err();
/// assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone)]
pub struct ListeningPort {
    port: Rc<dyn Port>,
}

impl ListeningPort {
    /// A handle on `port` (a listener of the reactor's).
    pub(crate) fn from_port(port: Rc<dyn Port>) -> ListeningPort {
        ListeningPort { port }
    }

    /// The address it listens on (with the real port when asked for port 0).
    ///
    /// # Examples
    ///
    /// ```
    /// # use ropewalk_reactor::{deferred::Failure, Address, Protocol, Reactor};
    /// # struct P;
    /// # impl Protocol for P { fn data_received(&mut self, _: &[u8]) -> Result<(), Failure> { Ok(()) } }
    /// let reactor = Reactor::new()?;
    /// let port = reactor.listen_tcp("127.0.0.1:0".parse().unwrap(), |_: &Address| Some(P))?;
    /// assert_ne!(port.local_addr().inet().unwrap().port(), 0);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn local_addr(&self) -> Address {
        self.port.local()
    }

    /// Stops listening: the socket is closed now (connections already accepted go on),
    /// and the returned Deferred has fired.
    ///
    /// # Examples
    ///
    /// ```
    /// # use ropewalk_reactor::{deferred::Failure, Address, Protocol, Reactor};
    /// # struct P;
    /// # impl Protocol for P { fn data_received(&mut self, _: &[u8]) -> Result<(), Failure> { Ok(()) } }
    /// let reactor = Reactor::new()?;
    /// let port = reactor.listen_tcp("127.0.0.1:0".parse().unwrap(), |_: &Address| Some(P))?;
    /// port.stop_listening().wait().unwrap();
    /// assert_eq!(reactor.stats().sources, 0);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn stop_listening(&self) -> Deferred<()> {
        self.port.stop();
        Deferred::succeed(())
    }
}

impl fmt::Debug for ListeningPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ListeningPort")
            .field("local_addr", &self.port.local())
            .finish()
    }
}
