//! ropewalk: a Twisted-style networking framework for Rust.
//!
//! One reactor per thread, on which four ways of writing network code work together:
//! event handlers (`Protocol`s and listeners), inline closures, [`Deferred`]s with
//! callback/errback chains, and `async` tasks.
//!
//! This facade re-exports the crates: [`deferred`] (no I/O), [`reactor`] and
//! [`protocols`], and a [`prelude`].
//!
//! # Examples
//!
//! ```
//! use ropewalk::prelude::*;
//!
//! let (d, resolver) = Deferred::<u32>::pending();
//! let d = d.add_callback(|n| Ok(n * 2));
//! resolver.callback(21).unwrap();
//! assert_eq!(d.wait().unwrap(), 42);
//! ```
#![warn(missing_docs, missing_debug_implementations, rust_2018_idioms)]
#![forbid(unsafe_code)]

pub use ropewalk_deferred as deferred;
pub use ropewalk_protocols as protocols;
pub use ropewalk_reactor as reactor;

pub use ropewalk_deferred::{Deferred, Failure, Resolver};

/// The names most programs use: `use ropewalk::prelude::*;`.
pub mod prelude {
    pub use ropewalk_deferred::{
        fail, maybe_deferred, succeed, Cancelled, Deferred, Failure, IntoOutcome, Outcome,
        Resolver, Timeout,
    };
}
