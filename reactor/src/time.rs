//! Time: the [`Clock`] trait, [`DelayedCall`], the timer queue, and the hand-driven
//! [`ManualClock`] (Twisted's `task.Clock`).

use std::cell::{Cell, RefCell};
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::{Rc, Weak};
use std::time::{Duration, Instant};

use ropewalk_deferred::{Deferred, Failure, IntoOutcome, ScheduledCall, Scheduler};

use crate::error::TimerError;
use crate::radix::RadixHeap;

/// Something that tells the time and runs functions later: the reactor, or a
/// [`ManualClock`] in tests (Twisted's `IReactorTime`).
///
/// Time is a [`Duration`] since the clock's origin (the reactor's creation, or zero for a
/// `ManualClock`). Timers, [`LoopingCall`](crate::LoopingCall),
/// [`defer_later`](crate::defer_later) and Deferred timeouts all take a `Clock`, so tests
/// drive time by hand instead of sleeping.
///
/// # Examples
///
/// ```
/// use std::{cell::Cell, rc::Rc, time::Duration};
/// use ropewalk_reactor::{Clock, ManualClock};
///
/// fn remind(clock: &dyn Clock, fired: Rc<Cell<bool>>) {
///     clock.call_later(Duration::from_secs(5), move || fired.set(true));
/// }
///
/// let clock = ManualClock::new();
/// let fired = Rc::new(Cell::new(false));
/// remind(&clock, fired.clone());
/// clock.advance(Duration::from_secs(5));
/// assert!(fired.get());
/// ```
pub trait Clock {
    /// The current time, since the clock's origin.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use ropewalk_reactor::{Clock, ManualClock};
    ///
    /// let clock = ManualClock::new();
    /// clock.advance(Duration::from_millis(1500));
    /// assert_eq!(clock.now(), Duration::from_millis(1500));
    /// ```
    fn now(&self) -> Duration;

    /// A recent reading of the clock, cheaper than [`now`](Clock::now): a reactor reads
    /// its clock once each time its loop wakes up, and inside a turn answers that
    /// reading, at most one turn old (never later than `now`). For deadlines that need no
    /// finer precision than a turn of the loop, set on every request or message.
    /// Default: [`now`](Clock::now).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use ropewalk_reactor::{Clock, ManualClock};
    ///
    /// let clock = ManualClock::new();
    /// clock.advance(Duration::from_secs(2));
    /// assert_eq!(clock.loop_time(), Duration::from_secs(2));
    /// ```
    fn loop_time(&self) -> Duration {
        self.now()
    }

    /// Runs `f` once, `delay` from now, the closure boxed. Callers write `call_later`
    /// (on a [`Reactor`](crate::Reactor), a [`ManualClock`] or a `dyn Clock`), which
    /// comes here for a `dyn Clock`; implementors write this.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use ropewalk_reactor::{Clock, ManualClock};
    ///
    /// fn soon<C: Clock>(clock: &C) {
    ///     clock.call_later_boxed(Duration::from_secs(1), Box::new(|| println!("soon")));
    /// }
    /// soon(&ManualClock::new());
    /// ```
    fn call_later_boxed(&self, delay: Duration, f: Box<dyn FnOnce()>) -> DelayedCall;
}

impl dyn Clock + '_ {
    /// Runs `f` once, `delay` from now, and never earlier, on a `&dyn Clock`,
    /// `Rc<dyn Clock>` or `Box<dyn Clock>`: the same method as
    /// [`Reactor::call_later`](crate::Reactor::call_later) and
    /// [`ManualClock::call_later`], so that scheduling reads the same on every clock.
    ///
    /// Code generic over `C: Clock` calls [`call_later_boxed`](Clock::call_later_boxed)
    /// (or takes a `&dyn Clock`).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::{cell::Cell, rc::Rc, time::Duration};
    /// use ropewalk_reactor::{Clock, ManualClock};
    ///
    /// fn remind(clock: &dyn Clock, fired: Rc<Cell<bool>>) {
    ///     clock.call_later(Duration::from_secs(5), move || fired.set(true));
    /// }
    ///
    /// let clock = ManualClock::new();
    /// let fired = Rc::new(Cell::new(false));
    /// remind(&clock, fired.clone());
    /// let shared: Rc<dyn Clock> = Rc::new(clock.clone());
    /// shared.call_later(Duration::from_secs(1), || {});
    /// clock.advance(Duration::from_secs(5));
    /// assert!(fired.get());
    /// ```
    pub fn call_later(&self, delay: Duration, f: impl FnOnce() + 'static) -> DelayedCall {
        self.call_later_boxed(delay, Box::new(f))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Active,
    Called,
    Cancelled,
}

