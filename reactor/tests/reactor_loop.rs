//! The loop itself: run/stop, `call_soon`, the per-turn budget, panics, `stats`,
//! `iterate`, `Reactor::current`.

mod support;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use ropewalk_reactor::deferred::Deferred;
use ropewalk_reactor::{Reactor, ReactorError};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Queues a `call_soon` that stops `reactor` (the run's exit).
fn stop_soon(reactor: &Reactor) {
    let r = reactor.clone();
    reactor.call_soon(move || r.stop().unwrap());
}

/// Runs `reactor` with a safety stop, so that a missing stop fails instead of hanging.
fn run_bounded(reactor: &Reactor) {
    let r = reactor.clone();
    let safety = reactor.call_later(Duration::from_secs(10), move || {
        let _ = r.stop();
    });
    reactor.run().unwrap();
    assert!(safety.active(), "the reactor ran until the safety stop");
    safety.cancel().unwrap();
}

/// Twisted: internet/test/test_core.py test_stopWhenNotStarted
#[test]
fn stop_when_not_running_is_not_running() {
    let reactor = Reactor::new().unwrap();
    assert!(!reactor.is_running());
    assert_eq!(reactor.stop(), Err(ReactorError::NotRunning));
}

/// Twisted: internet/test/test_core.py test_stopWhenAlreadyStopped
#[test]
fn stop_after_run_returned_is_not_running() {
    let reactor = Reactor::new().unwrap();
    stop_soon(&reactor);
    run_bounded(&reactor);
    assert!(!reactor.is_running());
    assert_eq!(reactor.stop(), Err(ReactorError::NotRunning));
}

/// `run` runs until `stop`, and `is_running` says so inside.
/// Twisted: internet/test/test_core.py test_isRunning
#[test]
fn run_until_stop() {
    let reactor = Reactor::new().unwrap();
    let seen = Rc::new(Cell::new(false));
    let (r, s) = (reactor.clone(), seen.clone());
    reactor.call_later(ms(5), move || {
        s.set(r.is_running());
        r.stop().unwrap();
    });
    run_bounded(&reactor);
    assert!(seen.get());
    assert!(!reactor.is_running());
}

/// Unlike Twisted's (`ReactorNotRestartable`, test_runAfterStop), a reactor runs again
/// after `run` returned, with its timers and callbacks intact.
#[test]
fn run_again_after_return() {
    let reactor = Reactor::new().unwrap();
    let count = Rc::new(Cell::new(0));
    for _ in 0..3 {
        let (r, c) = (reactor.clone(), count.clone());
        reactor.call_later(ms(1), move || {
            c.set(c.get() + 1);
            r.stop().unwrap();
        });
        run_bounded(&reactor);
    }
    assert_eq!(count.get(), 3);
    // A stop requested in the last turn of a run does not leak into the next run.
    let (r, c) = (reactor.clone(), count.clone());
    reactor.call_later(ms(5), move || {
        c.set(c.get() + 10);
        r.stop().unwrap();
    });
    run_bounded(&reactor);
    assert_eq!(count.get(), 13);
}

/// Twisted: internet/test/test_core.py test_multipleRun
#[test]
fn run_while_running_is_already_running() {
    let reactor = Reactor::new().unwrap();
    let inner: Rc<RefCell<Option<Result<(), ReactorError>>>> = Rc::default();
    let (r, i) = (reactor.clone(), inner.clone());
    reactor.call_soon(move || {
        *i.borrow_mut() = Some(r.run());
        r.stop().unwrap();
    });
    run_bounded(&reactor);
    assert_eq!(*inner.borrow(), Some(Err(ReactorError::AlreadyRunning)));
}

/// `stop` lets the current turn finish: callbacks queued with it still run.
/// Twisted: internet/test/test_core.py test_shutdownFiresTriggersAsynchronously (stop only
/// sets flags)
#[test]
fn stop_finishes_the_current_turn() {
    let reactor = Reactor::new().unwrap();
    let after = Rc::new(Cell::new(false));
    stop_soon(&reactor);
    let a = after.clone();
    reactor.call_soon(move || a.set(true));
    run_bounded(&reactor);
    assert!(after.get());
}

/// `stop` returns at once even with timers far in the future.
#[test]
fn stop_does_not_wait_for_pending_timers() {
    let reactor = Reactor::new().unwrap();
    let far = reactor.call_later(Duration::from_secs(3600), || panic!("never"));
    let start = Instant::now();
    stop_soon(&reactor);
    run_bounded(&reactor);
    assert!(start.elapsed() < Duration::from_secs(5));
    assert!(far.active());
    far.cancel().unwrap();
}

/// Callbacks run in the order they were queued.
#[test]
fn call_soon_is_fifo() {
    let reactor = Reactor::new().unwrap();
    let order: Rc<RefCell<Vec<u32>>> = Rc::default();
    for n in 0..100 {
        let o = order.clone();
        reactor.call_soon(move || o.borrow_mut().push(n));
    }
    reactor.iterate(Duration::ZERO);
    assert_eq!(*order.borrow(), (0..100).collect::<Vec<_>>());
}

/// A callback queued by a callback runs on a later turn, so a callback that re-queues
/// itself cannot starve the loop.
#[test]
fn call_soon_queued_by_call_soon_runs_on_a_later_turn() {
    let reactor = Reactor::new().unwrap();
    let log: Rc<RefCell<Vec<(&str, u64)>>> = Rc::default();
    let (r, l) = (reactor.clone(), log.clone());
    reactor.call_soon(move || {
        l.borrow_mut().push(("outer", r.stats().turns));
        let (r2, l2) = (r.clone(), l.clone());
        r.call_soon(move || l2.borrow_mut().push(("inner", r2.stats().turns)));
    });
    let (r, l) = (reactor.clone(), log.clone());
    reactor.call_soon(move || l.borrow_mut().push(("second", r.stats().turns)));
    reactor.iterate(Duration::ZERO);
    let turn = log.borrow()[0].1;
    assert_eq!(*log.borrow(), [("outer", turn), ("second", turn)]);
    assert_eq!(reactor.stats().queued_callbacks, 1);
    reactor.iterate(Duration::ZERO);
    assert_eq!(log.borrow()[2], ("inner", turn + 1));
}

/// At most 1,024 callbacks run per turn; the rest wait, in order, for the next turns.
#[test]
fn call_soon_runs_at_most_1024_per_turn() {
    let reactor = Reactor::new().unwrap();
    let order: Rc<RefCell<Vec<u32>>> = Rc::default();
    for n in 0..5000 {
        let o = order.clone();
        reactor.call_soon(move || o.borrow_mut().push(n));
    }
    assert_eq!(reactor.stats().queued_callbacks, 5000);
    reactor.iterate(Duration::ZERO);
    let first = order.borrow().len();
    assert!(first > 0, "nothing ran");
    assert!(first <= 1024, "{first} callbacks ran in one turn");
    assert_eq!(reactor.stats().queued_callbacks, 5000 - first);
    let mut turns = 1;
    while order.borrow().len() < 5000 && turns < 100 {
        let before = order.borrow().len();
        reactor.iterate(Duration::ZERO);
        assert!(order.borrow().len() - before <= 1024);
        turns += 1;
    }
    assert_eq!(*order.borrow(), (0..5000).collect::<Vec<_>>());
    assert!(turns >= 5, "5000 callbacks in {turns} turns");
}

/// A timer due while a flood of callbacks waits still runs on the next turn.
#[test]
fn callback_flood_does_not_starve_timers() {
    let reactor = Reactor::new().unwrap();
    let done = Rc::new(Cell::new(0u32));
    for _ in 0..10_000 {
        let d = done.clone();
        reactor.call_soon(move || d.set(d.get() + 1));
    }
    let timer_ran_after = Rc::new(Cell::new(None));
    let (d, t) = (done.clone(), timer_ran_after.clone());
    reactor.call_later(Duration::ZERO, move || t.set(Some(d.get())));
    reactor.iterate(Duration::ZERO);
    reactor.iterate(Duration::ZERO);
    let ran_after = timer_ran_after.get().expect("timer starved by callbacks");
    assert!(ran_after < 10_000);
}

/// A panicking callback is logged and the loop goes on, with the next callbacks of the
/// same turn.
#[test]
fn panic_in_call_soon_is_logged_and_the_loop_goes_on() {
    support::capture_logs();
    let reactor = Reactor::new().unwrap();
    let after = Rc::new(Cell::new(false));
    reactor.call_soon(|| panic!("call-soon-panic-c41e"));
    let a = after.clone();
    reactor.call_soon(move || a.set(true));
    stop_soon(&reactor);
    run_bounded(&reactor);
    assert!(after.get());
    let records = support::logged("call-soon-panic-c41e");
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0].0, log::Level::Error);
}

