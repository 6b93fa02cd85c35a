//! `ManualClock`, the hand-driven clock (Twisted's `task.Clock`), `defer_later` and
//! `Deferred::add_timeout` driven by it. No real time passes in these tests.

mod support;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use ropewalk_reactor::deferred::{Cancelled, Deferred, Failure, Timeout};
use ropewalk_reactor::{defer_later, Clock, DelayedCall, ManualClock, TimerError};

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

type Log = Rc<RefCell<Vec<&'static str>>>;

fn log() -> Log {
    Rc::new(RefCell::new(Vec::new()))
}

/// Schedules a call that appends `name` to `log`.
fn push(clock: &ManualClock, log: &Log, delay: Duration, name: &'static str) -> DelayedCall {
    let log = log.clone();
    clock.call_later(delay, move || log.borrow_mut().push(name))
}

fn taken(log: &Log) -> Vec<&'static str> {
    std::mem::take(&mut *log.borrow_mut())
}

/// Twisted: test_task.ClockTests.testSeconds
#[test]
fn seconds_start_at_zero() {
    let clock = ManualClock::new();
    assert_eq!(clock.now(), Duration::ZERO);
    clock.advance(ms(1500));
    assert_eq!(clock.now(), ms(1500));
}

/// Twisted: test_task.ClockTests.testCallLater
#[test]
fn call_later_returns_a_call_at_now_plus_delay() {
    let clock = ManualClock::new();
    clock.advance(secs(1));
    let call = clock.call_later(secs(2), || {});
    assert!(call.active());
    assert_eq!(call.time(), secs(3));
}

/// Twisted: test_task.ClockTests.testAdvance
#[test]
fn advance_runs_only_what_is_due_and_never_early() {
    let clock = ManualClock::new();
    let log = log();
    let call = push(&clock, &log, secs(2), "a");
    clock.advance(secs(1));
    assert!(taken(&log).is_empty());
    clock.advance(ms(999));
    assert!(taken(&log).is_empty(), "ran before its time");
    assert!(call.active());
    clock.advance(ms(1));
    assert_eq!(taken(&log), ["a"]);
    assert!(!call.active());
    clock.advance(secs(10));
    assert!(taken(&log).is_empty(), "ran twice");
}

/// Twisted: test_task.ClockTests.test_callLaterOrdering
#[test]
fn advance_runs_due_calls_in_time_order() {
    let clock = ManualClock::new();
    let log = log();
    push(&clock, &log, secs(10), "10");
    push(&clock, &log, secs(1), "1");
    push(&clock, &log, secs(5), "5");
    push(&clock, &log, secs(3), "3");
    clock.advance(secs(20));
    assert_eq!(taken(&log), ["1", "3", "5", "10"]);
}

/// Twisted: test_task.ClockTests.test_callLaterKeepsCallsOrdered
#[test]
fn equal_times_run_fifo() {
    let clock = ManualClock::new();
    let log = log();
    let names = ["a", "b", "c", "d", "e", "f", "g", "h"];
    for name in names {
        push(&clock, &log, secs(1), name);
    }
    push(&clock, &log, Duration::ZERO, "first");
    clock.advance(secs(1));
    let mut expected = vec!["first"];
    expected.extend(names);
    assert_eq!(taken(&log), expected);
}

/// Twisted: test_task.ClockTests.testCallLaterCancelled
#[test]
fn cancel_unschedules() {
    let clock = ManualClock::new();
    let log = log();
    let call = push(&clock, &log, secs(1), "cancelled");
    push(&clock, &log, secs(1), "kept");
    call.cancel().unwrap();
    assert!(!call.active());
    clock.advance(secs(2));
    assert_eq!(taken(&log), ["kept"]);
}

/// Twisted: test_internet.DelayedTests.test_active
#[test]
fn active_until_run_or_cancelled() {
    let clock = ManualClock::new();
    let run = clock.call_later(secs(1), || {});
    let cancelled = clock.call_later(secs(1), || {});
    assert!(run.active() && cancelled.active());
    cancelled.cancel().unwrap();
    assert!(!cancelled.active());
    clock.advance(secs(1));
    assert!(!run.active());
}

