//! The [`Reactor`]: one event loop, owned by one thread, and its [`ReactorHandle`] for
//! other threads.
//!
//! A `Reactor` is a handle on a `ReactorCore`, which owns the loop's parts as values:
//! its I/O [`Sources`] (with the poller, in `Remote`, shared with other threads), its
//! timers, its [`Tasks`], its [`Triggers`] and its [`Jobs`] in flight. This file holds
//! the turn that drives them, the public methods (thin where a part does the work), and
//! the [`IoHandler`] trait the transports implement to be handed readiness.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::{Rc, Weak};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use std::future::Future;
use std::os::fd::AsRawFd;

use ropewalk_deferred::{
    maybe_deferred, set_wait_driver, Deferred, Failure, IntoOutcome, ScheduledCall, Scheduler,
    WaitDriver, WaitError,
};

use crate::error::ReactorError;
use crate::io::Sources;
use crate::jobs::{Finished, JobDone, Jobs};
use crate::lifecycle::{Phase, SystemEvent, TriggerId, Triggers};
use crate::pool::{Job, Pool, PoolConfig, PoolStats};
use crate::slab::Key;
use crate::sys::{self, Interest, PollMode, Ready};
use crate::task::{task_future, Tasks, WakeTask};
use crate::time::{self, defer_later, Clock, DelayedCall, SharedTimers, TimerQueue};

/// Most `call_soon` callbacks run in one turn, so that I/O and timers are never starved.
const SOON_BUDGET: usize = 1024;

/// Something registered with the poller: a connection, a listening port, an async
/// socket, a signal wake-up socket.
pub(crate) trait IoHandler {
    /// The poller reported `ready` for it (or it asked for a look with
    /// [`Reactor::ready_again`]).
    fn ready(self: Rc<Self>, reactor: &Reactor, ready: Ready);

    /// The reactor is shutting down: close.
    fn shutdown(self: Rc<Self>) {}
}

/// Work handed to the reactor from any thread.
pub(crate) enum RemoteOp {
    Call(Box<dyn FnOnce(&Reactor) + Send>),
    Wake(Key),
    /// A `defer_to_thread` job's result is in its cell.
    Done(Arc<dyn Finished>),
}

/// The part of a reactor other threads may touch.
pub(crate) struct Remote {
    pub(crate) poller: sys::Poller,
    pub(crate) queue: Mutex<VecDeque<RemoteOp>>,
    /// Whether `queue` holds anything; written under its lock, read without it, so a turn
    /// with nothing queued takes no lock.
    pub(crate) queued: AtomicBool,
    pub(crate) thread: ThreadId,
    pub(crate) stop: AtomicBool,
    pub(crate) alive: AtomicBool,
    /// Live `ReactorHandle`s and in-flight worker jobs: work that may still arrive.
    pub(crate) external: AtomicUsize,
}

impl Remote {
    pub(crate) fn push(&self, op: RemoteOp) -> bool {
        {
            // `alive` is checked under the queue's lock, so no op lands in the queue after
            // the reactor's drop emptied it (it would never run nor be dropped).
            let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
            if !self.alive.load(Ordering::Acquire) {
                return false;
            }
            q.push_back(op);
            self.queued.store(true, Ordering::Release);
        }
        // The reactor's own thread looks at the queue before it blocks.
        if std::thread::current().id() != self.thread {
            if let Err(e) = self.poller.notify() {
                log::error!("cannot wake the reactor: {e}");
            }
        }
        true
    }
}

impl JobDone for Remote {
    fn job_done(&self, job: Arc<dyn Finished>) {
        self.push(RemoteOp::Done(job));
    }
}

impl WakeTask for Remote {
    fn wake_task(&self, key: Key) {
        self.push(RemoteOp::Wake(key));
    }
}

/// What a [`Reactor`] handle points to: the loop's parts, each a value with its own
/// methods, and the state of the loop itself.
pub(crate) struct ReactorCore {
    /// The way in from other threads, and the poller.
    pub(crate) remote: Arc<Remote>,
    /// Registered descriptors and the readiness of this turn.
    pub(crate) sources: Sources<dyn IoHandler>,
    pub(crate) timers: SharedTimers,
    /// `call_soon` callbacks.
    soon: RefCell<VecDeque<Box<dyn FnOnce()>>>,
    /// Spawned futures.
    tasks: Tasks<Remote>,
    /// System event triggers.
    triggers: Triggers,
    /// `defer_to_thread` jobs in flight.
    jobs: Jobs,
    pool: RefCell<Option<Pool>>,
    pool_config: RefCell<PoolConfig>,
    /// The pool of `defer_to_io_thread`: file-system work, never behind users' jobs.
    io_pool: RefCell<Option<Pool>>,
    io_pool_config: RefCell<PoolConfig>,
    spare: RefCell<VecDeque<RemoteOp>>,
    running: Cell<bool>,
    /// A second stop came in the same turn as the first (two signals read at once): the
    /// shutdown that the first begins must not wait for its triggers.
    stopped_twice: Cell<bool>,
    /// A turn, or a task's poll, is on the stack: `wait()` and `iterate()` must not re-enter.
    pub(crate) in_turn: Cell<bool>,
    turns: Cell<u64>,
    /// The clock read when this turn's wait for I/O returned (`Clock::loop_time`); `None`
    /// outside a turn.
    loop_time: Cell<Option<Duration>>,
    driver: RefCell<Option<Rc<dyn WaitDriver>>>,
    /// The reactor made before this one on this thread: current again when this one goes.
    previous: Weak<ReactorCore>,
}

