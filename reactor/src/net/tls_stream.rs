//! TLS for tasks: [`TlsStream`], a [`TcpStream`] through rustls, with the same
//! `AsyncRead` / `AsyncWrite` as the stream it wraps.

use std::fmt;
use std::future::poll_fn;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::io::{AsyncRead, AsyncWrite};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, Connection, ServerConfig, ServerConnection};

use super::TcpStream;
use crate::reactor::Reactor;
use crate::tls_error::TlsError;
use crate::tls_info::TlsInfo;

/// A TLS connection for a spawned task (`Reactor::spawn`): [`connect`](Self::connect)
/// as a client, or [`accept`](Self::accept) a [`TcpStream`] from a
/// [`TcpListener`](crate::net::TcpListener) as a server; both return once the handshake
/// has finished. It reads and writes plaintext through `futures`' `AsyncRead` and
/// `AsyncWrite`, as [`TcpStream`] does; `close` sends `close_notify`, then shuts the
/// socket's sending side. A read returns 0 at the peer's `close_notify`, and fails with
/// `UnexpectedEof` if the peer closed its socket without one (a possible truncation).
///
/// Handshake and protocol failures are `io::Error`s of kind `InvalidData` whose inner
/// error is the [`TlsError`] saying why (`err.get_ref()` and `downcast_ref`).
///
/// # Examples
///
/// ```
/// use futures::io::{AsyncReadExt, AsyncWriteExt};
/// use ropewalk_reactor::deferred::Failure;
/// use ropewalk_reactor::net::{TcpListener, TlsStream};
/// use ropewalk_reactor::tls::{TlsClientBuilder, TlsServerBuilder};
/// use ropewalk_reactor::Reactor;
///
/// # let ca = ropewalk_testkit::pki::TestCa::new();
/// # let leaf = ca.leaf(&["localhost"]);
/// # let (cert_pem, key_pem, ca_pem) = (leaf.cert_pem, leaf.key_pem, ca.pem());
/// let server = TlsServerBuilder::from_pem(cert_pem.as_bytes(), key_pem.as_bytes())?.build()?;
/// let client = TlsClientBuilder::new().without_default_roots().add_root_pem(ca_pem.as_bytes())?.build()?;
///
/// let reactor = Reactor::new()?;
/// let listener = TcpListener::bind(&reactor, "127.0.0.1:0".parse()?)?;
/// let addr = listener.local_addr()?;
/// reactor.spawn(async move {
///     let (tcp, _) = listener.accept().await?;
///     let mut tls = TlsStream::accept(tcp, server).await?;
///     let mut buf = [0u8; 5];
///     tls.read_exact(&mut buf).await?;
///     tls.write_all(&buf).await?;
///     tls.close().await?;
///     Ok::<_, Failure>(())
/// });
/// let r = reactor.clone();
/// let echoed = reactor.spawn(async move {
///     let mut tls = TlsStream::connect(&r, addr, "localhost", client).await?;
///     tls.write_all(b"hello").await?;
///     let mut back = Vec::new();
///     tls.read_to_end(&mut back).await?;
///     Ok::<_, Failure>(back)
/// });
/// assert_eq!(echoed.wait()?, b"hello");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct TlsStream {
    io: TcpStream,
    tls: Connection,
    close_sent: bool,
}

/// The socket as blocking-style `Read` / `Write` for rustls: "not ready" is `WouldBlock`,
/// with the task's waker registered.
struct SyncIo<'a, 'b> {
    io: &'a TcpStream,
    cx: &'a mut Context<'b>,
}

fn pending_is_would_block<T>(p: Poll<io::Result<T>>) -> io::Result<T> {
    match p {
        Poll::Ready(r) => r,
        Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
    }
}

impl Read for SyncIo<'_, '_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        pending_is_would_block(Pin::new(&mut &*self.io).poll_read(self.cx, buf))
    }
}

impl Write for SyncIo<'_, '_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        pending_is_would_block(Pin::new(&mut &*self.io).poll_write(self.cx, buf))
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        pending_is_would_block(Pin::new(&mut &*self.io).poll_write_vectored(self.cx, bufs))
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn tls_io_error(e: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, TlsError::from(e))
}