struct CallState {
    status: Cell<Status>,
    time: Cell<Duration>,
    slot: Cell<usize>,
    /// Which heap entry is the call's (a new one each time it is queued again).
    seq: Cell<u64>,
    /// When the call was made, among its clock's calls: calls due at the same time run in
    /// this order, however they were moved since.
    order: u64,
}

/// A scheduled call: its state and, until it runs or is cancelled, its function, in one
/// allocation (a closure passed to `call_later` is not boxed on its own).
trait Timed {
    fn state(&self) -> &CallState;
    /// Takes the function out and runs it.
    fn run(&self);
    /// Drops the function (cancelled, or its clock is gone), releasing what it holds.
    fn discard(&self);
}

struct Call<F> {
    state: CallState,
    f: Cell<Option<F>>,
}

impl<F: FnOnce()> Timed for Call<F> {
    fn state(&self) -> &CallState {
        &self.state
    }

    fn run(&self) {
        if let Some(f) = self.f.take() {
            f();
        }
    }

    fn discard(&self) {
        drop(self.f.take());
    }
}

/// A call in the queue.
struct Pending {
    seq: u64,
    call: Rc<dyn Timed>,
}

/// The timers of one clock: a radix heap of `(time in ns, (seq, slot))` over a slab of
/// calls (see `radix.rs`: timers only ever come due in time order, which it uses).
/// Scheduling is O(1); taking out the next due call is amortized O(bits of the time)
/// with sequential memory access; cancelling is O(1) (the heap entry goes stale and is
/// skipped, and the heap is rebuilt when stale entries outnumber live ones).
///
/// Order: calls run in time order, and calls due at the same time in the order they were
/// made (`CallState::order`), also after `reset` or `delay` moved them (as Twisted's
/// `task.Clock` runs a call moved later onto the time of a younger one). The heap gives
/// equal times in the order they were queued, which a move changes, so each pass sorts
/// the calls it takes out by (time, order): a pass's calls are already in time order, so
/// this costs a scan unless a moved call is among them.
pub(crate) struct TimerQueue {
    heap: RadixHeap<(u64, usize)>,
    slots: Vec<Option<Pending>>,
    free: Vec<usize>,
    next_seq: u64,
    next_order: u64,
    live: usize,
    origin: Option<Instant>,
    manual_now: Cell<Duration>,
    /// A pass's due calls: (time in ns, order, slot, seq); kept for its allocation.
    due: Vec<(u64, u64, usize, u64)>,
}

pub(crate) type SharedTimers = Rc<RefCell<TimerQueue>>;

impl Drop for TimerQueue {
    /// The clock is gone: its calls will never run, and handles to them must not keep
    /// what their functions hold.
    fn drop(&mut self) {
        for p in self.slots.iter().flatten() {
            p.call.discard();
        }
    }
}

impl TimerQueue {
    pub(crate) fn new(origin: Option<Instant>) -> TimerQueue {
        TimerQueue {
            heap: RadixHeap::new(),
            slots: Vec::new(),
            free: Vec::new(),
            next_seq: 0,
            next_order: 0,
            live: 0,
            origin,
            manual_now: Cell::new(Duration::ZERO),
            due: Vec::new(),
        }
    }

