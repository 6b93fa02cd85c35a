//! Shared pieces of ropewalk's side-by-side benchmarks.
//!
//! Each benchmark is a folder of `bench/` (`echo/`, `http/`, `multicore/`, `deferred/`,
//! `lines/`, `reactor/`, `soak/`, `architecture/`) whose `main.rs` is its driver, next to the servers and
//! load generators it runs; the driver measures ropewalk with [`harness`], counts
//! its heap allocations with [`alloc`], runs the peer's version of the same scenarios as a
//! subprocess through [`peer`] (which prints JSON lines), and prints one table with
//! [`report`]. See `bench/README.md` for how each benchmark is run and measured.
#![warn(missing_docs, missing_debug_implementations, rust_2018_idioms)]

pub mod alloc;
pub mod cli;
pub mod harness;
pub mod hello;
pub mod jobs;
pub mod load;
pub mod peer;
pub mod procs;
pub mod report;
pub mod sim;
pub mod syscalls;
pub mod work;
