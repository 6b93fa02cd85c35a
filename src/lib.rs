//! ropewalk: a Twisted-style networking framework for Rust.
//!
//! One reactor per thread, on which four ways of writing network code work together:
//! event handlers (`Protocol`s and listeners), inline closures, [`Deferred`]s with
//! callback/errback chains, and `async` tasks.
//!
//! This facade re-exports the crates: [`deferred`] (no I/O), [`reactor`] and
//! [`protocols`], and a [`prelude`].
//!
//! New here? Read the [`guide`]: an hour from a `Protocol` and its factory to a server on
//! several cores, for Twisted and tokio users.
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

#[doc = include_str!("../docs/guide.md")]
pub mod guide {}

pub mod prelude {
    //! The names most programs use: `use ropewalk::prelude::*;`.
    //!
    //! - Deferreds: [`Deferred`], [`Resolver`],
    //!   [`Failure`], [`succeed`],
    //!   [`fail`], [`gather_results`]
    //!   and [`gather_results_consuming_errors`],
    //!   [`Cancelled`],
    //!   [`Timeout`], and the traits a callback's return goes through.
    //! - The reactor: [`Reactor`], the [`Clock`]
    //!   trait (so `reactor.call_later(...)` resolves), [`ManualClock`],
    //!   [`DelayedCall`], [`defer_later`].
    //! - Connections: [`Protocol`], [`Factory`],
    //!   [`for_protocol`], [`Finish`] and
    //!   [`NoResult`] (a client's result as a Deferred),
    //!   [`Transport`], [`TransportRef`],
    //!   [`Address`], [`Connected`],
    //!   [`ConnectionError`].
    //! - Lines: [`LineReceiver`],
    //!   [`LineHandler`],
    //!   [`LineControl`], [`LineSender`].
    //! - [`Duration`].
    //!
    //! The test transport, [`StringTransport`](crate::reactor::testing::StringTransport), is
    //! not in it: tests import it from `ropewalk::reactor::testing`.
    //!
    //! A name your program defines itself wins over one of the prelude's (a glob import never
    //! clashes with a local item).
    //!
    //! # Examples
    //!
    //! A line server that answers `PING` with `PONG`, written with the prelude alone:
    //!
    //! ```
    //! use ropewalk::prelude::*;
    //!
    //! struct Pong;
    //!
    //! impl LineHandler for Pong {
    //!     fn line_received(&mut self, line: &[u8], ctl: &mut LineControl<'_>) -> Result<(), Failure> {
    //!         ctl.send_line(if line == b"PING" { b"PONG" } else { b"ERR" });
    //!         Ok(())
    //!     }
    //! }
    //!
    //! let reactor = Reactor::new()?;
    //! let port = reactor.listen_tcp("127.0.0.1:0".parse()?, |_| Some(LineReceiver::new(Pong)))?;
    //! let addr = port.local_addr().inet().unwrap();
    //! # use std::io::{BufRead, BufReader, Write};
    //! // A blocking client on a worker thread; `wait` runs the reactor meanwhile.
    //! let answer = reactor.defer_to_thread(move || {
    //!     let mut s = std::net::TcpStream::connect(addr)?;
    //!     s.write_all(b"PING\r\n")?;
    //!     let mut line = String::new();
    //!     BufReader::new(s).read_line(&mut line)?;
    //!     Ok(line)
    //! });
    //! assert_eq!(answer.wait()?, "PONG\r\n");
    //! # Ok::<(), Box<dyn std::error::Error>>(())
    //! ```

    pub use std::time::Duration;

    pub use ropewalk_deferred::{
        fail, gather_results, gather_results_consuming_errors, maybe_deferred, succeed, Cancelled,
        Deferred, Failure, IntoOutcome, Outcome, Resolver, Timeout,
    };
    pub use ropewalk_protocols::{LineControl, LineHandler, LineReceiver, LineSender};
    pub use ropewalk_reactor::{
        defer_later, for_protocol, Address, Clock, Connected, ConnectionError, DelayedCall,
        Factory, Finish, ManualClock, NoResult, Protocol, Reactor, Transport, TransportRef,
    };
}
