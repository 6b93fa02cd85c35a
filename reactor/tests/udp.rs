//! UDP ports over real loopback sockets (Twisted: `test/test_udp.py`).

mod support;

use std::cell::RefCell;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::rc::Rc;
use std::time::Duration;

use ropewalk_reactor::deferred::{Deferred, Failure, Resolver};
use ropewalk_reactor::{DatagramProtocol, DatagramTransportRef, Reactor};
use support::{bounded, capture_logs, logged};

const LOCAL: &str = "127.0.0.1:0";
const LIMIT: Duration = Duration::from_secs(10);

/// Records what happens to it; fires `done` once `want` datagrams have arrived.
#[derive(Default)]
struct Recorder {
    transport: Option<DatagramTransportRef>,
    started: usize,
    stopped: usize,
    refused: usize,
    got: Vec<(Vec<u8>, SocketAddr)>,
    want: usize,
    done: Option<Resolver<()>>,
    on_refused: Option<Resolver<()>>,
    /// Sends every datagram back.
    echo: bool,
}

impl DatagramProtocol for Recorder {
    fn start_protocol(&mut self, transport: DatagramTransportRef) {
        self.started += 1;
        self.transport = Some(transport);
    }

    fn datagram_received(&mut self, data: &[u8], from: SocketAddr) -> Result<(), Failure> {
        if data.starts_with(b"panic") {
            panic!("{}", String::from_utf8_lossy(data));
        }
        if data.starts_with(b"err") {
            return Err(Failure::new(io::Error::other(
                String::from_utf8_lossy(data).into_owned(),
            )));
        }
        if self.echo {
            self.transport.as_ref().unwrap().write_to(data, from)?;
        }
        self.got.push((data.to_vec(), from));
        if self.got.len() >= self.want {
            if let Some(done) = self.done.take() {
                let _ = done.callback(());
            }
        }
        Ok(())
    }

    fn connection_refused(&mut self) {
        self.refused += 1;
        if let Some(r) = self.on_refused.take() {
            let _ = r.callback(());
        }
    }

    fn stop_protocol(&mut self) {
        self.stopped += 1;
    }
}

/// A recorder that fires the returned Deferred after `want` datagrams.
fn recorder(want: usize) -> (Rc<RefCell<Recorder>>, Deferred<()>) {
    let (d, r) = Deferred::pending();
    let rec = Recorder {
        want,
        done: Some(r),
        ..Recorder::default()
    };
    (Rc::new(RefCell::new(rec)), d)
}

fn within<T: 'static>(d: Deferred<T>, reactor: &Reactor) -> T {
    d.add_timeout(LIMIT, reactor).wait().unwrap()
}

fn std_peer(addr: &str) -> UdpSocket {
    let s = UdpSocket::bind(addr).unwrap();
    s.set_read_timeout(Some(LIMIT)).unwrap();
    s
}

#[test]
fn test_start_stop() {
    bounded(LIMIT, || {
        let reactor = Reactor::new().unwrap();
        let (rec, _) = recorder(1);
        let port = reactor
            .listen_udp(LOCAL.parse().unwrap(), rec.clone())
            .unwrap();
        assert_eq!((rec.borrow().started, rec.borrow().stopped), (1, 0));
        assert_eq!(reactor.stats().sources, 1);
        let d = port.stop_listening();
        // The socket is closed at once; stop_protocol runs on the next turn.
        assert_eq!(reactor.stats().sources, 0);
        assert_eq!(rec.borrow().stopped, 0);
        within(d, &reactor);
        assert_eq!((rec.borrow().started, rec.borrow().stopped), (1, 1));
        // A second stop does nothing more.
        within(port.stop_listening(), &reactor);
        assert_eq!(rec.borrow().stopped, 1);
        assert!(port.transport().is_closed());
    });
}