/// The event loop: timers, callbacks, tasks, worker-pool results and (with the transports)
/// I/O, all run on the thread that owns it.
///
/// A `Reactor` is a cheap handle (`Clone` shares it) and is neither `Send` nor `Sync`: it
/// and everything attached to it live on one thread. Other threads reach it through a
/// [`ReactorHandle`]. Several reactors on several threads make a multi-core program.
///
/// Creating a reactor installs it as this thread's [`WaitDriver`], so
/// [`Deferred::wait`] on this thread runs it until the Deferred fires. `wait()` gives up
/// with [`WaitError::ReactorStopped`] when the reactor is stopped, or when nothing could
/// ever fire the Deferred: no timer, no queued callback or woken task, no worker job in
/// flight, and no live [`ReactorHandle`] through which another thread could still call in.
/// Dropping a reactor makes the one created before it on this thread current again.
///
/// Unlike Twisted's, a reactor can be [`run`](Self::run) again after it returned.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use ropewalk_reactor::{Clock, Reactor};
///
/// let reactor = Reactor::new()?;
/// let r = reactor.clone();
/// reactor.call_later(Duration::from_millis(1), move || r.stop().unwrap());
/// reactor.run()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Implementation
///
/// One turn: wait in the poller (for no time if anything is ready, else until the next
/// timer, or forever), then run what other threads queued (only what was there when the
/// drain started), the timers that are due (at most 4,096), at most 1,024 `call_soon` callbacks, and the
/// tasks that were woken. Every callback runs under `catch_unwind`: a panic is logged and
/// the loop goes on.
#[derive(Clone)]
pub struct Reactor {
    pub(crate) inner: Rc<ReactorCore>,
}

thread_local! {
    static CURRENT: RefCell<Weak<ReactorCore>> = const { RefCell::new(Weak::new()) };
}

/// Counters that describe a reactor at one moment (see [`Reactor::stats`]).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// let reactor = ropewalk_reactor::Reactor::new()?;
/// let _timer = reactor.sleep(Duration::from_secs(60));
/// reactor.call_soon(|| ());
/// let stats = reactor.stats();
/// assert_eq!((stats.pending_timers, stats.queued_callbacks), (1, 1));
/// assert_eq!(stats.sources, 0);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReactorStats {
    /// Delayed calls still to run.
    pub pending_timers: usize,
    /// `call_soon` callbacks waiting for a turn.
    pub queued_callbacks: usize,
    /// Spawned tasks not yet finished.
    pub live_tasks: usize,
    /// I/O sources registered with the poller.
    pub sources: usize,
    /// Worker-pool jobs whose result has not come back yet.
    pub pending_jobs: usize,
    /// Turns of the loop so far.
    pub turns: u64,
}

struct Driver(Weak<ReactorCore>);

impl WaitDriver for Driver {
    fn run_until(&self, done: &mut dyn FnMut() -> bool) -> Result<(), Failure> {
        let inner = self
            .0
            .upgrade()
            .ok_or_else(|| Failure::new(WaitError::ReactorStopped))?;
        Reactor { inner }.run_until(done)
    }
}

