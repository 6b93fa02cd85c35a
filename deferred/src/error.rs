//! The errors this crate puts on errback paths or returns.

use std::error::Error;
use std::fmt;
use std::panic::Location;
use std::time::Duration;

use crate::Failure;

/// A Deferred was fired when it already had a result (Twisted's `AlreadyCalledError`).
///
/// A [`Resolver`](crate::Resolver) is consumed by firing, so one producer cannot fire twice;
/// this error is left for the races the type system cannot see: the producer firing after a
/// [canceller](crate::Deferred::with_canceller) already gave the result.
///
/// # Examples
///
/// ```
/// use ropewalk_deferred::{Deferred, AlreadyCalled};
///
/// let (d, r) = Deferred::<i32>::with_canceller(|| Some(Ok(0)));
/// d.cancel();
/// let err: AlreadyCalled = r.callback(1).unwrap_err();
/// assert!(err.to_string().starts_with("deferred already called"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlreadyCalled {
    pub(crate) created_at: &'static Location<'static>,
}

impl AlreadyCalled {
    /// Where the Deferred that was fired twice was created.
    ///
    /// # Examples
    ///
    /// ```
    /// use ropewalk_deferred::Deferred;
    ///
    /// let (d, r) = Deferred::<()>::with_canceller(|| Some(Ok(())));
    /// d.cancel();
    /// assert_eq!(r.callback(()).unwrap_err().created_at().file(), file!());
    /// ```
    pub fn created_at(&self) -> &'static Location<'static> {
        self.created_at
    }
}

impl fmt::Display for AlreadyCalled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "deferred already called (created at {})",
            self.created_at
        )
    }
}

impl Error for AlreadyCalled {}

/// The Deferred was cancelled (Twisted's `CancelledError`).
///
/// # Examples
///
/// ```
/// use ropewalk_deferred::{Deferred, Cancelled};
///
/// let (d, _r) = Deferred::<i32>::pending();
/// let h = d.cancel_handle();
/// h.cancel();
/// assert!(d.wait().unwrap_err().is::<Cancelled>());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("deferred was cancelled")]
pub struct Cancelled;

/// The Deferred did not fire before its deadline ([`add_timeout`](crate::Deferred::add_timeout)).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// let t = ropewalk_deferred::Timeout(Duration::from_secs(10));
/// assert_eq!(t.to_string(), "deferred timed out after 10s");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("deferred timed out after {0:?}")]
pub struct Timeout(pub Duration);

/// The [`Resolver`](crate::Resolver) was dropped without firing, so the Deferred can
/// never get a result; the Deferred errbacks with this rather than waiting forever.
///
/// # Examples
///
/// ```
/// use ropewalk_deferred::{Deferred, ResolverDropped};
///
/// let (d, r) = Deferred::<i32>::pending();
/// let d = d.add_errback(|f| { f.trap::<ResolverDropped>()?; Ok(7) });
/// drop(r);
/// assert_eq!(d.wait().unwrap(), 7);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the resolver was dropped without firing the deferred")]
pub struct ResolverDropped;

/// Why [`Deferred::wait`](crate::Deferred::wait) could not produce a result.
///
/// # Examples
///
/// ```
/// use ropewalk_deferred::{Deferred, WaitError};
///
/// let (d, _r) = Deferred::<i32>::pending();
/// let f = d.wait().unwrap_err();
/// assert_eq!(f.downcast_ref::<WaitError>(), Some(&WaitError::NoReactor));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WaitError {
    /// The Deferred has no result and no reactor runs on this thread to give it one.
    #[error("deferred has no result and no reactor on this thread can fire it")]
    NoReactor,
    /// `wait()` was called from inside a callback or reactor turn; waiting there would
    /// re-enter the loop that has to fire it.
    #[error("wait() called from inside a callback; chain a callback or await instead")]
    InsideCallback,
    /// The reactor stopped, or ran out of work, before the Deferred fired.
    #[error("the reactor stopped before the deferred fired")]
    ReactorStopped,
    /// The result was already taken (the Deferred was awaited to completion).
    #[error("the deferred's result was already taken")]
    ResultTaken,
}

/// The first failure among a [`DeferredList`](crate::DeferredList) or
/// [`gather_results`](crate::gather_results), with its index (Twisted's `FirstError`).
///
/// # Examples
///
/// ```
/// use ropewalk_deferred::{Failure, FirstError};
///
/// let e = FirstError::new(3, Failure::msg("no"));
/// assert_eq!(e.index(), 3);
/// assert_eq!(Failure::new(e).to_string(), "deferred #3 failed: no");
/// ```
#[derive(Debug, Clone)]
pub struct FirstError {
    index: usize,
    failure: Failure,
}

impl FirstError {
    /// A first error at `index`.
    ///
    /// # Examples
    ///
    /// ```
    /// let e = ropewalk_deferred::FirstError::new(0, ropewalk_deferred::Failure::msg("x"));
    /// assert_eq!(e.failure().to_string(), "x");
    /// ```
    pub fn new(index: usize, failure: Failure) -> FirstError {
        FirstError { index, failure }
    }

    /// The index of the Deferred that failed, in input order.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(ropewalk_deferred::FirstError::new(1, "e".parse::<u8>().unwrap_err().into()).index(), 1);
    /// ```
    pub fn index(&self) -> usize {
        self.index
    }

    /// The failure of that Deferred.
    ///
    /// # Examples
    ///
    /// ```
    /// use ropewalk_deferred::{Failure, FirstError, Cancelled};
    /// assert!(FirstError::new(0, Failure::new(Cancelled)).failure().is::<Cancelled>());
    /// ```
    pub fn failure(&self) -> &Failure {
        &self.failure
    }
}

