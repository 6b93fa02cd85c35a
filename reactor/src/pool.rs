//! The worker pool behind `defer_to_thread` and `call_in_thread`: a bounded number of
//! threads, started lazily, that retire after a keep-alive when idle.

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use ropewalk_deferred::Failure;

use crate::error::ReactorError;

/// A job the pool runs once.
pub(crate) enum Job {
    /// A closure (`call_in_thread`).
    Boxed(Box<dyn FnOnce() + Send>),
    /// A job that carries its own state, sent as is: `defer_to_thread`'s one allocation
    /// per job holds the function, its result and its way back to the reactor.
    Shared(Arc<dyn Task>),
}

/// A job shared between the pool and its submitter.
pub(crate) trait Task: Send + Sync {
    fn run(self: Arc<Self>);
}

impl Job {
    fn run(self) {
        match self {
            Job::Boxed(f) => f(),
            Job::Shared(t) => t.run(),
        }
    }
}

/// How the worker pool behaves.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use ropewalk_reactor::PoolConfig;
///
/// let config = PoolConfig { max_threads: 4, ..PoolConfig::default() };
/// assert_eq!(config.max_queue, 100_000);
/// assert_eq!(config.max_queue_wait, Duration::from_secs(10));
/// assert_eq!(config.keep_alive, Duration::from_secs(10));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolConfig {
    /// Most threads at once (default 10, as Twisted's reactor pool; at least 1).
    pub max_threads: usize,
    /// Most jobs waiting for a thread (default 100,000, at least 1); past it, submitting fails with
    /// [`ReactorError::PoolFull`] instead of growing memory.
    pub max_queue: usize,
    /// Longest a job may have waited for a thread at the front of the queue before new jobs
    /// are refused (default 10 s): past it, submitting fails with
    /// [`ReactorError::PoolFull`] until the queue moves again.
    ///
    /// The queue is first in, first out, so the front job's wait is the wait a new job
    /// would see: this bounds the time to start in time, whatever the jobs cost, where a
    /// bound in length cannot (100,000 jobs of 200 ms on 10 threads are 2,000 s away). A
    /// refused job can be answered at once (an HTTP server answers 503), instead of after
    /// its client gave up; 10 s keeps an admitted request well inside the 30–60 s clients
    /// commonly wait. Jobs that take microseconds still queue by the thousand.
    pub max_queue_wait: Duration,
    /// How long an idle thread waits for work before it exits (default 10 s).
    pub keep_alive: Duration,
}

impl PoolConfig {
    /// The default of the reactor's I/O pool ([`Reactor::defer_to_io_thread`](crate::Reactor::defer_to_io_thread)):
    /// 4 threads, enough to keep a disk or two busy without crowding the cores the
    /// reactors run on; the rest as [`PoolConfig::default`].
    ///
    /// # Examples
    ///
    /// ```
    /// let config = ropewalk_reactor::PoolConfig::io_default();
    /// assert_eq!(config.max_threads, 4);
    /// ```
    pub fn io_default() -> PoolConfig {
        PoolConfig {
            max_threads: 4,
            ..PoolConfig::default()
        }
    }
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            max_threads: 10,
            max_queue: 100_000,
            max_queue_wait: Duration::from_secs(10),
            keep_alive: Duration::from_secs(10),
        }
    }
}

/// What the pool's threads and its submitters share under one lock: the jobs and
/// the count of threads in each condition.
struct PoolQueue {
    /// The jobs, each with when it was submitted.
    queue: VecDeque<(Instant, Job)>,
    threads: usize,
    /// Threads waiting on the condvar (or woken and not yet back under the lock).
    idle: usize,
    /// `notify_one`s sent and not yet taken by a woken thread: while every idle thread is
    /// already being woken, another submit need not wake anyone (each woken thread looks
    /// at the queue, and goes on taking jobs until it is empty).
    wakeups: usize,
    /// A thread that found the queue empty is looking at it again for a short while
    /// before it waits (at most one at a time): a submit then need not wake anyone.
    spinning: bool,
    shutdown: bool,
    spawned: u64,
}

/// How long a thread that ran out of jobs looks for a new one before it waits: long enough
/// to catch the next of a stream of submits without a wake-up (a futex wake, a context
/// switch), short enough to cost nothing to speak of when the stream has ended.
const SPIN: Duration = Duration::from_micros(50);

struct PoolShared {
    /// Its threads' names: `{name}-{n}`.
    name: &'static str,
    state: Mutex<PoolQueue>,
    /// The queue's length, kept under the lock, for the spinning thread to read without it.
    queued: AtomicUsize,
    cv: Condvar,
    config: PoolConfig,
}

/// A handle on the pool; cloning shares it.
#[derive(Clone)]
pub(crate) struct Pool {
    shared: Arc<PoolShared>,
}

/// A snapshot of the pool, for stats and tests.
///
/// # Examples
///
/// ```
/// let reactor = ropewalk_reactor::Reactor::new()?;
/// assert_eq!(reactor.pool_stats().spawned, 0); // the pool starts with its first job
/// reactor.defer_to_thread(|| Ok(())).wait().unwrap();
/// let stats = reactor.pool_stats();
/// assert!(stats.spawned >= 1 && stats.threads >= 1);
/// assert_eq!(stats.queued, 0);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Threads alive now.
    pub threads: usize,
    /// Threads waiting for work.
    pub idle: usize,
    /// Jobs waiting for a thread.
    pub queued: usize,
    /// Threads started since the pool was made.
    pub spawned: u64,
}

