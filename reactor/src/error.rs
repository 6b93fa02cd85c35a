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
    /// The worker pool's queue is full: `max_queue` jobs wait, or the front one has waited
    /// longer than `max_queue_wait` (see [`PoolConfig`](crate::PoolConfig)).
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

/// A [`ReactorGroup`](crate::ReactorGroup) could not start, or one of its threads ended
/// badly. Each variant names the reactor by its index in the group.
///
/// # Examples
///
/// ```
/// use ropewalk_reactor::{GroupError, ReactorGroup};
///
/// let err = ReactorGroup::start(2, |_, index| {
///     if index == 0 { panic!("bad setup") }
///     Ok(())
/// })
/// .unwrap_err();
/// assert_eq!(err.index(), 0);
/// assert!(err.is_panic());
/// assert!(err.to_string().contains("bad setup"));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GroupError {
    /// The thread, or its reactor (its poller), could not be made.
    #[error("cannot start reactor {index}: {error}")]
    Spawn {
        /// The reactor's index in the group.
        index: usize,
        /// The system error.
        #[source]
        error: std::io::Error,
    },
    /// The setup closure returned an error, or panicked
    /// ([`Failure::is_panic`](ropewalk_deferred::Failure::is_panic)).
    #[error("reactor {index}: setup failed: {failure}")]
    Setup {
        /// The reactor's index in the group.
        index: usize,
        /// What the setup returned, or its panic.
        failure: ropewalk_deferred::Failure,
    },
    /// The reactor thread panicked while running (outside any callback: a panic in a
    /// callback is caught and logged by the reactor).
    #[error("reactor {index} panicked: {message}")]
    Panicked {
        /// The reactor's index in the group.
        index: usize,
        /// The panic's message.
        message: String,
    },
    /// The reactor's `run` failed.
    #[error("reactor {index}: {error}")]
    Run {
        /// The reactor's index in the group.
        index: usize,
        /// Why.
        error: ReactorError,
    },
}

impl GroupError {
    /// The index of the reactor this error is about.
    ///
    /// # Examples
    ///
    /// ```
    /// use ropewalk_reactor::deferred::Failure;
    /// use ropewalk_reactor::ReactorGroup;
    ///
    /// let err = ReactorGroup::start(3, |_, i| if i == 2 { Err(Failure::msg("no")) } else { Ok(()) });
    /// assert_eq!(err.unwrap_err().index(), 2);
    /// ```
    pub fn index(&self) -> usize {
        match self {
            GroupError::Spawn { index, .. }
            | GroupError::Setup { index, .. }
            | GroupError::Panicked { index, .. }
            | GroupError::Run { index, .. } => *index,
        }
    }

    /// Whether a panic caused it: in the setup closure, or on the running thread.
    ///
    /// # Examples
    ///
    /// ```
    /// use ropewalk_reactor::deferred::Failure;
    /// use ropewalk_reactor::ReactorGroup;
    ///
    /// let err = ReactorGroup::start(1, |_, _| Err(Failure::msg("no"))).unwrap_err();
    /// assert!(!err.is_panic());
    /// ```
    pub fn is_panic(&self) -> bool {
        match self {
            GroupError::Setup { failure, .. } => failure.is_panic(),
            GroupError::Panicked { .. } => true,
            _ => false,
        }
    }
}