impl Reactor {
    /// A new reactor, owned by this thread, installed as its [`WaitDriver`] and as
    /// [`Reactor::current`].
    ///
    /// # Errors
    ///
    /// The system error if the poller cannot be made (out of file descriptors).
    ///
    /// # Examples
    ///
    /// ```
    /// let reactor = ropewalk_reactor::Reactor::new()?;
    /// assert_eq!(reactor.stats().turns, 0);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn new() -> std::io::Result<Reactor> {
        let remote = Arc::new(Remote {
            poller: sys::Poller::new()?,
            queue: Mutex::new(VecDeque::new()),
            queued: AtomicBool::new(false),
            thread: std::thread::current().id(),
            stop: AtomicBool::new(false),
            alive: AtomicBool::new(true),
            external: AtomicUsize::new(0),
        });
        let inner = Rc::new(ReactorCore {
            sources: Sources::new(&remote.poller),
            remote,
            timers: Rc::new(RefCell::new(TimerQueue::new(Some(Instant::now())))),
            soon: RefCell::new(VecDeque::new()),
            tasks: Tasks::new(),
            triggers: Triggers::default(),
            jobs: Jobs::new(),
            pool: RefCell::new(None),
            pool_config: RefCell::new(PoolConfig::default()),
            io_pool: RefCell::new(None),
            io_pool_config: RefCell::new(PoolConfig::io_default()),
            spare: RefCell::new(VecDeque::new()),
            running: Cell::new(false),
            stopped_twice: Cell::new(false),
            in_turn: Cell::new(false),
            turns: Cell::new(0),
            loop_time: Cell::new(None),
            driver: RefCell::new(None),
            previous: CURRENT.with(|c| c.borrow().clone()),
        });
        let driver: Rc<dyn WaitDriver> = Rc::new(Driver(Rc::downgrade(&inner)));
        *inner.driver.borrow_mut() = Some(driver.clone());
        set_wait_driver(Some(driver));
        CURRENT.with(|c| *c.borrow_mut() = Rc::downgrade(&inner));
        Ok(Reactor { inner })
    }

    /// The reactor most recently made on this thread, if it is still alive.
    ///
    /// # Examples
    ///
    /// ```
    /// use ropewalk_reactor::Reactor;
    ///
    /// let reactor = Reactor::new()?;
    /// assert!(Reactor::current().unwrap().ptr_eq(&reactor));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn current() -> Option<Reactor> {
        CURRENT.with(|c| c.borrow().upgrade().map(|inner| Reactor { inner }))
    }

    /// Whether two handles are the same reactor.
    ///
    /// # Examples
    ///
    /// ```
    /// let r = ropewalk_reactor::Reactor::new()?;
    /// assert!(r.ptr_eq(&r.clone()));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn ptr_eq(&self, other: &Reactor) -> bool {
        Rc::ptr_eq(&self.inner, &other.inner)
    }

    /// A `Send + Sync` handle through which other threads reach this reactor.
    ///
    /// # Examples
    ///
    /// ```
    /// let reactor = ropewalk_reactor::Reactor::new()?;
    /// let handle = reactor.handle();
    /// std::thread::spawn(move || handle.stop()).join().unwrap();
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn handle(&self) -> ReactorHandle {
        ReactorHandle::new(self.inner.remote.clone())
    }

    /// Runs the loop until [`stop`](Self::stop) is called.
    ///
    /// # Errors
    ///
    /// [`ReactorError::AlreadyRunning`] if it is already running on this thread.
    ///
    /// # Examples
    ///
    /// ```
    /// let reactor = ropewalk_reactor::Reactor::new()?;
    /// let r = reactor.clone();
    /// reactor.call_soon(move || r.stop().unwrap());
    /// reactor.run()?;
    /// reactor.call_soon({ let r = reactor.clone(); move || r.stop().unwrap() });
    /// reactor.run()?; // a reactor may run again
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn run(&self) -> Result<(), ReactorError> {
        self.enter()?;
        log::debug!("reactor running");
        self.fire_system_event(SystemEvent::Startup);
        while !self.inner.remote.stop.load(Ordering::Acquire) {
            self.turn(None);
        }
        log::debug!("reactor stopping");
        self.clear_stop();
        if self.inner.stopped_twice.take() {
            // The second stop, kept for the shutdown's wait, which it ends at once.
            self.inner.remote.stop.store(true, Ordering::Release);
        }
        self.fire_system_event(SystemEvent::Shutdown);
        self.leave();
        Ok(())
    }

    fn clear_stop(&self) {
        self.inner.remote.stop.store(false, Ordering::Release);
    }

    fn enter(&self) -> Result<(), ReactorError> {
        if self.inner.running.get() || self.inner.in_turn.get() {
            return Err(ReactorError::AlreadyRunning);
        }
        self.inner.running.set(true);
        self.inner.remote.stop.store(false, Ordering::Release);
        Ok(())
    }

    fn leave(&self) {
        self.inner.running.set(false);
        self.inner.stopped_twice.set(false);
        self.inner.remote.stop.store(false, Ordering::Release);
    }

    /// Runs turns until `done()` holds: what [`Deferred::wait`] uses.
    fn run_until(&self, done: &mut dyn FnMut() -> bool) -> Result<(), Failure> {
        if self.inner.in_turn.get() {
            return Err(Failure::new(WaitError::InsideCallback));
        }
        let nested = self.inner.running.get();
        if !nested {
            self.enter().map_err(Failure::new)?;
        }
        let result = loop {
            if done() {
                break Ok(());
            }
            if self.inner.remote.stop.load(Ordering::Acquire) || self.idle_forever() {
                break Err(Failure::new(WaitError::ReactorStopped));
            }
            self.turn(None);
        };
        if !nested {
            self.leave();
        }
        result
    }

    /// Nothing is scheduled and nothing can arrive: waiting would never end.
    fn idle_forever(&self) -> bool {
        let i = &self.inner;
        i.timers.borrow().len() == 0
            && i.soon.borrow().is_empty()
            && !i.tasks.has_ready()
            && i.jobs.len() == 0
            && i.sources.only_signal_sources()
            && i.remote.external.load(Ordering::Acquire) == 0
            && !i.remote.queued.load(Ordering::Acquire)
    }

    /// Asks the loop to stop after the current turn.
    ///
    /// # Errors
    ///
    /// [`ReactorError::NotRunning`] if it is not running.
    ///
    /// # Examples
    ///
    /// ```
    /// use ropewalk_reactor::{Reactor, ReactorError};
    ///
    /// let reactor = Reactor::new()?;
    /// assert_eq!(reactor.stop(), Err(ReactorError::NotRunning));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn stop(&self) -> Result<(), ReactorError> {
        if !self.inner.running.get() {
            return Err(ReactorError::NotRunning);
        }
        self.inner.remote.stop.store(true, Ordering::Release);
        Ok(())
    }

    /// Stops for `signals` signals read in this turn. Two stops before the loop sees the
    /// first (two signals read at once, or a signal after a `stop()` in the same turn)
    /// stop the loop, and the shutdown the first begins does not wait for its triggers,
    /// as if the second had come during it.
    pub(crate) fn stop_for_signals(&self, signals: usize) {
        let pending = self.inner.remote.stop.load(Ordering::Acquire);
        if signals > 0 && self.stop().is_ok() && (pending || signals > 1) {
            self.inner.stopped_twice.set(true);
        }
    }

    /// Whether [`run`](Self::run) (or a `wait()`) is running the loop.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(!ropewalk_reactor::Reactor::new()?.is_running());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn is_running(&self) -> bool {
        self.inner.running.get()
    }

    /// Runs one turn, waiting at most `timeout` for something to happen: for tests and for
    /// embedding the reactor in another loop.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::{cell::Cell, rc::Rc, time::Duration};
    ///
    /// let reactor = ropewalk_reactor::Reactor::new()?;
    /// let ran = Rc::new(Cell::new(false));
    /// let r = ran.clone();
    /// reactor.call_soon(move || r.set(true));
    /// reactor.iterate(Duration::ZERO);
    /// assert!(ran.get());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn iterate(&self, timeout: Duration) {
        if self.inner.in_turn.get() {
            log::warn!("iterate() called from inside a reactor turn: ignored");
            return;
        }
        self.turn(Some(timeout));
    }

    /// Queues `f` to run on the next turn; callbacks run in the order they were queued.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::{cell::RefCell, rc::Rc, time::Duration};
    ///
    /// let reactor = ropewalk_reactor::Reactor::new()?;
    /// let order = Rc::new(RefCell::new(vec![]));
    /// for n in 0..3 {
    ///     let o = order.clone();
    ///     reactor.call_soon(move || o.borrow_mut().push(n));
    /// }
    /// reactor.iterate(Duration::ZERO);
    /// assert_eq!(*order.borrow(), vec![0, 1, 2]);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn call_soon(&self, f: impl FnOnce() + 'static) {
        self.inner.soon.borrow_mut().push_back(Box::new(f));
    }

    /// Counters describing the reactor now.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use ropewalk_reactor::{Clock, Reactor};
    ///
    /// let reactor = Reactor::new()?;
    /// reactor.call_later(Duration::from_secs(60), || {});
    /// reactor.call_soon(|| {});
    /// let s = reactor.stats();
    /// assert_eq!((s.pending_timers, s.queued_callbacks), (1, 1));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn stats(&self) -> ReactorStats {
        let i = &self.inner;
        ReactorStats {
            pending_timers: i.timers.borrow().len(),
            queued_callbacks: i.soon.borrow().len(),
            live_tasks: i.tasks.len(),
            sources: i.sources.len(),
            pending_jobs: i.jobs.len(),
            turns: i.turns.get(),
        }
    }

    /// Sets how the worker pool behaves; takes effect when the pool first starts (Twisted's
    /// `suggestThreadPoolSize`, and more).
    ///
    /// # Examples
    ///
    /// ```
    /// use ropewalk_reactor::{PoolConfig, Reactor};
    ///
    /// let reactor = Reactor::new()?;
    /// reactor.configure_pool(PoolConfig { max_threads: 2, ..PoolConfig::default() });
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn configure_pool(&self, config: PoolConfig) {
        if self.inner.pool.borrow().is_some() {
            log::warn!("configure_pool() after the pool started: applies to no running thread");
        }
        *self.inner.pool_config.borrow_mut() = config;
    }

    /// A snapshot of the worker pool (all zero before its first job).
    ///
    /// # Examples
    ///
    /// ```
    /// let reactor = ropewalk_reactor::Reactor::new()?;
    /// assert_eq!(reactor.pool_stats().threads, 0);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn pool_stats(&self) -> PoolStats {
        self.inner
            .pool
            .borrow()
            .as_ref()
            .map(Pool::stats)
            .unwrap_or_default()
    }

    fn pool(&self) -> Pool {
        self.inner
            .pool
            .borrow_mut()
            .get_or_insert_with(|| {
                Pool::new("ropewalk-worker", self.inner.pool_config.borrow().clone())
            })
            .clone()
    }

    fn io_pool(&self) -> Pool {
        self.inner
            .io_pool
            .borrow_mut()
            .get_or_insert_with(|| {
                Pool::new("ropewalk-io", self.inner.io_pool_config.borrow().clone())
            })
            .clone()
    }

    /// Sets how the I/O pool of [`defer_to_io_thread`](Self::defer_to_io_thread) behaves
    /// (default [`PoolConfig::io_default`]: 4 threads); takes effect when that pool first
    /// starts.
    ///
    /// # Examples
    ///
    /// ```
    /// use ropewalk_reactor::{PoolConfig, Reactor};
    ///
    /// let reactor = Reactor::new()?;
    /// reactor.configure_io_pool(PoolConfig { max_threads: 2, ..PoolConfig::io_default() });
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn configure_io_pool(&self, config: PoolConfig) {
        if self.inner.io_pool.borrow().is_some() {
            log::warn!("configure_io_pool() after the pool started: applies to no running thread");
        }
        *self.inner.io_pool_config.borrow_mut() = config;
    }

    /// A snapshot of the I/O pool (all zero before its first job).
    ///
    /// # Examples
    ///
    /// ```
    /// let reactor = ropewalk_reactor::Reactor::new()?;
    /// assert_eq!(reactor.io_pool_stats().threads, 0);
    /// reactor.defer_to_io_thread(|| Ok(())).wait().unwrap();
    /// assert_eq!(reactor.io_pool_stats().spawned, 1);
    /// assert_eq!(reactor.pool_stats().spawned, 0, "the worker pool was not used");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn io_pool_stats(&self) -> PoolStats {
        self.inner
            .io_pool
            .borrow()
            .as_ref()
            .map(Pool::stats)
            .unwrap_or_default()
    }

    /// Runs `f` on the worker pool, fire and forget (Twisted's `callInThread`).
    ///
    /// # Errors
    ///
    /// [`ReactorError::PoolFull`] when the pool's queue is full.
    ///
    /// # Examples
    ///
    /// ```
    /// let reactor = ropewalk_reactor::Reactor::new()?;
    /// let (tx, rx) = std::sync::mpsc::channel();
    /// reactor.call_in_thread(move || tx.send(6 * 7).unwrap())?;
    /// assert_eq!(rx.recv().unwrap(), 42);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn call_in_thread(&self, f: impl FnOnce() + Send + 'static) -> Result<(), ReactorError> {
        self.pool().submit(Job::Boxed(Box::new(f)))
    }

    /// Runs `f` on the worker pool and gives its result back on this thread as a Deferred
    /// (Twisted's `deferToThread`). A panic in `f` becomes a [`Failure`].
    ///
    /// Cancelling the Deferred gives [`Cancelled`](ropewalk_deferred::Cancelled) at once; a
    /// job that has not started then never runs, and one that has is left to finish, its
    /// result dropped. A full queue gives a failed Deferred ([`ReactorError::PoolFull`]).
    ///
    /// # Examples
    ///
    /// ```
    /// let reactor = ropewalk_reactor::Reactor::new()?;
    /// let d = reactor.defer_to_thread(|| Ok((1..=10u64).product::<u64>()));
    /// assert_eq!(d.wait().unwrap(), 3_628_800);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn defer_to_thread<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> Result<T, Failure> + Send + 'static,
    ) -> Deferred<T> {
        self.defer_on(self.pool(), f)
    }

    /// As [`defer_to_thread`](Self::defer_to_thread), on the reactor's **I/O pool**: a
    /// second, small pool (see [`configure_io_pool`](Self::configure_io_pool)) for
    /// file-system work that may block for a while (`open`, `stat`, a disk read), so that
    /// it never waits in the queue behind users' blocking jobs, nor they behind it. Keep
    /// it for short I/O: a job that blocks for long holds one of its few threads.
    ///
    /// # Examples
    ///
    /// ```
    /// let reactor = ropewalk_reactor::Reactor::new()?;
    /// let dir = std::env::temp_dir();
    /// let d = reactor.defer_to_io_thread(move || Ok(std::fs::metadata(dir)?.is_dir()));
    /// assert!(d.wait().unwrap());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn defer_to_io_thread<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> Result<T, Failure> + Send + 'static,
    ) -> Deferred<T> {
        self.defer_on(self.io_pool(), f)
    }

    fn defer_on<T: Send + 'static>(
        &self,
        pool: Pool,
        f: impl FnOnce() -> Result<T, Failure> + Send + 'static,
    ) -> Deferred<T> {
        let jobs = &self.inner.jobs;
        // The key the job will have: the canceller knows it without a shared cell.
        let key = jobs.next_key();
        let weak = Rc::downgrade(&self.inner);
        let (d, resolver) = Deferred::<T>::with_canceller(move || {
            if let Some(inner) = weak.upgrade() {
                inner.jobs.cancel(key);
            }
            None
        });
        let job = jobs.insert(key, f, resolver, &self.inner.remote);
        if let Err(e) = pool.submit(job) {
            jobs.refused::<T>(key, e);
        }
        d
    }

    /// Runs a future as a task on this reactor and gives its outcome as a Deferred
    /// (Twisted's `ensureDeferred`).
    ///
    /// The future need not be `Send`. It is polled for the first time at once, so a future
    /// that never waits gives an already-fired Deferred. It may be woken from any thread.
    /// Its output is anything a callback may return: `Ok(value)`, `Err(failure)` (`?`
    /// works on any error) or a Deferred. A panic becomes a failure.
    ///
    /// Cancelling the Deferred cancels the Deferred the task awaits, as in Twisted: the
    /// task resumes at that `.await` with its result ([`Cancelled`], or what its canceller
    /// gave), can catch it, clean up and return a value, and the task's Deferred fires with
    /// what the task returns. Cancelling again cancels what the task awaits then. A task
    /// that awaits something else than a Deferred (a socket, a timer future) is dropped,
    /// and its Deferred errbacks with [`Cancelled`]. A cancel that comes after the awaited
    /// Deferred fired but before the task resumed (it resumes on the next turn) finds
    /// nothing left to cancel, and the task goes on with that result.
    ///
    /// [`Cancelled`]: ropewalk_deferred::Cancelled
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use ropewalk_reactor::Reactor;
    ///
    /// let reactor = Reactor::new()?;
    /// let r = reactor.clone();
    /// let d = reactor.spawn(async move {
    ///     r.sleep(Duration::from_millis(5)).await?;
    ///     let n = r.defer_to_thread(|| Ok(2 + 2)).await?;
    ///     Ok(n * 10)
    /// });
    /// assert_eq!(d.wait().unwrap(), 40);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn spawn<T, R, F>(&self, future: F) -> Deferred<T>
    where
        T: 'static,
        R: IntoOutcome<T> + 'static,
        F: Future<Output = R> + 'static,
    {
        let inner = &self.inner;
        // The key the task will have: the canceller knows it without a shared cell.
        let key = inner.tasks.next_key();
        let weak = Rc::downgrade(inner);
        let (d, resolver) = Deferred::<T>::with_forwarding_canceller(move || {
            weak.upgrade().is_some_and(|inner| inner.tasks.cancel(key))
        });
        inner
            .tasks
            .insert(key, task_future(future, resolver), &inner.remote);
        inner.tasks.poll(key, &inner.in_turn);
        d
    }

    /// A Deferred that fires with `()` after `duration`: `reactor.sleep(d).await?` in a
    /// task. Cancelling it cancels the timer.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    ///
    /// let reactor = ropewalk_reactor::Reactor::new()?;
    /// let start = Instant::now();
    /// reactor.sleep(Duration::from_millis(20)).wait().unwrap();
    /// assert!(start.elapsed() >= Duration::from_millis(20));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn sleep(&self, duration: Duration) -> Deferred<()> {
        defer_later(self, duration, || Ok(()))
    }

    /// Adds a function to run at a phase of a system event (Twisted's
    /// `addSystemEventTrigger`). Triggers of one phase run in the order they were added;
    /// one that fails or panics is logged and the others still run. Each trigger runs
    /// once: at the next time its event happens, then it is gone (so a reactor that is
    /// run again needs its triggers added again).
    ///
    /// Triggers run only through [`run`](Self::run), not while a `wait()` or `iterate()`
    /// drives the loop.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::{cell::RefCell, rc::Rc, time::Duration};
    /// use ropewalk_reactor::{Clock, Phase, Reactor, SystemEvent};
    ///
    /// let reactor = Reactor::new()?;
    /// let log = Rc::new(RefCell::new(vec![]));
    /// let (l, r) = (log.clone(), reactor.clone());
    /// reactor.add_system_event_trigger(Phase::Before, SystemEvent::Shutdown, move || {
    ///     l.borrow_mut().push("saving");
    ///     // Shutdown waits for this Deferred before going on.
    ///     r.sleep(Duration::from_millis(5))
    /// });
    /// let l = log.clone();
    /// reactor.add_system_event_trigger(Phase::After, SystemEvent::Shutdown, move || {
    ///     l.borrow_mut().push("bye");
    ///     Ok(())
    /// });
    /// let r = reactor.clone();
    /// reactor.call_when_running(move || r.stop().unwrap());
    /// reactor.run()?;
    /// assert_eq!(*log.borrow(), vec!["saving", "bye"]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn add_system_event_trigger<R: IntoOutcome<()> + 'static>(
        &self,
        phase: Phase,
        event: SystemEvent,
        f: impl FnOnce() -> R + 'static,
    ) -> TriggerId {
        let trigger = Box::new(move || maybe_deferred(f));
        self.inner.triggers.add(phase, event, trigger)
    }

    /// Removes a trigger that has not run yet.
    ///
    /// # Errors
    ///
    /// [`ReactorError::UnknownTrigger`] if there is no such trigger (it ran, or was
    /// removed).
    ///
    /// # Examples
    ///
    /// ```
    /// use ropewalk_reactor::{Phase, Reactor, ReactorError, SystemEvent};
    ///
    /// let reactor = Reactor::new()?;
    /// let id = reactor.add_system_event_trigger(Phase::During, SystemEvent::Startup, || Ok(()));
    /// reactor.remove_system_event_trigger(id).unwrap();
    /// assert_eq!(reactor.remove_system_event_trigger(id), Err(ReactorError::UnknownTrigger));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn remove_system_event_trigger(&self, id: TriggerId) -> Result<(), ReactorError> {
        self.inner.triggers.remove(id)
    }

    /// Runs `f` now if the reactor is running, else once it has started (an `After`
    /// startup trigger, whose id is returned).
    ///
    /// # Examples
    ///
    /// ```
    /// let reactor = ropewalk_reactor::Reactor::new()?;
    /// let r = reactor.clone();
    /// assert!(reactor.call_when_running(move || r.stop().unwrap()).is_some());
    /// reactor.run()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn call_when_running(&self, f: impl FnOnce() + 'static) -> Option<TriggerId> {
        if self.is_running() {
            f();
            None
        } else {
            Some(
                self.add_system_event_trigger(Phase::After, SystemEvent::Startup, move || {
                    f();
                    Ok(())
                }),
            )
        }
    }

    /// How long shutdown waits for the Deferreds of `Before` shutdown triggers (default
    /// 30 s); past it, shutdown goes on and a warning is logged. A [`stop`](Self::stop)
    /// while shutdown waits for them (a second SIGINT or SIGTERM) ends the wait at once.
    ///
    /// # Examples
    ///
    /// ```
    /// let reactor = ropewalk_reactor::Reactor::new()?;
    /// reactor.set_shutdown_timeout(std::time::Duration::from_secs(5));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn set_shutdown_timeout(&self, timeout: Duration) {
        self.inner.triggers.set_timeout(timeout);
    }

    /// How long shutdown waits for the Deferreds of `Before` shutdown triggers (see
    /// [`set_shutdown_timeout`](Self::set_shutdown_timeout)).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let reactor = ropewalk_reactor::Reactor::new()?;
    /// assert_eq!(reactor.shutdown_timeout(), Duration::from_secs(30));
    /// reactor.set_shutdown_timeout(Duration::from_secs(5));
    /// assert_eq!(reactor.shutdown_timeout(), Duration::from_secs(5));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn shutdown_timeout(&self) -> Duration {
        self.inner.triggers.timeout()
    }

    /// Runs the three phases of `event`, waiting for `Before` triggers' Deferreds, and
    /// closing every source during shutdown.
    fn fire_system_event(&self, event: SystemEvent) {
        for phase in [Phase::Before, Phase::During, Phase::After] {
            let pending = self.inner.triggers.run_phase(phase, event);
            if pending.get() > 0 {
                self.wait_for_triggers(event, &pending);
            }
            if phase == Phase::During && event == SystemEvent::Shutdown {
                self.shutdown_sources();
                // Let the connections' `connection_lost` calls run before `run()` returns.
                self.turn(Some(Duration::ZERO));
            }
        }
    }

    /// Runs turns until the `pending` trigger Deferreds have fired, or the shutdown
    /// timeout has passed.
    fn wait_for_triggers(&self, event: SystemEvent, pending: &Cell<usize>) {
        let timeout = self.inner.triggers.timeout();
        let deadline = Instant::now() + timeout;
        let mut stopped = false;
        self.wait_for_triggers_until(event, pending, timeout, deadline, &mut stopped);
        if stopped {
            self.inner.remote.stop.store(true, Ordering::Release);
        }
    }

    fn wait_for_triggers_until(
        &self,
        event: SystemEvent,
        pending: &Cell<usize>,
        timeout: Duration,
        deadline: Instant,
        stopped: &mut bool,
    ) {
        while pending.get() > 0 {
            let now = Instant::now();
            if now >= deadline {
                log::warn!(
                    "{event:?}: {} trigger(s) still pending after {timeout:?}; going on",
                    pending.get()
                );
                return;
            }
            if self.inner.remote.stop.swap(false, Ordering::AcqRel) {
                if event == SystemEvent::Shutdown {
                    // Stopped again while stopping (a second Ctrl-C): stop at once.
                    log::warn!(
                        "stopped again: not waiting for {} shutdown trigger(s)",
                        pending.get()
                    );
                    return;
                }
                // During startup a stop is for the loop, which sees it after startup.
                *stopped = true;
            }
            self.turn(Some(deadline - now));
        }
    }

    /// Closes every source (the `During` shutdown phase).
    fn shutdown_sources(&self) {
        for h in self.inner.sources.handlers() {
            if let Err(p) = catch_unwind(AssertUnwindSafe(|| h.shutdown())) {
                log::error!(
                    "panic while closing at shutdown: {}",
                    Failure::from_panic(p)
                );
            }
        }
    }

    /// Registers `fd` with `handler` (see [`Sources::register`]). The caller must
    /// [`deregister`](Self::deregister) it before the descriptor is closed.
    pub(crate) fn register(
        &self,
        fd: &impl AsRawFd,
        interest: Interest,
        mode: PollMode,
        handler: Rc<dyn IoHandler>,
    ) -> std::io::Result<Key> {
        let poller = &self.inner.remote.poller;
        self.inner
            .sources
            .register(poller, fd, interest, mode, handler)
    }

    /// Registers a listening socket (see [`Sources::register_listener`]).
    pub(crate) fn register_listener(
        &self,
        fd: &impl AsRawFd,
        handler: Rc<dyn IoHandler>,
    ) -> std::io::Result<Key> {
        let poller = &self.inner.remote.poller;
        self.inner.sources.register_listener(poller, fd, handler)
    }

    /// Changes what `key` wants to hear about (re-arms a oneshot source).
    pub(crate) fn reregister(&self, key: Key, interest: Interest) -> std::io::Result<()> {
        let poller = &self.inner.remote.poller;
        self.inner.sources.reregister(poller, key, interest)
    }

    /// Removes `key` from the poller. Call before closing the descriptor. Whether `key`
    /// was registered.
    pub(crate) fn deregister(&self, key: Key) -> bool {
        self.inner
            .sources
            .deregister(&self.inner.remote.poller, key)
    }

    /// Hands `ready` to `key`'s handler on the next turn (see [`Sources::ready_again`]).
    pub(crate) fn ready_again(&self, key: Key, ready: Ready) {
        self.inner.sources.ready_again(key, ready);
    }

    /// Whether connections register edge-triggered interest.
    pub(crate) fn edge_io(&self) -> bool {
        self.inner.sources.edge()
    }

    /// The reactor's shared read buffer, lent out for one read.
    pub(crate) fn take_read_buffer(&self) -> Vec<u8> {
        self.inner.sources.take_read_buffer()
    }

    /// Gives back the buffer of [`take_read_buffer`](Self::take_read_buffer).
    pub(crate) fn return_read_buffer(&self, buf: Vec<u8>) {
        self.inner.sources.return_read_buffer(buf);
    }

    /// One turn of the loop; `max_wait: None` may block until something happens.
    fn turn(&self, max_wait: Option<Duration>) {
        let inner = &self.inner;
        let was_in_turn = inner.in_turn.replace(true);
        inner.turns.set(inner.turns.get() + 1);

        self.poll_io(max_wait);
        self.run_remote();
        time::run_due(&inner.timers, false);
        self.run_soon();
        inner.tasks.run_ready(&inner.in_turn);

        inner.loop_time.set(None);
        inner.in_turn.set(was_in_turn);
    }

    fn poll_io(&self, max_wait: Option<Duration>) {
        let inner = &self.inner;
        let busy = !inner.soon.borrow().is_empty()
            || inner.tasks.has_ready()
            || inner.sources.has_again()
            || inner.remote.stop.load(Ordering::Acquire)
            || inner.remote.queued.load(Ordering::Acquire);
        let timeout = if busy {
            Some(Duration::ZERO)
        } else {
            let next = inner.timers.borrow_mut().next_time();
            let until_timer = next.map(|t| {
                let now = inner.timers.borrow().now();
                t.saturating_sub(now)
            });
            match (until_timer, max_wait) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            }
        };
        inner.sources.wait(&inner.remote.poller, timeout);
        // One clock read per wake-up, for `loop_time`.
        inner.loop_time.set(Some(inner.timers.borrow().now()));
        inner.sources.dispatch(|handler, ready| {
            if let Err(p) = catch_unwind(AssertUnwindSafe(|| handler.ready(self, ready))) {
                log::error!("panic in an I/O handler: {}", Failure::from_panic(p));
            }
        });
    }

    fn run_remote(&self) {
        let inner = &self.inner;
        if !inner.remote.queued.load(Ordering::Acquire) {
            return;
        }
        let mut batch = std::mem::take(&mut *inner.spare.borrow_mut());
        {
            let mut q = inner.remote.queue.lock().unwrap_or_else(|e| e.into_inner());
            std::mem::swap(&mut *q, &mut batch);
            inner.remote.queued.store(false, Ordering::Release);
        }
        for op in batch.drain(..) {
            match op {
                RemoteOp::Call(f) => {
                    if let Err(p) = catch_unwind(AssertUnwindSafe(|| f(self))) {
                        log::error!(
                            "panic in a call from another thread: {}",
                            Failure::from_panic(p)
                        );
                    }
                }
                RemoteOp::Wake(key) => inner.tasks.wake(key),
                RemoteOp::Done(job) => {
                    if let Err(p) = catch_unwind(AssertUnwindSafe(|| job.finish(&inner.jobs))) {
                        log::error!("panic in a job's callbacks: {}", Failure::from_panic(p));
                    }
                }
            }
        }
        *inner.spare.borrow_mut() = batch;
    }

    fn run_soon(&self) {
        let n = self.inner.soon.borrow().len().min(SOON_BUDGET);
        for _ in 0..n {
            let Some(f) = self.inner.soon.borrow_mut().pop_front() else {
                break;
            };
            if let Err(p) = catch_unwind(AssertUnwindSafe(f)) {
                log::error!(
                    "panic in a callback (continuing): {}",
                    Failure::from_panic(p)
                );
            }
        }
    }
}