    pub(crate) fn now(&self) -> Duration {
        match self.origin {
            Some(o) => o.elapsed(),
            None => self.manual_now.get(),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.live
    }

    fn insert(&mut self, time: Duration, call: Rc<dyn Timed>) {
        let seq = self.next_seq;
        self.next_seq += 1;
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                self.slots.push(None);
                self.slots.len() - 1
            }
        };
        let state = call.state();
        state.time.set(time);
        state.slot.set(slot);
        state.seq.set(seq);
        self.slots[slot] = Some(Pending { seq, call });
        self.heap.push(nanos(time), (seq, slot));
        self.live += 1;
    }

    fn remove(&mut self, slot: usize, seq: u64) -> Option<Pending> {
        match &self.slots[slot] {
            Some(p) if p.seq == seq => {}
            _ => return None,
        }
        let p = self.slots[slot].take();
        self.free.push(slot);
        self.live -= 1;
        // Rebuild when stale entries outnumber live ones, so memory follows live timers.
        if self.heap.len() > 64 && self.heap.len() > 2 * self.live {
            let slots = &self.slots;
            self.heap.retain(|&(seq, slot)| is_live(slots, slot, seq));
        }
        p
    }

    /// Takes out a call that has not come due (cancelled, or moved): its heap entry goes
    /// stale.
    fn unschedule(&mut self, slot: usize, seq: u64) -> Option<Pending> {
        let p = self.remove(slot, seq);
        if p.is_some() {
            self.heap.note_stale();
        }
        p
    }

    /// When the loop must look at the calls next: the earliest entry of the queue. (A call
    /// moved later since it was queued still has its entry at its earlier time.)
    pub(crate) fn next_time(&mut self) -> Option<Duration> {
        let slots = &self.slots;
        let (key, _) = self.heap.peek(|&(seq, slot)| is_live(slots, slot, seq))?;
        Some(Duration::from_nanos(key))
    }

    fn active_calls(&self, weak: &Weak<RefCell<TimerQueue>>) -> Vec<DelayedCall> {
        self.slots
            .iter()
            .flatten()
            .map(|p| DelayedCall {
                call: p.call.clone(),
                queue: weak.clone(),
            })
            .collect()
    }
}

/// Whether the call in `slot` is still the one made with `seq` (not run, cancelled or
/// moved since).
fn is_live(slots: &[Option<Pending>], slot: usize, seq: u64) -> bool {
    matches!(&slots[slot], Some(p) if p.seq == seq)
}

/// A time as the heap's key: nanoseconds (a time past `u64::MAX` ns, 584 years, is that).
fn nanos(t: Duration) -> u64 {
    u64::try_from(t.as_nanos()).unwrap_or(u64::MAX)
}

/// Schedules `f` on `queue`, `delay` from now: one allocation, the call's own.
pub(crate) fn schedule(
    queue: &SharedTimers,
    delay: Duration,
    f: impl FnOnce() + 'static,
) -> DelayedCall {
    let mut q = queue.borrow_mut();
    let order = q.next_order;
    q.next_order += 1;
    let call: Rc<dyn Timed> = Rc::new(Call {
        state: CallState {
            status: Cell::new(Status::Active),
            time: Cell::new(Duration::ZERO),
            slot: Cell::new(0),
            seq: Cell::new(0),
            order,
        },
        f: Cell::new(Some(f)),
    });
    let time = q.now().saturating_add(delay);
    q.insert(time, call.clone());
    DelayedCall {
        call,
        queue: Rc::downgrade(queue),
    }
}

/// Most timed calls one reactor turn runs.
const TIMERS_PER_TURN: usize = 4096;

