//! [`Deferred`], its [`Resolver`], and what callbacks may return ([`Outcome`]).

use std::cell::Cell;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::panic::{catch_unwind, AssertUnwindSafe, Location};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use crate::chain::{
    self, Canceller, Cancelling, ChainRef, Current, Holder, Res, Step, Value, WeakChainRef,
};
use crate::error::{AlreadyCalled, WaitError};
use crate::Failure;

/// A result you hold before it exists: Twisted's `Deferred`, typed.
///
/// A `Deferred<T>` will be fired once, by its [`Resolver`], with a `T` or a [`Failure`].
/// Callbacks and errbacks added to it form a chain; each `add_*` consumes the handle and
/// returns one typed at the chain's new result, so the types of the whole chain are
/// checked at compile time.
///
/// - A callback returns an [`Outcome`]: `Ok(value)` goes on down the callback path,
///   `Err(failure)` (or `?` on any error) switches to the errback path, and a `Deferred`
///   pauses this chain until that one fires, then goes on with its result.
/// - An errback that returns `Ok` switches back to the callback path.
/// - Callbacks run synchronously when the Deferred fires, on the firing thread; callbacks
///   added after it fired run at once. No callback runs re-entrantly, and no chain, however
///   long or deeply nested, grows the stack.
/// - A panic in a callback becomes a [`Failure`] ([`Panicked`](crate::Panicked)) on the
///   errback path; it never unwinds into the code that fired the Deferred.
/// - A Deferred whose chain ends in a failure that nobody handled logs it through
///   `log::error!` when it is dropped ("Unhandled error in Deferred"); when no logger
///   takes errors (none installed, or its level is off), it is written to stderr instead,
///   so it never vanishes.
///
/// A `Deferred` is a [`Future`]: `d.await` gives `Result<T, Failure>` (and does not suspend
/// if it has already fired). Dropping a Deferred that is being awaited cancels it, as
/// dropping a future does; dropping one that was never polled does not.
///
/// # Examples
///
/// ```
/// use ropewalk_deferred::{Deferred, Failure};
///
/// let (d, resolver) = Deferred::<&str>::pending();
/// let d = d
///     .add_callback(|s| Ok(s.len()))                    // Deferred<usize>
///     .add_callback(|n| Deferred::succeed(n * 2))       // returns a Deferred: chains
///     .add_callback(|n| -> Result<usize, Failure> {
///         if n > 100 { Err(Failure::msg("too long")) } else { Ok(n) }
///     })
///     .add_errback(|_f| Ok(0));
/// resolver.callback("hello").unwrap();
/// assert_eq!(d.wait().unwrap(), 10);
/// ```
///
/// Dropping a Deferred after adding callbacks is normal (it is not `#[must_use]`): its
/// chain runs when it fires, whoever holds it.
pub struct Deferred<T> {
    // No `Drop` of its own (what must happen on drop is in `Awaited` and the chain), so
    // the handle can be taken apart by moving, at no cost, as each `add_*` does.
    state: HandleState<T>,
}

/// Where a Deferred's result is.
///
/// Kept to a tag and one word for a word-sized `T` (two words in all): a handle that small
/// moves in registers. A wider one goes through memory on every `add_*`, written field by
/// field and read back whole, which stalls the processor (store forwarding): measured, a
/// third of the time of the chained scenarios of `bench/deferred`. So a failure is not
/// carried by the handle (a `Failure` is two words, a wide pointer, and it would bring
/// where it was created with it), but by a fired chain.
enum HandleState<T> {
    /// In a shared chain: pending, or fired with others (a resolver, a canceller handle,
    /// a waiting Deferred) able to see it.
    Chain(ChainRef),
    /// In a shared chain, polled as a future and not finished: dropping it cancels.
    Awaited(Awaited),
    /// Fired with a value, every callback run, and nobody else can see it: the value lives
    /// in the handle, and callbacks added now run inline without allocating.
    Value(T),
    /// Taken by `try_result` or by a completed `poll`.
    Taken,
}

/// The chain of a Deferred being awaited: cancelled if dropped before it is defused.
struct Awaited(Option<ChainRef>);

impl Awaited {
    fn defuse(mut self) -> ChainRef {
        self.0.take().expect("an armed await guard")
    }
}

impl Drop for Awaited {
    fn drop(&mut self) {
        if let Some(shared) = self.0.take() {
            chain::cancel(&shared);
        }
    }
}

// The result is never pinned: a Deferred can move while it is awaited.
impl<T> Unpin for Deferred<T> {}

/// The producer's side of a [`Deferred`]: fires it once, with a value or a failure.
///
/// Firing consumes the resolver, so one producer cannot fire twice. Dropping a resolver
/// without firing errbacks the Deferred with [`ResolverDropped`](crate::ResolverDropped)
/// (when anything is listening), so a waiter never hangs on a producer that is gone.
///
/// # Examples
///
/// ```
/// use ropewalk_deferred::Deferred;
///
/// let (d, r) = Deferred::<u8>::pending();
/// assert!(!r.is_called());
/// r.callback(7).unwrap();
/// assert_eq!(d.wait().unwrap(), 7);
/// ```
pub struct Resolver<T> {
    chain: Option<ChainRef>,
    _t: PhantomData<fn(T)>,
}

/// A handle that can only cancel a Deferred and ask whether it fired; it does not keep the
/// Deferred alive. Get one with [`Deferred::cancel_handle`] before handing the Deferred on.
///
/// # Examples
///
/// ```
/// use ropewalk_deferred::{Deferred, Cancelled};
///
/// let (d, _r) = Deferred::<()>::pending();
/// let h = d.cancel_handle();
/// let d = d.add_errback(|f| { f.trap::<Cancelled>()?; Ok(()) });
/// h.cancel();
/// assert!(h.is_called());
/// assert!(d.wait().is_ok());
/// ```
#[derive(Clone)]
pub struct CancelHandle {
    chain: chain::WeakChainRef,
}

/// What a callback hands on: a value, a failure, or a Deferred to wait on.
///
/// Callbacks usually return `Result<U, Failure>` or `Deferred<U>`, which convert through
/// [`IntoOutcome`]; `Outcome` is for a callback that decides at run time which of the three
/// it returns.
///
/// # Examples
///
/// ```
/// use ropewalk_deferred::{Deferred, Outcome};
///
/// let d = Deferred::succeed(3).add_callback(|n| {
///     if n > 2 { Outcome::Chain(Deferred::succeed(n)) } else { Outcome::Value(0) }
/// });
/// assert_eq!(d.wait().unwrap(), 3);
/// ```
pub enum Outcome<U> {
    /// Go on down the callback path with this value.
    Value(U),
    /// Switch to the errback path with this failure.
    Failure(Failure),
    /// Pause until this Deferred fires, then go on with its result.
    Chain(Deferred<U>),
}

