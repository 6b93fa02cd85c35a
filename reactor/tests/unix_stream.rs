//! Unix-domain stream sockets: echo, addresses, half-close, and the socket file removed
//! by `stop_listening` (Twisted: `test/test_unix.py`, `UnixSocketTests`).

mod support;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

use ropewalk_reactor::{Address, ConnectionError, Reactor};
use support::bounded;
use support::net::{run_until, Events, Probe};

const LIMIT: Duration = Duration::from_secs(30);
const WAIT: Duration = Duration::from_secs(20);

fn socket_path(name: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("ropewalk-{name}-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&p);
    p
}

/// Twisted: `test/test_unix.py UnixSocketTests.test_peerBind` / `test_dumber` (echo over a
/// Unix socket, the addresses each end reports). A reactor client and server: the data
/// is echoed, the server's own address is the path and its peer unnamed, the client's
/// peer is the path, and both close cleanly.
#[test]
fn echo_and_addresses_over_a_unix_socket() {
    bounded(LIMIT, || {
        let path = socket_path("echo");
        let reactor = Reactor::new().unwrap();
        let server = Events::new();
        let s2 = server.clone();
        let port = reactor
            .listen_unix(&path, move |_: &Address| Some(Probe::new(&s2).echo()))
            .unwrap();
        assert_eq!(port.local_addr(), Address::Unix(Some(path.clone())));
        let client = Events::new();
        let c2 = client.clone();
        reactor
            .connect_unix(&path, move |peer: &Address| {
                assert!(matches!(peer, Address::Unix(Some(_))));
                Some(Probe::new(&c2))
            })
            .wait()
            .unwrap();
        let t = client.transport();
        let big = vec![0x5au8; 1 << 20];
        t.write(b"over a path;");
        t.write(&big);
        run_until(&reactor, WAIT, "the echo", || {
            client.received() == 12 + big.len()
        });
        assert_eq!(&client.data.borrow()[..12], b"over a path;");
        assert_eq!(t.peer_addr(), Address::Unix(Some(path.clone())));
        assert_eq!(t.local_addr(), Address::Unix(None));
        let st = server.transport();
        assert_eq!(st.local_addr(), Address::Unix(Some(path.clone())));
        assert_eq!(st.peer_addr(), Address::Unix(None));
        // No-ops on a Unix socket.
        t.set_nodelay(true).unwrap();
        t.set_keepalive(Some(Duration::from_secs(30))).unwrap();
        t.lose_connection();
        run_until(&reactor, WAIT, "both closed", || {
            client.lost_count() == 1 && server.lost_count() == 1
        });
        assert_eq!(client.reason_kind(), "Done");
        assert_eq!(server.reason_kind(), "Done");
        port.stop_listening();
    });
}

/// Twisted: `test/test_tcp.py HalfCloseTests` over a Unix socket. The client shuts down
/// writing; the server sees EOF, keeps writing (`eof_received` → true), then closes.
#[test]
fn half_close_over_a_unix_socket() {
    bounded(LIMIT, || {
        let path = socket_path("half");
        let reactor = Reactor::new().unwrap();
        let server = Events::new();
        let s2 = server.clone();
        let port = reactor
            .listen_unix(&path, move |_: &Address| {
                Some(Probe::new(&s2).on_eof(|t| {
                    t.write(b"after your EOF");
                    t.lose_connection();
                    true
                }))
            })
            .unwrap();
        let p2 = path.clone();
        let worker = reactor.defer_to_thread(move || {
            let mut s = UnixStream::connect(&p2)?;
            s.set_read_timeout(Some(WAIT))?;
            s.write_all(b"request")?;
            s.shutdown(std::net::Shutdown::Write)?;
            let mut got = Vec::new();
            s.read_to_end(&mut got)?;
            Ok(got)
        });
        let got = worker.add_timeout(WAIT, &reactor).wait().unwrap();
        assert_eq!(got, b"after your EOF");
        run_until(&reactor, WAIT, "closed", || server.lost_count() == 1);
        assert_eq!(&*server.data.borrow(), b"request");
        assert_eq!(server.reason_kind(), "Done");
        port.stop_listening();
    });
}

/// Twisted: `test/test_unix.py UnixSocketTests.test_socketLocking` (listen again after
/// stopping). `stop_listening` removes the socket file,
/// connections already accepted go on, a new connect is refused (typed), and the path
/// can be listened on again.
#[test]
fn stop_listening_removes_the_socket_file() {
    bounded(LIMIT, || {
        let path = socket_path("stop");
        let reactor = Reactor::new().unwrap();
        let server = Events::new();
        let s2 = server.clone();
        let port = reactor
            .listen_unix(&path, move |_: &Address| Some(Probe::new(&s2).echo()))
            .unwrap();
        assert!(path.exists());
        let mut s = UnixStream::connect(&path).unwrap();
        s.set_read_timeout(Some(WAIT)).unwrap();
        run_until(&reactor, WAIT, "accepted", || server.made.get() == 1);
        port.stop_listening().wait().unwrap();
        assert!(!path.exists(), "the socket file is still there");
        assert_eq!(reactor.stats().sources, 1, "only the accepted connection");
        // The accepted connection still works.
        s.write_all(b"still here").unwrap();
        run_until(&reactor, WAIT, "data", || server.received() == 10);
        let mut buf = [0u8; 10];
        s.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"still here");
        let f = reactor
            .connect_unix(&path, |_: &Address| Some(Probe::new(&Events::new())))
            .wait()
            .unwrap_err();
        assert!(
            matches!(f.downcast_ref(), Some(ConnectionError::Refused(_))),
            "{f}"
        );
        drop(s);
        run_until(&reactor, WAIT, "closed", || server.lost_count() == 1);
        let again = reactor
            .listen_unix(&path, |_: &Address| Some(Probe::new(&Events::new())))
            .unwrap();
        again.stop_listening();
        assert!(!path.exists());
        assert_eq!(reactor.stats().sources, 0);
    });
}