/// Runs the calls due at `now`, in time order and, for equal times, in the order they were
/// made. Calls made while they run wait for the next pass unless `same_pass` (the
/// `ManualClock` behaviour, as Twisted's `task.Clock`). Returns how many ran.
pub(crate) fn run_due(queue: &SharedTimers, same_pass: bool) -> usize {
    let mut ran = 0;
    loop {
        let (mut due, now) = {
            let mut q = queue.borrow_mut();
            let now = nanos(q.now());
            let q = &mut *q;
            let mut due = std::mem::take(&mut q.due);
            let slots = &q.slots;
            let live = |&(seq, slot): &(u64, usize)| is_live(slots, slot, seq);
            while let Some((time, _)) = q.heap.peek(live) {
                // A turn runs a bounded number of timers, so I/O is never starved; the
                // rest are due at once and run on the next turns. The cut falls between
                // two times, so that equal times keep their order.
                let full = due.len() >= TIMERS_PER_TURN && due.last().is_some_and(|d| time > d.0);
                if time > now || (!same_pass && full) {
                    break;
                }
                let Some((key, (seq, slot))) = q.heap.pop(live) else {
                    break;
                };
                let Some(p) = slots[slot].as_ref() else {
                    break;
                };
                let state = p.call.state();
                // A call moved later since it was queued (see `move_to`) goes back in at
                // its time.
                let moved = nanos(state.time.get());
                if moved > key {
                    q.heap.push(moved, (seq, slot));
                } else {
                    due.push((key, state.order, slot, seq));
                }
            }
            // Equal times in the order the calls were made (a moved call may have been
            // queued behind younger ones).
            if !due.is_sorted_by_key(|&(time, order, ..)| (time, order)) {
                due.sort_unstable_by_key(|&(time, order, ..)| (time, order));
            }
            (due, now)
        };
        if due.is_empty() {
            queue.borrow_mut().due = due;
            return ran;
        }
        for &(_, _, slot, seq) in &due {
            let p = {
                let mut q = queue.borrow_mut();
                // An earlier call of this pass may have cancelled or moved this one.
                let Some(p) = q.slots[slot].as_ref().filter(|p| p.seq == seq) else {
                    continue;
                };
                let time = nanos(p.call.state().time.get());
                if time > now {
                    // Pushed later by an earlier call of this pass: it waits for its time.
                    q.heap.push(time, (seq, slot));
                    continue;
                }
                q.remove(slot, seq).expect("checked live above")
            };
            p.call.state().status.set(Status::Called);
            ran += 1;
            if let Err(payload) = catch_unwind(AssertUnwindSafe(|| p.call.run())) {
                log::error!(
                    "panic in a timed call (continuing): {}",
                    Failure::from_panic(payload)
                );
            }
        }
        due.clear();
        queue.borrow_mut().due = due;
        if !same_pass {
            return ran;
        }
    }
}

/// A call scheduled with `call_later` (on a [`Reactor`](crate::Reactor), a [`ManualClock`] or a
/// `dyn Clock`): Twisted's `DelayedCall`.
///
/// Dropping the handle does not cancel the call.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use ropewalk_reactor::{Clock, ManualClock, TimerError};
///
/// let clock = ManualClock::new();
/// let call = clock.call_later(Duration::from_secs(2), || {});
/// call.reset(Duration::from_secs(5)).unwrap();
/// assert_eq!(call.time(), Duration::from_secs(5));
/// clock.advance(Duration::from_secs(5));
/// assert!(!call.active());
/// assert_eq!(call.cancel(), Err(TimerError::AlreadyCalled));
/// ```
#[derive(Clone)]
pub struct DelayedCall {
    call: Rc<dyn Timed>,
    queue: Weak<RefCell<TimerQueue>>,
}

impl DelayedCall {
    fn state(&self) -> &CallState {
        self.call.state()
    }

    fn check(&self) -> Result<SharedTimers, TimerError> {
        match self.state().status.get() {
            Status::Called => Err(TimerError::AlreadyCalled),
            Status::Cancelled => Err(TimerError::AlreadyCancelled),
            // A clock that is gone never runs its calls: they count as cancelled.
            Status::Active => self.queue.upgrade().ok_or(TimerError::AlreadyCancelled),
        }
    }

    /// Unschedules the call.
    ///
    /// # Errors
    ///
    /// [`TimerError::AlreadyCalled`] once it ran (also from inside the call itself),
    /// [`TimerError::AlreadyCancelled`] once cancelled.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use ropewalk_reactor::{Clock, ManualClock};
    ///
    /// let clock = ManualClock::new();
    /// let call = clock.call_later(Duration::from_secs(1), || panic!("never"));
    /// call.cancel().unwrap();
    /// clock.advance(Duration::from_secs(2));
    /// ```
    pub fn cancel(&self) -> Result<(), TimerError> {
        let queue = self.check()?;
        let state = self.state();
        let removed = queue
            .borrow_mut()
            .unschedule(state.slot.get(), state.seq.get());
        state.status.set(Status::Cancelled);
        // Handles must not keep what the function holds. It is dropped with the queue no
        // longer borrowed: that may schedule calls (a resolver it held fires its Deferred).
        if let Some(p) = removed {
            p.call.discard();
        }
        Ok(())
    }

