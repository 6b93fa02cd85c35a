//! Multi-core: `ReactorGroup` (N reactors on N threads, setup, stop, errors) and
//! `GroupListener` (one address, an accept queue per reactor or one shared), over real
//! loopback sockets; and TLS on a group listener.

mod support;

use std::cell::Cell;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ropewalk_reactor::deferred::Failure;
use ropewalk_reactor::tls::rustls;
use ropewalk_reactor::{
    AcceptQueue, Address, GroupError, GroupListener, Protocol, ReactorGroup, ReactorHandle,
    TransportRef,
};

/// How long a client waits for an answer before the test fails.
const LIMIT: Duration = Duration::from_secs(10);

thread_local! {
    /// Connections accepted by the reactor of this thread.
    static ACCEPTED: Cell<usize> = const { Cell::new(0) };
}

/// Answers each chunk with the index of the reactor that serves the connection.
struct WhoAmI {
    index: u8,
    transport: Option<TransportRef>,
}

impl Protocol for WhoAmI {
    fn connection_made(&mut self, t: TransportRef) {
        ACCEPTED.with(|c| c.set(c.get() + 1));
        self.transport = Some(t);
    }

    fn data_received(&mut self, _data: &[u8]) -> Result<(), Failure> {
        if let Some(t) = &self.transport {
            t.write(&[self.index]);
        }
        Ok(())
    }
}

/// A group of `n` reactors listening on one address in `queue` mode.
fn serve(n: usize, queue: AcceptQueue) -> (ReactorGroup, SocketAddr) {
    let listener = GroupListener::bind("127.0.0.1:0".parse().unwrap(), queue).unwrap();
    let addr = listener.local_addr();
    let group = ReactorGroup::builder()
        .threads(n)
        .name("test-group")
        .start(move |reactor, index| {
            let index = index as u8;
            listener.listen(reactor, move |_: &Address| {
                Some(WhoAmI {
                    index,
                    transport: None,
                })
            })?;
            Ok(())
        })
        .unwrap();
    (group, addr)
}

/// Opens `conns` connections at once, then asks each which reactor serves it; returns the
/// number of connections each reactor answered.
fn ask_all(addr: SocketAddr, conns: usize, n: usize) -> Vec<usize> {
    let mut streams: Vec<TcpStream> = (0..conns)
        .map(|_| {
            let s = TcpStream::connect(addr).expect("connect");
            s.set_read_timeout(Some(LIMIT)).unwrap();
            s
        })
        .collect();
    for s in &mut streams {
        s.write_all(b"?").unwrap();
    }
    let mut served = vec![0; n];
    for s in &mut streams {
        let mut who = [0u8; 1];
        s.read_exact(&mut who)
            .expect("every connection is answered in time");
        served[who[0] as usize] += 1;
    }
    served
}

/// The connections each reactor accepted, read on its own thread.
fn accepted(handles: &[ReactorHandle]) -> Vec<usize> {
    handles
        .iter()
        .map(|h| h.blocking_call(|| Ok(ACCEPTED.with(Cell::get))).unwrap())
        .collect()
}

#[test]
fn own_queues_serve_every_connection_on_more_than_one_reactor() {
    for n in [2, 4] {
        let (group, addr) = serve(n, AcceptQueue::PerReactor);
        let served = ask_all(addr, 400, n);
        assert_eq!(served.iter().sum::<usize>(), 400);
        assert_eq!(accepted(group.handles()), served);
        // The kernel spreads connections by a hash of their ports: 400 connections all
        // on one of 2 reactors has a probability of 2^-399.
        let busy = served.iter().filter(|&&c| c > 0).count();
        assert!(
            busy >= 2,
            "{n} reactors, connections per reactor: {served:?}"
        );
        group.stop().unwrap();
    }
}

#[test]
fn a_shared_queue_loses_no_connection() {
    for n in [2, 4] {
        let (group, addr) = serve(n, AcceptQueue::Shared);
        // The spread over reactors is not asserted: whichever reactor wakes first takes
        // up to 128 connections at once, and one reactor may take them all.
        let served = ask_all(addr, 400, n);
        assert_eq!(served.iter().sum::<usize>(), 400, "{served:?}");
        assert_eq!(accepted(group.handles()).iter().sum::<usize>(), 400);
        group.stop().unwrap();
    }
}

#[test]
fn a_shared_queue_serves_connections_arriving_one_by_one() {
    let (group, addr) = serve(2, AcceptQueue::Shared);
    for _ in 0..200 {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(LIMIT)).unwrap();
        s.write_all(b"?").unwrap();
        let mut who = [0u8; 1];
        s.read_exact(&mut who).unwrap();
        assert!(who[0] < 2);
    }
    assert_eq!(accepted(group.handles()).iter().sum::<usize>(), 200);
    group.stop().unwrap();
}

