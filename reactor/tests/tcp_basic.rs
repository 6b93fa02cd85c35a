//! TCP over real loopback sockets: echo, close reasons, connect errors
//! (Twisted: `internet/test/test_tcp.py`, `test/test_tcp.py`).

mod support;

use std::cell::RefCell;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::rc::Rc;
use std::time::Duration;

use ropewalk_reactor::deferred::{Deferred, Failure, Resolver};
use ropewalk_reactor::{Address, Clock, ConnectionError, Protocol, Reactor, TransportRef};
use support::bounded;

const LOCAL: &str = "127.0.0.1:0";

/// Echoes everything back.
#[derive(Default)]
struct Echo {
    transport: Option<TransportRef>,
}

impl Protocol for Echo {
    fn connection_made(&mut self, transport: TransportRef) {
        self.transport = Some(transport);
    }

    fn data_received(&mut self, data: &[u8]) -> Result<(), Failure> {
        self.transport.as_ref().unwrap().write(data);
        Ok(())
    }
}

/// Sends `payload`, collects what comes back until `expect` bytes, then closes; fires
/// `done` with what it got and the close reason.
struct Client {
    payload: Vec<u8>,
    expect: usize,
    got: Vec<u8>,
    transport: Option<TransportRef>,
    done: Option<Resolver<(Vec<u8>, String)>>,
}

impl Protocol for Client {
    fn connection_made(&mut self, transport: TransportRef) {
        transport.write(&self.payload);
        self.transport = Some(transport);
    }

    fn data_received(&mut self, data: &[u8]) -> Result<(), Failure> {
        self.got.extend_from_slice(data);
        if self.got.len() >= self.expect {
            self.transport.as_ref().unwrap().lose_connection();
        }
        Ok(())
    }

    fn connection_lost(&mut self, reason: Failure) {
        if let Some(done) = self.done.take() {
            let _ = done.callback((std::mem::take(&mut self.got), reason.to_string()));
        }
    }
}

fn client(payload: &[u8], done: Resolver<(Vec<u8>, String)>) -> Client {
    Client {
        payload: payload.to_vec(),
        expect: payload.len(),
        got: Vec::new(),
        transport: None,
        done: Some(done),
    }
}

fn echo_server(reactor: &Reactor) -> SocketAddr {
    let port = reactor
        .listen_tcp(LOCAL.parse().unwrap(), |_: &Address| Some(Echo::default()))
        .unwrap();
    port.local_addr().inet().unwrap()
}

/// Twisted: test_tcp.ProperlyCloseFilesTests / LoopbackTests (adapted): a client and an
/// echo server on one reactor, data back byte-exact, clean close on both sides.
#[test]
fn echo_round_trip_on_one_reactor() {
    bounded(Duration::from_secs(20), || {
        let reactor = Reactor::new().unwrap();
        let addr = echo_server(&reactor);
        let (done, r) = Deferred::pending();
        let cell = RefCell::new(Some(r));
        let payload: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let p2 = payload.clone();
        let _client = reactor.connect_tcp(
            addr,
            move |_: &Address| cell.borrow_mut().take().map(|r| client(&p2, r)),
            Duration::from_secs(5),
        );
        let (got, reason) = done
            .add_timeout(Duration::from_secs(10), &reactor)
            .wait()
            .unwrap();
        assert_eq!(got, payload);
        assert_eq!(reason, "connection closed cleanly");
    });
}

/// Twisted: none; a blocking std client against the reactor's echo server, data fed one
/// byte at a time.
#[test]
fn echo_one_byte_at_a_time_from_a_plain_socket() {
    bounded(Duration::from_secs(20), || {
        let reactor = Reactor::new().unwrap();
        let addr = echo_server(&reactor);
        let worker = reactor.defer_to_thread(move || {
            let mut s = TcpStream::connect(addr)?;
            s.set_read_timeout(Some(Duration::from_secs(5)))?;
            let mut back = Vec::new();
            for b in b"hello, one byte at a time" {
                s.write_all(&[*b])?;
                let mut one = [0u8; 1];
                s.read_exact(&mut one)?;
                back.push(one[0]);
            }
            Ok(back)
        });
        let back = worker
            .add_timeout(Duration::from_secs(10), &reactor)
            .wait()
            .unwrap();
        assert_eq!(back, b"hello, one byte at a time");
    });
}

/// Twisted: test_tcp.ConnectionLostNotificationTests / TCPConnectionTests (refused).
#[test]
fn connect_refused_is_typed() {
    let reactor = Reactor::new().unwrap();
    let free = std::net::TcpListener::bind(LOCAL)
        .unwrap()
        .local_addr()
        .unwrap();
    let d = reactor.connect_tcp(
        free,
        |_: &Address| Some(Echo::default()),
        Duration::from_secs(5),
    );
    let Err(f) = d.wait() else {
        panic!("connected to a closed port")
    };
    assert!(
        matches!(f.downcast_ref(), Some(ConnectionError::Refused(_))),
        "{f}"
    );
}

/// Twisted: none: a protocol whose data_received fails loses its connection with that
/// failure, and the server goes on serving others.
#[test]
fn failing_protocol_closes_only_its_connection() {
    bounded(Duration::from_secs(20), || {
        struct Fails(Rc<RefCell<Option<String>>>);
        impl Protocol for Fails {
            fn data_received(&mut self, _: &[u8]) -> Result<(), Failure> {
                Err(Failure::msg("tcp-basic: bad input"))
            }
            fn connection_lost(&mut self, reason: Failure) {
                *self.0.borrow_mut() = Some(reason.to_string());
            }
        }
        let reactor = Reactor::new().unwrap();
        let seen = Rc::new(RefCell::new(None));
        let s2 = seen.clone();
        let port = reactor
            .listen_tcp(LOCAL.parse().unwrap(), move |_: &Address| {
                Some(Fails(s2.clone()))
            })
            .unwrap();
        let addr = port.local_addr().inet().unwrap();
        let worker = reactor.defer_to_thread(move || {
            let mut s = TcpStream::connect(addr)?;
            s.set_read_timeout(Some(Duration::from_secs(5)))?;
            s.write_all(b"x")?;
            let mut buf = [0u8; 8];
            // The server closes: read gives EOF (or a reset).
            let n = s.read(&mut buf).unwrap_or(0);
            Ok(n)
        });
        assert_eq!(
            worker
                .add_timeout(Duration::from_secs(10), &reactor)
                .wait()
                .unwrap(),
            0
        );
        // connection_lost runs on a later turn.
        let r = reactor.clone();
        let d = r.sleep(Duration::from_millis(1));
        d.wait().unwrap();
        assert_eq!(seen.borrow().as_deref(), Some("tcp-basic: bad input"));
        // Still accepting.
        let addr2 = addr;
        let ok = reactor
            .defer_to_thread(move || Ok(TcpStream::connect(addr2).is_ok()))
            .wait()
            .unwrap();
        assert!(ok);
        let _ = reactor.now();
    });
}

/// A port already taken: the error keeps its kind (`AddrInUse`) and names the address,
/// so a server's "Address already in use" says which one.
#[test]
fn listening_on_a_busy_port_names_the_address() {
    bounded(Duration::from_secs(10), || {
        let reactor = Reactor::new().unwrap();
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap();
        let err = reactor
            .listen_tcp(addr, |_: &Address| Some(Echo::default()))
            .unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse, "{err}");
        let text = err.to_string();
        assert!(text.contains(&addr.to_string()), "{text}");
        assert!(text.contains("in use"), "{text}");
    });
}
