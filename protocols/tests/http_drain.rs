//! Graceful drain of the HTTP server ([`HttpServer::drain`], `drain_on_shutdown`), over
//! real loopback TCP: std `TcpStream` clients run on the worker pool while `wait()` or
//! `run()` runs the reactor. Every socket read has a timeout, so a server that never
//! drains fails the test instead of hanging it.

mod common;

use std::cell::RefCell;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::rc::Rc;
use std::time::{Duration, Instant};

use common::parse_responses;
use ropewalk_protocols::http::{HttpServer, Request, Response, Site};
use ropewalk_reactor::deferred::{Deferred, Failure, Resolver};
use ropewalk_reactor::{AcceptQueue, Clock, GroupListener, Reactor, ReactorGroup};

const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// What a test does when `/slow` arrives: it gets the reactor, the server, and the
/// resolver of the slow response.
type OnSlow = Rc<RefCell<Option<Box<dyn FnOnce(&Reactor, &HttpServer, Resolver<Response>)>>>>;

struct Fixture {
    reactor: Reactor,
    server: HttpServer,
    addr: SocketAddr,
    on_slow: OnSlow,
    on_fast: OnSlow,
}

/// A server with `/` (answers at once) and `/slow` (answers when the test says).
fn fixture() -> Fixture {
    let reactor = Reactor::new().unwrap();
    let on_slow: OnSlow = Rc::default();
    let on_fast: OnSlow = Rc::default();
    let cell: Rc<RefCell<Option<HttpServer>>> = Rc::default();
    let (slow, fast, c1, c2) = (on_slow.clone(), on_fast.clone(), cell.clone(), cell.clone());
    let (r1, r2) = (reactor.clone(), reactor.clone());
    let site = Site::new()
        .get("/", move |_: Request| {
            if let Some(f) = fast.borrow_mut().take() {
                let server = c1.borrow().clone().unwrap();
                let (_d, resolver) = Deferred::<Response>::pending();
                f(&r1, &server, resolver);
            }
            Ok(Response::text("fast"))
        })
        .get("/slow", move |_: Request| {
            let (d, resolver) = Deferred::<Response>::pending();
            let f = slow.borrow_mut().take().expect("one /slow per test");
            let server = c2.borrow().clone().unwrap();
            f(&r2, &server, resolver);
            d
        });
    let server = HttpServer::new(&reactor, site);
    *cell.borrow_mut() = Some(server.clone());
    let port = server
        .listen(&reactor, "127.0.0.1:0".parse().unwrap())
        .unwrap();
    let addr = port.local_addr().inet().unwrap();
    Fixture {
        reactor,
        server,
        addr,
        on_slow,
        on_fast,
    }
}

fn connect(addr: SocketAddr) -> Result<TcpStream, Failure> {
    let s = TcpStream::connect(addr).map_err(Failure::new)?;
    s.set_read_timeout(Some(IO_TIMEOUT)).map_err(Failure::new)?;
    s.set_write_timeout(Some(IO_TIMEOUT))
        .map_err(Failure::new)?;
    Ok(s)
}

/// Sends `GET path` and reads until the server closes; a reset counts as a close.
fn get_to_close(addr: SocketAddr, path: &str) -> Result<Vec<u8>, Failure> {
    let mut s = connect(addr)?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .map_err(Failure::new)?;
    let mut out = Vec::new();
    match s.read_to_end(&mut out) {
        Ok(_) => Ok(out),
        Err(e) if e.kind() == ErrorKind::ConnectionReset => Ok(out),
        Err(e) => Err(Failure::new(e)),
    }
}

/// A slow request in flight when the drain starts is answered in full, with
/// `Connection: close`, and the drain ends when its connection has closed.
#[test]
fn in_flight_request_finishes_with_connection_close() {
    let f = fixture();
    let drained: Rc<RefCell<Option<Deferred<()>>>> = Rc::default();
    let dr = drained.clone();
    *f.on_slow.borrow_mut() = Some(Box::new(move |reactor, server, resolver| {
        *dr.borrow_mut() = Some(server.drain(Duration::from_secs(10)));
        // The drain must wait for this response.
        reactor.call_later(Duration::from_millis(50), move || {
            resolver.callback(Response::text("slow done")).unwrap();
        });
    }));
    let addr = f.addr;
    let out = f
        .reactor
        .defer_to_thread(move || get_to_close(addr, "/slow"))
        .wait()
        .unwrap();
    let rs = parse_responses(&out);
    assert_eq!(rs.len(), 1, "{}", String::from_utf8_lossy(&out));
    assert_eq!(rs[0].status, 200);
    assert_eq!(rs[0].text(), "slow done");
    assert_eq!(rs[0].header("connection"), Some("close"));
    let d = drained.borrow_mut().take().unwrap();
    d.wait().unwrap();
    assert_eq!(f.server.live_connections(), 0);
}