/// Twisted: test_internet.TimeTests.test_cancelCancelledDelayedCall
#[test]
fn second_cancel_is_already_cancelled() {
    let clock = ManualClock::new();
    let call = clock.call_later(secs(1), || {});
    call.cancel().unwrap();
    assert_eq!(call.cancel(), Err(TimerError::AlreadyCancelled));
    assert_eq!(call.reset(secs(1)), Err(TimerError::AlreadyCancelled));
    assert_eq!(call.delay(secs(1)), Err(TimerError::AlreadyCancelled));
}

/// Twisted: test_internet.TimeTests.test_cancelCalledDelayedCallAsynchronous
#[test]
fn cancel_after_run_is_already_called() {
    let clock = ManualClock::new();
    let call = clock.call_later(secs(1), || {});
    clock.advance(secs(1));
    assert_eq!(call.cancel(), Err(TimerError::AlreadyCalled));
    assert_eq!(call.reset(secs(1)), Err(TimerError::AlreadyCalled));
    assert_eq!(call.delay(secs(1)), Err(TimerError::AlreadyCalled));
    // The failed reset did not schedule it again.
    assert!(clock.delayed_calls().is_empty());
}

/// Twisted: test_task.ClockTests.testAdvanceCancel,
/// test_internet.TimeTests.test_cancelCalledDelayedCallSynchronous
#[test]
fn cancel_from_inside_the_call_is_already_called() {
    let clock = ManualClock::new();
    let me: Rc<RefCell<Option<DelayedCall>>> = Rc::new(RefCell::new(None));
    let seen: Rc<RefCell<Vec<Result<(), TimerError>>>> = Rc::default();
    let (m, s) = (me.clone(), seen.clone());
    let call = clock.call_later(secs(1), move || {
        let call = m.borrow().clone().unwrap();
        assert!(!call.active(), "called is set before the function runs");
        s.borrow_mut().push(call.cancel());
        s.borrow_mut().push(call.reset(secs(1)));
        s.borrow_mut().push(call.delay(secs(1)));
    });
    *me.borrow_mut() = Some(call);
    clock.advance(secs(1));
    assert_eq!(
        *seen.borrow(),
        vec![Err(TimerError::AlreadyCalled); 3],
        "cancel/reset/delay from inside the call"
    );
    assert!(clock.delayed_calls().is_empty());
}

/// Twisted: test_task.ClockTests.testCallLaterResetSooner
#[test]
fn reset_sooner() {
    let clock = ManualClock::new();
    let log = log();
    let call = push(&clock, &log, secs(5), "reset");
    push(&clock, &log, secs(3), "other");
    call.reset(secs(2)).unwrap();
    assert_eq!(call.time(), secs(2));
    clock.advance(secs(2));
    assert_eq!(taken(&log), ["reset"]);
    clock.advance(secs(10));
    assert_eq!(taken(&log), ["other"], "the reset call ran only once");
}

/// Twisted: test_task.ClockTests.testCallLaterResetLater
#[test]
fn reset_later_is_from_now() {
    let clock = ManualClock::new();
    let log = log();
    let call = push(&clock, &log, secs(2), "reset");
    clock.advance(secs(1));
    call.reset(secs(3)).unwrap();
    assert_eq!(
        call.time(),
        secs(4),
        "reset is relative to now, not the old time"
    );
    clock.advance(secs(2));
    assert!(taken(&log).is_empty());
    clock.advance(secs(1));
    assert_eq!(taken(&log), ["reset"]);
}

/// Twisted: test_task.ClockTests.testCallLaterDelayed
#[test]
fn delay_pushes_later_from_the_scheduled_time() {
    let clock = ManualClock::new();
    let log = log();
    let call = push(&clock, &log, secs(1), "delayed");
    call.delay(secs(1)).unwrap();
    assert_eq!(call.time(), secs(2));
    clock.advance(secs(1));
    call.delay(secs(1)).unwrap();
    assert_eq!(call.time(), secs(3), "delay adds to the scheduled time");
    clock.advance(ms(1999));
    assert!(taken(&log).is_empty());
    clock.advance(ms(1));
    assert_eq!(taken(&log), ["delayed"]);
}

/// Twisted: test_task.ClockTests.test_callLaterResetKeepsCallsOrdered
#[test]
fn reset_keeps_calls_ordered() {
    let clock = ManualClock::new();
    let log = log();
    let a = push(&clock, &log, secs(2), "a");
    push(&clock, &log, secs(1), "b");
    push(&clock, &log, secs(3), "c");
    a.reset(ms(500)).unwrap();
    clock.advance(secs(3));
    assert_eq!(taken(&log), ["a", "b", "c"]);
}

