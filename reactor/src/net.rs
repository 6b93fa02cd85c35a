//! Async sockets for tasks on the reactor (cooperative multitasking): [`TcpListener`],
//! [`TcpStream`] and [`UdpSocket`], awaited inside [`Reactor::spawn`]; [`LineReader`] and
//! [`WriteLineExt`] for lines. The I/O traits are re-exported here ([`AsyncReadExt`],
//! [`AsyncWriteExt`]...): a program needs no other crate to read and write.
//!
//! ```
//! use ropewalk_reactor::deferred::Failure;
//! use ropewalk_reactor::{net::UdpSocket, Reactor};
//!
//! let reactor = Reactor::new()?;
//! let sock = UdpSocket::bind(&reactor, "127.0.0.1:0".parse().unwrap())?;
//! let server_addr = sock.local_addr()?;
//! let server = reactor.spawn(async move {
//!     let mut buf = [0u8; 1500];
//!     let (n, addr) = sock.recv_from(&mut buf).await?;
//!     sock.send_to(b"response", addr).await?;
//!     Ok::<_, Failure>(n)
//! });
//!
//! let client = std::net::UdpSocket::bind("127.0.0.1:0")?;
//! client.send_to(b"request", server_addr)?;
//! assert_eq!(server.wait().unwrap(), 7);
//! let mut buf = [0u8; 16];
//! let (n, _) = client.recv_from(&mut buf)?;
//! assert_eq!(&buf[..n], b"response");
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! # Implementation
//!
//! Each socket is non-blocking and registered with the reactor's poller in oneshot mode,
//! with no interest at first. An operation tries its system call first; only when that
//! would block does it store the task's waker (one list per direction) and arm the
//! socket's interest for that direction (an `epoll_ctl`, skipped when that interest is
//! already armed). Oneshot reports readiness that already existed when it was armed, so
//! nothing is lost between the failed call and the arming. The readiness event wakes the
//! direction's wakers, disarms the socket, and re-arms it for the other direction if
//! tasks still wait there; the woken task retries its call.
//!
//! These types are neither `Send` nor `Sync`: they belong to the reactor that made them.
//! Dropping one removes it from the poller before its descriptor closes. Reactor
//! shutdown detaches every async socket from the poller and wakes its tasks; an
//! operation that would then have to wait fails with [`io::ErrorKind::NotConnected`].
//!
//! Cancelling waits on nothing: drop the future (cancel the task's Deferred, or race it
//! with a timeout such as [`Deferred::add_timeout`]);
//! [`TcpStream::connect_timeout`] has its own.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::{poll_fn, Future};
use std::io::{self, IoSlice, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::os::fd::AsRawFd;
use std::pin::{pin, Pin};
use std::rc::{Rc, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

/// The async I/O traits [`TcpStream`] implements and their extension traits (`read`,
/// `read_exact`, `read_to_end`, `write_all`, `close`, `read_line`...), re-exported from
/// [`futures`](https://docs.rs/futures) so a program needs no `futures` dependency of its
/// own: `use ropewalk_reactor::net::{AsyncReadExt, AsyncWriteExt};`.
#[doc(inline)]
pub use futures::io::{
    AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt,
};

use ropewalk_deferred::Deferred;

use crate::reactor::{IoHandler, Reactor, ReactorCore};

use crate::slab::Key;
use crate::sys::{Interest, PollMode, Ready};
use crate::tcp::Target;

mod lines;
mod tls_stream;

pub use self::lines::{LineReader, WriteLineExt, DEFAULT_MAX_LINE_LENGTH};
pub use self::tls_stream::TlsStream;

#[derive(Clone, Copy)]
enum Dir {
    Read,
    Write,
}

/// A socket's registration: the wakers waiting on it, and what is armed.
struct Source {
    reactor: Weak<ReactorCore>,
    key: Cell<Option<Key>>,
    readers: RefCell<Vec<Waker>>,
    writers: RefCell<Vec<Waker>>,
    /// The oneshot interest armed in the poller and not yet fired.
    armed: Cell<Interest>,
}

fn detached() -> io::Error {
    io::Error::new(
        io::ErrorKind::NotConnected,
        "the socket's reactor shut down or is gone",
    )
}

impl Source {
    fn register(reactor: &Reactor, fd: &impl AsRawFd) -> io::Result<Rc<Source>> {
        let source = Rc::new(Source {
            reactor: Rc::downgrade(&reactor.inner),
            key: Cell::new(None),
            readers: RefCell::new(Vec::new()),
            writers: RefCell::new(Vec::new()),
            armed: Cell::new(Interest::NONE),
        });
        let key = reactor.register(fd, Interest::NONE, PollMode::Oneshot, source.clone())?;
        source.key.set(Some(key));
        Ok(source)
    }

    fn reactor(&self) -> io::Result<Reactor> {
        self.reactor
            .upgrade()
            .map(|inner| Reactor { inner })
            .ok_or_else(detached)
    }

    /// Stores the task's waker for `dir` and arms the poller for it.
    fn wait(&self, dir: Dir, cx: &mut Context<'_>) -> io::Result<()> {
        if self.key.get().is_none() {
            return Err(detached());
        }
        {
            let mut list = match dir {
                Dir::Read => self.readers.borrow_mut(),
                Dir::Write => self.writers.borrow_mut(),
            };
            if !list.iter().any(|w| w.will_wake(cx.waker())) {
                list.push(cx.waker().clone());
            }
        }
        self.arm()
    }

    /// Arms what the waiting tasks want, unless it is armed already.
    fn arm(&self) -> io::Result<()> {
        let armed = self.armed.get();
        let wanted = Interest {
            read: armed.read || !self.readers.borrow().is_empty(),
            write: armed.write || !self.writers.borrow().is_empty(),
        };
        if wanted == armed {
            return Ok(());
        }
        let key = self.key.get().ok_or_else(detached)?;
        self.reactor()?.reregister(key, wanted)?;
        self.armed.set(wanted);
        Ok(())
    }

    /// Leaves the poller (before the descriptor closes) and wakes every waiting task.
    fn detach(&self) {
        if let Some(key) = self.key.take() {
            if let Some(inner) = self.reactor.upgrade() {
                Reactor { inner }.deregister(key);
            }
        }
        let readers = std::mem::take(&mut *self.readers.borrow_mut());
        let writers = std::mem::take(&mut *self.writers.borrow_mut());
        readers.into_iter().chain(writers).for_each(Waker::wake);
    }
}

impl IoHandler for Source {
    fn ready(self: Rc<Self>, _reactor: &Reactor, ready: Ready) {
        // Oneshot: the event disarmed the socket.
        self.armed.set(Interest::NONE);
        let readers = if ready.readable || ready.hangup {
            std::mem::take(&mut *self.readers.borrow_mut())
        } else {
            Vec::new()
        };
        let writers = if ready.writable || ready.hangup {
            std::mem::take(&mut *self.writers.borrow_mut())
        } else {
            Vec::new()
        };
        // Tasks still waiting on the other direction need it armed again.
        if let Err(e) = self.arm() {
            log::error!("cannot re-arm an async socket: {e}");
        }
        readers.into_iter().chain(writers).for_each(Waker::wake);
    }

    fn shutdown(self: Rc<Self>) {
        self.detach();
    }
}

/// Runs `op` until it does not block; when it would, waits for `dir`.
fn poll_io<R>(
    source: &Source,
    dir: Dir,
    cx: &mut Context<'_>,
    mut op: impl FnMut() -> io::Result<R>,
) -> Poll<io::Result<R>> {
    loop {
        match op() {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                return match source.wait(dir, cx) {
                    Ok(()) => Poll::Pending,
                    Err(e) => Poll::Ready(Err(e)),
                };
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            r => return Poll::Ready(r),
        }
    }
}

fn new_socket(addr: SocketAddr, ty: socket2::Type) -> io::Result<socket2::Socket> {
    use socket2::{Domain, Socket};
    let sock = Socket::new(Domain::for_address(addr), ty, None)?;
    if addr.is_ipv6() {
        sock.set_only_v6(true)?;
    }
    sock.set_nonblocking(true)?;
    Ok(sock)
}

/// A TCP listening socket for tasks: `listener.accept().await`.
///
/// # Examples
///
/// ```
/// use ropewalk_reactor::deferred::Failure;
/// use ropewalk_reactor::net::{AsyncReadExt, AsyncWriteExt, TcpListener};
/// use ropewalk_reactor::Reactor;
///
/// let reactor = Reactor::new()?;
/// let listener = TcpListener::bind(&reactor, "127.0.0.1:0".parse().unwrap())?;
/// let addr = listener.local_addr()?;
/// let server = reactor.spawn(async move {
///     let (mut stream, _peer) = listener.accept().await?;
///     let mut line = Vec::new();
///     stream.read_to_end(&mut line).await?;
///     stream.write_all(&line).await?;
///     Ok::<_, Failure>(line.len())
/// });
///
/// use std::io::{Read, Write};
/// let mut client = std::net::TcpStream::connect(addr)?;
/// client.write_all(b"hello")?;
/// client.shutdown(std::net::Shutdown::Write)?;
/// assert_eq!(server.wait().unwrap(), 5);
/// let mut back = String::new();
/// client.read_to_string(&mut back)?;
/// assert_eq!(back, "hello");
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct TcpListener {
    source: Rc<Source>,
    io: std::net::TcpListener,
}

impl TcpListener {
    /// Listens on `addr` (IPv4 or IPv6; port 0 picks a free one) with `SO_REUSEADDR` and a
    /// backlog of 1,024. An IPv6 listener is IPv6-only.
    ///
    /// # Errors
    ///
    /// The system error if the address cannot be bound.
    ///
    /// # Examples
    ///
    /// ```
    /// use ropewalk_reactor::{net::TcpListener, Reactor};
    ///
    /// let reactor = Reactor::new()?;
    /// let listener = TcpListener::bind(&reactor, "[::1]:0".parse().unwrap());
    /// # drop(listener);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn bind(reactor: &Reactor, addr: SocketAddr) -> io::Result<TcpListener> {
        let sock = new_socket(addr, socket2::Type::STREAM)?;
        sock.set_reuse_address(true)?;
        sock.bind(&addr.into())?;
        sock.listen(1024)?;
        log::debug!("async TCP listener on {addr}");
        TcpListener::from_std(reactor, sock.into())
    }

    /// Adopts a listener made elsewhere; it is made non-blocking.
    ///
    /// # Errors
    ///
    /// The system error if it cannot be made non-blocking or registered.
    ///
    /// # Examples
    ///
    /// ```
    /// use ropewalk_reactor::{net::TcpListener, Reactor};
    ///
    /// let reactor = Reactor::new()?;
    /// let std_listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// let addr = std_listener.local_addr()?;
    /// let listener = TcpListener::from_std(&reactor, std_listener)?;
    /// assert_eq!(listener.local_addr()?, addr);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn from_std(reactor: &Reactor, listener: std::net::TcpListener) -> io::Result<TcpListener> {
        listener.set_nonblocking(true)?;
        let source = Source::register(reactor, &listener)?;
        Ok(TcpListener {
            source,
            io: listener,
        })
    }

    /// Waits for a connection and gives it with the peer's address.
    ///
    /// # Errors
    ///
    /// The system error from `accept` (out of descriptors, for instance);
    /// [`io::ErrorKind::NotConnected`] after reactor shutdown.
    ///
    /// # Examples
    ///
    /// See [`TcpListener`].
    pub async fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        let (stream, peer) =
            poll_fn(|cx| poll_io(&self.source, Dir::Read, cx, || self.io.accept())).await?;
        let reactor = self.source.reactor()?;
        Ok((TcpStream::from_std(&reactor, stream)?, peer))
    }

    /// The address it listens on (with the real port when asked for port 0).
    ///
    /// # Errors
    ///
    /// The system error.
    ///
    /// # Examples
    ///
    /// ```
    /// use ropewalk_reactor::{net::TcpListener, Reactor};
    ///
    /// let reactor = Reactor::new()?;
    /// let listener = TcpListener::bind(&reactor, "127.0.0.1:0".parse().unwrap())?;
    /// assert_ne!(listener.local_addr()?.port(), 0);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.local_addr()
    }
}