/// How many times each reactor's thread has gone to sleep so far (its voluntary context
/// switches, Linux), read on that thread: a reactor that is woken and finds nothing to do
/// goes back to sleep, one more.
#[cfg(all(target_os = "linux", not(feature = "portable-poller")))]
fn sleeps(handles: &[ReactorHandle]) -> Vec<u64> {
    handles
        .iter()
        .map(|h| {
            h.blocking_call(|| {
                let status =
                    std::fs::read_to_string("/proc/thread-self/status").map_err(Failure::new)?;
                let n = status
                    .lines()
                    .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .unwrap_or(0);
                Ok(n)
            })
            .unwrap()
        })
        .collect()
}

#[test]
// `EPOLLEXCLUSIVE` is the epoll path's: the portable poller (`polling`) cannot ask for it.
#[cfg(all(target_os = "linux", not(feature = "portable-poller")))]
fn a_shared_queue_wakes_one_idle_reactor_per_connection() {
    // Four idle reactors wait on one accept queue. Registered plainly, every new
    // connection wakes all four (the thundering herd): three of them find nothing to
    // accept and go back to sleep. Registered with EPOLLEXCLUSIVE, it wakes one.
    const N: usize = 4;
    const CONNS: usize = 20;
    let (group, addr) = serve(N, AcceptQueue::Shared);
    let mut woken_in_vain = 0;
    for _ in 0..CONNS {
        let before = sleeps(group.handles());
        let was = accepted(group.handles());
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(LIMIT)).unwrap();
        s.write_all(b"?").unwrap();
        let mut who = [0u8; 1];
        s.read_exact(&mut who).unwrap();
        drop(s);
        let now = accepted(group.handles());
        let after = sleeps(group.handles());
        for i in 0..N {
            // Between the two reads each reactor slept three times: after the first
            // read and after each of the two `accepted` calls. More is a wake-up of its
            // own; for a reactor that accepted nothing, one in vain.
            if now[i] == was[i] && after[i] - before[i] > 3 {
                woken_in_vain += 1;
            }
        }
    }
    // A herd would be up to (N - 1) x CONNS = 60 (fewer when a wake-up lands while the
    // reactor is already awake); slack for a stray wake-up.
    assert!(
        woken_in_vain <= CONNS / 4,
        "{woken_in_vain} reactors woke for connections they did not accept"
    );
    group.stop().unwrap();
}

/// Counts its drops: a reactor that held one has been dropped, so its thread has ended.
struct DropCount(Arc<AtomicUsize>);

impl Drop for DropCount {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn stop_stops_every_reactor_and_joins_its_thread() {
    let dropped = Arc::new(AtomicUsize::new(0));
    let d = dropped.clone();
    let group = ReactorGroup::start(4, move |reactor, _| {
        let held = DropCount(d.clone());
        // Held by the reactor until it is dropped at the end of its thread.
        reactor.call_later(Duration::from_secs(3600), move || drop(held));
        Ok(())
    })
    .unwrap();
    assert_eq!(group.threads(), 4);
    assert_eq!(dropped.load(Ordering::SeqCst), 0);
    group.stop().unwrap();
    assert_eq!(dropped.load(Ordering::SeqCst), 4);
}

#[test]
fn join_returns_once_every_reactor_stopped_itself() {
    let group = ReactorGroup::start(2, |reactor, index| {
        let r = reactor.clone();
        reactor.call_later(Duration::from_millis(5 * index as u64), move || {
            r.stop().unwrap();
        });
        Ok(())
    })
    .unwrap();
    group.join().unwrap();
}

#[test]
fn a_setup_error_on_one_thread_is_an_error_and_the_others_are_stopped() {
    let dropped = Arc::new(AtomicUsize::new(0));
    let d = dropped.clone();
    let err = ReactorGroup::start(4, move |reactor, index| {
        let held = DropCount(d.clone());
        reactor.call_later(Duration::from_secs(3600), move || drop(held));
        if index == 2 {
            return Err(Failure::msg("no config for reactor 2"));
        }
        Ok(())
    })
    .unwrap_err();
    assert!(matches!(err, GroupError::Setup { index: 2, .. }), "{err}");
    assert!(!err.is_panic());
    assert!(err.to_string().contains("no config for reactor 2"), "{err}");
    // Every reactor, the failed one included, is gone: their threads have ended.
    assert_eq!(dropped.load(Ordering::SeqCst), 4);
}

#[test]
fn a_panic_in_setup_is_an_error() {
    let err = ReactorGroup::start(2, |_, index| {
        if index == 1 {
            panic!("setup exploded");
        }
        Ok(())
    })
    .unwrap_err();
    assert_eq!(err.index(), 1);
    assert!(err.is_panic());
    assert!(err.to_string().contains("setup exploded"), "{err}");
}

#[test]
fn a_bind_error_in_setup_is_an_error() {
    // Another socket, without SO_REUSEPORT, already holds the port.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    assert!(GroupListener::bind(addr, AcceptQueue::PerReactor).is_err());
    assert!(GroupListener::bind(addr, AcceptQueue::Shared).is_err());
}

/// Panics when dropped.
struct PanicOnDrop;

impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        panic!("dropped on purpose");
    }
}