#[test]
fn test_rebind() {
    bounded(LIMIT, || {
        let reactor = Reactor::new().unwrap();
        let (rec, _) = recorder(1);
        let port = reactor.listen_udp(LOCAL.parse().unwrap(), rec).unwrap();
        let addr = port.local_addr();
        within(port.stop_listening(), &reactor);
        let (rec, d) = recorder(1);
        let port = reactor.listen_udp(addr, rec.clone()).unwrap();
        assert_eq!(port.local_addr(), addr);
        std_peer(LOCAL).send_to(b"again", addr).unwrap();
        within(d, &reactor);
        assert_eq!(rec.borrow().got[0].0, b"again");
    });
}

#[test]
fn test_bind_error() {
    let reactor = Reactor::new().unwrap();
    let (rec, _) = recorder(1);
    let port = reactor.listen_udp(LOCAL.parse().unwrap(), rec).unwrap();
    let (rec2, _) = recorder(1);
    let err = reactor
        .listen_udp(port.local_addr(), rec2.clone())
        .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
    assert_eq!(rec2.borrow().started, 0);
    assert_eq!(reactor.stats().sources, 1);
}

#[test]
fn test_send_packets() {
    bounded(LIMIT, || {
        let reactor = Reactor::new().unwrap();
        let (server, got_two) = recorder(2);
        let server_port = reactor
            .listen_udp(LOCAL.parse().unwrap(), server.clone())
            .unwrap();
        let (client, echoed) = recorder(2);
        let client_port = reactor
            .listen_udp(LOCAL.parse().unwrap(), client.clone())
            .unwrap();
        server.borrow_mut().echo = true;
        let to = server_port.local_addr();
        let t = client_port.transport();
        t.write_to(b"hello", to).unwrap();
        // Connected mode: write() goes to the peer.
        t.connect(to).unwrap();
        assert_eq!(t.connected_addr(), Some(to));
        t.write(b"a datagram").unwrap();
        within(got_two, &reactor);
        within(echoed, &reactor);
        let from = client_port.local_addr();
        assert_eq!(
            server.borrow().got,
            vec![(b"hello".to_vec(), from), (b"a datagram".to_vec(), from)]
        );
        assert_eq!(
            client.borrow().got,
            vec![(b"hello".to_vec(), to), (b"a datagram".to_vec(), to)]
        );
    });
}

#[test]
fn test_max_size_datagrams_arrive_whole() {
    bounded(LIMIT, || {
        let reactor = Reactor::new().unwrap();
        let (rec, d) = recorder(3);
        let port = reactor
            .listen_udp(LOCAL.parse().unwrap(), rec.clone())
            .unwrap();
        let peer = std_peer(LOCAL);
        let sizes = [65_507usize, 1, 40_000];
        for (i, &n) in sizes.iter().enumerate() {
            let data: Vec<u8> = (0..n).map(|j| (j * 7 + i) as u8).collect();
            peer.send_to(&data, port.local_addr()).unwrap();
        }
        within(d, &reactor);
        let got = &rec.borrow().got;
        for (i, &n) in sizes.iter().enumerate() {
            let data: Vec<u8> = (0..n).map(|j| (j * 7 + i) as u8).collect();
            assert_eq!(got[i].0.len(), n);
            assert!(got[i].0 == data, "datagram {i} changed");
            assert_eq!(got[i].1, peer.local_addr().unwrap());
        }
        // And the other way: 65,507 bytes from the port to a plain socket.
        let big = vec![0xa5u8; 65_507];
        port.transport()
            .write_to(&big, peer.local_addr().unwrap())
            .unwrap();
        let mut buf = vec![0u8; 70_000];
        let (n, from) = peer.recv_from(&mut buf).unwrap();
        assert_eq!((n, from), (65_507, port.local_addr()));
        assert!(buf[..n] == big[..]);
    });
}

