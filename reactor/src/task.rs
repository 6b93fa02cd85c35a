//! Cooperative multitasking: the `async` tasks of a reactor. A spawned future is a
//! Deferred, and a Deferred is a future.
//!
//! [`Tasks`] is a value the reactor owns: a slab of boxed futures and the keys of those
//! woken since the last turn. A task's waker holds its key and the reactor's
//! cross-thread queue (anything that is [`WakeTask`]); waking it queues the key there
//! once, and the reactor's turn hands the key back to [`Tasks::wake`], then polls every
//! woken task once ([`Tasks::run_ready`]).
//!
//! Cancelling a task (Twisted's cancel of an `ensureDeferred` / `inlineCallbacks`
//! Deferred) cancels the Deferred the task awaits, and the task resumes at its `.await`
//! with that Deferred's result (`Cancelled`, or what its canceller gave): it can catch it,
//! clean up and return a value, which its own Deferred fires with. A task that awaits no
//! Deferred (a socket, a timer future) is dropped, and its Deferred errbacks with
//! `Cancelled`. Which Deferred a task awaits is noted by the Deferred itself when it
//! answers `Pending` ([`swap_last_awaited`]); a poll only clears the note before and reads
//! it after, so tasks that are never cancelled pay two thread-local accesses per poll.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use futures::FutureExt;
use ropewalk_deferred::{
    swap_last_awaited, CancelHandle, Deferred, Failure, IntoOutcome, Resolver,
};

use crate::slab::{Key, Slab};

/// Where a woken task's key goes: the reactor's cross-thread queue.
pub(crate) trait WakeTask: Send + Sync + 'static {
    /// Queues `key` for the reactor's next turn, waking the reactor if it sleeps.
    fn wake_task(&self, key: Key);
}

/// A boxed task, as the slab holds it.
type TaskFuture = Pin<Box<dyn Future<Output = ()>>>;

struct TaskSlot<W> {
    /// `None` while the task is being polled.
    future: Option<TaskFuture>,
    waker: Arc<TaskWaker<W>>,
    /// Cancelled while being polled: drop it when the poll returns.
    cancelled: bool,
    /// The Deferred the task awaits, as of its last poll (`None`: none, or something else).
    awaited: Option<CancelHandle>,
}

struct TaskWaker<W> {
    key: Key,
    sink: Arc<W>,
    scheduled: AtomicBool,
}

impl<W: WakeTask> Wake for TaskWaker<W> {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if !self.scheduled.swap(true, Ordering::AcqRel) {
            self.sink.wake_task(self.key);
        }
    }
}

/// A reactor's spawned tasks.
pub(crate) struct Tasks<W> {
    slots: RefCell<Slab<TaskSlot<W>>>,
    /// Woken since the last turn: polled in the next.
    ready: RefCell<Vec<Key>>,
}

impl<W: WakeTask> Tasks<W> {
    pub(crate) fn new() -> Tasks<W> {
        Tasks {
            slots: RefCell::new(Slab::new()),
            ready: RefCell::new(Vec::new()),
        }
    }

    /// Tasks not yet finished.
    pub(crate) fn len(&self) -> usize {
        self.slots.borrow().len()
    }

    /// Whether a woken task waits for its poll.
    pub(crate) fn has_ready(&self) -> bool {
        !self.ready.borrow().is_empty()
    }

    /// The key the next [`insert`](Self::insert) will take.
    pub(crate) fn next_key(&self) -> Key {
        self.slots.borrow().next_key()
    }

    /// Adds a task under `key` (from [`next_key`](Self::next_key)); its waker queues
    /// it through `sink`.
    pub(crate) fn insert(&self, key: Key, future: TaskFuture, sink: &Arc<W>) {
        let waker = Arc::new(TaskWaker {
            key,
            sink: sink.clone(),
            scheduled: AtomicBool::new(false),
        });
        let inserted = self.slots.borrow_mut().insert(TaskSlot {
            future: Some(future),
            waker,
            cancelled: false,
            awaited: None,
        });
        debug_assert_eq!(inserted, key);
    }

