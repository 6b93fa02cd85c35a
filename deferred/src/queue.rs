//! [`DeferredQueue`]: a queue whose `get` gives a Deferred (Twisted's `DeferredQueue`).
//!
//! # Implementation
//!
//! Two FIFO lists behind a shared `Rc<RefCell<..>>`: items nobody has asked for yet, and
//! the [`Resolver`]s of getters waiting for an item. At most one list is non-empty. A
//! waiting getter's Deferred has a canceller that takes it off its list, so a later `put`
//! goes to the next getter. A getter whose Deferred was dropped unobserved (no callbacks,
//! not awaited) is skipped and forgotten, so no item is handed to nobody.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fmt;
use std::rc::Rc;

use crate::error::{QueueOverflow, QueueUnderflow};
use crate::{Deferred, Resolver};

struct Getter<T> {
    id: u64,
    resolver: Resolver<T>,
}

/// What a [`DeferredQueue`] holds: unclaimed items or waiting getters, and its limits.
struct QueueState<T> {
    pending: VecDeque<T>,
    waiting: VecDeque<Getter<T>>,
    size: Option<usize>,
    backlog: Option<usize>,
    next_id: u64,
}

impl<T: 'static> QueueState<T> {
    /// Takes abandoned getters off the list; the caller drops them once the borrow ends.
    fn prune(&mut self) -> Vec<Getter<T>> {
        let mut gone = Vec::new();
        let mut kept = VecDeque::with_capacity(self.waiting.len());
        for g in self.waiting.drain(..) {
            if g.resolver.is_abandoned() {
                gone.push(g);
            } else {
                kept.push_back(g);
            }
        }
        self.waiting = kept;
        gone
    }
}

/// A FIFO queue whose [`get`](Self::get) returns a Deferred (Twisted's `DeferredQueue`):
/// a producer [`put`](Self::put)s items, a consumer gets each one as a `Deferred<T>` that
/// fires as soon as the item is there.
///
/// - `put` hands the item to the oldest waiting getter (its callbacks run synchronously,
///   inside `put`), or else keeps it, up to `size` items; past that it fails with
///   [`QueueOverflow`], which gives the item back.
/// - `get` gives a fired Deferred if an item is kept, or else a waiting one, up to
///   `backlog` waiting getters; past that it fails with [`QueueUnderflow`].
/// - Cancelling a waiting getter's Deferred errbacks it with
///   [`Cancelled`](crate::Cancelled) and takes it off the list; the next `put` goes to the
///   next getter. A getter whose Deferred was dropped unobserved (no callbacks, not
///   awaited) is skipped in the same way, so its item is not lost.
/// - If every handle is dropped while getters wait, they errback with
///   [`ResolverDropped`](crate::ResolverDropped).
///
/// The handle is cheap to clone; clones share one queue. It lives on one thread: it is
/// neither `Send` nor `Sync`.
///
/// # Examples
///
/// ```
/// use ropewalk_deferred::DeferredQueue;
///
/// let q = DeferredQueue::new();
/// let first = q.get()?;                 // nothing there yet: waits
/// assert_eq!(q.waiting(), 1);
/// q.put("a")?;                          // goes straight to the waiting getter
/// q.put("b")?;                          // kept
/// assert_eq!(first.wait()?, "a");
/// assert_eq!(q.len(), 1);
/// assert_eq!(q.get()?.wait()?, "b");    // fired at once
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct DeferredQueue<T> {
    state: Rc<RefCell<QueueState<T>>>,
}

