//! TLS on rustls, as a transport: [`Reactor::listen_tls`] and [`Reactor::connect_tls`] run
//! any [`Protocol`] over TLS, unchanged (Twisted's `listenSSL` / `connectSSL`). The same
//! goes over Unix-domain sockets ([`Reactor::listen_tls_unix`],
//! [`Reactor::connect_tls_unix`]), on a listening socket made elsewhere
//! ([`Reactor::adopt_tls_listener_factory`]), and on every reactor of a group
//! ([`GroupListener::listen_tls`](crate::GroupListener::listen_tls)).
//!
//! A protocol's `connection_made` is called once the handshake has finished, and its
//! transport then behaves as a TCP one: `write` encrypts into the connection's queue, whose
//! high/low water marks pause and resume a registered producer (counting the ciphertext
//! queued); `lose_connection` sends `close_notify` after everything queued, then closes;
//! `abort_connection` closes at once; `half_close` sends `close_notify` and shuts down the
//! sending side. Writes made inside `data_received` (up to 16 KiB of them) go below
//! together when it returns, with what rustls sends itself (session tickets), so that an
//! answer and the `close_notify` after it leave in one `send` and one TCP segment.
//! `send_file` reads the file region a chunk (just under 64 KiB) at a time with `pread`
//! on the reactor's thread, and only as the connection drains: a file of any size costs
//! about two chunks of memory, counts toward the water marks as the bytes left to send of
//! it, and a read from a cold disk blocks the loop for one chunk's read. The peer's
//! `close_notify` is its EOF (`eof_received`, then a clean `connection_lost`); a peer
//! that closes its socket without one may be a truncation, and ends the connection with
//! [`ConnectionError::Lost`](crate::ConnectionError::Lost) (`UnexpectedEof`).
//!
//! Sessions resume by default with the builders' configurations (see [`TlsInfo::resumed`]):
//! every connection made with one client configuration, to a server whose configuration
//! (shared by all its reactors) remembers the session.
//!
//! A handshake that fails errbacks the connect Deferred with a [`TlsError`] that says why
//! (unknown issuer, name mismatch, expired, no common protocol, timeout, peer closed, not
//! TLS); on a server it closes the connection and is logged at debug level. The handshake
//! is bounded by [`TlsOptions::handshake_timeout`] (10 s by default), so a peer that sends
//! a ClientHello and stops holds nothing for long.
//!
//! Configurations come from rustls ([`rustls::ServerConfig`], [`rustls::ClientConfig`]), or
//! with secure defaults from [`TlsServerBuilder`] and [`TlsClientBuilder`].
//!
//! # Examples
//!
//! ```no_run
//! use std::time::Duration;
//! use ropewalk_reactor::deferred::Failure;
//! use ropewalk_reactor::tls::{TlsClientBuilder, TlsServerBuilder};
//! use ropewalk_reactor::{Address, Protocol, Reactor, TransportRef};
//!
//! struct Echo(Option<TransportRef>);
//! impl Protocol for Echo {
//!     fn connection_made(&mut self, t: TransportRef) { self.0 = Some(t); }
//!     fn data_received(&mut self, data: &[u8]) -> Result<(), Failure> {
//!         self.0.as_ref().unwrap().write(data);
//!         Ok(())
//!     }
//! }
//!
//! let reactor = Reactor::new()?;
//! let server = TlsServerBuilder::from_pem_files("cert.pem", "key.pem")?.build()?;
//! let port = reactor.listen_tls("127.0.0.1:0".parse()?, |_: &Address| Some(Echo(None)), server)?;
//!
//! let client = TlsClientBuilder::new().add_root_pem_file("ca.pem")?.build()?;
//! let echo = reactor
//!     .connect_tls(port.local_addr().inet().unwrap(), "localhost", |_: &Address| Some(Echo(None)), client)
//!     .wait()?;
//! echo.borrow().0.as_ref().unwrap().write(b"hello");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Implementation
//!
//! TLS sits between the socket's connection and the protocol, as a protocol below and a
//! transport above (`session.rs`), as Twisted's `TLSMemoryBIOProtocol` does: the socket's
//! connection (`connection.rs`) runs a `TlsProtocol` and does not know it carries TLS, so
//! the plain TCP path has no branch for it, and TLS works over every stream the reactor
//! connects (TCP, Unix sockets). Plaintext is copied once out of rustls, and ciphertext
//! once out of rustls, each into a per-thread buffer kept between calls, because neither
//! rustls nor the connection below may stay borrowed while the protocol runs.

