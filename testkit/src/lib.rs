//! Test inputs shared by ropewalk's HTTP tests and the soak in `bench/`.
//!
//! Both sides must send the same bad input, so it lives here once, as data and pure
//! functions, with no dependency on ropewalk itself:
//!
//! - [`chaos`]: a small deterministic random generator and the mutator that damages valid
//!   messages (the HTTP and line chaos tests, and the soak's `mutated` operation).
//! - [`malformed`]: the malformed-request table, every rejection rule of the server with
//!   the status it must get (the `http_malformed_table` test and the soak's `malformed`
//!   operation).
//! - [`pki`]: a CA and certificates made at test time, so that no private key is checked
//!   in (the TLS tests).
//! - [`peers`]: outside tools the interop tests need, skipped loudly when missing.
//! - `defer_model` (feature `deferred-model`): the Deferred model and its program
//!   generator (the `defer_model` test of ropewalk-deferred and the `deferred_program`
//!   fuzz target).
//!
//! The crate is `publish = false`: the protocols crate takes it as a dev-dependency and
//! `bench/` by path, so it never enters the library's dependency tree.
//!
//! # Examples
//!
//! ```
//! use ropewalk_testkit::chaos::{mutate, Rng};
//! use ropewalk_testkit::malformed::{over_limits, Limits, MALFORMED};
//!
//! let mut rng = Rng(42);
//! let mut input = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec();
//! mutate(&mut rng, &mut input, &[b"Content-Length: 3\r\n"]);
//!
//! let rows = MALFORMED.iter().cloned().chain(over_limits(&Limits::SMALL));
//! assert!(rows.count() > 40);
//! ```
#![warn(missing_docs, missing_debug_implementations, rust_2018_idioms)]
#![forbid(unsafe_code)]

pub mod chaos;
#[cfg(feature = "deferred-model")]
pub mod defer_model;
pub mod malformed;
pub mod peers;
pub mod pki;