impl<U: 'static + fmt::Debug> fmt::Debug for Outcome<U> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Value(v) => f.debug_tuple("Value").field(v).finish(),
            Outcome::Failure(fail) => f.debug_tuple("Failure").field(fail).finish(),
            Outcome::Chain(d) => f.debug_tuple("Chain").field(d).finish(),
        }
    }
}

/// What a callback may return: `Result<U, Failure>`, `Deferred<U>` or [`Outcome<U>`] —
/// or nothing, `()`, which goes on with `()` (as a Twisted callback that returns `None`).
///
/// # Examples
///
/// ```
/// use ropewalk_deferred::{IntoOutcome, Outcome, Failure};
///
/// let o = Ok::<_, Failure>(1).into_outcome();
/// assert!(matches!(o, Outcome::Value(1)));
/// ```
pub trait IntoOutcome<U> {
    /// Converts into an [`Outcome`].
    ///
    /// # Examples
    ///
    /// ```
    /// use ropewalk_deferred::{Deferred, Failure, IntoOutcome, Outcome};
    ///
    /// let failed = Err::<u8, _>(Failure::msg("no")).into_outcome();
    /// assert!(matches!(failed, Outcome::Failure(_)));
    /// let later = Deferred::<u8>::pending().0.into_outcome();
    /// assert!(matches!(later, Outcome::Chain(_)));
    /// ```
    fn into_outcome(self) -> Outcome<U>;
}

impl<U> IntoOutcome<U> for Result<U, Failure> {
    fn into_outcome(self) -> Outcome<U> {
        match self {
            Ok(v) => Outcome::Value(v),
            Err(f) => Outcome::Failure(f),
        }
    }
}

/// A callback that returns nothing succeeds with `()`: `d.add_callback(|v| println!("{v}"))`.
/// (An errback that returns nothing recovers, as in Twisted.)
///
/// # Examples
///
/// ```
/// use ropewalk_deferred::Deferred;
///
/// let d: Deferred<()> = Deferred::succeed(2).add_callback(|n| println!("got {n}"));
/// assert!(d.wait().is_ok());
/// ```
impl IntoOutcome<()> for () {
    fn into_outcome(self) -> Outcome<()> {
        Outcome::Value(())
    }
}

impl<U> IntoOutcome<U> for Deferred<U> {
    fn into_outcome(self) -> Outcome<U> {
        Outcome::Chain(self)
    }
}

impl<U> IntoOutcome<U> for Outcome<U> {
    fn into_outcome(self) -> Outcome<U> {
        self
    }
}

/// The chain's new result for an outcome whose value is stored on its own (inline if
/// small).
#[inline(always)]
fn out_of<U: 'static>(outcome: Outcome<U>) -> Current {
    match outcome {
        Outcome::Value(v) => Current::Value(Value::new(v)),
        Outcome::Failure(f) => Current::Failure(f),
        Outcome::Chain(d) => chain_out(d),
    }
}

/// Stores what a returned Deferred hands on in `cur`; out of line, so that the common
/// paths stay small.
#[inline(never)]
fn put_chain<U: 'static>(cur: &mut Current, d: Deferred<U>) {
    match d.into_ready() {
        Ok(v) => chain::put_value(cur, v),
        Err(out) => chain::put(cur, out),
    }
}

/// Stores what a returned Deferred hands on in `cur`. The most common one, a Deferred on a
/// chain (built for the purpose, settled or not), goes on as that chain alone: one word,
/// not the whole handle.
#[inline(always)]
fn put_returned<U: 'static>(cur: &mut Current, d: Deferred<U>) {
    match d.state {
        HandleState::Chain(s) => chain::put_returned(cur, s),
        state => put_chain(cur, Deferred::<U> { state }),
    }
}

/// `out_of` for a returned Deferred, kept out of line so that the common paths stay small.
#[inline(never)]
fn chain_out<U: 'static>(d: Deferred<U>) -> Current {
    match d.into_ready() {
        Ok(v) => Current::Value(Value::new(v)),
        Err(out) => out,
    }
}

/// A callback, an errback, or both, as one closure over `Result<T, Failure>`, whose output
/// is stored inline: the step holds nothing but its closure (no allocation if that
/// captures nothing).
struct Lean<T, U, F> {
    f: F,
    _t: PhantomData<fn(T) -> U>,
}

impl<T: 'static, U: 'static, F: FnOnce(Result<T, Failure>) -> Outcome<U>> Step for Lean<T, U, F> {
    fn run(self: Box<Self>, cur: &mut Current) {
        let Lean { f, .. } = *self;
        // Each outcome written into `cur` on its own path (merged first, it would go
        // through a temporary copied whole).
        match f(chain::take_input::<T>(cur)) {
            Outcome::Value(v) => chain::put_value(cur, v),
            Outcome::Failure(e) => chain::put(cur, Current::Failure(e)),
            Outcome::Chain(d) => put_returned(cur, d),
        }
    }

    fn run_on(self: Box<Self>, slot: &mut dyn std::any::Any) -> Current {
        let Lean { f, .. } = *self;
        out_of(f(Ok(chain::take_value::<T>(slot))))
    }
}

/// As [`Lean`], for an output that is not stored inline: it is kept in the step's own box,
/// which then holds the chain's current value (one allocation for both).
struct Slotted<T, U, F> {
    f: Option<F>,
    out: Option<U>,
    _t: PhantomData<fn(T)>,
}

impl<T: 'static, U: 'static, F: 'static> Holder for Slotted<T, U, F> {
    fn slot(&self) -> &dyn std::any::Any {
        &self.out
    }
    fn slot_mut(&mut self) -> &mut dyn std::any::Any {
        &mut self.out
    }
}

impl<T: 'static, U: 'static, F: FnOnce(Result<T, Failure>) -> Outcome<U> + 'static>
    Slotted<T, U, F>
{
    fn finish(mut self: Box<Self>, outcome: Outcome<U>) -> Current {
        let value = match outcome {
            Outcome::Value(v) => v,
            Outcome::Failure(f) => return Current::Failure(f),
            Outcome::Chain(d) => match d.into_ready() {
                Ok(v) => v,
                Err(out) => return out,
            },
        };
        self.out = Some(value);
        Current::Value(Value::Boxed(self))
    }
}

