//! A client whose protocol hands its result to the caller as a Deferred:
//! [`Reactor::connect_for`] and the [`Finish`] slot its protocol fills (Twisted's
//! `ClientCreator` / `connectProtocol`, with the result instead of the protocol).

use std::cell::{Cell, RefCell};
use std::fmt;
use std::rc::Rc;
use std::time::Duration;

use ropewalk_deferred::{CancelHandle, Deferred, Failure, Resolver};

use crate::protocol::{Address, Protocol, TransportRef};
use crate::reactor::Reactor;
use crate::tcp::Target;

/// A connection made by [`Reactor::connect_for`] ended before its protocol gave a result.
///
/// # Examples
///
/// ```
/// use ropewalk_reactor::{Address, ConnectionError, NoResult};
/// use ropewalk_reactor::deferred::Failure;
///
/// let e = NoResult::new(Address::Test, Failure::new(ConnectionError::Done));
/// assert_eq!(e.to_string(), "connection to test ended before a result: connection closed cleanly");
/// assert!(e.reason().downcast_ref::<ConnectionError>().unwrap().is_clean());
/// ```
#[derive(Debug, thiserror::Error)]
#[error("connection to {peer} ended before a result: {reason}")]
pub struct NoResult {
    peer: Address,
    reason: Failure,
}

impl NoResult {
    /// The error for a connection to `peer` that ended for `reason`.
    ///
    /// # Examples
    ///
    /// ```
    /// # use ropewalk_reactor::{Address, NoResult};
    /// # use ropewalk_reactor::deferred::Failure;
    /// let e = NoResult::new(Address::Test, Failure::msg("bad line"));
    /// assert_eq!(e.peer(), &Address::Test);
    /// ```
    pub fn new(peer: Address, reason: Failure) -> NoResult {
        NoResult { peer, reason }
    }

    /// Where the connection went.
    ///
    /// # Examples
    ///
    /// ```
    /// # use ropewalk_reactor::{Address, NoResult};
    /// # use ropewalk_reactor::deferred::Failure;
    /// assert_eq!(NoResult::new(Address::Test, Failure::msg("x")).peer().to_string(), "test");
    /// ```
    pub fn peer(&self) -> &Address {
        &self.peer
    }

    /// Why it ended: what [`Protocol::connection_lost`] was given (a
    /// [`ConnectionError`](crate::ConnectionError), or the failure the protocol returned).
    ///
    /// # Examples
    ///
    /// ```
    /// # use ropewalk_reactor::{Address, NoResult};
    /// # use ropewalk_reactor::deferred::Failure;
    /// assert_eq!(NoResult::new(Address::Test, Failure::msg("x")).reason().to_string(), "x");
    /// ```
    pub fn reason(&self) -> &Failure {
        &self.reason
    }
}

/// What a [`Finish`] and its connection share.
struct FinishState<T> {
    resolver: RefCell<Option<Resolver<T>>>,
    /// Set once connected, so cancelling the result closes the connection.
    transport: RefCell<Option<TransportRef>>,
    /// Set while connecting, so cancelling the result abandons the attempt.
    connecting: RefCell<Option<CancelHandle>>,
    peer: RefCell<Option<Address>>,
}

impl<T: 'static> FinishState<T> {
    fn resolve(&self, result: Result<T, Failure>) -> bool {
        // Taken before firing: the callbacks that run may reach this slot again.
        let resolver = self.resolver.borrow_mut().take();
        match resolver {
            Some(r) if !r.is_called() => r.resolve(result).is_ok(),
            _ => false,
        }
    }

    fn is_done(&self) -> bool {
        self.resolver
            .borrow()
            .as_ref()
            .is_none_or(Resolver::is_called)
    }
}

