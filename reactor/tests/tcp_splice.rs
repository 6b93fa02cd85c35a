//! `Transport::splice_to` over loopback TCP: two accepted connections spliced to each
//! other relay bytes intact both ways, hold a slow reader's backlog in the pipe (or, when
//! copying, under the write queue's high-water mark), pass a half-close on, and close each
//! other. Every test runs twice: on the `splice(2)` path (Linux's epoll poller) and on the
//! copy path (`force_splice_copy`, which the portable poller always takes).

mod support;

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use ropewalk_reactor::testing::{force_splice_copy, StringTransport};
use ropewalk_reactor::{
    Address, ConnectionError, Reactor, Transport, TransportRef, DEFAULT_HIGH_WATER,
};
use support::bounded;
use support::net::{fill, run_until, spin, Checksum, Events, Probe};

const LIMIT: Duration = Duration::from_secs(60);
const WAIT: Duration = Duration::from_secs(30);
/// What the pipe holds (`splice.rs`): all a spliced pair keeps of a slow reader's bytes.
const PIPE: usize = 64 * 1024;
/// The reactor's read buffer: what one copying read adds past the high-water mark.
const READ_CHUNK: usize = 64 * 1024;

/// Two accepted connections, `a` and `b`, spliced to each other, and the client ends
/// `ca` (talks to `a`) and `cb` (talks to `b`).
struct Pair {
    reactor: Reactor,
    a: Rc<Events>,
    b: Rc<Events>,
    ca: TcpStream,
    cb: TcpStream,
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.set_write_timeout(Some(WAIT)).unwrap();
    s
}

fn pair(copy: bool) -> Pair {
    let reactor = Reactor::new().unwrap();
    let (a, b) = (Events::new(), Events::new());
    let order = Rc::new(std::cell::RefCell::new(vec![b.clone(), a.clone()]));
    let port = reactor
        .listen_tcp("127.0.0.1:0".parse().unwrap(), move |_: &Address| {
            let ev = order.borrow_mut().pop()?;
            Some(Probe::new(&ev))
        })
        .unwrap();
    let addr = port.local_addr().inet().unwrap();
    let ca = connect(addr);
    run_until(&reactor, WAIT, "a accepted", || a.made.get() == 1);
    let cb = connect(addr);
    run_until(&reactor, WAIT, "b accepted", || b.made.get() == 1);
    force_splice_copy(copy);
    let (ta, tb) = (a.transport(), b.transport());
    ta.splice_to(&tb).unwrap();
    tb.splice_to(&ta).unwrap();
    force_splice_copy(false);
    Pair {
        reactor,
        a,
        b,
        ca,
        cb,
    }
}

/// The bytes sent: [`fill`]'s pattern from offset `seed`, cycled every 1 MiB - 3 bytes.
fn pattern(seed: u64) -> Vec<u8> {
    let mut v = vec![0u8; 1_048_573];
    fill(&mut v, seed);
    v
}

/// Writes `total` bytes of `pattern(seed)` (counting them in `sent`), then shuts down
/// the sending side.
fn send(mut s: TcpStream, total: usize, seed: u64, sent: Arc<AtomicU64>) -> JoinHandle<()> {
    thread::spawn(move || {
        let pat = pattern(seed);
        let mut left = total;
        while left > 0 {
            let n = left.min(pat.len());
            s.write_all(&pat[..n]).unwrap();
            sent.fetch_add(n as u64, Ordering::Relaxed);
            left -= n;
        }
        s.shutdown(Shutdown::Write).unwrap();
    })
}

fn expected(total: usize, seed: u64) -> (u64, u64) {
    let pat = pattern(seed);
    let mut sum = Checksum::default();
    let mut left = total;
    while left > 0 {
        let n = left.min(pat.len());
        sum.update(&pat[..n]);
        left -= n;
    }
    sum.finish()
}

/// Reads to EOF once `go` says so; the checksum of what came.
fn receive(mut s: TcpStream, go: Option<mpsc::Receiver<()>>) -> JoinHandle<(u64, u64)> {
    thread::spawn(move || {
        if let Some(go) = go {
            go.recv_timeout(WAIT).expect("told to read");
        }
        let mut sum = Checksum::default();
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            match s.read(&mut buf).unwrap() {
                0 => return sum.finish(),
                n => sum.update(&buf[..n]),
            }
        }
    })
}