/// Twisted: test_task.ClockTests.test_callLaterResetInsideCallKeepsCallsOrdered
#[test]
fn reset_inside_a_call_keeps_calls_ordered() {
    let clock = ManualClock::new();
    let log = log();
    let later = push(&clock, &log, secs(5), "moved");
    push(&clock, &log, secs(3), "at-3");
    let l = log.clone();
    clock.call_later(secs(1), move || {
        l.borrow_mut().push("at-1");
        later.reset(secs(1)).unwrap(); // now at 2: before "at-3"
    });
    clock.advance(secs(1));
    assert_eq!(taken(&log), ["at-1"]);
    clock.advance(secs(1));
    assert_eq!(taken(&log), ["moved"]);
    clock.advance(secs(1));
    assert_eq!(taken(&log), ["at-3"]);
}

/// Issue #16: `a` at 1 s, `b` at 2 s, then `a` moved to 2 s: both are due at 2 s, and
/// `a` was made first, so it runs first (Twisted's `Clock` runs a, b too).
#[test]
fn reset_later_onto_an_equal_time_runs_in_creation_order() {
    let clock = ManualClock::new();
    let log = log();
    let a = push(&clock, &log, secs(1), "a");
    push(&clock, &log, secs(2), "b");
    a.reset(secs(2)).unwrap();
    clock.advance(secs(2));
    assert_eq!(taken(&log), ["a", "b"]);
}

/// Issue #16, with `delay()`.
#[test]
fn delay_onto_an_equal_time_runs_in_creation_order() {
    let clock = ManualClock::new();
    let log = log();
    let a = push(&clock, &log, secs(1), "a");
    push(&clock, &log, secs(2), "b");
    a.delay(secs(1)).unwrap();
    clock.advance(secs(1));
    assert_eq!(taken(&log), [] as [&str; 0]);
    clock.advance(secs(1));
    assert_eq!(taken(&log), ["a", "b"]);
}

/// Moved sooner onto a time where a younger call waits: still creation order. (Twisted's
/// `Clock` re-sorts its list stably, so there the moved call would keep its place
/// behind `b`; its reactor's heap keeps no order among equal times. Ropewalk keeps the
/// one rule: equal times run in the order the calls were made.)
#[test]
fn reset_sooner_onto_an_equal_time_runs_in_creation_order() {
    let clock = ManualClock::new();
    let log = log();
    let a = push(&clock, &log, secs(3), "a");
    push(&clock, &log, secs(1), "b");
    a.reset(secs(1)).unwrap();
    clock.advance(secs(1));
    assert_eq!(taken(&log), ["a", "b"]);
}

/// Several calls moved onto one time, later and sooner, in any order of moving: they run
/// in the order they were made.
#[test]
fn many_moves_onto_one_time_run_in_creation_order() {
    let clock = ManualClock::new();
    let log = log();
    let a = push(&clock, &log, secs(4), "a");
    let b = push(&clock, &log, secs(1), "b");
    let c = push(&clock, &log, secs(3), "c");
    push(&clock, &log, secs(2), "d");
    c.reset(secs(2)).unwrap();
    b.delay(secs(1)).unwrap();
    a.reset(secs(2)).unwrap();
    clock.advance(secs(2));
    assert_eq!(taken(&log), ["a", "b", "c", "d"]);
}

/// A call that an earlier call of the same `advance` pushes later does not run in that
/// pass: it runs at its new time.
#[test]
fn a_call_delayed_by_an_earlier_due_call_waits_for_its_new_time() {
    let clock = ManualClock::new();
    let log = log();
    let l = log.clone();
    let b: Rc<RefCell<Option<DelayedCall>>> = Rc::new(RefCell::new(None));
    let b2 = b.clone();
    clock.call_later(secs(1), move || {
        l.borrow_mut().push("a");
        b2.borrow().as_ref().unwrap().delay(secs(5)).unwrap();
    });
    *b.borrow_mut() = Some(push(&clock, &log, secs(1), "b"));
    clock.advance(secs(1));
    assert_eq!(taken(&log), ["a"]);
    assert!(b.borrow().as_ref().unwrap().active());
    clock.advance(secs(4));
    assert_eq!(taken(&log), [] as [&str; 0]);
    clock.advance(secs(1));
    assert_eq!(taken(&log), ["b"]);
}

