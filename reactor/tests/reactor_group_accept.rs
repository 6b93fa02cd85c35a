//! The accept modes of `GroupListener` (per-reactor, shared, dispatcher round-robin and
//! least-loaded) spread connections over every reactor of a group, and the dispatcher's
//! rotation follows ports that stop listening and reactors that stop; over real loopback
//! sockets, every wait bounded.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Barrier, Condvar, Mutex};
use std::time::{Duration, Instant};

use ropewalk_reactor::deferred::Failure;
use ropewalk_reactor::{
    AcceptQueue, Address, Dispatch, GroupListener, ListenOptions, ListeningPort, Protocol,
    ReactorGroup, ReactorHandle, TransportRef,
};

/// How long a client waits for an answer, and a held reactor for its release, before the
/// test fails.
const LIMIT: Duration = Duration::from_secs(10);

const ROUND_ROBIN: AcceptQueue = AcceptQueue::Dispatcher(Dispatch::RoundRobin);
const LEAST_LOADED: AcceptQueue = AcceptQueue::Dispatcher(Dispatch::LeastLoaded);

thread_local! {
    /// This reactor's port, for a test to stop from the reactor's thread.
    static PORT: RefCell<Option<ListeningPort>> = const { RefCell::new(None) };
}

/// Holds reactors in a blocking handler until released (or until `LIMIT`).
#[derive(Default)]
struct Gate {
    open: Mutex<bool>,
    cv: Condvar,
}

impl Gate {
    fn hold(&self) {
        let open = self.open.lock().unwrap();
        let _ = self.cv.wait_timeout_while(open, LIMIT, |open| !*open);
    }

    fn release(&self) {
        *self.open.lock().unwrap() = true;
        self.cv.notify_all();
    }
}

/// `?` answers the index of the reactor serving the connection; `h` answers it, then
/// holds that reactor (blocks its thread) until the gate opens. Reports its loss.
struct Probe {
    index: u8,
    transport: Option<TransportRef>,
    gate: Arc<Gate>,
    lost: Sender<u8>,
}

impl Protocol for Probe {
    fn connection_made(&mut self, t: TransportRef) {
        self.transport = Some(t);
    }

    fn data_received(&mut self, data: &[u8]) -> Result<(), Failure> {
        for &b in data {
            if let Some(t) = &self.transport {
                t.write(&[self.index]);
            }
            if b == b'h' {
                self.gate.hold();
            }
        }
        Ok(())
    }

    fn connection_lost(&mut self, _reason: Failure) {
        let _ = self.lost.send(self.index);
    }
}

struct Served {
    group: ReactorGroup,
    addr: SocketAddr,
    gate: Arc<Gate>,
    lost: Receiver<u8>,
}

impl Served {
    fn handles(&self) -> &[ReactorHandle] {
        self.group.handles()
    }
}

/// A group of `n` reactors serving `Probe` on one address in `queue` mode. Reactor 0
/// listens first (the others wait for it), so in dispatcher mode it is the dispatcher.
fn serve(n: usize, queue: AcceptQueue) -> Served {
    let listener = GroupListener::bind("127.0.0.1:0".parse().unwrap(), queue).unwrap();
    let addr = listener.local_addr();
    let gate = Arc::new(Gate::default());
    let (tx, lost) = mpsc::channel::<u8>();
    let order = Arc::new(Barrier::new(n));
    let g = gate.clone();
    let group = ReactorGroup::builder()
        .threads(n)
        .name("accept-test")
        .start(move |reactor, index| {
            if index > 0 {
                order.wait();
            }
            let (gate, lost) = (g.clone(), tx.clone());
            let port = listener.listen(reactor, move |_: &Address| {
                Some(Probe {
                    index: index as u8,
                    transport: None,
                    gate: gate.clone(),
                    lost: lost.clone(),
                })
            })?;
            PORT.with(|p| *p.borrow_mut() = Some(port));
            if index == 0 {
                order.wait();
            }
            Ok(())
        })
        .unwrap();
    Served {
        group,
        addr,
        gate,
        lost,
    }
}

