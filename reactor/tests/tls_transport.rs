//! TLS as a transport over loopback: echo, close_notify, half-close, flow control, and the
//! handshake's failures (certificates, ALPN, garbage, silence, resets), each with a typed
//! error and no hang. Certificates come from a CA made at test time (`support/tls.rs`).

mod support;

use std::cell::{Cell, RefCell};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use ropewalk_reactor::deferred::Failure;
use ropewalk_reactor::tls::{rustls, TlsClientBuilder, TlsError, TlsOptions, TlsServerBuilder};
use ropewalk_reactor::{
    Address, ConnectionError, Producer, Reactor, TransportRef, DEFAULT_HIGH_WATER,
};
use support::net::{run_until, Checksum, Events, Probe};
use support::tls::{client, pki, server, TestCa};

const WAIT: Duration = Duration::from_secs(20);

/// A TLS server on 127.0.0.1 whose connections run `probe(events)`; the events of each
/// connection, in order of arrival.
fn serve(
    reactor: &Reactor,
    config: Arc<rustls::ServerConfig>,
    options: &TlsOptions,
    probe: impl Fn(&Rc<Events>) -> Probe + 'static,
) -> (SocketAddr, Rc<RefCell<Vec<Rc<Events>>>>) {
    let conns = Rc::new(RefCell::new(Vec::new()));
    let c = conns.clone();
    let port = reactor
        .listen_tls_with(
            "127.0.0.1:0".parse().unwrap(),
            move |_: &Address| {
                let ev = Events::new();
                c.borrow_mut().push(ev.clone());
                Some(probe(&ev))
            },
            config,
            options,
        )
        .unwrap();
    (port.local_addr().inet().unwrap(), conns)
}

/// Connects with `config` to `addr` as `name`; the client's events, once the handshake
/// is done, or the failure.
fn connect(
    reactor: &Reactor,
    addr: SocketAddr,
    name: &str,
    config: Arc<rustls::ClientConfig>,
    options: &TlsOptions,
    probe: impl FnOnce(&Rc<Events>) -> Probe + 'static,
) -> Result<Rc<Events>, Failure> {
    let ev = Events::new();
    let e = ev.clone();
    let probe = RefCell::new(Some(probe));
    let d = reactor.connect_tls_with(
        addr,
        name,
        move |_: &Address| probe.borrow_mut().take().map(|p| p(&e)),
        config,
        options,
    );
    let connected = d.wait()?;
    assert_eq!(
        ev.made.get(),
        1,
        "connection_made before the Deferred fires"
    );
    drop(connected);
    Ok(ev)
}

/// The failure of a handshake between a server with `server` and a client with `client`
/// that asks for `localhost`.
fn handshake_failure(
    server: Arc<rustls::ServerConfig>,
    client: Arc<rustls::ClientConfig>,
) -> Failure {
    let reactor = Reactor::new().unwrap();
    let opts = TlsOptions::default();
    let (addr, _conns) = serve(&reactor, server, &opts, Probe::new);
    refused(connect(
        &reactor,
        addr,
        "localhost",
        client,
        &opts,
        Probe::new,
    ))
}

/// The failure of a connect that must fail.
fn refused(r: Result<Rc<Events>, Failure>) -> Failure {
    match r {
        Ok(_) => panic!("the handshake succeeded"),
        Err(f) => f,
    }
}

fn tls_error(f: &Failure) -> &TlsError {
    f.downcast_ref::<TlsError>()
        .unwrap_or_else(|| panic!("not a TlsError: {f}"))
}

/// Bytes go both ways through a handshake and an echo; `lose_connection` sends
/// close_notify, which the server sees as its peer's EOF, and both ends close cleanly.
#[test]
fn echo_both_ways_then_clean_close() {
    let reactor = Reactor::new().unwrap();
    let (ca, server) = pki();
    let opts = TlsOptions::default();
    let (addr, conns) = serve(&reactor, server, &opts, |ev| Probe::new(ev).echo());
    let client = connect(&reactor, addr, "localhost", client(&ca), &opts, Probe::new).unwrap();
    client.transport().write(b"hello over tls\n");
    run_until(&reactor, WAIT, "echo", || client.received() == 15);
    assert_eq!(&client.data.borrow()[..], b"hello over tls\n");
    let srv = conns.borrow()[0].clone();
    assert_eq!(srv.made.get(), 1);
    assert_eq!(srv.transport().peer_addr(), client.transport().local_addr());

    client.transport().lose_connection();
    run_until(&reactor, WAIT, "both ends closed", || {
        client.lost_count() == 1 && srv.lost_count() == 1
    });
    assert_eq!(client.reason_kind(), "Done");
    assert_eq!(srv.reason_kind(), "Done");
    assert_eq!(srv.eofs.get(), 1, "close_notify is the peer's EOF");
}