impl Drop for TcpListener {
    fn drop(&mut self) {
        self.source.detach();
    }
}

impl fmt::Debug for TcpListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpListener")
            .field("local_addr", &self.io.local_addr().ok())
            .finish()
    }
}

/// A TCP connection for tasks: [`AsyncRead`] and [`AsyncWrite`] (with
/// [`AsyncReadExt`] and [`AsyncWriteExt`], re-exported here, in scope), also on
/// `&TcpStream`, so one task can read and write at once.
///
/// Closing ([`AsyncWriteExt::close`]) shuts down the
/// sending side; dropping the stream closes the socket. Writes go to the socket
/// directly: there is no buffer to flush.
///
/// # Examples
///
/// ```
/// use ropewalk_reactor::deferred::Failure;
/// use ropewalk_reactor::net::{AsyncReadExt, AsyncWriteExt, TcpStream};
/// use ropewalk_reactor::Reactor;
///
/// let server = std::net::TcpListener::bind("127.0.0.1:0")?;
/// let addr = server.local_addr()?;
/// std::thread::spawn(move || {
///     let (mut s, _) = server.accept().unwrap();
///     std::io::copy(&mut s.try_clone().unwrap(), &mut s).unwrap(); // echo
/// });
///
/// let reactor = Reactor::new()?;
/// let r = reactor.clone();
/// let d = reactor.spawn(async move {
///     let mut stream = TcpStream::connect(&r, addr).await?;
///     stream.write_all(b"ping").await?;
///     stream.close().await?;
///     let mut back = Vec::new();
///     stream.read_to_end(&mut back).await?;
///     Ok::<_, Failure>(back)
/// });
/// assert_eq!(d.wait().unwrap(), b"ping");
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct TcpStream {
    source: Rc<Source>,
    io: std::net::TcpStream,
}