impl<T: 'static> DeferredQueue<T> {
    /// A queue with no limits: it keeps any number of items and of waiting getters.
    ///
    /// # Examples
    ///
    /// ```
    /// let q = ropewalk_deferred::DeferredQueue::<u32>::new();
    /// assert!(q.is_empty());
    /// ```
    pub fn new() -> DeferredQueue<T> {
        DeferredQueue::with_limits(None, None)
    }

    /// A queue that keeps at most `size` items and at most `backlog` waiting getters
    /// (`None`: no limit; Twisted's `DeferredQueue(size, backlog)`).
    ///
    /// With `size` 0, `put` fails unless a getter waits; with `backlog` 0, `get` fails
    /// unless an item is there.
    ///
    /// # Examples
    ///
    /// ```
    /// use ropewalk_deferred::DeferredQueue;
    ///
    /// let q = DeferredQueue::with_limits(Some(1), Some(1));
    /// q.put(1).unwrap();
    /// assert_eq!(q.put(2).unwrap_err().into_inner(), 2);
    /// ```
    pub fn with_limits(size: Option<usize>, backlog: Option<usize>) -> DeferredQueue<T> {
        DeferredQueue {
            state: Rc::new(RefCell::new(QueueState {
                pending: VecDeque::new(),
                waiting: VecDeque::new(),
                size,
                backlog,
                next_id: 0,
            })),
        }
    }

    /// Adds an item: to the oldest waiting getter, whose callbacks run now, or else to the
    /// queue.
    ///
    /// # Errors
    ///
    /// [`QueueOverflow`], holding `item`, if no getter waits and the queue already keeps
    /// `size` items.
    ///
    /// # Examples
    ///
    /// ```
    /// use ropewalk_deferred::DeferredQueue;
    ///
    /// let q = DeferredQueue::with_limits(Some(0), None);
    /// let d = q.get().unwrap();
    /// q.put('x').unwrap();                 // a getter waits: no room needed
    /// assert_eq!(d.wait().unwrap(), 'x');
    /// assert_eq!(q.put('y').unwrap_err().into_inner(), 'y');
    /// ```
    pub fn put(&self, item: T) -> Result<(), QueueOverflow<T>> {
        let getter = {
            let mut s = self.state.borrow_mut();
            loop {
                match s.waiting.pop_front() {
                    Some(g) if g.resolver.is_abandoned() => {
                        // Let it go outside the borrow: dropping may log or free chains.
                        drop(s);
                        drop(g);
                        s = self.state.borrow_mut();
                    }
                    Some(g) => break g,
                    None => {
                        if s.size.is_some_and(|size| s.pending.len() >= size) {
                            return Err(QueueOverflow::new(item));
                        }
                        s.pending.push_back(item);
                        return Ok(());
                    }
                }
            }
        };
        // A waiting getter is unfired (its canceller takes it off the list first).
        let _ = getter.resolver.callback(item);
        Ok(())
    }

    /// A Deferred for the next item: fired with the oldest kept item, or waiting for the
    /// next `put`.
    ///
    /// # Errors
    ///
    /// [`QueueUnderflow`] if no item is kept and `backlog` getters already wait.
    ///
    /// # Examples
    ///
    /// ```
    /// use ropewalk_deferred::{Cancelled, DeferredQueue};
    ///
    /// let q = DeferredQueue::new();
    /// let d = q.get().unwrap();
    /// d.cancel();                          // gives up its place
    /// assert!(d.wait().unwrap_err().is::<Cancelled>());
    /// q.put(5).unwrap();
    /// assert_eq!(q.len(), 1);              // kept for the next getter
    /// ```
    #[track_caller]
    pub fn get(&self) -> Result<Deferred<T>, QueueUnderflow> {
        let mut s = self.state.borrow_mut();
        if let Some(item) = s.pending.pop_front() {
            drop(s);
            return Ok(Deferred::succeed(item));
        }
        let gone = s.prune();
        if s.backlog.is_some_and(|backlog| s.waiting.len() >= backlog) {
            drop(s);
            drop(gone);
            return Err(QueueUnderflow);
        }
        let id = s.next_id;
        s.next_id += 1;
        // Weak: a getter must not keep the queue alive (it holds the getter).
        let weak = Rc::downgrade(&self.state);
        let (d, resolver) = Deferred::with_canceller(move || {
            if let Some(state) = weak.upgrade() {
                let mut s = state.borrow_mut();
                let removed = s
                    .waiting
                    .iter()
                    .position(|g| g.id == id)
                    .and_then(|i| s.waiting.remove(i));
                drop(s);
                drop(removed);
            }
            None
        });
        s.waiting.push_back(Getter { id, resolver });
        drop(s);
        drop(gone);
        Ok(d)
    }

    /// How many items are kept, waiting for a getter.
    ///
    /// # Examples
    ///
    /// ```
    /// let q = ropewalk_deferred::DeferredQueue::new();
    /// q.put(1).unwrap();
    /// assert_eq!(q.len(), 1);
    /// ```
    pub fn len(&self) -> usize {
        self.state.borrow().pending.len()
    }

    /// Whether no item is kept.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(ropewalk_deferred::DeferredQueue::<()>::new().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.state.borrow().pending.is_empty()
    }

    /// How many getters wait for an item (not counting abandoned ones).
    ///
    /// # Examples
    ///
    /// ```
    /// let q = ropewalk_deferred::DeferredQueue::<u8>::new();
    /// let d = q.get().unwrap();
    /// assert_eq!(q.waiting(), 1);
    /// drop(d);                             // dropped unobserved: no longer counts
    /// assert_eq!(q.waiting(), 0);
    /// ```
    pub fn waiting(&self) -> usize {
        let mut s = self.state.borrow_mut();
        let gone = s.prune();
        let n = s.waiting.len();
        drop(s);
        drop(gone);
        n
    }
}

impl<T: 'static> Default for DeferredQueue<T> {
    fn default() -> DeferredQueue<T> {
        DeferredQueue::new()
    }
}

impl<T> Clone for DeferredQueue<T> {
    fn clone(&self) -> DeferredQueue<T> {
        DeferredQueue {
            state: self.state.clone(),
        }
    }
}

impl<T> fmt::Debug for DeferredQueue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.state.try_borrow() {
            Ok(s) => f
                .debug_struct("DeferredQueue")
                .field("len", &s.pending.len())
                .field("waiting", &s.waiting.len())
                .field("size", &s.size)
                .field("backlog", &s.backlog)
                .finish(),
            Err(_) => f.write_str("DeferredQueue(busy)"),
        }
    }
}
