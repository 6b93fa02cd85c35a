//! `DeferredLock`, `DeferredSemaphore` and `DeferredQueue`: Twisted's
//! `OtherPrimitivesTests` (twisted/test/test_defer.py), ported, plus what Rust adds:
//! guards, dropped waiters, panics in `run`, and use from async tasks.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use futures::executor::LocalPool;
use futures::task::{noop_waker, LocalSpawnExt};
use ropewalk_deferred::{
    Cancelled, Deferred, DeferredLock, DeferredQueue, DeferredSemaphore, Failure, InvalidTokens,
    LockGuard, Panicked, Permit, QueueOverflow, QueueUnderflow, ResolverDropped,
};

/// Lets a Deferred go: its callbacks still run when it fires (dropping a Deferred that
/// was never polled does not cancel it).
fn detach<T: 'static>(_d: Deferred<T>) {}

/// Guards taken by callbacks, released in order as Twisted's `release()` would.
struct Held<G>(Rc<RefCell<VecDeque<G>>>);

impl<G: 'static> Held<G> {
    fn new() -> Held<G> {
        Held(Rc::new(RefCell::new(VecDeque::new())))
    }

    /// A callback that counts one and keeps the guard (Twisted's `_incr`, with the
    /// lock held until `release`).
    fn incr(&self, counter: &Rc<Cell<usize>>) -> impl FnOnce(G) -> Result<(), Failure> {
        let (held, counter) = (self.0.clone(), counter.clone());
        move |g| {
            counter.set(counter.get() + 1);
            held.borrow_mut().push_back(g);
            Ok(())
        }
    }

    /// Twisted's `lock.release()`: drops the oldest guard (outside the borrow, since the
    /// hand-on runs the next waiter's callback, which may keep its guard here).
    fn release(&self) {
        let g = self.0.borrow_mut().pop_front().expect("a guard is held");
        drop(g);
    }
}

/// Twisted: OtherPrimitivesTests.testLock
///
/// `lock.run()` with no function (`TypeError` in Twisted) does not compile here.
#[test]
fn lock() {
    let lock = DeferredLock::new();
    let counter = Rc::new(Cell::new(0));
    let held = Held::<LockGuard>::new();

    detach(lock.acquire().add_callback(held.incr(&counter)));
    assert!(lock.locked());
    assert_eq!(counter.get(), 1);

    detach(lock.acquire().add_callback(held.incr(&counter)));
    assert!(lock.locked());
    assert_eq!(counter.get(), 1);

    held.release();
    assert!(lock.locked());
    assert_eq!(counter.get(), 2);

    held.release();
    assert!(!lock.locked());
    assert_eq!(counter.get(), 2);

    let result = Rc::new(RefCell::new(None::<&str>));
    let (control, control_r) = Deferred::<&str>::pending();
    let r = result.clone();
    let result_d = lock.run(move || {
        *r.borrow_mut() = Some("first");
        control
    });
    assert!(lock.locked());
    assert_eq!(*result.borrow(), Some("first"));

    let r = result.clone();
    detach(result_d.add_callback(move |v| {
        *r.borrow_mut() = Some(v);
        Ok(())
    }));

    detach(lock.acquire().add_callback(held.incr(&counter)));
    assert!(lock.locked());
    assert_eq!(counter.get(), 2);

    control_r.callback("second").unwrap();
    assert_eq!(*result.borrow(), Some("second"));
    assert!(lock.locked());
    assert_eq!(counter.get(), 3);

    let failure = Rc::new(RefCell::new(None::<Failure>));
    let f = failure.clone();
    let d = lock.acquire().add_both(move |r| {
        *f.borrow_mut() = r.err();
        Ok(())
    });
    d.cancel();
    assert!(failure.borrow().as_ref().unwrap().is::<Cancelled>());

    held.release();
    assert!(!lock.locked());
}

/// Twisted: OtherPrimitivesTests.test_cancelLockAfterAcquired
#[test]
fn cancel_lock_after_acquired() {
    let lock = DeferredLock::new();
    let d = lock
        .acquire()
        .add_errback(|f| -> Result<LockGuard, Failure> { panic!("unexpected errback: {f}") });
    d.cancel();
    assert!(lock.locked());
    drop(d.wait().unwrap());
    assert!(!lock.locked());
}

