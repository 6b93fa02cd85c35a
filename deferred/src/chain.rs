//! The type-erased engine under [`Deferred`](crate::Deferred): one shared chain of steps,
//! run by a loop that never recurses.
//!
//! The typed handles guarantee that every step receives the type the step before produced,
//! so the erased values are always downcast to the right type.
//!
//! A value lives in the box of the step that produced it (or in a small [`Ready`] box when a
//! resolver fires), so running a step costs no allocation beyond the step's own box.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::mem;
use std::panic::{catch_unwind, AssertUnwindSafe, Location};
use std::rc::{Rc, Weak};
use std::task::Waker;

use crate::error::{AlreadyCalled, Cancelled, ResolverDropped, WaitError};
use crate::Failure;

pub(crate) type Shared = Rc<RefCell<Chain>>;
pub(crate) type WeakShared = Weak<RefCell<Chain>>;

/// Holds a value of one type, reachable as `&mut dyn Any` (an `Option<T>` inside).
pub(crate) trait Holder {
    /// `&Option<T>`.
    fn slot(&self) -> &dyn Any;
    /// `&mut Option<T>`.
    fn slot_mut(&mut self) -> &mut dyn Any;
}

/// One link of the chain: a callback, an errback, or both.
pub(crate) trait Step: Holder {
    /// Runs on the current result. On [`Flow::Value`] the output is in this step's slot.
    fn run(&mut self, input: Input<'_>) -> Flow;
}

/// The current result handed to a step.
pub(crate) enum Input<'a> {
    /// `&mut Option<T>`, to be taken.
    Value(&'a mut dyn Any),
    Failure(Failure),
}

/// What a step did.
pub(crate) enum Flow {
    /// Left the current value where it was (an errback seeing a value).
    Pass,
    /// Produced a value, now in the step's own slot.
    Value,
    Failure(Failure),
    /// Returned a Deferred: the chain waits on it.
    Chain(Shared),
}

/// The value a resolver fires with.
pub(crate) struct Ready<T>(pub(crate) Option<T>);

impl<T: 'static> Holder for Ready<T> {
    fn slot(&self) -> &dyn Any {
        &self.0
    }
    fn slot_mut(&mut self) -> &mut dyn Any {
        &mut self.0
    }
}

/// An outcome in erased form: what fires a chain.
pub(crate) enum Fire {
    Value(Box<dyn Holder>),
    Failure(Failure),
}

pub(crate) enum Current {
    /// Not fired yet.
    Pending,
    Value(Box<dyn Holder>),
    Failure(Failure),
    /// A step is running with the result.
    Running,
    /// Handed on (to a chained Deferred, an awaiting task or `wait()`).
    Taken,
}

pub(crate) enum Entry {
    Step(Box<dyn Step>),
    /// Hand the result to the chain that waits on this one (a callback there returned
    /// this chain's Deferred) and run it.
    Continue(Shared),
    /// Fire another chain with the result (`chain_deferred`) and run it.
    ChainTo(Shared),
}

/// A FIFO of steps that keeps the first four inline: most chains never allocate for it.
pub(crate) struct Steps {
    ring: [Option<Entry>; INLINE],
    head: usize,
    len: usize,
    /// Used once the ring is full, and until it empties, so order is kept.
    overflow: VecDeque<Entry>,
}

const INLINE: usize = 4;