impl<T: 'static, U: 'static, F: FnOnce(Result<T, Failure>) -> Outcome<U> + 'static> Step
    for Slotted<T, U, F>
{
    fn run(mut self: Box<Self>, cur: &mut Current) {
        let f = self.f.take().expect("step runs once");
        let outcome = f(chain::take_input::<T>(cur));
        let out = self.finish(outcome);
        chain::put(cur, out);
    }

    fn run_on(mut self: Box<Self>, slot: &mut dyn std::any::Any) -> Current {
        let f = self.f.take().expect("step runs once");
        let outcome = f(Ok(chain::take_value::<T>(slot)));
        self.finish(outcome)
    }
}

/// An errback alone: a value passes by without being moved.
struct Errback<T, F> {
    f: F,
    _t: PhantomData<fn() -> T>,
}

impl<T: 'static, F: FnOnce(Failure) -> Outcome<T>> Step for Errback<T, F> {
    fn run(self: Box<Self>, cur: &mut Current) {
        if let Current::Failure(_) = cur {
            let Current::Failure(fail) = std::mem::replace(cur, Current::Running) else {
                unreachable!("matched above")
            };
            let out = out_of((self.f)(fail));
            chain::put(cur, out);
        }
    }

    fn run_on(self: Box<Self>, slot: &mut dyn std::any::Any) -> Current {
        Current::Value(Value::new(chain::take_value::<T>(slot)))
    }
}

/// The step for a callback, an errback or both as one closure.
#[inline(always)]
fn step_of<T: 'static, U: 'static, F: FnOnce(Result<T, Failure>) -> Outcome<U> + 'static>(
    f: F,
) -> Box<dyn Step> {
    if !Value::inlines::<U>() {
        return Box::new(Slotted {
            f: Some(f),
            out: None,
            _t: PhantomData,
        });
    }
    Box::new(Lean { f, _t: PhantomData })
}