/// Twisted: OtherPrimitivesTests.test_cancelLockBeforeAcquired
#[test]
fn cancel_lock_before_acquired() {
    let lock = DeferredLock::new();
    let _held = lock.acquire();
    let d = lock.acquire();
    d.cancel();
    assert!(d.wait().unwrap_err().is::<Cancelled>());
    assert_eq!(lock.waiting(), 0);
}

/// Twisted: OtherPrimitivesTests.testSemaphore
#[test]
fn semaphore() {
    const N: usize = 13;
    let sem = DeferredSemaphore::new(N).unwrap();
    let counter = Rc::new(Cell::new(0));

    let (control, control_r) = Deferred::<()>::pending();
    let helper_arg = Rc::new(Cell::new(None));
    let results = Rc::new(RefCell::new(Vec::new()));
    let arg = helper_arg.clone();
    let (res, c) = (results.clone(), counter.clone());
    detach(
        sem.run(move || {
            arg.set(Some("unique"));
            control
        })
        .add_callback(move |v| {
            res.borrow_mut().push(v);
            c.set(c.get() + 1);
            Ok(())
        }),
    );
    assert!(results.borrow().is_empty());
    assert_eq!(helper_arg.get(), Some("unique"));
    control_r.callback(()).unwrap();
    assert_eq!(results.borrow_mut().pop(), Some(()));
    assert_eq!(counter.get(), 1);

    counter.set(0);
    let held = Held::<Permit>::new();
    for i in 1..=N {
        detach(sem.acquire().add_callback(held.incr(&counter)));
        assert_eq!(counter.get(), i);
    }

    let success = Rc::new(RefCell::new(Vec::new()));
    let (s1, s2) = (success.clone(), success.clone());
    let d = sem.acquire().add_callbacks(
        move |_permit| {
            s1.borrow_mut().push(false);
            Ok(())
        },
        move |_f| {
            s2.borrow_mut().push(true);
            Ok(())
        },
    );
    d.cancel();
    assert_eq!(*success.borrow(), [true]);

    detach(sem.acquire().add_callback(held.incr(&counter)));
    assert_eq!(counter.get(), N);

    held.release();
    assert_eq!(counter.get(), N + 1);

    for _ in 1..=N {
        held.release();
        assert_eq!(counter.get(), N + 1);
    }
    assert_eq!(sem.tokens(), N);
}

/// Twisted: OtherPrimitivesTests.test_semaphoreInvalidTokens
///
/// Twisted's `-1` case is ruled out by the type (`usize`).
#[test]
fn semaphore_invalid_tokens() {
    assert_eq!(DeferredSemaphore::new(0).unwrap_err(), InvalidTokens);
    assert_eq!(DeferredSemaphore::new(1).unwrap().limit(), 1);
}

/// Twisted: OtherPrimitivesTests.test_cancelSemaphoreAfterAcquired
#[test]
fn cancel_semaphore_after_acquired() {
    let sem = DeferredSemaphore::new(1).unwrap();
    let d = sem
        .acquire()
        .add_errback(|f| -> Result<Permit, Failure> { panic!("unexpected errback: {f}") });
    d.cancel();
    assert_eq!(sem.tokens(), 0);
    drop(d.wait().unwrap());
    assert_eq!(sem.tokens(), 1);
}

/// Twisted: OtherPrimitivesTests.test_cancelSemaphoreBeforeAcquired
#[test]
fn cancel_semaphore_before_acquired() {
    let sem = DeferredSemaphore::new(1).unwrap();
    let _held = sem.acquire();
    let d = sem.acquire();
    d.cancel();
    assert!(d.wait().unwrap_err().is::<Cancelled>());
    assert_eq!(sem.waiting(), 0);
}

fn push_to(gotten: &Rc<RefCell<Vec<i32>>>) -> impl FnOnce(i32) -> Result<(), Failure> {
    let gotten = gotten.clone();
    move |v| {
        gotten.borrow_mut().push(v);
        Ok(())
    }
}

