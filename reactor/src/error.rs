//! The reactor's errors.

/// What went wrong in a reactor call.
///
/// # Examples
///
/// ```
/// use ropewalk_reactor::{Reactor, ReactorError};
///
/// let reactor = Reactor::new().unwrap();
/// assert_eq!(reactor.stop().unwrap_err(), ReactorError::NotRunning);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReactorError {
    /// `stop()` on a reactor that is not running.
    #[error("the reactor is not running")]
    NotRunning,
    /// `run()` on a reactor that is already running (on this thread's stack).
    #[error("the reactor is already running")]
    AlreadyRunning,
    /// A call that must not be made on the reactor's own thread (it would deadlock).
    #[error("this call would deadlock on the reactor thread")]
    OnReactorThread,
    /// The reactor went away before the call could run.
    #[error("the reactor is gone")]
    Gone,
    /// The worker pool's queue is full.
    #[error("the worker pool queue is full ({0} jobs waiting)")]
    PoolFull(usize),
    /// No such system event trigger (it ran, or was removed).
    #[error("no such system event trigger")]
    UnknownTrigger,
    /// The worker pool was shut down.
    #[error("the worker pool is shut down")]
    PoolShutDown,
}

/// A [`DelayedCall`](crate::DelayedCall) could not be changed.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use ropewalk_reactor::{Clock, ManualClock, TimerError};
///
/// let clock = ManualClock::new();
/// let call = clock.call_later(Duration::from_secs(1), || {});
/// call.cancel().unwrap();
/// assert_eq!(call.cancel().unwrap_err(), TimerError::AlreadyCancelled);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TimerError {
    /// The call already ran (Twisted's `AlreadyCalled`).
    #[error("the delayed call already ran")]
    AlreadyCalled,
    /// The call was cancelled (Twisted's `AlreadyCancelled`).
    #[error("the delayed call was cancelled")]
    AlreadyCancelled,
}
