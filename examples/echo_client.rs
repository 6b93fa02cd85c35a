//! A script: connect to an echo server, send TEXT, print what comes back, exit.
//!
//! ```sh
//! cargo run --release --example echo_server -- --port 7000 &
//! cargo run --release --example echo_client -- --port 7000 hello
//! ```
//!
//! No loop to write: `connect_tcp` returns a Deferred, and `.wait()` runs the reactor
//! until it fires. `RUST_LOG=debug` shows what the reactor does (the connect, the
//! reads and writes, the close). A refused connection or a bad argument is one line on
//! stderr and a non-zero exit (1 for a failure, 2 for a bad argument).

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

const USAGE: &str = "usage: echo_client [--host HOST] [--port P] TEXT...

  --host HOST   the echo server's name or address (default 127.0.0.1)
  --port P      its port (default 7000)";

struct Args {
    host: String,
    port: u16,
    text: String,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        host: "127.0.0.1".into(),
        port: 7000,
        text: String::new(),
    };
    let mut words = Vec::new();
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--host" => a.host = value()?,
            "--port" => {
                let v = value()?;
                a.port = match v.parse() {
                    Ok(p) if p != 0 => p,
                    _ => return Err(format!("bad port: {v}")),
                };
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            // Everything after `--` is text, even if it starts with a dash.
            "--" => words.extend(it.by_ref()),
            flag if flag.starts_with('-') => return Err(format!("unknown option: {flag}")),
            _ => words.push(arg),
        }
    }
    if words.is_empty() {
        return Err("no TEXT to send".into());
    }
    a.text = words.join(" ");
    Ok(a)
}

fn main() {
    env_logger::init();
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("echo_client: {e}\n{USAGE}");
            std::process::exit(2);
        }
    };
    match echo(&args.host, args.port, args.text.into_bytes()) {
        Ok(back) => println!("{}", String::from_utf8_lossy(&back)),
        Err(e) => {
            eprintln!("echo_client: {}:{}: {e}", args.host, args.port);
            std::process::exit(1);
        }
    }
}

fn echo(host: &str, port: u16, text: Vec<u8>) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
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
    // One chain: a failed connect is the answer; a good one hands over to `done`. (Waiting
    // on `done` apart would leave it unobserved when the connect fails.)
    let echoed = reactor
        .connect_tcp((host, port), factory, Duration::from_secs(5))
        .add_callback(move |_connected| done)
        .add_timeout(Duration::from_secs(10), &reactor);
    Ok(echoed.wait()?)
}