    fn move_to(
        &self,
        time: impl FnOnce(&TimerQueue, Duration) -> Duration,
    ) -> Result<(), TimerError> {
        let queue = self.check()?;
        let mut q = queue.borrow_mut();
        let state = self.state();
        let new_time = time(&q, state.time.get());
        if new_time >= state.time.get() {
            // Later (an idle timeout pushed back on every read): its entry stays where it
            // is, and when it comes up the call goes back in at its new time (as
            // Twisted's reactor does), so pushing it back costs no queue operation.
            state.time.set(new_time);
            return Ok(());
        }
        let removed = q.unschedule(state.slot.get(), state.seq.get());
        debug_assert!(removed.is_some(), "an active call is in its queue");
        q.insert(new_time, self.call.clone());
        Ok(())
    }

    /// Reschedules the call to `delay` from now, earlier or later than before. Among calls
    /// due at the same time it keeps its place by when it was made, not by when it moved.
    ///
    /// # Errors
    ///
    /// As [`cancel`](Self::cancel).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use ropewalk_reactor::{Clock, ManualClock};
    ///
    /// let clock = ManualClock::new();
    /// let call = clock.call_later(Duration::from_secs(10), || {});
    /// call.reset(Duration::from_secs(1)).unwrap();
    /// clock.advance(Duration::from_secs(1));
    /// assert!(!call.active());
    /// ```
    pub fn reset(&self, delay: Duration) -> Result<(), TimerError> {
        self.move_to(|q, _| q.now().saturating_add(delay))
    }

    /// Pushes the call `by` later.
    ///
    /// # Errors
    ///
    /// As [`cancel`](Self::cancel).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use ropewalk_reactor::{Clock, ManualClock};
    ///
    /// let clock = ManualClock::new();
    /// let call = clock.call_later(Duration::from_secs(1), || {});
    /// call.delay(Duration::from_secs(1)).unwrap();
    /// assert_eq!(call.time(), Duration::from_secs(2));
    /// ```
    pub fn delay(&self, by: Duration) -> Result<(), TimerError> {
        self.move_to(|_, t| t.saturating_add(by))
    }

    /// Whether the call is still to run (neither run nor cancelled).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use ropewalk_reactor::{Clock, ManualClock};
    ///
    /// let clock = ManualClock::new();
    /// let call = clock.call_later(Duration::ZERO, || {});
    /// assert!(call.active());
    /// clock.advance(Duration::ZERO);
    /// assert!(!call.active());
    /// ```
    pub fn active(&self) -> bool {
        self.state().status.get() == Status::Active && self.queue.strong_count() > 0
    }

    /// When the call runs (or ran), as time since the clock's origin.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use ropewalk_reactor::{Clock, ManualClock};
    ///
    /// let clock = ManualClock::new();
    /// clock.advance(Duration::from_secs(1));
    /// assert_eq!(clock.call_later(Duration::from_secs(2), || {}).time(), Duration::from_secs(3));
    /// ```
    pub fn time(&self) -> Duration {
        self.state().time.get()
    }
}

impl fmt::Debug for DelayedCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DelayedCall")
            .field("time", &self.state().time.get())
            .field("status", &self.state().status.get())
            .finish()
    }
}

/// A clock you drive by hand, for tests: Twisted's `task.Clock`.
///
/// Time starts at zero and moves only with [`advance`](Self::advance) or
/// [`pump`](Self::pump), which run every call that comes due, in time order; calls due at
/// the same time run in the order they were made, also when [`DelayedCall::reset`] or
/// [`DelayedCall::delay`] moved them there. As in Twisted's `Clock`, a zero-delay call made by a call that `advance`
/// runs, runs in the same `advance` (the reactor runs it on its next turn).
///
/// `ManualClock` is a cheap handle (`Clone` shares the clock).
///
/// # Examples
///
/// ```
/// use std::{cell::RefCell, rc::Rc, time::Duration};
/// use ropewalk_reactor::{Clock, ManualClock};
///
/// let clock = ManualClock::new();
/// let log = Rc::new(RefCell::new(Vec::new()));
/// for (n, secs) in [(1, 3), (2, 1), (3, 2)] {
///     let log = log.clone();
///     clock.call_later(Duration::from_secs(secs), move || log.borrow_mut().push(n));
/// }
/// clock.pump(&[Duration::from_secs(1); 3]);
/// assert_eq!(*log.borrow(), vec![2, 3, 1]);
/// ```
#[derive(Clone)]
pub struct ManualClock {
    timers: SharedTimers,
}