/// The slot in which a client protocol made by [`Reactor::connect_for`] puts its result:
/// the Deferred that `connect_for` returned fires with it.
///
/// The first of [`succeed`](Self::succeed) and [`fail`](Self::fail) wins; later ones, and
/// any after the connection failed or the caller cancelled, return `false` and do
/// nothing. If the connection ends with the slot still empty, the Deferred errbacks with
/// [`NoResult`] naming the reason. Giving the result does not close the connection: the
/// protocol closes it when it is done (usually right after).
///
/// `Finish` is a cheap handle: clones fill the same slot (hand one to a callback).
///
/// # Examples
///
/// A protocol that answers with the first chunk it reads, tested without sockets:
///
/// ```
/// use ropewalk_reactor::deferred::{Deferred, Failure};
/// use ropewalk_reactor::testing::StringTransport;
/// use ropewalk_reactor::{Finish, Protocol};
///
/// struct First(Finish<Vec<u8>>);
/// impl Protocol for First {
///     fn data_received(&mut self, data: &[u8]) -> Result<(), Failure> {
///         self.0.succeed(data.to_vec());
///         Ok(())
///     }
/// }
///
/// let (finish, d) = Finish::pending();
/// let mut p = First(finish.clone());
/// StringTransport::connect(&mut p);
/// p.data_received(b"hello").unwrap();
/// assert!(!finish.succeed(b"again".to_vec()), "the first result wins");
/// assert_eq!(d.wait().unwrap(), b"hello");
/// ```
pub struct Finish<T> {
    state: Rc<FinishState<T>>,
}

impl<T: 'static> Finish<T> {
    /// An empty slot and the Deferred it fires, without a connection: for testing a
    /// protocol on a [`StringTransport`](crate::testing::StringTransport).
    ///
    /// # Examples
    ///
    /// ```
    /// let (finish, d) = ropewalk_reactor::Finish::<u8>::pending();
    /// assert!(finish.succeed(7));
    /// assert_eq!(d.wait().unwrap(), 7);
    /// ```
    #[track_caller]
    pub fn pending() -> (Finish<T>, Deferred<T>) {
        let state = Rc::new(FinishState {
            resolver: RefCell::new(None),
            transport: RefCell::new(None),
            connecting: RefCell::new(None),
            peer: RefCell::new(None),
        });
        let weak = Rc::downgrade(&state);
        let (d, resolver) = Deferred::with_canceller(move || {
            if let Some(s) = weak.upgrade() {
                // The resolver stays: its later fires return `AlreadyCalled`.
                let connecting = s.connecting.borrow_mut().take();
                if let Some(h) = connecting {
                    h.cancel();
                }
                let transport = s.transport.borrow().clone();
                if let Some(t) = transport {
                    t.abort_connection();
                }
            }
            None
        });
        *state.resolver.borrow_mut() = Some(resolver);
        (Finish { state }, d)
    }
}

impl<T: 'static> Finish<T> {
    /// Fires the Deferred with `value`. Returns whether it did (`false`: it already had a
    /// result, or was cancelled).
    ///
    /// # Examples
    ///
    /// ```
    /// let (finish, d) = ropewalk_reactor::Finish::pending();
    /// assert!(finish.succeed("done"));
    /// assert!(!finish.succeed("twice"));
    /// assert_eq!(d.wait().unwrap(), "done");
    /// ```
    pub fn succeed(&self, value: T) -> bool {
        self.state.resolve(Ok(value))
    }

    /// Errbacks the Deferred with `failure` (the protocol found the answer wrong, say).
    /// Returns whether it did.
    ///
    /// # Examples
    ///
    /// ```
    /// let (finish, d) = ropewalk_reactor::Finish::<u32>::pending();
    /// assert!(finish.fail("no such key".parse::<u32>().unwrap_err()));
    /// assert!(d.wait().unwrap_err().is::<std::num::ParseIntError>());
    /// ```
    pub fn fail(&self, failure: impl Into<Failure>) -> bool {
        self.state.resolve(Err(failure.into()))
    }

    /// Whether the Deferred has its result (or was cancelled): a protocol that has nothing
    /// more to do then can close.
    ///
    /// # Examples
    ///
    /// ```
    /// let (finish, _d) = ropewalk_reactor::Finish::pending();
    /// assert!(!finish.is_done());
    /// finish.succeed(());
    /// assert!(finish.is_done());
    /// ```
    pub fn is_done(&self) -> bool {
        self.state.is_done()
    }
}

impl<T> Clone for Finish<T> {
    fn clone(&self) -> Self {
        Finish {
            state: self.state.clone(),
        }
    }
}

impl<T: 'static> fmt::Debug for Finish<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Finish")
            .field("done", &self.is_done())
            .field("peer", &self.state.peer.borrow())
            .finish()
    }
}

/// The user's protocol, watched: a connection that ends with the slot still empty fails
/// the Deferred with the reason.
struct Finishing<P, T> {
    inner: P,
    state: Rc<FinishState<T>>,
}