impl Steps {
    fn new() -> Steps {
        Steps {
            ring: [None, None, None, None],
            head: 0,
            len: 0,
            overflow: VecDeque::new(),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0 && self.overflow.is_empty()
    }

    pub(crate) fn len(&self) -> usize {
        self.len + self.overflow.len()
    }

    pub(crate) fn push_back(&mut self, entry: Entry) {
        if self.len < INLINE && self.overflow.is_empty() {
            self.ring[(self.head + self.len) % INLINE] = Some(entry);
            self.len += 1;
        } else {
            self.overflow.push_back(entry);
        }
    }

    pub(crate) fn front(&self) -> Option<&Entry> {
        if self.len > 0 {
            self.ring[self.head].as_ref()
        } else {
            self.overflow.front()
        }
    }

    pub(crate) fn pop_front(&mut self) -> Option<Entry> {
        if self.len > 0 {
            let e = self.ring[self.head].take();
            self.head = (self.head + 1) % INLINE;
            self.len -= 1;
            e
        } else {
            self.overflow.pop_front()
        }
    }
}

pub(crate) type Canceller = Box<dyn FnOnce() -> Option<Fire>>;

pub(crate) struct Chain {
    pub(crate) current: Current,
    pub(crate) called: bool,
    pub(crate) steps: Steps,
    pub(crate) paused: u32,
    pub(crate) running: bool,
    /// The Deferred this one waits on (implicit chaining), for `cancel` and `Debug`.
    pub(crate) chained_to: Option<WeakShared>,
    pub(crate) canceller: Option<Canceller>,
    /// Cancelled without a canceller: swallow exactly one late fire.
    pub(crate) suppress_already_called: bool,
    /// A canceller is running: a resolver dropped meanwhile does not fire.
    pub(crate) cancelling: bool,
    pub(crate) waker: Option<Waker>,
    pub(crate) created_at: &'static Location<'static>,
}

thread_local! {
    /// How many steps are running on this thread (for `wait()` inside a callback).
    static DEPTH: Cell<u32> = const { Cell::new(0) };
}

/// Whether a Deferred callback is running on this thread.
pub(crate) fn in_callback() -> bool {
    DEPTH.with(|d| d.get() > 0)
}

pub(crate) struct DepthGuard;

impl DepthGuard {
    pub(crate) fn enter() -> DepthGuard {
        DEPTH.with(|d| d.set(d.get() + 1));
        DepthGuard
    }
}

impl Drop for DepthGuard {
    fn drop(&mut self) {
        DEPTH.with(|d| d.set(d.get() - 1));
    }
}

impl Chain {
    pub(crate) fn new(created_at: &'static Location<'static>) -> Chain {
        Chain {
            current: Current::Pending,
            called: false,
            steps: Steps::new(),
            paused: 0,
            running: false,
            chained_to: None,
            canceller: None,
            suppress_already_called: false,
            cancelling: false,
            waker: None,
            created_at,
        }
    }

    pub(crate) fn fired(created_at: &'static Location<'static>, fire: Fire) -> Chain {
        let mut c = Chain::new(created_at);
        c.called = true;
        c.current = fire.into_current();
        c
    }

    fn runnable(&self) -> bool {
        self.called && self.paused == 0 && !self.running
    }

    /// Fired, not paused, nothing left to run: the result is final.
    pub(crate) fn is_settled(&self) -> bool {
        self.runnable() && self.steps.is_empty()
    }

    /// Takes the final result for an awaiting task or `wait()`.
    pub(crate) fn take_result<T: 'static>(&mut self) -> Result<T, Failure> {
        match mem::replace(&mut self.current, Current::Taken) {
            Current::Value(mut h) => Ok(take_value::<T>(h.slot_mut())),
            Current::Failure(f) => Err(f),
            _ => Err(Failure::new(WaitError::ResultTaken)),
        }
    }
}

impl Fire {
    fn into_current(self) -> Current {
        match self {
            Fire::Value(h) => Current::Value(h),
            Fire::Failure(f) => Current::Failure(f),
        }
    }
}

pub(crate) fn take_value<T: 'static>(slot: &mut dyn Any) -> T {
    slot.downcast_mut::<Option<T>>()
        .and_then(Option::take)
        .expect("ropewalk-deferred: a step received a value of the wrong type (bug)")
}

