//! TLS started on a live connection (SMTP's and IMAP's STARTTLS): [`StartTlsFactory`] and
//! [`StartTls`](crate::tls::StartTls).
//!
//! A connection made through a [`StartTlsFactory`] begins in clear: its protocol reads and
//! writes plain bytes through a transport ([`StartTlsLink`]) that passes them straight to
//! the socket's connection. [`Transport::start_tls`] switches it: what was written before
//! goes out first, in clear; the handshake follows; from then on every write is encrypted
//! and every byte read is decrypted, through the same transport the protocol already
//! holds. Connections made without it (plain `listen_tcp`) keep the TCP path untouched,
//! and their `start_tls` fails with [`TlsError::StartTlsUnsupported`].

use std::cell::RefCell;
use std::fmt;
use std::io;
use std::rc::{Rc, Weak};
use std::time::Duration;

use ropewalk_deferred::{Deferred, Failure};

use super::session::TlsSession;
use crate::protocol::{Address, Factory, Producer, Protocol, Transport, TransportRef};
use crate::reactor::{Reactor, ReactorCore};
use crate::tls_error::TlsError;
use crate::tls_start::StartTls;

/// The transport of a protocol made by a [`StartTlsFactory`]: in clear, then through TLS
/// once [`start_tls`](Transport::start_tls) was called.
pub(crate) struct StartTlsLink<P: Protocol> {
    this: Weak<StartTlsLink<P>>,
    reactor: Weak<ReactorCore>,
    lower: RefCell<Option<TransportRef>>,
    inner: Rc<RefCell<P>>,
    session: RefCell<Option<Rc<TlsSession<P>>>>,
}

impl<P: Protocol> StartTlsLink<P> {
    /// Where the protocol's calls go: TLS once started, else the connection below.
    fn to(&self) -> Option<TransportRef> {
        if let Some(s) = self.session.borrow().as_ref() {
            return Some(s.clone() as TransportRef);
        }
        self.lower.borrow().clone()
    }

    fn session(&self) -> Option<Rc<TlsSession<P>>> {
        self.session.borrow().clone()
    }
}

impl<P: Protocol> Transport for StartTlsLink<P> {
    fn write(&self, data: &[u8]) {
        if let Some(t) = self.to() {
            t.write(data);
        }
    }

    fn write_vectored(&self, bufs: &[&[u8]]) {
        if let Some(t) = self.to() {
            t.write_vectored(bufs);
        }
    }

    fn send_file(&self, file: Rc<std::fs::File>, offset: u64, len: u64) {
        if let Some(t) = self.to() {
            t.send_file(file, offset, len);
        }
    }

    fn lose_connection(&self) {
        if let Some(t) = self.to() {
            t.lose_connection();
        }
    }

    fn abort_connection(&self) {
        if let Some(t) = self.to() {
            t.abort_connection();
        }
    }

    fn half_close(&self) {
        if let Some(t) = self.to() {
            t.half_close();
        }
    }

    fn peer_addr(&self) -> Address {
        self.to().map_or(Address::Test, |t| t.peer_addr())
    }

    fn local_addr(&self) -> Address {
        self.to().map_or(Address::Test, |t| t.local_addr())
    }

    fn set_nodelay(&self, on: bool) -> io::Result<()> {
        self.to().map_or(Ok(()), |t| t.set_nodelay(on))
    }

    fn set_keepalive(&self, idle: Option<Duration>) -> io::Result<()> {
        self.to().map_or(Ok(()), |t| t.set_keepalive(idle))
    }

    fn pause_reading(&self) {
        if let Some(t) = self.to() {
            t.pause_reading();
        }
    }

    fn resume_reading(&self) {
        if let Some(t) = self.to() {
            t.resume_reading();
        }
    }

    fn register_producer(&self, producer: Rc<dyn Producer>, streaming: bool) {
        match self.to() {
            Some(t) => t.register_producer(producer, streaming),
            None => producer.stop_producing(),
        }
    }

    fn unregister_producer(&self) {
        if let Some(t) = self.to() {
            t.unregister_producer();
        }
    }

    fn write_buffer_len(&self) -> usize {
        self.to().map_or(0, |t| t.write_buffer_len())
    }

    fn is_closing(&self) -> bool {
        self.to().is_none_or(|t| t.is_closing())
    }

    fn tls_info(&self) -> Option<super::TlsInfo> {
        self.session().and_then(|s| s.tls_info())
    }

    fn start_tls(&self, tls: StartTls) -> Deferred<()> {
        if self.session.borrow().is_some() {
            return Deferred::fail(TlsError::AlreadyStarted);
        }
        let (Some(lower), Some(inner)) = (
            self.lower.borrow().clone(),
            self.reactor.upgrade().map(|inner| Reactor { inner }),
        ) else {
            return Deferred::fail(crate::ConnectionError::Done);
        };
        if lower.is_closing() {
            return Deferred::fail(crate::ConnectionError::Done);
        }
        let (conn, timeout) = match tls.connection() {
            Ok(c) => c,
            Err(e) => return Deferred::fail(e),
        };
        let session = TlsSession::new(&inner, conn, timeout);
        let weak = Rc::downgrade(&session);
        let (d, resolver) = Deferred::with_canceller(move || {
            if let Some(s) = weak.upgrade() {
                s.abort();
            }
            None
        });
        session.set_started(self.inner.clone(), resolver);
        *self.session.borrow_mut() = Some(session.clone());
        // What was written before is queued below already: the handshake follows it.
        session.lower_made(lower);
        d
    }
}

