//! [`DeferredLock`] and [`DeferredSemaphore`]: mutual exclusion for callback chains and
//! tasks on one thread (Twisted's `DeferredLock` and `DeferredSemaphore`).
//!
//! # Implementation
//!
//! Both are one engine: a count of free tokens and a FIFO list of waiters, each the
//! [`Resolver`] of a pending Deferred, behind a shared `Rc<RefCell<..>>`. Acquiring takes a
//! token at once if one is free and nobody waits; otherwise it queues a Deferred whose
//! canceller takes it off the list. A token comes back when its guard ([`LockGuard`],
//! [`Permit`]) is dropped, so releasing twice or past the limit cannot happen.
//!
//! A returned token goes straight to the first waiter, whose callbacks run synchronously.
//! Handing on runs as a loop, not by recursion: a token returned while a hand-on is under
//! way (a waiter's callback dropped its guard, or its Deferred had been dropped unobserved,
//! taking the guard with it) is only counted, and the running loop hands it to the next
//! waiter. So a thousand waiters that each release at once use no more stack than one, and
//! an abandoned waiter never keeps the lock.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fmt;
use std::rc::Rc;

use crate::error::InvalidTokens;
use crate::{maybe_deferred, Deferred, Failure, IntoOutcome, Resolver};

type SharedSlots<G> = Rc<RefCell<Slots<G>>>;

/// What a waiter is handed: a guard holding one token.
trait Grant: Sized + 'static {
    fn grant(token: Token<Self>) -> Self;
}

struct Waiter<G> {
    id: u64,
    resolver: Resolver<G>,
}

struct Slots<G> {
    tokens: usize,
    limit: usize,
    waiting: VecDeque<Waiter<G>>,
    next_id: u64,
    /// A `release` loop is handing tokens to waiters: later releases only count.
    handing_on: bool,
}

/// One token; given back on drop.
struct Token<G: Grant> {
    slots: SharedSlots<G>,
}

impl<G: Grant> Drop for Token<G> {
    fn drop(&mut self) {
        release(&self.slots);
    }
}

fn new_slots<G>(limit: usize) -> SharedSlots<G> {
    Rc::new(RefCell::new(Slots {
        tokens: limit,
        limit,
        waiting: VecDeque::new(),
        next_id: 0,
        handing_on: false,
    }))
}

#[track_caller]
fn acquire<G: Grant>(slots: &SharedSlots<G>) -> Deferred<G> {
    let mut s = slots.borrow_mut();
    // Waiters first: a token freed mid-hand-on belongs to them.
    if s.tokens > 0 && s.waiting.is_empty() {
        s.tokens -= 1;
        drop(s);
        return Deferred::succeed(G::grant(Token {
            slots: slots.clone(),
        }));
    }
    let id = s.next_id;
    s.next_id += 1;
    // Weak: a waiter must not keep the lock alive (it holds the waiter).
    let weak = Rc::downgrade(slots);
    let (d, resolver) = Deferred::with_canceller(move || {
        if let Some(slots) = weak.upgrade() {
            let mut s = slots.borrow_mut();
            let gone = s
                .waiting
                .iter()
                .position(|w| w.id == id)
                .and_then(|i| s.waiting.remove(i));
            drop(s);
            drop(gone);
        }
        None
    });
    s.waiting.push_back(Waiter { id, resolver });
    d
}

fn release<G: Grant>(slots: &SharedSlots<G>) {
    {
        let mut s = slots.borrow_mut();
        s.tokens += 1;
        debug_assert!(s.tokens <= s.limit, "more tokens released than handed out");
        if s.handing_on {
            return;
        }
        s.handing_on = true;
    }
    loop {
        let waiter = {
            let mut s = slots.borrow_mut();
            if s.tokens == 0 {
                s.handing_on = false;
                return;
            }
            let Some(w) = s.waiting.pop_front() else {
                s.handing_on = false;
                return;
            };
            s.tokens -= 1;
            w
        };
        let guard = G::grant(Token {
            slots: slots.clone(),
        });
        // If nobody can take it (the canceller already fired it), the guard is dropped
        // inside `callback` and its token counted for the next turn of this loop.
        let _ = waiter.resolver.callback(guard);
    }
}

