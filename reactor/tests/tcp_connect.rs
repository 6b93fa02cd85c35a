//! Connecting and listening over loopback: refused, timed out, cancelled, names resolved
//! on the pool, lookup failures, factories that refuse, IPv6, and factory start/stop
//! (Twisted: `internet/test/test_tcp.py`, `test/test_tcp.py`, §2.3 and §2.9).

mod support;

use std::cell::{Cell, RefCell};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::rc::Rc;
use std::time::{Duration, Instant};

use ropewalk_reactor::deferred::Cancelled;
use ropewalk_reactor::{Address, ConnectionError, Factory, ListenOptions, Reactor};
use support::bounded;
use support::net::{black_hole, run_until, spin, Events, Probe};

const LIMIT: Duration = Duration::from_secs(30);
const WAIT: Duration = Duration::from_secs(20);

fn connection_error(f: &ropewalk_reactor::deferred::Failure) -> &ConnectionError {
    f.downcast_ref::<ConnectionError>()
        .unwrap_or_else(|| panic!("not a ConnectionError: {f}"))
}

/// A factory counting `start_factory` / `stop_factory` and the peers it was asked about.
struct Counted {
    ev: Rc<Events>,
    starts: Rc<Cell<usize>>,
    stops: Rc<Cell<usize>>,
    peers: Rc<RefCell<Vec<Address>>>,
    refuse: bool,
}

impl Counted {
    fn new(refuse: bool) -> Counted {
        Counted {
            ev: Events::new(),
            starts: Rc::default(),
            stops: Rc::default(),
            peers: Rc::default(),
            refuse,
        }
    }

    fn handles(&self) -> Counted {
        Counted {
            ev: self.ev.clone(),
            starts: self.starts.clone(),
            stops: self.stops.clone(),
            peers: self.peers.clone(),
            refuse: self.refuse,
        }
    }
}

impl Factory for Counted {
    type Protocol = Probe;

    fn build_protocol(&self, peer: &Address) -> Option<Probe> {
        self.peers.borrow_mut().push(peer.clone());
        (!self.refuse).then(|| Probe::new(&self.ev).echo())
    }

    fn start_factory(&self) {
        self.starts.set(self.starts.get() + 1);
    }

    fn stop_factory(&self) {
        self.stops.set(self.stops.get() + 1);
    }
}

/// Twisted: §2.9 (`clientConnectionFailed` with `ConnectionRefusedError`) and the
/// [exp] check there; `test/test_tcp.py` refused-connection tests. Refused over IPv4
/// and IPv6, typed, with the factory started and stopped once and nothing left
/// registered.
#[test]
fn connect_refused_is_typed_on_ipv4_and_ipv6() {
    bounded(LIMIT, || {
        for local in ["127.0.0.1:0", "[::1]:0"] {
            let reactor = Reactor::new().unwrap();
            let free = TcpListener::bind(local).unwrap().local_addr().unwrap();
            let factory = Counted::new(false);
            let h = factory.handles();
            let f = reactor
                .connect_tcp_factory(free, factory, WAIT)
                .wait()
                .unwrap_err();
            assert!(
                matches!(connection_error(&f), ConnectionError::Refused(_)),
                "{local}: {f}"
            );
            assert_eq!((h.starts.get(), h.stops.get()), (1, 1), "{local}");
            assert_eq!(h.ev.made.get(), 0);
            let stats = reactor.stats();
            assert_eq!((stats.sources, stats.pending_timers), (0, 0), "{local}");
        }
    });
}

/// Twisted: `internet/test/test_tcp.py` connect-timeout tests (`error.TimeoutError` in
/// §2.9). A connect whose SYN is dropped (a full backlog on loopback) fails with
/// `TimedOut`, not before the timeout, and leaves nothing registered.
#[test]
fn connect_times_out_against_a_full_backlog() {
    bounded(LIMIT, || {
        let (_listener, addr, _fill) = black_hole();
        let reactor = Reactor::new().unwrap();
        let factory = Counted::new(false);
        let h = factory.handles();
        let timeout = Duration::from_millis(300);
        let started = Instant::now();
        let f = reactor
            .connect_tcp_factory(addr, factory, timeout)
            .wait()
            .unwrap_err();
        let took = started.elapsed();
        assert!(
            matches!(connection_error(&f), ConnectionError::TimedOut(t) if *t == timeout),
            "{f}"
        );
        assert!(took >= timeout, "timed out early, after {took:?}");
        assert_eq!((h.starts.get(), h.stops.get()), (1, 1));
        let stats = reactor.stats();
        assert_eq!((stats.sources, stats.pending_timers), (0, 0));
    });
}

