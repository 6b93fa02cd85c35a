//! [`LoopingCall`]: call a function every interval (Twisted's `task.LoopingCall`).

use std::cell::{Cell, RefCell};
use std::fmt;
use std::rc::Rc;
use std::time::Duration;

use ropewalk_deferred::{maybe_deferred, Deferred, Failure, IntoOutcome, Outcome, Resolver};

use crate::time::{Clock, DelayedCall};

/// Why a [`LoopingCall`] could not start or stop.
///
/// # Examples
///
/// ```
/// use ropewalk_reactor::{LoopError, LoopingCall, ManualClock};
///
/// let lc = LoopingCall::new(&ManualClock::new(), || Ok(()));
/// assert_eq!(lc.stop().unwrap_err(), LoopError::NotRunning);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LoopError {
    /// `start` while it is running.
    #[error("the looping call is already running")]
    AlreadyRunning,
    /// `stop` or `reset` while it is not running.
    #[error("the looping call is not running")]
    NotRunning,
}

type Body = Box<dyn FnMut(u64) -> Outcome<()>>;

/// A looping call's body, clock and schedule, shared by its handles.
struct LoopState {
    clock: Rc<dyn Clock>,
    f: RefCell<Body>,
    running: Cell<bool>,
    interval: Cell<Duration>,
    start: Cell<Duration>,
    last_tick: Cell<i128>,
    call: RefCell<Option<DelayedCall>>,
    done: RefCell<Option<Resolver<()>>>,
    calls: Cell<u64>,
}

/// Calls a function every `interval` on a [`Clock`]: Twisted's `task.LoopingCall`.
///
/// - [`start`](Self::start) returns a Deferred that fires when [`stop`](Self::stop) is
///   called, and errbacks (stopping the loop) when the function fails or panics.
/// - If the function returns a Deferred, the next call waits until it fires.
/// - Missed intervals are skipped: after a slow call or a clock jump, the next call goes to
///   the next multiple of `interval` after the start (Twisted's `test_callbackTimeSkips`).
///   [`with_count`](Self::with_count) tells the function how many intervals passed.
///
/// A `LoopingCall` is a cheap handle; `Clone` shares it.
///
/// # Examples
///
/// ```
/// use std::{cell::Cell, rc::Rc, time::Duration};
/// use ropewalk_reactor::{LoopingCall, ManualClock};
///
/// let clock = ManualClock::new();
/// let ticks = Rc::new(Cell::new(0));
/// let t = ticks.clone();
/// let lc = LoopingCall::new(&clock, move || { t.set(t.get() + 1); Ok(()) });
/// let done = lc.start(Duration::from_secs(1), true).unwrap();
/// assert_eq!(ticks.get(), 1); // `now`: called at once
/// clock.pump(&[Duration::from_secs(1); 3]);
/// assert_eq!(ticks.get(), 4);
/// lc.stop().unwrap();
/// assert!(done.wait().is_ok());
/// ```
#[derive(Clone)]
pub struct LoopingCall {
    inner: Rc<LoopState>,
}

impl LoopingCall {
    /// A looping call of `f` on `clock` (a [`Reactor`](crate::Reactor) or a
    /// [`ManualClock`](crate::ManualClock)); it does nothing until started.
    ///
    /// # Examples
    ///
    /// ```
    /// use ropewalk_reactor::{LoopingCall, ManualClock};
    /// let lc = LoopingCall::new(&ManualClock::new(), || Ok(()));
    /// assert!(!lc.is_running());
    /// ```
    pub fn new<R: IntoOutcome<()> + 'static>(
        clock: &(impl Clock + Clone + 'static),
        mut f: impl FnMut() -> R + 'static,
    ) -> LoopingCall {
        LoopingCall::build(clock, Box::new(move |_| f().into_outcome()))
    }

