//! Protocols for ropewalk: line and string framing, echo, and HTTP/1.1 (server and client).
//!
//! Each protocol is a [`Protocol`](ropewalk_reactor::Protocol) for `ropewalk-reactor`,
//! so it runs on any transport: TCP, a Unix socket, or a
//! [`StringTransport`](ropewalk_reactor::testing::StringTransport) in tests.
//!
//! - [`line`](mod@line): [`LineReceiver`] splits a stream into lines for your [`LineHandler`], with
//!   a raw mode for bytes that are not lines, a line length limit, and pausing (Twisted's
//!   `LineReceiver`).
//! - [`line_only`]: [`LineOnlyReceiver`], lines only, for speed (Twisted's
//!   `LineOnlyReceiver`, with its partial-delimiter bug fixed).
//! - [`framing`]: length-prefixed strings ([`IntNStringReceiver`], 8/16/32-bit) and
//!   netstrings ([`NetstringReceiver`]), for a [`StringHandler`].
//! - [`echo`]: [`Echo`] (RFC 862) and [`Discard`] (RFC 863) over TCP, [`UdpEcho`] over UDP.
//! - [`http`]: the HTTP/1.1 server ([`http::HttpServer`], [`http::Site`], static files)
//!   and client ([`http::Client`]).
//!
//! # How the framing receivers work
//!
//! Twisted asks you to subclass `LineReceiver` and call `self.setRawMode()` from inside
//! `lineReceived`. Here the receiver is a generic wrapper around your *handler*, and every
//! callback gets a control object ([`LineControl`], [`StringControl`]) to write, close,
//! switch modes or pause. The control records requests; the receiver's single parsing loop
//! applies them when the callback returns, so a mode switch affects the rest of the same
//! chunk and nothing recurses. Chunks are parsed in place: only a partial line or string
//! left at the end of a chunk is copied.
//!
//! The four receivers differ only in how they find a message's end and what a handler
//! may ask; the rest (the controls' writes and close, the bytes held between chunks, the
//! `connection_made` / `connection_lost` steps) is written once, in a private `receiver`
//! module, with no allocation or dynamic call added per message.
//!
//! A callback that returns `Err` closes the connection with that failure, as an exception
//! in Twisted's `dataReceived` does. Lines (or strings) after one that closed the
//! connection, in the same chunk, are dropped.
//!
//! # Examples
//!
//! A line-based server, tested without sockets:
//!
//! ```
//! use ropewalk_protocols::line::{LineControl, LineHandler, LineReceiver};
//! use ropewalk_reactor::deferred::Failure;
//! use ropewalk_reactor::testing::StringTransport;
//! use ropewalk_reactor::{Address, Protocol};
//!
//! /// `ADD a b` answers the sum; `QUIT` closes.
//! struct Calc;
//!
//! impl LineHandler for Calc {
//!     fn line_received(&mut self, line: &[u8], ctl: &mut LineControl<'_>) -> Result<(), Failure> {
//!         let line = std::str::from_utf8(line).map_err(Failure::new)?;
//!         match line.split_whitespace().collect::<Vec<_>>()[..] {
//!             ["ADD", a, b] => {
//!                 let sum = a.parse::<i64>().map_err(Failure::new)? + b.parse::<i64>().map_err(Failure::new)?;
//!                 ctl.send_line(sum.to_string().as_bytes());
//!             }
//!             ["QUIT"] => ctl.lose_connection(),
//!             _ => ctl.send_line(b"ERR"),
//!         }
//!         Ok(())
//!     }
//! }
//!
//! // `reactor.listen_tcp(addr, factory)` serves it; here one connection is faked.
//! let factory = |_: &Address| Some(LineReceiver::new(Calc));
//! let mut p = factory(&Address::Test).unwrap();
//! let t = StringTransport::connect(&mut p);
//! p.data_received(b"ADD 2 40\r\nHELP\r\nQUIT\r\nADD 1 1\r\n").unwrap();
//! assert_eq!(t.value(), b"42\r\nERR\r\n");
//! assert!(t.is_disconnecting());
//! ```
//!
//! An echo server on loopback:
//!
//! ```
//! use std::io::{Read, Write};
//! use ropewalk_protocols::echo::Echo;
//! use ropewalk_reactor::Reactor;
//!
//! let reactor = Reactor::new()?;
//! let port = reactor.listen_tcp("127.0.0.1:0".parse().unwrap(), Echo::factory())?;
//! let addr = port.local_addr().inet().unwrap();
//! let back = reactor
//!     .defer_to_thread(move || {
//!         let mut s = std::net::TcpStream::connect(addr).unwrap();
//!         s.write_all(b"ping").unwrap();
//!         s.shutdown(std::net::Shutdown::Write).unwrap();
//!         let mut back = Vec::new();
//!         s.read_to_end(&mut back).unwrap();
//!         Ok(back)
//!     })
//!     .wait()
//!     .unwrap();
//! assert_eq!(back, b"ping");
//! # Ok::<(), std::io::Error>(())
//! ```
#![warn(missing_docs, missing_debug_implementations, rust_2018_idioms)]
#![forbid(unsafe_code)]

pub mod echo;
pub mod framing;
pub mod http;
pub mod line;
pub mod line_only;
pub mod proxy_header;
mod receiver;

pub use crate::echo::{Discard, Echo, UdpEcho};
pub use crate::framing::{
    FramingError, IntNStringReceiver, NetstringReceiver, Prefix, StringControl, StringHandler,
};
pub use crate::line::{LineControl, LineError, LineHandler, LineReceiver, LineSender, PauseHandle};
pub use crate::line_only::{LineOnlyControl, LineOnlyHandler, LineOnlyReceiver};
