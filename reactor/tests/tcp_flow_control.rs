//! Flow control over loopback TCP: streaming (push) and pull producers against the write
//! queue's water marks, and `pause_reading` / `resume_reading` (Twisted:
//! `test/test_internet.py ProducerTests`, `test/test_tcp.py`, §2.8 of the reference).

mod support;

use std::cell::{Cell, RefCell};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::rc::{Rc, Weak};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use ropewalk_reactor::{Address, Producer, Reactor, TransportRef, DEFAULT_HIGH_WATER};
use support::bounded;
use support::net::{run_until, spin, Checksum, Events, Probe};

const LIMIT: Duration = Duration::from_secs(30);
const WAIT: Duration = Duration::from_secs(20);
const CHUNK: usize = 16 * 1024;

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.set_write_timeout(Some(WAIT)).unwrap();
    s
}

/// The byte at stream offset `i` of what the producers write.
fn pattern() -> Vec<u8> {
    let mut v = vec![0u8; 1_048_573];
    support::net::fill(&mut v, 0);
    v
}

/// Reads to EOF, checksumming; the number of bytes and the checksum.
fn drain(s: &mut TcpStream) -> io::Result<(u64, u64)> {
    let mut sum = Checksum::default();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match s.read(&mut buf)? {
            0 => return Ok(sum.finish()),
            n => sum.update(&buf[..n]),
        }
    }
}

/// The checksum of the first `total` bytes of [`pattern`], written in `CHUNK`s.
fn expected(total: usize) -> (u64, u64) {
    let pat = pattern();
    let mut sum = Checksum::default();
    let mut off = 0;
    let mut left = total;
    while left > 0 {
        let n = left.min(CHUNK).min(pat.len() - off);
        sum.update(&pat[off..off + n]);
        off = (off + n) % pat.len();
        left -= n;
    }
    sum.finish()
}

/// A producer of `total` bytes of [`pattern`], in `CHUNK`s. As a push producer it writes
/// up to 16 chunks a turn until paused; as a pull producer one chunk per
/// `resume_producing`. When done it unregisters and loses the connection.
struct Source {
    me: Weak<Source>,
    reactor: Reactor,
    transport: RefCell<Option<TransportRef>>,
    pat: Vec<u8>,
    total: usize,
    sent: Cell<usize>,
    streaming: bool,
    paused: Cell<bool>,
    scheduled: Cell<bool>,
    pauses: Cell<usize>,
    resumes: Cell<usize>,
    stops: Cell<usize>,
    max_queued: Cell<usize>,
    /// Chunks written.
    writes: Cell<usize>,
    /// Bytes written while paused (a push producer must write none).
    written_while_paused: Cell<usize>,
    /// `write_progress` calls, and whether each one's count was below the last.
    progress: Cell<usize>,
    progress_shrank: Cell<bool>,
    last_queued: Cell<usize>,
}

impl Source {
    fn new(reactor: &Reactor, total: usize, streaming: bool) -> Rc<Source> {
        Rc::new_cyclic(|me| Source {
            me: me.clone(),
            reactor: reactor.clone(),
            transport: RefCell::new(None),
            pat: pattern(),
            total,
            sent: Cell::new(0),
            streaming,
            paused: Cell::new(false),
            scheduled: Cell::new(false),
            pauses: Cell::new(0),
            resumes: Cell::new(0),
            stops: Cell::new(0),
            max_queued: Cell::new(0),
            writes: Cell::new(0),
            written_while_paused: Cell::new(0),
            progress: Cell::new(0),
            progress_shrank: Cell::new(true),
            last_queued: Cell::new(usize::MAX),
        })
    }

    fn start(self: &Rc<Source>, t: &TransportRef) {
        *self.transport.borrow_mut() = Some(t.clone());
        t.register_producer(self.clone(), self.streaming);
        if self.streaming {
            self.schedule();
        }
    }

    fn schedule(&self) {
        if self.scheduled.replace(true) {
            return;
        }
        let me = self.me.clone();
        self.reactor.call_soon(move || {
            if let Some(me) = me.upgrade() {
                me.scheduled.set(false);
                me.push();
            }
        });
    }

    /// Writes one chunk; true when everything is written.
    fn write_chunk(&self, t: &TransportRef) -> bool {
        let sent = self.sent.get();
        let off = sent % self.pat.len();
        let n = (self.total - sent).min(CHUNK).min(self.pat.len() - off);
        if self.paused.get() {
            self.written_while_paused
                .set(self.written_while_paused.get() + n);
        }
        t.write(&self.pat[off..off + n]);
        self.writes.set(self.writes.get() + 1);
        self.sent.set(sent + n);
        self.max_queued
            .set(self.max_queued.get().max(t.write_buffer_len()));
        if self.sent.get() == self.total {
            t.unregister_producer();
            t.lose_connection();
            true
        } else {
            false
        }
    }

    fn push(&self) {
        let Some(t) = self.transport.borrow().clone() else {
            return;
        };
        for _ in 0..16 {
            if self.paused.get() || self.stops.get() > 0 {
                return;
            }
            if self.write_chunk(&t) {
                return;
            }
        }
        self.schedule();
    }
}

