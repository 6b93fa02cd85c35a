//! The dispatcher accept mode of a [`GroupListener`](crate::GroupListener): one reactor
//! accepts every connection and hands each to a worker reactor's own queue, chosen by a
//! [`Dispatch`] policy (the article's "one queue per thread with a dispatcher").
//!
//! # Implementation
//!
//! [`DispatchShared`] is the `Send + Sync` part, held by the `GroupListener`: the
//! listening socket until the first `listen` takes it, the rotation of workers, and where
//! accepting runs. Each `listen` adds a [`Worker`] to the rotation (its queue, its live
//! connection count, and the write end of a wake-up socket pair) and registers a
//! [`Share`] on its own reactor: the read end of that pair, with the reactor's own
//! (`!Send`) factory. The first `listen` also registers an [`AcceptLoop`] on its
//! reactor, which accepts up to 128 connections per readiness event, picks a worker for
//! each, appends each worker's batch to its queue under one lock, and writes one byte to
//! its wake-up socket unless a wake-up is already pending (one wake per batch, not per
//! connection). A connection for the accepting reactor's own share starts at once.
//!
//! The worker's reactor wakes, empties its queue and builds a protocol for each
//! connection with the peer address `accept` gave, the listening socket's local address
//! (or `getsockname` when bound to a wildcard address) and its `TCP_NODELAY`, as the
//! normal accept path does. The live count rises when a connection is handed over and
//! falls when its `connection_lost` runs (or it is refused or dropped).
//!
//! A share leaves the rotation when its port stops listening, when its reactor shuts
//! down, or when it is dropped: connections still in its queue go to another worker
//! (closed if none is left). When the rotation empties, accepting ends and the socket
//! closes (new connects are refused). When the accepting reactor shuts down, accepting
//! ends too: the other reactors keep serving the connections they have.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::io::{self, Read, Write};
use std::net::TcpListener;
use std::os::unix::net::UnixStream;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::{Rc, Weak};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use ropewalk_deferred::Failure;

use crate::connection::{Conn, Known, StreamSocket};
use crate::log_limit::LogLimiter;
use crate::protocol::{Address, Factory, ListeningPort, Port, Protocol, TransportRef};
use crate::reactor::{IoHandler, Reactor, ReactorCore, ReactorHandle};
use crate::slab::Key;
use crate::sys::{Interest, PollMode, Ready};
use crate::tcp::{is_out_of_resources, is_transient, Acceptor};
use crate::time::Clock;

/// Most connections accepted in one readiness event.
const ACCEPTS_PER_EVENT: usize = 128;

/// Most connections waiting in one worker's queue: a worker whose reactor is stuck (a
/// blocking callback) is passed over while its queue is full, and when every queue is,
/// accepting pauses (connections wait in the kernel's backlog).
pub(crate) const MAX_QUEUED: usize = 1024;

/// How long accepting pauses when every worker's queue is full, or the process runs out
/// of file descriptors.
const PAUSE: Duration = Duration::from_millis(10);

/// At most one warning a second for accepting that keeps pausing.
const WARN_INTERVAL: Duration = Duration::from_secs(1);

/// How the dispatcher of [`AcceptQueue::Dispatcher`](crate::AcceptQueue::Dispatcher)
/// picks the reactor for each connection it accepts.
///
/// Parsed from `"round-robin"` and `"least-loaded"`.
///
/// # Examples
///
/// ```
/// use ropewalk_reactor::Dispatch;
///
/// assert_eq!("least-loaded".parse::<Dispatch>(), Ok(Dispatch::LeastLoaded));
/// assert_eq!(Dispatch::default(), Dispatch::RoundRobin);
/// assert_eq!(Dispatch::RoundRobin.to_string(), "round-robin");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Dispatch {
    /// Each reactor in turn, in the order they started listening (Netty's boss group
    /// hands channels to its workers this way). The default.
    #[default]
    RoundRobin,
    /// The reactor with the fewest live connections (those handed to it and not yet
    /// lost, the ones still in its queue included); ties go round-robin.
    LeastLoaded,
}

