//! Echo and Discard: Twisted's `test/test_protocols.py` `WireTests` on a
//! `StringTransport`, and RFC 862 half-close behaviour over real loopback TCP.

use std::cell::RefCell;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::rc::Rc;
use std::time::Duration;

use ropewalk_protocols::echo::{Discard, Echo};
use ropewalk_reactor::deferred::Failure;
use ropewalk_reactor::testing::StringTransport;
use ropewalk_reactor::{Address, ConnectionError, Protocol, Reactor, TransportRef};

/// Twisted: WireTests.test_echo
#[test]
fn echo_writes_back_everything() {
    let mut p = Echo::new();
    let t = StringTransport::connect(&mut p);
    for s in [&b"hello"[..], b"world", b"how", b"are", b"you"] {
        p.data_received(s).unwrap();
    }
    assert_eq!(t.value(), b"helloworldhowareyou");
}

/// Twisted: WireTests.test_discard
#[test]
fn discard_writes_nothing() {
    let mut p = Discard;
    let t = StringTransport::connect(&mut p);
    for s in [&b"hello"[..], b"world", b"how", b"are", b"you"] {
        p.data_received(s).unwrap();
    }
    assert!(t.value().is_empty());
    assert!(!t.is_disconnecting());
}

/// RFC 862 on half-close: keep the connection for writing, close after the echo.
#[test]
fn echo_closes_after_eof() {
    let mut p = Echo::new();
    let t = StringTransport::connect(&mut p);
    p.data_received(b"last words").unwrap();
    assert!(p.eof_received());
    assert!(t.is_disconnecting() && !t.was_aborted());
    assert_eq!(t.value(), b"last words");
}

/// Echo, recording how its connection ended.
struct Watched {
    echo: Echo,
    lost: Rc<RefCell<Option<Failure>>>,
}

impl Protocol for Watched {
    fn connection_made(&mut self, t: TransportRef) {
        self.echo.connection_made(t);
    }
    fn data_received(&mut self, data: &[u8]) -> Result<(), Failure> {
        self.echo.data_received(data)
    }
    fn eof_received(&mut self) -> bool {
        self.echo.eof_received()
    }
    fn connection_lost(&mut self, reason: Failure) {
        *self.lost.borrow_mut() = Some(reason);
    }
}

/// Over loopback: 4000 bytes then `shutdown(Write)` from a plain client thread; all 4000
/// come back (xinetd's behaviour, RFC 862), then the server closes cleanly.
#[test]
fn echo_over_tcp_echoes_everything_sent_before_half_close() {
    let reactor = Reactor::new().unwrap();
    let lost = Rc::new(RefCell::new(None));
    let lost2 = lost.clone();
    let port = reactor
        .listen_tcp("127.0.0.1:0".parse().unwrap(), move |_: &Address| {
            Some(Watched {
                echo: Echo::new(),
                lost: lost2.clone(),
            })
        })
        .unwrap();
    let addr = port.local_addr().inet().unwrap();

    let sent: Vec<u8> = (0..4000u32).map(|i| (i % 251) as u8).collect();
    let expected = sent.clone();
    let echoed = reactor
        .defer_to_thread(move || {
            let mut s = TcpStream::connect(addr).map_err(Failure::new)?;
            // The bound: a stuck server fails the test instead of hanging it.
            s.set_read_timeout(Some(Duration::from_secs(10)))
                .map_err(Failure::new)?;
            s.write_all(&sent).map_err(Failure::new)?;
            s.shutdown(Shutdown::Write).map_err(Failure::new)?;
            let mut back = Vec::new();
            // Returns at the server's FIN; a reset or a timeout is an error.
            s.read_to_end(&mut back).map_err(Failure::new)?;
            Ok(back)
        })
        .wait()
        .unwrap();
    assert_eq!(echoed.len(), 4000);
    assert_eq!(echoed, expected);

    // connection_lost runs on a later turn: give the reactor a bounded number of turns.
    for _ in 0..1000 {
        if lost.borrow().is_some() {
            break;
        }
        reactor.iterate(Duration::from_millis(10));
    }
    let reason = lost
        .borrow_mut()
        .take()
        .expect("the server closed the connection");
    assert!(
        reason
            .downcast_ref::<ConnectionError>()
            .is_some_and(ConnectionError::is_clean),
        "closed cleanly, got {reason}"
    );
    port.stop_listening();
}

/// The factories build their protocols for any peer.
#[test]
fn factories() {
    use ropewalk_reactor::Factory;
    assert!(Echo::factory().build_protocol(&Address::Test).is_some());
    assert!(Discard::factory().build_protocol(&Address::Test).is_some());
}

/// Regression (found by the soak test): a peer that sends and never reads made Echo
/// queue everything it sent (the echo server's memory grew with every byte). Echo now
/// stops reading while its write queue is past the high-water mark, so the peer's writes
/// block long before it has sent 64 MiB (the kernel's socket buffers take a few MiB).
#[test]
fn echo_stops_reading_from_a_peer_that_does_not_read() {
    const LIMIT: usize = 64 << 20;
    let reactor = Reactor::new().unwrap();
    let port = reactor
        .listen_tcp("127.0.0.1:0".parse().unwrap(), Echo::factory())
        .unwrap();
    let addr = port.local_addr().inet().unwrap();
    let sent = reactor
        .defer_to_thread(move || {
            let s = TcpStream::connect(addr).map_err(Failure::new)?;
            // A write the server does not take within a second: it stopped reading.
            s.set_write_timeout(Some(Duration::from_secs(1)))
                .map_err(Failure::new)?;
            let chunk = vec![b'x'; 64 * 1024];
            let mut sent = 0;
            while sent < LIMIT {
                match (&s).write(&chunk) {
                    Ok(n) => sent += n,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == std::io::ErrorKind::TimedOut => break,
                    Err(e) => return Err(Failure::new(e)),
                }
            }
            Ok(sent)
        })
        .wait()
        .unwrap();
    assert!(
        sent < LIMIT,
        "the echo read all {sent} bytes while nobody read them back"
    );
}