impl<T: 'static> Deferred<T> {
    #[inline]
    pub(crate) fn from_shared(chain: ChainRef) -> Deferred<T> {
        Deferred {
            state: HandleState::Chain(chain),
        }
    }

    /// A Deferred with its final result: a value in the handle, a failure in a fired
    /// chain created at `at` (named if it is dropped unhandled).
    #[inline]
    fn ready(result: Result<T, Failure>, at: &'static Location<'static>) -> Deferred<T> {
        match result {
            Ok(v) => Deferred::of_value(v),
            Err(f) => Deferred::failed(f, at),
        }
    }

    /// A Deferred whose handle carries `value`.
    #[inline(always)]
    fn of_value(value: T) -> Deferred<T> {
        Deferred {
            state: HandleState::Value(value),
        }
    }

    /// A Deferred whose result is `failure`: out of line, off the value paths.
    #[inline(never)]
    fn failed(failure: Failure, at: &'static Location<'static>) -> Deferred<T> {
        Deferred::from_shared(ChainRef::fired(at, Res::Failure(failure)))
    }

    /// The shared chain, if the result is not carried by the handle.
    pub(crate) fn chain(&self) -> Option<&ChainRef> {
        match &self.state {
            HandleState::Chain(s) | HandleState::Awaited(Awaited(Some(s))) => Some(s),
            _ => None,
        }
    }

    /// The shared chain, made for a value the handle carries (the rare paths: pause,
    /// timeouts on a fired Deferred, explicit chaining): created where this is called
    /// from (the handle does not keep where it was made).
    #[track_caller]
    pub(crate) fn into_shared(self) -> ChainRef {
        match self.state {
            HandleState::Chain(s) => s,
            HandleState::Awaited(a) => a.defuse(),
            HandleState::Value(v) => ChainRef::fired(Location::caller(), Res::Value(Value::new(v))),
            HandleState::Taken => ChainRef::fired(
                Location::caller(),
                Res::Failure(Failure::new(WaitError::ResultTaken)),
            ),
        }
    }

    /// The value if the handle carries one; otherwise what a step returning this Deferred
    /// hands on (its failure, or the chain to wait on).
    #[inline]
    fn into_ready(self) -> Result<T, Current> {
        match self.state {
            HandleState::Value(v) => Ok(v),
            // Settled and seen by nobody else: take the result now, no wait to set up.
            HandleState::Chain(mut s) => match chain::take_unique::<T>(&mut s) {
                Some((Ok(v), _)) => Ok(v),
                Some((Err(f), _)) => Err(Current::Failure(f)),
                None => Err(Current::Wait(s)),
            },
            HandleState::Awaited(a) => Err(Current::Wait(a.defuse())),
            HandleState::Taken => Err(Current::Failure(Failure::new(WaitError::ResultTaken))),
        }
    }

    /// Takes the result if the handle carries it, or can take it from a chain nobody else
    /// sees; otherwise gives the chain back. With the result, the chain it was taken from,
    /// if any: emptied, and free to hold the next result (a failure is kept in a chain).
    #[inline]
    fn take_ready(self) -> Result<(Result<T, Failure>, Option<ChainRef>), ChainRef> {
        let mut s = match self.state {
            HandleState::Value(v) => return Ok((Ok(v), None)),
            HandleState::Chain(s) => s,
            HandleState::Awaited(a) => a.defuse(),
            HandleState::Taken => return Ok((Err(Failure::new(WaitError::ResultTaken)), None)),
        };
        match chain::take_unique::<T>(&mut s) {
            Some((found, _)) => Ok((found, Some(s))),
            None => Err(s),
        }
    }

    /// Whether the result is carried by the handle (no chain).
    pub(crate) fn is_ready(&self) -> bool {
        matches!(self.state, HandleState::Value(_))
    }

    /// A Deferred with no result yet, and the [`Resolver`] that will give it one.
    ///
    /// # Examples
    ///
    /// ```
    /// use ropewalk_deferred::Deferred;
    ///
    /// let (d, r) = Deferred::<String>::pending();
    /// let d = d.add_callback(|s| Ok(s + "!"));
    /// r.callback("hi".to_string()).unwrap();
    /// assert_eq!(d.wait().unwrap(), "hi!");
    /// ```
    #[track_caller]
    #[inline(always)]
    pub fn pending() -> (Deferred<T>, Resolver<T>) {
        let shared = ChainRef::pending(Location::caller());
        let resolver = Resolver {
            chain: Some(shared.clone()),
            _t: PhantomData,
        };
        (Deferred::from_shared(shared), resolver)
    }

    /// A pending Deferred with a canceller, called once by the first [`cancel`](Self::cancel)
    /// while it has no result.
    ///
    /// The canceller stops the work (it is Twisted's `Deferred(canceller)`) and may give the
    /// result itself: `Some(Ok(v))` or `Some(Err(f))`. `None` errbacks the Deferred with
    /// [`Cancelled`](crate::Cancelled). Either way the Deferred then has its result, and the
    /// producer's later fire returns [`AlreadyCalled`].
    ///
    /// # Examples
    ///
    /// ```
    /// use ropewalk_deferred::{Deferred, Cancelled};
    ///
    /// let (d, r) = Deferred::<i32>::with_canceller(|| None);
    /// d.cancel();
    /// assert!(r.callback(1).is_err());
    /// assert!(d.wait().unwrap_err().is::<Cancelled>());
    /// ```
    #[track_caller]
    pub fn with_canceller(
        canceller: impl FnOnce() -> Option<Result<T, Failure>> + 'static,
    ) -> (Deferred<T>, Resolver<T>) {
        let (d, r) = Deferred::pending();
        if let Some(c) = d.chain() {
            c.borrow_mut()
                .set_canceller(Box::new(move || match canceller() {
                    Some(result) => Cancelling::Fire(res_of(result)),
                    None => Cancelling::Cancelled,
                }));
        }
        (d, r)
    }

    /// A pending Deferred whose canceller may pass the cancellation on to the work the
    /// Deferred waits for, instead of ending it: how a task's Deferred is cancelled
    /// (Twisted's `inlineCallbacks` / `ensureDeferred` canceller).
    ///
    /// On each [`cancel`](Self::cancel) while the Deferred has no result, `pass_on` runs.
    /// It returns `true` if it passed the cancellation on (it cancelled what the work
    /// awaits, and the work goes on and fires the Deferred itself, with whatever it makes
    /// of that): the Deferred stays pending, and the next `cancel` calls `pass_on` again.
    /// `false` means it stopped the work: the Deferred errbacks with
    /// [`Cancelled`](crate::Cancelled), as with [`with_canceller`](Self::with_canceller).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::{cell::RefCell, rc::Rc};
    /// use ropewalk_deferred::{Cancelled, Deferred, Failure};
    ///
    /// // The work waits on `step`; cancelling the whole cancels `step`, and the work
    /// // turns that into a value of its own.
    /// let (step, step_r) = Deferred::<u32>::pending();
    /// let step_handle = step.cancel_handle();
    /// let (whole, whole_r) = Deferred::<&str>::with_forwarding_canceller(move || {
    ///     step_handle.cancel();
    ///     true
    /// });
    /// let whole_r = Rc::new(RefCell::new(Some(whole_r)));
    /// let fire = whole_r.clone();
    /// let _ = step.add_both(move |r: Result<u32, Failure>| {
    ///     let said = if r.is_err_and(|f| f.is::<Cancelled>()) { "stopped cleanly" } else { "done" };
    ///     fire.borrow_mut().take().unwrap().callback(said).unwrap();
    ///     Ok(())
    /// });
    /// whole.cancel();
    /// assert!(step_r.is_called()); // `step` was cancelled...
    /// assert_eq!(whole.wait().unwrap(), "stopped cleanly"); // ...and the work ended
    /// ```
    #[track_caller]
    pub fn with_forwarding_canceller(
        pass_on: impl Fn() -> bool + 'static,
    ) -> (Deferred<T>, Resolver<T>) {
        fn forwarding(pass_on: Rc<dyn Fn() -> bool>) -> Canceller {
            Box::new(move || {
                if pass_on() {
                    Cancelling::PassedOn(forwarding(pass_on))
                } else {
                    Cancelling::Cancelled
                }
            })
        }
        let (d, r) = Deferred::pending();
        if let Some(c) = d.chain() {
            c.borrow_mut().set_canceller(forwarding(Rc::new(pass_on)));
        }
        (d, r)
    }

    /// A Deferred that already has the value `value` (Twisted's `succeed`).
    ///
    /// # Examples
    ///
    /// ```
    /// let d = ropewalk_deferred::Deferred::succeed(5).add_callback(|n| Ok(n + 1));
    /// assert_eq!(d.wait().unwrap(), 6);
    /// ```
    #[track_caller]
    pub fn succeed(value: T) -> Deferred<T> {
        Deferred::ready(Ok(value), Location::caller())
    }

    /// A Deferred that already failed (Twisted's `fail`).
    ///
    /// # Examples
    ///
    /// ```
    /// use ropewalk_deferred::{Deferred, Failure};
    ///
    /// let d = Deferred::<i32>::fail(Failure::msg("nope")).add_errback(|_| Ok(0));
    /// assert_eq!(d.wait().unwrap(), 0);
    /// ```
    #[track_caller]
    pub fn fail(failure: impl Into<Failure>) -> Deferred<T> {
        Deferred::ready(Err(failure.into()), Location::caller())
    }

    /// A Deferred fired with `result`.
    ///
    /// # Examples
    ///
    /// ```
    /// let d = ropewalk_deferred::Deferred::from_result(Ok::<_, ropewalk_deferred::Failure>(1));
    /// assert_eq!(d.wait().unwrap(), 1);
    /// ```
    #[track_caller]
    pub fn from_result(result: Result<T, Failure>) -> Deferred<T> {
        Deferred::ready(result, Location::caller())
    }

    #[inline(always)]
    #[track_caller]
    fn then<U: 'static>(
        self,
        f: impl FnOnce(Result<T, Failure>) -> Outcome<U> + 'static,
    ) -> Deferred<U> {
        // The common cases first: a chain somebody else (its resolver) also holds, and a
        // value the handle carries.
        let state = match self.state {
            HandleState::Chain(shared) if !shared.is_unique() => {
                chain::push(&shared, step_of(f));
                return Deferred::from_shared(shared);
            }
            HandleState::Value(v) => return run_inline(None, move || f(Ok(v))),
            state => state,
        };
        match (Deferred { state }).take_ready() {
            Ok((result, kept)) => run_inline(kept, move || f(result)),
            Err(shared) => {
                chain::push(&shared, step_of(f));
                Deferred::from_shared(shared)
            }
        }
    }

    /// Adds a callback: it runs with the value when the chain is on the callback path.
    ///
    /// It returns `Ok(u)`, `Err(failure)` (with `?`, any error), or a `Deferred<U>` to wait
    /// on. A failure passes it by.
    ///
    /// # Examples
    ///
    /// ```
    /// use ropewalk_deferred::Deferred;
    ///
    /// let d = Deferred::succeed("42").add_callback(|s| Ok(s.parse::<i32>()?));
    /// assert_eq!(d.wait().unwrap(), 42);
    /// let d = Deferred::succeed("x").add_callback(|s| Ok(s.parse::<i32>()?));
    /// assert!(d.wait().unwrap_err().is::<std::num::ParseIntError>());
    /// ```
    #[track_caller]
    pub fn add_callback<U: 'static, R: IntoOutcome<U>>(
        self,
        f: impl FnOnce(T) -> R + 'static,
    ) -> Deferred<U> {
        self.then(move |r| match r {
            Ok(v) => f(v).into_outcome(),
            Err(fail) => Outcome::Failure(fail),
        })
    }

    /// Adds an errback: it runs with the failure when the chain is on the errback path.
    ///
    /// Returning `Ok(value)` recovers (back to the callback path); `Err(failure)` hands a
    /// failure on. A value passes it by.
    ///
    /// # Examples
    ///
    /// ```
    /// use ropewalk_deferred::{Deferred, Failure};
    ///
    /// let d = Deferred::<u8>::fail(Failure::msg("x")).add_errback(|f| {
    ///     assert_eq!(f.to_string(), "x");
    ///     Ok(1)
    /// });
    /// assert_eq!(d.wait().unwrap(), 1);
    /// ```
    #[track_caller]
    pub fn add_errback<R: IntoOutcome<T>>(
        self,
        f: impl FnOnce(Failure) -> R + 'static,
    ) -> Deferred<T> {
        let shared = match self.take_ready() {
            Ok((Ok(v), _)) => return Deferred::of_value(v),
            Ok((Err(fail), kept)) => return run_inline(kept, move || f(fail).into_outcome()),
            Err(shared) => shared,
        };
        chain::push(
            &shared,
            Box::new(Errback {
                f: move |fail| f(fail).into_outcome(),
                _t: PhantomData,
            }),
        );
        Deferred::from_shared(shared)
    }

    /// Adds one function for both paths: it gets the result as `Result<T, Failure>`.
    ///
    /// # Examples
    ///
    /// ```
    /// use ropewalk_deferred::{Deferred, Failure};
    ///
    /// let d = Deferred::<i32>::fail(Failure::msg("x")).add_both(|r| Ok(r.is_ok()));
    /// assert_eq!(d.wait().unwrap(), false);
    /// ```
    #[track_caller]
    pub fn add_both<U: 'static, R: IntoOutcome<U>>(
        self,
        f: impl FnOnce(Result<T, Failure>) -> R + 'static,
    ) -> Deferred<U> {
        self.then(move |r| f(r).into_outcome())
    }

    /// Adds a callback and an errback as one step: exactly one of them runs, and the
    /// errback does not see a failure raised by the callback (Twisted's `addCallbacks`).
    ///
    /// # Examples
    ///
    /// ```
    /// use ropewalk_deferred::{Deferred, Failure};
    ///
    /// let d = Deferred::succeed(1).add_callbacks(
    ///     |_| -> Result<i32, Failure> { Err(Failure::msg("cb failed")) },
    ///     |_| Ok(-1), // not called for the callback's own failure
    /// );
    /// assert_eq!(d.wait().unwrap_err().to_string(), "cb failed");
    /// ```
    #[track_caller]
    pub fn add_callbacks<U: 'static, R1: IntoOutcome<U>, R2: IntoOutcome<U>>(
        self,
        callback: impl FnOnce(T) -> R1 + 'static,
        errback: impl FnOnce(Failure) -> R2 + 'static,
    ) -> Deferred<U> {
        self.then(move |r| match r {
            Ok(v) => callback(v).into_outcome(),
            Err(f) => errback(f).into_outcome(),
        })
    }

    /// Fires `other` with this Deferred's result when it arrives (Twisted's
    /// `chainDeferred`). Unlike Twisted's, a long explicit chain does not grow the stack.
    ///
    /// # Examples
    ///
    /// ```
    /// use ropewalk_deferred::Deferred;
    ///
    /// let (a, ra) = Deferred::<i32>::pending();
    /// let (b, rb) = Deferred::<i32>::pending();
    /// a.chain_deferred(rb);
    /// ra.callback(9).unwrap();
    /// assert_eq!(b.wait().unwrap(), 9);
    /// ```
    #[track_caller]
    pub fn chain_deferred(self, other: Resolver<T>) {
        if self.is_ready() {
            if let Ok((result, kept)) = self.take_ready() {
                let at = created_at(&kept);
                if other.resolve(result).is_err() {
                    log::error!(
                        "chain_deferred: target deferred was already called (source created at {at})"
                    );
                }
            }
            return;
        }
        let target = other.into_shared();
        let shared = self.into_shared();
        chain::chain_to(&shared, target);
    }

    /// Pauses the chain: no callback runs until a matching [`unpause`](Self::unpause).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::{cell::Cell, rc::Rc};
    /// use ropewalk_deferred::Deferred;
    ///
    /// let ran = Rc::new(Cell::new(false));
    /// let mut d = Deferred::succeed(1);
    /// d.pause();
    /// let r = ran.clone();
    /// let d = d.add_callback(move |n| { r.set(true); Ok(n) });
    /// assert!(!ran.get());
    /// d.unpause();
    /// assert!(ran.get());
    /// ```
    #[track_caller]
    pub fn pause(&mut self) {
        if self.chain().is_none() {
            let placeholder = Deferred {
                state: HandleState::Taken,
            };
            let d = std::mem::replace(self, placeholder);
            *self = Deferred::from_shared(d.into_shared());
        }
        if let Some(c) = self.chain() {
            chain::pause(c);
        }
    }

    /// Undoes one [`pause`](Self::pause), and goes on running if it was the last.
    ///
    /// An `unpause` without a matching `pause` does nothing (Twisted lets the counter go
    /// negative, so that the next `pause` has no effect; we do not).
    ///
    /// # Examples
    ///
    /// ```
    /// let mut d = ropewalk_deferred::Deferred::succeed(1);
    /// d.unpause(); // unmatched: no effect
    /// d.pause();   // still pauses
    /// assert!(d.is_paused());
    /// ```
    pub fn unpause(&self) {
        if let Some(c) = self.chain() {
            chain::unpause(c);
        }
    }

    /// Whether the chain is paused (by [`pause`](Self::pause) or while it waits on a
    /// Deferred a callback returned).
    ///
    /// # Examples
    ///
    /// ```
    /// let d = ropewalk_deferred::Deferred::succeed(());
    /// assert!(!d.is_paused());
    /// ```
    pub fn is_paused(&self) -> bool {
        self.chain().is_some_and(|c| c.borrow().paused > 0)
    }

    /// Whether the Deferred has been fired (it may still be running or waiting on another).
    ///
    /// # Examples
    ///
    /// ```
    /// let (d, r) = ropewalk_deferred::Deferred::<()>::pending();
    /// assert!(!d.is_called());
    /// r.callback(()).unwrap();
    /// assert!(d.is_called());
    /// ```
    pub fn is_called(&self) -> bool {
        self.chain().is_none_or(|c| c.borrow().called)
    }

    /// Whether the result is final: fired, not paused, every callback run.
    ///
    /// # Examples
    ///
    /// ```
    /// let d = ropewalk_deferred::Deferred::succeed(());
    /// assert!(d.has_result());
    /// ```
    pub fn has_result(&self) -> bool {
        self.chain().is_none_or(|c| c.borrow().is_settled())
    }

    /// Cancels the Deferred (Twisted's `cancel`).
    ///
    /// - With no result yet: the canceller runs, if there is one (see
    ///   [`with_canceller`](Self::with_canceller)); otherwise the Deferred errbacks with
    ///   [`Cancelled`](crate::Cancelled) and exactly one later fire from its producer is
    ///   swallowed silently.
    /// - Fired but waiting on a Deferred a callback returned: that one is cancelled.
    /// - Fired otherwise: nothing happens.
    ///
    /// # Examples
    ///
    /// ```
    /// use ropewalk_deferred::{Deferred, Cancelled};
    ///
    /// let (d, r) = Deferred::<i32>::pending();
    /// d.cancel();
    /// assert!(r.callback(1).is_ok()); // the one late fire is swallowed
    /// assert!(d.wait().unwrap_err().is::<Cancelled>());
    /// ```
    pub fn cancel(&self) {
        if let Some(c) = self.chain() {
            chain::cancel(c);
        }
    }

    /// A handle that can cancel this Deferred later, after it has been handed on.
    ///
    /// # Examples
    ///
    /// ```
    /// let (d, _r) = ropewalk_deferred::Deferred::<()>::pending();
    /// let h = d.cancel_handle();
    /// h.cancel();
    /// assert!(d.is_called());
    /// ```
    pub fn cancel_handle(&self) -> CancelHandle {
        CancelHandle {
            chain: self.chain().map(ChainRef::downgrade).unwrap_or_default(),
        }
    }

    /// Takes the result if it is final, without waiting: Twisted's `successResultOf` /
    /// `failureResultOf` in one. `None` (and the Deferred is left as it was) otherwise.
    ///
    /// # Examples
    ///
    /// ```
    /// let (mut d, r) = ropewalk_deferred::Deferred::<i32>::pending();
    /// assert!(d.try_result().is_none());
    /// r.callback(3).unwrap();
    /// assert_eq!(d.try_result().unwrap().unwrap(), 3);
    /// ```
    pub fn try_result(&mut self) -> Option<Result<T, Failure>> {
        match std::mem::replace(&mut self.state, HandleState::Taken) {
            HandleState::Value(v) => Some(Ok(v)),
            state @ (HandleState::Chain(_) | HandleState::Awaited(_)) => {
                self.state = state;
                let taken = {
                    let shared = self.chain()?;
                    let settled = shared.borrow().is_settled();
                    settled.then(|| shared.take_result::<T>())
                };
                if taken.is_some() {
                    // Finished: dropping the handle no longer cancels.
                    self.disarm();
                }
                taken
            }
            HandleState::Taken => None,
        }
    }

    /// Blocks until the Deferred has a result, and returns it: for scripts.
    ///
    /// - If it already has one, it is returned at once.
    /// - Otherwise, if a reactor runs on this thread (it installs a
    ///   [`WaitDriver`](crate::WaitDriver)), that reactor runs until the Deferred fires.
    /// - Called from inside a callback or a reactor turn it returns
    ///   [`WaitError::InsideCallback`] rather than re-entering; with no reactor on this thread
    ///   it returns [`WaitError::NoReactor`] rather than hanging.
    ///
    /// # Errors
    ///
    /// The Deferred's failure, or a [`WaitError`] wrapped in a [`Failure`].
    ///
    /// # Examples
    ///
    /// ```
    /// use ropewalk_deferred::{Deferred, WaitError};
    ///
    /// assert_eq!(Deferred::succeed(1).wait().unwrap(), 1);
    /// let (d, _r) = Deferred::<i32>::pending();
    /// assert!(d.wait().unwrap_err().is::<WaitError>());
    /// ```
    #[track_caller]
    pub fn wait(self) -> Result<T, Failure> {
        let shared = match self.take_ready() {
            Ok((result, _)) => return result,
            Err(shared) => shared,
        };
        if shared.borrow().is_settled() {
            return shared.take_result::<T>();
        }
        if chain::in_callback() {
            return Err(Failure::new(WaitError::InsideCallback));
        }
        let Some(driver) = crate::wait::driver() else {
            return Err(Failure::new(WaitError::NoReactor));
        };
        driver.run_until(&mut || shared.borrow().is_settled())?;
        let settled = shared.borrow().is_settled();
        if settled {
            shared.take_result::<T>()
        } else {
            Err(Failure::new(WaitError::ReactorStopped))
        }
    }
}

