//! Listening and connecting: TCP and Unix-domain stream sockets with [`Factory`]s.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::rc::{Rc, Weak};
use std::time::Duration;

use ropewalk_deferred::{Deferred, Failure, Resolver};

use crate::connection::{Conn, Known, StreamSocket};
use crate::log_limit::LogLimiter;
use crate::protocol::{Address, ConnectionError, Factory, Protocol};
use crate::reactor::{IoHandler, Reactor, ReactorCore};
use crate::slab::Key;
use crate::sys::{Interest, PollMode, Ready};
use crate::time::{Clock, DelayedCall};

mod happy_eyeballs;

/// Most connections accepted in one readiness event.
const ACCEPTS_PER_EVENT: usize = 128;

/// How long accepting pauses when the process runs out of file descriptors.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// At most one warning per listener in this time when accepts keep running out of
/// descriptors (the back-off retries ten times a second).
const WARN_INTERVAL: Duration = Duration::from_secs(1);

/// How a listening socket is set up.
///
/// # Examples
///
/// ```
/// use ropewalk_reactor::ListenOptions;
///
/// let opts = ListenOptions { backlog: 128, ..ListenOptions::default() };
/// assert!(!opts.reuse_port);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenOptions {
    /// The kernel's queue of connections not yet accepted (default 1024; the kernel caps
    /// it at `net.core.somaxconn`).
    pub backlog: i32,
    /// `SO_REUSEPORT`: several sockets (one per reactor) may listen on the same port, and
    /// the kernel spreads connections among them (default off).
    pub reuse_port: bool,
    /// `TCP_NODELAY` (Nagle's algorithm off) on the listening socket, which every
    /// connection accepted on it inherits (on Linux): a protocol that turns it on for its
    /// connection (`Transport::set_nodelay(true)`, as the HTTP server does) then costs no
    /// system call per connection (default off).
    pub nodelay: bool,
}

impl Default for ListenOptions {
    fn default() -> Self {
        ListenOptions {
            backlog: 1024,
            reuse_port: false,
            nodelay: false,
        }
    }
}

/// Where to connect: a socket address, or a `"host:port"` name resolved on the worker
/// pool.
///
/// It converts from a [`SocketAddr`], a `"host:port"` string (a literal address such as
/// `"127.0.0.1:80"` or `"[::1]:80"` becomes [`Target::Addr`] without any lookup), and a
/// `(host, port)` pair, whose host may be a name or a literal IPv4 or IPv6 address.
///
/// # Examples
///
/// ```
/// use std::net::{Ipv6Addr, SocketAddr};
/// use ropewalk_reactor::Target;
///
/// let t: Target = "localhost:8080".into();
/// assert_eq!(t.to_string(), "localhost:8080");
/// let t: Target = "127.0.0.1:80".parse::<SocketAddr>().unwrap().into();
/// assert!(matches!(t, Target::Addr(_)));
/// let t: Target = ("localhost", 8080).into();
/// assert_eq!(t, Target::Name("localhost:8080".into()));
/// let t: Target = ("::1", 80).into();
/// assert_eq!(t, Target::Addr(SocketAddr::from((Ipv6Addr::LOCALHOST, 80))));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A socket address.
    Addr(SocketAddr),
    /// A name to resolve, `host:port`.
    Name(String),
}

impl From<SocketAddr> for Target {
    fn from(a: SocketAddr) -> Target {
        Target::Addr(a)
    }
}

impl From<&str> for Target {
    fn from(s: &str) -> Target {
        match s.parse() {
            Ok(a) => Target::Addr(a),
            Err(_) => Target::Name(s.to_string()),
        }
    }
}

impl From<String> for Target {
    fn from(s: String) -> Target {
        Target::from(s.as_str())
    }
}

impl From<(IpAddr, u16)> for Target {
    fn from((ip, port): (IpAddr, u16)) -> Target {
        Target::Addr(SocketAddr::new(ip, port))
    }
}

impl From<(&str, u16)> for Target {
    fn from((host, port): (&str, u16)) -> Target {
        match host.parse::<IpAddr>() {
            Ok(ip) => Target::Addr(SocketAddr::new(ip, port)),
            Err(_) => Target::Name(format!("{host}:{port}")),
        }
    }
}

impl From<(String, u16)> for Target {
    fn from((host, port): (String, u16)) -> Target {
        Target::from((host.as_str(), port))
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Addr(a) => write!(f, "{a}"),
            Target::Name(n) => f.write_str(n),
        }
    }
}