/// An IP address works as the server name (no SNI is sent for it; the certificate names
/// it).
#[test]
fn ip_address_as_server_name() {
    let reactor = Reactor::new().unwrap();
    let (ca, server) = pki();
    let opts = TlsOptions::default();
    let (addr, _conns) = serve(&reactor, server, &opts, |ev| Probe::new(ev).echo());
    let client = connect(&reactor, addr, "127.0.0.1", client(&ca), &opts, Probe::new).unwrap();
    client.transport().write(b"x");
    run_until(&reactor, WAIT, "echo", || client.received() == 1);
}

/// A server's `lose_connection` right after a large write: every byte arrives, then the
/// close_notify (the client's `eof_received`), then a clean close.
#[test]
fn lose_connection_sends_queued_data_then_close_notify() {
    let reactor = Reactor::new().unwrap();
    let (ca, server) = pki();
    let opts = TlsOptions::default();
    let big = Rc::new(vec![7u8; 1 << 20]);
    let b = big.clone();
    let (addr, conns) = serve(&reactor, server, &opts, move |ev| {
        let b = b.clone();
        Probe::new(ev).on_made(move |t| {
            t.write(&b);
            t.lose_connection();
            t.write(b"dropped: after lose_connection");
        })
    });
    let client = connect(&reactor, addr, "localhost", client(&ca), &opts, Probe::new).unwrap();
    run_until(&reactor, WAIT, "client closed", || client.lost_count() == 1);
    assert_eq!(client.received(), big.len());
    assert!(client.data.borrow().iter().all(|&b| b == 7));
    assert_eq!(client.eofs.get(), 1, "close_notify came");
    assert_eq!(client.reason_kind(), "Done");
    let srv = conns.borrow()[0].clone();
    run_until(&reactor, WAIT, "server closed", || srv.lost_count() == 1);
    assert_eq!(srv.reason_kind(), "Done");
}

/// `abort_connection` sends no close_notify: the peer's connection is lost, not done.
#[test]
fn abort_connection_is_not_a_clean_close() {
    let reactor = Reactor::new().unwrap();
    let (ca, server) = pki();
    let opts = TlsOptions::default();
    let (addr, conns) = serve(&reactor, server, &opts, |ev| {
        Probe::new(ev).on_data(|t, _| {
            t.abort_connection();
            Ok(())
        })
    });
    let client = connect(&reactor, addr, "localhost", client(&ca), &opts, Probe::new).unwrap();
    client.transport().write(b"go");
    run_until(&reactor, WAIT, "client lost", || client.lost_count() == 1);
    assert_eq!(client.reason_kind(), "Lost");
    assert_eq!(client.eofs.get(), 0, "no close_notify");
    let srv = conns.borrow()[0].clone();
    run_until(&reactor, WAIT, "server lost", || srv.lost_count() == 1);
    assert_eq!(srv.reason_kind(), "Aborted");
}

/// Half-close: the client's `half_close` sends close_notify; the server keeps the
/// connection open for writing, answers, and closes; the client reads the answer.
#[test]
fn half_close_lets_the_peer_answer() {
    let reactor = Reactor::new().unwrap();
    let (ca, server) = pki();
    let opts = TlsOptions::default();
    let (addr, conns) = serve(&reactor, server, &opts, |ev| {
        Probe::new(ev).on_eof(|t| {
            t.write(b"bye");
            t.lose_connection();
            true
        })
    });
    let client = connect(&reactor, addr, "localhost", client(&ca), &opts, Probe::new).unwrap();
    client.transport().write(b"question");
    client.transport().half_close();
    client.transport().write(b"dropped: after half_close");
    run_until(&reactor, WAIT, "client closed", || client.lost_count() == 1);
    assert_eq!(&client.data.borrow()[..], b"bye");
    assert_eq!(client.reason_kind(), "Done");
    let srv = conns.borrow()[0].clone();
    run_until(&reactor, WAIT, "server closed", || srv.lost_count() == 1);
    assert_eq!(&srv.data.borrow()[..], b"question");
    assert_eq!(srv.eofs.get(), 1);
    assert_eq!(srv.reason_kind(), "Done");
}