/// Where the Deferred whose result was taken was created: its chain's creation site (`kept`,
/// from [`Deferred::take_ready`]), or, for a result the handle carried, the caller.
#[track_caller]
fn created_at(kept: &Option<ChainRef>) -> &'static Location<'static> {
    kept.as_ref()
        .map_or(Location::caller(), ChainRef::created_at)
}

/// Runs a callback now, on a result taken from a handle, or from `kept`: the chain that
/// held it, emptied, which holds a failure the callback hands on (no new chain made for
/// it). A Deferred made here without one is created where the callback was added.
#[track_caller]
fn run_inline<U: 'static>(kept: Option<ChainRef>, f: impl FnOnce() -> Outcome<U>) -> Deferred<U> {
    let outcome = {
        let _depth = chain::DepthGuard::enter();
        catch_unwind(AssertUnwindSafe(f))
            .unwrap_or_else(|p| Outcome::Failure(Failure::from_panic(p)))
    };
    match outcome {
        Outcome::Value(v) => Deferred::of_value(v),
        Outcome::Failure(f) => match kept {
            Some(s) => {
                chain::refill(&s, Res::Failure(f));
                Deferred::from_shared(s)
            }
            None => Deferred::failed(f, Location::caller()),
        },
        Outcome::Chain(d) => match d.chain() {
            // A final result: the returned Deferred is the answer as it stands.
            None => d,
            Some(s) if s.borrow().is_settled() => d,
            Some(_) => Deferred::from_shared(chain::waiting_on(created_at(&kept), d.into_shared())),
        },
    }
}

