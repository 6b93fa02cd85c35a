//! Waiting on many Deferreds at once: [`DeferredList`], [`gather_results`] and [`race`]
//! (Twisted's `DeferredList`, `gatherResults` and `race`).
//!
//! Each takes ownership of the member Deferreds, adds one step to each with
//! [`add_callbacks`](Deferred::add_callbacks), and gives back one Deferred for the lot.
//! Results come in **input order**, whatever order the members fire in.
//!
//! See [`DeferredList`] for what happens to unhandled errors and on cancellation.
//!
//! # Implementation
//!
//! The state shared by the members' steps (results so far, how many are left, the
//! [`Resolver`] of the combined Deferred, weak [`CancelHandle`]s on the members) lives in
//! one `Rc<RefCell<..>>`. A step records its member's result, decides under the borrow
//! whether the combined Deferred fires, and releases the borrow before it fires it or
//! cancels other members, since both run other steps at once. The combined Deferred's
//! canceller holds the state; firing drops the canceller, which breaks that cycle.

use std::cell::RefCell;
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;

use crate::error::{FailureGroup, FirstError};
use crate::{CancelHandle, Deferred, Failure, Resolver};

/// Twisted's `DeferredList`: one Deferred for the results of many.
///
/// Build it from the member Deferreds, set the knobs, then take the combined Deferred:
///
/// - [`into_deferred`](Self::into_deferred) gives `Deferred<Vec<Result<T, Failure>>>`: every
///   member's result, in input order, once all have fired (Twisted's `[(success, result)]`).
/// - [`into_outcome`](Self::into_outcome) gives `Deferred<ListOutcome<T>>`, which can also
///   say "member `index` succeeded first": what [`fire_on_one_callback`](Self::fire_on_one_callback)
///   needs, since Twisted then fires with `(result, index)` instead of the list.
///
/// The knobs, all off by default as in Twisted:
///
/// | knob | effect |
/// |---|---|
/// | [`fire_on_one_callback`](Self::fire_on_one_callback) | fire with the first success, `ListOutcome::First` |
/// | [`fire_on_one_errback`](Self::fire_on_one_errback) | errback with the first failure, as a [`FirstError`] with its index |
/// | [`consume_errors`](Self::consume_errors) | do not leave members' failures on the members (so they are not logged) |
///
/// An empty list fires at once with no results; with `fire_on_one_callback` it never fires
/// (no member can succeed), as in Twisted, until it is cancelled. Members that already
/// fired are fine; with a `fire_on_*` knob the list may then fire as it is built.
///
/// # Ownership and unhandled errors
///
/// In Twisted the caller keeps the members and may add callbacks to them after the list's;
/// here the members are moved in, so nobody else can. A member's own chain therefore ends
/// with the list's step, and what that step leaves there decides what is logged when the
/// member is dropped:
///
/// - [`DeferredList`] and [`gather_results`] leave a member's failure on the member too (a
///   [`Failure`] is a cheap clone), as Twisted's `consumeErrors=False` does, so it is logged
///   as "Unhandled error in Deferred". [`DeferredList::consume_errors`] and
///   [`gather_results_consuming_errors`] silence that.
/// - [`race`] always consumes its members' results, as Twisted's does: results that arrive
///   after the race is decided go nowhere and nothing is logged.
///
/// # Cancellation
///
/// Cancelling the list's Deferred (or the one [`gather_results`] or [`race`] gives) cancels
/// every member, in input order
/// ([`Deferred::cancel`]: a member that already fired is left alone, one that waits on
/// another Deferred cancels that one). The members' new results then decide the outcome as
/// usual: a [`DeferredList`] usually fires with every member's [`Cancelled`](crate::Cancelled),
/// [`gather_results`] with a [`FirstError`] wrapping the first one, [`race`] with a
/// [`FailureGroup`]. A member's canceller that panics is logged by the core and that member
/// errbacks with `Cancelled`; the others are still cancelled. If the members' results still
/// do not settle it (a member paused, say), the combined Deferred errbacks with `Cancelled`
/// itself, as any cancelled Deferred does; in Twisted it would stay unfired. Cancelling
/// after it fired does nothing.
///
/// # Examples
///
/// ```
/// use ropewalk_deferred::{Deferred, DeferredList, Failure};
///
/// let (a, ra) = Deferred::<u32>::pending();
/// let (b, rb) = Deferred::<u32>::pending();
/// let all = DeferredList::new([a, b]).consume_errors(true).into_deferred();
/// rb.errback(Failure::msg("b broke")).unwrap(); // order of firing does not matter
/// ra.callback(1).unwrap();
/// let results = all.wait().unwrap();
/// assert_eq!(*results[0].as_ref().unwrap(), 1);
/// assert_eq!(results[1].as_ref().unwrap_err().to_string(), "b broke");
/// ```
#[must_use = "a DeferredList does nothing until into_deferred or into_outcome"]
pub struct DeferredList<T> {
    members: Vec<Deferred<T>>,
    fire_on_one_callback: bool,
    fire_on_one_errback: bool,
    consume_errors: bool,
}