/// Twisted: `IConnector.stopConnecting` / `TCP4ClientEndpoint.connect` cancellation
/// (`internet/test/test_endpoints.py`). Cancelling a connect in progress fails its
/// Deferred with `Cancelled`, stops the factory once, and leaks nothing: no source, no
/// timer, and the socket is closed.
#[test]
fn cancelling_a_connect_in_progress_leaks_nothing() {
    bounded(LIMIT, || {
        let (_listener, addr, _fill) = black_hole();
        let reactor = Reactor::new().unwrap();
        let factory = Counted::new(false);
        let h = factory.handles();
        let d = reactor.connect_tcp_factory(addr, factory, Duration::from_secs(60));
        spin(&reactor, 3);
        let stats = reactor.stats();
        assert_eq!((stats.sources, stats.pending_timers), (1, 1), "in progress");
        d.cancel();
        let f = d.wait().unwrap_err();
        assert!(f.is::<Cancelled>(), "{f}");
        spin(&reactor, 3);
        let stats = reactor.stats();
        assert_eq!((stats.sources, stats.pending_timers), (0, 0));
        assert_eq!((h.starts.get(), h.stops.get()), (1, 1));
        assert_eq!(h.ev.made.get(), 0);
    });
}

/// Twisted: `HostnameEndpoint` / `connectTCP("localhost", …)` (§2.10). A `"host:port"`
/// name is resolved on the worker pool and connected; the protocol sees 127.0.0.1.
#[test]
fn a_name_is_resolved_on_the_pool_and_connected() {
    bounded(LIMIT, || {
        let reactor = Reactor::new().unwrap();
        let server = Counted::new(false);
        let sh = server.handles();
        let port = reactor
            .listen_tcp_factory(
                "127.0.0.1:0".parse().unwrap(),
                server,
                &ListenOptions::default(),
            )
            .unwrap();
        let p = port.local_addr().inet().unwrap().port();
        let client = Counted::new(false);
        let ch = client.handles();
        let connected = reactor
            .connect_tcp_factory(format!("localhost:{p}"), client, WAIT)
            .wait()
            .unwrap();
        let t = ch.ev.transport();
        assert_eq!(t.peer_addr().inet().unwrap().port(), p);
        assert!(t.peer_addr().inet().unwrap().ip().is_loopback());
        assert_eq!(ch.peers.borrow()[0], t.peer_addr());
        assert_eq!((ch.starts.get(), ch.stops.get()), (1, 1));
        t.write(b"named");
        run_until(&reactor, WAIT, "the echo", || ch.ev.received() == 5);
        assert_eq!(&*ch.ev.data.borrow(), b"named");
        t.lose_connection();
        run_until(&reactor, WAIT, "both closed", || {
            ch.ev.lost_count() == 1 && sh.ev.lost_count() == 1
        });
        assert_eq!(ch.ev.reason_kind(), "Done");
        drop(connected);
    });
}

