//! Port forwarding with back-pressure both ways: every connection to `--port` is
//! relayed to `--to HOST:PORT`.
//!
//! ```sh
//! cargo run --release --example tcp_proxy -- --port 9000 --to 127.0.0.1:8080
//! curl -s localhost:9000/     # answered by whatever listens on 8080
//! ```
//!
//! Each side's transport is the other side's consumer: when one side's write queue
//! fills (its peer reads slowly), reading from the other side pauses until it drains,
//! so a slow reader never grows the proxy's memory.
//!
//! It prints `listening on IP:PORT` once it accepts connections; `RUST_LOG=debug` shows
//! what the reactor does (each relayed connection, and why one could not reach the
//! target); Ctrl-C (SIGINT) or SIGTERM stops it cleanly.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use ropewalk::prelude::*;
use ropewalk::reactor::{Address, Protocol, Reactor, Target, TransportProducer, TransportRef};

/// One side of a relayed connection: what it reads goes to `peer`.
#[derive(Default)]
struct Side {
    me: Option<TransportRef>,
    peer: Rc<RefCell<Option<TransportRef>>>,
}

impl Protocol for Side {
    fn connection_made(&mut self, transport: TransportRef) {
        self.me = Some(transport);
    }

    fn data_received(&mut self, data: &[u8]) -> Result<(), Failure> {
        if let Some(peer) = self.peer.borrow().as_ref() {
            peer.write(data);
        }
        Ok(())
    }

    fn eof_received(&mut self) -> bool {
        // Pass the half-close on, and keep our side open for the answer.
        if let Some(peer) = self.peer.borrow().as_ref() {
            peer.half_close();
        }
        true
    }

    fn connection_lost(&mut self, _reason: Failure) {
        if let Some(peer) = self.peer.borrow_mut().take() {
            peer.lose_connection();
        }
    }
}

/// Links two transports: each writes to the other and throttles the other's reading.
fn splice(a: &TransportRef, b: &TransportRef) {
    a.register_producer(Rc::new(TransportProducer(b.clone())), true);
    b.register_producer(Rc::new(TransportProducer(a.clone())), true);
}

/// The accepted side: connects out, reading nothing until the other end is up.
struct Incoming {
    reactor: Reactor,
    to: Target,
    side: Side,
}

impl Protocol for Incoming {
    fn connection_made(&mut self, transport: TransportRef) {
        transport.pause_reading();
        self.side.connection_made(transport.clone());
        let client_peer = self.side.peer.clone();
        let outgoing_peer = Rc::new(RefCell::new(Some(transport.clone())));
        let out_peer = outgoing_peer.clone();
        let factory = move |_: &Address| {
            Some(Side {
                me: None,
                peer: out_peer.clone(),
            })
        };
        let incoming = transport.clone();
        self.reactor
            .connect_tcp(self.to.clone(), factory, Duration::from_secs(10))
            .add_callbacks(
                move |outgoing| {
                    let out = outgoing.borrow().me.clone().expect("connected");
                    *client_peer.borrow_mut() = Some(out.clone());
                    splice(&incoming, &out);
                    incoming.resume_reading();
                    Ok(())
                },
                move |failure: Failure| {
                    log::warn!("cannot reach the target: {failure}");
                    outgoing_peer.borrow_mut().take();
                    transport.lose_connection();
                    Ok(())
                },
            );
    }

    fn data_received(&mut self, data: &[u8]) -> Result<(), Failure> {
        self.side.data_received(data)
    }

    fn eof_received(&mut self) -> bool {
        self.side.eof_received()
    }

    fn connection_lost(&mut self, reason: Failure) {
        self.side.connection_lost(reason);
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
            side: Side::default(),
        })
    };
    let port = reactor.listen_tcp(([127, 0, 0, 1], args.port).into(), factory)?;
    println!("listening on {}", port.local_addr());
    reactor.run()?;
    Ok(())
}