/// Connects and sends `msg`; returns the stream and the index of the reactor serving it.
fn ask(addr: SocketAddr, msg: &[u8]) -> (TcpStream, u8) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(LIMIT)).unwrap();
    s.write_all(msg).unwrap();
    let mut who = [0u8; 1];
    s.read_exact(&mut who)
        .expect("every connection is answered in time");
    (s, who[0])
}

/// Stops listening on reactor `index`'s port, on its thread.
fn stop_listening(handles: &[ReactorHandle], index: usize) {
    handles[index]
        .blocking_call(|| {
            PORT.with(|p| p.borrow_mut().take().map(|p| p.stop_listening()));
            Ok(())
        })
        .unwrap();
}

#[test]
fn per_reactor_queues_give_every_reactor_a_connection() {
    for n in [2, 3] {
        let served = serve(n, AcceptQueue::PerReactor);
        // The kernel picks the queue by a hash of the connection's ports: connections
        // held open (distinct source ports) reach every queue soon. 200 connections
        // missing one of 3 queues has a probability of 3 x (2/3)^200.
        let mut seen = BTreeSet::new();
        let mut open = Vec::new();
        for _ in 0..200 {
            let (s, who) = ask(served.addr, b"?");
            open.push(s);
            seen.insert(who);
            if seen.len() == n {
                break;
            }
        }
        assert_eq!(seen.len(), n, "{n} reactors; served by {seen:?}");
        drop(open);
        served.group.stop().unwrap();
    }
}

#[test]
fn a_shared_queue_gives_every_reactor_a_connection_when_the_others_are_busy() {
    for n in [2, 3] {
        let served = serve(n, AcceptQueue::Shared);
        // Each connection holds the reactor that accepted it in a blocking handler: the
        // next can only be accepted by a reactor not yet held.
        let mut seen = BTreeSet::new();
        let mut open = Vec::new();
        for _ in 0..n {
            let (s, who) = ask(served.addr, b"h");
            open.push(s);
            assert!(seen.insert(who), "reactor {who} accepted while held");
        }
        served.gate.release();
        assert_eq!(seen.len(), n);
        drop(open);
        served.group.stop().unwrap();
    }
}

#[test]
fn a_round_robin_dispatcher_gives_each_reactor_its_turn() {
    for n in [2, 3] {
        let served = serve(n, ROUND_ROBIN);
        let mut counts = vec![0; n];
        let mut open = Vec::new();
        for _ in 0..3 * n {
            let (s, who) = ask(served.addr, b"?");
            open.push(s);
            counts[who as usize] += 1;
        }
        assert_eq!(counts, vec![3; n], "{n} reactors");
        // Closed ones count no more, and do not change the turn.
        drop(open);
        served.group.stop().unwrap();
    }
}

#[test]
fn a_round_robin_dispatcher_spreads_a_burst_of_connections() {
    let served = serve(3, ROUND_ROBIN);
    // Connected at once: accepted in batches, each reactor woken once per batch.
    let mut streams: Vec<TcpStream> = (0..60)
        .map(|_| {
            let s = TcpStream::connect(served.addr).unwrap();
            s.set_read_timeout(Some(LIMIT)).unwrap();
            s
        })
        .collect();
    for s in &mut streams {
        s.write_all(b"?").unwrap();
    }
    let mut counts = [0; 3];
    for s in &mut streams {
        let mut who = [0u8; 1];
        s.read_exact(&mut who).unwrap();
        counts[who[0] as usize] += 1;
    }
    assert_eq!(counts, [20; 3]);
    served.group.stop().unwrap();
}