/// A push producer writing over TLS to a client that stops reading: it is paused once the
/// ciphertext queued passes the high-water mark, resumed when the client reads again,
/// and every byte arrives in order.
#[test]
fn slow_reader_pauses_and_resumes_the_producer() {
    struct Source {
        me: Weak<Source>,
        reactor: Reactor,
        t: TransportRef,
        total: usize,
        sent: Cell<usize>,
        paused: Cell<bool>,
        pauses: Cell<usize>,
        resumes: Cell<usize>,
        max_queued: Cell<usize>,
    }
    impl Source {
        fn produce(&self) {
            let mut chunk = vec![0u8; 16 * 1024];
            while !self.paused.get() && self.sent.get() < self.total {
                let n = chunk.len().min(self.total - self.sent.get());
                support::net::fill(&mut chunk[..n], self.sent.get() as u64);
                self.sent.set(self.sent.get() + n);
                self.t.write(&chunk[..n]);
                self.max_queued
                    .set(self.max_queued.get().max(self.t.write_buffer_len()));
            }
            if self.sent.get() == self.total {
                self.t.unregister_producer();
                self.t.lose_connection();
            }
        }
    }
    impl Producer for Source {
        fn pause_producing(&self) {
            self.paused.set(true);
            self.pauses.set(self.pauses.get() + 1);
        }
        fn resume_producing(&self) {
            self.paused.set(false);
            self.resumes.set(self.resumes.get() + 1);
            let me = self.me.clone();
            self.reactor.call_soon(move || {
                if let Some(s) = me.upgrade() {
                    s.produce();
                }
            });
        }
        fn stop_producing(&self) {}
    }

    let reactor = Reactor::new().unwrap();
    let (ca, server) = pki();
    let opts = TlsOptions::default();
    const TOTAL: usize = 8 << 20;
    let source: Rc<RefCell<Option<Rc<Source>>>> = Rc::default();
    let s = source.clone();
    let r = reactor.clone();
    let (addr, _conns) = serve(&reactor, server, &opts, move |ev| {
        let s = s.clone();
        let r = r.clone();
        Probe::new(ev).on_made(move |t| {
            let src = Rc::new_cyclic(|me| Source {
                me: me.clone(),
                reactor: r.clone(),
                t: t.clone(),
                total: TOTAL,
                sent: Cell::new(0),
                paused: Cell::new(false),
                pauses: Cell::new(0),
                resumes: Cell::new(0),
                max_queued: Cell::new(0),
            });
            t.register_producer(src.clone(), true);
            *s.borrow_mut() = Some(src.clone());
            src.produce();
        })
    });
    let sum = Rc::new(RefCell::new(Checksum::default()));
    let s2 = sum.clone();
    let client = connect(&reactor, addr, "localhost", client(&ca), &opts, move |ev| {
        Probe::new(ev).on_data(move |_, data| {
            s2.borrow_mut().update(data);
            Ok(())
        })
    })
    .unwrap();
    client.transport().pause_reading();
    run_until(&reactor, WAIT, "producer paused", || {
        source.borrow().as_ref().is_some_and(|s| s.pauses.get() > 0)
    });
    let src = source.borrow().clone().unwrap();
    // Turns with the client paused: the server stays paused, its queue bounded.
    for _ in 0..20 {
        reactor.iterate(Duration::from_millis(5));
    }
    assert!(src.paused.get());
    assert!(src.sent.get() < TOTAL, "paused before the end");
    let received_while_paused = client.received();
    assert!(received_while_paused < TOTAL);
    client.transport().resume_reading();
    run_until(&reactor, WAIT, "everything arrived", || {
        client.lost_count() == 1
    });
    assert_eq!(client.reason_kind(), "Done");
    assert!(src.resumes.get() > 0);
    assert!(
        src.max_queued.get() <= DEFAULT_HIGH_WATER + 64 * 1024,
        "queue bounded by the high-water mark: {}",
        src.max_queued.get()
    );
    let mut want = Checksum::default();
    let mut buf = vec![0u8; 16 * 1024];
    let mut off = 0;
    while off < TOTAL {
        let n = buf.len().min(TOTAL - off);
        support::net::fill(&mut buf[..n], off as u64);
        want.update(&buf[..n]);
        off += n;
    }
    assert_eq!(sum.borrow().finish(), want.finish());
}

