//! The two servers of the HTTPS benchmark: ropewalk and hyper over tokio-rustls, each on
//! ONE thread, both serving the same rustls `ServerConfig`.
//!
//! ```sh
//! https_server --impl ropewalk --cert cert.pem --key key.pem --port 0
//! https_server --impl hyper --cert cert.pem --key key.pem --port 0
//! ```
//!
//! Both answer `GET /` with `200 OK` and the 13-byte body `Hello, World!`, as the servers
//! of the HTTP benchmark (`http/server.rs`) do, over TLS. The rustls configuration of both
//! is built by ropewalk's `TlsServerBuilder` from `--cert` and `--key` (the ring provider,
//! TLS 1.2 and 1.3, its default ALPN-less settings, rustls' default session cache and
//! ticketer), so the two differ only in what runs around rustls:
//!
//! - `ropewalk`: one [`Reactor`] and an [`HttpServer`] with one route, listening with
//!   `HttpServer::listen_tls`. SIGINT/SIGTERM stop the reactor.
//! - `hyper`: hyper 1.x's canonical server on a tokio **`current_thread`** runtime: an
//!   accept loop, one spawned task per connection that runs `TlsAcceptor::accept` and then
//!   `http1::Builder::new().serve_connection`; `TCP_NODELAY` on each connection and a
//!   `server: hyper-rs` field, as in the HTTP benchmark, so both answers are the same
//!   bytes. It dies on SIGTERM.
//!
//! Both print exactly one line `listening on IP:PORT` once they accept connections.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use ropewalk_bench::hello::{hyper_hello, HELLO};
use ropewalk_bench::procs;
use ropewalk_protocols::http::{HttpServer, Request, Response, Site};
use ropewalk_reactor::tls::{rustls::ServerConfig, TlsServerBuilder};
use ropewalk_reactor::Reactor;

const USAGE: &str = "\
usage: https_server [--impl ropewalk|hyper] --cert PEM --key PEM [--port P] [--host IP]

  --impl NAME   ropewalk (default) or hyper (tokio-rustls, tokio current_thread runtime)
  --cert PEM    the certificate chain, PEM
  --key PEM     its private key, PEM
  --port P      port to listen on; 0 (default) picks a free one
  --host IP     address to bind (default 127.0.0.1)
Answers GET / with `Hello, World!` (text/plain) over TLS. Prints `listening on IP:PORT`
once ready, then serves until killed.";

thread_local! {
    /// `--cert` and `--key`, set by `main` before the server runs (on this thread).
    static FILES: RefCell<(Option<PathBuf>, Option<PathBuf>)> = const { RefCell::new((None, None)) };
}

/// The one configuration both servers use.
fn config() -> Result<Arc<ServerConfig>, Box<dyn std::error::Error>> {
    let (cert, key) = FILES.with(|f| f.borrow().clone());
    let (Some(cert), Some(key)) = (cert, key) else {
        return Err("--cert and --key are required".into());
    };
    Ok(TlsServerBuilder::from_pem_files(cert, key)?.build()?)
}

fn run_ropewalk(addr: SocketAddr) -> Result<(), Box<dyn std::error::Error>> {
    let config = config()?;
    let reactor = Reactor::new()?;
    let _signals = reactor.install_signal_handlers()?;
    let site = Site::new().get("/", |_: Request| Ok(Response::static_text(HELLO)));
    let server = HttpServer::new(&reactor, site);
    let port = server.listen_tls(&reactor, addr, config)?;
    println!("listening on {}", port.local_addr());
    reactor.run()?;
    Ok(())
}

fn run_hyper(addr: SocketAddr) -> Result<(), Box<dyn std::error::Error>> {
    use hyper::server::conn::http1;
    use hyper::service::service_fn;
    use hyper_util::rt::TokioIo;
    use tokio::net::TcpListener;
    use tokio_rustls::TlsAcceptor;

    let acceptor = TlsAcceptor::from(config()?);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()?;
    rt.block_on(async move {
        let listener = TcpListener::bind(addr).await?;
        println!("listening on {}", listener.local_addr()?);
        loop {
            let (stream, _) = listener.accept().await?;
            stream.set_nodelay(true)?;
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(stream).await else {
                    return;
                };
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), service_fn(hyper_hello))
                    .await;
            });
        }
    })
}

fn main() -> ExitCode {
    procs::serve_main_with(
        "https_server",
        USAGE,
        &[("ropewalk", run_ropewalk), ("hyper", run_hyper)],
        &mut |flag, value| {
            FILES.with(|f| {
                let mut f = f.borrow_mut();
                match flag {
                    "--cert" => f.0 = Some(value.into()),
                    "--key" => f.1 = Some(value.into()),
                    _ => return Ok(false),
                }
                Ok(true)
            })
        },
    )
}
