//! Multi-core: several reactors, one per thread ([`ReactorGroup`]), and one TCP address
//! that all of them listen on ([`GroupListener`]), each with its own accept queue, all
//! sharing one, or fed by a dispatcher ([`AcceptQueue`]).
//!
//! A reactor and everything attached to it stay on the thread that made it; a group only
//! starts the threads, runs a setup closure on each (where the thread builds its own
//! `!Send` factories and protocols), and gives back `Send + Sync` [`ReactorHandle`]s.
//!
//! # Implementation
//!
//! [`ReactorGroupBuilder::start`] spawns the threads. Each makes its reactor, runs the
//! setup under `catch_unwind`, sends its result (a handle, or the setup's failure) back on
//! a channel, and, if the setup succeeded, runs the reactor until it is stopped. `start`
//! waits for all N results before it returns: when it returns `Ok`, every setup has run
//! (so every listener is listening). If any setup failed or panicked, the reactors that
//! did start are stopped, every thread is joined, and the first failure (lowest index) is
//! returned.
//!
//! [`ReactorGroup::stop`] asks every reactor to stop (through its handle: the request runs
//! on the reactor's next turn, so shutdown triggers run as after [`Reactor::stop`]), then
//! joins every thread; [`ReactorGroup::join`] only joins. A thread that panicked is
//! reported as [`GroupError::Panicked`]. Dropping a group that was neither stopped nor
//! joined stops and joins it (and logs what went wrong). A reactor thread blocked in a
//! callback that never returns cannot be stopped by anyone: `stop` then waits for it.

use std::fmt;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::str::FromStr;
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;

use ropewalk_deferred::{Failure, Panicked};

use crate::dispatch::{self, Dispatch, DispatchShared};
use crate::error::{GroupError, ReactorError};
use crate::protocol::{Address, Protocol};
use crate::reactor::{Reactor, ReactorHandle};
use crate::signals::{stop_on_signals, SignalGuard};
use crate::tcp::{bind_tcp, ListenOptions, ListeningPort};

/// N reactors, each on its own thread: the multi-core form of a ropewalk program (the
/// article's "N reactors", as seastar, glommio and monoio run one loop per core).
///
/// Made by [`ReactorGroup::start`] or [`ReactorGroup::builder`]. Each thread runs a setup
/// closure on its own reactor, then runs that reactor until [`stop`](Self::stop) (or
/// until something on it stops it). Nothing moves between reactors: a connection accepted
/// by one is served by that one. The group is `Send + Sync`; other threads reach a reactor
/// through [`handles`](Self::handles).
///
/// # Examples
///
/// Two reactors, each with a `!Send` counter of its own, reached from the main thread:
///
/// ```
/// use std::{cell::Cell, rc::Rc};
/// use ropewalk_reactor::ReactorGroup;
///
/// let group = ReactorGroup::start(2, |reactor, index| {
///     let ticks = Rc::new(Cell::new(index)); // lives on this reactor's thread only
///     reactor.call_soon(move || ticks.set(ticks.get() + 1));
///     Ok(())
/// })?;
/// assert_eq!(group.threads(), 2);
/// let answer: usize = group.handles()[1].blocking_call(|| Ok(41 + 1))?;
/// assert_eq!(answer, 42);
/// group.stop()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct ReactorGroup {
    handles: Vec<ReactorHandle>,
    threads: Vec<Option<JoinHandle<Result<(), ReactorError>>>>,
}

/// How to start a [`ReactorGroup`]: the number of threads and their names.
///
/// # Examples
///
/// ```
/// use ropewalk_reactor::ReactorGroup;
///
/// let group = ReactorGroup::builder()
///     .threads(3)
///     .name("echo")
///     .start(|_reactor, _index| Ok(()))?;
/// assert_eq!(group.threads(), 3);
/// group.stop()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct ReactorGroupBuilder {
    threads: usize,
    name: String,
    stack_size: Option<usize>,
}

impl Default for ReactorGroupBuilder {
    fn default() -> Self {
        ReactorGroupBuilder {
            threads: 0,
            name: "ropewalk-reactor".into(),
            stack_size: None,
        }
    }
}

impl ReactorGroupBuilder {
    /// The number of reactors, one thread each. Default (and `0`): one per CPU the process
    /// may use (`std::thread::available_parallelism`, 1 if that is unknown).
    ///
    /// # Examples
    ///
    /// ```
    /// let builder = ropewalk_reactor::ReactorGroup::builder().threads(2);
    /// # drop(builder);
    /// ```
    pub fn threads(mut self, n: usize) -> Self {
        self.threads = n;
        self
    }