impl Drop for ReactorCore {
    fn drop(&mut self) {
        // Drop what other threads queued and will never run: a `blocking_call` waiting on
        // one of them then gets `Gone` instead of blocking forever.
        let orphans = {
            let mut q = self.remote.queue.lock().unwrap_or_else(|e| e.into_inner());
            self.remote.alive.store(false, Ordering::Release);
            std::mem::take(&mut *q)
        };
        drop(orphans);
        if let Some(pool) = self.pool.get_mut().take() {
            pool.shutdown();
        }
        if let Some(pool) = self.io_pool.get_mut().take() {
            pool.shutdown();
        }
        // Stop being this thread's wait driver and current reactor, unless another reactor
        // took over; the one made before this one, if alive, becomes current again.
        if let Some(ours) = self.driver.get_mut().take() {
            if let Some(current) = set_wait_driver(None) {
                if !Rc::ptr_eq(&current, &ours) {
                    set_wait_driver(Some(current));
                } else if let Some(prev) = self.previous.upgrade() {
                    set_wait_driver(prev.driver.borrow().clone());
                    CURRENT.with(|c| *c.borrow_mut() = Rc::downgrade(&prev));
                }
            }
        }
    }
}

impl fmt::Debug for Reactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reactor")
            .field("running", &self.inner.running.get())
            .field("stats", &self.stats())
            .finish()
    }
}

