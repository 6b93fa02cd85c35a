//! `add_timeout`: Twisted's `DeferredAddTimeoutTests` (test/test_defer.py), driven by a
//! hand-driven clock (Twisted's `task.Clock`) that implements our `Scheduler`.
//!
//! Not ported, one line each:
//! - `TimeoutErrorTests.test_deprecatedTimeout`: there is no deprecated `timeout()` here.
//! - `test_timedOut`'s `args == (10, 'Deferred')`: our `Timeout` carries the `Duration`
//!   (checked instead).

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use ropewalk_deferred::{Cancelled, Deferred, Failure, ScheduledCall, Scheduler, Timeout};

type Call = (Duration, u64, Option<Box<dyn FnOnce()>>);

/// Twisted's `task.Clock`, enough for timeouts: calls run in deadline order when `advance`
/// moves time past them; cancelled calls are dropped.
#[derive(Default)]
struct Clock {
    now: Cell<Duration>,
    next_id: Cell<u64>,
    calls: Rc<RefCell<Vec<Call>>>,
    cancelled: Rc<Cell<usize>>,
}

impl Scheduler for Clock {
    fn schedule(&self, delay: Duration, f: Box<dyn FnOnce()>) -> ScheduledCall {
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        self.calls
            .borrow_mut()
            .push((self.now.get() + delay, id, Some(f)));
        let (calls, cancelled) = (self.calls.clone(), self.cancelled.clone());
        ScheduledCall::new(move || {
            let mut calls = calls.borrow_mut();
            if let Some(c) = calls.iter_mut().find(|c| c.1 == id && c.2.is_some()) {
                c.2 = None;
                cancelled.set(cancelled.get() + 1);
            }
        })
    }
}

impl Clock {
    fn advance(&self, by: Duration) {
        let until = self.now.get() + by;
        loop {
            let due = {
                let mut calls = self.calls.borrow_mut();
                calls.retain(|c| c.2.is_some());
                calls.sort_by_key(|c| (c.0, c.1));
                match calls.first() {
                    Some(c) if c.0 <= until => {
                        self.now.set(c.0);
                        calls.remove(0).2
                    }
                    _ => None,
                }
            };
            match due {
                Some(f) => f(),
                None => break,
            }
        }
        self.now.set(until);
    }

    fn pending(&self) -> usize {
        self.calls.borrow().iter().filter(|c| c.2.is_some()).count()
    }
}

const TEN: Duration = Duration::from_secs(10);
const FIFTEEN: Duration = Duration::from_secs(15);

fn overridden<T>(_: Result<T, Failure>, _: Duration) -> Result<&'static str, Failure> {
    Ok("OVERRIDDEN")
}

#[derive(Debug, PartialEq)]
struct What;

impl std::fmt::Display for What {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("what!")
    }
}

impl std::error::Error for What {}

/// Twisted: DeferredAddTimeoutTests.test_timeoutChainable
#[test]
fn timeout_chainable() {
    let clock = Clock::default();
    let (d, r) = Deferred::<()>::pending();
    let d = d.add_timeout(TEN, &clock).add_callback(|_| Ok("done"));
    r.callback(()).unwrap();
    assert_eq!(d.wait().unwrap(), "done");
}

/// Twisted: DeferredAddTimeoutTests.test_successResultBeforeTimeout (and the timer is
/// cancelled, so no late cancel reaches the inner Deferred)
#[test]
fn success_result_before_timeout() {
    let clock = Clock::default();
    let (d, r) = Deferred::<&str>::pending();
    let (inner, _r_inner) = Deferred::<()>::pending();
    let inner_handle = inner.cancel_handle();
    let seen = Rc::new(RefCell::new(None));
    let s = seen.clone();
    let d = d.add_timeout(TEN, &clock).add_callback(move |v| {
        *s.borrow_mut() = Some(v);
        inner
    });
    r.callback("results").unwrap();
    assert_eq!(*seen.borrow(), Some("results"));
    assert_eq!(clock.pending(), 0, "timer cancelled");
    assert_eq!(clock.cancelled.get(), 1);
    clock.advance(FIFTEEN);
    assert!(!inner_handle.is_called(), "assertNoResult(innerDeferred)");
    assert!(!d.has_result());
}