/// What a [`DeferredList`] fires with through [`into_outcome`](DeferredList::into_outcome).
///
/// # Examples
///
/// ```
/// use ropewalk_deferred::{Deferred, DeferredList, ListOutcome};
///
/// let d = DeferredList::new([Deferred::succeed("x")]).fire_on_one_callback(true).into_outcome();
/// match d.wait().unwrap() {
///     ListOutcome::First { index, value } => assert_eq!((index, value), (0, "x")),
///     ListOutcome::All(_) => unreachable!("a member succeeded"),
/// }
/// ```
#[derive(Debug)]
pub enum ListOutcome<T> {
    /// Every member fired: their results, in input order. With `fire_on_one_callback`,
    /// this means every member failed (Twisted still fires on the callback side then).
    All(Vec<Result<T, Failure>>),
    /// With `fire_on_one_callback`: member `index` was the first to succeed, with `value`
    /// (Twisted's `(result, index)`).
    First {
        /// The member's position in the input.
        index: usize,
        /// Its value.
        value: T,
    },
}

impl<T> ListOutcome<T> {
    /// The results of every member, if that is what this is.
    ///
    /// # Examples
    ///
    /// ```
    /// use ropewalk_deferred::ListOutcome;
    ///
    /// let o = ListOutcome::<u8>::All(vec![Ok(1)]);
    /// assert_eq!(o.into_all().unwrap().len(), 1);
    /// ```
    pub fn into_all(self) -> Option<Vec<Result<T, Failure>>> {
        match self {
            ListOutcome::All(results) => Some(results),
            ListOutcome::First { .. } => None,
        }
    }

    /// The first success as `(index, value)`, if that is what this is.
    ///
    /// # Examples
    ///
    /// ```
    /// use ropewalk_deferred::ListOutcome;
    ///
    /// let o = ListOutcome::First { index: 2, value: 'z' };
    /// assert_eq!(o.into_first(), Some((2, 'z')));
    /// ```
    pub fn into_first(self) -> Option<(usize, T)> {
        match self {
            ListOutcome::First { index, value } => Some((index, value)),
            ListOutcome::All(_) => None,
        }
    }
}

