//! Threads: `ReactorHandle` (call_from_thread, blocking_call, stop, is_reactor_thread) and
//! the worker pool (`defer_to_thread`, `call_in_thread`, `configure_pool`).

mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use ropewalk_reactor::deferred::{Cancelled, Deferred, Failure, Panicked};
use ropewalk_reactor::{defer_later, Clock, PoolConfig, Reactor, ReactorError, ReactorHandle};

const LIMIT: Duration = Duration::from_secs(10);

/// Runs `f(handle)` on another thread while this one runs the reactor; the thread stops
/// the reactor when `f` returns. Bounded: a safety timer stops the reactor after `LIMIT`.
fn run_with_thread<T: Send + 'static>(
    reactor: &Reactor,
    f: impl FnOnce(&ReactorHandle) -> T + Send + 'static,
) -> T {
    let handle = reactor.handle();
    let (tx, rx) = mpsc::channel();
    let thread = std::thread::spawn(move || {
        let v = f(&handle);
        tx.send(v).unwrap();
        handle.stop();
    });
    let r = reactor.clone();
    let safety = reactor.call_later(LIMIT, move || {
        let _ = r.stop();
    });
    reactor.run().unwrap();
    let _ = safety.cancel();
    let v = rx
        .recv_timeout(Duration::from_secs(1))
        .expect("the thread did not finish while the reactor ran");
    thread.join().unwrap();
    v
}

/// Waits for `d` with a bound: a bug fails with `Timeout` instead of hanging.
fn wait<T: 'static>(reactor: &Reactor, d: Deferred<T>) -> Result<T, Failure> {
    d.add_timeout(LIMIT, reactor).wait()
}

/// A gate worker jobs block on until the test opens it (never longer than `LIMIT`).
#[derive(Default)]
struct Gate {
    open: Mutex<bool>,
    cv: Condvar,
}

impl Gate {
    fn open(&self) {
        *self.open.lock().unwrap() = true;
        self.cv.notify_all();
    }

    fn wait(&self) -> bool {
        let guard = self.open.lock().unwrap();
        let (guard, _) = self
            .cv
            .wait_timeout_while(guard, LIMIT, |open| !*open)
            .unwrap();
        *guard
    }
}

/// Twisted: test_internet.CallFromThreadTests.test_threadsAreRunInScheduledOrder
#[test]
fn call_from_thread_is_fifo() {
    let reactor = Reactor::new().unwrap();
    let order = Arc::new(Mutex::new(Vec::new()));
    let o = order.clone();
    run_with_thread(&reactor, move |h| {
        for i in 0..1000 {
            let o = o.clone();
            h.call_from_thread(move || o.lock().unwrap().push(i));
        }
    });
    assert_eq!(*order.lock().unwrap(), (0..1000).collect::<Vec<_>>());
}