pub(crate) fn res_of<T: 'static>(result: Result<T, Failure>) -> Res {
    match result {
        Ok(v) => Res::Value(Value::new(v)),
        Err(f) => Res::Failure(f),
    }
}

impl<T> Deferred<T> {
    /// An awaited handle goes back to a plain one: dropping it no longer cancels.
    fn disarm(&mut self) {
        if let HandleState::Awaited(_) = self.state {
            if let HandleState::Awaited(a) = std::mem::replace(&mut self.state, HandleState::Taken)
            {
                self.state = HandleState::Chain(a.defuse());
            }
        }
    }

    /// A plain handle on a chain becomes an awaited one: dropping it cancels.
    fn arm(&mut self) {
        if let HandleState::Chain(_) = self.state {
            if let HandleState::Chain(s) = std::mem::replace(&mut self.state, HandleState::Taken) {
                self.state = HandleState::Awaited(Awaited(Some(s)));
            }
        }
    }
}

thread_local! {
    /// The Deferred that last answered `Pending` to a poll on this thread.
    static LAST_AWAITED: Cell<Option<WeakChainRef>> = const { Cell::new(None) };
}

/// For executors: swaps in `handle` as the Deferred that last answered `Pending` to a poll
/// on this thread, and returns the one there before.
///
/// A Deferred polled as a future notes itself here each time it answers `Pending`. An
/// executor that clears the note before it polls a task, and reads it back after, knows
/// which Deferred the task now awaits, and can cancel that one when the task is cancelled
/// (the task then resumes at its `.await` with the Deferred's result: `Cancelled`, or what
/// its canceller gave). The reactor's tasks do this; a future that awaits several
/// Deferreds at once is noted by the last one polled. Put the previous note back after
/// the poll, so that a task polled inside another's poll leaves the outer one's note.
///
/// # Examples
///
/// ```
/// use std::future::Future;
/// use std::pin::pin;
/// use std::task::{Context, Waker};
/// use ropewalk_deferred::{swap_last_awaited, Cancelled, Deferred};
///
/// let (d, _r) = Deferred::<u8>::pending();
/// let mut fut = pin!(async move { d.await.map_err(|f| f.is::<Cancelled>()) });
/// let outer = swap_last_awaited(None);
/// assert!(fut.as_mut().poll(&mut Context::from_waker(Waker::noop())).is_pending());
/// let awaited = swap_last_awaited(outer).expect("it awaits d");
/// awaited.cancel();
/// let done = fut.as_mut().poll(&mut Context::from_waker(Waker::noop()));
/// assert_eq!(done, std::task::Poll::Ready(Err(true)));
/// ```
pub fn swap_last_awaited(handle: Option<CancelHandle>) -> Option<CancelHandle> {
    LAST_AWAITED
        .with(|last| last.replace(handle.map(|h| h.chain)))
        .map(|chain| CancelHandle { chain })
}