/// A listening socket.
pub(crate) trait Acceptor: AsRawFd + 'static {
    type Stream: StreamSocket;
    /// A connection, non-blocking, and its peer's address.
    fn accept_stream(&self) -> io::Result<(Self::Stream, Address)>;
    fn local_address(&self) -> Address;
    /// The local address of every connection accepted on a socket bound to `local`, if
    /// it is known without asking the kernel for each (`getsockname`).
    fn accepted_local(local: &Address) -> Option<Address>;
    /// Whether every connection it accepts comes with `TCP_NODELAY` on, if that is known
    /// (asked once, of the listening socket, whose setting they inherit).
    fn accepted_nodelay(&self) -> Option<bool>;
}

/// `accept4` flags: the connection comes non-blocking (no `ioctl` of its own) and closed
/// on exec.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn accept_flags() -> std::ffi::c_int {
    socket2::Type::from(0).nonblocking().cloexec().into()
}

impl Acceptor for TcpListener {
    type Stream = TcpStream;
    fn accept_stream(&self) -> io::Result<(TcpStream, Address)> {
        // One system call, with the peer's address: no `ioctl(FIONBIO)` after it, and no
        // `getpeername` when the connection starts.
        #[cfg(any(target_os = "linux", target_os = "android"))]
        {
            let (s, a) = socket2::SockRef::from(self).accept4(accept_flags())?;
            let peer = a.as_socket().map_or(Address::Test, Address::Inet);
            Ok((TcpStream::from(s), peer))
        }
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        {
            let (s, a) = self.accept()?;
            s.set_nonblocking(true)?;
            Ok((s, Address::Inet(a)))
        }
    }
    fn local_address(&self) -> Address {
        self.local_addr()
            .map(Address::Inet)
            .unwrap_or(Address::Test)
    }
    /// A connection's local address is the address its SYN was sent to, on the
    /// listening port: for a socket bound to one IP address, that address. Bound to all
    /// of them (`0.0.0.0`, `::`), it depends on the connection.
    fn accepted_local(local: &Address) -> Option<Address> {
        match local {
            Address::Inet(a) if !a.ip().is_unspecified() => Some(local.clone()),
            _ => None,
        }
    }
    /// Linux copies a listening socket's `TCP_NODELAY` into each connection it accepts;
    /// elsewhere it is not relied on.
    fn accepted_nodelay(&self) -> Option<bool> {
        if cfg!(any(target_os = "linux", target_os = "android")) {
            socket2::SockRef::from(self).tcp_nodelay().ok()
        } else {
            None
        }
    }
}

impl Acceptor for UnixListener {
    type Stream = UnixStream;
    fn accept_stream(&self) -> io::Result<(UnixStream, Address)> {
        let (s, a) = self.accept()?;
        s.set_nonblocking(true)?;
        Ok((s, Address::Unix(a.as_pathname().map(Into::into))))
    }
    fn local_address(&self) -> Address {
        Address::Unix(
            self.local_addr()
                .ok()
                .and_then(|a| a.as_pathname().map(Into::into)),
        )
    }
    fn accepted_local(_local: &Address) -> Option<Address> {
        None
    }
    fn accepted_nodelay(&self) -> Option<bool> {
        None
    }
}

struct Listener<A: Acceptor, F: Factory> {
    reactor: Weak<ReactorCore>,
    sock: RefCell<Option<A>>,
    key: Cell<Option<Key>>,
    factory: F,
    local: Address,
    /// The local address of every connection it accepts, when known without asking.
    accepted_local: Option<Address>,
    /// Whether every connection it accepts has `TCP_NODELAY` on, when known.
    accepted_nodelay: Option<bool>,
    /// Accepting is paused after running out of descriptors.
    backing_off: Cell<bool>,
    /// The back-off's warning: one line a second, with a count of the ones held back.
    backoff_warning: LogLimiter,
    /// A Unix socket file to remove when the port stops.
    unlink: Option<PathBuf>,
}

pub(crate) fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::PermissionDenied
    ) || matches!(e.raw_os_error(), Some(71)) // EPROTO
}

pub(crate) fn is_out_of_resources(e: &io::Error) -> bool {
    // EMFILE, ENFILE, ENOBUFS, ENOMEM
    matches!(e.raw_os_error(), Some(24 | 23 | 105 | 12))
}

