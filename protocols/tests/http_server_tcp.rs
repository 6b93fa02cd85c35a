//! The HTTP server over real loopback TCP, on the reactor: a std `TcpStream` client runs
//! on the worker pool (`defer_to_thread`) while `wait()` runs the reactor. Every socket
//! read has a timeout, so a broken server fails the test instead of hanging it.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::{get, parse_responses};
use ropewalk_protocols::http::{HttpServer, Request, Response, ServerConfig, Site};
use ropewalk_reactor::deferred::Failure;
use ropewalk_reactor::{ListeningPort, Reactor};

const IO_TIMEOUT: Duration = Duration::from_secs(10);

fn site() -> Site {
    Site::new()
        .get("/", |_: Request| Ok(Response::text("Hello, World!")))
        .get("/n", |req: Request| {
            Ok(Response::text(req.query_param("i").unwrap_or_default()))
        })
        .post("/echo", |req: Request| Ok(Response::bytes(req.into_body())))
}

fn start(reactor: &Reactor, config: ServerConfig) -> (ListeningPort, SocketAddr) {
    let server = HttpServer::with_config(reactor, site(), config);
    let port = server
        .listen(reactor, "127.0.0.1:0".parse().unwrap())
        .unwrap();
    let addr = port.local_addr().inet().unwrap();
    (port, addr)
}

fn connect(addr: SocketAddr) -> Result<TcpStream, Failure> {
    let s = TcpStream::connect(addr).map_err(Failure::new)?;
    s.set_read_timeout(Some(IO_TIMEOUT)).map_err(Failure::new)?;
    s.set_write_timeout(Some(IO_TIMEOUT))
        .map_err(Failure::new)?;
    Ok(s)
}

/// Reads until the server closes the connection (or the read timeout fails the test).
fn read_to_close(s: &mut TcpStream) -> Result<Vec<u8>, Failure> {
    let mut out = Vec::new();
    s.read_to_end(&mut out).map_err(Failure::new)?;
    Ok(out)
}

/// Twisted: PipeliningBodyTests, over a socket. Many requests in one write, the last
/// asking to close: all answered, in order, then the server closes.
#[test]
fn pipelined_requests_in_one_write() {
    let reactor = Reactor::new().unwrap();
    let (_port, addr) = start(&reactor, ServerConfig::default());
    let d = reactor.defer_to_thread(move || {
        let mut s = connect(addr)?;
        let mut batch: String = (0..50).map(|i| get(&format!("/n?i={i}"))).collect();
        batch.push_str("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        s.write_all(batch.as_bytes()).map_err(Failure::new)?;
        read_to_close(&mut s)
    });
    let out = d.wait().unwrap();
    let rs = parse_responses(&out);
    assert_eq!(rs.len(), 51);
    for (i, r) in rs[..50].iter().enumerate() {
        assert_eq!(r.status, 200);
        assert_eq!(r.text(), i.to_string());
    }
    assert_eq!(rs[50].text(), "Hello, World!");
    assert_eq!(rs[50].header("connection"), Some("close"));
}

/// A 1 MB POST is read whole and echoed back whole.
#[test]
fn one_megabyte_post_echoed() {
    let reactor = Reactor::new().unwrap();
    let (_port, addr) = start(&reactor, ServerConfig::default());
    let body: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
    let sent = body.clone();
    let d = reactor.defer_to_thread(move || {
        let mut s = connect(addr)?;
        let head = format!(
            "POST /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
            sent.len()
        );
        s.write_all(head.as_bytes()).map_err(Failure::new)?;
        // Write and read at once, so neither side's buffers must hold it all.
        let mut reader = s.try_clone().map_err(Failure::new)?;
        let reading = std::thread::spawn(move || read_to_close(&mut reader));
        for piece in sent.chunks(64 * 1024) {
            s.write_all(piece).map_err(Failure::new)?;
        }
        reading
            .join()
            .map_err(|_| Failure::msg("reader thread panicked"))?
    });
    let out = d.wait().unwrap();
    let rs = parse_responses(&out);
    assert_eq!(rs.len(), 1);
    assert_eq!(rs[0].status, 200);
    assert_eq!(rs[0].header("content-length"), Some("1000000"));
    assert!(rs[0].body == body, "echoed body differs");
}

/// A slowloris client (a head that never ends, a byte now and then) gets 408 and is
/// closed at `request_timeout`.
#[test]
fn slowloris_is_timed_out() {
    let reactor = Reactor::new().unwrap();
    let (_port, addr) = start(
        &reactor,
        ServerConfig {
            request_timeout: Duration::from_millis(300),
            ..ServerConfig::default()
        },
    );
    let d = reactor.defer_to_thread(move || {
        let mut s = connect(addr)?;
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
            .map_err(Failure::new)?;
        // Keep trickling (the sleep paces the client; nothing waits on it) until the
        // server gives up; a write may fail once it has closed.
        let mut reader = s.try_clone().map_err(Failure::new)?;
        let reading = std::thread::spawn(move || read_to_close(&mut reader));
        for _ in 0..20 {
            if s.write_all(b"X").is_err() || reading.is_finished() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        reading
            .join()
            .map_err(|_| Failure::msg("reader thread panicked"))?
    });
    let out = d.wait().unwrap();
    let rs = parse_responses(&out);
    assert_eq!(rs.len(), 1, "{:?}", String::from_utf8_lossy(&out));
    assert_eq!(rs[0].status, 408);
    assert_eq!(rs[0].header("connection"), Some("close"));
}

/// A malformed request over a socket: 400, then the server closes.
#[test]
fn bad_request_closes_the_socket() {
    let reactor = Reactor::new().unwrap();
    let (_port, addr) = start(&reactor, ServerConfig::default());
    let d = reactor.defer_to_thread(move || {
        let mut s = connect(addr)?;
        s.write_all(
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        )
        .map_err(Failure::new)?;
        read_to_close(&mut s)
    });
    let out = d.wait().unwrap();
    let rs = parse_responses(&out);
    assert_eq!(rs.len(), 1);
    assert_eq!(rs[0].status, 400);
}

/// Regression (found by the soak test): a client that pipelines requests and never reads
/// the responses made the server queue every response in memory (2 GB in 15 s), since
/// nothing stopped reading when the write queue passed its high-water mark. Now the
/// connection is the transport's producer: past the mark, it stops reading requests, so
/// the client's writes block long before it has sent 64 MiB (the kernel's socket buffers
/// take a few MiB).
#[test]
fn non_reading_client_is_not_read_without_bound() {
    const LIMIT: usize = 64 << 20;
    let reactor = Reactor::new().unwrap();
    let (_port, addr) = start(&reactor, ServerConfig::default());
    let d = reactor.defer_to_thread(move || {
        let s = connect(addr)?;
        // A write the server does not take within a second: it stopped reading.
        s.set_write_timeout(Some(Duration::from_secs(1)))
            .map_err(Failure::new)?;
        let batch = get("/").repeat(64 * 1024 / get("/").len());
        let mut sent = 0;
        while sent < LIMIT {
            match (&s).write(batch.as_bytes()) {
                Ok(n) => sent += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => break,
                Err(e) => return Err(Failure::new(e)),
            }
        }
        Ok(sent)
    });
    let sent = d.wait().unwrap();
    assert!(
        sent < LIMIT,
        "the server read all {sent} bytes of requests while nobody read its responses"
    );
}
