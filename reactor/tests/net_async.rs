//! Async sockets in tasks, over real loopback sockets: the article's UDP echo server,
//! TCP accept/connect echo, EOF, a large transfer, deregistration on drop.

mod support;

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use ropewalk_reactor::deferred::{Deferred, Failure};
use ropewalk_reactor::net::{AsyncReadExt, AsyncWriteExt, TcpListener, TcpStream, UdpSocket};
use ropewalk_reactor::Reactor;
use support::bounded;

const LIMIT: Duration = Duration::from_secs(20);

fn local() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

fn within<T: 'static>(d: Deferred<T>, reactor: &Reactor) -> T {
    d.add_timeout(LIMIT, reactor).wait().unwrap()
}

fn io_kind(f: &Failure) -> io::ErrorKind {
    f.downcast_ref::<io::Error>()
        .unwrap_or_else(|| panic!("not an io::Error: {f}"))
        .kind()
}

#[test]
fn udp_echo_server_from_the_article() {
    const REQUESTS: usize = 20;
    bounded(LIMIT, || {
        let reactor = Reactor::new().unwrap();
        let sock = UdpSocket::bind(&reactor, local()).unwrap();
        let addr = sock.local_addr().unwrap();
        let server = reactor.spawn(async move {
            let mut buf = [0u8; 1500];
            for _ in 0..REQUESTS {
                let (n, addr) = sock.recv_from(&mut buf).await?;
                assert!(buf[..n].starts_with(b"request"));
                sock.send_to(b"response", addr).await?;
            }
            Ok::<_, Failure>(())
        });
        let client = std::thread::spawn(move || {
            let c = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            c.set_read_timeout(Some(LIMIT)).unwrap();
            let mut buf = [0u8; 64];
            for i in 0..REQUESTS {
                c.send_to(format!("request {i}").as_bytes(), addr).unwrap();
                let (n, from) = c.recv_from(&mut buf).unwrap();
                assert_eq!((&buf[..n], from), (&b"response"[..], addr));
            }
        });
        within(server, &reactor);
        client.join().unwrap();
        assert_eq!(reactor.stats().sources, 0);
    });
}

#[test]
fn udp_connected_send_recv_and_refused() {
    bounded(LIMIT, || {
        let reactor = Reactor::new().unwrap();
        let a = UdpSocket::bind(&reactor, local()).unwrap();
        let b = UdpSocket::bind(&reactor, local()).unwrap();
        a.connect(b.local_addr().unwrap()).unwrap();
        b.connect(a.local_addr().unwrap()).unwrap();
        let free = std::net::UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let lonely = UdpSocket::bind(&reactor, local()).unwrap();
        lonely.connect(free).unwrap();
        let d = reactor.spawn(async move {
            // b waits first: the datagram arrives while it is parked.
            let recv = async {
                let mut buf = [0u8; 16];
                let n = b.recv(&mut buf).await?;
                Ok::<_, io::Error>(buf[..n].to_vec())
            };
            let send = async { a.send(b"connected").await };
            let (got, sent) = futures::join!(recv, send);
            assert_eq!(sent?, 9);
            lonely.send(b"anyone?").await?;
            let mut buf = [0u8; 16];
            let refused = lonely.recv(&mut buf).await.unwrap_err();
            Ok::<_, Failure>((got?, refused.kind()))
        });
        let (got, refused) = within(d, &reactor);
        assert_eq!(got, b"connected");
        assert_eq!(refused, io::ErrorKind::ConnectionRefused);
    });
}

#[test]
fn udp_two_tasks_wait_on_one_socket() {
    bounded(LIMIT, || {
        let reactor = Reactor::new().unwrap();
        let sock = Rc::new(UdpSocket::bind(&reactor, local()).unwrap());
        let addr = sock.local_addr().unwrap();
        let waiter = |s: Rc<UdpSocket>| async move {
            let mut buf = [0u8; 16];
            let (n, _) = s.recv_from(&mut buf).await?;
            Ok::<_, Failure>(buf[..n].to_vec())
        };
        let d1 = reactor.spawn(waiter(sock.clone()));
        let d2 = reactor.spawn(waiter(sock.clone()));
        let peer = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        peer.send_to(b"one", addr).unwrap();
        peer.send_to(b"two", addr).unwrap();
        let mut got = vec![within(d1, &reactor), within(d2, &reactor)];
        got.sort();
        assert_eq!(got, vec![b"one".to_vec(), b"two".to_vec()]);
    });
}