impl ManualClock {
    /// A clock at time zero with no calls.
    ///
    /// # Examples
    ///
    /// ```
    /// use ropewalk_reactor::{Clock, ManualClock};
    /// assert_eq!(ManualClock::new().now(), std::time::Duration::ZERO);
    /// ```
    pub fn new() -> ManualClock {
        ManualClock {
            timers: Rc::new(RefCell::new(TimerQueue::new(None))),
        }
    }

    /// Runs `f` once, `delay` from now, and never earlier: when [`advance`](Self::advance)
    /// reaches its time. Calls due at the same time run in the order they were made. (The
    /// same method as [`Reactor::call_later`](crate::Reactor::call_later) and a
    /// `dyn Clock`'s.)
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use ropewalk_reactor::ManualClock;
    ///
    /// let clock = ManualClock::new();
    /// let call = clock.call_later(Duration::from_millis(10), || println!("later"));
    /// assert_eq!(call.time(), Duration::from_millis(10));
    /// ```
    pub fn call_later(&self, delay: Duration, f: impl FnOnce() + 'static) -> DelayedCall {
        schedule(&self.timers, delay, f)
    }

    /// Moves time forward by `by` and runs every call that comes due.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use ropewalk_reactor::{Clock, ManualClock};
    ///
    /// let clock = ManualClock::new();
    /// clock.advance(Duration::from_millis(1500));
    /// assert_eq!(clock.now(), Duration::from_millis(1500));
    /// ```
    pub fn advance(&self, by: Duration) {
        {
            let q = self.timers.borrow();
            q.manual_now.set(q.manual_now.get().saturating_add(by));
        }
        run_due(&self.timers, true);
    }

    /// Advances by each of `steps` in turn (Twisted's `Clock.pump`).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use ropewalk_reactor::{Clock, ManualClock};
    ///
    /// let clock = ManualClock::new();
    /// clock.pump(&[Duration::from_secs(1), Duration::from_secs(2)]);
    /// assert_eq!(clock.now(), Duration::from_secs(3));
    /// ```
    pub fn pump(&self, steps: &[Duration]) {
        for &s in steps {
            self.advance(s);
        }
    }

    /// The calls still to run (Twisted's `getDelayedCalls`).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use ropewalk_reactor::{Clock, ManualClock};
    ///
    /// let clock = ManualClock::new();
    /// let call = clock.call_later(Duration::from_secs(1), || {});
    /// assert_eq!(clock.delayed_calls().len(), 1);
    /// call.cancel().unwrap();
    /// assert!(clock.delayed_calls().is_empty());
    /// ```
    pub fn delayed_calls(&self) -> Vec<DelayedCall> {
        self.timers
            .borrow()
            .active_calls(&Rc::downgrade(&self.timers))
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        ManualClock::new()
    }
}

impl fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let q = self.timers.borrow();
        f.debug_struct("ManualClock")
            .field("now", &q.now())
            .field("pending", &q.len())
            .finish()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Duration {
        self.timers.borrow().now()
    }

    fn call_later_boxed(&self, delay: Duration, f: Box<dyn FnOnce()>) -> DelayedCall {
        schedule(&self.timers, delay, f)
    }
}

/// Adapts any [`Clock`] to the Deferred crate's [`Scheduler`], for
/// [`Deferred::add_timeout`].
pub(crate) fn scheduled(call: DelayedCall) -> ScheduledCall {
    ScheduledCall::new(move || {
        let _ = call.cancel();
    })
}

impl Scheduler for ManualClock {
    fn schedule(&self, delay: Duration, f: Box<dyn FnOnce()>) -> ScheduledCall {
        scheduled(self.call_later_boxed(delay, f))
    }
}