    /// The threads' name prefix; thread `i` is named `"{prefix}-{i}"` (default
    /// `ropewalk-reactor`).
    ///
    /// # Examples
    ///
    /// ```
    /// use ropewalk_reactor::ReactorGroup;
    ///
    /// let group = ReactorGroup::builder().threads(1).name("web").start(|_, _| {
    ///     assert_eq!(std::thread::current().name(), Some("web-0"));
    ///     Ok(())
    /// })?;
    /// group.stop()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn name(mut self, prefix: impl Into<String>) -> Self {
        self.name = prefix.into();
        self
    }

    /// The stack size of each reactor thread, in bytes (default: Rust's default for
    /// spawned threads, 2 MiB unless `RUST_MIN_STACK` says otherwise).
    ///
    /// # Examples
    ///
    /// ```
    /// let builder = ropewalk_reactor::ReactorGroup::builder().stack_size(4 << 20);
    /// # drop(builder);
    /// ```
    pub fn stack_size(mut self, bytes: usize) -> Self {
        self.stack_size = Some(bytes);
        self
    }

    /// Starts the reactors: on each new thread, makes a [`Reactor`], calls
    /// `setup(&reactor, index)` (`index` is `0..threads`), then runs the reactor. Returns
    /// once every setup has returned.
    ///
    /// The setup is where a thread builds what is `!Send`: its factories, protocols,
    /// listeners (see [`GroupListener::listen`]), timers. It is shared by all threads, so it
    /// is `Fn + Send + Sync`.
    ///
    /// # Errors
    ///
    /// If a thread cannot be spawned, its reactor cannot be made, or its setup returns an
    /// error or panics, the reactors already started are stopped, every thread is joined,
    /// and the first error by index is returned: [`GroupError::Spawn`] or
    /// [`GroupError::Setup`] (a panic is a [`Failure`] whose
    /// [`is_panic`](Failure::is_panic) holds).
    ///
    /// # Examples
    ///
    /// ```
    /// use ropewalk_reactor::deferred::Failure;
    /// use ropewalk_reactor::{GroupError, ReactorGroup};
    ///
    /// let err = ReactorGroup::builder()
    ///     .threads(2)
    ///     .start(|_, index| if index == 1 { Err(Failure::msg("no config")) } else { Ok(()) })
    ///     .unwrap_err();
    /// assert!(matches!(err, GroupError::Setup { index: 1, .. }));
    /// ```
    pub fn start<S>(self, setup: S) -> Result<ReactorGroup, GroupError>
    where
        S: Fn(&Reactor, usize) -> Result<(), Failure> + Send + Sync + 'static,
    {
        let n = if self.threads == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            self.threads
        };
        let setup = Arc::new(setup);
        let (tx, rx) = mpsc::channel::<(usize, Result<ReactorHandle, GroupError>)>();
        let mut threads = Vec::with_capacity(n);
        let mut errors: Vec<GroupError> = Vec::new();
        for index in 0..n {
            let (tx, setup) = (tx.clone(), setup.clone());
            let mut builder = std::thread::Builder::new().name(format!("{}-{index}", self.name));
            if let Some(bytes) = self.stack_size {
                builder = builder.stack_size(bytes);
            }
            match builder.spawn(move || reactor_thread(index, &*setup, tx)) {
                Ok(t) => threads.push(Some(t)),
                Err(error) => {
                    errors.push(GroupError::Spawn { index, error });
                    break;
                }
            }
        }
        drop(tx);
        let mut handles: Vec<Option<ReactorHandle>> = (0..threads.len()).map(|_| None).collect();
        // Every spawned thread answers once; a thread that died without answering drops its
        // sender, so this ends either way.
        for (index, result) in rx.iter().take(threads.len()) {
            match result {
                Ok(h) => handles[index] = Some(h),
                Err(e) => errors.push(e),
            }
        }
        let started = handles.iter().all(Option::is_some);
        let mut group = ReactorGroup {
            handles: handles.into_iter().flatten().collect(),
            threads,
        };
        if errors.is_empty() && started && group.threads.len() == n {
            return Ok(group);
        }
        // Stop what started; a failed thread has ended on its own.
        let joined = group.shutdown(true);
        if let Err(e) = joined {
            errors.push(e);
        }
        errors.sort_by_key(GroupError::index);
        Err(errors.into_iter().next().unwrap_or(GroupError::Panicked {
            index: 0,
            message: "a reactor thread ended before its setup answered".into(),
        }))
    }
}

