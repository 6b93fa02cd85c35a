//! `Deferred::wait()`: the blocking wait Twisted lacks (reference §1.12). The Twisted
//! tests it stands for are trial's `successResultOf`/`failureResultOf`/`assertNoResult` and
//! `ReactorThreadsTests.test_blockingCallFromThread` and friends; the behaviour with no
//! reactor, or inside a callback, is ours (documented on `Deferred::wait`).
//!
//! The wait driver is per thread; every test that installs one removes it with a guard.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;

use ropewalk_deferred::{set_wait_driver, Deferred, Failure, WaitDriver, WaitError};

/// A toy reactor: a queue of events, one run per turn.
#[derive(Default)]
struct Queue {
    events: RefCell<VecDeque<Box<dyn FnOnce()>>>,
    turns: Cell<usize>,
    runs: Cell<usize>,
}

impl Queue {
    fn push(&self, f: impl FnOnce() + 'static) {
        self.events.borrow_mut().push_back(Box::new(f));
    }
}

impl WaitDriver for Queue {
    fn run_until(&self, done: &mut dyn FnMut() -> bool) -> Result<(), Failure> {
        self.runs.set(self.runs.get() + 1);
        while !done() {
            let Some(event) = self.events.borrow_mut().pop_front() else {
                return Ok(());
            };
            self.turns.set(self.turns.get() + 1);
            event();
        }
        Ok(())
    }
}

/// Installs a driver for the test and removes it on drop, even if the test fails.
struct Installed(Rc<Queue>);

impl Installed {
    fn new() -> Installed {
        let q = Rc::new(Queue::default());
        assert!(set_wait_driver(Some(q.clone())).is_none());
        Installed(q)
    }
}

impl Drop for Installed {
    fn drop(&mut self) {
        set_wait_driver(None);
    }
}

fn wait_error(f: &Failure) -> Option<&WaitError> {
    f.downcast_ref::<WaitError>()
}

/// Twisted: SynchronousTestCase.successResultOf (reference §1.12.58)
#[test]
fn wait_on_fired_gives_value_without_driver() {
    assert_eq!(Deferred::succeed(3).wait().unwrap(), 3);
}

/// Twisted: SynchronousTestCase.failureResultOf (reference §1.12.58)
#[test]
fn wait_on_failed_gives_failure_without_driver() {
    let f = Deferred::<i32>::fail(Failure::msg("bad"))
        .wait()
        .unwrap_err();
    assert_eq!(f.to_string(), "bad");
}

/// Twisted: none (ours, instead of a deadlock): pending with no reactor → `NoReactor`.
#[test]
fn wait_on_pending_without_driver_is_no_reactor() {
    let (d, r) = Deferred::<i32>::pending();
    let f = d.wait().unwrap_err();
    assert_eq!(wait_error(&f), Some(&WaitError::NoReactor));
    drop(r);
}

/// Twisted: none (ours, instead of re-entering the reactor): `wait()` inside a callback
/// on a pending Deferred → `InsideCallback`, and the driver is not run.
#[test]
fn wait_inside_callback_is_inside_callback() {
    let q = Installed::new();
    let (inner, _r) = Deferred::<i32>::pending();
    let d = Deferred::succeed(()).add_callback(move |_| {
        let f = inner.wait().unwrap_err();
        Ok(wait_error(&f).cloned())
    });
    assert_eq!(d.wait().unwrap(), Some(WaitError::InsideCallback));
    assert_eq!(q.0.runs.get(), 0);
}

/// Twisted: none: inside a callback, `wait()` on an already-fired Deferred still gives
/// its value (nothing would need to run).
#[test]
fn wait_inside_callback_on_fired_gives_value() {
    let d = Deferred::succeed(2).add_callback(|n| Ok(Deferred::succeed(n * 10).wait()? + 1));
    assert_eq!(d.wait().unwrap(), 21);
}

/// Twisted: ReactorThreadsTests.test_asyncBlockingCallFromThread's shape: the reactor
/// runs until the Deferred fires, then `wait()` returns its value.
#[test]
fn wait_runs_the_driver_until_fired() {
    let q = Installed::new();
    let (d, r) = Deferred::<u32>::pending();
    let d = d.add_callback(|n| Ok(n + 1));
    q.0.push(|| {});
    q.0.push(move || r.callback(41).unwrap());
    q.0.push(|| panic!("must stop once the Deferred fired"));
    assert_eq!(d.wait().unwrap(), 42);
    assert_eq!(q.0.turns.get(), 2);
    assert_eq!(q.0.events.borrow().len(), 1);
}

/// Twisted: ReactorThreadsTests.test_asyncErrorBlockingCallFromThread's shape: a failure
/// fired during the run comes out of `wait()`.
#[test]
fn wait_gives_failure_fired_by_driver() {
    let q = Installed::new();
    let (d, r) = Deferred::<u32>::pending();
    q.0.push(move || r.errback(Failure::msg("async error")).unwrap());
    assert_eq!(d.wait().unwrap_err().to_string(), "async error");
}

/// Twisted: none: `wait()` on a chain that waits on an inner Deferred fired later by the
/// driver gives the final result.
#[test]
fn wait_on_chained_deferred_fired_by_driver() {
    let q = Installed::new();
    let (inner, r_inner) = Deferred::<u32>::pending();
    let d = Deferred::succeed(1).add_callback(move |n| inner.add_callback(move |m| Ok(n + m)));
    q.0.push(move || r_inner.callback(9).unwrap());
    assert_eq!(d.wait().unwrap(), 10);
}

/// Twisted: none (ours): the driver runs out of work before the Deferred fires →
/// `ReactorStopped`.
#[test]
fn wait_when_driver_runs_dry_is_reactor_stopped() {
    let q = Installed::new();
    let (d, r) = Deferred::<u32>::pending();
    q.0.push(|| {});
    let f = d.wait().unwrap_err();
    assert_eq!(wait_error(&f), Some(&WaitError::ReactorStopped));
    assert_eq!(q.0.turns.get(), 1);
    drop(r);
}

/// Twisted: none (ours): a driver that cannot run hands its failure to `wait()`.
#[test]
fn wait_passes_on_driver_failure() {
    struct Busy;
    impl WaitDriver for Busy {
        fn run_until(&self, _done: &mut dyn FnMut() -> bool) -> Result<(), Failure> {
            Err(Failure::new(WaitError::InsideCallback))
        }
    }
    set_wait_driver(Some(Rc::new(Busy)));
    let (d, _r) = Deferred::<u32>::pending();
    let f = d.wait().unwrap_err();
    set_wait_driver(None);
    assert_eq!(wait_error(&f), Some(&WaitError::InsideCallback));
}

/// Twisted: none: `set_wait_driver` returns the previous driver, so it can be restored.
#[test]
fn set_wait_driver_returns_previous() {
    let a: Rc<dyn WaitDriver> = Rc::new(Queue::default());
    assert!(set_wait_driver(Some(a.clone())).is_none());
    let prev = set_wait_driver(None).expect("the one installed");
    assert!(Rc::ptr_eq(&prev, &a));
    assert!(set_wait_driver(None).is_none());
}