/// Fires a chain. `Err` if it already had a result (and was not owed a swallowed fire).
pub(crate) fn fire(chain: &Shared, fire: Fire) -> Result<(), AlreadyCalled> {
    {
        let mut c = chain.borrow_mut();
        if c.called {
            if mem::take(&mut c.suppress_already_called) {
                return Ok(());
            }
            return Err(AlreadyCalled {
                created_at: c.created_at,
            });
        }
        c.called = true;
        c.current = fire.into_current();
        c.canceller = None;
        if c.paused > 0 || c.running {
            return Ok(());
        }
    }
    run(chain.clone());
    Ok(())
}

/// Appends a step; runs it at once if the chain has a result and is not paused.
pub(crate) fn push(chain: &Shared, entry: Entry) {
    let runnable = {
        let mut c = chain.borrow_mut();
        c.steps.push_back(entry);
        c.runnable()
    };
    if runnable {
        run(chain.clone());
    }
}

pub(crate) fn pause(chain: &Shared) {
    chain.borrow_mut().paused += 1;
}

/// Undoes one `pause`; an unmatched call does nothing.
pub(crate) fn unpause(chain: &Shared) {
    let runnable = {
        let mut c = chain.borrow_mut();
        c.paused = c.paused.saturating_sub(1);
        c.runnable()
    };
    if runnable {
        run(chain.clone());
    }
}

/// Twisted's `cancel`: canceller or `Cancelled`, or cancel the Deferred waited on.
pub(crate) fn cancel(chain: &Shared) {
    let mut c = chain.borrow_mut();
    if !c.called {
        match c.canceller.take() {
            Some(canceller) => {
                c.cancelling = true;
                drop(c);
                let outcome = catch_unwind(AssertUnwindSafe(canceller)).unwrap_or_else(|p| {
                    log::error!("canceller panicked: {}", Failure::from_panic(p));
                    None
                });
                chain.borrow_mut().cancelling = false;
                let outcome = outcome.unwrap_or_else(|| Fire::Failure(Failure::new(Cancelled)));
                // The canceller's outcome wins; the producer's later fire is AlreadyCalled.
                let _ = fire(chain, outcome);
            }
            None => {
                // Set before firing: an errback may make the producer fire at once.
                c.suppress_already_called = true;
                drop(c);
                let _ = fire(chain, Fire::Failure(Failure::new(Cancelled)));
            }
        }
    } else if let Some(inner) = c.chained_to.as_ref().and_then(Weak::upgrade) {
        drop(c);
        cancel(&inner);
    }
}

/// A resolver went away without firing.
pub(crate) fn resolver_dropped(chain: &Shared) {
    let listened = {
        let c = chain.borrow();
        if c.called || c.cancelling {
            return;
        }
        // Nobody holds the Deferred and nothing waits on it: let it go quietly.
        Rc::strong_count(chain) > 1 || !c.steps.is_empty() || c.waker.is_some()
    };
    if listened {
        let _ = fire(chain, Fire::Failure(Failure::new(ResolverDropped)));
    }
}

/// Unfired, and nobody can see it fire: only the resolver holds the chain, with no step to
/// run and no task awaiting it (its Deferred was dropped unobserved).
pub(crate) fn abandoned(chain: &Shared) -> bool {
    let c = chain.borrow();
    !c.called && Rc::strong_count(chain) == 1 && c.steps.is_empty() && c.waker.is_none()
}

/// Takes the final result out of a chain that nobody else can see (no other strong or weak
/// reference, nothing waiting), so the handle can carry it and run callbacks inline.
#[inline]
pub(crate) fn take_unshared<T: 'static>(
    chain: &Shared,
) -> Option<(Result<T, Failure>, &'static Location<'static>)> {
    if Rc::strong_count(chain) != 1 || Rc::weak_count(chain) != 0 {
        return None;
    }
    take_settled(chain)
}