/// `stats` counts timers, callbacks, tasks, jobs and turns.
#[test]
fn stats_counters() {
    let reactor = Reactor::new().unwrap();
    let s = reactor.stats();
    assert_eq!(
        (
            s.pending_timers,
            s.queued_callbacks,
            s.live_tasks,
            s.pending_jobs,
            s.turns
        ),
        (0, 0, 0, 0, 0)
    );
    let t1 = reactor.call_later(Duration::from_secs(60), || {});
    let _t2 = reactor.call_later(Duration::from_secs(60), || {});
    reactor.call_soon(|| {});
    let (pending, resolver) = Deferred::<()>::pending();
    let task = reactor.spawn(pending);
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let job = reactor.defer_to_thread(move || {
        rx.recv_timeout(Duration::from_secs(10)).ok();
        Ok(())
    });
    let s = reactor.stats();
    assert_eq!(s.pending_timers, 2);
    assert_eq!(s.queued_callbacks, 1);
    assert_eq!(s.live_tasks, 1);
    assert_eq!(s.pending_jobs, 1);
    t1.cancel().unwrap();
    reactor.iterate(Duration::ZERO);
    let s = reactor.stats();
    assert_eq!((s.pending_timers, s.queued_callbacks, s.turns), (1, 0, 1));
    resolver.callback(()).unwrap();
    tx.send(()).unwrap();
    let r = reactor.clone();
    let all = task
        .add_callback(move |()| job)
        .add_timeout(Duration::from_secs(10), &r);
    all.wait().unwrap();
    let s = reactor.stats();
    assert_eq!((s.live_tasks, s.pending_jobs), (0, 0));
    assert!(s.turns >= 2);
}