mod config;
mod outbox;
mod session;
mod starttls;

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, ServerConfig, ServerConnection};

use ropewalk_deferred::Deferred;

use crate::protocol::{Address, Factory, ListeningPort, Protocol};
use crate::reactor::{Reactor, ReactorCore};
use crate::tcp::{Connected, ListenOptions, Target};

pub use self::config::{TlsClientBuilder, TlsServerBuilder};
use self::session::{TlsProtocol, TlsSession};
pub use self::starttls::{StartTlsFactory, StartTlsProtocol};
pub use crate::net::TlsStream;
pub use crate::tls_error::{TlsConfigError, TlsError};
pub use crate::tls_info::TlsInfo;
pub use crate::tls_start::{StartTls, DEFAULT_HANDSHAKE_TIMEOUT};
/// The rustls this module is built on, for its configuration types.
pub use rustls;

/// The default of [`TlsOptions::connect_timeout`].
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// How TLS connections are made.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use ropewalk_reactor::tls::TlsOptions;
///
/// let opts = TlsOptions { handshake_timeout: Duration::from_secs(5), ..TlsOptions::default() };
/// assert_eq!(opts.connect_timeout, Duration::from_secs(30));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsOptions {
    /// How long a handshake may take, from the TCP connection to its end (default 10 s,
    /// as nginx's `ssl_handshake_timeout`... is 60 s: 10 s is ample on any network and
    /// frees a slot held by a silent peer six times sooner). Past it the connection is
    /// aborted with [`TlsError::HandshakeTimeout`].
    pub handshake_timeout: Duration,
    /// How long a client's TCP connect may take (default 30 s), as `connect_tcp`'s
    /// timeout.
    pub connect_timeout: Duration,
    /// The listening socket's options (servers only).
    pub listen: ListenOptions,
}

impl Default for TlsOptions {
    fn default() -> Self {
        TlsOptions {
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            listen: ListenOptions::default(),
        }
    }
}

/// A server's factory: TLS around each protocol of the user's factory.
struct ServerFactory<F> {
    inner: F,
    config: Arc<ServerConfig>,
    reactor: std::rc::Weak<ReactorCore>,
    handshake_timeout: Duration,
}

impl<F: Factory> Factory for ServerFactory<F> {
    type Protocol = TlsProtocol<F::Protocol>;

    fn build_protocol(&self, peer: &Address) -> Option<Self::Protocol> {
        let inner = self.inner.build_protocol(peer)?;
        let reactor = Reactor {
            inner: self.reactor.upgrade()?,
        };
        let tls = match ServerConnection::new(self.config.clone()) {
            Ok(c) => c,
            Err(e) => {
                log::error!("cannot start a TLS session for {peer}: {e}");
                return None;
            }
        };
        let session = TlsSession::new(&reactor, tls, self.handshake_timeout);
        session.set_inner(inner);
        Some(TlsProtocol(session))
    }

    fn start_factory(&self) {
        self.inner.start_factory();
    }

    fn stop_factory(&self) {
        self.inner.stop_factory();
    }

    fn port_listening(&self, port: &ListeningPort) {
        self.inner.port_listening(port);
    }
}

/// A client's factory: the one session made for this connect, around the user's protocol.
struct ClientFactory<F: Factory> {
    inner: F,
    session: std::cell::RefCell<Option<Rc<TlsSession<F::Protocol>>>>,
}

impl<F: Factory> Factory for ClientFactory<F> {
    type Protocol = TlsProtocol<F::Protocol>;

    fn build_protocol(&self, peer: &Address) -> Option<Self::Protocol> {
        let inner = self.inner.build_protocol(peer)?;
        let session = self.session.borrow_mut().take()?;
        session.set_inner(inner);
        Some(TlsProtocol(session))
    }

    fn start_factory(&self) {
        self.inner.start_factory();
    }

    fn stop_factory(&self) {
        self.inner.stop_factory();
    }
}