fn take_settled<T: 'static>(
    chain: &Shared,
) -> Option<(Result<T, Failure>, &'static Location<'static>)> {
    let mut c = chain.borrow_mut();
    if !c.is_settled() || c.chained_to.is_some() || c.waker.is_some() {
        return None;
    }
    let at = c.created_at;
    match mem::replace(&mut c.current, Current::Taken) {
        Current::Value(mut h) => Some((Ok(take_value::<T>(h.slot_mut())), at)),
        Current::Failure(f) => Some((Err(f), at)),
        other => {
            c.current = other;
            None
        }
    }
}

/// Runs chains until none can go on: the loop that replaces Twisted's recursion.
///
/// A continuation hands the result to the chain that waited on this one and moves on to
/// that chain, so a million nested Deferreds use no more stack than one.
pub(crate) fn run(mut cur: Shared) {
    loop {
        match run_one(&cur) {
            Some(next) => cur = next,
            None => return,
        }
    }
}

fn run_one(shared: &Shared) -> Option<Shared> {
    let mut c = shared.borrow_mut();
    if !c.runnable() {
        return None;
    }
    c.running = true;
    let mut next = None;
    let _depth = DepthGuard::enter();
    while c.paused == 0 {
        let Some(entry) = c.steps.pop_front() else {
            break;
        };
        match entry {
            entry @ (Entry::Continue(_) | Entry::ChainTo(_)) => {
                let (target, explicit) = match entry {
                    Entry::Continue(t) => (t, false),
                    Entry::ChainTo(t) => (t, true),
                    Entry::Step(_) => unreachable!("matched above"),
                };
                let result = match mem::replace(&mut c.current, Current::Taken) {
                    Current::Value(h) => Fire::Value(h),
                    Current::Failure(f) => Fire::Failure(f),
                    _ => Fire::Failure(Failure::new(WaitError::ResultTaken)),
                };
                if deliver(&target, result, explicit) {
                    next = Some(target);
                }
                // Nobody else holds this chain's handle: it has nothing more to run.
                break;
            }
            Entry::Step(mut step) => {
                let current = mem::replace(&mut c.current, Current::Running);
                drop(c);
                let (flow, kept) = {
                    match current {
                        Current::Value(mut h) => {
                            let flow = catch_unwind(AssertUnwindSafe(|| {
                                step.run(Input::Value(h.slot_mut()))
                            }));
                            (flow, Some(h))
                        }
                        Current::Failure(f) => {
                            let flow =
                                catch_unwind(AssertUnwindSafe(|| step.run(Input::Failure(f))));
                            (flow, None)
                        }
                        _ => unreachable!("a runnable chain holds a result"),
                    }
                };
                c = shared.borrow_mut();
                match settle(shared, &mut c, flow, step, kept) {
                    Some(result) => c.current = result,
                    None => break,
                }
            }
        }
    }
    c.running = false;
    if c.steps.is_empty() && c.paused == 0 {
        if let Some(w) = c.waker.take() {
            drop(c);
            w.wake();
        }
    }
    next
}

type StepResult = Result<Flow, Box<dyn std::any::Any + Send>>;

/// The chain's new current result after `step` ran; `None` when it now waits on a
/// Deferred the step returned.
fn settle(
    shared: &Shared,
    c: &mut Chain,
    flow: StepResult,
    step: Box<dyn Step>,
    kept: Option<Box<dyn Holder>>,
) -> Option<Current> {
    Some(match flow {
        Ok(Flow::Pass) => Current::Value(kept.expect("pass keeps a value")),
        Ok(Flow::Value) => Current::Value(step),
        Ok(Flow::Failure(f)) => Current::Failure(f),
        Err(payload) => Current::Failure(Failure::from_panic(payload)),
        Ok(Flow::Chain(inner)) => {
            drop(kept);
            return wait_on(shared, c, inner);
        }
    })
}

