//! Pattern 2 — inline closures: a timer and a connection, each handled by a closure
//! written where it is used.
//!
//! ```sh
//! cargo run --example pattern_closures
//! ```
//!
//! It takes no arguments. `RUST_LOG=debug` shows what the reactor does.

use std::time::Duration;

use ropewalk::prelude::*;
use ropewalk::reactor::{Address, Protocol, Reactor, TransportRef};

/// A protocol made of closures: what to do on connect and on data.
struct Closures<C, D> {
    on_connect: C,
    on_data: D,
    transport: Option<TransportRef>,
}

impl<C: FnMut(&TransportRef) + 'static, D: FnMut(&TransportRef, &[u8]) + 'static> Protocol
    for Closures<C, D>
{
    fn connection_made(&mut self, transport: TransportRef) {
        (self.on_connect)(&transport);
        self.transport = Some(transport);
    }

    fn data_received(&mut self, data: &[u8]) -> Result<(), Failure> {
        if let Some(t) = &self.transport {
            (self.on_data)(t, data);
        }
        Ok(())
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    env_logger::init();
    if let Some(arg) = std::env::args().nth(1) {
        let usage =
            "usage: pattern_closures   (no arguments; RUST_LOG=debug shows the reactor's work)";
        if arg == "-h" || arg == "--help" {
            println!("{usage}");
            return Ok(());
        }
        eprintln!("pattern_closures: unexpected argument {arg:?}\n{usage}");
        std::process::exit(2);
    }
    let reactor = Reactor::new()?;

    // A timer: the closure runs in 50 ms.
    reactor.call_later(Duration::from_millis(50), || {
        println!("timer: 50 ms passed")
    });

    // A server whose protocol is two closures.
    let port = reactor.listen_tcp("127.0.0.1:0".parse()?, |peer: &Address| {
        println!("server: connection from {peer}");
        Some(Closures {
            on_connect: |t: &TransportRef| t.write(b"welcome\n"),
            on_data: |t: &TransportRef, data: &[u8]| {
                println!("server: got {:?}", String::from_utf8_lossy(data));
                t.write(b"bye\n");
                t.lose_connection();
            },
            transport: None,
        })
    })?;

    // A client, also closures; it stops the reactor when the server says bye. TCP is a
    // stream: "welcome\n" and "bye\n" may arrive in one read or in pieces, so the closure
    // keeps what it has not seen a newline after.
    let r = reactor.clone();
    reactor.connect_tcp(
        port.local_addr().inet().expect("tcp"),
        move |_: &Address| {
            let r = r.clone();
            let mut pending = Vec::new();
            Some(Closures {
                on_connect: |t: &TransportRef| t.write(b"hello"),
                on_data: move |_t: &TransportRef, data: &[u8]| {
                    pending.extend_from_slice(data);
                    while let Some(end) = pending.iter().position(|&b| b == b'\n') {
                        let line: Vec<u8> = pending.drain(..=end).collect();
                        print!("client: got {}", String::from_utf8_lossy(&line));
                        if line == b"bye\n" {
                            let r = r.clone();
                            // Let the timer fire too, then stop.
                            r.clone()
                                .call_later(Duration::from_millis(100), move || r.stop().unwrap());
                        }
                    }
                },
                transport: None,
            })
        },
        Duration::from_secs(5),
    );

    reactor.run()?;
    println!("done");
    Ok(())
}