/// With nothing to do, `iterate(timeout)` returns after about `timeout`.
/// Twisted: internet/test/test_core.py test_iterate
#[test]
fn iterate_with_nothing_to_do_waits_about_the_timeout() {
    let reactor = Reactor::new().unwrap();
    let start = Instant::now();
    reactor.iterate(ms(50));
    let took = start.elapsed();
    assert!(took >= ms(25), "returned after only {took:?}");
    assert!(took < Duration::from_secs(5), "took {took:?}");
    // With work ready, it does not wait at all.
    reactor.call_soon(|| {});
    let start = Instant::now();
    reactor.iterate(Duration::from_secs(5));
    assert!(start.elapsed() < Duration::from_secs(2));
    assert_eq!(reactor.stats().turns, 2);
}

/// `iterate` called from inside a turn is ignored (no re-entry).
#[test]
fn iterate_inside_a_turn_is_ignored() {
    let reactor = Reactor::new().unwrap();
    let turns_inside = Rc::new(Cell::new((0, 0)));
    let (r, t) = (reactor.clone(), turns_inside.clone());
    reactor.call_soon(move || {
        let before = r.stats().turns;
        r.iterate(Duration::ZERO);
        t.set((before, r.stats().turns));
    });
    reactor.iterate(Duration::ZERO);
    let (before, after) = turns_inside.get();
    assert_eq!(before, after);
}

/// `Reactor::current` is this thread's most recent live reactor.
#[test]
fn current_is_this_threads_reactor() {
    support::bounded(Duration::from_secs(10), || {
        assert!(Reactor::current().is_none(), "a fresh thread has none");
        let a = Reactor::new().unwrap();
        assert!(Reactor::current().unwrap().ptr_eq(&a));
        let b = Reactor::new().unwrap();
        assert!(Reactor::current().unwrap().ptr_eq(&b));
        assert!(!a.ptr_eq(&b));
        drop(b);
        // Which reactor (if any) is current once the newest is dropped while an older one
        // lives is left open here (today: none, and `a` loses its `wait()` driver too).
        drop(a);
        assert!(Reactor::current().is_none(), "every reactor is gone");
        // Another thread never sees this thread's reactor.
        let c = Reactor::new().unwrap();
        let other = std::thread::spawn(|| Reactor::current().is_none())
            .join()
            .unwrap();
        assert!(other);
        let seen = Rc::new(Cell::new(false));
        let (s, c2) = (seen.clone(), c.clone());
        c.call_soon(move || s.set(Reactor::current().unwrap().ptr_eq(&c2)));
        c.iterate(Duration::ZERO);
        assert!(seen.get());
    });
}

/// Twisted: none (ropewalk-specific): dropping the newest reactor on a thread makes the
/// one made before it current again, and `wait()` drives that one.
#[test]
fn dropping_the_newest_reactor_restores_the_previous_one() {
    let a = Reactor::new().unwrap();
    let b = Reactor::new().unwrap();
    assert!(Reactor::current().unwrap().ptr_eq(&b));
    drop(b);
    assert!(Reactor::current().unwrap().ptr_eq(&a));
    let d = a.sleep(Duration::from_millis(1));
    assert!(d.wait().is_ok());
}

/// Twisted: ReactorCoreTestsBuilder.test_multipleRun (variant): `run()` from inside a turn
/// driven by `iterate()` is refused rather than nesting a loop.
#[test]
fn run_inside_iterate_is_already_running() {
    let reactor = Reactor::new().unwrap();
    let got = Rc::new(RefCell::new(None));
    let (r, g) = (reactor.clone(), got.clone());
    reactor.call_soon(move || *g.borrow_mut() = Some(r.run()));
    reactor.iterate(Duration::ZERO);
    assert_eq!(*got.borrow(), Some(Err(ReactorError::AlreadyRunning)));
}
