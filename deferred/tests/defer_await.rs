//! A Deferred as a `Future`: Twisted's `AwaitTests` (internet/test/test_defer_await.py).
//!
//! Not ported, one line each:
//! - `test_awaitReturnsIterable`: Python's `__await__` protocol; `Deferred: Future` is checked
//!   at compile time here.
//! - `test_deferredFromCoroutine`, `test_basicEnsureDeferred`, `EnsureDeferredTests.*`: turning
//!   a future into a Deferred needs a task runner, which lives in the reactor crate.
//! - `test_synchronousDeferredFailureTraceback`, `test_asyncDeferredFailureTraceback`: no
//!   Python tracebacks; the error value itself is checked.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use futures::executor::{block_on, LocalPool};
use futures::task::{noop_waker, LocalSpawnExt};
use ropewalk_deferred::{Cancelled, Deferred, Failure, WaitError};

struct CountingWaker(AtomicUsize);

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn counting_waker() -> (Arc<CountingWaker>, Waker) {
    let c = Arc::new(CountingWaker(AtomicUsize::new(0)));
    (c.clone(), Waker::from(c))
}

fn poll_once<F: Future + Unpin>(f: &mut F, waker: &Waker) -> Poll<F::Output> {
    Pin::new(f).poll(&mut Context::from_waker(waker))
}

/// Twisted: AwaitTests.test_basic (awaiting a fired Deferred does not suspend)
#[test]
fn awaiting_fired_deferred_is_ready_at_once() {
    let mut d = Deferred::succeed("foo");
    match poll_once(&mut d, &noop_waker()) {
        Poll::Ready(Ok(v)) => assert_eq!(v, "foo"),
        other => panic!("expected Ready(Ok), got {}", other.is_ready()),
    }
}

/// Twisted: AwaitTests.test_exception / test_reraise (the original error comes out)
#[test]
fn awaiting_failure_gives_err() {
    let f = Failure::msg("oh no");
    let mut d = Deferred::<i32>::fail(f.clone());
    match poll_once(&mut d, &noop_waker()) {
        Poll::Ready(Err(got)) => assert!(got.ptr_eq(&f)),
        _ => panic!("expected Ready(Err)"),
    }
}

/// Twisted: AwaitTests.test_twoDeep's core: an unfired Deferred suspends, is woken when
/// it fires, and then gives the value.
#[test]
fn awaiting_unfired_deferred_is_woken_when_fired() {
    let (mut d, r) = Deferred::<u32>::pending();
    let (count, waker) = counting_waker();
    assert!(poll_once(&mut d, &waker).is_pending());
    assert_eq!(count.0.load(Ordering::SeqCst), 0);
    r.callback(7).unwrap();
    assert_eq!(count.0.load(Ordering::SeqCst), 1, "woken once by the fire");
    match poll_once(&mut d, &waker) {
        Poll::Ready(Ok(v)) => assert_eq!(v, 7),
        _ => panic!("expected Ready(Ok(7))"),
    }
}

/// Twisted: AwaitTests.test_chained (a Deferred paused waiting on another gives the final
/// result)
#[test]
fn awaiting_chained_deferred_waits_for_final_result() {
    let (inner, r_inner) = Deferred::<u32>::pending();
    let mut d = Deferred::succeed(1).add_callback(move |n| inner.add_callback(move |m| Ok(n + m)));
    let (count, waker) = counting_waker();
    assert!(poll_once(&mut d, &waker).is_pending());
    r_inner.callback(41).unwrap();
    assert!(count.0.load(Ordering::SeqCst) >= 1);
    match poll_once(&mut d, &waker) {
        Poll::Ready(Ok(v)) => assert_eq!(v, 42),
        _ => panic!("expected Ready(Ok(42))"),
    }
}

/// Twisted: AwaitTests.test_twoDeep (two awaits in a row, fired by another task, as
/// Twisted's version fires them from a Clock)
#[test]
fn two_awaits_in_a_task_fired_from_another_task() {
    let mut pool = LocalPool::new();
    let (d1, r1) = Deferred::<&str>::pending();
    let (d2, r2) = Deferred::<&str>::pending();
    let out = Rc::new(Cell::new(None));
    let o = out.clone();
    pool.spawner()
        .spawn_local(async move {
            let a = d1.await.unwrap();
            let b = d2.await.unwrap();
            o.set(Some((a, b)));
        })
        .unwrap();
    pool.run_until_stalled();
    assert!(out.get().is_none());
    r1.callback("foo").unwrap();
    pool.run_until_stalled();
    assert!(out.get().is_none());
    r2.callback("bar").unwrap();
    pool.run_until_stalled();
    assert_eq!(out.get(), Some(("foo", "bar")));
}

/// Twisted: none (Rust future semantics, documented on `Deferred`): dropping a Deferred
/// that was polled and not finished cancels it.
#[test]
fn dropping_polled_unfinished_deferred_cancels_it() {
    let cancelled = Rc::new(Cell::new(false));
    let c = cancelled.clone();
    let (mut d, r) = Deferred::<i32>::with_canceller(move || {
        c.set(true);
        None
    });
    assert!(poll_once(&mut d, &noop_waker()).is_pending());
    drop(d);
    assert!(cancelled.get());
    assert!(r.is_called());
}

/// Twisted: none (documented on `Deferred`): dropping a Deferred never polled does not
/// cancel it; dropping one that finished does nothing either.
#[test]
fn dropping_unpolled_or_finished_deferred_does_not_cancel() {
    let (d, r) = Deferred::<i32>::pending();
    let h = d.cancel_handle();
    let d2 = d.add_callback(Ok);
    drop(d2);
    assert!(!h.is_called(), "not cancelled");
    assert!(!r.is_called());

    let cancelled = Rc::new(Cell::new(false));
    let c = cancelled.clone();
    let (mut d, r) = Deferred::<i32>::with_canceller(move || {
        c.set(true);
        None
    });
    assert!(poll_once(&mut d, &noop_waker()).is_pending());
    r.callback(1).unwrap();
    assert!(poll_once(&mut d, &noop_waker()).is_ready());
    drop(d);
    assert!(!cancelled.get());
}

/// Twisted: none (Rust future semantics): a select-style drop of the losing branch cancels
/// it, the way a timeout cancels in Twisted; the canceller's errback reaches its chain.
#[test]
fn cancellation_by_drop_reaches_errbacks_before_the_drop() {
    let seen = Rc::new(Cell::new(false));
    let s = seen.clone();
    let (d, _r) = Deferred::<i32>::pending();
    let mut d = d.add_errback(move |f| {
        s.set(f.is::<Cancelled>());
        Err(f)
    });
    assert!(poll_once(&mut d, &noop_waker()).is_pending());
    drop(d);
    assert!(seen.get());
}

/// Twisted: none: `block_on` a fired Deferred, and polling again after Ready reports the
/// result as taken.
#[test]
fn block_on_and_poll_after_ready() {
    assert_eq!(block_on(Deferred::succeed(3)).unwrap(), 3);
    let mut d = Deferred::succeed(3);
    assert!(poll_once(&mut d, &noop_waker()).is_ready());
    match poll_once(&mut d, &noop_waker()) {
        Poll::Ready(Err(f)) => {
            assert_eq!(f.downcast_ref::<WaitError>(), Some(&WaitError::ResultTaken))
        }
        _ => panic!("expected ResultTaken"),
    }
}