impl<T: 'static> DeferredList<T> {
    /// A list over `members`, which it takes ownership of; every knob off.
    ///
    /// # Examples
    ///
    /// ```
    /// use ropewalk_deferred::{Deferred, DeferredList};
    ///
    /// let list = DeferredList::new(vec![Deferred::succeed(1), Deferred::succeed(2)]);
    /// let values: Vec<i32> = list.into_deferred().wait().unwrap()
    ///     .into_iter().map(Result::unwrap).collect();
    /// assert_eq!(values, [1, 2]);
    /// ```
    pub fn new(members: impl IntoIterator<Item = Deferred<T>>) -> DeferredList<T> {
        DeferredList {
            members: members.into_iter().collect(),
            fire_on_one_callback: false,
            fire_on_one_errback: false,
            consume_errors: false,
        }
    }

    /// Fire as soon as one member succeeds, with its index and value
    /// ([`ListOutcome::First`]); default `false`. If every member fails the list still
    /// fires, with [`ListOutcome::All`]; if there are no members it never fires.
    ///
    /// Only [`into_outcome`](Self::into_outcome) can express this result.
    ///
    /// # Examples
    ///
    /// ```
    /// use ropewalk_deferred::{Deferred, DeferredList};
    ///
    /// let (slow, _r) = Deferred::<&str>::pending();
    /// let d = DeferredList::new([slow, Deferred::succeed("fast")])
    ///     .fire_on_one_callback(true)
    ///     .into_outcome();
    /// assert_eq!(d.wait().unwrap().into_first(), Some((1, "fast")));
    /// ```
    pub fn fire_on_one_callback(mut self, on: bool) -> DeferredList<T> {
        self.fire_on_one_callback = on;
        self
    }

    /// Errback as soon as one member fails, with
    /// `Failure::new(FirstError::new(index, failure))`; default `false`.
    ///
    /// # Examples
    ///
    /// ```
    /// use ropewalk_deferred::{Deferred, DeferredList, Failure, FirstError};
    ///
    /// let (slow, _r) = Deferred::<u8>::pending();
    /// let d = DeferredList::new([slow, Deferred::fail(Failure::msg("no"))])
    ///     .fire_on_one_errback(true)
    ///     .consume_errors(true)
    ///     .into_deferred();
    /// let f = d.wait().unwrap_err();
    /// assert_eq!(f.downcast_ref::<FirstError>().unwrap().index(), 1);
    /// assert_eq!(f.to_string(), "deferred #1 failed: no");
    /// ```
    pub fn fire_on_one_errback(mut self, on: bool) -> DeferredList<T> {
        self.fire_on_one_errback = on;
        self
    }

    /// Whether a member's failure stops at the list; default `false`, as in Twisted.
    ///
    /// With `false`, the failure is also left as the result of the member's own chain, and
    /// since the member was moved into the list nobody else can handle it there: it is
    /// logged as "Unhandled error in Deferred" when the member is dropped, exactly as in
    /// Twisted when nobody adds an errback to the member. With `true` the member's chain
    /// ends quietly; the list still reports the failure.
    ///
    /// # Examples
    ///
    /// ```
    /// use ropewalk_deferred::{Deferred, DeferredList, Failure};
    ///
    /// // Nothing is logged: the failure is handled through the list alone.
    /// let d = DeferredList::new([Deferred::<()>::fail(Failure::msg("x"))])
    ///     .consume_errors(true)
    ///     .into_deferred();
    /// assert!(d.wait().unwrap()[0].is_err());
    /// ```
    pub fn consume_errors(mut self, on: bool) -> DeferredList<T> {
        self.consume_errors = on;
        self
    }

    /// Attaches to the members and gives the list's Deferred: every member's result in
    /// input order, once all have fired, or a [`FirstError`] with
    /// [`fire_on_one_errback`](Self::fire_on_one_errback).
    ///
    /// Cancelling it cancels every member (see [Cancellation](DeferredList#cancellation)).
    ///
    /// # Panics
    ///
    /// If [`fire_on_one_callback`](Self::fire_on_one_callback) is on: that result needs
    /// [`into_outcome`](Self::into_outcome).
    ///
    /// # Examples
    ///
    /// ```
    /// use ropewalk_deferred::{Deferred, DeferredList};
    ///
    /// let (a, ra) = Deferred::<i32>::pending();
    /// let (b, rb) = Deferred::<i32>::pending();
    /// let d = DeferredList::new([a, b]).into_deferred();
    /// rb.callback(2).unwrap();
    /// assert!(!d.is_called());
    /// ra.callback(1).unwrap();
    /// let values: Vec<i32> = d.wait().unwrap().into_iter().map(Result::unwrap).collect();
    /// assert_eq!(values, [1, 2]);
    /// ```
    pub fn into_deferred(self) -> Deferred<Vec<Result<T, Failure>>> {
        assert!(
            !self.fire_on_one_callback,
            "DeferredList::into_deferred with fire_on_one_callback: use into_outcome"
        );
        self.into_outcome().add_callback(|outcome| match outcome {
            ListOutcome::All(results) => Ok(results),
            ListOutcome::First { .. } => unreachable!("fire_on_one_callback is off"),
        })
    }

    /// Attaches to the members and gives the list's Deferred, honouring every knob:
    /// [`ListOutcome::First`] for the first success with
    /// [`fire_on_one_callback`](Self::fire_on_one_callback), otherwise
    /// [`ListOutcome::All`] once every member fired, or a [`FirstError`] with
    /// [`fire_on_one_errback`](Self::fire_on_one_errback).
    ///
    /// Cancelling it cancels every member (see [Cancellation](DeferredList#cancellation)).
    ///
    /// # Examples
    ///
    /// ```
    /// use ropewalk_deferred::{Deferred, DeferredList, Failure, ListOutcome};
    ///
    /// // Every member failed: fire_on_one_callback still fires, with all the results.
    /// let d = DeferredList::new([Deferred::<u8>::fail(Failure::msg("a"))])
    ///     .fire_on_one_callback(true)
    ///     .consume_errors(true)
    ///     .into_outcome();
    /// let ListOutcome::All(results) = d.wait().unwrap() else { unreachable!() };
    /// assert_eq!(results[0].as_ref().unwrap_err().to_string(), "a");
    /// ```
    pub fn into_outcome(self) -> Deferred<ListOutcome<T>> {
        let DeferredList {
            members,
            fire_on_one_callback,
            fire_on_one_errback,
            consume_errors,
        } = self;
        let n = members.len();
        let state = Rc::new(RefCell::new(ListState {
            results: (0..n).map(|_| None).collect(),
            remaining: n,
            resolver: None,
            handles: members.iter().map(Deferred::cancel_handle).collect(),
            fire_on_one_callback,
            fire_on_one_errback,
        }));
        let d = pending_cancelling_members(&state);
        if n == 0 && !fire_on_one_callback {
            let resolver = state.borrow_mut().resolver.take();
            fire(resolver, Ok(ListOutcome::All(Vec::new())));
        }
        for (index, member) in members.into_iter().enumerate() {
            let on_value = state.clone();
            let on_failure = state.clone();
            let tail = member.add_callbacks(
                move |value| {
                    ListState::record(&on_value, index, Ok(value));
                    Ok::<(), Failure>(())
                },
                move |failure: Failure| {
                    ListState::record(&on_failure, index, Err(failure.clone()));
                    if consume_errors {
                        Ok::<(), Failure>(())
                    } else {
                        Err(failure)
                    }
                },
            );
            // The member's chain lives on with its producer; we keep only a weak handle.
            drop(tail);
        }
        d
    }
}