impl<A: Acceptor, F: Factory> Listener<A, F> {
    fn accept_some(self: &Rc<Self>, reactor: &Reactor) {
        for _ in 0..ACCEPTS_PER_EVENT {
            let accepted = {
                let sock = self.sock.borrow();
                let Some(sock) = sock.as_ref() else { return };
                sock.accept_stream()
            };
            match accepted {
                Ok((stream, peer)) => {
                    log::debug!("connection from {peer} on {}", self.local);
                    let built =
                        catch_unwind(AssertUnwindSafe(|| self.factory.build_protocol(&peer)));
                    match built {
                        Ok(Some(protocol)) => {
                            let local = self
                                .accepted_local
                                .clone()
                                .unwrap_or_else(|| stream.local_address());
                            let known = Known {
                                peer: peer.clone(),
                                local,
                                nodelay: self.accepted_nodelay,
                            };
                            if let Err(e) = Conn::start_with(reactor, stream, known, protocol) {
                                log::error!("cannot register a connection from {peer}: {e}");
                            }
                        }
                        Ok(None) => drop(stream),
                        Err(p) => {
                            log::error!("panic in build_protocol: {}", Failure::from_panic(p));
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if is_transient(&e) => continue,
                Err(e) if is_out_of_resources(&e) => {
                    self.back_off(reactor, e);
                    return;
                }
                Err(e) => {
                    log::error!("accept on {} failed: {e}", self.local);
                    return;
                }
            }
        }
    }

    /// Out of descriptors: stop accepting for a while instead of spinning on a socket
    /// that stays readable.
    fn back_off(self: &Rc<Self>, reactor: &Reactor, e: io::Error) {
        if self.backing_off.replace(true) {
            return;
        }
        if let Some(held) = self.backoff_warning.allow(reactor.now()) {
            log::warn!(
                "accept on {} failed ({e}); pausing accepts for {ACCEPT_BACKOFF:?}{}",
                self.local,
                LogLimiter::suffix(held)
            );
        }
        if let Some(key) = self.key.get() {
            let _ = reactor.reregister(key, Interest::NONE);
        }
        let this = Rc::downgrade(self);
        reactor.call_later(ACCEPT_BACKOFF, move || {
            if let Some(this) = this.upgrade() {
                this.backing_off.set(false);
                if let (Some(key), Some(inner)) = (this.key.get(), this.reactor.upgrade()) {
                    let _ = Reactor { inner }.reregister(key, Interest::READ);
                }
            }
        });
    }
}

impl<A: Acceptor, F: Factory> IoHandler for Listener<A, F> {
    fn shutdown(self: Rc<Self>) {
        self.stop();
    }

    fn ready(self: Rc<Self>, reactor: &Reactor, _ready: Ready) {
        if !self.backing_off.get() {
            self.accept_some(reactor);
        }
    }
}

pub(crate) trait Port {
    fn local(&self) -> Address;
    fn stop(&self);
}

impl<A: Acceptor, F: Factory> Port for Listener<A, F> {
    fn local(&self) -> Address {
        self.local.clone()
    }

    fn stop(&self) {
        if let Some(key) = self.key.take() {
            if let Some(inner) = self.reactor.upgrade() {
                Reactor { inner }.deregister(key);
            }
            self.sock.borrow_mut().take();
            if let Some(path) = &self.unlink {
                let _ = std::fs::remove_file(path);
            }
            self.factory.stop_factory();
        }
    }
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

/// A protocol connected by [`Reactor::connect_tcp`] or [`Reactor::connect_unix`]: shared
/// with the reactor, which calls it as data comes, so borrow it only for a moment.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use ropewalk_reactor::deferred::Failure;
/// use ropewalk_reactor::{Address, Connected, Protocol, Reactor, TransportRef};
///
/// #[derive(Default)]
/// struct Client { transport: Option<TransportRef> }
/// impl Protocol for Client {
///     fn connection_made(&mut self, t: TransportRef) { self.transport = Some(t); }
///     fn data_received(&mut self, _: &[u8]) -> Result<(), Failure> { Ok(()) }
/// }
///
/// let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
/// let reactor = Reactor::new()?;
/// let d = reactor.connect_tcp(listener.local_addr()?, |_: &Address| Some(Client::default()),
///     Duration::from_secs(5));
/// let client: Connected<Client> = d.wait().unwrap();
/// let t = client.borrow().transport.clone().unwrap();
/// assert_eq!(t.peer_addr().inet(), Some(listener.local_addr()?));
/// # Ok::<(), std::io::Error>(())
/// ```
pub type Connected<P> = Rc<RefCell<P>>;

fn listen<A: Acceptor, F: Factory>(
    reactor: &Reactor,
    sock: A,
    factory: F,
    unlink: Option<PathBuf>,
) -> io::Result<ListeningPort> {
    let local = sock.local_address();
    let listener = Rc::new(Listener {
        reactor: Rc::downgrade(&reactor.inner),
        accepted_local: A::accepted_local(&local),
        accepted_nodelay: sock.accepted_nodelay(),
        local,
        sock: RefCell::new(None),
        key: Cell::new(None),
        factory,
        backing_off: Cell::new(false),
        backoff_warning: LogLimiter::new(WARN_INTERVAL),
        unlink,
    });
    let key = reactor.register_listener(&sock, listener.clone())?;
    *listener.sock.borrow_mut() = Some(sock);
    listener.key.set(Some(key));
    listener.factory.start_factory();
    log::debug!("listening on {}", listener.local);
    Ok(ListeningPort { port: listener })
}

/// A TCP socket bound to `addr` with `options` (`SO_REUSEADDR` always, `SO_REUSEPORT` if
/// asked, IPv6 only for an IPv6 address), not yet listening.
pub(crate) fn bind_tcp(addr: SocketAddr, options: &ListenOptions) -> io::Result<socket2::Socket> {
    use socket2::{Domain, Socket, Type};
    let sock = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    sock.set_reuse_address(true)?;
    if options.reuse_port {
        sock.set_reuse_port(true)?;
    }
    if addr.is_ipv6() {
        sock.set_only_v6(true)?;
    }
    if options.nodelay {
        sock.set_tcp_nodelay(true)?;
    }
    // The system's message alone ("Address already in use") does not say which address.
    sock.bind(&addr.into())
        .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))?;
    Ok(sock)
}

impl Reactor {
    /// Listens for TCP connections on `addr` (IPv4 or IPv6; port 0 picks a free one), and
    /// runs a protocol from `factory` on each (Twisted's `listenTCP`).
    ///
    /// # Errors
    ///
    /// The system error if the address cannot be bound (in use, not local...), of the
    /// same [`kind`](io::Error::kind), its message naming the address:
    /// `cannot listen on 127.0.0.1:8080: Address already in use (os error 98)`.
    ///
    /// # Examples
    ///
    /// ```
    /// use ropewalk_reactor::deferred::Failure;
    /// use ropewalk_reactor::{Address, Protocol, Reactor, TransportRef};
    ///
    /// struct Echo(Option<TransportRef>);
    /// impl Protocol for Echo {
    ///     fn connection_made(&mut self, t: TransportRef) { self.0 = Some(t); }
    ///     fn data_received(&mut self, data: &[u8]) -> Result<(), Failure> {
    ///         self.0.as_ref().unwrap().write(data);
    ///         Ok(())
    ///     }
    /// }
    ///
    /// let reactor = Reactor::new()?;
    /// let port = reactor.listen_tcp("127.0.0.1:0".parse().unwrap(), |_| Some(Echo(None)))?;
    /// println!("listening on {}", port.local_addr());
    ///
    /// // A factory may look at the peer, and refuse it with `None`.
    /// let local_only = reactor.listen_tcp("127.0.0.1:0".parse().unwrap(), |peer| {
    ///     peer.inet().filter(|a| a.ip().is_loopback()).map(|_| Echo(None))
    /// })?;
    /// // A function works too.
    /// fn echo(_: &Address) -> Option<Echo> { Some(Echo(None)) }
    /// let by_fn = reactor.listen_tcp("127.0.0.1:0".parse().unwrap(), echo)?;
    /// # drop((local_only, by_fn));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn listen_tcp<P: Protocol>(
        &self,
        addr: SocketAddr,
        factory: impl Fn(&Address) -> Option<P> + 'static,
    ) -> io::Result<ListeningPort> {
        self.listen_tcp_with(addr, factory, &ListenOptions::default())
    }

    /// As [`listen_tcp`](Self::listen_tcp), with options (backlog, `SO_REUSEPORT`).
    ///
    /// # Errors
    ///
    /// As [`listen_tcp`](Self::listen_tcp).
    ///
    /// # Examples
    ///
    /// ```
    /// # use ropewalk_reactor::{deferred::Failure, Address, Protocol, Reactor, ListenOptions};
    /// # struct P;
    /// # impl Protocol for P { fn data_received(&mut self, _: &[u8]) -> Result<(), Failure> { Ok(()) } }
    /// let reactor = Reactor::new()?;
    /// let opts = ListenOptions { backlog: 16, ..ListenOptions::default() };
    /// let port = reactor.listen_tcp_with("[::1]:0".parse().unwrap(), |_: &Address| Some(P), &opts);
    /// # drop(port);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn listen_tcp_with<P: Protocol>(
        &self,
        addr: SocketAddr,
        factory: impl Fn(&Address) -> Option<P> + 'static,
        options: &ListenOptions,
    ) -> io::Result<ListeningPort> {
        self.listen_tcp_factory(addr, factory, options)
    }