/// Twisted: DeferredAddTimeoutTests.test_successResultBeforeTimeoutCustom
#[test]
fn success_result_before_timeout_custom() {
    let clock = Clock::default();
    let (d, r) = Deferred::<&str>::pending();
    let d = d.add_timeout_with(TEN, &clock, overridden);
    r.callback("results").unwrap();
    clock.advance(FIFTEEN);
    assert_eq!(d.wait().unwrap(), "results");
}

/// Twisted: DeferredAddTimeoutTests.test_failureBeforeTimeout
#[test]
fn failure_before_timeout() {
    let clock = Clock::default();
    let (d, r) = Deferred::<()>::pending();
    let (inner, _r_inner) = Deferred::<()>::pending();
    let inner_handle = inner.cancel_handle();
    let seen = Rc::new(RefCell::new(None));
    let s = seen.clone();
    let d = d.add_timeout(TEN, &clock).add_errback(move |f| {
        *s.borrow_mut() = Some(f);
        inner
    });
    r.errback(What).unwrap();
    assert!(seen.borrow().as_ref().unwrap().is::<What>());
    assert_eq!(clock.pending(), 0);
    clock.advance(FIFTEEN);
    assert!(!inner_handle.is_called());
    assert!(!d.has_result());
}

/// Twisted: DeferredAddTimeoutTests.test_failureBeforeTimeoutCustom
#[test]
fn failure_before_timeout_custom() {
    let clock = Clock::default();
    let (d, r) = Deferred::<&str>::pending();
    let d = d.add_timeout_with(TEN, &clock, overridden);
    r.errback(What).unwrap();
    clock.advance(FIFTEEN);
    assert!(d.wait().unwrap_err().is::<What>());
}

/// Twisted: DeferredAddTimeoutTests.test_timedOut
#[test]
fn timed_out() {
    let clock = Clock::default();
    let (d, _r) = Deferred::<()>::pending();
    let mut d = d.add_timeout(TEN, &clock);
    clock.advance(Duration::from_secs(9));
    assert!(d.try_result().is_none());
    clock.advance(FIFTEEN);
    let f = d.try_result().unwrap().unwrap_err();
    assert_eq!(f.downcast_ref::<Timeout>(), Some(&Timeout(TEN)));
}

/// Twisted: DeferredAddTimeoutTests.test_timedOutCustom
#[test]
fn timed_out_custom() {
    let clock = Clock::default();
    let (d, _r) = Deferred::<&str>::pending();
    let d = d.add_timeout_with(TEN, &clock, overridden);
    clock.advance(FIFTEEN);
    assert_eq!(d.wait().unwrap(), "OVERRIDDEN");
}

/// Twisted: DeferredAddTimeoutTests.test_timedOutProvidedCancelSuccess
#[test]
fn timed_out_provided_cancel_success() {
    let clock = Clock::default();
    let (d, _r) = Deferred::<&str>::with_canceller(|| Some(Ok("I was cancelled!")));
    let mut d = d.add_timeout(TEN, &clock);
    assert!(d.try_result().is_none());
    clock.advance(FIFTEEN);
    assert_eq!(d.try_result().unwrap().unwrap(), "I was cancelled!");
}

/// Twisted: DeferredAddTimeoutTests.test_timedOutProvidedCancelFailure
#[test]
fn timed_out_provided_cancel_failure() {
    let clock = Clock::default();
    let error = Failure::new(What);
    let e = error.clone();
    let (d, _r) = Deferred::<()>::with_canceller(move || Some(Err(e)));
    let d = d.add_timeout(TEN, &clock);
    clock.advance(FIFTEEN);
    let f = d.wait().unwrap_err();
    assert!(f.ptr_eq(&error), "the canceller's own failure, same object");
}