impl Clock for Reactor {
    fn now(&self) -> Duration {
        self.inner.timers.borrow().now()
    }

    /// The time the loop last woke up, inside a turn (read once per wake-up); outside
    /// one, [`now`](Clock::now).
    fn loop_time(&self) -> Duration {
        self.inner
            .loop_time
            .get()
            .unwrap_or_else(|| self.inner.timers.borrow().now())
    }

    fn call_later_boxed(&self, delay: Duration, f: Box<dyn FnOnce()>) -> DelayedCall {
        time::schedule(&self.inner.timers, delay, f)
    }
}

impl Reactor {
    /// Runs `f` once on the loop, `delay` from now and never earlier (Twisted's
    /// `reactor.callLater`). Calls due at the same time run in the order they were made.
    /// The closure and the call's state share one allocation.
    ///
    /// The same method exists on [`ManualClock`](crate::ManualClock) and on a
    /// [`dyn Clock`](Clock) (`&dyn Clock`, `Rc<dyn Clock>`), so code written against a
    /// reactor reads the same in a test with a hand-driven clock.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use ropewalk_reactor::Reactor;
    ///
    /// let reactor = Reactor::new()?;
    /// let r = reactor.clone();
    /// reactor.call_later(Duration::from_millis(5), move || { r.stop().unwrap(); });
    /// reactor.run().unwrap();
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn call_later(&self, delay: Duration, f: impl FnOnce() + 'static) -> DelayedCall {
        time::schedule(&self.inner.timers, delay, f)
    }
}