    /// As [`listen_tcp_with`](Self::listen_tcp_with), with any [`Factory`]: a struct whose
    /// [`start_factory`](Factory::start_factory) and [`stop_factory`](Factory::stop_factory)
    /// run when the port starts and stops listening (Twisted's `startFactory` /
    /// `stopFactory`). A closure is a factory too, but `listen_tcp` infers its argument's
    /// type where this generic form cannot (write `|_: &Address| ...` here).
    ///
    /// # Errors
    ///
    /// As [`listen_tcp`](Self::listen_tcp).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::cell::Cell;
    /// use ropewalk_reactor::deferred::Failure;
    /// use ropewalk_reactor::{Address, Factory, ListenOptions, Protocol, Reactor};
    ///
    /// struct Quiet;
    /// impl Protocol for Quiet {
    ///     fn data_received(&mut self, _: &[u8]) -> Result<(), Failure> { Ok(()) }
    /// }
    ///
    /// /// Counts the ports it serves.
    /// #[derive(Default)]
    /// struct Counting { ports: Cell<u32> }
    /// impl Factory for Counting {
    ///     type Protocol = Quiet;
    ///     fn build_protocol(&self, _: &Address) -> Option<Quiet> { Some(Quiet) }
    ///     fn start_factory(&self) { self.ports.set(self.ports.get() + 1); }
    /// }
    ///
    /// let reactor = Reactor::new()?;
    /// let port = reactor.listen_tcp_factory(
    ///     "127.0.0.1:0".parse().unwrap(),
    ///     Counting::default(),
    ///     &ListenOptions::default(),
    /// )?;
    /// port.stop_listening();
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn listen_tcp_factory<F: Factory>(
        &self,
        addr: SocketAddr,
        factory: F,
        options: &ListenOptions,
    ) -> io::Result<ListeningPort> {
        let sock = bind_tcp(addr, options)?;
        sock.listen(options.backlog)?;
        sock.set_nonblocking(true)?;
        listen(self, TcpListener::from(sock), factory, None)
    }

