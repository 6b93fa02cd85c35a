//! [`Emitter`]: object-level listeners and an event queue on the reactor (the
//! event-handler pattern).

use std::cell::RefCell;
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;

use ropewalk_deferred::Failure;

use crate::reactor::Reactor;

/// Names a listener added with [`Emitter::on`], to remove it with [`Emitter::off`].
///
/// # Examples
///
/// See [`Emitter::off`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ListenerId(u64);

type Listener<E> = Rc<RefCell<dyn FnMut(&E)>>;

/// An emitter's listeners and the id the next one gets.
struct EmitterListeners<E> {
    listeners: Vec<(ListenerId, Listener<E>)>,
    next: u64,
}

/// A typed event source with listeners: `on(closure)`, `off(id)`, `emit(&event)`, and
/// `post(event)` to dispatch from the reactor's queue on a later turn.
///
/// `emit` calls the listeners registered when it starts, in registration order, at once.
/// A listener may add or remove listeners while it is called: one added then waits for the
/// next event, one removed before its turn is not called. A panicking listener is logged
/// and the others still run. `Emitter` is a cheap handle; `Clone` shares the listeners.
///
/// # Examples
///
/// ```
/// use std::{cell::RefCell, rc::Rc};
/// use ropewalk_reactor::Emitter;
///
/// #[derive(Debug)]
/// enum Door { Opened, Closed }
///
/// let door = Emitter::new();
/// let seen = Rc::new(RefCell::new(vec![]));
/// let s = seen.clone();
/// let id = door.on(move |e: &Door| s.borrow_mut().push(format!("{e:?}")));
/// door.emit(&Door::Opened);
/// door.off(id);
/// door.emit(&Door::Closed);
/// assert_eq!(*seen.borrow(), vec!["Opened"]);
/// ```
pub struct Emitter<E> {
    inner: Rc<RefCell<EmitterListeners<E>>>,
}

impl<E: 'static> Emitter<E> {
    /// An emitter with no listeners.
    ///
    /// # Examples
    ///
    /// ```
    /// let e = ropewalk_reactor::Emitter::<u32>::new();
    /// assert_eq!(e.listener_count(), 0);
    /// ```
    pub fn new() -> Emitter<E> {
        Emitter {
            inner: Rc::new(RefCell::new(EmitterListeners {
                listeners: Vec::new(),
                next: 0,
            })),
        }
    }

    /// Adds a listener; it is called for every event emitted from now on.
    ///
    /// # Examples
    ///
    /// ```
    /// let e = ropewalk_reactor::Emitter::<u32>::new();
    /// e.on(|n| println!("got {n}"));
    /// assert_eq!(e.listener_count(), 1);
    /// ```
    pub fn on(&self, listener: impl FnMut(&E) + 'static) -> ListenerId {
        let mut inner = self.inner.borrow_mut();
        let id = ListenerId(inner.next);
        inner.next += 1;
        inner.listeners.push((id, Rc::new(RefCell::new(listener))));
        id
    }

    /// Removes a listener; returns whether it was there.
    ///
    /// # Examples
    ///
    /// ```
    /// let e = ropewalk_reactor::Emitter::<u32>::new();
    /// let id = e.on(|_| {});
    /// assert!(e.off(id));
    /// assert!(!e.off(id));
    /// ```
    pub fn off(&self, id: ListenerId) -> bool {
        let mut inner = self.inner.borrow_mut();
        let before = inner.listeners.len();
        inner.listeners.retain(|(i, _)| *i != id);
        inner.listeners.len() != before
    }

    /// How many listeners there are.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(ropewalk_reactor::Emitter::<()>::new().listener_count(), 0);
    /// ```
    pub fn listener_count(&self) -> usize {
        self.inner.borrow().listeners.len()
    }

    /// Calls every listener with `event`, now, in registration order.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::{cell::Cell, rc::Rc};
    ///
    /// let e = ropewalk_reactor::Emitter::new();
    /// let total = Rc::new(Cell::new(0));
    /// let t = total.clone();
    /// e.on(move |n: &i32| t.set(t.get() + n));
    /// e.emit(&5);
    /// assert_eq!(total.get(), 5);
    /// ```
    pub fn emit(&self, event: &E) {
        let snapshot: Vec<(ListenerId, Listener<E>)> = self.inner.borrow().listeners.clone();
        for (id, listener) in snapshot {
            let still_there = self.inner.borrow().listeners.iter().any(|(i, _)| *i == id);
            if !still_there {
                continue;
            }
            let Ok(mut f) = listener.try_borrow_mut() else {
                log::warn!("listener {id:?} re-entered by its own event: skipped");
                continue;
            };
            if let Err(p) = catch_unwind(AssertUnwindSafe(|| (*f)(event))) {
                log::error!(
                    "panic in a listener (continuing): {}",
                    Failure::from_panic(p)
                );
            }
        }
    }

    /// Queues `event` on `reactor`'s event queue; it is emitted on a later turn.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::{cell::Cell, rc::Rc, time::Duration};
    /// use ropewalk_reactor::{Emitter, Reactor};
    ///
    /// let reactor = Reactor::new()?;
    /// let e = Emitter::new();
    /// let got = Rc::new(Cell::new(0));
    /// let g = got.clone();
    /// e.on(move |n: &u8| g.set(*n));
    /// e.post(&reactor, 7);
    /// assert_eq!(got.get(), 0); // not yet
    /// reactor.iterate(Duration::ZERO);
    /// assert_eq!(got.get(), 7);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn post(&self, reactor: &Reactor, event: E) {
        let this = self.clone();
        reactor.call_soon(move || this.emit(&event));
    }
}

impl<E: 'static> Default for Emitter<E> {
    fn default() -> Self {
        Emitter::new()
    }
}

impl<E> Clone for Emitter<E> {
    fn clone(&self) -> Self {
        Emitter {
            inner: self.inner.clone(),
        }
    }
}

impl<E> fmt::Debug for Emitter<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Emitter")
            .field("listeners", &self.inner.borrow().listeners.len())
            .finish()
    }
}