impl TcpStream {
    /// Connects to `target`: a [`SocketAddr`], a `"host:port"` string or a `(host, port)`
    /// pair (see [`Target`]). A literal address is connected to at once; a name is
    /// resolved on the reactor's worker pool (the lookup blocks, the reactor does not) and
    /// its addresses are tried in order until one connects (for `localhost`, typically
    /// `::1` then `127.0.0.1`). Each attempt is a non-blocking connect, then a wait for the
    /// socket to become writable and a read of its `SO_ERROR`.
    ///
    /// There is no timeout: use [`connect_timeout`](Self::connect_timeout), or drop the
    /// future to give up.
    ///
    /// # Errors
    ///
    /// An error whose message names the target (and the address tried) and whose kind is
    /// the system's: `ConnectionRefused` when nothing listens, for instance, or the
    /// lookup's error (`NotFound` for a name with no address) when the name does not
    /// resolve. When every address of a name fails, the error lists each one and has the
    /// kind of the last.
    ///
    /// # Examples
    ///
    /// ```
    /// use ropewalk_reactor::deferred::Failure;
    /// use ropewalk_reactor::{net::TcpStream, Reactor};
    ///
    /// let reactor = Reactor::new()?;
    /// let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// let port = listener.local_addr()?.port();
    /// // Nothing listens on this one: the connection is refused.
    /// let free = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    /// let r = reactor.clone();
    /// let d = reactor.spawn(async move {
    ///     let stream = TcpStream::connect(&r, ("127.0.0.1", port)).await?;
    ///     assert_eq!(stream.peer_addr()?.port(), port);
    ///     let err = TcpStream::connect(&r, free).await.unwrap_err();
    ///     assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
    ///     assert!(err.to_string().contains(&free.to_string()), "{err}");
    ///     Ok::<_, Failure>(())
    /// });
    /// d.wait().unwrap();
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub async fn connect(reactor: &Reactor, target: impl Into<Target>) -> io::Result<TcpStream> {
        match target.into() {
            Target::Addr(addr) => connect_addr(reactor, addr)
                .await
                .map_err(|e| io::Error::new(e.kind(), format!("cannot connect to {addr}: {e}"))),
            Target::Name(name) => connect_name(reactor, name).await,
        }
    }

