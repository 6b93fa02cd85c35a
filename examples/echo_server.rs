//! TCP and UDP echo (RFC 862) on the same port, or echo over TLS.
//!
//! ```sh
//! cargo run --release --example echo_server -- --port 7000
//! cargo run --release --example echo_client -- --port 7000 hello   # TCP
//! cargo run --release --example echo_server -- --reactors 2 --accept shared
//! cargo run --release --example echo_server -- --reactors 2 --accept dispatcher:least-loaded
//! cargo run --release --example echo_server -- --port 7443 --tls-cert cert.pem --tls-key key.pem
//! openssl s_client -connect 127.0.0.1:7443 -CAfile ca.pem -quiet  # TLS
//! ```
//!
//! TCP echo keeps echoing after the client shuts down its sending side, then closes (all
//! of it comes back, as RFC 862 asks); UDP datagrams come back whole. With `--reactors N`
//! (and `--accept per-reactor|shared|dispatcher[:round-robin|:least-loaded]`) N reactors,
//! one thread each, serve TCP on one port (each with its own accept queue, all from one,
//! or each from its own queue fed by one accepting reactor) and the first also serves
//! UDP. With
//! `--tls-cert` and `--tls-key` (PEM) the echo runs over TLS on one reactor, and there is
//! no UDP (it would be in clear); the client's `close_notify` is its half-close.
//!
//! It prints `listening on IP:PORT` once it accepts connections; `RUST_LOG=debug` shows
//! what the reactor does; Ctrl-C (SIGINT) or SIGTERM stops it cleanly (exit status 0).

use ropewalk::protocols::{Echo, UdpEcho};
use ropewalk::reactor::tls::TlsServerBuilder;
use ropewalk::reactor::{AcceptQueue, GroupListener, Reactor, ReactorGroup};

const USAGE: &str = "usage: echo_server [--port P] [--reactors N] \
                     [--accept per-reactor|shared|dispatcher[:round-robin|:least-loaded]] \
                     [--tls-cert FILE --tls-key FILE]\n  \
                     P = 0 picks a free port (default 7000); with a certificate chain and \
                     private key (PEM), echo over TLS";

/// The command line.
struct Args {
    port: u16,
    /// `--reactors N` / `--accept MODE`: a group of N reactors (0: one per CPU).
    group: Option<(usize, AcceptQueue)>,
    /// `--tls-cert` / `--tls-key`: the certificate chain and private key files.
    tls: Option<(String, String)>,
}

fn parse_args() -> Result<Args, String> {
    let mut parsed = Args {
        port: 7000,
        group: None,
        tls: None,
    };
    let (mut cert, mut key) = (None, None);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--port" => {
                let v = args.next().ok_or("--port needs a value")?;
                parsed.port = v.parse().map_err(|_| format!("bad port: {v}"))?;
            }
            "--reactors" => {
                let v = args.next().ok_or("--reactors needs a number")?;
                let n = match v.parse::<usize>() {
                    Ok(n) if (1..=1024).contains(&n) => n,
                    _ => return Err(format!("--reactors: {v:?} is not a number from 1 to 1024")),
                };
                parsed.group = Some((n, parsed.group.map_or(AcceptQueue::PerReactor, |g| g.1)));
            }
            "--accept" => {
                let v = args
                    .next()
                    .ok_or("--accept needs per-reactor, shared or dispatcher")?;
                let accept = v
                    .parse::<AcceptQueue>()
                    .map_err(|e| format!("--accept: {e}"))?;
                parsed.group = Some((parsed.group.map_or(0, |g| g.0), accept));
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
    parsed.tls = match (cert, key) {
        (Some(c), Some(k)) => Some((c, k)),
        (None, None) => None,
        _ => return Err("--tls-cert and --tls-key go together".into()),
    };
    if parsed.tls.is_some() && parsed.group.is_some() {
        return Err("--tls-cert serves on one reactor: leave out --reactors and --accept".into());
    }
    Ok(parsed)
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
    let result = match (args.group, &args.tls) {
        (Some((threads, accept)), _) => serve_group(args.port, threads, accept),
        (None, Some((cert, key))) => serve_tls(args.port, cert, key),
        (None, None) => serve(args.port),
    };
    if let Err(e) = result {
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

fn serve_tls(port: u16, cert: &str, key: &str) -> Result<(), Box<dyn std::error::Error>> {
    let reactor = Reactor::new()?;
    let _signals = reactor.install_signal_handlers()?;
    let config = TlsServerBuilder::from_pem_files(cert, key)?.build()?;
    let port = reactor.listen_tls(([127, 0, 0, 1], port).into(), Echo::factory(), config)?;
    println!("listening on {}", port.local_addr());
    reactor.run()?;
    Ok(())
}

fn serve_group(
    port: u16,
    threads: usize,
    accept: AcceptQueue,
) -> Result<(), Box<dyn std::error::Error>> {
    let listener = GroupListener::bind(([127, 0, 0, 1], port).into(), accept)?;
    let addr = listener.local_addr();
    let group = ReactorGroup::builder()
        .threads(threads)
        .name("echo")
        .start(move |reactor, index| {
            listener.listen(reactor, Echo::factory())?;
            if index == 0 {
                // UDP on the first reactor; open until the reactor shuts down.
                reactor.listen_udp(addr, UdpEcho::default())?;
            }
            Ok(())
        })?;
    let _signals = group.install_signal_handlers()?;
    println!("listening on {addr}");
    log::info!("{} reactors, {accept} accept queue", group.threads());
    group.join()?;
    Ok(())
}