/// Twisted: OtherPrimitivesTests.testQueue
#[test]
fn queue() {
    const N: i32 = 2;
    const M: usize = 2;
    let queue = DeferredQueue::with_limits(Some(N as usize), Some(M));
    let gotten = Rc::new(RefCell::new(Vec::new()));

    for _ in 0..M {
        detach(queue.get().unwrap().add_callback(push_to(&gotten)));
    }
    assert_eq!(queue.get().unwrap_err(), QueueUnderflow);

    for i in 0..M as i32 {
        queue.put(i).unwrap();
        assert_eq!(*gotten.borrow(), (0..=i).collect::<Vec<_>>());
    }
    for i in 0..N {
        queue.put(N + i).unwrap();
        assert_eq!(*gotten.borrow(), (0..M as i32).collect::<Vec<_>>());
    }
    assert_eq!(queue.put(99).unwrap_err().into_inner(), 99);

    gotten.borrow_mut().clear();
    for i in 0..N {
        detach(queue.get().unwrap().add_callback(push_to(&gotten)));
        assert_eq!(*gotten.borrow(), (N..=N + i).collect::<Vec<_>>());
    }

    let queue = DeferredQueue::new();
    gotten.borrow_mut().clear();
    for _ in 0..N {
        detach(queue.get().unwrap().add_callback(push_to(&gotten)));
    }
    for i in 0..N {
        queue.put(i).unwrap();
    }
    assert_eq!(*gotten.borrow(), (0..N).collect::<Vec<_>>());

    let queue = DeferredQueue::with_limits(Some(0), None);
    assert!(queue.put(()).is_err());

    let queue = DeferredQueue::<()>::with_limits(None, Some(0));
    assert_eq!(queue.get().unwrap_err(), QueueUnderflow);
}

/// Twisted: OtherPrimitivesTests.test_cancelQueueAfterSynchronousGet
#[test]
fn cancel_queue_after_synchronous_get() {
    let queue = DeferredQueue::new();
    let d = queue
        .get()
        .unwrap()
        .add_errback(|f| -> Result<(), Failure> { panic!("unexpected errback: {f}") });
    queue.put(()).unwrap();
    d.cancel();
    d.wait().unwrap();
}

/// Twisted: OtherPrimitivesTests.test_cancelQueueAfterGet
#[test]
fn cancel_queue_after_get() {
    let queue = DeferredQueue::<()>::new();
    let d = queue.get().unwrap();
    d.cancel();
    let trapped = Rc::new(Cell::new(false));
    let t = trapped.clone();
    let d = d.add_errback(move |f| {
        f.trap::<Cancelled>()?;
        t.set(true);
        Ok(())
    });
    assert!(trapped.get());

    // Still linked to the queue, the cancelled Deferred would be fired again here.
    let q = queue.clone();
    let d = d.add_callback(move |()| {
        q.put(()).unwrap();
        q.get().unwrap()
    });
    let done = Rc::new(Cell::new(0));
    let dn = done.clone();
    detach(d.add_callback(move |()| {
        dn.set(dn.get() + 1);
        Ok(())
    }));
    assert_eq!(done.get(), 1);
}

/// `run` releases when `f` fails, at once or later.
#[test]
fn run_releases_on_failure() {
    let lock = DeferredLock::new();
    let d = lock.run(|| -> Result<(), Failure> { Err(Failure::msg("now")) });
    assert!(!lock.locked());
    assert_eq!(d.wait().unwrap_err().to_string(), "now");

    let (inner, r) = Deferred::<()>::pending();
    let d = lock.run(move || inner);
    assert!(lock.locked());
    r.errback(Failure::msg("later")).unwrap();
    assert!(!lock.locked());
    assert_eq!(d.wait().unwrap_err().to_string(), "later");

    let sem = DeferredSemaphore::new(2).unwrap();
    let d = sem.run(|| -> Result<(), Failure> { Err(Failure::msg("sem")) });
    assert_eq!(sem.tokens(), 2);
    assert!(d.wait().is_err());
}

/// `run` releases when `f` panics; the panic becomes the failure.
#[test]
fn run_releases_on_panic() {
    let lock = DeferredLock::new();
    let d = lock.run(|| -> Result<(), Failure> { panic!("in run") });
    assert!(!lock.locked());
    let f = d.wait().unwrap_err();
    assert_eq!(f.downcast_ref::<Panicked>().unwrap().message(), "in run");

    let sem = DeferredSemaphore::new(1).unwrap();
    let d = sem.run(|| -> Result<(), Failure> { panic!("in sem run") });
    assert_eq!(sem.tokens(), 1);
    assert!(d.wait().unwrap_err().is_panic());
}