/// A server whose certificate is for another name: `NameMismatch`, and the server's
/// protocol never starts.
#[test]
fn wrong_host_name_is_a_name_mismatch() {
    let reactor = Reactor::new().unwrap();
    let ca = TestCa::new();
    let server = server(&ca.leaf(&["elsewhere.example"]));
    let opts = TlsOptions::default();
    let (addr, conns) = serve(&reactor, server, &opts, Probe::new);
    let f = refused(connect(
        &reactor,
        addr,
        "localhost",
        client(&ca),
        &opts,
        Probe::new,
    ));
    assert!(matches!(tls_error(&f), TlsError::NameMismatch), "{f}");
    run_until(&reactor, WAIT, "server side ended", || {
        reactor.stats().sources == 1 // the listener alone
    });
    assert_eq!(conns.borrow()[0].made.get(), 0);
    assert_eq!(conns.borrow()[0].lost_count(), 0, "never made, never lost");
}

/// A certificate from a CA the client does not trust: `UnknownIssuer`.
#[test]
fn untrusted_certificate_is_an_unknown_issuer() {
    let reactor = Reactor::new().unwrap();
    let (_ca, server) = pki();
    let other = TestCa::new();
    let opts = TlsOptions::default();
    let (addr, _conns) = serve(&reactor, server, &opts, Probe::new);
    let f = refused(connect(
        &reactor,
        addr,
        "localhost",
        client(&other),
        &opts,
        Probe::new,
    ));
    assert!(matches!(tls_error(&f), TlsError::UnknownIssuer), "{f}");
    // The default roots do not know a test CA either.
    let defaults = TlsClientBuilder::new().build().unwrap();
    let f = refused(connect(
        &reactor,
        addr,
        "localhost",
        defaults,
        &opts,
        Probe::new,
    ));
    assert!(matches!(tls_error(&f), TlsError::UnknownIssuer), "{f}");
    // Unless verification is turned off, loudly.
    let any = TlsClientBuilder::new()
        .dangerous_accept_any_certificate_for_tests()
        .build()
        .unwrap();
    connect(&reactor, addr, "wrong.example", any, &opts, Probe::new).unwrap();
}

/// An expired certificate: `Expired`.
#[test]
fn expired_certificate_is_refused() {
    let ca = TestCa::new();
    let f = handshake_failure(server(&ca.expired_leaf(&["localhost"])), client(&ca));
    assert!(matches!(tls_error(&f), TlsError::Expired), "{f}");
}

/// ALPN offered by both with nothing in common: `NoCommonProtocol`.
#[test]
fn no_common_alpn_protocol() {
    let ca = TestCa::new();
    let leaf = ca.leaf(&["localhost"]);
    let server = TlsServerBuilder::from_pem(leaf.cert_pem.as_bytes(), leaf.key_pem.as_bytes())
        .unwrap()
        .alpn(&[b"h2"])
        .build()
        .unwrap();
    let client = TlsClientBuilder::new()
        .without_default_roots()
        .add_root_pem(ca.pem().as_bytes())
        .unwrap()
        .alpn(&[b"http/1.1"])
        .build()
        .unwrap();
    let f = handshake_failure(server, client);
    assert!(
        matches!(tls_error(&f), TlsError::NoCommonProtocol(_)),
        "{f}"
    );
}

/// Reads from `s` until EOF or an error, within the read timeout; whether the server
/// closed (EOF or reset), and what it sent.
fn read_to_close(s: &mut TcpStream) -> (bool, Vec<u8>) {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return (true, got),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return (true, got),
            Err(_) => return (false, got),
        }
    }
}

