//! Port forwarding with back-pressure both ways: every connection to `--port` is
//! relayed to `--to HOST:PORT`.
//!
//! ```sh
//! cargo run --release --example tcp_proxy -- --port 9000 --to 127.0.0.1:8080
//! curl -s localhost:9000/     # answered by whatever listens on 8080
//! ```
//!
//! Each accepted connection and its outgoing one are spliced to each other
//! ([`Transport::splice_to`]): on Linux the bytes go from socket to socket through a
//! pipe with `splice(2)`, never through user space. When one side's peer reads slowly,
//! reading from the other side stops once the pipe is full, so a slow reader never grows
//! the proxy's memory; an EOF on one side shuts down the other's sending side, and when
//! one side closes the other does too.
//!
//! It prints `listening on IP:PORT` once it accepts connections; `RUST_LOG=debug` shows
//! what the reactor does (each relayed connection, and why one could not reach the
//! target); Ctrl-C (SIGINT) or SIGTERM stops it cleanly.

use std::time::Duration;

use ropewalk::prelude::*;
use ropewalk::reactor::{Address, Protocol, Reactor, Target, TransportRef};

/// The outgoing side: reads nothing until it is spliced to the incoming one.
struct Outgoing(Option<TransportRef>);

impl Protocol for Outgoing {
    fn connection_made(&mut self, transport: TransportRef) {
        transport.pause_reading();
        self.0 = Some(transport);
    }

    fn data_received(&mut self, _: &[u8]) -> Result<(), Failure> {
        // Spliced: the bytes go straight to the other side.
        Ok(())
    }
}

/// Splices two transports to each other, then lets both read.
fn splice(a: &TransportRef, b: &TransportRef) -> std::io::Result<()> {
    a.splice_to(b)?;
    b.splice_to(a)?;
    a.resume_reading();
    b.resume_reading();
    Ok(())
}

/// The accepted side: connects out, reading nothing until the other end is up.
struct Incoming {
    reactor: Reactor,
    to: Target,
}

impl Protocol for Incoming {
    fn connection_made(&mut self, transport: TransportRef) {
        transport.pause_reading();
        let incoming = transport.clone();
        self.reactor
            .connect_tcp(
                self.to.clone(),
                |_: &Address| Some(Outgoing(None)),
                Duration::from_secs(10),
            )
            .add_callbacks(
                move |outgoing| {
                    let out = outgoing.borrow().0.clone().expect("connected");
                    if let Err(e) = splice(&incoming, &out) {
                        log::warn!("cannot relay: {e}");
                        incoming.lose_connection();
                        out.lose_connection();
                    }
                    Ok(())
                },
                move |failure: Failure| {
                    log::warn!("cannot reach the target: {failure}");
                    transport.lose_connection();
                    Ok(())
                },
            );
    }

    fn data_received(&mut self, _: &[u8]) -> Result<(), Failure> {
        // Spliced: the bytes go straight to the other side.
        Ok(())
    }
}

const USAGE: &str = "usage: tcp_proxy [--port P] --to HOST:PORT

  --port P          where to listen on 127.0.0.1 (default 9000; 0 picks a free port)
  --to HOST:PORT    where to relay each connection (a name is resolved per connection)";

struct Args {
    port: u16,
    to: String,
}

fn args() -> Result<Args, String> {
    let mut port = None;
    let mut to = None;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--port" => port = Some(it.next().ok_or("--port needs a value")?),
            "--to" => to = Some(it.next().ok_or("--to needs HOST:PORT")?),
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown option: {other}")),
        }
    }
    let port = port.unwrap_or_else(|| "9000".into());
    let to = to.ok_or("--to HOST:PORT is required")?;
    // Checked here: a bad target would otherwise fail only when a client connects.
    match to.rsplit_once(':') {
        Some((host, p)) if !host.is_empty() && p.parse::<u16>().is_ok_and(|p| p != 0) => {}
        _ => {
            return Err(format!(
                "bad --to {to:?}: expected HOST:PORT, e.g. 127.0.0.1:8080"
            ))
        }
    }
    Ok(Args {
        port: port.parse().map_err(|_| format!("bad port: {port}"))?,
        to,
    })
}

fn main() {
    env_logger::init();
    let args = match args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("tcp_proxy: {e}\n{USAGE}");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(args) {
        eprintln!("tcp_proxy: {e}");
        std::process::exit(1);
    }
}

fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let reactor = Reactor::new()?;
    let _signals = reactor.install_signal_handlers()?;
    let to = Target::from(args.to);
    let r = reactor.clone();
    let factory = move |_: &Address| {
        Some(Incoming {
            reactor: r.clone(),
            to: to.clone(),
        })
    };
    let port = reactor.listen_tcp(([127, 0, 0, 1], args.port).into(), factory)?;
    println!("listening on {}", port.local_addr());
    reactor.run()?;
    Ok(())
}
