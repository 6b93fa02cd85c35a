//! [`Scheduler`]: the small timer interface that [`Deferred::add_timeout`] needs, which the
//! reactor and hand-driven test clocks implement.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::rc::Rc;
use std::time::Duration;

use crate::chain;
use crate::deferred::IntoOutcome;
use crate::error::{Cancelled, Timeout};
use crate::{Deferred, Failure};

/// Runs a function once after a delay: the part of a reactor (or a test clock) that
/// [`Deferred::add_timeout`] needs.
///
/// # Examples
///
/// A hand-driven clock, enough to test timeouts without sleeping:
///
/// ```
/// use std::{cell::RefCell, rc::Rc, time::Duration};
/// use ropewalk_deferred::{Scheduler, ScheduledCall};
///
/// #[derive(Default)]
/// struct Clock { now: RefCell<Duration>, calls: Rc<RefCell<Vec<(Duration, Option<Box<dyn FnOnce()>>)>>> }
/// impl Scheduler for Clock {
///     fn schedule(&self, delay: Duration, f: Box<dyn FnOnce()>) -> ScheduledCall {
///         let calls = self.calls.clone();
///         calls.borrow_mut().push((*self.now.borrow() + delay, Some(f)));
///         let i = calls.borrow().len() - 1;
///         ScheduledCall::new(move || { calls.borrow_mut()[i].1 = None; })
///     }
/// }
/// ```
pub trait Scheduler {
    /// Runs `f` once, `delay` from now, unless the returned call is cancelled first.
    ///
    /// # Examples
    ///
    /// With the reactor's `ManualClock`, one implementation:
    ///
    /// ```
    /// use std::{cell::Cell, rc::Rc, time::Duration};
    /// use ropewalk_deferred::Scheduler;
    /// use ropewalk_reactor::ManualClock;
    ///
    /// let clock = ManualClock::new();
    /// let ran = Rc::new(Cell::new(0));
    /// let r = ran.clone();
    /// let _kept = clock.schedule(Duration::from_secs(1), Box::new(move || r.set(r.get() + 1)));
    /// let r = ran.clone();
    /// let cancelled = clock.schedule(Duration::from_secs(1), Box::new(move || r.set(r.get() + 10)));
    /// cancelled.cancel();
    /// clock.advance(Duration::from_secs(1));
    /// assert_eq!(ran.get(), 1);
    /// ```
    fn schedule(&self, delay: Duration, f: Box<dyn FnOnce()>) -> ScheduledCall;
}

impl<S: Scheduler + ?Sized> Scheduler for &S {
    fn schedule(&self, delay: Duration, f: Box<dyn FnOnce()>) -> ScheduledCall {
        (**self).schedule(delay, f)
    }
}

impl<S: Scheduler + ?Sized> Scheduler for Rc<S> {
    fn schedule(&self, delay: Duration, f: Box<dyn FnOnce()>) -> ScheduledCall {
        (**self).schedule(delay, f)
    }
}

/// A call a [`Scheduler`] will make; [`cancel`](ScheduledCall::cancel) stops it.
///
/// Cancelling a call that already ran must do nothing: implementations make their cancel
/// function harmless after the call.
///
/// # Examples
///
/// ```
/// use std::{cell::Cell, rc::Rc};
/// let cancelled = Rc::new(Cell::new(false));
/// let c = cancelled.clone();
/// ropewalk_deferred::ScheduledCall::new(move || c.set(true)).cancel();
/// assert!(cancelled.get());
/// ```
pub struct ScheduledCall {
    cancel: Box<dyn FnOnce()>,
}

impl ScheduledCall {
    /// A call whose cancellation runs `cancel`.
    ///
    /// # Examples
    ///
    /// ```
    /// let call = ropewalk_deferred::ScheduledCall::new(|| {});
    /// call.cancel();
    /// ```
    pub fn new(cancel: impl FnOnce() + 'static) -> ScheduledCall {
        ScheduledCall {
            cancel: Box::new(cancel),
        }
    }

    /// Cancels the call; nothing if it already ran.
    ///
    /// # Examples
    ///
    /// ```
    /// ropewalk_deferred::ScheduledCall::new(|| {}).cancel();
    /// ```
    pub fn cancel(self) {
        (self.cancel)()
    }
}

impl fmt::Debug for ScheduledCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ScheduledCall")
    }
}