impl fmt::Display for Dispatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Dispatch::RoundRobin => "round-robin",
            Dispatch::LeastLoaded => "least-loaded",
        })
    }
}

impl FromStr for Dispatch {
    type Err = ParseDispatchError;

    fn from_str(s: &str) -> Result<Dispatch, ParseDispatchError> {
        match s {
            "round-robin" => Ok(Dispatch::RoundRobin),
            "least-loaded" => Ok(Dispatch::LeastLoaded),
            other => Err(ParseDispatchError(other.to_string())),
        }
    }
}

/// An unknown [`Dispatch`] policy name.
///
/// # Examples
///
/// ```
/// use ropewalk_reactor::Dispatch;
///
/// let err = "random".parse::<Dispatch>().unwrap_err();
/// assert_eq!(err.to_string(), "unknown dispatch policy \"random\" (round-robin or least-loaded)");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown dispatch policy {0:?} (round-robin or least-loaded)")]
pub struct ParseDispatchError(String);

/// A connection accepted and not yet started.
struct Accepted {
    stream: std::net::TcpStream,
    peer: Address,
}

/// Connections for one worker, accepted in one readiness event.
type Batch = (Arc<Worker>, Vec<Accepted>);

/// One reactor's place in the rotation: the `Send + Sync` side of its [`Share`].
struct Worker {
    /// Connections handed over and not yet lost (the queued ones included).
    live: AtomicUsize,
    /// Connections handed over and not yet taken by the worker's reactor.
    queued: AtomicUsize,
    queue: Mutex<WorkerQueue>,
    /// A wake-up is written and not yet read.
    woken: AtomicBool,
    /// The write end of the wake-up socket pair.
    wake: UnixStream,
}

struct WorkerQueue {
    conns: Vec<Accepted>,
    /// Still in the rotation: a closed queue takes nothing more.
    open: bool,
}

impl Worker {
    fn lock(&self) -> MutexGuard<'_, WorkerQueue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends `batch` to the queue and wakes the worker's reactor unless a wake-up is
    /// pending; gives the batch back if the worker has left the rotation.
    fn deliver(&self, mut batch: Vec<Accepted>) -> Result<(), Vec<Accepted>> {
        {
            let mut q = self.lock();
            if !q.open {
                return Err(batch);
            }
            self.queued.fetch_add(batch.len(), Ordering::AcqRel);
            q.conns.append(&mut batch);
        }
        if !self.woken.swap(true, Ordering::AcqRel) {
            match (&self.wake).write(&[1]) {
                // Full: a wake-up is there to read.
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => log::error!("cannot wake a worker reactor: {e}"),
            }
        }
        Ok(())
    }
}

/// Where accepting runs: the reactor, and the accept loop's key on it.
struct AcceptAt {
    handle: ReactorHandle,
    key: Key,
}

struct DispatchState {
    /// The listening socket, until the first `listen` takes it.
    sock: Option<TcpListener>,
    /// The rotation, in the order the shares started listening.
    workers: Vec<Arc<Worker>>,
    /// The round-robin cursor.
    next: usize,
    accept: Option<AcceptAt>,
    /// A second descriptor of the listening socket, so that the thread that empties the
    /// rotation can stop the socket listening at once (`shutdown`: new connects are
    /// refused), before the accepting reactor gets round to closing it.
    stopper: Option<TcpListener>,
    /// Accepting has ended (the rotation emptied, or the accepting reactor stopped).
    ended: bool,
}

impl DispatchState {
    /// Stops the socket listening now, from whichever thread, and lets go of the second
    /// descriptor.
    fn stop_listening_now(&mut self) {
        if let Some(stopper) = self.stopper.take() {
            let _ = socket2::SockRef::from(&stopper).shutdown(std::net::Shutdown::Both);
        }
    }
}