impl TlsStream {
    /// Connects to `addr`, then runs a TLS handshake as a client verifying the server as
    /// `server_name` (a DNS name or an IP address) with `config`.
    ///
    /// # Errors
    ///
    /// The connect's `io::Error`; a bad `server_name` (`InvalidInput`); a failed
    /// handshake (`InvalidData`, with its [`TlsError`]); the peer closing during it
    /// (`UnexpectedEof`).
    pub async fn connect(
        reactor: &Reactor,
        addr: SocketAddr,
        server_name: &str,
        config: Arc<ClientConfig>,
    ) -> io::Result<TlsStream> {
        let name = ServerName::try_from(server_name.to_string()).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                TlsError::InvalidServerName(server_name.to_string()),
            )
        })?;
        let conn = ClientConnection::new(config, name).map_err(tls_io_error)?;
        let io = TcpStream::connect(reactor, addr).await?;
        TlsStream::handshake(io, conn.into()).await
    }

    /// Runs a TLS handshake as a server with `config` on `io` (a stream accepted from a
    /// [`TcpListener`](crate::net::TcpListener)).
    ///
    /// # Errors
    ///
    /// As [`connect`](Self::connect)'s handshake.
    pub async fn accept(io: TcpStream, config: Arc<ServerConfig>) -> io::Result<TlsStream> {
        let conn = ServerConnection::new(config).map_err(tls_io_error)?;
        TlsStream::handshake(io, conn.into()).await
    }

    async fn handshake(io: TcpStream, tls: Connection) -> io::Result<TlsStream> {
        let mut s = TlsStream {
            io,
            tls,
            close_sent: false,
        };
        poll_fn(|cx| loop {
            if let Poll::Ready(Err(e)) = s.poll_send(cx) {
                return Poll::Ready(Err(e));
            }
            if !s.tls.is_handshaking() {
                // What is left to send (the client's Finished) goes with the first write
                // or flush; rustls keeps it.
                return Poll::Ready(Ok(()));
            }
            match s.poll_receive(cx) {
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        TlsError::PeerClosed(None),
                    )))
                }
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        })
        .await?;
        Ok(s)
    }

    /// What the handshake negotiated (ALPN, the peer's certificates, version, suite, SNI).
    ///
    /// # Examples
    ///
    /// See [`TlsStream`]; `tls.tls_info().alpn` after `connect`.
    pub fn tls_info(&self) -> TlsInfo {
        TlsInfo::of(&self.tls).expect("the handshake has finished")
    }

    /// The stream below.
    ///
    /// # Examples
    ///
    /// See [`TlsStream`]; `tls.get_ref().peer_addr()`.
    pub fn get_ref(&self) -> &TcpStream {
        &self.io
    }

    /// Writes the ciphertext rustls holds; `Ready(Ok)` once all is written.
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.tls.wants_write() {
            let mut io = SyncIo { io: &self.io, cx };
            match self.tls.write_tls(&mut io) {
                Ok(0) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Poll::Pending,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
        Poll::Ready(Ok(()))
    }

    /// Reads ciphertext once and gives it to rustls; the bytes read (0 at the socket's EOF).
    fn poll_receive(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let mut io = SyncIo { io: &self.io, cx };
        let n = match self.tls.read_tls(&mut io) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Poll::Pending,
            Err(e) => return Poll::Ready(Err(e)),
        };
        if let Err(e) = self.tls.process_new_packets() {
            // The alert that says why, if the socket takes it now.
            let _ = self.poll_send(cx);
            return Poll::Ready(Err(tls_io_error(e)));
        }
        Poll::Ready(Ok(n))
    }
}

impl AsyncRead for TlsStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let s = self.get_mut();
        loop {
            match s.tls.reader().read(buf) {
                Ok(n) => return Poll::Ready(Ok(n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
            // Answers rustls owes the peer (key updates) before waiting for more.
            if let Poll::Ready(Err(e)) = s.poll_send(cx) {
                return Poll::Ready(Err(e));
            }
            match s.poll_receive(cx) {
                // At the socket's EOF rustls' reader now says whether it was clean.
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl AsyncWrite for TlsStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let s = self.get_mut();
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        loop {
            let n = s.tls.writer().write(buf)?;
            if n > 0 {
                // Sent as far as the socket takes it now; the rest by the next write or
                // flush.
                if let Poll::Ready(Err(e)) = s.poll_send(cx) {
                    return Poll::Ready(Err(e));
                }
                return Poll::Ready(Ok(n));
            }
            // rustls' buffer is full: wait until the socket takes some of it.
            match s.poll_send(cx) {
                Poll::Ready(Ok(())) => {}
                other => return other.map(|r| r.map(|()| 0)),
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().poll_send(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let s = self.get_mut();
        if !s.close_sent {
            s.close_sent = true;
            s.tls.send_close_notify();
        }
        match s.poll_send(cx) {
            Poll::Ready(Ok(())) => Pin::new(&mut s.io).poll_close(cx),
            other => other,
        }
    }
}

impl fmt::Debug for TlsStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsStream")
            .field("io", &self.io)
            .field("handshaking", &self.tls.is_handshaking())
            .finish_non_exhaustive()
    }
}
