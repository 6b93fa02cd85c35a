//! Cancellation: Twisted's `DeferredCancellerTests` (test/test_defer.py).
//!
//! Not ported, one line each:
//! - `test_raisesAfterCancelAndCallback`/`…AndErrback`, the "second late fire raises" half:
//!   a `Resolver` fires at most once (firing consumes it), so there is no second late fire;
//!   the swallowed first one is ported.
//! - `test_cancellerArg`: a canceller is `FnOnce()` with no argument; a canceller that
//!   wants the Deferred's producer side captures its `Resolver` (ported in
//!   `canceller_that_fires_through_its_resolver`).

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use ropewalk_deferred::{succeed, Cancelled, Deferred, Failure, Resolver};

#[derive(Debug, PartialEq)]
struct Custom;

impl std::fmt::Display for Custom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("custom cancel error")
    }
}

impl std::error::Error for Custom {}

/// Twisted: DeferredCancellerTests.test_noCanceller
#[test]
fn no_canceller_errbacks_with_cancelled() {
    let called = Rc::new(Cell::new(false));
    let c = called.clone();
    let (d, _r) = Deferred::<i32>::pending();
    let mut d = d.add_callback(move |n| {
        c.set(true);
        Ok(n)
    });
    d.cancel();
    assert!(!called.get(), "callback must not run");
    assert!(d.try_result().unwrap().unwrap_err().is::<Cancelled>());
}

/// Twisted: DeferredCancellerTests.test_raisesAfterCancelAndCallback (the late callback
/// is swallowed)
#[test]
fn late_callback_after_cancel_is_swallowed() {
    let (d, r) = Deferred::<i32>::pending();
    d.cancel();
    assert!(r.is_called());
    assert_eq!(r.callback(1), Ok(()));
    assert!(d.wait().unwrap_err().is::<Cancelled>());
}

/// Twisted: DeferredCancellerTests.test_raisesAfterCancelAndErrback
#[test]
fn late_errback_after_cancel_is_swallowed() {
    let (d, r) = Deferred::<i32>::pending();
    d.cancel();
    assert_eq!(r.errback(Custom), Ok(()));
    let f = d.wait().unwrap_err();
    assert!(f.is::<Cancelled>());
}

/// Twisted: DeferredCancellerTests.test_noCancellerMultipleCancel
#[test]
fn repeated_cancel_without_canceller_fires_once() {
    let seen = Rc::new(RefCell::new(Vec::<Failure>::new()));
    let s = seen.clone();
    let (d, _r) = Deferred::<i32>::pending();
    let d = d.add_errback(move |f| {
        s.borrow_mut().push(f.clone());
        Err(f)
    });
    d.cancel();
    d.cancel();
    d.cancel();
    assert_eq!(seen.borrow().len(), 1);
    let f = d.wait().unwrap_err();
    assert!(
        f.ptr_eq(&seen.borrow()[0]),
        "the result stays the same failure"
    );
}

/// Twisted: DeferredCancellerTests.test_noCancellerMultipleCancelsAfterCancelAndCallback
#[test]
fn cancel_again_after_swallowed_callback_changes_nothing() {
    let (d, r) = Deferred::<i32>::pending();
    d.cancel();
    r.callback(1).unwrap();
    d.cancel();
    assert!(d.wait().unwrap_err().is::<Cancelled>());
}

/// Twisted: DeferredCancellerTests.test_noCancellerMultipleCancelsAfterCancelAndErrback
#[test]
fn cancel_again_after_swallowed_errback_changes_nothing() {
    let (d, r) = Deferred::<i32>::pending();
    d.cancel();
    r.errback(Custom).unwrap();
    d.cancel();
    let f = d.wait().unwrap_err();
    assert!(f.is::<Cancelled>());
    assert!(!f.is::<Custom>());
}