/// A client's first flight of TLS bytes (its ClientHello), as rustls would send it.
fn client_hello(ca: &TestCa) -> Vec<u8> {
    let mut c = rustls::ClientConnection::new(client(ca), "localhost".try_into().unwrap()).unwrap();
    let mut out = Vec::new();
    c.write_tls(&mut out).unwrap();
    out
}

/// Plain HTTP (or any garbage) to a TLS port: the server answers with an alert and
/// closes; no protocol starts, and the server goes on serving.
#[test]
fn garbage_to_the_server_is_refused_and_closed() {
    let reactor = Reactor::new().unwrap();
    let (ca, server) = pki();
    let opts = TlsOptions::default();
    let (addr, conns) = serve(&reactor, server, &opts, |ev| Probe::new(ev).echo());
    for garbage in [
        &b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..],
        &[0u8; 64][..],
        &[0x16, 0x03, 0x01, 0xff, 0xff, 1, 2, 3][..],
    ] {
        let garbage = garbage.to_vec();
        let peer = thread::spawn(move || {
            let mut s = TcpStream::connect(addr).unwrap();
            s.set_read_timeout(Some(WAIT)).unwrap();
            s.write_all(&garbage).unwrap();
            read_to_close(&mut s)
        });
        run_until(&reactor, WAIT, "peer done", || peer.is_finished());
        let (closed, _alert) = peer.join().unwrap();
        assert!(closed, "the server closed the connection");
    }
    assert!(conns.borrow().iter().all(|ev| ev.made.get() == 0));
    // Still serving.
    let client = connect(&reactor, addr, "localhost", client(&ca), &opts, Probe::new).unwrap();
    client.transport().write(b"ok");
    run_until(&reactor, WAIT, "echo", || client.received() == 2);
}

/// A peer that sends a ClientHello and then nothing: the server gives up after its
/// handshake timeout and closes the connection.
#[test]
fn client_hello_then_silence_times_out_on_the_server() {
    let reactor = Reactor::new().unwrap();
    let (ca, server) = pki();
    let opts = TlsOptions {
        handshake_timeout: Duration::from_millis(200),
        ..TlsOptions::default()
    };
    let (addr, conns) = serve(&reactor, server, &opts, Probe::new);
    let hello = client_hello(&ca);
    let peer = thread::spawn(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(WAIT)).unwrap();
        s.write_all(&hello).unwrap();
        // The server's reply flight, then its close.
        read_to_close(&mut s)
    });
    run_until(&reactor, WAIT, "peer done", || peer.is_finished());
    let (closed, reply) = peer.join().unwrap();
    assert!(closed, "closed by the server's handshake timeout");
    assert_eq!(reply.first(), Some(&0x16), "a ServerHello came first");
    assert_eq!(conns.borrow()[0].made.get(), 0);
    assert_eq!(reactor.stats().sources, 1, "only the listener is left");
}

/// A server that accepts and says nothing: the connect errbacks `HandshakeTimeout`.
#[test]
fn silent_server_times_out_the_client() {
    let reactor = Reactor::new().unwrap();
    let ca = TestCa::new();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let peer = thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(WAIT)).unwrap();
        read_to_close(&mut s)
    });
    let opts = TlsOptions {
        handshake_timeout: Duration::from_millis(200),
        ..TlsOptions::default()
    };
    let f = refused(connect(
        &reactor,
        addr,
        "localhost",
        client(&ca),
        &opts,
        Probe::new,
    ));
    assert!(
        matches!(tls_error(&f), TlsError::HandshakeTimeout(t) if *t == Duration::from_millis(200)),
        "{f}"
    );
    let (closed, hello) = peer.join().unwrap();
    assert!(closed, "the client closed the connection");
    assert_eq!(
        hello.first(),
        Some(&0x16),
        "the client had sent its ClientHello"
    );
}