/// Fires a chain with a value. When a callback is waiting, it runs on the value where it
/// lies, so the value needs no box of its own.
pub(crate) fn fire_value<T: 'static>(chain: &Shared, value: T) -> Result<(), AlreadyCalled> {
    let mut step = {
        let mut c = chain.borrow_mut();
        if c.called || c.paused > 0 || c.running || !matches!(c.steps.front(), Some(Entry::Step(_)))
        {
            drop(c);
            return fire(chain, Fire::Value(Box::new(Ready(Some(value)))));
        }
        let Some(Entry::Step(step)) = c.steps.pop_front() else {
            unreachable!("checked above")
        };
        c.called = true;
        c.canceller = None;
        c.running = true;
        c.current = Current::Running;
        step
    };
    let mut slot = Some(value);
    let flow = {
        let _depth = DepthGuard::enter();
        catch_unwind(AssertUnwindSafe(|| step.run(Input::Value(&mut slot))))
    };
    let kept: Option<Box<dyn Holder>> = match &flow {
        Ok(Flow::Pass) => Some(Box::new(Ready(slot))),
        _ => None,
    };
    let mut c = chain.borrow_mut();
    c.running = false;
    match settle(chain, &mut c, flow, step, kept) {
        Some(result) => c.current = result,
        None => return Ok(()),
    }
    drop(c);
    run(chain.clone());
    Ok(())
}

/// A step returned `inner`: take its result now if it has a final one, else pause this
/// chain until `inner` continues it.
fn wait_on(shared: &Shared, c: &mut Chain, inner: Shared) -> Option<Current> {
    if Rc::ptr_eq(shared, &inner) {
        return Some(Current::Failure(Failure::msg(
            "a callback returned the deferred it was attached to",
        )));
    }
    let mut ic = inner.borrow_mut();
    if ic.is_settled() && ic.chained_to.is_none() {
        let result = mem::replace(&mut ic.current, Current::Taken);
        return Some(match result {
            Current::Value(_) | Current::Failure(_) => result,
            _ => Current::Failure(Failure::new(WaitError::ResultTaken)),
        });
    }
    c.paused += 1;
    c.chained_to = Some(Rc::downgrade(&inner));
    c.current = Current::Pending;
    ic.steps.push_back(Entry::Continue(shared.clone()));
    None
}

/// Hands a result to the chain `target`. Returns whether `target` should run now.
fn deliver(target: &Shared, result: Fire, explicit: bool) -> bool {
    let mut t = target.borrow_mut();
    if explicit {
        if t.called {
            if !mem::take(&mut t.suppress_already_called) {
                log::error!(
                    "chain_deferred: target deferred (created at {}) was already called",
                    t.created_at
                );
            }
            return false;
        }
        t.called = true;
        t.canceller = None;
    } else {
        t.paused = t.paused.saturating_sub(1);
        t.chained_to = None;
    }
    t.current = result.into_current();
    t.runnable()
}

impl Drop for Chain {
    fn drop(&mut self) {
        if let Current::Failure(f) = &self.current {
            log::error!(
                "Unhandled error in Deferred (created at {}): {}",
                self.created_at,
                f
            );
        }
    }
}

impl fmt::Debug for Chain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Deferred(")?;
        if let Some(inner) = self.chained_to.as_ref().and_then(Weak::upgrade) {
            write!(f, "waiting on Deferred at {:p}", Rc::as_ptr(&inner))?;
        } else {
            match &self.current {
                Current::Pending => f.write_str("pending")?,
                Current::Value(_) => f.write_str("fired with a value")?,
                Current::Failure(fail) => write!(f, "failed: {fail}")?,
                Current::Running => f.write_str("running callbacks")?,
                Current::Taken => f.write_str("result taken")?,
            }
        }
        if self.paused > 0 {
            write!(f, ", paused {}", self.paused)?;
        }
        if !self.steps.is_empty() {
            write!(f, ", {} callbacks pending", self.steps.len())?;
        }
        write!(f, ", created at {})", self.created_at)
    }
}