impl<P: Protocol, T: 'static> Protocol for Finishing<P, T> {
    fn connection_made(&mut self, transport: TransportRef) {
        *self.state.transport.borrow_mut() = Some(transport.clone());
        self.inner.connection_made(transport);
    }

    fn data_received(&mut self, data: &[u8]) -> Result<(), Failure> {
        self.inner.data_received(data)
    }

    fn eof_received(&mut self) -> bool {
        self.inner.eof_received()
    }

    fn connection_lost(&mut self, reason: Failure) {
        // The protocol may give its result now (one that reads until the peer closes).
        self.inner.connection_lost(reason.clone());
        self.state.transport.borrow_mut().take();
        let peer = self.state.peer.borrow().clone().unwrap_or(Address::Test);
        self.state
            .resolve(Err(Failure::new(NoResult::new(peer, reason))));
    }
}

impl Reactor {
    /// Connects to `target` over TCP, runs the protocol `make` builds on the connection,
    /// and returns a Deferred of the result that protocol puts in its [`Finish`] (Twisted's
    /// `ClientCreator` / `connectProtocol`, one step further: the Deferred carries the
    /// answer, not the protocol).
    ///
    /// The Deferred fails once, cleanly:
    /// - with the [`ConnectionError`](crate::ConnectionError) of a connection that could
    ///   not be made (`Refused`, `TimedOut` after `timeout`, `LookupFailed`...);
    /// - with [`NoResult`], naming the reason, if the connection ends before the protocol
    ///   gave a result (also when the protocol's `data_received` returned an error);
    /// - with what the protocol passed to [`Finish::fail`].
    ///
    /// Cancelling the Deferred abandons the attempt or aborts the connection.
    ///
    /// # Examples
    ///
    /// Ask a line server one question:
    ///
    /// ```
    /// use std::time::Duration;
    /// use ropewalk_reactor::deferred::Failure;
    /// use ropewalk_reactor::{ConnectionError, Finish, Protocol, Reactor, TransportRef};
    ///
    /// /// Sends a question, answers with the reply.
    /// struct Ask(Finish<String>);
    /// impl Protocol for Ask {
    ///     fn connection_made(&mut self, t: TransportRef) { t.write(b"ping\n"); }
    ///     fn data_received(&mut self, data: &[u8]) -> Result<(), Failure> {
    ///         self.0.succeed(String::from_utf8_lossy(data).into_owned());
    ///         Ok(())
    ///     }
    /// }
    ///
    /// /// Answers every chunk with `pong`.
    /// struct Pong(Option<TransportRef>);
    /// impl Protocol for Pong {
    ///     fn connection_made(&mut self, t: TransportRef) { self.0 = Some(t); }
    ///     fn data_received(&mut self, _: &[u8]) -> Result<(), Failure> {
    ///         self.0.as_ref().unwrap().write(b"pong");
    ///         Ok(())
    ///     }
    /// }
    ///
    /// let reactor = Reactor::new()?;
    /// let port = reactor.listen_tcp("127.0.0.1:0".parse().unwrap(), |_| Some(Pong(None)))?;
    /// let addr = port.local_addr().inet().unwrap();
    /// let answer = reactor.connect_for(addr, Ask, Duration::from_secs(5)).wait();
    /// assert_eq!(answer.unwrap(), "pong");
    ///
    /// port.stop_listening();
    /// let refused = reactor.connect_for(addr, Ask, Duration::from_secs(5)).wait();
    /// let f = refused.unwrap_err();
    /// assert!(matches!(f.downcast_ref(), Some(ConnectionError::Refused(_))));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[track_caller]
    pub fn connect_for<T: 'static, P: Protocol>(
        &self,
        target: impl Into<Target>,
        make: impl FnOnce(Finish<T>) -> P + 'static,
        timeout: Duration,
    ) -> Deferred<T> {
        let (finish, d) = Finish::pending();
        let state = finish.state.clone();
        let make = Cell::new(Some((make, finish)));
        let factory = move |peer: &Address| {
            // Built once: the one address that connected.
            let (make, finish) = make.take()?;
            *finish.state.peer.borrow_mut() = Some(peer.clone());
            let state = finish.state.clone();
            Some(Finishing {
                inner: make(finish),
                state,
            })
        };
        let connecting = self.connect_tcp(target, factory, timeout);
        *state.connecting.borrow_mut() = Some(connecting.cancel_handle());
        let failed = state.clone();
        connecting.add_callbacks(
            move |_| {
                state.connecting.borrow_mut().take();
                Ok(())
            },
            move |f: Failure| {
                failed.connecting.borrow_mut().take();
                failed.resolve(Err(f));
                Ok(())
            },
        );
        d
    }
}
