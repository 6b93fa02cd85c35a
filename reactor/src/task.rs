//! Cooperative multitasking: `async` tasks on the reactor. A spawned future is a
//! Deferred, and a Deferred is a future.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use futures::FutureExt;
use ropewalk_deferred::{Deferred, Failure, IntoOutcome};

use crate::reactor::{Reactor, Remote, RemoteOp};
use crate::slab::Key;
use crate::time::defer_later;

pub(crate) struct TaskSlot {
    /// `None` while the task is being polled.
    future: Option<Pin<Box<dyn Future<Output = ()>>>>,
    waker: Arc<TaskWaker>,
    /// Cancelled while being polled: drop it when the poll returns.
    cancelled: bool,
}

struct TaskWaker {
    key: Key,
    remote: Arc<Remote>,
    scheduled: AtomicBool,
}

impl Wake for TaskWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if !self.scheduled.swap(true, Ordering::AcqRel) {
            self.remote.push(RemoteOp::Wake(self.key));
        }
    }
}

impl Reactor {
    /// Runs a future as a task on this reactor and gives its outcome as a Deferred
    /// (Twisted's `ensureDeferred`).
    ///
    /// The future need not be `Send`. It is polled for the first time at once, so a future
    /// that never waits gives an already-fired Deferred. It may be woken from any thread.
    /// Its output is anything a callback may return: `Ok(value)`, `Err(failure)` (`?`
    /// works on any error) or a Deferred. A panic becomes a failure.
    ///
    /// Cancelling the Deferred drops the future; a Deferred it was awaiting is cancelled
    /// in turn.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use ropewalk_reactor::Reactor;
    ///
    /// let reactor = Reactor::new()?;
    /// let r = reactor.clone();
    /// let d = reactor.spawn(async move {
    ///     r.sleep(Duration::from_millis(5)).await?;
    ///     let n = r.defer_to_thread(|| Ok(2 + 2)).await?;
    ///     Ok(n * 10)
    /// });
    /// assert_eq!(d.wait().unwrap(), 40);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn spawn<T, R, F>(&self, future: F) -> Deferred<T>
    where
        T: 'static,
        R: IntoOutcome<T> + 'static,
        F: Future<Output = R> + 'static,
    {
        let inner = &self.inner;
        let key_cell: Rc<std::cell::Cell<Option<Key>>> = Rc::new(std::cell::Cell::new(None));
        let (weak, kc) = (Rc::downgrade(inner), key_cell.clone());
        let (d, resolver) = Deferred::<T>::with_canceller(move || {
            if let (Some(inner), Some(key)) = (weak.upgrade(), kc.get()) {
                let dropped = {
                    let mut tasks = inner.tasks.borrow_mut();
                    match tasks.get_mut(key) {
                        Some(slot) if slot.future.is_none() => {
                            slot.cancelled = true;
                            None
                        }
                        Some(_) => tasks.remove(key),
                        None => None,
                    }
                };
                // Dropped outside the borrow: the future's drop may cancel Deferreds.
                drop(dropped);
            }
            None
        });
        let wrapped = async move {
            let result = AssertUnwindSafe(future).catch_unwind().await;
            match result {
                Ok(out) => {
                    let d: Deferred<T> = ropewalk_deferred::maybe_deferred(move || out);
                    d.chain_deferred(resolver);
                }
                Err(p) => {
                    let _ = resolver.errback(Failure::from_panic(p));
                }
            }
        };
        let key = {
            let mut tasks = inner.tasks.borrow_mut();
            let key = tasks.next_key();
            let waker = Arc::new(TaskWaker {
                key,
                remote: inner.remote.clone(),
                scheduled: AtomicBool::new(false),
            });
            let inserted = tasks.insert(TaskSlot {
                future: Some(Box::pin(wrapped)),
                waker,
                cancelled: false,
            });
            debug_assert_eq!(inserted, key);
            key
        };
        key_cell.set(Some(key));
        poll_task(self, key);
        d
    }

    /// A Deferred that fires with `()` after `duration`: `reactor.sleep(d).await?` in a
    /// task. Cancelling it cancels the timer.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    ///
    /// let reactor = ropewalk_reactor::Reactor::new()?;
    /// let start = Instant::now();
    /// reactor.sleep(Duration::from_millis(20)).wait().unwrap();
    /// assert!(start.elapsed() >= Duration::from_millis(20));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn sleep(&self, duration: Duration) -> Deferred<()> {
        defer_later(self, duration, || Ok(()))
    }
}

/// A future that is pending once, letting the reactor run other work, then ready.
///
/// # Examples
///
/// ```
/// use ropewalk_reactor::{yield_now, Reactor};
///
/// let reactor = Reactor::new()?;
/// let d = reactor.spawn(async {
///     yield_now().await;
///     Ok(1)
/// });
/// assert_eq!(d.wait().unwrap(), 1);
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn yield_now() -> YieldNow {
    YieldNow { yielded: false }
}

/// The future returned by [`yield_now`].
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct YieldNow {
    yielded: bool,
}

impl Future for YieldNow {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.yielded {
            Poll::Ready(())
        } else {
            self.yielded = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

/// Polls the woken tasks, each once.
pub(crate) fn run_ready(reactor: &Reactor) {
    let ready = std::mem::take(&mut *reactor.inner.ready.borrow_mut());
    for &key in &ready {
        poll_task(reactor, key);
    }
    let mut spare = ready;
    spare.clear();
    let mut cur = reactor.inner.ready.borrow_mut();
    if cur.is_empty() {
        *cur = spare;
    }
}

fn poll_task(reactor: &Reactor, key: Key) {
    let inner = &reactor.inner;
    let (mut future, waker) = {
        let mut tasks = inner.tasks.borrow_mut();
        let Some(slot) = tasks.get_mut(key) else {
            return; // finished or cancelled since it was woken
        };
        let Some(future) = slot.future.take() else {
            return;
        };
        slot.waker.scheduled.store(false, Ordering::Release);
        (future, Waker::from(slot.waker.clone()))
    };
    let mut cx = Context::from_waker(&waker);
    // A task's first poll runs inside `spawn`, outside any turn: mark it as one, so that
    // `wait()` or `iterate()` in the task fails instead of re-entering the loop.
    let was_in_turn = inner.in_turn.replace(true);
    // The wrapper catches the user future's panics; this one guards the wrapper itself.
    let done = match std::panic::catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(&mut cx))) {
        Ok(Poll::Pending) => false,
        Ok(Poll::Ready(())) => true,
        Err(p) => {
            log::error!("panic in a task: {}", Failure::from_panic(p));
            true
        }
    };
    inner.in_turn.set(was_in_turn);
    let finished = {
        let mut tasks = inner.tasks.borrow_mut();
        match tasks.get_mut(key) {
            Some(slot) if !done && !slot.cancelled => {
                slot.future = Some(future);
                None
            }
            Some(_) => {
                tasks.remove(key);
                Some(future)
            }
            None => Some(future),
        }
    };
    drop(finished);
}