/// Twisted: DeferredCancellerTests.test_cancellerMultipleCancel
#[test]
fn canceller_called_once() {
    let count = Rc::new(Cell::new(0));
    let c = count.clone();
    let (d, _r) = Deferred::<i32>::with_canceller(move || {
        c.set(c.get() + 1);
        None
    });
    d.cancel();
    d.cancel();
    assert_eq!(count.get(), 1);
    assert!(d.wait().unwrap_err().is::<Cancelled>());
}

/// Twisted: DeferredCancellerTests.test_simpleCanceller (a canceller that does not fire:
/// `Cancelled` follows, and nothing is swallowed afterwards)
#[test]
fn simple_canceller_then_late_fire_is_already_called() {
    let count = Rc::new(Cell::new(0));
    let c = count.clone();
    let (d, r) = Deferred::<i32>::with_canceller(move || {
        c.set(c.get() + 1);
        None
    });
    d.cancel();
    assert_eq!(count.get(), 1);
    assert!(
        r.callback(1).is_err(),
        "AlreadyCalled: nothing swallowed with a canceller"
    );
    assert!(d.wait().unwrap_err().is::<Cancelled>());
}

/// Twisted: DeferredCancellerTests.test_cancellerThatErrbacks
#[test]
fn canceller_that_errbacks() {
    let (d, _r) = Deferred::<i32>::with_canceller(|| Some(Err(Failure::new(Custom))));
    let d = d.add_callbacks(
        |_| -> Result<&str, Failure> { panic!("callback must not run") },
        |f| {
            assert!(f.is::<Custom>());
            Ok("errback ran")
        },
    );
    d.cancel();
    assert_eq!(d.wait().unwrap(), "errback ran");
}

/// Twisted: DeferredCancellerTests.test_cancellerThatCallbacks
#[test]
fn canceller_that_callbacks() {
    let (d, _r) = Deferred::<&str>::with_canceller(|| Some(Ok("hello!")));
    let d = d.add_callbacks(
        |s| Ok(s.to_string()),
        |_| -> Result<String, Failure> { panic!("errback must not run") },
    );
    d.cancel();
    assert_eq!(d.wait().unwrap(), "hello!");
}

/// Twisted: DeferredCancellerTests.test_cancellerThatCallbacks / test_cancellerArg: the
/// canceller fires the Deferred itself, through the producer's resolver.
#[test]
fn canceller_that_fires_through_its_resolver() {
    let slot: Rc<RefCell<Option<Resolver<&str>>>> = Rc::new(RefCell::new(None));
    let s = slot.clone();
    let count = Rc::new(Cell::new(0));
    let c = count.clone();
    let (d, r) = Deferred::<&str>::with_canceller(move || {
        c.set(c.get() + 1);
        s.borrow_mut().take().unwrap().callback("hello!").unwrap();
        None
    });
    *slot.borrow_mut() = Some(r);
    d.cancel();
    assert_eq!(count.get(), 1);
    assert_eq!(d.wait().unwrap(), "hello!");
}

/// Twisted: DeferredCancellerTests.test_cancelAfterCallback
#[test]
fn cancel_after_callback_is_a_no_op() {
    let called = Rc::new(Cell::new(false));
    let c = called.clone();
    let (d, r) = Deferred::<&str>::with_canceller(move || {
        c.set(true);
        None
    });
    r.callback("biff!").unwrap();
    d.cancel();
    assert!(!called.get());
    assert_eq!(d.wait().unwrap(), "biff!");
}

/// Twisted: DeferredCancellerTests.test_cancelAfterErrback
#[test]
fn cancel_after_errback_is_a_no_op() {
    let called = Rc::new(Cell::new(false));
    let c = called.clone();
    let (d, r) = Deferred::<&str>::with_canceller(move || {
        c.set(true);
        None
    });
    r.errback(Custom).unwrap();
    d.cancel();
    assert!(!called.get());
    assert!(d.wait().unwrap_err().is::<Custom>());
}