impl Producer for Source {
    fn pause_producing(&self) {
        self.pauses.set(self.pauses.get() + 1);
        self.paused.set(true);
    }

    fn resume_producing(&self) {
        self.resumes.set(self.resumes.get() + 1);
        self.paused.set(false);
        if self.streaming {
            self.schedule();
        } else if let Some(t) = self.transport.borrow().clone() {
            self.write_chunk(&t);
        }
    }

    fn stop_producing(&self) {
        self.stops.set(self.stops.get() + 1);
    }

    fn write_progress(&self, queued: usize) {
        self.progress.set(self.progress.get() + 1);
        let t = self.transport.borrow().clone();
        if let Some(t) = t {
            // Told after the queue shrank, with what is left.
            if t.write_buffer_len() != queued {
                self.progress_shrank.set(false);
            }
        }
        self.last_queued.set(queued);
    }
}

/// Serves one connection with a [`Source`].
fn serve_source(reactor: &Reactor, source: &Rc<Source>) -> (SocketAddr, Rc<Events>) {
    let ev = Events::new();
    let (e2, s2) = (ev.clone(), source.clone());
    let port = reactor
        .listen_tcp("127.0.0.1:0".parse().unwrap(), move |_: &Address| {
            let s = s2.clone();
            Some(Probe::new(&e2).on_made(move |t| s.start(t)))
        })
        .unwrap();
    (port.local_addr().inet().unwrap(), ev)
}

/// Twisted: §2.8 (a streaming producer is paused when the buffer passes 64 KiB and
/// resumed when it drains; `test/test_internet.py ProducerTests`). A client that does not
/// read: the push producer is paused at the high-water mark and writes nothing while
/// paused, the queue stays under the mark plus one chunk, and when the client reads
/// the producer is resumed and every byte arrives in order.
#[test]
fn push_producer_paused_at_the_high_water_mark_and_resumed_when_the_peer_reads() {
    bounded(LIMIT, || {
        let total = 32 << 20;
        let reactor = Reactor::new().unwrap();
        let source = Source::new(&reactor, total, true);
        let (addr, ev) = serve_source(&reactor, &source);
        let (go_tx, go_rx) = mpsc::channel::<()>();
        let client = thread::spawn(move || {
            let mut s = connect(addr);
            go_rx.recv_timeout(WAIT).unwrap();
            drain(&mut s)
        });
        run_until(&reactor, WAIT, "the producer to be paused", || {
            source.pauses.get() > 0
        });
        // Paused, and it stays paused while the client does not read.
        spin(&reactor, 20);
        let progress_while_stalled = source.progress.get();
        spin(&reactor, 20);
        assert_eq!(
            source.progress.get(),
            progress_while_stalled,
            "write_progress without the peer reading"
        );
        assert!(source.paused.get());
        assert_eq!(source.resumes.get(), 0, "resumed though nothing drained");
        let sent_while_stalled = source.sent.get();
        assert!(
            sent_while_stalled < total,
            "the kernel took it all: untested"
        );
        let t = ev.transport();
        assert!(t.write_buffer_len() > DEFAULT_HIGH_WATER);
        go_tx.send(()).unwrap();
        run_until(&reactor, WAIT, "connection_lost", || ev.lost_count() == 1);
        let got = client.join().unwrap().unwrap();
        assert_eq!(got, expected(total), "bytes differ");
        assert!(source.resumes.get() > 0);
        assert!(
            source.progress.get() > progress_while_stalled,
            "no write_progress while the peer read"
        );
        assert!(source.progress_shrank.get());
        assert_eq!(source.written_while_paused.get(), 0);
        assert!(
            source.max_queued.get() <= DEFAULT_HIGH_WATER + CHUNK,
            "the queue reached {}",
            source.max_queued.get()
        );
        assert_eq!(ev.reason_kind(), "Done");
        // Unregistered before the close: not stopped.
        assert_eq!(source.stops.get(), 0);
    });
}

/// Twisted: §2.8 (`resumeProducing()` once at registration and again each time the
/// buffer empties; a pull producer is never paused) —
/// `test/test_internet.py ProducerTests.test_dontPausePullConsumerOnWrite`. 200 chunks,
/// one per `resume_producing`, all of them delivered, even when each write goes straight
/// into the socket.
#[test]
fn pull_producer_is_asked_again_each_time_the_queue_empties() {
    bounded(LIMIT, || {
        let chunks = 200;
        let total = chunks * CHUNK;
        let reactor = Reactor::new().unwrap();
        let source = Source::new(&reactor, total, false);
        let (addr, ev) = serve_source(&reactor, &source);
        let client = thread::spawn(move || drain(&mut connect(addr)));
        run_until(&reactor, WAIT, "connection_lost", || ev.lost_count() == 1);
        let got = client.join().unwrap().unwrap();
        assert_eq!(got, expected(total), "bytes differ");
        // One chunk per call (a chunk is cut short where the pattern wraps).
        assert!(source.writes.get() >= chunks);
        assert_eq!(source.resumes.get(), source.writes.get());
        assert_eq!(source.pauses.get(), 0, "a pull producer was paused");
        assert_eq!(ev.reason_kind(), "Done");
    });
}