/// A server that resets the connection after the ClientHello: `PeerClosed` with the
/// reset as its cause.
#[test]
fn reset_mid_handshake_is_peer_closed() {
    let reactor = Reactor::new().unwrap();
    let ca = TestCa::new();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let peer = thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut buf = [0u8; 1];
        s.read_exact(&mut buf).unwrap();
        socket2::SockRef::from(&s)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
        drop(s);
    });
    let f = refused(connect(
        &reactor,
        addr,
        "localhost",
        client(&ca),
        &TlsOptions::default(),
        Probe::new,
    ));
    peer.join().unwrap();
    assert!(
        matches!(tls_error(&f), TlsError::PeerClosed(Some(_))),
        "{f}"
    );
}

/// A "server" that answers with garbage: `BadRecord`.
#[test]
fn garbage_from_the_server_is_a_bad_record() {
    let reactor = Reactor::new().unwrap();
    let ca = TestCa::new();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let peer = thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(WAIT)).unwrap();
        let mut buf = [0u8; 1];
        s.read_exact(&mut buf).unwrap();
        s.write_all(b"SSH-2.0-OpenSSH_9.6\r\n").unwrap();
        read_to_close(&mut s)
    });
    let f = refused(connect(
        &reactor,
        addr,
        "localhost",
        client(&ca),
        &TlsOptions::default(),
        Probe::new,
    ));
    assert!(matches!(tls_error(&f), TlsError::BadRecord(_)), "{f}");
    let (closed, _) = peer.join().unwrap();
    assert!(closed);
}

/// Cancelling the connect Deferred during the handshake aborts the connection.
#[test]
fn cancel_during_handshake_aborts() {
    let reactor = Reactor::new().unwrap();
    let ca = TestCa::new();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let peer = thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(WAIT)).unwrap();
        read_to_close(&mut s)
    });
    let ev = Events::new();
    let e = ev.clone();
    let d = reactor.connect_tls(
        addr,
        "localhost",
        move |_: &Address| Some(Probe::new(&e)),
        client(&ca),
    );
    let handle = d.cancel_handle();
    let cancelled = Rc::new(Cell::new(false));
    let c = cancelled.clone();
    let d = d.add_errback(move |f: Failure| {
        c.set(f.is::<ropewalk_reactor::deferred::Cancelled>());
        Err(f)
    });
    // Connected (the listener accepted): the handshake is under way.
    run_until(&reactor, WAIT, "tcp connected", || {
        reactor.stats().sources >= 1
    });
    for _ in 0..5 {
        reactor.iterate(Duration::from_millis(5));
    }
    handle.cancel();
    run_until(&reactor, WAIT, "peer saw the close", || peer.is_finished());
    assert!(cancelled.get());
    let (closed, _) = peer.join().unwrap();
    assert!(closed);
    assert_eq!(ev.made.get(), 0);
    drop(d);
    let _ = ConnectionError::Done;
}

/// Reading paused by the protocol in the middle of what one socket read brought: the
/// rest (held by TLS, not by the socket) is delivered when reading resumes, though no new
/// byte arrives to wake the connection.
#[test]
fn resume_reading_delivers_what_tls_held_back() {
    let reactor = Reactor::new().unwrap();
    let (ca, server) = pki();
    let opts = TlsOptions::default();
    const TOTAL: usize = 64 * 1024;
    let (addr, conns) = serve(&reactor, server, &opts, |ev| {
        let ev = ev.clone();
        Probe::new(&ev.clone()).on_data(move |t, _| {
            t.pause_reading();
            if ev.received() == TOTAL {
                t.lose_connection();
            }
            Ok(())
        })
    });
    let c = client(&ca);
    let peer = thread::spawn(move || {
        let conn = rustls::ClientConnection::new(c, "localhost".try_into().unwrap()).unwrap();
        let sock = TcpStream::connect(addr).unwrap();
        sock.set_read_timeout(Some(WAIT)).unwrap();
        let mut s = rustls::StreamOwned::new(conn, sock);
        while s.conn.is_handshaking() {
            s.conn.complete_io(&mut s.sock).unwrap();
        }
        // Four full records, in one write to the socket.
        s.conn.writer().write_all(&[5u8; TOTAL]).unwrap();
        let mut flight = Vec::new();
        while s.conn.wants_write() {
            s.conn.write_tls(&mut flight).unwrap();
        }
        s.sock.write_all(&flight).unwrap();
        let mut rest = Vec::new();
        s.read_to_end(&mut rest).map(|_| rest.len())
    });
    run_until(&reactor, WAIT, "first record", || {
        conns.borrow().first().is_some_and(|ev| ev.received() > 0)
    });
    let srv = conns.borrow()[0].clone();
    for round in 1.. {
        let before = srv.received();
        for _ in 0..10 {
            reactor.iterate(Duration::from_millis(2));
        }
        assert_eq!(srv.received(), before, "nothing delivered while paused");
        if before == TOTAL {
            break;
        }
        assert!(round < 100, "stuck at {before}");
        srv.transport().resume_reading();
        run_until(&reactor, WAIT, "the next record", || {
            srv.received() > before
        });
    }
    run_until(&reactor, WAIT, "peer done", || peer.is_finished());
    assert_eq!(peer.join().unwrap().unwrap(), 0, "closed with close_notify");
    assert!(srv.chunks.get() >= 4);
}