/// Twisted: DeferredCancellerTests.test_cancelNestedDeferred
#[test]
fn cancelling_a_waiting_deferred_cancels_the_inner() {
    let inner_count = Rc::new(Cell::new(0));
    let ic = inner_count.clone();
    let (b, _rb) = Deferred::<()>::with_canceller(move || {
        ic.set(ic.get() + 1);
        None
    });
    let b_handle = b.cancel_handle();
    let (a, ra) = Deferred::<()>::with_canceller(|| panic!("a's canceller must not run"));
    ra.callback(()).unwrap();
    let a = a.add_callback(move |_| b);
    a.cancel();
    assert_eq!(inner_count.get(), 1);
    assert!(b_handle.is_called());
    assert!(a.wait().unwrap_err().is::<Cancelled>());
}

/// Twisted: DeferredCancellerTests.test_canceller_circular_reference_callback: firing
/// drops the canceller, so a canceller holding the Deferred's resolver is no leak.
#[test]
fn canceller_dropped_when_fired_by_callback() {
    let token = Rc::new(());
    let t = token.clone();
    let (d, r) = Deferred::<i32>::with_canceller(move || {
        let _keep = &t;
        None
    });
    assert_eq!(Rc::strong_count(&token), 2);
    r.callback(1).unwrap();
    assert_eq!(Rc::strong_count(&token), 1, "canceller dropped at firing");
    assert_eq!(d.wait().unwrap(), 1);
}

/// Twisted: DeferredCancellerTests.test_canceller_circular_reference_errback
#[test]
fn canceller_dropped_when_fired_by_errback() {
    let token = Rc::new(());
    let t = token.clone();
    let (d, r) = Deferred::<i32>::with_canceller(move || {
        let _keep = &t;
        None
    });
    r.errback(Custom).unwrap();
    assert_eq!(Rc::strong_count(&token), 1);
    assert!(d.wait().is_err());
}

/// Twisted: DeferredCancellerTests.test_canceller_circular_reference_non_final: the
/// canceller goes at firing even while the chain waits on another Deferred.
#[test]
fn canceller_dropped_when_fired_but_waiting() {
    let token = Rc::new(());
    let t = token.clone();
    let (d, r) = Deferred::<i32>::with_canceller(move || {
        let _keep = &t;
        None
    });
    let (inner, r_inner) = Deferred::<i32>::pending();
    let d = d.add_callback(move |_| inner);
    r.callback(1).unwrap();
    assert!(!d.has_result());
    assert_eq!(Rc::strong_count(&token), 1);
    r_inner.callback(2).unwrap();
    assert_eq!(d.wait().unwrap(), 2);
}

/// Twisted: none (ropewalk-specific): a `CancelHandle` cancels after the Deferred was
/// handed on, and does nothing once it is gone.
#[test]
fn cancel_handle_cancels_and_outlives_the_deferred() {
    let (d, _r) = Deferred::<i32>::pending();
    let h = d.cancel_handle();
    let d = d.add_errback(|f| {
        f.trap::<Cancelled>()?;
        Ok(0)
    });
    assert!(!h.is_called());
    h.cancel();
    assert!(h.is_called());
    assert_eq!(d.wait().unwrap(), 0);
    h.cancel(); // the chain is gone: nothing happens
    assert!(h.is_called());
}

/// Twisted: none (ropewalk-specific): a panicking canceller is logged and counts as
/// "did not fire", so the Deferred errbacks with `Cancelled`.
#[test]
fn panicking_canceller_gives_cancelled() {
    let (d, _r) = Deferred::<i32>::with_canceller(|| panic!("canceller exploded"));
    d.cancel();
    assert!(d.wait().unwrap_err().is::<Cancelled>());
}

/// Twisted: none (cancel of an already-fired succeed() is a no-op, as
/// test_cancelAfterCallback)
#[test]
fn cancel_of_fired_deferred_keeps_its_value() {
    let d = succeed(4);
    d.cancel();
    assert_eq!(d.wait().unwrap(), 4);
}