    /// Listens on a TCP socket made elsewhere: for several reactors sharing one accept
    /// queue (each adopts a `try_clone` of the same listener). It is made non-blocking.
    ///
    /// # Errors
    ///
    /// The system error if it cannot be made non-blocking or registered.
    ///
    /// # Examples
    ///
    /// ```
    /// # use ropewalk_reactor::{deferred::Failure, Address, Protocol, Reactor};
    /// # struct P;
    /// # impl Protocol for P { fn data_received(&mut self, _: &[u8]) -> Result<(), Failure> { Ok(()) } }
    /// let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// let reactor = Reactor::new()?;
    /// let port = reactor.adopt_tcp_listener(listener.try_clone()?, |_: &Address| Some(P))?;
    /// assert_eq!(port.local_addr().inet(), Some(listener.local_addr()?));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn adopt_tcp_listener<P: Protocol>(
        &self,
        listener: TcpListener,
        factory: impl Fn(&Address) -> Option<P> + 'static,
    ) -> io::Result<ListeningPort> {
        self.adopt_tcp_listener_factory(listener, factory)
    }

    /// As [`adopt_tcp_listener`](Self::adopt_tcp_listener), for a [`Factory`] value (one
    /// with start and stop hooks, such as the HTTP server) rather than a closure.
    ///
    /// # Errors
    ///
    /// The system error if it cannot be made non-blocking or registered.
    ///
    /// # Examples
    ///
    /// ```
    /// # use ropewalk_reactor::{deferred::Failure, for_protocol, Protocol, Reactor};
    /// # #[derive(Default)] struct P;
    /// # impl Protocol for P { fn data_received(&mut self, _: &[u8]) -> Result<(), Failure> { Ok(()) } }
    /// let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// let reactor = Reactor::new()?;
    /// let port = reactor.adopt_tcp_listener_factory(listener, for_protocol(P::default))?;
    /// assert!(port.local_addr().inet().is_some());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn adopt_tcp_listener_factory<F: Factory>(
        &self,
        listener: TcpListener,
        factory: F,
    ) -> io::Result<ListeningPort> {
        listener.set_nonblocking(true)?;
        listen(self, listener, factory, None)
    }

    /// Listens on a Unix-domain stream socket at `path` (which must not exist).
    ///
    /// # Errors
    ///
    /// The system error if the path cannot be bound.
    ///
    /// # Examples
    ///
    /// ```
    /// # use ropewalk_reactor::{deferred::Failure, Address, Protocol, Reactor};
    /// # struct P;
    /// # impl Protocol for P { fn data_received(&mut self, _: &[u8]) -> Result<(), Failure> { Ok(()) } }
    /// let path = std::env::temp_dir().join(format!("ropewalk-doc-{}.sock", std::process::id()));
    /// let reactor = Reactor::new()?;
    /// let port = reactor.listen_unix(&path, |_: &Address| Some(P))?;
    /// port.stop_listening();
    /// assert!(!path.exists());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn listen_unix<P: Protocol>(
        &self,
        path: impl AsRef<Path>,
        factory: impl Fn(&Address) -> Option<P> + 'static,
    ) -> io::Result<ListeningPort> {
        let path = path.as_ref();
        let sock = UnixListener::bind(path)?;
        sock.set_nonblocking(true)?;
        listen(self, sock, factory, Some(path.to_path_buf()))
    }

    /// Connects to `target` over TCP and runs a protocol from `factory` on the connection
    /// (Twisted's `connectTCP`). The Deferred fires with the protocol once connected.
    ///
    /// A name is resolved on the worker pool and its addresses are raced as RFC 8305
    /// ("Happy Eyeballs") says: the families in turn, the next address tried 250 ms after
    /// the last one if it has not connected yet (or at once if it failed), the first
    /// connection kept and the other attempts cancelled. `timeout` covers it all, the
    /// lookup included. Errors are
    /// [`ConnectionError`]s: `Refused`, `TimedOut` (after `timeout`), `LookupFailed`,
    /// `ConnectFailed`. Cancelling the Deferred abandons the attempt.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use ropewalk_reactor::deferred::Failure;
    /// use ropewalk_reactor::{Address, ConnectionError, Protocol, Reactor};
    ///
    /// struct Quiet;
    /// impl Protocol for Quiet {
    ///     fn data_received(&mut self, _: &[u8]) -> Result<(), Failure> { Ok(()) }
    /// }
    ///
    /// let reactor = Reactor::new()?;
    /// // Nothing listens on this port: the connection is refused.
    /// let free = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    /// let d = reactor.connect_tcp(free, |_: &Address| Some(Quiet), Duration::from_secs(5));
    /// let Err(f) = d.wait() else { panic!("connected") };
    /// assert!(matches!(f.downcast_ref(), Some(ConnectionError::Refused(_))));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn connect_tcp<P: Protocol>(
        &self,
        target: impl Into<Target>,
        factory: impl Fn(&Address) -> Option<P> + 'static,
        timeout: Duration,
    ) -> Deferred<Connected<P>> {
        self.connect_tcp_factory(target, factory, timeout)
    }

    /// As [`connect_tcp`](Self::connect_tcp), with any [`Factory`]: its
    /// [`start_factory`](Factory::start_factory) runs when the attempt starts and its
    /// [`stop_factory`](Factory::stop_factory) when the attempt ends, connected or not.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use ropewalk_reactor::deferred::Failure;
    /// use ropewalk_reactor::{Address, Factory, Protocol, Reactor};
    ///
    /// struct Quiet;
    /// impl Protocol for Quiet {
    ///     fn data_received(&mut self, _: &[u8]) -> Result<(), Failure> { Ok(()) }
    /// }
    /// struct Make;
    /// impl Factory for Make {
    ///     type Protocol = Quiet;
    ///     fn build_protocol(&self, _: &Address) -> Option<Quiet> { Some(Quiet) }
    /// }
    ///
    /// let reactor = Reactor::new()?;
    /// let port = reactor.listen_tcp("127.0.0.1:0".parse().unwrap(), |_| Some(Quiet))?;
    /// let addr = port.local_addr().inet().unwrap();
    /// assert!(reactor.connect_tcp_factory(addr, Make, Duration::from_secs(5)).wait().is_ok());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn connect_tcp_factory<F: Factory>(
        &self,
        target: impl Into<Target>,
        factory: F,
        timeout: Duration,
    ) -> Deferred<Connected<F::Protocol>> {
        match target.into() {
            Target::Addr(addr) => connect_addr(self, addr, factory, Some(timeout)),
            Target::Name(name) => happy_eyeballs::connect_name(
                self,
                name,
                |name: &str| Ok(name.to_socket_addrs()?.collect()),
                factory,
                timeout,
            ),
        }
    }

    /// Connects to the Unix-domain socket at `path` and runs a protocol from `factory`.
    ///
    /// # Examples
    ///
    /// ```
    /// # use ropewalk_reactor::{deferred::Failure, Address, Protocol, Reactor};
    /// # struct P;
    /// # impl Protocol for P { fn data_received(&mut self, _: &[u8]) -> Result<(), Failure> { Ok(()) } }
    /// let path = std::env::temp_dir().join(format!("ropewalk-doc2-{}.sock", std::process::id()));
    /// let reactor = Reactor::new()?;
    /// let port = reactor.listen_unix(&path, |_: &Address| Some(P))?;
    /// let client = reactor.connect_unix(&path, |_: &Address| Some(P)).wait();
    /// assert!(client.is_ok());
    /// port.stop_listening();
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn connect_unix<P: Protocol>(
        &self,
        path: impl AsRef<Path>,
        factory: impl Fn(&Address) -> Option<P> + 'static,
    ) -> Deferred<Connected<P>> {
        let path = path.as_ref();
        let result = UnixStream::connect(path)
            .and_then(|s| s.set_nonblocking(true).map(|()| s))
            .map_err(|e| {
                if e.kind() == io::ErrorKind::ConnectionRefused
                    || e.kind() == io::ErrorKind::NotFound
                {
                    ConnectionError::Refused(e)
                } else {
                    ConnectionError::ConnectFailed(e)
                }
            });
        let stream = match result {
            Ok(s) => s,
            Err(e) => return Deferred::fail(e),
        };
        factory.start_factory();
        start_client(
            self,
            stream,
            Address::Unix(Some(path.to_path_buf())),
            &factory,
        )
    }
}

