//! Pattern 3 — Deferreds: `connect` returns a result you hold before it exists; chain
//! callbacks and errbacks on it, or block on it with `wait()` in a script.
//!
//! ```sh
//! cargo run --example pattern_deferred
//! ```
//!
//! It takes no arguments. `RUST_LOG=debug` shows what the reactor does.

use std::time::Duration;

use ropewalk::prelude::*;
use ropewalk::reactor::{defer_later, Address, ConnectionError, Protocol, Reactor, TransportRef};

/// Greets whoever connects, then hangs up.
struct Greeter;

impl Protocol for Greeter {
    fn connection_made(&mut self, transport: TransportRef) {
        transport.write(b"hi");
        transport.lose_connection();
    }

    fn data_received(&mut self, _: &[u8]) -> Result<(), Failure> {
        Ok(())
    }
}

/// A client that keeps nothing; we only care that it connects.
struct Quiet;

impl Protocol for Quiet {
    fn data_received(&mut self, _: &[u8]) -> Result<(), Failure> {
        Ok(())
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    env_logger::init();
    if let Some(arg) = std::env::args().nth(1) {
        let usage =
            "usage: pattern_deferred   (no arguments; RUST_LOG=debug shows the reactor's work)";
        if arg == "-h" || arg == "--help" {
            println!("{usage}");
            return Ok(());
        }
        eprintln!("pattern_deferred: unexpected argument {arg:?}\n{usage}");
        std::process::exit(2);
    }
    let reactor = Reactor::new()?;
    let port = reactor.listen_tcp("127.0.0.1:0".parse()?, |_: &Address| Some(Greeter))?;
    let addr = port.local_addr().inet().expect("tcp");

    // 1. Callbacks and chaining: connect, then wait 20 ms (a Deferred returned from a
    //    callback: the chain pauses until it fires), then describe what happened.
    let r = reactor.clone();
    let described = reactor
        .connect_tcp(addr, |_: &Address| Some(Quiet), Duration::from_secs(5))
        .add_callback(move |_client| defer_later(&r, Duration::from_millis(20), || Ok("connected")))
        .add_callback(|what| Ok(format!("{what}, then waited 20 ms")));
    println!("1. {}", described.wait()?);

    // 2. Errbacks: nothing listens on this port, so the connect fails; an errback
    //    recovers with a value.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let recovered = reactor
        .connect_tcp(closed, |_: &Address| Some(Quiet), Duration::from_secs(5))
        .add_callback(|_| Ok("connected?!".to_string()))
        .add_errback(|f: Failure| match f.downcast_ref::<ConnectionError>() {
            Some(ConnectionError::Refused(_)) => Ok("refused, as expected".to_string()),
            _ => Err(f),
        });
    println!("2. {}", recovered.wait()?);

    // 3. wait() with a timeout: a Deferred nobody fires times out instead of hanging.
    let (never, _resolver) = Deferred::<()>::pending();
    let timed = never
        .add_timeout(Duration::from_millis(30), &reactor)
        .wait();
    println!("3. {}", timed.unwrap_err());

    port.stop_listening();
    Ok(())
}
