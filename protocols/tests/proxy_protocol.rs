//! The PROXY protocol on a listener ([`ProxyProtocol`]), over real loopback TCP: the HTTP
//! server behind it sees the client the header names; a malformed header or none in
//! time closes the connection. Clients run on the worker pool with read timeouts.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use ropewalk_protocols::http::{HttpServer, Request, Response};
use ropewalk_protocols::proxy_header::ProxyProtocol;
use ropewalk_reactor::deferred::Failure;
use ropewalk_reactor::{ListenOptions, Reactor};

fn start(reactor: &Reactor, header_timeout: Duration) -> SocketAddr {
    let server = HttpServer::new(reactor, |req: Request| {
        Ok(Response::text(format!("peer {}", req.peer())))
    });
    let port = reactor
        .listen_tcp_factory(
            "127.0.0.1:0".parse().unwrap(),
            ProxyProtocol::new(reactor, server, header_timeout),
            &ListenOptions::default(),
        )
        .unwrap();
    port.local_addr().inet().unwrap()
}

/// Sends `bytes` and reads until the server closes (a reset counts as a close).
fn exchange(addr: SocketAddr, bytes: Vec<u8>) -> Result<String, Failure> {
    let mut s = TcpStream::connect(addr).map_err(Failure::new)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(Failure::new)?;
    s.write_all(&bytes).map_err(Failure::new)?;
    let mut out = Vec::new();
    match s.read_to_end(&mut out) {
        Ok(_) => {}
        Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
        Err(e) => return Err(Failure::new(e)),
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";

#[test]
fn v1_and_v2_headers_give_the_client_address() {
    let reactor = Reactor::new().unwrap();
    let addr = start(&reactor, Duration::from_secs(10));
    let v1 = [
        b"PROXY TCP4 192.0.2.1 198.51.100.1 56324 443\r\n".as_slice(),
        GET,
    ]
    .concat();
    let mut v2 = b"\r\n\r\n\0\r\nQUIT\n\x21\x21\x00\x24".to_vec();
    v2.extend_from_slice(
        &"2001:db8::7"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets(),
    );
    v2.extend_from_slice(
        &"2001:db8::1"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets(),
    );
    v2.extend_from_slice(&[0x30, 0x39, 0x01, 0xbb]);
    v2.extend_from_slice(GET);
    let local = [b"PROXY UNKNOWN\r\n".as_slice(), GET].concat();
    let out = reactor
        .defer_to_thread(move || {
            Ok((
                exchange(addr, v1)?,
                exchange(addr, v2)?,
                exchange(addr, local)?,
            ))
        })
        .wait()
        .unwrap();
    assert!(out.0.ends_with("peer 192.0.2.1:56324"), "{}", out.0);
    assert!(out.1.ends_with("peer [2001:db8::7]:12345"), "{}", out.1);
    // UNKNOWN: the connection's own address.
    assert!(out.2.contains("peer 127.0.0.1:"), "{}", out.2);
}

#[test]
fn malformed_header_closes_without_an_answer() {
    let reactor = Reactor::new().unwrap();
    let addr = start(&reactor, Duration::from_secs(10));
    let out = reactor
        .defer_to_thread(move || {
            Ok((
                exchange(addr, GET.to_vec())?,
                exchange(
                    addr,
                    b"PROXY TCP4 192.0.2.1 nope 1 2\r\nGET / HTTP/1.1\r\n\r\n".to_vec(),
                )?,
            ))
        })
        .wait()
        .unwrap();
    assert_eq!(out.0, "");
    assert_eq!(out.1, "");
}

#[test]
fn no_header_in_time_closes() {
    let reactor = Reactor::new().unwrap();
    let addr = start(&reactor, Duration::from_millis(100));
    let started = std::time::Instant::now();
    let out = reactor
        .defer_to_thread(move || exchange(addr, b"PROXY TCP4 192.0".to_vec()))
        .wait()
        .unwrap();
    assert_eq!(out, "");
    assert!(started.elapsed() >= Duration::from_millis(100));
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// A drain stops a port whose factory is the server wrapped in [`ProxyProtocol`]: a new
/// connect is refused, as on a port the server opened itself.
#[test]
fn drain_stops_a_port_wrapped_in_proxy_protocol() {
    let reactor = Reactor::new().unwrap();
    let server = HttpServer::new(&reactor, |_: Request| Ok(Response::text("ok")));
    let port = reactor
        .listen_tcp_factory(
            "127.0.0.1:0".parse().unwrap(),
            ProxyProtocol::new(&reactor, server.clone(), Duration::from_secs(10)),
            &ListenOptions::default(),
        )
        .unwrap();
    let addr = port.local_addr().inet().unwrap();
    // Served before the drain.
    let v1 = [
        b"PROXY TCP4 192.0.2.1 198.51.100.1 56324 443\r\n".as_slice(),
        GET,
    ]
    .concat();
    let out = reactor
        .defer_to_thread(move || exchange(addr, v1))
        .wait()
        .unwrap();
    assert!(out.ends_with("ok"), "{out}");
    // No connection is open: the drain ends at once, with the port closed.
    server.drain(Duration::from_secs(10)).wait().unwrap();
    let refused = reactor
        .defer_to_thread(move || Ok(TcpStream::connect(addr).err().map(|e| e.kind())))
        .wait()
        .unwrap();
    assert_eq!(refused, Some(ErrorKind::ConnectionRefused));
}

/// The wrapped factory's `start_factory` and `stop_factory` run when the port starts and
/// stops listening, as they would unwrapped.
#[test]
fn proxy_protocol_passes_on_start_and_stop_factory() {
    use std::cell::Cell;
    use std::rc::Rc;

    use ropewalk_protocols::Echo;
    use ropewalk_reactor::{Address, Factory};

    struct Counted(Rc<Cell<i32>>);
    impl Factory for Counted {
        type Protocol = Echo;
        fn build_protocol(&self, peer: &Address) -> Option<Echo> {
            Echo::factory()(peer)
        }
        fn start_factory(&self) {
            self.0.set(self.0.get() + 1);
        }
        fn stop_factory(&self) {
            self.0.set(self.0.get() - 1);
        }
    }

    let reactor = Reactor::new().unwrap();
    let ports = Rc::new(Cell::new(0));
    let wrapped = ProxyProtocol::new(&reactor, Counted(ports.clone()), Duration::from_secs(10));
    let port = reactor
        .listen_tcp_factory(
            "127.0.0.1:0".parse().unwrap(),
            wrapped,
            &ListenOptions::default(),
        )
        .unwrap();
    assert_eq!(ports.get(), 1);
    port.stop_listening().wait().unwrap();
    assert_eq!(ports.get(), 0);
}