    /// As [`connect`](Self::connect), giving up after `timeout`, which covers the name's
    /// lookup and every connection attempt together (the way Twisted's `connectTCP`
    /// timeout covers the whole attempt). The time is the reactor's.
    ///
    /// # Errors
    ///
    /// As [`connect`](Self::connect); past the timeout, an error of kind
    /// [`io::ErrorKind::TimedOut`] that names the target and the timeout.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use ropewalk_reactor::deferred::Failure;
    /// use ropewalk_reactor::{net::TcpStream, Reactor};
    ///
    /// let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// let port = listener.local_addr()?.port();
    /// let reactor = Reactor::new()?;
    /// let r = reactor.clone();
    /// let d = reactor.spawn(async move {
    ///     let target = format!("localhost:{port}");
    ///     let stream = TcpStream::connect_timeout(&r, target, Duration::from_secs(5)).await?;
    ///     Ok::<_, Failure>(stream.peer_addr()?.port())
    /// });
    /// assert_eq!(d.wait().unwrap(), port);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub async fn connect_timeout(
        reactor: &Reactor,
        target: impl Into<Target>,
        timeout: Duration,
    ) -> io::Result<TcpStream> {
        let target = target.into();
        let shown = target.to_string();
        let mut timer = CancelOnDrop(reactor.sleep(timeout));
        let mut attempt = pin!(TcpStream::connect(reactor, target));
        poll_fn(|cx| {
            if let Poll::Ready(r) = attempt.as_mut().poll(cx) {
                return Poll::Ready(r);
            }
            Pin::new(&mut timer).poll(cx).map(|fired| {
                Err(match fired {
                    Ok(()) => io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("connect to {shown} timed out after {timeout:?}"),
                    ),
                    Err(f) => io::Error::other(format!("connect to {shown}: {f}")),
                })
            })
        })
        .await
    }

    /// Adopts a connected stream made elsewhere; it is made non-blocking.
    ///
    /// # Errors
    ///
    /// The system error if it cannot be made non-blocking or registered.
    ///
    /// # Examples
    ///
    /// ```
    /// use ropewalk_reactor::{net::TcpStream, Reactor};
    ///
    /// let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// let std_stream = std::net::TcpStream::connect(listener.local_addr()?)?;
    /// let reactor = Reactor::new()?;
    /// let stream = TcpStream::from_std(&reactor, std_stream)?;
    /// assert_eq!(stream.peer_addr()?, listener.local_addr()?);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn from_std(reactor: &Reactor, stream: std::net::TcpStream) -> io::Result<TcpStream> {
        stream.set_nonblocking(true)?;
        let source = Source::register(reactor, &stream)?;
        Ok(TcpStream { source, io: stream })
    }

    /// The peer's address.
    ///
    /// # Errors
    ///
    /// The system error (`NotConnected` after the peer reset the connection).
    ///
    /// # Examples
    ///
    /// See [`TcpStream::from_std`].
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.io.peer_addr()
    }

    /// This end's address.
    ///
    /// # Errors
    ///
    /// The system error.
    ///
    /// # Examples
    ///
    /// ```
    /// use ropewalk_reactor::{net::TcpStream, Reactor};
    ///
    /// let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// let reactor = Reactor::new()?;
    /// let stream = TcpStream::from_std(&reactor, std::net::TcpStream::connect(listener.local_addr()?)?)?;
    /// assert_eq!(stream.local_addr()?, listener.accept()?.1);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.local_addr()
    }

    /// Turns Nagle's algorithm off (`TCP_NODELAY`) or on.
    ///
    /// # Errors
    ///
    /// The system error.
    ///
    /// # Examples
    ///
    /// ```
    /// use ropewalk_reactor::{net::TcpStream, Reactor};
    ///
    /// let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// let reactor = Reactor::new()?;
    /// let stream = TcpStream::from_std(&reactor, std::net::TcpStream::connect(listener.local_addr()?)?)?;
    /// stream.set_nodelay(true)?;
    /// assert!(stream.nodelay()?);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn set_nodelay(&self, on: bool) -> io::Result<()> {
        self.io.set_nodelay(on)
    }

    /// Whether Nagle's algorithm is off.
    ///
    /// # Errors
    ///
    /// The system error.
    ///
    /// # Examples
    ///
    /// See [`TcpStream::set_nodelay`].
    pub fn nodelay(&self) -> io::Result<bool> {
        self.io.nodelay()
    }

    fn poll_read_inner(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        poll_io(&self.source, Dir::Read, cx, || (&self.io).read(buf))
    }

    fn poll_write_inner(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        poll_io(&self.source, Dir::Write, cx, || (&self.io).write(buf))
    }

    fn poll_write_vectored_inner(
        &self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        poll_io(&self.source, Dir::Write, cx, || {
            (&self.io).write_vectored(bufs)
        })
    }

    fn shutdown_write(&self) -> Poll<io::Result<()>> {
        Poll::Ready(match self.io.shutdown(Shutdown::Write) {
            // The peer already reset the connection: nothing left to shut down.
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(()),
            r => r,
        })
    }
}