impl Scheduler for Reactor {
    fn schedule(&self, delay: Duration, f: Box<dyn FnOnce()>) -> ScheduledCall {
        time::scheduled(self.call_later_boxed(delay, f))
    }
}

/// A `Send + Sync` handle on a [`Reactor`], for other threads.
///
/// # Examples
///
/// ```
/// use ropewalk_reactor::{Clock, Reactor};
///
/// let reactor = Reactor::new()?;
/// let handle = reactor.handle();
/// let worker = std::thread::spawn(move || {
///     // Runs on the reactor thread; may return a Deferred, whose result comes back here.
///     handle.blocking_call(|| Ok(21 * 2)).unwrap()
/// });
/// # let r = reactor.clone();
/// # reactor.call_later(std::time::Duration::from_secs(30), move || { let _ = r.stop(); });
/// let d = reactor.defer_to_thread(move || Ok(worker.join().unwrap()));
/// assert_eq!(d.wait().unwrap(), 42);
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct ReactorHandle {
    remote: Arc<Remote>,
}

impl ReactorHandle {
    fn new(remote: Arc<Remote>) -> ReactorHandle {
        remote.external.fetch_add(1, Ordering::AcqRel);
        ReactorHandle { remote }
    }

    /// Runs `f` on the reactor thread on its next turn, waking it if it sleeps
    /// (Twisted's `callFromThread`). Calls run in the order they were made. If the reactor
    /// is gone, `f` is dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// let reactor = ropewalk_reactor::Reactor::new()?;
    /// let h = reactor.handle();
    /// let r = reactor.clone();
    /// std::thread::spawn(move || h.call_from_thread(|| println!("on the reactor thread")));
    /// let h = reactor.handle();
    /// std::thread::spawn(move || h.stop());
    /// reactor.run()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn call_from_thread(&self, f: impl FnOnce() + Send + 'static) {
        if !self
            .remote
            .push(RemoteOp::Call(Box::new(move |_: &Reactor| f())))
        {
            log::debug!("call_from_thread: the reactor is gone; call dropped");
        }
    }

    /// Runs `f` on the reactor thread with the reactor at hand.
    pub(crate) fn call_with_reactor(&self, f: impl FnOnce(&Reactor) + Send + 'static) -> bool {
        self.remote.push(RemoteOp::Call(Box::new(f)))
    }

    /// Stops the reactor after its current turn, from any thread. Nothing happens if it is
    /// not running when the request arrives.
    ///
    /// # Examples
    ///
    /// ```
    /// let reactor = ropewalk_reactor::Reactor::new()?;
    /// let h = reactor.handle();
    /// std::thread::spawn(move || h.stop());
    /// reactor.run()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn stop(&self) {
        self.call_with_reactor(|r| {
            let _ = r.stop();
        });
    }

    /// Runs `f` on the reactor thread and blocks this thread until its result, which may
    /// be a Deferred, is there (Twisted's `blockingCallFromThread`).
    ///
    /// # Errors
    ///
    /// `f`'s failure; [`ReactorError::OnReactorThread`] if called on the reactor's own
    /// thread (it would deadlock); [`ReactorError::Gone`] if the reactor went away (or
    /// stopped being driven and was dropped) before answering.
    ///
    /// # Examples
    ///
    /// ```
    /// use ropewalk_reactor::{Reactor, ReactorError};
    ///
    /// let reactor = Reactor::new()?;
    /// let err = reactor.handle().blocking_call(|| Ok(1)).unwrap_err();
    /// assert_eq!(err.downcast_ref::<ReactorError>(), Some(&ReactorError::OnReactorThread));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn blocking_call<T, R>(&self, f: impl FnOnce() -> R + Send + 'static) -> Result<T, Failure>
    where
        T: Send + 'static,
        R: ropewalk_deferred::IntoOutcome<T> + 'static,
    {
        if std::thread::current().id() == self.remote.thread {
            return Err(Failure::new(ReactorError::OnReactorThread));
        }
        let reply = Arc::new(Reply {
            result: Mutex::new(None),
            done: AtomicBool::new(false),
            caller: std::thread::current(),
        });
        let responder = Responder(Some(reply.clone()));
        let pushed = self.call_with_reactor(move |_| {
            let d = ropewalk_deferred::maybe_deferred(f);
            d.add_both(move |result| {
                responder.send(result);
                Ok(())
            });
        });
        if !pushed {
            return Err(Failure::new(ReactorError::Gone));
        }
        reply.wait()
    }

    /// Whether the calling thread is the reactor's (Twisted's `isInIOThread`).
    ///
    /// # Examples
    ///
    /// ```
    /// let reactor = ropewalk_reactor::Reactor::new()?;
    /// assert!(reactor.handle().is_reactor_thread());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn is_reactor_thread(&self) -> bool {
        std::thread::current().id() == self.remote.thread
    }
}