/// The body of a reactor thread.
fn reactor_thread(
    index: usize,
    setup: &(dyn Fn(&Reactor, usize) -> Result<(), Failure> + Send + Sync),
    tx: mpsc::Sender<(usize, Result<ReactorHandle, GroupError>)>,
) -> Result<(), ReactorError> {
    let reactor = match Reactor::new() {
        Ok(r) => r,
        Err(error) => {
            let _ = tx.send((index, Err(GroupError::Spawn { index, error })));
            return Ok(());
        }
    };
    let outcome = catch_unwind(AssertUnwindSafe(|| setup(&reactor, index)))
        .unwrap_or_else(|p| Err(Failure::from_panic(p)));
    match outcome {
        Ok(()) => {
            let _ = tx.send((index, Ok(reactor.handle())));
            drop(tx);
            reactor.run()
        }
        Err(failure) => {
            let _ = tx.send((index, Err(GroupError::Setup { index, failure })));
            Ok(())
        }
    }
}

impl ReactorGroup {
    /// A builder, to choose the number of threads and their names.
    ///
    /// # Examples
    ///
    /// ```
    /// let group = ropewalk_reactor::ReactorGroup::builder().threads(2).start(|_, _| Ok(()))?;
    /// group.stop()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn builder() -> ReactorGroupBuilder {
        ReactorGroupBuilder::default()
    }

    /// Starts `threads` reactors (0: one per CPU) with `setup` on each: the same as
    /// `ReactorGroup::builder().threads(threads).start(setup)`.
    ///
    /// # Errors
    ///
    /// As [`ReactorGroupBuilder::start`].
    ///
    /// # Examples
    ///
    /// ```
    /// use ropewalk_reactor::ReactorGroup;
    ///
    /// let group = ReactorGroup::start(2, |_reactor, index| {
    ///     println!("reactor {index} is up");
    ///     Ok(())
    /// })?;
    /// group.stop()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn start<S>(threads: usize, setup: S) -> Result<ReactorGroup, GroupError>
    where
        S: Fn(&Reactor, usize) -> Result<(), Failure> + Send + Sync + 'static,
    {
        ReactorGroup::builder().threads(threads).start(setup)
    }

    /// The number of reactors (threads) in the group.
    ///
    /// # Examples
    ///
    /// ```
    /// let group = ropewalk_reactor::ReactorGroup::start(2, |_, _| Ok(()))?;
    /// assert_eq!(group.threads(), 2);
    /// # group.stop()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn threads(&self) -> usize {
        self.handles.len()
    }

    /// A `Send + Sync` handle on each reactor, in index order: `call_from_thread`,
    /// `blocking_call`, `stop` one of them.
    ///
    /// # Examples
    ///
    /// ```
    /// let group = ropewalk_reactor::ReactorGroup::start(2, |_, _| Ok(()))?;
    /// for h in group.handles() {
    ///     assert!(!h.is_reactor_thread());
    ///     h.call_from_thread(|| println!("hello from a reactor thread"));
    /// }
    /// # group.stop()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn handles(&self) -> &[ReactorHandle] {
        &self.handles
    }

    /// Stops every reactor (after its current turn; shutdown triggers run) and joins every
    /// thread.
    ///
    /// # Errors
    ///
    /// The first problem by index: [`GroupError::Panicked`] for a thread that panicked,
    /// [`GroupError::Run`] for a reactor whose `run` failed. Every thread is joined either
    /// way.
    ///
    /// # Examples
    ///
    /// ```
    /// let group = ropewalk_reactor::ReactorGroup::start(4, |_, _| Ok(()))?;
    /// group.stop()?; // all four threads have ended
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn stop(mut self) -> Result<(), GroupError> {
        self.shutdown(true)
    }

    /// Waits until every reactor has stopped by other means (a signal handler from
    /// [`install_signal_handlers`](Self::install_signal_handlers), a handle's `stop`,
    /// code on the reactor calling [`Reactor::stop`]) and joins every thread.
    ///
    /// # Errors
    ///
    /// As [`stop`](Self::stop).
    ///
    /// # Examples
    ///
    /// ```
    /// let group = ropewalk_reactor::ReactorGroup::start(2, |reactor, _| {
    ///     let r = reactor.clone();
    ///     reactor.call_soon(move || r.stop().unwrap()); // each stops itself
    ///     Ok(())
    /// })?;
    /// group.join()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn join(mut self) -> Result<(), GroupError> {
        self.shutdown(false)
    }

    /// Makes SIGINT and SIGTERM stop every reactor of the group (then [`join`](Self::join)
    /// returns), until the returned guard is dropped.
    ///
    /// # Errors
    ///
    /// The system error if the handlers cannot be installed.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let group = ropewalk_reactor::ReactorGroup::start(2, |_, _| Ok(()))?;
    /// let _signals = group.install_signal_handlers()?;
    /// group.join()?; // Ctrl-C stops every reactor, then this returns
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn install_signal_handlers(&self) -> io::Result<SignalGuard> {
        stop_on_signals(self.handles.clone())
    }

    fn shutdown(&mut self, stop: bool) -> Result<(), GroupError> {
        if stop {
            for h in &self.handles {
                h.stop();
            }
        }
        let mut first = None;
        for (index, t) in self.threads.iter_mut().enumerate() {
            let Some(t) = t.take() else { continue };
            let result = match t.join() {
                Ok(Ok(())) => continue,
                Ok(Err(error)) => GroupError::Run { index, error },
                Err(p) => GroupError::Panicked {
                    index,
                    message: Panicked::from_payload(p).message().to_string(),
                },
            };
            log::error!("{result}");
            first.get_or_insert(result);
        }
        first.map_or(Ok(()), Err)
    }
}

