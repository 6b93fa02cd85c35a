//! The hook through which a reactor on the current thread drives itself while a script
//! blocks in [`Deferred::wait`](crate::Deferred::wait).

use std::cell::RefCell;
use std::rc::Rc;

use crate::Failure;

/// Something that can run an event loop on this thread until a condition holds: a reactor.
///
/// A reactor installs itself with [`set_wait_driver`] on the thread that owns it, so that
/// [`Deferred::wait`](crate::Deferred::wait) there runs the reactor instead of failing.
///
/// # Examples
///
/// ```
/// use std::rc::Rc;
/// use std::cell::RefCell;
/// use ropewalk_deferred::{set_wait_driver, Deferred, Failure, Resolver, WaitDriver};
///
/// // A toy loop: a queue of resolvers to fire, one per "turn".
/// struct Queue(RefCell<Vec<Resolver<u32>>>);
/// impl WaitDriver for Queue {
///     fn run_until(&self, done: &mut dyn FnMut() -> bool) -> Result<(), Failure> {
///         while !done() {
///             let Some(r) = self.0.borrow_mut().pop() else { return Ok(()) };
///             r.callback(42).unwrap();
///         }
///         Ok(())
///     }
/// }
///
/// let (d, r) = Deferred::pending();
/// let q = Rc::new(Queue(RefCell::new(vec![r])));
/// set_wait_driver(Some(q));
/// assert_eq!(d.wait().unwrap(), 42);
/// set_wait_driver(None);
/// ```
pub trait WaitDriver {
    /// Runs the loop until `done()` returns true, or until the loop cannot go on (it was
    /// stopped, or has nothing left that could fire anything).
    ///
    /// # Errors
    ///
    /// A failure when the loop cannot be run here, for instance because it is already
    /// running further up this thread's stack
    /// ([`WaitError::InsideCallback`](crate::WaitError::InsideCallback)).
    ///
    /// # Examples
    ///
    /// See [`WaitDriver`].
    fn run_until(&self, done: &mut dyn FnMut() -> bool) -> Result<(), Failure>;
}

thread_local! {
    static DRIVER: RefCell<Option<Rc<dyn WaitDriver>>> = const { RefCell::new(None) };
}

/// Installs (or with `None` removes) this thread's [`WaitDriver`]; returns the previous one.
///
/// # Examples
///
/// ```
/// assert!(ropewalk_deferred::set_wait_driver(None).is_none());
/// ```
pub fn set_wait_driver(driver: Option<Rc<dyn WaitDriver>>) -> Option<Rc<dyn WaitDriver>> {
    DRIVER.with(|d| std::mem::replace(&mut *d.borrow_mut(), driver))
}

pub(crate) fn driver() -> Option<Rc<dyn WaitDriver>> {
    DRIVER.with(|d| d.borrow().clone())
}
