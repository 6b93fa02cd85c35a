//! Protocols for ropewalk: line framing, echo, and HTTP/1.1.
//!
//! Every protocol here is a [`Protocol`](ropewalk_reactor::Protocol) on the reactor, and
//! is tested without sockets through
//! [`StringTransport`](ropewalk_reactor::testing::StringTransport) and a
//! [`ManualClock`](ropewalk_reactor::ManualClock).
#![warn(missing_docs, missing_debug_implementations, rust_2018_idioms)]
#![forbid(unsafe_code)]

pub mod http;