/// Where `blocking_call`'s answer lands: one allocation, shared by the caller and the
/// call it queued.
struct Reply<T> {
    result: Mutex<Option<Result<T, Failure>>>,
    done: AtomicBool,
    caller: std::thread::Thread,
}

/// How long `blocking_call` looks for its answer before it parks: a call the reactor
/// answers at once comes back without a futex wait and wake.
const REPLY_SPIN: Duration = Duration::from_micros(20);

impl<T> Reply<T> {
    fn wait(&self) -> Result<T, Failure> {
        let deadline = Instant::now() + REPLY_SPIN;
        while !self.done.load(Ordering::Acquire) {
            if Instant::now() < deadline {
                std::thread::yield_now();
            } else {
                std::thread::park();
            }
        }
        self.result
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .unwrap_or_else(|| Err(Failure::new(ReactorError::Gone)))
    }
}

/// The reactor's side of a `blocking_call`: answers once; dropped unanswered (the reactor
/// went away, the Deferred was dropped unfired), it answers [`ReactorError::Gone`].
struct Responder<T>(Option<Arc<Reply<T>>>);

impl<T> Responder<T> {
    fn send(mut self, result: Result<T, Failure>) {
        self.answer(result);
    }

    fn answer(&mut self, result: Result<T, Failure>) {
        if let Some(reply) = self.0.take() {
            *reply.result.lock().unwrap_or_else(|e| e.into_inner()) = Some(result);
            reply.done.store(true, Ordering::Release);
            reply.caller.unpark();
        }
    }
}

impl<T> Drop for Responder<T> {
    fn drop(&mut self) {
        self.answer(Err(Failure::new(ReactorError::Gone)));
    }
}

impl Clone for ReactorHandle {
    fn clone(&self) -> Self {
        ReactorHandle::new(self.remote.clone())
    }
}

impl Drop for ReactorHandle {
    fn drop(&mut self) {
        self.remote.external.fetch_sub(1, Ordering::AcqRel);
        // Let a reactor waiting in `wait()` notice that no more work can come.
        let _ = self.remote.poller.notify();
    }
}

impl fmt::Debug for ReactorHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReactorHandle")
            .field("alive", &self.remote.alive.load(Ordering::Relaxed))
            .finish()
    }
}
