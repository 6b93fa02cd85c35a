//! The ropewalk reactor: one event loop per thread, on which Protocols, Deferreds, timers
//! and async tasks all run.
//!
//! This crate is being built; today it re-exports the Deferred layer it sits on.
#![warn(missing_docs, missing_debug_implementations, rust_2018_idioms)]

pub use ropewalk_deferred as deferred;