/// Twisted: DeferredAddTimeoutTests.test_providedCancelCalledBeforeTimeoutCustom
#[test]
fn provided_cancel_called_before_timeout_custom() {
    let clock = Clock::default();
    let (d, _r) = Deferred::<&str>::with_canceller(|| Some(Err(Failure::new(What))));
    let d = d.add_timeout_with(TEN, &clock, overridden);
    clock.advance(FIFTEEN);
    assert_eq!(d.wait().unwrap(), "OVERRIDDEN");
}

/// Twisted: DeferredAddTimeoutTests.test_cancelBeforeTimeout
#[test]
fn cancel_before_timeout() {
    let clock = Clock::default();
    let (d, _r) = Deferred::<()>::pending();
    let (inner, _r_inner) = Deferred::<()>::pending();
    let inner_handle = inner.cancel_handle();
    let seen = Rc::new(RefCell::new(None));
    let s = seen.clone();
    let d = d.add_timeout(TEN, &clock).add_errback(move |f| {
        *s.borrow_mut() = Some(f);
        inner
    });
    d.cancel();
    assert!(seen.borrow().as_ref().unwrap().is::<Cancelled>());
    assert_eq!(clock.pending(), 0, "timer cancelled");
    clock.advance(FIFTEEN);
    assert!(!inner_handle.is_called());
}

/// Twisted: DeferredAddTimeoutTests.test_cancelBeforeTimeoutCustom
#[test]
fn cancel_before_timeout_custom() {
    let clock = Clock::default();
    let (d, _r) = Deferred::<&str>::pending();
    let d = d.add_timeout_with(TEN, &clock, overridden);
    d.cancel();
    clock.advance(FIFTEEN);
    assert!(d.wait().unwrap_err().is::<Cancelled>());
}

/// Twisted: DeferredAddTimeoutTests.test_errbackAddedBeforeTimeout
#[test]
fn errback_added_before_timeout() {
    let clock = Clock::default();
    let (d, _r) = Deferred::<()>::pending();
    let seen = Rc::new(RefCell::new(None));
    let s = seen.clone();
    let d = d
        .add_errback(move |f| {
            *s.borrow_mut() = Some(f.clone());
            Err(f)
        })
        .add_timeout(TEN, &clock);
    clock.advance(FIFTEEN);
    assert!(seen.borrow().as_ref().unwrap().is::<Cancelled>());
    assert!(d.wait().unwrap_err().is::<Timeout>());
}

/// Twisted: DeferredAddTimeoutTests.test_errbackAddedBeforeTimeoutSuppressesCancellation
#[test]
fn errback_added_before_timeout_suppresses_cancellation() {
    let clock = Clock::default();
    let (d, _r) = Deferred::<()>::pending();
    let seen = Rc::new(RefCell::new(None));
    let s = seen.clone();
    let d = d
        .add_errback(move |f| {
            *s.borrow_mut() = Some(f.clone());
            f.trap::<Cancelled>()?;
            Ok(())
        })
        .add_timeout(TEN, &clock);
    clock.advance(FIFTEEN);
    assert!(seen.borrow().as_ref().unwrap().is::<Cancelled>());
    assert!(d.wait().is_ok());
}

/// Twisted: DeferredAddTimeoutTests.test_errbackAddedBeforeTimeoutCustom
#[test]
fn errback_added_before_timeout_custom() {
    let clock = Clock::default();
    let (d, _r) = Deferred::<&str>::pending();
    let seen = Rc::new(Cell::new(false));
    let s = seen.clone();
    let d = d
        .add_errback(move |f| {
            s.set(f.is::<Cancelled>());
            Err(f)
        })
        .add_timeout_with(TEN, &clock, overridden);
    clock.advance(FIFTEEN);
    assert!(seen.get());
    assert_eq!(d.wait().unwrap(), "OVERRIDDEN");
}

/// Twisted: DeferredAddTimeoutTests.test_errbackAddedBeforeTimeoutSuppressesCancellationCustom
#[test]
fn errback_added_before_timeout_suppresses_cancellation_custom() {
    let clock = Clock::default();
    let (d, _r) = Deferred::<&str>::pending();
    let d = d
        .add_errback(|f| {
            f.trap::<Cancelled>()?;
            Ok("suppressed")
        })
        .add_timeout_with(TEN, &clock, overridden);
    clock.advance(FIFTEEN);
    assert_eq!(d.wait().unwrap(), "OVERRIDDEN");
}