/// Resolves a `"host:port"` name (blocking: call it on the worker pool) to its addresses,
/// in the resolver's order; an empty answer is a `NotFound` error.
pub(crate) fn resolve(name: &str) -> io::Result<Vec<SocketAddr>> {
    let addrs: Vec<SocketAddr> = name.to_socket_addrs()?.collect();
    if addrs.is_empty() {
        return Err(io::Error::new(io::ErrorKind::NotFound, "no addresses"));
    }
    Ok(addrs)
}

/// Builds the protocol for a connected client socket and starts it; the factory has been
/// started (`start_factory`) by the caller, and is stopped here.
fn start_client<S: StreamSocket, F: Factory>(
    reactor: &Reactor,
    stream: S,
    peer: Address,
    factory: &F,
) -> Deferred<Connected<F::Protocol>> {
    let built = catch_unwind(AssertUnwindSafe(|| factory.build_protocol(&peer)));
    let result = match built {
        Ok(Some(p)) => Conn::start(reactor, stream, p)
            .map_err(|e| Failure::new(ConnectionError::ConnectFailed(e))),
        Ok(None) => Err(Failure::new(ConnectionError::ConnectFailed(
            io::Error::other("the factory refused to build a protocol"),
        ))),
        Err(p) => Err(Failure::from_panic(p)),
    };
    factory.stop_factory();
    Deferred::from_result(result)
}