#[track_caller]
fn run<G: Grant, U: 'static, R: IntoOutcome<U>>(
    slots: &SharedSlots<G>,
    f: impl FnOnce() -> R + 'static,
) -> Deferred<U> {
    acquire(slots).add_callback(move |guard: G| {
        maybe_deferred(f).add_both(move |result: Result<U, Failure>| {
            drop(guard);
            result
        })
    })
}

fn fmt_slots<G>(name: &str, slots: &SharedSlots<G>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    match slots.try_borrow() {
        Ok(s) => f
            .debug_struct(name)
            .field("tokens", &s.tokens)
            .field("limit", &s.limit)
            .field("waiting", &s.waiting.len())
            .finish(),
        Err(_) => write!(f, "{name}(busy)"),
    }
}

/// A lock for callback chains and tasks on one thread (Twisted's `DeferredLock`).
///
/// [`acquire`](Self::acquire) gives a `Deferred<LockGuard>` that fires at once if the lock
/// is free, or else when every earlier waiter has had its turn (first come, first served).
/// Dropping the [`LockGuard`] releases the lock and hands it straight to the next waiter,
/// whose callbacks run synchronously, inside the drop. [`run`](Self::run) holds the lock
/// around one function and the Deferred it may return.
///
/// The handle is cheap to clone; clones share one lock. It lives on one thread: it is
/// neither `Send` nor `Sync`.
///
/// - Cancelling a Deferred that still waits for the lock takes it off the list and errbacks
///   it with [`Cancelled`](crate::Cancelled); cancelling one that holds the lock does
///   nothing. Dropping a waiting Deferred that is being awaited cancels it, as with any
///   Deferred.
/// - A waiter whose Deferred was dropped unobserved gets the lock and gives it up at once:
///   the guard is dropped with the Deferred.
/// - Where Twisted raises `AssertionError` on releasing an unlocked lock, here the guard is
///   the only way to release, so it cannot happen.
/// - A guard keeps the lock's state alive: with every `DeferredLock` handle dropped, the
///   waiters still get their turns as the guards are dropped.
///
/// # Examples
///
/// ```
/// use ropewalk_deferred::{Deferred, DeferredLock};
///
/// let lock = DeferredLock::new();
/// let first = lock.acquire().wait().unwrap();     // free: fires at once
/// let second = lock.acquire().add_callback(|guard| Ok(guard)); // waits its turn
/// assert!(lock.locked());
/// assert_eq!(lock.waiting(), 1);
/// drop(first);                                    // hands the lock on
/// let guard = second.wait().unwrap();
/// assert!(lock.locked());
/// drop(guard);
/// assert!(!lock.locked());
/// ```
///
/// Inside a task, awaiting works the same way:
///
/// ```
/// # use ropewalk_deferred::DeferredLock;
/// # let lock = DeferredLock::new();
/// # futures::executor::block_on(async {
/// let guard = lock.acquire().await?;
/// // ... only one task at a time runs here ...
/// drop(guard);
/// # Ok::<(), ropewalk_deferred::Failure>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct DeferredLock {
    slots: SharedSlots<LockGuard>,
}

/// Holds a [`DeferredLock`]; dropping it releases the lock to the next waiter.
///
/// # Examples
///
/// ```
/// use ropewalk_deferred::DeferredLock;
///
/// let lock = DeferredLock::new();
/// let guard = lock.acquire().wait().unwrap();
/// assert!(lock.locked());
/// drop(guard);
/// assert!(!lock.locked());
/// ```
#[must_use = "dropping the guard releases the lock at once"]
pub struct LockGuard {
    _token: Token<LockGuard>,
}

impl Grant for LockGuard {
    fn grant(token: Token<Self>) -> Self {
        LockGuard { _token: token }
    }
}

impl DeferredLock {
    /// A lock, unlocked.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(!ropewalk_deferred::DeferredLock::new().locked());
    /// ```
    pub fn new() -> DeferredLock {
        DeferredLock {
            slots: new_slots(1),
        }
    }

    /// A Deferred that fires with a [`LockGuard`] once this caller holds the lock: at once
    /// if it is free, else after every earlier waiter.
    ///
    /// Cancel it while it waits to give up the turn (it errbacks with
    /// [`Cancelled`](crate::Cancelled)).
    ///
    /// # Examples
    ///
    /// ```
    /// use ropewalk_deferred::{Cancelled, DeferredLock};
    ///
    /// let lock = DeferredLock::new();
    /// let held = lock.acquire();
    /// assert!(held.has_result());
    /// let waiting = lock.acquire();
    /// assert!(!waiting.has_result());
    /// waiting.cancel();
    /// assert!(waiting.wait().unwrap_err().is::<Cancelled>());
    /// assert_eq!(lock.waiting(), 0);
    /// ```
    #[track_caller]
    pub fn acquire(&self) -> Deferred<LockGuard> {
        acquire(&self.slots)
    }