impl Reactor {
    /// Listens for TLS connections on `addr` and runs a protocol from `factory` on each,
    /// with `config` (Twisted's `listenSSL`); see [the `tls` module](crate::tls).
    ///
    /// # Errors
    ///
    /// As [`listen_tcp`](Self::listen_tcp).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use ropewalk_reactor::{deferred::Failure, Address, Protocol, Reactor};
    /// # #[derive(Debug)] struct P;
    /// # impl Protocol for P { fn data_received(&mut self, _: &[u8]) -> Result<(), Failure> { Ok(()) } }
    /// use ropewalk_reactor::tls::TlsServerBuilder;
    ///
    /// let reactor = Reactor::new()?;
    /// let config = TlsServerBuilder::from_pem_files("cert.pem", "key.pem")?.build()?;
    /// let port = reactor.listen_tls("127.0.0.1:8443".parse()?, |_: &Address| Some(P), config)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn listen_tls<P: Protocol>(
        &self,
        addr: SocketAddr,
        factory: impl Fn(&Address) -> Option<P> + 'static,
        config: Arc<ServerConfig>,
    ) -> io::Result<ListeningPort> {
        self.listen_tls_factory(addr, factory, config, &TlsOptions::default())
    }

    /// As [`listen_tls`](Self::listen_tls), with options (the handshake timeout, the
    /// listening socket's options).
    ///
    /// # Errors
    ///
    /// As [`listen_tcp`](Self::listen_tcp).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use ropewalk_reactor::{deferred::Failure, Address, Protocol, Reactor};
    /// # #[derive(Debug)] struct P;
    /// # impl Protocol for P { fn data_received(&mut self, _: &[u8]) -> Result<(), Failure> { Ok(()) } }
    /// use std::time::Duration;
    /// use ropewalk_reactor::tls::{TlsOptions, TlsServerBuilder};
    ///
    /// let reactor = Reactor::new()?;
    /// let config = TlsServerBuilder::from_pem_files("cert.pem", "key.pem")?.build()?;
    /// let opts = TlsOptions { handshake_timeout: Duration::from_secs(3), ..TlsOptions::default() };
    /// let port = reactor.listen_tls_with("127.0.0.1:8443".parse()?, |_: &Address| Some(P), config, &opts)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn listen_tls_with<P: Protocol>(
        &self,
        addr: SocketAddr,
        factory: impl Fn(&Address) -> Option<P> + 'static,
        config: Arc<ServerConfig>,
        options: &TlsOptions,
    ) -> io::Result<ListeningPort> {
        self.listen_tls_factory(addr, factory, config, options)
    }

    /// As [`listen_tls_with`](Self::listen_tls_with), for a [`Factory`] value (one with
    /// start and stop hooks, such as the HTTP server) rather than a closure.
    ///
    /// # Errors
    ///
    /// As [`listen_tcp`](Self::listen_tcp).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use ropewalk_reactor::{deferred::Failure, Address, Protocol, Reactor, for_protocol};
    /// # #[derive(Debug, Default)] struct P;
    /// # impl Protocol for P { fn data_received(&mut self, _: &[u8]) -> Result<(), Failure> { Ok(()) } }
    /// use ropewalk_reactor::tls::{TlsOptions, TlsServerBuilder};
    ///
    /// let reactor = Reactor::new()?;
    /// let config = TlsServerBuilder::from_pem_files("cert.pem", "key.pem")?.build()?;
    /// let factory = for_protocol(P::default);
    /// let port = reactor.listen_tls_factory("127.0.0.1:8443".parse()?, factory, config, &TlsOptions::default())?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn listen_tls_factory<F: Factory>(
        &self,
        addr: SocketAddr,
        factory: F,
        config: Arc<ServerConfig>,
        options: &TlsOptions,
    ) -> io::Result<ListeningPort> {
        let factory = self.tls_server_factory(factory, config, options);
        self.listen_tcp_factory(addr, factory, &options.listen)
    }

    /// TLS with `config` around each protocol of `factory`.
    pub(crate) fn tls_server_factory<F: Factory>(
        &self,
        factory: F,
        config: Arc<ServerConfig>,
        options: &TlsOptions,
    ) -> impl Factory<Protocol = TlsProtocol<F::Protocol>> {
        ServerFactory {
            inner: factory,
            config,
            reactor: Rc::downgrade(&self.inner),
            handshake_timeout: options.handshake_timeout,
        }
    }

    /// As [`listen_tls_factory`](Self::listen_tls_factory), on a TCP listening socket made
    /// elsewhere (inherited from systemd or a parent, see [`activation`](crate::activation),
    /// or bound by hand), as [`adopt_tcp_listener`](Self::adopt_tcp_listener) does for
    /// TCP. It is made non-blocking; [`TlsOptions::listen`] does not apply.
    ///
    /// # Errors
    ///
    /// The system error if it cannot be made non-blocking or registered.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use ropewalk_reactor::{deferred::Failure, for_protocol, Protocol, Reactor};
    /// # #[derive(Default)] struct P;
    /// # impl Protocol for P { fn data_received(&mut self, _: &[u8]) -> Result<(), Failure> { Ok(()) } }
    /// use ropewalk_reactor::tls::{TlsOptions, TlsServerBuilder};
    ///
    /// let reactor = Reactor::new()?;
    /// let config = TlsServerBuilder::from_pem_files("cert.pem", "key.pem")?.build()?;
    /// let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// let port = reactor.adopt_tls_listener_factory(listener, for_protocol(P::default), config, &TlsOptions::default())?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn adopt_tls_listener_factory<F: Factory>(
        &self,
        listener: std::net::TcpListener,
        factory: F,
        config: Arc<ServerConfig>,
        options: &TlsOptions,
    ) -> io::Result<ListeningPort> {
        let factory = self.tls_server_factory(factory, config, options);
        self.adopt_tcp_listener_factory(listener, factory)
    }

    /// Listens for TLS connections on a Unix-domain stream socket at `path` (which must
    /// not exist), as [`listen_unix`](Self::listen_unix) does in clear, and runs a protocol
    /// from `factory` on each, with `config`.
    ///
    /// # Errors
    ///
    /// The system error if the path cannot be bound.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use ropewalk_reactor::{deferred::Failure, Address, Protocol, Reactor};
    /// # #[derive(Debug)] struct P;
    /// # impl Protocol for P { fn data_received(&mut self, _: &[u8]) -> Result<(), Failure> { Ok(()) } }
    /// use ropewalk_reactor::tls::TlsServerBuilder;
    ///
    /// let reactor = Reactor::new()?;
    /// let config = TlsServerBuilder::from_pem_files("cert.pem", "key.pem")?.build()?;
    /// let port = reactor.listen_tls_unix("/run/app/tls.sock", |_: &Address| Some(P), config)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn listen_tls_unix<P: Protocol>(
        &self,
        path: impl AsRef<Path>,
        factory: impl Fn(&Address) -> Option<P> + 'static,
        config: Arc<ServerConfig>,
    ) -> io::Result<ListeningPort> {
        self.listen_tls_unix_factory(path, factory, config, &TlsOptions::default())
    }

    /// As [`listen_tls_unix`](Self::listen_tls_unix), for a [`Factory`] value and with
    /// options (the handshake timeout; [`TlsOptions::listen`] does not apply).
    ///
    /// # Errors
    ///
    /// The system error if the path cannot be bound.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use ropewalk_reactor::{deferred::Failure, for_protocol, Protocol, Reactor};
    /// # #[derive(Default)] struct P;
    /// # impl Protocol for P { fn data_received(&mut self, _: &[u8]) -> Result<(), Failure> { Ok(()) } }
    /// use ropewalk_reactor::tls::{TlsOptions, TlsServerBuilder};
    ///
    /// let reactor = Reactor::new()?;
    /// let config = TlsServerBuilder::from_pem_files("cert.pem", "key.pem")?.build()?;
    /// let port = reactor.listen_tls_unix_factory("/run/app/tls.sock", for_protocol(P::default), config, &TlsOptions::default())?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn listen_tls_unix_factory<F: Factory>(
        &self,
        path: impl AsRef<Path>,
        factory: F,
        config: Arc<ServerConfig>,
        options: &TlsOptions,
    ) -> io::Result<ListeningPort> {
        let factory = self.tls_server_factory(factory, config, options);
        self.listen_unix_factory(path, factory)
    }

    /// Connects to the Unix-domain socket at `path`, makes a TLS handshake with the server
    /// named `server_name` (its certificate must be valid for that name), and runs a
    /// protocol from `factory`, as [`connect_tls`](Self::connect_tls) does over TCP.
    ///
    /// Errors are the [`ConnectionError`](crate::ConnectionError)s of
    /// [`connect_unix`](Self::connect_unix), or a [`TlsError`].
    ///
    /// # Examples
    ///
    /// ```
    /// # use ropewalk_reactor::{deferred::Failure, Address, ConnectionError, Protocol, Reactor};
    /// # #[derive(Debug)] struct P;
    /// # impl Protocol for P { fn data_received(&mut self, _: &[u8]) -> Result<(), Failure> { Ok(()) } }
    /// use ropewalk_reactor::tls::TlsClientBuilder;
    ///
    /// let reactor = Reactor::new()?;
    /// let config = TlsClientBuilder::new().build()?;
    /// let nowhere = std::env::temp_dir().join("ropewalk-doc-no-tls.sock");
    /// let d = reactor.connect_tls_unix(&nowhere, "localhost", |_: &Address| Some(P), config);
    /// assert!(matches!(d.wait().unwrap_err().downcast_ref(), Some(ConnectionError::Refused(_))));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn connect_tls_unix<P: Protocol>(
        &self,
        path: impl AsRef<Path>,
        server_name: &str,
        factory: impl Fn(&Address) -> Option<P> + 'static,
        config: Arc<ClientConfig>,
    ) -> Deferred<Connected<P>> {
        self.connect_tls_unix_factory(path, server_name, factory, config, &TlsOptions::default())
    }

    /// As [`connect_tls_unix`](Self::connect_tls_unix), for a [`Factory`] value and with
    /// options (the handshake timeout; the connect of a Unix socket does not wait).
    ///
    /// # Examples
    ///
    /// ```
    /// # use ropewalk_reactor::{deferred::Failure, for_protocol, Protocol, Reactor};
    /// # #[derive(Debug, Default)] struct P;
    /// # impl Protocol for P { fn data_received(&mut self, _: &[u8]) -> Result<(), Failure> { Ok(()) } }
    /// use ropewalk_reactor::tls::{TlsClientBuilder, TlsError, TlsOptions};
    ///
    /// let reactor = Reactor::new()?;
    /// let config = TlsClientBuilder::new().build()?;
    /// let d = reactor.connect_tls_unix_factory("/nowhere.sock", "not a name!", for_protocol(P::default), config, &TlsOptions::default());
    /// assert!(matches!(d.wait().unwrap_err().downcast_ref(), Some(TlsError::InvalidServerName(_))));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn connect_tls_unix_factory<F: Factory>(
        &self,
        path: impl AsRef<Path>,
        server_name: &str,
        factory: F,
        config: Arc<ClientConfig>,
        options: &TlsOptions,
    ) -> Deferred<Connected<F::Protocol>> {
        match self.tls_client(server_name, factory, config, options) {
            Ok((factory, handshake)) => self
                .connect_unix_factory(path, factory)
                .add_callback(move |_tls| handshake),
            Err(d) => d,
        }
    }

    /// Connects to `target` over TCP, makes a TLS handshake with the server named
    /// `server_name` (its certificate must be valid for that name; it is also sent as SNI,
    /// unless it is an IP address), and runs a protocol from `factory` on the connection
    /// (Twisted's `connectSSL`). The Deferred fires with the protocol once the handshake
    /// has finished, after its `connection_made`.
    ///
    /// Errors are the [`ConnectionError`](crate::ConnectionError)s of
    /// [`connect_tcp`](Self::connect_tcp), or a [`TlsError`]. Cancelling the Deferred
    /// abandons the attempt.
    ///
    /// # Examples
    ///
    /// ```
    /// # use ropewalk_reactor::{deferred::Failure, Address, Protocol, Reactor};
    /// # #[derive(Debug)] struct P;
    /// # impl Protocol for P { fn data_received(&mut self, _: &[u8]) -> Result<(), Failure> { Ok(()) } }
    /// use ropewalk_reactor::tls::{TlsClientBuilder, TlsError};
    ///
    /// let reactor = Reactor::new()?;
    /// let config = TlsClientBuilder::new().build()?;
    /// let d = reactor.connect_tls("127.0.0.1:1", "not a name!", |_: &Address| Some(P), config);
    /// let f = d.wait().unwrap_err();
    /// assert!(matches!(f.downcast_ref(), Some(TlsError::InvalidServerName(_))));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn connect_tls<P: Protocol>(
        &self,
        target: impl Into<Target>,
        server_name: &str,
        factory: impl Fn(&Address) -> Option<P> + 'static,
        config: Arc<ClientConfig>,
    ) -> Deferred<Connected<P>> {
        self.connect_tls_factory(target, server_name, factory, config, &TlsOptions::default())
    }

    /// As [`connect_tls`](Self::connect_tls), with options (the connect and handshake
    /// timeouts).
    ///
    /// # Examples
    ///
    /// ```
    /// # use ropewalk_reactor::{deferred::Failure, Address, Protocol, Reactor, ConnectionError};
    /// # #[derive(Debug)] struct P;
    /// # impl Protocol for P { fn data_received(&mut self, _: &[u8]) -> Result<(), Failure> { Ok(()) } }
    /// use std::time::Duration;
    /// use ropewalk_reactor::tls::{TlsClientBuilder, TlsOptions};
    ///
    /// let reactor = Reactor::new()?;
    /// let free = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    /// let opts = TlsOptions { connect_timeout: Duration::from_secs(2), ..TlsOptions::default() };
    /// let config = TlsClientBuilder::new().build()?;
    /// let d = reactor.connect_tls_with(free, "localhost", |_: &Address| Some(P), config, &opts);
    /// // Nothing listens there: refused before any TLS.
    /// assert!(matches!(d.wait().unwrap_err().downcast_ref(), Some(ConnectionError::Refused(_))));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn connect_tls_with<P: Protocol>(
        &self,
        target: impl Into<Target>,
        server_name: &str,
        factory: impl Fn(&Address) -> Option<P> + 'static,
        config: Arc<ClientConfig>,
        options: &TlsOptions,
    ) -> Deferred<Connected<P>> {
        self.connect_tls_factory(target, server_name, factory, config, options)
    }

    /// As [`connect_tls_with`](Self::connect_tls_with), for a [`Factory`] value (one with
    /// start and stop hooks) rather than a closure.
    ///
    /// # Examples
    ///
    /// ```
    /// # use ropewalk_reactor::{deferred::Failure, Protocol, Reactor, ConnectionError, for_protocol};
    /// # #[derive(Debug, Default)] struct P;
    /// # impl Protocol for P { fn data_received(&mut self, _: &[u8]) -> Result<(), Failure> { Ok(()) } }
    /// use ropewalk_reactor::tls::{TlsClientBuilder, TlsOptions};
    ///
    /// let reactor = Reactor::new()?;
    /// let free = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    /// let config = TlsClientBuilder::new().build()?;
    /// let d = reactor.connect_tls_factory(free, "localhost", for_protocol(P::default), config, &TlsOptions::default());
    /// assert!(matches!(d.wait().unwrap_err().downcast_ref(), Some(ConnectionError::Refused(_))));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn connect_tls_factory<F: Factory>(
        &self,
        target: impl Into<Target>,
        server_name: &str,
        factory: F,
        config: Arc<ClientConfig>,
        options: &TlsOptions,
    ) -> Deferred<Connected<F::Protocol>> {
        match self.tls_client(server_name, factory, config, options) {
            Ok((factory, handshake)) => self
                .connect_tcp_factory(target, factory, options.connect_timeout)
                .add_callback(move |_tls| handshake),
            Err(d) => d,
        }
    }

    /// The factory of a TLS client's one connection, and the Deferred its handshake fires;
    /// or the failed Deferred of a bad name or configuration.
    #[allow(clippy::type_complexity)]
    fn tls_client<F: Factory>(
        &self,
        server_name: &str,
        factory: F,
        config: Arc<ClientConfig>,
        options: &TlsOptions,
    ) -> Result<
        (ClientFactory<F>, Deferred<Connected<F::Protocol>>),
        Deferred<Connected<F::Protocol>>,
    > {
        let Ok(name) = ServerName::try_from(server_name.to_string()) else {
            return Err(Deferred::fail(TlsError::InvalidServerName(
                server_name.to_string(),
            )));
        };
        let tls = match ClientConnection::new(config, name) {
            Ok(c) => c,
            Err(e) => return Err(Deferred::fail(TlsError::from(e))),
        };
        let session = TlsSession::<F::Protocol>::new(self, tls, options.handshake_timeout);
        let weak = Rc::downgrade(&session);
        let (handshake, resolver) = Deferred::with_canceller(move || {
            if let Some(s) = weak.upgrade() {
                s.abort();
            }
            None
        });
        session.set_resolver(resolver);
        let factory = ClientFactory {
            inner: factory,
            session: std::cell::RefCell::new(Some(session)),
        };
        Ok((factory, handshake))
    }
}
