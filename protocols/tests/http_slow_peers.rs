//! Slow peers over loopback, with the server's timeouts on a `ManualClock` (the reactor
//! runs the sockets, the test moves time): a client that never reads a streamed response
//! is aborted after `send_timeout`.

use std::cell::RefCell;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::rc::Rc;
use std::time::{Duration, Instant};

use ropewalk_protocols::http::{BodyWriter, HttpServer, Request, Response, ServerConfig};
use ropewalk_reactor::{ManualClock, Reactor};

const LIMIT: Duration = Duration::from_secs(20);

fn run_until(reactor: &Reactor, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + LIMIT;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        reactor.iterate(Duration::from_millis(20));
    }
}

/// The case: a client asks for a stream and never reads it. The server writes
/// until the transport's queue passes its high-water mark (the body pauses), and
/// `send_timeout` later the connection is aborted, the stream with it: before, no timer
/// ran while a stream was active, and 115 such clients held 230 descriptors for good.
#[test]
fn client_that_never_reads_a_stream_is_aborted() {
    let reactor = Reactor::new().unwrap();
    let clock = ManualClock::new();
    let writer: Rc<RefCell<Option<BodyWriter>>> = Rc::default();
    let w = writer.clone();
    let config = ServerConfig {
        send_timeout: Duration::from_secs(10),
        ..ServerConfig::default()
    };
    let server = HttpServer::with_config(
        &clock,
        move |_: Request| {
            let (resp, body) = Response::streaming(200);
            *w.borrow_mut() = Some(body);
            Ok(resp)
        },
        config,
    );
    let port = server
        .listen(&reactor, "127.0.0.1:0".parse().unwrap())
        .unwrap();
    let addr = port.local_addr().inet().unwrap();
    let mut client = TcpStream::connect(addr).unwrap();
    client.set_read_timeout(Some(LIMIT)).unwrap();
    client
        .write_all(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    run_until(&reactor, "the request", || writer.borrow().is_some());
    let body = writer.borrow_mut().take().unwrap();
    // Write until the server pauses the body: the socket's buffers are full and bytes
    // wait in the transport's queue.
    let chunk = vec![b'x'; 64 * 1024];
    run_until(&reactor, "the body to pause", || {
        if !body.is_paused() {
            body.write(&chunk);
        }
        body.is_paused()
    });
    clock.advance(Duration::from_secs(9));
    reactor.iterate(Duration::ZERO);
    assert!(!body.is_aborted(), "aborted before send_timeout");
    clock.advance(Duration::from_secs(1));
    run_until(&reactor, "the stream to be aborted", || body.is_aborted());
    // The client sees the connection reset (or closed), not a stream that hangs.
    let mut buf = vec![0u8; 1 << 20];
    let end = loop {
        match client.read(&mut buf) {
            Ok(0) => break None,
            Ok(_) => continue,
            Err(e) => break Some(e.kind()),
        }
    };
    assert!(
        matches!(end, None | Some(ErrorKind::ConnectionReset)),
        "{end:?}"
    );
}