fn large_transfer_is_intact_both_ways(copy: bool) {
    bounded(LIMIT, move || {
        let p = pair(copy);
        let (up, down) = (64 * 1024 * 1024, 16 * 1024 * 1024 + 7);
        let none = Arc::new(AtomicU64::new(0));
        let threads = [
            send(p.ca.try_clone().unwrap(), up, 1, none.clone()),
            send(p.cb.try_clone().unwrap(), down, 2, none.clone()),
        ];
        let at_b = receive(p.cb.try_clone().unwrap(), None);
        let at_a = receive(p.ca.try_clone().unwrap(), None);
        run_until(&p.reactor, LIMIT, "both connections lost", || {
            p.a.lost_count() == 1 && p.b.lost_count() == 1
        });
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(at_b.join().unwrap(), expected(up, 1));
        assert_eq!(at_a.join().unwrap(), expected(down, 2));
        // Each side's EOF shut the other's sending side; both directions shut: done.
        assert_eq!(p.a.reason_kind(), "Done");
        assert_eq!(p.b.reason_kind(), "Done");
        // The bytes skipped the protocols.
        assert_eq!((p.a.received(), p.b.received()), (0, 0));
        assert_eq!((p.a.eofs.get(), p.b.eofs.get()), (0, 0));
    });
}

#[test]
fn large_transfer_is_intact_both_ways_spliced() {
    large_transfer_is_intact_both_ways(false);
}

#[test]
fn large_transfer_is_intact_both_ways_copied() {
    large_transfer_is_intact_both_ways(true);
}

/// A reader that does not read: the writer's bytes stop in the sockets' buffers, and
/// the proxy holds at most a pipe (splice) or a high-water mark and one read (copy).
fn slow_reader_bounds_memory(copy: bool) {
    bounded(LIMIT, move || {
        let p = pair(copy);
        let total = 128 * 1024 * 1024;
        let sent = Arc::new(AtomicU64::new(0));
        let writer = send(p.ca.try_clone().unwrap(), total, 3, sent.clone());
        let (go, wait) = mpsc::channel();
        let reader = receive(p.cb.try_clone().unwrap(), Some(wait));
        let (ta, tb) = (p.a.transport(), p.b.transport());
        // The portable poller has no pipe: it copies either way.
        let piped = !copy
            && cfg!(all(
                any(target_os = "linux", target_os = "android"),
                not(feature = "portable-poller")
            ));
        let bound = if piped {
            PIPE
        } else {
            DEFAULT_HIGH_WATER + READ_CHUNK
        };
        let mut most = 0;
        // Until b's socket refuses bytes: the reader's buffers are full.
        run_until(&p.reactor, WAIT, "b's queue backs up", || {
            most = most.max(tb.write_buffer_len());
            tb.write_buffer_len() > 0
        });
        // Many more turns with the reader stalled: the queue stays bounded.
        for _ in 0..200 {
            spin(&p.reactor, 1);
            p.reactor.iterate(Duration::from_millis(1));
            most = most.max(tb.write_buffer_len());
        }
        let stalled_at = sent.load(Ordering::Relaxed);
        assert!(
            stalled_at < total as u64 / 2,
            "the writer got {stalled_at} bytes out with nobody reading"
        );
        assert!(most <= bound, "b queued {most} bytes, past {bound}");
        assert!(!ta.is_closing());
        go.send(()).unwrap();
        run_until(&p.reactor, LIMIT, "the transfer ends", || {
            most = most.max(tb.write_buffer_len());
            reader.is_finished()
        });
        writer.join().unwrap();
        assert_eq!(reader.join().unwrap(), expected(total, 3));
        assert!(most <= bound, "b queued {most} bytes, past {bound}");
    });
}

#[test]
fn slow_reader_bounds_memory_spliced() {
    slow_reader_bounds_memory(false);
}

#[test]
fn slow_reader_bounds_memory_copied() {
    slow_reader_bounds_memory(true);
}

/// A request, EOF, then the answer the other way after it, then EOF that way too.
fn half_close_passes_on(copy: bool) {
    bounded(LIMIT, move || {
        let p = pair(copy);
        let (mut ca, mut cb) = (p.ca.try_clone().unwrap(), p.cb.try_clone().unwrap());
        let client = thread::spawn(move || {
            ca.write_all(b"request").unwrap();
            ca.shutdown(Shutdown::Write).unwrap();
            let mut answer = Vec::new();
            ca.read_to_end(&mut answer).unwrap();
            answer
        });
        let server = thread::spawn(move || {
            let mut request = Vec::new();
            // EOF arrives after the request, and the connection is still open to answer.
            cb.read_to_end(&mut request).unwrap();
            cb.write_all(b"answer to ").unwrap();
            cb.write_all(&request).unwrap();
            cb.shutdown(Shutdown::Write).unwrap();
            request
        });
        run_until(&p.reactor, WAIT, "both connections lost", || {
            p.a.lost_count() == 1 && p.b.lost_count() == 1
        });
        assert_eq!(server.join().unwrap(), b"request");
        assert_eq!(client.join().unwrap(), b"answer to request");
        assert_eq!(p.a.reason_kind(), "Done");
        assert_eq!(p.b.reason_kind(), "Done");
    });
}

