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
//!   body is not copied, as hyper's `Bytes::from_static` in `ropewalk_bench::hello`), with the
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
//! - `floor`: not a server to compare with but the measure of the machine: an epoll loop
//!   (edge-triggered, as ropewalk's connections) that reads each connection with `recv`
//!   and answers every request head it sees (`\r\n\r\n`) with the same 148 canned bytes in
//!   one `send`, parsing nothing and keeping no state but the last three bytes read. What it
//!   costs per request is what the kernel costs: the least any server could cost here.
//!
//! All bind 127.0.0.1 (or `--host`), print exactly one line `listening on IP:PORT` once
//! they accept connections, and serve until killed.

use std::net::SocketAddr;
use std::process::ExitCode;

use ropewalk_bench::hello::{hyper_hello, HELLO};
use ropewalk_bench::procs;

use ropewalk_protocols::http::{HttpServer, Request, Response, Site};
use ropewalk_reactor::Reactor;

const USAGE: &str = "\
usage: http_server [--impl ropewalk|hyper|floor] [--port P] [--host IP]

  --impl NAME   ropewalk (default), hyper (tokio current_thread runtime), or floor (the
                kernel's share alone: recv, then canned bytes sent, nothing parsed)
  --port P      port to listen on; 0 (default) picks a free one
  --host IP     address to bind (default 127.0.0.1)
Answers GET / with `Hello, World!` (text/plain). Prints `listening on IP:PORT` once
ready, then serves until killed.";

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
    use hyper::server::conn::http1;
    use hyper::service::service_fn;
    use hyper_util::rt::TokioIo;
    use tokio::net::TcpListener;

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
                    .serve_connection(io, service_fn(hyper_hello))
                    .await;
            });
        }
    })
}

/// The `floor` server: see the module docs.
fn run_floor(addr: SocketAddr) -> Result<(), Box<dyn std::error::Error>> {
    use std::io;
    use std::net::TcpListener;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

    fn check(r: libc::c_int) -> io::Result<libc::c_int> {
        if r < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(r)
        }
    }
    fn watch(ep: RawFd, fd: RawFd, events: u32) -> io::Result<()> {
        let mut ev = libc::epoll_event {
            events,
            u64: fd as u64,
        };
        // SAFETY: `ep` and `fd` are open descriptors; `ev` outlives the call.
        check(unsafe { libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, fd, &mut ev) }).map(drop)
    }

    // As many bytes as the other two servers' answers (148); canned, so the date is fixed.
    let response = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Date: Sat, 28 Nov 2026 00:00:00 GMT\r\nServer: floor-rs\r\nContent-Length: {}\r\n\
         \r\n{HELLO}",
        HELLO.len()
    );
    let listener = TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    // SAFETY: epoll_create1 has no preconditions; the result is checked, then owned.
    let ep = unsafe { OwnedFd::from_raw_fd(check(libc::epoll_create1(libc::EPOLL_CLOEXEC))?) };
    let ep = ep.as_raw_fd();
    let lfd = listener.as_raw_fd();
    watch(ep, lfd, libc::EPOLLIN as u32)?;
    println!("listening on {}", listener.local_addr()?);
    // Per descriptor: the connection and the last three bytes it sent (a head's end may
    // straddle two reads).
    let mut conns: Vec<Option<(OwnedFd, [u8; 3])>> = Vec::new();
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 1024];
    let mut buf = vec![0u8; 64 * 1024];
    let mut out = Vec::new();
    loop {
        // SAFETY: `events` is valid for `events.len()` entries.
        let n = unsafe { libc::epoll_wait(ep, events.as_mut_ptr(), events.len() as i32, -1) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e.into());
        }
        for ev in &events[..n as usize] {
            let fd = ev.u64 as RawFd;
            if fd == lfd {
                loop {
                    // SAFETY: null address arguments are allowed; the result is checked.
                    let c = unsafe {
                        libc::accept4(
                            lfd,
                            std::ptr::null_mut(),
                            std::ptr::null_mut(),
                            libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                        )
                    };
                    if c < 0 {
                        break;
                    }
                    let one: libc::c_int = 1;
                    // SAFETY: `c` is open; `one` outlives the call.
                    unsafe {
                        libc::setsockopt(
                            c,
                            libc::IPPROTO_TCP,
                            libc::TCP_NODELAY,
                            (&one as *const libc::c_int).cast(),
                            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                        );
                    }
                    let flags = libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLRDHUP | libc::EPOLLET;
                    if watch(ep, c, flags as u32).is_err() {
                        // SAFETY: `c` is open and owned by nothing else.
                        drop(unsafe { OwnedFd::from_raw_fd(c) });
                        continue;
                    }
                    let i = c as usize;
                    if conns.len() <= i {
                        conns.resize_with(i + 1, || None);
                    }
                    // SAFETY: `c` is open and owned by nothing else.
                    conns[i] = Some((unsafe { OwnedFd::from_raw_fd(c) }, [0; 3]));
                }
                continue;
            }
            let Some(Some((sock, tail))) = conns.get_mut(fd as usize) else {
                continue;
            };
            // Read to the end of what is there (edge-triggered); a short read means all.
            let mut close = false;
            let mut heads = 0;
            loop {
                // SAFETY: `buf` is valid for `buf.len()` bytes; `sock` is open.
                let r =
                    unsafe { libc::recv(sock.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
                if r <= 0 {
                    close =
                        r == 0 || io::Error::last_os_error().kind() != io::ErrorKind::WouldBlock;
                    break;
                }
                let r = r as usize;
                for &b in &buf[..r] {
                    if b == b'\n' && *tail == *b"\r\n\r" {
                        heads += 1;
                    }
                    *tail = [tail[1], tail[2], b];
                }
                if r < buf.len() {
                    break;
                }
            }
            if heads > 0 {
                out.clear();
                for _ in 0..heads {
                    out.extend_from_slice(response.as_bytes());
                }
                // SAFETY: `out` is valid for its length; `sock` is open. A short or failed
                // send is ignored: wrk's responses fit the socket buffer.
                unsafe {
                    libc::send(
                        sock.as_raw_fd(),
                        out.as_ptr().cast(),
                        out.len(),
                        libc::MSG_NOSIGNAL,
                    )
                };
            }
            if close {
                conns[fd as usize] = None;
            }
        }
    }
}

fn main() -> ExitCode {
    procs::serve_main(
        "http_server",
        USAGE,
        &[
            ("ropewalk", run_ropewalk),
            ("hyper", run_hyper),
            ("floor", run_floor),
        ],
    )
}