impl<T: 'static> Deferred<T> {
    /// Cancels this Deferred if it has no final result within `timeout`, and turns the
    /// resulting [`Cancelled`] into [`Timeout`] (Twisted's `addTimeout`). A failure that
    /// wraps a `Cancelled` (a [`gather_results`](crate::gather_results) whose members the
    /// timeout cancelled) becomes a `Timeout` too.
    ///
    /// The timeout covers the callbacks added before it: an errback added earlier sees
    /// `Cancelled` (and may recover from it); those added after see `Timeout`. A result
    /// before the deadline cancels the timer. A canceller's own result (see
    /// [`with_canceller`](Self::with_canceller)) is kept unless it is `Cancelled`.
    ///
    /// # Examples
    ///
    /// With the reactor's [`ManualClock`](https://docs.rs/ropewalk-reactor/latest/ropewalk_reactor/struct.ManualClock.html),
    /// time passes only when the test says so (a running reactor works the same way, in
    /// real time):
    ///
    /// ```
    /// use std::time::Duration;
    /// use ropewalk_deferred::{Deferred, Timeout};
    /// use ropewalk_reactor::ManualClock;
    ///
    /// let clock = ManualClock::new();
    /// let (d, _resolver) = Deferred::<i32>::pending();
    /// let d = d.add_timeout(Duration::from_secs(10), &clock);
    /// clock.advance(Duration::from_secs(9));
    /// assert!(!d.is_called());
    /// clock.advance(Duration::from_secs(1)); // ten seconds have passed
    /// assert!(d.wait().unwrap_err().is::<Timeout>());
    ///
    /// // A result in time cancels the timer.
    /// let (d, resolver) = Deferred::<i32>::pending();
    /// let d = d.add_timeout(Duration::from_secs(10), &clock);
    /// resolver.callback(7).unwrap();
    /// assert!(clock.delayed_calls().is_empty());
    /// assert_eq!(d.wait().unwrap(), 7);
    /// ```
    pub fn add_timeout(
        self,
        timeout: Duration,
        scheduler: &(impl Scheduler + ?Sized),
    ) -> Deferred<T> {
        self.add_timeout_with(
            timeout,
            scheduler,
            move |result: Result<T, Failure>, t| match result {
                // Also a cancellation the timeout caused further in (a gathered member).
                Err(f) if f.find::<Cancelled>().is_some() => Err(Failure::new(Timeout(t))),
                other => other,
            },
        )
    }

    /// As [`add_timeout`](Self::add_timeout), but when the deadline passed, `on_timeout`
    /// turns the result (usually a `Cancelled` failure) into the Deferred's new result
    /// (Twisted's `onTimeoutCancel`).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use ropewalk_deferred::Deferred;
    /// use ropewalk_reactor::ManualClock;
    ///
    /// let clock = ManualClock::new();
    /// let (d, _resolver) = Deferred::<&str>::pending();
    /// let d = d.add_timeout_with(Duration::from_secs(1), &clock, |_, _| Ok("default"));
    /// clock.advance(Duration::from_secs(1));
    /// assert_eq!(d.wait().unwrap(), "default");
    /// ```
    pub fn add_timeout_with<R: IntoOutcome<T>>(
        self,
        timeout: Duration,
        scheduler: &(impl Scheduler + ?Sized),
        on_timeout: impl FnOnce(Result<T, Failure>, Duration) -> R + 'static,
    ) -> Deferred<T> {
        // None: waiting; Some(true): the deadline passed first; Some(false): the result
        // came first, so a timer that still runs (a scheduler that ran it in the same batch
        // as the cancel) must not cancel what the chain waits on by then.
        let state = Rc::new(Cell::new(None::<bool>));
        if self.is_ready() {
            return self;
        }
        let weak = self.chain().expect("not ready: has a chain").downgrade();
        let flag = state.clone();
        let call = scheduler.schedule(
            timeout,
            Box::new(move || {
                if flag.get().is_some() {
                    return;
                }
                flag.set(Some(true));
                if let Some(shared) = weak.upgrade() {
                    chain::cancel(&shared);
                }
            }),
        );
        let call = RefCell::new(Some(call));
        self.add_both(move |result| {
            if state.get() == Some(true) {
                on_timeout(result, timeout).into_outcome()
            } else {
                state.set(Some(false));
                if let Some(call) = call.borrow_mut().take() {
                    call.cancel();
                }
                result.into_outcome()
            }
        })
    }
}