    /// Cancels the task `key`: cancels the Deferred it awaits and returns `true` (the task
    /// goes on, and fires its own Deferred), or, if it awaits none, drops it (at once, or
    /// when its poll on the stack returns) and returns `false`.
    pub(crate) fn cancel(&self, key: Key) -> bool {
        let (dropped, awaited) = {
            let mut slots = self.slots.borrow_mut();
            match slots.get_mut(key) {
                Some(slot) if slot.future.is_none() => {
                    slot.cancelled = true;
                    (None, None)
                }
                Some(slot) => match slot.awaited.clone() {
                    Some(awaited) => (None, Some(awaited)),
                    None => (slots.remove(key), None),
                },
                None => (None, None),
            }
        };
        // Outside the borrow: the future's drop, or the awaited Deferred's canceller and
        // callbacks, may do anything, cancel other tasks included.
        drop(dropped);
        match awaited {
            Some(awaited) => {
                awaited.cancel();
                true
            }
            None => false,
        }
    }

    /// The task `key` was woken: poll it in the next turn.
    pub(crate) fn wake(&self, key: Key) {
        self.ready.borrow_mut().push(key);
    }

    /// Polls the woken tasks, each once. `in_turn` is the reactor's re-entry guard.
    pub(crate) fn run_ready(&self, in_turn: &Cell<bool>) {
        let ready = std::mem::take(&mut *self.ready.borrow_mut());
        for &key in &ready {
            self.poll(key, in_turn);
        }
        let mut spare = ready;
        spare.clear();
        let mut cur = self.ready.borrow_mut();
        if cur.is_empty() {
            *cur = spare;
        }
    }

    /// Polls the task `key` once, if it is still there; drops it when it is done.
    pub(crate) fn poll(&self, key: Key, in_turn: &Cell<bool>) {
        let (mut future, waker) = {
            let mut slots = self.slots.borrow_mut();
            let Some(slot) = slots.get_mut(key) else {
                return; // finished or cancelled since it was woken
            };
            let Some(future) = slot.future.take() else {
                return;
            };
            slot.waker.scheduled.store(false, Ordering::Release);
            (future, Waker::from(slot.waker.clone()))
        };
        let mut cx = Context::from_waker(&waker);
        // A task's first poll runs inside `spawn`, outside any turn: mark it as one, so
        // that `wait()` or `iterate()` in the task fails instead of re-entering the loop.
        let was_in_turn = in_turn.replace(true);
        // Which Deferred the task awaits after this poll (a task spawned inside another
        // task's poll keeps the outer one's note).
        let outer = swap_last_awaited(None);
        // The wrapper catches the user future's panics; this one guards the wrapper itself.
        let done =
            match std::panic::catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(&mut cx))) {
                Ok(Poll::Pending) => false,
                Ok(Poll::Ready(())) => true,
                Err(p) => {
                    log::error!("panic in a task: {}", Failure::from_panic(p));
                    true
                }
            };
        let awaited = swap_last_awaited(outer);
        in_turn.set(was_in_turn);
        let finished = {
            let mut slots = self.slots.borrow_mut();
            match slots.get_mut(key) {
                Some(slot) if !done && !slot.cancelled => {
                    slot.future = Some(future);
                    slot.awaited = awaited;
                    None
                }
                Some(_) => {
                    slots.remove(key);
                    Some(future)
                }
                None => Some(future),
            }
        };
        drop(finished);
    }
}

/// `future` as a task: its outcome (or its panic, as a failure) goes to `resolver`.
pub(crate) fn task_future<T, R, F>(future: F, resolver: Resolver<T>) -> TaskFuture
where
    T: 'static,
    R: IntoOutcome<T> + 'static,
    F: Future<Output = R> + 'static,
{
    Box::pin(async move {
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
    })
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
///
/// # Examples
///
/// ```
/// use ropewalk_reactor::{yield_now, Reactor, YieldNow};
///
/// let reactor = Reactor::new()?;
/// let d = reactor.spawn(async {
///     let turn: YieldNow = yield_now();
///     turn.await; // other work on the reactor runs before this task goes on
///     Ok(())
/// });
/// d.wait().unwrap();
/// # Ok::<(), std::io::Error>(())
/// ```
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