impl<T> fmt::Debug for DeferredList<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeferredList")
            .field("members", &self.members.len())
            .field("fire_on_one_callback", &self.fire_on_one_callback)
            .field("fire_on_one_errback", &self.fire_on_one_errback)
            .field("consume_errors", &self.consume_errors)
            .finish()
    }
}

/// Holds the resolver of the combined Deferred and the handles to cancel its members.
trait Combined {
    type Out: 'static;
    fn resolver(&mut self) -> &mut Option<Resolver<Self::Out>>;
    fn members(&self) -> &[CancelHandle];
}

struct ListState<T> {
    results: Vec<Option<Result<T, Failure>>>,
    remaining: usize,
    /// `None` once the list fired.
    resolver: Option<Resolver<ListOutcome<T>>>,
    handles: Vec<CancelHandle>,
    fire_on_one_callback: bool,
    fire_on_one_errback: bool,
}

impl<T: 'static> Combined for ListState<T> {
    type Out = ListOutcome<T>;
    fn resolver(&mut self) -> &mut Option<Resolver<ListOutcome<T>>> {
        &mut self.resolver
    }
    fn members(&self) -> &[CancelHandle] {
        &self.handles
    }
}

impl<T: 'static> ListState<T> {
    /// Twisted's `DeferredList._cbDeferred`.
    fn record(state: &Rc<RefCell<ListState<T>>>, index: usize, result: Result<T, Failure>) {
        let fire_with = {
            let mut s = state.borrow_mut();
            s.remaining -= 1;
            if s.resolver.is_none() {
                // The list already fired: a value goes nowhere.
                None
            } else {
                match result {
                    Ok(value) if s.fire_on_one_callback => {
                        Some(Ok(ListOutcome::First { index, value }))
                    }
                    Err(failure) if s.fire_on_one_errback => {
                        Some(Err(Failure::new(FirstError::new(index, failure))))
                    }
                    result => {
                        s.results[index] = Some(result);
                        (s.remaining == 0).then(|| {
                            let results = std::mem::take(&mut s.results);
                            Ok(ListOutcome::All(
                                results
                                    .into_iter()
                                    .map(|r| r.expect("every member fired"))
                                    .collect(),
                            ))
                        })
                    }
                }
                .map(|outcome| (s.resolver.take(), outcome))
            }
        };
        if let Some((resolver, outcome)) = fire_with {
            fire(resolver, outcome);
        }
    }
}