/// Twisted: `test/test_internet.py ProducerTests.test_unconnectedFileDescriptor` and
/// §2.8 (a producer gets `stopProducing` when the connection is lost, and at once when
/// registered on a closed transport).
#[test]
fn producers_are_stopped_when_the_connection_ends() {
    bounded(LIMIT, || {
        let reactor = Reactor::new().unwrap();
        let source = Source::new(&reactor, usize::MAX, true);
        let (addr, ev) = serve_source(&reactor, &source);
        let mut s = connect(addr);
        run_until(&reactor, WAIT, "paused", || source.pauses.get() > 0);
        // The peer goes away with the producer registered.
        socket2::SockRef::from(&s)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
        let _ = s.write_all(b"x");
        drop(s);
        run_until(&reactor, WAIT, "connection_lost", || ev.lost_count() == 1);
        assert_eq!(source.stops.get(), 1);
        // Registering on the closed transport stops the producer at once.
        let late = Source::new(&reactor, 1, false);
        ev.transport().register_producer(late.clone(), false);
        assert_eq!(late.stops.get(), 1);
        assert_eq!(late.resumes.get(), 0);
        spin(&reactor, 3);
        assert_eq!(source.stops.get(), 1);
    });
}

/// Twisted: `test/test_tcp.py test_pauseProducingInConnectionMade` and §2.7 (the
/// transport's `pauseProducing` stops reading, `resumeProducing` starts it again).
/// A connection paused in `connection_made` gets no `data_received` while a second,
/// unpaused connection on the same reactor shows the loop has read everything ready;
/// resuming delivers the bytes; pausing again stops them again.
#[test]
fn pause_reading_stops_data_received_and_resume_restarts_it() {
    bounded(LIMIT, || {
        let reactor = Reactor::new().unwrap();
        let conns: Rc<RefCell<Vec<Rc<Events>>>> = Rc::default();
        let c2 = conns.clone();
        let port = reactor
            .listen_tcp("127.0.0.1:0".parse().unwrap(), move |_: &Address| {
                let ev = Events::new();
                let first = c2.borrow().is_empty();
                c2.borrow_mut().push(ev.clone());
                Some(Probe::new(&ev).on_made(move |t| {
                    if first {
                        t.pause_reading();
                    }
                }))
            })
            .unwrap();
        let addr = port.local_addr().inet().unwrap();
        let mut paused = connect(addr);
        run_until(&reactor, WAIT, "first connection", || {
            conns.borrow().len() == 1
        });
        let mut barrier = connect(addr);
        run_until(&reactor, WAIT, "second connection", || {
            conns.borrow().len() == 2
        });
        let (p_ev, b_ev) = (conns.borrow()[0].clone(), conns.borrow()[1].clone());

        for (round, msg) in [(1, &b"held back"[..]), (2, b" and again")] {
            paused.write_all(msg).unwrap();
            barrier.write_all(b"!").unwrap();
            // Both sockets are readable; the loop serves the barrier, and would have read
            // the paused one in the same turn.
            run_until(&reactor, WAIT, "the barrier", || b_ev.received() == round);
            spin(&reactor, 5);
            let before = if round == 1 { 0 } else { 9 };
            assert_eq!(p_ev.received(), before, "read while paused (round {round})");
            p_ev.transport().resume_reading();
            run_until(&reactor, WAIT, "the held-back bytes", || {
                p_ev.received() == before + msg.len()
            });
            p_ev.transport().pause_reading();
        }
        assert_eq!(&*p_ev.data.borrow(), b"held back and again");
        assert_eq!(p_ev.lost_count(), 0);
    });
}

/// Twisted: none. A connection with reading paused whose peer resets is closed with
/// `Lost` (the poller reports the error whatever the interest) instead of the loop
/// spinning on the error until reading resumes.
#[test]
fn a_reset_while_reading_is_paused_closes_the_connection() {
    bounded(LIMIT, || {
        let reactor = Reactor::new().unwrap();
        let ev = Events::new();
        let e2 = ev.clone();
        let port = reactor
            .listen_tcp("127.0.0.1:0".parse().unwrap(), move |_: &Address| {
                Some(Probe::new(&e2).on_made(|t| t.pause_reading()))
            })
            .unwrap();
        let s = connect(port.local_addr().inet().unwrap());
        run_until(&reactor, WAIT, "connected", || ev.made.get() == 1);
        socket2::SockRef::from(&s)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
        drop(s);
        let turns = reactor.stats().turns;
        run_until(&reactor, WAIT, "connection_lost", || ev.lost_count() == 1);
        let used = reactor.stats().turns - turns;
        assert!(used < 100, "{used} turns: the loop spun on the error");
        assert_eq!(ev.reason_kind(), "Lost");
        assert_eq!(ev.received(), 0);
    });
}
