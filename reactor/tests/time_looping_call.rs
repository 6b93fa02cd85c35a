//! `LoopingCall` on a hand-driven clock (Twisted: `test/test_task.py` LoopTests,
//! ReactorLoopTests).

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use ropewalk_reactor::deferred::{Deferred, Failure, Resolver};
use ropewalk_reactor::{Clock, LoopError, LoopingCall, ManualClock};

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

/// Records the clock time of each call.
fn recorder(clock: &ManualClock) -> (LoopingCall, Rc<RefCell<Vec<Duration>>>) {
    let times = Rc::new(RefCell::new(Vec::new()));
    let (t, c) = (times.clone(), clock.clone());
    let lc = LoopingCall::new(clock, move || {
        t.borrow_mut().push(c.now());
        Ok(())
    });
    (lc, times)
}

/// Twisted: LoopTests.testBasicFunction: called at once with `now`, then every interval;
/// `stop()` fires the start Deferred and no call comes after.
#[test]
fn basic_function() {
    let clock = ManualClock::new();
    let (lc, times) = recorder(&clock);
    let mut done = lc.start(secs(0.1), true).unwrap();
    clock.pump(&[secs(0.1); 3]);
    assert_eq!(
        *times.borrow(),
        [secs(0.0), secs(0.1), secs(0.2), secs(0.3)]
    );
    lc.stop().unwrap();
    assert!(done.try_result().unwrap().is_ok());
    clock.advance(secs(1.0));
    assert_eq!(times.borrow().len(), 4);
    assert!(clock.delayed_calls().is_empty());
}

/// Twisted: LoopTests.testDelayedStart: with `now = false` the first call waits an
/// interval.
#[test]
fn delayed_start() {
    let clock = ManualClock::new();
    let (lc, times) = recorder(&clock);
    let _done = lc.start(secs(2.0), false).unwrap();
    assert!(times.borrow().is_empty());
    clock.advance(secs(2.0));
    assert_eq!(*times.borrow(), [secs(2.0)]);
}

/// Twisted: LoopTests.test_callbackTimeSkips: a call that takes longer than the interval
/// skips the missed intervals; the next call is at the next multiple of the interval.
#[test]
fn callback_time_skips() {
    let clock = ManualClock::new();
    let (lc, times) = recorder(&clock);
    let _done = lc.start(secs(1.0), true).unwrap();
    clock.pump(&[secs(1.0), secs(1.0), secs(1.0)]);
    assert_eq!(times.borrow().len(), 4);
    // The clock jumps to 6.5: one call then, and the next at 7.0.
    clock.advance(secs(3.5));
    assert_eq!(times.borrow().last(), Some(&secs(6.5)));
    assert_eq!(times.borrow().len(), 5);
    clock.advance(secs(0.5));
    assert_eq!(times.borrow().last(), Some(&secs(7.0)));
    assert_eq!(times.borrow().len(), 6);
}

/// Twisted: LoopTests.test_withCountIntervalZero and test_reactorTimeCountSkips: the
/// count is the number of intervals since the last call.
#[test]
fn with_count_reports_skipped_intervals() {
    let clock = ManualClock::new();
    let counts = Rc::new(RefCell::new(Vec::new()));
    let c = counts.clone();
    let lc = LoopingCall::with_count(&clock, move |n| {
        c.borrow_mut().push(n);
        Ok(())
    });
    let _done = lc.start(secs(1.0), true).unwrap();
    clock.advance(secs(1.0));
    clock.advance(secs(3.0));
    clock.advance(secs(1.0));
    assert_eq!(*counts.borrow(), [1, 1, 3, 1]);
}

/// Twisted: ReactorLoopTests.testFailure: a failing function stops the loop and
/// errbacks the start Deferred with its failure.
#[test]
fn failure_stops_the_loop() {
    let clock = ManualClock::new();
    let calls = Rc::new(Cell::new(0));
    let c = calls.clone();
    let lc = LoopingCall::new(&clock, move || {
        c.set(c.get() + 1);
        if c.get() == 3 {
            Err(Failure::msg("third time fails"))
        } else {
            Ok(())
        }
    });
    let mut done = lc.start(secs(1.0), true).unwrap();
    clock.pump(&[secs(1.0); 5]);
    assert_eq!(calls.get(), 3);
    assert!(!lc.is_running());
    assert_eq!(
        done.try_result().unwrap().unwrap_err().to_string(),
        "third time fails"
    );
}

/// Twisted: none (panics are ropewalk's exceptions): a panicking function is a failure.
#[test]
fn panic_stops_the_loop_with_a_failure() {
    let clock = ManualClock::new();
    let lc = LoopingCall::new(&clock, || -> Result<(), Failure> {
        panic!("loop body panicked")
    });
    let mut done = lc.start(secs(1.0), true).unwrap();
    let f = done.try_result().unwrap().unwrap_err();
    assert!(f.is_panic());
    assert!(!lc.is_running());
}