/// Fires the combined Deferred, outside any borrow of the state.
fn fire<O: 'static>(resolver: Option<Resolver<O>>, outcome: Result<O, Failure>) {
    if let Some(resolver) = resolver {
        // Err only when a cancel that the members did not settle already errbacked it.
        let _ = resolver.resolve(outcome);
    }
}

/// A pending Deferred whose resolver goes into `state` and whose canceller cancels the
/// state's members.
fn pending_cancelling_members<S: Combined + 'static>(state: &Rc<RefCell<S>>) -> Deferred<S::Out> {
    let held = state.clone();
    let (d, resolver) = Deferred::with_canceller(move || {
        let members = held.borrow().members().to_vec();
        cancel_all(&members);
        // A member's result usually fired us already; if not, we errback with Cancelled.
        None
    });
    *state.borrow_mut().resolver() = Some(resolver);
    d
}

/// Cancels each member in order; one that panics does not stop the others.
fn cancel_all<'a>(members: impl IntoIterator<Item = &'a CancelHandle>) {
    for member in members {
        if let Err(payload) = catch_unwind(AssertUnwindSafe(|| member.cancel())) {
            log::error!(
                "cancelling a member deferred panicked: {}",
                Failure::from_panic(payload)
            );
        }
    }
}

/// Twisted's `gatherResults`: the members' values in input order, or the first failure.
///
/// Fires with every value once all members succeed. On the first member to fail it
/// errbacks with `Failure::new(FirstError::new(index, failure))` at once, without waiting
/// for the rest. An empty input fires at once with an empty `Vec`. Cancelling it cancels
/// every member, which usually gives a [`FirstError`] wrapping the first member's
/// [`Cancelled`](crate::Cancelled).
///
/// It is `DeferredList::new(members).fire_on_one_errback(true)` keeping only the values.
/// As there, a failure is also left on its member and logged when that member is dropped
/// (Twisted's `consumeErrors=False`); [`gather_results_consuming_errors`] does not.
///
/// # Examples
///
/// ```
/// use ropewalk_deferred::{gather_results, Deferred, FirstError};
///
/// let (a, ra) = Deferred::<u16>::pending();
/// let d = gather_results([a, Deferred::succeed(2)]);
/// ra.callback(1).unwrap();
/// assert_eq!(d.wait().unwrap(), [1, 2]);
///
/// let d = gather_results([Deferred::succeed(1), Deferred::from_result("x".parse::<u16>().map_err(Into::into))]);
/// let f = d.wait().unwrap_err();
/// assert_eq!(f.downcast_ref::<FirstError>().unwrap().index(), 1);
/// ```
pub fn gather_results<T: 'static>(
    members: impl IntoIterator<Item = Deferred<T>>,
) -> Deferred<Vec<T>> {
    gather(members, false)
}

/// [`gather_results`] with Twisted's `consumeErrors=True`: a member's failure goes to the
/// gathered Deferred only, and is not left on the member to be logged.
///
/// # Examples
///
/// ```
/// use ropewalk_deferred::{gather_results_consuming_errors, Deferred, Failure, FirstError};
///
/// let d = gather_results_consuming_errors([Deferred::<u8>::fail(Failure::msg("oh noes"))]);
/// let f = d.wait().unwrap_err();
/// assert_eq!(f.downcast_ref::<FirstError>().unwrap().failure().to_string(), "oh noes");
/// ```
pub fn gather_results_consuming_errors<T: 'static>(
    members: impl IntoIterator<Item = Deferred<T>>,
) -> Deferred<Vec<T>> {
    gather(members, true)
}