#[test]
fn a_reactor_thread_that_panics_is_reported_by_stop() {
    let group = ReactorGroup::start(2, |reactor, index| {
        if index == 1 {
            // Dropped with the reactor, after `run` returned: the thread panics.
            let bomb = PanicOnDrop;
            reactor.call_later(Duration::from_secs(3600), move || drop(bomb));
        }
        Ok(())
    })
    .unwrap();
    let err = group.stop().unwrap_err();
    assert!(
        matches!(&err, GroupError::Panicked { index: 1, message } if message.contains("dropped on purpose")),
        "{err}"
    );
}

#[test]
fn groups_and_listeners_are_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<ReactorGroup>();
    send_sync::<GroupListener>();
    send_sync::<ReactorHandle>();
    send_sync::<GroupError>();
}

#[test]
fn a_group_can_be_stopped_from_another_thread() {
    let group = ReactorGroup::start(2, |_, _| Ok(())).unwrap();
    std::thread::spawn(move || group.stop())
        .join()
        .unwrap()
        .unwrap();
}

#[test]
fn dropping_a_group_stops_it() {
    let dropped = Arc::new(AtomicUsize::new(0));
    let d = dropped.clone();
    let group = ReactorGroup::start(2, move |reactor, _| {
        let held = DropCount(d.clone());
        reactor.call_later(Duration::from_secs(3600), move || drop(held));
        Ok(())
    })
    .unwrap();
    drop(group);
    assert_eq!(dropped.load(Ordering::SeqCst), 2);
}

/// TLS on a group listener, in both accept modes: every connection is answered through
/// its handshake, by more than one reactor with their own queues; the reactors share the
/// configuration's session cache, so every connection after the first resumes its
/// session, whichever reactor it lands on.
#[test]
fn tls_on_a_group_listener_in_both_modes() {
    let (ca, server) = support::tls::pki();
    let client = support::tls::client(&ca);
    for queue in [AcceptQueue::PerReactor, AcceptQueue::Shared] {
        let listener = GroupListener::bind("127.0.0.1:0".parse().unwrap(), queue).unwrap();
        let addr = listener.local_addr();
        let config = server.clone();
        let group = ReactorGroup::start(2, move |reactor, index| {
            let index = index as u8;
            listener.listen_tls(
                reactor,
                move |_: &Address| {
                    Some(WhoAmI {
                        index,
                        transport: None,
                    })
                },
                config.clone(),
            )?;
            Ok(())
        })
        .unwrap();
        let mut served = [0usize; 2];
        let mut resumed = 0;
        let conns = 40;
        for _ in 0..conns {
            let sock = TcpStream::connect(addr).unwrap();
            sock.set_read_timeout(Some(LIMIT)).unwrap();
            let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
            let conn = rustls::ClientConnection::new(client.clone(), name).unwrap();
            let mut tls = rustls::StreamOwned::new(conn, sock);
            tls.write_all(b"?").unwrap();
            let mut who = [0u8; 1];
            tls.read_exact(&mut who).expect("answered in time");
            served[who[0] as usize] += 1;
            if tls.conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed) {
                resumed += 1;
            }
            tls.conn.send_close_notify();
            let _ = tls.flush();
        }
        assert_eq!(served.iter().sum::<usize>(), conns, "{queue}");
        assert_eq!(
            accepted(group.handles()).iter().sum::<usize>(),
            conns,
            "{queue}"
        );
        if queue == AcceptQueue::PerReactor {
            assert!(served.iter().all(|&c| c > 0), "{queue}: {served:?}");
        }
        // The first connection of the second mode resumes too: same client, same config.
        let want = if queue == AcceptQueue::PerReactor {
            conns - 1
        } else {
            conns
        };
        assert_eq!(resumed, want, "{queue}: resumed sessions");
        group.stop().unwrap();
    }
}