/// A peer that closes its socket without close_notify after the handshake: the end of
/// its data cannot be told from a truncation, so the connection is lost, not done.
#[test]
fn socket_close_without_close_notify_is_lost() {
    let reactor = Reactor::new().unwrap();
    let (ca, server) = pki();
    let opts = TlsOptions::default();
    let (addr, conns) = serve(&reactor, server, &opts, Probe::new);
    let c = client(&ca);
    let peer = thread::spawn(move || {
        let conn = rustls::ClientConnection::new(c, "localhost".try_into().unwrap()).unwrap();
        let sock = TcpStream::connect(addr).unwrap();
        let mut s = rustls::StreamOwned::new(conn, sock);
        s.write_all(b"partial").unwrap();
        s.flush().unwrap();
        s.sock.shutdown(std::net::Shutdown::Write).unwrap();
        let mut rest = Vec::new();
        let _ = s.sock.read_to_end(&mut rest);
    });
    run_until(&reactor, WAIT, "server lost", || {
        conns
            .borrow()
            .first()
            .is_some_and(|ev| ev.lost_count() == 1)
    });
    let srv = conns.borrow()[0].clone();
    assert_eq!(&srv.data.borrow()[..], b"partial");
    assert_eq!(srv.eofs.get(), 0, "no close_notify, no EOF");
    let reason = srv.reason();
    match reason.downcast_ref::<ConnectionError>() {
        Some(ConnectionError::Lost(e)) => {
            assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof)
        }
        other => panic!("{other:?}"),
    }
    run_until(&reactor, WAIT, "peer done", || peer.is_finished());
    peer.join().unwrap();
}

