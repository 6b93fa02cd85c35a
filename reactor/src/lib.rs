//! The ropewalk reactor: one event loop per thread, on which timers, callbacks,
//! Deferreds, `async` tasks, worker-pool results and I/O all run.
//!
//! - [`Reactor`]: `run`, `stop`, `iterate`, `call_soon`, timers through [`Clock`]
//!   (`call_later` → [`DelayedCall`]), `spawn` for futures, `defer_to_thread` for blocking
//!   work, and `stats`.
//! - [`ReactorHandle`]: the `Send + Sync` way in from other threads (`call_from_thread`,
//!   `blocking_call`, `stop`).
//! - [`ManualClock`]: Twisted's `task.Clock`, so tests drive time by hand.
//! - Lifecycle: system event triggers ([`Phase`], [`SystemEvent`]), `call_when_running`,
//!   and opt-in SIGINT/SIGTERM handling (`install_signal_handlers`).
//! - [`Emitter`]: typed listeners (`on`, `off`, `emit`) and an event queue (`post`).
//! - [`LoopingCall`], [`defer_later`], [`yield_now`].
//! - UDP: [`Reactor::listen_udp`] runs a [`DatagramProtocol`] on a [`UdpPort`].
//! - Multi-core: [`ReactorGroup`] runs N reactors on N threads (each built by a setup
//!   closure on its own thread); [`GroupListener`] makes them all listen on one address,
//!   each with its own accept queue (`SO_REUSEPORT`), sharing one, or each with its own
//!   queue fed by a dispatcher, round-robin or least-loaded ([`AcceptQueue`],
//!   [`Dispatch`]).
//! - Clients with a result: [`Reactor::connect_for`] runs a protocol that puts its answer
//!   in a [`Finish`], and returns a Deferred of that answer.
//! - [`tls`]: TLS on rustls as a transport: [`Reactor::listen_tls`], [`Reactor::connect_tls`],
//!   config builders with secure defaults.
//! - [`net`]: async sockets for tasks (`TcpListener`, `TcpStream`, `UdpSocket`):
//!   `let (n, addr) = sock.recv_from(&mut buf).await?;`
//!
//! Creating a reactor makes it this thread's driver for
//! [`Deferred::wait`](ropewalk_deferred::Deferred::wait): a script builds a reactor, calls
//! something that returns a Deferred, and `.wait()`s on it.
//!
//! # Examples
//!
//! ```
//! use std::time::Duration;
//! use ropewalk_reactor::{defer_later, Reactor};
//!
//! let reactor = Reactor::new()?;
//! let d = defer_later(&reactor, Duration::from_millis(10), || Ok("tick"))
//!     .add_callback(|s| Ok(s.len()));
//! assert_eq!(d.wait().unwrap(), 4);
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! # Implementation
//!
//! A [`Reactor`] is a handle on a `ReactorCore` (`reactor.rs`), which owns the loop's
//! parts as values, each in its own file, none of which knows the reactor:
//!
//! - `io.rs`: `Sources`, the descriptors registered with the poller and their handlers,
//!   the readiness of the turn, and the one shared read buffer;
//! - `time.rs`: the timer queue; `task.rs`: `Tasks`, the spawned futures;
//!   `lifecycle.rs`: `Triggers`; `jobs.rs`: `Jobs`, the `defer_to_thread` jobs in
//!   flight, run by the worker pool of `pool.rs`;
//! - `sys/`: every call that asks the kernel about readiness. On Linux, `sys/epoll.rs`:
//!   connections are registered **edge-triggered** with `EPOLLRDHUP` through
//!   `epoll_ctl` directly, listeners with `EPOLLEXCLUSIVE`, a turn waits in one
//!   `epoll_wait`, and connections read and send with direct `recv`/`send` calls.
//!   Elsewhere, or with the `portable-poller` feature, `sys/portable.rs`: the `polling`
//!   crate alone, with **level-triggered** connections. The choice is made at compile
//!   time, so the epoll path carries no runtime branch for it.
//!
//! Above the core, the transports (`connection.rs`, `tcp.rs`, `udp.rs`, `net.rs`) and
//! the signal wake-up sockets (`signals.rs`) implement the core's `IoHandler` trait and
//! register themselves through the reactor.
//!
//! One turn (`Reactor::turn`): wait for I/O, run what other threads queued, the due
//! timers, the `call_soon` callbacks, then the woken tasks. One read event on a
//! connection goes down from the turn and back up once, through four files:
//!
//! 1. `reactor.rs`: the turn asks `Sources::wait` (`io.rs`) for readiness, which asks
//!    `sys::Poller::wait` (`sys/epoll.rs`: one `epoll_wait`) and queues what it reports;
//! 2. `reactor.rs`: `Sources::dispatch` (`io.rs`) looks up each event's handler and
//!    hands it back to the turn, which calls `IoHandler::ready` under `catch_unwind`;
//! 3. `connection.rs`: the connection reads into the shared buffer with `sys::sock_read`
//!    and gives the bytes to its protocol's `data_received`. If its read budget ran out
//!    before the socket was drained (edge-triggered, the kernel will not say so again),
//!    it asks the next turn to look again (`Sources::ready_again`).
#![warn(missing_docs, missing_debug_implementations, rust_2018_idioms)]
#![deny(unsafe_code)]

#[cfg(unix)]
pub mod activation;
mod client;
mod connection;
mod dispatch;
mod error;
mod events;
mod group;
mod io;
mod jobs;
mod lifecycle;
mod log_limit;
mod looping;
pub mod net;
mod pool;
mod protocol;
mod radix;
mod reactor;
mod signals;
mod slab;
mod splice;
mod sys;
mod task;
mod tcp;
pub mod testing;
mod time;
pub mod tls;
mod tls_error;
mod tls_info;
mod tls_start;
mod udp;

pub use crate::client::{Finish, NoResult};
pub use crate::connection::DEFAULT_HIGH_WATER;
pub use crate::dispatch::{Dispatch, ParseDispatchError};
pub use crate::error::{GroupError, ReactorError, TimerError};
pub use crate::events::{Emitter, ListenerId};
pub use crate::group::{
    AcceptQueue, GroupListener, ParseAcceptQueueError, ReactorGroup, ReactorGroupBuilder,
};
pub use crate::lifecycle::{Phase, SystemEvent, TriggerId};
pub use crate::log_limit::LogLimiter;
pub use crate::looping::{LoopError, LoopingCall};
pub use crate::pool::{PoolConfig, PoolStats};
pub use crate::protocol::{
    for_protocol, Address, ConnectionError, Factory, ListeningPort, Producer, Protocol, Transport,
    TransportProducer, TransportRef,
};
pub use crate::reactor::{Reactor, ReactorHandle, ReactorStats};
pub use crate::signals::SignalGuard;
#[doc(hidden)]
pub use crate::splice::SpliceSink;
pub use crate::task::{yield_now, YieldNow};
pub use crate::tcp::{Connected, ListenOptions, Target};
pub use crate::time::{defer_later, Clock, DelayedCall, ManualClock};
pub use crate::udp::{DatagramProtocol, DatagramTransport, DatagramTransportRef, UdpPort};
pub use ropewalk_deferred as deferred;
