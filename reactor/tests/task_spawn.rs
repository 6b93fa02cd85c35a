//! `async` tasks on the reactor (`spawn`, `sleep`, `yield_now`) and `Deferred::wait`
//! driven by the reactor.

mod support;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use ropewalk_reactor::deferred::{Cancelled, Deferred, Failure, Panicked, WaitError};
use ropewalk_reactor::{defer_later, yield_now, Clock, Reactor};

const LIMIT: Duration = Duration::from_secs(10);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Waits for `d` with a bound: a bug fails with `Timeout` instead of hanging.
fn wait<T: 'static>(reactor: &Reactor, d: Deferred<T>) -> Result<T, Failure> {
    d.add_timeout(LIMIT, reactor).wait()
}

fn wait_error(f: &Failure) -> Option<WaitError> {
    f.downcast_ref::<WaitError>().cloned()
}

/// Sets a flag when dropped: shows that a task's future was dropped.
struct DropGuard(Rc<Cell<bool>>);

impl Drop for DropGuard {
    fn drop(&mut self) {
        self.0.set(true);
    }
}

/// Twisted: test_defer.EnsureDeferredTests.test_ensureDeferredCoroutine (already done)
#[test]
fn spawn_of_a_ready_future_is_already_fired() {
    let reactor = Reactor::new().unwrap();
    let mut d = reactor.spawn(async { Ok::<_, Failure>(7) });
    assert_eq!(d.try_result().expect("fired at once").unwrap(), 7);
    assert_eq!(reactor.stats().live_tasks, 0);
    assert_eq!(reactor.stats().turns, 0);
}

#[test]
fn task_awaits_reactor_sleep() {
    let reactor = Reactor::new().unwrap();
    let r = reactor.clone();
    let d = reactor.spawn(async move {
        let start = Instant::now();
        let t0 = r.now();
        r.sleep(ms(20)).await?;
        Ok::<_, Failure>((start.elapsed(), r.now() - t0))
    });
    assert_eq!(reactor.stats().live_tasks, 1);
    let (wall, clock) = wait(&reactor, d).unwrap();
    assert!(
        wall >= ms(20) && clock >= ms(20),
        "woke early: {wall:?} {clock:?}"
    );
    assert_eq!(reactor.stats().live_tasks, 0);
}

#[test]
fn task_awaits_a_deferred_fired_by_call_later() {
    let reactor = Reactor::new().unwrap();
    let (d, resolver) = Deferred::<&str>::pending();
    reactor.call_later(ms(5), move || resolver.callback("fired").unwrap());
    let task = reactor.spawn(async move {
        let s = d.await?;
        Ok::<_, Failure>(s.len())
    });
    assert_eq!(wait(&reactor, task).unwrap(), 5);
}

#[test]
fn task_awaits_defer_to_thread() {
    let reactor = Reactor::new().unwrap();
    let r = reactor.clone();
    let task = reactor.spawn(async move {
        let a = r.defer_to_thread(|| Ok(20)).await?;
        let b = r.defer_to_thread(move || Ok(a + 1)).await?;
        Ok::<_, Failure>(b * 2)
    });
    assert_eq!(wait(&reactor, task).unwrap(), 42);
}

/// A task woken from another thread (a `futures` oneshot sent by a std thread).
#[test]
fn task_woken_from_another_thread() {
    let reactor = Reactor::new().unwrap();
    let (tx, rx) = futures::channel::oneshot::channel::<u32>();
    let task = reactor.spawn(async move { Ok::<_, Failure>(rx.await.map_err(Failure::new)? + 1) });
    assert_eq!(reactor.stats().live_tasks, 1, "the task should wait");
    let sender = std::thread::spawn(move || tx.send(41).unwrap());
    assert_eq!(wait(&reactor, task).unwrap(), 42);
    sender.join().unwrap();
}