/// One non-blocking connect to `addr`, waited on until it completes or fails.
async fn connect_addr(reactor: &Reactor, addr: SocketAddr) -> io::Result<TcpStream> {
    log::debug!("connecting to {addr}");
    let sock = new_socket(addr, socket2::Type::STREAM)?;
    let in_progress = match sock.connect(&addr.into()) {
        Ok(()) => false,
        Err(e)
            if e.raw_os_error() == Some(crate::sys::EINPROGRESS)
                || e.kind() == io::ErrorKind::WouldBlock =>
        {
            true
        }
        Err(e) => return Err(e),
    };
    let stream = TcpStream::from_std(reactor, sock.into())?;
    if in_progress {
        poll_fn(|cx| {
            poll_io(&stream.source, Dir::Write, cx, || {
                if let Some(e) = stream.io.take_error()? {
                    return Err(e);
                }
                match stream.io.peer_addr() {
                    Ok(_) => Ok(()),
                    // Still connecting.
                    Err(e) if e.kind() == io::ErrorKind::NotConnected => {
                        Err(io::ErrorKind::WouldBlock.into())
                    }
                    Err(e) => Err(e),
                }
            })
        })
        .await?;
    }
    Ok(stream)
}

/// Resolves `name` on the worker pool, then tries its addresses in order.
async fn connect_name(reactor: &Reactor, name: String) -> io::Result<TcpStream> {
    let lookup_name = name.clone();
    let lookup = reactor.defer_to_thread(move || Ok(crate::tcp::resolve(&lookup_name)));
    let addrs = match CancelOnDrop(lookup).await {
        Ok(Ok(addrs)) => addrs,
        Ok(Err(e)) => {
            return Err(io::Error::new(
                e.kind(),
                format!("cannot resolve {name}: {e}"),
            ))
        }
        // The pool refused the job, or the reactor shut down.
        Err(f) => return Err(io::Error::other(format!("cannot resolve {name}: {f}"))),
    };
    let mut failures = Vec::new();
    for addr in addrs {
        match connect_addr(reactor, addr).await {
            Ok(stream) => return Ok(stream),
            Err(e) => {
                log::debug!("connect to {name} at {addr} failed: {e}");
                failures.push((addr, e));
            }
        }
    }
    let kind = failures
        .last()
        .map_or(io::ErrorKind::NotFound, |(_, e)| e.kind());
    let each: Vec<String> = failures.iter().map(|(a, e)| format!("{a}: {e}")).collect();
    Err(io::Error::new(
        kind,
        format!("cannot connect to {name} ({})", each.join("; ")),
    ))
}