/// Twisted: test_task.ClockTests.test_getDelayedCalls, test_getDelayedCallsEmpty
#[test]
fn delayed_calls_lists_pending_calls_only() {
    let clock = ManualClock::new();
    assert!(clock.delayed_calls().is_empty());
    let a = clock.call_later(secs(1), || {});
    let b = clock.call_later(secs(2), || {});
    let c = clock.call_later(secs(3), || {});
    let mut times: Vec<_> = clock.delayed_calls().iter().map(|c| c.time()).collect();
    times.sort();
    assert_eq!(times, [secs(1), secs(2), secs(3)]);
    b.cancel().unwrap();
    clock.advance(secs(1));
    let pending = clock.delayed_calls();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].time(), c.time());
    assert!(!a.active());
    // A call from the listing is the same call: cancelling it unschedules `c`.
    pending[0].cancel().unwrap();
    assert!(!c.active());
    assert_eq!(c.cancel(), Err(TimerError::AlreadyCancelled));
    assert!(clock.delayed_calls().is_empty());
}

/// A zero-delay call made inside a call that `advance` runs, runs in the same `advance`
/// (Twisted's `Clock` quirk; the real reactor waits for its next turn). It runs after
/// every call already due.
#[test]
fn zero_delay_call_made_inside_advance_runs_in_the_same_advance() {
    let clock = ManualClock::new();
    let log = log();
    let (c, l) = (clock.clone(), log.clone());
    clock.call_later(secs(1), move || {
        l.borrow_mut().push("outer");
        let l2 = l.clone();
        let c2 = c.clone();
        c.call_later(Duration::ZERO, move || {
            l2.borrow_mut().push("inner");
            let l3 = l2.clone();
            c2.call_later(Duration::ZERO, move || l3.borrow_mut().push("inner-inner"));
        });
    });
    push(&clock, &log, secs(2), "due-too");
    push(&clock, &log, secs(3), "not-due");
    clock.advance(secs(2));
    assert_eq!(taken(&log), ["outer", "due-too", "inner", "inner-inner"]);
    assert_eq!(clock.delayed_calls().len(), 1);
}

/// A call made inside `advance` with a delay that lands past the new time does not run.
#[test]
fn call_made_inside_advance_for_later_waits() {
    let clock = ManualClock::new();
    let log = log();
    let (c, l) = (clock.clone(), log.clone());
    clock.call_later(secs(1), move || {
        let l = l.clone();
        c.call_later(secs(1), move || l.borrow_mut().push("later"));
    });
    clock.advance(secs(1));
    assert!(taken(&log).is_empty());
    clock.advance(secs(1));
    assert_eq!(taken(&log), ["later"]);
}

#[test]
fn pump_advances_step_by_step() {
    let clock = ManualClock::new();
    let seen: Rc<RefCell<Vec<Duration>>> = Rc::default();
    for n in [1, 2, 3] {
        let (c, s) = (clock.clone(), seen.clone());
        clock.call_later(secs(n), move || s.borrow_mut().push(c.now()));
    }
    clock.pump(&[secs(1), secs(1), secs(1)]);
    assert_eq!(
        *seen.borrow(),
        [secs(1), secs(2), secs(3)],
        "each ran at its own step"
    );
    assert_eq!(clock.now(), secs(3));
}

/// A call that panics is logged ("while handling timed call" in Twisted) and the calls
/// after it still run.
#[test]
fn panicking_call_is_logged_and_later_calls_still_run() {
    support::capture_logs();
    let clock = ManualClock::new();
    let log = log();
    push(&clock, &log, secs(1), "before");
    let call = clock.call_later(secs(1), || panic!("manual-clock-panic-7f3a"));
    push(&clock, &log, secs(1), "after");
    push(&clock, &log, secs(2), "later");
    clock.advance(secs(2));
    assert_eq!(taken(&log), ["before", "after", "later"]);
    assert_eq!(call.cancel(), Err(TimerError::AlreadyCalled));
    let records = support::logged("manual-clock-panic-7f3a");
    assert_eq!(records.len(), 1, "logged once: {records:?}");
    assert_eq!(records[0].0, log::Level::Error);
}

/// A call whose clock is gone never runs: it is no longer active, and counts as cancelled.
#[test]
fn calls_of_a_dropped_clock_are_inactive() {
    let clock = ManualClock::new();
    let call = clock.call_later(secs(1), || {});
    drop(clock);
    assert!(!call.active());
    assert_eq!(call.cancel(), Err(TimerError::AlreadyCancelled));
}