/// Twisted: §2.9 (`DNSLookupError`). A name that cannot resolve (`.invalid` is reserved,
/// RFC 6761) fails with `LookupFailed` naming it, within a bound, with no socket made.
#[test]
fn an_unresolvable_name_is_lookup_failed() {
    bounded(LIMIT, || {
        let reactor = Reactor::new().unwrap();
        let factory = Counted::new(false);
        let h = factory.handles();
        let d = reactor
            .connect_tcp_factory("nonexistent.invalid:80", factory, WAIT)
            .add_timeout(Duration::from_secs(15), &reactor);
        let f = d.wait().unwrap_err();
        match connection_error(&f) {
            ConnectionError::LookupFailed(name, _) => {
                assert_eq!(name, "nonexistent.invalid:80")
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(h.ev.made.get(), 0);
        assert_eq!(h.starts.get(), h.stops.get());
        assert_eq!(reactor.stats().sources, 0);
    });
}

/// Twisted: `internet/test/test_tcp.py …test_buildProtocolReturnsNone` (the connection
/// is closed) and `test_buildProtocolIPv4Address` (the factory gets the peer address).
/// A server factory returning `None` closes the accepted socket (the client reads EOF)
/// and keeps listening; a client factory returning `None` fails the connect.
#[test]
fn a_factory_returning_none_closes_the_connection() {
    bounded(LIMIT, || {
        let reactor = Reactor::new().unwrap();
        let server = Counted::new(true);
        let sh = server.handles();
        let port = reactor
            .listen_tcp_factory(
                "127.0.0.1:0".parse().unwrap(),
                server,
                &ListenOptions::default(),
            )
            .unwrap();
        let addr = port.local_addr().inet().unwrap();
        let worker = reactor.defer_to_thread(move || {
            let mut s = TcpStream::connect(addr)?;
            s.set_read_timeout(Some(WAIT))?;
            let local = s.local_addr()?;
            let mut buf = [0u8; 16];
            let n = s.read(&mut buf).unwrap_or(0);
            Ok((local, n))
        });
        let (client_local, n) = worker.add_timeout(WAIT, &reactor).wait().unwrap();
        assert_eq!(n, 0, "the refused connection sent data");
        assert_eq!(*sh.peers.borrow(), vec![Address::Inet(client_local)]);
        assert_eq!(sh.ev.made.get(), 0);
        assert_eq!(reactor.stats().sources, 1, "only the listener");

        // The client side: refused by its own factory.
        let client = Counted::new(true);
        let ch = client.handles();
        let f = reactor
            .connect_tcp_factory(addr, client, WAIT)
            .wait()
            .unwrap_err();
        assert!(
            matches!(connection_error(&f), ConnectionError::ConnectFailed(_)),
            "{f}"
        );
        assert_eq!(*ch.peers.borrow(), vec![Address::Inet(addr)]);
        assert_eq!((ch.starts.get(), ch.stops.get()), (1, 1));
        run_until(&reactor, WAIT, "the server to see it", || {
            sh.peers.borrow().len() == 2
        });
        spin(&reactor, 3);
        assert_eq!(reactor.stats().sources, 1, "only the listener");
        port.stop_listening().wait().unwrap();
        assert_eq!(reactor.stats().sources, 0);
    });
}

/// Twisted: `internet/test/test_tcp.py …test_buildProtocolIPv6Address`, `TCP6EndpointsTests`
/// and `test_hostAddress`. Listening on `[::1]` and connecting to it: the addresses are
/// IPv6 at both ends, the data is echoed, both ends close cleanly.
#[test]
fn ipv6_loopback_listen_and_connect() {
    bounded(LIMIT, || {
        let reactor = Reactor::new().unwrap();
        let server = Counted::new(false);
        let sh = server.handles();
        let port = reactor
            .listen_tcp_factory(
                "[::1]:0".parse().unwrap(),
                server,
                &ListenOptions::default(),
            )
            .unwrap();
        let addr = port.local_addr().inet().unwrap();
        assert!(addr.is_ipv6() && addr.ip().is_loopback());
        let client = Counted::new(false);
        let ch = client.handles();
        reactor
            .connect_tcp_factory(addr, client, WAIT)
            .wait()
            .unwrap();
        assert_eq!((ch.starts.get(), ch.stops.get()), (1, 1));
        let t = ch.ev.transport();
        t.write(b"over six");
        run_until(&reactor, WAIT, "the echo", || ch.ev.received() == 8);
        let st = sh.ev.transport();
        assert_eq!(t.peer_addr(), Address::Inet(addr));
        assert_eq!(st.local_addr(), Address::Inet(addr));
        assert_eq!(st.peer_addr(), t.local_addr());
        assert!(t.local_addr().inet().unwrap().is_ipv6());
        assert_eq!(*sh.peers.borrow(), vec![t.local_addr()]);
        t.lose_connection();
        run_until(&reactor, WAIT, "both closed", || {
            ch.ev.lost_count() == 1 && sh.ev.lost_count() == 1
        });
        assert_eq!(ch.ev.reason_kind(), "Done");
        assert_eq!(sh.ev.reason_kind(), "Done");
    });
}

/// Twisted: `test/test_tcp.py test_serverStartStop`, `ListeningTests.testStopListening`,
/// `test_restartListening`. Listening starts the factory, `stop_listening` stops it
/// once and closes the port (a connect is then refused), and the port can be reused.
#[test]
fn listening_starts_and_stops_the_factory_and_frees_the_port() {
    bounded(LIMIT, || {
        let reactor = Reactor::new().unwrap();
        let server = Counted::new(false);
        let sh = server.handles();
        let port = reactor
            .listen_tcp_factory(
                "127.0.0.1:0".parse().unwrap(),
                server,
                &ListenOptions::default(),
            )
            .unwrap();
        let addr = port.local_addr().inet().unwrap();
        assert_eq!((sh.starts.get(), sh.stops.get()), (1, 0));
        port.stop_listening().wait().unwrap();
        port.stop_listening().wait().unwrap();
        assert_eq!((sh.starts.get(), sh.stops.get()), (1, 1));
        assert_eq!(reactor.stats().sources, 0);
        let f = reactor
            .connect_tcp_factory(addr, Counted::new(false), WAIT)
            .wait()
            .unwrap_err();
        assert!(matches!(connection_error(&f), ConnectionError::Refused(_)));
        // The same port again.
        let again = Counted::new(false);
        let ah = again.handles();
        let port2 = reactor
            .listen_tcp_factory(addr, again, &ListenOptions::default())
            .unwrap();
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(b"x").unwrap();
        run_until(&reactor, WAIT, "served again", || ah.ev.received() == 1);
        port2.stop_listening();
    });
}