#[test]
fn a_least_loaded_dispatcher_sends_connections_where_fewest_are_open() {
    let served = serve(2, LEAST_LOADED);
    let addr = served.addr;
    // Equal loads alternate.
    let mut on = [Vec::new(), Vec::new()];
    for _ in 0..4 {
        let (s, who) = ask(addr, b"?");
        on[who as usize].push(s);
    }
    assert_eq!([on[0].len(), on[1].len()], [2, 2]);
    // Reactor 0's connections close; once it has seen them go, it is the least loaded:
    // the next two go there, while reactor 1 still holds two.
    on[0].clear();
    for _ in 0..2 {
        let who = served.lost.recv_timeout(LIMIT).expect("the close is seen");
        assert_eq!(who, 0);
    }
    for _ in 0..2 {
        let (s, who) = ask(addr, b"?");
        assert_eq!(who, 0, "reactor 0 has fewer connections open");
        on[0].push(s);
    }
    // Loads equal again: one each.
    let mut next = BTreeSet::new();
    for _ in 0..2 {
        let (s, who) = ask(addr, b"?");
        next.insert(who);
        on[who as usize].push(s);
    }
    assert_eq!(next.len(), 2);
    served.group.stop().unwrap();
}

#[test]
fn round_robin_would_not_follow_the_load() {
    // The same sequence as above, round-robin: after reactor 0's connections close, the
    // turn still alternates (the policies differ).
    let served = serve(2, ROUND_ROBIN);
    let mut on = [Vec::new(), Vec::new()];
    for _ in 0..4 {
        let (s, who) = ask(served.addr, b"?");
        on[who as usize].push(s);
    }
    on[0].clear();
    for _ in 0..2 {
        served.lost.recv_timeout(LIMIT).expect("the close is seen");
    }
    let mut next = BTreeSet::new();
    for _ in 0..2 {
        let (s, who) = ask(served.addr, b"?");
        next.insert(who);
        on[who as usize].push(s);
    }
    assert_eq!(next.len(), 2);
    served.group.stop().unwrap();
}

#[test]
fn a_port_that_stops_listening_leaves_the_rotation() {
    for queue in [ROUND_ROBIN, LEAST_LOADED] {
        let served = serve(3, queue);
        stop_listening(served.handles(), 1);
        let mut seen = BTreeSet::new();
        let mut open = Vec::new();
        for _ in 0..6 {
            let (s, who) = ask(served.addr, b"?");
            seen.insert(who);
            open.push(s);
        }
        assert_eq!(seen, BTreeSet::from([0, 2]), "{queue}");
        // The dispatcher's own port too: it keeps accepting for the others.
        stop_listening(served.handles(), 0);
        for _ in 0..3 {
            let (s, who) = ask(served.addr, b"?");
            assert_eq!(who, 2, "{queue}");
            open.push(s);
        }
        // The last one leaves: the socket closes, a connect is refused.
        stop_listening(served.handles(), 2);
        let deadline = Instant::now() + LIMIT;
        loop {
            // The close runs on the dispatcher's next turn.
            served.handles()[0].blocking_call(|| Ok(())).unwrap();
            match TcpStream::connect(served.addr) {
                Err(e) if e.kind() == ErrorKind::ConnectionRefused => break,
                _ if Instant::now() < deadline => continue,
                other => panic!("{queue}: still accepting after every port stopped: {other:?}"),
            }
        }
        // The connections already served go on.
        for s in &mut open {
            s.write_all(b"?").unwrap();
            let mut b = [0u8; 1];
            s.read_exact(&mut b).unwrap();
        }
        drop(open);
        served.group.stop().unwrap();
    }
}

#[test]
fn a_worker_reactor_that_stops_leaves_the_rotation() {
    let served = serve(3, ROUND_ROBIN);
    let h = served.handles()[2].clone();
    h.stop();
    // Once it has stopped, calls to it fail.
    let deadline = Instant::now() + LIMIT;
    while h.blocking_call(|| Ok(())).is_ok() {
        assert!(Instant::now() < deadline, "reactor 2 did not stop");
    }
    let mut seen = BTreeSet::new();
    let mut open = Vec::new();
    for _ in 0..6 {
        let (s, who) = ask(served.addr, b"?");
        seen.insert(who);
        open.push(s);
    }
    assert_eq!(seen, BTreeSet::from([0, 1]));
    drop(open);
    served.group.stop().unwrap();
}

