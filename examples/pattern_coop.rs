//! Pattern 4 — cooperative multitasking: `async` tasks on the reactor. A UDP server
//! written as a loop of `recv_from(..).await` / `send_to(..).await`, as in the source
//! article, and client tasks talking to it, all on one thread.
//!
//! ```sh
//! cargo run --example pattern_coop
//! ```
//!
//! It takes no arguments. `RUST_LOG=debug` shows what the reactor does.

use std::time::Duration;

use ropewalk::prelude::*;
use ropewalk::reactor::net::UdpSocket;
use ropewalk::reactor::Reactor;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    env_logger::init();
    if let Some(arg) = std::env::args().nth(1) {
        let usage = "usage: pattern_coop   (no arguments; RUST_LOG=debug shows the reactor's work)";
        if arg == "-h" || arg == "--help" {
            println!("{usage}");
            return Ok(());
        }
        eprintln!("pattern_coop: unexpected argument {arg:?}\n{usage}");
        std::process::exit(2);
    }
    let reactor = Reactor::new()?;

    // The server task: answers every datagram, forever (until the reactor goes).
    let sock = UdpSocket::bind(&reactor, "127.0.0.1:0".parse()?)?;
    let server_addr = sock.local_addr()?;
    reactor.spawn(async move {
        let mut buf = [0u8; 1500];
        loop {
            let (n, addr) = sock.recv_from(&mut buf).await?;
            println!(
                "server: {:?} from a client",
                String::from_utf8_lossy(&buf[..n])
            );
            let mut answer = b"response to ".to_vec();
            answer.extend_from_slice(&buf[..n]);
            sock.send_to(&answer, addr).await?;
        }
        #[allow(unreachable_code)]
        Ok::<(), Failure>(())
    });

    // Three client tasks, interleaved by the reactor; each is a Deferred.
    let clients: Vec<Deferred<String>> = ["alpha", "beta", "gamma"]
        .into_iter()
        .map(|name| {
            let r = reactor.clone();
            reactor.spawn(async move {
                let sock = UdpSocket::bind(&r, "127.0.0.1:0".parse().expect("addr"))?;
                // Yield to the others between steps: cooperative, on one thread.
                r.sleep(Duration::from_millis(5)).await?;
                sock.send_to(name.as_bytes(), server_addr).await?;
                let mut buf = [0u8; 1500];
                let (n, _) = sock.recv_from(&mut buf).await?;
                Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
            })
        })
        .collect();

    // A spawned future is a Deferred: gather them and wait, with a timeout.
    let answers = ropewalk::deferred::gather_results(clients)
        .add_timeout(Duration::from_secs(5), &reactor)
        .wait()?;
    for a in answers {
        println!("client got: {a}");
    }
    Ok(())
}