impl<T: 'static> Future for Deferred<T> {
    type Output = Result<T, Failure>;

    #[inline]
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        // A handle that carries its value (`succeed`, or a finished chain): no call.
        if let HandleState::Value(_) = this.state {
            if let HandleState::Value(v) = std::mem::replace(&mut this.state, HandleState::Taken) {
                return Poll::Ready(Ok(v));
            }
        }
        this.poll_chain(cx)
    }
}

impl<T: 'static> Deferred<T> {
    fn poll_chain(&mut self, cx: &mut Context<'_>) -> Poll<Result<T, Failure>> {
        let this = self;
        if this.is_ready() {
            return Poll::Ready(
                match std::mem::replace(&mut this.state, HandleState::Taken) {
                    HandleState::Value(v) => Ok(v),
                    _ => unreachable!("a handle that carries its result"),
                },
            );
        }
        let Some(shared) = this.chain() else {
            return Poll::Ready(Err(Failure::new(WaitError::ResultTaken)));
        };
        let mut c = shared.borrow_mut();
        if c.is_settled() {
            drop(c);
            let result = shared.take_result::<T>();
            this.disarm();
            return Poll::Ready(result);
        }
        match &c.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => c.set_waker(cx.waker().clone()),
        }
        drop(c);
        // The task being polled awaits this Deferred: its executor may cancel it.
        let weak = shared.downgrade();
        LAST_AWAITED.with(|last| last.set(Some(weak)));
        this.arm();
        Poll::Pending
    }
}

impl<T: 'static + fmt::Debug> fmt::Debug for Deferred<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shared = match &self.state {
            HandleState::Chain(s) | HandleState::Awaited(Awaited(Some(s))) => s,
            HandleState::Value(v) => return write!(f, "Deferred(current result: {v:?})"),
            HandleState::Awaited(_) | HandleState::Taken => {
                return f.write_str("Deferred(result taken)")
            }
        };
        if let Some(written) =
            shared.inspect_value::<T, _>(|v| write!(f, "Deferred(current result: {v:?})"))
        {
            return written;
        }
        fmt::Debug::fmt(shared, f)
    }
}