    /// Whether the lock is held.
    ///
    /// # Examples
    ///
    /// ```
    /// let lock = ropewalk_deferred::DeferredLock::new();
    /// let g = lock.acquire().wait().unwrap();
    /// assert!(lock.locked());
    /// # drop(g);
    /// ```
    pub fn locked(&self) -> bool {
        self.slots.borrow().tokens == 0
    }

    /// How many Deferreds wait for the lock.
    ///
    /// # Examples
    ///
    /// ```
    /// let lock = ropewalk_deferred::DeferredLock::new();
    /// let _held = lock.acquire();
    /// let _next = lock.acquire();
    /// assert_eq!(lock.waiting(), 1);
    /// ```
    pub fn waiting(&self) -> usize {
        self.slots.borrow().waiting.len()
    }

    /// Runs `f` while holding the lock, and releases it when `f`'s result arrives
    /// (Twisted's `DeferredLock.run`).
    ///
    /// `f` runs as soon as the lock is acquired (at once if it is free). It returns what a
    /// callback returns: `Ok`, `Err`, or a Deferred, on which the lock stays held until it
    /// fires. A value, a failure or a panic in `f` all release the lock; the returned
    /// Deferred fires with `f`'s result, or with the failure (a panic as
    /// [`Panicked`](crate::Panicked)). Cancelling it before the lock is acquired gives
    /// [`Cancelled`](crate::Cancelled) and `f` never runs.
    ///
    /// # Examples
    ///
    /// ```
    /// use ropewalk_deferred::{Deferred, DeferredLock};
    ///
    /// let lock = DeferredLock::new();
    /// let (job, done) = Deferred::<&str>::pending();
    /// let d = lock.run(move || job);    // holds the lock until `job` fires
    /// assert!(lock.locked());
    /// done.callback("ok").unwrap();
    /// assert!(!lock.locked());
    /// assert_eq!(d.wait().unwrap(), "ok");
    /// ```
    #[track_caller]
    pub fn run<U: 'static, R: IntoOutcome<U>>(
        &self,
        f: impl FnOnce() -> R + 'static,
    ) -> Deferred<U> {
        run(&self.slots, f)
    }
}

impl Default for DeferredLock {
    fn default() -> DeferredLock {
        DeferredLock::new()
    }
}

impl fmt::Debug for DeferredLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.slots.try_borrow() {
            Ok(s) => f
                .debug_struct("DeferredLock")
                .field("locked", &(s.tokens == 0))
                .field("waiting", &s.waiting.len())
                .finish(),
            Err(_) => f.write_str("DeferredLock(busy)"),
        }
    }
}

impl fmt::Debug for LockGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LockGuard { .. }")
    }
}

/// A counting semaphore for callback chains and tasks on one thread (Twisted's
/// `DeferredSemaphore`): at most [`limit`](Self::limit) holders at once.
///
/// It works as [`DeferredLock`] does, with `limit` tokens instead of one:
/// [`acquire`](Self::acquire) gives a `Deferred<Permit>`, dropping the [`Permit`] gives the
/// token to the first waiter, [`run`](Self::run) holds a token around one function, and
/// cancelling a waiting Deferred takes it off the list. Releasing past the limit (an
/// `AssertionError` in Twisted) cannot happen: only a permit gives a token back.
///
/// # Examples
///
/// ```
/// use ropewalk_deferred::DeferredSemaphore;
///
/// let sem = DeferredSemaphore::new(2)?;
/// let a = sem.acquire().wait()?;
/// let b = sem.acquire().wait()?;
/// assert_eq!(sem.tokens(), 0);
/// let c = sem.acquire();            // waits
/// assert!(!c.has_result());
/// drop(a);                          // c gets a's token
/// assert!(c.has_result());
/// assert_eq!(sem.tokens(), 0);
/// # drop((b, c));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct DeferredSemaphore {
    slots: SharedSlots<Permit>,
}