/// Cancelling `run`'s Deferred before the lock comes: `f` never runs. After: the
/// cancel reaches `f`'s Deferred, and the lock is released.
#[test]
fn run_cancelled() {
    let lock = DeferredLock::new();
    let first = lock.acquire().wait().unwrap();
    let ran = Rc::new(Cell::new(false));
    let r = ran.clone();
    let d = lock.run(move || {
        r.set(true);
        Ok(())
    });
    d.cancel();
    drop(first);
    assert!(!ran.get());
    assert!(!lock.locked());
    assert!(d.wait().unwrap_err().is::<Cancelled>());

    let (inner, _r) = Deferred::<()>::pending();
    let d = lock.run(move || inner);
    assert!(lock.locked());
    d.cancel();
    assert!(!lock.locked());
    assert!(d.wait().unwrap_err().is::<Cancelled>());
}

/// Waiters get the lock in the order they asked, and one that asks again from its
/// callback, after releasing, goes to the back of the line.
#[test]
fn lock_is_fifo_under_contention() {
    let lock = DeferredLock::new();
    let first = lock.acquire().wait().unwrap();
    let order = Rc::new(RefCell::new(Vec::new()));
    for i in 0..5 {
        let (o, l) = (order.clone(), lock.clone());
        detach(lock.acquire().add_callback(move |g| {
            o.borrow_mut().push(i);
            drop(g);
            if i == 0 {
                let o = o.clone();
                detach(l.acquire().add_callback(move |g| {
                    o.borrow_mut().push(100);
                    drop(g);
                    Ok(())
                }));
            }
            Ok(())
        }));
    }
    assert_eq!(lock.waiting(), 5);
    drop(first);
    assert_eq!(*order.borrow(), [0, 1, 2, 3, 4, 100]);
    assert!(!lock.locked());
}

/// Tokens go to waiters in order, `limit` at a time.
#[test]
fn semaphore_is_fifo_under_contention() {
    let sem = DeferredSemaphore::new(2).unwrap();
    let order = Rc::new(RefCell::new(Vec::new()));
    let held = Held::<Permit>::new();
    for i in 0..6 {
        let (o, h) = (order.clone(), held.0.clone());
        detach(sem.acquire().add_callback(move |p| {
            o.borrow_mut().push(i);
            h.borrow_mut().push_back(p);
            Ok(())
        }));
    }
    assert_eq!(*order.borrow(), [0, 1]);
    held.release();
    assert_eq!(*order.borrow(), [0, 1, 2]);
    held.release();
    held.release();
    assert_eq!(*order.borrow(), [0, 1, 2, 3, 4]);
    assert_eq!(sem.waiting(), 1);
}

/// A waiter whose Deferred was dropped unobserved gets the lock and gives it up with the
/// Deferred, so the next waiter is not stuck.
#[test]
fn lock_dropped_waiter_does_not_deadlock() {
    let lock = DeferredLock::new();
    let first = lock.acquire().wait().unwrap();
    drop(lock.acquire());
    let third = lock.acquire();
    assert_eq!(lock.waiting(), 2);
    drop(first);
    assert!(third.has_result());
    assert!(lock.locked());
    assert_eq!(lock.waiting(), 0);
    drop(third);
    assert!(!lock.locked());

    let sem = DeferredSemaphore::new(1).unwrap();
    let first = sem.acquire().wait().unwrap();
    drop(sem.acquire());
    drop(first);
    assert_eq!(sem.tokens(), 1);
}

/// A hundred thousand waiters that each release at once are handed the lock in a loop,
/// not by recursion.
#[test]
fn lock_hand_on_does_not_grow_the_stack() {
    std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(|| {
            let lock = DeferredLock::new();
            let first = lock.acquire().wait().unwrap();
            let count = Rc::new(Cell::new(0));
            for _ in 0..100_000 {
                let c = count.clone();
                detach(lock.acquire().add_callback(move |g| {
                    c.set(c.get() + 1);
                    drop(g);
                    Ok(())
                }));
            }
            drop(first);
            assert_eq!(count.get(), 100_000);
            assert!(!lock.locked());
        })
        .unwrap()
        .join()
        .unwrap();
}