/// An idle keep-alive connection is closed as soon as the drain starts, not at the end
/// of its 60 s idle timeout.
#[test]
fn idle_keep_alive_connection_closes_at_once() {
    let f = fixture();
    let drained: Rc<RefCell<Option<Deferred<()>>>> = Rc::default();
    let dr = drained.clone();
    *f.on_fast.borrow_mut() = Some(Box::new(move |reactor, server, _| {
        // After this response is written: the connection is idle then.
        let server = server.clone();
        reactor.call_soon(move || {
            *dr.borrow_mut() = Some(server.drain(Duration::from_secs(30)));
        });
    }));
    let addr = f.addr;
    let (first, rest, waited) = f
        .reactor
        .defer_to_thread(move || {
            let mut s = connect(addr)?;
            s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                .map_err(Failure::new)?;
            // The whole response ("fast", Content-Length 4), then the close.
            let mut out = Vec::new();
            let mut buf = [0u8; 4096];
            while !(out.windows(4).any(|w| w == b"\r\n\r\n") && out.ends_with(b"fast")) {
                let n = s.read(&mut buf).map_err(Failure::new)?;
                if n == 0 {
                    break;
                }
                out.extend_from_slice(&buf[..n]);
            }
            let started = Instant::now();
            let mut rest = Vec::new();
            s.read_to_end(&mut rest).map_err(Failure::new)?;
            Ok((out, rest, started.elapsed()))
        })
        .wait()
        .unwrap();
    let rs = parse_responses(&first);
    assert_eq!(rs.len(), 1);
    assert_eq!(rs[0].text(), "fast");
    // Answered before the drain began: kept alive then, closed by the drain.
    assert_eq!(rs[0].header("connection"), None);
    assert!(rest.is_empty());
    assert!(waited < Duration::from_secs(5), "closed after {waited:?}");
    drained.borrow_mut().take().unwrap().wait().unwrap();
}

/// Once the drain has started, a new connect is refused (the listening socket is
/// closed) while the request in flight still finishes.
#[test]
fn new_connect_refused_while_draining() {
    let f = fixture();
    let addr = f.addr;
    let refused: Rc<RefCell<Option<std::io::ErrorKind>>> = Rc::default();
    let rf = refused.clone();
    *f.on_slow.borrow_mut() = Some(Box::new(move |reactor, server, resolver| {
        drop(server.drain(Duration::from_secs(10)));
        // A second client, after the drain began; the slow answer after its attempt.
        reactor
            .defer_to_thread(move || Ok(TcpStream::connect(addr).err().map(|e| e.kind())))
            .add_callback(move |kind| {
                *rf.borrow_mut() = kind;
                resolver.callback(Response::text("slow done")).unwrap();
                Ok(())
            });
    }));
    let out = f
        .reactor
        .defer_to_thread(move || get_to_close(addr, "/slow"))
        .wait()
        .unwrap();
    assert_eq!(*refused.borrow(), Some(ErrorKind::ConnectionRefused));
    let rs = parse_responses(&out);
    assert_eq!(rs.len(), 1);
    assert_eq!(rs[0].text(), "slow done");
}

/// Connections still open at the drain's deadline are aborted, and the drain ends then.
#[test]
fn deadline_aborts_what_is_left() {
    let f = fixture();
    let keep: Rc<RefCell<Vec<Resolver<Response>>>> = Rc::default();
    let k = keep.clone();
    type Started = Rc<RefCell<Option<(Deferred<()>, Duration)>>>;
    let drained: Started = Rc::default();
    let dr = drained.clone();
    *f.on_slow.borrow_mut() = Some(Box::new(move |reactor, server, resolver| {
        k.borrow_mut().push(resolver); // never answered
        *dr.borrow_mut() = Some((server.drain(Duration::from_millis(100)), reactor.now()));
    }));
    let addr = f.addr;
    let out = f
        .reactor
        .defer_to_thread(move || get_to_close(addr, "/slow"))
        .wait()
        .unwrap();
    assert!(out.is_empty(), "{}", String::from_utf8_lossy(&out));
    let (d, started) = drained.borrow_mut().take().unwrap();
    d.wait().unwrap();
    assert!(f.reactor.now() - started >= Duration::from_millis(100));
    assert_eq!(f.server.live_connections(), 0);
    drop(keep);
}