/// `yield_now` lets the reactor run other work before the task goes on.
#[test]
fn yield_now_lets_other_work_run() {
    let reactor = Reactor::new().unwrap();
    let log: Rc<RefCell<Vec<&str>>> = Rc::default();
    let l = log.clone();
    reactor.call_soon(move || l.borrow_mut().push("soon"));
    let tasks: Vec<Deferred<()>> = ["a", "b"]
        .into_iter()
        .map(|name| {
            let l = log.clone();
            reactor.spawn(async move {
                l.borrow_mut().push(if name == "a" { "a1" } else { "b1" });
                yield_now().await;
                l.borrow_mut().push(if name == "a" { "a2" } else { "b2" });
                Ok::<_, Failure>(())
            })
        })
        .collect();
    assert_eq!(*log.borrow(), ["a1", "b1"]);
    for t in tasks {
        wait(&reactor, t).unwrap();
    }
    assert_eq!(*log.borrow(), ["a1", "b1", "soon", "a2", "b2"]);
}

/// A task that keeps yielding does not starve timers.
#[test]
fn yielding_task_does_not_starve_timers() {
    let reactor = Reactor::new().unwrap();
    let timer_fired = Rc::new(Cell::new(false));
    let t = timer_fired.clone();
    reactor.call_later(ms(5), move || t.set(true));
    let f = timer_fired.clone();
    let task = reactor.spawn(async move {
        let mut spins = 0u64;
        while !f.get() {
            yield_now().await;
            spins += 1;
        }
        Ok::<_, Failure>(spins)
    });
    assert!(wait(&reactor, task).unwrap() > 0);
}

#[test]
fn task_returning_err_is_a_failed_deferred() {
    let reactor = Reactor::new().unwrap();
    let r = reactor.clone();
    let task = reactor.spawn(async move {
        yield_now().await;
        let n: u32 = "not a number".parse()?;
        r.sleep(ms(1)).await?;
        Ok::<_, Failure>(n)
    });
    let f = wait(&reactor, task).unwrap_err();
    assert!(f.is::<std::num::ParseIntError>(), "{f}");
}

/// A task may end with a Deferred: the spawned Deferred waits on it.
#[test]
#[allow(clippy::async_yields_async)] // yielding a Deferred is what is tested
fn task_returning_a_deferred_is_chained() {
    let reactor = Reactor::new().unwrap();
    let r = reactor.clone();
    let task = reactor.spawn(async move { defer_later(&r, ms(5), || Ok::<_, Failure>("chained")) });
    assert_eq!(wait(&reactor, task).unwrap(), "chained");
}

/// A panicking task fails its Deferred with `Panicked`, and the reactor goes on.
#[test]
fn panicking_task_is_a_panicked_failure() {
    let reactor = Reactor::new().unwrap();
    let immediate = reactor.spawn(async {
        if true {
            panic!("task-panic-now");
        }
        Ok::<u8, Failure>(0)
    });
    let later = reactor.spawn(async {
        yield_now().await;
        if true {
            panic!("task-panic-later");
        }
        Ok::<u8, Failure>(0)
    });
    let f = wait(&reactor, immediate).unwrap_err();
    assert_eq!(
        f.downcast_ref::<Panicked>().map(|p| p.message()),
        Some("task-panic-now")
    );
    let f = wait(&reactor, later).unwrap_err();
    assert_eq!(
        f.downcast_ref::<Panicked>().map(|p| p.message()),
        Some("task-panic-later")
    );
    assert_eq!(reactor.stats().live_tasks, 0);
    let r = reactor.clone();
    let after = reactor.spawn(async move {
        r.sleep(ms(1)).await?;
        Ok::<_, Failure>("still going")
    });
    assert_eq!(wait(&reactor, after).unwrap(), "still going");
}