/// One token of a [`DeferredSemaphore`]; dropping it gives the token back.
///
/// # Examples
///
/// ```
/// let sem = ropewalk_deferred::DeferredSemaphore::new(1).unwrap();
/// let permit = sem.acquire().wait().unwrap();
/// assert_eq!(sem.tokens(), 0);
/// drop(permit);
/// assert_eq!(sem.tokens(), 1);
/// ```
#[must_use = "dropping the permit gives its token back at once"]
pub struct Permit {
    _token: Token<Permit>,
}

impl Grant for Permit {
    fn grant(token: Token<Self>) -> Self {
        Permit { _token: token }
    }
}

impl DeferredSemaphore {
    /// A semaphore with `tokens` tokens, all free.
    ///
    /// # Errors
    ///
    /// [`InvalidTokens`] if `tokens` is 0 (Twisted's `ValueError` for `tokens < 1`).
    ///
    /// # Examples
    ///
    /// ```
    /// use ropewalk_deferred::DeferredSemaphore;
    ///
    /// assert_eq!(DeferredSemaphore::new(3).unwrap().limit(), 3);
    /// assert!(DeferredSemaphore::new(0).is_err());
    /// ```
    pub fn new(tokens: usize) -> Result<DeferredSemaphore, InvalidTokens> {
        if tokens == 0 {
            return Err(InvalidTokens);
        }
        Ok(DeferredSemaphore {
            slots: new_slots(tokens),
        })
    }

    /// A Deferred that fires with a [`Permit`] once a token is free: at once if one is and
    /// nobody waits, else after every earlier waiter.
    ///
    /// Cancel it while it waits to give up the turn (it errbacks with
    /// [`Cancelled`](crate::Cancelled)).
    ///
    /// # Examples
    ///
    /// ```
    /// use ropewalk_deferred::{Cancelled, DeferredSemaphore};
    ///
    /// let sem = DeferredSemaphore::new(1).unwrap();
    /// let _held = sem.acquire();
    /// let waiting = sem.acquire();
    /// waiting.cancel();
    /// assert!(waiting.wait().unwrap_err().is::<Cancelled>());
    /// ```
    #[track_caller]
    pub fn acquire(&self) -> Deferred<Permit> {
        acquire(&self.slots)
    }

    /// How many tokens are free now.
    ///
    /// # Examples
    ///
    /// ```
    /// let sem = ropewalk_deferred::DeferredSemaphore::new(2).unwrap();
    /// let _p = sem.acquire();
    /// assert_eq!(sem.tokens(), 1);
    /// ```
    pub fn tokens(&self) -> usize {
        self.slots.borrow().tokens
    }

    /// How many tokens there are in all.
    ///
    /// # Examples
    ///
    /// ```
    /// let sem = ropewalk_deferred::DeferredSemaphore::new(2).unwrap();
    /// let _p = sem.acquire();
    /// assert_eq!(sem.limit(), 2);
    /// ```
    pub fn limit(&self) -> usize {
        self.slots.borrow().limit
    }

    /// How many Deferreds wait for a token.
    ///
    /// # Examples
    ///
    /// ```
    /// let sem = ropewalk_deferred::DeferredSemaphore::new(1).unwrap();
    /// let _held = sem.acquire();
    /// let _next = sem.acquire();
    /// assert_eq!(sem.waiting(), 1);
    /// ```
    pub fn waiting(&self) -> usize {
        self.slots.borrow().waiting.len()
    }

    /// Runs `f` while holding a token, and gives it back when `f`'s result arrives
    /// (Twisted's `DeferredSemaphore.run`); see [`DeferredLock::run`].
    ///
    /// # Examples
    ///
    /// ```
    /// use ropewalk_deferred::{Deferred, DeferredSemaphore, Failure};
    ///
    /// let sem = DeferredSemaphore::new(1).unwrap();
    /// let d = sem.run(|| -> Result<i32, Failure> { Err(Failure::msg("boom")) });
    /// assert_eq!(sem.tokens(), 1); // given back on failure too
    /// assert_eq!(d.wait().unwrap_err().to_string(), "boom");
    /// ```
    #[track_caller]
    pub fn run<U: 'static, R: IntoOutcome<U>>(
        &self,
        f: impl FnOnce() -> R + 'static,
    ) -> Deferred<U> {
        run(&self.slots, f)
    }
}

impl fmt::Debug for DeferredSemaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt_slots("DeferredSemaphore", &self.slots, f)
    }
}

impl fmt::Debug for Permit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Permit { .. }")
    }
}
