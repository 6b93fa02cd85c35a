//! Twisted's `Deferred`, typed, for Rust: a result you hold before it exists.
//!
//! A [`Deferred<T>`] is fired once, by its [`Resolver<T>`], with a value or a [`Failure`].
//! Callbacks and errbacks added to it form a chain that runs synchronously when it fires,
//! exactly as in Twisted (`twisted.internet.defer`), with three things Python cannot give:
//!
//! - **Types through the chain.** Each `add_callback` consumes the handle and returns one
//!   typed at the callback's result, so `Deferred<Response>` → `Deferred<usize>` →
//!   `Deferred<String>` is checked at compile time.
//! - **Firing once by construction.** Firing consumes the [`Resolver`]; [`AlreadyCalled`] is
//!   left for the one race the types cannot see (a canceller that already gave a result).
//! - **No stack growth.** Chains of a million callbacks, and a million nested Deferreds, run
//!   in a loop, not by recursion; so does [`Deferred::chain_deferred`], which overflows
//!   Twisted's stack at about 330 links.
//!
//! A callback returns `Ok(value)`, `Err(failure)` (`?` turns any error into a [`Failure`]),
//! or another `Deferred`, on which the chain then waits. A panic in a callback becomes a
//! [`Failure`] carrying the panic message. A Deferred dropped with an unhandled failure
//! logs it through `log::error!`, or writes it to stderr when no logger takes errors.
//!
//! A `Deferred<T>` is a [`Future`](std::future::Future) with output `Result<T, Failure>`,
//! and [`Deferred::wait`] blocks a script until it fires by running the reactor on the
//! current thread (through the [`WaitDriver`] hook that the reactor installs).
//!
//! Around it: [`DeferredList`], [`gather_results`] and [`race`]; [`DeferredLock`],
//! [`DeferredSemaphore`] and [`DeferredQueue`]; timeouts through the small [`Scheduler`]
//! trait that the reactor and test clocks implement.
//!
//! # Threads
//!
//! A Deferred belongs to one thread (it is neither `Send` nor `Sync`), and its callbacks run
//! on the thread that fires it. Other threads hand results to a reactor thread, which fires
//! the Deferred (`ReactorHandle::call_from_thread` in `ropewalk-reactor`). [`Failure`] is
//! `Send + Sync`, so errors can cross threads.
//!
//! # Examples
//!
//! ```
//! use ropewalk_deferred::{Deferred, Failure};
//!
//! let (d, resolver) = Deferred::<Vec<u8>>::pending();
//! let d = d
//!     .add_callback(|body| Ok(body.len()))                    // Deferred<usize>
//!     .add_callback(|n| Deferred::succeed(format!("{n} bytes"))) // waits on another Deferred
//!     .add_errback(|f: Failure| Ok(format!("failed: {f}")));
//! resolver.callback(b"hello".to_vec()).unwrap();
//! assert_eq!(d.wait().unwrap(), "5 bytes");
//! ```
//!
//! # Implementation
//!
//! A Deferred is a handle on one shared chain (`Rc`): a queue of steps, a pause count and
//! flags in one cell, the current result in another. Values are type-erased between steps:
//! `()`, integers, `bool`, `char` and floats are stored inline, other values in a box (the
//! box of the step that produced them). A step is a boxed closure, so a callback that
//! captures nothing costs no allocation, and a chain nobody holds any more is emptied and
//! reused from a small per-thread pool. A fired result with nothing left to run moves into
//! the handle, where later callbacks run inline.
//!
//! The runner pops steps in a loop. It holds the result for the whole run (each step gets
//! `&mut` to it) and releases the rest of the chain while user code runs, so a callback may
//! add callbacks, cancel, or look. When a callback returns an unfired Deferred, the outer
//! chain pauses and the inner one gets a continuation as its tail; when the runner reaches
//! it, it moves the result across and carries on with the outer chain in the same loop.
#![warn(missing_docs, missing_debug_implementations, rust_2018_idioms)]
#![forbid(unsafe_code)]

mod chain;
mod deferred;
mod error;
mod failure;
mod list;
mod lock;
mod queue;
mod timeout;
mod wait;

pub use crate::deferred::{
    fail, maybe_deferred, succeed, swap_last_awaited, CancelHandle, Deferred, IntoOutcome, Outcome,
    Resolver,
};
pub use crate::error::{
    AlreadyCalled, Cancelled, FailureGroup, FirstError, InvalidTokens, QueueOverflow,
    QueueUnderflow, ResolverDropped, Timeout, WaitError,
};
pub use crate::failure::{is_debugging, set_debugging, Failure, Panicked};
pub use crate::list::{
    gather_results, gather_results_consuming_errors, race, DeferredList, ListOutcome,
};
pub use crate::lock::{DeferredLock, DeferredSemaphore, LockGuard, Permit};
pub use crate::queue::DeferredQueue;
pub use crate::timeout::{ScheduledCall, Scheduler};
pub use crate::wait::{set_wait_driver, WaitDriver};