#[test]
fn the_dispatcher_reactor_stopping_ends_accepting() {
    let served = serve(2, ROUND_ROBIN);
    let (mut kept, who) = ask(served.addr, b"?");
    assert_eq!(who, 0);
    let (mut on1, who) = ask(served.addr, b"?");
    assert_eq!(who, 1);
    let h = served.handles()[0].clone();
    h.stop();
    let deadline = Instant::now() + LIMIT;
    while h.blocking_call(|| Ok(())).is_ok() {
        assert!(Instant::now() < deadline, "reactor 0 did not stop");
    }
    let refused = TcpStream::connect(served.addr).unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::ConnectionRefused);
    // Reactor 1 keeps its connection; reactor 0's was closed with it.
    on1.write_all(b"?").unwrap();
    let mut b = [0u8; 1];
    on1.read_exact(&mut b).unwrap();
    assert_eq!(b[0], 1);
    assert_eq!(kept.read(&mut b).map_err(|e| e.kind()), Ok(0));
    served.group.stop().unwrap();
}

#[test]
fn a_dispatched_connection_knows_its_addresses() {
    // The factory sees the client's address, the transport its peer and local addresses,
    // as on the accepting reactor (with the listening socket's options applied).
    let opts = ListenOptions {
        nodelay: true,
        ..ListenOptions::default()
    };
    let listener =
        GroupListener::bind_with("127.0.0.1:0".parse().unwrap(), ROUND_ROBIN, &opts).unwrap();
    let addr = listener.local_addr();
    let (tx, rx) = mpsc::channel::<(usize, Address, Address, Address)>();
    let order = Arc::new(Barrier::new(2));
    let group = ReactorGroup::start(2, move |reactor, index| {
        if index > 0 {
            order.wait();
        }
        let tx = tx.clone();
        listener.listen(reactor, move |peer: &Address| {
            Some(Report {
                index,
                factory_peer: peer.clone(),
                tx: tx.clone(),
            })
        })?;
        if index == 0 {
            order.wait();
        }
        Ok(())
    })
    .unwrap();
    let mut seen = BTreeSet::new();
    for _ in 0..2 {
        let s = TcpStream::connect(addr).unwrap();
        let (index, factory_peer, peer, local) = rx.recv_timeout(LIMIT).unwrap();
        let client = Address::Inet(s.local_addr().unwrap());
        assert_eq!(factory_peer, client, "reactor {index}");
        assert_eq!(peer, client, "reactor {index}");
        assert_eq!(local, Address::Inet(addr), "reactor {index}");
        seen.insert(index);
    }
    assert_eq!(seen.len(), 2);
    group.stop().unwrap();
}

struct Report {
    index: usize,
    factory_peer: Address,
    tx: Sender<(usize, Address, Address, Address)>,
}

impl Protocol for Report {
    fn connection_made(&mut self, t: TransportRef) {
        let _ = self.tx.send((
            self.index,
            self.factory_peer.clone(),
            t.peer_addr(),
            t.local_addr(),
        ));
    }

    fn data_received(&mut self, _: &[u8]) -> Result<(), Failure> {
        Ok(())
    }
}

#[test]
fn accept_modes_parse_and_display() {
    for (text, queue) in [
        ("dispatcher", ROUND_ROBIN),
        ("dispatcher:round-robin", ROUND_ROBIN),
        ("dispatcher:least-loaded", LEAST_LOADED),
        ("per-reactor", AcceptQueue::PerReactor),
        ("shared", AcceptQueue::Shared),
    ] {
        assert_eq!(text.parse::<AcceptQueue>(), Ok(queue), "{text}");
        assert_eq!(queue.to_string().parse::<AcceptQueue>(), Ok(queue));
    }
    for bad in ["dispatcher:", "dispatcher:random", "dispatch", "Dispatcher"] {
        assert!(bad.parse::<AcceptQueue>().is_err(), "{bad}");
    }
}