/// Both ends read what the handshake negotiated: the ALPN protocol, the version and
/// suite; the client the server's chain, the server the SNI name and no client chain.
/// Plain TCP negotiates nothing.
#[test]
fn tls_info_tells_what_the_handshake_negotiated() {
    use ropewalk_reactor::tls::rustls::pki_types::pem::PemObject;
    use ropewalk_reactor::tls::rustls::pki_types::CertificateDer;

    let reactor = Reactor::new().unwrap();
    let ca = TestCa::new();
    let leaf = ca.leaf(&["localhost"]);
    let server = TlsServerBuilder::from_pem(leaf.cert_pem.as_bytes(), leaf.key_pem.as_bytes())
        .unwrap()
        .alpn(&[b"h2", b"http/1.1"])
        .build()
        .unwrap();
    let client_config = TlsClientBuilder::new()
        .without_default_roots()
        .add_root_pem(ca.pem().as_bytes())
        .unwrap()
        .alpn(&[b"http/1.1"])
        .build()
        .unwrap();
    let opts = TlsOptions::default();
    // What the server's protocol sees in connection_made, where it decides what to speak.
    let seen = Rc::new(RefCell::new(None));
    let s = seen.clone();
    let (addr, conns) = serve(&reactor, server, &opts, move |ev| {
        let s = s.clone();
        Probe::new(ev).on_made(move |t| *s.borrow_mut() = Some(t.tls_info()))
    });
    let client = connect(
        &reactor,
        addr,
        "localhost",
        client_config,
        &opts,
        Probe::new,
    )
    .unwrap();
    run_until(&reactor, WAIT, "server made", || conns.borrow().len() == 1);
    run_until(&reactor, WAIT, "server made", || seen.borrow().is_some());

    let on_server = seen
        .borrow()
        .clone()
        .unwrap()
        .expect("TLS info in connection_made");
    let on_client = client
        .transport()
        .tls_info()
        .expect("TLS info on the client");
    assert_eq!(on_server.alpn.as_deref(), Some(&b"http/1.1"[..]));
    assert_eq!(on_client.alpn.as_deref(), Some(&b"http/1.1"[..]));
    assert_eq!(on_server.server_name.as_deref(), Some("localhost"));
    assert_eq!(on_client.server_name, None);
    assert_eq!(on_server.protocol_version, rustls::ProtocolVersion::TLSv1_3);
    assert_eq!(on_client.protocol_version, on_server.protocol_version);
    assert_eq!(on_client.cipher_suite, on_server.cipher_suite);
    let leaf_der = CertificateDer::from_pem_slice(leaf.cert_pem.as_bytes()).unwrap();
    assert_eq!(on_client.peer_certificates, vec![leaf_der]);
    assert!(
        on_server.peer_certificates.is_empty(),
        "no client certificate was asked for"
    );
    assert_eq!(
        conns.borrow()[0].transport().tls_info(),
        Some(on_server),
        "the same later"
    );

    // Plain TCP: none.
    let plain = Events::new();
    let p = plain.clone();
    let port = reactor
        .listen_tcp("127.0.0.1:0".parse().unwrap(), move |_: &Address| {
            Some(Probe::new(&p))
        })
        .unwrap();
    let _tcp = TcpStream::connect(port.local_addr().inet().unwrap()).unwrap();
    run_until(&reactor, WAIT, "plain made", || plain.made.get() == 1);
    assert_eq!(plain.transport().tls_info(), None);
}

/// A client configuration for TLS 1.2 only, trusting `ca`, with rustls's default
/// resumption (what a peer that cannot speak TLS 1.3 would do).
fn tls12_client(ca: &TestCa) -> Arc<rustls::ClientConfig> {
    use ropewalk_reactor::tls::rustls::pki_types::pem::PemObject;
    use ropewalk_reactor::tls::rustls::pki_types::CertificateDer;
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca.pem().as_bytes()).unwrap())
        .unwrap();
    Arc::new(
        rustls::ClientConfig::builder_with_protocol_versions(&[&rustls::version::TLS12])
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

/// Session resumption is on by default: a second connection made with the same client
/// configuration resumes its session (a TLS 1.3 ticket, a TLS 1.2 session ID, both from
/// the server builder's session cache), and both ends' `TlsInfo` say so; the first
/// connection of a configuration makes a full handshake.
#[test]
fn a_second_connection_resumes_the_session() {
    let reactor = Reactor::new().unwrap();
    let (ca, server) = pki();
    let opts = TlsOptions::default();
    let (addr, conns) = serve(&reactor, server, &opts, |ev| Probe::new(ev).echo());
    for (version, config) in [
        (rustls::ProtocolVersion::TLSv1_3, client(&ca)),
        (rustls::ProtocolVersion::TLSv1_2, tls12_client(&ca)),
    ] {
        let mut resumed = Vec::new();
        for _ in 0..3 {
            let c = connect(
                &reactor,
                addr,
                "localhost",
                config.clone(),
                &opts,
                Probe::new,
            )
            .unwrap();
            // A TLS 1.3 ticket comes after the handshake: once the echo is back, it is in.
            c.transport().write(b"x");
            run_until(&reactor, WAIT, "echo", || c.received() == 1);
            let on_client = c.transport().tls_info().unwrap();
            let srv = conns.borrow().last().unwrap().clone();
            let on_server = srv.transport().tls_info().unwrap();
            assert_eq!(on_client.protocol_version, version);
            assert_eq!(on_client.resumed, on_server.resumed, "{version:?}");
            assert!(
                on_server.peer_certificates.is_empty() && !on_client.peer_certificates.is_empty(),
                "{version:?}: the client knows the server's certificate, resumed or not"
            );
            resumed.push(on_client.resumed);
            c.transport().lose_connection();
        }
        assert_eq!(resumed, [false, true, true], "{version:?}");
    }
}