#[test]
fn udp_ipv6_loopback() {
    bounded(LIMIT, || {
        let reactor = Reactor::new().unwrap();
        let sock = UdpSocket::bind(&reactor, "[::1]:0".parse().unwrap()).unwrap();
        let addr = sock.local_addr().unwrap();
        assert!(addr.is_ipv6());
        let server = reactor.spawn(async move {
            let mut buf = [0u8; 64];
            let (n, from) = sock.recv_from(&mut buf).await?;
            sock.send_to(&buf[..n], from).await?;
            Ok::<_, Failure>(())
        });
        let c = std::net::UdpSocket::bind("[::1]:0").unwrap();
        c.set_read_timeout(Some(LIMIT)).unwrap();
        c.send_to(b"six", addr).unwrap();
        within(server, &reactor);
        let mut buf = [0u8; 8];
        assert_eq!(c.recv_from(&mut buf).unwrap(), (3, addr));
    });
}

/// Accepts one connection and echoes it until EOF, then closes.
fn echo_once(reactor: &Reactor, listener: TcpListener) -> Deferred<u64> {
    reactor.spawn(async move {
        let (stream, _peer) = listener.accept().await?;
        stream.set_nodelay(true)?;
        let n = futures::io::copy(&mut &stream, &mut &stream).await?;
        (&stream).close().await?;
        Ok::<_, Failure>(n)
    })
}

#[test]
fn tcp_accept_connect_echo() {
    bounded(LIMIT, || {
        let reactor = Reactor::new().unwrap();
        let listener = TcpListener::bind(&reactor, local()).unwrap();
        let addr = listener.local_addr().unwrap();
        let server = echo_once(&reactor, listener);
        let r = reactor.clone();
        let client = reactor.spawn(async move {
            let mut stream = TcpStream::connect(&r, addr).await?;
            assert_eq!(stream.peer_addr()?, addr);
            assert_ne!(stream.local_addr()?.port(), 0);
            stream.write_all(b"hello, ").await?;
            stream.write_all(b"world").await?;
            stream.close().await?;
            let mut back = String::new();
            stream.read_to_string(&mut back).await?;
            Ok::<_, Failure>(back)
        });
        assert_eq!(within(client, &reactor), "hello, world");
        assert_eq!(within(server, &reactor), 12);
        assert_eq!(reactor.stats().sources, 0);
    });
}

#[test]
fn tcp_accept_from_a_std_client_thread() {
    bounded(LIMIT, || {
        let reactor = Reactor::new().unwrap();
        let listener = TcpListener::bind(&reactor, local()).unwrap();
        let addr = listener.local_addr().unwrap();
        let server = echo_once(&reactor, listener);
        let client = std::thread::spawn(move || {
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            s.write_all(b"from a thread").unwrap();
            s.shutdown(std::net::Shutdown::Write).unwrap();
            let mut back = Vec::new();
            s.read_to_end(&mut back).unwrap();
            back
        });
        assert_eq!(within(server, &reactor), 13);
        assert_eq!(client.join().unwrap(), b"from a thread");
    });
}

#[test]
fn tcp_eof_when_the_peer_closes() {
    bounded(LIMIT, || {
        let reactor = Reactor::new().unwrap();
        let listener = TcpListener::bind(&reactor, local()).unwrap();
        let addr = listener.local_addr().unwrap();
        let server = reactor.spawn(async move {
            let (stream, peer) = listener.accept().await?;
            drop(stream);
            Ok::<_, Failure>(peer)
        });
        let r = reactor.clone();
        let client = reactor.spawn(async move {
            let mut stream = TcpStream::connect(&r, addr).await?;
            let mut buf = [0u8; 16];
            let n = stream.read(&mut buf).await?;
            Ok::<_, Failure>((n, stream.local_addr()?))
        });
        let (n, client_addr) = within(client, &reactor);
        assert_eq!(n, 0, "EOF reads zero bytes");
        assert_eq!(within(server, &reactor), client_addr);
    });
}

