//! The two Rust servers of the echo benchmark: ropewalk and tokio, each on ONE thread.
//!
//! ```sh
//! echo_server --impl ropewalk --port 0   # prints "listening on 127.0.0.1:PORT"
//! echo_server --impl tokio --port 0
//! ```
//!
//! - `ropewalk`: one [`Reactor`] with an echo [`Protocol`] that writes back each chunk in
//!   `data_received` (the reactor reads into its one shared buffer and writes straight to
//!   the socket). SIGINT/SIGTERM stop the reactor.
//! - `tokio`: the canonical tokio echo server (tokio's `examples/echo.rs`: an accept loop,
//!   one spawned task per connection with a 1 KiB `Vec` buffer, `read` then `write_all`)
//!   on a `current_thread` runtime, so that both servers use one core on a 2-core machine
//!   whose other core runs the load generator. It dies on SIGTERM.
//!
//! Both bind 127.0.0.1 (or `--host`), print exactly one line `listening on IP:PORT` once
//! they accept connections, and serve until killed.

use std::net::SocketAddr;
use std::process::ExitCode;

use ropewalk_bench::procs;

use ropewalk_reactor::deferred::Failure;
use ropewalk_reactor::{Address, Protocol, Reactor, TransportRef};

const USAGE: &str = "\
usage: echo_server [--impl ropewalk|tokio] [--port P] [--host IP]

  --impl NAME   ropewalk (default) or tokio (current_thread runtime)
  --port P      port to listen on; 0 (default) picks a free one
  --host IP     address to bind (default 127.0.0.1)
Prints `listening on IP:PORT` once ready, then serves until killed.";

/// Writes back whatever it receives.
struct Echo(Option<TransportRef>);

impl Protocol for Echo {
    fn connection_made(&mut self, transport: TransportRef) {
        self.0 = Some(transport);
    }

    fn data_received(&mut self, data: &[u8]) -> Result<(), Failure> {
        if let Some(t) = &self.0 {
            t.write(data);
        }
        Ok(())
    }
}

fn run_ropewalk(addr: SocketAddr) -> Result<(), Box<dyn std::error::Error>> {
    let reactor = Reactor::new()?;
    let _signals = reactor.install_signal_handlers()?;
    let port = reactor.listen_tcp(addr, |_: &Address| Some(Echo(None)))?;
    println!("listening on {}", port.local_addr());
    reactor.run()?;
    Ok(())
}

fn run_tokio(addr: SocketAddr) -> Result<(), Box<dyn std::error::Error>> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    rt.block_on(async move {
        let listener = TcpListener::bind(addr).await?;
        println!("listening on {}", listener.local_addr()?);
        loop {
            let (mut socket, _) = listener.accept().await?;
            tokio::spawn(async move {
                let mut buf = vec![0; 1024];
                loop {
                    let n = match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    if socket.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            });
        }
    })
}

fn main() -> ExitCode {
    procs::serve_main(
        "echo_server",
        USAGE,
        &[("ropewalk", run_ropewalk), ("tokio", run_tokio)],
    )
}
