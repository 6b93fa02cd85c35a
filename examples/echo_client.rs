//! A script: connect to an echo server, send TEXT, print what comes back, exit.
//!
//! ```sh
//! cargo run --release --example echo_server -- --port 7000 &
//! cargo run --release --example echo_client -- --port 7000 hello
//! ```
//!
//! No loop to write: `connect_tcp` returns a Deferred, and `.wait()` runs the reactor
//! until it fires.

use std::time::Duration;

use ropewalk::prelude::*;
use ropewalk::reactor::{Address, Protocol, Reactor, TransportRef};

/// Sends the text, collects the echo, fires `done` with it when the server has sent it all.
struct OneShot {
    text: Vec<u8>,
    got: Vec<u8>,
    transport: Option<TransportRef>,
    done: Option<Resolver<Vec<u8>>>,
}

impl Protocol for OneShot {
    fn connection_made(&mut self, transport: TransportRef) {
        transport.write(&self.text);
        self.transport = Some(transport);
    }

    fn data_received(&mut self, data: &[u8]) -> Result<(), Failure> {
        self.got.extend_from_slice(data);
        if self.got.len() >= self.text.len() {
            if let Some(t) = &self.transport {
                t.lose_connection();
            }
        }
        Ok(())
    }

    fn connection_lost(&mut self, reason: Failure) {
        if let Some(done) = self.done.take() {
            let clean = reason
                .downcast_ref::<ropewalk::reactor::ConnectionError>()
                .is_some_and(|e| e.is_clean());
            let _ = if clean && self.got.len() >= self.text.len() {
                done.callback(std::mem::take(&mut self.got))
            } else {
                done.errback(reason)
            };
        }
    }
}

fn main() {
    env_logger::init();
    let mut port = 7000u16;
    let mut words = Vec::new();
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        if a == "--port" {
            match it.next().and_then(|p| p.parse().ok()) {
                Some(p) => port = p,
                None => {
                    eprintln!("echo_client: --port needs a number");
                    std::process::exit(2);
                }
            }
        } else {
            words.push(a);
        }
    }
    if words.is_empty() {
        eprintln!("usage: echo_client [--port P] TEXT...");
        std::process::exit(2);
    }
    let text = words.join(" ");
    match echo(port, text.into_bytes()) {
        Ok(back) => println!("{}", String::from_utf8_lossy(&back)),
        Err(e) => {
            eprintln!("echo_client: {e}");
            std::process::exit(1);
        }
    }
}

fn echo(port: u16, text: Vec<u8>) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
    let reactor = Reactor::new()?;
    let (done, resolver) = Deferred::pending();
    let cell = std::cell::RefCell::new(Some(resolver));
    let factory = move |_: &Address| {
        cell.borrow_mut().take().map(|done| OneShot {
            text: text.clone(),
            got: Vec::new(),
            transport: None,
            done: Some(done),
        })
    };
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let connected = reactor.connect_tcp(addr, factory, Duration::from_secs(5));
    // A failed connect is the answer; a good one hands over to `done`.
    connected.wait()?;
    Ok(done.add_timeout(Duration::from_secs(10), &reactor).wait()?)
}