/// Cancelling the spawned Deferred cancels the Deferred the task awaits; the task resumes
/// with `Cancelled` there, `?` ends it, and its future is dropped.
/// Twisted: test_defer.EnsureDeferredTests / Deferred.fromCoroutine cancellation
#[test]
fn cancel_cancels_what_it_awaits_and_the_task_ends_with_it() {
    let reactor = Reactor::new().unwrap();
    let dropped = Rc::new(Cell::new(false));
    let canceller_ran = Rc::new(Cell::new(false));
    let c = canceller_ran.clone();
    let (inner, _resolver) = Deferred::<u32>::with_canceller(move || {
        c.set(true);
        None
    });
    let guard = DropGuard(dropped.clone());
    let task = reactor.spawn(async move {
        let _guard = guard;
        let n = inner.await?;
        Ok::<_, Failure>(n)
    });
    assert_eq!(reactor.stats().live_tasks, 1);
    task.cancel();
    assert!(
        canceller_ran.get(),
        "the awaited Deferred was not cancelled"
    );
    assert!(wait(&reactor, task).unwrap_err().is::<Cancelled>());
    assert!(dropped.get(), "the future was not dropped");
    assert_eq!(reactor.stats().live_tasks, 0);
}

/// Cancelling a task that waits on a timer cancels the timer.
#[test]
fn cancel_a_sleeping_task_cancels_its_timer() {
    let reactor = Reactor::new().unwrap();
    let r = reactor.clone();
    let task = reactor.spawn(async move {
        r.sleep(Duration::from_secs(3600)).await?;
        Ok::<_, Failure>(())
    });
    assert_eq!(reactor.stats().pending_timers, 1);
    task.cancel();
    assert_eq!(reactor.stats().pending_timers, 0);
    assert!(wait(&reactor, task).unwrap_err().is::<Cancelled>());
}

/// A task that cancels its own Deferred while it runs is dropped when that poll returns.
#[test]
fn task_cancelling_itself_is_dropped_after_its_poll() {
    let reactor = Reactor::new().unwrap();
    let dropped = Rc::new(Cell::new(false));
    let handle: Rc<RefCell<Option<ropewalk_reactor::deferred::CancelHandle>>> = Rc::default();
    let (h, guard) = (handle.clone(), DropGuard(dropped.clone()));
    let after_cancel = Rc::new(Cell::new(false));
    let a = after_cancel.clone();
    let task = reactor.spawn(async move {
        let _guard = guard;
        yield_now().await;
        h.borrow_mut().take().unwrap().cancel();
        yield_now().await;
        a.set(true);
        Ok::<_, Failure>(())
    });
    *handle.borrow_mut() = Some(task.cancel_handle());
    assert!(wait(&reactor, task).unwrap_err().is::<Cancelled>());
    assert!(dropped.get());
    for _ in 0..3 {
        reactor.iterate(Duration::ZERO);
    }
    assert!(!after_cancel.get(), "a cancelled task was polled again");
    assert_eq!(reactor.stats().live_tasks, 0);
}

/// `wait()` inside a task fails with `InsideCallback` rather than re-entering the loop,
/// both on the task's first poll (inside `spawn`) and on a later one (inside a turn).
#[test]
fn wait_inside_a_task_is_inside_callback() {
    let reactor = Reactor::new().unwrap();
    let r = reactor.clone();
    let task = reactor.spawn(async move {
        let first = defer_later(&r, ms(1), || Ok::<_, Failure>(1)).wait();
        yield_now().await;
        let later = defer_later(&r, ms(1), || Ok::<_, Failure>(2)).wait();
        Ok::<_, Failure>((
            first.map_err(|f| wait_error(&f)),
            later.map_err(|f| wait_error(&f)),
        ))
    });
    let (first, later) = wait(&reactor, task).unwrap();
    assert_eq!(
        later,
        Err(Some(WaitError::InsideCallback)),
        "on a later poll"
    );
    assert_eq!(
        first,
        Err(Some(WaitError::InsideCallback)),
        "on the first poll"
    );
}