fn gather<T: 'static>(
    members: impl IntoIterator<Item = Deferred<T>>,
    consume_errors: bool,
) -> Deferred<Vec<T>> {
    DeferredList::new(members)
        .fire_on_one_errback(true)
        .consume_errors(consume_errors)
        .into_deferred()
        // With fire_on_one_errback the list fires with values only.
        .add_callback(|results| results.into_iter().collect::<Result<Vec<T>, Failure>>())
}

struct RaceState<T> {
    failures: Vec<Option<Failure>>,
    failed: usize,
    /// A member succeeded (or the race was decided otherwise): later results are dropped.
    decided: bool,
    resolver: Option<Resolver<(usize, T)>>,
    handles: Vec<CancelHandle>,
}

impl<T: 'static> Combined for RaceState<T> {
    type Out = (usize, T);
    fn resolver(&mut self) -> &mut Option<Resolver<(usize, T)>> {
        &mut self.resolver
    }
    fn members(&self) -> &[CancelHandle] {
        &self.handles
    }
}

/// Twisted's `race`: the first member to succeed, with its index; the others are cancelled.
///
/// - The first success fires the race with `(index, value)`, after every other member has
///   been cancelled. Results that arrive later, including those the cancellations cause,
///   are dropped quietly: nothing is logged.
/// - If every member fails, the race errbacks with a [`FailureGroup`] holding the failures
///   in input order.
/// - Cancelling the race cancels every member; if they all fail with that, the result is
///   a `FailureGroup` of their [`Cancelled`](crate::Cancelled) failures.
/// - With no members the race never fires (as in Twisted), until it is cancelled, when it
///   errbacks with `Cancelled`.
///
/// The members' own results are always consumed, as in Twisted.
///
/// # Examples
///
/// ```
/// use ropewalk_deferred::{race, Deferred, Cancelled};
///
/// let (slow, slow_resolver) = Deferred::<&str>::pending();
/// let (fast, fast_resolver) = Deferred::<&str>::pending();
/// let winner = race([slow, fast]);
/// fast_resolver.callback("fast").unwrap();
/// assert!(slow_resolver.is_called()); // the loser was cancelled
/// assert_eq!(winner.wait().unwrap(), (1, "fast"));
/// ```
pub fn race<T: 'static>(members: impl IntoIterator<Item = Deferred<T>>) -> Deferred<(usize, T)> {
    let members: Vec<Deferred<T>> = members.into_iter().collect();
    let n = members.len();
    let state = Rc::new(RefCell::new(RaceState {
        failures: (0..n).map(|_| None).collect(),
        failed: 0,
        decided: false,
        resolver: None,
        handles: members.iter().map(Deferred::cancel_handle).collect(),
    }));
    let d = pending_cancelling_members(&state);
    for (index, member) in members.into_iter().enumerate() {
        let on_value = state.clone();
        let on_failure = state.clone();
        let tail = member.add_callbacks(
            move |value| {
                race_succeeded(&on_value, index, value);
                Ok::<(), Failure>(())
            },
            move |failure| {
                race_failed(&on_failure, index, failure);
                Ok::<(), Failure>(())
            },
        );
        drop(tail);
    }
    d
}

fn race_succeeded<T: 'static>(state: &Rc<RefCell<RaceState<T>>>, index: usize, value: T) {
    let (losers, resolver) = {
        let mut s = state.borrow_mut();
        if s.decided {
            return;
        }
        s.decided = true;
        let losers: Vec<CancelHandle> = s
            .handles
            .iter()
            .enumerate()
            .filter(|&(i, _)| i != index)
            .map(|(_, h)| h.clone())
            .collect();
        (losers, s.resolver.take())
    };
    cancel_all(&losers);
    fire(resolver, Ok((index, value)));
}

fn race_failed<T: 'static>(state: &Rc<RefCell<RaceState<T>>>, index: usize, failure: Failure) {
    let fire_with = {
        let mut s = state.borrow_mut();
        s.failures[index] = Some(failure);
        s.failed += 1;
        if s.decided || s.failed < s.failures.len() {
            return;
        }
        s.decided = true;
        let failures = std::mem::take(&mut s.failures)
            .into_iter()
            .map(|f| f.expect("every member failed"))
            .collect();
        (s.resolver.take(), FailureGroup::new(failures))
    };
    fire(fire_with.0, Err(Failure::new(fire_with.1)));
}