/// Shares one factory among the attempts of a name with several addresses.
struct SharedFactory<F>(Rc<F>);

impl<F: Factory> Factory for SharedFactory<F> {
    type Protocol = F::Protocol;

    fn build_protocol(&self, peer: &Address) -> Option<F::Protocol> {
        self.0.build_protocol(peer)
    }

    fn start_factory(&self) {
        self.0.start_factory();
    }

    fn stop_factory(&self) {
        self.0.stop_factory();
    }
}

/// A TCP connect in progress.
struct Connector<F: Factory> {
    reactor: Weak<ReactorCore>,
    sock: RefCell<Option<socket2::Socket>>,
    key: Cell<Option<Key>>,
    factory: F,
    peer: SocketAddr,
    resolver: RefCell<Option<Resolver<Connected<F::Protocol>>>>,
    timer: RefCell<Option<DelayedCall>>,
}

impl<F: Factory> Connector<F> {
    /// Ends the attempt: the socket is closed unless it became the connection.
    fn finish(&self) -> Option<socket2::Socket> {
        if let Some(key) = self.key.take() {
            if let Some(inner) = self.reactor.upgrade() {
                Reactor { inner }.deregister(key);
            }
        }
        if let Some(timer) = self.timer.borrow_mut().take() {
            let _ = timer.cancel();
        }
        self.sock.borrow_mut().take()
    }

    fn fail(&self, error: ConnectionError) {
        drop(self.finish());
        self.factory.stop_factory();
        if let Some(r) = self.resolver.borrow_mut().take() {
            let _ = r.errback(error);
        }
    }
}

impl<F: Factory> IoHandler for Connector<F> {
    fn shutdown(self: Rc<Self>) {
        self.fail(ConnectionError::Shutdown);
    }

    fn ready(self: Rc<Self>, reactor: &Reactor, _ready: Ready) {
        let Some(sock) = self.finish() else { return };
        let status = match sock.take_error() {
            Ok(None) => Ok(()),
            Ok(Some(e)) | Err(e) => Err(e),
        };
        if let Err(e) = status {
            self.factory.stop_factory();
            let error = if e.kind() == io::ErrorKind::ConnectionRefused {
                ConnectionError::Refused(e)
            } else {
                ConnectionError::ConnectFailed(e)
            };
            if let Some(r) = self.resolver.borrow_mut().take() {
                let _ = r.errback(error);
            }
            return;
        }
        let d = start_client(
            reactor,
            TcpStream::from(sock),
            Address::Inet(self.peer),
            &self.factory,
        );
        if let Some(r) = self.resolver.borrow_mut().take() {
            d.chain_deferred(r);
        }
    }
}