impl Scheduler for dyn Clock {
    fn schedule(&self, delay: Duration, f: Box<dyn FnOnce()>) -> ScheduledCall {
        scheduled(self.call_later_boxed(delay, f))
    }
}

/// A Deferred that fires with `f()`'s outcome `delay` from now (Twisted's `deferLater`).
///
/// Cancelling the Deferred before then cancels the call and errbacks with
/// [`Cancelled`](ropewalk_deferred::Cancelled).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use ropewalk_reactor::{defer_later, ManualClock};
///
/// let clock = ManualClock::new();
/// let mut d = defer_later(&clock, Duration::from_secs(3), || Ok("done"));
/// assert!(d.try_result().is_none());
/// clock.advance(Duration::from_secs(3));
/// assert_eq!(d.wait().unwrap(), "done");
/// ```
pub fn defer_later<T: 'static, R: IntoOutcome<T> + 'static>(
    clock: &(impl Clock + ?Sized),
    delay: Duration,
    f: impl FnOnce() -> R + 'static,
) -> Deferred<T> {
    let cell: Rc<Cell<Option<DelayedCall>>> = Rc::new(Cell::new(None));
    let c2 = cell.clone();
    let (d, r) = Deferred::<()>::with_canceller(move || {
        if let Some(call) = c2.take() {
            let _ = call.cancel();
        }
        None
    });
    let call = clock.call_later_boxed(
        delay,
        Box::new(move || {
            let _ = r.callback(());
        }),
    );
    cell.set(Some(call));
    d.add_callback(move |()| f())
}

#[cfg(test)]
mod tests {
    //! The reactor's pass (`run_due(_, false)`) on a hand-driven queue: the same order
    //! rules as `ManualClock`'s (tests/time_manual_clock.rs), where real time cannot make
    //! two deadlines equal on purpose.

    use super::*;

    fn queue() -> SharedTimers {
        Rc::new(RefCell::new(TimerQueue::new(None)))
    }

    fn at(queue: &SharedTimers, secs: u64) {
        queue.borrow().manual_now.set(Duration::from_secs(secs));
    }

    fn push(
        queue: &SharedTimers,
        log: &Rc<RefCell<Vec<&'static str>>>,
        secs: u64,
        name: &'static str,
    ) -> DelayedCall {
        let log = log.clone();
        schedule(queue, Duration::from_secs(secs), move || {
            log.borrow_mut().push(name)
        })
    }

    /// Issue #16 on the reactor's timers: `a` moved onto `b`'s time runs first.
    #[test]
    fn reactor_pass_runs_a_moved_call_in_creation_order() {
        let q = queue();
        let log = Rc::new(RefCell::new(Vec::new()));
        let a = push(&q, &log, 1, "a");
        push(&q, &log, 2, "b");
        let c = push(&q, &log, 3, "c");
        a.reset(Duration::from_secs(2)).unwrap();
        c.reset(Duration::from_secs(2)).unwrap();
        at(&q, 2);
        assert_eq!(run_due(&q, false), 3);
        assert_eq!(*log.borrow(), ["a", "b", "c"]);
    }

    /// A call that an earlier call of the same pass pushes later runs at its new time.
    #[test]
    fn reactor_pass_skips_a_call_delayed_during_the_pass() {
        let q = queue();
        let log = Rc::new(RefCell::new(Vec::new()));
        let slot: Rc<RefCell<Option<DelayedCall>>> = Rc::new(RefCell::new(None));
        let s = slot.clone();
        schedule(&q, Duration::from_secs(1), move || {
            s.borrow()
                .as_ref()
                .unwrap()
                .delay(Duration::from_secs(1))
                .unwrap();
        });
        *slot.borrow_mut() = Some(push(&q, &log, 1, "b"));
        at(&q, 1);
        assert_eq!(run_due(&q, false), 1);
        assert!(log.borrow().is_empty());
        assert_eq!(q.borrow_mut().next_time(), Some(Duration::from_secs(2)));
        at(&q, 2);
        assert_eq!(run_due(&q, false), 1);
        assert_eq!(*log.borrow(), ["b"]);
    }
}