impl Pool {
    /// A pool whose threads are named `{name}-{n}`.
    pub(crate) fn new(name: &'static str, mut config: PoolConfig) -> Pool {
        config.max_threads = config.max_threads.max(1);
        config.max_queue = config.max_queue.max(1);
        Pool {
            shared: Arc::new(PoolShared {
                name,
                state: Mutex::new(PoolQueue {
                    queue: VecDeque::new(),
                    threads: 0,
                    idle: 0,
                    wakeups: 0,
                    spinning: false,
                    shutdown: false,
                    spawned: 0,
                }),
                queued: AtomicUsize::new(0),
                cv: Condvar::new(),
                config,
            }),
        }
    }

    pub(crate) fn submit(&self, job: Job) -> Result<(), ReactorError> {
        let mut st = self.shared.state.lock().unwrap_or_else(|e| e.into_inner());
        if st.shutdown {
            return Err(ReactorError::PoolShutDown);
        }
        if st.queue.len() >= self.shared.config.max_queue {
            return Err(ReactorError::PoolFull(st.queue.len()));
        }
        let now = Instant::now();
        if let Some((since, _)) = st.queue.front() {
            // The queue does not move fast enough: a new job would wait too long.
            if now.saturating_duration_since(*since) > self.shared.config.max_queue_wait {
                return Err(ReactorError::PoolFull(st.queue.len()));
            }
        }
        st.queue.push_back((now, job));
        self.shared.queued.store(st.queue.len(), Ordering::Release);
        if st.queue.len() > st.idle && st.threads < self.shared.config.max_threads {
            st.threads += 1;
            st.spawned += 1;
            let n = st.spawned;
            drop(st);
            let shared = self.shared.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("{}-{n}", self.shared.name))
                .spawn(move || worker(shared));
            if let Err(e) = spawned {
                log::error!("cannot start a worker thread: {e}");
                let mut st = self.shared.state.lock().unwrap_or_else(|e| e.into_inner());
                st.threads -= 1;
            }
        } else if !st.spinning && st.idle > st.wakeups {
            // Wake a waiting worker, unless every waiting one is already being woken; busy
            // ones look at the queue before they wait.
            st.wakeups += 1;
            drop(st);
            self.shared.cv.notify_one();
        }
        Ok(())
    }

    pub(crate) fn stats(&self) -> PoolStats {
        let st = self.shared.state.lock().unwrap_or_else(|e| e.into_inner());
        PoolStats {
            threads: st.threads,
            idle: st.idle,
            queued: st.queue.len(),
            spawned: st.spawned,
        }
    }

    /// Stops taking jobs, drops the queued ones, and lets the threads exit once their
    /// current job is done. Does not wait for them.
    pub(crate) fn shutdown(&self) {
        let dropped = {
            let mut st = self.shared.state.lock().unwrap_or_else(|e| e.into_inner());
            st.shutdown = true;
            self.shared.queued.store(0, Ordering::Release);
            std::mem::take(&mut st.queue)
        };
        drop(dropped);
        self.shared.cv.notify_all();
    }
}

fn worker(shared: Arc<PoolShared>) {
    let mut st = shared.state.lock().unwrap_or_else(|e| e.into_inner());
    let mut may_spin = true;
    loop {
        if let Some((_, job)) = st.queue.pop_front() {
            shared.queued.store(st.queue.len(), Ordering::Release);
            may_spin = true;
            drop(st);
            if let Err(p) = catch_unwind(AssertUnwindSafe(|| job.run())) {
                log::error!("panic in a worker job: {}", Failure::from_panic(p));
            }
            st = shared.state.lock().unwrap_or_else(|e| e.into_inner());
            continue;
        }
        if st.shutdown {
            break;
        }
        if may_spin && !st.spinning {
            // Look again for a little while, without the lock and without sleeping, then
            // once more under the lock (the loop's top) before waiting.
            st.spinning = true;
            may_spin = false;
            drop(st);
            let deadline = Instant::now() + SPIN;
            while shared.queued.load(Ordering::Acquire) == 0 && Instant::now() < deadline {
                for _ in 0..16 {
                    std::hint::spin_loop();
                }
                std::thread::yield_now();
            }
            st = shared.state.lock().unwrap_or_else(|e| e.into_inner());
            st.spinning = false;
            continue;
        }
        may_spin = true;
        st.idle += 1;
        let (guard, timeout) = shared
            .cv
            .wait_timeout(st, shared.config.keep_alive)
            .unwrap_or_else(|e| e.into_inner());
        st = guard;
        st.idle -= 1;
        // Whether this was the notified thread or not (a timeout, a spurious wake-up), it
        // looks at the queue now: one pending wake-up is accounted for.
        st.wakeups = st.wakeups.saturating_sub(1);
        if timeout.timed_out() && st.queue.is_empty() {
            break;
        }
    }
    st.threads -= 1;
}