impl PartialEq for FirstError {
    fn eq(&self, other: &FirstError) -> bool {
        self.index == other.index && self.failure.ptr_eq(&other.failure)
    }
}

impl fmt::Display for FirstError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "deferred #{} failed", self.index)
    }
}

impl Error for FirstError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(self.failure.error())
    }
}

/// Every Deferred given to [`race`](crate::race) failed; their failures in input order
/// (Twisted's `FailureGroup`).
///
/// # Examples
///
/// ```
/// use ropewalk_deferred::{Failure, FailureGroup};
///
/// let g = FailureGroup::new(vec![Failure::msg("a"), Failure::msg("b")]);
/// assert_eq!(g.failures().len(), 2);
/// assert_eq!(g.to_string(), "all 2 deferreds failed: a; b");
/// ```
#[derive(Debug, Clone)]
pub struct FailureGroup {
    failures: Vec<Failure>,
}

impl FailureGroup {
    /// A group of failures.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(ropewalk_deferred::FailureGroup::new(vec![]).failures().is_empty());
    /// ```
    pub fn new(failures: Vec<Failure>) -> FailureGroup {
        FailureGroup { failures }
    }

    /// The failures, in input order.
    ///
    /// # Examples
    ///
    /// ```
    /// let g = ropewalk_deferred::FailureGroup::new(vec![ropewalk_deferred::Failure::msg("a")]);
    /// assert_eq!(g.failures()[0].to_string(), "a");
    /// ```
    pub fn failures(&self) -> &[Failure] {
        &self.failures
    }
}

impl fmt::Display for FailureGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "all {} deferreds failed", self.failures.len())?;
        for (i, fail) in self.failures.iter().enumerate() {
            f.write_str(if i == 0 { ": " } else { "; " })?;
            fmt::Display::fmt(fail, f)?;
        }
        Ok(())
    }
}

impl Error for FailureGroup {}

/// A [`DeferredSemaphore`](crate::DeferredSemaphore) was asked for with no tokens
/// (Twisted raises `ValueError` for `tokens < 1`).
///
/// # Examples
///
/// ```
/// use ropewalk_deferred::{DeferredSemaphore, InvalidTokens};
///
/// assert_eq!(DeferredSemaphore::new(0).unwrap_err(), InvalidTokens);
/// assert_eq!(InvalidTokens.to_string(), "a semaphore needs at least one token");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a semaphore needs at least one token")]
pub struct InvalidTokens;

/// [`DeferredQueue::put`](crate::DeferredQueue::put) found the queue full and no getter
/// waiting (Twisted's `QueueOverflow`). The item that did not fit rides inside, so nothing
/// is lost: take it back with [`into_inner`](Self::into_inner).
///
/// To pass the error on as a [`Failure`] when `T` is not `Send + Sync`, drop the item
/// first with [`drop_item`](Self::drop_item).
///
/// # Examples
///
/// ```
/// use ropewalk_deferred::{DeferredQueue, Failure, QueueOverflow};
///
/// let q = DeferredQueue::with_limits(Some(0), None);
/// let err: QueueOverflow<&str> = q.put("late").unwrap_err();
/// assert_eq!(err.to_string(), "deferred queue is full");
/// assert_eq!(err.into_inner(), "late");
/// ```
#[derive(Clone, PartialEq, Eq, thiserror::Error)]
#[error("deferred queue is full")]
pub struct QueueOverflow<T = ()> {
    item: T,
}

impl<T> QueueOverflow<T> {
    /// An overflow carrying the item that did not fit.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(ropewalk_deferred::QueueOverflow::new(3).into_inner(), 3);
    /// ```
    pub fn new(item: T) -> QueueOverflow<T> {
        QueueOverflow { item }
    }

    /// The item that did not fit.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(*ropewalk_deferred::QueueOverflow::new('x').item(), 'x');
    /// ```
    pub fn item(&self) -> &T {
        &self.item
    }

    /// Takes the item back.
    ///
    /// # Examples
    ///
    /// ```
    /// let v = ropewalk_deferred::QueueOverflow::new(vec![1, 2]).into_inner();
    /// assert_eq!(v, [1, 2]);
    /// ```
    pub fn into_inner(self) -> T {
        self.item
    }

    /// The same error without the item (which is dropped), for a [`Failure`] or a log line.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::rc::Rc;
    /// use ropewalk_deferred::{Failure, QueueOverflow};
    ///
    /// let err = QueueOverflow::new(Rc::new(1)); // Rc is not Send: no Failure from it
    /// let f = Failure::new(err.drop_item());
    /// assert!(f.is::<QueueOverflow>());
    /// ```
    pub fn drop_item(self) -> QueueOverflow {
        QueueOverflow { item: () }
    }
}

impl<T> fmt::Debug for QueueOverflow<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("QueueOverflow { .. }")
    }
}

/// [`DeferredQueue::get`](crate::DeferredQueue::get) found the queue empty and its backlog
/// of waiting getters full (Twisted's `QueueUnderflow`).
///
/// # Examples
///
/// ```
/// use ropewalk_deferred::{DeferredQueue, QueueUnderflow};
///
/// let q = DeferredQueue::<u8>::with_limits(None, Some(0));
/// assert_eq!(q.get().unwrap_err(), QueueUnderflow);
/// assert_eq!(QueueUnderflow.to_string(), "too many getters waiting on the deferred queue");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many getters waiting on the deferred queue")]
pub struct QueueUnderflow;
