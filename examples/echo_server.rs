//! TCP and UDP echo (RFC 862) on the same port, or echo over TLS.
//!
//! ```sh
//! cargo run --release --example echo_server -- --port 7000
//! cargo run --release --example echo_client -- --port 7000 hello   # TCP
//! cargo run --release --example echo_server -- --port 7443 --tls-cert cert.pem --tls-key key.pem
//! openssl s_client -connect 127.0.0.1:7443 -CAfile ca.pem -quiet  # TLS
//! ```
//!
//! TCP echo keeps echoing after the client shuts down its sending side, then closes (all
//! of it comes back, as RFC 862 asks); UDP datagrams come back whole. With `--tls-cert`
//! and `--tls-key` (PEM) the same echo runs over TLS, and there is no UDP (it would be in
//! clear); the client's `close_notify` is its half-close.
//!
//! It prints `listening on IP:PORT` once it accepts connections; `RUST_LOG=debug` shows
//! what the reactor does; Ctrl-C (SIGINT) or SIGTERM stops it cleanly.

use ropewalk::protocols::{Echo, UdpEcho};
use ropewalk::reactor::tls::TlsServerBuilder;
use ropewalk::reactor::Reactor;

const USAGE: &str = "usage: echo_server [--port P] [--tls-cert FILE --tls-key FILE]\n  \
                     P = 0 picks a free port (default 7000); with a certificate chain and \
                     private key (PEM), echo over TLS";

/// The command line: the port, and the certificate and key files for TLS.
struct Args {
    port: u16,
    tls: Option<(String, String)>,
}

fn parse_args() -> Result<Args, String> {
    let mut port = 7000;
    let (mut cert, mut key) = (None, None);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--port" => {
                let v = args.next().ok_or("--port needs a value")?;
                port = v.parse().map_err(|_| format!("bad port: {v}"))?;
            }
            "--tls-cert" => cert = Some(args.next().ok_or("--tls-cert needs a PEM file")?),
            "--tls-key" => key = Some(args.next().ok_or("--tls-key needs a PEM file")?),
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown option: {other}")),
        }
    }
    let tls = match (cert, key) {
        (Some(c), Some(k)) => Some((c, k)),
        (None, None) => None,
        _ => return Err("--tls-cert and --tls-key go together".into()),
    };
    Ok(Args { port, tls })
}

fn main() {
    env_logger::init();
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("echo_server: {e}\n{USAGE}");
            std::process::exit(2);
        }
    };
    if let Err(e) = serve(args) {
        eprintln!("echo_server: {e}");
        std::process::exit(1);
    }
}

fn serve(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let reactor = Reactor::new()?;
    let _signals = reactor.install_signal_handlers()?;
    let addr = ([127, 0, 0, 1], args.port).into();
    if let Some((cert, key)) = &args.tls {
        let config = TlsServerBuilder::from_pem_files(cert, key)?.build()?;
        let port = reactor.listen_tls(addr, Echo::factory(), config)?;
        println!("listening on {}", port.local_addr());
        reactor.run()?;
        return Ok(());
    }
    let tcp = reactor.listen_tcp(addr, Echo::factory())?;
    // UDP on the port TCP got (the same number when --port 0 picked one).
    let addr = tcp.local_addr().inet().expect("a TCP address");
    let _udp = reactor.listen_udp(addr, UdpEcho::default())?;
    println!("listening on {addr}");
    reactor.run()?;
    Ok(())
}