impl Drop for ReactorGroup {
    fn drop(&mut self) {
        // Errors were logged by `shutdown`.
        let _ = self.shutdown(true);
    }
}

impl fmt::Debug for ReactorGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReactorGroup")
            .field("threads", &self.handles.len())
            .finish()
    }
}

/// How the reactors of a group share one TCP address (see [`GroupListener`]).
///
/// Parsed from `"own"` / `"per-reactor"`, `"shared"`, and `"dispatcher"` (round-robin),
/// `"dispatcher:round-robin"` or `"dispatcher:least-loaded"`; displayed as `"own"`,
/// `"shared"` and `"dispatcher:POLICY"`.
///
/// # Examples
///
/// ```
/// use ropewalk_reactor::{AcceptQueue, Dispatch};
///
/// assert_eq!("own".parse::<AcceptQueue>(), Ok(AcceptQueue::PerReactor));
/// assert_eq!("shared".parse::<AcceptQueue>(), Ok(AcceptQueue::Shared));
/// assert_eq!(AcceptQueue::Shared.to_string(), "shared");
/// assert_eq!(
///     "dispatcher".parse::<AcceptQueue>(),
///     Ok(AcceptQueue::Dispatcher(Dispatch::RoundRobin))
/// );
/// let least = AcceptQueue::Dispatcher(Dispatch::LeastLoaded);
/// assert_eq!(least.to_string(), "dispatcher:least-loaded");
/// assert_eq!(least.to_string().parse::<AcceptQueue>(), Ok(least));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AcceptQueue {
    /// Each reactor has its own listening socket on the address (`SO_REUSEPORT`), and the
    /// kernel spreads incoming connections over them by a hash of the connection's
    /// addresses and ports: each reactor accepts only from its own queue, and wakes only
    /// for its own connections. Linux (3.9+) and the BSDs; on Linux the spread is by hash,
    /// not by load, and connections waiting in the queue of a socket that closes are
    /// reset.
    PerReactor,
    /// One listening socket whose descriptor every reactor registers (a `try_clone` of
    /// it): all accept from one queue, so an idle reactor takes what a busy one leaves.
    /// On Linux each reactor registers it with `EPOLLEXCLUSIVE`, so an incoming
    /// connection wakes one idle reactor, not all of them (no thundering herd); elsewhere
    /// every idle reactor wakes, one `accept` wins and the others get `EAGAIN`. Which
    /// reactor gets a connection is not balanced: the first to wake accepts up to 128 at
    /// once.
    Shared,
    /// One listening socket, accepted from by one reactor of the group, the dispatcher
    /// (the first to call [`GroupListener::listen`]), which hands each connection to a
    /// reactor's own queue by the [`Dispatch`] policy: round-robin or least-loaded. The
    /// chosen reactor is woken once per batch of connections, and builds the protocol
    /// with its own factory; a connection for the dispatcher itself starts at once.
    ///
    /// The dispatcher is one of the serving reactors rather than a thread of its own (as
    /// Netty's boss group is): accepting is a small share of the work, and a dedicated
    /// thread would take a core from serving on a small machine. The price: while the
    /// dispatcher runs a long callback, nothing is accepted, and when its reactor stops,
    /// accepting ends (the socket closes; the other reactors keep their connections).
    /// A reactor whose port stops listening leaves the rotation; the connections waiting
    /// in its queue go to the others. A reactor's queue holds at most 1024 connections:
    /// a full one is passed over, and when all are full, accepting pauses and
    /// connections wait in the kernel's backlog.
    Dispatcher(Dispatch),
}