    /// As [`new`](Self::new), but `f` gets the number of intervals that passed since its
    /// last call (1 unless intervals were skipped).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::{cell::RefCell, rc::Rc, time::Duration};
    /// use ropewalk_reactor::{LoopingCall, ManualClock};
    ///
    /// let clock = ManualClock::new();
    /// let counts = Rc::new(RefCell::new(vec![]));
    /// let c = counts.clone();
    /// let lc = LoopingCall::with_count(&clock, move |n| { c.borrow_mut().push(n); Ok(()) });
    /// lc.start(Duration::from_secs(1), true).unwrap();
    /// clock.advance(Duration::from_secs(3)); // two intervals missed
    /// assert_eq!(*counts.borrow(), vec![1, 3]);
    /// ```
    pub fn with_count<R: IntoOutcome<()> + 'static>(
        clock: &(impl Clock + Clone + 'static),
        mut f: impl FnMut(u64) -> R + 'static,
    ) -> LoopingCall {
        LoopingCall::build(clock, Box::new(move |n| f(n).into_outcome()))
    }

    fn build(clock: &(impl Clock + Clone + 'static), f: Body) -> LoopingCall {
        LoopingCall {
            inner: Rc::new(LoopState {
                clock: Rc::new(clock.clone()),
                f: RefCell::new(f),
                running: Cell::new(false),
                interval: Cell::new(Duration::ZERO),
                start: Cell::new(Duration::ZERO),
                last_tick: Cell::new(0),
                call: RefCell::new(None),
                done: RefCell::new(None),
                calls: Cell::new(0),
            }),
        }
    }

    /// Starts calling every `interval`; at once too if `now`. With a zero interval it runs
    /// once per reactor turn.
    ///
    /// # Errors
    ///
    /// [`LoopError::AlreadyRunning`] if it is running.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use ropewalk_reactor::{LoopError, LoopingCall, ManualClock};
    ///
    /// let lc = LoopingCall::new(&ManualClock::new(), || Ok(()));
    /// let _done = lc.start(Duration::from_secs(1), false).unwrap();
    /// assert_eq!(lc.start(Duration::from_secs(1), false).unwrap_err(), LoopError::AlreadyRunning);
    /// ```
    pub fn start(&self, interval: Duration, now: bool) -> Result<Deferred<()>, LoopError> {
        let i = &self.inner;
        if i.running.get() {
            return Err(LoopError::AlreadyRunning);
        }
        let (d, r) = Deferred::pending();
        *i.done.borrow_mut() = Some(r);
        i.running.set(true);
        i.interval.set(interval);
        i.start.set(i.clock.now());
        i.last_tick.set(if now { -1 } else { 0 });
        if now {
            self.call_now();
        } else {
            self.schedule_from(i.clock.now());
        }
        Ok(d)
    }

    /// Stops the loop; the Deferred from [`start`](Self::start) fires (at once, or when a
    /// call's pending Deferred fires).
    ///
    /// # Errors
    ///
    /// [`LoopError::NotRunning`] if it is not running.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use ropewalk_reactor::{LoopingCall, ManualClock};
    ///
    /// let lc = LoopingCall::new(&ManualClock::new(), || Ok(()));
    /// let done = lc.start(Duration::from_secs(1), false).unwrap();
    /// lc.stop().unwrap();
    /// assert!(done.wait().is_ok());
    /// ```
    pub fn stop(&self) -> Result<(), LoopError> {
        let i = &self.inner;
        if !i.running.get() {
            return Err(LoopError::NotRunning);
        }
        i.running.set(false);
        if let Some(call) = i.call.borrow_mut().take() {
            let _ = call.cancel();
            self.finish(Ok(()));
        }
        Ok(())
    }

    /// Restarts the interval from now, skipping the call that was due.
    ///
    /// # Errors
    ///
    /// [`LoopError::NotRunning`] if it is not running.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::{cell::Cell, rc::Rc, time::Duration};
    /// use ropewalk_reactor::{Clock, LoopingCall, ManualClock};
    ///
    /// let clock = ManualClock::new();
    /// let n = Rc::new(Cell::new(0));
    /// let c = n.clone();
    /// let lc = LoopingCall::new(&clock, move || { c.set(c.get() + 1); Ok(()) });
    /// lc.start(Duration::from_secs(2), false).unwrap();
    /// clock.advance(Duration::from_secs(1));
    /// lc.reset().unwrap();
    /// clock.advance(Duration::from_secs(1));
    /// assert_eq!(n.get(), 0);
    /// clock.advance(Duration::from_secs(1));
    /// assert_eq!(n.get(), 1);
    /// ```
    pub fn reset(&self) -> Result<(), LoopError> {
        let i = &self.inner;
        if !i.running.get() {
            return Err(LoopError::NotRunning);
        }
        if let Some(call) = i.call.borrow_mut().take() {
            let _ = call.cancel();
        }
        i.start.set(i.clock.now());
        i.last_tick.set(0);
        self.schedule_from(i.clock.now());
        Ok(())
    }

    /// Whether it is running.
    ///
    /// # Examples
    ///
    /// ```
    /// use ropewalk_reactor::{LoopingCall, ManualClock};
    /// assert!(!LoopingCall::new(&ManualClock::new(), || Ok(())).is_running());
    /// ```
    pub fn is_running(&self) -> bool {
        self.inner.running.get()
    }

    /// The interval it was started with.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use ropewalk_reactor::{LoopingCall, ManualClock};
    ///
    /// let lc = LoopingCall::new(&ManualClock::new(), || Ok(()));
    /// let _d = lc.start(Duration::from_secs(5), false).unwrap();
    /// assert_eq!(lc.interval(), Duration::from_secs(5));
    /// ```
    pub fn interval(&self) -> Duration {
        self.inner.interval.get()
    }

    /// How many times the function has been called.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use ropewalk_reactor::{LoopingCall, ManualClock};
    ///
    /// let lc = LoopingCall::new(&ManualClock::new(), || Ok(()));
    /// let _d = lc.start(Duration::from_secs(5), true).unwrap();
    /// assert_eq!(lc.call_count(), 1);
    /// ```
    pub fn call_count(&self) -> u64 {
        self.inner.calls.get()
    }

    fn finish(&self, result: Result<(), Failure>) {
        if let Some(r) = self.inner.done.borrow_mut().take() {
            let _ = r.resolve(result);
        }
    }

    fn tick_of(&self, t: Duration) -> i128 {
        let i = &self.inner;
        let interval = i.interval.get().as_nanos() as i128;
        if interval == 0 {
            return i.last_tick.get() + 1;
        }
        (t.saturating_sub(i.start.get())).as_nanos() as i128 / interval
    }

    fn call_now(&self) {
        let i = &self.inner;
        *i.call.borrow_mut() = None;
        let tick = self.tick_of(i.clock.now()).max(i.last_tick.get() + 1);
        let count = (tick - i.last_tick.get()).max(1) as u64;
        i.last_tick.set(tick);
        i.calls.set(i.calls.get() + 1);
        let this = self.clone();
        let d = maybe_deferred(|| {
            let mut f = this.inner.f.borrow_mut();
            (f)(count)
        });
        let (ok, err) = (self.clone(), self.clone());
        d.add_callbacks(
            move |()| {
                if ok.inner.running.get() {
                    ok.schedule_from(ok.inner.clock.now());
                } else {
                    ok.finish(Ok(()));
                }
                Ok(())
            },
            move |failure| {
                err.inner.running.set(false);
                err.finish(Err(failure));
                Ok(())
            },
        );
    }

    fn schedule_from(&self, when: Duration) {
        let i = &self.inner;
        let interval = i.interval.get();
        let delay = if interval.is_zero() {
            Duration::ZERO
        } else {
            let running_for = when.saturating_sub(i.start.get()).as_nanos();
            let iv = interval.as_nanos();
            let until_next = iv - running_for % iv;
            Duration::from_nanos(until_next.min(u64::MAX as u128) as u64)
        };
        let this = self.clone();
        let call = i
            .clock
            .call_later_boxed(delay, Box::new(move || this.call_now()));
        *i.call.borrow_mut() = Some(call);
    }
}

impl fmt::Debug for LoopingCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoopingCall")
            .field("running", &self.inner.running.get())
            .field("interval", &self.inner.interval.get())
            .field("calls", &self.inner.calls.get())
            .finish()
    }
}