#[test]
fn tcp_large_transfer_is_byte_exact() {
    const SIZE: usize = 4 * 1024 * 1024;
    bounded(LIMIT, || {
        let reactor = Reactor::new().unwrap();
        let listener = TcpListener::bind(&reactor, local()).unwrap();
        let addr = listener.local_addr().unwrap();
        let server = echo_once(&reactor, listener);
        let data: Vec<u8> = (0..SIZE).map(|i| (i % 251) as u8).collect();
        let expect = data.clone();
        let r = reactor.clone();
        let client = reactor.spawn(async move {
            let stream = TcpStream::connect(&r, addr).await?;
            // Write and read at once: the echo would stall a writer that never reads.
            let write = async {
                (&stream).write_all(&data).await?;
                (&stream).close().await
            };
            let read = async {
                let mut back = Vec::with_capacity(SIZE);
                (&stream).read_to_end(&mut back).await.map(|_| back)
            };
            let (w, back) = futures::join!(write, read);
            w?;
            Ok::<_, Failure>(back?)
        });
        let back = within(client, &reactor);
        assert_eq!(back.len(), SIZE);
        assert!(back == expect, "the echo differs");
        assert_eq!(within(server, &reactor), SIZE as u64);
    });
}

#[test]
fn tcp_connect_refused() {
    bounded(LIMIT, || {
        let reactor = Reactor::new().unwrap();
        let free = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let r = reactor.clone();
        let d = reactor.spawn(async move {
            TcpStream::connect(&r, free).await?;
            Ok::<_, Failure>(())
        });
        let f = d.add_timeout(LIMIT, &reactor).wait().unwrap_err();
        assert_eq!(io_kind(&f), io::ErrorKind::ConnectionRefused);
        assert!(f.to_string().contains(&free.to_string()), "{f}");
        assert_eq!(reactor.stats().sources, 0);
    });
}

/// The port of a loopback address nothing listens on.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn tcp_connect_by_name_and_by_host_port_pair() {
    bounded(LIMIT, || {
        let reactor = Reactor::new().unwrap();
        let listener = TcpListener::bind(&reactor, local()).unwrap();
        let addr = listener.local_addr().unwrap();
        let port = addr.port();
        let server = reactor.spawn(async move {
            let mut peers = Vec::new();
            for _ in 0..3 {
                let (stream, peer) = listener.accept().await?;
                let mut line = Vec::new();
                (&stream).read_to_end(&mut line).await?;
                peers.push((peer, line));
            }
            Ok::<_, Failure>(peers)
        });
        let r = reactor.clone();
        let client = reactor.spawn(async move {
            // `localhost` may resolve to ::1 first, where nothing listens: the next
            // address is tried.
            let by_name = TcpStream::connect(&r, format!("localhost:{port}")).await?;
            let by_pair = TcpStream::connect(&r, ("localhost", port)).await?;
            let by_ip_pair = TcpStream::connect(&r, ("127.0.0.1", port)).await?;
            let mut locals = Vec::new();
            for (mut s, what) in [(by_name, "name"), (by_pair, "pair"), (by_ip_pair, "ip")] {
                assert_eq!(s.peer_addr()?, addr);
                locals.push(s.local_addr()?);
                s.write_all(what.as_bytes()).await?;
                s.close().await?;
            }
            Ok::<_, Failure>(locals)
        });
        let locals = within(client, &reactor);
        let mut peers = within(server, &reactor);
        peers.sort();
        let mut expected: Vec<_> = locals
            .into_iter()
            .zip([&b"name"[..], b"pair", b"ip"])
            .map(|(a, w)| (a, w.to_vec()))
            .collect();
        expected.sort();
        assert_eq!(peers, expected);
        assert_eq!(reactor.stats().sources, 0);
    });
}

#[test]
fn tcp_connect_by_name_refused_names_every_address() {
    bounded(LIMIT, || {
        let reactor = Reactor::new().unwrap();
        let target = format!("localhost:{}", free_port());
        let r = reactor.clone();
        let t = target.clone();
        let d = reactor.spawn(async move {
            TcpStream::connect(&r, t).await?;
            Ok::<_, Failure>(())
        });
        let f = d.add_timeout(LIMIT, &reactor).wait().unwrap_err();
        assert_eq!(io_kind(&f), io::ErrorKind::ConnectionRefused, "{f}");
        let msg = f.to_string();
        assert!(msg.contains(&target), "{msg}");
        let port = target.rsplit(':').next().unwrap();
        assert!(msg.contains(&format!("127.0.0.1:{port}")), "{msg}");
        let stats = reactor.stats();
        assert_eq!((stats.sources, stats.pending_timers), (0, 0));
    });
}