impl fmt::Display for AcceptQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AcceptQueue::PerReactor => "own",
            AcceptQueue::Shared => "shared",
            AcceptQueue::Dispatcher(policy) => return write!(f, "dispatcher:{policy}"),
        })
    }
}

/// An unknown [`AcceptQueue`] name.
///
/// # Examples
///
/// ```
/// use ropewalk_reactor::AcceptQueue;
///
/// let err = "sideways".parse::<AcceptQueue>().unwrap_err();
/// assert_eq!(
///     err.to_string(),
///     "unknown accept queue \"sideways\" (own, per-reactor, shared, dispatcher, \
///      dispatcher:round-robin or dispatcher:least-loaded)"
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown accept queue {0:?} (own, per-reactor, shared, dispatcher, \
     dispatcher:round-robin or dispatcher:least-loaded)"
)]
pub struct ParseAcceptQueueError(String);

impl FromStr for AcceptQueue {
    type Err = ParseAcceptQueueError;

    fn from_str(s: &str) -> Result<AcceptQueue, ParseAcceptQueueError> {
        match s {
            "own" | "per-reactor" | "reuse-port" => Ok(AcceptQueue::PerReactor),
            "shared" => Ok(AcceptQueue::Shared),
            "dispatcher" => Ok(AcceptQueue::Dispatcher(Dispatch::RoundRobin)),
            other => other
                .strip_prefix("dispatcher:")
                .and_then(|p| p.parse().ok())
                .map(AcceptQueue::Dispatcher)
                .ok_or_else(|| ParseAcceptQueueError(other.to_string())),
        }
    }
}

/// One TCP address that every reactor of a group listens on, each with its own accept
/// queue, all sharing one, or fed by a dispatcher ([`AcceptQueue`]).
///
/// Bind it once (before starting the group, so that port 0 is resolved and a bind error
/// is reported at once), move clones of it into the setup closure (it is `Clone + Send +
/// Sync`), and call [`listen`](Self::listen) there with each thread's own factory.
///
/// - [`AcceptQueue::PerReactor`]: `bind` binds a first socket with `SO_REUSEPORT`; the
///   first `listen` takes it, each later one binds another socket on the same address.
/// - [`AcceptQueue::Shared`]: `bind` binds and listens on one socket; each `listen`
///   registers a duplicate of its descriptor. The socket closes when the `GroupListener`
///   and every port made from it are gone.
/// - [`AcceptQueue::Dispatcher`]: `bind` binds and listens on one socket; the first
///   `listen` accepts from it and dispatches, each `listen` joins the rotation. The
///   socket closes when the dispatcher's reactor stops or the last reactor leaves the
///   rotation.
///
/// # Examples
///
/// ```
/// use std::io::{Read, Write};
/// use ropewalk_reactor::deferred::Failure;
/// use ropewalk_reactor::{AcceptQueue, Address, GroupListener, Protocol, ReactorGroup, TransportRef};
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
/// let listener = GroupListener::bind("127.0.0.1:0".parse().unwrap(), AcceptQueue::PerReactor)?;
/// let addr = listener.local_addr();
/// let group = ReactorGroup::start(2, move |reactor, _| {
///     listener.listen(reactor, |_: &Address| Some(Echo(None)))?;
///     Ok(())
/// })?;
/// let mut s = std::net::TcpStream::connect(addr)?;
/// s.write_all(b"ping")?;
/// let mut buf = [0; 4];
/// s.read_exact(&mut buf)?;
/// assert_eq!(&buf, b"ping");
/// group.stop()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct GroupListener {
    inner: Arc<ListenerInner>,
}

