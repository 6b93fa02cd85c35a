//! Protocols for ropewalk: line framing, echo, and HTTP/1.1.
//!
//! This crate is being built; it will hold `LineReceiver`, `Echo` and the HTTP server and
//! client on top of `ropewalk-reactor`.
#![warn(missing_docs, missing_debug_implementations, rust_2018_idioms)]
#![forbid(unsafe_code)]

pub mod framing;
pub mod line;
pub mod line_only;