/// A Deferred awaited by a future that may be dropped before it fires: dropping it
/// cancels the Deferred (its timer or worker job), which a plain Deferred does not do.
struct CancelOnDrop<T: 'static>(Deferred<T>);

impl<T: 'static> Future for CancelOnDrop<T> {
    type Output = Result<T, ropewalk_deferred::Failure>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0).poll(cx)
    }
}

impl<T: 'static> Drop for CancelOnDrop<T> {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

impl AsyncRead for TcpStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_read_inner(cx, buf)
    }
}

impl AsyncRead for &TcpStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_read_inner(cx, buf)
    }
}

impl AsyncWrite for TcpStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_inner(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored_inner(cx, bufs)
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.shutdown_write()
    }
}

impl AsyncWrite for &TcpStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_inner(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored_inner(cx, bufs)
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.shutdown_write()
    }
}

impl Drop for TcpStream {
    fn drop(&mut self) {
        self.source.detach();
    }
}

impl fmt::Debug for TcpStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpStream")
            .field("local_addr", &self.io.local_addr().ok())
            .field("peer_addr", &self.io.peer_addr().ok())
            .finish()
    }
}

/// A UDP socket for tasks: `sock.recv_from(&mut buf).await`, `sock.send_to(data,
/// addr).await`. Several tasks may share one (in an `Rc`); each waiting one is woken.
///
/// # Examples
///
/// See the [module documentation](self).
pub struct UdpSocket {
    source: Rc<Source>,
    io: std::net::UdpSocket,
}

