//! Async sockets for tasks on the reactor (cooperative multitasking): [`TcpListener`],
//! [`TcpStream`] and [`UdpSocket`], awaited inside [`Reactor::spawn`].
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
//! with a timeout such as [`Deferred::add_timeout`](ropewalk_deferred::Deferred::add_timeout)).

use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::poll_fn;
use std::io::{self, IoSlice, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::task::{Context, Poll, Waker};

use futures::io::{AsyncRead, AsyncWrite};

use crate::reactor::{IoHandler, Reactor, ReactorCore};
use crate::slab::Key;
use crate::sys::{Interest, PollMode, Ready};
mod tls_stream;
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
/// use futures::io::{AsyncReadExt, AsyncWriteExt};
/// use ropewalk_reactor::deferred::Failure;
/// use ropewalk_reactor::{net::TcpListener, Reactor};
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

/// A TCP connection for tasks: [`AsyncRead`] and [`AsyncWrite`] (use
/// `futures::io::{AsyncReadExt, AsyncWriteExt}`), also on `&TcpStream`, so one task can
/// read and write at once.
///
/// Closing ([`AsyncWriteExt::close`](futures::io::AsyncWriteExt::close)) shuts down the
/// sending side; dropping the stream closes the socket. Writes go to the socket
/// directly: there is no buffer to flush.
///
/// # Examples
///
/// ```
/// use futures::io::{AsyncReadExt, AsyncWriteExt};
/// use ropewalk_reactor::deferred::Failure;
/// use ropewalk_reactor::{net::TcpStream, Reactor};
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
    /// Connects to `addr`: a non-blocking connect, then waits for the socket to become
    /// writable and reads its `SO_ERROR`. There is no timeout of its own: drop the future
    /// to give up.
    ///
    /// # Errors
    ///
    /// The system error: `ConnectionRefused` when nothing listens, for instance.
    ///
    /// # Examples
    ///
    /// ```
    /// use ropewalk_reactor::deferred::Failure;
    /// use ropewalk_reactor::{net::TcpStream, Reactor};
    ///
    /// let reactor = Reactor::new()?;
    /// // Nothing listens on this port: the connection is refused.
    /// let free = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    /// let r = reactor.clone();
    /// let d = reactor.spawn(async move {
    ///     TcpStream::connect(&r, free).await?;
    ///     Ok::<_, Failure>(())
    /// });
    /// let err = d.wait().unwrap_err();
    /// assert_eq!(
    ///     err.downcast_ref::<std::io::Error>().unwrap().kind(),
    ///     std::io::ErrorKind::ConnectionRefused
    /// );
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub async fn connect(reactor: &Reactor, addr: SocketAddr) -> io::Result<TcpStream> {
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