/// `wait()` inside a reactor callback, a timer and a Deferred callback: `InsideCallback`.
#[test]
fn wait_inside_a_reactor_callback_is_inside_callback() {
    let reactor = Reactor::new().unwrap();
    let seen: Rc<RefCell<Vec<Option<WaitError>>>> = Rc::default();
    let (r, s) = (reactor.clone(), seen.clone());
    reactor.call_soon(move || {
        let e = defer_later(&r, ms(1), || Ok::<_, Failure>(()))
            .wait()
            .unwrap_err();
        s.borrow_mut().push(wait_error(&e));
    });
    let (r, s) = (reactor.clone(), seen.clone());
    reactor.call_later(Duration::ZERO, move || {
        let e = defer_later(&r, ms(1), || Ok::<_, Failure>(()))
            .wait()
            .unwrap_err();
        s.borrow_mut().push(wait_error(&e));
    });
    let (r, s) = (reactor.clone(), seen.clone());
    let d = Deferred::succeed(()).add_callback(move |()| {
        let e = defer_later(&r, ms(1), || Ok::<_, Failure>(()))
            .wait()
            .unwrap_err();
        s.borrow_mut().push(wait_error(&e));
        Ok(())
    });
    d.wait().unwrap();
    let deadline = Instant::now() + LIMIT;
    while seen.borrow().len() < 3 && Instant::now() < deadline {
        reactor.iterate(ms(10));
    }
    assert_eq!(*seen.borrow(), vec![Some(WaitError::InsideCallback); 3]);
}

/// `wait()` on a Deferred nothing can fire, with a reactor that has no work, returns an
/// error instead of hanging.
/// Twisted: none (a Twisted script would hang in reactor.run())
#[test]
fn wait_with_nothing_to_fire_it_is_reactor_stopped() {
    let got = support::bounded(LIMIT, || {
        let _reactor = Reactor::new().unwrap();
        let (d, _resolver) = Deferred::<u32>::pending();
        d.wait().unwrap_err().downcast_ref::<WaitError>().cloned()
    });
    assert_eq!(got, Some(WaitError::ReactorStopped));
}

/// Same with a task that waits forever: a live task alone cannot fire anything.
#[test]
fn wait_on_a_stuck_task_is_reactor_stopped() {
    let got = support::bounded(LIMIT, || {
        let reactor = Reactor::new().unwrap();
        let (d, resolver) = Deferred::<u32>::pending();
        let task = reactor.spawn(d); // a Deferred is a future
        let got = task
            .wait()
            .unwrap_err()
            .downcast_ref::<WaitError>()
            .cloned();
        drop(resolver);
        got
    });
    assert_eq!(got, Some(WaitError::ReactorStopped));
}

/// Without a reactor on the thread, `wait()` says so.
#[test]
fn wait_without_a_reactor_is_no_reactor() {
    let got = support::bounded(LIMIT, || {
        let (d, _resolver) = Deferred::<u32>::pending();
        d.wait().unwrap_err().downcast_ref::<WaitError>().cloned()
    });
    assert_eq!(got, Some(WaitError::NoReactor));
}

/// The script use: `wait()` runs the reactor's timers until the Deferred fires.
#[test]
fn wait_drives_timers_to_fire_the_deferred() {
    let got = support::bounded(LIMIT, || {
        let reactor = Reactor::new().unwrap();
        let start = Instant::now();
        let r = reactor.clone();
        let d = defer_later(&reactor, ms(10), move || {
            defer_later(&r, ms(10), || Ok::<_, Failure>("script"))
        });
        let v = d.wait().unwrap();
        assert!(!reactor.is_running(), "wait() left the reactor running");
        (v, start.elapsed())
    });
    assert_eq!(got.0, "script");
    assert!(got.1 >= ms(20));
}

/// `wait()` may be used again and again on the same reactor, and with `run()` between.
#[test]
fn wait_repeatedly() {
    let reactor = Reactor::new().unwrap();
    for i in 0..5 {
        assert_eq!(
            wait(
                &reactor,
                reactor.spawn(async move {
                    yield_now().await;
                    Ok::<_, Failure>(i)
                })
            )
            .unwrap(),
            i
        );
    }
    let r = reactor.clone();
    reactor.call_soon(move || r.stop().unwrap());
    reactor.run().unwrap();
    assert_eq!(wait(&reactor, reactor.sleep(ms(1))).unwrap(), ());
}