/// A `ManualClock` works through `&dyn Clock`.
/// Twisted: test_task.ClockTests.test_providesIReactorTime
#[test]
fn usable_as_dyn_clock() {
    let clock = ManualClock::new();
    let fired = Rc::new(Cell::new(false));
    let dyn_clock: &dyn Clock = &clock;
    let f = fired.clone();
    dyn_clock.call_later_boxed(secs(1), Box::new(move || f.set(true)));
    assert_eq!(dyn_clock.now(), Duration::ZERO);
    clock.advance(secs(1));
    assert!(fired.get());
}

// ---- defer_later ----

/// Twisted: test_task.DeferLaterTests.test_callback
#[test]
fn defer_later_fires_with_the_result_at_the_time() {
    let clock = ManualClock::new();
    let mut d = defer_later(&clock, secs(3), || Ok::<_, Failure>("result"));
    clock.advance(ms(2999));
    assert!(d.try_result().is_none(), "fired early");
    clock.advance(ms(1));
    assert_eq!(d.try_result().unwrap().unwrap(), "result");
}

/// Twisted: test_task.DeferLaterTests.test_noCallback
#[test]
fn defer_later_with_unit() {
    let clock = ManualClock::new();
    let mut d: Deferred<()> = defer_later(&clock, secs(1), || Ok(()));
    clock.advance(secs(1));
    assert!(d.try_result().unwrap().is_ok());
}

/// Twisted: test_task.DeferLaterTests.test_errback
#[test]
fn defer_later_failure_goes_to_the_errback() {
    let clock = ManualClock::new();
    let mut d = defer_later(&clock, secs(1), || {
        Err::<u32, _>(Failure::msg("defer-later-boom"))
    });
    clock.advance(secs(1));
    let f = d.try_result().unwrap().unwrap_err();
    assert_eq!(f.to_string(), "defer-later-boom");
}

/// Twisted: test_task.DeferLaterTests.test_cancel
#[test]
fn defer_later_cancel_cancels_the_call() {
    let clock = ManualClock::new();
    let ran = Rc::new(Cell::new(false));
    let r = ran.clone();
    let mut d = defer_later(&clock, secs(1), move || {
        r.set(true);
        Ok(1)
    });
    assert_eq!(clock.delayed_calls().len(), 1);
    d.cancel();
    assert!(
        clock.delayed_calls().is_empty(),
        "the delayed call was not cancelled"
    );
    assert!(d.try_result().unwrap().unwrap_err().is::<Cancelled>());
    clock.advance(secs(5));
    assert!(!ran.get());
}

/// A Deferred that returns a Deferred from `defer_later`'s function is waited on.
#[test]
fn defer_later_function_may_return_a_deferred() {
    let clock = ManualClock::new();
    let c = clock.clone();
    let mut d = defer_later(&clock, secs(1), move || {
        defer_later(&c, secs(1), || Ok::<_, Failure>(5))
    });
    clock.advance(secs(1));
    assert!(d.try_result().is_none());
    clock.advance(secs(1));
    assert_eq!(d.try_result().unwrap().unwrap(), 5);
}

// ---- Deferred::add_timeout with a ManualClock ----

/// Twisted: test_defer.DeferredAddTimeoutTests.test_timedOut
#[test]
fn add_timeout_fails_with_timeout_at_the_deadline_not_before() {
    let clock = ManualClock::new();
    let cancelled = Rc::new(Cell::new(false));
    let c = cancelled.clone();
    let (d, _r) = Deferred::<u32>::with_canceller(move || {
        c.set(true);
        None
    });
    let mut d = d.add_timeout(secs(10), &clock);
    clock.advance(ms(9999));
    assert!(d.try_result().is_none(), "timed out early");
    clock.advance(ms(1));
    let f = d.try_result().unwrap().unwrap_err();
    assert_eq!(f.downcast_ref::<Timeout>(), Some(&Timeout(secs(10))));
    assert!(cancelled.get(), "the canceller ran");
    assert!(clock.delayed_calls().is_empty());
}

/// Twisted: test_defer.DeferredAddTimeoutTests.test_successResultBeforeTimeout
#[test]
fn add_timeout_result_before_the_deadline_cancels_the_timer() {
    let clock = ManualClock::new();
    let (d, r) = Deferred::<u32>::pending();
    let mut d = d.add_timeout(secs(10), &clock);
    assert_eq!(clock.delayed_calls().len(), 1);
    clock.advance(secs(5));
    r.callback(7).unwrap();
    assert_eq!(d.try_result().unwrap().unwrap(), 7);
    assert!(clock.delayed_calls().is_empty(), "timer left behind");
    clock.advance(secs(10));
}