impl UdpSocket {
    /// Binds to `addr` (IPv4 or IPv6; port 0 picks a free one). An IPv6 socket is
    /// IPv6-only; `SO_REUSEADDR` is not set.
    ///
    /// # Errors
    ///
    /// The system error if the address cannot be bound.
    ///
    /// # Examples
    ///
    /// ```
    /// use ropewalk_reactor::{net::UdpSocket, Reactor};
    ///
    /// let reactor = Reactor::new()?;
    /// let sock = UdpSocket::bind(&reactor, "[::1]:0".parse().unwrap());
    /// # drop(sock);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn bind(reactor: &Reactor, addr: SocketAddr) -> io::Result<UdpSocket> {
        let sock = new_socket(addr, socket2::Type::DGRAM)?;
        sock.bind(&addr.into())?;
        log::debug!("async UDP socket on {addr}");
        UdpSocket::from_std(reactor, sock.into())
    }

    /// Adopts a socket made elsewhere; it is made non-blocking.
    ///
    /// # Errors
    ///
    /// The system error if it cannot be made non-blocking or registered.
    ///
    /// # Examples
    ///
    /// ```
    /// use ropewalk_reactor::{net::UdpSocket, Reactor};
    ///
    /// let reactor = Reactor::new()?;
    /// let sock = UdpSocket::from_std(&reactor, std::net::UdpSocket::bind("127.0.0.1:0")?)?;
    /// assert_eq!(reactor.stats().sources, 1);
    /// drop(sock);
    /// assert_eq!(reactor.stats().sources, 0);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn from_std(reactor: &Reactor, sock: std::net::UdpSocket) -> io::Result<UdpSocket> {
        sock.set_nonblocking(true)?;
        let source = Source::register(reactor, &sock)?;
        Ok(UdpSocket { source, io: sock })
    }

    /// Waits for a datagram, copies it into `buf` (the rest of a longer datagram is
    /// dropped) and gives its length and sender.
    ///
    /// # Errors
    ///
    /// The system error (`ConnectionRefused` in connected mode after an ICMP
    /// port-unreachable); [`io::ErrorKind::NotConnected`] after reactor shutdown.
    ///
    /// # Examples
    ///
    /// See the [module documentation](self).
    pub async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        poll_fn(|cx| poll_io(&self.source, Dir::Read, cx, || self.io.recv_from(buf))).await
    }

    /// Sends one datagram to `target`, waiting while the socket buffer is full.
    ///
    /// # Errors
    ///
    /// The system error (`EMSGSIZE` for a datagram too large, for instance).
    ///
    /// # Examples
    ///
    /// See the [module documentation](self).
    pub async fn send_to(&self, data: &[u8], target: SocketAddr) -> io::Result<usize> {
        poll_fn(|cx| {
            poll_io(&self.source, Dir::Write, cx, || {
                self.io.send_to(data, target)
            })
        })
        .await
    }

    /// Connects to `addr`: [`send`](Self::send) and [`recv`](Self::recv) then talk to it
    /// alone. (No packet is sent, so this does not wait.)
    ///
    /// # Errors
    ///
    /// The system error (an address of the other family, for instance).
    ///
    /// # Examples
    ///
    /// ```
    /// use ropewalk_reactor::deferred::Failure;
    /// use ropewalk_reactor::{net::UdpSocket, Reactor};
    ///
    /// let reactor = Reactor::new()?;
    /// let a = UdpSocket::bind(&reactor, "127.0.0.1:0".parse().unwrap())?;
    /// let b = UdpSocket::bind(&reactor, "127.0.0.1:0".parse().unwrap())?;
    /// a.connect(b.local_addr()?)?;
    /// b.connect(a.local_addr()?)?;
    /// let d = reactor.spawn(async move {
    ///     a.send(b"over").await?;
    ///     let mut buf = [0u8; 8];
    ///     let n = b.recv(&mut buf).await?;
    ///     Ok::<_, Failure>(buf[..n].to_vec())
    /// });
    /// assert_eq!(d.wait().unwrap(), b"over");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn connect(&self, addr: SocketAddr) -> io::Result<()> {
        self.io.connect(addr)
    }

    /// In connected mode, sends one datagram to the peer.
    ///
    /// # Errors
    ///
    /// As [`send_to`](Self::send_to); `NotConnected` when not connected,
    /// `ConnectionRefused` after an ICMP port-unreachable.
    ///
    /// # Examples
    ///
    /// See [`UdpSocket::connect`].
    pub async fn send(&self, data: &[u8]) -> io::Result<usize> {
        poll_fn(|cx| poll_io(&self.source, Dir::Write, cx, || self.io.send(data))).await
    }

    /// In connected mode, waits for a datagram from the peer.
    ///
    /// # Errors
    ///
    /// As [`recv_from`](Self::recv_from).
    ///
    /// # Examples
    ///
    /// See [`UdpSocket::connect`].
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        poll_fn(|cx| poll_io(&self.source, Dir::Read, cx, || self.io.recv(buf))).await
    }

    /// The address it is bound to (with the real port when asked for port 0).
    ///
    /// # Errors
    ///
    /// The system error.
    ///
    /// # Examples
    ///
    /// ```
    /// use ropewalk_reactor::{net::UdpSocket, Reactor};
    ///
    /// let reactor = Reactor::new()?;
    /// let sock = UdpSocket::bind(&reactor, "127.0.0.1:0".parse().unwrap())?;
    /// assert_ne!(sock.local_addr()?.port(), 0);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.local_addr()
    }

    /// The peer, in connected mode.
    ///
    /// # Errors
    ///
    /// `NotConnected` when not connected.
    ///
    /// # Examples
    ///
    /// ```
    /// use ropewalk_reactor::{net::UdpSocket, Reactor};
    ///
    /// let reactor = Reactor::new()?;
    /// let sock = UdpSocket::bind(&reactor, "127.0.0.1:0".parse().unwrap())?;
    /// assert!(sock.peer_addr().is_err());
    /// sock.connect("127.0.0.1:9".parse().unwrap())?;
    /// assert_eq!(sock.peer_addr()?.port(), 9);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.io.peer_addr()
    }

    /// Allows sending to broadcast addresses (`SO_BROADCAST`).
    ///
    /// # Errors
    ///
    /// The system error.
    ///
    /// # Examples
    ///
    /// ```
    /// use ropewalk_reactor::{net::UdpSocket, Reactor};
    ///
    /// let reactor = Reactor::new()?;
    /// let sock = UdpSocket::bind(&reactor, "127.0.0.1:0".parse().unwrap())?;
    /// sock.set_broadcast(true)?;
    /// assert!(sock.broadcast()?);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn set_broadcast(&self, on: bool) -> io::Result<()> {
        self.io.set_broadcast(on)
    }

    /// Whether sending to broadcast addresses is allowed.
    ///
    /// # Errors
    ///
    /// The system error.
    ///
    /// # Examples
    ///
    /// See [`UdpSocket::set_broadcast`].
    pub fn broadcast(&self) -> io::Result<bool> {
        self.io.broadcast()
    }
}

impl Drop for UdpSocket {
    fn drop(&mut self) {
        self.source.detach();
    }
}

impl fmt::Debug for UdpSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UdpSocket")
            .field("local_addr", &self.io.local_addr().ok())
            .field("peer_addr", &self.io.peer_addr().ok())
            .finish()
    }
}