struct ListenerInner {
    addr: SocketAddr,
    queue: AcceptQueue,
    options: ListenOptions,
    /// `PerReactor`: the socket bound by `bind`, not yet listening, until the first
    /// `listen` takes it. `Shared`: unused.
    first: Mutex<Option<socket2::Socket>>,
    /// `Shared`: the one listening socket.
    shared: Option<TcpListener>,
    /// `Dispatcher`: the socket and the rotation.
    dispatcher: Option<Arc<DispatchShared>>,
}

impl GroupListener {
    /// Binds `addr` (port 0 picks a free port, the same for every reactor) for a group of
    /// reactors, with the default [`ListenOptions`] (backlog 1024).
    ///
    /// # Errors
    ///
    /// The system error if the address cannot be bound.
    ///
    /// # Examples
    ///
    /// ```
    /// use ropewalk_reactor::{AcceptQueue, GroupListener};
    ///
    /// let l = GroupListener::bind("127.0.0.1:0".parse().unwrap(), AcceptQueue::Shared)?;
    /// assert_ne!(l.local_addr().port(), 0);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn bind(addr: SocketAddr, queue: AcceptQueue) -> io::Result<GroupListener> {
        GroupListener::bind_with(addr, queue, &ListenOptions::default())
    }

    /// As [`bind`](Self::bind), with options. `reuse_port` is forced on for
    /// [`AcceptQueue::PerReactor`] (it is how that mode works) and left as given for
    /// `Shared`; `backlog` applies to every listening socket.
    ///
    /// # Errors
    ///
    /// The system error if the address cannot be bound.
    ///
    /// # Examples
    ///
    /// ```
    /// use ropewalk_reactor::{AcceptQueue, GroupListener, ListenOptions};
    ///
    /// let opts = ListenOptions { backlog: 4096, ..ListenOptions::default() };
    /// let l = GroupListener::bind_with("127.0.0.1:0".parse().unwrap(), AcceptQueue::PerReactor, &opts)?;
    /// assert_eq!(l.queue(), AcceptQueue::PerReactor);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn bind_with(
        addr: SocketAddr,
        queue: AcceptQueue,
        options: &ListenOptions,
    ) -> io::Result<GroupListener> {
        let mut options = options.clone();
        if queue == AcceptQueue::PerReactor {
            options.reuse_port = true;
        }
        let sock = bind_tcp(addr, &options)?;
        let local = sock
            .local_addr()?
            .as_socket()
            .ok_or_else(|| io::Error::other("not an internet socket"))?;
        let (first, shared, dispatcher) = match queue {
            AcceptQueue::PerReactor => (Some(sock), None, None),
            AcceptQueue::Shared => {
                sock.listen(options.backlog)?;
                sock.set_nonblocking(true)?;
                (None, Some(TcpListener::from(sock)), None)
            }
            AcceptQueue::Dispatcher(policy) => {
                sock.listen(options.backlog)?;
                sock.set_nonblocking(true)?;
                let d = DispatchShared::new(TcpListener::from(sock), policy);
                (None, None, Some(Arc::new(d)))
            }
        };
        Ok(GroupListener {
            inner: Arc::new(ListenerInner {
                addr: local,
                queue,
                options,
                first: Mutex::new(first),
                shared,
                dispatcher,
            }),
        })
    }

    /// A group listener on a socket that is already listening (inherited from systemd or
    /// a parent, see [`activation`](crate::activation)): one accept queue,
    /// [`AcceptQueue::Shared`] by every reactor. It is made non-blocking.
    ///
    /// # Errors
    ///
    /// The system error if the socket's address cannot be read or its mode set.
    ///
    /// # Examples
    ///
    /// ```
    /// use ropewalk_reactor::{AcceptQueue, GroupListener};
    ///
    /// let std_listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// let l = GroupListener::from_listener(std_listener)?;
    /// assert_eq!(l.queue(), AcceptQueue::Shared);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn from_listener(listener: TcpListener) -> io::Result<GroupListener> {
        listener.set_nonblocking(true)?;
        Ok(GroupListener {
            inner: Arc::new(ListenerInner {
                addr: listener.local_addr()?,
                queue: AcceptQueue::Shared,
                options: ListenOptions::default(),
                first: Mutex::new(None),
                shared: Some(listener),
                dispatcher: None,
            }),
        })
    }

    /// The address every reactor listens on (with the real port when bound to port 0).
    ///
    /// # Examples
    ///
    /// ```
    /// use ropewalk_reactor::{AcceptQueue, GroupListener};
    ///
    /// let l = GroupListener::bind("127.0.0.1:0".parse().unwrap(), AcceptQueue::PerReactor)?;
    /// assert!(l.local_addr().ip().is_loopback());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.addr
    }

    /// Whether each reactor has its own accept queue or all share one.
    ///
    /// # Examples
    ///
    /// ```
    /// use ropewalk_reactor::{AcceptQueue, GroupListener};
    ///
    /// let l = GroupListener::bind("127.0.0.1:0".parse().unwrap(), AcceptQueue::Shared)?;
    /// assert_eq!(l.queue(), AcceptQueue::Shared);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn queue(&self) -> AcceptQueue {
        self.inner.queue
    }

    /// Listens on this address on `reactor` (call it on the reactor's thread, from the
    /// group's setup), running a protocol from `factory` on every connection this reactor
    /// accepts. [`ListeningPort::stop_listening`] stops this reactor's share only.
    ///
    /// # Errors
    ///
    /// The system error if the socket cannot be bound (`PerReactor`: another socket on the
    /// address without `SO_REUSEPORT`, or of another user), duplicated or registered.
    ///
    /// # Examples
    ///
    /// ```
    /// # use ropewalk_reactor::{deferred::Failure, Address, Protocol};
    /// # struct P;
    /// # impl Protocol for P { fn data_received(&mut self, _: &[u8]) -> Result<(), Failure> { Ok(()) } }
    /// use ropewalk_reactor::{AcceptQueue, GroupListener, Reactor};
    ///
    /// let l = GroupListener::bind("127.0.0.1:0".parse().unwrap(), AcceptQueue::PerReactor)?;
    /// // Two reactors on one thread here, for brevity; a group puts each on its own.
    /// let (a, b) = (Reactor::new()?, Reactor::new()?);
    /// let pa = l.listen(&a, |_: &Address| Some(P))?;
    /// let pb = l.listen(&b, |_: &Address| Some(P))?;
    /// assert_eq!(pa.local_addr().inet(), pb.local_addr().inet());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn listen<P: Protocol>(
        &self,
        reactor: &Reactor,
        factory: impl Fn(&Address) -> Option<P> + 'static,
    ) -> io::Result<ListeningPort> {
        self.listen_factory(reactor, factory)
    }

    /// As [`listen`](Self::listen), for a [`Factory`](crate::Factory) value (one with start
    /// and stop hooks, such as the HTTP server) rather than a closure.
    ///
    /// # Errors
    ///
    /// As [`listen`](Self::listen).
    ///
    /// # Examples
    ///
    /// ```
    /// # use ropewalk_reactor::{deferred::Failure, for_protocol, Protocol};
    /// # #[derive(Default)] struct P;
    /// # impl Protocol for P { fn data_received(&mut self, _: &[u8]) -> Result<(), Failure> { Ok(()) } }
    /// use ropewalk_reactor::{AcceptQueue, GroupListener, Reactor};
    ///
    /// let l = GroupListener::bind("127.0.0.1:0".parse().unwrap(), AcceptQueue::Shared)?;
    /// let reactor = Reactor::new()?;
    /// let port = l.listen_factory(&reactor, for_protocol(P::default))?;
    /// assert!(port.local_addr().inet().is_some());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn listen_factory<F: crate::Factory>(
        &self,
        reactor: &Reactor,
        factory: F,
    ) -> io::Result<ListeningPort> {
        let inner = &*self.inner;
        if let Some(d) = &inner.dispatcher {
            return dispatch::listen(d, reactor, inner.addr, factory);
        }
        let sock = match &inner.shared {
            Some(shared) => shared.try_clone()?,
            None => {
                let first = inner.first.lock().unwrap_or_else(|e| e.into_inner()).take();
                let sock = match first {
                    Some(s) => s,
                    None => bind_tcp(inner.addr, &inner.options)?,
                };
                sock.listen(inner.options.backlog)?;
                TcpListener::from(sock)
            }
        };
        reactor.adopt_tcp_listener_factory(sock, factory)
    }
}

impl fmt::Debug for GroupListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GroupListener")
            .field("addr", &self.inner.addr)
            .field("queue", &self.inner.queue)
            .finish()
    }
}