/// `defer_later` raced against a timeout on the same clock: whichever is due first wins.
#[test]
fn add_timeout_races_defer_later() {
    let clock = ManualClock::new();
    let mut fast =
        defer_later(&clock, secs(1), || Ok::<_, Failure>("fast")).add_timeout(secs(2), &clock);
    let mut slow =
        defer_later(&clock, secs(3), || Ok::<_, Failure>("slow")).add_timeout(secs(2), &clock);
    clock.advance(secs(2));
    assert_eq!(fast.try_result().unwrap().unwrap(), "fast");
    assert!(slow.try_result().unwrap().unwrap_err().is::<Timeout>());
    assert!(clock.delayed_calls().is_empty(), "a timer was left behind");
}

/// What a call's function holds is let go when the call is cancelled, or when its clock
/// goes away, even while handles to the call live on (Twisted's `DelayedCall.cancel`
/// drops `func`, `args` and `kw` at once).
#[test]
fn a_cancelled_call_lets_go_of_what_its_function_holds() {
    let clock = ManualClock::new();
    let held = Rc::new(());
    let h = held.clone();
    let call = clock.call_later(secs(1), move || drop(h));
    let boxed = {
        let h = held.clone();
        clock.call_later_boxed(secs(1), Box::new(move || drop(h)))
    };
    assert_eq!(Rc::strong_count(&held), 3);
    call.cancel().unwrap();
    boxed.cancel().unwrap();
    assert_eq!(Rc::strong_count(&held), 1, "handles keep nothing alive");
    let h = held.clone();
    let pending = clock.call_later(secs(1), move || drop(h));
    drop(clock);
    assert_eq!(
        Rc::strong_count(&held),
        1,
        "a dropped clock's calls let go too"
    );
    assert!(!pending.active());
}

/// Dropping a cancelled call's function may schedule another call (here a Resolver it
/// held fires its Deferred, whose callback schedules): the queue is not borrowed then.
#[test]
fn a_cancelled_functions_drop_may_schedule_a_call() {
    let clock = ManualClock::new();
    let (d, resolver) = Deferred::<()>::pending();
    let c = clock.clone();
    let later = Rc::new(RefCell::new(None));
    let l = later.clone();
    let _d = d.add_errback(move |_| {
        *l.borrow_mut() = Some(c.call_later(secs(5), || {}));
        Ok(())
    });
    let call = clock.call_later(secs(1), move || drop(resolver));
    call.cancel().unwrap();
    assert!(later.borrow().as_ref().is_some_and(DelayedCall::active));
}

/// A call pushed back keeps its place in time: when the clock passes both its old and its
/// new time in one step, the calls between run before it (Twisted's reactor moves a call
/// reset later only when its old time comes; ropewalk does the same, and this is the
/// order that must survive it).
#[test]
fn a_call_pushed_back_runs_after_the_calls_before_its_new_time() {
    let clock = ManualClock::new();
    let log = log();
    let a = push(&clock, &log, secs(1), "a");
    push(&clock, &log, secs(3), "b");
    a.reset(secs(5)).unwrap();
    assert_eq!(a.time(), secs(5));
    push(&clock, &log, secs(4), "c");
    let d = push(&clock, &log, secs(2), "d");
    d.delay(secs(4)).unwrap(); // 2 -> 6
    clock.advance(secs(10));
    assert_eq!(taken(&log), ["b", "c", "a", "d"]);
}

/// A call pushed back many times runs once, at its last time.
#[test]
fn a_call_pushed_back_again_and_again_runs_once_at_its_last_time() {
    let clock = ManualClock::new();
    let log = log();
    let call = push(&clock, &log, secs(2), "idle");
    for _ in 0..1000 {
        clock.advance(ms(1));
        call.reset(secs(2)).unwrap();
    }
    clock.advance(ms(1999));
    assert!(taken(&log).is_empty(), "not before its last time");
    assert_eq!(clock.delayed_calls().len(), 1);
    clock.advance(ms(1));
    assert_eq!(taken(&log), ["idle"]);
    clock.advance(secs(10));
    assert!(taken(&log).is_empty(), "once");
}
