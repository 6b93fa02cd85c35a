//! Serving on inherited listening sockets: systemd socket activation ([`listen_fds`],
//! the `LISTEN_FDS` / `LISTEN_PID` / `LISTEN_FDNAMES` protocol of `sd_listen_fds(3)`), and
//! a descriptor named by the operator ([`inherited_tcp_listener`], a `--listen-fd N`
//! option). Serve the listener with
//! [`Reactor::adopt_tcp_listener`](crate::Reactor::adopt_tcp_listener) (or an HTTP
//! server's `listen_on`).
//!
//! Each descriptor is taken at most once in the process (a second attempt is an error),
//! is checked to be a listening stream socket, and is made close-on-exec so that children
//! do not inherit it.

use std::io;
use std::net::TcpListener;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd, RawFd};

/// One socket passed by the service manager, with its name (`FileDescriptorName=` in the
/// `.socket` unit; `"unknown"` when none was given).
///
/// # Examples
///
/// ```
/// // Not started by systemd: nothing inherited.
/// assert!(ropewalk_reactor::activation::listen_fds(false)?.is_empty());
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct ListenFd {
    name: String,
    fd: OwnedFd,
}

impl ListenFd {
    /// The socket's name from `LISTEN_FDNAMES`, or `"unknown"`.
    ///
    /// # Examples
    ///
    /// ```
    /// for fd in ropewalk_reactor::activation::listen_fds(false)? {
    ///     println!("{}", fd.name());
    /// }
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The socket as a TCP listener.
    ///
    /// # Errors
    ///
    /// `InvalidInput` if it is not a listening stream socket; the system error if it
    /// cannot be asked.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let reactor = ropewalk_reactor::Reactor::new()?;
    /// for fd in ropewalk_reactor::activation::listen_fds(true)? {
    ///     let listener = fd.into_tcp_listener()?;
    ///     # let _ = listener;
    /// }
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn into_tcp_listener(self) -> io::Result<TcpListener> {
        crate::sys::activation::owned_tcp_listener(self.fd)
    }
}

impl AsFd for ListenFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl From<ListenFd> for OwnedFd {
    fn from(fd: ListenFd) -> OwnedFd {
        fd.fd
    }
}

/// The sockets systemd passed to this process (`sd_listen_fds(3)`): when `LISTEN_PID` is
/// this process's id, the `LISTEN_FDS` descriptors from 3 on, named by `LISTEN_FDNAMES`,
/// each made close-on-exec. Empty when the variables are unset or meant for another
/// process. With `unset_env`, the three variables are removed (as `sd_listen_fds(1)`
/// does) so that child processes do not take the sockets too; call it then before any
/// other thread reads the environment (at the start of `main`).
///
/// # Errors
///
/// `InvalidData` if a variable is malformed; the error of a descriptor that is not an
/// open socket or was already taken.
///
/// # Examples
///
/// ```
/// let inherited = ropewalk_reactor::activation::listen_fds(false)?;
/// assert!(inherited.is_empty()); // a doc test is not socket-activated
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn listen_fds(unset_env: bool) -> io::Result<Vec<ListenFd>> {
    Ok(crate::sys::activation::listen_fds(unset_env)?
        .into_iter()
        .map(|(name, fd)| ListenFd { name, fd })
        .collect())
}

/// The listening TCP socket this process inherited as descriptor `fd` (a `--listen-fd N`
/// option: a parent process or a supervisor bound it), made close-on-exec.
///
/// # Errors
///
/// `InvalidInput` for descriptors 0–2 or one that is not a listening stream socket;
/// `AlreadyExists` if it was taken before in this process; the system error (`EBADF`) if
/// it is not open.
///
/// # Examples
///
/// ```
/// use ropewalk_reactor::activation::inherited_tcp_listener;
///
/// assert_eq!(inherited_tcp_listener(1).unwrap_err().kind(), std::io::ErrorKind::InvalidInput);
/// assert!(inherited_tcp_listener(9999).is_err()); // not open
/// ```
pub fn inherited_tcp_listener(fd: RawFd) -> io::Result<TcpListener> {
    crate::sys::activation::inherited_tcp_listener(fd)
}