impl<T: 'static> Resolver<T> {
    #[inline(always)]
    fn into_shared(mut self) -> ChainRef {
        let chain = self.chain.take().expect("live resolver");
        // Nothing left to drop: skip the call to `Drop`.
        std::mem::forget(self);
        chain
    }

    /// Fires the Deferred with a value; its callbacks run now, on this thread.
    ///
    /// # Errors
    ///
    /// [`AlreadyCalled`] if a canceller already gave the Deferred its result. After a
    /// cancel without a canceller, this one late fire is swallowed and returns `Ok`.
    ///
    /// # Examples
    ///
    /// ```
    /// let (d, r) = ropewalk_deferred::Deferred::pending();
    /// r.callback("done").unwrap();
    /// assert_eq!(d.wait().unwrap(), "done");
    /// ```
    #[inline(always)]
    pub fn callback(self, value: T) -> Result<(), AlreadyCalled> {
        chain::fire_value(&self.into_shared(), value)
    }

    /// Fires the Deferred with a failure; its errbacks run now, on this thread.
    ///
    /// # Errors
    ///
    /// As [`callback`](Self::callback).
    ///
    /// # Examples
    ///
    /// ```
    /// let (d, r) = ropewalk_deferred::Deferred::<()>::pending();
    /// r.errback(std::io::Error::other("gone")).unwrap();
    /// assert_eq!(d.wait().unwrap_err().to_string(), "gone");
    /// ```
    pub fn errback(self, failure: impl Into<Failure>) -> Result<(), AlreadyCalled> {
        chain::fire(&self.into_shared(), Res::Failure(failure.into()))
    }

    /// Fires with a `Result`: `Ok` as [`callback`](Self::callback), `Err` as
    /// [`errback`](Self::errback).
    ///
    /// # Errors
    ///
    /// As [`callback`](Self::callback).
    ///
    /// # Examples
    ///
    /// ```
    /// let (d, r) = ropewalk_deferred::Deferred::<u8>::pending();
    /// r.resolve("7".parse::<u8>().map_err(Into::into)).unwrap();
    /// assert_eq!(d.wait().unwrap(), 7);
    /// ```
    pub fn resolve(self, result: Result<T, Failure>) -> Result<(), AlreadyCalled> {
        match result {
            Ok(v) => chain::fire_value(&self.into_shared(), v),
            Err(f) => chain::fire(&self.into_shared(), Res::Failure(f)),
        }
    }

    /// Whether the Deferred already has a result: it was cancelled, so the work behind it
    /// may stop.
    ///
    /// # Examples
    ///
    /// ```
    /// let (d, r) = ropewalk_deferred::Deferred::<()>::pending();
    /// d.cancel();
    /// assert!(r.is_called());
    /// ```
    pub fn is_called(&self) -> bool {
        self.chain.as_ref().is_some_and(|c| c.borrow().called)
    }

    /// Whether firing would reach nobody: the Deferred was dropped unfired, with no
    /// callbacks and no task awaiting it. Producers that hand out values (a queue) skip it.
    pub(crate) fn is_abandoned(&self) -> bool {
        self.chain.as_ref().is_some_and(chain::abandoned)
    }
}

impl<T> Drop for Resolver<T> {
    fn drop(&mut self) {
        if let Some(shared) = self.chain.take() {
            chain::resolver_dropped(&shared);
        }
    }
}

impl<T> fmt::Debug for Resolver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.chain {
            Some(c) => write!(f, "Resolver({c:?})"),
            None => f.write_str("Resolver(fired)"),
        }
    }
}

impl CancelHandle {
    /// Cancels the Deferred, as [`Deferred::cancel`]; nothing if it is gone.
    ///
    /// # Examples
    ///
    /// ```
    /// let (d, _r) = ropewalk_deferred::Deferred::<()>::pending();
    /// d.cancel_handle().cancel();
    /// assert!(d.is_called());
    /// ```
    pub fn cancel(&self) {
        if let Some(shared) = self.chain.upgrade() {
            chain::cancel(&shared);
        }
    }

    /// Whether the Deferred has been fired (or is gone).
    ///
    /// # Examples
    ///
    /// ```
    /// let d = ropewalk_deferred::Deferred::succeed(());
    /// assert!(d.cancel_handle().is_called());
    /// ```
    pub fn is_called(&self) -> bool {
        self.chain.upgrade().is_none_or(|c| c.borrow().called)
    }
}

impl fmt::Debug for CancelHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.chain.upgrade() {
            Some(c) => write!(f, "CancelHandle(alive, called: {})", c.borrow().called),
            None => f.write_str("CancelHandle(gone)"),
        }
    }
}

/// Calls `f` and gives its outcome as a Deferred (Twisted's `maybeDeferred`): a value as a
/// fired Deferred, an error or a panic as a failed one, a Deferred as that same Deferred.
///
/// # Examples
///
/// ```
/// use ropewalk_deferred::{maybe_deferred, Deferred};
///
/// assert_eq!(maybe_deferred(|| Ok(1)).wait().unwrap(), 1);
/// assert!(maybe_deferred(|| -> Result<i32, _> { panic!("x") }).wait().unwrap_err().is_panic());
/// assert_eq!(maybe_deferred(|| Deferred::succeed(2)).wait().unwrap(), 2);
/// ```
#[track_caller]
pub fn maybe_deferred<U: 'static, R: IntoOutcome<U>>(f: impl FnOnce() -> R) -> Deferred<U> {
    let at = Location::caller();
    let outcome = catch_unwind(AssertUnwindSafe(|| f().into_outcome()))
        .unwrap_or_else(|p| Outcome::Failure(Failure::from_panic(p)));
    match outcome {
        Outcome::Value(v) => Deferred::ready(Ok(v), at),
        Outcome::Failure(f) => Deferred::ready(Err(f), at),
        Outcome::Chain(d) => d,
    }
}

/// A Deferred that already has `value` (Twisted's `succeed`); see [`Deferred::succeed`].
///
/// # Examples
///
/// ```
/// assert_eq!(ropewalk_deferred::succeed(1).wait().unwrap(), 1);
/// ```
#[track_caller]
pub fn succeed<T: 'static>(value: T) -> Deferred<T> {
    Deferred::succeed(value)
}

/// A Deferred that already failed (Twisted's `fail`); see [`Deferred::fail`].
///
/// # Examples
///
/// ```
/// let d = ropewalk_deferred::fail::<()>(ropewalk_deferred::Failure::msg("x"));
/// assert!(d.wait().is_err());
/// ```
#[track_caller]
pub fn fail<T: 'static>(failure: impl Into<Failure>) -> Deferred<T> {
    Deferred::fail(failure)
}

#[cfg(test)]
mod tests {
    #[test]
    fn deferred_is_unpin_whatever_its_type() {
        fn unpin<X: Unpin>() {}
        unpin::<super::Deferred<std::marker::PhantomPinned>>();
    }

    /// A handle for a word-sized result is two words, so it moves in registers (see
    /// `HandleState`): a third word, or a wider value beside the tag, costs the chained
    /// scenarios of `bench/deferred` a third of their time.
    #[test]
    fn a_handle_for_a_word_is_two_words() {
        use super::Deferred;
        use std::mem::size_of;
        assert_eq!(size_of::<Deferred<u64>>(), 2 * size_of::<usize>());
        assert_eq!(size_of::<Deferred<()>>(), 2 * size_of::<usize>());
        assert!(size_of::<Deferred<String>>() <= size_of::<String>() + size_of::<usize>());
    }
}
