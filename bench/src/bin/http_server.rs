//! The two Rust servers of the HTTP benchmark: ropewalk and hyper, each on ONE thread.
//!
//! ```sh
//! http_server --impl ropewalk --port 0   # prints "listening on 127.0.0.1:PORT"
//! http_server --impl hyper --port 0
//! ```
//!
//! Both answer `GET /` with `200 OK`, `Content-Type: text/plain; charset=utf-8` and the
//! 13-byte body `Hello, World!`, and anything else with 404.
//!
//! - `ropewalk`: one [`Reactor`] on the main thread and an [`HttpServer`] serving a
//!   [`Site`] with one route, `get("/", |_| Ok(Response::static_text("Hello, World!")))` (the
//!   body is not copied, as hyper's `Bytes::from_static` below), with the
//!   default [`ServerConfig`](ropewalk_protocols::http::ServerConfig) (so it also sends
//!   `Date` and `Server: ropewalk`). SIGINT/SIGTERM stop the reactor.
//! - `hyper`: hyper 1.x's canonical server (hyper's `examples/hello.rs`: an accept loop,
//!   one spawned task per connection running `http1::Builder::new().serve_connection` with
//!   a `service_fn`, `Full<Bytes>` bodies), default builder settings (so it also sends
//!   `Date`; `pipeline_flush` is off, as by default), on a tokio **`current_thread`**
//!   runtime, with two changes that make the comparison even: `TCP_NODELAY` on each
//!   connection (ropewalk's server sets it) and a `server: hyper-rs` field (ropewalk sends
//!   `Server: ropewalk`), so both answers are the same 148 bytes. One thread, so that
//!   both servers use one core on a 2-core machine whose other core runs wrk. It dies on
//!   SIGTERM.
//!
//! Both bind 127.0.0.1 (or `--host`), print exactly one line `listening on IP:PORT` once
//! they accept connections, and serve until killed.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::process::ExitCode;

use ropewalk_bench::procs;

use ropewalk_protocols::http::{HttpServer, Request, Response, Site};
use ropewalk_reactor::Reactor;

const USAGE: &str = "\
usage: http_server [--impl ropewalk|hyper] [--port P] [--host IP]

  --impl NAME   ropewalk (default) or hyper (tokio current_thread runtime)
  --port P      port to listen on; 0 (default) picks a free one
  --host IP     address to bind (default 127.0.0.1)
Answers GET / with `Hello, World!` (text/plain). Prints `listening on IP:PORT` once
ready, then serves until killed.";

/// The body every server sends.
const HELLO: &str = "Hello, World!";

fn run_ropewalk(addr: SocketAddr) -> Result<(), Box<dyn std::error::Error>> {
    let reactor = Reactor::new()?;
    let _signals = reactor.install_signal_handlers()?;
    let site = Site::new().get("/", |_: Request| Ok(Response::static_text(HELLO)));
    let server = HttpServer::new(&reactor, site);
    let port = server.listen(&reactor, addr)?;
    println!("listening on {}", port.local_addr());
    reactor.run()?;
    Ok(())
}

fn run_hyper(addr: SocketAddr) -> Result<(), Box<dyn std::error::Error>> {
    use bytes::Bytes;
    use http_body_util::Full;
    use hyper::server::conn::http1;
    use hyper::service::service_fn;
    use hyper::{Method, StatusCode};
    use hyper_util::rt::TokioIo;
    use tokio::net::TcpListener;

    async fn hello(
        req: hyper::Request<hyper::body::Incoming>,
    ) -> Result<hyper::Response<Full<Bytes>>, Infallible> {
        let found = req.method() == Method::GET && req.uri().path() == "/";
        let mut resp = if found {
            hyper::Response::new(Full::new(Bytes::from_static(HELLO.as_bytes())))
        } else {
            let mut r = hyper::Response::new(Full::new(Bytes::from_static(b"Not Found")));
            *r.status_mut() = StatusCode::NOT_FOUND;
            r
        };
        resp.headers_mut().insert(
            hyper::header::CONTENT_TYPE,
            hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        // ropewalk sends `Server: ropewalk`; the same number of bytes here, so that both
        // responses are 148 bytes on the wire.
        resp.headers_mut().insert(
            hyper::header::SERVER,
            hyper::header::HeaderValue::from_static("hyper-rs"),
        );
        Ok(resp)
    }

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()?;
    rt.block_on(async move {
        let listener = TcpListener::bind(addr).await?;
        println!("listening on {}", listener.local_addr()?);
        loop {
            let (stream, _) = listener.accept().await?;
            // ropewalk's HTTP server sets TCP_NODELAY on every connection; so does this.
            stream.set_nodelay(true)?;
            let io = TokioIo::new(stream);
            tokio::spawn(async move {
                let _ = http1::Builder::new()
                    .serve_connection(io, service_fn(hello))
                    .await;
            });
        }
    })
}

fn main() -> ExitCode {
    procs::serve_main(
        "http_server",
        USAGE,
        &[("ropewalk", run_ropewalk), ("hyper", run_hyper)],
    )
}