#[test]
fn half_close_passes_on_spliced() {
    half_close_passes_on(false);
}

#[test]
fn half_close_passes_on_copied() {
    half_close_passes_on(true);
}

/// `cb`'s peer resets its connection: `b` is lost with the reset, and `a` is closed
/// cleanly after what was relayed to it, so `ca` reads it and then EOF.
fn reset_closes_the_other_side(copy: bool) {
    bounded(LIMIT, move || {
        let p = pair(copy);
        let (mut ca, mut cb) = (p.ca.try_clone().unwrap(), p.cb.try_clone().unwrap());
        ca.write_all(b"ping").unwrap();
        let (heard, wait) = mpsc::channel();
        let server = thread::spawn(move || {
            let mut buf = [0u8; 4];
            cb.read_exact(&mut buf).unwrap();
            cb.write_all(b"last words").unwrap();
            // Reset only once they arrived (a reset may drop what the proxy has not read).
            wait.recv_timeout(WAIT).expect("the client heard");
            // SO_LINGER 0: the close sends a reset.
            socket2::SockRef::from(&cb)
                .set_linger(Some(Duration::ZERO))
                .unwrap();
            buf
        });
        let client = thread::spawn(move || {
            let mut got = vec![0u8; 10];
            ca.read_exact(&mut got).unwrap();
            heard.send(()).unwrap();
            let r = ca.read_to_end(&mut got);
            (got, r.map_err(|e| e.kind()))
        });
        let ping = {
            // The reactor relays while the peers talk.
            run_until(&p.reactor, WAIT, "the server is done", || {
                server.is_finished()
            });
            server.join().unwrap()
        };
        drop(p.cb);
        run_until(&p.reactor, WAIT, "both connections lost", || {
            p.a.lost_count() == 1 && p.b.lost_count() == 1
        });
        assert_eq!(&ping, b"ping");
        let (got, r) = client.join().unwrap();
        assert!(r.is_ok(), "the client's end: {r:?}");
        assert_eq!(got, b"last words");
        let b_reason = p.b.reason();
        match b_reason.downcast_ref::<ConnectionError>() {
            Some(ConnectionError::Lost(e)) => {
                assert_eq!(e.kind(), io::ErrorKind::ConnectionReset, "{e}")
            }
            other => panic!("b's reason: {other:?}"),
        }
        assert_eq!(p.a.reason_kind(), "Done");
    });
}

#[test]
fn reset_closes_the_other_side_spliced() {
    reset_closes_the_other_side(false);
}

#[test]
fn reset_closes_the_other_side_copied() {
    reset_closes_the_other_side(true);
}

#[test]
fn splice_to_refuses_what_it_cannot_do() {
    bounded(LIMIT, || {
        let p = pair(false);
        let (ta, tb) = (p.a.transport(), p.b.transport());
        let kind = |r: io::Result<()>| r.unwrap_err().kind();
        assert_eq!(kind(ta.splice_to(&tb)), io::ErrorKind::AlreadyExists);
        let stub = StringTransport::new();
        let stub_ref: TransportRef = stub.clone();
        assert_eq!(kind(stub.splice_to(&ta)), io::ErrorKind::Unsupported);
        // A connection of its own.
        let c = Events::new();
        let reactor = &p.reactor;
        let ev = c.clone();
        let port = reactor
            .listen_tcp("127.0.0.1:0".parse().unwrap(), move |_: &Address| {
                Some(Probe::new(&ev))
            })
            .unwrap();
        let _cc = connect(port.local_addr().inet().unwrap());
        run_until(reactor, WAIT, "c accepted", || c.made.get() == 1);
        let tc = c.transport();
        assert_eq!(kind(tc.splice_to(&tc)), io::ErrorKind::InvalidInput);
        // To a stub: copied.
        tc.splice_to(&stub_ref).unwrap();
        drop(stub_ref);
    });
}