/// `drain_on_shutdown`: stopping the reactor drains first (the in-flight response is
/// answered with `Connection: close`), and a second stop during the drain stops at once
/// instead of waiting for the deadline.
#[test]
fn stop_drains_and_a_second_stop_is_immediate() {
    // First stop: the slow response arrives during the drain.
    let f = fixture();
    f.server
        .drain_on_shutdown(&f.reactor, Duration::from_secs(60));
    *f.on_slow.borrow_mut() = Some(Box::new(move |reactor, _server, resolver| {
        reactor.stop().unwrap();
        reactor.call_later(Duration::from_millis(50), move || {
            resolver.callback(Response::text("slow done")).unwrap();
        });
    }));
    let addr = f.addr;
    let client = f
        .reactor
        .defer_to_thread(move || get_to_close(addr, "/slow"));
    f.reactor.run().unwrap();
    assert!(f.server.is_draining());
    let out = client.wait().unwrap();
    let rs = parse_responses(&out);
    assert_eq!(rs.len(), 1);
    assert_eq!(rs[0].text(), "slow done");
    assert_eq!(rs[0].header("connection"), Some("close"));

    // Second stop: the slow response never comes; the 60 s deadline is not waited for.
    let f = fixture();
    f.server
        .drain_on_shutdown(&f.reactor, Duration::from_secs(60));
    let keep: Rc<RefCell<Vec<Resolver<Response>>>> = Rc::default();
    let k = keep.clone();
    *f.on_slow.borrow_mut() = Some(Box::new(move |reactor, _server, resolver| {
        k.borrow_mut().push(resolver);
        reactor.stop().unwrap();
        let r = reactor.clone();
        reactor.call_later(Duration::from_millis(50), move || r.stop().unwrap());
    }));
    let addr = f.addr;
    let client = f
        .reactor
        .defer_to_thread(move || get_to_close(addr, "/slow"));
    let started = Instant::now();
    let r = f.reactor.clone();
    // A failsafe: a lost second stop fails the test below instead of hanging it.
    f.reactor.call_later(Duration::from_secs(20), move || {
        let _ = r.stop();
    });
    f.reactor.run().unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    // The run() above ended with the reactor's connections closed: the client got no
    // response. Its result comes back through a reactor that runs again.
    let out = client.wait().unwrap();
    assert!(out.is_empty());
    drop(keep);
}

thread_local! {
    /// The server of the group's reactor on this thread.
    static GROUP_SERVER: RefCell<Option<HttpServer>> = const { RefCell::new(None) };
}

/// Draining every server of a group stops every reactor's share of the group listener (a
/// new connect is refused), in each accept mode this build knows: the modes are parsed
/// from their names, so one a build adds is covered as soon as it parses.
#[test]
fn drain_stops_every_share_of_a_group_listener() {
    let modes: Vec<AcceptQueue> = [
        "per-reactor",
        "shared",
        "dispatcher:round-robin",
        "dispatcher:least-loaded",
    ]
    .iter()
    .filter_map(|m| m.parse().ok())
    .collect();
    assert!(modes.len() >= 2, "{modes:?}");
    for queue in modes {
        let listener = GroupListener::bind("127.0.0.1:0".parse().unwrap(), queue).unwrap();
        let addr = listener.local_addr();
        let group = ReactorGroup::start(2, move |reactor, _| {
            let server = HttpServer::new(reactor, |_: Request| Ok(Response::text("ok")));
            server.listen_group(reactor, &listener)?;
            GROUP_SERVER.with(|s| *s.borrow_mut() = Some(server));
            Ok(())
        })
        .unwrap();
        let mut s = connect(addr).unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut before = Vec::new();
        s.read_to_end(&mut before).unwrap();
        assert!(before.ends_with(b"ok"), "{queue}");
        for handle in group.handles() {
            handle
                .blocking_call(|| {
                    let server = GROUP_SERVER.with(|s| s.borrow().clone());
                    server.expect("set up").drain(Duration::from_secs(10))
                })
                .unwrap();
        }
        let refused = TcpStream::connect(addr).map(drop).map_err(|e| e.kind());
        assert_eq!(refused, Err(ErrorKind::ConnectionRefused), "{queue}");
        group.stop().unwrap();
    }
}