/// Connects to `addr`; fails with [`ConnectionError::TimedOut`] after `timeout`, if
/// given (a race of several addresses keeps one deadline for all of them instead).
fn connect_addr<F: Factory>(
    reactor: &Reactor,
    addr: SocketAddr,
    factory: F,
    timeout: Option<Duration>,
) -> Deferred<Connected<F::Protocol>> {
    use socket2::{Domain, Socket, Type};
    log::debug!("connecting to {addr}");
    let sock = match Socket::new(Domain::for_address(addr), Type::STREAM, None)
        .and_then(|s| s.set_nonblocking(true).map(|()| s))
    {
        Ok(s) => s,
        Err(e) => return Deferred::fail(ConnectionError::ConnectFailed(e)),
    };
    match sock.connect(&addr.into()) {
        Ok(()) => {
            factory.start_factory();
            return start_client(
                reactor,
                TcpStream::from(sock),
                Address::Inet(addr),
                &factory,
            );
        }
        Err(e)
            if e.raw_os_error() == Some(crate::sys::EINPROGRESS)
                || e.kind() == io::ErrorKind::WouldBlock => {}
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
            return Deferred::fail(ConnectionError::Refused(e));
        }
        Err(e) => return Deferred::fail(ConnectionError::ConnectFailed(e)),
    }
    factory.start_factory();
    let connector = Rc::new(Connector {
        reactor: Rc::downgrade(&reactor.inner),
        sock: RefCell::new(None),
        key: Cell::new(None),
        factory,
        peer: addr,
        resolver: RefCell::new(None),
        timer: RefCell::new(None),
    });
    let weak = Rc::downgrade(&connector);
    let (d, resolver) = Deferred::with_canceller(move || {
        if let Some(c) = weak.upgrade() {
            drop(c.finish());
            c.factory.stop_factory();
            c.resolver.borrow_mut().take();
        }
        None
    });
    *connector.resolver.borrow_mut() = Some(resolver);
    let key = reactor.register(
        &sock,
        Interest {
            read: false,
            write: true,
        },
        PollMode::Oneshot,
        connector.clone(),
    );
    match key {
        Ok(key) => {
            connector.key.set(Some(key));
            *connector.sock.borrow_mut() = Some(sock);
        }
        Err(e) => {
            connector.fail(ConnectionError::ConnectFailed(e));
            return d;
        }
    }
    if let Some(timeout) = timeout {
        let weak = Rc::downgrade(&connector);
        let timer = reactor.call_later(timeout, move || {
            if let Some(c) = weak.upgrade() {
                c.timer.borrow_mut().take();
                c.fail(ConnectionError::TimedOut(timeout));
            }
        });
        *connector.timer.borrow_mut() = Some(timer);
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A listening socket on 127.0.0.1 set up with `options`, blocking (so that a test
    /// can accept without a reactor).
    fn listener(options: &ListenOptions) -> TcpListener {
        let sock = bind_tcp("127.0.0.1:0".parse().unwrap(), options).unwrap();
        sock.listen(8).unwrap();
        TcpListener::from(sock)
    }

    /// An accepted connection comes non-blocking, with its peer's address, and with the
    /// listening socket's `TCP_NODELAY`, which the listener reports once for all.
    #[test]
    fn accepted_connection_is_nonblocking_and_inherits_nodelay() {
        for nodelay in [false, true] {
            let l = listener(&ListenOptions {
                nodelay,
                ..ListenOptions::default()
            });
            if cfg!(target_os = "linux") {
                assert_eq!(l.accepted_nodelay(), Some(nodelay));
            }
            let client = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
            let (s, peer) = l.accept_stream().unwrap();
            assert_eq!(peer, Address::Inet(client.local_addr().unwrap()));
            assert_eq!(s.nodelay().unwrap(), nodelay);
            let mut buf = [0u8; 1];
            let e = s.read_some(&mut buf).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::WouldBlock, "non-blocking");
        }
    }

    /// The local address of accepted connections is known from a listener bound to one
    /// address, and asked of each connection for one bound to all of them.
    #[test]
    fn accepted_local_address_is_known_for_a_specific_address_only() {
        let one: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let all: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        let all6: SocketAddr = "[::]:8080".parse().unwrap();
        assert_eq!(
            TcpListener::accepted_local(&Address::Inet(one)),
            Some(Address::Inet(one))
        );
        assert_eq!(TcpListener::accepted_local(&Address::Inet(all)), None);
        assert_eq!(TcpListener::accepted_local(&Address::Inet(all6)), None);
        assert_eq!(UnixListener::accepted_local(&Address::Unix(None)), None);
    }
}