/// Twisted: test_internet.CallFromThreadTests.test_lotsOfThreadsAreScheduledCorrectly
#[test]
fn calls_from_many_threads_all_run() {
    const THREADS: usize = 16;
    const CALLS: usize = 200;
    let reactor = Reactor::new().unwrap();
    let seen = Arc::new(Mutex::new(vec![Vec::new(); THREADS]));
    let on_reactor = Arc::new(AtomicUsize::new(0));
    let (s, on) = (seen.clone(), on_reactor.clone());
    run_with_thread(&reactor, move |h| {
        let threads: Vec<_> = (0..THREADS)
            .map(|t| {
                let (h, s, on) = (h.clone(), s.clone(), on.clone());
                std::thread::spawn(move || {
                    for i in 0..CALLS {
                        let (s, on, h2) = (s.clone(), on.clone(), h.clone());
                        h.call_from_thread(move || {
                            if h2.is_reactor_thread() {
                                on.fetch_add(1, Ordering::Relaxed);
                            }
                            s.lock().unwrap()[t].push(i);
                        });
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
    });
    let seen = seen.lock().unwrap();
    for (t, calls) in seen.iter().enumerate() {
        assert_eq!(*calls, (0..CALLS).collect::<Vec<_>>(), "thread {t}'s calls");
    }
    assert_eq!(on_reactor.load(Ordering::Relaxed), THREADS * CALLS);
}

/// Twisted: test_internet.CallFromThreadTests.test_scheduledThreadsNotRunUntilReactorRuns
#[test]
fn nothing_runs_before_the_reactor_runs() {
    let reactor = Reactor::new().unwrap();
    let ran = Arc::new(AtomicBool::new(false));
    let (h, r) = (reactor.handle(), ran.clone());
    std::thread::spawn(move || h.call_from_thread(move || r.store(true, Ordering::SeqCst)))
        .join()
        .unwrap();
    assert!(!ran.load(Ordering::SeqCst), "ran before the reactor did");
    reactor.iterate(Duration::ZERO);
    assert!(ran.load(Ordering::SeqCst));
}

/// A call made from inside a call from a thread waits for the next turn (only the calls
/// present when the drain starts run).
/// Twisted: test_internet.CallFromThreadStopsAndWakeUpTests.testCallFromThreadStops
#[test]
fn call_from_thread_queued_while_draining_runs_next_turn() {
    let reactor = Reactor::new().unwrap();
    let turns = Arc::new(Mutex::new(Vec::new()));
    let (h, t) = (reactor.handle(), turns.clone());
    let h2 = h.clone();
    h.call_from_thread(move || {
        let turn = Reactor::current().unwrap().stats().turns;
        t.lock().unwrap().push(turn);
        let t2 = t.clone();
        h2.call_from_thread(move || {
            t2.lock()
                .unwrap()
                .push(Reactor::current().unwrap().stats().turns);
        });
    });
    reactor.iterate(Duration::ZERO);
    assert_eq!(turns.lock().unwrap().len(), 1);
    reactor.iterate(Duration::ZERO);
    let turns = turns.lock().unwrap();
    assert_eq!(turns.len(), 2);
    assert_eq!(turns[1], turns[0] + 1);
}

/// A reactor blocked in the poller with nothing scheduled wakes for another thread's stop.
/// Twisted: test_internet.CallFromThreadStopsAndWakeUpTests.testWakeUp
#[test]
fn handle_stop_wakes_a_blocked_reactor() {
    support::bounded(LIMIT, || {
        let reactor = Reactor::new().unwrap();
        let (tx, rx) = mpsc::channel();
        let h = reactor.handle();
        // Tell the stopper once the loop runs; after that it has nothing to do but block.
        let t = tx.clone();
        reactor.call_soon(move || t.send(()).unwrap());
        let stopper = std::thread::spawn(move || {
            rx.recv_timeout(LIMIT).unwrap();
            h.stop();
        });
        let before = reactor.stats().turns;
        reactor.run().unwrap();
        stopper.join().unwrap();
        assert!(
            reactor.stats().turns - before < 100,
            "spun instead of blocking"
        );
    });
}

/// A call from a thread wakes a reactor blocked in `iterate` with a long timeout.
#[test]
fn call_from_thread_wakes_a_blocked_iterate() {
    let reactor = Reactor::new().unwrap();
    let ran = Arc::new(AtomicBool::new(false));
    let (h, r) = (reactor.handle(), ran.clone());
    let start = Instant::now();
    let thread =
        std::thread::spawn(move || h.call_from_thread(move || r.store(true, Ordering::SeqCst)));
    while !ran.load(Ordering::SeqCst) && start.elapsed() < LIMIT {
        reactor.iterate(Duration::from_secs(30));
    }
    thread.join().unwrap();
    assert!(ran.load(Ordering::SeqCst));
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "not woken: {:?}",
        start.elapsed()
    );
}

/// Twisted: test_threads.ThreadsTests (blockingCallFromThread) test_blockingCallFromThread
#[test]
fn blocking_call_returns_the_value() {
    let reactor = Reactor::new().unwrap();
    let got = run_with_thread(&reactor, |h| {
        h.blocking_call(|| {
            let on = Reactor::current().is_some();
            Ok::<_, Failure>(if on { 42 } else { 0 })
        })
    });
    assert_eq!(got.unwrap(), 42);
}

/// Twisted: test_threads test_asyncBlockingCallFromThread
#[test]
fn blocking_call_waits_for_a_deferred_fired_later() {
    let reactor = Reactor::new().unwrap();
    let got = run_with_thread(&reactor, |h| {
        let start = Instant::now();
        let v = h.blocking_call(|| {
            let r = Reactor::current().unwrap();
            defer_later(&r, Duration::from_millis(20), || Ok::<_, Failure>("later"))
        });
        (v, start.elapsed())
    });
    assert_eq!(got.0.unwrap(), "later");
    assert!(got.1 >= Duration::from_millis(20));
}

/// Twisted: test_threads test_errorBlockingCallFromThread
#[test]
fn blocking_call_failure() {
    let reactor = Reactor::new().unwrap();
    let got = run_with_thread(&reactor, |h| {
        h.blocking_call(|| Err::<u8, _>(Failure::msg("blocking-boom")))
    });
    assert_eq!(got.unwrap_err().to_string(), "blocking-boom");
}

/// Twisted: test_threads test_asyncErrorBlockingCallFromThread
#[test]
fn blocking_call_async_failure() {
    let reactor = Reactor::new().unwrap();
    let got = run_with_thread(&reactor, |h| {
        h.blocking_call(|| {
            let r = Reactor::current().unwrap();
            defer_later(&r, Duration::from_millis(5), || {
                Err::<u8, _>(Failure::msg("async-blocking-boom"))
            })
        })
    });
    assert_eq!(got.unwrap_err().to_string(), "async-blocking-boom");
}

/// A panic in the blocking call's function comes back as a failure, not a hang.
#[test]
fn blocking_call_panic_is_a_failure() {
    let reactor = Reactor::new().unwrap();
    let got = run_with_thread(&reactor, |h| {
        h.blocking_call(|| -> Result<u8, Failure> { panic!("blocking-panic") })
    });
    let f = got.unwrap_err();
    assert_eq!(
        f.downcast_ref::<Panicked>().map(|p| p.message()),
        Some("blocking-panic")
    );
}

/// On the reactor's own thread `blocking_call` refuses instead of deadlocking, also from
/// inside a callback.
#[test]
fn blocking_call_on_the_reactor_thread_is_an_error() {
    support::bounded(LIMIT, || {
        let reactor = Reactor::new().unwrap();
        let h = reactor.handle();
        let err = h.blocking_call(|| Ok::<_, Failure>(1)).unwrap_err();
        assert_eq!(
            err.downcast_ref::<ReactorError>(),
            Some(&ReactorError::OnReactorThread)
        );
        let inside = std::rc::Rc::new(std::cell::RefCell::new(None));
        let i = inside.clone();
        reactor.call_soon(move || *i.borrow_mut() = Some(h.blocking_call(|| Ok::<_, Failure>(1))));
        reactor.iterate(Duration::ZERO);
        let err = inside.borrow_mut().take().unwrap().unwrap_err();
        assert_eq!(
            err.downcast_ref::<ReactorError>(),
            Some(&ReactorError::OnReactorThread)
        );
    });
}

/// `blocking_call` on a reactor that is gone fails with `Gone`.
#[test]
fn blocking_call_on_a_dropped_reactor_is_gone() {
    let reactor = Reactor::new().unwrap();
    let h = reactor.handle();
    drop(reactor);
    let err = support::bounded(LIMIT, move || {
        h.blocking_call(|| Ok::<_, Failure>(1))
            .unwrap_err()
            .to_string()
    });
    assert_eq!(err, ReactorError::Gone.to_string());
}

/// Twisted: test_threads test_isInIOThread, test_isNotInIOThread
#[test]
fn is_reactor_thread() {
    let reactor = Reactor::new().unwrap();
    let h = reactor.handle();
    assert!(h.is_reactor_thread());
    let other = std::thread::spawn(move || h.is_reactor_thread())
        .join()
        .unwrap();
    assert!(!other);
}

/// Twisted: test_threads.DeferredResultTests.test_deferredResult
#[test]
fn defer_to_thread_value() {
    let reactor = Reactor::new().unwrap();
    let main = std::thread::current().id();
    let d = reactor.defer_to_thread(move || Ok(std::thread::current().id() != main));
    assert!(wait(&reactor, d).unwrap(), "ran on the reactor thread");
    assert_eq!(reactor.stats().pending_jobs, 0);
}

/// Twisted: test_threads.DeferredResultTests.test_deferredFailure
#[test]
fn defer_to_thread_failure() {
    let reactor = Reactor::new().unwrap();
    let d = reactor.defer_to_thread(|| Err::<u8, _>(Failure::msg("thread-boom")));
    assert_eq!(wait(&reactor, d).unwrap_err().to_string(), "thread-boom");
}

/// Twisted: test_threads.DeferredResultTests.test_deferredFailureAfterSuccess
#[test]
fn defer_to_thread_failure_after_success() {
    let reactor = Reactor::new().unwrap();
    let ok = reactor.defer_to_thread(|| Ok(1));
    assert_eq!(wait(&reactor, ok).unwrap(), 1);
    let bad = reactor.defer_to_thread(|| Err::<u8, _>(Failure::msg("second")));
    assert_eq!(wait(&reactor, bad).unwrap_err().to_string(), "second");
}

/// A panic in the job becomes a failure, and the pool keeps working.
#[test]
fn defer_to_thread_panic_is_a_failure() {
    let reactor = Reactor::new().unwrap();
    let d = reactor.defer_to_thread(|| -> Result<u8, Failure> { panic!("job-panic") });
    let f = wait(&reactor, d).unwrap_err();
    assert_eq!(
        f.downcast_ref::<Panicked>().map(|p| p.message()),
        Some("job-panic")
    );
    assert_eq!(
        wait(&reactor, reactor.defer_to_thread(|| Ok(2))).unwrap(),
        2
    );
}

/// With `max_threads: 2`, many jobs never use more than two threads.
/// Twisted: internet/test/test_threads.py test_suggestThreadPoolSize
#[test]
fn pool_never_uses_more_than_max_threads() {
    let reactor = Reactor::new().unwrap();
    reactor.configure_pool(PoolConfig {
        max_threads: 2,
        ..PoolConfig::default()
    });
    let gate = Arc::new(Gate::default());
    let running = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let ds: Vec<Deferred<usize>> = (0..20)
        .map(|i| {
            let (gate, running, most) = (gate.clone(), running.clone(), most.clone());
            reactor.defer_to_thread(move || {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                let opened = gate.wait();
                running.fetch_sub(1, Ordering::SeqCst);
                if opened {
                    Ok(i)
                } else {
                    Err(Failure::msg("gate never opened"))
                }
            })
        })
        .collect();
    let s = reactor.pool_stats();
    assert!(s.threads <= 2 && s.spawned <= 2, "{s:?}");
    assert!(s.queued >= 18, "{s:?}");
    gate.open();
    for (i, d) in ds.into_iter().enumerate() {
        assert_eq!(wait(&reactor, d).unwrap(), i);
        assert!(reactor.pool_stats().threads <= 2);
    }
    assert!(most.load(Ordering::SeqCst) <= 2);
    assert_eq!(reactor.pool_stats().spawned, 2);
}

/// A full queue fails the Deferred with `PoolFull` at once; `call_in_thread` says so too.
#[test]
fn full_pool_queue_is_pool_full() {
    let reactor = Reactor::new().unwrap();
    reactor.configure_pool(PoolConfig {
        max_threads: 1,
        max_queue: 1,
        ..PoolConfig::default()
    });
    let gate = Arc::new(Gate::default());
    let (started_tx, started_rx) = mpsc::channel();
    let g = gate.clone();
    let first = reactor.defer_to_thread(move || {
        started_tx.send(()).unwrap();
        Ok(g.wait())
    });
    // The one thread holds the first job; the queue takes exactly one more.
    started_rx.recv_timeout(LIMIT).unwrap();
    let queued = reactor.defer_to_thread(|| Ok(2));
    let mut full = reactor.defer_to_thread(|| Ok(3));
    let f = full
        .try_result()
        .expect("PoolFull is given at once")
        .unwrap_err();
    assert_eq!(
        f.downcast_ref::<ReactorError>(),
        Some(&ReactorError::PoolFull(1))
    );
    assert_eq!(
        reactor.call_in_thread(|| {}),
        Err(ReactorError::PoolFull(1))
    );
    assert_eq!(reactor.stats().pending_jobs, 2);
    gate.open();
    assert!(wait(&reactor, first).unwrap());
    assert_eq!(wait(&reactor, queued).unwrap(), 2);
    assert_eq!(reactor.stats().pending_jobs, 0);
}

/// The queue is bounded in time: once the job at its front has waited longer than
/// `max_queue_wait`, new jobs are refused with `PoolFull` (however short the queue), so
/// an admitted job is never minutes from a thread; once the queue moves, jobs are taken
/// again.
#[test]
fn pool_refuses_jobs_once_the_front_one_waited_too_long() {
    let reactor = Reactor::new().unwrap();
    reactor.configure_pool(PoolConfig {
        max_threads: 1,
        max_queue_wait: Duration::from_nanos(1),
        ..PoolConfig::default()
    });
    let gate = Arc::new(Gate::default());
    let (started_tx, started_rx) = mpsc::channel();
    let g = gate.clone();
    let first = reactor.defer_to_thread(move || {
        started_tx.send(()).unwrap();
        Ok(g.wait())
    });
    started_rx.recv_timeout(LIMIT).unwrap();
    // An empty queue admits; behind a job that has waited (more than 1 ns), no more.
    let queued = reactor.defer_to_thread(|| Ok(2));
    let mut late = reactor.defer_to_thread(|| Ok(3));
    let f = late.try_result().expect("refused at once").unwrap_err();
    assert_eq!(
        f.downcast_ref::<ReactorError>(),
        Some(&ReactorError::PoolFull(1))
    );
    gate.open();
    assert!(wait(&reactor, first).unwrap());
    assert_eq!(wait(&reactor, queued).unwrap(), 2);
    assert_eq!(
        wait(&reactor, reactor.defer_to_thread(|| Ok(4))).unwrap(),
        4
    );
}

/// Idle threads exit after `keep_alive`, and the pool starts new ones when work comes.
#[test]
fn idle_threads_retire_after_keep_alive() {
    let reactor = Reactor::new().unwrap();
    reactor.configure_pool(PoolConfig {
        max_threads: 4,
        keep_alive: Duration::from_millis(30),
        ..PoolConfig::default()
    });
    assert_eq!(
        wait(&reactor, reactor.defer_to_thread(|| Ok(1))).unwrap(),
        1
    );
    assert_eq!(reactor.pool_stats().spawned, 1);
    let deadline = Instant::now() + LIMIT;
    while reactor.pool_stats().threads > 0 && Instant::now() < deadline {
        reactor.iterate(Duration::from_millis(10));
    }
    let s = reactor.pool_stats();
    assert_eq!(
        (s.threads, s.idle),
        (0, 0),
        "idle thread did not retire: {s:?}"
    );
    assert_eq!(
        wait(&reactor, reactor.defer_to_thread(|| Ok(2))).unwrap(),
        2
    );
    assert_eq!(reactor.pool_stats().spawned, 2);
}

/// Cancelling gives `Cancelled` at once; a job not yet started never runs, and a running
/// one's late result is dropped.
#[test]
fn cancel_defer_to_thread() {
    let reactor = Reactor::new().unwrap();
    reactor.configure_pool(PoolConfig {
        max_threads: 1,
        ..PoolConfig::default()
    });
    let gate = Arc::new(Gate::default());
    let (started_tx, started_rx) = mpsc::channel();
    let g = gate.clone();
    let mut running = reactor.defer_to_thread(move || {
        started_tx.send(()).unwrap();
        Ok(g.wait())
    });
    started_rx.recv_timeout(LIMIT).unwrap();
    let never_ran = Arc::new(AtomicBool::new(true));
    let n = never_ran.clone();
    let mut queued = reactor.defer_to_thread(move || {
        n.store(false, Ordering::SeqCst);
        Ok(())
    });
    running.cancel();
    queued.cancel();
    assert!(running.try_result().unwrap().unwrap_err().is::<Cancelled>());
    assert!(queued.try_result().unwrap().unwrap_err().is::<Cancelled>());
    assert_eq!(reactor.stats().pending_jobs, 0);
    gate.open();
    // The single thread is FIFO: once a later job is back, the cancelled one had its turn.
    assert_eq!(
        wait(&reactor, reactor.defer_to_thread(|| Ok(9))).unwrap(),
        9
    );
    assert!(never_ran.load(Ordering::SeqCst), "a cancelled job ran");
}

/// Twisted: test_threads test_callInThread
#[test]
fn call_in_thread_runs_on_a_worker() {
    let reactor = Reactor::new().unwrap();
    let (tx, rx) = mpsc::channel();
    reactor
        .call_in_thread(move || {
            let t = std::thread::current();
            tx.send((t.id(), t.name().map(str::to_owned))).unwrap();
        })
        .unwrap();
    let (id, name) = rx.recv_timeout(LIMIT).unwrap();
    assert_ne!(id, std::thread::current().id());
    assert!(name.unwrap().starts_with("ropewalk-worker"));
}

/// A job's result comes back through the reactor, ordered with other work; the clock is
/// the reactor's.
#[test]
fn defer_to_thread_result_fires_on_the_reactor_thread() {
    let reactor = Reactor::new().unwrap();
    let main = std::thread::current().id();
    let d = reactor
        .defer_to_thread(|| Ok(5))
        .add_callback(move |n| Ok((n, std::thread::current().id() == main)));
    let t0 = reactor.now();
    assert_eq!(wait(&reactor, d).unwrap(), (5, true));
    assert!(reactor.now() >= t0);
}

/// A blocking call queued to a reactor that is then dropped without running it fails with
/// `Gone` instead of blocking its thread forever (whichever of the two comes first).
#[test]
fn blocking_call_queued_then_reactor_dropped_is_gone() {
    for _ in 0..20 {
        let (ready_tx, ready_rx) = mpsc::channel();
        let (handle_tx, handle_rx) = mpsc::channel();
        // The reactor lives on its own thread, which drops it without ever running it.
        let owner = std::thread::spawn(move || {
            let reactor = Reactor::new().unwrap();
            handle_tx.send(reactor.handle()).unwrap();
            ready_rx.recv_timeout(LIMIT).unwrap();
            drop(reactor);
        });
        let h = handle_rx.recv_timeout(LIMIT).unwrap();
        let err = support::bounded(LIMIT, move || {
            ready_tx.send(()).unwrap();
            h.blocking_call(|| Ok::<_, Failure>(1))
                .unwrap_err()
                .to_string()
        });
        assert_eq!(err, ReactorError::Gone.to_string());
        owner.join().unwrap();
    }
}