/// Twisted: ReactorLoopTests.testWaitDeferred: a function returning a Deferred delays
/// the next call until it fires.
#[test]
fn returned_deferred_delays_the_next_call() {
    let clock = ManualClock::new();
    let pending: Rc<RefCell<Option<Resolver<()>>>> = Rc::default();
    let calls = Rc::new(Cell::new(0));
    let (p, c) = (pending.clone(), calls.clone());
    let lc = LoopingCall::new(&clock, move || {
        c.set(c.get() + 1);
        let (d, r) = Deferred::<()>::pending();
        *p.borrow_mut() = Some(r);
        d
    });
    let _done = lc.start(secs(1.0), true).unwrap();
    clock.pump(&[secs(1.0); 5]);
    assert_eq!(calls.get(), 1, "waits for the first call's Deferred");
    pending.borrow_mut().take().unwrap().callback(()).unwrap();
    clock.advance(secs(1.0));
    assert_eq!(calls.get(), 2);
}

/// Twisted: ReactorLoopTests.testFailurePropagation: a returned Deferred that fails
/// errbacks the start Deferred.
#[test]
fn failed_deferred_propagates() {
    let clock = ManualClock::new();
    let lc = LoopingCall::new(&clock, || {
        Deferred::<()>::fail(Failure::msg("async failure"))
    });
    let mut done = lc.start(secs(1.0), true).unwrap();
    assert_eq!(
        done.try_result().unwrap().unwrap_err().to_string(),
        "async failure"
    );
}

/// Twisted: LoopTests.test_stopAtOnceLater (adapted): stopping while the function's
/// Deferred is pending fires the start Deferred when that one fires.
#[test]
fn stop_while_a_call_is_pending() {
    let clock = ManualClock::new();
    let pending: Rc<RefCell<Option<Resolver<()>>>> = Rc::default();
    let p = pending.clone();
    let lc = LoopingCall::new(&clock, move || {
        let (d, r) = Deferred::<()>::pending();
        *p.borrow_mut() = Some(r);
        d
    });
    let mut done = lc.start(secs(1.0), true).unwrap();
    lc.stop().unwrap();
    assert!(done.try_result().is_none());
    pending.borrow_mut().take().unwrap().callback(()).unwrap();
    assert!(done.try_result().unwrap().is_ok());
    assert!(clock.delayed_calls().is_empty());
}

/// Twisted: LoopTests.testBadDelay (adapted: a negative interval cannot be written) and
/// the AssertionError on a second start / stop when stopped.
#[test]
fn start_twice_and_stop_twice_are_errors() {
    let clock = ManualClock::new();
    let (lc, _) = recorder(&clock);
    let _done = lc.start(secs(1.0), false).unwrap();
    assert_eq!(
        lc.start(secs(1.0), false).unwrap_err(),
        LoopError::AlreadyRunning
    );
    lc.stop().unwrap();
    assert_eq!(lc.stop().unwrap_err(), LoopError::NotRunning);
    assert_eq!(lc.reset().unwrap_err(), LoopError::NotRunning);
}

/// Twisted: LoopTests.test_reset: `reset` restarts the interval from now.
#[test]
fn reset_restarts_the_interval() {
    let clock = ManualClock::new();
    let (lc, times) = recorder(&clock);
    let _done = lc.start(secs(2.0), false).unwrap();
    clock.advance(secs(1.0));
    lc.reset().unwrap();
    clock.advance(secs(1.0));
    assert!(times.borrow().is_empty());
    clock.advance(secs(1.0));
    assert_eq!(*times.borrow(), [secs(3.0)]);
}

/// Twisted: LoopTests.test_intervalZero (adapted): a zero interval calls once per pass.
#[test]
fn zero_interval_runs_each_pass() {
    let clock = ManualClock::new();
    let calls = Rc::new(Cell::new(0));
    let c = calls.clone();
    let lc_slot: Rc<RefCell<Option<LoopingCall>>> = Rc::default();
    let slot = lc_slot.clone();
    let lc = LoopingCall::new(&clock, move || {
        c.set(c.get() + 1);
        if c.get() == 5 {
            slot.borrow().as_ref().unwrap().stop().unwrap();
        }
        Ok(())
    });
    *lc_slot.borrow_mut() = Some(lc.clone());
    let mut done = lc.start(Duration::ZERO, true).unwrap();
    // Zero-delay calls made while advancing run in the same advance (a ManualClock).
    clock.advance(Duration::ZERO);
    assert_eq!(calls.get(), 5);
    assert!(done.try_result().unwrap().is_ok());
    lc_slot.borrow_mut().take();
}

/// Twisted: none: the loop also runs on the real reactor.
#[test]
fn runs_on_the_reactor() {
    let reactor = ropewalk_reactor::Reactor::new().unwrap();
    let calls = Rc::new(Cell::new(0));
    let c = calls.clone();
    let lc_slot: Rc<RefCell<Option<LoopingCall>>> = Rc::default();
    let slot = lc_slot.clone();
    let lc = LoopingCall::new(&reactor, move || {
        c.set(c.get() + 1);
        if c.get() == 3 {
            slot.borrow().as_ref().unwrap().stop().unwrap();
        }
        Ok(())
    });
    *lc_slot.borrow_mut() = Some(lc.clone());
    let done = lc.start(Duration::from_millis(2), true).unwrap();
    done.add_timeout(Duration::from_secs(10), &reactor)
        .wait()
        .unwrap();
    assert_eq!(calls.get(), 3);
    lc_slot.borrow_mut().take();
}
