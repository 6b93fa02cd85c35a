//! TCP and UDP echo (RFC 862) on the same port.
//!
//! ```sh
//! cargo run --release --example echo_server -- --port 7000
//! cargo run --release --example echo_client -- --port 7000 hello   # TCP
//! ```
//!
//! TCP echo keeps echoing after the client shuts down its sending side, then closes (all
//! of it comes back, as RFC 862 asks); UDP datagrams come back whole.
//!
//! It prints `listening on IP:PORT` once it accepts connections; `RUST_LOG=debug` shows
//! what the reactor does; Ctrl-C (SIGINT) or SIGTERM stops it cleanly.

use ropewalk::protocols::{Echo, UdpEcho};
use ropewalk::reactor::Reactor;

const USAGE: &str = "usage: echo_server [--port P]   (default 7000; P = 0 picks a free port)";

fn port_arg() -> Result<u16, String> {
    let mut port = 7000;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--port" => {
                let v = args.next().ok_or("--port needs a value")?;
                port = v.parse().map_err(|_| format!("bad port: {v}"))?;
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown option: {other}")),
        }
    }
    Ok(port)
}

fn main() {
    env_logger::init();
    let port = match port_arg() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("echo_server: {e}\n{USAGE}");
            std::process::exit(2);
        }
    };
    if let Err(e) = serve(port) {
        eprintln!("echo_server: {e}");
        std::process::exit(1);
    }
}

fn serve(port: u16) -> Result<(), Box<dyn std::error::Error>> {
    let reactor = Reactor::new()?;
    let _signals = reactor.install_signal_handlers()?;
    let tcp = reactor.listen_tcp(([127, 0, 0, 1], port).into(), Echo::factory())?;
    // UDP on the port TCP got (the same number when --port 0 picked one).
    let addr = tcp.local_addr().inet().expect("a TCP address");
    let _udp = reactor.listen_udp(addr, UdpEcho::default())?;
    println!("listening on {addr}");
    reactor.run()?;
    Ok(())
}