/// The protocol a [`StartTlsFactory`] runs on each connection: the user's protocol,
/// in clear until [`Transport::start_tls`], then through TLS.
///
/// # Examples
///
/// See [`StartTlsFactory`].
pub struct StartTlsProtocol<P: Protocol>(Rc<StartTlsLink<P>>);

impl<P: Protocol> StartTlsProtocol<P> {
    /// The user's protocol.
    ///
    /// # Examples
    ///
    /// See [`StartTlsFactory`].
    pub fn protocol(&self) -> Rc<RefCell<P>> {
        self.0.inner.clone()
    }
}

impl<P: Protocol> fmt::Debug for StartTlsProtocol<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StartTlsProtocol")
            .field("started", &self.0.session.borrow().is_some())
            .finish()
    }
}

impl<P: Protocol> Protocol for StartTlsProtocol<P> {
    fn connection_made(&mut self, transport: TransportRef) {
        *self.0.lower.borrow_mut() = Some(transport);
        let Some(link) = self.0.this.upgrade() else {
            return;
        };
        self.0.inner.borrow_mut().connection_made(link);
    }

    fn data_received(&mut self, data: &[u8]) -> Result<(), Failure> {
        match self.0.session() {
            Some(s) => s.receive(data),
            None => self.0.inner.borrow_mut().data_received(data),
        }
    }

    fn eof_received(&mut self) -> bool {
        match self.0.session() {
            Some(s) => s.lower_eof(),
            None => self.0.inner.borrow_mut().eof_received(),
        }
    }

    fn connection_lost(&mut self, reason: Failure) {
        self.0.lower.borrow_mut().take();
        match self.0.session.borrow_mut().take() {
            Some(s) => s.lower_lost(reason),
            None => self.0.inner.borrow_mut().connection_lost(reason),
        }
    }
}

/// A factory whose connections can switch to TLS with [`Transport::start_tls`] (Twisted's
/// TLS-capable transports): wrap the factory given to `listen_tcp` or `connect_tcp`.
///
/// # Examples
///
/// ```
/// use ropewalk_reactor::deferred::Failure;
/// use ropewalk_reactor::tls::StartTlsFactory;
/// use ropewalk_reactor::{Address, Protocol, Reactor, TransportRef};
///
/// struct Smtp(Option<TransportRef>);
/// impl Protocol for Smtp {
///     fn connection_made(&mut self, t: TransportRef) {
///         t.write(b"220 ready\r\n");
///         self.0 = Some(t);
///     }
///     fn data_received(&mut self, _line: &[u8]) -> Result<(), Failure> {
///         // On "STARTTLS": answer in clear, then
///         // self.0.as_ref().unwrap().start_tls(StartTls::server(config));
///         Ok(())
///     }
/// }
///
/// let reactor = Reactor::new()?;
/// let factory = StartTlsFactory::new(&reactor, |_: &Address| Some(Smtp(None)));
/// let options = ropewalk_reactor::ListenOptions::default();
/// let port = reactor.listen_tcp_factory("127.0.0.1:0".parse().unwrap(), factory, &options)?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct StartTlsFactory<F> {
    inner: F,
    reactor: Weak<ReactorCore>,
}

impl<F: Factory> StartTlsFactory<F> {
    /// Wraps `factory`; connections run on `reactor`.
    ///
    /// # Examples
    ///
    /// See the type.
    pub fn new(reactor: &Reactor, factory: F) -> StartTlsFactory<F> {
        StartTlsFactory {
            inner: factory,
            reactor: Rc::downgrade(&reactor.inner),
        }
    }
}

impl<F> fmt::Debug for StartTlsFactory<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StartTlsFactory").finish_non_exhaustive()
    }
}

impl<F: Factory> Factory for StartTlsFactory<F> {
    type Protocol = StartTlsProtocol<F::Protocol>;

    fn build_protocol(&self, peer: &Address) -> Option<Self::Protocol> {
        let inner = Rc::new(RefCell::new(self.inner.build_protocol(peer)?));
        Some(StartTlsProtocol(Rc::new_cyclic(|this| StartTlsLink {
            this: this.clone(),
            reactor: self.reactor.clone(),
            lower: RefCell::new(None),
            inner,
            session: RefCell::new(None),
        })))
    }

    fn start_factory(&self) {
        self.inner.start_factory();
    }

    fn stop_factory(&self) {
        self.inner.stop_factory();
    }

    fn port_listening(&self, port: &crate::protocol::ListeningPort) {
        self.inner.port_listening(port);
    }
}