/// Guards keep the lock's state alive: waiters get their turn after the last handle goes.
#[test]
fn lock_handles_dropped_while_held() {
    let lock = DeferredLock::new();
    let first = lock.acquire().wait().unwrap();
    let second = lock.acquire();
    drop(lock);
    drop(first);
    assert!(second.wait().is_ok());
}

/// A getter dropped unobserved is skipped: the item goes to the next getter, or is kept.
#[test]
fn queue_skips_dropped_getter() {
    let queue = DeferredQueue::new();
    drop(queue.get().unwrap());
    let second = queue.get().unwrap();
    queue.put(1).unwrap();
    assert_eq!(second.wait().unwrap(), 1);

    drop(queue.get().unwrap());
    queue.put(2).unwrap();
    assert_eq!(queue.len(), 1);
    assert_eq!(queue.get().unwrap().wait().unwrap(), 2);
}

/// Cancelled getters leave the list, so the backlog counts only live ones.
#[test]
fn queue_cancelled_getter_frees_backlog() {
    let queue = DeferredQueue::<u8>::with_limits(None, Some(1));
    let d = queue.get().unwrap();
    assert!(queue.get().is_err());
    d.cancel();
    assert_eq!(queue.waiting(), 0);
    let d = queue.get().unwrap();
    queue.put(7).unwrap();
    assert_eq!(d.wait().unwrap(), 7);
}

/// Getters still waiting when the queue goes away errback with `ResolverDropped`.
#[test]
fn queue_dropped_with_waiting_getters() {
    let queue = DeferredQueue::<u8>::new();
    let d = queue.get().unwrap();
    drop(queue);
    assert!(d.wait().unwrap_err().is::<ResolverDropped>());
}

/// Overflow hands the item back, and converts into a `Failure` without it.
#[test]
fn queue_overflow_keeps_the_item() {
    let queue = DeferredQueue::with_limits(Some(1), None);
    queue.put(Rc::new(1)).unwrap();
    let err = queue.put(Rc::new(2)).unwrap_err();
    assert_eq!(**err.item(), 2);
    let f = Failure::new(err.drop_item());
    assert!(f.is::<QueueOverflow>());
    assert_eq!(f.to_string(), "deferred queue is full");
}

/// Two tasks contend for the lock with `acquire().await`; the second runs when the first
/// drops its guard.
#[test]
fn lock_from_async_tasks() {
    let lock = DeferredLock::new();
    let log = Rc::new(RefCell::new(Vec::new()));
    let (gate, gate_r) = Deferred::<()>::pending();
    let mut pool = LocalPool::new();
    let spawner = pool.spawner();

    let (l, lg) = (lock.clone(), log.clone());
    spawner
        .spawn_local(async move {
            let guard = l.acquire().await.unwrap();
            lg.borrow_mut().push("a in");
            gate.await.unwrap();
            lg.borrow_mut().push("a out");
            drop(guard);
        })
        .unwrap();
    let (l, lg) = (lock.clone(), log.clone());
    spawner
        .spawn_local(async move {
            let guard = l.acquire().await.unwrap();
            lg.borrow_mut().push("b in");
            drop(guard);
        })
        .unwrap();

    pool.run_until_stalled();
    assert_eq!(*log.borrow(), ["a in"]);
    assert!(lock.locked());
    assert_eq!(lock.waiting(), 1);

    gate_r.callback(()).unwrap();
    pool.run_until_stalled();
    assert_eq!(*log.borrow(), ["a in", "a out", "b in"]);
    assert!(!lock.locked());
}

/// Dropping an awaited acquire that still waits (a task given up) leaves the line.
#[test]
fn dropped_acquire_future_leaves_the_line() {
    let sem = DeferredSemaphore::new(1).unwrap();
    let held = sem.acquire().wait().unwrap();
    let mut fut = sem.acquire();
    let waker = noop_waker();
    let mut cx = Context::from_waker(&waker);
    assert!(matches!(Pin::new(&mut fut).poll(&mut cx), Poll::Pending));
    assert_eq!(sem.waiting(), 1);
    drop(fut);
    assert_eq!(sem.waiting(), 0);
    drop(held);
    assert_eq!(sem.tokens(), 1);
}
