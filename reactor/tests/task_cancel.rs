//! Cancelling a spawned task, as Twisted cancels a coroutine's Deferred: the Deferred the
//! task awaits is cancelled, its result is delivered at the `.await`, and the task's own
//! Deferred fires with what the task makes of it. Twisted: test_defer.py
//! `DeferredTests.test_ErrorToSuccessTranslation` / `test_ErrorToErrorTranslation`
//! (`Deferred.fromCoroutine`), and the inlineCallbacks cancellation tests.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use ropewalk_reactor::deferred::{Cancelled, Deferred, Failure};
use ropewalk_reactor::Reactor;

const LIMIT: Duration = Duration::from_secs(10);

/// Waits for `d` with a bound: a bug fails with `Timeout` instead of hanging.
fn wait<T: 'static>(reactor: &Reactor, d: Deferred<T>) -> Result<T, Failure> {
    d.add_timeout(LIMIT, reactor).wait()
}

/// Runs reactor turns until `done`, at most 100 (a bug fails instead of spinning).
fn turns_until(reactor: &Reactor, done: impl Fn() -> bool) {
    for _ in 0..100 {
        if done() {
            return;
        }
        reactor.iterate(Duration::ZERO);
    }
    panic!("not done after 100 turns");
}

#[derive(Debug, thiserror::Error)]
#[error("the canceller's own error")]
struct CancellerError;

#[derive(Debug, thiserror::Error)]
#[error("the task's own error")]
struct TaskError;

/// The awaited Deferred's `Cancelled` reaches the task, which cleans up and returns a
/// value: the task's Deferred fires with it.
/// Twisted: test_defer.DeferredTests.test_ErrorToSuccessTranslation
#[test]
fn cancelled_task_turns_the_cancellation_into_a_value() {
    let reactor = Reactor::new().unwrap();
    let (awaited, _r) = Deferred::<u32>::pending();
    let cleaned = Rc::new(Cell::new(false));
    let c = cleaned.clone();
    let task = reactor.spawn(async move {
        match awaited.await {
            Err(f) if f.is::<Cancelled>() => {
                c.set(true);
                Ok::<_, Failure>(4321)
            }
            other => other,
        }
    });
    task.cancel();
    assert!(!task.is_called(), "the task fires its Deferred itself");
    assert_eq!(wait(&reactor, task).unwrap(), 4321);
    assert!(cleaned.get());
    assert_eq!(reactor.stats().live_tasks, 0);
}

/// The awaited Deferred's canceller gives an error of its own; the task catches it and
/// fails with another: the task's Deferred fails with that one.
/// Twisted: test_defer.DeferredTests.test_ErrorToErrorTranslation
#[test]
fn cancelled_task_turns_the_cancellers_error_into_its_own() {
    let reactor = Reactor::new().unwrap();
    let (awaited, _r) = Deferred::<u32>::with_canceller(|| Some(Err(Failure::new(CancellerError))));
    let task = reactor.spawn(async move {
        match awaited.await {
            Err(f) if f.is::<CancellerError>() => Err(Failure::new(TaskError)),
            other => other,
        }
    });
    task.cancel();
    assert!(wait(&reactor, task).unwrap_err().is::<TaskError>());
}

/// A canceller that gives a value: the task receives it at the `.await` and goes on.
#[test]
fn cancelled_task_receives_the_cancellers_value() {
    let reactor = Reactor::new().unwrap();
    let (awaited, _r) = Deferred::<u32>::with_canceller(|| Some(Ok(7)));
    let task = reactor.spawn(async move { Ok::<_, Failure>(awaited.await? + 1) });
    task.cancel();
    assert_eq!(wait(&reactor, task).unwrap(), 8);
}

/// A task awaiting a task: cancelling the outer cancels the inner one's awaited Deferred;
/// the inner task translates, and the outer receives the inner's value.
#[test]
fn cancelling_a_task_that_awaits_a_task_reaches_the_innermost_deferred() {
    let reactor = Reactor::new().unwrap();
    let (leaf, _r) = Deferred::<u32>::pending();
    let inner = reactor.spawn(async move {
        match leaf.await {
            Err(f) if f.is::<Cancelled>() => Ok::<_, Failure>(1),
            other => other,
        }
    });
    let outer = reactor.spawn(async move { Ok::<_, Failure>(inner.await? + 10) });
    outer.cancel();
    assert_eq!(wait(&reactor, outer).unwrap(), 11);
    assert_eq!(reactor.stats().live_tasks, 0);
}

/// Cancelling twice: the second cancel reaches what the task awaits then. (A second cancel
/// before the task resumed finds the same, already cancelled Deferred: nothing more.)
#[test]
fn cancelling_twice_cancels_what_the_task_awaits_each_time() {
    let reactor = Reactor::new().unwrap();
    let (first, _r1) = Deferred::<u32>::pending();
    let (second, _r2) = Deferred::<u32>::pending();
    let seen = Rc::new(Cell::new(0));
    let s = seen.clone();
    let task = reactor.spawn(async move {
        let mut cancels = 0;
        for d in [first, second] {
            match d.await {
                Err(f) if f.is::<Cancelled>() => cancels += 1,
                other => return other,
            }
            s.set(cancels);
        }
        Ok::<_, Failure>(cancels)
    });
    task.cancel();
    task.cancel();
    turns_until(&reactor, || seen.get() == 1);
    assert!(!task.is_called(), "the task awaits its second Deferred");
    task.cancel();
    assert_eq!(wait(&reactor, task).unwrap(), 2);
}

/// Cancelling a task that has finished changes nothing.
#[test]
fn cancelling_a_finished_task_keeps_its_result() {
    let reactor = Reactor::new().unwrap();
    let (awaited, r) = Deferred::<u32>::pending();
    let mut task = reactor.spawn(async move { Ok::<_, Failure>(awaited.await? * 2) });
    r.callback(5).unwrap();
    turns_until(&reactor, || task.is_called());
    task.cancel();
    assert_eq!(task.try_result().unwrap().unwrap(), 10);
}

/// A task that awaits no Deferred is dropped, as before: its Deferred errbacks with
/// `Cancelled` at once.
#[test]
fn cancelling_a_task_that_awaits_no_deferred_drops_it() {
    let reactor = Reactor::new().unwrap();
    let task = reactor.spawn(async move {
        std::future::pending::<()>().await;
        Ok::<_, Failure>(())
    });
    assert_eq!(reactor.stats().live_tasks, 1);
    task.cancel();
    assert_eq!(reactor.stats().live_tasks, 0);
    assert!(wait(&reactor, task).unwrap_err().is::<Cancelled>());
}