/// Twisted: DeferredAddTimeoutTests.test_callbackAddedToCancelerBeforeTimeout
#[test]
fn callback_added_to_canceller_before_timeout() {
    let clock = Clock::default();
    let (d, _r) = Deferred::<&str>::with_canceller(|| Some(Ok("success")));
    let seen = Rc::new(Cell::new(None));
    let s = seen.clone();
    let d = d
        .add_callback(move |v| {
            s.set(Some(v));
            Ok(v)
        })
        .add_timeout(TEN, &clock);
    clock.advance(FIFTEEN);
    assert_eq!(seen.get(), Some("success"));
    assert_eq!(d.wait().unwrap(), "success");
}

/// Twisted: DeferredAddTimeoutTests.test_callbackAddedToCancelerBeforeTimeoutCustom
#[test]
fn callback_added_to_canceller_before_timeout_custom() {
    let clock = Clock::default();
    let (d, _r) = Deferred::<&str>::with_canceller(|| Some(Ok("success")));
    let seen = Rc::new(Cell::new(None));
    let s = seen.clone();
    let d = d
        .add_callback(move |v| {
            s.set(Some(v));
            Ok(v)
        })
        .add_timeout_with(TEN, &clock, overridden);
    clock.advance(FIFTEEN);
    assert_eq!(seen.get(), Some("success"));
    assert_eq!(d.wait().unwrap(), "OVERRIDDEN");
}

/// Twisted: none (reference §1.7.37): a timer that fires late anyway, after a success
/// (a scheduler whose cancel came too late), does nothing.
#[test]
fn late_timer_after_success_does_nothing() {
    /// A scheduler whose cancel does nothing: the timer always runs.
    #[derive(Default)]
    struct Stubborn(RefCell<Vec<Box<dyn FnOnce()>>>);
    impl Scheduler for Stubborn {
        fn schedule(&self, _delay: Duration, f: Box<dyn FnOnce()>) -> ScheduledCall {
            self.0.borrow_mut().push(f);
            ScheduledCall::new(|| {})
        }
    }
    let clock = Stubborn::default();
    let (d, r) = Deferred::<i32>::pending();
    let (inner, _r_inner) = Deferred::<i32>::pending();
    let inner_handle = inner.cancel_handle();
    let d = d.add_timeout(TEN, &clock);
    r.callback(5).unwrap();
    let d = d.add_callback(move |n| inner.add_callback(move |m| Ok(n + m)));
    for f in clock.0.take() {
        f();
    }
    assert!(
        !inner_handle.is_called(),
        "the late timer must not cancel the inner"
    );
    assert!(!d.has_result());
}

/// Twisted: none (ropewalk-specific): the timer does not keep the Deferred alive; a timer
/// firing after the Deferred is gone does nothing.
#[test]
fn timer_after_deferred_dropped_does_nothing() {
    let clock = Clock::default();
    let (d, r) = Deferred::<i32>::pending();
    let d = d.add_timeout(TEN, &clock);
    drop(d);
    drop(r);
    clock.advance(FIFTEEN);
    assert_eq!(clock.pending(), 0);
}

/// A timeout on a gathered Deferred cancels the members, and the gathered one then fails
/// with a `FirstError` wrapping a member's `Cancelled`: that is the timeout too, and must
/// say so ("timed out"), not "deferred #0 failed: deferred was cancelled".
#[test]
fn timeout_on_a_gathered_deferred_is_a_timeout() {
    let clock = Clock::default();
    let (slow, _r) = Deferred::<u32>::pending();
    let both = ropewalk_deferred::gather_results_consuming_errors([Deferred::succeed(1), slow])
        .add_timeout(Duration::from_secs(5), &clock);
    clock.advance(Duration::from_secs(5));
    let f = both.wait().unwrap_err();
    assert!(f.is::<Timeout>(), "{f}");
}
