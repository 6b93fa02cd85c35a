//! Startup and shutdown: system event triggers (Twisted's `addSystemEventTrigger`).
//!
//! [`Triggers`] is a value the reactor owns: the triggers added and not yet run, and the
//! shutdown timeout. The reactor fires an event phase by phase
//! ([`Triggers::run_phase`]), and between phases runs turns until the `Before`
//! triggers' Deferreds have fired, closes its sources during shutdown, and so on (see
//! `Reactor::run`).

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use ropewalk_deferred::Deferred;

use crate::error::ReactorError;

/// When a trigger runs, relative to its event.
///
/// # Examples
///
/// ```
/// use ropewalk_reactor::{Phase, Reactor, SystemEvent};
///
/// let reactor = Reactor::new()?;
/// reactor.add_system_event_trigger(Phase::Before, SystemEvent::Shutdown, || {
///     println!("flushing before shutdown");
///     Ok(())
/// });
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Phase {
    /// First. A trigger may return a Deferred; the `During` phase waits for all of them
    /// (for shutdown, at most the [shutdown timeout](crate::Reactor::set_shutdown_timeout)).
    Before,
    /// The event itself (for shutdown: connections are closed here).
    During,
    /// Last.
    After,
}

/// A reactor lifecycle event.
///
/// # Examples
///
/// See [`Reactor::add_system_event_trigger`](crate::Reactor::add_system_event_trigger).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SystemEvent {
    /// [`Reactor::run`](crate::Reactor::run) starts.
    Startup,
    /// [`Reactor::run`](crate::Reactor::run) is about to return after
    /// [`Reactor::stop`](crate::Reactor::stop).
    Shutdown,
}

/// Names a trigger, to remove it with
/// [`Reactor::remove_system_event_trigger`](crate::Reactor::remove_system_event_trigger).
///
/// # Examples
///
/// ```
/// use ropewalk_reactor::{Phase, Reactor, SystemEvent};
///
/// let reactor = Reactor::new()?;
/// let id = reactor.add_system_event_trigger(Phase::During, SystemEvent::Shutdown, || Ok(()));
/// assert!(reactor.remove_system_event_trigger(id).is_ok());
/// assert!(reactor.remove_system_event_trigger(id).is_err()); // gone already
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TriggerId(u64);

/// A trigger's function, its outcome made a Deferred.
pub(crate) type Trigger = Box<dyn FnOnce() -> Deferred<()>>;

/// The triggers of a reactor, and how long shutdown waits for them.
#[derive(Default)]
pub(crate) struct Triggers {
    list: RefCell<Vec<(TriggerId, Phase, SystemEvent, Trigger)>>,
    next: Cell<u64>,
    timeout: Cell<Option<Duration>>,
}

/// How long shutdown waits for `Before` triggers unless told otherwise.
const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);

impl Triggers {
    /// Adds `f` to run at `phase` of `event`.
    pub(crate) fn add(&self, phase: Phase, event: SystemEvent, f: Trigger) -> TriggerId {
        let id = TriggerId(self.next.get());
        self.next.set(id.0 + 1);
        self.list.borrow_mut().push((id, phase, event, f));
        id
    }

    /// Removes a trigger that has not run yet.
    pub(crate) fn remove(&self, id: TriggerId) -> Result<(), ReactorError> {
        let mut list = self.list.borrow_mut();
        let before = list.len();
        list.retain(|(i, ..)| *i != id);
        if list.len() == before {
            Err(ReactorError::UnknownTrigger)
        } else {
            Ok(())
        }
    }

    pub(crate) fn set_timeout(&self, timeout: Duration) {
        self.timeout.set(Some(timeout));
    }

    /// How long shutdown waits for the Deferreds of `Before` triggers.
    pub(crate) fn timeout(&self) -> Duration {
        self.timeout.get().unwrap_or(DEFAULT_SHUTDOWN_TIMEOUT)
    }

    /// Runs (and forgets) the triggers of `phase` of `event`, in the order they were
    /// added. Returns how many `Before` triggers' Deferreds have not fired yet: the
    /// count goes down as they fire.
    pub(crate) fn run_phase(&self, phase: Phase, event: SystemEvent) -> Rc<Cell<usize>> {
        let due: Vec<Trigger> = {
            let mut list = self.list.borrow_mut();
            let (due, keep) = std::mem::take(&mut *list)
                .into_iter()
                .partition(|(_, p, e, _)| *p == phase && *e == event);
            *list = keep;
            due.into_iter().map(|(_, _, _, f)| f).collect()
        };
        let pending = Rc::new(Cell::new(0usize));
        for trigger in due {
            let d = trigger();
            let count = phase == Phase::Before && !d.has_result();
            if count {
                pending.set(pending.get() + 1);
            }
            let p = pending.clone();
            d.add_both(move |result| {
                if let Err(f) = result {
                    log::error!("{event:?} trigger ({phase:?}) failed: {f}");
                }
                if count {
                    p.set(p.get() - 1);
                }
                Ok(())
            });
        }
        pending
    }
}