#[test]
fn test_too_large_datagram_is_an_error() {
    let reactor = Reactor::new().unwrap();
    let (rec, _) = recorder(1);
    let port = reactor.listen_udp(LOCAL.parse().unwrap(), rec).unwrap();
    let err = port
        .transport()
        .write_to(&vec![0u8; 65_508], port.local_addr())
        .unwrap_err();
    assert_eq!(err.raw_os_error(), Some(90), "EMSGSIZE, got {err}");
}

#[test]
fn test_burst_all_arrive() {
    // More than one readiness event's budget (32), few enough for the socket buffer.
    const N: usize = 80;
    bounded(LIMIT, || {
        let reactor = Reactor::new().unwrap();
        let (rec, d) = recorder(N);
        let port = reactor
            .listen_udp(LOCAL.parse().unwrap(), rec.clone())
            .unwrap();
        let peer = std_peer(LOCAL);
        for i in 0..N {
            peer.send_to(format!("{i:04}").as_bytes(), port.local_addr())
                .unwrap();
        }
        within(d, &reactor);
        let got: Vec<String> = rec
            .borrow()
            .got
            .iter()
            .map(|(d, _)| String::from_utf8(d.clone()).unwrap())
            .collect();
        let want: Vec<String> = (0..N).map(|i| format!("{i:04}")).collect();
        assert_eq!(got, want);
    });
}

#[test]
fn test_connection_refused() {
    bounded(LIMIT, || {
        let reactor = Reactor::new().unwrap();
        let (rec, _) = recorder(1);
        let (refused, r) = Deferred::pending();
        rec.borrow_mut().on_refused = Some(r);
        let port = reactor
            .listen_udp(LOCAL.parse().unwrap(), rec.clone())
            .unwrap();
        // A port with nothing bound to it.
        let free = UdpSocket::bind(LOCAL).unwrap().local_addr().unwrap();
        let t = port.transport();
        t.connect(free).unwrap();
        t.write(b"anyone?").unwrap();
        within(refused, &reactor);
        assert_eq!(rec.borrow().refused, 1);
        // The port stays open and usable.
        assert!(!t.is_closed());
        assert_eq!(reactor.stats().sources, 1);
    });
}

#[test]
fn test_bad_connect() {
    let reactor = Reactor::new().unwrap();
    let (rec, _) = recorder(1);
    let port = reactor.listen_udp(LOCAL.parse().unwrap(), rec).unwrap();
    let t = port.transport();
    let a: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let b: SocketAddr = "127.0.0.1:10".parse().unwrap();
    assert_eq!(
        t.write(b"x").unwrap_err().kind(),
        io::ErrorKind::NotConnected
    );
    t.connect(a).unwrap();
    // Connecting twice is refused, as in Twisted.
    assert_eq!(
        t.connect(b).unwrap_err().kind(),
        io::ErrorKind::InvalidInput
    );
    assert_eq!(t.connected_addr(), Some(a));
    // Connected: only the peer can be written to.
    assert_eq!(
        t.write_to(b"x", b).unwrap_err().kind(),
        io::ErrorKind::InvalidInput
    );
    // An IPv4 port cannot connect to an IPv6 address.
    let (rec, _) = recorder(1);
    let port = reactor.listen_udp(LOCAL.parse().unwrap(), rec).unwrap();
    assert!(port
        .transport()
        .connect("[::1]:9".parse().unwrap())
        .is_err());
    assert_eq!(port.transport().connected_addr(), None);
}

#[test]
fn test_datagram_received_error() {
    capture_logs();
    bounded(LIMIT, || {
        let reactor = Reactor::new().unwrap();
        let (rec, d) = recorder(1);
        let port = reactor
            .listen_udp(LOCAL.parse().unwrap(), rec.clone())
            .unwrap();
        let peer = std_peer(LOCAL);
        peer.send_to(b"panic udp-marker-7f3a", port.local_addr())
            .unwrap();
        peer.send_to(b"err udp-marker-91c2", port.local_addr())
            .unwrap();
        peer.send_to(b"still here", port.local_addr()).unwrap();
        within(d, &reactor);
        assert_eq!(rec.borrow().got[0].0, b"still here");
        let panics = logged("udp-marker-7f3a");
        assert_eq!(panics.len(), 1, "{panics:?}");
        assert_eq!(panics[0].0, log::Level::Error);
        let errors = logged("udp-marker-91c2");
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].0, log::Level::Error);
        assert!(!port.transport().is_closed());
    });
}