#[test]
fn tcp_connect_lookup_error_names_the_target() {
    bounded(LIMIT, || {
        let reactor = Reactor::new().unwrap();
        let r = reactor.clone();
        // A port that is not a number fails the lookup at once, without asking DNS.
        let d = reactor.spawn(async move {
            TcpStream::connect_timeout(&r, "localhost:notaport", LIMIT).await?;
            Ok::<_, Failure>(())
        });
        let f = d.add_timeout(LIMIT, &reactor).wait().unwrap_err();
        assert_eq!(io_kind(&f), io::ErrorKind::InvalidInput, "{f}");
        assert!(
            f.to_string().contains("cannot resolve localhost:notaport"),
            "{f}"
        );
        let stats = reactor.stats();
        assert_eq!((stats.sources, stats.pending_timers), (0, 0));
    });
}

#[test]
fn tcp_connect_timeout_against_a_full_backlog() {
    bounded(LIMIT, || {
        let (_listener, addr, _fill) = support::net::black_hole();
        let reactor = Reactor::new().unwrap();
        let timeout = Duration::from_millis(200);
        let r = reactor.clone();
        let started = std::time::Instant::now();
        let d = reactor.spawn(async move {
            TcpStream::connect_timeout(&r, addr, timeout).await?;
            Ok::<_, Failure>(())
        });
        let f = d.add_timeout(LIMIT, &reactor).wait().unwrap_err();
        let took = started.elapsed();
        assert_eq!(io_kind(&f), io::ErrorKind::TimedOut, "{f}");
        assert!(took >= timeout, "timed out early, after {took:?}");
        let msg = f.to_string();
        assert!(
            msg.contains(&addr.to_string()) && msg.contains("200ms"),
            "{msg}"
        );
        // The abandoned attempt's socket left the poller.
        let stats = reactor.stats();
        assert_eq!((stats.sources, stats.pending_timers), (0, 0));
    });
}

#[test]
fn tcp_connect_timeout_that_connects_leaves_no_timer() {
    bounded(LIMIT, || {
        let reactor = Reactor::new().unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let r = reactor.clone();
        let d = reactor.spawn(async move {
            let s = TcpStream::connect_timeout(&r, ("localhost", port), LIMIT).await?;
            Ok::<_, Failure>(s.peer_addr()?.port())
        });
        assert_eq!(within(d, &reactor), port);
        let stats = reactor.stats();
        assert_eq!((stats.sources, stats.pending_timers), (0, 0));
    });
}

#[test]
fn dropping_sockets_deregisters_them() {
    bounded(LIMIT, || {
        let reactor = Reactor::new().unwrap();
        let listener = TcpListener::bind(&reactor, local()).unwrap();
        let udp = UdpSocket::bind(&reactor, local()).unwrap();
        // Connected elsewhere, so that no connection waits on `listener`.
        let other = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let std_stream = std::net::TcpStream::connect(other.local_addr().unwrap()).unwrap();
        let stream = TcpStream::from_std(&reactor, std_stream).unwrap();
        assert_eq!(reactor.stats().sources, 3);
        drop(stream);
        drop(udp);
        assert_eq!(reactor.stats().sources, 1);
        // A task parked in accept(): cancelling it drops the listener.
        let d = reactor.spawn(async move {
            listener.accept().await?;
            Ok::<_, Failure>(())
        });
        reactor.iterate(Duration::ZERO);
        assert_eq!(reactor.stats().sources, 1);
        d.cancel();
        assert_eq!(reactor.stats().sources, 0);
        assert_eq!(reactor.stats().live_tasks, 0);
    });
}

#[test]
fn reactor_shutdown_wakes_waiting_tasks() {
    bounded(LIMIT, || {
        let reactor = Reactor::new().unwrap();
        let sock = UdpSocket::bind(&reactor, local()).unwrap();
        let mut d = reactor.spawn(async move {
            let mut buf = [0u8; 16];
            sock.recv_from(&mut buf).await?;
            Ok::<_, Failure>(())
        });
        let r = reactor.clone();
        reactor.call_soon(move || r.stop().unwrap());
        reactor.run().unwrap();
        assert_eq!(reactor.stats().sources, 0);
        let f = d.try_result().expect("woken at shutdown").unwrap_err();
        assert_eq!(io_kind(&f), io::ErrorKind::NotConnected);
    });
}