/// The dispatcher mode's part of a `GroupListener`.
pub(crate) struct DispatchShared {
    policy: Dispatch,
    /// Whether every accepted connection has `TCP_NODELAY` on, when known.
    nodelay: Option<bool>,
    state: Mutex<DispatchState>,
}

impl DispatchShared {
    /// `sock` listens, non-blocking.
    pub(crate) fn new(sock: TcpListener, policy: Dispatch) -> DispatchShared {
        DispatchShared {
            policy,
            nodelay: sock.accepted_nodelay(),
            state: Mutex::new(DispatchState {
                stopper: sock.try_clone().ok(),
                sock: Some(sock),
                workers: Vec::new(),
                next: 0,
                accept: None,
                ended: false,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, DispatchState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Picks a worker whose queue has room, or `None`; counts the connection as its.
    fn pick(&self, st: &mut DispatchState) -> Option<Arc<Worker>> {
        let n = st.workers.len();
        let room = |w: &Worker| w.queued.load(Ordering::Acquire) < MAX_QUEUED;
        let chosen = match self.policy {
            Dispatch::RoundRobin => (0..n)
                .map(|i| (st.next + i) % n)
                .find(|&i| room(&st.workers[i])),
            Dispatch::LeastLoaded => (0..n)
                .map(|i| (st.next + i) % n)
                .filter(|&i| room(&st.workers[i]))
                .min_by_key(|&i| st.workers[i].live.load(Ordering::Acquire)),
        }?;
        st.next = (chosen + 1) % n;
        let w = st.workers[chosen].clone();
        w.live.fetch_add(1, Ordering::AcqRel);
        Some(w)
    }

    /// Whether some worker's queue has room.
    fn has_room(&self) -> bool {
        self.lock()
            .workers
            .iter()
            .any(|w| w.queued.load(Ordering::Acquire) < MAX_QUEUED)
    }

    /// Assigns each connection to a worker: returns the batches, by worker, and the
    /// connections no worker could take (no rotation, or every queue full).
    fn assign(&self, conns: Vec<Accepted>) -> (Vec<Batch>, Vec<Accepted>) {
        let mut batches: Vec<Batch> = Vec::new();
        let mut left = Vec::new();
        let mut st = self.lock();
        for c in conns {
            match self.pick(&mut st) {
                Some(w) => match batches.iter_mut().find(|(b, _)| Arc::ptr_eq(b, &w)) {
                    Some((_, batch)) => batch.push(c),
                    None => batches.push((w, vec![c])),
                },
                None => left.push(c),
            }
        }
        (batches, left)
    }

    /// Hands connections to workers (from any thread); those no worker takes are closed.
    fn redeliver(&self, mut conns: Vec<Accepted>) {
        // A worker that leaves while its batch is on the way gives the batch back.
        for _ in 0..8 {
            if conns.is_empty() {
                return;
            }
            let (batches, left) = self.assign(conns);
            conns = left;
            for (w, batch) in batches {
                if let Err(back) = w.deliver(batch) {
                    w.live.fetch_sub(back.len(), Ordering::AcqRel);
                    conns.extend(back);
                }
            }
        }
        if !conns.is_empty() {
            log::warn!(
                "dispatcher: no reactor takes {} connection(s); closing them",
                conns.len()
            );
        }
    }

    /// Takes `worker` out of the rotation; returns the connections in its queue. Ends
    /// accepting if the rotation is now empty.
    fn leave(self: &Arc<Self>, worker: &Arc<Worker>) -> Vec<Accepted> {
        let conns = {
            let mut q = worker.lock();
            q.open = false;
            worker.queued.fetch_sub(q.conns.len(), Ordering::AcqRel);
            std::mem::take(&mut q.conns)
        };
        worker.live.fetch_sub(conns.len(), Ordering::AcqRel);
        let end = {
            let mut st = self.lock();
            st.workers.retain(|w| !Arc::ptr_eq(w, worker));
            if st.workers.is_empty() && !st.ended {
                st.ended = true;
                st.sock = None;
                st.stop_listening_now();
                st.accept.as_ref().map(|at| at.handle.clone())
            } else {
                None
            }
        };
        if let Some(handle) = end {
            log::debug!("dispatcher: no reactor left in the rotation; accepting ends");
            // The accept loop is closed on its own reactor (its key is that reactor's).
            let this = self.clone();
            handle.call_with_reactor(move |r| this.close_accept(r));
        }
        conns
    }

    /// Ends accepting: takes the accept loop off `reactor` (its own), once, whether the
    /// rotation emptied or the reactor shuts down.
    fn close_accept(&self, reactor: &Reactor) {
        let at = {
            let mut st = self.lock();
            st.ended = true;
            st.sock = None;
            st.stop_listening_now();
            st.accept.take()
        };
        if let Some(at) = at {
            // Dropped with its registration: the socket closes.
            reactor.deregister(at.key);
        }
    }
}

/// Counts a connection as live on its worker until it is lost.
struct Counted<P> {
    protocol: P,
    worker: Option<Arc<Worker>>,
}

impl<P> Counted<P> {
    fn release(&mut self) {
        if let Some(w) = self.worker.take() {
            w.live.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl<P> Drop for Counted<P> {
    fn drop(&mut self) {
        self.release();
    }
}

impl<P: Protocol> Protocol for Counted<P> {
    fn connection_made(&mut self, transport: TransportRef) {
        self.protocol.connection_made(transport);
    }

    fn data_received(&mut self, data: &[u8]) -> Result<(), Failure> {
        self.protocol.data_received(data)
    }

    fn eof_received(&mut self) -> bool {
        self.protocol.eof_received()
    }

    fn connection_lost(&mut self, reason: Failure) {
        self.release();
        self.protocol.connection_lost(reason);
    }
}

/// One reactor's share of a dispatcher listener: its queue's wake-up socket, watched by
/// its reactor, and its factory.
struct Share<F: Factory> {
    reactor: Weak<ReactorCore>,
    shared: Arc<DispatchShared>,
    worker: Arc<Worker>,
    wake: UnixStream,
    key: Cell<Option<Key>>,
    factory: F,
    local: Address,
    /// The local address of every connection, when known without asking.
    accepted_local: Option<Address>,
    /// Whether every connection has `TCP_NODELAY` on, when known.
    accepted_nodelay: Option<bool>,
}

impl<F: Factory> Share<F> {
    /// Builds a protocol for a connection handed to this reactor and starts it.
    fn serve(&self, reactor: &Reactor, conn: Accepted) {
        let Accepted { stream, peer } = conn;
        log::debug!("connection from {peer} on {}", self.local);
        let built = catch_unwind(AssertUnwindSafe(|| self.factory.build_protocol(&peer)));
        let protocol = match built {
            Ok(Some(p)) => p,
            Ok(None) => {
                self.worker.live.fetch_sub(1, Ordering::AcqRel);
                return;
            }
            Err(p) => {
                self.worker.live.fetch_sub(1, Ordering::AcqRel);
                log::error!("panic in build_protocol: {}", Failure::from_panic(p));
                return;
            }
        };
        let local = self
            .accepted_local
            .clone()
            .unwrap_or_else(|| stream.local_address());
        let known = Known {
            peer: peer.clone(),
            local,
            nodelay: self.accepted_nodelay,
        };
        let counted = Counted {
            protocol,
            worker: Some(self.worker.clone()),
        };
        if let Err(e) = Conn::start_with(reactor, stream, known, counted) {
            log::error!("cannot register a connection from {peer}: {e}");
        }
    }

    /// Leaves the rotation (once): the connections still queued go to other workers. The
    /// factory is stopped when the port stops or the reactor shuts down, not on a drop.
    fn leave(&self, stop_factory: bool) {
        let was_in = {
            let q = self.worker.lock();
            q.open
        };
        if !was_in {
            return;
        }
        if let Some(key) = self.key.take() {
            if let Some(inner) = self.reactor.upgrade() {
                Reactor { inner }.deregister(key);
            }
        }
        let conns = self.shared.leave(&self.worker);
        self.shared.redeliver(conns);
        if stop_factory {
            self.factory.stop_factory();
        }
    }
}

impl<F: Factory> IoHandler for Share<F> {
    fn ready(self: Rc<Self>, reactor: &Reactor, _ready: Ready) {
        let mut buf = [0u8; 64];
        loop {
            match (&self.wake).read(&mut buf) {
                Ok(0) => break,
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
        // Cleared before the queue is taken: a batch queued after this wakes it again.
        self.worker.woken.store(false, Ordering::Release);
        let conns = {
            let mut q = self.worker.lock();
            self.worker
                .queued
                .fetch_sub(q.conns.len(), Ordering::AcqRel);
            std::mem::take(&mut q.conns)
        };
        for conn in conns {
            self.serve(reactor, conn);
        }
    }

    fn shutdown(self: Rc<Self>) {
        self.leave(true);
    }
}

impl<F: Factory> Port for Share<F> {
    fn local(&self) -> Address {
        self.local.clone()
    }

    fn stop(&self) {
        self.leave(true);
    }
}

impl<F: Factory> Drop for Share<F> {
    fn drop(&mut self) {
        self.leave(false);
    }
}

/// The accepting side, on the reactor that listened first.
struct AcceptLoop<F: Factory> {
    reactor: Weak<ReactorCore>,
    shared: Arc<DispatchShared>,
    sock: RefCell<Option<TcpListener>>,
    key: Cell<Option<Key>>,
    /// This reactor's own share: its connections start here, with no hand-over.
    own: Weak<Share<F>>,
    paused: Cell<bool>,
    pause_warning: LogLimiter,
}

impl<F: Factory> AcceptLoop<F> {
    fn accept_some(self: &Rc<Self>, reactor: &Reactor) {
        if !self.shared.has_room() {
            self.pause(reactor, "every reactor's queue is full");
            return;
        }
        let mut conns = Vec::new();
        {
            let sock = self.sock.borrow();
            let Some(sock) = sock.as_ref() else { return };
            while conns.len() < ACCEPTS_PER_EVENT {
                match sock.accept_stream() {
                    Ok((stream, peer)) => conns.push(Accepted { stream, peer }),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if is_transient(&e) => continue,
                    Err(e) if is_out_of_resources(&e) => {
                        self.pause(reactor, &format!("{e}"));
                        break;
                    }
                    // Stopped from another thread (`stop_listening_now`): the close is
                    // on its way to this reactor.
                    Err(_) if self.shared.lock().ended => return,
                    Err(e) => {
                        log::error!("accept failed: {e}");
                        break;
                    }
                }
            }
        }
        if conns.is_empty() {
            return;
        }
        let (batches, left) = self.shared.assign(conns);
        let own = self.own.upgrade();
        let mut back = left;
        for (w, batch) in batches {
            match own.as_ref().filter(|s| Arc::ptr_eq(&s.worker, &w)) {
                Some(share) => {
                    for conn in batch {
                        share.serve(reactor, conn);
                    }
                }
                None => {
                    if let Err(b) = w.deliver(batch) {
                        w.live.fetch_sub(b.len(), Ordering::AcqRel);
                        back.extend(b);
                    }
                }
            }
        }
        if !back.is_empty() {
            self.shared.redeliver(back);
        }
    }

    /// Stops accepting for a while, instead of spinning on a socket that stays readable.
    fn pause(self: &Rc<Self>, reactor: &Reactor, why: &str) {
        if self.paused.replace(true) {
            return;
        }
        if let Some(held) = self.pause_warning.allow(reactor.now()) {
            log::warn!(
                "dispatcher: accepting pauses for {PAUSE:?}: {why}{}",
                LogLimiter::suffix(held)
            );
        }
        if let Some(key) = self.key.get() {
            let _ = reactor.reregister(key, Interest::NONE);
        }
        let this = Rc::downgrade(self);
        reactor.call_later(PAUSE, move || {
            if let Some(this) = this.upgrade() {
                this.paused.set(false);
                if let (Some(key), Some(inner)) = (this.key.get(), this.reactor.upgrade()) {
                    let _ = Reactor { inner }.reregister(key, Interest::READ);
                }
            }
        });
    }

    fn close(&self) {
        self.sock.borrow_mut().take();
        self.key.take();
    }
}

impl<F: Factory> IoHandler for AcceptLoop<F> {
    fn ready(self: Rc<Self>, reactor: &Reactor, _ready: Ready) {
        if !self.paused.get() {
            self.accept_some(reactor);
        }
    }

    fn shutdown(self: Rc<Self>) {
        if let Some(inner) = self.reactor.upgrade() {
            self.shared.close_accept(&Reactor { inner });
        }
        self.close();
    }
}

impl<F: Factory> Drop for AcceptLoop<F> {
    fn drop(&mut self) {
        self.close();
    }
}

/// Joins `reactor` to the rotation with `factory`; the first to join also accepts.
pub(crate) fn listen<F: Factory>(
    shared: &Arc<DispatchShared>,
    reactor: &Reactor,
    local: std::net::SocketAddr,
    factory: F,
) -> io::Result<ListeningPort> {
    let (read, write) = UnixStream::pair()?;
    read.set_nonblocking(true)?;
    write.set_nonblocking(true)?;
    let worker = Arc::new(Worker {
        live: AtomicUsize::new(0),
        queued: AtomicUsize::new(0),
        queue: Mutex::new(WorkerQueue {
            conns: Vec::new(),
            open: false,
        }),
        woken: AtomicBool::new(false),
        wake: write,
    });
    let mut st = shared.lock();
    if st.ended {
        return Err(io::Error::other(
            "the dispatcher has stopped accepting on this address",
        ));
    }
    let sock = st.sock.take();
    let local_addr = Address::Inet(local);
    let share = Rc::new(Share {
        reactor: Rc::downgrade(&reactor.inner),
        shared: shared.clone(),
        worker: worker.clone(),
        wake: read,
        key: Cell::new(None),
        factory,
        accepted_local: TcpListener::accepted_local(&local_addr),
        accepted_nodelay: shared.nodelay,
        local: local_addr,
    });
    let key = reactor.register(&share.wake, Interest::READ, PollMode::Level, share.clone())?;
    share.key.set(Some(key));
    if let Some(sock) = sock {
        let accept = Rc::new(AcceptLoop {
            reactor: Rc::downgrade(&reactor.inner),
            shared: shared.clone(),
            sock: RefCell::new(None),
            key: Cell::new(None),
            own: Rc::downgrade(&share),
            paused: Cell::new(false),
            pause_warning: LogLimiter::new(WARN_INTERVAL),
        });
        let akey = match reactor.register_listener(&sock, accept.clone()) {
            Ok(k) => k,
            Err(e) => {
                st.sock = Some(sock);
                share.key.take();
                reactor.deregister(key);
                return Err(e);
            }
        };
        *accept.sock.borrow_mut() = Some(sock);
        accept.key.set(Some(akey));
        st.accept = Some(AcceptAt {
            handle: reactor.handle(),
            key: akey,
        });
    }
    worker.lock().open = true;
    st.workers.push(worker);
    drop(st);
    share.factory.start_factory();
    log::debug!("listening on {} (dispatcher)", share.local);
    let port = ListeningPort::from_port(share.clone());
    share.factory.port_listening(&port);
    Ok(port)
}