#[test]
fn test_old_address() {
    // Twisted: getHost() gives an address object with the real port.
    let reactor = Reactor::new().unwrap();
    let (rec, _) = recorder(1);
    let port = reactor
        .listen_udp(LOCAL.parse().unwrap(), rec.clone())
        .unwrap();
    let addr = port.local_addr();
    assert!(addr.is_ipv4() && addr.ip().is_loopback());
    assert_ne!(addr.port(), 0);
    let seen = rec.borrow().transport.as_ref().unwrap().local_addr();
    assert_eq!(seen, addr);
    assert!(format!("{port:?}").contains(&addr.to_string()));
}

#[test]
fn test_ipv6_loopback() {
    bounded(LIMIT, || {
        let reactor = Reactor::new().unwrap();
        let (rec, d) = recorder(1);
        rec.borrow_mut().echo = true;
        let port = reactor
            .listen_udp("[::1]:0".parse().unwrap(), rec.clone())
            .unwrap();
        assert!(port.local_addr().is_ipv6());
        let peer = std_peer("[::1]:0");
        peer.send_to(b"six", port.local_addr()).unwrap();
        within(d, &reactor);
        assert_eq!(rec.borrow().got[0].1, peer.local_addr().unwrap());
        let mut buf = [0u8; 8];
        assert_eq!(peer.recv_from(&mut buf).unwrap(), (3, port.local_addr()));
        assert_eq!(&buf[..3], b"six");
    });
}

#[test]
fn test_closed_at_shutdown() {
    bounded(LIMIT, || {
        let reactor = Reactor::new().unwrap();
        let (rec, _) = recorder(1);
        let port = reactor
            .listen_udp(LOCAL.parse().unwrap(), rec.clone())
            .unwrap();
        let r = reactor.clone();
        reactor.call_soon(move || r.stop().unwrap());
        reactor.run().unwrap();
        assert_eq!(rec.borrow().stopped, 1);
        assert_eq!(reactor.stats().sources, 0);
        let err = port
            .transport()
            .write_to(b"x", "127.0.0.1:9".parse().unwrap())
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotConnected);
    });
}

#[test]
fn test_stop_listening_from_the_protocol() {
    /// Closes its own port on the first datagram; fires its resolver in stop_protocol.
    struct Closer {
        transport: Option<DatagramTransportRef>,
        got: usize,
        stopped: Option<Resolver<usize>>,
    }
    impl DatagramProtocol for Closer {
        fn start_protocol(&mut self, t: DatagramTransportRef) {
            self.transport = Some(t);
        }
        fn datagram_received(&mut self, _: &[u8], _: SocketAddr) -> Result<(), Failure> {
            self.got += 1;
            drop(self.transport.as_ref().unwrap().stop_listening());
            Ok(())
        }
        fn stop_protocol(&mut self) {
            let _ = self.stopped.take().unwrap().callback(self.got);
        }
    }
    bounded(LIMIT, || {
        let reactor = Reactor::new().unwrap();
        let (d, r) = Deferred::pending();
        let closer = Closer {
            transport: None,
            got: 0,
            stopped: Some(r),
        };
        let port = reactor.listen_udp(LOCAL.parse().unwrap(), closer).unwrap();
        let peer = std_peer(LOCAL);
        // The second datagram is never delivered: the port closed after the first.
        peer.send_to(b"1", port.local_addr()).unwrap();
        peer.send_to(b"2", port.local_addr()).unwrap();
        assert_eq!(within(d, &reactor), 1);
        assert_eq!(reactor.stats().sources, 0);
    });
}
